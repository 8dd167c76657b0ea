//! Datentransfer, the sender's side and the whole way: an application encrypted to the Fachverfahren's
//! key travels through pforte to the subscriber, which decrypts it and accepts; pforte's signed event
//! log tells the sender, and pforte never held the plaintext. Each bad input a sender can make is
//! refused with its own problem.

use serde_json::{json, Value};

use crate::helpers::{TestContext, TestResult};
use crate::transfer_support::*;

/// Three chunks and a bit: the attachment streams in and out in pieces.
const ATTACHMENT_BYTES: usize = 3 * 1024 * 1024 + 12_345;

pub async fn an_application_travels_encrypted_from_sender_to_subscriber_and_back_comes_the_acceptance(
    ctx: TestContext,
) -> TestResult {
    let app = start(&ctx, |f| f).await?;
    let k = keys();
    let marker = format!("KLARTEXT-{}", uuid::Uuid::new_v4().simple());
    let sender = token(&app, "demo", "transfer").await?;
    let subscriber = token(&app, "fachverfahren", "transfer").await?;

    // The sender learns the destination's current key from pforte.
    let destination: Value = app.get(&format!("/v1/destinations/{DESTINATION}")).await.json().await?;
    assert_eq!(destination["encryptionKid"], "enc-1");
    assert_eq!(destination["services"][0]["identifier"], SERVICE);
    let key: Value = app.get(&format!("/v1/destinations/{DESTINATION}/keys/enc-1")).await.json().await?;
    assert_eq!(key["key_ops"], json!(["wrapKey"]));

    let (submission, case, attachments) = announced(&app, &sender, 1).await?;
    let mut document = marker.clone().into_bytes();
    document.extend((0..ATTACHMENT_BYTES).map(|i| (i % 251) as u8));
    let (attachment_jwe, attachment_tag) = encrypt(&k.encryption, "enc-1", "application/pdf", &document);
    let response = upload(&app, &sender, &submission, &attachments[0], attachment_jwe.clone()).await;
    assert_eq!(response.status(), 204, "{}", response.text().await?);

    let metadata = json!({ "contentStructure": { "attachments": [{ "attachmentId": attachments[0], "purpose": "attachment", "mimeType": "application/pdf", "hash": { "type": "sha512", "content": "00" } }] }, "note": marker });
    let (metadata_jwe, metadata_tag) =
        encrypt(&k.encryption, "enc-1", "application/json", metadata.to_string().as_bytes());
    let data = json!({ "antragsteller": marker });
    let (data_jwe, data_tag) = encrypt(&k.encryption, "enc-1", "application/json", data.to_string().as_bytes());
    let body = json!({ "encryptedMetadata": metadata_jwe, "encryptedData": data_jwe });
    let response = submit(&app, &sender, &submission, body).await;
    assert_eq!(response.status(), 202, "{}", response.text().await?);

    // pforte's SETs, verified against its JWKS, carry the tags of what was uploaded.
    let log = event_log(&app, &sender, &case).await?;
    assert_eq!(log.len(), 2);
    let created = verify_pforte_set(&app, &log[0]).await?;
    assert!(created["events"].get(format!("{EVENTS}create-submission")).is_some(), "{created}");
    assert_eq!(created["sub"], format!("submission:{submission}"));
    assert_eq!(created["txn"], format!("case:{case}"));
    assert_eq!(created["iss"], app.address);
    let submitted = verify_pforte_set(&app, &log[1]).await?;
    let tags = &submitted["events"][format!("{EVENTS}submit-submission")]["authenticationTags"];
    assert_eq!(tags["metadata"], metadata_tag);
    assert_eq!(tags["data"], data_tag);
    assert_eq!(tags["attachments"][&attachments[0]], attachment_tag);

    // The subscriber finds, fetches, downloads and decrypts it.
    let list: Value = app
        .client
        .get(app.url(&format!("/v1/submissions?destinationId={DESTINATION}")))
        .bearer_auth(&subscriber)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(list["totalCount"], 1, "{list}");
    assert_eq!(list["submissions"][0]["submissionId"], submission);
    let fetched: Value = app
        .client
        .get(app.url(&format!("/v1/submissions/{submission}")))
        .bearer_auth(&subscriber)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(fetched["attachments"], json!(attachments));
    assert_eq!(fetched["serviceType"]["identifier"], SERVICE);
    let plain_metadata = decrypt(&k.encryption, fetched["encryptedMetadata"].as_str().unwrap_or_default())?;
    assert_eq!(serde_json::from_slice::<Value>(&plain_metadata)?, metadata);
    let plain_data = decrypt(&k.encryption, fetched["encryptedData"].as_str().unwrap_or_default())?;
    assert_eq!(serde_json::from_slice::<Value>(&plain_data)?, data);
    let download = app
        .client
        .get(app.url(&format!("/v1/submissions/{submission}/attachments/{}", attachments[0])))
        .bearer_auth(&subscriber)
        .send()
        .await?;
    assert_eq!(download.status(), 200);
    assert_eq!(download.headers()["content-type"], "application/jose");
    let downloaded = download.text().await?;
    assert_eq!(downloaded, attachment_jwe);
    assert_eq!(decrypt(&k.encryption, &downloaded)?, document);
    assert_eq!(downloaded.rsplit('.').next(), Some(attachment_tag.as_str()));

    // The subscriber accepts with its own SET; the sender reads it as posted.
    let accept = decision(&k.signing, "accept-submission", (DESTINATION, &submission, &case));
    let response = post_event(&app, &subscriber, &case, &accept).await;
    assert_eq!(response.status(), 204, "{}", response.text().await?);
    let log = event_log(&app, &sender, &case).await?;
    assert_eq!(log.len(), 3);
    assert_eq!(log[2], accept);
    // Decided: no longer listed, and a second decision is a conflict.
    let list: Value = app
        .client
        .get(app.url(&format!("/v1/submissions?destinationId={DESTINATION}")))
        .bearer_auth(&subscriber)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(list["totalCount"], 0);
    let again = decision(&k.signing, "reject-submission", (DESTINATION, &submission, &case));
    assert_eq!(refused(post_event(&app, &subscriber, &case, &again).await, 409).await?, "transfer_invalid_transition");

    // pforte held ciphertext only: the marker is nowhere in its database, the ciphertext is; and
    // neither is in its log (every line of this test process, at debug level).
    let ciphertext_sample = attachment_jwe.split('.').nth(3).unwrap_or_default()[..64].to_owned();
    app.stop().await?;
    let logs = crate::logs::captured_logs();
    assert!(logs.contains("/v1/submissions"), "the requests were logged");
    assert!(!logs.contains(&marker), "the plaintext marker is in the log");
    assert!(!logs.contains(&ciphertext_sample), "ciphertext is in the log");
    if let Some(line) = logs.lines().find(|line| crate::logs::contains_compact_jose(line)) {
        panic!("a JWE, SET or token is in the log: {line}");
    }
    let (marker_found, ciphertext_found) = search_database(&ctx, &marker, &ciphertext_sample).await?;
    assert!(ciphertext_found, "the search must see the stored ciphertext, or it proves nothing");
    assert!(!marker_found, "the plaintext marker is in pforte's database");
    Ok(())
}
backend_test!(an_application_travels_encrypted_from_sender_to_subscriber_and_back_comes_the_acceptance);

/// Whether `marker` and `sample` occur anywhere in the test's database: the SQLite files byte for byte,
/// or every row of every PostgreSQL table as text (byte columns as hex, so both forms are searched).
pub(crate) async fn search_database(ctx: &TestContext, marker: &str, sample: &str) -> anyhow::Result<(bool, bool)> {
    use crate::helpers::TestBackend;
    let mut haystack = Vec::new();
    match &ctx.backend {
        TestBackend::Sqlite => {
            for entry in std::fs::read_dir(ctx.dir.path())? {
                let path = entry?.path();
                if path.file_name().is_some_and(|n| n.to_string_lossy().starts_with("pforte.db")) {
                    haystack.extend(std::fs::read(path)?);
                }
            }
        }
        TestBackend::Postgres(_) => {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&ctx.database_url).await?;
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'",
            )
            .fetch_all(&mut conn)
            .await?;
            for table in tables {
                let rows: Vec<String> =
                    sqlx::query_scalar(&format!("SELECT t::text FROM \"{table}\" t")).fetch_all(&mut conn).await?;
                for row in rows {
                    haystack.extend(row.into_bytes());
                }
            }
        }
    }
    let contains = |needle: &[u8]| haystack.windows(needle.len()).any(|w| w == needle);
    let hex = |text: &str| hex::encode(text.as_bytes()).into_bytes();
    let marker_found = contains(marker.as_bytes()) || contains(&hex(marker));
    let sample_found = contains(sample.as_bytes()) || contains(&hex(sample));
    Ok((marker_found, sample_found))
}

pub async fn uploads_that_are_no_jwe_to_the_destination_are_refused_and_leave_nothing(ctx: TestContext) -> TestResult {
    let app = start(&ctx, |f| f).await?;
    let k = keys();
    let sender = token(&app, "demo", "transfer").await?;
    let (submission, _, attachments) = announced(&app, &sender, 1).await?;
    let attachment = &attachments[0];

    let not_jwe = upload(&app, &sender, &submission, attachment, "%PDF-1.7 plain text".into()).await;
    assert_eq!(refused(not_jwe, 422).await?, "transfer_not_a_jwe");
    let (to_signing_key, _) = encrypt(&k.signing, "sig-1", "application/pdf", b"document");
    let wrong_kid = upload(&app, &sender, &submission, attachment, to_signing_key).await;
    assert_eq!(refused(wrong_kid, 422).await?, "transfer_unknown_key");
    let (unknown, _) = encrypt(&k.forger, "enc-9", "application/pdf", b"document");
    assert_eq!(
        refused(upload(&app, &sender, &submission, attachment, unknown).await, 422).await?,
        "transfer_unknown_key"
    );
    let (jwe, _) = encrypt(&k.encryption, "enc-1", "application/pdf", b"document");
    let wrong_type = app
        .client
        .put(app.url(&format!("/v1/submissions/{submission}/attachments/{attachment}")))
        .bearer_auth(&sender)
        .header("content-type", "application/pdf")
        .body(jwe)
        .send()
        .await?;
    assert_eq!(refused(wrong_type, 415).await?, "unsupported_media_type");

    // None of them counts as uploaded: the submit still misses the attachment.
    let (metadata, _) = encrypt(&k.encryption, "enc-1", "application/json", b"{}");
    let response = submit(&app, &sender, &submission, json!({ "encryptedMetadata": metadata })).await;
    assert_eq!(refused(response, 422).await?, "transfer_attachments_missing");

    // Key rollover: the previous key, still listed, is taken.
    let (to_old_key, _) = encrypt(&k.old_encryption, "enc-0", "application/pdf", b"document");
    assert_eq!(upload(&app, &sender, &submission, attachment, to_old_key).await.status(), 204);
    // The metadata is checked like an attachment.
    let response = submit(&app, &sender, &submission, json!({ "encryptedMetadata": "{\"plain\": true}" })).await;
    assert_eq!(refused(response, 422).await?, "transfer_not_a_jwe");
    let response = submit(&app, &sender, &submission, json!({ "encryptedMetadata": metadata.clone() })).await;
    assert_eq!(response.status(), 202);
    let response = submit(&app, &sender, &submission, json!({ "encryptedMetadata": metadata })).await;
    assert_eq!(refused(response, 409).await?, "transfer_invalid_transition");
    let (late, _) = encrypt(&k.encryption, "enc-1", "application/pdf", b"late");
    assert_eq!(
        refused(upload(&app, &sender, &submission, attachment, late).await, 409).await?,
        "transfer_invalid_transition"
    );
    Ok(())
}
backend_test!(uploads_that_are_no_jwe_to_the_destination_are_refused_and_leave_nothing);

pub async fn an_attachment_not_announced_is_refused(ctx: TestContext) -> TestResult {
    let app = start(&ctx, |f| f).await?;
    let sender = token(&app, "demo", "transfer").await?;
    let (submission, _, _) = announced(&app, &sender, 1).await?;
    let (jwe, _) = encrypt(&keys().encryption, "enc-1", "application/pdf", b"document");
    let stranger = uuid::Uuid::new_v4().to_string();
    let response = upload(&app, &sender, &submission, &stranger, jwe).await;
    assert_eq!(refused(response, 422).await?, "transfer_attachment_not_announced");
    Ok(())
}
backend_test!(an_attachment_not_announced_is_refused);

pub async fn an_attachment_over_the_limit_is_refused_with_or_without_a_length(ctx: TestContext) -> TestResult {
    let app =
        start(&ctx, |f| f.merge(("transfer.max_attachment_bytes", 8192)).merge(("transfer.max_submit_bytes", 600_000)))
            .await?;
    let k = keys();
    let sender = token(&app, "demo", "transfer").await?;
    let (submission, _, attachments) = announced(&app, &sender, 1).await?;
    let (large, _) = encrypt(&k.encryption, "enc-1", "application/pdf", &[7u8; 10_000]);
    let response = upload(&app, &sender, &submission, &attachments[0], large.clone()).await;
    assert_eq!(refused(response, 413).await?, "payload_too_large");
    // Streamed without Content-Length (chunked): counted while it arrives.
    let path = format!("/v1/submissions/{submission}/attachments/{}", attachments[0]);
    let answer = put_chunked(&app.address, &path, &sender, large.as_bytes()).await?;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer:.200}");
    assert!(answer.contains("payload_too_large"), "{answer}");
    let (small, _) = encrypt(&k.encryption, "enc-1", "application/pdf", &[7u8; 4000]);
    assert_eq!(upload(&app, &sender, &submission, &attachments[0], small).await.status(), 204);

    // Metadata beyond the general body limit (256 KiB) but within transfer.max_submit_bytes is taken,
    // beyond that it is refused.
    // The refusal goes by the declared length, before a byte of the body is read. The body is not
    // sent here: a client still writing 500 KB when the server answers and closes may see the
    // connection reset instead of the answer (the unread bytes make the kernel send RST), a race
    // that made this test fail once under load.
    let (too_large, _) = encrypt(&k.encryption, "enc-1", "application/json", &[b' '; 500_000]);
    let declared = json!({ "encryptedMetadata": too_large }).to_string().len();
    let answer = put_declared(&app.address, &format!("/v1/submissions/{submission}"), &sender, declared).await?;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer:.200}");
    assert!(answer.contains("payload_too_large"), "{answer}");
    let (large, _) = encrypt(&k.encryption, "enc-1", "application/json", &[b' '; 400_000]);
    let response = submit(&app, &sender, &submission, json!({ "encryptedMetadata": large })).await;
    assert_eq!(response.status(), 202, "{}", response.text().await?);
    Ok(())
}
backend_test!(an_attachment_over_the_limit_is_refused_with_or_without_a_length);

/// A PUT of JSON that declares `length` bytes and sends none of them, written by hand, and the raw answer.
async fn put_declared(address: &str, path: &str, token: &str, length: usize) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host).await?;
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await?;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

/// A PUT with `Transfer-Encoding: chunked` (1000 bytes a chunk), written by hand, and the raw answer.
async fn put_chunked(address: &str, path: &str, token: &str, body: &[u8]) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host).await?;
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/jose\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await?;
    for chunk in body.chunks(1000) {
        stream.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).await?;
        stream.write_all(chunk).await?;
        stream.write_all(b"\r\n").await?;
    }
    stream.write_all(b"0\r\n\r\n").await?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await?;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

pub async fn a_sender_reaches_only_active_destinations_of_its_own_tenants(ctx: TestContext) -> TestResult {
    let app = start(&ctx, |f| f).await?;
    let sender = token(&app, "demo", "transfer").await?;
    let other = token(&app, "other-service", "transfer").await?;
    assert_eq!(refused(announce(&app, &other, DESTINATION, 0).await?, 403).await?, "forbidden");
    let inactive = announce(&app, &sender, INACTIVE_DESTINATION, 0).await?;
    assert_eq!(refused(inactive, 422).await?, "transfer_destination_refuses");
    let unknown = announce(&app, &sender, &uuid::Uuid::new_v4().to_string(), 0).await?;
    assert_eq!(refused(unknown, 404).await?, "not_found");
    let unknown = app.get(&format!("/v1/destinations/{}", uuid::Uuid::new_v4())).await;
    assert_eq!(refused(unknown, 404).await?, "not_found");
    assert_eq!(refused(app.get(&format!("/v1/destinations/{DESTINATION}/keys/enc-9")).await, 404).await?, "not_found");

    // Another client can neither continue nor read a submission it did not announce.
    let (submission, case, attachments) = announced(&app, &sender, 1).await?;
    let (jwe, _) = encrypt(&keys().encryption, "enc-1", "application/pdf", b"document");
    assert_eq!(refused(upload(&app, &other, &submission, &attachments[0], jwe).await, 403).await?, "forbidden");
    let response = app.client.get(app.url(&format!("/v1/cases/{case}/events"))).bearer_auth(&other).send().await?;
    assert_eq!(refused(response, 403).await?, "forbidden");

    // A token for the payment API is not one for Datentransfer.
    let payment_only = token(&app, "demo", "payment").await?;
    assert_eq!(refused(announce(&app, &payment_only, DESTINATION, 0).await?, 401).await?, "unauthorized");
    let bad_service = app
        .client
        .post(app.url("/v1/submissions"))
        .bearer_auth(&sender)
        .json(&json!({ "destinationId": DESTINATION, "serviceType": { "name": "x", "identifier": "urn:de:fim:leika:leistung:1" } }))
        .send()
        .await?;
    assert_eq!(refused(bad_service, 422).await?, "transfer_destination_refuses");
    let malformed = app
        .client
        .post(app.url("/v1/submissions"))
        .bearer_auth(&sender)
        .json(&json!({ "destinationId": "not-a-uuid", "serviceType": { "name": "x", "identifier": SERVICE } }))
        .send()
        .await?;
    assert_eq!(refused(malformed, 400).await?, "bad_request");
    Ok(())
}
backend_test!(a_sender_reaches_only_active_destinations_of_its_own_tenants);

pub async fn check_names_the_file_and_member_of_a_destination_key_problem() -> TestResult {
    let dir = tempfile::tempdir()?;
    let file = format!("{DESTINATION}.toml");
    let broken = destination_file("active", "demo", None).replacen("\"wrapKey\"", "\"encrypt\"", 1);
    std::fs::write(dir.path().join(&file), broken)?;
    let output =
        crate::helpers::pforte_command().arg("check").env("PFORTE__TRANSFER__DESTINATIONS", dir.path()).output()?;
    let text = crate::helpers::output_text(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(text.contains(&file) && text.contains("jwks.keys[0].key_ops"), "{text}");
    std::fs::write(dir.path().join(&file), destination_file("active", "demo", None))?;
    let output =
        crate::helpers::pforte_command().arg("check").env("PFORTE__TRANSFER__DESTINATIONS", dir.path()).output()?;
    assert!(output.status.success(), "{}", crate::helpers::output_text(&output));
    Ok(())
}
plain_test!(check_names_the_file_and_member_of_a_destination_key_problem);

pub async fn a_key_rollover_through_reloads_loses_no_submission(ctx: TestContext) -> TestResult {
    use pforte::registry::reload::ReloadTrigger;
    let app = start(&ctx, |f| f).await?;
    let k = keys();
    let file = ctx.dir.path().join(format!("destinations/{DESTINATION}.toml"));
    let sender = token(&app, "demo", "transfer").await?;
    let reload = |text: String| {
        let (file, state) = (file.clone(), app.state.clone());
        async move {
            std::fs::write(&file, text)?;
            let diff = state.reload.reload(ReloadTrigger::Admin).await.map_err(|p| anyhow::anyhow!("{p}"))?;
            anyhow::ensure!(diff.destinations.changed == [DESTINATION], "{diff:?}");
            Ok::<(), anyhow::Error>(())
        }
    };
    let current = || async {
        let body: Value = app.get(&format!("/v1/destinations/{DESTINATION}")).await.json().await?;
        Ok::<String, anyhow::Error>(body["encryptionKid"].as_str().unwrap_or_default().to_owned())
    };
    // Before the rollover: a submission encrypted to enc-1 is announced and its attachment uploaded.
    let (before, before_case, attachments) = announced(&app, &sender, 1).await?;
    let (jwe, _) = encrypt(&k.encryption, "enc-1", "application/pdf", b"before");
    assert_eq!(upload(&app, &sender, &before, &attachments[0], jwe).await.status(), 204);

    // 1. The new key is added; senders are still told enc-1.
    let both = [("enc-1", &k.encryption), ("enc-2", &k.forger)];
    reload(destination_file_with("active", "fachverfahren", None, &both, "enc-1")).await?;
    assert_eq!(current().await?, "enc-1");
    // 2. The switch: senders are told enc-2, and the submission begun with enc-1 still completes.
    reload(destination_file_with("active", "fachverfahren", None, &both, "enc-2")).await?;
    assert_eq!(current().await?, "enc-2");
    let (metadata, _) = encrypt(&k.encryption, "enc-1", "application/json", b"{}");
    let response = submit(&app, &sender, &before, json!({ "encryptedMetadata": metadata })).await;
    assert_eq!(response.status(), 202, "{}", response.text().await?);
    let (after, _, attachments) = announced(&app, &sender, 1).await?;
    let (jwe, _) = encrypt(&k.forger, "enc-2", "application/pdf", b"after");
    assert_eq!(upload(&app, &sender, &after, &attachments[0], jwe).await.status(), 204);
    // 3. The old key goes: no new content for it, and what was submitted with it is still delivered.
    reload(destination_file_with("active", "fachverfahren", None, &[("enc-2", &k.forger)], "enc-2")).await?;
    let (late, _) = encrypt(&k.encryption, "enc-1", "application/pdf", b"late");
    assert_eq!(refused(upload(&app, &sender, &after, &attachments[0], late).await, 422).await?, "transfer_unknown_key");
    let subscriber = token(&app, "fachverfahren", "transfer").await?;
    let fetched = app.client.get(app.url(&format!("/v1/submissions/{before}"))).bearer_auth(&subscriber).send().await?;
    assert_eq!(fetched.status(), 200);
    let fetched: Value = fetched.json().await?;
    assert_eq!(decrypt(&k.encryption, fetched["encryptedMetadata"].as_str().unwrap_or_default())?, b"{}");
    assert_eq!(fetched["caseId"], before_case);
    Ok(())
}
backend_test!(a_key_rollover_through_reloads_loses_no_submission);

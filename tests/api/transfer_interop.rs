//! Datentransfer with an independent JOSE implementation (issue 15 item 9): a sender and a subscriber
//! whose JOSE side is jose (panva, Node.js, `tests/interop/fitconnect/peer.mjs`). The sender encrypts
//! to the key exactly as pforte serves it (`key_ops` ["wrapKey"]), the subscriber decrypts what pforte
//! hands out, verifies pforte's SETs against its JWKS and signs its own acceptance; a SET it signs
//! with another key is refused. Runs when `tests/interop/fitconnect/node_modules` exists (`npm ci`
//! there; CI does it).

use std::io::Write;
use std::path::PathBuf;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};

use crate::helpers::{TestApp, TestContext, TestResult, MANIFEST_DIR};
use crate::transfer_support::*;

fn peer_dir() -> PathBuf {
    PathBuf::from(MANIFEST_DIR).join("tests/interop/fitconnect")
}

pub fn jose_installed() -> bool {
    peer_dir().join("node_modules/jose").is_dir()
}

/// Runs one command of the jose peer with `input` on stdin.
async fn peer(command: &'static str, input: Value) -> anyhow::Result<Value> {
    tokio::task::spawn_blocking(move || {
        let mut child = std::process::Command::new("node")
            .arg("peer.mjs")
            .arg(command)
            .current_dir(peer_dir())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()?;
        child.stdin.take().ok_or_else(|| anyhow::anyhow!("no stdin"))?.write_all(input.to_string().as_bytes())?;
        let output = child.wait_with_output()?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        anyhow::ensure!(output.status.success(), "jose {command} failed: {stderr}");
        Ok(serde_json::from_slice(&output.stdout)?)
    })
    .await?
}

async fn get_json(app: &TestApp, path: &str, token: Option<&str>) -> anyhow::Result<Value> {
    let mut request = app.client.get(app.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await?;
    anyhow::ensure!(response.status() == 200, "GET {path}: {}", response.status());
    Ok(response.json().await?)
}

fn pkcs8(key: &openssl::pkey::PKey<openssl::pkey::Private>) -> anyhow::Result<String> {
    Ok(String::from_utf8(key.private_key_to_pem_pkcs8()?)?)
}

pub async fn a_sender_and_a_subscriber_written_with_jose_complete_a_submission(ctx: TestContext) -> TestResult {
    let app = start(&ctx, |f| f).await?;
    let k = keys();
    let sender = token(&app, "demo", "transfer").await?;
    let subscriber = token(&app, "fachverfahren", "transfer").await?;

    // The sender: the current key as pforte serves it, and everything encrypted to it with jose.
    let destination = get_json(&app, &format!("/v1/destinations/{DESTINATION}"), None).await?;
    let kid = destination["encryptionKid"].as_str().unwrap_or_default().to_owned();
    let jwk = get_json(&app, &format!("/v1/destinations/{DESTINATION}/keys/{kid}"), None).await?;
    let encrypt_with_jose = |plaintext: Vec<u8>, cty: &str| {
        let input = json!({ "jwk": jwk.clone(), "plaintext": STANDARD.encode(plaintext), "cty": cty });
        async move {
            Ok::<String, anyhow::Error>(peer("encrypt", input).await?["jwe"].as_str().unwrap_or_default().to_owned())
        }
    };
    let (submission, case, attachments) = announced(&app, &sender, 1).await?;
    let document: Vec<u8> = (0..1_500_000u32).map(|i| (i % 253) as u8).collect();
    let attachment_jwe = encrypt_with_jose(document.clone(), "application/pdf").await?;
    let response = upload(&app, &sender, &submission, &attachments[0], attachment_jwe.clone()).await;
    assert_eq!(response.status(), 204, "{}", response.text().await?);
    let metadata = json!({ "contentStructure": { "attachments": [{ "attachmentId": attachments[0], "purpose": "attachment", "mimeType": "application/pdf" }] } });
    let metadata_jwe = encrypt_with_jose(metadata.to_string().into_bytes(), "application/json").await?;
    let response = submit(&app, &sender, &submission, json!({ "encryptedMetadata": metadata_jwe })).await;
    assert_eq!(response.status(), 202, "{}", response.text().await?);

    // pforte's SETs verify with jose against pforte's JWKS, and carry the tags jose produced.
    let jwks = get_json(&app, "/.well-known/jwks.json", None).await?;
    let log = event_log(&app, &sender, &case).await?;
    assert_eq!(log.len(), 2);
    let mut verified = Vec::new();
    for set in &log {
        let input = json!({ "jwks": jwks, "set": set, "issuer": app.address });
        verified.push(peer("verify-set", input).await?["payload"].clone());
    }
    let tags = &verified[1]["events"][format!("{EVENTS}submit-submission")]["authenticationTags"];
    assert_eq!(tags["metadata"].as_str(), metadata_jwe.rsplit('.').next());
    assert_eq!(tags["attachments"][&attachments[0]].as_str(), attachment_jwe.rsplit('.').next());

    // The subscriber decrypts what pforte hands out with jose.
    let fetched = get_json(&app, &format!("/v1/submissions/{submission}"), Some(&subscriber)).await?;
    let input = json!({ "pkcs8": pkcs8(&k.encryption)?, "jwe": fetched["encryptedMetadata"] });
    let opened = peer("decrypt", input).await?;
    assert_eq!(
        serde_json::from_slice::<Value>(&STANDARD.decode(opened["plaintext"].as_str().unwrap_or_default())?)?,
        metadata
    );
    assert_eq!(opened["header"]["kid"], "enc-1");
    let download = app
        .client
        .get(app.url(&format!("/v1/submissions/{submission}/attachments/{}", attachments[0])))
        .bearer_auth(&subscriber)
        .send()
        .await?
        .text()
        .await?;
    let opened = peer("decrypt", json!({ "pkcs8": pkcs8(&k.encryption)?, "jwe": download })).await?;
    assert_eq!(STANDARD.decode(opened["plaintext"].as_str().unwrap_or_default())?, document);

    // Its acceptance, signed with jose: a SET signed with a key the destination does not list is
    // refused, its own is taken.
    let claims = json!({
        "jti": uuid::Uuid::new_v4().to_string(),
        "iss": DESTINATION,
        "iat": chrono::Utc::now().timestamp(),
        "sub": format!("submission:{submission}"),
        "txn": format!("case:{case}"),
        "events": { format!("{EVENTS}accept-submission"): {} },
    });
    let forged = peer("sign-set", json!({ "pkcs8": pkcs8(&k.forger)?, "kid": "sig-1", "claims": claims })).await?;
    let forged = forged["set"].as_str().unwrap_or_default().to_owned();
    assert_eq!(refused(post_event(&app, &subscriber, &case, &forged).await, 422).await?, "transfer_invalid_event");
    let accept = peer("sign-set", json!({ "pkcs8": pkcs8(&k.signing)?, "kid": "sig-1", "claims": claims })).await?;
    let accept = accept["set"].as_str().unwrap_or_default().to_owned();
    let response = post_event(&app, &subscriber, &case, &accept).await;
    assert_eq!(response.status(), 204, "{}", response.text().await?);
    assert_eq!(event_log(&app, &sender, &case).await?.last(), Some(&accept));
    Ok(())
}
sqlite_test!(a_sender_and_a_subscriber_written_with_jose_complete_a_submission, only_if = jose_installed);

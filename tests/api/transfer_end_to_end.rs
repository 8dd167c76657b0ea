//! Issue 15's "done when", through the real binary (`pforte serve` as a process) on both databases:
//! a person logs in at the required level and pays the fee; the online service announces with the
//! payment, gets pforte's login and payment evidence, builds metadata 1.0.0 around it, encrypts
//! metadata, data and an attachment to the Fachverfahren's key and submits; the Fachverfahren
//! (this test, with OpenSSL primitives, not pforte's JOSE code) is called back, fetches, decrypts,
//! checks the SHA-512 hashes, the authentication tags and both statements against pforte's JWKS, and
//! accepts; the online service reads `accept-submission` in the event log. Then pforte's database
//! and its log are searched for the application's plaintext: it is in neither.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::{Digest, Sha512};

use crate::helpers::{eventually, free_port, Pforte, TestContext, TestResult, MANIFEST_DIR};
use crate::login::{location, Browser};
use crate::oidc::{CHALLENGE, VERIFIER};
use crate::transfer_support::*;

const SUBSTANTIAL: &str = "http://eidas.europa.eu/LoA/substantial";
/// The authority of the destination; the demo service's payments for it go to simulator B.
const TENANT: &str = "03241001";

/// The Fachverfahren's callback endpoint: checks `Callback-Authentication` (HMAC-SHA512 over
/// `"{timestamp}.{body}"`) and keeps the bodies that verified.
#[derive(Clone, Default)]
struct CallbackInbox {
    received: Arc<Mutex<Vec<Value>>>,
}

impl CallbackInbox {
    async fn start(self) -> anyhow::Result<String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://127.0.0.1:{}/callbacks", listener.local_addr()?.port());
        let inbox = self.clone();
        let handler = move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let inbox = inbox.clone();
            async move {
                let header =
                    |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
                let (timestamp, signature) = (header("callback-timestamp"), header("callback-authentication"));
                let mut mac = Hmac::<Sha512>::new_from_slice(CALLBACK_SECRET.as_bytes()).expect("key");
                mac.update(timestamp.as_bytes());
                mac.update(b".");
                mac.update(&body);
                let fresh = timestamp.parse::<i64>().is_ok_and(|t| (chrono::Utc::now().timestamp() - t).abs() < 300);
                let valid = hex::decode(&signature).is_ok_and(|s| mac.verify_slice(&s).is_ok());
                if !(fresh && valid) {
                    return axum::http::StatusCode::UNAUTHORIZED;
                }
                inbox.received.lock().expect("inbox").push(serde_json::from_slice(&body).unwrap_or_default());
                axum::http::StatusCode::NO_CONTENT
            }
        };
        let router = axum::Router::new().route("/callbacks", axum::routing::post(handler));
        tokio::spawn(async move { axum::serve(listener, router).await });
        Ok(url)
    }

    fn submissions(&self) -> Vec<String> {
        let received = self.received.lock().expect("inbox");
        received
            .iter()
            .flat_map(|body| body["submissions"].as_array().cloned().unwrap_or_default())
            .filter_map(|s| s["submissionId"].as_str().map(str::to_owned))
            .collect()
    }
}

fn sha512_hex(bytes: &[u8]) -> String {
    hex::encode(Sha512::digest(bytes))
}

/// The online service's requests to pforte at `base`.
struct Service {
    http: reqwest::Client,
    base: String,
}

impl Service {
    async fn token(&self, client: &str, secret: &str, scope: &str) -> anyhow::Result<String> {
        let response = self
            .http
            .post(format!("{}/token", self.base))
            .basic_auth(client, Some(secret))
            .form(&[("grant_type", "client_credentials"), ("scope", scope)])
            .send()
            .await?;
        anyhow::ensure!(response.status() == 200, "token: {}", response.text().await?);
        Ok(response.json::<Value>().await?["access_token"].as_str().unwrap_or_default().to_owned())
    }

    async fn post_json(&self, token: &str, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
        let response = self.http.post(format!("{}{path}", self.base)).bearer_auth(token).json(body).send().await?;
        Ok((response.status().as_u16(), response.json().await.unwrap_or_default()))
    }

    async fn get_json(&self, token: &str, path: &str) -> anyhow::Result<Value> {
        let response = self.http.get(format!("{}{path}", self.base)).bearer_auth(token).send().await?;
        anyhow::ensure!(response.status() == 200, "GET {path}: {}", response.status());
        Ok(response.json().await?)
    }

    /// A person's login at the citizen account simulator, at the substantial level; the ID token.
    async fn login(&self) -> anyhow::Result<String> {
        let params: Vec<(String, String)> = [
            ("client_id", "demo".to_owned()),
            ("redirect_uri", format!("{}/demo/callback", self.base)),
            ("response_type", "code".to_owned()),
            ("scope", "openid".to_owned()),
            ("state", "e2e-state".to_owned()),
            ("nonce", "e2e-nonce".to_owned()),
            ("code_challenge", CHALLENGE.to_owned()),
            ("code_challenge_method", "S256".to_owned()),
            ("acr_values", SUBSTANTIAL.to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let answer = Browser::at(&self.base).login(&params, "bundid-sim", "erika", "STORK-QAA-Level-3").await;
        let target = url::Url::parse(&location(&answer))?;
        let code = target.query_pairs().find(|(k, _)| k == "code").map(|(_, v)| v.into_owned()).context("code")?;
        let redirect = format!("{}/demo/callback", self.base);
        let form = [
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &redirect),
            ("code_verifier", VERIFIER),
        ];
        let response = self
            .http
            .post(format!("{}/token", self.base))
            .basic_auth("demo", Some(DEMO_SECRET))
            .form(&form)
            .send()
            .await?;
        anyhow::ensure!(response.status() == 200, "code exchange: {}", response.text().await?);
        Ok(response.json::<Value>().await?["id_token"].as_str().context("id_token")?.to_owned())
    }

    /// The fee paid at the payment simulator: returns the transactionId once pforte reads it PAYED.
    async fn pay(&self) -> anyhow::Result<String> {
        let token = self.token("demo", DEMO_SECRET, "payment").await?;
        let body = json!({
            "requestId": format!("E2E-{}", uuid::Uuid::new_v4().simple()), "requestTimestamp": "2026-12-01T10:00:00+01:00",
            "currency": "EUR", "grosAmount": 12.50, "purpose": "Bauantrag Gebuehr",
            "redirectUrl": format!("{}/demo/bezahlt", self.base), "items": [{ "totalNetAmount": 12.50 }]
        });
        let (status, created) =
            self.post_json(&token, &format!("/paymenttransaction/demo-service/{TENANT}"), &body).await?;
        anyhow::ensure!(status == 201, "payment create: {created}");
        let id = created["paymentInformation"]["transactionId"].as_str().context("transactionId")?.to_owned();
        let pay_page = location(&self.http.get(format!("{}/pay/{id}", self.base)).send().await?);
        let paid = self.http.post(&pay_page).form(&[("method", "GIROPAY"), ("action", "pay")]).send().await?;
        self.http.get(location(&paid)).send().await?;
        let read = format!("/paymenttransaction/demo-service/{TENANT}/{id}");
        eventually(Duration::from_secs(20), "the payment is PAYED", || async {
            let answer = self.get_json(&token, &read).await?;
            Ok((answer["paymentInformation"]["status"] == "PAYED").then_some(()))
        })
        .await?;
        Ok(id)
    }
}

pub async fn a_person_logs_in_pays_and_the_application_reaches_the_fachverfahren_encrypted(
    ctx: TestContext,
) -> TestResult {
    let inbox = CallbackInbox::default();
    let callback = inbox.clone().start().await?;
    let clients = ctx.clients_with(&[("fachverfahren", client_file("fachverfahren", ""))]);
    let destinations = ctx.dir.path().join("destinations");
    std::fs::create_dir_all(&destinations)?;
    let destination = destination_file("active", "fachverfahren", Some(&callback)).replace(
        &format!("identifier = \"{SERVICE}\"\n"),
        &format!("identifier = \"{SERVICE}\"\nfee_required = true\n"),
    );
    std::fs::write(destinations.join(format!("{DESTINATION}.toml")), destination)?;
    let env = [
        ("PFORTE__TRANSFER__DESTINATIONS", destinations.display().to_string()),
        ("PFORTE__LOG__LEVEL", "debug".to_owned()),
    ];
    let pforte = Pforte::start(&ctx, free_port()?, &clients, "e2e", &env).await?;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    let service = Service { http: http.clone(), base: pforte.base.clone() };

    // The person: login at the required level, then the fee.
    let id_token = service.login().await?;
    let transaction = service.pay().await?;

    // The plaintext of the application; none of it may reach pforte.
    let marker = format!("Antrag-Klartext-{}", uuid::Uuid::new_v4().simple());
    let data = json!({ "bauvorhaben": "Carport", "notiz": marker }).to_string().into_bytes();
    let attachment_marker = format!("Bauplan-Klartext-{}", uuid::Uuid::new_v4().simple());
    let document = format!("%PDF-1.7\n{attachment_marker}\n").repeat(2000).into_bytes();
    let filename = format!("bauplan-{}.pdf", uuid::Uuid::new_v4().simple());

    // The online service: announce with the payment, evidence, metadata, encrypt, upload, submit.
    let sender = service.token("demo", DEMO_SECRET, "transfer").await?;
    let attachment = uuid::Uuid::new_v4().to_string();
    let announcement = json!({
        "destinationId": DESTINATION, "announcedAttachments": [attachment],
        "serviceType": { "name": "Bauantrag", "identifier": SERVICE }, "paymentTransactionId": transaction,
    });
    let (status, announced) = service.post_json(&sender, "/v1/submissions", &announcement).await?;
    anyhow::ensure!(status == 201, "announce: {announced}");
    let submission = announced["submissionId"].as_str().context("submissionId")?.to_owned();
    let case = announced["caseId"].as_str().context("caseId")?.to_owned();
    let evidence = json!({ "idToken": id_token, "submissionId": submission });
    let (status, report) = service.post_json(&sender, "/v1/evidence/authentication", &evidence).await?;
    anyhow::ensure!(status == 201, "identification report: {report}");
    let evidence = json!({ "transactionId": transaction, "submissionId": submission });
    let (status, payment) = service.post_json(&sender, "/v1/evidence/payment", &evidence).await?;
    anyhow::ensure!(status == 201, "payment evidence: {payment}");
    let metadata = json!({
        "contentStructure": {
            "data": { "hash": { "type": "sha512", "content": sha512_hex(&data) },
                      "submissionSchema": { "schemaUri": "https://schema.example.org/bauantrag.json", "mimeType": "application/json" } },
            "attachments": [{ "hash": { "type": "sha512", "content": sha512_hex(&document) }, "purpose": "attachment",
                              "mimeType": "application/pdf", "attachmentId": attachment, "filename": filename }],
        },
        "publicServiceType": { "name": "Bauantrag", "identifier": SERVICE },
        "authenticationInformation": [report],
        "paymentInformation": payment["paymentInformation"],
    });
    if let Some(schema) = crate::transfer_metadata::official_schema()? {
        crate::transfer_metadata::assert_valid(&schema, &metadata)?;
    }
    let k = keys();
    let (attachment_jwe, _) = encrypt(&k.encryption, "enc-1", "application/pdf", &document);
    let (metadata_jwe, _) = encrypt(&k.encryption, "enc-1", "application/json", metadata.to_string().as_bytes());
    let (data_jwe, _) = encrypt(&k.encryption, "enc-1", "application/json", &data);
    let uploaded = http
        .put(format!("{}/v1/submissions/{submission}/attachments/{attachment}", pforte.base))
        .bearer_auth(&sender)
        .header("content-type", "application/jose")
        .body(attachment_jwe)
        .send()
        .await?;
    anyhow::ensure!(uploaded.status() == 204, "upload: {}", uploaded.text().await?);
    let submitted = http
        .put(format!("{}/v1/submissions/{submission}", pforte.base))
        .bearer_auth(&sender)
        .json(&json!({ "encryptedMetadata": metadata_jwe, "encryptedData": data_jwe }))
        .send()
        .await?;
    anyhow::ensure!(submitted.status() == 202, "submit: {}", submitted.text().await?);

    // The Fachverfahren: called back, fetches, decrypts, verifies, accepts.
    eventually(Duration::from_secs(30), "the Fachverfahren is called back", || async {
        Ok(inbox.submissions().contains(&submission).then_some(()))
    })
    .await?;
    let fachverfahren = service.token("fachverfahren", "fachverfahren-secret", "transfer").await?;
    let fetched = service.get_json(&fachverfahren, &format!("/v1/submissions/{submission}")).await?;
    let received_metadata: Value =
        serde_json::from_slice(&decrypt(&k.encryption, fetched["encryptedMetadata"].as_str().unwrap_or_default())?)?;
    let received_data = decrypt(&k.encryption, fetched["encryptedData"].as_str().unwrap_or_default())?;
    let download = http
        .get(format!("{}/v1/submissions/{submission}/attachments/{attachment}", pforte.base))
        .bearer_auth(&fachverfahren)
        .send()
        .await?
        .text()
        .await?;
    let received_document = decrypt(&k.encryption, &download)?;
    let structure = &received_metadata["contentStructure"];
    assert_eq!(structure["data"]["hash"]["content"], sha512_hex(&received_data), "the data's hash");
    assert_eq!(structure["attachments"][0]["hash"]["content"], sha512_hex(&received_document), "the attachment's hash");
    assert_eq!(received_data, data);

    // The authentication tags pforte recorded at submit are those of what was decrypted.
    let log = event_log_at(&service, &fachverfahren, &case).await?;
    let submit_event = verify_pforte_jws(&http, &pforte.base, &log[1], "secevent+jwt").await?;
    let tags = &submit_event["events"][format!("{EVENTS}submit-submission")]["authenticationTags"];
    assert_eq!(
        tags["metadata"],
        fetched["encryptedMetadata"].as_str().and_then(|j| j.rsplit('.').next()).unwrap_or_default()
    );
    assert_eq!(tags["attachments"][&attachment], download.rsplit('.').next().unwrap_or_default());

    // pforte's evidence, as a Fachverfahren verifies it with pforte's JWKS.
    let login = received_metadata["authenticationInformation"][0]["content"].as_str().context("report")?;
    let login = verify_pforte_jws(&http, &pforte.base, login, "identification-report+jwt").await?;
    assert_eq!(login["iss"], pforte.base.as_str());
    assert_eq!(login["submission_id"], submission.as_str());
    assert_eq!(login["tenant"], TENANT);
    assert_eq!(login["idp"], "bundid-sim");
    assert_eq!(login["acr"], SUBSTANTIAL, "the level the person logged in at: {login}");
    for personal in ["name", "given_name", "family_name", "birthdate", "address", "email"] {
        assert!(login.get(personal).is_none(), "no {personal} in the identification report: {login}");
    }
    let paid = received_metadata["paymentInformation"]["pforteEvidence"].as_str().context("payment evidence")?;
    let paid = verify_pforte_jws(&http, &pforte.base, paid, "payment-evidence+jwt").await?;
    assert_eq!(paid["status"], "PAYED");
    assert_eq!(paid["amount"], "12.50");
    assert_eq!(paid["transaction_id"], transaction.as_str());
    assert_eq!(paid["submission_id"], submission.as_str());
    assert_eq!(paid["tenant"], TENANT);

    let accept = decision(&k.signing, "accept-submission", (DESTINATION, &submission, &case));
    let accepted = http
        .post(format!("{}/v1/cases/{case}/events", pforte.base))
        .bearer_auth(&fachverfahren)
        .header("content-type", "application/jose")
        .body(accept)
        .send()
        .await?;
    anyhow::ensure!(accepted.status() == 204, "accept: {}", accepted.text().await?);

    // The online service reads the decision.
    let log = event_log_at(&service, &sender, &case).await?;
    let last = claims(log.last().context("events")?);
    assert!(last["events"].get(format!("{EVENTS}accept-submission")).is_some(), "{last}");

    // pforte never held the plaintext: not in its database, not in its log.
    pforte.stop()?;
    let log_text = std::fs::read_to_string(ctx.dir.path().join("e2e.log"))?;
    let stored = database_text(&ctx.database_url).await?;
    for secret in [&marker, &attachment_marker, &filename] {
        assert!(!log_text.contains(secret.as_str()), "the log holds plaintext ({secret})");
        assert!(!stored.contains(secret.as_str()), "the database holds plaintext ({secret})");
        assert!(!stored.contains(&hex::encode(secret)), "the database holds plaintext as bytes ({secret})");
    }
    assert!(stored.contains(&submission), "the search reads the stored rows (the submission's id is there)");
    assert!(log_text.contains("/v1/submissions"), "the search reads the request log:\n{log_text}");
    Ok(())
}
backend_test!(a_person_logs_in_pays_and_the_application_reaches_the_fachverfahren_encrypted);

async fn event_log_at(service: &Service, token: &str, case: &str) -> anyhow::Result<Vec<String>> {
    let body = service.get_json(token, &format!("/v1/cases/{case}/events")).await?;
    Ok(body["eventLog"].as_array().into_iter().flatten().filter_map(|t| t.as_str().map(str::to_owned)).collect())
}

/// Everything the database holds, as text: SQLite's files byte for byte (lossy UTF-8), PostgreSQL's every row of every table cast to text (bytea shows as hex).
async fn database_text(url: &str) -> anyhow::Result<String> {
    if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
        let path = path.split('?').next().unwrap_or(path);
        let mut text = String::new();
        for suffix in ["", "-wal", "-shm", "-journal"] {
            if let Ok(bytes) = std::fs::read(format!("{path}{suffix}")) {
                text.push_str(&String::from_utf8_lossy(&bytes));
            }
        }
        anyhow::ensure!(!text.is_empty(), "no SQLite file at {path} ({MANIFEST_DIR})");
        return Ok(text);
    }
    use sqlx::{Connection, Row};
    let mut conn = sqlx::PgConnection::connect(url).await?;
    let tables: Vec<String> =
        sqlx::query("SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'")
            .fetch_all(&mut conn)
            .await?
            .iter()
            .map(|row| row.get::<String, _>(0))
            .collect();
    let mut text = String::new();
    for table in tables {
        let rows = sqlx::query(&format!("SELECT CAST(t AS TEXT) FROM \"{table}\" t")).fetch_all(&mut conn).await?;
        for row in rows {
            text.push_str(&row.get::<String, _>(0));
            text.push('\n');
        }
    }
    Ok(text)
}

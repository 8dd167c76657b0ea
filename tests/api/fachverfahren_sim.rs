//! The Fachverfahren simulator (`/dev/fachverfahren`) against the shipped development destinations:
//! it refuses forged and stale callbacks, and a submission a test sender encrypts to its published key
//! is called back, fetched, decrypted and checked by it, and accepted from its page, after which the
//! sender reads `accept-submission` in the event log. The sender's JOSE side is OpenSSL
//! (`transfer_support`), not the simulator's josekit.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use openssl::bn::BigNum;
use openssl::pkey::{PKey, Public};
use openssl::rsa::Rsa;
use serde_json::{json, Value};
use sha2::{Digest, Sha512};

use crate::demo_pay::{attribute_after, browser, log_in};
use crate::helpers::{eventually, TestApp, TestContext, TestResult, MANIFEST_DIR};
use crate::transfer_support::{claims, encrypt, event_log, submit, token, upload, EVENTS};

/// The development destination of Hannover (config/destinations).
pub const DEV_DESTINATION: &str = "d3e1f0a2-6c4b-4e8d-9f1a-0b2c3d4e5f60";
/// A service of the development destinations that costs no fee.
const FREE_SERVICE: &str = "urn:de:fim:leika:leistung:99000000000001";
const CALLBACKS: &str = "/dev/fachverfahren/callbacks";

/// The development destinations' callback secret, read from the shipped file.
fn callback_secret() -> anyhow::Result<String> {
    let text = std::fs::read_to_string(format!("{MANIFEST_DIR}/config/destinations/{DEV_DESTINATION}.toml"))?;
    let line = text.lines().find(|l| l.starts_with("secret = \"plain:")).ok_or_else(|| anyhow::anyhow!("no secret"))?;
    Ok(line.trim_start_matches("secret = \"plain:").trim_end_matches('"').to_owned())
}

async fn send_callback(app: &TestApp, secret: &str, timestamp: i64, body: &str) -> anyhow::Result<u16> {
    let signature = pforte::transfer::callback_signature(secret, timestamp, body);
    let response = app
        .client
        .post(app.url(CALLBACKS))
        .header("content-type", "application/json")
        .header("callback-timestamp", timestamp.to_string())
        .header("callback-authentication", signature)
        .body(body.to_owned())
        .send()
        .await?;
    Ok(response.status().as_u16())
}

pub async fn the_simulator_refuses_forged_and_stale_callbacks(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let secret = callback_secret()?;
    let body = json!({
        "type": "https://schema.fitko.de/fit-connect/submission-api/callbacks/new-submissions",
        "submissions": [{ "destinationId": DEV_DESTINATION, "submissionId": uuid::Uuid::new_v4().to_string(),
                          "caseId": uuid::Uuid::new_v4().to_string() }],
    })
    .to_string();
    let now = chrono::Utc::now().timestamp();
    let forger = "a-secret-that-is-not-the-destinations-callback-secret";
    assert_eq!(send_callback(&app, forger, now, &body).await?, 401, "signed with another secret");
    assert_eq!(send_callback(&app, &secret, now - 330, &body).await?, 401, "older than five minutes");
    assert_eq!(send_callback(&app, &secret, now + 330, &body).await?, 401, "from the future");
    let unsigned = app.client.post(app.url(CALLBACKS)).body(body.clone()).send().await?;
    assert_eq!(unsigned.status(), 401, "without the headers");
    // The control: the destination's secret and a fresh timestamp are taken.
    assert_eq!(send_callback(&app, &secret, now, &body).await?, 204);
    app.stop().await
}
backend_test!(the_simulator_refuses_forged_and_stale_callbacks);

/// The simulator's current encryption key as pforte publishes it for senders.
async fn published_key(app: &TestApp) -> anyhow::Result<(String, PKey<Public>)> {
    let destination: Value = app.get(&format!("/v1/destinations/{DEV_DESTINATION}")).await.json().await?;
    let kid = destination["encryptionKid"].as_str().unwrap_or_default().to_owned();
    let jwk: Value = app.get(&format!("/v1/destinations/{DEV_DESTINATION}/keys/{kid}")).await.json().await?;
    let number = |name: &str| -> anyhow::Result<BigNum> {
        Ok(BigNum::from_slice(&URL_SAFE_NO_PAD.decode(jwk[name].as_str().unwrap_or_default())?)?)
    };
    Ok((kid, PKey::from_rsa(Rsa::from_public_components(number("n")?, number("e")?)?)?))
}

fn sha512(bytes: &[u8]) -> Value {
    json!({ "type": "sha512", "content": hex::encode(Sha512::digest(bytes)) })
}

pub async fn a_test_senders_submission_is_fetched_decrypted_checked_and_accepted_by_the_simulator(
    ctx: TestContext,
) -> TestResult {
    let app = ctx.spawn_app().await;
    let sender = token(&app, "demo", "transfer").await?;
    let (kid, key) = published_key(&app).await?;
    let attachment_id = uuid::Uuid::new_v4().to_string();
    let announced = app
        .client
        .post(app.url("/v1/submissions"))
        .bearer_auth(&sender)
        .json(&json!({
            "destinationId": DEV_DESTINATION,
            "announcedAttachments": [attachment_id],
            "serviceType": { "name": "Auskunft", "identifier": FREE_SERVICE },
        }))
        .send()
        .await?;
    assert_eq!(announced.status(), 201);
    let announced: Value = announced.json().await?;
    let (submission, case) = (announced["submissionId"].as_str().unwrap(), announced["caseId"].as_str().unwrap());

    let data = br#"{"anliegen":"Auskunft","name":"Testsender"}"#;
    let attachment = b"Anlage des Testsenders";
    let metadata = json!({
        "contentStructure": {
            "data": { "hash": sha512(data), "submissionSchema": {
                "schemaUri": "https://schema.pforte.example/demo/auskunft-1.0.json", "mimeType": "application/json" } },
            "attachments": [{ "hash": sha512(attachment), "purpose": "attachment", "mimeType": "text/plain",
                              "attachmentId": attachment_id, "filename": "anlage.txt" }],
        },
        "publicServiceType": { "name": "Auskunft", "identifier": FREE_SERVICE },
    });
    let (attachment_jwe, _) = encrypt(&key, &kid, "text/plain", attachment);
    assert_eq!(upload(&app, &sender, submission, &attachment_id, attachment_jwe).await.status(), 204);
    let body = json!({
        "encryptedMetadata": encrypt(&key, &kid, "application/json", metadata.to_string().as_bytes()).0,
        "encryptedData": encrypt(&key, &kid, "application/json", data).0,
    });
    assert_eq!(submit(&app, &sender, submission, body).await.status(), 202);

    // pforte calls the simulator back; it fetches, decrypts and checks on its own.
    let page = eventually(Duration::from_secs(30), "the simulator shows the submission", || async {
        let page = app.get("/dev/fachverfahren").await.text().await?;
        Ok(page.contains(submission).then_some(page))
    })
    .await?;
    assert!(page.contains("Testsender") && page.contains("anlage.txt"), "the decrypted data: {page}");
    for check in [
        "Fachdaten: SHA-512 wie in contentStructure",
        "Anlage anlage.txt: SHA-512 wie in contentStructure",
        "Authentication-Tags wie im submit-submission-Ereignis",
    ] {
        assert!(page.contains(&format!("{check}</th><td>✓")), "{check} passed: {page}");
    }
    // Without pforte's login evidence the simulator says so; no fee is due for this service.
    assert!(page.contains("Anmeldenachweis von pforte</th><td>✗"), "{page}");
    assert!(page.contains("keine Gebühr für diese Leistung"), "{page}");

    let decided = app
        .client
        .post(app.url("/dev/fachverfahren/decide"))
        .form(&[("submission", submission), ("decision", "accept")])
        .send()
        .await?;
    assert_eq!(decided.status(), 303);
    let page = app.get("/dev/fachverfahren").await.text().await?;
    assert!(page.contains("Entscheidung an pforte gesendet: angenommen"), "{page}");
    let log = event_log(&app, &sender, case).await?;
    let last = claims(log.last().map(String::as_str).unwrap_or_default());
    assert!(last["events"].get(format!("{EVENTS}accept-submission")).is_some(), "{last}");
    assert_eq!(last["iss"], DEV_DESTINATION, "signed by the Fachverfahren, not by pforte");
    app.stop().await
}
backend_test!(a_test_senders_submission_is_fetched_decrypted_checked_and_accepted_by_the_simulator);

pub async fn a_decision_for_a_submission_the_simulator_never_received_is_refused(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let unknown = uuid::Uuid::new_v4().to_string();
    let response = app
        .client
        .post(app.url("/dev/fachverfahren/decide"))
        .form(&[("submission", unknown.as_str()), ("decision", "accept")])
        .send()
        .await?;
    assert_eq!(response.status(), 404);
    let response = app.client.post(app.url("/dev/fachverfahren/decide")).form(&[("decision", "maybe")]).send().await?;
    assert_eq!(response.status(), 400);
    app.stop().await
}
backend_test!(a_decision_for_a_submission_the_simulator_never_received_is_refused);

/// Logs in, pays Hannover's fee at simulator B and returns the paid payment's page.
async fn log_in_and_pay(app: &TestApp, browser: &reqwest::Client) -> anyhow::Result<String> {
    let logged_in = log_in(app, browser).await?;
    let key = attribute_after(&logged_in, "name=\"key\" value=\"").expect("the pay form's key");
    let pay_page = browser.post(app.url("/demo/pay")).form(&[("authority", "03241001"), ("key", &key)]).send().await?;
    let page_url = pay_page.url().clone();
    let back = browser.post(page_url).form(&[("method", "CREDITCARD"), ("action", "pay")]).send().await?;
    let html = back.text().await?;
    anyhow::ensure!(html.contains("<code>PAYED</code>"), "not paid: {html}");
    Ok(html)
}

pub async fn a_citizen_logs_in_pays_sends_the_application_and_sees_it_accepted_by_the_fachverfahren(
    ctx: TestContext,
) -> TestResult {
    let app = ctx.spawn_app().await;
    let browser = browser()?;
    let paid = log_in_and_pay(&app, &browser).await?;
    assert!(paid.contains("Antrag absenden"), "the next step once paid: {paid}");
    let order = attribute_after(&paid, "name=\"order\" value=\"").expect("the application form's order");

    let form = [("order", order.as_str()), ("family_name", "Gabler"), ("birth_date", "1964-08-12")];
    let sent = browser.post(app.url("/demo/antrag")).form(&form).send().await?;
    assert_eq!(sent.status(), 200);
    let status_url = sent.url().clone();
    assert!(status_url.as_str().starts_with(&app.url("/demo/antrag/status?id=")), "{status_url}");
    let status = sent.text().await?;
    assert!(status.contains("wartet auf das Fachverfahren") && status.contains("<code>submit-submission</code>"));
    let submission = attribute_after(&status, "(<code>submissionId</code>)</small></th><td><code>")
        .and_then(|rest| rest.split('<').next().map(str::to_owned))
        .expect("the submissionId on the page");

    // The simulator was called back and checked everything, the evidence included.
    let page = eventually(Duration::from_secs(30), "the simulator shows the application", || async {
        let page = app.get("/dev/fachverfahren").await.text().await?;
        Ok(page.contains(&submission).then_some(page))
    })
    .await?;
    assert!(!page.contains("nicht bestanden"), "every check passed: {page}");
    assert!(page.contains("Gabler") && page.contains("erklaerung.txt"), "the decrypted application: {page}");
    assert!(page.contains("<code>bundid-sim</code>") && page.contains("12.00 EUR"), "the verified evidence: {page}");

    let decided = app
        .client
        .post(app.url("/dev/fachverfahren/decide"))
        .form(&[("submission", submission.as_str()), ("decision", "accept")])
        .send()
        .await?;
    assert_eq!(decided.status(), 303);
    // The demo reads the event log anew on reload.
    let reloaded = browser.get(status_url).send().await?.text().await?;
    assert!(reloaded.contains("angenommen") && reloaded.contains("<code>accept-submission</code>"), "{reloaded}");

    // The same form again sends nothing new: the payment's application is shown.
    let again = browser.post(app.url("/demo/antrag")).form(&form).send().await?;
    assert!(again.text().await?.contains(&submission));
    app.stop().await
}
backend_test!(a_citizen_logs_in_pays_sends_the_application_and_sees_it_accepted_by_the_fachverfahren);

pub async fn the_application_step_needs_the_login_that_paid(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let paid = log_in_and_pay(&app, &browser()?).await?;
    let order = attribute_after(&paid, "name=\"order\" value=\"").expect("the application form's order");
    let form = [("order", order.as_str()), ("family_name", "Gabler"), ("birth_date", "1964-08-12")];
    // Another browser: no session at all.
    let stranger = browser()?.post(app.url("/demo/antrag")).form(&form).send().await?;
    assert_eq!(stranger.status(), 403);
    // Another citizen's login: the order is not theirs.
    let other = browser()?;
    log_in(&app, &other).await?;
    let response = other.post(app.url("/demo/antrag")).form(&form).send().await?;
    assert_eq!(response.status(), 404);
    app.stop().await
}
backend_test!(the_application_step_needs_the_login_that_paid);

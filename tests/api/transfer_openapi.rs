//! Contract tests of the Datentransfer API (issue 15 item 10): real responses of a running pforte,
//! validated against `openapi/transfer-api.yaml` as it serves it, with the checker of the payment
//! API's contract tests (`openapi::check_response`: the operation must document the status and media
//! type, the body must match the schema, JSON Schema 2020-12).

use std::collections::BTreeSet;

use anyhow::Context;
use serde_json::{json, Value};

use crate::helpers::{TestApp, TestContext, TestResult, MANIFEST_DIR};
use crate::openapi::check_response;
use crate::transfer_support::*;

const SUBMISSIONS: &str = "/v1/submissions";
const SUBMISSION: &str = "/v1/submissions/{submissionId}";
const ATTACHMENT: &str = "/v1/submissions/{submissionId}/attachments/{attachmentId}";
const EVENTS: &str = "/v1/cases/{caseId}/events";
const DESTINATION_PATH: &str = "/v1/destinations/{destinationId}";
const KEY: &str = "/v1/destinations/{destinationId}/keys/{keyId}";
const AUTHENTICATION: &str = "/v1/evidence/authentication";
const PAYMENT: &str = "/v1/evidence/payment";

/// Every Datentransfer route, as (method, path template, needs a token).
const SERVED: &[(&str, &str, bool)] = &[
    ("post", SUBMISSIONS, true),
    ("get", SUBMISSIONS, true),
    ("put", SUBMISSION, true),
    ("get", SUBMISSION, true),
    ("put", ATTACHMENT, true),
    ("get", ATTACHMENT, true),
    ("get", EVENTS, true),
    ("post", EVENTS, true),
    ("get", DESTINATION_PATH, false),
    ("get", KEY, false),
    ("post", AUTHENTICATION, true),
    ("post", PAYMENT, true),
];

/// Documented operations whose routes are being built; each moves to `SERVED` when it lands.
const DOCUMENTED_AHEAD: &[(&str, &str, bool)] = &[];

fn shipped_document() -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(format!("{MANIFEST_DIR}/openapi/transfer-api.yaml"))?;
    Ok(serde_yaml_ng::from_str(&text)?)
}

async fn served_document(app: &TestApp) -> anyhow::Result<Value> {
    let response = app.get("/openapi/transfer-api.json").await;
    anyhow::ensure!(response.status() == 200, "the document is served: {}", response.status());
    Ok(response.json().await?)
}

/// Checks a JSON response against the document and returns its body.
async fn check(document: &Value, method: &str, path: &str, response: reqwest::Response) -> anyhow::Result<Value> {
    let status = response.status().as_u16();
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body: Value = response.json().await.with_context(|| format!("{method} {path} {status}: a JSON body"))?;
    check_response(document, method, path, status, content_type.as_deref(), &body)?;
    Ok(body)
}

/// A response without a JSON body (204, or the JWE of a download): its status must be documented,
/// and a body's media type too.
async fn check_plain(
    document: &Value,
    method: &str,
    path: &str,
    response: reqwest::Response,
) -> anyhow::Result<String> {
    let status = response.status().as_u16();
    let operation = &document["paths"][path][method];
    let documented = &operation["responses"][status.to_string()];
    anyhow::ensure!(documented.is_object(), "{method} {path} does not document {status}");
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let text = response.text().await?;
    if let Some(content_type) = content_type.filter(|_| !text.is_empty()) {
        let essence = content_type.split(';').next().unwrap_or_default().trim().to_owned();
        let schema = &documented["content"][&essence]["schema"];
        anyhow::ensure!(schema.is_object(), "{method} {path} {status} answered {essence}, not documented");
        check_response(document, method, path, status, Some(&essence), &json!(text))?;
    }
    Ok(text)
}

pub async fn the_transfer_document_is_served_and_covers_exactly_the_routes(ctx: TestContext) -> TestResult {
    let app = start(&ctx, |f| f).await?;
    let document = served_document(&app).await?;
    assert_eq!(document, shipped_document()?, "JSON is the YAML converted");
    assert_eq!(document["openapi"], "3.1.0");
    let yaml = app.get("/openapi/transfer-api.yaml").await;
    assert_eq!(yaml.headers()["content-type"], "application/yaml");

    let documented = crate::openapi::documented_operations(&document);
    let listed: BTreeSet<(String, String)> =
        SERVED.iter().chain(DOCUMENTED_AHEAD).map(|(m, p, _)| (m.to_string(), p.to_string())).collect();
    assert_eq!(documented, listed, "the document covers exactly the served and the announced routes");

    // Each served route exists: without a token it asks for one (401), the public ones answer 404 for
    // an unknown id; either way as documented.
    let unknown = "00000000-0000-4000-8000-000000000000";
    for (method, template, needs_token) in SERVED {
        let path = template
            .replace("{submissionId}", unknown)
            .replace("{attachmentId}", unknown)
            .replace("{caseId}", unknown)
            .replace("{destinationId}", unknown)
            .replace("{keyId}", "enc-1");
        let request = app.client.request(method.to_uppercase().parse()?, app.url(&path));
        let response = request.header("content-type", "application/json").body("{}").send().await?;
        let expected = if *needs_token { 401 } else { 404 };
        assert_eq!(response.status(), expected, "{method} {path}");
        check(&document, method, template, response).await?;
    }
    let home = app.get("/").await.text().await?;
    assert!(home.contains("href=\"/openapi/transfer-api.json\""), "the start page lists the document");
    app.stop().await
}
backend_test!(the_transfer_document_is_served_and_covers_exactly_the_routes);

/// A whole submission, sender and subscriber, every answer against the document.
pub async fn a_submission_from_announce_to_accept_matches_the_document(ctx: TestContext) -> TestResult {
    let app = start(&ctx, |f| f).await?;
    let document = served_document(&app).await?;
    let k = keys();
    let sender = token(&app, "demo", "transfer").await?;
    let subscriber = token(&app, "fachverfahren", "transfer").await?;

    let destination =
        check(&document, "get", DESTINATION_PATH, app.get(&format!("/v1/destinations/{DESTINATION}")).await).await?;
    let kid = destination["encryptionKid"].as_str().context("encryptionKid")?.to_owned();
    check(&document, "get", KEY, app.get(&format!("/v1/destinations/{DESTINATION}/keys/{kid}")).await).await?;

    let attachment = uuid::Uuid::new_v4().to_string();
    let announcement = json!({
        "destinationId": DESTINATION,
        "announcedAttachments": [attachment],
        "serviceType": { "name": "Bauantrag", "identifier": SERVICE },
    });
    let response = app.client.post(app.url(SUBMISSIONS)).bearer_auth(&sender).json(&announcement).send().await?;
    assert_eq!(response.status(), 201);
    let announced = check(&document, "post", SUBMISSIONS, response).await?;
    let submission = announced["submissionId"].as_str().context("submissionId")?.to_owned();
    let case = announced["caseId"].as_str().context("caseId")?.to_owned();

    let (jwe, _) = encrypt(&k.encryption, &kid, "application/pdf", b"%PDF-1.7 Bauplan");
    check_plain(&document, "put", ATTACHMENT, upload(&app, &sender, &submission, &attachment, jwe.clone()).await)
        .await?;
    let (metadata, _) = encrypt(&k.encryption, &kid, "application/json", br#"{"contentStructure":{}}"#);
    let submitted = submit(&app, &sender, &submission, json!({ "encryptedMetadata": metadata })).await;
    assert_eq!(submitted.status(), 202);
    check(&document, "put", SUBMISSION, submitted).await?;

    let list_url = app.url(&format!("/v1/submissions?destinationId={DESTINATION}"));
    let listed =
        check(&document, "get", SUBMISSIONS, app.client.get(&list_url).bearer_auth(&subscriber).send().await?).await?;
    assert_eq!(listed["totalCount"], 1);
    let fetch_url = app.url(&format!("/v1/submissions/{submission}"));
    let fetched =
        check(&document, "get", SUBMISSION, app.client.get(&fetch_url).bearer_auth(&subscriber).send().await?).await?;
    assert_eq!(fetched["encryptedMetadata"], metadata);
    let download_url = app.url(&format!("/v1/submissions/{submission}/attachments/{attachment}"));
    let downloaded = app.client.get(&download_url).bearer_auth(&subscriber).send().await?;
    assert_eq!(check_plain(&document, "get", ATTACHMENT, downloaded).await?, jwe);

    let accept = decision(&k.signing, "accept-submission", (DESTINATION, &submission, &case));
    check_plain(&document, "post", EVENTS, post_event(&app, &subscriber, &case, &accept).await).await?;
    let events_url = app.url(&format!("/v1/cases/{case}/events"));
    let log = check(&document, "get", EVENTS, app.client.get(&events_url).bearer_auth(&sender).send().await?).await?;
    assert_eq!(log["totalCount"], 3, "create, submit, accept: {log}");
    app.stop().await
}
backend_test!(a_submission_from_announce_to_accept_matches_the_document);

/// Announces one attachment to [`DESTINATION`] and returns (submission, case, attachment).
async fn announced_ids(app: &TestApp, sender: &str) -> anyhow::Result<(String, String, String)> {
    let (submission, case, ids) = announced(app, sender, 1).await?;
    Ok((submission, case, ids.into_iter().next().context("one attachment")?))
}

/// One refusal of each kind the document names, each as documented.
pub async fn refusals_match_the_document(ctx: TestContext) -> TestResult {
    let app = start(&ctx, |f| f).await?;
    let document = served_document(&app).await?;
    let k = keys();
    let sender = token(&app, "demo", "transfer").await?;
    let other_sender = token(&app, "other-service", "transfer").await?;
    let other_subscriber = token(&app, "fachverfahren-2", "transfer").await?;

    let code = |body: &Value| body["code"].as_str().unwrap_or_default().to_owned();
    let bad = app
        .client
        .post(app.url(SUBMISSIONS))
        .bearer_auth(&sender)
        .json(&json!({ "destinationId": "x" }))
        .send()
        .await?;
    assert_eq!(code(&check(&document, "post", SUBMISSIONS, bad).await?), "bad_request");
    let forbidden = announce(&app, &other_sender, DESTINATION, 0).await?;
    assert_eq!(code(&check(&document, "post", SUBMISSIONS, forbidden).await?), "forbidden");
    let inactive = announce(&app, &sender, INACTIVE_DESTINATION, 0).await?;
    assert_eq!(code(&check(&document, "post", SUBMISSIONS, inactive).await?), "transfer_destination_refuses");
    let text = app
        .client
        .post(app.url(SUBMISSIONS))
        .bearer_auth(&sender)
        .body("x")
        .header("content-type", "text/plain")
        .send()
        .await?;
    assert_eq!(code(&check(&document, "post", SUBMISSIONS, text).await?), "unsupported_media_type");

    let (submission, case, attachment) = announced_ids(&app, &sender).await?;
    let not_jwe = upload(&app, &sender, &submission, &attachment, "not.a.jwe".into()).await;
    assert_eq!(code(&check(&document, "put", ATTACHMENT, not_jwe).await?), "transfer_not_a_jwe");
    let (unknown_key, _) = encrypt(&k.forger, "enc-9", "application/pdf", b"document");
    let wrong_kid = upload(&app, &sender, &submission, &attachment, unknown_key).await;
    assert_eq!(code(&check(&document, "put", ATTACHMENT, wrong_kid).await?), "transfer_unknown_key");
    let (jwe, _) = encrypt(&k.encryption, "enc-1", "application/pdf", b"document");
    let stranger = uuid::Uuid::new_v4().to_string();
    let unannounced = upload(&app, &sender, &submission, &stranger, jwe.clone()).await;
    assert_eq!(code(&check(&document, "put", ATTACHMENT, unannounced).await?), "transfer_attachment_not_announced");
    let (metadata, _) = encrypt(&k.encryption, "enc-1", "application/json", b"{}");
    let missing = submit(&app, &sender, &submission, json!({ "encryptedMetadata": metadata })).await;
    assert_eq!(code(&check(&document, "put", SUBMISSION, missing).await?), "transfer_attachments_missing");

    assert_eq!(upload(&app, &sender, &submission, &attachment, jwe).await.status(), 204);
    assert_eq!(submit(&app, &sender, &submission, json!({ "encryptedMetadata": metadata })).await.status(), 202);
    let twice = submit(&app, &sender, &submission, json!({ "encryptedMetadata": metadata })).await;
    assert_eq!(code(&check(&document, "put", SUBMISSION, twice).await?), "transfer_invalid_transition");

    let fetch_url = app.url(&format!("/v1/submissions/{submission}"));
    let not_theirs = app.client.get(&fetch_url).bearer_auth(&other_subscriber).send().await?;
    assert_eq!(code(&check(&document, "get", SUBMISSION, not_theirs).await?), "forbidden");
    let forged = decision(&k.forger, "accept-submission", (DESTINATION, &submission, &case));
    let subscriber = token(&app, "fachverfahren", "transfer").await?;
    let invalid = post_event(&app, &subscriber, &case, &forged).await;
    assert_eq!(code(&check(&document, "post", EVENTS, invalid).await?), "transfer_invalid_event");
    app.stop().await
}
backend_test!(refusals_match_the_document);

pub async fn the_transfer_document_is_well_formed_and_its_checker_can_fail() -> TestResult {
    let document = shipped_document()?;
    let operations = crate::openapi::operations_are_well_formed(&document)?;
    assert_eq!(operations, SERVED.len() + DOCUMENTED_AHEAD.len());
    let ids = json!({ "destinationId": DESTINATION, "submissionId": DESTINATION, "caseId": DESTINATION });
    let json_type = Some("application/json");
    check_response(&document, "post", SUBMISSIONS, 201, json_type, &ids).context("the well-formed control")?;
    let mut upper = ids.clone();
    upper["caseId"] = json!(DESTINATION.to_uppercase());
    assert!(check_response(&document, "post", SUBMISSIONS, 201, json_type, &upper).is_err(), "ids in upper case");
    let mut extra = ids.clone();
    extra["secret"] = json!("x");
    assert!(check_response(&document, "post", SUBMISSIONS, 201, json_type, &extra).is_err(), "an unknown member");
    let problem = json!({ "type": "urn:pforte:problem:transfer_not_a_jwe", "title": "t", "status": 422,
                          "detail": "d", "code": "transfer_not_a_jwe" });
    let problem_type = Some("application/problem+json");
    check_response(&document, "put", ATTACHMENT, 422, problem_type, &problem).context("the problem control")?;
    let mut other_code = problem.clone();
    other_code["code"] = json!("not_found");
    assert!(check_response(&document, "put", ATTACHMENT, 422, problem_type, &other_code).is_err(), "a 404's code");
    assert!(check_response(&document, "put", ATTACHMENT, 418, problem_type, &problem).is_err(), "undocumented status");
    Ok(())
}
plain_test!(the_transfer_document_is_well_formed_and_its_checker_can_fail);

/// pforte's extensions: both statements and their refusals, against the document.
pub async fn login_and_payment_evidence_match_the_document(ctx: TestContext) -> TestResult {
    use crate::transfer_evidence::{announced_paying, login, paid, start_fees};
    let app = start_fees(&ctx, std::sync::Arc::new(pforte::clock::SystemClock)).await?;
    let document = served_document(&app).await?;
    let sender = token(&app, "demo", "transfer").await?;
    let payments = token(&app, "demo", "payment").await?;
    let (id_token, _) = login(&app).await?;
    let transaction = paid(&app, &payments, "demo-service", "OA-EVIDENCE-1").await?;
    let (submission, _) = announced_paying(&app, &sender, DESTINATION, Some(&transaction)).await?;
    let ask = |path: &'static str, body: Value| {
        let request = app.client.post(app.url(path)).bearer_auth(&sender).json(&body);
        async move { request.send().await.expect("evidence") }
    };

    let report = ask(AUTHENTICATION, json!({ "idToken": id_token, "submissionId": submission })).await;
    assert_eq!(report.status(), 201);
    check(&document, "post", AUTHENTICATION, report).await?;
    let payment = ask(PAYMENT, json!({ "transactionId": transaction, "submissionId": submission })).await;
    assert_eq!(payment.status(), 201);
    let payment = check(&document, "post", PAYMENT, payment).await?;
    if let Some(schema) = crate::transfer_metadata::official_schema()? {
        let metadata =
            json!({ "contentStructure": { "attachments": [] }, "paymentInformation": payment["paymentInformation"] });
        crate::transfer_metadata::assert_valid(&schema, &metadata)?;
    }

    let forged = ask(AUTHENTICATION, json!({ "idToken": "a.b.c", "submissionId": submission })).await;
    assert_eq!(check(&document, "post", AUTHENTICATION, forged).await?["code"], "transfer_invalid_id_token");
    let unknown = ask(PAYMENT, json!({ "transactionId": "unknown", "submissionId": submission })).await;
    assert_eq!(check(&document, "post", PAYMENT, unknown).await?["code"], "transfer_payment_not_paid");
    let missing = announce(&app, &sender, DESTINATION, 0).await?;
    assert_eq!(check(&document, "post", SUBMISSIONS, missing).await?["code"], "transfer_payment_missing");
    app.stop().await
}
backend_test!(login_and_payment_evidence_match_the_document);

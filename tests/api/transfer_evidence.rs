//! Login and payment evidence for Datentransfer: a real login through the account simulator gives a
//! real ID token, a real payment through the pay simulator becomes PAYED, and pforte signs statements
//! about both that verify with its published JWKS. A destination's service may require a fee: the
//! announce names the payment (`paymentTransactionId`), and each bad input is refused with its code.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use pforte::clock::{ManualClock, SharedClock, SystemClock};
use serde_json::{json, Value};

use crate::helpers::{TestApp, TestContext, TestResult};
use crate::login::{citizen_request, code_from, redeem, Browser};
use crate::oidc::VERIFIER;
use crate::payment_api::{bearer, body as payment_body, location};
use crate::payment_surface::{paid_payment, post};
use crate::transfer_support::*;

/// The authority of [`DESTINATION`] (its service requires a fee here) and [`OTHER_DESTINATION`]
/// (no fee).
const AUTHORITY: &str = "03241001";
const AUTHENTICATION: &str = "/v1/evidence/authentication";
const PAYMENT: &str = "/v1/evidence/payment";

/// A second online service of the same authority, with its own originator for payments.
fn second_service() -> String {
    client_file("second-service", &format!("\"{AUTHORITY}\""))
        .replace("tenants = [", "originator_id = \"second-service\"\ntenants = [")
}

async fn start_fees(ctx: &TestContext, clock: SharedClock) -> anyhow::Result<TestApp> {
    let clients = ctx.clients_with(&[
        ("fachverfahren", client_file("fachverfahren", "")),
        ("fachverfahren-2", client_file("fachverfahren-2", "")),
        ("second-service", second_service()),
    ]);
    let destinations = ctx.dir.path().join("destinations");
    std::fs::create_dir_all(&destinations)?;
    let fee = destination_file("active", "fachverfahren", None)
        .replace("regions = [\"DE03241001\"]\n", "regions = [\"DE03241001\"]\nfee_required = true\n");
    anyhow::ensure!(fee.contains("fee_required = true"), "the fee was not added");
    std::fs::write(destinations.join(format!("{DESTINATION}.toml")), fee)?;
    let free = destination_file("active", "fachverfahren-2", None);
    std::fs::write(destinations.join(format!("{OTHER_DESTINATION}.toml")), free)?;
    Ok(ctx
        .spawn_app_with(
            |f| f.merge(("registry.clients", clients)).merge(("transfer.destinations", destinations)),
            clock,
        )
        .await)
}

/// A real login of the persona `erika` through the account simulator: the demo service's ID token
/// and its claims (name, birth date and address released, so the test can look for them).
async fn login(app: &TestApp) -> anyhow::Result<(String, Value)> {
    let mut browser = Browser::new(app);
    let params = citizen_request(app, "openid profile birth address", "http://eidas.europa.eu/LoA/substantial");
    let answer = browser.login(&params, "bundid-sim", "erika", "STORK-QAA-Level-3").await;
    let code = code_from(&answer, app).await.get("code").cloned().unwrap_or_default();
    let tokens: Value = redeem(app, &code, VERIFIER).await.json().await?;
    let id_token = tokens["id_token"].as_str().unwrap_or_default().to_owned();
    Ok((id_token.clone(), claims(&id_token)))
}

/// A payment of 12.00 by `originator` for `endpoint`, paid through the pay simulator: its id.
async fn paid(app: &TestApp, token: &str, originator: &str, request_id: &str) -> anyhow::Result<String> {
    let id = open(app, token, originator, request_id).await?;
    let pay_page = location(&app.client.get(app.url(&format!("/pay/{id}"))).send().await?);
    app.client.post(&pay_page).form(&[("method", "CREDITCARD"), ("action", "pay")]).send().await?;
    app.client.get(app.url(&format!("/pay/{id}/return"))).send().await?;
    let status = app.state.db.payment(&id).await?.map(|p| p.status.as_str());
    anyhow::ensure!(status == Some("PAYED"), "not paid: {status:?}");
    Ok(id)
}

/// An access token of a test client for the payment API (no scope).
async fn payment_token(app: &TestApp, client: &str) -> anyhow::Result<String> {
    let form = [("grant_type", "client_credentials")];
    let request = app.client.post(app.url("/token")).basic_auth(client, Some(format!("{client}-secret"))).form(&form);
    let tokens: Value = request.send().await?.json().await?;
    Ok(tokens["access_token"].as_str().unwrap_or_default().to_owned())
}

async fn open(app: &TestApp, token: &str, originator: &str, request_id: &str) -> anyhow::Result<String> {
    let path = format!("/paymenttransaction/{originator}/{AUTHORITY}");
    let mut body = payment_body(app, request_id);
    if originator != "demo-service" {
        // Back to the service's own registered origin (client_file's redirect URI).
        body["redirectUrl"] = json!(format!("https://{originator}.example.org/cb"));
    }
    let created = post(app, token, &path, &body.to_string(), None).await?;
    anyhow::ensure!(created.status() == 201, "create: {}", created.text().await?);
    let created: Value = created.json().await?;
    Ok(created["paymentInformation"]["transactionId"].as_str().unwrap_or_default().to_owned())
}

async fn announce_paying(app: &TestApp, token: &str, destination: &str, payment: Option<&str>) -> reqwest::Response {
    let mut body = json!({
        "destinationId": destination,
        "serviceType": { "name": "Bauantrag", "identifier": SERVICE },
    });
    if let Some(payment) = payment {
        body["paymentTransactionId"] = json!(payment);
    }
    app.client.post(app.url("/v1/submissions")).bearer_auth(token).json(&body).send().await.expect("announce")
}

/// Announces and returns (submissionId, caseId).
async fn announced_paying(
    app: &TestApp,
    token: &str,
    destination: &str,
    payment: Option<&str>,
) -> anyhow::Result<(String, String)> {
    let response = announce_paying(app, token, destination, payment).await;
    anyhow::ensure!(response.status() == 201, "announce: {}", response.text().await?);
    let body: Value = response.json().await?;
    Ok((body["submissionId"].as_str().unwrap_or_default().into(), body["caseId"].as_str().unwrap_or_default().into()))
}

async fn ask(app: &TestApp, token: &str, path: &str, body: Value) -> reqwest::Response {
    app.client.post(app.url(path)).bearer_auth(token).json(&body).send().await.expect("evidence")
}

fn metadata_submit(evidence: &[Value]) -> Value {
    let metadata = json!({ "authenticationInformation": [evidence[0]], "paymentInformation": evidence[1] });
    let (jwe, _) = encrypt(&keys().encryption, "enc-1", "application/json", metadata.to_string().as_bytes());
    json!({ "encryptedMetadata": jwe })
}

pub async fn login_and_payment_evidence_verify_with_pforte_jwks_and_the_finance_office_sees_the_submission(
    ctx: TestContext,
) -> TestResult {
    let app = start_fees(&ctx, Arc::new(SystemClock)).await?;
    let (id_token, id_claims) = login(&app).await?;
    let payments = bearer(&app).await?;
    let payment = paid(&app, &payments, "demo-service", "EVIDENCE-1").await?;
    let sender = token(&app, "demo", "transfer").await?;
    let (submission, case) = announced_paying(&app, &sender, DESTINATION, Some(&payment)).await?;

    let answer = ask(&app, &sender, AUTHENTICATION, json!({ "idToken": id_token, "submissionId": submission })).await;
    assert_eq!(answer.status(), 201);
    let report: Value = answer.json().await?;
    assert_eq!((report["type"].as_str(), report["version"].as_str()), (Some("identificationReport"), Some("1.0.0")));
    let login =
        verify_pforte_jws(&app, report["content"].as_str().unwrap_or_default(), "identification-report+jwt").await?;
    assert_eq!(login["iss"], app.address);
    assert_eq!(login["sub"], id_claims["sub"], "the pairwise pseudonym the service has");
    assert_eq!(login["acr"], "http://eidas.europa.eu/LoA/substantial");
    assert_eq!(login["idp"], "bundid-sim");
    assert_eq!((login["tenant"].as_str(), login["client_id"].as_str()), (Some(AUTHORITY), Some("demo")));
    assert_eq!((login["submission_id"].as_str(), login["case_id"].as_str()), (Some(&*submission), Some(&*case)));
    assert_eq!(login["destination_id"], DESTINATION);
    assert!(login["auth_time"].as_i64().is_some() && login["jti"].is_string() && login["iat"].is_i64(), "{login}");

    let answer = ask(&app, &sender, PAYMENT, json!({ "transactionId": payment, "submissionId": submission })).await;
    assert_eq!(answer.status(), 201);
    let info: Value = answer.json().await?;
    let info = &info["paymentInformation"];
    assert_eq!((info["paymentMethod"].as_str(), info["status"].as_str()), (Some("OTHER"), Some("BOOKED")));
    assert_eq!(info["transactionId"], payment.as_str());
    assert!(info["transactionTimestamp"].as_str().is_some_and(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok()));
    let paid =
        verify_pforte_jws(&app, info["pforteEvidence"].as_str().unwrap_or_default(), "payment-evidence+jwt").await?;
    assert_eq!((paid["amount"].as_str(), paid["currency"].as_str()), (Some("12.00"), Some("EUR")));
    assert_eq!((paid["status"].as_str(), paid["tenant"].as_str()), (Some("PAYED"), Some(AUTHORITY)));
    assert_eq!((paid["transaction_id"].as_str(), paid["client_id"].as_str()), (Some(&*payment), Some("demo")));
    assert_eq!(paid["transaction_reference"], info["transactionReference"]);
    assert_eq!((paid["submission_id"].as_str(), paid["case_id"].as_str()), (Some(&*submission), Some(&*case)));

    // Neither statement carries the persona's name, birth date or address.
    for released in ["given_name", "family_name", "birthdate", "address"] {
        let value = &id_claims[released];
        assert!(!value.is_null(), "the ID token releases {released}, so the check below means something");
        let needles: Vec<String> = match value {
            Value::Object(parts) => parts.values().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
            other => vec![other.as_str().unwrap_or_default().to_owned()],
        };
        for statement in [&login, &paid] {
            for needle in needles.iter().filter(|n| n.len() > 2) {
                assert!(!statement.to_string().contains(needle.as_str()), "{released} in {statement}");
            }
        }
    }

    let response = submit(&app, &sender, &submission, metadata_submit(&[report, info.clone()])).await;
    assert_eq!(response.status(), 202, "{}", response.text().await?);

    // The finance office's reconciliation names the submission the payment paid for.
    let finance = crate::finance::finance_token(&ctx, AUTHORITY)?;
    let today = chrono::NaiveDate::parse_from_str(&crate::reconciliation::berlin_today(), "%Y-%m-%d")?;
    let period = format!("from={}&to={}", today.pred_opt().unwrap_or(today), today.succ_opt().unwrap_or(today));
    let path = format!("/finance/{AUTHORITY}/reconciliation?{period}");
    let report: Value = app.client.get(app.url(&path)).bearer_auth(&finance).send().await?.json().await?;
    let finding = report["findings"].as_array().into_iter().flatten().find(|f| f["subject"] == payment.as_str());
    assert_eq!(finding.map(|f| f["pforte"]["submission_id"].clone()), Some(json!(submission)), "{report}");
    let csv = app.client.get(app.url(&format!("{path}&format=csv"))).bearer_auth(&finance).send().await?;
    assert!(csv.text().await?.contains(&format!("submission {submission}")));
    app.stop().await
}
backend_test!(login_and_payment_evidence_verify_with_pforte_jwks_and_the_finance_office_sees_the_submission);

pub async fn login_evidence_refuses_another_clients_forged_or_stale_id_token_and_another_clients_submission(
    ctx: TestContext,
) -> TestResult {
    let clock = ManualClock::at_millis(chrono::Utc::now().timestamp_millis());
    let app = start_fees(&ctx, Arc::new(clock.clone())).await?;
    let (id_token, _) = login(&app).await?;
    let sender = token(&app, "demo", "transfer").await?;
    let second = token(&app, "second-service", "transfer").await?;
    let (submission, _) = announced_paying(&app, &sender, OTHER_DESTINATION, None).await?;
    let (foreign, _) = announced_paying(&app, &second, OTHER_DESTINATION, None).await?;
    let body = |token: &str, submission: &str| json!({ "idToken": token, "submissionId": submission });

    // The demo service's ID token in another client's hands.
    let answer = ask(&app, &second, AUTHENTICATION, body(&id_token, &foreign)).await;
    assert_eq!(refused(answer, 422).await?, "transfer_invalid_id_token");
    // A forged signature: the claims as issued, the signature of other claims.
    let (other_token, _) = login(&app).await?;
    let parts: Vec<&str> = id_token.split('.').collect();
    let forged = format!("{}.{}.{}", parts[0], parts[1], other_token.split('.').nth(2).unwrap_or_default());
    let answer = ask(&app, &sender, AUTHENTICATION, body(&forged, &submission)).await;
    assert_eq!(refused(answer, 422).await?, "transfer_invalid_id_token");
    // Claims changed under the signature.
    let mut claims = claims(&id_token);
    claims["acr"] = json!("http://eidas.europa.eu/LoA/high");
    let altered = format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(claims.to_string()), parts[2]);
    let answer = ask(&app, &sender, AUTHENTICATION, body(&altered, &submission)).await;
    assert_eq!(refused(answer, 422).await?, "transfer_invalid_id_token");
    // Another client's submission.
    let answer = ask(&app, &sender, AUTHENTICATION, body(&id_token, &foreign)).await;
    assert_eq!(refused(answer, 403).await?, "forbidden");
    // Still fine after its five minutes: the ID token's expiry is not what counts, the login's age is.
    clock.advance_secs(600);
    let sender = token(&app, "demo", "transfer").await?;
    let answer = ask(&app, &sender, AUTHENTICATION, body(&id_token, &submission)).await;
    assert_eq!(answer.status(), 201, "{}", answer.text().await?);
    // A login older than transfer.evidence_max_login_age_secs (one day).
    clock.advance_secs(86_400);
    let sender = token(&app, "demo", "transfer").await?;
    let answer = ask(&app, &sender, AUTHENTICATION, body(&id_token, &submission)).await;
    assert_eq!(refused(answer, 422).await?, "transfer_invalid_id_token");
    app.stop().await
}
backend_test!(login_evidence_refuses_another_clients_forged_or_stale_id_token_and_another_clients_submission);

pub async fn a_fee_is_refused_unless_paid_by_the_client_for_the_authority_and_unused(ctx: TestContext) -> TestResult {
    let app = start_fees(&ctx, Arc::new(SystemClock)).await?;
    let payments = bearer(&app).await?;
    let sender = token(&app, "demo", "transfer").await?;
    let second = token(&app, "second-service", "transfer").await?;
    let second_payments = payment_token(&app, "second-service").await?;

    let answer = announce_paying(&app, &sender, DESTINATION, None).await;
    assert_eq!(refused(answer, 422).await?, "transfer_payment_missing");
    let other_tenant = paid_payment(&app, &payments, "EVIDENCE-TENANT").await?;
    let answer = announce_paying(&app, &sender, DESTINATION, Some(&other_tenant)).await;
    assert_eq!(refused(answer, 422).await?, "transfer_payment_not_paid");
    let other_client = paid(&app, &second_payments, "second-service", "EVIDENCE-CLIENT").await?;
    let answer = announce_paying(&app, &sender, DESTINATION, Some(&other_client)).await;
    assert_eq!(refused(answer, 422).await?, "transfer_payment_not_paid");
    let unpaid = open(&app, &payments, "demo-service", "EVIDENCE-OPEN").await?;
    let answer = announce_paying(&app, &sender, DESTINATION, Some(&unpaid)).await;
    assert_eq!(refused(answer, 422).await?, "transfer_payment_not_paid");
    let answer = announce_paying(&app, &sender, DESTINATION, Some("no-such-payment")).await;
    assert_eq!(refused(answer, 422).await?, "transfer_payment_not_paid");

    // The payment evidence refuses the same, for a submission that needs no fee.
    let (free, _) = announced_paying(&app, &sender, OTHER_DESTINATION, None).await?;
    for refused_payment in [&other_tenant, &other_client, &unpaid] {
        let answer =
            ask(&app, &sender, PAYMENT, json!({ "transactionId": refused_payment, "submissionId": free })).await;
        assert_eq!(refused(answer, 422).await?, "transfer_payment_not_paid");
    }
    // The other client may not have evidence about the demo service's submission.
    let answer = ask(&app, &second, PAYMENT, json!({ "transactionId": other_client, "submissionId": free })).await;
    assert_eq!(refused(answer, 403).await?, "forbidden");

    // One payment, one submission: at the announce and at the evidence.
    let fee = paid(&app, &payments, "demo-service", "EVIDENCE-FEE").await?;
    let (first, _) = announced_paying(&app, &sender, DESTINATION, Some(&fee)).await?;
    let answer = announce_paying(&app, &sender, DESTINATION, Some(&fee)).await;
    assert_eq!(refused(answer, 422).await?, "transfer_payment_used");
    let answer = ask(&app, &sender, PAYMENT, json!({ "transactionId": fee, "submissionId": free })).await;
    assert_eq!(refused(answer, 422).await?, "transfer_payment_used");
    assert_eq!(app.state.db.transfer_submission_of_payment(&fee).await?, Some(first));
    app.stop().await
}
backend_test!(a_fee_is_refused_unless_paid_by_the_client_for_the_authority_and_unused);

pub async fn a_refund_between_announce_and_submit_fails_the_submit(ctx: TestContext) -> TestResult {
    let app = start_fees(&ctx, Arc::new(SystemClock)).await?;
    let payments = bearer(&app).await?;
    let sender = token(&app, "demo", "transfer").await?;
    let fee = paid(&app, &payments, "demo-service", "EVIDENCE-REFUND").await?;
    let (submission, _) = announced_paying(&app, &sender, DESTINATION, Some(&fee)).await?;
    let refund_path = format!("/paymenttransaction/demo-service/{AUTHORITY}/{fee}/refunds");
    let refund = post(&app, &payments, &refund_path, r#"{"amount": 2.5}"#, None).await?;
    assert_eq!(refund.status(), 201, "{}", refund.text().await?);

    let (jwe, _) = encrypt(&keys().encryption, "enc-1", "application/json", b"{}");
    let response = submit(&app, &sender, &submission, json!({ "encryptedMetadata": jwe })).await;
    assert_eq!(refused(response, 422).await?, "transfer_payment_not_paid");
    let answer = ask(&app, &sender, PAYMENT, json!({ "transactionId": fee, "submissionId": submission })).await;
    assert_eq!(refused(answer, 422).await?, "transfer_payment_not_paid");
    let stored = app.state.db.transfer_submission(&submission).await?.map(|s| s.status.as_str().to_owned());
    assert_eq!(stored.as_deref(), Some("announced"), "nothing was submitted");
    app.stop().await
}
backend_test!(a_refund_between_announce_and_submit_fails_the_submit);

pub async fn two_racing_announces_with_one_payment_leave_exactly_one_submission(ctx: TestContext) -> TestResult {
    let app = start_fees(&ctx, Arc::new(SystemClock)).await?;
    let payments = bearer(&app).await?;
    let sender = token(&app, "demo", "transfer").await?;
    let fee = paid(&app, &payments, "demo-service", "EVIDENCE-RACE").await?;
    let (a, b) = tokio::join!(
        announce_paying(&app, &sender, DESTINATION, Some(&fee)),
        announce_paying(&app, &sender, DESTINATION, Some(&fee))
    );
    let mut outcomes = Vec::new();
    for answer in [a, b] {
        let status = answer.status().as_u16();
        let body: Value = answer.json().await.unwrap_or_default();
        outcomes.push((status, body["code"].as_str().unwrap_or_default().to_owned()));
    }
    outcomes.sort();
    assert_eq!(outcomes, vec![(201, String::new()), (422, "transfer_payment_used".to_owned())]);

    // The database itself refuses a second submission with the payment, whatever passed the checks
    // before it: the unique index, on both backends.
    let bound = app.state.db.transfer_submission_of_payment(&fee).await?.unwrap_or_default();
    let mut row = app.state.db.transfer_submission(&bound).await?.ok_or_else(|| anyhow::anyhow!("no row"))?;
    row.submission_id = uuid::Uuid::new_v4().to_string();
    row.case_id = uuid::Uuid::new_v4().to_string();
    let event = pforte::store::transfer::EventRow {
        event_id: uuid::Uuid::new_v4().to_string(),
        case_id: row.case_id.clone(),
        submission_id: row.submission_id.clone(),
        event_type: "create-submission".into(),
        token: "not.a.set".into(),
        created_at: row.created_at,
    };
    let second = app.state.db.insert_transfer_submission(&row, &[], &event).await;
    assert!(second.as_ref().is_err_and(|e| e.is_unique_violation()), "{second:?}");
    app.stop().await
}
backend_test!(two_racing_announces_with_one_payment_leave_exactly_one_submission);

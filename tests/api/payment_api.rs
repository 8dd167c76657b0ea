//! The XBezahldienste payment API as an online service uses it: a fee paid through the simulator
//! pay page, routing per authority, and the standard's refusals.

use serde_json::{json, Value};

use crate::helpers::{TestApp, TestContext, TestResult};
use crate::oidc::DEMO_SECRET;

pub(crate) fn body(app: &TestApp, request_id: &str) -> Value {
    json!({
        "requestId": request_id, "requestTimestamp": "2026-11-29T10:00:00+01:00", "currency": "EUR",
        "grosAmount": 12.00, "purpose": "Geburtsurkunde 4711", "description": "Geburtsurkunde",
        "redirectUrl": app.url("/demo/bezahlt"),
        "items": [{ "id": "1", "quantity": 1, "singleNetAmount": 12.00, "totalNetAmount": 12.00, "totalTaxAmount": 0 }]
    })
}

pub(crate) async fn bearer(app: &TestApp) -> anyhow::Result<String> {
    let response = app
        .client
        .post(app.url("/token"))
        .basic_auth("demo", Some(DEMO_SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await?;
    let tokens: Value = response.json().await?;
    Ok(tokens["access_token"].as_str().unwrap_or_default().to_owned())
}

pub(crate) async fn create(
    app: &TestApp,
    token: &str,
    endpoint: &str,
    body: &Value,
    key: Option<&str>,
) -> anyhow::Result<reqwest::Response> {
    let mut request =
        app.client.post(app.url(&format!("/paymenttransaction/demo-service/{endpoint}"))).bearer_auth(token).json(body);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    Ok(request.send().await?)
}

pub(crate) fn location(response: &reqwest::Response) -> String {
    response.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

pub async fn a_citizen_pays_a_fee_and_the_service_reads_payed(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let token = bearer(&app).await?;
    let created = create(&app, &token, "09162000", &body(&app, "GEB-1"), None).await?;
    assert_eq!(created.status(), 201);
    let transaction: Value = created.json().await?;
    assert_eq!(transaction["paymentRequest"]["requestId"], "GEB-1");
    assert_eq!(transaction["paymentRequest"]["grosAmount"].to_string(), "12.00");
    let information = &transaction["paymentInformation"];
    assert_eq!(information["status"], "INITIAL");
    let id = information["transactionId"].as_str().unwrap_or_default().to_owned();
    assert_eq!(information["transactionRedirectUrl"], app.url(&format!("/pay/{id}")));

    // The citizen: pforte → the authority's provider (simulator A) → pay → back through pforte.
    let to_provider = app.client.get(app.url(&format!("/pay/{id}"))).send().await?;
    assert_eq!(to_provider.status(), 303);
    let pay_page = location(&to_provider);
    assert!(pay_page.starts_with(&app.url("/dev/pay/page/")), "{pay_page}");
    let paid = app.client.post(&pay_page).form(&[("method", "CREDITCARD"), ("action", "pay")]).send().await?;
    assert_eq!(location(&paid), app.url(&format!("/pay/{id}/return")));
    let back = app.client.get(location(&paid)).send().await?;
    assert_eq!(location(&back), app.url("/demo/bezahlt"), "on to the service's redirectUrl");

    let read = app
        .client
        .get(app.url(&format!("/paymenttransaction/demo-service/09162000/{id}")))
        .bearer_auth(&token)
        .send()
        .await?;
    assert_eq!(read.status(), 200);
    let read: Value = read.json().await?;
    assert_eq!(read["paymentInformation"]["status"], "PAYED");
    assert!(read["paymentInformation"].get("transactionRedirectUrl").is_none(), "no pay page once final");
    assert_eq!(app.state.db.notifications_of(&id).await?.len(), 1, "the service is notified");
    // Legacy clients authenticate with HTTP Basic.
    let basic = app
        .client
        .get(app.url(&format!("/paymenttransaction/demo-service/09162000/{id}")))
        .basic_auth("demo", Some(DEMO_SECRET))
        .send()
        .await?;
    assert_eq!(basic.status(), 200);
    app.stop().await
}
backend_test!(a_citizen_pays_a_fee_and_the_service_reads_payed);

pub async fn each_authority_is_routed_to_its_own_provider(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let token = bearer(&app).await?;
    for (endpoint, provider_path) in [("09162000", "/dev/pay/"), ("03241001", "/dev/pay-b/")] {
        let created: Value =
            create(&app, &token, endpoint, &body(&app, &format!("R-{endpoint}")), None).await?.json().await?;
        let id = created["paymentInformation"]["transactionId"].as_str().unwrap_or_default().to_owned();
        let to_provider = app.client.get(app.url(&format!("/pay/{id}"))).send().await?;
        assert!(location(&to_provider).starts_with(&app.url(provider_path)), "{endpoint}: {}", location(&to_provider));
    }
    app.stop().await
}
backend_test!(each_authority_is_routed_to_its_own_provider);

pub(crate) async fn assert_problem(response: reqwest::Response, status: u16, code: &str) -> TestResult {
    assert_eq!(response.status(), status);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    let body: Value = response.json().await?;
    assert_eq!(body["functionalCode"], code, "{body}");
    Ok(())
}

pub async fn the_standards_refusals_come_with_their_functional_codes(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let token = bearer(&app).await?;
    let url = app.url("/paymenttransaction/demo-service/09162000");
    assert_problem(app.client.post(&url).json(&body(&app, "X")).send().await?, 401, "FORBIDDEN").await?;
    assert_problem(app.client.post(&url).bearer_auth("garbage").json(&body(&app, "X")).send().await?, 401, "FORBIDDEN")
        .await?;
    assert_problem(
        create(&app, &token, "99999999", &body(&app, "X"), None).await?,
        403,
        "NO_VALID_ORIGINATOR_OR_ENDPOINT",
    )
    .await?;
    let foreign = app
        .client
        .post(app.url("/paymenttransaction/other-service/09162000"))
        .bearer_auth(&token)
        .json(&body(&app, "X"))
        .send()
        .await?;
    assert_problem(foreign, 403, "NO_VALID_ORIGINATOR_OR_ENDPOINT").await?;
    let mut bad = body(&app, "X");
    bad["grosAmount"] = serde_json::from_str("12.005")?;
    assert_problem(create(&app, &token, "09162000", &bad, None).await?, 400, "VALIDATION_ERROR").await?;
    let mut sum = body(&app, "X");
    sum["grosAmount"] = serde_json::from_str("13.00")?;
    assert_problem(create(&app, &token, "09162000", &sum, None).await?, 400, "CALCULATION_ERROR").await?;
    let not_json = app
        .client
        .post(&url)
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await?;
    assert_problem(not_json, 400, "VALIDATION_ERROR").await?;

    assert_eq!(create(&app, &token, "09162000", &body(&app, "DUP"), None).await?.status(), 201);
    assert_problem(create(&app, &token, "09162000", &body(&app, "DUP"), None).await?, 409, "PAYMENT_EXISTS").await?;
    let status = app.client.get(app.url("/status/demo-service/09162000")).bearer_auth(&token).send().await?;
    assert_eq!(status.status(), 200);
    app.stop().await
}
backend_test!(the_standards_refusals_come_with_their_functional_codes);

pub async fn an_idempotency_key_returns_the_first_answer_and_never_makes_two_payments(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let token = bearer(&app).await?;
    let first = create(&app, &token, "09162000", &body(&app, "IDEM-1"), Some("key-1")).await?;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await?;
    let again = create(&app, &token, "09162000", &body(&app, "IDEM-1"), Some("key-1")).await?;
    assert_eq!(again.status(), 201);
    assert_eq!(again.json::<Value>().await?, first, "the stored first answer");
    let other = create(&app, &token, "09162000", &body(&app, "IDEM-2"), Some("key-1")).await?;
    assert_eq!(other.status(), 400, "same key, other request");
    app.stop().await
}
backend_test!(an_idempotency_key_returns_the_first_answer_and_never_makes_two_payments);

/// A replay sends the stored answer byte for byte, whatever rendered it: a fresh create's answer
/// again, and an answer stored under a key by an earlier version (here a refusal with its own body
/// text) exactly as it was stored.
pub async fn a_replay_sends_the_stored_answer_byte_for_byte(ctx: TestContext) -> TestResult {
    use pforte::payment::idempotency::{Claim, Idempotency};
    use pforte::payment::StoredAnswer;
    let app = ctx.spawn_app().await;
    let token = bearer(&app).await?;
    let first = create(&app, &token, "09162000", &body(&app, "IDEM-BYTES"), Some("fresh")).await?;
    let (status, first) = (first.status(), first.text().await?);
    let again = create(&app, &token, "09162000", &body(&app, "IDEM-BYTES"), Some("fresh")).await?;
    assert_eq!((again.status(), again.text().await?), (status, first), "the first answer again");

    let request = body(&app, "IDEM-OLD").to_string();
    let path = "/paymenttransaction/demo-service/09162000";
    let keys = Idempotency::new(app.state.db.clone(), app.state.clock.clone());
    let hash = Idempotency::request_hash("POST", path, request.as_bytes());
    assert_eq!(keys.claim("demo", "stored-before", &hash).await?, Claim::Proceed);
    let stored = r#"{"type":"urn:pforte:payment:PAYMENT_EXISTS", "status":409,"functionalCode":"PAYMENT_EXISTS"}"#;
    keys.complete("demo", "stored-before", &StoredAnswer { status: 409, body: stored.to_owned() }).await?;
    let replayed = app
        .client
        .post(app.url(path))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .header("Idempotency-Key", "stored-before")
        .body(request)
        .send()
        .await?;
    assert_eq!(replayed.status(), 409);
    let content_type = replayed.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
    assert_eq!(content_type.as_deref(), Some("application/problem+json"));
    assert_eq!(replayed.text().await?, stored, "as stored, not rendered again");
    app.stop().await
}
backend_test!(a_replay_sends_the_stored_answer_byte_for_byte);

/// The citizen never returns from the pay page: the worker learns the status from the provider; a
/// payment still open at its expiry fails with a timeout, and paying after that is flagged, not lost.
pub async fn the_status_worker_reads_open_payments_and_fails_expired_ones(ctx: TestContext) -> TestResult {
    use pforte::clock::ManualClock;
    use pforte::payment::worker::{CheckRound, StatusWorker, TIMEOUT_DETAIL};

    let clock = ManualClock::at_millis(chrono::Utc::now().timestamp_millis());
    let app =
        ctx.spawn_app_with(|f| f.merge(("workers.payment_status", false)), std::sync::Arc::new(clock.clone())).await;
    let state = &app.state;
    let signals = state.payment_signals.clone();
    let worker = StatusWorker::new(
        state.db.clone(),
        state.registry.clone(),
        signals,
        state.payment_providers.clone(),
        state.clock.clone(),
    );
    let token = bearer(&app).await?;
    let id_of = |v: &Value| v["paymentInformation"]["transactionId"].as_str().unwrap_or_default().to_owned();

    // Paid at the provider, but the browser never came back to pforte.
    let paid: Value = create(&app, &token, "09162000", &body(&app, "W-1"), None).await?.json().await?;
    let pay_page = location(&app.client.get(app.url(&format!("/pay/{}", id_of(&paid)))).send().await?);
    app.client.post(&pay_page).form(&[("method", "PAYPAL"), ("action", "pay")]).send().await?;
    // Never paid at all.
    let abandoned: Value = create(&app, &token, "09162000", &body(&app, "W-2"), None).await?.json().await?;

    assert_eq!(worker.check_due().await?, CheckRound { checked: 2, finished: 1, timed_out: 0 });
    assert_eq!(worker.check_due().await?, CheckRound::default(), "not due again yet");
    let status = |id: String| {
        let db = state.db.clone();
        async move { db.payment(&id).await.map(|p| p.map(|p| (p.status.as_str().to_owned(), p.status_detail))) }
    };
    assert_eq!(status(id_of(&paid)).await?.map(|s| s.0), Some("PAYED".to_owned()));

    clock.advance_secs(2 * 3600 + 60);
    assert_eq!(worker.check_due().await?, CheckRound { checked: 1, finished: 0, timed_out: 1 });
    assert_eq!(status(id_of(&abandoned)).await?, Some(("FAILED".to_owned(), Some(TIMEOUT_DETAIL.to_owned()))));

    // The citizen pays after all: recorded and flagged for the finance office, the status stays FAILED.
    let provider_page = state.db.payment(&id_of(&abandoned)).await?.and_then(|p| p.pay_url).unwrap_or_default();
    app.client.post(&provider_page).form(&[("method", "GIROPAY"), ("action", "pay")]).send().await?;
    app.client.get(app.url(&format!("/pay/{}/return", id_of(&abandoned)))).send().await?;
    let row = state.db.payment(&id_of(&abandoned)).await?.expect("payment");
    assert_eq!(row.status.as_str(), "FAILED");
    assert!(row.paid_after_timeout_at.is_some(), "paid after timeout is flagged");
    app.stop().await
}
backend_test!(the_status_worker_reads_open_payments_and_fails_expired_ones);

//! The payment API beyond create and read: the echo of the request as sent, what the provider
//! reports (method, Kassenzeichen, paid-at), and configurable lifetimes. Helpers here serve the
//! cancel, refund and notifyUrl tests too.

use std::sync::Arc;

use pforte::clock::ManualClock;
use pforte::payment::provider::ProviderState;
use pforte::payment::signals::PaymentSignals;
use pforte::payment::worker::{CheckRound, CheckSchedule, StatusWorker};
use pforte::payment::{PaymentMethod, Status};
use serde_json::Value;

use crate::helpers::{eventually, TestApp, TestContext, TestResult};
use crate::payment_api::{bearer, body, create, location};

pub const TENANT: &str = "09162000";

/// The base path of a payment of the demo service at the demo authority.
pub fn payment_path(id: &str) -> String {
    format!("/paymenttransaction/demo-service/{TENANT}/{id}")
}

pub fn id_of(transaction: &Value) -> String {
    transaction["paymentInformation"]["transactionId"].as_str().unwrap_or_default().to_owned()
}

/// Creates a payment of 12.00 and returns its transaction id.
pub async fn open_payment(app: &TestApp, token: &str, request_id: &str) -> anyhow::Result<String> {
    let created = create(app, token, TENANT, &body(app, request_id), None).await?;
    anyhow::ensure!(created.status() == 201, "create answered {}", created.status());
    Ok(id_of(&created.json().await?))
}

/// The citizen pays on the simulator's page but does not come back through pforte.
pub async fn pay_at_provider(app: &TestApp, id: &str, method: &str) -> anyhow::Result<()> {
    let pay_page = location(&app.client.get(app.url(&format!("/pay/{id}"))).send().await?);
    anyhow::ensure!(pay_page.contains("/dev/pay"), "not sent to the provider: {pay_page}");
    app.client.post(&pay_page).form(&[("method", method), ("action", "pay")]).send().await?;
    Ok(())
}

/// A payment of 12.00 the citizen paid and came back from, so pforte recorded PAYED.
pub async fn paid_payment(app: &TestApp, token: &str, request_id: &str) -> anyhow::Result<String> {
    let id = open_payment(app, token, request_id).await?;
    pay_at_provider(app, &id, "CREDITCARD").await?;
    app.client.get(app.url(&format!("/pay/{id}/return"))).send().await?;
    let status = app.state.db.payment(&id).await?.map(|p| p.status);
    anyhow::ensure!(status.map(|s| s.as_str()) == Some("PAYED"), "not paid: {status:?}");
    Ok(id)
}

/// POSTs `body` (raw text) with the demo service's token and an optional Idempotency-Key.
pub async fn post(
    app: &TestApp,
    token: &str,
    path: &str,
    body: &str,
    key: Option<&str>,
) -> anyhow::Result<reqwest::Response> {
    let mut request = app
        .client
        .post(app.url(path))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    Ok(request.send().await?)
}

pub async fn get_json(app: &TestApp, token: &str, path: &str) -> anyhow::Result<(u16, Value)> {
    let response = app.client.get(app.url(path)).bearer_auth(token).send().await?;
    Ok((response.status().as_u16(), response.json().await?))
}

/// Asserts a problem answer and returns its body.
pub async fn problem(response: reqwest::Response, status: u16, code: &str) -> anyhow::Result<Value> {
    assert_eq!(response.status(), status);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    let body: Value = response.json().await?;
    assert_eq!(body["functionalCode"], code, "{body}");
    Ok(body)
}

/// A create body written as JSON text, so numbers keep the digits they were sent with.
fn request_text(app: &TestApp, request_id: &str) -> String {
    format!(
        r#"{{"requestId":"{request_id}","requestTimestamp":"2026-11-29T10:00:00+01:00","currency":"EUR",
        "grosAmount":19.50,"purpose":"Meldebescheinigung","redirectUrl":"{}",
        "items":[{{"id":"1","quantity":1,"singleNetAmount":7.50,"totalNetAmount":7.50}},
                 {{"id":"2","totalNetAmount":12.00,"bookingData":{{"Haushaltsstelle":"2.0200.1000"}}}}]}}"#,
        app.url("/demo/bezahlt")
    )
}

pub async fn post_and_get_echo_the_request_as_sent_without_booking_defaults(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let token = bearer(&app).await?;
    let sent = request_text(&app, "ECHO-1");
    let created = post(&app, &token, &format!("/paymenttransaction/demo-service/{TENANT}"), &sent, None).await?;
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await?;
    let sent: Value = serde_json::from_str(&sent)?;
    assert_eq!(created["paymentRequest"], sent, "POST echoes the request as sent");
    let id = id_of(&created);
    let (status, read) = get_json(&app, &token, &payment_path(&id)).await?;
    assert_eq!(status, 200);
    assert_eq!(read["paymentRequest"], sent, "GET echoes the request as sent");

    // What the provider got keeps the authority's booking defaults, for the finance exports.
    let row = app.state.db.payment(&id).await?.expect("payment");
    let effective: Value = serde_json::from_str(&row.effective_request)?;
    assert_eq!(effective["items"][0]["bookingData"]["Haushaltsstelle"], "1.0100.1100", "default merged");
    assert_eq!(effective["items"][0]["bookingData"]["Objektnummer"], "OBJ-0001");
    assert_eq!(effective["items"][1]["bookingData"]["Haushaltsstelle"], "2.0200.1000", "the service's own wins");
    assert_eq!(effective["redirectUrl"], app.url(&format!("/pay/{id}/return")));
    app.stop().await
}
backend_test!(post_and_get_echo_the_request_as_sent_without_booking_defaults);

pub async fn get_shows_method_and_kassenzeichen_the_provider_reported_and_paid_at_is_kept(
    ctx: TestContext,
) -> TestResult {
    let app = ctx.spawn_app().await;
    let token = bearer(&app).await?;
    let id = open_payment(&app, &token, "FACTS-1").await?;
    let (_, before) = get_json(&app, &token, &payment_path(&id)).await?;
    assert!(before["paymentInformation"]["transactionRedirectUrl"].is_string(), "pay page while INITIAL");
    assert!(before["paymentInformation"].get("transactionReference").is_none());

    pay_at_provider(&app, &id, "GIROPAY").await?;
    let back = app.client.get(app.url(&format!("/pay/{id}/return"))).send().await?;
    assert_eq!(location(&back), app.url("/demo/bezahlt"));
    let (_, read) = get_json(&app, &token, &payment_path(&id)).await?;
    let information = &read["paymentInformation"];
    assert_eq!(information["status"], "PAYED");
    assert_eq!(information["paymentMethod"], "GIROPAY");
    let reference = information["transactionReference"].as_str().unwrap_or_default();
    assert!(reference.starts_with("KZ-"), "the simulator's Kassenzeichen: {information}");
    assert!(information.get("transactionRedirectUrl").is_none(), "no pay page once final");
    let row = app.state.db.payment(&id).await?.expect("payment");
    let paid_at = row.paid_at.expect("paid_at recorded");
    assert!(paid_at >= row.created_at && paid_at <= chrono::Utc::now().timestamp_millis());
    app.stop().await
}
backend_test!(get_shows_method_and_kassenzeichen_the_provider_reported_and_paid_at_is_kept);

fn signals(app: &TestApp) -> PaymentSignals {
    let state = &app.state;
    state.payment_signals.clone()
}

fn reported(status: Status, method: Option<PaymentMethod>, reference: Option<&str>) -> ProviderState {
    ProviderState {
        status,
        status_detail: None,
        payment_method: method,
        payment_method_detail: None,
        transaction_reference: reference.map(str::to_owned),
        amount: None,
    }
}

pub async fn provider_facts_are_kept_without_a_status_change_and_never_cleared(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let token = bearer(&app).await?;
    let id = open_payment(&app, &token, "FACTS-2").await?;
    let signals = signals(&app);
    let row = || async { app.state.db.payment(&id).await.map(|p| p.expect("payment")) };

    // A reference before the payment is final (some providers assign the Kassenzeichen at creation).
    let early = reported(Status::Initial, None, Some("KZ-EARLY"));
    signals.record_provider_read(&row().await?, &early).await?;
    assert_eq!(row().await?.transaction_reference.as_deref(), Some("KZ-EARLY"));
    assert_eq!(row().await?.status.as_str(), "INITIAL");

    // A later read without it keeps it; a method arrives with PAYED.
    let paid = reported(Status::Payed, Some(PaymentMethod::parse("SOFORT")), None);
    signals.record_provider_read(&row().await?, &paid).await?;
    let after = row().await?;
    assert_eq!(after.transaction_reference.as_deref(), Some("KZ-EARLY"), "never overwritten with none");
    assert_eq!(after.payment_method.as_deref(), Some("SOFORT"), "an unlisted method by its own name");
    let (_, read) = get_json(&app, &token, &payment_path(&id)).await?;
    assert_eq!(read["paymentInformation"]["paymentMethod"], "OTHER", "clients only see the standard's values");
    assert_eq!(read["paymentInformation"]["paymentMethodDetail"], "SOFORT");
    assert_eq!(read["paymentInformation"]["transactionReference"], "KZ-EARLY");
    app.stop().await
}
backend_test!(provider_facts_are_kept_without_a_status_change_and_never_cleared);

pub async fn paid_after_timeout_records_when_it_was_paid(ctx: TestContext) -> TestResult {
    let clock = ManualClock::at_millis(chrono::Utc::now().timestamp_millis());
    let app = ctx.spawn_app_with_clock(clock.clone()).await;
    let token = bearer(&app).await?;
    let id = open_payment(&app, &token, "LATE-1").await?;
    let provider_page = location(&app.client.get(app.url(&format!("/pay/{id}"))).send().await?);
    // Nobody pays within the payment's lifetime: pforte gives up on it.
    let lifetime: i64 = ctx.figment().extract_inner("payments.lifetime_secs")?;
    clock.advance_secs(lifetime + 60);
    let token = bearer(&app).await?;
    eventually(std::time::Duration::from_secs(30), "the payment timed out", || async {
        let (_, read) = get_json(&app, &token, &payment_path(&id)).await?;
        Ok((read["paymentInformation"]["status"] == "FAILED").then_some(()))
    })
    .await?;
    assert_eq!(app.state.db.payment(&id).await?.and_then(|p| p.paid_at), None, "not paid yet");

    // The citizen still had the provider's page open, pays there and comes back.
    app.client.post(&provider_page).form(&[("method", "PAYPAL"), ("action", "pay")]).send().await?;
    app.client.get(app.url(&format!("/pay/{id}/return"))).send().await?;
    let row = app.state.db.payment(&id).await?.expect("payment");
    assert_eq!(row.status.as_str(), "FAILED");
    assert!(row.paid_after_timeout_at.is_some());
    assert_eq!(row.paid_at, row.paid_after_timeout_at, "paid-at is the moment it was recorded");
    assert!(row.transaction_reference.as_deref().is_some_and(|kz| kz.starts_with("KZ-")), "{row:?}");
    app.stop().await
}
backend_test!(paid_after_timeout_records_when_it_was_paid);

/// `payments.lifetime_secs` sets the expiry; the worker's pauses follow `status_check_*`.
pub async fn configured_lifetime_and_check_pauses_are_used(ctx: TestContext) -> TestResult {
    let clock = ManualClock::at_millis(chrono::Utc::now().timestamp_millis());
    let app = ctx
        .spawn_app_with(
            |f| {
                f.merge(("workers.payment_status", false))
                    .merge(("payments.lifetime_secs", 600))
                    .merge(("payments.status_check_first_secs", 10))
                    .merge(("payments.status_check_max_secs", 30))
            },
            Arc::new(clock.clone()),
        )
        .await;
    let state = &app.state;
    let schedule = CheckSchedule::from_settings(&state.settings.payments);
    assert_eq!(schedule, CheckSchedule { first_millis: 10_000, max_millis: 30_000 });
    let worker = StatusWorker::new(
        state.db.clone(),
        state.registry.clone(),
        signals(&app),
        state.payment_providers.clone(),
        state.clock.clone(),
    )
    .with_schedule(schedule);
    let token = bearer(&app).await?;
    let id = open_payment(&app, &token, "LIFE-1").await?;
    let row = state.db.payment(&id).await?.expect("payment");
    assert_eq!(row.expires_at - row.created_at, 600_000);

    // Reads at ages 0, 10, 20, 40, 70 (pauses 10, 10, 20, 30, 30 s): never more often.
    let mut reads_at = Vec::new();
    for second in 0..=100 {
        if worker.check_due().await?.checked == 1 {
            reads_at.push(second);
        }
        clock.advance_secs(1);
    }
    assert_eq!(reads_at, vec![0, 10, 20, 40, 70, 100]);
    clock.advance_secs(600);
    assert_eq!(worker.check_due().await?, CheckRound { checked: 1, finished: 0, timed_out: 1 });
    app.stop().await
}
backend_test!(configured_lifetime_and_check_pauses_are_used);

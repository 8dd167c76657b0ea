//! `POST`/`GET …/{transactionId}/refunds`: refunds of paid payments, never more than was paid, each
//! recorded with event, audit entry and notification. The simulator's protocol (XBezahldienste) has
//! no refund, so every accepted refund becomes an INSTRUCTION for the finance office.

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::Barrier;

use crate::helpers::{TestApp, TestContext, TestResult};
use crate::payment_api::bearer;
use crate::payment_surface::{get_json, open_payment, paid_payment, payment_path, post, problem};

fn refunds_path(id: &str) -> String {
    format!("{}/refunds", payment_path(id))
}

async fn refund(app: &TestApp, token: &str, id: &str, body: &str) -> anyhow::Result<reqwest::Response> {
    post(app, token, &refunds_path(id), body, None).await
}

pub async fn a_paid_payment_is_refunded_in_parts_and_the_refunds_are_listed(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let token = bearer(&app).await?;
    let id = paid_payment(&app, &token, "REFUND-1").await?;
    let first = refund(&app, &token, &id, r#"{"amount": 4.5, "reason": "Gebühr teilweise erlassen"}"#).await?;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await?;
    assert_eq!(first["amount"].to_string(), "4.50", "a number with the exact decimal text");
    assert_eq!(first["currency"], "EUR");
    assert_eq!(first["transactionId"], id.as_str());
    assert_eq!(first["reason"], "Gebühr teilweise erlassen");
    assert_eq!(first["status"], "INSTRUCTION", "no refund in XBezahldienste: the finance office pays back");
    assert!(first["refundId"].as_str().is_some_and(|r| !r.is_empty()));
    assert!(first["createdAt"].as_str().is_some_and(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok()));

    // No amount: the rest.
    let rest: Value = refund(&app, &token, &id, "").await?.json().await?;
    assert_eq!(rest["amount"].to_string(), "7.50");
    assert!(rest.get("reason").is_none());

    let (status, listed) = get_json(&app, &token, &refunds_path(&id)).await?;
    assert_eq!(status, 200);
    assert_eq!(listed["refunds"], serde_json::json!([first, rest]));
    let refund_id = first["refundId"].as_str().unwrap_or_default();
    let events = app.state.db.refund_events(refund_id).await?;
    let statuses: Vec<&str> = events.iter().map(|e| e.to_status.as_str()).collect();
    assert_eq!(statuses, vec!["PENDING", "INSTRUCTION"]);
    let audit = crate::audit::chained_events(&app).await?;
    assert_eq!(audit.iter().filter(|r| r.event == "payment.refund_requested" && r.subject == id).count(), 2);
    let notified: Vec<Value> = app
        .state
        .db
        .notifications_of(&id)
        .await?
        .iter()
        .map(|m| serde_json::from_str(&m.payload).unwrap_or_default())
        .filter(|p: &Value| p["type"] == "payment.refunded")
        .collect();
    assert_eq!(notified.len(), 2, "each refund is notified");
    assert_eq!(notified[0]["data"]["refundId"], first["refundId"]);
    assert_eq!(notified[0]["data"]["amount"].to_string(), "4.50");

    // The finance office's view: the authority's refunds in a time range.
    let now = chrono::Utc::now().timestamp_millis();
    let of_tenant = app.state.db.refunds_of_tenant("09162000", now - 60_000, now + 60_000).await?;
    assert_eq!(of_tenant.len(), 2);
    assert!(of_tenant[0].transaction_reference.as_deref().is_some_and(|r| r.starts_with("KZ-")));
    assert!(app.state.db.refunds_of_tenant("03241001", now - 60_000, now + 60_000).await?.is_empty());

    // Both refunds are booked: the fee revenue is back to zero and the finance office owes 12.00.
    use pforte::finance::ledger::{self, Account};
    let revenue = ledger::balance(&app.state.db, "09162000", &Account::FeeRevenue).await?;
    assert_eq!(revenue, rust_decimal::Decimal::ZERO);
    let payable = ledger::balance(&app.state.db, "09162000", &Account::RefundsPayable).await?;
    assert_eq!(payable.abs().to_string(), "12.00");
    assert_eq!(ledger::tenant_total(&app.state.db, "09162000").await?, rust_decimal::Decimal::ZERO);
    app.stop().await
}
backend_test!(a_paid_payment_is_refunded_in_parts_and_the_refunds_are_listed);

pub async fn an_open_payment_cannot_be_refunded(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let token = bearer(&app).await?;
    let id = open_payment(&app, &token, "REFUND-OPEN").await?;
    let refused = problem(refund(&app, &token, &id, "").await?, 409, "VALIDATION_ERROR").await?;
    assert!(refused["detail"].as_str().unwrap_or_default().contains("INITIAL"), "{refused}");
    assert!(app.state.db.refunds_of(&id).await?.is_empty());
    app.stop().await
}
backend_test!(an_open_payment_cannot_be_refunded);

async fn refused_amount(ctx: TestContext, amount: &str) -> TestResult {
    let app = ctx.spawn_app().await;
    let token = bearer(&app).await?;
    let id = paid_payment(&app, &token, "REFUND-BAD").await?;
    let body = format!(r#"{{"amount": {amount}}}"#);
    let refused = problem(refund(&app, &token, &id, &body).await?, 400, "VALIDATION_ERROR").await?;
    assert!(refused["detail"].as_str().unwrap_or_default().contains("amount"), "{refused}");
    assert!(app.state.db.refunds_of(&id).await?.is_empty(), "nothing recorded");
    app.stop().await
}

pub async fn a_refund_of_zero_is_refused(ctx: TestContext) -> TestResult {
    refused_amount(ctx, "0").await
}
backend_test!(a_refund_of_zero_is_refused);

pub async fn a_negative_refund_is_refused(ctx: TestContext) -> TestResult {
    refused_amount(ctx, "-1.00").await
}
backend_test!(a_negative_refund_is_refused);

pub async fn a_refund_with_three_decimals_is_refused(ctx: TestContext) -> TestResult {
    refused_amount(ctx, "1.005").await
}
backend_test!(a_refund_with_three_decimals_is_refused);

pub async fn a_refund_amount_sent_as_a_string_is_refused(ctx: TestContext) -> TestResult {
    refused_amount(ctx, "\"5.00\"").await
}
backend_test!(a_refund_amount_sent_as_a_string_is_refused);

pub async fn refunds_adding_up_to_more_than_was_paid_are_refused(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let token = bearer(&app).await?;
    let id = paid_payment(&app, &token, "REFUND-OVER").await?;
    assert_eq!(refund(&app, &token, &id, r#"{"amount": 8}"#).await?.status(), 201);
    let refused = problem(refund(&app, &token, &id, r#"{"amount": 4.01}"#).await?, 400, "CALCULATION_ERROR").await?;
    assert!(refused["detail"].as_str().unwrap_or_default().contains("4.00"), "names what is left: {refused}");
    assert_eq!(refund(&app, &token, &id, r#"{"amount": 4.00}"#).await?.status(), 201, "exactly the rest is fine");
    problem(refund(&app, &token, &id, "").await?, 400, "CALCULATION_ERROR").await?;
    assert_eq!(app.state.db.refunds_of(&id).await?.len(), 2);
    app.stop().await
}
backend_test!(refunds_adding_up_to_more_than_was_paid_are_refused);

pub async fn a_refund_replayed_with_its_idempotency_key_returns_the_first_answer(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let token = bearer(&app).await?;
    let id = paid_payment(&app, &token, "REFUND-IDEM").await?;
    let body = r#"{"amount": 2.00}"#;
    let first = post(&app, &token, &refunds_path(&id), body, Some("refund-key-1")).await?;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await?;
    let again = post(&app, &token, &refunds_path(&id), body, Some("refund-key-1")).await?;
    assert_eq!(again.status(), 201);
    assert_eq!(again.json::<Value>().await?, first, "the stored first answer");
    assert_eq!(app.state.db.refunds_of(&id).await?.len(), 1, "refunded once");
    app.stop().await
}
backend_test!(a_refund_replayed_with_its_idempotency_key_returns_the_first_answer);

pub async fn an_idempotency_key_reused_for_another_refund_is_refused(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let token = bearer(&app).await?;
    let id = paid_payment(&app, &token, "REFUND-KEY").await?;
    assert_eq!(post(&app, &token, &refunds_path(&id), r#"{"amount": 2.00}"#, Some("k")).await?.status(), 201);
    let other = post(&app, &token, &refunds_path(&id), r#"{"amount": 3.00}"#, Some("k")).await?;
    let refused = problem(other, 400, "VALIDATION_ERROR").await?;
    assert!(refused["detail"].as_str().unwrap_or_default().contains("Idempotency-Key"), "{refused}");
    assert_eq!(app.state.db.refunds_of(&id).await?.len(), 1);
    app.stop().await
}
backend_test!(an_idempotency_key_reused_for_another_refund_is_refused);

pub async fn concurrent_refunds_never_pay_back_more_than_was_paid(ctx: TestContext) -> TestResult {
    let app = Arc::new(ctx.spawn_app().await);
    let token = bearer(&app).await?;
    let id = paid_payment(&app, &token, "REFUND-RACE").await?;
    // Two refunds of 8.00 against 12.00, released at the same moment.
    let barrier = Arc::new(Barrier::new(2));
    let send = |barrier: Arc<Barrier>| {
        let (app, token, id) = (app.clone(), token.clone(), id.clone());
        async move {
            barrier.wait().await;
            refund(&app, &token, &id, r#"{"amount": 8.00}"#).await.map(|r| r.status().as_u16())
        }
    };
    let (a, b) = tokio::join!(tokio::spawn(send(barrier.clone())), tokio::spawn(send(barrier)));
    let mut statuses = vec![a??, b??];
    statuses.sort_unstable();
    assert_eq!(statuses, vec![201, 400], "exactly one succeeds");
    let refunds = app.state.db.refunds_of(&id).await?;
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0].amount.to_string(), "8.00");
    let app = Arc::try_unwrap(app).map_err(|_| anyhow::anyhow!("the app is still shared"))?;
    app.stop().await
}
backend_test!(concurrent_refunds_never_pay_back_more_than_was_paid);

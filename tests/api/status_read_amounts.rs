//! What a provider's status read reports as the amount counts as a callback's does (SECURITY.md
//! #18, #20; issue 14 finding 9): another amount than the payment's flags the payment for the
//! finance office and does not move it, whichever path read the status (the status worker, a
//! cancel); the same amount lets the read's status stand.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use pforte::payment::worker::StatusWorker;
use serde_json::{json, Value};

use crate::helpers::{TestApp, TestContext, TestResult};
use crate::pmpayment::{audit_events, created, spawn_pm_app_at};

/// A pmPayment provider that says every payment is paid (code 1), with the cents in `amount`.
#[derive(Clone)]
struct PaidPeer {
    base: String,
    amount_cents: Arc<AtomicI64>,
}

async fn secure(State(peer): State<PaidPeer>, body: Bytes) -> Json<Value> {
    let form: std::collections::HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let txid = form.get("txid").cloned().unwrap_or_default();
    Json(json!({ "url": format!("{}/page/{txid}", peer.base), "txid": txid }))
}

async fn status(State(peer): State<PaidPeer>, Path((_ags, txid)): Path<(String, String)>) -> Json<Value> {
    Json(json!({ "txid": txid, "status": 1, "amount": peer.amount_cents.load(Ordering::SeqCst),
                 "paymentMethod": "GIROPAY" }))
}

async fn start_peer(amount_cents: i64) -> anyhow::Result<PaidPeer> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://127.0.0.1:{}/pm", listener.local_addr()?.port());
    let peer = PaidPeer { base, amount_cents: Arc::new(AtomicI64::new(amount_cents)) };
    let router = Router::new()
        .route("/pm/payment/secure", post(secure))
        .route("/pm/payment/status/{ags}/{txid}", get(status))
        .with_state(peer.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(peer)
}

fn worker(app: &TestApp) -> StatusWorker {
    let state = &app.state;
    StatusWorker::new(
        state.db.clone(),
        state.registry.clone(),
        state.payment_signals.clone(),
        state.payment_providers.clone(),
        state.clock.clone(),
    )
}

async fn mismatch_flags(app: &TestApp) -> anyhow::Result<usize> {
    Ok(audit_events(app).await?.into_iter().filter(|(event, _)| event == "payment.amount_mismatch").count())
}

pub async fn a_status_read_reporting_another_amount_flags_the_payment_and_does_not_move_it(
    ctx: TestContext,
) -> TestResult {
    // The payment is 12.00; the provider reports it paid with 11.00.
    let peer = start_peer(1100).await?;
    let app = spawn_pm_app_at(&ctx, "peer-key", &peer.base).await?;
    let id = created(&app, "READ-AMOUNT-1").await?;

    // The status worker's read.
    worker(&app).check_due().await?;
    let row = app.state.db.payment(&id).await?.expect("payment");
    assert_eq!(row.status.as_str(), "INITIAL", "not marked paid as if the amounts were equal");
    let events = app.state.db.payment_events(&id).await?;
    assert_eq!(events.len(), 2, "{events:?}");
    let detail = events[1].detail.clone().unwrap_or_default();
    assert!(detail.starts_with("amount_mismatch") && detail.contains("11.00") && detail.contains("12.00"), "{detail}");
    assert_eq!(mismatch_flags(&app).await?, 1);
    assert!(app.state.db.notifications_of(&id).await?.is_empty(), "nothing told to the service");

    // A cancel reads the status too: refused, the payment stays open, the same report is not flagged twice.
    let token = crate::payment_api::bearer(&app).await?;
    let answer = cancel(&app, &token, &id).await?;
    assert_eq!(answer.status(), 409);
    let problem: Value = answer.json().await?;
    assert!(problem["detail"].as_str().unwrap_or_default().contains("amount"), "{problem}");
    let row = app.state.db.payment(&id).await?.expect("payment");
    assert_eq!(row.status.as_str(), "INITIAL");
    assert_eq!(app.state.db.payment_events(&id).await?.len(), 2, "flagged once");
    assert_eq!(mismatch_flags(&app).await?, 1);

    // The provider corrects itself: the read with the payment's amount is applied as usual.
    peer.amount_cents.store(1200, Ordering::SeqCst);
    let answer = cancel(&app, &token, &id).await?;
    assert_eq!(answer.status(), 409, "paid, so no longer cancelable");
    assert_eq!(app.state.db.payment(&id).await?.map(|p| p.status.as_str()), Some("PAYED"));
    app.stop().await
}
backend_test!(a_status_read_reporting_another_amount_flags_the_payment_and_does_not_move_it);

/// Asks pforte to cancel the payment, which reads its status at the provider first.
async fn cancel(app: &TestApp, token: &str, id: &str) -> anyhow::Result<reqwest::Response> {
    let path = format!("/paymenttransaction/demo-service/09162000/{id}/cancel");
    Ok(app.client.post(app.url(&path)).bearer_auth(token).send().await?)
}

//! Payment records and status changes on both databases: exactly one final status, nothing
//! half-written, nothing lost (security.md #18, #22).

use pforte::clock::ManualClock;
use pforte::payment::idempotency::{Claim, Idempotency, IdempotencyError};
use pforte::payment::signals::{CreateError, Outcome, PaymentSignals};
use pforte::payment::state::Source;
use pforte::payment::Status;
use pforte::storage::payments::PaymentRow;

use crate::helpers::{TestApp, TestContext, TestResult};

fn new_payment(app: &TestApp, request_id: &str) -> PaymentRow {
    let now = app.state.clock.now_millis();
    PaymentRow {
        transaction_id: pforte::identity::random_token(),
        originator_id: "demo-service".into(),
        endpoint_id: "09162000".into(),
        client_id: "demo".into(),
        request_id: request_id.into(),
        request: "{}".into(),
        gros_amount: "12.00".into(),
        provider_id: "sim-pay".into(),
        provider_reference: None,
        pay_url: None,
        status: Status::Initial.as_str().into(),
        status_detail: None,
        timed_out_at: None,
        paid_after_timeout_at: None,
        created_at: now,
        updated_at: now,
        expires_at: now + 3_600_000,
    }
}

fn signals(app: &TestApp) -> PaymentSignals {
    PaymentSignals::new(app.state.db.clone(), app.state.audit.clone(), app.state.clock.clone())
}

pub async fn racing_paid_and_canceled_signals_end_in_exactly_one_final_status(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let payment = new_payment(&app, "req-race");
    signals(&app).create(&payment).await?;
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..16 {
        let (signals, id) = (signals(&app), payment.transaction_id.clone());
        let (status, source) =
            if n % 2 == 0 { (Status::Payed, Source::Provider) } else { (Status::Canceled, Source::Client) };
        tasks.spawn(async move { signals.record(&id, status, source, None).await });
    }
    let mut moved = Vec::new();
    while let Some(outcome) = tasks.join_next().await {
        if let Outcome::Moved { to, .. } = outcome?? {
            moved.push(to);
        }
    }
    assert_eq!(moved.len(), 1, "exactly one signal wins: {moved:?}");
    let events = app.state.db.payment_events(&payment.transaction_id).await?;
    assert_eq!(events.len(), 2, "created, then one change: {events:?}");
    assert_eq!(events[1].to_status, moved[0].as_str());
    assert!(app.state.audit.verify().await?.first_broken.is_none());
    app.stop().await
}

pub async fn a_final_status_never_moves_back_and_repeats_change_nothing(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let payment = new_payment(&app, "req-final");
    let signals = signals(&app);
    signals.create(&payment).await?;
    let id = &payment.transaction_id;
    assert_eq!(
        signals.record(id, Status::Payed, Source::Provider, None).await?,
        Outcome::Moved { from: Status::Initial, to: Status::Payed }
    );
    for (status, source) in [
        (Status::Payed, Source::Provider),
        (Status::Initial, Source::Provider),
        (Status::Canceled, Source::Client),
        (Status::Failed, Source::Timeout),
    ] {
        assert_eq!(signals.record(id, status, source, None).await?, Outcome::Unchanged { current: Status::Payed });
    }
    assert_eq!(app.state.db.payment_events(id).await?.len(), 2);
    assert_eq!(
        signals.record("no-such-payment", Status::Payed, Source::Provider, None).await?,
        Outcome::UnknownTransaction
    );
    app.stop().await
}

pub async fn a_second_payment_with_the_same_request_id_is_refused_whole(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let signals = signals(&app);
    let first = new_payment(&app, "req-dup");
    signals.create(&first).await?;
    let second = new_payment(&app, "req-dup");
    assert!(matches!(signals.create(&second).await, Err(CreateError::Exists)));
    assert!(app.state.db.payment_events(&second.transaction_id).await?.is_empty(), "nothing half-written");
    let other_endpoint = PaymentRow { endpoint_id: "03241001".into(), ..new_payment(&app, "req-dup") };
    signals.create(&other_endpoint).await?;
    app.stop().await
}

pub async fn paid_after_timeout_is_flagged_once_and_the_status_stays_failed(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let signals = signals(&app);
    let payment = new_payment(&app, "req-late");
    signals.create(&payment).await?;
    let id = &payment.transaction_id;
    let timeout = signals.record(id, Status::Failed, Source::Timeout, Some("timeout")).await?;
    assert_eq!(timeout, Outcome::Moved { from: Status::Initial, to: Status::Failed });
    assert_eq!(signals.record(id, Status::Payed, Source::Provider, None).await?, Outcome::PaidAfterTimeout);
    assert_eq!(
        signals.record(id, Status::Payed, Source::Provider, None).await?,
        Outcome::Unchanged { current: Status::Failed }
    );
    let events = app.state.db.payment_events(id).await?;
    assert_eq!(events.iter().map(|e| e.to_status.as_str()).collect::<Vec<_>>(), vec!["INITIAL", "FAILED", "PAYED"]);
    let audit = app.state.db.audit_entries_after(0, 1000).await?;
    assert!(audit.iter().any(|r| r.event == "payment.paid_after_timeout" && &r.subject == id));
    app.stop().await
}

fn idempotency(app: &TestApp) -> Idempotency {
    Idempotency::new(app.state.db.clone(), app.state.clock.clone())
}

pub async fn the_same_key_and_request_replays_the_first_response(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let keys = idempotency(&app);
    let hash = Idempotency::request_hash("POST", "/paymenttransaction/o/e", b"{\"requestId\":\"1\"}");
    assert_eq!(keys.claim("demo", "key-1", &hash).await?, Claim::Proceed);
    assert_eq!(keys.claim("demo", "key-1", &hash).await?, Claim::InProgress, "while the first runs");
    keys.complete("demo", "key-1", 201, "{\"first\":true}").await?;
    assert_eq!(
        keys.claim("demo", "key-1", &hash).await?,
        Claim::Replay { status: 201, body: "{\"first\":true}".into() }
    );
    let other = Idempotency::request_hash("POST", "/paymenttransaction/o/e", b"{\"requestId\":\"2\"}");
    assert_eq!(keys.claim("demo", "key-1", &other).await?, Claim::Conflict);
    // Keys belong to their client.
    assert_eq!(keys.claim("second", "key-1", &other).await?, Claim::Proceed);
    assert!(matches!(keys.claim("demo", "", &hash).await, Err(IdempotencyError::InvalidKey)));
    assert!(matches!(keys.claim("demo", "bad key", &hash).await, Err(IdempotencyError::InvalidKey)));
    app.stop().await
}

pub async fn concurrent_requests_with_one_key_let_exactly_one_proceed(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let hash = Idempotency::request_hash("POST", "/p", b"{}");
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..12 {
        let (keys, hash) = (idempotency(&app), hash.clone());
        tasks.spawn(async move { keys.claim("demo", "race", &hash).await });
    }
    let mut outcomes = Vec::new();
    while let Some(outcome) = tasks.join_next().await {
        outcomes.push(outcome??);
    }
    assert_eq!(outcomes.iter().filter(|c| **c == Claim::Proceed).count(), 1, "{outcomes:?}");
    assert!(outcomes.iter().all(|c| matches!(c, Claim::Proceed | Claim::InProgress)));
    app.stop().await
}

pub async fn a_released_or_expired_key_can_be_used_again(ctx: TestContext) -> TestResult {
    let clock = ManualClock::at_millis(chrono::Utc::now().timestamp_millis());
    let app = ctx.spawn_app_with_clock(clock.clone()).await;
    let keys = idempotency(&app);
    let hash = Idempotency::request_hash("POST", "/p", b"{}");
    assert_eq!(keys.claim("demo", "k", &hash).await?, Claim::Proceed);
    keys.release("demo", "k").await?;
    assert_eq!(keys.claim("demo", "k", &hash).await?, Claim::Proceed, "released after a retryable failure");
    keys.complete("demo", "k", 201, "{}").await?;
    clock.advance_secs(24 * 3600);
    assert!(matches!(keys.claim("demo", "k", &hash).await?, Claim::Replay { .. }), "kept at least 24 hours");
    clock.advance_secs(2 * 3600);
    let other = Idempotency::request_hash("POST", "/p", b"{\"x\":1}");
    assert_eq!(keys.claim("demo", "k", &other).await?, Claim::Proceed, "an expired key binds nothing");
    app.stop().await
}

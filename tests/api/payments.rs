//! Payment records and status changes on both databases: exactly one final status, nothing
//! half-written, nothing lost (SECURITY.md #18, #22).

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use pforte::clock::ManualClock;
use pforte::crypto::webhook::WebhookSecret;
use pforte::payment::idempotency::{Claim, Idempotency, IdempotencyError};
use pforte::payment::notify::{Notifier, Round};
use pforte::payment::signals::{CreateError, Outcome, PaymentSignals};
use pforte::payment::state::Source;
use pforte::payment::{Status, StoredAnswer};
use pforte::store::payments::PaymentRow;
use secrecy::SecretString;

use crate::audit::{audit_verify, chained_events, Verified};
use crate::helpers::{TestApp, TestContext, TestResult};

pub fn new_payment(app: &TestApp, request_id: &str) -> PaymentRow {
    let now = app.state.clock.now_millis();
    PaymentRow {
        transaction_id: pforte::crypto::random_token(),
        originator_id: "demo-service".into(),
        endpoint_id: "09162000".into(),
        client_id: "demo".into(),
        request_id: request_id.into(),
        request: "{}".into(),
        effective_request: "{}".into(),
        gros_amount: rust_decimal::Decimal::new(1200, 2),
        provider_id: "sim-pay".into(),
        provider_reference: None,
        pay_url: None,
        status: Status::Initial,
        status_detail: None,
        timed_out_at: None,
        paid_after_timeout_at: None,
        created_at: now,
        updated_at: now,
        expires_at: now + 3_600_000,
        payment_method: None,
        payment_method_detail: None,
        transaction_reference: None,
        paid_at: None,
        notify_url: None,
    }
}

pub fn signals(app: &TestApp) -> PaymentSignals {
    app.state.payment_signals.clone()
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
    let (mut moved, mut flagged) = (Vec::new(), 0);
    while let Some(outcome) = tasks.join_next().await {
        match outcome?? {
            Outcome::Moved { to, .. } => moved.push(to),
            Outcome::PaidAfterTimeout => flagged += 1,
            _ => {}
        }
    }
    assert_eq!(moved.len(), 1, "exactly one signal wins: {moved:?}");
    let events = app.state.db.payment_events(&payment.transaction_id).await?;
    assert_eq!(events[1].to_status, moved[0]);
    let stored = app.state.db.payment(&payment.transaction_id).await?.expect("payment");
    assert_eq!(stored.status, moved[0], "the winner's status stays");
    // When the online service's cancel won, a PAYED signal after it is money that arrived: it is
    // flagged once for the finance office (not a second final status). When PAYED won, nothing else.
    if moved[0] == Status::Canceled {
        assert_eq!(flagged, 1, "{events:?}");
        assert_eq!(events.len(), 3, "created, cancelled, flagged: {events:?}");
        assert!(stored.paid_after_timeout_at.is_some());
    } else {
        assert_eq!((flagged, events.len()), (0, 2), "created, then one change: {events:?}");
    }
    // The losers wrote no audit event either (on PostgreSQL the status, its event and its audit
    // event are one statement, store::payment_status).
    let changes = chained_events(&app)
        .await?
        .into_iter()
        .filter(|e| e.event == "payment.status_changed" && e.subject == payment.transaction_id)
        .count();
    assert_eq!(changes, 1, "one audit event for the one move");
    assert!(matches!(audit_verify(&ctx).await?, Verified::Intact { .. }));
    app.stop().await
}
backend_test!(racing_paid_and_canceled_signals_end_in_exactly_one_final_status);

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
backend_test!(a_final_status_never_moves_back_and_repeats_change_nothing);

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
backend_test!(a_second_payment_with_the_same_request_id_is_refused_whole);

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
    let audit = crate::audit::chained_events(&app).await?;
    assert!(audit.iter().any(|r| r.event == "payment.paid_after_timeout" && &r.subject == id));
    app.stop().await
}
backend_test!(paid_after_timeout_is_flagged_once_and_the_status_stays_failed);

fn idempotency(app: &TestApp) -> Idempotency {
    Idempotency::new(app.state.db.clone(), app.state.clock.clone())
}

pub async fn the_same_key_and_request_replays_the_first_response(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let keys = idempotency(&app);
    let hash = Idempotency::request_hash("POST", "/paymenttransaction/o/e", b"{\"requestId\":\"1\"}");
    assert_eq!(keys.claim("demo", "key-1", &hash).await?, Claim::Proceed);
    assert_eq!(keys.claim("demo", "key-1", &hash).await?, Claim::InProgress, "while the first runs");
    keys.complete("demo", "key-1", &stored("{\"first\":true}")).await?;
    assert_eq!(keys.claim("demo", "key-1", &hash).await?, Claim::Replay(stored("{\"first\":true}")));
    let other = Idempotency::request_hash("POST", "/paymenttransaction/o/e", b"{\"requestId\":\"2\"}");
    assert_eq!(keys.claim("demo", "key-1", &other).await?, Claim::Conflict);
    // Keys belong to their client.
    assert_eq!(keys.claim("second", "key-1", &other).await?, Claim::Proceed);
    assert!(matches!(keys.claim("demo", "", &hash).await, Err(IdempotencyError::InvalidKey)));
    assert!(matches!(keys.claim("demo", "bad key", &hash).await, Err(IdempotencyError::InvalidKey)));
    app.stop().await
}
backend_test!(the_same_key_and_request_replays_the_first_response);

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
backend_test!(concurrent_requests_with_one_key_let_exactly_one_proceed);

pub async fn a_released_or_expired_key_can_be_used_again(ctx: TestContext) -> TestResult {
    let clock = ManualClock::at_millis(chrono::Utc::now().timestamp_millis());
    let app = ctx.spawn_app_with_clock(clock.clone()).await;
    let keys = idempotency(&app);
    let hash = Idempotency::request_hash("POST", "/p", b"{}");
    assert_eq!(keys.claim("demo", "k", &hash).await?, Claim::Proceed);
    keys.release("demo", "k").await?;
    assert_eq!(keys.claim("demo", "k", &hash).await?, Claim::Proceed, "released after a retryable failure");
    keys.complete("demo", "k", &stored("{}")).await?;
    clock.advance_secs(24 * 3600);
    assert!(matches!(keys.claim("demo", "k", &hash).await?, Claim::Replay { .. }), "kept at least 24 hours");
    clock.advance_secs(2 * 3600);
    let other = Idempotency::request_hash("POST", "/p", b"{\"x\":1}");
    assert_eq!(keys.claim("demo", "k", &other).await?, Claim::Proceed, "an expired key binds nothing");
    app.stop().await
}
backend_test!(a_released_or_expired_key_can_be_used_again);

/// A receiving online service: checks every signature, counts what arrived, answers `status`.
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    pub status: Arc<AtomicU16>,
    pub received: Arc<Mutex<Vec<(String, serde_json::Value)>>>,
}

const HOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

pub async fn receiver() -> anyhow::Result<Receiver> {
    use axum::http::{HeaderMap, StatusCode};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://127.0.0.1:{}/hook", listener.local_addr()?.port());
    let status = Arc::new(AtomicU16::new(200));
    let received = Arc::new(Mutex::new(Vec::new()));
    let (answer, log) = (status.clone(), received.clone());
    let handler = move |headers: HeaderMap, body: axum::body::Bytes| {
        let (answer, log) = (answer.clone(), log.clone());
        async move {
            let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
            let secret = WebhookSecret::parse(&SecretString::from(HOOK_SECRET.to_owned())).expect("secret");
            let now = chrono::Utc::now().timestamp();
            let valid = secret
                .verify(
                    &header("webhook-id"),
                    &header("webhook-timestamp"),
                    &header("webhook-signature"),
                    &body,
                    now,
                    3 * 24 * 3600,
                )
                .is_ok();
            let status = answer.load(Ordering::SeqCst);
            if valid && status == 200 {
                let payload = serde_json::from_slice(&body).unwrap_or_default();
                log.lock().expect("log").push((header("webhook-id"), payload));
            }
            StatusCode::from_u16(if valid { status } else { 401 }).unwrap_or(StatusCode::OK)
        }
    };
    let router = axum::Router::new().route("/hook", axum::routing::post(handler));
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(Receiver { url, status, received })
}

/// An app whose demo client notifies `receiver`, with the background worker off so the test drives
/// delivery rounds itself.
pub async fn app_notifying(ctx: &TestContext, receiver: &Receiver, clock: ManualClock) -> anyhow::Result<TestApp> {
    app_notifying_with(ctx, receiver, clock, false).await
}

/// An app whose demo client notifies `receiver`; `worker` says whether its delivery worker runs.
pub async fn app_notifying_with(
    ctx: &TestContext,
    receiver: &Receiver,
    clock: ManualClock,
    worker: bool,
) -> anyhow::Result<TestApp> {
    let clients = ctx.clients_with(&[]);
    let demo = std::fs::read_to_string(format!("{clients}/demo.toml"))?;
    let demo = demo
        .lines()
        .map(|line| {
            if line.starts_with("notification_url") {
                format!("notification_url = \"{}\"", receiver.url)
            } else if line.starts_with("notification_secret") {
                format!("notification_secret = \"plain:{HOOK_SECRET}\"")
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(format!("{clients}/demo.toml"), demo)?;
    Ok(ctx
        .spawn_app_with(
            |f| f.merge(("registry.clients", clients)).merge(("workers.notifications", worker)),
            Arc::new(clock),
        )
        .await)
}

pub fn notifier(app: &TestApp) -> Notifier {
    Notifier::new(
        app.state.db.clone(),
        app.state.registry.clone(),
        app.state.guarded_http.clone(),
        app.state.clock.clone(),
    )
}

pub async fn a_status_change_is_notified_once_with_a_valid_signature(ctx: TestContext) -> TestResult {
    let receiver = receiver().await?;
    let clock = ManualClock::at_millis(chrono::Utc::now().timestamp_millis());
    let app = app_notifying(&ctx, &receiver, clock).await?;
    let payment = new_payment(&app, "req-notify");
    signals(&app).create(&payment).await?;
    signals(&app).record(&payment.transaction_id, Status::Payed, Source::Provider, None).await?;
    let queued = app.state.db.notifications_of(&payment.transaction_id).await?;
    assert_eq!(queued.len(), 1, "written with the status change");

    assert_eq!(notifier(&app).deliver_due().await?, Round { delivered: 1, retried: 0, gave_up: 0 });
    assert_eq!(notifier(&app).deliver_due().await?, Round::default(), "delivered means done");
    let received = receiver.received.lock().map(|r| r.clone()).unwrap_or_default();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].0, queued[0].id);
    assert_eq!(received[0].1["type"], "payment.status_changed");
    assert_eq!(received[0].1["data"]["status"], "PAYED");
    assert_eq!(received[0].1["data"]["transactionId"], payment.transaction_id.as_str());
    // A duplicate signal changes nothing and notifies nothing.
    signals(&app).record(&payment.transaction_id, Status::Payed, Source::Provider, None).await?;
    assert_eq!(app.state.db.notifications_of(&payment.transaction_id).await?.len(), 1);
    app.stop().await
}
backend_test!(a_status_change_is_notified_once_with_a_valid_signature);

pub async fn a_receiver_down_for_hours_gets_the_message_later(ctx: TestContext) -> TestResult {
    let receiver = receiver().await?;
    receiver.status.store(503, Ordering::SeqCst);
    let clock = ManualClock::at_millis(chrono::Utc::now().timestamp_millis());
    let app = app_notifying(&ctx, &receiver, clock.clone()).await?;
    let payment = new_payment(&app, "req-down");
    signals(&app).create(&payment).await?;
    signals(&app).record(&payment.transaction_id, Status::Canceled, Source::Client, None).await?;
    let mut retries = 0;
    for _ in 0..6 {
        let round = notifier(&app).deliver_due().await?;
        retries += round.retried;
        clock.advance_secs(3600);
    }
    assert!(retries >= 3, "retried with growing pauses: {retries}");
    assert!(receiver.received.lock().map(|r| r.is_empty()).unwrap_or(false));
    receiver.status.store(200, Ordering::SeqCst);
    let mut delivered = 0;
    for _ in 0..4 {
        delivered += notifier(&app).deliver_due().await?.delivered;
        clock.advance_secs(6 * 3600);
    }
    assert_eq!(delivered, 1);
    let id = &app.state.db.notifications_of(&payment.transaction_id).await?[0].id;
    let log = app.state.db.notification_attempts(id).await?;
    assert!(log.len() >= 4 && log.iter().rev().skip(1).all(|a| a.http_status == Some(503)), "{log:?}");
    assert_eq!(log.last().and_then(|a| a.http_status), Some(200));
    app.stop().await
}
backend_test!(a_receiver_down_for_hours_gets_the_message_later);

pub async fn gone_stops_delivery_and_redelivery_puts_it_back(ctx: TestContext) -> TestResult {
    let receiver = receiver().await?;
    receiver.status.store(410, Ordering::SeqCst);
    let clock = ManualClock::at_millis(chrono::Utc::now().timestamp_millis());
    let app = app_notifying(&ctx, &receiver, clock.clone()).await?;
    let payment = new_payment(&app, "req-gone");
    signals(&app).create(&payment).await?;
    signals(&app).record(&payment.transaction_id, Status::Payed, Source::Provider, None).await?;
    assert_eq!(notifier(&app).deliver_due().await?.gave_up, 1);
    clock.advance_secs(24 * 3600);
    assert_eq!(notifier(&app).deliver_due().await?, Round::default(), "410 means: stop");
    let message = app.state.db.notifications_of(&payment.transaction_id).await?.remove(0);
    assert!(message.gave_up_reason.is_some_and(|r| r.contains("410")));

    receiver.status.store(200, Ordering::SeqCst);
    let redelivered = ctx.cli_ok(&["notifications", "redeliver", &message.id])?;
    assert!(redelivered.contains("back in line"), "{redelivered}");
    assert_eq!(notifier(&app).deliver_due().await?.delivered, 1);
    app.stop().await
}
backend_test!(gone_stops_delivery_and_redelivery_puts_it_back);

pub async fn delivery_gives_up_after_three_days(ctx: TestContext) -> TestResult {
    let receiver = receiver().await?;
    receiver.status.store(500, Ordering::SeqCst);
    let clock = ManualClock::at_millis(chrono::Utc::now().timestamp_millis());
    let app = app_notifying(&ctx, &receiver, clock.clone()).await?;
    let payment = new_payment(&app, "req-never");
    signals(&app).create(&payment).await?;
    signals(&app).record(&payment.transaction_id, Status::Failed, Source::Timeout, None).await?;
    let mut gave_up = 0;
    for _ in 0..40 {
        gave_up += notifier(&app).deliver_due().await?.gave_up;
        clock.advance_secs(3 * 3600);
    }
    assert_eq!(gave_up, 1);
    let message = app.state.db.notifications_of(&payment.transaction_id).await?.remove(0);
    assert!(message.gave_up_reason.is_some_and(|r| r.contains("three days")));
    assert!(message.gave_up_at.is_some_and(|at| at - message.created_at <= 3 * 24 * 3600 * 1000));
    app.stop().await
}
backend_test!(delivery_gives_up_after_three_days);

pub async fn two_workers_never_deliver_one_message_twice(ctx: TestContext) -> TestResult {
    let receiver = receiver().await?;
    let clock = ManualClock::at_millis(chrono::Utc::now().timestamp_millis());
    let app = app_notifying(&ctx, &receiver, clock).await?;
    for n in 0..10 {
        let payment = new_payment(&app, &format!("req-{n}"));
        signals(&app).create(&payment).await?;
        signals(&app).record(&payment.transaction_id, Status::Payed, Source::Provider, None).await?;
    }
    let (first, second) = (notifier(&app), notifier(&app));
    let (a, b) = tokio::join!(first.deliver_due(), second.deliver_due());
    assert_eq!(a?.delivered + b?.delivered, 10);
    let received = receiver.received.lock().map(|r| r.clone()).unwrap_or_default();
    let mut ids: Vec<&String> = received.iter().map(|(id, _)| id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!((received.len(), ids.len()), (10, 10), "each message exactly once");
    app.stop().await
}
backend_test!(two_workers_never_deliver_one_message_twice);

/// A 201 as the edge stores it under an Idempotency-Key.
fn stored(body: &str) -> StoredAnswer {
    StoredAnswer { status: 201, body: body.to_owned() }
}

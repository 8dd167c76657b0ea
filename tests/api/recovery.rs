//! What a killed process or an outage leaves behind is picked up again (SECURITY.md #23): an
//! Idempotency-Key its create held, notifications its worker had claimed, a backlog of notifications.
//! The `kill -9` test (`crash`) exercises these with the real binary; these tests pin each mechanism
//! down.

use std::sync::Arc;
use std::time::Duration;

use pforte::clock::{Clock, ManualClock};
use pforte::payment::idempotency::{Claim, Idempotency};
use pforte::payment::notify::{Notifier, Round};
use pforte::payment::signals::{CreateError, KeyedAnswer, PaymentSignals};
use pforte::payment::state::Source;
use pforte::payment::{Status, StoredAnswer};
use pforte::store::payments::PaymentRow;

use crate::helpers::{NotificationReceiver, TestApp, TestContext, TestResult};
use crate::payment_api::bearer;
use crate::payment_surface::{open_payment, payment_path, post};

const HOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn payment_row(transaction_id: &str, request_id: &str) -> PaymentRow {
    let now = chrono::Utc::now().timestamp_millis();
    PaymentRow {
        transaction_id: transaction_id.into(),
        originator_id: "demo-service".into(),
        endpoint_id: "09162000".into(),
        client_id: "demo".into(),
        request_id: request_id.into(),
        request: "{}".into(),
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
        effective_request: "{}".into(),
        payment_method: None,
        payment_method_detail: None,
        transaction_reference: None,
        paid_at: None,
        notify_url: None,
    }
}

fn signals(app: &TestApp) -> PaymentSignals {
    let state = &app.state;
    state.payment_signals.clone()
}

/// A create cut off by a kill leaves its Idempotency-Key claimed without an answer; once no request
/// can still be running (the request timeout), the next request with the key takes it over.
pub async fn an_idempotency_key_left_by_a_dead_request_is_taken_over_after_the_request_timeout(
    ctx: TestContext,
) -> TestResult {
    let clock = ManualClock::at_millis(chrono::Utc::now().timestamp_millis());
    let app = ctx.spawn_app_with_clock(clock.clone()).await;
    let keys = Idempotency::new(app.state.db.clone(), app.state.clock.clone()).abandoned_after(Duration::from_secs(30));
    let hash = Idempotency::request_hash("POST", "/paymenttransaction/o/e", b"{}");
    assert_eq!(keys.claim("demo", "cut-off", &hash).await?, Claim::Proceed);
    assert_eq!(keys.claim("demo", "done", &hash).await?, Claim::Proceed);
    keys.complete("demo", "done", &stored("{\"first\":true}")).await?;
    clock.advance_secs(29);
    assert_eq!(keys.claim("demo", "cut-off", &hash).await?, Claim::InProgress, "may still be running");
    clock.advance_secs(2);
    assert_eq!(keys.claim("demo", "cut-off", &hash).await?, Claim::Proceed, "its request is gone");
    assert_eq!(keys.claim("demo", "cut-off", &hash).await?, Claim::InProgress, "now held by the retry");
    assert_eq!(
        keys.claim("demo", "done", &hash).await?,
        Claim::Replay(stored("{\"first\":true}")),
        "an answered key is kept for its whole lifetime"
    );
    app.stop().await
}
backend_test!(an_idempotency_key_left_by_a_dead_request_is_taken_over_after_the_request_timeout);

/// The answer to a create is stored under its key in the payment's own transaction: a retry after
/// a crash finds either both (and replays the answer) or neither (and creates the payment).
pub async fn a_creates_answer_is_stored_under_its_key_together_with_the_payment(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let signals = signals(&app);
    let keys = Idempotency::new(app.state.db.clone(), app.state.clock.clone());
    let hash = Idempotency::request_hash("POST", "/paymenttransaction/demo-service/09162000", b"{}");
    for key in ["first", "second"] {
        assert_eq!(keys.claim("demo", key, &hash).await?, Claim::Proceed);
    }
    let created = stored("{\"id\":\"tx-1\"}");
    let answer = |key| KeyedAnswer { client_id: "demo", key, answer: &created };
    signals.create_answering(&payment_row("tx-1", "GEB-1"), Some(&answer("first"))).await?;
    assert_eq!(keys.claim("demo", "first", &hash).await?, Claim::Replay(stored("{\"id\":\"tx-1\"}")));
    // A create that is refused stores nothing under its key.
    let refused = signals.create_answering(&payment_row("tx-2", "GEB-1"), Some(&answer("second"))).await;
    assert!(matches!(refused, Err(CreateError::Exists)), "{refused:?}");
    assert_eq!(keys.claim("demo", "second", &hash).await?, Claim::InProgress);
    app.stop().await
}
backend_test!(a_creates_answer_is_stored_under_its_key_together_with_the_payment);

/// A worker that dies holding messages leases them for 60 s at most; then another delivers them.
pub async fn a_dead_workers_lease_lets_its_messages_go(ctx: TestContext) -> TestResult {
    let receiver = NotificationReceiver::start(&[HOOK_SECRET]).await?;
    let clients = ctx.clients_notifying("clients", &receiver.url, HOOK_SECRET)?;
    let clock = ManualClock::at_millis(chrono::Utc::now().timestamp_millis());
    let app = ctx
        .spawn_app_with(
            |f| f.merge(("registry.clients", clients)).merge(("workers.notifications", false)),
            Arc::new(clock.clone()),
        )
        .await;
    let (state, signals) = (&app.state, signals(&app));
    let row = payment_row("tx-lease", "GEB-LEASE");
    signals.create(&row).await?;
    signals.record("tx-lease", Status::Payed, Source::Provider, None).await?;
    let notifier =
        Notifier::new(state.db.clone(), state.registry.clone(), state.guarded_http.clone(), state.clock.clone());

    // The dead worker's claim: taken, never settled.
    let at = clock.now_millis();
    assert_eq!(state.db.claim_due_notifications(at, at + 60_000, 50).await?.len(), 1);
    assert_eq!(notifier.deliver_due().await?, Round::default(), "leased to the dead worker");
    clock.advance_secs(59);
    assert_eq!(notifier.deliver_due().await?, Round::default(), "still leased");
    clock.advance_secs(2);
    assert_eq!(notifier.deliver_due().await?.delivered, 1, "the lease ran out");
    let received = receiver.received();
    let message = state.db.notifications_of("tx-lease").await?.remove(0);
    assert_eq!((received.len(), received[0].signed_with), (1, 0));
    assert_eq!(
        (received[0].webhook_id.as_str(), &received[0].payload["data"]["status"]),
        (message.id.as_str(), &"PAYED".into())
    );
    app.stop().await
}
backend_test!(a_dead_workers_lease_lets_its_messages_go);

/// A backlog (after an outage, or many payments expiring at once) is delivered batch after batch
/// without the worker's pause between them, which capped delivery at 50 messages a second.
pub async fn a_backlog_of_notifications_is_delivered_without_pausing_between_batches(ctx: TestContext) -> TestResult {
    let receiver = NotificationReceiver::start(&[HOOK_SECRET]).await?;
    let clients = ctx.clients_notifying("clients", &receiver.url, HOOK_SECRET)?;
    // While pforte runs without its delivery worker, the demo service cancels 150 payments.
    let with_clients = |f: figment::Figment, worker: bool| {
        f.merge(("registry.clients", clients.clone())).merge(("workers.notifications", worker))
    };
    let outage = ctx.spawn_app_with(|f| with_clients(f, false), Arc::new(pforte::clock::SystemClock)).await;
    let token = bearer(&outage).await?;
    for n in 0..150 {
        let id = open_payment(&outage, &token, &format!("GEB-{n}")).await?;
        let canceled = post(&outage, &token, &format!("{}/cancel", payment_path(&id)), "", None).await?;
        anyhow::ensure!(canceled.status() == 200, "cancel answered {}", canceled.status());
    }
    outage.stop().await?;
    anyhow::ensure!(receiver.received().is_empty(), "nothing delivered during the outage");

    // Started again with its worker, pforte works the backlog off.
    let app = ctx.spawn_app_with(|f| with_clients(f, true), Arc::new(pforte::clock::SystemClock)).await;
    crate::helpers::eventually(Duration::from_secs(60), "backlog delivered", || {
        let count = receiver.received().len();
        async move { Ok((count == 150).then_some(())) }
    })
    .await?;
    let mut attempted: Vec<i64> = sqlx::query_scalar("SELECT attempted_at FROM notification_attempts")
        .fetch_all(&crate::keys::any_pool(&ctx.database_url).await?)
        .await?;
    assert_eq!(attempted.len(), 150, "each message delivered at its first attempt");
    attempted.sort_unstable();
    let longest_gap = attempted.windows(2).map(|w| w[1] - w[0]).max().unwrap_or_default();
    assert!(longest_gap < 900, "no pause between batches: {longest_gap} ms between two attempts");
    app.stop().await
}
backend_test!(a_backlog_of_notifications_is_delivered_without_pausing_between_batches);

/// A 201 as the edge stores it under an Idempotency-Key.
fn stored(body: &str) -> StoredAnswer {
    StoredAnswer { status: 201, body: body.to_owned() }
}

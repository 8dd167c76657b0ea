//! A refund whose request dies after the refund was written (process killed, request timeout,
//! end of the shutdown grace) is never made twice by a retry under its Idempotency-Key
//! (SECURITY.md #33, issue 14 finding 3), and the refund it left half-done is finished by the
//! status worker, booked once.

use std::sync::Arc;
use std::time::Duration;

use pforte::clock::ManualClock;
use serde_json::Value;

use crate::helpers::{eventually, TestApp, TestBackend, TestContext, TestResult};
use crate::keys::any_pool;
use crate::payment_api::bearer;
use crate::payment_surface::{paid_payment, payment_path, post};

fn refunds_path(id: &str) -> String {
    format!("{}/refunds", payment_path(id))
}

/// The refund's first request is cut off by the request timeout after its refund row committed
/// and before its outcome (and, before the fix, its answer) was recorded: the ledger is held by
/// another transaction, so the booking waits. A retry under the same key once the claim counts as
/// abandoned must not refund a second time.
pub async fn a_refund_cut_off_after_it_was_written_is_made_once_when_retried_with_its_key(
    ctx: TestContext,
) -> TestResult {
    let clock = ManualClock::at_millis(chrono::Utc::now().timestamp_millis());
    let app = ctx.spawn_app_with(|f| f.merge(("server.request_timeout_secs", 2)), Arc::new(clock.clone())).await;
    let token = bearer(&app).await?;
    let id = paid_payment(&app, &token, "REFUND-CUT").await?;
    let body = r#"{"amount": 5.00}"#;

    let pool = any_pool(&ctx.database_url).await?;
    let mut holder = pool.begin().await?;
    sqlx::query("LOCK TABLE ledger_journals IN EXCLUSIVE MODE").execute(&mut *holder).await?;
    let first = post(&app, &token, &refunds_path(&id), body, Some("refund-cut")).await?;
    assert_ne!(first.status(), 201, "the request timeout cut the first request off");
    let written = app.state.db.refunds_of(&id).await?;
    assert_eq!(written.len(), 1, "the cut came after the refund was written");
    holder.rollback().await?;

    // Past the request timeout the first request is surely gone; the client retries.
    clock.advance_secs(31);
    let again = post(&app, &token, &refunds_path(&id), body, Some("refund-cut")).await?;
    assert_eq!(again.status(), 201);
    let again: Value = again.json().await?;
    let refunds = app.state.db.refunds_of(&id).await?;
    assert_eq!(refunds.len(), 1, "one refund, not two: {refunds:?}");
    let refund_id = refunds[0].refund_id.clone();
    assert_eq!(again["refundId"], refund_id.as_str(), "the retry names the refund made first");
    assert_eq!(again["status"], "PENDING", "the answer stored with the refund, before its outcome");

    // The status worker takes the PENDING refund up (its request is gone) and settles it once.
    settled_once(&app, &pool, &refund_id, "the abandoned refund is settled").await?;
    let later = post(&app, &token, &refunds_path(&id), body, Some("refund-cut")).await?;
    assert_eq!(later.json::<Value>().await?, again, "the key keeps answering with the first answer");
    assert_eq!(app.state.db.refunds_of(&id).await?.len(), 1);

    app.stop().await
}
postgres_test!(a_refund_cut_off_after_it_was_written_is_made_once_when_retried_with_its_key);

/// Makes the database refuse every refund's booking (`hold`), or takes that back.
/// Waits until the status worker has settled the refund, then checks it was booked and settled once.
async fn settled_once(app: &TestApp, pool: &sqlx::AnyPool, refund_id: &str, waiting_for: &str) -> TestResult {
    eventually(Duration::from_secs(20), waiting_for, || async {
        let status = app.state.db.refund(refund_id).await?.map(|r| r.status.as_str());
        Ok((status == Some("INSTRUCTION")).then_some(()))
    })
    .await?;
    let journals: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM ledger_journals WHERE refund_id = $1")
        .bind(refund_id)
        .fetch_one(pool)
        .await?;
    assert_eq!(journals, 1, "booked once");
    let events = app.state.db.refund_events(refund_id).await?;
    assert_eq!(events.len(), 2, "created, then settled once: {events:?}");
    Ok(())
}

async fn hold_refund_bookings(ctx: &TestContext, pool: &sqlx::AnyPool, hold: bool) -> TestResult {
    let statements: &[&str] = match (&ctx.backend, hold) {
        (TestBackend::Sqlite, true) => &["CREATE TRIGGER hold_refund_bookings BEFORE INSERT ON ledger_journals \
             WHEN NEW.refund_id IS NOT NULL BEGIN SELECT RAISE(ABORT, 'refund bookings held'); END"],
        (TestBackend::Sqlite, false) => &["DROP TRIGGER hold_refund_bookings"],
        (TestBackend::Postgres(_), true) => &[
            "CREATE FUNCTION hold_refund_bookings() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'refund bookings held'; END $$",
            "CREATE TRIGGER hold_refund_bookings BEFORE INSERT ON ledger_journals FOR EACH ROW \
             WHEN (NEW.refund_id IS NOT NULL) EXECUTE FUNCTION hold_refund_bookings()",
        ],
        (TestBackend::Postgres(_), false) => {
            &["DROP TRIGGER hold_refund_bookings ON ledger_journals", "DROP FUNCTION hold_refund_bookings()"]
        }
    };
    for statement in statements {
        sqlx::query(statement).execute(pool).await?;
    }
    Ok(())
}

/// The refund is written, but its outcome cannot be (the database refuses its booking): the
/// request answers the PENDING refund and stores that answer under its key; once no request can
/// still be running, the status worker settles the refund, booked once, and the key keeps
/// answering with what the client was told.
pub async fn a_refund_left_pending_is_settled_by_the_status_worker_once(ctx: TestContext) -> TestResult {
    let clock = ManualClock::at_millis(chrono::Utc::now().timestamp_millis());
    let app = ctx.spawn_app_with(|f| f, Arc::new(clock.clone())).await;
    let token = bearer(&app).await?;
    let id = paid_payment(&app, &token, "REFUND-LEFT").await?;
    let pool = any_pool(&ctx.database_url).await?;

    hold_refund_bookings(&ctx, &pool, true).await?;
    let body = r#"{"amount": 3.00}"#;
    let first = post(&app, &token, &refunds_path(&id), body, Some("refund-left")).await?;
    assert_eq!(first.status(), 201, "the refund stands, its outcome comes later");
    let first: Value = first.json().await?;
    assert_eq!(first["status"], "PENDING");
    let refund_id = first["refundId"].as_str().unwrap_or_default().to_owned();
    hold_refund_bookings(&ctx, &pool, false).await?;

    let replay = post(&app, &token, &refunds_path(&id), body, Some("refund-left")).await?;
    assert_eq!(replay.json::<Value>().await?, first, "answered from the key, not made again");
    // Not before the request timeout: the request that made it might still be running.
    assert_eq!(app.state.db.refund(&refund_id).await?.map(|r| r.status.as_str()), Some("PENDING"));

    clock.advance_secs(31);
    settled_once(&app, &pool, &refund_id, "the status worker settles the refund").await?;
    assert_eq!(app.state.db.refunds_of(&id).await?.len(), 1);
    let later = post(&app, &token, &refunds_path(&id), body, Some("refund-left")).await?;
    assert_eq!(later.json::<Value>().await?, first, "the key keeps the first answer");
    app.stop().await
}
backend_test!(a_refund_left_pending_is_settled_by_the_status_worker_once);

use pforte::audit::AuditEvent;
use serde_json::json;

use crate::helpers::{TestBackend, TestContext, TestResult};
use crate::keys::any_pool;

fn event(n: usize) -> AuditEvent {
    AuditEvent::new("test.event", "system", &format!("subject-{n}"), json!({ "n": n }))
}

/// Switches off the append-only triggers, as someone with direct database access could.
pub async fn bypass_append_only_guard(ctx: &TestContext, pool: &sqlx::AnyPool) -> TestResult {
    match ctx.backend {
        TestBackend::Sqlite => {
            sqlx::query("DROP TRIGGER audit_log_no_update").execute(pool).await?;
            sqlx::query("DROP TRIGGER audit_log_no_delete").execute(pool).await?;
        }
        TestBackend::Postgres(_) => {
            sqlx::query("ALTER TABLE audit_log DISABLE TRIGGER USER").execute(pool).await?;
        }
    }
    Ok(())
}

pub async fn chain_of_appended_events_verifies(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let before = app.state.audit.verify().await?;
    for n in 0..5 {
        app.state.audit.append(event(n)).await?;
    }
    let report = app.state.audit.verify().await?;
    assert_eq!(report.first_broken, None);
    assert_eq!(report.rows, before.rows + 5);
    assert_ne!(report.head_hash, before.head_hash);
    let rows = app.state.db.audit_entries_after(0, 1000).await?;
    for pair in rows.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash);
        assert_eq!(pair[1].seq, pair[0].seq + 1);
    }
    app.stop().await
}
backend_test!(chain_of_appended_events_verifies);

pub async fn database_refuses_to_update_or_delete_audit_rows(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    app.state.audit.append(event(1)).await?;
    let pool = any_pool(&ctx.database_url).await?;
    let update = sqlx::query("UPDATE audit_log SET actor = 'mallory' WHERE seq = 1").execute(&pool).await;
    assert!(update.is_err_and(|e| e.to_string().contains("append-only")));
    let delete = sqlx::query("DELETE FROM audit_log WHERE seq = 1").execute(&pool).await;
    assert!(delete.is_err_and(|e| e.to_string().contains("append-only")));
    assert_eq!(app.state.audit.verify().await?.first_broken, None);
    app.stop().await
}
backend_test!(database_refuses_to_update_or_delete_audit_rows);

pub async fn altered_row_is_named_as_the_first_broken_one(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    for n in 0..4 {
        app.state.audit.append(event(n)).await?;
    }
    let pool = any_pool(&ctx.database_url).await?;
    bypass_append_only_guard(&ctx, &pool).await?;
    sqlx::query("UPDATE audit_log SET details = '{\"n\":99}' WHERE seq = 3").execute(&pool).await?;
    let report = app.state.audit.verify().await?;
    let broken = report.first_broken.expect("tampering detected");
    assert_eq!(broken.seq, 3);
    assert!(broken.reason.contains("altered"), "{}", broken.reason);
    assert_eq!(report.rows, 2, "rows before the broken one verified");
    app.stop().await
}
backend_test!(altered_row_is_named_as_the_first_broken_one);

pub async fn removed_row_is_detected(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    for n in 0..4 {
        app.state.audit.append(event(n)).await?;
    }
    let pool = any_pool(&ctx.database_url).await?;
    bypass_append_only_guard(&ctx, &pool).await?;
    sqlx::query("DELETE FROM audit_log WHERE seq = 2").execute(&pool).await?;
    let broken = app.state.audit.verify().await?.first_broken.expect("gap detected");
    assert_eq!(broken.seq, 3);
    assert!(broken.reason.contains("missing"), "{}", broken.reason);
    app.stop().await
}
backend_test!(removed_row_is_detected);

pub async fn concurrent_appends_form_one_unbroken_chain(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let before = app.state.audit.verify().await?.rows;
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..24 {
        let audit = app.state.audit.clone();
        tasks.spawn(async move { audit.append(event(n)).await });
    }
    let mut seqs = Vec::new();
    while let Some(result) = tasks.join_next().await {
        seqs.push(result??);
    }
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), 24, "every append got its own position");
    let report = app.state.audit.verify().await?;
    assert_eq!(report.first_broken, None);
    assert_eq!(report.rows, before + 24);
    app.stop().await
}
backend_test!(concurrent_appends_form_one_unbroken_chain);

pub async fn event_rolled_back_with_its_transaction_leaves_no_trace(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let before = app.state.audit.verify().await?;
    let mut tx = app.state.db.begin_write().await?;
    app.state.audit.append_in(&mut tx, event(7)).await?;
    tx.rollback().await?;
    let after = app.state.audit.verify().await?;
    assert_eq!(after, before);
    app.state.audit.append(event(8)).await?;
    assert_eq!(app.state.audit.verify().await?.rows, before.rows + 1);
    app.stop().await
}
backend_test!(event_rolled_back_with_its_transaction_leaves_no_trace);

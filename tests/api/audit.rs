//! The hash-chained audit log: audited actions taken over HTTP form one chain, `pforte audit verify`
//! names the first altered or missing row, and the database refuses updates and deletes. Events are
//! chained by the chainer shortly after their request; tests that read the chain wait for it with a
//! deadline ([`all_chained`]). The chainer's own tests are in `audit_chainer.rs`.

use pforte::audit::AuditEvent;
use serde_json::json;

use crate::finance::finance_token;
use crate::helpers::{eventually, output_text, TestApp, TestBackend, TestContext, TestResult};
use crate::keys::any_pool;

fn event(n: usize) -> AuditEvent {
    AuditEvent::new("test.event", "system", &format!("subject-{n}"), json!({ "n": n }))
}

/// What `pforte audit verify` reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    Intact {
        rows: u64,
        head_hash: String,
    },
    /// Exit 3: the first row that does not fit, why, and how many rows before it verified.
    Broken {
        seq: i64,
        reason: String,
        rows_before: u64,
    },
    /// Exit 5: the chain is intact, but `overdue` events waited longer than the bound to be chained,
    /// the oldest for `oldest_ms`.
    Late {
        rows: u64,
        overdue: i64,
        oldest_ms: i64,
    },
}

/// Waits until every recorded audit event is chained (a running instance chains within
/// `audit.chain_interval_ms`), or fails at the deadline.
pub async fn all_chained(ctx: &TestContext) -> TestResult {
    let pool = any_pool(&ctx.database_url).await?;
    let chained = eventually(std::time::Duration::from_secs(20), "every audit event chained", || {
        let pool = pool.clone();
        async move {
            let pending: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_pending").fetch_one(&pool).await?;
            Ok((pending == 0).then_some(()))
        }
    })
    .await;
    pool.close().await;
    chained
}

/// Every audit event `app` recorded, in chain order, once each is chained: the test chains what is
/// pending itself (as the app's chainer would within `audit.chain_interval_ms`), and waits while
/// that chainer holds the lock.
pub async fn chained_events(app: &TestApp) -> anyhow::Result<Vec<pforte::store::AuditRow>> {
    eventually(std::time::Duration::from_secs(20), "every audit event chained", || async {
        app.state.audit.chain_pending().await?;
        Ok((app.state.db.audit_pending_summary(None).await?.count == 0).then_some(()))
    })
    .await?;
    Ok(app.state.db.audit_entries_after(0, 100_000).await?)
}

/// Waits until every recorded event is chained, then runs `pforte audit verify`.
pub async fn audit_verify(ctx: &TestContext) -> anyhow::Result<Verified> {
    all_chained(ctx).await?;
    audit_verify_now(ctx)
}

/// Runs `pforte audit verify` against the test's database as it is and reads its answer.
pub fn audit_verify_now(ctx: &TestContext) -> anyhow::Result<Verified> {
    let output = ctx.run_cli(&["audit", "verify"])?;
    let stdout = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let unexpected = || anyhow::anyhow!("exit {:?}: {}", output.status.code(), output_text(&output));
    let first_line = stdout.lines().next().unwrap_or_default();
    let intact = || -> anyhow::Result<(u64, String)> {
        let rest = first_line.strip_prefix("audit log intact: ").ok_or_else(unexpected)?;
        let (rows, head_hash) = rest.split_once(" rows, head hash ").ok_or_else(unexpected)?;
        Ok((rows.parse()?, head_hash.to_owned()))
    };
    match output.status.code() {
        Some(0) => {
            let (rows, head_hash) = intact()?;
            Ok(Verified::Intact { rows, head_hash })
        }
        Some(5) => {
            let (rows, _) = intact()?;
            let late = stdout.lines().nth(1).unwrap_or_default();
            let rest = late.strip_prefix("audit log LATE: ").ok_or_else(unexpected)?;
            let (overdue, rest) = rest.split_once(" events not chained within ").ok_or_else(unexpected)?;
            let (_, rest) = rest.split_once(", the oldest for ").ok_or_else(unexpected)?;
            let (oldest_ms, _) = rest.split_once(" ms;").ok_or_else(unexpected)?;
            Ok(Verified::Late { rows, overdue: overdue.parse()?, oldest_ms: oldest_ms.parse()? })
        }
        Some(3) => {
            let rest = stdout.strip_prefix("audit log BROKEN at row ").ok_or_else(unexpected)?;
            let (seq, rest) = rest.split_once(": ").ok_or_else(unexpected)?;
            let (reason, rest) = rest.rsplit_once(" (").ok_or_else(unexpected)?;
            let rows_before = rest.strip_suffix(" rows before it verified)").ok_or_else(unexpected)?;
            Ok(Verified::Broken { seq: seq.parse()?, reason: reason.to_owned(), rows_before: rows_before.parse()? })
        }
        _ => Err(unexpected()),
    }
}

fn intact_rows(verified: &Verified) -> anyhow::Result<u64> {
    match verified {
        Verified::Intact { rows, .. } => Ok(*rows),
        broken => anyhow::bail!("audit log not intact: {broken:?}"),
    }
}

/// One audited action over HTTP: an allowed use of a finance token (`finance.access_allowed`). A
/// refused use is no longer one: anyone can cause it, so it is counted outside the chain (SECURITY.md #32).
async fn allowed_finance_access(app: &TestApp, token: &str) -> TestResult {
    let response = app
        .client
        .get(app.url("/finance/09162000/bookings?from=2026-11-01&to=2026-11-30"))
        .bearer_auth(token)
        .send()
        .await?;
    anyhow::ensure!(response.status() == 200, "expected 200, got {}", response.status());
    Ok(())
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
    let token = finance_token(&ctx, "09162000")?;
    let before = audit_verify(&ctx).await?;
    for _ in 0..5 {
        allowed_finance_access(&app, &token).await?;
    }
    let after = audit_verify(&ctx).await?;
    assert_eq!(intact_rows(&after)?, intact_rows(&before)? + 5);
    assert_ne!(after, before, "a new head hash");
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
    let token = finance_token(&ctx, "09162000")?;
    let before = intact_rows(&audit_verify(&ctx).await?)?;
    allowed_finance_access(&app, &token).await?;
    let pool = any_pool(&ctx.database_url).await?;
    let update = sqlx::query("UPDATE audit_log SET actor = 'mallory' WHERE seq = 1").execute(&pool).await;
    assert!(update.is_err_and(|e| e.to_string().contains("append-only")));
    let delete = sqlx::query("DELETE FROM audit_log WHERE seq = 1").execute(&pool).await;
    assert!(delete.is_err_and(|e| e.to_string().contains("append-only")));
    assert_eq!(intact_rows(&audit_verify(&ctx).await?)?, before + 1, "nothing changed but the allowed access");
    app.stop().await
}
backend_test!(database_refuses_to_update_or_delete_audit_rows);

pub async fn altered_row_is_named_as_the_first_broken_one(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let token = finance_token(&ctx, "09162000")?;
    for _ in 0..3 {
        allowed_finance_access(&app, &token).await?;
    }
    all_chained(&ctx).await?;
    let pool = any_pool(&ctx.database_url).await?;
    bypass_append_only_guard(&ctx, &pool).await?;
    sqlx::query("UPDATE audit_log SET details = '{\"n\":99}' WHERE seq = 3").execute(&pool).await?;
    let Verified::Broken { seq, reason, rows_before } = audit_verify(&ctx).await? else {
        anyhow::bail!("tampering not detected");
    };
    assert_eq!(seq, 3);
    assert!(reason.contains("altered"), "{reason}");
    assert_eq!(rows_before, 2, "rows before the broken one verified");
    app.stop().await
}
backend_test!(altered_row_is_named_as_the_first_broken_one);

pub async fn removed_row_is_detected(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let token = finance_token(&ctx, "09162000")?;
    for _ in 0..3 {
        allowed_finance_access(&app, &token).await?;
    }
    all_chained(&ctx).await?;
    let pool = any_pool(&ctx.database_url).await?;
    bypass_append_only_guard(&ctx, &pool).await?;
    sqlx::query("DELETE FROM audit_log WHERE seq = 2").execute(&pool).await?;
    let Verified::Broken { seq, reason, .. } = audit_verify(&ctx).await? else {
        anyhow::bail!("gap not detected");
    };
    assert_eq!(seq, 3);
    assert!(reason.contains("missing"), "{reason}");
    app.stop().await
}
backend_test!(removed_row_is_detected);

pub async fn concurrent_appends_form_one_unbroken_chain(ctx: TestContext) -> TestResult {
    let app = std::sync::Arc::new(ctx.spawn_app().await);
    let token = finance_token(&ctx, "09162000")?;
    let before = intact_rows(&audit_verify(&ctx).await?)?;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..24 {
        let (app, token) = (app.clone(), token.clone());
        tasks.spawn(async move { allowed_finance_access(&app, &token).await });
    }
    while let Some(result) = tasks.join_next().await {
        result??;
    }
    // Every use got its own position: 24 more rows, one unbroken chain.
    assert_eq!(intact_rows(&audit_verify(&ctx).await?)?, before + 24);
    let uses = app.state.db.audit_entries_after(0, 1000).await?;
    assert_eq!(uses.iter().filter(|r| r.event == "finance.access_allowed").count(), 24);
    match std::sync::Arc::try_unwrap(app) {
        Ok(app) => app.stop().await,
        Err(_) => anyhow::bail!("a request task still holds the app"),
    }
}
backend_test!(concurrent_appends_form_one_unbroken_chain);

/// Stays on the audit service: no outside action appends an event and then rolls its transaction back.
pub async fn event_rolled_back_with_its_transaction_leaves_no_trace(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    all_chained(&ctx).await?;
    let before = app.state.audit.verify().await?;
    let mut tx = app.state.db.begin_write().await?;
    app.state.audit.append_in(&mut tx, event(7)).await?;
    tx.rollback().await?;
    all_chained(&ctx).await?;
    let after = app.state.audit.verify().await?;
    assert_eq!(after, before);
    app.state.audit.append(event(8)).await?;
    all_chained(&ctx).await?;
    assert_eq!(app.state.audit.verify().await?.rows, before.rows + 1);
    app.stop().await
}
backend_test!(event_rolled_back_with_its_transaction_leaves_no_trace);

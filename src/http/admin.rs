//! The operator's address (`server.metrics_listen`): what only the people who run pforte may reach
//! (metrics, dependency status, registry reload). It is a separate listener, off by default, so none
//! of it is ever served on the public address; it has no authentication of its own and belongs on a
//! loopback or internal interface.

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use super::error::{ApiError, ErrorCode};
use super::state::AppState;
use crate::health::Overall;
use crate::registry::reload::ReloadTrigger;
use crate::telemetry::metrics::{self, Backlog, Pool, Scrape};

/// How long a scrape waits for the database's backlog figures; a scraper's own timeout is longer.
const BACKLOG_TIMEOUT: Duration = Duration::from_secs(2);

/// The routes served on `server.metrics_listen`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .route("/status", get(status))
        .route("/reload", post(reload))
        .with_state(state)
}

/// `GET /status`: the dependencies' last checked state (`health::Report`; checked now if no round
/// has finished yet). 200 while the database answers, whatever the providers' state (the body says
/// `ok` or `degraded`); 503 when the database is down, so a plain HTTP check alerts on that alone.
async fn status(State(state): State<AppState>) -> Response {
    let report = match state.health.latest() {
        Some(report) => report,
        None => state.health.check().await,
    };
    let code = match report.status {
        Overall::Down => StatusCode::SERVICE_UNAVAILABLE,
        Overall::Ok | Overall::Degraded => StatusCode::OK,
    };
    (code, [(header::CACHE_CONTROL, "no-store")], Json(report)).into_response()
}

/// `GET /metrics`: the Prometheus text format. The database's figures are read now, within
/// [`BACKLOG_TIMEOUT`]; without an answer the rest is served with `pforte_database_up 0`.
async fn metrics_text(State(state): State<AppState>) -> Response {
    let Some(handle) = metrics::handle() else {
        return (StatusCode::NOT_FOUND, "metrics are not recorded in this process\n").into_response();
    };
    let now = state.clock.now_millis();
    let backlog = match tokio::time::timeout(BACKLOG_TIMEOUT, state.db.backlog(now)).await {
        Ok(Ok(backlog)) => Some(backlog),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "metrics scrape without the database's figures");
            None
        }
        Err(_) => None,
    };
    let age = |since: Option<i64>| since.map_or(0.0, |at| (now - at).max(0) as f64 / 1000.0);
    let (write_transactions, write_wait_seconds) = state.db.write_waits();
    let scrape = Scrape {
        backlog: backlog.map(|b| Backlog {
            outbox_depth: b.outbox_depth,
            outbox_oldest_age_seconds: age(b.outbox_oldest_created_at),
            status_check_lag_seconds: age(b.oldest_check_due_at),
            open_payments: b.open_payments,
            open_payments_expired: b.open_payments_expired,
            audit_pending: b.audit_pending,
            audit_oldest_pending_age_seconds: age(b.audit_oldest_recorded_at),
        }),
        pools: state
            .db
            .pool_use()
            .into_iter()
            .map(|p| Pool { name: p.name, in_use: p.in_use, idle: p.idle, max: p.max })
            .collect(),
        write_transactions,
        write_wait_seconds,
        group_commits: state.db.group_commits(),
    };
    let content_type = "text/plain; version=0.0.4; charset=utf-8";
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-store")], metrics::render(&handle, &scrape))
        .into_response()
}

/// `POST /reload`: reads the registry again as SIGHUP does. 200 with what changed (ids per kind), or
/// 422 problem+json naming every problem by file and key as `pforte check` does; the registry in
/// use then stays as it was.
async fn reload(State(state): State<AppState>) -> Response {
    match state.reload.reload(ReloadTrigger::Admin).await {
        Ok(changes) => {
            let registry = state.registry.current().counts().to_string();
            Json(json!({ "reloaded": true, "changes": changes, "registry": registry })).into_response()
        }
        Err(problems) => {
            let listed: Vec<_> = problems
                .0
                .iter()
                .map(|p| json!({ "file": p.source, "key": p.key, "reason": p.reason, "text": p.to_string() }))
                .collect();
            let detail = format!("{} problem(s) found; nothing was changed", problems.0.len());
            ApiError::new(ErrorCode::InvalidRegistry, detail).with_member("problems", json!(listed)).into_response()
        }
    }
}

//! Liveness and readiness for orchestrators and load balancers.

use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::error::{ApiError, ErrorCode};
use crate::http::state::AppState;
use crate::store::ProbeFailure;

const PING_TIMEOUT: Duration = Duration::from_secs(2);

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz))
}

/// The process is alive and serving; says nothing about the database.
async fn healthz() -> Json<Value> {
    Json(json!({ "status": "alive", "version": env!("CARGO_PKG_VERSION") }))
}

/// Ready when the database was migrated since start and answers now.
async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    if !state.readiness.is_ready() {
        return Err(ApiError::new(ErrorCode::Unavailable, "The database has not been reached and migrated yet."));
    }
    // The probe logs an outage once when it starts and once when it ends, not per check.
    match state.db.probe(PING_TIMEOUT).await {
        Ok(()) => Ok(Json(json!({ "status": "ready", "database": state.db.backend_name() }))),
        Err(ProbeFailure::Failed(_)) => Err(ApiError::new(ErrorCode::Unavailable, "The database is not reachable.")),
        Err(ProbeFailure::TimedOut(_)) => {
            Err(ApiError::new(ErrorCode::Unavailable, "The database did not answer in time."))
        }
    }
}

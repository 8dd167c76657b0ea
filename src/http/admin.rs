//! The operator's address (`server.metrics_listen`): what only the people who run pforte may reach
//! (metrics, dependency status, registry reload). It is a separate listener, off by default, so none
//! of it is ever served on the public address; it has no authentication of its own and belongs on a
//! loopback or internal interface.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use super::state::AppState;
use crate::health::Overall;

/// The routes served on `server.metrics_listen`.
pub fn router(state: AppState) -> Router {
    Router::new().route("/status", get(status)).with_state(state)
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

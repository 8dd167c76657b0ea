//! The operator's address (`server.metrics_listen`): what only the people who run pforte may reach
//! (metrics, dependency status, registry reload). It is a separate listener, off by default, so none
//! of it is ever served on the public address; it has no authentication of its own and belongs on a
//! loopback or internal interface.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;

use super::error::{ApiError, ErrorCode};
use super::state::AppState;
use crate::registry::reload::ReloadTrigger;

/// The routes served on `server.metrics_listen`.
pub fn router(state: AppState) -> Router {
    Router::new().route("/reload", post(reload)).with_state(state)
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

//! The operator's address (`server.metrics_listen`): what only the people who run pforte may reach
//! (metrics, dependency status, registry reload). It is a separate listener, off by default, so none
//! of it is ever served on the public address; it has no authentication of its own and belongs on a
//! loopback or internal interface.

use axum::Router;

use super::state::AppState;

/// The routes served on `server.metrics_listen`.
pub fn router(state: AppState) -> Router {
    Router::new().with_state(state)
}

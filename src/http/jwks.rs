//! The JWK Set with pforte's published signing keys.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use super::error::{ApiError, ErrorCode};
use crate::config::JWKS_MAX_AGE_SECS;
use crate::http::state::AppState;
use crate::keys::KeyError;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/.well-known/jwks.json", get(jwks))
}

/// Served from the keys in memory: a database outage does not change the answer. Only before the
/// keys were ever read (the database away since the start) is there nothing to publish: 503.
async fn jwks(State(state): State<AppState>) -> Response {
    match state.keys.jwks().await {
        // Short caching: verifiers refetch on an unknown kid anyway.
        Ok(set) => {
            let cache = format!("public, max-age={JWKS_MAX_AGE_SECS}");
            ([(header::CACHE_CONTROL, cache)], Json(set)).into_response()
        }
        Err(e @ (KeyError::Storage(_) | KeyError::Unreachable)) => {
            tracing::warn!(error = %e, "no signing keys in memory yet and the database is away");
            let detail = "The signing keys could not be read yet; try again shortly.";
            // `Retry-After` comes from the router's layer, as on every 503.
            ApiError::new(ErrorCode::Unavailable, detail).into_response()
        }
        Err(e) => ApiError::internal(&e).into_response(),
    }
}

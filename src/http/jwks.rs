//! The JWK Set with pforte's published signing keys.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};

use super::error::ApiError;
use crate::http::state::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/.well-known/jwks.json", get(jwks))
}

async fn jwks(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let set = state.keys.jwks().await.map_err(|e| ApiError::internal(&e))?;
    // Short caching: verifiers refetch on an unknown kid anyway, and rotation adds keys in advance.
    Ok(([(header::CACHE_CONTROL, "public, max-age=300")], Json(set)))
}

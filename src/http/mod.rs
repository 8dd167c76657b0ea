//! The HTTP edge: one module per resource, each exposing `router()`, merged here with the layers
//! every request passes through.

mod callbacks;
pub(crate) mod error;
pub(crate) mod finance;
mod finance_page;
mod finance_reports;
mod health;
mod home;
pub(crate) mod html;
mod jwks;
pub(crate) mod middleware;
pub mod oidc;
mod openapi;
pub(crate) mod payments;
pub mod state;

use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::Router;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;

use crate::http::state::AppState;
use error::{ApiError, ErrorCode};

/// pforte's routes and `extra_routes` (the development simulators, when `app` mounts them), behind
/// the layers every request passes through.
pub fn router(state: AppState, extra_routes: Router) -> Router {
    let timeout = Duration::from_secs(state.settings.server.request_timeout_secs);
    let body_limit = state.settings.server.body_limit_bytes;
    let routes = Router::new()
        .merge(home::router())
        .merge(health::router())
        .merge(jwks::router())
        .merge(oidc::router())
        .merge(payments::router())
        .merge(finance::router())
        .merge(finance_reports::router())
        .merge(callbacks::router())
        .merge(openapi::router())
        .with_state(state)
        .merge(extra_routes);
    let mut router = routes
        .fallback(not_found)
        .layer(TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, timeout))
        .layer(DefaultBodyLimit::disable())
        .layer(RequestBodyLimitLayer::new(body_limit))
        // Outside the limits and the timeout, so their bare responses get the standard body too.
        .layer(axum::middleware::map_response(middleware::standard_error_body))
        .layer(axum::middleware::map_response(middleware::retry_after));
    for (name, value) in middleware::security_headers() {
        router = router.layer(SetResponseHeaderLayer::if_not_present(name, value));
    }
    router.layer(axum::middleware::from_fn(middleware::request_context))
}

async fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "No resource at this path.")
}

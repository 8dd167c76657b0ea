//! The HTTP edge: one module per resource, each exposing `router()`, merged here with the layers
//! every request passes through.

mod callbacks;
pub mod error;
pub(crate) mod finance;
mod finance_reports;
mod health;
mod home;
pub mod html;
mod jwks;
pub mod middleware;
pub mod oidc;
mod openapi;
pub mod payments;
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

pub fn router(state: AppState) -> Router {
    let limits = &state.settings.server;
    let mut routes = Router::new()
        .merge(home::router())
        .merge(health::router())
        .merge(jwks::router())
        .merge(oidc::router())
        .merge(payments::router())
        .merge(finance::router())
        .merge(finance_reports::router())
        .merge(callbacks::router())
        .merge(openapi::router());
    // The configuration allows simulators only on a loopback public URL.
    if state.settings.dev.simulators {
        routes = routes.merge(crate::dev::router(&state));
    }
    let mut router = routes
        .fallback(not_found)
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(limits.request_timeout_secs),
        ))
        .layer(DefaultBodyLimit::disable())
        .layer(RequestBodyLimitLayer::new(limits.body_limit_bytes))
        // Outside the limits and the timeout, so their bare responses get the standard body too.
        .layer(axum::middleware::map_response(middleware::standard_error_body));
    for (name, value) in middleware::security_headers() {
        router = router.layer(SetResponseHeaderLayer::if_not_present(name, value));
    }
    router.layer(axum::middleware::from_fn(middleware::request_context)).with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "No resource at this path.")
}

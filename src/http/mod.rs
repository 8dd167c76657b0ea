//! The HTTP edge: one module per resource, each exposing `router()`, merged here with the layers
//! every request passes through.

pub mod admin;
mod callbacks;
mod cookies;
pub(crate) mod error;
pub(crate) mod finance;
mod finance_page;
mod finance_reports;
mod finance_staff;
mod health;
mod home;
pub(crate) mod html;
mod jwks;
pub(crate) mod middleware;
pub mod oidc;
mod openapi;
pub(crate) mod payments;
mod rate_limit;
pub use rate_limit::ClientBudgets;
mod saml;
pub use saml::saml_base;
pub mod state;
mod transfer;
mod transfer_evidence;

pub use finance_staff::staff_callback_base;

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
    let public_url = std::sync::Arc::new(state.settings.server.public_url.clone());
    let rate_limits = std::sync::Arc::new(rate_limit::RateLimits::new(&state.settings));
    let routes = Router::new()
        .merge(home::router())
        .merge(health::router())
        .merge(jwks::router())
        .merge(oidc::router())
        .merge(payments::router())
        .merge(finance::router())
        .merge(finance_reports::router())
        .merge(finance_staff::router())
        .merge(callbacks::router())
        .merge(openapi::router())
        .merge(saml::router())
        .merge(transfer::router())
        .merge(transfer_evidence::router())
        .with_state(state.clone())
        .merge(extra_routes)
        .layer(RequestBodyLimitLayer::new(body_limit));
    // Uploads of settlement reports and bank statements may be as large as an import may be, with
    // room for the form around the file; the importer refuses a larger file with its reason.
    let upload_limit = usize::try_from(state.settings.finance.import_max_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(UPLOAD_FORM_OVERHEAD);
    let uploads =
        finance_staff::upload_router().with_state(state.clone()).layer(RequestBodyLimitLayer::new(upload_limit));
    // A Datentransfer submit carries the encrypted metadata and data, as large as the operator allows;
    // the domain refuses more than `transfer.max_submit_bytes` with its reason.
    let submit_limit = usize::try_from(state.settings.transfer.max_submit_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(UPLOAD_FORM_OVERHEAD);
    let transfer_submits =
        transfer::submit_router().with_state(state.clone()).layer(RequestBodyLimitLayer::new(submit_limit));
    // Datentransfer attachments stream for as long as `transfer.stream_timeout_secs` allows; their
    // size is bounded while they stream (`transfer.max_attachment_bytes`), so they pass neither the
    // general body limit nor the request timeout.
    let stream_timeout = Duration::from_secs(state.settings.transfer.stream_timeout_secs);
    let transfer_streams = transfer::stream_router()
        .with_state(state)
        .layer(TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, stream_timeout));
    let mut router = routes
        .merge(uploads)
        .merge(transfer_submits)
        .fallback(not_found)
        .layer(TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, timeout))
        .merge(transfer_streams)
        .layer(DefaultBodyLimit::disable())
        // Outside the limits and the timeout, so their bare responses get the standard body too.
        .layer(axum::middleware::map_response(middleware::standard_error_body))
        .layer(axum::middleware::map_response(middleware::retry_after))
        .layer(axum::middleware::from_fn_with_state(public_url, middleware::public_host))
        // Before anything else looks at the request, so a refused flood costs no database work.
        .layer(axum::middleware::from_fn_with_state(rate_limits, rate_limit::limit));
    for (name, value) in middleware::security_headers() {
        router = router.layer(SetResponseHeaderLayer::if_not_present(name, value));
    }
    router.layer(axum::middleware::from_fn(middleware::request_context))
}

/// Bytes an upload form may carry beyond the file itself (the other fields and multipart framing).
const UPLOAD_FORM_OVERHEAD: usize = 64 * 1024;

async fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "No resource at this path.")
}

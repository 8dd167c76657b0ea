//! Cross-cutting HTTP behaviour: request ids and access logs, the standard error body for errors the
//! framework produces itself, and security headers.

use std::time::Instant;

use axum::extract::Request;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use super::error::{ApiError, ErrorCode};

pub(crate) const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Gives every request a fresh id (a client-sent one is ignored: it could carry anything into the
/// logs), runs it inside a span carrying that id, and logs one line per request. Only the path is
/// logged: query strings carry codes, states and tokens.
pub(crate) async fn request_context(request: Request, next: Next) -> Response {
    let id = uuid::Uuid::new_v4().to_string();
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %request.method(),
        path = %request.uri().path(),
    );
    async move {
        let started = Instant::now();
        let mut response = next.run(request).await;
        let status = response.status().as_u16();
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        if status >= 500 {
            tracing::warn!(status, latency_ms, "request finished");
        } else {
            tracing::info!(status, latency_ms, "request finished");
        }
        if let Ok(value) = HeaderValue::from_str(&id) {
            response.headers_mut().insert(REQUEST_ID, value);
        }
        response
    }
    .instrument(span)
    .await
}

/// Errors produced below the handlers (method not allowed, body too large, timeouts, extractor
/// rejections) arrive with an empty or plain-text body; they get the standard problem body.
/// Responses that already chose a format (problem+json, OAuth JSON, HTML error pages) stay as they are.
pub(crate) async fn standard_error_body(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let plain = match response.headers().get(header::CONTENT_TYPE) {
        None => true,
        Some(value) => value.to_str().is_ok_and(|v| v.starts_with("text/plain")),
    };
    if !plain {
        return response;
    }
    let code = ErrorCode::for_status(status);
    let detail = match code {
        ErrorCode::PayloadTooLarge => "The request body exceeds the configured limit.".to_owned(),
        ErrorCode::MethodNotAllowed => "This path does not accept that method.".to_owned(),
        ErrorCode::Timeout => "The request was not completed in time.".to_owned(),
        ErrorCode::UnsupportedMediaType => "The request body's content type is not accepted here.".to_owned(),
        _ => {
            // An extractor's rejection text says what was wrong with the input and holds no secrets.
            let bytes = axum::body::to_bytes(response.into_body(), 4096).await.unwrap_or_default();
            let text = String::from_utf8_lossy(&bytes).trim().to_owned();
            if text.is_empty() {
                status.canonical_reason().unwrap_or("error").to_owned()
            } else {
                text
            }
        }
    };
    let mut replaced = ApiError::new(code, detail).into_response();
    *replaced.status_mut() = status;
    replaced
}

/// How long a client is asked to wait before trying again after a 503.
const RETRY_AFTER_SECS: &str = "2";

/// Every 503 says when to try again (`Retry-After`), whatever produced it: the database or a
/// provider away, the request timeout, readiness. A 503 is always "try again", never "refused".
pub(crate) async fn retry_after(mut response: Response) -> Response {
    if response.status() == StatusCode::SERVICE_UNAVAILABLE && !response.headers().contains_key(header::RETRY_AFTER) {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECS));
    }
    response
}

/// Headers every response carries; pages that need a different policy set their own first.
pub(crate) fn security_headers() -> [(HeaderName, HeaderValue); 4] {
    [
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                 frame-ancestors 'none'; base-uri 'none'",
            ),
        ),
        (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
    ]
}

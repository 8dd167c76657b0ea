//! Cross-cutting HTTP behaviour: request ids, access logs, request metrics and the request's trace
//! span (continuing a caller's W3C trace context), the standard error body for errors the framework
//! produces itself, and security headers.

use std::time::Instant;

use axum::extract::Request;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use super::error::{ApiError, ErrorCode};

pub(crate) const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Gives every request a fresh id (a client-sent one is ignored: it could carry anything into the
/// logs), runs it inside a span carrying that id, and logs one line per request. The path logged is
/// the route's template (`/pay/{tx}`), never the path sent: paths carry transaction ids, which let
/// their bearer act on a payment, and query strings carry codes, states and tokens (SECURITY.md #25).
pub(crate) async fn request_context(request: Request, next: Next) -> Response {
    let id = uuid::Uuid::new_v4().to_string();
    let route = matched_route(&request);
    let path = route.clone().unwrap_or_else(|| UNMATCHED_PATH.to_owned());
    let method = request.method().clone();
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %request.method(),
        path = %path,
        otel.name = %format_args!("{} {path}", request.method()),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
    );
    continue_trace(&span, request.headers());
    async move {
        let started = Instant::now();
        let mut response = next.run(request).await;
        let status = response.status().as_u16();
        record_status(status);
        let took = started.elapsed();
        let latency_ms = took.as_secs_f64() * 1000.0;
        crate::telemetry::metrics::http_request(route.as_deref(), method.as_str(), status, took);
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

/// An online service's (or a provider's) W3C `traceparent` makes the request span part of its trace.
/// Only the trace context is read; without a trace exporter this changes nothing.
fn continue_trace(span: &tracing::Span, headers: &axum::http::HeaderMap) {
    use opentelemetry::propagation::TextMapPropagator;
    if !headers.contains_key("traceparent") {
        // Nothing to continue; most requests carry none, and extracting costs allocations.
        return;
    }
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let parent = opentelemetry_sdk::propagation::TraceContextPropagator::new().extract(&TraceHeaders(headers));
    // Fails only when traces are off (no layer to take the parent): nothing to continue then.
    let _ = span.set_parent(parent);
}

/// The status on the request span, for traces (the log line carries it itself).
fn record_status(status: u16) {
    let span = tracing::Span::current();
    span.record("http.response.status_code", status);
    if status >= 500 {
        span.record("otel.status_code", "error");
    }
}

struct TraceHeaders<'a>(&'a axum::http::HeaderMap);

impl opentelemetry::propagation::Extractor for TraceHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|name| name.as_str()).collect()
    }
}

/// The route template the router matched, for the log and metrics. A path that matched no route is
/// neither logged nor a label (it may be anything a client typed).
fn matched_route(request: &Request) -> Option<String> {
    request.extensions().get::<axum::extract::MatchedPath>().map(|matched| matched.as_str().to_owned())
}

/// What the request log says for a path that matched no route.
const UNMATCHED_PATH: &str = "(no route)";

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

/// The origins a form leading to one of `providers`' logins must be allowed to reach: each one's
/// issuer and discovered authorization endpoint. pforte's own origin (the simulators', the demo's)
/// is 'self' already and left out.
pub(crate) async fn provider_form_targets<'a>(
    state: &super::state::AppState,
    providers: impl Iterator<Item = &'a crate::registry::IdentityProvider>,
) -> Vec<url::Origin> {
    let origins = futures_util::future::join_all(providers.map(|idp| state.upstreams.login_origins(idp))).await;
    let own = state.settings.server.public_url.origin();
    origins.into_iter().flatten().filter(|origin| *origin != own).collect()
}

/// Headers every response carries; pages that need a different policy set their own first.
pub(crate) fn security_headers() -> [(HeaderName, HeaderValue); 4] {
    [
        (header::CONTENT_SECURITY_POLICY, content_security_policy(&[])),
        (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
    ]
}

/// pforte's Content-Security-Policy: its own stylesheet and images only, no scripts, no framing, and
/// forms that lead to pforte itself and to `form_targets`. Browsers apply `form-action` to every
/// redirect that follows a form's submission, so a page whose form is answered with a redirect to
/// another origin (the provider choice) must name that origin here, and no page names more.
pub(crate) fn content_security_policy(form_targets: &[url::Origin]) -> HeaderValue {
    let mut sources = vec!["'self'".to_owned()];
    for origin in form_targets.iter().filter(|origin| origin.is_tuple()) {
        let source = origin.ascii_serialization();
        if !sources.contains(&source) {
            sources.push(source);
        }
    }
    let policy = format!(
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action {}; frame-ancestors 'none'; \
         base-uri 'none'",
        sources.join(" ")
    );
    // An origin's ASCII serialisation is always a valid header value; the fallback is the strictest policy.
    HeaderValue::from_str(&policy).unwrap_or_else(|_| {
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; \
             base-uri 'none'",
        )
    })
}

/// Paths machines call: probes, metrics, OpenID and OAuth endpoints, keys, the upstream providers'
/// callbacks, the API documents. They answer under any host, so probes and proxies that address an
/// instance directly keep working.
const MACHINE_PATHS: &[&str] = &[
    "/healthz",
    "/readyz",
    "/metrics",
    "/.well-known/",
    "/token",
    "/userinfo",
    "/par",
    "/revoke",
    "/callback/",
    "/openapi/",
];

/// A browser page (GET or HEAD asking for HTML, not a machine path) requested under another host
/// than `server.public_url`'s is redirected to the same path and query at the public URL: pforte's
/// cookies, its forms' `form-action 'self'` and every redirect it sends name the public URL, so a
/// page reached under another name (`127.0.0.1` for `localhost`) would break at its first form.
/// Behind a reverse proxy the host is the proxy's `X-Forwarded-Host`, else `Host`; the target is
/// always the public URL, so neither header can send the browser elsewhere.
pub(crate) async fn public_host(
    axum::extract::State(public_url): axum::extract::State<std::sync::Arc<url::Url>>,
    request: Request,
    next: Next,
) -> Response {
    match redirect_to_public_url(&public_url, &request) {
        Some(location) => {
            let mut response = axum::http::StatusCode::TEMPORARY_REDIRECT.into_response();
            if let Ok(value) = HeaderValue::from_str(&location) {
                response.headers_mut().insert(header::LOCATION, value);
            }
            response
        }
        None => next.run(request).await,
    }
}

fn redirect_to_public_url(public_url: &url::Url, request: &Request) -> Option<String> {
    let method = request.method();
    if method != axum::http::Method::GET && method != axum::http::Method::HEAD {
        return None;
    }
    let path = request.uri().path();
    if MACHINE_PATHS.iter().any(|machine| is_under(path, machine)) {
        return None;
    }
    let headers = request.headers();
    let wants_html = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|value| value.to_ascii_lowercase().contains("text/html"));
    if !wants_html {
        return None;
    }
    let forwarded = headers.get("x-forwarded-host").and_then(|v| v.to_str().ok()).and_then(|v| v.split(',').next());
    let host = forwarded
        .or_else(|| request.uri().authority().map(|a| a.as_str()))
        .or_else(|| headers.get(header::HOST).and_then(|v| v.to_str().ok()))?;
    if is_public_host(public_url, host.trim()) {
        return None;
    }
    let base = public_url.as_str().trim_end_matches('/');
    let path_and_query = request.uri().path_and_query().map_or(path, |pq| pq.as_str());
    Some(format!("{base}{path_and_query}"))
}

/// Whether `path` is `machine` or below it (`/token` and `/token/x`, not `/tokens`).
fn is_under(path: &str, machine: &str) -> bool {
    let machine = machine.trim_end_matches('/');
    path == machine || path.strip_prefix(machine).is_some_and(|rest| rest.starts_with('/'))
}

/// Whether `host` (`name` or `name:port`, as a Host header carries it) names the public URL's host
/// and port; names compare without letter case, a missing port is the scheme's default.
fn is_public_host(public_url: &url::Url, host: &str) -> bool {
    let Ok(authority) = host.parse::<axum::http::uri::Authority>() else { return false };
    let (Some(public_host), Some(public_port)) = (public_url.host_str(), public_url.port_or_known_default()) else {
        return false;
    };
    let default_port = if public_url.scheme() == "https" { 443 } else { 80 };
    authority.host().eq_ignore_ascii_case(public_host) && authority.port_u16().unwrap_or(default_port) == public_port
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(uri: &str, host: &str) -> Request {
        Request::builder()
            .uri(uri)
            .header(header::HOST, host)
            .header(header::ACCEPT, "text/html,application/xhtml+xml")
            .body(axum::body::Body::empty())
            .unwrap()
    }

    #[test]
    fn the_policy_names_each_form_target_once_after_self() {
        let a = url::Url::parse("https://id.example/auth").map(|u| u.origin()).ok();
        let b = url::Url::parse("https://id.example:443/other").map(|u| u.origin()).ok();
        let targets: Vec<url::Origin> = [a, b].into_iter().flatten().collect();
        let policy = content_security_policy(&targets);
        assert!(policy.to_str().is_ok_and(|p| p.contains("form-action 'self' https://id.example;")), "{policy:?}");
        let default = content_security_policy(&[]);
        assert!(default.to_str().is_ok_and(|p| p.contains("form-action 'self';")), "{default:?}");
    }

    #[test]
    fn a_page_under_another_host_goes_to_the_public_url_with_path_and_query() {
        let public = url::Url::parse("http://localhost:8080").unwrap();
        let target = redirect_to_public_url(&public, &page("/demo?x=1", "127.0.0.1:8080"));
        assert_eq!(target.as_deref(), Some("http://localhost:8080/demo?x=1"));
        assert_eq!(redirect_to_public_url(&public, &page("/demo", "LOCALHOST:8080")), None, "letter case");
        assert_eq!(redirect_to_public_url(&public, &page("/readyz", "127.0.0.1:8080")), None, "a probe");
        assert_eq!(redirect_to_public_url(&public, &page("/callback/x?code=1", "127.0.0.1:8080")), None, "below one");
        assert!(redirect_to_public_url(&public, &page("/tokens", "127.0.0.1:8080")).is_some(), "only whole segments");
        let https = url::Url::parse("https://pforte.example").unwrap();
        assert_eq!(redirect_to_public_url(&https, &page("/", "pforte.example")), None, "the default port");
        assert!(redirect_to_public_url(&https, &page("/", "pforte.example:8443")).is_some(), "another port");
    }
}

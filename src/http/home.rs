//! The start page, the shared stylesheet and the favicon (served by pforte itself: pages load no
//! external assets, and a browser asks every origin for `/favicon.ico`).

use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::Router;

use crate::http::state::AppState;

const STYLESHEET: &str = include_str!("../../assets/pforte.css");
const FAVICON: &[u8] = include_bytes!("../../assets/favicon.ico");
/// Assets change only with a release; a day is short enough for a new one to show soon after.
const ASSET_CACHE: &str = "public, max-age=86400";

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/", get(home)).route("/assets/pforte.css", get(stylesheet)).route("/favicon.ico", get(favicon))
}

/// Each public endpoint with what it is for; later capabilities add their lines here.
const ENDPOINTS: &[(&str, &str)] = &[
    ("/healthz", "liveness: the process is up"),
    ("/readyz", "readiness: the database is reachable (503 otherwise)"),
    ("/.well-known/jwks.json", "public keys that verify tokens pforte signs"),
    ("/.well-known/openid-configuration", "OpenID Provider metadata for online services"),
    ("/authorize", "login: authorization endpoint (code flow with PKCE)"),
    ("/par", "pushed authorization requests (RFC 9126)"),
    ("/token", "token endpoint (authorization_code, client_credentials)"),
    ("/userinfo", "the logged-in identity behind an access token"),
    ("/revoke", "token revocation (RFC 7009)"),
    ("/logout", "RP-initiated logout"),
    ("/openapi/payment-api.yaml", "payment API (XBezahldienste and extensions): OpenAPI 3.1 document"),
    ("/openapi/payment-api.json", "the same OpenAPI document as JSON"),
    (
        "/openapi/transfer-api.yaml",
        "Datentransfer API (FIT-Connect Submission API v1 and extensions): OpenAPI 3.1 document",
    ),
    ("/openapi/transfer-api.json", "the same OpenAPI document as JSON"),
];

/// Shown only while the development simulators run.
const DEV_ENDPOINTS: &[(&str, &str)] = &[
    ("/demo", "development: demo online service that logs in through pforte"),
    ("/dev/bundid/.well-known/openid-configuration", "development: citizen account simulator"),
    ("/dev/unternehmenskonto/.well-known/openid-configuration", "development: company account simulator"),
    ("/dev/pay", "development: payment provider simulator A (XBezahldienste, pay page)"),
    ("/dev/pay-b", "development: payment provider simulator B (XBezahldienste, pay page)"),
];

async fn home(State(state): State<AppState>) -> Html<String> {
    let dev: &[(&str, &str)] = if state.settings.dev.simulators { DEV_ENDPOINTS } else { &[] };
    let rows: String = ENDPOINTS
        .iter()
        .chain(dev)
        .map(|(path, what)| format!("<tr><td><a href=\"{path}\"><code>{path}</code></a></td><td>{what}</td></tr>"))
        .collect();
    let body = format!(
        r#"<h1>pforte <small>version {version}</small></h1>
<p>Identity and payment broker for public-sector online services: login with state service accounts,
fee payment through the authorities' payment providers, and reconciliation for finance offices.</p>
<h2>Endpoints</h2>
<table>
<thead><tr><th scope="col">Path</th><th scope="col">Purpose</th></tr></thead>
<tbody>{rows}</tbody>
</table>"#,
        version = env!("CARGO_PKG_VERSION"),
    );
    Html(crate::http::html::document("en", "pforte", &body))
}

async fn stylesheet() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, ASSET_CACHE)], STYLESHEET)
}

async fn favicon() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "image/x-icon"), (header::CACHE_CONTROL, ASSET_CACHE)], FAVICON)
}

//! The reconciliation for finance staff: `GET /finance/{tenantId}/reconciliation` (JSON or CSV, for
//! tools, with `Authorization: Bearer pft_…`) and the page `GET /finance/{tenantId}/abgleich` for
//! the browser. A browser cannot send a Bearer header, so `/finance/login` takes the token once in
//! a form and keeps it in an `__Host-` cookie (HttpOnly, Secure, SameSite=Strict); every page view
//! is checked and audited like an API call. The page only reads, so a strict same-site cookie is
//! all the cross-site protection it needs.

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Form, Router};
use serde::Deserialize;

use super::error::{ApiError, ErrorCode};
use super::finance::{authorise_token, finance_caller};
use super::html::{document, escape};
use crate::finance::request::{ReportRequest, Representation};
use crate::finance::{inputs, page};
use crate::http::state::AppState;

/// Holds the finance token of a browser session; read by `finance::finance_caller`.
pub const FINANCE_COOKIE: &str = "__Host-pforte-finance";
/// A working day; the token itself stays valid until the operator revokes it.
const COOKIE_MAX_AGE_SECS: u32 = 8 * 3600;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/finance/{tenant}/reconciliation", get(reconciliation))
        .route("/finance/{tenant}/abgleich", get(reconciliation_page))
        .route("/finance/login", get(login_form).post(login))
}

/// `?from=YYYY-MM-DD&to=YYYY-MM-DD[&format=json|csv|html]`: the report, JSON unless asked otherwise.
async fn reconciliation(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    report(&state, &tenant, query, &headers, Representation::Json).await
}

/// The page: the same report as HTML, with the filters `category` and `q`.
async fn reconciliation_page(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    report(&state, &tenant, query, &headers, Representation::Html).await
}

async fn report(
    state: &AppState,
    tenant: &str,
    query: Option<String>,
    headers: &HeaderMap,
    default: Representation,
) -> Response {
    let caller = match finance_caller(state, headers, tenant, "reconciliation.read").await {
        Ok(caller) => caller,
        Err(response) => return response,
    };
    let mut pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()).into_owned().collect();
    // The tenant is the path's, which the token was checked against; a query parameter cannot widen it.
    pairs.retain(|(key, _)| key != "tenant");
    pairs.push(("tenant".to_owned(), caller.tenant_id.clone()));
    let request = match ReportRequest::from_query(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())), default) {
        Ok(request) => request,
        Err(reason) => return ApiError::new(ErrorCode::BadRequest, reason).into_response(),
    };
    let report = match inputs::reconcile_period(&state.db, &caller.tenant_id, request.period).await {
        Ok(report) => report,
        Err(e) => return ApiError::internal(&e).into_response(),
    };
    let body = match request.representation {
        Representation::Json => report.to_json(),
        Representation::Csv => report.to_csv(),
        Representation::Html => page::render(&report, &request.filter),
    };
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(request.representation.content_type()));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn login_form() -> Html<String> {
    Html(login_page(None))
}

#[derive(Deserialize)]
struct LoginForm {
    tenant: String,
    token: String,
}

/// Checks the token for the tenant (audited like every use), then keeps it in the session cookie
/// and opens the page for the last 30 days.
async fn login(State(state): State<AppState>, Form(form): Form<LoginForm>) -> Response {
    let tenant = form.tenant.trim();
    if authorise_token(&state, Some(form.token.trim()), tenant, "page.login").await.is_err() {
        return refused("Zugangsschlüssel und Behörde passen nicht zusammen, oder der Schlüssel ist widerrufen.");
    }
    let today = state.clock.now().with_timezone(&chrono_tz::Europe::Berlin).date_naive();
    let from = today - chrono::Days::new(30);
    let location = format!("/finance/{}/abgleich?from={from}&to={today}", urlencoding(tenant));
    let cookie = format!(
        "{FINANCE_COOKIE}={}; Path=/; Max-Age={COOKIE_MAX_AGE_SECS}; HttpOnly; Secure; SameSite=Strict",
        form.token.trim()
    );
    let mut response = (StatusCode::SEE_OTHER, "").into_response();
    let response_headers = response.headers_mut();
    if let (Ok(location), Ok(cookie)) = (HeaderValue::from_str(&location), HeaderValue::from_str(&cookie)) {
        response_headers.insert(header::LOCATION, location);
        response_headers.insert(header::SET_COOKIE, cookie);
    }
    response
}

fn refused(reason: &str) -> Response {
    (StatusCode::UNAUTHORIZED, Html(login_page(Some(reason)))).into_response()
}

fn login_page(error: Option<&str>) -> String {
    let error = error.map(|e| format!("<p role=\"alert\"><strong>{}</strong></p>\n", escape(e))).unwrap_or_default();
    let body = format!(
        "<h1>Abgleich für Kassen</h1>\n{error}\
         <form method=\"post\" action=\"/finance/login\">\n\
         <p><label>Behörde (endPointId) <input name=\"tenant\" required autocomplete=\"off\"></label></p>\n\
         <p><label>Zugangsschlüssel <input name=\"token\" type=\"password\" required autocomplete=\"off\"></label></p>\n\
         <p><button type=\"submit\">Anmelden</button></p>\n</form>\n\
         <p>Den Zugangsschlüssel (pft_…) erstellt der Betrieb mit <code>pforte finance token create</code>.</p>"
    );
    document("de", "Abgleich für Kassen: Anmeldung", &body)
}

fn urlencoding(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

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
use chrono::NaiveDate;
use serde::Deserialize;

use super::error::{ApiError, ErrorCode};
use super::finance::{authorise_token, finance_caller};
use super::finance_page::{self, page_filter};
use super::html::{document, escape};
use crate::finance::inputs;
use crate::finance::reconcile::Period;
use crate::finance::request::{ReportFormat, ReportRequest};
use crate::http::state::AppState;

/// Holds the finance token of a browser session; read by `finance::finance_caller`.
pub(super) const FINANCE_COOKIE: &str = "__Host-pforte-finance";
/// A working day; the token itself stays valid until the operator revokes it.
const COOKIE_MAX_AGE_SECS: u32 = 8 * 3600;

pub(super) fn router() -> Router<AppState> {
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
    report(&state, &tenant, query, &headers, ReportFormat::Json).await
}

/// The page: the same report as HTML, with the filters `category` and `q`.
async fn reconciliation_page(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    report(&state, &tenant, query, &headers, ReportFormat::Html).await
}

async fn report(
    state: &AppState,
    tenant: &str,
    query: Option<String>,
    headers: &HeaderMap,
    default: ReportFormat,
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
    let request = match report_request(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())), default) {
        Ok(request) => request,
        Err(reason) => return ApiError::new(ErrorCode::BadRequest, reason).into_response(),
    };
    let report = match inputs::reconcile_period(&state.db, &caller.tenant_id, request.period).await {
        Ok(report) => report,
        Err(e) => return ApiError::storage(&e).into_response(),
    };
    let body = match request.format {
        ReportFormat::Json => report.to_json(),
        ReportFormat::Csv => report.to_csv(),
        ReportFormat::Html => finance_page::render(&report, &request.filter),
    };
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(request.format)));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The request from the query parameters `tenant`, `from`, `to`, `format` and the page's filters.
/// `default` is the format when `format` is absent (JSON for the API, HTML for the page). The error
/// says which parameter is wrong and why; it repeats no value.
fn report_request<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)> + Clone,
    default: ReportFormat,
) -> Result<ReportRequest, String> {
    let get = |name: &str| pairs.clone().into_iter().find(|(k, _)| *k == name).map(|(_, v)| v);
    let tenant = get("tenant").filter(|t| !t.is_empty()).ok_or("the parameter tenant is required")?;
    let date = |name: &str| -> Result<NaiveDate, String> {
        let text = get(name).ok_or_else(|| format!("the parameter {name} is required (YYYY-MM-DD)"))?;
        NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| format!("the parameter {name} is no date YYYY-MM-DD"))
    };
    let period = Period::new(date("from")?, date("to")?)?;
    let format = match get("format") {
        None => default,
        Some("json") => ReportFormat::Json,
        Some("csv") => ReportFormat::Csv,
        Some("html") => ReportFormat::Html,
        Some(_) => return Err("the parameter format is json, csv or html".to_owned()),
    };
    Ok(ReportRequest { tenant: tenant.to_owned(), period, format, filter: page_filter(pairs) })
}

fn content_type(format: ReportFormat) -> &'static str {
    match format {
        ReportFormat::Json => "application/json",
        ReportFormat::Csv => "text/csv; charset=utf-8",
        ReportFormat::Html => "text/html; charset=utf-8",
    }
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
    match authorise_token(&state, Some(form.token.trim()), tenant, "page.login").await {
        Ok(_) => {}
        // The key could not be checked: not a wrong key.
        Err(answer) if answer.status() == StatusCode::SERVICE_UNAVAILABLE => {
            let reason = "Der Dienst ist kurz nicht erreichbar. Bitte melden Sie sich in einigen Sekunden erneut an.";
            return (StatusCode::SERVICE_UNAVAILABLE, Html(login_page(Some(reason)))).into_response();
        }
        Err(_) => {
            return refused("Zugangsschlüssel und Behörde passen nicht zusammen, oder der Schlüssel ist widerrufen.")
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finance::report::Category;

    const QUERY: [(&str, &str); 5] = [
        ("tenant", "09162000"),
        ("from", "2026-11-01"),
        ("to", "2026-11-30"),
        ("category", "amount_mismatch"),
        ("q", "KZ"),
    ];

    #[test]
    fn a_complete_query_names_tenant_period_filter_and_the_default_format() -> Result<(), String> {
        let request = report_request(QUERY, ReportFormat::Html)?;
        assert_eq!(request.tenant, "09162000");
        assert_eq!(
            (request.period.from.to_string(), request.period.to.to_string()),
            ("2026-11-01".into(), "2026-11-30".into())
        );
        assert_eq!(request.format, ReportFormat::Html);
        assert_eq!(request.filter.category, Some(Category::AmountMismatch));
        assert_eq!(request.filter.text.as_deref(), Some("KZ"));
        Ok(())
    }

    #[test]
    fn format_chooses_the_representation() -> Result<(), String> {
        let mut query = QUERY.to_vec();
        query.push(("format", "csv"));
        assert_eq!(report_request(query.clone(), ReportFormat::Json)?.format, ReportFormat::Csv);
        query.pop();
        query.push(("format", "pdf"));
        assert!(report_request(query, ReportFormat::Json).is_err());
        Ok(())
    }

    #[test]
    fn a_missing_tenant_or_a_bad_date_or_a_backwards_period_is_refused() {
        let without_tenant: Vec<_> = QUERY.iter().copied().filter(|(k, _)| *k != "tenant").collect();
        assert!(report_request(without_tenant, ReportFormat::Json).is_err_and(|e| e.contains("tenant")));
        let bad_date = QUERY.map(|(k, v)| if k == "from" { (k, "1.11.2026") } else { (k, v) });
        assert!(report_request(bad_date, ReportFormat::Json).is_err_and(|e| e.contains("from")));
        let backwards = QUERY.map(|(k, v)| if k == "from" { (k, "2026-12-24") } else { (k, v) });
        assert!(report_request(backwards, ReportFormat::Json).is_err_and(|e| e.contains("before it begins")));
    }

    #[test]
    fn each_format_names_its_content_type() {
        assert_eq!(content_type(ReportFormat::Json), "application/json");
        assert_eq!(content_type(ReportFormat::Csv), "text/csv; charset=utf-8");
        assert_eq!(content_type(ReportFormat::Html), "text/html; charset=utf-8");
    }
}

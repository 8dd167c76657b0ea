//! The reconciliation for finance staff: `GET /finance/{tenantId}/reconciliation` (JSON or CSV, for
//! tools, with `Authorization: Bearer pft_…`) and the page `GET /finance/{tenantId}/abgleich` for
//! the browser, reached with a staff session (`finance_staff`); every page view is checked and
//! audited like an API call. The page shows who is signed in, the upload form and the past imports.

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::NaiveDate;

use super::error::{ApiError, ErrorCode};
use super::finance::finance_caller;
use super::finance_page::{self, page_filter};
use super::finance_staff::{imports_section, staff_bar, staff_session};
use crate::finance::inputs;
use crate::finance::reconcile::Period;
use crate::finance::request::{ReportFormat, ReportRequest};
use crate::http::state::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/finance/{tenant}/reconciliation", get(reconciliation))
        .route("/finance/{tenant}/abgleich", get(reconciliation_page))
}

/// `?from=YYYY-MM-DD&to=YYYY-MM-DD[&format=json|csv|html]`: the report, JSON unless asked otherwise.
async fn reconciliation(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let caller = match finance_caller(&state, &headers, &tenant, "reconciliation.read").await {
        Ok(caller) => caller,
        Err(response) => return response,
    };
    report(&state, &caller.tenant_id, query, ReportFormat::Json, None).await
}

/// The page: the same report as HTML, with the filters `category` and `q`, for a staff session.
async fn reconciliation_page(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let session = match staff_session(&state, &headers, &tenant, "page.view").await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let imports = match imports_section(&state, &tenant, &session).await {
        Ok(imports) => imports,
        Err(response) => return response,
    };
    report(&state, &tenant, query, ReportFormat::Html, Some((&staff_bar(&session), &imports))).await
}

/// The report of the checked `tenant`; `page` is the signed-in bar and the imports section around an
/// HTML rendering.
async fn report(
    state: &AppState,
    tenant: &str,
    query: Option<String>,
    default: ReportFormat,
    page: Option<(&str, &str)>,
) -> Response {
    let mut pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()).into_owned().collect();
    // The tenant is the path's, which the caller was checked against; a query parameter cannot widen it.
    pairs.retain(|(key, _)| key != "tenant");
    pairs.push(("tenant".to_owned(), tenant.to_owned()));
    let request = match report_request(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())), default) {
        Ok(request) => request,
        Err(reason) => return ApiError::new(ErrorCode::BadRequest, reason).into_response(),
    };
    let report = match inputs::reconcile_period(&state.db, tenant, request.period).await {
        Ok(report) => report,
        Err(e) => return ApiError::storage(&e).into_response(),
    };
    let body = match request.format {
        ReportFormat::Json => report.to_json(),
        ReportFormat::Csv => report.to_csv(),
        ReportFormat::Html => {
            let (staff, imports) = page.unwrap_or_default();
            finance_page::render_with(&report, &request.filter, staff, imports)
        }
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

//! Finance staff endpoints under `/finance/{tenantId}/…`: `Authorization: Bearer pft_…` with a
//! token the operator created for that tenant. Unknown or revoked tokens get 401, a token of
//! another tenant 403; every use is audited by `FinanceAccess::authorise`.

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::TryStreamExt;

use super::error::{ApiError, ErrorCode};
use crate::finance::export::{BookingExport, ExportError, ExportRequest, Format};
use crate::finance::{FinanceAccessError, FinanceCaller};
use crate::http::state::AppState;
use crate::registry::EntityId;

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/finance/{tenant}/bookings", get(bookings))
}

/// The finance caller for `tenant`, or the 401/403/503 answer. For every `/finance/` route.
pub(crate) async fn finance_caller(
    state: &AppState,
    headers: &HeaderMap,
    tenant: &str,
    action: &str,
) -> Result<FinanceCaller, Response> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() > 7 && v[..7].eq_ignore_ascii_case("bearer "))
        .map(|v| v[7..].trim());
    authorise_token(state, bearer, tenant, action).await
}

/// Checks a presented finance token (audited by `FinanceAccess::authorise`) for `tenant`.
pub(crate) async fn authorise_token(
    state: &AppState,
    token: Option<&str>,
    tenant: &str,
    action: &str,
) -> Result<FinanceCaller, Response> {
    let unauthorized = || {
        let mut response =
            ApiError::new(ErrorCode::Unauthorized, "A finance token is required: Bearer pft_….").into_response();
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"pforte\""));
        response
    };
    // Tenant ids are registry ids; anything else names no tenant and is not worth an audit entry.
    if EntityId::parse(tenant).is_err() {
        return Err(ApiError::new(ErrorCode::NotFound, "No such tenant.").into_response());
    }
    let token = token.ok_or_else(unauthorized)?;
    match state.finance.authorise(token, tenant, action).await {
        Ok(caller) => Ok(caller),
        Err(FinanceAccessError::Unauthenticated) => Err(unauthorized()),
        Err(FinanceAccessError::Forbidden) => {
            Err(ApiError::new(ErrorCode::Forbidden, "This finance token is not for this authority.").into_response())
        }
        // Not checked is not refused: 503 while the database is away.
        Err(FinanceAccessError::Storage(e)) => Err(ApiError::storage(&e).into_response()),
    }
}

/// `GET /finance/{tenantId}/bookings?from=YYYY-MM-DD&to=YYYY-MM-DD&format=csv|json|camt054`
/// (`decimal=comma|point`, `bom=true|false` for CSV): the booking list, streamed.
async fn bookings(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let caller = match finance_caller(&state, &headers, &tenant, "bookings.export").await {
        Ok(caller) => caller,
        Err(response) => return response,
    };
    let params: Vec<(String, String)> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()).into_owned().collect();
    let request = match ExportRequest::parse(&params) {
        Ok(request) => request,
        Err(e) => return ApiError::new(ErrorCode::BadRequest, e.to_string()).into_response(),
    };
    let format = request.format;
    let name = state.registry.current().tenant(&caller.tenant_id).map(|t| t.display_name.clone()).unwrap_or_default();
    let export = match BookingExport::prepare(&state.db, &caller.tenant_id, &name, request).await {
        Ok(export) => export,
        Err(ExportError::Storage(e)) => return ApiError::storage(&e).into_response(),
        Err(e) => return ApiError::internal(&e).into_response(),
    };
    let disposition = format!("attachment; filename=\"{}\"", export.file_name());
    // A failure mid-stream can only cut the body short; the log says why.
    let body = Body::from_stream(export.into_stream().inspect_err(|e| {
        tracing::error!(error = %e, "booking export broke off");
    }));
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type(format)));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

/// The `Content-Type` of each export format.
fn media_type(format: Format) -> &'static str {
    match format {
        Format::Csv => "text/csv; charset=utf-8; header=present",
        Format::Json => "application/json",
        Format::Camt054 => "application/xml",
    }
}

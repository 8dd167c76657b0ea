//! The XBezahldienste payment API for online services, and the citizen's way to the provider's pay
//! page and back. Authentication: a Bearer token from pforte's token endpoint (`client_credentials`,
//! scope `payment`) or HTTP Basic with the client's credentials for legacy clients.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use super::oidc::see_other;
use crate::http::state::AppState;
use crate::identity::client_auth::ClientCredentials;
use crate::payment::routes::PaymentRoutes;
use crate::payment::service::Answer;
use crate::payment::FunctionalCode;
use crate::registry::Client;

const TRANSACTIONS: &str = "/paymenttransaction/{originator}/{endpoint}";
const TRANSACTION: &str = "/paymenttransaction/{originator}/{endpoint}/{transaction}";
const CANCEL: &str = "/paymenttransaction/{originator}/{endpoint}/{transaction}/cancel";
const REFUNDS: &str = "/paymenttransaction/{originator}/{endpoint}/{transaction}/refunds";
const STATUS: &str = "/status/{originator}/{endpoint}";
const PAY: &str = "/pay/{transaction}";
const PAY_RETURN: &str = "/pay/{transaction}/return";

pub fn router() -> Router<AppState> {
    Router::new()
        .route(TRANSACTIONS, post(create))
        .route(TRANSACTION, get(read))
        .route(CANCEL, post(cancel))
        .route(REFUNDS, post(refund).get(refunds))
        .route(STATUS, get(status))
        .route(PAY, get(pay))
        .route(PAY_RETURN, get(back_from_provider))
}

/// The payment routes above (and the provider callback route) as the payment domain names them,
/// under the public URL `issuer`; `app` hands this to the payment services.
#[derive(Debug, Clone)]
pub struct Routes {
    issuer: String,
}

impl Routes {
    pub fn new(issuer: impl Into<String>) -> Routes {
        Routes { issuer: issuer.into() }
    }

    fn url(&self, template: &str, values: &[&str]) -> String {
        format!("{}{}", self.issuer, fill(template, values))
    }
}

impl PaymentRoutes for Routes {
    fn create_path(&self, originator: &str, endpoint: &str) -> String {
        fill(TRANSACTIONS, &[originator, endpoint])
    }

    fn refunds_path(&self, originator: &str, endpoint: &str, transaction_id: &str) -> String {
        fill(REFUNDS, &[originator, endpoint, transaction_id])
    }

    fn transaction_url(&self, originator: &str, endpoint: &str, transaction_id: &str) -> String {
        self.url(TRANSACTION, &[originator, endpoint, transaction_id])
    }

    fn pay_url(&self, transaction_id: &str) -> String {
        self.url(PAY, &[transaction_id])
    }

    fn provider_return_url(&self, transaction_id: &str) -> String {
        self.url(PAY_RETURN, &[transaction_id])
    }

    fn provider_callback_url(&self, provider_id: &str) -> String {
        self.url(super::callbacks::PROVIDER_CALLBACK, &[provider_id])
    }
}

/// `template` with its `{…}` segments replaced by `values`, in order (as they came, not encoded).
fn fill(template: &str, values: &[&str]) -> String {
    let mut values = values.iter();
    template
        .split('/')
        .map(|segment| if segment.starts_with('{') { values.next().copied().unwrap_or_default() } else { segment })
        .collect::<Vec<_>>()
        .join("/")
}

fn respond(answer: Answer) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let content_type = if answer.status >= 400 { "application/problem+json" } else { "application/json" };
    let mut response = (status, answer.body.to_string()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if answer.status == 401 {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer, Basic realm=\"pforte\""));
    }
    response
}

/// The calling online service, from a Bearer token with scope `payment` or from Basic credentials.
async fn caller<'s>(state: &'s AppState, headers: &HeaderMap) -> Result<&'s Client, Response> {
    let refused =
        || respond(Answer::problem_with_status(FunctionalCode::Forbidden, 401, "Missing or invalid credentials."));
    let value = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).ok_or_else(refused)?;
    if value.len() > 7 && value[..7].eq_ignore_ascii_case("bearer ") {
        let token = state.tokens.verify_access_token(value[7..].trim()).await.map_err(|_| refused())?;
        if !token.scope.split(' ').any(|s| s == "payment") || token.identity.is_some() {
            return Err(refused());
        }
        return state.registry.client(&token.client_id).ok_or_else(refused);
    }
    let credentials: ClientCredentials =
        super::oidc::client_credentials(headers, &Default::default()).map_err(|_| refused())?;
    if credentials.basic.is_none() {
        return Err(refused());
    }
    state.client_auth.authenticate(&state.registry, &credentials).await.map_err(|_| refused())
}

async fn create(
    State(state): State<AppState>,
    Path((originator, endpoint)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let client = match caller(&state, &headers).await {
        Ok(client) => client,
        Err(response) => return response,
    };
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok());
    respond(state.payments.create(client, &originator, &endpoint, &body, key).await)
}

async fn read(
    State(state): State<AppState>,
    Path((originator, endpoint, transaction)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    match caller(&state, &headers).await {
        Ok(client) => respond(state.payments.read(client, &originator, &endpoint, &transaction).await),
        Err(response) => response,
    }
}

/// The body may be empty or `{}`; anything else is refused, as the cancel takes no parameters.
async fn cancel(
    State(state): State<AppState>,
    Path((originator, endpoint, transaction)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let client = match caller(&state, &headers).await {
        Ok(client) => client,
        Err(response) => return response,
    };
    let empty = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&body).is_ok_and(|m| m.is_empty());
    if !body.trim_ascii().is_empty() && !empty {
        let detail = "A cancel takes no parameters: send no body or {}.";
        return respond(Answer::problem(FunctionalCode::ValidationError, detail));
    }
    respond(state.payments.cancel(client, &originator, &endpoint, &transaction).await)
}

async fn refund(
    State(state): State<AppState>,
    Path((originator, endpoint, transaction)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let client = match caller(&state, &headers).await {
        Ok(client) => client,
        Err(response) => return response,
    };
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok());
    respond(state.refunds.create(client, &originator, &endpoint, &transaction, &body, key).await)
}

async fn refunds(
    State(state): State<AppState>,
    Path((originator, endpoint, transaction)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    match caller(&state, &headers).await {
        Ok(client) => respond(state.refunds.list(client, &originator, &endpoint, &transaction).await),
        Err(response) => response,
    }
}

async fn status(
    State(state): State<AppState>,
    Path((originator, endpoint)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    match caller(&state, &headers).await {
        Ok(client) => respond(state.payments.status(client, &originator, &endpoint)),
        Err(response) => response,
    }
}

async fn pay(State(state): State<AppState>, Path(transaction): Path<String>) -> Response {
    match state.payments.pay_target(&transaction).await {
        Some(target) => see_other(&target),
        None => crate::http::error::ApiError::new(crate::http::error::ErrorCode::NotFound, "No such payment.")
            .into_response(),
    }
}

async fn back_from_provider(State(state): State<AppState>, Path(transaction): Path<String>) -> Response {
    match state.payments.provider_return(&transaction).await {
        Some(target) => see_other(&target),
        None => crate::http::error::ApiError::new(crate::http::error::ErrorCode::NotFound, "No such payment.")
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_domain_gets_the_routes_the_router_serves() {
        let routes = Routes::new("https://pforte.example");
        assert_eq!(routes.create_path("svc", "09162000"), "/paymenttransaction/svc/09162000");
        assert_eq!(routes.refunds_path("svc", "09162000", "tx"), "/paymenttransaction/svc/09162000/tx/refunds");
        assert_eq!(
            routes.transaction_url("svc", "09162000", "tx"),
            "https://pforte.example/paymenttransaction/svc/09162000/tx"
        );
        assert_eq!(routes.pay_url("tx"), "https://pforte.example/pay/tx");
        assert_eq!(routes.provider_return_url("tx"), "https://pforte.example/pay/tx/return");
        assert_eq!(routes.provider_callback_url("sim-pay"), "https://pforte.example/callbacks/payment/sim-pay");
    }
}

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
use crate::payment::service::Answer;
use crate::payment::FunctionalCode;
use crate::registry::Client;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/paymenttransaction/{originator}/{endpoint}", post(create))
        .route("/paymenttransaction/{originator}/{endpoint}/{transaction}", get(read))
        .route("/paymenttransaction/{originator}/{endpoint}/{transaction}/cancel", post(cancel))
        .route("/paymenttransaction/{originator}/{endpoint}/{transaction}/refunds", post(refund).get(refunds))
        .route("/status/{originator}/{endpoint}", get(status))
        .route("/pay/{transaction}", get(pay))
        .route("/pay/{transaction}/return", get(back_from_provider))
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

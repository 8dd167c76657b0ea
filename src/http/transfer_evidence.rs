//! Login and payment evidence for Datentransfer (pforte's extension, docs/datentransfer.md "Login
//! and payment evidence"): `POST /v1/evidence/authentication` and `POST /v1/evidence/payment`, for
//! the sender of a submission still announced, with a Bearer token of scope `transfer`. The ID token
//! is checked here with the identity module's own check; `transfer::evidence` signs the statements.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;

use super::error::{ApiError, ErrorCode};
use super::transfer::{caller, problem, require_content_type};
use crate::http::state::AppState;
use crate::identity::tokens::TokenError;
use crate::transfer::{parse_body, AuthenticationRequest, LoginFacts, PaymentRequest};

/// The metadata 1.0.0 `authenticationInformation` entry type and version the answer names.
const REPORT_TYPE: &str = "identificationReport";
const REPORT_VERSION: &str = "1.0.0";

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/evidence/authentication", post(authentication))
        .route("/v1/evidence/payment", post(payment))
}

async fn authentication(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let registry = state.registry.current();
    let client = caller(&state, &registry, &headers).await?;
    require_content_type(&headers, "application/json")?;
    let request: AuthenticationRequest = parse_body(&body).map_err(problem)?;
    let checked = state.tokens.verify_id_token(&request.id_token, client.id.as_str()).await.map_err(|e| match e {
        TokenError::Invalid(reason) => ApiError::new(
            ErrorCode::TransferInvalidIdToken,
            format!("The ID token is not one pforte issued to this client: {reason}."),
        ),
        TokenError::Keys(e) if e.is_unreachable() => {
            ApiError::new(ErrorCode::Unavailable, "pforte's signing keys could not be read; try again shortly.")
        }
        TokenError::Keys(e) => ApiError::internal(&e),
        TokenError::Storage(e) => ApiError::storage(&e),
    })?;
    let login = LoginFacts {
        sub: checked.sub,
        acr: checked.acr,
        idp: checked.idp,
        auth_time: checked.auth_time,
        issued_at: checked.issued_at,
    };
    let token = state
        .transfer
        .authentication_evidence(&registry, client, login, &request.submission_id)
        .await
        .map_err(problem)?;
    let body = json!({ "type": REPORT_TYPE, "version": REPORT_VERSION, "content": token });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

async fn payment(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let registry = state.registry.current();
    let client = caller(&state, &registry, &headers).await?;
    require_content_type(&headers, "application/json")?;
    let request: PaymentRequest = parse_body(&body).map_err(problem)?;
    let evidence = state.transfer.payment_evidence(&registry, client, request).await.map_err(problem)?;
    // Metadata 1.0.0's `paymentInformation`: pforte knows no more of the method than the provider
    // said, so OTHER; BOOKED is the schema's word for a completed payment. `pforteEvidence` is
    // pforte's extension (the schema allows additional members).
    let body = json!({ "paymentInformation": {
        "transactionId": evidence.transaction_id,
        "transactionReference": evidence.transaction_reference,
        "transactionTimestamp": evidence.paid_at,
        "paymentMethod": "OTHER",
        "status": "BOOKED",
        "pforteEvidence": evidence.token,
    }});
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

//! Callbacks from payment providers: `POST /callbacks/payment/{providerId}`. The provider's adapter
//! reads the raw body (its signature covers exactly those bytes); `payment::callbacks` decides.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;

use super::error::{ApiError, ErrorCode};
use crate::http::state::AppState;
use crate::payment::callbacks::Received;

/// Where a payment provider instance sends its callbacks.
pub(super) const PROVIDER_CALLBACK: &str = "/callbacks/payment/{provider}";

pub(super) fn router() -> Router<AppState> {
    Router::new().route(PROVIDER_CALLBACK, post(receive))
}

async fn receive(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let accepted = |outcome: &str| Json(json!({ "outcome": outcome })).into_response();
    match state.payment_callbacks.receive(&provider, &headers, &body).await {
        Received::Recorded(_) => accepted("recorded"),
        Received::Replay => accepted("replay"),
        Received::AmountMismatch => accepted("amount_mismatch"),
        Received::NotAccepted => {
            ApiError::new(ErrorCode::NotFound, "This payment provider sends no callbacks here.").into_response()
        }
        Received::Unauthenticated => {
            ApiError::new(ErrorCode::Unauthorized, "The callback's signature is missing or does not match.")
                .into_response()
        }
        Received::Stale => {
            ApiError::new(ErrorCode::BadRequest, "The callback's timestamp is too far from the current time.")
                .into_response()
        }
        Received::Malformed(what) => {
            ApiError::new(ErrorCode::BadRequest, format!("The callback cannot be read: {what}.")).into_response()
        }
        Received::UnknownTransaction => {
            ApiError::new(ErrorCode::NotFound, "No such transaction at this payment provider.").into_response()
        }
        Received::ProviderUnavailable => ApiError::new(
            ErrorCode::Unavailable,
            "The payment provider's status could not be read; send the callback again later.",
        )
        .into_response(),
        // The provider sends the callback again on 503.
        Received::Failed(e) => ApiError::storage(&e).into_response(),
    }
}

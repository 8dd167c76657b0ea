//! Datentransfer's Submission API, FIT-Connect v1 paths: senders announce, upload attachments,
//! submit and read the event log; subscribers list, fetch, download and post their decision; anyone
//! reads a destination and its public keys. Authentication: a Bearer token from pforte's token
//! endpoint (`client_credentials`, scope `transfer`). Attachments stream through their own router,
//! exempt from the request timeout and the general body limit (`stream_router`).

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use futures_util::TryStreamExt;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::error::{ApiError, ErrorCode};
use crate::http::state::AppState;
use crate::identity::oauth::{ErrorCode as OAuthErrorCode, OAuthError};
use crate::registry::{Client, Destination, Registry};
use crate::transfer::{Announce, Submit, TransferError};

const SUBMISSIONS: &str = "/v1/submissions";
const SUBMISSION: &str = "/v1/submissions/{submission}";
const ATTACHMENT: &str = "/v1/submissions/{submission}/attachments/{attachment}";
const CASE_EVENTS: &str = "/v1/cases/{case}/events";
const DESTINATION: &str = "/v1/destinations/{destination}";
const DESTINATION_KEY: &str = "/v1/destinations/{destination}/keys/{kid}";
const JOSE: &str = "application/jose";

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(SUBMISSIONS, post(announce).get(list))
        .route(CASE_EVENTS, get(events).post(post_event))
        .route(DESTINATION, get(destination))
        .route(DESTINATION_KEY, get(destination_key))
}

/// Submit and fetch carry the encrypted metadata and data: bounded by `transfer.max_submit_bytes`
/// (`http::router`), not by `server.body_limit_bytes`.
pub(crate) fn submit_router() -> Router<AppState> {
    Router::new().route(SUBMISSION, put(submit).get(fetch))
}

/// Attachment uploads and downloads: bounded by `transfer.max_attachment_bytes` while streaming,
/// not by `server.body_limit_bytes`, and by `transfer.stream_timeout_secs` (`http::router`).
pub(crate) fn stream_router() -> Router<AppState> {
    Router::new().route(ATTACHMENT, put(upload).get(download))
}

/// The status and stable code of each refusal; server-side failures keep their cause in the log.
pub(super) fn problem(error: TransferError) -> ApiError {
    let (code, detail) = match &error {
        TransferError::Invalid(_) => (ErrorCode::BadRequest, error.to_string()),
        TransferError::NotFound(_) => (ErrorCode::NotFound, error.to_string()),
        TransferError::Forbidden(_) => (ErrorCode::Forbidden, error.to_string()),
        TransferError::DestinationRefuses(_) => (ErrorCode::TransferDestinationRefuses, error.to_string()),
        TransferError::NotAJwe(_) => (ErrorCode::TransferNotAJwe, error.to_string()),
        TransferError::UnknownKey(_) => (ErrorCode::TransferUnknownKey, error.to_string()),
        TransferError::NotAnnounced(_) => (ErrorCode::TransferNotAnnounced, error.to_string()),
        TransferError::AttachmentsMissing(_) => (ErrorCode::TransferAttachmentsMissing, error.to_string()),
        TransferError::TooLarge(_) => (ErrorCode::PayloadTooLarge, error.to_string()),
        TransferError::InvalidTransition(_) => (ErrorCode::TransferInvalidTransition, error.to_string()),
        TransferError::InvalidEvent(_) => (ErrorCode::TransferInvalidEvent, error.to_string()),
        TransferError::PaymentMissing => (ErrorCode::TransferPaymentMissing, error.to_string()),
        TransferError::PaymentNotPaid(_) => (ErrorCode::TransferPaymentNotPaid, error.to_string()),
        TransferError::PaymentUsed(_) => (ErrorCode::TransferPaymentUsed, error.to_string()),
        TransferError::InvalidIdToken(_) => (ErrorCode::TransferInvalidIdToken, error.to_string()),
        TransferError::BodyBroken(_) => (ErrorCode::BadRequest, "The request body broke off.".to_owned()),
        TransferError::Storage(e) => return ApiError::storage(e),
        TransferError::Keys(e) if e.is_unreachable() => {
            return ApiError::new(ErrorCode::Unavailable, "pforte's signing keys could not be read; try again shortly.")
        }
        TransferError::Keys(e) => return ApiError::internal(e),
    };
    ApiError::new(code, detail)
}

/// The calling client, from a Bearer access token with scope `transfer`. Credentials that could not
/// be checked (the database is away) are 503, not 401.
pub(super) async fn caller<'r>(
    state: &AppState,
    registry: &'r Registry,
    headers: &HeaderMap,
) -> Result<&'r Client, ApiError> {
    let unauthorized =
        || ApiError::new(ErrorCode::Unauthorized, "A Bearer access token with scope transfer is required.");
    let value = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).ok_or_else(unauthorized)?;
    let token = value.get(..7).filter(|p| p.eq_ignore_ascii_case("bearer ")).map(|_| value[7..].trim());
    let token = token.ok_or_else(unauthorized)?;
    let checked = state.tokens.verify_access_token(token).await.map_err(|e| match OAuthError::from(e).error {
        OAuthErrorCode::TemporarilyUnavailable => {
            ApiError::new(ErrorCode::Unavailable, "The credentials could not be checked just now; try again shortly.")
        }
        _ => unauthorized(),
    })?;
    if !checked.scope.split(' ').any(|s| s == "transfer") || checked.identity.is_some() {
        return Err(unauthorized());
    }
    registry.client(&checked.client_id).ok_or_else(unauthorized)
}

pub(super) fn require_content_type(headers: &HeaderMap, expected: &str) -> Result<(), ApiError> {
    let given = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let essence = given.split(';').next().unwrap_or_default().trim();
    if essence.eq_ignore_ascii_case(expected) {
        Ok(())
    } else {
        Err(ApiError::new(ErrorCode::UnsupportedMediaType, format!("The body must be {expected}.")))
    }
}

async fn announce(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let registry = state.registry.current();
    let client = caller(&state, &registry, &headers).await?;
    require_content_type(&headers, "application/json")?;
    let request = Announce::parse(&body).map_err(problem)?;
    let announced = state.transfer.announce(&registry, client, request).await.map_err(problem)?;
    let body = json!({
        "destinationId": announced.destination_id,
        "submissionId": announced.submission_id,
        "caseId": announced.case_id,
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

async fn upload(
    State(state): State<AppState>,
    Path((submission, attachment)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let registry = state.registry.current();
    let client = caller(&state, &registry, &headers).await?;
    require_content_type(&headers, JOSE)?;
    let length = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    let ids = (submission.as_str(), attachment.as_str());
    state.transfer.upload(&registry, client, ids, length, body.into_data_stream()).await.map_err(problem)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn submit(
    State(state): State<AppState>,
    Path(submission): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let registry = state.registry.current();
    let client = caller(&state, &registry, &headers).await?;
    require_content_type(&headers, "application/json")?;
    let request = Submit::parse(&body).map_err(problem)?;
    state.transfer.submit(&registry, client, &submission, request).await.map_err(problem)?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "submissionId": submission }))).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Page {
    #[serde(default)]
    offset: i64,
    #[serde(default = "default_limit")]
    limit: i64,
    destination_id: Option<String>,
}

fn default_limit() -> i64 {
    100
}

async fn events(
    State(state): State<AppState>,
    Path(case): Path<String>,
    Query(page): Query<Page>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let registry = state.registry.current();
    let client = caller(&state, &registry, &headers).await?;
    let log = state.transfer.events(&registry, client, &case, page.offset, page.limit).await.map_err(problem)?;
    let body = json!({
        "count": log.tokens.len(),
        "offset": log.offset,
        "totalCount": log.total,
        "eventLog": log.tokens,
    });
    Ok(Json(body).into_response())
}

async fn list(
    State(state): State<AppState>,
    Query(page): Query<Page>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let registry = state.registry.current();
    let client = caller(&state, &registry, &headers).await?;
    let destination = page
        .destination_id
        .ok_or_else(|| ApiError::new(ErrorCode::BadRequest, "The query parameter destinationId is required."))?;
    let list = state.transfer.list(&registry, client, &destination, page.offset, page.limit).await.map_err(problem)?;
    let submissions: Vec<Value> = list
        .submissions
        .iter()
        .map(|s| json!({ "destinationId": s.destination_id, "submissionId": s.submission_id, "caseId": s.case_id }))
        .collect();
    let body = json!({
        "count": submissions.len(),
        "offset": list.offset,
        "totalCount": list.total,
        "submissions": submissions,
    });
    Ok(Json(body).into_response())
}

async fn fetch(
    State(state): State<AppState>,
    Path(submission): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let registry = state.registry.current();
    let client = caller(&state, &registry, &headers).await?;
    let (row, attachments) = state.transfer.fetch(&registry, client, &submission).await.map_err(problem)?;
    let mut body = json!({
        "destinationId": row.destination_id,
        "submissionId": row.submission_id,
        "caseId": row.case_id,
        "serviceType": { "name": row.service_name, "identifier": row.service_identifier },
        "attachments": attachments,
        "encryptedMetadata": row.encrypted_metadata,
    });
    if let (Some(data), Some(map)) = (row.encrypted_data, body.as_object_mut()) {
        map.insert("encryptedData".into(), json!(data));
    }
    Ok(Json(body).into_response())
}

async fn download(
    State(state): State<AppState>,
    Path((submission, attachment)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let registry = state.registry.current();
    let client = caller(&state, &registry, &headers).await?;
    let ids = (submission.as_str(), attachment.as_str());
    let download = state.transfer.download(&registry, client, ids).await.map_err(problem)?;
    let body = Body::from_stream(download.chunks.map_ok(Bytes::from));
    let mut response = body.into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(JOSE));
    response.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(download.size));
    Ok(response)
}

async fn post_event(
    State(state): State<AppState>,
    Path(case): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let registry = state.registry.current();
    let client = caller(&state, &registry, &headers).await?;
    require_content_type(&headers, JOSE)?;
    let token = std::str::from_utf8(&body)
        .map(str::trim)
        .map_err(|_| ApiError::new(ErrorCode::TransferInvalidEvent, "The body is not a SET in compact form."))?;
    state.transfer.post_event(&registry, client, &case, token).await.map_err(problem)?;
    Ok(StatusCode::NO_CONTENT)
}

/// A destination's public description, as FIT-Connect's Submission API answers it.
async fn destination(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let registry = state.registry.current();
    let destination = registry.destination(&id).ok_or_else(no_destination)?;
    Ok(Json(public_destination(destination)).into_response())
}

async fn destination_key(
    State(state): State<AppState>,
    Path((id, kid)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let registry = state.registry.current();
    let destination = registry.destination(&id).ok_or_else(no_destination)?;
    let key = destination
        .key(&kid)
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "The destination has no key with this kid."))?;
    Ok(Json(Value::Object(key.jwk.clone())).into_response())
}

fn no_destination() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "No destination with this id.")
}

fn public_destination(destination: &Destination) -> Value {
    let services: Vec<Value> = destination
        .services
        .iter()
        .map(|service| {
            let schemas: Vec<Value> = service
                .submission_schemas
                .iter()
                .map(|s| json!({ "schemaUri": s.schema_uri, "mimeType": s.mime_type.as_mime() }))
                .collect();
            json!({ "identifier": service.identifier, "submissionSchemas": schemas, "regions": service.regions })
        })
        .collect();
    let reply_channels: Map<String, Value> =
        destination.reply_channels.iter().map(|channel| (channel.clone(), json!({}))).collect();
    json!({
        "destinationId": destination.id.as_str(),
        "status": destination.status.as_str(),
        "services": services,
        "encryptionKid": destination.encryption_kid,
        "metadataVersions": destination.metadata_versions,
        "replyChannels": reply_channels,
    })
}

//! The one error type at the HTTP edge. Every failure maps to a stable `code` that clients may
//! branch on; the body is RFC 9457 problem+json. Server-side failures say only that something went
//! wrong and quote the request id: the cause goes to the log, never into the response.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::store::StorageError;

pub(crate) const PROBLEM_JSON: &str = "application/problem+json";

/// Stable error codes of pforte's own (non-OAuth, non-XBezahldienste) endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorCode {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    PayloadTooLarge,
    UnsupportedMediaType,
    TooManyRequests,
    Unavailable,
    Timeout,
    Internal,
    /// A registry reload found problems; the registry in use stays (`POST /reload`).
    InvalidRegistry,
    /// Datentransfer: the destination takes no submissions now, or not for this service (422).
    TransferDestinationRefuses,
    /// Datentransfer: a body that must be a compact JWE to the destination is not one (422).
    TransferNotAJwe,
    /// Datentransfer: the JWE's `kid` is no encryption key of the destination (422).
    TransferUnknownKey,
    /// Datentransfer: an upload for an attachment that was not announced (422).
    TransferNotAnnounced,
    /// Datentransfer: a submit before every announced attachment was uploaded (422).
    TransferAttachmentsMissing,
    /// Datentransfer: the submission's status does not allow this (409).
    TransferInvalidTransition,
    /// Datentransfer: a subscriber's SET that does not verify or says something else (422).
    TransferInvalidEvent,
    /// The destination's service requires a fee and the announce named no payment.
    TransferPaymentMissing,
    /// The payment is not PAYED (or refunded), or not the caller's for the destination's authority.
    TransferPaymentNotPaid,
    /// The payment already serves another submission.
    TransferPaymentUsed,
    /// The ID token offered for login evidence is not one pforte issued to the caller, or too old.
    TransferInvalidIdToken,
}

impl ErrorCode {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::TooManyRequests => "too_many_requests",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Internal => "internal_error",
            ErrorCode::InvalidRegistry => "invalid_registry",
            ErrorCode::TransferDestinationRefuses => "transfer_destination_refuses",
            ErrorCode::TransferNotAJwe => "transfer_not_a_jwe",
            ErrorCode::TransferUnknownKey => "transfer_unknown_key",
            ErrorCode::TransferNotAnnounced => "transfer_attachment_not_announced",
            ErrorCode::TransferAttachmentsMissing => "transfer_attachments_missing",
            ErrorCode::TransferInvalidTransition => "transfer_invalid_transition",
            ErrorCode::TransferInvalidEvent => "transfer_invalid_event",
            ErrorCode::TransferPaymentMissing => "transfer_payment_missing",
            ErrorCode::TransferPaymentNotPaid => "transfer_payment_not_paid",
            ErrorCode::TransferPaymentUsed => "transfer_payment_used",
            ErrorCode::TransferInvalidIdToken => "transfer_invalid_id_token",
        }
    }

    pub(crate) fn status(self) -> StatusCode {
        match self {
            ErrorCode::BadRequest => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Timeout => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::InvalidRegistry
            | ErrorCode::TransferDestinationRefuses
            | ErrorCode::TransferNotAJwe
            | ErrorCode::TransferUnknownKey
            | ErrorCode::TransferNotAnnounced
            | ErrorCode::TransferAttachmentsMissing
            | ErrorCode::TransferInvalidEvent
            | ErrorCode::TransferPaymentMissing
            | ErrorCode::TransferPaymentNotPaid
            | ErrorCode::TransferPaymentUsed
            | ErrorCode::TransferInvalidIdToken => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::TransferInvalidTransition => StatusCode::CONFLICT,
        }
    }

    fn title(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "The request is not valid",
            ErrorCode::Unauthorized => "Missing or invalid credentials",
            ErrorCode::Forbidden => "These credentials do not allow this",
            ErrorCode::NotFound => "Nothing is here",
            ErrorCode::MethodNotAllowed => "This method is not allowed here",
            ErrorCode::PayloadTooLarge => "The request body is too large",
            ErrorCode::UnsupportedMediaType => "The request body has an unsupported media type",
            ErrorCode::TooManyRequests => "Too many requests from this address",
            ErrorCode::Unavailable => "The service is not ready",
            ErrorCode::Timeout => "The request took too long",
            ErrorCode::Internal => "Something went wrong on our side",
            ErrorCode::InvalidRegistry => "The registry files have problems; the registry in use stays",
            ErrorCode::TransferDestinationRefuses => "The destination does not take this submission",
            ErrorCode::TransferNotAJwe => "The content is not a JWE pforte accepts",
            ErrorCode::TransferUnknownKey => "The JWE is not encrypted to a key of the destination",
            ErrorCode::TransferNotAnnounced => "The attachment was not announced",
            ErrorCode::TransferAttachmentsMissing => "Announced attachments are missing",
            ErrorCode::TransferInvalidTransition => "The submission's status does not allow this",
            ErrorCode::TransferInvalidEvent => "The event is not valid",
            ErrorCode::TransferPaymentMissing => "The service requires a paid fee",
            ErrorCode::TransferPaymentNotPaid => "The payment is not paid for this authority",
            ErrorCode::TransferPaymentUsed => "The payment already serves another submission",
            ErrorCode::TransferInvalidIdToken => "The ID token is not valid for evidence",
        }
    }

    /// The code a framework-generated error status stands for.
    pub(crate) fn for_status(status: StatusCode) -> ErrorCode {
        match status {
            StatusCode::NOT_FOUND => ErrorCode::NotFound,
            StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed,
            StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
            StatusCode::REQUEST_TIMEOUT => ErrorCode::Timeout,
            StatusCode::TOO_MANY_REQUESTS => ErrorCode::TooManyRequests,
            StatusCode::SERVICE_UNAVAILABLE => ErrorCode::Unavailable,
            s if s.is_client_error() => ErrorCode::BadRequest,
            _ => ErrorCode::Internal,
        }
    }
}

#[derive(Debug)]
pub(crate) struct ApiError {
    code: ErrorCode,
    detail: String,
    /// An extension member of the problem (RFC 9457 §3.2), e.g. the list of registry problems.
    member: Option<(&'static str, serde_json::Value)>,
}

impl ApiError {
    pub(crate) fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        ApiError { code, detail: detail.into(), member: None }
    }

    /// Adds the extension member `name` to the body.
    pub(crate) fn with_member(mut self, name: &'static str, value: serde_json::Value) -> Self {
        self.member = Some((name, value));
        self
    }

    /// A database failure: 503 `unavailable` when the database could not be asked (the store logs
    /// the outage once; this request only leaves a debug line), else a server-side failure.
    pub(crate) fn storage(error: &StorageError) -> Self {
        if error.is_unavailable() {
            tracing::debug!(error = %error, "request met an unavailable database");
            ApiError::new(ErrorCode::Unavailable, "pforte's database is briefly unavailable; try again shortly.")
        } else {
            ApiError::internal(error)
        }
    }

    /// A server-side failure: the cause is logged here, the client sees a generic message.
    pub(crate) fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "request failed");
        ApiError::new(
            ErrorCode::Internal,
            "The request could not be completed; quote the x-request-id when reporting it.",
        )
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.detail)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.code.status();
        let mut body = json!({
            "type": format!("urn:pforte:problem:{}", self.code.as_str()),
            "title": self.code.title(),
            "status": status.as_u16(),
            "detail": self.detail,
            "code": self.code.as_str(),
        });
        if let (Some((name, value)), Some(members)) = (self.member, body.as_object_mut()) {
            members.insert(name.to_owned(), value);
        }
        let mut response = (status, body.to_string()).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        response
    }
}

//! OAuth 2.0 errors (RFC 6749 §5.2, RFC 6750 §3.1) as the token, PAR, revocation and userinfo
//! endpoints report them: the protocol's stable `error` code, a description for the client, and the
//! authentication scheme a code challenges the client with. The HTTP status that answers each code
//! is the edge's choice (`http::oidc`).

use super::tokens::TokenError;
use crate::keys::KeyError;
use crate::store::StorageError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub error: ErrorCode,
    pub description: String,
    /// With `slow_down`: whole seconds until the client may ask again (`Retry-After`).
    pub retry_after_secs: Option<u64>,
}

/// The `error` values of RFC 6749 §5.2 and RFC 6750 §3.1 that pforte answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidScope,
    InvalidToken,
    InsufficientScope,
    ServerError,
    TemporarilyUnavailable,
    /// The client asked too often (RFC 8628 §3.5's registered token-endpoint error), with 429.
    SlowDown,
}

/// The authentication scheme a refused client is told to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Challenge {
    /// A failed client login (RFC 6749 §5.2).
    Basic,
    /// A missing, bad or insufficient access token (RFC 6750 §3).
    Bearer,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::InsufficientScope => "insufficient_scope",
            ErrorCode::ServerError => "server_error",
            ErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
            ErrorCode::SlowDown => "slow_down",
        }
    }

    pub fn challenge(self) -> Option<Challenge> {
        match self {
            ErrorCode::InvalidClient => Some(Challenge::Basic),
            ErrorCode::InvalidToken | ErrorCode::InsufficientScope => Some(Challenge::Bearer),
            _ => None,
        }
    }
}

impl OAuthError {
    fn new(error: ErrorCode, description: impl Into<String>) -> Self {
        OAuthError { error, description: description.into(), retry_after_secs: None }
    }

    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, description)
    }

    pub fn invalid_client(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidClient, description)
    }

    pub fn invalid_grant(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidGrant, description)
    }

    pub fn unauthorized_client(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::UnauthorizedClient, description)
    }

    pub fn unsupported_grant_type(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::UnsupportedGrantType, description)
    }

    pub fn invalid_scope(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidScope, description)
    }

    pub fn invalid_token(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidToken, description)
    }

    pub fn insufficient_scope(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::InsufficientScope, description)
    }

    pub fn server_error() -> Self {
        Self::new(
            ErrorCode::ServerError,
            "The request could not be completed; quote the x-request-id when reporting it.",
        )
    }

    pub fn temporarily_unavailable(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::TemporarilyUnavailable, description)
    }

    /// The client has used its own budget (SECURITY.md #32); it may ask again in `seconds`.
    pub fn slow_down(seconds: u64) -> Self {
        let mut error = Self::new(
            ErrorCode::SlowDown,
            format!("This client has made too many requests; try again in {seconds} s."),
        );
        error.retry_after_secs = Some(seconds);
        error
    }
}

impl std::fmt::Display for OAuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error.as_str(), self.description)
    }
}

/// A database failure: `temporarily_unavailable` (503) when the database could not be asked, so the
/// client tries again instead of treating its credentials or grant as refused; else `server_error`.
/// An outage is logged once by the store; a request that meets it leaves only a debug line.
impl From<StorageError> for OAuthError {
    fn from(error: StorageError) -> OAuthError {
        if error.is_unavailable() {
            tracing::debug!(error = %error, "OAuth request met an unavailable database");
            OAuthError::temporarily_unavailable("pforte's database is briefly unavailable; try again shortly.")
        } else {
            internal(&error)
        }
    }
}

/// Signing keys are read from the database now and then; its absence is "try again" as above.
impl From<KeyError> for OAuthError {
    fn from(error: KeyError) -> OAuthError {
        match error {
            KeyError::Storage(e) => OAuthError::from(e),
            other => internal(&other),
        }
    }
}

/// A presented access token: refused when it was checked and is not valid, "try again" when it
/// could not be checked.
impl From<TokenError> for OAuthError {
    fn from(error: TokenError) -> OAuthError {
        match error {
            TokenError::Invalid(reason) => {
                OAuthError::invalid_token(format!("The access token is not valid: {reason}."))
            }
            TokenError::Keys(e) => OAuthError::from(e),
            TokenError::Storage(e) => OAuthError::from(e),
        }
    }
}

/// Logs an internal cause and answers `server_error`; the cause never reaches the client.
pub(crate) fn internal(cause: &dyn std::fmt::Display) -> OAuthError {
    tracing::error!(error = %cause, "OAuth request failed");
    OAuthError::server_error()
}

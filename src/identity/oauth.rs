//! OAuth 2.0 errors (RFC 6749 §5.2, RFC 6750 §3.1) as the token, PAR, revocation and userinfo
//! endpoints report them. The `error` values are the protocol's stable codes.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub error: &'static str,
    pub description: String,
    pub status: u16,
    /// Answer with `WWW-Authenticate` (Basic for a failed client login, Bearer for a bad token).
    pub challenge: Option<Challenge>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer,
}

impl OAuthError {
    fn new(error: &'static str, status: u16, description: impl Into<String>) -> Self {
        OAuthError { error, description: description.into(), status, challenge: None }
    }

    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new("invalid_request", 400, description)
    }

    pub fn invalid_client(description: impl Into<String>) -> Self {
        OAuthError { challenge: Some(Challenge::Basic), ..Self::new("invalid_client", 401, description) }
    }

    pub fn invalid_grant(description: impl Into<String>) -> Self {
        Self::new("invalid_grant", 400, description)
    }

    pub fn unauthorized_client(description: impl Into<String>) -> Self {
        Self::new("unauthorized_client", 400, description)
    }

    pub fn unsupported_grant_type(description: impl Into<String>) -> Self {
        Self::new("unsupported_grant_type", 400, description)
    }

    pub fn invalid_scope(description: impl Into<String>) -> Self {
        Self::new("invalid_scope", 400, description)
    }

    pub fn invalid_token(description: impl Into<String>) -> Self {
        OAuthError { challenge: Some(Challenge::Bearer), ..Self::new("invalid_token", 401, description) }
    }

    pub fn insufficient_scope(description: impl Into<String>) -> Self {
        OAuthError { challenge: Some(Challenge::Bearer), ..Self::new("insufficient_scope", 403, description) }
    }

    pub fn server_error() -> Self {
        Self::new("server_error", 500, "The request could not be completed; quote the x-request-id when reporting it.")
    }

    pub fn temporarily_unavailable(description: impl Into<String>) -> Self {
        Self::new("temporarily_unavailable", 503, description)
    }
}

impl std::fmt::Display for OAuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error, self.description)
    }
}

/// Logs an internal cause and answers `server_error`; the cause never reaches the client.
pub fn internal(cause: &dyn std::fmt::Display) -> OAuthError {
    tracing::error!(error = %cause, "OAuth request failed");
    OAuthError::server_error()
}

//! pforte as OpenID Provider: the HTTP side. Handlers parse and authenticate, call `identity`, and
//! turn its answers into redirects, pages or OAuth JSON.

mod authorize;
mod discovery;
pub(crate) mod logout;
pub(crate) mod pages;
mod token;
mod userinfo;

use std::collections::BTreeMap;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine;
use secrecy::SecretString;
use serde_json::json;

use crate::http::state::AppState;
use crate::identity::client_auth::ClientCredentials;
use crate::identity::oauth::{Challenge, ErrorCode, OAuthError};

/// Binds a login to the browser that started it (SECURITY.md #10, #11).
pub const BROWSER_COOKIE: &str = "__Host-pforte-browser";

/// Where the upstream account providers send the browser back: `{public_url}/callback/{provider_id}`
/// (the route in `authorize`).
pub fn upstream_callback_base(public_url: &url::Url) -> String {
    format!("{}/callback", public_url.as_str().trim_end_matches('/'))
}

/// What a client assertion's `aud` may name: the issuer, or the endpoint it is sent to (the token,
/// PAR and revocation routes in `token`).
pub fn assertion_audiences(issuer: &str) -> Vec<String> {
    ["", "/token", "/par", "/revoke"].iter().map(|path| format!("{issuer}{path}")).collect()
}

pub fn router() -> Router<AppState> {
    Router::new()
        .merge(discovery::router())
        .merge(authorize::router())
        .merge(token::router())
        .merge(userinfo::router())
        .merge(logout::router())
}

/// The HTTP status that answers an OAuth error code: 401 for a failed client login or a bad token
/// (RFC 6749 §5.2, RFC 6750 §3.1), 403 for too little scope, 5xx for pforte's own trouble, else 400.
fn status_for(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::InvalidClient | ErrorCode::InvalidToken => StatusCode::UNAUTHORIZED,
        ErrorCode::InsufficientScope => StatusCode::FORBIDDEN,
        ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::SlowDown => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::InvalidRequest
        | ErrorCode::InvalidGrant
        | ErrorCode::UnauthorizedClient
        | ErrorCode::UnsupportedGrantType
        | ErrorCode::InvalidScope => StatusCode::BAD_REQUEST,
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let code = self.error.as_str();
        let body = json!({ "error": code, "error_description": self.description });
        let mut response = (status_for(self.error), axum::Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        let challenge = match self.error.challenge() {
            Some(Challenge::Basic) => Some("Basic realm=\"pforte\"".to_owned()),
            Some(Challenge::Bearer) => Some(format!("Bearer error=\"{code}\"")),
            None => None,
        };
        if let Some(value) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            headers.insert(header::WWW_AUTHENTICATE, value);
        }
        if let Some(seconds) = self.retry_after_secs {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// Form or query parameters; a parameter given twice is an error (RFC 6749 §3.1).
pub fn parse_parameters(raw: &[u8]) -> Result<BTreeMap<String, String>, String> {
    let mut params = BTreeMap::new();
    for (key, value) in url::form_urlencoded::parse(raw) {
        if value.is_empty() {
            continue;
        }
        if params.insert(key.to_string(), value.to_string()).is_some() {
            return Err(format!("The parameter {key} appears more than once."));
        }
    }
    Ok(params)
}

/// Client credentials from the Basic header and the form (RFC 6749 §2.3.1: Basic values are
/// form-encoded before base64).
pub fn client_credentials(
    headers: &HeaderMap,
    form: &BTreeMap<String, String>,
) -> Result<ClientCredentials, OAuthError> {
    let basic = match headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        Some(value) if value.len() > 6 && value[..6].eq_ignore_ascii_case("basic ") => {
            let bad = || OAuthError::invalid_client("The Basic authorization header is malformed.");
            let decoded = base64::engine::general_purpose::STANDARD.decode(value[6..].trim()).map_err(|_| bad())?;
            let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
            let (id, secret) = decoded.split_once(':').ok_or_else(bad)?;
            let id = form_decode(id);
            let secret = form_decode(secret);
            Some((id, SecretString::from(secret)))
        }
        _ => None,
    };
    Ok(ClientCredentials {
        basic,
        client_id: form.get("client_id").cloned(),
        client_secret: form.get("client_secret").map(|s| SecretString::from(s.clone())),
        client_assertion_type: form.get("client_assertion_type").cloned(),
        client_assertion: form.get("client_assertion").cloned(),
    })
}

fn form_decode(value: &str) -> String {
    url::form_urlencoded::parse(format!("v={value}").as_bytes()).next().map(|(_, v)| v.into_owned()).unwrap_or_default()
}

/// The browser-binding cookie's value, if the browser sent one.
pub fn browser_cookie(headers: &HeaderMap) -> Option<String> {
    crate::http::cookies::read(headers, BROWSER_COOKIE).map(str::to_owned)
}

pub fn browser_cookie_header(value: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!("{BROWSER_COOKIE}={value}; Path=/; Secure; HttpOnly; SameSite=Lax")).ok()
}

/// 303 See Other: after a POST the browser follows with a GET (SECURITY.md #10).
pub fn see_other(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => {
            let mut response = StatusCode::SEE_OTHER.into_response();
            response.headers_mut().insert(header::LOCATION, value);
            response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(_) => {
            crate::http::error::ApiError::internal(&"redirect target is not a valid header value").into_response()
        }
    }
}

/// JSON that must not be cached (tokens, user data).
pub fn no_store_json(body: serde_json::Value) -> Response {
    let mut response = axum::Json(body).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// A login that cannot go on: back to the online service when it may learn why, else a page.
/// Shared by the OpenID Connect callback and the SAML assertion consumer (`http::saml`).
pub(crate) fn login_error(lang: pages::Lang, error: crate::identity::login::LoginError) -> Response {
    use crate::identity::login::LoginError;
    match error {
        LoginError::Redirect(target) => see_other(&target),
        LoginError::Page { problem, back } => pages::problem(lang, problem, back.as_deref()).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(error: OAuthError) -> (u16, Option<String>) {
        let response = error.into_response();
        let challenge =
            response.headers().get(header::WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()).map(str::to_owned);
        (response.status().as_u16(), challenge)
    }

    #[test]
    fn each_oauth_error_code_is_answered_with_its_status_and_challenge() {
        assert_eq!(answer(OAuthError::invalid_request("x")), (400, None));
        assert_eq!(answer(OAuthError::invalid_grant("x")), (400, None));
        assert_eq!(answer(OAuthError::invalid_client("x")), (401, Some("Basic realm=\"pforte\"".into())));
        assert_eq!(answer(OAuthError::invalid_token("x")), (401, Some("Bearer error=\"invalid_token\"".into())));
        assert_eq!(
            answer(OAuthError::insufficient_scope("x")),
            (403, Some("Bearer error=\"insufficient_scope\"".into()))
        );
        assert_eq!(answer(OAuthError::server_error()), (500, None));
        assert_eq!(answer(OAuthError::temporarily_unavailable("x")), (503, None));
    }

    #[test]
    fn a_database_that_cannot_be_asked_is_temporarily_unavailable_never_a_refusal() {
        use crate::identity::tokens::TokenError;
        use crate::keys::KeyError;
        use crate::store::StorageError;
        let away = || StorageError::Sqlx(sqlx::Error::PoolTimedOut);
        assert_eq!(answer(OAuthError::from(away())), (503, None));
        assert_eq!(answer(OAuthError::from(TokenError::Storage(away()))), (503, None));
        assert_eq!(answer(OAuthError::from(TokenError::Keys(KeyError::Storage(away())))), (503, None));
        assert_eq!(answer(OAuthError::from(StorageError::Corrupt("x".into()))), (500, None));
        let refused = answer(OAuthError::from(TokenError::Invalid("expired".into())));
        assert_eq!(refused, (401, Some("Bearer error=\"invalid_token\"".into())));
    }
}

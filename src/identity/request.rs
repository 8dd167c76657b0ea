//! Authorization requests: parsed once into a checked `AuthorizationRequest`, or refused in one of
//! two ways. Until the client and its redirect URI are known to be genuine, an error can only be
//! shown on a page (redirecting would make pforte an open redirector); after that, errors go back to
//! the client's redirect URI as RFC 6749 §4.1.2.1 describes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::levels::parse_acr_value;
use crate::registry::{Client, Level, Registry, Scope};

/// Longest accepted parameter value; anything longer is refused rather than stored or echoed.
pub(crate) const MAX_PARAMETER_LENGTH: usize = 2048;
pub(crate) const MAX_PARAMETERS: usize = 50;

/// A request that passed every check, as stored with the login.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub state: Option<String>,
    pub nonce: Option<String>,
    /// Requested scopes the client is registered for (data minimisation), `openid` first.
    pub scopes: Vec<String>,
    pub code_challenge: String,
    pub required_level: Level,
    pub max_age: Option<u64>,
    /// `prompt=login`: the person must log in again at the provider, whatever session it has.
    #[serde(default)]
    pub prompt_login: bool,
    /// `de` or `en`, from `ui_locales`; `None` leaves it to the browser's Accept-Language.
    pub locale: Option<String>,
    pub idp_hint: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AuthorizeError {
    /// Shown on an error page; never redirected.
    Page { description: String },
    /// Sent back to the (validated) redirect URI.
    Redirect { redirect_uri: String, state: Option<String>, error: &'static str, description: String },
}

/// Where the parameters came from: the browser, or a pushed request the client authenticated for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    Browser,
    Pushed,
}

/// Checks the parameters of an authorization request against the client's registration.
pub(crate) fn validate(
    params: &BTreeMap<String, String>,
    registry: &Registry,
    origin: Origin,
) -> Result<AuthorizationRequest, AuthorizeError> {
    let page = |description: &str| AuthorizeError::Page { description: description.to_owned() };
    let client_id = params.get("client_id").ok_or_else(|| page("The request names no client_id."))?;
    let client = registry
        .client(client_id)
        .ok_or_else(|| page("The online service that sent you here is not registered with pforte."))?;
    let redirect_uri = params.get("redirect_uri").ok_or_else(|| page("The request names no redirect_uri."))?;
    if !client.allows_redirect_uri(redirect_uri) {
        return Err(page("The return address in the request is not registered for this online service."));
    }

    let state = params.get("state").cloned();
    let fail = |error: &'static str, description: &str| AuthorizeError::Redirect {
        redirect_uri: redirect_uri.clone(),
        state: state.clone(),
        error,
        description: description.to_owned(),
    };
    if params.len() > MAX_PARAMETERS || params.values().any(|v| v.len() > MAX_PARAMETER_LENGTH) {
        return Err(fail("invalid_request", "A parameter is longer than pforte accepts."));
    }
    if params.contains_key("request") {
        return Err(fail(
            "request_not_supported",
            "Request objects are not supported; use pushed authorization requests.",
        ));
    }
    if client.require_par && origin != Origin::Pushed {
        return Err(fail("invalid_request", "This client must use pushed authorization requests."));
    }
    match params.get("response_type").map(String::as_str) {
        Some("code") => {}
        Some(_) => return Err(fail("unsupported_response_type", "Only response_type=code is supported.")),
        None => return Err(fail("invalid_request", "response_type is missing.")),
    }
    if params.get("response_mode").is_some_and(|mode| mode != "query") {
        return Err(fail("invalid_request", "Only response_mode=query is supported."));
    }
    let scopes = granted_scopes(params.get("scope"), client).map_err(|d| fail("invalid_scope", &d))?;
    let code_challenge = pkce_challenge(params).map_err(|d| fail("invalid_request", &d))?;
    let max_age = match params.get("max_age") {
        None => None,
        Some(v) => Some(v.parse::<u64>().map_err(|_| fail("invalid_request", "max_age must be a whole number."))?),
    };
    let prompt: Vec<&str> = params.get("prompt").map(|p| p.split(' ').collect()).unwrap_or_default();
    if prompt.contains(&"none") {
        // pforte keeps no login sessions (no single sign-on across services): every login goes upstream.
        return Err(fail("login_required", "prompt=none cannot be met: every login needs the account provider."));
    }
    let required_level = required_level(params.get("acr_values"), client.min_level);
    let idp_hint = params.get("idp_hint").cloned();
    if let Some(hint) = &idp_hint {
        if !client.identity_providers.iter().any(|id| id.as_str() == hint) {
            return Err(fail("invalid_request", "idp_hint names an account provider this service may not use."));
        }
    }
    Ok(AuthorizationRequest {
        client_id: client_id.clone(),
        redirect_uri: redirect_uri.clone(),
        state,
        nonce: params.get("nonce").cloned(),
        scopes,
        code_challenge,
        required_level,
        max_age,
        prompt_login: prompt.contains(&"login"),
        locale: params.get("ui_locales").and_then(|l| pick_locale(l)),
        idp_hint,
    })
}

/// The requested scopes this client is registered for; `openid` must be among the requested ones.
fn granted_scopes(requested: Option<&String>, client: &Client) -> Result<Vec<String>, String> {
    let requested: Vec<&str> = requested.map(|s| s.split(' ').filter(|s| !s.is_empty()).collect()).unwrap_or_default();
    if !requested.contains(&"openid") {
        return Err("The scope must include openid.".to_owned());
    }
    let mut granted: Vec<String> = client
        .scopes
        .iter()
        .filter(|scope| requested.contains(&scope.as_str()))
        .map(|scope| scope.as_str().to_owned())
        .collect();
    granted.sort_by_key(|s| s != Scope::Openid.as_str());
    Ok(granted)
}

fn pkce_challenge(params: &BTreeMap<String, String>) -> Result<String, String> {
    match params.get("code_challenge_method").map(String::as_str) {
        Some("S256") => {}
        Some(_) => return Err("code_challenge_method must be S256.".to_owned()),
        None => return Err("PKCE is required: code_challenge_method=S256 is missing.".to_owned()),
    }
    let challenge = params.get("code_challenge").ok_or("PKCE is required: code_challenge is missing.")?;
    let well_formed =
        challenge.len() == 43 && challenge.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !well_formed {
        return Err("code_challenge must be the base64url SHA-256 of the verifier (43 characters).".to_owned());
    }
    Ok(challenge.clone())
}

/// The lowest level the service lists in `acr_values` (any of them satisfies it), never below its
/// registered minimum. Values pforte does not know are ignored, as OpenID Connect allows.
fn required_level(acr_values: Option<&String>, minimum: Level) -> Level {
    let asked = acr_values.and_then(|values| values.split(' ').filter_map(parse_acr_value).min());
    asked.map_or(minimum, |level| level.max(minimum))
}

fn pick_locale(ui_locales: &str) -> Option<String> {
    ui_locales.split(' ').find_map(|tag| {
        let language = tag.split(['-', '_']).next().unwrap_or_default().to_ascii_lowercase();
        matches!(language.as_str(), "de" | "en").then_some(language)
    })
}

/// Whether `verifier` belongs to the S256 `challenge` (RFC 7636 §4.6).
pub(crate) fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    use base64::Engine;
    use sha2::{Digest, Sha256};
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    well_formed && crate::crypto::secret::constant_time_eq(&secrecy::SecretString::from(computed), challenge)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowest_listed_level_counts_but_never_below_the_registered_minimum() {
        let values = "http://eidas.europa.eu/LoA/high http://eidas.europa.eu/LoA/substantial".to_owned();
        assert_eq!(required_level(Some(&values), Level::Low), Level::Substantial);
        assert_eq!(required_level(Some(&values), Level::High), Level::High);
        assert_eq!(required_level(Some(&"urn:other".to_owned()), Level::Substantial), Level::Substantial);
        assert_eq!(required_level(None, Level::Low), Level::Low);
    }

    #[test]
    fn locale_is_german_or_english_from_the_first_known_tag() {
        assert_eq!(pick_locale("fr en-GB de"), Some("en".to_owned()));
        assert_eq!(pick_locale("fr"), None);
    }

    #[test]
    fn pkce_verifier_must_hash_to_the_challenge() {
        // RFC 7636 appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(pkce_matches(verifier, challenge));
        assert!(!pkce_matches("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj", challenge));
        assert!(!pkce_matches("short", challenge));
    }
}

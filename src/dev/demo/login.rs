//! The demo online service's login: a real relying party of pforte, written the way an online service integrates: the `openidconnect`
//! crate against pforte's public URL over real HTTP (discovery, code flow with PKCE S256, state and
//! nonce, `client_secret_basic` with the `demo` client's registered secret, ES256 ID token validation,
//! userinfo). What it must remember between the redirect to pforte and the answer stays on the server,
//! under a random id the browser carries in a cookie. Tokens and claims are shown to the tester, never
//! logged.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreGenderClaim, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm,
    CoreProviderMetadata,
};
use openidconnect::{
    AdditionalClaims, AuthType, AuthenticationContextClass, AuthorizationCode, ClaimsVerificationError, ClientId,
    ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet, EndpointSet, IdToken, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope, TokenResponse,
    UserInfoClaims, UserInfoError,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::login_pages as pages;
use super::{html, pay, DemoState, CLIENT_ID};
use crate::crypto::random_token;
use crate::crypto::secret::constant_time_eq;
use crate::dev::see_other;
use crate::registry::Level;
const COOKIE: &str = "__Host-pforte-demo";
/// How long a login may take from the redirect to pforte until the answer arrives.
const PENDING_SECS: i64 = 600;
/// More open logins than any tester makes; beyond it `/demo/login` refuses instead of growing memory.
const MAX_PENDING: usize = 10_000;
/// The scopes the form offers; `openid` is always sent.
pub(super) const SCOPES: [&str; 6] = ["profile", "birth", "email", "address", "postbox", "organisation"];

pub(super) fn routes() -> Router<DemoState> {
    Router::new().route("/demo", get(start)).route("/demo/login", get(login)).route("/demo/callback", get(callback))
}

async fn start(RawQuery(query): RawQuery) -> Response {
    // After logout pforte sends the browser back here with the `state` the logout link carried.
    let logged_out = pairs(query).iter().any(|(key, _)| key == "state");
    html(StatusCode::OK, pages::start(logged_out))
}

async fn login(State(state): State<DemoState>, RawQuery(query): RawQuery) -> Response {
    let logins = &state.demo.logins;
    let choice = match Choice::parse(&pairs(query)) {
        Ok(choice) => choice,
        Err(message) => return Failure::Request(message).into_response(),
    };
    let rp = match RelyingParty::discover(&state).await {
        Ok(rp) => rp,
        Err(failure) => return failure.into_response(),
    };
    let now = state.context.now();
    let (url, pending) = rp.authorization_request(&choice, now);
    let Some(id) = logins.hold(pending, now) else {
        return Failure::Request("Zu viele offene Anmeldungen. Bitte versuchen Sie es in einigen Minuten erneut.")
            .into_response();
    };
    let mut response = see_other(url.as_str());
    if let Ok(cookie) = HeaderValue::from_str(&format!("{COOKIE}={id}; Path=/; Secure; HttpOnly; SameSite=Lax")) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

async fn callback(State(state): State<DemoState>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let mut response = match answer(&state, &state.demo.logins, &headers, query).await {
        Ok(done) => {
            let mut response = html(StatusCode::OK, pages::logged_in(&done, &pay::pay_form(&state)));
            // The pay step is for logged-in visitors only.
            if let Some(session) = state.demo.payments.start_session(state.context.now(), done.id_token.clone()) {
                let cookie = format!("{}={session}; Path=/; Secure; HttpOnly; SameSite=Lax", pay::SESSION_COOKIE);
                if let Ok(cookie) = HeaderValue::from_str(&cookie) {
                    response.headers_mut().append(header::SET_COOKIE, cookie);
                }
            }
            response
        }
        Err(failure) => failure.into_response(),
    };
    // The login is over either way: the cookie names nothing any more.
    let expired = format!("{COOKIE}=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Lax");
    if let Ok(cookie) = HeaderValue::from_str(&expired) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// Checks pforte's answer against the login this browser started, then completes it.
async fn answer(
    state: &DemoState,
    logins: &PendingLogins,
    headers: &HeaderMap,
    query: Option<String>,
) -> Result<LoggedIn, Failure> {
    let mut params = BTreeMap::new();
    for (key, value) in pairs(query) {
        if params.insert(key, value).is_some() {
            return Err(Failure::Request("Die Antwort enthält einen Parameter doppelt."));
        }
    }
    let id = cookie(headers)
        .ok_or(Failure::Request("In diesem Browser wurde keine Anmeldung beim Demo-Dienst begonnen."))?;
    let pending = logins.take(&id, state.context.now()).ok_or(Failure::Request(
        "Diese Anmeldung ist abgelaufen oder bereits abgeschlossen. Bitte beginnen Sie neu.",
    ))?;
    let expected_state = SecretString::from(pending.state.clone());
    if !params.get("state").is_some_and(|given| constant_time_eq(&expected_state, given)) {
        return Err(Failure::Request("Die Antwort gehört nicht zu dieser Anmeldung (state passt nicht)."));
    }
    // RFC 9207: an answer naming another issuer may be a mix-up attack, whatever it says.
    if params.get("iss") != Some(&state.context.issuer) {
        return Err(Failure::Request("Die Antwort stammt nicht von pforte (iss passt nicht)."));
    }
    if let Some(error) = params.get("error") {
        return Err(Failure::Refused { error: error.clone(), description: params.get("error_description").cloned() });
    }
    let code = params.get("code").ok_or(Failure::Request("Die Antwort enthält weder code noch error."))?;
    let rp = RelyingParty::discover(state).await?;
    rp.complete(code, pending).await
}

/// What the tester chose on the start page.
#[derive(Debug, PartialEq, Eq)]
struct Choice {
    level: Level,
    scopes: Vec<&'static str>,
}

impl Choice {
    fn parse(pairs: &[(String, String)]) -> Result<Choice, &'static str> {
        let mut level = None;
        let mut scopes = Vec::new();
        for (key, value) in pairs {
            match key.as_str() {
                "level" if level.is_none() => {
                    level = Some(
                        Level::ALL.into_iter().find(|l| l.as_str() == value).ok_or("Unbekanntes Vertrauensniveau.")?,
                    );
                }
                "level" => return Err("Bitte wählen Sie genau ein Vertrauensniveau."),
                "scope" => {
                    let scope = SCOPES.into_iter().find(|s| s == value).ok_or("Unbekannter Scope.")?;
                    if !scopes.contains(&scope) {
                        scopes.push(scope);
                    }
                }
                _ => {}
            }
        }
        Ok(Choice { level: level.ok_or("Bitte wählen Sie ein Vertrauensniveau.")?, scopes })
    }
}

/// What the answer is checked against. No `Debug`: nonce and verifier are this login's secrets.
struct Pending {
    state: String,
    nonce: String,
    pkce_verifier: String,
    expires_at: i64,
}

/// Logins sent to pforte whose answer has not come back yet, by the id in the browser's cookie.
#[derive(Default)]
pub(super) struct PendingLogins(Mutex<HashMap<String, Pending>>);

impl PendingLogins {
    fn map(&self, now: i64) -> MutexGuard<'_, HashMap<String, Pending>> {
        // A panic elsewhere cannot leave this map half-updated in a way that matters to a demo.
        let mut map = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        map.retain(|_, pending| pending.expires_at > now);
        map
    }

    fn hold(&self, pending: Pending, now: i64) -> Option<String> {
        let mut map = self.map(now);
        if map.len() >= MAX_PENDING {
            return None;
        }
        let id = random_token();
        map.insert(id.clone(), pending);
        Some(id)
    }

    /// Each login is answered once.
    fn take(&self, id: &str, now: i64) -> Option<Pending> {
        self.map(now).remove(id)
    }
}

/// The claims pforte sends beyond OpenID Connect's standard ones (`idp`, `account_type`, `birth_name`,
/// the organisation claims, ...), which the library would otherwise drop.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
struct AllClaims {
    #[serde(flatten)]
    claims: BTreeMap<String, Value>,
}

impl AdditionalClaims for AllClaims {}

type DemoIdToken = IdToken<AllClaims, CoreGenderClaim, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm>;

type DemoClient =
    CoreClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointMaybeSet, EndpointMaybeSet>;

/// A completed login, as the result page shows it.
pub(super) struct LoggedIn {
    pub acr: String,
    pub idp: String,
    pub account_type: String,
    pub sub: String,
    pub claims: BTreeMap<String, Value>,
    /// pforte's logout, with the ID token as `id_token_hint`.
    pub logout_url: String,
    /// The ID token itself: the application step exchanges it for pforte's login evidence.
    pub id_token: SecretString,
}

/// The demo service as pforte's client, configured from pforte's discovery document.
struct RelyingParty<'a> {
    client: DemoClient,
    http: &'a reqwest::Client,
    issuer: String,
}

impl<'a> RelyingParty<'a> {
    /// Discovered anew for each use: pforte's keys may have rotated, and a demo need not be fast.
    async fn discover(state: &'a DemoState) -> Result<RelyingParty<'a>, Failure> {
        let registered = state
            .demo
            .client
            .as_ref()
            .ok_or(Failure::Setup("Der Onlinedienst „demo“ ist in der Registry nicht eingetragen."))?;
        let Some(secret) = &registered.secret else {
            return Err(Failure::Setup("Der Onlinedienst „demo“ muss mit client_secret_basic eingetragen sein."));
        };
        let issuer = state.context.issuer.clone();
        let issuer_url = IssuerUrl::new(issuer.clone()).map_err(|_| Failure::Setup("Die public_url ist keine URL."))?;
        let redirect_url = RedirectUrl::new(format!("{issuer}/demo/callback"))
            .map_err(|_| Failure::Setup("Die public_url ist keine URL."))?;
        let metadata = CoreProviderMetadata::discover_async(issuer_url, &state.context.http)
            .await
            .map_err(|e| Failure::Pforte(format!("discovery failed: {e}")))?;
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(CLIENT_ID.to_owned()),
            Some(ClientSecret::new(secret.expose_secret().to_owned())),
        )
        .set_redirect_uri(redirect_url)
        .set_auth_type(AuthType::BasicAuth);
        Ok(RelyingParty { client, http: &state.context.http, issuer })
    }

    fn authorization_request(&self, choice: &Choice, now: i64) -> (url::Url, Pending) {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = self
            .client
            .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
            .set_pkce_challenge(challenge)
            .add_auth_context_value(AuthenticationContextClass::new(eidas_uri(choice.level).to_owned()));
        for scope in &choice.scopes {
            request = request.add_scope(Scope::new((*scope).to_owned()));
        }
        let (url, state, nonce) = request.url();
        let pending = Pending {
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
            expires_at: now + PENDING_SECS,
        };
        (url, pending)
    }

    /// Redeems the code, validates the ID token and reads userinfo about the same subject.
    async fn complete(&self, code: &str, pending: Pending) -> Result<LoggedIn, Failure> {
        let tokens = self
            .client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|_| Failure::Pforte("the discovery document names no token endpoint".into()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier))
            .request_async(self.http)
            .await
            .map_err(|e| match e {
                RequestTokenError::ServerResponse(refusal) => {
                    Failure::Pforte(format!("the token endpoint refused the code: {}", refusal.error()))
                }
                // Other variants may carry the response body, which may carry tokens.
                _ => Failure::Pforte("the token request failed".into()),
            })?;
        let id_token = tokens.id_token().ok_or(Failure::Pforte("the token response has no ID token".into()))?;
        let id_token: DemoIdToken =
            id_token.to_string().parse().map_err(|_| Failure::Pforte("the ID token cannot be read".into()))?;
        let verifier = self.client.id_token_verifier().set_allowed_algs([CoreJwsSigningAlgorithm::EcdsaP256Sha256]);
        let claims = id_token.claims(&verifier, &Nonce::new(pending.nonce)).map_err(rejected)?;
        let userinfo: UserInfoClaims<AllClaims, CoreGenderClaim> = self
            .client
            .user_info(tokens.access_token().clone(), Some(claims.subject().clone()))
            .map_err(|_| Failure::Pforte("the discovery document names no userinfo endpoint".into()))?
            .request_async(self.http)
            .await
            .map_err(|e| {
                Failure::Pforte(match e {
                    UserInfoError::ClaimsVerification(_) => "userinfo is about another subject".into(),
                    UserInfoError::Response(status, ..) => format!("userinfo answered HTTP {status}"),
                    _ => "the userinfo request failed".into(),
                })
            })?;

        // The signed ID token wins where both carry a claim.
        let mut received = claim_map(&userinfo);
        received.extend(claim_map(claims).into_iter().filter(|(name, _)| !PROTOCOL_CLAIMS.contains(&name.as_str())));
        let text = |name: &str| received.get(name).and_then(Value::as_str).unwrap_or_default().to_owned();
        Ok(LoggedIn {
            acr: claims.auth_context_ref().map(|acr| acr.as_str().to_owned()).unwrap_or_default(),
            idp: text("idp"),
            account_type: text("account_type"),
            sub: claims.subject().as_str().to_owned(),
            logout_url: logout_url(&self.issuer, &id_token.to_string()),
            id_token: SecretString::from(id_token.to_string()),
            claims: received,
        })
    }
}

/// ID token claims about the token rather than the person; the result page leaves them out.
const PROTOCOL_CLAIMS: [&str; 9] = ["iss", "aud", "exp", "iat", "nonce", "azp", "auth_time", "at_hash", "c_hash"];

/// Claims under their JSON names: the library's typed claims written back out, plus `AllClaims`.
fn claim_map(claims: &impl Serialize) -> BTreeMap<String, Value> {
    match serde_json::to_value(claims) {
        Ok(Value::Object(map)) => map.into_iter().collect(),
        _ => BTreeMap::new(),
    }
}

fn rejected(error: ClaimsVerificationError) -> Failure {
    Failure::Pforte(
        match error {
            ClaimsVerificationError::SignatureVerification(_) => "the ID token signature is not valid (ES256 expected)",
            ClaimsVerificationError::Expired(_) => "the ID token has expired",
            ClaimsVerificationError::InvalidAudience(_) => "the ID token is meant for another service",
            ClaimsVerificationError::InvalidIssuer(_) => "the ID token comes from another issuer",
            ClaimsVerificationError::InvalidNonce(_) => "the ID token does not carry this login's nonce",
            _ => "the ID token is not valid",
        }
        .into(),
    )
}

/// Why a login could not be shown. Texts hold no token and no claim.
enum Failure {
    /// The browser's request does not fit a login this service started.
    Request(&'static str),
    /// pforte answered with an OAuth error (the person cancelled, the level was not reached, ...).
    Refused { error: String, description: Option<String> },
    /// Talking to pforte failed, or its answer did not pass the checks.
    Pforte(String),
    /// The demo service is not set up to log in.
    Setup(&'static str),
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        match self {
            Failure::Request(message) => html(StatusCode::BAD_REQUEST, pages::failure(message)),
            Failure::Refused { error, description } => {
                html(StatusCode::OK, pages::refused(&error, description.as_deref()))
            }
            Failure::Pforte(reason) => {
                tracing::warn!(%reason, "demo service: login could not be completed");
                let message =
                    "Die Anmeldung konnte nicht abgeschlossen werden: Die Antwort von pforte hat die Prüfung \
                               nicht bestanden oder pforte war nicht erreichbar.";
                html(StatusCode::BAD_GATEWAY, pages::failure(message))
            }
            Failure::Setup(message) => html(StatusCode::INTERNAL_SERVER_ERROR, pages::failure(message)),
        }
    }
}

/// The eIDAS level URI a service asks for in `acr_values` (OpenID Connect's `acr`).
fn eidas_uri(level: Level) -> &'static str {
    match level {
        Level::Low => "http://eidas.europa.eu/LoA/low",
        Level::Substantial => "http://eidas.europa.eu/LoA/substantial",
        Level::High => "http://eidas.europa.eu/LoA/high",
    }
}

/// RP-initiated logout at pforte, back to the start page afterwards.
fn logout_url(issuer: &str, id_token: &str) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("id_token_hint", id_token)
        .append_pair("post_logout_redirect_uri", &format!("{issuer}/demo"))
        .append_pair("state", &random_token())
        .finish();
    format!("{issuer}/logout?{query}")
}

fn pairs(query: Option<String>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()).into_owned().collect()
}

fn cookie(headers: &HeaderMap) -> Option<String> {
    cookie_named(headers, COOKIE)
}

/// The value of the cookie `name`, if the browser sent a non-empty one.
pub(super) fn cookie_named(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(given, value)| *given == name && !value.is_empty())
        .map(|(_, value)| value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(text: &str) -> Vec<(String, String)> {
        pairs(Some(text.to_owned()))
    }

    #[test]
    fn choice_needs_one_known_level_and_takes_only_offered_scopes() {
        let choice = Choice::parse(&query("level=high&scope=profile&scope=email&scope=profile")).unwrap();
        assert_eq!(choice, Choice { level: Level::High, scopes: vec!["profile", "email"] });
        assert!(Choice::parse(&query("scope=profile")).is_err());
        assert!(Choice::parse(&query("level=medium")).is_err());
        assert!(Choice::parse(&query("level=low&level=high")).is_err());
        assert!(Choice::parse(&query("level=low&scope=payment")).is_err());
    }

    fn pending(expires_at: i64) -> Pending {
        Pending { state: "s".into(), nonce: "n".into(), pkce_verifier: "v".into(), expires_at }
    }

    #[test]
    fn pending_login_is_taken_once_and_forgotten_after_ten_minutes() {
        let logins = PendingLogins::default();
        let id = logins.hold(pending(1000 + PENDING_SECS), 1000).unwrap();
        assert!(logins.take(&id, 1001).is_some());
        assert!(logins.take(&id, 1002).is_none());
        let id = logins.hold(pending(1000 + PENDING_SECS), 1000).unwrap();
        assert!(logins.take(&id, 1000 + PENDING_SECS).is_none());
    }

    #[test]
    fn every_received_claim_is_listed_under_its_json_name() {
        let body = serde_json::json!({
            "sub": "abc", "given_name": "Erika", "idp": "bundid-sim", "account_type": "person", "birth_name": "Gabler",
            "address": { "street_address": "Heidestraße 17", "locality": "Köln" },
            "acr": "http://eidas.europa.eu/LoA/low",
        });
        let claims: UserInfoClaims<AllClaims, CoreGenderClaim> =
            UserInfoClaims::from_json::<std::io::Error>(body.to_string().as_bytes(), None).unwrap();
        let listed = claim_map(&claims);
        assert_eq!(listed, body.as_object().unwrap().clone().into_iter().collect());
    }

    #[test]
    fn cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("a=b; __Host-pforte-demo=xyz; c=d"));
        assert_eq!(cookie(&headers).as_deref(), Some("xyz"));
        assert_eq!(cookie(&HeaderMap::new()), None);
    }
}

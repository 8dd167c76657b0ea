//! The account simulators: a citizen account (BundID-style) under `/dev/bundid`, a company account
//! (Mein Unternehmenskonto-style) under `/dev/unternehmenskonto`, and an authority's own staff
//! directory under `/dev/dienstkonto`, whose accounts carry the `groups` claim the finance staff
//! sign-in maps to finance access. Each is a real OpenID Provider
//! following OpenID Connect Core 1.0 and Discovery, RFC 6749, RFC 7636 (PKCE S256 required), RFC 9207
//! (`iss` in responses) and RP-initiated logout, with the levels and attributes the real accounts
//! offer (see the shared reference on identity): discovery, JWKS, authorization code flow, UserInfo.
//! pforte's upstream client and any certified relying party can log in against it. Keys are made at
//! start; codes and tokens vanish with the process.
//!
//! The handlers here adapt HTTP to the provider logic in `provider`; test data is in `personas`,
//! the pages in `pages`. BundID as it really speaks, SAML 2.0, is `saml` under `/dev/bundid-saml`
//! (with Single Logout in `saml_logout`), and so is a company account under `/dev/unternehmenskonto-saml`.

mod pages;
pub(crate) mod personas;
mod provider;
pub(crate) mod saml;
mod saml_logout;
mod saml_profiles;

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::json;

use provider::{AuthorizeError, ClientCredentials, OAuthError, Params, Registration, Simulator};

use super::Context;
use crate::registry::Registry;

/// The simulated account services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SimKind {
    BundId,
    Unternehmenskonto,
    /// The authority's staff directory (the finance staff sign-in's identity provider).
    Staff,
}

impl SimKind {
    pub(super) const ALL: [SimKind; 3] = [SimKind::BundId, SimKind::Unternehmenskonto, SimKind::Staff];

    /// The path segment under `/dev/`.
    pub(super) fn name(self) -> &'static str {
        match self {
            SimKind::BundId => "bundid",
            SimKind::Unternehmenskonto => "unternehmenskonto",
            SimKind::Staff => "dienstkonto",
        }
    }

    pub(super) fn display_name(self) -> &'static str {
        match self {
            SimKind::BundId => "BundID (Simulator)",
            SimKind::Unternehmenskonto => "Mein Unternehmenskonto (Simulator)",
            SimKind::Staff => "Dienstkonto der Behörde (Simulator)",
        }
    }

    fn scopes(self) -> &'static [&'static str] {
        match self {
            SimKind::BundId => &["openid", "profile", "email"],
            SimKind::Unternehmenskonto => &["openid", "profile", "organisation"],
            SimKind::Staff => &["openid", "profile", "groups"],
        }
    }

    /// The path below pforte's public URL where pforte takes this provider's answers: staff sign in
    /// to the finance pages, everyone else logs in to an online service.
    fn callback_path(self) -> &'static str {
        match self {
            SimKind::Staff => "/finance/login/callback",
            SimKind::BundId | SimKind::Unternehmenskonto => "/callback",
        }
    }
}

/// One account simulator and the registry entry that makes pforte its client.
struct Account {
    simulator: Simulator,
    registration: Option<Registration>,
    /// The origins of the online services that may log in through this simulator, other than
    /// pforte's: the login page's answer leads through pforte's callback on to one of them.
    services: Vec<String>,
}

/// Both account simulators, created once per application.
pub(crate) struct Accounts {
    bundid: Account,
    unternehmenskonto: Account,
    staff: Account,
}

impl Accounts {
    /// Keys are made here; `issuer` is pforte's public URL, under which the simulators live.
    pub(super) fn new(registry: &Registry, issuer: &str) -> Result<Accounts, josekit::JoseError> {
        let account = |kind: SimKind| -> Result<Account, josekit::JoseError> {
            let own = simulator_issuer(issuer, kind);
            // The registry entry whose issuer is this simulator, with pforte's callback for it.
            let entry = registry
                .identity_providers()
                .filter_map(|p| p.oidc().map(|oidc| (p, oidc)))
                .find(|(_, oidc)| oidc.issuer.as_str().trim_end_matches('/') == own);
            let registration =
                entry.map(|(p, oidc)| Registration::of(oidc, format!("{issuer}{}/{}", kind.callback_path(), p.id)));
            let mut services: Vec<String> = registry
                .clients()
                .filter(|client| entry.is_some_and(|p| client.identity_providers.contains(&p.0.id)))
                .flat_map(|client| client.redirect_uris.iter())
                .filter_map(|uri| super::foreign_origin(uri.as_str(), issuer))
                .collect();
            services.sort();
            services.dedup();
            Ok(Account { simulator: Simulator::generate(kind)?, registration, services })
        };
        Ok(Accounts {
            bundid: account(SimKind::BundId)?,
            unternehmenskonto: account(SimKind::Unternehmenskonto)?,
            staff: account(SimKind::Staff)?,
        })
    }

    fn get(&self, kind: SimKind) -> &Account {
        match kind {
            SimKind::BundId => &self.bundid,
            SimKind::Unternehmenskonto => &self.unternehmenskonto,
            SimKind::Staff => &self.staff,
        }
    }
}

/// The handlers' state.
#[derive(Clone)]
struct AccountsState {
    accounts: Arc<Accounts>,
    context: Context,
}

impl AccountsState {
    fn simulator(&self, kind: SimKind) -> &Simulator {
        &self.accounts.get(kind).simulator
    }

    fn registration(&self, kind: SimKind) -> Option<&Registration> {
        self.accounts.get(kind).registration.as_ref()
    }

    fn issuer(&self, kind: SimKind) -> String {
        simulator_issuer(&self.context.issuer, kind)
    }

    fn now(&self) -> i64 {
        self.context.now()
    }
}

/// `{public_url}/dev/<name>`, as the registry entries name it.
fn simulator_issuer(issuer: &str, kind: SimKind) -> String {
    format!("{issuer}/dev/{}", kind.name())
}

/// Both simulators' routes, under `/dev/<name>`.
pub(crate) fn router(accounts: Arc<Accounts>, context: Context) -> Router {
    let mut router = Router::new();
    for kind in SimKind::ALL {
        let routes = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/authorize", get(authorize))
            .route("/authorize/decide", post(decide))
            .route("/token", post(token))
            .route("/userinfo", get(userinfo).post(userinfo))
            .route("/logout", get(logout).post(logout))
            .layer(Extension(kind));
        router = router.nest(&format!("/dev/{}", kind.name()), routes);
    }
    router.with_state(AccountsState { accounts, context })
}

async fn discovery(State(state): State<AccountsState>, Extension(kind): Extension<SimKind>) -> Response {
    let issuer = state.issuer(kind);
    let mut claims: BTreeSet<String> =
        personas::personas(kind).iter().flat_map(|p| p.claims().into_iter().map(|(name, _)| name)).collect();
    claims.extend(["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr"].map(String::from));
    let acr_values: Vec<&str> = personas::levels(kind).iter().map(|l| l.acr).collect();
    let document = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "userinfo_endpoint": format!("{issuer}/userinfo"),
        "jwks_uri": format!("{issuer}/jwks"),
        "end_session_endpoint": format!("{issuer}/logout"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": kind.scopes(),
        "claims_supported": claims,
        "acr_values_supported": acr_values,
        "authorization_response_iss_parameter_supported": true,
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "ui_locales_supported": ["de"],
    });
    // The keys change with every start, so nothing may cache what names them.
    ([(header::CACHE_CONTROL, "no-cache")], Json(document)).into_response()
}

async fn jwks(State(state): State<AccountsState>, Extension(kind): Extension<SimKind>) -> Response {
    ([(header::CACHE_CONTROL, "no-cache")], Json(state.simulator(kind).jwks())).into_response()
}

async fn authorize(
    State(state): State<AccountsState>,
    Extension(kind): Extension<SimKind>,
    RawQuery(query): RawQuery,
) -> Response {
    let sim = state.simulator(kind);
    let issuer = state.issuer(kind);
    let params = Params::parse(query.unwrap_or_default().as_bytes());
    let request = match provider::check_authorize(params, state.registration(kind)) {
        Ok(request) => request,
        Err(AuthorizeError::Page(message)) => return error_page(kind, message),
        Err(AuthorizeError::Redirect { redirect_uri, state: client_state, error, description }) => {
            let mut pairs = vec![("error", error), ("error_description", description), ("iss", issuer.as_str())];
            if let Some(client_state) = &client_state {
                pairs.push(("state", client_state));
            }
            return redirect_back(kind, &redirect_uri, &pairs);
        }
    };
    // The first requested acr this simulator offers; without one, the highest level.
    let levels = personas::levels(kind);
    let preselected = request
        .acr_values
        .iter()
        .find_map(|acr| personas::level(kind, acr))
        .or(levels.last())
        .map_or("", |level| level.acr);
    let client_id = request.client_id.clone();
    let request_id = sim.hold(request, state.now());
    let page = pages::login(&pages::LoginPage {
        display_name: kind.display_name(),
        decide_action: &format!("{issuer}/authorize/decide"),
        request_id: &request_id,
        client_id: &client_id,
        personas: personas::personas(kind),
        levels,
        preselected_acr: preselected,
    });
    super::html_leading_to(StatusCode::OK, page, &state.accounts.get(kind).services)
}

/// The tester's answer on the login page: a code for the chosen persona and level, or a refusal.
async fn decide(State(state): State<AccountsState>, Extension(kind): Extension<SimKind>, body: Bytes) -> Response {
    let sim = state.simulator(kind);
    let issuer = state.issuer(kind);
    let params = Params::parse(&body).unwrap_or_default();
    let persona = params.get("persona").and_then(|key| personas::persona(kind, key));
    let level = params.get("level").and_then(|acr| personas::level(kind, acr));
    // Checked before the request is taken, so a bad choice does not use up the login page.
    let login = match (params.get("action"), persona, level) {
        (Some("login"), Some(persona), Some(level)) => Some((persona, level)),
        (Some("login"), _, _) => return error_page(kind, "Bitte wählen Sie eine Testperson und ein Vertrauensniveau."),
        (Some("cancel"), _, _) => None,
        _ => return error_page(kind, "Bitte wählen Sie „Anmelden“ oder „Abbrechen“."),
    };
    let now = state.now();
    let Some(request) = params.get("request").and_then(|id| sim.take(id, now)) else {
        return error_page(
            kind,
            "Diese Anmeldeanfrage ist abgelaufen oder wurde schon beantwortet. Bitte starten Sie die \
             Anmeldung beim Dienst neu.",
        );
    };
    match login {
        Some((persona, level)) => {
            let redirect_uri = request.redirect_uri.clone();
            let client_state = request.state.clone();
            let code = sim.issue_code(request, persona, level, now);
            redirect_back(kind, &redirect_uri, &[("code", &code), ("state", &client_state), ("iss", &issuer)])
        }
        None => redirect_back(
            kind,
            &request.redirect_uri,
            &[
                ("error", "access_denied"),
                ("error_description", "The user cancelled the login."),
                ("state", &request.state),
                ("iss", &issuer),
            ],
        ),
    }
}

async fn token(
    State(state): State<AccountsState>,
    Extension(kind): Extension<SimKind>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let sim = state.simulator(kind);
    let issuer = state.issuer(kind);
    let Ok(params) = Params::parse(&body) else {
        return oauth_error(OAuthError { error: "invalid_request", description: "A parameter is repeated." });
    };
    let basic = match authorization(&headers, "Basic") {
        None => None,
        Some(value) => match basic_credentials(value) {
            Some(pair) => Some(pair),
            None => {
                return oauth_error(OAuthError {
                    error: "invalid_client",
                    description: "The Basic credentials cannot be read.",
                })
            }
        },
    };
    let post = params
        .get("client_secret")
        .map(|secret| (params.get("client_id").unwrap_or_default().to_owned(), secret.to_owned()));
    let credentials = ClientCredentials { basic, post };
    match sim.exchange(&params, credentials, state.registration(kind), &issuer, state.now()) {
        Ok(body) => (no_store(), Json(body)).into_response(),
        Err(e) => oauth_error(e),
    }
}

async fn userinfo(
    State(state): State<AccountsState>,
    Extension(kind): Extension<SimKind>,
    headers: HeaderMap,
) -> Response {
    let sim = state.simulator(kind);
    match authorization(&headers, "Bearer").and_then(|token| sim.userinfo(token, state.now())) {
        Some(claims) => (no_store(), Json(claims)).into_response(),
        None => {
            let body = json!({"error": "invalid_token", "error_description": "The access token is missing, unknown or expired."});
            let challenge = r#"Bearer error="invalid_token""#;
            (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, challenge)], Json(body)).into_response()
        }
    }
}

/// RP-initiated logout. The simulators keep no login session, so there is nothing to end; they only
/// send the browser back, and only to an address of this pforte.
async fn logout(
    State(state): State<AccountsState>,
    Extension(kind): Extension<SimKind>,
    method: Method,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let raw = if method == Method::POST { body.to_vec() } else { query.unwrap_or_default().into_bytes() };
    let params = Params::parse(&raw).unwrap_or_default();
    let own = format!("{}/", state.context.issuer);
    if let Some(target) = params.get("post_logout_redirect_uri").filter(|uri| uri.starts_with(&own)) {
        if let Ok(mut url) = url::Url::parse(target) {
            if let Some(client_state) = params.get("state") {
                url.query_pairs_mut().append_pair("state", client_state);
            }
            return Redirect::to(url.as_str()).into_response();
        }
    }
    super::html(StatusCode::OK, pages::logged_out(kind.display_name()))
}

/// The value after `scheme ` in the Authorization header (the scheme compared case-insensitively).
fn authorization<'h>(headers: &'h HeaderMap, scheme: &str) -> Option<&'h str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (given, rest) = value.split_once(' ')?;
    given.eq_ignore_ascii_case(scheme).then(|| rest.trim())
}

/// RFC 6749 section 2.3.1: id and secret are form-encoded, then joined by a colon and base64-encoded.
fn basic_credentials(value: &str) -> Option<(String, String)> {
    let decoded = String::from_utf8(STANDARD.decode(value).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((form_decode(id), form_decode(secret)))
}

fn form_decode(text: &str) -> String {
    // Correctly encoded values hold no '=' or '&'; a client that did not encode is taken literally.
    if text.contains(['=', '&']) {
        return text.to_owned();
    }
    url::form_urlencoded::parse(text.as_bytes()).next().map(|(key, _)| key.into_owned()).unwrap_or_default()
}

fn redirect_back(kind: SimKind, redirect_uri: &str, pairs: &[(&str, &str)]) -> Response {
    let Ok(mut url) = url::Url::parse(redirect_uri) else {
        return error_page(kind, "Die redirect_uri ist keine gültige Adresse.");
    };
    url.query_pairs_mut().extend_pairs(pairs);
    Redirect::to(url.as_str()).into_response()
}

fn oauth_error(e: OAuthError) -> Response {
    let status = match e.error {
        "invalid_client" => StatusCode::UNAUTHORIZED,
        "server_error" => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    };
    let body = Json(json!({ "error": e.error, "error_description": e.description }));
    let mut response = (status, no_store(), body).into_response();
    if status == StatusCode::UNAUTHORIZED {
        let challenge = HeaderValue::from_static(r#"Basic realm="pforte-dev-simulator", charset="UTF-8""#);
        response.headers_mut().insert(header::WWW_AUTHENTICATE, challenge);
    }
    response
}

fn no_store() -> [(header::HeaderName, &'static str); 2] {
    [(header::CACHE_CONTROL, "no-store"), (header::PRAGMA, "no-cache")]
}

fn error_page(kind: SimKind, message: &str) -> Response {
    super::html(StatusCode::BAD_REQUEST, pages::error(kind.display_name(), message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_persona_has_a_stable_distinct_sub() {
        for kind in SimKind::ALL {
            let subs: BTreeSet<_> = personas::personas(kind).iter().map(|p| p.sub).collect();
            assert_eq!(subs.len(), personas::personas(kind).len());
            assert!(personas::personas(kind).len() >= 2);
        }
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let encoded = STANDARD.encode("pforte:a%2Bb+c");
        assert_eq!(basic_credentials(&encoded), Some(("pforte".into(), "a+b c".into())));
        assert_eq!(basic_credentials("%%%"), None);
    }

    /// Every persona claim must be one the shipped registry entry maps, and every mapped claim must
    /// come from at least one persona, or a login would silently lose data.
    #[test]
    fn persona_claims_match_the_claim_maps_of_the_shipped_registry_entries() {
        for (kind, file) in [
            (SimKind::BundId, "bundid-sim"),
            (SimKind::Unternehmenskonto, "unternehmenskonto-sim"),
            (SimKind::Staff, "dienstkonto-sim"),
        ] {
            let path = format!("{}/providers/identity/{file}.toml", env!("CARGO_MANIFEST_DIR"));
            let entry: toml::Table = std::fs::read_to_string(path).unwrap().parse().unwrap();
            let mapped: BTreeSet<String> = entry["claims"].as_table().unwrap().keys().cloned().collect();
            let delivered: BTreeSet<String> =
                personas::personas(kind).iter().flat_map(|p| p.claims().into_iter().map(|(k, _)| k)).collect();
            assert_eq!(delivered, mapped, "{file}");
            let acrs: BTreeSet<String> = entry["levels"].as_table().unwrap().keys().cloned().collect();
            let offered: BTreeSet<String> = personas::levels(kind).iter().map(|l| l.acr.to_owned()).collect();
            assert_eq!(offered, acrs, "{file}");
        }
    }
}

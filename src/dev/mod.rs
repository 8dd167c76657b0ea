//! Development simulators of the upstream account providers: a citizen account (BundID-style) under
//! `/dev/bundid` and a company account (Mein Unternehmenskonto-style) under `/dev/unternehmenskonto`.
//! Each is a real OpenID Provider (discovery, JWKS, authorization code flow with PKCE S256, RFC 9207
//! `iss` in responses, UserInfo, RP-initiated logout), so pforte's upstream client and any certified
//! relying party can log in against it. They are mounted only with `dev.simulators`, which the
//! configuration allows only on a loopback public URL. Everything lives in memory: keys are made at
//! start, codes and tokens vanish with the process.
//!
//! The handlers here adapt HTTP to the provider logic in `op`; test data is in `personas`, the
//! pages in `pages`. `demo` is the demo online service under `/demo`, a relying party of pforte.
//! `pay` is the development payment provider (XBezahldienste) under each simulator entry's base URL;
//! `pmpay` a development pmPayment peer under `/dev/pmpay`.
//! `demo_pay` is the demo service's pay step, a client of pforte's payment API.

mod demo;
mod demo_pages;
mod demo_pay;
mod demo_pay_api;
mod demo_pay_pages;
mod op;
mod pages;
pub mod pay;
mod pay_pages;
pub mod personas;
pub mod pmpay;
mod pmpay_pages;

use std::collections::BTreeSet;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::json;

pub use op::Simulator;
use op::{AuthorizeError, ClientCredentials, OAuthError, Params, Registration};

use crate::http::error::{ApiError, ErrorCode};
use crate::http::state::AppState;
use crate::registry::Registry;

/// The simulated account services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimKind {
    BundId,
    Unternehmenskonto,
}

impl SimKind {
    pub const ALL: [SimKind; 2] = [SimKind::BundId, SimKind::Unternehmenskonto];

    /// The path segment under `/dev/`.
    pub fn name(self) -> &'static str {
        match self {
            SimKind::BundId => "bundid",
            SimKind::Unternehmenskonto => "unternehmenskonto",
        }
    }

    pub fn display_name(self) -> &'static str {
        match self {
            SimKind::BundId => "BundID (Simulator)",
            SimKind::Unternehmenskonto => "Mein Unternehmenskonto (Simulator)",
        }
    }

    fn scopes(self) -> &'static [&'static str] {
        match self {
            SimKind::BundId => &["openid", "profile", "email"],
            SimKind::Unternehmenskonto => &["openid", "profile", "organisation"],
        }
    }
}

/// Both simulators, created once per application when `dev.simulators` is on.
pub struct Simulators {
    bundid: Simulator,
    unternehmenskonto: Simulator,
    /// The demo online service's logins on their way through pforte.
    demo: demo::PendingLogins,
    /// The demo online service's sessions, payments and received notifications.
    demo_payments: demo_pay::DemoPayments,
    /// The payment simulator instances, by base path (see `pay::base_paths`).
    pub pay: pay::PaySimulators,
    /// The pmPayment peer under `/dev/pmpay`.
    pub pmpay: pmpay::PmPaySimulator,
}

impl Simulators {
    /// `registry` and `issuer` (pforte's public URL) name the payment simulator instances to run.
    pub fn generate(registry: &Registry, issuer: &str) -> Result<Simulators, josekit::JoseError> {
        Ok(Simulators {
            bundid: Simulator::generate(SimKind::BundId)?,
            unternehmenskonto: Simulator::generate(SimKind::Unternehmenskonto)?,
            demo: demo::PendingLogins::default(),
            demo_payments: demo_pay::DemoPayments::default(),
            pay: pay::PaySimulators::new(pay::base_paths(registry, issuer)),
            pmpay: pmpay::PmPaySimulator::default(),
        })
    }

    pub fn get(&self, kind: SimKind) -> &Simulator {
        match kind {
            SimKind::BundId => &self.bundid,
            SimKind::Unternehmenskonto => &self.unternehmenskonto,
        }
    }
}

/// The simulators' routes; the payment simulator at the base path of each instance in `state.dev`.
pub fn router(state: &AppState) -> Router<AppState> {
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
    if let Some(simulators) = state.dev.as_deref() {
        router = router.merge(pay::router(&simulators.pay)).nest(pmpay::BASE_PATH, pmpay::router());
    }
    router.merge(demo::router()).merge(demo_pay::router())
}

async fn discovery(State(state): State<AppState>, Extension(kind): Extension<SimKind>) -> Response {
    if simulator(&state, kind).is_none() {
        return not_mounted();
    }
    let issuer = issuer(&state, kind);
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

async fn jwks(State(state): State<AppState>, Extension(kind): Extension<SimKind>) -> Response {
    match simulator(&state, kind) {
        Some(sim) => ([(header::CACHE_CONTROL, "no-cache")], Json(sim.jwks())).into_response(),
        None => not_mounted(),
    }
}

async fn authorize(
    State(state): State<AppState>,
    Extension(kind): Extension<SimKind>,
    RawQuery(query): RawQuery,
) -> Response {
    let Some(sim) = simulator(&state, kind) else { return not_mounted() };
    let issuer = issuer(&state, kind);
    let registration = registration(&state, &issuer);
    let params = Params::parse(query.unwrap_or_default().as_bytes());
    let request = match op::check_authorize(params, registration.as_ref()) {
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
    let request_id = sim.hold(request, now(&state));
    let page = pages::login(&pages::LoginPage {
        display_name: kind.display_name(),
        decide_action: &format!("{issuer}/authorize/decide"),
        request_id: &request_id,
        client_id: &client_id,
        personas: personas::personas(kind),
        levels,
        preselected_acr: preselected,
    });
    html(StatusCode::OK, page)
}

/// The tester's answer on the login page: a code for the chosen persona and level, or a refusal.
async fn decide(State(state): State<AppState>, Extension(kind): Extension<SimKind>, body: Bytes) -> Response {
    let Some(sim) = simulator(&state, kind) else { return not_mounted() };
    let issuer = issuer(&state, kind);
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
    let now = now(&state);
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
    State(state): State<AppState>,
    Extension(kind): Extension<SimKind>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(sim) = simulator(&state, kind) else { return not_mounted() };
    let issuer = issuer(&state, kind);
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
    let registration = registration(&state, &issuer);
    match sim.exchange(&params, credentials, registration.as_ref(), &issuer, now(&state)) {
        Ok(body) => (no_store(), Json(body)).into_response(),
        Err(e) => oauth_error(e),
    }
}

async fn userinfo(State(state): State<AppState>, Extension(kind): Extension<SimKind>, headers: HeaderMap) -> Response {
    let Some(sim) = simulator(&state, kind) else { return not_mounted() };
    match authorization(&headers, "Bearer").and_then(|token| sim.userinfo(token, now(&state))) {
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
    State(state): State<AppState>,
    Extension(kind): Extension<SimKind>,
    method: Method,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    if simulator(&state, kind).is_none() {
        return not_mounted();
    }
    let raw = if method == Method::POST { body.to_vec() } else { query.unwrap_or_default().into_bytes() };
    let params = Params::parse(&raw).unwrap_or_default();
    let own = format!("{}/", state.settings.issuer());
    if let Some(target) = params.get("post_logout_redirect_uri").filter(|uri| uri.starts_with(&own)) {
        if let Ok(mut url) = url::Url::parse(target) {
            if let Some(client_state) = params.get("state") {
                url.query_pairs_mut().append_pair("state", client_state);
            }
            return Redirect::to(url.as_str()).into_response();
        }
    }
    html(StatusCode::OK, pages::logged_out(kind.display_name()))
}

fn simulator(state: &AppState, kind: SimKind) -> Option<&Simulator> {
    state.dev.as_deref().map(|simulators| simulators.get(kind))
}

/// `{public_url}/dev/<name>`, as the registry entries name it.
fn issuer(state: &AppState, kind: SimKind) -> String {
    format!("{}/dev/{}", state.settings.issuer(), kind.name())
}

/// The registry entry whose issuer is this simulator, with pforte's callback for it.
fn registration<'a>(state: &'a AppState, issuer: &str) -> Option<Registration<'a>> {
    let provider = state.registry.identity_providers().find(|p| p.issuer.as_str().trim_end_matches('/') == issuer)?;
    let redirect_uri = format!("{}/callback/{}", state.settings.issuer(), provider.id);
    Some(Registration { provider, redirect_uri })
}

fn now(state: &AppState) -> i64 {
    state.clock.now().timestamp()
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

fn html(status: StatusCode, page: String) -> Response {
    (status, [(header::CACHE_CONTROL, "no-store")], Html(page)).into_response()
}

fn error_page(kind: SimKind, message: &str) -> Response {
    html(StatusCode::BAD_REQUEST, pages::error(kind.display_name(), message))
}

fn not_mounted() -> Response {
    ApiError::new(ErrorCode::NotFound, "No resource at this path.").into_response()
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
        for (kind, file) in [(SimKind::BundId, "bundid-sim"), (SimKind::Unternehmenskonto, "unternehmenskonto-sim")] {
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

//! Finance staff in the browser: sign-in with the authority's staff identity provider (OpenID Connect
//! through `identity::upstream`, with PKCE, state and nonce) or with a finance token pasted into a
//! form, sign-out, the list of a clerk's authorities, and (in `uploads`) the upload of settlement
//! reports and bank statements. Who may act for which tenant and the sessions themselves are
//! `finance::staff`'s; this module adapts them to cookies, forms and pages.
//!
//! Routes: `GET /finance/login` (the sign-in page), `POST /finance/login` (token form),
//! `POST /finance/login/staff` (to the identity provider), `GET /finance/login/callback/{provider}`
//! (its answer), `POST /finance/logout`, `GET /finance` (the clerk's authorities).
//! Every form carries a synchronizer token (`csrf`) checked here before anything else happens.

mod cookies;
mod pages;
mod uploads;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

use super::finance::authorise_token;
use crate::crypto::random_token;
use crate::finance::staff::{csrf_matches, csrf_token, SessionError, SignInError, StaffSession};
use crate::http::middleware::{content_security_policy, provider_form_targets};
use crate::http::state::AppState;
use crate::identity::upstream::{CallbackParams, PendingUpstream, UpstreamError};
use crate::registry::{IdentityProvider, Level, Registry};

pub(super) use uploads::imports_section;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/finance", get(home))
        .route("/finance/login", get(sign_in_page).post(token_sign_in))
        .route("/finance/login/staff", post(staff_sign_in))
        .route("/finance/login/callback/{provider}", get(callback))
        .route("/finance/logout", post(sign_out))
}

/// The upload route, which takes bodies up to the import limit (the others keep the server's).
pub(super) fn upload_router() -> Router<AppState> {
    uploads::router()
}

/// Where pforte takes a staff identity provider's answers: `{public_url}/finance/login/callback`,
/// then the provider's id.
pub fn staff_callback_base(public_url: &url::Url) -> String {
    format!("{}/finance/login/callback", public_url.as_str().trim_end_matches('/'))
}

/// The session of this request's cookie, checked and audited for `tenant` and `action`, or the page
/// to answer instead: the sign-in page when there is none, 403 when it is another authority's.
pub(super) async fn staff_session(
    state: &AppState,
    headers: &HeaderMap,
    tenant: &str,
    action: &str,
) -> Result<StaffSession, Response> {
    let secret = cookies::read(headers, cookies::SESSION_COOKIE);
    match state.staff.authorise(secret, tenant, action).await {
        Ok(session) => Ok(session),
        Err(SessionError::SignedOut) => Err(to_sign_in()),
        Err(SessionError::Forbidden) => Err(page(
            StatusCode::FORBIDDEN,
            pages::notice("Kein Zugang", "Diese Anmeldung gilt nicht für diese Behörde.", "/finance"),
        )),
        Err(SessionError::Storage(e)) => Err(unavailable(&e)),
    }
}

/// The signed-in bar (name, sign-out form) of a session.
pub(super) fn staff_bar(session: &StaffSession) -> String {
    pages::staff_bar(&session.display_name, &session.csrf)
}

/// `GET /finance`: the authorities this session may act for, or the sign-in page.
async fn home(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let session = match state.staff.session(cookies::read(&headers, cookies::SESSION_COOKIE)).await {
        Ok(session) => session,
        Err(SessionError::Storage(e)) => return unavailable(&e),
        Err(_) => return to_sign_in(),
    };
    let registry = state.registry.current();
    let tenants: Vec<(String, String, String)> = session
        .tenants
        .iter()
        .map(|id| {
            let name = registry.tenant(id).map(|t| t.display_name.clone()).unwrap_or_default();
            (id.clone(), name, reconciliation_path(&state, id))
        })
        .collect();
    page(StatusCode::OK, pages::tenants(&staff_bar(&session), &tenants))
}

/// The reconciliation page of `tenant` for the last 30 days.
fn reconciliation_path(state: &AppState, tenant: &str) -> String {
    let today = state.clock.now().with_timezone(&chrono_tz::Europe::Berlin).date_naive();
    let from = today - chrono::Days::new(30);
    let tenant: String = url::form_urlencoded::byte_serialize(tenant.as_bytes()).collect();
    format!("/finance/{tenant}/abgleich?from={from}&to={today}")
}

/// `GET /finance/login`: the staff providers' buttons and the token form, both carrying the form
/// token of this browser's sign-in cookie (set here when it has none).
async fn sign_in_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    sign_in_answer(&state, &headers, StatusCode::OK, None).await
}

async fn sign_in_answer(state: &AppState, headers: &HeaderMap, status: StatusCode, error: Option<&str>) -> Response {
    let existing = cookies::read(headers, cookies::SIGN_IN_COOKIE).map(str::to_owned);
    let secret = existing.clone().unwrap_or_else(random_token);
    let registry = state.registry.current();
    let providers = staff_providers(state, &registry);
    let choices: Vec<pages::ProviderChoice<'_>> = providers
        .iter()
        .map(|idp| pages::ProviderChoice { id: idp.id.as_str(), display_name: &idp.display_name })
        .collect();
    let mut response = page(status, pages::sign_in(&choices, &csrf_token(&secret), error));
    let response_headers = response.headers_mut();
    if existing.is_none() {
        if let Some(cookie) = cookies::sign_in(&secret, secure(state)) {
            response_headers.append(header::SET_COOKIE, cookie);
        }
    }
    // The staff form's answer is a redirect to the identity provider, which `form-action` governs too.
    let targets = provider_form_targets(state, providers.iter().copied()).await;
    response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, content_security_policy(&targets));
    response
}

fn staff_providers<'r>(state: &AppState, registry: &'r Registry) -> Vec<&'r IdentityProvider> {
    state.staff.staff_providers().iter().filter_map(|id| registry.identity_provider(id)).collect()
}

#[derive(Deserialize)]
struct TokenForm {
    #[serde(default)]
    csrf: String,
    tenant: String,
    token: String,
}

/// `POST /finance/login`: a finance token for one tenant (checked and audited like every use) opens a
/// session for that tenant; the token itself goes no further than this check.
async fn token_sign_in(State(state): State<AppState>, headers: HeaderMap, Form(form): Form<TokenForm>) -> Response {
    if !csrf_matches(cookies::read(&headers, cookies::SIGN_IN_COOKIE), Some(&form.csrf)) {
        return csrf_refused(&state, &headers).await;
    }
    let tenant = form.tenant.trim();
    let caller = match authorise_token(&state, Some(form.token.trim()), tenant, "page.login").await {
        Ok(caller) => caller,
        // The token could not be checked (the database is away): not a wrong token (SECURITY.md #30).
        Err(answer) if answer.status() == StatusCode::SERVICE_UNAVAILABLE => {
            return unavailable(&"the finance token could not be checked")
        }
        Err(_) => {
            let reason = "Zugangsschlüssel und Behörde passen nicht zusammen, oder der Schlüssel ist widerrufen.";
            return sign_in_answer(&state, &headers, StatusCode::UNAUTHORIZED, Some(reason)).await;
        }
    };
    match state.staff.sign_in_with_token(&caller).await {
        Ok(session) => signed_in(&state, &session.secret, &session.tenants),
        Err(e) => unavailable(&e),
    }
}

#[derive(Deserialize)]
struct StaffForm {
    #[serde(default)]
    csrf: String,
    provider: String,
}

/// `POST /finance/login/staff`: starts the authorization code flow at a staff identity provider and
/// keeps the flow, bound to this browser's sign-in cookie, until the answer.
async fn staff_sign_in(State(state): State<AppState>, headers: HeaderMap, Form(form): Form<StaffForm>) -> Response {
    let browser = cookies::read(&headers, cookies::SIGN_IN_COOKIE);
    if !csrf_matches(browser, Some(&form.csrf)) {
        return csrf_refused(&state, &headers).await;
    }
    let Some(browser) = browser else { return csrf_refused(&state, &headers).await };
    let registry = state.registry.current();
    let Some(idp) = staff_providers(&state, &registry).into_iter().find(|idp| idp.id.as_str() == form.provider) else {
        return sign_in_answer(&state, &headers, StatusCode::BAD_REQUEST, Some("Diesen Anmeldedienst gibt es nicht."))
            .await;
    };
    let request = match state.staff_upstreams.begin(idp, Level::Low).await {
        Ok(request) => request,
        Err(e) => return upstream_failed(&e),
    };
    let held = match serde_json::to_vec(&request.pending) {
        Ok(flow) => state.staff.hold_sign_in(browser, idp.id.as_str(), &request.pending.state, &flow).await,
        Err(e) => return unavailable(&e),
    };
    if let Err(e) = held {
        return unavailable(&e);
    }
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(location) = HeaderValue::from_str(request.authorization_url.as_str()) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// `GET /finance/login/callback/{provider}`: the provider's answer. The state must name a sign-in
/// this browser started at this provider (taken once); the code is redeemed, the ID token checked
/// (issuer, audience, nonce, signature) and the mapped claims decide the tenants.
async fn callback(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    Query(params): Query<CallbackParams>,
) -> Response {
    let refused = |reason: &'static str, message: &'static str| {
        let state = state.clone();
        let provider = provider.clone();
        async move {
            if let Err(e) = state.staff.sign_in_failed(&provider, reason).await {
                return unavailable(&e);
            }
            page(StatusCode::FORBIDDEN, pages::notice("Anmeldung abgelehnt", message, "/finance/login"))
        }
    };
    let browser = cookies::read(&headers, cookies::SIGN_IN_COOKIE);
    let Some(state_param) = params.state.as_deref().filter(|s| !s.is_empty()) else {
        return refused("no_state", "Die Antwort des Anmeldedienstes gehört zu keiner Anmeldung.").await;
    };
    let taken = match state.staff.take_sign_in(state_param, browser).await {
        Ok(taken) => taken,
        Err(SignInError::UnknownFlow) => {
            return refused(
                "unknown_state",
                "Diese Anmeldung ist unbekannt, abgelaufen oder wurde in einem anderen Browser begonnen.",
            )
            .await
        }
        Err(e) => return unavailable(&e),
    };
    let registry = state.registry.current();
    let idp = registry.identity_provider(&provider).filter(|idp| taken.provider_id == idp.id.as_str());
    let Some(idp) = idp else {
        return refused("other_provider", "Die Antwort kam von einem anderen Anmeldedienst.").await;
    };
    let pending: PendingUpstream = match serde_json::from_slice(&taken.flow) {
        Ok(pending) => pending,
        Err(e) => return unavailable(&e),
    };
    let identity = match state.staff_upstreams.complete(idp, &pending, &params).await {
        Ok(identity) => identity,
        Err(UpstreamError::Denied { .. }) => {
            return refused("denied", "Die Anmeldung wurde beim Anmeldedienst abgebrochen.").await
        }
        Err(UpstreamError::Unavailable(reason)) => {
            tracing::warn!(provider = %provider, %reason, "staff identity provider unavailable");
            return refused("unavailable", "Der Anmeldedienst ist gerade nicht erreichbar.").await;
        }
        Err(e) => {
            // The reason names the check that failed, never a token or claim.
            tracing::warn!(provider = %provider, reason = %e, "staff sign-in refused");
            return refused("invalid_response", "Die Antwort des Anmeldedienstes ist ungültig.").await;
        }
    };
    match state.staff.sign_in(idp.id.as_str(), &identity.subject, &identity.claims).await {
        Ok(session) => signed_in(&state, &session.secret, &session.tenants),
        Err(SignInError::NoFinanceAccess) => page(
            StatusCode::FORBIDDEN,
            pages::notice(
                "Anmeldung abgelehnt",
                "Ihr Dienstkonto hat keinen Zugang zum Abgleich einer Behörde.",
                "/finance/login",
            ),
        ),
        Err(e) => unavailable(&e),
    }
}

/// Sets the session cookie, forgets the sign-in cookie and leads to the clerk's page (the one
/// authority's reconciliation, or the list when there are several).
fn signed_in(state: &AppState, secret: &str, tenants: &[String]) -> Response {
    let location = match tenants {
        [only] => reconciliation_path(state, only),
        _ => "/finance".to_owned(),
    };
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    if let Ok(location) = HeaderValue::from_str(&location) {
        headers.insert(header::LOCATION, location);
    }
    let max_age = state.settings.finance.session_max_secs;
    if let Some(cookie) = cookies::session(secret, max_age, secure(state)) {
        headers.append(header::SET_COOKIE, cookie);
    }
    if let Some(cookie) = cookies::cleared(cookies::SIGN_IN_COOKIE, cookies::SIGN_IN_PATH, secure(state)) {
        headers.append(header::SET_COOKIE, cookie);
    }
    response
}

#[derive(Deserialize)]
struct SignOutForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /finance/logout`: ends the session (audited) and forgets the cookie.
async fn sign_out(State(state): State<AppState>, headers: HeaderMap, Form(form): Form<SignOutForm>) -> Response {
    let Some(secret) = cookies::read(&headers, cookies::SESSION_COOKIE) else { return to_sign_in() };
    if !csrf_matches(Some(secret), Some(&form.csrf)) {
        return page(
            StatusCode::FORBIDDEN,
            pages::notice("Nicht abgemeldet", "Das Formular ist ungültig; bitte laden Sie die Seite neu.", "/finance"),
        );
    }
    if let Err(e) = state.staff.sign_out(secret).await {
        return unavailable(&e);
    }
    let mut response = to_sign_in();
    if let Some(cookie) = cookies::cleared(cookies::SESSION_COOKIE, cookies::SESSION_PATH, secure(&state)) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// A sign-in form without this browser's form token: the page again, with a fresh token.
async fn csrf_refused(state: &AppState, headers: &HeaderMap) -> Response {
    let reason = "Das Formular ist abgelaufen oder stammt nicht von dieser Seite; bitte melden Sie sich erneut an.";
    sign_in_answer(state, headers, StatusCode::FORBIDDEN, Some(reason)).await
}

fn to_sign_in() -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    response.headers_mut().insert(header::LOCATION, HeaderValue::from_static("/finance/login"));
    response
}

fn upstream_failed(error: &UpstreamError) -> Response {
    tracing::warn!(reason = %error, "staff identity provider unavailable");
    page(
        StatusCode::BAD_GATEWAY,
        pages::notice("Anmeldung nicht möglich", "Der Anmeldedienst ist gerade nicht erreichbar.", "/finance/login"),
    )
}

/// 503 (SECURITY.md #30; `Retry-After` comes from the router's layer): could not check is not
/// refused. The log keeps the cause.
fn unavailable(error: &dyn std::fmt::Display) -> Response {
    tracing::error!(error = %error, "finance staff request failed");
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        pages::notice("Vorübergehend nicht verfügbar", "Bitte versuchen Sie es gleich noch einmal.", "/finance"),
    )
}

fn page(status: StatusCode, html: String) -> Response {
    let mut response = (status, Html(html)).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Cookies are Secure whenever browsers reach pforte over https.
fn secure(state: &AppState) -> bool {
    state.settings.server.public_url.scheme() == "https"
}

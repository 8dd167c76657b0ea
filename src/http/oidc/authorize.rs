//! The browser's endpoints: the authorization request (GET and POST), the provider choice, and the
//! callback from each upstream provider (one path per provider, for mix-up defence).

use std::collections::BTreeMap;

use axum::extract::{Path, RawForm, RawQuery, State};
use axum::http::{header, HeaderMap};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;

use super::pages::{self, Lang};
use super::{browser_cookie, browser_cookie_header, login_error, parse_parameters, see_other};
use crate::crypto::{fingerprint, random_token};
use crate::http::middleware::provider_form_targets;
use crate::http::state::AppState;
use crate::identity::login::{client_error, Next, ProviderChoice};
use crate::identity::request::{self, AuthorizeError, Origin};
use crate::identity::upstream::CallbackParams;

pub(super) const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/authorize", get(authorize_get).post(authorize_post))
        .route("/login/{login_id}", post(choose))
        // The redirect URIs below `upstream_callback_base`, one per provider.
        .route("/callback/{provider_id}", get(callback))
}

async fn authorize_get(State(state): State<AppState>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    authorize(&state, &headers, query.unwrap_or_default().as_bytes()).await
}

async fn authorize_post(State(state): State<AppState>, headers: HeaderMap, RawForm(body): RawForm) -> Response {
    authorize(&state, &headers, &body).await
}

async fn authorize(state: &AppState, headers: &HeaderMap, raw: &[u8]) -> Response {
    let lang = Lang::pick(None, headers);
    let params = match parse_parameters(raw) {
        Ok(params) => params,
        Err(description) => return pages::bad_request(lang, &description),
    };
    let (params, origin) = match pushed_parameters(state, &params, lang).await {
        Ok(Some(pushed)) => (pushed, Origin::Pushed),
        Ok(None) => (params, Origin::Browser),
        Err(response) => return response,
    };
    let registry = state.registry.current();
    let request = match request::validate(&params, &registry, origin) {
        Ok(request) => request,
        Err(AuthorizeError::Page { description }) => return pages::bad_request(lang, &description),
        Err(AuthorizeError::Redirect { redirect_uri, state: client_state, error, description }) => {
            let issuer = state.settings.issuer();
            let target = crate::identity::login::error_redirect(
                &redirect_uri,
                client_state.as_deref(),
                error,
                &description,
                &issuer,
            );
            return see_other(&target);
        }
    };
    let lang = Lang::pick(request.locale.as_deref(), headers);
    let (browser_id, new_cookie) = match browser_cookie(headers) {
        Some(id) => (id, false),
        None => (random_token(), true),
    };
    let client_name = registry.client(&request.client_id).map(|c| c.display_name.clone()).unwrap_or_default();
    let cancel = client_error(&request, "access_denied", "The person cancelled the login.", &state.settings.issuer());
    let service_origin = url::Url::parse(&request.redirect_uri).map(|url| url.origin()).ok();
    let mut response = match state.login.start(request, &browser_id).await {
        Ok((_, Next::Upstream(url))) => see_other(url.as_str()),
        Ok((login_id, Next::ChooseProvider(choices))) => {
            let targets = choice_form_targets(state, &choices, service_origin).await;
            pages::choose_provider(lang, &login_id, &client_name, &choices, &cancel, &targets)
        }
        Err(error) => login_error(lang, error),
    };
    if new_cookie {
        if let Some(cookie) = browser_cookie_header(&browser_id) {
            response.headers_mut().append(header::SET_COOKIE, cookie);
        }
    }
    response
}

/// Where the choice page's form may lead: the chosen provider's login (the answer to the form is a
/// redirect there) and the online service's redirect URI (a provider that still has the person's
/// session answers at once, and the browser goes on through pforte to the service). Browsers check
/// `form-action` on each of these redirects.
async fn choice_form_targets(
    state: &AppState,
    choices: &[ProviderChoice],
    service_origin: Option<url::Origin>,
) -> Vec<url::Origin> {
    let registry = state.registry.current();
    let providers = choices.iter().filter_map(|choice| registry.identity_provider(&choice.id));
    let mut targets = provider_form_targets(state, providers).await;
    let own = state.settings.server.public_url.origin();
    targets.extend(service_origin.filter(|origin| *origin != own));
    targets
}

/// With `request_uri`, the parameters come from a pushed request (RFC 9126 §4): single use, for
/// the client that pushed it, before it expires. The browser's other parameters are ignored.
async fn pushed_parameters(
    state: &AppState,
    params: &BTreeMap<String, String>,
    lang: Lang,
) -> Result<Option<BTreeMap<String, String>>, Response> {
    let Some(request_uri) = params.get("request_uri") else { return Ok(None) };
    let refused =
        || pages::bad_request(lang, "The request_uri is unknown, expired, already used or belongs to another client.");
    let client_id =
        params.get("client_id").ok_or_else(|| pages::bad_request(lang, "The request names no client_id."))?;
    if !request_uri.starts_with(REQUEST_URI_PREFIX) {
        return Err(refused());
    }
    let now = state.clock.now_millis();
    // Without the stored request neither the redirect URI nor the state can be trusted: a page,
    // not a redirect.
    let stored = state.db.take_par(&fingerprint(request_uri), client_id, now).await.map_err(|e| {
        tracing::warn!(error = %e, "could not read a pushed authorization request");
        pages::problem(lang, crate::identity::login::Problem::Unavailable, None)
    })?;
    let stored = stored.ok_or_else(refused)?;
    serde_json::from_str(&stored).map(Some).map_err(|_| refused())
}

async fn choose(
    State(state): State<AppState>,
    Path(login_id): Path<String>,
    headers: HeaderMap,
    RawForm(body): RawForm,
) -> Response {
    let lang = Lang::pick(None, &headers);
    let form = parse_parameters(&body).unwrap_or_default();
    let (Some(browser_id), Some(provider)) = (browser_cookie(&headers), form.get("provider")) else {
        return pages::problem(lang, crate::identity::login::Problem::WrongBrowser, None);
    };
    match state.login.choose(&login_id, &browser_id, provider).await {
        Ok(url) => see_other(url.as_str()),
        Err(error) => login_error(lang, error),
    }
}

async fn callback(
    State(state): State<AppState>,
    Path(provider_id): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let lang = Lang::pick(None, &headers);
    let params = parse_parameters(query.unwrap_or_default().as_bytes()).unwrap_or_default();
    let callback = CallbackParams {
        code: params.get("code").cloned(),
        state: params.get("state").cloned(),
        iss: params.get("iss").cloned(),
        error: params.get("error").cloned(),
        error_description: params.get("error_description").cloned(),
    };
    match state.login.callback(&provider_id, &callback, browser_cookie(&headers).as_deref()).await {
        Ok(target) => see_other(&target),
        Err(error) => login_error(lang, error),
    }
}

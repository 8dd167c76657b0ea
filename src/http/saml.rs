//! The SAML service provider's endpoints, one set per SAML identity provider: pforte's metadata
//! (`GET /saml/{provider}/metadata`, for the IdP's registration), and the AssertionConsumerService
//! (`POST /saml/{provider}/acs`, HTTP-POST binding), whose Response is held until the browser comes back
//! on pforte's own origin (`GET /saml/{provider}/acs?RelayState=…`) with its SameSite cookie.

use axum::extract::{Path, RawForm, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::oidc::pages::Lang;
use super::oidc::{browser_cookie, login_error, parse_parameters, see_other};
use crate::http::state::AppState;
use crate::identity::login::{LoginError, Problem};

/// `{public_url}/saml`: the base of every SAML provider's paths.
pub fn saml_base(public_url: &url::Url) -> String {
    format!("{}/saml", public_url.as_str().trim_end_matches('/'))
}

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/saml/{provider_id}/metadata", get(metadata))
        .route("/saml/{provider_id}/acs", get(returned).post(posted))
}

async fn metadata(State(state): State<AppState>, Path(provider_id): Path<String>) -> Response {
    let registry = state.registry.current();
    let Some(idp) = registry.identity_provider(&provider_id).filter(|idp| idp.saml().is_some()) else {
        return (StatusCode::NOT_FOUND, "no SAML identity provider of this id").into_response();
    };
    match state.upstreams.saml().sp_metadata(idp) {
        Ok(xml) => {
            let mut response = xml.into_response();
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/samlmetadata+xml"));
            response
        }
        Err(e) => crate::http::error::ApiError::internal(&e).into_response(),
    }
}

/// The IdP's HTTP-POST: hold the Response for its login, then send the browser to pforte's own
/// origin, where its cookie proves it is the browser that started the login (303: the POST is done).
async fn posted(
    State(state): State<AppState>,
    Path(provider_id): Path<String>,
    headers: HeaderMap,
    RawForm(body): RawForm,
) -> Response {
    let lang = Lang::pick(None, &headers);
    let params = match parse_parameters(&body) {
        Ok(params) => params,
        Err(_) => return login_error(lang, invalid()),
    };
    let (Some(response), Some(relay_state)) = (params.get("SAMLResponse"), params.get("RelayState")) else {
        return login_error(lang, invalid());
    };
    match state.login.hold_saml_response(&provider_id, relay_state, response).await {
        Ok(()) => {
            let mut target =
                url::Url::parse(&format!("{}/{provider_id}/acs", saml_base(&state.settings.server.public_url)));
            match target.as_mut() {
                Ok(url) => {
                    url.query_pairs_mut().append_pair("RelayState", relay_state);
                    see_other(url.as_str())
                }
                Err(e) => crate::http::error::ApiError::internal(e).into_response(),
            }
        }
        Err(error) => login_error(lang, error),
    }
}

/// The browser is back: check the held Response and, on success, answer the online service.
async fn returned(
    State(state): State<AppState>,
    Path(provider_id): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let lang = Lang::pick(None, &headers);
    let params = parse_parameters(query.unwrap_or_default().as_bytes()).unwrap_or_default();
    let Some(relay_state) = params.get("RelayState") else {
        return login_error(lang, LoginError::Page { problem: Problem::UnknownLogin, back: None });
    };
    match state.login.saml_callback(&provider_id, relay_state, browser_cookie(&headers).as_deref()).await {
        Ok(target) => see_other(&target),
        Err(error) => login_error(lang, error),
    }
}

fn invalid() -> LoginError {
    LoginError::Page { problem: Problem::UpstreamInvalid, back: None }
}

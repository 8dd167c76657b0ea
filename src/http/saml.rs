//! The SAML service provider's endpoints, one set per SAML identity provider: pforte's metadata
//! (`GET /saml/{provider}/metadata`, for the IdP's registration), and the AssertionConsumerService
//! (`POST /saml/{provider}/acs`, HTTP-POST binding), whose Response is held until the browser comes back
//! on pforte's own origin (`GET /saml/{provider}/acs?RelayState=…`) with its SameSite cookie; and the
//! SingleLogoutService (`GET /saml/{provider}/slo`, HTTP-Redirect binding), where the IdP's
//! LogoutResponse to pforte's LogoutRequest comes back on the way to the online service.

use axum::extract::{Path, RawForm, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::oidc::logout::{finish, ReturnTo};
use super::oidc::pages::{self, Lang};
use super::oidc::{browser_cookie, login_error, parse_parameters, see_other};
use crate::http::state::AppState;
use crate::identity::login::{LoginError, Problem};
use crate::identity::saml_logout::LogoutRefusal;

/// `{public_url}/saml`: the base of every SAML provider's paths.
pub fn saml_base(public_url: &url::Url) -> String {
    format!("{}/saml", public_url.as_str().trim_end_matches('/'))
}

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/saml/{provider_id}/metadata", get(metadata))
        .route("/saml/{provider_id}/acs", get(returned).post(posted))
        .route("/saml/{provider_id}/slo", get(single_logout))
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

/// The IdP's LogoutResponse (HTTP-Redirect binding): checked, matched with pforte's LogoutRequest,
/// then on to the online service as after an OpenID Connect provider's logout. A LogoutRequest the
/// IdP started is checked and answered with pforte's signed LogoutResponse. A non-success status
/// still ends the logout at the service; the page says the account provider may still hold a session.
async fn single_logout(
    State(state): State<AppState>,
    Path(provider_id): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let lang = Lang::pick(None, &headers);
    let query = query.unwrap_or_default();
    if query.split('&').any(|pair| pair.starts_with("SAMLRequest=")) {
        // The IdP started the logout: pforte holds no session of the person's; it answers, signed.
        return match state.login.saml_logout().answer(&provider_id, &query).await {
            Ok(url) => see_other(url.as_str()),
            Err(refusal) => refused(lang, &provider_id, &refusal),
        };
    }
    match state.login.saml_logout().finish(&provider_id, &query).await {
        Ok(done) => {
            let back = serde_json::from_slice::<ReturnTo>(&done.return_to).ok();
            let lang = back.as_ref().map_or(lang, ReturnTo::lang);
            let target = back.as_ref().and_then(ReturnTo::target);
            if done.success {
                return finish(lang, target);
            }
            let title = lang.text("Abgemeldet bei pforte", "Logged out at pforte");
            let text = lang.text(
                "Sie sind beim Onlinedienst und bei pforte abgemeldet. Das Nutzerkonto hat die Abmeldung nicht bestätigt und kann noch eine Sitzung halten: Schließen Sie den Browser, um sicherzugehen.",
                "You are logged out of the online service and pforte. The account provider did not confirm the logout and may still hold a session: close the browser to be sure.",
            );
            pages::error(lang, StatusCode::OK, title, text, target)
        }
        Err(refusal) => refused(lang, &provider_id, &refusal),
    }
}

/// The page for a logout message pforte does not take; it sends the browser nowhere.
fn refused(lang: Lang, provider_id: &str, refusal: &LogoutRefusal) -> Response {
    let (status, text) = match refusal {
        LogoutRefusal::UnknownProvider => {
            (StatusCode::NOT_FOUND, lang.text("Kein SAML-Nutzerkonto dieser Kennung.", "No SAML account provider of this id."))
        }
        LogoutRefusal::Invalid(_) => (
            StatusCode::BAD_REQUEST,
            lang.text(
                "Die Nachricht des Nutzerkontos zur Abmeldung ist ungültig und wurde abgelehnt.",
                "The account provider's logout message is invalid and was refused.",
            ),
        ),
        LogoutRefusal::UnknownRequest => (
            StatusCode::BAD_REQUEST,
            lang.text(
                "Zu dieser Antwort gibt es keine offene Abmeldung: Sie ist abgelaufen, schon beantwortet oder nicht von pforte angefragt.",
                "No logout is waiting for this answer: it has expired, was answered before, or pforte did not ask for it.",
            ),
        ),
        LogoutRefusal::Unavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            lang.text("Die Abmeldung kann gerade nicht geprüft werden.", "The logout cannot be checked right now."),
        ),
    };
    if let LogoutRefusal::Invalid(reason) = refusal {
        tracing::info!(idp = provider_id, reason = reason.as_str(), "refused a SAML logout message");
    }
    pages::error(lang, status, lang.text("Abmeldung nicht bestätigt", "Logout not confirmed"), text, None)
}

//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0). pforte keeps no login session of its
//! own (no single sign-on across services), but the account provider does: when the ID token hint
//! names a provider that offers logout, the browser goes there first, so the person is logged out
//! upstream too, and comes back through `/logout/done` to the service's registered address.
//!
//! Only a request that carries an unexpired ID token pforte issued to the service asking goes to the
//! provider at once. Any other (an old token, or one of another service: anyone can replay those)
//! first shows a page that asks, whose form is bound to the browser, so another site cannot log a
//! person out at their account provider (issue 14 finding 8).

use axum::extract::{RawForm, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::pages::{self, Lang};
use super::{browser_cookie, browser_cookie_header, parse_parameters, see_other};
use crate::crypto::{fingerprint, random_token};
use crate::http::state::AppState;

/// The record id logout states are sealed for.
const LOGOUT_RECORD: &str = "pforte logout state";
/// The record id logout confirmations are sealed for.
const CONFIRMATION_RECORD: &str = "pforte logout confirmation";
/// How long the person has to answer the confirmation page.
const CONFIRMATION_LIFETIME_SECS: i64 = 600;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/logout", get(logout_get).post(logout_post))
        .route("/logout/confirm", post(confirm))
        .route("/logout/done", get(logout_done))
}

/// What pforte needs when the provider sends the browser back: where to, in which language. Sealed
/// under the master key and carried in the upstream `state`, so no server-side record is needed.
#[derive(Serialize, Deserialize)]
pub(crate) struct ReturnTo {
    target: Option<String>,
    lang: String,
}

impl ReturnTo {
    pub(crate) fn lang(&self) -> Lang {
        if self.lang == "en" {
            Lang::En
        } else {
            Lang::De
        }
    }

    pub(crate) fn target(&self) -> Option<&str> {
        self.target.as_deref()
    }
}

/// The client and provider an ID token hint names, and when it expires (seconds).
struct Hint {
    client_id: String,
    idp: Option<String>,
    /// The login's session id, by which a SAML login's Single Logout is found.
    sid: Option<String>,
    expires_at: Option<i64>,
}

/// The answer to the confirmation page: where to send the browser, for which browser (the
/// fingerprint of its `__Host-pforte-browser` cookie), until when. Sealed under the master key and
/// carried in the form, so a form of another browser or a made-up one does not work.
#[derive(Serialize, Deserialize)]
struct Confirmation {
    upstream: String,
    browser: String,
    expires_at: i64,
}

async fn logout_get(State(state): State<AppState>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    logout(&state, &headers, query.unwrap_or_default().as_bytes()).await
}

async fn logout_post(State(state): State<AppState>, headers: HeaderMap, RawForm(body): RawForm) -> Response {
    logout(&state, &headers, &body).await
}

async fn logout(state: &AppState, headers: &HeaderMap, raw: &[u8]) -> Response {
    let params = match parse_parameters(raw) {
        Ok(params) => params,
        Err(description) => return pages::bad_request(Lang::pick(None, headers), &description),
    };
    let lang = Lang::pick(params.get("ui_locales").map(String::as_str), headers);
    // The hint names the client and the provider; a forged one is refused, and only an unexpired
    // one of the service named goes to the provider without asking.
    let hint = match params.get("id_token_hint") {
        Some(token) => match read_hint(state, token).await {
            Some(hint) => Some(hint),
            None => return pages::bad_request(lang, "The id_token_hint was not issued by pforte."),
        },
        None => None,
    };
    let now = state.clock.now().timestamp();
    let given = params.get("client_id");
    let vouched = hint.as_ref().is_some_and(|hint| {
        hint.expires_at.is_some_and(|exp| exp > now) && given.is_none_or(|given| *given == hint.client_id)
    });
    let client_id = given.cloned().or_else(|| hint.as_ref().map(|h| h.client_id.clone()));
    let target = match params.get("post_logout_redirect_uri") {
        None => None,
        Some(target) => {
            let registered = client_id
                .as_deref()
                .and_then(|id| state.registry.current().client(id).map(|c| c.post_logout_redirect_uris.clone()))
                .is_some_and(|uris| uris.iter().any(|uri| uri.matches(target)));
            let Ok(mut url) =
                url::Url::parse(target).map_err(|_| ()).and_then(|u| if registered { Ok(u) } else { Err(()) })
            else {
                return pages::bad_request(
                    lang,
                    "The return address after logout is not registered for this online service.",
                );
            };
            if let Some(client_state) = params.get("state") {
                url.query_pairs_mut().append_pair("state", client_state);
            }
            Some(url.to_string())
        }
    };
    let Some((upstream, provider)) = upstream_logout(state, hint.as_ref(), &target, lang).await else {
        return finish(lang, target.as_deref());
    };
    if vouched {
        return see_other(&upstream);
    }
    ask(state, headers, lang, upstream, &provider, target.as_deref())
}

/// The confirmation page, bound to this browser (its cookie is set here when it has none yet).
fn ask(
    state: &AppState,
    headers: &HeaderMap,
    lang: Lang,
    upstream: String,
    provider: &str,
    target: Option<&str>,
) -> Response {
    let (browser_id, new_cookie) = match browser_cookie(headers) {
        Some(id) => (id, false),
        None => (random_token(), true),
    };
    // The form's answer redirects to the provider, which sends the browser on to the service.
    let form_targets: Vec<url::Origin> = [Some(upstream.as_str()), target]
        .into_iter()
        .flatten()
        .filter_map(|u| url::Url::parse(u).ok())
        .map(|u| u.origin())
        .collect();
    let confirmation = Confirmation {
        upstream,
        browser: fingerprint(&browser_id),
        expires_at: state.clock.now().timestamp() + CONFIRMATION_LIFETIME_SECS,
    };
    let sealed = serde_json::to_vec(&confirmation)
        .map_err(|e| e.to_string())
        .and_then(|plain| state.keys.master().seal(CONFIRMATION_RECORD, &plain).map_err(|e| e.to_string()));
    let sealed = match sealed {
        Ok(sealed) => sealed,
        Err(e) => {
            tracing::error!(error = %e, "could not seal a logout confirmation");
            return pages::problem(lang, crate::identity::login::Problem::Internal, None);
        }
    };
    let mut response = pages::confirm_logout(lang, provider, &sealed, target, &form_targets);
    if new_cookie {
        if let Some(cookie) = browser_cookie_header(&browser_id) {
            response.headers_mut().append(axum::http::header::SET_COOKIE, cookie);
        }
    }
    response
}

/// The person confirmed on the page: on to the provider's logout, if the form is this browser's own
/// and recent.
async fn confirm(State(state): State<AppState>, headers: HeaderMap, RawForm(body): RawForm) -> Response {
    let form = parse_parameters(&body).unwrap_or_default();
    let browser = browser_cookie(&headers);
    let confirmation = form
        .get("confirmation")
        .and_then(|sealed| state.keys.master().open(CONFIRMATION_RECORD, sealed).ok())
        .and_then(|plain| serde_json::from_slice::<Confirmation>(&plain).ok())
        .filter(|c| browser.as_deref().map(fingerprint).as_deref() == Some(c.browser.as_str()))
        .filter(|c| c.expires_at > state.clock.now().timestamp());
    match confirmation {
        Some(confirmation) => see_other(&confirmation.upstream),
        None => {
            let lang = Lang::pick(None, &headers);
            let (title, text) = match lang {
                Lang::De => (
                    "Abmeldung nicht bestätigt",
                    "Die Bestätigung fehlt, ist abgelaufen oder stammt aus einem anderen Browser. Bitte melden Sie sich beim Onlinedienst erneut ab.",
                ),
                Lang::En => (
                    "Logout not confirmed",
                    "The confirmation is missing, has expired or comes from another browser. Please log out at the online service again.",
                ),
            };
            pages::error(lang, StatusCode::BAD_REQUEST, title, text, None)
        }
    }
}

fn lang_code(lang: Lang) -> &'static str {
    if lang == Lang::En {
        "en"
    } else {
        "de"
    }
}

/// The provider's logout URL for the login the hint stands for, if the provider offers one, and the
/// provider's name.
async fn upstream_logout(
    state: &AppState,
    hint: Option<&Hint>,
    target: &Option<String>,
    lang: Lang,
) -> Option<(String, String)> {
    let registry = state.registry.current();
    let hint = hint?;
    let idp = registry.identity_provider(hint.idp.as_deref()?)?;
    let back = ReturnTo { target: target.clone(), lang: lang_code(lang).to_owned() };
    if idp.saml().is_some() {
        // SAML Single Logout: the LogoutResponse comes back to `/saml/<id>/slo`, which finishes.
        let sid = hint.sid.as_deref()?;
        return match state.login.saml_logout().start(idp, sid, &serde_json::to_vec(&back).ok()?).await {
            Ok(url) => url.map(|url| (String::from(url), idp.display_name.clone())),
            Err(e) => {
                tracing::warn!(idp = idp.id.as_str(), error = %e, "could not start the provider's Single Logout");
                None
            }
        };
    }
    let sealed = state.keys.master().seal(LOGOUT_RECORD, &serde_json::to_vec(&back).ok()?).ok()?;
    let done = format!("{}/logout/done", state.settings.issuer());
    match state.upstreams.end_session_url(idp, &done, &sealed).await {
        Ok(url) => url.map(|url| (String::from(url), idp.display_name.clone())),
        Err(e) => {
            // The person still gets logged out at pforte's side; the provider's session may remain.
            tracing::warn!(idp = idp.id.as_str(), error = %e, "could not reach the provider's logout");
            None
        }
    }
}

/// The provider sends the browser back here after its own logout.
async fn logout_done(State(state): State<AppState>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let params = parse_parameters(query.unwrap_or_default().as_bytes()).unwrap_or_default();
    let back = params
        .get("state")
        .and_then(|sealed| state.keys.master().open(LOGOUT_RECORD, sealed).ok())
        .and_then(|plain| serde_json::from_slice::<ReturnTo>(&plain).ok());
    match back {
        Some(back) => finish(if back.lang == "en" { Lang::En } else { Lang::De }, back.target.as_deref()),
        None => finish(Lang::pick(None, &headers), None),
    }
}

pub(crate) fn finish(lang: Lang, target: Option<&str>) -> Response {
    if let Some(target) = target {
        return see_other(target);
    }
    let (title, text) = match lang {
        Lang::De => ("Abgemeldet", "Sie sind abgemeldet. Sie können dieses Fenster schließen."),
        Lang::En => ("Logged out", "You are logged out. You may close this window."),
    };
    pages::error(lang, StatusCode::OK, title, text, None)
}

/// The `aud`, `idp` and `exp` of an ID token pforte signed, whatever its expiry.
async fn read_hint(state: &AppState, id_token: &str) -> Option<Hint> {
    let header = josekit::jwt::decode_header(id_token).ok()?;
    let kid = header.claim("kid").and_then(Value::as_str)?;
    let verifier = state.keys.verifier(kid).await.ok()??;
    let (payload, _) = josekit::jwt::decode_with_verifier(id_token, verifier.verifier.as_ref()).ok()?;
    if payload.claim("iss").and_then(Value::as_str) != Some(state.settings.issuer().as_str()) {
        return None;
    }
    let client_id = match payload.claim("aud")? {
        Value::String(aud) => aud.clone(),
        Value::Array(auds) => auds.first().and_then(Value::as_str)?.to_owned(),
        _ => return None,
    };
    Some(Hint {
        client_id,
        idp: payload.claim("idp").and_then(Value::as_str).map(str::to_owned),
        sid: payload.claim("sid").and_then(Value::as_str).map(str::to_owned),
        expires_at: payload.claim("exp").and_then(Value::as_i64),
    })
}

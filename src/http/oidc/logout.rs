//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0). pforte keeps no login session of its
//! own (no single sign-on across services), but the account provider does: when the ID token hint
//! names a provider that offers logout, the browser goes there first, so the person is logged out
//! upstream too, and comes back through `/logout/done` to the service's registered address.

use axum::extract::{RawForm, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::pages::{self, Lang};
use super::{parse_parameters, see_other};
use crate::http::state::AppState;

/// The record id logout states are sealed for.
const LOGOUT_RECORD: &str = "pforte logout state";

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/logout", get(logout_get).post(logout_post)).route("/logout/done", get(logout_done))
}

/// What pforte needs when the provider sends the browser back: where to, in which language. Sealed
/// under the master key and carried in the upstream `state`, so no server-side record is needed.
#[derive(Serialize, Deserialize)]
struct ReturnTo {
    target: Option<String>,
    lang: String,
}

/// The client and provider an ID token hint names.
struct Hint {
    client_id: String,
    idp: Option<String>,
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
    // The hint names the client and the provider; an expired hint is fine, a forged one is not.
    let hint = match params.get("id_token_hint") {
        Some(token) => match read_hint(state, token).await {
            Some(hint) => Some(hint),
            None => return pages::bad_request(lang, "The id_token_hint was not issued by pforte."),
        },
        None => None,
    };
    let client_id = match (params.get("client_id"), hint.as_ref().map(|h| &h.client_id)) {
        (Some(given), Some(hinted)) if given != hinted => {
            return pages::bad_request(lang, "client_id and id_token_hint name different online services.")
        }
        (Some(given), _) => Some(given.clone()),
        (None, hinted) => hinted.cloned(),
    };
    let target = match params.get("post_logout_redirect_uri") {
        None => None,
        Some(target) => {
            let registered = client_id
                .as_deref()
                .and_then(|id| state.registry.client(id))
                .is_some_and(|client| client.post_logout_redirect_uris.iter().any(|uri| uri.matches(target)));
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
    if let Some(upstream) = upstream_logout(state, hint.as_ref(), &target, lang).await {
        return see_other(&upstream);
    }
    finish(lang, target.as_deref())
}

/// The provider's logout URL for the login the hint stands for, if the provider offers one.
async fn upstream_logout(state: &AppState, hint: Option<&Hint>, target: &Option<String>, lang: Lang) -> Option<String> {
    let idp = state.registry.identity_provider(hint?.idp.as_deref()?)?;
    let back = ReturnTo { target: target.clone(), lang: if lang == Lang::En { "en" } else { "de" }.to_owned() };
    let sealed = state.keys.master().seal(LOGOUT_RECORD, &serde_json::to_vec(&back).ok()?).ok()?;
    let done = format!("{}/logout/done", state.settings.issuer());
    match state.upstreams.end_session_url(idp, &done, &sealed).await {
        Ok(url) => url.map(String::from),
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

fn finish(lang: Lang, target: Option<&str>) -> Response {
    if let Some(target) = target {
        return see_other(target);
    }
    let (title, text) = match lang {
        Lang::De => ("Abgemeldet", "Sie sind abgemeldet. Sie können dieses Fenster schließen."),
        Lang::En => ("Logged out", "You are logged out. You may close this window."),
    };
    pages::error(lang, StatusCode::OK, title, text, None)
}

/// The `aud` and `idp` of an ID token pforte signed, whatever its expiry.
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
    Some(Hint { client_id, idp: payload.claim("idp").and_then(Value::as_str).map(str::to_owned) })
}

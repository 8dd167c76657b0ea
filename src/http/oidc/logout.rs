//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0). pforte keeps no login session of its
//! own (no single sign-on across services), so logging out means confirming it and, when the service
//! asks and the address is registered, sending the browser back to it.

use axum::extract::{RawForm, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::Value;

use super::pages::{self, Lang};
use super::{parse_parameters, see_other};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/logout", get(logout_get).post(logout_post))
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
    // The hint names the client; an expired hint is fine, a forged one is not.
    let hinted_client = match params.get("id_token_hint") {
        Some(hint) => match audience_of(state, hint).await {
            Some(client) => Some(client),
            None => return pages::bad_request(lang, "The id_token_hint was not issued by pforte."),
        },
        None => None,
    };
    let client_id = match (params.get("client_id"), hinted_client) {
        (Some(given), Some(hinted)) if *given != hinted => {
            return pages::bad_request(lang, "client_id and id_token_hint name different online services.")
        }
        (Some(given), _) => Some(given.clone()),
        (None, hinted) => hinted,
    };
    if let Some(target) = params.get("post_logout_redirect_uri") {
        let registered = client_id
            .as_deref()
            .and_then(|id| state.registry.client(id))
            .is_some_and(|client| client.post_logout_redirect_uris.iter().any(|uri| uri.matches(target)));
        if !registered {
            return pages::bad_request(
                lang,
                "The return address after logout is not registered for this online service.",
            );
        }
        let mut url = match url::Url::parse(target) {
            Ok(url) => url,
            Err(_) => return pages::bad_request(lang, "The return address after logout is not a URL."),
        };
        if let Some(client_state) = params.get("state") {
            url.query_pairs_mut().append_pair("state", client_state);
        }
        return see_other(url.as_str());
    }
    let (title, text) = match lang {
        Lang::De => ("Abgemeldet", "Sie sind abgemeldet. Sie können dieses Fenster schließen."),
        Lang::En => ("Logged out", "You are logged out. You may close this window."),
    };
    let mut page = pages::error(lang, StatusCode::OK, title, text, None);
    *page.status_mut() = StatusCode::OK;
    page
}

/// The `aud` of an ID token pforte signed, whatever its expiry.
async fn audience_of(state: &AppState, id_token: &str) -> Option<String> {
    let header = josekit::jwt::decode_header(id_token).ok()?;
    let kid = header.claim("kid").and_then(Value::as_str)?;
    let verifier = state.keys.verifier(kid).await.ok()??;
    let (payload, _) = josekit::jwt::decode_with_verifier(id_token, verifier.verifier.as_ref()).ok()?;
    if payload.claim("iss").and_then(Value::as_str) != Some(state.settings.issuer().as_str()) {
        return None;
    }
    match payload.claim("aud")? {
        Value::String(aud) => Some(aud.clone()),
        Value::Array(auds) => auds.first().and_then(Value::as_str).map(str::to_owned),
        _ => None,
    }
}

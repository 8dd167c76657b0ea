//! UserInfo (OpenID Connect Core §5.3): the identity behind an access token, decrypted from the token
//! itself, since pforte stores no profiles.

use axum::extract::{RawForm, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

use super::{no_store_json, parse_parameters};
use crate::http::state::AppState;
use crate::identity::levels::eidas_uri;
use crate::identity::oauth::OAuthError;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/userinfo", get(userinfo_get).post(userinfo_post))
}

async fn userinfo_get(State(state): State<AppState>, headers: HeaderMap) -> Response {
    userinfo(&state, bearer(&headers)).await
}

/// POST may carry the token in the body instead (RFC 6750 §2.2).
async fn userinfo_post(State(state): State<AppState>, headers: HeaderMap, RawForm(body): RawForm) -> Response {
    let from_body = parse_parameters(&body).ok().and_then(|form| form.get("access_token").cloned());
    userinfo(&state, bearer(&headers).or(from_body)).await
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    (value.len() > 7 && value[..7].eq_ignore_ascii_case("bearer ")).then(|| value[7..].trim().to_owned())
}

async fn userinfo(state: &AppState, token: Option<String>) -> Response {
    let answer = async {
        let token = token.ok_or_else(|| OAuthError::invalid_token("No access token was sent."))?;
        // Refused only when checked and invalid; 503 when it could not be checked.
        let access = state.tokens.verify_access_token(&token).await.map_err(OAuthError::from)?;
        let identity = access
            .identity
            .ok_or_else(|| OAuthError::insufficient_scope("This access token was not issued for a login."))?;
        let mut body = identity.claims.clone();
        let always = json!({
            "sub": identity.sub,
            "acr": eidas_uri(identity.level),
            "idp": identity.idp,
            "account_type": identity.account_type,
        });
        if let Value::Object(map) = always {
            body.extend(map);
        }
        Ok::<_, OAuthError>(Value::Object(body))
    }
    .await;
    match answer {
        Ok(body) => no_store_json(body),
        Err(error) => error.into_response(),
    }
}

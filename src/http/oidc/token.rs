//! The back-channel endpoints online services call with client authentication: token, pushed
//! authorization requests (RFC 9126) and revocation (RFC 7009).

use std::collections::BTreeMap;

use axum::extract::{RawForm, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::json;

use super::authorize::REQUEST_URI_PREFIX;
use super::{client_credentials, no_store_json, parse_parameters};
use crate::crypto::{fingerprint, random_token};
use crate::http::state::AppState;
use crate::identity::grants::CodeExchange;
use crate::identity::oauth::{internal, OAuthError};
use crate::identity::request::{self, AuthorizeError, Origin};
use crate::identity::tokens::TokenError;
use crate::registry::{Client, Registry};

/// Pushed requests live 90 seconds (RFC 9126 recommends a short lifetime; SECURITY.md #7: under 600 s).
const PAR_LIFETIME_SECS: i64 = 90;
/// Parameters that authenticate the client and are not part of the authorization request.
const AUTH_PARAMETERS: &[&str] = &["client_secret", "client_assertion", "client_assertion_type"];

pub(super) fn router() -> Router<AppState> {
    // These are the endpoints `assertion_audiences` names.
    Router::new().route("/token", post(token)).route("/par", post(par)).route("/revoke", post(revoke))
}

/// Parses the form and authenticates the client: the common first half of every endpoint here.
/// `registry` is the request's snapshot of the registry (see `registry::SharedRegistry`).
async fn authenticated<'r>(
    state: &AppState,
    registry: &'r Registry,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(&'r Client, BTreeMap<String, String>), OAuthError> {
    let form = parse_parameters(body).map_err(OAuthError::invalid_request)?;
    let credentials = client_credentials(headers, &form)?;
    let client = state.client_auth.authenticate(registry, &credentials).await?;
    // Counted only now, after the credentials were accepted (SECURITY.md #32).
    if let Some(seconds) = state.client_budgets.spend(client.id.as_str()) {
        tracing::warn!(client = %client.id, "client rate limit reached; request refused");
        return Err(OAuthError::slow_down(seconds));
    }
    Ok((client, form))
}

async fn token(State(state): State<AppState>, headers: HeaderMap, RawForm(body): RawForm) -> Response {
    let registry = state.registry.current();
    let answer = async {
        let (client, form) = authenticated(&state, &registry, &headers, &body).await?;
        let get = |name: &str| form.get(name).map(String::as_str);
        match get("grant_type") {
            Some("authorization_code") => {
                let exchange = CodeExchange {
                    code: get("code"),
                    redirect_uri: get("redirect_uri"),
                    code_verifier: get("code_verifier"),
                };
                state.grants.authorization_code(client, exchange).await
            }
            Some("client_credentials") => state.grants.client_credentials(client, get("scope")).await,
            Some("refresh_token") => state.grants.refresh_token(client, get("refresh_token")).await,
            Some(other) => Err(OAuthError::unsupported_grant_type(format!("grant_type {other} is not supported."))),
            None => Err(OAuthError::invalid_request("grant_type is missing.")),
        }
    }
    .await;
    match answer {
        Ok(tokens) => no_store_json(serde_json::to_value(tokens).unwrap_or_default()),
        Err(error) => error.into_response(),
    }
}

async fn par(State(state): State<AppState>, headers: HeaderMap, RawForm(body): RawForm) -> Response {
    let registry = state.registry.current();
    let answer = async {
        let (client, mut form) = authenticated(&state, &registry, &headers, &body).await?;
        if form.contains_key("request_uri") {
            return Err(OAuthError::invalid_request("A pushed request cannot itself carry a request_uri."));
        }
        for name in AUTH_PARAMETERS {
            form.remove(*name);
        }
        form.insert("client_id".into(), client.id.as_str().to_owned());
        request::validate(&form, &registry, Origin::Pushed).map_err(|error| match error {
            AuthorizeError::Page { description } => OAuthError::invalid_request(description),
            AuthorizeError::Redirect { error: "invalid_scope", description, .. } => {
                OAuthError::invalid_scope(description)
            }
            AuthorizeError::Redirect { description, .. } => OAuthError::invalid_request(description),
        })?;
        let request_uri = format!("{REQUEST_URI_PREFIX}{}", random_token());
        let expires_at = state.clock.now_millis() + PAR_LIFETIME_SECS * 1000;
        let stored = serde_json::to_string(&form).map_err(|e| internal(&e))?;
        state.db.insert_par(&fingerprint(&request_uri), client.id.as_str(), &stored, expires_at).await?;
        Ok(json!({ "request_uri": request_uri, "expires_in": PAR_LIFETIME_SECS }))
    }
    .await;
    match answer {
        Ok(body) => (StatusCode::CREATED, no_store_json(body)).into_response(),
        Err(error) => error.into_response(),
    }
}

/// Revokes an access token of the calling client. Unknown or foreign tokens are ignored, as RFC 7009
/// §2.2 asks, so the answer reveals nothing about them.
async fn revoke(State(state): State<AppState>, headers: HeaderMap, RawForm(body): RawForm) -> Response {
    let registry = state.registry.current();
    let answer = async {
        let (client, form) = authenticated(&state, &registry, &headers, &body).await?;
        let token = form.get("token").ok_or_else(|| OAuthError::invalid_request("token is missing."))?;
        // A token that could not be checked is not "unknown": the client hears 503 and tries again,
        // rather than 200 for a revocation that did not happen.
        let checked = match state.tokens.verify_access_token(token).await {
            Ok(access) => Some(access),
            Err(TokenError::Invalid(_)) => None,
            Err(e) => return Err(OAuthError::from(e)),
        };
        if let Some(access) = checked {
            if access.client_id == client.id.as_str() {
                state.db.revoke_token(&access.jti, access.expires_at * 1000).await?;
            }
        } else if let Some((family, owner)) = state.grants.refresh_token_family(token) {
            if owner == client.id.as_str() {
                state.grants.revoke_refresh_family(&family).await?;
            }
        }
        Ok::<_, OAuthError>(())
    }
    .await;
    match answer {
        Ok(()) => StatusCode::OK.into_response(),
        Err(error) => error.into_response(),
    }
}

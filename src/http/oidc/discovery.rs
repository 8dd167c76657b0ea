//! OpenID Provider metadata (OpenID Connect Discovery 1.0, RFC 8414, RFC 9126, RFC 9207).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::http::state::AppState;
use crate::identity::levels::eidas_uri;
use crate::registry::Level;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/.well-known/openid-configuration", get(configuration))
}

async fn configuration(State(state): State<AppState>) -> Json<Value> {
    let issuer = state.settings.issuer();
    let acr: Vec<&str> = Level::ALL.iter().map(|l| eidas_uri(*l)).collect();
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "pushed_authorization_request_endpoint": format!("{issuer}/par"),
        "require_pushed_authorization_requests": false,
        "token_endpoint": format!("{issuer}/token"),
        "userinfo_endpoint": format!("{issuer}/userinfo"),
        "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
        "end_session_endpoint": format!("{issuer}/logout"),
        "revocation_endpoint": format!("{issuer}/revoke"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["ES256", "PS256", "RS256"],
        "userinfo_signing_alg_values_supported": [],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["ES256", "ES384", "PS256", "RS256"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": ["openid", "profile", "birth", "email", "address", "postbox", "organisation", "payment"],
        "claims_supported": [
            "sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "idp", "account_type",
            "given_name", "family_name", "birth_name", "title", "birthdate", "place_of_birth", "nationality",
            "email", "address", "postbox", "org_name", "org_tax_number", "org_vat_id", "org_legal_form",
            "org_register_type", "org_register_number", "org_register_court", "org_address"
        ],
        "acr_values_supported": acr,
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "authorization_response_iss_parameter_supported": true,
        "ui_locales_supported": ["de", "en"],
        "prompt_values_supported": ["none", "login"],
    }))
}

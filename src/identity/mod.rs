//! Login: pforte as OpenID Provider towards online services, and as relying party towards the
//! upstream account providers. This module knows nothing of HTTP; `http::oidc` adapts it.

pub mod client_auth;
pub mod grants;
pub mod levels;
pub mod login;
pub mod oauth;
pub mod request;
pub mod tokens;
pub mod upstream;

use sha2::{Digest, Sha256};

/// Hex SHA-256, for looking up secrets (codes, states, request URIs) without storing them.
pub fn fingerprint(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// 32 random bytes, base64url: codes, states, ids.
pub fn random_token() -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

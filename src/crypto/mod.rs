//! Cryptography below the domains, with no state and no storage: the master key that seals stored
//! secrets (`master`), secret references from files or the environment that never print (`secret`), and the small
//! primitives every layer shares: random tokens, SHA-256 fingerprints and Standard Webhooks signatures (`webhook`).

mod master;
pub(crate) mod secret;
pub mod webhook;

pub use master::{MasterKey, MasterKeyOrigin};

use sha2::{Digest, Sha256};

/// Hex SHA-256, for looking up secrets (codes, states, request URIs, tokens) without storing them.
pub fn fingerprint(secret: &str) -> String {
    sha256_hex(secret.as_bytes())
}

/// Hex SHA-256 of raw bytes (file contents, bodies).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// 32 random bytes, base64url: codes, states, ids.
pub fn random_token() -> String {
    random_token_of::<32>()
}

/// `N` bytes from the operating system's generator, in base64url without padding.
pub fn random_token_of<const N: usize>() -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut bytes = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("master key: {0}")]
    MasterKey(String),
    #[error("key material: {0}")]
    Material(String),
}

//! Access tokens whose signature pforte has already checked. An online service uses one access
//! token for many payment API calls within its five minutes; checking its ES256 signature again on
//! every call costs more CPU than anything else the call does in pforte (a P-256 verification is
//! about three signatures). What is kept is only the outcome of the signature check, for the exact
//! token text (its SHA-256): expiry, the signing key still being published and revocation are
//! checked on every call as before (`TokenService::verify_access_token`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use josekit::jwt::JwtPayload;
use sha2::{Digest, Sha256};

/// How many verified tokens are kept at most; when full, expired ones go first, then all.
const CAPACITY: usize = 16_384;

/// A token whose signature was valid: the key that signed it, and what it says.
pub(super) struct Verified {
    pub(super) kid: String,
    pub(super) payload: JwtPayload,
    /// `exp`, seconds; the entry is useless after it.
    pub(super) expires_at: i64,
}

#[derive(Default)]
pub(super) struct VerifiedTokens {
    entries: Mutex<HashMap<[u8; 32], Arc<Verified>>>,
}

impl VerifiedTokens {
    pub(super) fn get(&self, token: &str) -> Option<Arc<Verified>> {
        let key = digest(token);
        self.entries.lock().ok()?.get(&key).cloned()
    }

    pub(super) fn insert(&self, token: &str, verified: Arc<Verified>, now: i64) {
        let key = digest(token);
        let Ok(mut entries) = self.entries.lock() else { return };
        if entries.len() >= CAPACITY {
            entries.retain(|_, entry| entry.expires_at > now);
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        entries.insert(key, verified);
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verified(expires_at: i64) -> Arc<Verified> {
        Arc::new(Verified { kid: "k".into(), payload: JwtPayload::new(), expires_at })
    }

    #[test]
    fn only_the_exact_token_text_is_found() {
        let cache = VerifiedTokens::default();
        cache.insert("a.b.c", verified(100), 0);
        assert!(cache.get("a.b.c").is_some());
        assert!(cache.get("a.b.d").is_none());
        assert!(cache.get("a.b.c ").is_none());
    }

    #[test]
    fn a_full_cache_drops_expired_entries_first_then_everything() {
        let cache = VerifiedTokens::default();
        for i in 0..CAPACITY {
            // Half of them expired by `now` = 50.
            cache.insert(&format!("t{i}"), verified(if i % 2 == 0 { 10 } else { 100 }), 0);
        }
        cache.insert("new", verified(100), 50);
        assert!(cache.get("t1").is_some(), "an unexpired entry survives");
        assert!(cache.get("t0").is_none(), "an expired entry went");
        assert!(cache.get("new").is_some());
        let len = cache.entries.lock().map(|e| e.len()).unwrap_or_default();
        assert_eq!(len, CAPACITY / 2 + 1);
    }
}

//! The key set a running server works from: the published public keys with their verifiers and the
//! active private key of each algorithm as a ready signer, built from one read of the database.

use std::sync::Arc;

use josekit::jwk::Jwk;
use josekit::jws::{JwsSigner, JwsVerifier};
use serde_json::{json, Value};

use super::{KeyError, MasterKey, SigningAlg};
use crate::store::signing_keys::SigningKeyRow;

/// A signer ready for use (parsing a key for every token is slow).
pub struct CachedSigner {
    pub kid: String,
    pub alg: SigningAlg,
    pub signer: Box<dyn JwsSigner>,
}

/// A published public key with its verifier.
pub struct CachedVerifier {
    pub kid: String,
    pub alg: SigningAlg,
    pub verifier: Box<dyn JwsVerifier>,
}

/// One published key as verifiers see it.
struct PublishedKey {
    public_jwk: Value,
    /// `None` while the key is active; a retired key is published until this time (milliseconds).
    publish_until: Option<i64>,
    verifier: Arc<CachedVerifier>,
}

impl PublishedKey {
    /// The overlap is checked when the set is used, not only when it was read, so a retired key
    /// leaves the JWKS on time even while the database is away.
    fn published_at(&self, now: i64) -> bool {
        self.publish_until.is_none_or(|until| until > now)
    }
}

/// A private key that signs, or will: from `active_from` until `retired_at`.
struct SigningSlot {
    active_from: i64,
    retired_at: Option<i64>,
    signer: Arc<CachedSigner>,
}

impl SigningSlot {
    fn signs_at(&self, now: i64) -> bool {
        self.active_from <= now && self.retired_at.is_none_or(|retired| retired > now)
    }
}

/// The keys as last read from the database.
pub(super) struct KeySet {
    /// Newest first, as the database orders them.
    published: Vec<PublishedKey>,
    /// Newest start first. Which one signs is decided when a token is signed, not when the set was
    /// read, so a key published ahead of use starts signing on time even between reads.
    signers: Vec<SigningSlot>,
}

/// What the service remembers between reads.
#[derive(Default)]
pub(super) struct KeyMemory {
    pub(super) set: Option<Arc<KeySet>>,
    /// When the database last answered (clock milliseconds).
    pub(super) loaded_at: Option<i64>,
    /// When a read last failed.
    pub(super) failed_at: Option<i64>,
    /// Whether the reads are failing now (the outage is logged once, and so is the recovery).
    pub(super) failing: bool,
}

impl KeySet {
    /// Builds the set from the published rows (newest first). Keys already in `previous` are
    /// reused: their private halves are not opened again on every refresh.
    pub(super) fn build(
        rows: &[SigningKeyRow],
        previous: Option<&KeySet>,
        master: &MasterKey,
        now: i64,
    ) -> Result<KeySet, KeyError> {
        let mut published = Vec::with_capacity(rows.len());
        let mut signers = Vec::new();
        for row in rows {
            let public_jwk: Value = serde_json::from_str(&row.public_jwk)
                .map_err(|e| KeyError::Crypto(format!("stored public JWK of {}: {e}", row.kid)))?;
            let verifier = match previous.and_then(|p| p.find(&row.kid)) {
                Some(known) => known.verifier.clone(),
                None => Arc::new(verifier_for(row)?),
            };
            // A key that signs now or will (published ahead of a scheduled rotation) gets its signer;
            // a retired one's private half is not opened at all.
            if row.retired_at.is_none_or(|retired| retired > now && retired > row.active_from) {
                let signer = match previous.and_then(|p| p.signers.iter().find(|s| s.signer.kid == row.kid)) {
                    Some(known) => known.signer.clone(),
                    None => Arc::new(signer_for(row, verifier.alg, master)?),
                };
                signers.push(SigningSlot { active_from: row.active_from, retired_at: row.retired_at, signer });
            }
            published.push(PublishedKey { public_jwk, publish_until: row.publish_until, verifier });
        }
        Ok(KeySet { published, signers })
    }

    fn find(&self, kid: &str) -> Option<&PublishedKey> {
        self.published.iter().find(|key| key.verifier.kid == kid)
    }

    /// The JWK Set of the keys published at `now`.
    pub(super) fn jwks(&self, now: i64) -> Value {
        let keys: Vec<&Value> =
            self.published.iter().filter(|key| key.published_at(now)).map(|key| &key.public_jwk).collect();
        json!({ "keys": keys })
    }

    /// The key that signs tokens of `alg` at `now`: the newest one whose time has come.
    pub(super) fn signer(&self, alg: SigningAlg, now: i64) -> Option<Arc<CachedSigner>> {
        self.signers.iter().find(|slot| slot.signer.alg == alg && slot.signs_at(now)).map(|slot| slot.signer.clone())
    }

    pub(super) fn verifier(&self, kid: &str, now: i64) -> Option<Arc<CachedVerifier>> {
        self.find(kid).filter(|key| key.published_at(now)).map(|key| key.verifier.clone())
    }
}

fn verifier_for(row: &SigningKeyRow) -> Result<CachedVerifier, KeyError> {
    let crypto = |e: josekit::JoseError| KeyError::Crypto(e.to_string());
    let alg: SigningAlg = row.alg.parse().map_err(KeyError::Crypto)?;
    let jwk = Jwk::from_bytes(row.public_jwk.as_bytes()).map_err(crypto)?;
    // The algorithm comes from our own record of the key, never from a token's header.
    let verifier: Box<dyn JwsVerifier> = match alg {
        SigningAlg::Es256 => Box::new(josekit::jws::ES256.verifier_from_jwk(&jwk).map_err(crypto)?),
        SigningAlg::Ps256 => Box::new(josekit::jws::PS256.verifier_from_jwk(&jwk).map_err(crypto)?),
        SigningAlg::Rs256 => Box::new(josekit::jws::RS256.verifier_from_jwk(&jwk).map_err(crypto)?),
        SigningAlg::Ps512 => Box::new(josekit::jws::PS512.verifier_from_jwk(&jwk).map_err(crypto)?),
    };
    Ok(CachedVerifier { kid: row.kid.clone(), alg, verifier })
}

fn signer_for(row: &SigningKeyRow, alg: SigningAlg, master: &MasterKey) -> Result<CachedSigner, KeyError> {
    let crypto = |e: josekit::JoseError| KeyError::Crypto(e.to_string());
    let plaintext = master.open(&row.kid, &row.private_jwe)?;
    let private_jwk = Jwk::from_bytes(&plaintext).map_err(crypto)?;
    let signer: Box<dyn JwsSigner> = match alg {
        SigningAlg::Es256 => Box::new(josekit::jws::ES256.signer_from_jwk(&private_jwk).map_err(crypto)?),
        SigningAlg::Ps256 => Box::new(josekit::jws::PS256.signer_from_jwk(&private_jwk).map_err(crypto)?),
        SigningAlg::Rs256 => Box::new(josekit::jws::RS256.signer_from_jwk(&private_jwk).map_err(crypto)?),
        SigningAlg::Ps512 => Box::new(josekit::jws::PS512.signer_from_jwk(&private_jwk).map_err(crypto)?),
    };
    Ok(CachedSigner { kid: row.kid.clone(), alg, signer })
}

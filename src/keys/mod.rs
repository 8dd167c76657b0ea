//! pforte's own signing keys: generated here, stored encrypted under the master key, published as a
//! JWKS, rotated with an overlap so tokens signed by a replaced key stay verifiable until they expire.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, RwLock};

use josekit::jwk::Jwk;
use josekit::jws::{JwsSigner, JwsVerifier};
use serde_json::{json, Value};

use crate::crypto::CryptoError;
pub use crate::crypto::{MasterKey, MasterKeyOrigin};

use crate::audit::{AuditEvent, AuditLog};
use crate::clock::SharedClock;
use crate::store::signing_keys::{self, SigningKeyRow};
use crate::store::{Database, StorageError};

/// RSA modulus size: BSI TR-02102 asks for at least 3072 bits.
const RSA_BITS: u32 = 3072;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("master key: {0}")]
    MasterKey(String),
    #[error("key material: {0}")]
    Crypto(String),
    #[error("no active signing key for {0}")]
    NoActiveKey(SigningAlg),
}

impl From<CryptoError> for KeyError {
    fn from(e: CryptoError) -> Self {
        match e {
            CryptoError::MasterKey(detail) => KeyError::MasterKey(detail),
            CryptoError::Material(detail) => KeyError::Crypto(detail),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigningAlg {
    Es256,
    Ps256,
    Rs256,
}

impl SigningAlg {
    pub const ALL: [SigningAlg; 3] = [SigningAlg::Es256, SigningAlg::Ps256, SigningAlg::Rs256];

    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::Es256 => "ES256",
            SigningAlg::Ps256 => "PS256",
            SigningAlg::Rs256 => "RS256",
        }
    }
}

impl fmt::Display for SigningAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SigningAlg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SigningAlg::ALL
            .into_iter()
            .find(|alg| alg.as_str() == s)
            .ok_or_else(|| format!("unsupported signing algorithm `{s}`: use ES256, PS256 or RS256"))
    }
}

/// The private key that currently signs for one algorithm.
pub struct ActiveKey {
    pub kid: String,
    pub alg: SigningAlg,
    pub private_jwk: Jwk,
}

/// A signer ready for use, built once per cache period (parsing a key for every token is slow).
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

/// How long a signer or the set of verifiers is reused before the database is asked again; another
/// instance's rotation is picked up within this time, and an unknown kid refreshes at once.
const CACHE_MILLIS: i64 = 30_000;

/// Published keys by kid.
type VerifierSet = HashMap<String, Arc<CachedVerifier>>;

#[derive(Default)]
struct KeyCache {
    signers: HashMap<SigningAlg, (i64, Arc<CachedSigner>)>,
    verifiers: Option<(i64, Arc<VerifierSet>)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    pub new_kid: String,
    pub retired: Vec<String>,
}

#[derive(Clone)]
pub struct KeyService {
    db: Database,
    master: Arc<MasterKey>,
    clock: SharedClock,
    audit: AuditLog,
    retired_publish_secs: i64,
    cache: Arc<RwLock<KeyCache>>,
}

impl fmt::Debug for KeyService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyService").field("retired_publish_secs", &self.retired_publish_secs).finish_non_exhaustive()
    }
}

impl KeyService {
    pub fn new(
        db: Database,
        master: MasterKey,
        clock: SharedClock,
        audit: AuditLog,
        retired_publish_secs: u64,
    ) -> Self {
        let retired_publish_secs = i64::try_from(retired_publish_secs).unwrap_or(i64::MAX / 2000);
        KeyService { db, master: Arc::new(master), clock, audit, retired_publish_secs, cache: Arc::default() }
    }

    /// The master key, for other records that are encrypted at rest.
    pub fn master(&self) -> Arc<MasterKey> {
        self.master.clone()
    }

    /// Creates a key for `alg` when none is active (first start). Returns the active key id.
    pub async fn ensure_active(&self, alg: SigningAlg, actor: &str) -> Result<String, KeyError> {
        match self.db.active_signing_key(alg.as_str()).await? {
            Some(row) => Ok(row.kid),
            None => Ok(self.rotate(alg, actor).await?.new_kid),
        }
    }

    /// Adds a new active key for `alg`; the keys it replaces stay published for the overlap.
    pub async fn rotate(&self, alg: SigningAlg, actor: &str) -> Result<Rotation, KeyError> {
        // Key generation (RSA takes a while) happens before the transaction opens.
        let now = self.clock.now_millis();
        let kid = new_kid(alg, now);
        let (private_jwk, public_jwk) = generate(alg, &kid)?;
        let private_json = serde_json::to_vec(private_jwk.as_ref()).map_err(|e| KeyError::Crypto(e.to_string()))?;
        let row = SigningKeyRow {
            kid: kid.clone(),
            alg: alg.as_str().to_owned(),
            private_jwe: self.master.seal(&kid, &private_json)?,
            public_jwk: Value::Object(public_jwk.as_ref().clone()).to_string(),
            created_at: now,
            retired_at: None,
            publish_until: None,
        };
        let publish_until = now.saturating_add(self.retired_publish_secs.saturating_mul(1000));

        let mut tx = self.db.begin_write().await?;
        let retired = signing_keys::rotate(&mut tx, &row, publish_until).await?;
        let event = if retired.is_empty() { "keys.created" } else { "keys.rotated" };
        let details = json!({ "alg": alg.as_str(), "retired": retired, "publish_until_ms": publish_until });
        self.audit.append_in(&mut tx, AuditEvent::new(event, actor, &kid, details)).await?;
        tx.commit().await.map_err(StorageError::from)?;
        if let Ok(mut cache) = self.cache.write() {
            *cache = KeyCache::default();
        }
        Ok(Rotation { new_kid: kid, retired })
    }

    /// The public keys verifiers may meet, as a JWK Set.
    pub async fn jwks(&self) -> Result<Value, KeyError> {
        let rows = self.db.published_signing_keys(self.clock.now_millis()).await?;
        let keys = rows
            .iter()
            .map(|row| serde_json::from_str::<Value>(&row.public_jwk))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| KeyError::Storage(StorageError::Corrupt(format!("public JWK: {e}"))))?;
        Ok(json!({ "keys": keys }))
    }

    /// The private key that signs new tokens with `alg`.
    pub async fn active(&self, alg: SigningAlg) -> Result<ActiveKey, KeyError> {
        let row = self.db.active_signing_key(alg.as_str()).await?.ok_or(KeyError::NoActiveKey(alg))?;
        let plaintext = self.master.open(&row.kid, &row.private_jwe)?;
        let private_jwk = Jwk::from_bytes(&plaintext).map_err(|e| KeyError::Crypto(e.to_string()))?;
        Ok(ActiveKey { kid: row.kid, alg, private_jwk })
    }
}

impl KeyService {
    /// The signer for new tokens with `alg`, creating the first key of that algorithm if needed.
    pub async fn signer(&self, alg: SigningAlg) -> Result<Arc<CachedSigner>, KeyError> {
        let now = self.clock.now_millis();
        if let Some((at, signer)) = self.cache.read().ok().and_then(|c| c.signers.get(&alg).cloned()) {
            if now - at < CACHE_MILLIS {
                return Ok(signer);
            }
        }
        self.ensure_active(alg, "system").await?;
        let active = self.active(alg).await?;
        let crypto = |e: josekit::JoseError| KeyError::Crypto(e.to_string());
        let signer: Box<dyn JwsSigner> = match alg {
            SigningAlg::Es256 => Box::new(josekit::jws::ES256.signer_from_jwk(&active.private_jwk).map_err(crypto)?),
            SigningAlg::Ps256 => Box::new(josekit::jws::PS256.signer_from_jwk(&active.private_jwk).map_err(crypto)?),
            SigningAlg::Rs256 => Box::new(josekit::jws::RS256.signer_from_jwk(&active.private_jwk).map_err(crypto)?),
        };
        let cached = Arc::new(CachedSigner { kid: active.kid, alg, signer });
        if let Ok(mut cache) = self.cache.write() {
            cache.signers.insert(alg, (now, cached.clone()));
        }
        Ok(cached)
    }

    /// The verifier for a token signed by pforte with key `kid`, if that key is still published.
    /// An unknown kid reloads the published keys once before giving up.
    pub async fn verifier(&self, kid: &str) -> Result<Option<Arc<CachedVerifier>>, KeyError> {
        let now = self.clock.now_millis();
        let cached = self.cache.read().ok().and_then(|c| c.verifiers.clone());
        if let Some((at, verifiers)) = cached {
            if now - at < CACHE_MILLIS {
                if let Some(found) = verifiers.get(kid) {
                    return Ok(Some(found.clone()));
                }
            }
        }
        let verifiers = Arc::new(self.load_verifiers(now).await?);
        if let Ok(mut cache) = self.cache.write() {
            cache.verifiers = Some((now, verifiers.clone()));
        }
        Ok(verifiers.get(kid).cloned())
    }

    async fn load_verifiers(&self, now: i64) -> Result<HashMap<String, Arc<CachedVerifier>>, KeyError> {
        let crypto = |e: josekit::JoseError| KeyError::Crypto(e.to_string());
        let mut verifiers = HashMap::new();
        for row in self.db.published_signing_keys(now).await? {
            let alg: SigningAlg = row.alg.parse().map_err(KeyError::Crypto)?;
            let jwk = Jwk::from_bytes(row.public_jwk.as_bytes()).map_err(crypto)?;
            // The algorithm comes from our own record of the key, never from a token's header.
            let verifier: Box<dyn JwsVerifier> = match alg {
                SigningAlg::Es256 => Box::new(josekit::jws::ES256.verifier_from_jwk(&jwk).map_err(crypto)?),
                SigningAlg::Ps256 => Box::new(josekit::jws::PS256.verifier_from_jwk(&jwk).map_err(crypto)?),
                SigningAlg::Rs256 => Box::new(josekit::jws::RS256.verifier_from_jwk(&jwk).map_err(crypto)?),
            };
            verifiers.insert(row.kid.clone(), Arc::new(CachedVerifier { kid: row.kid, alg, verifier }));
        }
        Ok(verifiers)
    }
}

/// Key ids say what they are and when they were made; the random part keeps them unique.
fn new_kid(alg: SigningAlg, now_millis: i64) -> String {
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{}-{}-{}", alg.as_str().to_lowercase(), now_millis, &random[..8])
}

fn generate(alg: SigningAlg, kid: &str) -> Result<(Jwk, Jwk), KeyError> {
    let crypto = |e: josekit::JoseError| KeyError::Crypto(e.to_string());
    let (mut private, mut public) = match alg {
        SigningAlg::Es256 => {
            let pair = josekit::jws::ES256.generate_key_pair().map_err(crypto)?;
            (pair.to_jwk_private_key(), pair.to_jwk_public_key())
        }
        SigningAlg::Ps256 | SigningAlg::Rs256 => {
            let pair = josekit::jws::RS256.generate_key_pair(RSA_BITS).map_err(crypto)?;
            (pair.to_jwk_private_key(), pair.to_jwk_public_key())
        }
    };
    for jwk in [&mut private, &mut public] {
        jwk.set_key_id(kid);
        jwk.set_algorithm(alg.as_str());
        jwk.set_key_use("sig");
    }
    Ok((private, public))
}

//! pforte's own signing keys: generated here, stored encrypted under the master key, published as a
//! JWKS, rotated with an overlap so tokens signed by a replaced key stay verifiable until they expire.
//! The set in use is held in memory (`memory.rs`), so publishing, signing and verifying do not
//! depend on the database being there at that moment.

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, RwLock};

use josekit::jwk::Jwk;
use serde_json::{json, Value};

use crate::crypto::CryptoError;
pub use crate::crypto::{MasterKey, MasterKeyOrigin};

use crate::audit::{AuditEvent, AuditLog};
use crate::clock::SharedClock;
use crate::store::signing_keys::{self, SigningKeyRow};
use crate::store::{Database, StorageError};

/// RSA modulus size: BSI TR-02102 asks for at least 3072 bits.
const RSA_BITS: u32 = 3072;
/// The PS512 key that signs Datentransfer event SETs: FIT-Connect asks for 4096 bits.
const RSA_BITS_PS512: u32 = 4096;

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
    /// The keys could not be read from the database a moment ago, and are not asked for again
    /// before the cooldown ends: pforte could not check, which is not a refusal.
    #[error("the signing keys could not be read from the database just now")]
    Unreachable,
}

impl KeyError {
    /// The keys were not read because the database was away a moment ago: the edge answers 503
    /// (could not check), never a refused token.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, KeyError::Unreachable)
    }
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
    /// Datentransfer's Security Event Tokens (FIT-Connect: RSASSA-PSS with SHA-512, 4096 bits). Made
    /// on first use like the others, rotated by the same schedule, published in the same JWKS.
    Ps512,
}

impl SigningAlg {
    pub const ALL: [SigningAlg; 4] = [SigningAlg::Es256, SigningAlg::Ps256, SigningAlg::Rs256, SigningAlg::Ps512];

    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::Es256 => "ES256",
            SigningAlg::Ps256 => "PS256",
            SigningAlg::Rs256 => "RS256",
            SigningAlg::Ps512 => "PS512",
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
            .ok_or_else(|| format!("unsupported signing algorithm `{s}`: use ES256, PS256, RS256 or PS512"))
    }
}

mod memory;

pub use memory::{CachedSigner, CachedVerifier};
use memory::{KeyMemory, KeySet};

/// A token with a key id the set in memory does not know makes pforte read the keys again at most
/// once per this period, so made-up key ids cannot turn into one database query each.
pub const UNKNOWN_KID_COOLDOWN_MILLIS: i64 = 5_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    pub new_kid: String,
    pub retired: Vec<String>,
    /// When the new key starts signing (clock milliseconds); the retired keys sign until then.
    pub active_from: i64,
}

/// When the schedule replaces a key, and how long the new one is published before it signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotationSchedule {
    pub rotate_after_millis: i64,
    pub publish_ahead_millis: i64,
}

impl RotationSchedule {
    /// From `keys.rotate_after_days` and `keys.publish_ahead_secs`; `None` when the schedule is off (0 days).
    pub fn from_settings(rotate_after_days: u64, publish_ahead_secs: u64) -> Option<RotationSchedule> {
        let millis = |secs: u64| i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX / 2);
        (rotate_after_days > 0).then(|| RotationSchedule {
            rotate_after_millis: millis(rotate_after_days.saturating_mul(86_400)),
            publish_ahead_millis: millis(publish_ahead_secs),
        })
    }
}

/// pforte's keys. What verifiers and signers need lives in memory (read at start, refreshed from
/// the database while it is there), so the JWKS, signing and verifying go on through a database
/// outage with the last set that was read.
#[derive(Clone)]
pub struct KeyService {
    db: Database,
    master: Arc<MasterKey>,
    clock: SharedClock,
    audit: AuditLog,
    retired_publish_secs: i64,
    memory: Arc<RwLock<KeyMemory>>,
    /// One reload for unknown key ids at a time; those that waited use its outcome.
    reload: Arc<tokio::sync::Mutex<()>>,
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
        KeyService {
            db,
            master: Arc::new(master),
            clock,
            audit,
            retired_publish_secs,
            memory: Arc::default(),
            reload: Arc::default(),
        }
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

    /// Adds a new active key for `alg` that signs from now on (`pforte keys rotate`); the keys it
    /// replaces stay published for the overlap.
    pub async fn rotate(&self, alg: SigningAlg, actor: &str) -> Result<Rotation, KeyError> {
        // Key generation (RSA takes a while) happens before the transaction opens.
        let now = self.clock.now_millis();
        let row = self.sealed_key(alg, now, now)?;
        let mut tx = self.db.begin_write().await?;
        let rotation = self.record(&mut tx, row, actor).await?;
        tx.commit().await.map_err(StorageError::from)?;
        // The rotation is committed; should this read fail, the next refresh picks the key up.
        self.refresh().await.ok();
        Ok(rotation)
    }

    /// The schedule (`keys.rotate_after_days`): for each algorithm whose newest key began signing
    /// `schedule.rotate_after_millis` ago or earlier, adds a key that is published now and signs from
    /// `schedule.publish_ahead_millis` on; the key it replaces signs until then and stays published
    /// for the overlap after. Instances running this at the same moment add one key: the check is
    /// repeated under the rotation lock (see `store::signing_keys::lock_and_read_newest`).
    pub async fn rotate_due(&self, schedule: RotationSchedule) -> Result<Vec<Rotation>, KeyError> {
        let mut rotations = Vec::new();
        for alg in SigningAlg::ALL {
            let now = self.clock.now_millis();
            let due = |newest: Option<i64>| {
                newest.is_some_and(|start| start.saturating_add(schedule.rotate_after_millis) <= now)
            };
            if !due(self.db.newest_signing_key_start(alg.as_str()).await?) {
                continue;
            }
            let row = self.sealed_key(alg, now, now.saturating_add(schedule.publish_ahead_millis))?;
            let mut tx = self.db.begin_write().await?;
            let newest = signing_keys::lock_and_read_newest(&mut tx, self.db.backend(), alg.as_str()).await?;
            if !due(newest) {
                // Another instance rotated between the check and the lock; the new key is dropped.
                tx.rollback().await.map_err(StorageError::from)?;
                continue;
            }
            rotations.push(self.record(&mut tx, row, "schedule").await?);
            tx.commit().await.map_err(StorageError::from)?;
        }
        if !rotations.is_empty() {
            self.refresh().await.ok();
        }
        Ok(rotations)
    }

    /// A new key pair for `alg`, its private half sealed under the master key.
    fn sealed_key(&self, alg: SigningAlg, now: i64, active_from: i64) -> Result<SigningKeyRow, KeyError> {
        let kid = new_kid(alg, now);
        let (private_jwk, public_jwk) = generate(alg, &kid)?;
        let private_json = serde_json::to_vec(private_jwk.as_ref()).map_err(|e| KeyError::Crypto(e.to_string()))?;
        Ok(SigningKeyRow {
            private_jwe: self.master.seal(&kid, &private_json)?,
            kid,
            alg: alg.as_str().to_owned(),
            public_jwk: Value::Object(public_jwk.as_ref().clone()).to_string(),
            created_at: now,
            active_from,
            retired_at: None,
            publish_until: None,
        })
    }

    /// Stores `row` as the next key of its algorithm with its audit entry, in the caller's transaction.
    async fn record(
        &self,
        tx: &mut sqlx::AnyConnection,
        row: SigningKeyRow,
        actor: &str,
    ) -> Result<Rotation, KeyError> {
        let publish_until = row.active_from.saturating_add(self.retired_publish_secs.saturating_mul(1000));
        let retired = signing_keys::rotate(tx, &row, publish_until).await?;
        let event = if retired.is_empty() { "keys.created" } else { "keys.rotated" };
        let details = json!({
            "alg": row.alg,
            "retired": retired,
            "active_from_ms": row.active_from,
            "publish_until_ms": publish_until,
        });
        self.audit.append_in(tx, AuditEvent::new(event, actor, &row.kid, details)).await?;
        Ok(Rotation { new_kid: row.kid, retired, active_from: row.active_from })
    }

    /// Reads the published and active keys from the database into memory. A failure keeps the last
    /// set that was read; it is logged once per outage, and so is the recovery.
    pub async fn refresh(&self) -> Result<(), KeyError> {
        let now = self.clock.now_millis();
        let previous = self.memory.read().ok().and_then(|m| m.set.clone());
        let loaded = self.load(now, previous.as_deref()).await;
        let Ok(mut memory) = self.memory.write() else { return loaded.map(|_| ()) };
        match loaded {
            Ok(set) => {
                memory.set = Some(Arc::new(set));
                memory.loaded_at = Some(now);
                if std::mem::take(&mut memory.failing) {
                    tracing::info!("signing keys read from the database again");
                }
                Ok(())
            }
            Err(e) => {
                memory.failed_at = Some(now);
                if !std::mem::replace(&mut memory.failing, true) {
                    tracing::warn!(error = %e, "could not read the signing keys from the database; using the set in memory");
                }
                Err(e)
            }
        }
    }

    /// The set in memory, read from the database first when none was read yet.
    async fn current(&self) -> Result<Arc<KeySet>, KeyError> {
        if let Some(set) = self.memory.read().ok().and_then(|m| m.set.clone()) {
            return Ok(set);
        }
        self.refresh().await?;
        self.memory.read().ok().and_then(|m| m.set.clone()).ok_or(KeyError::Unreachable)
    }

    /// The public keys verifiers may meet, as a JWK Set.
    pub async fn jwks(&self) -> Result<Value, KeyError> {
        Ok(self.current().await?.jwks(self.clock.now_millis()))
    }

    /// The signer for new tokens with `alg`, creating the first key of that algorithm if needed.
    pub async fn signer(&self, alg: SigningAlg) -> Result<Arc<CachedSigner>, KeyError> {
        if let Some(signer) = self.current().await?.signer(alg, self.clock.now_millis()) {
            return Ok(signer);
        }
        self.ensure_active(alg, "system").await?;
        self.refresh().await?;
        self.current().await?.signer(alg, self.clock.now_millis()).ok_or(KeyError::NoActiveKey(alg))
    }

    /// The verifier for a token signed by pforte with key `kid`, if that key is still published.
    /// An unknown kid reads the keys again, at most once per `UNKNOWN_KID_COOLDOWN_MILLIS`.
    pub async fn verifier(&self, kid: &str) -> Result<Option<Arc<CachedVerifier>>, KeyError> {
        let now = self.clock.now_millis();
        if let Some(found) = self.current().await?.verifier(kid, now) {
            return Ok(Some(found));
        }
        let _turn = self.reload.lock().await;
        let (set, loaded_at, failed_at) = match self.memory.read() {
            Ok(m) => (m.set.clone(), m.loaded_at, m.failed_at),
            Err(_) => (None, None, None),
        };
        if let Some(found) = set.and_then(|set| set.verifier(kid, now)) {
            return Ok(Some(found));
        }
        let recent = |at: Option<i64>| at.is_some_and(|at| now - at < UNKNOWN_KID_COOLDOWN_MILLIS);
        if recent(loaded_at) {
            // Read from the database a moment ago: the kid is not one of ours.
            return Ok(None);
        }
        if recent(failed_at) {
            // Could not check, and asking the database again now would only add to its trouble.
            return Err(KeyError::Unreachable);
        }
        self.refresh().await?;
        Ok(self.current().await?.verifier(kid, now))
    }

    async fn load(&self, now: i64, previous: Option<&KeySet>) -> Result<KeySet, KeyError> {
        let rows = self.db.published_signing_keys(now).await?;
        KeySet::build(&rows, previous, &self.master, now)
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
        SigningAlg::Ps512 => {
            let pair = josekit::jws::RS256.generate_key_pair(RSA_BITS_PS512).map_err(crypto)?;
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

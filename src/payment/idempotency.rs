//! `Idempotency-Key` for creating payments (SECURITY.md #17, Stripe's semantics): the same key with
//! the same request returns the first response again; the same key with another request is refused;
//! a second request while the first still runs is refused as in progress — never two payments. Keys
//! live 25 hours. The response kept is the one the edge rendered ([`StoredAnswer`]), sent again as is.
//! A claim whose request cannot be running any more (its process was killed, or the request timeout
//! cut it off) is taken over by the next request with the key, so a client retrying a create whose
//! answer it never received gets the payment, not "in progress" for 25 hours (SECURITY.md #23).
//! Refunds use the same keys; like a create, a refund stores its answer in the transaction that
//! writes it (`payment::refund`, SECURITY.md #26), so a key taken over never leads to a second one.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::answer::StoredAnswer;
use crate::clock::SharedClock;
use crate::crypto::MasterKey;
use crate::store::{Database, StorageError};

/// Longer than the 24 hours clients may rely on.
pub const KEY_LIFETIME_SECS: i64 = 25 * 3600;
pub const MAX_KEY_LENGTH: usize = 255;
/// How long a request may hold a key without an answer before the claim counts as abandoned, unless
/// told otherwise (`abandoned_after`): the default request timeout.
const DEFAULT_ABANDONED_AFTER_MILLIS: i64 = 30_000;
/// How often a key whose release met an unavailable database is tried again.
const RELEASE_RETRY: std::time::Duration = std::time::Duration::from_millis(250);

/// What a stored answer is sealed for: another client's or key's row cannot open it.
fn answer_record(client_id: &str, key: &str) -> String {
    format!("idempotency:{client_id}:{key}")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This request holds the key: do the work, then `complete` (or `release` on a retryable failure).
    Proceed,
    /// The same request was answered before: send this response again.
    Replay(StoredAnswer),
    /// The key was used for a different request.
    Conflict,
    /// The first request with this key is still running.
    InProgress,
}

#[derive(Debug, thiserror::Error)]
pub enum IdempotencyError {
    #[error("the Idempotency-Key must be 1 to 255 visible ASCII characters")]
    InvalidKey,
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("the stored answer cannot be opened: {0}")]
    Sealed(#[from] crate::crypto::CryptoError),
}

#[derive(Clone, Debug)]
pub struct Idempotency {
    db: Database,
    clock: SharedClock,
    abandoned_after_millis: i64,
    /// Seals stored answers; `None` stores them as they are (tests of the key semantics alone).
    master: Option<Arc<MasterKey>>,
}

impl Idempotency {
    pub fn new(db: Database, clock: SharedClock) -> Self {
        Idempotency { db, clock, abandoned_after_millis: DEFAULT_ABANDONED_AFTER_MILLIS, master: None }
    }

    /// Stored answers are sealed under `master` (SECURITY.md #24).
    pub fn sealed_with(mut self, master: Arc<MasterKey>) -> Self {
        self.master = Some(master);
        self
    }

    /// The answer as it is stored: its body sealed for this client and key.
    pub(crate) fn seal(&self, client_id: &str, key: &str, answer: &StoredAnswer) -> Result<StoredAnswer, StorageError> {
        let Some(master) = &self.master else { return Ok(answer.clone()) };
        let body = master
            .seal(&answer_record(client_id, key), answer.body.as_bytes())
            .map_err(|e| StorageError::Corrupt(format!("cannot seal an answer: {e}")))?;
        Ok(StoredAnswer { status: answer.status, body })
    }

    fn open(&self, client_id: &str, key: &str, body: String) -> Result<String, IdempotencyError> {
        match &self.master {
            // A JWE compact serialisation begins with its base64url header `{"…`; JSON never does.
            Some(master) if body.starts_with("eyJ") => {
                let plain = master.open(&answer_record(client_id, key), &body)?;
                String::from_utf8(plain)
                    .map_err(|_| IdempotencyError::Sealed(crate::crypto::CryptoError::Material("not UTF-8".into())))
            }
            _ => Ok(body),
        }
    }

    /// No request runs longer than `limit` (the server's request timeout drops it), so a claim that
    /// old without an answer belongs to a request that is gone.
    pub fn abandoned_after(mut self, limit: std::time::Duration) -> Self {
        self.abandoned_after_millis = i64::try_from(limit.as_millis()).unwrap_or(i64::MAX);
        self
    }

    /// What makes two requests "the same": method, path and exact body bytes.
    pub fn request_hash(method: &str, path: &str, body: &[u8]) -> String {
        let mut hasher = Sha256::new();
        for part in [method.as_bytes(), path.as_bytes(), body] {
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part);
        }
        hex::encode(hasher.finalize())
    }

    pub async fn claim(&self, client_id: &str, key: &str, request_hash: &str) -> Result<Claim, IdempotencyError> {
        self.claim_at(client_id, key, request_hash, self.clock.now_millis()).await
    }

    /// [`Idempotency::claim`], stamped `now` ([`Idempotency::now_millis`]), so that this claim and
    /// no other can be released later ([`Idempotency::release_when_back`]).
    pub(crate) async fn claim_at(
        &self,
        client_id: &str,
        key: &str,
        request_hash: &str,
        now: i64,
    ) -> Result<Claim, IdempotencyError> {
        let valid = !key.is_empty() && key.len() <= MAX_KEY_LENGTH && key.bytes().all(|b| b.is_ascii_graphic());
        if !valid {
            return Err(IdempotencyError::InvalidKey);
        }
        let abandoned_before = now.saturating_sub(self.abandoned_after_millis);
        let expires_at = now + KEY_LIFETIME_SECS * 1000;
        let stored =
            self.db.claim_idempotency_key(client_id, key, request_hash, now, abandoned_before, expires_at).await?;
        Ok(match stored {
            None => Claim::Proceed,
            Some(earlier) if earlier.request_hash != request_hash => Claim::Conflict,
            Some(earlier) => match earlier.response {
                Some((status, body)) => Claim::Replay(StoredAnswer { status, body: self.open(client_id, key, body)? }),
                None => Claim::InProgress,
            },
        })
    }

    pub async fn complete(&self, client_id: &str, key: &str, answer: &StoredAnswer) -> Result<(), StorageError> {
        let answer = self.seal(client_id, key, answer)?;
        self.db.store_idempotent_response(client_id, key, answer.status, &answer.body).await
    }

    /// Frees the key after a failure the client should retry (nothing was created).
    pub async fn release(&self, client_id: &str, key: &str) -> Result<(), StorageError> {
        self.db.release_idempotency_key(client_id, key).await
    }

    /// The clock's time, to stamp a claim with ([`Idempotency::claim_at`]).
    pub(crate) fn now_millis(&self) -> i64 {
        self.clock.now_millis()
    }

    /// Frees this request's claim (the one stamped `claimed_at`, still without an answer) in the
    /// background once the database is back, when the database went away while the request held
    /// it, or while it was being made: else the client's retry would hear "in progress" until the
    /// claim counts as abandoned. Only that claim: never one another request made or took over.
    /// Gives up when the claim would count as abandoned anyway.
    pub(crate) fn release_when_back(&self, client_id: &str, key: &str, claimed_at: i64) {
        let (this, client_id, key) = (self.clone(), client_id.to_owned(), key.to_owned());
        let stop_at = claimed_at.saturating_add(self.abandoned_after_millis);
        tokio::spawn(async move {
            while this.clock.now_millis() < stop_at {
                tokio::time::sleep(RELEASE_RETRY).await;
                match this.db.release_idempotency_claim(&client_id, &key, claimed_at).await {
                    Err(e) if e.is_unavailable() => continue,
                    Err(e) => tracing::error!(error = %e, "could not release an Idempotency-Key"),
                    Ok(()) => {}
                }
                return;
            }
        });
    }
}

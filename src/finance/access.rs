//! Finance staff credentials: bearer tokens the operator creates for one tenant each (`pforte
//! finance token create`), stored only as SHA-256, revocable. Every allowed use is written to the audit
//! chain naming the token by its id (never the token itself); refused uses are counted outside it.
//!
//! Lookup is by the hash of the presented token: tokens carry 256 random bits, so an equality
//! lookup on their hash leaks nothing a comparison in constant time would protect.

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::audit::{AuditEvent, AuditLog, UNREGISTERED};
use crate::clock::SharedClock;
use crate::registry::SharedRegistry;
use crate::store::finance_tokens::{self, FinanceTokenRow};
use crate::store::{Database, StorageError};

/// Every finance token starts with this, so leaked ones are easy to recognise (secret scanners).
pub(crate) const TOKEN_PREFIX: &str = "pft_";
const TOKEN_ID_PREFIX: &str = "ftk_";

/// Who is calling, once `authorise` let them in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinanceCaller {
    pub token_id: String,
    pub tenant_id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum FinanceAccessError {
    /// No such token, or it was revoked: the caller is nobody we know.
    #[error("unknown or revoked finance token")]
    Unauthenticated,
    /// A valid token for another tenant: known, but not allowed here.
    #[error("this finance token is not for this tenant")]
    Forbidden,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

#[derive(Debug, thiserror::Error)]
pub enum TokenAdminError {
    #[error("there is no tenant `{0}` in the registry")]
    UnknownTenant(String),
    #[error("there is no finance token `{0}`")]
    UnknownToken(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// A token as the operator sees it: everything but the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub token_id: String,
    pub tenant_id: String,
    pub label: Option<String>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

impl From<FinanceTokenRow> for TokenInfo {
    fn from(row: FinanceTokenRow) -> Self {
        TokenInfo {
            token_id: row.token_id,
            tenant_id: row.tenant_id,
            label: row.label,
            created_at: row.created_at,
            revoked_at: row.revoked_at,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revocation {
    Revoked,
    AlreadyRevoked,
}

#[derive(Clone, Debug)]
pub struct FinanceAccess {
    db: Database,
    audit: AuditLog,
    clock: SharedClock,
    registry: SharedRegistry,
}

impl FinanceAccess {
    pub fn new(db: Database, audit: AuditLog, clock: SharedClock, registry: SharedRegistry) -> Self {
        FinanceAccess { db, audit, clock, registry }
    }

    /// Creates a token for `tenant_id`; the returned secret is shown once and never stored.
    pub async fn create(&self, tenant_id: &str, label: Option<&str>) -> Result<(TokenInfo, String), TokenAdminError> {
        if self.registry.current().tenant(tenant_id).is_none() {
            return Err(TokenAdminError::UnknownTenant(tenant_id.to_owned()));
        }
        let secret = format!("{TOKEN_PREFIX}{}", crate::crypto::random_token());
        let row = FinanceTokenRow {
            token_id: format!("{TOKEN_ID_PREFIX}{}", &uuid::Uuid::new_v4().simple().to_string()[..16]),
            tenant_id: tenant_id.to_owned(),
            label: label.map(str::to_owned),
            token_hash: token_hash(&secret),
            created_at: self.clock.now_millis(),
            revoked_at: None,
        };
        let mut tx = self.db.begin_write().await?;
        finance_tokens::insert(&mut tx, &row).await?;
        let details = json!({ "tenant": tenant_id });
        self.audit
            .append_in(&mut tx, AuditEvent::new("finance.token_created", "operator", &row.token_id, details))
            .await?;
        tx.commit().await.map_err(StorageError::from)?;
        Ok((row.into(), secret))
    }

    pub async fn revoke(&self, token_id: &str) -> Result<Revocation, TokenAdminError> {
        let mut tx = self.db.begin_write().await?;
        let Some(row) = finance_tokens::get(&mut tx, token_id).await? else {
            return Err(TokenAdminError::UnknownToken(token_id.to_owned()));
        };
        if !finance_tokens::revoke(&mut tx, token_id, self.clock.now_millis()).await? {
            return Ok(Revocation::AlreadyRevoked);
        }
        let details = json!({ "tenant": row.tenant_id });
        self.audit.append_in(&mut tx, AuditEvent::new("finance.token_revoked", "operator", token_id, details)).await?;
        tx.commit().await.map_err(StorageError::from)?;
        Ok(Revocation::Revoked)
    }

    pub async fn list(&self, tenant_id: Option<&str>) -> Result<Vec<TokenInfo>, StorageError> {
        Ok(self.db.finance_tokens(tenant_id).await?.into_iter().map(TokenInfo::from).collect())
    }

    /// Lets the bearer of `token` act for `tenant_id` in `action` (e.g. `bookings.export`), or not.
    /// An allowed use is a chain entry; a refused one a count in `refused_attempts`.
    pub async fn authorise(
        &self,
        token: &str,
        tenant_id: &str,
        action: &str,
    ) -> Result<FinanceCaller, FinanceAccessError> {
        let found = if token.starts_with(TOKEN_PREFIX) {
            self.db.finance_token_by_hash(&token_hash(token)).await?
        } else {
            None
        };
        let (actor, outcome) = match &found {
            None => ("unknown".to_owned(), Err(("unknown_token", FinanceAccessError::Unauthenticated))),
            Some(row) if row.revoked_at.is_some() => {
                (row.token_id.clone(), Err(("revoked_token", FinanceAccessError::Unauthenticated)))
            }
            Some(row) if row.tenant_id != tenant_id => {
                (row.token_id.clone(), Err(("other_tenant", FinanceAccessError::Forbidden)))
            }
            Some(row) => (
                row.token_id.clone(),
                Ok(FinanceCaller { token_id: row.token_id.clone(), tenant_id: row.tenant_id.clone() }),
            ),
        };
        match &outcome {
            Ok(_) => {
                let details = json!({ "action": action });
                self.audit.append(AuditEvent::new("finance.access_allowed", &actor, tenant_id, details)).await?;
            }
            // Counted, not chained: anyone can send a made-up token (SECURITY.md #32).
            Err((reason, _)) => {
                let subject =
                    if self.registry.current().tenant(tenant_id).is_some() { tenant_id } else { UNREGISTERED };
                self.audit.refused("finance.access_refused", &actor, subject, reason).await?;
            }
        }
        outcome.map_err(|(_, error)| error)
    }
}

/// SHA-256 of the whole token, hex: what is stored and looked up.
fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

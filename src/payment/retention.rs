//! The retention worker for payments' personal data (SECURITY.md #24). Each round it
//! 1. seals the personal data of rows that earlier versions stored in plain text inside `request`
//!    (SQL has no master key, so the migration cannot), and
//! 2. purges the sealed personal data of payments in a final status whose last change lies more than
//!    their tenant's `personal_data_retention_days` back (the default for a tenant no longer in the
//!    registry), in batches, each batch with one audit entry that counts what it purged.
//!
//! What stays is what the finance office must keep: the ledger, amounts, purpose, items, booking
//! data, Kassenzeichen. Both steps change only rows still in the state they select, so instances may
//! run side by side and a round repeated purges nothing twice.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::personal;
use crate::audit::{AuditEvent, AuditLog};
use crate::clock::SharedClock;
use crate::crypto::MasterKey;
use crate::registry::{SharedRegistry, DEFAULT_RETENTION_DAYS};
use crate::store::personal_data::{purge_batch, UnsealedPayment};
use crate::store::{Database, StorageError};

const BATCH: i64 = 200;
const INTERVAL: Duration = Duration::from_secs(600);
const DAY_MILLIS: i64 = 24 * 3600 * 1000;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RetentionRound {
    /// Rows from earlier versions whose personal data was taken out of the request and sealed.
    pub sealed: u64,
    /// Payments whose personal data was purged.
    pub purged: u64,
}

#[derive(Clone)]
pub struct Retention {
    db: Database,
    registry: SharedRegistry,
    master: Arc<MasterKey>,
    audit: AuditLog,
    clock: SharedClock,
}

impl Retention {
    pub fn new(
        db: Database,
        registry: SharedRegistry,
        master: Arc<MasterKey>,
        audit: AuditLog,
        clock: SharedClock,
    ) -> Self {
        Retention { db, registry, master, audit, clock }
    }

    /// A round now and then every ten minutes until `shutdown`; a failed round is logged and tried
    /// again at the next.
    pub async fn run(&self, shutdown: CancellationToken) {
        loop {
            match self.run_once().await {
                Ok(round) if round != RetentionRound::default() => {
                    tracing::info!(sealed = round.sealed, purged = round.purged, "payments' personal data retained")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "personal data retention failed; retrying next interval"),
            }
            tokio::select! {
                () = tokio::time::sleep(INTERVAL) => {}
                () = shutdown.cancelled() => return,
            }
        }
    }

    pub async fn run_once(&self) -> Result<RetentionRound, StorageError> {
        let mut round = RetentionRound::default();
        loop {
            let batch = self.db.unsealed_payments(BATCH).await?;
            for payment in &batch {
                round.sealed += u64::from(self.seal(payment).await?);
            }
            if i64::try_from(batch.len()).unwrap_or(i64::MAX) < BATCH {
                break;
            }
        }
        for endpoint in self.db.endpoints_keeping_personal_data().await? {
            round.purged += self.purge(&endpoint).await?;
        }
        Ok(round)
    }

    async fn seal(&self, payment: &UnsealedPayment) -> Result<bool, StorageError> {
        let corrupt = |what: &str| StorageError::Corrupt(format!("payments.{what} of a payment is not JSON"));
        let request: Value = serde_json::from_str(&payment.request).map_err(|_| corrupt("request"))?;
        let effective: Value = match &payment.effective_request {
            Some(text) => serde_json::from_str(text).map_err(|_| corrupt("effective_request"))?,
            None => request.clone(),
        };
        let stored = personal::split(&self.master, &payment.transaction_id, request, effective)
            .map_err(|e| StorageError::Corrupt(format!("cannot seal personal data: {e}")))?;
        self.db
            .seal_payment(&payment.transaction_id, &stored.request, &stored.effective_request, &stored.personal_data)
            .await
    }

    /// Purges one tenant's due payments, batch by batch, each with its audit entry.
    async fn purge(&self, endpoint_id: &str) -> Result<u64, StorageError> {
        let days = self
            .registry
            .current()
            .tenant(endpoint_id)
            .map_or(DEFAULT_RETENTION_DAYS, |t| t.personal_data_retention_days);
        let now = self.clock.now_millis();
        let changed_before = now.saturating_sub(i64::from(days).saturating_mul(DAY_MILLIS));
        let mut total = 0;
        loop {
            let mut tx = self.db.begin_write().await?;
            let purged = purge_batch(&mut tx, endpoint_id, changed_before, now, BATCH).await?;
            if purged > 0 {
                let details = json!({ "count": purged, "retention_days": days });
                let event = AuditEvent::new("payment.personal_data_purged", "system", endpoint_id, details);
                self.audit.append_in(&mut tx, event).await?;
            }
            tx.commit().await.map_err(StorageError::from)?;
            total += purged;
            if purged < BATCH.unsigned_abs() {
                return Ok(total);
            }
        }
    }
}

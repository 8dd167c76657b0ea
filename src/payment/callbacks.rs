//! Callbacks from payment providers (`POST /callbacks/payment/{providerId}`), by SECURITY.md #20:
//!
//! 1. the provider's adapter reads the raw body and checks its signature in constant time; a
//!    missing or wrong signature is refused and counted (`AuditLog::refused`), nothing changes;
//! 2. a timestamp more than [`TOLERANCE_SECS`] away from pforte's clock is refused (a captured
//!    callback cannot be played back later);
//! 3. the payment must exist at this provider (and for the authority the callback names);
//! 4. an event id acted on before is a replay: answered as accepted, nothing changes;
//! 5. an amount other than the payment's is not applied: the payment stays as it is, an event row
//!    and an audit entry `payment.amount_mismatch` flag it for the finance office
//!    ([`PaymentSignals::flag_amount_mismatch_in`], the rule status reads follow too);
//! 6. otherwise the claimed status is not trusted: pforte reads the status at the provider (outside
//!    any transaction) and records what the read says, with the event id's dedupe row in the same
//!    transaction; a read that reports another amount is flagged as in 5.

use reqwest::header::HeaderMap;
use rust_decimal::Decimal;

use super::provider::{CallbackError, ProviderCallback, Providers};
use super::service::read_at_provider;
use super::signals::{differing_amount, Outcome, PaymentSignals};
use super::wire::Status;
use crate::audit::AuditLog;
use crate::clock::SharedClock;
use crate::registry::SharedRegistry;
use crate::store::payments::PaymentRow;
use crate::store::{callbacks, Database, StorageError};

/// How far a callback's timestamp may be from pforte's clock, either way.
pub(crate) const TOLERANCE_SECS: i64 = 300;

/// What became of a callback. The first three are accepted (the provider stops retrying).
#[derive(Debug)]
pub enum Received {
    /// The status read was recorded (which may have changed nothing).
    Recorded(Outcome),
    /// This event was acted on before.
    Replay,
    /// The amount differs from the payment's: flagged, the payment did not move.
    AmountMismatch,
    /// No such provider, or its kind sends no callbacks.
    NotAccepted,
    /// Missing or wrong signature (counted outside the audit chain).
    Unauthenticated,
    /// Signed, but its timestamp is outside the tolerance.
    Stale,
    /// Signed, but not the provider's protocol.
    Malformed(String),
    /// No payment at this provider with this transaction id.
    UnknownTransaction,
    /// The status read at the provider failed; the provider should try again later.
    ProviderUnavailable,
    Failed(StorageError),
}

impl From<StorageError> for Received {
    fn from(e: StorageError) -> Self {
        Received::Failed(e)
    }
}

#[derive(Clone)]
pub struct PaymentCallbacks {
    db: Database,
    audit: AuditLog,
    clock: SharedClock,
    registry: SharedRegistry,
    signals: PaymentSignals,
    providers: Providers,
}

impl PaymentCallbacks {
    pub fn new(
        db: Database,
        audit: AuditLog,
        clock: SharedClock,
        registry: SharedRegistry,
        signals: PaymentSignals,
        providers: Providers,
    ) -> Self {
        PaymentCallbacks { db, audit, clock, registry, signals, providers }
    }

    pub async fn receive(&self, provider_id: &str, headers: &HeaderMap, body: &[u8]) -> Received {
        match self.receive_checked(provider_id, headers, body).await {
            Ok(received) | Err(received) => received,
        }
    }

    async fn receive_checked(&self, provider_id: &str, headers: &HeaderMap, body: &[u8]) -> Result<Received, Received> {
        let registry = self.registry.current();
        let provider = registry.payment_provider(provider_id).ok_or(Received::NotAccepted)?;
        let adapter = self.providers.adapter(provider.id.as_str()).map_err(|e| {
            tracing::warn!(provider = provider_id, error = %e, "callback for a provider entry that cannot be used");
            Received::NotAccepted
        })?;
        let callback = match adapter.parse_callback(headers, body) {
            Ok(callback) => callback,
            Err(CallbackError::NotAccepted) => return Err(Received::NotAccepted),
            Err(CallbackError::Malformed(what)) => return Err(Received::Malformed(what)),
            Err(e @ (CallbackError::MissingSignature | CallbackError::BadSignature)) => {
                let reason = if e == CallbackError::MissingSignature { "missing_signature" } else { "bad_signature" };
                // Counted, not chained: anyone can send a callback with a wrong signature (SECURITY.md #32).
                self.audit.refused("payment.callback_refused", "unknown", provider.id.as_str(), reason).await?;
                return Err(Received::Unauthenticated);
            }
        };
        let now = self.clock.now_millis() / 1000;
        if (now - callback.timestamp).abs() > TOLERANCE_SECS {
            tracing::warn!(provider = provider_id, skew_secs = now - callback.timestamp, "stale provider callback");
            return Err(Received::Stale);
        }
        let row = self.payment(provider_id, &callback).await?.ok_or(Received::UnknownTransaction)?;
        if self.db.provider_callback_seen(provider_id, &callback.event_id).await? {
            return Ok(Received::Replay);
        }
        if let Some(reported) = differing_amount(&row, callback.amount) {
            return self.flag_amount_mismatch(provider_id, &callback, &row, reported, callback.claimed_status).await;
        }
        // Outside any transaction (SECURITY.md #19); the claim in the callback is not used.
        let Some(state) = read_at_provider(&registry, &self.providers, &row).await else {
            return Err(Received::ProviderUnavailable);
        };
        if let Some(reported) = differing_amount(&row, state.amount) {
            return self.flag_amount_mismatch(provider_id, &callback, &row, reported, Some(state.status)).await;
        }
        let recorded = self
            .signals
            .record_callback(
                provider_id,
                &callback.event_id,
                &row.transaction_id,
                state.status,
                state.status_detail.as_deref(),
            )
            .await?;
        Ok(recorded.map_or(Received::Replay, Received::Recorded))
    }

    /// The payment the callback is about: the provider's transaction id at this provider, for the
    /// authority the callback names.
    async fn payment(&self, provider_id: &str, callback: &ProviderCallback) -> Result<Option<PaymentRow>, Received> {
        let Some(id) = self.db.payment_by_provider_reference(provider_id, &callback.reference).await? else {
            return Ok(None);
        };
        let row = self.db.payment(&id).await?;
        Ok(row.filter(|row| callback.endpoint_id.as_deref().is_none_or(|endpoint| endpoint == row.endpoint_id)))
    }

    /// Keeps the callback (so its retries are replays) and flags the payment; the status stays as
    /// it is.
    async fn flag_amount_mismatch(
        &self,
        provider_id: &str,
        callback: &ProviderCallback,
        row: &PaymentRow,
        reported: Decimal,
        claimed: Option<Status>,
    ) -> Result<Received, Received> {
        let now = self.clock.now_millis();
        let mut tx = self.db.begin_write().await?;
        if !callbacks::insert(&mut tx, provider_id, &callback.event_id, &row.transaction_id, now).await? {
            return Ok(Received::Replay);
        }
        self.signals.flag_amount_mismatch_in(&mut tx, row, reported, claimed).await?;
        tx.commit().await.map_err(StorageError::from)?;
        Ok(Received::AmountMismatch)
    }
}

//! Recording payments and what happens to them: creation and every status signal go through here,
//! each in one write transaction with its event row and audit entry, so a crash leaves either the
//! whole change or none of it, including the notification to the online service (outbox) and, for
//! a payment that reached PAYED, its booking (announced to [`PaymentBooks`], the tenant's ledger).

use std::sync::Arc;

use rust_decimal::Decimal;
use serde_json::json;
use sqlx::AnyConnection;

use super::answer::StoredAnswer;
use super::books::{PaidHow, PaidPayment, PaymentBooks};
use super::notify::Notifier;
use super::provider::ProviderState;
use super::state::{decide, Decision, Source};
use super::wire::Status;
use crate::audit::{AuditEvent, AuditLog};
use crate::clock::SharedClock;
use crate::registry::SharedRegistry;
use crate::store::callbacks;
use crate::store::payment_create::{AnswerRow, CreatedPayment};
use crate::store::payment_status::{self, StatusMove};
use crate::store::payments::{self, PaymentEventRow, PaymentRow, ProviderFacts};
use crate::store::{Database, StorageError};
use crate::telemetry::metrics;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Moved {
        from: Status,
        to: Status,
    },
    PaidAfterTimeout,
    /// The provider reported another amount than the payment's: flagged for the finance office, the
    /// payment stays in `current` (SECURITY.md #20).
    AmountMismatch {
        current: Status,
    },
    /// Nothing changed; the payment is in `current`.
    Unchanged {
        current: Status,
    },
    UnknownTransaction,
}

/// How long a payment the provider created is offered to a database that went away.
pub const RECORD_RETRY_FOR: std::time::Duration = std::time::Duration::from_secs(600);

#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// (originator, endpoint, requestId) exists already: the standard's PAYMENT_EXISTS.
    #[error("a payment with this requestId exists already")]
    Exists,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// The answer to a create, to be stored under the Idempotency-Key its request holds.
#[derive(Debug, Clone, Copy)]
pub struct KeyedAnswer<'a> {
    pub client_id: &'a str,
    pub key: &'a str,
    pub answer: &'a StoredAnswer,
}

#[derive(Clone)]
pub struct PaymentSignals {
    db: Database,
    audit: AuditLog,
    clock: SharedClock,
    registry: SharedRegistry,
    books: Arc<dyn PaymentBooks>,
}

impl PaymentSignals {
    pub fn new(
        db: Database,
        audit: AuditLog,
        clock: SharedClock,
        registry: SharedRegistry,
        books: Arc<dyn PaymentBooks>,
    ) -> Self {
        PaymentSignals { db, audit, clock, registry, books }
    }

    /// Stores a new payment in status INITIAL with its first event; nothing if the requestId exists.
    pub async fn create(&self, row: &PaymentRow) -> Result<(), CreateError> {
        self.create_answering(row, None).await
    }

    /// Records a payment the provider created while the database could not take it, as soon as
    /// the database is back, with its answer under the Idempotency-Key (`keyed`: client id, key,
    /// answer): the provider's payment is not orphaned, and the client's retry under the key is
    /// answered with it. Tries with growing pauses for up to [`RECORD_RETRY_FOR`]; after that, or
    /// on another failure, the log names the payment for the operator (ids only, no personal data).
    pub fn create_when_back(
        &self,
        row: PaymentRow,
        personal_data: Option<String>,
        keyed: Option<(String, String, StoredAnswer)>,
    ) {
        let signals = self.clone();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let mut pause = std::time::Duration::from_millis(250);
            loop {
                tokio::time::sleep(pause).await;
                let answer = keyed.as_ref().map(|(client_id, key, answer)| KeyedAnswer { client_id, key, answer });
                let id = row.transaction_id.as_str();
                match signals.create_recording(&row, personal_data.as_deref(), answer.as_ref()).await {
                    Ok(()) => {
                        tracing::info!(transaction_id = id, "recorded a payment created while the database was away")
                    }
                    // The first attempt's commit went through; only its acknowledgement was lost.
                    Err(CreateError::Exists) => {}
                    Err(CreateError::Storage(e)) if e.is_unavailable() && started.elapsed() < RECORD_RETRY_FOR => {
                        pause = (pause * 2).min(std::time::Duration::from_secs(5));
                        continue;
                    }
                    Err(e) => tracing::error!(
                        transaction_id = id,
                        provider = row.provider_id.as_str(),
                        provider_reference = row.provider_reference.as_deref().unwrap_or_default(),
                        error = %e,
                        "a payment the provider created could not be recorded"
                    ),
                }
                return;
            }
        });
    }

    /// As `create`, and stores the API's answer under the Idempotency-Key in the same transaction: a
    /// crash leaves either the payment with its answer (a retry replays it) or neither (a retry creates it).
    pub async fn create_answering(&self, row: &PaymentRow, keyed: Option<&KeyedAnswer<'_>>) -> Result<(), CreateError> {
        self.create_recording(row, None, keyed).await
    }

    /// As `create_answering`, with the payment's personal data sealed (`payment::personal`) stored
    /// in the same transaction (SECURITY.md #24).
    pub async fn create_recording(
        &self,
        row: &PaymentRow,
        personal_data: Option<&str>,
        keyed: Option<&KeyedAnswer<'_>>,
    ) -> Result<(), CreateError> {
        let details =
            json!({ "originator": row.originator_id, "endpoint": row.endpoint_id, "provider": row.provider_id });
        let created = CreatedPayment {
            row: row.clone(),
            personal_data: personal_data.map(str::to_owned),
            first_event: PaymentEventRow {
                from_status: Status::Initial,
                to_status: Status::Initial,
                source: "client".to_owned(),
                detail: None,
                recorded_at: row.created_at,
            },
            audit: self.audit.pending(AuditEvent::new("payment.created", &row.client_id, &row.transaction_id, details)),
            answer: keyed.map(|keyed| AnswerRow {
                client_id: keyed.client_id.to_owned(),
                key: keyed.key.to_owned(),
                status: keyed.answer.status,
                body: keyed.answer.body.clone(),
            }),
        };
        match self.db.insert_created_payment(created).await {
            Err(e) if e.is_unique_violation() => return Err(CreateError::Exists),
            other => other?,
        }
        metrics::payment_created(&row.provider_id);
        Ok(())
    }

    /// Applies one status signal. Duplicates, late and out-of-order signals change nothing; of two
    /// racing final signals exactly one wins (compare-and-set on the status read).
    pub async fn record(
        &self,
        transaction_id: &str,
        signal: Status,
        source: Source,
        detail: Option<&str>,
    ) -> Result<Outcome, StorageError> {
        // Shares the group commit with concurrent writes on SQLite (`store::group_commit`).
        let (signals, id, detail) = (self.clone(), transaction_id.to_owned(), detail.map(str::to_owned));
        let applied = self
            .db
            .write_grouped(Box::new(move |tx| {
                Box::pin(async move { signals.record_in(tx, &id, signal, source, detail.as_deref()).await })
            }))
            .await?;
        Ok(applied.committed())
    }

    /// Applies what a status read triggered by a provider's callback says, together with the
    /// callback's dedupe row in one transaction. `None`: the event was acted on before (a replay),
    /// nothing changed.
    pub async fn record_callback(
        &self,
        provider_id: &str,
        event_id: &str,
        transaction_id: &str,
        signal: Status,
        detail: Option<&str>,
    ) -> Result<Option<Outcome>, StorageError> {
        let signals = self.clone();
        let (provider, event, id) = (provider_id.to_owned(), event_id.to_owned(), transaction_id.to_owned());
        let detail = detail.map(str::to_owned);
        let applied = self
            .db
            .write_grouped(Box::new(move |tx| {
                Box::pin(async move {
                    let now = signals.clock.now_millis();
                    if !callbacks::insert(tx, &provider, &event, &id, now).await? {
                        return Ok(None);
                    }
                    let applied = signals.record_in(tx, &id, signal, Source::Provider, detail.as_deref()).await?;
                    Ok::<_, StorageError>(Some(applied))
                })
            }))
            .await?;
        Ok(applied.map(Applied::committed))
    }

    /// [`Self::record`] inside the caller's write transaction; the caller commits.
    async fn record_in(
        &self,
        tx: &mut AnyConnection,
        transaction_id: &str,
        signal: Status,
        source: Source,
        detail: Option<&str>,
    ) -> Result<Applied, StorageError> {
        let Some(row) = payments::get(tx, transaction_id).await? else {
            return Ok(Outcome::UnknownTransaction.into());
        };
        let current = row.status;
        let now = self.clock.now_millis();
        let event = |to: Status| PaymentEventRow {
            from_status: current,
            to_status: to,
            source: source.as_str().to_owned(),
            detail: detail.map(str::to_owned),
            recorded_at: now,
        };
        let closed_by_pforte = row.timed_out_at.is_some()
            || (current == Status::Canceled && payments::canceled_by_client(tx, transaction_id).await?);
        let outcome = match decide(current, closed_by_pforte, signal, source) {
            Decision::Move(to) => {
                let details = json!({ "from": current.as_str(), "to": to.as_str(), "source": source.as_str() });
                let audit = self.audit.pending(AuditEvent::new(
                    "payment.status_changed",
                    source.as_str(),
                    transaction_id,
                    details,
                ));
                let change = StatusMove {
                    transaction_id,
                    from: current,
                    to,
                    detail,
                    timed_out: source == Source::Timeout,
                    event: &event(to),
                    audit: &audit,
                };
                // The status, its event and its audit event in one statement on PostgreSQL.
                if !payment_status::move_status(tx, self.db.backend(), now, &change).await? {
                    // Another writer moved it between our read and this update (PostgreSQL).
                    let current = payments::get(tx, transaction_id).await?.map(|r| r.status);
                    return Ok(Outcome::Unchanged { current: current.unwrap_or(Status::Initial) }.into());
                }
                if to == Status::Payed {
                    self.book_paid(tx, &row, PaidHow::InTime, now).await?;
                }
                // The online service learns of the change through the outbox, committed with it.
                let registry = self.registry.current();
                if let Some(client) = registry.client(&row.client_id) {
                    let payload = json!({
                        "type": "payment.status_changed",
                        "timestamp": self.clock.now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                        "data": {
                            "transactionId": row.transaction_id,
                            "originatorId": row.originator_id,
                            "endPointId": row.endpoint_id,
                            "requestId": row.request_id,
                            "status": to.as_str(),
                            "statusDetail": detail,
                        },
                    });
                    Notifier::enqueue_for_payment(tx, client, &row, &payload, now).await?;
                }
                Outcome::Moved { from: current, to }
            }
            Decision::PaidAfterTimeout => {
                if !payments::flag_paid_after_timeout(tx, transaction_id, now).await? {
                    return Ok(Outcome::Unchanged { current }.into());
                }
                payments::insert_event(tx, transaction_id, &event(Status::Payed)).await?;
                // The money arrived, so it is booked; the flag stays on the payment.
                let (how, action) = if current == Status::Canceled {
                    (PaidHow::AfterCancel, "payment.paid_after_cancel")
                } else {
                    (PaidHow::AfterTimeout, "payment.paid_after_timeout")
                };
                self.book_paid(tx, &row, how, now).await?;
                let details = json!({ "status": current.as_str() });
                self.audit.append_in(tx, AuditEvent::new(action, "provider", transaction_id, details)).await?;
                Outcome::PaidAfterTimeout
            }
            Decision::Ignore => return Ok(Outcome::Unchanged { current }.into()),
        };
        Ok(Applied { outcome, provider_id: Some(row.provider_id) })
    }
}

/// What [`PaymentSignals::record_in`] did, with the payment's provider for the metrics.
struct Applied {
    outcome: Outcome,
    provider_id: Option<String>,
}

impl From<Outcome> for Applied {
    fn from(outcome: Outcome) -> Applied {
        Applied { outcome, provider_id: None }
    }
}

impl Applied {
    /// The outcome, once its transaction committed; a status change is counted only then.
    fn committed(self) -> Outcome {
        if let (Outcome::Moved { to, .. }, Some(provider)) = (&self.outcome, &self.provider_id) {
            metrics::payment_status_changed(provider, to.as_str());
        }
        self.outcome
    }
}

impl PaymentSignals {
    /// Applies what pforte read at the provider: the facts it reports (method, Kassenzeichen) are
    /// stored even when the status does not change, as a reference may come later; a fact it no
    /// longer reports keeps the value known before. Then the status as a provider signal. A read
    /// that reports another amount than the payment's is not applied: it flags the payment as a
    /// callback with another amount does ([`PaymentSignals::flag_amount_mismatch_in`]).
    pub async fn record_provider_read(
        &self,
        payment: &PaymentRow,
        state: &ProviderState,
    ) -> Result<Outcome, StorageError> {
        if let Some(reported) = differing_amount(payment, state.amount) {
            let mut tx = self.db.begin_write().await?;
            let Some(row) = payments::get(&mut tx, &payment.transaction_id).await? else {
                return Ok(Outcome::UnknownTransaction);
            };
            self.flag_amount_mismatch_in(&mut tx, &row, reported, Some(state.status)).await?;
            tx.commit().await.map_err(StorageError::from)?;
            return Ok(Outcome::AmountMismatch { current: row.status });
        }
        let facts = ProviderFacts {
            payment_method: state.payment_method.as_ref().map(|method| method.name().to_owned()),
            payment_method_detail: state.payment_method_detail.clone(),
            transaction_reference: state.transaction_reference.clone(),
        };
        if facts.would_change(payment) {
            self.db.store_provider_facts(&payment.transaction_id, &facts, self.clock.now_millis()).await?;
        }
        self.record(&payment.transaction_id, state.status, Source::Provider, state.status_detail.as_deref()).await
    }

    /// Flags `row` for the finance office because its provider reported `reported` (with the status
    /// it claimed or read) instead of the payment's amount: an event row that keeps the status and
    /// an audit entry `payment.amount_mismatch`, in the caller's transaction; the status does not
    /// move. The one rule for callbacks and status reads (SECURITY.md #20). The same report flagged
    /// before is not flagged again (a status read repeats); returns whether it flagged now.
    pub(crate) async fn flag_amount_mismatch_in(
        &self,
        tx: &mut AnyConnection,
        row: &PaymentRow,
        reported: Decimal,
        claimed: Option<Status>,
    ) -> Result<bool, StorageError> {
        let expected = row.gros_amount;
        let claimed = claimed.map_or("unknown", Status::as_str);
        let detail =
            format!("amount_mismatch: the provider reported {reported:.2} ({claimed}), the payment is {expected:.2}");
        if payments::has_event_detail(tx, &row.transaction_id, &detail).await? {
            return Ok(false);
        }
        let now = self.clock.now_millis();
        let event = PaymentEventRow {
            from_status: row.status,
            to_status: row.status,
            source: Source::Provider.as_str().to_owned(),
            detail: Some(detail),
            recorded_at: now,
        };
        payments::insert_event(tx, &row.transaction_id, &event).await?;
        let provider = row.provider_id.as_str();
        let details = json!({
            "provider": provider,
            "expected": format!("{expected:.2}"),
            "reported": format!("{reported:.2}"),
            "claimedStatus": claimed,
        });
        let audit = AuditEvent::new("payment.amount_mismatch", provider, &row.transaction_id, details);
        self.audit.append_in(tx, audit).await?;
        tracing::warn!(provider, "a provider reported another amount; flagged for the finance office");
        Ok(true)
    }

    /// Books a payment that was paid, in the status change's transaction.
    async fn book_paid(
        &self,
        conn: &mut AnyConnection,
        row: &PaymentRow,
        how: PaidHow,
        now: i64,
    ) -> Result<(), StorageError> {
        let paid = PaidPayment {
            tenant_id: &row.endpoint_id,
            transaction_id: &row.transaction_id,
            provider_id: &row.provider_id,
            amount: row.gros_amount,
            how,
            at: now,
        };
        self.books.paid(conn, &paid).await
    }
}

/// The amount a provider reported, when it is not the payment's (equal as numbers: `12` is `12.00`).
pub(crate) fn differing_amount(row: &PaymentRow, reported: Option<Decimal>) -> Option<Decimal> {
    reported.filter(|reported| *reported != row.gros_amount)
}

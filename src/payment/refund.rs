//! Refunds of paid payments (pforte's extension; XBezahldienste v1.0.0 has none).
//!
//! Order (SECURITY.md #19): the refund is recorded as PENDING with its event, audit entry and the
//! `payment.refunded` notification in one write transaction, which also locks the payment and adds
//! up its refunds, so concurrent refunds can never pay back more than was paid. After the commit the
//! provider is asked; its answer moves the refund to SUBMITTED (accepted), INSTRUCTION (the provider
//! cannot refund: the finance office pays back by hand) or FAILED (refused: the amount is free again).
//!
//! Under an `Idempotency-Key` (SECURITY.md #26) the answer is stored with the PENDING refund in that
//! first transaction, and replaced by the settled refund in the outcome's transaction. A request cut
//! off in between (killed process, request timeout, end of the shutdown grace) leaves an answered
//! key, so a retry replays it and never makes a second refund; the refund it left PENDING is taken
//! up by [`Refunds::resume_abandoned`] (the status worker) once no request can still be running: the
//! provider is asked again under the same refund id, which is its deduplication reference.

use std::sync::Arc;

use chrono::SecondsFormat;
use rust_decimal::Decimal;
use serde_json::{json, Value};

use super::answer::{AnswerRenderer, Created, PaymentEdge, Reply};
use super::api;
use super::books::{OwedRefund, PaymentBooks, RefundRoute};
use super::code::{FunctionalCode, PaymentError};
use super::idempotency::Idempotency;
use super::money::Amount;
use super::notify::Notifier;
use super::provider::{ProviderError, ProviderRefund, Providers};
use super::refund_request::{parse_refund_body, RefundRequest};
use super::routes::PaymentRoutes;
use crate::audit::{AuditEvent, AuditLog};
use crate::clock::SharedClock;
use crate::registry::{Client, Registry, SharedRegistry};
use crate::store::idempotency;
use crate::store::payments::PaymentRow;
use crate::store::refunds::{self, RefundRow};
use crate::store::{Database, StorageError};

pub(crate) use crate::model::RefundStatus;

/// The refund as the API shows it: `amount` a JSON number with its exact decimal text.
pub(crate) fn refund_body(row: &RefundRow) -> Value {
    let amount = Amount::parse(row.amount).ok();
    let created_at = chrono::DateTime::from_timestamp_millis(row.created_at)
        .map(|at| at.to_rfc3339_opts(SecondsFormat::Millis, true));
    let mut body = json!({
        "refundId": row.refund_id,
        "transactionId": row.transaction_id,
        "amount": amount,
        "currency": "EUR",
        "status": row.status.as_str(),
        "createdAt": created_at,
    });
    if let Some(reason) = &row.reason {
        body["reason"] = json!(reason);
    }
    body
}

#[derive(Clone)]
pub struct Refunds {
    db: Database,
    registry: SharedRegistry,
    audit: AuditLog,
    providers: Providers,
    books: Arc<dyn PaymentBooks>,
    routes: Arc<dyn PaymentRoutes>,
    answers: Arc<dyn AnswerRenderer>,
    clock: SharedClock,
    idempotency: Idempotency,
    /// A PENDING refund untouched this long belongs to a request that is gone: the request timeout.
    abandoned_after_millis: i64,
}

/// Where a refund's answer is kept: the request's client and `Idempotency-Key`.
#[derive(Debug, Clone, Copy)]
struct AnswerKey<'a> {
    client_id: &'a str,
    key: &'a str,
}

/// How many abandoned refunds one round of [`Refunds::resume_abandoned`] takes up.
const RESUME_BATCH: i64 = 50;
/// Until `with_request_timeout` says otherwise: the default request timeout.
const DEFAULT_ABANDONED_AFTER_MILLIS: i64 = 30_000;

impl Refunds {
    pub fn new(
        db: Database,
        registry: SharedRegistry,
        audit: AuditLog,
        providers: Providers,
        books: Arc<dyn PaymentBooks>,
        edge: PaymentEdge,
        clock: SharedClock,
    ) -> Self {
        let PaymentEdge { routes, answers } = edge;
        let idempotency = Idempotency::new(db.clone(), clock.clone());
        let abandoned_after_millis = DEFAULT_ABANDONED_AFTER_MILLIS;
        Refunds { db, registry, audit, providers, books, routes, answers, clock, idempotency, abandoned_after_millis }
    }

    /// No request runs longer than `limit`: a key claimed or a refund left PENDING that long ago
    /// without an answer or an outcome belongs to a request that is gone.
    pub fn with_request_timeout(mut self, limit: std::time::Duration) -> Self {
        self.idempotency = self.idempotency.abandoned_after(limit);
        self.abandoned_after_millis = i64::try_from(limit.as_millis()).unwrap_or(i64::MAX);
        self
    }

    /// `POST …/{transactionId}/refunds`, honouring the `Idempotency-Key` as a create does.
    pub async fn create(
        &self,
        client: &Client,
        originator: &str,
        endpoint: &str,
        transaction_id: &str,
        body: &[u8],
        idempotency_key: Option<&str>,
    ) -> Reply {
        // One registry for the whole refund, whatever a reload does meanwhile.
        let registry = self.registry.current();
        if let Err(error) = api::authorise(&registry, client, originator, endpoint) {
            return Reply::Fresh(Err(error));
        }
        let path = self.routes.refunds_path(originator, endpoint, transaction_id);
        let answer_key = idempotency_key.map(|key| AnswerKey { client_id: client.id.as_str(), key });
        let work = self.create_claimed(&registry, client, originator, endpoint, transaction_id, body, answer_key);
        // A refund stores its answer with the refund (SECURITY.md #26); refusals are stored after.
        let keyed = api::Keyed { key: idempotency_key, created_stores_answer: true };
        let answers = self.answers.as_ref();
        api::idempotent(&self.idempotency, answers, client.id.as_str(), keyed, &path, body, work).await
    }

    /// `GET …/{transactionId}/refunds`: `{"refunds": [...]}`, oldest first.
    pub async fn list(
        &self,
        client: &Client,
        originator: &str,
        endpoint: &str,
        transaction_id: &str,
    ) -> Result<Value, PaymentError> {
        api::authorise(&self.registry.current(), client, originator, endpoint)?;
        api::find_payment(&self.db, originator, endpoint, transaction_id).await?;
        let rows = self.db.refunds_of(transaction_id).await?;
        Ok(json!({ "refunds": rows.iter().map(refund_body).collect::<Vec<_>>() }))
    }

    // The request's whole context, each part from a different source; a struct for this one private
    // call would only rename the list.
    #[allow(clippy::too_many_arguments)]
    async fn create_claimed(
        &self,
        registry: &Registry,
        client: &Client,
        originator: &str,
        endpoint: &str,
        transaction_id: &str,
        body: &[u8],
        answer_key: Option<AnswerKey<'_>>,
    ) -> Created {
        let request = parse_refund_body(body)?;
        let payment = api::find_payment(&self.db, originator, endpoint, transaction_id).await?;
        let mut refund = match self.reserve(client, &payment, &request, answer_key).await {
            Ok(Ok(refund)) => refund,
            Ok(Err(refused)) => return Err(refused),
            Err(e) => return Err(PaymentError::from(e)),
        };
        let outcome = self.ask_provider(registry, &payment, &refund).await;
        match self.settle(&payment, &refund, &outcome, answer_key).await {
            Ok(None) => {}
            Ok(Some(settled)) => refund = settled,
            // The refund stands as PENDING, answered so under its key (never a failure that leaves
            // a retry open: that would free the key); the status worker settles it later.
            Err(e) => tracing::error!(error = %e, "could not record a refund's outcome"),
        }
        Ok(refund_body(&refund))
    }

    /// Takes up refunds left PENDING by requests that are gone (SECURITY.md #23, #33): asks their
    /// provider again under the same refund id and records the outcome. Each is claimed first (its
    /// `updated_at` moved by compare-and-set), so two workers never take up the same refund at once.
    /// Returns how many were settled.
    pub async fn resume_abandoned(&self) -> Result<usize, StorageError> {
        let now = self.clock.now_millis();
        let abandoned_before = now.saturating_sub(self.abandoned_after_millis);
        let claimed = self.db.claim_abandoned_refunds(abandoned_before, now, RESUME_BATCH).await?;
        let mut settled = 0;
        for refund in claimed {
            let Some(payment) = self.db.payment(&refund.transaction_id).await? else {
                tracing::error!(refund = refund.refund_id.as_str(), "a PENDING refund has no payment");
                continue;
            };
            let outcome = self.ask_provider(&self.registry.current(), &payment, &refund).await;
            if self.settle(&payment, &refund, &outcome, None).await?.is_some() {
                tracing::info!(refund = refund.refund_id.as_str(), "settled a refund its request left PENDING");
                settled += 1;
            }
        }
        Ok(settled)
    }

    /// Records the refund as PENDING, if the payment is PAYED and enough of it is left, with its
    /// event, audit entry and notification: all or nothing.
    async fn reserve(
        &self,
        client: &Client,
        payment: &PaymentRow,
        request: &RefundRequest,
        answer_key: Option<AnswerKey<'_>>,
    ) -> Result<Result<RefundRow, PaymentError>, StorageError> {
        let id = &payment.transaction_id;
        let mut tx = self.db.begin_write().await?;
        if let Err(status) = refunds::lock_paid_payment(&mut tx, id).await? {
            let status = status.map_or("", |s| s.as_str());
            return Ok(Err(PaymentError::wrong_status(format!(
                "The payment is {status}; only a PAYED payment can be refunded."
            ))));
        }
        let paid = payment.gros_amount;
        let refunded: Decimal = refunds::counted_amounts(&mut tx, id).await?.into_iter().sum();
        let left = paid - refunded;
        let amount = match request.amount {
            Some(amount) => amount.value(),
            None => left,
        };
        if left <= Decimal::ZERO || amount > left {
            let detail = format!(
                "amount: {} of {} paid is left to refund; the refunds may not add up to more than grosAmount.",
                with_cents(left),
                with_cents(paid)
            );
            return Ok(Err(PaymentError::rejected(FunctionalCode::CalculationError, detail)));
        }
        let now = self.clock.now_millis();
        let refund = RefundRow {
            refund_id: format!("rf_{}", crate::crypto::random_token()),
            transaction_id: id.clone(),
            amount: with_cents(amount),
            reason: request.reason.clone(),
            status: RefundStatus::Pending,
            status_detail: None,
            provider_reference: None,
            created_at: now,
            updated_at: now,
        };
        refunds::insert(&mut tx, &refund).await?;
        refunds::insert_event(&mut tx, &refund.refund_id, None, refund.status, None, now).await?;
        let details = json!({ "refund": refund.refund_id, "amount": refund.amount.to_string() });
        self.audit
            .append_in(&mut tx, AuditEvent::new("payment.refund_requested", client.id.as_str(), id, details))
            .await?;
        let payload = json!({
            "type": "payment.refunded",
            "timestamp": self.clock.now().to_rfc3339_opts(SecondsFormat::Millis, true),
            "data": {
                "transactionId": id,
                "originatorId": payment.originator_id,
                "endPointId": payment.endpoint_id,
                "requestId": payment.request_id,
                "refundId": refund.refund_id,
                "amount": refund_body(&refund)["amount"],
                "currency": "EUR",
            },
        });
        Notifier::enqueue_for_payment(&mut tx, client, payment, &payload, now).await?;
        self.store_answer_in(&mut tx, answer_key, &refund).await?;
        tx.commit().await.map_err(StorageError::from)?;
        Ok(Ok(refund))
    }

    /// Stores the API's answer for `refund` under the request's key, in the caller's transaction.
    async fn store_answer_in(
        &self,
        tx: &mut sqlx::AnyConnection,
        answer_key: Option<AnswerKey<'_>>,
        refund: &RefundRow,
    ) -> Result<(), StorageError> {
        let Some(AnswerKey { client_id, key }) = answer_key else {
            return Ok(());
        };
        let answer = self.answers.render_create(&Ok(refund_body(refund)));
        idempotency::store_response_in(tx, client_id, key, answer.status, &answer.body).await
    }

    /// Asks the payment's provider to pay the refund out (outside any transaction). Returns the new
    /// status, why it failed, and the provider's reference.
    async fn ask_provider(&self, registry: &Registry, payment: &PaymentRow, refund: &RefundRow) -> ProviderOutcome {
        let failed =
            |detail: String| ProviderOutcome { status: RefundStatus::Failed, detail: Some(detail), reference: None };
        let Some(provider) = registry.payment_provider(&payment.provider_id) else {
            return failed("the payment's provider is no longer registered".to_owned());
        };
        let Some(reference) = payment.provider_reference.as_deref() else {
            return failed("the payment has no provider reference".to_owned());
        };
        let Some(amount) = Amount::parse(refund.amount).ok() else {
            return failed("the refund amount is not valid".to_owned());
        };
        let adapter = match self.providers.adapter(provider.id.as_str()) {
            Ok(adapter) => adapter,
            Err(e) => return failed(e.to_string()),
        };
        let order = ProviderRefund {
            originator_id: &payment.originator_id,
            endpoint_id: &payment.endpoint_id,
            reference,
            refund_id: &refund.refund_id,
            amount,
            reason: refund.reason.as_deref(),
        };
        let outcome = |status, reference| ProviderOutcome { status, detail: None, reference };
        match adapter.refund(&order).await {
            Ok(refunded) => outcome(RefundStatus::Submitted, refunded.reference),
            Err(ProviderError::Unsupported(_)) => outcome(RefundStatus::Instruction, None),
            Err(e) => {
                tracing::warn!(provider = provider.id.as_str(), error = %e, "refund at the provider failed");
                failed(e.to_string())
            }
        }
    }

    /// Moves the refund from PENDING to its outcome with event and audit entry, and stores the
    /// settled refund as the answer under the request's key; `None` when it was no longer PENDING.
    /// A refund the provider accepted, or one the finance office now owes by hand, is booked
    /// (announced to [`PaymentBooks`]) in the same transaction; a failed one books nothing.
    async fn settle(
        &self,
        payment: &PaymentRow,
        refund: &RefundRow,
        outcome: &ProviderOutcome,
        answer_key: Option<AnswerKey<'_>>,
    ) -> Result<Option<RefundRow>, StorageError> {
        let now = self.clock.now_millis();
        let pending = RefundStatus::Pending;
        let (to, detail, reference) = (outcome.status, outcome.detail.as_deref(), outcome.reference.as_deref());
        let mut tx = self.db.begin_write().await?;
        if !refunds::compare_and_set_status(&mut tx, &refund.refund_id, pending, to, detail, reference, now).await? {
            return Ok(None);
        }
        refunds::insert_event(&mut tx, &refund.refund_id, Some(pending), to, detail, now).await?;
        let route = match to {
            RefundStatus::Submitted => Some(RefundRoute::Provider),
            RefundStatus::Instruction => Some(RefundRoute::Instruction),
            RefundStatus::Pending | RefundStatus::Failed => None,
        };
        if let Some(route) = route {
            let owed = OwedRefund {
                tenant_id: &payment.endpoint_id,
                transaction_id: &refund.transaction_id,
                refund_id: &refund.refund_id,
                amount: refund.amount,
                route,
                at: now,
            };
            self.books.refund_owed(&mut tx, &owed).await?;
        }
        let details = json!({ "refund": refund.refund_id, "status": to.as_str() });
        let event = AuditEvent::new("payment.refund_settled", "provider", &refund.transaction_id, details);
        self.audit.append_in(&mut tx, event).await?;
        let settled = RefundRow {
            status: to,
            status_detail: outcome.detail.clone(),
            provider_reference: outcome.reference.clone().or_else(|| refund.provider_reference.clone()),
            updated_at: now,
            ..refund.clone()
        };
        self.store_answer_in(&mut tx, answer_key, &settled).await?;
        tx.commit().await.map_err(StorageError::from)?;
        crate::telemetry::metrics::refund(&payment.provider_id, to.as_str());
        Ok(Some(settled))
    }
}

/// What the provider made of a refund: its new status, why it failed, the provider's reference.
struct ProviderOutcome {
    status: RefundStatus,
    detail: Option<String>,
    reference: Option<String>,
}

/// Two decimal places, as amounts are written (`12.5` → `12.50`).
fn with_cents(value: Decimal) -> Decimal {
    let mut cents = value;
    cents.rescale(2);
    cents
}

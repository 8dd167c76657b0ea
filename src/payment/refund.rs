//! Refunds of paid payments (pforte's extension; XBezahldienste v1.0.0 has none).
//!
//! Order (SECURITY.md #19): the refund is recorded as PENDING with its event, audit entry and the
//! `payment.refunded` notification in one write transaction, which also locks the payment and adds
//! up its refunds, so concurrent refunds can never pay back more than was paid. After the commit the
//! provider is asked; its answer moves the refund to SUBMITTED (accepted), INSTRUCTION (the provider
//! cannot refund: the finance office pays back by hand) or FAILED (refused: the amount is free again).

use std::sync::Arc;

use chrono::SecondsFormat;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{json, Value};

use super::answer::{AnswerRenderer, Created, PaymentEdge, Reply};
use super::api;
use super::books::{OwedRefund, PaymentBooks, RefundRoute};
use super::code::{FunctionalCode, PaymentError, ValidationFailure};
use super::idempotency::Idempotency;
use super::money::{optional_number, Amount};
use super::notify::Notifier;
use super::provider::{ProviderError, ProviderRefund, Providers};
use super::routes::PaymentRoutes;
use super::validate::decode_failure;
use crate::audit::{AuditEvent, AuditLog};
use crate::clock::SharedClock;
use crate::registry::{Client, Registry};
use crate::store::payments::PaymentRow;
use crate::store::refunds::{self, RefundRow};
use crate::store::{Database, StorageError};

/// The longest `reason`: what fits a bank statement line with room to spare.
pub(crate) const MAX_REASON_LENGTH: usize = 140;

pub(crate) use crate::model::RefundStatus;

/// A refund request that passed its checks. No amount means the whole remaining amount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RefundRequest {
    pub amount: Option<Amount>,
    pub reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct RefundInput {
    #[serde(default, deserialize_with = "optional_number")]
    amount: Option<Decimal>,
    reason: Option<String>,
}

/// Parses a refund body: empty, `{}`, or `{"amount": 12.5, "reason": "…"}`. The amount follows the
/// `grosAmount` rules (a JSON number read exactly, more than 0, at most two decimal places).
pub(crate) fn parse_refund_body(bytes: &[u8]) -> Result<RefundRequest, ValidationFailure> {
    let invalid = |detail: String, field: &str| {
        ValidationFailure::new(FunctionalCode::ValidationError, detail, Some(field.to_owned()))
    };
    let input = if bytes.trim_ascii().is_empty() {
        RefundInput::default()
    } else if bytes.trim_ascii_start().first() != Some(&b'{') {
        return Err(ValidationFailure::new(
            FunctionalCode::ValidationError,
            "The body must be empty or a JSON object with amount and reason.",
            None,
        ));
    } else {
        let mut deserializer = serde_json::Deserializer::from_slice(bytes);
        let input: RefundInput = serde_path_to_error::deserialize(&mut deserializer)
            .map_err(|error| decode_failure(error.inner(), &error.path().to_string()))?;
        deserializer.end().map_err(|error| decode_failure(&error, "."))?;
        input
    };
    let amount = match input.amount {
        Some(value) => Some(Amount::parse(value).map_err(|message| invalid(format!("amount {message}."), "amount"))?),
        None => None,
    };
    let reason = match input.reason {
        Some(reason) if reason.trim().is_empty() => return Err(invalid("reason must not be empty.".into(), "reason")),
        Some(reason) if reason.chars().count() > MAX_REASON_LENGTH => {
            return Err(invalid(format!("reason must be at most {MAX_REASON_LENGTH} characters."), "reason"))
        }
        Some(reason) if reason.chars().any(char::is_control) => {
            return Err(invalid("reason must be printable text without line breaks or tabs.".into(), "reason"))
        }
        reason => reason,
    };
    Ok(RefundRequest { amount, reason })
}

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
    registry: Arc<Registry>,
    audit: AuditLog,
    providers: Providers,
    books: Arc<dyn PaymentBooks>,
    routes: Arc<dyn PaymentRoutes>,
    answers: Arc<dyn AnswerRenderer>,
    clock: SharedClock,
    idempotency: Idempotency,
}

impl Refunds {
    pub fn new(
        db: Database,
        registry: Arc<Registry>,
        audit: AuditLog,
        providers: Providers,
        books: Arc<dyn PaymentBooks>,
        edge: PaymentEdge,
        clock: SharedClock,
    ) -> Self {
        let PaymentEdge { routes, answers } = edge;
        let idempotency = Idempotency::new(db.clone(), clock.clone());
        Refunds { db, registry, audit, providers, books, routes, answers, clock, idempotency }
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
        if let Err(error) = api::authorise(&self.registry, client, originator, endpoint) {
            return Reply::Fresh(Err(error));
        }
        let path = self.routes.refunds_path(originator, endpoint, transaction_id);
        let work = self.create_claimed(client, originator, endpoint, transaction_id, body);
        let keyed = api::Keyed { key: idempotency_key, created_stores_answer: false };
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
        api::authorise(&self.registry, client, originator, endpoint)?;
        api::find_payment(&self.db, originator, endpoint, transaction_id).await?;
        let rows = self.db.refunds_of(transaction_id).await?;
        Ok(json!({ "refunds": rows.iter().map(refund_body).collect::<Vec<_>>() }))
    }

    async fn create_claimed(
        &self,
        client: &Client,
        originator: &str,
        endpoint: &str,
        transaction_id: &str,
        body: &[u8],
    ) -> Created {
        let request = parse_refund_body(body)?;
        let payment = api::find_payment(&self.db, originator, endpoint, transaction_id).await?;
        let mut refund = match self.reserve(client, &payment, &request).await {
            Ok(Ok(refund)) => refund,
            Ok(Err(refused)) => return Err(refused),
            Err(e) => return Err(PaymentError::from(e)),
        };
        let (status, detail, reference) = self.ask_provider(&payment, &refund).await;
        match self.settle(&payment, &refund, status, detail.as_deref(), reference.as_deref()).await {
            Ok(false) => {}
            Ok(true) => {
                refund.status = status;
                refund.status_detail = detail;
                refund.provider_reference = reference.or(refund.provider_reference);
            }
            // The refund stands as PENDING (never a failure that leaves a retry open: that would free
            // the Idempotency-Key and let a retry refund twice); the finance office sees it open.
            Err(e) => tracing::error!(error = %e, "could not record a refund's outcome"),
        }
        Ok(refund_body(&refund))
    }

    /// Records the refund as PENDING, if the payment is PAYED and enough of it is left, with its
    /// event, audit entry and notification: all or nothing.
    async fn reserve(
        &self,
        client: &Client,
        payment: &PaymentRow,
        request: &RefundRequest,
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
        tx.commit().await.map_err(StorageError::from)?;
        Ok(Ok(refund))
    }

    /// Asks the payment's provider to pay the refund out (outside any transaction). Returns the new
    /// status, why it failed, and the provider's reference.
    async fn ask_provider(
        &self,
        payment: &PaymentRow,
        refund: &RefundRow,
    ) -> (RefundStatus, Option<String>, Option<String>) {
        let failed = |detail: String| (RefundStatus::Failed, Some(detail), None);
        let Some(provider) = self.registry.payment_provider(&payment.provider_id) else {
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
        match adapter.refund(&order).await {
            Ok(refunded) => (RefundStatus::Submitted, None, refunded.reference),
            Err(ProviderError::Unsupported(_)) => (RefundStatus::Instruction, None, None),
            Err(e) => {
                tracing::warn!(provider = provider.id.as_str(), error = %e, "refund at the provider failed");
                failed(e.to_string())
            }
        }
    }

    /// Moves the refund from PENDING to its outcome with event and audit entry; false when it was
    /// no longer PENDING. A refund the provider accepted, or one the finance office now owes by hand,
    /// is booked (announced to [`PaymentBooks`]) in the same transaction; a failed one books nothing.
    async fn settle(
        &self,
        payment: &PaymentRow,
        refund: &RefundRow,
        to: RefundStatus,
        detail: Option<&str>,
        reference: Option<&str>,
    ) -> Result<bool, StorageError> {
        let now = self.clock.now_millis();
        let pending = RefundStatus::Pending;
        let mut tx = self.db.begin_write().await?;
        if !refunds::compare_and_set_status(&mut tx, &refund.refund_id, pending, to, detail, reference, now).await? {
            return Ok(false);
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
        tx.commit().await.map_err(StorageError::from)?;
        Ok(true)
    }
}

/// Two decimal places, as amounts are written (`12.5` → `12.50`).
fn with_cents(value: Decimal) -> Decimal {
    let mut cents = value;
    cents.rescale(2);
    cents
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_body_or_object_refunds_the_rest_without_a_reason() {
        for body in [&b""[..], b"  ", b"{}"] {
            assert_eq!(parse_refund_body(body), Ok(RefundRequest { amount: None, reason: None }));
        }
    }

    #[test]
    fn the_amount_is_read_exactly_and_follows_the_gros_amount_rules() {
        let parsed = parse_refund_body(br#"{"amount": 12.5, "reason": "Antrag zurueckgezogen"}"#);
        assert_eq!(parsed.map(|r| r.amount.map(Amount::value)), Ok(Some(Decimal::new(125, 1))));
        for bad in [r#"{"amount": 0}"#, r#"{"amount": -1}"#, r#"{"amount": 1.005}"#, r#"{"amount": "5"}"#] {
            let failure = parse_refund_body(bad.as_bytes()).err();
            assert_eq!(failure.map(|f| f.code), Some(FunctionalCode::ValidationError), "{bad}");
        }
    }

    #[test]
    fn a_reason_is_short_printable_text() {
        let long = format!(r#"{{"reason": "{}"}}"#, "x".repeat(MAX_REASON_LENGTH + 1));
        for bad in [long.as_str(), r#"{"reason": "a\nb"}"#, r#"{"reason": " "}"#, "[1]", "{"] {
            assert!(parse_refund_body(bad.as_bytes()).is_err(), "{bad}");
        }
        let ok = format!(r#"{{"reason": "{}"}}"#, "ä".repeat(MAX_REASON_LENGTH));
        assert!(parse_refund_body(ok.as_bytes()).is_ok());
    }
}

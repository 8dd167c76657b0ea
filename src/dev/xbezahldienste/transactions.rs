//! The simulated XBezahldienste provider's memory: its transactions per instance, the rule that a
//! `requestId` is taken once per originator and endpoint, the tester's one decision per transaction
//! (with a Kassenzeichen when paid), and forgetting everything 24 hours after creation.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use chrono::{DateTime, Datelike, Utc};
use serde_json::Value;

use super::wire::{FunctionalCode, PaymentMethod, PaymentRequest, Refusal, Status};

/// How long a transaction is kept after its creation.
pub const RETENTION_SECS: i64 = 24 * 60 * 60;

/// One simulated provider instance: its transactions, in memory.
#[derive(Default)]
pub struct PaySimulator {
    store: Mutex<Store>,
}

#[derive(Default)]
struct Store {
    /// By transaction id.
    transactions: HashMap<String, Transaction>,
    /// (originatorId, endPointId, requestId) → transaction id, for PAYMENT_EXISTS.
    request_ids: HashMap<(String, String, String), String>,
    /// The last Kassenzeichen number handed out.
    last_reference: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct Transaction {
    pub originator_id: String,
    pub endpoint_id: String,
    /// The request body as received, echoed as `paymentRequest`.
    pub received: Value,
    pub request: PaymentRequest,
    pub created_at: DateTime<Utc>,
    pub status: Status,
    pub method: Option<PaymentMethod>,
    pub reference: Option<String>,
}

/// What the tester chose on the pay page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Pay(PaymentMethod),
    Cancel,
    Fail,
}

/// Why a decision was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecideError {
    Unknown,
    /// The transaction already has a final status (which one is given).
    Final(Status),
}

/// The data the pay page shows.
#[derive(Debug, Clone)]
pub struct PageView {
    pub endpoint_id: String,
    pub originator_id: String,
    pub status: Status,
    pub request: PaymentRequest,
}

impl PaySimulator {
    /// Creates a transaction, or refuses a second one with the same request id.
    pub(super) fn create(
        &self,
        originator_id: &str,
        endpoint_id: &str,
        received: Value,
        request: PaymentRequest,
        now: DateTime<Utc>,
    ) -> Result<(String, Transaction), Refusal> {
        let mut store = self.lock(now);
        let key = (originator_id.to_owned(), endpoint_id.to_owned(), request.request_id.clone());
        if store.request_ids.contains_key(&key) {
            return Err(Refusal::new(
                FunctionalCode::PaymentExists,
                "A payment transaction with this requestId already exists for this originatorId and endPointId.",
            ));
        }
        let transaction_id = crate::crypto::random_token();
        let transaction = Transaction {
            originator_id: key.0.clone(),
            endpoint_id: key.1.clone(),
            received,
            request,
            created_at: now,
            status: Status::Initial,
            method: None,
            reference: None,
        };
        store.request_ids.insert(key, transaction_id.clone());
        store.transactions.insert(transaction_id.clone(), transaction.clone());
        Ok((transaction_id, transaction))
    }

    /// The transaction, if it exists and belongs to this originator and endpoint.
    pub(super) fn read(
        &self,
        originator_id: &str,
        endpoint_id: &str,
        transaction_id: &str,
        now: DateTime<Utc>,
    ) -> Option<Transaction> {
        let store = self.lock(now);
        store
            .transactions
            .get(transaction_id)
            .filter(|t| t.originator_id == originator_id && t.endpoint_id == endpoint_id)
            .cloned()
    }

    /// What the pay page shows.
    pub fn view(&self, transaction_id: &str, now: DateTime<Utc>) -> Option<PageView> {
        let store = self.lock(now);
        store.transactions.get(transaction_id).map(|t| PageView {
            endpoint_id: t.endpoint_id.clone(),
            originator_id: t.originator_id.clone(),
            status: t.status,
            request: t.request.clone(),
        })
    }

    /// Sets the final status once; returns the redirect URL.
    pub fn decide(&self, transaction_id: &str, decision: Decision, now: DateTime<Utc>) -> Result<String, DecideError> {
        let mut store = self.lock(now);
        let next_reference = store.last_reference + 1;
        let transaction = store.transactions.get_mut(transaction_id).ok_or(DecideError::Unknown)?;
        if transaction.status.is_terminal() {
            return Err(DecideError::Final(transaction.status));
        }
        let mut used_reference = false;
        match decision {
            Decision::Pay(method) => {
                transaction.status = Status::Payed;
                transaction.method = Some(method);
                transaction.reference = Some(format!("KZ-{}-{next_reference:06}", now.year()));
                used_reference = true;
            }
            Decision::Cancel => transaction.status = Status::Canceled,
            Decision::Fail => transaction.status = Status::Failed,
        }
        let redirect_url = transaction.request.redirect_url.clone();
        if used_reference {
            store.last_reference = next_reference;
        }
        Ok(redirect_url)
    }

    /// The store, with transactions older than the retention period removed.
    fn lock(&self, now: DateTime<Utc>) -> std::sync::MutexGuard<'_, Store> {
        let mut store = self.store.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let before = store.transactions.len();
        store.transactions.retain(|_, t| (now - t.created_at).num_seconds() < RETENTION_SECS);
        if store.transactions.len() != before {
            let Store { transactions, request_ids, .. } = &mut *store;
            request_ids.retain(|_, id| transactions.contains_key(id));
        }
        store
    }
}

/// The simulator instances, one per base path.
#[derive(Default)]
pub struct PayProviders(BTreeMap<String, PaySimulator>);

impl PayProviders {
    pub fn new(paths: impl IntoIterator<Item = String>) -> PayProviders {
        PayProviders(paths.into_iter().map(|path| (path, PaySimulator::default())).collect())
    }

    pub fn get(&self, path: &str) -> Option<&PaySimulator> {
        self.0.get(path)
    }

    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dev::xbezahldienste::wire::parse_request;

    fn request() -> (Value, PaymentRequest) {
        let body = br#"{"requestId":"r1","requestTimestamp":"2026-01-01T10:00:00Z","currency":"EUR","grosAmount":12.00,
            "purpose":"Gebuehr","redirectUrl":"https://dienst.example/zurueck","items":[{"totalNetAmount":12.00}]}"#;
        let (request, received) = parse_request(body).unwrap();
        (received, request)
    }

    #[test]
    fn a_request_id_is_taken_once_per_originator_and_endpoint() {
        let sim = PaySimulator::default();
        let now = Utc::now();
        let (received, checked) = request();
        assert!(sim.create("o", "e", received.clone(), checked.clone(), now).is_ok());
        let again = sim.create("o", "e", received.clone(), checked.clone(), now).unwrap_err();
        assert_eq!(again.code, FunctionalCode::PaymentExists);
        assert!(sim.create("o", "other", received, checked, now).is_ok());
    }

    #[test]
    fn transactions_expire_after_a_day_and_free_their_request_id() {
        let sim = PaySimulator::default();
        let now = Utc::now();
        let (received, checked) = request();
        let (id, _) = sim.create("o", "e", received.clone(), checked.clone(), now).unwrap();
        let later = now + chrono::Duration::seconds(RETENTION_SECS);
        assert!(sim.read("o", "e", &id, later - chrono::Duration::seconds(1)).is_some());
        assert!(sim.read("o", "e", &id, later).is_none());
        assert!(sim.create("o", "e", received, checked, later).is_ok());
    }

    #[test]
    fn a_decision_is_taken_once_and_payment_gets_a_kassenzeichen() {
        let sim = PaySimulator::default();
        let now = Utc::now();
        let (received, checked) = request();
        let (id, _) = sim.create("o", "e", received, checked, now).unwrap();
        assert_eq!(
            sim.decide(&id, Decision::Pay(PaymentMethod::Giropay), now).unwrap(),
            "https://dienst.example/zurueck"
        );
        assert_eq!(sim.decide(&id, Decision::Cancel, now), Err(DecideError::Final(Status::Payed)));
        let transaction = sim.read("o", "e", &id, now).unwrap();
        assert_eq!(transaction.reference, Some(format!("KZ-{}-000001", now.year())));
        let body = super::super::transaction_body("http://x/dev/pay", &id, &transaction);
        assert!(body["paymentInformation"].get("transactionRedirectUrl").is_none());
        assert_eq!(body["paymentInformation"]["paymentMethod"], "GIROPAY");
        assert_eq!(sim.decide("nope", Decision::Fail, now), Err(DecideError::Unknown));
    }
}

//! The pmPayment peer under `/dev/pmpay`: a server speaking pmPayment's legacy form protocol (the
//! shared reference `xbezahldienste.md`, "pmPayment legacy"; its fields and signature in `protocol`),
//! so pforte's pmPayment adapter and its callback endpoint run against the protocol without a
//! contract with govconnect.
//!
//! - `POST /dev/pmpay/payment/secure` takes the signed create form and answers `{url, txid}`; a
//!   missing or wrong `hash` is refused with 401, a missing field with 400, a known `txid` with 409;
//! - `GET /dev/pmpay/payment/status/{ags}/{txid}` answers `{txid, status, amount, paymentMethod?,
//!   transactionReference?}`;
//! - `GET /dev/pmpay/page/{txid}` is the pay page; its form (`POST` to the same path) lets the tester
//!   pay, cancel or fail once, then POSTs the signed notify to the transaction's `notifyURL` and sends
//!   the browser to its `redirectURL`.
//!
//! The peer signs and checks with [`DEV_HMAC_KEY`]; a pmpayment provider file pointing here names it
//! as `hmac_key = "plain:…"` (development only). No authentication besides the signature. Everything
//! lives in memory and is forgotten 24 hours after creation; payer data is never logged.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Datelike, Utc};
use serde_json::{json, Value};

mod pages;
pub(crate) mod protocol;

use protocol::{read_form, sign, signed, status_code, CREATE_FIELDS, NOTIFY_FIELDS};

use super::xbezahldienste::pages as pay_pages;
use super::xbezahldienste::{
    html, location, DecideError, Decision, PaymentMethod, Status, OFFERED_METHODS, RETENTION_SECS,
};
use super::Context;

/// Where the peer is mounted.
pub const BASE_PATH: &str = "/dev/pmpay";

/// The key the peer shares with pforte's provider files that point at it. Development only.
pub const DEV_HMAC_KEY: &str = "pmpay-dev-hmac-key";

/// The longest `txid` the peer takes.
const MAX_TXID: usize = 64;

/// The peer's transactions, in memory.
#[derive(Default)]
pub struct PmPaySimulator {
    store: Mutex<Store>,
}

#[derive(Default)]
struct Store {
    transactions: HashMap<String, Transaction>,
    last_reference: u64,
}

/// One transaction as the create form described it, and what the tester decided.
#[derive(Debug, Clone)]
pub struct Transaction {
    pub ags: String,
    pub procedure: String,
    pub desc: String,
    pub amount_cents: i64,
    pub accounting_record: String,
    notify_url: String,
    redirect_url: String,
    created_at: DateTime<Utc>,
    pub status: Status,
    pub method: Option<PaymentMethod>,
    pub reference: Option<String>,
}

/// Why the peer refused a create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateError {
    /// Missing or wrong `hash`.
    Unauthenticated,
    Invalid(String),
    Exists,
}

/// The notify the peer owes pforte after a decision: a form for `notify_url`, then the browser goes
/// to `redirect_url`.
#[derive(Debug, Clone)]
pub struct Notice {
    pub notify_url: String,
    pub redirect_url: String,
    pub form: Vec<(&'static str, String)>,
}

impl PmPaySimulator {
    /// Checks the signed create form and keeps the transaction; returns its txid.
    pub fn create(&self, body: &[u8], now: DateTime<Utc>) -> Result<String, CreateError> {
        let form = read_form(body).map_err(CreateError::Invalid)?;
        let hash = form.get("hash").ok_or(CreateError::Unauthenticated)?;
        let values = CREATE_FIELDS.map(|field| form.get(field).map_or("", String::as_str));
        if !signed(DEV_HMAC_KEY.as_bytes(), &values, hash) {
            return Err(CreateError::Unauthenticated);
        }
        let [ags, amount, procedure, desc, accounting_record, txid, notify_url, redirect_url] = values;
        if let Some(missing) = CREATE_FIELDS.iter().zip(values).find(|(_, value)| value.is_empty()) {
            return Err(CreateError::Invalid(format!("{} is required", missing.0)));
        }
        let amount_cents = amount
            .parse::<i64>()
            .ok()
            .filter(|cents| *cents > 0)
            .ok_or_else(|| CreateError::Invalid("amount must be a positive number of cents".into()))?;
        if txid.len() > MAX_TXID {
            return Err(CreateError::Invalid(format!("txid has more than {MAX_TXID} characters")));
        }
        serde_json::from_str::<Vec<HashMap<String, String>>>(accounting_record)
            .map_err(|_| CreateError::Invalid("accountingRecord must be a JSON array of objects".into()))?;
        for (name, url) in [("notifyURL", notify_url), ("redirectURL", redirect_url)] {
            let scheme = url::Url::parse(url).map(|u| u.scheme().to_owned()).unwrap_or_default();
            if scheme != "http" && scheme != "https" {
                return Err(CreateError::Invalid(format!("{name} must be an http(s) URL")));
            }
        }
        let mut store = self.lock(now);
        if store.transactions.contains_key(txid) {
            return Err(CreateError::Exists);
        }
        let transaction = Transaction {
            ags: ags.to_owned(),
            procedure: procedure.to_owned(),
            desc: desc.to_owned(),
            amount_cents,
            accounting_record: accounting_record.to_owned(),
            notify_url: notify_url.to_owned(),
            redirect_url: redirect_url.to_owned(),
            created_at: now,
            status: Status::Initial,
            method: None,
            reference: None,
        };
        store.transactions.insert(txid.to_owned(), transaction);
        Ok(txid.to_owned())
    }

    pub fn transaction(&self, txid: &str, now: DateTime<Utc>) -> Option<Transaction> {
        self.lock(now).transactions.get(txid).cloned()
    }

    /// Sets the final status once and returns the signed notify that tells pforte. Sending it is the
    /// caller's business (tests decide without sending, to play the provider's network failing).
    pub fn decide(&self, txid: &str, decision: Decision, now: DateTime<Utc>) -> Result<Notice, DecideError> {
        let mut store = self.lock(now);
        let next_reference = store.last_reference + 1;
        let transaction = store.transactions.get_mut(txid).ok_or(DecideError::Unknown)?;
        if transaction.status.is_terminal() {
            return Err(DecideError::Final(transaction.status));
        }
        let paid = matches!(decision, Decision::Pay(_));
        match decision {
            Decision::Pay(method) => {
                transaction.status = Status::Payed;
                transaction.method = Some(method);
                transaction.reference = Some(format!("PM-{}-{next_reference:06}", now.year()));
            }
            Decision::Cancel => transaction.status = Status::Canceled,
            Decision::Fail => transaction.status = Status::Failed,
        }
        let values = [
            txid.to_owned(),
            transaction.ags.clone(),
            status_code(transaction.status).to_string(),
            transaction.amount_cents.to_string(),
            now.timestamp().to_string(),
            crate::crypto::random_token(),
        ];
        let hash = sign(DEV_HMAC_KEY.as_bytes(), &values.each_ref().map(String::as_str));
        let mut form: Vec<(&'static str, String)> = NOTIFY_FIELDS.into_iter().zip(values).collect();
        form.push(("hash", hash));
        let notice =
            Notice { notify_url: transaction.notify_url.clone(), redirect_url: transaction.redirect_url.clone(), form };
        if paid {
            store.last_reference = next_reference;
        }
        Ok(notice)
    }

    /// The store, with transactions older than the retention period removed.
    fn lock(&self, now: DateTime<Utc>) -> std::sync::MutexGuard<'_, Store> {
        let mut store = self.store.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        store.transactions.retain(|_, t| (now - t.created_at).num_seconds() < RETENTION_SECS);
        store
    }
}

/// The handlers' state.
#[derive(Clone)]
struct PeerState {
    peer: Arc<PmPaySimulator>,
    context: Context,
}

/// The peer's routes, relative to [`BASE_PATH`].
pub(crate) fn router(peer: Arc<PmPaySimulator>, context: Context) -> Router {
    Router::new()
        .route("/payment/secure", post(create))
        .route("/payment/status/{ags}/{txid}", get(status))
        .route("/page/{txid}", get(page).post(decide))
        .with_state(PeerState { peer, context })
}

fn page_url(state: &PeerState, txid: &str) -> String {
    format!("{}{BASE_PATH}/page/{txid}", state.context.issuer)
}

async fn create(State(state): State<PeerState>, body: Bytes) -> Response {
    match state.peer.create(&body, state.context.clock.now()) {
        Ok(txid) => json_response(StatusCode::OK, &json!({ "url": page_url(&state, &txid), "txid": txid })),
        Err(CreateError::Unauthenticated) => {
            refused(StatusCode::UNAUTHORIZED, "INVALID_HASH", "The hash is missing or does not match.")
        }
        Err(CreateError::Invalid(what)) => refused(StatusCode::BAD_REQUEST, "INVALID_REQUEST", &what),
        Err(CreateError::Exists) => refused(StatusCode::CONFLICT, "PAYMENT_EXISTS", "This txid is taken."),
    }
}

async fn status(State(state): State<PeerState>, Path((ags, txid)): Path<(String, String)>) -> Response {
    let transaction = state.peer.transaction(&txid, state.context.clock.now());
    let Some(transaction) = transaction.filter(|t| t.ags == ags) else {
        return refused(StatusCode::NOT_FOUND, "NOT_FOUND", "No such transaction for this ags.");
    };
    let mut body = json!({
        "txid": txid,
        "status": status_code(transaction.status),
        "amount": transaction.amount_cents,
    });
    if let Some(method) = &transaction.method {
        body["paymentMethod"] = json!(method.as_str());
    }
    if let Some(reference) = &transaction.reference {
        body["transactionReference"] = json!(reference);
    }
    json_response(StatusCode::OK, &body)
}

async fn page(State(state): State<PeerState>, Path(txid): Path<String>) -> Response {
    let Some(transaction) = state.peer.transaction(&txid, state.context.clock.now()) else {
        return html(StatusCode::NOT_FOUND, pay_pages::unknown(), None);
    };
    if transaction.status.is_terminal() {
        return html(StatusCode::OK, pay_pages::already_final(transaction.status), None);
    }
    let page = pages::pay(&transaction, &page_url(&state, &txid), None);
    html(StatusCode::OK, page, Some(&transaction.redirect_url))
}

async fn decide(State(state): State<PeerState>, Path(txid): Path<String>, body: Bytes) -> Response {
    let now = state.context.clock.now();
    let sim = &state.peer;
    let Some(transaction) = sim.transaction(&txid, now) else {
        return html(StatusCode::NOT_FOUND, pay_pages::unknown(), None);
    };
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let decision = match form.get("action").map(String::as_str) {
        Some("pay") => match form.get("method").and_then(|m| OFFERED_METHODS.iter().find(|o| o.as_str() == m)) {
            Some(method) => Decision::Pay(*method),
            None => return invalid_choice(&state, &txid, &transaction, "Bitte wählen Sie eine Zahlungsart."),
        },
        Some("cancel") => Decision::Cancel,
        Some("fail") => Decision::Fail,
        _ => {
            let message = "Bitte wählen Sie „Bezahlen“, „Abbrechen“ oder „Fehlschlag simulieren“.";
            return invalid_choice(&state, &txid, &transaction, message);
        }
    };
    let notice = match sim.decide(&txid, decision, now) {
        Ok(notice) => notice,
        Err(DecideError::Unknown) => return html(StatusCode::NOT_FOUND, pay_pages::unknown(), None),
        Err(DecideError::Final(status)) => return html(StatusCode::CONFLICT, pay_pages::already_final(status), None),
    };
    // The store's lock is released: pforte's callback handler reads the status back from this peer.
    notify(&state, &notice).await;
    match location(&notice.redirect_url) {
        Some(target) => (
            StatusCode::SEE_OTHER,
            [(header::CACHE_CONTROL, HeaderValue::from_static("no-store")), (header::LOCATION, target)],
        )
            .into_response(),
        None => html(StatusCode::OK, pay_pages::done(&notice.redirect_url), None),
    }
}

/// POSTs the notify once; a failure is only logged (pforte reads the status on the return page and
/// in its status worker anyway).
async fn notify(state: &PeerState, notice: &Notice) {
    let sent = state.context.http.post(&notice.notify_url).form(&notice.form).send().await;
    match sent {
        Ok(response) if response.status().is_success() => {}
        Ok(response) => tracing::warn!(status = response.status().as_u16(), "the pmPayment peer's notify was refused"),
        Err(_) => tracing::warn!("the pmPayment peer could not deliver its notify"),
    }
}

fn invalid_choice(state: &PeerState, txid: &str, transaction: &Transaction, message: &str) -> Response {
    let page = pages::pay(transaction, &page_url(state, txid), Some(message));
    html(StatusCode::BAD_REQUEST, page, Some(&transaction.redirect_url))
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (status, [(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
}

/// pmPayment's error shape: `{code, message}`.
fn refused(status: StatusCode, code: &str, message: &str) -> Response {
    json_response(status, &json!({ "code": code, "message": message }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed_create(txid: &str, key: &str) -> Vec<u8> {
        let values = ["09162000", "1200", "demo-service", "Gebuehr", "[{}]", txid, "http://x/n", "http://x/r"];
        let hash = sign(key.as_bytes(), &values);
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in CREATE_FIELDS.iter().zip(values) {
            form.append_pair(name, value);
        }
        form.append_pair("hash", &hash);
        form.finish().into_bytes()
    }

    #[test]
    fn a_create_signed_with_another_key_is_refused() {
        let sim = PmPaySimulator::default();
        assert_eq!(sim.create(&signed_create("t1", "wrong"), Utc::now()), Err(CreateError::Unauthenticated));
        assert_eq!(sim.create(&signed_create("t1", DEV_HMAC_KEY), Utc::now()), Ok("t1".to_owned()));
        assert_eq!(sim.create(&signed_create("t1", DEV_HMAC_KEY), Utc::now()), Err(CreateError::Exists));
    }

    #[test]
    fn a_decision_is_taken_once_and_its_notify_is_signed() {
        let sim = PmPaySimulator::default();
        let now = Utc::now();
        sim.create(&signed_create("t2", DEV_HMAC_KEY), now).unwrap();
        let notice = sim.decide("t2", Decision::Pay(PaymentMethod::Giropay), now).unwrap();
        let values: Vec<&str> = notice.form[..6].iter().map(|(_, v)| v.as_str()).collect();
        assert_eq!(values[..4], ["t2", "09162000", "1", "1200"]);
        assert!(signed(DEV_HMAC_KEY.as_bytes(), &values, &notice.form[6].1));
        assert!(matches!(sim.decide("t2", Decision::Cancel, now), Err(DecideError::Final(Status::Payed))));
        assert_eq!(sim.transaction("t2", now).unwrap().reference, Some(format!("PM-{}-000001", now.year())));
    }
}

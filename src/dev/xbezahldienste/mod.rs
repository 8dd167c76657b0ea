//! The simulated payment providers: each a real XBezahldienste v1.0.0 provider (the standard as
//! summarised in the shared reference `xbezahldienste.md`; its wire format in `wire`) under the base
//! URL of a registry entry of kind `simulator` (e.g. `{public_url}/dev/pay`, `/dev/pay-b`), so pforte's
//! provider adapter and any XBezahldienste client can be tried without a contract with a real provider.
//!
//! - `POST {base}/paymenttransaction/{originatorId}/{endPointId}` creates a transaction (201);
//! - `GET {base}/paymenttransaction/{originatorId}/{endPointId}/{transactionId}` reads it;
//! - `GET {base}/status/{originatorId}/{endPointId}` answers 200 for every well-formed pair;
//! - `GET {base}/page/{transactionId}` is the pay page, whose form (`POST` to the same path) lets the
//!   tester pay, cancel or fail the payment once, then sends the browser to the request's
//!   `redirectUrl` unchanged (the standard passes no parameters there).
//!
//! No authentication (the registry entries say `auth.method = "none"`). Everything lives in memory,
//! per instance, and is forgotten 24 hours after creation. Bodies and payer data are never logged.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use chrono::{DateTime, Datelike, SecondsFormat, Utc};
use serde_json::{json, Value};

pub mod pages;
pub mod wire;

use wire::{check_id, parse_request, FunctionalCode, PaymentRequest, Refusal};
pub use wire::{PaymentMethod, Status};

use super::Context;
use crate::registry::{PaymentProviderKind, Registry};

const PROBLEM_JSON: &str = "application/problem+json";

/// How long a transaction is kept after its creation.
pub const RETENTION_SECS: i64 = 24 * 60 * 60;

/// The methods the pay page offers, as the standard spells them.
pub const OFFERED_METHODS: [PaymentMethod; 4] = PaymentMethod::ALL;

/// The paths the identity simulators and the pmPayment peer use; a payment simulator may not take them.
const RESERVED: [&str; 3] = ["/dev/bundid", "/dev/unternehmenskonto", super::pmpayment::BASE_PATH];

/// The base paths (e.g. `/dev/pay`) of the registry's simulator entries that point at this pforte
/// under `/dev/`. Entries sharing a base URL share one instance.
pub fn base_paths(registry: &Registry, issuer: &str) -> BTreeSet<String> {
    registry
        .payment_providers()
        .filter(|provider| provider.kind == PaymentProviderKind::Simulator)
        .filter_map(|provider| {
            let path = provider.base_url.as_str().strip_prefix(issuer)?.trim_end_matches('/');
            mountable(path).then(|| path.to_owned())
        })
        .collect()
}

/// `/dev/` followed by plain segments, clear of the identity simulators.
fn mountable(path: &str) -> bool {
    let Some(rest) = path.strip_prefix("/dev/") else { return false };
    let plain = rest.split('/').all(|segment| {
        !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    });
    plain && !RESERVED.iter().any(|reserved| path == *reserved || path.starts_with(&format!("{reserved}/")))
}

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
struct Transaction {
    originator_id: String,
    endpoint_id: String,
    /// The request body as received, echoed as `paymentRequest`.
    received: Value,
    request: PaymentRequest,
    created_at: DateTime<Utc>,
    status: Status,
    method: Option<PaymentMethod>,
    reference: Option<String>,
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
    fn create(
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
    fn read(
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

/// Which instance a route belongs to: its base path.
#[derive(Clone)]
struct Base(std::sync::Arc<str>);

/// The handlers' state.
#[derive(Clone)]
struct PayState {
    providers: Arc<PayProviders>,
    context: Context,
}

/// The routes of every instance in `providers`.
pub(crate) fn router(providers: Arc<PayProviders>, context: Context) -> Router {
    let mut router = Router::new();
    for path in providers.paths() {
        let routes = Router::new()
            .route("/paymenttransaction/{originator_id}/{endpoint_id}", axum::routing::post(create))
            .route("/paymenttransaction/{originator_id}/{endpoint_id}/{transaction_id}", get(read))
            .route("/status/{originator_id}/{endpoint_id}", get(status))
            .route("/page/{transaction_id}", get(page).post(decide))
            .layer(Extension(Base(path.into())));
        router = router.nest(path, routes);
    }
    router.with_state(PayState { providers, context })
}

fn instance<'a>(state: &'a PayState, base: &Base) -> Option<&'a PaySimulator> {
    state.providers.get(&base.0)
}

fn base_url(state: &PayState, base: &Base) -> String {
    format!("{}{}", state.context.issuer, base.0)
}

async fn create(
    State(state): State<PayState>,
    Extension(base): Extension<Base>,
    Path((originator_id, endpoint_id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let Some(sim) = instance(&state, &base) else { return not_found() };
    let checked = check_ids(&originator_id, &endpoint_id).and_then(|()| parse_request(&body));
    let (request, received) = match checked {
        Ok(pair) => pair,
        Err(failure) => return problem(&failure),
    };
    let now = state.context.clock.now();
    match sim.create(&originator_id, &endpoint_id, received, request, now) {
        Ok((transaction_id, transaction)) => {
            let body = transaction_body(&base_url(&state, &base), &transaction_id, &transaction);
            let location =
                body["paymentInformation"]["transactionUrl"].as_str().and_then(|u| HeaderValue::from_str(u).ok());
            let mut response = json_response(StatusCode::CREATED, &body);
            if let Some(location) = location {
                response.headers_mut().insert(header::LOCATION, location);
            }
            response
        }
        Err(failure) => problem(&failure),
    }
}

async fn read(
    State(state): State<PayState>,
    Extension(base): Extension<Base>,
    Path((originator_id, endpoint_id, transaction_id)): Path<(String, String, String)>,
) -> Response {
    let Some(sim) = instance(&state, &base) else { return not_found() };
    match sim.read(&originator_id, &endpoint_id, &transaction_id, state.context.clock.now()) {
        Some(transaction) => {
            json_response(StatusCode::OK, &transaction_body(&base_url(&state, &base), &transaction_id, &transaction))
        }
        None => problem_response(
            StatusCode::NOT_FOUND,
            FunctionalCode::Unspecified,
            "There is no payment transaction with this transactionId for this originatorId and endPointId.",
        ),
    }
}

/// The standard's availability check: every well-formed pair is configured here.
async fn status(
    State(state): State<PayState>,
    Extension(base): Extension<Base>,
    Path((originator_id, endpoint_id)): Path<(String, String)>,
) -> Response {
    if instance(&state, &base).is_none() {
        return not_found();
    }
    match check_ids(&originator_id, &endpoint_id) {
        Ok(()) => (StatusCode::OK, [(header::CACHE_CONTROL, "no-store")]).into_response(),
        Err(failure) => problem(&failure),
    }
}

async fn page(
    State(state): State<PayState>,
    Extension(base): Extension<Base>,
    Path(transaction_id): Path<String>,
) -> Response {
    let Some(sim) = instance(&state, &base) else { return not_found() };
    let Some(view) = sim.view(&transaction_id, state.context.clock.now()) else { return unknown_page() };
    if view.status.is_terminal() {
        return html(StatusCode::OK, pages::already_final(view.status), None);
    }
    let action = format!("{}/page/{}", base_url(&state, &base), transaction_id);
    let page = pages::pay(&view, &action, None);
    html(StatusCode::OK, page, Some(&view.request.redirect_url))
}

async fn decide(
    State(state): State<PayState>,
    Extension(base): Extension<Base>,
    Path(transaction_id): Path<String>,
    body: Bytes,
) -> Response {
    let Some(sim) = instance(&state, &base) else { return not_found() };
    let now = state.context.clock.now();
    let Some(view) = sim.view(&transaction_id, now) else { return unknown_page() };
    if view.status.is_terminal() {
        return html(StatusCode::CONFLICT, pages::already_final(view.status), None);
    }
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let decision = match form.get("action").map(String::as_str) {
        Some("pay") => {
            match form.get("method").and_then(|m| OFFERED_METHODS.iter().find(|offered| offered.as_str() == m)) {
                Some(method) => Decision::Pay(*method),
                None => {
                    return invalid_choice(&state, &base, &transaction_id, &view, "Bitte wählen Sie eine Zahlungsart.")
                }
            }
        }
        Some("cancel") => Decision::Cancel,
        Some("fail") => Decision::Fail,
        _ => {
            let message = "Bitte wählen Sie „Bezahlen“, „Abbrechen“ oder „Fehlschlag simulieren“.";
            return invalid_choice(&state, &base, &transaction_id, &view, message);
        }
    };
    match sim.decide(&transaction_id, decision, now) {
        // The redirectUrl passed the standard's checks when the transaction was created.
        Ok(redirect_url) => match location(&redirect_url) {
            Some(location) => (
                StatusCode::SEE_OTHER,
                [(header::CACHE_CONTROL, HeaderValue::from_static("no-store")), (header::LOCATION, location)],
            )
                .into_response(),
            None => html(StatusCode::OK, pages::done(&redirect_url), None),
        },
        Err(DecideError::Unknown) => unknown_page(),
        Err(DecideError::Final(status)) => html(StatusCode::CONFLICT, pages::already_final(status), None),
    }
}

/// The redirectUrl exactly as sent; only one with characters a header cannot carry is written in
/// its percent-encoded form.
pub(super) fn location(redirect_url: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(redirect_url)
        .ok()
        .or_else(|| url::Url::parse(redirect_url).ok().and_then(|url| HeaderValue::from_str(url.as_str()).ok()))
}

fn invalid_choice(state: &PayState, base: &Base, transaction_id: &str, view: &PageView, message: &str) -> Response {
    let action = format!("{}/page/{}", base_url(state, base), transaction_id);
    html(StatusCode::BAD_REQUEST, pages::pay(view, &action, Some(message)), Some(&view.request.redirect_url))
}

fn check_ids(originator_id: &str, endpoint_id: &str) -> Result<(), Refusal> {
    check_id("originatorId", originator_id)?;
    check_id("endPointId", endpoint_id)
}

/// The standard's `PaymentTransaction`: the request as received and the payment's information.
fn transaction_body(base_url: &str, transaction_id: &str, transaction: &Transaction) -> Value {
    let mut information = json!({
        "transactionUrl": format!(
            "{base_url}/paymenttransaction/{}/{}/{transaction_id}",
            transaction.originator_id, transaction.endpoint_id
        ),
        "transactionId": transaction_id,
        // RFC 3339 with a `Z`, as providers write it.
        "transactionTimestamp": transaction.created_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        "status": transaction.status.as_str(),
    });
    // The pay page only while it can still be used; the Kassenzeichen and method once paid.
    if transaction.status == Status::Initial {
        information["transactionRedirectUrl"] = json!(format!("{base_url}/page/{transaction_id}"));
    }
    if let Some(reference) = &transaction.reference {
        information["transactionReference"] = json!(reference);
    }
    if let Some(method) = transaction.method {
        information["paymentMethod"] = json!(method.as_str());
    }
    json!({ "paymentRequest": transaction.received, "paymentInformation": information })
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (status, [(header::CACHE_CONTROL, "no-store")], axum::Json(body)).into_response()
}

fn problem(failure: &Refusal) -> Response {
    let status = StatusCode::from_u16(failure.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    problem_response(status, failure.code, &failure.detail)
}

fn problem_response(status: StatusCode, code: FunctionalCode, detail: &str) -> Response {
    let body = json!({
        "type": format!("urn:pforte:dev-pay:{}", code.as_str()),
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
        "functionalCode": code.as_str(),
    });
    let body = serde_json::to_vec(&body).unwrap_or_default();
    (status, [(header::CONTENT_TYPE, PROBLEM_JSON), (header::CACHE_CONTROL, "no-store")], body).into_response()
}

fn not_found() -> Response {
    problem_response(StatusCode::NOT_FOUND, FunctionalCode::Unspecified, "No resource at this path.")
}

fn unknown_page() -> Response {
    html(StatusCode::NOT_FOUND, pages::unknown(), None)
}

/// An HTML page. A pay page's form ends in a redirect to the online service, so its policy allows
/// that origin as a form target too (browsers apply `form-action` to the redirect).
pub(super) fn html(status: StatusCode, page: String, redirect_url: Option<&str>) -> Response {
    let mut response = (status, [(header::CACHE_CONTROL, "no-store")], Html(page)).into_response();
    let origin = redirect_url
        .and_then(|url| url::Url::parse(url).ok())
        .map(|url| url.origin())
        .filter(url::Origin::is_tuple)
        .map(|origin| origin.ascii_serialization());
    if let Some(origin) = origin {
        let policy = format!(
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self' {origin}; \
             frame-ancestors 'none'; base-uri 'none'"
        );
        if let Ok(value) = HeaderValue::from_str(&policy) {
            response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, value);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> (Value, PaymentRequest) {
        let body = br#"{"requestId":"r1","requestTimestamp":"2026-01-01T10:00:00Z","currency":"EUR","grosAmount":12.00,
            "purpose":"Gebuehr","redirectUrl":"https://dienst.example/zurueck","items":[{"totalNetAmount":12.00}]}"#;
        let (request, received) = parse_request(body).unwrap();
        (received, request)
    }

    #[test]
    fn mountable_paths_are_plain_and_under_dev() {
        assert!(mountable("/dev/pay"));
        assert!(mountable("/dev/pay-b"));
        assert!(!mountable("/pay"));
        assert!(!mountable("/dev/"));
        assert!(!mountable("/dev/{x}"));
        assert!(!mountable("/dev/bundid"));
        assert!(!mountable("/dev/bundid/pay"));
        assert!(!mountable("/dev/pmpay"), "the pmPayment peer's");
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
        let body = transaction_body("http://x/dev/pay", &id, &transaction);
        assert!(body["paymentInformation"].get("transactionRedirectUrl").is_none());
        assert_eq!(body["paymentInformation"]["paymentMethod"], "GIROPAY");
        assert_eq!(sim.decide("nope", Decision::Fail, now), Err(DecideError::Unknown));
    }
}

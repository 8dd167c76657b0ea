//! The demo online service's "Gebühr bezahlen" step: after login the citizen pays the fee for a
//! birth certificate at one of the service's authorities. The service does what a real one does,
//! over real HTTP against pforte's public URL: a `client_credentials` token with its own registered
//! secret, `POST /paymenttransaction/...` with an Idempotency-Key (a repeated form submission
//! replays the first answer instead of making a second payment), the browser to
//! `transactionRedirectUrl`, and on return the status read by GET. pforte's notifications arrive at
//! `/demo/notifications` (the demo client's `notification_url`); their Standard Webhooks signature is
//! checked with the registered secret (`webhook`) and the last ones are kept in memory to show. The
//! HTTP client side is in `pay_api`, the pages in `pay_pages`.

use std::collections::{HashMap, VecDeque};
use std::str::FromStr;
use std::sync::{Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use secrecy::SecretString;
use serde_json::{json, Value};

use super::pay_api::{unusable, Pforte};
use super::pay_pages as pages;
use super::webhook::{self, ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use super::{html, DemoState};
use crate::crypto::random_token;
use crate::dev::see_other;
/// Who is logged in at the demo service (after `/demo/callback`); lets them use the pay step.
pub(super) const SESSION_COOKIE: &str = "__Host-pforte-demo-session";
const SESSION_SECS: i64 = 1800;
/// Bounds on what the demo keeps in memory; beyond them it refuses or forgets the oldest.
const MAX_ENTRIES: usize = 10_000;
const KEPT_NOTIFICATIONS: usize = 100;
/// The fee: a birth certificate (Geburtsurkunde), 12,00 EUR.
pub(super) const FEE: &str = "12.00";

pub(super) fn routes() -> Router<DemoState> {
    Router::new()
        .route("/demo/pay", post(pay))
        .route("/demo/pay/return", get(back))
        .route("/demo/notifications", post(notification))
}

/// A payment the demo started: what it sent (so a repeat sends the same body with the same key) and
/// what pforte answered.
#[derive(Clone)]
pub(super) struct Order {
    key: String,
    /// The login session that made it: only it may send the application the payment is for.
    pub session: String,
    pub authority: String,
    body: Value,
    pub transaction_id: Option<String>,
}

/// A notification whose signature was valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Received {
    pub id: String,
    pub received_at: i64,
    pub event: String,
    pub transaction_id: String,
    pub status: String,
}

/// A completed login: when it ends, and the ID token pforte issued (for the login evidence).
struct Session {
    expires: i64,
    id_token: SecretString,
}

/// The demo service's memory: sessions, orders and the last notifications.
#[derive(Default)]
pub(super) struct DemoPayments {
    sessions: Mutex<HashMap<String, Session>>,
    orders: Mutex<HashMap<String, Order>>,
    notifications: Mutex<VecDeque<Received>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere cannot leave these maps half-updated in a way that matters to a demo.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl DemoPayments {
    /// A session for a completed login; `None` when there are too many.
    pub(super) fn start_session(&self, now: i64, id_token: SecretString) -> Option<String> {
        let mut sessions = lock(&self.sessions);
        sessions.retain(|_, session| session.expires > now);
        if sessions.len() >= MAX_ENTRIES {
            return None;
        }
        let id = random_token();
        sessions.insert(id.clone(), Session { expires: now + SESSION_SECS, id_token });
        Some(id)
    }

    fn logged_in(&self, id: &str, now: i64) -> bool {
        self.id_token(id, now).is_some()
    }

    /// The ID token of a session still running.
    pub(super) fn id_token(&self, id: &str, now: i64) -> Option<SecretString> {
        lock(&self.sessions).get(id).filter(|session| session.expires > now).map(|session| session.id_token.clone())
    }

    /// The order for this Idempotency-Key: the one already made, or a new one that `new` makes for
    /// its order id.
    fn order_for(&self, key: &str, new: impl FnOnce(&str) -> Order) -> Option<(String, Order)> {
        let mut orders = lock(&self.orders);
        if let Some((id, order)) = orders.iter().find(|(_, order)| order.key == key) {
            return Some((id.clone(), order.clone()));
        }
        if orders.len() >= MAX_ENTRIES {
            return None;
        }
        let id = random_token();
        let order = new(&id);
        orders.insert(id.clone(), order.clone());
        Some((id, order))
    }

    pub(super) fn order(&self, id: &str) -> Option<Order> {
        lock(&self.orders).get(id).cloned()
    }

    fn paying(&self, id: &str, transaction_id: &str) {
        if let Some(order) = lock(&self.orders).get_mut(id) {
            order.transaction_id = Some(transaction_id.to_owned());
        }
    }

    /// Keeps a verified notification once (delivery is at least once: repeats carry the same id).
    fn receive(&self, received: Received) {
        let mut kept = lock(&self.notifications);
        if kept.iter().any(|r| r.id == received.id) {
            return;
        }
        if kept.len() >= KEPT_NOTIFICATIONS {
            kept.pop_front();
        }
        kept.push_back(received);
    }

    pub(super) fn notifications_about(&self, transaction_id: &str) -> Vec<Received> {
        lock(&self.notifications).iter().filter(|r| r.transaction_id == transaction_id).cloned().collect()
    }
}

/// The pay form for the login result page, with a fresh Idempotency-Key.
pub(super) fn pay_form(state: &DemoState) -> String {
    pages::pay_form(&random_token(), authorities(state))
}

/// The demo client's authorities with their names and payment providers' names.
fn authorities(state: &DemoState) -> &[pages::Authority] {
    state.demo.client.as_ref().map_or(&[], |client| client.authorities.as_slice())
}

async fn pay(State(state): State<DemoState>, headers: HeaderMap, body: Bytes) -> Response {
    let memory = &state.demo.payments;
    let now = state.context.clock.now().timestamp();
    let Some(session) = super::login::cookie_named(&headers, SESSION_COOKIE).filter(|id| memory.logged_in(id, now))
    else {
        return page(StatusCode::FORBIDDEN, pages::failure("Bitte melden Sie sich zuerst beim Demo-Dienst an.", None));
    };
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let authority = form.get("authority").filter(|id| authorities(&state).iter().any(|a| &&a.id == id));
    let key = form.get("key").filter(|key| (20..=64).contains(&key.len()) && key.bytes().all(is_token_byte));
    let (Some(authority), Some(key)) = (authority, key) else {
        return page(StatusCode::BAD_REQUEST, pages::failure("Bitte wählen Sie eine Behörde aus.", None));
    };
    let issuer = &state.context.issuer;
    let Some((order_id, order)) = memory.order_for(key, |order_id| Order {
        key: key.clone(),
        session: session.clone(),
        authority: authority.clone(),
        body: payment_request(&format!("{issuer}/demo/pay/return?order={order_id}"), state.context.clock.now()),
        transaction_id: None,
    }) else {
        return page(StatusCode::SERVICE_UNAVAILABLE, pages::failure("Zu viele Zahlungen. Bitte später erneut.", None));
    };
    // The same key always goes with the same body: a repeat replays pforte's first answer.
    let created = match Pforte::connect(&state).await {
        Ok(pforte) => pforte.create(&order.authority, &order.key, &order.body).await,
        Err(failure) => Err(failure),
    };
    match created {
        Ok(transaction) => {
            let information = &transaction["paymentInformation"];
            let (Some(id), Some(pay_page)) =
                (information["transactionId"].as_str(), information["transactionRedirectUrl"].as_str())
            else {
                return unusable("the answer names no transactionId or transactionRedirectUrl");
            };
            if !pay_page.starts_with(&format!("{issuer}/")) {
                return unusable("the pay page is not at pforte");
            }
            memory.paying(&order_id, id);
            see_other(pay_page)
        }
        Err(failure) => failure.into_response(),
    }
}

/// The citizen is back from paying: the status as pforte's GET tells it, and the notifications.
async fn back(State(state): State<DemoState>, RawQuery(query): RawQuery) -> Response {
    let memory = &state.demo.payments;
    let order_id = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(name, _)| name == "order")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default();
    let Some(order) = memory.order(&order_id) else {
        return page(StatusCode::NOT_FOUND, pages::failure("Diese Zahlung kennt der Demo-Dienst nicht.", None));
    };
    let Some(transaction_id) = order.transaction_id.clone() else {
        return page(StatusCode::NOT_FOUND, pages::failure("Diese Zahlung wurde nicht angelegt.", None));
    };
    let read = match Pforte::connect(&state).await {
        Ok(pforte) => pforte.read(&order.authority, &transaction_id).await,
        Err(failure) => Err(failure),
    };
    let transaction = match read {
        Ok(transaction) => transaction,
        Err(failure) => return failure.into_response(),
    };
    let status = transaction["paymentInformation"]["status"].as_str().unwrap_or_default().to_owned();
    let next_step = if status == "PAYED" { super::antrag::form(&state, &order_id, &order) } else { String::new() };
    let view = pages::PaymentView {
        transaction_id: &transaction_id,
        authority: authorities(&state).iter().find(|a| a.id == order.authority).map_or("", |a| a.name.as_str()),
        status: &status,
        status_detail: transaction["paymentInformation"]["statusDetail"].as_str(),
        reload: &format!("/demo/pay/return?order={order_id}"),
        next_step: &next_step,
    };
    page(StatusCode::OK, pages::payment(&view, &memory.notifications_about(&transaction_id)))
}

/// pforte's notification: kept when the signature holds, refused with 400 otherwise.
async fn notification(State(state): State<DemoState>, headers: HeaderMap, body: Bytes) -> Response {
    let memory = &state.demo.payments;
    let secret = state.demo.client.as_ref().and_then(|c| c.notification_secret.as_ref());
    let Some(key) = secret.and_then(webhook::key) else {
        return refuse_notification(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the demo client has no usable notification_secret",
        );
    };
    let now = state.context.clock.now().timestamp();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let id = header(ID_HEADER);
    if let Err(e) = webhook::verify(&key, &id, &header(TIMESTAMP_HEADER), &header(SIGNATURE_HEADER), &body, now) {
        tracing::warn!(error = %e, "demo service: refused a notification");
        return refuse_notification(StatusCode::BAD_REQUEST, "the signature is not valid");
    }
    let Ok(payload) = serde_json::from_slice::<Value>(&body) else {
        return refuse_notification(StatusCode::BAD_REQUEST, "the body is not JSON");
    };
    let text = |value: &Value| value.as_str().unwrap_or_default().to_owned();
    memory.receive(Received {
        id,
        received_at: now,
        event: text(&payload["type"]),
        transaction_id: text(&payload["data"]["transactionId"]),
        status: text(&payload["data"]["status"]),
    });
    StatusCode::NO_CONTENT.into_response()
}

fn refuse_notification(status: StatusCode, reason: &str) -> Response {
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"))], reason.to_owned())
        .into_response()
}

/// The fee's payment request, in the standard's fields; amounts are exact JSON numbers.
fn payment_request(redirect_url: &str, now: chrono::DateTime<chrono::Utc>) -> Value {
    let fee = serde_json::Number::from_str(FEE).map(Value::Number).unwrap_or(Value::Null);
    // Unique per payment: 31 random characters of the standard's identifier alphabet.
    let request_id: String = format!("DEMO-{}", random_token().chars().take(31).collect::<String>());
    json!({
        "requestId": request_id,
        "requestTimestamp": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "currency": "EUR",
        "grosAmount": fee,
        "purpose": "Geburtsurkunde Demo",
        "description": "Geburtsurkunde, 1 Ausfertigung (Demo-Onlinedienst)",
        "redirectUrl": redirect_url,
        "items": [{
            "id": "1", "description": "Geburtsurkunde", "quantity": 1,
            "singleNetAmount": fee, "totalNetAmount": fee, "totalTaxAmount": 0,
        }],
    })
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

fn page(status: StatusCode, page: String) -> Response {
    html(status, page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fee_request_has_exact_amounts_and_a_request_id_of_the_standard() {
        let body = payment_request("http://localhost:8080/demo/pay/return?order=x", chrono::Utc::now());
        assert_eq!(body["grosAmount"].to_string(), "12.00");
        assert_eq!(body["items"][0]["totalNetAmount"].to_string(), "12.00");
        let request_id = body["requestId"].as_str().unwrap();
        assert!(request_id.len() <= 36 && request_id.bytes().all(is_token_byte), "{request_id}");
        // What the simulated XBezahldienste provider accepts.
        let parsed = crate::dev::xbezahldienste::wire::parse_request(body.to_string().as_bytes());
        assert!(parsed.is_ok(), "{parsed:?}");
    }

    #[test]
    fn a_repeated_key_gives_the_same_order_and_sessions_expire() {
        let memory = DemoPayments::default();
        let new = |authority: &str| Order {
            key: "k".into(),
            session: "s".into(),
            authority: authority.into(),
            body: json!({"n": 1}),
            transaction_id: None,
        };
        let (first, _) = memory.order_for("k", |_| new("09162000")).unwrap();
        let (again, order) = memory.order_for("k", |_| new("03241001")).unwrap();
        assert_eq!((first, order.authority.as_str()), (again, "09162000"));

        let session = memory.start_session(1000, SecretString::from("id-token")).unwrap();
        assert!(memory.logged_in(&session, 1000 + SESSION_SECS - 1));
        assert!(!memory.logged_in(&session, 1000 + SESSION_SECS));
        assert!(!memory.logged_in("forged", 1000));
    }

    #[test]
    fn a_notification_delivered_twice_is_kept_once_and_the_oldest_go_first() {
        let memory = DemoPayments::default();
        let received = |id: String| Received {
            id,
            received_at: 0,
            event: "payment.status_changed".into(),
            transaction_id: "T".into(),
            status: "PAYED".into(),
        };
        memory.receive(received("msg_1".into()));
        memory.receive(received("msg_1".into()));
        assert_eq!(memory.notifications_about("T").len(), 1);
        for n in 2..=KEPT_NOTIFICATIONS + 1 {
            memory.receive(received(format!("msg_{n}")));
        }
        let kept = memory.notifications_about("T");
        assert_eq!(kept.len(), KEPT_NOTIFICATIONS);
        assert_eq!(kept[0].id, "msg_2");
    }
}

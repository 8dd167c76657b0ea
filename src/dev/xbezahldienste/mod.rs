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

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use chrono::SecondsFormat;
use serde_json::{json, Value};

pub(crate) mod pages;
mod transactions;
pub(crate) mod wire;

use transactions::Transaction;
pub use transactions::{DecideError, Decision, PageView, PayProviders, PaySimulator, RETENTION_SECS};
use wire::{check_id, parse_request, FunctionalCode, Refusal};
pub use wire::{PaymentMethod, Status};

use super::Context;
use crate::registry::{PaymentProviderKind, Registry};

const PROBLEM_JSON: &str = "application/problem+json";

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
pub(super) fn transaction_body(base_url: &str, transaction_id: &str, transaction: &Transaction) -> Value {
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
    let origin = redirect_url
        .and_then(|url| url::Url::parse(url).ok())
        .map(|url| url.origin())
        .filter(url::Origin::is_tuple)
        .map(|origin| origin.ascii_serialization());
    crate::dev::html_leading_to(status, page, &origin.into_iter().collect::<Vec<_>>())
}

#[cfg(test)]
mod tests {
    use super::*;

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
}

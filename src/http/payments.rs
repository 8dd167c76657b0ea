//! The XBezahldienste payment API for online services, and the citizen's way to the provider's pay
//! page and back. Authentication: a Bearer token from pforte's token endpoint (`client_credentials`,
//! scope `payment`) or HTTP Basic with the client's credentials for legacy clients.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

use super::error::{ApiError, ErrorCode as ApiErrorCode};
use super::oidc::pages::{self, Lang};
use super::oidc::see_other;
use crate::http::state::AppState;
use crate::identity::client_auth::ClientCredentials;
use crate::identity::oauth::{ErrorCode as OAuthErrorCode, OAuthError};
use crate::payment::routes::PaymentRoutes;
use crate::payment::{AnswerRenderer, Created, ErrorKind, FunctionalCode, PaymentError, Reply, StoredAnswer};
use crate::registry::{Client, Registry};

const TRANSACTIONS: &str = "/paymenttransaction/{originator}/{endpoint}";
const TRANSACTION: &str = "/paymenttransaction/{originator}/{endpoint}/{transaction}";
const CANCEL: &str = "/paymenttransaction/{originator}/{endpoint}/{transaction}/cancel";
const REFUNDS: &str = "/paymenttransaction/{originator}/{endpoint}/{transaction}/refunds";
const STATUS: &str = "/status/{originator}/{endpoint}";
const PAY: &str = "/pay/{transaction}";
const PAY_RETURN: &str = "/pay/{transaction}/return";

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(TRANSACTIONS, post(create))
        .route(TRANSACTION, get(read))
        .route(CANCEL, post(cancel))
        .route(REFUNDS, post(refund).get(refunds))
        .route(STATUS, get(status))
        .route(PAY, get(pay))
        .route(PAY_RETURN, get(back_from_provider))
}

/// The payment routes above (and the provider callback route) as the payment domain names them,
/// under the public URL `issuer`; `app` hands this to the payment services.
#[derive(Debug, Clone)]
pub(crate) struct Routes {
    issuer: String,
}

impl Routes {
    pub(crate) fn new(issuer: impl Into<String>) -> Routes {
        Routes { issuer: issuer.into() }
    }

    fn url(&self, template: &str, values: &[&str]) -> String {
        format!("{}{}", self.issuer, fill(template, values))
    }
}

impl PaymentRoutes for Routes {
    fn create_path(&self, originator: &str, endpoint: &str) -> String {
        fill(TRANSACTIONS, &[originator, endpoint])
    }

    fn refunds_path(&self, originator: &str, endpoint: &str, transaction_id: &str) -> String {
        fill(REFUNDS, &[originator, endpoint, transaction_id])
    }

    fn transaction_url(&self, originator: &str, endpoint: &str, transaction_id: &str) -> String {
        self.url(TRANSACTION, &[originator, endpoint, transaction_id])
    }

    fn pay_url(&self, transaction_id: &str) -> String {
        self.url(PAY, &[transaction_id])
    }

    fn provider_return_url(&self, transaction_id: &str) -> String {
        self.url(PAY_RETURN, &[transaction_id])
    }

    fn provider_callback_url(&self, provider_id: &str) -> String {
        self.url(super::callbacks::PROVIDER_CALLBACK, &[provider_id])
    }
}

/// `template` with its `{…}` segments replaced by `values`, in order (as they came, not encoded).
fn fill(template: &str, values: &[&str]) -> String {
    let mut values = values.iter();
    template
        .split('/')
        .map(|segment| if segment.starts_with('{') { values.next().copied().unwrap_or_default() } else { segment })
        .collect::<Vec<_>>()
        .join("/")
}

/// How this edge answers the payment API: each kind of domain failure has its status and a
/// problem+json body with its `functionalCode`. `app` hands it to the payment services, which store
/// a create's answer, rendered here, under its Idempotency-Key.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Answers;

impl AnswerRenderer for Answers {
    fn render_create(&self, outcome: &Created) -> StoredAnswer {
        let (status, body) = match outcome {
            Ok(created) => (StatusCode::CREATED, created.clone()),
            Err(error) => (failure_status(error), problem_body(error.code, failure_status(error), &error.detail)),
        };
        StoredAnswer { status: status.as_u16(), body: body.to_string() }
    }
}

/// The status of a domain failure: a refusal carries the one its `functionalCode` implies.
fn failure_status(error: &PaymentError) -> StatusCode {
    match error.kind {
        ErrorKind::Rejected | ErrorKind::ProviderRefused => code_status(error.code),
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::WrongStatus | ErrorKind::InProgress => StatusCode::CONFLICT,
        ErrorKind::Unavailable | ErrorKind::Recording => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The status a problem with this `functionalCode` carries, by XBezahldienste.
fn code_status(code: FunctionalCode) -> StatusCode {
    match code {
        FunctionalCode::ValidationError | FunctionalCode::CalculationError | FunctionalCode::BookingDataMissing => {
            StatusCode::BAD_REQUEST
        }
        FunctionalCode::Forbidden | FunctionalCode::NoValidOriginatorOrEndpoint => StatusCode::FORBIDDEN,
        FunctionalCode::PaymentExists => StatusCode::CONFLICT,
        FunctionalCode::Unspecified => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn problem_body(code: FunctionalCode, status: StatusCode, detail: &str) -> Value {
    json!({
        "type": format!("urn:pforte:payment:{}", code.as_str()),
        "title": code.as_str(),
        "status": status.as_u16(),
        "detail": detail,
        "functionalCode": code.as_str(),
    })
}

fn send(status: StatusCode, body: String) -> Response {
    let content_type = if status.as_u16() >= 400 { "application/problem+json" } else { "application/json" };
    let mut response = (status, body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer, Basic realm=\"pforte\""));
    }
    response
}

fn refused(error: &PaymentError) -> Response {
    let status = failure_status(error);
    send(status, problem_body(error.code, status, &error.detail).to_string())
}

/// A read or an action: 200 with the body, or the failure.
fn answer(result: Result<Value, PaymentError>) -> Response {
    match result {
        Ok(body) => send(StatusCode::OK, body.to_string()),
        Err(error) => refused(&error),
    }
}

/// A create: rendered as it is stored under an Idempotency-Key; a replay is sent as it was stored.
fn reply(reply: Reply) -> Response {
    let stored = match reply {
        Reply::Fresh(created) => Answers.render_create(&created),
        Reply::Replayed(stored) => stored,
    };
    send(StatusCode::from_u16(stored.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), stored.body)
}

/// The calling online service, from a Bearer token with scope `payment` or from Basic credentials.
/// 401 only when the credentials were checked and are wrong: credentials that could not be checked
/// (the database is away) are answered 503, so a client retries instead of dropping its token.
/// `registry` is the request's snapshot of the registry (see `registry::SharedRegistry`).
async fn caller<'r>(state: &AppState, registry: &'r Registry, headers: &HeaderMap) -> Result<&'r Client, Response> {
    let unauthorized = || {
        let status = StatusCode::UNAUTHORIZED;
        send(status, problem_body(FunctionalCode::Forbidden, status, "Missing or invalid credentials.").to_string())
    };
    let not_checked = |error: OAuthError| match error.error {
        OAuthErrorCode::TemporarilyUnavailable => refused(&PaymentError::unavailable(error.description)),
        OAuthErrorCode::ServerError => {
            refused(&PaymentError::new(ErrorKind::Internal, FunctionalCode::Unspecified, error.description))
        }
        _ => unauthorized(),
    };
    let value = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).ok_or_else(unauthorized)?;
    if value.len() > 7 && value[..7].eq_ignore_ascii_case("bearer ") {
        let token =
            state.tokens.verify_access_token(value[7..].trim()).await.map_err(|e| not_checked(OAuthError::from(e)))?;
        if !token.scope.split(' ').any(|s| s == "payment") || token.identity.is_some() {
            return Err(unauthorized());
        }
        return registry.client(&token.client_id).ok_or_else(unauthorized);
    }
    let credentials: ClientCredentials =
        super::oidc::client_credentials(headers, &Default::default()).map_err(|_| unauthorized())?;
    if credentials.basic.is_none() {
        return Err(unauthorized());
    }
    state.client_auth.authenticate(registry, &credentials).await.map_err(not_checked)
}

async fn create(
    State(state): State<AppState>,
    Path((originator, endpoint)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let registry = state.registry.current();
    let client = match caller(&state, &registry, &headers).await {
        Ok(client) => client,
        Err(response) => return response,
    };
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok());
    reply(state.payments.create(client, &originator, &endpoint, &body, key).await)
}

async fn read(
    State(state): State<AppState>,
    Path((originator, endpoint, transaction)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let registry = state.registry.current();
    match caller(&state, &registry, &headers).await {
        Ok(client) => answer(state.payments.read(client, &originator, &endpoint, &transaction).await),
        Err(response) => response,
    }
}

/// The body may be empty or `{}`; anything else is refused, as the cancel takes no parameters.
async fn cancel(
    State(state): State<AppState>,
    Path((originator, endpoint, transaction)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let registry = state.registry.current();
    let client = match caller(&state, &registry, &headers).await {
        Ok(client) => client,
        Err(response) => return response,
    };
    let empty = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&body).is_ok_and(|m| m.is_empty());
    if !body.trim_ascii().is_empty() && !empty {
        let detail = "A cancel takes no parameters: send no body or {}.";
        return refused(&PaymentError::rejected(FunctionalCode::ValidationError, detail));
    }
    answer(state.payments.cancel(client, &originator, &endpoint, &transaction).await)
}

async fn refund(
    State(state): State<AppState>,
    Path((originator, endpoint, transaction)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let registry = state.registry.current();
    let client = match caller(&state, &registry, &headers).await {
        Ok(client) => client,
        Err(response) => return response,
    };
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok());
    reply(state.refunds.create(client, &originator, &endpoint, &transaction, &body, key).await)
}

async fn refunds(
    State(state): State<AppState>,
    Path((originator, endpoint, transaction)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let registry = state.registry.current();
    match caller(&state, &registry, &headers).await {
        Ok(client) => answer(state.refunds.list(client, &originator, &endpoint, &transaction).await),
        Err(response) => response,
    }
}

async fn status(
    State(state): State<AppState>,
    Path((originator, endpoint)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let registry = state.registry.current();
    match caller(&state, &registry, &headers).await {
        Ok(client) => answer(state.payments.status(client, &originator, &endpoint)),
        Err(response) => response,
    }
}

/// The citizen's pay link: on to the provider's pay page (or back to the service once final).
async fn pay(State(state): State<AppState>, Path(transaction): Path<String>, headers: HeaderMap) -> Response {
    citizen_redirect(state.payments.pay_target(&transaction).await, &headers)
}

/// The citizen is back from the provider: on to the service.
async fn back_from_provider(
    State(state): State<AppState>,
    Path(transaction): Path<String>,
    headers: HeaderMap,
) -> Response {
    citizen_redirect(state.payments.provider_return(&transaction).await, &headers)
}

/// The German or the English text, for pages.
fn say(lang: Lang, de: &'static str, en: &'static str) -> &'static str {
    if lang == Lang::En {
        en
    } else {
        de
    }
}

/// A browser is sent on; or no such payment (404); or a page saying pforte is briefly unavailable
/// (503: the citizen may reload the same link shortly).
fn citizen_redirect(target: Result<Option<String>, PaymentError>, headers: &HeaderMap) -> Response {
    let lang = Lang::pick(None, headers);
    match target {
        Ok(Some(target)) => see_other(&target),
        Ok(None) => ApiError::new(ApiErrorCode::NotFound, "No such payment.").into_response(),
        Err(error) if error.kind == ErrorKind::Unavailable => pages::error(
            lang,
            StatusCode::SERVICE_UNAVAILABLE,
            say(lang, "Kurz nicht erreichbar", "Briefly unavailable"),
            say(
                lang,
                "Der Dienst ist gerade kurz nicht erreichbar. Bitte laden Sie die Seite in einigen Sekunden neu.",
                "The service is briefly unavailable. Please reload this page in a few seconds.",
            ),
            None,
        ),
        Err(_) => pages::error(
            lang,
            StatusCode::INTERNAL_SERVER_ERROR,
            say(lang, "Fehler", "Error"),
            say(lang, "Die Zahlung konnte nicht geöffnet werden.", "The payment could not be opened."),
            None,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_domain_gets_the_routes_the_router_serves() {
        let routes = Routes::new("https://pforte.example");
        assert_eq!(routes.create_path("svc", "09162000"), "/paymenttransaction/svc/09162000");
        assert_eq!(routes.refunds_path("svc", "09162000", "tx"), "/paymenttransaction/svc/09162000/tx/refunds");
        assert_eq!(
            routes.transaction_url("svc", "09162000", "tx"),
            "https://pforte.example/paymenttransaction/svc/09162000/tx"
        );
        assert_eq!(routes.pay_url("tx"), "https://pforte.example/pay/tx");
        assert_eq!(routes.provider_return_url("tx"), "https://pforte.example/pay/tx/return");
        assert_eq!(routes.provider_callback_url("sim-pay"), "https://pforte.example/callbacks/payment/sim-pay");
    }

    #[test]
    fn each_kind_of_failure_has_its_status_and_a_problem_body_with_its_functional_code() {
        use FunctionalCode::*;
        let cases = [
            (PaymentError::rejected(ValidationError, "d"), 400),
            (PaymentError::rejected(CalculationError, "d"), 400),
            (PaymentError::rejected(BookingDataMissing, "d"), 400),
            (PaymentError::rejected(Forbidden, "d"), 403),
            (PaymentError::rejected(NoValidOriginatorOrEndpoint, "d"), 403),
            (PaymentError::rejected(PaymentExists, "d"), 409),
            (PaymentError::new(ErrorKind::ProviderRefused, CalculationError, "d"), 400),
            (PaymentError::new(ErrorKind::ProviderRefused, Unspecified, "d"), 500),
            (PaymentError::not_found(), 404),
            (PaymentError::wrong_status("d"), 409),
            (PaymentError::new(ErrorKind::InProgress, Unspecified, "d"), 409),
            (PaymentError::unavailable("d"), 503),
            (PaymentError::new(ErrorKind::Recording, Unspecified, "d"), 503),
            (PaymentError::internal(&"cause"), 500),
        ];
        for (error, status) in cases {
            let stored = Answers.render_create(&Err(error.clone()));
            assert_eq!(stored.status, status, "{error}");
            let body: Value = serde_json::from_str(&stored.body).expect("json");
            let code = error.code.as_str();
            let expected = json!({
                "type": format!("urn:pforte:payment:{code}"),
                "title": code,
                "status": status,
                "detail": error.detail,
                "functionalCode": code,
            });
            assert_eq!(body, expected, "{error}");
        }
    }

    #[test]
    fn answers_are_rendered_byte_for_byte_as_before() {
        let not_found = Answers.render_create(&Err(PaymentError::not_found()));
        let expected = r#"{"type":"urn:pforte:payment:UNSPECIFIED","title":"UNSPECIFIED","status":404,"detail":"No such transaction.","functionalCode":"UNSPECIFIED"}"#;
        assert_eq!(not_found.body, expected);
        let body = r#"{"paymentRequest":{"grosAmount":12.30}}"#.to_owned();
        let created = Answers.render_create(&Ok(serde_json::from_str(&body).expect("json")));
        assert_eq!(created, StoredAnswer { status: 201, body });
    }
}

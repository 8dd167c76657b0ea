//! The XBezahldienste adapter towards payment providers, against an in-test provider: what it sends,
//! how it reads answers, and how it fails (down, 5xx, garbage, refusal, hanging) — always with a
//! clear error and within the provider's timeout.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use pforte::payment::provider::{adapter_for, NewProviderPayment, ProviderError};
use pforte::payment::{parse_request_body, PaymentMethod, PaymentRequest, Status};
use pforte::registry::{EntityId, HttpUrl, PaymentAuth, PaymentProvider, PaymentProviderKind};
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::helpers::TestResult;

const REQUEST: &str = r#"{
    "requestId": "GEB-2024-000123", "requestTimestamp": "2024-05-02T10:15:00+02:00", "currency": "EUR",
    "grosAmount": 12.00, "purpose": "Geburtsurkunde 000123", "redirectUrl": "http://127.0.0.1:9/pay/return",
    "items": [{ "totalNetAmount": 12.00, "bookingData": { "Haushaltsstelle": "1.3400.110000" } }]
}"#;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Normal,
    ServerError,
    Garbage,
    Exists,
    Hang,
}

#[derive(Clone)]
struct Provider {
    mode: Arc<Mutex<Mode>>,
    seen: Arc<Mutex<Vec<(HeaderMap, Value)>>>,
    tokens: Arc<AtomicUsize>,
    base: String,
}

async fn create(
    State(p): State<Provider>,
    Path((o, e)): Path<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let mode = *p.mode.lock().expect("mode");
    p.seen.lock().expect("seen").push((headers, body.clone()));
    match mode {
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            StatusCode::OK.into_response()
        }
        Mode::ServerError => StatusCode::BAD_GATEWAY.into_response(),
        Mode::Garbage => (StatusCode::CREATED, "<html>maintenance</html>").into_response(),
        Mode::Exists => (
            StatusCode::CONFLICT,
            [("content-type", "application/problem+json")],
            json!({ "type": "about:blank", "title": "exists", "status": 409, "detail": "requestId used", "functionalCode": "PAYMENT_EXISTS" }).to_string(),
        )
            .into_response(),
        Mode::Normal => {
            let info = json!({
                "transactionUrl": format!("{}/paymenttransaction/{o}/{e}/tx-1", p.base),
                "transactionRedirectUrl": format!("{}/page/tx-1", p.base),
                "transactionId": "tx-1",
                "status": "INITIAL"
            });
            (StatusCode::CREATED, Json(json!({ "paymentRequest": body, "paymentInformation": info }))).into_response()
        }
    }
}

async fn read(State(p): State<Provider>, Path((o, e, id)): Path<(String, String, String)>) -> Response {
    let info = json!({
        "transactionUrl": format!("{}/paymenttransaction/{o}/{e}/{id}", p.base),
        "transactionId": id,
        "transactionReference": "KZ-2026-000123",
        "paymentMethod": "PAYPAL",
        "status": "PAYED"
    });
    // The request echoed as a provider keeps it: its amount is the one the read reports.
    let request: Value = serde_json::from_str(r#"{"grosAmount": 12.30}"#).unwrap_or_default();
    Json(json!({ "paymentRequest": request, "paymentInformation": info })).into_response()
}

async fn token(State(p): State<Provider>) -> Json<Value> {
    p.tokens.fetch_add(1, Ordering::SeqCst);
    Json(json!({ "access_token": "provider-token", "token_type": "Bearer", "expires_in": 300 }))
}

async fn start() -> anyhow::Result<Provider> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://127.0.0.1:{}/api", listener.local_addr()?.port());
    let provider =
        Provider { mode: Arc::new(Mutex::new(Mode::Normal)), seen: Arc::default(), tokens: Arc::default(), base };
    let router = Router::new()
        .route("/api/paymenttransaction/{o}/{e}", post(create))
        .route("/api/paymenttransaction/{o}/{e}/{id}", get(read))
        .route("/token", post(token))
        .with_state(provider.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(provider)
}

fn entry(base: &str, auth: PaymentAuth, timeout_secs: u64) -> anyhow::Result<PaymentProvider> {
    Ok(PaymentProvider {
        id: EntityId::parse("mock-pay").map_err(anyhow::Error::msg)?,
        kind: PaymentProviderKind::XBezahldienste,
        display_name: "Mock".into(),
        base_url: HttpUrl::parse(base).map_err(anyhow::Error::msg)?,
        auth,
        timeout: Duration::from_secs(timeout_secs),
        hmac_key: None,
        settlement: None,
    })
}

fn payment(request: &PaymentRequest) -> NewProviderPayment<'_> {
    NewProviderPayment {
        originator_id: "demo-service",
        endpoint_id: "09162000",
        request,
        transaction_id: "pforte-tx-1",
        callback_url: "http://127.0.0.1:9/callbacks/payment/mock-pay",
    }
}

fn basic() -> PaymentAuth {
    PaymentAuth::Basic { username: "pforte".into(), password: SecretString::from("provider-pass".to_owned()) }
}

pub async fn creation_sends_the_standard_request_and_returns_the_pay_page() -> TestResult {
    let provider = start().await?;
    let adapter = adapter_for(&entry(&provider.base, basic(), 5)?, &pforte::http_client::outbound_client()?)?;
    let request = parse_request_body(REQUEST.as_bytes()).map_err(|f| anyhow::anyhow!(f.detail))?;
    let payment = payment(&request);
    let created = adapter.create(&payment).await?;
    assert_eq!(created.reference, "tx-1");
    assert_eq!(created.pay_url, format!("{}/page/tx-1", provider.base));
    let (headers, body) = provider.seen.lock().map(|s| s[0].clone()).map_err(|_| anyhow::anyhow!("lock"))?;
    assert!(headers["authorization"].to_str()?.starts_with("Basic "));
    assert_eq!(body["grosAmount"].to_string(), "12.00", "an exact JSON number");
    assert_eq!(body["items"][0]["bookingData"]["Haushaltsstelle"], "1.3400.110000");

    let state = adapter.status("demo-service", "09162000", "tx-1").await?;
    assert_eq!(state.status, Status::Payed);
    assert_eq!(state.payment_method, Some(PaymentMethod::PayPal));
    assert_eq!(state.transaction_reference.as_deref(), Some("KZ-2026-000123"));
    assert_eq!(state.amount, Some(rust_decimal::Decimal::new(1230, 2)), "the echoed grosAmount, exactly");
    Ok(())
}
plain_test!(creation_sends_the_standard_request_and_returns_the_pay_page);

pub async fn provider_failures_become_clear_errors_within_the_timeout() -> TestResult {
    let provider = start().await?;
    let adapter = adapter_for(&entry(&provider.base, PaymentAuth::None, 1)?, &pforte::http_client::outbound_client()?)?;
    let request = parse_request_body(REQUEST.as_bytes()).map_err(|f| anyhow::anyhow!(f.detail))?;
    let payment = payment(&request);
    let cases = [
        (Mode::ServerError, "unavailable"),
        (Mode::Garbage, "invalid"),
        (Mode::Exists, "refused"),
        (Mode::Hang, "unavailable"),
    ];
    for (mode, expected) in cases {
        if let Ok(mut current) = provider.mode.lock() {
            *current = mode;
        }
        let started = std::time::Instant::now();
        let error = adapter.create(&payment).await.expect_err("an error");
        assert!(started.elapsed() < Duration::from_secs(5), "answered within seconds");
        let kind = match &error {
            ProviderError::Unavailable(_) => "unavailable",
            ProviderError::InvalidAnswer(_) => "invalid",
            ProviderError::Refused { code, .. } => {
                assert_eq!(code, "PAYMENT_EXISTS");
                "refused"
            }
            ProviderError::Misconfigured(_) => "misconfigured",
            ProviderError::Unsupported(_) => "unsupported",
        };
        assert_eq!(kind, expected, "{error}");
    }
    let down =
        adapter_for(&entry("http://127.0.0.1:1/api", PaymentAuth::None, 1)?, &pforte::http_client::outbound_client()?)?;
    assert!(matches!(down.create(&payment).await, Err(ProviderError::Unavailable(_))));
    Ok(())
}
plain_test!(provider_failures_become_clear_errors_within_the_timeout);

pub async fn oauth2_tokens_are_fetched_once_and_reused() -> TestResult {
    let provider = start().await?;
    let token_url = provider.base.replace("/api", "/token");
    let auth = PaymentAuth::OAuth2ClientCredentials {
        token_url: HttpUrl::parse(&token_url).map_err(anyhow::Error::msg)?,
        client_id: "pforte".into(),
        client_secret: SecretString::from("secret".to_owned()),
        scope: None,
    };
    let adapter = adapter_for(&entry(&provider.base, auth, 5)?, &pforte::http_client::outbound_client()?)?;
    for _ in 0..3 {
        adapter.status("demo-service", "09162000", "tx-1").await?;
    }
    assert_eq!(provider.tokens.load(Ordering::SeqCst), 1);
    Ok(())
}
plain_test!(oauth2_tokens_are_fetched_once_and_reused);

//! pforte's pmPayment adapter against an in-test provider: the signed form it sends (checked with the
//! test's own HMAC code), the OAuth2 token it brings, how it reads status codes, and how it fails
//! (down, 5xx, garbage, too slow): always as a clear `ProviderError`, within the provider's timeout.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hmac::{Hmac, Mac};
use pforte::payment::provider::{adapter_for, NewProviderPayment, PaymentAdapter, ProviderError};
use pforte::payment::{parse_request_body, PaymentMethod, Status};
use pforte::registry::{EntityId, HttpUrl, PaymentAuth, PaymentProvider, PaymentProviderKind};
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::helpers::TestResult;

const KEY: &str = "test-hmac-key";

const REQUEST: &str = r#"{
    "requestId": "GEB-2024-000123", "requestTimestamp": "2024-05-02T10:15:00+02:00", "currency": "EUR",
    "grosAmount": 1234.50, "purpose": "Geburtsurkunde 000123", "redirectUrl": "http://127.0.0.1:9/pay/tx/return",
    "items": [
        { "totalNetAmount": 1000.00, "bookingData": { "Haushaltsstelle": "1.3400.110000", "Objektnummer": "7" } },
        { "totalNetAmount": 234.50 }
    ]
}"#;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Normal,
    ServerError,
    Garbage,
    Hang,
    UnknownStatus,
}

/// A request's headers and form fields.
type Seen = (HeaderMap, HashMap<String, String>);

#[derive(Clone)]
struct Provider {
    mode: Arc<Mutex<Mode>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    base: String,
}

impl Provider {
    fn mode(&self) -> Mode {
        *self.mode.lock().expect("mode")
    }
}

async fn secure(State(p): State<Provider>, headers: HeaderMap, body: Bytes) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let txid = form.get("txid").cloned().unwrap_or_default();
    p.seen.lock().expect("seen").push((headers, form));
    match p.mode() {
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            StatusCode::OK.into_response()
        }
        Mode::ServerError => StatusCode::BAD_GATEWAY.into_response(),
        Mode::Garbage => (StatusCode::OK, "<html>Wartungsarbeiten</html>").into_response(),
        Mode::Normal | Mode::UnknownStatus => {
            Json(json!({ "url": format!("{}/pay/{txid}", p.base), "txid": txid })).into_response()
        }
    }
}

async fn status(State(p): State<Provider>, Path((_ags, txid)): Path<(String, String)>) -> Response {
    let code = if p.mode() == Mode::UnknownStatus { 7 } else { 1 };
    Json(json!({ "txid": txid, "status": code, "amount": 123450, "paymentMethod": "CREDITCARD",
                 "transactionReference": "KZ-2026-77" }))
    .into_response()
}

async fn token() -> Json<Value> {
    Json(json!({ "access_token": "pm-token", "token_type": "Bearer", "expires_in": 300 }))
}

async fn start() -> anyhow::Result<Provider> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://127.0.0.1:{}/pm", listener.local_addr()?.port());
    let provider = Provider { mode: Arc::new(Mutex::new(Mode::Normal)), seen: Arc::default(), base };
    let router = Router::new()
        .route("/pm/payment/secure", post(secure))
        .route("/pm/payment/status/{ags}/{txid}", get(status))
        .route("/token", post(token))
        .with_state(provider.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(provider)
}

fn entry(base: &str, auth: PaymentAuth, timeout_secs: u64) -> anyhow::Result<PaymentProvider> {
    Ok(PaymentProvider {
        id: EntityId::parse("pm-mock").map_err(anyhow::Error::msg)?,
        kind: PaymentProviderKind::PmPayment,
        display_name: "pmPayment Mock".into(),
        base_url: HttpUrl::parse(base).map_err(anyhow::Error::msg)?,
        auth,
        timeout: Duration::from_secs(timeout_secs),
        hmac_key: Some(SecretString::from(KEY.to_owned())),
        settlement: None,
    })
}

fn adapter(base: &str, auth: PaymentAuth, timeout_secs: u64) -> anyhow::Result<Arc<dyn PaymentAdapter>> {
    Ok(adapter_for(&entry(base, auth, timeout_secs)?, &pforte::http_client::outbound_client()?)?)
}

/// Creates the test payment; the adapter's answer.
async fn create(adapter: &dyn PaymentAdapter) -> anyhow::Result<Result<(String, String), ProviderError>> {
    let request = parse_request_body(REQUEST.as_bytes()).map_err(|f| anyhow::anyhow!(f.detail))?;
    let payment = NewProviderPayment {
        originator_id: "demo-service",
        endpoint_id: "09162000",
        request: &request,
        transaction_id: "pforte-tx-9",
        callback_url: "http://127.0.0.1:9/callbacks/payment/pm-mock",
    };
    Ok(adapter.create(&payment).await.map(|created| (created.reference, created.pay_url)))
}

pub async fn pmpayment_create_sends_the_signed_form_and_status_reads_map_the_codes() -> TestResult {
    let provider = start().await?;
    let auth = PaymentAuth::OAuth2ClientCredentials {
        token_url: HttpUrl::parse(&provider.base.replace("/pm", "/token")).map_err(anyhow::Error::msg)?,
        client_id: "pforte".into(),
        client_secret: SecretString::from("secret".to_owned()),
        scope: None,
    };
    let adapter = adapter(&provider.base, auth, 5)?;
    let (reference, pay_url) = create(adapter.as_ref()).await??;
    assert_eq!(reference, "pforte-tx-9");
    assert_eq!(pay_url, format!("{}/pay/pforte-tx-9", provider.base));

    let (headers, form) = provider.seen.lock().map(|s| s[0].clone()).map_err(|_| anyhow::anyhow!("lock"))?;
    assert_eq!(headers["authorization"], "Bearer pm-token");
    let expected = [
        ("ags", "09162000"),
        ("amount", "123450"),
        ("procedure", "demo-service"),
        ("desc", "Geburtsurkunde 000123"),
        ("accountingRecord", r#"[{"Haushaltsstelle":"1.3400.110000","Objektnummer":"7"},{}]"#),
        ("txid", "pforte-tx-9"),
        ("notifyURL", "http://127.0.0.1:9/callbacks/payment/pm-mock"),
        ("redirectURL", "http://127.0.0.1:9/pay/tx/return"),
    ];
    for (name, value) in expected {
        assert_eq!(form.get(name).map(String::as_str), Some(value), "{name}");
    }
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(KEY.as_bytes())?;
    mac.update(expected.map(|(_, value)| value).join("|").as_bytes());
    assert_eq!(form["hash"], hex::encode(mac.finalize().into_bytes()), "lowercase hex HMAC-SHA256");
    assert_eq!(form.len(), 9, "no other fields");

    let state = adapter.status("demo-service", "09162000", "pforte-tx-9").await?;
    assert_eq!(state.status, Status::Payed);
    assert_eq!(state.payment_method, Some(PaymentMethod::CreditCard));
    assert_eq!(state.transaction_reference.as_deref(), Some("KZ-2026-77"));
    assert_eq!(state.amount, Some(rust_decimal::Decimal::new(123_450, 2)), "the cents it reports, as euros");
    Ok(())
}
plain_test!(pmpayment_create_sends_the_signed_form_and_status_reads_map_the_codes);

/// The create's error, which must come within a few seconds.
async fn create_error(provider: &Provider, mode: Mode, timeout_secs: u64) -> anyhow::Result<ProviderError> {
    *provider.mode.lock().map_err(|_| anyhow::anyhow!("lock"))? = mode;
    let adapter = adapter(&provider.base, PaymentAuth::None, timeout_secs)?;
    let started = Instant::now();
    let error = create(adapter.as_ref()).await?.err().ok_or_else(|| anyhow::anyhow!("an error expected"))?;
    assert!(started.elapsed() < Duration::from_secs(timeout_secs + 2), "answered within the timeout");
    Ok(error)
}

pub async fn pmpayment_provider_down_is_unavailable() -> TestResult {
    let adapter = adapter("http://127.0.0.1:1/pm", PaymentAuth::None, 1)?;
    let error = create(adapter.as_ref()).await?.err();
    assert!(matches!(error, Some(ProviderError::Unavailable(_))), "{error:?}");
    Ok(())
}
plain_test!(pmpayment_provider_down_is_unavailable);

pub async fn pmpayment_provider_answering_5xx_is_unavailable() -> TestResult {
    let error = create_error(&start().await?, Mode::ServerError, 5).await?;
    assert!(matches!(error, ProviderError::Unavailable(_)), "{error:?}");
    Ok(())
}
plain_test!(pmpayment_provider_answering_5xx_is_unavailable);

pub async fn pmpayment_provider_answering_garbage_is_an_invalid_answer() -> TestResult {
    let error = create_error(&start().await?, Mode::Garbage, 5).await?;
    assert!(matches!(error, ProviderError::InvalidAnswer(_)), "{error:?}");
    Ok(())
}
plain_test!(pmpayment_provider_answering_garbage_is_an_invalid_answer);

pub async fn pmpayment_provider_too_slow_is_unavailable_within_the_timeout() -> TestResult {
    let error = create_error(&start().await?, Mode::Hang, 1).await?;
    assert!(matches!(error, ProviderError::Unavailable(_)), "{error:?}");
    Ok(())
}
plain_test!(pmpayment_provider_too_slow_is_unavailable_within_the_timeout);

pub async fn pmpayment_status_with_an_unknown_code_is_an_invalid_answer() -> TestResult {
    let provider = start().await?;
    *provider.mode.lock().map_err(|_| anyhow::anyhow!("lock"))? = Mode::UnknownStatus;
    let adapter = adapter(&provider.base, PaymentAuth::None, 5)?;
    let error = adapter.status("demo-service", "09162000", "pforte-tx-9").await.err();
    assert!(matches!(error, Some(ProviderError::InvalidAnswer(_))), "{error:?}");
    Ok(())
}
plain_test!(pmpayment_status_with_an_unknown_code_is_an_invalid_answer);

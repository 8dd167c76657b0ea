//! The development payment provider under `/dev/pay`, driven over real HTTP as an XBezahldienste
//! client and a browser would (no redirects followed; Location headers read).

use serde_json::{json, Value};

use crate::helpers::{TestApp, TestContext, TestResult};

const BASE: &str = "/dev/pay";
const ORIGINATOR: &str = "demo-service";
const ENDPOINT: &str = "09162000";
const REDIRECT: &str = "https://dienst.example/zahlung/zurueck?vorgang=42";

/// A valid PaymentRequest; read from text so the amounts go out with the digits written here.
fn request_body(request_id: &str) -> Value {
    let mut body: Value = serde_json::from_str(
        r#"{
            "requestId": "",
            "requestTimestamp": "2026-03-01T10:15:00+01:00",
            "currency": "EUR",
            "grosAmount": 12.00,
            "purpose": "Anwohnerparkausweis 2026",
            "description": "Anwohnerparkausweis für die Zone B",
            "redirectUrl": "",
            "items": [{
                "id": "1",
                "reference": "APA-2026",
                "description": "Gebühr Anwohnerparkausweis",
                "taxRate": 0,
                "quantity": 1,
                "singleNetAmount": 12.00,
                "singleTaxAmount": 0,
                "totalNetAmount": 12.00,
                "totalTaxAmount": 0,
                "bookingData": {"Haushaltsstelle": "1.1100.1000", "Objektnummer": "4711"}
            }]
        }"#,
    )
    .expect("request body");
    body["requestId"] = json!(request_id);
    body["redirectUrl"] = json!(REDIRECT);
    body
}

fn create_url(app: &TestApp) -> String {
    app.url(&format!("{BASE}/paymenttransaction/{ORIGINATOR}/{ENDPOINT}"))
}

async fn create(app: &TestApp, body: &Value) -> reqwest::Response {
    app.client.post(create_url(app)).json(body).send().await.expect("create")
}

/// Creates a transaction and returns its id.
async fn created(app: &TestApp, request_id: &str) -> anyhow::Result<String> {
    let response = create(app, &request_body(request_id)).await;
    anyhow::ensure!(response.status() == 201, "create status {}", response.status());
    let body: Value = response.json().await?;
    body["paymentInformation"]["transactionId"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("no transactionId in {body}"))
}

async fn read(app: &TestApp, transaction_id: &str) -> reqwest::Response {
    let url = app.url(&format!("{BASE}/paymenttransaction/{ORIGINATOR}/{ENDPOINT}/{transaction_id}"));
    app.client.get(url).send().await.expect("read")
}

async fn decide(app: &TestApp, transaction_id: &str, form: &[(&str, &str)]) -> reqwest::Response {
    let url = app.url(&format!("{BASE}/page/{transaction_id}"));
    app.client.post(url).form(form).send().await.expect("decide")
}

fn content_type(response: &reqwest::Response) -> String {
    response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

async fn assert_problem(response: reqwest::Response, status: u16, code: &str) -> anyhow::Result<Value> {
    assert_eq!(response.status(), status);
    assert!(content_type(&response).starts_with("application/problem+json"), "{}", content_type(&response));
    let body: Value = response.json().await?;
    assert_eq!(body["functionalCode"], code, "{body}");
    assert_eq!(body["status"], status, "{body}");
    for field in ["type", "title", "detail"] {
        assert!(body[field].as_str().is_some_and(|v| !v.is_empty()), "{field} in {body}");
    }
    Ok(body)
}

pub async fn pay_simulator_creates_and_reads_a_transaction_with_the_standards_field_names(
    ctx: TestContext,
) -> TestResult {
    let app = ctx.spawn_app().await;
    let sent = request_body("req-create-1");
    let response = create(&app, &sent).await;
    assert_eq!(response.status(), 201);
    let location = response.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let created: Value = response.json().await?;
    assert_eq!(created["paymentRequest"], sent, "the request is echoed as received");
    let info = &created["paymentInformation"];
    let id = info["transactionId"].as_str().expect("transactionId");
    assert!(!id.is_empty() && id.len() <= 44, "{id}");
    assert_eq!(info["status"], "INITIAL");
    let transaction_url = app.url(&format!("{BASE}/paymenttransaction/{ORIGINATOR}/{ENDPOINT}/{id}"));
    assert_eq!(info["transactionUrl"], transaction_url.as_str());
    assert_eq!(location.as_deref(), Some(transaction_url.as_str()));
    assert_eq!(info["transactionRedirectUrl"], app.url(&format!("{BASE}/page/{id}")).as_str());
    let timestamp = info["transactionTimestamp"].as_str().expect("transactionTimestamp");
    assert!(chrono::DateTime::parse_from_rfc3339(timestamp).is_ok(), "{timestamp}");
    for absent in ["paymentMethod", "transactionReference"] {
        assert!(info.get(absent).is_none(), "{absent} before payment");
    }
    // The amount keeps the digits it was sent with.
    assert_eq!(created["paymentRequest"]["grosAmount"].to_string(), "12.00");

    let again = read(&app, id).await;
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await?;
    assert_eq!(again, created);

    let status = app.get(&format!("{BASE}/status/{ORIGINATOR}/{ENDPOINT}")).await;
    assert_eq!(status.status(), 200);
    app.stop().await
}
backend_test!(pay_simulator_creates_and_reads_a_transaction_with_the_standards_field_names);

pub async fn pay_simulator_refuses_a_second_create_with_the_same_request_id(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let first = created(&app, "req-dup").await?;
    let second = create(&app, &request_body("req-dup")).await;
    assert_problem(second, 409, "PAYMENT_EXISTS").await?;
    // The first transaction is untouched, and another endpoint may use the same requestId.
    assert_eq!(read(&app, &first).await.status(), 200);
    let other = app.url(&format!("{BASE}/paymenttransaction/{ORIGINATOR}/03241001"));
    let response = app.client.post(other).json(&request_body("req-dup")).send().await?;
    assert_eq!(response.status(), 201);
    app.stop().await
}
backend_test!(pay_simulator_refuses_a_second_create_with_the_same_request_id);

pub async fn pay_simulator_refuses_an_invalid_request_with_validation_error(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let mut body = request_body("req-invalid");
    body["grosAmount"] = serde_json::from_str("12.005")?;
    let response = create(&app, &body).await;
    let problem = assert_problem(response, 400, "VALIDATION_ERROR").await?;
    assert!(!problem.to_string().contains("12.005"), "the value sent is not quoted: {problem}");
    // Not JSON at all.
    let response = app.client.post(create_url(&app)).body("nope").send().await?;
    assert_problem(response, 400, "VALIDATION_ERROR").await?;
    // An identifier in the path outside the standard's pattern.
    let url = app.url(&format!("{BASE}/paymenttransaction/{ORIGINATOR}/bad.id"));
    let response = app.client.post(url).json(&request_body("req-path")).send().await?;
    assert_problem(response, 400, "VALIDATION_ERROR").await?;
    app.stop().await
}
backend_test!(pay_simulator_refuses_an_invalid_request_with_validation_error);

pub async fn pay_simulator_page_shows_the_payment_in_german(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let id = created(&app, "req-page").await?;
    let page = app.get(&format!("{BASE}/page/{id}")).await;
    assert_eq!(page.status(), 200);
    assert!(content_type(&page).starts_with("text/html"));
    let html = page.text().await?;
    for expected in [
        "lang=\"de\"",
        "12,00 €",
        ENDPOINT,
        "Anwohnerparkausweis 2026",
        "Anwohnerparkausweis für die Zone B",
        "Gebühr Anwohnerparkausweis",
        &format!("action=\"{}\"", app.url(&format!("{BASE}/page/{id}"))),
        "<label for=\"method\">",
        "value=\"CREDITCARD\"",
        "value=\"PAYPAL\"",
        "value=\"GIROPAY\"",
        "value=\"PAYDIRECT\"",
        "Bezahlen</button>",
        "Abbrechen</button>",
        "Fehlschlag simulieren</button>",
    ] {
        assert!(html.contains(expected), "{expected} missing in {html}");
    }
    assert!(!html.contains("<script"));
    app.stop().await
}
backend_test!(pay_simulator_page_shows_the_payment_in_german);

pub async fn pay_simulator_payment_redirects_to_the_redirect_url_and_reads_payed(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let id = created(&app, "req-pay").await?;
    let response = decide(&app, &id, &[("method", "PAYPAL"), ("action", "pay")]).await;
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers().get("location").and_then(|v| v.to_str().ok()), Some(REDIRECT));

    let body: Value = read(&app, &id).await.json().await?;
    let info = &body["paymentInformation"];
    assert_eq!(info["status"], "PAYED");
    assert_eq!(info["paymentMethod"], "PAYPAL");
    let reference = info["transactionReference"].as_str().expect("transactionReference");
    assert!(reference.starts_with("KZ-") && reference.len() == "KZ-2026-000123".len(), "{reference}");
    assert!(info.get("transactionRedirectUrl").is_none(), "{info}");

    // A second decision changes nothing.
    let second = decide(&app, &id, &[("action", "cancel")]).await;
    assert_eq!(second.status(), 409);
    assert!(second.text().await?.contains("bereits abgeschlossen"));
    let page = app.get(&format!("{BASE}/page/{id}")).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await?;
    assert!(html.contains("bereits abgeschlossen") && !html.contains("<form"), "{html}");
    let after: Value = read(&app, &id).await.json().await?;
    assert_eq!(after["paymentInformation"]["status"], "PAYED");
    app.stop().await
}
backend_test!(pay_simulator_payment_redirects_to_the_redirect_url_and_reads_payed);

pub async fn pay_simulator_cancel_and_fail_end_the_payment(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    for (request_id, action, status) in [("req-cancel", "cancel", "CANCELED"), ("req-fail", "fail", "FAILED")] {
        let id = created(&app, request_id).await?;
        let response = decide(&app, &id, &[("method", "GIROPAY"), ("action", action)]).await;
        assert_eq!(response.status(), 303, "{action}");
        assert_eq!(response.headers().get("location").and_then(|v| v.to_str().ok()), Some(REDIRECT));
        let body: Value = read(&app, &id).await.json().await?;
        let info = &body["paymentInformation"];
        assert_eq!(info["status"], status);
        for absent in ["paymentMethod", "transactionReference", "transactionRedirectUrl"] {
            assert!(info.get(absent).is_none(), "{absent} after {action}: {info}");
        }
        assert_eq!(decide(&app, &id, &[("method", "PAYPAL"), ("action", "pay")]).await.status(), 409);
    }
    // A pay without a method offered is refused and leaves the payment open.
    let id = created(&app, "req-nomethod").await?;
    let response = decide(&app, &id, &[("method", "OTHER"), ("action", "pay")]).await;
    assert_eq!(response.status(), 400);
    let body: Value = read(&app, &id).await.json().await?;
    assert_eq!(body["paymentInformation"]["status"], "INITIAL");
    app.stop().await
}
backend_test!(pay_simulator_cancel_and_fail_end_the_payment);

pub async fn pay_simulator_unknown_transaction_is_a_404_problem(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    assert_problem(read(&app, "unknown-transaction").await, 404, "UNSPECIFIED").await?;
    // A known transaction under another originator or endpoint is unknown too.
    let id = created(&app, "req-404").await?;
    for path in [
        format!("{BASE}/paymenttransaction/other-service/{ENDPOINT}/{id}"),
        format!("{BASE}/paymenttransaction/{ORIGINATOR}/03241001/{id}"),
    ] {
        assert_problem(app.get(&path).await, 404, "UNSPECIFIED").await?;
    }
    assert_eq!(app.get(&format!("{BASE}/page/unknown-transaction")).await.status(), 404);
    assert_eq!(decide(&app, "unknown-transaction", &[("action", "cancel")]).await.status(), 404);
    app.stop().await
}
backend_test!(pay_simulator_unknown_transaction_is_a_404_problem);

pub async fn pay_simulator_is_not_mounted_when_dev_simulators_is_off(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app_without_simulators().await?;
    assert!(app.simulators.is_none());
    let response = app.client.post(create_url(&app)).json(&request_body("req-off")).send().await?;
    assert_eq!(response.status(), 404);
    for path in [format!("{BASE}/paymenttransaction/{ORIGINATOR}/{ENDPOINT}/x"), format!("{BASE}/page/x")] {
        let response = app.get(&path).await;
        assert_eq!(response.status(), 404, "{path}");
        let body: Value = response.json().await?;
        assert_eq!(body["code"], "not_found");
    }
    app.stop().await
}
backend_test!(pay_simulator_is_not_mounted_when_dev_simulators_is_off);

/// pforte's XBezahldienste adapter against the simulator: the development path uses the protocol
/// production uses. Two authorities' providers are two separate simulator instances.
pub async fn the_xbezahldienste_adapter_pays_through_each_simulator_instance(ctx: TestContext) -> TestResult {
    use pforte::payment::provider::adapter_for;
    use pforte::payment::provider::NewProviderPayment;

    let app = ctx.spawn_app().await;
    let body = serde_json::json!({
        "requestId": "ADAPTER-1", "requestTimestamp": "2026-11-29T10:00:00+01:00", "currency": "EUR",
        "grosAmount": 12.00, "purpose": "Geburtsurkunde 1", "redirectUrl": app.url("/done"),
        "items": [{ "totalNetAmount": 12.00 }]
    })
    .to_string();
    let request = pforte::payment::parse_request_body(body.as_bytes()).map_err(|f| anyhow::anyhow!(f.detail))?;
    let mut references = Vec::new();
    let registry = app.state.registry.current();
    for (provider_id, endpoint) in [("sim-pay", "09162000"), ("sim-pay-b", "03241001")] {
        let provider = registry.payment_provider(provider_id).ok_or_else(|| anyhow::anyhow!("no {provider_id}"))?;
        let adapter = adapter_for(provider, &app.state.http)?;
        let payment = NewProviderPayment {
            originator_id: "demo-service",
            endpoint_id: endpoint,
            request: &request,
            transaction_id: "tx-adapter",
            callback_url: "http://127.0.0.1:9/callbacks/payment/x",
        };
        let created = adapter.create(&payment).await?;
        assert!(created.pay_url.starts_with(provider.base_url.as_str()), "{}", created.pay_url);
        assert_eq!(
            adapter.status("demo-service", endpoint, &created.reference).await?.status,
            pforte::payment::Status::Initial
        );

        let page = app.client.get(&created.pay_url).send().await?;
        assert_eq!(page.status(), 200);
        let paid = app.client.post(&created.pay_url).form(&[("method", "GIROPAY"), ("action", "pay")]).send().await?;
        assert_eq!(paid.status(), 303);
        assert_eq!(paid.headers()["location"], app.url("/done").as_str());
        let state = adapter.status("demo-service", endpoint, &created.reference).await?;
        assert_eq!(state.status, pforte::payment::Status::Payed);
        assert!(state.transaction_reference.is_some_and(|kz| kz.starts_with("KZ-")));
        references.push((adapter, endpoint, created.reference));
    }
    // The instances are separate providers: one does not know the other's payment.
    let (first_adapter, endpoint, _) = &references[0];
    let (_, _, second_reference) = &references[1];
    assert!(first_adapter.status("demo-service", endpoint, second_reference).await.is_err());
    app.stop().await
}
backend_test!(the_xbezahldienste_adapter_pays_through_each_simulator_instance);

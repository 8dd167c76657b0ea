//! Contract tests: real responses of a running pforte, validated against the OpenAPI document it
//! serves. `check_response` finds the documented response for (method, path template, status) and
//! validates the body with JSON Schema 2020-12 (the dialect of OpenAPI 3.1), resolving `$ref`s into
//! `components`; a status the operation does not document fails the check.

use std::collections::BTreeSet;

use anyhow::{anyhow, bail, Context};
use serde_json::{json, Value};

use crate::helpers::{TestApp, TestContext, TestResult, MANIFEST_DIR};
use crate::oidc::DEMO_SECRET;

const CREATE: &str = "/paymenttransaction/{originatorId}/{endPointId}";
const READ: &str = "/paymenttransaction/{originatorId}/{endPointId}/{transactionId}";
const STATUS: &str = "/status/{originatorId}/{endPointId}";

/// Every route of the payment router that online services call, as (method, path template). The
/// citizen's browser routes (`/pay/{transactionId}`, `/pay/{transactionId}/return`) are not API.
const CANCEL: &str = "/paymenttransaction/{originatorId}/{endPointId}/{transactionId}/cancel";
const REFUNDS: &str = "/paymenttransaction/{originatorId}/{endPointId}/{transactionId}/refunds";
const SERVED: &[(&str, &str)] =
    &[("post", CREATE), ("get", READ), ("get", STATUS), ("post", CANCEL), ("post", REFUNDS), ("get", REFUNDS)];

/// Documented extensions whose routes are being built; each moves to `SERVED` when it lands.
const DOCUMENTED_AHEAD: &[(&str, &str)] = &[];

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// The document as shipped, read from the file (for checks that need no server).
fn shipped_document() -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(format!("{MANIFEST_DIR}/openapi/payment-api.yaml"))?;
    Ok(serde_yaml_ng::from_str(&text)?)
}

/// The document a running pforte serves.
async fn served_document(app: &TestApp) -> anyhow::Result<Value> {
    let response = app.get("/openapi/payment-api.json").await;
    anyhow::ensure!(response.status() == 200, "the document is served: {}", response.status());
    Ok(response.json().await?)
}

/// Follows a local `$ref` (`#/components/...`) of a response or parameter object.
pub fn resolve<'d>(document: &'d Value, object: &'d Value) -> anyhow::Result<&'d Value> {
    match object.get("$ref").and_then(Value::as_str) {
        None => Ok(object),
        Some(reference) => {
            let pointer = reference.strip_prefix('#').ok_or_else(|| anyhow!("not a local $ref: {reference}"))?;
            let target = document.pointer(pointer).ok_or_else(|| anyhow!("$ref {reference} points nowhere"))?;
            resolve(document, target)
        }
    }
}

/// A JSON Schema 2020-12 validator for `schema`, whose `$ref`s resolve against the document's
/// `components` (placed beside it in one root resource).
pub fn validator(document: &Value, schema: &Value) -> anyhow::Result<jsonschema::Validator> {
    let mut root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": document["components"],
    });
    let fields = schema.as_object().ok_or_else(|| anyhow!("a schema must be an object: {schema}"))?;
    for (key, value) in fields {
        root[key] = value.clone();
    }
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&root)
        .map_err(|e| anyhow!("the schema does not compile: {e}"))
}

/// Validates a real response against the document: the operation must document `status`, with a
/// media type `content_type` (when given), and the body must match that media type's schema.
pub fn check_response(
    document: &Value,
    method: &str,
    path: &str,
    status: u16,
    content_type: Option<&str>,
    body: &Value,
) -> anyhow::Result<()> {
    let operation = document["paths"][path]
        .get(method.to_ascii_lowercase())
        .ok_or_else(|| anyhow!("{method} {path} is not documented"))?;
    let responses = &operation["responses"];
    let documented = responses
        .get(status.to_string())
        .or_else(|| responses.get(format!("{}XX", status / 100)))
        .ok_or_else(|| anyhow!("{method} {path} does not document status {status}"))?;
    let response = resolve(document, documented)?;
    let content =
        response["content"].as_object().ok_or_else(|| anyhow!("{method} {path} {status} documents no content"))?;
    let media = match content_type {
        Some(given) => {
            let essence = given.split(';').next().unwrap_or_default().trim();
            content.get(essence).ok_or_else(|| {
                anyhow!("{method} {path} {status} answered {essence}, the document names {:?}", content.keys())
            })?
        }
        None => content.values().next().ok_or_else(|| anyhow!("{method} {path} {status}: empty content"))?,
    };
    let validator = validator(document, &media["schema"])?;
    let errors: Vec<String> =
        validator.iter_errors(body).map(|error| format!("at '{}': {error}", error.instance_path())).collect();
    if !errors.is_empty() {
        bail!("{method} {path} {status}: the body breaks the documented schema:\n  {}\n{body}", errors.join("\n  "));
    }
    Ok(())
}

/// Reads a real response and checks it; returns its body for further assertions.
async fn check(document: &Value, method: &str, path: &str, response: reqwest::Response) -> anyhow::Result<Value> {
    let status = response.status().as_u16();
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body: Value = response.json().await.with_context(|| format!("{method} {path} {status}: a JSON body"))?;
    check_response(document, method, path, status, content_type.as_deref(), &body)?;
    Ok(body)
}

fn request_body(app: &TestApp, request_id: &str) -> Value {
    json!({
        "requestId": request_id, "requestTimestamp": "2026-11-29T10:00:00+01:00", "currency": "EUR",
        "grosAmount": 12.00, "purpose": "Geburtsurkunde 4711", "description": "Geburtsurkunde",
        "redirectUrl": app.url("/demo"),
        "items": [{ "id": "1", "quantity": 1, "singleNetAmount": 12.00, "totalNetAmount": 12.00, "totalTaxAmount": 0,
                    "bookingData": { "Haushaltsstelle": "1.1100.1100" } }],
        "requestor": { "name": "Mustermann", "firstName": "Erika" }
    })
}

async fn bearer(app: &TestApp, client: &str) -> anyhow::Result<String> {
    let response = app
        .client
        .post(app.url("/token"))
        .basic_auth(client, Some(DEMO_SECRET))
        .form(&[("grant_type", "client_credentials"), ("scope", "payment")])
        .send()
        .await?;
    let tokens: Value = response.json().await?;
    tokens["access_token"].as_str().map(str::to_owned).ok_or_else(|| anyhow!("no token: {tokens}"))
}

fn create_url(app: &TestApp, endpoint: &str) -> String {
    app.url(&format!("/paymenttransaction/demo-service/{endpoint}"))
}

async fn create(app: &TestApp, token: &str, endpoint: &str, body: &Value) -> anyhow::Result<reqwest::Response> {
    Ok(app.client.post(create_url(app, endpoint)).bearer_auth(token).json(body).send().await?)
}

fn location(response: &reqwest::Response) -> String {
    response.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

// --- The document itself -----------------------------------------------------------------------

/// Every (method, path template) the document describes.
pub fn documented_operations(document: &Value) -> BTreeSet<(String, String)> {
    let paths = document["paths"].as_object().into_iter().flatten();
    paths
        .flat_map(|(path, item)| {
            METHODS
                .iter()
                .filter(|m| item.get(**m).is_some())
                .map(|m| (m.to_string(), path.clone()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Checks what every operation of an OpenAPI document must have (an operationId, described
/// responses whose schemas compile, its path parameters declared); returns how many there are.
pub fn operations_are_well_formed(document: &Value) -> anyhow::Result<usize> {
    let paths = document["paths"].as_object().context("paths")?;
    let mut operations = 0;
    for (path, item) in paths {
        for method in METHODS {
            let Some(operation) = item.get(method) else { continue };
            operations += 1;
            anyhow::ensure!(operation["operationId"].is_string(), "{method} {path} has an operationId");
            let responses = operation["responses"].as_object().context("responses")?;
            anyhow::ensure!(!responses.is_empty(), "{method} {path} documents responses");
            for (status, response) in responses {
                let response = resolve(document, response)?;
                anyhow::ensure!(response["description"].is_string(), "{method} {path} {status} is described");
                for (media, content) in response["content"].as_object().into_iter().flatten() {
                    validator(document, &content["schema"])
                        .with_context(|| format!("{method} {path} {status} {media}"))?;
                }
            }
            // Every `{name}` in the template is a declared path parameter.
            let declared: BTreeSet<String> = item["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .chain(operation["parameters"].as_array().into_iter().flatten())
                .map(|p| resolve(document, p))
                .collect::<anyhow::Result<Vec<_>>>()?
                .into_iter()
                .filter(|p| p["in"] == "path")
                .filter_map(|p| p["name"].as_str().map(str::to_owned))
                .collect();
            let used: BTreeSet<String> = path
                .split('/')
                .filter_map(|segment| segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
                .map(str::to_owned)
                .collect();
            anyhow::ensure!(declared == used, "{method} {path}: path parameters {declared:?} vs {used:?}");
        }
    }
    Ok(operations)
}

pub async fn the_document_parses_and_every_operation_documents_its_responses() -> TestResult {
    let document = shipped_document()?;
    assert_eq!(document["openapi"], "3.1.0");
    let operations = operations_are_well_formed(&document)?;
    assert_eq!(operations, SERVED.len() + DOCUMENTED_AHEAD.len());
    for name in ["payment.status_changed", "payment.refunded"] {
        let hook = &document["webhooks"][name]["post"];
        let headers: BTreeSet<&str> = hook["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| resolve(&document, p).ok())
            .filter(|p| p["in"] == "header")
            .filter_map(|p| p["name"].as_str())
            .collect();
        assert_eq!(headers, BTreeSet::from(["webhook-id", "webhook-timestamp", "webhook-signature"]), "{name}");
        validator(&document, &hook["requestBody"]["content"]["application/json"]["schema"])?;
    }
    for scheme in ["bearer", "basic"] {
        assert_eq!(document["components"]["securitySchemes"][scheme]["type"], "http", "{scheme}");
    }
    Ok(())
}
plain_test!(the_document_parses_and_every_operation_documents_its_responses);

/// The checker must be able to fail, or the contract tests prove nothing.
pub async fn the_validator_rejects_bodies_and_statuses_the_document_does_not_allow() -> TestResult {
    let document = shipped_document()?;
    let transaction = json!({
        "paymentRequest": {
            "requestId": "GEB-1", "requestTimestamp": "2026-11-29T09:00:00Z", "currency": "EUR", "grosAmount": 12.00,
            "purpose": "Geburtsurkunde", "redirectUrl": "https://service.example/back",
            "items": [{ "totalNetAmount": 12.00 }]
        },
        "paymentInformation": {
            "transactionUrl": "https://pforte.example/paymenttransaction/a/b/T1",
            "transactionRedirectUrl": "https://pforte.example/pay/T1",
            "transactionId": "T1", "transactionTimestamp": "2026-11-29T09:00:00+00:00", "status": "INITIAL"
        }
    });
    let json = Some("application/json");
    check_response(&document, "POST", CREATE, 201, json, &transaction).context("the well-formed control")?;

    let breaks = |pointer: &str, value: Value| {
        let mut body = transaction.clone();
        *body.pointer_mut(pointer).expect("field") = value;
        check_response(&document, "POST", CREATE, 201, json, &body)
    };
    assert!(breaks("/paymentInformation/status", json!("PAID")).is_err(), "a status outside the standard");
    assert!(breaks("/paymentRequest/grosAmount", json!("12.00")).is_err(), "money as a string");
    assert!(breaks("/paymentRequest/grosAmount", serde_json::from_str("12.005")?).is_err(), "three decimals");
    assert!(breaks("/paymentRequest/grosAmount", json!(0)).is_err(), "nothing to pay");
    assert!(breaks("/paymentRequest/requestId", json!("GEB 1")).is_err(), "a space in an identifier");
    assert!(breaks("/paymentInformation/transactionTimestamp", json!("yesterday")).is_err(), "not a date-time");
    assert!(breaks("/paymentInformation/status", json!("PAYED")).is_err(), "a pay page once final");
    let mut undocumented = transaction.clone();
    undocumented["paymentInformation"]["secret"] = json!("x");
    assert!(check_response(&document, "POST", CREATE, 201, json, &undocumented).is_err(), "an unknown field");

    let problem =
        json!({ "type": "urn:x", "title": "t", "status": 409, "detail": "d", "functionalCode": "PAYMENT_EXISTS" });
    let problem_json = Some("application/problem+json");
    check_response(&document, "POST", CREATE, 409, problem_json, &problem).context("the problem control")?;
    assert!(check_response(&document, "POST", CREATE, 418, problem_json, &problem).is_err(), "status not documented");
    assert!(check_response(&document, "POST", CREATE, 409, json, &problem).is_err(), "wrong media type");
    let mut mislabelled = problem.clone();
    mislabelled["functionalCode"] = json!("CALCULATION_ERROR");
    assert!(check_response(&document, "POST", CREATE, 409, problem_json, &mislabelled).is_err(), "code of a 400");
    assert!(check_response(&document, "DELETE", CREATE, 409, problem_json, &problem).is_err(), "no such operation");
    Ok(())
}
plain_test!(the_validator_rejects_bodies_and_statuses_the_document_does_not_allow);

pub async fn the_served_document_is_the_shipped_one_and_documents_every_served_route(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let document = served_document(&app).await?;
    assert_eq!(document, shipped_document()?, "JSON is the YAML converted");
    let yaml = app.get("/openapi/payment-api.yaml").await;
    assert_eq!(yaml.status(), 200);
    assert_eq!(yaml.headers()["content-type"], "application/yaml");
    assert_eq!(serde_yaml_ng::from_str::<Value>(&yaml.text().await?)?, document);

    let documented = documented_operations(&document);
    let listed: BTreeSet<(String, String)> =
        SERVED.iter().chain(DOCUMENTED_AHEAD).map(|(m, p)| (m.to_string(), p.to_string())).collect();
    assert_eq!(documented, listed, "the document covers exactly the served and the announced routes");

    // The list is not stale: each served route exists (it asks for credentials; it is no 404 or 405).
    for (method, template) in SERVED {
        let path = template
            .replace("{originatorId}", "demo-service")
            .replace("{endPointId}", "09162000")
            .replace("{transactionId}", "T1");
        let request = app.client.request(method.to_uppercase().parse()?, app.url(&path));
        let response = request.header("content-type", "application/json").body("{}").send().await?;
        assert_eq!(response.status(), 401, "{method} {path}");
        check(&document, method, template, response).await?;
    }

    let home = app.get("/").await.text().await?;
    for path in ["/openapi/payment-api.json", "/openapi/payment-api.yaml"] {
        assert!(home.contains(&format!("href=\"{path}\"")), "the start page lists {path}");
    }
    app.stop().await
}
backend_test!(the_served_document_is_the_shipped_one_and_documents_every_served_route);

// --- Successful answers ----------------------------------------------------------------------------

pub async fn created_read_and_paid_transactions_match_the_document(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let document = served_document(&app).await?;
    let token = bearer(&app, "demo").await?;

    let created =
        check(&document, "post", CREATE, create(&app, &token, "09162000", &request_body(&app, "C-1")).await?).await?;
    let id = created["paymentInformation"]["transactionId"].as_str().context("transactionId")?.to_owned();
    let read_url = app.url(&format!("/paymenttransaction/demo-service/09162000/{id}"));
    let initial = app.client.get(&read_url).bearer_auth(&token).send().await?;
    assert_eq!(initial.status(), 200);
    assert_eq!(check(&document, "get", READ, initial).await?["paymentInformation"]["status"], "INITIAL");

    let pay_page = location(&app.client.get(app.url(&format!("/pay/{id}"))).send().await?);
    let paid = app.client.post(&pay_page).form(&[("method", "GIROPAY"), ("action", "pay")]).send().await?;
    app.client.get(location(&paid)).send().await?;
    let after = app.client.get(&read_url).basic_auth("demo", Some(DEMO_SECRET)).send().await?;
    assert_eq!(after.status(), 200);
    assert_eq!(check(&document, "get", READ, after).await?["paymentInformation"]["status"], "PAYED");

    let status = app.client.get(app.url("/status/demo-service/09162000")).bearer_auth(&token).send().await?;
    assert_eq!(status.status(), 200);
    check(&document, "get", STATUS, status).await?;
    app.stop().await
}
backend_test!(created_read_and_paid_transactions_match_the_document);

/// The extensions: a cancel, a refund and the refund list, each with its refusal, against the document.
pub async fn cancel_and_refunds_match_the_document(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let document = served_document(&app).await?;
    let token = bearer(&app, "demo").await?;
    let url = |id: &str, rest: &str| app.url(&format!("/paymenttransaction/demo-service/09162000/{id}{rest}"));
    let id_of = |v: &Value| v["paymentInformation"]["transactionId"].as_str().unwrap_or_default().to_owned();

    let open = id_of(
        &check(&document, "post", CREATE, create(&app, &token, "09162000", &request_body(&app, "X-1")).await?).await?,
    );
    let canceled = app.client.post(url(&open, "/cancel")).bearer_auth(&token).send().await?;
    assert_eq!(canceled.status(), 200);
    assert_eq!(check(&document, "post", CANCEL, canceled).await?["paymentInformation"]["status"], "CANCELED");
    let again = app.client.post(url(&open, "/cancel")).bearer_auth(&token).send().await?;
    assert_eq!(again.status(), 409);
    check(&document, "post", CANCEL, again).await?;
    let not_paid = app.client.post(url(&open, "/refunds")).bearer_auth(&token).body("{}").send().await?;
    assert_eq!(not_paid.status(), 409);
    check(&document, "post", REFUNDS, not_paid).await?;

    let paid = id_of(
        &check(&document, "post", CREATE, create(&app, &token, "09162000", &request_body(&app, "X-2")).await?).await?,
    );
    let pay_page = location(&app.client.get(app.url(&format!("/pay/{paid}"))).send().await?);
    let done = app.client.post(&pay_page).form(&[("method", "PAYPAL"), ("action", "pay")]).send().await?;
    app.client.get(location(&done)).send().await?;
    let refund = app
        .client
        .post(url(&paid, "/refunds"))
        .bearer_auth(&token)
        .body(r#"{"amount": 1.5, "reason": "Teilerlass"}"#)
        .send()
        .await?;
    assert_eq!(refund.status(), 201);
    assert_eq!(check(&document, "post", REFUNDS, refund).await?["status"], "INSTRUCTION");
    let too_much =
        app.client.post(url(&paid, "/refunds")).bearer_auth(&token).body(r#"{"amount": 999}"#).send().await?;
    assert_eq!(too_much.status(), 400);
    assert_eq!(check(&document, "post", REFUNDS, too_much).await?["functionalCode"], "CALCULATION_ERROR");
    let listed = app.client.get(url(&paid, "/refunds")).bearer_auth(&token).send().await?;
    assert_eq!(listed.status(), 200);
    assert_eq!(check(&document, "get", REFUNDS, listed).await?["refunds"].as_array().map(Vec::len), Some(1));
    app.stop().await
}
backend_test!(cancel_and_refunds_match_the_document);

// --- Refusals, one kind each ---------------------------------------------------------------------------

async fn assert_refusal(
    document: &Value,
    method: &str,
    path: &str,
    response: reqwest::Response,
    code: &str,
) -> TestResult {
    let status = response.status();
    let body = check(document, method, path, response).await?;
    assert_eq!(body["functionalCode"], code, "{status}: {body}");
    Ok(())
}

pub async fn a_validation_error_matches_the_document(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let document = served_document(&app).await?;
    let token = bearer(&app, "demo").await?;
    let mut body = request_body(&app, "V-1");
    body["grosAmount"] = serde_json::from_str("12.005")?;
    let response = create(&app, &token, "09162000", &body).await?;
    assert_eq!(response.status(), 400);
    assert_refusal(&document, "post", CREATE, response, "VALIDATION_ERROR").await?;
    let not_json = app.client.post(create_url(&app, "09162000")).bearer_auth(&token).body("{not json").send().await?;
    assert_refusal(&document, "post", CREATE, not_json, "VALIDATION_ERROR").await?;
    let bad_path = app.client.get(app.url("/status/demo-service/not%20an%20id")).bearer_auth(&token).send().await?;
    assert_eq!(bad_path.status(), 400);
    assert_refusal(&document, "get", STATUS, bad_path, "VALIDATION_ERROR").await?;
    app.stop().await
}
backend_test!(a_validation_error_matches_the_document);

pub async fn a_calculation_error_matches_the_document(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let document = served_document(&app).await?;
    let token = bearer(&app, "demo").await?;
    let mut body = request_body(&app, "K-1");
    body["grosAmount"] = serde_json::from_str("13.00")?;
    let response = create(&app, &token, "09162000", &body).await?;
    assert_eq!(response.status(), 400);
    assert_refusal(&document, "post", CREATE, response, "CALCULATION_ERROR").await?;
    app.stop().await
}
backend_test!(a_calculation_error_matches_the_document);

pub async fn missing_or_wrong_credentials_match_the_document(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let document = served_document(&app).await?;
    let url = create_url(&app, "09162000");
    let none = app.client.post(&url).json(&request_body(&app, "A-1")).send().await?;
    assert_eq!(none.status(), 401);
    assert!(none.headers().contains_key("www-authenticate"), "the documented WWW-Authenticate header");
    assert_refusal(&document, "post", CREATE, none, "FORBIDDEN").await?;
    let garbage = app.client.post(&url).bearer_auth("garbage").json(&request_body(&app, "A-1")).send().await?;
    assert_refusal(&document, "post", CREATE, garbage, "FORBIDDEN").await?;
    let wrong =
        app.client.get(app.url("/status/demo-service/09162000")).basic_auth("demo", Some("wrong")).send().await?;
    assert_eq!(wrong.status(), 401);
    assert_refusal(&document, "get", STATUS, wrong, "FORBIDDEN").await?;
    app.stop().await
}
backend_test!(missing_or_wrong_credentials_match_the_document);

/// A second online service with its own originatorId, same secret as the demo.
async fn app_with_another_service(ctx: &TestContext) -> anyhow::Result<TestApp> {
    let demo = std::fs::read_to_string(format!("{MANIFEST_DIR}/config/clients/demo.toml"))?;
    let other = demo.replace("demo-service", "other-service").replace("/demo/", "/other/");
    let clients = ctx.clients_with(&[("other", other)]);
    Ok(ctx
        .spawn_app_with(|f| f.merge(("registry.clients", clients)), std::sync::Arc::new(pforte::clock::SystemClock))
        .await)
}

pub async fn acting_for_another_service_matches_the_document(ctx: TestContext) -> TestResult {
    let app = app_with_another_service(&ctx).await?;
    let document = served_document(&app).await?;
    let token = bearer(&app, "other").await?;
    let response = create(&app, &token, "09162000", &request_body(&app, "F-1")).await?;
    assert_eq!(response.status(), 403);
    assert_refusal(&document, "post", CREATE, response, "FORBIDDEN").await?;
    let status = app.client.get(app.url("/status/demo-service/09162000")).bearer_auth(&token).send().await?;
    assert_eq!(status.status(), 403);
    assert_refusal(&document, "get", STATUS, status, "FORBIDDEN").await?;
    app.stop().await
}
backend_test!(acting_for_another_service_matches_the_document);

pub async fn an_unknown_endpoint_matches_the_document(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let document = served_document(&app).await?;
    let token = bearer(&app, "demo").await?;
    let response = create(&app, &token, "99999999", &request_body(&app, "E-1")).await?;
    assert_eq!(response.status(), 403);
    assert_refusal(&document, "post", CREATE, response, "NO_VALID_ORIGINATOR_OR_ENDPOINT").await?;
    let status = app.client.get(app.url("/status/demo-service/99999999")).bearer_auth(&token).send().await?;
    assert_eq!(status.status(), 403);
    assert_refusal(&document, "get", STATUS, status, "NO_VALID_ORIGINATOR_OR_ENDPOINT").await?;
    app.stop().await
}
backend_test!(an_unknown_endpoint_matches_the_document);

pub async fn a_repeated_request_id_matches_the_document(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let document = served_document(&app).await?;
    let token = bearer(&app, "demo").await?;
    assert_eq!(create(&app, &token, "09162000", &request_body(&app, "DUP")).await?.status(), 201);
    let again = create(&app, &token, "09162000", &request_body(&app, "DUP")).await?;
    assert_eq!(again.status(), 409);
    assert_refusal(&document, "post", CREATE, again, "PAYMENT_EXISTS").await?;
    app.stop().await
}
backend_test!(a_repeated_request_id_matches_the_document);

pub async fn an_unknown_transaction_matches_the_document(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let document = served_document(&app).await?;
    let token = bearer(&app, "demo").await?;
    let url = app.url("/paymenttransaction/demo-service/09162000/no-such-transaction");
    let response = app.client.get(url).bearer_auth(&token).send().await?;
    assert_eq!(response.status(), 404);
    check(&document, "get", READ, response).await?;
    app.stop().await
}
backend_test!(an_unknown_transaction_matches_the_document);

pub async fn an_oversized_body_matches_the_document(ctx: TestContext) -> TestResult {
    let app = ctx
        .spawn_app_with(|f| f.merge(("server.body_limit_bytes", 1024)), std::sync::Arc::new(pforte::clock::SystemClock))
        .await;
    let document = served_document(&app).await?;
    let token = bearer(&app, "demo").await?;
    let mut body = request_body(&app, "BIG");
    body["description"] = json!("x".repeat(4096));
    let response = create(&app, &token, "09162000", &body).await?;
    assert_eq!(response.status(), 413);
    let body = check(&document, "post", CREATE, response).await?;
    assert_eq!(body["code"], "payload_too_large");
    app.stop().await
}
backend_test!(an_oversized_body_matches_the_document);

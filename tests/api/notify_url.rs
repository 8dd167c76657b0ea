//! `notifyUrl`, pforte's extension of the create request: this payment's notifications go there,
//! signed with the service's registered secret.

use std::sync::{Arc, Mutex};

use pforte::clock::SystemClock;
use pforte::crypto::webhook::WebhookSecret;
use secrecy::SecretString;
use serde_json::Value;

use std::time::Duration;

use crate::helpers::{eventually, TestApp, TestContext, TestResult};
use crate::payment_api::{bearer, body, create};
use crate::payment_cancel::{kfz_client, KFZ_SECRET};
use crate::payment_surface::{id_of, payment_path, post, problem, TENANT};

/// The demo service's signing secret (config/clients/demo.toml).
const DEMO_HOOK_SECRET: &str = "whsec_XhU7Wkr3ASIjW+6x/kAbDvWY3+otvWFk7lCaaepiuJs=";

type Received = Arc<Mutex<Vec<(String, Value)>>>;

/// A service's receiver on loopback that keeps the messages whose signature is valid.
async fn receiver(path: &str) -> anyhow::Result<(String, Received)> {
    use axum::http::{HeaderMap, StatusCode};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://127.0.0.1:{}{path}", listener.local_addr()?.port());
    let received: Received = Arc::new(Mutex::new(Vec::new()));
    let log = received.clone();
    let handler = move |headers: HeaderMap, body: axum::body::Bytes| {
        let log = log.clone();
        async move {
            let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
            let secret = WebhookSecret::parse(&SecretString::from(DEMO_HOOK_SECRET.to_owned())).expect("secret");
            let now = chrono::Utc::now().timestamp();
            let id = header("webhook-id");
            if secret.verify(&id, &header("webhook-timestamp"), &header("webhook-signature"), &body, now, 300).is_err()
            {
                return StatusCode::UNAUTHORIZED;
            }
            log.lock().expect("log").push((id, serde_json::from_slice(&body).unwrap_or_default()));
            StatusCode::NO_CONTENT
        }
    };
    let router = axum::Router::new().route(path, axum::routing::post(handler));
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok((url, received))
}

pub async fn a_notification_for_a_payment_with_a_notify_url_arrives_there(ctx: TestContext) -> TestResult {
    let (url, received) = receiver("/payments/hook").await?;
    let app = ctx.spawn_app().await;
    let token = bearer(&app).await?;
    let mut request = body(&app, "NOTIFY-1");
    request["notifyUrl"] = Value::String(url.clone());
    let created = create(&app, &token, TENANT, &request, None).await?;
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await?;
    assert_eq!(created["paymentRequest"]["notifyUrl"], url.as_str(), "echoed as sent");
    let id = id_of(&created);
    let row = app.state.db.payment(&id).await?.expect("payment");
    assert_eq!(row.notify_url.as_deref(), Some(url.as_str()));
    let effective: Value = serde_json::from_str(&row.effective_request)?;
    assert!(effective.get("notifyUrl").is_none(), "the provider does not learn the service's address");

    assert_eq!(post(&app, &token, &format!("{}/cancel", payment_path(&id)), "", None).await?.status(), 200);
    let queued = app.state.db.notifications_of(&id).await?;
    assert_eq!(queued.iter().map(|m| m.url.as_str()).collect::<Vec<_>>(), vec![url.as_str()]);
    // The delivery worker sends it; the operator's log then shows it delivered at the first attempt.
    let delivered = || {
        let list = ctx.cli_ok(&["notifications", "list", "--transaction", &id])?;
        let line = list.lines().find(|line| line.starts_with(queued[0].id.as_str())).unwrap_or_default().to_owned();
        anyhow::Ok(line.split_whitespace().nth(3) == Some("delivered")).map(|done| done.then_some(line))
    };
    let line = eventually(Duration::from_secs(20), "notification delivered", || async { delivered() }).await?;
    assert_eq!(line.split_whitespace().nth(4), Some("1"), "one attempt: {line}");
    let received = received.lock().map(|r| r.clone()).unwrap_or_default();
    assert_eq!(received.len(), 1, "signed with the service's secret and delivered to the notifyUrl");
    assert_eq!(received[0].0, queued[0].id);
    assert_eq!(received[0].1["data"]["transactionId"], id.as_str());
    assert_eq!(received[0].1["data"]["status"], "CANCELED");
    app.stop().await
}
backend_test!(a_notification_for_a_payment_with_a_notify_url_arrives_there);

async fn refused_notify_url(app: &TestApp, notify_url: &str) -> anyhow::Result<Value> {
    let token = bearer(app).await?;
    let mut request = body(app, "NOTIFY-BAD");
    request["notifyUrl"] = Value::String(notify_url.to_owned());
    let refused = problem(create(app, &token, TENANT, &request, None).await?, 400, "VALIDATION_ERROR").await?;
    assert!(refused["detail"].as_str().unwrap_or_default().contains("notifyUrl"), "{refused}");
    assert!(!app.state.db.payment_exists("demo-service", TENANT, "NOTIFY-BAD").await?, "nothing created");
    Ok(refused)
}

pub async fn a_notify_url_that_is_not_a_url_is_refused(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    refused_notify_url(&app, "not a url").await?;
    app.stop().await
}
backend_test!(a_notify_url_that_is_not_a_url_is_refused);

pub async fn an_ftp_notify_url_is_refused(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    refused_notify_url(&app, "ftp://hooks.example.org/pforte").await?;
    app.stop().await
}
backend_test!(an_ftp_notify_url_is_refused);

pub async fn a_plain_http_notify_url_to_a_public_host_is_refused(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let refused = refused_notify_url(&app, "http://hooks.example.org/pforte").await?;
    assert!(refused["detail"].as_str().unwrap_or_default().contains("https"), "{refused}");
    app.stop().await
}
backend_test!(a_plain_http_notify_url_to_a_public_host_is_refused);

pub async fn a_notify_url_for_a_service_without_a_notification_secret_is_refused(ctx: TestContext) -> TestResult {
    let clients = ctx.clients_with(&[("kfz", kfz_client())]);
    let app = ctx.spawn_app_with(|f| f.merge(("registry.clients", clients)), Arc::new(SystemClock)).await;
    let mut request = body(&app, "NOTIFY-NOSECRET");
    request["notifyUrl"] = Value::String("https://kfz.example.org/hooks".to_owned());
    let response = app
        .client
        .post(app.url(&format!("/paymenttransaction/kfz-service/{TENANT}")))
        .basic_auth("kfz", Some(KFZ_SECRET))
        .json(&request)
        .send()
        .await?;
    let refused = problem(response, 400, "VALIDATION_ERROR").await?;
    assert!(refused["detail"].as_str().unwrap_or_default().contains("notification_secret"), "{refused}");
    assert!(!app.state.db.payment_exists("kfz-service", TENANT, "NOTIFY-NOSECRET").await?);
    app.stop().await
}
backend_test!(a_notify_url_for_a_service_without_a_notification_secret_is_refused);

//! `notifyUrl`, pforte's extension of the create request: this payment's notifications go there,
//! signed with the service's registered secret.

use std::sync::{Arc, Mutex};

use pforte::clock::SystemClock;
use pforte::crypto::webhook::WebhookSecret;
use pforte::http_client::{GuardedClient, Reach};
use pforte::payment::notify::{Notifier, Round};
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

/// Private, link-local, unique-local, CGNAT and similar targets are not public hosts: a service
/// could otherwise make pforte POST into the authority's own network (issue 14, finding 2).
pub async fn a_notify_url_to_a_private_address_is_refused(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    for url in [
        "https://10.0.0.5/hooks",
        "https://192.168.1.20/hooks",
        "https://172.16.0.1/hooks",
        "https://169.254.169.254/latest/meta-data",
        "https://100.64.0.1/hooks",
        "https://[fd00::1]/hooks",
        "https://[fe80::1]/hooks",
        "https://[::ffff:10.0.0.1]/hooks",
        "https://0.0.0.0/hooks",
        "https://224.0.0.1/hooks",
        "https://192.0.2.10/hooks",
        "https://hooks.localhost/pforte",
        "http://hooks.localhost:8081/admin/shutdown",
    ] {
        let refused = refused_notify_url(&app, url).await?;
        let detail = refused["detail"].as_str().unwrap_or_default();
        assert!(detail.contains("public host"), "{url}: {refused}");
    }
    app.stop().await
}
backend_test!(a_notify_url_to_a_private_address_is_refused);

/// In production (no development simulators) a stored loopback URL, e.g. one accepted before this
/// rule or a registered `notification_url`, is not called: the delivery refuses it before sending,
/// gives the message up and says why in the notification log (issue 14, finding 2).
pub async fn a_loopback_notify_url_is_not_called_in_production(ctx: TestContext) -> TestResult {
    let (url, received) = receiver("/admin/shutdown").await?;
    let app = ctx.spawn_app_with(|f| f.merge(("workers.notifications", false)), Arc::new(SystemClock)).await;
    let token = bearer(&app).await?;
    let mut request = body(&app, "NOTIFY-PROD");
    request["notifyUrl"] = Value::String(url.clone());
    let created: Value = create(&app, &token, TENANT, &request, None).await?.json().await?;
    let id = id_of(&created);
    assert_eq!(post(&app, &token, &format!("{}/cancel", payment_path(&id)), "", None).await?.status(), 200);

    let production = GuardedClient::new(Reach::Public)?;
    let notifier = Notifier::new(app.state.db.clone(), app.state.registry.clone(), production, app.state.clock.clone());
    assert_eq!(notifier.deliver_due().await?, Round { delivered: 0, retried: 0, gave_up: 1 });
    assert!(received.lock().map(|r| r.is_empty()).unwrap_or(false), "nothing sent to the loopback address");
    let message = app.state.db.notifications_of(&id).await?.remove(0);
    let attempts = app.state.db.notification_attempts(&message.id).await?;
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].error.as_deref(), Some("refused: not https to a public host"));
    let shown = ctx.cli_ok(&["notifications", "show", &message.id])?;
    assert!(shown.contains("refused: not https to a public host"), "{shown}");
    app.stop().await
}
backend_test!(a_loopback_notify_url_is_not_called_in_production);

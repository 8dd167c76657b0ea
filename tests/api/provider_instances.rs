//! The running service keeps one adapter per payment provider instance: what an adapter keeps
//! between calls (here its OAuth2 client-credentials token) serves every payment, not one call.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use pforte::clock::SystemClock;
use serde_json::{json, Value};

use crate::helpers::{copy_dir, TestContext, TestResult, MANIFEST_DIR};
use crate::payment_api::{bearer, body, create};

/// An XBezahldienste provider that takes only its own OAuth2 token, counts how often one is
/// fetched, and keeps every payment open.
#[derive(Clone, Default)]
struct Stub {
    base: String,
    tokens: Arc<AtomicUsize>,
    unauthorised: Arc<AtomicUsize>,
    created: Arc<Mutex<Vec<String>>>,
}

const STUB_TOKEN: &str = "stub-access-token";

impl Stub {
    async fn start() -> anyhow::Result<Stub> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let stub = Stub { base: format!("http://127.0.0.1:{}", listener.local_addr()?.port()), ..Stub::default() };
        let router = Router::new()
            .route("/token", post(token))
            .route("/api/paymenttransaction/{o}/{e}", post(stub_create))
            .route("/api/paymenttransaction/{o}/{e}/{reference}", get(stub_read))
            .with_state(stub.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Ok(stub)
    }

    fn authorised(&self, headers: &HeaderMap) -> bool {
        let ok = headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {STUB_TOKEN}"));
        if !ok {
            self.unauthorised.fetch_add(1, Ordering::SeqCst);
        }
        ok
    }

    fn information(&self, o: &str, e: &str, reference: &str) -> Value {
        json!({
            "transactionUrl": format!("{}/api/paymenttransaction/{o}/{e}/{reference}", self.base),
            "transactionRedirectUrl": format!("{}/page/{reference}", self.base),
            "transactionId": reference,
            "status": "INITIAL",
        })
    }
}

async fn token(State(stub): State<Stub>) -> Json<Value> {
    stub.tokens.fetch_add(1, Ordering::SeqCst);
    Json(json!({ "access_token": STUB_TOKEN, "token_type": "Bearer", "expires_in": 3600 }))
}

async fn stub_create(
    State(stub): State<Stub>,
    Path((o, e)): Path<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if !stub.authorised(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let reference = format!("stub-{}", uuid::Uuid::new_v4().simple());
    if let Ok(mut created) = stub.created.lock() {
        created.push(reference.clone());
    }
    let information = stub.information(&o, &e, &reference);
    (StatusCode::CREATED, Json(json!({ "paymentRequest": body, "paymentInformation": information }))).into_response()
}

async fn stub_read(
    State(stub): State<Stub>,
    Path((o, e, reference)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    if !stub.authorised(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    Json(json!({ "paymentRequest": {}, "paymentInformation": stub.information(&o, &e, &reference) })).into_response()
}

/// Several payments created, and one canceled (which reads its status at the provider first),
/// through the payment API of one running service: the provider is asked for a token once.
pub async fn one_oauth2_token_serves_every_payment_of_a_provider_instance(ctx: TestContext) -> TestResult {
    let stub = Stub::start().await?;
    let (providers, tenants) = (ctx.dir.path().join("providers"), ctx.dir.path().join("tenants"));
    copy_dir(&std::path::Path::new(MANIFEST_DIR).join("providers"), &providers)?;
    let provider = format!(
        "kind = \"xbezahldienste\"\ndisplay_name = \"OAuth2 stub\"\nbase_url = \"{base}/api\"\ntimeout_secs = 5\n\n\
         [auth]\nmethod = \"oauth2_client_credentials\"\ntoken_url = \"{base}/token\"\nclient_id = \"pforte\"\n\
         client_secret = \"plain:stub-client-secret\"\n",
        base = stub.base
    );
    std::fs::write(providers.join("payment/stub.toml"), provider)?;
    copy_dir(&std::path::Path::new(MANIFEST_DIR).join("config/tenants"), &tenants)?;
    let munich = std::fs::read_to_string(tenants.join("09162000.toml"))?;
    std::fs::write(tenants.join("09162000.toml"), munich.replace("provider = \"sim-pay\"", "provider = \"stub\""))?;
    let app = ctx
        .spawn_app_with(
            |f| {
                f.merge(("registry.providers", providers))
                    .merge(("registry.tenants", tenants))
                    .merge(("workers.payment_status", false))
            },
            Arc::new(SystemClock),
        )
        .await;
    let token = bearer(&app).await?;

    let mut ids = Vec::new();
    for n in 0..4 {
        let created = create(&app, &token, "09162000", &body(&app, &format!("OAUTH-{n}")), None).await?;
        assert_eq!(created.status(), 201);
        let created: Value = created.json().await?;
        ids.push(created["paymentInformation"]["transactionId"].as_str().unwrap_or_default().to_owned());
    }
    let cancel = app
        .client
        .post(app.url(&format!("/paymenttransaction/demo-service/09162000/{}/cancel", ids[0])))
        .bearer_auth(&token)
        .send()
        .await?;
    assert_eq!(cancel.status(), 200);
    let canceled: Value = cancel.json().await?;
    assert_eq!(canceled["paymentInformation"]["status"], "CANCELED");

    assert_eq!(stub.created.lock().map(|c| c.len()).unwrap_or_default(), 4, "every payment reached the stub");
    assert_eq!(stub.unauthorised.load(Ordering::SeqCst), 0, "every call carried the stub's token");
    assert_eq!(stub.tokens.load(Ordering::SeqCst), 1, "one token for the provider instance, not one per call");
    app.stop().await
}
backend_test!(one_oauth2_token_serves_every_payment_of_a_provider_instance);

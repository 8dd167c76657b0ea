//! Payment providers and notification receivers that fail (issue 16, item 3): a provider that
//! answers 5xx, resets the connection or hangs in the middle of creates from concurrent clients
//! leaves nothing stored and the Idempotency-Key free, so the retry with the same key creates the
//! payment once; a receiver that hangs, resets or answers 5xx gets the message later, once, and a
//! hanging receiver does not hold up the others. Resets are real: the stub sits behind a TCP proxy
//! that it cuts while the request is in flight.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use pforte::clock::{Clock, ManualClock, SystemClock};
use pforte::payment::notify::Round;
use pforte::payment::state::Source;
use pforte::payment::Status;
use serde_json::{json, Value};

use crate::helpers::{copy_dir, eventually, TestApp, TestContext, TestResult, MANIFEST_DIR};
use crate::payment_api::{bearer, body, create};
use crate::payments::{app_notifying, new_payment, notifier, receiver, signals};
use crate::tcp_proxy::TcpProxy;

/// How a stub (provider or receiver) answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    None,
    ServerError,
    /// Cuts the proxy in front of itself while the request is in flight: the caller sees a reset.
    Reset,
    /// Never answers (longer than any timeout of pforte's).
    Hang,
}

/// What the stub shares with its handlers.
#[derive(Clone)]
struct Stub {
    fault: Arc<Mutex<Fault>>,
    proxy: Arc<OnceLock<TcpProxy>>,
    /// Requests the stub answered with success.
    answered: Arc<AtomicUsize>,
}

impl Stub {
    fn fault(&self) -> Fault {
        self.fault.lock().map(|f| *f).unwrap_or(Fault::None)
    }

    fn set(&self, fault: Fault) {
        if let Ok(mut current) = self.fault.lock() {
            *current = fault;
        }
        if let Some(proxy) = self.proxy.get() {
            proxy.restore();
        }
    }

    /// Applies the fault; `None` when the request should be answered normally.
    async fn misbehave(&self) -> Option<Response> {
        match self.fault() {
            Fault::None => None,
            Fault::ServerError => Some(StatusCode::BAD_GATEWAY.into_response()),
            Fault::Reset => {
                if let Some(proxy) = self.proxy.get() {
                    proxy.cut();
                }
                tokio::time::sleep(Duration::from_secs(30)).await;
                Some(StatusCode::OK.into_response())
            }
            Fault::Hang => {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Some(StatusCode::OK.into_response())
            }
        }
    }

    /// Serves the router `make` builds for the base URL callers use (the proxy's), on loopback.
    async fn serve(&self, make: impl FnOnce(String) -> Router) -> anyhow::Result<String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let proxy = TcpProxy::start(listener.local_addr()?).await?;
        let base = format!("http://{}", proxy.address());
        let router = make(base.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        self.proxy.set(proxy).map_err(|_| anyhow::anyhow!("the stub has a proxy already"))?;
        Ok(base)
    }
}

fn stub() -> Stub {
    Stub { fault: Arc::new(Mutex::new(Fault::None)), proxy: Arc::default(), answered: Arc::default() }
}

async fn provider_create(
    State((stub, base)): State<(Stub, String)>,
    Path((o, e)): Path<(String, String)>,
    Json(request): Json<Value>,
) -> Response {
    if let Some(failure) = stub.misbehave().await {
        return failure;
    }
    stub.answered.fetch_add(1, Ordering::SeqCst);
    let reference = format!("stub-{}", uuid::Uuid::new_v4().simple());
    let information = json!({
        "transactionUrl": format!("{base}/api/paymenttransaction/{o}/{e}/{reference}"),
        "transactionRedirectUrl": format!("{base}/page/{reference}"),
        "transactionId": reference,
        "status": "INITIAL",
    });
    (StatusCode::CREATED, Json(json!({ "paymentRequest": request, "paymentInformation": information }))).into_response()
}

/// A running pforte whose authority 09162000 pays through the stub provider at `base` (timeout 1 s).
pub(crate) async fn app_paying_through(ctx: &TestContext, base: &str) -> anyhow::Result<TestApp> {
    let (providers, tenants) = (ctx.dir.path().join("providers"), ctx.dir.path().join("tenants"));
    copy_dir(&std::path::Path::new(MANIFEST_DIR).join("providers"), &providers)?;
    let provider = format!(
        "kind = \"xbezahldienste\"\ndisplay_name = \"Faulty stub\"\nbase_url = \"{base}/api\"\ntimeout_secs = 1\n\n\
         [auth]\nmethod = \"basic\"\nusername = \"pforte\"\npassword = \"plain:stub-password\"\n"
    );
    std::fs::write(providers.join("payment/stub.toml"), provider)?;
    copy_dir(&std::path::Path::new(MANIFEST_DIR).join("config/tenants"), &tenants)?;
    let munich = std::fs::read_to_string(tenants.join("09162000.toml"))?;
    std::fs::write(tenants.join("09162000.toml"), munich.replace("provider = \"sim-pay\"", "provider = \"stub\""))?;
    Ok(ctx
        .spawn_app_with(
            |f| {
                f.merge(("registry.providers", providers))
                    .merge(("registry.tenants", tenants))
                    .merge(("workers.payment_status", false))
            },
            Arc::new(SystemClock),
        )
        .await)
}

async fn stored_payments(ctx: &TestContext, prefix: &str) -> anyhow::Result<i64> {
    let pool = crate::keys::any_pool(&ctx.database_url).await?;
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM payments WHERE request_id LIKE $1")
        .bind(format!("{prefix}%"))
        .fetch_one(&pool)
        .await?;
    pool.close().await;
    Ok(count)
}

/// Eight clients create at once while the provider fails in each way; every answer is 503 and
/// nothing is stored. Once the provider is back, each retries with its own Idempotency-Key: 201,
/// one payment each; a further retry replays the same payment.
pub async fn a_provider_failing_mid_create_leaves_nothing_and_the_retry_creates_once(ctx: TestContext) -> TestResult {
    let stub = stub();
    let state = stub.clone();
    let base = stub
        .serve(|base| {
            Router::new().route("/api/paymenttransaction/{o}/{e}", post(provider_create)).with_state((state, base))
        })
        .await?;
    let app = app_paying_through(&ctx, &base).await?;
    let token = bearer(&app).await?;

    for fault in [Fault::ServerError, Fault::Reset, Fault::Hang] {
        let prefix = format!("F-{fault:?}-");
        let requests: Vec<(String, Value)> =
            (0..8).map(|n| (format!("key-{fault:?}-{n}"), body(&app, &format!("{prefix}{n}")))).collect();
        stub.set(fault);
        let started = std::time::Instant::now();
        let answers = futures_util::future::join_all(
            requests.iter().map(|(key, body)| create(&app, &token, "09162000", body, Some(key))),
        )
        .await;
        for answer in answers {
            let answer = answer?;
            let status = answer.status().as_u16();
            let text = answer.text().await?;
            assert_eq!(status, 503, "{fault:?}: {text}");
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{fault:?}: answered within the provider's timeout");
        assert_eq!(stored_payments(&ctx, &prefix).await?, 0, "{fault:?}: nothing stored");

        stub.set(Fault::None);
        let before = stub.answered.load(Ordering::SeqCst);
        let retries = futures_util::future::join_all(
            requests.iter().map(|(key, body)| create(&app, &token, "09162000", body, Some(key))),
        )
        .await;
        let mut ids = Vec::new();
        for retry in retries {
            let retry = retry?;
            assert_eq!(retry.status(), 201, "{fault:?}: the retry with the same key creates");
            let created: Value = retry.json().await?;
            ids.push(created["paymentInformation"]["transactionId"].as_str().unwrap_or_default().to_owned());
        }
        assert_eq!(stored_payments(&ctx, &prefix).await?, 8, "{fault:?}: one payment per key");
        assert_eq!(stub.answered.load(Ordering::SeqCst) - before, 8, "{fault:?}: one create at the provider per key");
        let (key, body) = &requests[0];
        let replay: Value = create(&app, &token, "09162000", body, Some(key)).await?.json().await?;
        assert_eq!(replay["paymentInformation"]["transactionId"], ids[0].as_str(), "{fault:?}: replayed, not created");
        assert_eq!(stored_payments(&ctx, &prefix).await?, 8);
    }
    app.stop().await
}
backend_test!(a_provider_failing_mid_create_leaves_nothing_and_the_retry_creates_once);

/// A notification receiver: records each delivery's id, or fails the way it is told to.
#[derive(Clone)]
struct FaultyReceiver {
    stub: Stub,
    received: Arc<Mutex<Vec<String>>>,
    url: String,
}

async fn receive(State(receiver): State<FaultyReceiver>, headers: axum::http::HeaderMap) -> Response {
    if let Some(failure) = receiver.stub.misbehave().await {
        return failure;
    }
    let id = headers.get("webhook-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    receiver.received.lock().map(|mut r| r.push(id)).ok();
    StatusCode::NO_CONTENT.into_response()
}

async fn faulty_receiver() -> anyhow::Result<FaultyReceiver> {
    let stub = stub();
    let received = Arc::default();
    let state = FaultyReceiver { stub: stub.clone(), received: Arc::clone(&received), url: String::new() };
    let base = stub.serve(|_| Router::new().route("/hook", post(receive)).with_state(state)).await?;
    Ok(FaultyReceiver { stub, received, url: format!("{base}/hook") })
}

impl FaultyReceiver {
    fn received(&self) -> Vec<String> {
        self.received.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

/// A status change is notified to a receiver that hangs, resets the connection or answers 503:
/// the attempt is logged, the message waits its backoff, and after the receiver recovers it
/// arrives exactly once.
pub async fn a_failing_receiver_gets_the_message_once_after_it_recovers(ctx: TestContext) -> TestResult {
    let clock = ManualClock::at_millis(chrono::Utc::now().timestamp_millis());
    // The demo client's own receiver is never used: each payment names the faulty one.
    let unused = receiver().await?;
    let app = app_notifying(&ctx, &unused, clock.clone()).await?;
    let faulty = faulty_receiver().await?;
    for fault in [Fault::ServerError, Fault::Reset, Fault::Hang] {
        faulty.stub.set(fault);
        let mut payment = new_payment(&app, &format!("req-{fault:?}"));
        payment.notify_url = Some(faulty.url.clone());
        signals(&app).create(&payment).await?;
        signals(&app).record(&payment.transaction_id, Status::Payed, Source::Provider, None).await?;
        let id = app.state.db.notifications_of(&payment.transaction_id).await?.remove(0).id;

        assert_eq!(notifier(&app).deliver_due().await?, Round { delivered: 0, retried: 1, gave_up: 0 }, "{fault:?}");
        let waiting = app.state.db.notifications_of(&payment.transaction_id).await?.remove(0);
        let pause = waiting.next_attempt_at - clock.now_millis();
        assert!(pause >= 20_000, "{fault:?}: the retry waits its backoff, not at once: {pause} ms");
        assert_eq!(notifier(&app).deliver_due().await?, Round::default(), "{fault:?}: not again before the backoff");

        faulty.stub.set(Fault::None);
        clock.advance_secs(3600);
        assert_eq!(notifier(&app).deliver_due().await?.delivered, 1, "{fault:?}");
        clock.advance_secs(24 * 3600);
        assert_eq!(notifier(&app).deliver_due().await?, Round::default(), "{fault:?}: delivered means done");
        assert_eq!(faulty.received().iter().filter(|r| **r == id).count(), 1, "{fault:?}: exactly once");
        let log = app.state.db.notification_attempts(&id).await?;
        assert_eq!(log.len(), 2, "{fault:?}: {log:?}");
        match fault {
            Fault::ServerError => assert_eq!(log[0].http_status, Some(502)),
            _ => assert!(log[0].http_status.is_none() && log[0].error.is_some(), "{fault:?}: {log:?}"),
        }
    }
    assert!(unused.received.lock().map(|r| r.is_empty()).unwrap_or(false));
    app.stop().await
}
backend_test!(a_failing_receiver_gets_the_message_once_after_it_recovers);

/// One receiver hangs with several messages due; another receiver's message in the same round
/// arrives without waiting for the hanging one's timeouts.
pub async fn a_hanging_receiver_does_not_hold_up_the_others(ctx: TestContext) -> TestResult {
    let clock = ManualClock::at_millis(chrono::Utc::now().timestamp_millis());
    let healthy = receiver().await?;
    let app = app_notifying(&ctx, &healthy, clock).await?;
    let hanging = faulty_receiver().await?;
    hanging.stub.set(Fault::Hang);
    for n in 0..3 {
        let mut payment = new_payment(&app, &format!("req-hang-{n}"));
        payment.notify_url = Some(hanging.url.clone());
        signals(&app).create(&payment).await?;
        signals(&app).record(&payment.transaction_id, Status::Payed, Source::Provider, None).await?;
    }
    let payment = new_payment(&app, "req-healthy");
    signals(&app).create(&payment).await?;
    signals(&app).record(&payment.transaction_id, Status::Payed, Source::Provider, None).await?;

    let worker = notifier(&app);
    let started = std::time::Instant::now();
    let round = tokio::spawn(async move { worker.deliver_due().await });
    eventually(Duration::from_secs(5), "the healthy receiver gets its message", || async {
        Ok(healthy.received.lock().map(|r| !r.is_empty()).unwrap_or(false).then_some(()))
    })
    .await?;
    eprintln!("the healthy receiver got its message after {:?} while another hangs", started.elapsed());
    let round = round.await??;
    assert_eq!(round.delivered, 1, "{round:?}");
    assert!(round.retried >= 1, "the hanging receiver's message waits for a retry: {round:?}");
    assert!(hanging.received().is_empty());
    app.stop().await
}
backend_test!(a_hanging_receiver_does_not_hold_up_the_others);

//! Two pforte instances on one PostgreSQL database, workers on, sharing one payment provider (a stub
//! in the test) and one online service: work done through either instance is done once. PostgreSQL
//! only: several instances sharing a database is what it is for (SQLite is one process's file).
//!
//! The instances run in this process on one manual clock, so the status worker can be made to see
//! payments expire. Each instance signs notifications with a secret of its own and reaches the stub
//! under a path of its own, so the receiver and the stub can tell which instance did what.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use pforte::clock::ManualClock;
use pforte::payment::worker::TIMEOUT_DETAIL;
use serde_json::{json, Value};
use sqlx::Row;

use crate::helpers::{copy_dir, eventually, NotificationReceiver, TestApp, TestContext, TestResult, MANIFEST_DIR};
use crate::keys::any_pool;
use crate::oidc::DEMO_SECRET;

const SECRETS: [&str; 2] =
    ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_XhU7Wkr3ASIjW+6x/kAbDvWY3+otvWFk7lCaaepiuJs="];
const INSTANCES: [&str; 2] = ["a", "b"];
const PAYMENTS: usize = 48;

/// An XBezahldienste provider that keeps its payments across both instances and counts, per
/// instance (the first path segment), how often it was asked for a status.
#[derive(Clone, Default)]
struct Stub {
    base: String,
    state: Arc<Mutex<StubState>>,
}

#[derive(Default)]
struct StubState {
    /// requestId → (reference, status)
    payments: HashMap<String, (String, &'static str)>,
    reads: HashMap<String, usize>,
}

impl Stub {
    async fn start() -> anyhow::Result<Stub> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let stub = Stub { base: format!("http://127.0.0.1:{}", listener.local_addr()?.port()), ..Stub::default() };
        let router = Router::new()
            .route("/{instance}/paymenttransaction/{o}/{e}", post(stub_create))
            .route("/{instance}/paymenttransaction/{o}/{e}/{reference}", get(stub_read))
            .with_state(stub.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Ok(stub)
    }

    fn information(&self, path: (&str, &str, &str), reference: &str, status: &str) -> Value {
        let (instance, o, e) = path;
        json!({
            "transactionUrl": format!("{}/{instance}/paymenttransaction/{o}/{e}/{reference}", self.base),
            "transactionRedirectUrl": format!("{}/{instance}/page/{reference}", self.base),
            "transactionId": reference,
            "status": status,
        })
    }

    /// The citizen decided at the provider.
    fn settle(&self, request_id: &str, status: &'static str) {
        if let Some(payment) = self.state.lock().ok().as_mut().and_then(|s| s.payments.get_mut(request_id)) {
            payment.1 = status;
        }
    }

    fn reads(&self) -> HashMap<String, usize> {
        self.state.lock().map(|s| s.reads.clone()).unwrap_or_default()
    }
}

async fn stub_create(
    State(stub): State<Stub>,
    Path((instance, o, e)): Path<(String, String, String)>,
    Json(body): Json<Value>,
) -> Response {
    let request_id = body["requestId"].as_str().unwrap_or_default().to_owned();
    let reference = format!("stub-{}", uuid::Uuid::new_v4().simple());
    if let Ok(mut state) = stub.state.lock() {
        state.payments.insert(request_id, (reference.clone(), "INITIAL"));
    }
    let information = stub.information((&instance, &o, &e), &reference, "INITIAL");
    (StatusCode::CREATED, Json(json!({ "paymentRequest": body, "paymentInformation": information }))).into_response()
}

async fn stub_read(
    State(stub): State<Stub>,
    Path((instance, o, e, reference)): Path<(String, String, String, String)>,
) -> Response {
    let status = stub.state.lock().ok().and_then(|mut state| {
        *state.reads.entry(instance.clone()).or_default() += 1;
        state.payments.values().find(|(r, _)| *r == reference).map(|(_, status)| *status)
    });
    match status {
        Some(status) => {
            Json(json!({ "paymentInformation": stub.information((&instance, &o, &e), &reference, status) }))
                .into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// One instance: the shipped registry, except that München pays through the stub (under this
/// instance's path) and the demo service is notified at `receiver`, signed with `secret`.
async fn instance(
    ctx: &TestContext,
    name: &str,
    stub: &Stub,
    receiver: &NotificationReceiver,
    secret: &str,
    clock: &ManualClock,
) -> anyhow::Result<TestApp> {
    let root = ctx.dir.path().join(name);
    let (providers, tenants) = (root.join("providers"), root.join("tenants"));
    copy_dir(&std::path::Path::new(MANIFEST_DIR).join("providers"), &providers)?;
    let provider = format!(
        "kind = \"xbezahldienste\"\ndisplay_name = \"Stub\"\nbase_url = \"{}/{name}\"\ntimeout_secs = 5\n\n[auth]\nmethod = \"none\"\n",
        stub.base
    );
    std::fs::write(providers.join("payment/stub.toml"), provider)?;
    copy_dir(&std::path::Path::new(MANIFEST_DIR).join("config/tenants"), &tenants)?;
    let munich = std::fs::read_to_string(tenants.join("09162000.toml"))?;
    std::fs::write(tenants.join("09162000.toml"), munich.replace("provider = \"sim-pay\"", "provider = \"stub\""))?;
    let clients = ctx.clients_notifying(&format!("{name}/clients"), &receiver.url, secret)?;
    let app = ctx
        .spawn_app_with(
            |f| {
                f.merge(("registry.providers", providers))
                    .merge(("registry.tenants", tenants))
                    .merge(("registry.clients", clients))
            },
            Arc::new(clock.clone()),
        )
        .await;
    Ok(app)
}

async fn create(client: reqwest::Client, base: String, n: usize) -> anyhow::Result<(usize, String, String)> {
    let request_id = format!("M-{n}");
    let body = json!({
        "requestId": request_id, "requestTimestamp": "2026-11-29T10:00:00+01:00", "currency": "EUR",
        "grosAmount": 7.50, "purpose": "Meldebescheinigung", "redirectUrl": format!("{base}/demo/bezahlt"),
        "items": [{ "totalNetAmount": 7.50 }]
    });
    let response = client
        .post(format!("{base}/paymenttransaction/demo-service/09162000"))
        .basic_auth("demo", Some(DEMO_SECRET))
        .json(&body)
        .send()
        .await?;
    anyhow::ensure!(response.status() == 201, "create {request_id}: {}", response.status());
    let created: Value = response.json().await?;
    let id = created["paymentInformation"]["transactionId"].as_str().unwrap_or_default().to_owned();
    Ok((n, request_id, id))
}

/// The citizen comes back from the provider to `base` (either instance: behind a load balancer).
async fn come_back(client: reqwest::Client, base: String, id: String) -> TestResult {
    let back = client.get(format!("{base}/pay/{id}/return")).send().await?;
    anyhow::ensure!(back.status() == 303, "return {id}: {}", back.status());
    Ok(())
}

/// Waits until every notification written so far reached the receiver. The manual clock only moves
/// after this: moving it while a worker holds a lease would hand the lease to the other worker.
async fn all_delivered(pool: &sqlx::AnyPool) -> TestResult {
    eventually(Duration::from_secs(20), "outbox delivered", || async {
        let open: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM notification_outbox WHERE delivered_at IS NULL")
            .fetch_one(pool)
            .await?;
        Ok((open == 0).then_some(()))
    })
    .await
}

async fn statuses_reached(pool: &sqlx::AnyPool, expected: &[(String, &'static str)], what: &str) -> TestResult {
    eventually(Duration::from_secs(30), what, || async {
        let rows = sqlx::query("SELECT transaction_id, status FROM payments").fetch_all(pool).await?;
        let mut now = HashMap::new();
        for row in &rows {
            now.insert(row.try_get::<String, _>("transaction_id")?, row.try_get::<String, _>("status")?);
        }
        Ok(expected.iter().all(|(id, status)| now.get(id).is_some_and(|s| s == status)).then_some(()))
    })
    .await
}

pub async fn two_instances_on_one_database_do_each_piece_of_work_once(ctx: TestContext) -> TestResult {
    let clock = ManualClock::at_millis(chrono::Utc::now().timestamp_millis());
    let receiver = NotificationReceiver::start(&SECRETS).await?;
    let stub = Stub::start().await?;
    let mut apps = Vec::new();
    for (name, secret) in INSTANCES.iter().zip(SECRETS) {
        apps.push(instance(&ctx, name, &stub, &receiver, secret, &clock).await?);
    }
    let pool = any_pool(&ctx.database_url).await?;

    // Created through both instances at once.
    let mut work = tokio::task::JoinSet::new();
    for n in 0..PAYMENTS {
        let app = &apps[n % 2];
        work.spawn(create(app.client.clone(), app.address.clone(), n));
    }
    let mut created = Vec::new();
    while let Some(result) = work.join_next().await {
        created.push(result??);
    }
    // Fates by number: paid and back through the other instance; canceled and back through a
    // random one; paid but never back (the status worker finds out); never paid (it expires).
    let fate = |n: usize| ["PAYED", "CANCELED", "PAYED", "FAILED"][n % 4];
    for (n, request_id, _) in &created {
        if n % 4 != 3 {
            stub.settle(request_id, fate(*n));
        }
    }
    let mut returns = tokio::task::JoinSet::new();
    for (n, _, id) in created.iter().filter(|(n, _, _)| n % 4 < 2) {
        let app = &apps[if n % 4 == 0 { (n + 1) % 2 } else { rand::random::<usize>() % 2 }];
        returns.spawn(come_back(app.client.clone(), app.address.clone(), id.clone()));
    }
    while let Some(result) = returns.join_next().await {
        result??;
    }
    let with_fate = |fates: &[usize]| -> Vec<(String, &'static str)> {
        created.iter().filter(|(n, _, _)| fates.contains(&(n % 4))).map(|(n, _, id)| (id.clone(), fate(*n))).collect()
    };
    statuses_reached(&pool, &with_fate(&[0, 1]), "returned payments recorded").await?;
    all_delivered(&pool).await?;

    // A minute later every open payment is due for a status read again.
    clock.advance_secs(61);
    statuses_reached(&pool, &with_fate(&[0, 1, 2]), "paid payments found by the status worker").await?;
    all_delivered(&pool).await?;

    // Past the two-hour lifetime: the rest expire.
    let reads_before = stub.reads();
    clock.advance_secs(2 * 3600);
    statuses_reached(&pool, &with_fate(&[0, 1, 2, 3]), "open payments expired").await?;
    all_delivered(&pool).await?;
    let reads_after = stub.reads();

    check_exactly_once(&pool, &receiver).await?;
    let expired: HashSet<String> = with_fate(&[3]).into_iter().map(|(id, _)| id).collect();
    check_events(&pool, &expired).await?;
    // Which instance does a piece of work is not steered: the first worker to poll after work
    // appears claims up to a batch of it. The split is shown, not asserted.
    let delivered_by = |i: usize| receiver.received().iter().filter(|d| d.signed_with == i).count();
    let expiry_reads = |name: &str| reads_after.get(name).unwrap_or(&0) - reads_before.get(name).unwrap_or(&0);
    println!(
        "two instances: notifications delivered by a {} / b {}; status reads while expiring a {} / b {}",
        delivered_by(0),
        delivered_by(1),
        expiry_reads("a"),
        expiry_reads("b")
    );
    assert_eq!(delivered_by(0) + delivered_by(1), PAYMENTS, "signed by one of the two instances");
    for app in apps {
        app.stop().await?;
    }
    Ok(())
}
postgres_test!(two_instances_on_one_database_do_each_piece_of_work_once);

/// No `webhook-id` arrived twice, every message arrived, and each was attempted exactly once.
async fn check_exactly_once(pool: &sqlx::AnyPool, receiver: &NotificationReceiver) -> TestResult {
    let received = receiver.received();
    let ids: HashSet<&str> = received.iter().map(|d| d.webhook_id.as_str()).collect();
    assert_eq!(ids.len(), received.len(), "no message arrived twice");
    let messages: Vec<String> = sqlx::query_scalar("SELECT id FROM notification_outbox").fetch_all(pool).await?;
    assert_eq!(messages.iter().map(String::as_str).collect::<HashSet<_>>(), ids, "every message arrived");
    let attempts = sqlx::query("SELECT outbox_id, COUNT(*) AS n FROM notification_attempts GROUP BY outbox_id")
        .fetch_all(pool)
        .await?;
    assert_eq!(attempts.len(), messages.len(), "every message was attempted");
    for row in &attempts {
        let n: i64 = row.try_get("n")?;
        assert_eq!(n, 1, "one attempt for {}", row.try_get::<String, _>("outbox_id")?);
    }
    Ok(())
}

/// Each expired payment failed once, by the timeout; no payment has two final events; each final
/// event has its one notification.
async fn check_events(pool: &sqlx::AnyPool, expired: &HashSet<String>) -> TestResult {
    let finals = sqlx::query(
        "SELECT transaction_id, to_status, source, detail FROM payment_events WHERE to_status <> 'INITIAL'",
    )
    .fetch_all(pool)
    .await?;
    let mut per_payment: HashMap<String, Vec<(String, String, Option<String>)>> = HashMap::new();
    for row in &finals {
        per_payment.entry(row.try_get("transaction_id")?).or_default().push((
            row.try_get("to_status")?,
            row.try_get("source")?,
            row.try_get("detail")?,
        ));
    }
    assert_eq!(per_payment.len(), PAYMENTS, "every payment ended");
    for (id, events) in &per_payment {
        assert_eq!(events.len(), 1, "{id} has one final event: {events:?}");
        if expired.contains(id) {
            let (status, source, detail) = &events[0];
            assert_eq!((status.as_str(), source.as_str()), ("FAILED", "timeout"), "{id}");
            assert_eq!(detail.as_deref(), Some(TIMEOUT_DETAIL));
        }
    }
    let notified: Vec<String> =
        sqlx::query_scalar("SELECT transaction_id FROM notification_outbox").fetch_all(pool).await?;
    assert_eq!(notified.len(), PAYMENTS, "one notification per final status");
    assert_eq!(notified.iter().collect::<HashSet<_>>().len(), PAYMENTS);
    Ok(())
}

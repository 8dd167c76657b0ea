//! Payment benchmark: payments created per second and their latency, (a) straight at a local
//! XBezahldienste provider stub and (b) through pforte (in process, on a loopback port) routed to the
//! same stub, with and without an Idempotency-Key; then notification deliveries per second from a
//! full outbox to a loopback receiver.
//!
//! ```sh
//! cargo run --release --example bench_payments -- --backend sqlite
//! cargo run --release --example bench_payments -- --backend postgres --postgres-url postgres://postgres@127.0.0.1:5432/postgres
//! ```
//! Each create is measured once at concurrency 1 (what pforte adds to one request) and once at
//! `--concurrency` (throughput). Stub, receiver, pforte and the load generator share the machine.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/report.rs"]
mod report;

/// The allocator the pforte binary uses (src/main.rs), so the benchmark measures what runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use report::Report;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::Json;
use clap::Parser;
use futures_util::stream::{self, StreamExt};
use pforte::app::Application;
use pforte::clock::SystemClock;
use pforte::config::Settings;
use pforte::keys::MasterKey;
use pforte::payment::notify::Notifier;
use pforte::registry::Registry;
use serde_json::{json, Value};
use sqlx::Connection;
use tokio_util::sync::CancellationToken;

const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");
const SECRET: &str = "demo-secret-change-me";

#[derive(Parser)]
struct Options {
    /// sqlite or postgres
    #[arg(long, default_value = "sqlite")]
    backend: String,
    /// Admin URL; the benchmark creates its own database there and drops it afterwards.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    postgres_url: String,
    /// Creates per throughput run.
    #[arg(long, default_value_t = 5000)]
    requests: usize,
    /// Requests in flight during throughput runs.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Creates per latency run (one at a time).
    #[arg(long, default_value_t = 500)]
    sequential: usize,
    /// Messages in the outbox for the delivery run.
    #[arg(long, default_value_t = 5000)]
    notifications: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = Options::parse();
    let dir = tempfile::tempdir()?;
    let (database_url, drop_after) = match options.backend.as_str() {
        "sqlite" => (format!("sqlite://{}/bench.db", dir.path().display()), None),
        "postgres" => {
            let name = format!("pforte_bench_{}", std::process::id());
            let mut conn = sqlx::PgConnection::connect(&options.postgres_url).await?;
            sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await?;
            let mut url = url::Url::parse(&options.postgres_url)?;
            url.set_path(&format!("/{name}"));
            (url.to_string(), Some(name))
        }
        other => anyhow::bail!("unknown backend {other}: use sqlite or postgres"),
    };
    let stub = start_stub().await?;
    let (receiver, received) = start_receiver().await?;
    let registry_dir = registry_routed_to(dir.path(), &stub, &receiver)?;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = format!("http://127.0.0.1:{}", listener.local_addr()?.port());
    let figment = Settings::figment(Some(Path::new(&format!("{MANIFEST_DIR}/config/default.toml"))))
        .map_err(|p| anyhow::anyhow!("{p}"))?
        .merge(("registry.providers", registry_dir.join("providers")))
        .merge(("registry.clients", registry_dir.join("clients")))
        .merge(("registry.tenants", registry_dir.join("tenants")))
        .merge(("database.url", database_url))
        .merge(("database.max_connections", 16))
        .merge(("keys.master_key", format!("plain:{}", MasterKey::generate().encode())))
        .merge(("server.public_url", address.clone()))
        // Only what a create does is measured; the delivery run starts its own worker.
        .merge(("workers.notifications", false))
        .merge(("workers.payment_status", false))
        .merge(("log.level", "warn"));
    let settings = Settings::from_figment(figment).map_err(|p| anyhow::anyhow!("{p}"))?;
    let _telemetry = pforte::telemetry::init(&settings.log, &settings.traces);
    let registry =
        Registry::load(&settings.registry, &settings.server.public_url, true).map_err(|p| anyhow::anyhow!("{p}"))?;
    let app = Application::build_on(listener, settings, registry, Arc::new(SystemClock))?;
    let state = app.state();
    let shutdown = app.shutdown_token();
    let server = tokio::spawn(app.run_until_stopped());
    state.readiness.wait().await;
    let client = reqwest::Client::builder().pool_max_idle_per_host(options.concurrency).build()?;
    let token = bearer(&client, &address).await?;

    println!(
        "pforte payment benchmark: backend {}, {} creates at concurrency {}, {} one at a time, {} cores",
        options.backend,
        options.requests,
        options.concurrency,
        options.sequential,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    let targets = [
        (
            "stub directly",
            Target { url: format!("{stub}/paymenttransaction/demo-service/09162000"), token: None, keyed: false },
        ),
        (
            "pforte",
            Target {
                url: format!("{address}/paymenttransaction/demo-service/09162000"),
                token: Some(token.clone()),
                keyed: false,
            },
        ),
        (
            "pforte + Idempotency-Key",
            Target {
                url: format!("{address}/paymenttransaction/demo-service/09162000"),
                token: Some(token),
                keyed: true,
            },
        ),
    ];
    let counter = Arc::new(AtomicUsize::new(0));
    for (name, target) in &targets {
        // Warm-up: connections, caches, the database's first pages.
        run(&client, target, &counter, 200, options.concurrency).await.print(&format!("{name} (warm-up)"), "creates/s");
    }
    for (name, target) in &targets {
        run(&client, target, &counter, options.sequential, 1)
            .await
            .print(&format!("{name}, one at a time"), "creates/s");
        let label = format!("{name}, {} at once", options.concurrency);
        run(&client, target, &counter, options.requests, options.concurrency).await.print(&label, "creates/s");
    }

    deliveries(&state, &received, options.notifications).await?;

    shutdown.cancel();
    server.await??;
    if let Some(name) = drop_after {
        let mut conn = sqlx::PgConnection::connect(&options.postgres_url).await?;
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut conn).await?;
    }
    Ok(())
}

/// A provider that answers every create at once, as XBezahldienste shapes it.
async fn start_stub() -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://127.0.0.1:{}", listener.local_addr()?.port());
    let stub_base = base.clone();
    let create = move |axum::extract::Path((o, e)): axum::extract::Path<(String, String)>, Json(body): Json<Value>| {
        let base = stub_base.clone();
        async move {
            let id = uuid::Uuid::new_v4().simple().to_string();
            let information = json!({
                "transactionUrl": format!("{base}/paymenttransaction/{o}/{e}/{id}"),
                "transactionRedirectUrl": format!("{base}/page/{id}"),
                "transactionId": id,
                "status": "INITIAL",
            });
            (StatusCode::CREATED, Json(json!({ "paymentRequest": body, "paymentInformation": information })))
        }
    };
    let router = axum::Router::new().route("/paymenttransaction/{o}/{e}", axum::routing::post(create));
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(base)
}

/// An online service's notification endpoint that counts what arrives and answers 200.
async fn start_receiver() -> anyhow::Result<(String, Arc<AtomicUsize>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://127.0.0.1:{}/hook", listener.local_addr()?.port());
    let received = Arc::new(AtomicUsize::new(0));
    let count = received.clone();
    let hook = move || {
        count.fetch_add(1, Ordering::SeqCst);
        async { StatusCode::OK }
    };
    let router = axum::Router::new().route("/hook", axum::routing::post(hook));
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok((url, received))
}

/// The shipped registry with München (09162000) paying through the stub and the demo service
/// notified at the receiver.
fn registry_routed_to(root: &Path, stub: &str, receiver: &str) -> anyhow::Result<std::path::PathBuf> {
    let dir = root.join("registry");
    for (from, to) in [("providers", "providers"), ("config/tenants", "tenants"), ("config/clients", "clients")] {
        copy_dir(&Path::new(MANIFEST_DIR).join(from), &dir.join(to))?;
    }
    std::fs::write(
        dir.join("providers/payment/bench-stub.toml"),
        format!(
            "kind = \"xbezahldienste\"\ndisplay_name = \"Stub\"\nbase_url = \"{stub}\"\n\n[auth]\nmethod = \"none\"\n"
        ),
    )?;
    let tenant = dir.join("tenants/09162000.toml");
    let text = std::fs::read_to_string(&tenant)?;
    std::fs::write(&tenant, text.replace("provider = \"sim-pay\"", "provider = \"bench-stub\""))?;
    let demo = dir.join("clients/demo.toml");
    let text = std::fs::read_to_string(&demo)?;
    let text: Vec<String> = text
        .lines()
        .map(
            |l| if l.starts_with("notification_url") { format!("notification_url = \"{receiver}\"") } else { l.into() },
        )
        .collect();
    std::fs::write(&demo, text.join("\n"))?;
    Ok(dir)
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()))?;
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name()))?;
        }
    }
    Ok(())
}

async fn bearer(client: &reqwest::Client, address: &str) -> anyhow::Result<String> {
    let response = client
        .post(format!("{address}/token"))
        .basic_auth("demo", Some(SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await?;
    let tokens: Value = response.json().await?;
    Ok(tokens["access_token"].as_str().unwrap_or_default().to_owned())
}

struct Target {
    url: String,
    token: Option<String>,
    keyed: bool,
}

/// `n` creates, `concurrency` at a time, each with a requestId (and key) never used before.
async fn run(client: &reqwest::Client, target: &Target, counter: &AtomicUsize, n: usize, concurrency: usize) -> Report {
    let started = Instant::now();
    // pforte accepts a redirectUrl only on an origin the service registered: the demo's is pforte's own.
    let back = format!("{}/demo/bezahlt", target.url.split("/paymenttransaction").next().unwrap_or_default());
    let latencies: Vec<Duration> = stream::iter(0..n)
        .map(|_| {
            let number = counter.fetch_add(1, Ordering::SeqCst);
            let body = json!({
                "requestId": format!("B-{number}"), "requestTimestamp": "2026-11-29T10:00:00+01:00",
                "currency": "EUR", "grosAmount": 12.00, "purpose": format!("Gebuehr {number}"),
                "redirectUrl": back, "items": [{ "totalNetAmount": 12.00 }]
            });
            let mut request = client.post(&target.url).json(&body);
            if let Some(token) = &target.token {
                request = request.bearer_auth(token);
            }
            if target.keyed {
                request = request.header("Idempotency-Key", format!("key-{number}"));
            }
            async move {
                let t = Instant::now();
                let response = request.send().await.expect("create");
                let status = response.status();
                let text = response.text().await.expect("body");
                assert_eq!(status, 201, "{text}");
                t.elapsed()
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    Report { latencies, elapsed: started.elapsed() }
}

/// Fills the outbox with `n` messages, then starts the delivery worker pforte runs and measures
/// until the receiver has them all.
async fn deliveries(state: &pforte::http::state::AppState, received: &AtomicUsize, n: usize) -> anyhow::Result<()> {
    let registry = state.registry.current();
    let client = registry.client("demo").expect("demo client");
    let now = state.clock.now_millis();
    let mut written = 0;
    while written < n {
        let mut tx = state.db.begin_write().await?;
        for i in written..(written + 500).min(n) {
            let payload = json!({
                "type": "payment.status_changed", "timestamp": "2026-11-29T10:00:00.000Z",
                "data": { "transactionId": format!("tx-{i}"), "originatorId": "demo-service",
                          "endPointId": "09162000", "requestId": format!("B-{i}"), "status": "PAYED" }
            });
            Notifier::enqueue_in(&mut tx, client, &format!("tx-{i}"), &payload, now).await?;
        }
        tx.commit().await?;
        written = (written + 500).min(n);
    }
    let before = received.load(Ordering::SeqCst);
    let stop = CancellationToken::new();
    let notifier =
        Notifier::new(state.db.clone(), state.registry.clone(), state.guarded_http.clone(), state.clock.clone());
    let started = Instant::now();
    let worker = tokio::spawn(notifier.run(stop.clone()));
    while received.load(Ordering::SeqCst) - before < n {
        if started.elapsed() > Duration::from_secs(600) {
            anyhow::bail!("only {} of {n} delivered in 600 s", received.load(Ordering::SeqCst) - before);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    stop.cancel();
    worker.await?;
    println!(
        "{:>42}: {:>7.0} deliveries/s   ({n} messages in {:.2} s, one worker)",
        "notifications from a full outbox",
        n as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64()
    );
    Ok(())
}

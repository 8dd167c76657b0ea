//! Token endpoint benchmark: `client_credentials` tokens and full code exchanges per second, with
//! latency percentiles, against a real pforte on a loopback port.
//!
//! ```sh
//! cargo run --release --example bench_tokens -- sqlite
//! cargo run --release --example bench_tokens -- postgres postgres://postgres@127.0.0.1:5432/postgres
//! ```
//! Optional third/fourth arguments: number of requests (default 5000) and concurrency (default 32).
//! Codes for the exchange benchmark come from real logins through the development simulators; they
//! are made before the clock starts, in batches that are redeemed well within their 60 s lifetime.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/report.rs"]
mod report;

/// The allocator the pforte binary uses (src/main.rs), so the benchmark measures what runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use report::Report;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use pforte::app::Application;
use pforte::clock::SystemClock;
use pforte::config::Settings;
use pforte::keys::MasterKey;
use pforte::registry::Registry;
use sqlx::Connection;

const SECRET: &str = "demo-secret-change-me";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let backend = args.get(1).map(String::as_str).unwrap_or("sqlite");
    let requests: usize = args.iter().skip(2).find_map(|a| a.parse().ok()).unwrap_or(5000);
    let concurrency: usize = args.iter().skip(2).filter_map(|a| a.parse().ok()).nth(1).unwrap_or(32);
    let dir = tempfile::tempdir()?;
    let (database_url, admin) = match backend {
        "sqlite" => (format!("sqlite://{}/bench.db", dir.path().display()), None),
        "postgres" => {
            let admin = args
                .get(2)
                .filter(|a| a.starts_with("postgres"))
                .cloned()
                .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into());
            let name = format!("pforte_bench_{}", std::process::id());
            let mut conn = sqlx::PgConnection::connect(&admin).await?;
            sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await?;
            let mut url = url::Url::parse(&admin)?;
            url.set_path(&format!("/{name}"));
            (url.to_string(), Some((admin, name)))
        }
        other => anyhow::bail!("unknown backend {other}: use sqlite or postgres"),
    };

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = format!("http://127.0.0.1:{}", listener.local_addr()?.port());
    let figment = Settings::figment(Some(std::path::Path::new(&format!("{MANIFEST_DIR}/config/default.toml"))))
        .map_err(|p| anyhow::anyhow!("{p}"))?
        .merge(("registry.providers", format!("{MANIFEST_DIR}/providers")))
        .merge(("registry.clients", format!("{MANIFEST_DIR}/config/clients")))
        .merge(("registry.tenants", format!("{MANIFEST_DIR}/config/tenants")))
        .merge(("database.url", database_url))
        .merge(("database.max_connections", 16))
        .merge(("keys.master_key", format!("plain:{}", MasterKey::generate().encode())))
        .merge(("server.public_url", address.clone()))
        .merge(("log.level", "warn"))
        // The per-address and per-client budgets at /token would answer 429 after a few hundred requests.
        .merge(("rate_limit.oauth.requests", 100_000_000))
        .merge(("rate_limit.oauth_client.requests", 100_000_000));
    let settings = Settings::from_figment(figment).map_err(|p| anyhow::anyhow!("{p}"))?;
    let _telemetry = pforte::telemetry::init(&settings.log, &settings.traces);
    let registry =
        Registry::load(&settings.registry, &settings.server.public_url, true).map_err(|p| anyhow::anyhow!("{p}"))?;
    let app = Application::build_on(listener, settings, registry, Arc::new(SystemClock))?;
    let state = app.state();
    let token = app.shutdown_token();
    let server = tokio::spawn(app.run_until_stopped());
    state.readiness.wait().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(concurrency)
        .build()?;

    println!(
        "pforte token benchmark: backend {backend}, {requests} requests, concurrency {concurrency}, {} cores",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    // PFORTE_BENCH_SERVE_SECS=N: only serve for N seconds, for a load generator and a profiler from
    // outside (docs/benchmarks.md, "where a token's time goes").
    if let Some(secs) = std::env::var("PFORTE_BENCH_SERVE_SECS").ok().and_then(|s| s.parse::<u64>().ok()) {
        println!("serving at {address} for {secs} s");
        tokio::time::sleep(Duration::from_secs(secs)).await;
        token.cancel();
        server.await??;
        return Ok(());
    }
    // Warm-up: connections, key cache, discovery.
    run(&client, &address, 200, concurrency, |c, a, _| client_credentials(c, a)).await;
    let report = run(&client, &address, requests, concurrency, |c, a, _| client_credentials(c, a)).await;
    report.print("client_credentials", "req/s");
    // PFORTE_BENCH_GRANTS=client_credentials leaves the exchanges out, to profile the token endpoint alone.
    let exchanges = if std::env::var("PFORTE_BENCH_GRANTS").is_ok_and(|grants| grants == "client_credentials") {
        0
    } else {
        requests
    };

    let batch = 500.min(requests);
    let mut latencies = Vec::new();
    let mut elapsed = Duration::ZERO;
    let mut done = 0;
    while done < exchanges {
        let codes: Vec<String> =
            stream::iter(0..batch).map(|_| login(&client, &address)).buffer_unordered(concurrency).collect().await;
        let codes = Arc::new(codes);
        let r = run(&client, &address, batch, concurrency, move |c, a, i| exchange(c, a, codes[i].clone())).await;
        latencies.extend(r.latencies);
        elapsed += r.elapsed;
        done += batch;
    }
    if exchanges > 0 {
        Report { latencies, elapsed }.print("authorization_code exchange", "req/s");
    }

    token.cancel();
    server.await??;
    if let Some((admin, name)) = admin {
        let mut conn = sqlx::PgConnection::connect(&admin).await?;
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut conn).await?;
    }
    Ok(())
}

async fn run<F, Fut>(client: &reqwest::Client, address: &str, n: usize, concurrency: usize, call: F) -> Report
where
    F: Fn(reqwest::Client, String, usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let started = Instant::now();
    let latencies: Vec<Duration> = stream::iter(0..n)
        .map(|i| {
            let fut = call(client.clone(), address.to_owned(), i);
            async move {
                let t = Instant::now();
                fut.await;
                t.elapsed()
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    Report { latencies, elapsed: started.elapsed() }
}

async fn client_credentials(client: reqwest::Client, address: String) {
    let response = client
        .post(format!("{address}/token"))
        .basic_auth("demo", Some(SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("token request");
    assert_eq!(response.status(), 200);
    response.bytes().await.expect("body");
}

async fn exchange(client: reqwest::Client, address: String, code: String) {
    let redirect = format!("{address}/demo/callback");
    let form = [
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("redirect_uri", &redirect),
        ("code_verifier", VERIFIER),
    ];
    let response = client
        .post(format!("{address}/token"))
        .basic_auth("demo", Some(SECRET))
        .form(&form)
        .send()
        .await
        .expect("token");
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap_or_default());
    response.bytes().await.expect("body");
}

/// One login through pforte and the citizen simulator, as a browser would; returns the code.
async fn login(client: &reqwest::Client, address: &str) -> String {
    let location = |r: &reqwest::Response| r.headers()["location"].to_str().expect("location").to_owned();
    let query = [
        ("client_id", "demo".to_owned()),
        ("redirect_uri", format!("{address}/demo/callback")),
        ("response_type", "code".into()),
        ("scope", "openid profile".into()),
        ("state", "s".into()),
        ("nonce", "n".into()),
        ("code_challenge", CHALLENGE.into()),
        ("code_challenge_method", "S256".into()),
        ("idp_hint", "bundid-sim".into()),
    ];
    let first = client.get(format!("{address}/authorize")).query(&query).send().await.expect("authorize");
    let cookie = first.headers()["set-cookie"].to_str().expect("cookie").split(';').next().expect("pair").to_owned();
    let page = client.get(location(&first)).send().await.expect("simulator").text().await.expect("page");
    let request = page.split("name=\"request\" value=\"").nth(1).and_then(|s| s.split('"').next()).expect("request id");
    let decide = format!("{address}/dev/bundid/authorize/decide");
    let form = [("request", request), ("persona", "erika"), ("level", "STORK-QAA-Level-3"), ("action", "login")];
    let back = client.post(decide).form(&form).send().await.expect("decide");
    let answer = client.get(location(&back)).header("cookie", cookie).send().await.expect("callback");
    let target = url::Url::parse(&location(&answer)).expect("redirect");
    target.query_pairs().find(|(k, _)| k == "code").map(|(_, v)| v.into_owned()).expect("code")
}

//! One benchmark run that prints each of pforte's figures beside its ceiling (issue 13), on the same
//! machine at the same moment:
//!
//! - payment creates/s through pforte (32 at once) beside the database's own rate for the same
//!   writes (a transaction per payment with the same rows, issued straight from here with sqlx's
//!   driver for the database), beside pforte's own recording of a payment called straight
//!   (`PaymentSignals::create_recording`: no HTTP, no provider, no parsing) and beside the no-op
//!   provider stub;
//! - the median pforte adds to one create at a time (pforte's p50 minus the stub's);
//! - `client_credentials` tokens/s beside raw ES256 signatures/s on as many threads as pforte's
//!   runtime has workers;
//! - code exchanges/s;
//! - on PostgreSQL: two pforte instances on one database against one (creates/s, p99), with the
//!   sessions' lock waits sampled from `pg_stat_activity` during each run.
//!
//! ```sh
//! cargo run --release --example bench_ceilings -- --backend sqlite
//! cargo run --release --example bench_ceilings -- --backend postgres
//! ```
//! Besides the readable lines it prints `figure<TAB>name<TAB>value` lines, which
//! `examples/bench_all.sh` collects over three runs per backend into a markdown table.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/load.rs"]
mod load;
#[path = "support/report.rs"]
mod report;
#[path = "support/setup.rs"]
mod setup;
#[path = "support/wrk.rs"]
mod wrk;

/// The allocator the pforte binary uses (src/main.rs), so the benchmark measures what runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::stream::{self, StreamExt};
use josekit::jws::{JwsSigner, ES256};
use pforte::keys::MasterKey;
use pforte::store::payments::PaymentRow;
use pforte::store::personal_data::PersonalData;
use serde_json::Value;

use load::{run, WaitSampler, Waits};
use report::Report;
use setup::{Instance, ScratchDatabase};

#[derive(Parser)]
struct Options {
    /// sqlite or postgres
    #[arg(long, default_value = "sqlite")]
    backend: String,
    /// Admin URL; the benchmark creates its own database there and drops it afterwards.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    postgres_url: String,
    /// Creates per throughput run (through pforte, at the stub, and straight at the database).
    #[arg(long, default_value_t = 3000)]
    requests: usize,
    /// Requests in flight during throughput runs.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Creates per one-at-a-time run.
    #[arg(long, default_value_t = 300)]
    sequential: usize,
    /// client_credentials tokens per run.
    #[arg(long, default_value_t = 5000)]
    tokens: usize,
    /// Code exchanges (each preceded, before the clock starts, by a login through the simulators).
    #[arg(long, default_value_t = 1000)]
    exchanges: usize,
    /// Seconds of the token run with `wrk` in its own process (skipped when wrk is not installed).
    #[arg(long, default_value_t = 5)]
    wrk_secs: u64,
    /// Seconds of raw ES256 signing per thread.
    #[arg(long, default_value_t = 2.0)]
    sign_secs: f64,
}

/// One figure, printed for people and for `bench_all.sh`.
fn figure(name: &str, value: f64) {
    println!("figure\t{name}\t{value:.2}");
}

fn percent(part: f64, whole: f64) -> f64 {
    if whole > 0.0 {
        100.0 * part / whole
    } else {
        0.0
    }
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "NOT met"
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = Options::parse();
    let dir = tempfile::tempdir()?;
    let database = ScratchDatabase::create(&options.backend, &options.postgres_url, dir.path()).await?;
    let stub = setup::start_stub().await?;
    let registry_dir = setup::registry_routed_to(dir.path(), &stub)?;
    let master_key = MasterKey::generate().encode();
    let pforte = Instance::start(&database.url, &registry_dir, &master_key).await?;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(options.concurrency * 2)
        .build()?;
    let workers = tokio::runtime::Handle::current().metrics().num_workers();
    println!(
        "pforte ceilings benchmark: backend {}, {} cores, {workers} runtime workers, concurrency {}",
        options.backend,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        options.concurrency
    );

    let creates = Creates::new(&client, &pforte, &stub).await;
    creates.run(&creates.stub, 200, options.concurrency).await.print("stub (warm-up)", "creates/s");
    creates.run(&creates.pforte, 200, options.concurrency).await.print("pforte (warm-up)", "creates/s");
    let stub_one = creates.run(&creates.stub, options.sequential, 1).await.print("stub, one at a time", "creates/s");
    let pforte_one =
        creates.run(&creates.pforte, options.sequential, 1).await.print("pforte, one at a time", "creates/s");
    let n = options.requests;
    let c = options.concurrency;
    let stub_many = creates.run(&creates.stub, n, c).await.print(&format!("stub, {c} at once"), "creates/s");
    let sampler = start_sampler(&database).await?;
    let pforte_many = creates.run(&creates.pforte, n, c).await.print(&format!("pforte, {c} at once"), "creates/s");
    let pforte_waits = stop_sampler(sampler).await?;
    let model = model_payment(&pforte, &creates).await?;
    let db_many = database_ceiling(&database.url, &model, "many", n, c)
        .await?
        .print(&format!("database alone, same writes, {c} at once"), "creates/s");
    // What a create's own commit costs the disk, one at a time: part of what pforte adds.
    let db_one = database_ceiling(&database.url, &model, "one", options.sequential, 1)
        .await?
        .print("database alone, same writes, one at a time", "creates/s");
    let recording = recording_alone(&pforte, &model, n, c)
        .await
        .print(&format!("pforte's recording alone, {c} at once"), "creates/s");

    let cores_rate = raw_es256(workers, options.sign_secs)?;
    println!("{:>42}: {cores_rate:>8.0} signatures/s on {workers} threads", "raw ES256 (josekit)");
    let address = pforte.address.clone();
    run(200, c, |_| async {
        setup::client_credentials(&client, &address).await;
    })
    .await;
    let tokens = run(options.tokens, c, |_| async {
        setup::client_credentials(&client, &address).await;
    })
    .await
    .print("client_credentials", "tokens/s");
    // The same endpoint loaded from another process, with pforte's own CPU share measured.
    let from_wrk = wrk::client_credentials(&address, setup::SECRET, c, options.wrk_secs)?;
    if let Some(run) = &from_wrk {
        println!(
            "{:>42}: {:>8.0} tokens/s   pforte used {:.2} cores",
            "client_credentials from wrk", run.requests_per_s, run.cores_used
        );
    }
    let exchanges = code_exchanges(&client, &address, options.exchanges, c).await.print("code exchange", "exchanges/s");

    let instances = if database.is_postgres() {
        Some(two_instances(&database, &registry_dir, &master_key, &creates, n, c).await?)
    } else {
        None
    };
    pforte.stop().await?;
    let postgres = database.is_postgres();
    database.drop_now().await?;

    println!("\n== {}: each figure beside its ceiling ==", options.backend);
    let ratio = percent(pforte_many.rate(), db_many.rate());
    println!(
        "creates through pforte = {ratio:.0} % of the database's own rate for the same writes ({:.0} of {:.0}/s; target ≥ 50 %: {})",
        pforte_many.rate(),
        db_many.rate(),
        verdict(ratio >= 50.0)
    );
    println!(
        "creates through pforte = {:.0} % of pforte's recording alone ({:.0}/s)",
        percent(pforte_many.rate(), recording.rate()),
        recording.rate()
    );
    println!(
        "creates through pforte = {:.1} % of the no-op stub ({:.0}/s)",
        percent(pforte_many.rate(), stub_many.rate()),
        stub_many.rate()
    );
    let added = pforte_one.percentile_ms(0.5) - stub_one.percentile_ms(0.5);
    let limit = if postgres { 1.5 } else { 1.0 };
    println!(
        "median pforte adds to one create = {added:.2} ms (pforte p50 {:.2} − stub p50 {:.2}; target ≤ {limit} ms: {}); the database's own transaction for it alone: p50 {:.2} ms",
        pforte_one.percentile_ms(0.5),
        stub_one.percentile_ms(0.5),
        verdict(added <= limit),
        db_one.percentile_ms(0.5)
    );
    let token_ratio = percent(tokens.rate(), cores_rate);
    println!(
        "client_credentials tokens = {token_ratio:.0} % of raw ES256 on {workers} threads ({:.0} of {cores_rate:.0}/s; target ≥ 40 %: {})",
        tokens.rate(),
        verdict(token_ratio >= 40.0)
    );
    // A signature per thread-second, times the cores pforte used while wrk loaded it.
    let wrk_ratio = from_wrk.as_ref().map(|run| {
        let ceiling = cores_rate / workers as f64 * run.cores_used;
        (percent(run.requests_per_s, ceiling), ceiling)
    });
    if let (Some(run), Some((ratio, ceiling))) = (&from_wrk, wrk_ratio) {
        println!(
            "client_credentials tokens from wrk = {ratio:.0} % of raw ES256 on the {:.2} cores pforte used ({:.0} of {ceiling:.0}/s; target ≥ 40 %: {})",
            run.cores_used,
            run.requests_per_s,
            verdict(ratio >= 40.0)
        );
    }
    let exchange_note = if postgres {
        format!("target ≥ 2,000/s on PostgreSQL: {}", verdict(exchanges.rate() >= 2000.0))
    } else {
        "the target is set for PostgreSQL".to_owned()
    };
    println!("code exchanges = {:.0}/s ({exchange_note})", exchanges.rate());
    if let Some(waits) = &pforte_waits {
        println!("lock waits during pforte's {c}-at-once creates: {}", waits.summary());
    }
    if let Some(two) = &instances {
        two.print();
    }

    figure("creates_stub_per_s", stub_many.rate());
    figure("creates_pforte_per_s", pforte_many.rate());
    figure("creates_database_per_s", db_many.rate());
    figure("creates_recording_alone_per_s", recording.rate());
    figure("creates_pforte_percent_of_database", ratio);
    figure("creates_pforte_percent_of_stub", percent(pforte_many.rate(), stub_many.rate()));
    figure("one_create_stub_p50_ms", stub_one.percentile_ms(0.5));
    figure("one_create_pforte_p50_ms", pforte_one.percentile_ms(0.5));
    figure("one_create_added_p50_ms", added);
    figure("one_create_database_p50_ms", db_one.percentile_ms(0.5));
    figure("tokens_per_s", tokens.rate());
    figure("raw_es256_per_s", cores_rate);
    figure("tokens_percent_of_raw_es256", token_ratio);
    if let (Some(run), Some((ratio, _))) = (&from_wrk, wrk_ratio) {
        figure("tokens_wrk_per_s", run.requests_per_s);
        figure("tokens_wrk_pforte_cores_used", run.cores_used);
        figure("tokens_wrk_percent_of_raw_es256_on_cores_used", ratio);
    }
    figure("code_exchanges_per_s", exchanges.rate());
    if let Some(waits) = &pforte_waits {
        figure("lock_waits_pforte_creates", waits.lock() as f64);
        figure("advisory_waits_pforte_creates", waits.advisory() as f64);
    }
    if let Some(two) = &instances {
        two.figures();
    }
    Ok(())
}

/// Where creates go: straight at the stub, or through pforte with a Bearer token.
#[derive(Clone)]
struct Target {
    url: String,
    token: Option<String>,
    /// The origin the demo service registered redirect URLs on (pforte's own address).
    origin: String,
}

struct Creates {
    client: reqwest::Client,
    stub: Target,
    pforte: Target,
    counter: AtomicUsize,
}

impl Creates {
    async fn new(client: &reqwest::Client, pforte: &Instance, stub: &str) -> Self {
        let token = setup::client_credentials(client, &pforte.address).await;
        let path = "/paymenttransaction/demo-service/09162000";
        let origin = pforte.address.clone();
        Creates {
            client: client.clone(),
            stub: Target { url: format!("{stub}{path}"), token: None, origin: origin.clone() },
            pforte: Target { url: format!("{}{path}", pforte.address), token: Some(token), origin },
            counter: AtomicUsize::new(0),
        }
    }

    /// A target on another pforte instance (its own token).
    async fn on(&self, instance: &Instance) -> Target {
        let token = setup::client_credentials(&self.client, &instance.address).await;
        let url = format!("{}/paymenttransaction/demo-service/09162000", instance.address);
        Target { url, token: Some(token), origin: instance.address.clone() }
    }

    /// One create with a requestId never used before; returns the answer's transactionId.
    async fn one(&self, target: &Target) -> String {
        let number = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut request = self.client.post(&target.url).json(&setup::payment_body(number, &target.origin));
        if let Some(token) = &target.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("create");
        let status = response.status();
        let text = response.text().await.expect("body");
        assert_eq!(status, 201, "{text}");
        let answer: Value = serde_json::from_str(&text).expect("JSON answer");
        answer["paymentInformation"]["transactionId"].as_str().unwrap_or_default().to_owned()
    }

    async fn run(&self, target: &Target, n: usize, concurrency: usize) -> Report {
        run(n, concurrency, |_| async {
            self.one(target).await;
        })
        .await
    }
}

/// One payment made through pforte, as stored: the model for the ceilings' writes.
struct Model {
    row: PaymentRow,
    sealed: Option<String>,
}

async fn model_payment(pforte: &Instance, creates: &Creates) -> anyhow::Result<Model> {
    let model_id = creates.one(&creates.pforte).await;
    let db = &pforte.state.db;
    let row = db.payment(&model_id).await?.ok_or_else(|| anyhow::anyhow!("the model payment is not stored"))?;
    let sealed = match db.payment_personal_data(&model_id).await? {
        Some(PersonalData::Sealed(sealed)) => Some(sealed),
        _ => None,
    };
    Ok(Model { row, sealed })
}

/// The ceiling issue 13 names: the database's own rate for a transaction with a create's writes
/// (the payment row with its sealed personal data, its first event, its audit event), issued
/// straight from the benchmark with sqlx's driver for the database, `concurrency` at a time, one
/// transaction per payment: what a client of the database gets without pforte's code.
/// SQLite: one connection with pforte's settings (WAL, `synchronous = FULL`), as SQLite has one
/// writer; PostgreSQL: 16 connections, as pforte has. Neither pool pings a connection before
/// handing it out (pforte's pool pings only one that sat idle). `label` keeps the request ids of separate runs apart.
async fn database_ceiling(
    url: &str,
    model: &Model,
    label: &str,
    n: usize,
    concurrency: usize,
) -> anyhow::Result<Report> {
    let columns = "transaction_id, originator_id, endpoint_id, client_id, request_id, request, gros_amount, \
                   provider_id, provider_reference, pay_url, status, status_detail, created_at, updated_at, \
                   expires_at, effective_request, personal_data";
    let insert_payment = format!(
        "INSERT INTO payments ({columns}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
    );
    let insert_event =
        "INSERT INTO payment_events (transaction_id, from_status, to_status, source, detail, recorded_at) \
                        VALUES ($1, 'INITIAL', 'INITIAL', 'client', NULL, $2)";
    let insert_audit = "INSERT INTO audit_pending (recorded_at, event, actor, subject, details) \
                        VALUES ($1, 'payment.created', $2, $3, $4)";
    let details = r#"{"originator":"demo-service","endpoint":"09162000","provider":"bench-stub"}"#;
    let insert_payment = insert_payment.as_str();
    let row = &model.row;
    macro_rules! one_create {
        ($tx:expr, $i:expr) => {{
            let id = pforte::crypto::random_token();
            let now = chrono::Utc::now().timestamp_millis();
            sqlx::query(insert_payment)
                .bind(&id)
                .bind(&row.originator_id)
                .bind(&row.endpoint_id)
                .bind(&row.client_id)
                .bind(format!("D-{label}-{}", $i))
                .bind(&row.request)
                .bind(row.gros_amount.to_string())
                .bind(&row.provider_id)
                .bind(&row.provider_reference)
                .bind(&row.pay_url)
                .bind("INITIAL")
                .bind(&row.status_detail)
                .bind(now)
                .bind(now)
                .bind(row.expires_at)
                .bind(&row.effective_request)
                .bind(&model.sealed)
                .execute(&mut *$tx)
                .await
                .expect("payment row");
            sqlx::query(insert_event).bind(&id).bind(now).execute(&mut *$tx).await.expect("event row");
            sqlx::query(insert_audit)
                .bind(now)
                .bind(&row.client_id)
                .bind(&id)
                .bind(details)
                .execute(&mut *$tx)
                .await
                .expect("audit row");
        }};
    }
    if url.starts_with("sqlite:") {
        let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)?
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .synchronous(sqlx::sqlite::SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5));
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_with(options)
            .await?;
        let report = run(n, concurrency, |i| {
            let pool = pool.clone();
            async move {
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.expect("begin");
                one_create!(tx, i);
                tx.commit().await.expect("commit");
            }
        })
        .await;
        pool.close().await;
        Ok(report)
    } else {
        let pool =
            sqlx::postgres::PgPoolOptions::new().max_connections(16).test_before_acquire(false).connect(url).await?;
        let report = run(n, concurrency, |i| {
            let pool = pool.clone();
            async move {
                let mut tx = pool.begin().await.expect("begin");
                one_create!(tx, i);
                tx.commit().await.expect("commit");
            }
        })
        .await;
        pool.close().await;
        Ok(report)
    }
}

/// pforte's own recording of a create (`PaymentSignals::create_recording`: one statement on
/// PostgreSQL, the group commit on SQLite) called straight, `concurrency` at a time: what is left
/// of a create when HTTP, the token check, parsing and the provider call are taken away.
async fn recording_alone(pforte: &Instance, model: &Model, n: usize, concurrency: usize) -> Report {
    let signals = &pforte.state.payment_signals;
    run(n, concurrency, |i| {
        let mut row = model.row.clone();
        row.transaction_id = pforte::crypto::random_token();
        row.request_id = format!("C-{i}");
        let sealed = model.sealed.clone();
        async move {
            signals.create_recording(&row, sealed.as_deref(), None).await.expect("recorded");
        }
    })
    .await
}

/// ES256 signatures per second over `threads` threads signing for `secs` seconds each: the most
/// tokens the cores pforte's runtime has could sign if they did nothing else.
fn raw_es256(threads: usize, secs: f64) -> anyhow::Result<f64> {
    let jwk = ES256.generate_key_pair()?.to_jwk_private_key();
    let signer = Arc::new(ES256.signer_from_jwk(&jwk)?);
    // A signing input of an access token's size (header.payload, base64url).
    let input = vec![b'e'; 420];
    let deadline = Duration::from_secs_f64(secs);
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let signer = signer.clone();
            let input = input.clone();
            std::thread::spawn(move || {
                let started = Instant::now();
                let mut signed = 0u64;
                while started.elapsed() < deadline {
                    for _ in 0..64 {
                        signer.sign(&input).expect("signature");
                    }
                    signed += 64;
                }
                signed as f64 / started.elapsed().as_secs_f64()
            })
        })
        .collect();
    Ok(handles.into_iter().map(|h| h.join().expect("signing thread")).sum())
}

/// `n` code exchanges, `concurrency` at a time; the codes come from real logins made before the
/// clock starts, in batches of 500 so that each is redeemed well within its 60 s lifetime.
async fn code_exchanges(client: &reqwest::Client, address: &str, n: usize, concurrency: usize) -> Report {
    let mut all = Report { latencies: Vec::new(), elapsed: Duration::ZERO };
    let mut done = 0;
    while done < n {
        let batch = 500.min(n - done);
        let codes: Vec<String> =
            stream::iter(0..batch).map(|_| setup::login(client, address)).buffer_unordered(concurrency).collect().await;
        let report = run(batch, concurrency, |i| setup::exchange(client, address, &codes[i])).await;
        all.latencies.extend(report.latencies);
        all.elapsed += report.elapsed;
        done += batch;
    }
    all
}

async fn start_sampler(database: &ScratchDatabase) -> anyhow::Result<Option<WaitSampler>> {
    if database.is_postgres() {
        Ok(Some(WaitSampler::start(&database.url).await?))
    } else {
        Ok(None)
    }
}

async fn stop_sampler(sampler: Option<WaitSampler>) -> anyhow::Result<Option<Waits>> {
    match sampler {
        Some(sampler) => Ok(Some(sampler.stop().await?)),
        None => Ok(None),
    }
}

/// One instance against two on the same PostgreSQL database, the same load split evenly.
struct TwoInstances {
    one: Report,
    one_waits: Waits,
    two: Report,
    two_waits: Waits,
}

async fn two_instances(
    database: &ScratchDatabase,
    registry_dir: &std::path::Path,
    master_key: &str,
    creates: &Creates,
    n: usize,
    concurrency: usize,
) -> anyhow::Result<TwoInstances> {
    let second = Instance::start(&database.url, registry_dir, master_key).await?;
    let targets = [creates.on(&second).await, creates.pforte.clone()];
    // The second instance's first requests, outside the clock.
    creates.run(&targets[0], 200, concurrency).await;

    let sampler = WaitSampler::start(&database.url).await?;
    let one = creates.run(&targets[1], n, concurrency).await.print("one instance", "creates/s");
    let one_waits = sampler.stop().await?;
    let targets = &targets;
    let sampler = WaitSampler::start(&database.url).await?;
    let two = run(n, concurrency, |i| async move {
        creates.one(&targets[i % 2]).await;
    })
    .await
    .print("two instances, load split", "creates/s");
    let two_waits = sampler.stop().await?;
    second.stop().await?;
    Ok(TwoInstances { one, one_waits, two, two_waits })
}

impl TwoInstances {
    fn print(&self) {
        println!(
            "two instances on one PostgreSQL: {:.0} creates/s, p99 {:.2} ms; one instance: {:.0}/s, p99 {:.2} ms ({:.2}×)",
            self.two.rate(),
            self.two.percentile_ms(0.99),
            self.one.rate(),
            self.one.percentile_ms(0.99),
            self.two.rate() / self.one.rate().max(f64::MIN_POSITIVE)
        );
        println!("  lock waits, one instance: {}", self.one_waits.summary());
        println!("  lock waits, two instances: {}", self.two_waits.summary());
    }

    fn figures(&self) {
        figure("one_instance_creates_per_s", self.one.rate());
        figure("one_instance_p99_ms", self.one.percentile_ms(0.99));
        figure("two_instances_creates_per_s", self.two.rate());
        figure("two_instances_p99_ms", self.two.percentile_ms(0.99));
        figure("lock_waits_one_instance", self.one_waits.lock() as f64);
        figure("advisory_waits_one_instance", self.one_waits.advisory() as f64);
        figure("lock_waits_two_instances", self.two_waits.lock() as f64);
        figure("advisory_waits_two_instances", self.two_waits.advisory() as f64);
    }
}

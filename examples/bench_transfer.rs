//! Datentransfer benchmark (issue 15 item 7): submissions per second and attachment megabytes per
//! second through pforte, each beside the raw write rate of the same storage (the same rows and
//! chunks written straight into the same database with sqlx), and how much pforte's memory grows
//! while large attachments stream through it (they are never held whole).
//!
//! ```sh
//! cargo run --release --example bench_transfer -- --backend sqlite
//! cargo run --release --example bench_transfer -- --backend postgres --postgres-url postgres://postgres@127.0.0.1:5432/postgres
//! ```
//! A submission is what a sender does: announce (one attachment), upload it (`--attachment-kib`),
//! submit the metadata; pforte signs two PS512 SETs for it (`create-submission`, `submit-submission`),
//! so raw PS512 signatures per second are printed too. pforte, the database and the load generator
//! share the machine.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/load.rs"]
mod load;
#[path = "support/report.rs"]
mod report;
#[path = "support/setup.rs"]
mod setup;

/// The allocator the pforte binary uses (src/main.rs), so the benchmark measures what runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use clap::Parser;
use load::run;
use report::Report;
use serde_json::{json, Value};
use setup::{Instance, ScratchDatabase, SECRET};

const DESTINATION: &str = "7c2b9a4e-3f61-4d2a-9b8e-0c1d2e3f4a5b";
const SERVICE: &str = "urn:de:fim:leika:leistung:99123456760610";

#[derive(Parser)]
struct Options {
    /// sqlite or postgres
    #[arg(long, default_value = "sqlite")]
    backend: String,
    /// Admin URL; the benchmark creates its own database there and drops it afterwards.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    postgres_url: String,
    /// Submissions per run.
    #[arg(long, default_value_t = 1000)]
    submissions: usize,
    /// Submissions in flight.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Size of each submission's attachment (KiB of ciphertext).
    #[arg(long, default_value_t = 16)]
    attachment_kib: usize,
    /// Large uploads (and downloads) for the MB/s figures.
    #[arg(long, default_value_t = 16)]
    uploads: usize,
    /// Size of each large upload (MiB).
    #[arg(long, default_value_t = 32)]
    upload_mib: usize,
    /// Large uploads in flight.
    #[arg(long, default_value_t = 4)]
    upload_concurrency: usize,
}

fn figure(name: &str, value: f64) {
    println!("figure\t{name}\t{value:.2}");
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = Options::parse();
    let dir = tempfile::tempdir()?;
    let database = ScratchDatabase::create(&options.backend, &options.postgres_url, dir.path()).await?;
    let stub = setup::start_stub().await?;
    let registry = setup::registry_routed_to(dir.path(), &stub)?;
    let (encryption_kid, _) = write_destination(&registry)?;
    let pforte = Instance::start(&database.url, &registry, &pforte::keys::MasterKey::generate().encode()).await?;
    let client = reqwest::Client::builder().pool_max_idle_per_host(64).build()?;
    println!(
        "pforte Datentransfer benchmark: backend {}, {} cores, {} submissions at concurrency {}, {} KiB each; {} uploads of {} MiB at {}",
        options.backend,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        options.submissions,
        options.concurrency,
        options.attachment_kib,
        options.uploads,
        options.upload_mib,
        options.upload_concurrency
    );

    // Submissions: announce, upload, submit, through pforte.
    let small = Bytes::from(fake_jwe(&encryption_kid, options.attachment_kib * 1024));
    let metadata = fake_jwe(&encryption_kid, 2048);
    let sender = Sender { client: client.clone(), address: pforte.address.clone() };
    let token = sender.token("demo", SECRET).await;
    sender.submission(&token, &small, &metadata).await; // warm-up
    let through = run(options.submissions, options.concurrency, |_| {
        let (sender, token, small, metadata) = (&sender, &token, small.clone(), &metadata);
        async move { sender.submission(token, &small, metadata).await }
    })
    .await
    .print("submissions through pforte", "submissions/s");

    let raw = raw_submission_writes(&database.url, options.submissions, options.concurrency, small.len()).await?;
    let raw = raw.print("the same rows written straight (3 tx each)", "submissions/s");
    let signatures = raw_ps512(Duration::from_secs(2))?;
    println!("{:>42}: {signatures:>8.0} signatures/s on 1 thread", "raw PS512, RSA-4096 (josekit)");

    // Large attachments: upload and download MB/s, and pforte's memory while they stream.
    let large = Bytes::from(fake_jwe(&encryption_kid, options.upload_mib * 1024 * 1024));
    let mib = large.len() as f64 / (1024.0 * 1024.0);
    let (submission, attachments) = sender.announce(&token, options.uploads).await;
    let rss_before = resident_kib("VmRSS");
    reset_peak_rss();
    let uploads = run(options.uploads, options.upload_concurrency, |i| {
        let (sender, token, large) = (&sender, &token, large.clone());
        let (submission, attachment) = (&submission, &attachments[i]);
        async move { sender.upload(token, submission, attachment, large).await }
    })
    .await;
    let peak_growth_mib = (resident_kib("VmHWM") - rss_before) as f64 / 1024.0;
    let upload_mb_s = uploads.rate() * mib;
    println!(
        "{:>42}: {upload_mb_s:>8.1} MiB/s   ({} × {mib:.1} MiB)",
        "attachment uploads through pforte", options.uploads
    );
    println!(
        "{:>42}: {peak_growth_mib:>8.1} MiB   (RSS before {:.1} MiB)",
        "pforte's peak memory growth meanwhile",
        rss_before as f64 / 1024.0
    );
    sender.complete(&token, &submission, &metadata).await;
    let subscriber = sender.token("fachverfahren", "fachverfahren-secret").await;
    let downloads = run(options.uploads, options.upload_concurrency, |i| {
        let (sender, subscriber, submission, attachment) = (&sender, &subscriber, &submission, &attachments[i]);
        async move { sender.download(subscriber, submission, attachment).await }
    })
    .await;
    let download_mb_s = downloads.rate() * mib;
    println!("{:>42}: {download_mb_s:>8.1} MiB/s", "attachment downloads through pforte");
    let raw_mb_s =
        raw_chunk_writes(&database.url, options.uploads * options.upload_mib, options.upload_concurrency).await?;
    println!("{:>42}: {raw_mb_s:>8.1} MiB/s   (1 MiB chunks, one transaction each)", "raw chunk writes straight");

    println!("\n== {}: each figure beside its ceiling ==", options.backend);
    let percent = |part: f64, whole: f64| if whole > 0.0 { part / whole * 100.0 } else { 0.0 };
    println!(
        "submissions = {:.0} % of the database's own rate for their rows ({:.0} of {:.0}/s)",
        percent(through.rate(), raw.rate()),
        through.rate(),
        raw.rate()
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    println!(
        "submissions = {:.0} % of what the cores could sign (2 PS512 SETs each: {:.0}/s on {cores} cores)",
        percent(through.rate(), signatures * cores / 2.0),
        signatures * cores / 2.0
    );
    println!("uploads = {:.0} % of the database's own chunk write rate", percent(upload_mb_s, raw_mb_s));
    figure("submissions_per_s", through.rate());
    figure("submission_p50_ms", through.percentile_ms(0.5));
    figure("raw_submission_writes_per_s", raw.rate());
    figure("submissions_percent_of_raw", percent(through.rate(), raw.rate()));
    figure("raw_ps512_per_s", signatures);
    figure("upload_mib_per_s", upload_mb_s);
    figure("download_mib_per_s", download_mb_s);
    figure("raw_chunk_write_mib_per_s", raw_mb_s);
    figure("uploads_percent_of_raw", percent(upload_mb_s, raw_mb_s));
    figure("peak_memory_growth_mib", peak_growth_mib);

    pforte.stop().await?;
    database.drop_now().await?;
    Ok(())
}

/// A sender and a subscriber over HTTP; every call panics on an unexpected answer.
struct Sender {
    client: reqwest::Client,
    address: String,
}

impl Sender {
    async fn token(&self, client: &str, secret: &str) -> String {
        let response = self
            .client
            .post(format!("{}/token", self.address))
            .basic_auth(client, Some(secret))
            .form(&[("grant_type", "client_credentials"), ("scope", "transfer")])
            .send()
            .await
            .expect("token");
        assert_eq!(response.status(), 200, "token for {client}");
        let body: Value = response.json().await.expect("token body");
        body["access_token"].as_str().unwrap_or_default().to_owned()
    }

    async fn announce(&self, token: &str, attachments: usize) -> (String, Vec<String>) {
        let ids: Vec<String> = (0..attachments).map(|_| uuid::Uuid::new_v4().to_string()).collect();
        let body = json!({ "destinationId": DESTINATION, "announcedAttachments": ids,
                           "serviceType": { "name": "Bauantrag", "identifier": SERVICE } });
        let response =
            self.client.post(format!("{}/v1/submissions", self.address)).bearer_auth(token).json(&body).send().await;
        let response = response.expect("announce");
        assert_eq!(response.status(), 201, "announce");
        let answer: Value = response.json().await.expect("announce body");
        (answer["submissionId"].as_str().unwrap_or_default().to_owned(), ids)
    }

    async fn upload(&self, token: &str, submission: &str, attachment: &str, body: Bytes) {
        let url = format!("{}/v1/submissions/{submission}/attachments/{attachment}", self.address);
        let response = self.client.put(url).bearer_auth(token).header("content-type", "application/jose").body(body);
        let response = response.send().await.expect("upload");
        assert_eq!(response.status(), 204, "upload: {}", response.text().await.unwrap_or_default());
    }

    async fn complete(&self, token: &str, submission: &str, metadata: &str) {
        let url = format!("{}/v1/submissions/{submission}", self.address);
        let body = json!({ "encryptedMetadata": metadata });
        let response = self.client.put(url).bearer_auth(token).json(&body).send().await.expect("submit");
        assert_eq!(response.status(), 202, "submit: {}", response.text().await.unwrap_or_default());
    }

    async fn submission(&self, token: &str, attachment: &Bytes, metadata: &str) {
        let (submission, ids) = self.announce(token, 1).await;
        self.upload(token, &submission, &ids[0], attachment.clone()).await;
        self.complete(token, &submission, metadata).await;
    }

    /// Downloads an attachment, reading the body as it streams (never whole).
    async fn download(&self, token: &str, submission: &str, attachment: &str) {
        let url = format!("{}/v1/submissions/{submission}/attachments/{attachment}", self.address);
        let mut response = self.client.get(url).bearer_auth(token).send().await.expect("download");
        assert_eq!(response.status(), 200, "download");
        while response.chunk().await.expect("chunk").is_some() {}
    }
}

/// A compact JWE's shape with `bytes` of ciphertext: pforte cannot decrypt, so random parts of the
/// right sizes are what it checks and stores.
fn fake_jwe(kid: &str, bytes: usize) -> String {
    let header = json!({ "alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": kid, "cty": "application/pdf" });
    let random = |n: usize| {
        let mut buffer = vec![0u8; n];
        openssl::rand::rand_bytes(&mut buffer).unwrap();
        URL_SAFE_NO_PAD.encode(buffer)
    };
    let header = URL_SAFE_NO_PAD.encode(header.to_string());
    format!("{header}.{}.{}.{}.{}", random(512), random(12), random(bytes * 3 / 4), random(16))
}

/// The destination (tenant 03241001, subscriber `fachverfahren`) with fresh RSA-4096 keys and
/// self-signed certificates, and its subscriber's client file. Returns the encryption kid.
fn write_destination(registry: &Path) -> anyhow::Result<(String, String)> {
    use openssl::{asn1::Asn1Time, bn::BigNum, hash::MessageDigest, pkey::PKey, rsa::Rsa, x509};
    let jwk = |kid: &str, ops: &str, alg: &str| -> anyhow::Result<Value> {
        let key = PKey::from_rsa(Rsa::generate(4096)?)?;
        let mut name = x509::X509NameBuilder::new()?;
        name.append_entry_by_text("CN", "Fachverfahren (Benchmark)")?;
        let name = name.build();
        let mut certificate = x509::X509::builder()?;
        certificate.set_version(2)?;
        let serial = BigNum::from_u32(1)?.to_asn1_integer()?;
        certificate.set_serial_number(&serial)?;
        certificate.set_subject_name(&name)?;
        certificate.set_issuer_name(&name)?;
        certificate.set_pubkey(&key)?;
        let (not_before, not_after) = (Asn1Time::days_from_now(0)?, Asn1Time::days_from_now(30)?);
        certificate.set_not_before(&not_before)?;
        certificate.set_not_after(&not_after)?;
        certificate.sign(&key, MessageDigest::sha256())?;
        let rsa = key.rsa()?;
        Ok(json!({ "kty": "RSA", "kid": kid, "key_ops": [ops], "alg": alg,
                   "n": URL_SAFE_NO_PAD.encode(rsa.n().to_vec()), "e": URL_SAFE_NO_PAD.encode(rsa.e().to_vec()),
                   "x5c": [STANDARD.encode(certificate.build().to_der()?)] }))
    };
    let jwks = json!({ "keys": [jwk("enc-1", "wrapKey", "RSA-OAEP-256")?, jwk("sig-1", "verify", "PS512")?] });
    let destinations = registry.join("destinations");
    std::fs::create_dir_all(&destinations)?;
    std::fs::write(
        destinations.join(format!("{DESTINATION}.toml")),
        format!(
            "tenant = \"03241001\"\nstatus = \"active\"\nsubscriber_client = \"fachverfahren\"\nencryption_kid = \"enc-1\"\n\
             reply_channels = [\"eMail\"]\njwks = '''{jwks}'''\n\n[[services]]\nidentifier = \"{SERVICE}\"\n\
             regions = [\"DE03241001\"]\nsubmission_schemas = [{{ schema_uri = \"https://schema.example.org/bauantrag.json\", mime_type = \"json\" }}]\n"
        ),
    )?;
    std::fs::write(
        registry.join("clients/fachverfahren.toml"),
        "display_name = \"Fachverfahren\"\nredirect_uris = [\"https://fachverfahren.example.org/cb\"]\n\
         identity_providers = [\"bundid-sim\"]\nscopes = [\"openid\"]\ngrant_types = [\"client_credentials\"]\ntenants = []\n\n\
         [auth]\nmethod = \"client_secret_basic\"\nsecret = \"plain:fachverfahren-secret\"\n",
    )?;
    Ok(("enc-1".to_owned(), "sig-1".to_owned()))
}

/// The rows one submission leaves, written straight with sqlx in the three transactions pforte uses
/// (announce: submission, attachment, create event; upload: the chunk and the attachment's upload;
/// submit: status, metadata and the submit event), `concurrency` at a time. SQLite: one connection
/// with pforte's settings (WAL, `synchronous = FULL`); PostgreSQL: 16 connections, as pforte has.
async fn raw_submission_writes(url: &str, n: usize, concurrency: usize, chunk_bytes: usize) -> anyhow::Result<Report> {
    let pool = raw_pool(url).await?;
    let chunk = vec![7u8; chunk_bytes];
    let token = "e".repeat(1400); // a SET's size
    let metadata = "m".repeat(2800);
    let sqlite = url.starts_with("sqlite:");
    let report = run(n, concurrency, |_| {
        let (pool, chunk, token, metadata) = (pool.clone(), &chunk, &token, &metadata);
        async move {
            let (submission, case, attachment, upload) =
                (uuid::Uuid::new_v4().to_string(), uuid::Uuid::new_v4().to_string(), uuid::Uuid::new_v4().to_string(), uuid::Uuid::new_v4().to_string());
            let now = chrono::Utc::now().timestamp_millis();
            let mut tx = begin(&pool, sqlite).await;
            sqlx::query("INSERT INTO transfer_submissions (submission_id, case_id, destination_id, tenant_id, sender_client, service_name, service_identifier, status, created_at) VALUES ($1, $2, $3, '03241001', 'demo', 'Bauantrag', $4, 'announced', $5)")
                .bind(&submission).bind(&case).bind(DESTINATION).bind(SERVICE).bind(now).execute(&mut *tx).await.expect("submission");
            sqlx::query("INSERT INTO transfer_attachments (submission_id, attachment_id) VALUES ($1, $2)")
                .bind(&submission).bind(&attachment).execute(&mut *tx).await.expect("attachment");
            event(&mut tx, &case, &submission, 1, token, now).await;
            tx.commit().await.expect("commit");
            let mut tx = begin(&pool, sqlite).await;
            sqlx::query("INSERT INTO transfer_chunks (upload_id, seq, bytes) VALUES ($1, 0, $2)")
                .bind(&upload).bind(chunk.as_slice()).execute(&mut *tx).await.expect("chunk");
            sqlx::query("UPDATE transfer_attachments SET upload_id = $1, size_bytes = $2, auth_tag = 'tag', uploaded_at = $3 WHERE submission_id = $4 AND attachment_id = $5")
                .bind(&upload).bind(chunk.len() as i64).bind(now).bind(&submission).bind(&attachment).execute(&mut *tx).await.expect("upload");
            tx.commit().await.expect("commit");
            let mut tx = begin(&pool, sqlite).await;
            sqlx::query("UPDATE transfer_submissions SET status = 'submitted', encrypted_metadata = $1, submitted_at = $2 WHERE submission_id = $3 AND status = 'announced'")
                .bind(metadata).bind(now).bind(&submission).execute(&mut *tx).await.expect("submit");
            event(&mut tx, &case, &submission, 2, token, now).await;
            tx.commit().await.expect("commit");
        }
    })
    .await;
    pool.close().await;
    Ok(report)
}

async fn event(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    case: &str,
    submission: &str,
    seq: i64,
    token: &str,
    now: i64,
) {
    sqlx::query("INSERT INTO transfer_events (event_id, case_id, seq, submission_id, event_type, token, created_at) VALUES ($1, $2, $3, $4, 'e', $5, $6)")
        .bind(uuid::Uuid::new_v4().to_string()).bind(case).bind(seq).bind(submission).bind(token).bind(now)
        .execute(&mut **tx).await.expect("event");
}

/// 1 MiB chunks written straight, one transaction each, `concurrency` at a time; MiB/s.
async fn raw_chunk_writes(url: &str, chunks: usize, concurrency: usize) -> anyhow::Result<f64> {
    let pool = raw_pool(url).await?;
    let chunk = vec![7u8; 1024 * 1024];
    let sqlite = url.starts_with("sqlite:");
    let started = Instant::now();
    run(chunks, concurrency, |i| {
        let (pool, chunk) = (pool.clone(), &chunk);
        async move {
            let mut tx = begin(&pool, sqlite).await;
            sqlx::query("INSERT INTO transfer_chunks (upload_id, seq, bytes) VALUES ('raw', $1, $2)")
                .bind(i as i64)
                .bind(chunk.as_slice())
                .execute(&mut *tx)
                .await
                .expect("chunk");
            tx.commit().await.expect("commit");
        }
    })
    .await;
    let rate = chunks as f64 / started.elapsed().as_secs_f64();
    pool.close().await;
    Ok(rate)
}

async fn raw_pool(url: &str) -> anyhow::Result<sqlx::AnyPool> {
    use sqlx::Executor;
    sqlx::any::install_default_drivers();
    let options = sqlx::any::AnyPoolOptions::new().test_before_acquire(false);
    if url.starts_with("sqlite:") {
        // pforte's settings for SQLite (store::pool_options): WAL, a full sync per commit.
        let options = options.max_connections(1).after_connect(|conn, _| {
            Box::pin(async move {
                conn.execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000")
                    .await?;
                Ok(())
            })
        });
        Ok(options.connect(url).await?)
    } else {
        Ok(options.max_connections(16).connect(url).await?)
    }
}

async fn begin(pool: &sqlx::AnyPool, sqlite: bool) -> sqlx::Transaction<'static, sqlx::Any> {
    if sqlite {
        pool.begin_with("BEGIN IMMEDIATE").await.expect("begin")
    } else {
        pool.begin().await.expect("begin")
    }
}

/// PS512 signatures (RSA-4096) per second on one thread, over a SET-sized signing input.
fn raw_ps512(duration: Duration) -> anyhow::Result<f64> {
    // As pforte makes its PS512 key (keys::generate): an RSA pair used through a JWK.
    let pair = josekit::jws::RS256.generate_key_pair(4096)?;
    let mut jwk = pair.to_jwk_private_key();
    jwk.set_algorithm("PS512");
    let signer = josekit::jws::PS512.signer_from_jwk(&jwk)?;
    let input = vec![b'a'; 900];
    let started = Instant::now();
    let mut count = 0u64;
    while started.elapsed() < duration {
        signer_sign(&signer, &input)?;
        count += 1;
    }
    Ok(count as f64 / started.elapsed().as_secs_f64())
}

fn signer_sign(signer: &josekit::jws::alg::rsassa_pss::RsassaPssJwsSigner, input: &[u8]) -> anyhow::Result<()> {
    use josekit::jws::JwsSigner;
    signer.sign(input)?;
    Ok(())
}

/// A field of /proc/self/status in KiB (`VmRSS`, `VmHWM`).
fn resident_kib(field: &str) -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|line| line.starts_with(field))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|kib| i64::from_str(kib).ok())
        .unwrap_or(0)
}

/// Resets the process's peak RSS (`VmHWM`) to its current RSS (Linux: `/proc/self/clear_refs`, 5).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

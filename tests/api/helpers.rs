//! Test scaffolding: a database per test on each backend, the real server on a loopback port, and
//! the compiled `pforte` binary for command-line tests.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use figment::Figment;
use libtest_mimic::Failed;
use pforte::app::Application;
use pforte::clock::{ManualClock, SharedClock, SystemClock};
use pforte::config::Settings;
use pforte::http::state::AppState;
use pforte::keys::MasterKey;
use pforte::registry::Registry;
use sqlx::Connection;
use tokio_util::sync::CancellationToken;

pub type TestResult = anyhow::Result<()>;
pub type BackendTest = fn(TestContext) -> Pin<Box<dyn Future<Output = TestResult> + Send>>;

pub const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");

#[derive(Clone, Debug)]
pub enum TestBackend {
    Sqlite,
    /// The admin URL; each test creates and later drops its own database through it.
    Postgres(String),
}

/// What one test owns: its database and a scratch folder.
pub struct TestContext {
    pub database_url: String,
    /// Holds the SQLite file (and anything else the test writes) until the test ends.
    #[allow(dead_code)]
    pub dir: tempfile::TempDir,
    pub master_key: String,
    pub backend: TestBackend,
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime")
}

pub fn run_plain(test: impl Future<Output = TestResult>) -> Result<(), Failed> {
    runtime().block_on(test).map_err(|e| Failed::from(format!("{e:#}")))
}

pub fn run_backend_test(test: BackendTest, backend: TestBackend) -> Result<(), Failed> {
    runtime()
        .block_on(async move {
            let dir = tempfile::tempdir()?;
            let (database_url, drop_after) = match &backend {
                TestBackend::Sqlite => (format!("sqlite://{}/pforte.db", dir.path().display()), None),
                TestBackend::Postgres(admin) => {
                    let name = format!("pforte_t_{}", uuid::Uuid::new_v4().simple());
                    let mut conn = sqlx::PgConnection::connect(admin).await?;
                    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await?;
                    conn.close().await?;
                    (with_database(admin, &name)?, Some(name))
                }
            };
            let ctx =
                TestContext { database_url, dir, master_key: MasterKey::generate().encode(), backend: backend.clone() };
            let outcome = test(ctx).await;
            if let (TestBackend::Postgres(admin), Some(name)) = (&backend, drop_after) {
                let mut conn = sqlx::PgConnection::connect(admin).await?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut conn).await?;
            }
            outcome
        })
        .map_err(|e: anyhow::Error| Failed::from(format!("{e:#}")))
}

fn with_database(admin: &str, name: &str) -> anyhow::Result<String> {
    let mut url = url::Url::parse(admin)?;
    url.set_path(&format!("/{name}"));
    Ok(url.to_string())
}

/// The shipped registry, by absolute path so tests do not depend on the working directory.
pub fn shipped_registry_figment(figment: Figment) -> Figment {
    figment
        .merge(("registry.providers", format!("{MANIFEST_DIR}/providers")))
        .merge(("registry.clients", format!("{MANIFEST_DIR}/config/clients")))
        .merge(("registry.tenants", format!("{MANIFEST_DIR}/config/tenants")))
        .merge(("transfer.destinations", format!("{MANIFEST_DIR}/config/destinations")))
}

/// A running pforte with its own database.
pub struct TestApp {
    pub address: String,
    pub state: AppState,
    /// The development simulators, when this app runs them (they keep their own state).
    pub simulators: Option<pforte::dev::Simulators>,
    pub client: reqwest::Client,
    shutdown: CancellationToken,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestContext {
    /// Settings from the shipped default configuration, pointed at this test's database.
    pub fn figment(&self) -> Figment {
        let base = Settings::figment(Some(Path::new(&format!("{MANIFEST_DIR}/config/default.toml"))))
            .expect("default configuration");
        shipped_registry_figment(base)
            .merge(("database.url", self.database_url.clone()))
            .merge(("keys.master_key", format!("plain:{}", self.master_key)))
            .merge(("server.listen", "127.0.0.1:0"))
    }

    pub async fn spawn_app(&self) -> TestApp {
        self.spawn_app_with(|f| f, Arc::new(SystemClock)).await
    }

    pub async fn spawn_app_with_clock(&self, clock: ManualClock) -> TestApp {
        self.spawn_app_with(|f| f, Arc::new(clock)).await
    }

    pub async fn spawn_app_with(&self, adjust: impl FnOnce(Figment) -> Figment, clock: SharedClock) -> TestApp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let address = format!("http://127.0.0.1:{port}");
        let figment = adjust(self.figment().merge(("server.public_url", address.clone())));
        let settings = Settings::from_figment(figment).expect("valid test settings");
        let registry = Registry::load_with_destinations(
            &settings.registry,
            Some(&settings.transfer),
            &settings.server.public_url,
            settings.dev.simulators,
        )
        .expect("shipped registry");
        let app = Application::build_on(listener, settings, registry, clock).expect("application");
        let state = app.state();
        let simulators = app.simulators();
        let shutdown = app.shutdown_token();
        let server = tokio::spawn(app.run_until_stopped());
        state.readiness.wait().await;
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
        TestApp { address, state, simulators, client, shutdown, server: Some(server) }
    }

    /// An app as in production: simulators off, an empty registry (the shipped one is development
    /// only), and the master key from a file (a `plain:` key is refused without simulators).
    pub async fn spawn_app_without_simulators(&self) -> anyhow::Result<TestApp> {
        let root = self.dir.path();
        for dir in ["providers/identity", "providers/payment", "clients", "tenants"] {
            std::fs::create_dir_all(root.join(dir))?;
        }
        let key_file = root.join("master.key");
        std::fs::write(&key_file, &self.master_key)?;
        let app = self
            .spawn_app_with(
                |f| {
                    f.merge(("dev.simulators", false))
                        .merge(("registry.providers", root.join("providers")))
                        .merge(("registry.clients", root.join("clients")))
                        .merge(("registry.tenants", root.join("tenants")))
                        .merge(("transfer.destinations", root.join("destinations")))
                        .merge(("keys.master_key", format!("file:{}", key_file.display())))
                },
                Arc::new(SystemClock),
            )
            .await;
        Ok(app)
    }

    /// The shipped clients plus `extra` client files (name, TOML), in this test's folder.
    pub fn clients_with(&self, extra: &[(&str, String)]) -> String {
        let dir = self.dir.path().join("clients");
        copy_dir(&Path::new(MANIFEST_DIR).join("config/clients"), &dir).expect("copy clients");
        for (name, text) in extra {
            std::fs::write(dir.join(format!("{name}.toml")), text).expect("write client");
        }
        dir.display().to_string()
    }

    /// The shipped clients in `folder` of this test's scratch space, with the demo client notifying
    /// `url`, signed with `secret` (`whsec_…`). Returns the folder for `registry.clients`.
    pub fn clients_notifying(&self, folder: &str, url: &str, secret: &str) -> anyhow::Result<String> {
        let dir = self.dir.path().join(folder);
        copy_dir(&Path::new(MANIFEST_DIR).join("config/clients"), &dir)?;
        let demo = dir.join("demo.toml");
        let text = std::fs::read_to_string(&demo)?;
        let rewritten: Vec<String> = text
            .lines()
            .map(|line| {
                if line.starts_with("notification_url") {
                    format!("notification_url = \"{url}\"")
                } else if line.starts_with("notification_secret") {
                    format!("notification_secret = \"plain:{secret}\"")
                } else {
                    line.to_owned()
                }
            })
            .collect();
        std::fs::write(&demo, rewritten.join("\n"))?;
        Ok(dir.display().to_string())
    }

    /// Runs the `pforte` binary with `args` against this test's database, as an operator would.
    pub fn run_cli(&self, args: &[&str]) -> anyhow::Result<std::process::Output> {
        Ok(pforte_command().args(args).envs(self.cli_env()).output()?)
    }

    /// Runs the `pforte` binary and requires exit 0; returns what it printed.
    pub fn cli_ok(&self, args: &[&str]) -> anyhow::Result<String> {
        let output = self.run_cli(args)?;
        let text = output_text(&output);
        anyhow::ensure!(output.status.success(), "pforte {}: exit {:?}: {text}", args.join(" "), output.status.code());
        Ok(text)
    }

    /// Environment for running the `pforte` binary against this test's database.
    pub fn cli_env(&self) -> Vec<(String, String)> {
        vec![
            ("PFORTE__DATABASE__URL".into(), self.database_url.clone()),
            ("PFORTE__KEYS__MASTER_KEY".into(), format!("plain:{}", self.master_key)),
            ("PFORTE__REGISTRY__PROVIDERS".into(), format!("{MANIFEST_DIR}/providers")),
            ("PFORTE__REGISTRY__CLIENTS".into(), format!("{MANIFEST_DIR}/config/clients")),
            ("PFORTE__REGISTRY__TENANTS".into(), format!("{MANIFEST_DIR}/config/tenants")),
            ("PFORTE__TRANSFER__DESTINATIONS".into(), format!("{MANIFEST_DIR}/config/destinations")),
            ("PFORTE__SERVER__LISTEN".into(), "127.0.0.1:0".into()),
            ("PFORTE__LOG__FORMAT".into(), "json".into()),
        ]
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("request")
    }

    /// Signals shutdown without waiting (in-flight requests are allowed to finish).
    pub fn begin_shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
            server.await??;
        }
        Ok(())
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The compiled binary, run from the package root so relative defaults resolve.
pub fn pforte_command() -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_pforte"));
    command.current_dir(MANIFEST_DIR);
    for (key, _) in std::env::vars() {
        if key.starts_with("PFORTE__") || key == "PFORTE_CONFIG" {
            command.env_remove(key);
        }
    }
    command
}

pub fn output_text(output: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

pub fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target: PathBuf = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// One notification as an online service received it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub webhook_id: String,
    pub payload: serde_json::Value,
    /// Which of the receiver's secrets verified the signature (instances may sign with different ones).
    pub signed_with: usize,
}

/// An online service's notification endpoint on a loopback port: verifies each Standard Webhooks
/// signature against its secrets, records what arrived and answers 200 (401 to a bad signature).
#[derive(Clone)]
pub struct NotificationReceiver {
    pub url: String,
    received: Arc<Mutex<Vec<Delivery>>>,
}

impl NotificationReceiver {
    pub async fn start(secrets: &[&str]) -> anyhow::Result<NotificationReceiver> {
        use axum::http::{HeaderMap, StatusCode};
        use pforte::crypto::webhook::WebhookSecret;
        use secrecy::SecretString;

        let secrets: Vec<String> = secrets.iter().map(|s| (*s).to_owned()).collect();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://127.0.0.1:{}/hook", listener.local_addr()?.port());
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        let handler = move |headers: HeaderMap, body: axum::body::Bytes| {
            let (log, secrets) = (log.clone(), secrets.clone());
            async move {
                let header =
                    |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
                let now = chrono::Utc::now().timestamp();
                // Wide window: tests may run pforte on a clock moved days ahead.
                let signed_with = secrets.iter().position(|secret| {
                    WebhookSecret::parse(&SecretString::from(secret.clone())).is_ok_and(|secret| {
                        let (id, at, signature) =
                            (header("webhook-id"), header("webhook-timestamp"), header("webhook-signature"));
                        secret.verify(&id, &at, &signature, &body, now, 7 * 24 * 3600).is_ok()
                    })
                });
                let Some(signed_with) = signed_with else { return StatusCode::UNAUTHORIZED };
                let payload = serde_json::from_slice(&body).unwrap_or_default();
                let delivery = Delivery { webhook_id: header("webhook-id"), payload, signed_with };
                log.lock().map(|mut log| log.push(delivery)).ok();
                StatusCode::OK
            }
        };
        let router = axum::Router::new().route("/hook", axum::routing::post(handler));
        tokio::spawn(async move { axum::serve(listener, router).await });
        Ok(NotificationReceiver { url, received })
    }

    pub fn received(&self) -> Vec<Delivery> {
        self.received.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

/// Polls `check` every 100 ms until it yields `Some` or `limit` passes (for background workers).
pub async fn eventually<T, F, Fut>(limit: std::time::Duration, what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!("{what}: not within {} s", limit.as_secs());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The `pforte` binary serving on a loopback port the test chose (a restart can take the same one,
/// so the public URL and the pay URLs stay valid).
pub struct Pforte {
    child: std::process::Child,
    log: PathBuf,
    pub base: String,
}

impl Pforte {
    /// Starts `pforte serve` with `clients` as its client registry and `env` added, and waits until
    /// it is ready; its log goes to `<name>.log` in the test's folder.
    pub async fn start(
        ctx: &TestContext,
        port: u16,
        clients: &str,
        name: &str,
        env: &[(&str, String)],
    ) -> anyhow::Result<Pforte> {
        let base = format!("http://127.0.0.1:{port}");
        let log = ctx.dir.path().join(format!("{name}.log"));
        let child = pforte_command()
            .arg("serve")
            .envs(ctx.cli_env())
            .env("PFORTE__REGISTRY__CLIENTS", clients)
            .env("PFORTE__SERVER__LISTEN", format!("127.0.0.1:{port}"))
            .env("PFORTE__SERVER__PUBLIC_URL", &base)
            .env("PFORTE__SERVER__SHUTDOWN_GRACE_SECS", "5")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()?;
        let mut pforte = Pforte { child, log, base };
        let http = reqwest::Client::new();
        let ready = eventually(std::time::Duration::from_secs(30), "pforte ready", || {
            let (http, url) = (http.clone(), format!("{}/readyz", pforte.base));
            async move { Ok(http.get(url).send().await.ok().filter(|r| r.status() == 200).map(|_| ())) }
        })
        .await;
        if let Err(e) = ready {
            let exited = pforte.child.try_wait()?;
            anyhow::bail!("{e} (exit {exited:?}); log:\n{}", pforte.log_text());
        }
        Ok(pforte)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: no shutdown code runs, open transactions die with the process.
    pub fn kill_9(mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// SIGTERM: the graceful stop; an error unless pforte exits with 0.
    pub fn stop(mut self) -> anyhow::Result<()> {
        let status = std::process::Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status()?;
        anyhow::ensure!(status.success(), "kill -TERM failed");
        let exit = self.child.wait()?;
        anyhow::ensure!(exit.success(), "exit {exit:?}; log:\n{}", self.log_text());
        Ok(())
    }
}

impl Drop for Pforte {
    /// A test that fails half-way leaves no server behind.
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.child.kill().ok();
            self.child.wait().ok();
        }
    }
}

/// A loopback port free at the moment (for a server that must know its port before it starts).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

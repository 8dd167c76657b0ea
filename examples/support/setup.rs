//! What a benchmark needs around pforte: a scratch database, a payment provider stub that answers
//! at once, the shipped registry routed to that stub, and pforte instances on loopback ports with
//! the rate limits out of the way. Shared by the benchmarks under `examples/`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::http::StatusCode;
use axum::Json;
use pforte::app::Application;
use pforte::clock::SystemClock;
use pforte::config::Settings;
use pforte::http::state::AppState;
use pforte::registry::Registry;
use serde_json::{json, Value};
use sqlx::Connection;
use tokio_util::sync::CancellationToken;

pub(crate) const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");
pub(crate) const SECRET: &str = "demo-secret-change-me";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// A database of the benchmark's own: a file in a temporary folder, or a PostgreSQL database
/// created for the run and dropped by [`ScratchDatabase::drop_now`].
pub(crate) struct ScratchDatabase {
    pub url: String,
    /// PostgreSQL: the admin URL and the database's name.
    postgres: Option<(String, String)>,
}

impl ScratchDatabase {
    pub(crate) async fn create(backend: &str, postgres_url: &str, dir: &Path) -> anyhow::Result<Self> {
        match backend {
            "sqlite" => Ok(ScratchDatabase { url: format!("sqlite://{}/bench.db", dir.display()), postgres: None }),
            "postgres" => {
                let name = format!("pforte_bench_{}", std::process::id());
                let mut conn = sqlx::PgConnection::connect(postgres_url).await?;
                sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await?;
                let mut url = url::Url::parse(postgres_url)?;
                url.set_path(&format!("/{name}"));
                Ok(ScratchDatabase { url: url.to_string(), postgres: Some((postgres_url.to_owned(), name)) })
            }
            other => anyhow::bail!("unknown backend {other}: use sqlite or postgres"),
        }
    }

    pub(crate) fn is_postgres(&self) -> bool {
        self.postgres.is_some()
    }

    pub(crate) async fn drop_now(self) -> anyhow::Result<()> {
        if let Some((admin, name)) = self.postgres {
            let mut conn = sqlx::PgConnection::connect(&admin).await?;
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut conn).await?;
        }
        Ok(())
    }
}

/// A provider that answers every create at once, as XBezahldienste shapes it; returns its base URL.
pub(crate) async fn start_stub() -> anyhow::Result<String> {
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

/// The shipped registry in `root/registry` with München (09162000) paying through the stub.
pub(crate) fn registry_routed_to(root: &Path, stub: &str) -> anyhow::Result<PathBuf> {
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

/// One pforte on a loopback port of this process.
pub(crate) struct Instance {
    pub address: String,
    pub state: AppState,
    shutdown: CancellationToken,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Instance {
    /// Starts pforte on `database_url` with the registry in `registry_dir`. Instances given the same
    /// `master_key` share the signing keys in their database. The background workers are off, so
    /// only what a request does is measured; the rate limits are far above any benchmark's load.
    pub(crate) async fn start(database_url: &str, registry_dir: &Path, master_key: &str) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = format!("http://127.0.0.1:{}", listener.local_addr()?.port());
        let unlimited = ["oauth", "oauth_client", "finance", "callbacks"];
        let figment = Settings::figment(Some(Path::new(&format!("{MANIFEST_DIR}/config/default.toml"))))
            .map_err(|p| anyhow::anyhow!("{p}"))?
            .merge(("registry.providers", registry_dir.join("providers")))
            .merge(("registry.clients", registry_dir.join("clients")))
            .merge(("registry.tenants", registry_dir.join("tenants")))
            .merge(("transfer.destinations", registry_dir.join("destinations")))
            .merge(("database.url", database_url))
            .merge(("database.max_connections", 16))
            .merge(("keys.master_key", format!("plain:{master_key}")))
            .merge(("server.public_url", address.clone()))
            .merge(("workers.notifications", false))
            .merge(("workers.payment_status", false))
            .merge(("log.level", "warn"));
        let figment =
            unlimited.iter().fold(figment, |f, group| f.merge((format!("rate_limit.{group}.requests"), 100_000_000)));
        let settings = Settings::from_figment(figment).map_err(|p| anyhow::anyhow!("{p}"))?;
        let _telemetry = pforte::telemetry::init(&settings.log, &settings.traces);
        let registry = Registry::load_with_destinations(
            &settings.registry,
            Some(&settings.transfer),
            &settings.server.public_url,
            true,
        )
        .map_err(|p| anyhow::anyhow!("{p}"))?;
        let app = Application::build_on(listener, settings, registry, Arc::new(SystemClock))?;
        let state = app.state();
        let shutdown = app.shutdown_token();
        let server = tokio::spawn(app.run_until_stopped());
        state.readiness.wait().await;
        Ok(Instance { address, state, shutdown, server })
    }

    pub(crate) async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.server.await?
    }
}

/// One `client_credentials` token request for the demo service; panics on any answer but 200.
pub(crate) async fn client_credentials(client: &reqwest::Client, address: &str) -> String {
    let response = client
        .post(format!("{address}/token"))
        .basic_auth("demo", Some(SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("token request");
    assert_eq!(response.status(), 200);
    let tokens: Value = response.json().await.expect("token body");
    tokens["access_token"].as_str().unwrap_or_default().to_owned()
}

/// Redeems a code from [`login`] at `/token`; panics on any answer but 200.
pub(crate) async fn exchange(client: &reqwest::Client, address: &str, code: &str) {
    let redirect = format!("{address}/demo/callback");
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
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
pub(crate) async fn login(client: &reqwest::Client, address: &str) -> String {
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

/// A payment create's body with a requestId never used before (`number`); its redirectUrl is on
/// `redirect_origin`, which the demo service registered (pforte's own address).
pub(crate) fn payment_body(number: usize, redirect_origin: &str) -> Value {
    json!({
        "requestId": format!("B-{number}"), "requestTimestamp": "2026-11-29T10:00:00+01:00",
        "currency": "EUR", "grosAmount": 12.00, "purpose": format!("Gebuehr {number}"),
        "redirectUrl": format!("{redirect_origin}/demo/bezahlt"), "items": [{ "totalNetAmount": 12.00 }]
    })
}

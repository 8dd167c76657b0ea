//! Registry changes without a restart, through the real binary: `pforte serve` on a registry copied
//! into the test's folder, changed there, and read again on SIGHUP (`pforte reload` through the pid
//! file) or `POST /reload` on the operator's address. A broken change leaves the old registry serving
//! and names every problem; an added client logs in at once; a client or account provider taken out
//! during a login ends that login plainly; every reload leaves an audit event with what changed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::helpers::{copy_dir, eventually, free_port, output_text, pforte_command, Pforte, TestContext, TestResult};
use crate::keys::any_pool;
use crate::oidc::{CHALLENGE, DEMO_SECRET, VERIFIER};

const SECOND_SECRET: &str = "second-secret";

/// A client the shipped registry does not have: logs in through the BundID simulator only.
const SECOND_CLIENT: &str = r#"
display_name = "Zweiter Dienst"
redirect_uris = ["{public_url}/demo/callback"]
identity_providers = ["bundid-sim"]
scopes = ["openid", "profile"]
grant_types = ["authorization_code", "client_credentials"]

[auth]
method = "client_secret_basic"
secret = "plain:second-secret"
"#;

/// A running `pforte serve` with its own registry folder, pid file and operator's address.
struct Instance {
    pforte: Pforte,
    registry: PathBuf,
    pid_file: PathBuf,
    admin: String,
    http: reqwest::Client,
}

impl Instance {
    async fn start(ctx: &TestContext, name: &str) -> anyhow::Result<Instance> {
        let registry = ctx.dir.path().join(format!("{name}-registry"));
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR"));
        copy_dir(&shipped.join("providers"), &registry.join("providers"))?;
        copy_dir(&shipped.join("config/clients"), &registry.join("clients"))?;
        copy_dir(&shipped.join("config/tenants"), &registry.join("tenants"))?;
        let pid_file = ctx.dir.path().join(format!("{name}.pid"));
        let admin_port = free_port()?;
        let env = [
            ("PFORTE__REGISTRY__PROVIDERS", registry.join("providers").display().to_string()),
            ("PFORTE__REGISTRY__TENANTS", registry.join("tenants").display().to_string()),
            ("PFORTE__SERVER__PID_FILE", pid_file.display().to_string()),
            ("PFORTE__SERVER__METRICS_LISTEN", format!("127.0.0.1:{admin_port}")),
        ];
        let clients = registry.join("clients").display().to_string();
        let pforte = Pforte::start(ctx, free_port()?, &clients, name, &env).await?;
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
        Ok(Instance { pforte, registry, pid_file, admin: format!("http://127.0.0.1:{admin_port}"), http })
    }

    fn write(&self, relative: &str, text: &str) -> std::io::Result<()> {
        std::fs::write(self.registry.join(relative), text)
    }

    /// `pforte reload`, run as an operator would, with this instance's pid file.
    fn reload_by_signal(&self, ctx: &TestContext) -> anyhow::Result<String> {
        let output = pforte_command()
            .arg("reload")
            .envs(ctx.cli_env())
            .env("PFORTE__SERVER__PID_FILE", &self.pid_file)
            .output()?;
        let text = output_text(&output);
        anyhow::ensure!(output.status.success(), "pforte reload: {text}");
        Ok(text)
    }

    async fn reload_by_admin(&self) -> anyhow::Result<(u16, Value)> {
        let response = self.http.post(format!("{}/reload", self.admin)).send().await?;
        Ok((response.status().as_u16(), response.json().await?))
    }

    /// The status of a client_credentials token request with these credentials.
    async fn token_status(&self, client: &str, secret: &str) -> anyhow::Result<u16> {
        let response = self
            .http
            .post(format!("{}/token", self.pforte.base))
            .basic_auth(client, Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await?;
        Ok(response.status().as_u16())
    }

    /// `GET` with pforte's browser cookie, if one was given.
    async fn get(&self, url: &str, cookie: Option<&str>) -> anyhow::Result<reqwest::Response> {
        let mut request = self.http.get(url);
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        Ok(request.send().await?)
    }

    /// A login of `client` from the authorization request to the BundID simulator's page: the
    /// browser cookie and where the simulator's page is.
    async fn start_login(&self, client: &str) -> anyhow::Result<(String, String)> {
        let params = [
            ("client_id", client.to_owned()),
            ("redirect_uri", format!("{}/demo/callback", self.pforte.base)),
            ("response_type", "code".to_owned()),
            ("scope", "openid profile".to_owned()),
            ("state", "reload-state".to_owned()),
            ("nonce", "reload-nonce".to_owned()),
            ("code_challenge", CHALLENGE.to_owned()),
            ("code_challenge_method", "S256".to_owned()),
            ("acr_values", "http://eidas.europa.eu/LoA/substantial".to_owned()),
        ];
        let query = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
        let answer = self.get(&format!("{}/authorize?{query}", self.pforte.base), None).await?;
        anyhow::ensure!(answer.status() == 303, "authorize: {} {}", answer.status(), answer.text().await?);
        let cookie = answer
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_owned))
            .find(|pair| pair.starts_with("__Host-pforte-browser="))
            .ok_or_else(|| anyhow::anyhow!("no browser cookie"))?;
        Ok((cookie, location(&answer)))
    }

    /// Erika logs in at the simulator page; returns pforte's answer to the simulator's redirect back.
    async fn finish_login(&self, cookie: &str, simulator: &str) -> anyhow::Result<reqwest::Response> {
        let page = self.get(simulator, None).await?.text().await?;
        let request = page
            .split("name=\"request\" value=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .ok_or_else(|| anyhow::anyhow!("no request id on the simulator page"))?;
        let decide = format!("{}/authorize/decide", simulator.split("/authorize").next().unwrap_or_default());
        let form = [("request", request), ("persona", "erika"), ("level", "STORK-QAA-Level-3"), ("action", "login")];
        let back = self.http.post(decide).form(&form).send().await?;
        anyhow::ensure!(back.status() == 303, "simulator: {}", back.status());
        self.get(&location(&back), Some(cookie)).await
    }
}

fn location(response: &reqwest::Response) -> String {
    response.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

/// The details of every audit event `event`, chained or still waiting for the chainer.
async fn audit_details(ctx: &TestContext, event: &str) -> anyhow::Result<Vec<Value>> {
    let pool = any_pool(&ctx.database_url).await?;
    let mut details = Vec::new();
    for table in ["audit_log", "audit_pending"] {
        let rows: Vec<String> = sqlx::query_scalar(&format!("SELECT details FROM {table} WHERE event = $1"))
            .bind(event)
            .fetch_all(&pool)
            .await?;
        for row in rows {
            details.push(serde_json::from_str(&row)?);
        }
    }
    pool.close().await;
    Ok(details)
}

/// The details of `event`s once at least `count` are written (a reload audits after it answers).
async fn audited(ctx: &TestContext, event: &str, count: usize) -> anyhow::Result<Vec<Value>> {
    eventually(Duration::from_secs(30), &format!("{count} {event} audited"), || async move {
        let details = audit_details(ctx, event).await?;
        Ok((details.len() >= count).then_some(details))
    })
    .await
}

pub async fn a_reload_with_broken_files_keeps_serving_the_old_registry_and_names_every_problem(
    ctx: TestContext,
) -> TestResult {
    let instance = Instance::start(&ctx, "broken").await?;
    // A valid new client, a file that is no valid TOML entry, and a tenant naming no provider: the
    // reload is all or nothing, so not even the valid client comes into use.
    instance.write("clients/second.toml", SECOND_CLIENT)?;
    instance.write("clients/broken.toml", "display_name = 5\n")?;
    let tenant = std::fs::read_to_string(instance.registry.join("tenants/09162000.toml"))?;
    instance.write("tenants/09162000.toml", &tenant.replace("provider = \"sim-pay\"", "provider = \"nowhere\""))?;

    let (status, body) = instance.reload_by_admin().await?;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["code"], "invalid_registry");
    let problems = body["problems"].as_array().cloned().unwrap_or_default();
    let named = |file: &str, key: &str| {
        problems.iter().any(|p| p["file"].as_str().is_some_and(|f| f.ends_with(file)) && p["key"] == key)
    };
    assert!(named("clients/broken.toml", "display_name"), "{body}");
    assert!(named("tenants/09162000.toml", "payment.provider"), "{body}");

    // The same through SIGHUP: the signal carries no answer, so the log says it, problem by problem.
    instance.reload_by_signal(&ctx)?;
    let log = eventually(Duration::from_secs(30), "the refused reload in the log", || {
        let log = instance.pforte.log_text();
        async move { Ok((log.matches("registry reload refused").count() >= 2).then_some(log)) }
    })
    .await?;
    assert!(log.contains("\"trigger\":\"signal\""), "{log}");
    assert!(log.contains("clients/broken.toml") && log.contains("tenants/09162000.toml"), "{log}");

    // Still serving, and with the old registry: the demo client works, the new one is unknown.
    assert_eq!(instance.token_status("demo", DEMO_SECRET).await?, 200);
    assert_eq!(instance.token_status("second", SECOND_SECRET).await?, 401);
    // The log line comes a moment before the audit event of the same reload is written.
    let refused = audited(&ctx, "registry.reload_refused", 2).await?;
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert!(refused.iter().any(|d| d["trigger"] == "admin") && refused.iter().any(|d| d["trigger"] == "signal"));
    assert!(audit_details(&ctx, "registry.reloaded").await?.is_empty());

    // Once the files are fixed, the next reload takes the new client in.
    std::fs::remove_file(instance.registry.join("clients/broken.toml"))?;
    instance.write("tenants/09162000.toml", &tenant)?;
    let (status, body) = instance.reload_by_admin().await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["changes"]["clients"]["added"], serde_json::json!(["second"]), "{body}");
    assert_eq!(body["changes"]["tenants"]["changed"], serde_json::json!([]), "the tenant is as before: {body}");
    assert_eq!(instance.token_status("second", SECOND_SECRET).await?, 200);
    // Counted for monitoring: two refused, one applied.
    let scrape = instance.http.get(format!("{}/metrics", instance.admin)).send().await?.text().await?;
    assert!(scrape.contains("pforte_registry_reloads_total{outcome=\"refused\"} 2"), "{scrape}");
    assert!(scrape.contains("pforte_registry_reloads_total{outcome=\"applied\"} 1"), "{scrape}");
    instance.pforte.stop()
}
backend_test!(a_reload_with_broken_files_keeps_serving_the_old_registry_and_names_every_problem);

pub async fn a_reload_that_adds_a_client_lets_it_log_in_without_a_restart(ctx: TestContext) -> TestResult {
    let instance = Instance::start(&ctx, "added").await?;
    assert_eq!(instance.token_status("second", SECOND_SECRET).await?, 401, "not registered yet");
    instance.write("clients/second.toml", SECOND_CLIENT)?;
    let said = instance.reload_by_signal(&ctx)?;
    assert!(said.contains("process"), "{said}");
    eventually(Duration::from_secs(30), "the new client accepted", || {
        let instance = &instance;
        async move { Ok((instance.token_status("second", SECOND_SECRET).await? == 200).then_some(())) }
    })
    .await?;

    // A whole login of the new client, through the simulator, to its tokens.
    let (cookie, simulator) = instance.start_login("second").await?;
    let answer = instance.finish_login(&cookie, &simulator).await?;
    assert_eq!(answer.status(), 303);
    let back = url::Url::parse(&location(&answer))?;
    let code = back.query_pairs().find(|(k, _)| k == "code").map(|(_, v)| v.into_owned()).unwrap_or_default();
    assert!(!code.is_empty(), "{back}");
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", &format!("{}/demo/callback", instance.pforte.base)),
        ("code_verifier", VERIFIER),
    ];
    let tokens = instance
        .http
        .post(format!("{}/token", instance.pforte.base))
        .basic_auth("second", Some(SECOND_SECRET))
        .form(&form)
        .send()
        .await?;
    assert_eq!(tokens.status(), 200);
    let tokens: Value = tokens.json().await?;
    assert!(tokens["id_token"].is_string(), "{tokens}");

    // Audited with what changed, ids only; the demo client, untouched, is not named.
    let reloaded = audited(&ctx, "registry.reloaded", 1).await?;
    assert_eq!(reloaded.len(), 1, "{reloaded:?}");
    assert_eq!(reloaded[0]["trigger"], "signal");
    assert_eq!(reloaded[0]["changes"]["clients"]["added"], serde_json::json!(["second"]));
    assert_eq!(reloaded[0]["changes"]["clients"]["changed"], serde_json::json!([]));
    assert!(!reloaded[0].to_string().contains(SECOND_SECRET), "no secret in the audit log");

    // A second instance on the same pid file is refused while this one runs; a clean stop removes it.
    let second = pforte_command()
        .arg("serve")
        .envs(ctx.cli_env())
        .env("PFORTE__SERVER__PID_FILE", &instance.pid_file)
        .env("PFORTE__SERVER__PUBLIC_URL", "http://127.0.0.1:1")
        .output()?;
    assert!(!second.status.success());
    assert!(output_text(&second).contains("which is running"), "{}", output_text(&second));
    assert!(instance.pid_file.exists(), "the running instance's pid file stays");
    let pid_file = instance.pid_file.clone();
    instance.pforte.stop()?;
    assert!(!pid_file.exists(), "a clean stop removes the pid file");
    Ok(())
}
backend_test!(a_reload_that_adds_a_client_lets_it_log_in_without_a_restart);

pub async fn a_client_or_provider_taken_out_during_a_login_ends_it_plainly(ctx: TestContext) -> TestResult {
    let instance = Instance::start(&ctx, "removed").await?;
    instance.write("clients/second.toml", SECOND_CLIENT)?;
    assert_eq!(instance.reload_by_admin().await?.0, 200);

    // The service goes while its login is at the account provider: no code, a page saying so.
    let (cookie, simulator) = instance.start_login("second").await?;
    std::fs::remove_file(instance.registry.join("clients/second.toml"))?;
    let (status, body) = instance.reload_by_admin().await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["changes"]["clients"]["removed"], serde_json::json!(["second"]), "{body}");
    let answer = instance.finish_login(&cookie, &simulator).await?;
    assert_eq!(answer.status(), 400, "no code for a service that is gone");
    let page = answer.text().await?;
    assert!(page.contains("nicht mehr angebunden"), "{page}");

    // The account provider goes while a login is with it: the service hears access_denied.
    instance.write("clients/second.toml", SECOND_CLIENT)?;
    assert_eq!(instance.reload_by_admin().await?.0, 200);
    let (cookie, simulator) = instance.start_login("second").await?;
    let without_bundid =
        |text: String| text.replace("\"bundid-sim\", ", "").replace("\"bundid-sim\"", "\"unternehmenskonto-sim\"");
    instance.write("clients/second.toml", &without_bundid(SECOND_CLIENT.to_owned()))?;
    let demo = std::fs::read_to_string(instance.registry.join("clients/demo.toml"))?;
    instance.write("clients/demo.toml", &without_bundid(demo))?;
    std::fs::remove_file(instance.registry.join("providers/identity/bundid-sim.toml"))?;
    let (status, body) = instance.reload_by_admin().await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["changes"]["identity_providers"]["removed"], serde_json::json!(["bundid-sim"]), "{body}");
    let answer = instance.finish_login(&cookie, &simulator).await?;
    assert_eq!(answer.status(), 303);
    let back = location(&answer);
    assert!(back.contains("error=access_denied") && back.contains("no+longer+available"), "{back}");
    assert!(!back.contains("code="), "{back}");
    instance.pforte.stop()
}
backend_test!(a_client_or_provider_taken_out_during_a_login_ends_it_plainly);

pub async fn reload_without_a_pid_file_setting_or_running_instance_says_so() -> TestResult {
    let unset = pforte_command().arg("reload").env("PFORTE__KEYS__MASTER_KEY", "plain:unused").output()?;
    assert_eq!(unset.status.code(), Some(1), "{}", output_text(&unset));
    assert!(output_text(&unset).contains("server.pid_file is not set"), "{}", output_text(&unset));

    let dir = tempfile::tempdir()?;
    let missing = dir.path().join("gone.pid");
    let output = pforte_command().arg("reload").env("PFORTE__SERVER__PID_FILE", &missing).output()?;
    assert_eq!(output.status.code(), Some(1), "{}", output_text(&output));
    assert!(output_text(&output).contains("is pforte serve running"), "{}", output_text(&output));
    Ok(())
}
plain_test!(reload_without_a_pid_file_setting_or_running_instance_says_so);

//! The real-browser suite (`tests/browser/`, headless system Chromium driven by playwright-core):
//! this test starts pforte in-process with a registry that adds two upstream OpenID Providers on
//! other loopback ports (oidc-provider instances the node suite starts) and an online service on a
//! third port, then runs the suite. Its failures fail this test with the suite's output.
//! Runs when `tests/browser/node_modules` (`npm ci` there; CI does it) and `/usr/bin/chromium` exist.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::finance::finance_token;
use crate::helpers::{copy_dir, free_port, TestContext, TestResult, MANIFEST_DIR};

/// The whole suite's time limit: a hung browser or page must not hang CI.
const SUITE_LIMIT: Duration = Duration::from_secs(8 * 60);
const CHROMIUM: &str = "/usr/bin/chromium";
/// The online service's and the upstream providers' development secrets, shared with the suite.
const RP_SECRET: &str = "browser-rp-secret";
const OP_SECRET: &str = "browser-op-secret";

fn suite_dir() -> PathBuf {
    PathBuf::from(MANIFEST_DIR).join("tests/browser")
}

pub fn browser_suite_installed() -> bool {
    suite_dir().join("node_modules/playwright-core").is_dir() && Path::new(CHROMIUM).exists()
}

/// An upstream provider entry for an oidc-provider instance on `port` (`acr` values as in
/// `tests/browser/lib/providers.mjs`); pforte's client secret there is `OP_SECRET`.
fn upstream_provider(name: &str, port: u16) -> String {
    format!(
        r#"kind = "oidc"
display_name = "{name}"
account_type = "person"
issuer = "http://127.0.0.1:{port}"
client_id = "pforte"
scopes = ["openid", "profile"]

[client_auth]
method = "client_secret_basic"
secret = "plain:{OP_SECRET}"

[claims]
given_name = "given_name"
family_name = "family_name"

[levels]
"urn:pforte:browser:low" = "low"
"urn:pforte:browser:substantial" = "substantial"

[acr_values]
substantial = "urn:pforte:browser:substantial"
"#
    )
}

/// The online service on another origin (port `rp`) that may use both upstream providers and the
/// citizen account simulator.
fn online_service(rp: u16) -> String {
    format!(
        r#"display_name = "Browser-Testdienst"
redirect_uris = ["http://127.0.0.1:{rp}/callback"]
post_logout_redirect_uris = ["http://127.0.0.1:{rp}/"]
identity_providers = ["browser-op-a", "browser-op-b", "bundid-sim"]
scopes = ["openid", "profile"]
min_level = "substantial"
grant_types = ["authorization_code"]
require_par = false
id_token_alg = "ES256"

[auth]
method = "client_secret_basic"
secret = "plain:{RP_SECRET}"
"#
    )
}

pub async fn a_real_browser_logs_in_pays_logs_out_and_reads_the_finance_page(ctx: TestContext) -> TestResult {
    let (op_a, op_b, rp) = (free_port()?, free_port()?, free_port()?);
    let root = ctx.dir.path().join("browser-registry");
    copy_dir(&Path::new(MANIFEST_DIR).join("providers"), &root.join("providers"))?;
    std::fs::write(
        root.join("providers/identity/browser-op-a.toml"),
        upstream_provider("Konto A (oidc-provider)", op_a),
    )?;
    std::fs::write(
        root.join("providers/identity/browser-op-b.toml"),
        upstream_provider("Konto B (oidc-provider)", op_b),
    )?;
    let clients = ctx.clients_with(&[("browser-rp", online_service(rp))]);
    let app = ctx
        .spawn_app_with(
            |f| f.merge(("registry.providers", root.join("providers"))).merge(("registry.clients", clients)),
            std::sync::Arc::new(pforte::clock::SystemClock),
        )
        .await;
    let finance = finance_token(&ctx, "09162000")?;
    let screenshots = PathBuf::from(MANIFEST_DIR).join("target/browser");
    std::fs::create_dir_all(&screenshots)?;

    let child = std::process::Command::new("node")
        .arg("suite.mjs")
        .current_dir(suite_dir())
        .env("PFORTE_URL", &app.address)
        .env("OP_A_PORT", op_a.to_string())
        .env("OP_B_PORT", op_b.to_string())
        .env("OP_SECRET", OP_SECRET)
        .env("RP_PORT", rp.to_string())
        .env("RP_SECRET", RP_SECRET)
        .env("FINANCE_TENANT", "09162000")
        .env("FINANCE_TOKEN", &finance)
        .env("CHROMIUM", CHROMIUM)
        .env("SCREENSHOTS", &screenshots)
        .env("SUITE_LIMIT_SECS", SUITE_LIMIT.as_secs().to_string())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let pid = child.id().to_string();
    // The suite stops itself at SUITE_LIMIT; this is the backstop if node itself hangs.
    let waited = tokio::time::timeout(SUITE_LIMIT + Duration::from_secs(30), async {
        tokio::task::spawn_blocking(move || child.wait_with_output()).await
    })
    .await;
    let Ok(output) = waited else {
        std::process::Command::new("kill").args(["-KILL", &pid]).status()?;
        anyhow::bail!("the browser suite did not finish within {SUITE_LIMIT:?}");
    };
    let output = output??;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the browser suite failed ({}):\n{stdout}\n{stderr}", output.status);
    println!("{stdout}");
    app.stop().await
}
sqlite_test!(a_real_browser_logs_in_pays_logs_out_and_reads_the_finance_page, only_if = browser_suite_installed);

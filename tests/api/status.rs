//! Dependency health (issue 11, item 4) through the real binary: `GET /status` on the operator's
//! address reports each upstream identity provider, each payment provider per authority, the outbox
//! and the database; it is not served on the public address; `pforte status` asks the same now and
//! exits 6, naming the cause, when providers cannot be reached.

use serde_json::Value;

use crate::helpers::{free_port, output_text, pforte_command, Pforte, TestContext, TestResult};
use crate::tcp_proxy::TcpProxy;
use pforte::config::Settings;
use pforte::health::{Overall, State};
use pforte::registry::Registry;

/// The ids and states of one list of the report.
fn states(report: &Value, list: &str) -> Vec<(String, String)> {
    let mut states: Vec<(String, String)> = report[list]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .map(|e| (e["id"].as_str().unwrap_or("?").to_owned(), e["status"].as_str().unwrap_or("?").to_owned()))
                .collect()
        })
        .unwrap_or_default();
    states.sort();
    states
}

fn up(ids: &[&str]) -> Vec<(String, String)> {
    ids.iter().map(|id| ((*id).to_owned(), "up".to_owned())).collect()
}

pub async fn the_operator_address_reports_every_dependency(ctx: TestContext) -> TestResult {
    let clients = format!("{}/config/clients", env!("CARGO_MANIFEST_DIR"));
    let admin = free_port()?;
    let metrics_listen = ("PFORTE__SERVER__METRICS_LISTEN", format!("127.0.0.1:{admin}"));
    let pforte = Pforte::start(&ctx, free_port()?, &clients, "status", &[metrics_listen]).await?;
    let http = reqwest::Client::new();

    let response = http.get(format!("http://127.0.0.1:{admin}/status")).send().await?;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let report: Value = response.json().await?;
    assert_eq!(report["status"], "ok", "{report:#}");
    assert_eq!(report["database"]["status"], "up");
    let backend = if ctx.database_url.starts_with("postgres") { "postgres" } else { "sqlite" };
    assert_eq!(report["database"]["backend"], backend);
    assert_eq!(report["outbox"]["status"], "up");
    assert_eq!(report["outbox"]["undelivered"], 0);
    assert_eq!(
        states(&report, "identity_providers"),
        up(&[
            "bundid-saml-sim",
            "bundid-sim",
            "dienstkonto-sim",
            "unternehmenskonto-saml-sim",
            "unternehmenskonto-sim"
        ]),
        "{report:#}"
    );
    for idp in report["identity_providers"].as_array().into_iter().flatten() {
        assert!(idp["keys"].as_u64().is_some_and(|keys| keys >= 1), "{idp}");
        assert!(idp["keys_age_secs"].is_u64(), "the keys in use are cached and aged: {idp}");
        assert!(idp["last_ok_at"].is_string(), "{idp}");
    }
    assert_eq!(states(&report, "payment_providers"), up(&["sim-pay", "sim-pay-b"]), "{report:#}");
    // Each authority routed to a provider is asked about, as an online service that pays there.
    let sim_pay = report["payment_providers"].as_array().into_iter().flatten().find(|p| p["id"] == "sim-pay");
    let checks = sim_pay.map(|p| p["checks"].clone()).unwrap_or_default();
    let asked: Vec<&str> = checks.as_array().into_iter().flatten().filter_map(|c| c["tenant"].as_str()).collect();
    assert!(asked.contains(&"09162000"), "{checks}");
    assert!(checks.as_array().into_iter().flatten().all(|c| c["status"] == "up" && c["originator"] == "demo-service"));

    // Only the operator's address serves it.
    let public = http.get(format!("{}/status", pforte.base)).send().await?;
    assert_eq!(public.status(), 404);

    // The command asks the same dependencies now, from its own process.
    let output = pforte_command()
        .args(["status"])
        .envs(ctx.cli_env())
        .env("PFORTE__SERVER__PUBLIC_URL", &pforte.base)
        .output()?;
    let text = output_text(&output);
    assert!(output.status.success(), "pforte status: {text}");
    assert!(text.contains(": ok"), "{text}");
    for line in ["identity provider bundid-sim", "payment provider sim-pay (simulator)", "outbox"] {
        let found = text.lines().find(|l| l.starts_with(line));
        assert!(found.is_some_and(|l| l.contains(" up ")), "{line} up in:\n{text}");
    }
    pforte.stop()
}
backend_test!(the_operator_address_reports_every_dependency);

pub async fn pforte_status_names_providers_that_cannot_be_reached(ctx: TestContext) -> TestResult {
    // Nothing listens at this address: every provider of the shipped registry lives below it.
    let nowhere = format!("http://127.0.0.1:{}", free_port()?);
    let output = pforte_command()
        .args(["status", "--json"])
        .envs(ctx.cli_env())
        .env("PFORTE__SERVER__PUBLIC_URL", &nowhere)
        .output()?;
    assert_eq!(output.status.code(), Some(6), "{}", output_text(&output));
    let report: Value = serde_json::from_slice(&output.stdout)?;
    assert_eq!(report["status"], "degraded", "the database answers: {report:#}");
    assert_eq!(report["database"]["status"], "up");
    for list in ["identity_providers", "payment_providers"] {
        for entry in report[list].as_array().into_iter().flatten() {
            assert_eq!(entry["status"], "down", "{entry}");
            let message = entry["last_error"]["message"].as_str().unwrap_or_default();
            assert!(message.contains("connection failed") || message.contains("cannot be fetched"), "{entry}");
            assert!(entry["last_ok_at"].is_null(), "{entry}");
        }
    }

    // The same as lines for people: each one down, with the reason.
    let output =
        pforte_command().args(["status"]).envs(ctx.cli_env()).env("PFORTE__SERVER__PUBLIC_URL", &nowhere).output()?;
    let text = output_text(&output);
    assert_eq!(output.status.code(), Some(6), "{text}");
    let line = text.lines().find(|l| l.starts_with("payment provider sim-pay (simulator)")).unwrap_or_default();
    assert!(line.contains("DOWN") && line.contains("09162000") && line.contains("connection failed"), "{text}");
    Ok(())
}
backend_test!(pforte_status_names_providers_that_cannot_be_reached);

/// The last error outlives the outage: a payment provider cut on the wire is down with the reason,
/// and once it answers again it is up, with the error of the outage still there and a later success.
pub async fn the_last_error_stays_after_the_provider_recovers(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let target: std::net::SocketAddr = app.address.trim_start_matches("http://").parse()?;
    let proxy = TcpProxy::start(target).await?;
    // Every provider of the shipped registry lives below the public URL: behind the proxy.
    let public_url = format!("http://{}", proxy.address());
    let settings = Settings::from_figment(ctx.figment().merge(("server.public_url", public_url)))?;
    let registry = Registry::load(&settings.registry, &settings.server.public_url, settings.dev.simulators)
        .map_err(|problems| anyhow::anyhow!("{problems:?}"))?;
    let health = pforte::app::dependency_health(&settings, registry)?;

    let pay = |report: &pforte::health::Report| {
        report.payment_providers.iter().find(|p| p.id == "sim-pay").cloned().ok_or_else(|| anyhow::anyhow!("sim-pay"))
    };
    let before = health.check().await;
    assert_eq!(pay(&before)?.status, State::Up, "{before:?}");
    // The account simulators name the app's own address as their issuer, not the proxy's: the
    // status says exactly that, as it would for a provider whose issuer changed.
    let idp = before.identity_providers.iter().find(|p| p.id == "bundid-sim");
    let message = idp.and_then(|p| p.seen.last_error.as_ref()).map(|e| e.message.clone()).unwrap_or_default();
    assert!(message.contains("the discovery document names the issuer"), "{idp:?}");
    assert_eq!(before.status, Overall::Degraded);

    proxy.cut();
    let during = health.check().await;
    let down = pay(&during)?;
    assert_eq!(down.status, State::Down);
    let error = down.seen.last_error.clone().ok_or_else(|| anyhow::anyhow!("no last error: {down:?}"))?;
    assert!(error.message.contains("09162000") && error.message.contains("connection failed"), "{error:?}");

    proxy.restore();
    let after = health.check().await;
    let up = pay(&after)?;
    assert_eq!(up.status, State::Up, "{after:?}");
    let kept = up.seen.last_error.clone().ok_or_else(|| anyhow::anyhow!("the last error was forgotten"))?;
    assert_eq!((kept.at, kept.message), (error.at, error.message));
    assert!(up.seen.last_ok_at.is_some_and(|ok| ok >= error.at), "{up:?}");
    app.stop().await
}
backend_test!(the_last_error_stays_after_the_provider_recovers);

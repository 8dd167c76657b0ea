use std::io::{BufRead, BufReader};
use std::process::Stdio;

use serde_json::Value;

use crate::audit::bypass_append_only_guard;
use crate::helpers::{copy_dir, output_text, pforte_command, TestContext, TestResult, MANIFEST_DIR};
use crate::keys::any_pool;

fn run(ctx: &TestContext, args: &[&str]) -> anyhow::Result<std::process::Output> {
    Ok(pforte_command().args(args).envs(ctx.cli_env()).output()?)
}

pub async fn check_accepts_the_shipped_configuration() -> TestResult {
    let output = pforte_command().arg("check").output()?;
    assert!(output.status.success(), "{}", output_text(&output));
    assert!(output_text(&output).contains("valid"));
    Ok(())
}
plain_test!(check_accepts_the_shipped_configuration);

/// A copy of the shipped registry with two faults: a dangling reference and a bad URL.
pub async fn check_names_file_key_and_reason_for_every_registry_problem() -> TestResult {
    let dir = tempfile::tempdir()?;
    copy_dir(&std::path::Path::new(MANIFEST_DIR).join("config/clients"), &dir.path().join("clients"))?;
    let demo = dir.path().join("clients/demo.toml");
    let text = std::fs::read_to_string(&demo)?;
    let broken = text.replacen("\"09162000\"", "\"99999999\"", 1);
    assert_ne!(broken, text, "the demo client lists tenant 09162000");
    std::fs::write(&demo, broken)?;
    std::fs::write(
        dir.path().join("clients/second.toml"),
        text.replace("demo-service", "second-service").replace("{public_url}/demo/callback", "not a url"),
    )?;

    let output = pforte_command().arg("check").env("PFORTE__REGISTRY__CLIENTS", dir.path().join("clients")).output()?;
    let text = output_text(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(text.contains("demo.toml") && text.contains("tenants") && text.contains("99999999"), "{text}");
    assert!(text.contains("second.toml") && text.contains("redirect_uris"), "{text}");
    Ok(())
}
plain_test!(check_names_file_key_and_reason_for_every_registry_problem);

pub async fn serve_refuses_to_start_with_an_invalid_configuration() -> TestResult {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("pforte.toml");
    let shipped = std::fs::read_to_string(format!("{MANIFEST_DIR}/config/default.toml"))?;
    std::fs::write(&file, shipped.replace("[server]", "[server]\nlisten_port = 80"))?;
    let output = pforte_command().args(["--config"]).arg(&file).arg("serve").output()?;
    let text = output_text(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(text.contains("pforte.toml") && text.contains("listen_port"), "{text}");
    assert!(!text.contains("listening"), "nothing started: {text}");
    Ok(())
}
plain_test!(serve_refuses_to_start_with_an_invalid_configuration);

pub async fn serve_refuses_simulators_on_a_public_address() -> TestResult {
    let output = pforte_command().env("PFORTE__SERVER__PUBLIC_URL", "https://pforte.example.de").output()?;
    let text = output_text(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(text.contains("dev.simulators"), "{text}");
    Ok(())
}
plain_test!(serve_refuses_simulators_on_a_public_address);

pub async fn help_explains_each_command() -> TestResult {
    let output = pforte_command().arg("--help").output()?;
    let text = output_text(&output);
    for command in ["serve", "check", "reload", "migrate", "keys", "audit", "notifications"] {
        assert!(text.contains(command), "--help lacks {command}: {text}");
    }
    for args in [
        &["keys", "rotate", "--help"][..],
        &["audit", "verify", "--help"][..],
        &["notifications", "list", "--help"][..],
        &["notifications", "show", "--help"][..],
        &["notifications", "redeliver", "--help"][..],
    ] {
        let output = pforte_command().args(args).output()?;
        assert!(output.status.success());
        assert!(output_text(&output).len() > 80);
    }
    Ok(())
}
plain_test!(help_explains_each_command);

pub async fn migrate_creates_the_schema_and_is_idempotent(ctx: TestContext) -> TestResult {
    for _ in 0..2 {
        let output = run(&ctx, &["migrate"])?;
        assert!(output.status.success(), "{}", output_text(&output));
        assert!(output_text(&output).contains("up to date"));
    }
    let pool = any_pool(&ctx.database_url).await?;
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM signing_keys").fetch_one(&pool).await?;
    assert_eq!(count, 0, "migrate only creates the schema");
    Ok(())
}
backend_test!(migrate_creates_the_schema_and_is_idempotent);

pub async fn keys_rotate_adds_a_key_and_reports_the_retired_one(ctx: TestContext) -> TestResult {
    let first = run(&ctx, &["keys", "rotate"])?;
    assert!(first.status.success(), "{}", output_text(&first));
    let second = run(&ctx, &["keys", "rotate", "--alg", "ES256"])?;
    let text = output_text(&second);
    assert!(second.status.success(), "{text}");
    assert!(text.contains("new active ES256 key") && text.contains("retired"), "{text}");
    let bad = run(&ctx, &["keys", "rotate", "--alg", "HS256"])?;
    assert_eq!(bad.status.code(), Some(2));
    assert!(output_text(&bad).contains("HS256"));
    Ok(())
}
backend_test!(keys_rotate_adds_a_key_and_reports_the_retired_one);

pub async fn audit_verify_passes_then_names_a_tampered_row(ctx: TestContext) -> TestResult {
    for _ in 0..3 {
        let output = run(&ctx, &["keys", "rotate"])?;
        assert!(output.status.success(), "{}", output_text(&output));
    }
    let intact = run(&ctx, &["audit", "verify"])?;
    assert!(intact.status.success(), "{}", output_text(&intact));
    assert!(output_text(&intact).contains("intact: 3 rows"), "{}", output_text(&intact));

    let pool = any_pool(&ctx.database_url).await?;
    bypass_append_only_guard(&ctx, &pool).await?;
    sqlx::query("UPDATE audit_log SET actor = 'someone-else' WHERE seq = 2").execute(&pool).await?;
    let broken = run(&ctx, &["audit", "verify"])?;
    let text = output_text(&broken);
    assert_eq!(broken.status.code(), Some(3), "{text}");
    assert!(text.contains("row 2"), "{text}");
    Ok(())
}
backend_test!(audit_verify_passes_then_names_a_tampered_row);

/// Starts the real binary, waits for it to serve, sends SIGTERM and expects a clean exit.
pub async fn serve_stops_cleanly_on_sigterm(ctx: TestContext) -> TestResult {
    let mut child = pforte_command().envs(ctx.cli_env()).stderr(Stdio::piped()).stdout(Stdio::null()).spawn()?;
    let stderr = child.stderr.take().expect("stderr");
    // The log says when the server listens (and on which port) and when the database is ready.
    let (events, seen) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(entry) = serde_json::from_str::<Value>(&line) {
                if let Some(port) = entry["fields"]["port"].as_u64() {
                    let _ = events.send(Some(port));
                }
                if entry["fields"]["message"] == "database ready" {
                    let _ = events.send(None);
                }
            }
            lines.push(line);
        }
        lines
    });
    let wait = std::time::Duration::from_secs(60);
    let (port, ready) = tokio::task::spawn_blocking(move || {
        let port = seen.recv_timeout(wait).ok().flatten();
        let ready = seen.recv_timeout(wait).is_ok_and(|event| event.is_none());
        (port, ready)
    })
    .await?;
    let port = port.expect("the binary logged its port");
    assert!(ready, "the binary logged that the database is ready");
    let response = reqwest::Client::new().get(format!("http://127.0.0.1:{port}/readyz")).send().await?;
    assert_eq!(response.status(), 200);

    let status = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status()?;
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || child.wait()).await??;
    let lines = reader.join().expect("log reader");
    assert!(exit.success(), "exit {exit:?}: {}", lines.join("\n"));
    assert!(lines.iter().any(|l| l.contains("pforte stopped")), "{}", lines.join("\n"));
    assert!(lines.iter().all(|l| !l.contains(&ctx.master_key)), "the master key never reaches the log");
    Ok(())
}
backend_test!(serve_stops_cleanly_on_sigterm);

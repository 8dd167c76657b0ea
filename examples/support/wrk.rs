//! The token endpoint under load from `wrk` (Debian's package), a load generator in its own process,
//! as issue 13 first measured it. The benchmark's own process then runs pforte and nothing busy, so
//! its CPU time over the run (`/proc/self/stat`) is what pforte used: "the cores pforte gets".

use std::process::Command;
use std::time::Instant;

use base64::Engine;

/// What one `wrk` run measured.
pub(crate) struct WrkRun {
    pub requests_per_s: f64,
    /// CPU seconds this process used per wall second during the run.
    pub cores_used: f64,
}

/// `client_credentials` tokens from `wrk` (`connections` connections, 2 threads, `secs` seconds).
/// `None` when `wrk` is not installed. Fails when any answer was not 200.
pub(crate) fn client_credentials(
    address: &str,
    secret: &str,
    connections: usize,
    secs: u64,
) -> anyhow::Result<Option<WrkRun>> {
    if Command::new("wrk").arg("--version").output().is_err() {
        return Ok(None);
    }
    let dir = tempfile::tempdir()?;
    let script = dir.path().join("token.lua");
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("demo:{secret}"));
    std::fs::write(
        &script,
        format!(
            "wrk.method = \"POST\"\n\
             wrk.body = \"grant_type=client_credentials\"\n\
             wrk.headers[\"Content-Type\"] = \"application/x-www-form-urlencoded\"\n\
             wrk.headers[\"Authorization\"] = \"Basic {basic}\"\n"
        ),
    )?;
    let before = cpu_seconds()?;
    let started = Instant::now();
    let output = Command::new("wrk")
        .args(["-t2", &format!("-c{connections}"), &format!("-d{secs}s"), "-s"])
        .arg(&script)
        .arg(format!("{address}/token"))
        .output()?;
    let wall = started.elapsed().as_secs_f64();
    let used = cpu_seconds()? - before;
    let text = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(output.status.success(), "wrk failed: {}", String::from_utf8_lossy(&output.stderr));
    anyhow::ensure!(!text.contains("Non-2xx"), "wrk saw answers other than 200:\n{text}");
    let requests_per_s = text
        .lines()
        .find_map(|line| line.strip_prefix("Requests/sec:"))
        .and_then(|rate| rate.trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no Requests/sec in wrk's output:\n{text}"))?;
    Ok(Some(WrkRun { requests_per_s, cores_used: used / wall }))
}

/// This process's user and system CPU time so far, in seconds (clock ticks of 1/100 s, Linux's
/// USER_HZ on x86_64 and arm64).
fn cpu_seconds() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // The command name (field 2) is in parentheses and may hold spaces; count from after it.
    let rest = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of the file (utime, stime) are the 12th and 13th after the name.
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(user), Some(system)) => Ok((user + system) / 100.0),
        _ => anyhow::bail!("cannot read /proc/self/stat"),
    }
}

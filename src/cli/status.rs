//! `pforte status`: asks every dependency now, as the running service does every
//! `status.check_interval_secs` (`health`), and prints one line per dependency, or the JSON report
//! `GET /status` serves with `--json`. Exit 0 when everything is up, [`super::EXIT_NOT_UP`] otherwise.

use std::fmt::Write as _;

use crate::health::{LastError, Overall, Report, Seen, State};

/// The report as aligned lines for people: dependency, state, latency, details, last error.
pub(super) fn render(report: &Report) -> String {
    let mut rows: Vec<[String; 4]> = Vec::new();
    let database = &report.database;
    rows.push([
        format!("database ({})", database.backend),
        state(database.status),
        millis(database.latency_ms),
        last_error(&database.seen),
    ]);
    let outbox = &report.outbox;
    let waiting = match (outbox.undelivered, outbox.oldest_undelivered_age_secs, outbox.given_up) {
        (Some(undelivered), oldest, Some(given_up)) => {
            let oldest = oldest.map(|age| format!(", oldest {age} s")).unwrap_or_default();
            format!("{undelivered} undelivered{oldest}, {given_up} given up")
        }
        _ => "not read: the database did not answer".to_owned(),
    };
    rows.push(["outbox".to_owned(), state(outbox.status), String::new(), waiting]);
    for idp in &report.identity_providers {
        let keys = match (idp.keys, idp.keys_age_secs) {
            (Some(keys), Some(age)) => format!("{keys} keys, fetched {age} s ago"),
            (None, Some(age)) => format!("keys in use fetched {age} s ago"),
            _ => String::new(),
        };
        let details = join(&keys, &last_error(&idp.seen));
        rows.push([format!("identity provider {}", idp.id), state(idp.status), millis(idp.latency_ms), details]);
    }
    for provider in &report.payment_providers {
        let failing: Vec<String> = provider
            .checks
            .iter()
            .filter_map(|c| c.error.as_ref().map(|e| format!("{} (as {}): {e}", c.tenant, c.originator)))
            .collect();
        let asked = match provider.checks.len() {
            0 => "no authority routes payments here".to_owned(),
            n => format!("{n} authorities asked"),
        };
        let details = match failing.is_empty() {
            true => join(&asked, &last_error(&provider.seen)),
            false => join(&asked, &failing.join("; ")),
        };
        rows.push([
            format!("payment provider {} ({})", provider.id, provider.kind),
            state(provider.status),
            millis(provider.latency_ms),
            details,
        ]);
    }
    let width = rows.iter().map(|r| r[0].len()).max().unwrap_or(0);
    let mut out =
        format!("pforte status at {}: {}\n", report.checked_at.format("%Y-%m-%d %H:%M:%S UTC"), overall(report.status));
    for [name, state, latency, details] in rows {
        let _ = writeln!(out, "{name:<width$}  {state:<11}  {latency:>8}  {details}");
    }
    out
}

fn overall(status: Overall) -> &'static str {
    match status {
        Overall::Ok => "ok",
        Overall::Degraded => "degraded",
        Overall::Down => "down (the database does not answer)",
    }
}

fn state(state: State) -> String {
    match state {
        State::Up => "up",
        State::Degraded => "degraded",
        State::Down => "DOWN",
        State::NotChecked => "not checked",
    }
    .to_owned()
}

fn millis(latency: Option<u64>) -> String {
    latency.map(|ms| format!("{ms} ms")).unwrap_or_default()
}

fn last_error(seen: &Seen) -> String {
    match &seen.last_error {
        Some(LastError { at, message }) => format!("last error {}: {message}", at.format("%Y-%m-%d %H:%M:%S UTC")),
        None => String::new(),
    }
}

fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_owned(),
        (_, true) => a.to_owned(),
        _ => format!("{a}; {b}"),
    }
}

//! Load generation for the benchmarks under `examples/`: `n` calls, `concurrency` in flight, each
//! timed; and a sampler of PostgreSQL's wait events while a run goes on.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use sqlx::Connection;

use super::report::Report;

/// Runs `call(0..n)`, at most `concurrency` at a time, and times each call and the whole run.
pub(crate) async fn run<F, Fut>(n: usize, concurrency: usize, call: F) -> Report
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = ()>,
{
    let started = Instant::now();
    let latencies: Vec<Duration> = stream::iter(0..n)
        .map(|i| {
            let fut = call(i);
            async move {
                let t = Instant::now();
                fut.await;
                t.elapsed()
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    Report { latencies, elapsed: started.elapsed() }
}

/// What the database's busy sessions were waiting for, counted over samples of `pg_stat_activity`
/// (one sample every few milliseconds, each counting every active session of the database).
#[derive(Default)]
pub(crate) struct Waits {
    pub samples: usize,
    /// Active session observations.
    pub active: usize,
    /// `wait_event_type/wait_event` → observations.
    pub events: BTreeMap<String, usize>,
}

impl Waits {
    /// Observations of a session waiting for a heavyweight lock (`Lock/*`).
    pub(crate) fn lock(&self) -> usize {
        self.events.iter().filter(|(k, _)| k.starts_with("Lock/")).map(|(_, n)| n).sum()
    }

    /// Of those, waits for an advisory lock (`Lock/advisory`).
    pub(crate) fn advisory(&self) -> usize {
        self.events.get("Lock/advisory").copied().unwrap_or(0)
    }

    pub(crate) fn summary(&self) -> String {
        let mut top: Vec<_> = self.events.iter().collect();
        top.sort_by(|a, b| b.1.cmp(a.1));
        let top: Vec<String> = top.iter().take(4).map(|(k, n)| format!("{k} {n}")).collect();
        // Which locks: `Lock/extend` (a table growing) is the database's own, a `Lock/transactionid`
        // or `Lock/advisory` would be one request waiting for another's commit.
        let locks: Vec<String> =
            self.events.iter().filter(|(k, _)| k.starts_with("Lock/")).map(|(k, n)| format!("{k} {n}")).collect();
        format!(
            "Lock waits {} [{}] (advisory {}) in {} active-session observations over {} samples; most seen: {}",
            self.lock(),
            locks.join(", "),
            self.advisory(),
            self.active,
            self.samples,
            if top.is_empty() { "none".to_owned() } else { top.join(", ") }
        )
    }
}

/// Samples `pg_stat_activity` for the database `database_url` names until [`WaitSampler::stop`].
pub(crate) struct WaitSampler {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<anyhow::Result<Waits>>,
}

impl WaitSampler {
    pub(crate) async fn start(database_url: &str) -> anyhow::Result<Self> {
        let mut conn = sqlx::PgConnection::connect(database_url).await?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let mut waits = Waits::default();
            while !stopped.load(Ordering::Relaxed) {
                let rows: Vec<(Option<String>, Option<String>)> = sqlx::query_as(
                    "SELECT wait_event_type, wait_event FROM pg_stat_activity \
                     WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'active'",
                )
                .fetch_all(&mut conn)
                .await?;
                waits.samples += 1;
                waits.active += rows.len();
                for (kind, event) in rows {
                    if let Some(kind) = kind {
                        let key = format!("{kind}/{}", event.unwrap_or_default());
                        *waits.events.entry(key).or_default() += 1;
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Ok(waits)
        });
        Ok(WaitSampler { stop, task })
    }

    pub(crate) async fn stop(self) -> anyhow::Result<Waits> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await?
    }
}

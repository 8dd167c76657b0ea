//! The state of pforte's dependencies, for the people who run it (`pforte status`, `GET /status` on
//! the operator's address): per upstream identity provider whether discovery and the key set can be
//! fetched and how old the keys in use are, per payment provider its status call for each authority
//! routed to it, the notification outbox, and the database, each with its latency and the last error
//! seen. `/readyz` stays about pforte itself: a provider that is down makes pforte degraded, not
//! unready.
//!
//! The running service checks every `status.check_interval_secs` (`app` runs [`Health::watch`]) and
//! serves the last report, so a scrape of `/status` never fans out to every provider; `pforte status`
//! checks once, now. Nothing in a report is personal data or a secret: ids from the registry,
//! latencies, counts and the dependency's own error text.

mod probes;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;
use crate::identity::upstream::Upstreams;
use crate::payment::provider::Providers;
use crate::registry::{IdentityProvider, PaymentProvider, SharedRegistry};
use crate::store::Database;

pub use probes::PaymentCheck;

/// How long the database may take to answer the status's own questions.
const DATABASE_LIMIT: Duration = Duration::from_secs(2);
/// An undelivered notification older than this makes the outbox a backlog.
pub const OUTBOX_BACKLOG_AFTER: Duration = Duration::from_secs(600);

/// `up`, `down`, or a state between.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Up,
    /// Some of a payment provider's authorities are served, some are not.
    Degraded,
    Down,
    /// Nothing to ask: a kind without a status call, or a provider no authority routes to.
    NotChecked,
}

/// The whole report; `status` is `ok` when every dependency is up (or not checked), `degraded` when
/// some provider is not, `down` when the database is away.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub status: Overall,
    pub checked_at: DateTime<Utc>,
    pub database: DatabaseHealth,
    pub outbox: OutboxHealth,
    pub identity_providers: Vec<IdentityProviderHealth>,
    pub payment_providers: Vec<PaymentProviderHealth>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Overall {
    Ok,
    Degraded,
    Down,
}

#[derive(Debug, Clone, Serialize)]
pub struct DatabaseHealth {
    pub status: State,
    pub backend: &'static str,
    pub latency_ms: Option<u64>,
    #[serde(flatten)]
    pub seen: Seen,
}

#[derive(Debug, Clone, Serialize)]
pub struct OutboxHealth {
    /// `up`: nothing waits longer than [`OUTBOX_BACKLOG_AFTER`]; `degraded`: something does, or
    /// messages were given up; `not_checked`: the database did not answer.
    pub status: State,
    pub undelivered: Option<i64>,
    pub oldest_undelivered_age_secs: Option<i64>,
    pub given_up: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct IdentityProviderHealth {
    pub id: String,
    pub status: State,
    pub latency_ms: Option<u64>,
    /// How many keys the provider's key set holds now.
    pub keys: Option<usize>,
    /// How long ago the keys pforte checks ID tokens with were fetched.
    pub keys_age_secs: Option<u64>,
    #[serde(flatten)]
    pub seen: Seen,
}

#[derive(Debug, Clone, Serialize)]
pub struct PaymentProviderHealth {
    pub id: String,
    pub kind: &'static str,
    pub status: State,
    /// The slowest of this round's status calls.
    pub latency_ms: Option<u64>,
    /// One status call per authority routed to this provider.
    pub checks: Vec<PaymentCheck>,
    #[serde(flatten)]
    pub seen: Seen,
}

/// When a dependency last answered well, and its last error (kept after it recovers: that is when
/// an operator asks).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Seen {
    pub last_ok_at: Option<DateTime<Utc>>,
    pub last_error: Option<LastError>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LastError {
    pub at: DateTime<Utc>,
    pub message: String,
}

/// Checks the dependencies and remembers what it saw; clones share the memory.
#[derive(Clone)]
pub struct Health {
    registry: SharedRegistry,
    upstreams: Arc<Upstreams>,
    providers: Providers,
    db: Database,
    clock: SharedClock,
    seen: Arc<Mutex<HashMap<String, Seen>>>,
    latest: Arc<Mutex<Option<Report>>>,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health").finish_non_exhaustive()
    }
}

impl Health {
    pub fn new(
        registry: SharedRegistry,
        upstreams: Arc<Upstreams>,
        providers: Providers,
        db: Database,
        clock: SharedClock,
    ) -> Health {
        Health { registry, upstreams, providers, db, clock, seen: Arc::default(), latest: Arc::default() }
    }

    /// Asks every dependency now (concurrently, each within its own time limit) and keeps the
    /// report as the latest.
    pub async fn check(&self) -> Report {
        let (database, outbox, identity_providers, payment_providers) = tokio::join!(
            self.check_database(),
            probes::outbox(&self.db, self.clock.as_ref(), DATABASE_LIMIT),
            self.check_identity_providers(),
            self.check_payment_providers(),
        );
        let status = overall(&database, &outbox, &identity_providers, &payment_providers);
        let report =
            Report { status, checked_at: self.clock.now(), database, outbox, identity_providers, payment_providers };
        *lock(&self.latest) = Some(report.clone());
        report
    }

    /// The report of the last check, if there was one.
    pub fn latest(&self) -> Option<Report> {
        lock(&self.latest).clone()
    }

    /// Checks every `interval` until shutdown, logging each change of a dependency's state once.
    pub async fn watch(&self, interval: Duration, shutdown: CancellationToken) {
        let mut previous: HashMap<String, State> = HashMap::new();
        loop {
            let report = self.check().await;
            for (name, state) in states(&report) {
                let was = previous.insert(name.clone(), state);
                if was.is_some_and(|was| was != state) || (was.is_none() && state == State::Down) {
                    match state {
                        State::Down | State::Degraded => tracing::warn!(dependency = name, ?state, "dependency not up"),
                        _ => tracing::info!(dependency = name, ?state, "dependency state changed"),
                    }
                }
            }
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = shutdown.cancelled() => return,
            }
        }
    }

    async fn check_database(&self) -> DatabaseHealth {
        let (outcome, latency_ms) = probes::timed(self.db.probe(DATABASE_LIMIT)).await;
        let outcome = outcome.map_err(|e| e.to_string());
        let status = if outcome.is_ok() { State::Up } else { State::Down };
        let seen = self.remember("database", outcome.err());
        DatabaseHealth { status, backend: self.db.backend_name(), latency_ms: Some(latency_ms), seen }
    }

    async fn check_identity_providers(&self) -> Vec<IdentityProviderHealth> {
        // Collected first: a lazy iterator of futures held across the await is not `Send` for every
        // lifetime (rust-lang/rust#102211), which tokio::spawn and axum need.
        let registry = self.registry.current();
        let checks: Vec<_> = registry.identity_providers().map(|idp| self.check_identity_provider(idp)).collect();
        futures_util::future::join_all(checks).await
    }

    async fn check_identity_provider(&self, idp: &IdentityProvider) -> IdentityProviderHealth {
        let (outcome, latency_ms) = probes::timed(self.upstreams.probe(idp)).await;
        let keys = outcome.as_ref().ok().copied();
        let status = if keys.is_some() { State::Up } else { State::Down };
        let seen = self.remember(&format!("identity_provider:{}", idp.id), outcome.err().map(|e| e.to_string()));
        IdentityProviderHealth {
            id: idp.id.to_string(),
            status,
            latency_ms: Some(latency_ms),
            keys,
            keys_age_secs: self.upstreams.keys_age(idp).map(|age| age.as_secs()),
            seen,
        }
    }

    async fn check_payment_providers(&self) -> Vec<PaymentProviderHealth> {
        // The registry in use now; a reload meanwhile shows in the next round.
        let registry = self.registry.current();
        let routes = probes::routes(&registry);
        let none = Vec::new();
        let checks: Vec<_> = registry
            .payment_providers()
            .map(|provider| self.check_payment_provider(provider, routes.get(provider.id.as_str()).unwrap_or(&none)))
            .collect();
        futures_util::future::join_all(checks).await
    }

    async fn check_payment_provider(
        &self,
        provider: &PaymentProvider,
        routes: &[probes::Route],
    ) -> PaymentProviderHealth {
        let name = format!("payment_provider:{}", provider.id);
        let checks = probes::payment_provider(&self.providers, provider.id.as_str(), routes).await;
        let status = probes::provider_state(&checks);
        let error = checks.iter().find_map(|c| c.error.as_ref().map(|e| format!("{}: {e}", c.tenant)));
        let seen = match status {
            State::NotChecked => self.seen_so_far(&name),
            _ => self.remember(&name, error),
        };
        PaymentProviderHealth {
            id: provider.id.to_string(),
            kind: provider.kind.as_str(),
            status,
            latency_ms: checks.iter().filter_map(|c| c.latency_ms).max(),
            checks,
            seen,
        }
    }

    /// Records this round's outcome of dependency `name` and answers what is known about it now.
    fn remember(&self, name: &str, error: Option<String>) -> Seen {
        let now = self.clock.now();
        let mut seen = lock(&self.seen);
        let entry = seen.entry(name.to_owned()).or_default();
        match error {
            None => entry.last_ok_at = Some(now),
            Some(message) => entry.last_error = Some(LastError { at: now, message }),
        }
        entry.clone()
    }

    fn seen_so_far(&self, name: &str) -> Seen {
        lock(&self.seen).get(name).cloned().unwrap_or_default()
    }
}

fn overall(
    database: &DatabaseHealth,
    outbox: &OutboxHealth,
    identity_providers: &[IdentityProviderHealth],
    payment_providers: &[PaymentProviderHealth],
) -> Overall {
    if database.status == State::Down {
        return Overall::Down;
    }
    let not_up = |state: State| matches!(state, State::Down | State::Degraded);
    let any_not_up = not_up(outbox.status)
        || identity_providers.iter().any(|p| not_up(p.status))
        || payment_providers.iter().any(|p| not_up(p.status));
    if any_not_up {
        Overall::Degraded
    } else {
        Overall::Ok
    }
}

/// Each dependency's name and state, for logging the changes.
fn states(report: &Report) -> Vec<(String, State)> {
    let mut states = vec![("database".to_owned(), report.database.status), ("outbox".to_owned(), report.outbox.status)];
    states.extend(report.identity_providers.iter().map(|p| (format!("identity_provider:{}", p.id), p.status)));
    states.extend(report.payment_providers.iter().map(|p| (format!("payment_provider:{}", p.id), p.status)));
    states
}

/// The maps hold plain values and are never left half-written, so a poisoned lock is used as is.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

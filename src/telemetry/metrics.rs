//! Prometheus metrics: every metric's name, labels and help text, and the text served at `/metrics`
//! on the operator's address. Call sites record through the small functions here, so no name is
//! spelled twice and no label can take an unbounded value: labels are route templates, methods,
//! status classes, registry ids (clients, providers), levels and fixed outcome words; never a
//! transaction id, a path as sent, or anything personal.
//!
//! The `metrics` recorder is one per process ([`install`] sets it up once; later calls hand out the
//! same handle). Until it is installed, recording costs next to nothing and goes nowhere, which is
//! what a server without `server.metrics_listen` and every command line run want. Figures that
//! belong to one instance's database (outbox depth, backlogs, pool use) are not kept in the
//! recorder: they are read when scraped ([`Scrape`]) and rendered beside it, so a value never
//! outlives the database answer it came from.

use std::fmt::Write as _;
use std::future::Future;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use metrics::{counter, describe_counter, describe_histogram, histogram, Counter, Histogram, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Histogram buckets in seconds: from a fast local call to a provider at its timeout.
const SECONDS_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

const HTTP_REQUESTS: &str = "pforte_http_requests_total";
const HTTP_DURATION: &str = "pforte_http_request_duration_seconds";
const LOGINS_STARTED: &str = "pforte_logins_started_total";
const LOGINS_ENDED: &str = "pforte_logins_ended_total";
const UPSTREAM_DURATION: &str = "pforte_upstream_request_duration_seconds";
const UPSTREAM_ERRORS: &str = "pforte_upstream_errors_total";
const TOKENS_ISSUED: &str = "pforte_tokens_issued_total";
const PAYMENTS_CREATED: &str = "pforte_payments_created_total";
const PAYMENT_STATUS_CHANGES: &str = "pforte_payment_status_changes_total";
const PROVIDER_DURATION: &str = "pforte_provider_request_duration_seconds";
const PROVIDER_ERRORS: &str = "pforte_provider_errors_total";
const REFUNDS: &str = "pforte_refunds_total";
const NOTIFICATION_ATTEMPTS: &str = "pforte_notification_attempts_total";
const AUDIT_CHAIN_DURATION: &str = "pforte_audit_chain_batch_duration_seconds";
const AUDIT_CHAINED: &str = "pforte_audit_events_chained_total";
const REGISTRY_RELOADS: &str = "pforte_registry_reloads_total";
const TRANSFER_RETENTION: &str = "pforte_transfer_retention_total";

/// Where a label value is not known or matched nothing, e.g. a request no route matched.
pub const UNMATCHED: &str = "unmatched";

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process's recorder (once; later calls return the same handle) and describes every
/// metric. `None` when a recorder could not be installed: metrics are then off, nothing else is.
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let installed = PrometheusBuilder::new()
                .set_buckets(SECONDS_BUCKETS)
                .and_then(PrometheusBuilder::install_recorder)
                .map_err(|e| tracing::warn!(error = %e, "metrics recorder not installed; /metrics is off"))
                .ok();
            if installed.is_some() {
                describe();
            }
            installed
        })
        .clone()
}

/// The installed recorder's handle, if [`install`] ran.
pub fn handle() -> Option<PrometheusHandle> {
    HANDLE.get().cloned().flatten()
}

fn describe() {
    describe_counter!(HTTP_REQUESTS, "HTTP requests answered, by route template, method and status class.");
    describe_histogram!(HTTP_DURATION, Unit::Seconds, "Time to answer an HTTP request.");
    describe_counter!(
        LOGINS_STARTED,
        "Logins sent to an upstream account provider, by the level the service asked for."
    );
    describe_counter!(LOGINS_ENDED, "Logins that came back: finished (code issued), refused, or cancelled upstream.");
    describe_histogram!(UPSTREAM_DURATION, Unit::Seconds, "Calls to upstream account providers, by step.");
    describe_counter!(UPSTREAM_ERRORS, "Upstream account provider calls that failed or timed out, by step.");
    describe_counter!(TOKENS_ISSUED, "Token responses issued, by grant type and client.");
    describe_counter!(PAYMENTS_CREATED, "Payments created at a provider and recorded.");
    describe_counter!(PAYMENT_STATUS_CHANGES, "Payment status changes recorded, by provider and new status.");
    describe_histogram!(PROVIDER_DURATION, Unit::Seconds, "Calls to payment providers, by operation.");
    describe_counter!(PROVIDER_ERRORS, "Payment provider calls that failed, by operation and kind of failure.");
    describe_counter!(REFUNDS, "Refunds requested, by provider and outcome.");
    describe_counter!(NOTIFICATION_ATTEMPTS, "Notification delivery attempts, by outcome.");
    describe_histogram!(AUDIT_CHAIN_DURATION, Unit::Seconds, "Time to chain one batch of audit events.");
    describe_counter!(AUDIT_CHAINED, "Audit events moved into the hash chain.");
    describe_counter!(REGISTRY_RELOADS, "Registry reloads: applied, or refused with the old registry kept.");
    describe_counter!(TRANSFER_RETENTION, "Datentransfer deadlines and retention carried out, by action.");
}

/// A registry reload (SIGHUP, `pforte reload`, `POST /reload`): `applied`, or refused because the
/// files had problems (the old registry stays).
pub fn registry_reload(applied: bool) {
    let outcome = if applied { "applied" } else { "refused" };
    counter!(REGISTRY_RELOADS, "outcome" => outcome).increment(1);
}

/// One answered HTTP request. `route` is the matched template (`None`: no route matched).
pub fn http_request(route: Option<&str>, method: &str, status: u16, took: Duration) {
    let route = route.unwrap_or(UNMATCHED).to_owned();
    let method = method_label(method);
    let class = status_class(status);
    counter!(HTTP_REQUESTS, "route" => route.clone(), "method" => method, "status" => class).increment(1);
    histogram!(HTTP_DURATION, "route" => route, "method" => method, "status" => class).record(took);
}

/// A method as a label: the standard ones by name, anything a client made up as "other".
fn method_label(method: &str) -> &'static str {
    const KNOWN: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
    KNOWN.iter().find(|known| **known == method).copied().unwrap_or("other")
}

fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// How a login that came back from its provider ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginEnd {
    /// A code was issued to the service.
    Finished,
    /// pforte refused it (invalid answer, level too low, provider away, mix-up).
    Refused,
    /// The person cancelled, or the provider refused (`error=` in its answer).
    Cancelled,
}

impl LoginEnd {
    fn as_str(self) -> &'static str {
        match self {
            LoginEnd::Finished => "finished",
            LoginEnd::Refused => "refused",
            LoginEnd::Cancelled => "cancelled",
        }
    }
}

/// A login sent to `provider` for a service that asked for `level`.
pub fn login_started(provider: &str, level: &str) {
    counter!(LOGINS_STARTED, "provider" => provider.to_owned(), "level" => level.to_owned()).increment(1);
}

/// A login of `provider` at the asked `level` ended as `end`.
pub fn login_ended(provider: &str, level: &str, end: LoginEnd) {
    let labels = [("provider", provider.to_owned()), ("level", level.to_owned()), ("outcome", end.as_str().to_owned())];
    counter!(LOGINS_ENDED, &labels).increment(1);
}

/// The calls pforte makes to an upstream account provider during a login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamStep {
    Discovery,
    Jwks,
    Token,
    Userinfo,
}

impl UpstreamStep {
    fn as_str(self) -> &'static str {
        match self {
            UpstreamStep::Discovery => "discovery",
            UpstreamStep::Jwks => "jwks",
            UpstreamStep::Token => "token",
            UpstreamStep::Userinfo => "userinfo",
        }
    }
}

/// Runs one upstream call, recording its duration and, when it fails or is abandoned (a login's
/// overall timeout drops it), an error.
pub async fn measure_upstream<T, E>(
    provider: &str,
    step: UpstreamStep,
    call: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let labels = [("provider", provider.to_owned()), ("step", step.as_str().to_owned())];
    let timer = CallTimer::start(histogram!(UPSTREAM_DURATION, &labels), counter!(UPSTREAM_ERRORS, &labels));
    let result = call.await;
    timer.finish(result.is_err());
    result
}

/// Runs one payment provider call (`operation`: create, status, cancel, refund), recording its
/// duration and, when `failure` names one, an error of that kind. An abandoned call is an error of
/// kind "abandoned".
pub async fn measure_provider<T, E>(
    provider: &str,
    operation: &'static str,
    failure: impl Fn(&E) -> Option<&'static str>,
    call: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let labels = [("provider", provider.to_owned()), ("operation", operation.to_owned())];
    let mut abandoned = labels.to_vec();
    abandoned.push(("kind", "abandoned".to_owned()));
    let timer = CallTimer::start(histogram!(PROVIDER_DURATION, &labels), counter!(PROVIDER_ERRORS, &abandoned));
    let result = call.await;
    timer.finish(false);
    if let Some(kind) = result.as_ref().err().and_then(&failure) {
        let mut labels = labels.to_vec();
        labels.push(("kind", kind.to_owned()));
        counter!(PROVIDER_ERRORS, &labels).increment(1);
    }
    result
}

/// Times a call; dropped before [`CallTimer::finish`] (the caller gave up on the future), it still
/// records the time spent and counts an error.
struct CallTimer {
    started: Instant,
    duration: Histogram,
    errors: Counter,
    finished: bool,
}

impl CallTimer {
    fn start(duration: Histogram, errors: Counter) -> CallTimer {
        CallTimer { started: Instant::now(), duration, errors, finished: false }
    }

    fn finish(mut self, failed: bool) {
        self.finished = true;
        self.duration.record(self.started.elapsed());
        if failed {
            self.errors.increment(1);
        }
    }
}

impl Drop for CallTimer {
    fn drop(&mut self) {
        if !self.finished {
            self.duration.record(self.started.elapsed());
            self.errors.increment(1);
        }
    }
}

/// A token response issued under `grant` (`authorization_code`, `refresh_token`,
/// `client_credentials`) to `client`.
pub fn token_issued(grant: &'static str, client: &str) {
    counter!(TOKENS_ISSUED, "grant" => grant, "client" => client.to_owned()).increment(1);
}

/// A payment `provider` created, recorded by pforte.
pub fn payment_created(provider: &str) {
    counter!(PAYMENTS_CREATED, "provider" => provider.to_owned()).increment(1);
}

/// A payment of `provider` moved to `status` (its XBezahldienste name).
pub fn payment_status_changed(provider: &str, status: &'static str) {
    counter!(PAYMENT_STATUS_CHANGES, "provider" => provider.to_owned(), "status" => status).increment(1);
}

/// A refund requested at `provider` ended as `outcome` (a fixed word, e.g. its status).
pub fn refund(provider: &str, outcome: &'static str) {
    counter!(REFUNDS, "provider" => provider.to_owned(), "outcome" => outcome).increment(1);
}

/// One notification delivery attempt: `delivered`, `retry` or `gave_up`.
pub fn notification_attempt(outcome: &'static str) {
    counter!(NOTIFICATION_ATTEMPTS, "outcome" => outcome).increment(1);
}

/// `count` Datentransfer submissions (or uploads) the retention worker handled with `action`
/// (`reminded`, `rejected`, `content_deleted`, `incomplete_deleted`, `event_log_deleted`,
/// `orphan_upload_deleted`).
pub fn transfer_retention(action: &'static str, count: u64) {
    if count > 0 {
        counter!(TRANSFER_RETENTION, "action" => action).increment(count);
    }
}

/// One batch of `events` audit events chained in `took`.
pub fn audit_chain_batch(events: usize, took: Duration) {
    histogram!(AUDIT_CHAIN_DURATION).record(took);
    counter!(AUDIT_CHAINED).increment(u64::try_from(events).unwrap_or(u64::MAX));
}

/// What one instance reads when it is scraped: its database's backlogs and its connection pools.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scrape {
    /// `None` when the database did not answer in time: `pforte_database_up 0`, no backlog series.
    pub backlog: Option<Backlog>,
    pub pools: Vec<Pool>,
    /// Write transactions begun, and the time spent waiting to begin them (the writer connection,
    /// SQLite's write lock).
    pub write_transactions: u64,
    pub write_wait_seconds: f64,
    /// Transactions SQLite's group commit committed: write transactions / this = writes per sync.
    pub group_commits: u64,
}

/// Work waiting in the database, as ages in seconds (0 when nothing waits).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Backlog {
    pub outbox_depth: i64,
    pub outbox_oldest_age_seconds: f64,
    pub status_check_lag_seconds: f64,
    /// Payments in INITIAL, and those of them past their expiry: the status worker fails those, so
    /// any that stay are stuck.
    pub open_payments: i64,
    pub open_payments_expired: i64,
    pub audit_pending: i64,
    pub audit_oldest_pending_age_seconds: f64,
}

/// One connection pool's use.
#[derive(Debug, Clone, PartialEq)]
pub struct Pool {
    /// `read` or `write`.
    pub name: &'static str,
    pub in_use: u64,
    pub idle: u64,
    pub max: u64,
}

/// The text for `/metrics`: what the recorder holds, then this instance's scraped figures and the
/// build information.
pub fn render(handle: &PrometheusHandle, scrape: &Scrape) -> String {
    let mut text = handle.render();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&render_scrape(scrape));
    text
}

/// The scraped figures and the build information in the Prometheus text format.
pub fn render_scrape(scrape: &Scrape) -> String {
    let mut out = String::new();
    let revision = option_env!("PFORTE_GIT_REVISION").unwrap_or("unknown");
    family(&mut out, "pforte_build_info", "gauge", "The running build: version and git revision (always 1).");
    sample(&mut out, "pforte_build_info", &[("version", env!("CARGO_PKG_VERSION")), ("revision", revision)], 1.0);
    family(&mut out, "pforte_database_up", "gauge", "1 when the database answered this scrape in time, else 0.");
    sample(&mut out, "pforte_database_up", &[], if scrape.backlog.is_some() { 1.0 } else { 0.0 });
    if let Some(backlog) = &scrape.backlog {
        let gauges: [(&str, &str, f64); 7] = [
            (
                "pforte_notification_outbox_depth",
                "Notifications neither delivered nor given up.",
                backlog.outbox_depth as f64,
            ),
            (
                "pforte_notification_outbox_oldest_age_seconds",
                "Age of the oldest notification neither delivered nor given up (0: none).",
                backlog.outbox_oldest_age_seconds,
            ),
            (
                "pforte_payment_status_check_lag_seconds",
                "How long the most overdue status check of an open payment has been due (0: none due).",
                backlog.status_check_lag_seconds,
            ),
            ("pforte_payments_open", "Payments in INITIAL.", backlog.open_payments as f64),
            (
                "pforte_payments_open_expired",
                "Payments still in INITIAL after their expiry (the status worker fails them).",
                backlog.open_payments_expired as f64,
            ),
            ("pforte_audit_pending_events", "Audit events recorded but not chained yet.", backlog.audit_pending as f64),
            (
                "pforte_audit_oldest_pending_age_seconds",
                "Age of the oldest audit event not chained yet (0: none).",
                backlog.audit_oldest_pending_age_seconds,
            ),
        ];
        for (name, help, value) in gauges {
            family(&mut out, name, "gauge", help);
            sample(&mut out, name, &[], value);
        }
    }
    family(&mut out, "pforte_database_connections", "gauge", "Database connections by pool and state.");
    for pool in &scrape.pools {
        sample(
            &mut out,
            "pforte_database_connections",
            &[("pool", pool.name), ("state", "in_use")],
            pool.in_use as f64,
        );
        sample(&mut out, "pforte_database_connections", &[("pool", pool.name), ("state", "idle")], pool.idle as f64);
    }
    family(&mut out, "pforte_database_connections_max", "gauge", "The most connections a pool opens.");
    for pool in &scrape.pools {
        sample(&mut out, "pforte_database_connections_max", &[("pool", pool.name)], pool.max as f64);
    }
    let (count, waited) = ("pforte_database_write_transactions_total", "pforte_database_write_wait_seconds_total");
    family(&mut out, count, "counter", "Write transactions begun since the start.");
    sample(&mut out, count, &[], scrape.write_transactions as f64);
    family(&mut out, waited, "counter", "Time spent waiting to begin write transactions since the start.");
    sample(&mut out, waited, &[], scrape.write_wait_seconds);
    let commits = "pforte_database_group_commits_total";
    family(
        &mut out,
        commits,
        "counter",
        "Transactions SQLite's group commit committed, each holding one or more writes.",
    );
    sample(&mut out, commits, &[], scrape.group_commits as f64);
    out
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: f64) {
    out.push_str(name);
    if !labels.is_empty() {
        let rendered: Vec<String> =
            labels.iter().map(|(key, value)| format!("{key}=\"{}\"", escape_label(value))).collect();
        let _ = write!(out, "{{{}}}", rendered.join(","));
    }
    let _ = writeln!(out, " {value}");
}

/// A label value as the text format wants it: backslash, quote and newline escaped.
fn escape_label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_and_statuses_become_bounded_labels() {
        assert_eq!(method_label("GET"), "GET");
        assert_eq!(method_label("BREW"), "other");
        assert_eq!(status_class(204), "2xx");
        assert_eq!(status_class(429), "4xx");
        assert_eq!(status_class(503), "5xx");
        assert_eq!(status_class(999), "5xx");
    }

    #[test]
    fn a_scrape_without_the_database_says_so_and_leaves_its_backlog_out() {
        let pools = vec![Pool { name: "write", in_use: 1, idle: 0, max: 1 }];
        let text = render_scrape(&Scrape {
            backlog: None,
            pools,
            write_transactions: 3,
            write_wait_seconds: 0.5,
            group_commits: 2,
        });
        assert!(text.contains("\npforte_database_up 0\n"), "{text}");
        assert!(!text.contains("pforte_notification_outbox_depth"), "{text}");
        assert!(text.contains("pforte_database_connections{pool=\"write\",state=\"in_use\"} 1\n"), "{text}");
        assert!(text.contains("pforte_database_write_wait_seconds_total 0.5\n"), "{text}");
        assert!(text.contains("# TYPE pforte_database_write_transactions_total counter\n"), "{text}");
        assert!(text.contains("pforte_database_group_commits_total 2\n"), "{text}");
        assert!(text.contains("pforte_build_info{version=\""), "{text}");
    }

    #[test]
    fn a_scrape_with_the_database_renders_each_backlog_figure() {
        let backlog = Backlog {
            outbox_depth: 4,
            outbox_oldest_age_seconds: 12.5,
            status_check_lag_seconds: 3.0,
            open_payments: 5,
            open_payments_expired: 1,
            audit_pending: 2,
            audit_oldest_pending_age_seconds: 0.25,
        };
        let text = render_scrape(&Scrape { backlog: Some(backlog), ..Scrape::default() });
        for line in [
            "pforte_database_up 1",
            "pforte_notification_outbox_depth 4",
            "pforte_notification_outbox_oldest_age_seconds 12.5",
            "pforte_payment_status_check_lag_seconds 3",
            "pforte_payments_open 5",
            "pforte_payments_open_expired 1",
            "pforte_audit_pending_events 2",
            "pforte_audit_oldest_pending_age_seconds 0.25",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in {text}");
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}

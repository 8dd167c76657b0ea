//! Settings: `config/default.toml` (or the file given with `--config`), then `PFORTE__SECTION__KEY`
//! environment variables. Unknown keys, wrong types and missing values are reported with the file or
//! variable they came from.

mod problem;
mod rate_limit;
mod traces;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use serde::Deserialize;
use url::Url;

pub use problem::{Problem, Problems};
pub use rate_limit::{Quota, RateLimitSettings};
pub use traces::TraceSettings;

use crate::crypto::secret::SecretRef;

pub const DEFAULT_CONFIG_FILE: &str = "config/default.toml";
pub const ENV_PREFIX: &str = "PFORTE__";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    #[serde(default)]
    pub dev: DevSettings,
    #[serde(default)]
    pub registry: RegistrySettings,
    pub keys: KeySettings,
    #[serde(default)]
    pub log: LogSettings,
    #[serde(default)]
    pub workers: WorkerSettings,
    #[serde(default)]
    pub payments: PaymentSettings,
    #[serde(default)]
    pub finance: FinanceSettings,
    #[serde(default)]
    pub rate_limit: RateLimitSettings,
    #[serde(default)]
    pub audit: AuditSettings,
    #[serde(default)]
    pub status: StatusSettings,
    #[serde(default)]
    pub traces: TraceSettings,
    #[serde(default)]
    pub transfer: TransferSettings,
}

/// Datentransfer (issue 15): the limits of what senders may store, as FIT-Connect sets them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferSettings {
    /// Holds `<destinationId>.toml`: the Fachverfahren pforte delivers submissions to, read and
    /// checked with the registry (a missing folder means no destinations).
    #[serde(default = "default_destinations_dir")]
    pub destinations: PathBuf,
    /// PEM certificates the `x5c` chains of destination keys must lead to; without it only the
    /// self-signed certificates of development (`dev.simulators = true`) are accepted.
    #[serde(default)]
    pub trust_anchors: Option<PathBuf>,
    /// Bytes of one encrypted attachment (its JWE as uploaded); more is refused with 413.
    #[serde(default = "default_transfer_max_attachment_bytes")]
    pub max_attachment_bytes: u64,
    /// Attachments one submission may announce.
    #[serde(default = "default_transfer_max_attachments")]
    pub max_attachments: usize,
    /// Bytes of the encrypted metadata and data together in the submit request.
    #[serde(default = "default_transfer_max_submit_bytes")]
    pub max_submit_bytes: u64,
    /// How long one attachment upload or download may take; these requests are exempt from
    /// `server.request_timeout_secs`, which is too short for large attachments.
    #[serde(default = "default_transfer_stream_timeout_secs")]
    pub stream_timeout_secs: u64,
    /// Login evidence (`POST /v1/evidence/authentication`) is refused for a login older than this:
    /// the ID token's `auth_time`, or its `iat` when the account provider sent no `auth_time`.
    #[serde(default = "default_transfer_evidence_max_login_age_secs")]
    pub evidence_max_login_age_secs: u64,
}

fn default_transfer_evidence_max_login_age_secs() -> u64 {
    86_400
}

impl Default for TransferSettings {
    fn default() -> Self {
        TransferSettings {
            destinations: default_destinations_dir(),
            trust_anchors: None,
            max_attachment_bytes: default_transfer_max_attachment_bytes(),
            max_attachments: default_transfer_max_attachments(),
            max_submit_bytes: default_transfer_max_submit_bytes(),
            stream_timeout_secs: default_transfer_stream_timeout_secs(),
            evidence_max_login_age_secs: default_transfer_evidence_max_login_age_secs(),
        }
    }
}

fn default_transfer_max_attachment_bytes() -> u64 {
    500 * 1024 * 1024
}
fn default_transfer_max_attachments() -> usize {
    100
}
fn default_transfer_max_submit_bytes() -> u64 {
    16 * 1024 * 1024
}
fn default_transfer_stream_timeout_secs() -> u64 {
    3600
}

/// The dependency status (`health`, issue 11): how often the running service asks its upstream
/// providers, payment providers, outbox and database.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusSettings {
    /// Seconds between two rounds of checks; `GET /status` on the operator's address serves the last.
    #[serde(default = "default_status_check_interval_secs")]
    pub check_interval_secs: u64,
}

impl Default for StatusSettings {
    fn default() -> Self {
        StatusSettings { check_interval_secs: default_status_check_interval_secs() }
    }
}

fn default_status_check_interval_secs() -> u64 {
    30
}

/// The audit chain's chainer (issue 13, SECURITY.md #26).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSettings {
    /// How often each instance's chainer looks for recorded events to chain.
    #[serde(default = "default_chain_interval_ms")]
    pub chain_interval_ms: u64,
    /// `pforte audit verify` fails when an event waits longer than this to be chained.
    #[serde(default = "default_max_chain_delay_secs")]
    pub max_chain_delay_secs: u64,
}

impl Default for AuditSettings {
    fn default() -> Self {
        AuditSettings {
            chain_interval_ms: default_chain_interval_ms(),
            max_chain_delay_secs: default_max_chain_delay_secs(),
        }
    }
}

fn default_chain_interval_ms() -> u64 {
    200
}

fn default_max_chain_delay_secs() -> u64 {
    1
}

/// Reconciliation for finance offices.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinanceSettings {
    /// Settlement reports and bank statements larger than this are refused whole.
    #[serde(default = "default_import_max_bytes")]
    pub import_max_bytes: u64,
    /// A browser session of finance staff ends after this long without a request.
    #[serde(default = "default_session_idle_secs")]
    pub session_idle_secs: u64,
    /// A browser session ends this long after sign-in, however busy.
    #[serde(default = "default_session_max_secs")]
    pub session_max_secs: u64,
}

impl Default for FinanceSettings {
    fn default() -> Self {
        FinanceSettings {
            import_max_bytes: default_import_max_bytes(),
            session_idle_secs: default_session_idle_secs(),
            session_max_secs: default_session_max_secs(),
        }
    }
}

/// Half an hour: a clerk who left the desk is signed out before someone else sits down for long.
fn default_session_idle_secs() -> u64 {
    30 * 60
}

/// A working day.
fn default_session_max_secs() -> u64 {
    8 * 3600
}

fn default_import_max_bytes() -> u64 {
    10 * 1024 * 1024
}

/// Lifetimes of payments and how often open ones are read at their providers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentSettings {
    /// An open payment without a final status after this long is failed with a timeout.
    #[serde(default = "default_payment_lifetime")]
    pub lifetime_secs: u64,
    /// The status worker's first pause between two reads of an open payment at its provider; it
    /// doubles with the payment's age up to `status_check_max_secs`.
    #[serde(default = "default_status_check_first")]
    pub status_check_first_secs: u64,
    #[serde(default = "default_status_check_max")]
    pub status_check_max_secs: u64,
}

impl Default for PaymentSettings {
    fn default() -> Self {
        PaymentSettings {
            lifetime_secs: default_payment_lifetime(),
            status_check_first_secs: default_status_check_first(),
            status_check_max_secs: default_status_check_max(),
        }
    }
}

/// The longest payment lifetime and check pause: a year (larger values are typos, and they must
/// still fit milliseconds in an i64).
pub const MAX_PAYMENT_SECS: u64 = 365 * 24 * 3600;

/// Background work an instance takes part in. Several instances on one PostgreSQL share it safely;
/// an operator may still keep it to some of them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSettings {
    /// Deliver notifications to online services from the outbox.
    #[serde(default = "default_true")]
    pub notifications: bool,
    /// Read open payments' status at their providers and fail those that expire.
    #[serde(default = "default_true")]
    pub payment_status: bool,
    /// Encrypt payments' personal data written before it was kept apart, and purge it after each
    /// tenant's retention period.
    #[serde(default = "default_true")]
    pub personal_data: bool,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings { notifications: true, payment_status: true, personal_data: true }
    }
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// The address online services and browsers use; it is also the OpenID issuer.
    pub public_url: Url,
    #[serde(default = "default_request_timeout")]
    pub request_timeout_secs: u64,
    #[serde(default = "default_body_limit")]
    pub body_limit_bytes: usize,
    #[serde(default = "default_shutdown_grace")]
    pub shutdown_grace_secs: u64,
    /// Addresses of reverse proxies whose `X-Forwarded-For` names the client; from any other peer
    /// the header is ignored (anyone could send it).
    #[serde(default)]
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// The operator's address (`http::admin`: metrics, dependency status, reload). Off when unset:
    /// nothing there is for the public, so it must not share the public listener.
    #[serde(default)]
    pub metrics_listen: Option<SocketAddr>,
    /// Where `serve` writes its process id, so `pforte reload` can signal it. Off when unset.
    #[serde(default)]
    pub pid_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    pub url: DatabaseUrl,
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_secs: u64,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevSettings {
    /// Development simulators (upstream account providers, payment pay page). Never in production.
    #[serde(default)]
    pub simulators: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrySettings {
    /// Holds `identity/<id>.toml` and `payment/<id>.toml`.
    #[serde(default = "default_providers_dir")]
    pub providers: PathBuf,
    #[serde(default = "default_clients_dir")]
    pub clients: PathBuf,
    #[serde(default = "default_tenants_dir")]
    pub tenants: PathBuf,
}

impl Default for RegistrySettings {
    fn default() -> Self {
        RegistrySettings {
            providers: default_providers_dir(),
            clients: default_clients_dir(),
            tenants: default_tenants_dir(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySettings {
    /// 32 random bytes, base64url, that encrypt the signing keys at rest.
    pub master_key: SecretRef,
    /// How long a replaced signing key stays in the JWKS so tokens it signed can still be verified.
    #[serde(default = "default_retired_publish_secs")]
    pub retired_publish_secs: u64,
    /// How often the running server reads its signing keys from the database again; between reads,
    /// and while the database is away, it publishes and signs with the keys in memory.
    #[serde(default = "default_key_refresh_secs")]
    pub refresh_secs: u64,
    /// A signing key older than this is replaced by one instance (under a lock) without an operator;
    /// 0 turns the schedule off (`pforte keys rotate` still works).
    #[serde(default = "default_rotate_after_days")]
    pub rotate_after_days: u64,
    /// A scheduled rotation publishes the new key this long before it signs, so verifiers' cached
    /// JWK Sets hold it before the first token it signed arrives.
    #[serde(default = "default_publish_ahead_secs")]
    pub publish_ahead_secs: u64,
}

/// How long verifiers may cache pforte's JWK Set (`Cache-Control` of `/.well-known/jwks.json`).
pub const JWKS_MAX_AGE_SECS: u64 = 300;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    #[serde(default)]
    pub format: LogFormat,
    /// A tracing filter such as `info` or `pforte=debug,info`; `RUST_LOG` overrides it.
    #[serde(default = "default_log_level")]
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings { format: LogFormat::default(), level: default_log_level() }
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

/// A database URL whose password never reaches a log line.
#[derive(Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct DatabaseUrl(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl DatabaseUrl {
    pub fn backend(&self) -> Backend {
        if self.0.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        }
    }

    /// The URL with credentials, for the driver only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL without user or password, for logs and messages.
    pub fn redacted(&self) -> String {
        match Url::parse(&self.0) {
            Ok(mut url) if self.backend() == Backend::Postgres => {
                let _ = url.set_password(None);
                let _ = url.set_username("");
                url.set_query(None);
                url.to_string()
            }
            _ => self.0.split('?').next().unwrap_or_default().to_owned(),
        }
    }
}

impl TryFrom<String> for DatabaseUrl {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        let known = ["sqlite:", "postgres://", "postgresql://"];
        if known.iter().any(|prefix| value.starts_with(prefix)) {
            Ok(DatabaseUrl(value))
        } else {
            Err("the database URL must start with sqlite:, postgres:// or postgresql://".to_owned())
        }
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Settings {
    /// Reads the given file (or `config/default.toml`) and the environment, then checks the values.
    pub fn load(config_file: Option<&Path>) -> Result<Settings, Problems> {
        Self::from_figment(Self::figment(config_file)?)
    }

    /// The layered sources before extraction; tests merge their own values on top.
    pub fn figment(config_file: Option<&Path>) -> Result<Figment, Problems> {
        let file = match config_file {
            Some(path) if !path.is_file() => {
                let mut problems = Problems::default();
                problems.push(path.display().to_string(), "", "configuration file not found");
                return Err(problems);
            }
            Some(path) => path.to_path_buf(),
            None => PathBuf::from(DEFAULT_CONFIG_FILE),
        };
        Ok(Figment::new().merge(Toml::file_exact(file)).merge(Env::prefixed(ENV_PREFIX).split("__")))
    }

    pub fn from_figment(figment: Figment) -> Result<Settings, Problems> {
        let settings: Settings = figment.extract().map_err(problems_from_figment)?;
        settings.validate().into_result(settings)
    }

    /// Rules that span several keys or that types alone cannot express.
    pub fn validate(&self) -> Problems {
        let mut problems = Problems::default();
        let url = &self.server.public_url;
        let loopback = is_loopback_url(url);
        if !matches!(url.scheme(), "http" | "https") {
            problems.push("settings", "server.public_url", "must be an http or https URL");
        } else if url.scheme() == "http" && !loopback {
            problems.push("settings", "server.public_url", "must use https unless it is a loopback address");
        }
        if url.query().is_some() || url.fragment().is_some() {
            problems.push("settings", "server.public_url", "must not carry a query or fragment");
        }
        if self.dev.simulators && !cfg!(feature = "simulators") {
            problems.push(
                "settings",
                "dev.simulators",
                "this build has no development simulators (built without the cargo feature `simulators`); \
                 set dev.simulators = false or use a build with the feature",
            );
        } else if self.dev.simulators && !loopback {
            problems.push(
                "settings",
                "dev.simulators",
                "development simulators may only run when server.public_url is a loopback address",
            );
        }
        if self.keys.master_key.is_plain() && !self.dev.simulators {
            problems.push("settings", "keys.master_key", "plain: secrets are for development only; use env: or file:");
        }
        if self.server.body_limit_bytes == 0 {
            problems.push("settings", "server.body_limit_bytes", "must be greater than zero");
        }
        if self.server.request_timeout_secs == 0 {
            problems.push("settings", "server.request_timeout_secs", "must be greater than zero");
        }
        if self.finance.session_idle_secs == 0 || self.finance.session_idle_secs > MAX_PAYMENT_SECS {
            problems.push("settings", "finance.session_idle_secs", "must be between 1 and 31536000");
        }
        if self.finance.session_max_secs < self.finance.session_idle_secs
            || self.finance.session_max_secs > MAX_PAYMENT_SECS
        {
            problems.push(
                "settings",
                "finance.session_max_secs",
                "must be at least finance.session_idle_secs and at most 31536000",
            );
        }
        for (key, value) in [
            ("transfer.max_attachment_bytes", self.transfer.max_attachment_bytes),
            ("transfer.max_submit_bytes", self.transfer.max_submit_bytes),
            ("transfer.stream_timeout_secs", self.transfer.stream_timeout_secs),
            ("transfer.evidence_max_login_age_secs", self.transfer.evidence_max_login_age_secs),
        ] {
            if value == 0 {
                problems.push("settings", key, "must be greater than zero");
            }
        }
        if !(1..=1000).contains(&self.transfer.max_attachments) {
            problems.push("settings", "transfer.max_attachments", "must be between 1 and 1000");
        }
        if self.finance.import_max_bytes == 0 {
            problems.push("settings", "finance.import_max_bytes", "must be greater than zero");
        }
        if self.keys.refresh_secs == 0 {
            problems.push("settings", "keys.refresh_secs", "must be greater than zero");
        }
        // A key must be in every instance's memory (refresh_secs) and then in every verifier's cache
        // (the JWKS max-age) before it signs; anything shorter lets tokens arrive with an unknown kid.
        let publish_floor = JWKS_MAX_AGE_SECS.saturating_add(self.keys.refresh_secs);
        if self.keys.rotate_after_days > 0 && self.keys.publish_ahead_secs <= publish_floor {
            problems.push(
                "settings",
                "keys.publish_ahead_secs",
                format!("must be more than {publish_floor} (the JWKS cache lifetime plus keys.refresh_secs)"),
            );
        }
        if self.keys.rotate_after_days > 36_500 {
            problems.push("settings", "keys.rotate_after_days", "must be at most 36500 (0 turns the schedule off)");
        }
        if self.database.max_connections == 0 {
            problems.push("settings", "database.max_connections", "must be greater than zero");
        }
        let payments = &self.payments;
        for (key, value) in [
            ("payments.lifetime_secs", payments.lifetime_secs),
            ("payments.status_check_first_secs", payments.status_check_first_secs),
            ("payments.status_check_max_secs", payments.status_check_max_secs),
        ] {
            if value == 0 {
                problems.push("settings", key, "must be greater than zero");
            } else if value > MAX_PAYMENT_SECS {
                problems.push("settings", key, format!("must be at most {MAX_PAYMENT_SECS} (a year)"));
            }
        }
        self.rate_limit.validate(&mut problems);
        if self.status.check_interval_secs == 0 {
            problems.push("settings", "status.check_interval_secs", "must be greater than zero");
        }
        self.traces.validate(&mut problems);
        if self.audit.chain_interval_ms == 0 {
            problems.push("settings", "audit.chain_interval_ms", "must be greater than zero");
        }
        if self.audit.max_chain_delay_secs == 0
            || self.audit.chain_interval_ms >= self.audit.max_chain_delay_secs * 1000
        {
            problems.push(
                "settings",
                "audit.max_chain_delay_secs",
                "must be greater than zero and longer than audit.chain_interval_ms",
            );
        }
        if payments.status_check_max_secs < payments.status_check_first_secs {
            problems.push(
                "settings",
                "payments.status_check_max_secs",
                "must not be less than payments.status_check_first_secs",
            );
        }
        problems
    }

    /// The issuer string: the public URL without a trailing slash.
    pub fn issuer(&self) -> String {
        self.server.public_url.as_str().trim_end_matches('/').to_owned()
    }
}

/// `localhost`, 127.0.0.0/8 or ::1: the hosts on which development may use plain http. The one rule
/// for every URL pforte checks (its own public URL, registered URLs, a payment's `notifyUrl`).
/// Names under `.localhost` do not count: RFC 6761 only asks resolvers to keep them on the machine,
/// and a resolver that sends them to the network would carry plain http off it.
pub fn is_loopback_url(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Turns figment's errors into problems naming the file or variable, the key and the reason.
fn problems_from_figment(error: figment::Error) -> Problems {
    let mut problems = Problems::default();
    for e in error {
        let mut path = e.path.clone();
        if let figment::error::Kind::MissingField(field) = &e.kind {
            path.push(field.to_string());
        }
        let key = path.join(".");
        let source = match &e.metadata {
            Some(meta) => match &meta.source {
                Some(figment::Source::File(file)) => file.display().to_string(),
                _ if meta.name.contains("environment") => {
                    let variable: Vec<String> = e.path.iter().map(|k| k.to_uppercase()).collect();
                    format!("environment variable {ENV_PREFIX}{}", variable.join("__"))
                }
                _ => meta.name.to_string(),
            },
            None => "settings".to_owned(),
        };
        let reason = match &e.kind {
            figment::error::Kind::MissingField(_) => "required value is missing".to_owned(),
            kind => kind.to_string(),
        };
        problems.push(source, key, reason);
    }
    problems
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_request_timeout() -> u64 {
    30
}
fn default_body_limit() -> usize {
    256 * 1024
}
fn default_shutdown_grace() -> u64 {
    30
}
fn default_max_connections() -> u32 {
    10
}
fn default_connect_timeout() -> u64 {
    5
}
fn default_providers_dir() -> PathBuf {
    PathBuf::from("providers")
}
fn default_clients_dir() -> PathBuf {
    PathBuf::from("config/clients")
}
fn default_tenants_dir() -> PathBuf {
    PathBuf::from("config/tenants")
}
fn default_destinations_dir() -> PathBuf {
    PathBuf::from("config/destinations")
}
fn default_retired_publish_secs() -> u64 {
    86_400
}
fn default_key_refresh_secs() -> u64 {
    30
}
fn default_rotate_after_days() -> u64 {
    90
}
fn default_publish_ahead_secs() -> u64 {
    86_400
}
fn default_payment_lifetime() -> u64 {
    7200
}
fn default_status_check_first() -> u64 {
    60
}
fn default_status_check_max() -> u64 {
    900
}
fn default_log_level() -> String {
    "info".to_owned()
}

#[cfg(test)]
mod tests;

//! The `pforte` command line. Exit codes: 0 success, 1 a runtime failure (database unreachable,
//! I/O, a backup refused), 2 invalid configuration or registry, 3 `audit verify` found a broken chain, 4 a
//! finance import or reconciliation refused (nothing stored), 5 `audit verify` found the chain intact but
//! events left unchained beyond `audit.max_chain_delay_secs`, 6 `status` found a dependency down or
//! degraded.

mod finance;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::app::Application;
use crate::audit::AuditLog;
use crate::clock::SystemClock;
use crate::config::{Backend, Problems, Settings};
use crate::crypto::secret::SecretRef;
use crate::keys::{KeyService, MasterKey, SigningAlg};
use crate::registry::Registry;
use crate::store::Database;

mod notifications;
mod reload;
mod status;

pub const EXIT_FAILURE: u8 = 1;
pub const EXIT_INVALID_CONFIG: u8 = 2;
pub const EXIT_AUDIT_BROKEN: u8 = 3;
/// A finance import or reconciliation was refused; nothing was stored.
pub const EXIT_REFUSED: u8 = 4;
/// `audit verify` found the chain intact but events waiting to be chained longer than
/// `audit.max_chain_delay_secs` (no chainer running, or one that cannot keep up).
pub const EXIT_AUDIT_UNCHAINED: u8 = 5;
/// `status` found a dependency down or degraded (the report says which and why).
pub const EXIT_NOT_UP: u8 = 6;

/// How often one-shot commands try to reach the database before giving up.
const DB_ATTEMPTS: u32 = 5;

#[derive(Debug, Parser)]
#[command(name = "pforte", version, about = "Identity and payment broker for public-sector online services")]
pub struct Cli {
    /// Configuration file to use instead of config/default.toml. Environment variables
    /// PFORTE__SECTION__KEY override it.
    #[arg(long, global = true, env = "PFORTE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default when no command is given). Stops gracefully on SIGTERM or Ctrl-C;
    /// reads the registry again on SIGHUP.
    Serve,
    /// Ask the running instance (server.pid_file) to read the registry again (SIGHUP). It checks the
    /// files as `check` does and keeps its registry on any problem; the outcome is in its log.
    Reload,
    /// Validate configuration and registry without serving; lists every problem and exits 2 if any.
    Check,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage pforte's signing keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Inspect the hash-chained audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Finance offices: tokens for the /finance/… endpoints.
    Finance {
        #[command(subcommand)]
        command: finance::FinanceCommand,
    },
    /// Write a consistent copy of the SQLite database to FILE while pforte runs (refuses an existing
    /// FILE). On PostgreSQL it names pg_dump instead. The master key is not in the copy: back it up apart.
    Backup {
        /// Where the copy goes; must not exist yet.
        file: PathBuf,
    },
    /// Ask every dependency now: upstream identity providers (discovery, key set), payment providers
    /// (their status call per authority), the notification outbox and the database; one line each
    /// with latency and last error. Exits 6 when one is down or degraded.
    Status {
        /// Print the JSON report `GET /status` serves on the operator's address instead.
        #[arg(long)]
        json: bool,
    },
    /// Inspect notifications to online services and put given-up ones back in line.
    Notifications {
        #[command(subcommand)]
        command: notifications::NotificationsCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Add a new active signing key; the replaced key stays in the JWKS for keys.retired_publish_secs
    /// so tokens it signed can still be verified.
    Rotate {
        /// Algorithm of the key to rotate: ES256 (default), PS256, RS256 or PS512 (Datentransfer SETs).
        #[arg(long, default_value = "ES256")]
        alg: SigningAlg,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute the hash chain; name the first row that does not fit (exit 3) or print the head hash.
    Verify,
}

pub async fn run(cli: Cli) -> ExitCode {
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(problems) => return invalid(&problems),
    };
    let telemetry = crate::telemetry::init(&settings.log, &settings.traces);
    // The instance checks the files itself, with its own environment for their secrets.
    let code = if matches!(cli.command, Some(Command::Reload)) {
        match reload::send(&settings) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("pforte: {e:#}");
                ExitCode::from(EXIT_FAILURE)
            }
        }
    } else {
        match load_registry(&settings) {
            Ok(registry) => run_command(cli.command.unwrap_or(Command::Serve), settings, registry).await,
            Err(problems) => invalid(&problems),
        }
    };
    // After the server stopped or the command finished: the spans still buffered go out now.
    telemetry.shutdown().await;
    code
}

async fn run_command(command: Command, settings: Settings, registry: Registry) -> ExitCode {
    let result = match command {
        Command::Serve => serve(settings, registry).await,
        Command::Reload => Ok(()),
        Command::Check => return check(&settings, &registry),
        Command::Migrate => migrate(&settings).await,
        Command::Keys { command: KeysCommand::Rotate { alg } } => {
            let result = rotate_keys(&settings, alg).await;
            chain_before_exit(&settings).await;
            result
        }
        Command::Audit { command: AuditCommand::Verify } => return verify_audit(&settings).await,
        Command::Finance { command } => {
            let code = finance::run(&settings, registry, command).await;
            chain_before_exit(&settings).await;
            return code;
        }
        Command::Notifications { command } => {
            let result = notification_log(&settings, command).await;
            chain_before_exit(&settings).await;
            result
        }
        Command::Backup { file } => backup(&settings, &file).await,
        Command::Status { json } => return dependency_status(&settings, registry, json).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pforte: {e:#}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

fn load_registry(settings: &Settings) -> Result<Registry, Problems> {
    Registry::load_with_destinations(
        &settings.registry,
        Some(&settings.transfer),
        &settings.server.public_url,
        settings.dev.simulators,
    )
}

fn invalid(problems: &Problems) -> ExitCode {
    eprintln!("pforte: the configuration is not valid ({} problem(s)):", problems.0.len());
    for problem in &problems.0 {
        eprintln!("  {problem}");
    }
    ExitCode::from(EXIT_INVALID_CONFIG)
}

async fn serve(settings: Settings, registry: Registry) -> anyhow::Result<()> {
    let hangups = reload::Hangups::register()?;
    tracing::info!(registry = %registry.counts(), "registry loaded");
    let pid_file = settings.server.pid_file.clone();
    let app = Application::build(settings, registry).await?;
    // Written once the listener is bound and SIGHUP is handled, so what it names can be signalled.
    let pid_file = pid_file.as_deref().map(reload::PidFile::claim).transpose()?;
    let token = app.shutdown_token();
    hangups.reload_on_signal(app.reloader(), token.clone());
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown requested; finishing in-flight requests");
        token.cancel();
    });
    let result = app.run_until_stopped().await;
    if let Some(pid_file) = pid_file {
        pid_file.remove();
    }
    result
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Settings and registry are already valid here; what remains is whether the master key can be read.
fn check(settings: &Settings, registry: &Registry) -> ExitCode {
    let dev_creates_key =
        settings.dev.simulators && matches!(&settings.keys.master_key, SecretRef::File(path) if !path.exists());
    if !dev_creates_key {
        if let Err(e) = MasterKey::load(&settings.keys.master_key, false) {
            let mut problems = Problems::default();
            problems.push("settings", "keys.master_key", e.to_string());
            return invalid(&problems);
        }
    }
    println!("configuration and registry are valid: {}", registry.counts());
    ExitCode::SUCCESS
}

/// Connects and migrates, retrying with backoff a few times before giving up.
pub(crate) async fn connect(settings: &Settings) -> anyhow::Result<Database> {
    let db = Database::connect_lazy(&settings.database)?;
    let mut delay = Duration::from_millis(500);
    for attempt in 1..=DB_ATTEMPTS {
        match db.migrate().await {
            Ok(applied) => {
                if applied > 0 {
                    tracing::info!(applied, "migrations applied");
                }
                return Ok(db);
            }
            Err(e) if attempt < DB_ATTEMPTS => {
                tracing::warn!(database = db.redacted_url(), error = %e, attempt, "database not ready; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(e) => anyhow::bail!("database {} not reachable after {attempt} attempts: {e}", db.redacted_url()),
        }
    }
    anyhow::bail!("database {} not reachable", db.redacted_url())
}

async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let db = connect(settings).await?;
    println!("database {} is up to date", db.redacted_url());
    db.close().await;
    Ok(())
}

async fn rotate_keys(settings: &Settings, alg: SigningAlg) -> anyhow::Result<()> {
    let db = connect(settings).await?;
    let (master, _) = MasterKey::load(&settings.keys.master_key, settings.dev.simulators)?;
    let clock = Arc::new(SystemClock);
    let audit = AuditLog::new(db.clone(), clock.clone());
    let keys = KeyService::new(db.clone(), master, clock, audit, settings.keys.retired_publish_secs);
    let rotation = keys.rotate(alg, "operator").await?;
    println!("new active {alg} key: {}", rotation.new_kid);
    for kid in &rotation.retired {
        println!(
            "retired {kid}: stays published for {} s so tokens it signed can be verified",
            settings.keys.retired_publish_secs
        );
    }
    db.close().await;
    Ok(())
}

/// `pforte backup FILE`: see `store::backup`. Without a database to copy (PostgreSQL) it fails with
/// what to run instead, before connecting anywhere.
async fn backup(settings: &Settings, file: &std::path::Path) -> anyhow::Result<()> {
    if settings.database.url.backend() == Backend::Postgres {
        anyhow::bail!(
            "the database is PostgreSQL: back it up with its own tools (pg_dump -Fc, or base backups with WAL \
             archiving for point-in-time recovery); see docs/operations.md"
        );
    }
    if file.exists() {
        anyhow::bail!("{} exists already; a backup never overwrites a file: choose a new name", file.display());
    }
    let db = connect(settings).await?;
    let result = db.backup_into(file).await;
    db.close().await;
    let bytes = result?;
    println!("backup of {} written to {} ({bytes} bytes)", db.redacted_url(), file.display());
    println!("the master key (keys.master_key) is not in it: keep a copy of the key apart from the backup");
    Ok(())
}

async fn dependency_status(settings: &Settings, registry: Registry, json: bool) -> ExitCode {
    let health = match crate::app::dependency_health(settings, registry) {
        Ok(health) => health,
        Err(e) => {
            eprintln!("pforte: {e:#}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let report = health.check().await;
    if json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("pforte: {e}");
                return ExitCode::from(EXIT_FAILURE);
            }
        }
    } else {
        print!("{}", status::render(&report));
    }
    match report.status {
        crate::health::Overall::Ok => ExitCode::SUCCESS,
        _ => ExitCode::from(EXIT_NOT_UP),
    }
}

async fn notification_log(settings: &Settings, command: notifications::NotificationsCommand) -> anyhow::Result<()> {
    let db = connect(settings).await?;
    let result = notifications::run(db.clone(), command).await;
    db.close().await;
    result
}

async fn verify_audit(settings: &Settings) -> ExitCode {
    let db = match connect(settings).await {
        Ok(db) => db,
        Err(e) => {
            eprintln!("pforte: {e:#}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let audit = AuditLog::new(db.clone(), Arc::new(SystemClock));
    let bound = Duration::from_secs(settings.audit.max_chain_delay_secs);
    let result = match audit.verify().await {
        Ok(report) => audit.unchained(bound).await.map(|unchained| (report, unchained)),
        Err(e) => Err(e),
    };
    db.close().await;
    let (report, unchained) = match result {
        Ok(result) => result,
        Err(e) => {
            eprintln!("pforte: cannot read the audit log: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    if let Some(broken) = report.first_broken {
        println!("audit log BROKEN at row {}: {} ({} rows before it verified)", broken.seq, broken.reason, report.rows);
        return ExitCode::from(EXIT_AUDIT_BROKEN);
    }
    println!("audit log intact: {} rows, head hash {}", report.rows, report.head_hash);
    if unchained.overdue > 0 {
        println!(
            "audit log LATE: {} events not chained within {} s (audit.max_chain_delay_secs), the oldest for {} ms; \
             {} events pending in all",
            unchained.overdue,
            settings.audit.max_chain_delay_secs,
            unchained.oldest_overdue_ms.unwrap_or(0),
            unchained.pending
        );
        return ExitCode::from(EXIT_AUDIT_UNCHAINED);
    }
    if unchained.pending > 0 {
        println!("{} events recorded and not chained yet, within the bound", unchained.pending);
    }
    ExitCode::SUCCESS
}

/// A command that recorded audit events chains them before it exits, so they do not wait for the
/// next `pforte serve` (and `audit verify` does not report them late). While a running instance's
/// chainer holds the lock, it tries again for a moment: that instance is chaining them anyway. A
/// failure only warns: the events are committed and the next chainer takes them.
async fn chain_before_exit(settings: &Settings) {
    let Ok(db) = Database::connect_lazy(&settings.database) else { return };
    let audit = AuditLog::new(db.clone(), Arc::new(SystemClock));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(settings.audit.max_chain_delay_secs);
    loop {
        match audit.unchained(Duration::ZERO).await {
            Ok(unchained) if unchained.pending == 0 => break,
            Ok(_) if tokio::time::Instant::now() < deadline => {}
            Ok(_) => break,
            Err(e) => {
                tracing::warn!(error = %e, "could not chain the audit events this command recorded");
                break;
            }
        }
        if let Err(e) = audit.chain_pending().await {
            tracing::warn!(error = %e, "could not chain the audit events this command recorded");
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    db.close().await;
}

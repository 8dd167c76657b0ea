//! `pforte finance import settlement|bank …` and `pforte finance reconcile …`: the operator's
//! commands that feed the reconciliation and print its report. They are one enum, flattened into the
//! `finance` command, so the token subcommands sit beside them.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use chrono::NaiveDate;
use clap::{Subcommand, ValueEnum};

use crate::audit::AuditLog;
use crate::cli::{connect, EXIT_FAILURE, EXIT_REFUSED};
use crate::clock::SystemClock;
use crate::config::Settings;
use crate::finance::import::{ImportError, ImportFile, ImportOutcome, Importer};
use crate::finance::inputs::reconcile_period;
use crate::finance::reconcile::Period;
use crate::registry::Registry;

#[derive(Debug, Subcommand)]
pub enum ReconciliationCommand {
    /// Import a provider's settlement report or a bank statement. The whole file or nothing is stored;
    /// the same file twice stores nothing new. Exit code 4 when the file is refused.
    Import {
        #[command(subcommand)]
        what: ImportCommand,
    },
    /// Reconcile pforte's payments with settlement reports and bank statements for one authority and
    /// period (calendar days in Germany, both included); prints the report.
    Reconcile {
        /// The authority (tenant id).
        #[arg(long)]
        tenant: String,
        /// First day, YYYY-MM-DD.
        #[arg(long)]
        from: NaiveDate,
        /// Last day, YYYY-MM-DD.
        #[arg(long)]
        to: NaiveDate,
        #[arg(long, value_enum, default_value_t = ReportFormat::Json)]
        format: ReportFormat,
    },
}

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// A provider's settlement report (CSV as its provider file's [settlement] section describes).
    Settlement {
        #[arg(long)]
        tenant: String,
        /// The payment provider whose report it is.
        #[arg(long)]
        provider: String,
        file: PathBuf,
    },
    /// A bank statement: camt.053 or camt.054 XML for the tenant's finance.bank_iban.
    Bank {
        #[arg(long)]
        tenant: String,
        file: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Json,
    Csv,
}

pub(super) async fn run(settings: &Settings, registry: &Registry, command: ReconciliationCommand) -> ExitCode {
    match command {
        ReconciliationCommand::Import { what } => import(settings, registry, what).await,
        ReconciliationCommand::Reconcile { tenant, from, to, format } => {
            reconcile(settings, registry, &tenant, from, to, format).await
        }
    }
}

async fn import(settings: &Settings, registry: &Registry, what: ImportCommand) -> ExitCode {
    let (tenant, provider, path) = match &what {
        ImportCommand::Settlement { tenant, provider, file } => (tenant, Some(provider), file),
        ImportCommand::Bank { tenant, file } => (tenant, None, file),
    };
    let max_bytes = settings.finance.import_max_bytes;
    let bytes = match read_limited(path, max_bytes) {
        Ok(bytes) => bytes,
        Err(ReadError::TooLarge(size)) => return refused(&ImportError::TooLarge { size, limit: max_bytes }),
        Err(ReadError::Io(e)) => return failed(format!("cannot read {}: {e}", path.display())),
    };
    let db = match connect(settings).await {
        Ok(db) => db,
        Err(e) => return failed(format!("{e:#}")),
    };
    let clock = Arc::new(SystemClock);
    let audit = AuditLog::new(db.clone(), clock.clone());
    let importer = Importer { db: &db, registry, audit: &audit, clock, max_bytes };
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let file = ImportFile { tenant, file_name: &file_name, bytes: &bytes, by: "operator" };
    let outcome = match provider {
        Some(provider) => importer.settlement(file, provider).await,
        None => importer.bank(file).await,
    };
    db.close().await;
    match outcome {
        Ok(ImportOutcome::Imported { import_id, rows }) => {
            println!("imported {import_id}: {rows} row(s) from {file_name}");
            ExitCode::SUCCESS
        }
        Ok(ImportOutcome::AlreadyImported { import_id }) => {
            println!("already imported as {import_id}; nothing new stored");
            ExitCode::SUCCESS
        }
        Err(e) if e.is_refusal() => refused(&e),
        // The import is one transaction: an outage leaves nothing behind, and the same command
        // imports the file once the database is back.
        Err(ImportError::Storage(e)) if e.is_unavailable() => failed(format!(
            "the database went away during the import; nothing was imported. Run the same command again once \
             it is back ({e})"
        )),
        Err(e) => failed(e.to_string()),
    }
}

enum ReadError {
    TooLarge(u64),
    Io(std::io::Error),
}

/// Reads at most `limit` bytes; a larger file is refused without being read into memory.
fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let file = std::fs::File::open(path).map_err(ReadError::Io)?;
    let size = file.metadata().map_err(ReadError::Io)?.len();
    if size > limit {
        return Err(ReadError::TooLarge(size));
    }
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes).map_err(ReadError::Io)?;
    match bytes.len() as u64 {
        // The file grew while being read.
        read if read > limit => Err(ReadError::TooLarge(read)),
        _ => Ok(bytes),
    }
}

async fn reconcile(
    settings: &Settings,
    registry: &Registry,
    tenant: &str,
    from: NaiveDate,
    to: NaiveDate,
    format: ReportFormat,
) -> ExitCode {
    if registry.tenant(tenant).is_none() {
        eprintln!("pforte: there is no tenant `{tenant}`");
        return ExitCode::from(EXIT_REFUSED);
    }
    let period = match Period::new(from, to) {
        Ok(period) => period,
        Err(reason) => {
            eprintln!("pforte: {reason}");
            return ExitCode::from(EXIT_REFUSED);
        }
    };
    let db = match connect(settings).await {
        Ok(db) => db,
        Err(e) => return failed(format!("{e:#}")),
    };
    let report = reconcile_period(&db, tenant, period).await;
    db.close().await;
    match report {
        Ok(report) => {
            match format {
                ReportFormat::Json => println!("{}", report.to_json()),
                ReportFormat::Csv => print!("{}", report.to_csv()),
            }
            ExitCode::SUCCESS
        }
        Err(e) => failed(e.to_string()),
    }
}

fn refused(error: &ImportError) -> ExitCode {
    eprintln!("pforte: refused, nothing imported: {error}");
    ExitCode::from(EXIT_REFUSED)
}

fn failed(message: String) -> ExitCode {
    eprintln!("pforte: {message}");
    ExitCode::from(EXIT_FAILURE)
}

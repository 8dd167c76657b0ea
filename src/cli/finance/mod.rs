//! `pforte finance …`: the operator's commands for finance offices. Tokens are created here and
//! shown once; the database keeps only their hash. Imports and reconciliation are in `reconciliation`.

mod reconciliation;

use std::process::ExitCode;
use std::sync::Arc;

use clap::Subcommand;

use crate::audit::AuditLog;
use crate::cli::{connect, EXIT_FAILURE, EXIT_INVALID_CONFIG};
use crate::clock::{SharedClock, SystemClock};
use crate::config::Settings;
use crate::finance::access::{Revocation, TokenAdminError, TokenInfo};
use crate::finance::period::berlin_time;
use crate::finance::FinanceAccess;
use crate::registry::Registry;

#[derive(Debug, Subcommand)]
pub enum FinanceCommand {
    /// Manage finance staff tokens (one tenant each) for the /finance/… endpoints.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    #[command(flatten)]
    Reconciliation(reconciliation::ReconciliationCommand),
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token for one tenant; it is printed once and stored only as a hash.
    Create {
        /// The tenant (authority) id the token may act for, e.g. 09162000.
        #[arg(long)]
        tenant: String,
        /// A note saying whose token it is, shown in `token list`.
        #[arg(long)]
        label: Option<String>,
    },
    /// Revoke a token by its id (ftk_…); it stops working at once.
    Revoke {
        /// The token id as `token list` shows it.
        token_id: String,
    },
    /// List tokens (never the tokens themselves).
    List {
        /// Only the tokens of this tenant.
        #[arg(long)]
        tenant: Option<String>,
    },
}

pub(super) async fn run(settings: &Settings, registry: Registry, command: FinanceCommand) -> ExitCode {
    let command = match command {
        FinanceCommand::Token { command } => command,
        // Imports and reconciliation open their own database connection.
        FinanceCommand::Reconciliation(command) => {
            return reconciliation::run(settings, &registry, command).await;
        }
    };
    let db = match connect(settings).await {
        Ok(db) => db,
        Err(e) => {
            eprintln!("pforte: {e:#}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let clock: SharedClock = Arc::new(SystemClock);
    let audit = AuditLog::new(db.clone(), clock.clone());
    let access = FinanceAccess::new(db.clone(), audit, clock, registry.into());
    let code = token(&access, command).await;
    db.close().await;
    code
}

async fn token(access: &FinanceAccess, command: TokenCommand) -> ExitCode {
    let result = match command {
        TokenCommand::Create { tenant, label } => {
            access.create(&tenant, label.as_deref()).await.map(|(info, secret)| {
                println!("created finance token {} for tenant {}", info.token_id, info.tenant_id);
                println!("token (shown only now; store it safely): {secret}");
            })
        }
        TokenCommand::Revoke { token_id } => access.revoke(&token_id).await.map(|outcome| match outcome {
            Revocation::Revoked => println!("revoked {token_id}"),
            Revocation::AlreadyRevoked => println!("{token_id} was revoked already"),
        }),
        TokenCommand::List { tenant } => {
            access.list(tenant.as_deref()).await.map_err(TokenAdminError::from).map(|tokens| {
                if tokens.is_empty() {
                    println!("no finance tokens");
                }
                for token in &tokens {
                    println!("{}", list_line(token));
                }
            })
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e @ (TokenAdminError::UnknownTenant(_) | TokenAdminError::UnknownToken(_))) => {
            eprintln!("pforte: {e}");
            ExitCode::from(EXIT_INVALID_CONFIG)
        }
        Err(e) => {
            eprintln!("pforte: {e}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

fn list_line(token: &TokenInfo) -> String {
    let time = |millis: i64| berlin_time(millis).format("%Y-%m-%d %H:%M").to_string();
    let state = match token.revoked_at {
        Some(at) => format!("revoked {}", time(at)),
        None => "active".to_owned(),
    };
    format!(
        "{}  tenant {}  created {}  {}  {}",
        token.token_id,
        token.tenant_id,
        time(token.created_at),
        state,
        token.label.as_deref().unwrap_or("-")
    )
}

//! `pforte notifications list|show|redeliver`: the delivery log of notifications to online services.
//! Output is for people: aligned columns, UTC times. It never shows the signing secret nor the
//! payload (only its event type), and URLs without query or credentials.

use std::sync::Arc;

use clap::Subcommand;

use crate::audit::AuditLog;
use crate::clock::SystemClock;
use crate::payment::delivery_log::{DeliveryLog, DeliveryState, Notification, Redelivery};
use crate::store::outbox::AttemptRow;
use crate::store::Database;

#[derive(Debug, Subcommand)]
pub enum NotificationsCommand {
    /// List messages, newest first: id, transaction, receiver host, state, attempts, last HTTP status
    /// and when the next attempt is due.
    List {
        /// Only messages about this transaction. Transaction ids are base64url and may begin with
        /// `-`, so the value is taken as it is rather than read as another option.
        #[arg(long, value_name = "ID", allow_hyphen_values = true)]
        transaction: Option<String>,
        /// Only messages in this state: pending, delivered, failed (given up) or disabled (the
        /// receiver answered 410 Gone).
        #[arg(long, value_parser = parse_state)]
        state: Option<DeliveryState>,
        /// At most this many messages.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Show one message and every delivery attempt (time, HTTP status, duration, error).
    Show {
        /// The message id (`msg_...`, the `webhook-id` the receiver saw).
        id: String,
    },
    /// Put a failed or disabled message back in line; the worker delivers it within seconds. Recorded
    /// in the audit log.
    Redeliver {
        /// The message id (`msg_...`).
        id: String,
    },
}

fn parse_state(text: &str) -> Result<DeliveryState, String> {
    DeliveryState::parse(text).ok_or_else(|| "expected pending, delivered, failed or disabled".to_owned())
}

pub(super) async fn run(db: Database, command: NotificationsCommand) -> anyhow::Result<()> {
    let clock = Arc::new(SystemClock);
    let log = DeliveryLog::new(db.clone(), AuditLog::new(db, clock.clone()), clock);
    match command {
        NotificationsCommand::List { transaction, state, limit } => {
            let messages = log.list(transaction.as_deref(), state, limit).await?;
            print!("{}", list_table(&messages));
        }
        NotificationsCommand::Show { id } => match log.show(&id).await? {
            Some((message, attempts)) => print!("{}", details(&message, &attempts)),
            None => anyhow::bail!("no notification {id}"),
        },
        NotificationsCommand::Redeliver { id } => match log.redeliver(&id, "operator").await? {
            Redelivery::Queued { was } => println!("{id} ({was}) is back in line for delivery"),
            Redelivery::Unknown => anyhow::bail!("no notification {id}"),
            Redelivery::NotGivenUp(state) => {
                anyhow::bail!("{id} is {state}: only failed or disabled messages can be redelivered")
            }
        },
    }
    Ok(())
}

fn list_table(messages: &[Notification]) -> String {
    if messages.is_empty() {
        return "no notifications\n".to_owned();
    }
    let header = ["ID", "TRANSACTION", "HOST", "STATE", "ATTEMPTS", "LAST STATUS", "NEXT ATTEMPT"].map(str::to_owned);
    let rows: Vec<[String; 7]> = messages
        .iter()
        .map(|m| {
            [
                m.id.clone(),
                m.transaction_id.clone(),
                host(&m.url),
                m.state.to_string(),
                m.attempts.to_string(),
                or_dash(m.last_status),
                m.next_attempt_at.map_or_else(|| "-".to_owned(), time),
            ]
        })
        .collect();
    table(&header, &rows)
}

fn details(message: &Notification, attempts: &[AttemptRow]) -> String {
    let state = match (&message.state, &message.gave_up_reason) {
        (DeliveryState::Failed | DeliveryState::Disabled, Some(reason)) => format!("{} ({reason})", message.state),
        _ => message.state.to_string(),
    };
    let fields = [
        ("id", message.id.clone()),
        ("transaction", message.transaction_id.clone()),
        ("url", shown_url(&message.url)),
        ("event", message.event.clone().unwrap_or_else(|| "-".to_owned())),
        ("state", state),
        ("created", time(message.created_at)),
        ("attempts", message.attempts.to_string()),
        ("next attempt", message.next_attempt_at.map_or_else(|| "-".to_owned(), time)),
        ("delivered", message.delivered_at.map_or_else(|| "-".to_owned(), time)),
        ("given up", message.gave_up_at.map_or_else(|| "-".to_owned(), time)),
    ];
    let mut out: String = fields.iter().map(|(name, value)| format!("{name:<13} {value}\n")).collect();
    out.push('\n');
    if attempts.is_empty() {
        out.push_str("no delivery attempts yet\n");
        return out;
    }
    let header = ["#", "TIME", "STATUS", "DURATION", "ERROR"].map(str::to_owned);
    let rows: Vec<[String; 5]> = attempts
        .iter()
        .enumerate()
        .map(|(n, a)| {
            [
                (n + 1).to_string(),
                time(a.attempted_at),
                or_dash(a.http_status),
                format!("{} ms", a.duration_ms),
                a.error.clone().unwrap_or_else(|| "-".to_owned()),
            ]
        })
        .collect();
    out.push_str(&table(&header, &rows));
    out
}

/// Left-aligned columns two spaces apart, the last one unpadded.
fn table<const N: usize>(header: &[String; N], rows: &[[String; N]]) -> String {
    let mut widths = [0; N];
    for row in std::iter::once(header).chain(rows) {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |row: &[String; N]| {
        let cells: Vec<String> = row.iter().zip(widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
        format!("{}\n", cells.join("  ").trim_end())
    };
    std::iter::once(header).chain(rows).map(line).collect()
}

fn or_dash(value: Option<i64>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

fn time(millis: i64) -> String {
    chrono::DateTime::from_timestamp_millis(millis)
        .map_or_else(|| millis.to_string(), |t| t.format("%Y-%m-%d %H:%M:%SZ").to_string())
}

fn host(url: &str) -> String {
    url::Url::parse(url).ok().and_then(|u| u.host_str().map(str::to_owned)).unwrap_or_else(|| "?".to_owned())
}

/// Scheme, host, port and path: a query or user info may carry a token of the receiver's.
fn shown_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            parsed.set_query(None);
            parsed.set_fragment(None);
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.to_string()
        }
        Err(_) => "?".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(state: DeliveryState) -> Notification {
        Notification {
            id: "msg_1".into(),
            transaction_id: "T1".into(),
            url: "https://user:pw@service.example:8443/hook?token=abc".into(),
            event: Some("payment.status_changed".into()),
            state,
            attempts: 1,
            last_status: Some(410),
            created_at: 1_764_410_400_000,
            next_attempt_at: None,
            delivered_at: None,
            gave_up_at: Some(1_764_410_401_000),
            gave_up_reason: Some("the endpoint answered 410 Gone".into()),
        }
    }

    #[test]
    fn a_transaction_id_that_begins_with_a_hyphen_is_a_value() {
        use clap::Parser;
        let cli = crate::cli::Cli::try_parse_from([
            "pforte",
            "notifications",
            "list",
            "--transaction",
            "-5IekHY7dTMxq6dAkMNOfYDdnIcTRoLfx4W68stBn1I",
        ])
        .expect("parses");
        let text = format!("{cli:?}");
        assert!(text.contains("\"-5IekHY7dTMxq6dAkMNOfYDdnIcTRoLfx4W68stBn1I\""), "{text}");
    }

    #[test]
    fn the_list_aligns_columns_and_names_the_host_only() {
        let text = list_table(&[message(DeliveryState::Disabled)]);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("ID     TRANSACTION  HOST"), "{text}");
        assert!(lines[1].contains("service.example") && lines[1].contains("disabled"), "{text}");
        assert!(!text.contains("token") && !text.contains("pw"), "{text}");
        assert_eq!(list_table(&[]), "no notifications\n");
    }

    #[test]
    fn details_show_every_attempt_and_hide_query_and_credentials() {
        let attempt =
            AttemptRow { attempted_at: 1_764_410_401_000, http_status: Some(410), error: None, duration_ms: 12 };
        let text = details(&message(DeliveryState::Disabled), &[attempt]);
        assert!(text.contains("https://service.example:8443/hook\n"), "{text}");
        assert!(text.contains("disabled (the endpoint answered 410 Gone)"), "{text}");
        assert!(text.contains("2025-11-29 10:00:01Z  410     12 ms"), "{text}");
        assert!(!text.contains("token") && !text.contains("pw@"), "{text}");
    }
}

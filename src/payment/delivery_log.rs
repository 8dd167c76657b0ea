//! The delivery log of notifications to online services, for operators: which messages are pending,
//! delivered, failed (given up after three days or a permanent fault) or disabled (the receiver
//! answered 410 Gone), every attempt with its answer, and redelivery of a given-up message once the
//! receiver is fixed. Redelivery is recorded in the audit log in the transaction that makes it.

use std::fmt;

use serde_json::json;

use crate::audit::{AuditEvent, AuditLog};
use crate::clock::SharedClock;
use crate::store::notification_log::{self, LoggedNotification, NotificationQuery};
use crate::store::outbox::AttemptRow;
use crate::store::{Database, StorageError};

/// Where a message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryState {
    /// Not delivered yet; the worker tries again at `next_attempt_at`.
    Pending,
    Delivered,
    /// Given up: not delivered within three days, or a fault retrying cannot fix.
    Failed,
    /// Given up because the receiver answered 410 Gone (it switched the endpoint off).
    Disabled,
}

impl DeliveryState {
    pub const ALL: [DeliveryState; 4] =
        [DeliveryState::Pending, DeliveryState::Delivered, DeliveryState::Failed, DeliveryState::Disabled];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
            DeliveryState::Disabled => "disabled",
        }
    }

    pub fn parse(text: &str) -> Option<DeliveryState> {
        DeliveryState::ALL.into_iter().find(|state| state.as_str() == text)
    }
}

impl fmt::Display for DeliveryState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One message as the log shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Notification {
    pub id: String,
    pub transaction_id: String,
    pub url: String,
    /// The payload's `type`, e.g. `payment.status_changed` (the payload itself is not shown).
    pub event: Option<String>,
    pub state: DeliveryState,
    pub attempts: i64,
    pub last_status: Option<i64>,
    pub created_at: i64,
    /// When the worker tries next; only while pending.
    pub next_attempt_at: Option<i64>,
    pub delivered_at: Option<i64>,
    pub gave_up_at: Option<i64>,
    pub gave_up_reason: Option<String>,
}

impl Notification {
    fn from_logged(logged: LoggedNotification) -> Result<Notification, StorageError> {
        let state = DeliveryState::parse(&logged.state)
            .ok_or_else(|| StorageError::Corrupt(format!("unknown delivery state {}", logged.state)))?;
        let message = logged.message;
        let event = serde_json::from_str::<serde_json::Value>(&message.payload)
            .ok()
            .and_then(|payload| payload["type"].as_str().map(str::to_owned));
        Ok(Notification {
            id: message.id,
            transaction_id: message.transaction_id,
            url: message.url,
            event,
            state,
            attempts: message.attempts,
            last_status: logged.last_status,
            created_at: message.created_at,
            next_attempt_at: (state == DeliveryState::Pending).then_some(message.next_attempt_at),
            delivered_at: message.delivered_at,
            gave_up_at: message.gave_up_at,
            gave_up_reason: message.gave_up_reason,
        })
    }
}

/// What `redeliver` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Redelivery {
    /// Back in line; it was in this state before.
    Queued {
        was: DeliveryState,
    },
    Unknown,
    /// Only given-up messages are put back; this one is delivered or still pending.
    NotGivenUp(DeliveryState),
}

#[derive(Clone, Debug)]
pub(crate) struct DeliveryLog {
    db: Database,
    audit: AuditLog,
    clock: SharedClock,
}

impl DeliveryLog {
    pub(crate) fn new(db: Database, audit: AuditLog, clock: SharedClock) -> Self {
        DeliveryLog { db, audit, clock }
    }

    /// Newest first, at most `limit`.
    pub(crate) async fn list(
        &self,
        transaction_id: Option<&str>,
        state: Option<DeliveryState>,
        limit: u32,
    ) -> Result<Vec<Notification>, StorageError> {
        let query = NotificationQuery {
            transaction_id: transaction_id.map(str::to_owned),
            state: state.map(|s| s.as_str().to_owned()),
            limit: i64::from(limit),
        };
        self.db.logged_notifications(&query).await?.into_iter().map(Notification::from_logged).collect()
    }

    /// One message with every attempt, oldest first.
    pub(crate) async fn show(&self, id: &str) -> Result<Option<(Notification, Vec<AttemptRow>)>, StorageError> {
        let Some(logged) = self.db.logged_notification(id).await? else { return Ok(None) };
        let attempts = self.db.notification_attempts(id).await?;
        Ok(Some((Notification::from_logged(logged)?, attempts)))
    }

    /// Puts a failed or disabled message back in line, due now; `actor` goes to the audit log.
    pub(crate) async fn redeliver(&self, id: &str, actor: &str) -> Result<Redelivery, StorageError> {
        let Some(logged) = self.db.logged_notification(id).await? else { return Ok(Redelivery::Unknown) };
        let before = Notification::from_logged(logged)?;
        if !matches!(before.state, DeliveryState::Failed | DeliveryState::Disabled) {
            return Ok(Redelivery::NotGivenUp(before.state));
        }
        let mut tx = self.db.begin_write().await?;
        // The guard in the UPDATE decides: the worker may have changed the message meanwhile.
        if !notification_log::requeue_given_up(&mut tx, id, self.clock.now_millis()).await? {
            return Ok(Redelivery::NotGivenUp(DeliveryState::Pending));
        }
        let details = json!({ "transaction": before.transaction_id, "was": before.state.as_str() });
        self.audit.append_in(&mut tx, AuditEvent::new("notification.redelivered", actor, id, details)).await?;
        tx.commit().await.map_err(StorageError::from)?;
        Ok(Redelivery::Queued { was: before.state })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_read_back_as_written() {
        for state in DeliveryState::ALL {
            assert_eq!(DeliveryState::parse(state.as_str()), Some(state));
        }
        assert_eq!(DeliveryState::parse("gone"), None);
    }
}

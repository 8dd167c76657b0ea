//! Notifications to online services: a signed message (Standard Webhooks) on every status change,
//! delivered at least once. Messages are written to the outbox in the transaction of the change; this
//! worker delivers them with exponential backoff and jitter for up to three days. Only a 2xx answer
//! counts as delivered; 410 Gone means the service switched the endpoint off, so pforte stops.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use rand::Rng;
use serde_json::Value;
use sqlx::AnyConnection;
use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;
use crate::crypto::webhook::{WebhookSecret, ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use crate::http_client::{is_refused_address, GuardedClient};
use crate::registry::{Client, SharedRegistry};
use crate::store::outbox::{self, AttemptOutcome, AttemptRow, OutboxRow};
use crate::store::payments::PaymentRow;
use crate::store::{Database, StorageError};

/// Give up three days after the message was written.
pub const GIVE_UP_AFTER_MILLIS: i64 = 3 * 24 * 3600 * 1000;
const FIRST_RETRY_MILLIS: i64 = 30_000;
const LONGEST_RETRY_MILLIS: i64 = 6 * 3600 * 1000;
/// How long a worker holds claimed messages; a worker that dies lets them go after this.
const LEASE_MILLIS: i64 = 60_000;
const BATCH: i64 = 50;
const POLL: Duration = Duration::from_secs(1);

/// What one delivery round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    pub delivered: usize,
    pub retried: usize,
    pub gave_up: usize,
}

#[derive(Clone)]
pub struct Notifier {
    db: Database,
    registry: SharedRegistry,
    http: GuardedClient,
    clock: SharedClock,
}

impl Notifier {
    pub fn new(db: Database, registry: SharedRegistry, http: GuardedClient, clock: SharedClock) -> Self {
        Notifier { db, registry, http, clock }
    }

    /// Writes a message for `client` inside the caller's transaction; nothing when the client has no
    /// notification URL. Returns the message id (the `webhook-id`).
    pub async fn enqueue_in(
        conn: &mut AnyConnection,
        client: &Client,
        transaction_id: &str,
        payload: &Value,
        now: i64,
    ) -> Result<Option<String>, StorageError> {
        Self::enqueue_to(conn, client, None, transaction_id, payload, now).await
    }

    /// Like [`Notifier::enqueue_in`], to the payment's own `notifyUrl` when it has one (the service
    /// asked for it at creation; the message is still signed with the service's secret).
    pub async fn enqueue_for_payment(
        conn: &mut AnyConnection,
        client: &Client,
        payment: &PaymentRow,
        payload: &Value,
        now: i64,
    ) -> Result<Option<String>, StorageError> {
        Self::enqueue_to(conn, client, payment.notify_url.as_deref(), &payment.transaction_id, payload, now).await
    }

    async fn enqueue_to(
        conn: &mut AnyConnection,
        client: &Client,
        notify_url: Option<&str>,
        transaction_id: &str,
        payload: &Value,
        now: i64,
    ) -> Result<Option<String>, StorageError> {
        let Some(url) = notify_url.or(client.notification_url.as_ref().map(|url| url.as_str())) else {
            return Ok(None);
        };
        let id = format!("msg_{}", crate::crypto::random_token());
        let row = OutboxRow {
            id: id.clone(),
            client_id: client.id.as_str().to_owned(),
            transaction_id: transaction_id.to_owned(),
            url: url.to_owned(),
            payload: payload.to_string(),
            created_at: now,
            next_attempt_at: now,
            attempts: 0,
            delivered_at: None,
            gave_up_at: None,
            gave_up_reason: None,
        };
        outbox::enqueue(conn, &row).await?;
        Ok(Some(id))
    }

    /// Delivers what is due now. Several workers (instances) may run this at once. Receivers are
    /// served side by side, each one's messages in order: a receiver that hangs holds up only its
    /// own messages, never another service's.
    pub async fn deliver_due(&self) -> Result<Round, StorageError> {
        let now = self.clock.now_millis();
        let due = self.db.claim_due_notifications(now, now + LEASE_MILLIS, BATCH).await?;
        let mut by_receiver: BTreeMap<String, Vec<OutboxRow>> = BTreeMap::new();
        for message in due {
            by_receiver.entry(message.url.clone()).or_default().push(message);
        }
        let rounds = join_all(by_receiver.into_values().map(|messages| self.deliver_to_receiver(messages))).await;
        let mut round = Round::default();
        for part in rounds {
            let part = part?;
            round.delivered += part.delivered;
            round.retried += part.retried;
            round.gave_up += part.gave_up;
        }
        Ok(round)
    }

    /// One receiver's messages, oldest first. Once the receiver does not answer at all (timeout,
    /// reset, refused) the rest are not sent this round: each would cost the timeout again. They
    /// stay leased and come back when the lease ends. An answer, even a 5xx, costs little: the
    /// next message is tried and gets its own backoff.
    async fn deliver_to_receiver(&self, mut messages: Vec<OutboxRow>) -> Result<Round, StorageError> {
        messages.sort_by_key(|m| (m.next_attempt_at, m.created_at));
        let mut round = Round::default();
        for message in messages {
            let (attempt, outcome) = self.attempt(&message).await;
            let unanswered = attempt.http_status.is_none() && matches!(outcome, AttemptOutcome::RetryAt(_));
            match outcome {
                AttemptOutcome::Delivered => round.delivered += 1,
                AttemptOutcome::RetryAt(_) => round.retried += 1,
                AttemptOutcome::GiveUp(_) => round.gave_up += 1,
            }
            self.db.record_notification_attempt(&message.id, &attempt, &outcome).await?;
            crate::telemetry::metrics::notification_attempt(match outcome {
                AttemptOutcome::Delivered => "delivered",
                AttemptOutcome::RetryAt(_) => "retry",
                AttemptOutcome::GiveUp(_) => "gave_up",
            });
            if unanswered {
                break;
            }
        }
        Ok(round)
    }

    /// Runs delivery rounds until shutdown. After a full batch the next round starts at once: pausing
    /// after every batch capped delivery at one batch per poll interval (50 messages a second) however
    /// long the queue.
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            let full = match self.deliver_due().await {
                Ok(round) if round != Round::default() => {
                    tracing::info!(?round, "notification round");
                    round.delivered + round.retried + round.gave_up >= BATCH as usize
                }
                Ok(_) => false,
                Err(e) => {
                    tracing::warn!(error = %e, "notification round failed; retrying");
                    false
                }
            };
            if full && !shutdown.is_cancelled() {
                continue;
            }
            tokio::select! {
                () = tokio::time::sleep(POLL) => {}
                () = shutdown.cancelled() => return,
            }
        }
    }

    async fn attempt(&self, message: &OutboxRow) -> (AttemptRow, AttemptOutcome) {
        let now = self.clock.now_millis();
        let started = Instant::now();
        let span = crate::http_client::outbound_span("notification.deliver", &message.client_id);
        let result = tracing::Instrument::instrument(self.send(message, now), span).await;
        let attempt = |status: Option<u16>, error: Option<String>| AttemptRow {
            attempted_at: now,
            http_status: status.map(i64::from),
            error,
            duration_ms: i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX),
        };
        match result {
            Ok(status) if (200..300).contains(&status) => (attempt(Some(status), None), AttemptOutcome::Delivered),
            Ok(410) => (attempt(Some(410), None), AttemptOutcome::GiveUp("the endpoint answered 410 Gone".into())),
            Ok(status) => (attempt(Some(status), None), self.retry_or_give_up(message, now)),
            Err(Failure::Permanent(reason)) => (attempt(None, Some(reason.clone())), AttemptOutcome::GiveUp(reason)),
            Err(Failure::Transient(error)) => (attempt(None, Some(error)), self.retry_or_give_up(message, now)),
        }
    }

    async fn send(&self, message: &OutboxRow, now: i64) -> Result<u16, Failure> {
        let registry = self.registry.current();
        let client = registry
            .client(&message.client_id)
            .ok_or_else(|| Failure::Permanent("the online service is no longer registered".into()))?;
        let secret = client
            .notification_secret
            .as_ref()
            .ok_or_else(|| Failure::Permanent("the online service has no notification secret".into()))?;
        let secret = WebhookSecret::parse(secret).map_err(|e| Failure::Permanent(e.to_string()))?;
        let timestamp = now / 1000;
        let signature = secret
            .sign(&message.id, timestamp, message.payload.as_bytes())
            .map_err(|e| Failure::Permanent(e.to_string()))?;
        // A URL out of reach (SECURITY.md #28) is refused before anything is sent, for good: it will
        // not change. A name resolving out of reach when connecting is a failed attempt, retried
        // like any other (the service may fix its DNS). The log names the host only, never the
        // URL's path, query or credentials.
        let request = self.http.post(&message.url).map_err(|refused| {
            tracing::warn!(message_id = %message.id, host = %host_of(&message.url), "notification URL out of reach");
            Failure::Permanent(refused.to_string())
        })?;
        let response = crate::http_client::with_trace_context(request)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(ID_HEADER, &message.id)
            .header(TIMESTAMP_HEADER, timestamp.to_string())
            .header(SIGNATURE_HEADER, signature)
            .body(message.payload.clone())
            .send()
            .await
            // The error names the kind of failure (connect, timeout), never the payload.
            .map_err(|e| {
                crate::http_client::record_failure();
                Failure::Transient(if e.is_timeout() {
                    "timeout".into()
                } else if is_refused_address(&e) {
                    tracing::warn!(message_id = %message.id, host = %host_of(&message.url), "notification host resolves out of reach");
                    crate::http_client::REFUSED_ADDRESS.into()
                } else {
                    "connection failed".into()
                })
            })?;
        crate::http_client::record_status(response.status());
        Ok(response.status().as_u16())
    }

    /// Exponential backoff from 30 s up to 6 h, ±20 % jitter so retries of many messages spread out.
    fn retry_or_give_up(&self, message: &OutboxRow, now: i64) -> AttemptOutcome {
        let exponent = u32::try_from(message.attempts.clamp(0, 20)).unwrap_or(20);
        let base = FIRST_RETRY_MILLIS.saturating_mul(1i64 << exponent).min(LONGEST_RETRY_MILLIS);
        let jitter = rand::thread_rng().gen_range(-(base / 5)..=base / 5);
        let next = now + base + jitter;
        if next - message.created_at > GIVE_UP_AFTER_MILLIS {
            AttemptOutcome::GiveUp("not delivered within three days".into())
        } else {
            AttemptOutcome::RetryAt(next)
        }
    }
}

/// The host of a stored URL, for logs.
fn host_of(url: &str) -> String {
    url::Url::parse(url).ok().and_then(|url| url.host_str().map(str::to_owned)).unwrap_or_default()
}

enum Failure {
    /// Worth trying again later (connection refused, timeout).
    Transient(String),
    /// Will not get better by retrying (service gone from the registry).
    Permanent(String),
}

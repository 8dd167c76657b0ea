//! Callbacks to a destination's Fachverfahren, as FIT-Connect defines them: a `new-submissions` message
//! when a submission is complete, signed with HMAC-SHA512 over `"{timestamp}.{body}"` (hex in
//! `Callback-Authentication`, Unix seconds in `Callback-Timestamp`) under the destination's callback
//! secret. Written in the submit's transaction, delivered by [`CallbackWorker`] outside any transaction
//! with retries; best effort, since the subscriber's polling stays the source of truth. The sending
//! online service hears of status changes through its existing notifications (`sender_notification`)
//! and, when its announcement named one, its own FIT-Connect callback (`new-events`,
//! `sender_callback`), delivered here the same way under its sealed secret.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use sha2::Sha512;
use tokio_util::sync::CancellationToken;

use super::sender_callback;
use crate::clock::SharedClock;
use crate::crypto::MasterKey;
use crate::http_client::GuardedClient;
use crate::model::SubmissionStatus;
use crate::registry::{Client, SharedRegistry};
use crate::store::outbox::OutboxRow;
use crate::store::transfer::SubmissionRow;
use crate::store::transfer_callbacks::{CallbackOutcome, CallbackRow};
use crate::store::{Database, StorageError};

pub const CALLBACK_AUTHENTICATION: &str = "Callback-Authentication";
pub const CALLBACK_TIMESTAMP: &str = "Callback-Timestamp";
const NEW_SUBMISSIONS: &str = "https://schema.fitko.de/fit-connect/submission-api/callbacks/new-submissions";
const FIRST_RETRY_MILLIS: i64 = 30_000;
const LONGEST_RETRY_MILLIS: i64 = 3_600_000;
/// After a day the subscriber has long polled; the message is given up.
const GIVE_UP_AFTER_MILLIS: i64 = 24 * 3_600_000;
const LEASE_MILLIS: i64 = 60_000;
const BATCH: i64 = 20;
const POLL: Duration = Duration::from_secs(1);

/// The `new-submissions` message for a submission just submitted.
pub(super) fn new_submission(submission: &SubmissionRow, now: i64) -> CallbackRow {
    let payload = json!({
        "type": NEW_SUBMISSIONS,
        "submissions": [{
            "destinationId": submission.destination_id,
            "submissionId": submission.submission_id,
            "caseId": submission.case_id,
        }],
    });
    CallbackRow {
        id: uuid::Uuid::new_v4().to_string(),
        destination_id: submission.destination_id.clone(),
        payload: payload.to_string(),
        created_at: now,
        attempts: 0,
        submission_id: None,
    }
}

/// The sending online service's notification of a status change (`transfer.status_changed`), for its
/// Standard Webhooks outbox, which the notification worker delivers signed with the service's secret;
/// `None` when the service has no notification URL.
pub(super) fn sender_notification(
    sender: &Client,
    submission: &SubmissionRow,
    status: SubmissionStatus,
    at: chrono::DateTime<chrono::Utc>,
    now: i64,
) -> Option<OutboxRow> {
    let url = sender.notification_url.as_ref()?;
    let payload = json!({
        "type": "transfer.status_changed",
        "timestamp": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "data": {
            "destinationId": submission.destination_id,
            "submissionId": submission.submission_id,
            "caseId": submission.case_id,
            "status": status.as_str(),
        },
    });
    Some(OutboxRow {
        id: format!("msg_{}", crate::crypto::random_token()),
        client_id: sender.id.as_str().to_owned(),
        // The outbox's reference column: the payment's transaction id there, the submission here.
        transaction_id: submission.submission_id.clone(),
        url: url.as_str().to_owned(),
        payload: payload.to_string(),
        created_at: now,
        next_attempt_at: now,
        attempts: 0,
        delivered_at: None,
        gave_up_at: None,
        gave_up_reason: None,
    })
}

/// Hex HMAC-SHA512 over `"{timestamp}.{body}"` with the callback secret, as FIT-Connect signs callbacks.
pub fn callback_signature(secret: &str, timestamp: i64, body: &str) -> String {
    // HMAC takes a key of any length; this cannot fail.
    let mut mac = match Hmac::<Sha512>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(format!("{timestamp}.{body}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Delivers due callbacks; several instances may run it on one database (each claims with a lease).
#[derive(Clone)]
pub struct CallbackWorker {
    db: Database,
    registry: SharedRegistry,
    http: GuardedClient,
    clock: SharedClock,
    /// Opens senders' sealed callback secrets.
    master: Arc<MasterKey>,
}

impl CallbackWorker {
    pub fn new(
        db: Database,
        registry: SharedRegistry,
        http: GuardedClient,
        clock: SharedClock,
        master: Arc<MasterKey>,
    ) -> Self {
        CallbackWorker { db, registry, http, clock, master }
    }

    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            match self.deliver_due().await {
                Ok(0) => {}
                Ok(attempts) if attempts as i64 >= BATCH && !shutdown.is_cancelled() => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "Datentransfer callback round failed; retrying"),
            }
            tokio::select! {
                () = tokio::time::sleep(POLL) => {}
                () = shutdown.cancelled() => return,
            }
        }
    }

    /// One round: claims the due messages and attempts each once. Returns how many were attempted.
    pub async fn deliver_due(&self) -> Result<usize, StorageError> {
        let now = self.clock.now_millis();
        let claimed = self.db.claim_transfer_callbacks(now, now + LEASE_MILLIS, BATCH).await?;
        for message in &claimed {
            let outcome = self.attempt(message).await;
            self.db.record_transfer_callback(&message.id, self.clock.now_millis(), &outcome).await?;
        }
        Ok(claimed.len())
    }

    /// Where a message goes and the secret it is signed with: the sender's own callback of the
    /// submission it names, else the destination's.
    async fn recipient(&self, message: &CallbackRow) -> Result<(String, SecretString), CallbackOutcome> {
        let give_up = |reason: String| CallbackOutcome::GiveUp(reason);
        let Some(submission_id) = &message.submission_id else {
            let registry = self.registry.current();
            let callback = registry.destination(&message.destination_id).and_then(|d| d.callback.as_ref());
            let callback = callback.ok_or_else(|| give_up("the destination has no callback any more".into()))?;
            return Ok((callback.url.as_str().to_owned(), callback.secret.clone()));
        };
        // The database away is not the message's fault: it is tried again.
        let retry =
            |e: StorageError| CallbackOutcome::RetryAt(self.clock.now_millis() + FIRST_RETRY_MILLIS, e.to_string());
        let submission = self.db.transfer_submission(submission_id).await.map_err(retry)?;
        match submission.and_then(|s| s.sender_callback_url.zip(s.sender_callback_secret)) {
            Some((url, sealed)) => {
                Ok((url, sender_callback::open(&self.master, submission_id, &sealed).map_err(give_up)?))
            }
            None => Err(give_up("the submission and its callback are gone".into())),
        }
    }

    async fn attempt(&self, message: &CallbackRow) -> CallbackOutcome {
        let (url, secret) = match self.recipient(message).await {
            Ok(recipient) => recipient,
            Err(outcome) => return outcome,
        };
        let now = self.clock.now_millis();
        let timestamp = now / 1000;
        let signature = callback_signature(secret.expose_secret(), timestamp, &message.payload);
        let request = match self.http.post(&url) {
            Ok(request) => request,
            Err(refused) => return CallbackOutcome::GiveUp(refused.to_string()),
        };
        let sent = request
            .header("content-type", "application/json")
            .header(CALLBACK_TIMESTAMP, timestamp.to_string())
            .header(CALLBACK_AUTHENTICATION, signature)
            .body(message.payload.clone())
            .send()
            .await;
        let error = match sent {
            Ok(response) if response.status().is_success() => return CallbackOutcome::Delivered,
            Ok(response) => format!("answered {}", response.status().as_u16()),
            Err(e) => format!("not reached: {}", e.without_url()),
        };
        let to = if message.submission_id.is_some() { "sender" } else { "destination" };
        tracing::info!(destination = %message.destination_id, to, %error, "Datentransfer callback not delivered");
        if now - message.created_at >= GIVE_UP_AFTER_MILLIS {
            return CallbackOutcome::GiveUp(error);
        }
        let shift = u32::try_from(message.attempts.clamp(0, 20)).unwrap_or(20);
        let pause = FIRST_RETRY_MILLIS.saturating_mul(1i64 << shift).min(LONGEST_RETRY_MILLIS);
        CallbackOutcome::RetryAt(now + pause, error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hex_hmac_sha512_over_timestamp_dot_body() {
        // Computed with OpenSSL, not with the crate the code uses.
        let key = openssl::pkey::PKey::hmac(b"a-callback-secret-of-32-characters!").unwrap_or_else(|_| unreachable!());
        let mut signer =
            openssl::sign::Signer::new(openssl::hash::MessageDigest::sha512(), &key).unwrap_or_else(|_| unreachable!());
        signer.update(b"1764590400.{\"type\":\"x\"}").unwrap_or_else(|_| unreachable!());
        let expected = hex::encode(signer.sign_to_vec().unwrap_or_else(|_| unreachable!()));
        assert_eq!(
            callback_signature("a-callback-secret-of-32-characters!", 1_764_590_400, "{\"type\":\"x\"}"),
            expected
        );
        assert_eq!(expected.len(), 128);
    }
}

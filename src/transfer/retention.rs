//! Datentransfer's deadlines and retention, as FIT-Connect sets them (each configurable in
//! `[transfer]`). Each round of [`RetentionWorker`]:
//! 1. deletes submissions announced and never submitted after `delete_incomplete_after_days`, with
//!    their attachments and chunks;
//! 2. deletes the chunks of uploads that never completed (a crash, the stream timeout) after
//!    `orphan_upload_grace_secs`;
//! 3. announces a submission still waiting to its Fachverfahren again (`new-submissions` callback) on
//!    each of `reminder_days` after submit, once per day;
//! 4. rejects a submission not decided within `reject_after_days` with a `reject-submission` SET pforte
//!    signs, and tells the sender as for a subscriber's reject;
//! 5. deletes the encrypted content `delete_content_after_days` after the decision (accept or reject),
//!    with a `delete-submission` SET; the row and the event log stay;
//! 6. deletes the event log and what is left of the submission `event_log_days` after the decision.
//!
//! Every step works in bounded batches and changes a row only if it is still in the state selected
//! (`store::transfer_retention`), so instances may run the worker side by side. Logs carry counts only.

use std::time::Duration;

use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::events::{self, EVENT_DELETE, EVENT_REJECT};
use super::{callbacks, sender_callback, TransferError, TransferService};
use crate::model::SubmissionStatus;
use crate::registry::SharedRegistry;
use crate::store::transfer::SubmissionRow;
use crate::telemetry::metrics;

/// The problem type of pforte's automatic reject (documented in docs/datentransfer.md).
pub const NOT_FETCHED_IN_TIME: &str = "urn:pforte:problem:transfer_not_fetched_in_time";
const BATCH: i64 = 50;
const DAY_MILLIS: i64 = 24 * 3600 * 1000;

/// What one round did; each count is also a metric (`pforte_transfer_retention_total{action}`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RetentionRound {
    pub incomplete_deleted: u64,
    pub orphan_uploads_deleted: u64,
    pub reminded: u64,
    pub rejected: u64,
    pub content_deleted: u64,
    pub event_logs_deleted: u64,
}

#[derive(Clone)]
pub struct RetentionWorker {
    transfer: TransferService,
    registry: SharedRegistry,
}

fn days_before(now: i64, days: u32) -> i64 {
    now.saturating_sub(i64::from(days).saturating_mul(DAY_MILLIS))
}

impl RetentionWorker {
    pub fn new(transfer: TransferService, registry: SharedRegistry) -> Self {
        RetentionWorker { transfer, registry }
    }

    /// A round now and then every `transfer.retention_interval_secs` until `shutdown`; a failed round
    /// is logged and tried again at the next.
    pub async fn run(self, shutdown: CancellationToken) {
        let interval = Duration::from_secs(self.transfer.limits.retention_interval_secs.max(1));
        loop {
            match self.run_once().await {
                Ok(round) if round != RetentionRound::default() => tracing::info!(
                    incomplete_deleted = round.incomplete_deleted,
                    orphan_uploads_deleted = round.orphan_uploads_deleted,
                    reminded = round.reminded,
                    rejected = round.rejected,
                    content_deleted = round.content_deleted,
                    event_logs_deleted = round.event_logs_deleted,
                    "Datentransfer deadlines and retention carried out"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "Datentransfer retention failed; retrying next interval"),
            }
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = shutdown.cancelled() => return,
            }
        }
    }

    /// One round of every step, each until nothing more is due.
    pub async fn run_once(&self) -> Result<RetentionRound, TransferError> {
        let settings = &self.transfer.limits;
        let db = &self.transfer.db;
        let now = self.transfer.clock.now_millis();
        let mut round = RetentionRound::default();

        let announced_before = days_before(now, settings.delete_incomplete_after_days);
        round.incomplete_deleted = drain(|| db.purge_incomplete_transfers(announced_before, BATCH)).await?;
        metrics::transfer_retention("incomplete_deleted", round.incomplete_deleted);

        let grace = i64::try_from(settings.orphan_upload_grace_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        let started_before = now.saturating_sub(grace);
        round.orphan_uploads_deleted = drain(|| db.purge_orphan_transfer_uploads(started_before, BATCH)).await?;
        metrics::transfer_retention("orphan_upload_deleted", round.orphan_uploads_deleted);

        round.reminded = self.remind(now).await?;
        metrics::transfer_retention("reminded", round.reminded);
        round.rejected = self.reject_undecided(now).await?;
        metrics::transfer_retention("rejected", round.rejected);
        round.content_deleted = self.delete_content(now).await?;
        metrics::transfer_retention("content_deleted", round.content_deleted);

        let decided_before = days_before(now, settings.event_log_days);
        round.event_logs_deleted = drain(|| db.purge_transfer_event_logs(decided_before, BATCH)).await?;
        metrics::transfer_retention("event_log_deleted", round.event_logs_deleted);
        Ok(round)
    }

    /// The latest reminder day passed is sent; earlier ones a stopped worker missed are not sent late
    /// (one reminder says the same). Counts the callbacks queued.
    async fn remind(&self, now: i64) -> Result<u64, TransferError> {
        let mut reminded = 0;
        let days = &self.transfer.limits.reminder_days;
        for (index, day) in days.iter().enumerate().rev() {
            let reminder = i64::try_from(index + 1).unwrap_or(i64::MAX);
            loop {
                let due = self.transfer.db.transfer_reminders_due(reminder, days_before(now, *day), BATCH).await?;
                for submission in &due {
                    let registry = self.registry.current();
                    let callback = registry
                        .destination(&submission.destination_id)
                        .and_then(|d| d.callback.as_ref())
                        .map(|_| callbacks::new_submission(submission, now));
                    let recorded = self
                        .transfer
                        .db
                        .record_transfer_reminder(&submission.submission_id, reminder, callback.as_ref())
                        .await?;
                    reminded += u64::from(recorded && callback.is_some());
                }
                if (due.len() as i64) < BATCH {
                    break;
                }
            }
        }
        Ok(reminded)
    }

    async fn reject_undecided(&self, now: i64) -> Result<u64, TransferError> {
        let days = self.transfer.limits.reject_after_days;
        let mut rejected = 0;
        loop {
            let due = self.transfer.db.transfer_undecided(days_before(now, days), BATCH).await?;
            for submission in &due {
                let payload = json!({ "problems": [{
                    "type": NOT_FETCHED_IN_TIME,
                    "title": "Not fetched in time",
                    "detail": format!("The submission was not fetched and decided within {days} days."),
                    "instance": "submission",
                }]});
                let event = self.pforte_event(submission, now, EVENT_REJECT, payload).await?;
                let registry = self.registry.current();
                rejected +=
                    u64::from(self.transfer.decide(&registry, submission, SubmissionStatus::Rejected, &event).await?);
            }
            if (due.len() as i64) < BATCH {
                return Ok(rejected);
            }
        }
    }

    async fn delete_content(&self, now: i64) -> Result<u64, TransferError> {
        let decided_before = days_before(now, self.transfer.limits.delete_content_after_days);
        let mut deleted = 0;
        loop {
            let due = self.transfer.db.transfer_content_due(decided_before, BATCH).await?;
            for submission in &due {
                let event = self.pforte_event(submission, now, EVENT_DELETE, json!({})).await?;
                let sender_callback = sender_callback::new_events(submission, now);
                let db = &self.transfer.db;
                deleted += u64::from(
                    db.delete_transfer_content(&submission.submission_id, &event, sender_callback.as_ref()).await?,
                );
            }
            if (due.len() as i64) < BATCH {
                return Ok(deleted);
            }
        }
    }

    async fn pforte_event(
        &self,
        submission: &SubmissionRow,
        now: i64,
        event: &str,
        payload: serde_json::Value,
    ) -> Result<crate::store::transfer::EventRow, TransferError> {
        let ids = (submission.submission_id.as_str(), submission.case_id.as_str());
        Ok(events::pforte_event(&self.transfer.keys, &self.transfer.issuer, now, ids, event, payload).await?)
    }
}

/// Runs a batch step until a batch comes back short; returns the total.
async fn drain<F, Fut>(mut step: F) -> Result<u64, TransferError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<u64, crate::store::StorageError>>,
{
    let mut total = 0;
    loop {
        let done = step().await?;
        total += done;
        if done < BATCH.unsigned_abs() {
            return Ok(total);
        }
    }
}

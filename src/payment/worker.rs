//! The status worker: asks providers about open payments (the citizen may never come back from the
//! pay page), and fails payments that stay open past their expiry — after one last read, so a
//! payment made at the last moment is not failed. Several instances share the work.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::service::read_at_provider;
use super::signals::{Outcome, PaymentSignals};
use super::state::Source;
use super::wire::Status;
use crate::clock::SharedClock;
use crate::registry::Registry;
use crate::storage::{Database, StorageError};

/// How often an open payment's status is read at the provider.
const CHECK_INTERVAL_MILLIS: i64 = 60_000;
const BATCH: i64 = 50;
const POLL: Duration = Duration::from_secs(5);
pub const TIMEOUT_DETAIL: &str = "timeout: no final status from the payment provider in time";

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CheckRound {
    pub checked: usize,
    pub finished: usize,
    pub timed_out: usize,
}

#[derive(Clone)]
pub struct StatusWorker {
    db: Database,
    registry: Arc<Registry>,
    signals: PaymentSignals,
    http: reqwest::Client,
    clock: SharedClock,
}

impl StatusWorker {
    pub fn new(
        db: Database,
        registry: Arc<Registry>,
        signals: PaymentSignals,
        http: reqwest::Client,
        clock: SharedClock,
    ) -> Self {
        StatusWorker { db, registry, signals, http, clock }
    }

    /// One round over the open payments that are due.
    pub async fn check_due(&self) -> Result<CheckRound, StorageError> {
        let now = self.clock.now_millis();
        let due = self.db.claim_open_payments(now, now + CHECK_INTERVAL_MILLIS, BATCH).await?;
        let mut round = CheckRound::default();
        for payment in due {
            round.checked += 1;
            let read = read_at_provider(&self.registry, &self.http, &payment).await;
            if let Some(state) = &read {
                let outcome = self
                    .signals
                    .record(&payment.transaction_id, state.status, Source::Provider, state.status_detail.as_deref())
                    .await?;
                if matches!(outcome, Outcome::Moved { .. }) {
                    round.finished += 1;
                    continue;
                }
            }
            if now >= payment.expires_at {
                let outcome = self
                    .signals
                    .record(&payment.transaction_id, Status::Failed, Source::Timeout, Some(TIMEOUT_DETAIL))
                    .await?;
                if matches!(outcome, Outcome::Moved { .. }) {
                    round.timed_out += 1;
                }
            }
        }
        Ok(round)
    }

    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            match self.check_due().await {
                Ok(round) if round != CheckRound::default() => tracing::info!(?round, "payment status round"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "payment status round failed; retrying"),
            }
            tokio::select! {
                () = tokio::time::sleep(POLL) => {}
                () = shutdown.cancelled() => return,
            }
        }
    }
}

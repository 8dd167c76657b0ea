//! The status worker: asks providers about open payments (the citizen may never come back from the
//! pay page), and fails payments that stay open past their expiry — after one last read, so a
//! payment made at the last moment is not failed. Several instances share the work.
//!
//! Reads back off exponentially (`payments.status_check_first_secs` doubling up to
//! `payments.status_check_max_secs`): most payments end within minutes, and providers should not be
//! asked every minute for hours about the ones a citizen abandoned.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::provider::Providers;
use super::refund::Refunds;
use super::service::read_at_provider;
use super::signals::{Outcome, PaymentSignals};
use super::state::Source;
use super::wire::Status;
use crate::clock::SharedClock;
use crate::config::PaymentSettings;
use crate::registry::SharedRegistry;
use crate::store::{Database, StorageError};

const BATCH: i64 = 50;
const POLL: Duration = Duration::from_secs(5);
pub const TIMEOUT_DETAIL: &str = "timeout: no final status from the payment provider in time";

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CheckRound {
    pub checked: usize,
    pub finished: usize,
    pub timed_out: usize,
}

/// When an open payment is read at its provider again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckSchedule {
    pub first_millis: i64,
    pub max_millis: i64,
}

impl CheckSchedule {
    pub fn from_settings(settings: &PaymentSettings) -> CheckSchedule {
        let millis = |secs: u64| i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        CheckSchedule {
            first_millis: millis(settings.status_check_first_secs),
            max_millis: millis(settings.status_check_max_secs),
        }
    }

    /// The pause after a read of a payment `age_millis` old: its age, within [first, max]. Pausing
    /// as long as the payment has existed doubles the pause with every read (first, first, 2×first,
    /// 4×first, … up to max) without a counter that a crash or a second instance could get wrong.
    pub fn pause(&self, age_millis: i64) -> i64 {
        age_millis.clamp(self.first_millis, self.max_millis.max(self.first_millis))
    }
}

impl Default for CheckSchedule {
    fn default() -> Self {
        CheckSchedule::from_settings(&PaymentSettings::default())
    }
}

#[derive(Clone)]
pub struct StatusWorker {
    db: Database,
    registry: SharedRegistry,
    signals: PaymentSignals,
    providers: Providers,
    clock: SharedClock,
    schedule: CheckSchedule,
    /// Refunds whose request died half-way are settled here too, when given.
    refunds: Option<Refunds>,
}

impl StatusWorker {
    pub fn new(
        db: Database,
        registry: SharedRegistry,
        signals: PaymentSignals,
        providers: Providers,
        clock: SharedClock,
    ) -> Self {
        StatusWorker { db, registry, signals, providers, clock, schedule: CheckSchedule::default(), refunds: None }
    }

    /// Also settles refunds left PENDING by requests that are gone ([`Refunds::resume_abandoned`]).
    pub(crate) fn with_refunds(mut self, refunds: Refunds) -> Self {
        self.refunds = Some(refunds);
        self
    }

    /// Reads on this schedule instead of the default one.
    pub fn with_schedule(mut self, schedule: CheckSchedule) -> Self {
        self.schedule = schedule;
        self
    }

    /// One round over the open payments that are due.
    pub async fn check_due(&self) -> Result<CheckRound, StorageError> {
        let now = self.clock.now_millis();
        // Claimed until the longest pause: a worker that dies mid-round leaves them to another then.
        let lease = now + self.schedule.max_millis;
        let due = self.db.claim_open_payments(now, lease, BATCH).await?;
        let mut round = CheckRound::default();
        // One registry for the round; a reload meanwhile applies from the next one.
        let registry = self.registry.current();
        for payment in due {
            round.checked += 1;
            let read = read_at_provider(&registry, &self.providers, &payment).await;
            if let Some(state) = &read {
                let outcome = self.signals.record_provider_read(&payment, state).await?;
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
                continue;
            }
            // Still open: read again after the pause, but no later than its expiry.
            let next = (now + self.schedule.pause(now - payment.created_at)).min(payment.expires_at);
            self.db.schedule_payment_check(&payment.transaction_id, next).await?;
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
            if let Some(refunds) = &self.refunds {
                if let Err(e) = refunds.resume_abandoned().await {
                    tracing::warn!(error = %e, "settling abandoned refunds failed; retrying");
                }
            }
            tokio::select! {
                () = tokio::time::sleep(POLL) => {}
                () = shutdown.cancelled() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pause_doubles_from_the_first_to_the_longest() {
        let schedule = CheckSchedule { first_millis: 60_000, max_millis: 900_000 };
        let mut at = 0;
        let mut pauses = Vec::new();
        for _ in 0..8 {
            let pause = schedule.pause(at);
            pauses.push(pause / 1000);
            at += pause;
        }
        assert_eq!(pauses, vec![60, 60, 120, 240, 480, 900, 900, 900]);
    }

    #[test]
    fn the_default_schedule_is_one_minute_to_fifteen() {
        assert_eq!(CheckSchedule::default(), CheckSchedule { first_millis: 60_000, max_millis: 900_000 });
    }
}

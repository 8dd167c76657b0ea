//! The words of a registry reload, shared by its three triggers (SIGHUP, `pforte reload`, `POST
//! /reload` on the operator's address) and the code that carries it out (`app`): what asked for it,
//! what it answers, and how many succeeded and failed since start. The reload itself needs the
//! services it rebuilds, so `app` implements [`Reload`] and the edge calls it through the trait.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use super::RegistryDiff;
use crate::config::Problems;

/// What asked for a reload; named in the log and the audit event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadTrigger {
    /// SIGHUP, sent by `pforte reload` or by hand.
    Signal,
    /// `POST /reload` on the operator's address.
    Admin,
}

impl ReloadTrigger {
    pub fn as_str(self) -> &'static str {
        match self {
            ReloadTrigger::Signal => "signal",
            ReloadTrigger::Admin => "admin",
        }
    }
}

/// What changed, or every problem found (the registry in use then stays as it was).
pub type ReloadResult = Result<RegistryDiff, Problems>;

pub type ReloadFuture<'a> = Pin<Box<dyn Future<Output = ReloadResult> + Send + 'a>>;

/// Reads the registry files again and puts them in use if they are valid.
pub trait Reload: Send + Sync {
    fn reload(&self, trigger: ReloadTrigger) -> ReloadFuture<'_>;

    fn counts(&self) -> &ReloadCounts;
}

/// Reloads since start, for the operator (the lead wires these into the metrics).
#[derive(Debug, Default)]
pub struct ReloadCounts {
    succeeded: AtomicU64,
    failed: AtomicU64,
    /// Milliseconds since the epoch; 0 while no reload has failed.
    last_failure_ms: AtomicI64,
    /// How many problems the last refused reload found.
    last_failure_problems: AtomicU64,
}

impl ReloadCounts {
    pub fn succeeded(&self) -> u64 {
        self.succeeded.load(Ordering::Relaxed)
    }

    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// When the last reload was refused (milliseconds since the epoch), if one was.
    pub fn last_failure_ms(&self) -> Option<i64> {
        Some(self.last_failure_ms.load(Ordering::Relaxed)).filter(|ms| *ms > 0)
    }

    /// How many problems the last refused reload found (0 while none was refused).
    pub fn last_failure_problems(&self) -> u64 {
        self.last_failure_problems.load(Ordering::Relaxed)
    }

    pub fn record_success(&self) {
        self.succeeded.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_failure(&self, now_ms: i64, problems: usize) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        self.last_failure_ms.store(now_ms, Ordering::Relaxed);
        self.last_failure_problems.store(u64::try_from(problems).unwrap_or(u64::MAX), Ordering::Relaxed);
    }
}

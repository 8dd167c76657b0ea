//! Time as a parameter, so tests can move it (key overlap, code lifetimes, expiry).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};

pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> DateTime<Utc>;

    fn now_millis(&self) -> i64 {
        self.now().timestamp_millis()
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn at_millis(millis: i64) -> Self {
        ManualClock(Arc::new(AtomicI64::new(millis)))
    }

    pub fn advance_secs(&self, secs: i64) {
        self.0.fetch_add(secs * 1000, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        let millis = self.0.load(Ordering::SeqCst);
        Utc.timestamp_millis_opt(millis).single().unwrap_or_default()
    }
}

pub type SharedClock = Arc<dyn Clock>;

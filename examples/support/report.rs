//! Latency percentiles and throughput of one benchmark run, printed as one line; shared by the
//! benchmarks under `examples/` (each uses part of it).
#![allow(dead_code)]

use std::time::Duration;

pub(crate) struct Report {
    pub latencies: Vec<Duration>,
    pub elapsed: Duration,
}

impl Report {
    /// Requests answered per second over the whole run.
    pub(crate) fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    /// The `p`-quantile (0..=1) of the latencies, in milliseconds.
    pub(crate) fn percentile_ms(&self, p: f64) -> f64 {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        sorted.get(i).map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0)
    }

    /// `what` names the run, `unit` what was counted per second (e.g. "creates/s").
    pub(crate) fn print(self, what: &str, unit: &str) -> Self {
        println!(
            "{what:>42}: {:>8.0} {unit}   p50 {:.2} ms   p90 {:.2} ms   p99 {:.2} ms   max {:.2} ms   (n={})",
            self.rate(),
            self.percentile_ms(0.5),
            self.percentile_ms(0.9),
            self.percentile_ms(0.99),
            self.percentile_ms(1.0),
            self.latencies.len()
        );
        self
    }
}

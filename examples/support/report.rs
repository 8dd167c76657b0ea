//! Latency percentiles and throughput of one benchmark run, printed as one line; shared by the
//! benchmarks under `examples/`.

use std::time::Duration;

pub(crate) struct Report {
    pub latencies: Vec<Duration>,
    pub elapsed: Duration,
}

impl Report {
    /// `what` names the run, `unit` what was counted per second (e.g. "creates/s").
    pub(crate) fn print(mut self, what: &str, unit: &str) {
        self.latencies.sort();
        let pct = |p: f64| {
            let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
            self.latencies.get(i).map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0)
        };
        println!(
            "{what:>42}: {:>8.0} {unit}   p50 {:.2} ms   p90 {:.2} ms   p99 {:.2} ms   max {:.2} ms   (n={})",
            self.latencies.len() as f64 / self.elapsed.as_secs_f64(),
            pct(0.5),
            pct(0.9),
            pct(0.99),
            pct(1.0),
            self.latencies.len()
        );
    }
}

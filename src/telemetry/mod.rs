//! Log output (human-readable or JSON lines on standard error) and traces (`traces`: OpenTelemetry
//! spans to an OTLP/HTTP collector, off unless configured). What is logged is chosen at each call
//! site to exclude personal data, tokens and secrets; request logs carry the path, never the query.
//! Prometheus metrics, with the same care for what a label may carry, are in [`metrics`].

pub mod metrics;

pub mod traces;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{LogFormat, LogSettings, TraceSettings};

/// What the process must stop before it exits: the trace exporter, which holds spans in a batch.
#[derive(Debug)]
#[must_use = "call shutdown before exiting, or buffered spans are lost"]
pub struct Telemetry {
    traces: Option<traces::Traces>,
}

/// Installs the global subscriber once; `RUST_LOG` overrides the configured log level. The level
/// filters log lines only: traces, when configured, get every span of pforte's own, whatever the level.
/// Traces off, the subscriber is the one pforte always had: log lines under one global filter.
pub fn init(log: &LogSettings, trace_settings: &TraceSettings) -> Telemetry {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour codes only for a terminal: piped logs stay greppable.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let (traces, problem) = match traces::Traces::start(trace_settings) {
        Ok(traces) => (traces, None),
        Err(e) => (None, Some(e)),
    };
    let _ = match &traces {
        // The level filters log lines only, so that spans reach the exporter whatever it says.
        Some(exporter) => tracing_subscriber::registry()
            .with(log_lines(log.format, ansi).with_filter(filter))
            .with(exporter.layer())
            .try_init(),
        None => tracing_subscriber::registry().with(filter).with(log_lines(log.format, ansi)).try_init(),
    };
    match (&problem, &traces) {
        (Some(e), _) => tracing::warn!(error = %e, "traces are off"),
        (None, Some(_)) => tracing::info!("traces are exported over OTLP/HTTP"),
        (None, None) => {}
    }
    Telemetry { traces }
}

/// The log line writer in the configured format.
fn log_lines<S>(format: LogFormat, ansi: bool) -> Box<dyn Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    let lines = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(ansi);
    match format {
        LogFormat::Human => lines.boxed(),
        LogFormat::Json => lines.json().with_current_span(true).with_span_list(false).boxed(),
    }
}

impl Telemetry {
    /// Sends the spans still buffered (a graceful stop loses none) and stops the exporter.
    pub async fn shutdown(self) {
        if let Some(traces) = self.traces {
            // The export blocks (up to its timeout): not on an async worker.
            let _ = tokio::task::spawn_blocking(move || traces.shutdown()).await;
        }
    }
}

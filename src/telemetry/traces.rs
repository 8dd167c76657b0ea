//! Traces (OpenTelemetry, issue 11): the tracer provider that sends pforte's own spans to an OTLP/HTTP
//! collector (`traces.otlp_endpoint`; off when unset), and the `tracing` layer that turns those spans
//! into OpenTelemetry spans. Only spans of pforte's own code are exported, and only their fields:
//! log events, spans of libraries and source locations stay out, so what a trace carries is exactly
//! what the span definitions name (route template, method, status, provider, operation), never a
//! URL with its query, a body, a token or personal data.

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use tracing::Subscriber;
use tracing_subscriber::filter::dynamic_filter_fn;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use crate::config::TraceSettings;

/// The path below the collector's address where OTLP/HTTP takes traces.
const TRACES_PATH: &str = "v1/traces";
/// How long one export may take before the batch is dropped (the collector is away).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);
/// The crate whose spans are exported (`tracing` targets are module paths).
const OWN_TARGET: &str = "pforte";

/// The running exporter; [`Traces::shutdown`] sends what is still buffered.
#[derive(Debug)]
pub struct Traces {
    provider: SdkTracerProvider,
}

/// The collector's address could not be turned into an exporter.
#[derive(Debug, thiserror::Error)]
#[error("traces cannot be exported to {endpoint}: {reason}")]
pub struct TraceSetupError {
    endpoint: String,
    reason: String,
}

impl Traces {
    /// A tracer provider exporting in batches to the configured collector, or `None` when traces are
    /// off. Batch size and delay follow the standard `OTEL_BSP_*` variables (5 s by default).
    pub fn start(settings: &TraceSettings) -> Result<Option<Traces>, TraceSetupError> {
        let Some(base) = &settings.otlp_endpoint else { return Ok(None) };
        let endpoint = traces_url(base);
        let failed = |reason: String| TraceSetupError { endpoint: endpoint.clone(), reason };
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpJson)
            .with_endpoint(endpoint.clone())
            .with_timeout(EXPORT_TIMEOUT)
            .build()
            .map_err(|e| failed(e.to_string()))?;
        let resource = Resource::builder()
            .with_service_name(OWN_TARGET)
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
            .build();
        // Parent-based: a trace an online service sampled (or not) stays that way through pforte.
        let sampler = Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(settings.sample_ratio)));
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_sampler(sampler)
            .with_resource(resource)
            .build();
        Ok(Some(Traces { provider }))
    }

    /// The `tracing` layer that records pforte's spans into this provider.
    pub fn layer<S>(&self) -> impl Layer<S> + Send + Sync + 'static
    where
        S: Subscriber + for<'span> LookupSpan<'span> + Send + Sync,
    {
        tracing_opentelemetry::layer()
            .with_tracer(self.provider.tracer(OWN_TARGET))
            .with_location(false)
            .with_threads(false)
            .with_target(false)
            .with_tracked_inactivity(false)
            // Parents come from `tracing`'s own span tree and contexts are read from spans
            // (`span.context()`), never from OpenTelemetry's thread-local current context: keeping
            // that in step on every enter and exit of every task would be work for nothing.
            .with_context_activation(false)
            // A dynamic filter on purpose: it makes every callsite "sometimes" interesting, so
            // `tracing` asks both layers' filters for every span. With two static per-layer filters
            // (this one and the log level) a span whose callsite both always enable skips that question
            // and inherits the answer left over from the last event on the thread that neither
            // wanted (tracing-subscriber 0.3): spans then vanished from logs and traces at random.
            .with_filter(dynamic_filter_fn(|meta, _| meta.is_span() && is_own(meta.target())))
    }

    /// Exports what is buffered and stops the exporter. Blocks up to the export timeout, so the
    /// caller runs it off the async workers.
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "the last traces could not be exported");
        }
    }
}

/// `base` with the OTLP/HTTP traces path below it (`http://collector:4318` → `…:4318/v1/traces`).
fn traces_url(base: &url::Url) -> String {
    format!("{}/{TRACES_PATH}", base.as_str().trim_end_matches('/'))
}

fn is_own(target: &str) -> bool {
    target == OWN_TARGET || target.strip_prefix(OWN_TARGET).is_some_and(|rest| rest.starts_with("::"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_endpoint_means_no_exporter() {
        let settings = TraceSettings { otlp_endpoint: None, sample_ratio: 1.0 };
        assert!(Traces::start(&settings).expect("no error").is_none());
    }

    #[test]
    fn the_traces_path_goes_below_the_collectors_address() {
        let base = url::Url::parse("http://collector:4318").unwrap();
        assert_eq!(traces_url(&base), "http://collector:4318/v1/traces");
        let below = url::Url::parse("https://otel.example/tenant-a/").unwrap();
        assert_eq!(traces_url(&below), "https://otel.example/tenant-a/v1/traces");
    }

    #[test]
    fn only_pforte_spans_are_exported() {
        assert!(is_own("pforte"));
        assert!(is_own("pforte::http::middleware"));
        assert!(!is_own("pforte_other"));
        assert!(!is_own("hyper::client"));
    }
}

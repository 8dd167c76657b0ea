//! Trace context on outbound calls (W3C Trace Context, issue 11): each call to a peer runs in its own
//! span ([`outbound_span`]) whose context goes out as `traceparent` ([`with_trace_context`]), so the
//! provider's or the online service's own traces join pforte's. The span names the operation and the
//! peer's registered id and, once answered, the status ([`record_status`]); never the URL, which may
//! carry codes or tokens in its query, and never a body. Without a trace exporter no span has a
//! context, and nothing is sent.

use opentelemetry::propagation::{Injector, TextMapPropagator};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// A span for one call to a peer: `operation` names it (`upstream.token`, `provider.create`,
/// `notification.deliver`), `peer` is the registered id of the provider or online service.
pub fn outbound_span(operation: &'static str, peer: &str) -> tracing::Span {
    tracing::info_span!(
        "outbound",
        otel.name = operation,
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        operation,
        peer,
        http.response.status_code = tracing::field::Empty,
    )
}

/// `request` with the current span's `traceparent` (and `tracestate`) when it is being traced.
pub fn with_trace_context(request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    let headers = trace_headers(&tracing::Span::current());
    if headers.is_empty() {
        request
    } else {
        request.headers(headers)
    }
}

/// Records the peer's answer on the current (outbound) span; a 5xx marks it failed.
pub fn record_status(status: reqwest::StatusCode) {
    let span = tracing::Span::current();
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "error");
    }
}

/// Marks the current (outbound) span failed: the peer did not answer, or its answer was refused.
pub fn record_failure() {
    tracing::Span::current().record("otel.status_code", "error");
}

fn trace_headers(span: &tracing::Span) -> HeaderMap {
    let mut headers = HeaderMap::new();
    TraceContextPropagator::new().inject_context(&span.context(), &mut Headers(&mut headers));
    headers
}

struct Headers<'a>(&'a mut HeaderMap);

impl Injector for Headers<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(key), HeaderValue::try_from(value)) {
            self.0.insert(name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without a trace exporter (no OpenTelemetry layer), a call inside an outbound span carries
    /// no trace context at all.
    #[test]
    fn without_traces_no_traceparent_is_sent() {
        let subscriber = tracing_subscriber::registry();
        tracing::subscriber::with_default(subscriber, || {
            let span = outbound_span("provider.create", "sim-pay");
            let _entered = span.enter();
            assert!(trace_headers(&tracing::Span::current()).is_empty());
            let request = with_trace_context(reqwest::Client::new().get("http://127.0.0.1:9/x")).build().unwrap();
            assert!(request.headers().get("traceparent").is_none(), "{:?}", request.headers());
        });
    }

    /// With the layer, the header names the span's trace and the span itself as parent.
    #[test]
    fn with_traces_the_span_goes_out_as_traceparent() {
        use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
        use tracing_subscriber::layer::SubscriberExt;

        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("test"));
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let span = outbound_span("upstream.token", "sim-bund");
            let _entered = span.enter();
            let context = span.context();
            let ids = context.span().span_context().clone();
            let request = with_trace_context(reqwest::Client::new().get("http://127.0.0.1:9/x")).build().unwrap();
            let header = request.headers().get("traceparent").and_then(|v| v.to_str().ok()).unwrap_or_default();
            assert_eq!(header, format!("00-{}-{}-01", ids.trace_id(), ids.span_id()));
        });
    }
}

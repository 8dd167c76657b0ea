//! Every payment provider call observed in one place: [`Measured`] wraps an adapter and runs each
//! call in its own trace span (`provider.create`, `provider.status`, … naming the provider
//! instance; the HTTP requests inside carry it as `traceparent`, see `ProviderHttp::send`) and
//! records its duration and failures by provider and operation (`telemetry::metrics`), so no adapter
//! carries tracing or metrics code of its own. [`super::Providers`] wraps every adapter it builds.

use std::sync::Arc;

use reqwest::header::HeaderMap;
use tracing::Instrument;

use super::{
    CallbackError, NewProviderPayment, PaymentAdapter, ProviderCallback, ProviderCreated, ProviderError,
    ProviderFuture, ProviderRefund, ProviderRefunded, ProviderState,
};
use crate::http_client::{outbound_span, record_failure};
use crate::telemetry::metrics::measure_provider;

/// An adapter whose calls are traced and measured, labelled with its provider's registry id.
pub(super) struct Measured {
    provider_id: String,
    inner: Arc<dyn PaymentAdapter>,
}

impl Measured {
    pub(super) fn wrap(provider_id: &str, inner: Arc<dyn PaymentAdapter>) -> Arc<dyn PaymentAdapter> {
        Arc::new(Measured { provider_id: provider_id.to_owned(), inner })
    }

    /// `call` inside the span `span_name`, measured as `operation`. A failed call marks the span
    /// failed; the error text, which may quote the provider, stays out of the trace.
    fn observe<'a, T: Send + 'a>(
        &'a self,
        operation: &'static str,
        span_name: &'static str,
        call: ProviderFuture<'a, T>,
    ) -> ProviderFuture<'a, T> {
        let span = outbound_span(span_name, &self.provider_id);
        let traced = async move {
            let result = call.await;
            if result.as_ref().err().and_then(failure).is_some() {
                record_failure();
            }
            result
        }
        .instrument(span);
        Box::pin(measure_provider(&self.provider_id, operation, failure, traced))
    }
}

/// The kind of a failure as a label; an operation the provider does not offer is no failure of it.
fn failure(error: &ProviderError) -> Option<&'static str> {
    match error {
        ProviderError::Unavailable(_) => Some("unavailable"),
        ProviderError::InvalidAnswer(_) => Some("invalid_answer"),
        ProviderError::Refused { .. } => Some("refused"),
        ProviderError::Misconfigured(_) => Some("misconfigured"),
        ProviderError::Unsupported(_) => None,
    }
}

impl PaymentAdapter for Measured {
    fn create<'a>(&'a self, payment: &'a NewProviderPayment<'a>) -> ProviderFuture<'a, ProviderCreated> {
        self.observe("create", "provider.create", self.inner.create(payment))
    }

    fn status<'a>(
        &'a self,
        originator_id: &'a str,
        endpoint_id: &'a str,
        reference: &'a str,
    ) -> ProviderFuture<'a, ProviderState> {
        self.observe("status", "provider.status", self.inner.status(originator_id, endpoint_id, reference))
    }

    fn cancel<'a>(
        &'a self,
        originator_id: &'a str,
        endpoint_id: &'a str,
        reference: &'a str,
    ) -> ProviderFuture<'a, ()> {
        self.observe("cancel", "provider.cancel", self.inner.cancel(originator_id, endpoint_id, reference))
    }

    fn refund<'a>(&'a self, refund: &'a ProviderRefund<'a>) -> ProviderFuture<'a, ProviderRefunded> {
        self.observe("refund", "provider.refund", self.inner.refund(refund))
    }

    /// The operator's status checks (`health`) are provider calls too, labelled `probe`.
    fn probe<'a>(&'a self, originator_id: &'a str, endpoint_id: &'a str) -> ProviderFuture<'a, ()> {
        self.observe("probe", "provider.probe", self.inner.probe(originator_id, endpoint_id))
    }

    /// Local work (a signature check), no call to the provider: neither span nor measurement.
    fn parse_callback(&self, headers: &HeaderMap, body: &[u8]) -> Result<ProviderCallback, CallbackError> {
        self.inner.parse_callback(headers, body)
    }
}

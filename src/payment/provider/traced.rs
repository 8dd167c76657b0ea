//! Every call to a payment provider in its own trace span (`provider.create`, `provider.status`,
//! `provider.cancel`, `provider.refund`, `provider.probe`) naming the provider instance, whatever the
//! adapter: [`adapter_for`](super::adapter_for) wraps each adapter in [`Traced`]. The HTTP requests
//! inside carry the span as `traceparent` (`ProviderHttp::send`).

use std::sync::Arc;

use reqwest::header::HeaderMap;
use tracing::Instrument;

use super::{
    CallbackError, NewProviderPayment, PaymentAdapter, ProviderCallback, ProviderCreated, ProviderError,
    ProviderFuture, ProviderRefund, ProviderRefunded, ProviderState,
};
use crate::http_client::{outbound_span, record_failure};

/// An adapter whose calls run in their own span.
pub(super) struct Traced {
    inner: Arc<dyn PaymentAdapter>,
    provider_id: String,
}

impl Traced {
    pub(super) fn new(provider_id: &str, inner: Arc<dyn PaymentAdapter>) -> Traced {
        Traced { inner, provider_id: provider_id.to_owned() }
    }

    /// `call` inside a span for `operation`; a failed call marks the span failed (the error text,
    /// which may quote the provider, stays out of the trace). Wrapped inside `Measured`, which
    /// `Providers` adds around every adapter.
    fn traced<'a, T: Send + 'a>(&self, operation: &'static str, call: ProviderFuture<'a, T>) -> ProviderFuture<'a, T> {
        let span = outbound_span(operation, &self.provider_id);
        Box::pin(
            async move {
                let result = call.await;
                // An operation the provider does not offer is no failure of it.
                if matches!(&result, Err(e) if !matches!(e, ProviderError::Unsupported(_))) {
                    record_failure();
                }
                result
            }
            .instrument(span),
        )
    }
}

impl PaymentAdapter for Traced {
    fn create<'a>(&'a self, payment: &'a NewProviderPayment<'a>) -> ProviderFuture<'a, ProviderCreated> {
        self.traced("provider.create", self.inner.create(payment))
    }

    fn status<'a>(
        &'a self,
        originator_id: &'a str,
        endpoint_id: &'a str,
        reference: &'a str,
    ) -> ProviderFuture<'a, ProviderState> {
        self.traced("provider.status", self.inner.status(originator_id, endpoint_id, reference))
    }

    fn cancel<'a>(
        &'a self,
        originator_id: &'a str,
        endpoint_id: &'a str,
        reference: &'a str,
    ) -> ProviderFuture<'a, ()> {
        self.traced("provider.cancel", self.inner.cancel(originator_id, endpoint_id, reference))
    }

    fn refund<'a>(&'a self, refund: &'a ProviderRefund<'a>) -> ProviderFuture<'a, ProviderRefunded> {
        self.traced("provider.refund", self.inner.refund(refund))
    }

    fn probe<'a>(&'a self, originator_id: &'a str, endpoint_id: &'a str) -> ProviderFuture<'a, ()> {
        self.traced("provider.probe", self.inner.probe(originator_id, endpoint_id))
    }

    /// Local work (a signature check), no call: no span of its own.
    fn parse_callback(&self, headers: &HeaderMap, body: &[u8]) -> Result<ProviderCallback, CallbackError> {
        self.inner.parse_callback(headers, body)
    }
}

//! Every payment provider call measured in one place: [`Measured`] wraps an adapter and records each
//! call's duration and failures by provider and operation (`telemetry::metrics`), so no adapter
//! carries metrics code of its own. [`super::Providers`] wraps every adapter it builds.

use std::sync::Arc;

use reqwest::header::HeaderMap;

use super::{
    CallbackError, NewProviderPayment, PaymentAdapter, ProviderCallback, ProviderCreated, ProviderError,
    ProviderFuture, ProviderRefund, ProviderRefunded, ProviderState,
};
use crate::telemetry::metrics::measure_provider;

/// An adapter whose calls are measured, labelled with its provider's registry id.
pub(super) struct Measured {
    provider_id: String,
    inner: Arc<dyn PaymentAdapter>,
}

impl Measured {
    pub(super) fn wrap(provider_id: &str, inner: Arc<dyn PaymentAdapter>) -> Arc<dyn PaymentAdapter> {
        Arc::new(Measured { provider_id: provider_id.to_owned(), inner })
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
        Box::pin(measure_provider(&self.provider_id, "create", failure, self.inner.create(payment)))
    }

    fn status<'a>(
        &'a self,
        originator_id: &'a str,
        endpoint_id: &'a str,
        reference: &'a str,
    ) -> ProviderFuture<'a, ProviderState> {
        let call = self.inner.status(originator_id, endpoint_id, reference);
        Box::pin(measure_provider(&self.provider_id, "status", failure, call))
    }

    fn cancel<'a>(
        &'a self,
        originator_id: &'a str,
        endpoint_id: &'a str,
        reference: &'a str,
    ) -> ProviderFuture<'a, ()> {
        let call = self.inner.cancel(originator_id, endpoint_id, reference);
        Box::pin(measure_provider(&self.provider_id, "cancel", failure, call))
    }

    fn refund<'a>(&'a self, refund: &'a ProviderRefund<'a>) -> ProviderFuture<'a, ProviderRefunded> {
        Box::pin(measure_provider(&self.provider_id, "refund", failure, self.inner.refund(refund)))
    }

    /// The operator's status checks (`health`) are provider calls too, labelled `probe`.
    fn probe<'a>(&'a self, originator_id: &'a str, endpoint_id: &'a str) -> ProviderFuture<'a, ()> {
        Box::pin(measure_provider(&self.provider_id, "probe", failure, self.inner.probe(originator_id, endpoint_id)))
    }

    /// No call to the provider: the callback's signature is checked locally.
    fn parse_callback(&self, headers: &HeaderMap, body: &[u8]) -> Result<ProviderCallback, CallbackError> {
        self.inner.parse_callback(headers, body)
    }
}

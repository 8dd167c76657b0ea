//! Payment provider adapters behind one trait, one module each. Provider *kinds* are code
//! (`registry::PaymentProviderKind`); provider *instances* are files in `providers/payment/`. Adding a
//! kind means a module here and a line in [`adapter_for`], nothing else. The process builds each
//! instance's adapter once ([`Providers`]) and every caller takes it from there.
//!
//! Adapters are called outside any database transaction (SECURITY.md #19): the caller records the
//! intent, commits, calls the provider, then records the outcome.

mod instances;
mod measured;
pub(crate) mod pmpayment;
mod transport;
mod xbezahldienste;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use reqwest::header::HeaderMap;
use rust_decimal::Decimal;

use super::wire::{PaymentMethod, Status};
use super::{Amount, PaymentRequest};
use crate::registry::{PaymentProvider, PaymentProviderKind};

pub use instances::Providers;

pub type ProviderFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, ProviderError>> + Send + 'a>>;

/// What pforte asks a provider to collect.
#[derive(Debug, Clone)]
pub struct NewProviderPayment<'a> {
    pub originator_id: &'a str,
    pub endpoint_id: &'a str,
    /// The online service's request, with `redirect_url` pointing back at pforte (which reads the
    /// status and then sends the citizen on to the service).
    pub request: &'a PaymentRequest,
    /// pforte's id of the payment; protocols that let the caller name the transaction get this one.
    pub transaction_id: &'a str,
    /// Where the provider sends callbacks about this payment (`{issuer}/callbacks/payment/{providerId}`).
    pub callback_url: &'a str,
}

/// The provider accepted the payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderCreated {
    /// The provider's transaction id, for status reads.
    pub reference: String,
    /// Where the citizen pays.
    pub pay_url: String,
}

/// What the provider says about a payment now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderState {
    pub status: Status,
    pub status_detail: Option<String>,
    pub payment_method: Option<PaymentMethod>,
    pub payment_method_detail: Option<String>,
    /// The business reference (Kassenzeichen), once the provider has one.
    pub transaction_reference: Option<String>,
    /// The amount the provider reports, in euros, when its answer carries one: compared with the
    /// payment's as a callback's is (SECURITY.md #20), never taken as equal when it is not.
    pub amount: Option<Decimal>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// Down, slow, or answering 5xx: the online service gets a 5xx problem, nothing is kept.
    #[error("the payment provider is not available: {0}")]
    Unavailable(String),
    /// The provider answered something that is not its protocol.
    #[error("the payment provider's answer is not valid: {0}")]
    InvalidAnswer(String),
    /// The provider refused the request (its functionalCode when it sent one).
    #[error("the payment provider refused the payment: {code}")]
    Refused { code: String, detail: String },
    #[error("the payment provider entry cannot be used: {0}")]
    Misconfigured(String),
    /// The provider (or its protocol) has no such operation; the named one is not available.
    #[error("the payment provider does not support {0}")]
    Unsupported(&'static str),
}

/// A refund pforte asks a provider to pay out.
#[derive(Debug, Clone)]
pub struct ProviderRefund<'a> {
    pub originator_id: &'a str,
    pub endpoint_id: &'a str,
    /// The provider's transaction id of the paid payment.
    pub reference: &'a str,
    /// pforte's id of the refund, for the provider's deduplication: a refund whose request died
    /// before its outcome was recorded is sent again with the same id (`Refunds::resume_abandoned`),
    /// so an adapter must pass it as the provider's idempotency reference, never pay twice for it.
    pub refund_id: &'a str,
    pub amount: Amount,
    pub reason: Option<&'a str>,
}

/// The provider accepted a refund.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderRefunded {
    /// The provider's id of the refund, when it gives one.
    pub reference: Option<String>,
}

/// A provider's callback whose signature checked out. Its claims are not trusted: pforte reads the
/// status at the provider before recording anything (SECURITY.md #20).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderCallback {
    /// The provider's transaction id (`ProviderCreated::reference`).
    pub reference: String,
    /// The authority the provider names, when its protocol names one.
    pub endpoint_id: Option<String>,
    /// The provider's id of this message; the same id again is a replay.
    pub event_id: String,
    /// When the provider sent it, in Unix seconds.
    pub timestamp: i64,
    /// The amount the provider reports, in euros, when its protocol reports one.
    pub amount: Option<Decimal>,
    /// The status the provider claims; kept for the record, never applied as such.
    pub claimed_status: Option<Status>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    /// This kind of provider sends no callbacks.
    #[error("this payment provider sends no callbacks")]
    NotAccepted,
    #[error("the callback carries no signature")]
    MissingSignature,
    #[error("the callback's signature does not match")]
    BadSignature,
    /// Signed, but not the protocol's form.
    #[error("the callback cannot be read: {0}")]
    Malformed(String),
}

pub trait PaymentAdapter: Send + Sync {
    fn create<'a>(&'a self, payment: &'a NewProviderPayment<'a>) -> ProviderFuture<'a, ProviderCreated>;

    fn status<'a>(
        &'a self,
        originator_id: &'a str,
        endpoint_id: &'a str,
        reference: &'a str,
    ) -> ProviderFuture<'a, ProviderState>;

    /// Ends an open payment at the provider. XBezahldienste v1.0.0 has no cancel, so by default it
    /// is not supported and pforte cancels locally only.
    fn cancel<'a>(
        &'a self,
        _originator_id: &'a str,
        _endpoint_id: &'a str,
        _reference: &'a str,
    ) -> ProviderFuture<'a, ()> {
        Box::pin(async { Err(ProviderError::Unsupported("cancel")) })
    }

    /// Pays (part of) a paid payment back. Not in XBezahldienste v1.0.0 either: by default not
    /// supported, and the refund becomes an instruction for the finance office.
    fn refund<'a>(&'a self, _refund: &'a ProviderRefund<'a>) -> ProviderFuture<'a, ProviderRefunded> {
        Box::pin(async { Err(ProviderError::Unsupported("refund")) })
    }

    /// Asks the provider whether it serves this originator/endpoint pair now, for the operator's
    /// status report (`health`): XBezahldienste's `GET /status/{originatorId}/{endPointId}`, or the
    /// nearest a kind's protocol offers. Kinds with nothing of the sort keep this default.
    fn probe<'a>(&'a self, _originator_id: &'a str, _endpoint_id: &'a str) -> ProviderFuture<'a, ()> {
        Box::pin(async { Err(ProviderError::Unsupported("status")) })
    }

    /// Reads and authenticates a callback from the provider (headers and the raw body as received).
    /// Kinds that send none keep this default.
    fn parse_callback(&self, _headers: &HeaderMap, _body: &[u8]) -> Result<ProviderCallback, CallbackError> {
        Err(CallbackError::NotAccepted)
    }
}

/// A new adapter for a provider instance; the running service takes its adapters from
/// [`Providers`], which calls this once per instance and traces and measures every call. The development simulator speaks XBezahldienste, so it
/// shares that adapter: what runs in development is the protocol production uses.
pub fn adapter_for(
    provider: &PaymentProvider,
    http: &reqwest::Client,
) -> Result<Arc<dyn PaymentAdapter>, ProviderError> {
    match provider.kind {
        PaymentProviderKind::XBezahldienste | PaymentProviderKind::Simulator => {
            Ok(Arc::new(xbezahldienste::XBezahldienste::new(provider, http)?))
        }
        PaymentProviderKind::PmPayment => Ok(Arc::new(pmpayment::PmPayment::new(provider, http)?)),
    }
}

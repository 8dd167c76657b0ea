//! The money events of payments, announced to whoever keeps the books (the tenant's ledger in
//! `finance`, wired by `app`): a payment paid, also after pforte's own timeout or cancel, and a
//! refund owed to the citizen. Each is announced inside the write transaction that records it,
//! on that transaction's connection, so the booking commits or rolls back with the change.
//!
//! Payment defines this and knows nothing of accounts or journals; the book keeper may be called
//! again for the same event (a repeated signal) and must then book nothing twice.

use std::future::Future;
use std::pin::Pin;

use rust_decimal::Decimal;
use sqlx::AnyConnection;

use crate::store::StorageError;

pub(crate) type BookingFuture<'a> = Pin<Box<dyn Future<Output = Result<(), StorageError>> + Send + 'a>>;

/// How a payment came to be paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaidHow {
    /// It moved to PAYED.
    InTime,
    /// PAYED was reported after pforte had failed it for timeout; the money arrived all the same.
    AfterTimeout,
    /// PAYED was reported after the online service had canceled it.
    AfterCancel,
}

/// A payment whose money arrived at its provider.
#[derive(Debug, Clone, Copy)]
pub struct PaidPayment<'a> {
    /// The authority (endPointId) whose books it goes into.
    pub tenant_id: &'a str,
    pub transaction_id: &'a str,
    pub provider_id: &'a str,
    pub amount: Decimal,
    pub how: PaidHow,
    /// When it was recorded, in Unix milliseconds.
    pub at: i64,
}

/// Who pays an owed refund back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundRoute {
    /// The provider accepted the refund (SUBMITTED).
    Provider,
    /// The provider cannot refund: the finance office pays back by hand (INSTRUCTION).
    Instruction,
}

/// A refund the authority now owes the citizen.
#[derive(Debug, Clone, Copy)]
pub struct OwedRefund<'a> {
    pub tenant_id: &'a str,
    pub transaction_id: &'a str,
    pub refund_id: &'a str,
    pub amount: Decimal,
    pub route: RefundRoute,
    /// When it was recorded, in Unix milliseconds.
    pub at: i64,
}

/// Books payment events in the caller's open write transaction (`conn`); the caller commits.
pub trait PaymentBooks: Send + Sync {
    fn paid<'a>(&'a self, conn: &'a mut AnyConnection, payment: &'a PaidPayment<'a>) -> BookingFuture<'a>;

    fn refund_owed<'a>(&'a self, conn: &'a mut AnyConnection, refund: &'a OwedRefund<'a>) -> BookingFuture<'a>;
}

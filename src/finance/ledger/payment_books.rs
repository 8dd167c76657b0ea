//! The tenant ledger as the payment domain's book keeper: the money events payment announces
//! (`payment::books`) become journals, posted in the payment's own write transaction.

use sqlx::AnyConnection;

use super::{post_paid, post_refund, LedgerError, PaidEvent, RefundEvent};
use crate::payment::books::{BookingFuture, OwedRefund, PaidPayment, PaymentBooks};
use crate::store::StorageError;

/// Posts paid payments and owed refunds to the tenant's ledger; wired into payment by `app`.
#[derive(Debug, Clone, Copy, Default)]
pub struct LedgerBooks;

impl PaymentBooks for LedgerBooks {
    /// Paid, also after a timeout or cancel: the money arrived, so it is booked the same way.
    fn paid<'a>(&'a self, conn: &'a mut AnyConnection, payment: &'a PaidPayment<'a>) -> BookingFuture<'a> {
        Box::pin(async move {
            let event = PaidEvent {
                tenant_id: payment.tenant_id,
                transaction_id: payment.transaction_id,
                provider_id: payment.provider_id,
                amount: payment.amount,
                posted_at: payment.at,
            };
            post_paid(conn, &event).await.map(drop).map_err(as_storage)
        })
    }

    /// Owed whether the provider or the finance office pays it back: the same journal.
    fn refund_owed<'a>(&'a self, conn: &'a mut AnyConnection, refund: &'a OwedRefund<'a>) -> BookingFuture<'a> {
        Box::pin(async move {
            let event = RefundEvent {
                tenant_id: refund.tenant_id,
                transaction_id: refund.transaction_id,
                refund_id: refund.refund_id,
                amount: refund.amount,
                posted_at: refund.at,
            };
            post_refund(conn, &event).await.map(drop).map_err(as_storage)
        })
    }
}

/// A journal that cannot be posted fails the payment's transaction as stored data that does not
/// add up would.
fn as_storage(error: LedgerError) -> StorageError {
    match error {
        LedgerError::Storage(e) => e,
        other => StorageError::Corrupt(other.to_string()),
    }
}

//! What reconciliation compares: pforte's payments and refunds, settlement rows and bank entries as
//! typed values, and the period they are compared over.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

pub(crate) use crate::model::{local_date, local_time, PaymentStatus, Period, RefundStatus};
/// A stored bank entry is what reconciliation compares; `reference` is its `entry_reference`.
pub(crate) use crate::store::finance_imports::BankEntryRecord as BankLine;
/// A stored settlement row is what reconciliation compares.
pub(crate) use crate::store::finance_imports::SettlementRecord as SettlementLine;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PfortePayment {
    pub transaction_id: String,
    pub provider_id: String,
    /// The provider's transaction id, which its settlement rows name.
    pub provider_reference: Option<String>,
    /// The Kassenzeichen, when the provider reported one; a citizen paying by transfer writes it in
    /// the remittance information.
    pub transaction_reference: Option<String>,
    pub amount: Decimal,
    pub status: PaymentStatus,
    /// PAYED, or paid after pforte had failed it for timing out.
    pub paid: bool,
    pub paid_after_timeout: bool,
    pub paid_at: DateTime<Utc>,
    /// The Datentransfer submission this payment paid the fee of, when it is bound to one.
    pub submission_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PforteRefund {
    pub refund_id: String,
    pub transaction_id: String,
    pub provider_id: String,
    pub provider_reference: Option<String>,
    /// The payment's Kassenzeichen, when the provider reported one.
    pub transaction_reference: Option<String>,
    /// Positive: the money going back.
    pub amount: Decimal,
    pub status: RefundStatus,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReconcileInput {
    pub tenant: String,
    pub period: Period,
    pub payments: Vec<PfortePayment>,
    pub refunds: Vec<PforteRefund>,
    /// Oldest first; of two rows for one transaction the earlier one is the settlement, the later the
    /// duplicate.
    pub settlement: Vec<SettlementLine>,
    pub bank: Vec<BankLine>,
}

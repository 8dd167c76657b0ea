//! What reconciliation compares: pforte's payments and refunds, settlement rows and bank entries as
//! typed values, and the period they are compared over.

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Europe::Berlin;
use rust_decimal::Decimal;

use crate::registry::SettlementKind;

/// Calendar days in Germany, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

impl Period {
    /// A year and a day at most, which bounds the work and the chart.
    pub const MAX_DAYS: i64 = 366;

    pub fn new(from: NaiveDate, to: NaiveDate) -> Result<Period, String> {
        if to < from {
            return Err(format!("the period ends ({to}) before it begins ({from})"));
        }
        if (to - from).num_days() >= Self::MAX_DAYS {
            return Err(format!("the period is longer than {} days", Self::MAX_DAYS));
        }
        Ok(Period { from, to })
    }

    pub fn contains(&self, date: NaiveDate) -> bool {
        self.from <= date && date <= self.to
    }

    pub fn days(&self) -> impl Iterator<Item = NaiveDate> + '_ {
        self.from.iter_days().take_while(|d| *d <= self.to)
    }
}

/// The German calendar day of an instant.
pub fn local_date(at: DateTime<Utc>) -> NaiveDate {
    at.with_timezone(&Berlin).date_naive()
}

pub(crate) fn local_time(at: DateTime<Utc>) -> String {
    at.with_timezone(&Berlin).format("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PfortePayment {
    pub transaction_id: String,
    pub provider_id: String,
    /// The provider's transaction id, which its settlement rows name.
    pub provider_reference: Option<String>,
    /// The Kassenzeichen, when the provider reported one; a citizen paying by transfer writes it in
    /// the remittance information.
    pub transaction_reference: Option<String>,
    pub amount: Decimal,
    pub status: String,
    /// PAYED, or paid after pforte had failed it for timing out.
    pub paid: bool,
    pub paid_after_timeout: bool,
    pub paid_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundStatus {
    Pending,
    Submitted,
    Instruction,
    Failed,
}

impl RefundStatus {
    pub fn parse(text: &str) -> Option<RefundStatus> {
        match text {
            "PENDING" => Some(RefundStatus::Pending),
            "SUBMITTED" => Some(RefundStatus::Submitted),
            "INSTRUCTION" => Some(RefundStatus::Instruction),
            "FAILED" => Some(RefundStatus::Failed),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RefundStatus::Pending => "PENDING",
            RefundStatus::Submitted => "SUBMITTED",
            RefundStatus::Instruction => "INSTRUCTION",
            RefundStatus::Failed => "FAILED",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PforteRefund {
    pub refund_id: String,
    pub transaction_id: String,
    pub provider_id: String,
    pub provider_reference: Option<String>,
    /// Positive: the money going back.
    pub amount: Decimal,
    pub status: RefundStatus,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettlementLine {
    pub import_id: String,
    pub line: i64,
    pub provider_id: String,
    pub transaction: String,
    pub kind: SettlementKind,
    /// Negative for a refund.
    pub gross: Decimal,
    pub fee: Decimal,
    pub payout_reference: String,
    pub booked_on: NaiveDate,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BankLine {
    pub import_id: String,
    pub position: i64,
    pub reference: String,
    /// Credits positive, debits negative.
    pub amount: Decimal,
    pub booked_on: NaiveDate,
    pub value_on: Option<NaiveDate>,
    pub remittance: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconcileInput {
    pub tenant: String,
    pub period: Period,
    pub payments: Vec<PfortePayment>,
    pub refunds: Vec<PforteRefund>,
    /// Oldest first; of two rows for one transaction the earlier one is the settlement, the later the
    /// duplicate.
    pub settlement: Vec<SettlementLine>,
    pub bank: Vec<BankLine>,
}

//! The statuses pforte stores: a payment's (the XBezahldienste status model) and a refund's.

use serde::{Deserialize, Serialize};

/// The standard's status model, spelled exactly (`PAYED` sic). A timeout is reported as FAILED.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum PaymentStatus {
    Initial,
    Payed,
    Canceled,
    Failed,
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Initial => "INITIAL",
            PaymentStatus::Payed => "PAYED",
            PaymentStatus::Canceled => "CANCELED",
            PaymentStatus::Failed => "FAILED",
        }
    }

    /// The status spelled as the standard spells it (`PAYED`), as stored.
    pub fn parse(text: &str) -> Option<PaymentStatus> {
        [PaymentStatus::Initial, PaymentStatus::Payed, PaymentStatus::Canceled, PaymentStatus::Failed]
            .into_iter()
            .find(|s| s.as_str() == text)
    }

    /// Whether the status can never change again (SECURITY.md #18).
    pub fn is_terminal(self) -> bool {
        self != PaymentStatus::Initial
    }
}

/// A refund's status (pforte's extension; the standard has no refunds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefundStatus {
    /// Recorded; the provider has not answered yet.
    Pending,
    /// The provider accepted the refund.
    Submitted,
    /// The provider cannot refund: recorded for the finance office to pay back by hand.
    Instruction,
    /// The provider refused; the amount counts no longer.
    Failed,
}

impl RefundStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RefundStatus::Pending => "PENDING",
            RefundStatus::Submitted => "SUBMITTED",
            RefundStatus::Instruction => "INSTRUCTION",
            RefundStatus::Failed => "FAILED",
        }
    }

    /// The status as stored.
    pub fn parse(text: &str) -> Option<RefundStatus> {
        [RefundStatus::Pending, RefundStatus::Submitted, RefundStatus::Instruction, RefundStatus::Failed]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_back_what_they_write_and_nothing_else() {
        for status in [PaymentStatus::Initial, PaymentStatus::Payed, PaymentStatus::Canceled, PaymentStatus::Failed] {
            assert_eq!(PaymentStatus::parse(status.as_str()), Some(status));
        }
        for status in [RefundStatus::Pending, RefundStatus::Submitted, RefundStatus::Instruction, RefundStatus::Failed]
        {
            assert_eq!(RefundStatus::parse(status.as_str()), Some(status));
        }
        for text in ["", "PAID", "payed", "Payed ", "pending"] {
            assert_eq!(PaymentStatus::parse(text), None, "{text:?}");
            assert_eq!(RefundStatus::parse(text), None, "{text:?}");
        }
    }
}

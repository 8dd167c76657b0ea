//! Words of settlement reports and finance files: whether a settlement row is a payment or a refund,
//! and which decimal separator a file uses.

use serde::{Deserialize, Serialize};

/// Whether a settlement row is money in (a payment) or money back (a refund).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SettlementKind {
    Payment,
    Refund,
}

impl SettlementKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SettlementKind::Payment => "payment",
            SettlementKind::Refund => "refund",
        }
    }

    pub fn parse(text: &str) -> Option<SettlementKind> {
        match text {
            "payment" => Some(SettlementKind::Payment),
            "refund" => Some(SettlementKind::Refund),
            _ => None,
        }
    }
}

/// The decimal separator of a file pforte reads (a settlement report) or writes (a CSV export).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DecimalSeparator {
    Comma,
    Point,
}

impl DecimalSeparator {
    pub fn char(self) -> char {
        match self {
            DecimalSeparator::Comma => ',',
            DecimalSeparator::Point => '.',
        }
    }
}

//! The reconciliation report: findings with the evidence of each side, totals, daily sums, and its
//! CSV form (one line per finding). The JSON form is the serde serialisation of [`Report`].

use std::collections::BTreeMap;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Serialize;

use super::spreadsheet::spreadsheet_safe;
use crate::registry::SettlementKind;

/// What reconciliation found about one transaction, payout or bank entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Category {
    /// Both sides agree (a payment or refund and its settlement row, a payout and its bank entry, or a
    /// payment and the bank transfer that carries its Kassenzeichen).
    Matched,
    /// Paid in pforte, but no settlement row names the transaction.
    MissingInSettlement,
    /// A settlement row (or bank transfer) for a transaction pforte does not know as paid.
    UnknownToPforte,
    /// Both sides know the transaction with different amounts.
    AmountMismatch,
    /// A second settlement row for a transaction already settled.
    DuplicateSettlement,
    /// The provider reported the payment after pforte had failed it for timing out.
    PaidAfterTimeout,
    /// A refund submitted to the provider that no settlement row shows.
    RefundNotSettled,
    /// A payout of the settlement that no bank entry shows.
    PayoutWithoutBankEntry,
    /// A bank entry whose payout reference matches, with another amount than the payout's net.
    PayoutAmountMismatch,
    /// A bank entry that is no payout and no transfer pforte knows.
    BankEntryWithoutPayout,
}

impl Category {
    pub(crate) const ALL: [Category; 10] = [
        Category::Matched,
        Category::MissingInSettlement,
        Category::UnknownToPforte,
        Category::AmountMismatch,
        Category::DuplicateSettlement,
        Category::PaidAfterTimeout,
        Category::RefundNotSettled,
        Category::PayoutWithoutBankEntry,
        Category::PayoutAmountMismatch,
        Category::BankEntryWithoutPayout,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Category::Matched => "matched",
            Category::MissingInSettlement => "missing_in_settlement",
            Category::UnknownToPforte => "unknown_to_pforte",
            Category::AmountMismatch => "amount_mismatch",
            Category::DuplicateSettlement => "duplicate_settlement",
            Category::PaidAfterTimeout => "paid_after_timeout",
            Category::RefundNotSettled => "refund_not_settled",
            Category::PayoutWithoutBankEntry => "payout_without_bank_entry",
            Category::PayoutAmountMismatch => "payout_amount_mismatch",
            Category::BankEntryWithoutPayout => "bank_entry_without_payout",
        }
    }

    /// A German label for the finance office's page.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Category::Matched => "abgeglichen",
            Category::MissingInSettlement => "bezahlt, fehlt in der Abrechnung",
            Category::UnknownToPforte => "abgerechnet, in pforte unbekannt",
            Category::AmountMismatch => "Betrag weicht ab",
            Category::DuplicateSettlement => "doppelt abgerechnet",
            Category::PaidAfterTimeout => "nach Zeitablauf bezahlt",
            Category::RefundNotSettled => "Erstattung nicht abgerechnet",
            Category::PayoutWithoutBankEntry => "Auszahlung ohne Kontoumsatz",
            Category::PayoutAmountMismatch => "Auszahlungsbetrag weicht ab",
            Category::BankEntryWithoutPayout => "Kontoumsatz ohne Auszahlung",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.as_str() == text)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Report {
    pub tenant: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub findings: Vec<Finding>,
    pub totals: Totals,
    /// One entry per day of the period, in order.
    pub daily: Vec<DailyTotal>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Finding {
    pub category: Category,
    /// The transaction id, payout reference or bank entry reference the finding is about.
    pub subject: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pforte: Option<PforteEvidence>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub settlement: Vec<SettlementEvidence>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payout: Option<PayoutEvidence>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bank: Option<BankEvidence>,
}

/// What pforte recorded: the payment (or refund) with its amount, status and time, and the two
/// references a clerk looks it up by elsewhere: the provider's transaction reference (in the
/// provider's portal and reports) and the Kassenzeichen (in the budget system and on transfers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct PforteEvidence {
    pub transaction_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refund_id: Option<String>,
    /// The provider's transaction reference, when the provider reported one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_reference: Option<String>,
    /// The Kassenzeichen, when the provider reported one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transaction_reference: Option<String>,
    pub amount: Decimal,
    pub status: String,
    /// When it was paid (or the refund recorded), local time in Germany.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// The Datentransfer submission the payment paid the fee of (`submission_id`), when bound.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub submission_id: Option<String>,
}

/// One settlement row and the import it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct SettlementEvidence {
    pub import_id: String,
    pub line: i64,
    pub transaction: String,
    pub kind: SettlementKind,
    pub gross: Decimal,
    pub fee: Decimal,
    pub payout_reference: String,
    pub booked_on: NaiveDate,
}

/// A payout: the settlement rows sharing one payout reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct PayoutEvidence {
    pub payout_reference: String,
    pub provider_id: String,
    /// Σ(gross − fee): what should arrive at the bank.
    pub net: Decimal,
    pub gross: Decimal,
    pub fee: Decimal,
    pub rows: usize,
    /// The latest booking date of its rows.
    pub booked_on: NaiveDate,
    pub import_ids: Vec<String>,
}

/// One bank entry and the import it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct BankEvidence {
    pub import_id: String,
    pub position: i64,
    pub reference: String,
    pub amount: Decimal,
    pub booked_on: NaiveDate,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_on: Option<NaiveDate>,
    pub remittance: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Totals {
    /// Findings per category; every category is present.
    pub findings: BTreeMap<Category, usize>,
    /// Σ of payments paid in pforte in the period.
    pub paid: Decimal,
    /// Σ gross of settled payments booked in the period (duplicates not counted).
    pub settled: Decimal,
    /// Σ fees of those rows.
    pub fees: Decimal,
    /// Σ net of payouts dated in the period.
    pub payouts: Decimal,
    /// Σ of bank entries booked in the period.
    pub bank: Decimal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct DailyTotal {
    pub date: NaiveDate,
    pub paid: Decimal,
    pub settled: Decimal,
}

impl Report {
    pub(crate) fn count(&self, category: Category) -> usize {
        self.totals.findings.get(&category).copied().unwrap_or(0)
    }

    pub(crate) fn to_json(&self) -> String {
        // Only strings, numbers-as-strings and maps with string keys: serialising cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// `category;transaction;provider reference;Kassenzeichen;pforte evidence;settlement evidence;bank
    /// evidence;amounts`, a header line first, quoted where needed.
    pub(crate) fn to_csv(&self) -> String {
        let mut writer = csv::WriterBuilder::new().delimiter(b';').from_writer(Vec::new());
        let mut write = |fields: [String; 8]| writer.write_record(fields).is_ok();
        let mut ok = write([
            "category".into(),
            "transaction".into(),
            "provider reference".into(),
            "Kassenzeichen".into(),
            "pforte evidence".into(),
            "settlement evidence".into(),
            "bank evidence".into(),
            "amounts".into(),
        ]);
        for finding in &self.findings {
            ok &= write([
                finding.category.as_str().to_owned(),
                spreadsheet_safe(&finding.subject),
                spreadsheet_safe(&finding.provider_reference()),
                spreadsheet_safe(&finding.kassenzeichen()),
                finding.pforte_text(),
                finding.settlement_text(),
                finding.bank_text(),
                finding.amounts_text(),
            ]);
        }
        let bytes = if ok { writer.into_inner().unwrap_or_default() } else { Vec::new() };
        String::from_utf8(bytes).unwrap_or_default()
    }
}

impl Finding {
    /// The provider's transaction reference of the payment the finding is about: as pforte recorded
    /// it, else as the settlement row names it. Empty for payouts and bank entries.
    pub(crate) fn provider_reference(&self) -> String {
        let recorded = self.pforte.as_ref().and_then(|p| p.provider_reference.clone());
        recorded.or_else(|| self.settlement.first().map(|s| s.transaction.clone())).unwrap_or_default()
    }

    /// The Kassenzeichen of the payment the finding is about, when pforte knows one.
    pub(crate) fn kassenzeichen(&self) -> String {
        self.pforte.as_ref().and_then(|p| p.transaction_reference.clone()).unwrap_or_default()
    }

    pub(crate) fn pforte_text(&self) -> String {
        let Some(p) = &self.pforte else { return String::new() };
        let refund = p.refund_id.as_ref().map(|r| format!(" refund {r}")).unwrap_or_default();
        let at = p.at.as_ref().map(|at| format!(" at {at}")).unwrap_or_default();
        let submission = p.submission_id.as_ref().map(|s| format!(", submission {s}")).unwrap_or_default();
        format!("{}{refund}: {} EUR, {}{at}{submission}", p.transaction_id, p.amount, p.status)
    }

    pub(crate) fn settlement_text(&self) -> String {
        let mut parts: Vec<String> = self
            .settlement
            .iter()
            .map(|s| {
                format!(
                    "import {} line {}: {} {} gross {} fee {} payout {} booked {}",
                    s.import_id,
                    s.line,
                    s.transaction,
                    s.kind.as_str(),
                    s.gross,
                    s.fee,
                    s.payout_reference,
                    s.booked_on
                )
            })
            .collect();
        if let Some(p) = &self.payout {
            parts.push(format!(
                "payout {} of {}: {} row(s), gross {} fee {} net {}, last booked {}, import(s) {}",
                p.payout_reference,
                p.provider_id,
                p.rows,
                p.gross,
                p.fee,
                p.net,
                p.booked_on,
                p.import_ids.join(", ")
            ));
        }
        spreadsheet_safe(&parts.join(" | "))
    }

    pub(crate) fn bank_text(&self) -> String {
        let Some(b) = &self.bank else { return String::new() };
        let value = b.value_on.map(|d| format!(" value {d}")).unwrap_or_default();
        spreadsheet_safe(&format!(
            "import {} entry {} ({}): {} EUR booked {}{value}, remittance \"{}\"",
            b.import_id, b.position, b.reference, b.amount, b.booked_on, b.remittance
        ))
    }

    /// The amounts each side holds, side by side.
    pub(crate) fn amounts_text(&self) -> String {
        let mut parts = Vec::new();
        if let Some(p) = &self.pforte {
            parts.push(format!("pforte {}", p.amount));
        }
        for s in &self.settlement {
            parts.push(format!("settlement {}", s.gross));
        }
        if let Some(p) = &self.payout {
            parts.push(format!("payout net {}", p.net));
        }
        if let Some(b) = &self.bank {
            parts.push(format!("bank {}", b.amount));
        }
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_from_outside_are_kept_as_text_in_the_csv() {
        assert_eq!(spreadsheet_safe("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(spreadsheet_safe("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(spreadsheet_safe("-1+2"), "'-1+2");
        assert_eq!(spreadsheet_safe("-aZ_09-x"), "-aZ_09-x", "an id stays searchable");
        assert_eq!(spreadsheet_safe("PO-77"), "PO-77");
    }
}

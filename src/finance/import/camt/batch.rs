//! Batch entries (Sammler, DFÜ-Abkommen Anlage 3): one booking on the account for several transfers,
//! each described in its own `NtryDtls/TxDtls`.

use rust_decimal::Decimal;

use super::BankEntry;
use crate::finance::import::parse_amount;
use crate::registry::DecimalSeparator;

/// One `NtryDtls/TxDtls` of the entry being read.
#[derive(Default)]
pub(super) struct TransactionDraft {
    pub path: String,
    /// `TxDtls/Amt` (from .001.03 on).
    pub amount: Option<(String, String)>,
    /// `TxDtls/AmtDtls/TxAmt/Amt`, where .001.02 has a transaction's amount.
    pub detail_amount: Option<(String, String)>,
    pub credit_debit: Option<String>,
    pub servicer_reference: Option<String>,
    pub remittance: Vec<String>,
}

/// A batch entry (Sammler: one booking for several transfers, DFÜ-Abkommen Anlage 3) whose
/// transactions each carry an EUR amount that add up to the entry's is read as one entry per
/// transaction, with its own amount, reference and remittance: each Kassenzeichen then meets its own
/// amount. Otherwise (one transaction, or amounts missing or not adding up) the entry stays whole,
/// with every transaction's remittance.
pub(super) fn split_batch(entry: BankEntry, transactions: Vec<TransactionDraft>) -> Vec<BankEntry> {
    if transactions.len() < 2 {
        return vec![entry];
    }
    let credit = entry.amount >= Decimal::ZERO;
    let signed: Option<Vec<Decimal>> = transactions
        .iter()
        .map(|t| {
            let (text, currency) = t.amount.as_ref().or(t.detail_amount.as_ref())?;
            let amount = parse_amount(text, DecimalSeparator::Point).filter(|_| currency == "EUR")?;
            let credit = match t.credit_debit.as_deref() {
                Some("CRDT") => true,
                Some("DBIT") => false,
                Some(_) => return None,
                None => credit,
            };
            Some(if credit { amount } else { -amount })
        })
        .collect();
    let Some(amounts) = signed.filter(|a| a.iter().copied().sum::<Decimal>() == entry.amount) else {
        return vec![entry];
    };
    transactions
        .into_iter()
        .zip(amounts)
        .enumerate()
        .map(|(index, (transaction, amount))| BankEntry {
            path: transaction.path,
            reference: transaction
                .servicer_reference
                .filter(|r| !r.is_empty() && r != "NONREF")
                .unwrap_or_else(|| format!("{}/{}", entry.reference, index + 1)),
            amount,
            remittance: transaction.remittance.join(" "),
            ..entry.clone()
        })
        .collect()
}

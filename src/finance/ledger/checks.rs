//! Reading the ledger back: balances, and the checks that it balances and matches the payments.

use rust_decimal::Decimal;

use super::{Account, JournalKind};
use crate::payment::Status;
use crate::store::{Database, StorageError};

/// The balance of one account of a tenant: debits minus credits (a revenue account is negative).
pub async fn balance(db: &Database, tenant_id: &str, account: &Account) -> Result<Decimal, StorageError> {
    Ok(db.ledger_amounts(tenant_id, Some(account)).await?.into_iter().sum())
}

/// The sum of all a tenant's entries: 0 whenever every journal balances.
pub async fn tenant_total(db: &Database, tenant_id: &str) -> Result<Decimal, StorageError> {
    Ok(db.ledger_amounts(tenant_id, None).await?.into_iter().sum())
}

/// The result of walking a tenant's whole journal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantCheck {
    pub journals: u64,
    /// Keys of journals whose entries do not sum to 0 (or that have fewer than two).
    pub unbalanced: Vec<String>,
}

pub async fn check_tenant(db: &Database, tenant_id: &str) -> Result<TenantCheck, StorageError> {
    const PAGE: i64 = 500;
    let mut report = TenantCheck::default();
    let mut after = 0;
    loop {
        let page = db.ledger_page(tenant_id, after, PAGE).await?;
        let Some((last, _)) = page.last() else { break };
        after = last.id;
        for (journal, entries) in &page {
            report.journals += 1;
            if entries.len() < 2 || !entries.iter().map(|e| e.amount).sum::<Decimal>().is_zero() {
                report.unbalanced.push(journal.journal_key.clone());
            }
        }
    }
    Ok(report)
}

/// One payment's journals against its state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransactionCheck {
    /// Paid journals that were not reversed.
    pub paid_journals: u64,
    pub paid: Decimal,
    pub refunded: Decimal,
    pub unbalanced: Vec<String>,
    /// Whether the payment's state says money arrived (PAYED, or paid after pforte's timeout).
    pub payment_paid: bool,
}

impl TransactionCheck {
    /// Paid once exactly when the payment says so, every journal balanced, never refunded beyond.
    pub fn consistent(&self) -> bool {
        let expected_paid = u64::from(self.payment_paid);
        self.paid_journals == expected_paid && self.unbalanced.is_empty() && self.refunded <= self.paid
    }
}

pub async fn check_transaction(db: &Database, transaction_id: &str) -> Result<TransactionCheck, StorageError> {
    let mut report = TransactionCheck::default();
    if let Some(payment) = db.payment(transaction_id).await? {
        report.payment_paid = payment.status == Status::Payed || payment.paid_after_timeout_at.is_some();
    }
    let journals = db.ledger_journals_of_transaction(transaction_id).await?;
    for journal in &journals {
        let entries = db.ledger_entries(journal.id).await?;
        if entries.len() < 2 || !entries.iter().map(|e| e.amount).sum::<Decimal>().is_zero() {
            report.unbalanced.push(journal.journal_key.clone());
        }
        if !in_effect(&journals, journal.id) {
            continue;
        }
        let amount = journal.amount;
        match journal.kind {
            JournalKind::Paid => {
                report.paid_journals += 1;
                report.paid += amount;
            }
            JournalKind::Refund => report.refunded += amount,
            _ => {}
        }
    }
    Ok(report)
}

/// A journal is in effect unless a journal in effect reverses it (a reversal can be reversed).
fn in_effect(journals: &[crate::store::ledger::JournalRow], id: i64) -> bool {
    // Reversals always come after what they reverse, so this walks forward and ends.
    match journals.iter().find(|j| j.reverses == Some(id)) {
        Some(reversal) => !in_effect(journals, reversal.id),
        None => true,
    }
}

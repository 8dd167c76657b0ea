//! The double-entry journal per tenant (SECURITY.md #22, docs/ledger.md). Every event that moves
//! money posts one journal of at least two entries that sum to zero; entries are never changed, a
//! mistake is corrected by a reversing journal. Each journal has a key naming its source event
//! (`paid:<transactionId>`, `refund:<refundId>`, …), so a repeated signal never posts twice.
//!
//! The `post_*` functions run inside the caller's write transaction (from `Database::begin_write`),
//! so a journal commits or rolls back with the change it records, as `AuditLog::append_in` does.
//! Payment announces its money events through `payment::books::PaymentBooks`; [`LedgerBooks`] posts them.

mod checks;
mod payment_books;

use rust_decimal::Decimal;
use sqlx::AnyConnection;

pub use crate::model::{Account, JournalKind};
pub use checks::{balance, check_tenant, check_transaction, tenant_total, TenantCheck, TransactionCheck};
pub use payment_books::LedgerBooks;

use crate::store::ledger::{self, EntryRow, JournalRow};
use crate::store::StorageError;

/// One entry of a journal: debit positive, credit negative.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub account: Account,
    pub amount: Decimal,
}

impl Entry {
    pub fn debit(account: Account, amount: Decimal) -> Entry {
        Entry { account, amount }
    }

    pub fn credit(account: Account, amount: Decimal) -> Entry {
        Entry { account, amount: -amount }
    }
}

/// A journal to post: one money event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJournal {
    pub tenant_id: String,
    /// Names the source event; unique over the whole ledger.
    pub key: String,
    pub kind: JournalKind,
    pub transaction_id: Option<String>,
    pub refund_id: Option<String>,
    /// The event's amount (more than 0); the entries carry the signs.
    pub amount: Decimal,
    pub description: Option<String>,
    pub reverses: Option<i64>,
    pub posted_at: i64,
    pub entries: Vec<Entry>,
}

impl NewJournal {
    /// A journal moving `amount` from `credit` to `debit`, as every money event does; the
    /// transaction and refund it belongs to are set by the caller where there is one.
    fn moving(tenant_id: &str, key: String, kind: JournalKind, amount: Decimal, posted_at: i64) -> NewJournal {
        NewJournal {
            tenant_id: tenant_id.to_owned(),
            key,
            kind,
            transaction_id: None,
            refund_id: None,
            amount,
            description: None,
            reverses: None,
            posted_at,
            entries: Vec::new(),
        }
    }

    fn between(mut self, debit: Account, credit: Account) -> NewJournal {
        self.entries = vec![Entry::debit(debit, self.amount), Entry::credit(credit, self.amount)];
        self
    }
}

/// What a posting did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Posting {
    Posted {
        journal_id: i64,
    },
    /// The source event was posted before (a duplicate signal); nothing was written.
    AlreadyPosted {
        journal_id: i64,
    },
}

impl Posting {
    pub fn journal_id(self) -> i64 {
        match self {
            Posting::Posted { journal_id } | Posting::AlreadyPosted { journal_id } => journal_id,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("journal {key}: its entries sum to {sum}, not 0")]
    Unbalanced { key: String, sum: Decimal },
    #[error("journal {key}: a journal needs at least two entries")]
    TooFewEntries { key: String },
    #[error("journal {key}: the amount must be more than 0")]
    NotPositive { key: String },
    #[error("journal {key} was posted before with other contents")]
    KeyConflict { key: String },
    #[error("payment {transaction_id} has no paid journal, so nothing can be refunded")]
    NotPaid { transaction_id: String },
    #[error("refund {refund_id} of {amount} exceeds the {remaining} left to refund on payment {transaction_id}")]
    RefundExceedsPaid { refund_id: String, transaction_id: String, amount: Decimal, remaining: Decimal },
    #[error("journal {0} does not exist")]
    UnknownJournal(i64),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// A payment settled as PAYED, including PAYED reported after pforte's own timeout (the money
/// arrived, so it is booked; the flag stays on the payment).
#[derive(Debug, Clone, Copy)]
pub struct PaidEvent<'a> {
    pub tenant_id: &'a str,
    pub transaction_id: &'a str,
    pub provider_id: &'a str,
    pub amount: Decimal,
    pub posted_at: i64,
}

#[derive(Debug, Clone, Copy)]
pub struct RefundEvent<'a> {
    pub tenant_id: &'a str,
    pub transaction_id: &'a str,
    pub refund_id: &'a str,
    pub amount: Decimal,
    pub posted_at: i64,
}

/// The provider paid a refund back (seen in its settlement).
#[derive(Debug, Clone, Copy)]
pub struct RefundSettledEvent<'a> {
    pub tenant_id: &'a str,
    pub transaction_id: &'a str,
    pub refund_id: &'a str,
    pub provider_id: &'a str,
    pub amount: Decimal,
    pub posted_at: i64,
}

/// A provider fee from line `line` of settlement import `import_id`.
#[derive(Debug, Clone, Copy)]
pub struct FeeEvent<'a> {
    pub tenant_id: &'a str,
    pub provider_id: &'a str,
    pub import_id: &'a str,
    pub line: u64,
    pub transaction_id: Option<&'a str>,
    pub amount: Decimal,
    pub posted_at: i64,
}

#[derive(Debug, Clone, Copy)]
pub struct PayoutEvent<'a> {
    pub tenant_id: &'a str,
    pub provider_id: &'a str,
    pub payout_reference: &'a str,
    pub amount: Decimal,
    pub posted_at: i64,
}

/// Paid: the provider owes the authority the fee (Forderung an Gebührenertrag).
pub async fn post_paid(conn: &mut AnyConnection, event: &PaidEvent<'_>) -> Result<Posting, LedgerError> {
    let receivable = Account::ProviderReceivable(event.provider_id.to_owned());
    let mut journal = NewJournal::moving(
        event.tenant_id,
        format!("paid:{}", event.transaction_id),
        JournalKind::Paid,
        event.amount,
        event.posted_at,
    )
    .between(receivable, Account::FeeRevenue);
    journal.transaction_id = Some(event.transaction_id.to_owned());
    post(conn, &journal).await
}

/// Refund: the fee revenue shrinks and the authority owes the citizen the amount until the
/// provider pays it back. Refused for a payment without a paid journal, and beyond what is left.
pub async fn post_refund(conn: &mut AnyConnection, event: &RefundEvent<'_>) -> Result<Posting, LedgerError> {
    let key = format!("refund:{}", event.refund_id);
    // A repeat of a posted refund is answered by `post`; the limit applies to new refunds only.
    if ledger::journal_by_key(conn, &key).await?.is_none() {
        if ledger::journal_by_key(conn, &format!("paid:{}", event.transaction_id)).await?.is_none() {
            return Err(LedgerError::NotPaid { transaction_id: event.transaction_id.to_owned() });
        }
        let revenue = ledger::transaction_account_amounts(conn, event.transaction_id, &Account::FeeRevenue).await?;
        let remaining = -revenue.into_iter().sum::<Decimal>();
        if event.amount > remaining {
            return Err(LedgerError::RefundExceedsPaid {
                refund_id: event.refund_id.to_owned(),
                transaction_id: event.transaction_id.to_owned(),
                amount: event.amount,
                remaining,
            });
        }
    }
    let mut journal = NewJournal::moving(event.tenant_id, key, JournalKind::Refund, event.amount, event.posted_at)
        .between(Account::FeeRevenue, Account::RefundsPayable);
    journal.transaction_id = Some(event.transaction_id.to_owned());
    journal.refund_id = Some(event.refund_id.to_owned());
    post(conn, &journal).await
}

/// The provider paid the refund out of the money it holds for the authority.
pub async fn post_refund_settled(
    conn: &mut AnyConnection,
    event: &RefundSettledEvent<'_>,
) -> Result<Posting, LedgerError> {
    let receivable = Account::ProviderReceivable(event.provider_id.to_owned());
    let mut journal = NewJournal::moving(
        event.tenant_id,
        format!("refund_settled:{}", event.refund_id),
        JournalKind::RefundSettled,
        event.amount,
        event.posted_at,
    )
    .between(Account::RefundsPayable, receivable);
    journal.transaction_id = Some(event.transaction_id.to_owned());
    journal.refund_id = Some(event.refund_id.to_owned());
    post(conn, &journal).await
}

/// The provider kept its fee: an expense, and the provider owes that much less.
pub async fn post_provider_fee(conn: &mut AnyConnection, event: &FeeEvent<'_>) -> Result<Posting, LedgerError> {
    let receivable = Account::ProviderReceivable(event.provider_id.to_owned());
    let mut journal = NewJournal::moving(
        event.tenant_id,
        format!("fee:{}:{}", event.import_id, event.line),
        JournalKind::ProviderFee,
        event.amount,
        event.posted_at,
    )
    .between(Account::ProviderFees, receivable);
    journal.transaction_id = event.transaction_id.map(str::to_owned);
    post(conn, &journal).await
}

/// The provider paid money out to the authority's bank account.
pub async fn post_payout(conn: &mut AnyConnection, event: &PayoutEvent<'_>) -> Result<Posting, LedgerError> {
    let receivable = Account::ProviderReceivable(event.provider_id.to_owned());
    let journal = NewJournal::moving(
        event.tenant_id,
        format!("payout:{}", event.payout_reference),
        JournalKind::Payout,
        event.amount,
        event.posted_at,
    )
    .between(Account::Bank, receivable);
    post(conn, &journal).await
}

/// Corrects journal `journal_id` by posting its entries with the signs turned. Once per journal:
/// a second call answers `AlreadyPosted`. The caller records who corrected and why (audit log).
pub async fn post_reversal(
    conn: &mut AnyConnection,
    journal_id: i64,
    reason: &str,
    posted_at: i64,
) -> Result<Posting, LedgerError> {
    let original = ledger::journal(conn, journal_id).await?.ok_or(LedgerError::UnknownJournal(journal_id))?;
    let entries = ledger::entries_of(conn, journal_id)
        .await?
        .into_iter()
        .map(|entry| Entry { account: entry.account, amount: -entry.amount })
        .collect();
    post(
        conn,
        &NewJournal {
            tenant_id: original.tenant_id,
            key: format!("reversal:{journal_id}"),
            kind: JournalKind::Reversal,
            transaction_id: original.transaction_id,
            refund_id: original.refund_id,
            amount: original.amount,
            description: Some(reason.to_owned()),
            reverses: Some(journal_id),
            posted_at,
            entries,
        },
    )
    .await
}

/// Checks and writes one journal. A journal whose key exists already is not written again: the
/// same event answers `AlreadyPosted`, different contents under that key are a `KeyConflict`.
pub async fn post(conn: &mut AnyConnection, journal: &NewJournal) -> Result<Posting, LedgerError> {
    check(journal)?;
    if let Some(existing) = ledger::journal_by_key(conn, &journal.key).await? {
        return same_event(&existing, journal);
    }
    let head = JournalRow {
        id: 0,
        tenant_id: journal.tenant_id.clone(),
        journal_key: journal.key.clone(),
        kind: journal.kind,
        transaction_id: journal.transaction_id.clone(),
        refund_id: journal.refund_id.clone(),
        amount: journal.amount,
        description: journal.description.clone(),
        reverses: journal.reverses,
        posted_at: journal.posted_at,
    };
    let Some(journal_id) = ledger::insert_journal(conn, &head).await? else {
        // Another transaction posted the key between our read and insert (PostgreSQL).
        let existing = ledger::journal_by_key(conn, &journal.key).await?;
        return match existing {
            Some(existing) => same_event(&existing, journal),
            None => Err(LedgerError::KeyConflict { key: journal.key.clone() }),
        };
    };
    for entry in &journal.entries {
        let row = EntryRow { journal_id, account: entry.account.clone(), amount: entry.amount };
        ledger::insert_entry(conn, &journal.tenant_id, &row).await?;
    }
    Ok(Posting::Posted { journal_id })
}

fn check(journal: &NewJournal) -> Result<(), LedgerError> {
    let key = || journal.key.clone();
    if journal.entries.len() < 2 {
        return Err(LedgerError::TooFewEntries { key: key() });
    }
    if journal.amount <= Decimal::ZERO {
        return Err(LedgerError::NotPositive { key: key() });
    }
    let sum: Decimal = journal.entries.iter().map(|e| e.amount).sum();
    if !sum.is_zero() {
        return Err(LedgerError::Unbalanced { key: key(), sum });
    }
    Ok(())
}

fn same_event(existing: &JournalRow, journal: &NewJournal) -> Result<Posting, LedgerError> {
    let same = existing.tenant_id == journal.tenant_id
        && existing.kind == journal.kind
        && existing.transaction_id == journal.transaction_id
        && existing.refund_id == journal.refund_id
        && existing.amount == journal.amount;
    if same {
        Ok(Posting::AlreadyPosted { journal_id: existing.id })
    } else {
        Err(LedgerError::KeyConflict { key: journal.key.clone() })
    }
}

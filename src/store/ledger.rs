//! Rows of `ledger_journals` and `ledger_entries` (docs/ledger.md). Both tables are append-only
//! (triggers refuse UPDATE and DELETE); amounts are stored as exact decimal text and read back as
//! `Decimal`, summed by the caller, never by the database (SQLite would sum text as floating point).
//! A journal's kind and an entry's account are read back as `JournalKind` and `Account`; text that
//! does not parse is corrupt data, reported by its column.

use futures_util::TryStreamExt;
use rust_decimal::Decimal;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{decimal_column, parse_column, Database, StorageResult};
use crate::model::{Account, JournalKind};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalRow {
    pub id: i64,
    pub tenant_id: String,
    pub journal_key: String,
    pub kind: JournalKind,
    pub transaction_id: Option<String>,
    pub refund_id: Option<String>,
    pub amount: Decimal,
    pub description: Option<String>,
    pub reverses: Option<i64>,
    pub posted_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryRow {
    pub journal_id: i64,
    pub account: Account,
    pub amount: Decimal,
}

const JOURNAL_COLUMNS: &str =
    "id, tenant_id, journal_key, kind, transaction_id, refund_id, amount, description, reverses, posted_at";

fn journal_kind_column(kind: &str) -> StorageResult<JournalKind> {
    parse_column("ledger_journals.kind", kind, JournalKind::parse)
}

fn journal_from_row(row: &AnyRow) -> StorageResult<JournalRow> {
    let amount: String = row.try_get("amount")?;
    let kind: String = row.try_get("kind")?;
    Ok(JournalRow {
        id: row.try_get("id")?,
        tenant_id: row.try_get("tenant_id")?,
        journal_key: row.try_get("journal_key")?,
        kind: journal_kind_column(&kind)?,
        transaction_id: row.try_get("transaction_id")?,
        refund_id: row.try_get("refund_id")?,
        amount: decimal_column("ledger_journals.amount", &amount)?,
        description: row.try_get("description")?,
        reverses: row.try_get("reverses")?,
        posted_at: row.try_get("posted_at")?,
    })
}

fn entry_from_row(row: &AnyRow) -> StorageResult<EntryRow> {
    let amount: String = row.try_get("amount")?;
    let account: String = row.try_get("account")?;
    Ok(EntryRow {
        journal_id: row.try_get("journal_id")?,
        account: parse_column("ledger_entries.account", &account, Account::parse)?,
        amount: decimal_column("ledger_entries.amount", &amount)?,
    })
}

/// Inserts a journal head unless one with its key exists. Returns the new id, or `None` when the
/// key was taken (a duplicate source event), without aborting the caller's transaction.
pub(crate) async fn insert_journal(conn: &mut AnyConnection, journal: &JournalRow) -> StorageResult<Option<i64>> {
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO ledger_journals \
         (tenant_id, journal_key, kind, transaction_id, refund_id, amount, description, reverses, posted_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (journal_key) DO NOTHING RETURNING id",
    )
    .bind(&journal.tenant_id)
    .bind(&journal.journal_key)
    .bind(journal.kind.as_str())
    .bind(&journal.transaction_id)
    .bind(&journal.refund_id)
    .bind(journal.amount.to_string())
    .bind(&journal.description)
    .bind(journal.reverses)
    .bind(journal.posted_at)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(id)
}

pub(crate) async fn insert_entry(conn: &mut AnyConnection, tenant_id: &str, entry: &EntryRow) -> StorageResult<()> {
    sqlx::query("INSERT INTO ledger_entries (journal_id, tenant_id, account, amount) VALUES ($1, $2, $3, $4)")
        .bind(entry.journal_id)
        .bind(tenant_id)
        .bind(entry.account.code())
        .bind(entry.amount.to_string())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub(crate) async fn journal_by_key(conn: &mut AnyConnection, key: &str) -> StorageResult<Option<JournalRow>> {
    let row = sqlx::query(&format!("SELECT {JOURNAL_COLUMNS} FROM ledger_journals WHERE journal_key = $1"))
        .bind(key)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(journal_from_row).transpose()
}

pub(crate) async fn journal(conn: &mut AnyConnection, id: i64) -> StorageResult<Option<JournalRow>> {
    let row = sqlx::query(&format!("SELECT {JOURNAL_COLUMNS} FROM ledger_journals WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(journal_from_row).transpose()
}

pub(crate) async fn entries_of(conn: &mut AnyConnection, journal_id: i64) -> StorageResult<Vec<EntryRow>> {
    let rows = sqlx::query("SELECT journal_id, account, amount FROM ledger_entries WHERE journal_id = $1 ORDER BY id")
        .bind(journal_id)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(entry_from_row).collect()
}

/// The amounts one payment's journals posted to `account` (e.g. what is left to refund).
pub(crate) async fn transaction_account_amounts(
    conn: &mut AnyConnection,
    transaction_id: &str,
    account: &Account,
) -> StorageResult<Vec<Decimal>> {
    let amounts: Vec<String> = sqlx::query_scalar(
        "SELECT e.amount FROM ledger_entries e JOIN ledger_journals j ON j.id = e.journal_id \
         WHERE j.transaction_id = $1 AND e.account = $2",
    )
    .bind(transaction_id)
    .bind(account.code())
    .fetch_all(&mut *conn)
    .await?;
    amounts.iter().map(|amount| decimal_column("ledger_entries.amount", amount)).collect()
}

impl Database {
    /// Every amount posted to one account of a tenant (`None`: to any account), streamed.
    pub async fn ledger_amounts(&self, tenant_id: &str, account: Option<&Account>) -> StorageResult<Vec<Decimal>> {
        let query = match account {
            Some(account) => sqlx::query("SELECT amount FROM ledger_entries WHERE tenant_id = $1 AND account = $2")
                .bind(tenant_id)
                .bind(account.code()),
            None => sqlx::query("SELECT amount FROM ledger_entries WHERE tenant_id = $1").bind(tenant_id),
        };
        let mut rows = query.fetch(self.pool());
        let mut amounts = Vec::new();
        while let Some(row) = rows.try_next().await? {
            let amount: String = row.try_get("amount")?;
            amounts.push(decimal_column("ledger_entries.amount", &amount)?);
        }
        Ok(amounts)
    }

    pub async fn ledger_journals_of_transaction(&self, transaction_id: &str) -> StorageResult<Vec<JournalRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {JOURNAL_COLUMNS} FROM ledger_journals WHERE transaction_id = $1 ORDER BY id"
        ))
        .bind(transaction_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(journal_from_row).collect()
    }

    /// A tenant's journals after `after_id`, at most `limit`, with their entries.
    pub async fn ledger_page(
        &self,
        tenant_id: &str,
        after_id: i64,
        limit: i64,
    ) -> StorageResult<Vec<(JournalRow, Vec<EntryRow>)>> {
        let mut conn = self.pool().acquire().await?;
        let rows = sqlx::query(&format!(
            "SELECT {JOURNAL_COLUMNS} FROM ledger_journals WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3"
        ))
        .bind(tenant_id)
        .bind(after_id)
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
        let mut page = Vec::with_capacity(rows.len());
        for row in &rows {
            let journal = journal_from_row(row)?;
            let entries = entries_of(&mut conn, journal.id).await?;
            page.push((journal, entries));
        }
        Ok(page)
    }

    /// The highest journal id so far: an export reads up to it, so its pages see one state.
    pub async fn ledger_last_journal_id(&self) -> StorageResult<i64> {
        let id: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM ledger_journals").fetch_one(self.pool()).await?;
        Ok(id.unwrap_or(0))
    }
}

/// One line of a booking export: a paid, refund or reversal journal with its payment's details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookingRow {
    pub journal_id: i64,
    pub kind: JournalKind,
    /// For a reversal: the kind of the journal it reverses.
    pub reversed_kind: Option<JournalKind>,
    pub amount: Decimal,
    pub refund_id: Option<String>,
    pub reverses: Option<i64>,
    pub posted_at: i64,
    pub transaction_id: String,
    pub request_id: String,
    pub originator_id: String,
    pub provider_id: String,
    pub request: String,
    pub paid_after_timeout_at: Option<i64>,
    /// When the paid journal was posted: the paid-at time until `payments.paid_at` exists.
    pub paid_posted_at: Option<i64>,
    pub transaction_reference: Option<String>,
    pub payment_method: Option<String>,
    pub payment_method_detail: Option<String>,
    pub paid_at: Option<i64>,
    pub effective_request: Option<String>,
}

/// Where a booking page starts: after this (posted_at, journal id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BookingCursor {
    pub posted_at: i64,
    pub journal_id: i64,
}

impl BookingCursor {
    pub const START: BookingCursor = BookingCursor { posted_at: i64::MIN, journal_id: i64::MIN };
}

/// Which bookings an export reads: one tenant, posted in `[from_millis, until_millis)`, journals up
/// to `last_journal_id` (fixed when the export starts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookingQuery {
    pub tenant_id: String,
    pub from_millis: i64,
    pub until_millis: i64,
    pub last_journal_id: i64,
}

const BOOKING_SELECT: &str = "SELECT j.id AS journal_id, j.kind, r.kind AS reversed_kind, j.amount, j.refund_id, \
       j.reverses, j.posted_at, p.transaction_id, p.request_id, p.originator_id, p.provider_id, p.request, \
       p.paid_after_timeout_at, \
       (SELECT pj.posted_at FROM ledger_journals pj WHERE pj.journal_key = 'paid:' || p.transaction_id) \
         AS paid_posted_at, \
       p.transaction_reference, p.payment_method, p.payment_method_detail, p.paid_at, p.effective_request \
     FROM ledger_journals j \
     JOIN payments p ON p.transaction_id = j.transaction_id \
     LEFT JOIN ledger_journals r ON r.id = j.reverses \
     WHERE j.tenant_id = $1 AND j.posted_at >= $2 AND j.posted_at < $3 AND j.id <= $4 \
       AND (j.kind IN ('paid', 'refund') OR (j.kind = 'reversal' AND r.kind IN ('paid', 'refund'))) \
       AND (j.posted_at > $5 OR (j.posted_at = $5 AND j.id > $6)) \
     ORDER BY j.posted_at, j.id LIMIT $7";

fn booking_from_row(row: &AnyRow) -> StorageResult<BookingRow> {
    let amount: String = row.try_get("amount")?;
    let kind: String = row.try_get("kind")?;
    let reversed_kind: Option<String> = row.try_get("reversed_kind")?;
    Ok(BookingRow {
        journal_id: row.try_get("journal_id")?,
        kind: journal_kind_column(&kind)?,
        reversed_kind: reversed_kind.as_deref().map(journal_kind_column).transpose()?,
        amount: decimal_column("ledger_journals.amount", &amount)?,
        refund_id: row.try_get("refund_id")?,
        reverses: row.try_get("reverses")?,
        posted_at: row.try_get("posted_at")?,
        transaction_id: row.try_get("transaction_id")?,
        request_id: row.try_get("request_id")?,
        originator_id: row.try_get("originator_id")?,
        provider_id: row.try_get("provider_id")?,
        request: row.try_get("request")?,
        paid_after_timeout_at: row.try_get("paid_after_timeout_at")?,
        paid_posted_at: row.try_get("paid_posted_at")?,
        transaction_reference: row.try_get("transaction_reference")?,
        payment_method: row.try_get("payment_method")?,
        payment_method_detail: row.try_get("payment_method_detail")?,
        paid_at: row.try_get("paid_at")?,
        effective_request: row.try_get("effective_request")?,
    })
}

impl Database {
    /// One page of bookings after `cursor`, in (posted_at, journal id) order.
    pub async fn booking_page(
        &self,
        query: &BookingQuery,
        cursor: BookingCursor,
        limit: i64,
    ) -> StorageResult<Vec<BookingRow>> {
        let rows = sqlx::query(BOOKING_SELECT)
            .bind(&query.tenant_id)
            .bind(query.from_millis)
            .bind(query.until_millis)
            .bind(query.last_journal_id)
            .bind(cursor.posted_at)
            .bind(cursor.journal_id)
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(booking_from_row).collect()
    }
}

impl Database {
    pub async fn ledger_entries(&self, journal_id: i64) -> StorageResult<Vec<EntryRow>> {
        let mut conn = self.pool().acquire().await?;
        entries_of(&mut conn, journal_id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{is_corrupt_column, test_database, StorageError};

    #[tokio::test]
    async fn a_journal_or_entry_amount_that_is_no_decimal_is_reported_by_its_column() -> Result<(), StorageError> {
        let (db, _dir) = test_database().await?;
        let mut conn = db.writer().acquire().await?;
        // The ledger refuses UPDATE, so the corrupt text is written as it would be by hand.
        for (key, amount) in [("good", "12.30"), ("bad", "12,30")] {
            sqlx::query(
                "INSERT INTO ledger_journals (tenant_id, journal_key, kind, amount, posted_at) \
                 VALUES ('t', $1, 'paid', $2, 1)",
            )
            .bind(key)
            .bind(amount)
            .execute(&mut *conn)
            .await?;
        }
        let good = journal_by_key(&mut conn, "good").await?.map(|j| j.amount.to_string());
        assert_eq!(good.as_deref(), Some("12.30"));
        let error = journal_by_key(&mut conn, "bad").await.expect_err("a comma amount must not read");
        assert!(is_corrupt_column(&error, "ledger_journals.amount"), "{error}");

        let id = journal_by_key(&mut conn, "good").await?.map_or(0, |j| j.id);
        sqlx::query(
            "INSERT INTO ledger_entries (journal_id, tenant_id, account, amount) VALUES ($1, 't', 'bank', 'NaN')",
        )
        .bind(id)
        .execute(&mut *conn)
        .await?;
        let error = entries_of(&mut conn, id).await.expect_err("NaN must not read");
        assert!(is_corrupt_column(&error, "ledger_entries.amount"), "{error}");
        let error = db.ledger_amounts("t", None).await.expect_err("NaN must not be summed");
        assert!(is_corrupt_column(&error, "ledger_entries.amount"), "{error}");
        Ok(())
    }

    #[tokio::test]
    async fn a_journal_kind_or_entry_account_pforte_does_not_know_is_reported_by_its_column() -> Result<(), StorageError>
    {
        let (db, _dir) = test_database().await?;
        let mut conn = db.writer().acquire().await?;
        for (key, kind) in [("good", "refund_settled"), ("bad", "chargeback")] {
            sqlx::query(
                "INSERT INTO ledger_journals (tenant_id, journal_key, kind, amount, posted_at) \
                 VALUES ('t', $1, $2, '1.00', 1)",
            )
            .bind(key)
            .bind(kind)
            .execute(&mut *conn)
            .await?;
        }
        let good = journal_by_key(&mut conn, "good").await?;
        assert_eq!(good.as_ref().map(|j| j.kind), Some(JournalKind::RefundSettled));
        let error = journal_by_key(&mut conn, "bad").await.expect_err("an unknown kind must not read");
        assert!(is_corrupt_column(&error, "ledger_journals.kind"), "{error}");
        assert!(!error.to_string().contains("chargeback"), "the value stays out of the message: {error}");

        let id = good.map_or(0, |j| j.id);
        sqlx::query(
            "INSERT INTO ledger_entries (journal_id, tenant_id, account, amount) \
             VALUES ($1, 't', 'provider_receivable:sim-pay', '1.00')",
        )
        .bind(id)
        .execute(&mut *conn)
        .await?;
        let entries = entries_of(&mut conn, id).await?;
        let accounts: Vec<Account> = entries.into_iter().map(|e| e.account).collect();
        assert_eq!(accounts, [Account::ProviderReceivable("sim-pay".into())]);
        // An empty provider is no account either.
        for (journal_key, account) in [("bad-account", "cash"), ("no-provider", "provider_receivable:")] {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO ledger_journals (tenant_id, journal_key, kind, amount, posted_at) \
                 VALUES ('t', $1, 'paid', '1.00', 1) RETURNING id",
            )
            .bind(journal_key)
            .fetch_one(&mut *conn)
            .await?;
            sqlx::query(
                "INSERT INTO ledger_entries (journal_id, tenant_id, account, amount) VALUES ($1, 't', $2, '1.00')",
            )
            .bind(id)
            .bind(account)
            .execute(&mut *conn)
            .await?;
            let error = entries_of(&mut conn, id).await.expect_err(account);
            assert!(is_corrupt_column(&error, "ledger_entries.account"), "{error}");
            assert!(!error.to_string().contains(account), "the value stays out of the message: {error}");
        }
        Ok(())
    }
}

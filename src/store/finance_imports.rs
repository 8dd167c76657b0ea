//! Imported settlement reports and bank statements (`finance_imports`, `settlement_rows`,
//! `bank_entries`), and the reads that gather what reconciliation compares. An import's rows are
//! written inside the caller's write transaction, so a file is stored whole or not at all.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{date_column, decimal_column, parse_column, Database, StorageResult};
use crate::model::{ImportKind, PaymentStatus, RefundStatus, SettlementKind};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportRecord {
    pub import_id: String,
    pub tenant_id: String,
    pub kind: ImportKind,
    pub provider_id: Option<String>,
    pub content_sha256: String,
    pub file_name: String,
    pub row_count: i64,
    pub imported_at: i64,
    pub imported_by: String,
}

/// One stored row of a settlement report: what an import writes and what reconciliation compares.
/// (The row as read from the file, before it belongs to an import, is
/// `finance::import::settlement::SettlementRow`.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettlementRecord {
    pub import_id: String,
    /// Where the row starts in the file (1 = the first line).
    pub line: i64,
    pub tenant_id: String,
    pub provider_id: String,
    /// The provider's transaction id (pforte's `provider_reference`).
    pub provider_transaction: String,
    pub kind: SettlementKind,
    /// Negative for a refund.
    pub gross: Decimal,
    pub fee: Decimal,
    pub payout_reference: String,
    pub booked_on: NaiveDate,
}

/// One stored entry of a bank statement: what an import writes and what reconciliation compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BankEntryRecord {
    pub import_id: String,
    pub position: i64,
    pub tenant_id: String,
    pub message: String,
    pub account_iban: String,
    pub statement_id: String,
    pub entry_reference: String,
    /// Credits positive, debits negative.
    pub amount: Decimal,
    pub currency: String,
    pub booked_on: NaiveDate,
    pub value_on: Option<NaiveDate>,
    pub remittance: String,
}

/// A payment as reconciliation sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentForReconcile {
    pub transaction_id: String,
    pub provider_id: String,
    pub provider_reference: Option<String>,
    /// The Kassenzeichen the provider reported, when it did.
    pub transaction_reference: Option<String>,
    pub gros_amount: Decimal,
    pub status: PaymentStatus,
    pub timed_out_at: Option<i64>,
    pub paid_after_timeout_at: Option<i64>,
    /// When it was paid, in milliseconds.
    pub paid_at: i64,
    /// The Datentransfer submission the payment paid for, when it is bound to one.
    pub submission_id: Option<String>,
}

/// A refund as reconciliation sees it (from `payment_refunds`, joined with its payment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundForReconcile {
    pub refund_id: String,
    pub transaction_id: String,
    pub provider_id: String,
    pub provider_reference: Option<String>,
    pub transaction_reference: Option<String>,
    pub amount: Decimal,
    pub status: RefundStatus,
    pub created_at: i64,
}

/// The import already stored for this content, if any.
pub(crate) async fn find_import(
    conn: &mut AnyConnection,
    tenant_id: &str,
    kind: ImportKind,
    content_sha256: &str,
) -> StorageResult<Option<String>> {
    let found: Option<String> = sqlx::query_scalar(
        "SELECT import_id FROM finance_imports WHERE tenant_id = $1 AND kind = $2 AND content_sha256 = $3",
    )
    .bind(tenant_id)
    .bind(kind.as_str())
    .bind(content_sha256)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(found)
}

pub(crate) async fn insert_import(conn: &mut AnyConnection, record: &ImportRecord) -> StorageResult<()> {
    sqlx::query(
        "INSERT INTO finance_imports (import_id, tenant_id, kind, provider_id, content_sha256, file_name, \
         row_count, imported_at, imported_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&record.import_id)
    .bind(&record.tenant_id)
    .bind(record.kind.as_str())
    .bind(&record.provider_id)
    .bind(&record.content_sha256)
    .bind(&record.file_name)
    .bind(record.row_count)
    .bind(record.imported_at)
    .bind(&record.imported_by)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(crate) async fn insert_settlement_row(conn: &mut AnyConnection, row: &SettlementRecord) -> StorageResult<()> {
    sqlx::query(
        "INSERT INTO settlement_rows (import_id, line, tenant_id, provider_id, provider_transaction, kind, gross, \
         fee, payout_reference, booked_on) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&row.import_id)
    .bind(row.line)
    .bind(&row.tenant_id)
    .bind(&row.provider_id)
    .bind(&row.provider_transaction)
    .bind(row.kind.as_str())
    .bind(row.gross.to_string())
    .bind(row.fee.to_string())
    .bind(&row.payout_reference)
    .bind(row.booked_on.to_string())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(crate) async fn insert_bank_entry(conn: &mut AnyConnection, entry: &BankEntryRecord) -> StorageResult<()> {
    sqlx::query(
        "INSERT INTO bank_entries (import_id, position, tenant_id, message, account_iban, statement_id, \
         entry_reference, amount, currency, booked_on, value_on, remittance) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(&entry.import_id)
    .bind(entry.position)
    .bind(&entry.tenant_id)
    .bind(&entry.message)
    .bind(&entry.account_iban)
    .bind(&entry.statement_id)
    .bind(&entry.entry_reference)
    .bind(entry.amount.to_string())
    .bind(&entry.currency)
    .bind(entry.booked_on.to_string())
    .bind(entry.value_on.map(|d| d.to_string()))
    .bind(&entry.remittance)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// How a settlement row may name a payment (reconcile.rs, `settlement_names`): by the provider's
/// reference, pforte's transaction id, or its end-to-end reference (the id's first 35 characters,
/// `model::END_TO_END_ID_MAX`). SQL expressions over `payments`.
const SETTLEMENT_NAMES: [&str; 3] = ["provider_reference", "transaction_id", "SUBSTR(transaction_id, 1, 35)"];
// The 35 above and in `payments_for_reconcile` is the end-to-end reference's length.
const _: () = assert!(crate::model::END_TO_END_ID_MAX == 35);

/// Of the given settlement row transactions, those naming a payment pforte holds for another tenant:
/// (the row's transaction, tenant), sorted.
pub(crate) async fn transactions_of_other_tenants(
    conn: &mut AnyConnection,
    provider_id: &str,
    tenant_id: &str,
    references: &[String],
) -> StorageResult<Vec<(String, String)>> {
    let mut found = Vec::new();
    // Bounded parameter lists: SQLite allows 32766 parameters, but a statement per few hundred keeps
    // the query text small on both backends.
    for chunk in references.chunks(300) {
        let placeholders: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 3)).collect();
        for name in SETTLEMENT_NAMES {
            let sql = format!(
                "SELECT {name} AS named, endpoint_id FROM payments WHERE provider_id = $1 AND endpoint_id <> $2 \
                 AND {name} IN ({})",
                placeholders.join(", ")
            );
            let mut query = sqlx::query(&sql).bind(provider_id).bind(tenant_id);
            for reference in chunk {
                query = query.bind(reference);
            }
            for row in query.fetch_all(&mut *conn).await? {
                found.push((row.try_get("named")?, row.try_get("endpoint_id")?));
            }
        }
    }
    found.sort_unstable();
    found.dedup();
    Ok(found)
}

/// pforte's transaction ids of this tenant's paid payments at `provider_id`, by the name a
/// settlement row gives them (the provider's reference, pforte's id or its end-to-end reference), for
/// the names given (in bounded chunks, like `transactions_of_other_tenants`).
pub(crate) async fn paid_transactions_by_reference(
    conn: &mut AnyConnection,
    tenant_id: &str,
    provider_id: &str,
    references: &[String],
) -> StorageResult<std::collections::HashMap<String, String>> {
    let mut found = std::collections::HashMap::new();
    for chunk in references.chunks(300) {
        let placeholders: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 3)).collect();
        // The provider's reference first: it wins over an id another payment might share with it.
        for name in SETTLEMENT_NAMES.into_iter().rev() {
            let sql = format!(
                "SELECT {name} AS named, transaction_id FROM payments WHERE endpoint_id = $1 AND provider_id = $2 \
                 AND (status = 'PAYED' OR paid_after_timeout_at IS NOT NULL) AND {name} IN ({})",
                placeholders.join(", ")
            );
            let mut query = sqlx::query(&sql).bind(tenant_id).bind(provider_id);
            for reference in chunk {
                query = query.bind(reference);
            }
            for row in query.fetch_all(&mut *conn).await? {
                found.insert(row.try_get("named")?, row.try_get("transaction_id")?);
            }
        }
    }
    Ok(found)
}

/// The payout references this tenant's settlement rows name, each with its provider.
pub(crate) async fn payout_references(
    conn: &mut AnyConnection,
    tenant_id: &str,
) -> StorageResult<Vec<(String, String)>> {
    let rows = sqlx::query(
        "SELECT DISTINCT payout_reference, provider_id FROM settlement_rows WHERE tenant_id = $1 \
         ORDER BY payout_reference, provider_id",
    )
    .bind(tenant_id)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(|row| Ok((row.try_get("payout_reference")?, row.try_get("provider_id")?))).collect()
}

fn settlement_from_row(row: &AnyRow) -> StorageResult<SettlementRecord> {
    let text = |column: &str| -> StorageResult<String> { Ok(row.try_get(column)?) };
    Ok(SettlementRecord {
        import_id: row.try_get("import_id")?,
        line: row.try_get("line")?,
        tenant_id: row.try_get("tenant_id")?,
        provider_id: row.try_get("provider_id")?,
        provider_transaction: row.try_get("provider_transaction")?,
        kind: parse_column("settlement_rows.kind", &text("kind")?, SettlementKind::parse)?,
        gross: decimal_column("settlement_rows.gross", &text("gross")?)?,
        fee: decimal_column("settlement_rows.fee", &text("fee")?)?,
        payout_reference: row.try_get("payout_reference")?,
        booked_on: date_column("settlement_rows.booked_on", &text("booked_on")?)?,
    })
}

fn bank_entry_from_row(row: &AnyRow) -> StorageResult<BankEntryRecord> {
    let text = |column: &str| -> StorageResult<String> { Ok(row.try_get(column)?) };
    let value_on: Option<String> = row.try_get("value_on")?;
    Ok(BankEntryRecord {
        import_id: row.try_get("import_id")?,
        position: row.try_get("position")?,
        tenant_id: row.try_get("tenant_id")?,
        message: row.try_get("message")?,
        account_iban: row.try_get("account_iban")?,
        statement_id: row.try_get("statement_id")?,
        entry_reference: row.try_get("entry_reference")?,
        amount: decimal_column("bank_entries.amount", &text("amount")?)?,
        currency: row.try_get("currency")?,
        booked_on: date_column("bank_entries.booked_on", &text("booked_on")?)?,
        value_on: value_on.map(|d| date_column("bank_entries.value_on", &d)).transpose()?,
        remittance: row.try_get("remittance")?,
    })
}

/// Dates and instants bounding what one reconciliation reads: `from`/`to` are `YYYY-MM-DD`
/// (inclusive), the millis the same days as instants in the authority's time zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconcileWindow {
    pub from: String,
    pub to: String,
    pub from_millis: i64,
    pub to_millis: i64,
    /// The reported period itself; settlement rows booked in it bring their payments along, however
    /// long ago those were paid.
    pub period_from: String,
    pub period_to: String,
}

impl Database {
    /// Payments paid in the window (PAYED, or paid after pforte timed them out), and every payment a
    /// settlement row of the period refers to.
    pub async fn payments_for_reconcile(
        &self,
        tenant_id: &str,
        window: &ReconcileWindow,
    ) -> StorageResult<Vec<PaymentForReconcile>> {
        let rows = sqlx::query(
            "SELECT transaction_id, provider_id, provider_reference, transaction_reference, gros_amount, status, \
               timed_out_at, paid_after_timeout_at, COALESCE(paid_at, updated_at) AS paid_at, \
               (SELECT t.submission_id FROM transfer_submissions t \
                WHERE t.payment_transaction_id = p.transaction_id) AS submission_id \
             FROM payments p WHERE endpoint_id = $1 AND ( \
               ((status = 'PAYED' OR paid_after_timeout_at IS NOT NULL) \
                 AND COALESCE(paid_at, updated_at) BETWEEN $2 AND $3) \
               OR EXISTS (SELECT 1 FROM settlement_rows s WHERE s.tenant_id = $1 AND s.provider_id = p.provider_id \
                          AND s.provider_transaction IN (p.provider_reference, p.transaction_id, \
                                                         SUBSTR(p.transaction_id, 1, 35)) \
                          AND s.booked_on BETWEEN $4 AND $5)) \
             ORDER BY transaction_id",
        )
        .bind(tenant_id)
        .bind(window.from_millis)
        .bind(window.to_millis)
        .bind(&window.period_from)
        .bind(&window.period_to)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                let gros_amount: String = row.try_get("gros_amount")?;
                let status: String = row.try_get("status")?;
                Ok(PaymentForReconcile {
                    transaction_id: row.try_get("transaction_id")?,
                    provider_id: row.try_get("provider_id")?,
                    provider_reference: row.try_get("provider_reference")?,
                    transaction_reference: row.try_get("transaction_reference")?,
                    gros_amount: decimal_column("payments.gros_amount", &gros_amount)?,
                    status: parse_column("payments.status", &status, PaymentStatus::parse)?,
                    timed_out_at: row.try_get("timed_out_at")?,
                    paid_after_timeout_at: row.try_get("paid_after_timeout_at")?,
                    paid_at: row.try_get("paid_at")?,
                    submission_id: row.try_get("submission_id")?,
                })
            })
            .collect()
    }

    /// Refunds created in the window, with their payment's provider and reference.
    /// A FAILED refund paid nothing back and is left out; reconciliation decides what the others
    /// should have left in a settlement (a PENDING one may already be at the provider).
    pub async fn refunds_for_reconcile(
        &self,
        tenant_id: &str,
        window: &ReconcileWindow,
    ) -> StorageResult<Vec<RefundForReconcile>> {
        let rows = sqlx::query(
            "SELECT r.refund_id, r.transaction_id, p.provider_id, p.provider_reference, p.transaction_reference, \
               r.amount, r.status, r.created_at \
             FROM payment_refunds r JOIN payments p ON p.transaction_id = r.transaction_id \
             WHERE p.endpoint_id = $1 AND r.created_at BETWEEN $2 AND $3 \
               AND r.status <> 'FAILED' ORDER BY r.refund_id",
        )
        .bind(tenant_id)
        .bind(window.from_millis)
        .bind(window.to_millis)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                let amount: String = row.try_get("amount")?;
                let status: String = row.try_get("status")?;
                Ok(RefundForReconcile {
                    refund_id: row.try_get("refund_id")?,
                    transaction_id: row.try_get("transaction_id")?,
                    provider_id: row.try_get("provider_id")?,
                    provider_reference: row.try_get("provider_reference")?,
                    transaction_reference: row.try_get("transaction_reference")?,
                    amount: decimal_column("payment_refunds.amount", &amount)?,
                    status: parse_column("payment_refunds.status", &status, RefundStatus::parse)?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// Settlement rows booked in the window, oldest first (file order within a day).
    pub async fn settlement_rows_for_reconcile(
        &self,
        tenant_id: &str,
        window: &ReconcileWindow,
    ) -> StorageResult<Vec<SettlementRecord>> {
        let rows = sqlx::query(
            "SELECT s.import_id, s.line, s.tenant_id, s.provider_id, s.provider_transaction, s.kind, s.gross, s.fee, \
               s.payout_reference, s.booked_on \
             FROM settlement_rows s JOIN finance_imports i ON i.import_id = s.import_id \
             WHERE s.tenant_id = $1 AND s.booked_on BETWEEN $2 AND $3 \
             ORDER BY s.booked_on, i.imported_at, s.import_id, s.line",
        )
        .bind(tenant_id)
        .bind(&window.from)
        .bind(&window.to)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(settlement_from_row).collect()
    }

    /// Bank entries booked in the window, oldest first.
    pub async fn bank_entries_for_reconcile(
        &self,
        tenant_id: &str,
        window: &ReconcileWindow,
    ) -> StorageResult<Vec<BankEntryRecord>> {
        let rows = sqlx::query(
            "SELECT b.import_id, b.position, b.tenant_id, b.message, b.account_iban, b.statement_id, \
               b.entry_reference, b.amount, b.currency, b.booked_on, b.value_on, b.remittance \
             FROM bank_entries b JOIN finance_imports i ON i.import_id = b.import_id \
             WHERE b.tenant_id = $1 AND b.booked_on BETWEEN $2 AND $3 \
             ORDER BY b.booked_on, i.imported_at, b.import_id, b.position",
        )
        .bind(tenant_id)
        .bind(&window.from)
        .bind(&window.to)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(bank_entry_from_row).collect()
    }

    /// One import's header row.
    pub async fn finance_import(&self, import_id: &str) -> StorageResult<Option<ImportRecord>> {
        let row = sqlx::query(&format!("SELECT {IMPORT_COLUMNS} FROM finance_imports WHERE import_id = $1"))
            .bind(import_id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(import_from_row).transpose()
    }

    /// The latest `limit` imports of a tenant, newest first: who imported which file when.
    pub async fn finance_imports_of(&self, tenant_id: &str, limit: i64) -> StorageResult<Vec<ImportRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {IMPORT_COLUMNS} FROM finance_imports WHERE tenant_id = $1 \
             ORDER BY imported_at DESC, import_id LIMIT $2"
        ))
        .bind(tenant_id)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(import_from_row).collect()
    }
}

const IMPORT_COLUMNS: &str =
    "import_id, tenant_id, kind, provider_id, content_sha256, file_name, row_count, imported_at, imported_by";

fn import_from_row(row: &AnyRow) -> StorageResult<ImportRecord> {
    let kind: String = row.try_get("kind")?;
    Ok(ImportRecord {
        import_id: row.try_get("import_id")?,
        tenant_id: row.try_get("tenant_id")?,
        kind: parse_column("finance_imports.kind", &kind, ImportKind::parse)?,
        provider_id: row.try_get("provider_id")?,
        content_sha256: row.try_get("content_sha256")?,
        file_name: row.try_get("file_name")?,
        row_count: row.try_get("row_count")?,
        imported_at: row.try_get("imported_at")?,
        imported_by: row.try_get("imported_by")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{is_corrupt_column, test_database, StorageError};

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap_or_default()
    }

    /// All of November 2026 as dates, and as instants wide enough for the rows below.
    fn window() -> ReconcileWindow {
        ReconcileWindow {
            from: "2026-11-01".into(),
            to: "2026-11-30".into(),
            from_millis: 0,
            to_millis: i64::MAX,
            period_from: "2026-11-01".into(),
            period_to: "2026-11-30".into(),
        }
    }

    /// A database holding one import with one settlement row and one bank entry, one paid payment
    /// and one refund of it, all valid.
    async fn stored() -> Result<(Database, tempfile::TempDir), StorageError> {
        let (db, dir) = test_database().await?;
        let mut conn = db.writer().acquire().await?;
        let import = ImportRecord {
            import_id: "imp-1".into(),
            tenant_id: "t".into(),
            kind: ImportKind::Settlement,
            provider_id: Some("p".into()),
            content_sha256: "00".into(),
            file_name: "settlement.csv".into(),
            row_count: 1,
            imported_at: 1,
            imported_by: "test".into(),
        };
        insert_import(&mut conn, &import).await?;
        let row = SettlementRecord {
            import_id: "imp-1".into(),
            line: 2,
            tenant_id: "t".into(),
            provider_id: "p".into(),
            provider_transaction: "P-1".into(),
            kind: SettlementKind::Payment,
            gross: Decimal::new(2000, 2),
            fee: Decimal::new(35, 2),
            payout_reference: "PO-1".into(),
            booked_on: day("2026-11-29"),
        };
        insert_settlement_row(&mut conn, &row).await?;
        let entry = BankEntryRecord {
            import_id: "imp-1".into(),
            position: 1,
            tenant_id: "t".into(),
            message: "camt.053".into(),
            account_iban: "DE02120300000000202051".into(),
            statement_id: "S-1".into(),
            entry_reference: "B-1".into(),
            amount: Decimal::new(1965, 2),
            currency: "EUR".into(),
            booked_on: day("2026-11-30"),
            value_on: Some(day("2026-11-30")),
            remittance: "PO-1".into(),
        };
        insert_bank_entry(&mut conn, &entry).await?;
        sqlx::query(
            "INSERT INTO payments (transaction_id, originator_id, endpoint_id, client_id, request_id, request, \
             gros_amount, provider_id, provider_reference, status, created_at, updated_at, expires_at, paid_at) \
             VALUES ('tx-1', 'o', 't', 'c', 'r', '{}', '20.00', 'p', 'P-1', 'PAYED', 1, 1, 2, 5)",
        )
        .execute(&mut *conn)
        .await?;
        sqlx::query(
            "INSERT INTO payment_refunds (refund_id, transaction_id, amount, status, created_at, updated_at) \
             VALUES ('rf-1', 'tx-1', '5.00', 'SUBMITTED', 6, 6)",
        )
        .execute(&mut *conn)
        .await?;
        drop(conn);
        Ok((db, dir))
    }

    async fn corrupt(db: &Database, table: &str, column: &str, text: &str) -> Result<(), StorageError> {
        sqlx::query(&format!("UPDATE {table} SET {column} = $1")).bind(text).execute(db.writer()).await?;
        Ok(())
    }

    #[tokio::test]
    async fn reconciliation_reads_typed_rows() -> Result<(), StorageError> {
        let (db, _dir) = stored().await?;
        let settlement = db.settlement_rows_for_reconcile("t", &window()).await?;
        let first = settlement.first().map(|s| (s.kind, s.gross.to_string(), s.booked_on));
        assert_eq!(first, Some((SettlementKind::Payment, "20.00".into(), day("2026-11-29"))));
        let bank = db.bank_entries_for_reconcile("t", &window()).await?;
        assert_eq!(
            bank.first().map(|b| (b.amount.to_string(), b.value_on)),
            Some(("19.65".into(), Some(day("2026-11-30"))))
        );
        let payments = db.payments_for_reconcile("t", &window()).await?;
        assert_eq!(
            payments.first().map(|p| (p.status, p.gros_amount.to_string())),
            Some((PaymentStatus::Payed, "20.00".into()))
        );
        let refunds = db.refunds_for_reconcile("t", &window()).await?;
        assert_eq!(
            refunds.first().map(|r| (r.status, r.amount.to_string())),
            Some((RefundStatus::Submitted, "5.00".into()))
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_corrupt_settlement_kind_or_amount_is_reported_by_its_column() -> Result<(), StorageError> {
        // A booked_on text that still sorts into the window, so the row is read.
        for (column, text) in [("kind", "chargeback"), ("gross", "20,00"), ("fee", ""), ("booked_on", "2026-11-2x")] {
            let (db, _dir) = stored().await?;
            corrupt(&db, "settlement_rows", column, text).await?;
            let error = db.settlement_rows_for_reconcile("t", &window()).await.expect_err(column);
            assert!(is_corrupt_column(&error, &format!("settlement_rows.{column}")), "{error}");
        }
        Ok(())
    }

    #[tokio::test]
    async fn an_import_kind_pforte_does_not_know_is_reported_by_its_column() -> Result<(), StorageError> {
        let (db, _dir) = stored().await?;
        let kind = db.finance_import("imp-1").await?.map(|import| import.kind);
        assert_eq!(kind, Some(ImportKind::Settlement));
        corrupt(&db, "finance_imports", "kind", "camt").await?;
        let error = db.finance_import("imp-1").await.expect_err("an unknown kind must not read");
        assert!(is_corrupt_column(&error, "finance_imports.kind"), "{error}");
        assert!(!error.to_string().contains("camt"), "the value stays out of the message: {error}");
        Ok(())
    }

    #[tokio::test]
    async fn a_corrupt_bank_amount_or_value_date_is_reported_by_its_column() -> Result<(), StorageError> {
        for (column, text) in [("amount", "19.65 EUR"), ("value_on", "tomorrow")] {
            let (db, _dir) = stored().await?;
            corrupt(&db, "bank_entries", column, text).await?;
            let error = db.bank_entries_for_reconcile("t", &window()).await.expect_err(column);
            assert!(is_corrupt_column(&error, &format!("bank_entries.{column}")), "{error}");
            assert!(!error.to_string().contains(text), "the value stays out of the message: {error}");
        }
        Ok(())
    }

    #[tokio::test]
    async fn a_corrupt_payment_or_refund_status_or_amount_is_reported_by_its_column() -> Result<(), StorageError> {
        let (db, _dir) = stored().await?;
        corrupt(&db, "payments", "gros_amount", "twenty").await?;
        let error = db.payments_for_reconcile("t", &window()).await.expect_err("amount");
        assert!(is_corrupt_column(&error, "payments.gros_amount"), "{error}");

        let (db, _dir) = stored().await?;
        // Paid after a timeout, so the row is read whatever its status says.
        sqlx::query("UPDATE payments SET status = 'PAID', paid_after_timeout_at = 5").execute(db.writer()).await?;
        let error = db.payments_for_reconcile("t", &window()).await.expect_err("status");
        assert!(is_corrupt_column(&error, "payments.status"), "{error}");

        for (column, text) in [("status", "DONE"), ("amount", "5.OO")] {
            let (db, _dir) = stored().await?;
            corrupt(&db, "payment_refunds", column, text).await?;
            let error = db.refunds_for_reconcile("t", &window()).await.expect_err(column);
            assert!(is_corrupt_column(&error, &format!("payment_refunds.{column}")), "{error}");
        }
        Ok(())
    }
}

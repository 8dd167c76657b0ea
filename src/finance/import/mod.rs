//! Imports of provider settlement reports (CSV) and bank statements (camt.053/054). An import is one
//! write transaction: the header row in `finance_imports` and all rows, or nothing. A file over the
//! size limit, a malformed file, a file for another tenant, and the same content a second time store
//! nothing.

pub(crate) mod camt;
mod postings;
pub(crate) mod settlement;

use crate::crypto::sha256_hex;
use rust_decimal::Decimal;
use serde_json::json;

use crate::audit::{AuditEvent, AuditLog};
use crate::clock::SharedClock;
use crate::registry::{DecimalSeparator, Registry};
use crate::store::finance_imports::{self as store, BankEntryRecord, ImportRecord, SettlementRecord};
use crate::store::{Database, StorageError};

pub(crate) use crate::model::ImportKind;

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ImportOutcome {
    Imported {
        import_id: String,
        rows: usize,
    },
    /// The same content was imported before; nothing new was stored.
    AlreadyImported {
        import_id: String,
    },
}

/// Why a file was refused. Nothing of it was stored.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ImportError {
    #[error("the file has {size} bytes, over the limit of {limit} (finance.import_max_bytes)")]
    TooLarge { size: u64, limit: u64 },
    #[error("there is no tenant `{0}`")]
    UnknownTenant(String),
    #[error("there is no payment provider `{0}`")]
    UnknownProvider(String),
    #[error("payment provider `{0}` has no [settlement] section, so its reports cannot be read")]
    NoSettlementFormat(String),
    #[error("tenant `{0}` has no finance.bank_iban, so its bank statements cannot be checked")]
    NoBankAccount(String),
    #[error("the settlement report is malformed: {0}")]
    Settlement(#[from] settlement::CsvError),
    #[error("the bank statement is malformed: {0}")]
    Camt(#[from] camt::XmlError),
    #[error("the file is for another tenant: {0}")]
    WrongTenant(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl ImportError {
    /// A fault of the file or the command (the operator can fix it), as opposed to the database.
    pub(crate) fn is_refusal(&self) -> bool {
        !matches!(self, ImportError::Storage(_))
    }
}

/// The typed rows of one import, ready to store.
enum Rows<'a> {
    Settlement { provider_id: &'a str, records: Vec<SettlementRecord>, lines: Vec<(String, u64)> },
    Bank(Vec<BankEntryRecord>),
}

/// One file to import, as the operator named it.
#[derive(Debug, Clone)]
pub(crate) struct ImportFile<'a> {
    pub tenant: &'a str,
    pub file_name: &'a str,
    pub bytes: &'a [u8],
    /// Who imports (for the header row and the audit log).
    pub by: &'a str,
}

/// Reads and stores imports; the one place that knows the rules above.
#[derive(Clone)]
pub(crate) struct Importer<'a> {
    pub db: &'a Database,
    pub registry: &'a Registry,
    pub audit: &'a AuditLog,
    pub clock: SharedClock,
    pub max_bytes: u64,
}

impl Importer<'_> {
    pub(crate) async fn settlement(
        &self,
        file: ImportFile<'_>,
        provider_id: &str,
    ) -> Result<ImportOutcome, ImportError> {
        self.check_size(file.bytes)?;
        self.registry.tenant(file.tenant).ok_or_else(|| ImportError::UnknownTenant(file.tenant.to_owned()))?;
        let provider = self
            .registry
            .payment_provider(provider_id)
            .ok_or_else(|| ImportError::UnknownProvider(provider_id.into()))?;
        let format = provider.settlement.as_ref().ok_or_else(|| ImportError::NoSettlementFormat(provider_id.into()))?;
        let rows = settlement::parse(file.bytes, format)?;

        let import_id = new_import_id();
        let records: Vec<SettlementRecord> = rows
            .iter()
            .map(|row| SettlementRecord {
                import_id: import_id.clone(),
                line: i64::try_from(row.line).unwrap_or(i64::MAX),
                tenant_id: file.tenant.to_owned(),
                provider_id: provider_id.to_owned(),
                provider_transaction: row.transaction.clone(),
                kind: row.kind,
                gross: row.gross,
                fee: row.fee,
                payout_reference: row.payout_reference.clone(),
                booked_on: row.booked_on,
            })
            .collect();
        let sha = sha256_hex(file.bytes);
        let header = self.header(&import_id, &file, ImportKind::Settlement, Some(provider_id), sha, records.len());
        let lines: Vec<(String, u64)> = rows.iter().map(|r| (r.transaction.clone(), r.line)).collect();
        self.store(header, Rows::Settlement { provider_id, records, lines }).await
    }

    pub(crate) async fn bank(&self, file: ImportFile<'_>) -> Result<ImportOutcome, ImportError> {
        self.check_size(file.bytes)?;
        let tenant =
            self.registry.tenant(file.tenant).ok_or_else(|| ImportError::UnknownTenant(file.tenant.to_owned()))?;
        let iban = tenant.finance.bank_iban.as_ref().ok_or_else(|| ImportError::NoBankAccount(file.tenant.into()))?;
        let iban = iban::IbanLike::electronic_str(iban);
        let statement = camt::parse(file.bytes)?;
        if let Some(other) = statement.accounts.iter().find(|account| account.as_str() != iban) {
            return Err(ImportError::WrongTenant(format!(
                "the statement is for account {}, not tenant `{}`'s account {}",
                masked(other),
                file.tenant,
                masked(iban)
            )));
        }

        let import_id = new_import_id();
        let records: Vec<BankEntryRecord> = statement
            .entries
            .iter()
            .enumerate()
            .map(|(index, entry)| BankEntryRecord {
                import_id: import_id.clone(),
                position: i64::try_from(index + 1).unwrap_or(i64::MAX),
                tenant_id: file.tenant.to_owned(),
                message: statement.message.as_str().to_owned(),
                account_iban: entry.account_iban.clone(),
                statement_id: entry.statement_id.clone(),
                entry_reference: entry.reference.clone(),
                amount: entry.amount,
                currency: entry.currency.clone(),
                booked_on: entry.booked_on,
                value_on: entry.value_on,
                remittance: entry.remittance.clone(),
            })
            .collect();
        let sha = sha256_hex(file.bytes);
        let header = self.header(&import_id, &file, ImportKind::Bank, None, sha, records.len());
        self.store(header, Rows::Bank(records)).await
    }

    /// Writes the header, the rows and the audit entry in one transaction, unless the same content is
    /// already stored or (for a settlement) a row names another tenant's transaction.
    async fn store(&self, header: ImportRecord, rows: Rows<'_>) -> Result<ImportOutcome, ImportError> {
        let mut tx = self.db.begin_write().await?;
        let (tenant, kind, sha) = (&header.tenant_id, header.kind, &header.content_sha256);
        if let Some(existing) = store::find_import(&mut tx, tenant, kind, sha).await? {
            return Ok(ImportOutcome::AlreadyImported { import_id: existing });
        }
        if let Rows::Settlement { provider_id, lines, .. } = &rows {
            let mut references: Vec<String> = lines.iter().map(|(t, _)| t.clone()).collect();
            references.sort_unstable();
            references.dedup();
            let foreign = store::transactions_of_other_tenants(&mut tx, provider_id, tenant, &references).await?;
            if let Some((reference, owner)) = foreign.first() {
                let line = lines.iter().find(|(t, _)| t == reference).map_or(0, |(_, line)| *line);
                let more = if foreign.len() > 1 { format!(" (and {} more)", foreign.len() - 1) } else { String::new() };
                return Err(ImportError::WrongTenant(format!(
                    "line {line}: transaction `{reference}` belongs to tenant `{owner}`{more}"
                )));
            }
        }
        match store::insert_import(&mut tx, &header).await {
            // Another import of the same content committed in between (PostgreSQL; SQLite's writers
            // queue): it was imported, once.
            Err(e) if e.is_unique_violation() => {
                drop(tx);
                let mut conn = self.db.begin_write().await?;
                let existing = store::find_import(&mut conn, tenant, kind, sha).await?;
                return Ok(ImportOutcome::AlreadyImported { import_id: existing.unwrap_or_default() });
            }
            other => other?,
        }
        let now = self.clock.now_millis();
        let count = match &rows {
            Rows::Settlement { records, .. } => {
                for record in records {
                    store::insert_settlement_row(&mut tx, record).await?;
                }
                postings::settlement_fees(&mut tx, records, now).await?;
                records.len()
            }
            Rows::Bank(records) => {
                for record in records {
                    store::insert_bank_entry(&mut tx, record).await?;
                }
                postings::bank_payouts(&mut tx, tenant, records, now).await?;
                records.len()
            }
        };
        self.audit.append_in(&mut tx, audit_event(&header)).await?;
        tx.commit().await.map_err(StorageError::from)?;
        Ok(ImportOutcome::Imported { import_id: header.import_id, rows: count })
    }

    fn check_size(&self, bytes: &[u8]) -> Result<(), ImportError> {
        let size = bytes.len() as u64;
        if size > self.max_bytes {
            return Err(ImportError::TooLarge { size, limit: self.max_bytes });
        }
        Ok(())
    }

    fn header(
        &self,
        import_id: &str,
        file: &ImportFile<'_>,
        kind: ImportKind,
        provider_id: Option<&str>,
        content_sha256: String,
        rows: usize,
    ) -> ImportRecord {
        ImportRecord {
            import_id: import_id.to_owned(),
            tenant_id: file.tenant.to_owned(),
            kind,
            provider_id: provider_id.map(str::to_owned),
            content_sha256,
            file_name: file.file_name.to_owned(),
            row_count: i64::try_from(rows).unwrap_or(i64::MAX),
            imported_at: self.clock.now_millis(),
            imported_by: file.by.to_owned(),
        }
    }
}

fn audit_event(header: &ImportRecord) -> AuditEvent {
    AuditEvent::new(
        "finance.import",
        &header.imported_by,
        &header.import_id,
        json!({
            "tenant": header.tenant_id, "kind": header.kind.as_str(), "provider": header.provider_id,
            "sha256": header.content_sha256, "rows": header.row_count, "file": header.file_name,
        }),
    )
}

fn new_import_id() -> String {
    format!("imp_{}", uuid::Uuid::new_v4().simple())
}

/// An account number in a message: country, check digits and the last four characters.
fn masked(iban: &str) -> String {
    let chars: Vec<char> = iban.chars().collect();
    if chars.len() <= 8 {
        return "****".to_owned();
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}…{tail}")
}

/// Strict amount text: an optional sign, digits, and at most one decimal separator of the given kind
/// with one or two digits after it. Thousands separators, the other separator and exponents are
/// refused, never guessed: a misread amount would reconcile wrongly without a sound.
pub(crate) fn parse_amount(text: &str, separator: DecimalSeparator) -> Option<Decimal> {
    let negative = text.starts_with('-');
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (whole, fraction) = match unsigned.split_once(separator.char()) {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (unsigned, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || fraction.is_some_and(|f| !digits(f) || f.len() > 2) {
        return None;
    }
    let normal = match fraction {
        Some(fraction) => format!("{whole}.{fraction}"),
        None => whole.to_owned(),
    };
    let value: Decimal = normal.parse().ok()?;
    Some(if negative { -value } else { value })
}

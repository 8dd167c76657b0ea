//! A provider's settlement report: CSV laid out as the provider file's `[settlement]` section says,
//! read into typed rows. The first fault ends the read with its line number and reason, because an
//! import stores all of a file or nothing.

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::parse_amount;
use crate::registry::{Column, DecimalSeparator, SettlementFormat, SettlementKind};

/// One row of a settlement report. A refund's gross amount is negative, whichever way the file said it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SettlementRow {
    /// Where the row starts in the file (1 = the first line).
    pub line: u64,
    /// The provider's transaction id (pforte's `provider_reference`).
    pub transaction: String,
    pub kind: SettlementKind,
    pub gross: Decimal,
    pub fee: Decimal,
    pub payout_reference: String,
    pub booked_on: NaiveDate,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub(crate) struct CsvError {
    pub line: u64,
    pub reason: String,
}

fn fault(line: u64, reason: impl Into<String>) -> CsvError {
    CsvError { line, reason: reason.into() }
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

pub(crate) fn parse(bytes: &[u8], format: &SettlementFormat) -> Result<Vec<SettlementRow>, CsvError> {
    let bytes = bytes.strip_prefix(BOM).unwrap_or(bytes);
    if let Err(e) = std::str::from_utf8(bytes) {
        let line = 1 + bytes[..e.valid_up_to()].iter().filter(|b| **b == b'\n').count() as u64;
        return Err(fault(line, "is not UTF-8 (settlement.encoding is utf-8)"));
    }
    let mut reader =
        csv::ReaderBuilder::new().delimiter(format.delimiter).has_headers(false).flexible(true).from_reader(bytes);
    let mut records = reader.records();
    let positions = if format.header {
        let header = match records.next() {
            Some(record) => record.map_err(|e| csv_fault(&e))?,
            None => return Err(fault(1, "the header row is missing: the file is empty")),
        };
        header_positions(&header, format)?
    } else {
        format.columns.named().into_iter().map(|(field, column)| (field, position(column))).collect()
    };
    let at = |field: &str| positions.iter().find(|(f, _)| *f == field).map(|(_, p)| *p).unwrap_or(usize::MAX);

    let mut rows = Vec::new();
    for record in records {
        let record = record.map_err(|e| csv_fault(&e))?;
        let line = record.position().map_or(0, |p| p.line());
        let field = |name: &str| -> Result<&str, CsvError> {
            let index = at(name);
            record.get(index).map(str::trim).ok_or_else(|| {
                fault(
                    line,
                    format!(
                        "has {} field(s), so column {} ({name}) is missing; is the delimiter `{}` right?",
                        record.len(),
                        index + 1,
                        char::from(format.delimiter)
                    ),
                )
            })
        };
        let transaction = non_empty(line, "transaction", field("transaction")?)?;
        let payout_reference = non_empty(line, "payout_reference", field("payout_reference")?)?;
        let gross = amount(line, "gross", field("gross")?, format.decimal_separator)?;
        let fee = amount(line, "fee", field("fee")?, format.decimal_separator)?;
        let booked_on = NaiveDate::parse_from_str(field("booked_on")?, &format.date_format).map_err(|_| {
            fault(
                line,
                format!(
                    "booked_on `{}` is not a date of the form {}",
                    field_text(&record, at("booked_on")),
                    format.date_format
                ),
            )
        })?;
        let kind_text = if format.columns.kind.is_some() { Some(field("kind")?) } else { None };
        let (kind, gross) = kind_and_gross(line, format, kind_text, gross)?;
        rows.push(SettlementRow { line, transaction, kind, gross, fee, payout_reference, booked_on });
    }
    Ok(rows)
}

fn csv_fault(error: &csv::Error) -> CsvError {
    let line = error.position().map_or(0, |p| p.line());
    fault(line, format!("cannot be read as CSV: {error}"))
}

fn field_text(record: &csv::StringRecord, index: usize) -> &str {
    record.get(index).map(str::trim).unwrap_or_default()
}

/// Finds each mapped column in the header row (by name) or checks its position exists there.
fn header_positions(
    header: &csv::StringRecord,
    format: &SettlementFormat,
) -> Result<Vec<(&'static str, usize)>, CsvError> {
    let line = header.position().map_or(1, |p| p.line());
    let names: Vec<&str> = header.iter().map(str::trim).collect();
    let mut positions = Vec::new();
    for (field, column) in format.columns.named() {
        let found = match column {
            Column::Name(name) => names.iter().position(|n| n == name),
            Column::Position(p) => Some(p - 1).filter(|i| *i < names.len()),
        };
        let Some(index) = found else {
            let wanted = match column {
                Column::Name(name) => format!("no column `{name}`"),
                Column::Position(p) => format!("no column {p}"),
            };
            let hint = if names.len() == 1 {
                format!("; it has a single column, so the delimiter `{}` may be wrong", char::from(format.delimiter))
            } else {
                format!("; it has: {}", names.join(", "))
            };
            return Err(fault(line, format!("the header row has {wanted} (settlement.columns.{field}){hint}")));
        };
        positions.push((field, index));
    }
    Ok(positions)
}

fn position(column: &Column) -> usize {
    match column {
        Column::Position(p) => p.saturating_sub(1),
        // Names need a header row; the registry refuses them without one.
        Column::Name(_) => usize::MAX,
    }
}

fn non_empty(line: u64, field: &str, text: &str) -> Result<String, CsvError> {
    if text.is_empty() {
        Err(fault(line, format!("{field} is empty")))
    } else {
        Ok(text.to_owned())
    }
}

/// An amount in the file's notation (see [`parse_amount`]), or a fault naming the field and value.
pub(crate) fn amount(line: u64, field: &str, text: &str, separator: DecimalSeparator) -> Result<Decimal, CsvError> {
    parse_amount(text, separator).ok_or_else(|| {
        let sep = separator.char();
        fault(line, format!("{field} `{text}` is not an amount with `{sep}` as decimal separator (e.g. 12{sep}50)"))
    })
}

fn kind_and_gross(
    line: u64,
    format: &SettlementFormat,
    kind_text: Option<&str>,
    gross: Decimal,
) -> Result<(SettlementKind, Decimal), CsvError> {
    let Some(value) = kind_text else {
        let kind = if gross < Decimal::ZERO { SettlementKind::Refund } else { SettlementKind::Payment };
        return Ok((kind, gross));
    };
    let kind = format.kinds.get(value).copied().ok_or_else(|| {
        let known: Vec<&str> = format.kinds.keys().map(String::as_str).collect();
        fault(line, format!("kind `{value}` is none of the mapped values ({})", known.join(", ")))
    })?;
    match kind {
        SettlementKind::Refund => Ok((kind, -gross.abs())),
        SettlementKind::Payment if gross < Decimal::ZERO => {
            Err(fault(line, format!("a payment (kind `{value}`) with a negative gross amount {gross}")))
        }
        SettlementKind::Payment => Ok((kind, gross)),
    }
}

#[cfg(test)]
mod tests;

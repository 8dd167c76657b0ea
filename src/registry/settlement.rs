//! The `[settlement]` section of a payment provider file: how that provider's settlement report (a CSV
//! file, one row per transaction) is laid out, so a new provider's format needs no code.

use std::collections::BTreeMap;
use std::fmt::Write;

use chrono::format::{Item, StrftimeItems};
use chrono::NaiveDate;
use serde::Deserialize;

use super::check::FileCheck;
pub use crate::model::{DecimalSeparator, SettlementKind};

/// How to read one provider's settlement CSV.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettlementFormat {
    pub delimiter: u8,
    pub decimal_separator: DecimalSeparator,
    /// Whether the first row names the columns (and so columns may be found by name).
    pub header: bool,
    /// A chrono `strftime` pattern for `booked_on`, e.g. `%d.%m.%Y`.
    pub date_format: String,
    pub columns: SettlementColumns,
    /// Values of the `kind` column and what they mean; empty when there is no `kind` column.
    pub kinds: BTreeMap<String, SettlementKind>,
}

/// Where each field stands in a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettlementColumns {
    /// The provider's transaction id, which pforte keeps as the payment's `provider_reference`.
    pub transaction: Column,
    pub gross: Column,
    pub fee: Column,
    pub payout_reference: Column,
    pub booked_on: Column,
    pub kind: Option<Column>,
}

impl SettlementColumns {
    /// Field name and column, in the order the documentation lists them.
    pub fn named(&self) -> Vec<(&'static str, &Column)> {
        let mut named = vec![
            ("transaction", &self.transaction),
            ("gross", &self.gross),
            ("fee", &self.fee),
            ("payout_reference", &self.payout_reference),
            ("booked_on", &self.booked_on),
        ];
        if let Some(kind) = &self.kind {
            named.push(("kind", kind));
        }
        named
    }
}

/// A column by its header text, or by its position (1 = first) for files without a header row.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(untagged)]
pub enum Column {
    Position(usize),
    Name(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SettlementFile {
    #[serde(default = "default_delimiter")]
    delimiter: String,
    #[serde(default = "default_decimal_separator")]
    decimal_separator: DecimalSeparator,
    #[serde(default = "default_header")]
    header: bool,
    #[serde(default = "default_encoding")]
    encoding: String,
    #[serde(default = "default_date_format")]
    date_format: String,
    columns: ColumnsFile,
    #[serde(default)]
    kinds: BTreeMap<String, SettlementKind>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ColumnsFile {
    transaction: Column,
    gross: Column,
    fee: Column,
    payout_reference: Column,
    booked_on: Column,
    kind: Option<Column>,
}

fn default_delimiter() -> String {
    ",".to_owned()
}
fn default_decimal_separator() -> DecimalSeparator {
    DecimalSeparator::Point
}
fn default_header() -> bool {
    true
}
fn default_encoding() -> String {
    "utf-8".to_owned()
}
fn default_date_format() -> String {
    "%Y-%m-%d".to_owned()
}

pub(crate) fn parse(file: &SettlementFile, check: &mut FileCheck<'_>) -> Option<SettlementFormat> {
    let mut valid = true;
    let delimiter = match file.delimiter.as_bytes() {
        [byte] if (byte.is_ascii_punctuation() && *byte != b'"') || *byte == b'\t' => Some(*byte),
        _ => {
            check.problem("settlement.delimiter", "must be one punctuation character or a tab, e.g. \";\"");
            None
        }
    };
    if !file.encoding.eq_ignore_ascii_case("utf-8") && !file.encoding.eq_ignore_ascii_case("utf8") {
        check.problem("settlement.encoding", format!("`{}` is not supported; only utf-8 is", file.encoding));
        valid = false;
    }
    if !is_date_format(&file.date_format) {
        check.problem(
            "settlement.date_format",
            format!("`{}` is not a date pattern with day, month and year (e.g. %d.%m.%Y)", file.date_format),
        );
        valid = false;
    }
    let columns = &file.columns;
    let named = [
        ("transaction", Some(&columns.transaction)),
        ("gross", Some(&columns.gross)),
        ("fee", Some(&columns.fee)),
        ("payout_reference", Some(&columns.payout_reference)),
        ("booked_on", Some(&columns.booked_on)),
        ("kind", columns.kind.as_ref()),
    ];
    let mut seen: BTreeMap<&Column, &str> = BTreeMap::new();
    for (field, column) in named.iter().filter_map(|(f, c)| c.map(|c| (*f, c))) {
        let key = format!("settlement.columns.{field}");
        match column {
            Column::Position(0) => {
                check.problem(&key, "column positions start at 1");
                valid = false;
            }
            Column::Name(name) if name.trim().is_empty() => {
                check.problem(&key, "must name a column");
                valid = false;
            }
            Column::Name(_) if !file.header => {
                check.problem(&key, "without a header row (header = false) columns are given by position (1, 2, …)");
                valid = false;
            }
            _ => {}
        }
        if let Some(other) = seen.insert(column, field) {
            check.problem(&key, format!("is the same column as settlement.columns.{other}"));
            valid = false;
        }
    }
    match (&columns.kind, file.kinds.is_empty()) {
        (Some(_), true) => {
            check.problem("settlement.kinds", "is required with a kind column: map its values to payment or refund");
            valid = false;
        }
        (None, false) => {
            check.problem("settlement.kinds", "is not used without settlement.columns.kind; remove it");
            valid = false;
        }
        _ => {}
    }
    if !valid {
        return None;
    }
    Some(SettlementFormat {
        delimiter: delimiter?,
        decimal_separator: file.decimal_separator,
        header: file.header,
        date_format: file.date_format.clone(),
        columns: SettlementColumns {
            transaction: columns.transaction.clone(),
            gross: columns.gross.clone(),
            fee: columns.fee.clone(),
            payout_reference: columns.payout_reference.clone(),
            booked_on: columns.booked_on.clone(),
            kind: columns.kind.clone(),
        },
        kinds: file.kinds.clone(),
    })
}

/// A pattern is usable when it parses and a date written with it reads back as the same date, which
/// needs day, month and year and nothing that cannot be read back (like a time).
fn is_date_format(pattern: &str) -> bool {
    if StrftimeItems::new(pattern).any(|item| matches!(item, Item::Error)) {
        return false;
    }
    let Some(probe) = NaiveDate::from_ymd_opt(2026, 11, 29) else { return false };
    // Writing fails (rather than panics) for items a date cannot fill, such as an hour.
    let mut written = String::new();
    if write!(written, "{}", probe.format(pattern)).is_err() {
        return false;
    }
    NaiveDate::parse_from_str(&written, pattern).is_ok_and(|read| read == probe)
}

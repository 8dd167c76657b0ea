use std::collections::BTreeMap;

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::*;
use crate::registry::SettlementColumns;

fn format() -> SettlementFormat {
    SettlementFormat {
        delimiter: b';',
        decimal_separator: DecimalSeparator::Comma,
        header: true,
        date_format: "%d.%m.%Y".into(),
        columns: SettlementColumns {
            transaction: Column::Name("Transaktion".into()),
            gross: Column::Name("Brutto".into()),
            fee: Column::Name("Gebühr".into()),
            payout_reference: Column::Name("Auszahlung".into()),
            booked_on: Column::Name("Datum".into()),
            kind: Some(Column::Name("Art".into())),
        },
        kinds: BTreeMap::from([
            ("Zahlung".to_owned(), SettlementKind::Payment),
            ("Erstattung".to_owned(), SettlementKind::Refund),
        ]),
    }
}

const HEADER: &str = "Datum;Transaktion;Art;Brutto;Gebühr;Auszahlung\n";

fn dec(text: &str) -> Decimal {
    text.parse().unwrap_or_default()
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default()
}

fn error(text: &str, format: &SettlementFormat) -> CsvError {
    match parse(text.as_bytes(), format) {
        Ok(rows) => CsvError { line: 0, reason: format!("read {} rows without complaint", rows.len()) },
        Err(e) => e,
    }
}

#[test]
fn rows_are_read_by_header_name_in_any_column_order() -> Result<(), CsvError> {
    let text = format!("{HEADER}29.11.2026;T-1;Zahlung;12,00;0,35;P-7\n30.11.2026; T-2 ;Erstattung;5,5;0;P-8\n");
    let rows = parse(text.as_bytes(), &format())?;
    assert_eq!(
        rows,
        vec![
            SettlementRow {
                line: 2,
                transaction: "T-1".into(),
                kind: SettlementKind::Payment,
                gross: dec("12.00"),
                fee: dec("0.35"),
                payout_reference: "P-7".into(),
                booked_on: date(2026, 11, 29),
            },
            SettlementRow {
                line: 3,
                transaction: "T-2".into(),
                kind: SettlementKind::Refund,
                gross: dec("-5.5"),
                fee: dec("0"),
                payout_reference: "P-8".into(),
                booked_on: date(2026, 11, 30),
            },
        ]
    );
    Ok(())
}

#[test]
fn a_byte_order_mark_is_skipped() -> Result<(), CsvError> {
    let text = format!("\u{FEFF}{HEADER}29.11.2026;T-1;Zahlung;12,00;0,35;P-7\n");
    assert_eq!(parse(text.as_bytes(), &format())?.len(), 1);
    Ok(())
}

#[test]
fn without_a_kind_column_a_negative_gross_is_a_refund() -> Result<(), CsvError> {
    let mut format = format();
    format.columns.kind = None;
    format.kinds.clear();
    let text = format!("{HEADER}29.11.2026;T-1;x;-3,00;0;P-7\n");
    let rows = parse(text.as_bytes(), &format)?;
    assert_eq!((rows[0].kind, rows[0].gross), (SettlementKind::Refund, dec("-3.00")));
    Ok(())
}

#[test]
fn columns_by_position_read_a_file_without_header() -> Result<(), CsvError> {
    let mut format = format();
    format.header = false;
    format.delimiter = b',';
    format.decimal_separator = DecimalSeparator::Point;
    format.columns = SettlementColumns {
        transaction: Column::Position(1),
        gross: Column::Position(2),
        fee: Column::Position(3),
        payout_reference: Column::Position(4),
        booked_on: Column::Position(5),
        kind: None,
    };
    format.kinds.clear();
    let rows = parse(b"T-1,12.00,0.35,P-7,29.11.2026\n", &format)?;
    assert_eq!((rows[0].line, rows[0].gross, rows[0].fee), (1, dec("12.00"), dec("0.35")));
    Ok(())
}

#[test]
fn a_header_without_a_mapped_column_names_it() {
    let e = error("Datum;Transaktion;Art;Brutto;Auszahlung\n", &format());
    assert_eq!(e.line, 1);
    assert!(e.reason.contains("`Gebühr`") && e.reason.contains("settlement.columns.fee"), "{e}");
}

#[test]
fn a_row_shorter_than_the_mapping_names_line_and_column() {
    let e = error(&format!("{HEADER}29.11.2026;T-1;Zahlung;12,00\n"), &format());
    assert_eq!(e.line, 2);
    assert!(e.reason.contains("column 6 (payout_reference)"), "{e}");
}

#[test]
fn a_wrong_delimiter_is_named_as_the_likely_cause() {
    let e = error(&HEADER.replace(';', ","), &format());
    assert_eq!(e.line, 1);
    assert!(e.reason.contains("single column") && e.reason.contains("delimiter `;`"), "{e}");
}

#[test]
fn an_amount_with_the_other_decimal_separator_is_refused() {
    let e = error(&format!("{HEADER}29.11.2026;T-1;Zahlung;12.00;0,35;P-7\n"), &format());
    assert_eq!(e.line, 2);
    assert!(e.reason.contains("gross `12.00`"), "{e}");
}

#[test]
fn bad_amounts_are_refused() {
    for bad in ["1.234,00", "12,005", "12,", ",5", "zwölf", "", "1e3", "--1"] {
        assert!(amount(7, "gross", bad, DecimalSeparator::Comma).is_err(), "{bad:?} was accepted");
    }
    assert_eq!(amount(7, "gross", "+12,5", DecimalSeparator::Comma), Ok(dec("12.5")));
    assert_eq!(amount(7, "fee", "-0,35", DecimalSeparator::Comma), Ok(dec("-0.35")));
}

#[test]
fn a_bad_date_names_line_value_and_pattern() {
    let e = error(&format!("{HEADER}2026-11-29;T-1;Zahlung;12,00;0,35;P-7\n"), &format());
    assert_eq!(e.line, 2);
    assert!(e.reason.contains("`2026-11-29`") && e.reason.contains("%d.%m.%Y"), "{e}");
    let impossible = error(&format!("{HEADER}31.02.2026;T-1;Zahlung;12,00;0,35;P-7\n"), &format());
    assert_eq!(impossible.line, 2);
}

#[test]
fn an_unmapped_kind_value_is_refused() {
    let e = error(&format!("{HEADER}29.11.2026;T-1;Storno;12,00;0,35;P-7\n"), &format());
    assert!(e.line == 2 && e.reason.contains("`Storno`"), "{e}");
}

#[test]
fn a_payment_with_a_negative_amount_is_refused() {
    let e = error(&format!("{HEADER}29.11.2026;T-1;Zahlung;-12,00;0,35;P-7\n"), &format());
    assert!(e.line == 2 && e.reason.contains("negative"), "{e}");
}

#[test]
fn an_empty_transaction_or_payout_reference_is_refused() {
    let e = error(&format!("{HEADER}29.11.2026; ;Zahlung;12,00;0,35;P-7\n"), &format());
    assert!(e.line == 2 && e.reason.contains("transaction is empty"), "{e}");
    let e = error(&format!("{HEADER}29.11.2026;T-1;Zahlung;12,00;0,35;\n"), &format());
    assert!(e.line == 2 && e.reason.contains("payout_reference is empty"), "{e}");
}

#[test]
fn bytes_that_are_not_utf8_name_their_line() {
    let mut bytes = format!("{HEADER}29.11.2026;T-1;Zahlung;12,00;0,35;P-7\n").into_bytes();
    bytes.extend_from_slice(b"30.11.2026;T-\xE4;Zahlung;1,00;0;P-7\n");
    let e = parse(&bytes, &format()).err();
    assert_eq!(e.map(|e| e.line), Some(3));
}

#[test]
fn an_empty_file_has_no_header_row() {
    let e = error("", &format());
    assert!(e.line == 1 && e.reason.contains("header row is missing"), "{e}");
}

#[test]
fn a_header_alone_is_a_report_without_rows() -> Result<(), CsvError> {
    assert!(parse(HEADER.as_bytes(), &format())?.is_empty());
    Ok(())
}

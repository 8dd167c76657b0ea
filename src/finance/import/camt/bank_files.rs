//! Statements as German banks send them (DFÜ-Abkommen Anlage 3): the fixtures in tests/fixtures/camt,
//! each first proven valid against its official ISO 20022 schema (tests/fixtures/iso20022) with
//! xmllint, then read. A batch entry (Sammler) with several transactions is read as one entry per
//! transaction, each with its own amount, reference and remittance, so each Kassenzeichen meets its
//! own amount in reconciliation.

use std::io::Write;
use std::process::{Command, Stdio};

use rust_decimal::Decimal;

use super::*;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// Reads `camt/<name>.xml` after xmllint has checked it against `iso20022/<name>.xsd`.
fn valid_fixture(name: &str) -> BankStatement {
    let xml = std::fs::read(format!("{FIXTURES}/camt/{name}.xml")).unwrap_or_default();
    assert!(!xml.is_empty(), "no fixture {name}");
    let schema = format!("{FIXTURES}/iso20022/{name}.xsd");
    let mut child = Command::new("xmllint")
        .args(["--noout", "--nonet", "--schema", &schema, "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("xmllint (Debian libxml2-utils) must be installed: {e}"));
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(&xml).unwrap_or_else(|e| panic!("writing to xmllint: {e}"));
    }
    let output = child.wait_with_output().unwrap_or_else(|e| panic!("xmllint: {e}"));
    assert!(output.status.success(), "{name} is not valid: {}", String::from_utf8_lossy(&output.stderr));
    parse(&xml).unwrap_or_else(|e| panic!("{name} was refused: {e}"))
}

/// (reference, amount, remittance) of each entry.
fn summary(statement: &BankStatement) -> Vec<(String, Decimal, String)> {
    statement.entries.iter().map(|e| (e.reference.clone(), e.amount, e.remittance.clone())).collect()
}

fn row(reference: &str, amount: &str, remittance: &str) -> (String, Decimal, String) {
    (reference.to_owned(), amount.parse().unwrap_or(Decimal::MAX), remittance.to_owned())
}

#[test]
fn a_camt_053_001_02_statement_is_read_entry_by_entry_and_batch_by_transaction() {
    let statement = valid_fixture("camt.053.001.02");
    assert_eq!((statement.message, statement.version.as_str()), (MessageKind::Statement, "001.02"));
    assert_eq!(statement.accounts, ["DE89370400440532013000"]);
    assert_eq!(
        summary(&statement),
        [
            row("2026113000001", "73.10", "PO-77-20261130 SAMMELAUSZAHLUNG PO-77"),
            // AmtDtls/TxAmt is where .02 puts a transaction's amount; the bank gave them no reference
            // of their own, so they are the entry's with the transaction's number.
            row("2026113000002/1", "25.00", "KZ 2026-000101 Hundesteuer 2026"),
            row("2026113000002/2", "20.00", "E2E-20261129-77A Kassenzeichen 2026-000102"),
            row("2026113000003", "-4.90", "Kontofuehrung 11/2026"),
        ]
    );
    let batch = &statement.entries[1];
    assert_eq!((batch.statement_id.as_str(), batch.booked_on.to_string()), ("2026-11-30-00234", "2026-11-30".into()));
    assert!(batch.path.ends_with("Stmt[1]/Ntry[2]/NtryDtls/TxDtls[1]"), "{}", batch.path);
}

#[test]
fn a_camt_053_001_08_statement_reads_the_same_with_the_transactions_own_references() {
    let statement = valid_fixture("camt.053.001.08");
    assert_eq!((statement.message, statement.version.as_str()), (MessageKind::Statement, "001.08"));
    assert_eq!(
        summary(&statement),
        [
            row("2026113000001", "73.10", "PO-77-20261130 SAMMELAUSZAHLUNG PO-77"),
            row("2026113000002-1", "25.00", "KZ 2026-000101 Hundesteuer 2026"),
            row("2026113000002-2", "20.00", "E2E-20261129-77A Kassenzeichen 2026-000102"),
            row("2026113000003", "-4.90", "Kontofuehrung 11/2026"),
        ]
    );
}

#[test]
fn camt_054_notifications_of_02_and_08_resolve_a_batch_and_leave_pending_entries_out() {
    for name in ["camt.054.001.02", "camt.054.001.08"] {
        let statement = valid_fixture(name);
        assert_eq!(statement.message, MessageKind::Notification, "{name}");
        assert_eq!(
            summary(&statement),
            [
                row("2026113000009/1", "25.00", "KZ 2026-000101 Hundesteuer 2026"),
                row("2026113000009/2", "20.00", "E2E-20261129-77A Kassenzeichen 2026-000102"),
                // A structured creditor reference counts as remittance too.
                row("2026113000009/3", "23.50", "RF712026000103"),
            ],
            "{name}"
        );
        let total: Decimal = statement.entries.iter().map(|e| e.amount).sum();
        assert_eq!(total, Decimal::new(6850, 2), "{name}: the batch's total, nothing lost or doubled");
    }
}

#[test]
fn a_batch_whose_transactions_do_not_add_up_stays_one_entry() {
    let xml = std::fs::read_to_string(format!("{FIXTURES}/camt/camt.054.001.08.xml")).unwrap_or_default();
    let off = xml.replacen("<Amt Ccy=\"EUR\">23.50</Amt>", "<Amt Ccy=\"EUR\">23.40</Amt>", 1);
    assert_ne!(off, xml);
    let statement = parse(off.as_bytes()).unwrap_or_else(|e| panic!("refused: {e}"));
    assert_eq!(
        summary(&statement),
        [row(
            "2026113000009",
            "68.50",
            "KZ 2026-000101 Hundesteuer 2026 E2E-20261129-77A Kassenzeichen 2026-000102 RF712026000103"
        )]
    );
}

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::*;

const IBAN: &str = "DE89370400440532013000";

fn entry(amount: &str, indicator: &str, remittance: &str) -> String {
    format!(
        "<Ntry><NtryRef>N-1</NtryRef><Amt Ccy=\"EUR\">{amount}</Amt><CdtDbtInd>{indicator}</CdtDbtInd>\
         <Sts><Cd>BOOK</Cd></Sts><BookgDt><Dt>2026-11-30</Dt></BookgDt><ValDt><Dt>2026-12-01</Dt></ValDt>\
         <AcctSvcrRef>BANK-{amount}</AcctSvcrRef>\
         <NtryDtls><TxDtls><Refs><EndToEndId>NOTPROVIDED</EndToEndId></Refs>\
         <RmtInf><Ustrd>{remittance}</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>"
    )
}

fn statement(version: &str, entries: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:camt.053.001.{version}\">\
         <BkToCstmrStmt><GrpHdr><MsgId>M-1</MsgId></GrpHdr>\
         <Stmt><Id>STMT-1</Id><Acct><Id><IBAN>{IBAN}</IBAN></Id></Acct>{entries}</Stmt>\
         </BkToCstmrStmt></Document>"
    )
}

fn error(xml: &str) -> XmlError {
    match parse(xml.as_bytes()) {
        Ok(statement) => XmlError { path: String::new(), reason: format!("read without complaint: {statement:?}") },
        Err(e) => e,
    }
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default()
}

#[test]
fn a_statement_yields_booked_entries_with_sign_dates_and_remittance() -> Result<(), XmlError> {
    let xml = statement(
        "08",
        &format!("{}{}", entry("23.30", "CRDT", "AUSZAHLUNG P-2026-11-29"), entry("5.00", "DBIT", "Gebühren")),
    );
    let parsed = parse(xml.as_bytes())?;
    assert_eq!((parsed.message, parsed.version.as_str()), (MessageKind::Statement, "001.08"));
    assert_eq!(parsed.accounts, vec![IBAN.to_owned()]);
    assert_eq!(
        parsed.entries[0],
        BankEntry {
            path: "Document/BkToCstmrStmt/Stmt[1]/Ntry[1]".into(),
            statement_id: "STMT-1".into(),
            account_iban: IBAN.into(),
            reference: "BANK-23.30".into(),
            amount: "23.30".parse().unwrap_or(Decimal::ZERO),
            currency: "EUR".into(),
            booked_on: date(2026, 11, 30),
            value_on: Some(date(2026, 12, 1)),
            remittance: "AUSZAHLUNG P-2026-11-29".into(),
        }
    );
    assert_eq!(parsed.entries[1].amount, "-5.00".parse().unwrap_or(Decimal::ZERO), "a debit is negative");
    Ok(())
}

#[test]
fn every_version_from_02_to_08_is_accepted_and_old_statuses_are_plain_text() -> Result<(), XmlError> {
    for version in ["02", "03", "04", "05", "06", "07", "08"] {
        let old = entry("1.00", "CRDT", "x").replace("<Sts><Cd>BOOK</Cd></Sts>", "<Sts>BOOK</Sts>");
        assert_eq!(parse(statement(version, &old).as_bytes())?.entries.len(), 1, "version {version}");
    }
    Ok(())
}

#[test]
fn a_notification_is_read_like_a_statement() -> Result<(), XmlError> {
    let xml = statement("06", &entry("12.00", "CRDT", "KZ 2026-000123"))
        .replace("camt.053", "camt.054")
        .replace("BkToCstmrStmt", "BkToCstmrDbtCdtNtfctn")
        .replace("Stmt>", "Ntfctn>");
    let parsed = parse(xml.as_bytes())?;
    assert_eq!(parsed.message, MessageKind::Notification);
    assert_eq!(parsed.entries[0].remittance, "KZ 2026-000123");
    Ok(())
}

#[test]
fn pending_entries_are_left_out() -> Result<(), XmlError> {
    let pending = entry("1.00", "CRDT", "x").replace("BOOK", "PDNG");
    assert!(parse(statement("08", &pending).as_bytes())?.entries.is_empty());
    Ok(())
}

#[test]
fn predefined_entities_and_character_references_are_read() -> Result<(), XmlError> {
    let xml = statement("08", &entry("1.00", "CRDT", "M&amp;M &#x4B;Z&#49;"));
    assert_eq!(parse(xml.as_bytes())?.entries[0].remittance, "M&M KZ1");
    Ok(())
}

#[test]
fn a_doctype_is_refused() {
    let xml = statement("08", "").replace(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
        "<?xml version=\"1.0\"?>\n<!DOCTYPE Document [<!ENTITY lol \"lol\"><!ENTITY lol2 \"&lol;&lol;\">]>\n",
    );
    let e = error(&xml);
    assert!(e.reason.contains("DOCTYPE"), "{e}");
}

#[test]
fn an_external_entity_is_refused_even_without_a_doctype() {
    let e = error(&statement("08", &entry("1.00", "CRDT", "&xxe;")));
    assert!(e.reason.contains("&xxe;") && e.reason.contains("not accepted"), "{e}");
    assert!(e.path.ends_with("Ntry[1]/NtryDtls/TxDtls/RmtInf/Ustrd"), "{e}");
}

#[test]
fn a_truncated_file_names_where_it_ends() {
    let xml = statement("08", &entry("1.00", "CRDT", "x"));
    let cut = &xml[..xml.find("<BookgDt>").unwrap_or(0)];
    let e = error(cut);
    assert!(e.path.contains("Stmt[1]/Ntry[1]"), "{e}");
}

#[test]
fn an_unknown_namespace_is_refused() {
    for namespace in ["camt.053.001.09", "camt.052.001.08", "pain.001.001.03"] {
        let e = error(&statement("08", "").replace("camt.053.001.08", namespace));
        assert!(e.path == "Document" && e.reason.contains(namespace), "{e}");
    }
    let e = error("<Document><BkToCstmrStmt/></Document>");
    assert!(e.reason.contains("namespace"), "{e}");
}

#[test]
fn a_bad_amount_names_its_element() {
    let e = error(&statement("08", &entry("12,00", "CRDT", "x")));
    assert_eq!(e.path, "Document/BkToCstmrStmt/Stmt[1]/Ntry[1]/Amt");
    assert!(e.reason.contains("`12,00`"), "{e}");
}

#[test]
fn another_currency_is_refused() {
    let e = error(&statement("08", &entry("1.00", "CRDT", "x").replace("EUR", "USD")));
    assert!(e.path.ends_with("Ntry[1]/Amt") && e.reason.contains("USD"), "{e}");
}

#[test]
fn a_bad_booking_date_names_its_element() {
    let e = error(&statement("08", &entry("1.00", "CRDT", "x").replace("2026-11-30", "30.11.2026")));
    assert!(e.path.ends_with("Ntry[1]/BookgDt") && e.reason.contains("30.11.2026"), "{e}");
}

#[test]
fn a_missing_amount_or_indicator_is_named() {
    let no_amount = entry("1.00", "CRDT", "x").replace("<Amt Ccy=\"EUR\">1.00</Amt>", "");
    let e = error(&statement("08", &no_amount));
    assert!(e.path.ends_with("Ntry[1]") && e.reason.contains("Amt is missing"), "{e}");
    let e = error(&statement("08", &entry("1.00", "SIDEWAYS", "x")));
    assert!(e.path.ends_with("CdtDbtInd") && e.reason.contains("SIDEWAYS"), "{e}");
}

#[test]
fn a_statement_without_iban_is_refused() {
    let xml = statement("08", "").replace(&format!("<IBAN>{IBAN}</IBAN>"), "<Othr><Id>123</Id></Othr>");
    let e = error(&xml);
    assert!(e.path.ends_with("Stmt[1]") && e.reason.contains("IBAN"), "{e}");
}

#[test]
fn mismatched_tags_are_not_well_formed() {
    let e = error(&statement("08", "<Ntry><Amt Ccy=\"EUR\">1.00</Ntry>"));
    assert!(e.reason.contains("not well-formed"), "{e}");
}

#[test]
fn a_file_that_is_not_xml_is_refused() {
    let e = error("Datum;Betrag\n29.11.2026;12,00\n");
    assert!(!e.reason.is_empty());
}

use chrono::{NaiveDate, TimeZone, Utc};
use rust_decimal::Decimal;

use super::*;
use crate::finance::report::Category::*;

fn dec(text: &str) -> Decimal {
    text.parse().unwrap_or(Decimal::MAX)
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, d).unwrap_or_default()
}

/// 29–30 November 2026.
fn period() -> Period {
    Period { from: day(29), to: day(30) }
}

fn payment(id: &str, reference: &str, amount: &str, paid_day: u32) -> PfortePayment {
    PfortePayment {
        transaction_id: id.into(),
        provider_id: "pay".into(),
        provider_reference: Some(reference.into()),
        transaction_reference: None,
        amount: dec(amount),
        status: crate::model::PaymentStatus::Payed,
        paid: true,
        paid_after_timeout: false,
        paid_at: Utc.with_ymd_and_hms(2026, 11, paid_day, 10, 0, 0).single().unwrap_or_default(),
        submission_id: None,
    }
}

fn row(
    import: &str,
    line: i64,
    transaction: &str,
    gross: &str,
    fee: &str,
    payout: &str,
    booked: u32,
) -> SettlementLine {
    SettlementLine {
        import_id: import.into(),
        line,
        tenant_id: "09162000".into(),
        provider_id: "pay".into(),
        provider_transaction: transaction.into(),
        kind: if gross.starts_with('-') { SettlementKind::Refund } else { SettlementKind::Payment },
        gross: dec(gross),
        fee: dec(fee),
        payout_reference: payout.into(),
        booked_on: day(booked),
    }
}

fn bank(position: i64, amount: &str, remittance: &str, booked: u32) -> BankLine {
    BankLine {
        import_id: "imp_bank".into(),
        position,
        tenant_id: "09162000".into(),
        message: "camt.053".into(),
        account_iban: "DE02120300000000202051".into(),
        statement_id: "S-1".into(),
        entry_reference: format!("B-{position}"),
        amount: dec(amount),
        currency: "EUR".into(),
        booked_on: day(booked),
        value_on: Some(day(booked)),
        remittance: remittance.into(),
    }
}

fn input() -> ReconcileInput {
    ReconcileInput {
        tenant: "09162000".into(),
        period: period(),
        payments: Vec::new(),
        refunds: Vec::new(),
        settlement: Vec::new(),
        bank: Vec::new(),
    }
}

fn kinds(report: &Report) -> Vec<(Category, &str)> {
    report.findings.iter().map(|f| (f.category, f.subject.as_str())).collect()
}

#[test]
fn an_empty_period_has_no_findings_and_zero_totals_for_each_day() {
    let report = reconcile(&input());
    assert!(report.findings.is_empty());
    assert!(Category::ALL.iter().all(|c| report.count(*c) == 0));
    assert_eq!(
        (report.totals.paid, report.totals.settled, report.totals.bank),
        (Decimal::ZERO, Decimal::ZERO, Decimal::ZERO)
    );
    assert_eq!(report.daily.iter().map(|d| d.date).collect::<Vec<_>>(), vec![day(29), day(30)]);
    assert!(report.daily.iter().all(|d| d.paid.is_zero() && d.settled.is_zero()));
}

#[test]
fn what_lies_only_outside_the_period_is_not_reported() {
    let mut input = input();
    input.payments.push(payment("T-early", "R-early", "4.00", 20));
    input.settlement.push(row("imp_a", 2, "R-later", "6.00", "0.10", "PO-9", 15));
    input.bank.push(bank(1, "50.00", "Miete", 2));
    let report = reconcile(&input);
    assert_eq!(kinds(&report), vec![]);
    assert_eq!(report.totals.paid, Decimal::ZERO);
}

#[test]
fn a_period_with_nothing_to_match_lists_each_payment_as_missing() {
    let mut input = input();
    input.payments.push(payment("T-1", "R-1", "12.00", 29));
    input.payments.push(payment("T-2", "R-2", "8.50", 30));
    let report = reconcile(&input);
    assert_eq!(kinds(&report), vec![(MissingInSettlement, "T-1"), (MissingInSettlement, "T-2")]);
    assert_eq!(report.totals.paid, dec("20.50"));
    assert_eq!(report.daily[0].paid, dec("12.00"));
    assert_eq!(report.daily[1].paid, dec("8.50"));
}

/// Every kind of discrepancy at once, each exactly once, and the matches beside them.
fn everything() -> ReconcileInput {
    let mut input = input();
    let mut late = payment("T-late", "R5", "7.00", 30);
    late.status = crate::model::PaymentStatus::Failed;
    late.paid_after_timeout = true;
    let mut by_transfer = payment("T-kz", "R6", "15.00", 30);
    by_transfer.transaction_reference = Some("KZ-2026-0042".into());
    input.payments = vec![
        payment("T-ok", "R1", "12.00", 29),
        payment("T-missing", "R2", "8.00", 29),
        payment("T-mismatch", "R3", "20.00", 29),
        payment("T-dup", "R4", "5.00", 29),
        late,
        by_transfer,
        payment("T-before", "R7", "1.00", 10),
    ];
    input.refunds = vec![PforteRefund {
        refund_id: "RF-1".into(),
        transaction_id: "T-ok".into(),
        provider_id: "pay".into(),
        provider_reference: Some("R1".into()),
        transaction_reference: None,
        amount: dec("2.00"),
        status: RefundStatus::Submitted,
        created_at: Utc.with_ymd_and_hms(2026, 11, 30, 9, 0, 0).single().unwrap_or_default(),
    }];
    input.settlement = vec![
        row("imp_a", 2, "R1", "12.00", "0.30", "PO-1", 29),
        row("imp_a", 3, "R3", "19.00", "0.40", "PO-1", 29),
        row("imp_a", 4, "R4", "5.00", "0.10", "PO-1", 29),
        row("imp_a", 5, "R5", "7.00", "0.20", "PO-2", 30),
        row("imp_a", 6, "R9", "3.00", "0.10", "PO-2", 30),
        row("imp_b", 2, "R4", "5.00", "0.10", "PO-3", 30),
    ];
    input.bank = vec![
        bank(1, "35.20", "SEPA GUTSCHRIFT AUSZAHLUNG PO-1", 30),
        bank(2, "9.00", "AUSZAHLUNG PO-2", 30),
        bank(3, "15.00", "Gebuehr Geburtsurkunde KZ-2026-0042", 30),
        bank(4, "100.00", "Miete Dezember", 30),
        bank(5, "1.00", "something next month", 5),
    ];
    input
}

#[test]
fn every_kind_of_discrepancy_at_once_gives_exactly_the_expected_findings() {
    let report = reconcile(&everything());
    assert_eq!(
        kinds(&report),
        vec![
            (Matched, "PO-1"),
            (Matched, "T-dup"),
            (Matched, "T-kz"),
            (Matched, "T-late"),
            (Matched, "T-ok"),
            (MissingInSettlement, "T-missing"),
            (UnknownToPforte, "R9"),
            (AmountMismatch, "T-mismatch"),
            (DuplicateSettlement, "T-dup"),
            (PaidAfterTimeout, "T-late"),
            (RefundNotSettled, "T-ok"),
            (PayoutWithoutBankEntry, "PO-3"),
            (PayoutAmountMismatch, "PO-2"),
            (BankEntryWithoutPayout, "B-4"),
        ]
    );
    assert_eq!(report.count(Matched), 5);
    assert!(Category::ALL.iter().all(|c| report.count(*c) >= 1), "each category occurs");
}

#[test]
fn each_discrepancy_names_the_evidence_of_both_sides() {
    let report = reconcile(&everything());
    let find = |category: Category, subject: &str| {
        report.findings.iter().find(|f| f.category == category && f.subject == subject).cloned()
    };
    let mismatch = find(AmountMismatch, "T-mismatch").unwrap_or_else(|| unreachable!());
    assert_eq!(mismatch.pforte.as_ref().map(|p| p.amount), Some(dec("20.00")));
    assert_eq!(
        mismatch.settlement.iter().map(|s| (s.import_id.as_str(), s.line, s.gross)).collect::<Vec<_>>(),
        vec![("imp_a", 3, dec("19.00"))]
    );
    assert_eq!(mismatch.amounts_text(), "pforte 20.00, settlement 19.00");

    let duplicate = find(DuplicateSettlement, "T-dup").unwrap_or_else(|| unreachable!());
    let rows: Vec<(&str, i64)> = duplicate.settlement.iter().map(|s| (s.import_id.as_str(), s.line)).collect();
    assert_eq!(rows, vec![("imp_a", 4), ("imp_b", 2)], "the settled row and the duplicate");

    let payout = find(PayoutAmountMismatch, "PO-2").unwrap_or_else(|| unreachable!());
    assert_eq!(payout.payout.as_ref().map(|p| (p.net, p.rows)), Some((dec("9.70"), 2)));
    assert_eq!(payout.bank.as_ref().map(|b| (b.amount, b.remittance.as_str())), Some((dec("9.00"), "AUSZAHLUNG PO-2")));

    let matched = find(Matched, "PO-1").unwrap_or_else(|| unreachable!());
    assert_eq!(
        matched.payout.as_ref().map(|p| (p.net, p.gross, p.fee)),
        Some((dec("35.20"), dec("36.00"), dec("0.80")))
    );

    let late = find(PaidAfterTimeout, "T-late").unwrap_or_else(|| unreachable!());
    assert_eq!(
        late.pforte.as_ref().map(|p| (p.status.as_str(), p.at.as_deref())),
        Some(("FAILED", Some("2026-11-30T11:00:00+01:00")))
    );

    let refund = find(RefundNotSettled, "T-ok").unwrap_or_else(|| unreachable!());
    assert_eq!(refund.pforte.as_ref().and_then(|p| p.refund_id.as_deref()), Some("RF-1"));

    let unknown = find(UnknownToPforte, "R9").unwrap_or_else(|| unreachable!());
    assert!(unknown.pforte.is_none() && unknown.settlement.len() == 1);
    let bank = find(BankEntryWithoutPayout, "B-4").unwrap_or_else(|| unreachable!());
    assert_eq!(bank.bank.as_ref().map(|b| b.remittance.as_str()), Some("Miete Dezember"));
}

#[test]
fn totals_and_daily_sums_count_each_settled_transaction_once() {
    let report = reconcile(&everything());
    // Paid in the period: 12 + 8 + 20 + 5 on the 29th, 7 + 15 on the 30th (T-before is outside).
    assert_eq!(report.totals.paid, dec("67.00"));
    assert_eq!((report.daily[0].paid, report.daily[1].paid), (dec("45.00"), dec("22.00")));
    // Settled: R1 12 + R3 19 + R4 5 on the 29th, R5 7 + R9 3 on the 30th; R4's duplicate not again.
    assert_eq!((report.daily[0].settled, report.daily[1].settled), (dec("36.00"), dec("10.00")));
    assert_eq!(report.totals.settled, dec("46.00"));
    assert_eq!(report.totals.payouts, dec("35.20") + dec("9.70") + dec("4.90"));
}

#[test]
fn a_settled_refund_matches_and_a_refund_row_pforte_lacks_is_unknown() {
    let mut input = input();
    input.payments.push(payment("T-1", "R1", "12.00", 29));
    input.refunds.push(PforteRefund {
        refund_id: "RF-1".into(),
        transaction_id: "T-1".into(),
        provider_id: "pay".into(),
        provider_reference: Some("R1".into()),
        transaction_reference: None,
        amount: dec("2.00"),
        status: RefundStatus::Submitted,
        created_at: Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).single().unwrap_or_default(),
    });
    input.settlement = vec![
        row("imp_a", 2, "R1", "12.00", "0", "PO-1", 29),
        row("imp_a", 3, "R1", "-2.00", "0", "PO-1", 30),
        row("imp_a", 4, "R1", "-1.00", "0", "PO-1", 30),
    ];
    input.bank.push(bank(1, "9.00", "PO-1", 30));
    let report = reconcile(&input);
    assert_eq!(kinds(&report), vec![(Matched, "PO-1"), (Matched, "T-1"), (Matched, "T-1"), (UnknownToPforte, "R1")]);
}

#[test]
fn the_same_row_in_two_overlapping_reports_counts_once_towards_its_payout() {
    let mut input = input();
    input.payments.push(payment("T-1", "R1", "12.00", 29));
    input.settlement =
        vec![row("imp_a", 2, "R1", "12.00", "0.30", "PO-1", 29), row("imp_b", 7, "R1", "12.00", "0.30", "PO-1", 29)];
    input.bank.push(bank(1, "11.70", "PO-1", 30));
    let report = reconcile(&input);
    assert_eq!(kinds(&report), vec![(Matched, "PO-1"), (Matched, "T-1"), (DuplicateSettlement, "T-1")]);
}

#[test]
fn references_are_found_as_whole_words_or_across_a_line_wrap() {
    assert!(mentions("SEPA GUTSCHRIFT P-7 VOM 29.11.", "P-7"));
    assert!(!mentions("SEPA GUTSCHRIFT P-70", "P-7"), "a longer reference is another one");
    assert!(mentions("AUSZAHLUNG PAYOUT-2026-11-2 9-0001", "PAYOUT-2026-11-29-0001"), "wrapped after 35 characters");
    assert!(!mentions("xx", ""));
    assert!(mentions("auszahlung po-1", "PO-1"), "letter case does not matter");
}

#[test]
fn a_period_is_at_most_a_year_and_never_ends_before_it_begins() {
    assert!(Period::new(day(30), day(29)).is_err());
    assert!(Period::new(day(1), day(1)).is_ok());
    let year_later = NaiveDate::from_ymd_opt(2027, 11, 30).unwrap_or_default();
    assert!(Period::new(day(29), year_later).is_err());
}

#[test]
fn a_payment_counts_on_its_german_calendar_day() {
    // 23:30 UTC on the 28th is 00:30 on the 29th in Germany.
    let mut late_evening = payment("T-1", "R1", "3.00", 28);
    late_evening.paid_at = Utc.with_ymd_and_hms(2026, 11, 28, 23, 30, 0).single().unwrap_or_default();
    let mut input = input();
    input.payments.push(late_evening);
    let report = reconcile(&input);
    assert_eq!(report.daily[0].paid, dec("3.00"));
}

#[test]
fn a_settlement_row_naming_pforte_s_transaction_id_instead_of_the_provider_s_settles_the_payment() {
    let mut input = input();
    input.payments.push(payment("T-1", "R-1", "12.00", 29));
    // The provider's report names pforte's id (as sent to it), not its own reference R-1.
    input.settlement.push(row("imp_a", 2, "T-1", "12.00", "0.30", "PO-1", 29));
    let report = reconcile(&input);
    assert_eq!(kinds(&report), vec![(Matched, "T-1"), (PayoutWithoutBankEntry, "PO-1")]);
    let matched = &report.findings[0];
    assert_eq!(matched.settlement[0].transaction, "T-1");
    assert_eq!(report.totals.settled, dec("12.00"));
}

#[test]
fn a_settlement_row_naming_the_end_to_end_reference_settles_the_payment() {
    let id = "pX_tQ2kHT5brgH6jP3gs06FljLcxid5o47x4ayn73x8";
    let mut input = input();
    let mut paid = payment(id, "R-2", "20.50", 30);
    paid.provider_reference = None;
    input.payments.push(paid);
    // SEPA carries 35 characters of an end-to-end id: the provider reports what reached it.
    input.settlement.push(row("imp_a", 2, &id[..35], "19.00", "0.00", "PO-2", 30));
    let report = reconcile(&input);
    assert_eq!(kinds(&report), vec![(AmountMismatch, id), (PayoutWithoutBankEntry, "PO-2")]);
}

#[test]
fn a_duplicate_row_naming_pforte_s_id_is_found_with_its_payment() {
    let mut input = input();
    input.payments.push(payment("T-3", "R-3", "5.00", 29));
    input.settlement.push(row("imp_a", 2, "T-3", "5.00", "0.00", "PO-3", 29));
    input.settlement.push(row("imp_b", 2, "T-3", "5.00", "0.00", "PO-3", 30));
    let report = reconcile(&input);
    let duplicate = report.findings.iter().find(|f| f.category == DuplicateSettlement);
    assert_eq!(duplicate.map(|f| f.subject.as_str()), Some("T-3"));
    assert_eq!(duplicate.and_then(|f| f.pforte.as_ref()).map(|p| p.transaction_id.as_str()), Some("T-3"));
}

#[test]
fn findings_about_a_payment_show_the_provider_reference_and_the_kassenzeichen() {
    let mut input = input();
    let mut missing = payment("T-4", "R-4", "7.00", 29);
    missing.transaction_reference = Some("KZ 2026-000104".into());
    input.payments.push(missing);
    let mut formula = payment("T-5", "=HYPERLINK(\"x\")", "8.00", 29);
    formula.transaction_reference = Some("@SUM(A1)".into());
    input.payments.push(formula);
    // Unknown to pforte: the provider's reference is the row's transaction.
    input.settlement.push(row("imp_a", 2, "R-unknown", "9.00", "0.00", "PO-4", 29));
    let report = reconcile(&input);
    let t4 = report.findings.iter().find(|f| f.subject == "T-4").expect("T-4");
    let evidence = t4.pforte.as_ref().expect("pforte's side");
    assert_eq!(evidence.provider_reference.as_deref(), Some("R-4"));
    assert_eq!(evidence.transaction_reference.as_deref(), Some("KZ 2026-000104"));
    assert_eq!((t4.provider_reference(), t4.kassenzeichen()), ("R-4".into(), "KZ 2026-000104".into()));
    let unknown = report.findings.iter().find(|f| f.category == UnknownToPforte).expect("unknown");
    assert_eq!((unknown.provider_reference(), unknown.kassenzeichen()), ("R-unknown".into(), String::new()));

    let csv = report.to_csv();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("category;transaction;provider reference;Kassenzeichen;pforte evidence;"), "{csv}");
    assert!(csv.contains("missing_in_settlement;T-4;R-4;KZ 2026-000104;"), "{csv}");
    // Text from outside that a spreadsheet would run stays text.
    assert!(csv.contains("missing_in_settlement;T-5;\"'=HYPERLINK(\"\"x\"\")\";'@SUM(A1);"), "{csv}");
    let json = report.to_json();
    assert!(
        json.contains("\"provider_reference\": \"R-4\"")
            && json.contains("\"transaction_reference\": \"KZ 2026-000104\"")
    );
}

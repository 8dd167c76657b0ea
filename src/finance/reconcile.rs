//! Reconciliation, pure: pforte's payments and refunds, the providers' settlement rows and the bank's
//! entries in; a report out. No database, no clock.
//!
//! Two levels (xbezahldienste.md, "What finance offices need"): each paid transaction against its
//! settlement row, and each payout (the settlement rows sharing a payout reference, net of fees)
//! against the bank entry whose remittance information carries that reference.
//!
//! Inputs may reach beyond the period (settlement and payouts lag payments by days): what lies outside
//! serves as the other side of a match, but is only reported when something of it lies inside.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::records::local_time;
pub(crate) use super::records::{
    local_date, BankLine, Period, PfortePayment, PforteRefund, ReconcileInput, RefundStatus, SettlementLine,
};
use super::report::{
    BankEvidence, Category, DailyTotal, Finding, PayoutEvidence, PforteEvidence, Report, SettlementEvidence, Totals,
};
use crate::model::end_to_end_id;
use crate::registry::SettlementKind;

pub(crate) fn reconcile(input: &ReconcileInput) -> Report {
    let period = input.period;
    let mut findings = Vec::new();
    let mut used_lines: HashSet<usize> = HashSet::new();
    let mut used_bank: HashSet<usize> = HashSet::new();

    // The first payment row per transaction settles it; later ones are duplicates.
    let mut first_row: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for (index, line) in input.settlement.iter().enumerate() {
        if line.kind != SettlementKind::Payment {
            continue;
        }
        let key = (line.provider_id.as_str(), line.provider_transaction.as_str());
        match first_row.get(&key) {
            None => {
                first_row.insert(key, index);
            }
            Some(&first) => {
                used_lines.insert(index);
                if period.contains(line.booked_on) {
                    let payment = find_payment(input, &line.provider_id, &line.provider_transaction);
                    findings.push(Finding {
                        category: Category::DuplicateSettlement,
                        subject: subject_of(payment, line),
                        pforte: payment.map(payment_evidence),
                        settlement: vec![settlement_evidence(&input.settlement[first]), settlement_evidence(line)],
                        payout: None,
                        bank: None,
                    });
                }
            }
        }
    }

    let payouts = payout_findings(input, &mut used_bank);
    findings.extend(payouts.findings);

    for payment in &input.payments {
        let row = settlement_names(payment.provider_reference.as_deref(), &payment.transaction_id)
            .find_map(|name| first_row.get(&(payment.provider_id.as_str(), name)).copied());
        if let Some(index) = row {
            used_lines.insert(index);
        }
        let line = row.map(|i| &input.settlement[i]);
        let paid_in_period = payment.paid && period.contains(local_date(payment.paid_at));
        let line_in_period = line.is_some_and(|l| period.contains(l.booked_on));
        if payment.paid_after_timeout && paid_in_period {
            findings.push(Finding {
                category: Category::PaidAfterTimeout,
                subject: payment.transaction_id.clone(),
                pforte: Some(payment_evidence(payment)),
                settlement: line.map(settlement_evidence).into_iter().collect(),
                payout: None,
                bank: None,
            });
        }
        let category = match line {
            Some(_) if !payment.paid => Category::UnknownToPforte,
            Some(line) if line.gross == payment.amount => Category::Matched,
            Some(_) => Category::AmountMismatch,
            None => match kassenzeichen_transfer(input, payment, &mut used_bank) {
                Some((category, bank)) => {
                    if paid_in_period || period.contains(bank.booked_on) {
                        findings.push(Finding {
                            category,
                            subject: payment.transaction_id.clone(),
                            pforte: Some(payment_evidence(payment)),
                            settlement: Vec::new(),
                            payout: None,
                            bank: Some(bank_evidence(bank)),
                        });
                    }
                    continue;
                }
                None if payment.paid => Category::MissingInSettlement,
                None => continue,
            },
        };
        if paid_in_period || line_in_period {
            findings.push(Finding {
                category,
                subject: payment.transaction_id.clone(),
                pforte: Some(payment_evidence(payment)),
                settlement: line.map(settlement_evidence).into_iter().collect(),
                payout: None,
                bank: None,
            });
        }
    }

    findings.extend(refund_findings(input, &mut used_lines));

    // Settlement rows no payment or refund claimed.
    for (index, line) in input.settlement.iter().enumerate() {
        if used_lines.contains(&index) || !period.contains(line.booked_on) {
            continue;
        }
        findings.push(Finding {
            category: Category::UnknownToPforte,
            subject: line.provider_transaction.clone(),
            pforte: None,
            settlement: vec![settlement_evidence(line)],
            payout: None,
            bank: None,
        });
    }
    for (index, bank) in input.bank.iter().enumerate() {
        if used_bank.contains(&index) || !period.contains(bank.booked_on) {
            continue;
        }
        findings.push(Finding {
            category: Category::BankEntryWithoutPayout,
            subject: bank.entry_reference.clone(),
            pforte: None,
            settlement: Vec::new(),
            payout: None,
            bank: Some(bank_evidence(bank)),
        });
    }

    findings.sort_by(|a, b| {
        (a.category, &a.subject, a.settlement.last().map(|s| (&s.import_id, s.line))).cmp(&(
            b.category,
            &b.subject,
            b.settlement.last().map(|s| (&s.import_id, s.line)),
        ))
    });
    let totals = totals(input, &findings, &first_row, payouts.net_in_period);
    Report {
        tenant: input.tenant.clone(),
        from: period.from,
        to: period.to,
        daily: daily(input, &first_row),
        findings,
        totals,
    }
}

fn find_payment<'a>(input: &'a ReconcileInput, provider_id: &str, reference: &str) -> Option<&'a PfortePayment> {
    input.payments.iter().find(|p| {
        p.provider_id == provider_id
            && settlement_names(p.provider_reference.as_deref(), &p.transaction_id).any(|name| name == reference)
    })
}

/// The names a settlement row may give a payment: the provider's own reference, or, when the
/// provider reports what pforte sent it, pforte's transaction id or its end-to-end reference (the
/// first 35 characters, all an `EndToEndId` holds on the way through SEPA).
fn settlement_names<'a>(provider_reference: Option<&'a str>, transaction_id: &'a str) -> impl Iterator<Item = &'a str> {
    provider_reference.into_iter().chain([transaction_id, end_to_end_id(transaction_id)])
}

/// pforte's transaction id when pforte knows the row's transaction, else the provider's id.
fn subject_of(payment: Option<&PfortePayment>, line: &SettlementLine) -> String {
    payment.map_or_else(|| line.provider_transaction.clone(), |p| p.transaction_id.clone())
}

fn payment_evidence(payment: &PfortePayment) -> PforteEvidence {
    PforteEvidence {
        transaction_id: payment.transaction_id.clone(),
        refund_id: None,
        provider_reference: payment.provider_reference.clone(),
        transaction_reference: payment.transaction_reference.clone(),
        amount: payment.amount,
        status: payment.status.as_str().to_owned(),
        at: payment.paid.then(|| local_time(payment.paid_at)),
        submission_id: payment.submission_id.clone(),
    }
}

fn settlement_evidence(line: &SettlementLine) -> SettlementEvidence {
    SettlementEvidence {
        import_id: line.import_id.clone(),
        line: line.line,
        transaction: line.provider_transaction.clone(),
        kind: line.kind,
        gross: line.gross,
        fee: line.fee,
        payout_reference: line.payout_reference.clone(),
        booked_on: line.booked_on,
    }
}

fn bank_evidence(bank: &BankLine) -> BankEvidence {
    BankEvidence {
        import_id: bank.import_id.clone(),
        position: bank.position,
        reference: bank.entry_reference.clone(),
        amount: bank.amount,
        booked_on: bank.booked_on,
        value_on: bank.value_on,
        remittance: bank.remittance.clone(),
    }
}

/// A paid payment without settlement row whose Kassenzeichen stands in an unused bank entry: the
/// citizen transferred the money directly. Same amount → matched, another → amount mismatch.
fn kassenzeichen_transfer<'a>(
    input: &'a ReconcileInput,
    payment: &PfortePayment,
    used_bank: &mut HashSet<usize>,
) -> Option<(Category, &'a BankLine)> {
    let reference = payment.transaction_reference.as_deref().filter(|_| payment.paid)?;
    let candidates: Vec<usize> = (0..input.bank.len())
        .filter(|i| !used_bank.contains(i) && mentions(&input.bank[*i].remittance, reference))
        .collect();
    let exact = candidates.iter().copied().find(|i| input.bank[*i].amount == payment.amount);
    let (index, category) = match exact {
        Some(i) => (i, Category::Matched),
        None => (*candidates.first()?, Category::AmountMismatch),
    };
    used_bank.insert(index);
    Some((category, &input.bank[index]))
}

/// Whether remittance text names a reference. As a whole word first; banks wrap remittance lines
/// every 35 characters, which can split a reference, so a long reference (where a chance hit is not
/// plausible) also counts with all spaces removed.
pub(crate) fn mentions(remittance: &str, reference: &str) -> bool {
    let text = remittance.to_uppercase();
    let wanted = reference.trim().to_uppercase();
    if wanted.is_empty() {
        return false;
    }
    let is_word = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
    let whole_word = text.match_indices(&wanted).any(|(at, found)| {
        !is_word(text[..at].chars().next_back()) && !is_word(text[at + found.len()..].chars().next())
    });
    if whole_word {
        return true;
    }
    let squeeze = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
    let wanted = squeeze(&wanted);
    wanted.chars().count() >= 10 && squeeze(&text).contains(&wanted)
}

struct Payout<'a> {
    provider_id: &'a str,
    reference: &'a str,
    rows: Vec<&'a SettlementLine>,
}

impl Payout<'_> {
    fn evidence(&self) -> PayoutEvidence {
        let gross: Decimal = self.rows.iter().map(|r| r.gross).sum();
        let fee: Decimal = self.rows.iter().map(|r| r.fee).sum();
        let imports: BTreeSet<&str> = self.rows.iter().map(|r| r.import_id.as_str()).collect();
        PayoutEvidence {
            payout_reference: self.reference.to_owned(),
            provider_id: self.provider_id.to_owned(),
            net: gross - fee,
            gross,
            fee,
            rows: self.rows.len(),
            booked_on: self.date(),
            import_ids: imports.into_iter().map(str::to_owned).collect(),
        }
    }

    fn date(&self) -> NaiveDate {
        self.rows.iter().map(|r| r.booked_on).max().unwrap_or_default()
    }
}

struct PayoutOutcome {
    findings: Vec<Finding>,
    net_in_period: Decimal,
}

/// Groups settlement rows into payouts and finds each payout's bank entry.
fn payout_findings(input: &ReconcileInput, used_bank: &mut HashSet<usize>) -> PayoutOutcome {
    let period = input.period;
    // The same row in two overlapping report files counts once towards its payout; rows of one file
    // all count (a provider listing a transaction twice pays it out twice).
    let mut seen: BTreeMap<(&str, &str, SettlementKind, Decimal, Decimal, &str), &str> = BTreeMap::new();
    let mut payouts: BTreeMap<(&str, &str), Payout<'_>> = BTreeMap::new();
    for line in &input.settlement {
        let identity = (
            line.provider_id.as_str(),
            line.provider_transaction.as_str(),
            line.kind,
            line.gross,
            line.fee,
            line.payout_reference.as_str(),
        );
        match seen.get(&identity) {
            Some(import) if *import != line.import_id => continue,
            Some(_) => {}
            None => {
                seen.insert(identity, line.import_id.as_str());
            }
        }
        payouts
            .entry((line.provider_id.as_str(), line.payout_reference.as_str()))
            .or_insert_with(|| Payout {
                provider_id: &line.provider_id,
                reference: &line.payout_reference,
                rows: Vec::new(),
            })
            .rows
            .push(line);
    }
    let mut ordered: Vec<Payout<'_>> = payouts.into_values().collect();
    ordered.sort_by(|a, b| (a.date(), a.reference).cmp(&(b.date(), b.reference)));

    let mut findings = Vec::new();
    let mut net_in_period = Decimal::ZERO;
    for payout in &ordered {
        let evidence = payout.evidence();
        let in_period = period.contains(evidence.booked_on);
        if in_period {
            net_in_period += evidence.net;
        }
        let candidates: Vec<usize> = (0..input.bank.len())
            .filter(|i| !used_bank.contains(i) && mentions(&input.bank[*i].remittance, payout.reference))
            .collect();
        let exact = candidates.iter().copied().find(|i| input.bank[*i].amount == evidence.net);
        let (category, bank) = match (exact, candidates.first()) {
            (Some(i), _) => (Category::Matched, Some(i)),
            (None, Some(&i)) => (Category::PayoutAmountMismatch, Some(i)),
            (None, None) => (Category::PayoutWithoutBankEntry, None),
        };
        if let Some(i) = bank {
            used_bank.insert(i);
        }
        let bank = bank.map(|i| &input.bank[i]);
        if in_period || bank.is_some_and(|b| period.contains(b.booked_on)) {
            findings.push(Finding {
                category,
                subject: payout.reference.to_owned(),
                pforte: None,
                settlement: Vec::new(),
                payout: Some(evidence),
                bank: bank.map(bank_evidence),
            });
        }
    }
    PayoutOutcome { findings, net_in_period }
}

/// Refunds pforte submitted to a provider against the provider's refund rows.
fn refund_findings(input: &ReconcileInput, used_lines: &mut HashSet<usize>) -> Vec<Finding> {
    let period = input.period;
    let mut findings = Vec::new();
    for refund in &input.refunds {
        // A pending refund may already be at the provider; one for the finance office's own transfer
        // (INSTRUCTION) or a failed one never shows in a settlement.
        if !matches!(refund.status, RefundStatus::Pending | RefundStatus::Submitted) {
            continue;
        }
        let line = input.settlement.iter().enumerate().find(|(i, l)| {
            !used_lines.contains(i)
                && l.kind == SettlementKind::Refund
                && l.provider_id == refund.provider_id
                && settlement_names(refund.provider_reference.as_deref(), &refund.transaction_id)
                    .any(|name| name == l.provider_transaction)
                && -l.gross == refund.amount
        });
        if let Some((index, _)) = line {
            used_lines.insert(index);
        }
        let line = line.map(|(_, l)| l);
        let recorded_in_period = period.contains(local_date(refund.created_at));
        let category = match line {
            Some(_) => Category::Matched,
            None if refund.status == RefundStatus::Submitted => Category::RefundNotSettled,
            None => continue,
        };
        if recorded_in_period || line.is_some_and(|l| period.contains(l.booked_on)) {
            findings.push(Finding {
                category,
                subject: refund.transaction_id.clone(),
                pforte: Some(PforteEvidence {
                    transaction_id: refund.transaction_id.clone(),
                    refund_id: Some(refund.refund_id.clone()),
                    provider_reference: refund.provider_reference.clone(),
                    transaction_reference: refund.transaction_reference.clone(),
                    amount: refund.amount,
                    status: refund.status.as_str().to_owned(),
                    at: Some(local_time(refund.created_at)),
                    submission_id: None,
                }),
                settlement: line.map(settlement_evidence).into_iter().collect(),
                payout: None,
                bank: None,
            });
        }
    }
    findings
}

fn totals(
    input: &ReconcileInput,
    findings: &[Finding],
    first_row: &BTreeMap<(&str, &str), usize>,
    payouts: Decimal,
) -> Totals {
    let period = input.period;
    let mut counts: BTreeMap<Category, usize> = Category::ALL.into_iter().map(|c| (c, 0)).collect();
    for finding in findings {
        *counts.entry(finding.category).or_default() += 1;
    }
    let paid = input.payments.iter().filter(|p| p.paid && period.contains(local_date(p.paid_at))).map(|p| p.amount);
    let settled: Vec<&SettlementLine> =
        first_row.values().map(|i| &input.settlement[*i]).filter(|l| period.contains(l.booked_on)).collect();
    Totals {
        findings: counts,
        paid: paid.sum(),
        settled: settled.iter().map(|l| l.gross).sum(),
        fees: settled.iter().map(|l| l.fee).sum(),
        payouts,
        bank: input.bank.iter().filter(|b| period.contains(b.booked_on)).map(|b| b.amount).sum(),
    }
}

fn daily(input: &ReconcileInput, first_row: &BTreeMap<(&str, &str), usize>) -> Vec<DailyTotal> {
    let mut days: BTreeMap<NaiveDate, DailyTotal> = input
        .period
        .days()
        .map(|date| (date, DailyTotal { date, paid: Decimal::ZERO, settled: Decimal::ZERO }))
        .collect();
    for payment in input.payments.iter().filter(|p| p.paid) {
        if let Some(day) = days.get_mut(&local_date(payment.paid_at)) {
            day.paid += payment.amount;
        }
    }
    for line in first_row.values().map(|i| &input.settlement[*i]) {
        if let Some(day) = days.get_mut(&line.booked_on) {
            day.settled += line.gross;
        }
    }
    days.into_values().collect()
}

#[cfg(test)]
mod tests;

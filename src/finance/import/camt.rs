//! Bank statements in ISO 20022: camt.053 (end-of-day statement) and camt.054 (debit/credit
//! notification), versions .001.02 to .001.08, read as a stream with quick-xml into booked entries.
//!
//! A bank statement comes from outside, so the reader takes no chances: a `<!DOCTYPE` is refused (no
//! DTD, so no external entities and no entity expansion bombs) and any entity reference other than
//! XML's five predefined ones and character references is refused, not expanded. Every fault names the
//! element path (e.g. `Document/BkToCstmrStmt/Stmt[1]/Ntry[3]/Amt`) and the reason.

use chrono::{DateTime, NaiveDate, NaiveDateTime};
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;
use rust_decimal::Decimal;

use self::batch::{split_batch, TransactionDraft};
use super::parse_amount;
use crate::registry::DecimalSeparator;

/// Which ISO 20022 cash management message a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MessageKind {
    /// camt.053: BkToCstmrStmt / Stmt.
    Statement,
    /// camt.054: BkToCstmrDbtCdtNtfctn / Ntfctn.
    Notification,
}

impl MessageKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            MessageKind::Statement => "camt.053",
            MessageKind::Notification => "camt.054",
        }
    }

    fn report_element(self) -> &'static str {
        match self {
            MessageKind::Statement => "Stmt",
            MessageKind::Notification => "Ntfctn",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BankStatement {
    pub message: MessageKind,
    /// The message version, e.g. `001.08`.
    pub version: String,
    /// Every account (IBAN) the file reports on, each once, including statements without entries.
    pub accounts: Vec<String>,
    /// Booked entries in file order; pending or informational ones are left out.
    pub entries: Vec<BankEntry>,
}

/// One booked entry on the account, or one transaction of a batch entry (see [`split_batch`]).
/// Credits are positive, debits negative.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BankEntry {
    /// Where the entry stands, e.g. `Stmt[1]/Ntry[3]` (or `Stmt[1]/Ntry[3]/NtryDtls/TxDtls[2]`).
    pub path: String,
    pub statement_id: String,
    pub account_iban: String,
    /// The bank's reference for the entry (AcctSvcrRef, else NtryRef, else the statement id and index);
    /// for a batch's transaction its own AcctSvcrRef, else the entry's with `/` and its number.
    pub reference: String,
    pub amount: Decimal,
    pub currency: String,
    pub booked_on: NaiveDate,
    pub value_on: Option<NaiveDate>,
    /// Unstructured remittance lines, structured creditor references and end-to-end ids, joined by a
    /// space: where a payout reference or a Kassenzeichen stands.
    pub remittance: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub(crate) struct XmlError {
    pub path: String,
    pub reason: String,
}

const NAMESPACE_PREFIX: &str = "urn:iso:std:iso:20022:tech:xsd:";
const VERSIONS: [&str; 7] = ["001.02", "001.03", "001.04", "001.05", "001.06", "001.07", "001.08"];

pub(crate) fn parse(bytes: &[u8]) -> Result<BankStatement, XmlError> {
    Parser::default().run(bytes)
}

/// The entry being read, its fields as they arrive.
#[derive(Default)]
struct EntryDraft {
    amount: Option<(String, String)>,
    credit_debit: Option<String>,
    status: Option<String>,
    booked: Option<String>,
    value: Option<String>,
    servicer_reference: Option<String>,
    entry_reference: Option<String>,
    remittance: Vec<String>,
    /// `NtryDtls/TxDtls`, in order.
    transactions: Vec<TransactionDraft>,
}

#[derive(Default)]
struct Parser {
    /// Open elements: local name and, for statements and entries, their 1-based index.
    stack: Vec<(String, Option<usize>)>,
    message: Option<(MessageKind, String)>,
    report_depth: Option<usize>,
    reports: usize,
    report_id: Option<String>,
    report_iban: Option<String>,
    report_entries: Vec<(String, EntryDraft)>,
    entry_depth: Option<usize>,
    entries_in_report: usize,
    entry: EntryDraft,
    /// The attribute `Ccy` of the `Amt` being read.
    currency: Option<String>,
    text: String,
    done: Vec<BankEntry>,
    report_accounts: Vec<String>,
}

impl Parser {
    fn run(mut self, bytes: &[u8]) -> Result<BankStatement, XmlError> {
        let mut reader = NsReader::from_reader(bytes);
        reader.config_mut().expand_empty_elements = true;
        reader.config_mut().check_end_names = true;
        loop {
            let read = reader.read_resolved_event();
            let (namespace, event) = match read {
                Ok(read) => read,
                Err(e) => {
                    let reason = format!("is not well-formed XML: {e}");
                    drop(e);
                    return Err(self.fault(format!("{reason} (at byte {})", reader.error_position())));
                }
            };
            match event {
                Event::DocType(_) => {
                    return Err(self.fault("a DOCTYPE is not accepted: statements are read without DTDs or entities"))
                }
                Event::Start(start) => {
                    let namespace = match namespace {
                        ResolveResult::Bound(ns) => String::from_utf8_lossy(ns.as_ref()).into_owned(),
                        _ => String::new(),
                    };
                    self.start(&start, &namespace)?;
                }
                Event::End(_) => self.end()?,
                Event::Text(text) => {
                    let text = text.xml10_content().map_err(|e| self.fault(format!("is not UTF-8: {e}")))?;
                    self.text.push_str(&text);
                }
                Event::CData(data) => {
                    let text = data.xml10_content().map_err(|e| self.fault(format!("is not UTF-8: {e}")))?;
                    self.text.push_str(&text);
                }
                Event::GeneralRef(reference) => {
                    let name = reference.decode().map_err(|e| self.fault(format!("is not UTF-8: {e}")))?.into_owned();
                    match reference.resolve_char_ref() {
                        Ok(Some(c)) => self.text.push(c),
                        Ok(None) => match quick_xml::escape::resolve_predefined_entity(&name) {
                            Some(text) => self.text.push_str(text),
                            None => {
                                return Err(self.fault(format!(
                                    "the entity reference &{name}; is not accepted (no DTDs or entity expansion)"
                                )))
                            }
                        },
                        Err(e) => return Err(self.fault(format!("bad character reference &{name};: {e}"))),
                    }
                }
                Event::Eof => return self.finish(),
                Event::Empty(_) | Event::Comment(_) | Event::Decl(_) | Event::PI(_) => {}
            }
        }
    }

    fn path(&self) -> String {
        let parts: Vec<String> = self
            .stack
            .iter()
            .map(|(name, index)| match index {
                Some(i) => format!("{name}[{i}]"),
                None => name.clone(),
            })
            .collect();
        if parts.is_empty() {
            "(document)".to_owned()
        } else {
            parts.join("/")
        }
    }

    fn fault(&self, reason: impl Into<String>) -> XmlError {
        XmlError { path: self.path(), reason: reason.into() }
    }

    fn start(&mut self, start: &BytesStart<'_>, namespace: &str) -> Result<(), XmlError> {
        let name = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
        self.text.clear();
        let depth = self.stack.len();
        if depth == 0 {
            self.stack.push((name.clone(), None));
            return self.root(&name, namespace);
        }
        let Some((message, _)) = &self.message else { return Err(self.fault("no camt message")) };
        let mut index = None;
        if depth == 2 && name == message.report_element() {
            self.reports += 1;
            index = Some(self.reports);
            self.report_depth = Some(depth);
            self.entries_in_report = 0;
            self.report_id = None;
            self.report_iban = None;
        } else if self.report_depth == Some(depth - 1) && name == "Ntry" {
            self.entries_in_report += 1;
            index = Some(self.entries_in_report);
            self.entry_depth = Some(depth);
            self.entry = EntryDraft::default();
        } else if self.entry_depth == Some(depth.saturating_sub(2)) && name == "TxDtls" {
            let path = format!("{}/TxDtls[{}]", self.path(), self.entry.transactions.len() + 1);
            self.entry.transactions.push(TransactionDraft { path, ..TransactionDraft::default() });
        }
        self.stack.push((name.clone(), index));
        if name == "Amt" && self.entry_depth.is_some() {
            let currency = start
                .try_get_attribute("Ccy")
                .map_err(|e| self.fault(format!("bad attributes: {e}")))?
                .map(|a| a.normalized_value(quick_xml::XmlVersion::Implicit1_0).map(|v| v.into_owned()))
                .transpose()
                .map_err(|e| self.fault(format!("bad Ccy attribute: {e}")))?;
            self.currency = currency;
        }
        Ok(())
    }

    fn root(&mut self, name: &str, namespace: &str) -> Result<(), XmlError> {
        if name != "Document" {
            return Err(self.fault("the root element must be Document"));
        }
        let message = namespace.strip_prefix(NAMESPACE_PREFIX).and_then(|rest| {
            let (kind, version) = if let Some(v) = rest.strip_prefix("camt.053.") {
                (MessageKind::Statement, v)
            } else if let Some(v) = rest.strip_prefix("camt.054.") {
                (MessageKind::Notification, v)
            } else {
                return None;
            };
            VERSIONS.contains(&version).then(|| (kind, version.to_owned()))
        });
        match message {
            Some(message) => {
                self.message = Some(message);
                Ok(())
            }
            None => Err(self.fault(format!(
                "the namespace `{namespace}` is not camt.053 or camt.054 in a version from .001.02 to .001.08"
            ))),
        }
    }

    /// Names from below `depth` down to the element being closed.
    fn relative(&self, depth: usize) -> Vec<String> {
        self.stack.iter().skip(depth + 1).map(|(n, _)| n.clone()).collect()
    }

    fn end(&mut self) -> Result<(), XmlError> {
        let text = std::mem::take(&mut self.text).trim().to_owned();
        let depth = self.stack.len().saturating_sub(1);
        if let Some(entry_depth) = self.entry_depth {
            if depth == entry_depth {
                let draft = std::mem::take(&mut self.entry);
                self.report_entries.push((self.path(), draft));
                self.entry_depth = None;
            } else {
                let relative = self.relative(entry_depth);
                let relative: Vec<&str> = relative.iter().map(String::as_str).collect();
                self.entry_field(&relative, text);
            }
        } else if let Some(report_depth) = self.report_depth {
            if depth == report_depth {
                self.close_report()?;
                self.report_depth = None;
            } else {
                let relative = self.relative(report_depth);
                let relative: Vec<&str> = relative.iter().map(String::as_str).collect();
                match relative.as_slice() {
                    ["Id"] => self.report_id = Some(text),
                    ["Acct", "Id", "IBAN"] => self.report_iban = Some(text),
                    _ => {}
                }
            }
        }
        self.stack.pop();
        Ok(())
    }

    fn entry_field(&mut self, relative: &[&str], text: String) {
        let entry = &mut self.entry;
        if let (["NtryDtls", "TxDtls", inner @ ..], Some(transaction)) = (relative, entry.transactions.last_mut()) {
            let amount = |currency: &mut Option<String>| Some((text.clone(), currency.take().unwrap_or_default()));
            match inner {
                ["Amt"] => transaction.amount = amount(&mut self.currency),
                ["AmtDtls", "TxAmt", "Amt"] => transaction.detail_amount = amount(&mut self.currency),
                ["CdtDbtInd"] => transaction.credit_debit = Some(text.clone()),
                ["Refs", "AcctSvcrRef"] => transaction.servicer_reference = Some(text.clone()),
                _ => {}
            }
            if remittance_text(inner, &text) {
                transaction.remittance.push(text.clone());
            }
        }
        if remittance_text(relative, &text) {
            entry.remittance.push(text);
            return;
        }
        match relative {
            ["Amt"] => entry.amount = Some((text, self.currency.take().unwrap_or_default())),
            ["CdtDbtInd"] => entry.credit_debit = Some(text),
            ["Sts"] if !text.is_empty() => entry.status = Some(text),
            ["Sts", "Cd"] => entry.status = Some(text),
            ["BookgDt", "Dt" | "DtTm"] => entry.booked = Some(text),
            ["ValDt", "Dt" | "DtTm"] => entry.value = Some(text),
            ["AcctSvcrRef"] => entry.servicer_reference = Some(text),
            ["NtryRef"] => entry.entry_reference = Some(text),
            _ => {}
        }
    }

    /// Turns the statement's drafts into entries once its account is known.
    fn close_report(&mut self) -> Result<(), XmlError> {
        let Some(iban) = self.report_iban.take().map(|i| i.replace(' ', "").to_ascii_uppercase()) else {
            return Err(self.fault("Acct/Id/IBAN is missing: the account must be identified by its IBAN"));
        };
        let statement_id = self.report_id.take().unwrap_or_else(|| self.path());
        for (index, (path, draft)) in std::mem::take(&mut self.report_entries).into_iter().enumerate() {
            self.done.extend(typed_entry(&path, draft, &statement_id, &iban, index + 1)?);
        }
        self.report_accounts.push(iban);
        Ok(())
    }

    fn finish(mut self) -> Result<BankStatement, XmlError> {
        if !self.stack.is_empty() {
            return Err(self.fault("the document ends before this element is closed (truncated file?)"));
        }
        let Some((message, version)) = self.message else {
            return Err(self.fault("the file holds no XML document"));
        };
        if self.reports == 0 {
            return Err(XmlError {
                path: "Document".into(),
                reason: format!("holds no {} element", message.report_element()),
            });
        }
        self.report_accounts.sort_unstable();
        self.report_accounts.dedup();
        Ok(BankStatement { message, version, accounts: self.report_accounts, entries: self.done })
    }
}

/// Unstructured remittance lines, structured creditor references and end-to-end ids: where a payout
/// reference or a Kassenzeichen stands.
fn remittance_text(relative: &[&str], text: &str) -> bool {
    match relative {
        [.., "RmtInf", "Ustrd"] | [.., "CdtrRefInf", "Ref"] => !text.is_empty(),
        [.., "Refs", "EndToEndId"] => !text.is_empty() && text != "NOTPROVIDED",
        _ => false,
    }
}

/// The booked entry, or for a batch entry its transactions (see [`split_batch`]); nothing for an entry
/// that is not booked.
fn typed_entry(
    path: &str,
    draft: EntryDraft,
    statement_id: &str,
    iban: &str,
    index: usize,
) -> Result<Vec<BankEntry>, XmlError> {
    let fault = |element: &str, reason: String| XmlError { path: format!("{path}{element}"), reason };
    let status = draft.status.unwrap_or_default();
    if status != "BOOK" {
        // Pending (PDNG) and informational (INFO) entries may still change; only booked money counts.
        return Ok(Vec::new());
    }
    let (amount_text, currency) = draft.amount.ok_or_else(|| fault("", "Amt is missing".into()))?;
    let amount = parse_amount(&amount_text, DecimalSeparator::Point)
        .ok_or_else(|| fault("/Amt", format!("`{amount_text}` is not a decimal amount")))?;
    if currency != "EUR" {
        return Err(fault("/Amt", format!("the currency is `{currency}`; only EUR is supported")));
    }
    let amount = match draft.credit_debit.as_deref() {
        Some("CRDT") => amount,
        Some("DBIT") => -amount,
        Some(other) => return Err(fault("/CdtDbtInd", format!("`{other}` is neither CRDT nor DBIT"))),
        None => return Err(fault("", "CdtDbtInd is missing".into())),
    };
    let booked_text = draft.booked.ok_or_else(|| fault("", "BookgDt is missing".into()))?;
    let booked_on = date(&booked_text).ok_or_else(|| fault("/BookgDt", format!("`{booked_text}` is not a date")))?;
    let value_on = match draft.value {
        Some(text) => Some(date(&text).ok_or_else(|| fault("/ValDt", format!("`{text}` is not a date")))?),
        None => None,
    };
    let reference = draft
        .servicer_reference
        .or(draft.entry_reference)
        .filter(|r| !r.is_empty() && r != "NONREF")
        .unwrap_or_else(|| format!("{statement_id}/{index}"));
    let entry = BankEntry {
        path: path.to_owned(),
        statement_id: statement_id.to_owned(),
        account_iban: iban.to_owned(),
        reference,
        amount,
        currency,
        booked_on,
        value_on,
        remittance: draft.remittance.join(" "),
    };
    Ok(split_batch(entry, draft.transactions))
}

/// `Dt` is a plain date; `DtTm` a date-time, whose date in Germany is what the bank booked.
fn date(text: &str) -> Option<NaiveDate> {
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Some(date);
    }
    if let Ok(moment) = DateTime::parse_from_rfc3339(text) {
        return Some(moment.with_timezone(&chrono_tz::Europe::Berlin).date_naive());
    }
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").ok().map(|t| t.date())
}

#[cfg(test)]
mod bank_files;
mod batch;
#[cfg(test)]
mod tests;

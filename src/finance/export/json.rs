//! The booking list as JSON: `{"tenant", "from", "to", "bookings": [...]}`, written a page at a time.
//! Amounts are JSON numbers with their exact digits (never through `f64`).

use std::str::FromStr;

use serde_json::{json, Map, Number, Value};

use super::booking::{amount_text, Booking};
use crate::finance::period::Period;

pub(super) struct JsonEncoder {
    first: bool,
}

impl JsonEncoder {
    pub(super) fn new() -> Self {
        JsonEncoder { first: true }
    }

    pub(super) fn header(&mut self, tenant_id: &str, period: &Period) -> Vec<u8> {
        let head = json!({ "tenant": tenant_id, "from": period.from.to_string(), "to": period.to.to_string() });
        // The object without its closing brace, so the bookings can follow page by page.
        let mut text = head.to_string();
        text.pop();
        text.push_str(",\"bookings\":[");
        text.into_bytes()
    }

    pub(super) fn rows(&mut self, bookings: &[Booking]) -> Vec<u8> {
        let mut out = Vec::new();
        for booking in bookings {
            if !self.first {
                out.push(b',');
            }
            self.first = false;
            out.extend_from_slice(to_json(booking).to_string().as_bytes());
        }
        out
    }

    pub(super) fn footer(&mut self) -> Vec<u8> {
        b"]}".to_vec()
    }
}

impl Default for JsonEncoder {
    fn default() -> Self {
        JsonEncoder::new()
    }
}

fn to_json(b: &Booking) -> Value {
    let amount = Number::from_str(&amount_text(b.amount)).map(Value::Number).unwrap_or(Value::Null);
    let booking_data: Map<String, Value> =
        b.booking_data.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
    json!({
        "journalId": b.journal_id,
        "bookingType": b.booking_type.as_str(),
        "bookingDate": b.booked_at.date_naive().to_string(),
        "bookedAt": b.booked_at.to_rfc3339(),
        "transactionId": b.transaction_id,
        "requestId": b.request_id,
        "originatorId": b.originator_id,
        "transactionReference": b.transaction_reference,
        "purpose": b.purpose,
        "Haushaltsstelle": b.haushaltsstelle,
        "Objektnummer": b.objektnummer,
        "bookingData": booking_data,
        "amount": amount,
        "currency": "EUR",
        "paymentMethod": b.payment_method,
        "paymentMethodDetail": b.payment_method_detail,
        "provider": b.provider_id,
        "paidAt": b.paid_at.map(|t| t.to_rfc3339()),
        "refundId": b.refund_id,
        "reverses": b.reverses,
        "paidAfterTimeout": b.paid_after_timeout,
    })
}

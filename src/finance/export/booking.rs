//! One line of a booking list, read from a journal and its payment.

use std::collections::BTreeMap;

use chrono::DateTime;
use chrono_tz::Tz;
use rust_decimal::Decimal;
use serde_json::Value;

use crate::finance::ledger::JournalKind;
use crate::finance::period::berlin_time;
use crate::store::ledger::BookingRow;
use crate::store::StorageError;

/// Booking data keys that get columns of their own; the rest go into `bookingData`.
pub(super) const HAUSHALTSSTELLE: &str = "Haushaltsstelle";
pub(super) const OBJEKTNUMMER: &str = "Objektnummer";

/// Values of one booking data key that differ between a payment's items are joined with this.
pub(super) const VALUE_SEPARATOR: &str = " | ";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookingType {
    Payment,
    Refund,
    /// A correction of an earlier payment or refund line, with the opposite sign.
    Reversal,
}

impl BookingType {
    pub fn as_str(self) -> &'static str {
        match self {
            BookingType::Payment => "payment",
            BookingType::Refund => "refund",
            BookingType::Reversal => "reversal",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Booking {
    pub journal_id: i64,
    pub booking_type: BookingType,
    pub booked_at: DateTime<Tz>,
    /// Signed from the authority's view: a payment is positive, a refund negative, a reversal
    /// the opposite of what it reverses.
    pub amount: Decimal,
    pub transaction_id: String,
    pub request_id: String,
    pub originator_id: String,
    /// The Kassenzeichen.
    pub transaction_reference: Option<String>,
    pub purpose: Option<String>,
    pub haushaltsstelle: Option<String>,
    pub objektnummer: Option<String>,
    /// Every other booking data key of the payment's items.
    pub booking_data: BTreeMap<String, String>,
    pub payment_method: Option<String>,
    pub payment_method_detail: Option<String>,
    pub provider_id: String,
    pub paid_at: Option<DateTime<Tz>>,
    pub refund_id: Option<String>,
    pub reverses: Option<i64>,
    pub paid_after_timeout: bool,
}

impl Booking {
    pub fn from_row(row: BookingRow) -> Result<Booking, StorageError> {
        let corrupt = |what: &str| StorageError::Corrupt(format!("journal {}: {what}", row.journal_id));
        let amount = row.amount;
        let sign_of = |kind: Option<JournalKind>| match kind {
            Some(JournalKind::Paid) => Ok(Decimal::ONE),
            Some(JournalKind::Refund) => Ok(Decimal::NEGATIVE_ONE),
            _ => Err(corrupt("not a payment or refund")),
        };
        let (booking_type, sign) = match row.kind {
            JournalKind::Paid => (BookingType::Payment, Decimal::ONE),
            JournalKind::Refund => (BookingType::Refund, Decimal::NEGATIVE_ONE),
            JournalKind::Reversal => (BookingType::Reversal, -sign_of(row.reversed_kind)?),
            _ => return Err(corrupt("not a payment or refund")),
        };
        // The request as the tenant's booking defaults completed it.
        let request_text = row.effective_request.as_deref().unwrap_or(&row.request);
        let request: Value = serde_json::from_str(request_text).map_err(|_| corrupt("unreadable payment request"))?;
        let mut booking_data = merged_booking_data(&request);
        Ok(Booking {
            journal_id: row.journal_id,
            booking_type,
            booked_at: berlin_time(row.posted_at),
            amount: sign * amount,
            transaction_id: row.transaction_id,
            request_id: row.request_id,
            originator_id: row.originator_id,
            transaction_reference: row.transaction_reference,
            purpose: request["purpose"].as_str().map(str::to_owned),
            haushaltsstelle: booking_data.remove(HAUSHALTSSTELLE),
            objektnummer: booking_data.remove(OBJEKTNUMMER),
            booking_data,
            payment_method: row.payment_method,
            payment_method_detail: row.payment_method_detail,
            provider_id: row.provider_id,
            paid_at: row.paid_at.or(row.paid_posted_at).map(berlin_time),
            refund_id: row.refund_id,
            reverses: row.reverses,
            paid_after_timeout: row.paid_after_timeout_at.is_some(),
        })
    }
}

/// The booking data of all items, key by key; values that differ between items are joined in item
/// order, each value once.
fn merged_booking_data(request: &Value) -> BTreeMap<String, String> {
    let mut values: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for item in request["items"].as_array().into_iter().flatten() {
        for (key, value) in item["bookingData"].as_object().into_iter().flatten() {
            let Some(value) = value.as_str() else { continue };
            let seen = values.entry(key.clone()).or_default();
            if !seen.iter().any(|v| v == value) {
                seen.push(value.to_owned());
            }
        }
    }
    values.into_iter().map(|(key, values)| (key, values.join(VALUE_SEPARATOR))).collect()
}

/// An amount with at least two decimal places, exactly as stored otherwise.
pub fn amount_text(amount: Decimal) -> String {
    let mut cents = amount;
    if cents.scale() < 2 {
        cents.rescale(2);
    }
    cents.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booking_data_of_several_items_is_merged_key_by_key() {
        let request = serde_json::json!({ "items": [
            { "bookingData": { "Haushaltsstelle": "1.1", "Kostenstelle": "K1" } },
            { "bookingData": { "Haushaltsstelle": "1.2", "Kostenstelle": "K1" } },
            { "totalNetAmount": 1 },
        ]});
        let merged = merged_booking_data(&request);
        assert_eq!(merged["Haushaltsstelle"], "1.1 | 1.2");
        assert_eq!(merged["Kostenstelle"], "K1");
    }

    #[test]
    fn amounts_show_cents_and_keep_exact_digits() {
        assert_eq!(amount_text(Decimal::new(12, 0)), "12.00");
        assert_eq!(amount_text(Decimal::new(-1230, 2)), "-12.30");
        assert_eq!(amount_text(Decimal::new(1, 3)), "0.001");
    }
}

//! Parsing and checking a payment request, once, at the edge: bytes in, a checked `PaymentRequest`
//! or one `ValidationFailure` out. Field problems are all collected into one `detail`
//! (`VALIDATION_ERROR`); only a request whose fields are all well-formed is checked for arithmetic
//! (`CALCULATION_ERROR`), as sums over malformed amounts would only add noise.

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset};
use rust_decimal::Decimal;
use url::Url;

use super::code::{FunctionalCode, ValidationFailure};
use super::money::{decimal_places, Amount, ItemAmount};
use super::request::{Currency, Identifier, NotifyUrl, PaymentItem, PaymentRequest, Purpose};
use super::wire::{PaymentItemInput, PaymentRequestInput, Requestor};

pub(crate) const MAX_ITEMS: usize = 99;
pub(crate) const MAX_DESCRIPTION_LENGTH: usize = 250;
pub(crate) const MAX_REDIRECT_URL_LENGTH: usize = 2082;
/// Item `id` and `reference`: the reference does not limit them; public clients cut them at 36.
pub(crate) const MAX_ITEM_ID_LENGTH: usize = 36;
pub(crate) const MAX_QUANTITY: u32 = 999_999;
/// Limits on `bookingData`, which the standard leaves open: generous for Haushaltsstelle,
/// Objektnummer or a Buchungstext, small enough that nobody stores a document in it.
pub(crate) const MAX_BOOKING_ENTRIES: usize = 50;
pub(crate) const MAX_BOOKING_KEY_LENGTH: usize = 64;
pub(crate) const MAX_BOOKING_VALUE_LENGTH: usize = 250;
/// Requestor text fields; the reference gives no limit.
pub(crate) const MAX_REQUESTOR_FIELD_LENGTH: usize = 250;
/// More problems than this are summarised, so the detail stays readable.
const MAX_LISTED_PROBLEMS: usize = 20;

/// Parses a POST body. Not JSON, a wrong type, a missing field or a broken rule is a
/// `VALIDATION_ERROR` naming the field; amounts that do not add up are a `CALCULATION_ERROR`.
pub fn parse_request_body(bytes: &[u8]) -> Result<PaymentRequest, ValidationFailure> {
    validate(decode(bytes)?)
}

/// Reads the JSON; a type error names the field by its path (serde_path_to_error), without quoting
/// the value sent.
pub(crate) fn decode(bytes: &[u8]) -> Result<PaymentRequestInput, ValidationFailure> {
    // serde reads a struct from an array too (positionally); the standard's body is an object.
    if bytes.trim_ascii_start().first() != Some(&b'{') {
        return Err(match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
            Ok(_) => not_an_object(),
            Err(error) => decode_failure(&error, "."),
        });
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let input: PaymentRequestInput = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        decode_failure(error.inner(), &path)
    })?;
    deserializer.end().map_err(|error| decode_failure(&error, "."))?;
    Ok(input)
}

pub(super) fn decode_failure(error: &serde_json::Error, path: &str) -> ValidationFailure {
    let invalid =
        |detail: String, field: Option<String>| ValidationFailure::new(FunctionalCode::ValidationError, detail, field);
    if !error.is_data() {
        return invalid(
            format!("The body is not valid JSON (line {}, column {}).", error.line(), error.column()),
            None,
        );
    }
    if path == "." {
        return not_an_object();
    }
    // serde's messages quote the value ("invalid type: string \"…\", expected …"); keep only what was expected.
    let message = error.to_string();
    let message = message.rsplit_once(" at line ").map_or(message.as_str(), |(message, _)| message);
    let detail = match message.split_once(", expected ") {
        Some((_, expected)) => format!("{path}: wrong type, expected {expected}."),
        None => format!("{path}: {message}."),
    };
    invalid(detail, Some(path.to_owned()))
}

fn not_an_object() -> ValidationFailure {
    ValidationFailure::new(
        FunctionalCode::ValidationError,
        "The body must be a JSON object with the fields of a PaymentRequest.",
        None,
    )
}

/// Checks every rule of the standard on a parsed body.
pub(crate) fn validate(input: PaymentRequestInput) -> Result<PaymentRequest, ValidationFailure> {
    let mut problems = Problems::default();
    let request_id = problems.required("requestId", input.request_id, Identifier::parse);
    let request_timestamp = problems.required("requestTimestamp", input.request_timestamp, parse_timestamp);
    let currency = problems.required("currency", input.currency, parse_currency);
    let gros_amount = problems.required("grosAmount", input.gros_amount, Amount::parse);
    let purpose = problems.required("purpose", input.purpose, Purpose::parse);
    let description = problems.optional("description", input.description, |d| max_chars(d, MAX_DESCRIPTION_LENGTH));
    let redirect_url = problems.required("redirectUrl", input.redirect_url, parse_redirect_url);
    let items = problems.required("items", input.items, |items| match items.len() {
        0 => Err("must contain at least one item".to_owned()),
        n if n > MAX_ITEMS => Err(format!("must contain at most {MAX_ITEMS} items")),
        _ => Ok(items),
    });
    let items: Option<Vec<PaymentItem>> = items.map(|items| {
        items.into_iter().enumerate().filter_map(|(i, item)| check_item(&mut problems, i, item)).collect()
    });
    let requestor = problems.optional("requestor", input.requestor, check_requestor);
    let notify_url = problems.optional("notifyUrl", input.notify_url, NotifyUrl::parse);

    let (
        Some(request_id),
        Some(request_timestamp),
        Some(currency),
        Some(gros_amount),
        Some(purpose),
        Some(redirect_url),
        Some(items),
    ) = (request_id, request_timestamp, currency, gros_amount, purpose, redirect_url, items)
    else {
        return Err(problems.into_failure(FunctionalCode::ValidationError));
    };
    if !problems.is_empty() {
        return Err(problems.into_failure(FunctionalCode::ValidationError));
    }
    let request = PaymentRequest {
        request_id,
        request_timestamp,
        currency,
        gros_amount,
        purpose,
        description,
        redirect_url,
        items,
        requestor,
        notify_url,
    };
    check_calculation(&request)?;
    Ok(request)
}

/// `quantity × singleAmount = totalAmount` per item (where a single amount is sent), and the items'
/// gross amounts add up to `grosAmount` exactly.
pub(crate) fn check_calculation(request: &PaymentRequest) -> Result<(), ValidationFailure> {
    let mut problems = Problems::default();
    let mut sum = Decimal::ZERO;
    for (i, item) in request.items.iter().enumerate() {
        let quantity = Decimal::from(item.quantity.unwrap_or(1));
        let pairs = [
            ("singleNetAmount", item.single_net_amount, "totalNetAmount", Some(item.total_net_amount)),
            ("singleTaxAmount", item.single_tax_amount, "totalTaxAmount", item.total_tax_amount),
        ];
        for (single_name, single, total_name, total) in pairs {
            let Some(single) = single else { continue };
            let expected = single.value() * quantity;
            let total = total.unwrap_or(ItemAmount::ZERO).value();
            if expected != total {
                problems.add(
                    format!("items[{i}].{total_name}"),
                    format!("is {total} but quantity × {single_name} is {expected}"),
                );
            }
        }
        sum += item.gross();
    }
    if sum != request.gros_amount.value() {
        problems.add("grosAmount", format!("is {} but the items add up to {sum}", request.gros_amount));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.into_failure(FunctionalCode::CalculationError))
    }
}

/// An `originatorId` or `endPointId` from the path: the same rule as `requestId`. A malformed one is
/// a `VALIDATION_ERROR`; whether a well-formed one is configured is the registry's question
/// (`NO_VALID_ORIGINATOR_OR_ENDPOINT`).
pub fn parse_path_id(name: &str, value: &str) -> Result<Identifier, ValidationFailure> {
    Identifier::parse(value.to_owned()).map_err(|message| {
        ValidationFailure::new(FunctionalCode::ValidationError, format!("{name} {message}."), Some(name.to_owned()))
    })
}

/// Adds the tenant's `booking_defaults` to every item, without overriding what the service sent.
pub fn merge_booking_defaults(request: &mut PaymentRequest, defaults: &BTreeMap<String, String>) {
    for item in &mut request.items {
        for (key, value) in defaults {
            item.booking_data.entry(key.clone()).or_insert_with(|| value.clone());
        }
    }
}

/// `BOOKING_DATA_MISSING` when an item lacks a key the authority requires (after merging defaults).
pub fn check_required_booking_keys(request: &PaymentRequest, required: &[String]) -> Result<(), ValidationFailure> {
    let mut problems = Problems::default();
    for (i, item) in request.items.iter().enumerate() {
        for key in required.iter().filter(|key| !item.booking_data.contains_key(key.as_str())) {
            problems.add(format!("items[{i}].bookingData"), format!("lacks the required key {key}"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.into_failure(FunctionalCode::BookingDataMissing))
    }
}

/// RFC 3339, the ISO 8601 profile with a UTC offset. A value without offset is refused: it would
/// be a guess whether it is UTC or German time.
fn parse_timestamp(value: String) -> Result<DateTime<FixedOffset>, String> {
    DateTime::parse_from_rfc3339(&value)
        .map_err(|_| "must be an ISO 8601 date-time with a UTC offset, e.g. 2024-05-02T10:15:00+02:00".to_owned())
}

fn parse_currency(value: String) -> Result<Currency, String> {
    match value.as_str() {
        "EUR" => Ok(Currency::Eur),
        _ => Err("must be EUR".to_owned()),
    }
}

fn parse_redirect_url(value: String) -> Result<String, String> {
    if value.chars().count() > MAX_REDIRECT_URL_LENGTH {
        return Err(format!("must be at most {MAX_REDIRECT_URL_LENGTH} characters"));
    }
    // http only where development runs; whether the running configuration allows even that, and
    // whether the origin is the service's, is `request::check_redirect_url`'s question.
    match Url::parse(&value) {
        Ok(url) if url.scheme() == "https" && url.host().is_some() => Ok(value),
        Ok(url) if url.scheme() == "http" && crate::config::is_loopback_url(&url) => Ok(value),
        _ => Err("must be an absolute https URL (http only to a loopback host)".to_owned()),
    }
}

fn max_chars(value: String, max: usize) -> Result<String, String> {
    if value.chars().count() > max {
        return Err(format!("must be at most {max} characters"));
    }
    Ok(value)
}

fn item_amount(value: Decimal) -> Result<ItemAmount, String> {
    ItemAmount::parse(value)
}

fn check_item(problems: &mut Problems, i: usize, item: PaymentItemInput) -> Option<PaymentItem> {
    let field = |name: &str| format!("items[{i}].{name}");
    let before = problems.len();
    let id = problems.optional(&field("id"), item.id, |v| non_empty_max(v, MAX_ITEM_ID_LENGTH));
    let reference = problems.optional(&field("reference"), item.reference, |v| non_empty_max(v, MAX_ITEM_ID_LENGTH));
    let description =
        problems.optional(&field("description"), item.description, |v| max_chars(v, MAX_DESCRIPTION_LENGTH));
    let tax_rate = problems.optional(&field("taxRate"), item.tax_rate, parse_tax_rate);
    let quantity = problems.optional(&field("quantity"), item.quantity, parse_quantity);
    let single_net_amount = problems.optional(&field("singleNetAmount"), item.single_net_amount, item_amount);
    let single_tax_amount = problems.optional(&field("singleTaxAmount"), item.single_tax_amount, item_amount);
    let total_net_amount = problems.required(&field("totalNetAmount"), item.total_net_amount, item_amount);
    let total_tax_amount = problems.optional(&field("totalTaxAmount"), item.total_tax_amount, item_amount);
    let booking_data = problems.optional(&field("bookingData"), item.booking_data, check_booking_data);
    if problems.len() > before {
        return None;
    }
    Some(PaymentItem {
        id,
        reference,
        description,
        tax_rate,
        quantity,
        single_net_amount,
        single_tax_amount,
        total_net_amount: total_net_amount?,
        total_tax_amount,
        booking_data: booking_data.unwrap_or_default(),
    })
}

fn non_empty_max(value: String, max: usize) -> Result<String, String> {
    if value.is_empty() {
        return Err("must not be empty".to_owned());
    }
    max_chars(value, max)
}

fn parse_tax_rate(value: Decimal) -> Result<Decimal, String> {
    if value.is_sign_negative() && !value.is_zero() || value > Decimal::ONE_HUNDRED {
        return Err("must be a percentage from 0 to 100".to_owned());
    }
    if decimal_places(value) > 2 {
        return Err("must have at most 2 decimal places".to_owned());
    }
    Ok(value)
}

/// A whole number from 1 to 999999. `2.0` counts as 2 (it is the same JSON value); `2.5` is refused.
fn parse_quantity(value: Decimal) -> Result<u32, String> {
    let whole = u32::try_from(value.normalize()).ok().filter(|_| value.fract().is_zero());
    match whole {
        Some(q) if (1..=MAX_QUANTITY).contains(&q) => Ok(q),
        _ => Err(format!("must be a whole number from 1 to {MAX_QUANTITY}")),
    }
}

fn check_booking_data(data: BTreeMap<String, String>) -> Result<BTreeMap<String, String>, String> {
    if data.len() > MAX_BOOKING_ENTRIES {
        return Err(format!("must have at most {MAX_BOOKING_ENTRIES} entries"));
    }
    for (key, value) in &data {
        if key.trim().is_empty() || key.chars().count() > MAX_BOOKING_KEY_LENGTH {
            return Err(format!("keys must be 1 to {MAX_BOOKING_KEY_LENGTH} characters and not blank"));
        }
        if value.trim().is_empty() || value.chars().count() > MAX_BOOKING_VALUE_LENGTH {
            return Err(format!("values must be 1 to {MAX_BOOKING_VALUE_LENGTH} characters and not blank"));
        }
    }
    Ok(data)
}

fn check_requestor(requestor: Requestor) -> Result<Requestor, String> {
    let texts = [&requestor.name, &requestor.first_name, &requestor.gender, &requestor.organization_name];
    if texts.into_iter().flatten().any(|text| text.chars().count() > MAX_REQUESTOR_FIELD_LENGTH) {
        return Err(format!("text fields must be at most {MAX_REQUESTOR_FIELD_LENGTH} characters"));
    }
    Ok(requestor)
}

/// Problems found so far, as (field path, message).
#[derive(Default)]
struct Problems(Vec<(String, String)>);

impl Problems {
    fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push((field.into(), message.into()));
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn required<T, U>(
        &mut self,
        field: &str,
        value: Option<T>,
        check: impl FnOnce(T) -> Result<U, String>,
    ) -> Option<U> {
        match value {
            None => {
                self.add(field, "is missing");
                None
            }
            Some(value) => self.optional(field, Some(value), check),
        }
    }

    /// `None` both when absent and when refused; a refusal is recorded, so it never goes unnoticed.
    fn optional<T, U>(
        &mut self,
        field: &str,
        value: Option<T>,
        check: impl FnOnce(T) -> Result<U, String>,
    ) -> Option<U> {
        match check(value?) {
            Ok(checked) => Some(checked),
            Err(message) => {
                self.add(field, message);
                None
            }
        }
    }

    fn into_failure(self, code: FunctionalCode) -> ValidationFailure {
        let field = self.0.first().map(|(field, _)| field.clone());
        let mut listed: Vec<String> =
            self.0.iter().take(MAX_LISTED_PROBLEMS).map(|(field, message)| format!("{field} {message}")).collect();
        if self.0.len() > MAX_LISTED_PROBLEMS {
            listed.push(format!("and {} more", self.0.len() - MAX_LISTED_PROBLEMS));
        }
        if listed.is_empty() {
            listed.push("the request is incomplete".to_owned());
        }
        ValidationFailure::new(code, format!("{}.", listed.join("; ")), field)
    }
}

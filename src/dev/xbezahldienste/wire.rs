//! The XBezahldienste v1.0.0 wire format as the simulated provider reads and writes it, written from
//! the standard (shared reference `xbezahldienste.md`), not from pforte's payment module: the rules of
//! a `PaymentRequest`, the status and payment method vocabularies, and the functional codes of its
//! `application/problem+json` refusals. Amounts are JSON numbers read from their literal text (the
//! crate's `serde_json` keeps it), never through `f64`.

use std::str::FromStr;

use chrono::DateTime;
use rust_decimal::Decimal;
use serde_json::{Map, Value};

/// The standard's limits.
const MAX_ID: usize = 36;
const MAX_PURPOSE: usize = 27;
const MAX_DESCRIPTION: usize = 250;
const MAX_REDIRECT_URL: usize = 2082;
const MAX_ITEMS: usize = 99;
const MAX_QUANTITY: u32 = 999_999;
const MAX_AMOUNT: Decimal = Decimal::from_parts(999_999, 0, 0, false, 0);

/// A transaction's status, spelled as the standard spells it (`PAYED` sic).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Initial,
    Payed,
    Canceled,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Initial => "INITIAL",
            Status::Payed => "PAYED",
            Status::Canceled => "CANCELED",
            Status::Failed => "FAILED",
        }
    }

    /// Every status but INITIAL is final.
    pub fn is_terminal(self) -> bool {
        self != Status::Initial
    }
}

/// The payment methods the pay pages offer, with the standard's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentMethod {
    CreditCard,
    PayPal,
    Giropay,
    Paydirect,
}

impl PaymentMethod {
    pub const ALL: [PaymentMethod; 4] =
        [PaymentMethod::CreditCard, PaymentMethod::PayPal, PaymentMethod::Giropay, PaymentMethod::Paydirect];

    pub fn as_str(self) -> &'static str {
        match self {
            PaymentMethod::CreditCard => "CREDITCARD",
            PaymentMethod::PayPal => "PAYPAL",
            PaymentMethod::Giropay => "GIROPAY",
            PaymentMethod::Paydirect => "PAYDIRECT",
        }
    }

    pub fn parse(name: &str) -> Option<PaymentMethod> {
        PaymentMethod::ALL.into_iter().find(|method| method.as_str() == name)
    }
}

/// The functional codes this provider answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FunctionalCode {
    ValidationError,
    CalculationError,
    PaymentExists,
    Unspecified,
}

impl FunctionalCode {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            FunctionalCode::ValidationError => "VALIDATION_ERROR",
            FunctionalCode::CalculationError => "CALCULATION_ERROR",
            FunctionalCode::PaymentExists => "PAYMENT_EXISTS",
            FunctionalCode::Unspecified => "UNSPECIFIED",
        }
    }
}

/// Why a request was refused; `detail` names fields, never the values sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub code: FunctionalCode,
    pub detail: String,
}

impl Refusal {
    pub(crate) fn new(code: FunctionalCode, detail: impl Into<String>) -> Refusal {
        Refusal { code, detail: detail.into() }
    }

    /// The HTTP status the standard pairs with the code.
    pub(crate) fn http_status(&self) -> u16 {
        match self.code {
            FunctionalCode::ValidationError | FunctionalCode::CalculationError => 400,
            FunctionalCode::PaymentExists => 409,
            FunctionalCode::Unspecified => 500,
        }
    }
}

/// What the provider keeps of a checked request: what its pay page shows and where it sends the
/// browser. The body itself is echoed as received.
#[derive(Debug, Clone)]
pub struct PaymentRequest {
    pub request_id: String,
    pub gros_amount: Decimal,
    pub purpose: String,
    pub description: Option<String>,
    pub redirect_url: String,
    pub items: Vec<Item>,
}

#[derive(Debug, Clone)]
pub struct Item {
    pub id: Option<String>,
    pub reference: Option<String>,
    pub description: Option<String>,
    pub quantity: Option<u32>,
    /// `totalNetAmount + totalTaxAmount`.
    pub gross: Decimal,
}

/// `originatorId`, `endPointId` and `requestId`: at most 36 characters of `[\w\d-]`.
pub(crate) fn check_id(name: &str, value: &str) -> Result<(), Refusal> {
    identifier(value).map_err(|message| Refusal::new(FunctionalCode::ValidationError, format!("{name} {message}.")))
}

fn identifier(value: &str) -> Result<(), String> {
    if value.is_empty() || value.chars().count() > MAX_ID {
        return Err(format!("must be 1 to {MAX_ID} characters"));
    }
    if !value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        return Err("may contain only letters, digits, '_' and '-'".to_owned());
    }
    Ok(())
}

/// Reads a POST body: the checked request and the body as sent (to echo it), or the refusal.
/// Field problems are all listed (`VALIDATION_ERROR`); sums are checked only on well-formed fields
/// (`CALCULATION_ERROR`).
pub(crate) fn parse_request(body: &[u8]) -> Result<(PaymentRequest, Value), Refusal> {
    let received: Value = serde_json::from_slice(body)
        .map_err(|_| Refusal::new(FunctionalCode::ValidationError, "The body is not valid JSON."))?;
    let Some(fields) = received.as_object() else {
        return Err(Refusal::new(
            FunctionalCode::ValidationError,
            "The body must be a JSON object (a PaymentRequest).",
        ));
    };
    let mut problems = Problems::default();
    let request_id = problems.required(fields, "requestId", |v| text(v).and_then(|t| identifier(t).map(|()| t)));
    problems.required(fields, "requestTimestamp", |v| {
        text(v).and_then(|t| {
            DateTime::parse_from_rfc3339(t).map(|_| ()).map_err(|_| "must be an ISO 8601 date-time".to_owned())
        })
    });
    problems.required(fields, "currency", |v| match text(v)? {
        "EUR" => Ok(()),
        _ => Err("must be EUR".to_owned()),
    });
    let gros_amount = problems.required(fields, "grosAmount", |v| {
        amount(v).and_then(|a| if a.is_zero() { Err("must be more than 0".to_owned()) } else { Ok(a) })
    });
    let purpose = problems.required(fields, "purpose", |v| {
        let t = text(v)?;
        let allowed = t.bytes().all(|b| b.is_ascii_alphanumeric() || b"_- ".contains(&b));
        match (t.is_empty() || t.chars().count() > MAX_PURPOSE, allowed) {
            (true, _) => Err(format!("must be 1 to {MAX_PURPOSE} characters")),
            (_, false) => Err("may contain only letters, digits, spaces, '_' and '-'".to_owned()),
            _ => Ok(t),
        }
    });
    let description = problems.optional(fields, "description", |v| bounded(v, MAX_DESCRIPTION));
    let redirect_url = problems.required(fields, "redirectUrl", |v| {
        let t = bounded(v, MAX_REDIRECT_URL)?;
        match url::Url::parse(t) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Ok(t),
            _ => Err("must be an absolute http or https URL".to_owned()),
        }
    });
    let items = problems.required(fields, "items", |v| match v.as_array() {
        None => Err("must be an array".to_owned()),
        Some(items) if items.is_empty() || items.len() > MAX_ITEMS => Err(format!("must hold 1 to {MAX_ITEMS} items")),
        Some(items) => Ok(items),
    });
    let mut calculation = Problems::default();
    let items: Vec<Item> = items
        .map(|items| {
            items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| check_item(&mut problems, &mut calculation, i, item))
                .collect()
        })
        .unwrap_or_default();
    problems.optional(fields, "requestor", |v| v.as_object().map(|_| ()).ok_or_else(|| "must be an object".to_owned()));

    let (Some(request_id), Some(gros_amount), Some(purpose), Some(redirect_url)) =
        (request_id, gros_amount, purpose, redirect_url)
    else {
        return Err(problems.refusal(FunctionalCode::ValidationError));
    };
    if !problems.is_empty() {
        return Err(problems.refusal(FunctionalCode::ValidationError));
    }
    let sum: Decimal = items.iter().map(|item| item.gross).sum();
    if sum != gros_amount {
        calculation.add("grosAmount", "differs from the sum of the items' totalNetAmount and totalTaxAmount");
    }
    if !calculation.is_empty() {
        return Err(calculation.refusal(FunctionalCode::CalculationError));
    }
    let request = PaymentRequest {
        request_id: request_id.to_owned(),
        gros_amount,
        purpose: purpose.to_owned(),
        description: description.map(str::to_owned),
        redirect_url: redirect_url.to_owned(),
        items,
    };
    Ok((request, received.clone()))
}

fn check_item(problems: &mut Problems, calculation: &mut Problems, i: usize, item: &Value) -> Option<Item> {
    let Some(fields) = item.as_object() else {
        problems.add(format!("items[{i}]"), "must be an object");
        return None;
    };
    let mut found = Problems::within(format!("items[{i}]."));
    let id = found.optional(fields, "id", short);
    let reference = found.optional(fields, "reference", short);
    let description = found.optional(fields, "description", |v| bounded(v, MAX_DESCRIPTION));
    found.optional(fields, "taxRate", |v| {
        let rate = number(v)?;
        let fine = rate >= Decimal::ZERO && rate <= Decimal::ONE_HUNDRED && rate.normalize().scale() <= 2;
        fine.then_some(()).ok_or_else(|| "must be a percentage from 0 to 100".to_owned())
    });
    let quantity = found.optional(fields, "quantity", |v| {
        let whole = number(v).ok().filter(|q| q.fract().is_zero()).and_then(|q| u32::try_from(q).ok());
        whole
            .filter(|q| (1..=MAX_QUANTITY).contains(q))
            .ok_or(format!("must be a whole number from 1 to {MAX_QUANTITY}"))
    });
    let single_net = found.optional(fields, "singleNetAmount", amount);
    let single_tax = found.optional(fields, "singleTaxAmount", amount);
    let total_net = found.required(fields, "totalNetAmount", amount);
    let total_tax = found.optional(fields, "totalTaxAmount", amount);
    found.optional(fields, "bookingData", |v| match v.as_object() {
        Some(map) if map.values().all(Value::is_string) => Ok(()),
        _ => Err("must map names to strings".to_owned()),
    });
    if !found.is_empty() {
        problems.list.append(&mut found.list);
        return None;
    }
    // quantity × single amount = total amount, where a single amount is given.
    let times = Decimal::from(quantity.unwrap_or(1));
    for (single, total, field) in [(single_net, total_net, "totalNetAmount"), (single_tax, total_tax, "totalTaxAmount")]
    {
        if single.is_some_and(|single| single * times != total.unwrap_or_default()) {
            calculation.add(format!("items[{i}].{field}"), "differs from quantity × the single amount");
        }
    }
    Some(Item {
        id: id.map(str::to_owned),
        reference: reference.map(str::to_owned),
        description: description.map(str::to_owned),
        quantity,
        gross: total_net? + total_tax.unwrap_or_default(),
    })
}

/// An item's `id` or `reference`: 1 to 36 characters.
fn short(value: &Value) -> Result<&str, String> {
    let t = bounded(value, MAX_ID)?;
    if t.is_empty() {
        return Err("must not be empty".to_owned());
    }
    Ok(t)
}

fn text(value: &Value) -> Result<&str, String> {
    value.as_str().ok_or_else(|| "must be a string".to_owned())
}

fn bounded(value: &Value, max: usize) -> Result<&str, String> {
    let t = text(value)?;
    if t.chars().count() > max {
        return Err(format!("must be at most {max} characters"));
    }
    Ok(t)
}

/// A JSON number, exactly: its literal text as a decimal (`1e2` is 100).
fn number(value: &Value) -> Result<Decimal, String> {
    let Value::Number(n) = value else { return Err("must be a number".to_owned()) };
    let literal = n.to_string();
    Decimal::from_str(&literal)
        .or_else(|_| Decimal::from_scientific(&literal))
        .map_err(|_| "must be a number in range".to_owned())
}

/// Euros: 0 to 999999 with at most two decimal places.
fn amount(value: &Value) -> Result<Decimal, String> {
    let a = number(value)?;
    if a.is_sign_negative() && !a.is_zero() || a > MAX_AMOUNT {
        return Err("must be from 0 to 999999".to_owned());
    }
    if a.normalize().scale() > 2 {
        return Err("must have at most two decimal places".to_owned());
    }
    Ok(a)
}

/// Problems found so far, as (field path, message); `prefix` names the object being checked.
#[derive(Default)]
struct Problems {
    list: Vec<(String, String)>,
    prefix: String,
}

impl Problems {
    fn within(prefix: String) -> Problems {
        Problems { list: Vec::new(), prefix }
    }

    fn add(&mut self, field: impl AsRef<str>, message: impl Into<String>) {
        self.list.push((format!("{}{}", self.prefix, field.as_ref()), message.into()));
    }

    fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    fn required<'v, T>(
        &mut self,
        fields: &'v Map<String, Value>,
        field: &str,
        check: impl FnOnce(&'v Value) -> Result<T, String>,
    ) -> Option<T> {
        if fields.get(field).is_none_or(Value::is_null) {
            self.add(field, "is missing");
            return None;
        }
        self.optional(fields, field, check)
    }

    /// `None` when absent (or null) and when refused; a refusal is recorded.
    fn optional<'v, T>(
        &mut self,
        fields: &'v Map<String, Value>,
        field: &str,
        check: impl FnOnce(&'v Value) -> Result<T, String>,
    ) -> Option<T> {
        let value = fields.get(field).filter(|v| !v.is_null())?;
        check(value).map_err(|message| self.add(field, message)).ok()
    }

    fn refusal(self, code: FunctionalCode) -> Refusal {
        let listed: Vec<String> = self.list.iter().map(|(field, message)| format!("{field} {message}")).collect();
        let detail =
            if listed.is_empty() { "The request is incomplete.".to_owned() } else { format!("{}.", listed.join("; ")) };
        Refusal::new(code, detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(gros: &str, total: &str) -> String {
        format!(
            r#"{{"requestId":"r1","requestTimestamp":"2026-01-01T10:00:00Z","currency":"EUR","grosAmount":{gros},
            "purpose":"Gebuehr","redirectUrl":"https://dienst.example/zurueck","items":[{{"totalNetAmount":{total}}}]}}"#
        )
    }

    #[test]
    fn a_request_of_the_standard_is_read_exactly() {
        let (request, received) = parse_request(body("12.30", "12.3").as_bytes()).unwrap();
        assert_eq!(request.gros_amount, Decimal::new(1230, 2));
        assert_eq!(received["grosAmount"].to_string(), "12.30", "echoed with its digits");
    }

    #[test]
    fn broken_rules_are_validation_errors_and_wrong_sums_calculation_errors() {
        let refused = parse_request(body("12.005", "12.005").as_bytes()).unwrap_err();
        assert_eq!(refused.code, FunctionalCode::ValidationError);
        assert!(!refused.detail.contains("12.005"), "{}", refused.detail);
        let refused = parse_request(body("12.00", "11.00").as_bytes()).unwrap_err();
        assert_eq!(refused.code, FunctionalCode::CalculationError);
        assert_eq!(parse_request(b"[]").unwrap_err().code, FunctionalCode::ValidationError);
        assert_eq!(parse_request(b"nope").unwrap_err().code, FunctionalCode::ValidationError);
    }

    #[test]
    fn identifiers_follow_the_pattern() {
        assert!(check_id("endPointId", "09162000").is_ok());
        assert!(check_id("endPointId", "bad.id").is_err());
        assert!(check_id("endPointId", &"x".repeat(37)).is_err());
    }
}

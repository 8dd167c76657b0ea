//! The body of a refund request (`POST …/{transactionId}/refunds`), read once into a
//! [`RefundRequest`] whose amount and reason follow their rules.

use rust_decimal::Decimal;
use serde::Deserialize;

use super::code::{FunctionalCode, ValidationFailure};
use super::money::{optional_number, Amount};
use super::validate::decode_failure;

/// The longest `reason`: what fits a bank statement line with room to spare.
pub(crate) const MAX_REASON_LENGTH: usize = 140;

/// A refund request that passed its checks. No amount means the whole remaining amount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RefundRequest {
    pub amount: Option<Amount>,
    pub reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct RefundInput {
    #[serde(default, deserialize_with = "optional_number")]
    amount: Option<Decimal>,
    reason: Option<String>,
}

/// Parses a refund body: empty, `{}`, or `{"amount": 12.5, "reason": "…"}`. The amount follows the
/// `grosAmount` rules (a JSON number read exactly, more than 0, at most two decimal places).
pub(crate) fn parse_refund_body(bytes: &[u8]) -> Result<RefundRequest, ValidationFailure> {
    let invalid = |detail: String, field: &str| {
        ValidationFailure::new(FunctionalCode::ValidationError, detail, Some(field.to_owned()))
    };
    let input = if bytes.trim_ascii().is_empty() {
        RefundInput::default()
    } else if bytes.trim_ascii_start().first() != Some(&b'{') {
        return Err(ValidationFailure::new(
            FunctionalCode::ValidationError,
            "The body must be empty or a JSON object with amount and reason.",
            None,
        ));
    } else {
        let mut deserializer = serde_json::Deserializer::from_slice(bytes);
        let input: RefundInput = serde_path_to_error::deserialize(&mut deserializer)
            .map_err(|error| decode_failure(error.inner(), &error.path().to_string()))?;
        deserializer.end().map_err(|error| decode_failure(&error, "."))?;
        input
    };
    let amount = match input.amount {
        Some(value) => Some(Amount::parse(value).map_err(|message| invalid(format!("amount {message}."), "amount"))?),
        None => None,
    };
    let reason = match input.reason {
        Some(reason) if reason.trim().is_empty() => return Err(invalid("reason must not be empty.".into(), "reason")),
        Some(reason) if reason.chars().count() > MAX_REASON_LENGTH => {
            return Err(invalid(format!("reason must be at most {MAX_REASON_LENGTH} characters."), "reason"))
        }
        Some(reason) if reason.chars().any(char::is_control) => {
            return Err(invalid("reason must be printable text without line breaks or tabs.".into(), "reason"))
        }
        reason => reason,
    };
    Ok(RefundRequest { amount, reason })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_body_or_object_refunds_the_rest_without_a_reason() {
        for body in [&b""[..], b"  ", b"{}"] {
            assert_eq!(parse_refund_body(body), Ok(RefundRequest { amount: None, reason: None }));
        }
    }

    #[test]
    fn the_amount_is_read_exactly_and_follows_the_gros_amount_rules() {
        let parsed = parse_refund_body(br#"{"amount": 12.5, "reason": "Antrag zurueckgezogen"}"#);
        assert_eq!(parsed.map(|r| r.amount.map(Amount::value)), Ok(Some(Decimal::new(125, 1))));
        for bad in [r#"{"amount": 0}"#, r#"{"amount": -1}"#, r#"{"amount": 1.005}"#, r#"{"amount": "5"}"#] {
            let failure = parse_refund_body(bad.as_bytes()).err();
            assert_eq!(failure.map(|f| f.code), Some(FunctionalCode::ValidationError), "{bad}");
        }
    }

    #[test]
    fn a_reason_is_short_printable_text() {
        let long = format!(r#"{{"reason": "{}"}}"#, "x".repeat(MAX_REASON_LENGTH + 1));
        for bad in [long.as_str(), r#"{"reason": "a\nb"}"#, r#"{"reason": " "}"#, "[1]", "{"] {
            assert!(parse_refund_body(bad.as_bytes()).is_err(), "{bad}");
        }
        let ok = format!(r#"{{"reason": "{}"}}"#, "ä".repeat(MAX_REASON_LENGTH));
        assert!(parse_refund_body(ok.as_bytes()).is_ok());
    }
}

//! Exact money. JSON numbers reach this module as their literal text (serde_json's
//! `arbitrary_precision` feature, enabled in Cargo.toml), so `12.30` and `0.1` are read exactly and
//! never pass through `f64` (SECURITY.md #22).
//!
//! Decisions:
//! - Amounts must be JSON numbers; a string such as `"12.30"` is refused, as the standard types them
//!   as numbers.
//! - Exponent notation is valid JSON and read exactly: `1e2` is 100, `1.2345e2` is 123.45.
//! - "At most two decimal places" is about the value: `12.300` is accepted as 12.30; `12.345` is refused.
//! - Amounts are written back as JSON numbers with exactly two decimal places (`12.3` → `12.30`,
//!   `12` → `12.00`): the same JSON value, in the form finance systems and Java `BigDecimal`
//!   providers expect.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The largest amount the standard allows, for `grosAmount` and each item amount.
pub(crate) const MAX_AMOUNT: Decimal = Decimal::from_parts(999_999, 0, 0, false, 0);
/// Cents: the most decimal places an amount may have.
pub(crate) const AMOUNT_SCALE: u32 = 2;

/// `grosAmount`: euros, more than 0, at most 999999, at most two decimal places.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Amount(Decimal);

impl Amount {
    pub fn parse(value: Decimal) -> Result<Amount, String> {
        check_amount(value)?;
        if value.is_zero() {
            return Err("must be more than 0".to_owned());
        }
        Ok(Amount(value))
    }

    pub fn value(self) -> Decimal {
        self.0
    }
}

/// An item amount (`singleNetAmount`, `singleTaxAmount`, `totalNetAmount`, `totalTaxAmount`).
/// Unlike `grosAmount` it may be 0: a fee without VAT has a tax amount of 0, and a free item can sit
/// beside paid ones. Negative amounts (discounts) are refused: the standard has no credit items and
/// public clients clamp these fields to 0..999999.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ItemAmount(Decimal);

impl ItemAmount {
    pub const ZERO: ItemAmount = ItemAmount(Decimal::ZERO);

    pub fn parse(value: Decimal) -> Result<ItemAmount, String> {
        check_amount(value).map(|()| ItemAmount(value))
    }

    pub fn value(self) -> Decimal {
        self.0
    }
}

fn check_amount(value: Decimal) -> Result<(), String> {
    if value.is_sign_negative() && !value.is_zero() {
        return Err("must not be negative".to_owned());
    }
    if value > MAX_AMOUNT {
        return Err("must be at most 999999".to_owned());
    }
    if decimal_places(value) > AMOUNT_SCALE {
        return Err("must have at most 2 decimal places".to_owned());
    }
    Ok(())
}

/// Decimal places of the value, ignoring trailing zeros (`12.300` has 2).
pub(crate) fn decimal_places(value: Decimal) -> u32 {
    value.normalize().scale()
}

/// Reads the literal text of a JSON number exactly; `None` if it cannot be held without rounding.
pub(crate) fn parse_number_text(text: &str) -> Option<Decimal> {
    Decimal::from_str_exact(text).ok().or_else(|| Decimal::from_scientific(text).ok())
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", with_cents(self.0))
    }
}

impl fmt::Display for ItemAmount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", with_cents(self.0))
    }
}

fn with_cents(value: Decimal) -> Decimal {
    let mut cents = value;
    // Exact: amounts are checked to have at most two decimal places.
    cents.rescale(AMOUNT_SCALE);
    cents
}

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_number(&with_cents(self.0), serializer)
    }
}

impl Serialize for ItemAmount {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_number(&with_cents(self.0), serializer)
    }
}

/// Writes a decimal as a JSON number with exactly its digits (no float formatting).
pub(crate) fn serialize_number<S: Serializer>(value: &Decimal, serializer: S) -> Result<S::Ok, S::Error> {
    serde_json::Number::from_str(&value.to_string()).map_err(serde::ser::Error::custom)?.serialize(serializer)
}

/// For `deserialize_with` on an `Option<Decimal>` field (with `#[serde(default)]`): a JSON number,
/// read exactly, or null/absent.
pub(crate) fn optional_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Decimal>, D::Error> {
    let Some(number) = Option::<serde_json::Number>::deserialize(deserializer)? else {
        return Ok(None);
    };
    parse_number_text(number.as_str())
        .map(Some)
        .ok_or_else(|| serde::de::Error::custom("is a number pforte cannot hold exactly"))
}

//! The XBezahldienste `functionalCode`s and the one failure type the payment domain returns. The HTTP
//! edge turns a failure into `application/problem+json` once; this module knows no axum.

use std::fmt;

use serde::{Serialize, Serializer};

/// A `functionalCode` of the standard. Spellings are exact; they are part of the wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FunctionalCode {
    /// The originator/endpoint pair is not configured. Older providers spell it
    /// `NO_VALID_ORIGINATOR_OR_DESTINATION`; pforte writes the current name and reads both.
    NoValidOriginatorOrEndpoint,
    /// A transaction with this `requestId` already exists for the originator and endpoint.
    PaymentExists,
    /// Amounts do not add up (items against `grosAmount`, or quantity × single amount against total).
    CalculationError,
    /// Booking data the authority requires (e.g. Haushaltsstelle) is missing after merging defaults.
    BookingDataMissing,
    ValidationError,
    Forbidden,
    Unspecified,
}

impl FunctionalCode {
    pub fn as_str(self) -> &'static str {
        match self {
            FunctionalCode::NoValidOriginatorOrEndpoint => "NO_VALID_ORIGINATOR_OR_ENDPOINT",
            FunctionalCode::PaymentExists => "PAYMENT_EXISTS",
            FunctionalCode::CalculationError => "CALCULATION_ERROR",
            FunctionalCode::BookingDataMissing => "BOOKING_DATA_MISSING",
            FunctionalCode::ValidationError => "VALIDATION_ERROR",
            FunctionalCode::Forbidden => "FORBIDDEN",
            FunctionalCode::Unspecified => "UNSPECIFIED",
        }
    }

    /// Reads a code from a provider's problem response; the older alias maps to its current name.
    pub fn parse(code: &str) -> Option<FunctionalCode> {
        Some(match code {
            "NO_VALID_ORIGINATOR_OR_ENDPOINT" | "NO_VALID_ORIGINATOR_OR_DESTINATION" => {
                FunctionalCode::NoValidOriginatorOrEndpoint
            }
            "PAYMENT_EXISTS" => FunctionalCode::PaymentExists,
            "CALCULATION_ERROR" => FunctionalCode::CalculationError,
            "BOOKING_DATA_MISSING" => FunctionalCode::BookingDataMissing,
            "VALIDATION_ERROR" => FunctionalCode::ValidationError,
            "FORBIDDEN" => FunctionalCode::Forbidden,
            "UNSPECIFIED" => FunctionalCode::Unspecified,
            _ => return None,
        })
    }

    /// The HTTP status the problem response carries.
    pub fn http_status(self) -> u16 {
        match self {
            FunctionalCode::ValidationError | FunctionalCode::CalculationError | FunctionalCode::BookingDataMissing => {
                400
            }
            FunctionalCode::Forbidden | FunctionalCode::NoValidOriginatorOrEndpoint => 403,
            FunctionalCode::PaymentExists => 409,
            FunctionalCode::Unspecified => 500,
        }
    }
}

impl fmt::Display for FunctionalCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for FunctionalCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Why a payment request was refused. `detail` names fields and rules, never the values sent (they
/// may be personal data, SECURITY.md #25); it lists every problem found, as problem+json carries one
/// `detail`. `field` is the first field at fault, as a path such as `items[0].totalNetAmount`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationFailure {
    pub code: FunctionalCode,
    pub detail: String,
    pub field: Option<String>,
}

impl ValidationFailure {
    pub fn new(code: FunctionalCode, detail: impl Into<String>, field: Option<String>) -> ValidationFailure {
        ValidationFailure { code, detail: detail.into(), field }
    }
}

impl fmt::Display for ValidationFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.detail)
    }
}

impl std::error::Error for ValidationFailure {}

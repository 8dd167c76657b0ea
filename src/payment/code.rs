//! The XBezahldienste `functionalCode`s and the one failure type the payment domain returns,
//! [`PaymentError`]: what kind of failure it is, the `functionalCode` it carries and a detail for the
//! caller. The HTTP edge chooses the status for each kind and writes `application/problem+json` once;
//! this module knows no HTTP.

use std::fmt;

use serde::{Serialize, Serializer};

use crate::store::StorageError;

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

/// What kind of failure a [`PaymentError`] is; the edge answers each with its own status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is refused for the reason its `functionalCode` names.
    Rejected,
    /// The provider refused the payment, with the `functionalCode` it gave (or `UNSPECIFIED`).
    ProviderRefused,
    /// No such payment under this originator and authority.
    NotFound,
    /// The payment is not in a status that allows this.
    WrongStatus,
    /// A request with the same Idempotency-Key is still running.
    InProgress,
    /// A provider could not be reached or did not confirm, or the database could not be asked;
    /// nothing changed, the caller may retry.
    Unavailable,
    /// The provider created the payment, but the database went away before pforte recorded it;
    /// pforte records it when the database is back, and a retry under the same Idempotency-Key
    /// is answered with it (the key stays held meanwhile).
    Recording,
    /// pforte failed; nothing changed. The cause is in the log, never in `detail`.
    Internal,
}

/// Why a call of the payment API failed. `detail` is for the caller: it names fields, rules and
/// statuses, never personal data or internals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentError {
    pub kind: ErrorKind,
    pub code: FunctionalCode,
    pub detail: String,
}

impl PaymentError {
    pub fn new(kind: ErrorKind, code: FunctionalCode, detail: impl Into<String>) -> PaymentError {
        PaymentError { kind, code, detail: detail.into() }
    }

    pub fn rejected(code: FunctionalCode, detail: impl Into<String>) -> PaymentError {
        PaymentError::new(ErrorKind::Rejected, code, detail)
    }

    pub fn not_found() -> PaymentError {
        PaymentError::new(ErrorKind::NotFound, FunctionalCode::Unspecified, "No such transaction.")
    }

    /// `VALIDATION_ERROR`: the payment is not in a status that allows this.
    pub fn wrong_status(detail: impl Into<String>) -> PaymentError {
        PaymentError::new(ErrorKind::WrongStatus, FunctionalCode::ValidationError, detail)
    }

    pub fn unavailable(detail: impl Into<String>) -> PaymentError {
        PaymentError::new(ErrorKind::Unavailable, FunctionalCode::Unspecified, detail)
    }

    /// A failure of pforte's own: `cause` goes to the log, the caller gets the request id to quote.
    pub fn internal(cause: &dyn fmt::Display) -> PaymentError {
        tracing::error!(error = %cause, "payment request failed");
        PaymentError::new(
            ErrorKind::Internal,
            FunctionalCode::Unspecified,
            "The request could not be completed; quote the x-request-id.",
        )
    }

    /// Whether the failure changed nothing and lies outside the request (pforte or the provider
    /// failed), so that the same request may be tried again under its Idempotency-Key. A provider's
    /// refusal without a code of the standard counts as the provider failing.
    pub fn leaves_retry_open(&self) -> bool {
        match self.kind {
            ErrorKind::Unavailable | ErrorKind::Internal => true,
            ErrorKind::ProviderRefused => self.code == FunctionalCode::Unspecified,
            ErrorKind::Rejected
            | ErrorKind::NotFound
            | ErrorKind::WrongStatus
            | ErrorKind::InProgress
            | ErrorKind::Recording => false,
        }
    }
}

/// A database failure: "try again" when the database could not be asked (nothing was decided, and
/// the outage is logged once by the store, so this request only leaves a debug line), else pforte's
/// own failure.
impl From<StorageError> for PaymentError {
    fn from(error: StorageError) -> PaymentError {
        if error.is_unavailable() {
            tracing::debug!(error = %error, "payment request met an unavailable database");
            PaymentError::unavailable("pforte's database is briefly unavailable; try again shortly.")
        } else {
            PaymentError::internal(&error)
        }
    }
}

impl From<ValidationFailure> for PaymentError {
    fn from(failure: ValidationFailure) -> PaymentError {
        PaymentError::rejected(failure.code, failure.detail)
    }
}

impl fmt::Display for PaymentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} {}: {}", self.kind, self.code, self.detail)
    }
}

impl std::error::Error for PaymentError {}

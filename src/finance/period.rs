//! Periods of finance exports as query parameters: `from` and `to` (`YYYY-MM-DD`) read into a
//! [`Period`] (calendar days in Europe/Berlin, both included; see `crate::model`), with a fault
//! naming the parameter for the 400 answer.

use crate::model::PeriodError;
pub(crate) use crate::model::{berlin_time, Period};

use chrono::NaiveDate;

/// The longest period one request may cover: a leap year.
pub(crate) const MAX_DAYS: i64 = Period::MAX_DAYS;

/// A query parameter that cannot be used; `param` names it for the 400 answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{param}: {reason}")]
pub struct ParamError {
    pub param: &'static str,
    pub reason: String,
}

impl ParamError {
    pub fn new(param: &'static str, reason: impl Into<String>) -> Self {
        ParamError { param, reason: reason.into() }
    }
}

/// Reads `from` and `to` (`YYYY-MM-DD`); `to` must not be before `from`, and the period must not
/// exceed [`MAX_DAYS`].
pub(crate) fn parse(from: Option<&str>, to: Option<&str>) -> Result<Period, ParamError> {
    let from = parse_date("from", from)?;
    let to = parse_date("to", to)?;
    Period::new(from, to).map_err(|e| match e {
        PeriodError::EndsBeforeItBegins { .. } => ParamError::new("to", "must not be before from"),
        PeriodError::TooLong => ParamError::new("to", format!("the period may cover at most {MAX_DAYS} days")),
    })
}

fn parse_date(param: &'static str, value: Option<&str>) -> Result<NaiveDate, ParamError> {
    let value = value.ok_or_else(|| ParamError::new(param, "is required (YYYY-MM-DD)"))?;
    // Exactly ten characters: chrono alone would also take `2026-1-5`.
    if value.len() != 10 {
        return Err(ParamError::new(param, "must be a date YYYY-MM-DD"));
    }
    NaiveDate::parse_from_str(value, "%Y-%m-%d").map_err(|_| ParamError::new(param, "must be a date YYYY-MM-DD"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_periods_name_the_parameter() {
        let cases = [
            (None, Some("2026-01-01"), "from"),
            (Some("2026-01-01"), None, "to"),
            (Some("2026-1-1"), Some("2026-01-02"), "from"),
            (Some("2026-01-01"), Some("2026-02-30"), "to"),
            (Some("2026-01-02"), Some("2026-01-01"), "to"),
            (Some("2024-01-01"), Some("2025-01-01"), "to"),
        ];
        for (from, to, param) in cases {
            assert_eq!(parse(from, to).map_err(|e| e.param), Err(param), "{from:?} {to:?}");
        }
        assert!(parse(Some("2024-01-01"), Some("2024-12-31")).is_ok(), "366 days in a leap year");
    }
}

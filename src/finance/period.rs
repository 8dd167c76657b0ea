//! Periods of finance reports and exports: calendar days in Europe/Berlin, `from` and `to` both
//! included. Ledger times are UTC milliseconds; a period covers `[start of from, start of to + 1)`.

use chrono::{DateTime, Days, NaiveDate, TimeZone};
use chrono_tz::{Europe::Berlin, Tz};

/// The longest period one request may cover: a leap year.
pub const MAX_DAYS: i64 = 366;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

impl Period {
    /// Reads `from` and `to` (`YYYY-MM-DD`); `to` must not be before `from`, and the period must not
    /// exceed [`MAX_DAYS`].
    pub fn parse(from: Option<&str>, to: Option<&str>) -> Result<Period, ParamError> {
        let from = parse_date("from", from)?;
        let to = parse_date("to", to)?;
        if to < from {
            return Err(ParamError::new("to", "must not be before from"));
        }
        if (to - from).num_days() + 1 > MAX_DAYS {
            return Err(ParamError::new("to", format!("the period may cover at most {MAX_DAYS} days")));
        }
        Ok(Period { from, to })
    }

    /// The first millisecond of `from` in Berlin.
    pub fn start_millis(&self) -> i64 {
        start_of_day(self.from)
    }

    /// The first millisecond after `to` in Berlin (exclusive end).
    pub fn end_millis(&self) -> i64 {
        start_of_day(self.to.checked_add_days(Days::new(1)).unwrap_or(self.to))
    }
}

fn parse_date(param: &'static str, value: Option<&str>) -> Result<NaiveDate, ParamError> {
    let value = value.ok_or_else(|| ParamError::new(param, "is required (YYYY-MM-DD)"))?;
    // Exactly ten characters: chrono alone would also take `2026-1-5`.
    if value.len() != 10 {
        return Err(ParamError::new(param, "must be a date YYYY-MM-DD"));
    }
    NaiveDate::parse_from_str(value, "%Y-%m-%d").map_err(|_| ParamError::new(param, "must be a date YYYY-MM-DD"))
}

/// Midnight in Berlin exists every day (clocks change at 02:00 and 03:00).
fn start_of_day(date: NaiveDate) -> i64 {
    let midnight = date.and_hms_opt(0, 0, 0).unwrap_or_default();
    Berlin.from_local_datetime(&midnight).earliest().map(|t| t.timestamp_millis()).unwrap_or_default()
}

/// A ledger time in Berlin.
pub fn berlin_time(millis: i64) -> DateTime<Tz> {
    DateTime::from_timestamp_millis(millis).unwrap_or_default().with_timezone(&Berlin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_period_covers_whole_berlin_days_including_both_ends() {
        let period = Period::parse(Some("2026-03-29"), Some("2026-03-29")).expect("valid");
        // The day clocks go forward has 23 hours; it starts at 23:00 UTC the day before.
        assert_eq!(berlin_time(period.start_millis()).to_rfc3339(), "2026-03-29T00:00:00+01:00");
        assert_eq!(period.end_millis() - period.start_millis(), 23 * 3600 * 1000);
        let winter = Period::parse(Some("2026-11-29"), Some("2026-11-30")).expect("valid");
        assert_eq!(winter.end_millis() - winter.start_millis(), 48 * 3600 * 1000);
    }

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
            assert_eq!(Period::parse(from, to).map_err(|e| e.param), Err(param), "{from:?} {to:?}");
        }
        assert!(Period::parse(Some("2024-01-01"), Some("2024-12-31")).is_ok(), "366 days in a leap year");
    }
}

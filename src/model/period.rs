//! Periods of finance reports, reconciliations and exports: calendar days in Germany
//! (Europe/Berlin), `from` and `to` both included. Stored times are UTC milliseconds; a period
//! covers `[start of from, start of to + 1)`.

use chrono::{DateTime, Days, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::{Europe::Berlin, Tz};

/// Calendar days in Germany, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

/// Why two dates make no period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PeriodError {
    #[error("the period ends ({to}) before it begins ({from})")]
    EndsBeforeItBegins { from: NaiveDate, to: NaiveDate },
    #[error("the period is longer than {} days", Period::MAX_DAYS)]
    TooLong,
}

impl From<PeriodError> for String {
    fn from(error: PeriodError) -> String {
        error.to_string()
    }
}

impl Period {
    /// A leap year at most, which bounds the work, the chart and an export.
    pub const MAX_DAYS: i64 = 366;

    pub fn new(from: NaiveDate, to: NaiveDate) -> Result<Period, PeriodError> {
        if to < from {
            return Err(PeriodError::EndsBeforeItBegins { from, to });
        }
        if (to - from).num_days() >= Self::MAX_DAYS {
            return Err(PeriodError::TooLong);
        }
        Ok(Period { from, to })
    }

    pub fn contains(&self, date: NaiveDate) -> bool {
        self.from <= date && date <= self.to
    }

    pub fn days(&self) -> impl Iterator<Item = NaiveDate> + '_ {
        self.from.iter_days().take_while(|d| *d <= self.to)
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

/// The first millisecond of a German calendar day (midnight exists on every day in Europe/Berlin;
/// the clock changes at 02:00/03:00).
pub fn start_of_day(date: NaiveDate) -> i64 {
    Berlin
        .from_local_datetime(&date.and_time(NaiveTime::MIN))
        .earliest()
        .map_or_else(|| date.and_time(NaiveTime::MIN).and_utc().timestamp_millis(), |t| t.timestamp_millis())
}

/// A stored time (UTC milliseconds) in Berlin.
pub fn berlin_time(millis: i64) -> DateTime<Tz> {
    DateTime::from_timestamp_millis(millis).unwrap_or_default().with_timezone(&Berlin)
}

/// The German calendar day of an instant.
pub fn local_date(at: DateTime<Utc>) -> NaiveDate {
    at.with_timezone(&Berlin).date_naive()
}

/// An instant as German local time with its offset, e.g. `2026-11-29T10:00:00+01:00`.
pub fn local_time(at: DateTime<Utc>) -> String {
    at.with_timezone(&Berlin).format("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default()
    }

    fn utc_millis(text: &str) -> i64 {
        DateTime::parse_from_rfc3339(text).map(|t| t.timestamp_millis()).unwrap_or_default()
    }

    #[test]
    fn a_german_day_starts_at_local_midnight_in_winter_and_summer() {
        assert_eq!(start_of_day(date(2026, 11, 29)), utc_millis("2026-11-28T23:00:00Z"));
        assert_eq!(start_of_day(date(2026, 7, 1)), utc_millis("2026-06-30T22:00:00Z"));
        // The day the clocks go forward still begins at midnight (the jump is at 02:00).
        assert_eq!(start_of_day(date(2026, 3, 29)), utc_millis("2026-03-28T23:00:00Z"));
    }

    #[test]
    fn a_period_covers_whole_berlin_days_including_both_ends() -> Result<(), PeriodError> {
        let period = Period::new(date(2026, 3, 29), date(2026, 3, 29))?;
        // The day clocks go forward has 23 hours; it starts at 23:00 UTC the day before.
        assert_eq!(berlin_time(period.start_millis()).to_rfc3339(), "2026-03-29T00:00:00+01:00");
        assert_eq!(period.end_millis() - period.start_millis(), 23 * 3600 * 1000);
        let winter = Period::new(date(2026, 11, 29), date(2026, 11, 30))?;
        assert_eq!(winter.end_millis() - winter.start_millis(), 48 * 3600 * 1000);
        Ok(())
    }

    #[test]
    fn a_period_ends_after_it_begins_and_covers_a_leap_year_at_most() {
        assert_eq!(
            Period::new(date(2026, 1, 2), date(2026, 1, 1)),
            Err(PeriodError::EndsBeforeItBegins { from: date(2026, 1, 2), to: date(2026, 1, 1) })
        );
        assert!(Period::new(date(2024, 1, 1), date(2024, 12, 31)).is_ok(), "366 days in a leap year");
        assert_eq!(Period::new(date(2024, 1, 1), date(2025, 1, 1)), Err(PeriodError::TooLong));
    }
}

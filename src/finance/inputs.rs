//! Gathers what reconciliation compares for one tenant and period from the database, and turns the
//! stored text into typed values.

use chrono::{Days, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Europe::Berlin;

use super::reconcile::{BankLine, Period, PfortePayment, PforteRefund, ReconcileInput, RefundStatus, SettlementLine};
use super::report::Report;
use crate::registry::SettlementKind;
use crate::store::finance_imports::{ReconcileWindow, RefundForReconcile};
use crate::store::stored_decimal;
use crate::store::{Database, StorageError, StorageResult};

/// How far beyond the period the other side of a match is looked for: settlement reports and
/// payouts follow payments by days, rarely by weeks.
pub const MATCH_WINDOW_DAYS: u64 = 45;

/// Reads the inputs and reconciles them.
pub async fn reconcile_period(db: &Database, tenant: &str, period: Period) -> StorageResult<Report> {
    let input = gather(db, tenant, period).await?;
    Ok(super::reconcile::reconcile(&input))
}

pub async fn gather(db: &Database, tenant: &str, period: Period) -> StorageResult<ReconcileInput> {
    let window = window(period);
    let payments = db.payments_for_reconcile(tenant, &window).await?;
    let refunds = db.refunds_for_reconcile(tenant, &window).await?;
    let settlement = db.settlement_rows_for_reconcile(tenant, &window).await?;
    let bank = db.bank_entries_for_reconcile(tenant, &window).await?;

    let payments = payments
        .into_iter()
        .map(|p| {
            Ok(PfortePayment {
                paid: p.status == "PAYED" || p.paid_after_timeout_at.is_some(),
                paid_after_timeout: p.paid_after_timeout_at.is_some(),
                amount: stored_decimal(&p.gros_amount)?,
                paid_at: instant(p.paid_at)?,
                transaction_id: p.transaction_id,
                provider_id: p.provider_id,
                provider_reference: p.provider_reference,
                transaction_reference: p.transaction_reference,
                status: p.status,
            })
        })
        .collect::<StorageResult<Vec<_>>>()?;
    let refunds = refunds.into_iter().map(refund).collect::<StorageResult<Vec<_>>>()?;
    let settlement = settlement
        .into_iter()
        .map(|s| {
            Ok(SettlementLine {
                kind: SettlementKind::parse(&s.kind).ok_or_else(|| corrupt("settlement kind", &s.kind))?,
                gross: stored_decimal(&s.gross)?,
                fee: stored_decimal(&s.fee)?,
                booked_on: date(&s.booked_on)?,
                import_id: s.import_id,
                line: s.line,
                provider_id: s.provider_id,
                transaction: s.provider_transaction,
                payout_reference: s.payout_reference,
            })
        })
        .collect::<StorageResult<Vec<_>>>()?;
    let bank = bank
        .into_iter()
        .map(|b| {
            Ok(BankLine {
                amount: stored_decimal(&b.amount)?,
                booked_on: date(&b.booked_on)?,
                value_on: b.value_on.as_deref().map(date).transpose()?,
                import_id: b.import_id,
                position: b.position,
                reference: b.entry_reference,
                remittance: b.remittance,
            })
        })
        .collect::<StorageResult<Vec<_>>>()?;
    Ok(ReconcileInput { tenant: tenant.to_owned(), period, payments, refunds, settlement, bank })
}

fn refund(r: RefundForReconcile) -> StorageResult<PforteRefund> {
    Ok(PforteRefund {
        status: RefundStatus::parse(&r.status).ok_or_else(|| corrupt("refund status", &r.status))?,
        amount: stored_decimal(&r.amount)?,
        created_at: instant(r.created_at)?,
        refund_id: r.refund_id,
        transaction_id: r.transaction_id,
        provider_id: r.provider_id,
        provider_reference: r.provider_reference,
    })
}

/// The period widened by the match window, as dates and as instants (German midnight to midnight).
pub fn window(period: Period) -> ReconcileWindow {
    let from = period.from.checked_sub_days(Days::new(MATCH_WINDOW_DAYS)).unwrap_or(period.from);
    let to = period.to.checked_add_days(Days::new(MATCH_WINDOW_DAYS)).unwrap_or(period.to);
    ReconcileWindow {
        from: from.to_string(),
        to: to.to_string(),
        from_millis: start_of_day(from),
        to_millis: start_of_day(to.succ_opt().unwrap_or(to)) - 1,
        period_from: period.from.to_string(),
        period_to: period.to.to_string(),
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

fn date(text: &str) -> StorageResult<NaiveDate> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| corrupt("date", text))
}

fn instant(millis: i64) -> StorageResult<chrono::DateTime<Utc>> {
    Utc.timestamp_millis_opt(millis).single().ok_or_else(|| corrupt("time", &millis.to_string()))
}

fn corrupt(what: &str, text: &str) -> StorageError {
    StorageError::Corrupt(format!("{what} `{text}`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default()
    }

    fn utc_millis(text: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(text).map(|t| t.timestamp_millis()).unwrap_or_default()
    }

    #[test]
    fn a_german_day_starts_at_local_midnight_in_winter_and_summer() {
        assert_eq!(start_of_day(date(2026, 11, 29)), utc_millis("2026-11-28T23:00:00Z"));
        assert_eq!(start_of_day(date(2026, 7, 1)), utc_millis("2026-06-30T22:00:00Z"));
        // The day the clocks go forward still begins at midnight (the jump is at 02:00).
        assert_eq!(start_of_day(date(2026, 3, 29)), utc_millis("2026-03-28T23:00:00Z"));
    }

    #[test]
    fn the_window_widens_the_period_and_ends_just_before_the_next_day() -> Result<(), String> {
        let window = window(Period::new(date(2026, 11, 29), date(2026, 11, 30))?);
        assert_eq!((window.from.as_str(), window.to.as_str()), ("2026-10-15", "2027-01-14"));
        assert_eq!((window.period_from.as_str(), window.period_to.as_str()), ("2026-11-29", "2026-11-30"));
        assert_eq!(window.to_millis + 1, start_of_day(date(2027, 1, 15)));
        assert_eq!(window.from_millis, start_of_day(date(2026, 10, 15)));
        Ok(())
    }
}

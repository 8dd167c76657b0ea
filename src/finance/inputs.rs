//! Gathers what reconciliation compares for one tenant and period from the database. The store
//! hands back typed rows (statuses, amounts, dates); a row that does not parse is corrupt data.

use chrono::{Days, TimeZone, Utc};

use super::reconcile::{Period, PfortePayment, PforteRefund, ReconcileInput};
use super::report::Report;
use crate::model::{start_of_day, PaymentStatus};
use crate::store::finance_imports::{ReconcileWindow, RefundForReconcile};
use crate::store::{Database, StorageError, StorageResult};

/// How far beyond the period the other side of a match is looked for: settlement reports and
/// payouts follow payments by days, rarely by weeks.
pub(crate) const MATCH_WINDOW_DAYS: u64 = 45;

/// Reads the inputs and reconciles them.
pub(crate) async fn reconcile_period(db: &Database, tenant: &str, period: Period) -> StorageResult<Report> {
    let input = gather(db, tenant, period).await?;
    Ok(super::reconcile::reconcile(&input))
}

pub(crate) async fn gather(db: &Database, tenant: &str, period: Period) -> StorageResult<ReconcileInput> {
    let window = window(period);
    let payments = db.payments_for_reconcile(tenant, &window).await?;
    let refunds = db.refunds_for_reconcile(tenant, &window).await?;
    let settlement = db.settlement_rows_for_reconcile(tenant, &window).await?;
    let bank = db.bank_entries_for_reconcile(tenant, &window).await?;

    let payments = payments
        .into_iter()
        .map(|p| {
            Ok(PfortePayment {
                paid: p.status == PaymentStatus::Payed || p.paid_after_timeout_at.is_some(),
                paid_after_timeout: p.paid_after_timeout_at.is_some(),
                amount: p.gros_amount,
                paid_at: instant(p.paid_at)?,
                transaction_id: p.transaction_id,
                provider_id: p.provider_id,
                provider_reference: p.provider_reference,
                transaction_reference: p.transaction_reference,
                status: p.status,
                submission_id: p.submission_id,
            })
        })
        .collect::<StorageResult<Vec<_>>>()?;
    let refunds = refunds.into_iter().map(refund).collect::<StorageResult<Vec<_>>>()?;
    Ok(ReconcileInput { tenant: tenant.to_owned(), period, payments, refunds, settlement, bank })
}

fn refund(r: RefundForReconcile) -> StorageResult<PforteRefund> {
    Ok(PforteRefund {
        status: r.status,
        amount: r.amount,
        created_at: instant(r.created_at)?,
        refund_id: r.refund_id,
        transaction_id: r.transaction_id,
        provider_id: r.provider_id,
        provider_reference: r.provider_reference,
        transaction_reference: r.transaction_reference,
    })
}

/// The period widened by the match window, as dates and as instants (German midnight to midnight).
pub(crate) fn window(period: Period) -> ReconcileWindow {
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

fn instant(millis: i64) -> StorageResult<chrono::DateTime<Utc>> {
    Utc.timestamp_millis_opt(millis)
        .single()
        .ok_or_else(|| StorageError::Corrupt(format!("stored time {millis} is out of range")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default()
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

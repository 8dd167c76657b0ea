//! What an import books in the ledger, in the import's own transaction: a settlement row's fee is
//! money the provider kept (provider fee), a bank entry naming a known payout is money that reached
//! the authority's account (payout). Rows pforte cannot place book nothing; reconciliation reports
//! them. A second, different bank entry for a payout already booked books nothing either: the
//! reconciliation names it, and a person decides.

use rust_decimal::Decimal;
use sqlx::AnyConnection;

use crate::finance::ledger::{self, FeeEvent, LedgerError, PayoutEvent};
use crate::store::finance_imports::{self as store, BankEntryRecord, SettlementRecord};
use crate::store::StorageError;

/// Books the fees of a settlement import's rows that belong to this tenant's paid payments.
pub(super) async fn settlement_fees(
    conn: &mut AnyConnection,
    records: &[SettlementRecord],
    now: i64,
) -> Result<usize, StorageError> {
    let Some(first) = records.first() else { return Ok(0) };
    // One import is one tenant's report of one provider: look all its references up at once.
    let mut references: Vec<String> = records.iter().map(|r| r.provider_transaction.clone()).collect();
    references.sort_unstable();
    references.dedup();
    let paid = store::paid_transactions_by_reference(conn, &first.tenant_id, &first.provider_id, &references).await?;
    let mut posted = 0;
    for record in records {
        let fee = record.fee;
        let Some(transaction_id) = paid.get(&record.provider_transaction).filter(|_| fee > Decimal::ZERO) else {
            continue;
        };
        let event = FeeEvent {
            tenant_id: &record.tenant_id,
            provider_id: &record.provider_id,
            import_id: &record.import_id,
            line: u64::try_from(record.line).unwrap_or(0),
            transaction_id: Some(transaction_id),
            amount: fee,
            posted_at: now,
        };
        posted += usize::from(booked(ledger::post_provider_fee(conn, &event).await)?);
    }
    Ok(posted)
}

/// Books each bank entry whose remittance names a payout of this tenant's settlement reports.
pub(super) async fn bank_payouts(
    conn: &mut AnyConnection,
    tenant_id: &str,
    records: &[BankEntryRecord],
    now: i64,
) -> Result<usize, StorageError> {
    let payouts = store::payout_references(conn, tenant_id).await?;
    let mut posted = 0;
    for record in records {
        let value = record.amount;
        let remittance = record.remittance.as_str();
        let named =
            payouts.iter().find(|(reference, _)| !reference.is_empty() && remittance.contains(reference.as_str()));
        let (Some((reference, provider_id)), true) = (named, value > Decimal::ZERO) else { continue };
        let event = PayoutEvent { tenant_id, provider_id, payout_reference: reference, amount: value, posted_at: now };
        posted += usize::from(booked(ledger::post_payout(conn, &event).await)?);
    }
    Ok(posted)
}

/// Whether a journal was written; a repeat or a conflicting repeat writes nothing (see module doc).
fn booked(result: Result<ledger::Posting, LedgerError>) -> Result<bool, StorageError> {
    match result {
        Ok(ledger::Posting::Posted { .. }) => Ok(true),
        Ok(ledger::Posting::AlreadyPosted { .. }) | Err(LedgerError::KeyConflict { .. }) => Ok(false),
        Err(LedgerError::Storage(e)) => Err(e),
        Err(e) => Err(StorageError::Corrupt(e.to_string())),
    }
}

//! The ledger on both databases: postings from payment signals, refunds, fees, payouts and
//! reversals; immutability; and a property test over random sequences of payment events
//! (SECURITY.md #22).

use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::ensure;
use pforte::clock::SystemClock;
use pforte::finance::ledger::{self, Account, LedgerError, Posting};
use pforte::payment::signals::{Outcome, PaymentSignals};
use pforte::payment::state::Source;
use pforte::payment::Status;
use pforte::store::payments::PaymentRow;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use rust_decimal::Decimal;

use crate::helpers::{TestApp, TestContext, TestResult};
use crate::keys::any_pool;
use crate::payment_api::bearer;
use crate::payment_surface::{open_payment, pay_at_provider, payment_path, post};

/// An app whose background workers stay still, so only the test moves payments.
pub async fn quiet_app(ctx: &TestContext) -> TestApp {
    ctx.spawn_app_with(
        |f| f.merge(("workers.payment_status", false)).merge(("workers.notifications", false)),
        Arc::new(SystemClock),
    )
    .await
}

pub fn signals(app: &TestApp) -> PaymentSignals {
    let state = &app.state;
    state.payment_signals.clone()
}

/// A payment row as the payment API would store it, for `tenant`, with `amount` and `request`.
pub fn payment_row(app: &TestApp, tenant: &str, transaction_id: &str, amount: Decimal, request: &str) -> PaymentRow {
    let now = app.state.clock.now_millis();
    PaymentRow {
        transaction_id: transaction_id.into(),
        originator_id: "demo-service".into(),
        endpoint_id: tenant.into(),
        client_id: "demo".into(),
        request_id: format!("R-{transaction_id}"),
        request: request.into(),
        effective_request: request.into(),
        gros_amount: amount,
        provider_id: "sim-pay".into(),
        provider_reference: None,
        pay_url: None,
        status: Status::Initial,
        status_detail: None,
        timed_out_at: None,
        paid_after_timeout_at: None,
        created_at: now,
        updated_at: now,
        expires_at: now + 3_600_000,
        payment_method: None,
        payment_method_detail: None,
        transaction_reference: None,
        paid_at: None,
        notify_url: None,
    }
}

fn dec(text: &str) -> Decimal {
    Decimal::from_str(text).expect("decimal")
}

pub async fn a_payed_signal_books_the_payment_once_and_duplicates_post_nothing(ctx: TestContext) -> TestResult {
    let app = quiet_app(&ctx).await;
    let token = bearer(&app).await?;
    let id = open_payment(&app, &token, "LEDGER-PAID").await?;
    assert_eq!(ledger::tenant_total(&app.state.db, "09162000").await?, Decimal::ZERO);
    pay_at_provider(&app, &id, "CREDITCARD").await?;
    // The citizen comes back three times: each return reads PAYED from the provider again.
    for _ in 0..3 {
        assert_eq!(app.client.get(app.url(&format!("/pay/{id}/return"))).send().await?.status(), 303);
    }
    // The online service's cancel afterwards is refused and moves no money either.
    let cancel = post(&app, &token, &format!("{}/cancel", payment_path(&id)), "", None).await?;
    assert_eq!(cancel.status(), 409);
    let journals = app.state.db.ledger_journals_of_transaction(&id).await?;
    assert_eq!(journals.len(), 1, "{journals:?}");
    assert_eq!((journals[0].journal_key.clone(), journals[0].amount), (format!("paid:{id}"), dec("12.00")));
    let db = &app.state.db;
    assert_eq!(ledger::balance(db, "09162000", &Account::FeeRevenue).await?, dec("-12.00"));
    assert_eq!(ledger::balance(db, "09162000", &Account::ProviderReceivable("sim-pay".into())).await?, dec("12.00"));
    assert!(ledger::check_transaction(db, &id).await?.consistent());
    app.stop().await
}
backend_test!(a_payed_signal_books_the_payment_once_and_duplicates_post_nothing);

pub async fn paid_after_timeout_is_booked_and_the_payment_stays_flagged(ctx: TestContext) -> TestResult {
    let app = quiet_app(&ctx).await;
    let signals = signals(&app);
    signals.create(&payment_row(&app, "09162000", "tx-late", dec("7.00"), "{}")).await?;
    signals.record("tx-late", Status::Failed, Source::Timeout, Some("timeout")).await?;
    assert!(app.state.db.ledger_journals_of_transaction("tx-late").await?.is_empty(), "a timeout moves no money");
    assert_eq!(signals.record("tx-late", Status::Payed, Source::Provider, None).await?, Outcome::PaidAfterTimeout);
    signals.record("tx-late", Status::Payed, Source::Provider, None).await?;
    let journals = app.state.db.ledger_journals_of_transaction("tx-late").await?;
    assert_eq!(journals.iter().map(|j| j.journal_key.as_str()).collect::<Vec<_>>(), vec!["paid:tx-late"]);
    let payment = app.state.db.payment("tx-late").await?.expect("payment");
    assert_eq!(payment.status.as_str(), "FAILED");
    assert!(payment.paid_after_timeout_at.is_some());
    assert!(ledger::check_transaction(&app.state.db, "tx-late").await?.consistent());
    app.stop().await
}
backend_test!(paid_after_timeout_is_booked_and_the_payment_stays_flagged);

/// The worked example of docs/ledger.md: paid, refunded in part, refund settled, fee, payout.
pub async fn refund_fee_payout_and_reversal_post_balanced_journals(ctx: TestContext) -> TestResult {
    let app = quiet_app(&ctx).await;
    let db = app.state.db.clone();
    let signals = signals(&app);
    signals.create(&payment_row(&app, "09162000", "tx-1", dec("12.00"), "{}")).await?;
    signals.record("tx-1", Status::Payed, Source::Provider, None).await?;
    let now = app.state.clock.now_millis();
    let tenant = "09162000";
    let mut tx = db.begin_write().await?;
    let refund = ledger::RefundEvent {
        tenant_id: tenant,
        transaction_id: "tx-1",
        refund_id: "rf-1",
        amount: dec("2.00"),
        posted_at: now,
    };
    let first = ledger::post_refund(&mut tx, &refund).await?;
    assert!(matches!(first, Posting::Posted { .. }));
    assert_eq!(ledger::post_refund(&mut tx, &refund).await?, Posting::AlreadyPosted { journal_id: first.journal_id() });
    let too_much = ledger::RefundEvent { refund_id: "rf-2", amount: dec("10.01"), ..refund };
    assert!(matches!(ledger::post_refund(&mut tx, &too_much).await, Err(LedgerError::RefundExceedsPaid { .. })));
    let unpaid = ledger::RefundEvent { transaction_id: "tx-none", refund_id: "rf-3", ..refund };
    assert!(matches!(ledger::post_refund(&mut tx, &unpaid).await, Err(LedgerError::NotPaid { .. })));
    let other_amount = ledger::RefundEvent { amount: dec("3.00"), ..refund };
    assert!(matches!(ledger::post_refund(&mut tx, &other_amount).await, Err(LedgerError::KeyConflict { .. })));
    let settled = ledger::RefundSettledEvent {
        tenant_id: tenant,
        transaction_id: "tx-1",
        refund_id: "rf-1",
        provider_id: "sim-pay",
        amount: dec("2.00"),
        posted_at: now,
    };
    ledger::post_refund_settled(&mut tx, &settled).await?;
    let fee = ledger::FeeEvent {
        tenant_id: tenant,
        provider_id: "sim-pay",
        import_id: "imp-1",
        line: 2,
        transaction_id: Some("tx-1"),
        amount: dec("0.25"),
        posted_at: now,
    };
    let fee_posting = ledger::post_provider_fee(&mut tx, &fee).await?;
    let payout = ledger::PayoutEvent {
        tenant_id: tenant,
        provider_id: "sim-pay",
        payout_reference: "PO-2026-11-30",
        amount: dec("9.75"),
        posted_at: now,
    };
    ledger::post_payout(&mut tx, &payout).await?;
    tx.commit().await?;

    let balance = |account: Account| {
        let db = db.clone();
        async move { ledger::balance(&db, tenant, &account).await }
    };
    assert_eq!(balance(Account::ProviderReceivable("sim-pay".into())).await?, dec("0.00"));
    assert_eq!(balance(Account::FeeRevenue).await?, dec("-10.00"));
    assert_eq!(balance(Account::RefundsPayable).await?, dec("0.00"));
    assert_eq!(balance(Account::ProviderFees).await?, dec("0.25"));
    assert_eq!(balance(Account::Bank).await?, dec("9.75"));
    assert_eq!(ledger::tenant_total(&db, tenant).await?, Decimal::ZERO);

    // A wrong fee is corrected by reversal, once; the original stays as it was.
    let mut tx = db.begin_write().await?;
    let reversal = ledger::post_reversal(&mut tx, fee_posting.journal_id(), "fee booked twice", now).await?;
    assert!(matches!(reversal, Posting::Posted { .. }));
    let again = ledger::post_reversal(&mut tx, fee_posting.journal_id(), "again", now).await?;
    assert_eq!(again, Posting::AlreadyPosted { journal_id: reversal.journal_id() });
    assert!(matches!(ledger::post_reversal(&mut tx, 999_999, "none", now).await, Err(LedgerError::UnknownJournal(_))));
    tx.commit().await?;
    assert_eq!(balance(Account::ProviderFees).await?, Decimal::ZERO);
    assert_eq!(balance(Account::ProviderReceivable("sim-pay".into())).await?, dec("0.25"), "owed again");
    let check = ledger::check_tenant(&db, tenant).await?;
    assert_eq!((check.journals, check.unbalanced.len()), (6, 0), "{check:?}");
    let transaction = ledger::check_transaction(&db, "tx-1").await?;
    assert_eq!((transaction.paid, transaction.refunded), (dec("12.00"), dec("2.00")));
    assert!(transaction.consistent(), "{transaction:?}");
    app.stop().await
}
backend_test!(refund_fee_payout_and_reversal_post_balanced_journals);

pub async fn a_journal_that_does_not_balance_is_refused_whole(ctx: TestContext) -> TestResult {
    let app = quiet_app(&ctx).await;
    let journal = |key: &str, entries: Vec<ledger::Entry>| ledger::NewJournal {
        tenant_id: "09162000".into(),
        key: key.into(),
        kind: ledger::JournalKind::Payout,
        transaction_id: None,
        refund_id: None,
        amount: dec("5.00"),
        description: None,
        reverses: None,
        posted_at: 0,
        entries,
    };
    let mut tx = app.state.db.begin_write().await?;
    let lopsided = journal(
        "payout:x",
        vec![ledger::Entry::debit(Account::Bank, dec("5.00")), ledger::Entry::credit(Account::FeeRevenue, dec("4.99"))],
    );
    assert!(matches!(ledger::post(&mut tx, &lopsided).await, Err(LedgerError::Unbalanced { .. })));
    let single = journal("payout:y", vec![ledger::Entry::debit(Account::Bank, dec("0"))]);
    assert!(matches!(ledger::post(&mut tx, &single).await, Err(LedgerError::TooFewEntries { .. })));
    tx.commit().await?;
    assert_eq!(app.state.db.ledger_last_journal_id().await?, 0, "nothing was written");
    app.stop().await
}
backend_test!(a_journal_that_does_not_balance_is_refused_whole);

pub async fn the_database_refuses_to_change_or_delete_ledger_rows(ctx: TestContext) -> TestResult {
    let app = quiet_app(&ctx).await;
    let signals = signals(&app);
    signals.create(&payment_row(&app, "09162000", "tx-fixed", dec("1.00"), "{}")).await?;
    signals.record("tx-fixed", Status::Payed, Source::Provider, None).await?;
    let pool = any_pool(&ctx.database_url).await?;
    for statement in [
        "UPDATE ledger_journals SET amount = '100.00'",
        "DELETE FROM ledger_journals",
        "UPDATE ledger_entries SET amount = '0'",
        "DELETE FROM ledger_entries",
    ] {
        let refused = sqlx::query(statement).execute(&pool).await;
        assert!(refused.is_err_and(|e| e.to_string().contains("append-only")), "{statement}");
    }
    assert!(ledger::check_transaction(&app.state.db, "tx-fixed").await?.consistent());
    app.stop().await
}
backend_test!(the_database_refuses_to_change_or_delete_ledger_rows);

const PAYMENTS: usize = 4;

#[derive(Debug, Clone)]
enum Op {
    Create(usize),
    Signal(usize, Status, Source),
    /// pforte's own expiry: FAILED with the timeout flag.
    Timeout(usize),
    Refund(usize, i64),
    /// The k-th refund made so far (modulo their number), posted again.
    RepeatRefund(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let status = prop_oneof![Just(Status::Payed), Just(Status::Canceled), Just(Status::Failed)];
    let source = prop_oneof![3 => Just(Source::Provider), 1 => Just(Source::Client), 1 => Just(Source::Timeout)];
    prop_oneof![
        2 => (0..PAYMENTS).prop_map(Op::Create),
        5 => (0..PAYMENTS, status, source).prop_map(|(p, s, src)| Op::Signal(p, s, src)),
        1 => (0..PAYMENTS).prop_map(Op::Timeout),
        2 => (0..PAYMENTS, 1i64..3000).prop_map(|(p, cents)| Op::Refund(p, cents)),
        1 => (0usize..8).prop_map(Op::RepeatRefund),
    ]
}

/// Random sequences of creates, PAYED/CANCELED/FAILED signals (duplicated, out of order, for payments
/// not created yet), timeouts followed by late PAYED, and refunds; after each sequence the ledger
/// balances and matches the payments. Each case books under a tenant of its own.
pub async fn random_payment_sequences_keep_the_ledger_balanced_and_matching(ctx: TestContext) -> TestResult {
    let app = quiet_app(&ctx).await;
    let handle = tokio::runtime::Handle::current();
    let cases = Arc::new(AtomicUsize::new(0));
    let (app_ref, counter) = (Arc::new(app), cases.clone());
    let shared = app_ref.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let config = Config { cases: 24, failure_persistence: None, ..Config::default() };
        let strategy = (prop::collection::vec(1i64..20_000, PAYMENTS), prop::collection::vec(op(), 1..40));
        TestRunner::new(config).run(&strategy, |(amounts, ops)| {
            let case = counter.fetch_add(1, Ordering::SeqCst);
            handle.block_on(run_case(&shared, case, &amounts, &ops)).map_err(|e| TestCaseError::fail(format!("{e:#}")))
        })
    })
    .await?;
    outcome.map_err(|e| anyhow::anyhow!("{e}"))?;
    assert!(cases.load(Ordering::SeqCst) >= 24);
    Arc::into_inner(app_ref).expect("the runner is done").stop().await
}
backend_test!(random_payment_sequences_keep_the_ledger_balanced_and_matching);

async fn run_case(app: &TestApp, case: usize, amounts: &[i64], ops: &[Op]) -> anyhow::Result<()> {
    let db = &app.state.db;
    let signals = signals(app);
    let tenant = format!("case-{case}");
    let id = |p: usize| format!("c{case}-p{p}");
    let amount = |p: usize| Decimal::new(amounts[p], 2);
    let mut refunded = [Decimal::ZERO; PAYMENTS];
    let mut refunds: Vec<(String, usize, Decimal)> = Vec::new();
    for op in ops {
        match op {
            Op::Create(p) => {
                // A second create of the same payment is refused; that is part of the sequence.
                let _ = signals.create(&payment_row(app, &tenant, &id(*p), amount(*p), "{}")).await;
            }
            Op::Signal(p, status, source) => {
                signals.record(&id(*p), *status, *source, None).await?;
            }
            Op::Timeout(p) => {
                signals.record(&id(*p), Status::Failed, Source::Timeout, Some("timeout")).await?;
            }
            Op::Refund(p, cents) => {
                let refund_id = format!("c{case}-r{}", refunds.len());
                let value = Decimal::new(*cents, 2);
                let paid = db.payment(&id(*p)).await?.is_some_and(|row| paid(&row));
                let result = refund(app, &tenant, &id(*p), &refund_id, value).await;
                match result {
                    Ok(Posting::Posted { .. }) => {
                        ensure!(paid && value <= amount(*p) - refunded[*p], "refund {value} accepted on {}", id(*p));
                        refunded[*p] += value;
                        refunds.push((refund_id, *p, value));
                    }
                    Err(LedgerError::NotPaid { .. }) => ensure!(!paid, "refund refused on paid {}", id(*p)),
                    Err(LedgerError::RefundExceedsPaid { .. }) => {
                        ensure!(!paid || value > amount(*p) - refunded[*p], "refund {value} refused on {}", id(*p))
                    }
                    other => anyhow::bail!("unexpected refund outcome {other:?}"),
                }
            }
            Op::RepeatRefund(k) => {
                if !refunds.is_empty() {
                    let (refund_id, p, value) = refunds[k % refunds.len()].clone();
                    let again = refund(app, &tenant, &id(p), &refund_id, value).await?;
                    ensure!(matches!(again, Posting::AlreadyPosted { .. }), "refund {refund_id} posted twice");
                }
            }
        }
    }

    let check = ledger::check_tenant(db, &tenant).await?;
    ensure!(check.unbalanced.is_empty(), "unbalanced journals: {:?}", check.unbalanced);
    ensure!(ledger::tenant_total(db, &tenant).await?.is_zero(), "the tenant's entries do not sum to 0");
    let mut paid_total = Decimal::ZERO;
    for (p, refunded) in refunded.iter().enumerate() {
        let is_paid = db.payment(&id(p)).await?.is_some_and(|row| paid(&row));
        if is_paid {
            paid_total += amount(p);
        }
        let transaction = ledger::check_transaction(db, &id(p)).await?;
        ensure!(transaction.paid_journals == u64::from(is_paid), "{}: {transaction:?}", id(p));
        ensure!(transaction.consistent(), "{}: {transaction:?}", id(p));
        ensure!(transaction.refunded == *refunded, "{}: refunded {:?}", id(p), transaction.refunded);
    }
    let refunded_total: Decimal = refunded.iter().sum();
    let revenue = ledger::balance(db, &tenant, &Account::FeeRevenue).await?;
    ensure!(
        -revenue == paid_total - refunded_total,
        "fee_revenue {revenue}, paid {paid_total}, refunded {refunded_total}"
    );
    let receivable = ledger::balance(db, &tenant, &Account::ProviderReceivable("sim-pay".into())).await?;
    ensure!(receivable == paid_total, "provider_receivable {receivable}, paid {paid_total}");
    Ok(())
}

fn paid(row: &PaymentRow) -> bool {
    row.status == Status::Payed || row.paid_after_timeout_at.is_some()
}

async fn refund(
    app: &TestApp,
    tenant: &str,
    transaction_id: &str,
    refund_id: &str,
    amount: Decimal,
) -> Result<Posting, LedgerError> {
    let mut tx = app.state.db.begin_write().await?;
    let event = ledger::RefundEvent {
        tenant_id: tenant,
        transaction_id,
        refund_id,
        amount,
        posted_at: app.state.clock.now_millis(),
    };
    let posting = ledger::post_refund(&mut tx, &event).await?;
    tx.commit().await.map_err(pforte::store::StorageError::from)?;
    Ok(posting)
}

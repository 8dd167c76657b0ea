//! The finance issue's scenario on both databases: fees paid through the payment API and the
//! simulator, a settlement report and a camt.053 statement with one deliberate discrepancy of every
//! kind, and a reconciliation that names each of them and nothing else.

use chrono::Days;
use serde_json::Value;

use crate::helpers::{eventually, output_text, TestApp, TestContext, TestResult};
use crate::payment_api::{bearer, location};
use crate::reconciliation::{
    berlin_today, camt, import_bank, import_settlement, pay_through_simulator, run, settlement_booked_on, write,
    MUENCHEN_IBAN,
};
use pforte::clock::ManualClock;
use pforte::finance::ledger::{self, Account};
use pforte::store::refunds::{self, RefundRow};
use rust_decimal::Decimal;

/// A fee of 12.00 to München, created but not paid; returns its id and the simulator's pay page.
async fn open_payment(app: &TestApp, token: &str, request_id: &str) -> anyhow::Result<(String, String)> {
    let body: Value = serde_json::from_str(&format!(
        r#"{{"requestId": "{request_id}", "requestTimestamp": "2026-11-29T10:00:00+01:00", "currency": "EUR",
            "grosAmount": 12.00, "purpose": "Gebuehr", "redirectUrl": "{}",
            "items": [{{"id": "1", "quantity": 1, "singleNetAmount": 12.00, "totalNetAmount": 12.00}}]}}"#,
        app.url("/demo/bezahlt")
    ))?;
    let url = app.url("/paymenttransaction/demo-service/09162000");
    let created: Value = app.client.post(url).bearer_auth(token).json(&body).send().await?.json().await?;
    let id = created["paymentInformation"]["transactionId"].as_str().unwrap_or_default().to_owned();
    let pay_page = location(&app.client.get(app.url(&format!("/pay/{id}"))).send().await?);
    Ok((id, pay_page))
}

async fn provider_reference(app: &TestApp, id: &str) -> anyhow::Result<String> {
    Ok(app.state.db.payment(id).await?.and_then(|p| p.provider_reference).unwrap_or_default())
}

pub async fn every_kind_of_discrepancy_is_named_and_nothing_else(ctx: TestContext) -> TestResult {
    let clock = ManualClock::at_millis(chrono::Utc::now().timestamp_millis());
    let app = ctx.spawn_app_with_clock(clock.clone()).await;
    let token = bearer(&app).await?;
    let ok = pay_through_simulator(&app, &token, "SC-OK").await?;
    let short = pay_through_simulator(&app, &token, "SC-SHORT").await?;
    let missing = pay_through_simulator(&app, &token, "SC-MISSING").await?;
    let twice = pay_through_simulator(&app, &token, "SC-TWICE").await?;
    let refunded = pay_through_simulator(&app, &token, "SC-REFUND").await?;
    let unpaid_out = pay_through_simulator(&app, &token, "SC-PO78").await?;
    // pforte gave up on this one (its expiry passed), then the citizen paid on the still open pay page.
    let (late, pay_page) = open_payment(&app, &token, "SC-LATE").await?;
    let lifetime: i64 = ctx.figment().extract_inner("payments.lifetime_secs")?;
    clock.advance_secs(lifetime + 60);
    let token = bearer(&app).await?;
    let read_path = format!("/paymenttransaction/demo-service/09162000/{late}");
    eventually(std::time::Duration::from_secs(30), "the late payment timed out", || async {
        let read: Value = app.client.get(app.url(&read_path)).bearer_auth(&token).send().await?.json().await?;
        Ok((read["paymentInformation"]["status"] == "FAILED").then_some(()))
    })
    .await?;
    app.client.post(&pay_page).form(&[("method", "GIROPAY"), ("action", "pay")]).send().await?;
    app.client.get(app.url(&format!("/pay/{late}/return"))).send().await?;
    assert!(app.state.db.payment(&late).await?.and_then(|p| p.paid_after_timeout_at).is_some());
    // A refund of 2.00 through the API: XBezahldienste has no refund, so it is an instruction for the
    // finance office's own transfer, which no provider settlement is expected to show.
    let refund = app
        .client
        .post(app.url(&format!("/paymenttransaction/demo-service/09162000/{refunded}/refunds")))
        .bearer_auth(&token)
        .body(r#"{"amount": 2.00}"#)
        .send()
        .await?;
    assert_eq!(refund.status(), 201);
    assert_eq!(refund.json::<Value>().await?["status"], "INSTRUCTION");
    // A refund of 3.00 a provider accepted (SUBMITTED). No shipped adapter refunds, so it is planted
    // through the storage layer the refund module writes with; the settlement never pays it back.
    let now = chrono::Utc::now().timestamp_millis();
    let submitted = RefundRow {
        refund_id: "rf_scenario_submitted".into(),
        transaction_id: ok.clone(),
        amount: rust_decimal::Decimal::new(300, 2),
        reason: None,
        status: pforte::model::RefundStatus::Submitted,
        status_detail: None,
        provider_reference: Some("PROVIDER-RF-1".into()),
        created_at: now,
        updated_at: now,
    };
    let mut tx = app.state.db.begin_write().await?;
    refunds::insert(&mut tx, &submitted).await?;
    tx.commit().await?;
    let mut references = std::collections::HashMap::new();
    for id in [&ok, &short, &twice, &refunded, &unpaid_out, &late] {
        references.insert(id.clone(), provider_reference(&app, id).await?);
    }
    app.stop().await?;

    let reference = |id: &String| references[id].as_str();
    // Booked today, so the rows fall into the period reconciled below whatever the date of the run.
    let today = chrono::NaiveDate::parse_from_str(&berlin_today(), "%Y-%m-%d")?;
    let report = settlement_booked_on(
        &today.format("%d.%m.%Y").to_string(),
        &[
            (reference(&ok), "Zahlung", "12,00", "0,30", "PO-77"),
            (reference(&short), "Zahlung", "11,00", "0,30", "PO-77"),
            (reference(&twice), "Zahlung", "12,00", "0,30", "PO-77"),
            (reference(&twice), "Zahlung", "12,00", "0,30", "PO-77"),
            (reference(&refunded), "Zahlung", "12,00", "0,30", "PO-77"),
            (reference(&late), "Zahlung", "12,00", "0,30", "PO-77"),
            ("SIM-UNKNOWN", "Zahlung", "4,00", "0,10", "PO-77"),
            (reference(&unpaid_out), "Zahlung", "12,00", "0,30", "PO-78"),
        ],
    );
    let imported = import_settlement(&ctx, &write(&ctx, "abrechnung.csv", &report)?, &[])?;
    assert!(imported.status.success(), "{}", output_text(&imported));
    // PO-77 nets 75.00 - 1.90 = 73.10 and arrives exactly; PO-78 never arrives; a transfer nobody
    // can place arrives as well.
    let statement =
        camt(MUENCHEN_IBAN, &[("B-1", "73.10", "SAMMELAUSZAHLUNG PO-77"), ("B-2", "50.00", "UEBERWEISUNG OHNE BEZUG")]);
    let imported = import_bank(&ctx, "09162000", &write(&ctx, "auszug.xml", &statement)?)?;
    assert!(imported.status.success(), "{}", output_text(&imported));

    let from = today.checked_sub_days(Days::new(1)).unwrap_or(today).to_string();
    let to = today.checked_add_days(Days::new(1)).unwrap_or(today).to_string();
    let output = run(&ctx, &["finance", "reconcile", "--tenant", "09162000", "--from", &from, "--to", &to], &[])?;
    assert!(output.status.success(), "{}", output_text(&output));
    let report: Value = serde_json::from_slice(&output.stdout)?;
    let mut found: Vec<(String, String)> = report["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| (f["category"].as_str().unwrap_or("").to_owned(), f["subject"].as_str().unwrap_or("").to_owned()))
        .collect();
    found.sort();
    let mut expected: Vec<(String, String)> = [
        ("matched", ok.as_str()),
        ("matched", refunded.as_str()),
        ("matched", unpaid_out.as_str()),
        ("amount_mismatch", short.as_str()),
        ("missing_in_settlement", missing.as_str()),
        ("duplicate_settlement", twice.as_str()),
        ("unknown_to_pforte", "SIM-UNKNOWN"),
        ("paid_after_timeout", late.as_str()),
        ("refund_not_settled", ok.as_str()),
        ("matched", twice.as_str()),
        ("matched", late.as_str()),
        ("matched", "PO-77"),
        ("payout_without_bank_entry", "PO-78"),
        ("bank_entry_without_payout", "B-2"),
    ]
    .iter()
    .map(|(c, s)| (c.to_string(), s.to_string()))
    .collect();
    expected.sort();
    assert_eq!(found, expected, "{report:#}");

    // The imports booked what moved money: the fees the provider kept on pforte's seven paid rows
    // (the unknown row books nothing) and the payout that reached the bank; the journal balances.
    let app = ctx.spawn_app().await;
    let balance = |account| ledger::balance(&app.state.db, "09162000", account);
    assert_eq!(balance(&Account::ProviderFees).await?, Decimal::new(210, 2));
    assert_eq!(balance(&Account::Bank).await?, Decimal::new(7310, 2));
    assert_eq!(ledger::tenant_total(&app.state.db, "09162000").await?, Decimal::ZERO);
    app.stop().await
}
backend_test!(every_kind_of_discrepancy_is_named_and_nothing_else);

//! ISO 20022 files checked against the official schemas (tests/fixtures/iso20022, its README names
//! the source) with `xmllint --schema`, as banking and ERP software checks them: every camt.054
//! booking export variant is valid camt.054.001.08, and a field over its schema length fails the check;
//! a bank statement as a German bank sends it, valid under its schema, is imported and reconciled.

use std::io::Write;
use std::process::{Command, Stdio};

use anyhow::Context;
use chrono::Utc;
use pforte::finance::ledger;
use rust_decimal::Decimal;

use crate::bookings::{around_today, two_fees};
use crate::finance::{finance_token, get_bookings};
use crate::helpers::{output_text, TestApp, TestContext, TestResult};
use crate::ledger::{payment_row, quiet_app};
use crate::reconciliation::{berlin_today, import_bank, pay_through_simulator, run, write};

/// What `xmllint` says is wrong with `xml` under `tests/fixtures/iso20022/<schema>.xsd`; `None` when
/// it is valid. xmllint is Debian's libxml2-utils (.ci/run installs it).
pub(crate) fn schema_errors(xml: &[u8], schema: &str) -> anyhow::Result<Option<String>> {
    let path = format!("{}/tests/fixtures/iso20022/{schema}.xsd", env!("CARGO_MANIFEST_DIR"));
    anyhow::ensure!(std::path::Path::new(&path).is_file(), "no schema {path}");
    let mut child = Command::new("xmllint")
        .args(["--noout", "--nonet", "--schema", &path, "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("xmllint (Debian package libxml2-utils) must be installed")?;
    let mut stdin = child.stdin.take().context("xmllint's stdin")?;
    let input = xml.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output()?;
    writer.join().map_err(|_| anyhow::anyhow!("writing to xmllint panicked"))??;
    let said = String::from_utf8_lossy(&output.stderr).into_owned();
    Ok(if output.status.success() { None } else { Some(said) })
}

/// The text of every `<name>` element, in order.
fn texts_of(xml: &str, name: &str) -> Vec<String> {
    let (open, close) = (format!("<{name}>"), format!("</{name}>"));
    xml.split(&open).skip(1).filter_map(|rest| rest.split_once(&close).map(|(text, _)| text.to_owned())).collect()
}

async fn camt054(app: &TestApp, token: &str, period: &str) -> anyhow::Result<String> {
    let response = get_bookings(app, Some(token), "09162000", &format!("{period}&format=camt054")).await;
    anyhow::ensure!(response.status() == 200, "the export answered {}", response.status());
    Ok(response.text().await?)
}

/// A paid booking written straight to the store with what no payment API request can carry but a
/// provider can report: a Kassenzeichen of 200 characters with a control character in it.
async fn odd_booking(app: &TestApp) -> anyhow::Result<String> {
    let id = pforte::crypto::random_token();
    let request = serde_json::json!({ "purpose": "Gebuehr", "items": [{ "bookingData": {} }] }).to_string();
    let mut row = payment_row(app, "09162000", &id, Decimal::new(1, 3), &request);
    row.transaction_reference = Some(format!("KZ\u{1}{}", "7".repeat(198)));
    let mut tx = app.state.db.begin_write().await?;
    pforte::store::payments::insert(&mut tx, &row).await?;
    let event = ledger::PaidEvent {
        tenant_id: "09162000",
        transaction_id: &id,
        provider_id: "sim-pay",
        amount: Decimal::new(1, 3),
        posted_at: Utc::now().timestamp_millis(),
    };
    ledger::post_paid(&mut tx, &event).await?;
    tx.commit().await?;
    Ok(id)
}

/// Payments, a refund, a reversal, a booking with odd provider data, and a period without bookings.
pub async fn every_camt054_export_variant_is_valid_camt_054_001_08(ctx: TestContext) -> TestResult {
    let app = quiet_app(&ctx).await;
    let (first, second, _) = two_fees(&app).await?;
    let refund_journal = app.state.db.ledger_journals_of_transaction(&second).await?[1].id;
    let mut tx = app.state.db.begin_write().await?;
    ledger::post_reversal(&mut tx, refund_journal, "refunded in error", Utc::now().timestamp_millis()).await?;
    tx.commit().await?;
    let odd = odd_booking(&app).await?;
    let token = finance_token(&ctx, "09162000")?;

    let xml = camt054(&app, &token, &around_today()).await?;
    assert_eq!(schema_errors(xml.as_bytes(), "camt.054.001.08")?, None, "{xml}");
    assert!(first.len() > 35, "pforte's ids are longer than an EndToEndId may be");
    // The end-to-end reference is the id's first 35 characters; the whole id follows in AddtlTxInf.
    let short = |id: &str| id.chars().take(35).collect::<String>();
    let expected = [short(&first), short(&second), short(&second), short(&second), short(&odd)];
    assert_eq!(texts_of(&xml, "EndToEndId"), expected);
    assert_eq!(texts_of(&xml, "AddtlTxInf"), [first.as_str(), &second, &second, &second, &odd]);
    let remittance = texts_of(&xml, "Ustrd");
    assert_eq!(remittance.last().map(|r| r.chars().count()), Some(140), "cut to Max140Text");
    assert!(remittance.last().is_some_and(|r| r.starts_with("KZ 777")), "control character replaced: {remittance:?}");

    let empty = camt054(&app, &token, "from=2020-01-01&to=2020-01-31").await?;
    assert_eq!(schema_errors(empty.as_bytes(), "camt.054.001.08")?, None, "{empty}");
    assert!(texts_of(&empty, "EndToEndId").is_empty());
    app.stop().await
}
backend_test!(every_camt054_export_variant_is_valid_camt_054_001_08);

/// The check can fail: one field a character over its schema length (EndToEndId is Max35Text), or an
/// element the schema does not know where it stands, is refused.
pub async fn a_field_over_its_schema_length_fails_the_schema_check(ctx: TestContext) -> TestResult {
    let app = quiet_app(&ctx).await;
    let (first, _, _) = two_fees(&app).await?;
    let token = finance_token(&ctx, "09162000")?;
    let xml = camt054(&app, &token, &around_today()).await?;
    assert_eq!(schema_errors(xml.as_bytes(), "camt.054.001.08")?, None, "{xml}");
    let short: String = first.chars().take(35).collect();
    let too_long = xml.replacen(
        &format!("<EndToEndId>{short}</EndToEndId>"),
        "<EndToEndId>123456789012345678901234567890123456</EndToEndId>",
        1,
    );
    assert_ne!(too_long, xml);
    let said = schema_errors(too_long.as_bytes(), "camt.054.001.08")?.unwrap_or_default();
    assert!(said.contains("EndToEndId") && said.contains("length"), "{said}");
    let misplaced = xml.replacen("<CdtDbtInd>", "<Unknown>x</Unknown><CdtDbtInd>", 1);
    let said = schema_errors(misplaced.as_bytes(), "camt.054.001.08")?.unwrap_or_default();
    assert!(said.contains("Unknown"), "{said}");
    app.stop().await
}
backend_test!(a_field_over_its_schema_length_fails_the_schema_check);

/// Two citizens' fees reach the authority's account in one batch credit (Sammelgutschrift), each
/// transfer with its Kassenzeichen: the statement (tests/fixtures/camt/camt.053.001.08.xml with this
/// run's dates, amounts and Kassenzeichen, still valid under the official schema) is imported with the
/// CLI, and reconciliation matches each fee with its own transfer.
pub async fn each_kassenzeichen_of_a_batch_credit_matches_its_own_fee(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let token = crate::payment_api::bearer(&app).await?;
    let mut fees = Vec::new();
    for request_id in ["BATCH-1", "BATCH-2"] {
        let id = pay_through_simulator(&app, &token, request_id).await?;
        let kassenzeichen = app.state.db.payment(&id).await?.and_then(|p| p.transaction_reference);
        fees.push((id, kassenzeichen.expect("the simulator reports a Kassenzeichen")));
    }
    app.stop().await?;

    let today = chrono::NaiveDate::parse_from_str(&berlin_today(), "%Y-%m-%d")?;
    let yesterday = today.pred_opt().unwrap_or(today);
    let fixture =
        std::fs::read_to_string(format!("{}/tests/fixtures/camt/camt.053.001.08.xml", env!("CARGO_MANIFEST_DIR")))?;
    let statement = fixture
        .replace("2026-11-30", &today.to_string())
        .replace("2026-11-29", &yesterday.to_string())
        .replace(">45.00<", ">24.00<")
        .replace(">25.00<", ">12.00<")
        .replace(">20.00<", ">12.00<")
        .replace("KZ 2026-000101", &fees[0].1)
        .replace("Kassenzeichen 2026-000102", &format!("Kassenzeichen {}", fees[1].1));
    assert_eq!(schema_errors(statement.as_bytes(), "camt.053.001.08")?, None);
    let imported = import_bank(&ctx, "09162000", &write(&ctx, "auszug.xml", &statement)?)?;
    assert!(imported.status.success(), "{}", output_text(&imported));
    assert!(
        output_text(&imported).contains(": 4 row(s)"),
        "the batch counts as its two transfers: {}",
        output_text(&imported)
    );

    let (from, to) = (yesterday.to_string(), today.succ_opt().unwrap_or(today).to_string());
    let output = run(&ctx, &["finance", "reconcile", "--tenant", "09162000", "--from", &from, "--to", &to], &[])?;
    let report: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let findings = report["findings"].as_array().cloned().unwrap_or_default();
    for (id, kassenzeichen) in &fees {
        let finding = findings.iter().find(|f| f["subject"] == id.as_str()).cloned().unwrap_or_default();
        assert_eq!(finding["category"], "matched", "{report:#}");
        assert_eq!(finding["bank"]["amount"], "12.00");
        assert!(finding["bank"]["remittance"].as_str().is_some_and(|r| r.contains(kassenzeichen.as_str())));
    }
    assert_eq!(report["totals"]["bank"], "92.20", "73.10 + 12.00 + 12.00 − 4.90: {report:#}");
    Ok(())
}
backend_test!(each_kassenzeichen_of_a_batch_credit_matches_its_own_fee);

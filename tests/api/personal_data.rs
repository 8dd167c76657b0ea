//! Personal data in payments (SECURITY.md #24): the payer (`requestor`) and the free text
//! `description` are stored encrypted under the master key, echoed to the online service while
//! kept, and purged after the tenant's retention period; the books stay as they were.

use std::sync::Arc;

use pforte::clock::{Clock, ManualClock};
use pforte::payment::retention::{Retention, RetentionRound};
use serde_json::{json, Value};

use crate::bookings::around_today;
use crate::finance::{finance_token, get_bookings};
use crate::helpers::{copy_dir, output_text, pforte_command, TestApp, TestContext, TestResult, MANIFEST_DIR};
use crate::keys::any_pool;
use crate::payment_api::{bearer, body, create, location};

const NAME: &str = "Mustermann-Privat";
const STREET: &str = "Geheimweg 17";
const DESCRIPTION: &str = "Fuehrungszeugnis fuer Erika Mustermann-Privat";

fn with_requestor(app: &TestApp, request_id: &str) -> Value {
    let mut request = body(app, request_id);
    request["description"] = json!(DESCRIPTION);
    request["requestor"] = json!({
        "name": NAME, "firstName": "Erika", "gender": "f", "isOrganization": false,
        "address": { "street": STREET, "postalCode": "80331", "city": "München" }
    });
    request
}

/// Every text column of the payment's row and of the Idempotency-Key rows, as the database holds them.
async fn raw_text(ctx: &TestContext, transaction_id: &str) -> anyhow::Result<String> {
    let pool = any_pool(&ctx.database_url).await?;
    let row: (String, Option<String>) =
        sqlx::query_as("SELECT request, effective_request FROM payments WHERE transaction_id = $1")
            .bind(transaction_id)
            .fetch_one(&pool)
            .await?;
    let answers: Vec<(Option<String>,)> =
        sqlx::query_as("SELECT response_body FROM idempotency_keys").fetch_all(&pool).await?;
    let answers: Vec<String> = answers.into_iter().filter_map(|a| a.0).collect();
    pool.close().await;
    Ok(format!("{}\n{}\n{}", row.0, row.1.unwrap_or_default(), answers.join("\n")))
}

fn assert_no_personal_text(text: &str) {
    for secret in [NAME, STREET, DESCRIPTION, "Erika"] {
        assert!(!text.contains(secret), "`{secret}` is stored in plain text: {text}");
    }
}

fn transaction_id(transaction: &Value) -> String {
    transaction["paymentInformation"]["transactionId"].as_str().unwrap_or_default().to_owned()
}

async fn get_payment(app: &TestApp, token: &str, transaction_id: &str) -> anyhow::Result<Value> {
    let url = app.url(&format!("/paymenttransaction/demo-service/09162000/{transaction_id}"));
    let response = app.client.get(url).bearer_auth(token).send().await?;
    anyhow::ensure!(response.status() == 200, "GET answered {}", response.status());
    Ok(response.json().await?)
}

/// The raw rows hold no name, address or description; POST, its replay and GET still echo them.
pub async fn the_payer_is_stored_encrypted_and_still_echoed_to_the_service(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let token = bearer(&app).await?;
    let request = with_requestor(&app, "PD-1");
    let created = create(&app, &token, "09162000", &request, Some("pd-key-1")).await?;
    assert_eq!(created.status(), 201);
    let first = created.text().await?;
    let transaction: Value = serde_json::from_str(&first)?;
    assert_eq!(transaction["paymentRequest"]["requestor"], request["requestor"], "POST echoes the payer");
    assert_eq!(transaction["paymentRequest"]["description"], DESCRIPTION);
    let id = transaction_id(&transaction);

    assert_no_personal_text(&raw_text(&ctx, &id).await?);

    let replayed = create(&app, &token, "09162000", &request, Some("pd-key-1")).await?;
    assert_eq!(replayed.status(), 201);
    assert_eq!(replayed.text().await?, first, "the replay is the first answer, byte for byte");

    let read = get_payment(&app, &token, &id).await?;
    assert_eq!(read["paymentRequest"], transaction["paymentRequest"], "GET echoes the request as sent");
    app.stop().await
}
backend_test!(the_payer_is_stored_encrypted_and_still_echoed_to_the_service);

/// A tenant file with `personal_data_retention_days = value`, checked by `pforte check`.
fn check_with_retention(value: &str) -> anyhow::Result<(Option<i32>, String)> {
    let dir = tempfile::tempdir()?;
    copy_dir(&std::path::Path::new(MANIFEST_DIR).join("config/tenants"), &dir.path().join("tenants"))?;
    let file = dir.path().join("tenants/09162000.toml");
    let text = std::fs::read_to_string(&file)?;
    let changed =
        text.replacen("\n[payment]\n", &format!("\npersonal_data_retention_days = {value}\n\n[payment]\n"), 1);
    anyhow::ensure!(changed != text, "the tenant file has a [payment] table");
    std::fs::write(&file, changed)?;
    let output = pforte_command().arg("check").env("PFORTE__REGISTRY__TENANTS", dir.path().join("tenants")).output()?;
    Ok((output.status.code(), output_text(&output)))
}

/// A retention period outside 1 to 3650 days, or not a whole number, is refused with the key and why.
pub async fn a_bad_retention_period_is_refused_by_check() -> TestResult {
    for bad in ["0", "-5", "3651", "\"90\"", "1.5"] {
        let (code, text) = check_with_retention(bad)?;
        assert_eq!(code, Some(2), "{bad}: {text}");
        assert!(text.contains("09162000.toml") && text.contains("personal_data_retention_days"), "{bad}: {text}");
    }
    let (_, text) = check_with_retention("0")?;
    assert!(text.contains("between 1 and 3650"), "{text}");
    let (code, text) = check_with_retention("30")?;
    assert_eq!(code, Some(0), "a valid period is accepted: {text}");
    Ok(())
}
plain_test!(a_bad_retention_period_is_refused_by_check);

fn retention(app: &TestApp) -> Retention {
    let state = &app.state;
    Retention::new(
        state.db.clone(),
        state.registry.clone(),
        state.keys.master(),
        state.audit.clone(),
        state.clock.clone(),
    )
}

/// An app on a clock the test moves, without the background workers that would race the test's rounds.
async fn app_on(ctx: &TestContext, clock: &ManualClock) -> TestApp {
    ctx.spawn_app_with(
        |f| {
            f.merge(("workers.payment_status", false))
                .merge(("workers.notifications", false))
                .merge(("workers.personal_data", false))
        },
        Arc::new(clock.clone()),
    )
    .await
}

/// Pays a payment on the simulator's pay page, as the citizen does.
async fn pay(app: &TestApp, transaction_id: &str) -> TestResult {
    let pay_page = location(&app.client.get(app.url(&format!("/pay/{transaction_id}"))).send().await?);
    let paid = app.client.post(&pay_page).form(&[("method", "CREDITCARD"), ("action", "pay")]).send().await?;
    app.client.get(location(&paid)).send().await?;
    anyhow::ensure!(app.state.db.payment(transaction_id).await?.map(|p| p.status.as_str()) == Some("PAYED"));
    Ok(())
}

/// After the tenant's retention period (default 90 days) the worker purges the personal data of
/// finished payments, once; GET then answers without `requestor` and `description`; the open payment
/// keeps its data; the books and the booking export are as before.
pub async fn personal_data_is_purged_after_the_retention_period_and_the_books_stay(ctx: TestContext) -> TestResult {
    let clock = ManualClock::at_millis(chrono::Utc::now().timestamp_millis());
    let app = app_on(&ctx, &clock).await;
    let token = bearer(&app).await?;
    let paid =
        transaction_id(&create(&app, &token, "09162000", &with_requestor(&app, "PD-P"), None).await?.json().await?);
    pay(&app, &paid).await?;
    let open =
        transaction_id(&create(&app, &token, "09162000", &with_requestor(&app, "PD-O"), None).await?.json().await?);
    let before = get_payment(&app, &token, &paid).await?;
    let worker = retention(&app);

    assert_eq!(worker.run_once().await?, RetentionRound::default(), "nothing is due yet");
    clock.advance_secs(89 * 24 * 3600);
    assert_eq!(worker.run_once().await?.purged, 0, "89 days are within the default 90");
    clock.advance_secs(24 * 3600 + 60);
    assert_eq!(worker.run_once().await?, RetentionRound { sealed: 0, purged: 1 });
    assert_eq!(worker.run_once().await?.purged, 0, "a second round purges nothing twice");

    let token = bearer(&app).await?; // the first one expired with the moved clock
    let after = get_payment(&app, &token, &paid).await?;
    let mut expected = before.clone();
    for field in ["requestor", "description"] {
        expected["paymentRequest"].as_object_mut().map(|r| r.remove(field));
    }
    assert_eq!(after, expected, "the payment without its personal data, everything else as before");
    assert_eq!(after["paymentInformation"]["status"], "PAYED");
    assert_eq!(get_payment(&app, &token, &open).await?["paymentRequest"]["requestor"]["name"], NAME, "still open");

    let pool = any_pool(&ctx.database_url).await?;
    let (sealed, purged_at): (Option<String>, Option<i64>) =
        sqlx::query_as("SELECT personal_data, personal_data_purged_at FROM payments WHERE transaction_id = $1")
            .bind(&paid)
            .fetch_one(&pool)
            .await?;
    pool.close().await;
    assert_eq!((sealed, purged_at), (None, Some(clock.now_millis())));
    let audit = crate::audit::chained_events(&app).await?;
    let purges: Vec<_> = audit.iter().filter(|e| e.event == "payment.personal_data_purged").collect();
    assert_eq!(purges.len(), 1, "one audit entry for the batch");
    assert_eq!(purges[0].subject, "09162000");
    let details: Value = serde_json::from_str(&purges[0].details)?;
    assert_eq!(details, json!({ "count": 1, "retention_days": 90 }), "a count, no names");

    // The ledger still holds the payment: the booking export lists it with its amount.
    let journals = app.state.db.ledger_journals_of_transaction(&paid).await?;
    assert_eq!(journals.len(), 1, "the payment's journal stays");
    let bookings = get_bookings(&app, Some(&finance_token(&ctx, "09162000")?), "09162000", &around_today()).await;
    assert_eq!(bookings.status(), 200);
    let csv = bookings.text().await?;
    let line = csv.lines().find(|l| l.contains(&paid)).unwrap_or_default().to_owned();
    assert!(line.contains(";12,00;EUR;") || line.contains(";12.00;EUR;"), "{csv}");
    assert!(!csv.contains(NAME), "{csv}");
    app.stop().await
}
backend_test!(personal_data_is_purged_after_the_retention_period_and_the_books_stay);

/// A payment stored by an earlier version, with the payer in `request` and `effective_request`: GET
/// still answers with it, the worker's round seals it (no plain name left), GET answers the same.
pub async fn payments_stored_in_plain_text_before_are_sealed_by_the_worker(ctx: TestContext) -> TestResult {
    let clock = ManualClock::at_millis(chrono::Utc::now().timestamp_millis());
    let app = app_on(&ctx, &clock).await;
    let token = bearer(&app).await?;
    let request = with_requestor(&app, "PD-OLD");
    let created: Value = create(&app, &token, "09162000", &request, None).await?.json().await?;
    let id = transaction_id(&created);
    // As an earlier version wrote it: personal data inside both copies, none apart.
    let pool = any_pool(&ctx.database_url).await?;
    let stored = app.state.db.payment(&id).await?.expect("the payment");
    let mut effective: Value = serde_json::from_str(&stored.effective_request)?;
    effective["requestor"] = request["requestor"].clone();
    effective["description"] = request["description"].clone();
    sqlx::query(
        "UPDATE payments SET request = $1, effective_request = $2, personal_data = NULL WHERE transaction_id = $3",
    )
    .bind(created["paymentRequest"].to_string())
    .bind(effective.to_string())
    .bind(&id)
    .execute(&pool)
    .await?;
    pool.close().await;
    assert!(raw_text(&ctx, &id).await?.contains(NAME), "the old row holds the name in plain text");
    let as_sent = get_payment(&app, &token, &id).await?;
    assert_eq!(as_sent["paymentRequest"], created["paymentRequest"], "an old row reads as before");

    assert_eq!(retention(&app).run_once().await?, RetentionRound { sealed: 1, purged: 0 });
    assert_no_personal_text(&raw_text(&ctx, &id).await?);
    assert_eq!(get_payment(&app, &token, &id).await?, as_sent, "GET answers the same after the sweep");
    assert_eq!(retention(&app).run_once().await?, RetentionRound::default(), "sealed once");
    app.stop().await
}
backend_test!(payments_stored_in_plain_text_before_are_sealed_by_the_worker);

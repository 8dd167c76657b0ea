//! Findings a clerk can act on: every finding about a payment names the provider's transaction
//! reference and the Kassenzeichen (the CLI's CSV and JSON, the finance page), and a settlement report
//! that names pforte's transaction ids (whole, or the 35-character end-to-end reference) instead of the
//! provider's own references settles those payments and books their fees.

use chrono::Days;
use pforte::finance::ledger::{self, Account};
use rust_decimal::Decimal;
use serde_json::Value;

use crate::finance::finance_token;
use crate::finance_staff::Clerk;
use crate::helpers::{output_text, TestContext, TestResult};
use crate::keys::any_pool;
use crate::reconciliation::{berlin_today, import_settlement, pay_through_simulator, run, settlement, write};

/// One paid fee as the clerk's systems know it.
struct Paid {
    id: String,
    provider_reference: String,
    kassenzeichen: String,
}

pub async fn a_report_naming_pforte_s_ids_settles_them_and_findings_name_both_references(
    ctx: TestContext,
) -> TestResult {
    let app = ctx.spawn_app().await;
    let token = crate::payment_api::bearer(&app).await?;
    let mut paid = Vec::new();
    for request_id in ["REF-1", "REF-2", "REF-3"] {
        let id = pay_through_simulator(&app, &token, request_id).await?;
        let row = app.state.db.payment(&id).await?.expect("payment");
        let (provider_reference, kassenzeichen) = (row.provider_reference, row.transaction_reference);
        assert!(provider_reference.is_some() && kassenzeichen.is_some(), "the simulator reports both");
        let (provider_reference, kassenzeichen) =
            (provider_reference.unwrap_or_default(), kassenzeichen.unwrap_or_default());
        paid.push(Paid { id, provider_reference, kassenzeichen });
    }
    app.stop().await?;

    // The provider's report names the first fee by pforte's whole id, the second by the end-to-end
    // reference (the id's first 35 characters) with another amount, and leaves out the third.
    let today = chrono::NaiveDate::parse_from_str(&berlin_today(), "%Y-%m-%d")?;
    let booked = today.format("%d.%m.%Y").to_string();
    let end_to_end = pforte::model::end_to_end_id(&paid[1].id);
    assert_ne!(end_to_end, paid[1].id);
    let report = format!(
        "Buchungsdatum;Transaktions-ID;Art;Brutto;Gebühr;Auszahlungsreferenz\n\
         {booked};{};Zahlung;12,00;0,30;PO-88\n{booked};{end_to_end};Zahlung;11,00;0,25;PO-88\n",
        paid[0].id
    );
    let imported = import_settlement(&ctx, &write(&ctx, "abrechnung.csv", &report)?, &[])?;
    assert!(imported.status.success(), "{}", output_text(&imported));

    let from = today.checked_sub_days(Days::new(1)).unwrap_or(today).to_string();
    let to = today.checked_add_days(Days::new(1)).unwrap_or(today).to_string();
    let reconcile = ["finance", "reconcile", "--tenant", "09162000", "--from", &from, "--to", &to];
    let csv = run(&ctx, &[&reconcile[..], &["--format", "csv"]].concat(), &[])?;
    assert!(csv.status.success(), "{}", output_text(&csv));
    let text = String::from_utf8(csv.stdout)?;
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "category;transaction;provider reference;Kassenzeichen;pforte evidence;settlement evidence;bank evidence;amounts"
    );
    for (category, fee) in [("matched", &paid[0]), ("amount_mismatch", &paid[1]), ("missing_in_settlement", &paid[2])] {
        let start = format!("{category};{};{};{};", fee.id, fee.provider_reference, fee.kassenzeichen);
        assert!(lines.iter().any(|l| l.starts_with(&start)), "no line {start} in\n{text}");
    }
    assert!(!text.contains("unknown_to_pforte"), "pforte's ids are not unknown to pforte:\n{text}");

    let json = run(&ctx, &reconcile, &[])?;
    let report: Value = serde_json::from_slice(&json.stdout)?;
    let missing = report["findings"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["category"] == "missing_in_settlement"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(missing["pforte"]["provider_reference"].as_str(), Some(paid[2].provider_reference.as_str()));
    assert_eq!(missing["pforte"]["transaction_reference"].as_str(), Some(paid[2].kassenzeichen.as_str()));

    // The import booked the fees of both rows that name pforte's payments.
    let app = ctx.spawn_app().await;
    assert_eq!(ledger::balance(&app.state.db, "09162000", &Account::ProviderFees).await?, Decimal::new(55, 2));

    // The finance page's findings table shows both references, and its search finds a Kassenzeichen.
    let finance = finance_token(&ctx, "09162000")?;
    let mut clerk = Clerk::new(&app);
    let csrf = clerk.sign_in_form_token().await;
    let signed_in = clerk.post("/finance/login", &[("csrf", &csrf), ("tenant", "09162000"), ("token", &finance)]).await;
    assert_eq!(signed_in.status(), 303);
    let query = format!("/finance/09162000/abgleich?from={from}&to={to}&q={}", paid[2].kassenzeichen);
    let page = clerk.get(&query).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await?;
    assert!(html.contains("<th>Referenz des Anbieters</th>") && html.contains("<th>Kassenzeichen</th>"), "{html}");
    let row =
        format!("<td>{}</td><td>{}</td><td>{}</td>", paid[2].id, paid[2].provider_reference, paid[2].kassenzeichen);
    assert!(html.contains(&row), "no {row} in\n{html}");
    assert!(!html.contains(&format!("<td>{}</td>", paid[0].id)), "the search leaves the others out");
    app.stop().await
}
backend_test!(a_report_naming_pforte_s_ids_settles_them_and_findings_name_both_references);

/// The tenant check knows pforte's ids too: a München report naming Hannover's payment by its
/// end-to-end reference is refused, and nothing is stored.
pub async fn a_row_naming_another_tenant_s_payment_by_pforte_s_id_is_refused(ctx: TestContext) -> TestResult {
    let migrated = run(&ctx, &["migrate"], &[])?;
    assert!(migrated.status.success(), "{}", output_text(&migrated));
    let hannover = "H7_tQ2kHT5brgH6jP3gs06FljLcxid5o47x4ayn73x8";
    let pool = any_pool(&ctx.database_url).await?;
    sqlx::query(
        "INSERT INTO payments (transaction_id, originator_id, endpoint_id, client_id, request_id, request, gros_amount, \
         provider_id, provider_reference, status, created_at, updated_at, expires_at) \
         VALUES ($1, 'demo-service', '03241001', 'demo', 'R-H', '{}', '5.00', 'sim-pay', 'SIM-H2', 'PAYED', 1, 1, 2)",
    )
    .bind(hannover)
    .execute(&pool)
    .await?;
    let text = settlement(&[
        ("SIM-OWN", "Zahlung", "12,00", "0,30", "PO-1"),
        (pforte::model::end_to_end_id(hannover), "Zahlung", "5,00", "0,10", "PO-1"),
    ]);
    let output = import_settlement(&ctx, &write(&ctx, "fremd.csv", &text)?, &[])?;
    let said = output_text(&output);
    assert_eq!(output.status.code(), Some(4), "{said}");
    assert!(said.contains("line 3") && said.contains("03241001"), "{said}");
    let imports: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM finance_imports").fetch_one(&pool).await?;
    assert_eq!(imports, 0);
    pool.close().await;
    Ok(())
}
backend_test!(a_row_naming_another_tenant_s_payment_by_pforte_s_id_is_refused);

//! Uploads of settlement reports and bank statements on the finance page, by a clerk signed in with
//! the staff provider: the command line's checks (size limit, another tenant's file, malformed lines
//! and elements, the same file twice), nothing stored on a refusal, and the list of past imports.

use std::sync::Arc;

use crate::finance_staff::{audit_events, hidden, Clerk};
use crate::helpers::{TestContext, TestResult};
use crate::reconciliation::{camt, settlement, MUENCHEN_IBAN};

const HANNOVER_IBAN: &str = "DE30250500000123456789";

/// Uploads as the München clerk, with the page's form token.
async fn upload(clerk: &mut Clerk<'_>, csrf: &str, kind: &str, name: &str, bytes: &[u8]) -> (u16, String) {
    let fields = [("csrf", csrf), ("kind", kind), ("provider", "sim-pay")];
    let answer = clerk.upload("/finance/09162000/imports", &fields, (name, bytes)).await;
    (answer.status().as_u16(), answer.text().await.unwrap_or_default())
}

async fn imports_stored(ctx: &TestContext) -> anyhow::Result<(i64, i64, i64)> {
    let pool = crate::keys::any_pool(&ctx.database_url).await?;
    let count = |sql: &'static str| {
        let pool = pool.clone();
        async move { sqlx::query_scalar::<_, i64>(sql).fetch_one(&pool).await }
    };
    let counts = (
        count("SELECT COUNT(*) FROM finance_imports").await?,
        count("SELECT COUNT(*) FROM settlement_rows").await?,
        count("SELECT COUNT(*) FROM bank_entries").await?,
    );
    pool.close().await;
    Ok(counts)
}

pub async fn an_upload_over_the_size_limit_stores_nothing(ctx: TestContext) -> TestResult {
    let text = settlement(&[("T-1", "Zahlung", "12,00", "0,30", "PO-1"), ("T-2", "Zahlung", "8,00", "0,20", "PO-1")]);
    let limit = text.len() - 1;
    let app = ctx
        .spawn_app_with(move |f| f.merge(("finance.import_max_bytes", limit)), Arc::new(pforte::clock::SystemClock))
        .await;
    let mut clerk = Clerk::new(&app);
    let csrf = hidden(&clerk.signed_in_page().await, "csrf").expect("form token");
    let (status, html) = upload(&mut clerk, &csrf, "settlement", "gross.csv", text.as_bytes()).await;
    assert_eq!(status, 413, "{html}");
    assert!(html.contains("over the limit") && html.contains("finance.import_max_bytes"), "{html}");
    assert_eq!(imports_stored(&ctx).await?, (0, 0, 0));
    app.stop().await
}
backend_test!(an_upload_over_the_size_limit_stores_nothing);

pub async fn an_upload_for_another_tenant_is_refused(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let mut clerk = Clerk::new(&app);
    let csrf = hidden(&clerk.signed_in_page().await, "csrf").expect("form token");
    let statement = camt(HANNOVER_IBAN, &[("B-1", "11.70", "PO-1")]);
    let (status, html) = upload(&mut clerk, &csrf, "bank", "auszug.xml", statement.as_bytes()).await;
    assert_eq!(status, 422, "{html}");
    assert!(html.contains("another tenant") && !html.contains(HANNOVER_IBAN), "masked: {html}");
    // Nor may München's clerk upload into Hannover's books.
    let fields = [("csrf", csrf.as_str()), ("kind", "bank")];
    let foreign = clerk.upload("/finance/03241001/imports", &fields, ("auszug.xml", statement.as_bytes())).await;
    assert_eq!(foreign.status(), 403);
    assert_eq!(imports_stored(&ctx).await?, (0, 0, 0));
    app.stop().await
}
backend_test!(an_upload_for_another_tenant_is_refused);

pub async fn a_malformed_upload_is_refused_naming_its_line_or_element(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let mut clerk = Clerk::new(&app);
    let csrf = hidden(&clerk.signed_in_page().await, "csrf").expect("form token");
    let mut text = settlement(&[("T-1", "Zahlung", "12,00", "0,30", "PO-1")]);
    text.push_str("29.11.2026;T-3;Zahlung;zwölf;0,20;PO-1\n");
    let (status, html) = upload(&mut clerk, &csrf, "settlement", "kaputt.csv", text.as_bytes()).await;
    assert_eq!(status, 422, "{html}");
    assert!(html.contains("line 3") && html.contains("zwölf") && html.contains("id=\"import-error\""), "{html}");
    let statement = camt(MUENCHEN_IBAN, &[("B-1", "12.00", "x")]);
    let truncated = &statement[..statement.len() - 40];
    let (status, html) = upload(&mut clerk, &csrf, "bank", "kaputt.xml", truncated.as_bytes()).await;
    assert_eq!(status, 422, "{html}");
    assert!(html.contains("Document/BkToCstmrStmt"), "{html}");
    assert_eq!(imports_stored(&ctx).await?, (0, 0, 0));
    app.stop().await
}
backend_test!(a_malformed_upload_is_refused_naming_its_line_or_element);

pub async fn the_same_file_uploaded_twice_imports_nothing_new(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let mut clerk = Clerk::new(&app);
    let csrf = hidden(&clerk.signed_in_page().await, "csrf").expect("form token");
    let text = settlement(&[("T-1", "Zahlung", "12,00", "0,30", "PO-1")]);
    let (status, html) = upload(&mut clerk, &csrf, "settlement", "abrechnung.csv", text.as_bytes()).await;
    assert_eq!(status, 200, "{html}");
    let (status, html) = upload(&mut clerk, &csrf, "settlement", "abrechnung-kopie.csv", text.as_bytes()).await;
    assert_eq!(status, 409, "{html}");
    assert!(html.contains("schon eingelesen"), "{html}");
    assert_eq!(imports_stored(&ctx).await?, (1, 1, 0));
    app.stop().await
}
backend_test!(the_same_file_uploaded_twice_imports_nothing_new);

pub async fn uploaded_files_are_listed_with_who_imported_them_and_reconciled(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let mut clerk = Clerk::new(&app);
    let page = clerk.signed_in_page().await;
    assert!(page.contains("id=\"imports-empty\""), "nothing imported yet");
    let csrf = hidden(&page, "csrf").expect("form token");
    let text = settlement(&[("SIM-NIE-GESEHEN", "Zahlung", "12,00", "0,30", "PO-9")]);
    let (status, html) = upload(&mut clerk, &csrf, "settlement", "abrechnung-november.csv", text.as_bytes()).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("id=\"import-result\"") && html.contains("1 Zeilen"), "{html}");
    let statement = camt(MUENCHEN_IBAN, &[("B-1", "11.70", "PO-9")]);
    let (status, html) = upload(&mut clerk, &csrf, "bank", "auszug-november.xml", statement.as_bytes()).await;
    assert_eq!(status, 200, "{html}");

    let today = crate::reconciliation::berlin_today();
    // The report's rows are booked on 29.11.2026 (see `settlement`).
    let page = clerk.get(&format!("/finance/09162000/abgleich?from=2026-11-01&to={today}")).await.text().await?;
    let list = page.split("id=\"imports\"").nth(1).unwrap_or_default();
    for expected in [
        "abrechnung-november.csv",
        "auszug-november.xml",
        "dienstkonto-sim/dienstkonto-sim-0001-kasse-muenchen",
        "sim-pay",
    ] {
        assert!(list.contains(expected), "the list names {expected}: {list}");
    }
    // The provider settled a transaction pforte never saw: the reconciliation says so.
    let findings = page.split("class=\"findings\"").nth(1).unwrap_or_default();
    assert!(findings.contains("SIM-NIE-GESEHEN"), "{findings}");
    let events = audit_events(&app).await?;
    let imports: Vec<_> = events.iter().filter(|(e, _, _)| e == "finance.import").collect();
    assert_eq!(imports.len(), 2);
    assert!(imports.iter().all(|(_, actor, _)| actor == "dienstkonto-sim/dienstkonto-sim-0001-kasse-muenchen"));
    assert!(events.iter().any(|(e, _, d)| e == "finance.access_allowed" && d.contains("import.upload")));
    app.stop().await
}
backend_test!(uploaded_files_are_listed_with_who_imported_them_and_reconciled);

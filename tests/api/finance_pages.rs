//! The reconciliation over HTTP: JSON and CSV for tools with a finance token, and the page for
//! finance staff in a browser, reached through the token form and its session cookie (the staff
//! sign-in, sessions and uploads are in `finance_staff`).

use chrono::Days;
use serde_json::Value;

use crate::finance::finance_token;
use crate::finance_staff::{location, Clerk};
use crate::helpers::{TestApp, TestContext, TestResult};
use crate::reconciliation::{berlin_today, pay_through_simulator};

fn period() -> anyhow::Result<String> {
    let today = chrono::NaiveDate::parse_from_str(&berlin_today(), "%Y-%m-%d")?;
    let from = today.checked_sub_days(Days::new(1)).unwrap_or(today);
    let to = today.checked_add_days(Days::new(1)).unwrap_or(today);
    Ok(format!("from={from}&to={to}"))
}

async fn get(app: &TestApp, path: &str, token: Option<&str>) -> anyhow::Result<reqwest::Response> {
    let mut request = app.client.get(app.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    Ok(request.send().await?)
}

pub async fn the_reconciliation_is_served_as_json_and_csv_for_the_tokens_authority_only(
    ctx: TestContext,
) -> TestResult {
    let app = ctx.spawn_app().await;
    let payment_token = crate::payment_api::bearer(&app).await?;
    let id = pay_through_simulator(&app, &payment_token, "RECON-HTTP-1").await?;
    let token = finance_token(&ctx, "09162000")?;
    let period = period()?;

    let json = get(&app, &format!("/finance/09162000/reconciliation?{period}"), Some(&token)).await?;
    assert_eq!(json.status(), 200);
    assert_eq!(json.headers()["content-type"], "application/json");
    let report: Value = json.json().await?;
    assert_eq!(report["tenant"], "09162000");
    let findings = report["findings"].as_array().cloned().unwrap_or_default();
    assert_eq!(findings.len(), 1, "{report}");
    assert_eq!(
        (findings[0]["category"].as_str(), findings[0]["subject"].as_str()),
        (Some("missing_in_settlement"), Some(id.as_str()))
    );

    // A tenant in the query cannot widen what the path and the token allow.
    let widened =
        get(&app, &format!("/finance/09162000/reconciliation?{period}&tenant=03241001"), Some(&token)).await?;
    assert_eq!(widened.json::<Value>().await?["tenant"], "09162000");

    let csv = get(&app, &format!("/finance/09162000/reconciliation?{period}&format=csv"), Some(&token)).await?;
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let text = csv.text().await?;
    assert!(text.starts_with("category;transaction;"), "{text}");
    assert!(text.lines().any(|l| l.starts_with(&format!("missing_in_settlement;{id};"))), "{text}");

    let other = get(&app, &format!("/finance/03241001/reconciliation?{period}"), Some(&token)).await?;
    assert_eq!(other.status(), 403);
    let counts = crate::finance::refused_counts(&app, "finance.access_refused").await?;
    assert!(counts.iter().any(|(_, reason, _)| reason == "other_tenant"), "the refused use is counted: {counts:?}");
    assert_eq!(get(&app, &format!("/finance/09162000/reconciliation?{period}"), None).await?.status(), 401);
    let bad = get(&app, "/finance/09162000/reconciliation?from=gestern&to=heute", Some(&token)).await?;
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await?.contains("from"), "the error names the parameter");
    app.stop().await
}
backend_test!(the_reconciliation_is_served_as_json_and_csv_for_the_tokens_authority_only);

pub async fn finance_staff_sign_in_with_their_token_and_see_the_page_with_its_chart(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let payment_token = crate::payment_api::bearer(&app).await?;
    let id = pay_through_simulator(&app, &payment_token, "RECON-PAGE-1").await?;
    let token = finance_token(&ctx, "09162000")?;

    let mut clerk = Clerk::new(&app);
    let csrf = clerk.sign_in_form_token().await;
    let signed_in = clerk.post("/finance/login", &[("csrf", &csrf), ("tenant", "09162000"), ("token", &token)]).await;
    assert_eq!(signed_in.status(), 303);
    let location = location(&signed_in);
    assert!(location.starts_with("/finance/09162000/abgleich?from="), "{location}");

    let page = clerk.get(&location).await;
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    let html = page.text().await?;
    assert!(html.contains("<svg"), "the chart is inline");
    assert!(html.contains(&id), "the finding names the transaction");
    for external in ["src=\"http", "href=\"http", "<script"] {
        assert!(!html.contains(external), "no external assets ({external})");
    }

    // The cookie is this authority's only.
    let other = clerk.get("/finance/03241001/abgleich?from=2026-11-01&to=2026-11-30").await;
    assert_eq!(other.status(), 403);
    app.stop().await
}
backend_test!(finance_staff_sign_in_with_their_token_and_see_the_page_with_its_chart);

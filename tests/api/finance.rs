//! Finance staff access: tokens from the real binary, 401 and 403 on `/finance/…`, every allowed use
//! in the audit chain and every refused one counted outside it (SECURITY.md #32), and each kind of bad export parameter refused with a 400 naming it.

use serde_json::Value;

use crate::helpers::{output_text, pforte_command, TestApp, TestContext, TestResult};
use crate::keys::any_pool;
use crate::ledger::quiet_app;

fn run(ctx: &TestContext, args: &[&str]) -> anyhow::Result<std::process::Output> {
    Ok(pforte_command().args(args).envs(ctx.cli_env()).output()?)
}

/// A token for `tenant` made with `pforte finance token create`: its id (`ftk_…`) and the token.
pub fn create_finance_token(ctx: &TestContext, tenant: &str) -> anyhow::Result<(String, String)> {
    let text = ctx.cli_ok(&["finance", "token", "create", "--tenant", tenant, "--label", "test"])?;
    let word = |prefix: &str| text.split_whitespace().find(|w| w.starts_with(prefix)).map(str::to_owned);
    let id = word("ftk_").ok_or_else(|| anyhow::anyhow!("no token id in: {text}"))?;
    let token = word("pft_").ok_or_else(|| anyhow::anyhow!("no token in: {text}"))?;
    Ok((id, token))
}

/// A token for `tenant`, made with the binary.
pub fn finance_token(ctx: &TestContext, tenant: &str) -> anyhow::Result<String> {
    Ok(create_finance_token(ctx, tenant)?.1)
}

pub async fn get_bookings(app: &TestApp, token: Option<&str>, tenant: &str, query: &str) -> reqwest::Response {
    let mut request = app.client.get(app.url(&format!("/finance/{tenant}/bookings?{query}")));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("request")
}

async fn assert_problem(response: reqwest::Response, status: u16, code: &str) -> anyhow::Result<Value> {
    assert_eq!(response.status(), status);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    let body: Value = response.json().await?;
    assert_eq!(body["code"], code, "{body}");
    Ok(body)
}

const PERIOD: &str = "from=2026-11-01&to=2026-11-30";

pub async fn finance_tokens_are_created_listed_and_revoked_with_the_binary(ctx: TestContext) -> TestResult {
    let created = run(&ctx, &["finance", "token", "create", "--tenant", "09162000", "--label", "Stadtkasse München"])?;
    let text = output_text(&created);
    assert!(created.status.success(), "{text}");
    let token = text.split_whitespace().find(|w| w.starts_with("pft_")).expect("the token is printed").to_owned();
    let token_id = text.split_whitespace().find(|w| w.starts_with("ftk_")).expect("its id is printed").to_owned();
    assert!(token.len() > 40, "{token}");

    let listed = run(&ctx, &["finance", "token", "list"])?;
    let list = output_text(&listed);
    assert!(listed.status.success(), "{list}");
    assert!(list.contains(&token_id) && list.contains("09162000") && list.contains("Stadtkasse München"), "{list}");
    assert!(list.contains("active") && !list.contains(&token), "never the token: {list}");
    let other = output_text(&run(&ctx, &["finance", "token", "list", "--tenant", "03241001"])?);
    assert!(other.contains("no finance tokens") && !other.contains(&token_id), "{other}");

    // The database holds a hash, not the token.
    let pool = any_pool(&ctx.database_url).await?;
    let hash: String = sqlx::query_scalar("SELECT token_hash FROM finance_tokens").fetch_one(&pool).await?;
    assert_eq!(hash.len(), 64);
    assert!(!hash.contains(&token[4..]));

    let revoked = run(&ctx, &["finance", "token", "revoke", &token_id])?;
    assert!(revoked.status.success() && output_text(&revoked).contains("revoked"), "{}", output_text(&revoked));
    let again = run(&ctx, &["finance", "token", "revoke", &token_id])?;
    assert!(again.status.success() && output_text(&again).contains("already"), "{}", output_text(&again));
    assert!(output_text(&run(&ctx, &["finance", "token", "list"])?).contains("revoked"));
    let unknown = run(&ctx, &["finance", "token", "revoke", "ftk_nosuchtoken"])?;
    assert_eq!(unknown.status.code(), Some(2), "{}", output_text(&unknown));

    let events: Vec<String> =
        sqlx::query_scalar("SELECT event FROM audit_log WHERE event LIKE 'finance.%' ORDER BY seq")
            .fetch_all(&pool)
            .await?;
    assert_eq!(events, vec!["finance.token_created", "finance.token_revoked"]);
    let details: Vec<String> = sqlx::query_scalar("SELECT details FROM audit_log").fetch_all(&pool).await?;
    assert!(details.iter().all(|d| !d.contains(&token[4..])), "the token never reaches the audit log");
    Ok(())
}
backend_test!(finance_tokens_are_created_listed_and_revoked_with_the_binary);

pub async fn a_token_for_an_unknown_tenant_is_refused_with_exit_2(ctx: TestContext) -> TestResult {
    let output = run(&ctx, &["finance", "token", "create", "--tenant", "99999999"])?;
    let text = output_text(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(text.contains("99999999") && text.contains("no tenant") && !text.contains("pft_"), "{text}");
    Ok(())
}
backend_test!(a_token_for_an_unknown_tenant_is_refused_with_exit_2);

pub async fn bookings_without_a_token_are_401(ctx: TestContext) -> TestResult {
    let app = quiet_app(&ctx).await;
    let response = get_bookings(&app, None, "09162000", PERIOD).await;
    assert_eq!(response.headers()["www-authenticate"], "Bearer realm=\"pforte\"");
    assert_problem(response, 401, "unauthorized").await?;
    let basic = app
        .client
        .get(app.url(&format!("/finance/09162000/bookings?{PERIOD}")))
        .basic_auth("demo", Some("demo-secret-change-me"))
        .send()
        .await?;
    assert_problem(basic, 401, "unauthorized").await?;
    app.stop().await
}
backend_test!(bookings_without_a_token_are_401);

pub async fn bookings_with_an_unknown_token_are_401_and_counted_outside_the_chain(ctx: TestContext) -> TestResult {
    let app = quiet_app(&ctx).await;
    let response = get_bookings(&app, Some("pft_not-a-token-anyone-made"), "09162000", PERIOD).await;
    assert_problem(response, 401, "unauthorized").await?;
    let audit = crate::audit::chained_events(&app).await?;
    assert!(audit.iter().all(|r| r.event != "finance.access_refused"), "no chain row for a refusal");
    assert_eq!(
        refused_counts(&app, "finance.access_refused").await?,
        vec![("09162000".into(), "unknown_token".into(), 1)]
    );
    // A tenant id nobody registered is counted under one name, so made-up ids add no counters.
    assert_problem(get_bookings(&app, Some("pft_x"), "99999999", PERIOD).await, 401, "unauthorized").await?;
    let counts = refused_counts(&app, "finance.access_refused").await?;
    assert!(counts.contains(&("unregistered".into(), "unknown_token".into(), 1)), "{counts:?}");
    app.stop().await
}
backend_test!(bookings_with_an_unknown_token_are_401_and_counted_outside_the_chain);

/// The refused-attempt counters of `event`: (subject, reason, attempts), summed over the hours.
pub async fn refused_counts(app: &TestApp, event: &str) -> anyhow::Result<Vec<(String, String, i64)>> {
    let mut sums: std::collections::BTreeMap<(String, String), i64> = std::collections::BTreeMap::new();
    for row in app.state.db.refused_attempts(Some(event)).await? {
        *sums.entry((row.subject, row.reason)).or_default() += row.attempts;
    }
    Ok(sums.into_iter().map(|((subject, reason), attempts)| (subject, reason, attempts)).collect())
}

pub async fn bookings_with_a_revoked_token_are_401(ctx: TestContext) -> TestResult {
    let app = quiet_app(&ctx).await;
    let (id, token) = create_finance_token(&ctx, "09162000")?;
    assert_eq!(get_bookings(&app, Some(&token), "09162000", PERIOD).await.status(), 200);
    assert!(ctx.cli_ok(&["finance", "token", "revoke", &id])?.contains("revoked"));
    assert_problem(get_bookings(&app, Some(&token), "09162000", PERIOD).await, 401, "unauthorized").await?;
    let audit = crate::audit::chained_events(&app).await?;
    let uses: Vec<(&str, &str)> = audit
        .iter()
        .filter(|r| r.event.starts_with("finance.access"))
        .map(|r| (r.event.as_str(), r.actor.as_str()))
        .collect();
    assert_eq!(uses, vec![("finance.access_allowed", id.as_str())]);
    assert_eq!(
        refused_counts(&app, "finance.access_refused").await?,
        vec![("09162000".into(), "revoked_token".into(), 1)]
    );
    app.stop().await
}
backend_test!(bookings_with_a_revoked_token_are_401);

pub async fn another_tenants_bookings_are_403_and_counted(ctx: TestContext) -> TestResult {
    let app = quiet_app(&ctx).await;
    let token = finance_token(&ctx, "09162000")?;
    let response = get_bookings(&app, Some(&token), "03241001", PERIOD).await;
    assert_problem(response, 403, "forbidden").await?;
    let audit = crate::audit::chained_events(&app).await?;
    assert!(audit.iter().all(|r| r.event != "finance.access_refused"), "no chain row for a refusal");
    assert_eq!(
        refused_counts(&app, "finance.access_refused").await?,
        vec![("03241001".into(), "other_tenant".into(), 1)]
    );
    assert!(audit.iter().all(|r| !r.details.contains(&token[4..])));
    app.stop().await
}
backend_test!(another_tenants_bookings_are_403_and_counted);

async fn assert_bad_parameter(ctx: TestContext, query: &str, param: &str) -> TestResult {
    let app = quiet_app(&ctx).await;
    let token = finance_token(&ctx, "09162000")?;
    let body = assert_problem(get_bookings(&app, Some(&token), "09162000", query).await, 400, "bad_request").await?;
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(detail.starts_with(&format!("{param}:")), "{detail}");
    app.stop().await
}

pub async fn a_from_that_is_not_a_date_is_400_naming_from(ctx: TestContext) -> TestResult {
    assert_bad_parameter(ctx, "from=01.11.2026&to=2026-11-30", "from").await
}
backend_test!(a_from_that_is_not_a_date_is_400_naming_from);

pub async fn a_missing_to_is_400_naming_to(ctx: TestContext) -> TestResult {
    assert_bad_parameter(ctx, "from=2026-11-01", "to").await
}
backend_test!(a_missing_to_is_400_naming_to);

pub async fn an_impossible_date_is_400_naming_it(ctx: TestContext) -> TestResult {
    assert_bad_parameter(ctx, "from=2026-11-01&to=2026-11-31", "to").await
}
backend_test!(an_impossible_date_is_400_naming_it);

pub async fn to_before_from_is_400_naming_to(ctx: TestContext) -> TestResult {
    assert_bad_parameter(ctx, "from=2026-11-30&to=2026-11-01", "to").await
}
backend_test!(to_before_from_is_400_naming_to);

pub async fn a_period_over_366_days_is_400(ctx: TestContext) -> TestResult {
    assert_bad_parameter(ctx, "from=2025-01-01&to=2026-01-02", "to").await
}
backend_test!(a_period_over_366_days_is_400);

pub async fn an_unknown_format_is_400_naming_format(ctx: TestContext) -> TestResult {
    assert_bad_parameter(ctx, &format!("{PERIOD}&format=xlsx"), "format").await
}
backend_test!(an_unknown_format_is_400_naming_format);

pub async fn an_unknown_decimal_separator_is_400_naming_decimal(ctx: TestContext) -> TestResult {
    assert_bad_parameter(ctx, &format!("{PERIOD}&decimal=semicolon"), "decimal").await
}
backend_test!(an_unknown_decimal_separator_is_400_naming_decimal);

pub async fn a_bom_other_than_true_or_false_is_400_naming_bom(ctx: TestContext) -> TestResult {
    assert_bad_parameter(ctx, &format!("{PERIOD}&bom=yes"), "bom").await
}
backend_test!(a_bom_other_than_true_or_false_is_400_naming_bom);

pub async fn a_parameter_given_twice_is_400_naming_it(ctx: TestContext) -> TestResult {
    assert_bad_parameter(ctx, &format!("{PERIOD}&format=csv&format=json"), "format").await
}
backend_test!(a_parameter_given_twice_is_400_naming_it);

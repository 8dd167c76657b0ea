//! SECURITY.md #32: the endpoints that check credentials answer 429 with `Retry-After` once an
//! address has used its budget, other addresses go on unaffected, a forwarded address counts only
//! from a trusted proxy, and a flood of refused finance tokens adds nothing to the audit chain but
//! shows in the refused-attempt counters. SECURITY.md #25: request logs name route templates, not
//! the transaction ids in paths.

use figment::Figment;
use serde_json::Value;

use crate::finance::refused_counts;
use crate::helpers::{eventually, TestApp, TestContext, TestResult};
use crate::oidc::DEMO_SECRET;

const BOOKINGS: &str = "/finance/09162000/bookings?from=2026-11-01&to=2026-11-30";

/// An app whose `group` allows `requests` per `period_secs` per address, behind a proxy on loopback.
async fn limited_app(ctx: &TestContext, group: &str, requests: u32, period_secs: u64, proxy: bool) -> TestApp {
    let group = group.to_owned();
    let adjust = move |figment: Figment| {
        let figment = figment
            .merge((format!("rate_limit.{group}.requests"), requests))
            .merge((format!("rate_limit.{group}.period_secs"), period_secs));
        if proxy {
            figment.merge(("server.trusted_proxies", vec!["127.0.0.1"]))
        } else {
            figment
        }
    };
    ctx.spawn_app_with(adjust, std::sync::Arc::new(pforte::clock::SystemClock)).await
}

async fn token_request(app: &TestApp, from: &str, secret: &str) -> anyhow::Result<reqwest::Response> {
    Ok(app
        .client
        .post(app.url("/token"))
        .header("x-forwarded-for", from)
        .basic_auth("demo", Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await?)
}

fn retry_after(response: &reqwest::Response) -> Option<u64> {
    response.headers().get("retry-after")?.to_str().ok()?.parse().ok()
}

pub async fn the_next_bad_client_login_from_one_address_is_429_and_other_addresses_go_on(
    ctx: TestContext,
) -> TestResult {
    let app = limited_app(&ctx, "oauth", 3, 3600, true).await;
    for _ in 0..3 {
        assert_eq!(token_request(&app, "198.51.100.1", "wrong").await?.status(), 401);
    }
    let refused = token_request(&app, "198.51.100.1", DEMO_SECRET).await?;
    assert_eq!(refused.status(), 429, "the right secret does not help once the budget is spent");
    let wait = retry_after(&refused).expect("Retry-After in whole seconds");
    assert!((1..=1200).contains(&wait), "{wait}");
    assert_eq!(refused.headers()["cache-control"], "no-store");
    let body: Value = refused.json().await?;
    assert_eq!(body["error"], "slow_down", "{body}");
    // The same client from another address goes on.
    let other = token_request(&app, "198.51.100.2", DEMO_SECRET).await?;
    assert_eq!(other.status(), 200, "{:?}", other.text().await);
    app.stop().await
}
backend_test!(the_next_bad_client_login_from_one_address_is_429_and_other_addresses_go_on);

pub async fn a_forwarded_address_from_an_untrusted_peer_buys_no_fresh_budget(ctx: TestContext) -> TestResult {
    let app = limited_app(&ctx, "oauth", 2, 3600, false).await;
    assert_eq!(token_request(&app, "198.51.100.1", "wrong").await?.status(), 401);
    assert_eq!(token_request(&app, "198.51.100.2", "wrong").await?.status(), 401);
    let third = token_request(&app, "198.51.100.3", DEMO_SECRET).await?;
    assert_eq!(third.status(), 429, "X-Forwarded-For is ignored without server.trusted_proxies");
    app.stop().await
}
backend_test!(a_forwarded_address_from_an_untrusted_peer_buys_no_fresh_budget);

pub async fn an_address_may_try_again_once_its_budget_has_refilled(ctx: TestContext) -> TestResult {
    let app = limited_app(&ctx, "oauth", 1, 2, false).await;
    assert_eq!(token_request(&app, "-", "wrong").await?.status(), 401);
    // The second request within the 2 s period is refused; a slow machine may need a few tries.
    let mut refused = None;
    for _ in 0..5 {
        let response = token_request(&app, "-", "wrong").await?;
        if response.status() == 429 {
            refused = Some(response);
            break;
        }
    }
    let refused = refused.ok_or_else(|| anyhow::anyhow!("no 429 within five requests"))?;
    let wait = retry_after(&refused);
    assert!(wait.is_some_and(|s| (1..=2).contains(&s)), "a 2 s period asks for at most 2 s: {wait:?}");
    // No sleep for a guessed time: ask until the answer is the endpoint's own again.
    eventually(std::time::Duration::from_secs(10), "the budget refilled", || async {
        let status = token_request(&app, "-", "wrong").await?.status();
        Ok((status == 401).then_some(()))
    })
    .await?;
    app.stop().await
}
backend_test!(an_address_may_try_again_once_its_budget_has_refilled);

pub async fn a_flood_of_bad_finance_tokens_adds_nothing_to_the_audit_chain_and_is_counted(
    ctx: TestContext,
) -> TestResult {
    let app = limited_app(&ctx, "finance", 5, 3600, true).await;
    crate::audit::all_chained(&ctx).await?;
    let chain_before = app.state.db.audit_entries_after(0, 10_000).await?.len();
    let bookings = |n: usize| {
        app.client
            .get(app.url(BOOKINGS))
            .header("x-forwarded-for", "203.0.113.9")
            .bearer_auth(format!("pft_made-up-{n}"))
            .send()
    };
    for n in 0..5 {
        assert_eq!(bookings(n).await?.status(), 401);
    }
    let refused = bookings(5).await?;
    assert_eq!(refused.status(), 429);
    assert!(retry_after(&refused).is_some_and(|s| s >= 1));
    assert_eq!(refused.headers()["content-type"], "application/problem+json");
    let body: Value = refused.json().await?;
    assert_eq!(body["code"], "too_many_requests", "{body}");
    // The staff sign-in page of that address is refused too, as a page.
    let page = app
        .client
        .get(app.url("/finance/login"))
        .header("x-forwarded-for", "203.0.113.9")
        .header("accept", "text/html")
        .send()
        .await?;
    assert_eq!(page.status(), 429);
    assert!(retry_after(&page).is_some());
    assert!(page.headers()["content-type"].to_str()?.starts_with("text/html"));
    assert!(page.text().await?.contains("Zu viele Anfragen"));

    crate::audit::all_chained(&ctx).await?;
    assert_eq!(app.state.db.audit_entries_after(0, 10_000).await?.len(), chain_before, "the chain did not grow");
    let counts = refused_counts(&app, "finance.access_refused").await?;
    assert_eq!(counts, vec![("09162000".to_owned(), "unknown_token".to_owned(), 5)], "the 429 is not counted");
    // Another address still reaches the check.
    let other = app.client.get(app.url(BOOKINGS)).header("x-forwarded-for", "203.0.113.10").send().await?;
    assert_eq!(other.status(), 401);
    app.stop().await
}
backend_test!(a_flood_of_bad_finance_tokens_adds_nothing_to_the_audit_chain_and_is_counted);

pub async fn provider_callbacks_over_the_budget_are_429_problems(ctx: TestContext) -> TestResult {
    let app = limited_app(&ctx, "callbacks", 2, 3600, false).await;
    let callback = || app.client.post(app.url("/callbacks/payment/sim-pay")).body("x=1").send();
    for _ in 0..2 {
        assert_ne!(callback().await?.status(), 429);
    }
    let refused = callback().await?;
    assert_eq!(refused.status(), 429);
    assert!(retry_after(&refused).is_some());
    let body: Value = refused.json().await?;
    assert_eq!(body["code"], "too_many_requests", "{body}");
    app.stop().await
}
backend_test!(provider_callbacks_over_the_budget_are_429_problems);

pub async fn request_logs_name_the_route_not_the_transaction_id(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let id = format!("LogProbe{}", uuid::Uuid::new_v4().simple());
    let _ = app.client.get(app.url(&format!("/pay/{id}"))).send().await?;
    let _ = app.client.get(app.url(&format!("/no-such-route/{id}"))).send().await?;
    app.stop().await?;
    let logs = crate::logs::captured_logs();
    if let Some(line) = logs.lines().find(|line| line.contains(&id)) {
        anyhow::bail!("a path id reached the log: {line}");
    }
    assert!(logs.contains("/pay/{transaction}"), "the route template is logged");
    Ok(())
}
backend_test!(request_logs_name_the_route_not_the_transaction_id);

pub async fn an_online_service_over_its_own_budget_is_429_from_any_address_and_strangers_cannot_spend_it(
    ctx: TestContext,
) -> TestResult {
    let app = limited_app(&ctx, "oauth_client", 2, 3600, true).await;
    // Strangers naming the service with a wrong secret are refused and spend nothing of its budget.
    for stranger in 1..=5 {
        let refused = token_request(&app, &format!("203.0.113.{stranger}"), "wrong").await?;
        assert_eq!(refused.status(), 401);
    }
    for address in ["198.51.100.1", "198.51.100.2"] {
        let granted = token_request(&app, address, DEMO_SECRET).await?;
        assert_eq!(granted.status(), 200, "{:?}", granted.text().await);
    }
    // The service's third request is refused whichever address it comes from.
    let refused = token_request(&app, "198.51.100.3", DEMO_SECRET).await?;
    assert_eq!(refused.status(), 429);
    let wait = retry_after(&refused).expect("Retry-After in whole seconds");
    assert!((1..=3600).contains(&wait), "{wait}");
    assert_eq!(refused.headers()["cache-control"], "no-store");
    let body: Value = refused.json().await?;
    assert_eq!(body["error"], "slow_down", "{body}");
    assert!(body["error_description"].as_str().unwrap_or_default().contains("client"), "{body}");
    // A wrong secret is still a plain 401, not a 429 that would tell a stranger about the budget.
    assert_eq!(token_request(&app, "198.51.100.4", "wrong").await?.status(), 401);
    app.stop().await
}
backend_test!(an_online_service_over_its_own_budget_is_429_from_any_address_and_strangers_cannot_spend_it);

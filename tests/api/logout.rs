//! RP-initiated logout without a fresh hint (issue 14 finding 8): an expired ID token, or one issued
//! to another service, no longer sends the browser to the account provider's logout at once (that
//! would let any page log a person out at BundID); pforte asks first, with a form bound to the browser.

use pforte::clock::ManualClock;
use serde_json::Value;

use crate::helpers::{TestApp, TestContext, TestResult};
use crate::login::{fresh_code, location, redeem, second_login, spawn_with_second_client, Browser};
use crate::oidc::VERIFIER;

fn hidden(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    Some(html.split(&marker).nth(1)?.split('"').next()?.to_owned())
}

async fn demo_id_token(app: &TestApp) -> anyhow::Result<String> {
    let code = fresh_code(app).await;
    let tokens: Value = redeem(app, &code, VERIFIER).await.json().await?;
    Ok(tokens["id_token"].as_str().unwrap_or_default().to_owned())
}

/// The confirmation page: 200, a form posting to `/logout/confirm`, no redirect anywhere.
async fn confirmation_of(page: reqwest::Response) -> anyhow::Result<String> {
    assert_eq!(page.status(), 200, "a page that asks, not a redirect");
    assert!(page.headers().get("location").is_none());
    let html = page.text().await?;
    assert!(html.contains("action=\"/logout/confirm\""), "{html}");
    Ok(hidden(&html, "confirmation").expect("the form carries its token"))
}

pub async fn an_expired_hint_asks_before_logging_out_upstream(ctx: TestContext) -> TestResult {
    let clock = ManualClock::at_millis(chrono::Utc::now().timestamp_millis());
    let app = spawn_with_second_client(&ctx, Some(clock.clone())).await;
    let hint = demo_id_token(&app).await?;
    clock.advance_secs(6 * 60);

    let mut browser = Browser::new(&app);
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("id_token_hint", &hint)
        .append_pair("post_logout_redirect_uri", &app.url("/demo"))
        .append_pair("state", "bye")
        .finish();
    let token = confirmation_of(browser.get(&app.url(&format!("/logout?{query}"))).await).await?;

    // A forged POST: without the token, or with it but from another browser (no cookie).
    let forged = browser.post(&app.url("/logout/confirm"), &[]).await;
    assert_eq!(forged.status(), 400);
    assert!(forged.headers().get("location").is_none());
    let elsewhere = app.client.post(app.url("/logout/confirm")).form(&[("confirmation", &token)]).send().await?;
    assert_eq!(elsewhere.status(), 400, "the token is bound to the browser that was asked");
    assert!(elsewhere.headers().get("location").is_none());

    // The person confirms: on to the provider's logout, and back to the service.
    let confirmed = browser.post(&app.url("/logout/confirm"), &[("confirmation", &token)]).await;
    assert_eq!(confirmed.status(), 303);
    assert!(location(&confirmed).starts_with(&app.url("/dev/bundid/logout?")), "{}", location(&confirmed));
    let upstream = app.client.get(location(&confirmed)).send().await?;
    let done = app.client.get(location(&upstream)).send().await?;
    assert_eq!(location(&done), app.url("/demo?state=bye"));
    app.stop().await
}
backend_test!(an_expired_hint_asks_before_logging_out_upstream);

pub async fn a_hint_issued_to_another_service_asks_first(ctx: TestContext) -> TestResult {
    let app = spawn_with_second_client(&ctx, None).await;
    let tokens = second_login(&app, "STORK-QAA-Level-3").await;
    let hint = tokens["id_token"].as_str().unwrap_or_default();
    let mut browser = Browser::new(&app);
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("id_token_hint", hint)
        .append_pair("client_id", "demo")
        .append_pair("post_logout_redirect_uri", &app.url("/demo"))
        .finish();
    confirmation_of(browser.get(&app.url(&format!("/logout?{query}"))).await).await?;

    // The same hint for its own service, fresh: straight to the provider, as before.
    let own = app.client.get(app.url("/logout")).query(&[("id_token_hint", hint)]).send().await?;
    assert_eq!(own.status(), 303);
    assert!(location(&own).starts_with(&app.url("/dev/bundid/logout?")), "{}", location(&own));
    app.stop().await
}
backend_test!(a_hint_issued_to_another_service_asks_first);

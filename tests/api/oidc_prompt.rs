//! `prompt=login` and `max_age` (SECURITY.md #9, OpenID Connect Core §3.1.2.1): forwarded to the
//! account provider, its `auth_time` required and checked, and passed on unchanged in pforte's ID
//! token (never "now" as a stand-in). Against the mock provider of `upstream/mock_op.rs`.

use std::collections::{BTreeMap, HashMap};

use pforte::clock::ManualClock;
use serde_json::Value;

use crate::helpers::{TestApp, TestContext, TestResult};
use crate::login::{code_from, location, redeem, spawn_with_extra_provider, verify_id_token, Browser};
use crate::oidc::{with, VERIFIER};
use crate::upstream::mock_op::MockOp;
use crate::upstream::{BASIC_AUTH, MOCK_IDP};

/// The mock provider's clock, kept on real time, because pforte's clock is.
struct Mock {
    op: MockOp,
    clock: ManualClock,
}

async fn with_mock(ctx: &TestContext) -> anyhow::Result<(Mock, TestApp)> {
    let clock = ManualClock::at_millis(chrono::Utc::now().timestamp_millis());
    let op = MockOp::start(clock.clone()).await?;
    let entry = MOCK_IDP.replace("{issuer}", &op.issuer).replace("{client_auth}", BASIC_AUTH);
    let app = spawn_with_extra_provider(ctx, "mock", &entry).await?;
    Ok((Mock { op, clock }, app))
}

/// One login of the demo service through the mock provider with `extra` parameters; returns what
/// arrived at the provider and pforte's answer to the provider's callback.
async fn login(
    app: &TestApp,
    mock: &Mock,
    extra: &[(&str, &str)],
) -> anyhow::Result<(HashMap<String, String>, reqwest::Response)> {
    use pforte::clock::Clock;
    let op = &mock.op;
    mock.clock.advance_secs(chrono::Utc::now().timestamp() - mock.clock.now().timestamp());
    let mut params = with(
        crate::login::citizen_request(app, "openid profile", "http://eidas.europa.eu/LoA/substantial"),
        "idp_hint",
        Some("mock"),
    );
    for (key, value) in extra {
        params = with(params, key, Some(value));
    }
    let mut browser = Browser::new(app);
    let upstream = browser.authorize(&params).await;
    assert_eq!(upstream.status(), 303, "straight to the provider");
    let answer = op.authorize(&url::Url::parse(&location(&upstream))?);
    let arrived = op.last_authorization_query();
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("code", answer.code.as_deref().unwrap_or_default())
        .append_pair("state", answer.state.as_deref().unwrap_or_default())
        .append_pair("iss", answer.iss.as_deref().unwrap_or_default())
        .finish();
    let back = browser.get(&app.url(&format!("/callback/mock?{query}"))).await;
    Ok((arrived, back))
}

/// The error pforte sent the service, if it sent one.
fn service_error(app: &TestApp, back: &reqwest::Response) -> Option<String> {
    let target = location(back);
    assert!(target.starts_with(&app.url("/demo/callback?")), "back to the service: {target}");
    let query: BTreeMap<String, String> = url::Url::parse(&target).ok()?.query_pairs().into_owned().collect();
    assert!(!query.contains_key("code") || !query.contains_key("error"));
    query.get("error").cloned()
}

async fn id_token_claims(app: &TestApp, back: &reqwest::Response) -> anyhow::Result<josekit::jwt::JwtPayload> {
    let code = code_from(back, app).await.get("code").cloned().unwrap_or_default();
    let tokens: Value = redeem(app, &code, VERIFIER).await.json().await?;
    verify_id_token(app, tokens["id_token"].as_str().unwrap_or_default()).await
}

pub async fn prompt_login_and_max_age_reach_the_provider(ctx: TestContext) -> TestResult {
    let (mock, app) = with_mock(&ctx).await?;
    let (arrived, back) = login(&app, &mock, &[("prompt", "login"), ("max_age", "300")]).await?;
    assert_eq!(arrived.get("prompt").map(String::as_str), Some("login"));
    assert_eq!(arrived.get("max_age").map(String::as_str), Some("300"));
    assert_eq!(service_error(&app, &back), None, "a fresh login upstream gives a code");

    let (arrived, _) = login(&app, &mock, &[]).await?;
    assert!(!arrived.contains_key("prompt") && !arrived.contains_key("max_age"), "nothing asked, nothing sent");
    app.stop().await
}
backend_test!(prompt_login_and_max_age_reach_the_provider);

pub async fn an_upstream_login_older_than_max_age_ends_with_login_required(ctx: TestContext) -> TestResult {
    let (mock, app) = with_mock(&ctx).await?;
    mock.op.set(|op| op.behaviour.auth_time_age_secs = Some(600));
    let (_, back) = login(&app, &mock, &[("max_age", "60")]).await?;
    assert_eq!(back.status(), 303);
    assert_eq!(service_error(&app, &back).as_deref(), Some("login_required"), "600 s ago is older than max_age 60");

    // The same provider answer is fine when the service asked for nothing, and the ID token says
    // when the person really logged in.
    let (_, back) = login(&app, &mock, &[]).await?;
    let claims = id_token_claims(&app, &back).await?;
    let auth_time = claims.claim("auth_time").and_then(Value::as_i64).expect("auth_time from upstream");
    let now = chrono::Utc::now().timestamp();
    assert!((now - 660..=now - 590).contains(&auth_time), "the upstream auth_time, not now: {auth_time} vs {now}");
    app.stop().await
}
backend_test!(an_upstream_login_older_than_max_age_ends_with_login_required);

pub async fn a_fresh_upstream_login_within_max_age_gets_a_code_with_its_auth_time(ctx: TestContext) -> TestResult {
    let (mock, app) = with_mock(&ctx).await?;
    mock.op.set(|op| op.behaviour.auth_time_age_secs = Some(5));
    let (_, back) = login(&app, &mock, &[("max_age", "60")]).await?;
    let claims = id_token_claims(&app, &back).await?;
    let auth_time = claims.claim("auth_time").and_then(Value::as_i64).expect("auth_time is required with max_age");
    let now = chrono::Utc::now().timestamp();
    assert!((now - 60..=now).contains(&auth_time), "{auth_time} vs {now}");
    app.stop().await
}
backend_test!(a_fresh_upstream_login_within_max_age_gets_a_code_with_its_auth_time);

/// With `prompt=login` the person must have logged in after this login began; an older upstream
/// session does not do.
pub async fn prompt_login_refuses_an_upstream_login_from_before_the_request(ctx: TestContext) -> TestResult {
    let (mock, app) = with_mock(&ctx).await?;
    mock.op.set(|op| op.behaviour.auth_time_age_secs = Some(300));
    let (_, back) = login(&app, &mock, &[("prompt", "login")]).await?;
    assert_eq!(service_error(&app, &back).as_deref(), Some("login_required"));
    app.stop().await
}
backend_test!(prompt_login_refuses_an_upstream_login_from_before_the_request);

/// Without `auth_time` upstream: refused where the service needs it, otherwise the ID token has none
/// (pforte does not invent one).
pub async fn a_missing_upstream_auth_time_is_never_replaced_by_now(ctx: TestContext) -> TestResult {
    let (mock, app) = with_mock(&ctx).await?;
    mock.op.set(|op| op.behaviour.auth_time_age_secs = None);
    for asked in [[("max_age", "600")], [("prompt", "login")]] {
        let (_, back) = login(&app, &mock, &asked).await?;
        assert_eq!(service_error(&app, &back).as_deref(), Some("login_required"), "{asked:?}");
    }
    let (_, back) = login(&app, &mock, &[]).await?;
    let claims = id_token_claims(&app, &back).await?;
    assert_eq!(claims.claim("auth_time"), None, "no auth_time upstream, none invented");
    app.stop().await
}
backend_test!(a_missing_upstream_auth_time_is_never_replaced_by_now);

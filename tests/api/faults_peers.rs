//! What stays up while PostgreSQL is cut away (issue 16, item 2 and the login pages): the JWKS and
//! discovery come from memory and do not change; an unknown key id does not send every request to
//! the database; a browser at `/authorize` or coming back from the account provider gets a page that
//! says pforte is briefly unavailable (503, Retry-After), or, when the client and redirect URI are
//! known to be genuine, the OAuth error `temporarily_unavailable` back at the service. And an
//! account provider whose token endpoint fails: a page, and the login can be started again.
//! The cut is real: a TCP proxy between pforte and PostgreSQL resets every connection.

use std::sync::Arc;
use std::time::Duration;

use figment::Figment;
use josekit::jws::{JwsHeader, ES256};
use josekit::jwt::JwtPayload;
use pforte::clock::{ManualClock, SharedClock, SystemClock};
use serde_json::Value;

use crate::helpers::{copy_dir, eventually, TestApp, TestContext, TestResult, MANIFEST_DIR};
use crate::login::{location, redeem};
use crate::oidc::{demo_request, location_query, VERIFIER};
use crate::tcp_proxy::TcpProxy;
use crate::upstream::mock_op::{MockOp, TokenFault};
use crate::upstream::{BASIC_AUTH, MOCK_IDP};

/// The app with its database behind a proxy the test cuts.
pub async fn app_behind_proxy(
    ctx: &TestContext,
    clock: SharedClock,
    adjust: impl FnOnce(Figment) -> Figment,
) -> anyhow::Result<(TcpProxy, TestApp)> {
    let (proxy, url) = TcpProxy::in_front_of(&ctx.database_url).await?;
    let app = ctx.spawn_app_with(|f| adjust(f.merge(("database.url", url))), clock).await;
    Ok((proxy, app))
}

/// Waits until `/readyz` answers `status`: proof the cut (or the restore) has reached pforte.
pub async fn until_ready_is(app: &TestApp, status: u16) -> TestResult {
    eventually(Duration::from_secs(15), &format!("/readyz answers {status}"), || async move {
        Ok((app.get("/readyz").await.status() == status).then_some(()))
    })
    .await
}

pub async fn jwks_and_discovery_stay_the_same_throughout_a_database_cut(ctx: TestContext) -> TestResult {
    let (proxy, app) = app_behind_proxy(&ctx, Arc::new(SystemClock), |f| f).await?;
    let jwks = app.get("/.well-known/jwks.json").await;
    assert_eq!(jwks.status(), 200);
    let jwks = jwks.text().await?;
    let discovery = app.get("/.well-known/openid-configuration").await.text().await?;

    proxy.cut();
    until_ready_is(&app, 503).await?;
    // 16 online services refresh their caches during the outage, each several times.
    let rounds = futures_util::future::join_all((0..16).map(|_| async {
        let mut seen = Vec::new();
        for _ in 0..10 {
            for path in ["/.well-known/jwks.json", "/.well-known/openid-configuration"] {
                let sent = std::time::Instant::now();
                let response = app.get(path).await;
                let took = sent.elapsed();
                seen.push((path, response.status().as_u16(), response.text().await.unwrap_or_default(), took));
            }
        }
        seen
    }))
    .await;
    let answers: Vec<_> = rounds.into_iter().flatten().collect();
    let slowest = answers.iter().map(|(_, _, _, took)| *took).max().unwrap_or_default();
    eprintln!("jwks/discovery during the cut: {} answers, slowest {slowest:?}", answers.len());
    for (path, status, body, _) in answers {
        assert_eq!(status, 200, "{path} during the cut: {body}");
        let expected = if path.ends_with("jwks.json") { &jwks } else { &discovery };
        assert_eq!(&body, expected, "{path} changed during the cut");
    }

    proxy.restore();
    until_ready_is(&app, 200).await?;
    assert_eq!(app.get("/.well-known/jwks.json").await.text().await?, jwks);
    app.stop().await
}
postgres_test!(jwks_and_discovery_stay_the_same_throughout_a_database_cut);

/// An access token pforte never signed: its header names `kid`, a key pforte does not have.
fn forged_access_token(app: &TestApp, kid: &str) -> anyhow::Result<String> {
    let pair = ES256.generate_key_pair()?;
    let mut header = JwsHeader::new();
    header.set_token_type("at+jwt");
    header.set_key_id(kid);
    let mut payload = JwtPayload::new();
    payload.set_issuer(&app.address);
    payload.set_subject("someone");
    payload.set_expires_at(&(std::time::SystemTime::now() + Duration::from_secs(300)));
    Ok(josekit::jwt::encode_with_signer(&payload, &header, &ES256.signer_from_jwk(&pair.to_jwk_private_key())?)?)
}

async fn userinfo_status(app: &TestApp, token: &str) -> anyhow::Result<u16> {
    Ok(app.client.get(app.url("/userinfo")).bearer_auth(token).send().await?.status().as_u16())
}

/// Tokens with made-up key ids must not become one database query each: within the cooldown after
/// the keys were read, an unknown kid is refused from memory, so it is refused even with the
/// database cut; after the cooldown pforte asks the database again, and with the database away
/// that is "could not check" (5xx), not a refusal.
pub async fn an_unknown_key_id_reads_the_keys_at_most_once_per_cooldown(ctx: TestContext) -> TestResult {
    let clock = ManualClock::at_millis(chrono::Utc::now().timestamp_millis());
    let (proxy, app) = app_behind_proxy(&ctx, Arc::new(clock.clone()), |f| f).await?;
    assert_eq!(userinfo_status(&app, &forged_access_token(&app, "es256-1-0000aaaa")?).await?, 401);

    proxy.cut();
    until_ready_is(&app, 503).await?;
    let shared = &app;
    let statuses =
        futures_util::future::join_all((0..16).map(|n| async move {
            userinfo_status(shared, &forged_access_token(shared, &format!("es256-{n}-x"))?).await
        }))
        .await;
    for status in statuses {
        assert_eq!(status?, 401, "an unknown kid within the cooldown is refused from memory");
    }

    clock.advance_secs(6);
    let status = userinfo_status(&app, &forged_access_token(&app, "es256-2-0000bbbb")?).await?;
    assert!((500..600).contains(&status), "after the cooldown the database is asked, and it is away: {status}");

    proxy.restore();
    until_ready_is(&app, 200).await?;
    app.stop().await
}
postgres_test!(an_unknown_key_id_reads_the_keys_at_most_once_per_cooldown);

fn query_string(params: &[(String, String)]) -> String {
    url::form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish()
}

/// The page pforte shows a browser while its database is away.
async fn assert_briefly_unavailable_page(response: reqwest::Response) -> TestResult {
    assert_eq!(response.status(), 503);
    assert!(response.headers().get("retry-after").is_some(), "503 without Retry-After");
    assert!(response.headers()["content-type"].to_str()?.starts_with("text/html"));
    let page = response.text().await?;
    assert!(page.contains("briefly unavailable"), "{page}");
    Ok(())
}

/// `/authorize` during a cut. A request whose client and redirect URI are in the registry (files, in
/// memory) is sent back to the service with `temporarily_unavailable` and its `state`; a pushed
/// request cannot be read, so nothing about it can be trusted: a page.
pub async fn authorize_during_a_database_cut_answers_temporarily_unavailable(ctx: TestContext) -> TestResult {
    let (proxy, app) = app_behind_proxy(&ctx, Arc::new(SystemClock), |f| f).await?;
    proxy.cut();
    until_ready_is(&app, 503).await?;

    // Sixteen browsers at once.
    let path = format!("/authorize?{}", query_string(&demo_request(&app)));
    let answers = futures_util::future::join_all((0..16).map(|_| app.get(&path))).await;
    for answer in answers {
        assert_eq!(answer.status(), 303, "back to the service, whose redirect URI is known genuine");
        assert!(location(&answer).starts_with(&app.url("/demo/callback?")), "{}", location(&answer));
        let back = location_query(&answer);
        assert_eq!(back.get("error").map(String::as_str), Some("temporarily_unavailable"));
        assert_eq!(back.get("state").map(String::as_str), Some("client-state-1"));
        assert_eq!(back.get("iss"), Some(&app.address));
    }

    let pushed = app
        .client
        .get(app.url("/authorize?client_id=demo&request_uri=urn:ietf:params:oauth:request_uri:abc"))
        .header("accept-language", "en")
        .send()
        .await?;
    assert_briefly_unavailable_page(pushed).await?;

    proxy.restore();
    until_ready_is(&app, 200).await?;
    let again = app.get(&format!("/authorize?{}", query_string(&demo_request(&app)))).await;
    assert!(again.status() == 200 || again.status() == 303, "the login works again: {}", again.status());
    assert!(!location_query(&again).contains_key("error"), "{}", location(&again));
    app.stop().await
}
postgres_test!(authorize_during_a_database_cut_answers_temporarily_unavailable);

/// The browser comes back from the account provider (or picks a provider) while the database is
/// away: the login cannot be found, so a page, 503 with Retry-After, never a 500.
pub async fn login_steps_during_a_database_cut_show_a_page_not_an_error(ctx: TestContext) -> TestResult {
    let (proxy, app) = app_behind_proxy(&ctx, Arc::new(SystemClock), |f| f).await?;
    proxy.cut();
    until_ready_is(&app, 503).await?;
    let cookie = "__Host-pforte-browser=browser-1";
    let callback = app
        .client
        .get(app.url("/callback/bundid-sim?code=upstream-code&state=upstream-state"))
        .header("cookie", cookie)
        .header("accept-language", "en")
        .send()
        .await?;
    assert_briefly_unavailable_page(callback).await?;
    let choice = app
        .client
        .post(app.url("/login/some-login"))
        .header("cookie", cookie)
        .header("accept-language", "en")
        .form(&[("provider", "bundid-sim")])
        .send()
        .await?;
    assert_briefly_unavailable_page(choice).await?;
    proxy.restore();
    app.stop().await
}
postgres_test!(login_steps_during_a_database_cut_show_a_page_not_an_error);

/// The keys in memory still sign and publish: a token issued while the database was up, and one
/// issued during the cut (client credentials need no database), both verify against the JWKS
/// served during the cut, as an online service checks them.
pub async fn tokens_signed_before_and_during_a_cut_verify_with_the_jwks_served_during_it(
    ctx: TestContext,
) -> TestResult {
    let (proxy, app) = app_behind_proxy(&ctx, Arc::new(SystemClock), |f| f).await?;
    let before = crate::payment_api::bearer(&app).await?;
    proxy.cut();
    until_ready_is(&app, 503).await?;
    let during = crate::payment_api::bearer(&app).await?;
    let jwks: Value = app.get("/.well-known/jwks.json").await.json().await?;
    for token in [before, during] {
        anyhow::ensure!(!token.is_empty(), "no token issued");
        let header = josekit::jwt::decode_header(&token)?;
        let kid = header.claim("kid").and_then(Value::as_str).unwrap_or_default().to_owned();
        let key = jwks["keys"].as_array().into_iter().flatten().find(|k| k["kid"] == kid.as_str()).cloned();
        let key =
            key.ok_or_else(|| anyhow::anyhow!("the signing key {kid} is not in the JWKS served during the cut"))?;
        let jwk = josekit::jwk::Jwk::from_map(key.as_object().cloned().unwrap_or_default())?;
        josekit::jwt::decode_with_verifier(&token, &ES256.verifier_from_jwk(&jwk)?)?;
    }
    proxy.restore();
    app.stop().await
}
postgres_test!(tokens_signed_before_and_during_a_cut_verify_with_the_jwks_served_during_it);

/// A running pforte whose demo client logs in only through `op`, a mock account provider.
pub(crate) async fn app_with_account_provider(ctx: &TestContext, op: &MockOp) -> anyhow::Result<TestApp> {
    let root = ctx.dir.path();
    let providers = root.join("providers");
    copy_dir(&std::path::Path::new(MANIFEST_DIR).join("providers"), &providers)?;
    let entry = MOCK_IDP.replace("{issuer}", &op.issuer).replace("{client_auth}", BASIC_AUTH);
    std::fs::write(providers.join("identity/mock.toml"), entry)?;
    let clients = ctx.clients_with(&[]);
    let demo = std::fs::read_to_string(format!("{clients}/demo.toml"))?;
    // Whatever providers the shipped demo client lists, here it lists only the mock.
    let demo: String = demo
        .lines()
        .map(|line| if line.starts_with("identity_providers = ") { "identity_providers = [\"mock\"]" } else { line })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(format!("{clients}/demo.toml"), demo)?;
    Ok(ctx
        .spawn_app_with(
            |f| f.merge(("registry.providers", providers)).merge(("registry.clients", clients)),
            Arc::new(SystemClock),
        )
        .await)
}

/// From `/authorize` to the account provider and back: the answer at pforte's callback.
pub(crate) async fn login_through(app: &TestApp, op: &MockOp) -> anyhow::Result<reqwest::Response> {
    let start = app.get(&format!("/authorize?{}", query_string(&demo_request(app)))).await;
    assert_eq!(start.status(), 303, "straight to the only account provider");
    let cookie = start.headers()["set-cookie"].to_str()?.split(';').next().unwrap_or_default().to_owned();
    let back = op.authorize(&url::Url::parse(&location(&start))?);
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(
            [("code", back.code), ("state", back.state), ("iss", back.iss)]
                .iter()
                .filter_map(|(k, v)| v.as_ref().map(|v| (k, v))),
        )
        .finish();
    let callback = app.client.get(app.url(&format!("/callback/mock?{query}"))).header("cookie", cookie);
    Ok(callback.header("accept-language", "en").send().await?)
}

/// The account provider's token endpoint answers 500, or hangs, when pforte redeems the code: the
/// person sees a page saying the account service is unreachable, with the way back to the service
/// (`temporarily_unavailable`); once the provider answers again, the login started anew succeeds.
pub async fn an_account_provider_failing_at_the_token_endpoint_shows_a_page_and_the_login_can_be_retried(
    ctx: TestContext,
) -> TestResult {
    let op = MockOp::start(ManualClock::at_millis(chrono::Utc::now().timestamp_millis())).await?;
    let app = app_with_account_provider(&ctx, &op).await?;
    for fault in [TokenFault::Status500, TokenFault::Hang] {
        op.set(|op| op.behaviour.token = fault);
        let started = std::time::Instant::now();
        let page = login_through(&app, &op).await?;
        assert_eq!(page.status(), 502, "{fault:?}");
        assert!(started.elapsed() < Duration::from_secs(15), "{fault:?}: answered within the upstream timeout");
        let html = page.text().await?;
        assert!(html.contains("Account service unreachable"), "{fault:?}: {html}");
        assert!(html.contains("error=temporarily_unavailable"), "{fault:?}: the way back tells the service: {html}");
    }

    op.set(|op| op.behaviour.token = TokenFault::None);
    let done = login_through(&app, &op).await?;
    assert_eq!(done.status(), 303);
    let code = location_query(&done).get("code").cloned().ok_or_else(|| anyhow::anyhow!("{}", location(&done)))?;
    assert_eq!(redeem(&app, &code, VERIFIER).await.status(), 200, "the retried login completes");
    app.stop().await
}
backend_test!(an_account_provider_failing_at_the_token_endpoint_shows_a_page_and_the_login_can_be_retried);

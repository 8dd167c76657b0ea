//! Issue 16: code redemptions at `/token` while the database is cut. Each client logs a citizen in
//! through the simulator and redeems the code, over and over; the cut falls between some logins and
//! their redemptions. `/token` answers only 200 or 503; a login is never left redeemed without the
//! tokens it issued noted; a code whose redemption met the outage is redeemed by the retry, unless
//! the redemption was committed and only its answer lost (then the retry is refused, as a replay).
//! And a sweep: every endpoint that needs the database answers 503 with `Retry-After` while it is
//! away, each in its own way (problem+json, OAuth JSON, a page).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::faults_db::{app_behind_proxy, assert_only_success_or_unavailable, under_an_outage, Answer, CLIENTS};
use crate::helpers::{TestApp, TestContext, TestResult};
use crate::keys::any_pool;
use crate::login::{citizen_request, location, redeem};
use crate::oidc::{location_query, VERIFIER};

/// A browser's login up to the code, or `None` when a step failed (e.g. the database is away).
pub async fn try_login(app: &TestApp) -> Option<String> {
    let mut cookie = String::new();
    let get = |url: String, cookie: String| {
        let request = app.client.get(url).header("cookie", cookie);
        async move { request.send().await.ok() }
    };
    let params = citizen_request(app, "openid profile", "http://eidas.europa.eu/LoA/substantial");
    let query = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(&params).finish();
    let first = get(app.url(&format!("/authorize?{query}")), cookie.clone()).await?;
    for value in first.headers().get_all("set-cookie") {
        if let Some(pair) = value.to_str().ok()?.split(';').next().filter(|p| p.starts_with("__Host-pforte-browser=")) {
            cookie = pair.to_owned();
        }
    }
    let upstream = match first.status().as_u16() {
        200 => {
            let html = first.text().await.ok()?;
            let action = html.split("action=\"").nth(1)?.split('"').next()?.to_owned();
            let request =
                app.client.post(app.url(&action)).header("cookie", &cookie).form(&[("provider", "bundid-sim")]);
            request.send().await.ok()?
        }
        303 => first,
        _ => return None,
    };
    let simulator = location(&upstream);
    let page = get(simulator.clone(), String::new()).await?.text().await.ok()?;
    let request_id = page.split("name=\"request\" value=\"").nth(1)?.split('"').next()?.to_owned();
    let decide = simulator.split("/authorize").next()?.to_owned() + "/authorize/decide";
    let form =
        [("request", request_id.as_str()), ("persona", "erika"), ("level", "STORK-QAA-Level-3"), ("action", "login")];
    let back = app.client.post(decide).form(&form).send().await.ok()?;
    let answer = get(location(&back), cookie).await?;
    location_query(&answer).get("code").cloned()
}

/// Logs in until it works (the database may be away for a while).
async fn code(app: &TestApp) -> String {
    loop {
        if let Some(code) = try_login(app).await {
            return code;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn a_database_cut_during_code_redemptions_answers_only_200_or_503_and_half_redeems_nothing(
    ctx: TestContext,
) -> TestResult {
    let (proxy, app) = app_behind_proxy(&ctx, |f| f).await?;
    let app = Arc::new(app);
    // One code per client, redeemed while the database is surely away; then login and redemption
    // again and again, across the restore.
    let mut stock = Vec::new();
    for _ in 0..CLIENTS {
        stock.push(code(&app).await);
    }
    let stock = Arc::new(stock);
    let (answers, restored) = under_an_outage(&proxy, {
        let app = app.clone();
        move |client, n| {
            let (app, stock) = (app.clone(), stock.clone());
            async move {
                let code = if n == 0 {
                    tokio::time::sleep(Duration::from_millis(1000)).await;
                    stock[client].clone()
                } else {
                    code(&app).await
                };
                let response = redeem(&app, &code, VERIFIER).await;
                Some(Answer::from(code, Ok(response)).await)
            }
        }
    })
    .await?;
    assert_only_success_or_unavailable("code redemptions", &answers, restored)?;

    let mut retried: BTreeMap<u16, usize> = BTreeMap::new();
    for answer in answers.iter().filter(|a| a.status == 503) {
        let again = redeem(&app, &answer.label, VERIFIER).await;
        let status = again.status().as_u16();
        let body: Value = again.json().await.unwrap_or_default();
        assert!(
            status == 200 || (status == 400 && body["error"] == "invalid_grant"),
            "a retried redemption is answered or refused as a replay: {status} {body}"
        );
        *retried.entry(status).or_default() += 1;
    }
    println!("code redemptions: retries after the outage by status {retried:?}");

    let pool = any_pool(&ctx.database_url).await?;
    let half: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM login_transactions WHERE redeemed_at IS NOT NULL \
         AND (access_jti IS NULL OR identity_sealed IS NOT NULL)",
    )
    .fetch_one(&pool)
    .await?;
    assert_eq!(half, 0, "every redeemed login notes its access token and holds no identity any more");
    Ok(())
}
postgres_test!(a_database_cut_during_code_redemptions_answers_only_200_or_503_and_half_redeems_nothing);

/// One request of the sweep below: what it is, and the request.
type Probe = (&'static str, reqwest::RequestBuilder);

pub async fn every_endpoint_that_needs_the_database_answers_503_with_retry_after_while_it_is_away(
    ctx: TestContext,
) -> TestResult {
    let (proxy, app) = app_behind_proxy(&ctx, |f| f).await?;
    let payment_token = crate::payment_api::bearer(&app).await?;
    let id = crate::payment_surface::open_payment(&app, &payment_token, "SWEEP-1").await?;
    let finance_token = crate::finance::finance_token(&ctx, crate::payment_surface::TENANT)?;
    let code = code(&app).await;
    let tokens: Value = redeem(&app, &code, VERIFIER).await.json().await?;
    let access = tokens["access_token"].as_str().unwrap_or_default().to_owned();
    let demo = |request: reqwest::RequestBuilder| request.basic_auth("demo", Some(crate::oidc::DEMO_SECRET));
    let payment = crate::payment_surface::payment_path(&id);
    let par_form = crate::oidc::demo_request(&app);
    // The token sign-in form needs this browser's sign-in cookie and its form token.
    let mut clerk = crate::finance_staff::Clerk::new(&app);
    let csrf = clerk.sign_in_form_token().await;
    let sign_in_cookie = clerk.cookie_header();
    let probes = |app: &TestApp| -> Vec<Probe> {
        let c = &app.client;
        vec![
            ("payment read", c.get(app.url(&payment)).bearer_auth(&payment_token)),
            ("payment read, Basic", demo(c.get(app.url(&payment)))),
            ("refund list", c.get(app.url(&format!("{payment}/refunds"))).bearer_auth(&payment_token)),
            ("pay link", c.get(app.url(&format!("/pay/{id}")))),
            ("userinfo", c.get(app.url("/userinfo")).bearer_auth(&access)),
            (
                "token, code",
                demo(c.post(app.url("/token"))).form(&[
                    ("grant_type", "authorization_code"),
                    ("code", "x"),
                    ("code_verifier", VERIFIER),
                ]),
            ),
            ("par", demo(c.post(app.url("/par"))).form(&par_form)),
            ("revoke", demo(c.post(app.url("/revoke"))).form(&[("token", access.as_str())])),
            (
                "bookings",
                c.get(app.url(&format!("/finance/{}/bookings", crate::payment_surface::TENANT)))
                    .bearer_auth(&finance_token),
            ),
            (
                "finance login",
                c.post(app.url("/finance/login")).header("cookie", &sign_in_cookie).form(&[
                    ("csrf", csrf.as_str()),
                    ("tenant", crate::payment_surface::TENANT),
                    ("token", finance_token.as_str()),
                ]),
            ),
            ("readyz", c.get(app.url("/readyz"))),
        ]
    };
    proxy.cut();
    let mut wrong = Vec::new();
    for (what, request) in probes(&app) {
        let response = request.send().await?;
        let status = response.status().as_u16();
        let retry_after = response.headers().contains_key("retry-after");
        let kind = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let body = response.text().await.unwrap_or_default();
        // OAuth endpoints say it the OAuth way; pages are pages; the rest is problem+json.
        let said = match what {
            "userinfo" | "token, code" | "par" | "revoke" => body.contains("\"temporarily_unavailable\""),
            "pay link" | "finance login" => kind.starts_with("text/html"),
            _ => kind == "application/problem+json",
        };
        println!("{what}: {status} {kind} retry-after: {retry_after}");
        if status != 503 || !retry_after || !said {
            wrong.push(format!("{what}: {status} {kind} retry-after {retry_after}: {body}"));
        }
    }
    proxy.restore();
    assert!(wrong.is_empty(), "answered otherwise than 503 with Retry-After:\n{}", wrong.join("\n"));
    Ok(())
}
postgres_test!(every_endpoint_that_needs_the_database_answers_503_with_retry_after_while_it_is_away);

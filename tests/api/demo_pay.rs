//! The demo online service's pay step, driven by a real HTTP client that keeps cookies and follows
//! redirects like a browser: log in through the BundID simulator, pay the fee at the simulator, see
//! the status pforte reports and the signed notification the demo service received.

use std::time::{Duration, Instant};

use pforte::crypto::webhook::WebhookSecret;
use secrecy::SecretString;

use crate::helpers::{TestApp, TestContext, TestResult};

/// The demo client's development secret (config/clients/demo.toml).
const DEMO_HOOK_SECRET: &str = "whsec_XhU7Wkr3ASIjW+6x/kAbDvWY3+otvWFk7lCaaepiuJs=";

pub fn browser() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder().cookie_store(true).build()?)
}

pub fn attribute_after(html: &str, marker: &str) -> Option<String> {
    Some(html.split(marker).nth(1)?.split('"').next()?.replace("&amp;", "&"))
}

/// Logs Erika in at the demo service through pforte and the BundID simulator; returns the result page.
pub async fn log_in(app: &TestApp, browser: &reqwest::Client) -> anyhow::Result<String> {
    let choice = browser.get(app.url("/demo/login?level=substantial&scope=profile")).send().await?;
    assert_eq!(choice.status(), 200, "pforte's choice page");
    let action = attribute_after(&choice.text().await?, "action=\"").expect("choice form");
    let simulator = browser.post(app.url(&action)).form(&[("provider", "bundid-sim")]).send().await?;
    assert_eq!(simulator.status(), 200, "the simulator's login page");
    let decide =
        simulator.url().as_str().split("/authorize").next().expect("simulator base").to_owned() + "/authorize/decide";
    let request = attribute_after(&simulator.text().await?, "name=\"request\" value=\"").expect("request id");
    let form =
        [("request", request.as_str()), ("persona", "erika"), ("level", "STORK-QAA-Level-3"), ("action", "login")];
    let result = browser.post(decide).form(&form).send().await?;
    assert_eq!(result.status(), 200);
    assert!(result.url().as_str().starts_with(&app.url("/demo/callback")), "{}", result.url());
    Ok(result.text().await?)
}

pub async fn a_citizen_pays_the_fee_and_sees_payed_and_a_verified_notification(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let browser = browser()?;
    let logged_in = log_in(&app, &browser).await?;
    assert!(logged_in.contains("Sie sind angemeldet") && logged_in.contains("Gebühr bezahlen"), "{logged_in}");
    assert!(logged_in.contains("id=\"authority-09162000\"") && logged_in.contains("id=\"authority-03241001\""));
    let key = attribute_after(&logged_in, "name=\"key\" value=\"").expect("the form's Idempotency-Key");

    // Hannover pays through simulator B.
    let form = [("authority", "03241001"), ("key", key.as_str())];
    let pay_page = browser.post(app.url("/demo/pay")).form(&form).send().await?;
    assert_eq!(pay_page.status(), 200);
    assert!(pay_page.url().as_str().starts_with(&app.url("/dev/pay-b/page/")), "{}", pay_page.url());
    let page_url = pay_page.url().clone();
    assert!(pay_page.text().await?.contains("12,00"), "the fee on the pay page");
    let back = browser.post(page_url).form(&[("method", "CREDITCARD"), ("action", "pay")]).send().await?;
    assert_eq!(back.status(), 200);
    let payment_url = back.url().clone();
    assert!(payment_url.as_str().starts_with(&app.url("/demo/pay/return?order=")), "{payment_url}");
    let html = back.text().await?;
    assert!(html.contains("<code>PAYED</code>") && html.contains("Die Gebühr ist bezahlt"), "{html}");
    let transaction = attribute_after(&html, "(<code>transactionId</code>)</small></th><td><code>")
        .and_then(|rest| rest.split('<').next().map(str::to_owned))
        .expect("the transactionId on the page");

    // pforte's worker delivers the notification within seconds; the page shows it once verified.
    let deadline = Instant::now() + Duration::from_secs(30);
    let shown = loop {
        let page = browser.get(payment_url.clone()).send().await?.text().await?;
        if page.contains("payment.status_changed") {
            break page;
        }
        assert!(Instant::now() < deadline, "no notification shown in time: {page}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(shown.contains("gültig") && shown.contains("msg_"), "{shown}");
    // The worker records the demo's 2xx answer right after it arrived; the operator's log shows it.
    loop {
        let list = ctx.cli_ok(&["notifications", "list", "--transaction", &transaction])?;
        let rows: Vec<&str> = list.lines().filter(|line| line.starts_with("msg_")).collect();
        assert_eq!(rows.len(), 1, "one status change, one message: {list}");
        if rows[0].split_whitespace().nth(3) == Some("delivered") {
            break;
        }
        assert!(Instant::now() < deadline, "the delivery is not recorded: {list}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Sending the same form again makes no second payment: the key replays the first answer.
    let again = browser.post(app.url("/demo/pay")).form(&form).send().await?;
    assert_eq!(again.url(), &payment_url, "straight back to the paid payment");
    assert!(again.text().await?.contains(&transaction));
    app.stop().await
}
backend_test!(a_citizen_pays_the_fee_and_sees_payed_and_a_verified_notification);

pub async fn the_pay_step_needs_a_login_at_the_demo_service(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let form = [("authority", "09162000"), ("key", "aaaaaaaaaaaaaaaaaaaaaaaa")];
    let response = browser()?.post(app.url("/demo/pay")).form(&form).send().await?;
    assert_eq!(response.status(), 403);
    assert!(response.text().await?.contains("Bitte melden Sie sich zuerst"));
    app.stop().await
}
backend_test!(the_pay_step_needs_a_login_at_the_demo_service);

/// Sends a notification to the demo service signed with `secret` (the current time, a fixed id).
async fn notify(app: &TestApp, secret: &str) -> anyhow::Result<reqwest::Response> {
    let body = r#"{"type":"payment.status_changed","data":{"transactionId":"T-forged","status":"PAYED"}}"#;
    let secret = WebhookSecret::parse(&SecretString::from(secret.to_owned()))?;
    let timestamp = chrono::Utc::now().timestamp();
    let signature = secret.sign("msg_test", timestamp, body.as_bytes())?;
    Ok(app
        .client
        .post(app.url("/demo/notifications"))
        .header("content-type", "application/json")
        .header("webhook-id", "msg_test")
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await?)
}

pub async fn a_notification_signed_with_another_secret_is_refused(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let other = WebhookSecret::generate();
    let refused = notify(&app, secrecy::ExposeSecret::expose_secret(&other)).await?;
    assert_eq!(refused.status(), 400);
    // The control: the registered secret is accepted.
    assert_eq!(notify(&app, DEMO_HOOK_SECRET).await?.status(), 204);
    app.stop().await
}
backend_test!(a_notification_signed_with_another_secret_is_refused);

pub async fn an_unsigned_notification_is_refused(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let response = app
        .client
        .post(app.url("/demo/notifications"))
        .header("content-type", "application/json")
        .body(r#"{"type":"payment.status_changed","data":{"transactionId":"T","status":"PAYED"}}"#)
        .send()
        .await?;
    assert_eq!(response.status(), 400);
    app.stop().await
}
backend_test!(an_unsigned_notification_is_refused);

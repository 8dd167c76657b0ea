//! pmPayment end to end: the authority 09162000 routed to a pmpayment provider file made for the
//! test (none is shipped), pforte's adapter talking to the development peer under `/dev/pmpay`, the
//! citizen on the peer's pay page, the peer's notify to `/callbacks/payment/pm-pay`, and every way
//! such a callback can be wrong. Callbacks the tests send are signed here with their own HMAC code.

use std::path::Path;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use pforte::clock::SystemClock;
use pforte::dev::pmpayment::DEV_HMAC_KEY;
use pforte::dev::xbezahldienste::{Decision, PaymentMethod};
use serde_json::{json, Value};

use crate::helpers::{copy_dir, TestApp, TestContext, TestResult, MANIFEST_DIR};
use crate::oidc::DEMO_SECRET;

const PROVIDER: &str = "pm-pay";
const ENDPOINT: &str = "09162000";

/// pforte with 09162000 paying through a pmpayment provider at the peer, signing with `hmac_key`.
/// The status worker is off, so only what a test does reads statuses.
pub async fn spawn_pm_app(ctx: &TestContext, hmac_key: &str) -> anyhow::Result<TestApp> {
    spawn_pm_app_at(ctx, hmac_key, "{public_url}/dev/pmpay").await
}

/// As [`spawn_pm_app`], with the provider at `base_url` (a peer the test runs itself).
pub async fn spawn_pm_app_at(ctx: &TestContext, hmac_key: &str, base_url: &str) -> anyhow::Result<TestApp> {
    let root = ctx.dir.path().join("pm-registry");
    copy_dir(&Path::new(MANIFEST_DIR).join("providers"), &root.join("providers"))?;
    copy_dir(&Path::new(MANIFEST_DIR).join("config/tenants"), &root.join("tenants"))?;
    let provider = format!(
        "kind = \"pmpayment\"\ndisplay_name = \"pmPayment (Peer)\"\nbase_url = \"{base_url}\"\n\
         hmac_key = \"plain:{hmac_key}\"\ntimeout_secs = 5\n\n[auth]\nmethod = \"none\"\n"
    );
    std::fs::write(root.join(format!("providers/payment/{PROVIDER}.toml")), provider)?;
    let tenant = root.join(format!("tenants/{ENDPOINT}.toml"));
    let text = std::fs::read_to_string(&tenant)?;
    anyhow::ensure!(text.contains("provider = \"sim-pay\""), "the shipped tenant changed");
    std::fs::write(&tenant, text.replace("provider = \"sim-pay\"", &format!("provider = \"{PROVIDER}\"")))?;
    let app = ctx
        .spawn_app_with(
            |f| {
                f.merge(("registry.providers", root.join("providers")))
                    .merge(("registry.tenants", root.join("tenants")))
                    .merge(("workers.payment_status", false))
            },
            Arc::new(SystemClock),
        )
        .await;
    Ok(app)
}

async fn bearer(app: &TestApp) -> anyhow::Result<String> {
    let response = app
        .client
        .post(app.url("/token"))
        .basic_auth("demo", Some(DEMO_SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await?;
    let tokens: Value = response.json().await?;
    Ok(tokens["access_token"].as_str().unwrap_or_default().to_owned())
}

fn request_body(app: &TestApp, request_id: &str) -> Value {
    json!({
        "requestId": request_id, "requestTimestamp": "2026-11-29T10:00:00+01:00", "currency": "EUR",
        "grosAmount": 12.00, "purpose": "Geburtsurkunde 4711", "redirectUrl": app.url("/demo/bezahlt"),
        "items": [{ "totalNetAmount": 12.00, "bookingData": { "Haushaltsstelle": "1.3400.110000" } }]
    })
}

async fn create(app: &TestApp, token: &str, request_id: &str) -> anyhow::Result<reqwest::Response> {
    Ok(app
        .client
        .post(app.url(&format!("/paymenttransaction/demo-service/{ENDPOINT}")))
        .bearer_auth(token)
        .json(&request_body(app, request_id))
        .send()
        .await?)
}

/// Creates a payment through pforte's API; its transaction id.
pub async fn created(app: &TestApp, request_id: &str) -> anyhow::Result<String> {
    let response = create(app, &bearer(app).await?, request_id).await?;
    anyhow::ensure!(response.status() == 201, "create answered {}", response.status());
    let body: Value = response.json().await?;
    Ok(body["paymentInformation"]["transactionId"].as_str().unwrap_or_default().to_owned())
}

fn location(response: &reqwest::Response) -> String {
    response.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

async fn status_of(app: &TestApp, id: &str) -> anyhow::Result<String> {
    Ok(app.state.db.payment(id).await?.map(|p| p.status.as_str().to_owned()).unwrap_or_default())
}

/// The tester decides on the peer's pay page through pforte's `/pay`; pforte's status after the
/// peer's notify, before the browser comes back; then the way back to the service.
async fn decide_at_peer(app: &TestApp, id: &str, form: &[(&str, &str)]) -> anyhow::Result<String> {
    let to_provider = app.client.get(app.url(&format!("/pay/{id}"))).send().await?;
    assert_eq!(to_provider.status(), 303);
    let pay_page = location(&to_provider);
    assert!(pay_page.starts_with(&app.url("/dev/pmpay/page/")), "{pay_page}");
    let page = app.client.get(&pay_page).send().await?.text().await?;
    assert!(page.contains("12,00 €") && page.contains("Geburtsurkunde 4711"), "{page}");
    let decided = app.client.post(&pay_page).form(form).send().await?;
    assert_eq!(decided.status(), 303);
    assert_eq!(location(&decided), app.url(&format!("/pay/{id}/return")));
    let after_notify = status_of(app, id).await?;
    assert_eq!(app.state.db.provider_callbacks_of(id).await?.len(), 1, "the peer's notify was taken");
    let back = app.client.get(location(&decided)).send().await?;
    assert_eq!(location(&back), app.url("/demo/bezahlt"), "on to the service's redirectUrl");
    Ok(after_notify)
}

pub async fn a_citizen_pays_through_pmpayment_and_the_service_reads_payed(ctx: TestContext) -> TestResult {
    let app = spawn_pm_app(&ctx, DEV_HMAC_KEY).await?;
    let id = created(&app, "PM-1").await?;
    let row = app.state.db.payment(&id).await?.expect("payment");
    assert_eq!(row.provider_id, PROVIDER);
    assert_eq!(row.provider_reference.as_deref(), Some(id.as_str()), "pforte's id is the txid");

    let status = decide_at_peer(&app, &id, &[("method", "PAYPAL"), ("action", "pay")]).await?;
    assert_eq!(status, "PAYED", "the notify moved it before the browser came back");
    let read = app
        .client
        .get(app.url(&format!("/paymenttransaction/demo-service/{ENDPOINT}/{id}")))
        .bearer_auth(bearer(&app).await?)
        .send()
        .await?
        .json::<Value>()
        .await?;
    assert_eq!(read["paymentInformation"]["status"], "PAYED");
    assert_eq!(app.state.db.notifications_of(&id).await?.len(), 1, "the service is told once");
    app.stop().await
}
backend_test!(a_citizen_pays_through_pmpayment_and_the_service_reads_payed);

pub async fn cancelling_at_pmpayment_ends_the_payment_canceled(ctx: TestContext) -> TestResult {
    let app = spawn_pm_app(&ctx, DEV_HMAC_KEY).await?;
    let id = created(&app, "PM-2").await?;
    assert_eq!(decide_at_peer(&app, &id, &[("action", "cancel")]).await?, "CANCELED");
    app.stop().await
}
backend_test!(cancelling_at_pmpayment_ends_the_payment_canceled);

pub async fn failing_at_pmpayment_ends_the_payment_failed(ctx: TestContext) -> TestResult {
    let app = spawn_pm_app(&ctx, DEV_HMAC_KEY).await?;
    let id = created(&app, "PM-3").await?;
    assert_eq!(decide_at_peer(&app, &id, &[("action", "fail")]).await?, "FAILED");
    app.stop().await
}
backend_test!(failing_at_pmpayment_ends_the_payment_failed);

pub async fn a_create_signed_with_a_wrong_hmac_key_fails_and_nothing_is_stored(ctx: TestContext) -> TestResult {
    let app = spawn_pm_app(&ctx, "not-the-peers-key").await?;
    let response = create(&app, &bearer(&app).await?, "PM-WRONG-KEY").await?;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    let body: Value = response.json().await?;
    assert_eq!(body["functionalCode"], "UNSPECIFIED");
    assert!(!app.state.db.payment_exists("demo-service", ENDPOINT, "PM-WRONG-KEY").await?, "nothing stored");
    app.stop().await
}
backend_test!(a_create_signed_with_a_wrong_hmac_key_fails_and_nothing_is_stored);

// ---- callbacks sent by the test -------------------------------------------------------------

/// A notify form as the peer would send it, signed with `key` by the test's own HMAC code.
fn notify_form(key: &str, values: [&str; 6]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).expect("key");
    mac.update(values.join("|").as_bytes());
    let mut form = unsigned_form(values);
    form.push_str(&format!("&hash={}", hex::encode(mac.finalize().into_bytes())));
    form
}

fn unsigned_form(values: [&str; 6]) -> String {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in ["txid", "ags", "status", "amount", "timestamp", "eventId"].into_iter().zip(values) {
        form.append_pair(name, value);
    }
    form.finish()
}

fn now() -> String {
    chrono::Utc::now().timestamp().to_string()
}

async fn post_callback(app: &TestApp, provider: &str, form: String) -> anyhow::Result<(u16, Value)> {
    let response = app
        .client
        .post(app.url(&format!("/callbacks/payment/{provider}")))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await?;
    let status = response.status().as_u16();
    Ok((status, response.json().await.unwrap_or(Value::Null)))
}

/// Pays at the peer without its notify (as if the provider's callback got lost): a status read now
/// says PAYED, so a callback that wrongly reached one would move the payment.
fn paid_at_peer_silently(app: &TestApp, id: &str) -> TestResult {
    let simulators = app.simulators.as_ref().expect("simulators");
    let peer = simulators.pmpayment();
    peer.decide(id, Decision::Pay(PaymentMethod::Giropay), chrono::Utc::now()).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    Ok(())
}

/// Still INITIAL with only its creation event, no callback kept, nothing told to the service.
async fn assert_untouched(app: &TestApp, id: &str) -> TestResult {
    assert_eq!(status_of(app, id).await?, "INITIAL");
    assert_eq!(app.state.db.payment_events(id).await?.len(), 1, "no event");
    assert!(app.state.db.provider_callbacks_of(id).await?.is_empty(), "no callback kept");
    assert!(app.state.db.notifications_of(id).await?.is_empty(), "no notification");
    Ok(())
}

pub async fn audit_events(app: &TestApp) -> anyhow::Result<Vec<(String, String)>> {
    let rows = crate::audit::chained_events(app).await?;
    Ok(rows.into_iter().map(|row| (row.event, row.details)).collect())
}

pub async fn a_callback_with_a_wrong_signature_is_refused_counted_and_changes_nothing(ctx: TestContext) -> TestResult {
    let app = spawn_pm_app(&ctx, DEV_HMAC_KEY).await?;
    let id = created(&app, "CB-1").await?;
    paid_at_peer_silently(&app, &id)?;
    let form = notify_form("a-forged-key", [&id, ENDPOINT, "1", "1200", &now(), "evt-1"]);
    let (status, body) = post_callback(&app, PROVIDER, form).await?;
    assert_eq!((status, body["code"].as_str()), (401, Some("unauthorized")));
    assert_untouched(&app, &id).await?;
    assert!(audit_events(&app).await?.iter().all(|(e, _)| e != "payment.callback_refused"), "not a chain row");
    let counts = crate::finance::refused_counts(&app, "payment.callback_refused").await?;
    assert_eq!(counts, vec![(PROVIDER.to_owned(), "bad_signature".to_owned(), 1)]);
    app.stop().await
}
backend_test!(a_callback_with_a_wrong_signature_is_refused_counted_and_changes_nothing);

pub async fn a_callback_without_a_signature_is_refused_counted_and_changes_nothing(ctx: TestContext) -> TestResult {
    let app = spawn_pm_app(&ctx, DEV_HMAC_KEY).await?;
    let id = created(&app, "CB-2").await?;
    paid_at_peer_silently(&app, &id)?;
    let form = unsigned_form([&id, ENDPOINT, "1", "1200", &now(), "evt-2"]);
    assert_eq!(post_callback(&app, PROVIDER, form).await?.0, 401);
    assert_untouched(&app, &id).await?;
    let counts = crate::finance::refused_counts(&app, "payment.callback_refused").await?;
    assert_eq!(counts, vec![(PROVIDER.to_owned(), "missing_signature".to_owned(), 1)]);
    app.stop().await
}
backend_test!(a_callback_without_a_signature_is_refused_counted_and_changes_nothing);

async fn assert_refused_as_stale(ctx: TestContext, request_id: &str, offset_secs: i64) -> TestResult {
    let app = spawn_pm_app(&ctx, DEV_HMAC_KEY).await?;
    let id = created(&app, request_id).await?;
    paid_at_peer_silently(&app, &id)?;
    let when = (chrono::Utc::now().timestamp() + offset_secs).to_string();
    let form = notify_form(DEV_HMAC_KEY, [&id, ENDPOINT, "1", "1200", &when, "evt-3"]);
    let (status, body) = post_callback(&app, PROVIDER, form).await?;
    assert_eq!((status, body["code"].as_str()), (400, Some("bad_request")));
    assert_untouched(&app, &id).await?;
    app.stop().await
}

pub async fn a_callback_older_than_five_minutes_is_refused_and_changes_nothing(ctx: TestContext) -> TestResult {
    assert_refused_as_stale(ctx, "CB-3", -301).await
}
backend_test!(a_callback_older_than_five_minutes_is_refused_and_changes_nothing);

pub async fn a_callback_dated_more_than_five_minutes_ahead_is_refused_and_changes_nothing(
    ctx: TestContext,
) -> TestResult {
    assert_refused_as_stale(ctx, "CB-4", 301).await
}
backend_test!(a_callback_dated_more_than_five_minutes_ahead_is_refused_and_changes_nothing);

pub async fn a_callback_for_an_unknown_transaction_is_a_404_and_changes_nothing(ctx: TestContext) -> TestResult {
    let app = spawn_pm_app(&ctx, DEV_HMAC_KEY).await?;
    let id = created(&app, "CB-5").await?;
    let form = notify_form(DEV_HMAC_KEY, ["no-such-transaction", ENDPOINT, "1", "1200", &now(), "evt-5"]);
    let (status, body) = post_callback(&app, PROVIDER, form).await?;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
    assert_untouched(&app, &id).await?;
    app.stop().await
}
backend_test!(a_callback_for_an_unknown_transaction_is_a_404_and_changes_nothing);

pub async fn a_callback_naming_another_authority_is_a_404_and_changes_nothing(ctx: TestContext) -> TestResult {
    let app = spawn_pm_app(&ctx, DEV_HMAC_KEY).await?;
    let id = created(&app, "CB-6").await?;
    paid_at_peer_silently(&app, &id)?;
    let form = notify_form(DEV_HMAC_KEY, [&id, "03241001", "1", "1200", &now(), "evt-6"]);
    assert_eq!(post_callback(&app, PROVIDER, form).await?.0, 404);
    assert_untouched(&app, &id).await?;
    app.stop().await
}
backend_test!(a_callback_naming_another_authority_is_a_404_and_changes_nothing);

pub async fn a_replayed_callback_is_accepted_and_changes_nothing(ctx: TestContext) -> TestResult {
    let app = spawn_pm_app(&ctx, DEV_HMAC_KEY).await?;
    let id = created(&app, "CB-7").await?;
    let form = notify_form(DEV_HMAC_KEY, [&id, ENDPOINT, "1", "1200", &now(), "evt-7"]);
    let (status, body) = post_callback(&app, PROVIDER, form.clone()).await?;
    assert_eq!((status, body["outcome"].as_str()), (200, Some("recorded")));
    assert_eq!(status_of(&app, &id).await?, "INITIAL", "the read said open");
    let audit_before = audit_events(&app).await?.len();

    // Now the read would say PAYED; the same event again must not trigger it.
    paid_at_peer_silently(&app, &id)?;
    let (status, body) = post_callback(&app, PROVIDER, form).await?;
    assert_eq!((status, body["outcome"].as_str()), (200, Some("replay")));
    assert_eq!(status_of(&app, &id).await?, "INITIAL");
    assert_eq!(app.state.db.provider_callbacks_of(&id).await?, vec!["evt-7".to_owned()]);
    assert_eq!(app.state.db.payment_events(&id).await?.len(), 1);
    assert_eq!(audit_events(&app).await?.len(), audit_before);
    app.stop().await
}
backend_test!(a_replayed_callback_is_accepted_and_changes_nothing);

pub async fn a_callback_with_another_amount_flags_the_payment_and_does_not_move_it(ctx: TestContext) -> TestResult {
    let app = spawn_pm_app(&ctx, DEV_HMAC_KEY).await?;
    let id = created(&app, "CB-8").await?;
    paid_at_peer_silently(&app, &id)?;
    let form = notify_form(DEV_HMAC_KEY, [&id, ENDPOINT, "1", "1100", &now(), "evt-8"]);
    let (status, body) = post_callback(&app, PROVIDER, form.clone()).await?;
    assert_eq!((status, body["outcome"].as_str()), (200, Some("amount_mismatch")), "the provider may stop retrying");
    assert_eq!(status_of(&app, &id).await?, "INITIAL", "not moved, although the provider says paid");
    let events = app.state.db.payment_events(&id).await?;
    assert_eq!(events.len(), 2);
    let detail = events[1].detail.clone().unwrap_or_default();
    assert!(detail.starts_with("amount_mismatch") && detail.contains("11.00") && detail.contains("12.00"), "{detail}");
    assert!(app.state.db.notifications_of(&id).await?.is_empty());
    let flagged: Vec<_> =
        audit_events(&app).await?.into_iter().filter(|(e, _)| e == "payment.amount_mismatch").collect();
    assert_eq!(flagged.len(), 1);

    assert_eq!(post_callback(&app, PROVIDER, form).await?.1["outcome"], "replay", "flagged once");
    assert_eq!(app.state.db.payment_events(&id).await?.len(), 2);
    app.stop().await
}
backend_test!(a_callback_with_another_amount_flags_the_payment_and_does_not_move_it);

pub async fn a_signed_callback_records_what_the_status_read_says_not_what_it_claims(ctx: TestContext) -> TestResult {
    let app = spawn_pm_app(&ctx, DEV_HMAC_KEY).await?;
    // Claims FAILED (3); the provider's status read says PAYED.
    let paid = created(&app, "CB-9").await?;
    paid_at_peer_silently(&app, &paid)?;
    let form = notify_form(DEV_HMAC_KEY, [&paid, ENDPOINT, "3", "1200", &now(), "evt-9a"]);
    assert_eq!(post_callback(&app, PROVIDER, form).await?.0, 200);
    assert_eq!(status_of(&app, &paid).await?, "PAYED");
    assert_eq!(app.state.db.notifications_of(&paid).await?.len(), 1);
    // Claims PAYED (1); the read says still open.
    let open = created(&app, "CB-10").await?;
    let form = notify_form(DEV_HMAC_KEY, [&open, ENDPOINT, "1", "1200", &now(), "evt-9b"]);
    assert_eq!(post_callback(&app, PROVIDER, form).await?.0, 200);
    assert_eq!(status_of(&app, &open).await?, "INITIAL");
    assert!(app.state.db.notifications_of(&open).await?.is_empty());
    app.stop().await
}
backend_test!(a_signed_callback_records_what_the_status_read_says_not_what_it_claims);

pub async fn callbacks_for_providers_that_send_none_are_a_404(ctx: TestContext) -> TestResult {
    let app = spawn_pm_app(&ctx, DEV_HMAC_KEY).await?;
    let id = created(&app, "CB-11").await?;
    let form = notify_form(DEV_HMAC_KEY, [&id, ENDPOINT, "1", "1200", &now(), "evt-11"]);
    for provider in ["sim-pay", "no-such-provider"] {
        let (status, body) = post_callback(&app, provider, form.clone()).await?;
        assert_eq!((status, body["code"].as_str()), (404, Some("not_found")), "{provider}");
    }
    assert_untouched(&app, &id).await?;
    app.stop().await
}
backend_test!(callbacks_for_providers_that_send_none_are_a_404);

pub async fn the_pmpayment_peer_is_not_mounted_when_dev_simulators_is_off(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app_without_simulators().await?;
    let create = app.client.post(app.url("/dev/pmpay/payment/secure")).form(&[("ags", "x")]).send().await?;
    assert_eq!(create.status(), 404);
    for path in ["/dev/pmpay/payment/status/09162000/x", "/dev/pmpay/page/x"] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 404, "{path}");
        assert_eq!(response.json::<Value>().await?["code"], "not_found");
    }
    app.stop().await
}
backend_test!(the_pmpayment_peer_is_not_mounted_when_dev_simulators_is_off);

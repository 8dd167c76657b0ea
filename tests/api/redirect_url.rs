//! A payment's `redirectUrl`, where `/pay/{tx}/return` sends the citizen at the end: https, on an
//! origin the online service registered (its `redirect_uris` or `post_logout_redirect_uris`), so
//! pforte's origin is no open redirector (issue 14, finding 5).

use serde_json::Value;

use crate::helpers::{TestApp, TestContext, TestResult};
use crate::payment_api::{bearer, body, create};
use crate::payment_surface::{problem, TENANT};

async fn refused_redirect_url(app: &TestApp, redirect_url: &str, why: &str) -> TestResult {
    let token = bearer(app).await?;
    let mut request = body(app, "REDIRECT-BAD");
    request["redirectUrl"] = Value::String(redirect_url.to_owned());
    let refused = problem(create(app, &token, TENANT, &request, None).await?, 400, "VALIDATION_ERROR").await?;
    let detail = refused["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("redirectUrl") && detail.contains(why), "{redirect_url}: {refused}");
    assert!(!app.state.db.payment_exists("demo-service", TENANT, "REDIRECT-BAD").await?, "nothing created");
    Ok(())
}

pub async fn a_redirect_url_on_an_origin_the_service_did_not_register_is_refused(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    for url in [
        "https://phish.example/login".to_owned(),
        // The registered host on another port or scheme is another origin.
        "http://127.0.0.1:9/demo/bezahlt".to_owned(),
        app.url("/demo/bezahlt").replace("http://", "https://"),
    ] {
        refused_redirect_url(&app, &url, "registered").await?;
    }
    app.stop().await
}
backend_test!(a_redirect_url_on_an_origin_the_service_did_not_register_is_refused);

pub async fn a_plain_http_redirect_url_to_a_public_host_is_refused(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    refused_redirect_url(&app, "http://service.example/antrag/bezahlt", "https").await?;
    app.stop().await
}
backend_test!(a_plain_http_redirect_url_to_a_public_host_is_refused);

pub async fn a_redirect_url_on_the_services_registered_origin_is_accepted(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let token = bearer(&app).await?;
    let mut request = body(&app, "REDIRECT-OK");
    request["redirectUrl"] = Value::String(app.url("/demo/antrag/42/bezahlt?x=1"));
    assert_eq!(create(&app, &token, TENANT, &request, None).await?.status(), 201);
    app.stop().await
}
backend_test!(a_redirect_url_on_the_services_registered_origin_is_accepted);

//! pforte as OpenID Provider: discovery, authorization request checks, client authentication and the
//! token endpoint's refusals. Full logins through the upstream simulators are in `login.rs`.

use std::sync::Arc;

use josekit::jws::{JwsHeader, ES256};
use josekit::jwt::JwtPayload;
use pforte::clock::{Clock, ManualClock, SystemClock};
use serde_json::{json, Value};

use crate::helpers::{TestApp, TestContext, TestResult};
use crate::login::verify_id_token;

pub const DEMO_SECRET: &str = "demo-secret-change-me";
/// The PKCE pair of RFC 7636 appendix B.
pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// A valid authorization request of the demo client, as query pairs.
pub fn demo_request(app: &TestApp) -> Vec<(String, String)> {
    [
        ("client_id", "demo".to_owned()),
        ("redirect_uri", app.url("/demo/callback")),
        ("response_type", "code".to_owned()),
        ("scope", "openid profile".to_owned()),
        ("state", "client-state-1".to_owned()),
        ("nonce", "client-nonce-1".to_owned()),
        ("code_challenge", CHALLENGE.to_owned()),
        ("code_challenge_method", "S256".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

pub fn with(mut params: Vec<(String, String)>, key: &str, value: Option<&str>) -> Vec<(String, String)> {
    params.retain(|(k, _)| k != key);
    if let Some(value) = value {
        params.push((key.to_owned(), value.to_owned()));
    }
    params
}

pub async fn authorize(app: &TestApp, params: &[(String, String)]) -> anyhow::Result<reqwest::Response> {
    Ok(app.client.get(app.url("/authorize")).query(params).send().await?)
}

/// The query of a redirect's Location, as a map.
pub fn location_query(response: &reqwest::Response) -> std::collections::BTreeMap<String, String> {
    let location = response.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default();
    url::Url::parse(location).map(|u| u.query_pairs().into_owned().collect()).unwrap_or_default()
}

pub async fn discovery_describes_the_provider(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let response = app.get("/.well-known/openid-configuration").await;
    assert_eq!(response.status(), 200);
    let doc: Value = response.json().await?;
    assert_eq!(doc["issuer"], app.address);
    assert_eq!(doc["authorization_endpoint"], app.url("/authorize"));
    assert_eq!(doc["token_endpoint"], app.url("/token"));
    assert_eq!(doc["jwks_uri"], app.url("/.well-known/jwks.json"));
    assert_eq!(doc["response_types_supported"], json!(["code"]));
    assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
    assert_eq!(doc["subject_types_supported"], json!(["pairwise"]));
    let algs = doc["id_token_signing_alg_values_supported"].as_array().cloned().unwrap_or_default();
    assert!(algs.contains(&json!("ES256")) && !algs.contains(&json!("none")));
    app.stop().await
}
backend_test!(discovery_describes_the_provider);

pub async fn unknown_client_gets_an_error_page_and_no_redirect(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let response = authorize(&app, &with(demo_request(&app), "client_id", Some("nobody"))).await?;
    assert_eq!(response.status(), 400);
    assert!(response.headers().get("location").is_none());
    assert!(response.headers()["content-type"].to_str()?.starts_with("text/html"));
    assert!(response.text().await?.contains("not registered"));
    app.stop().await
}
backend_test!(unknown_client_gets_an_error_page_and_no_redirect);

pub async fn unregistered_redirect_uri_gets_an_error_page_and_no_redirect(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    for uri in ["https://attacker.example/callback", &app.url("/demo/callback?extra=1"), &app.url("/demo/callback/")] {
        let response = authorize(&app, &with(demo_request(&app), "redirect_uri", Some(uri))).await?;
        assert_eq!(response.status(), 400, "{uri}");
        assert!(response.headers().get("location").is_none(), "{uri}");
    }
    app.stop().await
}
backend_test!(unregistered_redirect_uri_gets_an_error_page_and_no_redirect);

/// Each case: a changed parameter and the `error` the client must receive on its redirect URI.
pub async fn invalid_requests_are_sent_back_with_error_state_and_iss(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let long = "x".repeat(5000);
    let cases: Vec<(&str, Option<&str>, &str)> = vec![
        ("code_challenge", None, "invalid_request"),
        ("code_challenge_method", None, "invalid_request"),
        ("code_challenge_method", Some("plain"), "invalid_request"),
        ("response_type", Some("token"), "unsupported_response_type"),
        ("response_type", Some("code id_token"), "unsupported_response_type"),
        ("scope", Some("profile"), "invalid_scope"),
        ("prompt", Some("none"), "login_required"),
        ("nonce", Some(long.as_str()), "invalid_request"),
        ("idp_hint", Some("not-a-provider"), "invalid_request"),
        ("request", Some("eyJhbGciOiJub25lIn0.e30."), "request_not_supported"),
    ];
    for (key, value, expected) in cases {
        let response = authorize(&app, &with(demo_request(&app), key, value)).await?;
        assert_eq!(response.status(), 303, "{key}={value:?}");
        let location = response.headers()["location"].to_str()?.to_owned();
        assert!(location.starts_with(&app.url("/demo/callback?")), "{location}");
        let query = location_query(&response);
        assert_eq!(query.get("error").map(String::as_str), Some(expected), "{key}={value:?}: {location}");
        assert_eq!(query.get("state").map(String::as_str), Some("client-state-1"));
        assert_eq!(query.get("iss"), Some(&app.address));
        assert!(!query.contains_key("code"));
    }
    app.stop().await
}
backend_test!(invalid_requests_are_sent_back_with_error_state_and_iss);

pub async fn duplicated_parameter_is_refused(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let mut params = demo_request(&app);
    params.push(("scope".into(), "openid email".into()));
    let response = authorize(&app, &params).await?;
    assert_eq!(response.status(), 400);
    assert!(response.headers().get("location").is_none());
    app.stop().await
}
backend_test!(duplicated_parameter_is_refused);

pub async fn token_request(
    app: &TestApp,
    form: &[(&str, &str)],
    basic: Option<(&str, &str)>,
) -> anyhow::Result<reqwest::Response> {
    let mut request = app.client.post(app.url("/token")).form(form);
    if let Some((id, secret)) = basic {
        request = request.basic_auth(id, Some(secret));
    }
    Ok(request.send().await?)
}

pub async fn client_credentials_yields_a_signed_access_token(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let response = token_request(&app, &[("grant_type", "client_credentials")], Some(("demo", DEMO_SECRET))).await?;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await?;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "payment");
    assert!(body.get("id_token").is_none());
    let token = body["access_token"].as_str().unwrap_or_default();
    // Signed with a published key, for the demo client itself; the payment API accepts it.
    let claims = verify_id_token(&app, token).await?;
    assert_eq!(claims.claim("client_id"), Some(&json!("demo")));
    assert_eq!(claims.subject(), Some("demo"));
    let payment_api = || app.client.get(app.url("/status/demo-service/09162000")).bearer_auth(token).send();
    assert_eq!(payment_api().await?.status(), 200);
    let header = josekit::jwt::decode_header(token)?;
    assert_eq!(header.claim("typ"), Some(&json!("at+jwt")));
    assert_eq!(header.claim("alg"), Some(&json!("ES256")));

    // Such a token stands for no person: userinfo refuses it.
    let userinfo = app.client.get(app.url("/userinfo")).bearer_auth(token).send().await?;
    assert_eq!(userinfo.status(), 403);
    // Revoked, it stops working.
    let revoked = app
        .client
        .post(app.url("/revoke"))
        .basic_auth("demo", Some(DEMO_SECRET))
        .form(&[("token", token)])
        .send()
        .await?;
    assert_eq!(revoked.status(), 200);
    assert_eq!(payment_api().await?.status(), 401);
    app.stop().await
}
backend_test!(client_credentials_yields_a_signed_access_token);

pub async fn token_endpoint_refuses_bad_client_authentication(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let grant = [("grant_type", "client_credentials")];
    let wrong = token_request(&app, &grant, Some(("demo", "wrong-secret"))).await?;
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers().contains_key("www-authenticate"));
    assert_eq!(wrong.json::<Value>().await?["error"], "invalid_client");

    let unknown = token_request(&app, &grant, Some(("nobody", DEMO_SECRET))).await?;
    assert_eq!(unknown.status(), 401);
    // The demo client is registered for client_secret_basic: the same secret in the form is refused.
    let post = token_request(
        &app,
        &[("grant_type", "client_credentials"), ("client_id", "demo"), ("client_secret", DEMO_SECRET)],
        None,
    )
    .await?;
    assert_eq!(post.status(), 401);
    let none = token_request(&app, &grant, None).await?;
    assert_eq!(none.status(), 401);
    let unsupported = token_request(&app, &[("grant_type", "password")], Some(("demo", DEMO_SECRET))).await?;
    assert_eq!(unsupported.json::<Value>().await?["error"], "unsupported_grant_type");
    let scope =
        token_request(&app, &[("grant_type", "client_credentials"), ("scope", "openid")], Some(("demo", DEMO_SECRET)))
            .await?;
    assert_eq!(scope.json::<Value>().await?["error"], "invalid_scope");
    app.stop().await
}
backend_test!(token_endpoint_refuses_bad_client_authentication);

pub async fn unknown_or_garbage_code_is_an_invalid_grant(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", "no-such-code"),
        ("redirect_uri", "http://localhost/demo/callback"),
        ("code_verifier", VERIFIER),
    ];
    let response = token_request(&app, &form, Some(("demo", DEMO_SECRET))).await?;
    assert_eq!(response.status(), 400);
    assert_eq!(response.json::<Value>().await?["error"], "invalid_grant");
    app.stop().await
}
backend_test!(unknown_or_garbage_code_is_an_invalid_grant);

/// A client registered for private_key_jwt with one ES256 key; returns (client file, key pair).
pub fn jwt_client(app_address_placeholder: &str) -> (String, josekit::jwk::alg::ec::EcKeyPair) {
    let pair = ES256.generate_key_pair().expect("key pair");
    let mut public = pair.to_jwk_public_key();
    public.set_key_id("test-key-1");
    let jwks = json!({ "keys": [Value::Object(public.as_ref().clone())] }).to_string();
    let file = format!(
        r#"display_name = "JWT client"
redirect_uris = ["{app_address_placeholder}/jwt/callback"]
identity_providers = ["bundid-sim"]
scopes = ["openid", "profile"]
grant_types = ["authorization_code", "client_credentials"]
require_par = true

[auth]
method = "private_key_jwt"
jwks = '{jwks}'
"#
    );
    (file, pair)
}

pub fn assertion(pair: &josekit::jwk::alg::ec::EcKeyPair, claims: Value) -> String {
    let mut header = JwsHeader::new();
    header.set_key_id("test-key-1");
    let payload = JwtPayload::from_map(claims.as_object().cloned().unwrap_or_default()).expect("payload");
    let signer = ES256.signer_from_jwk(&pair.to_jwk_private_key()).expect("signer");
    josekit::jwt::encode_with_signer(&payload, &header, &signer).expect("assertion")
}

pub async fn spawn_with_jwt_client(ctx: &TestContext) -> (TestApp, josekit::jwk::alg::ec::EcKeyPair) {
    let (file, pair) = jwt_client("{public_url}");
    let clients = ctx.clients_with(&[("jwt-client", file)]);
    let app = ctx.spawn_app_with(|f| f.merge(("registry.clients", clients)), Arc::new(SystemClock)).await;
    (app, pair)
}

pub async fn private_key_jwt_assertions_are_checked(ctx: TestContext) -> TestResult {
    let (app, pair) = spawn_with_jwt_client(&ctx).await;
    let now = chrono::Utc::now().timestamp();
    let good = |jti: &str| json!({ "iss": "jwt-client", "sub": "jwt-client", "aud": app.address, "exp": now + 60, "iat": now, "jti": jti });
    let send = |assertion: String| {
        let app = &app;
        async move {
            let form = [
                ("grant_type", "client_credentials"),
                ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
                ("client_assertion", assertion.as_str()),
            ];
            token_request(app, &form, None).await
        }
    };
    assert_eq!(send(assertion(&pair, good("jti-1"))).await?.status(), 200);
    assert_eq!(send(assertion(&pair, good("jti-1"))).await?.status(), 401, "a reused jti is refused");

    let mut cases = Vec::new();
    let mut wrong_aud = good("jti-2");
    wrong_aud["aud"] = json!("https://someone-else.example");
    cases.push(("wrong aud", wrong_aud));
    let mut expired = good("jti-3");
    expired["exp"] = json!(now - 120);
    cases.push(("past exp", expired));
    let mut no_sub = good("jti-4");
    no_sub.as_object_mut().map(|m| m.remove("sub"));
    cases.push(("no sub", no_sub));
    let mut future = good("jti-5");
    future["iat"] = json!(now + 3600);
    cases.push(("iat in the future", future));
    let mut no_jti = good("x");
    no_jti.as_object_mut().map(|m| m.remove("jti"));
    cases.push(("no jti", no_jti));
    // An assertion lives minutes, not days; an exp near i64::MAX must neither overflow nor let the
    // remembered jti be purged at once (and the assertion be replayed).
    let mut long_lived = good("jti-8");
    long_lived["exp"] = json!(now + 2 * 24 * 3600);
    cases.push(("exp two days ahead", long_lived));
    let mut endless = good("jti-9");
    endless["exp"] = json!(i64::MAX);
    cases.push(("exp at i64::MAX", endless));
    for (what, claims) in cases {
        let response = send(assertion(&pair, claims)).await?;
        assert_eq!(response.status(), 401, "{what}");
        assert_eq!(response.json::<Value>().await?["error"], "invalid_client", "{what}");
    }
    // Signed by another key.
    let other = ES256.generate_key_pair()?;
    assert_eq!(send(assertion(&other, good("jti-6"))).await?.status(), 401, "foreign key");
    // Token endpoint's own URL is an accepted audience as well; ±10 s skew on exp is fine.
    let mut at_token = good("jti-7");
    at_token["aud"] = json!(app.url("/token"));
    at_token["exp"] = json!(now - 5);
    assert_eq!(send(assertion(&pair, at_token)).await?.status(), 200);
    app.stop().await
}
backend_test!(private_key_jwt_assertions_are_checked);

pub async fn client_that_requires_par_cannot_skip_it(ctx: TestContext) -> TestResult {
    let (app, _) = spawn_with_jwt_client(&ctx).await;
    let params = with(
        with(demo_request(&app), "client_id", Some("jwt-client")),
        "redirect_uri",
        Some(&app.url("/jwt/callback")),
    );
    let response = authorize(&app, &params).await?;
    assert_eq!(response.status(), 303);
    let query = location_query(&response);
    assert_eq!(query.get("error").map(String::as_str), Some("invalid_request"));
    assert!(query.get("error_description").is_some_and(|d| d.contains("pushed")));
    app.stop().await
}
backend_test!(client_that_requires_par_cannot_skip_it);

pub async fn pushed_request_uri_is_single_use_and_bound_to_its_client(ctx: TestContext) -> TestResult {
    let (app, _) = spawn_with_jwt_client(&ctx).await;
    let form: Vec<(String, String)> = with(demo_request(&app), "client_id", None);
    let pushed = app.client.post(app.url("/par")).basic_auth("demo", Some(DEMO_SECRET)).form(&form).send().await?;
    assert_eq!(pushed.status(), 201);
    let body: Value = pushed.json().await?;
    let request_uri = body["request_uri"].as_str().unwrap_or_default().to_owned();
    assert!(request_uri.starts_with("urn:ietf:params:oauth:request_uri:"));
    assert!(body["expires_in"].as_i64().is_some_and(|s| s > 0 && s < 600));

    // Another client cannot use it, and trying does not use it up.
    let foreign = [("client_id".to_owned(), "jwt-client".to_owned()), ("request_uri".to_owned(), request_uri.clone())];
    assert_eq!(authorize(&app, &foreign).await?.status(), 400);
    let own = [("client_id".to_owned(), "demo".to_owned()), ("request_uri".to_owned(), request_uri.clone())];
    let first = authorize(&app, &own).await?;
    assert_ne!(first.status(), 400, "the first use goes on to the login");
    assert_eq!(authorize(&app, &own).await?.status(), 400, "a second use is refused");

    // Pushing needs client authentication and a valid request.
    let anonymous = app.client.post(app.url("/par")).form(&form).send().await?;
    assert_eq!(anonymous.status(), 401);
    let bad = with(form.clone(), "code_challenge_method", Some("plain"));
    let refused = app.client.post(app.url("/par")).basic_auth("demo", Some(DEMO_SECRET)).form(&bad).send().await?;
    assert_eq!(refused.status(), 400);
    assert_eq!(refused.json::<Value>().await?["error"], "invalid_request");
    app.stop().await
}
backend_test!(pushed_request_uri_is_single_use_and_bound_to_its_client);

/// private_key_jwt with keys at a `jwks_uri`: fetched, cached, fetched again for a new key id.
pub async fn private_key_jwt_keys_are_fetched_from_the_clients_jwks_uri(ctx: TestContext) -> TestResult {
    use std::sync::Mutex;

    let first = ES256.generate_key_pair()?;
    let second = ES256.generate_key_pair()?;
    let public = |pair: &josekit::jwk::alg::ec::EcKeyPair, kid: &str| {
        let mut jwk = pair.to_jwk_public_key();
        jwk.set_key_id(kid);
        Value::Object(jwk.as_ref().clone())
    };
    let served = Arc::new(Mutex::new(json!({ "keys": [public(&first, "test-key-1")] })));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let jwks_uri = format!("http://127.0.0.1:{}/jwks", listener.local_addr()?.port());
    let keys = served.clone();
    let router = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || async move { axum::Json(keys.lock().map(|k| k.clone()).unwrap_or_default()) }),
    );
    tokio::spawn(async move { axum::serve(listener, router).await });

    let file = format!(
        "display_name = \"JWKS client\"\nredirect_uris = [\"{{public_url}}/j/callback\"]\nidentity_providers = [\"bundid-sim\"]\n\
         scopes = [\"openid\"]\ngrant_types = [\"client_credentials\"]\n\n[auth]\nmethod = \"private_key_jwt\"\njwks_uri = \"{jwks_uri}\"\n"
    );
    let clients = ctx.clients_with(&[("jwks-client", file)]);
    let clock = ManualClock::at_millis(chrono::Utc::now().timestamp_millis());
    let app = ctx.spawn_app_with(|f| f.merge(("registry.clients", clients)), Arc::new(clock.clone())).await;
    let send = |pair: &josekit::jwk::alg::ec::EcKeyPair, kid: &str, jti: &str| {
        let now = clock.now().timestamp();
        let claims = json!({ "iss": "jwks-client", "sub": "jwks-client", "aud": app.address, "exp": now + 60, "iat": now, "jti": jti });
        let mut header = JwsHeader::new();
        header.set_key_id(kid);
        let payload = JwtPayload::from_map(claims.as_object().cloned().unwrap_or_default()).expect("payload");
        let signer = ES256.signer_from_jwk(&pair.to_jwk_private_key()).expect("signer");
        let assertion = josekit::jwt::encode_with_signer(&payload, &header, &signer).expect("assertion");
        let app = &app;
        async move {
            let form = [
                ("grant_type", "client_credentials"),
                ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
                ("client_assertion", assertion.as_str()),
            ];
            app.client.post(app.url("/token")).form(&form).send().await.expect("token").status()
        }
    };
    assert_eq!(send(&first, "test-key-1", "a").await, 200);
    // The client rotates its key; pforte fetches the set again (after its short cooldown).
    if let Ok(mut keys) = served.lock() {
        *keys = json!({ "keys": [public(&second, "test-key-2")] });
    }
    clock.advance_secs(11);
    assert_eq!(send(&second, "test-key-2", "b").await, 200);
    assert_eq!(send(&first, "test-key-1", "c").await, 401, "the retired key no longer works");
    app.stop().await
}
backend_test!(private_key_jwt_keys_are_fetched_from_the_clients_jwks_uri);

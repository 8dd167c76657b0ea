//! Whole logins as a browser and an online service see them: the demo client, pforte, and the
//! development simulators as upstream account providers, all over real HTTP on loopback.

use std::collections::BTreeMap;
use std::sync::Arc;

use josekit::jwk::Jwk;
use pforte::clock::{ManualClock, SystemClock};
use serde_json::Value;

use crate::helpers::{copy_dir, TestApp, TestContext, TestResult, MANIFEST_DIR};
use crate::oidc::{demo_request, location_query, with, CHALLENGE, DEMO_SECRET, VERIFIER};

/// A browser: follows nothing by itself and keeps pforte's browser cookie.
pub struct Browser {
    /// pforte's address, `http://127.0.0.1:PORT`.
    base: String,
    client: reqwest::Client,
    cookie: Option<String>,
}

impl Browser {
    pub fn new(app: &TestApp) -> Self {
        Browser { base: app.address.clone(), client: app.client.clone(), cookie: None }
    }

    /// A browser for a pforte at `base` that is not a [`TestApp`] (the binary run as a process).
    pub fn at(base: &str) -> Self {
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
        Browser { base: base.to_owned(), client, cookie: None }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn remember(&mut self, response: &reqwest::Response) {
        for value in response.headers().get_all("set-cookie") {
            let text = value.to_str().unwrap_or_default();
            assert!(text.contains("Secure") && text.contains("HttpOnly") && text.contains("SameSite=Lax"), "{text}");
            if let Some(pair) = text.split(';').next().filter(|p| p.starts_with("__Host-pforte-browser=")) {
                self.cookie = Some(pair.to_owned());
            }
        }
    }

    pub async fn get(&mut self, url: &str) -> reqwest::Response {
        let mut request = self.client.get(url);
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", cookie);
        }
        let response = request.send().await.expect("GET");
        self.remember(&response);
        response
    }

    pub async fn post(&mut self, url: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let mut request = self.client.post(url).form(form);
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", cookie);
        }
        let response = request.send().await.expect("POST");
        self.remember(&response);
        response
    }

    pub async fn authorize(&mut self, params: &[(String, String)]) -> reqwest::Response {
        let query = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
        self.get(&self.url(&format!("/authorize?{query}"))).await
    }

    /// From pforte's choice page, picks `provider`; returns the redirect to the provider.
    async fn choose(&mut self, page: reqwest::Response, provider: &str) -> reqwest::Response {
        assert_eq!(page.status(), 200);
        let html = page.text().await.expect("page");
        let action = html.split("action=\"").nth(1).and_then(|s| s.split('"').next()).expect("form action").to_owned();
        self.post(&self.url(&action), &[("provider", provider)]).await
    }

    /// At the simulator: opens its page from `upstream` and logs in (or cancels); returns the
    /// simulator's redirect back to pforte.
    async fn at_simulator(
        &mut self,
        upstream: reqwest::Response,
        persona: &str,
        level: &str,
        action: &str,
    ) -> reqwest::Response {
        assert_eq!(upstream.status(), 303);
        let location = location(&upstream);
        let page = self.get(&location).await;
        assert_eq!(page.status(), 200, "simulator page");
        let html = page.text().await.expect("page");
        let request = hidden(&html, "request").expect("request id");
        let decide = location.split("/authorize").next().expect("simulator base").to_owned() + "/authorize/decide";
        self.post(&decide, &[("request", &request), ("persona", persona), ("level", level), ("action", action)]).await
    }

    /// The whole way from the authorization request to pforte's answer at the client's redirect URI.
    pub async fn login(
        &mut self,
        params: &[(String, String)],
        provider: &str,
        persona: &str,
        level: &str,
    ) -> reqwest::Response {
        let first = self.authorize(params).await;
        let upstream = if first.status() == 200 { self.choose(first, provider).await } else { first };
        let back = self.at_simulator(upstream, persona, level, "login").await;
        assert_eq!(back.status(), 303);
        self.get(&location(&back)).await
    }
}

pub fn location(response: &reqwest::Response) -> String {
    response.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

fn hidden(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    Some(html.split(&marker).nth(1)?.split('"').next()?.to_owned())
}

pub fn citizen_request(app: &TestApp, scope: &str, acr: &str) -> Vec<(String, String)> {
    with(with(demo_request(app), "scope", Some(scope)), "acr_values", Some(acr))
}

pub async fn redeem(app: &TestApp, code: &str, verifier: &str) -> reqwest::Response {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", &app.url("/demo/callback")),
        ("code_verifier", verifier),
    ];
    app.client.post(app.url("/token")).basic_auth("demo", Some(DEMO_SECRET)).form(&form).send().await.expect("token")
}

/// Verifies an ID token (or an access token) with pforte's published keys, as a relying party would.
pub async fn verify_id_token(app: &TestApp, token: &str) -> anyhow::Result<josekit::jwt::JwtPayload> {
    let jwks: Value = app.get("/.well-known/jwks.json").await.json().await?;
    let header = josekit::jwt::decode_header(token)?;
    let kid = header.claim("kid").and_then(Value::as_str).unwrap_or_default();
    let key = jwks["keys"].as_array().into_iter().flatten().find(|k| k["kid"] == kid).expect("key published");
    let jwk = Jwk::from_map(key.as_object().cloned().unwrap_or_default())?;
    Ok(josekit::jwt::decode_with_verifier(token, &josekit::jws::ES256.verifier_from_jwk(&jwk)?)?.0)
}

pub async fn code_from(answer: &reqwest::Response, app: &TestApp) -> BTreeMap<String, String> {
    assert_eq!(answer.status(), 303, "pforte answers the client by redirect");
    assert!(location(answer).starts_with(&app.url("/demo/callback?")), "{}", location(answer));
    location_query(answer)
}

pub async fn citizen_logs_in_and_the_service_gets_minimal_claims_at_the_required_level(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let mut browser = Browser::new(&app);
    let params = citizen_request(&app, "openid profile email", "http://eidas.europa.eu/LoA/substantial");
    let answer = browser.login(&params, "bundid-sim", "erika", "STORK-QAA-Level-3").await;
    let query = code_from(&answer, &app).await;
    assert_eq!(query.get("state").map(String::as_str), Some("client-state-1"));
    assert_eq!(query.get("iss"), Some(&app.address));
    let code = query.get("code").expect("code");

    let response = redeem(&app, code, VERIFIER).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let tokens: Value = response.json().await?;
    let id_token = verify_id_token(&app, tokens["id_token"].as_str().unwrap_or_default()).await?;
    let claim = |name: &str| id_token.claim(name).cloned().unwrap_or(Value::Null);
    assert_eq!(claim("iss"), app.address.as_str());
    assert_eq!(claim("aud"), "demo");
    assert_eq!(claim("nonce"), "client-nonce-1");
    assert_eq!(claim("acr"), "http://eidas.europa.eu/LoA/substantial", "the level survives the broker");
    assert_eq!(claim("idp"), "bundid-sim");
    assert_eq!(claim("account_type"), "person");
    assert_eq!(claim("given_name"), "Erika");
    assert!(claim("email").is_string());
    for withheld in ["birthdate", "address", "place_of_birth", "postbox"] {
        assert!(claim(withheld).is_null(), "{withheld} was not requested and must not be released");
    }
    let sub = claim("sub").as_str().unwrap_or_default().to_owned();
    assert_eq!(sub.len(), 43, "a pairwise subject, not the upstream one");

    let userinfo: Value = app
        .client
        .get(app.url("/userinfo"))
        .bearer_auth(tokens["access_token"].as_str().unwrap_or_default())
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(userinfo["sub"], sub.as_str());
    assert_eq!(userinfo["given_name"], "Erika");
    assert!(userinfo.get("birthdate").is_none());

    // The same person logging in again gets the same subject.
    let mut again = Browser::new(&app);
    let answer = again.login(&params, "bundid-sim", "erika", "STORK-QAA-Level-4").await;
    let code = code_from(&answer, &app).await.get("code").cloned().unwrap_or_default();
    let tokens: Value = redeem(&app, &code, VERIFIER).await.json().await?;
    let second = verify_id_token(&app, tokens["id_token"].as_str().unwrap_or_default()).await?;
    assert_eq!(second.claim("sub"), Some(&Value::String(sub)));
    assert_eq!(second.claim("acr"), Some(&Value::from("http://eidas.europa.eu/LoA/high")));
    app.stop().await
}
backend_test!(citizen_logs_in_and_the_service_gets_minimal_claims_at_the_required_level);

pub async fn company_account_delivers_organisation_claims(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let mut browser = Browser::new(&app);
    let params = with(
        citizen_request(&app, "openid organisation", "http://eidas.europa.eu/LoA/substantial"),
        "idp_hint",
        Some("unternehmenskonto-sim"),
    );
    let first = browser.authorize(&params).await;
    assert_eq!(first.status(), 303, "idp_hint skips the choice page");
    let back = browser.at_simulator(first, "musterbau", "substanziell", "login").await;
    let answer = browser.get(&location(&back)).await;
    let code = code_from(&answer, &app).await.get("code").cloned().unwrap_or_default();
    let tokens: Value = redeem(&app, &code, VERIFIER).await.json().await?;
    let id_token = verify_id_token(&app, tokens["id_token"].as_str().unwrap_or_default()).await?;
    assert_eq!(id_token.claim("account_type"), Some(&Value::from("organisation")));
    assert!(id_token.claim("org_name").is_some_and(Value::is_string));
    assert!(id_token.claim("org_tax_number").is_some_and(Value::is_string));
    app.stop().await
}
backend_test!(company_account_delivers_organisation_claims);

pub async fn login_below_the_required_level_gives_access_denied_and_no_code(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let mut browser = Browser::new(&app);
    let params = citizen_request(&app, "openid profile", "http://eidas.europa.eu/LoA/high");
    let answer = browser.login(&params, "bundid-sim", "erika", "STORK-QAA-Level-3").await;
    // The person learns why; the way back tells the service access_denied. No code anywhere.
    assert_eq!(answer.status(), 403);
    let html = answer.text().await?;
    assert!(html.contains("Vertrauensniveau") && html.contains("substanziell") && html.contains("hoch"), "{html}");
    let back = html.split("class=\"button\" href=\"").nth(1).and_then(|s| s.split('"').next()).unwrap_or_default();
    let back = back.replace("&amp;", "&");
    let query: BTreeMap<String, String> = url::Url::parse(&back)?.query_pairs().into_owned().collect();
    assert!(back.starts_with(&app.url("/demo/callback?")));
    assert_eq!(query.get("error").map(String::as_str), Some("access_denied"));
    assert!(query.get("error_description").is_some_and(|d| d.contains("level")));
    assert_eq!(query.get("state").map(String::as_str), Some("client-state-1"));
    assert!(!query.contains_key("code") && !html.contains("code="));
    app.stop().await
}
backend_test!(login_below_the_required_level_gives_access_denied_and_no_code);

pub async fn cancelling_at_the_provider_gives_the_service_access_denied(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let mut browser = Browser::new(&app);
    let first = browser.authorize(&citizen_request(&app, "openid", "http://eidas.europa.eu/LoA/low")).await;
    let upstream = browser.choose(first, "bundid-sim").await;
    let back = browser.at_simulator(upstream, "erika", "STORK-QAA-Level-1", "cancel").await;
    let answer = browser.get(&location(&back)).await;
    let query = code_from(&answer, &app).await;
    assert_eq!(query.get("error").map(String::as_str), Some("access_denied"));
    assert_eq!(query.get("iss"), Some(&app.address));
    assert!(!query.contains_key("code"));
    app.stop().await
}
backend_test!(cancelling_at_the_provider_gives_the_service_access_denied);

pub async fn fresh_code(app: &TestApp) -> String {
    let mut browser = Browser::new(app);
    let params = citizen_request(app, "openid profile", "http://eidas.europa.eu/LoA/low");
    let answer = browser.login(&params, "bundid-sim", "erika", "STORK-QAA-Level-1").await;
    code_from(&answer, app).await.get("code").cloned().unwrap_or_default()
}

pub async fn replayed_code_is_refused_and_revokes_the_tokens_issued_from_it(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let code = fresh_code(&app).await;
    let tokens: Value = redeem(&app, &code, VERIFIER).await.json().await?;
    let access = tokens["access_token"].as_str().unwrap_or_default().to_owned();
    assert_eq!(app.client.get(app.url("/userinfo")).bearer_auth(&access).send().await?.status(), 200);

    let replay = redeem(&app, &code, VERIFIER).await;
    assert_eq!(replay.status(), 400);
    assert_eq!(replay.json::<Value>().await?["error"], "invalid_grant");
    let after = app.client.get(app.url("/userinfo")).bearer_auth(&access).send().await?;
    assert_eq!(after.status(), 401, "the access token from the replayed code is revoked");
    assert!(after.headers()["www-authenticate"].to_str()?.contains("invalid_token"));
    let audit = crate::audit::chained_events(&app).await?;
    assert!(audit.iter().any(|r| r.event == "login.code_replayed"));
    app.stop().await
}
backend_test!(replayed_code_is_refused_and_revokes_the_tokens_issued_from_it);

pub async fn wrong_verifier_or_redirect_uri_uses_up_the_code(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let code = fresh_code(&app).await;
    let wrong = redeem(&app, &code, "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj").await;
    assert_eq!(wrong.json::<Value>().await?["error"], "invalid_grant");
    let burnt = redeem(&app, &code, VERIFIER).await;
    assert_eq!(burnt.json::<Value>().await?["error"], "invalid_grant", "a failed attempt uses the code up");

    let code = fresh_code(&app).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", "x"),
        ("code_verifier", VERIFIER),
    ];
    let no_redirect =
        app.client.post(app.url("/token")).basic_auth("demo", Some(DEMO_SECRET)).form(&form).send().await?;
    assert_eq!(no_redirect.json::<Value>().await?["error"], "invalid_grant", "redirect_uri must match");
    app.stop().await
}
backend_test!(wrong_verifier_or_redirect_uri_uses_up_the_code);

pub async fn code_expires_after_sixty_seconds(ctx: TestContext) -> TestResult {
    let clock = ManualClock::at_millis(chrono::Utc::now().timestamp_millis());
    let app = ctx.spawn_app_with_clock(clock.clone()).await;
    let code = fresh_code(&app).await;
    clock.advance_secs(61);
    let response = redeem(&app, &code, VERIFIER).await;
    assert_eq!(response.json::<Value>().await?["error"], "invalid_grant");
    // The purge that runs at every start (and each minute after) then removes the login and the
    // identity in it.
    let pool = crate::keys::any_pool(&ctx.database_url).await?;
    let count_logins = move || {
        let pool = pool.clone();
        async move {
            let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM login_transactions").fetch_one(&pool).await?;
            anyhow::Ok(count)
        }
    };
    assert!(count_logins().await? >= 1, "the expired login is still stored before the purge");
    app.stop().await?;
    let restarted = ctx.spawn_app_with_clock(clock.clone()).await;
    crate::helpers::eventually(std::time::Duration::from_secs(10), "the expired login purged", || {
        let count = count_logins.clone();
        async move { Ok((count().await? == 0).then_some(())) }
    })
    .await?;
    restarted.stop().await
}
backend_test!(code_expires_after_sixty_seconds);

pub async fn foreign_or_replayed_state_and_another_browser_get_an_error_page(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let mut stranger = Browser::new(&app);
    let forged = stranger.get(&app.url("/callback/bundid-sim?code=abc&state=forged")).await;
    assert_eq!(forged.status(), 400);
    assert!(forged.headers().get("location").is_none());

    // The provider's answer opened in another browser (no cookie) is refused.
    let mut browser = Browser::new(&app);
    let first = browser.authorize(&citizen_request(&app, "openid", "http://eidas.europa.eu/LoA/low")).await;
    let upstream = browser.choose(first, "bundid-sim").await;
    let back = browser.at_simulator(upstream, "erika", "STORK-QAA-Level-1", "login").await;
    let elsewhere = stranger.get(&location(&back)).await;
    assert_eq!(elsewhere.status(), 400);
    assert!(elsewhere.headers().get("location").is_none());
    // The right browser completes it once; the same answer again is a replayed state.
    assert_eq!(browser.get(&location(&back)).await.status(), 303);
    let replayed = browser.get(&location(&back)).await;
    assert_eq!(replayed.status(), 400);
    app.stop().await
}
backend_test!(foreign_or_replayed_state_and_another_browser_get_an_error_page);

pub async fn answer_arriving_at_another_providers_callback_is_refused(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let mut browser = Browser::new(&app);
    let first = browser.authorize(&citizen_request(&app, "openid", "http://eidas.europa.eu/LoA/substantial")).await;
    let upstream = browser.choose(first, "bundid-sim").await;
    let back = browser.at_simulator(upstream, "erika", "STORK-QAA-Level-3", "login").await;
    let mixed_up = location(&back).replace("/callback/bundid-sim", "/callback/unternehmenskonto-sim");
    let answer = browser.get(&mixed_up).await;
    let query = code_from(&answer, &app).await;
    assert_eq!(query.get("error").map(String::as_str), Some("access_denied"));
    assert!(!query.contains_key("code"));
    app.stop().await
}
backend_test!(answer_arriving_at_another_providers_callback_is_refused);

pub async fn choice_page_lists_allowed_providers_in_german_or_english(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let mut browser = Browser::new(&app);
    let page = browser.authorize(&citizen_request(&app, "openid", "http://eidas.europa.eu/LoA/low")).await;
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"].to_str()?.to_owned();
    assert!(csp.contains("frame-ancestors 'none'"));
    let html = page.text().await?;
    assert!(html.contains("lang=\"de\"") && html.contains("Anmelden"));
    assert!(html.contains("BundID (Simulator)") && html.contains("Mein Unternehmenskonto (Simulator)"));
    assert!(html.contains("<legend>") && html.contains("<button type=\"submit\""));

    let english = with(citizen_request(&app, "openid", "http://eidas.europa.eu/LoA/low"), "ui_locales", Some("en"));
    let html = browser.authorize(&english).await.text().await?;
    assert!(html.contains("lang=\"en\"") && html.contains("Log in"));

    // Asking for level low and a service with minimum low: the company account proves only
    // substantial or high, yet it still reaches low, so both remain; with idp_hint there is no page.
    let hinted =
        with(citizen_request(&app, "openid", "http://eidas.europa.eu/LoA/low"), "idp_hint", Some("bundid-sim"));
    let direct = browser.authorize(&hinted).await;
    assert_eq!(direct.status(), 303);
    assert!(location(&direct).contains("/dev/bundid/authorize"));
    app.stop().await
}
backend_test!(choice_page_lists_allowed_providers_in_german_or_english);

pub async fn pushed_request_leads_through_the_same_login(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let form = with(citizen_request(&app, "openid profile", "http://eidas.europa.eu/LoA/low"), "client_id", None);
    let pushed: Value =
        app.client.post(app.url("/par")).basic_auth("demo", Some(DEMO_SECRET)).form(&form).send().await?.json().await?;
    let params = vec![
        ("client_id".to_owned(), "demo".to_owned()),
        ("request_uri".to_owned(), pushed["request_uri"].as_str().unwrap_or_default().to_owned()),
    ];
    let mut browser = Browser::new(&app);
    let answer = browser.login(&params, "bundid-sim", "erika", "STORK-QAA-Level-1").await;
    let query = code_from(&answer, &app).await;
    assert_eq!(query.get("state").map(String::as_str), Some("client-state-1"));
    let tokens = redeem(&app, query.get("code").map(String::as_str).unwrap_or_default(), VERIFIER).await;
    assert_eq!(tokens.status(), 200);
    app.stop().await
}
backend_test!(pushed_request_leads_through_the_same_login);

/// The shipped registry plus identity provider `id` (TOML `entry`), which the demo client may use.
pub async fn spawn_with_extra_provider(ctx: &TestContext, id: &str, entry: &str) -> anyhow::Result<TestApp> {
    let providers = ctx.dir.path().join("providers");
    copy_dir(&std::path::Path::new(MANIFEST_DIR).join("providers"), &providers)?;
    std::fs::write(providers.join(format!("identity/{id}.toml")), entry)?;
    let clients = ctx.clients_with(&[]);
    let demo = std::fs::read_to_string(format!("{clients}/demo.toml"))?;
    std::fs::write(
        format!("{clients}/demo.toml"),
        demo.replace("\"bundid-sim\", ", &format!("\"bundid-sim\", \"{id}\", ")),
    )?;
    let providers = providers.display().to_string();
    Ok(ctx
        .spawn_app_with(
            |f| f.merge(("registry.providers", providers)).merge(("registry.clients", clients)),
            Arc::new(SystemClock),
        )
        .await)
}

/// A provider entry whose issuer does not answer: the person sees an error page within seconds.
pub async fn unreachable_provider_shows_an_error_page_with_the_way_back(ctx: TestContext) -> TestResult {
    let shipped = std::fs::read_to_string(format!("{MANIFEST_DIR}/providers/identity/bundid-sim.toml"))?;
    let down =
        shipped.replace("{public_url}/dev/bundid", "http://127.0.0.1:1/down").replace("BundID (Simulator)", "Down");
    let app = spawn_with_extra_provider(&ctx, "down", &down).await?;
    let mut browser = Browser::new(&app);
    let params = with(citizen_request(&app, "openid", "http://eidas.europa.eu/LoA/low"), "idp_hint", Some("down"));
    let page = browser.authorize(&params).await;
    assert_eq!(page.status(), 502);
    let html = page.text().await?;
    assert!(html.contains("nicht erreichbar"), "{html}");
    assert!(html.contains("/demo/callback?error=temporarily_unavailable"), "the way back to the service");
    app.stop().await
}
backend_test!(unreachable_provider_shows_an_error_page_with_the_way_back);

pub async fn logout_returns_to_a_registered_address_only(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let code = fresh_code(&app).await;
    let tokens: Value = redeem(&app, &code, VERIFIER).await.json().await?;
    let hint = tokens["id_token"].as_str().unwrap_or_default();
    let back = app
        .client
        .get(app.url("/logout"))
        .query(&[("id_token_hint", hint), ("post_logout_redirect_uri", &app.url("/demo")), ("state", "bye")])
        .send()
        .await?;
    // First to the account provider, so its session ends too, then back through pforte.
    assert_eq!(back.status(), 303);
    assert!(location(&back).starts_with(&app.url("/dev/bundid/logout?")), "{}", location(&back));
    let upstream = app.client.get(location(&back)).send().await?;
    assert_eq!(upstream.status(), 303);
    assert!(location(&upstream).starts_with(&app.url("/logout/done?state=")));
    let done = app.client.get(location(&upstream)).send().await?;
    assert_eq!(done.status(), 303);
    assert_eq!(location(&done), app.url("/demo?state=bye"));
    // A forged state at /logout/done leads nowhere but the plain confirmation.
    let forged = app.client.get(app.url("/logout/done?state=forged")).send().await?;
    assert_eq!(forged.status(), 200);
    let foreign = app
        .client
        .get(app.url("/logout"))
        .query(&[("id_token_hint", hint), ("post_logout_redirect_uri", "https://attacker.example/")])
        .send()
        .await?;
    assert_eq!(foreign.status(), 400);
    assert!(foreign.headers().get("location").is_none());
    let forged =
        app.client.get(app.url("/logout")).query(&[("id_token_hint", "eyJhbGciOiJub25lIn0.e30.")]).send().await?;
    assert_eq!(forged.status(), 400);
    let plain = app.get("/logout").await;
    assert_eq!(plain.status(), 200);
    let _ = CHALLENGE;
    app.stop().await
}
backend_test!(logout_returns_to_a_registered_address_only);

/// The `openidconnect` crate as the online service: discovery, PKCE, ID token validation (ES256,
/// nonce, issuer, audience) and userinfo against pforte, with a simulator upstream.
pub async fn openidconnect_relying_party_logs_in_through_pforte(ctx: TestContext) -> TestResult {
    use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreJwsSigningAlgorithm, CoreProviderMetadata};
    use openidconnect::{
        AuthenticationContextClass, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
        OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, Scope, TokenResponse,
    };

    let app = ctx.spawn_app().await;
    let metadata = CoreProviderMetadata::discover_async(IssuerUrl::new(app.address.clone())?, &app.client).await?;
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new("demo".into()),
        Some(ClientSecret::new(DEMO_SECRET.into())),
    )
    .set_redirect_uri(RedirectUrl::new(app.url("/demo/callback"))?);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, csrf, nonce) = client
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("address".into()))
        .add_auth_context_value(AuthenticationContextClass::new("http://eidas.europa.eu/LoA/substantial".into()))
        .add_extra_param("idp_hint", "bundid-sim")
        .set_pkce_challenge(challenge)
        .url();

    let mut browser = Browser::new(&app);
    let upstream = browser.get(url.as_str()).await;
    let back = browser.at_simulator(upstream, "hans-guenther", "STORK-QAA-Level-3", "login").await;
    let answer = browser.get(&location(&back)).await;
    let query = code_from(&answer, &app).await;
    assert_eq!(query.get("state"), Some(csrf.secret()));

    let tokens = client
        .exchange_code(AuthorizationCode::new(query.get("code").cloned().unwrap_or_default()))?
        .set_pkce_verifier(verifier)
        .request_async(&app.client)
        .await?;
    let id_token = tokens.id_token().ok_or_else(|| anyhow::anyhow!("no ID token"))?;
    let id_verifier = client.id_token_verifier().set_allowed_algs([CoreJwsSigningAlgorithm::EcdsaP256Sha256]);
    let claims = id_token.claims(&id_verifier, &nonce)?;
    assert_eq!(claims.auth_context_ref().map(|acr| acr.as_str()), Some("http://eidas.europa.eu/LoA/substantial"));
    assert!(claims.address().is_some(), "the address scope releases the structured address");

    let userinfo: openidconnect::core::CoreUserInfoClaims = client
        .user_info(tokens.access_token().clone(), Some(claims.subject().clone()))?
        .request_async(&app.client)
        .await?;
    assert!(userinfo.family_name().and_then(|n| n.get(None)).is_some());
    assert!(userinfo.birthdate().is_none(), "birth data was not requested");
    app.stop().await
}
backend_test!(openidconnect_relying_party_logs_in_through_pforte);

pub const SECOND_SECRET: &str = "second-service-secret";

/// A second online service: its own sector, refresh tokens, PS256 ID tokens.
fn second_client() -> String {
    format!(
        r#"display_name = "Zweiter Dienst"
redirect_uris = ["{{public_url}}/second/callback"]
identity_providers = ["bundid-sim"]
scopes = ["openid", "profile"]
grant_types = ["authorization_code", "refresh_token"]
id_token_alg = "PS256"

[auth]
method = "client_secret_basic"
secret = "plain:{SECOND_SECRET}"
"#
    )
}

pub async fn spawn_with_second_client(ctx: &TestContext, clock: Option<ManualClock>) -> TestApp {
    let clients = ctx.clients_with(&[("second", second_client())]);
    let clock: pforte::clock::SharedClock = match clock {
        Some(clock) => Arc::new(clock),
        None => Arc::new(SystemClock),
    };
    ctx.spawn_app_with(|f| f.merge(("registry.clients", clients)), clock).await
}

pub async fn second_login(app: &TestApp, level: &str) -> Value {
    let code = second_code(app, level).await;
    let response = second_redeem(app, &code).await;
    assert_eq!(response.status(), 200);
    response.json().await.expect("tokens")
}

/// A code for the second service (which has the refresh grant), not yet redeemed.
pub async fn second_code(app: &TestApp, level: &str) -> String {
    let params =
        with(with(demo_request(app), "client_id", Some("second")), "redirect_uri", Some(&app.url("/second/callback")));
    let mut browser = Browser::new(app);
    let answer = browser.login(&params, "bundid-sim", "erika", level).await;
    let target = url::Url::parse(&location(&answer)).expect("redirect");
    target.query_pairs().find(|(k, _)| k == "code").map(|(_, v)| v.into_owned()).expect("code")
}

/// The second service redeems `code` at the token endpoint.
pub async fn second_redeem(app: &TestApp, code: &str) -> reqwest::Response {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", &app.url("/second/callback")),
        ("code_verifier", VERIFIER),
    ];
    app.client
        .post(app.url("/token"))
        .basic_auth("second", Some(SECOND_SECRET))
        .form(&form)
        .send()
        .await
        .expect("token")
}

pub async fn refresh(app: &TestApp, token: &str) -> reqwest::Response {
    let form = [("grant_type", "refresh_token"), ("refresh_token", token)];
    app.client
        .post(app.url("/token"))
        .basic_auth("second", Some(SECOND_SECRET))
        .form(&form)
        .send()
        .await
        .expect("refresh")
}

pub async fn refresh_tokens_rotate_and_a_reused_one_ends_the_family(ctx: TestContext) -> TestResult {
    let app = spawn_with_second_client(&ctx, None).await;
    let tokens = second_login(&app, "STORK-QAA-Level-3").await;
    let header = josekit::jwt::decode_header(tokens["id_token"].as_str().unwrap_or_default())?;
    assert_eq!(header.claim("alg"), Some(&Value::from("PS256")), "this client asked for PS256 ID tokens");
    let first = tokens["refresh_token"].as_str().expect("a refresh token for a client registered for it").to_owned();

    let renewed: Value = refresh(&app, &first).await.json().await?;
    let second = renewed["refresh_token"].as_str().unwrap_or_default().to_owned();
    assert!(renewed["access_token"].is_string() && renewed["id_token"].is_string());
    assert_ne!(second, first);

    let reused = refresh(&app, &first).await;
    assert_eq!(reused.json::<Value>().await?["error"], "invalid_grant");
    let after_reuse = refresh(&app, &second).await;
    assert_eq!(after_reuse.json::<Value>().await?["error"], "invalid_grant", "reuse ends the whole family");

    // The demo client is not registered for refresh tokens and gets none.
    let code = fresh_code(&app).await;
    let demo: Value = redeem(&app, &code, VERIFIER).await.json().await?;
    assert!(demo.get("refresh_token").is_none());
    app.stop().await
}
backend_test!(refresh_tokens_rotate_and_a_reused_one_ends_the_family);

pub async fn refresh_token_lives_no_longer_than_the_session_its_level_allows(ctx: TestContext) -> TestResult {
    let clock = ManualClock::at_millis(chrono::Utc::now().timestamp_millis());
    let app = spawn_with_second_client(&ctx, Some(clock.clone())).await;
    // Level high: sessions of at most 30 minutes, idle at most 5.
    let tokens = second_login(&app, "STORK-QAA-Level-4").await;
    let mut token = tokens["refresh_token"].as_str().unwrap_or_default().to_owned();
    for _ in 0..7 {
        clock.advance_secs(4 * 60);
        let renewed: Value = refresh(&app, &token).await.json().await?;
        token = renewed["refresh_token"].as_str().expect("still inside the session").to_owned();
    }
    clock.advance_secs(4 * 60);
    assert_eq!(refresh(&app, &token).await.json::<Value>().await?["error"], "invalid_grant", "32 minutes > 30");

    let idle = second_login(&app, "STORK-QAA-Level-4").await;
    clock.advance_secs(6 * 60);
    let late = refresh(&app, idle["refresh_token"].as_str().unwrap_or_default()).await;
    assert_eq!(late.json::<Value>().await?["error"], "invalid_grant", "idle longer than 5 minutes");
    app.stop().await
}
backend_test!(refresh_token_lives_no_longer_than_the_session_its_level_allows);

pub async fn revoked_refresh_token_no_longer_works(ctx: TestContext) -> TestResult {
    let app = spawn_with_second_client(&ctx, None).await;
    let tokens = second_login(&app, "STORK-QAA-Level-3").await;
    let token = tokens["refresh_token"].as_str().unwrap_or_default();
    let revoked = app
        .client
        .post(app.url("/revoke"))
        .basic_auth("second", Some(SECOND_SECRET))
        .form(&[("token", token)])
        .send()
        .await?;
    assert_eq!(revoked.status(), 200);
    assert_eq!(refresh(&app, token).await.json::<Value>().await?["error"], "invalid_grant");
    app.stop().await
}
backend_test!(revoked_refresh_token_no_longer_works);

pub async fn code_of_another_client_is_an_invalid_grant_and_subjects_differ_per_service(
    ctx: TestContext,
) -> TestResult {
    let app = spawn_with_second_client(&ctx, None).await;
    let code = fresh_code(&app).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", &app.url("/demo/callback")),
        ("code_verifier", VERIFIER),
    ];
    let stolen =
        app.client.post(app.url("/token")).basic_auth("second", Some(SECOND_SECRET)).form(&form).send().await?;
    assert_eq!(stolen.json::<Value>().await?["error"], "invalid_grant");

    // The same person at two services: two unlinkable subjects.
    let demo: Value = redeem(&app, &code, VERIFIER).await.json().await?;
    let demo_sub = verify_id_token(&app, demo["id_token"].as_str().unwrap_or_default()).await?.claim("sub").cloned();
    let second = second_login(&app, "STORK-QAA-Level-1").await;
    let second_token = second["access_token"].as_str().unwrap_or_default();
    let second_sub = verify_id_token(&app, second_token).await?.claim("sub").cloned();
    let userinfo: Value = app.client.get(app.url("/userinfo")).bearer_auth(second_token).send().await?.json().await?;
    assert_eq!(userinfo.get("sub"), second_sub.as_ref(), "userinfo names the subject the token carries");
    assert!(demo_sub.is_some() && second_sub.is_some());
    assert_ne!(demo_sub, second_sub);
    app.stop().await
}
backend_test!(code_of_another_client_is_an_invalid_grant_and_subjects_differ_per_service);

/// The whole login with a mock upstream that answers with a faulty ID token: each fault ends on an
/// error page with the way back to the service, and no code is issued.
pub async fn faulty_upstream_id_tokens_never_produce_a_code(ctx: TestContext) -> TestResult {
    use crate::upstream::mock_op::{MockOp, TokenFault};
    use crate::upstream::{BASIC_AUTH, MOCK_IDP};

    let op = MockOp::start(ManualClock::at_millis(chrono::Utc::now().timestamp_millis())).await?;
    let entry = MOCK_IDP.replace("{issuer}", &op.issuer).replace("{client_auth}", BASIC_AUTH);
    let app = spawn_with_extra_provider(&ctx, "mock", &entry).await?;

    let faults = [
        TokenFault::OtherKey,
        TokenFault::WrongIssuer,
        TokenFault::WrongAudience,
        TokenFault::WrongNonce,
        TokenFault::Unsigned,
        TokenFault::Hs256WithPublicKey,
        TokenFault::MissingSubject,
    ];
    for fault in faults.into_iter().map(Some).chain([None]) {
        op.set(|op| {
            op.behaviour.token = fault.unwrap_or(TokenFault::None);
            op.behaviour.token_lifetime_secs = 300;
        });
        let mut browser = Browser::new(&app);
        let params = with(
            citizen_request(&app, "openid profile", "http://eidas.europa.eu/LoA/substantial"),
            "idp_hint",
            Some("mock"),
        );
        let upstream = browser.authorize(&params).await;
        assert_eq!(upstream.status(), 303);
        let answer = op.authorize(&url::Url::parse(&location(&upstream))?);
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("code", answer.code.as_deref().unwrap_or_default())
            .append_pair("state", answer.state.as_deref().unwrap_or_default())
            .append_pair("iss", answer.iss.as_deref().unwrap_or_default())
            .finish();
        let back = browser.get(&app.url(&format!("/callback/mock?{query}"))).await;
        match fault {
            Some(fault) => {
                assert_eq!(back.status(), 502, "{fault:?}");
                let html = back.text().await?;
                assert!(html.contains("/demo/callback?error=access_denied"), "{fault:?}: the way back");
                assert!(!html.contains("code="), "{fault:?}: no code");
            }
            None => {
                let query = code_from(&back, &app).await;
                assert!(query.contains_key("code"), "the same flow works with a sound token");
            }
        }
    }
    // An expired ID token is refused the same way.
    op.set(|op| {
        op.behaviour.token = TokenFault::None;
        op.behaviour.token_lifetime_secs = -120;
    });
    let mut browser = Browser::new(&app);
    let params =
        with(citizen_request(&app, "openid", "http://eidas.europa.eu/LoA/substantial"), "idp_hint", Some("mock"));
    let upstream = browser.authorize(&params).await;
    let answer = op.authorize(&url::Url::parse(&location(&upstream))?);
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("code", answer.code.as_deref().unwrap_or_default())
        .append_pair("state", answer.state.as_deref().unwrap_or_default())
        .finish();
    assert_eq!(browser.get(&app.url(&format!("/callback/mock?{query}"))).await.status(), 502);
    app.stop().await
}
backend_test!(faulty_upstream_id_tokens_never_produce_a_code);

//! The demo online service under `/demo`, driven like a browser over real HTTP: its start page, a whole
//! login through pforte and the BundID simulator back to the service, and the answers it must refuse.

use std::collections::BTreeMap;

use pforte::crypto::fingerprint;
use serde_json::Value;

use crate::helpers::{TestApp, TestContext, TestResult};

const SUBSTANTIAL: &str = "http://eidas.europa.eu/LoA/substantial";

/// A browser: follows nothing by itself and keeps every cookie it is given (they are all `Secure`,
/// so they are sent by hand over plain HTTP).
struct Browser<'a> {
    app: &'a TestApp,
    cookies: BTreeMap<String, String>,
}

impl<'a> Browser<'a> {
    fn new(app: &'a TestApp) -> Self {
        Browser { app, cookies: BTreeMap::new() }
    }

    fn remember(&mut self, response: &reqwest::Response) {
        for value in response.headers().get_all("set-cookie") {
            let text = value.to_str().unwrap_or_default();
            assert!(text.contains("Secure") && text.contains("HttpOnly") && text.contains("SameSite=Lax"), "{text}");
            let pair = text.split(';').next().unwrap_or_default();
            let (name, value) = pair.split_once('=').unwrap_or_default();
            if value.is_empty() || text.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(name, value)| format!("{name}={value}")).collect::<Vec<_>>().join("; ")
    }

    async fn get(&mut self, url: &str) -> reqwest::Response {
        let response = self.app.client.get(url).header("cookie", self.cookie_header()).send().await.expect("GET");
        self.remember(&response);
        response
    }

    async fn post(&mut self, url: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let request = self.app.client.post(url).header("cookie", self.cookie_header()).form(form);
        let response = request.send().await.expect("POST");
        self.remember(&response);
        response
    }

    /// From the demo's login form through pforte's choice page and the BundID simulator's page (where
    /// Erika logs in at `acr`, or cancels) until pforte sends the browser to `/demo/callback`; returns
    /// that address.
    async fn walk(&mut self, form_query: &str, acr: &str, action: &str) -> String {
        let start = self.get(&self.app.url(&format!("/demo/login?{form_query}"))).await;
        assert_eq!(start.status(), 303, "the demo sends the browser to pforte");
        let choice = self.get(&location(&start)).await;
        assert_eq!(choice.status(), 200, "pforte's choice page");
        let html = choice.text().await.expect("page");
        let chosen = self.post(&self.app.url(&form_action(&html)), &[("provider", "bundid-sim")]).await;
        assert_eq!(chosen.status(), 303, "pforte sends the browser to the provider");
        let simulator = location(&chosen);
        let page = self.get(&simulator).await;
        assert_eq!(page.status(), 200, "the simulator's page");
        let html = page.text().await.expect("page");
        let request = hidden(&html, "request").expect("request id");
        let decide = simulator.split("/authorize").next().expect("simulator base").to_owned() + "/authorize/decide";
        let fields = [("request", request.as_str()), ("persona", "erika"), ("level", acr), ("action", action)];
        let back = self.post(&decide, &fields).await;
        assert_eq!(back.status(), 303, "the simulator answers pforte");
        let answer = self.get(&location(&back)).await;
        assert_eq!(answer.status(), 303, "pforte answers the demo service");
        let callback = location(&answer);
        assert!(callback.starts_with(&self.app.url("/demo/callback?")), "{callback}");
        callback
    }
}

fn location(response: &reqwest::Response) -> String {
    response.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

fn query_of(url: &str) -> BTreeMap<String, String> {
    let url = url::Url::parse(url).expect("URL");
    url.query_pairs().into_owned().collect()
}

fn with_query(url: &str, key: &str, value: &str) -> String {
    let mut url = url::Url::parse(url).expect("URL");
    let pairs: Vec<(String, String)> = url.query_pairs().into_owned().filter(|(k, _)| k != key).collect();
    url.query_pairs_mut().clear().extend_pairs(pairs).append_pair(key, value);
    url.to_string()
}

fn form_action(html: &str) -> String {
    html.split("action=\"").nth(1).and_then(|s| s.split('"').next()).expect("form action").to_owned()
}

fn hidden(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    Some(html.split(&marker).nth(1)?.split('"').next()?.to_owned())
}

/// The first link whose address starts with `prefix`, with HTML escaping undone.
fn link(html: &str, prefix: &str) -> Option<String> {
    let start = html.find(&format!("href=\"{prefix}"))? + "href=\"".len();
    let end = start + html[start..].find('"')?;
    Some(html[start..end].replace("&amp;", "&"))
}

pub async fn demo_page_offers_a_level_scopes_and_a_login_button(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let page = app.get("/demo").await;
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"].to_str()?.starts_with("text/html"));
    let html = page.text().await?;
    assert!(html.contains("lang=\"de\"") && html.contains("Geburtsurkunde beantragen"));
    assert!(html.contains("<form method=\"get\" action=\"/demo/login\">"));
    assert!(html.contains("<select id=\"level\" name=\"level\">") && html.contains("<label for=\"level\">"));
    for scope in ["profile", "birth", "email", "address", "postbox", "organisation"] {
        assert!(html.contains(&format!("name=\"scope\" id=\"scope-{scope}\" value=\"{scope}\"")), "{scope}");
    }
    assert!(html.contains("<button type=\"submit\">"));
    assert!(html.contains("href=\"/assets/pforte.css\"") && !html.contains("<script"));
    app.stop().await
}
backend_test!(demo_page_offers_a_level_scopes_and_a_login_button);

pub async fn citizen_logs_in_at_the_demo_service_and_sees_name_level_and_provider(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    // What the demo service asks pforte for.
    let start = Browser::new(&app).get(&app.url("/demo/login?level=substantial&scope=profile")).await;
    assert_eq!(start.status(), 303);
    assert!(start.headers()["set-cookie"].to_str()?.starts_with("__Host-pforte-demo="));
    assert!(location(&start).starts_with(&app.url("/authorize?")));
    let request = query_of(&location(&start));
    assert_eq!(request["client_id"], "demo");
    assert_eq!(request["redirect_uri"], app.url("/demo/callback"));
    assert_eq!(request["acr_values"], SUBSTANTIAL);
    assert_eq!(request["code_challenge_method"], "S256");
    let scopes: Vec<&str> = request["scope"].split(' ').collect();
    assert!(scopes.contains(&"openid") && scopes.contains(&"profile") && !scopes.contains(&"address"));
    assert!(request.contains_key("state") && request.contains_key("nonce"));

    let mut browser = Browser::new(&app);
    let callback = browser.walk("level=substantial&scope=profile", "STORK-QAA-Level-3", "login").await;
    let result = browser.get(&callback).await;
    assert_eq!(result.status(), 200);
    assert!(!browser.cookies.contains_key("__Host-pforte-demo"), "the finished login's cookie is removed");
    let html = result.text().await?;
    assert!(html.contains("Sie sind angemeldet"), "{html}");
    assert!(html.contains("Erika"), "the persona's given name");
    assert!(html.contains(SUBSTANTIAL) && html.contains("bundid-sim") && html.contains("person"));
    assert!(!html.contains("Heidestraße"), "the address was not requested");

    // The answer is good once.
    let replayed = browser.get(&callback).await;
    assert_eq!(replayed.status(), 400);

    // "Abmelden" logs out at pforte, which sends the browser back to the start page.
    let logout = link(&html, &app.url("/logout?")).expect("logout link");
    let logout_query = query_of(&logout);
    assert_eq!(logout_query["post_logout_redirect_uri"], app.url("/demo"));
    assert!(logout_query.contains_key("id_token_hint") && logout_query.contains_key("state"));
    // pforte ends the account provider's session too, then returns through /logout/done.
    let mut back = browser.get(&logout).await;
    for _ in 0..2 {
        assert_eq!(back.status(), 303);
        if location(&back).starts_with(&app.url("/demo?state=")) {
            break;
        }
        back = browser.get(&location(&back)).await;
    }
    assert!(location(&back).starts_with(&app.url("/demo?state=")), "{}", location(&back));
    let html = browser.get(&location(&back)).await.text().await?;
    assert!(html.contains("Sie sind abgemeldet"));
    app.stop().await
}
backend_test!(citizen_logs_in_at_the_demo_service_and_sees_name_level_and_provider);

pub async fn callback_with_a_wrong_state_or_in_another_browser_shows_an_error_and_redeems_nothing(
    ctx: TestContext,
) -> TestResult {
    let app = ctx.spawn_app().await;
    let mut browser = Browser::new(&app);
    let callback = browser.walk("level=low&scope=profile", "STORK-QAA-Level-1", "login").await;
    let code = query_of(&callback)["code"].clone();

    let mut stranger = Browser::new(&app);
    let elsewhere = stranger.get(&callback).await;
    assert_eq!(elsewhere.status(), 400, "no login was started in this browser");

    let forged = browser.get(&with_query(&callback, "state", "forged")).await;
    assert_eq!(forged.status(), 400);
    let html = forged.text().await?;
    assert!(html.contains("role=\"alert\"") && html.contains("state"), "{html}");
    // The forged answer ended the login: the genuine one arriving afterwards is refused as well.
    assert_eq!(browser.get(&callback).await.status(), 400);

    let login = app.state.db.login_by_code(&fingerprint(&code)).await?.expect("the login pforte issued the code for");
    assert!(login.redeemed_at.is_none(), "the demo service must not have exchanged the code");
    app.stop().await
}
backend_test!(callback_with_a_wrong_state_or_in_another_browser_shows_an_error_and_redeems_nothing);

pub async fn answer_from_another_issuer_is_refused(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let mut browser = Browser::new(&app);
    let callback = browser.walk("level=low", "STORK-QAA-Level-1", "login").await;
    let code = query_of(&callback)["code"].clone();
    let mixed_up = browser.get(&with_query(&callback, "iss", "https://attacker.example")).await;
    assert_eq!(mixed_up.status(), 400);
    assert!(mixed_up.text().await?.contains("iss"));
    let login = app.state.db.login_by_code(&fingerprint(&code)).await?.expect("login");
    assert!(login.redeemed_at.is_none());
    app.stop().await
}
backend_test!(answer_from_another_issuer_is_refused);

pub async fn cancelling_at_the_simulator_shows_the_refusal_on_the_demo_page(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let mut browser = Browser::new(&app);
    let callback = browser.walk("level=substantial&scope=profile", "STORK-QAA-Level-3", "cancel").await;
    assert_eq!(query_of(&callback)["error"], "access_denied");
    let page = browser.get(&callback).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await?;
    assert!(html.contains("<code>access_denied</code>"), "{html}");
    assert!(html.contains("Die Anmeldung wurde nicht erteilt") && html.contains("href=\"/demo\""));
    app.stop().await
}
backend_test!(cancelling_at_the_simulator_shows_the_refusal_on_the_demo_page);

pub async fn demo_service_is_not_mounted_when_dev_simulators_is_off(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app_without_simulators().await?;
    for path in ["/demo", "/demo/login?level=low", "/demo/callback?code=x&state=y"] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 404, "{path}");
        let body: Value = response.json().await?;
        assert_eq!(body["code"], "not_found");
    }
    app.stop().await
}
backend_test!(demo_service_is_not_mounted_when_dev_simulators_is_off);

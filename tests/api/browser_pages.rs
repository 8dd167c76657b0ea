//! What browsers enforce and scripted clients do not: each page's Content-Security-Policy (a form
//! may lead only where the page needs, checked by browsers on every redirect after the submission),
//! the redirect of pages requested under another host than the public URL's, and the favicon and
//! stylesheet every page loads (issue 10 items 1 and 2; `browser.rs` runs the real browser).

use std::collections::BTreeSet;
use std::sync::Arc;

use pforte::clock::{ManualClock, SystemClock};

use crate::helpers::{copy_dir, free_port, TestApp, TestContext, TestResult, MANIFEST_DIR};
use crate::oidc::{demo_request, with};
use crate::upstream::mock_op::MockOp;
use crate::upstream::{BASIC_AUTH, MOCK_IDP};

const ACCEPT_HTML: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
/// The redirect URI of the client `plain`, on another origin than pforte (nothing listens there).
const PLAIN_SERVICE: &str = "http://127.0.0.1:1/plain/callback";
const DEFAULT_POLICY: &str =
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The `form-action` sources of a response's policy, and the policy without them.
fn form_action(response: &reqwest::Response) -> (BTreeSet<String>, String) {
    let policy = response.headers().get("content-security-policy").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let mut sources = BTreeSet::new();
    let mut rest = Vec::new();
    for directive in policy.split(';').map(str::trim) {
        match directive.strip_prefix("form-action ") {
            Some(list) => sources.extend(list.split_whitespace().map(str::to_owned)),
            None => rest.push(directive),
        }
    }
    (sources, rest.join("; "))
}

fn origin(url: &str) -> String {
    url::Url::parse(url).map(|u| u.origin().ascii_serialization()).unwrap_or_default()
}

async fn page(app: &TestApp, path: &str) -> anyhow::Result<reqwest::Response> {
    Ok(app.client.get(app.url(path)).header("accept", ACCEPT_HTML).send().await?)
}

/// pforte with the mock provider (its login page on yet another origin) added to the demo client,
/// and a second client, `plain`, that uses only the simulators.
async fn app_with_a_provider_elsewhere(ctx: &TestContext) -> anyhow::Result<(TestApp, MockOp, String)> {
    let op = MockOp::start(ManualClock::at_millis(chrono::Utc::now().timestamp_millis())).await?;
    let login_page = format!("http://127.0.0.1:{}/login", free_port()?);
    op.set(|op| op.behaviour.authorization_endpoint = Some(login_page.clone()));
    let providers = ctx.dir.path().join("providers");
    copy_dir(&std::path::Path::new(MANIFEST_DIR).join("providers"), &providers)?;
    let entry = MOCK_IDP.replace("{issuer}", &op.issuer).replace("{client_auth}", BASIC_AUTH);
    std::fs::write(providers.join("identity/mock.toml"), entry)?;
    let demo = std::fs::read_to_string(format!("{MANIFEST_DIR}/config/clients/demo.toml"))?;
    let with_mock = demo.replace("\"bundid-sim\", ", "\"bundid-sim\", \"mock\", ");
    assert_ne!(with_mock, demo, "the demo client lists the mock provider");
    let plain = format!(
        r#"display_name = "Dienst ohne Mock"
redirect_uris = ["{PLAIN_SERVICE}"]
identity_providers = ["bundid-sim", "unternehmenskonto-sim"]
scopes = ["openid", "profile"]
min_level = "low"
grant_types = ["authorization_code"]
require_par = false
id_token_alg = "ES256"

[auth]
method = "client_secret_basic"
secret = "plain:plain-secret"
"#
    );
    let clients = ctx.clients_with(&[("demo", with_mock), ("plain", plain)]);
    let app = ctx
        .spawn_app_with(
            |f| f.merge(("registry.providers", providers)).merge(("registry.clients", clients)),
            Arc::new(SystemClock),
        )
        .await;
    Ok((app, op, login_page))
}

pub async fn the_choice_page_lets_its_form_lead_only_to_that_clients_providers_and_back_to_the_service(
    ctx: TestContext,
) -> TestResult {
    let (app, op, login_page) = app_with_a_provider_elsewhere(&ctx).await?;
    let (_, default_rest) = {
        let home = page(&app, "/").await?;
        form_action(&home)
    };

    // The demo client may use the mock provider: its issuer's and its login page's origins, no more.
    let query = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(demo_request(&app)).finish();
    let choice = page(&app, &format!("/authorize?{query}")).await?;
    assert_eq!(choice.status(), 200);
    let (sources, rest) = form_action(&choice);
    let expected: BTreeSet<String> = ["'self'".to_owned(), origin(&op.issuer), origin(&login_page)].into();
    assert_eq!(sources, expected, "pforte's own origin (simulators, demo) is 'self'");
    assert_eq!(rest, default_rest, "the other directives stay");
    for header in ["referrer-policy", "x-content-type-options", "x-frame-options"] {
        assert!(choice.headers().contains_key(header), "{header}");
    }

    // A client on another origin also lets the form's redirects end at its redirect URI.
    let plain = with(with(demo_request(&app), "client_id", Some("plain")), "redirect_uri", Some(PLAIN_SERVICE));
    let query = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(plain).finish();
    let choice = page(&app, &format!("/authorize?{query}")).await?;
    assert_eq!(choice.status(), 200, "{}", choice.text().await?);
    let (sources, _) = form_action(&choice);
    let expected: BTreeSet<String> = ["'self'".to_owned(), "http://127.0.0.1:1".to_owned()].into();
    assert_eq!(sources, expected, "a client without the mock provider does not let forms lead there");

    // The account simulator's login page leads through pforte on to that service too.
    let hinted = with(with(demo_request(&app), "client_id", Some("plain")), "redirect_uri", Some(PLAIN_SERVICE));
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(with(hinted, "idp_hint", Some("bundid-sim")))
        .finish();
    let upstream = page(&app, &format!("/authorize?{query}")).await?;
    assert_eq!(upstream.status(), 303);
    let simulator = page(&app, crate::login::location(&upstream).trim_start_matches(&app.address)).await?;
    assert_eq!(simulator.status(), 200);
    let (sources, _) = form_action(&simulator);
    assert!(sources.contains("http://127.0.0.1:1") && sources.contains("'self'"), "{sources:?}");
    assert!(!sources.contains(&origin(&op.issuer)), "only services, not other providers: {sources:?}");
    app.stop().await
}
backend_test!(the_choice_page_lets_its_form_lead_only_to_that_clients_providers_and_back_to_the_service);

pub async fn every_other_page_lets_forms_lead_to_pforte_only(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let bad_request = "/authorize?client_id=nobody";
    for path in ["/", "/demo", "/finance/login", "/logout", bad_request, "/no-such-page"] {
        let response = page(&app, path).await?;
        let policy = response.headers().get("content-security-policy").and_then(|v| v.to_str().ok());
        assert_eq!(policy, Some(DEFAULT_POLICY), "{path}");
        assert_eq!(response.headers().get("x-frame-options").and_then(|v| v.to_str().ok()), Some("DENY"), "{path}");
    }
    app.stop().await
}
backend_test!(every_other_page_lets_forms_lead_to_pforte_only);

pub async fn a_page_under_another_host_goes_to_the_public_url_and_machine_endpoints_answer_anywhere(
    ctx: TestContext,
) -> TestResult {
    let app = ctx
        .spawn_app_with(
            |f| {
                let public = f.extract_inner::<String>("server.public_url").unwrap_or_default();
                f.merge(("server.public_url", public.replace("127.0.0.1", "localhost")))
            },
            Arc::new(SystemClock),
        )
        .await;
    let public = app.address.replace("127.0.0.1", "localhost");

    let typed = page(&app, "/demo?from=typed").await?;
    assert_eq!(typed.status(), 307);
    assert_eq!(typed.headers()["location"], format!("{public}/demo?from=typed").as_str());
    let head = app.client.head(app.url("/finance/login")).header("accept", ACCEPT_HTML).send().await?;
    assert_eq!(head.status(), 307);
    assert_eq!(head.headers()["location"], format!("{public}/finance/login").as_str());

    // Under the public host itself nothing moves (the client resolves localhost to the same listener).
    let at_home = app.client.get(format!("{public}/demo")).header("accept", ACCEPT_HTML).send().await?;
    assert_eq!(at_home.status(), 200);

    // Probes, discovery, OAuth, APIs and non-GET requests answer under any host, even when asking for HTML.
    for path in ["/healthz", "/readyz", "/.well-known/openid-configuration", "/.well-known/jwks.json"] {
        let response = page(&app, path).await?;
        assert_eq!(response.status(), 200, "{path}");
    }
    let token = app.client.post(app.url("/token")).header("accept", ACCEPT_HTML).form(&[("grant_type", "x")]).send();
    assert_ne!(token.await?.status(), 307, "a POST is never redirected");
    let api = app.client.get(app.url("/demo")).header("accept", "application/json").send().await?;
    assert_ne!(api.status(), 307, "a client that does not ask for HTML gets its answer");
    app.stop().await
}
backend_test!(a_page_under_another_host_goes_to_the_public_url_and_machine_endpoints_answer_anywhere);

pub async fn the_favicon_and_the_stylesheet_are_cached_and_no_page_loads_a_missing_resource(
    ctx: TestContext,
) -> TestResult {
    let app = ctx.spawn_app().await;
    let favicon = app.get("/favicon.ico").await;
    assert_eq!(favicon.status(), 200);
    assert_eq!(favicon.headers()["content-type"], "image/x-icon");
    assert!(favicon.headers()["cache-control"].to_str()?.starts_with("public, max-age="));
    assert!(favicon.bytes().await?.starts_with(&[0, 0, 1, 0]), "an ICO file");
    let stylesheet = app.get("/assets/pforte.css").await;
    assert_eq!(stylesheet.status(), 200);
    assert!(stylesheet.headers()["cache-control"].to_str()?.starts_with("public, max-age="));

    // Every resource a page links (stylesheets, icons, images) is there.
    for path in ["/", "/demo", "/finance/login", "/logout"] {
        let html = page(&app, path).await?.text().await?;
        let linked: Vec<&str> = ["href=\"/", "src=\"/"]
            .iter()
            .flat_map(|marker| html.match_indices(marker).map(move |(at, _)| at + marker.len() - 1))
            .filter_map(|start| html[start..].split('"').next())
            .filter(|target| target.starts_with("/assets/") || target.ends_with(".ico") || target.ends_with(".svg"))
            .collect();
        assert!(!linked.is_empty(), "{path} links its stylesheet");
        for target in linked {
            assert_eq!(app.get(target).await.status(), 200, "{path} links {target}");
        }
    }
    app.stop().await
}
backend_test!(the_favicon_and_the_stylesheet_are_cached_and_no_page_loads_a_missing_resource);

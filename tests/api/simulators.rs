//! The development simulators of BundID and Mein Unternehmenskonto, driven over real HTTP like a
//! relying party and a browser would (no redirects followed; Location headers parsed).

use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::helpers::{TestApp, TestContext, TestResult};

const BUNDID_SECRET: &str = "bundid-sim-secret";
const COMPANY_SECRET: &str = "unternehmenskonto-sim-secret";

/// One login attempt as pforte would start it.
struct Login {
    sim: &'static str,
    provider: &'static str,
    verifier: String,
    state: String,
    nonce: String,
}

impl Login {
    fn bundid() -> Login {
        Login::new("bundid", "bundid-sim")
    }

    fn company() -> Login {
        Login::new("unternehmenskonto", "unternehmenskonto-sim")
    }

    fn new(sim: &'static str, provider: &'static str) -> Login {
        Login { sim, provider, verifier: random(), state: random(), nonce: random() }
    }

    fn issuer(&self, app: &TestApp) -> String {
        app.url(&format!("/dev/{}", self.sim))
    }

    fn redirect_uri(&self, app: &TestApp) -> String {
        app.url(&format!("/callback/{}", self.provider))
    }

    fn challenge(&self) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(self.verifier.as_bytes()))
    }

    /// The authorization request's parameters; tests remove or replace single ones.
    fn params(&self, app: &TestApp) -> Vec<(&'static str, String)> {
        vec![
            ("client_id", "pforte".to_owned()),
            ("redirect_uri", self.redirect_uri(app)),
            ("response_type", "code".to_owned()),
            ("scope", "openid profile".to_owned()),
            ("state", self.state.clone()),
            ("nonce", self.nonce.clone()),
            ("code_challenge", self.challenge()),
            ("code_challenge_method", "S256".to_owned()),
        ]
    }

    async fn authorize(&self, app: &TestApp, params: &[(&str, String)]) -> reqwest::Response {
        let url = format!("{}/authorize", self.issuer(app));
        app.client.get(url).query(params).send().await.expect("authorize")
    }

    /// Opens the login page and returns the request id its form carries.
    async fn open_page(&self, app: &TestApp, params: &[(&str, String)]) -> anyhow::Result<(String, String)> {
        let page = self.authorize(app, params).await;
        anyhow::ensure!(page.status() == 200, "login page status {}", page.status());
        let html = page.text().await?;
        let request = hidden_value(&html, "request").ok_or_else(|| anyhow::anyhow!("no request id in {html}"))?;
        Ok((request, html))
    }

    async fn decide(&self, app: &TestApp, request: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let mut form = vec![("request", request)];
        form.extend_from_slice(fields);
        let url = format!("{}/authorize/decide", self.issuer(app));
        app.client.post(url).form(&form).send().await.expect("decide")
    }

    /// Logs in as `persona` at `level` and returns the authorization response's parameters.
    async fn code(&self, app: &TestApp, persona: &str, level: &str) -> anyhow::Result<HashMap<String, String>> {
        let (request, _) = self.open_page(app, &self.params(app)).await?;
        let response = self.decide(app, &request, &[("persona", persona), ("level", level), ("action", "login")]).await;
        assert_eq!(response.status(), 303);
        Ok(location_query(&response, &self.redirect_uri(app)))
    }

    async fn token(&self, app: &TestApp, code: &str, secret: &str, verifier: &str) -> reqwest::Response {
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &self.redirect_uri(app)),
            ("code_verifier", verifier),
        ];
        let url = format!("{}/token", self.issuer(app));
        app.client.post(url).basic_auth("pforte", Some(secret)).form(&form).send().await.expect("token")
    }
}

fn random() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn hidden_value(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    Some(html[start..].split('"').next()?.to_owned())
}

/// Asserts the redirect goes to `expected_base` and returns its query parameters.
fn location_query(response: &reqwest::Response, expected_base: &str) -> HashMap<String, String> {
    let location = response.headers()["location"].to_str().expect("location").to_owned();
    let url = url::Url::parse(&location).expect("absolute location");
    assert_eq!(format!("{}{}", url.origin().ascii_serialization(), url.path()), expected_base);
    url.query_pairs().into_owned().collect()
}

async fn verify_with_jwks(app: &TestApp, issuer: &str, id_token: &str) -> anyhow::Result<josekit::jwt::JwtPayload> {
    let jwks = app.client.get(format!("{issuer}/jwks")).send().await?.bytes().await?;
    let jwks = josekit::jwk::JwkSet::from_bytes(&jwks)?;
    let header = josekit::jwt::decode_header(id_token)?;
    let kid = header.claim("kid").and_then(Value::as_str).ok_or_else(|| anyhow::anyhow!("no kid"))?;
    assert_eq!(header.claim("typ"), Some(&Value::from("JWT")));
    let key = jwks.get(kid).first().copied().ok_or_else(|| anyhow::anyhow!("kid {kid} not in the JWKS"))?;
    let verifier = josekit::jws::ES256.verifier_from_jwk(key)?;
    let (payload, _) = josekit::jwt::decode_with_verifier(id_token, &verifier)?;
    Ok(payload)
}

pub async fn discovery_names_the_simulator_as_issuer_with_code_flow_pkce_and_es256(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    for (sim, levels) in [
        ("bundid", vec!["STORK-QAA-Level-1", "STORK-QAA-Level-3", "STORK-QAA-Level-4"]),
        ("unternehmenskonto", vec!["substanziell", "hoch"]),
    ] {
        let issuer = app.url(&format!("/dev/{sim}"));
        let response = app.get(&format!("/dev/{sim}/.well-known/openid-configuration")).await;
        assert_eq!(response.status(), 200);
        let doc: Value = response.json().await?;
        assert_eq!(doc["issuer"], issuer);
        for (key, path) in [
            ("authorization_endpoint", "/authorize"),
            ("token_endpoint", "/token"),
            ("userinfo_endpoint", "/userinfo"),
            ("jwks_uri", "/jwks"),
            ("end_session_endpoint", "/logout"),
        ] {
            assert_eq!(doc[key], format!("{issuer}{path}"), "{key}");
        }
        assert_eq!(doc["response_types_supported"], serde_json::json!(["code"]));
        assert_eq!(doc["subject_types_supported"], serde_json::json!(["public"]));
        assert_eq!(doc["id_token_signing_alg_values_supported"], serde_json::json!(["ES256"]));
        assert_eq!(doc["code_challenge_methods_supported"], serde_json::json!(["S256"]));
        assert_eq!(doc["grant_types_supported"], serde_json::json!(["authorization_code"]));
        assert_eq!(
            doc["token_endpoint_auth_methods_supported"],
            serde_json::json!(["client_secret_basic", "client_secret_post"])
        );
        assert_eq!(doc["acr_values_supported"], serde_json::json!(levels));
        assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
        assert!(doc["scopes_supported"].as_array().is_some_and(|s| s.contains(&Value::from("openid"))));
        assert!(doc["claims_supported"].as_array().is_some_and(|c| c.contains(&Value::from("given_name"))));

        let jwks: Value = app.get(&format!("/dev/{sim}/jwks")).await.json().await?;
        let key = &jwks["keys"][0];
        assert_eq!(
            (key["kty"].as_str(), key["crv"].as_str(), key["alg"].as_str()),
            (Some("EC"), Some("P-256"), Some("ES256"))
        );
        assert!(key.get("d").is_none(), "the JWKS must not publish the private key");
    }
    app.stop().await
}
backend_test!(discovery_names_the_simulator_as_issuer_with_code_flow_pkce_and_es256);

pub async fn code_flow_with_pkce_yields_a_verifiable_id_token_and_userinfo(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let login = Login::bundid();
    let issuer = login.issuer(&app);
    let mut params = login.params(&app);
    params.push(("acr_values", "STORK-QAA-Level-4 STORK-QAA-Level-3".to_owned()));
    let (request, html) = login.open_page(&app, &params).await?;
    assert!(html.contains("lang=\"de\"") && html.contains("/assets/pforte.css"));
    assert!(html.contains(r#"<label for="persona-erika">"#), "personas are labelled radio buttons");
    assert!(html.contains(r#"value="STORK-QAA-Level-4" checked"#), "the first requested level is preselected");
    assert!(!html.contains("<script"));

    let fields = [("persona", "erika"), ("level", "STORK-QAA-Level-3"), ("action", "login")];
    let response = login.decide(&app, &request, &fields).await;
    assert_eq!(response.status(), 303);
    let answer = location_query(&response, &login.redirect_uri(&app));
    assert_eq!(answer["state"], login.state);
    assert_eq!(answer["iss"], issuer);

    let response = login.token(&app, &answer["code"], BUNDID_SECRET, &login.verifier).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let tokens: Value = response.json().await?;
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["scope"], "openid profile");
    assert!(tokens["expires_in"].as_i64().is_some_and(|s| s > 0));

    let claims = verify_with_jwks(&app, &issuer, tokens["id_token"].as_str().unwrap_or_default()).await?;
    assert_eq!(claims.issuer(), Some(issuer.as_str()));
    assert_eq!(claims.audience(), Some(vec!["pforte"]));
    assert_eq!(claims.claim("nonce"), Some(&Value::from(login.nonce.clone())));
    assert_eq!(claims.claim("acr"), Some(&Value::from("STORK-QAA-Level-3")));
    assert_eq!(claims.claim("amr"), Some(&serde_json::json!(["swk"])));
    assert_eq!(claims.claim("given_name"), Some(&Value::from("Erika")));
    assert_eq!(claims.claim("birthdate"), Some(&Value::from("1964-08-12")));
    assert_eq!(claims.claim("nationality"), Some(&Value::from("D")));
    assert_eq!(claims.claim("address").and_then(|a| a.get("locality")), Some(&Value::from("Köln")));
    let expires = claims.expires_at().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
    let issued = claims.issued_at().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
    assert_eq!(expires.zip(issued).map(|(e, i)| (e - i).as_secs()), Some(300));

    let access_token = tokens["access_token"].as_str().unwrap_or_default();
    let userinfo = app.client.get(format!("{issuer}/userinfo")).bearer_auth(access_token).send().await?;
    assert_eq!(userinfo.status(), 200);
    let userinfo: Value = userinfo.json().await?;
    assert_eq!(userinfo["sub"], claims.subject().unwrap_or_default());
    assert_eq!(userinfo["family_name"], "Mustermann");
    assert_eq!(userinfo["postbox_reference"], claims.claim("postbox_reference").cloned().unwrap_or_default());
    app.stop().await
}
backend_test!(code_flow_with_pkce_yields_a_verifiable_id_token_and_userinfo);

pub async fn company_account_takes_client_secret_post_and_delivers_organisation_claims(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let login = Login::company();
    let answer = login.code(&app, "musterbau", "hoch").await?;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", answer["code"].as_str()),
        ("redirect_uri", &login.redirect_uri(&app)),
        ("code_verifier", &login.verifier),
        ("client_id", "pforte"),
        ("client_secret", COMPANY_SECRET),
    ];
    let response = app.client.post(format!("{}/token", login.issuer(&app))).form(&form).send().await?;
    assert_eq!(response.status(), 200);
    let tokens: Value = response.json().await?;
    let claims = verify_with_jwks(&app, &login.issuer(&app), tokens["id_token"].as_str().unwrap_or_default()).await?;
    assert_eq!(claims.claim("acr"), Some(&Value::from("hoch")));
    assert_eq!(claims.claim("organisation_name"), Some(&Value::from("Musterbau GmbH")));
    assert_eq!(claims.claim("registerart"), Some(&Value::from("HRB")));
    let address = claims.claim("organisation_address").cloned().unwrap_or_default();
    assert_eq!(address["postal_code"], "80939");
    app.stop().await
}
backend_test!(company_account_takes_client_secret_post_and_delivers_organisation_claims);

/// pforte's upstream client is the `openidconnect` crate: it must discover, log in, verify the ES256
/// ID token (with its at_hash) and read UserInfo without any special casing.
pub async fn openidconnect_client_logs_in_against_the_simulator(ctx: TestContext) -> TestResult {
    use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreJwsSigningAlgorithm, CoreProviderMetadata};
    use openidconnect::{
        AccessTokenHash, AuthenticationContextClass, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl,
        Nonce, OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, Scope, TokenResponse,
    };

    let app = ctx.spawn_app().await;
    let login = Login::bundid();
    let metadata = CoreProviderMetadata::discover_async(IssuerUrl::new(login.issuer(&app))?, &app.client).await?;
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new("pforte".into()),
        Some(ClientSecret::new(BUNDID_SECRET.into())),
    )
    .set_redirect_uri(RedirectUrl::new(login.redirect_uri(&app))?);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, csrf, nonce) = client
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .add_scope(Scope::new("profile".into()))
        .add_auth_context_value(AuthenticationContextClass::new("STORK-QAA-Level-4".into()))
        .set_pkce_challenge(challenge)
        .url();

    let page = app.client.get(url).send().await?.text().await?;
    let request = hidden_value(&page, "request").ok_or_else(|| anyhow::anyhow!("no login form"))?;
    let fields = [("persona", "hans-guenther"), ("level", "STORK-QAA-Level-4"), ("action", "login")];
    let answer = location_query(&login.decide(&app, &request, &fields).await, &login.redirect_uri(&app));
    assert_eq!(&answer["state"], csrf.secret());

    let tokens = client
        .exchange_code(AuthorizationCode::new(answer["code"].clone()))?
        .set_pkce_verifier(verifier)
        .request_async(&app.client)
        .await?;
    let id_token = tokens.id_token().ok_or_else(|| anyhow::anyhow!("no ID token"))?;
    let id_verifier = client.id_token_verifier().set_allowed_algs([CoreJwsSigningAlgorithm::EcdsaP256Sha256]);
    let claims = id_token.claims(&id_verifier, &nonce)?;
    assert_eq!(claims.auth_context_ref().map(|acr| acr.as_str()), Some("STORK-QAA-Level-4"));
    let at_hash = AccessTokenHash::from_token(
        tokens.access_token(),
        id_token.signing_alg()?,
        id_token.signing_key(&id_verifier)?,
    )?;
    assert_eq!(claims.access_token_hash(), Some(&at_hash));

    let userinfo: openidconnect::core::CoreUserInfoClaims = client
        .user_info(tokens.access_token().clone(), Some(claims.subject().clone()))?
        .request_async(&app.client)
        .await?;
    let family_name = userinfo.family_name().and_then(|n| n.get(None)).map(|n| n.as_str().to_owned());
    assert_eq!(family_name.as_deref(), Some("von Drebenbusch-Dalgoßen"));
    app.stop().await
}
backend_test!(openidconnect_client_logs_in_against_the_simulator);

pub async fn cancelling_the_login_redirects_with_access_denied_state_and_iss(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let login = Login::bundid();
    let (request, _) = login.open_page(&app, &login.params(&app)).await?;
    let response = login.decide(&app, &request, &[("persona", "erika"), ("action", "cancel")]).await;
    assert_eq!(response.status(), 303);
    let answer = location_query(&response, &login.redirect_uri(&app));
    assert_eq!(answer["error"], "access_denied");
    assert!(answer.contains_key("error_description"));
    assert_eq!(answer["state"], login.state);
    assert_eq!(answer["iss"], login.issuer(&app));
    assert!(!answer.contains_key("code"));

    let again = login
        .decide(&app, &request, &[("persona", "erika"), ("level", "STORK-QAA-Level-1"), ("action", "login")])
        .await;
    assert_eq!(again.status(), 400, "a decided request cannot be decided again");
    assert!(again.headers().get("location").is_none());
    app.stop().await
}
backend_test!(cancelling_the_login_redirects_with_access_denied_state_and_iss);

pub async fn wrong_client_secret_is_refused_with_401_invalid_client(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let login = Login::bundid();
    let answer = login.code(&app, "erika", "STORK-QAA-Level-1").await?;
    let response = login.token(&app, &answer["code"], "not-the-secret", &login.verifier).await;
    assert_eq!(response.status(), 401);
    assert!(response.headers()["www-authenticate"].to_str()?.starts_with("Basic"));
    let body: Value = response.json().await?;
    assert_eq!(body["error"], "invalid_client");
    assert!(body["error_description"].is_string());
    app.stop().await
}
backend_test!(wrong_client_secret_is_refused_with_401_invalid_client);

pub async fn wrong_code_verifier_is_refused_as_invalid_grant(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let login = Login::bundid();
    let answer = login.code(&app, "erika", "STORK-QAA-Level-3").await?;
    let response = login.token(&app, &answer["code"], BUNDID_SECRET, &random()).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await?;
    assert_eq!(body["error"], "invalid_grant");
    app.stop().await
}
backend_test!(wrong_code_verifier_is_refused_as_invalid_grant);

pub async fn a_code_is_redeemed_once_and_its_replay_revokes_the_access_token(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let login = Login::bundid();
    let answer = login.code(&app, "leyla", "STORK-QAA-Level-4").await?;
    let first = login.token(&app, &answer["code"], BUNDID_SECRET, &login.verifier).await;
    assert_eq!(first.status(), 200);
    let tokens: Value = first.json().await?;

    let replay = login.token(&app, &answer["code"], BUNDID_SECRET, &login.verifier).await;
    assert_eq!(replay.status(), 400);
    let body: Value = replay.json().await?;
    assert_eq!(body["error"], "invalid_grant");

    let access_token = tokens["access_token"].as_str().unwrap_or_default();
    let userinfo = app.client.post(format!("{}/userinfo", login.issuer(&app))).bearer_auth(access_token).send().await?;
    assert_eq!(userinfo.status(), 401);
    assert!(userinfo.headers()["www-authenticate"].to_str()?.contains("invalid_token"));
    app.stop().await
}
backend_test!(a_code_is_redeemed_once_and_its_replay_revokes_the_access_token);

pub async fn unknown_redirect_uri_shows_an_error_page_and_does_not_redirect(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let login = Login::bundid();
    for (name, value) in
        [("redirect_uri", "https://evil.example/callback".to_owned()), ("client_id", "someone-else".to_owned())]
    {
        let mut params = login.params(&app);
        params.retain(|(key, _)| *key != name);
        params.push((name, value));
        let response = login.authorize(&app, &params).await;
        assert_eq!(response.status(), 400, "{name}");
        assert!(response.headers().get("location").is_none(), "{name}");
        assert!(response.headers()["content-type"].to_str()?.starts_with("text/html"));
        let html = response.text().await?;
        assert!(html.contains("Anmeldung nicht möglich"));
        assert!(!html.contains("evil.example"));
    }
    app.stop().await
}
backend_test!(unknown_redirect_uri_shows_an_error_page_and_does_not_redirect);

pub async fn missing_pkce_challenge_is_redirected_back_as_invalid_request(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let login = Login::company();
    let mut params = login.params(&app);
    params.retain(|(key, _)| !key.starts_with("code_challenge"));
    let response = login.authorize(&app, &params).await;
    assert_eq!(response.status(), 303);
    let answer = location_query(&response, &login.redirect_uri(&app));
    assert_eq!(answer["error"], "invalid_request");
    assert_eq!(answer["state"], login.state);
    assert_eq!(answer["iss"], login.issuer(&app));

    let mut plain = login.params(&app);
    plain.retain(|(key, _)| *key != "code_challenge_method");
    plain.push(("code_challenge_method", "plain".to_owned()));
    let answer = location_query(&login.authorize(&app, &plain).await, &login.redirect_uri(&app));
    assert_eq!(answer["error"], "invalid_request", "only S256 is accepted");
    app.stop().await
}
backend_test!(missing_pkce_challenge_is_redirected_back_as_invalid_request);

pub async fn logout_sends_the_browser_back_to_pforte_with_its_state(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let back = app.url("/logged-out");
    let logout = app.url("/dev/bundid/logout");
    let response =
        app.client.get(&logout).query(&[("post_logout_redirect_uri", back.as_str()), ("state", "s1")]).send().await?;
    assert_eq!(response.status(), 303);
    assert_eq!(location_query(&response, &back)["state"], "s1");

    let elsewhere = [("post_logout_redirect_uri", "https://evil.example/")];
    let response = app.client.get(&logout).query(&elsewhere).send().await?;
    assert_eq!(response.status(), 200);
    assert!(response.text().await?.contains("abgemeldet"));
    app.stop().await
}
backend_test!(logout_sends_the_browser_back_to_pforte_with_its_state);

pub async fn simulators_are_not_mounted_when_dev_simulators_is_off(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app_without_simulators().await?;
    assert!(app.simulators.is_none());
    for path in ["/dev/bundid/.well-known/openid-configuration", "/dev/unternehmenskonto/jwks", "/dev/bundid/authorize"]
    {
        let response = app.get(path).await;
        assert_eq!(response.status(), 404, "{path}");
        let body: Value = response.json().await?;
        assert_eq!(body["code"], "not_found");
    }
    assert_eq!(app.get("/healthz").await.status(), 200);
    app.stop().await
}
backend_test!(simulators_are_not_mounted_when_dev_simulators_is_off);

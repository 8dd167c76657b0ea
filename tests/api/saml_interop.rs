//! Interoperability with an independent SAML implementation (issue 12 item 6): samlify (Node.js) is
//! the identity provider. It checks pforte's signed AuthnRequest against pforte's metadata, answers
//! with a signed and encrypted Response that logs the person in through pforte into the demo service
//! (which speaks only OpenID Connect), and produces the forged variants, which pforte refuses; Single
//! Logout runs both ways between them (pforte's LogoutRequest, samlify's LogoutResponse). Runs
//! when `tests/interop/samlify/node_modules` exists (`npm ci` there; CI does it).

use serde_json::Value;
use std::path::{Path, PathBuf};

use crate::helpers::{TestApp, TestContext, TestResult, MANIFEST_DIR};
use crate::login::{citizen_request, location, Browser};
use crate::oidc::with;
use crate::saml::{assert_refused, id_token_of, PROVIDER};
use crate::saml_idp::keys;

pub fn samlify_dir() -> PathBuf {
    PathBuf::from(MANIFEST_DIR).join("tests/interop/samlify")
}

pub fn samlify_installed() -> bool {
    samlify_dir().join("node_modules/samlify").is_dir()
}

fn node(args: &[&str]) -> anyhow::Result<String> {
    let output = std::process::Command::new("node").arg("idp.mjs").args(args).current_dir(samlify_dir()).output()?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    anyhow::ensure!(output.status.success(), "samlify failed: {stdout}{}", String::from_utf8_lossy(&output.stderr));
    Ok(stdout)
}

/// pforte with the SAML provider's metadata from samlify; the IdP's keys are in `dir`.
async fn spawn_with_samlify(ctx: &TestContext) -> anyhow::Result<TestApp> {
    let dir = ctx.dir.path();
    std::fs::write(dir.join("idp.key"), keys().idp.key_pem())?;
    std::fs::write(dir.join("idp.crt"), keys().idp.cert_pem())?;
    std::fs::write(dir.join("forger.key"), keys().forger.key_pem())?;
    std::fs::write(dir.join("forger.crt"), keys().forger.cert_pem())?;
    let dir_text = dir.display().to_string();
    let metadata = tokio::task::spawn_blocking(move || node(&["metadata", &dir_text])).await??;
    Ok(crate::saml::spawn_with_metadata(ctx, &metadata).await)
}

/// One login: pforte sends the browser to samlify with its AuthnRequest; samlify answers as
/// `variant`; the browser posts the Response to pforte's ACS and follows pforte back.
async fn login(app: &TestApp, dir: &Path, variant: &str) -> anyhow::Result<reqwest::Response> {
    let sp_metadata = app.get(&format!("/saml/{PROVIDER}/metadata")).await.text().await?;
    std::fs::write(dir.join("sp.xml"), sp_metadata)?;
    let mut browser = Browser::new(app);
    let params =
        with(citizen_request(app, "openid profile", "http://eidas.europa.eu/LoA/high"), "idp_hint", Some(PROVIDER));
    let to_idp = browser.authorize(&params).await;
    assert_eq!(to_idp.status(), 303);
    let (dir_text, url, variant) = (dir.display().to_string(), location(&to_idp), variant.to_owned());
    let answer = tokio::task::spawn_blocking(move || node(&["respond", &dir_text, &url, &variant])).await??;
    let answer: Value = serde_json::from_str(answer.trim())?;
    let form = [
        ("SAMLResponse", answer["response"].as_str().unwrap_or_default()),
        ("RelayState", answer["relayState"].as_str().unwrap_or_default()),
    ];
    let posted = browser.post(&app.url(&format!("/saml/{PROVIDER}/acs")), &form).await;
    if posted.status() != 303 {
        return Ok(posted);
    }
    Ok(browser.get(&location(&posted)).await)
}

pub async fn samlify_accepts_pforte_s_request_and_its_signed_encrypted_response_logs_the_person_in(
    ctx: TestContext,
) -> TestResult {
    let app = spawn_with_samlify(&ctx).await?;
    let answer = login(&app, ctx.dir.path(), "honest").await?;
    let id_token = id_token_of(&app, &answer).await?;
    assert_eq!(id_token.claim("acr"), Some(&Value::from("http://eidas.europa.eu/LoA/high")), "the level survives");
    assert_eq!(id_token.claim("idp"), Some(&Value::from(PROVIDER)));
    assert_eq!(id_token.claim("given_name"), Some(&Value::from("Max")));
    assert_eq!(id_token.claim("family_name"), Some(&Value::from("Mustermann")));
    app.stop().await
}
sqlite_test!(
    samlify_accepts_pforte_s_request_and_its_signed_encrypted_response_logs_the_person_in,
    only_if = samlify_installed
);

pub async fn responses_forged_with_samlify_are_refused(ctx: TestContext) -> TestResult {
    let app = spawn_with_samlify(&ctx).await?;
    for variant in [
        "unsigned",
        "other-key",
        "second-assertion",
        "comment",
        "other-request",
        "other-destination",
        "other-recipient",
        "other-audience",
        "other-issuer",
        "expired",
    ] {
        let answer = login(&app, ctx.dir.path(), variant).await?;
        assert_refused(answer).await.map_err(|e| anyhow::anyhow!("variant {variant}: {e}"))?;
    }
    app.stop().await
}
sqlite_test!(responses_forged_with_samlify_are_refused, only_if = samlify_installed);

/// Single Logout with samlify as the IdP: samlify verifies pforte's signed LogoutRequest against
/// pforte's metadata and reads the login's NameID from it; its signed LogoutResponse (encoded its own
/// way) is taken at pforte's SingleLogoutService and the browser returns to the service.
pub async fn samlify_accepts_pforte_s_logout_request_and_pforte_its_logout_response(ctx: TestContext) -> TestResult {
    let app = spawn_with_samlify(&ctx).await?;
    let answer = login(&app, ctx.dir.path(), "honest").await?;
    let tokens = crate::saml::tokens_of(&app, &answer).await?;
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("id_token_hint", tokens["id_token"].as_str().unwrap_or_default())
        .append_pair("post_logout_redirect_uri", &app.url("/demo"))
        .append_pair("state", "bye")
        .finish();
    let mut browser = Browser::new(&app);
    let to_idp = browser.get(&app.url(&format!("/logout?{query}"))).await;
    assert_eq!(to_idp.status(), 303);
    let (dir_text, url) = (ctx.dir.path().display().to_string(), location(&to_idp));
    assert!(url.starts_with("https://samlify.test/slo?SAMLRequest="), "{url}");
    let answer = tokio::task::spawn_blocking(move || node(&["logout", &dir_text, &url])).await??;
    let answer: Value = serde_json::from_str(answer.trim())?;
    assert_eq!(answer["nameID"], "transient-samlify", "samlify read the NameID of the login");
    let slo = answer["url"].as_str().unwrap_or_default();
    assert!(slo.starts_with(&app.url(&format!("/saml/{PROVIDER}/slo?SAMLResponse="))), "{slo}");
    let done = browser.get(slo).await;
    assert_eq!(done.status(), 303, "{}", done.text().await?);
    assert_eq!(location(&done), app.url("/demo?state=bye"));
    app.stop().await
}
sqlite_test!(samlify_accepts_pforte_s_logout_request_and_pforte_its_logout_response, only_if = samlify_installed);

//! Interoperability with an OpenID-certified relying party library from another ecosystem:
//! openid-client (Node.js) logs in through pforte with the citizen-account simulator upstream.
//! Runs when `tests/interop/openid-client/node_modules` exists (`npm ci` there; CI does it).

use std::path::PathBuf;

use serde_json::Value;

use crate::helpers::{TestContext, TestResult, MANIFEST_DIR};
use crate::oidc::DEMO_SECRET;

pub fn interop_dir() -> PathBuf {
    PathBuf::from(MANIFEST_DIR).join("tests/interop/openid-client")
}

pub fn openid_client_installed() -> bool {
    interop_dir().join("node_modules/openid-client").is_dir()
}

pub async fn openid_client_logs_in_validates_the_id_token_and_reads_userinfo(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let address = app.address.clone();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg("login.mjs")
            .args([address.as_str(), "demo", DEMO_SECRET])
            .current_dir(interop_dir())
            .output()
    })
    .await??;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "openid-client failed: {stdout}{}", String::from_utf8_lossy(&output.stderr));
    let received: Value = serde_json::from_str(stdout.trim())?;
    assert_eq!(received["acr"], "http://eidas.europa.eu/LoA/substantial");
    assert_eq!(received["idp"], "bundid-sim");
    assert_eq!(received["given_name"], "Erika");
    assert!(received["birthdate"].is_string(), "the birth scope releases the birth date");
    assert!(received["email"].is_null(), "email was not requested");
    app.stop().await
}
sqlite_test!(openid_client_logs_in_validates_the_id_token_and_reads_userinfo, only_if = openid_client_installed);

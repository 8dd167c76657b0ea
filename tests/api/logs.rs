//! SECURITY.md #25: logs never contain personal data, tokens or secrets. A whole login, token
//! exchange, userinfo, a failed client authentication and a logout run with every module logging at
//! debug level into a buffer, which is then searched for everything that must not be there. A finance
//! clerk's sign-in with the staff provider and sign-out run too.

use std::io::Write;
use std::sync::{Arc, Mutex};

use libtest_mimic::Failed;
use pforte::keys::MasterKey;
use serde_json::Value;

use crate::helpers::{TestBackend, TestContext};
use crate::login::{citizen_request, location, redeem, Browser};
use crate::oidc::{location_query, DEMO_SECRET, VERIFIER};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut bytes) = self.0.lock() {
            bytes.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

static CAPTURED: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();

/// Installs, before any test runs, one process-wide subscriber that keeps every log line of every
/// test (at debug level) in memory. Process-wide because per-thread subscribers race with tracing's
/// callsite cache; and every test's logs must be clean anyway, not only this one's.
pub fn install_capture() {
    let captured = CAPTURED.get_or_init(Captured::default).clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::new("debug,hyper=info,h2=info,rustls=info"))
        .with_writer(move || captured.clone())
        .finish();
    let _ = tracing::subscriber::set_global_default(subscriber);
}

/// Every log line captured so far in this test process (all tests' lines).
pub fn captured_logs() -> String {
    let bytes = CAPTURED.get().and_then(|captured| captured.0.lock().ok().map(|b| b.clone())).unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

pub fn no_personal_data_tokens_or_secrets_reach_the_logs() -> Result<(), Failed> {
    let captured = CAPTURED.get().cloned().ok_or_else(|| Failed::from("the log capture is not installed"))?;
    let master_key = MasterKey::generate().encode();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let secrets = runtime.block_on(run_flows(master_key.clone())).map_err(|e| Failed::from(format!("{e:#}")))?;

    let logs = String::from_utf8_lossy(&captured.0.lock().map(|b| b.clone()).unwrap_or_default()).into_owned();
    assert!(logs.contains("request finished") && logs.contains("/token"), "the run was logged");
    let mut forbidden = vec![
        "Erika".to_owned(),
        "Mustermann".to_owned(),
        "1964-08-12".to_owned(),
        DEMO_SECRET.to_owned(),
        "bundid-sim-secret".to_owned(),
        master_key,
        VERIFIER.to_owned(),
        "client-state-1".to_owned(),
        "client-nonce-1".to_owned(),
    ];
    forbidden.extend(secrets);
    for needle in forbidden {
        if let Some(line) = logs.lines().find(|line| line.contains(&needle)) {
            return Err(Failed::from(format!("the log contains `{needle}`: {line}")));
        }
    }
    if let Some(line) = logs.lines().find(|line| contains_compact_jose(line)) {
        return Err(Failed::from(format!("the log contains a JWT or JWE: {line}")));
    }
    Ok(())
}
sync_test!(no_personal_data_tokens_or_secrets_reach_the_logs);

/// Whether the text holds a compact JWT or JWE: `eyJ` (a base64url `{"` header) starting a token and
/// followed by a `.`. Searching for `eyJ` alone also finds it inside random base64url tokens such as
/// pay-link ids, about once in 6,400 of them, which made this test fail now and then.
pub fn contains_compact_jose(text: &str) -> bool {
    let base64url = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    text.match_indices("eyJ").any(|(start, _)| {
        let starts_a_token = !text[..start].chars().next_back().is_some_and(base64url);
        let header = text[start..].trim_start_matches(base64url);
        starts_a_token && header.starts_with('.')
    })
}

pub fn a_jwt_is_found_in_a_log_line_and_a_random_token_containing_eyj_is_not() -> Result<(), Failed> {
    let jwt = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln";
    assert!(contains_compact_jose(&format!(r#"{{"fields":{{"token":"{jwt}"}}}}"#)));
    assert!(contains_compact_jose(&format!("id_token_hint={jwt}")));
    assert!(contains_compact_jose(jwt));
    assert!(!contains_compact_jose(r#"{"path":"/pay/KLSHA8PxUa9j_b77ybqhMH8S0ReyJV2fhUn5dxzDzxo"}"#));
    assert!(!contains_compact_jose(r#"{"path":"/pay/eyJV2fhUn5dxzDzxo"}"#));
    Ok(())
}
sync_test!(a_jwt_is_found_in_a_log_line_and_a_random_token_containing_eyj_is_not);

/// Runs the flows and returns the values it saw that must not be logged (code, tokens, sub).
async fn run_flows(master_key: String) -> anyhow::Result<Vec<String>> {
    let dir = tempfile::tempdir()?;
    let ctx = TestContext {
        database_url: format!("sqlite://{}/pforte.db", dir.path().display()),
        dir,
        master_key,
        backend: TestBackend::Sqlite,
    };
    let app = ctx.spawn_app().await;
    let mut browser = Browser::new(&app);
    let params = citizen_request(&app, "openid profile birth", "http://eidas.europa.eu/LoA/substantial");
    let answer = browser.login(&params, "bundid-sim", "erika", "STORK-QAA-Level-3").await;
    let code = location_query(&answer).get("code").cloned().unwrap_or_default();
    let tokens: Value = redeem(&app, &code, VERIFIER).await.json().await?;
    let access = tokens["access_token"].as_str().unwrap_or_default().to_owned();
    let id_token = tokens["id_token"].as_str().unwrap_or_default().to_owned();
    let userinfo: Value = app.client.get(app.url("/userinfo")).bearer_auth(&access).send().await?.json().await?;
    let sub = userinfo["sub"].as_str().unwrap_or_default().to_owned();
    // A replay and a wrong secret make pforte log warnings and audit entries.
    redeem(&app, &code, VERIFIER).await;
    app.client
        .post(app.url("/token"))
        .basic_auth("demo", Some("wrong"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await?;
    let logout = app.client.get(app.url("/logout")).query(&[("id_token_hint", id_token.as_str())]).send().await?;
    let _ = app.client.get(location(&logout)).send().await?;
    // A finance clerk signs in with the staff provider, is refused a form, and signs out.
    let mut clerk = crate::finance_staff::Clerk::new(&app);
    let page = clerk.signed_in_page().await;
    let session = clerk.session().unwrap_or_default();
    let csrf = page.split("name=\"csrf\" value=\"").nth(1).and_then(|s| s.split('"').next()).unwrap_or_default();
    clerk.post("/finance/logout", &[("csrf", "wrong")]).await;
    clerk.post("/finance/logout", &[("csrf", csrf)]).await;
    app.stop().await?;
    anyhow::ensure!(!code.is_empty() && !sub.is_empty(), "the login completed");
    anyhow::ensure!(!session.is_empty() && !csrf.is_empty(), "the clerk signed in");
    let staff = ["Katrin", "Kassner", "dienstkonto-sim-secret"].map(str::to_owned);
    Ok([vec![code, access, id_token, sub, session, csrf.to_owned()], staff.to_vec()].concat())
}

//! Signing keys: the first start creates one, `pforte keys rotate` replaces it while the old key stays
//! published for the overlap, private keys are stored sealed under the master key, and every
//! rotation is in the audit log. Rotations go through the real binary, as an operator does them.

use std::sync::Arc;
use std::time::Duration;

use figment::Figment;
use josekit::jwk::Jwk;
use josekit::jws::{JwsHeader, JwsSigner, JwsVerifier, ES256, PS256};
use pforte::clock::{Clock, ManualClock, SystemClock};
use pforte::keys::MasterKey;
use serde_json::Value;
use sqlx::Row;

use crate::audit::{audit_verify, Verified};
use crate::helpers::{eventually, TestApp, TestContext, TestResult};
use crate::oidc::{token_request, DEMO_SECRET};

async fn published_keys(app: &TestApp) -> anyhow::Result<Vec<Value>> {
    let body: Value = app.get("/.well-known/jwks.json").await.json().await?;
    Ok(body["keys"].as_array().cloned().unwrap_or_default())
}

async fn published_kids(app: &TestApp) -> anyhow::Result<Vec<String>> {
    Ok(published_keys(app).await?.iter().filter_map(|k| k["kid"].as_str().map(str::to_owned)).collect())
}

/// A running server reads its keys from the database every second (`keys.refresh_secs`), so a
/// rotation by the command line shows quickly.
fn refreshing_every_second(figment: Figment) -> Figment {
    figment.merge(("keys.refresh_secs", 1))
}

/// The published kids once `kid` is among them: a running server publishes another process's
/// rotation at its next refresh.
async fn published_after_refresh(app: &TestApp, kid: &str) -> anyhow::Result<Vec<String>> {
    eventually(Duration::from_secs(10), &format!("{kid} published"), || async {
        let kids = published_kids(app).await?;
        Ok(kids.iter().any(|k| k == kid).then_some(kids))
    })
    .await
}

/// What `pforte keys rotate` printed: the new key and the keys it retired.
#[derive(Debug)]
pub struct CliRotation {
    pub new_kid: String,
    pub retired: Vec<String>,
}

/// Rotates the `alg` key with the binary.
pub fn rotate_keys(ctx: &TestContext, alg: &str) -> anyhow::Result<CliRotation> {
    let text = ctx.cli_ok(&["keys", "rotate", "--alg", alg])?;
    let prefix = format!("new active {alg} key: ");
    let new_kid = text
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .ok_or_else(|| anyhow::anyhow!("no new key in: {text}"))?
        .trim()
        .to_owned();
    let retired = text
        .lines()
        .filter_map(|line| line.strip_prefix("retired "))
        .filter_map(|rest| rest.split(':').next())
        .map(str::to_owned)
        .collect();
    Ok(CliRotation { new_kid, retired })
}

/// When a key was made, from its id (`es256-<millis>-<random>`).
fn created_millis(kid: &str) -> anyhow::Result<i64> {
    Ok(kid.split('-').nth(1).ok_or_else(|| anyhow::anyhow!("kid {kid}"))?.parse()?)
}

/// The key id in the header of an access token the app issues now (client credentials of the demo client).
async fn signing_kid(app: &TestApp) -> anyhow::Result<String> {
    let response = token_request(app, &[("grant_type", "client_credentials")], Some(("demo", DEMO_SECRET))).await?;
    anyhow::ensure!(response.status() == 200, "token request: {}", response.status());
    let body: Value = response.json().await?;
    let header = josekit::jwt::decode_header(body["access_token"].as_str().unwrap_or_default())?;
    Ok(header.claim("kid").and_then(Value::as_str).unwrap_or_default().to_owned())
}

/// The sealed private key of `kid` as stored, and what the test's master key opens it to.
async fn stored_private_key(ctx: &TestContext, kid: &str) -> anyhow::Result<(String, Jwk)> {
    let row = sqlx::query("SELECT private_jwe FROM signing_keys WHERE kid = $1")
        .bind(kid)
        .fetch_one(&any_pool(&ctx.database_url).await?)
        .await?;
    let stored: String = row.try_get("private_jwe")?;
    let opened = MasterKey::parse(&ctx.master_key)?.open(kid, &stored)?;
    Ok((stored, Jwk::from_bytes(&opened)?))
}

/// Whether a token signed with `private` verifies with the published key `public` (ES256 or PS256).
fn signs_for(private: &Jwk, public: &Value) -> anyhow::Result<bool> {
    let public_jwk = Jwk::from_map(public.as_object().cloned().unwrap_or_default())?;
    let (signer, verifier): (Box<dyn JwsSigner>, Box<dyn JwsVerifier>) = match public["alg"].as_str() {
        Some("ES256") => (Box::new(ES256.signer_from_jwk(private)?), Box::new(ES256.verifier_from_jwk(&public_jwk)?)),
        Some("PS256") => (Box::new(PS256.signer_from_jwk(private)?), Box::new(PS256.verifier_from_jwk(&public_jwk)?)),
        other => anyhow::bail!("unexpected alg {other:?}"),
    };
    let mut header = JwsHeader::new();
    header.set_key_id(public["kid"].as_str().unwrap_or_default());
    let token = josekit::jwt::encode_with_signer(&josekit::jwt::JwtPayload::new(), &header, &*signer)?;
    Ok(josekit::jwt::decode_with_verifier(&token, &*verifier).is_ok())
}

pub async fn first_start_creates_one_es256_key_and_publishes_it(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let response = app.get("/.well-known/jwks.json").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await?;
    let keys = body["keys"].as_array().cloned().unwrap_or_default();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["alg"], "ES256");
    assert_eq!(keys[0]["use"], "sig");
    assert_eq!(keys[0]["kty"], "EC");
    assert!(keys[0].get("d").is_none(), "the JWKS must never carry private key material");

    // A second start on the same database reuses the key.
    let kid = keys[0]["kid"].as_str().unwrap_or_default().to_owned();
    app.stop().await?;
    let again = ctx.spawn_app().await;
    assert_eq!(published_kids(&again).await?, vec![kid]);
    again.stop().await
}
backend_test!(first_start_creates_one_es256_key_and_publishes_it);

pub async fn rotation_keeps_the_old_key_published_until_the_overlap_ends(ctx: TestContext) -> TestResult {
    // The app's clock starts at the real time, so the binary's rotation (on the system clock) falls
    // inside it; the server moves on by its own clock only.
    let start = SystemClock.now_millis();
    let clock = ManualClock::at_millis(start);
    let app = ctx.spawn_app_with(refreshing_every_second, Arc::new(clock.clone())).await;
    let original = published_kids(&app).await?;

    let rotation = rotate_keys(&ctx, "ES256")?;
    assert_eq!(rotation.retired, original);
    let after = published_after_refresh(&app, &rotation.new_kid).await?;
    assert_eq!(after, vec![rotation.new_kid.clone(), original[0].clone()], "newest first, old one still there");

    // The old key stays published until `keys.retired_publish_secs` after the rotation (its time is in
    // the new key's id); the clock moves to one second before that, then past it.
    let overlap: i64 = ctx.figment().extract_inner("keys.retired_publish_secs")?;
    let until_end = created_millis(&rotation.new_kid)? + overlap * 1000 - start;
    clock.advance_secs(until_end / 1000 - 1);
    assert_eq!(published_kids(&app).await?.len(), 2, "still inside the overlap");
    assert_eq!(signing_kid(&app).await?, rotation.new_kid, "the running server signs with the new key");
    clock.advance_secs(2);
    assert_eq!(published_kids(&app).await?, vec![rotation.new_kid]);
    app.stop().await
}
backend_test!(rotation_keeps_the_old_key_published_until_the_overlap_ends);

pub async fn private_keys_are_stored_encrypted_under_the_master_key(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let published = published_keys(&app).await?.remove(0);
    let kid = published["kid"].as_str().unwrap_or_default();
    let (stored, private) = stored_private_key(&ctx, kid).await?;
    let private_d = private.parameter("d").and_then(Value::as_str).unwrap_or_default().to_owned();
    assert!(!private_d.is_empty());
    assert!(!stored.contains(&private_d), "the private scalar must not be stored in clear");
    assert_eq!(stored.split('.').count(), 5, "a compact JWE");
    assert!(signs_for(&private, &published)?, "the stored key is the published key's pair");
    assert!(MasterKey::generate().open(kid, &stored).is_err(), "another master key cannot open it");
    app.stop().await
}
backend_test!(private_keys_are_stored_encrypted_under_the_master_key);

pub async fn rotation_is_recorded_in_the_audit_log(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let rotation = rotate_keys(&ctx, "ES256")?;
    crate::audit::all_chained(&ctx).await?;
    let rows = crate::audit::chained_events(&app).await?;
    let entry = rows.iter().find(|r| r.event == "keys.rotated").expect("a keys.rotated entry");
    assert_eq!(entry.actor, "operator");
    assert_eq!(entry.subject, rotation.new_kid);
    assert!(entry.details.contains(&rotation.retired[0]));
    assert!(rows.iter().any(|r| r.event == "keys.created"), "the first key was recorded too");
    let verified = audit_verify(&ctx).await?;
    let stored = u64::try_from(rows.len())?;
    assert!(matches!(&verified, Verified::Intact { rows, .. } if *rows == stored), "{verified:?}");
    app.stop().await
}
backend_test!(rotation_is_recorded_in_the_audit_log);

pub async fn rsa_keys_have_3072_bits_and_sign_verifiably(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app_with(refreshing_every_second, Arc::new(SystemClock)).await;
    let es256 = signing_kid(&app).await?;
    let rotation = rotate_keys(&ctx, "PS256")?;
    published_after_refresh(&app, &rotation.new_kid).await?;
    let published = published_keys(&app).await?;
    let public =
        published.iter().find(|k| k["kid"] == rotation.new_kid.as_str()).cloned().expect("PS256 key published");
    assert_eq!(public["alg"], "PS256");
    let modulus = public["n"].as_str().unwrap_or_default();
    let bytes = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, modulus)?;
    assert_eq!(bytes.len() * 8, 3072);

    let (_, private) = stored_private_key(&ctx, &rotation.new_kid).await?;
    assert!(signs_for(&private, &public)?, "a token it signs verifies with the published key");
    // The ES256 key is untouched by a PS256 rotation: still published, still signing.
    assert!(rotation.retired.is_empty(), "{rotation:?}");
    assert!(published.iter().any(|k| k["kid"] == es256.as_str()));
    assert_eq!(signing_kid(&app).await?, es256);
    app.stop().await
}
backend_test!(rsa_keys_have_3072_bits_and_sign_verifiably);

pub async fn any_pool(url: &str) -> anyhow::Result<sqlx::AnyPool> {
    sqlx::any::install_default_drivers();
    Ok(sqlx::any::AnyPoolOptions::new().max_connections(2).connect(url).await?)
}

/// A schedule that is due after one day and publishes the new key an hour before it signs; keys are
/// read every second, so the published set follows the clock quickly.
fn rotating_daily(figment: Figment) -> Figment {
    refreshing_every_second(figment)
        .merge(("keys.rotate_after_days", 1))
        .merge(("keys.publish_ahead_secs", 3600))
        .merge(("keys.retired_publish_secs", 3600))
}

pub async fn a_scheduled_rotation_publishes_the_new_key_before_it_signs(ctx: TestContext) -> TestResult {
    let clock = ManualClock::at_millis(SystemClock.now_millis());
    let app = ctx.spawn_app_with(rotating_daily, Arc::new(clock.clone())).await;
    let original = signing_kid(&app).await?;

    // A day later the schedule publishes a successor, and the old key goes on signing.
    clock.advance_secs(86_400);
    let published = eventually(Duration::from_secs(10), "a second key published", || async {
        let kids = published_kids(&app).await?;
        Ok((kids.len() == 2).then_some(kids))
    })
    .await?;
    let successor = published.iter().find(|kid| **kid != original).cloned().expect("a new kid");
    assert_eq!(signing_kid(&app).await?, original, "published ahead of use, not signing yet");

    // It signs once publish_ahead_secs have passed, and the old key leaves the JWKS after the overlap.
    clock.advance_secs(3599);
    assert_eq!(signing_kid(&app).await?, original, "one second before the switch");
    clock.advance_secs(2);
    assert_eq!(signing_kid(&app).await?, successor, "the new key signs on time");
    assert!(published_kids(&app).await?.contains(&original), "the old key stays for the overlap");
    clock.advance_secs(3600);
    assert_eq!(published_kids(&app).await?, vec![successor.clone()]);

    crate::audit::all_chained(&ctx).await?;
    let rows = crate::audit::chained_events(&app).await?;
    let rotated: Vec<_> = rows.iter().filter(|r| r.event == "keys.rotated").collect();
    assert_eq!(rotated.len(), 1, "{rotated:?}");
    assert_eq!((rotated[0].actor.as_str(), rotated[0].subject.as_str()), ("schedule", successor.as_str()));
    assert!(rotated[0].details.contains(&original), "the retired key is named: {}", rotated[0].details);
    app.stop().await?;
    let verified = audit_verify(&ctx).await?;
    assert!(matches!(verified, Verified::Intact { .. }), "{verified:?}");
    Ok(())
}
backend_test!(a_scheduled_rotation_publishes_the_new_key_before_it_signs);

pub async fn two_instances_due_at_once_add_one_key(ctx: TestContext) -> TestResult {
    // The workers' own ticks are an hour apart, so the two checks below are the only ones racing.
    let hourly = |figment: Figment| figment.merge(("keys.refresh_secs", 3600));
    let clock = ManualClock::at_millis(SystemClock.now_millis());
    let first = ctx.spawn_app_with(hourly, Arc::new(clock.clone())).await;
    let second = ctx.spawn_app_with(hourly, Arc::new(clock.clone())).await;
    let original = signing_kid(&first).await?;
    let schedule = pforte::keys::RotationSchedule { rotate_after_millis: 86_400_000, publish_ahead_millis: 3_600_000 };
    assert!(first.state.keys.rotate_due(schedule).await?.is_empty(), "not due yet");

    clock.advance_secs(86_400);
    let (a, b) = tokio::join!(first.state.keys.rotate_due(schedule), second.state.keys.rotate_due(schedule));
    let rotations: Vec<_> = a?.into_iter().chain(b?).collect();
    assert_eq!(rotations.len(), 1, "exactly one instance rotates: {rotations:?}");
    assert_eq!(rotations[0].retired, vec![original]);

    crate::audit::all_chained(&ctx).await?;
    let pool = any_pool(&ctx.database_url).await?;
    let keys: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM signing_keys WHERE alg = 'ES256'").fetch_one(&pool).await?;
    assert_eq!(keys, 2, "one new key, not one per instance");
    let events: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE event = 'keys.rotated'").fetch_one(&pool).await?;
    assert_eq!(events, 1);
    first.stop().await?;
    second.stop().await
}
backend_test!(two_instances_due_at_once_add_one_key);

use josekit::jwk::Jwk;
use josekit::jws::{JwsHeader, ES256, PS256};
use pforte::clock::ManualClock;
use pforte::keys::{MasterKey, SigningAlg};
use serde_json::Value;
use sqlx::Row;

use crate::helpers::{TestContext, TestResult};

async fn published_kids(app: &crate::helpers::TestApp) -> anyhow::Result<Vec<String>> {
    let body: Value = app.get("/.well-known/jwks.json").await.json().await?;
    Ok(body["keys"].as_array().into_iter().flatten().filter_map(|k| k["kid"].as_str().map(str::to_owned)).collect())
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
    let clock = ManualClock::at_millis(1_800_000_000_000);
    let app = ctx.spawn_app_with_clock(clock.clone()).await;
    let original = published_kids(&app).await?;

    clock.advance_secs(60);
    let rotation = app.state.keys.rotate(SigningAlg::Es256, "operator").await?;
    assert_eq!(rotation.retired, original);
    let after = published_kids(&app).await?;
    assert_eq!(after, vec![rotation.new_kid.clone(), original[0].clone()], "newest first, old one still there");
    assert_eq!(app.state.keys.active(SigningAlg::Es256).await?.kid, rotation.new_kid);

    let overlap = i64::try_from(app.state.settings.keys.retired_publish_secs)?;
    clock.advance_secs(overlap - 1);
    assert_eq!(published_kids(&app).await?.len(), 2, "still inside the overlap");
    clock.advance_secs(2);
    assert_eq!(published_kids(&app).await?, vec![rotation.new_kid]);
    app.stop().await
}
backend_test!(rotation_keeps_the_old_key_published_until_the_overlap_ends);

pub async fn private_keys_are_stored_encrypted_under_the_master_key(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let active = app.state.keys.active(SigningAlg::Es256).await?;
    let row = sqlx::query("SELECT private_jwe FROM signing_keys WHERE kid = $1")
        .bind(&active.kid)
        .fetch_one(&any_pool(&ctx.database_url).await?)
        .await?;
    let stored: String = row.try_get("private_jwe")?;
    let private_d = active.private_jwk.parameter("d").and_then(Value::as_str).unwrap_or_default().to_owned();
    assert!(!private_d.is_empty());
    assert!(!stored.contains(&private_d), "the private scalar must not be stored in clear");
    assert_eq!(stored.split('.').count(), 5, "a compact JWE");
    assert!(MasterKey::parse(&ctx.master_key)?.open(&active.kid, &stored).is_ok());
    assert!(MasterKey::generate().open(&active.kid, &stored).is_err(), "another master key cannot open it");
    app.stop().await
}
backend_test!(private_keys_are_stored_encrypted_under_the_master_key);

pub async fn rotation_is_recorded_in_the_audit_log(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let rotation = app.state.keys.rotate(SigningAlg::Es256, "operator").await?;
    let rows = app.state.db.audit_entries_after(0, 100).await?;
    let entry = rows.iter().find(|r| r.event == "keys.rotated").expect("a keys.rotated entry");
    assert_eq!(entry.actor, "operator");
    assert_eq!(entry.subject, rotation.new_kid);
    assert!(entry.details.contains(&rotation.retired[0]));
    assert!(rows.iter().any(|r| r.event == "keys.created"), "the first key was recorded too");
    assert!(app.state.audit.verify().await?.first_broken.is_none());
    app.stop().await
}
backend_test!(rotation_is_recorded_in_the_audit_log);

pub async fn rsa_keys_have_3072_bits_and_sign_verifiably(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    app.state.keys.rotate(SigningAlg::Ps256, "operator").await?;
    let active = app.state.keys.active(SigningAlg::Ps256).await?;
    let modulus = active.private_jwk.parameter("n").and_then(Value::as_str).unwrap_or_default();
    let bytes = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, modulus)?;
    assert_eq!(bytes.len() * 8, 3072);

    let mut header = JwsHeader::new();
    header.set_key_id(&active.kid);
    let signer = PS256.signer_from_jwk(&active.private_jwk)?;
    let token = josekit::jwt::encode_with_signer(&josekit::jwt::JwtPayload::new(), &header, &signer)?;
    let published: Value = app.get("/.well-known/jwks.json").await.json().await?;
    let public = published["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|k| k["kid"] == active.kid.as_str())
        .cloned()
        .expect("PS256 key published");
    let public = Jwk::from_map(public.as_object().cloned().unwrap_or_default())?;
    assert!(josekit::jwt::decode_with_verifier(&token, &*PS256.verifier_from_jwk(&public)?).is_ok());
    // The ES256 key is untouched by a PS256 rotation.
    assert!(ES256.signer_from_jwk(&app.state.keys.active(SigningAlg::Es256).await?.private_jwk).is_ok());
    app.stop().await
}
backend_test!(rsa_keys_have_3072_bits_and_sign_verifiably);

pub async fn any_pool(url: &str) -> anyhow::Result<sqlx::AnyPool> {
    sqlx::any::install_default_drivers();
    Ok(sqlx::any::AnyPoolOptions::new().max_connections(2).connect(url).await?)
}

//! What the Datentransfer tests share: a Fachverfahren's keys and destination files, a sender and a
//! subscriber. The JOSE side is written here from the specifications with OpenSSL primitives (RSA-OAEP
//! with SHA-256, AES-256-GCM, RSASSA-PSS with SHA-512), step by step, not with pforte's JOSE library:
//! the JWE a sender uploads, its decryption by the subscriber, the subscriber's SET and the check of
//! pforte's SETs against its JWKS.

use std::sync::{Arc, OnceLock};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use figment::Figment;
use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::encrypt::{Decrypter, Encrypter};
use openssl::hash::MessageDigest;
use openssl::pkey::{HasPublic, PKey, Private, Public};
use openssl::rsa::{Padding, Rsa};
use openssl::sign::{RsaPssSaltlen, Signer, Verifier};
use openssl::symm::{decrypt_aead, encrypt_aead, Cipher};
use openssl::x509::{X509NameBuilder, X509};
use pforte::clock::SystemClock;
use serde_json::{json, Value};

use crate::helpers::{TestApp, TestContext};

/// The destination senders use; its subscriber is `fachverfahren`.
pub const DESTINATION: &str = "7c2b9a4e-3f61-4d2a-9b8e-0c1d2e3f4a5b";
/// A second destination of the same authority with another subscriber, `fachverfahren-2`.
pub const OTHER_DESTINATION: &str = "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0";
/// A destination of the same authority that takes no submissions.
pub const INACTIVE_DESTINATION: &str = "11111111-2222-4333-8444-555555555555";
pub const SERVICE: &str = "urn:de:fim:leika:leistung:99123456760610";
pub const DEMO_SECRET: &str = "demo-secret-change-me";
pub const EVENTS: &str = "https://schema.fitko.de/fit-connect/events/";

/// The Fachverfahren's keys: `enc-1` (current), `enc-0` (the one before, still listed during the
/// rollover), `sig-1` (its SETs), and a key no registry file names (for forgeries).
pub struct FachverfahrenKeys {
    pub encryption: PKey<Private>,
    pub old_encryption: PKey<Private>,
    pub signing: PKey<Private>,
    pub forger: PKey<Private>,
}

pub fn keys() -> &'static FachverfahrenKeys {
    static KEYS: OnceLock<FachverfahrenKeys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let rsa = || PKey::from_rsa(Rsa::generate(4096).expect("RSA key")).expect("key");
        FachverfahrenKeys { encryption: rsa(), old_encryption: rsa(), signing: rsa(), forger: rsa() }
    })
}

fn self_signed(key: &PKey<Private>) -> X509 {
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "Fachverfahren (Test)").unwrap();
    let name = name.build();
    let mut builder = X509::builder().unwrap();
    builder.set_version(2).unwrap();
    builder.set_serial_number(&BigNum::from_u32(7).unwrap().to_asn1_integer().unwrap()).unwrap();
    builder.set_subject_name(&name).unwrap();
    builder.set_issuer_name(&name).unwrap();
    builder.set_pubkey(key).unwrap();
    builder.set_not_before(&Asn1Time::days_from_now(0).unwrap()).unwrap();
    builder.set_not_after(&Asn1Time::days_from_now(30).unwrap()).unwrap();
    builder.sign(key, MessageDigest::sha256()).unwrap();
    builder.build()
}

fn public_jwk(key: &PKey<Private>, kid: &str, ops: &str, alg: &str) -> Value {
    let rsa = key.rsa().unwrap();
    json!({
        "kty": "RSA", "kid": kid, "key_ops": [ops], "alg": alg,
        "n": URL_SAFE_NO_PAD.encode(rsa.n().to_vec()), "e": URL_SAFE_NO_PAD.encode(rsa.e().to_vec()),
        "x5c": [STANDARD.encode(self_signed(key).to_der().unwrap())],
    })
}

/// The callback secret of [`DESTINATION`] when it has a callback.
pub const CALLBACK_SECRET: &str = "a-callback-secret-of-at-least-32-characters";

pub fn destination_file(status: &str, subscriber: &str, callback: Option<&str>) -> String {
    let k = keys();
    destination_file_with(
        status,
        subscriber,
        callback,
        &[("enc-1", &k.encryption), ("enc-0", &k.old_encryption)],
        "enc-1",
    )
}

/// A destination file listing the encryption keys `encryption` (kid, key), `current` the one senders
/// are told to use, and the signing key `sig-1`.
pub fn destination_file_with(
    status: &str,
    subscriber: &str,
    callback: Option<&str>,
    encryption: &[(&str, &PKey<Private>)],
    current: &str,
) -> String {
    let callback = callback
        .map(|url| format!("[callback]\nurl = \"{url}\"\nsecret = \"plain:{CALLBACK_SECRET}\"\n"))
        .unwrap_or_default();
    let mut listed: Vec<Value> =
        encryption.iter().map(|(kid, key)| public_jwk(key, kid, "wrapKey", "RSA-OAEP-256")).collect();
    listed.push(public_jwk(&keys().signing, "sig-1", "verify", "PS512"));
    let jwks = json!({ "keys": listed });
    format!(
        r#"tenant = "03241001"
status = "{status}"
subscriber_client = "{subscriber}"
encryption_kid = "{current}"
reply_channels = ["eMail"]
jwks = '''{jwks}'''

[[services]]
identifier = "{SERVICE}"
regions = ["DE03241001"]
submission_schemas = [{{ schema_uri = "https://schema.example.org/bauantrag.json", mime_type = "json" }}]

{callback}"#
    )
}

pub fn client_file(name: &str, tenants: &str) -> String {
    format!(
        r#"display_name = "{name}"
redirect_uris = ["https://{name}.example.org/cb"]
identity_providers = ["bundid-sim"]
scopes = ["openid"]
grant_types = ["client_credentials"]
tenants = [{tenants}]

[auth]
method = "client_secret_basic"
secret = "plain:{name}-secret"
"#
    )
}

/// pforte with three destinations and the clients around them: `demo` sends (tenant 03241001 is one
/// of its tenants), `other-service` may send only for 09162000, `fachverfahren` and `fachverfahren-2`
/// subscribe.
pub async fn start(ctx: &TestContext, adjust: impl FnOnce(Figment) -> Figment) -> anyhow::Result<TestApp> {
    start_with(ctx, adjust, None, Arc::new(SystemClock)).await
}

/// [`start`] with [`DESTINATION`] calling back `callback`, on `clock`.
pub async fn start_with(
    ctx: &TestContext,
    adjust: impl FnOnce(Figment) -> Figment,
    callback: Option<&str>,
    clock: pforte::clock::SharedClock,
) -> anyhow::Result<TestApp> {
    let clients = ctx.clients_with(&[
        ("fachverfahren", client_file("fachverfahren", "")),
        ("fachverfahren-2", client_file("fachverfahren-2", "")),
        ("other-service", client_file("other-service", "\"09162000\"")),
    ]);
    let destinations = ctx.dir.path().join("destinations");
    std::fs::create_dir_all(&destinations)?;
    for (id, status, subscriber, callback) in [
        (DESTINATION, "active", "fachverfahren", callback),
        (OTHER_DESTINATION, "active", "fachverfahren-2", None),
        (INACTIVE_DESTINATION, "inactive", "fachverfahren", None),
    ] {
        std::fs::write(destinations.join(format!("{id}.toml")), destination_file(status, subscriber, callback))?;
    }
    let app = ctx
        .spawn_app_with(
            |f| adjust(f.merge(("registry.clients", clients)).merge(("transfer.destinations", destinations))),
            clock,
        )
        .await;
    Ok(app)
}

/// An access token of `client` with `scope`.
pub async fn token(app: &TestApp, client: &str, scope: &str) -> anyhow::Result<String> {
    let secret = if client == "demo" { DEMO_SECRET.to_owned() } else { format!("{client}-secret") };
    let response = app
        .client
        .post(app.url("/token"))
        .basic_auth(client, Some(secret))
        .form(&[("grant_type", "client_credentials"), ("scope", scope)])
        .send()
        .await?;
    anyhow::ensure!(response.status() == 200, "token for {client}: {}", response.text().await?);
    let body: Value = response.json().await?;
    Ok(body["access_token"].as_str().unwrap_or_default().to_owned())
}

/// A compact JWE of `plaintext` to `key` (RFC 7516 §5.1 with RSA-OAEP-256 and A256GCM), and its tag.
pub fn encrypt<T: HasPublic>(key: &PKey<T>, kid: &str, cty: &str, plaintext: &[u8]) -> (String, String) {
    let header = json!({ "alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": kid, "cty": cty }).to_string();
    let protected = URL_SAFE_NO_PAD.encode(header);
    let mut cek = [0u8; 32];
    let mut iv = [0u8; 12];
    openssl::rand::rand_bytes(&mut cek).unwrap();
    openssl::rand::rand_bytes(&mut iv).unwrap();
    let public: PKey<Public> = PKey::public_key_from_der(&key.public_key_to_der().unwrap()).unwrap();
    let mut encrypter = Encrypter::new(&public).unwrap();
    encrypter.set_rsa_padding(Padding::PKCS1_OAEP).unwrap();
    encrypter.set_rsa_oaep_md(MessageDigest::sha256()).unwrap();
    encrypter.set_rsa_mgf1_md(MessageDigest::sha256()).unwrap();
    let mut wrapped = vec![0; encrypter.encrypt_len(&cek).unwrap()];
    let length = encrypter.encrypt(&cek, &mut wrapped).unwrap();
    wrapped.truncate(length);
    let mut tag = [0u8; 16];
    // The additional authenticated data is the protected header as it is sent (ASCII of base64url).
    let ciphertext =
        encrypt_aead(Cipher::aes_256_gcm(), &cek, Some(&iv), protected.as_bytes(), plaintext, &mut tag).unwrap();
    let tag = URL_SAFE_NO_PAD.encode(tag);
    let parts =
        [protected, URL_SAFE_NO_PAD.encode(wrapped), URL_SAFE_NO_PAD.encode(iv), URL_SAFE_NO_PAD.encode(ciphertext)];
    (format!("{}.{tag}", parts.join(".")), tag)
}

/// The subscriber's decryption of a compact JWE with its private key.
pub fn decrypt(key: &PKey<Private>, jwe: &str) -> anyhow::Result<Vec<u8>> {
    let parts: Vec<&str> = jwe.split('.').collect();
    anyhow::ensure!(parts.len() == 5, "not five parts");
    let decode = |part: &str| URL_SAFE_NO_PAD.decode(part);
    let mut decrypter = Decrypter::new(key)?;
    decrypter.set_rsa_padding(Padding::PKCS1_OAEP)?;
    decrypter.set_rsa_oaep_md(MessageDigest::sha256())?;
    decrypter.set_rsa_mgf1_md(MessageDigest::sha256())?;
    let wrapped = decode(parts[1])?;
    let mut cek = vec![0; decrypter.decrypt_len(&wrapped)?];
    let length = decrypter.decrypt(&wrapped, &mut cek)?;
    cek.truncate(length);
    let plain = decrypt_aead(
        Cipher::aes_256_gcm(),
        &cek,
        Some(&decode(parts[2])?),
        parts[0].as_bytes(),
        &decode(parts[3])?,
        &decode(parts[4])?,
    )?;
    Ok(plain)
}

/// A SET (RFC 8417) signed with PS512 by `key` under `kid`.
pub fn sign_set(key: &PKey<Private>, kid: &str, claims: &Value) -> String {
    let header = json!({ "typ": "secevent+jwt", "alg": "PS512", "kid": kid }).to_string();
    let input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims.to_string()));
    let mut signer = Signer::new(MessageDigest::sha512(), key).unwrap();
    signer.set_rsa_padding(Padding::PKCS1_PSS).unwrap();
    signer.set_rsa_pss_saltlen(RsaPssSaltlen::DIGEST_LENGTH).unwrap();
    signer.set_rsa_mgf1_md(MessageDigest::sha512()).unwrap();
    signer.update(input.as_bytes()).unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signer.sign_to_vec().unwrap()))
}

/// The subscriber's decision about a submission, as FIT-Connect's SET.
pub fn decision(key: &PKey<Private>, event: &str, (destination, submission, case): (&str, &str, &str)) -> String {
    let claims = json!({
        "jti": uuid::Uuid::new_v4().to_string(),
        "iss": destination,
        "iat": chrono::Utc::now().timestamp(),
        "sub": format!("submission:{submission}"),
        "txn": format!("case:{case}"),
        "events": { format!("{EVENTS}{event}"): {} },
    });
    sign_set(key, "sig-1", &claims)
}

/// Checks one of pforte's SETs against pforte's published JWKS (PS512, the `kid` of the header) and
/// returns its claims.
pub async fn verify_pforte_set(app: &TestApp, token: &str) -> anyhow::Result<Value> {
    verify_pforte_jws(&app.client, &app.address, token, "secevent+jwt").await
}

/// Checks a JWS pforte signed with its PS512 key (a SET, or its login and payment evidence) against
/// the JWKS pforte at `base` publishes, as a Fachverfahren would: header `typ` and `alg`, the key
/// found by `kid`, RSA of at least 4096 bits, RSASSA-PSS with SHA-512. Returns the claims.
pub async fn verify_pforte_jws(http: &reqwest::Client, base: &str, token: &str, typ: &str) -> anyhow::Result<Value> {
    let parts: Vec<&str> = token.split('.').collect();
    anyhow::ensure!(parts.len() == 3, "a JWS in compact form");
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0])?)?;
    anyhow::ensure!(header["typ"] == typ && header["alg"] == "PS512", "header {header}");
    let jwks: Value = http.get(format!("{base}/.well-known/jwks.json")).send().await?.json().await?;
    let jwk = jwks["keys"]
        .as_array()
        .and_then(|keys| keys.iter().find(|k| k["kid"] == header["kid"]))
        .ok_or_else(|| anyhow::anyhow!("the JWS's kid is not in pforte's JWKS"))?;
    anyhow::ensure!(jwk["alg"] == "PS512", "the published key is {jwk}");
    let n = BigNum::from_slice(&URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap_or_default())?)?;
    let e = BigNum::from_slice(&URL_SAFE_NO_PAD.decode(jwk["e"].as_str().unwrap_or_default())?)?;
    anyhow::ensure!(n.num_bits() >= 4096, "pforte's PS512 key has {} bits", n.num_bits());
    let public = PKey::from_rsa(Rsa::from_public_components(n, e)?)?;
    let mut verifier = Verifier::new(MessageDigest::sha512(), &public)?;
    verifier.set_rsa_padding(Padding::PKCS1_PSS)?;
    verifier.set_rsa_pss_saltlen(RsaPssSaltlen::DIGEST_LENGTH)?;
    verifier.set_rsa_mgf1_md(MessageDigest::sha512())?;
    verifier.update(format!("{}.{}", parts[0], parts[1]).as_bytes())?;
    anyhow::ensure!(verifier.verify(&URL_SAFE_NO_PAD.decode(parts[2])?)?, "pforte's JWS does not verify");
    Ok(serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1])?)?)
}

/// The claims of a SET without checking it (for the subscriber's own, stored as posted).
pub fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap_or_default();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap_or_default()).unwrap_or_default()
}

/// The problem `code` of a refused answer, after checking its status.
pub async fn refused(response: reqwest::Response, status: u16) -> anyhow::Result<String> {
    let got = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or_default();
    anyhow::ensure!(got == status, "expected {status}, got {got}: {body}");
    Ok(body["code"].as_str().unwrap_or_default().to_owned())
}

/// A sender's announced submission with one attachment: (submissionId, caseId, attachmentId).
pub async fn announce(
    app: &TestApp,
    token: &str,
    destination: &str,
    attachments: usize,
) -> anyhow::Result<reqwest::Response> {
    let ids: Vec<String> = (0..attachments).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    Ok(app
        .client
        .post(app.url("/v1/submissions"))
        .bearer_auth(token)
        .json(&json!({
            "destinationId": destination,
            "announcedAttachments": ids,
            "serviceType": { "name": "Bauantrag", "identifier": SERVICE },
        }))
        .send()
        .await?)
}

/// Announces to [`DESTINATION`] with `attachments` attachments; returns (submissionId, caseId, attachment ids).
pub async fn announced(
    app: &TestApp,
    token: &str,
    attachments: usize,
) -> anyhow::Result<(String, String, Vec<String>)> {
    let ids: Vec<String> = (0..attachments).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let response = app
        .client
        .post(app.url("/v1/submissions"))
        .bearer_auth(token)
        .json(&json!({
            "destinationId": DESTINATION,
            "announcedAttachments": ids,
            "serviceType": { "name": "Bauantrag", "identifier": SERVICE },
        }))
        .send()
        .await?;
    anyhow::ensure!(response.status() == 201, "announce: {}", response.text().await?);
    let body: Value = response.json().await?;
    let text = |name: &str| body[name].as_str().unwrap_or_default().to_owned();
    Ok((text("submissionId"), text("caseId"), ids))
}

pub async fn upload(app: &TestApp, token: &str, submission: &str, attachment: &str, body: String) -> reqwest::Response {
    app.client
        .put(app.url(&format!("/v1/submissions/{submission}/attachments/{attachment}")))
        .bearer_auth(token)
        .header("content-type", "application/jose")
        .body(body)
        .send()
        .await
        .expect("upload")
}

pub async fn submit(app: &TestApp, token: &str, submission: &str, body: Value) -> reqwest::Response {
    app.client
        .put(app.url(&format!("/v1/submissions/{submission}")))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("submit")
}

pub async fn post_event(app: &TestApp, token: &str, case: &str, set: &str) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/v1/cases/{case}/events")))
        .bearer_auth(token)
        .header("content-type", "application/jose")
        .body(set.to_owned())
        .send()
        .await
        .expect("post event")
}

pub async fn event_log(app: &TestApp, token: &str, case: &str) -> anyhow::Result<Vec<String>> {
    let response = app.client.get(app.url(&format!("/v1/cases/{case}/events"))).bearer_auth(token).send().await?;
    anyhow::ensure!(response.status() == 200, "event log: {}", response.text().await?);
    let body: Value = response.json().await?;
    anyhow::ensure!(body["count"] == body["eventLog"].as_array().map_or(0, Vec::len), "count: {body}");
    Ok(body["eventLog"].as_array().into_iter().flatten().filter_map(|t| t.as_str().map(str::to_owned)).collect())
}

/// One callback as a receiver got it (a Fachverfahren's `new-submissions`, a sender's `new-events`),
/// with whether its signature verified.
#[derive(Debug, Clone)]
pub struct ReceivedCallback {
    pub timestamp: i64,
    pub body: Value,
    pub signed: bool,
}

pub type CallbackLog = std::sync::Arc<std::sync::Mutex<Vec<ReceivedCallback>>>;

/// A callback endpoint at `path` on a loopback port that checks `Callback-Authentication` (hex
/// HMAC-SHA512 over `"{timestamp}.{body}"` under `secret`, with OpenSSL, compared in constant time as
/// receivers must), answers 503 to the first `fail_first` calls and 204 after, and records each.
pub async fn callback_receiver(
    path: &'static str,
    secret: &'static str,
    fail_first: usize,
) -> anyhow::Result<(String, CallbackLog)> {
    use axum::http::{HeaderMap, StatusCode};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://127.0.0.1:{}{path}", listener.local_addr()?.port());
    let received: CallbackLog = Arc::default();
    let log = received.clone();
    let handler = move |headers: HeaderMap, body: axum::body::Bytes| {
        let log = log.clone();
        async move {
            let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
            let timestamp: i64 = header("callback-timestamp").parse().unwrap_or_default();
            let key = PKey::hmac(secret.as_bytes()).expect("hmac key");
            let mut signer = Signer::new(MessageDigest::sha512(), &key).expect("signer");
            signer.update(format!("{timestamp}.").as_bytes()).expect("update");
            signer.update(&body).expect("update");
            let expected = hex::encode(signer.sign_to_vec().expect("sign"));
            let given = header("callback-authentication");
            let signed = given.len() == expected.len() && openssl::memcmp::eq(expected.as_bytes(), given.as_bytes());
            let body = serde_json::from_slice(&body).unwrap_or_default();
            let mut log = log.lock().expect("log");
            log.push(ReceivedCallback { timestamp, body, signed });
            if log.len() <= fail_first {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::NO_CONTENT
            }
        }
    };
    let router = axum::Router::new().route(path, axum::routing::post(handler));
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok((url, received))
}

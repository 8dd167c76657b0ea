//! pforte as relying party of an upstream account provider, against a mock OpenID Provider
//! (`upstream/mock_op.rs`). No database: these run as plain trials.

pub mod mock_op;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pforte::clock::ManualClock;
use pforte::config::RegistrySettings;
use pforte::identity::upstream::{
    CallbackParams, PendingUpstream, UpstreamError, UpstreamIdentity, UpstreamRequest, Upstreams,
    DEFAULT_UPSTREAM_TIMEOUT,
};
use pforte::registry::{IdentityProvider, Level, Registry};
use serde_json::json;

use self::mock_op::{Discovery, ExpectedAuth, Key, MockOp, TokenFault, Userinfo, CLIENT_SECRET, SUBJECT};
use crate::helpers::TestResult;

const PUBLIC_URL: &str = "http://127.0.0.1:8080";

/// The mock provider's registry entry; `{issuer}` and `{client_auth}` are filled in.
pub const MOCK_IDP: &str = r#"
kind = "oidc"
display_name = "Mock account"
account_type = "person"
issuer = "{issuer}"
client_id = "pforte"
scopes = ["openid", "profile", "email"]

[client_auth]
{client_auth}

[claims]
given_name = "given_name"
family_name = "family_name"
birthdate = "birthdate"
email = "email"
postbox_reference = "postbox"

[levels]
STORK-QAA-Level-1 = "low"
STORK-QAA-Level-3 = "substantial"
STORK-QAA-Level-4 = "high"

[acr_values]
substantial = "STORK-QAA-Level-3"
high = "STORK-QAA-Level-4"
"#;

/// A second provider, never reachable (nothing listens on port 1), that offers only level low.
const OTHER_IDP: &str = r#"
kind = "oidc"
display_name = "Other account"
account_type = "person"
issuer = "http://127.0.0.1:1/other"
client_id = "pforte"
scopes = ["openid"]

[client_auth]
method = "client_secret_basic"
secret = "plain:other-secret"

[levels]
L1 = "low"
"#;

pub const BASIC_AUTH: &str = "method = \"client_secret_basic\"\nsecret = \"plain:mock-secret-of-at-least-32-bytes\"";

struct Fixture {
    op: MockOp,
    clock: ManualClock,
    registry: Registry,
    upstreams: Upstreams,
    _dir: tempfile::TempDir,
}

async fn fixture() -> anyhow::Result<Fixture> {
    fixture_with(BASIC_AUTH, ExpectedAuth::Basic, DEFAULT_UPSTREAM_TIMEOUT).await
}

/// A mock provider and a registry naming it, loaded the way pforte loads its registry.
async fn fixture_with(client_auth: &str, expected: ExpectedAuth, timeout: Duration) -> anyhow::Result<Fixture> {
    let clock = ManualClock::at_millis(chrono::Utc::now().timestamp_millis());
    let op = MockOp::start(clock.clone()).await?;
    op.set(|op| op.behaviour.client_auth = expected);
    let dir = tempfile::tempdir()?;
    let identity = dir.path().join("providers/identity");
    std::fs::create_dir_all(&identity)?;
    std::fs::create_dir_all(dir.path().join("clients"))?;
    std::fs::create_dir_all(dir.path().join("tenants"))?;
    let entry = MOCK_IDP.replace("{issuer}", &op.issuer).replace("{client_auth}", client_auth);
    std::fs::write(identity.join("mock.toml"), entry)?;
    std::fs::write(identity.join("other.toml"), OTHER_IDP)?;
    let settings = RegistrySettings {
        providers: dir.path().join("providers"),
        clients: dir.path().join("clients"),
        tenants: dir.path().join("tenants"),
    };
    let public_url = url::Url::parse(PUBLIC_URL)?;
    let registry = Registry::load(&settings, &public_url, true).map_err(|p| anyhow::anyhow!("{p}"))?;
    let http = pforte::http_client::outbound_client()?;
    let upstreams = Upstreams::new(
        http,
        Arc::new(clock.clone()),
        &pforte::http::oidc::upstream_callback_base(&public_url),
        timeout,
    );
    Ok(Fixture { op, clock, registry, upstreams, _dir: dir })
}

impl Fixture {
    fn idp(&self) -> &IdentityProvider {
        self.registry.identity_provider("mock").expect("the mock provider is registered")
    }

    fn other(&self) -> &IdentityProvider {
        self.registry.identity_provider("other").expect("the other provider is registered")
    }

    async fn begin(&self, required: Level) -> UpstreamRequest {
        self.upstreams.begin(self.idp(), required).await.expect("begin")
    }

    async fn complete(
        &self,
        pending: &PendingUpstream,
        callback: &CallbackParams,
    ) -> Result<UpstreamIdentity, UpstreamError> {
        self.upstreams.complete(self.idp(), pending, callback).await
    }

    /// A whole login at level substantial: begin, the mock's authorization, complete.
    async fn login(&self) -> Result<UpstreamIdentity, UpstreamError> {
        let request = self.begin(Level::Substantial).await;
        let callback = self.op.authorize(&request.authorization_url);
        self.complete(&request.pending, &callback).await
    }

    /// A login that must fail: returns the error, and checks that it carries nothing of the flow's
    /// secrets or of the person.
    async fn failed_login(&self) -> UpstreamError {
        let request = self.begin(Level::Substantial).await;
        let callback = self.op.authorize(&request.authorization_url);
        let error = self.complete(&request.pending, &callback).await.expect_err("the login must fail");
        let text = format!("{error} {error:?}");
        let code = callback.code.unwrap_or_default();
        for secret in [&code, &request.pending.nonce, &request.pending.pkce_verifier, &request.pending.state] {
            assert!(!text.contains(secret.as_str()), "the error shows a secret of the flow: {text}");
        }
        for personal in ["Erika", "Mustermann", "1964", SUBJECT, "eyJ"] {
            assert!(!text.contains(personal), "the error shows {personal}: {text}");
        }
        error
    }
}

fn query(url: &url::Url) -> HashMap<String, String> {
    url.query_pairs().into_owned().collect()
}

fn assert_invalid(error: UpstreamError, reason_part: &str) {
    match error {
        UpstreamError::InvalidResponse(reason) => assert!(reason.contains(reason_part), "{reason}"),
        other => panic!("expected InvalidResponse ({reason_part}), got {other:?}"),
    }
}

pub async fn authorization_request_carries_state_nonce_pkce_s256_acr_values_and_the_provider_callback() -> TestResult {
    let f = fixture().await?;
    let request = f.begin(Level::Substantial).await;
    let url = &request.authorization_url;
    assert!(url.as_str().starts_with(&format!("{}/authorize?", f.op.issuer)), "{url}");
    let q = query(url);
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], "pforte");
    assert_eq!(q["redirect_uri"], format!("{PUBLIC_URL}/callback/mock"));
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["acr_values"], "STORK-QAA-Level-3");
    assert_eq!(q["scope"], "openid profile email");
    assert_eq!(q["state"], request.pending.state);
    assert_eq!(q["nonce"], request.pending.nonce);
    for value in [&q["state"], &q["nonce"], &q["code_challenge"]] {
        assert!(value.len() >= 22, "too short to be unguessable: {value}");
    }
    assert_ne!(q["code_challenge"], request.pending.pkce_verifier, "the verifier itself never leaves pforte");
    assert_eq!(request.pending.provider_id, "mock");
    assert_eq!(request.pending.expected_issuer, f.op.issuer);
    assert_eq!(request.pending.redirect_uri, q["redirect_uri"]);

    let again = f.begin(Level::Substantial).await;
    assert_ne!(again.pending.state, request.pending.state);
    assert_ne!(again.pending.nonce, request.pending.nonce);
    assert_ne!(again.pending.pkce_verifier, request.pending.pkce_verifier);
    Ok(())
}
plain_test!(authorization_request_carries_state_nonce_pkce_s256_acr_values_and_the_provider_callback);

pub async fn acr_values_ask_for_the_lowest_mapped_level_at_or_above_the_required_one() -> TestResult {
    let f = fixture().await?;
    // The mock entry has no acr value for low, so a low login asks for substantial.
    for (required, acr) in [
        (Level::Low, "STORK-QAA-Level-3"),
        (Level::Substantial, "STORK-QAA-Level-3"),
        (Level::High, "STORK-QAA-Level-4"),
    ] {
        let request = f.begin(required).await;
        assert_eq!(query(&request.authorization_url)["acr_values"], acr, "for {required}");
    }
    let refused = f.upstreams.begin(f.other(), Level::Substantial).await;
    assert!(matches!(refused, Err(UpstreamError::LevelNotOffered(Level::Substantial))), "{refused:?}");
    Ok(())
}
plain_test!(acr_values_ask_for_the_lowest_mapped_level_at_or_above_the_required_one);

pub async fn login_yields_subject_level_and_only_the_mapped_claims() -> TestResult {
    let f = fixture().await?;
    let identity = f.login().await?;
    assert_eq!(identity.provider_id, "mock");
    assert_eq!(identity.subject, SUBJECT);
    assert_eq!(identity.level, Level::Substantial);
    assert_eq!(identity.acr, "STORK-QAA-Level-3");
    assert_eq!(identity.amr, vec!["eid".to_owned()]);
    assert!(identity.auth_time.is_some());
    let expected = json!({
        // The signed ID token wins over userinfo; userinfo fills in what the ID token lacks.
        "given_name": "Erika",
        "family_name": "Mustermann",
        "birthdate": "1964-08-12",
        "postbox": "postbox-0815",
        "email": "erika@example.org",
    });
    assert_eq!(serde_json::Value::Object(identity.claims.clone()), expected);
    let form = f.op.last_token_form();
    assert_eq!(form["grant_type"], "authorization_code");
    assert!(form.contains_key("code_verifier"), "PKCE verifier sent");
    assert_eq!(f.op.hits().userinfo, 1);
    let debug = format!("{identity:?}");
    assert!(!debug.contains("Erika") && !debug.contains(SUBJECT), "Debug shows personal data: {debug}");
    Ok(())
}
plain_test!(login_yields_subject_level_and_only_the_mapped_claims);

pub async fn login_without_userinfo_endpoint_uses_the_id_token_alone() -> TestResult {
    let f = fixture().await?;
    f.op.set(|op| op.behaviour.userinfo = Userinfo::Absent);
    let identity = f.login().await?;
    assert_eq!(identity.claims.get("given_name"), Some(&json!("Erika")));
    assert!(!identity.claims.contains_key("email"));
    assert_eq!(f.op.hits().userinfo, 0);
    Ok(())
}
plain_test!(login_without_userinfo_endpoint_uses_the_id_token_alone);

pub async fn code_is_redeemed_with_client_secret_post() -> TestResult {
    let auth = "method = \"client_secret_post\"\nsecret = \"plain:mock-secret-of-at-least-32-bytes\"";
    let f = fixture_with(auth, ExpectedAuth::Post, DEFAULT_UPSTREAM_TIMEOUT).await?;
    f.login().await?;
    Ok(())
}
plain_test!(code_is_redeemed_with_client_secret_post);

pub async fn code_is_redeemed_with_a_private_key_jwt_from_a_jwk() -> TestResult {
    let key = Key::generate("pforte-client-key");
    let jwk = serde_json::to_string(key.private.as_ref())?;
    let auth = format!("method = \"private_key_jwt\"\nprivate_key = 'plain:{jwk}'");
    let f = fixture_with(&auth, ExpectedAuth::PrivateKeyJwt(key.public.clone()), DEFAULT_UPSTREAM_TIMEOUT).await?;
    f.login().await?;
    let form = f.op.last_token_form();
    assert!(!form.contains_key("client_secret"));
    let header = form["client_assertion"].split('.').next().unwrap_or_default().to_owned();
    let header: serde_json::Value = serde_json::from_slice(&base64_url(&header))?;
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["kid"], "pforte-client-key");
    Ok(())
}
plain_test!(code_is_redeemed_with_a_private_key_jwt_from_a_jwk);

pub async fn code_is_redeemed_with_a_private_key_jwt_from_a_pem_key() -> TestResult {
    let key = Key::generate("unused");
    let auth = format!("method = \"private_key_jwt\"\nprivate_key = '''plain:{}'''", key.private_pem.trim());
    let f = fixture_with(&auth, ExpectedAuth::PrivateKeyJwt(key.public.clone()), DEFAULT_UPSTREAM_TIMEOUT).await?;
    f.login().await?;
    // A second login signs a fresh assertion: a new jti each time.
    let first = f.op.last_token_form()["client_assertion"].clone();
    f.login().await?;
    assert_ne!(first, f.op.last_token_form()["client_assertion"]);
    Ok(())
}
plain_test!(code_is_redeemed_with_a_private_key_jwt_from_a_pem_key);

pub async fn wrong_pkce_verifier_is_refused_by_the_provider() -> TestResult {
    let f = fixture().await?;
    let request = f.begin(Level::Substantial).await;
    let callback = f.op.authorize(&request.authorization_url);
    let mut pending = request.pending.clone();
    pending.pkce_verifier = "x".repeat(43);
    assert_invalid(f.complete(&pending, &callback).await.expect_err("refused"), "invalid_grant");
    Ok(())
}
plain_test!(wrong_pkce_verifier_is_refused_by_the_provider);

pub async fn id_token_signed_with_another_key_is_refused() -> TestResult {
    let f = fixture().await?;
    f.op.set(|op| op.behaviour.token = TokenFault::OtherKey);
    assert_invalid(f.failed_login().await, "signature");
    Ok(())
}
plain_test!(id_token_signed_with_another_key_is_refused);

pub async fn id_token_from_another_issuer_is_refused() -> TestResult {
    let f = fixture().await?;
    f.op.set(|op| op.behaviour.token = TokenFault::WrongIssuer);
    assert_invalid(f.failed_login().await, "issuer");
    Ok(())
}
plain_test!(id_token_from_another_issuer_is_refused);

pub async fn id_token_for_another_audience_is_refused() -> TestResult {
    let f = fixture().await?;
    f.op.set(|op| op.behaviour.token = TokenFault::WrongAudience);
    assert_invalid(f.failed_login().await, "aud");
    Ok(())
}
plain_test!(id_token_for_another_audience_is_refused);

pub async fn id_token_authorized_for_another_party_is_refused() -> TestResult {
    let f = fixture().await?;
    f.op.set(|op| op.behaviour.token = TokenFault::ForeignAzp);
    assert_invalid(f.failed_login().await, "azp");
    Ok(())
}
plain_test!(id_token_authorized_for_another_party_is_refused);

pub async fn id_token_with_another_nonce_is_refused() -> TestResult {
    let f = fixture().await?;
    f.op.set(|op| op.behaviour.token = TokenFault::WrongNonce);
    assert_invalid(f.failed_login().await, "nonce");
    Ok(())
}
plain_test!(id_token_with_another_nonce_is_refused);

pub async fn expired_id_token_is_refused() -> TestResult {
    let f = fixture().await?;
    f.op.set(|op| op.behaviour.token_lifetime_secs = -300);
    assert_invalid(f.failed_login().await, "expired");
    Ok(())
}
plain_test!(expired_id_token_is_refused);

pub async fn id_token_expired_by_less_than_the_clock_skew_is_accepted() -> TestResult {
    let f = fixture().await?;
    // The provider's clock may run a little behind pforte's.
    f.op.set(|op| op.behaviour.token_lifetime_secs = -10);
    f.login().await?;
    Ok(())
}
plain_test!(id_token_expired_by_less_than_the_clock_skew_is_accepted);

pub async fn unsigned_id_token_with_alg_none_is_refused() -> TestResult {
    let f = fixture().await?;
    f.op.set(|op| op.behaviour.token = TokenFault::Unsigned);
    assert_invalid(f.failed_login().await, "algorithm");
    Ok(())
}
plain_test!(unsigned_id_token_with_alg_none_is_refused);

pub async fn hs256_id_token_keyed_with_the_public_key_is_refused() -> TestResult {
    let f = fixture().await?;
    f.op.set(|op| op.behaviour.token = TokenFault::Hs256WithPublicKey);
    assert_invalid(f.failed_login().await, "algorithm");
    Ok(())
}
plain_test!(hs256_id_token_keyed_with_the_public_key_is_refused);

pub async fn hs256_id_token_keyed_with_the_client_secret_is_refused() -> TestResult {
    let f = fixture().await?;
    f.op.set(|op| op.behaviour.token = TokenFault::Hs256WithClientSecret);
    let error = f.failed_login().await;
    assert!(!format!("{error:?}").contains(CLIENT_SECRET));
    assert_invalid(error, "algorithm");
    Ok(())
}
plain_test!(hs256_id_token_keyed_with_the_client_secret_is_refused);

pub async fn id_token_without_subject_is_refused() -> TestResult {
    let f = fixture().await?;
    f.op.set(|op| op.behaviour.token = TokenFault::MissingSubject);
    assert_invalid(f.failed_login().await, "token response");
    Ok(())
}
plain_test!(id_token_without_subject_is_refused);

pub async fn rotated_key_is_fetched_once_and_the_login_succeeds() -> TestResult {
    let f = fixture().await?;
    let request = f.begin(Level::Substantial).await;
    assert_eq!(f.op.hits().jwks, 1);
    let rotated = Key::generate("key-2");
    f.op.set(|op| {
        op.published.push(rotated.clone());
        op.signing = rotated;
    });
    let callback = f.op.authorize(&request.authorization_url);
    let identity = f.complete(&request.pending, &callback).await?;
    assert_eq!(identity.subject, SUBJECT);
    assert_eq!(f.op.hits().jwks, 2, "exactly one refetch");
    // The new key is cached now: the next login needs no refetch.
    f.login().await?;
    assert_eq!(f.op.hits().jwks, 2);
    Ok(())
}
plain_test!(rotated_key_is_fetched_once_and_the_login_succeeds);

pub async fn key_never_published_is_refused_and_refetched_at_most_once_a_minute() -> TestResult {
    let f = fixture().await?;
    f.begin(Level::Substantial).await;
    f.op.set(|op| op.signing = Key::generate("key-unpublished"));
    assert_invalid(f.failed_login().await, "does not publish");
    assert_eq!(f.op.hits().jwks, 2, "one refetch");
    assert_invalid(f.failed_login().await, "does not publish");
    assert_eq!(f.op.hits().jwks, 2, "no refetch within the cooldown");
    f.clock.advance_secs(61);
    assert_invalid(f.failed_login().await, "does not publish");
    assert_eq!(f.op.hits().jwks, 3, "one refetch after the cooldown");
    Ok(())
}
plain_test!(key_never_published_is_refused_and_refetched_at_most_once_a_minute);

pub async fn token_endpoint_failing_with_500_makes_the_provider_unavailable() -> TestResult {
    let f = fixture().await?;
    f.op.set(|op| op.behaviour.token = TokenFault::Status500);
    let error = f.failed_login().await;
    assert!(matches!(&error, UpstreamError::Unavailable(reason) if reason.contains("500")), "{error:?}");
    Ok(())
}
plain_test!(token_endpoint_failing_with_500_makes_the_provider_unavailable);

pub async fn hanging_token_endpoint_fails_as_unavailable_within_the_timeout() -> TestResult {
    let f = fixture_with(BASIC_AUTH, ExpectedAuth::Basic, Duration::from_secs(1)).await?;
    f.op.set(|op| op.behaviour.token = TokenFault::Hang);
    let started = Instant::now();
    let error = f.failed_login().await;
    assert!(matches!(error, UpstreamError::Unavailable(_)), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    assert_eq!(f.op.hits().token, 1);
    Ok(())
}
plain_test!(hanging_token_endpoint_fails_as_unavailable_within_the_timeout);

pub async fn unreachable_provider_is_unavailable() -> TestResult {
    let f = fixture().await?;
    let error = f.upstreams.begin(f.other(), Level::Low).await.expect_err("nothing listens there");
    assert!(matches!(error, UpstreamError::Unavailable(_)), "{error:?}");
    Ok(())
}
plain_test!(unreachable_provider_is_unavailable);

pub async fn discovery_naming_another_issuer_is_refused() -> TestResult {
    let f = fixture().await?;
    f.op.set(|op| op.behaviour.discovery = Discovery::OtherIssuer);
    let error = f.upstreams.begin(f.idp(), Level::Substantial).await.expect_err("refused");
    assert_invalid(error, "issuer");
    assert_eq!(f.op.hits().jwks, 0, "keys of an impostor are not even fetched");
    Ok(())
}
plain_test!(discovery_naming_another_issuer_is_refused);

pub async fn garbage_discovery_document_makes_the_provider_unavailable() -> TestResult {
    let f = fixture().await?;
    f.op.set(|op| op.behaviour.discovery = Discovery::Garbage);
    let error = f.upstreams.begin(f.idp(), Level::Substantial).await.expect_err("refused");
    assert!(matches!(error, UpstreamError::Unavailable(_)), "{error:?}");
    Ok(())
}
plain_test!(garbage_discovery_document_makes_the_provider_unavailable);

pub async fn discovery_is_cached_until_the_refresh_interval_passes() -> TestResult {
    let f = fixture().await?;
    f.login().await?;
    f.login().await?;
    assert_eq!((f.op.hits().discovery, f.op.hits().jwks), (1, 1));
    f.clock.advance_secs(3601);
    f.login().await?;
    assert_eq!((f.op.hits().discovery, f.op.hits().jwks), (2, 2));
    Ok(())
}
plain_test!(discovery_is_cached_until_the_refresh_interval_passes);

pub async fn a_provider_forgotten_by_a_reload_is_discovered_anew_at_the_next_login() -> TestResult {
    let f = fixture().await?;
    f.login().await?;
    f.upstreams.forget("other");
    f.login().await?;
    assert_eq!((f.op.hits().discovery, f.op.hits().jwks), (1, 1), "another provider's change keeps this cache");
    f.upstreams.forget(f.idp().id.as_str());
    f.login().await?;
    assert_eq!((f.op.hits().discovery, f.op.hits().jwks), (2, 2));
    Ok(())
}
plain_test!(a_provider_forgotten_by_a_reload_is_discovered_anew_at_the_next_login);

pub async fn userinfo_about_another_subject_is_refused() -> TestResult {
    let f = fixture().await?;
    f.op.set(|op| op.behaviour.userinfo = Userinfo::OtherSubject);
    assert_invalid(f.failed_login().await, "another subject");
    Ok(())
}
plain_test!(userinfo_about_another_subject_is_refused);

pub async fn unmapped_acr_is_an_unknown_level() -> TestResult {
    let f = fixture().await?;
    f.op.set(|op| op.behaviour.acr = "urn:example:mfa".into());
    let error = f.failed_login().await;
    assert!(matches!(&error, UpstreamError::UnknownLevel(acr) if acr == "urn:example:mfa"), "{error:?}");
    Ok(())
}
plain_test!(unmapped_acr_is_an_unknown_level);

pub async fn login_below_the_required_level_is_refused() -> TestResult {
    let f = fixture().await?;
    let request = f.begin(Level::High).await;
    let callback = f.op.authorize(&request.authorization_url);
    // The provider ignores acr_values and logs in at substantial.
    let error = f.complete(&request.pending, &callback).await.expect_err("refused");
    assert!(
        matches!(error, UpstreamError::LevelTooLow { required: Level::High, proven: Level::Substantial }),
        "{error:?}"
    );
    Ok(())
}
plain_test!(login_below_the_required_level_is_refused);

pub async fn response_with_another_state_is_refused() -> TestResult {
    let f = fixture().await?;
    let request = f.begin(Level::Substantial).await;
    let mut callback = f.op.authorize(&request.authorization_url);
    callback.state = Some(f.begin(Level::Substantial).await.pending.state);
    let error = f.complete(&request.pending, &callback).await.expect_err("refused");
    assert!(matches!(error, UpstreamError::StateMismatch), "{error:?}");
    callback.state = None;
    let error = f.complete(&request.pending, &callback).await.expect_err("refused");
    assert!(matches!(error, UpstreamError::StateMismatch), "{error:?}");
    assert_eq!(f.op.hits().token, 0, "no code is redeemed for a forged response");
    Ok(())
}
plain_test!(response_with_another_state_is_refused);

pub async fn iss_parameter_of_another_issuer_is_refused_as_a_mix_up() -> TestResult {
    let f = fixture().await?;
    let request = f.begin(Level::Substantial).await;
    let mut callback = f.op.authorize(&request.authorization_url);
    callback.iss = Some(f.other().oidc().map(|oidc| oidc.issuer.to_string()).unwrap_or_default());
    let error = f.complete(&request.pending, &callback).await.expect_err("refused");
    assert!(matches!(error, UpstreamError::IssuerMismatch), "{error:?}");
    assert_eq!(f.op.hits().token, 0);
    Ok(())
}
plain_test!(iss_parameter_of_another_issuer_is_refused_as_a_mix_up);

pub async fn missing_iss_parameter_is_refused_when_the_provider_announces_it() -> TestResult {
    let f = fixture().await?;
    f.op.set(|op| op.behaviour.iss_parameter_supported = true);
    let request = f.begin(Level::Substantial).await;
    let mut callback = f.op.authorize(&request.authorization_url);
    callback.iss = None;
    let error = f.complete(&request.pending, &callback).await.expect_err("refused");
    assert!(matches!(error, UpstreamError::IssuerMismatch), "{error:?}");
    let callback = f.op.authorize(&request.authorization_url);
    f.complete(&request.pending, &callback).await?;
    Ok(())
}
plain_test!(missing_iss_parameter_is_refused_when_the_provider_announces_it);

pub async fn missing_iss_parameter_is_accepted_when_the_provider_does_not_announce_it() -> TestResult {
    let f = fixture().await?;
    let request = f.begin(Level::Substantial).await;
    let mut callback = f.op.authorize(&request.authorization_url);
    callback.iss = None;
    f.complete(&request.pending, &callback).await?;
    Ok(())
}
plain_test!(missing_iss_parameter_is_accepted_when_the_provider_does_not_announce_it);

pub async fn response_at_another_providers_callback_is_refused() -> TestResult {
    let f = fixture().await?;
    let request = f.begin(Level::Substantial).await;
    let callback = f.op.authorize(&request.authorization_url);
    // The flow was sent to `mock`, the response arrives at /callback/other.
    let error = f.upstreams.complete(f.other(), &request.pending, &callback).await.expect_err("refused");
    assert!(matches!(error, UpstreamError::IssuerMismatch), "{error:?}");
    assert_eq!(f.op.hits().token, 0);
    Ok(())
}
plain_test!(response_at_another_providers_callback_is_refused);

pub async fn upstream_access_denied_is_reported_as_denied() -> TestResult {
    let f = fixture().await?;
    let request = f.begin(Level::Substantial).await;
    let callback = CallbackParams {
        state: Some(request.pending.state.clone()),
        iss: Some(f.op.issuer.clone()),
        error: Some("access_denied".into()),
        error_description: Some("Der Vorgang wurde abgebrochen.".into()),
        ..CallbackParams::default()
    };
    let error = f.complete(&request.pending, &callback).await.expect_err("denied");
    match error {
        UpstreamError::Denied { error, description } => {
            assert_eq!(error, "access_denied");
            assert_eq!(description.as_deref(), Some("Der Vorgang wurde abgebrochen."));
        }
        other => panic!("expected Denied, got {other:?}"),
    }
    // An error response with a forged state is a forgery, not a cancellation.
    let forged = CallbackParams { state: Some("forged".into()), ..callback };
    let error = f.complete(&request.pending, &forged).await.expect_err("refused");
    assert!(matches!(error, UpstreamError::StateMismatch), "{error:?}");
    Ok(())
}
plain_test!(upstream_access_denied_is_reported_as_denied);

pub async fn pending_login_survives_a_round_trip_and_never_shows_its_secrets() -> TestResult {
    let f = fixture().await?;
    let request = f.begin(Level::High).await;
    let stored = serde_json::to_string(&request.pending)?;
    let pending: PendingUpstream = serde_json::from_str(&stored)?;
    assert_eq!(pending.required_level, Level::High);
    assert_eq!(pending.pkce_verifier, request.pending.pkce_verifier);
    let debug = format!("{pending:?} {:?}", f.op.authorize(&request.authorization_url));
    for secret in [&pending.state, &pending.nonce, &pending.pkce_verifier] {
        assert!(!debug.contains(secret.as_str()), "Debug shows a secret: {debug}");
    }
    Ok(())
}
plain_test!(pending_login_survives_a_round_trip_and_never_shows_its_secrets);

pub async fn complete_can_run_on_a_spawned_task() -> TestResult {
    let f = Arc::new(fixture().await?);
    let request = f.begin(Level::Substantial).await;
    let callback = f.op.authorize(&request.authorization_url);
    let task = Arc::clone(&f);
    let identity =
        tokio::spawn(async move { task.upstreams.complete(task.idp(), &request.pending, &callback).await }).await??;
    assert_eq!(identity.level, Level::Substantial);
    Ok(())
}
plain_test!(complete_can_run_on_a_spawned_task);

fn base64_url(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text).unwrap_or_default()
}

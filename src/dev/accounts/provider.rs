//! The OpenID Provider behind each account simulator: its signing key, the requests, codes and access
//! tokens it holds in memory, and the rules of RFC 6749, RFC 7636 and OpenID Connect Core it enforces.
//! No HTTP here; `mod.rs` adapts it.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use josekit::jwk::Jwk;
use josekit::jws::alg::ecdsa::EcdsaJwsSigner;
use josekit::jws::{JwsHeader, ES256};
use josekit::jwt::JwtPayload;
use rand::RngCore;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::personas::{LevelOption, Persona};
use super::SimKind;
use crate::crypto::secret::constant_time_eq;
use crate::registry::{OidcUpstream, UpstreamClientAuth};
use secrecy::SecretString;

/// How long the login page may stay open before its request is forgotten.
const PENDING_SECS: i64 = 600;
/// Authorization codes are short-lived (RFC 6749 section 4.1.2 recommends at most 10 minutes).
const CODE_SECS: i64 = 60;
/// Lifetime of ID tokens and access tokens.
pub(super) const TOKEN_SECS: i64 = 300;
/// How long a redeemed code is remembered, so a replay can revoke what it bought.
const SPENT_SECS: i64 = 600;

/// Request or form parameters; a parameter sent without a value counts as absent (RFC 6749 section 3.1).
#[derive(Debug, Default)]
pub(super) struct Params(HashMap<String, String>);

impl Params {
    /// Parses `application/x-www-form-urlencoded`; a repeated parameter is an error (RFC 6749 section 3.1).
    pub(super) fn parse(raw: &[u8]) -> Result<Params, String> {
        let mut map = HashMap::new();
        for (key, value) in url::form_urlencoded::parse(raw) {
            if map.insert(key.clone().into_owned(), value.into_owned()).is_some() {
                return Err(format!("the parameter {key} is repeated"));
            }
        }
        Ok(Params(map))
    }

    pub(super) fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str).filter(|v| !v.is_empty())
    }
}

/// The registry entry that makes pforte a client of this simulator, as far as the simulator needs it.
pub(super) struct Registration {
    pub client_id: String,
    /// The registered client secret; `None` when the entry uses a method this simulator refuses.
    pub secret: Option<SecretString>,
    /// pforte's upstream callback for this provider, the only redirect URI accepted.
    pub redirect_uri: String,
}

impl Registration {
    /// `redirect_uri` is pforte's callback for `provider`.
    pub(super) fn of(provider: &OidcUpstream, redirect_uri: String) -> Registration {
        let secret = match &provider.client_auth {
            UpstreamClientAuth::ClientSecretBasic { secret } | UpstreamClientAuth::ClientSecretPost { secret } => {
                Some(secret.clone())
            }
            UpstreamClientAuth::PrivateKeyJwt { .. } => None,
        };
        Registration { client_id: provider.client_id.clone(), secret, redirect_uri }
    }
}

/// A validated authorization request.
#[derive(Debug, Clone)]
pub(super) struct AuthorizeRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub state: String,
    pub nonce: String,
    pub code_challenge: String,
    pub scope: String,
    pub acr_values: Vec<String>,
}

pub(super) enum AuthorizeError {
    /// The client or redirect URI cannot be trusted: say so on a page, never redirect (RFC 6749 4.1.2.1).
    Page(&'static str),
    /// Everything else goes back to the client.
    Redirect { redirect_uri: String, state: Option<String>, error: &'static str, description: &'static str },
}

/// An OAuth error of the token or userinfo endpoint.
#[derive(Debug)]
pub(super) struct OAuthError {
    pub error: &'static str,
    pub description: &'static str,
}

fn oauth(error: &'static str, description: &'static str) -> OAuthError {
    OAuthError { error, description }
}

/// How the caller of the token endpoint authenticated.
pub(super) struct ClientCredentials {
    /// From `Authorization: Basic`, already decoded.
    pub basic: Option<(String, String)>,
    pub post: Option<(String, String)>,
}

struct Expiring<T> {
    value: T,
    expires_at: i64,
}

struct Grant {
    request: AuthorizeRequest,
    persona: &'static Persona,
    level: &'static LevelOption,
    auth_time: i64,
}

#[derive(Default)]
struct Store {
    pending: HashMap<String, Expiring<AuthorizeRequest>>,
    codes: HashMap<String, Expiring<Grant>>,
    /// Access token → persona.
    tokens: HashMap<String, Expiring<&'static Persona>>,
    /// Redeemed code → the access token it bought.
    spent: HashMap<String, Expiring<String>>,
}

impl Store {
    fn prune(&mut self, now: i64) {
        self.pending.retain(|_, e| e.expires_at > now);
        self.codes.retain(|_, e| e.expires_at > now);
        self.tokens.retain(|_, e| e.expires_at > now);
        self.spent.retain(|_, e| e.expires_at > now);
    }
}

/// One simulated OpenID Provider; its key lives as long as the process.
pub(super) struct Simulator {
    pub kind: SimKind,
    kid: String,
    signer: EcdsaJwsSigner,
    public_jwk: Jwk,
    store: Mutex<Store>,
}

impl Simulator {
    pub(super) fn generate(kind: SimKind) -> Result<Simulator, josekit::JoseError> {
        let pair = ES256.generate_key_pair()?;
        let kid = format!("{}-sim-{}", kind.name(), &random_token()[..8]);
        let mut public_jwk = pair.to_jwk_public_key();
        public_jwk.set_key_id(&kid);
        public_jwk.set_algorithm("ES256");
        public_jwk.set_key_use("sig");
        let signer = ES256.signer_from_jwk(&pair.to_jwk_private_key())?;
        Ok(Simulator { kind, kid, signer, public_jwk, store: Mutex::new(Store::default()) })
    }

    pub(super) fn jwks(&self) -> Value {
        json!({ "keys": [Value::Object(self.public_jwk.as_ref().clone())] })
    }

    fn store(&self, now: i64) -> MutexGuard<'_, Store> {
        // A panic elsewhere cannot leave these maps half-updated in a way that matters to a simulator.
        let mut store = self.store.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        store.prune(now);
        store
    }

    /// Keeps a validated request while the tester chooses; returns the id the form carries.
    pub(super) fn hold(&self, request: AuthorizeRequest, now: i64) -> String {
        let id = random_token();
        self.store(now).pending.insert(id.clone(), Expiring { value: request, expires_at: now + PENDING_SECS });
        id
    }

    /// The held request, removed: each login page is decided once.
    pub(super) fn take(&self, id: &str, now: i64) -> Option<AuthorizeRequest> {
        self.store(now).pending.remove(id).map(|e| e.value)
    }

    pub(super) fn issue_code(
        &self,
        request: AuthorizeRequest,
        persona: &'static Persona,
        level: &'static LevelOption,
        now: i64,
    ) -> String {
        let code = random_token();
        let grant = Grant { request, persona, level, auth_time: now };
        self.store(now).codes.insert(code.clone(), Expiring { value: grant, expires_at: now + CODE_SECS });
        code
    }

    /// The token request: client authentication, then the code with its bindings (RFC 6749 4.1.3,
    /// RFC 7636 4.6). Answers the token response body.
    pub(super) fn exchange(
        &self,
        params: &Params,
        credentials: ClientCredentials,
        registration: Option<&Registration>,
        issuer: &str,
        now: i64,
    ) -> Result<Value, OAuthError> {
        let registration = registration.ok_or(oauth("invalid_client", "This client is not registered."))?;
        let client_id = authenticate(credentials, registration)?;
        if params.get("grant_type") != Some("authorization_code") {
            return Err(oauth("unsupported_grant_type", "Only authorization_code is supported."));
        }
        let code = params.get("code").ok_or(oauth("invalid_request", "The code is missing."))?;
        let mut store = self.store(now);
        let Some(grant) = store.codes.remove(code).map(|e| e.value) else {
            // A replayed code revokes the token it bought (RFC 6749 section 4.1.2).
            if let Some(spent) = store.spent.remove(code) {
                store.tokens.remove(&spent.value);
            }
            return Err(oauth("invalid_grant", "The code is unknown, expired or already used."));
        };
        let request = &grant.request;
        if request.client_id != client_id {
            return Err(oauth("invalid_grant", "The code was issued to another client."));
        }
        if params.get("redirect_uri") != Some(request.redirect_uri.as_str()) {
            return Err(oauth("invalid_grant", "The redirect_uri differs from the authorization request."));
        }
        let verifier = params.get("code_verifier").ok_or(oauth("invalid_grant", "The code_verifier is missing."))?;
        if !pkce_matches(verifier, &request.code_challenge) {
            return Err(oauth("invalid_grant", "The code_verifier does not match the code_challenge."));
        }
        let access_token = random_token();
        let id_token = self.id_token(&grant, &access_token, issuer, now)?;
        store.tokens.insert(access_token.clone(), Expiring { value: grant.persona, expires_at: now + TOKEN_SECS });
        store.spent.insert(code.to_owned(), Expiring { value: access_token.clone(), expires_at: now + SPENT_SECS });
        Ok(json!({
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": TOKEN_SECS,
            "id_token": id_token,
            "scope": request.scope,
        }))
    }

    /// The persona behind a valid access token, as the UserInfo response.
    pub(super) fn userinfo(&self, access_token: &str, now: i64) -> Option<Map<String, Value>> {
        let persona = self.store(now).tokens.get(access_token).map(|e| e.value)?;
        let mut claims = persona.claims();
        claims.insert("sub".into(), persona.sub.into());
        Some(claims)
    }

    fn id_token(&self, grant: &Grant, access_token: &str, issuer: &str, now: i64) -> Result<String, OAuthError> {
        let mut claims = grant.persona.claims();
        let digest = Sha256::digest(access_token.as_bytes());
        for (name, value) in [
            ("iss", json!(issuer)),
            ("sub", json!(grant.persona.sub)),
            ("aud", json!(grant.request.client_id)),
            ("exp", json!(now + TOKEN_SECS)),
            ("iat", json!(now)),
            ("auth_time", json!(grant.auth_time)),
            ("nonce", json!(grant.request.nonce)),
            ("acr", json!(grant.level.acr)),
            ("amr", json!(grant.level.amr)),
            ("at_hash", json!(URL_SAFE_NO_PAD.encode(&digest[..16]))),
        ] {
            claims.insert(name.into(), value);
        }
        let failed = |e: josekit::JoseError| {
            tracing::error!(error = %e, simulator = self.kind.name(), "cannot sign the simulator's ID token");
            oauth("server_error", "The ID token could not be signed.")
        };
        let payload = JwtPayload::from_map(claims).map_err(failed)?;
        let mut header = JwsHeader::new();
        header.set_token_type("JWT");
        header.set_key_id(&self.kid);
        josekit::jwt::encode_with_signer(&payload, &header, &self.signer).map_err(failed)
    }
}

/// Checks the authorization request (RFC 6749 4.1.1, RFC 7636 4.3, OpenID Connect Core 3.1.2.2): first
/// the client and redirect URI, which decide whether errors may be redirected at all.
pub(super) fn check_authorize(
    params: Result<Params, String>,
    registration: Option<&Registration>,
) -> Result<AuthorizeRequest, AuthorizeError> {
    let params = params.map_err(|_| AuthorizeError::Page("Ein Parameter der Anfrage ist mehrfach angegeben."))?;
    let registration = registration.ok_or(AuthorizeError::Page("Für diesen Simulator ist kein Client registriert."))?;
    if params.get("client_id") != Some(registration.client_id.as_str()) {
        return Err(AuthorizeError::Page("Die client_id ist unbekannt."));
    }
    let redirect_uri = registration.redirect_uri.clone();
    if params.get("redirect_uri") != Some(redirect_uri.as_str()) {
        return Err(AuthorizeError::Page("Die redirect_uri ist für diesen Client nicht registriert."));
    }
    let state = params.get("state").map(str::to_owned);
    let fail = |error, description| AuthorizeError::Redirect {
        redirect_uri: redirect_uri.clone(),
        state: state.clone(),
        error,
        description,
    };
    if params.get("response_type") != Some("code") {
        return Err(fail("unsupported_response_type", "Only response_type=code is supported."));
    }
    let scope = params.get("scope").unwrap_or_default();
    if !scope.split(' ').any(|s| s == "openid") {
        return Err(fail("invalid_scope", "The scope must contain openid."));
    }
    let Some(state_value) = state.clone() else {
        return Err(fail("invalid_request", "The state parameter is required."));
    };
    let nonce = params.get("nonce").ok_or_else(|| fail("invalid_request", "The nonce parameter is required."))?;
    let code_challenge = params
        .get("code_challenge")
        .ok_or_else(|| fail("invalid_request", "PKCE is required: send a code_challenge."))?;
    if params.get("code_challenge_method") != Some("S256") {
        return Err(fail("invalid_request", "The code_challenge_method must be S256."));
    }
    if code_challenge.len() != 43 || !code_challenge.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b)) {
        return Err(fail("invalid_request", "The code_challenge is not a base64url SHA-256 digest."));
    }
    Ok(AuthorizeRequest {
        client_id: registration.client_id.clone(),
        redirect_uri: redirect_uri.clone(),
        state: state_value,
        nonce: nonce.to_owned(),
        code_challenge: code_challenge.to_owned(),
        scope: scope.to_owned(),
        acr_values: params.get("acr_values").unwrap_or_default().split(' ').map(str::to_owned).collect(),
    })
}

/// client_secret_basic or client_secret_post against the registered secret; exactly one method.
fn authenticate(credentials: ClientCredentials, registration: &Registration) -> Result<String, OAuthError> {
    let (client_id, secret) = match (credentials.basic, credentials.post) {
        (Some(basic), None) => basic,
        (None, Some(post)) => post,
        (Some(_), Some(_)) => return Err(oauth("invalid_request", "Use one client authentication method.")),
        (None, None) => return Err(oauth("invalid_client", "Client authentication is required.")),
    };
    let Some(registered) = &registration.secret else {
        return Err(oauth("invalid_client", "This simulator accepts client secrets only."));
    };
    // Evaluate both comparisons, so the answer time does not tell which one failed.
    let id_ok = client_id == registration.client_id;
    let secret_ok = constant_time_eq(registered, &secret);
    if id_ok && secret_ok {
        Ok(client_id)
    } else {
        Err(oauth("invalid_client", "Client authentication failed."))
    }
}

/// RFC 7636 section 4.6 with S256; the verifier must have the RFC's form (43 to 128 unreserved characters).
fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    well_formed && URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) == challenge
}

/// 256 random bits, base64url: codes, access tokens and request ids.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

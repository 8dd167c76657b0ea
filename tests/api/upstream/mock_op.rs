//! A mock upstream OpenID Provider on a loopback port: discovery, JWKS, token and userinfo, ID tokens
//! signed with an ES256 key, and a behaviour each test can set to make it misbehave in one way.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use josekit::jwk::Jwk;
use josekit::jws::{JwsHeader, ES256, HS256};
use josekit::jwt::{self, JwtPayload};
use pforte::clock::{Clock, ManualClock};
use pforte::identity::upstream::CallbackParams;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

pub const CLIENT_ID: &str = "pforte";
/// Long enough to be an HMAC key (32 bytes), so the HS256 forgery below can be built with it.
pub const CLIENT_SECRET: &str = "mock-secret-of-at-least-32-bytes";
pub const SUBJECT: &str = "pseudonym-4711";

/// An ES256 key pair with its key id.
#[derive(Clone)]
pub struct Key {
    pub kid: String,
    pub private: Jwk,
    pub public: Jwk,
    pub private_pem: String,
}

impl Key {
    pub fn generate(kid: &str) -> Key {
        let pair = ES256.generate_key_pair().unwrap();
        let mut private = pair.to_jwk_private_key();
        let mut public = pair.to_jwk_public_key();
        for jwk in [&mut private, &mut public] {
            jwk.set_key_id(kid);
            jwk.set_algorithm("ES256");
            jwk.set_key_use("sig");
        }
        let private_pem = String::from_utf8(pair.to_pem_private_key()).unwrap();
        Key { kid: kid.to_owned(), private, public, private_pem }
    }
}

/// How the ID token comes out, or how the token endpoint fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenFault {
    None,
    /// Signed by a key other than the one the key id names.
    OtherKey,
    WrongIssuer,
    WrongAudience,
    ForeignAzp,
    WrongNonce,
    /// `alg: none`, no signature.
    Unsigned,
    /// HS256 keyed with the bytes of the published public key.
    Hs256WithPublicKey,
    /// HS256 keyed with the client secret, which the relying party knows.
    Hs256WithClientSecret,
    MissingSubject,
    Status500,
    /// Never answers within any sensible timeout.
    Hang,
    /// A valid answer followed by 2 MiB of JSON whitespace, over pforte's cap on peer bodies.
    Oversized,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Userinfo {
    Absent,
    Matching,
    OtherSubject,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Discovery {
    Normal,
    OtherIssuer,
    Garbage,
}

/// How the token endpoint expects pforte to authenticate.
#[derive(Clone)]
pub enum ExpectedAuth {
    Basic,
    Post,
    PrivateKeyJwt(Jwk),
}

pub struct Behaviour {
    pub token: TokenFault,
    /// `exp` − `iat` of ID tokens; negative for tokens that expired before they were issued.
    pub token_lifetime_secs: i64,
    pub acr: String,
    pub userinfo: Userinfo,
    pub discovery: Discovery,
    pub iss_parameter_supported: bool,
    pub client_auth: ExpectedAuth,
    /// The authorization endpoint discovery names, when it is not `{issuer}/authorize` (a login
    /// page on another origin than the issuer).
    pub authorization_endpoint: Option<String>,
    /// How many seconds before `iat` the person logged in (`auth_time`); `None` leaves the claim out.
    pub auth_time_age_secs: Option<i64>,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            token: TokenFault::None,
            token_lifetime_secs: 300,
            acr: "STORK-QAA-Level-3".into(),
            userinfo: Userinfo::Matching,
            discovery: Discovery::Normal,
            iss_parameter_supported: false,
            client_auth: ExpectedAuth::Basic,
            authorization_endpoint: None,
            auth_time_age_secs: Some(5),
        }
    }
}

/// How often each endpoint was called.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Hits {
    pub discovery: usize,
    pub jwks: usize,
    pub token: usize,
    pub userinfo: usize,
}

struct Grant {
    nonce: String,
    code_challenge: String,
    redirect_uri: String,
}

pub struct Op {
    pub behaviour: Behaviour,
    /// The key ID tokens are signed with.
    pub signing: Key,
    /// The keys the JWKS endpoint publishes.
    pub published: Vec<Key>,
    pub hits: Hits,
    /// The last token request's form, to check what pforte sent.
    pub last_token_form: HashMap<String, String>,
    /// The query of the last authorization request that arrived here, to check what pforte asked for.
    pub last_authorization_query: HashMap<String, String>,
    grants: HashMap<String, Grant>,
    access_tokens: HashMap<String, String>,
}

#[derive(Clone)]
pub struct MockOp {
    pub issuer: String,
    op: Arc<Mutex<Op>>,
    clock: ManualClock,
}

impl MockOp {
    pub async fn start(clock: ManualClock) -> anyhow::Result<MockOp> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let issuer = format!("http://127.0.0.1:{}/op", listener.local_addr()?.port());
        let key = Key::generate("key-1");
        let op = Op {
            behaviour: Behaviour::default(),
            signing: key.clone(),
            published: vec![key],
            hits: Hits::default(),
            last_token_form: HashMap::new(),
            last_authorization_query: HashMap::new(),
            grants: HashMap::new(),
            access_tokens: HashMap::new(),
        };
        let mock = MockOp { issuer, op: Arc::new(Mutex::new(op)), clock };
        let router = Router::new()
            .route("/op/.well-known/openid-configuration", get(discovery))
            .route("/op/jwks", get(jwks))
            .route("/op/token", post(token))
            .route("/op/userinfo", get(userinfo))
            .with_state(mock.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Ok(mock)
    }

    pub fn set(&self, change: impl FnOnce(&mut Op)) {
        change(&mut self.op.lock().unwrap());
    }

    pub fn hits(&self) -> Hits {
        self.op.lock().unwrap().hits
    }

    pub fn last_token_form(&self) -> HashMap<String, String> {
        self.op.lock().unwrap().last_token_form.clone()
    }

    pub fn last_authorization_query(&self) -> HashMap<String, String> {
        self.op.lock().unwrap().last_authorization_query.clone()
    }

    pub fn token_endpoint(&self) -> String {
        format!("{}/token", self.issuer)
    }

    /// What the provider does after the citizen logged in: issue a code for this authorization request
    /// and send the browser back with `code`, `state` and `iss`.
    pub fn authorize(&self, authorization_url: &url::Url) -> CallbackParams {
        let query: HashMap<String, String> = authorization_url.query_pairs().into_owned().collect();
        let code = format!("code-{}", uuid::Uuid::new_v4().simple());
        let grant = Grant {
            nonce: query.get("nonce").cloned().unwrap_or_default(),
            code_challenge: query.get("code_challenge").cloned().unwrap_or_default(),
            redirect_uri: query.get("redirect_uri").cloned().unwrap_or_default(),
        };
        let mut op = self.op.lock().unwrap();
        op.grants.insert(code.clone(), grant);
        op.last_authorization_query = query.clone();
        drop(op);
        CallbackParams {
            code: Some(code),
            state: query.get("state").cloned(),
            iss: Some(self.issuer.clone()),
            error: None,
            error_description: None,
        }
    }

    fn now(&self) -> i64 {
        self.clock.now().timestamp()
    }
}

async fn discovery(State(mock): State<MockOp>) -> Response {
    let mut op = mock.op.lock().unwrap();
    op.hits.discovery += 1;
    let base = &mock.issuer;
    let issuer = match op.behaviour.discovery {
        Discovery::Normal => base.clone(),
        Discovery::OtherIssuer => "http://127.0.0.1:9/impostor".to_owned(),
        Discovery::Garbage => return (StatusCode::OK, "<html>maintenance</html>").into_response(),
    };
    let mut document = json!({
        "issuer": issuer,
        "authorization_endpoint": op.behaviour.authorization_endpoint.clone().unwrap_or_else(|| format!("{base}/authorize")),
        "token_endpoint": format!("{base}/token"),
        "jwks_uri": format!("{base}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["ES256", "PS256"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": op.behaviour.iss_parameter_supported,
    });
    if op.behaviour.userinfo != Userinfo::Absent {
        document["userinfo_endpoint"] = json!(format!("{base}/userinfo"));
    }
    Json(document).into_response()
}

async fn jwks(State(mock): State<MockOp>) -> Json<Value> {
    let mut op = mock.op.lock().unwrap();
    op.hits.jwks += 1;
    let keys: Vec<Value> = op.published.iter().map(|k| Value::Object(k.public.as_ref().clone())).collect();
    Json(json!({ "keys": keys }))
}

fn oauth_error(status: StatusCode, error: &str) -> Response {
    (status, Json(json!({ "error": error }))).into_response()
}

async fn token(State(mock): State<MockOp>, headers: HeaderMap, Form(form): Form<HashMap<String, String>>) -> Response {
    let fault = {
        let mut op = mock.op.lock().unwrap();
        op.hits.token += 1;
        op.last_token_form = form.clone();
        op.behaviour.token
    };
    match fault {
        TokenFault::Hang => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            return oauth_error(StatusCode::BAD_REQUEST, "too_late");
        }
        TokenFault::Status500 => return (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
        _ => {}
    }
    let mut op = mock.op.lock().unwrap();
    if !client_authenticated(&op.behaviour.client_auth, &headers, &form, &mock.token_endpoint(), mock.now()) {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    let Some(grant) = form.get("code").and_then(|code| op.grants.remove(code)) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
    };
    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    if challenge != grant.code_challenge || form.get("redirect_uri") != Some(&grant.redirect_uri) {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
    }
    let id_token = id_token(&op, &mock.issuer, &grant.nonce, mock.now());
    let access_token = format!("at-{}", uuid::Uuid::new_v4().simple());
    op.access_tokens.insert(access_token.clone(), SUBJECT.to_owned());
    let answer =
        json!({ "access_token": access_token, "token_type": "Bearer", "expires_in": 300, "id_token": id_token });
    if op.behaviour.token == TokenFault::Oversized {
        let padded = format!("{answer}{}", " ".repeat(2 * 1024 * 1024));
        return ([(axum::http::header::CONTENT_TYPE, "application/json")], padded).into_response();
    }
    Json(answer).into_response()
}

fn client_authenticated(
    expected: &ExpectedAuth,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
    token_endpoint: &str,
    now: i64,
) -> bool {
    match expected {
        ExpectedAuth::Basic => {
            let credentials = STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"));
            headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) == Some(&format!("Basic {credentials}"))
                && !form.contains_key("client_secret")
        }
        ExpectedAuth::Post => {
            !headers.contains_key(header::AUTHORIZATION)
                && form.get("client_id").map(String::as_str) == Some(CLIENT_ID)
                && form.get("client_secret").map(String::as_str) == Some(CLIENT_SECRET)
        }
        ExpectedAuth::PrivateKeyJwt(public) => {
            if form.get("client_assertion_type").map(String::as_str)
                != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
                || form.contains_key("client_secret")
                || headers.contains_key(header::AUTHORIZATION)
            {
                return false;
            }
            let Some(assertion) = form.get("client_assertion") else { return false };
            let Ok(mut verifier) = ES256.verifier_from_jwk(public) else { return false };
            // A PEM key carries no key id, so the assertion may name none.
            verifier.remove_key_id();
            let Ok((payload, _)) = jwt::decode_with_verifier(assertion, &verifier) else { return false };
            let claim = |name: &str| payload.claim(name).cloned().unwrap_or(Value::Null);
            let (iat, exp) = (claim("iat").as_i64().unwrap_or(0), claim("exp").as_i64().unwrap_or(0));
            claim("iss") == json!(CLIENT_ID)
                && claim("sub") == json!(CLIENT_ID)
                && (claim("aud") == json!(token_endpoint) || claim("aud") == json!([token_endpoint]))
                && claim("jti").as_str().is_some_and(|jti| jti.len() >= 16)
                && exp - iat == 60
                && exp > now
        }
    }
}

fn id_token(op: &Op, issuer: &str, nonce: &str, now: i64) -> String {
    let fault = op.behaviour.token;
    let mut claims = json!({
        "iss": if fault == TokenFault::WrongIssuer { "http://127.0.0.1:9/impostor" } else { issuer },
        "sub": SUBJECT,
        "aud": if fault == TokenFault::WrongAudience { json!("someone-else") } else { json!(CLIENT_ID) },
        "iat": now,
        "exp": now + op.behaviour.token_lifetime_secs,
        "nonce": if fault == TokenFault::WrongNonce { "a-nonce-from-another-login" } else { nonce },
        "acr": op.behaviour.acr,
        "amr": ["eid"],
        "given_name": "Erika",
        "family_name": "Mustermann",
        "birthdate": "1964-08-12",
        "postbox_reference": "postbox-0815",
        "internal_score": 17,
    });
    if let Some(age) = op.behaviour.auth_time_age_secs {
        claims["auth_time"] = json!(now - age);
    }
    if fault == TokenFault::ForeignAzp {
        claims["azp"] = json!("someone-else");
    }
    if fault == TokenFault::MissingSubject {
        if let Some(map) = claims.as_object_mut() {
            map.remove("sub");
        }
    }
    let Value::Object(map) = claims else { unreachable!() };
    sign(op, map)
}

fn sign(op: &Op, claims: Map<String, Value>) -> String {
    let fault = op.behaviour.token;
    let payload = JwtPayload::from_map(claims).unwrap();
    let mut header = JwsHeader::new();
    header.set_token_type("JWT");
    header.set_key_id(&op.signing.kid);
    match fault {
        TokenFault::Unsigned => {
            let header = URL_SAFE_NO_PAD.encode(json!({ "alg": "none", "typ": "JWT" }).to_string());
            let body = URL_SAFE_NO_PAD.encode(payload.to_string());
            format!("{header}.{body}.")
        }
        TokenFault::Hs256WithPublicKey => {
            let public = serde_json::to_vec(op.signing.public.as_ref()).unwrap();
            jwt::encode_with_signer(&payload, &header, &HS256.signer_from_bytes(public).unwrap()).unwrap()
        }
        TokenFault::Hs256WithClientSecret => {
            let signer = HS256.signer_from_bytes(CLIENT_SECRET.as_bytes()).unwrap();
            jwt::encode_with_signer(&payload, &header, &signer).unwrap()
        }
        TokenFault::OtherKey => {
            let forger = Key::generate(&op.signing.kid);
            jwt::encode_with_signer(&payload, &header, &ES256.signer_from_jwk(&forger.private).unwrap()).unwrap()
        }
        _ => jwt::encode_with_signer(&payload, &header, &ES256.signer_from_jwk(&op.signing.private).unwrap()).unwrap(),
    }
}

async fn userinfo(State(mock): State<MockOp>, headers: HeaderMap) -> Response {
    let mut op = mock.op.lock().unwrap();
    op.hits.userinfo += 1;
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let Some(subject) = op.access_tokens.get(token).cloned() else {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_token");
    };
    let subject = if op.behaviour.userinfo == Userinfo::OtherSubject { "someone-else".to_owned() } else { subject };
    Json(json!({
        "sub": subject,
        "given_name": "Userinfo-Erika",
        "email": "erika@example.org",
        "phone_number": "+49 30 123456",
    }))
    .into_response()
}

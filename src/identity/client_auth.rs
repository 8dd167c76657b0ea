//! Authenticating online services at the token, PAR and revocation endpoints: `client_secret_basic`,
//! `client_secret_post` and `private_key_jwt` (RFC 7523), each only for a client registered for it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use josekit::jwk::Jwk;
use josekit::jws::JwsVerifier;
use secrecy::SecretString;
use serde_json::{Map, Value};

use super::oauth::OAuthError;
use crate::clock::SharedClock;
use crate::crypto::secret::constant_time_eq;
use crate::registry::{Client, ClientAuth, ClientKeys, Registry};
use crate::store::Database;

pub(crate) const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Clock skew tolerated on `exp`; `iat`/`nbf` may lie at most this far in the future.
const SKEW_SECS: i64 = 10;
const MAX_FUTURE_SECS: i64 = 60;
/// An assertion is made for one request: its `exp` may lie at most this far ahead. This also bounds
/// how long its `jti` is remembered, and keeps the arithmetic below far from overflow.
const MAX_LIFETIME_SECS: i64 = 3600;
/// How long keys fetched from a client's `jwks_uri` are reused; an unknown kid refetches sooner.
const JWKS_CACHE_MILLIS: i64 = 300_000;
const JWKS_REFETCH_COOLDOWN_MILLIS: i64 = 10_000;

/// A client's key set and when it was fetched (milliseconds).
type FetchedJwks = (i64, Map<String, Value>);

/// What a request offered to prove which client sent it.
#[derive(Debug, Default, Clone)]
pub struct ClientCredentials {
    /// From `Authorization: Basic`, already form-decoded.
    pub basic: Option<(String, SecretString)>,
    pub client_id: Option<String>,
    pub client_secret: Option<SecretString>,
    pub client_assertion_type: Option<String>,
    pub client_assertion: Option<String>,
}

#[derive(Clone)]
pub struct ClientAuthenticator {
    db: Database,
    http: crate::http_client::GuardedClient,
    clock: SharedClock,
    /// Values a client assertion's `aud` may carry: the issuer and the endpoints that take assertions.
    audiences: Vec<String>,
    fetched_jwks: Arc<Mutex<HashMap<String, FetchedJwks>>>,
}

impl ClientAuthenticator {
    /// `audiences` are the values a client assertion's `aud` may carry: the issuer and the URLs of the
    /// endpoints that take assertions (the edge knows them).
    pub fn new(
        db: Database,
        http: crate::http_client::GuardedClient,
        clock: SharedClock,
        audiences: Vec<String>,
    ) -> Self {
        ClientAuthenticator { db, http, clock, audiences, fetched_jwks: Arc::default() }
    }

    pub async fn authenticate<'r>(
        &self,
        registry: &'r Registry,
        credentials: &ClientCredentials,
    ) -> Result<&'r Client, OAuthError> {
        let methods =
            [credentials.basic.is_some(), credentials.client_secret.is_some(), credentials.client_assertion.is_some()];
        if methods.iter().filter(|used| **used).count() > 1 {
            return Err(OAuthError::invalid_request("Use exactly one client authentication method."));
        }
        let unknown = || OAuthError::invalid_client("Client authentication failed.");
        if let Some((id, secret)) = &credentials.basic {
            if credentials.client_id.as_ref().is_some_and(|form_id| form_id != id) {
                return Err(OAuthError::invalid_request("client_id differs from the authenticated client."));
            }
            let client = registry.client(id).ok_or_else(unknown)?;
            return match &client.auth {
                ClientAuth::ClientSecretBasic { secret: expected } if constant_time_eq(expected, expose(secret)) => {
                    Ok(client)
                }
                _ => Err(unknown()),
            };
        }
        if let Some(secret) = &credentials.client_secret {
            let client = registry.client(credentials.client_id.as_deref().unwrap_or_default()).ok_or_else(unknown)?;
            return match &client.auth {
                ClientAuth::ClientSecretPost { secret: expected } if constant_time_eq(expected, expose(secret)) => {
                    Ok(client)
                }
                _ => Err(unknown()),
            };
        }
        if let Some(assertion) = &credentials.client_assertion {
            if credentials.client_assertion_type.as_deref() != Some(ASSERTION_TYPE) {
                return Err(OAuthError::invalid_request(format!("client_assertion_type must be {ASSERTION_TYPE}.")));
            }
            return self.verify_assertion(registry, credentials.client_id.as_deref(), assertion).await;
        }
        Err(OAuthError::invalid_client("The request carries no client authentication."))
    }

    async fn verify_assertion<'r>(
        &self,
        registry: &'r Registry,
        claimed_id: Option<&str>,
        assertion: &str,
    ) -> Result<&'r Client, OAuthError> {
        let refused = |why: &str| OAuthError::invalid_client(format!("The client assertion is not valid: {why}."));
        let header = josekit::jwt::decode_header(assertion).map_err(|_| refused("not a JWT"))?;
        let alg = header.claim("alg").and_then(Value::as_str).unwrap_or_default().to_owned();
        let kid = header.claim("kid").and_then(Value::as_str).map(str::to_owned);
        // The issuer is needed to find the keys; it is trusted only once the signature checks out.
        let unverified = unverified_claims(assertion).ok_or_else(|| refused("unreadable claims"))?;
        let issuer = unverified.get("iss").and_then(Value::as_str).ok_or_else(|| refused("no iss"))?;
        if claimed_id.is_some_and(|id| id != issuer) {
            return Err(refused("client_id differs from iss"));
        }
        let client = registry.client(issuer).ok_or_else(|| refused("unknown client"))?;
        let ClientAuth::PrivateKeyJwt { keys } = &client.auth else {
            return Err(refused("this client is not registered for private_key_jwt"));
        };
        let verifier = self.find_verifier(client.id.as_str(), keys, &alg, kid.as_deref()).await?;
        let verifier = verifier.ok_or_else(|| refused("no registered key matches"))?;
        let (payload, _) =
            josekit::jwt::decode_with_verifier(assertion, verifier.as_ref()).map_err(|_| refused("bad signature"))?;

        let now = self.clock.now().timestamp();
        let text = |name: &str| payload.claim(name).and_then(Value::as_str);
        if text("iss") != Some(client.id.as_str()) || text("sub") != Some(client.id.as_str()) {
            return Err(refused("iss and sub must both be the client_id"));
        }
        let audience_ok = match payload.claim("aud") {
            Some(Value::String(aud)) => self.audiences.contains(aud),
            Some(Value::Array(auds)) => {
                auds.iter().filter_map(Value::as_str).any(|a| self.audiences.iter().any(|x| x == a))
            }
            _ => false,
        };
        if !audience_ok {
            return Err(refused("aud is not pforte"));
        }
        let exp = payload.claim("exp").and_then(Value::as_i64).ok_or_else(|| refused("no exp"))?;
        if exp.saturating_add(SKEW_SECS) < now {
            return Err(refused("expired"));
        }
        if exp > now.saturating_add(MAX_LIFETIME_SECS) {
            return Err(refused("exp lies more than an hour ahead"));
        }
        for name in ["iat", "nbf"] {
            if payload.claim(name).and_then(Value::as_i64).is_some_and(|t| t > now + MAX_FUTURE_SECS) {
                return Err(refused(&format!("{name} lies in the future")));
            }
        }
        let jti = text("jti").filter(|j| !j.is_empty()).ok_or_else(|| refused("no jti"))?;
        // Bounded above by the lifetime check: no overflow.
        let remember_until = (exp + SKEW_SECS).max(now) * 1000;
        let first_use = self.db.record_assertion_jti(client.id.as_str(), jti, remember_until).await?;
        if !first_use {
            return Err(refused("this jti was used before"));
        }
        Ok(client)
    }

    async fn find_verifier(
        &self,
        client_id: &str,
        keys: &ClientKeys,
        alg: &str,
        kid: Option<&str>,
    ) -> Result<Option<Box<dyn JwsVerifier>>, OAuthError> {
        let set = match keys {
            ClientKeys::Jwks(set) => return Ok(pick_verifier(set, alg, kid)),
            ClientKeys::JwksUri(uri) => self.jwks_from(client_id, uri.as_str(), false).await?,
        };
        if let Some(found) = pick_verifier(&set, alg, kid) {
            return Ok(Some(found));
        }
        // The client may have rotated its keys: look once more, unless we just did.
        let set = match keys {
            ClientKeys::JwksUri(uri) => self.jwks_from(client_id, uri.as_str(), true).await?,
            ClientKeys::Jwks(set) => set.clone(),
        };
        Ok(pick_verifier(&set, alg, kid))
    }

    async fn jwks_from(&self, client_id: &str, uri: &str, refresh: bool) -> Result<Map<String, Value>, OAuthError> {
        let now = self.clock.now_millis();
        let cached = self.fetched_jwks.lock().ok().and_then(|c| c.get(client_id).cloned());
        if let Some((at, set)) = &cached {
            let fresh = now - at < JWKS_CACHE_MILLIS;
            if (fresh && !refresh) || now - at < JWKS_REFETCH_COOLDOWN_MILLIS {
                return Ok(set.clone());
            }
        }
        let fetched = async {
            // Only in reach (SECURITY.md #28) and at most 64 KiB (#31).
            let response = self.http.get(uri).ok()?.send().await.ok()?.error_for_status().ok()?;
            let body = crate::http_client::read_capped(response, crate::http_client::MAX_JWKS_BYTES).await.ok()?;
            serde_json::from_slice::<Value>(&body).ok()?.as_object().cloned()
        }
        .await;
        match fetched {
            Some(set) => {
                if let Ok(mut cache) = self.fetched_jwks.lock() {
                    cache.insert(client_id.to_owned(), (now, set.clone()));
                }
                Ok(set)
            }
            None => {
                tracing::warn!(client_id, "could not fetch the client's jwks_uri");
                cached
                    .map(|(_, set)| set)
                    .ok_or_else(|| OAuthError::invalid_client("The client's keys could not be fetched."))
            }
        }
    }
}

/// The steps of `verify_assertion` that read an assertion before its signature is trusted (header,
/// unverified claims, choosing a key from `jwks`, verifying), results dropped: the entry of the
/// `client_assertion` fuzz target (`crate::fuzzing`).
pub(crate) fn read_untrusted(jwks: &str, assertion: &str) {
    let Ok(header) = josekit::jwt::decode_header(assertion) else { return };
    let alg = header.claim("alg").and_then(Value::as_str).unwrap_or_default().to_owned();
    let kid = header.claim("kid").and_then(Value::as_str).map(str::to_owned);
    let _ = unverified_claims(assertion);
    let Ok(Value::Object(set)) = serde_json::from_str::<Value>(jwks) else { return };
    if let Some(verifier) = pick_verifier(&set, &alg, kid.as_deref()) {
        let _ = josekit::jwt::decode_with_verifier(assertion, verifier.as_ref());
    }
}

fn expose(secret: &SecretString) -> &str {
    secrecy::ExposeSecret::expose_secret(secret)
}

fn unverified_claims(jwt: &str) -> Option<Map<String, Value>> {
    use base64::Engine;
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice::<Value>(&bytes).ok()?.as_object().cloned()
}

/// A verifier for the key named by `kid` (or, without a kid, the first key that fits `alg`). Only
/// asymmetric algorithms are accepted; the algorithm must fit the key's type.
fn pick_verifier(set: &Map<String, Value>, alg: &str, kid: Option<&str>) -> Option<Box<dyn JwsVerifier>> {
    let keys = set.get("keys")?.as_array()?;
    keys.iter()
        .filter_map(Value::as_object)
        .filter(|key| kid.is_none() || key.get("kid").and_then(Value::as_str) == kid)
        .find_map(|key| {
            let jwk = Jwk::from_map(key.clone()).ok()?;
            let verifier: Box<dyn JwsVerifier> = match alg {
                "ES256" => Box::new(josekit::jws::ES256.verifier_from_jwk(&jwk).ok()?),
                "ES384" => Box::new(josekit::jws::ES384.verifier_from_jwk(&jwk).ok()?),
                "PS256" => Box::new(josekit::jws::PS256.verifier_from_jwk(&jwk).ok()?),
                "RS256" => Box::new(josekit::jws::RS256.verifier_from_jwk(&jwk).ok()?),
                _ => return None,
            };
            Some(verifier)
        })
}

//! The tokens pforte issues: ID tokens for the online service, JWT access tokens (RFC 9068) for
//! userinfo and the payment API. Access tokens carry the identity encrypted under the master key, so
//! userinfo needs no stored profile; revocation is a list of token ids until they expire.

use std::collections::BTreeSet;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use josekit::jws::JwsHeader;
use josekit::jwt::{self, JwtPayload};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::levels::eidas_uri;
use super::verified::{Verified, VerifiedTokens};
use crate::clock::SharedClock;
use crate::keys::{KeyError, KeyService, MasterKey, SigningAlg};
use crate::registry::{Client, IdTokenAlg, Level};
use crate::store::{Database, StorageError};

pub(crate) const ACCESS_TOKEN_TYPE: &str = "at+jwt";
const ID_TOKEN_TYPE: &str = "JWT";
/// Lifetime of access tokens and ID tokens, in seconds; a login's session may be shorter still.
pub(crate) const TOKEN_LIFETIME_SECS: i64 = 300;

/// Who logged in, as the online service may learn it. Lives sealed in the login transaction until
/// the code is redeemed, then only inside the tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    /// Pairwise subject for the client's sector.
    pub sub: String,
    pub idp: String,
    pub account_type: String,
    pub level: Level,
    /// When the person logged in at the provider (seconds), as its ID token said; `None` when it
    /// said nothing and nothing required it (SECURITY.md #9).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    pub amr: Vec<String>,
    /// The login's session id: the ID token's `sid` (OpenID Connect Front-Channel/Back-Channel
    /// Logout), by which RP-initiated logout finds what the account provider's logout needs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// pforte claims, already reduced to what the client's scopes allow.
    pub claims: Map<String, Value>,
}

/// The pforte claims each scope releases.
pub(crate) fn claims_of_scope(scope: &str) -> &'static [&'static str] {
    match scope {
        "profile" => &["given_name", "family_name", "birth_name", "title"],
        "birth" => &["birthdate", "place_of_birth", "nationality"],
        "email" => &["email"],
        "address" => &["address"],
        "postbox" => &["postbox"],
        "organisation" => &[
            "org_name",
            "org_tax_number",
            "org_vat_id",
            "org_legal_form",
            "org_register_type",
            "org_register_number",
            "org_register_court",
            "org_address",
            "given_name",
            "family_name",
        ],
        _ => &[],
    }
}

/// Keeps only the claims the granted scopes release.
pub(crate) fn minimise(claims: &Map<String, Value>, scopes: &[String]) -> Map<String, Value> {
    let allowed: BTreeSet<&str> = scopes.iter().flat_map(|s| claims_of_scope(s).iter().copied()).collect();
    claims.iter().filter(|(name, _)| allowed.contains(name.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect()
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not valid: {0}")]
    Invalid(String),
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

pub struct IssuedToken {
    pub token: String,
    pub jti: String,
    /// Seconds since the epoch.
    pub expires_at: i64,
    pub expires_in: i64,
}

/// What a checked ID token pforte issued says about the login (`TokenService::verify_id_token`).
#[derive(Debug, Clone)]
pub struct IssuedIdToken {
    pub sub: String,
    /// The level as the ID token writes it (an eIDAS URI).
    pub acr: String,
    /// The upstream account provider's id.
    pub idp: String,
    /// When the person logged in at the provider, if it said.
    pub auth_time: Option<i64>,
    /// When pforte issued the ID token (seconds).
    pub issued_at: i64,
}

/// What a valid access token says.
#[derive(Debug, Clone)]
pub struct AccessToken {
    pub client_id: String,
    pub sub: String,
    pub scope: String,
    pub jti: String,
    pub expires_at: i64,
    pub identity: Option<Identity>,
}

#[derive(Clone)]
pub struct TokenService {
    keys: KeyService,
    master: Arc<MasterKey>,
    pairwise_key: [u8; 32],
    db: Database,
    issuer: String,
    clock: SharedClock,
    /// Shared by every clone: the tokens whose signature was already checked.
    verified: Arc<VerifiedTokens>,
}

impl TokenService {
    pub fn new(keys: KeyService, db: Database, issuer: String, clock: SharedClock) -> Result<Self, KeyError> {
        let master = keys.master();
        let pairwise_key = master.derive("pairwise subject")?;
        Ok(TokenService { keys, master, pairwise_key, db, issuer, clock, verified: Arc::default() })
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Stable per (sector, upstream provider, upstream subject); unlinkable across sectors.
    pub fn pairwise_subject(&self, sector: &str, idp: &str, upstream_sub: &str) -> Result<String, KeyError> {
        use base64::Engine;
        let mut mac =
            Hmac::<sha2::Sha256>::new_from_slice(&self.pairwise_key).map_err(|e| KeyError::Crypto(e.to_string()))?;
        for part in [sector, idp, upstream_sub] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
    }

    async fn sign(&self, alg: SigningAlg, typ: &str, claims: Map<String, Value>) -> Result<String, KeyError> {
        let signer = self.keys.signer(alg).await?;
        let mut header = JwsHeader::new();
        header.set_token_type(typ);
        header.set_key_id(&signer.kid);
        let payload = JwtPayload::from_map(claims).map_err(|e| KeyError::Crypto(e.to_string()))?;
        jwt::encode_with_signer(&payload, &header, signer.signer.as_ref()).map_err(|e| KeyError::Crypto(e.to_string()))
    }

    pub async fn id_token(
        &self,
        client: &Client,
        identity: &Identity,
        nonce: Option<&str>,
        lifetime: i64,
    ) -> Result<String, KeyError> {
        let now = self.clock.now().timestamp();
        let mut claims = identity.claims.clone();
        claims.extend(
            json!({
                "iss": self.issuer,
                "sub": identity.sub,
                "aud": client.id.as_str(),
                "azp": client.id.as_str(),
                "iat": now,
                "exp": now + lifetime,
                "acr": eidas_uri(identity.level),
                "amr": identity.amr,
                "idp": identity.idp,
                "account_type": identity.account_type,
            })
            .as_object()
            .cloned()
            .unwrap_or_default(),
        );
        if let Some(nonce) = nonce {
            claims.insert("nonce".into(), Value::String(nonce.to_owned()));
        }
        if let Some(auth_time) = identity.auth_time {
            claims.insert("auth_time".into(), json!(auth_time));
        }
        if let Some(sid) = &identity.sid {
            claims.insert("sid".into(), Value::String(sid.clone()));
        }
        let alg = match client.id_token_alg {
            IdTokenAlg::ES256 => SigningAlg::Es256,
            IdTokenAlg::PS256 => SigningAlg::Ps256,
            IdTokenAlg::RS256 => SigningAlg::Rs256,
        };
        self.sign(alg, ID_TOKEN_TYPE, claims).await
    }

    pub async fn access_token(
        &self,
        client_id: &str,
        sub: &str,
        scope: &str,
        identity: Option<&Identity>,
        lifetime: i64,
    ) -> Result<IssuedToken, KeyError> {
        let now = self.clock.now().timestamp();
        let jti = crate::crypto::random_token();
        let mut claims = json!({
            "iss": self.issuer,
            "aud": self.issuer,
            "sub": sub,
            "client_id": client_id,
            "iat": now,
            "exp": now + lifetime,
            "jti": jti,
            "scope": scope,
        });
        if let (Some(identity), Some(map)) = (identity, claims.as_object_mut()) {
            let plain = serde_json::to_vec(identity).map_err(|e| KeyError::Crypto(e.to_string()))?;
            map.insert("acr".into(), json!(eidas_uri(identity.level)));
            if let Some(auth_time) = identity.auth_time {
                map.insert("auth_time".into(), json!(auth_time));
            }
            map.insert("pforte_identity".into(), json!(self.master.seal(&jti, &plain)?));
        }
        let token =
            self.sign(SigningAlg::Es256, ACCESS_TOKEN_TYPE, claims.as_object().cloned().unwrap_or_default()).await?;
        Ok(IssuedToken { token, jti, expires_at: now + lifetime, expires_in: lifetime })
    }

    /// Checks signature (with a published pforte key), type, issuer, expiry and revocation. The
    /// signature of a token seen before is not checked again (`identity::verified`); that its key is
    /// still published, expiry and revocation are, on every call.
    pub async fn verify_access_token(&self, token: &str) -> Result<AccessToken, TokenError> {
        let invalid = |reason: &str| TokenError::Invalid(reason.to_owned());
        let checked = match self.verified.get(token) {
            Some(seen) => {
                if self.keys.verifier(&seen.kid).await?.is_none() {
                    return Err(invalid("unknown signing key"));
                }
                seen
            }
            None => {
                let verified = Arc::new(self.verify_signature(token, ACCESS_TOKEN_TYPE).await?);
                self.verified.insert(token, verified.clone(), self.clock.now().timestamp());
                verified
            }
        };
        let payload = &checked.payload;
        let text = |name: &str| payload.claim(name).and_then(Value::as_str).map(str::to_owned);
        if text("iss").as_deref() != Some(self.issuer.as_str()) {
            return Err(invalid("issued by someone else"));
        }
        let expires_at = checked.expires_at;
        if expires_at <= self.clock.now().timestamp() {
            return Err(invalid("expired"));
        }
        let jti = text("jti").ok_or_else(|| invalid("no token id"))?;
        if self.db.is_token_revoked(&jti).await? {
            return Err(invalid("revoked"));
        }
        let identity = match text("pforte_identity") {
            None => None,
            Some(sealed) => {
                let plain = self.master.open(&jti, &sealed).map_err(KeyError::from)?;
                Some(serde_json::from_slice(&plain).map_err(|_| invalid("damaged identity"))?)
            }
        };
        Ok(AccessToken {
            client_id: text("client_id").ok_or_else(|| invalid("no client"))?,
            sub: text("sub").ok_or_else(|| invalid("no subject"))?,
            scope: text("scope").unwrap_or_default(),
            jti,
            expires_at,
            identity,
        })
    }

    /// Checks an ID token pforte issued (login evidence, Datentransfer): signed by a key pforte still
    /// publishes, `iss` pforte, `aud` naming `client_id`. Its `exp` is deliberately not checked: an ID
    /// token lives five minutes, and the evidence asks how old the login is instead.
    pub async fn verify_id_token(&self, token: &str, client_id: &str) -> Result<IssuedIdToken, TokenError> {
        let invalid = |reason: &str| TokenError::Invalid(reason.to_owned());
        let checked = self.verify_signature(token, ID_TOKEN_TYPE).await?;
        let payload = &checked.payload;
        let text = |name: &str| payload.claim(name).and_then(Value::as_str).map(str::to_owned);
        if text("iss").as_deref() != Some(self.issuer.as_str()) {
            return Err(invalid("issued by someone else"));
        }
        let for_client = match payload.claim("aud") {
            Some(Value::String(aud)) => aud == client_id,
            Some(Value::Array(auds)) => auds.iter().any(|aud| aud.as_str() == Some(client_id)),
            _ => false,
        };
        if !for_client {
            return Err(invalid("issued to another client"));
        }
        Ok(IssuedIdToken {
            sub: text("sub").ok_or_else(|| invalid("no subject"))?,
            acr: text("acr").ok_or_else(|| invalid("no acr"))?,
            idp: text("idp").ok_or_else(|| invalid("no idp"))?,
            auth_time: payload.claim("auth_time").and_then(Value::as_i64),
            issued_at: payload.claim("iat").and_then(Value::as_i64).ok_or_else(|| invalid("no iat"))?,
        })
    }

    /// The signature check of a token not seen before: type `typ`, a published pforte key, the
    /// signature, and an expiry to keep it by.
    async fn verify_signature(&self, token: &str, typ: &str) -> Result<Verified, TokenError> {
        let invalid = |reason: &str| TokenError::Invalid(reason.to_owned());
        let header = jwt::decode_header(token).map_err(|_| invalid("not a JWT"))?;
        if header.claim("typ").and_then(Value::as_str) != Some(typ) {
            return Err(invalid("not a token of this type"));
        }
        let kid = header.claim("kid").and_then(Value::as_str).ok_or_else(|| invalid("no key id"))?;
        let verifier = self.keys.verifier(kid).await?.ok_or_else(|| invalid("unknown signing key"))?;
        let (payload, _) =
            jwt::decode_with_verifier(token, verifier.verifier.as_ref()).map_err(|_| invalid("bad signature"))?;
        let expires_at = payload.claim("exp").and_then(Value::as_i64).ok_or_else(|| invalid("no expiry"))?;
        Ok(Verified { kid: kid.to_owned(), payload, expires_at })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_claims_of_granted_scopes_survive() {
        let claims: Map<String, Value> = json!({
            "given_name": "Erika", "birthdate": "1964-08-12", "email": "erika@example.de", "org_name": "X GmbH"
        })
        .as_object()
        .cloned()
        .unwrap_or_default();
        let kept = minimise(&claims, &["openid".to_owned(), "profile".to_owned()]);
        assert_eq!(kept.keys().collect::<Vec<_>>(), vec!["given_name"]);
        assert!(minimise(&claims, &["openid".to_owned()]).is_empty());
    }
}

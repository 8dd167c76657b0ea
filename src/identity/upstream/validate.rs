//! ID token validation (OpenID Connect Core, section 3.1.3.7) and the mapping of upstream claims onto
//! pforte's claim names.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, TimeDelta, Utc};
use openidconnect::core::{CoreIdToken, CoreIdTokenVerifier, CoreJwsSigningAlgorithm};
use openidconnect::{ClaimsVerificationError, ClientId, Nonce, SignatureVerificationError};
use serde_json::{Map, Value};

use super::discovery::Provider;
use super::UpstreamError;
use crate::registry::{IdentityProvider, OidcUpstream};

/// Signature algorithms accepted from upstream. Never `none`, and never HMAC: a shared-secret algorithm
/// would let anyone who knows the key (for HS256 keyed with a public key: everyone) forge tokens.
pub(super) const ALLOWED_ALGS: [CoreJwsSigningAlgorithm; 4] = [
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
];

/// Tolerated clock difference to the provider for `exp` and `iat`.
pub(super) const CLOCK_SKEW: TimeDelta = TimeDelta::seconds(30);

/// What a valid ID token says. `raw_claims` is the verified payload as sent, for claim mapping.
pub(super) struct VerifiedIdToken {
    pub subject: String,
    /// Empty when the token has no `acr`.
    pub acr: String,
    pub amr: Vec<String>,
    pub auth_time: Option<i64>,
    pub raw_claims: Map<String, Value>,
}

/// Why an ID token was refused. An unknown key is kept apart because it may only mean the provider has
/// rotated its keys since they were fetched.
#[derive(Debug)]
pub(super) enum Rejected {
    UnknownKey,
    Invalid(&'static str),
}

impl Rejected {
    pub(super) fn into_error(self) -> UpstreamError {
        let reason = match self {
            Rejected::UnknownKey => "the ID token is signed with a key the provider does not publish",
            Rejected::Invalid(reason) => reason,
        };
        UpstreamError::InvalidResponse(reason.to_owned())
    }
}

/// Checks signature (with the allow-listed algorithms and the provider's published keys), `iss`, `aud`,
/// `azp`, `exp`, `iat` and `nonce`.
pub(super) fn verify_id_token(
    id_token: &CoreIdToken,
    provider: &Provider,
    oidc: &OidcUpstream,
    expected_nonce: &str,
    now: DateTime<Utc>,
) -> Result<VerifiedIdToken, Rejected> {
    let verifier = CoreIdTokenVerifier::new_public_client(
        ClientId::new(oidc.client_id.clone()),
        provider.metadata.issuer().clone(),
        provider.metadata.jwks().clone(),
    )
    .set_allowed_algs(ALLOWED_ALGS)
    .set_time_fn(move || now - CLOCK_SKEW)
    .set_issue_time_verifier_fn(move |iat| {
        if iat > now + CLOCK_SKEW {
            Err("the ID token was issued in the future".to_owned())
        } else {
            Ok(())
        }
    });
    let nonce = Nonce::new(expected_nonce.to_owned());
    let claims = id_token.claims(&verifier, &nonce).map_err(rejected)?;
    // OpenID Connect Core 3.1.3.7, step 5; the library leaves `azp` to the caller.
    if claims.authorized_party().is_some_and(|azp| azp.as_str() != oidc.client_id) {
        return Err(Rejected::Invalid("the ID token was issued to another party (azp)"));
    }
    Ok(VerifiedIdToken {
        subject: claims.subject().as_str().to_owned(),
        acr: claims.auth_context_ref().map(|acr| acr.as_str().to_owned()).unwrap_or_default(),
        amr: claims
            .auth_method_refs()
            .map(|amr| amr.iter().map(|m| m.as_str().to_owned()).collect())
            .unwrap_or_default(),
        auth_time: claims.auth_time().map(|t| t.timestamp()),
        raw_claims: verified_payload(id_token)?,
    })
}

/// The payload of an ID token whose signature has been checked, decoded as the provider sent it: the
/// library's typed claims know only the standard names, and providers deliver others (e.g. a postbox
/// reference or a tax number).
fn verified_payload(id_token: &CoreIdToken) -> Result<Map<String, Value>, Rejected> {
    let compact = id_token.to_string();
    let payload = compact.split('.').nth(1).ok_or(Rejected::Invalid("the ID token is not a compact JWS"))?;
    let bytes =
        URL_SAFE_NO_PAD.decode(payload).map_err(|_| Rejected::Invalid("the ID token payload is not base64url"))?;
    serde_json::from_slice(&bytes).map_err(|_| Rejected::Invalid("the ID token payload is not a JSON object"))
}

fn rejected(error: ClaimsVerificationError) -> Rejected {
    use ClaimsVerificationError as C;
    use SignatureVerificationError as S;
    Rejected::Invalid(match error {
        C::SignatureVerification(S::NoMatchingKey) => return Rejected::UnknownKey,
        C::SignatureVerification(S::DisallowedAlg(_) | S::UnsupportedAlg(_) | S::NoSignature) => {
            "the ID token is not signed with an accepted algorithm (ES256, ES384, PS256, RS256)"
        }
        C::SignatureVerification(S::AmbiguousKeyId(_)) => "the ID token names no key, and several would fit",
        C::SignatureVerification(_) => "the ID token signature is invalid",
        C::Expired(_) => "the ID token has expired or was issued in the future",
        C::InvalidAudience(_) => "the ID token is not meant for pforte (aud)",
        C::InvalidIssuer(_) => "the ID token was issued by another issuer",
        C::InvalidNonce(_) => "the ID token does not carry this login's nonce",
        C::InvalidSubject(_) => "the ID token has no valid subject",
        C::Unsupported(_) => "the ID token uses a JOSE feature pforte does not support",
        _ => "the ID token is invalid",
    })
}

/// The claims pforte passes on: each upstream claim named in the provider's `[claims]` table, under its
/// pforte name; the signed ID token wins over userinfo where both have a value. Everything else is
/// dropped (data minimisation).
pub(super) fn map_claims(
    idp: &IdentityProvider,
    id_token: &Map<String, Value>,
    userinfo: Option<&Map<String, Value>>,
) -> Map<String, Value> {
    let mut mapped = Map::new();
    for (upstream, pforte) in &idp.claims {
        let value = [Some(id_token), userinfo]
            .into_iter()
            .flatten()
            .filter_map(|source| source.get(upstream))
            .find(|value| !value.is_null());
        if let Some(value) = value {
            mapped.insert((*pforte).to_owned(), value.clone());
        }
    }
    mapped
}

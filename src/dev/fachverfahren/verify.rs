//! What the simulated Fachverfahren checks before it trusts anything: the callback's HMAC-SHA512 and
//! age, and pforte's signed statements (its SETs, the login and payment evidence) against the keys
//! pforte publishes in its JWKS, as docs/datentransfer.md tells a Fachverfahren to.

use hmac::{Hmac, Mac};
use josekit::jwk::Jwk;
use serde_json::{Map, Value};
use sha2::Sha512;

/// Callbacks older (or further ahead) than this are refused, as FIT-Connect requires.
const CALLBACK_MAX_AGE_SECS: i64 = 300;

/// Why a callback was refused; the answer names it, the log does not hold the body.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum CallbackRefusal {
    Stale,
    Forged,
}

/// Checks `Callback-Authentication` (hex HMAC-SHA512 over `"{timestamp}.{body}"` with `secret`) and
/// `Callback-Timestamp` (Unix seconds, at most five minutes from `now`). The MAC is compared in
/// constant time (`verify_slice`).
pub(super) fn callback(
    secret: &[u8],
    timestamp: &str,
    signature: &str,
    body: &[u8],
    now: i64,
) -> Result<(), CallbackRefusal> {
    let sent: i64 = timestamp.trim().parse().map_err(|_| CallbackRefusal::Forged)?;
    if (now - sent).abs() > CALLBACK_MAX_AGE_SECS {
        return Err(CallbackRefusal::Stale);
    }
    let given = hex::decode(signature.trim()).map_err(|_| CallbackRefusal::Forged)?;
    let mut mac = Hmac::<Sha512>::new_from_slice(secret).map_err(|_| CallbackRefusal::Forged)?;
    mac.update(timestamp.trim().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&given).map_err(|_| CallbackRefusal::Forged)
}

/// pforte's published keys (`/.well-known/jwks.json`).
pub(super) struct PforteKeys(Vec<Map<String, Value>>);

impl PforteKeys {
    pub(super) fn new(jwks: &Value) -> PforteKeys {
        let keys = jwks["keys"].as_array().into_iter().flatten().filter_map(|k| k.as_object().cloned()).collect();
        PforteKeys(keys)
    }

    /// Verifies a PS512 JWS of pforte's with the published key its header names, and that its `typ`
    /// is `typ`; returns the claims.
    pub(super) fn verify(&self, token: &str, typ: &str) -> Result<Map<String, Value>, String> {
        let header = josekit::jwt::decode_header(token).map_err(|_| "keine JWS in kompakter Form".to_owned())?;
        if header.claim("typ").and_then(Value::as_str) != Some(typ) {
            return Err(format!("typ ist nicht {typ}"));
        }
        let kid = header.claim("kid").and_then(Value::as_str).unwrap_or_default();
        let key = self
            .0
            .iter()
            .find(|k| k.get("kid").and_then(Value::as_str) == Some(kid))
            .filter(|k| k.get("alg").and_then(Value::as_str) == Some("PS512"))
            .ok_or_else(|| "kid ist kein PS512-Schlüssel in pfortes JWKS".to_owned())?;
        let jwk = Jwk::from_map(key.clone()).map_err(|_| "pfortes Schlüssel ist nicht lesbar".to_owned())?;
        let verifier =
            josekit::jws::PS512.verifier_from_jwk(&jwk).map_err(|_| "pfortes Schlüssel ist nicht lesbar".to_owned())?;
        let (payload, _) = josekit::jws::deserialize_compact(token, &verifier)
            .map_err(|_| "die Signatur ist nicht gültig".to_owned())?;
        match serde_json::from_slice(&payload) {
            Ok(Value::Object(claims)) => Ok(claims),
            _ => Err("der Inhalt ist kein JSON-Objekt".into()),
        }
    }
}

/// `claims[name]` as text, or an empty string.
pub(super) fn text<'a>(claims: &'a Map<String, Value>, name: &str) -> &'a str {
    claims.get(name).and_then(Value::as_str).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &[u8], timestamp: i64, body: &str) -> String {
        let mut mac = Hmac::<Sha512>::new_from_slice(secret).unwrap();
        mac.update(format!("{timestamp}.{body}").as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    #[test]
    fn a_callback_is_taken_only_when_signed_with_the_secret_and_recent() {
        let (secret, now, body) = (b"a-callback-secret-of-at-least-32-characters", 1_764_590_400, r#"{"type":"x"}"#);
        let valid = sign(secret, now - 10, body);
        assert_eq!(callback(secret, &(now - 10).to_string(), &valid, body.as_bytes(), now), Ok(()));
        let other = sign(b"another-secret-of-at-least-32-characters!!", now - 10, body);
        assert_eq!(
            callback(secret, &(now - 10).to_string(), &other, body.as_bytes(), now),
            Err(CallbackRefusal::Forged)
        );
        let changed = br#"{"type":"y"}"#;
        assert_eq!(callback(secret, &(now - 10).to_string(), &valid, changed, now), Err(CallbackRefusal::Forged));
        assert_eq!(callback(secret, &(now - 10).to_string(), "zz", body.as_bytes(), now), Err(CallbackRefusal::Forged));
        let old = sign(secret, now - 301, body);
        assert_eq!(callback(secret, &(now - 301).to_string(), &old, body.as_bytes(), now), Err(CallbackRefusal::Stale));
        let ahead = sign(secret, now + 301, body);
        assert_eq!(
            callback(secret, &(now + 301).to_string(), &ahead, body.as_bytes(), now),
            Err(CallbackRefusal::Stale)
        );
    }
}

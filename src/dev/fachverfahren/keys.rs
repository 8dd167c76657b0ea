//! The simulated Fachverfahren's own keys: an RSA-4096 encryption key (RSA-OAEP-256, the senders
//! encrypt to it) and an RSA-4096 signing key (PS512, its decisions). They are development-only files
//! committed in `dev-keys/` and compiled into simulator builds only, so the public halves listed in
//! `config/destinations/fachverfahren-sim.jwks.json` always match; the simulator serves every
//! destination whose JWKS lists its encryption key (`mod.rs`), and a unit test holds the two together.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use josekit::jwe::alg::rsaes::RsaesJweDecrypter;
use josekit::jwe::{self, JweHeader};
use josekit::jws::alg::rsassa_pss::RsassaPssJwsSigner;
use josekit::jws::JwsHeader;
use josekit::jwt::{self, JwtPayload};
use openssl::pkey::{PKey, Private};
use serde_json::{json, Map, Value};

const ENCRYPTION_PEM: &str = include_str!("dev-keys/encryption.key.pem");
const SIGNING_PEM: &str = include_str!("dev-keys/signing.key.pem");
/// The key id the destination files give the signing key (`fachverfahren-sim.jwks.json`).
pub(super) const SIGNING_KID: &str = "fv-sim-sig-2026";
const EVENTS: &str = "https://schema.fitko.de/fit-connect/events/";

pub(super) struct SimKeys {
    decrypter: RsaesJweDecrypter,
    signer: RsassaPssJwsSigner,
    /// The encryption key's modulus, base64url: how the simulator finds the destinations listing it.
    pub(super) encryption_n: String,
}

impl SimKeys {
    pub(super) fn load() -> anyhow::Result<SimKeys> {
        let encryption = pem_key(ENCRYPTION_PEM)?;
        let signing = pem_key(SIGNING_PEM)?;
        let decrypter = jwe::RSA_OAEP_256.decrypter_from_der(encryption.private_key_to_der()?)?;
        let signer = josekit::jws::PS512.signer_from_der(signing.private_key_to_der()?)?;
        let encryption_n = URL_SAFE_NO_PAD.encode(encryption.rsa()?.n().to_vec());
        Ok(SimKeys { decrypter, signer, encryption_n })
    }

    /// Decrypts a compact JWE of a submission: RSA-OAEP-256 with A256GCM, to a key of `accepted`
    /// kids; returns the plaintext and the header's `cty`.
    pub(super) fn decrypt(&self, compact: &str, accepted: &[String]) -> Result<(Vec<u8>, String), String> {
        let (plaintext, header): (Vec<u8>, JweHeader) =
            jwe::deserialize_compact(compact, &self.decrypter).map_err(|_| "lässt sich nicht entschlüsseln")?;
        if header.content_encryption() != Some("A256GCM") {
            return Err("enc ist nicht A256GCM".into());
        }
        let kid = header.key_id().unwrap_or_default();
        if !accepted.iter().any(|known| known == kid) {
            return Err(format!("kid `{kid}` ist nicht der Schlüssel des Simulators"));
        }
        Ok((plaintext, header.content_type().unwrap_or_default().to_owned()))
    }

    /// The Fachverfahren's decision as FIT-Connect's SET: PS512 under [`SIGNING_KID`], `iss` the
    /// destinationId.
    pub(super) fn decision(
        &self,
        (destination, submission, case): (&str, &str, &str),
        accept: bool,
        now: i64,
    ) -> Result<String, String> {
        let (event, payload) = if accept {
            ("accept-submission", json!({}))
        } else {
            let problem = json!({
                "type": "https://schema.fitko.de/fit-connect/events/problems/technical-error",
                "title": "Abgelehnt im Fachverfahren-Simulator",
                "detail": "Der Antrag wurde im Fachverfahren-Simulator abgelehnt.",
                "instance": "other",
            });
            ("reject-submission", json!({ "problems": [problem] }))
        };
        let mut events = Map::new();
        events.insert(format!("{EVENTS}{event}"), payload);
        let claims = json!({
            "jti": uuid::Uuid::new_v4().to_string(),
            "iss": destination,
            "iat": now,
            "sub": format!("submission:{submission}"),
            "txn": format!("case:{case}"),
            "events": events,
        });
        let mut header = JwsHeader::new();
        header.set_token_type("secevent+jwt");
        header.set_key_id(SIGNING_KID);
        let claims = match claims {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        let payload = JwtPayload::from_map(claims).map_err(|e| e.to_string())?;
        jwt::encode_with_signer(&payload, &header, &self.signer).map_err(|e| e.to_string())
    }
}

/// The key of a PEM file whose first lines explain it (OpenSSL skips text before `-----BEGIN`).
fn pem_key(text: &str) -> anyhow::Result<PKey<Private>> {
    Ok(PKey::private_key_from_pem(text.as_bytes())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed development destinations list exactly the simulator's keys.
    #[test]
    fn the_development_jwks_holds_the_public_halves_of_the_simulators_keys() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/destinations/fachverfahren-sim.jwks.json");
        let jwks: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let n_of = |kid: &str| {
            jwks["keys"].as_array().unwrap().iter().find(|k| k["kid"] == kid).unwrap()["n"].as_str().unwrap().to_owned()
        };
        let keys = SimKeys::load().unwrap();
        assert_eq!(n_of("fv-sim-enc-2026"), keys.encryption_n);
        let signing = pem_key(SIGNING_PEM).unwrap();
        assert_eq!(n_of(SIGNING_KID), URL_SAFE_NO_PAD.encode(signing.rsa().unwrap().n().to_vec()));
        assert_eq!(signing.bits(), 4096);
    }

    #[test]
    fn a_decision_is_a_ps512_set_about_the_submission() {
        let keys = SimKeys::load().unwrap();
        let token = keys.decision(("d", "s", "c"), true, 1_764_590_400).unwrap();
        let header = jwt::decode_header(&token).unwrap();
        assert_eq!(header.claim("alg"), Some(&json!("PS512")));
        assert_eq!(header.claim("typ"), Some(&json!("secevent+jwt")));
        let payload: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap();
        assert_eq!(payload["sub"], "submission:s");
        assert!(payload["events"].get(format!("{EVENTS}accept-submission")).is_some());
    }
}

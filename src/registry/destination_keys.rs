//! The public keys of a destination's Fachverfahren, checked as FIT-Connect requires: RSA with at least
//! 4096 bits and `e` = AQAB, an encryption key for `RSA-OAEP-256` with `key_ops` ["wrapKey"] and a
//! signing key for `PS512` with ["verify"], no private members, and an `x5c` chain whose leaf carries
//! exactly this public key, valid today, leading to a configured trust anchor (self-signed only with
//! the development simulators).

use std::path::Path;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use openssl::asn1::Asn1Time;
use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::{X509StoreContext, X509VerifyResult, X509};
use serde_json::{Map, Value};

use super::check::FileCheck;
use crate::config::Problems;

/// FIT-Connect's minimum RSA modulus.
pub(crate) const MIN_RSA_BITS: usize = 4096;
const MAX_KID_LEN: usize = 64;
/// JWK members that only a private key has; a destination file holds public keys only.
const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUse {
    /// `RSA-OAEP-256`, `key_ops` ["wrapKey"]: senders encrypt the content key to it.
    Encryption,
    /// `PS512`, `key_ops` ["verify"]: the Fachverfahren's own SETs are verified with it.
    Signing,
}

/// One checked public key, with the JWK as it is published (`GET /v1/destinations/{id}/keys/{kid}`).
#[derive(Debug, Clone)]
pub struct DestinationKey {
    pub kid: String,
    pub key_use: KeyUse,
    pub jwk: Map<String, Value>,
}

/// The certificates destination key chains must lead to (`transfer.trust_anchors`).
#[derive(Default)]
pub(crate) struct TrustAnchors(Vec<X509>);

impl TrustAnchors {
    /// Reads a PEM file of certificates; a problem names the file.
    pub(crate) fn load(path: Option<&Path>, problems: &mut Problems) -> TrustAnchors {
        let Some(path) = path else { return TrustAnchors::default() };
        let source = path.display().to_string();
        match std::fs::read(path) {
            Ok(pem) => match X509::stack_from_pem(&pem) {
                Ok(certs) if !certs.is_empty() => TrustAnchors(certs),
                Ok(_) => {
                    problems.push(source, "", "holds no PEM certificate");
                    TrustAnchors::default()
                }
                Err(e) => {
                    problems.push(source, "", format!("is not a PEM certificate list: {e}"));
                    TrustAnchors::default()
                }
            },
            Err(e) => {
                problems.push(source, "", format!("cannot read the trust anchors: {e}"));
                TrustAnchors::default()
            }
        }
    }
}

/// Checks a JWKS text; every problem is recorded under `jwks.keys[i].<member>`.
pub(crate) fn check_jwks(check: &mut FileCheck<'_>, text: &str, anchors: &TrustAnchors) -> Option<Vec<DestinationKey>> {
    let keys = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(mut set)) => match set.remove("keys") {
            Some(Value::Array(keys)) if !keys.is_empty() => keys,
            _ => {
                check.problem("jwks", "a JWKS needs a non-empty `keys` array");
                return None;
            }
        },
        _ => {
            check.problem("jwks", "is not a JSON Web Key Set (a JSON object with `keys`)");
            return None;
        }
    };
    let mut valid = true;
    let mut checked: Vec<DestinationKey> = Vec::new();
    for (index, key) in keys.into_iter().enumerate() {
        let prefix = format!("jwks.keys[{index}]");
        let Value::Object(jwk) = key else {
            check.problem(prefix, "is not a JSON object");
            valid = false;
            continue;
        };
        match check_key(&jwk, check.context.dev_simulators, anchors) {
            Ok(key) if checked.iter().any(|k| k.kid == key.kid) => {
                check.problem(format!("{prefix}.kid"), format!("`{}` is used by another key", key.kid));
                valid = false;
            }
            Ok(key) => checked.push(key),
            Err((member, reason)) => {
                check.problem(format!("{prefix}.{member}"), reason);
                valid = false;
            }
        }
    }
    if valid && !checked.iter().any(|k| k.key_use == KeyUse::Signing) {
        check.problem("jwks", "needs a signing key (PS512, key_ops [\"verify\"]) for the Fachverfahren's SETs");
        valid = false;
    }
    valid.then_some(checked)
}

type KeyProblem = (&'static str, String);

fn check_key(
    jwk: &Map<String, Value>,
    dev_simulators: bool,
    anchors: &TrustAnchors,
) -> Result<DestinationKey, KeyProblem> {
    let text = |name: &'static str| jwk.get(name).and_then(Value::as_str);
    if text("kty") != Some("RSA") {
        return Err(("kty", "must be RSA".into()));
    }
    let kid = text("kid").filter(|k| !k.is_empty() && k.len() <= MAX_KID_LEN);
    let kid = kid.ok_or(("kid", format!("must be a string of 1 to {MAX_KID_LEN} characters")))?.to_owned();
    if let Some(member) = PRIVATE_MEMBERS.iter().find(|m| jwk.contains_key(**m)) {
        return Err(("d", format!("holds the private member `{member}`: give the public key only")));
    }
    let ops: Vec<&str> = match jwk.get("key_ops") {
        Some(Value::Array(ops)) => ops.iter().filter_map(Value::as_str).collect(),
        _ => return Err(("key_ops", "is required: [\"wrapKey\"] or [\"verify\"]".into())),
    };
    let key_use = match (ops.as_slice(), text("alg")) {
        (["wrapKey"], Some("RSA-OAEP-256")) => KeyUse::Encryption,
        (["verify"], Some("PS512")) => KeyUse::Signing,
        (["wrapKey"], _) => return Err(("alg", "an encryption key (wrapKey) must have alg RSA-OAEP-256".into())),
        (["verify"], _) => return Err(("alg", "a signing key (verify) must have alg PS512".into())),
        _ => return Err(("key_ops", "must be [\"wrapKey\"] (encryption) or [\"verify\"] (signing)".into())),
    };
    if text("e") != Some("AQAB") {
        return Err(("e", "must be AQAB (65537)".into()));
    }
    let n = text("n").and_then(|n| URL_SAFE_NO_PAD.decode(n).ok()).ok_or(("n", "must be base64url".into()))?;
    let n = strip_leading_zeros(&n);
    let bits = n.first().map_or(0, |first| (n.len() - 1) * 8 + (8 - first.leading_zeros() as usize));
    if bits < MIN_RSA_BITS {
        return Err(("n", format!("the modulus has {bits} bits; at least {MIN_RSA_BITS} are required")));
    }
    check_chain(jwk, n, dev_simulators, anchors)?;
    Ok(DestinationKey { kid, key_use, jwk: jwk.clone() })
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

/// The `x5c` chain: the leaf holds this key, every certificate is valid today, and the chain leads to
/// a trust anchor (or is one self-signed certificate, with the development simulators only).
fn check_chain(
    jwk: &Map<String, Value>,
    n: &[u8],
    dev_simulators: bool,
    anchors: &TrustAnchors,
) -> Result<(), KeyProblem> {
    let bad = |reason: String| ("x5c", reason);
    let Some(Value::Array(chain)) = jwk.get("x5c") else {
        return Err(bad("is required: the certificate chain of the key, leaf first".into()));
    };
    let mut certs = Vec::new();
    for (i, entry) in chain.iter().enumerate() {
        let der = entry.as_str().and_then(|b64| STANDARD.decode(b64).ok());
        let cert = der.and_then(|der| X509::from_der(&der).ok());
        certs.push(cert.ok_or_else(|| bad(format!("entry {i} is not a base64 DER certificate")))?);
    }
    let leaf = certs.first().ok_or_else(|| bad("is empty".into()))?;
    let leaf_key =
        leaf.public_key().and_then(|k| k.rsa()).map_err(|_| bad("the leaf certificate has no RSA key".into()))?;
    if leaf_key.n().to_vec() != n || leaf_key.e().to_vec() != [1, 0, 1] {
        return Err(bad("the leaf certificate's public key is not this JWK's key".into()));
    }
    let now = Asn1Time::days_from_now(0).map_err(|e| bad(e.to_string()))?;
    for (i, cert) in certs.iter().enumerate() {
        if cert.not_before() > now {
            return Err(bad(format!("certificate {i} is not valid before {}", cert.not_before())));
        }
        if cert.not_after() < now {
            return Err(bad(format!("certificate {i} expired on {}", cert.not_after())));
        }
    }
    let self_signed = leaf.issued(leaf) == X509VerifyResult::OK
        && leaf.public_key().and_then(|key| leaf.verify(&key)).unwrap_or(false);
    if self_signed && certs.len() == 1 {
        return if dev_simulators {
            Ok(())
        } else {
            Err(bad("is a self-signed certificate; those are accepted only with dev.simulators = true".into()))
        };
    }
    if anchors.0.is_empty() {
        return Err(bad("cannot be checked: no trust anchors are configured (transfer.trust_anchors)".into()));
    }
    let verified = (|| -> Result<bool, openssl::error::ErrorStack> {
        let mut store = X509StoreBuilder::new()?;
        for anchor in &anchors.0 {
            store.add_cert(anchor.clone())?;
        }
        let store = store.build();
        let mut intermediates = Stack::new()?;
        for cert in certs.iter().skip(1) {
            intermediates.push(cert.clone())?;
        }
        let mut context = X509StoreContext::new()?;
        context.init(&store, leaf, &intermediates, |c| c.verify_cert())
    })();
    match verified {
        Ok(true) => Ok(()),
        Ok(false) => Err(bad("does not lead to a configured trust anchor".into())),
        Err(e) => Err(bad(format!("could not be verified: {e}"))),
    }
}

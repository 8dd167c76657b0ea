//! Destination files: the Fachverfahren's keys and chains, and the references to tenant and subscriber.

use std::sync::OnceLock;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::{X509NameBuilder, X509};
use serde_json::{json, Value};

use super::*;
use crate::config::TransferSettings;

const ID: &str = "7c2b9a4e-3f61-4d2a-9b8e-0c1d2e3f4a5b";
const SUBSCRIBER: &str = r#"
display_name = "Fachverfahren"
redirect_uris = ["https://fv.example.org/cb"]
identity_providers = ["idp"]
scopes = ["openid"]
grant_types = ["client_credentials"]

[auth]
method = "client_secret_basic"
secret = "plain:fv-secret"
"#;

struct Keys {
    encryption: PKey<Private>,
    signing: PKey<Private>,
    weak: PKey<Private>,
    ca: PKey<Private>,
}

/// RSA keys take a while to make; every test shares one set.
fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let rsa = |bits| PKey::from_rsa(Rsa::generate(bits).unwrap()).unwrap();
        Keys { encryption: rsa(4096), signing: rsa(4096), weak: rsa(2048), ca: rsa(2048) }
    })
}

/// A certificate for `key`, signed by `issuer` (itself when `None`), valid from `from_days` to `to_days`.
fn certificate(key: &PKey<Private>, issuer: Option<&PKey<Private>>, from_days: i64, to_days: u32) -> X509 {
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", if issuer.is_some() { "leaf" } else { "self" }).unwrap();
    let name = name.build();
    let mut issuer_name = X509NameBuilder::new().unwrap();
    issuer_name.append_entry_by_text("CN", if issuer.is_some() { "ca" } else { "self" }).unwrap();
    let issuer_name = issuer_name.build();
    let mut builder = X509::builder().unwrap();
    builder.set_version(2).unwrap();
    let mut serial = BigNum::new().unwrap();
    serial.rand(64, MsbOption::MAYBE_ZERO, false).unwrap();
    builder.set_serial_number(&serial.to_asn1_integer().unwrap()).unwrap();
    builder.set_subject_name(&name).unwrap();
    builder.set_issuer_name(&issuer_name).unwrap();
    builder.set_pubkey(key).unwrap();
    let now = chrono::Utc::now().timestamp();
    builder.set_not_before(&Asn1Time::from_unix(now + from_days * 86_400).unwrap()).unwrap();
    builder.set_not_after(&Asn1Time::days_from_now(to_days).unwrap()).unwrap();
    builder.sign(issuer.unwrap_or(key), MessageDigest::sha256()).unwrap();
    builder.build()
}

fn ca_certificate() -> X509 {
    let ca = &keys().ca;
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "ca").unwrap();
    let name = name.build();
    let mut builder = X509::builder().unwrap();
    builder.set_version(2).unwrap();
    builder.set_serial_number(&BigNum::from_u32(1).unwrap().to_asn1_integer().unwrap()).unwrap();
    builder.set_subject_name(&name).unwrap();
    builder.set_issuer_name(&name).unwrap();
    builder.set_pubkey(ca).unwrap();
    builder.set_not_before(&Asn1Time::days_from_now(0).unwrap()).unwrap();
    builder.set_not_after(&Asn1Time::days_from_now(30).unwrap()).unwrap();
    let mut constraints = openssl::x509::extension::BasicConstraints::new();
    builder.append_extension(constraints.critical().ca().build().unwrap()).unwrap();
    builder.sign(ca, MessageDigest::sha256()).unwrap();
    builder.build()
}

fn jwk(key: &PKey<Private>, kid: &str, ops: &str, alg: &str, chain: &[X509]) -> Value {
    let rsa = key.rsa().unwrap();
    let x5c: Vec<String> = chain.iter().map(|c| STANDARD.encode(c.to_der().unwrap())).collect();
    json!({
        "kty": "RSA", "kid": kid, "key_ops": [ops], "alg": alg,
        "n": URL_SAFE_NO_PAD.encode(rsa.n().to_vec()), "e": URL_SAFE_NO_PAD.encode(rsa.e().to_vec()),
        "x5c": x5c,
    })
}

fn self_signed_keys() -> Vec<Value> {
    let k = keys();
    vec![
        jwk(&k.encryption, "enc-1", "wrapKey", "RSA-OAEP-256", &[certificate(&k.encryption, None, -1, 30)]),
        jwk(&k.signing, "sig-1", "verify", "PS512", &[certificate(&k.signing, None, -1, 30)]),
    ]
}

fn destination_file(keys: &[Value], extra: &str) -> String {
    let jwks = json!({ "keys": keys }).to_string();
    format!(
        r#"tenant = "12345678"
status = "active"
subscriber_client = "fachverfahren"
encryption_kid = "enc-1"
jwks = '''{jwks}'''
{extra}
[[services]]
identifier = "urn:de:fim:leika:leistung:99123456760610"
regions = ["DE03241001"]
submission_schemas = [{{ schema_uri = "https://schema.example.org/antrag.json", mime_type = "json" }}]
"#
    )
}

impl Tree {
    fn with_destination(text: &str) -> Tree {
        let tree = Tree::new().unwrap();
        tree.write("clients/fachverfahren.toml", SUBSCRIBER).unwrap();
        tree.write(&format!("destinations/{ID}.toml"), text).unwrap();
        tree
    }

    fn load_destinations(&self, dev_simulators: bool, anchors: Option<&str>) -> Result<Registry, Problems> {
        let transfer = TransferSettings {
            destinations: self.dir.path().join("destinations"),
            trust_anchors: anchors.map(|a| self.dir.path().join(a)),
            ..TransferSettings::default()
        };
        Registry::load_with_destinations(&self.settings(), Some(&transfer), &public_url(), dev_simulators)
    }

    fn destination_problems(&self, dev_simulators: bool, anchors: Option<&str>) -> Problems {
        match self.load_destinations(dev_simulators, anchors) {
            Ok(_) => Problems::default(),
            Err(problems) => Problems(problems.0.into_iter().filter(|p| p.source.contains("destinations")).collect()),
        }
    }
}

#[test]
fn a_destination_with_self_signed_keys_loads_with_the_simulators() {
    let tree = Tree::with_destination(&destination_file(&self_signed_keys(), ""));
    let registry = tree.load_destinations(true, None).unwrap();
    let destination = registry.destination(ID).unwrap();
    assert_eq!(destination.tenant.as_str(), "12345678");
    assert_eq!(destination.encryption_kid, "enc-1");
    assert!(destination.accepts_encryption_kid("enc-1"));
    assert!(!destination.accepts_encryption_kid("sig-1"));
    assert_eq!(destination.signing_keys().count(), 1);
    assert!(destination.offers_service("urn:de:fim:leika:leistung:99123456760610"));
}

#[test]
fn self_signed_keys_are_refused_without_the_simulators() {
    let tree = Tree::with_destination(&destination_file(&self_signed_keys(), ""));
    let problems = tree.destination_problems(false, None);
    assert_problem!(problems, &format!("{ID}.toml"), "jwks.keys[0].x5c", "self-signed");
}

#[test]
fn a_chain_to_a_configured_trust_anchor_is_accepted_without_the_simulators() {
    let k = keys();
    let ca = ca_certificate();
    let chain_keys = vec![
        jwk(&k.encryption, "enc-1", "wrapKey", "RSA-OAEP-256", &[certificate(&k.encryption, Some(&k.ca), -1, 20)]),
        jwk(&k.signing, "sig-1", "verify", "PS512", &[certificate(&k.signing, Some(&k.ca), -1, 20)]),
    ];
    let tree = Tree::with_destination(&destination_file(&chain_keys, ""));
    tree.write("anchors.pem", &String::from_utf8(ca.to_pem().unwrap()).unwrap()).unwrap();
    // Without the simulators the subscriber's plain: secret is a problem of its own; the keys are not.
    let problems = tree.destination_problems(false, Some("anchors.pem"));
    assert!(!problems.0.iter().any(|p| p.key.starts_with("jwks")), "{problems}");
    let without_anchor = tree.destination_problems(false, None);
    assert_problem!(without_anchor, &format!("{ID}.toml"), "jwks.keys[0].x5c", "no trust anchors");
}

#[test]
fn weak_or_misdeclared_keys_are_reported_under_their_member() {
    let k = keys();
    let cert = |key| vec![certificate(key, None, -1, 30)];
    let signing = jwk(&k.signing, "sig-1", "verify", "PS512", &cert(&k.signing));
    let cases: Vec<(Value, &str, &str)> = vec![
        (jwk(&k.weak, "enc-1", "wrapKey", "RSA-OAEP-256", &cert(&k.weak)), "n", "2048 bits"),
        (jwk(&k.encryption, "enc-1", "encrypt", "RSA-OAEP-256", &cert(&k.encryption)), "key_ops", "wrapKey"),
        (jwk(&k.encryption, "enc-1", "wrapKey", "RSA-OAEP", &cert(&k.encryption)), "alg", "RSA-OAEP-256"),
        (jwk(&k.encryption, "enc-1", "wrapKey", "RSA-OAEP-256", &cert(&k.signing)), "x5c", "not this JWK's key"),
        (
            jwk(&k.encryption, "enc-1", "wrapKey", "RSA-OAEP-256", &[certificate(&k.encryption, None, 2, 30)]),
            "x5c",
            "not valid before",
        ),
    ];
    for (encryption, member, reason) in cases {
        let tree = Tree::with_destination(&destination_file(&[encryption, signing.clone()], ""));
        let problems = tree.destination_problems(true, None);
        assert_problem!(problems, &format!("{ID}.toml"), &format!("jwks.keys[0].{member}"), reason);
    }
    let mut private = jwk(&k.encryption, "enc-1", "wrapKey", "RSA-OAEP-256", &cert(&k.encryption));
    private["d"] = json!("AQAB");
    let tree = Tree::with_destination(&destination_file(&[private, signing.clone()], ""));
    assert_problem!(tree.destination_problems(true, None), &format!("{ID}.toml"), "jwks.keys[0].d", "private");
}

#[test]
fn an_expired_certificate_is_reported() {
    let k = keys();
    // Valid from 40 days ago until yesterday.
    let mut builder = X509::builder().unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "self").unwrap();
    let name = name.build();
    builder.set_version(2).unwrap();
    builder.set_subject_name(&name).unwrap();
    builder.set_issuer_name(&name).unwrap();
    builder.set_pubkey(&k.encryption).unwrap();
    let now = chrono::Utc::now().timestamp();
    builder.set_not_before(&Asn1Time::from_unix(now - 40 * 86_400).unwrap()).unwrap();
    builder.set_not_after(&Asn1Time::from_unix(now - 86_400).unwrap()).unwrap();
    builder.sign(&k.encryption, MessageDigest::sha256()).unwrap();
    let expired = jwk(&k.encryption, "enc-1", "wrapKey", "RSA-OAEP-256", &[builder.build()]);
    let signing = jwk(&k.signing, "sig-1", "verify", "PS512", &[certificate(&k.signing, None, -1, 30)]);
    let tree = Tree::with_destination(&destination_file(&[expired, signing], ""));
    assert_problem!(tree.destination_problems(true, None), &format!("{ID}.toml"), "jwks.keys[0].x5c", "expired");
}

#[test]
fn references_services_and_the_current_key_are_checked() {
    let file = destination_file(&self_signed_keys(), "")
        .replace("tenant = \"12345678\"", "tenant = \"99999999\"")
        .replace("subscriber_client = \"fachverfahren\"", "subscriber_client = \"nobody\"")
        .replace("encryption_kid = \"enc-1\"", "encryption_kid = \"sig-1\"")
        .replace("leistung:99123456760610", "leistung:abc");
    let tree = Tree::with_destination(&file);
    let problems = tree.destination_problems(true, None);
    let source = format!("{ID}.toml");
    assert_problem!(problems, &source, "services[0].identifier", "LeiKa");
    assert_problem!(problems, &source, "encryption_kid", "signing key");
    // Cross-file references are checked once the file itself is valid.
    let file = destination_file(&self_signed_keys(), "")
        .replace("tenant = \"12345678\"", "tenant = \"99999999\"")
        .replace("subscriber_client = \"fachverfahren\"", "subscriber_client = \"nobody\"");
    let tree = Tree::with_destination(&file);
    let problems = tree.destination_problems(true, None);
    assert_problem!(problems, &source, "tenant", "no valid tenant");
    assert_problem!(problems, &source, "subscriber_client", "no valid client");
}

#[test]
fn the_file_name_must_be_a_lower_case_uuid() {
    let tree = Tree::with_destination(&destination_file(&self_signed_keys(), ""));
    tree.write("destinations/Fachverfahren-A.toml", &destination_file(&self_signed_keys(), "")).unwrap();
    let problems = tree.destination_problems(true, None);
    assert_problem!(problems, "Fachverfahren-A.toml", "", "UUID");
}

#[test]
fn fee_required_is_read_per_service_and_must_be_a_boolean() {
    let service = "urn:de:fim:leika:leistung:99123456760610";
    let free = Tree::with_destination(&destination_file(&self_signed_keys(), ""));
    assert!(!free.load_destinations(true, None).unwrap().destination(ID).unwrap().requires_fee(service));
    let with_fee = destination_file(&self_signed_keys(), "").replace("regions = [", "fee_required = true\nregions = [");
    let tree = Tree::with_destination(&with_fee);
    let registry = tree.load_destinations(true, None).unwrap();
    assert!(registry.destination(ID).unwrap().requires_fee(service));
    assert!(!registry.destination(ID).unwrap().requires_fee("urn:de:fim:leika:leistung:1"));
    let wrong = destination_file(&self_signed_keys(), "").replace("regions = [", "fee_required = \"yes\"\nregions = [");
    let problems = Tree::with_destination(&wrong).destination_problems(true, None);
    assert!(format!("{problems:?}").contains("fee_required"), "{problems:?}");
}

//! A SAML identity provider for the tests, written from the specification: it reads pforte's
//! HTTP-Redirect AuthnRequest, checks its signature, and writes Responses, honest ones and each forged
//! variant the SAML tests need. Signing goes through libxmlsec1 (samael's `sign_xml` over a template);
//! encryption is AES-GCM with an RSA-OAEP wrapped key, built with OpenSSL.

use std::io::Read;
use std::sync::OnceLock;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use openssl::asn1::Asn1Time;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::{Padding, Rsa};
use openssl::x509::{X509NameBuilder, X509};
use samael::crypto::{Crypto, CryptoProvider};

pub const IDP_ENTITY_ID: &str = "https://idp.test/saml";
pub const IDP_SSO: &str = "https://idp.test/sso";
pub const BPK2: &str = "urn:oid:1.3.6.1.4.1.25484.494450.3";
pub const GIVEN_NAME: &str = "urn:oid:2.5.4.42";
pub const SURNAME: &str = "urn:oid:2.5.4.4";
pub const BIRTHDATE: &str = "urn:oid:1.2.40.0.10.2.1.1.55";

/// A key and its self-signed certificate.
pub struct KeyPair {
    pub key: PKey<Private>,
    pub cert: X509,
}

impl KeyPair {
    fn generate(bits: u32, name: &str) -> KeyPair {
        let key = PKey::from_rsa(Rsa::generate(bits).expect("rsa")).expect("pkey");
        let mut subject = X509NameBuilder::new().expect("name");
        subject.append_entry_by_text("CN", name).expect("cn");
        let subject = subject.build();
        let mut builder = X509::builder().expect("x509");
        builder.set_version(2).expect("version");
        builder.set_subject_name(&subject).expect("subject");
        builder.set_issuer_name(&subject).expect("issuer");
        builder.set_pubkey(&key).expect("pubkey");
        builder.set_not_before(&Asn1Time::days_from_now(0).expect("time")).expect("not before");
        builder.set_not_after(&Asn1Time::days_from_now(365).expect("time")).expect("not after");
        builder.sign(&key, MessageDigest::sha256()).expect("sign");
        KeyPair { key, cert: builder.build() }
    }

    pub fn key_pem(&self) -> String {
        String::from_utf8(self.key.private_key_to_pem_pkcs8().expect("pem")).expect("utf8")
    }

    pub fn cert_pem(&self) -> String {
        String::from_utf8(self.cert.to_pem().expect("pem")).expect("utf8")
    }

    pub fn cert_base64(&self) -> String {
        STANDARD.encode(self.cert.to_der().expect("der"))
    }
}

/// The keys of all SAML tests, made once: the IdP's (signing), another IdP's (a forger), pforte's.
pub struct Keys {
    pub idp: KeyPair,
    pub forger: KeyPair,
    pub sp: KeyPair,
}

pub fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        idp: KeyPair::generate(2048, "idp.test"),
        forger: KeyPair::generate(2048, "forger.test"),
        sp: KeyPair::generate(3072, "pforte.test"),
    })
}

/// The IdP's metadata, pinning its signing certificate; `extra_key_descriptor` goes into the
/// IDPSSODescriptor as it is (e.g. encryption methods).
pub fn idp_metadata(extra_key_descriptor: &str) -> String {
    format!(
        r#"<?xml version="1.0"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{IDP_ENTITY_ID}">
  <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol" WantAuthnRequestsSigned="true">
    <md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    {extra_key_descriptor}
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="{IDP_SSO}"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>"#,
        cert = keys().idp.cert_base64()
    )
}

/// What pforte's AuthnRequest said, after its signature was checked with pforte's certificate.
pub struct ReceivedRequest {
    pub xml: String,
    pub id: String,
    pub relay_state: String,
}

/// Reads the HTTP-Redirect binding at the IdP: the query signature (SAML Bindings 3.4.4.1) over
/// `SAMLRequest=…&RelayState=…&SigAlg=…` as sent, then the inflated request.
pub fn receive_request(location: &str) -> ReceivedRequest {
    let url = url::Url::parse(location).expect("redirect URL");
    assert!(location.starts_with(IDP_SSO), "{location}");
    let query = url.query().expect("query");
    let (signed, signature) = query.rsplit_once("&Signature=").expect("signed request");
    let signature_field = format!("s={signature}");
    let signature = url::form_urlencoded::parse(signature_field.as_bytes()).next().expect("sig").1;
    let signature = STANDARD.decode(signature.as_bytes()).expect("base64 signature");
    let sp_key = keys().sp.cert.public_key().expect("key");
    let mut verifier = openssl::sign::Verifier::new(MessageDigest::sha256(), &sp_key).expect("verifier");
    verifier.update(signed.as_bytes()).expect("update");
    assert!(verifier.verify(&signature).expect("verify"), "pforte's AuthnRequest signature does not verify");
    let pairs: std::collections::BTreeMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(pairs["SigAlg"], "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256");
    let deflated = STANDARD.decode(&pairs["SAMLRequest"]).expect("base64 request");
    let mut xml = String::new();
    flate2::read::DeflateDecoder::new(deflated.as_slice()).read_to_string(&mut xml).expect("inflate");
    let id = xml.split(" ID=\"").nth(1).and_then(|s| s.split('"').next()).expect("ID").to_owned();
    ReceivedRequest { xml, id, relay_state: pairs["RelayState"].clone() }
}

/// Everything a Response says; each forged variant changes one thing.
#[derive(Clone)]
pub struct Answer {
    pub in_response_to: String,
    pub destination: String,
    pub recipient: String,
    pub audience: String,
    pub issuer: String,
    pub assertion_id: String,
    pub class_ref: String,
    pub not_on_or_after: DateTime<Utc>,
    pub name_id: String,
    pub attributes: Vec<(String, String)>,
    pub status: Option<&'static str>,
}

impl Answer {
    /// An honest answer to `request` for `acs_url` and pforte's `sp_entity_id`.
    pub fn to(request: &ReceivedRequest, acs_url: &str, sp_entity_id: &str) -> Answer {
        Answer {
            in_response_to: request.id.clone(),
            destination: acs_url.to_owned(),
            recipient: acs_url.to_owned(),
            audience: sp_entity_id.to_owned(),
            issuer: IDP_ENTITY_ID.to_owned(),
            assertion_id: format!("_a{}", uuid::Uuid::new_v4().simple()),
            class_ref: "STORK-QAA-Level-3".to_owned(),
            not_on_or_after: Utc::now() + Duration::minutes(5),
            name_id: "transient-4711".to_owned(),
            attributes: vec![
                (BPK2.to_owned(), "bpk2-erika-mustermann".to_owned()),
                (GIVEN_NAME.to_owned(), "Erika".to_owned()),
                (SURNAME.to_owned(), "Mustermann".to_owned()),
                (BIRTHDATE.to_owned(), "1964-08-12".to_owned()),
            ],
            status: None,
        }
    }

    /// The assertion, unsigned, declaring its own namespaces so it can be moved and stay signed.
    pub fn assertion(&self) -> String {
        let now = instant(Utc::now());
        let end = instant(self.not_on_or_after);
        let attributes: String = self
            .attributes
            .iter()
            .map(|(name, value)| {
                format!(
                    r#"<saml:Attribute Name="{name}" NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:uri"><saml:AttributeValue>{value}</saml:AttributeValue></saml:Attribute>"#
                )
            })
            .collect();
        format!(
            r#"<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{id}" Version="2.0" IssueInstant="{now}"><saml:Issuer>{issuer}</saml:Issuer>{signature}<saml:Subject><saml:NameID Format="urn:oasis:names:tc:SAML:2.0:nameid-format:transient">{name_id}</saml:NameID><saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"><saml:SubjectConfirmationData InResponseTo="{irt}" NotOnOrAfter="{end}" Recipient="{recipient}"/></saml:SubjectConfirmation></saml:Subject><saml:Conditions NotBefore="{now}" NotOnOrAfter="{end}"><saml:AudienceRestriction><saml:Audience>{audience}</saml:Audience></saml:AudienceRestriction></saml:Conditions><saml:AuthnStatement AuthnInstant="{now}"><saml:AuthnContext><saml:AuthnContextClassRef>{class_ref}</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement><saml:AttributeStatement>{attributes}</saml:AttributeStatement></saml:Assertion>"#,
            id = self.assertion_id,
            issuer = self.issuer,
            signature = "{signature}",
            name_id = self.name_id,
            irt = self.in_response_to,
            recipient = self.recipient,
            audience = self.audience,
            class_ref = self.class_ref,
        )
    }

    /// A Response around `inner` (an assertion, an encrypted one, or nothing); `{signature}` marks
    /// where a signature template goes.
    pub fn response(&self, response_id: &str, inner: &str) -> String {
        let status = self.status.map_or_else(
            || r#"<samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/>"#.to_owned(),
            |sub| {
                format!(
                    r#"<samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Responder"><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:{sub}"/></samlp:StatusCode>"#
                )
            },
        );
        format!(
            r#"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{response_id}" Version="2.0" IssueInstant="{now}" Destination="{destination}" InResponseTo="{irt}"><saml:Issuer>{issuer}</saml:Issuer>{{signature}}<samlp:Status>{status}</samlp:Status>{inner}</samlp:Response>"#,
            now = instant(Utc::now()),
            destination = self.destination,
            irt = self.in_response_to,
            issuer = self.issuer,
        )
    }

    /// The honest Response: the assertion encrypted to pforte's key with AES-128-GCM and RSA-OAEP,
    /// the Response signed by the IdP.
    pub fn signed_encrypted(&self) -> String {
        let encrypted = encrypt(&self.assertion().replace("{signature}", ""), GCM);
        sign(&self.response("_r1", &encrypted), "_r1", &keys().idp.key)
    }
}

pub const GCM: &str = "http://www.w3.org/2009/xmlenc11#aes128-gcm";
pub const CBC: &str = "http://www.w3.org/2001/04/xmlenc#aes128-cbc";

pub fn instant(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Puts a signature template over the element with `id` at the document's `{signature}` mark and
/// lets libxmlsec1 sign it with `key` (RSA-SHA256, exclusive c14n, enveloped).
pub fn sign(xml: &str, id: &str, key: &PKey<Private>) -> String {
    let template = format!(
        r##"<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/><ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/><ds:Reference URI="#{id}"><ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/><ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue></ds:DigestValue></ds:Reference></ds:SignedInfo><ds:SignatureValue></ds:SignatureValue></ds:Signature>"##
    );
    let with_template = xml.replacen("{signature}", &template, 1).replace("{signature}", "");
    let signed = Crypto::sign_xml(with_template, &key.private_key_to_der().expect("der")).expect("xmlsec signs");
    without_declaration(&signed)
}

/// libxml writes an XML declaration; a signed assertion is embedded in a Response without it.
fn without_declaration(xml: &str) -> String {
    let trimmed = xml.trim_start();
    match trimmed.strip_prefix("<?xml") {
        Some(rest) => rest.split_once("?>").map(|(_, body)| body.trim().to_owned()).unwrap_or_default(),
        None => trimmed.to_owned(),
    }
}

/// `<saml:EncryptedAssertion>` of `assertion`: a fresh AES-128 key for `method` (GCM or CBC), wrapped
/// for pforte's certificate with RSA-OAEP (MGF1-SHA1).
pub fn encrypt(assertion: &str, method: &str) -> String {
    encrypt_with(assertion, method, "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p")
}

pub fn encrypt_with(assertion: &str, method: &str, key_method: &str) -> String {
    let mut content_key = [0u8; 16];
    openssl::rand::rand_bytes(&mut content_key).expect("rand");
    let content = if method == GCM {
        let mut iv = [0u8; 12];
        openssl::rand::rand_bytes(&mut iv).expect("rand");
        let mut tag = [0u8; 16];
        let ciphertext = openssl::symm::encrypt_aead(
            openssl::symm::Cipher::aes_128_gcm(),
            &content_key,
            Some(&iv),
            &[],
            assertion.as_bytes(),
            &mut tag,
        )
        .expect("gcm");
        [iv.as_slice(), &ciphertext, &tag].concat()
    } else {
        let mut iv = [0u8; 16];
        openssl::rand::rand_bytes(&mut iv).expect("rand");
        let ciphertext =
            openssl::symm::encrypt(openssl::symm::Cipher::aes_128_cbc(), &content_key, Some(&iv), assertion.as_bytes())
                .expect("cbc");
        [iv.as_slice(), &ciphertext].concat()
    };
    let rsa = keys().sp.cert.public_key().expect("key").rsa().expect("rsa");
    let padding = if key_method.ends_with("rsa-1_5") { Padding::PKCS1 } else { Padding::PKCS1_OAEP };
    let mut wrapped = vec![0u8; rsa.size() as usize];
    let length = rsa.public_encrypt(&content_key, &mut wrapped, padding).expect("wrap");
    wrapped.truncate(length);
    format!(
        r#"<saml:EncryptedAssertion><xenc:EncryptedData xmlns:xenc="http://www.w3.org/2001/04/xmlenc#" Type="http://www.w3.org/2001/04/xmlenc#Element"><xenc:EncryptionMethod Algorithm="{method}"/><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><xenc:EncryptedKey><xenc:EncryptionMethod Algorithm="{key_method}"/><xenc:CipherData><xenc:CipherValue>{key}</xenc:CipherValue></xenc:CipherData></xenc:EncryptedKey></ds:KeyInfo><xenc:CipherData><xenc:CipherValue>{value}</xenc:CipherValue></xenc:CipherData></xenc:EncryptedData></saml:EncryptedAssertion>"#,
        key = STANDARD.encode(wrapped),
        value = STANDARD.encode(content),
    )
}

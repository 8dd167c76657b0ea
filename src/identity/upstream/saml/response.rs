//! Checks a SAML Response posted to pforte's AssertionConsumerService, as a careful relying party
//! does, and returns the one assertion it consumed. The signature is verified by libxmlsec1 (through
//! samael), which hands back only what a valid signature covers; everything read afterwards is read
//! from that signed content, so a second assertion, a moved signature or unsigned siblings cannot
//! speak for the IdP. Around it, pforte's own checks: size, no DTD, no comments (they split a NameID or
//! attribute value without breaking the signature), exactly one assertion, InResponseTo, Destination,
//! Recipient, Audience, Issuer, time conditions with a small skew, encryption algorithms.

use std::collections::BTreeMap;

use base64::Engine;
use chrono::{DateTime, TimeDelta, Utc};
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use samael::crypto::{AllowedSignatureAlgorithm, CertificateDer, Crypto, CryptoProvider, ReduceMode};
use samael::schema::{Assertion, Response};

use super::encrypted::{self, EncryptedParts};
use super::logout::{name_id_qualifiers, SamlSession};
use crate::registry::saml_metadata::IdpMetadata;
use crate::registry::saml_metadata::{refuse_unsafe_xml, AES_CBC_METHODS};

/// A Response larger than this (base64 as posted) is refused before decoding: BundID's responses with
/// all attributes are some ten kilobytes; the limit stays below the body limit of every request.
pub const MAX_RESPONSE_BASE64_BYTES: usize = 192 * 1024;
/// How far the IdP's clock may be off pforte's.
pub(super) const CLOCK_SKEW: TimeDelta = TimeDelta::seconds(60);

const NS_PROTOCOL: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
const NS_ASSERTION: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
const STATUS_SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
const BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";
/// Key transport: RSA-OAEP only; RSA PKCS#1 v1.5 is open to Bleichenbacher's attack.
const RSA_OAEP: &str = "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p";
const AES_GCM: &[&str] = &["http://www.w3.org/2009/xmlenc11#aes128-gcm"];
/// SHA-1 and DSA stay out; ECDSA and RSA with SHA-2 are what IdPs sign with.
const ALLOWED_SIGNATURES: &[AllowedSignatureAlgorithm] = &[
    AllowedSignatureAlgorithm::RsaSha256,
    AllowedSignatureAlgorithm::RsaSha384,
    AllowedSignatureAlgorithm::RsaSha512,
    AllowedSignatureAlgorithm::EcdsaSha256,
    AllowedSignatureAlgorithm::EcdsaSha384,
    AllowedSignatureAlgorithm::EcdsaSha512,
];

/// What the Response must match: the request pforte sent and stored, and pforte's own names.
pub(super) struct Expected<'a> {
    pub request_id: &'a str,
    pub acs_url: &'a str,
    pub sp_entity_id: &'a str,
    pub now: DateTime<Utc>,
}

/// The consumed assertion, checked.
#[derive(Debug)]
pub(super) struct CheckedAssertion {
    pub id: String,
    /// Until when the assertion could be presented at all: its id is remembered that long.
    pub valid_until: DateTime<Utc>,
    /// `AuthnContextClassRef`, when the AuthnStatement names one.
    pub class_ref: Option<String>,
    pub authn_instant: Option<DateTime<Utc>>,
    /// Attribute `Name` → its values.
    pub attributes: BTreeMap<String, Vec<String>>,
    /// The NameID and SessionIndex a LogoutRequest for this login names; `None` without a NameID.
    pub session: Option<SamlSession>,
}

/// Why a Response was not taken. The text names the check, never a value from the Response.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Refusal {
    /// The IdP answered with an error status: the person cancelled, was refused, or could not
    /// reach the level (`RequestDenied`, `AuthnFailed`, `NoAuthnContext`, ...).
    Status(String),
    Invalid(String),
}

fn invalid(reason: impl Into<String>) -> Refusal {
    Refusal::Invalid(reason.into())
}

/// Checks a base64 Response as posted and returns its one assertion.
pub(super) fn check(
    posted: &str,
    metadata: &IdpMetadata,
    decryption_key: &openssl::pkey::PKey<openssl::pkey::Private>,
    expected: &Expected<'_>,
) -> Result<CheckedAssertion, Refusal> {
    if posted.len() > MAX_RESPONSE_BASE64_BYTES {
        return Err(invalid(format!("the SAML Response is larger than {MAX_RESPONSE_BASE64_BYTES} bytes")));
    }
    let compact: String = posted.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|_| invalid("the SAMLResponse is not base64"))?;
    let xml = String::from_utf8(bytes).map_err(|_| invalid("the SAML Response is not UTF-8"))?;
    refuse_unsafe_xml(&xml, MAX_RESPONSE_BASE64_BYTES)
        .map_err(|reason| invalid(format!("the SAML Response {reason}")))?;
    let shape = Shape::read(&xml)?;

    // An error status carries no assertion; it still has to answer pforte's request, at pforte's ACS.
    if shape.status.first().map(String::as_str) != Some(STATUS_SUCCESS) {
        let (envelope, _) = encrypted::split(&xml)?;
        let envelope: Response = envelope.parse().map_err(|_| invalid("the SAML Response cannot be read"))?;
        check_envelope(&envelope, metadata, expected)?;
        let code = shape.status.last().cloned().unwrap_or_default();
        return Err(Refusal::Status(code.rsplit(':').next().unwrap_or_default().chars().take(64).collect()));
    }
    if shape.assertions != 1 {
        return Err(invalid(format!(
            "the SAML Response carries {} assertions; exactly one is accepted",
            shape.assertions
        )));
    }

    let certificates: Vec<CertificateDer> =
        metadata.signing_certificates.iter().map(|der| CertificateDer::from(der.clone())).collect();
    let signed = Crypto::reduce_xml_to_signed_with_allowed_algorithms(
        &xml,
        &certificates,
        ReduceMode::ValidateAndMarkNoAncestors,
        Some(ALLOWED_SIGNATURES),
    )
    .map_err(|_| invalid("the SAML Response carries no valid signature of the IdP over the assertion"))?;

    // From here on only the signed content is read.
    let (assertion, source) = match Shape::read(&signed)?.root.as_str() {
        "Response" => {
            let (envelope, encrypted) = encrypted::split(&signed)?;
            let response: Response =
                envelope.parse().map_err(|_| invalid("the signed SAML Response cannot be read"))?;
            check_envelope(&response, metadata, expected)?;
            match (response.assertion, encrypted) {
                (Some(assertion), None) => (assertion, signed),
                (None, Some(encrypted)) => decrypt(&encrypted, metadata, decryption_key)?,
                _ => return Err(invalid("the signed SAML Response carries no single assertion")),
            }
        }
        "Assertion" => {
            // Only the assertion is signed: the envelope's own claims are not the IdP's word, but an
            // envelope that contradicts pforte's request is refused all the same.
            let (envelope, encrypted) = encrypted::split(&xml)?;
            if encrypted.is_some() {
                return Err(invalid("an encrypted assertion must come in a signed Response"));
            }
            let envelope: Response = envelope.parse().map_err(|_| invalid("the SAML Response cannot be read"))?;
            check_envelope(&envelope, metadata, expected)?;
            (signed.parse().map_err(|_| invalid("the signed assertion cannot be read"))?, signed)
        }
        _ => return Err(invalid("the signature covers neither the Response nor the assertion")),
    };
    check_assertion(assertion, &source, metadata, expected)
}

/// The Response element: answers pforte's request, at pforte's ACS, from this IdP.
fn check_envelope(response: &Response, metadata: &IdpMetadata, expected: &Expected<'_>) -> Result<(), Refusal> {
    if response.version != "2.0" {
        return Err(invalid("the SAML Response is not version 2.0"));
    }
    if response.in_response_to.as_deref() != Some(expected.request_id) {
        return Err(invalid("the SAML Response does not answer the request pforte sent (InResponseTo)"));
    }
    if response.destination.as_deref() != Some(expected.acs_url) {
        return Err(invalid("the SAML Response is addressed to another Destination"));
    }
    if response.issuer.as_ref().is_some_and(|issuer| issuer.value.as_deref() != Some(metadata.entity_id.as_str())) {
        return Err(invalid("the SAML Response names another Issuer than the IdP's entityID"));
    }
    Ok(())
}

fn decrypt(
    encrypted: &EncryptedParts,
    metadata: &IdpMetadata,
    key: &openssl::pkey::PKey<openssl::pkey::Private>,
) -> Result<(Assertion, String), Refusal> {
    if encrypted.key_cipher.is_empty() || encrypted.data_cipher.is_empty() {
        return Err(invalid("the encrypted assertion has no key or no content"));
    }
    if encrypted.key_method != RSA_OAEP {
        return Err(invalid("the assertion's key is not encrypted with RSA-OAEP"));
    }
    let data_method = encrypted.data_method.as_str();
    let cbc_allowed = metadata.demands_aes_cbc() && AES_CBC_METHODS.contains(&data_method);
    if !AES_GCM.contains(&data_method) && !cbc_allowed {
        return Err(invalid(
            "the assertion is not encrypted with AES-GCM (AES-CBC only where the IdP's metadata demands it)",
        ));
    }
    let xml = encrypted.decrypt(key)?;
    // The plaintext is the IdP's too, and is held to the same rules as the Response around it.
    refuse_unsafe_xml(&xml, MAX_RESPONSE_BASE64_BYTES)
        .map_err(|reason| invalid(format!("the decrypted assertion {reason}")))?;
    if Shape::read(&xml)?.root != "Assertion" {
        return Err(invalid("the encrypted content is not an assertion"));
    }
    let assertion = xml.parse().map_err(|_| invalid("the decrypted assertion cannot be read"))?;
    Ok((assertion, xml))
}

fn check_assertion(
    assertion: Assertion,
    source: &str,
    metadata: &IdpMetadata,
    expected: &Expected<'_>,
) -> Result<CheckedAssertion, Refusal> {
    let now = expected.now;
    if assertion.issuer.value.as_deref() != Some(metadata.entity_id.as_str()) {
        return Err(invalid("the assertion names another Issuer than the IdP's entityID"));
    }
    let conditions = assertion.conditions.as_ref().ok_or_else(|| invalid("the assertion has no Conditions"))?;
    if conditions.not_before.is_some_and(|not_before| now + CLOCK_SKEW < not_before) {
        return Err(invalid("the assertion is not valid yet (NotBefore)"));
    }
    let not_on_or_after =
        conditions.not_on_or_after.ok_or_else(|| invalid("the assertion's Conditions have no NotOnOrAfter"))?;
    if not_on_or_after + CLOCK_SKEW <= now {
        return Err(invalid("the assertion has expired (NotOnOrAfter)"));
    }
    let audiences: Vec<&String> =
        conditions.audience_restrictions.iter().flatten().flat_map(|restriction| restriction.audience.iter()).collect();
    if audiences.is_empty() || audiences.iter().any(|audience| audience.as_str() != expected.sp_entity_id) {
        return Err(invalid("the assertion is not restricted to pforte's entityID (Audience)"));
    }
    let subject = assertion.subject.as_ref().ok_or_else(|| invalid("the assertion has no Subject"))?;
    let confirmed = subject.subject_confirmations.iter().flatten().any(|confirmation| {
        let Some(data) = confirmation.subject_confirmation_data.as_ref() else { return false };
        confirmation.method.as_deref() == Some(BEARER)
            && data.recipient.as_deref() == Some(expected.acs_url)
            && data.in_response_to.as_deref() == Some(expected.request_id)
            && data.not_on_or_after.is_some_and(|end| now < end + CLOCK_SKEW)
            && data.not_before.is_none_or(|start| start <= now + CLOCK_SKEW)
    });
    if !confirmed {
        return Err(invalid(
            "the assertion's bearer SubjectConfirmation does not match (Recipient, InResponseTo, NotOnOrAfter)",
        ));
    }
    let statements = assertion.authn_statements.as_deref().unwrap_or_default();
    let [statement] = statements else {
        return Err(invalid("the assertion carries no single AuthnStatement"));
    };
    let class_ref = statement
        .authn_context
        .as_ref()
        .and_then(|context| context.value.as_ref())
        .and_then(|class_ref| class_ref.value.clone())
        .map(|value| value.trim().to_owned());
    let mut attributes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for attribute in assertion.attribute_statements.iter().flatten().flat_map(|s| s.attributes.iter()) {
        let Some(name) = attribute.name.clone() else { continue };
        let values = attribute.values.iter().filter_map(|value| value.value.clone());
        attributes.entry(name).or_default().extend(values);
    }
    let session = subject.name_id.as_ref().map(|name_id| {
        let (name_qualifier, sp_name_qualifier) = name_id_qualifiers(source);
        SamlSession {
            name_id: name_id.value.clone(),
            format: name_id.format.clone(),
            name_qualifier,
            sp_name_qualifier,
            session_index: statement.session_index.clone(),
        }
    });
    Ok(CheckedAssertion {
        session,
        id: assertion.id,
        valid_until: not_on_or_after + CLOCK_SKEW,
        class_ref,
        authn_instant: statement.authn_instant,
        attributes,
    })
}

/// What pforte reads of a document before trusting any of it: the root element, how many assertions
/// (plain or encrypted) there are anywhere, the status codes in order, and no comments.
pub(super) struct Shape {
    pub root: String,
    pub assertions: usize,
    pub status: Vec<String>,
}

impl Shape {
    pub(super) fn read(xml: &str) -> Result<Shape, Refusal> {
        let mut reader = quick_xml::NsReader::from_str(xml);
        let mut shape = Shape { root: String::new(), assertions: 0, status: Vec::new() };
        loop {
            let (namespace, event) =
                reader.read_resolved_event().map_err(|_| invalid("the SAML Response is not well-formed XML"))?;
            match event {
                Event::Start(element) | Event::Empty(element) => {
                    let local = String::from_utf8_lossy(element.local_name().as_ref()).into_owned();
                    let ns = match namespace {
                        ResolveResult::Bound(ns) => String::from_utf8_lossy(ns.as_ref()).into_owned(),
                        _ => String::new(),
                    };
                    if shape.root.is_empty() {
                        shape.root = local.clone();
                    }
                    if ns == NS_ASSERTION && (local == "Assertion" || local == "EncryptedAssertion") {
                        shape.assertions += 1;
                    }
                    if ns == NS_PROTOCOL && local == "StatusCode" {
                        let value = element
                            .try_get_attribute("Value")
                            .ok()
                            .flatten()
                            // A status code is a URI: no entities to resolve.
                            .map(|value| String::from_utf8_lossy(&value.value).into_owned());
                        shape.status.push(value.unwrap_or_default());
                    }
                }
                Event::Comment(_) => return Err(invalid("the SAML Response carries an XML comment")),
                Event::PI(_) => return Err(invalid("the SAML Response carries a processing instruction")),
                Event::Eof => return Ok(shape),
                _ => {}
            }
        }
    }
}

//! SAML Single Logout messages (SAML 2.0 Core, section 3.7) over the HTTP-Redirect binding (SAML 2.0
//! Bindings, section 3.4): the LogoutRequest pforte sends for a login, the IdP's LogoutResponse read
//! back, and the query signature of both directions (section 3.4.4.1). The signature is checked over
//! the parameters exactly as they arrived (their URL encoding as the sender made it), never over a
//! re-encoding: senders encode differently, and the signature covers their bytes.

use std::collections::BTreeMap;
use std::io::Read;

use base64::Engine;
use chrono::{DateTime, Utc};
use openssl::hash::MessageDigest;
use quick_xml::events::{BytesEnd, BytesStart, Event};
use quick_xml::Writer;
use serde::{Deserialize, Serialize};

use super::request::{element_with_text, protocol_message, NS_ASSERTION};
use super::response::{Refusal, Shape};
use crate::registry::saml_metadata::refuse_unsafe_xml;

pub(super) const STATUS_SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
/// A logout message inflated beyond this is refused: a LogoutResponse is well under a kilobyte, and
/// the cap stops a DEFLATE bomb.
const MAX_LOGOUT_XML_BYTES: usize = 64 * 1024;
/// A query longer than this is refused before anything is decoded.
const MAX_QUERY_BYTES: usize = 32 * 1024;

/// What pforte keeps of a SAML login so it can ask the IdP to end that session: the NameID as
/// received (with its qualifiers) and the AuthnStatement's SessionIndex. Personal data (a NameID may
/// be persistent): held only sealed under the master key, until used or the level's session limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SamlSession {
    pub name_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_qualifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sp_name_qualifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_index: Option<String>,
}

/// The LogoutRequest for one login.
pub(super) struct LogoutRequest<'a> {
    pub id: &'a str,
    pub issue_instant: DateTime<Utc>,
    pub destination: &'a str,
    /// pforte's entityID.
    pub issuer: &'a str,
    pub session: &'a SamlSession,
}

impl LogoutRequest<'_> {
    pub(super) fn to_xml(&self) -> Result<String, String> {
        self.write().map_err(|e| format!("the LogoutRequest cannot be written: {e}"))
    }

    fn write(&self) -> Result<String, std::io::Error> {
        let mut writer = Writer::new(Vec::new());
        let root = protocol_message(&mut writer, "samlp:LogoutRequest", self.id, self.issue_instant, self.destination)?;
        writer.write_event(Event::Start(root))?;
        element_with_text(&mut writer, BytesStart::new("saml:Issuer"), self.issuer)?;
        // The NameID exactly as the assertion carried it (SAML 2.0 Core, section 3.7.1).
        let session = self.session;
        let mut name_id = BytesStart::new("saml:NameID");
        for (name, value) in [
            ("Format", &session.format),
            ("NameQualifier", &session.name_qualifier),
            ("SPNameQualifier", &session.sp_name_qualifier),
        ] {
            if let Some(value) = value {
                name_id.push_attribute((name, value.as_str()));
            }
        }
        element_with_text(&mut writer, name_id, &session.name_id)?;
        if let Some(index) = &session.session_index {
            element_with_text(&mut writer, BytesStart::new("samlp:SessionIndex"), index)?;
        }
        writer.write_event(Event::End(BytesEnd::new("samlp:LogoutRequest")))?;
        Ok(String::from_utf8_lossy(&writer.into_inner()).into_owned())
    }
}

/// A redirect-binding message whose query signature verified, inflated.
#[derive(Debug)]
pub(super) struct Received {
    pub xml: String,
    /// The RelayState as the sender meant it (decoded), to be sent back with the answer.
    pub relay_state: Option<String>,
}

fn invalid(reason: impl Into<String>) -> Refusal {
    Refusal::Invalid(reason.into())
}

/// Checks the HTTP-Redirect binding's signature over `raw_query` (as it arrived, still URL-encoded)
/// with the IdP's pinned certificates, and inflates the message in `parameter` (`SAMLResponse` or
/// `SAMLRequest`). An unsigned message is refused: SAML Bindings 3.4.4.1 lets the signature stand in
/// for the XML signature, and pforte takes no logout message on nobody's word.
pub(super) fn receive(raw_query: &str, parameter: &str, certificates: &[Vec<u8>]) -> Result<Received, Refusal> {
    if raw_query.len() > MAX_QUERY_BYTES {
        return Err(invalid(format!("the logout message's query is longer than {MAX_QUERY_BYTES} bytes")));
    }
    let mut raw: BTreeMap<&str, &str> = BTreeMap::new();
    for pair in raw_query.split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if raw.insert(name, value).is_some() {
            return Err(invalid("the logout message's query names a parameter twice"));
        }
    }
    let message = raw.get(parameter).ok_or_else(|| invalid(format!("the query carries no {parameter}")))?;
    let (Some(sig_alg), Some(signature)) = (raw.get("SigAlg"), raw.get("Signature")) else {
        return Err(invalid("the logout message is not signed (SigAlg, Signature)"));
    };
    // SAML Bindings 3.4.4.1: `SAMLx=…&RelayState=…&SigAlg=…`, each value as it was sent.
    let mut signed = format!("{parameter}={message}");
    if let Some(relay_state) = raw.get("RelayState") {
        signed.push_str(&format!("&RelayState={relay_state}"));
    }
    signed.push_str(&format!("&SigAlg={sig_alg}"));
    let digest =
        match decode_component(sig_alg).as_str() {
            "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
            | "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256" => MessageDigest::sha256(),
            "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384"
            | "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384" => MessageDigest::sha384(),
            "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512"
            | "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512" => MessageDigest::sha512(),
            // SHA-1 and DSA stay out, as for XML signatures.
            _ => return Err(invalid("the logout message is signed with an algorithm pforte does not accept")),
        };
    let signature = base64::engine::general_purpose::STANDARD
        .decode(decode_component(signature))
        .map_err(|_| invalid("the logout message's Signature is not base64"))?;
    let verified = certificates.iter().any(|der| {
        let Ok(key) = openssl::x509::X509::from_der(der).and_then(|cert| cert.public_key()) else { return false };
        let Ok(mut verifier) = openssl::sign::Verifier::new(digest, &key) else { return false };
        verifier.update(signed.as_bytes()).is_ok() && verifier.verify(&signature).unwrap_or(false)
    });
    if !verified {
        return Err(invalid("the logout message carries no valid signature of the IdP"));
    }
    let deflated = base64::engine::general_purpose::STANDARD
        .decode(decode_component(message).chars().filter(|c| !c.is_ascii_whitespace()).collect::<String>())
        .map_err(|_| invalid(format!("the {parameter} is not base64")))?;
    let mut inflated = Vec::new();
    flate2::read::DeflateDecoder::new(deflated.as_slice())
        .take(MAX_LOGOUT_XML_BYTES as u64 + 1)
        .read_to_end(&mut inflated)
        .map_err(|_| invalid(format!("the {parameter} is not DEFLATE-compressed")))?;
    let xml = String::from_utf8(inflated).map_err(|_| invalid("the logout message is not UTF-8"))?;
    refuse_unsafe_xml(&xml, MAX_LOGOUT_XML_BYTES).map_err(|reason| invalid(format!("the logout message {reason}")))?;
    Ok(Received { xml, relay_state: raw.get("RelayState").map(|raw| decode_component(raw)) })
}

/// One query component, percent- and plus-decoded.
fn decode_component(raw: &str) -> String {
    let field = format!("v={raw}");
    url::form_urlencoded::parse(field.as_bytes()).next().map(|(_, value)| value.into_owned()).unwrap_or_default()
}

/// What a LogoutResponse says.
#[derive(Debug)]
pub(super) struct ReadLogoutResponse {
    pub in_response_to: Option<String>,
    pub destination: Option<String>,
    pub issuer: Option<String>,
    /// The top-level status code.
    pub status: String,
}

pub(super) fn read_logout_response(xml: &str) -> Result<ReadLogoutResponse, Refusal> {
    let shape = Shape::read(xml)?;
    if shape.root != "LogoutResponse" || shape.assertions != 0 {
        return Err(invalid("the SAMLResponse is not a LogoutResponse"));
    }
    let response: samael::schema::LogoutResponse =
        xml.parse().map_err(|_| invalid("the LogoutResponse cannot be read"))?;
    if response.version.as_deref() != Some("2.0") {
        return Err(invalid("the LogoutResponse is not version 2.0"));
    }
    Ok(ReadLogoutResponse {
        in_response_to: response.in_response_to,
        destination: response.destination,
        issuer: response.issuer.and_then(|issuer| issuer.value),
        status: shape.status.first().cloned().unwrap_or_default(),
    })
}

/// What an IdP's LogoutRequest says that pforte checks.
#[derive(Debug)]
pub(super) struct ReadLogoutRequest {
    pub id: String,
    pub destination: Option<String>,
    pub issuer: Option<String>,
    pub not_on_or_after: Option<DateTime<Utc>>,
}

pub(super) fn read_logout_request(xml: &str) -> Result<ReadLogoutRequest, Refusal> {
    let shape = Shape::read(xml)?;
    if shape.root != "LogoutRequest" || shape.assertions != 0 {
        return Err(invalid("the SAMLRequest is not a LogoutRequest"));
    }
    let mut reader = quick_xml::NsReader::from_str(xml);
    let mut read = ReadLogoutRequest { id: String::new(), destination: None, issuer: None, not_on_or_after: None };
    let (mut depth, mut in_issuer, mut version) = (0usize, false, None);
    loop {
        let (ns, event) = reader.read_resolved_event().map_err(|_| invalid("the LogoutRequest is not well-formed"))?;
        let in_assertion_ns =
            matches!(ns, quick_xml::name::ResolveResult::Bound(ns) if ns.as_ref() == NS_ASSERTION.as_bytes());
        match event {
            Event::Start(element) | Event::Empty(element) if depth == 0 => {
                let attribute = |name: &str| {
                    element.try_get_attribute(name).ok().flatten().and_then(|a| {
                        a.normalized_value(quick_xml::XmlVersion::Implicit1_0).ok().map(|v| v.into_owned())
                    })
                };
                read.id = attribute("ID").unwrap_or_default();
                read.destination = attribute("Destination");
                version = attribute("Version");
                read.not_on_or_after = attribute("NotOnOrAfter")
                    .map(|at| at.parse().map_err(|_| invalid("the LogoutRequest's NotOnOrAfter is no time")))
                    .transpose()?;
                depth += 1;
            }
            Event::Start(element) => {
                in_issuer = depth == 1 && in_assertion_ns && element.local_name().as_ref() == b"Issuer";
                depth += 1;
            }
            Event::Text(text) if in_issuer => {
                let text = text.decode().map_err(|_| invalid("the LogoutRequest's Issuer is not text"))?;
                read.issuer.get_or_insert_with(String::new).push_str(text.trim());
            }
            Event::GeneralRef(_) if in_issuer => return Err(invalid("the LogoutRequest's Issuer carries an entity")),
            Event::End(_) => {
                in_issuer = false;
                depth = depth.saturating_sub(1);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if version.as_deref() != Some("2.0") || read.id.is_empty() {
        return Err(invalid("the LogoutRequest is not version 2.0 with an ID"));
    }
    Ok(read)
}

/// The LogoutResponse pforte answers an IdP's LogoutRequest with.
pub(super) fn logout_response_xml(
    id: &str,
    in_response_to: &str,
    issue_instant: DateTime<Utc>,
    destination: &str,
    issuer: &str,
) -> Result<String, String> {
    let write = || -> Result<String, std::io::Error> {
        let mut writer = Writer::new(Vec::new());
        let mut root = protocol_message(&mut writer, "samlp:LogoutResponse", id, issue_instant, destination)?;
        root.push_attribute(("InResponseTo", in_response_to));
        writer.write_event(Event::Start(root))?;
        element_with_text(&mut writer, BytesStart::new("saml:Issuer"), issuer)?;
        writer.write_event(Event::Start(BytesStart::new("samlp:Status")))?;
        let mut code = BytesStart::new("samlp:StatusCode");
        code.push_attribute(("Value", STATUS_SUCCESS));
        writer.write_event(Event::Empty(code))?;
        writer.write_event(Event::End(BytesEnd::new("samlp:Status")))?;
        writer.write_event(Event::End(BytesEnd::new("samlp:LogoutResponse")))?;
        Ok(String::from_utf8_lossy(&writer.into_inner()).into_owned())
    };
    write().map_err(|e| format!("the LogoutResponse cannot be written: {e}"))
}

/// The Subject's NameID of the one assertion in `xml`, with the attributes samael does not read.
pub(super) fn name_id_qualifiers(xml: &str) -> (Option<String>, Option<String>) {
    let mut reader = quick_xml::NsReader::from_str(xml);
    let mut in_subject = false;
    loop {
        match reader.read_resolved_event() {
            Ok((ns, Event::Start(element) | Event::Empty(element))) => {
                let in_assertion_ns =
                    matches!(ns, quick_xml::name::ResolveResult::Bound(ns) if ns.as_ref() == NS_ASSERTION.as_bytes());
                let local = element.local_name();
                if in_assertion_ns && local.as_ref() == b"Subject" {
                    in_subject = true;
                } else if in_subject && in_assertion_ns && local.as_ref() == b"NameID" {
                    let attribute = |name: &str| {
                        element.try_get_attribute(name).ok().flatten().and_then(|a| {
                            a.normalized_value(quick_xml::XmlVersion::Implicit1_0).ok().map(|v| v.into_owned())
                        })
                    };
                    return (attribute("NameQualifier"), attribute("SPNameQualifier"));
                }
            }
            Ok((_, Event::Eof)) | Err(_) => return (None, None),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> SamlSession {
        SamlSession {
            name_id: "a&b".into(),
            format: Some("urn:oasis:names:tc:SAML:2.0:nameid-format:transient".into()),
            name_qualifier: Some("https://idp.example".into()),
            sp_name_qualifier: None,
            session_index: Some("_s1".into()),
        }
    }

    #[test]
    fn the_request_carries_the_name_id_as_received_and_the_session_index() -> Result<(), String> {
        let session = session();
        let xml = LogoutRequest {
            id: "_l1",
            issue_instant: DateTime::UNIX_EPOCH,
            destination: "https://idp.example/slo",
            issuer: "https://pforte.example/saml/x",
            session: &session,
        }
        .to_xml()?;
        assert!(xml.contains(
            r#"<saml:NameID Format="urn:oasis:names:tc:SAML:2.0:nameid-format:transient" NameQualifier="https://idp.example">a&amp;b</saml:NameID><samlp:SessionIndex>_s1</samlp:SessionIndex>"#
        ), "{xml}");
        assert!(xml.contains(r#"Destination="https://idp.example/slo""#));
        Ok(())
    }

    #[test]
    fn a_query_naming_a_parameter_twice_or_unsigned_is_refused() {
        assert!(receive("SAMLResponse=a&SAMLResponse=b&SigAlg=x&Signature=y", "SAMLResponse", &[]).is_err());
        assert!(receive("SAMLResponse=a", "SAMLResponse", &[]).is_err());
        assert!(receive(
            "SAMLResponse=a&SigAlg=http%3A%2F%2Fwww.w3.org%2F2000%2F09%2Fxmldsig%23rsa-sha1&Signature=eQ%3D%3D",
            "SAMLResponse",
            &[]
        )
        .is_err());
    }

    #[test]
    fn an_idp_logout_request_is_read_with_its_issuer_and_destination() {
        let xml = r#"<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_x" Version="2.0" Destination="https://sp/slo" NotOnOrAfter="2026-01-01T00:00:00Z"><saml:Issuer>https://idp</saml:Issuer><saml:NameID>n</saml:NameID></samlp:LogoutRequest>"#;
        let read = read_logout_request(xml).expect("readable");
        assert_eq!(
            (read.id.as_str(), read.issuer.as_deref(), read.destination.as_deref()),
            ("_x", Some("https://idp"), Some("https://sp/slo"))
        );
        assert!(read.not_on_or_after.is_some());
        assert!(read_logout_request(&xml.replace(r#"Version="2.0""#, r#"Version="1.1""#)).is_err());
        assert!(read_logout_request(&xml.replace("<saml:NameID>", "<!-- c --><saml:NameID>")).is_err(), "no comments");
    }

    #[test]
    fn the_name_id_qualifiers_are_read_from_the_subject() {
        let xml = r#"<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion"><saml:Subject><saml:NameID NameQualifier="q&amp;1" SPNameQualifier="sp">n</saml:NameID></saml:Subject></saml:Assertion>"#;
        assert_eq!(name_id_qualifiers(xml), (Some("q&1".into()), Some("sp".into())));
    }
}

//! The AuthnRequest pforte sends (SAML 2.0 Core, section 3.4.1) and its HTTP-Redirect binding
//! (SAML 2.0 Bindings, section 3.4: DEFLATE, base64, signed query string).

use std::io::Write;

use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use flate2::write::DeflateEncoder;
use flate2::Compression;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::Writer;
use url::Url;

use crate::registry::saml_metadata::BINDING_POST;
use crate::registry::AkdbExtension;

const NS_PROTOCOL: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
pub(super) const NS_ASSERTION: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
const NS_AKDB: &str = "https://www.akdb.de/request/2018/09";
const NS_CLASSIC_UI: &str = "https://www.akdb.de/request/2018/09/classic-ui/v1";

/// What goes into one AuthnRequest.
pub(super) struct AuthnRequest<'a> {
    pub id: &'a str,
    pub issue_instant: DateTime<Utc>,
    pub destination: &'a str,
    pub acs_url: &'a str,
    /// pforte's entityID.
    pub issuer: &'a str,
    /// Asked for with `Comparison="minimum"`: the IdP may prove more, never less.
    pub authn_context_class_ref: Option<&'a str>,
    pub akdb: Option<&'a AkdbExtension>,
}

impl AuthnRequest<'_> {
    /// The request as XML. `ForceAuthn="true"`: no single sign-on across online services, as BundID
    /// requires for privacy, and every login proves its level anew.
    pub(super) fn to_xml(&self) -> Result<String, String> {
        self.write().map_err(|e| format!("the AuthnRequest cannot be written: {e}"))
    }

    fn write(&self) -> Result<String, std::io::Error> {
        let mut writer = Writer::new(Vec::new());
        let mut root =
            protocol_message(&mut writer, "samlp:AuthnRequest", self.id, self.issue_instant, self.destination)?;
        root.push_attribute(("ForceAuthn", "true"));
        root.push_attribute(("ProtocolBinding", BINDING_POST));
        root.push_attribute(("AssertionConsumerServiceURL", self.acs_url));
        writer.write_event(Event::Start(root))?;
        text_element(&mut writer, "saml:Issuer", self.issuer)?;
        if let Some(akdb) = self.akdb {
            writer.write_event(Event::Start(BytesStart::new("samlp:Extensions")))?;
            write_akdb(&mut writer, akdb)?;
            writer.write_event(Event::End(BytesEnd::new("samlp:Extensions")))?;
        }
        if let Some(class_ref) = self.authn_context_class_ref {
            let mut context = BytesStart::new("samlp:RequestedAuthnContext");
            context.push_attribute(("Comparison", "minimum"));
            writer.write_event(Event::Start(context))?;
            text_element(&mut writer, "saml:AuthnContextClassRef", class_ref)?;
            writer.write_event(Event::End(BytesEnd::new("samlp:RequestedAuthnContext")))?;
        }
        writer.write_event(Event::End(BytesEnd::new("samlp:AuthnRequest")))?;
        // Everything written came from Rust strings, so the bytes are UTF-8.
        Ok(String::from_utf8_lossy(&writer.into_inner()).into_owned())
    }
}

/// `akdb:AuthenticationRequest` version 2: allowed login methods, requested attributes (required or
/// optional) and what BundID shows the person (organisation, language, back link, online service id).
fn write_akdb(writer: &mut Writer<Vec<u8>>, akdb: &AkdbExtension) -> Result<(), std::io::Error> {
    let mut root = BytesStart::new("akdb:AuthenticationRequest");
    root.push_attribute(("xmlns:akdb", NS_AKDB));
    root.push_attribute(("Version", "2"));
    writer.write_event(Event::Start(root))?;
    if !akdb.authn_methods.is_empty() {
        writer.write_event(Event::Start(BytesStart::new("akdb:AuthnMethods")))?;
        for method in &akdb.authn_methods {
            let element = format!("akdb:{method}");
            writer.write_event(Event::Start(BytesStart::new(element.as_str())))?;
            text_element(writer, "akdb:Enabled", "true")?;
            writer.write_event(Event::End(BytesEnd::new(element.as_str())))?;
        }
        writer.write_event(Event::End(BytesEnd::new("akdb:AuthnMethods")))?;
    }
    if !akdb.requested_attributes.is_empty() {
        writer.write_event(Event::Start(BytesStart::new("akdb:RequestedAttributes")))?;
        for (name, required) in &akdb.requested_attributes {
            let mut attribute = BytesStart::new("akdb:RequestedAttribute");
            attribute.push_attribute(("Name", name.as_str()));
            attribute.push_attribute(("RequiredAttribute", if *required { "true" } else { "false" }));
            writer.write_event(Event::Empty(attribute))?;
        }
        writer.write_event(Event::End(BytesEnd::new("akdb:RequestedAttributes")))?;
    }
    writer.write_event(Event::Start(BytesStart::new("akdb:DisplayInformation")))?;
    let mut version = BytesStart::new("classic-ui:Version");
    version.push_attribute(("xmlns:classic-ui", NS_CLASSIC_UI));
    writer.write_event(Event::Start(version))?;
    text_element(writer, "classic-ui:OrganizationDisplayName", &akdb.organization_display_name)?;
    text_element(writer, "classic-ui:OnlineServiceId", &akdb.online_service_id)?;
    text_element(writer, "classic-ui:Lang", &akdb.lang)?;
    if let Some(back) = &akdb.back_url {
        text_element(writer, "classic-ui:BackURL", back.as_str())?;
    }
    writer.write_event(Event::End(BytesEnd::new("classic-ui:Version")))?;
    writer.write_event(Event::End(BytesEnd::new("akdb:DisplayInformation")))?;
    writer.write_event(Event::End(BytesEnd::new("akdb:AuthenticationRequest")))?;
    Ok(())
}

fn text_element(writer: &mut Writer<Vec<u8>>, name: &str, text: &str) -> Result<(), std::io::Error> {
    element_with_text(writer, BytesStart::new(name), text)
}

/// `start` (with its attributes), `text`, and the matching end tag.
pub(super) fn element_with_text(
    writer: &mut Writer<Vec<u8>>,
    start: BytesStart<'_>,
    text: &str,
) -> Result<(), std::io::Error> {
    let end = BytesEnd::new(String::from_utf8_lossy(start.name().as_ref()).into_owned());
    writer.write_event(Event::Start(start))?;
    writer.write_event(Event::Text(BytesText::new(text)))?;
    writer.write_event(Event::End(end))?;
    Ok(())
}

/// Writes the XML declaration and returns the root element every SAML protocol message pforte sends
/// starts with (namespaces, `ID`, `Version`, `IssueInstant`, `Destination`), for the caller to add
/// its own attributes to and write.
pub(super) fn protocol_message<'a>(
    writer: &mut Writer<Vec<u8>>,
    name: &'a str,
    id: &str,
    issue_instant: DateTime<Utc>,
    destination: &str,
) -> Result<BytesStart<'a>, std::io::Error> {
    writer.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    let instant = issue_instant.to_rfc3339_opts(SecondsFormat::Secs, true);
    let mut root = BytesStart::new(name);
    root.push_attribute(("xmlns:samlp", NS_PROTOCOL));
    root.push_attribute(("xmlns:saml", NS_ASSERTION));
    root.push_attribute(("ID", id));
    root.push_attribute(("Version", "2.0"));
    root.push_attribute(("IssueInstant", instant.as_str()));
    root.push_attribute(("Destination", destination));
    Ok(root)
}

/// The HTTP-Redirect binding: `parameter` (`SAMLRequest` or `SAMLResponse`: DEFLATE, base64),
/// `RelayState` if any, `SigAlg` and the
/// `Signature` over exactly that query string, made by samael with pforte's signing key.
pub(super) fn redirect_url(
    endpoint: &Url,
    parameter: &str,
    xml: &str,
    relay_state: Option<&str>,
    key: &openssl::pkey::PKey<openssl::pkey::Private>,
) -> Result<Url, String> {
    // The signature covers the whole query; parameters of the endpoint's own would be signed too and
    // the IdP would then check a string it did not expect.
    if endpoint.query().is_some() {
        return Err("the IdP's endpoint location carries a query, which the HTTP-Redirect binding cannot sign".into());
    }
    let mut deflated = Vec::new();
    {
        let mut encoder = DeflateEncoder::new(&mut deflated, Compression::default());
        encoder.write_all(xml.as_bytes()).map_err(|e| format!("cannot compress the request: {e}"))?;
        encoder.finish().map_err(|e| format!("cannot compress the request: {e}"))?;
    }
    let encoded = base64::engine::general_purpose::STANDARD.encode(&deflated);
    let mut url = endpoint.clone();
    url.query_pairs_mut().append_pair(parameter, &encoded);
    if let Some(relay_state) = relay_state {
        url.query_pairs_mut().append_pair("RelayState", relay_state);
    }
    samael::crypto::sign_url(url, key).map_err(|e| format!("cannot sign the request: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_asks_for_a_fresh_login_at_a_minimum_level() -> Result<(), String> {
        let request = AuthnRequest {
            id: "_abc",
            issue_instant: DateTime::UNIX_EPOCH,
            destination: "https://idp.example/sso",
            acs_url: "https://pforte.example/saml/bundid/acs",
            issuer: "https://pforte.example/saml/bundid",
            authn_context_class_ref: Some("STORK-QAA-Level-3"),
            akdb: None,
        };
        let xml = request.to_xml()?;
        assert!(xml.contains(r#"ForceAuthn="true""#));
        assert!(xml.contains(
            r#"<samlp:RequestedAuthnContext Comparison="minimum"><saml:AuthnContextClassRef>STORK-QAA-Level-3<"#
        ));
        assert!(xml.contains(r#"ID="_abc""#));
        Ok(())
    }
}

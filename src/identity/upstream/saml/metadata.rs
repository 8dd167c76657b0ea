//! pforte's own SAML metadata for one provider (SAML 2.0 Metadata, section 2.4.4): what an operator
//! uploads to BundID's self-service portal. It names pforte's entityID, the AssertionConsumerService
//! (HTTP-POST), the SingleLogoutService (HTTP-Redirect), the certificate AuthnRequests are signed with, and the one assertions are encrypted
//! to, with the encryption methods pforte accepts.

use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::Writer;

use crate::registry::saml_metadata::{BINDING_POST, BINDING_REDIRECT};
use crate::registry::SamlUpstream;

const NS_METADATA: &str = "urn:oasis:names:tc:SAML:2.0:metadata";
const NS_DSIG: &str = "http://www.w3.org/2000/09/xmldsig#";
/// What the IdP may encrypt with, in pforte's order of preference.
const ENCRYPTION_METHODS: &[&str] =
    &["http://www.w3.org/2009/xmlenc11#aes128-gcm", "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"];

pub(super) fn sp_metadata(saml: &SamlUpstream, acs_url: &str, slo_url: &str) -> Result<String, String> {
    let failed = |e: std::io::Error| e.to_string();
    let mut writer = Writer::new_with_indent(Vec::new(), b' ', 2);
    writer.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None))).map_err(failed)?;
    let mut root = BytesStart::new("md:EntityDescriptor");
    root.push_attribute(("xmlns:md", NS_METADATA));
    root.push_attribute(("xmlns:ds", NS_DSIG));
    root.push_attribute(("entityID", saml.entity_id.as_str()));
    writer.write_event(Event::Start(root)).map_err(failed)?;
    let mut sp = BytesStart::new("md:SPSSODescriptor");
    sp.push_attribute(("AuthnRequestsSigned", "true"));
    sp.push_attribute(("WantAssertionsSigned", "true"));
    sp.push_attribute(("protocolSupportEnumeration", "urn:oasis:names:tc:SAML:2.0:protocol"));
    writer.write_event(Event::Start(sp)).map_err(failed)?;
    key_descriptor(&mut writer, "signing", &saml.signing_certificate, &[])?;
    key_descriptor(&mut writer, "encryption", &saml.decryption_certificate, ENCRYPTION_METHODS)?;
    // Schema order: SingleLogoutService before AssertionConsumerService (SAML 2.0 Metadata, 2.4.2).
    let mut slo = BytesStart::new("md:SingleLogoutService");
    slo.push_attribute(("Binding", BINDING_REDIRECT));
    slo.push_attribute(("Location", slo_url));
    writer.write_event(Event::Empty(slo)).map_err(failed)?;
    let mut acs = BytesStart::new("md:AssertionConsumerService");
    acs.push_attribute(("Binding", BINDING_POST));
    acs.push_attribute(("Location", acs_url));
    acs.push_attribute(("index", "0"));
    acs.push_attribute(("isDefault", "true"));
    writer.write_event(Event::Empty(acs)).map_err(failed)?;
    writer.write_event(Event::End(BytesEnd::new("md:SPSSODescriptor"))).map_err(failed)?;
    writer.write_event(Event::End(BytesEnd::new("md:EntityDescriptor"))).map_err(failed)?;
    String::from_utf8(writer.into_inner()).map_err(|e| e.to_string())
}

fn key_descriptor(writer: &mut Writer<Vec<u8>>, use_: &str, pem: &str, methods: &[&str]) -> Result<(), String> {
    let failed = |e: std::io::Error| e.to_string();
    let mut descriptor = BytesStart::new("md:KeyDescriptor");
    descriptor.push_attribute(("use", use_));
    writer.write_event(Event::Start(descriptor)).map_err(failed)?;
    writer.write_event(Event::Start(BytesStart::new("ds:KeyInfo"))).map_err(failed)?;
    writer.write_event(Event::Start(BytesStart::new("ds:X509Data"))).map_err(failed)?;
    writer.write_event(Event::Start(BytesStart::new("ds:X509Certificate"))).map_err(failed)?;
    writer.write_event(Event::Text(BytesText::new(&pem_body(pem)))).map_err(failed)?;
    writer.write_event(Event::End(BytesEnd::new("ds:X509Certificate"))).map_err(failed)?;
    writer.write_event(Event::End(BytesEnd::new("ds:X509Data"))).map_err(failed)?;
    writer.write_event(Event::End(BytesEnd::new("ds:KeyInfo"))).map_err(failed)?;
    for method in methods {
        let mut element = BytesStart::new("md:EncryptionMethod");
        element.push_attribute(("Algorithm", *method));
        writer.write_event(Event::Empty(element)).map_err(failed)?;
    }
    writer.write_event(Event::End(BytesEnd::new("md:KeyDescriptor"))).map_err(failed)?;
    Ok(())
}

/// The base64 between a PEM certificate's armour lines, on one line.
fn pem_body(pem: &str) -> String {
    pem.lines().filter(|line| !line.starts_with("-----")).map(str::trim).collect()
}

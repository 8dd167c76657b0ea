//! A SAML identity provider's metadata (SAML 2.0 Metadata, `md:EntityDescriptor` with one
//! `md:IDPSSODescriptor`): what pforte takes from it and pins for the provider's logins. Read from a
//! file when the registry loads, or fetched from a URL by the upstream relying party; both go through
//! [`IdpMetadata::parse`].

use base64::Engine;
use quick_xml::events::Event;
use samael::metadata::EntityDescriptor;
use url::Url;

/// `HTTP-Redirect` binding (SAML 2.0 Bindings, section 3.4).
pub const BINDING_REDIRECT: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";
/// `HTTP-POST` binding (SAML 2.0 Bindings, section 3.5).
pub const BINDING_POST: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";

/// Metadata documents larger than this are refused: a federation's metadata of one IdP is a few
/// kilobytes; an aggregate of thousands of entities is not what an entry names.
pub const MAX_METADATA_BYTES: usize = 512 * 1024;

/// The AES-CBC content encryption URIs (XML Encryption 1.0). Refused in responses unless the IdP's
/// metadata says it can only encrypt with them (padding-oracle attacks on CBC in XML Encryption).
pub const AES_CBC_METHODS: &[&str] = &[
    "http://www.w3.org/2001/04/xmlenc#aes128-cbc",
    "http://www.w3.org/2001/04/xmlenc#aes192-cbc",
    "http://www.w3.org/2001/04/xmlenc#aes256-cbc",
];

/// What pforte uses of an IdP's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdpMetadata {
    /// The IdP's entityID: the only `Issuer` its responses and assertions may name.
    pub entity_id: String,
    /// Where AuthnRequests go, per binding.
    pub sso_redirect: Option<Url>,
    pub sso_post: Option<Url>,
    /// Where LogoutRequests go (HTTP-Redirect), when the IdP offers Single Logout.
    pub slo_redirect: Option<Url>,
    /// DER certificates of the keys the IdP signs with: the only keys a response is verified with.
    pub signing_certificates: Vec<Vec<u8>>,
    /// The content encryption methods the IdP's metadata declares (`md:EncryptionMethod`).
    pub encryption_methods: Vec<String>,
}

impl IdpMetadata {
    /// Reads the metadata document. The error says what is missing or wrong, for `pforte check` and
    /// for the log of a refresh that failed.
    pub fn parse(text: &str) -> Result<IdpMetadata, String> {
        refuse_unsafe_xml(text, MAX_METADATA_BYTES)?;
        let descriptor: EntityDescriptor =
            text.parse().map_err(|e| format!("is not SAML metadata with one md:EntityDescriptor: {e}"))?;
        let entity_id = descriptor
            .entity_id
            .clone()
            .filter(|id| !id.trim().is_empty())
            .ok_or("names no entityID in its md:EntityDescriptor")?;
        let idp = match descriptor.idp_sso_descriptors.as_deref() {
            Some([idp]) => idp,
            Some([]) | None => {
                return Err("has no md:IDPSSODescriptor: it does not describe an identity provider".into())
            }
            Some(_) => return Err("has more than one md:IDPSSODescriptor".into()),
        };
        let endpoint = |binding: &str, endpoints: &[samael::metadata::Endpoint]| -> Result<Option<Url>, String> {
            match endpoints.iter().find(|e| e.binding == binding) {
                Some(e) => Url::parse(&e.location)
                    .map(Some)
                    .map_err(|_| format!("has an endpoint for {binding} whose Location `{}` is no URL", e.location)),
                None => Ok(None),
            }
        };
        let sso_redirect = endpoint(BINDING_REDIRECT, &idp.single_sign_on_services)?;
        let sso_post = endpoint(BINDING_POST, &idp.single_sign_on_services)?;
        if sso_redirect.is_none() && sso_post.is_none() {
            return Err("has no md:SingleSignOnService for the HTTP-Redirect or HTTP-POST binding".into());
        }
        let slo_redirect = endpoint(BINDING_REDIRECT, &idp.single_logout_services)?;
        let mut signing_certificates = Vec::new();
        let mut encryption_methods = Vec::new();
        for key in &idp.key_descriptors {
            let use_ = key.key_use.as_deref().unwrap_or("");
            if use_ == "signing" || use_.is_empty() {
                for cert in key.key_info.x509_data.iter().flat_map(|data| data.certificates.iter()) {
                    signing_certificates.push(certificate_der(cert)?);
                }
            }
            for method in key.encryption_methods.iter().flatten() {
                encryption_methods.push(method.algorithm.clone());
            }
        }
        if signing_certificates.is_empty() {
            return Err("has no signing certificate (md:KeyDescriptor use=\"signing\" with ds:X509Certificate)".into());
        }
        Ok(IdpMetadata { entity_id, sso_redirect, sso_post, slo_redirect, signing_certificates, encryption_methods })
    }

    /// Whether the IdP says it encrypts only with AES-CBC, so pforte must accept CBC from it.
    pub fn demands_aes_cbc(&self) -> bool {
        !self.encryption_methods.is_empty()
            && self
                .encryption_methods
                .iter()
                .filter(|m| m.contains("#aes"))
                .all(|m| AES_CBC_METHODS.contains(&m.as_str()))
            && self.encryption_methods.iter().any(|m| AES_CBC_METHODS.contains(&m.as_str()))
    }
}

fn certificate_der(base64_text: &str) -> Result<Vec<u8>, String> {
    let compact: String = base64_text.chars().filter(|c| !c.is_whitespace()).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|_| "has a ds:X509Certificate that is not base64".to_owned())?;
    openssl::x509::X509::from_der(&der).map_err(|_| "has a ds:X509Certificate that is no X.509 certificate")?;
    Ok(der)
}

/// Refuses XML that is larger than `max_bytes` or carries a document type declaration (internal or
/// external entities, "billion laughs", external DTD fetches): SAML never needs one (SAML 2.0 Core,
/// section 1.3; SECURITY.md #38).
pub fn refuse_unsafe_xml(text: &str, max_bytes: usize) -> Result<(), String> {
    if text.len() > max_bytes {
        return Err(format!("is larger than {max_bytes} bytes"));
    }
    let mut reader = quick_xml::Reader::from_str(text);
    loop {
        match reader.read_event() {
            Ok(Event::DocType(_)) => {
                return Err("carries a document type declaration (DTD), which SAML never uses".into())
            }
            Ok(Event::Eof) => return Ok(()),
            Ok(_) => {}
            Err(e) => return Err(format!("is not well-formed XML: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_type_declaration_is_refused() {
        let xml = r#"<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>"#;
        assert!(refuse_unsafe_xml(xml, 1024).is_err_and(|e| e.contains("DTD")));
    }

    #[test]
    fn a_document_over_the_limit_is_refused() {
        assert!(refuse_unsafe_xml("<x>too long</x>", 5).is_err_and(|e| e.contains("larger")));
    }

    #[test]
    fn metadata_without_an_identity_provider_is_refused() {
        let xml = r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://idp"/>"#;
        assert!(IdpMetadata::parse(xml).is_err_and(|e| e.contains("IDPSSODescriptor")));
    }
}

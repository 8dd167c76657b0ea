//! Finds the `saml:EncryptedAssertion` in a (signed) Response and reads the four values decryption
//! needs: the key transport method and wrapped key, the content method and ciphertext. Read by
//! namespace, not by prefix: IdPs write `ds:KeyInfo`, `dsig:KeyInfo` or a default-namespace
//! `KeyInfo` (samlify's xml-encryption), and samael's own reader accepts only the first two. The
//! decryption itself stays samael's (its RSA-OAEP key transport and AES content decryption).

use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use samael::crypto::{Crypto, CryptoProvider};
use samael::schema::CipherValue;

use super::response::Refusal;

const NS_ASSERTION: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
const NS_XENC: &str = "http://www.w3.org/2001/04/xmlenc#";

/// The encrypted assertion's parts, as written (base64 ciphertexts).
#[derive(Debug, Default)]
pub(super) struct EncryptedParts {
    pub key_method: String,
    pub key_cipher: String,
    pub data_method: String,
    pub data_cipher: String,
}

impl EncryptedParts {
    /// The assertion's XML: the content key unwrapped with pforte's key, the content decrypted, both
    /// by samael. The caller has checked the methods.
    pub(super) fn decrypt(&self, key: &openssl::pkey::PKey<openssl::pkey::Private>) -> Result<String, Refusal> {
        let cannot = |_| invalid("the encrypted assertion cannot be decrypted with pforte's key");
        let wrapped = CipherValue { value: self.key_cipher.clone() };
        let content_key = Crypto::decrypt_assertion_key_info(&wrapped, &self.key_method, key).map_err(cannot)?;
        let content = CipherValue { value: self.data_cipher.clone() };
        let mut plain =
            Crypto::decrypt_assertion_value_info(&content, &self.data_method, &content_key).map_err(cannot)?;
        if self.data_method.ends_with("-cbc") {
            // XML Encryption's padding: the last byte says how many bytes were added (1 to 16).
            let pad = usize::from(plain.last().copied().unwrap_or(0));
            if pad == 0 || pad > 16 || pad > plain.len() {
                return Err(invalid("the encrypted assertion's padding is invalid"));
            }
            plain.truncate(plain.len() - pad);
        }
        String::from_utf8(plain).map_err(|_| invalid("the decrypted assertion is not UTF-8"))
    }
}

fn invalid(reason: &str) -> Refusal {
    Refusal::Invalid(reason.to_owned())
}

/// The document without its `EncryptedAssertion` element, and that element's parts if there is one.
pub(super) fn split(xml: &str) -> Result<(String, Option<EncryptedParts>), Refusal> {
    let mut reader = quick_xml::NsReader::from_str(xml);
    // (namespace, local name) of the open elements inside the EncryptedAssertion.
    let mut path: Vec<(String, String)> = Vec::new();
    let mut range: Option<(usize, usize)> = None;
    let mut start = None;
    let mut parts = EncryptedParts::default();
    loop {
        let before = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
        let (namespace, event) =
            reader.read_resolved_event().map_err(|_| invalid("the SAML Response is not well-formed XML"))?;
        let ns = match namespace {
            ResolveResult::Bound(ns) => String::from_utf8_lossy(ns.as_ref()).into_owned(),
            _ => String::new(),
        };
        match event {
            Event::Start(ref element) | Event::Empty(ref element) if start.is_none() => {
                let local = String::from_utf8_lossy(element.local_name().as_ref()).into_owned();
                if ns == NS_ASSERTION && local == "EncryptedAssertion" {
                    if range.is_some() {
                        return Err(invalid("the SAML Response carries more than one encrypted assertion"));
                    }
                    if matches!(event, Event::Empty(_)) {
                        return Err(invalid("the encrypted assertion is empty"));
                    }
                    start = Some(before);
                }
            }
            Event::Start(element) => {
                let local = String::from_utf8_lossy(element.local_name().as_ref()).into_owned();
                record_method(&path, &ns, &local, &element, &mut parts);
                path.push((ns, local));
            }
            Event::Empty(element) => {
                let local = String::from_utf8_lossy(element.local_name().as_ref()).into_owned();
                record_method(&path, &ns, &local, &element, &mut parts);
            }
            Event::Text(text) if start.is_some() => {
                let in_cipher_value = path.last().is_some_and(|(ns, local)| ns == NS_XENC && local == "CipherValue");
                if in_cipher_value {
                    let value = String::from_utf8_lossy(&text).into_owned();
                    if path.iter().any(|(ns, local)| ns == NS_XENC && local == "EncryptedKey") {
                        parts.key_cipher.push_str(&value);
                    } else {
                        parts.data_cipher.push_str(&value);
                    }
                }
            }
            // The EncryptedAssertion itself closes.
            Event::End(_) if start.is_some() && path.is_empty() => {
                let end = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
                range = start.take().map(|from| (from, end));
            }
            Event::End(_) if start.is_some() => {
                path.pop();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    match range {
        Some((from, to)) if from <= to && to <= xml.len() => {
            let envelope = format!("{}{}", xml.get(..from).unwrap_or_default(), xml.get(to..).unwrap_or_default());
            Ok((envelope, Some(parts)))
        }
        Some(_) => Err(invalid("the encrypted assertion cannot be located")),
        None => Ok((xml.to_owned(), None)),
    }
}

/// `xenc:EncryptionMethod` directly in `EncryptedKey` (key transport) or in `EncryptedData` (content).
fn record_method(
    path: &[(String, String)],
    ns: &str,
    local: &str,
    element: &quick_xml::events::BytesStart<'_>,
    parts: &mut EncryptedParts,
) {
    if ns != NS_XENC || local != "EncryptionMethod" {
        return;
    }
    let algorithm = element
        .try_get_attribute("Algorithm")
        .ok()
        .flatten()
        .map(|value| String::from_utf8_lossy(&value.value).into_owned())
        .unwrap_or_default();
    match path.last() {
        Some((parent_ns, parent)) if parent_ns == NS_XENC && parent == "EncryptedKey" => parts.key_method = algorithm,
        Some((parent_ns, parent)) if parent_ns == NS_XENC && parent == "EncryptedData" => parts.data_method = algorithm,
        _ => {}
    }
}

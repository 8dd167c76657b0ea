//! The SAML simulator's SingleLogoutService (`/slo`, HTTP-Redirect binding), written from SAML 2.0
//! Core 3.7 and Bindings 3.4 with the simulator's own code: it checks the query signature of the
//! service provider's LogoutRequest with the certificate of the registry entry that names the
//! simulator, ends the session the NameID and SessionIndex name, and answers with a LogoutResponse
//! whose query it signs (RSA-SHA256) on the way back to the service provider's SingleLogoutService.

use std::collections::HashMap;
use std::io::{Read, Write};

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use openssl::hash::MessageDigest;

use super::saml::{entity_id, error_page, instant, rand_bytes, SamlState, Session};
use crate::dev::escape;

const SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";

/// What the simulator reads of a LogoutRequest.
struct ReadLogout {
    id: String,
    destination: Option<String>,
    issuer: Option<String>,
    session: Session,
}

pub(super) async fn single_logout(State(state): State<SamlState>, RawQuery(query): RawQuery) -> Response {
    let Some(registered) = &state.idp.registered else {
        return error_page(&state, "Kein Registereintrag nennt diesen Simulator (metadata_url).");
    };
    let query = query.unwrap_or_default();
    let Some((signed, signature)) = query.rsplit_once("&Signature=") else {
        return error_page(&state, "Die Abmeldung ist nicht signiert.");
    };
    let params: HashMap<String, String> = url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    let signature_field = format!("s={signature}");
    let signature = url::form_urlencoded::parse(signature_field.as_bytes()).next().map(|(_, v)| v.into_owned());
    let verified = signature.and_then(|s| STANDARD.decode(s).ok()).is_some_and(|signature| {
        let Ok(key) = registered.signing_certificate.public_key() else { return false };
        let Ok(mut verifier) = openssl::sign::Verifier::new(MessageDigest::sha256(), &key) else { return false };
        verifier.update(signed.as_bytes()).is_ok() && verifier.verify(&signature).unwrap_or(false)
    });
    if !verified || params.get("SigAlg").map(String::as_str) != Some(RSA_SHA256) {
        return error_page(&state, "Die Signatur der Abmeldung ist ungültig.");
    }
    let xml = params.get("SAMLRequest").and_then(|r| STANDARD.decode(r).ok()).and_then(|deflated| {
        let mut xml = String::new();
        flate2::read::DeflateDecoder::new(deflated.as_slice())
            .take(64 * 1024)
            .read_to_string(&mut xml)
            .ok()
            .map(|_| xml)
    });
    let Some(request) = xml.as_deref().and_then(read_logout) else {
        return error_page(&state, "Die Abmeldung ist keine LogoutRequest mit ID und NameID.");
    };
    let own = format!("{}/slo", entity_id(&state));
    if request.destination.as_deref() != Some(own.as_str())
        || request.issuer.as_deref() != Some(registered.entity_id.as_str())
    {
        return error_page(
            &state,
            "Die Abmeldung ist an einen anderen Empfänger gerichtet oder kommt von einem fremden Dienst.",
        );
    }
    let ended = state.idp.sessions().remove(&request.session);
    // A session that is already over is no failure for the person, but the answer says so.
    let status = if ended {
        format!(r#"<samlp:StatusCode Value="{SUCCESS}"/>"#)
    } else {
        r#"<samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Requester"><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:UnknownPrincipal"/></samlp:StatusCode>"#.to_owned()
    };
    let response = format!(
        r#"<samlp:LogoutResponse xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_l{id}" Version="2.0" IssueInstant="{now}" Destination="{destination}" InResponseTo="{irt}"><saml:Issuer>{issuer}</saml:Issuer><samlp:Status>{status}</samlp:Status></samlp:LogoutResponse>"#,
        id = hex::encode(rand_bytes::<16>()),
        now = instant(state.context.clock.now()),
        destination = escape(&registered.slo_url),
        irt = escape(&request.id),
        issuer = escape(&entity_id(&state)),
    );
    match signed_redirect(&registered.slo_url, &response, params.get("RelayState"), &state.idp.key) {
        Ok(location) => (StatusCode::SEE_OTHER, [(axum::http::header::LOCATION, location)]).into_response(),
        Err(_) => error_page(&state, "Die Antwort auf die Abmeldung konnte nicht erzeugt werden."),
    }
}

/// The HTTP-Redirect binding: DEFLATE, base64, then the signature over `SAMLResponse=…&RelayState=…&SigAlg=…`.
fn signed_redirect(
    target: &str,
    xml: &str,
    relay_state: Option<&String>,
    key: &openssl::pkey::PKey<openssl::pkey::Private>,
) -> anyhow::Result<String> {
    let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(xml.as_bytes())?;
    let encoded = STANDARD.encode(encoder.finish()?);
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query.append_pair("SAMLResponse", &encoded);
    if let Some(relay_state) = relay_state {
        query.append_pair("RelayState", relay_state);
    }
    query.append_pair("SigAlg", RSA_SHA256);
    let mut query = query.finish();
    let mut signer = openssl::sign::Signer::new(MessageDigest::sha256(), key)?;
    signer.update(query.as_bytes())?;
    let signature = STANDARD.encode(signer.sign_to_vec()?);
    query.push_str("&Signature=");
    query.push_str(&url::form_urlencoded::byte_serialize(signature.as_bytes()).collect::<String>());
    Ok(format!("{target}?{query}"))
}

/// The values the simulator needs from a LogoutRequest, read by local name.
fn read_logout(xml: &str) -> Option<ReadLogout> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let (mut id, mut destination, mut issuer, mut name_id, mut session_index) = (None, None, None, None, None);
    let mut current = String::new();
    let mut root = None;
    let attribute = |element: &quick_xml::events::BytesStart<'_>, name: &str| {
        element.try_get_attribute(name).ok().flatten().map(|a| String::from_utf8_lossy(&a.value).into_owned())
    };
    loop {
        match reader.read_event().ok()? {
            quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e) => {
                current = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                if root.is_none() {
                    root = Some(current.clone());
                    id = attribute(&e, "ID");
                    destination = attribute(&e, "Destination");
                }
            }
            quick_xml::events::Event::Text(text) => {
                let text = String::from_utf8_lossy(&text).trim().to_owned();
                match current.as_str() {
                    "Issuer" if issuer.is_none() => issuer = Some(text),
                    "NameID" if name_id.is_none() => name_id = Some(text),
                    "SessionIndex" if session_index.is_none() => session_index = Some(text),
                    _ => {}
                }
            }
            quick_xml::events::Event::End(_) => current.clear(),
            quick_xml::events::Event::Eof => break,
            _ => {}
        }
    }
    if root.as_deref() != Some("LogoutRequest") {
        return None;
    }
    Some(ReadLogout { id: id?, destination, issuer, session: Session { name_id: name_id?, session_index } })
}

//! SAML 2.0 identity providers written from the SAML specifications and BundID's interface
//! description, so `/demo` can log in over SAML as over OpenID Connect: a BundID-like one under
//! `/dev/bundid-saml`, and a company account like Mein Unternehmenskonto under
//! `/dev/unternehmenskonto-saml` (organisation attributes and the acting person, levels
//! `substanziell`/`hoch`). Each serves metadata with its signing certificate (`/metadata`), the
//! HTTP-Redirect SingleSignOnService
//! (`/sso`: the AuthnRequest's query signature checked with the certificate of the registry entry that
//! names this simulator), a page to pick a person and a login method, and an HTTP-POST Response:
//! the assertion encrypted to the entry's encryption certificate (AES-128-GCM, RSA-OAEP), the
//! Response signed (RSA-SHA256, through libxmlsec1). Only the attributes the request names in
//! `akdb:RequestedAttributes` are delivered, and bPK2 is derived per service provider. Cancelling
//! answers `RequestDenied`. A login opens a session (NameID and SessionIndex) that the
//! SingleLogoutService (`/slo`, in `saml_logout.rs`) ends. Keys are made at start; requests and
//! sessions vanish with the process.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::sync::Mutex;

use axum::extract::{RawForm, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::x509::X509;
use samael::crypto::{Crypto, CryptoProvider};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::personas::{self, Persona};
use crate::dev::{document, escape, html, Context};
use crate::registry::{MetadataSource, Registry};

pub(crate) use super::saml_profiles::{Profile, BUNDID, UNTERNEHMENSKONTO};

/// The service provider this simulator serves: the registry entry whose metadata URL is this one's.
pub(super) struct Registered {
    pub signing_certificate: X509,
    encryption_certificate: X509,
    /// The service provider's entityID.
    pub entity_id: String,
    /// The service provider's SingleLogoutService (what its uploaded metadata would say).
    pub slo_url: String,
}

/// A login the simulator still holds: what a LogoutRequest names to end it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Session {
    pub name_id: String,
    pub session_index: Option<String>,
}

/// An AuthnRequest waiting for the person's decision.
struct Waiting {
    request_id: String,
    relay_state: String,
    acs_url: String,
    sp_entity_id: String,
    requested: Vec<String>,
}

pub(crate) struct SamlIdp {
    profile: &'static Profile,
    pub(super) key: PKey<Private>,
    certificate: X509,
    pub(super) registered: Option<Registered>,
    waiting: Mutex<HashMap<String, Waiting>>,
    sessions: Mutex<HashSet<Session>>,
}

impl SamlIdp {
    /// Makes the simulator's key and finds the registry entry that names it (`issuer` is pforte's
    /// public URL).
    pub(crate) fn new(profile: &'static Profile, registry: &Registry, issuer: &str) -> anyhow::Result<SamlIdp> {
        let (key, certificate) = self_signed(profile.path.trim_start_matches("/dev/"))?;
        let own_metadata = format!("{issuer}{}/metadata", profile.path);
        let registered = registry
            .identity_providers()
            .filter_map(|idp| idp.saml().map(|saml| (idp, saml)))
            .find(|(_, saml)| matches!(&saml.metadata, MetadataSource::Url(url) if url.as_str() == own_metadata))
            .map(|(idp, saml)| -> anyhow::Result<Registered> {
                Ok(Registered {
                    signing_certificate: X509::from_pem(saml.signing_certificate.as_bytes())?,
                    encryption_certificate: X509::from_pem(saml.decryption_certificate.as_bytes())?,
                    entity_id: saml.entity_id.clone(),
                    slo_url: format!("{issuer}/saml/{}/slo", idp.id),
                })
            })
            .transpose()?;
        Ok(SamlIdp { profile, key, certificate, registered, waiting: Mutex::default(), sessions: Mutex::default() })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Waiting>> {
        self.waiting.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(super) fn sessions(&self) -> std::sync::MutexGuard<'_, HashSet<Session>> {
        self.sessions.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[derive(Clone)]
pub(super) struct SamlState {
    pub idp: std::sync::Arc<SamlIdp>,
    pub context: Context,
}

pub(crate) fn router(idp: std::sync::Arc<SamlIdp>, context: Context) -> Router {
    let routes = Router::new()
        .route("/metadata", get(metadata))
        .route("/sso", get(sso))
        .route("/sso/decide", post(decide))
        .route("/slo", get(super::saml_logout::single_logout))
        .with_state(SamlState { idp: idp.clone(), context });
    Router::new().nest(idp.profile.path, routes)
}

fn self_signed(name: &str) -> anyhow::Result<(PKey<Private>, X509)> {
    let key = PKey::from_rsa(openssl::rsa::Rsa::generate(2048)?)?;
    let mut subject = openssl::x509::X509NameBuilder::new()?;
    subject.append_entry_by_text("CN", name)?;
    let subject = subject.build();
    let mut builder = X509::builder()?;
    builder.set_version(2)?;
    builder.set_subject_name(&subject)?;
    builder.set_issuer_name(&subject)?;
    builder.set_pubkey(&key)?;
    builder.set_not_before(&*openssl::asn1::Asn1Time::days_from_now(0)?)?;
    builder.set_not_after(&*openssl::asn1::Asn1Time::days_from_now(3650)?)?;
    builder.sign(&key, MessageDigest::sha256())?;
    Ok((key, builder.build()))
}

pub(super) fn entity_id(state: &SamlState) -> String {
    format!("{}{}", state.context.issuer, state.idp.profile.path)
}

async fn metadata(State(state): State<SamlState>) -> Response {
    let certificate = match state.idp.certificate.to_der() {
        Ok(der) => STANDARD.encode(der),
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    let xml = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{entity}">
  <md:IDPSSODescriptor WantAuthnRequestsSigned="true" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{certificate}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    <md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="{entity}/slo"/>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="{entity}/sso"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>
"#,
        entity = entity_id(&state)
    );
    ([(header::CONTENT_TYPE, "application/samlmetadata+xml")], xml).into_response()
}

pub(super) fn error_page(state: &SamlState, message: &str) -> Response {
    let title = state.idp.profile.title;
    let body = format!("<h1>{title}</h1><p>{}</p>", escape(message));
    html(StatusCode::BAD_REQUEST, document(title, &body))
}

/// The HTTP-Redirect binding: the signature over the query as sent, then the inflated request.
async fn sso(State(state): State<SamlState>, RawQuery(query): RawQuery) -> Response {
    let Some(registered) = &state.idp.registered else {
        return error_page(&state, "Kein Registereintrag nennt diesen Simulator (metadata_url).");
    };
    let query = query.unwrap_or_default();
    let Some((signed, signature)) = query.rsplit_once("&Signature=") else {
        return error_page(&state, "Die Anfrage ist nicht signiert.");
    };
    let params: HashMap<String, String> = url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    let signature_field = format!("s={signature}");
    let signature = url::form_urlencoded::parse(signature_field.as_bytes()).next().map(|(_, v)| v.into_owned());
    let verified = signature.and_then(|s| STANDARD.decode(s).ok()).is_some_and(|signature| {
        let Ok(key) = registered.signing_certificate.public_key() else { return false };
        let Ok(mut verifier) = openssl::sign::Verifier::new(MessageDigest::sha256(), &key) else { return false };
        verifier.update(signed.as_bytes()).is_ok() && verifier.verify(&signature).unwrap_or(false)
    });
    let rsa_sha256 =
        params.get("SigAlg").map(String::as_str) == Some("http://www.w3.org/2001/04/xmldsig-more#rsa-sha256");
    if !verified || !rsa_sha256 {
        return error_page(&state, "Die Signatur der Anfrage ist ungültig.");
    }
    let Some(xml) = params.get("SAMLRequest").and_then(|r| STANDARD.decode(r).ok()).and_then(|deflated| {
        let mut xml = String::new();
        flate2::read::DeflateDecoder::new(deflated.as_slice())
            .take(64 * 1024)
            .read_to_string(&mut xml)
            .ok()
            .map(|_| xml)
    }) else {
        return error_page(&state, "Die Anfrage ist unlesbar.");
    };
    let Some(request) = read_request(&xml) else {
        return error_page(
            &state,
            "Die Anfrage ist keine AuthnRequest mit ID, Issuer und AssertionConsumerServiceURL.",
        );
    };
    let ticket = crate::crypto::random_token();
    let waiting = Waiting {
        request_id: request.id,
        relay_state: params.get("RelayState").cloned().unwrap_or_default(),
        acs_url: request.acs_url,
        sp_entity_id: request.issuer,
        requested: request.requested,
    };
    state.idp.lock().insert(ticket.clone(), waiting);
    html(StatusCode::OK, login_page(state.idp.profile, &ticket, request.class_ref.as_deref()))
}

struct ReadRequest {
    id: String,
    issuer: String,
    acs_url: String,
    class_ref: Option<String>,
    requested: Vec<String>,
}

/// The values the simulator needs from an AuthnRequest, read by local name.
fn read_request(xml: &str) -> Option<ReadRequest> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let (mut id, mut issuer, mut acs_url, mut class_ref) = (None, None, None, None);
    let mut requested = Vec::new();
    let mut current = String::new();
    let attribute = |element: &quick_xml::events::BytesStart<'_>, name: &str| {
        element.try_get_attribute(name).ok().flatten().map(|a| String::from_utf8_lossy(&a.value).into_owned())
    };
    loop {
        match reader.read_event().ok()? {
            quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e) => {
                current = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                match current.as_str() {
                    "AuthnRequest" => {
                        id = attribute(&e, "ID");
                        acs_url = attribute(&e, "AssertionConsumerServiceURL");
                    }
                    "RequestedAttribute" => requested.extend(attribute(&e, "Name")),
                    _ => {}
                }
            }
            quick_xml::events::Event::Text(text) => {
                let text = String::from_utf8_lossy(&text).trim().to_owned();
                match current.as_str() {
                    "Issuer" if issuer.is_none() => issuer = Some(text),
                    "AuthnContextClassRef" => class_ref = Some(text),
                    _ => {}
                }
            }
            quick_xml::events::Event::Eof => break,
            _ => {}
        }
    }
    Some(ReadRequest { id: id?, issuer: issuer?, acs_url: acs_url?, class_ref, requested })
}

fn login_page(profile: &Profile, ticket: &str, class_ref: Option<&str>) -> String {
    let people: String = personas::personas(profile.kind)
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let checked = if i == 0 { " checked" } else { "" };
            format!(
                r#"<label><input type="radio" name="persona" value="{}"{checked}> {} <small>{}</small></label><br>"#,
                escape(p.key),
                escape(p.label),
                escape(p.summary)
            )
        })
        .collect();
    let methods: String = personas::levels(profile.kind)
        .iter()
        .map(|l| {
            let checked = if Some(l.acr) == class_ref { " checked" } else { "" };
            format!(
                r#"<label><input type="radio" name="level" value="{}"{checked}> {}</label><br>"#,
                l.acr,
                escape(l.label)
            )
        })
        .collect();
    let asked = class_ref.map(|c| format!("<p>Mindestens verlangt: {}</p>", escape(c))).unwrap_or_default();
    let body = format!(
        r#"<h1>{title}</h1>{asked}
<form method="post" action="{path}/sso/decide">
<input type="hidden" name="ticket" value="{ticket}">
<fieldset><legend>Person</legend>{people}</fieldset>
<fieldset><legend>Anmeldeverfahren</legend>{methods}</fieldset>
<button type="submit" name="action" value="login">Anmelden</button>
<button type="submit" name="action" value="cancel">Abbrechen</button>
</form>"#,
        ticket = escape(ticket),
        title = profile.title,
        path = profile.path,
    );
    document(profile.title, &body)
}

/// The person decided: a page whose button posts the Response to pforte's ACS (HTTP-POST binding;
/// pforte's pages allow no script, so the person presses it).
async fn decide(State(state): State<SamlState>, RawForm(body): RawForm) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let waiting = form.get("ticket").and_then(|ticket| state.idp.lock().remove(ticket));
    let (Some(waiting), Some(registered)) = (waiting, &state.idp.registered) else {
        return error_page(&state, "Diese Anmeldung ist unbekannt oder schon beendet.");
    };
    let now = state.context.clock.now();
    let answer = if form.get("action").map(String::as_str) == Some("login") {
        let kind = state.idp.profile.kind;
        let persona = form.get("persona").and_then(|key| personas::persona(kind, key));
        let level = form.get("level").and_then(|acr| personas::level(kind, acr));
        match (persona, level) {
            (Some(persona), Some(level)) => {
                let id = hex::encode(rand_bytes::<16>());
                let session = Session { name_id: format!("_t{id}"), session_index: Some(format!("_s{id}")) };
                let assertion = assertion(&state, &waiting, persona, level.acr, &session, &id, now);
                state.idp.sessions().insert(session);
                encrypt(&assertion, &registered.encryption_certificate)
                    .map(|encrypted| response(&state, &waiting, &encrypted, None, now))
            }
            _ => return error_page(&state, "Bitte Person und Anmeldeverfahren wählen."),
        }
    } else {
        Ok(response(&state, &waiting, "", Some("RequestDenied"), now))
    };
    let signed = answer.map_err(|e| e.to_string()).and_then(|xml| sign(&xml, &state.idp.key));
    let Ok(signed) = signed else {
        return error_page(&state, "Die Antwort konnte nicht erzeugt werden.");
    };
    let body = format!(
        r#"<h1>{title}</h1><p>Weiter zum Dienst.</p>
<form method="post" action="{acs}">
<input type="hidden" name="SAMLResponse" value="{response}">
<input type="hidden" name="RelayState" value="{relay}">
<button type="submit">Weiter</button>
</form>"#,
        acs = escape(&waiting.acs_url),
        response = STANDARD.encode(signed),
        relay = escape(&waiting.relay_state),
        title = state.idp.profile.title,
    );
    html(StatusCode::OK, document(state.idp.profile.title, &body))
}

pub(super) fn instant(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The persona's requested attributes, and the stable identifier (bPK2 at BundID): one per person
/// and service provider. The NameID and SessionIndex are the session's, which logout ends.
fn assertion(
    state: &SamlState,
    waiting: &Waiting,
    persona: &Persona,
    class_ref: &str,
    session: &Session,
    id: &str,
    now: DateTime<Utc>,
) -> String {
    let profile = state.idp.profile;
    let claims = persona.claims();
    let subject = hex::encode(Sha256::digest(format!("{}|{}", persona.sub, waiting.sp_entity_id)));
    let mut values: Vec<(&str, String)> = vec![(profile.subject_attribute, subject)];
    for (claim, name) in profile.attributes {
        if let Some(Value::String(value)) = claims.get(*claim) {
            values.push((name, value.clone()));
        }
    }
    if let Some(level_attribute) = profile.level_attribute {
        values.push((level_attribute, class_ref.to_owned()));
    }
    let attributes: String = values
        .iter()
        .filter(|(name, _)| waiting.requested.is_empty() || waiting.requested.iter().any(|r| r == name))
        .map(|(name, value)| {
            format!(
                r#"<saml:Attribute Name="{name}" NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:uri"><saml:AttributeValue>{}</saml:AttributeValue></saml:Attribute>"#,
                escape(value)
            )
        })
        .collect();
    let end = instant(now + TimeDelta::minutes(5));
    format!(
        r#"<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_a{id}" Version="2.0" IssueInstant="{now}"><saml:Issuer>{issuer}</saml:Issuer><saml:Subject><saml:NameID Format="urn:oasis:names:tc:SAML:2.0:nameid-format:transient" NameQualifier="{issuer}" SPNameQualifier="{audience}">{name_id}</saml:NameID><saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"><saml:SubjectConfirmationData InResponseTo="{irt}" NotOnOrAfter="{end}" Recipient="{acs}"/></saml:SubjectConfirmation></saml:Subject><saml:Conditions NotBefore="{now}" NotOnOrAfter="{end}"><saml:AudienceRestriction><saml:Audience>{audience}</saml:Audience></saml:AudienceRestriction></saml:Conditions><saml:AuthnStatement AuthnInstant="{now}" SessionIndex="{session_index}"><saml:AuthnContext><saml:AuthnContextClassRef>{class_ref}</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement><saml:AttributeStatement>{attributes}</saml:AttributeStatement></saml:Assertion>"#,
        now = instant(now),
        issuer = escape(&entity_id(state)),
        irt = escape(&waiting.request_id),
        acs = escape(&waiting.acs_url),
        audience = escape(&waiting.sp_entity_id),
        name_id = escape(&session.name_id),
        session_index = escape(session.session_index.as_deref().unwrap_or_default()),
    )
}

fn response(state: &SamlState, waiting: &Waiting, inner: &str, denied: Option<&str>, now: DateTime<Utc>) -> String {
    let status = match denied {
        None => r#"<samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/>"#.to_owned(),
        Some(sub) => format!(
            r#"<samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Responder"><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:{sub}"/></samlp:StatusCode>"#
        ),
    };
    format!(
        r#"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_r{id}" Version="2.0" IssueInstant="{now}" Destination="{acs}" InResponseTo="{irt}"><saml:Issuer>{issuer}</saml:Issuer>{{signature}}<samlp:Status>{status}</samlp:Status>{inner}</samlp:Response>"#,
        id = hex::encode(rand_bytes::<16>()),
        now = instant(now),
        acs = escape(&waiting.acs_url),
        irt = escape(&waiting.request_id),
        issuer = escape(&entity_id(state)),
    )
}

pub(super) fn rand_bytes<const N: usize>() -> [u8; N] {
    use rand::RngCore;
    let mut bytes = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes
}

/// XML Encryption of the assertion: AES-128-GCM content, the key wrapped with RSA-OAEP for pforte.
fn encrypt(assertion: &str, certificate: &X509) -> Result<String, openssl::error::ErrorStack> {
    let content_key = rand_bytes::<16>();
    let iv = rand_bytes::<12>();
    let mut tag = [0u8; 16];
    let cipher = openssl::symm::Cipher::aes_128_gcm();
    let ciphertext = openssl::symm::encrypt_aead(cipher, &content_key, Some(&iv), &[], assertion.as_bytes(), &mut tag)?;
    let rsa = certificate.public_key()?.rsa()?;
    let mut wrapped = vec![0u8; usize::try_from(rsa.size()).unwrap_or(512)];
    let length = rsa.public_encrypt(&content_key, &mut wrapped, openssl::rsa::Padding::PKCS1_OAEP)?;
    wrapped.truncate(length);
    Ok(format!(
        r#"<saml:EncryptedAssertion><xenc:EncryptedData xmlns:xenc="http://www.w3.org/2001/04/xmlenc#" Type="http://www.w3.org/2001/04/xmlenc#Element"><xenc:EncryptionMethod Algorithm="http://www.w3.org/2009/xmlenc11#aes128-gcm"/><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><xenc:EncryptedKey><xenc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"/><xenc:CipherData><xenc:CipherValue>{}</xenc:CipherValue></xenc:CipherData></xenc:EncryptedKey></ds:KeyInfo><xenc:CipherData><xenc:CipherValue>{}</xenc:CipherValue></xenc:CipherData></xenc:EncryptedData></saml:EncryptedAssertion>"#,
        STANDARD.encode(wrapped),
        STANDARD.encode([iv.as_slice(), &ciphertext, &tag].concat())
    ))
}

/// Signs the Response (enveloped RSA-SHA256 over its ID, exclusive c14n) at its `{signature}` mark.
fn sign(xml: &str, key: &PKey<Private>) -> Result<String, String> {
    let id = xml.split(" ID=\"").nth(1).and_then(|s| s.split('"').next()).ok_or("no ID")?.to_owned();
    let template = format!(
        r##"<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/><ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/><ds:Reference URI="#{id}"><ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/><ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue></ds:DigestValue></ds:Reference></ds:SignedInfo><ds:SignatureValue></ds:SignatureValue></ds:Signature>"##
    );
    let der = key.private_key_to_der().map_err(|e| e.to_string())?;
    Crypto::sign_xml(xml.replacen("{signature}", &template, 1), &der).map_err(|e| e.to_string())
}

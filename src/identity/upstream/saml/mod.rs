//! pforte as SAML 2.0 service provider of upstream account providers (BundID, Mein Unternehmenskonto):
//! the signed AuthnRequest over HTTP-Redirect, the checked Response at the AssertionConsumerService,
//! the IdP's metadata (pinned from a file, or fetched and refreshed like OpenID Connect discovery),
//! and pforte's own metadata for the IdP's registration.
//!
//! The flow shares [`super::PendingUpstream`] with OpenID Connect: its `state` is the RelayState, its
//! `request_id` the AuthnRequest's ID that the Response must answer (InResponseTo).

mod encrypted;
mod logout;
mod metadata;
mod request;
mod response;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeDelta, Utc};
use secrecy::ExposeSecret;
use serde_json::{Map, Value};

pub use self::logout::SamlSession;
pub use self::response::MAX_RESPONSE_BASE64_BYTES;
use super::{Freshness, PendingUpstream, UpstreamError, UpstreamIdentity, UpstreamRequest};
use crate::clock::SharedClock;
use crate::crypto::random_token;
use crate::registry::saml_metadata::{IdpMetadata, MAX_METADATA_BYTES};
use crate::registry::{rsa_private_key, IdentityProvider, Level, MetadataSource, SamlUpstream};

/// A SAML login that passed every check, with what single use of its assertion needs.
#[derive(Debug)]
pub struct SamlLogin {
    pub identity: UpstreamIdentity,
    /// The assertion's ID: pforte refuses it a second time until `valid_until`.
    pub assertion_id: String,
    pub valid_until: DateTime<Utc>,
    /// What a LogoutRequest for this login names, when the assertion carried a NameID.
    pub session: Option<SamlSession>,
}

/// A LogoutRequest on its way: where the browser goes, and the ID the LogoutResponse must answer.
#[derive(Debug)]
pub struct LogoutStart {
    pub url: url::Url,
    pub request_id: String,
}

/// A LogoutResponse whose signature, Issuer and Destination passed; the caller matches
/// `in_response_to` with the stored request.
#[derive(Debug)]
pub struct LogoutAnswer {
    pub in_response_to: String,
    /// The IdP ended its session (`Success`); otherwise it may still hold one.
    pub success: bool,
}

/// Fetched IdP metadata, per provider id.
struct Fetched {
    url: String,
    metadata: Arc<IdpMetadata>,
    fetched_at: DateTime<Utc>,
}

/// The service provider towards every SAML upstream.
pub struct SamlRelyingParty {
    http: reqwest::Client,
    clock: SharedClock,
    /// `{public_url}/saml`: each provider's ACS and metadata live below `/<provider id>/`.
    base: String,
    // A plain mutex: map operations only, never held across an await.
    fetched: Mutex<HashMap<String, Fetched>>,
}

impl SamlRelyingParty {
    pub fn new(http: reqwest::Client, clock: SharedClock, base: &str) -> Self {
        SamlRelyingParty { http, clock, base: base.trim_end_matches('/').to_owned(), fetched: Mutex::default() }
    }

    /// The AssertionConsumerService of `idp`: one per provider, so a Response can only be taken for
    /// that provider's logins.
    pub fn acs_url(&self, idp: &IdentityProvider) -> String {
        format!("{}/{}/acs", self.base, idp.id)
    }

    /// The SingleLogoutService of `idp` (HTTP-Redirect): where its LogoutResponses come back.
    pub fn slo_url(&self, idp: &IdentityProvider) -> String {
        format!("{}/{}/slo", self.base, idp.id)
    }

    /// Where pforte's metadata for `idp` is served.
    pub fn metadata_url(&self, idp: &IdentityProvider) -> String {
        format!("{}/{}/metadata", self.base, idp.id)
    }

    pub fn forget(&self, id: &str) {
        self.lock().remove(id);
    }

    /// pforte's SP metadata for `idp`: entityID, ACS (HTTP-POST), signing and encryption certificates.
    pub fn sp_metadata(&self, idp: &IdentityProvider) -> Result<String, UpstreamError> {
        let saml = settings(idp)?;
        metadata::sp_metadata(saml, &self.acs_url(idp), &self.slo_url(idp))
            .map_err(|e| UpstreamError::Misconfigured(format!("pforte's metadata cannot be written: {e}")))
    }

    /// The AuthnRequest: a fresh ID and RelayState, `ForceAuthn`, the lowest `AuthnContextClassRef`
    /// the entry asks for at or above `required` (Comparison="minimum"), the akdb extension, signed.
    pub(super) async fn begin(
        &self,
        idp: &IdentityProvider,
        required: Level,
        freshness: Freshness,
    ) -> Result<UpstreamRequest, UpstreamError> {
        let saml = settings(idp)?;
        let metadata = self.idp_metadata(idp, saml).await?;
        let endpoint = metadata.sso_redirect.as_ref().ok_or_else(|| {
            UpstreamError::Misconfigured("the IdP's metadata offers no HTTP-Redirect SingleSignOnService".into())
        })?;
        let class_ref = idp.acr_values.range(required..).next().map(|(_, class_ref)| class_ref.as_str());
        // An xs:ID is an NCName, which must not start with a digit: hence the prefix.
        let request_id = format!("_{}", hex_id());
        let relay_state = random_token();
        let acs_url = self.acs_url(idp);
        let now = self.clock.now();
        let xml = request::AuthnRequest {
            id: &request_id,
            issue_instant: now,
            destination: endpoint.as_str(),
            acs_url: &acs_url,
            issuer: &saml.entity_id,
            authn_context_class_ref: class_ref,
            akdb: saml.akdb.as_ref(),
        }
        .to_xml()
        .map_err(UpstreamError::Misconfigured)?;
        let key = rsa_private_key(saml.signing_key.expose_secret()).map_err(UpstreamError::Misconfigured)?;
        let authorization_url = request::redirect_url(endpoint, "SAMLRequest", &xml, Some(&relay_state), &key)
            .map_err(UpstreamError::Misconfigured)?;
        let pending = PendingUpstream {
            provider_id: idp.id.to_string(),
            state: relay_state,
            nonce: String::new(),
            pkce_verifier: String::new(),
            expected_issuer: metadata.entity_id.clone(),
            redirect_uri: acs_url,
            required_level: required,
            freshness,
            requested_at: now.timestamp(),
            request_id: Some(request_id),
        };
        Ok(UpstreamRequest { authorization_url, pending })
    }

    /// Checks the posted Response against the stored request and maps the assertion onto pforte's
    /// identity: level from `AuthnContextClassRef`, subject from the configured attribute, claims by
    /// attribute name.
    pub(super) async fn complete(
        &self,
        idp: &IdentityProvider,
        pending: &PendingUpstream,
        posted: &str,
    ) -> Result<SamlLogin, UpstreamError> {
        let saml = settings(idp)?;
        let metadata = self.idp_metadata(idp, saml).await?;
        // Mix-up defence: this flow went to this provider, whose entityID has not changed since.
        if pending.provider_id != idp.id.as_str() || pending.expected_issuer != metadata.entity_id {
            return Err(UpstreamError::IssuerMismatch);
        }
        let request_id = pending
            .request_id
            .as_deref()
            .ok_or_else(|| UpstreamError::InvalidResponse("the login sent no SAML request".into()))?;
        let key = rsa_private_key(saml.decryption_key.expose_secret()).map_err(UpstreamError::Misconfigured)?;
        let now = self.clock.now();
        let expected =
            response::Expected { request_id, acs_url: &pending.redirect_uri, sp_entity_id: &saml.entity_id, now };
        let assertion = response::check(posted, &metadata, &key, &expected).map_err(|refusal| match refusal {
            response::Refusal::Status(code) => UpstreamError::Denied { error: code, description: None },
            response::Refusal::Invalid(reason) => UpstreamError::InvalidResponse(reason),
        })?;
        let (level, acr) = level(idp, saml, &assertion)?;
        if level < pending.required_level {
            return Err(UpstreamError::LevelTooLow { required: pending.required_level, proven: level });
        }
        let auth_time = assertion.authn_instant.map(|instant| instant.timestamp());
        super::freshness::check(pending, auth_time, now)?;
        let subject = match assertion.attributes.get(&saml.subject_attribute).map(Vec::as_slice) {
            Some([subject]) if !subject.trim().is_empty() => subject.trim().to_owned(),
            // A guest login (BundID) delivers no stable identifier: nothing to derive a `sub` from.
            _ => {
                return Err(UpstreamError::Denied {
                    error: "no_stable_identifier".into(),
                    description: Some("the account provider delivered no stable identifier".into()),
                })
            }
        };
        let identity = UpstreamIdentity {
            provider_id: idp.id.to_string(),
            subject,
            level,
            acr,
            amr: Vec::new(),
            auth_time,
            claims: map_attributes(idp, &assertion.attributes),
        };
        Ok(SamlLogin {
            identity,
            assertion_id: assertion.id,
            valid_until: assertion.valid_until,
            session: assertion.session,
        })
    }

    /// Answers a LogoutRequest the IdP started (HTTP-Redirect, `raw_query` as it arrived): checked
    /// like a LogoutResponse (query signature, Issuer, Destination, not expired), answered with a
    /// signed LogoutResponse with status Success at the IdP's SingleLogoutService. pforte holds no
    /// session of the person's (every login is `ForceAuthn`), so there is nothing more to end here.
    pub(super) async fn answer_logout_request(
        &self,
        idp: &IdentityProvider,
        raw_query: &str,
    ) -> Result<url::Url, UpstreamError> {
        let saml = settings(idp)?;
        let metadata = self.idp_metadata(idp, saml).await?;
        let refused = |refusal: response::Refusal| match refusal {
            response::Refusal::Status(why) | response::Refusal::Invalid(why) => UpstreamError::InvalidResponse(why),
        };
        let received = logout::receive(raw_query, "SAMLRequest", &metadata.signing_certificates).map_err(refused)?;
        let read = logout::read_logout_request(&received.xml).map_err(refused)?;
        let invalid = |why: &str| UpstreamError::InvalidResponse(why.to_owned());
        if read.issuer.as_deref() != Some(metadata.entity_id.as_str()) {
            return Err(invalid("the LogoutRequest names another Issuer than the IdP's entityID"));
        }
        if read.destination.as_deref() != Some(self.slo_url(idp).as_str()) {
            return Err(invalid("the LogoutRequest is addressed to another Destination"));
        }
        let now = self.clock.now();
        if read.not_on_or_after.is_some_and(|end| end + response::CLOCK_SKEW <= now) {
            return Err(invalid("the LogoutRequest has expired (NotOnOrAfter)"));
        }
        let endpoint = metadata.slo_redirect.as_ref().ok_or_else(|| {
            UpstreamError::Misconfigured("the IdP's metadata offers no HTTP-Redirect SingleLogoutService".into())
        })?;
        let xml =
            logout::logout_response_xml(&format!("_{}", hex_id()), &read.id, now, endpoint.as_str(), &saml.entity_id)
                .map_err(UpstreamError::Misconfigured)?;
        let key = rsa_private_key(saml.signing_key.expose_secret()).map_err(UpstreamError::Misconfigured)?;
        request::redirect_url(endpoint, "SAMLResponse", &xml, received.relay_state.as_deref(), &key)
            .map_err(UpstreamError::Misconfigured)
    }

    /// The signed LogoutRequest for `session`, over the HTTP-Redirect binding, when the IdP's
    /// metadata offers a SingleLogoutService for it; `None` when it offers none.
    pub(super) async fn logout_request(
        &self,
        idp: &IdentityProvider,
        session: &SamlSession,
    ) -> Result<Option<LogoutStart>, UpstreamError> {
        let saml = settings(idp)?;
        let metadata = self.idp_metadata(idp, saml).await?;
        let Some(endpoint) = metadata.slo_redirect.as_ref() else { return Ok(None) };
        let request_id = format!("_{}", hex_id());
        let xml = logout::LogoutRequest {
            id: &request_id,
            issue_instant: self.clock.now(),
            destination: endpoint.as_str(),
            issuer: &saml.entity_id,
            session,
        }
        .to_xml()
        .map_err(UpstreamError::Misconfigured)?;
        let key = rsa_private_key(saml.signing_key.expose_secret()).map_err(UpstreamError::Misconfigured)?;
        // No RelayState: the stored request (found by InResponseTo) says where the browser goes next.
        let url =
            request::redirect_url(endpoint, "SAMLRequest", &xml, None, &key).map_err(UpstreamError::Misconfigured)?;
        Ok(Some(LogoutStart { url, request_id }))
    }

    /// Checks a LogoutResponse that came back to pforte's SingleLogoutService over the HTTP-Redirect
    /// binding (`raw_query` as it arrived): the query signature against the IdP's pinned
    /// certificates, Issuer, Destination. InResponseTo is the caller's to match.
    pub(super) async fn logout_response(
        &self,
        idp: &IdentityProvider,
        raw_query: &str,
    ) -> Result<LogoutAnswer, UpstreamError> {
        let saml = settings(idp)?;
        let metadata = self.idp_metadata(idp, saml).await?;
        let refused = |refusal: response::Refusal| match refusal {
            response::Refusal::Status(code) | response::Refusal::Invalid(code) => UpstreamError::InvalidResponse(code),
        };
        let received = logout::receive(raw_query, "SAMLResponse", &metadata.signing_certificates).map_err(refused)?;
        let read = logout::read_logout_response(&received.xml).map_err(refused)?;
        let invalid = |why: &str| UpstreamError::InvalidResponse(why.to_owned());
        if read.issuer.as_deref() != Some(metadata.entity_id.as_str()) {
            return Err(invalid("the LogoutResponse names another Issuer than the IdP's entityID"));
        }
        if read.destination.as_deref() != Some(self.slo_url(idp).as_str()) {
            return Err(invalid("the LogoutResponse is addressed to another Destination"));
        }
        let in_response_to =
            read.in_response_to.ok_or_else(|| invalid("the LogoutResponse answers no request (InResponseTo)"))?;
        Ok(LogoutAnswer { in_response_to, success: read.status == logout::STATUS_SUCCESS })
    }

    /// Fetches the IdP's metadata now (for the operator's status report): the number of signing
    /// certificates it pins.
    pub(super) async fn probe(&self, idp: &IdentityProvider) -> Result<usize, UpstreamError> {
        let saml = settings(idp)?;
        if let MetadataSource::Url(_) = &saml.metadata {
            self.forget(idp.id.as_str());
        }
        Ok(self.idp_metadata(idp, saml).await?.signing_certificates.len())
    }

    /// How long ago the IdP's metadata (with the certificates pforte verifies with) was fetched;
    /// `None` before the first fetch, and for metadata from a file, which a reload reads again.
    pub(super) fn metadata_age(&self, idp: &IdentityProvider) -> Option<std::time::Duration> {
        let fetched_at = self.lock().get(idp.id.as_str())?.fetched_at;
        self.clock.now().signed_duration_since(fetched_at).to_std().ok()
    }

    /// The origin a browser reaches when sent to this IdP (for a page's `form-action`).
    pub(super) async fn login_origin(&self, idp: &IdentityProvider) -> Option<url::Origin> {
        let saml = settings(idp).ok()?;
        let metadata = self.idp_metadata(idp, saml).await.ok()?;
        metadata.sso_redirect.as_ref().map(url::Url::origin)
    }

    /// The IdP's metadata: the file read with the registry, or the URL's document while fresh.
    async fn idp_metadata(
        &self,
        idp: &IdentityProvider,
        saml: &SamlUpstream,
    ) -> Result<Arc<IdpMetadata>, UpstreamError> {
        let url = match &saml.metadata {
            MetadataSource::File(metadata) => return Ok(Arc::new((**metadata).clone())),
            MetadataSource::Url(url) => url.as_str(),
        };
        let now = self.clock.now();
        let refresh = TimeDelta::from_std(saml.metadata_refresh).unwrap_or(TimeDelta::MAX);
        if let Some(cached) = self.lock().get(idp.id.as_str()) {
            if cached.url == url && now >= cached.fetched_at && now.signed_duration_since(cached.fetched_at) < refresh {
                return Ok(cached.metadata.clone());
            }
        }
        let metadata = Arc::new(self.fetch_metadata(url).await?);
        let fetched = Fetched { url: url.to_owned(), metadata: metadata.clone(), fetched_at: now };
        self.lock().insert(idp.id.to_string(), fetched);
        Ok(metadata)
    }

    async fn fetch_metadata(&self, url: &str) -> Result<IdpMetadata, UpstreamError> {
        let unavailable = |why: String| UpstreamError::Unavailable(format!("the IdP's metadata {why}"));
        let response = crate::http_client::with_trace_context(self.http.get(url))
            .send()
            .await
            .map_err(|e| unavailable(format!("cannot be fetched: {}", super::discovery::without_url(&e))))?;
        if response.status() != reqwest::StatusCode::OK {
            return Err(unavailable(format!("answered HTTP {}", response.status().as_u16())));
        }
        let body = crate::http_client::read_capped(response, MAX_METADATA_BYTES)
            .await
            .map_err(|e| unavailable(format!("cannot be read: {e}")))?;
        let text = String::from_utf8(body.to_vec()).map_err(|_| unavailable("is not UTF-8".into()))?;
        IdpMetadata::parse(&text).map_err(unavailable)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Fetched>> {
        self.fetched.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The level the assertion proves, and the value it was read from: `AuthnContextClassRef`, and the
/// provider's `level_attribute` where it has one (BundID's `EID-CITIZEN-QAA-LEVEL`). Both go through
/// `[levels]`; where both name a level the lower counts, so neither can raise the other.
fn level(
    idp: &IdentityProvider,
    saml: &SamlUpstream,
    assertion: &response::CheckedAssertion,
) -> Result<(Level, String), UpstreamError> {
    let stated = match saml.level_attribute.as_ref().and_then(|name| assertion.attributes.get(name)) {
        None => None,
        Some(values) => match values.as_slice() {
            [value] => {
                let value = value.trim();
                let level = idp.level_of(value).ok_or_else(|| UpstreamError::UnknownLevel(value.to_owned()))?;
                Some((level, value.to_owned()))
            }
            _ => return Err(UpstreamError::InvalidResponse("the level attribute carries no single value".into())),
        },
    };
    let class_ref = assertion.class_ref.as_deref().filter(|class_ref| !class_ref.is_empty());
    let by_class_ref = match (class_ref, &stated) {
        (Some(class_ref), None) => {
            Some((idp.level_of(class_ref).ok_or_else(|| UpstreamError::UnknownLevel(class_ref.to_owned()))?, class_ref))
        }
        // With the level stated as an attribute, a class ref outside `[levels]` (e.g. `unspecified`) says nothing.
        (Some(class_ref), Some(_)) => idp.level_of(class_ref).map(|level| (level, class_ref)),
        (None, _) => None,
    };
    match (by_class_ref, stated) {
        (Some((by_class, class_ref)), Some((by_attribute, value))) => {
            Ok(if by_attribute < by_class { (by_attribute, value) } else { (by_class, class_ref.to_owned()) })
        }
        (Some((level, class_ref)), None) => Ok((level, class_ref.to_owned())),
        (None, Some(stated)) => Ok(stated),
        (None, None) => Err(UpstreamError::InvalidResponse("the AuthnStatement names no AuthnContextClassRef".into())),
    }
}

fn settings(idp: &IdentityProvider) -> Result<&SamlUpstream, UpstreamError> {
    idp.saml().ok_or_else(|| UpstreamError::Misconfigured("the provider is not a SAML identity provider".into()))
}

/// 16 random bytes in hex: an AuthnRequest ID nobody can guess.
fn hex_id() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The claims pforte passes on: each attribute named in the provider's `[claims]`, under its pforte
/// name; one value as a string, several as a list. Everything else is dropped (data minimisation).
fn map_attributes(
    idp: &IdentityProvider,
    attributes: &std::collections::BTreeMap<String, Vec<String>>,
) -> Map<String, Value> {
    let mut claims = Map::new();
    for (name, pforte) in &idp.claims {
        let value = match attributes.get(name).map(Vec::as_slice) {
            Some([one]) => Value::String(one.clone()),
            Some([]) | None => continue,
            Some(many) => Value::Array(many.iter().cloned().map(Value::String).collect()),
        };
        claims.insert((*pforte).to_owned(), value);
    }
    claims
}

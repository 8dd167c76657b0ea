//! Provider metadata (OpenID Connect Discovery) and signing keys, cached per provider. Metadata is
//! fetched again after the provider's `discovery_refresh`; keys also when an ID token names a key that is
//! not in the cached set, but at most once per [`JWKS_REFETCH_COOLDOWN`], so forged tokens with random key
//! ids cannot make pforte hammer the provider.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, TimeDelta, Utc};
use openidconnect::core::{
    CoreAuthDisplay, CoreClaimName, CoreClaimType, CoreClientAuthMethod, CoreGrantType, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm, CoreResponseMode, CoreResponseType,
    CoreSubjectIdentifierType,
};
use openidconnect::{AdditionalProviderMetadata, JsonWebKeySet, ProviderMetadata};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use tracing::Instrument;

use super::UpstreamError;
use crate::clock::Clock;
use crate::http_client::{outbound_span, record_failure, record_status, with_trace_context};
use crate::registry::{IdentityProvider, OidcUpstream};
use crate::telemetry::metrics::{measure_upstream, UpstreamStep};

/// How long after a key refetch an unknown key id is refused without asking the provider again.
pub(super) const JWKS_REFETCH_COOLDOWN: TimeDelta = TimeDelta::seconds(60);

/// Discovery fields pforte reads beyond OpenID Connect Discovery 1.0.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub(crate) struct ExtraMetadata {
    /// RFC 9207: the provider puts `iss` into every authorization response.
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
    /// RP-Initiated Logout: where to send the browser so the provider's session ends too.
    #[serde(default)]
    pub end_session_endpoint: Option<String>,
}

impl AdditionalProviderMetadata for ExtraMetadata {}

pub(crate) type Metadata = ProviderMetadata<
    ExtraMetadata,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// What pforte knows about one provider. `metadata.jwks()` holds the keys in use.
#[derive(Clone, Debug)]
pub(crate) struct Provider {
    pub metadata: Metadata,
    /// The configured issuer this was discovered for; an entry for another is stale.
    issuer: String,
    fetched_at: DateTime<Utc>,
    jwks_refetched_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Default)]
pub(crate) struct ProviderCache {
    // A plain mutex: it guards map operations only and is never held across an await.
    entries: Mutex<HashMap<String, Arc<Provider>>>,
}

impl ProviderCache {
    /// The provider's metadata and keys, from the cache while fresh, otherwise discovered anew.
    pub(super) async fn provider(
        &self,
        http: &reqwest::Client,
        clock: &dyn Clock,
        idp: &IdentityProvider,
    ) -> Result<Arc<Provider>, UpstreamError> {
        let oidc = super::oidc_settings(idp)?;
        let now = clock.now();
        let refresh = TimeDelta::from_std(oidc.discovery_refresh).unwrap_or(TimeDelta::MAX);
        if let Some(cached) = self.get(idp.id.as_str()) {
            let fresh = now.signed_duration_since(cached.fetched_at) < refresh && now >= cached.fetched_at;
            if fresh && cached.issuer == oidc.issuer.as_str() {
                return Ok(cached);
            }
        }
        self.fetch(http, clock, idp).await
    }

    /// Discovery and keys fetched now, whatever the cache holds; what arrives replaces the cached
    /// entry, so a probe that succeeds refreshes it for logins too.
    pub(super) async fn fetch(
        &self,
        http: &reqwest::Client,
        clock: &dyn Clock,
        idp: &IdentityProvider,
    ) -> Result<Arc<Provider>, UpstreamError> {
        let id = idp.id.as_str();
        let oidc = super::oidc_settings(idp)?;
        let discovery = discover(http, oidc).instrument(outbound_span("upstream.discovery", id));
        let mut metadata = measure_upstream(id, UpstreamStep::Discovery, discovery).await?;
        let keys = fetch_jwks(http, &metadata).instrument(outbound_span("upstream.jwks", id));
        let jwks = measure_upstream(id, UpstreamStep::Jwks, keys).await?;
        metadata = metadata.set_jwks(jwks);
        let provider = Arc::new(Provider {
            metadata,
            issuer: oidc.issuer.as_str().to_owned(),
            fetched_at: clock.now(),
            jwks_refetched_at: None,
        });
        self.put(idp.id.as_str(), provider.clone());
        Ok(provider)
    }

    /// When the keys in use for provider `id` were fetched, if any are cached.
    pub(super) fn keys_fetched_at(&self, id: &str) -> Option<DateTime<Utc>> {
        self.get(id).map(|cached| cached.jwks_refetched_at.unwrap_or(cached.fetched_at))
    }

    /// Fetches the keys again for an ID token signed with an unknown key, unless that was done within the
    /// cooldown; `None` means the cooldown holds and the token must be refused.
    pub(super) async fn refetch_jwks(
        &self,
        http: &reqwest::Client,
        clock: &dyn Clock,
        idp: &IdentityProvider,
        current: &Provider,
    ) -> Result<Option<Arc<Provider>>, UpstreamError> {
        let now = clock.now();
        // Check and claim under one lock, so concurrent logins with the same unknown key fetch only once.
        let claimed = {
            let mut entries = self.lock();
            let last = entries.get(idp.id.as_str()).and_then(|p| p.jwks_refetched_at).or(current.jwks_refetched_at);
            if last.is_some_and(|last| now.signed_duration_since(last) < JWKS_REFETCH_COOLDOWN) {
                return Ok(None);
            }
            let claimed = Arc::new(Provider { jwks_refetched_at: Some(now), ..current.clone() });
            entries.insert(idp.id.as_str().to_owned(), claimed.clone());
            claimed
        };
        let keys = fetch_jwks(http, &current.metadata).instrument(outbound_span("upstream.jwks", idp.id.as_str()));
        let jwks = measure_upstream(idp.id.as_str(), UpstreamStep::Jwks, keys).await?;
        let provider = Arc::new(Provider { metadata: claimed.metadata.clone().set_jwks(jwks), ..(*claimed).clone() });
        self.put(idp.id.as_str(), provider.clone());
        Ok(Some(provider))
    }

    fn get(&self, id: &str) -> Option<Arc<Provider>> {
        self.lock().get(id).cloned()
    }

    fn put(&self, id: &str, provider: Arc<Provider>) {
        self.lock().insert(id.to_owned(), provider);
    }

    /// Drops what is cached for provider `id`; the next login discovers it anew.
    pub(super) fn forget(&self, id: &str) {
        self.lock().remove(id);
    }

    /// The map; a panic elsewhere while it was held leaves nothing half-written, so poisoning is ignored.
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<Provider>>> {
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Fetches `{issuer}/.well-known/openid-configuration` and insists that it names the configured issuer
/// exactly (OpenID Connect Discovery, section 4.3): otherwise another provider could speak for this one.
async fn discover(http: &reqwest::Client, oidc: &OidcUpstream) -> Result<Metadata, UpstreamError> {
    let url = format!("{}/.well-known/openid-configuration", oidc.issuer.as_str().trim_end_matches('/'));
    let metadata: Metadata = get_json(http, &url, "the discovery document").await?;
    if metadata.issuer().as_str() != oidc.issuer.as_str() {
        return Err(UpstreamError::InvalidResponse(format!(
            "the discovery document names the issuer `{}`, but `{}` is configured",
            metadata.issuer().as_str(),
            oidc.issuer
        )));
    }
    Ok(metadata)
}

async fn fetch_jwks(
    http: &reqwest::Client,
    metadata: &Metadata,
) -> Result<JsonWebKeySet<CoreJsonWebKey>, UpstreamError> {
    get_json(http, metadata.jwks_uri().url().as_str(), "the key set (jwks_uri)").await
}

/// A GET through the shared client that must answer 200 with JSON of the expected shape. Anything else
/// means the provider cannot be used right now.
async fn get_json<T: DeserializeOwned>(http: &reqwest::Client, url: &str, what: &str) -> Result<T, UpstreamError> {
    let response = with_trace_context(http.get(url).header(reqwest::header::ACCEPT, "application/json"))
        .send()
        .await
        .inspect_err(|_| record_failure())
        .map_err(|e| UpstreamError::Unavailable(format!("{what} cannot be fetched: {}", without_url(&e))))?;
    let status = response.status();
    record_status(status);
    if status != reqwest::StatusCode::OK {
        return Err(UpstreamError::Unavailable(format!("{what} answered HTTP {}", status.as_u16())));
    }
    // Capped (SECURITY.md #31): a key set or discovery document has no reason to be large.
    let body = crate::http_client::read_capped(response, crate::http_client::DEFAULT_MAX_BODY_BYTES)
        .await
        .map_err(|e| UpstreamError::Unavailable(format!("{what} cannot be read: {e}")))?;
    serde_json::from_slice(&body)
        .map_err(|e| UpstreamError::Unavailable(format!("{what} is not valid: {}", json_problem(&e))))
}

/// The kind of a transport failure. reqwest's own message names the URL, which is fine for discovery but
/// is kept out of errors in general so no caller has to think about what a URL might carry.
pub(super) fn without_url(error: &reqwest::Error) -> &'static str {
    if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connection failed"
    } else if error.is_redirect() {
        "redirect (redirects are not followed)"
    } else if error.is_body() || error.is_decode() {
        "the response broke off"
    } else {
        "request error"
    }
}

pub(super) fn json_problem(error: &serde_json::Error) -> &'static str {
    match error.classify() {
        serde_json::error::Category::Io => "it could not be read",
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => "it is not JSON",
        serde_json::error::Category::Data => "required fields are missing or malformed",
    }
}

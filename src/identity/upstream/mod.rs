//! pforte as relying party of upstream account providers (BundID-style citizen accounts, company accounts):
//! the OpenID Connect authorization code flow with PKCE, from the authorization request to a checked,
//! mapped identity; SAML 2.0 providers through [`saml`], behind the same [`Upstreams::begin_with`]
//! and, for their posted Response, [`Upstreams::complete_saml`].
//!
//! A login is two calls. [`Upstreams::begin`] makes the authorization request and returns what the caller
//! must keep for the flow ([`PendingUpstream`], stored encrypted and bound to the browser, used once).
//! [`Upstreams::complete`] takes the callback's query parameters and that stored value, checks the response
//! for forgery and mix-ups, redeems the code, validates the ID token and maps claims and level.
//!
//! Tokens, codes, claims and other personal data never go into logs or error messages; errors say what
//! was wrong, not what was received.

mod discovery;
mod exchange;
mod freshness;
pub mod saml;
mod validate;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use openidconnect::core::{CoreAuthPrompt, CoreAuthenticationFlow, CoreClient, CoreIdToken};
use openidconnect::{
    AuthenticationContextClass, ClientId, CsrfToken, Nonce, OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, Scope,
    TokenResponse,
};
use secrecy::SecretString;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

use self::discovery::{Provider, ProviderCache};
pub use self::freshness::Freshness;
use crate::clock::SharedClock;
use crate::crypto::secret::constant_time_eq;
use crate::registry::{IdentityProvider, Level, OidcUpstream, UpstreamProtocol};
use crate::telemetry::metrics::{measure_upstream, UpstreamStep};

/// How long one [`Upstreams::begin`] or [`Upstreams::complete`] may take in all, unless configured
/// otherwise: a hanging provider shows the citizen an error page in seconds.
pub const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(5);

/// The relying party towards all upstream identity providers, with their discovered metadata and keys.
pub struct Upstreams {
    http: reqwest::Client,
    clock: SharedClock,
    /// The URL below which each provider has its own callback path, without a trailing slash.
    callback_base: String,
    timeout: Duration,
    cache: ProviderCache,
    saml: saml::SamlRelyingParty,
}

/// Where to send the browser, and what to keep until the callback.
#[derive(Debug)]
pub struct UpstreamRequest {
    pub authorization_url: url::Url,
    pub pending: PendingUpstream,
}

/// One upstream login in flight. The caller stores it (encrypted, bound to the browser) and hands it to
/// [`Upstreams::complete`] once; it holds the PKCE verifier and nonce, so it is never logged.
#[derive(Clone, Serialize, Deserialize)]
pub struct PendingUpstream {
    pub provider_id: String,
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
    /// The issuer this flow was started with: a response from any other is a mix-up.
    pub expected_issuer: String,
    pub redirect_uri: String,
    /// The level the online service asked for; a login proving less is refused.
    #[serde(serialize_with = "serialize_level")]
    pub required_level: Level,
    /// What the online service asked about the age of the login (`prompt=login`, `max_age`).
    #[serde(default)]
    pub freshness: Freshness,
    /// When pforte sent the browser to the provider (seconds): with `prompt=login` the person must
    /// have logged in after this.
    #[serde(default)]
    pub requested_at: i64,
    /// SAML: the AuthnRequest's ID, the only `InResponseTo` a Response may carry.
    #[serde(default)]
    pub request_id: Option<String>,
}

impl fmt::Debug for PendingUpstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingUpstream")
            .field("provider_id", &self.provider_id)
            .field("expected_issuer", &self.expected_issuer)
            .field("redirect_uri", &self.redirect_uri)
            .field("required_level", &self.required_level)
            .field("freshness", &self.freshness)
            .finish_non_exhaustive()
    }
}

/// The query parameters of an authorization response at a provider's redirect URI.
#[derive(Clone, Default, Deserialize)]
pub struct CallbackParams {
    pub code: Option<String>,
    pub state: Option<String>,
    pub iss: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

impl fmt::Debug for CallbackParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallbackParams")
            .field("code", &self.code.as_ref().map(|_| "[redacted]"))
            .field("state", &self.state.as_ref().map(|_| "[redacted]"))
            .field("iss", &self.iss)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

/// Who logged in upstream, at which level, with the claims pforte may pass on.
#[derive(Clone)]
pub struct UpstreamIdentity {
    pub provider_id: String,
    pub subject: String,
    pub level: Level,
    pub acr: String,
    pub amr: Vec<String>,
    pub auth_time: Option<i64>,
    /// Under pforte's claim names (see `registry::PFORTE_CLAIMS`); upstream claims without a mapping
    /// are dropped.
    pub claims: Map<String, Value>,
}

impl fmt::Debug for UpstreamIdentity {
    /// Names the claims present, never their values or the subject: this is personal data.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamIdentity")
            .field("provider_id", &self.provider_id)
            .field("level", &self.level)
            .field("acr", &self.acr)
            .field("amr", &self.amr)
            .field("claims", &self.claims.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Why an upstream login did not produce an identity. Messages carry no token contents.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The provider answered with `error=` (the citizen cancelled, `access_denied`, `login_required`, ...).
    #[error("the identity provider refused the login: {error}")]
    Denied { error: String, description: Option<String> },
    /// Down, too slow, a 5xx, or metadata that is not usable.
    #[error("the identity provider is unavailable: {0}")]
    Unavailable(String),
    /// A token or response that fails validation.
    #[error("the identity provider sent an invalid response: {0}")]
    InvalidResponse(String),
    #[error("the state of the authorization response does not belong to this login")]
    StateMismatch,
    /// The response names another issuer than the flow was started with, or arrived at the callback of
    /// another provider: an IdP mix-up.
    #[error("the authorization response comes from another identity provider than this login was sent to")]
    IssuerMismatch,
    /// The `acr` of the ID token is missing (empty) or not in the provider's `[levels]`.
    #[error("the identity provider reported a level `{0}` that is not mapped to a level of assurance")]
    UnknownLevel(String),
    /// The login proves less than the online service required.
    #[error("the login proves level {proven}, below the required {required}")]
    LevelTooLow { required: Level, proven: Level },
    /// The service asked for a recent login (`prompt=login`, `max_age`) and the ID token's `auth_time`
    /// is missing or too old.
    #[error("the identity provider did not confirm a login as recent as asked: {0}")]
    NotFresh(&'static str),
    /// No login at this provider reaches the required level.
    #[error("the identity provider offers no login at level {0} or above")]
    LevelNotOffered(Level),
    /// pforte's own entry for the provider cannot be used (e.g. an unreadable private key).
    #[error("the identity provider entry is misconfigured: {0}")]
    Misconfigured(String),
}

impl Upstreams {
    /// `timeout` bounds each whole `begin` or `complete` call, all upstream requests included
    /// (normally [`DEFAULT_UPSTREAM_TIMEOUT`]). `http` is the shared outbound client. `callback_base` is
    /// the URL below which the edge takes each provider's authorization response.
    pub fn new(http: reqwest::Client, clock: SharedClock, callback_base: &str, timeout: Duration) -> Self {
        Self::with_saml_base(http, clock, callback_base, "", timeout)
    }

    /// [`Upstreams::new`], with SAML providers: `saml_base` is the URL below which each provider has
    /// its AssertionConsumerService and metadata (`{saml_base}/<id>/acs`, `.../metadata`).
    pub fn with_saml_base(
        http: reqwest::Client,
        clock: SharedClock,
        callback_base: &str,
        saml_base: &str,
        timeout: Duration,
    ) -> Self {
        let callback_base = callback_base.trim_end_matches('/').to_owned();
        let saml = saml::SamlRelyingParty::new(http.clone(), clock.clone(), saml_base);
        Upstreams { http, clock, callback_base, timeout, cache: ProviderCache::default(), saml }
    }

    /// The SAML service provider, for the edge that serves its metadata.
    pub fn saml(&self) -> &saml::SamlRelyingParty {
        &self.saml
    }

    /// Forgets the discovery and keys cached for provider `id`, whose registry entry a reload changed or
    /// removed: a changed issuer must not be answered from the old one's metadata.
    pub fn forget(&self, id: &str) {
        self.cache.forget(id);
        self.saml.forget(id);
    }

    /// The redirect URI registered at a provider: `{callback_base}/{id}`, one path per provider so a
    /// response can only ever be taken for that provider's flow.
    pub fn redirect_uri(&self, idp: &IdentityProvider) -> String {
        format!("{}/{}", self.callback_base, idp.id)
    }

    /// Builds the authorization request: fresh `state`, `nonce` and PKCE S256 verifier; `acr_values` asking
    /// for the lowest level the provider maps at or above `required`; the provider's scopes.
    pub async fn begin(&self, idp: &IdentityProvider, required: Level) -> Result<UpstreamRequest, UpstreamError> {
        self.begin_with(idp, required, Freshness::default()).await
    }

    /// [`Upstreams::begin`], asking the provider for a login as recent as `freshness` says.
    pub async fn begin_with(
        &self,
        idp: &IdentityProvider,
        required: Level,
        freshness: Freshness,
    ) -> Result<UpstreamRequest, UpstreamError> {
        if idp.highest_level().is_none_or(|highest| highest < required) {
            return Err(UpstreamError::LevelNotOffered(required));
        }
        let oidc = match &idp.protocol {
            UpstreamProtocol::Oidc(oidc) => oidc,
            UpstreamProtocol::Saml(_) => return self.bounded(self.saml.begin(idp, required, freshness)).await,
        };
        self.bounded(async {
            let acr = idp.acr_values.range(required..).next().map(|(_, acr)| acr.clone());
            let provider = self.cache.provider(&self.http, self.clock.as_ref(), idp).await?;
            let redirect_uri = self.redirect_uri(idp);
            let redirect_url = RedirectUrl::new(redirect_uri.clone())
                .map_err(|_| UpstreamError::Misconfigured("the callback URL is not a valid URL".into()))?;
            let client = CoreClient::from_provider_metadata(
                provider.metadata.clone(),
                ClientId::new(oidc.client_id.clone()),
                None,
            )
            .set_redirect_uri(redirect_url);
            let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
            let mut request = client
                .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
                .set_pkce_challenge(challenge);
            // The library always sends `openid`; adding it again would repeat it in `scope`.
            for scope in oidc.scopes.iter().filter(|scope| *scope != "openid") {
                request = request.add_scope(Scope::new(scope.clone()));
            }
            if let Some(acr) = acr {
                request = request.add_auth_context_value(AuthenticationContextClass::new(acr));
            }
            if freshness.prompt_login {
                request = request.add_prompt(CoreAuthPrompt::Login);
            }
            if let Some(max_age) = freshness.max_age {
                request = request.set_max_age(Duration::from_secs(max_age));
            }
            let (authorization_url, state, nonce) = request.url();
            let pending = PendingUpstream {
                provider_id: idp.id.to_string(),
                state: state.secret().clone(),
                nonce: nonce.secret().clone(),
                pkce_verifier: verifier.secret().clone(),
                expected_issuer: oidc.issuer.as_str().to_owned(),
                redirect_uri,
                required_level: required,
                freshness,
                requested_at: self.clock.now().timestamp(),
                request_id: None,
            };
            Ok(UpstreamRequest { authorization_url, pending })
        })
        .await
    }

    /// The origins a browser reaches when it is sent to this provider's login: the authorization
    /// endpoint's (from discovery) and the issuer's. A page whose form leads there must allow them
    /// (`form-action`). Discovery that fails leaves the issuer's origin, which starting the login
    /// will then report as unreachable anyway.
    pub async fn login_origins(&self, idp: &IdentityProvider) -> Vec<url::Origin> {
        let oidc = match &idp.protocol {
            UpstreamProtocol::Oidc(oidc) => oidc,
            UpstreamProtocol::Saml(_) => {
                return self.bounded_option(self.saml.login_origin(idp)).await.into_iter().collect()
            }
        };
        let mut origins = vec![oidc.issuer.url().origin()];
        let discovered = self.bounded(self.cache.provider(&self.http, self.clock.as_ref(), idp)).await;
        match discovered {
            Ok(provider) => {
                let endpoint = provider.metadata.authorization_endpoint().url().origin();
                if !origins.contains(&endpoint) {
                    origins.push(endpoint);
                }
            }
            Err(e) => tracing::warn!(idp = idp.id.as_str(), error = %e, "no discovery for the choice page's policy"),
        }
        origins
    }

    /// Where to send the browser so the provider ends its own session too (RP-Initiated Logout), if
    /// the provider offers it; it returns the browser to `post_logout_redirect_uri` with `state`.
    pub async fn end_session_url(
        &self,
        idp: &IdentityProvider,
        post_logout_redirect_uri: &str,
        state: &str,
    ) -> Result<Option<url::Url>, UpstreamError> {
        let Some(oidc) = idp.oidc() else {
            // SAML Single Logout needs the login's NameID and SessionIndex: `identity::saml_logout`.
            return Ok(None);
        };
        self.bounded(async {
            let provider = self.cache.provider(&self.http, self.clock.as_ref(), idp).await?;
            let Some(endpoint) = provider.metadata.additional_metadata().end_session_endpoint.as_deref() else {
                return Ok(None);
            };
            let mut url = url::Url::parse(endpoint)
                .map_err(|_| UpstreamError::InvalidResponse("end_session_endpoint is not a URL".into()))?;
            url.query_pairs_mut()
                .append_pair("client_id", &oidc.client_id)
                .append_pair("post_logout_redirect_uri", post_logout_redirect_uri)
                .append_pair("state", state);
            Ok(Some(url))
        })
        .await
    }

    /// Completes a login from the callback's query parameters and what [`Upstreams::begin`] returned.
    /// The caller deletes `pending` before or right after this call, whatever the outcome: a state is
    /// good for one response only.
    pub async fn complete(
        &self,
        idp: &IdentityProvider,
        pending: &PendingUpstream,
        callback: &CallbackParams,
    ) -> Result<UpstreamIdentity, UpstreamError> {
        self.bounded(self.complete_unbounded(idp, pending, callback)).await
    }

    async fn complete_unbounded(
        &self,
        idp: &IdentityProvider,
        pending: &PendingUpstream,
        callback: &CallbackParams,
    ) -> Result<UpstreamIdentity, UpstreamError> {
        // Mix-up defence first: this flow must have been sent to this very provider.
        let oidc = idp.oidc().ok_or(UpstreamError::IssuerMismatch)?;
        if pending.provider_id != idp.id.as_str() || pending.expected_issuer != oidc.issuer.as_str() {
            return Err(UpstreamError::IssuerMismatch);
        }
        let state_matches = callback
            .state
            .as_deref()
            .is_some_and(|state| constant_time_eq(&SecretString::from(pending.state.clone()), state));
        if !state_matches {
            return Err(UpstreamError::StateMismatch);
        }
        if callback.iss.as_deref().is_some_and(|iss| iss != pending.expected_issuer) {
            return Err(UpstreamError::IssuerMismatch);
        }
        let provider = self.cache.provider(&self.http, self.clock.as_ref(), idp).await?;
        if callback.iss.is_none()
            && provider.metadata.additional_metadata().authorization_response_iss_parameter_supported
        {
            // RFC 9207: a provider that announces `iss` always sends it; a response without is not its own.
            return Err(UpstreamError::IssuerMismatch);
        }
        if let Some(error) = &callback.error {
            return Err(denied(error, callback.error_description.as_deref()));
        }
        let code =
            callback.code.as_deref().filter(|code| !code.is_empty()).ok_or_else(|| {
                UpstreamError::InvalidResponse("the callback carries neither a code nor an error".into())
            })?;

        let redeem = exchange::redeem_code(&self.http, self.clock.as_ref(), idp, &provider, pending, code);
        let tokens = measure_upstream(idp.id.as_str(), UpstreamStep::Token, redeem).await?;
        let id_token = tokens
            .id_token()
            .ok_or_else(|| UpstreamError::InvalidResponse("the token response carries no ID token".into()))?;
        let verified = self.verify_id_token(idp, oidc, provider.clone(), id_token, &pending.nonce).await?;
        freshness::check(pending, verified.auth_time, self.clock.now())?;
        let level = idp.level_of(&verified.acr).ok_or_else(|| UpstreamError::UnknownLevel(verified.acr.clone()))?;
        if level < pending.required_level {
            return Err(UpstreamError::LevelTooLow { required: pending.required_level, proven: level });
        }
        let userinfo = match provider.metadata.userinfo_endpoint() {
            Some(endpoint) => {
                let access_token = tokens.access_token().secret();
                let span = crate::http_client::outbound_span("upstream.userinfo", idp.id.as_str());
                let fetch = exchange::fetch_userinfo(&self.http, endpoint.url(), access_token, &verified.subject);
                let fetch = tracing::Instrument::instrument(fetch, span);
                Some(measure_upstream(idp.id.as_str(), UpstreamStep::Userinfo, fetch).await?)
            }
            None => None,
        };
        let claims = validate::map_claims(idp, &verified.raw_claims, userinfo.as_ref());
        Ok(UpstreamIdentity {
            provider_id: idp.id.to_string(),
            subject: verified.subject,
            level,
            acr: verified.acr,
            amr: verified.amr,
            auth_time: verified.auth_time,
            claims,
        })
    }

    /// Validates the ID token against the cached keys; if it names a key they lack, the provider may have
    /// rotated its keys, so they are fetched again (at most once per cooldown) and the token checked once more.
    async fn verify_id_token(
        &self,
        idp: &IdentityProvider,
        oidc: &OidcUpstream,
        provider: Arc<Provider>,
        id_token: &CoreIdToken,
        nonce: &str,
    ) -> Result<validate::VerifiedIdToken, UpstreamError> {
        let now = self.clock.now();
        match validate::verify_id_token(id_token, &provider, oidc, nonce, now) {
            Err(validate::Rejected::UnknownKey) => {
                match self.cache.refetch_jwks(&self.http, self.clock.as_ref(), idp, &provider).await? {
                    Some(fresh) => validate::verify_id_token(id_token, &fresh, oidc, nonce, now),
                    None => Err(validate::Rejected::UnknownKey),
                }
            }
            other => other,
        }
        .map_err(validate::Rejected::into_error)
    }

    /// Fetches the provider's discovery document and key set now, within the same time limit as a
    /// login (for the operator's status report); the answer is the number of keys it publishes.
    pub async fn probe(&self, idp: &IdentityProvider) -> Result<usize, UpstreamError> {
        if idp.saml().is_some() {
            // A SAML IdP's "keys" are the signing certificates of its metadata.
            return self.bounded(self.saml.probe(idp)).await;
        }
        let provider = self.bounded(self.cache.fetch(&self.http, self.clock.as_ref(), idp)).await?;
        Ok(provider.metadata.jwks().keys().len())
    }

    /// How long ago the keys pforte checks this provider's ID tokens with were fetched; `None`
    /// before the first login or probe.
    pub fn keys_age(&self, idp: &IdentityProvider) -> Option<Duration> {
        if idp.saml().is_some() {
            // A SAML IdP's keys are the certificates of its metadata.
            return self.saml.metadata_age(idp);
        }
        let fetched = self.cache.keys_fetched_at(idp.id.as_str())?;
        self.clock.now().signed_duration_since(fetched).to_std().ok()
    }

    /// Completes a SAML login from the Response posted to the provider's ACS (base64, as posted) and
    /// what [`Upstreams::begin`] returned; the caller makes sure `pending` answers one Response only and
    /// remembers the assertion's id (single use).
    pub async fn complete_saml(
        &self,
        idp: &IdentityProvider,
        pending: &PendingUpstream,
        posted: &str,
    ) -> Result<saml::SamlLogin, UpstreamError> {
        self.bounded(self.saml.complete(idp, pending, posted)).await
    }

    /// The signed LogoutRequest for a SAML login, if the IdP offers Single Logout.
    pub async fn saml_logout_request(
        &self,
        idp: &IdentityProvider,
        session: &saml::SamlSession,
    ) -> Result<Option<saml::LogoutStart>, UpstreamError> {
        self.bounded(self.saml.logout_request(idp, session)).await
    }

    /// A LogoutResponse at pforte's SingleLogoutService, checked but for InResponseTo.
    pub async fn saml_logout_response(
        &self,
        idp: &IdentityProvider,
        raw_query: &str,
    ) -> Result<saml::LogoutAnswer, UpstreamError> {
        self.bounded(self.saml.logout_response(idp, raw_query)).await
    }

    /// The signed LogoutResponse to a LogoutRequest the IdP started, checked.
    pub async fn saml_answer_logout_request(
        &self,
        idp: &IdentityProvider,
        raw_query: &str,
    ) -> Result<url::Url, UpstreamError> {
        self.bounded(self.saml.answer_logout_request(idp, raw_query)).await
    }

    /// [`Upstreams::bounded`] for work whose failure only means "nothing known".
    async fn bounded_option<T>(&self, work: impl Future<Output = Option<T>>) -> Option<T> {
        tokio::time::timeout(self.timeout, work).await.ok().flatten()
    }

    async fn bounded<T>(&self, work: impl Future<Output = Result<T, UpstreamError>>) -> Result<T, UpstreamError> {
        tokio::time::timeout(self.timeout, work).await.unwrap_or_else(|_| {
            Err(UpstreamError::Unavailable(format!("no complete answer within {} ms", self.timeout.as_millis())))
        })
    }
}

impl fmt::Debug for Upstreams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upstreams")
            .field("callback_base", &self.callback_base)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// An `error=` response. The code is reduced to the characters OAuth allows for it, and the description
/// kept short, because both end up on an error page and the provider's text is not trusted.
fn denied(error: &str, description: Option<&str>) -> UpstreamError {
    let error: String = error.chars().filter(|c| c.is_ascii_graphic() && *c != '"' && *c != '\\').take(64).collect();
    let description = description.map(|d| d.chars().filter(|c| !c.is_control()).take(200).collect());
    UpstreamError::Denied { error, description }
}

/// The OpenID Connect settings of `idp`; a SAML provider reaching OpenID Connect code is a mix-up.
fn oidc_settings(idp: &IdentityProvider) -> Result<&OidcUpstream, UpstreamError> {
    idp.oidc().ok_or_else(|| UpstreamError::Misconfigured("the provider is not an OpenID Connect provider".into()))
}

fn serialize_level<S: Serializer>(level: &Level, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(level.as_str())
}

//! The browser's way through a login: authorization request → (provider choice) → upstream account
//! provider → callback → code for the online service. Every step is bound to the browser that
//! started it, and no step calls a provider while holding a database transaction.

use std::sync::Arc;

use serde_json::json;
use url::Url;

// The answers to the service's redirect URI live apart; their old paths stay.
use super::redirects::with_query;
pub(crate) use super::redirects::{client_error, error_redirect};
use super::request::AuthorizationRequest;
use super::saml_logout::SamlLogout;
use super::tokens::{minimise, Identity, TokenService};
use super::upstream::saml::{SamlSession, MAX_RESPONSE_BASE64_BYTES};
use super::upstream::{CallbackParams, Freshness, PendingUpstream, UpstreamError, UpstreamIdentity, Upstreams};
use crate::audit::{AuditEvent, AuditLog};
use crate::clock::SharedClock;
use crate::crypto::{fingerprint, random_token};
use crate::keys::MasterKey;
use crate::registry::{AccountType, IdentityProvider, Level, Registry, SharedRegistry};
use crate::store::logins::LoginRow;
use crate::store::{Database, StorageError};
use crate::telemetry::metrics::{self, LoginEnd};

/// From the authorization request to the provider's answer: time to log in upstream.
pub(crate) const LOGIN_LIFETIME_SECS: i64 = 1800;
/// Codes live at most 60 seconds (SECURITY.md #5).
pub(crate) const CODE_LIFETIME_SECS: i64 = 60;

/// An account provider the person may choose.
#[derive(Debug, Clone)]
pub struct ProviderChoice {
    pub id: String,
    pub display_name: String,
    pub account_type: AccountType,
}

#[derive(Debug, Clone)]
pub enum Next {
    ChooseProvider(Vec<ProviderChoice>),
    Upstream(Url),
}

/// Why a login step cannot go on, in words for the person in front of the browser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// The login is unknown, finished or expired (a replayed or foreign `state`).
    UnknownLogin,
    /// The answer arrived in another browser than the one that started the login.
    WrongBrowser,
    /// The account provider could not be reached or did not answer in time.
    UpstreamDown,
    /// The account provider's answer failed pforte's checks.
    UpstreamInvalid,
    /// The chosen provider is not one this service may use at this level.
    ProviderNotAllowed,
    /// The login proved a lower level of assurance than the service requires.
    LevelTooLow {
        proven: Level,
        required: Level,
    },
    /// pforte's database is away for a moment; trying again shortly will work.
    Unavailable,
    /// The service the login started for is no longer registered (a registry reload took it out).
    NoLongerRegistered,
    Internal,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginError {
    /// Shown as a page; `back` returns to the service with an error, when the service is known.
    Page { problem: Problem, back: Option<String> },
    /// Sent to the service's redirect URI (an error response).
    Redirect(String),
}

#[derive(Clone)]
pub struct LoginService {
    db: Database,
    registry: SharedRegistry,
    upstreams: Arc<Upstreams>,
    tokens: TokenService,
    master: Arc<MasterKey>,
    audit: AuditLog,
    clock: SharedClock,
}

impl LoginService {
    pub fn new(
        db: Database,
        registry: SharedRegistry,
        upstreams: Arc<Upstreams>,
        tokens: TokenService,
        master: Arc<MasterKey>,
        audit: AuditLog,
        clock: SharedClock,
    ) -> Self {
        LoginService { db, registry, upstreams, tokens, master, audit, clock }
    }

    /// SAML Single Logout, on this service's store, keys and providers.
    pub fn saml_logout(&self) -> SamlLogout<'_> {
        SamlLogout {
            db: &self.db,
            registry: &self.registry,
            upstreams: &self.upstreams,
            master: &self.master,
            clock: &self.clock,
        }
    }

    /// Records a validated request and says whether the person must choose a provider first.
    pub async fn start(&self, request: AuthorizationRequest, browser_id: &str) -> Result<(String, Next), LoginError> {
        let registry = self.registry.current();
        let eligible = eligible_providers(&registry, &request);
        let chosen = match &request.idp_hint {
            Some(hint) => match eligible.iter().find(|p| p.id.as_str() == hint) {
                Some(provider) => Some(*provider),
                None => {
                    return Err(self.refuse(&request, "The requested account provider cannot prove the required level."))
                }
            },
            None if eligible.len() == 1 => eligible.first().copied(),
            None if eligible.is_empty() => {
                return Err(self.refuse(&request, "No account provider of this service can prove the required level."))
            }
            None => None,
        };
        let now = self.clock.now_millis();
        let row = LoginRow {
            id: random_token(),
            client_id: request.client_id.clone(),
            request: serde_json::to_string(&request).map_err(|e| self.internal(&e, None))?,
            browser_hash: fingerprint(browser_id),
            provider_id: None,
            upstream_sealed: None,
            identity_sealed: None,
            code_expires_at: None,
            redeemed_at: None,
            access_jti: None,
            refresh_family: None,
            upstream_answer_sealed: None,
            created_at: now,
            expires_at: now + LOGIN_LIFETIME_SECS * 1000,
        };
        // The client and redirect URI were checked against the registry (in memory): genuine, so
        // the service hears `temporarily_unavailable` when the login cannot be recorded.
        self.db.insert_login(&row).await.map_err(|e| self.storage_failed(&e, Some(&request)))?;
        match chosen {
            Some(provider) => {
                Ok((row.id.clone(), Next::Upstream(self.go_upstream(&row.id, &request, provider).await?)))
            }
            None => {
                let choices = eligible
                    .iter()
                    .map(|p| ProviderChoice {
                        id: p.id.as_str().to_owned(),
                        display_name: p.display_name.clone(),
                        account_type: p.account_type,
                    })
                    .collect();
                Ok((row.id, Next::ChooseProvider(choices)))
            }
        }
    }

    /// The person picked a provider on the choice page.
    pub async fn choose(&self, login_id: &str, browser_id: &str, provider_id: &str) -> Result<Url, LoginError> {
        let (row, request) = self.pending_login(login_id, browser_id).await?;
        let registry = self.registry.current();
        let provider = eligible_providers(&registry, &request)
            .into_iter()
            .find(|p| p.id.as_str() == provider_id)
            .ok_or(LoginError::Page { problem: Problem::ProviderNotAllowed, back: None })?;
        self.go_upstream(&row.id, &request, provider).await
    }

    /// The provider sent the browser back. On success the service receives a code.
    pub async fn callback(
        &self,
        provider_id: &str,
        params: &CallbackParams,
        browser_id: Option<&str>,
    ) -> Result<String, LoginError> {
        let unknown = LoginError::Page { problem: Problem::UnknownLogin, back: None };
        let state = params.state.as_deref().ok_or(unknown)?;
        self.finish(provider_id, state, browser_id, Answer::Oidc(params)).await
    }

    /// A SAML IdP posted its Response to the provider's ACS. The post is cross-site, so the browser's
    /// cookie does not come with it: the Response is held, sealed, for the login its RelayState names
    /// (one Response per login), and checked only when the same browser comes back through
    /// [`LoginService::saml_callback`].
    pub async fn hold_saml_response(
        &self,
        provider_id: &str,
        relay_state: &str,
        posted: &str,
    ) -> Result<(), LoginError> {
        let unknown = LoginError::Page { problem: Problem::UnknownLogin, back: None };
        if posted.len() > MAX_RESPONSE_BASE64_BYTES {
            return Err(LoginError::Page { problem: Problem::UpstreamInvalid, back: None });
        }
        let state_hash = fingerprint(relay_state);
        let row = self.db.login_by_upstream_state(&state_hash).await.map_err(|e| self.storage_failed(&e, None))?;
        let row = row.filter(|r| r.expires_at > self.clock.now_millis()).ok_or(unknown.clone())?;
        let sealed = self.master.seal(&row.id, posted.as_bytes()).map_err(|e| self.internal(&e, None))?;
        let held = self.db.hold_upstream_answer(&state_hash, provider_id, &sealed).await;
        if !held.map_err(|e| self.storage_failed(&e, None))? {
            return Err(unknown);
        }
        Ok(())
    }

    /// The browser is back on pforte's own origin after its SAML IdP posted a Response (see
    /// [`LoginService::hold_saml_response`]). On success the service receives a code.
    pub async fn saml_callback(
        &self,
        provider_id: &str,
        relay_state: &str,
        browser_id: Option<&str>,
    ) -> Result<String, LoginError> {
        self.finish(provider_id, relay_state, browser_id, Answer::Saml).await
    }

    /// The common way from an upstream answer to a code: the login its state names, in the browser
    /// that started it, answered by the provider it was sent to.
    async fn finish(
        &self,
        provider_id: &str,
        state: &str,
        browser_id: Option<&str>,
        answer: Answer<'_>,
    ) -> Result<String, LoginError> {
        let unknown = LoginError::Page { problem: Problem::UnknownLogin, back: None };
        let row =
            self.db.login_by_upstream_state(&fingerprint(state)).await.map_err(|e| self.storage_failed(&e, None))?;
        let row = row.filter(|r| r.expires_at > self.clock.now_millis()).ok_or(unknown.clone())?;
        let request: AuthorizationRequest = serde_json::from_str(&row.request).map_err(|e| self.internal(&e, None))?;
        if browser_id.map(fingerprint).as_deref() != Some(row.browser_hash.as_str()) {
            return Err(LoginError::Page { problem: Problem::WrongBrowser, back: None });
        }
        let sealed = row.upstream_sealed.as_deref().ok_or(unknown)?;
        let pending: PendingUpstream =
            serde_json::from_slice(&self.master.open(&row.id, sealed).map_err(|e| self.internal(&e, None))?)
                .map_err(|e| self.internal(&e, None))?;
        // The registry may have been reloaded since the login started: a service or provider taken out
        // in between ends the login here, said plainly.
        let registry = self.registry.current();
        let Some(client) = registry.client(&request.client_id) else {
            return Err(LoginError::Page { problem: Problem::NoLongerRegistered, back: None });
        };
        // Mix-up defence: the answer must come back on the callback of the provider this login went to.
        let went_here = row.provider_id.as_deref() == Some(provider_id) && pending.provider_id == provider_id;
        let provider = match registry.identity_provider(provider_id) {
            Some(p) if went_here => p,
            None if went_here => {
                self.record_failure(&request, provider_id, "provider no longer registered").await;
                return Err(self.refuse(&request, "The account provider is no longer available."));
            }
            _ => {
                // Labelled with the provider the login went to: the callback path is anyone's to type.
                let sent_to = row.provider_id.as_deref().unwrap_or(metrics::UNMATCHED);
                metrics::login_ended(sent_to, request.required_level.as_str(), LoginEnd::Refused);
                self.record_failure(&request, provider_id, "response from another provider").await;
                return Err(LoginError::Redirect(client_error(
                    &request,
                    "access_denied",
                    "The answer came from another account provider.",
                    self.tokens.issuer(),
                )));
            }
        };

        let identity = match answer {
            Answer::Oidc(params) => self.upstreams.complete(provider, &pending, params).await.map(|i| (i, None)),
            Answer::Saml => self.complete_saml(&row, provider, &pending).await,
        };
        let (identity, saml_session) = match identity {
            Ok(answer) => answer,
            Err(error) => return Err(self.upstream_failed(&request, provider, &error).await),
        };
        // `complete` refuses a lower level already; checked again here, where the code is issued.
        if identity.level < request.required_level {
            metrics::login_ended(provider_id, request.required_level.as_str(), LoginEnd::Refused);
            self.record_failure(&request, provider_id, "level too low").await;
            return Err(self.level_too_low(&request, identity.level));
        }
        let sub = self
            .tokens
            .pairwise_subject(&client.sector, provider_id, &identity.subject)
            .map_err(|e| self.internal(&e, None))?;
        let identity = Identity {
            sub,
            idp: provider_id.to_owned(),
            account_type: account_type_name(provider.account_type).to_owned(),
            level: identity.level,
            // As the provider said, or absent: never "now" as a stand-in (SECURITY.md #9).
            auth_time: identity.auth_time,
            amr: identity.amr,
            sid: Some(random_token()),
            claims: minimise(&identity.claims, &request.scopes),
        };
        let plain = serde_json::to_vec(&identity).map_err(|e| self.internal(&e, None))?;
        let sealed = self.master.seal(&row.id, &plain).map_err(|e| self.internal(&e, None))?;
        let code = random_token();
        let code_expires_at = self.clock.now_millis() + CODE_LIFETIME_SECS * 1000;
        let stored = self.db.set_login_code(&row.id, &sealed, &fingerprint(&code), code_expires_at).await;
        if !stored.map_err(|e| self.storage_failed(&e, Some(&request)))? {
            return Err(LoginError::Page { problem: Problem::UnknownLogin, back: None });
        }
        if let (Some(session), Some(sid)) = (saml_session, identity.sid.as_deref()) {
            // Logout may fail later; the login never waits on it.
            self.saml_logout().remember(provider_id, sid, identity.level, &session).await;
        }
        let details = json!({ "client": request.client_id, "idp": provider_id, "level": identity.level.as_str() });
        self.audit_quietly(AuditEvent::new("login.succeeded", &request.client_id, &row.id, details)).await;
        metrics::login_ended(provider_id, request.required_level.as_str(), LoginEnd::Finished);
        let mut pairs = vec![("code", code.as_str())];
        if let Some(state) = &request.state {
            pairs.push(("state", state));
        }
        pairs.push(("iss", self.tokens.issuer()));
        Ok(with_query(&request.redirect_uri, &pairs))
    }

    /// Checks the held SAML Response and consumes its assertion id. The held Response is the only
    /// answer this login's AuthnRequest gets (its slot stays taken); a failed one ends the upstream
    /// part of the login, so the RelayState is then unknown too.
    async fn complete_saml(
        &self,
        row: &LoginRow,
        provider: &IdentityProvider,
        pending: &PendingUpstream,
    ) -> Result<(UpstreamIdentity, Option<SamlSession>), UpstreamError> {
        let outcome = self.check_saml(row, provider, pending).await;
        if outcome.is_err() {
            if let Err(e) = self.db.end_login_upstream(&row.id).await {
                tracing::warn!(error = %e, "could not end a refused SAML login");
            }
        }
        outcome
    }

    async fn check_saml(
        &self,
        row: &LoginRow,
        provider: &IdentityProvider,
        pending: &PendingUpstream,
    ) -> Result<(UpstreamIdentity, Option<SamlSession>), UpstreamError> {
        let invalid = |why: &str| UpstreamError::InvalidResponse(why.to_owned());
        let sealed =
            row.upstream_answer_sealed.as_deref().ok_or_else(|| invalid("no SAML Response arrived for this login"))?;
        let posted =
            self.master.open(&row.id, sealed).map_err(|_| invalid("the held SAML Response cannot be opened"))?;
        let posted = String::from_utf8(posted).map_err(|_| invalid("the held SAML Response is not text"))?;
        let login = self.upstreams.complete_saml(provider, pending, &posted).await?;
        let id_hash = fingerprint(&login.assertion_id);
        let first_use =
            self.db.consume_saml_assertion(provider.id.as_str(), &id_hash, login.valid_until.timestamp_millis()).await;
        if !first_use.map_err(|e| UpstreamError::Unavailable(format!("pforte's database: {e}")))? {
            return Err(invalid("the assertion was used before"));
        }
        Ok((login.identity, login.session))
    }

    async fn pending_login(
        &self,
        login_id: &str,
        browser_id: &str,
    ) -> Result<(LoginRow, AuthorizationRequest), LoginError> {
        let unknown = LoginError::Page { problem: Problem::UnknownLogin, back: None };
        let row = self.db.login_by_id(login_id).await.map_err(|e| self.storage_failed(&e, None))?;
        let row = row.filter(|r| {
            r.expires_at > self.clock.now_millis() && r.identity_sealed.is_none() && r.redeemed_at.is_none()
        });
        let row = row.ok_or(unknown)?;
        if fingerprint(browser_id) != row.browser_hash {
            return Err(LoginError::Page { problem: Problem::WrongBrowser, back: None });
        }
        let request = serde_json::from_str(&row.request).map_err(|e| self.internal(&e, None))?;
        Ok((row, request))
    }

    /// Asks the provider for an authorization request (discovery may call it: outside any
    /// transaction), records it with the login, and returns where to send the browser.
    async fn go_upstream(
        &self,
        login_id: &str,
        request: &AuthorizationRequest,
        provider: &IdentityProvider,
    ) -> Result<Url, LoginError> {
        metrics::login_started(provider.id.as_str(), request.required_level.as_str());
        let freshness = Freshness { prompt_login: request.prompt_login, max_age: request.max_age };
        let upstream = match self.upstreams.begin_with(provider, request.required_level, freshness).await {
            Ok(upstream) => upstream,
            Err(error) => return Err(self.upstream_failed(request, provider, &error).await),
        };
        let plain = serde_json::to_vec(&upstream.pending).map_err(|e| self.internal(&e, Some(request)))?;
        let sealed = self.master.seal(login_id, &plain).map_err(|e| self.internal(&e, Some(request)))?;
        let state_hash = fingerprint(&upstream.pending.state);
        let recorded = self.db.set_login_upstream(login_id, provider.id.as_str(), &state_hash, &sealed).await;
        if !recorded.map_err(|e| self.storage_failed(&e, Some(request)))? {
            return Err(LoginError::Page { problem: Problem::UnknownLogin, back: None });
        }
        Ok(upstream.authorization_url)
    }

    async fn upstream_failed(
        &self,
        request: &AuthorizationRequest,
        provider: &IdentityProvider,
        error: &UpstreamError,
    ) -> LoginError {
        let issuer = self.tokens.issuer();
        tracing::warn!(idp = provider.id.as_str(), error = %error, "upstream login failed");
        self.record_failure(request, provider.id.as_str(), error_kind(error)).await;
        let end = if matches!(error, UpstreamError::Denied { .. }) { LoginEnd::Cancelled } else { LoginEnd::Refused };
        metrics::login_ended(provider.id.as_str(), request.required_level.as_str(), end);
        match error {
            UpstreamError::Denied { .. } => LoginError::Redirect(client_error(
                request,
                "access_denied",
                "The login was cancelled or refused at the account provider.",
                issuer,
            )),
            UpstreamError::LevelTooLow { proven, .. } => self.level_too_low(request, *proven),
            // OpenID Connect Core §3.1.2.6: the login the service asked for could not be confirmed.
            UpstreamError::NotFresh(_) => LoginError::Redirect(client_error(
                request,
                "login_required",
                "The account provider did not confirm a login as recent as prompt=login or max_age asked for.",
                issuer,
            )),
            UpstreamError::LevelNotOffered(_) => LoginError::Redirect(client_error(
                request,
                "access_denied",
                "The account provider cannot prove the required level.",
                issuer,
            )),
            UpstreamError::Unavailable(_) => LoginError::Page {
                problem: Problem::UpstreamDown,
                back: Some(client_error(
                    request,
                    "temporarily_unavailable",
                    "The account provider could not be reached.",
                    issuer,
                )),
            },
            _ => LoginError::Page {
                problem: Problem::UpstreamInvalid,
                back: Some(client_error(
                    request,
                    "access_denied",
                    "The account provider's answer was not valid.",
                    issuer,
                )),
            },
        }
    }

    /// A page that explains the level (people need to know why and what to use instead); its way
    /// back tells the service `access_denied`. No code exists for such a login.
    fn level_too_low(&self, request: &AuthorizationRequest, proven: Level) -> LoginError {
        let description =
            format!("The login reached the level {proven}, but this service requires {}.", request.required_level);
        LoginError::Page {
            problem: Problem::LevelTooLow { proven, required: request.required_level },
            back: Some(client_error(request, "access_denied", &description, self.tokens.issuer())),
        }
    }

    fn refuse(&self, request: &AuthorizationRequest, description: &str) -> LoginError {
        LoginError::Redirect(client_error(request, "access_denied", description, self.tokens.issuer()))
    }

    fn internal(&self, cause: &dyn std::fmt::Display, request: Option<&AuthorizationRequest>) -> LoginError {
        tracing::error!(error = %cause, "login step failed");
        let back = request
            .map(|r| client_error(r, "server_error", "pforte could not complete the login.", self.tokens.issuer()));
        LoginError::Page { problem: Problem::Internal, back }
    }

    /// The database failed a login step. A row it cannot read is pforte's fault; anything else is
    /// the database being away: the service (when its request is known, so genuine) hears
    /// `temporarily_unavailable`, otherwise the browser gets a page saying to try again shortly.
    fn storage_failed(&self, cause: &StorageError, request: Option<&AuthorizationRequest>) -> LoginError {
        if matches!(cause, StorageError::Corrupt(_)) {
            return self.internal(cause, request);
        }
        tracing::warn!(error = %cause, "login step could not reach the database");
        match request {
            Some(request) => LoginError::Redirect(client_error(
                request,
                "temporarily_unavailable",
                "pforte is briefly unavailable; please try again in a moment.",
                self.tokens.issuer(),
            )),
            None => LoginError::Page { problem: Problem::Unavailable, back: None },
        }
    }

    async fn record_failure(&self, request: &AuthorizationRequest, provider_id: &str, reason: &str) {
        let details = json!({ "client": request.client_id, "idp": provider_id, "reason": reason });
        self.audit_quietly(AuditEvent::new("login.failed", &request.client_id, provider_id, details)).await;
    }

    /// An audit failure must not turn a login answer into a different one; it is logged loudly.
    async fn audit_quietly(&self, event: AuditEvent) {
        if let Err(e) = self.audit.append(event).await {
            tracing::error!(error = %e, "could not write the audit log");
        }
    }
}

/// What the provider answered with.
enum Answer<'a> {
    /// The query of an OpenID Connect authorization response.
    Oidc(&'a CallbackParams),
    /// A SAML Response, held with the login.
    Saml,
}

fn eligible_providers<'r>(registry: &'r Registry, request: &AuthorizationRequest) -> Vec<&'r IdentityProvider> {
    let Some(client) = registry.client(&request.client_id) else { return Vec::new() };
    client
        .identity_providers
        .iter()
        .filter_map(|id| registry.identity_provider(id.as_str()))
        .filter(|p| p.highest_level().is_some_and(|level| level >= request.required_level))
        .collect()
}

fn error_kind(error: &UpstreamError) -> &'static str {
    match error {
        UpstreamError::Denied { .. } => "denied upstream",
        UpstreamError::Unavailable(_) => "provider unavailable",
        UpstreamError::InvalidResponse(_) => "invalid provider response",
        UpstreamError::StateMismatch => "state mismatch",
        UpstreamError::IssuerMismatch => "issuer mismatch",
        UpstreamError::UnknownLevel(_) => "unknown level",
        UpstreamError::LevelTooLow { .. } => "level too low",
        UpstreamError::LevelNotOffered(_) => "level not offered",
        UpstreamError::NotFresh(_) => "login not recent enough",
        UpstreamError::Misconfigured(_) => "provider entry misconfigured",
    }
}

pub(crate) fn account_type_name(account_type: AccountType) -> &'static str {
    match account_type {
        AccountType::Person => "person",
        AccountType::Organisation => "organisation",
    }
}

//! SAML Single Logout for RP-initiated logout (issue 12 item 7). A SAML login leaves what a
//! LogoutRequest must name (NameID and SessionIndex) sealed under the master key, found by the hash
//! of the login's `sid` and kept no longer than the level's session limit. Logout reads it, sends
//! the signed LogoutRequest and remembers its ID; the IdP's LogoutResponse must answer that ID, once,
//! which deletes the record, and then the browser goes where the service asked. Reading without
//! taking lets a logout that was shown but never confirmed (another site replaying an old ID token
//! to the confirmation page) leave the person's Single Logout intact. Every failure here ends only the
//! upstream part: pforte's own logout and any login never depend on it (SECURITY.md #40).

use crate::clock::SharedClock;
use crate::crypto::fingerprint;
use crate::keys::MasterKey;
use crate::registry::{IdentityProvider, Level, SharedRegistry};
use crate::store::Database;

use super::levels::session_limits;
use super::upstream::saml::SamlSession;
use super::upstream::Upstreams;

/// How long the IdP has to answer a LogoutRequest.
const LOGOUT_REQUEST_LIFETIME_MS: i64 = 10 * 60 * 1000;
/// The record id a session's NameID and SessionIndex are sealed for (with the sid's hash).
const SESSION_RECORD: &str = "pforte saml session";
/// The record id a LogoutRequest's way back is sealed for (with the request id's hash).
const RETURN_RECORD: &str = "pforte saml logout return";

/// SAML Single Logout on the login service's store, keys and providers.
pub struct SamlLogout<'a> {
    pub(super) db: &'a Database,
    pub(super) registry: &'a SharedRegistry,
    pub(super) upstreams: &'a Upstreams,
    pub(super) master: &'a MasterKey,
    pub(super) clock: &'a SharedClock,
}

/// Why a LogoutResponse was not taken. The text names the check, never a value from the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogoutRefusal {
    /// No SAML provider of this id.
    UnknownProvider,
    /// Signature, Issuer, Destination or the message itself.
    Invalid(String),
    /// InResponseTo names no LogoutRequest pending at this provider (made up, expired, or answered).
    UnknownRequest,
    /// pforte's database or the IdP's metadata could not be reached.
    Unavailable,
}

/// A LogoutResponse that answered pforte's LogoutRequest.
#[derive(Debug)]
pub struct LogoutDone {
    /// What the caller gave [`SamlLogout::start`] to find its way back.
    pub return_to: Vec<u8>,
    /// The IdP ended its session; otherwise it may still hold one.
    pub success: bool,
}

impl SamlLogout<'_> {
    /// Keeps `session` for the login `sid` at `provider_id` for the level's longest session. A
    /// failure is logged and the login goes on: it must not depend on logout.
    pub(super) async fn remember(&self, provider_id: &str, sid: &str, level: Level, session: &SamlSession) {
        let sid_hash = fingerprint(sid);
        let expires_at = self.clock.now_millis() + session_limits(level).0 * 1000;
        let sealed = serde_json::to_vec(session)
            .map_err(|e| e.to_string())
            .and_then(|plain| self.master.seal(&record(SESSION_RECORD, &sid_hash), &plain).map_err(|e| e.to_string()));
        let stored = match sealed {
            Ok(sealed) => self
                .db
                .insert_saml_session(&sid_hash, provider_id, &sealed, expires_at)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        if let Err(e) = stored {
            tracing::warn!(idp = provider_id, error = %e, "could not keep a SAML login for Single Logout");
        }
    }

    /// The IdP's logout URL with a signed LogoutRequest for the login `sid`, when the IdP offers
    /// Single Logout and pforte still holds that login's session; `return_to` comes back with the
    /// answer.
    pub async fn start(&self, idp: &IdentityProvider, sid: &str, return_to: &[u8]) -> Result<Option<url::Url>, String> {
        let sid_hash = fingerprint(sid);
        let now = self.clock.now_millis();
        let Some(sealed) = self.db.saml_session(&sid_hash, idp.id.as_str(), now).await.map_err(|e| e.to_string())?
        else {
            return Ok(None);
        };
        let plain = self.master.open(&record(SESSION_RECORD, &sid_hash), &sealed).map_err(|e| e.to_string())?;
        let session: SamlSession = serde_json::from_slice(&plain).map_err(|e| e.to_string())?;
        let Some(start) = self.upstreams.saml_logout_request(idp, &session).await.map_err(|e| e.to_string())? else {
            return Ok(None);
        };
        let id_hash = fingerprint(&start.request_id);
        let sealed = self.master.seal(&record(RETURN_RECORD, &id_hash), return_to).map_err(|e| e.to_string())?;
        self.db
            .insert_saml_logout_request(&id_hash, idp.id.as_str(), &sid_hash, &sealed, now + LOGOUT_REQUEST_LIFETIME_MS)
            .await
            .map_err(|e| e.to_string())?;
        Ok(Some(start.url))
    }

    /// Checks a LogoutResponse at `provider_id`'s SingleLogoutService (`raw_query` as it arrived)
    /// and takes the LogoutRequest it answers.
    pub async fn finish(&self, provider_id: &str, raw_query: &str) -> Result<LogoutDone, LogoutRefusal> {
        let registry = self.registry.current();
        let idp = registry
            .identity_provider(provider_id)
            .filter(|idp| idp.saml().is_some())
            .ok_or(LogoutRefusal::UnknownProvider)?;
        let answer = self.upstreams.saml_logout_response(idp, raw_query).await.map_err(|e| match e {
            super::upstream::UpstreamError::InvalidResponse(why) => LogoutRefusal::Invalid(why),
            other => {
                tracing::warn!(idp = provider_id, error = %other, "could not check a SAML LogoutResponse");
                LogoutRefusal::Unavailable
            }
        })?;
        let id_hash = fingerprint(&answer.in_response_to);
        let taken = self.db.take_saml_logout_request(&id_hash, provider_id, self.clock.now_millis()).await;
        let pending = match taken {
            Ok(Some(pending)) => pending,
            Ok(None) => return Err(LogoutRefusal::UnknownRequest),
            Err(e) => {
                tracing::warn!(idp = provider_id, error = %e, "could not read a pending SAML LogoutRequest");
                return Err(LogoutRefusal::Unavailable);
            }
        };
        // Answered, whatever the status: this login's logout is done at pforte.
        if let Err(e) = self.db.delete_saml_session(&pending.sid_hash).await {
            tracing::warn!(idp = provider_id, error = %e, "could not delete a logged-out SAML session");
        }
        let return_to = self.master.open(&record(RETURN_RECORD, &id_hash), &pending.return_sealed).map_err(|e| {
            tracing::warn!(idp = provider_id, error = %e, "could not open a pending SAML LogoutRequest");
            LogoutRefusal::Unavailable
        })?;
        Ok(LogoutDone { return_to, success: answer.success })
    }
}

impl SamlLogout<'_> {
    /// Answers a LogoutRequest the IdP `provider_id` started (`raw_query` as it arrived): where the
    /// browser takes pforte's signed LogoutResponse.
    pub async fn answer(&self, provider_id: &str, raw_query: &str) -> Result<url::Url, LogoutRefusal> {
        let registry = self.registry.current();
        let idp = registry
            .identity_provider(provider_id)
            .filter(|idp| idp.saml().is_some())
            .ok_or(LogoutRefusal::UnknownProvider)?;
        self.upstreams.saml_answer_logout_request(idp, raw_query).await.map_err(|e| match e {
            super::upstream::UpstreamError::InvalidResponse(why) => LogoutRefusal::Invalid(why),
            other => {
                tracing::warn!(idp = provider_id, error = %other, "could not answer a SAML LogoutRequest");
                LogoutRefusal::Unavailable
            }
        })
    }
}

fn record(kind: &str, hash: &str) -> String {
    format!("{kind} {hash}")
}

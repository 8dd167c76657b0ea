//! Finance staff in the browser: who may act for which authority after signing in with the
//! authority's staff identity provider (a tenant's `finance.staff` maps a claim value such as a group
//! to finance access), and the browser sessions that follow a sign-in.
//!
//! The browser holds an opaque random session id; the database keeps only its SHA-256. A session ends
//! on logout, after `finance.session_idle_secs` without a request and `finance.session_max_secs` after
//! sign-in. Forms are protected by a synchronizer token derived from the session id (or, before
//! sign-in, from a pre-session cookie), so only a page served to this browser can post them.
//!
//! This module does not speak OpenID Connect: the edge runs the flow with `identity::upstream` and hands
//! the checked identity's subject and mapped claims to [`StaffSessions::sign_in`]. The flow's own data
//! (PKCE verifier, nonce) is opaque here; it is sealed under the master key while in flight.
//!
//! Every sign-in (and a signed-in identity refused for lack of finance access), every allowed use of
//! a session and every sign-out is audited, naming the staff member by provider and subject, never by
//! name. What anyone can cause without signing in (a failed sign-in flow, a page request without a
//! valid session) is counted outside the chain instead (SECURITY.md #32).

use std::sync::Arc;

use secrecy::SecretString;
use serde_json::{json, Map, Value};

use crate::audit::UNREGISTERED;
use crate::audit::{AuditEvent, AuditLog};
use crate::clock::SharedClock;
use crate::config::FinanceSettings;
use crate::crypto::secret::constant_time_eq;
use crate::crypto::{fingerprint, random_token, MasterKey};
use crate::registry::SharedRegistry;
use crate::store::finance_sessions::{FinanceSessionRow, StaffLoginRow};
use crate::store::{Database, StorageError};

use super::FinanceCaller;

/// How long a browser may take at the staff identity provider.
const SIGN_IN_LIFETIME_MILLIS: i64 = 10 * 60 * 1000;

/// A session just opened: `secret` goes into the browser's cookie and nowhere else.
#[derive(Debug)]
pub struct NewSession {
    pub secret: String,
    pub tenants: Vec<String>,
}

/// A live session, checked for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaffSession {
    /// `provider/subject` of a staff sign-in, or the `ftk_` id of a token sign-in.
    pub staff_id: String,
    /// What the page shows: given and family name, or the subject.
    pub display_name: String,
    pub tenants: Vec<String>,
    /// The synchronizer token every form of this session must carry.
    pub csrf: String,
}

/// Why a request of a browser gets no session.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// No cookie, an unknown one, or a session that was ended or has expired: sign in (again).
    #[error("not signed in, or the session has ended")]
    SignedOut,
    /// A live session that may not act for this tenant.
    #[error("this session may not act for this authority")]
    Forbidden,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Why a staff sign-in did not open a session.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// The state names no sign-in in flight, it expired, or another browser started it.
    #[error("this sign-in is unknown, expired, or was started in another browser")]
    UnknownFlow,
    /// The staff member's claims give finance access for no tenant.
    #[error("this staff account has no finance access")]
    NoFinanceAccess,
    #[error("the sign-in data cannot be read: {0}")]
    Sealing(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// A sign-in in flight, taken back at the callback.
#[derive(Debug)]
pub struct TakenFlow {
    pub provider_id: String,
    /// What the edge handed to [`StaffSessions::hold_sign_in`].
    pub flow: Vec<u8>,
}

#[derive(Clone)]
pub struct StaffSessions {
    db: Database,
    audit: AuditLog,
    clock: SharedClock,
    registry: SharedRegistry,
    master: Arc<MasterKey>,
    idle_millis: i64,
    max_millis: i64,
}

impl StaffSessions {
    pub fn new(
        db: Database,
        audit: AuditLog,
        clock: SharedClock,
        registry: SharedRegistry,
        master: Arc<MasterKey>,
        settings: &FinanceSettings,
    ) -> Self {
        // Both are checked at start to be at most a year, so they fit milliseconds.
        let millis = |secs: u64| i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        StaffSessions {
            db,
            audit,
            clock,
            registry,
            master,
            idle_millis: millis(settings.session_idle_secs),
            max_millis: millis(settings.session_max_secs),
        }
    }

    /// The staff identity providers the registry's tenants name, each once, in id order.
    pub fn staff_providers(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .registry
            .current()
            .tenants()
            .filter_map(|t| t.finance.staff.as_ref().map(|s| s.provider.to_string()))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Keeps a sign-in in flight until the identity provider answers, bound to the browser by its
    /// pre-session secret. `flow` is sealed under the master key.
    pub async fn hold_sign_in(
        &self,
        browser_secret: &str,
        provider_id: &str,
        state: &str,
        flow: &[u8],
    ) -> Result<(), SignInError> {
        let state_hash = fingerprint(state);
        let flow_sealed = self.master.seal(&state_hash, flow).map_err(|e| SignInError::Sealing(e.to_string()))?;
        let row = StaffLoginRow {
            state_hash,
            browser_hash: fingerprint(browser_secret),
            provider_id: provider_id.to_owned(),
            flow_sealed,
            expires_at: self.clock.now_millis() + SIGN_IN_LIFETIME_MILLIS,
        };
        self.db.insert_staff_login(&row).await?;
        Ok(())
    }

    /// Takes the sign-in this `state` names, once: a second answer with the same state finds nothing.
    /// It must not have expired and must come back to the browser that started it.
    pub async fn take_sign_in(&self, state: &str, browser_secret: Option<&str>) -> Result<TakenFlow, SignInError> {
        let row = self.db.take_staff_login(&fingerprint(state)).await?.ok_or(SignInError::UnknownFlow)?;
        let same_browser = browser_secret.is_some_and(|secret| fingerprint(secret) == row.browser_hash);
        if row.expires_at <= self.clock.now_millis() || !same_browser {
            return Err(SignInError::UnknownFlow);
        }
        let flow =
            self.master.open(&row.state_hash, &row.flow_sealed).map_err(|e| SignInError::Sealing(e.to_string()))?;
        Ok(TakenFlow { provider_id: row.provider_id, flow })
    }

    /// The tenants whose `finance.staff` this staff member's mapped claims satisfy: the provider is the
    /// one the tenant names and the claim is the value, or a list holding it.
    pub fn tenants_for(&self, provider_id: &str, claims: &Map<String, Value>) -> Vec<String> {
        self.registry
            .current()
            .tenants()
            .filter(|tenant| {
                tenant.finance.staff.as_ref().is_some_and(|staff| {
                    staff.provider.as_str() == provider_id
                        && match claims.get(&staff.claim) {
                            Some(Value::String(text)) => *text == staff.value,
                            Some(Value::Array(items)) => items.iter().any(|item| item.as_str() == Some(&staff.value)),
                            _ => false,
                        }
                })
            })
            .map(|tenant| tenant.id.to_string())
            .collect()
    }

    /// Opens a session for a staff member the provider vouched for, if their claims give finance access
    /// for at least one tenant. Audited either way.
    pub async fn sign_in(
        &self,
        provider_id: &str,
        subject: &str,
        claims: &Map<String, Value>,
    ) -> Result<NewSession, SignInError> {
        let staff_id = format!("{provider_id}/{subject}");
        let tenants = self.tenants_for(provider_id, claims);
        if tenants.is_empty() {
            self.refused(&staff_id, provider_id, "no_finance_access").await?;
            return Err(SignInError::NoFinanceAccess);
        }
        let name = ["given_name", "family_name"]
            .iter()
            .filter_map(|claim| claims.get(*claim).and_then(Value::as_str))
            .filter(|part| !part.trim().is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        let display_name = if name.is_empty() { subject.to_owned() } else { name };
        let details = json!({ "method": "oidc", "provider": provider_id });
        Ok(self.open(&staff_id, &display_name, tenants, details).await?)
    }

    /// Opens a session for the bearer of a finance token the caller has checked (the paste-a-token
    /// form, kept for machines' owners); it may act for the token's tenant only.
    pub async fn sign_in_with_token(&self, caller: &FinanceCaller) -> Result<NewSession, StorageError> {
        let details = json!({ "method": "token" });
        self.open(&caller.token_id, &caller.token_id, vec![caller.tenant_id.clone()], details).await
    }

    /// Records a sign-in that failed before a session could be considered (a wrong state, an answer
    /// the provider refused or that failed validation). `reason` is a fixed word, never provider text.
    /// Anyone can cause these, so they are counted outside the audit chain (SECURITY.md #32).
    pub async fn sign_in_failed(&self, provider_id: &str, reason: &str) -> Result<(), StorageError> {
        let subject =
            if self.registry.current().identity_provider(provider_id).is_some() { provider_id } else { UNREGISTERED };
        self.audit.refused("finance.sign_in_refused", "unknown", subject, reason).await
    }

    async fn refused(&self, actor: &str, provider_id: &str, reason: &str) -> Result<(), StorageError> {
        let details = json!({ "provider": provider_id, "reason": reason });
        self.audit.append(AuditEvent::new("finance.sign_in_refused", actor, provider_id, details)).await?;
        Ok(())
    }

    async fn open(
        &self,
        staff_id: &str,
        display_name: &str,
        tenants: Vec<String>,
        mut details: Value,
    ) -> Result<NewSession, StorageError> {
        let secret = random_token();
        let now = self.clock.now_millis();
        let row = FinanceSessionRow {
            session_hash: fingerprint(&secret),
            staff_id: staff_id.to_owned(),
            display_name: display_name.to_owned(),
            tenants: tenants.join(","),
            created_at: now,
            last_seen_at: now,
            ended_at: None,
        };
        self.db.insert_finance_session(&row).await?;
        details["tenants"] = json!(tenants);
        // The session is named by a prefix of its hash: enough to follow it through the log, useless
        // to present.
        let subject = format!("fss_{}", &row.session_hash[..16]);
        self.audit.append(AuditEvent::new("finance.signed_in", staff_id, &subject, details)).await?;
        Ok(NewSession { secret, tenants })
    }

    /// The live session of this cookie value, its idle time restarted. Not audited: callers that show
    /// or change something go through [`StaffSessions::authorise`].
    pub async fn session(&self, secret: Option<&str>) -> Result<StaffSession, SessionError> {
        let secret = secret.filter(|s| !s.is_empty()).ok_or(SessionError::SignedOut)?;
        let hash = fingerprint(secret);
        let row = self.db.finance_session(&hash).await?.ok_or(SessionError::SignedOut)?;
        let now = self.clock.now_millis();
        let expired = row.ended_at.is_some()
            || now - row.last_seen_at >= self.idle_millis
            || now - row.created_at >= self.max_millis;
        if expired {
            return Err(SessionError::SignedOut);
        }
        self.db.touch_finance_session(&hash, now).await?;
        Ok(StaffSession {
            staff_id: row.staff_id,
            display_name: row.display_name,
            tenants: row.tenants.split(',').filter(|t| !t.is_empty()).map(str::to_owned).collect(),
            csrf: csrf_token(secret),
        })
    }

    /// The session of this cookie value, allowed to do `action` (e.g. `page.view`, `import.upload`)
    /// for `tenant_id`, or not. An allowed use is a chain entry; a refused one (an absent or ended
    /// session, another tenant) a count in `refused_attempts`.
    pub async fn authorise(
        &self,
        secret: Option<&str>,
        tenant_id: &str,
        action: &str,
    ) -> Result<StaffSession, SessionError> {
        let (actor, outcome) = match self.session(secret).await {
            Err(SessionError::Storage(e)) => return Err(SessionError::Storage(e)),
            Err(e) => ("unknown".to_owned(), Err(("signed_out", e))),
            Ok(session) if !session.tenants.iter().any(|t| t == tenant_id) => {
                (session.staff_id, Err(("other_tenant", SessionError::Forbidden)))
            }
            Ok(session) => (session.staff_id.clone(), Ok(session)),
        };
        match &outcome {
            Ok(_) => {
                let details = json!({ "action": action, "via": "session" });
                self.audit.append(AuditEvent::new("finance.access_allowed", &actor, tenant_id, details)).await?;
            }
            // Counted, not chained: anyone can send a page request without a session (SECURITY.md #32).
            Err((reason, _)) => {
                let subject =
                    if self.registry.current().tenant(tenant_id).is_some() { tenant_id } else { UNREGISTERED };
                self.audit.refused("finance.access_refused", &actor, subject, reason).await?;
            }
        }
        outcome.map_err(|(_, error)| error)
    }

    /// Ends the session of this cookie value; later requests with it are refused. True when this call
    /// ended it (audited), false when there was none to end.
    pub async fn sign_out(&self, secret: &str) -> Result<bool, StorageError> {
        let hash = fingerprint(secret);
        let Some(row) = self.db.finance_session(&hash).await? else { return Ok(false) };
        if !self.db.end_finance_session(&hash, self.clock.now_millis()).await? {
            return Ok(false);
        }
        let subject = format!("fss_{}", &hash[..16]);
        self.audit.append(AuditEvent::new("finance.signed_out", &row.staff_id, &subject, json!({}))).await?;
        Ok(true)
    }

    /// Deletes sessions past their lifetime (with the name they show) and sign-ins never completed;
    /// returns how many rows went.
    pub async fn purge(&self) -> Result<u64, StorageError> {
        let now = self.clock.now_millis();
        self.db.purge_finance_sessions(now, now - self.max_millis).await
    }
}

/// The synchronizer token of a session or pre-session secret: a hash of it under its own label, so
/// the stored session hash does not reveal it and a page can be rendered without storing it.
pub fn csrf_token(secret: &str) -> String {
    fingerprint(&format!("pforte finance form\u{0}{secret}"))
}

/// Whether `presented` is the synchronizer token of `secret`, compared in constant time.
pub fn csrf_matches(secret: Option<&str>, presented: Option<&str>) -> bool {
    match (secret.filter(|s| !s.is_empty()), presented) {
        (Some(secret), Some(presented)) => constant_time_eq(&SecretString::from(csrf_token(secret)), presented),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_token_fits_its_own_secret_only() {
        let token = csrf_token("secret-a");
        assert!(csrf_matches(Some("secret-a"), Some(&token)));
        assert!(!csrf_matches(Some("secret-b"), Some(&token)));
        assert!(!csrf_matches(Some("secret-a"), None));
        assert!(!csrf_matches(None, Some(&token)));
        assert!(!csrf_matches(Some(""), Some(&csrf_token(""))));
        assert_ne!(token, fingerprint("secret-a"), "the form token is not the stored session hash");
    }
}

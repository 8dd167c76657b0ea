//! The token endpoint's grants: `authorization_code` (a login's code, once, with PKCE) and
//! `client_credentials` (an online service calling pforte's APIs as itself).

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::levels::session_limits;
use super::oauth::{internal, OAuthError};
use super::request::{pkce_matches, AuthorizationRequest};
use super::tokens::{Identity, TokenService, TOKEN_LIFETIME_SECS};
use crate::audit::{AuditEvent, AuditLog};
use crate::clock::SharedClock;
use crate::crypto::{fingerprint, random_token};
use crate::keys::MasterKey;
use crate::registry::{Client, GrantType};
use crate::store::logins::LoginRow;
use crate::store::Database;
use crate::telemetry::metrics;

/// Scopes an online service may ask for with `client_credentials`: the payment API, and Datentransfer
/// (`transfer`, for senders and subscribers alike; the registry says which destinations each reaches).
pub(crate) const API_SCOPES: &[&str] = &["payment", "transfer"];
/// What a `client_credentials` request without a scope gets (as before Datentransfer existed).
const DEFAULT_API_SCOPE: &str = "payment";

#[derive(Debug, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    pub scope: String,
}

/// What a refresh token carries, encrypted under the master key: the token is the only place the
/// identity lives between refreshes, so pforte still stores no profile.
#[derive(Debug, Serialize, Deserialize)]
struct RefreshContent {
    family: String,
    jti: String,
    client_id: String,
    scope: String,
    /// Milliseconds: auth_time plus the longest session the level allows.
    session_ends_at: i64,
    identity: Identity,
}

/// A refresh-token family just started: the token to hand out, the family id, and when the session
/// it belongs to ends (milliseconds).
struct NewFamily {
    token: String,
    id: String,
    session_ends_at: i64,
}

/// The record id refresh tokens are sealed for (they are bound to their family by their content).
const REFRESH_RECORD: &str = "pforte refresh token";

/// The parameters of an `authorization_code` token request.
pub struct CodeExchange<'a> {
    pub code: Option<&'a str>,
    pub redirect_uri: Option<&'a str>,
    pub code_verifier: Option<&'a str>,
}

#[derive(Clone)]
pub struct Grants {
    db: Database,
    tokens: TokenService,
    master: std::sync::Arc<MasterKey>,
    audit: AuditLog,
    clock: SharedClock,
}

impl Grants {
    pub fn new(
        db: Database,
        tokens: TokenService,
        master: std::sync::Arc<MasterKey>,
        audit: AuditLog,
        clock: SharedClock,
    ) -> Self {
        Grants { db, tokens, master, audit, clock }
    }

    pub async fn authorization_code(
        &self,
        client: &Client,
        exchange: CodeExchange<'_>,
    ) -> Result<TokenResponse, OAuthError> {
        if !client.grant_types.contains(&GrantType::AuthorizationCode) {
            return Err(OAuthError::unauthorized_client("This client may not use authorization_code."));
        }
        let code = exchange.code.ok_or_else(|| OAuthError::invalid_request("code is missing."))?;
        let verifier =
            exchange.code_verifier.ok_or_else(|| OAuthError::invalid_request("code_verifier is missing (PKCE)."))?;
        let invalid = || OAuthError::invalid_grant("The code is invalid, expired or already used.");
        let row = self.db.login_by_code(&fingerprint(code)).await.map_err(OAuthError::from)?.ok_or_else(invalid)?;
        if row.client_id != client.id.as_str() {
            return Err(invalid());
        }
        let now_millis = self.clock.now_millis();
        if row.redeemed_at.is_some() {
            self.revoke_replayed(&row, client.id.as_str(), false).await;
            return Err(invalid());
        }
        if row.code_expires_at.is_none_or(|at| at <= now_millis) {
            return Err(invalid());
        }
        let request: AuthorizationRequest = serde_json::from_str(&row.request).map_err(|e| internal(&e))?;
        let redirect_matches = exchange.redirect_uri == Some(request.redirect_uri.as_str());
        let verifier_matches = pkce_matches(verifier, &request.code_challenge);
        let identity: Option<Identity> = match &row.identity_sealed {
            Some(sealed) => {
                let plain = self.master.open(&row.id, sealed).map_err(|e| internal(&e))?;
                Some(serde_json::from_slice(&plain).map_err(|e| internal(&e))?)
            }
            None => None,
        };
        let identity = identity.ok_or_else(invalid)?;

        // One attempt per code: a wrong verifier or redirect URI burns it, like a success does.
        // Everything the answer needs is made before the code is marked used, and that mark (with
        // the refresh family) is the last write: a database that goes away before it leaves the
        // code redeemable, so the client's retry gets its tokens.
        let scope = request.scopes.join(" ");
        let issued = if redirect_matches && verifier_matches {
            let access = self
                .tokens
                .access_token(client.id.as_str(), &identity.sub, &scope, Some(&identity), TOKEN_LIFETIME_SECS)
                .await
                .map_err(OAuthError::from)?;
            let id_token = self
                .tokens
                .id_token(client, &identity, request.nonce.as_deref(), TOKEN_LIFETIME_SECS)
                .await
                .map_err(OAuthError::from)?;
            let refresh = if client.grant_types.contains(&GrantType::RefreshToken) {
                Some(self.new_refresh_family(client, &identity, &scope).await?)
            } else {
                None
            };
            Some((access, id_token, refresh))
        } else {
            None
        };
        // The row (without personal data by then) stays as long as the tokens issued from the code
        // can live, so that a replay can still revoke them.
        let refresh = issued.as_ref().and_then(|(_, _, refresh)| refresh.as_ref());
        let keep_until =
            refresh.map_or(0, |family| family.session_ends_at).max(now_millis + TOKEN_LIFETIME_SECS * 1000);
        let jti = issued.as_ref().map(|(access, _, _)| access.jti.as_str());
        let family = refresh.map(|family| family.id.as_str());
        let won = self.db.redeem_login(&row.id, now_millis, jti, family, keep_until).await?;
        if !won {
            // A concurrent request redeemed it first: this one is the replay. What the winner was
            // given is revoked (the winner's update wrote it in one step, so it is there to read),
            // and so is the family this request started but never handed out.
            if let Some(own) = family {
                self.revoke_quietly(own).await;
            }
            match self.db.login_by_id(&row.id).await {
                Ok(Some(winner)) => self.revoke_replayed(&winner, client.id.as_str(), true).await,
                Ok(None) => tracing::error!("the code's login vanished while a concurrent redemption was revoked"),
                Err(e) => tracing::error!(error = %e, "could not read what a concurrently redeemed code issued"),
            }
            return Err(invalid());
        }
        let Some((access, id_token, refresh)) = issued else {
            return Err(if redirect_matches {
                OAuthError::invalid_grant("The code_verifier does not match the code_challenge.")
            } else {
                OAuthError::invalid_grant("redirect_uri differs from the authorization request.")
            });
        };
        let refresh_token = refresh.map(|family| family.token);
        metrics::token_issued("authorization_code", client.id.as_str());
        Ok(TokenResponse {
            access_token: access.token,
            token_type: "Bearer",
            expires_in: access.expires_in,
            id_token: Some(id_token),
            refresh_token,
            scope,
        })
    }

    /// Starts a refresh token family whose life ends with the session the level allows, counted
    /// from the upstream `auth_time` (or from now, when the provider sent none).
    async fn new_refresh_family(
        &self,
        client: &Client,
        identity: &Identity,
        scope: &str,
    ) -> Result<NewFamily, OAuthError> {
        let (longest, idle) = session_limits(identity.level);
        let now = self.clock.now_millis();
        let session_ends_at = (identity.auth_time.unwrap_or(now / 1000) + longest) * 1000;
        let content = RefreshContent {
            family: random_token(),
            jti: random_token(),
            client_id: client.id.as_str().to_owned(),
            scope: scope.to_owned(),
            session_ends_at,
            identity: identity.clone(),
        };
        let expires_at = session_ends_at.min(now + idle * 1000);
        self.db
            .insert_refresh_family(&content.family, &content.client_id, &content.jti, session_ends_at, expires_at)
            .await
            .map_err(OAuthError::from)?;
        Ok(NewFamily { token: self.seal_refresh(&content)?, id: content.family, session_ends_at })
    }

    fn seal_refresh(&self, content: &RefreshContent) -> Result<String, OAuthError> {
        let plain = serde_json::to_vec(content).map_err(|e| internal(&e))?;
        self.master.seal(REFRESH_RECORD, &plain).map_err(|e| internal(&e))
    }

    /// The family and client of a refresh token pforte issued, if it is one.
    pub fn refresh_token_family(&self, token: &str) -> Option<(String, String)> {
        let plain = self.master.open(REFRESH_RECORD, token).ok()?;
        let content: RefreshContent = serde_json::from_slice(&plain).ok()?;
        Some((content.family, content.client_id))
    }

    pub async fn revoke_refresh_family(&self, family: &str) -> Result<(), OAuthError> {
        self.db.revoke_refresh_family(family, self.clock.now_millis()).await.map_err(OAuthError::from)
    }

    /// Exchanges a refresh token for new tokens and a new refresh token. A token that is not the
    /// family's current one was used before: whoever holds it may have stolen it, so the family ends.
    pub async fn refresh_token(&self, client: &Client, token: Option<&str>) -> Result<TokenResponse, OAuthError> {
        if !client.grant_types.contains(&GrantType::RefreshToken) {
            return Err(OAuthError::unauthorized_client("This client may not use refresh_token."));
        }
        let token = token.ok_or_else(|| OAuthError::invalid_request("refresh_token is missing."))?;
        let invalid = || OAuthError::invalid_grant("The refresh token is invalid, expired or revoked.");
        let plain = self.master.open(REFRESH_RECORD, token).map_err(|_| invalid())?;
        let mut content: RefreshContent = serde_json::from_slice(&plain).map_err(|_| invalid())?;
        if content.client_id != client.id.as_str() {
            return Err(invalid());
        }
        let now = self.clock.now_millis();
        let (_, idle) = session_limits(content.identity.level);
        let old_jti = std::mem::replace(&mut content.jti, random_token());
        let expires_at = content.session_ends_at.min(now + idle * 1000);
        let rotated = self
            .db
            .rotate_refresh(&content.family, &old_jti, &content.jti, now, expires_at)
            .await
            .map_err(OAuthError::from)?;
        if !rotated {
            // Reuse of an old token (or a family already over): end the family either way.
            self.revoke_refresh_family(&content.family).await?;
            let event = AuditEvent::new("token.refresh_reused", client.id.as_str(), &content.family, json!({}));
            if let Err(e) = self.audit.append(event).await {
                tracing::error!(error = %e, "could not write the audit log");
            }
            return Err(invalid());
        }
        let identity = &content.identity;
        let access = self
            .tokens
            .access_token(client.id.as_str(), &identity.sub, &content.scope, Some(identity), TOKEN_LIFETIME_SECS)
            .await
            .map_err(OAuthError::from)?;
        let id_token =
            self.tokens.id_token(client, identity, None, TOKEN_LIFETIME_SECS).await.map_err(OAuthError::from)?;
        metrics::token_issued("refresh_token", client.id.as_str());
        Ok(TokenResponse {
            access_token: access.token,
            token_type: "Bearer",
            expires_in: access.expires_in,
            id_token: Some(id_token),
            refresh_token: Some(self.seal_refresh(&content)?),
            scope: content.scope.clone(),
        })
    }

    pub async fn client_credentials(&self, client: &Client, scope: Option<&str>) -> Result<TokenResponse, OAuthError> {
        if !client.grant_types.contains(&GrantType::ClientCredentials) {
            return Err(OAuthError::unauthorized_client("This client may not use client_credentials."));
        }
        let requested: Vec<&str> = scope.map(|s| s.split(' ').filter(|s| !s.is_empty()).collect()).unwrap_or_default();
        if let Some(unknown) = requested.iter().find(|s| !API_SCOPES.contains(s)) {
            return Err(OAuthError::invalid_scope(format!(
                "Scope `{unknown}` is not available with client_credentials."
            )));
        }
        let scope = if requested.is_empty() { DEFAULT_API_SCOPE.to_owned() } else { requested.join(" ") };
        let access = self
            .tokens
            .access_token(client.id.as_str(), client.id.as_str(), &scope, None, TOKEN_LIFETIME_SECS)
            .await
            .map_err(OAuthError::from)?;
        metrics::token_issued("client_credentials", client.id.as_str());
        Ok(TokenResponse {
            access_token: access.token,
            token_type: "Bearer",
            expires_in: access.expires_in,
            id_token: None,
            refresh_token: None,
            scope,
        })
    }

    /// A redeemed code came back: whoever holds it may have stolen it, so everything issued from it
    /// stops working, the access token and the refresh-token family (RFC 6749 §4.1.2, RFC 9700
    /// §4.1.3; SECURITY.md #5). `concurrent` when the two redemptions raced.
    async fn revoke_replayed(&self, login: &LoginRow, client_id: &str, concurrent: bool) {
        if let Some(jti) = &login.access_jti {
            // Kept until the token (issued before now) would have expired anyway.
            let until = self.clock.now_millis() + TOKEN_LIFETIME_SECS * 1000;
            if let Err(e) = self.db.revoke_token(jti, until).await {
                tracing::error!(error = %e, "could not revoke the access token of a replayed code");
            }
        }
        if let Some(family) = &login.refresh_family {
            self.revoke_quietly(family).await;
        }
        let details = json!({
            "revoked": login.access_jti.is_some(),
            "revoked_refresh_family": login.refresh_family.is_some(),
            "concurrent": concurrent,
        });
        let event = AuditEvent::new("login.code_replayed", client_id, &login.id, details);
        if let Err(e) = self.audit.append(event).await {
            tracing::error!(error = %e, "could not write the audit log");
        }
    }

    async fn revoke_quietly(&self, family: &str) {
        if let Err(e) = self.revoke_refresh_family(family).await {
            tracing::error!(error = %e, "could not revoke the refresh-token family of a replayed code");
        }
    }
}

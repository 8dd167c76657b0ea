//! The token endpoint's grants: `authorization_code` (a login's code, once, with PKCE) and
//! `client_credentials` (an online service calling pforte's APIs as itself).

use serde::Serialize;
use serde_json::json;

use super::fingerprint;
use super::oauth::{internal, OAuthError};
use super::request::{pkce_matches, AuthorizationRequest};
use super::tokens::{Identity, TokenService, TOKEN_LIFETIME_SECS};
use crate::audit::{AuditEvent, AuditLog};
use crate::clock::SharedClock;
use crate::keys::MasterKey;
use crate::registry::{Client, GrantType};
use crate::storage::Database;

/// Scopes an online service may ask for with `client_credentials`.
pub const API_SCOPES: &[&str] = &["payment"];

#[derive(Debug, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    pub scope: String,
}

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
        let row = self.db.login_by_code(&fingerprint(code)).await.map_err(|e| internal(&e))?.ok_or_else(invalid)?;
        if row.client_id != client.id.as_str() {
            return Err(invalid());
        }
        let now_millis = self.clock.now_millis();
        if row.redeemed_at.is_some() {
            self.revoke_replayed(&row.id, &client.id.to_string(), row.access_jti.as_deref(), row.expires_at).await;
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
        let access = if redirect_matches && verifier_matches {
            let scope = request.scopes.join(" ");
            Some(
                self.tokens
                    .access_token(client.id.as_str(), &identity.sub, &scope, Some(&identity), TOKEN_LIFETIME_SECS)
                    .await
                    .map_err(|e| internal(&e))?,
            )
        } else {
            None
        };
        let keep_until = now_millis + TOKEN_LIFETIME_SECS * 1000;
        let jti = access.as_ref().map(|a| a.jti.as_str());
        let won = self.db.redeem_login(&row.id, now_millis, jti, keep_until).await.map_err(|e| internal(&e))?;
        if !won {
            // A concurrent request redeemed it first: this one is the replay.
            self.revoke_replayed(&row.id, client.id.as_str(), None, keep_until).await;
            return Err(invalid());
        }
        let Some(access) = access else {
            return Err(if redirect_matches {
                OAuthError::invalid_grant("The code_verifier does not match the code_challenge.")
            } else {
                OAuthError::invalid_grant("redirect_uri differs from the authorization request.")
            });
        };
        let id_token = self
            .tokens
            .id_token(client, &identity, request.nonce.as_deref(), TOKEN_LIFETIME_SECS)
            .await
            .map_err(|e| internal(&e))?;
        Ok(TokenResponse {
            access_token: access.token,
            token_type: "Bearer",
            expires_in: access.expires_in,
            id_token: Some(id_token),
            scope: request.scopes.join(" "),
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
        let scope = if requested.is_empty() { API_SCOPES.join(" ") } else { requested.join(" ") };
        let access = self
            .tokens
            .access_token(client.id.as_str(), client.id.as_str(), &scope, None, TOKEN_LIFETIME_SECS)
            .await
            .map_err(|e| internal(&e))?;
        Ok(TokenResponse {
            access_token: access.token,
            token_type: "Bearer",
            expires_in: access.expires_in,
            id_token: None,
            scope,
        })
    }

    /// A redeemed code came back: whoever holds it may have stolen it, so the access token issued
    /// from it stops working (RFC 6749 §4.1.2).
    async fn revoke_replayed(&self, login_id: &str, client_id: &str, access_jti: Option<&str>, until_millis: i64) {
        if let Some(jti) = access_jti {
            if let Err(e) = self.db.revoke_token(jti, until_millis).await {
                tracing::error!(error = %e, "could not revoke the tokens of a replayed code");
            }
        }
        let event =
            AuditEvent::new("login.code_replayed", client_id, login_id, json!({ "revoked": access_jti.is_some() }));
        if let Err(e) = self.audit.append(event).await {
            tracing::error!(error = %e, "could not write the audit log");
        }
    }
}

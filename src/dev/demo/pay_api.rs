//! The demo online service's client of pforte's payment API, as a real online service writes one:
//! an access token from `/token` (`client_credentials`, scope `payment`) with the service's own
//! registered secret, then the XBezahldienste endpoints over HTTP at pforte's public URL. Refusals
//! keep the standard's `functionalCode` to show; nothing here logs a token.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use serde_json::Value;

use super::pay_pages as pages;
use super::{html, DemoState, CLIENT_ID};

/// An answer of pforte the demo cannot use: logged, shown as a general failure.
pub(super) fn unusable(reason: &str) -> Response {
    Failure::Pforte(reason.to_owned()).into_response()
}

/// Why a payment step could not be shown. Texts hold no token.
pub(super) enum Failure {
    /// pforte refused the request with a problem (functionalCode, detail).
    Refused { code: String, detail: String },
    /// Talking to pforte failed or its answer was not usable.
    Pforte(String),
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        match self {
            Failure::Refused { code, detail } => html(
                StatusCode::BAD_GATEWAY,
                pages::failure("pforte hat die Zahlung abgelehnt.", Some((code.as_str(), detail.as_str()))),
            ),
            Failure::Pforte(reason) => {
                tracing::warn!(%reason, "demo service: payment step failed");
                html(
                    StatusCode::BAD_GATEWAY,
                    pages::failure("pforte war nicht erreichbar oder hat unerwartet geantwortet.", None),
                )
            }
        }
    }
}

/// An access token for `scope` from pforte's token endpoint, with the demo client's own registered
/// credentials (`client_credentials`); the error says what went wrong, for the demo's page.
pub(super) async fn demo_token(state: &DemoState, scope: &str) -> Result<String, String> {
    let client = state.demo.client.as_ref().ok_or("no demo client")?;
    let secret = client.secret.as_ref().ok_or("the demo client must use client_secret_basic")?;
    let response = state
        .context
        .http
        .post(format!("{}/token", state.context.issuer))
        .basic_auth(CLIENT_ID, Some(secret.expose_secret()))
        .form(&[("grant_type", "client_credentials"), ("scope", scope)])
        .send()
        .await
        .map_err(|_| "the token request failed".to_owned())?;
    if !response.status().is_success() {
        return Err(format!("the token endpoint answered {}", response.status()));
    }
    let tokens: Value = response.json().await.map_err(|_| "the token answer is not JSON".to_owned())?;
    Ok(tokens["access_token"].as_str().ok_or("no access_token")?.to_owned())
}

/// pforte's payment API as the demo service calls it.
pub(super) struct Pforte<'a> {
    http: &'a reqwest::Client,
    /// `{issuer}/paymenttransaction/{originatorId}`.
    base: String,
    token: String,
}

impl<'a> Pforte<'a> {
    /// Fetches an access token with the demo client's own registered credentials.
    pub(super) async fn connect(state: &'a DemoState) -> Result<Pforte<'a>, Failure> {
        let client = state.demo.client.as_ref().ok_or(Failure::Pforte("no demo client".into()))?;
        let originator =
            client.originator_id.as_ref().ok_or(Failure::Pforte("the demo client has no originator_id".into()))?;
        let token = demo_token(state, "payment").await.map_err(Failure::Pforte)?;
        let issuer = &state.context.issuer;
        Ok(Pforte { http: &state.context.http, base: format!("{issuer}/paymenttransaction/{originator}"), token })
    }

    pub(super) async fn create(&self, authority: &str, key: &str, body: &Value) -> Result<Value, Failure> {
        let url = format!("{}/{authority}", self.base);
        let request = self.http.post(url).bearer_auth(&self.token).header("Idempotency-Key", key).json(body);
        answer(request, 201).await
    }

    pub(super) async fn read(&self, authority: &str, transaction_id: &str) -> Result<Value, Failure> {
        let url = format!("{}/{authority}/{transaction_id}", self.base);
        answer(self.http.get(url).bearer_auth(&self.token), 200).await
    }
}

async fn answer(request: reqwest::RequestBuilder, expected: u16) -> Result<Value, Failure> {
    let response = request.send().await.map_err(|_| Failure::Pforte("the payment API is not reachable".into()))?;
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if status == expected {
        return Ok(body);
    }
    match body["functionalCode"].as_str() {
        Some(code) => Err(Failure::Refused {
            code: code.to_owned(),
            detail: body["detail"].as_str().unwrap_or_default().to_owned(),
        }),
        None => Err(Failure::Pforte(format!("the payment API answered {status}"))),
    }
}

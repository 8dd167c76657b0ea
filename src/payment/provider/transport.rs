//! What every provider adapter needs to reach its provider, whatever the protocol: the HTTP client
//! (its own one for mutual TLS), the instance's authentication (none, Basic, OAuth2 client
//! credentials with a cached token, or a client certificate), and the instance's time limit, with
//! failures mapped to [`ProviderError`] the same way for every kind.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::ProviderError;
use crate::registry::{PaymentAuth, PaymentProvider};

/// Refresh an OAuth2 token this long before the provider says it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(30);

/// The way to one provider instance.
pub(super) struct ProviderHttp {
    client: reqwest::Client,
    auth: Auth,
    timeout: Duration,
    token: Mutex<Option<(String, Instant)>>,
    /// Held while a token is fetched, so calls that find no valid token at once (a burst at start,
    /// the status check beside the first create) wait for one fetch instead of each asking.
    fetching: tokio::sync::Mutex<()>,
}

enum Auth {
    None,
    Basic { username: String, password: SecretString },
    OAuth2 { token_url: String, client_id: String, client_secret: SecretString, scope: Option<String> },
}

impl ProviderHttp {
    pub(super) fn new(provider: &PaymentProvider, shared: &reqwest::Client) -> Result<Self, ProviderError> {
        let misconfigured = |what: &str| ProviderError::Misconfigured(format!("{}: {what}", provider.id));
        let (auth, client) = match &provider.auth {
            PaymentAuth::None => (Auth::None, shared.clone()),
            PaymentAuth::Basic { username, password } => {
                (Auth::Basic { username: username.clone(), password: password.clone() }, shared.clone())
            }
            PaymentAuth::OAuth2ClientCredentials { token_url, client_id, client_secret, scope } => (
                Auth::OAuth2 {
                    token_url: token_url.as_str().to_owned(),
                    client_id: client_id.clone(),
                    client_secret: client_secret.clone(),
                    scope: scope.clone(),
                },
                shared.clone(),
            ),
            // Mutual TLS needs its own client: the identity belongs to the connection.
            PaymentAuth::ClientCertificate { certificate_pem, private_key } => {
                let pem = format!("{}\n{}", private_key.expose_secret(), certificate_pem);
                let identity = reqwest::Identity::from_pem(pem.as_bytes())
                    .map_err(|_| misconfigured("unreadable client certificate"))?;
                let client = reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .connect_timeout(crate::http_client::CONNECT_TIMEOUT)
                    .timeout(crate::http_client::REQUEST_TIMEOUT)
                    .identity(identity)
                    .build()
                    .map_err(|_| misconfigured("cannot build a client with this certificate"))?;
                (Auth::None, client)
            }
        };
        Ok(ProviderHttp {
            client,
            auth,
            timeout: provider.timeout,
            token: Mutex::new(None),
            fetching: tokio::sync::Mutex::new(()),
        })
    }

    pub(super) fn get(&self, url: url::Url) -> reqwest::RequestBuilder {
        self.client.get(url)
    }

    pub(super) fn post(&self, url: url::Url) -> reqwest::RequestBuilder {
        self.client.post(url)
    }

    /// Adds the instance's credentials to a request.
    pub(super) async fn authorise(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::RequestBuilder, ProviderError> {
        Ok(match &self.auth {
            Auth::None => request,
            Auth::Basic { username, password } => request.basic_auth(username, Some(password.expose_secret())),
            Auth::OAuth2 { .. } => request.bearer_auth(self.access_token().await?),
        })
    }

    /// The cached client-credentials token while it is still good.
    fn cached_token(&self) -> Option<String> {
        let (token, until) = self.token.lock().ok().and_then(|t| t.clone())?;
        (Instant::now() < until).then_some(token)
    }

    /// A cached client-credentials token, fetched again shortly before it expires; one fetch at a
    /// time per provider instance.
    async fn access_token(&self) -> Result<String, ProviderError> {
        if let Some(token) = self.cached_token() {
            return Ok(token);
        }
        let _fetching = self.fetching.lock().await;
        // Another call may have fetched one while this one waited.
        if let Some(token) = self.cached_token() {
            return Ok(token);
        }
        let Auth::OAuth2 { token_url, client_id, client_secret, scope } = &self.auth else {
            return Err(ProviderError::Misconfigured("no OAuth2 settings".to_owned()));
        };
        let mut form = vec![("grant_type", "client_credentials")];
        if let Some(scope) = scope {
            form.push(("scope", scope));
        }
        let request =
            self.client.post(token_url).basic_auth(client_id, Some(client_secret.expose_secret())).form(&form);
        let response = self.send(request).await?;
        if !response.status().is_success() {
            return Err(ProviderError::Unavailable(format!("token endpoint answered {}", response.status().as_u16())));
        }
        let body = self.body(response).await?;
        let body: Value = serde_json::from_slice(&body)
            .map_err(|_| ProviderError::InvalidAnswer("token response is not JSON".into()))?;
        let token =
            body["access_token"].as_str().ok_or_else(|| ProviderError::InvalidAnswer("no access_token".into()))?;
        let lifetime = Duration::from_secs(body["expires_in"].as_u64().unwrap_or(60));
        let until = Instant::now() + lifetime.saturating_sub(TOKEN_MARGIN);
        if let Ok(mut cached) = self.token.lock() {
            *cached = Some((token.to_owned(), until));
        }
        Ok(token.to_owned())
    }

    /// Sends within the instance's time limit, with the current span's trace context (the caller's
    /// `provider.*` span); no answer, a refused connection or a timeout make the provider unavailable.
    pub(super) async fn send(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response, ProviderError> {
        let request = crate::http_client::with_trace_context(request);
        match tokio::time::timeout(self.timeout, request.send()).await {
            Err(_) => Err(ProviderError::Unavailable(format!("no answer within {} s", self.timeout.as_secs()))),
            Ok(Err(e)) if e.is_timeout() => Err(ProviderError::Unavailable("timed out".into())),
            Ok(Err(_)) => Err(ProviderError::Unavailable("connection failed".into())),
            Ok(Ok(response)) => {
                crate::http_client::record_status(response.status());
                Ok(response)
            }
        }
    }

    /// The whole body of an answer, within the time limit and at most
    /// [`DEFAULT_MAX_BODY_BYTES`](crate::http_client::DEFAULT_MAX_BODY_BYTES) (SECURITY.md #31): a
    /// larger or endless answer is abandoned as soon as it passes the cap, and the provider counts
    /// as unavailable, as for a broken answer.
    pub(super) async fn body(&self, response: reqwest::Response) -> Result<Vec<u8>, ProviderError> {
        let limit = crate::http_client::DEFAULT_MAX_BODY_BYTES;
        tokio::time::timeout(self.timeout, crate::http_client::read_capped(response, limit))
            .await
            .map_err(|_| ProviderError::Unavailable("the answer did not arrive in time".into()))?
            .map_err(|e| ProviderError::Unavailable(e.to_string()))
    }
}

/// `base` with `segments` appended as path segments (each percent-encoded as needed).
pub(super) fn url_under(base: &url::Url, segments: &[&str]) -> Result<url::Url, ProviderError> {
    let mut url = base.clone();
    url.path_segments_mut()
        .map_err(|_| ProviderError::Misconfigured("the base URL cannot take a path".to_owned()))?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

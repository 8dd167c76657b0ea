//! XBezahldienste towards a provider (pmPayment's API, ePay21, the ePayBL connector, and pforte's own
//! development simulator): the same endpoints and fields pforte offers online services, with the
//! provider's authentication (none, Basic, OAuth2 client credentials, or a client certificate).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use url::Url;

use super::{NewProviderPayment, PaymentAdapter, ProviderCreated, ProviderError, ProviderFuture, ProviderState};
use crate::payment::wire::PaymentInformation;
use crate::registry::{PaymentAuth, PaymentProvider};

/// Refresh an OAuth2 token this long before the provider says it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(30);

pub struct XBezahldienste {
    base: Url,
    http: reqwest::Client,
    auth: Auth,
    timeout: Duration,
    token: Mutex<Option<(String, Instant)>>,
}

enum Auth {
    None,
    Basic { username: String, password: SecretString },
    OAuth2 { token_url: String, client_id: String, client_secret: SecretString, scope: Option<String> },
}

impl XBezahldienste {
    pub fn new(provider: &PaymentProvider, shared: &reqwest::Client) -> Result<Self, ProviderError> {
        let misconfigured = |what: &str| ProviderError::Misconfigured(format!("{}: {what}", provider.id));
        let (auth, http) = match &provider.auth {
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
        let mut base = provider.base_url.url().clone();
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        Ok(XBezahldienste { base, http, auth, timeout: provider.timeout, token: Mutex::new(None) })
    }

    fn url(&self, segments: &[&str]) -> Result<Url, ProviderError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|_| ProviderError::Misconfigured("the base URL cannot take a path".to_owned()))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    async fn authorise(&self, request: reqwest::RequestBuilder) -> Result<reqwest::RequestBuilder, ProviderError> {
        Ok(match &self.auth {
            Auth::None => request,
            Auth::Basic { username, password } => request.basic_auth(username, Some(password.expose_secret())),
            Auth::OAuth2 { .. } => request.bearer_auth(self.access_token().await?),
        })
    }

    /// A cached client-credentials token, fetched again shortly before it expires.
    async fn access_token(&self) -> Result<String, ProviderError> {
        if let Some((token, until)) = self.token.lock().ok().and_then(|t| t.clone()) {
            if Instant::now() < until {
                return Ok(token);
            }
        }
        let Auth::OAuth2 { token_url, client_id, client_secret, scope } = &self.auth else {
            return Err(ProviderError::Misconfigured("no OAuth2 settings".to_owned()));
        };
        let mut form = vec![("grant_type", "client_credentials")];
        if let Some(scope) = scope {
            form.push(("scope", scope));
        }
        let request = self.http.post(token_url).basic_auth(client_id, Some(client_secret.expose_secret())).form(&form);
        let response = self.send(request).await?;
        if !response.status().is_success() {
            return Err(ProviderError::Unavailable(format!("token endpoint answered {}", response.status().as_u16())));
        }
        let body: Value =
            response.json().await.map_err(|_| ProviderError::InvalidAnswer("token response is not JSON".into()))?;
        let token =
            body["access_token"].as_str().ok_or_else(|| ProviderError::InvalidAnswer("no access_token".into()))?;
        let lifetime = Duration::from_secs(body["expires_in"].as_u64().unwrap_or(60));
        let until = Instant::now() + lifetime.saturating_sub(TOKEN_MARGIN);
        if let Ok(mut cached) = self.token.lock() {
            *cached = Some((token.to_owned(), until));
        }
        Ok(token.to_owned())
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response, ProviderError> {
        match tokio::time::timeout(self.timeout, request.send()).await {
            Err(_) => Err(ProviderError::Unavailable(format!("no answer within {} s", self.timeout.as_secs()))),
            Ok(Err(e)) if e.is_timeout() => Err(ProviderError::Unavailable("timed out".into())),
            Ok(Err(_)) => Err(ProviderError::Unavailable("connection failed".into())),
            Ok(Ok(response)) => Ok(response),
        }
    }

    /// Reads `paymentInformation` from a 2xx answer; maps 4xx problems and 5xx to errors.
    async fn payment_information(&self, response: reqwest::Response) -> Result<PaymentInformation, ProviderError> {
        let status = response.status();
        let body = tokio::time::timeout(self.timeout, response.bytes())
            .await
            .map_err(|_| ProviderError::Unavailable("the answer did not arrive in time".into()))?
            .map_err(|_| ProviderError::Unavailable("the answer broke off".into()))?;
        if status.is_server_error() {
            return Err(ProviderError::Unavailable(format!("answered {}", status.as_u16())));
        }
        let json: Value = serde_json::from_slice(&body)
            .map_err(|_| ProviderError::InvalidAnswer(format!("{} without JSON", status.as_u16())))?;
        if status.is_client_error() {
            let code = json["functionalCode"].as_str().unwrap_or("UNSPECIFIED").to_owned();
            let detail = json["detail"].as_str().unwrap_or_default().chars().take(500).collect();
            return Err(ProviderError::Refused { code, detail });
        }
        if !status.is_success() {
            return Err(ProviderError::InvalidAnswer(format!("answered {}", status.as_u16())));
        }
        serde_json::from_value(json["paymentInformation"].clone())
            .map_err(|_| ProviderError::InvalidAnswer("paymentInformation is missing or malformed".into()))
    }
}

impl PaymentAdapter for XBezahldienste {
    fn create<'a>(&'a self, payment: &'a NewProviderPayment<'a>) -> ProviderFuture<'a, ProviderCreated> {
        Box::pin(async move {
            let url = self.url(&["paymenttransaction", payment.originator_id, payment.endpoint_id])?;
            let request = self.authorise(self.http.post(url).json(payment.request)).await?;
            let information = self.payment_information(self.send(request).await?).await?;
            let pay_url = information
                .transaction_redirect_url
                .ok_or_else(|| ProviderError::InvalidAnswer("no transactionRedirectUrl for a new payment".into()))?;
            Url::parse(&pay_url)
                .map_err(|_| ProviderError::InvalidAnswer("transactionRedirectUrl is not a URL".into()))?;
            Ok(ProviderCreated { reference: information.transaction_id, pay_url })
        })
    }

    fn status<'a>(
        &'a self,
        originator_id: &'a str,
        endpoint_id: &'a str,
        reference: &'a str,
    ) -> ProviderFuture<'a, ProviderState> {
        Box::pin(async move {
            let url = self.url(&["paymenttransaction", originator_id, endpoint_id, reference])?;
            let request = self.authorise(self.http.get(url)).await?;
            let information = self.payment_information(self.send(request).await?).await?;
            if information.transaction_id != reference {
                return Err(ProviderError::InvalidAnswer("the answer is about another transaction".into()));
            }
            Ok(ProviderState {
                status: information.status,
                status_detail: information.status_detail,
                payment_method: information.payment_method,
                payment_method_detail: information.payment_method_detail,
                transaction_reference: information.transaction_reference,
            })
        })
    }
}

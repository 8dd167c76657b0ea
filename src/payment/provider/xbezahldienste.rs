//! XBezahldienste towards a provider (pmPayment's API, ePay21, the ePayBL connector, and pforte's own
//! development simulator): the same endpoints and fields pforte offers online services, with the
//! provider's authentication (none, Basic, OAuth2 client credentials, or a client certificate).
//! A status answer's `paymentRequest.grosAmount`, when the provider echoes the request, is the
//! amount it reports ([`ProviderState::amount`]).

use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use super::transport::{url_under, ProviderHttp};
use super::{NewProviderPayment, PaymentAdapter, ProviderCreated, ProviderError, ProviderFuture, ProviderState};
use crate::payment::money::optional_number;
use crate::payment::wire::PaymentInformation;
use crate::registry::PaymentProvider;

pub(super) struct XBezahldienste {
    base: Url,
    /// Client, authentication and time limit, shared with the other adapters.
    http: ProviderHttp,
}

impl XBezahldienste {
    pub(super) fn new(provider: &PaymentProvider, shared: &reqwest::Client) -> Result<Self, ProviderError> {
        let http = ProviderHttp::new(provider, shared)?;
        let mut base = provider.base_url.url().clone();
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        Ok(XBezahldienste { base, http })
    }

    fn url(&self, segments: &[&str]) -> Result<Url, ProviderError> {
        url_under(&self.base, segments)
    }

    async fn authorise(&self, request: reqwest::RequestBuilder) -> Result<reqwest::RequestBuilder, ProviderError> {
        self.http.authorise(request).await
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response, ProviderError> {
        self.http.send(request).await
    }

    /// Reads `paymentInformation` from a 2xx answer; maps 4xx problems and 5xx to errors.
    async fn payment_information(&self, response: reqwest::Response) -> Result<PaymentInformation, ProviderError> {
        self.transaction(response).await.map(|(information, _)| information)
    }

    /// Reads `paymentInformation` and the echoed `paymentRequest.grosAmount` (exactly, when there is
    /// one) from a 2xx answer; maps 4xx problems and 5xx to errors.
    async fn transaction(
        &self,
        response: reqwest::Response,
    ) -> Result<(PaymentInformation, Option<Decimal>), ProviderError> {
        let status = response.status();
        let body = self.http.body(response).await?;
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
        let information = serde_json::from_value(json["paymentInformation"].clone())
            .map_err(|_| ProviderError::InvalidAnswer("paymentInformation is missing or malformed".into()))?;
        let amount = match json.get("paymentRequest") {
            None | Some(Value::Null) => None,
            Some(request) => {
                serde_json::from_value::<EchoedRequest>(request.clone())
                    .map_err(|_| ProviderError::InvalidAnswer("paymentRequest.grosAmount is not an amount".into()))?
                    .gros_amount
            }
        };
        Ok((information, amount))
    }
}

/// The part of an echoed `paymentRequest` pforte compares: the amount, read exactly.
#[derive(Deserialize)]
struct EchoedRequest {
    #[serde(default, rename = "grosAmount", deserialize_with = "optional_number")]
    gros_amount: Option<Decimal>,
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
            let (information, amount) = self.transaction(self.send(request).await?).await?;
            if information.transaction_id != reference {
                return Err(ProviderError::InvalidAnswer("the answer is about another transaction".into()));
            }
            Ok(ProviderState {
                status: information.status,
                status_detail: information.status_detail,
                payment_method: information.payment_method,
                payment_method_detail: information.payment_method_detail,
                transaction_reference: information.transaction_reference,
                amount,
            })
        })
    }

    /// `GET /status/{originatorId}/{endPointId}`: 2xx is up; 403 says the provider does not serve
    /// the pair (its configuration or pforte's registry is wrong); 5xx, 503 included, is down.
    fn probe<'a>(&'a self, originator_id: &'a str, endpoint_id: &'a str) -> ProviderFuture<'a, ()> {
        Box::pin(async move {
            let url = self.url(&["status", originator_id, endpoint_id])?;
            let request = self.authorise(self.http.get(url)).await?;
            let response = self.send(request).await?;
            let status = response.status();
            // Read (capped) so the connection can be reused; what it says beyond the status is not used.
            self.http.body(response).await?;
            match status.as_u16() {
                200..=299 => Ok(()),
                403 => Err(ProviderError::Refused {
                    code: "NOT_CONFIGURED".into(),
                    detail: "the provider does not serve this originatorId/endPointId pair (403)".into(),
                }),
                code if code >= 500 => Err(ProviderError::Unavailable(format!("answered {code}"))),
                code => Err(ProviderError::InvalidAnswer(format!("answered {code}"))),
            }
        })
    }
}

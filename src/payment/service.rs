//! The payment API's domain: create and read payments the way XBezahldienste defines them, routed
//! through the authority (tenant) to its provider. Answers are (HTTP status, JSON body) so that the
//! edge stays thin and idempotent replays return exactly the stored answer.
//!
//! Order of a create (security.md #19): claim the Idempotency-Key (the recorded intent), call the
//! provider outside any transaction, then record the payment with its event and audit entry in one
//! transaction. A provider that fails leaves nothing behind: no payment row, the key released, and no
//! pay URL anyone could be sent to.

use std::sync::Arc;

use serde_json::{json, Value};

use super::code::{FunctionalCode, ValidationFailure};
use super::idempotency::{Claim, Idempotency, IdempotencyError};
use super::provider::{adapter_for, NewProviderPayment, ProviderError, ProviderState};
use super::signals::{CreateError, PaymentSignals};
use super::state::Source;
use super::wire::{PaymentInformation, Status};
use super::{merge_booking_defaults, parse_path_id, parse_request_body};
use crate::clock::SharedClock;
use crate::registry::{Client, Registry};
use crate::storage::payments::PaymentRow;
use crate::storage::Database;

/// An answer of the payment API: status and JSON body (problem+json when `status >= 400`).
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

/// Open payments expire after this long without a final answer (the status worker then fails them).
pub const PAYMENT_LIFETIME_MILLIS: i64 = 2 * 3600 * 1000;

impl Answer {
    pub fn problem(code: FunctionalCode, detail: &str) -> Answer {
        let status = code.http_status();
        Answer {
            status,
            body: json!({
                "type": format!("urn:pforte:payment:{}", code.as_str()),
                "title": code.as_str(),
                "status": status,
                "detail": detail,
                "functionalCode": code.as_str(),
            }),
        }
    }

    /// A problem whose HTTP status is not the one the functionalCode implies (401, 404, 409, 5xx).
    pub fn problem_with_status(code: FunctionalCode, status: u16, detail: &str) -> Answer {
        let mut answer = Answer::problem(code, detail);
        answer.status = status;
        answer.body["status"] = json!(status);
        answer
    }

    fn failure(failure: &ValidationFailure) -> Answer {
        Answer::problem(failure.code, &failure.detail)
    }

    fn unavailable(detail: &str) -> Answer {
        Answer::problem_with_status(FunctionalCode::Unspecified, 503, detail)
    }
}

#[derive(Clone)]
pub struct PaymentService {
    db: Database,
    registry: Arc<Registry>,
    signals: PaymentSignals,
    idempotency: Idempotency,
    http: reqwest::Client,
    clock: SharedClock,
    issuer: String,
}

impl PaymentService {
    pub fn new(
        db: Database,
        registry: Arc<Registry>,
        signals: PaymentSignals,
        http: reqwest::Client,
        clock: SharedClock,
        issuer: String,
    ) -> Self {
        let idempotency = Idempotency::new(db.clone(), clock.clone());
        PaymentService { db, registry, signals, idempotency, http, clock, issuer }
    }

    /// Whether `client` may act for (originator, endpoint): its own originatorId and a listed authority.
    fn authorise(&self, client: &Client, originator: &str, endpoint: &str) -> Result<(), Answer> {
        for (name, value) in [("originatorId", originator), ("endPointId", endpoint)] {
            parse_path_id(name, value).map_err(|f| Answer::failure(&f))?;
        }
        if self.registry.tenant(endpoint).is_none() || self.registry.client_by_originator(originator).is_none() {
            return Err(Answer::problem(
                FunctionalCode::NoValidOriginatorOrEndpoint,
                "Unknown originatorId or endPointId.",
            ));
        }
        let own = client.originator_id.as_ref().is_some_and(|id| id.as_str() == originator);
        if !own || !client.may_act_for(endpoint) {
            return Err(Answer::problem(
                FunctionalCode::Forbidden,
                "This client may not act for this originatorId and endPointId.",
            ));
        }
        Ok(())
    }

    /// `GET /status/{originatorId}/{endPointId}`: 200 when the pair is configured for this client.
    pub fn status(&self, client: &Client, originator: &str, endpoint: &str) -> Answer {
        match self.authorise(client, originator, endpoint) {
            Ok(()) => Answer { status: 200, body: json!({ "status": "UP" }) },
            Err(answer) => answer,
        }
    }

    pub async fn create(
        &self,
        client: &Client,
        originator: &str,
        endpoint: &str,
        body: &[u8],
        idempotency_key: Option<&str>,
    ) -> Answer {
        if let Err(answer) = self.authorise(client, originator, endpoint) {
            return answer;
        }
        let client_id = client.id.as_str();
        let Some(key) = idempotency_key else {
            return self.create_claimed(client, originator, endpoint, body).await;
        };
        let hash = Idempotency::request_hash("POST", &format!("/paymenttransaction/{originator}/{endpoint}"), body);
        match self.idempotency.claim(client_id, key, &hash).await {
            Ok(Claim::Proceed) => {}
            Ok(Claim::Replay { status, body }) => {
                return Answer { status, body: serde_json::from_str(&body).unwrap_or(Value::Null) };
            }
            Ok(Claim::Conflict) => {
                return Answer::problem(
                    FunctionalCode::ValidationError,
                    "This Idempotency-Key was used for a different request.",
                )
            }
            Ok(Claim::InProgress) => {
                let mut answer = Answer::problem(
                    FunctionalCode::Unspecified,
                    "A request with this Idempotency-Key is still running.",
                );
                answer.status = 409;
                answer.body["status"] = json!(409);
                return answer;
            }
            Err(IdempotencyError::InvalidKey) => {
                return Answer::problem(
                    FunctionalCode::ValidationError,
                    "The Idempotency-Key must be 1 to 255 visible ASCII characters.",
                )
            }
            Err(IdempotencyError::Storage(e)) => return internal(&e),
        }
        let answer = self.create_claimed(client, originator, endpoint, body).await;
        let stored = if answer.status >= 500 {
            // Nothing was created: the client may try again with the same key.
            self.idempotency.release(client_id, key).await
        } else {
            self.idempotency.complete(client_id, key, answer.status, &answer.body.to_string()).await
        };
        if let Err(e) = stored {
            tracing::error!(error = %e, "could not settle an Idempotency-Key");
        }
        answer
    }

    async fn create_claimed(&self, client: &Client, originator: &str, endpoint: &str, body: &[u8]) -> Answer {
        let mut request = match parse_request_body(body) {
            Ok(request) => request,
            Err(failure) => return Answer::failure(&failure),
        };
        let Some(tenant) = self.registry.tenant(endpoint) else {
            return Answer::problem(FunctionalCode::NoValidOriginatorOrEndpoint, "Unknown endPointId.");
        };
        merge_booking_defaults(&mut request, &tenant.payment.booking_defaults);
        match self.db.payment_exists(originator, endpoint, request.request_id.as_str()).await {
            Ok(true) => {
                return Answer::problem(FunctionalCode::PaymentExists, "A payment with this requestId exists already.")
            }
            Ok(false) => {}
            Err(e) => return internal(&e),
        }
        let Some(provider) = self.registry.payment_provider(tenant.payment.provider.as_str()) else {
            return internal(&"tenant names an unknown payment provider");
        };
        let adapter = match adapter_for(provider, &self.http) {
            Ok(adapter) => adapter,
            Err(e) => return Answer::unavailable(&e.to_string()),
        };
        let transaction_id = crate::identity::random_token();
        // The provider returns the citizen to pforte, which reads the status before sending them on.
        let mut to_provider = request.clone();
        to_provider.redirect_url = format!("{}/pay/{transaction_id}/return", self.issuer);
        let payment = NewProviderPayment { originator_id: originator, endpoint_id: endpoint, request: &to_provider };
        let created = match adapter.create(&payment).await {
            Ok(created) => created,
            Err(ProviderError::Refused { code, detail }) => {
                tracing::warn!(provider = provider.id.as_str(), code, "the payment provider refused a payment");
                let code = FunctionalCode::parse(&code).unwrap_or(FunctionalCode::Unspecified);
                let detail = format!("The payment provider refused the payment: {detail}");
                return Answer::problem_with_status(code, code.http_status().max(400), &detail);
            }
            Err(e) => {
                tracing::warn!(provider = provider.id.as_str(), error = %e, "payment provider unavailable");
                return Answer::unavailable(
                    "The authority's payment provider is not available; nothing was created. Try again later.",
                );
            }
        };
        let now = self.clock.now_millis();
        let row = PaymentRow {
            transaction_id: transaction_id.clone(),
            originator_id: originator.to_owned(),
            endpoint_id: endpoint.to_owned(),
            client_id: client.id.as_str().to_owned(),
            request_id: request.request_id.as_str().to_owned(),
            request: serde_json::to_string(&request).unwrap_or_default(),
            gros_amount: request.gros_amount.value().to_string(),
            provider_id: provider.id.as_str().to_owned(),
            provider_reference: Some(created.reference),
            pay_url: Some(created.pay_url),
            status: Status::Initial.as_str().to_owned(),
            status_detail: None,
            timed_out_at: None,
            paid_after_timeout_at: None,
            created_at: now,
            updated_at: now,
            expires_at: now + PAYMENT_LIFETIME_MILLIS,
        };
        match self.signals.create(&row).await {
            Ok(()) => {}
            Err(CreateError::Exists) => {
                return Answer::problem(FunctionalCode::PaymentExists, "A payment with this requestId exists already.")
            }
            Err(CreateError::Storage(e)) => return internal(&e),
        }
        Answer { status: 201, body: self.transaction(&row) }
    }

    pub async fn read(&self, client: &Client, originator: &str, endpoint: &str, transaction_id: &str) -> Answer {
        if let Err(answer) = self.authorise(client, originator, endpoint) {
            return answer;
        }
        match self.db.payment(transaction_id).await {
            Ok(Some(row)) if row.originator_id == originator && row.endpoint_id == endpoint => {
                Answer { status: 200, body: self.transaction(&row) }
            }
            Ok(_) => Answer::problem_with_status(FunctionalCode::Unspecified, 404, "No such transaction."),
            Err(e) => internal(&e),
        }
    }

    /// Where `/pay/{id}` sends the browser: the provider's pay page while INITIAL, else the service.
    pub async fn pay_target(&self, transaction_id: &str) -> Option<String> {
        let row = self.db.payment(transaction_id).await.ok()??;
        if row.status == Status::Initial.as_str() {
            row.pay_url
        } else {
            client_redirect(&row)
        }
    }

    /// The citizen is back from the provider: read the status there, record it, send them on. A failed
    /// read does not hold the citizen up; the status worker reads again later.
    pub async fn provider_return(&self, transaction_id: &str) -> Option<String> {
        let row = self.db.payment(transaction_id).await.ok()??;
        if let Some(state) = read_at_provider(&self.registry, &self.http, &row).await {
            let recorded = self
                .signals
                .record(transaction_id, state.status, Source::Provider, state.status_detail.as_deref())
                .await;
            if let Err(e) = recorded {
                tracing::error!(error = %e, "could not record a payment status");
            }
        }
        client_redirect(&row)
    }

    fn transaction(&self, row: &PaymentRow) -> Value {
        let request: Value = serde_json::from_str(&row.request).unwrap_or(Value::Null);
        let status = Status::parse(&row.status).unwrap_or(Status::Initial);
        let information = PaymentInformation {
            transaction_url: format!(
                "{}/paymenttransaction/{}/{}/{}",
                self.issuer, row.originator_id, row.endpoint_id, row.transaction_id
            ),
            transaction_redirect_url: Some(format!("{}/pay/{}", self.issuer, row.transaction_id)),
            transaction_id: row.transaction_id.clone(),
            transaction_reference: None,
            transaction_timestamp: chrono::DateTime::from_timestamp_millis(row.created_at).map(|t| t.fixed_offset()),
            payment_method: None,
            payment_method_detail: None,
            status,
            status_detail: row.status_detail.clone(),
        };
        json!({ "paymentRequest": request, "paymentInformation": information })
    }
}

/// What the payment's provider says about it now; `None` when it cannot be asked or did not answer.
pub async fn read_at_provider(registry: &Registry, http: &reqwest::Client, row: &PaymentRow) -> Option<ProviderState> {
    let provider = registry.payment_provider(&row.provider_id)?;
    let reference = row.provider_reference.as_deref()?;
    let adapter = adapter_for(provider, http).ok()?;
    match adapter.status(&row.originator_id, &row.endpoint_id, reference).await {
        Ok(state) => Some(state),
        Err(e) => {
            tracing::warn!(provider = provider.id.as_str(), error = %e, "status read at the provider failed");
            None
        }
    }
}

fn client_redirect(row: &PaymentRow) -> Option<String> {
    let request: Value = serde_json::from_str(&row.request).ok()?;
    request["redirectUrl"].as_str().map(str::to_owned)
}

fn internal(cause: &dyn std::fmt::Display) -> Answer {
    tracing::error!(error = %cause, "payment request failed");
    let mut answer =
        Answer::problem(FunctionalCode::Unspecified, "The request could not be completed; quote the x-request-id.");
    answer.status = 500;
    answer.body["status"] = json!(500);
    answer
}

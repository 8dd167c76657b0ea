//! The payment API's domain: create and read payments the way XBezahldienste defines them, routed
//! through the authority (tenant) to its provider. Successes are the XBezahldienste bodies, failures a
//! [`PaymentError`]; the edge renders both, and a create's rendered answer is stored under its
//! Idempotency-Key so that a replay returns exactly that.
//!
//! Order of a create (SECURITY.md #19): claim the Idempotency-Key (the recorded intent), call the
//! provider outside any transaction, then record the payment with its event and audit entry in one
//! transaction. A provider that fails leaves nothing behind: no payment row, the key released, and no
//! pay URL anyone could be sent to.
//!
//! `paymentRequest` in every answer is the request exactly as the service sent it; what the provider
//! got (booking defaults merged, pforte's return URL) is kept beside it for the finance exports.
//! Neither stored copy holds the payer's personal data: that is sealed apart (`personal`,
//! SECURITY.md #24) and put back into the answers while the tenant's retention period keeps it.

use std::sync::Arc;

use serde_json::{json, Value};

use super::answer::{AnswerRenderer, Created, PaymentEdge, Reply};
use super::api;
use super::code::{ErrorKind, FunctionalCode, PaymentError};
use super::idempotency::Idempotency;
use super::personal;
use super::provider::{NewProviderPayment, ProviderError, ProviderState, Providers};
use super::request::check_redirect_url;
use super::routes::PaymentRoutes;
use super::signals::{CreateError, KeyedAnswer, Outcome, PaymentSignals};
use super::state::Source;
use super::wire::{PaymentInformation, PaymentMethod, Status};
use super::{merge_booking_defaults, parse_request_body};
use crate::clock::SharedClock;
use crate::config::PaymentSettings;
use crate::crypto::MasterKey;
use crate::http_client::Reach;
use crate::registry::{Client, Registry, SharedRegistry};
use crate::store::payments::PaymentRow;
use crate::store::personal_data::PersonalData;
use crate::store::Database;

/// The `statusDetail` of a payment the online service canceled.
pub(crate) const CANCELED_DETAIL: &str = "canceled by the online service";

fn payment_exists() -> PaymentError {
    PaymentError::rejected(FunctionalCode::PaymentExists, "A payment with this requestId exists already.")
}

#[derive(Clone)]
pub struct PaymentService {
    db: Database,
    registry: SharedRegistry,
    signals: PaymentSignals,
    idempotency: Idempotency,
    providers: Providers,
    clock: SharedClock,
    /// Where the edge serves payments and pay pages.
    routes: Arc<dyn PaymentRoutes>,
    /// How the edge answers a create, stored under its Idempotency-Key.
    answers: Arc<dyn AnswerRenderer>,
    /// Open payments are failed for timeout after this long (`payments.lifetime_secs`).
    lifetime_millis: i64,
    /// Seals the payer's personal data and the stored answers (SECURITY.md #24).
    master: Arc<MasterKey>,
    /// What a `notifyUrl` may reach (SECURITY.md #28): public hosts, loopback only with the
    /// development simulators.
    reach: Reach,
}

impl PaymentService {
    // Each is a separate dependency `app` builds once; a bundle of them would only be used here.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        db: Database,
        registry: SharedRegistry,
        signals: PaymentSignals,
        providers: Providers,
        clock: SharedClock,
        edge: PaymentEdge,
        settings: &PaymentSettings,
        master: Arc<MasterKey>,
    ) -> Self {
        let PaymentEdge { routes, answers } = edge;
        let idempotency = Idempotency::new(db.clone(), clock.clone()).sealed_with(master.clone());
        let lifetime_millis = i64::try_from(settings.lifetime_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        PaymentService {
            db,
            registry,
            signals,
            idempotency,
            providers,
            clock,
            routes,
            answers,
            lifetime_millis,
            master,
            reach: Reach::Public,
        }
    }

    /// The server's request timeout: an Idempotency-Key claimed longer ago than this without an
    /// answer was left by a request that is gone, and the next request with the key takes it over.
    /// What a `notifyUrl` may reach; without this, public hosts only.
    pub fn with_outbound_reach(mut self, reach: Reach) -> Self {
        self.reach = reach;
        self
    }

    pub fn with_request_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.idempotency = self.idempotency.abandoned_after(timeout);
        self
    }

    fn authorise(&self, client: &Client, originator: &str, endpoint: &str) -> Result<(), PaymentError> {
        api::authorise(&self.registry.current(), client, originator, endpoint)
    }

    /// `GET /status/{originatorId}/{endPointId}`: `{"status": "UP"}` when the pair is configured for
    /// this client.
    pub fn status(&self, client: &Client, originator: &str, endpoint: &str) -> Result<Value, PaymentError> {
        self.authorise(client, originator, endpoint)?;
        Ok(json!({ "status": "UP" }))
    }

    pub async fn create(
        &self,
        client: &Client,
        originator: &str,
        endpoint: &str,
        body: &[u8],
        idempotency_key: Option<&str>,
    ) -> Reply {
        // One registry for the whole create, whatever a reload does meanwhile.
        let registry = self.registry.current();
        if let Err(error) = api::authorise(&registry, client, originator, endpoint) {
            return Reply::Fresh(Err(error));
        }
        let path = self.routes.create_path(originator, endpoint);
        let work = self.create_claimed(&registry, client, originator, endpoint, body, idempotency_key);
        let keyed = api::Keyed { key: idempotency_key, created_stores_answer: true };
        let answers = self.answers.as_ref();
        api::idempotent(&self.idempotency, answers, client.id.as_str(), keyed, &path, body, work).await
    }

    /// `key`: the Idempotency-Key this request holds; the created answer is stored under it in the
    /// payment's own transaction, so a crash leaves the payment with its answer (a retry replays it)
    /// or neither.
    async fn create_claimed(
        &self,
        registry: &Registry,
        client: &Client,
        originator: &str,
        endpoint: &str,
        body: &[u8],
        key: Option<&str>,
    ) -> Created {
        let request = parse_request_body(body)?;
        let Some(tenant) = registry.tenant(endpoint) else {
            return Err(PaymentError::rejected(FunctionalCode::NoValidOriginatorOrEndpoint, "Unknown endPointId."));
        };
        let registered = client.redirect_uris.iter().chain(&client.post_logout_redirect_uris).map(|uri| uri.url());
        if let Err(rule) = check_redirect_url(&request.redirect_url, registered, self.reach) {
            return Err(PaymentError::rejected(FunctionalCode::ValidationError, format!("redirectUrl {rule}.")));
        }
        if let Some(Err(rule)) = request.notify_url.as_ref().map(|url| url.check_reach(self.reach)) {
            return Err(PaymentError::rejected(FunctionalCode::ValidationError, format!("notifyUrl {rule}.")));
        }
        if request.notify_url.is_some() && client.notification_secret.is_none() {
            return Err(PaymentError::rejected(
                FunctionalCode::ValidationError,
                "notifyUrl needs a notification_secret in the service's registration to sign notifications with.",
            ));
        }
        let mut effective = request.clone();
        merge_booking_defaults(&mut effective, &tenant.payment.booking_defaults);
        match self.db.payment_exists(originator, endpoint, request.request_id.as_str()).await {
            Ok(true) => return Err(payment_exists()),
            Ok(false) => {}
            Err(e) => return Err(PaymentError::from(e)),
        }
        let routed = tenant.payment.provider_for(request.gros_amount.value(), originator);
        let Some(provider) = registry.payment_provider(routed.as_str()) else {
            return Err(PaymentError::internal(&"tenant names an unknown payment provider"));
        };
        let adapter =
            self.providers.adapter(provider.id.as_str()).map_err(|e| PaymentError::unavailable(e.to_string()))?;
        // 27 random bytes: 36 base64url characters (216 bits), because FIT-Connect's metadata 1.0.0
        // takes a `paymentInformation.transactionId` of at most 36 characters, and the id is what
        // the online service puts there (`transfer::evidence`). Still far beyond guessing: the id
        // is in the citizen's pay URL.
        let transaction_id = crate::crypto::random_token_of::<27>();
        // The provider returns the citizen to pforte, which reads the status before sending them on.
        let mut to_provider = effective;
        to_provider.redirect_url = self.routes.provider_return_url(&transaction_id);
        // Notifications come from pforte; the provider has no use for the service's address.
        to_provider.notify_url = None;
        let callback_url = self.routes.provider_callback_url(provider.id.as_str());
        let payment = NewProviderPayment {
            originator_id: originator,
            endpoint_id: endpoint,
            request: &to_provider,
            transaction_id: &transaction_id,
            callback_url: &callback_url,
        };
        let created = match adapter.create(&payment).await {
            Ok(created) => created,
            Err(ProviderError::Refused { code, detail }) => {
                tracing::warn!(provider = provider.id.as_str(), code, "the payment provider refused a payment");
                let code = FunctionalCode::parse(&code).unwrap_or(FunctionalCode::Unspecified);
                let detail = format!("The payment provider refused the payment: {detail}");
                return Err(PaymentError::new(ErrorKind::ProviderRefused, code, detail));
            }
            Err(e) => {
                tracing::warn!(provider = provider.id.as_str(), error = %e, "payment provider unavailable");
                return Err(PaymentError::unavailable(
                    "The authority's payment provider is not available; nothing was created. Try again later.",
                ));
            }
        };
        let now = self.clock.now_millis();
        let sent = serde_json::to_value(&request).map_err(|e| PaymentError::internal(&e))?;
        let effective = serde_json::to_value(&to_provider).map_err(|e| PaymentError::internal(&e))?;
        let stored = personal::split(&self.master, &transaction_id, sent.clone(), effective)
            .map_err(|e| PaymentError::internal(&e))?;
        let row = PaymentRow {
            transaction_id: transaction_id.clone(),
            originator_id: originator.to_owned(),
            endpoint_id: endpoint.to_owned(),
            client_id: client.id.as_str().to_owned(),
            request_id: request.request_id.as_str().to_owned(),
            request: stored.request,
            effective_request: stored.effective_request,
            gros_amount: request.gros_amount.value(),
            provider_id: provider.id.as_str().to_owned(),
            provider_reference: Some(created.reference),
            pay_url: Some(created.pay_url),
            status: Status::Initial,
            status_detail: None,
            timed_out_at: None,
            paid_after_timeout_at: None,
            created_at: now,
            updated_at: now,
            expires_at: now.saturating_add(self.lifetime_millis),
            payment_method: None,
            payment_method_detail: None,
            transaction_reference: None,
            paid_at: None,
            notify_url: request.notify_url.as_ref().map(|url| url.as_str().to_owned()),
        };
        let created = Ok(self.transaction(&row, sent));
        let answer = match key {
            Some(key) => Some(
                self.idempotency
                    .seal(client.id.as_str(), key, &self.answers.render_create(&created))
                    .map_err(PaymentError::from)?,
            ),
            None => None,
        };
        let keyed =
            key.zip(answer.as_ref()).map(|(key, answer)| KeyedAnswer { client_id: client.id.as_str(), key, answer });
        let sealed = Some(stored.personal_data.as_str());
        match self.signals.create_recording(&row, sealed, keyed.as_ref()).await {
            Ok(()) => created,
            Err(CreateError::Exists) => Err(payment_exists()),
            // The provider holds the payment: it is recorded once the database is back, and the
            // key stays held for it, so a retry is answered with this payment, never a second one.
            Err(CreateError::Storage(e)) if e.is_unavailable() => {
                let keyed = keyed.map(|k| (k.client_id.to_owned(), k.key.to_owned(), k.answer.clone()));
                self.signals.create_when_back(row, Some(stored.personal_data), keyed);
                Err(PaymentError::new(
                    ErrorKind::Recording,
                    FunctionalCode::Unspecified,
                    "The payment was created at the provider and is recorded as soon as pforte's database is \
                     back; send the same request with the same Idempotency-Key again shortly to get it.",
                ))
            }
            Err(CreateError::Storage(e)) => Err(PaymentError::from(e)),
        }
    }

    pub async fn read(
        &self,
        client: &Client,
        originator: &str,
        endpoint: &str,
        transaction_id: &str,
    ) -> Result<Value, PaymentError> {
        self.authorise(client, originator, endpoint)?;
        let row = api::find_payment(&self.db, originator, endpoint, transaction_id).await?;
        let request = self.request_as_sent(&row).await?;
        Ok(self.transaction(&row, request))
    }

    /// The request as the service sent it, with its personal data while it is kept; after the
    /// tenant's retention period without it (SECURITY.md #24).
    async fn request_as_sent(&self, row: &PaymentRow) -> Result<Value, PaymentError> {
        let mut request: Value = serde_json::from_str(&row.request).unwrap_or(Value::Null);
        let stored = self.db.payment_personal_data(&row.transaction_id).await?;
        if let Some(PersonalData::Sealed(sealed)) = stored {
            let personal =
                personal::open(&self.master, &row.transaction_id, &sealed).map_err(|e| PaymentError::internal(&e))?;
            personal::put_back(&mut request, personal);
        }
        Ok(request)
    }

    /// `POST …/{transactionId}/cancel`: ends an INITIAL payment as CANCELED. The provider is asked
    /// first (outside any transaction): a payment it already ended keeps that ending, and one whose
    /// status cannot be read is not canceled, as the citizen may have paid meanwhile. The provider is
    /// then asked to cancel too, where it can (XBezahldienste cannot: the cancel is pforte's alone).
    pub async fn cancel(
        &self,
        client: &Client,
        originator: &str,
        endpoint: &str,
        transaction_id: &str,
    ) -> Result<Value, PaymentError> {
        // One registry for the whole cancel, whatever a reload does meanwhile.
        let registry = self.registry.current();
        api::authorise(&registry, client, originator, endpoint)?;
        let row = api::find_payment(&self.db, originator, endpoint, transaction_id).await?;
        if row.status != Status::Initial {
            return Err(not_cancelable(row.status.as_str()));
        }
        let Some(state) = read_at_provider(&registry, &self.providers, &row).await else {
            return Err(PaymentError::unavailable(
                "The payment provider could not be asked whether the payment was made; nothing was canceled. \
                 Try again later.",
            ));
        };
        match self.signals.record_provider_read(&row, &state).await {
            Ok(Outcome::Moved { to, .. }) => return Err(not_cancelable(to.as_str())),
            // Something was paid, or the provider is wrong: the finance office looks first.
            Ok(Outcome::AmountMismatch { .. }) => {
                return Err(PaymentError::wrong_status(
                    "The payment provider reports another amount than the payment's; the payment is \
                     flagged for the finance office and was not canceled.",
                ))
            }
            Ok(Outcome::Unchanged { current }) if current != Status::Initial => {
                return Err(not_cancelable(current.as_str()))
            }
            Ok(_) => {}
            Err(e) => return Err(PaymentError::from(e)),
        }
        self.cancel_at_provider(&registry, &row).await?;
        match self.signals.record(transaction_id, Status::Canceled, Source::Client, Some(CANCELED_DETAIL)).await {
            Ok(Outcome::Moved { .. }) => {}
            // A provider signal won the race meanwhile: that ending stands.
            Ok(Outcome::Unchanged { current }) => return Err(not_cancelable(current.as_str())),
            Ok(Outcome::PaidAfterTimeout | Outcome::AmountMismatch { .. } | Outcome::UnknownTransaction) => {
                return Err(not_cancelable(row.status.as_str()))
            }
            Err(e) => return Err(PaymentError::from(e)),
        }
        let row = api::find_payment(&self.db, originator, endpoint, transaction_id).await?;
        let request = self.request_as_sent(&row).await?;
        Ok(self.transaction(&row, request))
    }

    /// Asks the provider to end the payment; a provider that has no cancel leaves it to pforte.
    async fn cancel_at_provider(&self, registry: &Registry, row: &PaymentRow) -> Result<(), PaymentError> {
        let provider = registry.payment_provider(&row.provider_id);
        let adapter = provider.and_then(|provider| self.providers.adapter(provider.id.as_str()).ok());
        let (Some(adapter), Some(reference)) = (adapter, row.provider_reference.as_deref()) else {
            return Ok(());
        };
        match adapter.cancel(&row.originator_id, &row.endpoint_id, reference).await {
            Ok(()) | Err(ProviderError::Unsupported(_)) => Ok(()),
            Err(e) => {
                tracing::warn!(provider = row.provider_id.as_str(), error = %e, "cancel at the provider failed");
                Err(PaymentError::unavailable(
                    "The payment provider did not confirm the cancel; nothing was canceled. Try again later.",
                ))
            }
        }
    }

    /// Where `/pay/{id}` sends the browser: the provider's pay page while INITIAL, else the service;
    /// `None` for no such payment. A database that cannot be asked is an error, not "no such payment".
    pub async fn pay_target(&self, transaction_id: &str) -> Result<Option<String>, PaymentError> {
        let Some(row) = self.db.payment(transaction_id).await? else { return Ok(None) };
        Ok(if row.status == Status::Initial { row.pay_url } else { client_redirect(&row) })
    }

    /// The citizen is back from the provider: read the status there, record it, send them on. A failed
    /// read or record does not hold the citizen up; the status worker reads again later.
    pub async fn provider_return(&self, transaction_id: &str) -> Result<Option<String>, PaymentError> {
        let Some(row) = self.db.payment(transaction_id).await? else { return Ok(None) };
        if let Some(state) = read_at_provider(&self.registry.current(), &self.providers, &row).await {
            if let Err(e) = self.signals.record_provider_read(&row, &state).await {
                tracing::error!(error = %e, "could not record a payment status");
            }
        }
        Ok(client_redirect(&row))
    }

    /// The answer about a payment: `request` as the service sent it, and what pforte knows.
    fn transaction(&self, row: &PaymentRow, request: Value) -> Value {
        let status = row.status;
        let information = PaymentInformation {
            transaction_url: self.routes.transaction_url(&row.originator_id, &row.endpoint_id, &row.transaction_id),
            // The pay page only while the payment can still be paid (the standard's rule).
            transaction_redirect_url: (status == Status::Initial).then(|| self.routes.pay_url(&row.transaction_id)),
            transaction_id: row.transaction_id.clone(),
            transaction_reference: row.transaction_reference.clone(),
            transaction_timestamp: chrono::DateTime::from_timestamp_millis(row.created_at).map(|t| t.fixed_offset()),
            payment_method: row.payment_method.as_deref().map(PaymentMethod::parse),
            payment_method_detail: row.payment_method_detail.clone(),
            status,
            status_detail: row.status_detail.clone(),
        };
        json!({ "paymentRequest": request, "paymentInformation": information })
    }
}

/// What the payment's provider says about it now; `None` when it cannot be asked or did not answer.
pub(crate) async fn read_at_provider(
    registry: &Registry,
    providers: &Providers,
    row: &PaymentRow,
) -> Option<ProviderState> {
    let provider = registry.payment_provider(&row.provider_id)?;
    let reference = row.provider_reference.as_deref()?;
    let adapter = providers.adapter(provider.id.as_str()).ok()?;
    match adapter.status(&row.originator_id, &row.endpoint_id, reference).await {
        Ok(state) => Some(state),
        Err(e) => {
            tracing::warn!(provider = provider.id.as_str(), error = %e, "status read at the provider failed");
            None
        }
    }
}

fn not_cancelable(status: &str) -> PaymentError {
    PaymentError::wrong_status(format!("The payment is {status}; only an INITIAL payment can be canceled."))
}

fn client_redirect(row: &PaymentRow) -> Option<String> {
    let request: Value = serde_json::from_str(&row.request).ok()?;
    request["redirectUrl"].as_str().map(str::to_owned)
}

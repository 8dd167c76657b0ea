//! Login and payment evidence (issue 15 item 5, SECURITY.md #41): statements pforte signs with its
//! PS512 key (published in its JWKS) for an online service to place inside the encrypted metadata,
//! so the Fachverfahren can verify that the person logged in at a level through a provider, and that
//! a payment for its authority was PAYED. Both are bound to one submission of the calling client.
//!
//! Datentransfer knows no login: the edge checks the ID token with the identity module's own check
//! and hands in what it says ([`LoginFacts`]). Payments are read from the store; which authority a
//! payment belongs to is its `endPointId` (a tenant's id is its `endPointId`), and which client
//! created it is its `client_id`.

use chrono::{DateTime, SecondsFormat, Utc};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::json;

use super::events::sign_ps512;
use super::{TransferError, TransferService};
use crate::model::{PaymentStatus, RefundStatus, SubmissionStatus};
use crate::registry::{Client, Destination, Registry};
use crate::store::payments::PaymentRow;
use crate::store::transfer::SubmissionRow;

const IDENTIFICATION_TYPE: &str = "identification-report+jwt";
const PAYMENT_TYPE: &str = "payment-evidence+jwt";
/// pforte's payment API takes euros only (XBezahldienste).
const CURRENCY: &str = "EUR";

/// What a checked ID token pforte issued to the calling client says about the login. No name, no
/// birth date, no address: the evidence carries nothing the service does not already have.
#[derive(Debug, Clone)]
pub struct LoginFacts {
    /// The pairwise pseudonym the service already knows.
    pub sub: String,
    /// The level, as the ID token's `acr` (an eIDAS URI).
    pub acr: String,
    pub idp: String,
    pub auth_time: Option<i64>,
    /// The ID token's `iat`: the login's time when the provider sent no `auth_time`.
    pub issued_at: i64,
}

impl LoginFacts {
    /// When the person logged in: the provider's `auth_time`, else when pforte issued the ID token
    /// (right after the login; a refresh does not issue a new ID token).
    fn login_at(&self) -> i64 {
        self.auth_time.unwrap_or(self.issued_at)
    }
}

/// `POST /v1/evidence/authentication` as sent.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthenticationRequest {
    pub id_token: String,
    pub submission_id: String,
}

/// `POST /v1/evidence/payment` as sent.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PaymentRequest {
    pub transaction_id: String,
    pub submission_id: String,
}

pub fn parse_body<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, TransferError> {
    serde_json::from_slice(body).map_err(|e| TransferError::Invalid(format!("the request is not valid: {e}")))
}

/// The payment evidence and the facts the metadata's `paymentInformation` repeats.
#[derive(Debug, Clone)]
pub struct PaymentEvidence {
    pub transaction_id: String,
    /// The Kassenzeichen, or the transaction id when the provider reported none.
    pub transaction_reference: String,
    /// RFC 3339, UTC.
    pub paid_at: String,
    pub token: String,
}

impl TransferService {
    /// The signed identification report for `login`, bound to a submission the client announced.
    pub async fn authentication_evidence(
        &self,
        registry: &Registry,
        client: &Client,
        login: LoginFacts,
        submission_id: &str,
    ) -> Result<String, TransferError> {
        let (submission, destination) = self.open_submission(registry, client, submission_id).await?;
        let now = self.clock.now_millis() / 1000;
        let max_age = i64::try_from(self.limits.evidence_max_login_age_secs).unwrap_or(i64::MAX);
        let login_at = login.login_at();
        if now.saturating_sub(login_at) > max_age {
            return Err(TransferError::InvalidIdToken(format!("the login is older than {max_age} seconds")));
        }
        let claims = json!({
            "iss": self.issuer,
            "iat": now,
            "jti": uuid::Uuid::new_v4().to_string(),
            "sub": login.sub,
            "acr": login.acr,
            "idp": login.idp,
            "auth_time": login_at,
            "tenant": destination.tenant.as_str(),
            "client_id": client.id.as_str(),
            "destination_id": destination.id.as_str(),
            "submission_id": submission.submission_id,
            "case_id": submission.case_id,
        });
        Ok(sign_ps512(&self.keys, IDENTIFICATION_TYPE, claims).await?)
    }

    /// The signed payment evidence for a PAYED payment of the client for the destination's
    /// authority. Binds the payment to the submission when it is bound to none yet: a payment serves
    /// one submission only.
    pub async fn payment_evidence(
        &self,
        registry: &Registry,
        client: &Client,
        request: PaymentRequest,
    ) -> Result<PaymentEvidence, TransferError> {
        let (submission, destination) = self.open_submission(registry, client, &request.submission_id).await?;
        let payment = self.paid_payment(client, destination, &request.transaction_id).await?;
        match submission.payment_transaction_id.as_deref() {
            Some(bound) if bound == payment.transaction_id => {}
            Some(_) => return Err(TransferError::PaymentUsed("this submission serves another payment".into())),
            None => self.bind_payment(&submission.submission_id, &payment.transaction_id).await?,
        }
        let paid_at = payment.paid_at.unwrap_or(payment.updated_at);
        let paid_at = DateTime::<Utc>::from_timestamp_millis(paid_at)
            .unwrap_or_default()
            .to_rfc3339_opts(SecondsFormat::Secs, true);
        let reference = payment.transaction_reference.clone().unwrap_or_else(|| payment.transaction_id.clone());
        let claims = json!({
            "iss": self.issuer,
            "iat": self.clock.now_millis() / 1000,
            "jti": uuid::Uuid::new_v4().to_string(),
            "tenant": destination.tenant.as_str(),
            "client_id": client.id.as_str(),
            "transaction_id": payment.transaction_id,
            "transaction_reference": reference,
            "amount": two_decimals(payment.gros_amount),
            "currency": CURRENCY,
            "status": PaymentStatus::Payed.as_str(),
            "paid_at": paid_at,
            "destination_id": destination.id.as_str(),
            "submission_id": submission.submission_id,
            "case_id": submission.case_id,
        });
        let token = sign_ps512(&self.keys, PAYMENT_TYPE, claims).await?;
        Ok(PaymentEvidence { transaction_id: payment.transaction_id, transaction_reference: reference, paid_at, token })
    }

    /// The payment `transaction_id` if it was created by `client` for `destination`'s authority, is
    /// PAYED and has no refund that counts (all but FAILED ones): a fee refunded in whole or part no
    /// longer pays for the submission. An unknown payment and another's are refused alike, so the
    /// answer does not tell whether another client's payment exists.
    pub(super) async fn paid_payment(
        &self,
        client: &Client,
        destination: &Destination,
        transaction_id: &str,
    ) -> Result<PaymentRow, TransferError> {
        let not_paid = |reason: &str| TransferError::PaymentNotPaid(reason.to_owned());
        let payment = self.db.payment(transaction_id).await?.filter(|payment| {
            payment.client_id == client.id.as_str() && payment.endpoint_id == destination.tenant.as_str()
        });
        let payment = payment.ok_or_else(|| not_paid("no payment of this client for this authority has this id"))?;
        if payment.status != PaymentStatus::Payed {
            return Err(not_paid(&format!("the payment is {}, not PAYED", payment.status.as_str())));
        }
        let refunds = self.db.refunds_of(transaction_id).await?;
        if refunds.iter().any(|refund| refund.status != RefundStatus::Failed) {
            return Err(not_paid("the payment was refunded"));
        }
        Ok(payment)
    }

    async fn bind_payment(&self, submission_id: &str, transaction_id: &str) -> Result<(), TransferError> {
        if self.db.transfer_submission_of_payment(transaction_id).await?.is_some() {
            return Err(payment_used());
        }
        match self.db.bind_transfer_payment(submission_id, transaction_id).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(TransferError::InvalidTransition("the submission changed meanwhile".into())),
            Err(e) if e.is_unique_violation() => Err(payment_used()),
            Err(e) => Err(e.into()),
        }
    }

    /// A submission of this client still announced: evidence goes into the metadata of its submit.
    async fn open_submission<'r>(
        &self,
        registry: &'r Registry,
        client: &Client,
        submission_id: &str,
    ) -> Result<(SubmissionRow, &'r Destination), TransferError> {
        let (submission, destination) = self.sender_submission(registry, client, submission_id).await?;
        if submission.status != SubmissionStatus::Announced {
            return Err(TransferError::InvalidTransition("the submission was already submitted".into()));
        }
        Ok((submission, destination))
    }
}

pub(super) fn payment_used() -> TransferError {
    TransferError::PaymentUsed("the payment already serves another submission".into())
}

/// The amount as a decimal string with two places, e.g. `12.50`.
fn two_decimals(amount: Decimal) -> String {
    let mut amount = amount;
    amount.rescale(2);
    amount.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_written_with_two_decimals() {
        assert_eq!(two_decimals(Decimal::new(125, 1)), "12.50");
        assert_eq!(two_decimals(Decimal::new(12, 0)), "12.00");
        assert_eq!(two_decimals(Decimal::new(1999, 2)), "19.99");
    }

    #[test]
    fn the_login_time_is_auth_time_else_the_id_tokens_iat() {
        let mut login =
            LoginFacts { sub: "s".into(), acr: "a".into(), idp: "i".into(), auth_time: Some(100), issued_at: 160 };
        assert_eq!(login.login_at(), 100);
        login.auth_time = None;
        assert_eq!(login.login_at(), 160);
    }
}

//! The steps every call of the payment API shares: is the caller allowed to act for this
//! originator and authority, does the payment exist there, the `Idempotency-Key`, and errors that
//! hide internals from the answer while the log keeps them.

use serde_json::Value;

use super::code::FunctionalCode;
use super::idempotency::{Claim, Idempotency, IdempotencyError};
use super::parse_path_id;
use super::service::Answer;
use crate::registry::{Client, Registry};
use crate::store::payments::PaymentRow;
use crate::store::Database;

/// Whether `client` may act for (originator, endpoint): its own originatorId and a listed authority.
pub(crate) fn authorise(registry: &Registry, client: &Client, originator: &str, endpoint: &str) -> Result<(), Answer> {
    for (name, value) in [("originatorId", originator), ("endPointId", endpoint)] {
        parse_path_id(name, value).map_err(|f| Answer::failure(&f))?;
    }
    if registry.tenant(endpoint).is_none() || registry.client_by_originator(originator).is_none() {
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

/// The payment, if it exists under this originator and endpoint; else the 404 a GET answers.
pub(crate) async fn find_payment(
    db: &Database,
    originator: &str,
    endpoint: &str,
    transaction_id: &str,
) -> Result<PaymentRow, Answer> {
    match db.payment(transaction_id).await {
        Ok(Some(row)) if row.originator_id == originator && row.endpoint_id == endpoint => Ok(row),
        Ok(_) => Err(Answer::not_found()),
        Err(e) => Err(internal(&e)),
    }
}

/// The request's `Idempotency-Key`, and whether `work` stores its own 201 under it (in the same
/// transaction as what it creates, so a crash cannot leave one without the other).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Keyed<'a> {
    pub key: Option<&'a str>,
    pub created_stores_answer: bool,
}

/// Runs `work` under the request's `Idempotency-Key` (SECURITY.md #17), when it has one: the same
/// key and request get the stored first answer; another request under the key is refused; a
/// second request while the first runs gets 409. A 5xx answer releases the key, so `work` must
/// answer 5xx only when it changed nothing.
pub(crate) async fn idempotent(
    idempotency: &Idempotency,
    client_id: &str,
    keyed: Keyed<'_>,
    path: &str,
    body: &[u8],
    work: impl std::future::Future<Output = Answer>,
) -> Answer {
    let Some(key) = keyed.key else {
        return work.await;
    };
    let hash = Idempotency::request_hash("POST", path, body);
    match idempotency.claim(client_id, key, &hash).await {
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
            return Answer::problem_with_status(
                FunctionalCode::Unspecified,
                409,
                "A request with this Idempotency-Key is still running.",
            )
        }
        Err(IdempotencyError::InvalidKey) => {
            return Answer::problem(
                FunctionalCode::ValidationError,
                "The Idempotency-Key must be 1 to 255 visible ASCII characters.",
            )
        }
        Err(IdempotencyError::Storage(e)) => return internal(&e),
    }
    let answer = work.await;
    let stored = if answer.status >= 500 {
        // Nothing was changed: the client may try again with the same key.
        idempotency.release(client_id, key).await
    } else if answer.status == 201 && keyed.created_stores_answer {
        // `work` stored its 201 under the key in the transaction that created the thing.
        Ok(())
    } else {
        idempotency.complete(client_id, key, answer.status, &answer.body.to_string()).await
    };
    if let Err(e) = stored {
        tracing::error!(error = %e, "could not settle an Idempotency-Key");
    }
    answer
}

pub(crate) fn internal(cause: &dyn std::fmt::Display) -> Answer {
    tracing::error!(error = %cause, "payment request failed");
    Answer::problem_with_status(
        FunctionalCode::Unspecified,
        500,
        "The request could not be completed; quote the x-request-id.",
    )
}

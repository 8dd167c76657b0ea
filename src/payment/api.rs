//! The steps every call of the payment API shares: is the caller allowed to act for this
//! originator and authority, does the payment exist there, and the `Idempotency-Key`.

use super::answer::{AnswerRenderer, Created, Reply};
use super::code::{ErrorKind, FunctionalCode, PaymentError};
use super::idempotency::{Claim, Idempotency, IdempotencyError};
use super::parse_path_id;
use crate::registry::{Client, Registry};
use crate::store::payments::PaymentRow;
use crate::store::Database;

/// Whether `client` may act for (originator, endpoint): its own originatorId and a listed authority.
pub(crate) fn authorise(
    registry: &Registry,
    client: &Client,
    originator: &str,
    endpoint: &str,
) -> Result<(), PaymentError> {
    for (name, value) in [("originatorId", originator), ("endPointId", endpoint)] {
        parse_path_id(name, value)?;
    }
    if registry.tenant(endpoint).is_none() || registry.client_by_originator(originator).is_none() {
        return Err(PaymentError::rejected(
            FunctionalCode::NoValidOriginatorOrEndpoint,
            "Unknown originatorId or endPointId.",
        ));
    }
    let own = client.originator_id.as_ref().is_some_and(|id| id.as_str() == originator);
    if !own || !client.may_act_for(endpoint) {
        return Err(PaymentError::rejected(
            FunctionalCode::Forbidden,
            "This client may not act for this originatorId and endPointId.",
        ));
    }
    Ok(())
}

/// The payment, if it exists under this originator and endpoint.
pub(crate) async fn find_payment(
    db: &Database,
    originator: &str,
    endpoint: &str,
    transaction_id: &str,
) -> Result<PaymentRow, PaymentError> {
    match db.payment(transaction_id).await {
        Ok(Some(row)) if row.originator_id == originator && row.endpoint_id == endpoint => Ok(row),
        Ok(_) => Err(PaymentError::not_found()),
        Err(e) => Err(PaymentError::from(e)),
    }
}

/// The request's `Idempotency-Key`, and whether `work` stores its own created answer under it (in
/// the same transaction as what it creates, so a crash cannot leave one without the other).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Keyed<'a> {
    pub key: Option<&'a str>,
    pub created_stores_answer: bool,
}

/// Runs `work` under the request's `Idempotency-Key` (SECURITY.md #17), when it has one: the same
/// key and request get the stored first answer; another request under the key is refused; a
/// second request while the first runs is refused as in progress. A failure that leaves a retry
/// open ([`PaymentError::leaves_retry_open`]) releases the key, so `work` may fail that way only
/// when it changed nothing; any other outcome is stored as `answers` renders it.
pub(crate) async fn idempotent(
    idempotency: &Idempotency,
    answers: &dyn AnswerRenderer,
    client_id: &str,
    keyed: Keyed<'_>,
    path: &str,
    body: &[u8],
    work: impl std::future::Future<Output = Created>,
) -> Reply {
    let Some(key) = keyed.key else {
        return Reply::Fresh(work.await);
    };
    let hash = Idempotency::request_hash("POST", path, body);
    let refused = |error: PaymentError| Reply::Fresh(Err(error));
    let claimed_at = idempotency.now_millis();
    match idempotency.claim_at(client_id, key, &hash, claimed_at).await {
        Ok(Claim::Proceed) => {}
        Ok(Claim::Replay(answer)) => return Reply::Replayed(answer),
        Ok(Claim::Conflict) => {
            return refused(PaymentError::rejected(
                FunctionalCode::ValidationError,
                "This Idempotency-Key was used for a different request.",
            ))
        }
        Ok(Claim::InProgress) => {
            return refused(PaymentError::new(
                ErrorKind::InProgress,
                FunctionalCode::Unspecified,
                "A request with this Idempotency-Key is still running.",
            ))
        }
        Err(IdempotencyError::InvalidKey) => {
            return refused(PaymentError::rejected(
                FunctionalCode::ValidationError,
                "The Idempotency-Key must be 1 to 255 visible ASCII characters.",
            ))
        }
        // Wrong master key or a damaged row: not the client's fault, and nothing to retry into.
        Err(e @ IdempotencyError::Sealed(_)) => return refused(PaymentError::internal(&e)),
        Err(IdempotencyError::Storage(e)) => {
            // The claim may have been stored with only its acknowledgement lost.
            if e.is_unavailable() {
                idempotency.release_when_back(client_id, key, claimed_at);
            }
            return refused(PaymentError::from(e));
        }
    }
    let outcome = work.await;
    let stored = match &outcome {
        // Nothing was changed: the client may try again with the same key (a create whose commit
        // went through before the database went away has its answer stored, which a release keeps).
        Err(error) if error.leaves_retry_open() => match idempotency.release(client_id, key).await {
            Err(e) if e.is_unavailable() => {
                idempotency.release_when_back(client_id, key, claimed_at);
                Ok(())
            }
            released => released,
        },
        // `work` stored its answer under the key in the transaction that created the thing.
        Ok(_) if keyed.created_stores_answer => Ok(()),
        // The answer is stored with the payment once the database is back; the key waits for it.
        Err(error) if error.kind == ErrorKind::Recording => Ok(()),
        _ => idempotency.complete(client_id, key, &answers.render_create(&outcome)).await,
    };
    if let Err(e) = stored {
        tracing::error!(error = %e, "could not settle an Idempotency-Key");
    }
    Reply::Fresh(outcome)
}

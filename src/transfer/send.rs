//! The sender's side: announce a submission to a destination of one of the client's tenants, upload
//! each announced attachment (streamed into chunks, scanned as a JWE on the way), submit the
//! encrypted metadata and data, and read the case's event log.

use std::collections::BTreeSet;

use futures_util::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::callbacks;
use super::events::{self, EVENT_CREATE, EVENT_SUBMIT};
use super::evidence::payment_used;
use super::jwe::{check_compact, JweScanner};
use super::sender_callback::{self, CallbackBody};
use super::{parse_uuid, TransferError, TransferService, CHUNK_BYTES, MAX_PAGE};
use crate::model::SubmissionStatus;
use crate::registry::{Client, Destination, DestinationStatus, Registry};
use crate::store::transfer::{AttachmentRow, EventRow, StatusMessages, SubmissionRow};

/// `POST /v1/submissions` as sent.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AnnounceBody {
    destination_id: String,
    #[serde(default)]
    announced_attachments: Vec<String>,
    service_type: ServiceType,
    case_id: Option<String>,
    /// pforte's extension: the payment of the fee this submission is for.
    payment_transaction_id: Option<String>,
    /// The sender's own callback for new events (`sender_callback`).
    callback: Option<CallbackBody>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceType {
    pub name: String,
    pub identifier: String,
}

/// An announce request, parsed and its ids checked.
#[derive(Debug)]
pub struct Announce {
    destination_id: String,
    attachments: Vec<String>,
    service: ServiceType,
    case_id: Option<String>,
    payment: Option<String>,
    callback: Option<CallbackBody>,
}

impl Announce {
    pub fn parse(body: &[u8]) -> Result<Announce, TransferError> {
        let body: AnnounceBody = serde_json::from_slice(body)
            .map_err(|e| TransferError::Invalid(format!("the announcement is not valid: {e}")))?;
        let destination_id = parse_uuid("destinationId", &body.destination_id)?;
        let mut seen = BTreeSet::new();
        let mut attachments = Vec::new();
        for id in &body.announced_attachments {
            let id = parse_uuid("each announced attachment id", id)?;
            if !seen.insert(id.clone()) {
                return Err(TransferError::Invalid(format!("attachment `{id}` is announced twice")));
            }
            attachments.push(id);
        }
        if body.service_type.name.trim().is_empty() {
            return Err(TransferError::Invalid("serviceType.name must not be empty".into()));
        }
        let case_id = body.case_id.as_deref().map(|id| parse_uuid("caseId", id)).transpose()?;
        let payment = body.payment_transaction_id;
        let callback = body.callback;
        Ok(Announce { destination_id, attachments, service: body.service_type, case_id, payment, callback })
    }
}

/// The answer to an announcement.
#[derive(Debug, Clone)]
pub struct Announced {
    pub destination_id: String,
    pub submission_id: String,
    pub case_id: String,
}

/// `PUT /v1/submissions/{id}` as sent.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Submit {
    encrypted_metadata: String,
    encrypted_data: Option<String>,
}

impl Submit {
    pub fn parse(body: &[u8]) -> Result<Submit, TransferError> {
        serde_json::from_slice(body).map_err(|e| TransferError::Invalid(format!("the submit body is not valid: {e}")))
    }
}

/// One page of a case's event log: the SETs in order.
#[derive(Debug, Clone)]
pub struct EventLog {
    pub total: i64,
    pub offset: i64,
    pub tokens: Vec<String>,
}

impl TransferService {
    /// Announces a submission: the destination must be one of `client`'s tenants', active, and offer
    /// the service.
    pub async fn announce(
        &self,
        registry: &Registry,
        client: &Client,
        request: Announce,
    ) -> Result<Announced, TransferError> {
        let callback = request.callback.map(|callback| callback.check(self.callback_reach)).transpose()?;
        let destination = self.destination_for_sender(registry, client, &request.destination_id)?;
        if destination.status != DestinationStatus::Active {
            return Err(TransferError::DestinationRefuses("the destination takes no submissions now".into()));
        }
        if !destination.offers_service(&request.service.identifier) {
            return Err(TransferError::DestinationRefuses(format!(
                "the destination does not receive the service `{}`",
                request.service.identifier
            )));
        }
        if request.attachments.len() > self.limits.max_attachments {
            return Err(TransferError::TooLarge(format!(
                "at most {} attachments may be announced",
                self.limits.max_attachments
            )));
        }
        // A payment named is checked even where no fee is required: it is bound to this submission.
        let fee_required = destination.requires_fee(&request.service.identifier);
        let payment = match request.payment {
            None if fee_required => return Err(TransferError::PaymentMissing),
            None => None,
            Some(id) => Some(self.paid_payment(client, destination, &id).await?.transaction_id),
        };
        if let Some(id) = &payment {
            if self.db.transfer_submission_of_payment(id).await?.is_some() {
                return Err(payment_used());
            }
        }
        let case_id = match request.case_id {
            Some(case_id) => self.follow_up_case(client, destination, case_id).await?,
            None => uuid::Uuid::new_v4().to_string(),
        };
        let now = self.clock.now_millis();
        let submission_id = uuid::Uuid::new_v4().to_string();
        let sealed_secret = callback
            .as_ref()
            .map(|callback| sender_callback::seal(&self.keys.master(), &submission_id, &callback.secret))
            .transpose()?;
        let row = SubmissionRow {
            submission_id,
            case_id,
            destination_id: destination.id.as_str().to_owned(),
            tenant_id: destination.tenant.as_str().to_owned(),
            sender_client: client.id.as_str().to_owned(),
            service_name: request.service.name,
            service_identifier: request.service.identifier,
            status: SubmissionStatus::Announced,
            encrypted_metadata: None,
            encrypted_data: None,
            created_at: now,
            submitted_at: None,
            payment_transaction_id: payment,
            sender_callback_url: callback.map(|callback| callback.url.as_str().to_owned()),
            sender_callback_secret: sealed_secret,
        };
        let ids = (row.submission_id.as_str(), row.case_id.as_str());
        let event = events::pforte_event(&self.keys, &self.issuer, now, ids, EVENT_CREATE, json!({})).await?;
        match self.db.insert_transfer_submission(&row, &request.attachments, &event).await {
            Ok(()) => {}
            // Another announce with this payment committed first (the unique index decides).
            Err(e) if e.is_unique_violation() && row.payment_transaction_id.is_some() => return Err(payment_used()),
            Err(e) => return Err(e.into()),
        }
        Ok(Announced { destination_id: row.destination_id, submission_id: row.submission_id, case_id: row.case_id })
    }

    /// Stores an attachment's JWE as `body` streams in, 1 MiB per row, and switches the attachment to
    /// it once it is complete and a valid JWE to the destination. A refused upload leaves nothing.
    pub async fn upload<S, B, E>(
        &self,
        registry: &Registry,
        client: &Client,
        (submission_id, attachment_id): (&str, &str),
        declared_length: Option<u64>,
        body: S,
    ) -> Result<(), TransferError>
    where
        S: Stream<Item = Result<B, E>> + Unpin,
        B: AsRef<[u8]>,
        E: std::fmt::Display,
    {
        let (submission, destination) = self.sender_submission(registry, client, submission_id).await?;
        if submission.status != SubmissionStatus::Announced {
            return Err(TransferError::InvalidTransition("the submission was already submitted".into()));
        }
        let attachments = self.db.transfer_attachments(submission_id).await?;
        if !attachments.iter().any(|a| a.attachment_id == attachment_id) {
            return Err(TransferError::NotAnnounced(attachment_id.to_owned()));
        }
        let max = self.limits.max_attachment_bytes;
        let too_large = || TransferError::TooLarge(format!("an attachment may have at most {max} bytes"));
        if declared_length.is_some_and(|length| length > max) {
            return Err(too_large());
        }
        let upload_id = uuid::Uuid::new_v4().to_string();
        self.db.start_transfer_upload(&upload_id, submission_id, self.clock.now_millis()).await?;
        let stored = self.store_chunks(&upload_id, body, max).await;
        let outcome = match stored {
            Ok((size, scanner)) => match scanner.finish(|kid| destination.accepts_encryption_kid(kid)) {
                Ok(facts) => {
                    let row = AttachmentRow {
                        attachment_id: attachment_id.to_owned(),
                        upload_id: Some(upload_id.clone()),
                        size_bytes: Some(i64::try_from(size).unwrap_or(i64::MAX)),
                        auth_tag: Some(facts.tag),
                    };
                    match self.db.complete_transfer_upload(submission_id, &row, self.clock.now_millis()).await {
                        Ok(true) => return Ok(()),
                        Ok(false) => {
                            Err(TransferError::InvalidTransition("the submission was submitted meanwhile".into()))
                        }
                        Err(e) => Err(e.into()),
                    }
                }
                Err(problem) => Err(problem.into()),
            },
            Err(StoreFailure::TooLarge) => Err(too_large()),
            Err(StoreFailure::Other(e)) => Err(e),
        };
        // The chunks of a refused upload go; should that fail, they hold only ciphertext no row names.
        if let Err(e) = self.db.delete_transfer_upload(&upload_id).await {
            tracing::warn!(error = %e, "could not remove the chunks of a refused attachment upload");
        }
        outcome
    }

    async fn store_chunks<S, B, E>(
        &self,
        upload_id: &str,
        mut body: S,
        max: u64,
    ) -> Result<(u64, JweScanner), StoreFailure>
    where
        S: Stream<Item = Result<B, E>> + Unpin,
        B: AsRef<[u8]>,
        E: std::fmt::Display,
    {
        let mut scanner = JweScanner::default();
        let mut buffer: Vec<u8> = Vec::with_capacity(CHUNK_BYTES);
        let (mut size, mut seq) = (0u64, 0i64);
        while let Some(piece) = body.next().await {
            let piece = piece.map_err(|e| StoreFailure::Other(TransferError::BodyBroken(e.to_string())))?;
            let mut bytes = piece.as_ref();
            size += bytes.len() as u64;
            if size > max {
                return Err(StoreFailure::TooLarge);
            }
            scanner.feed(bytes);
            while !bytes.is_empty() {
                let take = bytes.len().min(CHUNK_BYTES - buffer.len());
                buffer.extend_from_slice(&bytes[..take]);
                bytes = &bytes[take..];
                if buffer.len() == CHUNK_BYTES {
                    self.db
                        .write_transfer_chunk(upload_id, seq, &buffer)
                        .await
                        .map_err(|e| StoreFailure::Other(e.into()))?;
                    buffer.clear();
                    seq += 1;
                }
            }
        }
        if !buffer.is_empty() {
            self.db.write_transfer_chunk(upload_id, seq, &buffer).await.map_err(|e| StoreFailure::Other(e.into()))?;
        }
        Ok((size, scanner))
    }

    /// Completes a submission: every announced attachment uploaded, metadata (and data) valid JWEs to
    /// the destination; records the authentication tags in the `submit-submission` event.
    pub async fn submit(
        &self,
        registry: &Registry,
        client: &Client,
        submission_id: &str,
        request: Submit,
    ) -> Result<(), TransferError> {
        let (submission, destination) = self.sender_submission(registry, client, submission_id).await?;
        if submission.status != SubmissionStatus::Announced {
            return Err(TransferError::InvalidTransition("the submission was already submitted".into()));
        }
        let size = request.encrypted_metadata.len() + request.encrypted_data.as_ref().map_or(0, String::len);
        if size as u64 > self.limits.max_submit_bytes {
            let max = self.limits.max_submit_bytes;
            return Err(TransferError::TooLarge(format!("metadata and data may have at most {max} bytes together")));
        }
        // The payment again: a refund since the announce means the fee is no longer paid.
        match &submission.payment_transaction_id {
            Some(id) => {
                self.paid_payment(client, destination, id).await?;
            }
            None if destination.requires_fee(&submission.service_identifier) => {
                return Err(TransferError::PaymentMissing)
            }
            None => {}
        }
        let kid_ok = |kid: &str| destination.accepts_encryption_kid(kid);
        let metadata = check_compact(&request.encrypted_metadata, kid_ok)?;
        let data = request.encrypted_data.as_deref().map(|data| check_compact(data, kid_ok)).transpose()?;
        let attachments = self.db.transfer_attachments(submission_id).await?;
        let missing: Vec<String> =
            attachments.iter().filter(|a| a.upload_id.is_none()).map(|a| a.attachment_id.clone()).collect();
        if !missing.is_empty() {
            return Err(TransferError::AttachmentsMissing(missing));
        }
        let mut tags = Map::new();
        tags.insert("metadata".into(), json!(metadata.tag));
        if let Some(data) = &data {
            tags.insert("data".into(), json!(data.tag));
        }
        let attachment_tags: Map<String, Value> =
            attachments.iter().map(|a| (a.attachment_id.clone(), json!(a.auth_tag))).collect();
        tags.insert("attachments".into(), Value::Object(attachment_tags));
        let now = self.clock.now_millis();
        let ids = (submission.submission_id.as_str(), submission.case_id.as_str());
        let payload = json!({ "authenticationTags": tags });
        let event = events::pforte_event(&self.keys, &self.issuer, now, ids, EVENT_SUBMIT, payload).await?;
        let content = Some((request.encrypted_metadata.as_str(), request.encrypted_data.as_deref()));
        let (from, to) = (SubmissionStatus::Announced, SubmissionStatus::Submitted);
        let messages = StatusMessages {
            callback: destination.callback.as_ref().map(|_| callbacks::new_submission(&submission, now)),
            sender_callback: sender_callback::new_events(&submission, now),
            notification: callbacks::sender_notification(client, &submission, to, self.clock.now(), now),
        };
        if !self.db.change_transfer_status(submission_id, from, to, content, &event, &messages).await? {
            return Err(TransferError::InvalidTransition("the submission was submitted meanwhile".into()));
        }
        Ok(())
    }

    /// A case's event log, for its sender or its destination's subscriber.
    pub async fn events(
        &self,
        registry: &Registry,
        client: &Client,
        case_id: &str,
        offset: i64,
        limit: i64,
    ) -> Result<EventLog, TransferError> {
        let case_id = parse_uuid("caseId", case_id)?;
        if offset < 0 || !(1..=MAX_PAGE).contains(&limit) {
            return Err(TransferError::Invalid(format!("offset must be 0 or more, limit 1 to {MAX_PAGE}")));
        }
        let submission = self
            .db
            .transfer_submission_of_case(&case_id)
            .await?
            .ok_or_else(|| TransferError::NotFound("no case with this id".into()))?;
        let subscriber =
            registry.destination(&submission.destination_id).is_some_and(|d| d.subscriber_client == client.id);
        if submission.sender_client != client.id.as_str() && !subscriber {
            return Err(TransferError::Forbidden(
                "this case is neither this client's submission nor its destination's".into(),
            ));
        }
        let (total, rows) = self.db.transfer_events(&case_id, offset, limit).await?;
        Ok(EventLog { total, offset, tokens: rows.into_iter().map(|row: EventRow| row.token).collect() })
    }

    /// The case a follow-up submission joins: one this client opened, at this destination. A case of
    /// another client and one that does not exist get the same 403, so a sender learns nothing about
    /// other senders' cases; a new case always gets an id pforte chose.
    async fn follow_up_case(
        &self,
        client: &Client,
        destination: &Destination,
        case_id: String,
    ) -> Result<String, TransferError> {
        let first = self.db.transfer_submission_of_case(&case_id).await?;
        let Some(first) = first.filter(|first| first.sender_client == client.id.as_str()) else {
            return Err(TransferError::Forbidden(
                "caseId is no case of this client; leave it out to open a new case".into(),
            ));
        };
        if first.destination_id != destination.id.as_str() {
            return Err(TransferError::DestinationRefuses(
                "a follow-up submission must go to the case's destination".into(),
            ));
        }
        Ok(case_id)
    }

    /// A destination the client may send to: registered, and of one of the client's tenants.
    fn destination_for_sender<'r>(
        &self,
        registry: &'r Registry,
        client: &Client,
        destination_id: &str,
    ) -> Result<&'r Destination, TransferError> {
        let destination = registry
            .destination(destination_id)
            .ok_or_else(|| TransferError::NotFound("no destination with this id".into()))?;
        if !client.may_act_for(destination.tenant.as_str()) {
            return Err(TransferError::Forbidden("this client may not send to this destination's authority".into()));
        }
        Ok(destination)
    }

    /// A submission this client announced, with its destination.
    pub(super) async fn sender_submission<'r>(
        &self,
        registry: &'r Registry,
        client: &Client,
        submission_id: &str,
    ) -> Result<(SubmissionRow, &'r Destination), TransferError> {
        let submission_id = parse_uuid("submissionId", submission_id)?;
        let submission = self
            .db
            .transfer_submission(&submission_id)
            .await?
            .ok_or_else(|| TransferError::NotFound("no submission with this id".into()))?;
        if submission.sender_client != client.id.as_str() {
            return Err(TransferError::Forbidden("this submission was announced by another client".into()));
        }
        let destination = self.destination_for_sender(registry, client, &submission.destination_id)?;
        Ok((submission, destination))
    }
}

enum StoreFailure {
    TooLarge,
    Other(TransferError),
}

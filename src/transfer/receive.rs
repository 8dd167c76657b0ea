//! The subscriber's side: list its destination's submitted submissions, fetch one, download its
//! attachments (streamed back chunk by chunk), and post its signed accept or reject SET.

use futures_util::stream::{self, Stream};

use super::events::{self, Decision};
use super::{callbacks, sender_callback};
use super::{parse_uuid, TransferError, TransferService, MAX_PAGE};
use crate::model::SubmissionStatus;
use crate::registry::{Client, Destination, Registry};
use crate::store::transfer::{EventRow, StatusMessages, SubmissionRow};
use crate::store::{Database, StorageError};

/// One page of the submissions waiting at a destination.
#[derive(Debug, Clone)]
pub struct SubmissionList {
    pub total: i64,
    pub offset: i64,
    pub submissions: Vec<SubmissionRow>,
}

/// An attachment's JWE as it streams out of the database.
pub struct AttachmentDownload<S> {
    pub size: u64,
    pub chunks: S,
}

impl TransferService {
    /// The submitted submissions of the subscriber's destination, oldest first.
    pub async fn list(
        &self,
        registry: &Registry,
        client: &Client,
        destination_id: &str,
        offset: i64,
        limit: i64,
    ) -> Result<SubmissionList, TransferError> {
        let destination_id = parse_uuid("destinationId", destination_id)?;
        if offset < 0 || !(1..=MAX_PAGE).contains(&limit) {
            return Err(TransferError::Invalid(format!("offset must be 0 or more, limit 1 to {MAX_PAGE}")));
        }
        subscribed(registry, client, &destination_id)?;
        let (total, submissions) = self
            .db
            .transfer_submissions_of_destination(&destination_id, SubmissionStatus::Submitted, offset, limit)
            .await?;
        Ok(SubmissionList { total, offset, submissions })
    }

    /// A submission with its encrypted metadata and data, and its attachment ids.
    pub async fn fetch(
        &self,
        registry: &Registry,
        client: &Client,
        submission_id: &str,
    ) -> Result<(SubmissionRow, Vec<String>), TransferError> {
        let (submission, _) = self.subscriber_submission(registry, client, submission_id).await?;
        content_kept(&submission)?;
        let attachments = self.db.transfer_attachments(&submission.submission_id).await?;
        Ok((submission, attachments.into_iter().map(|a| a.attachment_id).collect()))
    }

    /// An attachment's JWE, read back one chunk at a time as the stream is polled.
    pub async fn download(
        &self,
        registry: &Registry,
        client: &Client,
        (submission_id, attachment_id): (&str, &str),
    ) -> Result<AttachmentDownload<impl Stream<Item = Result<Vec<u8>, StorageError>> + Send + 'static>, TransferError>
    {
        let (submission, _) = self.subscriber_submission(registry, client, submission_id).await?;
        content_kept(&submission)?;
        let attachments = self.db.transfer_attachments(&submission.submission_id).await?;
        let attachment = attachments
            .into_iter()
            .find(|a| a.attachment_id == attachment_id)
            .ok_or_else(|| TransferError::NotFound("no such attachment in this submission".into()))?;
        let (Some(upload_id), Some(size)) = (attachment.upload_id, attachment.size_bytes) else {
            return Err(TransferError::NotFound("the attachment was not uploaded".into()));
        };
        let db: Database = self.db.clone();
        let chunks = stream::try_unfold((db, upload_id, 0i64), |(db, upload_id, seq)| async move {
            match db.transfer_chunk(&upload_id, seq).await? {
                Some(bytes) => Ok(Some((bytes, (db, upload_id, seq + 1)))),
                None => Ok(None),
            }
        });
        Ok(AttachmentDownload { size: u64::try_from(size).unwrap_or(0), chunks })
    }

    /// The subscriber's `accept-submission` or `reject-submission` SET for a case, verified against
    /// the destination's signing key, stored as posted; a submission not waiting for a decision is a
    /// conflict.
    pub async fn post_event(
        &self,
        registry: &Registry,
        client: &Client,
        case_id: &str,
        token: &str,
    ) -> Result<(), TransferError> {
        let case_id = parse_uuid("caseId", case_id)?;
        let first = self
            .db
            .transfer_submission_of_case(&case_id)
            .await?
            .ok_or_else(|| TransferError::NotFound("no case with this id".into()))?;
        subscribed(registry, client, &first.destination_id)?;
        // A case may hold follow-up submissions: the SET's `sub` says which one it decides. It is
        // read unverified only to pick the submission; the verification below checks it again.
        let named = match events::claimed_submission(token) {
            Some(id) if id != first.submission_id => self.db.transfer_submission(&id).await?,
            _ => None,
        };
        let submission = named.filter(|s| s.case_id == case_id).unwrap_or(first);
        let destination = subscribed(registry, client, &submission.destination_id)?;
        let now = self.clock.now_millis();
        let ids = (submission.submission_id.as_str(), case_id.as_str());
        let (decision, jti) = events::verify_subscriber_event(token, destination, ids, now / 1000)?;
        let (to, event_type) = match decision {
            Decision::Accept => (SubmissionStatus::Accepted, events::EVENT_ACCEPT),
            Decision::Reject => (SubmissionStatus::Rejected, events::EVENT_REJECT),
        };
        if submission.status != SubmissionStatus::Submitted {
            return Err(TransferError::InvalidTransition(format!(
                "the submission is {}, not submitted",
                submission.status.as_str()
            )));
        }
        let event = EventRow {
            event_id: jti,
            case_id: case_id.clone(),
            submission_id: submission.submission_id.clone(),
            event_type: event_type.to_owned(),
            token: token.to_owned(),
            created_at: now,
        };
        match self.decide(registry, &submission, to, &event).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(TransferError::InvalidTransition("the submission was decided meanwhile".into())),
            Err(e) if e.is_unique_violation() => {
                Err(TransferError::InvalidEvent("a SET with this jti was posted before".into()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Records a decision about a submission still submitted with its event, and tells the sending
    /// online service (`transfer.status_changed`); `false` when it was decided meanwhile. The
    /// subscriber's SET and pforte's automatic reject (`retention`) both take this path.
    pub(super) async fn decide(
        &self,
        registry: &Registry,
        submission: &SubmissionRow,
        to: SubmissionStatus,
        event: &EventRow,
    ) -> Result<bool, StorageError> {
        let now = event.created_at;
        let messages = StatusMessages {
            callback: None,
            sender_callback: sender_callback::new_events(submission, now),
            notification: registry
                .client(&submission.sender_client)
                .and_then(|sender| callbacks::sender_notification(sender, submission, to, self.clock.now(), now)),
        };
        self.db
            .change_transfer_status(&submission.submission_id, SubmissionStatus::Submitted, to, None, event, &messages)
            .await
    }

    async fn subscriber_submission<'r>(
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
            .filter(|s| s.status != SubmissionStatus::Announced)
            .ok_or_else(|| TransferError::NotFound("no submitted submission with this id".into()))?;
        let destination = subscribed(registry, client, &submission.destination_id)?;
        Ok((submission, destination))
    }
}

/// The destination `client` subscribes to, or why not.
fn subscribed<'r>(
    registry: &'r Registry,
    client: &Client,
    destination_id: &str,
) -> Result<&'r Destination, TransferError> {
    let destination = registry
        .destination(destination_id)
        .ok_or_else(|| TransferError::NotFound("no destination with this id".into()))?;
    if destination.subscriber_client != client.id {
        return Err(TransferError::Forbidden("this client is not the destination's subscriber".into()));
    }
    Ok(destination)
}

/// A submission past `announced` always has its encrypted metadata, until the retention worker
/// deleted its content (`retention`): then fetching it is `ContentDeleted` (410), not 404.
fn content_kept(submission: &SubmissionRow) -> Result<(), TransferError> {
    if submission.encrypted_metadata.is_none() {
        return Err(TransferError::ContentDeleted(
            "the submission's content was deleted after its retention period; its event log remains".into(),
        ));
    }
    Ok(())
}

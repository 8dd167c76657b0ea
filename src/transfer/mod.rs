//! Datentransfer (issue 15): online applications delivered end-to-end encrypted to an authority's
//! Fachverfahren, compatible with FIT-Connect's Submission API v1. pforte is the delivery service: it
//! stores ciphertext only, checks what can be checked without the plaintext (`jwe.rs`), keeps the
//! event log as Security Event Tokens it signs with PS512 (`events.rs`), and lets a sender reach only
//! its tenants' destinations (`send.rs`) and a subscriber only its own destination (`receive.rs`),
//! and announces new submissions to the Fachverfahren by signed callback (`callbacks.rs`).
//! The destinations themselves are registry files (`registry::Destination`). No HTTP here.
//! Login and payment evidence for the encrypted metadata are signed here too (`evidence.rs`); a
//! sender may name its own callback for new events of its submission (`sender_callback.rs`).
//! SECURITY.md #39, #41, #42 and #43 say what this module holds to.

mod callbacks;
mod events;
mod evidence;
mod jwe;
mod receive;
mod retention;
mod send;
mod sender_callback;

use std::sync::Arc;

pub use callbacks::{callback_signature, CallbackWorker, CALLBACK_AUTHENTICATION, CALLBACK_TIMESTAMP};
pub use events::{EVENT_ACCEPT, EVENT_CREATE, EVENT_DELETE, EVENT_REJECT, EVENT_SUBMIT, EVENT_URI_BASE};
pub use evidence::{parse_body, AuthenticationRequest, LoginFacts, PaymentEvidence, PaymentRequest};
pub use jwe::{check_compact, JweFacts, JweProblem, JweScanner};
pub use receive::{AttachmentDownload, SubmissionList};
pub use retention::{RetentionRound, RetentionWorker, NOT_FETCHED_IN_TIME};
pub use send::{Announce, Announced, EventLog, ServiceType, Submit};

use crate::clock::SharedClock;
use crate::config::TransferSettings;
use crate::http_client::Reach;
use crate::keys::{KeyError, KeyService};
use crate::store::{Database, StorageError};

/// The size of one stored chunk of an attachment.
pub const CHUNK_BYTES: usize = 1024 * 1024;
/// FIT-Connect's page limit for event logs and submission lists.
pub const MAX_PAGE: i64 = 500;

/// Why a Datentransfer request was refused; the edge maps each to its status and stable code.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// The request's shape (JSON, ids) is wrong.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    /// The caller is authenticated but may not act on this destination or submission.
    #[error("{0}")]
    Forbidden(String),
    /// The destination exists but takes no submissions now, or not for this service.
    #[error("{0}")]
    DestinationRefuses(String),
    #[error("not a valid JWE: {0}")]
    NotAJwe(String),
    #[error("the JWE's kid `{0}` is no encryption key of this destination")]
    UnknownKey(String),
    #[error("attachment `{0}` was not announced for this submission")]
    NotAnnounced(String),
    #[error("announced attachments are missing: {}", .0.join(", "))]
    AttachmentsMissing(Vec<String>),
    #[error("{0}")]
    TooLarge(String),
    /// The submission is not in a status that allows this.
    #[error("{0}")]
    InvalidTransition(String),
    /// The submission's content was deleted after its retention period (`retention`).
    #[error("{0}")]
    ContentDeleted(String),
    /// A subscriber's SET that is not signed by the destination's key or says something else.
    #[error("{0}")]
    InvalidEvent(String),
    /// The request body could not be read to its end.
    #[error("the request body broke off: {0}")]
    BodyBroken(String),
    /// The destination's service requires a fee and no payment was named.
    #[error("this service requires a paid fee: name the payment as paymentTransactionId")]
    PaymentMissing,
    #[error("{0}")]
    PaymentNotPaid(String),
    #[error("{0}")]
    PaymentUsed(String),
    /// The ID token is not one pforte issued to the caller, or the login is too old.
    #[error("{0}")]
    InvalidIdToken(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Keys(#[from] KeyError),
}

impl From<JweProblem> for TransferError {
    fn from(problem: JweProblem) -> Self {
        match problem {
            JweProblem::NotAJwe(reason) => TransferError::NotAJwe(reason),
            JweProblem::UnknownKey(kid) => TransferError::UnknownKey(kid),
        }
    }
}

/// The Datentransfer service, built once by `app`.
#[derive(Clone)]
pub struct TransferService {
    db: Database,
    keys: KeyService,
    clock: SharedClock,
    limits: Arc<TransferSettings>,
    /// pforte's public URL: the `iss` of its SETs.
    issuer: String,
    /// Where a sender's own callback URL may point (`sender_callback`).
    callback_reach: Reach,
}

impl TransferService {
    pub fn new(db: Database, keys: KeyService, clock: SharedClock, limits: TransferSettings, issuer: &str) -> Self {
        let issuer = issuer.trim_end_matches('/').to_owned();
        TransferService { db, keys, clock, limits: Arc::new(limits), issuer, callback_reach: Reach::Public }
    }

    /// Lets senders' callback URLs point to loopback too (`dev.simulators`), as pforte's other
    /// outbound calls may.
    pub fn with_callback_reach(mut self, reach: Reach) -> Self {
        self.callback_reach = reach;
        self
    }

    pub fn limits(&self) -> &TransferSettings {
        &self.limits
    }
}

/// A UUID as FIT-Connect writes ids: lower case with hyphens.
pub(crate) fn parse_uuid(what: &str, text: &str) -> Result<String, TransferError> {
    match uuid::Uuid::parse_str(text) {
        Ok(uuid) if uuid.hyphenated().to_string() == text => Ok(text.to_owned()),
        _ => Err(TransferError::Invalid(format!("{what} must be a UUID in lower case with hyphens"))),
    }
}

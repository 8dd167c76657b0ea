//! The sender's own FIT-Connect callback: an announcement may carry `callback: {url, secret}`, and the
//! sender is then told of new events of its submission (submit, the subscriber's or pforte's accept or
//! reject, the deletion of the content) by a `new-events` message, signed and retried exactly as the
//! destination's `new-submissions` callbacks (`callbacks`). The URL follows the rule for every URL a
//! service chooses and pforte calls (https to a public host; loopback only with the development
//! simulators), the secret FIT-Connect's bounds. The secret is write-only: sealed under the master key
//! for this submission alone before it is stored, opened only to sign a message, never logged or
//! returned (SECURITY.md #43).

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;

use super::TransferError;
use crate::crypto::MasterKey;
use crate::http_client::Reach;
use crate::registry::HttpUrl;
use crate::store::transfer::SubmissionRow;
use crate::store::transfer_callbacks::CallbackRow;

const NEW_EVENTS: &str = "https://schema.fitko.de/fit-connect/submission-api/callbacks/new-events";
/// FIT-Connect's bounds on a callback secret, in characters.
const SECRET_CHARS: std::ops::RangeInclusive<usize> = 32..=512;

/// `callback` in the announcement, as sent. `SecretString` keeps the secret out of `Debug`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CallbackBody {
    url: String,
    secret: SecretString,
}

/// A sender's callback, checked.
#[derive(Debug)]
pub(super) struct SenderCallback {
    pub url: HttpUrl,
    pub secret: SecretString,
}

impl CallbackBody {
    /// Checks the URL against `reach` and the secret's length. The details name the rule, never the
    /// secret.
    pub(super) fn check(self, reach: Reach) -> Result<SenderCallback, TransferError> {
        let invalid = |reason: String| TransferError::Invalid(format!("callback.url {reason}"));
        let url = HttpUrl::parse(&self.url).map_err(invalid)?;
        reach.check_url(url.url()).map_err(|rule| invalid(format!("`{}` {rule}", url.as_str())))?;
        let length = self.secret.expose_secret().chars().count();
        if !SECRET_CHARS.contains(&length) {
            return Err(TransferError::Invalid(format!(
                "callback.secret must have {} to {} characters (it has {length})",
                SECRET_CHARS.start(),
                SECRET_CHARS.end()
            )));
        }
        Ok(SenderCallback { url, secret: self.secret })
    }
}

/// What a sealed secret belongs to: another submission's row cannot open it.
fn record_id(submission_id: &str) -> String {
    format!("transfer-sender-callback:{submission_id}")
}

pub(super) fn seal(master: &MasterKey, submission_id: &str, secret: &SecretString) -> Result<String, TransferError> {
    master.seal(&record_id(submission_id), secret.expose_secret().as_bytes()).map_err(|e| TransferError::Keys(e.into()))
}

/// The secret of a submission's callback, for signing one message.
pub(super) fn open(master: &MasterKey, submission_id: &str, sealed: &str) -> Result<SecretString, String> {
    let plain = master.open(&record_id(submission_id), sealed).map_err(|e| e.to_string())?;
    let text = String::from_utf8(plain).map_err(|_| "the sealed callback secret is not text".to_owned())?;
    Ok(SecretString::from(text))
}

/// The `new-events` message to the submission's sender, when its announcement gave a callback.
pub(super) fn new_events(submission: &SubmissionRow, now: i64) -> Option<CallbackRow> {
    submission.sender_callback_url.as_ref()?;
    let payload = json!({
        "type": NEW_EVENTS,
        "submissions": [{
            "destinationId": submission.destination_id,
            "submissionId": submission.submission_id,
            "caseId": submission.case_id,
        }],
    });
    Some(CallbackRow {
        id: uuid::Uuid::new_v4().to_string(),
        destination_id: submission.destination_id.clone(),
        payload: payload.to_string(),
        created_at: now,
        attempts: 0,
        submission_id: Some(submission.submission_id.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(url: &str, secret: &str) -> CallbackBody {
        CallbackBody { url: url.to_owned(), secret: SecretString::from(secret.to_owned()) }
    }

    fn refusal(result: Result<SenderCallback, TransferError>) -> String {
        match result {
            Err(TransferError::Invalid(detail)) => detail,
            other => format!("not refused as invalid: {other:?}"),
        }
    }

    #[test]
    fn a_callback_needs_https_to_a_public_host_and_a_secret_of_32_to_512_characters() {
        let secret = "s".repeat(32);
        assert!(body("https://sender.example.org/cb", &secret).check(Reach::Public).is_ok());
        assert!(body("http://127.0.0.1:8080/cb", &secret).check(Reach::PublicAndLoopback).is_ok());
        for url in ["http://sender.example.org/cb", "http://127.0.0.1:8080/cb", "https://10.0.0.1/cb", "ftp://x.org"] {
            assert!(refusal(body(url, &secret).check(Reach::Public)).starts_with("callback.url "), "{url}");
        }
        for secret in ["s".repeat(31), "s".repeat(513)] {
            let detail = refusal(body("https://sender.example.org/cb", &secret).check(Reach::Public));
            assert!(detail.starts_with("callback.secret must have 32 to 512 characters"), "{detail}");
            assert!(!detail.contains(&secret));
        }
        assert!(body("https://sender.example.org/cb", &"s".repeat(512)).check(Reach::Public).is_ok());
    }

    #[test]
    fn a_sealed_secret_opens_only_for_its_submission() {
        let master = MasterKey::generate();
        let secret = SecretString::from("a-sender-callback-secret-of-32-chars!".to_owned());
        let sealed = seal(&master, "sub-1", &secret).unwrap_or_default();
        assert!(!sealed.contains("a-sender-callback-secret"));
        let opened = open(&master, "sub-1", &sealed).map(|s| s.expose_secret().to_owned());
        assert_eq!(opened.as_deref(), Ok("a-sender-callback-secret-of-32-chars!"));
        assert!(open(&master, "sub-2", &sealed).is_err());
    }
}

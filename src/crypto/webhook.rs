//! Standard Webhooks signatures (SECURITY.md #21), shared by the payment domain that signs and the
//! registry that checks secrets: the notification to an online service carries
//! `webhook-id`, `webhook-timestamp` and `webhook-signature: v1,<base64 HMAC-SHA256 of
//! "{id}.{timestamp}.{body}">`, so receivers can use any Standard Webhooks library to verify it. The
//! same check serves signed callbacks pforte receives.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

pub const ID_HEADER: &str = "webhook-id";
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
pub const SIGNATURE_HEADER: &str = "webhook-signature";
/// How far a signed timestamp may lie from now before the message is refused (replay window).
pub const DEFAULT_TOLERANCE_SECS: i64 = 300;
const PREFIX: &str = "whsec_";

/// A signing secret, written as `whsec_<base64>` (the prefix is optional when reading).
pub struct WebhookSecret(Vec<u8>);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret([redacted])")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("the webhook secret is not base64 of 24 to 64 bytes (optionally after `whsec_`)")]
    BadSecret,
    #[error("the webhook timestamp is missing or not a whole number of seconds")]
    BadTimestamp,
    #[error("the webhook timestamp is outside the accepted window")]
    Expired,
    #[error("no webhook signature matches")]
    NoMatch,
}

impl WebhookSecret {
    pub fn parse(written: &SecretString) -> Result<WebhookSecret, WebhookError> {
        let text = written.expose_secret();
        let encoded = text.strip_prefix(PREFIX).unwrap_or(text);
        let bytes = STANDARD.decode(encoded).map_err(|_| WebhookError::BadSecret)?;
        if !(24..=64).contains(&bytes.len()) {
            return Err(WebhookError::BadSecret);
        }
        Ok(WebhookSecret(bytes))
    }

    /// A new random secret in its written form, to hand to an online service once.
    pub fn generate() -> SecretString {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        SecretString::from(format!("{PREFIX}{}", STANDARD.encode(bytes)))
    }

    /// `v1,<signature>` for one message.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> Result<String, WebhookError> {
        Ok(format!("v1,{}", STANDARD.encode(self.mac(id, timestamp, body)?)))
    }

    /// Accepts the message if its timestamp is within `tolerance_secs` of `now` and any of the
    /// space-separated `v1,` signatures matches (compared in constant time).
    pub fn verify(
        &self,
        id: &str,
        timestamp: &str,
        signatures: &str,
        body: &[u8],
        now: i64,
        tolerance_secs: i64,
    ) -> Result<(), WebhookError> {
        let timestamp: i64 = timestamp.trim().parse().map_err(|_| WebhookError::BadTimestamp)?;
        if (now - timestamp).abs() > tolerance_secs {
            return Err(WebhookError::Expired);
        }
        let expected = self.mac(id, timestamp, body)?;
        let matches = signatures
            .split(' ')
            .filter_map(|candidate| candidate.strip_prefix("v1,"))
            .filter_map(|encoded| STANDARD.decode(encoded).ok())
            .any(|given| {
                given.len() == expected.len() && given.iter().zip(&expected).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
            });
        if matches {
            Ok(())
        } else {
            Err(WebhookError::NoMatch)
        }
    }

    fn mac(&self, id: &str, timestamp: i64, body: &[u8]) -> Result<Vec<u8>, WebhookError> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).map_err(|_| WebhookError::BadSecret)?;
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        Ok(mac.finalize().into_bytes().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The published Standard Webhooks test vector.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TIMESTAMP: i64 = 1_614_265_330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn secret() -> WebhookSecret {
        WebhookSecret::parse(&SecretString::from(SECRET.to_owned())).expect("valid secret")
    }

    #[test]
    fn signature_reproduces_the_published_test_vector() {
        assert_eq!(secret().sign(ID, TIMESTAMP, BODY), Ok(SIGNATURE.to_owned()));
    }

    #[test]
    fn verification_accepts_any_matching_signature_in_the_list() {
        let list = format!("v1,bm9wZQ== {SIGNATURE}");
        assert_eq!(secret().verify(ID, "1614265330", &list, BODY, TIMESTAMP + 10, DEFAULT_TOLERANCE_SECS), Ok(()));
    }

    #[test]
    fn a_changed_body_id_or_secret_is_refused() {
        let now = TIMESTAMP;
        let tolerance = DEFAULT_TOLERANCE_SECS;
        assert_eq!(secret().verify(ID, "1614265330", SIGNATURE, b"{}", now, tolerance), Err(WebhookError::NoMatch));
        assert_eq!(
            secret().verify("msg_other", "1614265330", SIGNATURE, BODY, now, tolerance),
            Err(WebhookError::NoMatch)
        );
        let other = WebhookSecret::parse(&WebhookSecret::generate()).expect("generated secret parses");
        assert_eq!(other.verify(ID, "1614265330", SIGNATURE, BODY, now, tolerance), Err(WebhookError::NoMatch));
    }

    #[test]
    fn stale_future_or_malformed_timestamps_are_refused() {
        let tolerance = DEFAULT_TOLERANCE_SECS;
        assert_eq!(
            secret().verify(ID, "1614265330", SIGNATURE, BODY, TIMESTAMP + 301, tolerance),
            Err(WebhookError::Expired)
        );
        assert_eq!(
            secret().verify(ID, "1614265330", SIGNATURE, BODY, TIMESTAMP - 301, tolerance),
            Err(WebhookError::Expired)
        );
        assert_eq!(secret().verify(ID, "soon", SIGNATURE, BODY, TIMESTAMP, tolerance), Err(WebhookError::BadTimestamp));
    }

    #[test]
    fn secrets_must_be_base64_of_24_to_64_bytes() {
        let parse = |s: &str| WebhookSecret::parse(&SecretString::from(s.to_owned())).map(|_| ());
        assert_eq!(parse("whsec_not base64!"), Err(WebhookError::BadSecret));
        assert_eq!(parse(&STANDARD.encode([1u8; 8])), Err(WebhookError::BadSecret));
        assert_eq!(parse(&STANDARD.encode([1u8; 32])), Ok(()), "the prefix is optional");
        assert!(format!("{:?}", secret()).contains("redacted"));
    }
}

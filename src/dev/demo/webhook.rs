//! Checking pforte's notifications as a receiver of Standard Webhooks (standardwebhooks.com) does:
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}.{body}">` with the
//! secret written `whsec_<base64>`, and a timestamp within five minutes of now. Written from that
//! specification, not from pforte's signing code.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

pub(super) const ID_HEADER: &str = "webhook-id";
pub(super) const TIMESTAMP_HEADER: &str = "webhook-timestamp";
pub(super) const SIGNATURE_HEADER: &str = "webhook-signature";
/// How far the signed timestamp may lie from now (the specification's recommendation).
const TOLERANCE_SECS: i64 = 300;

/// The key behind a written secret; `None` when it is not base64 (after an optional `whsec_`).
pub(super) fn key(secret: &SecretString) -> Option<Vec<u8>> {
    let text = secret.expose_secret();
    STANDARD.decode(text.strip_prefix("whsec_").unwrap_or(text)).ok().filter(|key| !key.is_empty())
}

/// Why a message was refused.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Refused {
    Timestamp,
    Signature,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refused::Timestamp => "the timestamp is missing or outside the accepted window",
            Refused::Signature => "no signature matches",
        })
    }
}

/// Accepts the message when its timestamp is recent and one of the space-separated `v1,` signatures
/// matches (compared in constant time).
pub(super) fn verify(
    key: &[u8],
    id: &str,
    timestamp: &str,
    signatures: &str,
    body: &[u8],
    now: i64,
) -> Result<(), Refused> {
    let sent: i64 = timestamp.trim().parse().map_err(|_| Refused::Timestamp)?;
    if (now - sent).abs() > TOLERANCE_SECS {
        return Err(Refused::Timestamp);
    }
    let matches = signatures
        .split(' ')
        .filter_map(|candidate| candidate.strip_prefix("v1,"))
        .filter_map(|encoded| STANDARD.decode(encoded).ok())
        .any(|given| mac(key, id, sent, body).is_some_and(|mac| mac.verify_slice(&given).is_ok()));
    if matches {
        Ok(())
    } else {
        Err(Refused::Signature)
    }
}

fn mac(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> Option<Hmac<Sha256>> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).ok()?;
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    Some(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signature(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
        format!("v1,{}", STANDARD.encode(mac(key, id, timestamp, body).unwrap().finalize().into_bytes()))
    }

    #[test]
    fn a_signed_recent_message_is_accepted_and_anything_else_refused() {
        let key = key(&SecretString::from("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")).unwrap();
        let good = signature(&key, "msg_1", 1000, b"{}");
        assert_eq!(verify(&key, "msg_1", "1000", &format!("v1,AAAA {good}"), b"{}", 1100), Ok(()));
        assert_eq!(verify(&key, "msg_1", "1000", &good, b"{ }", 1100), Err(Refused::Signature));
        assert_eq!(verify(&key, "msg_2", "1000", &good, b"{}", 1100), Err(Refused::Signature));
        assert_eq!(verify(&key, "msg_1", "1000", &good, b"{}", 1000 + 301), Err(Refused::Timestamp));
        assert_eq!(verify(&key, "msg_1", "soon", &good, b"{}", 1000), Err(Refused::Timestamp));
    }
}

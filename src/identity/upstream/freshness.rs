//! How recent the upstream login must be (OpenID Connect Core §3.1.2.1, SECURITY.md #9): what the
//! online service asked with `prompt=login` and `max_age` is forwarded to the provider, and the
//! `auth_time` of its ID token is then required and checked.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::validate::CLOCK_SKEW;
use super::{PendingUpstream, UpstreamError};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Freshness {
    /// `prompt=login`: a new login, whatever session the provider has.
    pub prompt_login: bool,
    /// Seconds.
    pub max_age: Option<u64>,
}

impl Freshness {
    fn asked(self) -> bool {
        self.prompt_login || self.max_age.is_some()
    }
}

/// With `prompt=login` or `max_age` asked for, the ID token must say when the person logged in
/// (`auth_time`), and that must be after this login was sent upstream (`prompt=login`) and no more
/// than `max_age` ago; both allow [`CLOCK_SKEW`].
pub(super) fn check(
    pending: &PendingUpstream,
    auth_time: Option<i64>,
    now: DateTime<Utc>,
) -> Result<(), UpstreamError> {
    let freshness = pending.freshness;
    if !freshness.asked() {
        return Ok(());
    }
    let auth_time = auth_time.ok_or(UpstreamError::NotFresh("the ID token carries no auth_time"))?;
    let skew = CLOCK_SKEW.num_seconds();
    if freshness.prompt_login && auth_time < pending.requested_at - skew {
        return Err(UpstreamError::NotFresh("prompt=login, but the login upstream is older than the request"));
    }
    if let Some(max_age) = freshness.max_age {
        let max_age = i64::try_from(max_age).unwrap_or(i64::MAX);
        if now.timestamp().saturating_sub(auth_time) > max_age.saturating_add(skew) {
            return Err(UpstreamError::NotFresh("the login upstream is older than max_age"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Level;

    fn pending(prompt_login: bool, max_age: Option<u64>, requested_at: i64) -> PendingUpstream {
        PendingUpstream {
            provider_id: "p".into(),
            state: "s".into(),
            nonce: "n".into(),
            pkce_verifier: "v".into(),
            expected_issuer: "https://op.example".into(),
            redirect_uri: "https://pforte.example/callback/p".into(),
            required_level: Level::Low,
            freshness: Freshness { prompt_login, max_age },
            requested_at,
            request_id: None,
        }
    }

    #[test]
    fn max_age_allows_the_clock_skew_and_no_more() {
        let now = DateTime::from_timestamp(1_000_000, 0).unwrap_or_default();
        let asked = pending(false, Some(60), 0);
        assert!(check(&asked, Some(1_000_000 - 90), now).is_ok(), "60 s + 30 s skew");
        assert!(check(&asked, Some(1_000_000 - 91), now).is_err());
        assert!(check(&asked, None, now).is_err(), "auth_time is required");
        assert!(check(&pending(false, Some(u64::MAX), 0), Some(0), now).is_ok(), "no overflow");
        assert!(check(&pending(false, None, 0), None, now).is_ok(), "nothing asked, nothing required");
    }

    #[test]
    fn prompt_login_needs_a_login_after_the_request() {
        let now = DateTime::from_timestamp(1_000_000, 0).unwrap_or_default();
        let asked = pending(true, None, 999_900);
        assert!(check(&asked, Some(999_950), now).is_ok());
        assert!(check(&asked, Some(999_870), now).is_ok(), "within the skew");
        assert!(check(&asked, Some(999_869), now).is_err());
    }
}

//! Settings of the rate limits in front of the endpoints that check credentials (SECURITY.md #32).

use serde::Deserialize;

use super::Problems;

/// Per client address, each group of endpoints has its own budget: `requests` at once, refilled
/// evenly over `period_secs` (one request every `period_secs / requests`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSettings {
    /// `/token`, `/par`, `/revoke`: client authentication.
    #[serde(default = "default_oauth")]
    pub oauth: Quota,
    /// Everything under `/finance`: finance tokens, the staff sign-in and the staff pages.
    #[serde(default = "default_finance")]
    pub finance: Quota,
    /// `/callbacks/payment/{provider}`: signatures of payment providers.
    #[serde(default = "default_callbacks")]
    pub callbacks: Quota,
    /// `/token`, `/par`, `/revoke` per authenticated client, counted only once its credentials were
    /// accepted, so nobody else can spend it by naming the client.
    #[serde(default = "default_oauth_client")]
    pub oauth_client: Quota,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    pub requests: u32,
    pub period_secs: u64,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        RateLimitSettings {
            oauth: default_oauth(),
            finance: default_finance(),
            callbacks: default_callbacks(),
            oauth_client: default_oauth_client(),
        }
    }
}

/// Online services ask for a token per login; two a second per address is far above that.
fn default_oauth() -> Quota {
    Quota { requests: 120, period_secs: 60 }
}

/// People at a desk (several of them behind one authority's address) and scripts exporting bookings.
fn default_finance() -> Quota {
    Quota { requests: 60, period_secs: 60 }
}

/// A provider reports every status change of every payment from a few addresses.
fn default_callbacks() -> Quota {
    Quota { requests: 600, period_secs: 60 }
}

/// One online service, whichever addresses its servers use: ten token requests a second on
/// average, bursts of 600, far above a busy service's logins and below what could hurt pforte.
fn default_oauth_client() -> Quota {
    Quota { requests: 600, period_secs: 60 }
}

/// The longest period: a day (a longer one would lock out an address that erred for days).
const MAX_PERIOD_SECS: u64 = 86_400;

impl RateLimitSettings {
    pub(super) fn validate(&self, problems: &mut Problems) {
        for (key, quota) in [
            ("rate_limit.oauth", self.oauth),
            ("rate_limit.finance", self.finance),
            ("rate_limit.callbacks", self.callbacks),
            ("rate_limit.oauth_client", self.oauth_client),
        ] {
            if quota.requests == 0 {
                problems.push("settings", format!("{key}.requests"), "must be greater than zero");
            }
            if quota.period_secs == 0 || quota.period_secs > MAX_PERIOD_SECS {
                problems.push("settings", format!("{key}.period_secs"), "must be between 1 and 86400");
            }
        }
    }
}

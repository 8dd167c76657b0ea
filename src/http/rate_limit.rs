//! Rate limits in front of the endpoints that check credentials (SECURITY.md #32): `/token`, `/par`
//! and `/revoke` (client authentication), everything under `/finance` (finance tokens, the staff
//! sign-in, staff sessions) and `/callbacks/payment/…` (provider signatures). Each group has its own
//! budget per client address (`rate_limit.*`, a GCRA from the `governor` crate: a burst of
//! `requests`, refilled evenly over `period_secs`); a request over it is answered 429 with
//! `Retry-After` before any credential is looked at or any row written.
//!
//! The address budget counts every request, before any check. On top, `/token`, `/par` and `/revoke`
//! have a budget per online service (`rate_limit.oauth_client`, `ClientBudgets`), spent only once the
//! client's credentials were accepted: a `client_id` alone can be named by anyone, so a budget spent
//! before authentication would let a stranger lock a real service out. Client secrets and keys are
//! far beyond guessing; the address budget stops one address flooding the checks, the logs and the
//! refused-attempt counters, the client budget stops one service (or a leaked credential) from
//! taking pforte's capacity whichever addresses it uses.
//!
//! The address is the TCP peer's. Behind a reverse proxy listed in `server.trusted_proxies` it is
//! the first address in `X-Forwarded-For` counted from the right that is not such a proxy; from any
//! other peer the header is ignored, since anyone can send it. IPv6 addresses count per /64 (one
//! subscriber's usual allocation), so an attacker cannot get a fresh budget per address.

use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use serde_json::json;

use super::error::{ApiError, ErrorCode};
use crate::config::{self, Settings};

/// After this many checks a limiter forgets the addresses whose budget is full again, so memory
/// follows the addresses active within one period, not all addresses ever seen.
const FORGET_EVERY: u64 = 1024;

/// The endpoint groups, each with its own budget per address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Group {
    OAuth,
    Finance,
    Callbacks,
}

struct Limiter<K: Hash + Eq + Clone = IpAddr> {
    limiter: DefaultKeyedRateLimiter<K>,
    checks: AtomicU64,
}

impl<K: Hash + Eq + Clone> Limiter<K> {
    fn new(quota: config::Quota) -> Self {
        let requests = NonZeroU32::new(quota.requests).unwrap_or(NonZeroU32::MIN);
        let period = Duration::from_secs(quota.period_secs.max(1));
        let quota = Quota::with_period(period / requests.get())
            .map_or_else(|| Quota::per_second(requests), |q| q.allow_burst(requests));
        Limiter { limiter: DefaultKeyedRateLimiter::keyed(quota), checks: AtomicU64::new(0) }
    }

    /// `None` when `key` may go on, else how long it must wait.
    fn check(&self, key: &K) -> Option<Duration> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % FORGET_EVERY == FORGET_EVERY - 1 {
            self.limiter.retain_recent();
        }
        self.limiter.check_key(key).err().map(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

/// The budget of each online service at `/token`, `/par` and `/revoke`, spent by the handlers once
/// the client is authenticated (see the module comment).
pub struct ClientBudgets(Limiter<String>);

impl ClientBudgets {
    pub fn new(settings: &Settings) -> Self {
        ClientBudgets(Limiter::new(settings.rate_limit.oauth_client))
    }

    /// Spends one request of `client_id`'s budget: `None` when it may go on, else the whole seconds
    /// (at least 1) it must wait.
    pub fn spend(&self, client_id: &str) -> Option<u64> {
        self.0.check(&client_id.to_owned()).map(whole_seconds)
    }
}

/// A wait as `Retry-After` gives it: whole seconds, rounded up, at least 1.
fn whole_seconds(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

/// The limiters of one running router.
pub(crate) struct RateLimits {
    oauth: Limiter,
    finance: Limiter,
    callbacks: Limiter,
    trusted_proxies: Vec<IpAddr>,
}

impl RateLimits {
    pub(crate) fn new(settings: &Settings) -> Self {
        let limits = &settings.rate_limit;
        RateLimits {
            oauth: Limiter::new(limits.oauth),
            finance: Limiter::new(limits.finance),
            callbacks: Limiter::new(limits.callbacks),
            trusted_proxies: settings.server.trusted_proxies.iter().map(|ip| ip.to_canonical()).collect(),
        }
    }

    fn limiter(&self, group: Group) -> &Limiter {
        match group {
            Group::OAuth => &self.oauth,
            Group::Finance => &self.finance,
            Group::Callbacks => &self.callbacks,
        }
    }
}

/// The middleware: requests to a limited group over their address's budget get 429.
pub(crate) async fn limit(State(limits): State<Arc<RateLimits>>, request: Request, next: Next) -> Response {
    let Some(group) = group_of(request.uri().path()) else {
        return next.run(request).await;
    };
    // Without the peer address (a router served without connect info) all requests share one budget.
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(peer)| peer.ip());
    let address = budget_key(client_address(peer, request.headers(), &limits.trusted_proxies));
    match limits.limiter(group).check(&address) {
        None => next.run(request).await,
        Some(wait) => {
            tracing::warn!(group = ?group, "rate limit reached; request refused");
            too_many_requests(group, request.headers(), wait)
        }
    }
}

fn group_of(path: &str) -> Option<Group> {
    let under = |prefix: &str| path == prefix || path.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('/'));
    if ["/token", "/par", "/revoke"].contains(&path) {
        Some(Group::OAuth)
    } else if under("/finance") {
        Some(Group::Finance)
    } else if under("/callbacks/payment") {
        Some(Group::Callbacks)
    } else {
        None
    }
}

/// The client's address: the peer's, or, from a trusted proxy, the right-most `X-Forwarded-For`
/// entry that is not a trusted proxy itself. An entry that is not an address ends the walk at the
/// proxy that passed it on: that proxy's budget is then shared, never the header trusted.
fn client_address(peer: Option<IpAddr>, headers: &HeaderMap, trusted_proxies: &[IpAddr]) -> Option<IpAddr> {
    let mut address = peer?.to_canonical();
    if !trusted_proxies.contains(&address) {
        return Some(address);
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|value| value.to_str().unwrap_or_default().split(','))
        .map(str::trim)
        .collect();
    for hop in hops.iter().rev() {
        let Ok(hop) = hop.parse::<IpAddr>() else { break };
        address = hop.to_canonical();
        if !trusted_proxies.contains(&address) {
            break;
        }
    }
    Some(address)
}

/// IPv4 addresses count one by one, IPv6 addresses per /64.
fn budget_key(address: Option<IpAddr>) -> IpAddr {
    match address {
        Some(IpAddr::V6(v6)) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        Some(v4) => v4,
        None => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}

/// 429 in each group's own error format, always with `Retry-After` (whole seconds, at least 1).
fn too_many_requests(group: Group, headers: &HeaderMap, wait: Duration) -> Response {
    let seconds = whole_seconds(wait);
    let mut response = match group {
        // RFC 6749 defines no error for this; `slow_down` is the registered token-endpoint error
        // that asks the client to wait (RFC 8628 §3.5), and 429 with Retry-After (RFC 6585 §4)
        // says how long. A client that knows neither still sees an OAuth error body.
        Group::OAuth => {
            let body = json!({
                "error": "slow_down",
                "error_description": format!("Too many requests from this address; try again in {seconds} s."),
            });
            let mut response = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
            response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Group::Finance if wants_html(headers) => {
            let body = format!(
                "<h1>Zu viele Anfragen</h1>\n<p>Von dieser Adresse kamen in kurzer Zeit zu viele Anfragen. \
                 Bitte versuchen Sie es in {seconds} Sekunden noch einmal.</p>\n<p><a href=\"/finance\">Zurück</a></p>"
            );
            let page = super::html::document("de", "Zu viele Anfragen", &body);
            let mut response = (StatusCode::TOO_MANY_REQUESTS, page).into_response();
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
            response
        }
        Group::Finance | Group::Callbacks => ApiError::new(
            ErrorCode::TooManyRequests,
            format!("Too many requests from this address; try again in {seconds} s."),
        )
        .into_response(),
    };
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|value| value.to_ascii_lowercase().contains("text/html"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarded(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn the_groups_are_the_credential_checking_paths() {
        assert_eq!(group_of("/token"), Some(Group::OAuth));
        assert_eq!(group_of("/par"), Some(Group::OAuth));
        assert_eq!(group_of("/finance"), Some(Group::Finance));
        assert_eq!(group_of("/finance/login/callback/x"), Some(Group::Finance));
        assert_eq!(group_of("/callbacks/payment/pmpayment"), Some(Group::Callbacks));
        assert_eq!(group_of("/tokens"), None);
        assert_eq!(group_of("/financials"), None);
        assert_eq!(group_of("/authorize"), None);
    }

    #[test]
    fn a_forwarded_address_counts_only_from_a_trusted_proxy() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "192.0.2.7".parse().unwrap();
        let headers = forwarded("198.51.100.1, 203.0.113.5");
        assert_eq!(client_address(Some(other), &headers, &[proxy]), Some(other), "untrusted peer");
        let client: IpAddr = "203.0.113.5".parse().unwrap();
        assert_eq!(client_address(Some(proxy), &headers, &[proxy]), Some(client), "right-most untrusted");
        let chained = forwarded("203.0.113.5, 10.0.0.2");
        let second: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(client_address(Some(proxy), &chained, &[proxy, second]), Some(client), "two proxies");
        let garbage = forwarded("203.0.113.5, nonsense");
        assert_eq!(client_address(Some(proxy), &garbage, &[proxy]), Some(proxy), "a bad entry stops the walk");
        assert_eq!(client_address(Some(proxy), &HeaderMap::new(), &[proxy]), Some(proxy), "no header");
    }

    #[test]
    fn ipv6_addresses_share_a_budget_per_64_and_mapped_ipv4_is_ipv4() {
        let a = budget_key(Some("2001:db8:1:2:aaaa::1".parse().unwrap()));
        let b = budget_key(Some("2001:db8:1:2:bbbb::2".parse().unwrap()));
        let c = budget_key(Some("2001:db8:1:3::1".parse().unwrap()));
        assert_eq!(a, b);
        assert_ne!(a, c);
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        let headers = HeaderMap::new();
        assert_eq!(client_address(Some(mapped), &headers, &[]), Some("192.0.2.1".parse().unwrap()));
    }

    #[test]
    fn the_budget_allows_its_burst_then_asks_to_wait_at_most_a_period() {
        let limiter = Limiter::new(config::Quota { requests: 3, period_secs: 60 });
        let address: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(limiter.check(&address), None);
        }
        let wait = limiter.check(&address).expect("the fourth is refused");
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(20), "{wait:?}");
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert_eq!(limiter.check(&other), None, "another address has its own budget");
    }
}

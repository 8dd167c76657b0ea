//! The outbound HTTP clients. [`outbound_client`] is shared by upstream identity providers and
//! payment providers, whose URLs the operator registered; [`GuardedClient`] is for URLs a service
//! chose (notifications, a client's `jwks_uri`) and reaches only what [`Reach`] allows (SECURITY.md
//! #28). Both never follow redirects (a peer answering with one is an error, not a hop to an
//! address nobody configured) and give up within seconds, so a hanging peer cannot hold a citizen.
//! Answers are read with a size cap ([`read_capped`], SECURITY.md #31). Calls to peers run in their own
//! span and carry its W3C trace context when traces are on ([`outbound_span`], [`with_trace_context`]).

use std::time::Duration;

mod address;
mod body;
mod guarded;
mod trace;

pub use address::{is_loopback, is_public, Reach};
pub use body::{read_capped, BodyError, DEFAULT_MAX_BODY_BYTES, MAX_JWKS_BYTES};
pub use guarded::{is_refused_address, GuardedClient, Refused, REFUSED_ADDRESS};
pub use trace::{outbound_span, record_failure, record_status, with_trace_context};

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

pub fn outbound_client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .user_agent(concat!("pforte/", env!("CARGO_PKG_VERSION")))
        .build()
}

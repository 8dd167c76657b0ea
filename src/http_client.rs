//! The one outbound HTTP client, shared by upstream identity providers and payment providers.
//! It never follows redirects (a provider answering with one is an error, not a hop to an address
//! nobody configured) and gives up within seconds, so a hanging provider cannot hold a citizen.

use std::time::Duration;

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

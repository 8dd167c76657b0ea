//! The client for URLs a service chose (SECURITY.md #28): its resolver drops every address that
//! [`Reach`] does not allow and fails when none is left, so a name that points into a private range
//! is refused at connect time, not only when the URL was registered. IP literals never reach a
//! resolver, so each URL is checked before the request is built. No proxy (it would resolve the
//! name itself) and, like every outbound client, no redirects.

use std::net::SocketAddr;
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::Url;

use super::address::Reach;
use super::{CONNECT_TIMEOUT, REQUEST_TIMEOUT};

/// Why a call was not made: the URL or every address its name resolves to is out of [`Reach`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub &'static str);

/// The message of a connect-time refusal (a name resolving only to addresses out of reach).
pub const REFUSED_ADDRESS: &str = "refused: the host resolves to no public address";

#[derive(Clone)]
pub struct GuardedClient {
    client: reqwest::Client,
    reach: Reach,
}

impl GuardedClient {
    pub fn new(reach: Reach) -> reqwest::Result<GuardedClient> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver { reach }))
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("pforte/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(GuardedClient { client, reach })
    }

    pub fn reach(&self) -> Reach {
        self.reach
    }

    pub fn get(&self, url: &str) -> Result<reqwest::RequestBuilder, Refused> {
        Ok(self.client.get(self.checked(url)?))
    }

    pub fn post(&self, url: &str) -> Result<reqwest::RequestBuilder, Refused> {
        Ok(self.client.post(self.checked(url)?))
    }

    fn checked(&self, url: &str) -> Result<Url, Refused> {
        let url = Url::parse(url).map_err(|_| Refused("refused: not an absolute URL"))?;
        self.reach.check_url(&url).map_err(|_| Refused("refused: not https to a public host"))?;
        Ok(url)
    }
}

/// Whether a failed request was refused by the resolver (no address in reach).
pub fn is_refused_address(error: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if e.downcast_ref::<Refused>().is_some() {
            return true;
        }
        source = e.source();
    }
    false
}

struct GuardedResolver {
    reach: Reach,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let reach = self.reach;
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found.into_iter().filter(|address| reach.allows(address.ip())).collect();
            if allowed.is_empty() {
                return Err(Box::new(Refused(REFUSED_ADDRESS)) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real listener on loopback: reached in development; refused in production as an IP literal
    /// and as a URL to `localhost` (checked before sending), and a name that resolves only to
    /// loopback is refused by the resolver itself.
    #[tokio::test]
    async fn loopback_is_refused_in_production_by_literal_and_by_name() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request).await;
                let _ = stream.write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n").await;
            }
        });
        let production = GuardedClient::new(Reach::Public).expect("client");
        for url in [format!("http://127.0.0.1:{port}/hook"), format!("https://localhost:{port}/hook")] {
            assert_eq!(production.post(&url).err(), Some(Refused("refused: not https to a public host")), "{url}");
        }
        let name: Name = "localhost".parse().expect("a name");
        let resolved = GuardedResolver { reach: Reach::Public }.resolve(name).await;
        let refused = resolved.err().expect("refused").to_string();
        assert_eq!(refused, REFUSED_ADDRESS);
        let name: Name = "localhost".parse().expect("a name");
        let resolved = GuardedResolver { reach: Reach::PublicAndLoopback }.resolve(name).await.expect("resolved");
        assert!(resolved.into_iter().all(|address| address.ip().is_loopback()));

        let development = GuardedClient::new(Reach::PublicAndLoopback).expect("client");
        let answer = development.post(&format!("http://localhost:{port}/hook")).expect("rule").send().await;
        assert_eq!(answer.expect("reached").status(), 204);
    }
}

//! A TCP proxy the test controls, placed between pforte and a peer (the PostgreSQL server, a
//! provider, a receiver). `cut` resets every open connection and refuses new ones until `restore`;
//! `set_latency` delays every chunk in both directions. Faults are injected on the wire, so pforte
//! meets them exactly as it would meet a network or database outage.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::helpers::TestResult;

struct Control {
    cut: AtomicBool,
    latency_ms: AtomicU64,
    /// Bumped on every cut; each piped connection watches it and dies when it changes.
    cuts: watch::Sender<u64>,
    accepted: AtomicU64,
}

pub struct TcpProxy {
    address: SocketAddr,
    control: Arc<Control>,
    task: tokio::task::JoinHandle<()>,
}

impl TcpProxy {
    /// Listens on a fresh loopback port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> anyhow::Result<TcpProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let (cuts, _) = watch::channel(0);
        let control = Arc::new(Control {
            cut: AtomicBool::new(false),
            latency_ms: AtomicU64::new(0),
            cuts,
            accepted: AtomicU64::new(0),
        });
        let shared = control.clone();
        let task = tokio::spawn(async move {
            while let Ok((downstream, _)) = listener.accept().await {
                shared.accepted.fetch_add(1, Ordering::SeqCst);
                if shared.cut.load(Ordering::SeqCst) {
                    reset(downstream);
                    continue;
                }
                tokio::spawn(pipe(downstream, upstream, shared.clone()));
            }
        });
        Ok(TcpProxy { address, control, task })
    }

    /// A proxy in front of the host and port of `url` (e.g. a `postgres://` URL), and `url` rewritten
    /// to go through it.
    pub async fn in_front_of(url: &str) -> anyhow::Result<(TcpProxy, String)> {
        let mut parsed = url::Url::parse(url)?;
        let host = parsed.host_str().ok_or_else(|| anyhow::anyhow!("{url} names no host"))?;
        let port = parsed.port_or_known_default().ok_or_else(|| anyhow::anyhow!("{url} names no port"))?;
        let upstream = tokio::net::lookup_host((host, port))
            .await?
            .next()
            .ok_or_else(|| anyhow::anyhow!("{host} does not resolve"))?;
        let proxy = TcpProxy::start(upstream).await?;
        parsed.set_host(Some("127.0.0.1"))?;
        parsed.set_port(Some(proxy.address.port())).map_err(|()| anyhow::anyhow!("cannot set a port on {url}"))?;
        Ok((proxy, parsed.to_string()))
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Resets every open connection and refuses new ones until `restore`.
    pub fn cut(&self) {
        self.control.cut.store(true, Ordering::SeqCst);
        self.control.cuts.send_modify(|n| *n += 1);
    }

    pub fn restore(&self) {
        self.control.cut.store(false, Ordering::SeqCst);
    }

    /// Delays every chunk, in both directions, by `latency` (zero turns it off).
    pub fn set_latency(&self, latency: Duration) {
        self.control.latency_ms.store(u64::try_from(latency.as_millis()).unwrap_or(u64::MAX), Ordering::SeqCst);
    }

    /// How many connections the proxy has accepted so far (refused ones included).
    pub fn connections_accepted(&self) -> u64 {
        self.control.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.cut();
        self.task.abort();
    }
}

/// Closes with RST rather than FIN, as a peer that went away does.
// With a zero linger time the close does not block, which is what the deprecation warns of.
#[allow(deprecated)]
fn reset(stream: TcpStream) {
    stream.set_linger(Some(Duration::ZERO)).ok();
    drop(stream);
}

async fn pipe(downstream: TcpStream, upstream_address: SocketAddr, control: Arc<Control>) {
    let mut cuts = control.cuts.subscribe();
    let Ok(upstream) = TcpStream::connect(upstream_address).await else {
        reset(downstream);
        return;
    };
    downstream.set_nodelay(true).ok();
    upstream.set_nodelay(true).ok();
    let (mut down_read, mut down_write) = downstream.into_split();
    let (mut up_read, mut up_write) = upstream.into_split();
    let forward = copy_with_latency(&mut down_read, &mut up_write, &control);
    let backward = copy_with_latency(&mut up_read, &mut down_write, &control);
    tokio::select! {
        _ = async { tokio::join!(forward, backward) } => {}
        _ = cuts.changed() => {}
    }
    // Reunite to reset both sides.
    if let (Ok(down), Ok(up)) = (down_read.reunite(down_write), up_read.reunite(up_write)) {
        reset(down);
        reset(up);
    }
}

async fn copy_with_latency(
    from: &mut tokio::net::tcp::OwnedReadHalf,
    to: &mut tokio::net::tcp::OwnedWriteHalf,
    control: &Control,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let latency = control.latency_ms.load(Ordering::SeqCst);
        if latency > 0 {
            tokio::time::sleep(Duration::from_millis(latency)).await;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            break;
        }
    }
    to.shutdown().await.ok();
}

/// The proxy itself: bytes pass, a cut breaks open connections and refuses new ones, restore heals.
pub async fn the_proxy_passes_bytes_cuts_and_restores() -> TestResult {
    let echo = TcpListener::bind("127.0.0.1:0").await?;
    let echo_address = echo.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = echo.accept().await {
            tokio::spawn(async move {
                let (mut read, mut write) = stream.split();
                tokio::io::copy(&mut read, &mut write).await.ok();
            });
        }
    });
    let (proxy, proxied) = TcpProxy::in_front_of(&format!("postgres://user@{echo_address}/db")).await?;
    assert_eq!(proxied, format!("postgres://user@{}/db", proxy.address()));
    let round_trip = |mut stream: TcpStream| async move {
        stream.write_all(b"ping").await?;
        let mut answer = [0u8; 4];
        stream.read_exact(&mut answer).await?;
        anyhow::Ok((stream, answer))
    };

    let (mut open, answer) = round_trip(TcpStream::connect(proxy.address()).await?).await?;
    assert_eq!(&answer, b"ping");

    proxy.cut();
    open.write_all(b"ping").await.ok();
    let mut rest = [0u8; 4];
    let after_cut = open.read(&mut rest).await;
    assert!(matches!(after_cut, Ok(0) | Err(_)), "an open connection dies with the cut: {after_cut:?}");
    let refused = round_trip(TcpStream::connect(proxy.address()).await?).await;
    assert!(refused.is_err(), "a new connection is refused while cut");

    proxy.restore();
    proxy.set_latency(Duration::from_millis(20));
    let (_, answer) = round_trip(TcpStream::connect(proxy.address()).await?).await?;
    assert_eq!(&answer, b"ping");
    assert_eq!(proxy.connections_accepted(), 3);
    Ok(())
}
plain_test!(the_proxy_passes_bytes_cuts_and_restores);

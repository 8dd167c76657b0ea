//! Reading a peer's answer with a size cap (SECURITY.md #31): a `Content-Length` over the cap is
//! refused before reading, and the body is read chunk by chunk and abandoned as soon as it passes
//! the cap, so a peer sending an endless body costs at most the cap in memory.

/// The default cap on a peer's answer (`outbound.max_body_bytes`): 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// The cap on a key set (a client's `jwks_uri`): 64 KiB holds dozens of keys.
pub const MAX_JWKS_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("the answer is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the answer broke off")]
    Broken,
}

/// The whole body, if it has at most `limit` bytes.
pub async fn read_capped(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, BodyError> {
    if response.content_length().is_some_and(|length| length > limit as u64) {
        return Err(BodyError::TooLarge { limit });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|_| BodyError::Broken)? {
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// A peer on loopback that answers every connection with `head` and then `body_chunks` chunks of
    /// 16 KiB (chunked encoding), or without end when `None`.
    async fn peer(head: &'static str, body_chunks: Option<usize>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/", listener.local_addr().expect("address"));
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buffer = [0u8; 4096];
                    let _ = tokio::io::AsyncReadExt::read(&mut stream, &mut buffer).await;
                    if stream.write_all(head.as_bytes()).await.is_err() {
                        return;
                    }
                    let chunk = format!("4000\r\n{}\r\n", "x".repeat(0x4000));
                    let mut sent = 0;
                    while body_chunks.is_none_or(|n| sent < n) {
                        if stream.write_all(chunk.as_bytes()).await.is_err() {
                            return;
                        }
                        sent += 1;
                    }
                    let _ = stream.write_all(b"0\r\n\r\n").await;
                });
            }
        });
        url
    }

    const CHUNKED: &str = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-type: application/json\r\n\r\n";

    #[tokio::test]
    async fn an_endless_body_is_abandoned_at_the_cap() {
        let url = peer(CHUNKED, None).await;
        let response = reqwest::get(&url).await.expect("answer");
        let started = std::time::Instant::now();
        assert_eq!(read_capped(response, 64 * 1024).await, Err(BodyError::TooLarge { limit: 64 * 1024 }));
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[tokio::test]
    async fn a_declared_length_over_the_cap_is_refused_before_reading() {
        let url = peer("HTTP/1.1 200 OK\r\ncontent-length: 1073741824\r\n\r\n", Some(0)).await;
        let response = reqwest::get(&url).await.expect("answer");
        assert_eq!(read_capped(response, 1024).await, Err(BodyError::TooLarge { limit: 1024 }));
    }

    #[tokio::test]
    async fn a_body_within_the_cap_is_read_whole() {
        let url = peer(CHUNKED, Some(3)).await;
        let response = reqwest::get(&url).await.expect("answer");
        assert_eq!(read_capped(response, 3 * 0x4000).await.map(|b| b.len()), Ok(3 * 0x4000));
    }
}

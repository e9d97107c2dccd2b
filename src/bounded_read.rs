//! Reads with a size cap: a file a user names (`check /dev/zero` read until memory ran out)
//! and a server's answer (a CA, the EMQX Cloud API) are read only up to a size generous for
//! the real thing, and one over it is an error that says so, instead of an unbounded read.
//!
//! Owns: the caps and the capped reads. Does not own: what the bytes mean (the callers
//! parse them) or the messages' context (the callers name the setting or command).

use std::io::Read;
use std::path::Path;

/// A PEM file (certificate, chain, key, bundle, client CA): 1 MiB holds hundreds of
/// certificates; a real chain is a few kilobytes. The same as `pki::MAX_BUNDLE_BYTES`.
pub const MAX_PEM_FILE: u64 = crate::pki::MAX_BUNDLE_BYTES as u64;
/// A configuration file or a small secret file.
pub const MAX_SMALL_FILE: u64 = 1024 * 1024;
/// An answer from an API (an ACME directory, order or certificate chain; an EMQX Cloud
/// reply): real ones are a few kilobytes.
pub const MAX_RESPONSE: usize = 4 * 1024 * 1024;

/// Reads the file at `path`, at most `max` bytes; a longer one (or an endless device such
/// as `/dev/zero`) is an `InvalidData` error saying the cap.
pub fn read_file(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "it is larger than {} (brokercert reads no more from such a file; a real one \
                 is far smaller)",
                human_size(max)
            ),
        ));
    }
    Ok(bytes)
}

/// Like [`read_file`], as UTF-8 text.
pub fn read_text(path: &Path, max: u64) -> std::io::Result<String> {
    String::from_utf8(read_file(path, max)?)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "it is not UTF-8 text"))
}

/// An answer larger than the cap.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Over the cap.
    #[error("the answer is larger than {} (a real one is a few kilobytes); stopped reading", human_size(.0.to_owned() as u64))]
    TooLarge(usize),
    /// The transfer broke.
    #[error("the answer could not be read: {0}")]
    Read(#[source] reqwest::Error),
}

/// Reads a response body, at most `max` bytes (more is refused without reading it whole).
pub async fn read_body(mut rsp: reqwest::Response, max: usize) -> Result<bytes::Bytes, BodyError> {
    if rsp.content_length().is_some_and(|n| n > max as u64) {
        return Err(BodyError::TooLarge(max));
    }
    let mut out = bytes::BytesMut::new();
    while let Some(chunk) = rsp
        .chunk()
        .await
        .map_err(|e| BodyError::Read(e.without_url()))?
    {
        if out.len() + chunk.len() > max {
            return Err(BodyError::TooLarge(max));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out.freeze())
}

/// Like [`read_body`], as text (invalid UTF-8 replaced, as `reqwest::Response::text` does).
pub async fn read_body_text(rsp: reqwest::Response, max: usize) -> Result<String, BodyError> {
    read_body(rsp, max)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
}

fn human_size(n: u64) -> String {
    if n >= 1024 * 1024 && n.is_multiple_of(1024 * 1024) {
        format!("{} MiB", n / (1024 * 1024))
    } else {
        format!("{n} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endless_device_is_refused_after_the_cap() {
        let err = read_file(Path::new("/dev/zero"), 4096).expect_err("capped");
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("larger than 4096 bytes"), "{err}");
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("f");
        std::fs::write(&p, b"abc").expect("write");
        assert_eq!(read_file(&p, 3).expect("fits"), b"abc");
        assert!(read_file(&p, 2).is_err());
    }

    #[tokio::test]
    async fn an_oversized_answer_is_refused() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            for _ in 0..2 {
                let (mut s, _) = listener.accept().await.expect("accept");
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                // No Content-Length: the cap must hold while streaming.
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n")
                    .await;
                let chunk = vec![b'x'; 64 * 1024];
                for _ in 0..64 {
                    if s.write_all(&chunk).await.is_err() {
                        break;
                    }
                }
            }
        });
        let client = reqwest::Client::new();
        let rsp = client
            .get(format!("http://{addr}/"))
            .send()
            .await
            .expect("answer");
        let err = read_body(rsp, 100_000).await.expect_err("capped");
        assert!(matches!(err, BodyError::TooLarge(100_000)), "{err}");
        let rsp = client
            .get(format!("http://{addr}/"))
            .send()
            .await
            .expect("answer");
        assert_eq!(
            read_body(rsp, 8 * 1024 * 1024).await.expect("fits").len(),
            4 * 1024 * 1024
        );
    }
}

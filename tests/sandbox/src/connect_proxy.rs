//! An HTTP CONNECT proxy that makes `https://route53.amazonaws.com` reach the sandbox's
//! moto, for clients that have no Route 53 endpoint setting (lego 4.9, in the benchmark):
//! the client gets `HTTPS_PROXY=http://127.0.0.1:PORT` and `AWS_CA_BUNDLE=<ca.pem>`.
//!
//! A `CONNECT route53.amazonaws.com:443` is answered `200`, TLS is terminated with a
//! certificate for that name from a throw-away CA made at start (its PEM is written to
//! `<dir>/connect-proxy-ca.pem`), and the decrypted bytes are relayed unchanged to the
//! plain-HTTP Route 53 endpoint (moto accepts any `Host`). Any other CONNECT target is
//! refused with `403` and any other method with `405`: nothing leaves the machine.
//!
//! Owns: the CONNECT exchange and the relay. Does not own the listener plumbing
//! ([`super::listen`]), certificate generation ([`super::local_tls`]) or Route 53 itself.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::serve::Listener as _;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use super::listen::{OnKill, listen};
use super::local_tls::LocalTls;
use super::{Result, SandboxError};

/// The only CONNECT target let through.
pub const ROUTE53_TARGET: &str = "route53.amazonaws.com:443";
/// The CA file written into the proxy's directory.
pub const CA_FILE: &str = "connect-proxy-ca.pem";
/// The longest CONNECT request head read.
const MAX_HEAD: usize = 8 * 1024;
/// How long a client may take to send its CONNECT request and TLS handshake.
const HANDSHAKE_LIMIT: Duration = Duration::from_secs(10);

/// The running proxy; stops when dropped.
pub struct ConnectProxy {
    addr: SocketAddr,
    ca_path: PathBuf,
    targets: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
    accept: JoinHandle<()>,
}

impl std::fmt::Debug for ConnectProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectProxy")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl ConnectProxy {
    /// Starts the proxy in front of `route53_endpoint` (`http://127.0.0.1:PORT`, e.g.
    /// [`super::Sandbox::route53_endpoint`]) and writes its CA to `<dir>/connect-proxy-ca.pem`.
    pub async fn start(route53_endpoint: &str, dir: &Path) -> Result<Self> {
        let upstream: SocketAddr = route53_endpoint
            .strip_prefix("http://")
            .map(|a| a.trim_end_matches('/'))
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| {
                SandboxError::InvalidOption(format!(
                    "the CONNECT proxy's upstream `{route53_endpoint}` is not http://IP:PORT"
                ))
            })?;
        let host = ROUTE53_TARGET.trim_end_matches(":443");
        let tls = LocalTls::generate_for("brokercert sandbox CONNECT proxy CA", host, &[host])?;
        let ca_path = dir.join(CA_FILE);
        std::fs::write(&ca_path, &tls.ca_pem)
            .map_err(|e| SandboxError::io(format!("writing {}", ca_path.display()), e))?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls.server_config()?));
        let (addr, mut incoming, accept) = listen("CONNECT proxy", None, OnKill::Abort).await?;
        let targets = Arc::new(Mutex::new(Vec::new()));
        let seen = targets.clone();
        let task = tokio::spawn(async move {
            loop {
                let (stream, conn) = incoming.accept().await;
                let acceptor = acceptor.clone();
                let seen = seen.clone();
                tokio::spawn(async move {
                    if let Err(e) = handle(stream, acceptor, upstream, seen).await {
                        tracing::debug!(remote = %conn.remote, error = %e, "CONNECT proxy: connection ended");
                    }
                });
            }
        });
        Ok(Self {
            addr,
            ca_path,
            targets,
            task,
            accept,
        })
    }

    /// The proxy's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The value for `HTTPS_PROXY`: `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The CA that signed the `route53.amazonaws.com` certificate (for `AWS_CA_BUNDLE`).
    pub fn ca_path(&self) -> &Path {
        &self.ca_path
    }

    /// Every CONNECT target asked for so far, let through or not, in order.
    pub fn targets(&self) -> Vec<String> {
        self.targets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        self.task.abort();
        self.accept.abort();
    }
}

/// One client connection: the CONNECT exchange, the TLS handshake, then the relay.
async fn handle<S>(
    mut client: S,
    acceptor: tokio_rustls::TlsAcceptor,
    upstream: SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let head = tokio::time::timeout(HANDSHAKE_LIMIT, read_head(&mut client))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no CONNECT request"))??;
    let mut words = head.lines().next().unwrap_or_default().split_whitespace();
    let (method, target) = (words.next().unwrap_or_default(), words.next());
    if method != "CONNECT" {
        return refuse(&mut client, "405 Method Not Allowed").await;
    }
    let target = target.unwrap_or_default().to_ascii_lowercase();
    seen.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(target.clone());
    if target != ROUTE53_TARGET {
        return refuse(&mut client, "403 Forbidden").await;
    }
    let mut server = TcpStream::connect(upstream).await?;
    client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await?;
    let mut tls = tokio::time::timeout(HANDSHAKE_LIMIT, acceptor.accept(client))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake"))??;
    tokio::io::copy_bidirectional(&mut tls, &mut server).await?;
    Ok(())
}

/// Reads the request head up to the blank line, byte by byte so nothing after it (the
/// client's TLS hello) is consumed.
async fn read_head<S: AsyncRead + Unpin>(client: &mut S) -> std::io::Result<String> {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_HEAD {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "CONNECT request head too long",
            ));
        }
        head.push(client.read_u8().await?);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

async fn refuse<S: AsyncWrite + Unpin>(client: &mut S, status: &str) -> std::io::Result<()> {
    client
        .write_all(
            format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await?;
    client.shutdown().await
}

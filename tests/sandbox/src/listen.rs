//! One accept loop for the sandbox's HTTP fronts (the EMQX Cloud emulator, the ARI proxy,
//! the Route 53 fault proxy): TCP accepted on 127.0.0.1, an optional TLS handshake per
//! connection in a task of its own (a slow client holds up no other), and a kill switch
//! per connection ([`Conn::kill`]) so a fault can drop a connection mid-request the way a
//! crashed peer or a middlebox would.
//!
//! Owns the listener plumbing handed to `axum::serve`. Does not own any server's routes,
//! faults or certificates.

use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{Result, SandboxError};

/// How long one TLS handshake may take before the connection is dropped.
const HANDSHAKE_LIMIT: Duration = Duration::from_secs(10);

/// How a killed connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnKill {
    /// Reads and writes fail; the socket is closed as usual.
    Abort,
    /// As `Abort`, and the socket closes with a reset (linger 0), as a crashed peer's would.
    Reset,
}

/// What `listen` serves: plain TCP, or TLS with this acceptor.
pub(crate) type Tls = Option<tokio_rustls::TlsAcceptor>;

/// Binds 127.0.0.1:0 for `label` (named in errors and logs) and starts accepting: returns
/// the address, the listener for `axum::serve` and the accepting task (abort it to stop).
pub(crate) async fn listen(
    label: &'static str,
    tls: Tls,
    on_kill: OnKill,
) -> Result<(SocketAddr, Incoming, JoinHandle<()>)> {
    let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await
        .map_err(|e| SandboxError::io(format!("binding 127.0.0.1:0 for the {label}"), e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| SandboxError::io(format!("reading the {label}'s address"), e))?;
    let (tx, rx) = mpsc::channel(64);
    let task = tokio::spawn(accept_loop(listener, label, tls, on_kill, tx));
    Ok((addr, Incoming { rx, addr }, task))
}

/// Per-connection information handed to handlers (`ConnectInfo<Conn>`): the peer and the
/// switch that makes the connection fail.
#[derive(Debug, Clone)]
pub(crate) struct Conn {
    pub remote: SocketAddr,
    killed: Arc<AtomicBool>,
}

impl Conn {
    /// From now on every read and write of this connection fails, so hyper drops it
    /// without sending the response in progress.
    pub fn kill(&self) {
        self.killed.store(true, Ordering::SeqCst);
    }

    pub fn is_killed(&self) -> bool {
        self.killed.load(Ordering::SeqCst)
    }
}

impl Connected<IncomingStream<'_, Incoming>> for Conn {
    fn connect_info(stream: IncomingStream<'_, Incoming>) -> Self {
        stream.remote_addr().clone()
    }
}

/// The byte stream under a [`Stream`]: TCP, or TLS over TCP.
enum Inner {
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

/// An accepted connection that fails every read and write once its [`Conn`] is killed.
pub(crate) struct Stream {
    inner: Inner,
    killed: Arc<AtomicBool>,
    label: &'static str,
}

impl Stream {
    fn check(&self) -> std::io::Result<()> {
        if self.killed.load(Ordering::SeqCst) {
            Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                format!("connection dropped by the {}'s fault injection", self.label),
            ))
        } else {
            Ok(())
        }
    }
}

/// Runs `$op` on whichever stream is inside, after the kill check.
macro_rules! delegate {
    ($self:ident, $s:ident => $op:expr) => {{
        let this = $self.get_mut();
        this.check()?;
        match &mut this.inner {
            Inner::Tcp($s) => $op,
            Inner::Tls($s) => $op,
        }
    }};
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        delegate!(self, s => Pin::new(s).poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_shutdown(cx))
    }
}

/// axum's listener: connections [`accept_loop`] accepted (and, for TLS, shook hands with).
pub(crate) struct Incoming {
    rx: mpsc::Receiver<(Stream, Conn)>,
    addr: SocketAddr,
}

impl Listener for Incoming {
    type Io = Stream;
    type Addr = Conn;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(conn) => conn,
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(Conn {
            remote: self.addr,
            killed: Arc::new(AtomicBool::new(false)),
        })
    }
}

async fn accept_loop(
    listener: TcpListener,
    label: &'static str,
    tls: Tls,
    on_kill: OnKill,
    tx: mpsc::Sender<(Stream, Conn)>,
) {
    loop {
        let (tcp, remote) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %e, "{label}: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if on_kill == OnKill::Reset {
            // A killed connection must look like a reset, not an orderly close.
            let _ = linger_zero(&tcp);
        }
        let tls = tls.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let inner = match tls {
                None => Inner::Tcp(tcp),
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE_LIMIT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => Inner::Tls(Box::new(tls)),
                        Ok(Err(e)) => {
                            return tracing::debug!(%remote, error = %e, "{label}: TLS handshake failed");
                        }
                        Err(_) => {
                            return tracing::debug!(%remote, "{label}: TLS handshake timed out");
                        }
                    }
                }
            };
            let killed = Arc::new(AtomicBool::new(false));
            let stream = Stream {
                inner,
                killed: killed.clone(),
                label,
            };
            if tx.send((stream, Conn { remote, killed })).await.is_err() {
                tracing::debug!("{label}: server gone");
            }
        });
    }
}

#[allow(deprecated)]
fn linger_zero(tcp: &TcpStream) -> std::io::Result<()> {
    tcp.set_linger(Some(Duration::ZERO))
}

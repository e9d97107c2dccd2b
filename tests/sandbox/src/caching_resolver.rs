//! A small caching recursive resolver for the sandbox: it forwards each question (UDP) to one
//! upstream server (the sandbox DNS server) and caches the answer the way real resolvers do,
//! positive answers for their smallest TTL and negative ones (NXDOMAIN, NODATA) for the
//! zone's SOA minimum (capped by the SOA's TTL and by `max_negative_ttl`, like unbound's
//! `cache-max-negative-ttl`). Cached answers carry the remaining time as their TTL.
//!
//! This is what a corporate network's resolver does to a client that asks for
//! `_acme-challenge` before writing it: the record stays invisible there until the negative
//! answer expires. It runs on its own thread and runtime (like `dns_server.rs`), listens on
//! 127.0.0.1 only, and keeps a log of what it answered and whether from its cache.
//! It does not own the upstream server or any real recursion.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use tokio::net::UdpSocket;
use tokio::sync::oneshot;

use super::{Result, SandboxError};

/// How long a forwarded question waits for the upstream server.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// One answer the resolver gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolverEvent {
    /// The name asked, lower case, no trailing dot.
    pub name: String,
    /// The type asked.
    pub qtype: RecordType,
    /// The response code given.
    pub rcode: ResponseCode,
    /// Whether it came from the cache.
    pub from_cache: bool,
}

/// A cached answer and when it expires.
struct Cached {
    message: Message,
    until: Instant,
}

type Cache = Arc<Mutex<HashMap<(String, RecordType), Cached>>>;

/// A running caching resolver; stopped on drop.
#[derive(Debug)]
pub struct CachingResolver {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<ResolverEvent>>>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl CachingResolver {
    /// Starts it on 127.0.0.1 (a free port), forwarding to `upstream`.
    pub fn start(upstream: SocketAddr, max_negative_ttl: Duration) -> Result<Self> {
        let socket = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(|e| SandboxError::io("binding the caching resolver", e))?;
        socket
            .set_nonblocking(true)
            .map_err(|e| SandboxError::io("configuring the caching resolver's socket", e))?;
        let addr = socket
            .local_addr()
            .map_err(|e| SandboxError::io("reading the caching resolver's address", e))?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let (shutdown_tx, shutdown_rx) = oneshot::channel();
        let (ready_tx, ready_rx) = mpsc::channel::<std::result::Result<(), String>>();
        let thread_log = log.clone();
        let thread = std::thread::Builder::new()
            .name(format!("sandbox-resolver-{}", addr.port()))
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("building its runtime: {e}")));
                        return;
                    }
                };
                rt.block_on(async move {
                    let socket = match UdpSocket::from_std(socket) {
                        Ok(s) => Arc::new(s),
                        Err(e) => {
                            let _ = ready_tx.send(Err(format!("registering its socket: {e}")));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    let cache: Cache = Arc::default();
                    serve(
                        socket,
                        upstream,
                        max_negative_ttl,
                        cache,
                        thread_log,
                        shutdown_rx,
                    )
                    .await;
                });
            })
            .map_err(|e| SandboxError::io("spawning the caching resolver thread", e))?;
        match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => {}
            Ok(Err(m)) => return Err(SandboxError::Dns(m)),
            Err(_) => {
                return Err(SandboxError::Dns(
                    "the caching resolver thread did not start".into(),
                ));
            }
        }
        Ok(Self {
            addr,
            log,
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
        })
    }

    /// Where it answers (UDP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What it answered so far, oldest first.
    pub fn events(&self) -> Vec<ResolverEvent> {
        self.log
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

impl Drop for CachingResolver {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve(
    socket: Arc<UdpSocket>,
    upstream: SocketAddr,
    max_negative_ttl: Duration,
    cache: Cache,
    log: Arc<Mutex<Vec<ResolverEvent>>>,
    mut shutdown: oneshot::Receiver<()>,
) {
    let mut buf = vec![0u8; 65_535];
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            received = socket.recv_from(&mut buf) => {
                let Ok((len, peer)) = received else { continue };
                let packet = buf[..len].to_vec();
                let (socket, cache, log) = (socket.clone(), cache.clone(), log.clone());
                tokio::spawn(async move {
                    if let Some(answer) =
                        answer(&packet, upstream, max_negative_ttl, &cache, &log).await
                    {
                        let _ = socket.send_to(&answer, peer).await;
                    }
                });
            }
        }
    }
}

/// The answer to one query: from the cache, or forwarded and cached.
async fn answer(
    packet: &[u8],
    upstream: SocketAddr,
    max_negative_ttl: Duration,
    cache: &Cache,
    log: &Mutex<Vec<ResolverEvent>>,
) -> Option<Vec<u8>> {
    let query = Message::from_vec(packet).ok()?;
    let q = query.queries.first()?.clone();
    let key = (
        q.name()
            .to_ascii()
            .trim_end_matches('.')
            .to_ascii_lowercase(),
        q.query_type(),
    );
    let now = Instant::now();
    let hit = cache.lock().ok().and_then(|c| {
        c.get(&key)
            .filter(|c| c.until > now)
            .map(|c| (c.message.clone(), c.until))
    });
    let (mut message, remaining, from_cache) = match hit {
        Some((m, until)) => (m, until.duration_since(now), true),
        None => {
            let m = forward(packet, upstream).await?;
            let keep = cache_time(&m, max_negative_ttl);
            if !keep.is_zero()
                && let Ok(mut c) = cache.lock()
            {
                c.insert(
                    key.clone(),
                    Cached {
                        message: m.clone(),
                        until: now + keep,
                    },
                );
            }
            (m, keep, false)
        }
    };
    // TTLs count down in a cache; a negative answer's SOA says how long it may be kept.
    let secs = u32::try_from(remaining.as_secs()).unwrap_or(u32::MAX);
    for r in message
        .answers
        .iter_mut()
        .chain(message.authorities.iter_mut())
    {
        r.ttl = r.ttl.min(secs);
    }
    message.metadata.id = query.metadata.id;
    message.metadata.recursion_available = true;
    message.metadata.authoritative = false;
    if let Ok(mut l) = log.lock() {
        l.push(ResolverEvent {
            name: key.0,
            qtype: key.1,
            rcode: message.metadata.response_code,
            from_cache,
        });
    }
    message.to_vec().ok()
}

async fn forward(packet: &[u8], upstream: SocketAddr) -> Option<Message> {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.ok()?;
    socket.connect(upstream).await.ok()?;
    socket.send(packet).await.ok()?;
    let mut buf = vec![0u8; 65_535];
    let len = tokio::time::timeout(UPSTREAM_TIMEOUT, socket.recv(&mut buf))
        .await
        .ok()?
        .ok()?;
    Message::from_vec(&buf[..len]).ok()
}

/// How long to keep an answer: positive for its smallest TTL, negative for the SOA's
/// minimum (capped by the SOA's TTL and `max_negative_ttl`); errors not at all.
fn cache_time(m: &Message, max_negative_ttl: Duration) -> Duration {
    let rcode = m.metadata.response_code;
    if rcode == ResponseCode::NoError && !m.answers.is_empty() {
        let ttl = m.answers.iter().map(|r| r.ttl).min().unwrap_or(0);
        return Duration::from_secs(u64::from(ttl));
    }
    if rcode != ResponseCode::NoError && rcode != ResponseCode::NXDomain {
        return Duration::ZERO;
    }
    m.authorities
        .iter()
        .find_map(|r| match &r.data {
            RData::SOA(soa) => Some(Duration::from_secs(u64::from(r.ttl.min(soa.minimum)))),
            _ => None,
        })
        .map_or(Duration::ZERO, |d| d.min(max_negative_ttl))
}

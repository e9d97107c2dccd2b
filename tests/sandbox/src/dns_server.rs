//! The sandbox's authoritative DNS server: UDP and TCP on 127.0.0.1, answering at query
//! time from the record sets that moto (the Route 53 emulator) holds, plus fault
//! injection (SERVFAIL, no answer, or lagging behind on new TXT values like a stale
//! secondary) and a log of the questions it was asked.
//!
//! It runs on its own thread with its own tokio runtime, so it keeps answering while a
//! test blocks (e.g. waiting on a child `brokercert` process). A record written to moto
//! is visible on the very next query, in one of two ways:
//! - With [`DnsServerOptions::route53_front`] (what [`super::Sandbox`] uses), the server
//!   also serves the Route 53 endpoint everyone writes through (`route53_front`), which
//!   counts writes; answers come from a copy of moto's records kept until the next write
//!   (or for at most [`MAX_STALE`], for writes that bypass the endpoint). Like Route 53's
//!   own nameservers, it answers at once however many are asking.
//! - Without it, every answer comes from ListHostedZones and ListResourceRecordSets reads
//!   that started after the query arrived; queries arriving together share those reads
//!   (see `FreshRead`).
//!
//! This file does not start moto (see `moto.rs`) and does no recursion or forwarding:
//! a name in no moto zone is REFUSED, and the system resolver is never used.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, NS, SOA, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::oneshot;

use super::moto::{self, HostedZoneInfo};
use super::route53_front::WriteLog;
use super::{Result, SandboxError};

/// Longest CNAME chain followed inside one answer.
pub const MAX_CNAME_HOPS: usize = 8;
/// SOA "minimum" (negative-caching TTL) of the synthesized SOA records.
pub const NEGATIVE_TTL: u32 = 60;
/// Largest UDP answer sent to an EDNS client (the usual 1232 bytes).
const EDNS_PAYLOAD: u16 = 1232;
const MAX_LOGGED_QUERIES: usize = 10_000;
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// With a Route 53 front, the longest a copy of moto's records is used without a write
/// through the front: a safety net for writes made straight to moto (the sandbox sends
/// all of its own and the tool's writes through the front).
pub const MAX_STALE: Duration = Duration::from_secs(10);

/// Options of the DNS server.
#[derive(Debug, Clone, Default)]
pub struct DnsServerOptions {
    /// Ignore private hosted zones altogether (as a public resolver would). By default a
    /// private zone is used when it is the longest match and no public zone has its name.
    pub public_zones_only: bool,
    /// Also serve a Route 53 endpoint in front of moto ([`DnsServer::route53_front`]) and
    /// answer from a copy of moto's records that every write through it invalidates.
    pub route53_front: bool,
    /// Also answer on these addresses (UDP and TCP), e.g. `127.0.0.2:53` as a zone's
    /// "nameserver" inside a network namespace (port 53 needs root).
    pub also_listen: Vec<SocketAddr>,
}

/// moto's data as of the front's write generations (front mode).
#[derive(Default)]
struct Snapshot {
    /// The zone list's generation when the copy was started.
    generation: u64,
    /// When the copy was started.
    taken: Option<Instant>,
    zones: Option<Vec<HostedZoneInfo>>,
    /// Per zone id: its generation when read, and its record sets.
    records: HashMap<String, (u64, Vec<moto::RecordSetInfo>)>,
}

/// A fault the server can be told to inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsFault {
    /// Answer every query with SERVFAIL (question echoed).
    ServFail,
    /// Do not answer at all (the client times out).
    NoAnswer,
    /// A stale secondary: answer normally, but hide every TXT value this server has
    /// known for less than the given time (so a new DNS-01 value shows up that much later
    /// here than on an up-to-date server).
    Lag(Duration),
}

/// The fault in force and when it ends (`None`: until reset).
type FaultState = Option<(DnsFault, Option<Instant>)>;

/// Shared switch for fault injection; clones control the same server.
#[derive(Debug, Clone, Default)]
pub struct DnsFaults {
    state: Arc<Mutex<FaultState>>,
}

impl DnsFaults {
    fn lock(&self) -> MutexGuard<'_, FaultState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Injects `fault` for `duration`, or until [`DnsFaults::reset`] when `None`.
    pub fn set(&self, fault: DnsFault, duration: Option<Duration>) {
        *self.lock() = Some((fault, duration.map(|d| Instant::now() + d)));
    }

    /// SERVFAIL for every query during `duration`.
    pub fn servfail_for(&self, duration: Duration) {
        self.set(DnsFault::ServFail, Some(duration));
    }

    /// SERVFAIL for every query until [`DnsFaults::reset`].
    pub fn servfail_until_reset(&self) {
        self.set(DnsFault::ServFail, None);
    }

    /// No answer to any query during `duration`.
    pub fn drop_for(&self, duration: Duration) {
        self.set(DnsFault::NoAnswer, Some(duration));
    }

    /// No answer to any query until [`DnsFaults::reset`].
    pub fn drop_until_reset(&self) {
        self.set(DnsFault::NoAnswer, None);
    }

    /// Serve new TXT values only `lag` after first seeing them, until [`DnsFaults::reset`].
    pub fn lag(&self, lag: Duration) {
        self.set(DnsFault::Lag(lag), None);
    }

    /// Back to normal answers.
    pub fn reset(&self) {
        *self.lock() = None;
    }

    /// The fault in force now, if any.
    pub fn active(&self) -> Option<DnsFault> {
        let mut state = self.lock();
        match *state {
            Some((_, Some(until))) if Instant::now() >= until => {
                *state = None;
                None
            }
            Some((fault, _)) => Some(fault),
            None => None,
        }
    }
}

/// One question the server received, and what it did with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedQuery {
    /// The name as asked (case kept, trailing dot).
    pub name: String,
    /// The type asked for.
    pub qtype: RecordType,
    /// `"udp"` or `"tcp"`.
    pub transport: &'static str,
    /// The response code sent; `None` when no answer was sent (fault `NoAnswer`).
    pub rcode: Option<ResponseCode>,
}

struct Shared {
    client: aws_sdk_route53::Client,
    /// ListHostedZones, shared by queries arriving together.
    zone_reads: FreshRead<Vec<HostedZoneInfo>>,
    /// ListResourceRecordSets per zone id, shared likewise.
    record_reads: Mutex<HashMap<String, Arc<FreshRead<Vec<moto::RecordSetInfo>>>>>,
    /// Front mode: writes seen by the Route 53 front, and the copy they invalidate.
    writes: Option<Arc<WriteLog>>,
    snapshot: tokio::sync::Mutex<Snapshot>,
    /// Front mode: one read of a zone's records from moto at a time, per zone, taken
    /// without holding `snapshot` (queries for other zones, or for cached ones, go on).
    zone_loads: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    faults: DnsFaults,
    /// When this server first saw each (owner, TXT value) in moto, for [`DnsFault::Lag`].
    first_seen: Mutex<HashMap<(String, String), Instant>>,
    log: Arc<Mutex<Vec<LoggedQuery>>>,
    options: DnsServerOptions,
}

/// A running sandbox DNS server; stopped on drop.
#[derive(Debug)]
pub struct DnsServer {
    addr: SocketAddr,
    front: Option<SocketAddr>,
    faults: DnsFaults,
    log: Arc<Mutex<Vec<LoggedQuery>>>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl DnsServer {
    /// Starts the server on 127.0.0.1 (same free port for UDP and TCP), answering from
    /// the Route 53 API at `route53_endpoint` (e.g. `http://127.0.0.1:PORT`). The endpoint
    /// need not be up yet: it is only contacted when a query arrives.
    pub fn start(route53_endpoint: &str) -> Result<Self> {
        Self::start_with(route53_endpoint, DnsServerOptions::default())
    }

    /// [`DnsServer::start`] with options.
    pub fn start_with(route53_endpoint: &str, options: DnsServerOptions) -> Result<Self> {
        let (udp, tcp) = bind_pair()?;
        let mut extra = Vec::new();
        for a in &options.also_listen {
            let udp = std::net::UdpSocket::bind(a)
                .map_err(|e| SandboxError::io(format!("binding the DNS server on UDP {a}"), e))?;
            let tcp = std::net::TcpListener::bind(a)
                .map_err(|e| SandboxError::io(format!("binding the DNS server on TCP {a}"), e))?;
            for r in [udp.set_nonblocking(true), tcp.set_nonblocking(true)] {
                r.map_err(|e| SandboxError::io(format!("configuring the sockets on {a}"), e))?;
            }
            extra.push((udp, tcp));
        }
        let addr = udp
            .local_addr()
            .map_err(|e| SandboxError::io("reading the DNS server's address", e))?;
        let front = if options.route53_front {
            let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .map_err(|e| SandboxError::io("binding the sandbox Route 53 endpoint", e))?;
            listener
                .set_nonblocking(true)
                .map_err(|e| SandboxError::io("configuring the sandbox Route 53 endpoint", e))?;
            Some(listener)
        } else {
            None
        };
        let front_addr = match &front {
            Some(l) => Some(
                l.local_addr()
                    .map_err(|e| SandboxError::io("reading the Route 53 endpoint's address", e))?,
            ),
            None => None,
        };
        let writes = front.as_ref().map(|_| Arc::new(WriteLog::default()));
        let front = front.map(|l| {
            (
                l,
                route53_endpoint.to_string(),
                writes.clone().unwrap_or_default(),
            )
        });
        let faults = DnsFaults::default();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (shutdown_tx, shutdown_rx) = oneshot::channel();
        let (ready_tx, ready_rx) = mpsc::channel::<std::result::Result<(), String>>();
        let shared = Shared {
            client: moto::route53_client(route53_endpoint),
            zone_reads: FreshRead::default(),
            record_reads: Mutex::new(HashMap::new()),
            writes,
            snapshot: tokio::sync::Mutex::new(Snapshot::default()),
            zone_loads: Mutex::new(HashMap::new()),
            faults: faults.clone(),
            first_seen: Mutex::new(HashMap::new()),
            log: log.clone(),
            options,
        };
        let thread = std::thread::Builder::new()
            .name(format!("sandbox-dns-{}", addr.port()))
            .spawn(move || run_thread((udp, tcp), extra, front, shared, shutdown_rx, ready_tx))
            .map_err(|e| SandboxError::io("spawning the DNS server thread", e))?;
        match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => {}
            Ok(Err(msg)) => return Err(SandboxError::Dns(msg)),
            Err(_) => {
                return Err(SandboxError::Dns(
                    "the DNS server thread did not start".into(),
                ));
            }
        }
        tracing::debug!(%addr, "sandbox DNS server started");
        Ok(Self {
            addr,
            front: front_addr,
            faults,
            log,
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
        })
    }

    /// The Route 53 endpoint in front of moto (`http://127.0.0.1:PORT`), when started with
    /// [`DnsServerOptions::route53_front`]: writes through it are seen at once in DNS.
    pub fn route53_front(&self) -> Option<String> {
        self.front.map(|a| format!("http://{a}"))
    }

    /// The address (127.0.0.1:PORT) it answers on, over UDP and TCP.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The fault-injection switch.
    pub fn faults(&self) -> DnsFaults {
        self.faults.clone()
    }

    /// The questions received so far (oldest first; at most 10,000 are kept).
    pub fn queries(&self) -> Vec<LoggedQuery> {
        self.log
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Forgets the questions received so far.
    pub fn clear_queries(&self) {
        self.log
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clear();
    }

    /// Stops the server and waits for its thread (also done on drop).
    pub fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::warn!("the sandbox DNS server thread panicked");
        }
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Binds UDP on 127.0.0.1:0 and TCP on the same port (retrying if TCP's is taken).
fn bind_pair() -> Result<(std::net::UdpSocket, std::net::TcpListener)> {
    let mut last_err = None;
    for _ in 0..20 {
        let udp = std::net::UdpSocket::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .map_err(|e| SandboxError::io("binding the DNS server's UDP socket", e))?;
        let addr = udp
            .local_addr()
            .map_err(|e| SandboxError::io("reading the DNS server's UDP address", e))?;
        match std::net::TcpListener::bind(addr) {
            Ok(tcp) => {
                udp.set_nonblocking(true)
                    .map_err(|e| SandboxError::io("setting the UDP socket non-blocking", e))?;
                tcp.set_nonblocking(true)
                    .map_err(|e| SandboxError::io("setting the TCP socket non-blocking", e))?;
                return Ok((udp, tcp));
            }
            Err(e) => last_err = Some(e),
        }
    }
    Err(SandboxError::io(
        "binding the DNS server's TCP socket on its UDP port",
        last_err.unwrap_or_else(|| std::io::Error::other("no attempt made")),
    ))
}

/// The front's listener, moto's endpoint and the write log.
type FrontParts = (std::net::TcpListener, String, Arc<WriteLog>);

/// A UDP socket and a TCP listener on the same address.
type SocketPair = (std::net::UdpSocket, std::net::TcpListener);

fn run_thread(
    (udp, tcp): SocketPair,
    extra: Vec<SocketPair>,
    front: Option<FrontParts>,
    shared: Shared,
    shutdown: oneshot::Receiver<()>,
    ready: mpsc::Sender<std::result::Result<(), String>>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(format!("building its tokio runtime: {e}")));
            return;
        }
    };
    runtime.block_on(async move {
        let sockets = UdpSocket::from_std(udp).and_then(|u| Ok((u, TcpListener::from_std(tcp)?)));
        let (udp, tcp) = match sockets {
            Ok(pair) => pair,
            Err(e) => {
                let _ = ready.send(Err(format!("registering its sockets: {e}")));
                return;
            }
        };
        if let Some((listener, upstream, writes)) = front {
            match TcpListener::from_std(listener) {
                Ok(l) => {
                    tokio::spawn(super::route53_front::serve(l, upstream, writes));
                }
                Err(e) => {
                    let _ = ready.send(Err(format!("registering the Route 53 endpoint: {e}")));
                    return;
                }
            }
        }
        let shared = Arc::new(shared);
        // The extra addresses' loops end with the runtime (their senders live until then).
        let mut keep = Vec::new();
        for (u, t) in extra {
            match UdpSocket::from_std(u).and_then(|u| Ok((u, TcpListener::from_std(t)?))) {
                Ok((u, t)) => {
                    let (tx, rx) = oneshot::channel::<()>();
                    keep.push(tx);
                    tokio::spawn(serve(u, t, shared.clone(), rx));
                }
                Err(e) => {
                    let _ = ready.send(Err(format!("registering its extra sockets: {e}")));
                    return;
                }
            }
        }
        let _ = ready.send(Ok(()));
        serve(udp, tcp, shared, shutdown).await;
        drop(keep);
    });
    // Dropping the runtime cancels the queries still being answered.
}

async fn serve(
    udp: UdpSocket,
    tcp: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: oneshot::Receiver<()>,
) {
    let udp = Arc::new(udp);
    let mut buf = vec![0u8; 65_535];
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            received = udp.recv_from(&mut buf) => match received {
                Ok((len, peer)) => {
                    let packet = buf[..len].to_vec();
                    let (udp, shared) = (udp.clone(), shared.clone());
                    tokio::spawn(async move {
                        if let Some(answer) = handle_packet(&shared, &packet, "udp").await
                            && let Err(e) = udp.send_to(&answer, peer).await
                        {
                            tracing::debug!(%peer, error = %e, "sending a DNS answer failed");
                        }
                    });
                }
                Err(e) => tracing::debug!(error = %e, "DNS UDP receive failed"),
            },
            accepted = tcp.accept() => match accepted {
                Ok((stream, _)) => {
                    let shared = shared.clone();
                    tokio::spawn(async move { serve_tcp(stream, &shared).await });
                }
                Err(e) => {
                    tracing::debug!(error = %e, "DNS TCP accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
        }
    }
}

async fn serve_tcp(mut stream: TcpStream, shared: &Shared) {
    loop {
        let len = match tokio::time::timeout(TCP_IDLE_TIMEOUT, stream.read_u16()).await {
            Ok(Ok(len)) => usize::from(len),
            _ => return,
        };
        let mut packet = vec![0u8; len];
        if stream.read_exact(&mut packet).await.is_err() {
            return;
        }
        if let Some(answer) = handle_packet(shared, &packet, "tcp").await {
            let Ok(answer_len) = u16::try_from(answer.len()) else {
                return;
            };
            let mut framed = Vec::with_capacity(answer.len() + 2);
            framed.extend_from_slice(&answer_len.to_be_bytes());
            framed.extend_from_slice(&answer);
            if stream.write_all(&framed).await.is_err() {
                return;
            }
        }
    }
}

/// Decodes a query and encodes the answer (`None`: send nothing).
async fn handle_packet(shared: &Shared, packet: &[u8], transport: &'static str) -> Option<Vec<u8>> {
    let request = match Message::from_vec(packet) {
        Ok(message) => message,
        Err(e) => {
            tracing::debug!(error = %e, "undecodable DNS message");
            // FORMERR if at least the id can be read.
            let id = u16::from_be_bytes([*packet.first()?, *packet.get(1)?]);
            return Message::error_msg(id, OpCode::Query, ResponseCode::FormErr)
                .to_vec()
                .ok();
        }
    };
    if request.message_type != MessageType::Query {
        return None;
    }
    let response = respond(shared, &request, transport).await?;
    let limit = match transport {
        "udp" => Some(match &request.edns {
            Some(edns) => usize::from(edns.max_payload().clamp(512, EDNS_PAYLOAD)),
            None => 512,
        }),
        _ => None,
    };
    encode(&response, limit)
}

fn encode(response: &Message, limit: Option<usize>) -> Option<Vec<u8>> {
    let bytes = match response.to_vec() {
        Ok(bytes) => bytes,
        Err(e) => {
            tracing::warn!(error = %e, "encoding a DNS answer failed; SERVFAIL");
            let mut failure =
                Message::error_msg(response.id, response.op_code, ResponseCode::ServFail);
            failure.add_queries(response.queries.iter().cloned());
            return failure.to_vec().ok();
        }
    };
    match limit {
        Some(limit) if bytes.len() > limit => response.truncate().to_vec().ok(),
        _ => Some(bytes),
    }
}

/// Builds the answer to one request (`None`: do not answer).
async fn respond(shared: &Shared, request: &Message, transport: &'static str) -> Option<Message> {
    let asked = Instant::now();
    let mut response = Message::response(request.id, request.op_code);
    response.metadata.recursion_desired = request.recursion_desired;
    response.add_queries(request.queries.iter().cloned());
    if request.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_PAYLOAD);
        response.set_edns(edns);
    }
    let fault = shared.faults.active();
    let rcode = match fault {
        Some(DnsFault::NoAnswer) => None,
        Some(DnsFault::ServFail) => Some(ResponseCode::ServFail),
        _ if request.op_code != OpCode::Query => Some(ResponseCode::NotImp),
        _ if request.queries.len() != 1 => Some(ResponseCode::FormErr),
        None | Some(DnsFault::Lag(_)) => {
            let query = &request.queries[0];
            let answer = if query.query_class() == DNSClass::IN {
                resolve(shared, query, asked).await
            } else {
                Ok(Answer::refused())
            };
            match answer {
                Ok(answer) => {
                    response.metadata.authoritative = answer.authoritative;
                    response.add_answers(answer.answers);
                    response.add_authorities(answer.authorities);
                    Some(answer.rcode)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "DNS answer from the Route 53 emulator failed; SERVFAIL");
                    Some(ResponseCode::ServFail)
                }
            }
        }
    };
    for query in &request.queries {
        log_query(shared, query, transport, rcode);
    }
    let rcode = rcode?;
    response.metadata.response_code = rcode;
    Some(response)
}

fn log_query(shared: &Shared, query: &Query, transport: &'static str, rcode: Option<ResponseCode>) {
    let mut log = shared
        .log
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if log.len() >= MAX_LOGGED_QUERIES {
        log.remove(0);
    }
    log.push(LoggedQuery {
        name: query.name().to_string(),
        qtype: query.query_type(),
        transport,
        rcode,
    });
}

struct Answer {
    rcode: ResponseCode,
    authoritative: bool,
    answers: Vec<Record>,
    authorities: Vec<Record>,
}

impl Answer {
    fn refused() -> Self {
        Self {
            rcode: ResponseCode::Refused,
            authoritative: false,
            answers: Vec::new(),
            authorities: Vec::new(),
        }
    }
}

/// A record set from moto with its owner parsed.
#[derive(Debug)]
struct Rrset {
    owner: Name,
    rtype: RecordType,
    ttl: u32,
    values: Vec<String>,
}

struct Zone {
    name: Name,
    info: HostedZoneInfo,
}

/// One read of moto shared by the queries that arrive while it is under way or queued:
/// a caller gets the result of a read that *started after it asked*, so it never sees
/// data older than its question (a write acknowledged before the query is always seen).
/// At most one read runs at a time; everyone who asked during it shares the next one.
struct FreshRead<T> {
    last: tokio::sync::Mutex<Option<(Instant, T)>>,
}

impl<T> Default for FreshRead<T> {
    fn default() -> Self {
        Self {
            last: tokio::sync::Mutex::new(None),
        }
    }
}

impl<T: Clone> FreshRead<T> {
    async fn get<F, Fut>(&self, asked: Instant, read: F) -> Result<T>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let mut last = self.last.lock().await;
        if let Some((started, value)) = last.as_ref()
            && *started >= asked
        {
            return Ok(value.clone());
        }
        let started = Instant::now();
        let value = read().await?;
        *last = Some((started, value.clone()));
        Ok(value)
    }
}

/// Front mode: keeps `snap`'s zone list current (read after the last write that was not a
/// record change, and at most [`MAX_STALE`] old); the caller holds the lock, so concurrent
/// queries share one refresh. Records are read per zone, again when that zone was written.
async fn fresh_snapshot(
    snap: &mut Snapshot,
    writes: &WriteLog,
    client: &aws_sdk_route53::Client,
) -> Result<()> {
    let generation = writes.get("");
    let current = snap.zones.is_some()
        && snap.generation == generation
        && snap.taken.is_some_and(|t| t.elapsed() < MAX_STALE);
    if current {
        return Ok(());
    }
    let taken = Instant::now();
    let zones = moto::list_zones(client).await?;
    *snap = Snapshot {
        generation,
        taken: Some(taken),
        zones: Some(zones),
        records: HashMap::new(),
    };
    Ok(())
}

/// The moto data one query needs, read once per query.
struct Lookup<'a> {
    shared: &'a Shared,
    client: &'a aws_sdk_route53::Client,
    asked: Instant,
    zones: Vec<Zone>,
    records: HashMap<String, Arc<Vec<Rrset>>>,
}

impl<'a> Lookup<'a> {
    async fn new(shared: &'a Shared, asked: Instant) -> Result<Self> {
        let zones = match &shared.writes {
            Some(writes) => {
                let mut snap = shared.snapshot.lock().await;
                fresh_snapshot(&mut snap, writes, &shared.client).await?;
                snap.zones.clone().unwrap_or_default()
            }
            None => {
                shared
                    .zone_reads
                    .get(asked, || moto::list_zones(&shared.client))
                    .await?
            }
        };
        let zones = zones
            .into_iter()
            .filter(|z| !(shared.options.public_zones_only && z.private))
            .filter_map(|info| match parse_fqdn(&info.name) {
                Some(name) => Some(Zone { name, info }),
                None => {
                    tracing::warn!(zone = %info.name, "unparsable hosted zone name; ignored");
                    None
                }
            })
            .collect();
        Ok(Self {
            shared,
            client: &shared.client,
            asked,
            zones,
            records: HashMap::new(),
        })
    }

    /// The longest zone containing `name`; among zones of one name the first public one.
    fn zone_for(&self, name: &Name) -> Option<&Zone> {
        let mut best: Option<&Zone> = None;
        for zone in self.zones.iter().filter(|z| z.name.zone_of(name)) {
            let better = match best {
                None => true,
                Some(b) => {
                    zone.name.num_labels() > b.name.num_labels()
                        || (zone.name.num_labels() == b.name.num_labels()
                            && b.info.private
                            && !zone.info.private)
                }
            };
            if better {
                best = Some(zone);
            }
        }
        best
    }

    async fn records(&mut self, zone_id: &str) -> Result<Arc<Vec<Rrset>>> {
        if let Some(sets) = self.records.get(zone_id) {
            return Ok(sets.clone());
        }
        let client = self.client;
        let raw = match &self.shared.writes {
            Some(writes) => {
                let cached = |snap: &Snapshot| match snap.records.get(zone_id) {
                    Some((read_at, sets)) if *read_at == writes.get(zone_id) => Some(sets.clone()),
                    _ => None,
                };
                let hit = {
                    let mut snap = self.shared.snapshot.lock().await;
                    fresh_snapshot(&mut snap, writes, client).await?;
                    cached(&snap)
                };
                match hit {
                    Some(sets) => sets,
                    None => {
                        let load = self
                            .shared
                            .zone_loads
                            .lock()
                            .unwrap_or_else(|poisoned| poisoned.into_inner())
                            .entry(zone_id.to_owned())
                            .or_default()
                            .clone();
                        let _one_read = load.lock().await;
                        // Whoever held the zone's turn may have read it meanwhile. (The
                        // guard must not live through the match: the miss locks again.)
                        let again = cached(&*self.shared.snapshot.lock().await);
                        match again {
                            Some(sets) => sets,
                            None => {
                                // The generation before the read: a write during it makes
                                // the next query read again.
                                let generation = writes.get(zone_id);
                                let sets = moto::list_records(client, zone_id).await?;
                                self.shared
                                    .snapshot
                                    .lock()
                                    .await
                                    .records
                                    .insert(zone_id.to_owned(), (generation, sets.clone()));
                                sets
                            }
                        }
                    }
                }
            }
            None => {
                let read = self
                    .shared
                    .record_reads
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .entry(zone_id.to_owned())
                    .or_default()
                    .clone();
                read.get(self.asked, || moto::list_records(client, zone_id))
                    .await?
            }
        };
        let sets: Vec<Rrset> = raw
            .into_iter()
            .filter_map(|set| {
                let owner = parse_fqdn(&set.name)?;
                let rtype = RecordType::from_str(&set.rtype).unwrap_or(RecordType::Unknown(0));
                let ttl = set.ttl.and_then(|t| u32::try_from(t).ok()).unwrap_or(300);
                Some(Rrset {
                    owner,
                    rtype,
                    ttl,
                    values: set.values,
                })
            })
            .collect();
        let sets = Arc::new(self.hide_new_txt(sets));
        self.records.insert(zone_id.to_owned(), sets.clone());
        Ok(sets)
    }
}

impl Lookup<'_> {
    /// Notes when each TXT value was first seen and, under [`DnsFault::Lag`], drops the
    /// values seen more recently than the lag (a set left empty is dropped).
    fn hide_new_txt(&self, sets: Vec<Rrset>) -> Vec<Rrset> {
        let now = Instant::now();
        let lag = match self.shared.faults.active() {
            Some(DnsFault::Lag(lag)) => Some(lag),
            _ => None,
        };
        let mut seen = self
            .shared
            .first_seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        sets.into_iter()
            .filter_map(|mut set| {
                if set.rtype != RecordType::TXT {
                    return Some(set);
                }
                let owner = set.owner.to_string();
                set.values.retain(|v| {
                    let first = *seen.entry((owner.clone(), v.clone())).or_insert(now);
                    lag.is_none_or(|lag| now.duration_since(first) >= lag)
                });
                (!set.values.is_empty()).then_some(set)
            })
            .collect()
    }
}

async fn resolve(shared: &Shared, query: &Query, asked: Instant) -> Result<Answer> {
    let qtype = query.query_type();
    let mut lookup = Lookup::new(shared, asked).await?;
    if lookup.zone_for(query.name()).is_none() {
        return Ok(Answer::refused());
    }
    let mut answer = Answer {
        rcode: ResponseCode::NoError,
        authoritative: true,
        answers: Vec::new(),
        authorities: Vec::new(),
    };
    let mut current = query.name().clone();
    for hop in 0..=MAX_CNAME_HOPS {
        let Some(zone) = lookup.zone_for(&current) else {
            // The chain leaves the zones moto holds: answer what we have.
            return Ok(answer);
        };
        let (zone_name, zone_id) = (zone.name.clone(), zone.info.id.clone());
        let sets = lookup.records(&zone_id).await?;
        let at_name: Vec<&Rrset> = sets.iter().filter(|s| s.owner == current).collect();

        if qtype != RecordType::CNAME
            && let Some(cname) = at_name.iter().find(|s| s.rtype == RecordType::CNAME)
            && let Some(target) = cname.values.first().and_then(|v| parse_fqdn(v))
        {
            answer.answers.push(Record::from_rdata(
                current.clone(),
                cname.ttl,
                RData::CNAME(CNAME(target.clone())),
            ));
            if hop == MAX_CNAME_HOPS {
                break;
            }
            current = target;
            continue;
        }

        let found = records_at(&current, &at_name, qtype, &zone_name, &sets);
        if !found.is_empty() {
            answer.answers.extend(found);
            return Ok(answer);
        }
        // Negative answer: NODATA if the name exists (or is an empty non-terminal).
        let exists = !at_name.is_empty()
            || current == zone_name
            || sets
                .iter()
                .any(|s| current.zone_of(&s.owner) && s.owner != current);
        if !exists {
            answer.rcode = ResponseCode::NXDomain;
        }
        let mut soa = synthesize_soa(&zone_name, &sets);
        soa.ttl = soa.ttl.min(NEGATIVE_TTL);
        answer.authorities.push(soa);
        return Ok(answer);
    }
    tracing::debug!(name = %query.name(), "CNAME chain longer than {MAX_CNAME_HOPS} hops; cut");
    Ok(answer)
}

/// The records of type `qtype` (all served types for ANY) at `owner`.
fn records_at(
    owner: &Name,
    at_name: &[&Rrset],
    qtype: RecordType,
    zone_name: &Name,
    sets: &[Rrset],
) -> Vec<Record> {
    let mut out = Vec::new();
    let wanted = |t: RecordType| qtype == RecordType::ANY || qtype == t;
    for set in at_name {
        if !wanted(set.rtype) {
            continue;
        }
        if set.rtype == RecordType::SOA {
            // moto's SOA value is a stringified Python dict: never serve it.
            if owner == zone_name {
                out.push(synthesize_soa(zone_name, sets));
            }
            continue;
        }
        for value in &set.values {
            match parse_rdata(set.rtype, value) {
                Some(rdata) => out.push(Record::from_rdata(owner.clone(), set.ttl, rdata)),
                None => tracing::debug!(%owner, rtype = %set.rtype, value, "value not served"),
            }
        }
    }
    out
}

/// Parses a Route 53 value of a served type into record data.
fn parse_rdata(rtype: RecordType, value: &str) -> Option<RData> {
    let value = value.trim();
    match rtype {
        RecordType::A => value.parse().ok().map(|ip| RData::A(A(ip))),
        RecordType::AAAA => value.parse().ok().map(|ip| RData::AAAA(AAAA(ip))),
        RecordType::CNAME => parse_fqdn(value).map(|n| RData::CNAME(CNAME(n))),
        RecordType::NS => parse_fqdn(value).map(|n| RData::NS(NS(n))),
        RecordType::MX => {
            let (preference, exchange) = value.split_once(char::is_whitespace)?;
            Some(RData::MX(MX::new(
                preference.parse().ok()?,
                parse_fqdn(exchange)?,
            )))
        }
        RecordType::TXT => {
            let strings = parse_txt_value(value);
            Some(RData::TXT(TXT::from_bytes(
                strings.iter().map(Vec::as_slice).collect(),
            )))
        }
        _ => None,
    }
}

/// Parses a name as Route 53 returns it (`\ooo` octal escapes, optional trailing dot)
/// into a lowercased absolute name.
pub fn parse_fqdn(text: &str) -> Option<Name> {
    let text = text.trim();
    let decoded = decode_octal_escapes(text);
    let mut name = Name::from_ascii(&decoded)
        .or_else(|_| Name::from_utf8(&decoded))
        .ok()?;
    name.set_fqdn(true);
    Some(name.to_lowercase())
}

/// Route 53 writes `*` and other special characters of names as `\ooo` (octal).
fn decode_octal_escapes(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && let Some(byte) = octal_at(bytes, i + 1)
            && byte != b'.'
            && byte != b'\\'
        {
            out.push(byte);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn octal_at(bytes: &[u8], at: usize) -> Option<u8> {
    let digits = bytes.get(at..at + 3)?;
    if !digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
        return None;
    }
    let value = digits
        .iter()
        .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
    u8::try_from(value).ok()
}

/// Parses a Route 53 TXT value into its character-strings.
///
/// Route 53 stores TXT values quoted: `"token"`, or `"part1" "part2"`, with `\"`, `\\`
/// and `\ooo` (octal) escapes. moto also accepts unquoted values: those (and values whose
/// quotes don't close) are one string, verbatim. Strings longer than 255 bytes are split.
pub fn parse_txt_value(value: &str) -> Vec<Vec<u8>> {
    let trimmed = value.trim();
    let strings = if trimmed.starts_with('"') {
        parse_quoted_strings(trimmed).unwrap_or_else(|| vec![trimmed.as_bytes().to_vec()])
    } else {
        vec![trimmed.as_bytes().to_vec()]
    };
    let mut out = Vec::with_capacity(strings.len());
    for s in strings {
        if s.len() <= 255 {
            out.push(s);
        } else {
            out.extend(s.chunks(255).map(<[u8]>::to_vec));
        }
    }
    out
}

fn parse_quoted_strings(text: &str) -> Option<Vec<Vec<u8>>> {
    let bytes = text.as_bytes();
    let mut strings = Vec::new();
    let mut i = 0;
    loop {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= bytes.len() {
            return Some(strings);
        }
        let quoted = bytes[i] == b'"';
        if quoted {
            i += 1;
        }
        let mut current = Vec::new();
        loop {
            match bytes.get(i) {
                None if quoted => return None,
                None => break,
                Some(b'"') if quoted => {
                    i += 1;
                    break;
                }
                Some(c) if !quoted && c.is_ascii_whitespace() => break,
                Some(b'\\') => {
                    if let Some(byte) = octal_at(bytes, i + 1) {
                        current.push(byte);
                        i += 4;
                    } else {
                        current.push(*bytes.get(i + 1)?);
                        i += 2;
                    }
                }
                Some(c) => {
                    current.push(*c);
                    i += 1;
                }
            }
        }
        strings.push(current);
    }
}

/// A valid SOA for a zone: mname = the zone's first NS (else `ns.<zone>`), rname =
/// `hostmaster.<zone>`, serial = a hash of the zone's records (changes when they do).
fn synthesize_soa(zone_name: &Name, sets: &[Rrset]) -> Record {
    let first_ns = sets
        .iter()
        .find(|s| s.rtype == RecordType::NS && s.owner == *zone_name)
        .and_then(|s| s.values.first())
        .and_then(|v| parse_fqdn(v));
    let fallback = |label: &str| {
        Name::from_ascii(label)
            .and_then(|n| n.append_domain(zone_name))
            .unwrap_or_else(|_| zone_name.clone())
    };
    let mname = first_ns.unwrap_or_else(|| fallback("ns"));
    let rname = fallback("hostmaster");
    let mut hasher = DefaultHasher::new();
    for set in sets.iter().filter(|s| s.rtype != RecordType::SOA) {
        set.owner.to_ascii().hash(&mut hasher);
        u16::from(set.rtype).hash(&mut hasher);
        set.values.hash(&mut hasher);
    }
    let serial = (hasher.finish() as u32).max(1);
    let ttl = sets
        .iter()
        .find(|s| s.rtype == RecordType::SOA && s.owner == *zone_name)
        .map_or(900, |s| s.ttl);
    let soa = SOA::new(mname, rname, serial, 7200, 900, 1_209_600, NEGATIVE_TTL);
    Record::from_rdata(zone_name.clone(), ttl, RData::SOA(soa))
}

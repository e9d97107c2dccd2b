//! DNS lookups: ask one nameserver one question and see its raw answer (rcode, AA bit,
//! records), and find the authoritative nameservers of a zone.
//!
//! Owns: the `DnsLookup` seam and its wire adapter (hickory-proto messages over UDP, TCP on
//! truncation). Does not own: waiting policies (`propagation`) or record decisions (`plan`).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use async_trait::async_trait;
use hickory_proto::op::{Edns, Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType as WireType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use super::strategy::{Propagation, Strategy};
use super::{DnsError, RecordSet, RecordType};

/// A nameserver to ask: a display name and an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nameserver {
    /// Host name (or the address when configured by address).
    pub name: String,
    /// Where to send queries.
    pub addr: SocketAddr,
}

impl std::fmt::Display for Nameserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.name == self.addr.to_string() {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{} ({})", self.name, self.addr)
        }
    }
}

/// The outcome class of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rcode {
    /// NOERROR.
    NoError,
    /// The name does not exist.
    NxDomain,
    /// SERVFAIL.
    ServFail,
    /// REFUSED (the server does not serve this zone).
    Refused,
    /// Anything else.
    Other(u16),
}

/// One record of an answer section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerRecord {
    /// Owner name, lower case, no trailing dot.
    pub name: String,
    /// Type (records of types we don't model are dropped).
    pub rtype: RecordType,
    /// TTL.
    pub ttl: u32,
    /// TXT: the character-strings joined; names: without trailing dot; addresses as text.
    pub value: String,
}

/// A nameserver's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Response code.
    pub rcode: Rcode,
    /// Whether the server claimed authority.
    pub authoritative: bool,
    /// The answer section.
    pub records: Vec<AnswerRecord>,
    /// For a negative answer (NXDOMAIN, or NOERROR without records) carrying the zone's SOA:
    /// how long a resolver may cache it (the smaller of the SOA's TTL and its minimum).
    pub negative_ttl: Option<u32>,
}

impl Answer {
    /// The record sets owned by `name` in the answer (grouped by type).
    pub fn sets_at(&self, name: &str) -> Vec<RecordSet> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let mut sets: Vec<RecordSet> = Vec::new();
        for r in self.records.iter().filter(|r| r.name == name) {
            match sets.iter_mut().find(|s| s.rtype == r.rtype) {
                Some(s) => {
                    if !s.values.contains(&r.value) {
                        s.values.push(r.value.clone());
                    }
                }
                None => sets.push(RecordSet {
                    name: name.clone(),
                    rtype: r.rtype,
                    ttl: r.ttl,
                    values: vec![r.value.clone()],
                }),
            }
        }
        sets
    }

    /// The CNAME target at `name`, if the answer holds one.
    pub fn cname_at(&self, name: &str) -> Option<String> {
        self.sets_at(name)
            .into_iter()
            .find(|s| s.rtype == RecordType::Cname)
            .and_then(|s| s.values.into_iter().next())
    }

    /// The values of type `rtype` at `name`.
    pub fn values_at(&self, name: &str, rtype: RecordType) -> Vec<String> {
        self.sets_at(name)
            .into_iter()
            .find(|s| s.rtype == rtype)
            .map(|s| s.values)
            .unwrap_or_default()
    }

    /// A short human description for evidence in errors.
    pub fn describe(&self) -> String {
        match self.rcode {
            Rcode::NoError if self.records.is_empty() => "NOERROR, no records".into(),
            Rcode::NoError => {
                let vals: Vec<String> = self
                    .records
                    .iter()
                    .map(|r| format!("{} {}", r.rtype, r.value))
                    .collect();
                vals.join(", ")
            }
            Rcode::NxDomain => "NXDOMAIN".into(),
            Rcode::ServFail => "SERVFAIL".into(),
            Rcode::Refused => "REFUSED".into(),
            Rcode::Other(c) => format!("rcode {c}"),
        }
    }
}

/// How long [`DnsLookup::answers_on_53`] waits for a nameserver (UDP and TCP at once).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Asks nameservers questions.
#[async_trait]
pub trait DnsLookup: Send + Sync {
    /// `dns.propagation` and `dns.propagation_delay` (default: authoritative, no delay).
    fn strategy(&self) -> Strategy {
        Strategy {
            propagation: Propagation::Authoritative,
            delay: Duration::ZERO,
        }
    }
    /// Asks the recursive resolver (`dns.resolver`, else the system's) for `name`/`rtype`.
    async fn recursive_query(&self, name: &str, rtype: RecordType) -> Result<Answer, DnsError> {
        Err(DnsError::Lookup {
            name: name.to_string(),
            rtype,
            server: "the recursive resolver".into(),
            message: "this lookup has no resolver".into(),
            failure: QueryFailure::Other,
        })
    }
    /// Whether `server` answers DNS on its port at all (UDP or TCP) within
    /// [`PROBE_TIMEOUT`]; `Err` says what happened instead.
    async fn answers_on_53(&self, server: &Nameserver, zone: &str) -> Result<(), String> {
        self.query(server, zone, RecordType::Soa)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
    /// The nameservers to ask about records in `zone` (its apex, e.g. `example.com`).
    async fn nameservers(&self, zone: &str) -> Result<Vec<Nameserver>, DnsError>;
    /// Asks `server` for `name`/`rtype` without recursion.
    async fn query(
        &self,
        server: &Nameserver,
        name: &str,
        rtype: RecordType,
    ) -> Result<Answer, DnsError>;
}

/// What [`probe_53`] saw on each transport of one nameserver address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe53 {
    /// A SOA query over UDP was answered (any rcode); `Err` says what happened instead.
    pub udp: Result<(), String>,
    /// A TCP connection was accepted; `Err` says what happened instead.
    pub tcp: Result<(), String>,
}

/// Probes `addr` on UDP (a SOA query for `zone`) and TCP (a connection) at once, each
/// within [`PROBE_TIMEOUT`]: whether this machine can talk DNS to it directly at all.
pub async fn probe_53(addr: SocketAddr, zone: &str) -> Probe53 {
    let udp = async {
        exchange_classified(addr, zone, RecordType::Soa, false, PROBE_TIMEOUT)
            .await
            .map(|_| ())
            .map_err(|e| e.message)
    };
    let tcp = async {
        match tokio::time::timeout(PROBE_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!(
                "no connection within {} s",
                PROBE_TIMEOUT.as_secs()
            )),
        }
    };
    let (udp, tcp) = tokio::join!(udp, tcp);
    Probe53 { udp, tcp }
}

/// Real lookups over the network.
#[derive(Debug, Clone)]
pub struct WireLookup {
    /// Configured nameservers that replace discovery (the sandbox, split-horizon setups).
    pub nameservers: Vec<SocketAddr>,
    /// Recursive resolver for discovery; `None` = the system's (`/etc/resolv.conf`).
    pub resolver: Option<SocketAddr>,
    /// Per-query timeout.
    pub timeout: Duration,
    /// `dns.propagation` and `dns.propagation_delay`.
    pub strategy: Strategy,
}

impl WireLookup {
    /// Lookups that ask `nameservers` (if any) instead of discovering them.
    pub fn new(nameservers: Vec<SocketAddr>, resolver: Option<SocketAddr>) -> Self {
        Self {
            nameservers,
            resolver,
            timeout: Duration::from_secs(3),
            strategy: Strategy::default(),
        }
    }

    /// The same lookups with `dns.propagation` and `dns.propagation_delay` set.
    pub fn with_strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// The recursive resolvers asked: `dns.resolver`, else the system's (`/etc/resolv.conf`).
    pub fn resolvers(&self) -> Result<Vec<SocketAddr>, String> {
        if let Some(r) = self.resolver {
            return Ok(vec![r]);
        }
        let (conf, _) = hickory_resolver::system_conf::read_system_conf()
            .map_err(|e| format!("cannot read the system resolver configuration: {e}"))?;
        let addrs: Vec<SocketAddr> = conf
            .name_servers()
            .iter()
            .map(|ns| SocketAddr::new(ns.ip, 53))
            .collect();
        if addrs.is_empty() {
            return Err("the system has no resolver configured".into());
        }
        Ok(addrs)
    }

    async fn recursive(&self, name: &str, rtype: RecordType) -> Result<Answer, String> {
        let mut last = String::from("no resolver answered");
        for r in self.resolvers()? {
            match exchange(r, name, rtype, true, self.timeout).await {
                Ok(a) => return Ok(a),
                Err(e) => last = format!("{r}: {e}"),
            }
        }
        Err(last)
    }
}

#[async_trait]
impl DnsLookup for WireLookup {
    fn strategy(&self) -> Strategy {
        self.strategy
    }

    async fn recursive_query(&self, name: &str, rtype: RecordType) -> Result<Answer, DnsError> {
        self.recursive(name, rtype)
            .await
            .map_err(|message| DnsError::Lookup {
                name: name.to_string(),
                rtype,
                server: match self.resolver {
                    Some(r) => format!("the resolver {r}"),
                    None => "the system's resolver".into(),
                },
                message,
                failure: QueryFailure::Other,
            })
    }

    async fn answers_on_53(&self, server: &Nameserver, zone: &str) -> Result<(), String> {
        // Either answering is enough; both failing is the evidence.
        match probe_53(server.addr, zone).await {
            Probe53 { udp: Ok(()), .. } | Probe53 { tcp: Ok(()), .. } => Ok(()),
            Probe53 {
                udp: Err(u),
                tcp: Err(t),
            } => Err(format!("UDP: {u}; TCP: {t}")),
        }
    }

    async fn nameservers(&self, zone: &str) -> Result<Vec<Nameserver>, DnsError> {
        if !self.nameservers.is_empty() {
            return Ok(self
                .nameservers
                .iter()
                .map(|a| Nameserver {
                    name: a.to_string(),
                    addr: *a,
                })
                .collect());
        }
        let fail = |message: String| DnsError::Nameservers {
            zone: zone.to_string(),
            message,
        };
        let ns = self.recursive(zone, RecordType::Ns).await.map_err(fail)?;
        let hosts = ns.values_at(zone, RecordType::Ns);
        if hosts.is_empty() {
            return Err(fail(format!(
                "the resolver answered {} for its NS records",
                ns.describe()
            )));
        }
        let mut out = Vec::new();
        for host in hosts {
            for t in [RecordType::A, RecordType::Aaaa] {
                if let Ok(a) = self.recursive(&host, t).await {
                    for ip in a.values_at(&host, t) {
                        if let Ok(ip) = ip.parse::<IpAddr>() {
                            out.push(Nameserver {
                                name: host.clone(),
                                addr: SocketAddr::new(ip, 53),
                            });
                        }
                    }
                }
            }
        }
        if out.is_empty() {
            return Err(fail(
                "none of its NS host names resolved to an address".into(),
            ));
        }
        Ok(out)
    }

    async fn query(
        &self,
        server: &Nameserver,
        name: &str,
        rtype: RecordType,
    ) -> Result<Answer, DnsError> {
        let asked = std::time::Instant::now();
        let answer = exchange_classified(server.addr, name, rtype, false, self.timeout).await;
        tracing::trace!(%name, ?rtype, server = %server, took = ?asked.elapsed(), ok = answer.is_ok(), "DNS query");
        answer.map_err(|e| DnsError::Lookup {
            name: name.to_string(),
            rtype,
            server: server.to_string(),
            message: e.message,
            failure: e.failure,
        })
    }
}

fn wire_type(t: RecordType) -> WireType {
    match t {
        RecordType::Txt => WireType::TXT,
        RecordType::Cname => WireType::CNAME,
        RecordType::A => WireType::A,
        RecordType::Aaaa => WireType::AAAA,
        RecordType::Ns => WireType::NS,
        RecordType::Soa => WireType::SOA,
    }
}

fn plain_name(n: &Name) -> String {
    n.to_ascii().trim_end_matches('.').to_ascii_lowercase()
}

/// The UDP payload size advertised with EDNS0 (and the receive buffer).
pub const EDNS_PAYLOAD: u16 = 4096;

/// Why a query got no usable answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryFailure {
    /// This machine has no route to the address (network or host unreachable, address
    /// family not available, e.g. IPv6 on an IPv4-only runner): asking again cannot help.
    Unroutable,
    /// Nothing came back in time (a silent firewall drops packets to port 53).
    NoAnswer,
    /// The address refused the query (ICMP port unreachable, TCP reset).
    Refused,
    /// Anything else (an undecodable answer, a bad name).
    Other,
}

/// A query that failed, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError {
    /// The class of failure.
    pub failure: QueryFailure,
    /// Human text, e.g. `Network is unreachable (os error 101)`.
    pub message: String,
}

impl QueryError {
    fn other(message: impl Into<String>) -> Self {
        Self {
            failure: QueryFailure::Other,
            message: message.into(),
        }
    }

    fn io(e: std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        let failure = match e.kind() {
            K::NetworkUnreachable | K::HostUnreachable | K::AddrNotAvailable => {
                QueryFailure::Unroutable
            }
            K::ConnectionRefused | K::ConnectionReset => QueryFailure::Refused,
            _ => QueryFailure::Other,
        };
        Self {
            failure,
            message: e.to_string(),
        }
    }

    fn timeout(message: String) -> Self {
        Self {
            failure: QueryFailure::NoAnswer,
            message,
        }
    }
}

/// Sends one question to `server` and decodes the answer (UDP, then TCP if truncated).
pub async fn exchange(
    server: SocketAddr,
    name: &str,
    rtype: RecordType,
    recursion: bool,
    timeout: Duration,
) -> Result<Answer, String> {
    exchange_classified(server, name, rtype, recursion, timeout)
        .await
        .map_err(|e| e.message)
}

/// [`exchange`], saying why a query failed.
pub async fn exchange_classified(
    server: SocketAddr,
    name: &str,
    rtype: RecordType,
    recursion: bool,
    timeout: Duration,
) -> Result<Answer, QueryError> {
    let qname = Name::from_ascii(format!("{}.", name.trim_end_matches('.')))
        .map_err(|e| QueryError::other(format!("bad name: {e}")))?;
    let mut msg = Message::query();
    msg.add_query(Query::query(qname, wire_type(rtype)));
    msg.metadata.recursion_desired = recursion;
    // EDNS0: answers up to 4096 bytes over UDP (long TXT sets); TCP still on truncation.
    let mut edns = Edns::new();
    edns.set_max_payload(EDNS_PAYLOAD);
    msg.set_edns(edns);
    let id = msg.metadata.id;
    let bytes = msg
        .to_vec()
        .map_err(|e| QueryError::other(format!("cannot encode the query: {e}")))?;

    let bind: SocketAddr = if server.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let bind = if server.ip().is_loopback() {
        SocketAddr::new(server.ip(), 0)
    } else {
        bind
    };
    let reply = tokio::time::timeout(timeout, async {
        let sock = UdpSocket::bind(bind).await.map_err(QueryError::io)?;
        sock.connect(server).await.map_err(QueryError::io)?;
        sock.send(&bytes).await.map_err(QueryError::io)?;
        let mut buf = vec![0u8; usize::from(EDNS_PAYLOAD)];
        loop {
            let n = sock.recv(&mut buf).await.map_err(QueryError::io)?;
            if let Ok(m) = Message::from_vec(&buf[..n])
                && m.metadata.id == id
            {
                return Ok::<Message, QueryError>(m);
            }
        }
    })
    .await
    .map_err(|_| QueryError::timeout(format!("no answer within {} s", timeout.as_secs())))??;

    let reply = if reply.metadata.truncation {
        tokio::time::timeout(timeout, tcp_exchange(server, &bytes))
            .await
            .map_err(|_| {
                QueryError::timeout(format!("no TCP answer within {} s", timeout.as_secs()))
            })??
    } else {
        reply
    };

    let rcode = match reply.metadata.response_code {
        ResponseCode::NoError => Rcode::NoError,
        ResponseCode::NXDomain => Rcode::NxDomain,
        ResponseCode::ServFail => Rcode::ServFail,
        ResponseCode::Refused => Rcode::Refused,
        other => Rcode::Other(u16::from(other)),
    };
    let mut records = Vec::new();
    for r in &reply.answers {
        let (t, value) = match &r.data {
            RData::TXT(txt) => (
                RecordType::Txt,
                txt.txt_data
                    .iter()
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect::<String>(),
            ),
            RData::CNAME(c) => (RecordType::Cname, plain_name(&c.0)),
            RData::NS(n) => (RecordType::Ns, plain_name(&n.0)),
            RData::A(a) => (RecordType::A, a.0.to_string()),
            RData::AAAA(a) => (RecordType::Aaaa, a.0.to_string()),
            _ => continue,
        };
        records.push(AnswerRecord {
            name: plain_name(&r.name),
            rtype: t,
            ttl: r.ttl,
            value,
        });
    }
    let negative_ttl =
        if rcode == Rcode::NxDomain || (rcode == Rcode::NoError && records.is_empty()) {
            reply.authorities.iter().find_map(|r| match &r.data {
                RData::SOA(soa) => Some(r.ttl.min(soa.minimum)),
                _ => None,
            })
        } else {
            None
        };
    Ok(Answer {
        rcode,
        authoritative: reply.metadata.authoritative,
        records,
        negative_ttl,
    })
}

async fn tcp_exchange(server: SocketAddr, query: &[u8]) -> Result<Message, QueryError> {
    let mut s = TcpStream::connect(server).await.map_err(QueryError::io)?;
    let len = u16::try_from(query.len()).map_err(|_| QueryError::other("query too long"))?;
    s.write_all(&len.to_be_bytes())
        .await
        .map_err(QueryError::io)?;
    s.write_all(query).await.map_err(QueryError::io)?;
    let mut lb = [0u8; 2];
    s.read_exact(&mut lb).await.map_err(QueryError::io)?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(lb))];
    s.read_exact(&mut buf).await.map_err(QueryError::io)?;
    Message::from_vec(&buf).map_err(|e| QueryError::other(format!("undecodable answer: {e}")))
}

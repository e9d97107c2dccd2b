//! Waiting until a TXT record is served by every authoritative nameserver of its zone.
//!
//! Owns: the polling loop (all nameservers in parallel, short backoff, no fixed sleeps),
//! the rule that a nameserver *host* counts once any of its addresses serves the values
//! (Route 53's hosts have A and AAAA addresses; an IPv4-only runner reaches only the
//! first), dropping addresses this machine cannot route to at once, and the evidence in
//! the timeout error (per host, each address tried and what it answered last).
//! Does not own: finding the nameservers (`lookup`) or choosing a strategy (`strategy`).

use std::time::Duration;

use futures::future::join_all;

use super::lookup::{DnsLookup, Nameserver};
use super::{DnsError, RecordType};

/// Progress report: how many nameserver hosts serve the values, and who is still missing.
#[derive(Debug, Clone)]
pub struct PropagationStatus {
    /// Nameserver hosts that already serve every expected value (on any of their addresses).
    pub ready: usize,
    /// All nameserver hosts asked.
    pub total: usize,
    /// Names of the hosts still lagging.
    pub waiting_for: Vec<String>,
    /// Addresses dropped in this round because this machine cannot route to them, with
    /// the reason (`ns1.example (::1): Network is unreachable (os error 101)`).
    pub dropped: Vec<String>,
    /// Time since the first query.
    pub elapsed: Duration,
    /// Time until the next round of queries (when not all are ready).
    pub next_check: Duration,
}

/// One address of a host, and what it did last.
#[derive(Debug, Clone)]
enum AddrState {
    /// Still asked every round; what it answered last.
    Asking(String),
    /// Serves every value.
    Serves,
    /// This machine cannot route to it: never asked again.
    Unroutable(String),
}

/// A nameserver host with its addresses (in the order given).
struct Host<'a> {
    name: &'a str,
    addrs: Vec<(&'a Nameserver, AddrState)>,
}

impl Host<'_> {
    fn serves(&self) -> bool {
        self.addrs
            .iter()
            .any(|(_, s)| matches!(s, AddrState::Serves))
    }

    fn unreachable(&self) -> bool {
        self.addrs
            .iter()
            .all(|(_, s)| matches!(s, AddrState::Unroutable(_)))
    }

    /// `ns1.example: [::1]:53 unroutable (…); 127.0.0.2:53 answered …`.
    fn evidence(&self) -> String {
        let per_addr = |(ns, s): &(&Nameserver, AddrState)| {
            let what = match s {
                AddrState::Asking(last) => last.clone(),
                AddrState::Serves => "OK".into(),
                AddrState::Unroutable(e) => {
                    format!("not reachable from this machine ({e}), skipped")
                }
            };
            format!("{} {what}", ns.addr)
        };
        if let [(ns, state)] = self.addrs.as_slice()
            && ns.name == ns.addr.to_string()
        {
            // Configured by address (`dns.nameservers`): `127.0.0.1:53: answered …`.
            return per_addr(&(ns, state.clone())).replacen(' ', ": ", 1);
        }
        format!(
            "{}: {}",
            self.name,
            self.addrs
                .iter()
                .map(per_addr)
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// Groups addresses by host name, in order of first appearance.
fn hosts(nameservers: &[Nameserver]) -> Vec<Host<'_>> {
    let mut out: Vec<Host<'_>> = Vec::new();
    for ns in nameservers {
        let state = AddrState::Asking("not asked yet".into());
        match out.iter_mut().find(|h| h.name == ns.name) {
            Some(h) => h.addrs.push((ns, state)),
            None => out.push(Host {
                name: &ns.name,
                addrs: vec![(ns, state)],
            }),
        }
    }
    out
}

/// Polls every nameserver host until each serves all `expected` TXT values at `name` on
/// at least one of its addresses. Returns how long it took. Fails at once when every
/// address of some host is unroutable from here (waiting cannot help), and at `timeout`
/// otherwise; both errors name every host, each address tried and what it answered.
pub async fn await_txt(
    lookup: &dyn DnsLookup,
    nameservers: &[Nameserver],
    name: &str,
    expected: &[String],
    timeout: Duration,
    mut progress: impl FnMut(&PropagationStatus) + Send,
) -> Result<Duration, DnsError> {
    let start = tokio::time::Instant::now();
    let mut delay = Duration::from_millis(50);
    let mut hosts = hosts(nameservers);
    loop {
        let pending: Vec<(usize, usize)> = hosts
            .iter()
            .enumerate()
            .filter(|(_, h)| !h.serves())
            .flat_map(|(hi, h)| {
                h.addrs
                    .iter()
                    .enumerate()
                    .filter(|(_, (_, s))| matches!(s, AddrState::Asking(_)))
                    .map(move |(ai, _)| (hi, ai))
            })
            .collect();
        let answers = join_all(
            pending
                .iter()
                .map(|&(h, a)| lookup.query(hosts[h].addrs[a].0, name, RecordType::Txt)),
        )
        .await;
        let mut dropped = Vec::new();
        for (&(h, a), answer) in pending.iter().zip(answers) {
            let state = match answer {
                Ok(ans) => {
                    let seen = ans.values_at(name, RecordType::Txt);
                    let missing: Vec<&String> =
                        expected.iter().filter(|v| !seen.contains(v)).collect();
                    if missing.is_empty() {
                        AddrState::Serves
                    } else {
                        AddrState::Asking(format!(
                            "answered {}; missing {}",
                            ans.describe(),
                            missing
                                .iter()
                                .map(|v| format!("\"{v}\""))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ))
                    }
                }
                Err(e) if e.is_unroutable() => {
                    let why = match &e {
                        DnsError::Lookup { message, .. } => message.clone(),
                        other => other.to_string(),
                    };
                    dropped.push(format!("{}: {why}", hosts[h].addrs[a].0));
                    AddrState::Unroutable(why)
                }
                Err(DnsError::Lookup { message, .. }) => {
                    AddrState::Asking(format!("no usable answer: {message}"))
                }
                Err(e) => AddrState::Asking(format!("no usable answer: {e}")),
            };
            hosts[h].addrs[a].1 = state;
        }
        let status = PropagationStatus {
            ready: hosts.iter().filter(|h| h.serves()).count(),
            total: hosts.len(),
            waiting_for: hosts
                .iter()
                .filter(|h| !h.serves())
                .map(|h| h.name.to_string())
                .collect(),
            dropped,
            elapsed: start.elapsed(),
            next_check: delay,
        };
        progress(&status);
        if status.ready == status.total {
            return Ok(start.elapsed());
        }
        let evidence = || {
            hosts
                .iter()
                .map(|h| h.evidence())
                .collect::<Vec<_>>()
                .join("; ")
        };
        if let Some(h) = hosts.iter().find(|h| !h.serves() && h.unreachable()) {
            return Err(DnsError::NameserverUnreachable {
                name: name.to_string(),
                host: h.name.to_string(),
                evidence: evidence(),
            });
        }
        if start.elapsed() + delay > timeout {
            return Err(DnsError::PropagationTimeout {
                name: name.to_string(),
                waited_secs: start.elapsed().as_secs(),
                evidence: evidence(),
            });
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

/// A negative answer the resolver gave for a name before its value was written: when, and
/// how long the resolver may cache it (the zone's SOA minimum, capped by the SOA's TTL).
#[derive(Debug, Clone, Copy)]
pub struct EarlierNegative {
    /// When it was answered.
    pub at: tokio::time::Instant,
    /// Seconds it may be cached.
    pub ttl: u32,
}

/// Polls the recursive resolver until it serves all `expected` TXT values at `name`.
/// When it gave a negative answer for the name earlier in this run (`earlier`), that answer
/// may be cached: the wait is extended, if needed, until it must have expired (and said so
/// once through `note`), and ends as soon as the values are served.
pub async fn await_txt_via_resolver(
    lookup: &dyn DnsLookup,
    name: &str,
    expected: &[String],
    timeout: Duration,
    earlier: Option<EarlierNegative>,
    mut note: impl FnMut(&str) + Send,
    mut progress: impl FnMut(&PropagationStatus) + Send,
) -> Result<Duration, DnsError> {
    let start = tokio::time::Instant::now();
    let cache_end = earlier.map(|n| n.at + Duration::from_secs(u64::from(n.ttl)));
    // A cached negative answer must be allowed to expire, plus a little for the resolver's
    // own clock: waiting less would blame propagation for the resolver's cache.
    let deadline = match cache_end {
        Some(end) => (start + timeout).max(end + Duration::from_secs(2)),
        None => start + timeout,
    };
    let mut delay = Duration::from_millis(250);
    let mut said = false;
    loop {
        let last = match lookup.recursive_query(name, RecordType::Txt).await {
            Ok(a) => {
                let seen = a.values_at(name, RecordType::Txt);
                let missing: Vec<String> = expected
                    .iter()
                    .filter(|v| !seen.contains(v))
                    .map(|v| format!("\"{v}\""))
                    .collect();
                if missing.is_empty() {
                    progress(&PropagationStatus {
                        ready: 1,
                        total: 1,
                        waiting_for: vec![],
                        dropped: vec![],
                        elapsed: start.elapsed(),
                        next_check: delay,
                    });
                    return Ok(start.elapsed());
                }
                format!("answered {}; missing {}", a.describe(), missing.join(", "))
            }
            Err(DnsError::Lookup { message, .. }) => format!("no usable answer: {message}"),
            Err(e) => format!("no usable answer: {e}"),
        };
        let now = tokio::time::Instant::now();
        if let (Some(n), Some(end), false) = (earlier, cache_end, said)
            && end > now
        {
            said = true;
            note(&format!(
                "the resolver answered a negative answer for {name} {} ago, before the value \
                 was written, and may keep it for up to {} s (the zone's SOA minimum): \
                 asking again until it has expired ({} s from now at the latest)",
                crate::progress::human_duration(now.duration_since(n.at)),
                n.ttl,
                end.duration_since(now).as_secs() + 2
            ));
        }
        progress(&PropagationStatus {
            ready: 0,
            total: 1,
            waiting_for: vec!["the recursive resolver".into()],
            dropped: vec![],
            elapsed: start.elapsed(),
            next_check: delay,
        });
        if now + delay > deadline {
            return Err(DnsError::ResolverTimeout {
                name: name.to_string(),
                waited_secs: start.elapsed().as_secs(),
                last,
                cache: match earlier {
                    Some(n) => format!(
                        "; its earlier negative answer could be cached for {} s, and that time \
                         has passed",
                        n.ttl
                    ),
                    None => String::new(),
                },
            });
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::net::SocketAddr;
    use std::sync::Mutex;

    use async_trait::async_trait;

    use super::*;
    use crate::dns::lookup::{Answer, AnswerRecord, QueryFailure, Rcode};

    /// Per address: `None` = unroutable, `Some(values)` = answers these TXT values.
    struct Net {
        answers: HashMap<SocketAddr, Option<Vec<&'static str>>>,
        asked: Mutex<Vec<SocketAddr>>,
    }

    #[async_trait]
    impl DnsLookup for Net {
        async fn nameservers(&self, _: &str) -> Result<Vec<Nameserver>, DnsError> {
            Ok(vec![])
        }
        async fn query(
            &self,
            server: &Nameserver,
            name: &str,
            rtype: RecordType,
        ) -> Result<Answer, DnsError> {
            self.asked.lock().expect("lock").push(server.addr);
            match self.answers.get(&server.addr).cloned().flatten() {
                Some(values) => Ok(Answer {
                    rcode: Rcode::NoError,
                    authoritative: true,
                    negative_ttl: None,
                    records: values
                        .iter()
                        .map(|v| AnswerRecord {
                            name: name.into(),
                            rtype,
                            ttl: 60,
                            value: (*v).into(),
                        })
                        .collect(),
                }),
                None => Err(DnsError::Lookup {
                    name: name.into(),
                    rtype,
                    server: server.to_string(),
                    message: "Network is unreachable (os error 101)".into(),
                    failure: QueryFailure::Unroutable,
                }),
            }
        }
    }

    fn ns(name: &str, addr: &str) -> Nameserver {
        Nameserver {
            name: name.into(),
            addr: addr.parse().expect("address"),
        }
    }

    fn net(answers: &[(&str, Option<Vec<&'static str>>)]) -> Net {
        Net {
            answers: answers
                .iter()
                .map(|(a, v)| (a.parse().expect("address"), v.clone()))
                .collect(),
            asked: Mutex::new(vec![]),
        }
    }

    #[tokio::test]
    async fn a_host_counts_when_its_ipv4_address_serves_and_ipv6_is_unroutable() {
        let servers = [
            ns("ns1.example", "127.0.0.2:53"),
            ns("ns1.example", "[fd00::2]:53"),
            ns("ns2.example", "[fd00::3]:53"),
            ns("ns2.example", "127.0.0.3:53"),
        ];
        let lookup = net(&[
            ("127.0.0.2:53", Some(vec!["v"])),
            ("[fd00::2]:53", None),
            ("[fd00::3]:53", None),
            ("127.0.0.3:53", Some(vec!["v"])),
        ]);
        let mut seen = Vec::new();
        let took = await_txt(
            &lookup,
            &servers,
            "_acme-challenge.example",
            &["v".into()],
            Duration::from_secs(5),
            |s| seen.push(s.clone()),
        )
        .await
        .expect("each host serves on its IPv4 address");
        assert!(took < Duration::from_secs(1), "{took:?}");
        let last = seen.last().expect("a status");
        assert_eq!((last.ready, last.total), (2, 2));
        let dropped: Vec<String> = seen.iter().flat_map(|s| s.dropped.clone()).collect();
        assert_eq!(dropped.len(), 2, "{dropped:?}");
        assert!(dropped[0].contains("fd00::2"), "{dropped:?}");
        assert!(dropped[0].contains("Network is unreachable"), "{dropped:?}");
    }

    #[tokio::test]
    async fn an_unroutable_address_is_asked_once_and_a_lagging_host_is_named() {
        let servers = [
            ns("ns1.example", "[fd00::2]:53"),
            ns("ns1.example", "127.0.0.2:53"),
            ns("ns2.example", "127.0.0.3:53"),
        ];
        let lookup = net(&[
            ("[fd00::2]:53", None),
            ("127.0.0.2:53", Some(vec!["old"])),
            ("127.0.0.3:53", Some(vec!["v"])),
        ]);
        let err = await_txt(
            &lookup,
            &servers,
            "_acme-challenge.example",
            &["v".into()],
            Duration::from_millis(300),
            |_| {},
        )
        .await
        .expect_err("ns1 never serves the value")
        .to_string();
        let asked = lookup.asked.lock().expect("lock").clone();
        let v6: SocketAddr = "[fd00::2]:53".parse().expect("address");
        assert_eq!(asked.iter().filter(|a| **a == v6).count(), 1, "{asked:?}");
        for part in [
            "ns1.example: [fd00::2]:53 not reachable from this machine (Network is unreachable",
            "127.0.0.2:53 answered TXT old; missing \"v\"",
            "ns2.example: 127.0.0.3:53 OK",
            "dns.propagation_timeout",
        ] {
            assert!(err.contains(part), "`{part}` missing: {err}");
        }
    }

    #[tokio::test]
    async fn a_host_with_no_routable_address_fails_at_once() {
        let servers = [
            ns("ns1.example", "[fd00::2]:53"),
            ns("ns2.example", "127.0.0.3:53"),
        ];
        let lookup = net(&[("[fd00::2]:53", None), ("127.0.0.3:53", Some(vec![]))]);
        let started = std::time::Instant::now();
        let err = await_txt(
            &lookup,
            &servers,
            "_acme-challenge.example",
            &["v".into()],
            Duration::from_secs(30),
            |_| {},
        )
        .await
        .expect_err("ns1 cannot be reached at all")
        .to_string();
        assert!(started.elapsed() < Duration::from_secs(2));
        for part in ["ns1.example", "dns.propagation", "IPv6"] {
            assert!(err.contains(part), "`{part}` missing: {err}");
        }
    }
}

//! Resolving the broker's host name through configured DNS servers (`dns.resolver`, else
//! `dns.nameservers`) instead of the system's, following its CNAME to the deployment: how
//! verification proves the custom domain really leads to the broker, and how it works in the
//! sandbox and before a zone is publicly delegated.
//!
//! Owns: that lookup (A and AAAA, CNAME chains up to 8 links). Does not own connecting.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use async_trait::async_trait;

use super::Resolver;
use crate::dns::RecordType;
use crate::dns::lookup::exchange;

/// Resolves through the given DNS servers (recursion desired).
#[derive(Debug, Clone)]
pub struct DnsResolver {
    servers: Vec<SocketAddr>,
    timeout: Duration,
}

impl DnsResolver {
    /// Asks `servers` in order.
    pub fn new(servers: Vec<SocketAddr>) -> Self {
        Self {
            servers,
            timeout: Duration::from_secs(3),
        }
    }
}

#[async_trait]
impl Resolver for DnsResolver {
    async fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        let mut name = host.trim_end_matches('.').to_ascii_lowercase();
        let mut chain = vec![name.clone()];
        let mut last_err = String::from("no DNS server configured");
        for _ in 0..8 {
            let mut next = None;
            for server in &self.servers {
                let mut addrs = Vec::new();
                let mut answered = false;
                for t in [RecordType::A, RecordType::Aaaa] {
                    match exchange(*server, &name, t, true, self.timeout).await {
                        Ok(a) => {
                            answered = true;
                            for r in a.records.iter().filter(|r| r.rtype == t) {
                                if let Ok(ip) = r.value.parse::<IpAddr>() {
                                    addrs.push(SocketAddr::new(ip, port));
                                }
                            }
                            // The end of the CNAME chain within this answer.
                            let mut n = name.clone();
                            while let Some(target) = a.cname_at(&n) {
                                n = target;
                            }
                            if n != name {
                                next = Some(n);
                            }
                        }
                        Err(e) => last_err = format!("{server}: {e}"),
                    }
                }
                if !addrs.is_empty() {
                    return Ok(addrs);
                }
                if answered {
                    break;
                }
            }
            match next {
                Some(n) if !chain.contains(&n) => {
                    chain.push(n.clone());
                    name = n;
                }
                _ => break,
            }
        }
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "`{}` has no address ({}; last error: {last_err})",
                host,
                chain.join(" → ")
            ),
        ))
    }
}

//! DNS: the provider that holds the zones (Route 53), lookups against authoritative
//! nameservers, and the pure decisions about which records to write.
//!
//! Owns: the record and zone model shared by these parts and `DnsError`.
//! Does not own: ACME (which values to publish comes from `acme`).

pub mod batching;
pub mod lookup;
pub mod plan;
pub mod propagation;
pub mod provider;
pub mod route53;
pub mod strategy;
pub mod zone;

use std::fmt;

/// A hosted zone as the provider lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostedZone {
    /// Provider id, without any `/hostedzone/` prefix.
    pub id: String,
    /// Zone apex, lower case, no trailing dot.
    pub name: String,
    /// Private zones are invisible to the public internet (and to the CA).
    pub private: bool,
}

/// Record types this tool reads or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecordType {
    /// Text record (DNS-01 values).
    Txt,
    /// Alias to another name.
    Cname,
    /// IPv4 address.
    A,
    /// IPv6 address.
    Aaaa,
    /// Delegation.
    Ns,
    /// Start of authority.
    Soa,
}

impl fmt::Display for RecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RecordType::Txt => "TXT",
            RecordType::Cname => "CNAME",
            RecordType::A => "A",
            RecordType::Aaaa => "AAAA",
            RecordType::Ns => "NS",
            RecordType::Soa => "SOA",
        })
    }
}

/// All values of one type at one name (Route 53's unit of change).
/// TXT values are held unquoted; the provider adapter quotes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSet {
    /// Owner name, lower case, no trailing dot.
    pub name: String,
    /// Type.
    pub rtype: RecordType,
    /// Time to live in seconds.
    pub ttl: u32,
    /// Values (TXT unquoted; CNAME target without trailing dot).
    pub values: Vec<String>,
}

/// What to do with a record set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeAction {
    /// Create; fails if the set exists.
    Create,
    /// Create or replace.
    Upsert,
    /// Delete; must repeat the set exactly.
    Delete,
}

/// One change of a change batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordChange {
    /// Action.
    pub action: ChangeAction,
    /// The record set (for Delete: exactly as it exists).
    pub set: RecordSet,
}

/// The provider's handle on a submitted change batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeId(pub String);

impl DnsError {
    /// Whether this is a query to an address this machine cannot route to (e.g. IPv6 on
    /// an IPv4-only runner): asking it again cannot help.
    pub fn is_unroutable(&self) -> bool {
        matches!(
            self,
            DnsError::Lookup {
                failure: lookup::QueryFailure::Unroutable,
                ..
            }
        )
    }
}

/// Failures of DNS providers and lookups. Messages are one paragraph: what, where, what to do.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// No hosted zone can hold the name.
    #[error(
        "no public Route 53 hosted zone holds `{name}`: the account lists {}. Create the zone, \
         set `hosted_zone_id` for this certificate (flag `--hosted-zone-id`), or check that the \
         AWS credentials belong to the account that owns the domain",
        if .zones.is_empty() { "no hosted zones".to_string() } else { .zones.join(", ") }
    )]
    NoZone {
        /// The record name.
        name: String,
        /// The zones that exist, as `name (id, public|private)`.
        zones: Vec<String>,
    },
    /// A record exists where we would write, and differs.
    #[error(
        "`{name}` already has {found} in hosted zone {zone}, but this certificate wants `{name} \
         CNAME {wanted}`. Nothing was changed. If the existing record is obsolete, run again \
         with `--force` to replace it; otherwise fix `cname_target` in the configuration"
    )]
    Conflict {
        /// Owner name.
        name: String,
        /// Zone id.
        zone: String,
        /// What exists, e.g. `A 192.0.2.1`.
        found: String,
        /// What we want.
        wanted: String,
    },
    /// The provider API failed.
    #[error("Route 53 {operation} failed: {message}")]
    Provider {
        /// API operation, e.g. `ChangeResourceRecordSets`.
        operation: &'static str,
        /// One-paragraph explanation (includes the fix when known).
        message: String,
    },
    /// A change did not reach INSYNC in time.
    #[error(
        "Route 53 change {change} for zone {zone} was still {status} after {waited_secs} s. \
         Route 53 usually applies changes within a minute; raise `route53.change_timeout` or \
         check the AWS Health Dashboard"
    )]
    ChangeTimeout {
        /// Change id.
        change: String,
        /// Zone id.
        zone: String,
        /// Last status seen.
        status: String,
        /// Seconds waited.
        waited_secs: u64,
    },
    /// A lookup could not be made.
    #[error("DNS lookup of {name} {rtype} at {server} failed: {message}")]
    Lookup {
        /// Queried name.
        name: String,
        /// Queried type.
        rtype: RecordType,
        /// Server asked.
        server: String,
        /// What went wrong.
        message: String,
        /// The class of failure (unroutable addresses are not waited on).
        failure: lookup::QueryFailure,
    },
    /// The zone's nameservers could not be found.
    #[error(
        "could not find the authoritative nameservers of `{zone}`: {message}. Name them with \
         `dns.nameservers` in the configuration (flag `--nameserver HOST:PORT`)"
    )]
    Nameservers {
        /// Zone apex.
        zone: String,
        /// What went wrong.
        message: String,
    },
    /// A record did not appear on every authoritative nameserver.
    #[error(
        "`{name}` TXT was not visible on every authoritative nameserver after {waited_secs} s \
         ({evidence}). The CA would fail validation, so the order was not submitted for \
         validation. Raise `dns.propagation_timeout` if your DNS is slow, or check that these \
         nameservers really serve the zone"
    )]
    PropagationTimeout {
        /// Record name.
        name: String,
        /// Seconds waited.
        waited_secs: u64,
        /// Per nameserver: what it answered last.
        evidence: String,
    },
    /// The recursive resolver did not serve the values in time (`dns.propagation = resolver`).
    #[error(
        "`{name}` TXT was not served by the recursive resolver after {waited_secs} s (it last \
         {last}{cache}). The CA would fail validation, so the order was not submitted for \
         validation. Check `dns.resolver`, raise `dns.propagation_timeout`, or set \
         `dns.propagation = \"insync\"` to trust Route 53's INSYNC instead"
    )]
    ResolverTimeout {
        /// Record name.
        name: String,
        /// Seconds waited.
        waited_secs: u64,
        /// What the resolver answered last.
        last: String,
        /// About an earlier negative answer it may have cached.
        cache: String,
    },
    /// No nameserver of a zone answers on port 53 (`dns.propagation = authoritative`).
    #[error(
        "none of the authoritative nameservers of `{zone}` answered on UDP or TCP port 53 \
         within {secs} s ({evidence}), and `dns.propagation = \"authoritative\"` needs them. \
         This network seems to allow DNS only through its own resolver. Set \
         `dns.propagation = \"insync\"` (trust Route 53's INSYNC) or `\"resolver\"` (ask \
         `dns.resolver`), or `\"auto\"` to choose by itself; or allow outgoing port 53"
    )]
    NameserversSilent {
        /// Zone apex.
        zone: String,
        /// Probe timeout in seconds.
        secs: u64,
        /// Per address: what the probe saw.
        evidence: String,
    },
    /// Every address of a nameserver host is unroutable from this machine.
    #[error(
        "`{name}` TXT cannot be checked on the authoritative nameserver {host}: this machine \
         has no route to any of its addresses ({evidence}). An IPv4-only machine cannot reach \
         an IPv6 address (or the reverse). Run from a machine with a route to it, name \
         nameservers this machine can reach with `dns.nameservers`, or set \
         `dns.propagation = \"insync\"` to trust Route 53's INSYNC instead"
    )]
    NameserverUnreachable {
        /// Record name.
        name: String,
        /// The host none of whose addresses can be reached.
        host: String,
        /// Per host: each address and what it answered last.
        evidence: String,
    },
    /// A CNAME chain at the challenge name loops or is too long.
    #[error("the CNAME chain starting at `{name}` is longer than {max} links or loops: {chain}")]
    CnameLoop {
        /// Start of the chain.
        name: String,
        /// Links allowed.
        max: usize,
        /// The chain seen.
        chain: String,
    },
}

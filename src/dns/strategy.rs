//! How this run proves that DNS-01 values are visible (`dns.propagation`), and how it reads
//! what is in a zone over DNS.
//!
//! Owns: the [`Propagation`] setting and its parsing, and [`Strategy`] (the setting plus
//! `dns.propagation_delay`). Does not own the probing of nameservers or the waiting (see
//! `workflow::challenge_records`, `propagation`).

use std::fmt;
use std::time::Duration;

/// `dns.propagation`: what must be true before the CA is asked to validate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Propagation {
    /// Authoritative where the zone's nameservers answer on port 53; `insync` (said once)
    /// where none of them does within a few seconds (a network that blocks direct queries).
    #[default]
    Auto,
    /// Every authoritative nameserver host serves the values (on any of its addresses).
    Authoritative,
    /// A recursive resolver (`dns.resolver`, else the system's) serves them; an earlier
    /// negative answer is waited out for as long as the resolver may cache it.
    Resolver,
    /// Route 53 says `INSYNC` (all its nameservers have the change); no DNS query for
    /// propagation. Plus `dns.propagation_delay`.
    Insync,
}

impl Propagation {
    /// The names accepted in the configuration.
    pub const NAMES: &'static str = "`auto`, `authoritative`, `resolver` or `insync`";

    /// Parses the configuration value.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "auto" => Propagation::Auto,
            "authoritative" => Propagation::Authoritative,
            "resolver" => Propagation::Resolver,
            "insync" => Propagation::Insync,
            _ => return None,
        })
    }

    /// The configuration value.
    pub fn as_str(self) -> &'static str {
        match self {
            Propagation::Auto => "auto",
            Propagation::Authoritative => "authoritative",
            Propagation::Resolver => "resolver",
            Propagation::Insync => "insync",
        }
    }
}

impl fmt::Display for Propagation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The strategy of a run: `dns.propagation` and `dns.propagation_delay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Strategy {
    /// `dns.propagation`.
    pub propagation: Propagation,
    /// `dns.propagation_delay`: a fixed wait after the check, before the CA is asked.
    pub delay: Duration,
}

/// What `auto` settled on for one zone (or what was configured).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decided {
    /// Ask the zone's authoritative nameservers.
    Authoritative,
    /// Ask the recursive resolver.
    Resolver,
    /// Trust INSYNC; read through the resolver.
    Insync,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_round_trips() {
        for p in [
            Propagation::Auto,
            Propagation::Authoritative,
            Propagation::Resolver,
            Propagation::Insync,
        ] {
            assert_eq!(Propagation::parse(p.as_str()), Some(p));
            assert!(Propagation::NAMES.contains(p.as_str()));
        }
        assert_eq!(Propagation::parse("Auto"), None);
        assert_eq!(Propagation::default(), Propagation::Auto);
    }
}

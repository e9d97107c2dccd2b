//! Domain names as this tool handles them: normalised, validated, and the names derived
//! from them (the `_acme-challenge` label, the base name of a wildcard).
//!
//! Owns: syntax checks and suffix relations. Does not own: DNS lookups.

use std::fmt;

/// A fully qualified domain name in lower case without the trailing dot.
/// May start with `*.` (a wildcard identifier).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DomainName(String);

/// Why a string is not a usable domain name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` is not a valid domain name: {reason}")]
pub struct NameError {
    /// What was given.
    pub input: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl DomainName {
    /// Parses and normalises a name (case-folded, trailing dot removed).
    pub fn parse(input: &str) -> Result<Self, NameError> {
        let err = |reason| NameError {
            input: input.to_string(),
            reason,
        };
        let s = input.trim().trim_end_matches('.').to_ascii_lowercase();
        if s.is_empty() {
            return Err(err("it is empty"));
        }
        if s.len() > 253 {
            return Err(err("it is longer than 253 characters"));
        }
        let body = s.strip_prefix("*.").unwrap_or(&s);
        if body.contains('*') {
            return Err(err(
                "a wildcard is only allowed as the whole first label (`*.example.com`)",
            ));
        }
        for label in body.split('.') {
            if label.is_empty() {
                return Err(err("it has an empty label (two dots in a row)"));
            }
            if label.len() > 63 {
                return Err(err("a label is longer than 63 characters"));
            }
            if !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(err(
                    "labels may hold only letters, digits, `-` and `_` (use punycode for IDNs)",
                ));
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(err("a label starts or ends with `-`"));
            }
        }
        if !body.contains('.') {
            return Err(err(
                "it has a single label; a fully qualified name is needed",
            ));
        }
        // No top-level domain is all digits (RFC 3696 §2), so this is an IPv4 address (or
        // something like it): ACME IP identifiers are another kind of identifier, which
        // brokercert does not order, and a broker reached by address has no DNS-01 name.
        if body
            .rsplit('.')
            .next()
            .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(err(
                "it is an IP address, not a domain name; brokercert orders certificates for DNS \
                 names only (DNS-01), so give the broker's host name",
            ));
        }
        Ok(Self(s))
    }

    /// The name as text, without the trailing dot.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is a wildcard identifier (`*.example.com`).
    pub fn is_wildcard(&self) -> bool {
        self.0.starts_with("*.")
    }

    /// The name without a leading `*.`.
    pub fn base(&self) -> DomainName {
        DomainName(self.0.strip_prefix("*.").unwrap_or(&self.0).to_string())
    }

    /// `_acme-challenge.<base>`: where DNS-01 looks for the TXT record.
    pub fn challenge_name(&self) -> DomainName {
        DomainName(format!("_acme-challenge.{}", self.base().0))
    }

    /// Whether `zone` equals this name or is one of its parent domains.
    pub fn is_within(&self, zone: &str) -> bool {
        let zone = zone.trim_end_matches('.').to_ascii_lowercase();
        self.0 == zone || self.0.ends_with(&format!(".{zone}"))
    }

    /// The name with a trailing dot, as DNS wire tools expect.
    pub fn fqdn(&self) -> String {
        format!("{}.", self.0)
    }
}

impl fmt::Display for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for DomainName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_case_and_trailing_dot() {
        let n = DomainName::parse("MQTT.Example.COM.").unwrap();
        assert_eq!(n.as_str(), "mqtt.example.com");
        assert_eq!(n.fqdn(), "mqtt.example.com.");
    }

    #[test]
    fn wildcard_and_challenge_names() {
        let n = DomainName::parse("*.example.com").unwrap();
        assert!(n.is_wildcard());
        assert_eq!(n.base().as_str(), "example.com");
        assert_eq!(n.challenge_name().as_str(), "_acme-challenge.example.com");
    }

    #[test]
    fn rejects_bad_names() {
        for bad in [
            "",
            "localhost",
            "a..b.com",
            "mq*tt.example.com",
            "-a.example.com",
            "a b.com",
        ] {
            assert!(DomainName::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn an_ip_address_is_not_a_domain() {
        for ip in ["1.2.3.4", "127.0.0.1.", "*.10.0.0.1"] {
            let e = DomainName::parse(ip).expect_err(ip);
            assert!(e.reason.contains("IP address"), "{ip}: {}", e.reason);
        }
        // A digit-led label elsewhere is an ordinary name.
        assert!(DomainName::parse("1.2.3.example.com").is_ok());
        assert!(DomainName::parse("mqtt.1example.com").is_ok());
    }

    #[test]
    fn suffix_relation_is_label_aligned() {
        let n = DomainName::parse("mqtt.example.com").unwrap();
        assert!(n.is_within("example.com."));
        assert!(n.is_within("mqtt.example.com"));
        assert!(!n.is_within("ample.com"));
    }
}

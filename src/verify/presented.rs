//! [`ServerCertificate`]: the summary of the chain a broker presented (serial, SHA-256
//! fingerprint, validity, names, intermediates), and its time format.
//!
//! Owns: summarising presented certificates. Does not own the probe's report (`report`)
//! nor explaining failures (`error`); both use this, neither is used by it.

use std::net::IpAddr;

use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::pki::certificate::Certificate;

/// The certificate chain a broker presented, as recorded during the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerCertificate {
    /// RFC 4514 subject of the leaf.
    pub subject: String,
    /// RFC 4514 issuer of the leaf.
    pub issuer: String,
    /// Serial number, lower-case hex.
    pub serial_hex: String,
    /// SHA-256 of the leaf's DER, lower-case hex.
    pub sha256_fingerprint: String,
    /// Start of validity (`None` if the leaf did not parse).
    pub not_before: Option<OffsetDateTime>,
    /// End of validity (`None` if the leaf did not parse).
    pub not_after: Option<OffsetDateTime>,
    /// DNS names in the subjectAltName extension.
    pub dns_names: Vec<String>,
    /// IP addresses in the subjectAltName extension.
    pub ip_addresses: Vec<IpAddr>,
    /// Subjects of the other certificates the server sent, in order.
    pub intermediates: Vec<String>,
}

impl ServerCertificate {
    /// Summarises a presented chain (leaf DER plus whatever else was sent).
    pub fn from_der_chain<'a>(
        leaf: &[u8],
        intermediates: impl IntoIterator<Item = &'a [u8]>,
    ) -> ServerCertificate {
        let intermediates = intermediates
            .into_iter()
            .map(|der| match Certificate::from_der(der) {
                Ok(c) => c.subject().to_string(),
                Err(e) => format!("(unreadable certificate: {e})"),
            })
            .collect();
        match Certificate::from_der(leaf) {
            Ok(c) => ServerCertificate {
                subject: c.subject().to_string(),
                issuer: c.issuer().to_string(),
                serial_hex: c.serial_hex().to_string(),
                sha256_fingerprint: c.sha256_fingerprint().to_string(),
                not_before: Some(c.not_before()),
                not_after: Some(c.not_after()),
                dns_names: c.dns_names().to_vec(),
                ip_addresses: c.ip_addresses().to_vec(),
                intermediates,
            },
            Err(e) => ServerCertificate {
                subject: format!("(unreadable certificate: {e})"),
                issuer: String::new(),
                serial_hex: String::new(),
                sha256_fingerprint: hex::encode(Sha256::digest(leaf)),
                not_before: None,
                not_after: None,
                dns_names: Vec::new(),
                ip_addresses: Vec::new(),
                intermediates,
            },
        }
    }

    /// The names the leaf is valid for, for messages (`a.example, b.example`).
    pub fn names(&self) -> String {
        let mut names: Vec<String> = self.dns_names.clone();
        names.extend(self.ip_addresses.iter().map(|ip| ip.to_string()));
        if names.is_empty() {
            "no subjectAltName at all".to_string()
        } else {
            names.join(", ")
        }
    }

    /// `not_after` as RFC 3339, or `unknown`.
    pub fn not_after_text(&self) -> String {
        format_time(self.not_after)
    }

    /// One line: serial, expiry, issuer and how many certificates were sent.
    pub fn one_line(&self) -> String {
        format!(
            "serial {} (not after {}, for {}, issued by {}, sent with {} other certificate{})",
            self.serial_hex,
            self.not_after_text(),
            self.names(),
            self.issuer,
            self.intermediates.len(),
            if self.intermediates.len() == 1 {
                ""
            } else {
                "s"
            }
        )
    }
}

/// `t` as RFC 3339, or `unknown`.
pub(crate) fn format_time(t: Option<OffsetDateTime>) -> String {
    t.and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "unknown".to_string())
}

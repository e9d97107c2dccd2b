//! What a probe found: [`ProbeReport`] (overall), one [`TransportReport`] per
//! transport, and [`ServerCertificate`], the summary of the chain the broker
//! presented (serial, SHA-256 fingerprint, validity, names, intermediates).
//!
//! Owns: summarising presented certificates and rendering results as text.
//! Does not own: deciding success (see `probe`) or explaining failures (see `error`).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::error::VerifyError;
use super::target::Transport;
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

pub(crate) fn format_time(t: Option<OffsetDateTime>) -> String {
    t.and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "unknown".to_string())
}

/// A successful MQTT round trip on one transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoundTrip {
    /// The address actually connected to.
    pub peer: SocketAddr,
    /// TCP connect + TLS handshake (+ WebSocket upgrade) + CONNACK.
    pub connect_time: Duration,
    /// From sending PUBLISH to receiving the same message back.
    pub round_trip: Duration,
    /// The topic used.
    pub topic: String,
    /// With `check_refuses_anonymous_tls`: how the broker refused a client
    /// without a certificate.
    pub anonymous_refused: Option<String>,
}

/// The outcome on one transport.
#[derive(Debug)]
pub struct TransportReport {
    /// Which transport.
    pub transport: Transport,
    /// `host:port[/path]` as the user would write it.
    pub url: String,
    /// The round trip, or why it failed.
    pub outcome: Result<RoundTrip, VerifyError>,
    /// The chain the broker presented, when the handshake got that far.
    pub server_certificate: Option<ServerCertificate>,
}

impl TransportReport {
    /// Whether the round trip (and every requested check) succeeded.
    pub fn is_ok(&self) -> bool {
        self.outcome.is_ok()
    }
}

/// The outcome of a probe: one report per transport tried.
#[derive(Debug)]
pub struct ProbeReport {
    /// The broker's name.
    pub host: String,
    /// Per transport, in the order tried.
    pub transports: Vec<TransportReport>,
}

impl ProbeReport {
    /// True when every transport succeeded.
    pub fn is_ok(&self) -> bool {
        !self.transports.is_empty() && self.transports.iter().all(TransportReport::is_ok)
    }

    /// The report for `transport`, if it was tried.
    pub fn get(&self, transport: Transport) -> Option<&TransportReport> {
        self.transports.iter().find(|t| t.transport == transport)
    }

    /// The first failure, if any.
    pub fn first_error(&self) -> Option<&VerifyError> {
        self.transports
            .iter()
            .find_map(|t| t.outcome.as_ref().err())
    }

    /// `Ok(self)` when everything passed, else the first failure.
    pub fn into_result(self) -> Result<ProbeReport, VerifyError> {
        if self.is_ok() {
            return Ok(self);
        }
        let ProbeReport { host, transports } = self;
        let mut kept = Vec::with_capacity(transports.len());
        for t in transports {
            match t.outcome {
                Err(e) => return Err(e),
                Ok(rt) => kept.push(TransportReport {
                    outcome: Ok(rt),
                    ..t
                }),
            }
        }
        Ok(ProbeReport {
            host,
            transports: kept,
        })
    }
}

impl fmt::Display for ProbeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for t in &self.transports {
            match &t.outcome {
                Ok(rt) => {
                    write!(
                        f,
                        "{}: ok, round trip {} ms (connect {} ms, via {})",
                        t.url,
                        rt.round_trip.as_millis(),
                        rt.connect_time.as_millis(),
                        rt.peer
                    )?;
                    if let Some(how) = &rt.anonymous_refused {
                        write!(f, "; a client without a certificate was refused ({how})")?;
                    }
                    writeln!(f)?;
                }
                Err(e) => writeln!(f, "{}: FAILED: {e}", t.url)?,
            }
            if let Some(cert) = &t.server_certificate {
                writeln!(f, "  served certificate {}", cert.one_line())?;
                writeln!(f, "  SHA-256 {}", cert.sha256_fingerprint)?;
            }
        }
        write!(f, "overall: {}", if self.is_ok() { "ok" } else { "FAILED" })
    }
}

//! What a probe found: [`ProbeReport`] (overall) and one [`TransportReport`] per
//! transport, with the [`ServerCertificate`] (`presented`) each was shown.
//!
//! Owns: rendering results as text.
//! Does not own: deciding success (see `probe`) or explaining failures (see `error`).

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use super::error::VerifyError;
pub use super::presented::ServerCertificate;
use super::target::Transport;

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

//! What to verify: [`ProbeTarget`] (the broker's name, where to connect, which
//! transports, which trust anchors and credentials, what certificate to expect)
//! plus [`Transport`] and the [`Secret`] wrapper that keeps passwords and keys
//! out of `Debug` output.
//!
//! Owns: the probe's inputs and their defaults (8883, 8084, `/mqtt`, both
//! transports, 10 s per step), and normalising an expected fingerprint.
//! Does not own: resolving names (see `resolve`), building TLS configurations
//! (see `tls`) or running anything (see `probe`).

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

/// Default port of the MQTT-over-TLS listener.
pub const DEFAULT_MQTTS_PORT: u16 = 8883;
/// Default port of the MQTT-over-WebSocket-over-TLS listener.
pub const DEFAULT_WSS_PORT: u16 = 8084;
/// Default HTTP path of the WebSocket listener.
pub const DEFAULT_WSS_PATH: &str = "/mqtt";
/// Default time limit of each step (connect, handshake, CONNACK, SUBACK, round trip).
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// One way of reaching the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    /// MQTT over TLS (`mqtts://host:8883`).
    Mqtts,
    /// MQTT over WebSocket over TLS (`wss://host:8084/mqtt`).
    Wss,
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Mqtts => "mqtts",
            Transport::Wss => "wss",
        })
    }
}

pub use crate::secret::Secret;

/// Everything the probe needs to know about one broker.
///
/// Build it with [`ProbeTarget::new`] and adjust the public fields.
#[derive(Debug, Clone)]
pub struct ProbeTarget {
    /// The broker's (custom) domain: sent as SNI, checked against the
    /// certificate, and used in the WebSocket `Host` header.
    pub host: String,
    /// Connect here instead of resolving `host` (like curl's `--resolve`).
    /// The transport's port is used with it.
    pub connect_addr: Option<IpAddr>,
    /// Port of the MQTT-over-TLS listener.
    pub mqtts_port: u16,
    /// Port of the WebSocket-over-TLS listener.
    pub wss_port: u16,
    /// HTTP path of the WebSocket listener.
    pub wss_path: String,
    /// Transports to try, in this order.
    pub transports: Vec<Transport>,
    /// PEM text of the root certificate(s) to trust (e.g. ISRG Root X1);
    /// `None` trusts the system roots plus the bundled Mozilla roots.
    pub ca_pem: Option<String>,
    /// MQTT user name.
    pub username: Option<String>,
    /// MQTT password.
    pub password: Option<Secret>,
    /// Client certificate (PEM, leaf first) for two-way TLS.
    pub client_cert_pem: Option<String>,
    /// Client private key (PEM) for two-way TLS.
    pub client_key_pem: Option<Secret>,
    /// SHA-256 fingerprint (hex, colons allowed) of the leaf that should be served.
    pub expect_cert_fingerprint: Option<String>,
    /// Serial (hex) of that leaf, used only to make a mismatch message clearer.
    pub expect_cert_serial: Option<String>,
    /// Also connect without a client certificate and require the broker to
    /// refuse (a TLS alert or a closed connection; any CONNACK counts as
    /// accepted). Applies to every transport tried; Mosquitto's WebSocket
    /// listener cannot require certificates, EMQX's two-way TLS covers both.
    pub check_refuses_anonymous_tls: bool,
    /// Where to run that check (`None` = every transport tried). A broker whose WebSocket
    /// listener cannot require certificates (Mosquitto) is checked on mqtts only.
    pub anonymous_check_transports: Option<Vec<Transport>>,
    /// Time limit of each step.
    pub timeout: Duration,
}

impl ProbeTarget {
    /// A target with the defaults: both transports on 8883 and 8084 (`/mqtt`),
    /// system roots, no credentials, 10 s per step, `host` resolved by the
    /// probe's resolver.
    pub fn new(host: impl Into<String>) -> ProbeTarget {
        ProbeTarget {
            host: host.into(),
            connect_addr: None,
            mqtts_port: DEFAULT_MQTTS_PORT,
            wss_port: DEFAULT_WSS_PORT,
            wss_path: DEFAULT_WSS_PATH.to_string(),
            transports: vec![Transport::Mqtts, Transport::Wss],
            ca_pem: None,
            username: None,
            password: None,
            client_cert_pem: None,
            client_key_pem: None,
            expect_cert_fingerprint: None,
            expect_cert_serial: None,
            check_refuses_anonymous_tls: false,
            anonymous_check_transports: None,
            timeout: DEFAULT_STEP_TIMEOUT,
        }
    }

    /// The port of `transport`.
    pub fn port(&self, transport: Transport) -> u16 {
        match transport {
            Transport::Mqtts => self.mqtts_port,
            Transport::Wss => self.wss_port,
        }
    }

    /// The WebSocket path, with a leading `/` added when missing.
    pub fn normalised_wss_path(&self) -> String {
        if self.wss_path.starts_with('/') {
            self.wss_path.clone()
        } else {
            format!("/{}", self.wss_path)
        }
    }

    /// Whether a client certificate is configured.
    pub fn is_two_way(&self) -> bool {
        self.client_cert_pem.is_some() || self.client_key_pem.is_some()
    }
}

/// Lower-case hex without separators (`AB:cd` → `abcd`), for comparing fingerprints.
pub fn normalise_fingerprint(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_ascii_hexdigit())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let mut target = ProbeTarget::new("mqtt.example.test");
        target.password = Some(Secret::new("hunter2"));
        target.client_key_pem = Some(Secret::new("-----BEGIN PRIVATE KEY-----"));
        let shown = format!("{target:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("BEGIN PRIVATE KEY"), "{shown}");
        assert!(shown.contains("***"));
    }

    #[test]
    fn defaults_follow_the_guide() {
        let target = ProbeTarget::new("mqtt.example.test");
        assert_eq!(target.port(Transport::Mqtts), 8883);
        assert_eq!(target.port(Transport::Wss), 8084);
        assert_eq!(target.normalised_wss_path(), "/mqtt");
        assert_eq!(target.transports, vec![Transport::Mqtts, Transport::Wss]);
    }

    #[test]
    fn fingerprints_compare_without_separators_or_case() {
        assert_eq!(normalise_fingerprint("AB:cd:01"), "abcd01");
    }
}

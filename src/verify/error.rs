//! Why a verification failed, in words an operator can act on: [`VerifyError`]
//! (one paragraph each: which endpoint, what happened, what to check), the
//! [`Endpoint`] and [`Step`] they name, and the classification of low-level
//! I/O, rustls and WebSocket errors into those variants.
//!
//! Owns: every failure message of `crate::verify` and the mapping from
//! `std::io::Error` / `rustls::Error` / tungstenite errors to them.
//! Does not own: deciding what to try (see `probe`) or certificate summaries
//! (see `report`).

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use rustls::{AlertDescription, CertificateError};

use super::presented::{ServerCertificate, format_time};
use super::target::Transport;

/// One listener as the user would name it, plus the address actually used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Which transport.
    pub transport: Transport,
    /// The broker's name (SNI, certificate name, Host header).
    pub host: String,
    /// The listener's port.
    pub port: u16,
    /// The WebSocket path (wss only).
    pub path: Option<String>,
    /// The socket address connected to, once known.
    pub addr: Option<SocketAddr>,
}

impl Endpoint {
    /// `mqtts://host:port` or `wss://host:port/path`.
    pub fn url(&self) -> String {
        let host = if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match self.transport {
            Transport::Mqtts => format!("mqtts://{host}:{}", self.port),
            Transport::Wss => format!(
                "wss://{host}:{}{}",
                self.port,
                self.path.as_deref().unwrap_or("")
            ),
        }
    }
}

impl Endpoint {
    pub(crate) fn boxed(&self) -> Box<Endpoint> {
        Box::new(self.clone())
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url())?;
        if let Some(addr) = self.addr {
            write!(f, " (at {addr})")?;
        }
        Ok(())
    }
}

/// A step of the probe, for timeouts and protocol errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Resolving the broker's name.
    Resolve,
    /// Opening the TCP connection.
    TcpConnect,
    /// The TLS handshake.
    TlsHandshake,
    /// The WebSocket upgrade (wss only).
    WebSocketUpgrade,
    /// MQTT CONNECT → CONNACK.
    MqttConnect,
    /// SUBSCRIBE → SUBACK.
    Subscribe,
    /// PUBLISH → the same message delivered back.
    RoundTrip,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::Resolve => "resolving the name",
            Step::TcpConnect => "opening the TCP connection",
            Step::TlsHandshake => "in the TLS handshake",
            Step::WebSocketUpgrade => "upgrading to a WebSocket",
            Step::MqttConnect => "waiting for the MQTT CONNACK",
            Step::Subscribe => "waiting for the SUBACK",
            Step::RoundTrip => "waiting for the published message to come back",
        })
    }
}

impl Step {
    fn timeout_hint(self) -> &'static str {
        match self {
            Step::Resolve => "check the resolver, or give the address to connect to explicitly",
            Step::TcpConnect => {
                "packets are probably dropped: check the address, the port and any firewall or security group in between"
            }
            Step::TlsHandshake | Step::WebSocketUpgrade => {
                "something accepts TCP on this port but does not speak TLS (or this transport) there: check that the port belongs to this transport's listener"
            }
            Step::MqttConnect => {
                "the listener accepted TLS but no MQTT answer came: check that the port is an MQTT listener and the broker is healthy"
            }
            Step::Subscribe => "check the broker's health and its authorization rules",
            Step::RoundTrip => {
                "the broker accepted the subscription and the publish but did not deliver the message: check the authorization (ACL) rules for this user on the topic, and rule engines or bridges that consume messages"
            }
        }
    }
}

/// Why a verification failed. Every message names the endpoint, says what
/// happened and what to check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// No transport selected.
    #[error("nothing to verify: no transport was selected; choose mqtts, wss or both")]
    NoTransport,
    /// The target's settings contradict each other.
    #[error("the verification settings for {host} are not usable: {reason}")]
    InvalidTarget {
        /// The broker's name.
        host: String,
        /// What is wrong.
        reason: String,
    },
    /// The CA file could not be used.
    #[error(
        "the CA file for verifying {host} could not be used: {reason}; expected PEM text holding the root certificate the broker's chain ends at (for Let's Encrypt: ISRG Root X1)"
    )]
    InvalidCaFile {
        /// The broker's name.
        host: String,
        /// What was wrong.
        reason: String,
    },
    /// The client certificate or key could not be used.
    #[error(
        "the client certificate for two-way TLS could not be used: {reason}; expected the client certificate (PEM, leaf first) and its unencrypted private key"
    )]
    InvalidClientIdentity {
        /// What was wrong.
        reason: String,
    },
    /// The host is not a DNS name or IP address.
    #[error(
        "{host:?} is not a host name TLS can verify ({reason}); expected the broker's domain, e.g. mqtt.example.com, without scheme or port"
    )]
    InvalidHost {
        /// What was given.
        host: String,
        /// Why it was refused.
        reason: String,
    },
    /// Resolving the name failed.
    #[error(
        "{endpoint}: the name could not be resolved ({reason}); check the DNS record (the CNAME pointing at the broker), or give the address to connect to explicitly"
    )]
    Resolve {
        /// Where.
        endpoint: Box<Endpoint>,
        /// What the resolver said.
        reason: String,
    },
    /// Nothing listens on the port.
    #[error(
        "{endpoint}: the connection was refused ({reason}); nothing accepts connections on port {port}: check the port number and that the broker's {transport} listener is enabled and running",
        port = endpoint.port,
        transport = endpoint.transport
    )]
    ConnectionRefused {
        /// Where.
        endpoint: Box<Endpoint>,
        /// The OS error.
        reason: String,
    },
    /// Another TCP failure.
    #[error(
        "{endpoint}: could not connect ({reason}); check the address, the port and any firewall or security group between here and the broker"
    )]
    Connect {
        /// Where.
        endpoint: Box<Endpoint>,
        /// The OS error.
        reason: String,
    },
    /// A step took too long.
    #[error(
        "{endpoint}: no answer within {timeout:?} {step}; {hint}",
        hint = step.timeout_hint()
    )]
    Timeout {
        /// Where.
        endpoint: Box<Endpoint>,
        /// Which step.
        step: Step,
        /// The limit.
        timeout: Duration,
    },
    /// The served chain does not lead to a trusted root.
    #[error(
        "{endpoint}: the broker's certificate could not be verified: unable to get the issuer certificate. It serves {served}, and {trust} holds no root that completes this chain. {hint}",
        served = served.one_line()
    )]
    UnknownIssuer {
        /// Where.
        endpoint: Box<Endpoint>,
        /// What was served.
        served: Box<ServerCertificate>,
        /// Which roots were tried.
        trust: String,
        /// What to check, depending on whether intermediates were sent.
        hint: String,
    },
    /// The certificate is not valid for the host name.
    #[error(
        "{endpoint}: the broker's certificate is not valid for {host} (TLS name mismatch): it is for {names}. Check that {host} is the domain the certificate was issued for and that its CNAME points at this broker (not at another service that answers with its own certificate)",
        host = endpoint.host,
        names = served.as_ref().map(|s| s.names()).unwrap_or_else(|| presented.join(", "))
    )]
    NameMismatch {
        /// Where.
        endpoint: Box<Endpoint>,
        /// What was served.
        served: Option<Box<ServerCertificate>>,
        /// The names rustls saw.
        presented: Vec<String>,
    },
    /// The certificate has expired.
    #[error(
        "{endpoint}: the broker's certificate expired on {not_after}; it still serves {served}. Deploy the renewed certificate and check that the listener reloaded it",
        served = served.one_line()
    )]
    CertificateExpired {
        /// Where.
        endpoint: Box<Endpoint>,
        /// When it expired.
        not_after: String,
        /// What was served.
        served: Box<ServerCertificate>,
    },
    /// The certificate is not valid yet.
    #[error(
        "{endpoint}: the broker's certificate is not valid before {not_before}; check this machine's clock (and the broker's)"
    )]
    CertificateNotYetValid {
        /// Where.
        endpoint: Box<Endpoint>,
        /// When it becomes valid.
        not_before: String,
    },
    /// Another certificate problem.
    #[error(
        "{endpoint}: the broker's certificate was rejected ({reason}); it serves {served}. Check that the certificate is a TLS server certificate issued by the expected CA",
        served = served.as_ref().map(|s| s.one_line()).unwrap_or_else(|| "a certificate that could not be recorded".to_string())
    )]
    CertificateRejected {
        /// Where.
        endpoint: Box<Endpoint>,
        /// What rustls said.
        reason: String,
        /// What was served.
        served: Option<Box<ServerCertificate>>,
    },
    /// Another TLS failure.
    #[error(
        "{endpoint}: the TLS handshake failed ({reason}); check that this port is the broker's TLS listener and that it supports TLS 1.2 or 1.3"
    )]
    Tls {
        /// Where.
        endpoint: Box<Endpoint>,
        /// What rustls said.
        reason: String,
    },
    /// We presented no certificate and the broker wants one.
    #[error(
        "{endpoint}: the broker refused the connection because no client certificate was presented ({how}); this listener uses two-way TLS: give the client certificate and key"
    )]
    ClientCertificateRequired {
        /// Where.
        endpoint: Box<Endpoint>,
        /// The alert or how the connection ended.
        how: String,
    },
    /// We presented a certificate and the broker refused it.
    #[error(
        "{endpoint}: the broker refused the client certificate ({how}); check that it was issued by the CA configured as the deployment's client CA, and that it is not expired"
    )]
    ClientCertificateRejected {
        /// Where.
        endpoint: Box<Endpoint>,
        /// The alert or how the connection ended.
        how: String,
    },
    /// The WebSocket upgrade failed.
    #[error(
        "{endpoint}: the WebSocket upgrade failed ({reason}); check the path (EMQX uses /mqtt) and that the port is the broker's WebSocket-over-TLS listener"
    )]
    WebSocket {
        /// Where.
        endpoint: Box<Endpoint>,
        /// What happened.
        reason: String,
    },
    /// CONNACK with an error code.
    #[error("{endpoint}: the broker refused the MQTT connection ({code}); {hint}")]
    MqttRefused {
        /// Where.
        endpoint: Box<Endpoint>,
        /// The CONNACK return code.
        code: String,
        /// What to check.
        hint: String,
    },
    /// SUBACK with a failure code.
    #[error(
        "{endpoint}: the broker refused the subscription to {topic}; check the authorization (ACL) rules for this user"
    )]
    SubscribeRefused {
        /// Where.
        endpoint: Box<Endpoint>,
        /// The topic.
        topic: String,
    },
    /// The connection broke or the broker sent something unexpected.
    #[error("{endpoint}: the MQTT exchange failed {step} ({reason}); {hint}")]
    Mqtt {
        /// Where.
        endpoint: Box<Endpoint>,
        /// Which step.
        step: Step,
        /// What happened.
        reason: String,
        /// What to check.
        hint: String,
    },
    /// The served leaf is not the one just deployed.
    #[error(
        "{endpoint}: the broker still serves serial {} (not after {}, SHA-256 {}), not the one just deployed ({expected}). The deployment may still be in progress or the listener has not reloaded the certificate: wait and verify again",
        served.serial_hex, served.not_after_text(), served.sha256_fingerprint
    )]
    FingerprintMismatch {
        /// Where.
        endpoint: Box<Endpoint>,
        /// What was served.
        served: Box<ServerCertificate>,
        /// `serial S, SHA-256 F` of the expected leaf.
        expected: String,
    },
    /// Two-way TLS: a client without a certificate got in.
    #[error(
        "{endpoint}: a client WITHOUT a certificate was accepted (it received an MQTT CONNACK), so two-way TLS is not enforced on this listener; check that the deployment's TLS type is two-way and that it requires client certificates"
    )]
    AnonymousAccepted {
        /// Where.
        endpoint: Box<Endpoint>,
    },
    /// Two-way TLS: could not tell whether a client without a certificate is refused.
    #[error(
        "{endpoint}: could not tell whether a client without a certificate is refused ({reason}); the broker neither refused it nor answered its MQTT CONNECT"
    )]
    AnonymousCheckInconclusive {
        /// Where.
        endpoint: Box<Endpoint>,
        /// What happened.
        reason: String,
    },
    /// A bug or an environment problem (crypto provider).
    #[error("internal error in the MQTT probe: {reason}")]
    Internal {
        /// What happened.
        reason: String,
    },
}

/// The rustls error inside an I/O error, if any (tokio-rustls wraps them).
pub(crate) fn rustls_error_in(e: &io::Error) -> Option<&rustls::Error> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = e.get_ref().map(|r| r as _);
    while let Some(err) = source {
        if let Some(found) = err.downcast_ref::<rustls::Error>() {
            return Some(found);
        }
        if let Some(inner_io) = err.downcast_ref::<io::Error>()
            && let Some(found) = rustls_error_in(inner_io)
        {
            return Some(found);
        }
        source = err.source();
    }
    None
}

/// A TCP connect failure.
pub(crate) fn connect_error(endpoint: &Endpoint, e: &io::Error) -> VerifyError {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => VerifyError::ConnectionRefused {
            endpoint: endpoint.boxed(),
            reason: e.to_string(),
        },
        _ => VerifyError::Connect {
            endpoint: endpoint.boxed(),
            reason: e.to_string(),
        },
    }
}

/// Alerts a server sends when it does not accept the client's certificate (or its absence).
fn is_client_auth_alert(alert: &AlertDescription) -> bool {
    matches!(
        alert,
        AlertDescription::CertificateRequired
            | AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateUnknown
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::CertificateRevoked
            | AlertDescription::CertificateExpired
            | AlertDescription::AccessDenied
            | AlertDescription::DecryptError
    )
}

/// A TLS handshake failure (the server's certificate or the handshake itself).
pub(crate) fn handshake_error(
    endpoint: &Endpoint,
    e: &io::Error,
    served: Option<ServerCertificate>,
    trust_label: &str,
    trust_from_ca_file: bool,
    presented_client_cert: bool,
) -> VerifyError {
    let Some(tls) = rustls_error_in(e) else {
        return match e.kind() {
            io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe => VerifyError::Tls {
                endpoint: endpoint.boxed(),
                reason: format!(
                    "the connection was closed during the handshake: {e}; the port may not be a TLS listener, or the broker did not accept the server name {}",
                    endpoint.host
                ),
            },
            _ => VerifyError::Tls {
                endpoint: endpoint.boxed(),
                reason: e.to_string(),
            },
        };
    };
    classify_tls(
        endpoint,
        tls,
        served,
        trust_label,
        trust_from_ca_file,
        presented_client_cert,
    )
}

fn classify_tls(
    endpoint: &Endpoint,
    tls: &rustls::Error,
    served: Option<ServerCertificate>,
    trust_label: &str,
    trust_from_ca_file: bool,
    presented_client_cert: bool,
) -> VerifyError {
    let endpoint = endpoint.boxed();
    match tls {
        rustls::Error::InvalidCertificate(cert_error) => classify_certificate(
            endpoint,
            cert_error,
            served,
            trust_label,
            trust_from_ca_file,
        ),
        rustls::Error::AlertReceived(alert) if is_client_auth_alert(alert) => client_refused(
            endpoint,
            presented_client_cert,
            format!("TLS alert {alert:?}"),
        ),
        other => VerifyError::Tls {
            endpoint,
            reason: other.to_string(),
        },
    }
}

fn client_refused(
    endpoint: Box<Endpoint>,
    presented_client_cert: bool,
    how: String,
) -> VerifyError {
    if presented_client_cert {
        VerifyError::ClientCertificateRejected { endpoint, how }
    } else {
        VerifyError::ClientCertificateRequired { endpoint, how }
    }
}

fn classify_certificate(
    endpoint: Box<Endpoint>,
    cert_error: &CertificateError,
    served: Option<ServerCertificate>,
    trust_label: &str,
    trust_from_ca_file: bool,
) -> VerifyError {
    match (cert_error, served.map(Box::new)) {
        (CertificateError::UnknownIssuer, Some(served)) => {
            let hint = unknown_issuer_hint(&served, trust_from_ca_file);
            VerifyError::UnknownIssuer {
                endpoint,
                served,
                trust: trust_label.to_string(),
                hint,
            }
        }
        (CertificateError::NotValidForName, served) => VerifyError::NameMismatch {
            endpoint,
            served,
            presented: Vec::new(),
        },
        (CertificateError::NotValidForNameContext { presented, .. }, served) => {
            VerifyError::NameMismatch {
                endpoint,
                served,
                presented: presented.clone(),
            }
        }
        (CertificateError::Expired | CertificateError::ExpiredContext { .. }, Some(served)) => {
            VerifyError::CertificateExpired {
                endpoint,
                not_after: format_time(served.not_after),
                served,
            }
        }
        (CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. }, served) => {
            VerifyError::CertificateNotYetValid {
                endpoint,
                not_before: format_time(served.and_then(|s| s.not_before)),
            }
        }
        (other, served) => VerifyError::CertificateRejected {
            endpoint,
            reason: other.to_string(),
            served,
        },
    }
}

fn unknown_issuer_hint(served: &ServerCertificate, trust_from_ca_file: bool) -> String {
    let ca = if trust_from_ca_file {
        "the CA file is the wrong root (for Let's Encrypt it must be ISRG Root X1 or X2)"
    } else {
        "the chain does not end at a publicly trusted root: give the CA file (root.pem) that issued it"
    };
    if served.intermediates.is_empty() {
        format!(
            "The broker sent the leaf alone, without its intermediate certificate ({}): deploy the full chain (leaf followed by the intermediates, fullchain.pem) — or {ca}",
            served.issuer
        )
    } else {
        format!(
            "The broker sent the intermediate(s) {}; so either {ca}, or the intermediates deployed are not the ones that issued this leaf",
            served.intermediates.join(", ")
        )
    }
}

/// An error after the handshake while waiting for `step`. A TLS alert about
/// client certificates, or (with a client certificate and before CONNACK) a
/// closed connection, means the broker refused the client certificate.
pub(crate) fn session_error(
    endpoint: &Endpoint,
    step: Step,
    e: &io::Error,
    presented_client_cert: bool,
    two_way_expected: bool,
) -> VerifyError {
    if let Some(rustls::Error::AlertReceived(alert)) = rustls_error_in(e)
        && is_client_auth_alert(alert)
    {
        return client_refused(
            endpoint.boxed(),
            presented_client_cert,
            format!("TLS alert {alert:?} after the handshake"),
        );
    }
    let closed = matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
    );
    let hint = match (step, closed) {
        (Step::MqttConnect, true) if two_way_expected => {
            "the broker closed the connection before answering CONNECT, which with two-way TLS usually means it did not accept the client certificate: check that it was issued by the deployment's client CA".to_string()
        }
        (Step::MqttConnect, true) => {
            "the broker closed the connection before answering CONNECT: it may require a client certificate (two-way TLS), or reject this client id or protocol version (MQTT 3.1.1)".to_string()
        }
        (_, true) => {
            "the broker closed the connection: check its logs and the authorization rules for this user".to_string()
        }
        _ => "check the broker's logs".to_string(),
    };
    VerifyError::Mqtt {
        endpoint: endpoint.boxed(),
        step,
        reason: e.to_string(),
        hint,
    }
}

/// A WebSocket upgrade failure (tungstenite).
pub(crate) fn websocket_error(
    endpoint: &Endpoint,
    e: &async_tungstenite::tungstenite::Error,
    presented_client_cert: bool,
    two_way_expected: bool,
) -> VerifyError {
    use async_tungstenite::tungstenite::Error as WsError;
    match e {
        WsError::Io(io) => session_error(
            endpoint,
            Step::WebSocketUpgrade,
            io,
            presented_client_cert,
            two_way_expected,
        ),
        WsError::Http(response) => VerifyError::WebSocket {
            endpoint: endpoint.boxed(),
            reason: format!(
                "the server answered HTTP {} instead of 101 Switching Protocols",
                response.status()
            ),
        },
        other => VerifyError::WebSocket {
            endpoint: endpoint.boxed(),
            reason: other.to_string(),
        },
    }
}

/// The hint for a CONNACK return code.
pub(crate) fn connack_hint(code: &rumqttc::ConnectReturnCode, sent_credentials: bool) -> String {
    use rumqttc::ConnectReturnCode as C;
    match code {
        C::BadUserNamePassword if sent_credentials => {
            "the user name or password is wrong: check the credentials in the deployment's authentication settings".to_string()
        }
        C::BadUserNamePassword | C::NotAuthorized if !sent_credentials => {
            "the broker requires authentication: give the user name and password from the deployment's authentication settings".to_string()
        }
        C::NotAuthorized => {
            "the broker did not accept these credentials: the user name or password is wrong, or this user may not connect; check the deployment's authentication settings".to_string()
        }
        C::RefusedProtocolVersion => {
            "the broker does not accept MQTT 3.1.1 on this listener".to_string()
        }
        C::BadClientId => "the broker rejected the client id".to_string(),
        C::ServiceUnavailable => "the broker is unavailable: check its status".to_string(),
        C::Success => "unexpected success code".to_string(),
        _ => "check the broker's logs".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::ServerName;
    use std::collections::HashSet;

    fn endpoint() -> Endpoint {
        Endpoint {
            transport: Transport::Mqtts,
            host: "mqtt.example.test".to_string(),
            port: 8883,
            path: None,
            addr: Some("127.0.0.1:8883".parse().expect("addr")),
        }
    }

    fn served(intermediates: usize) -> ServerCertificate {
        ServerCertificate {
            subject: "CN=other.example.test".to_string(),
            issuer: "CN=Test Intermediate".to_string(),
            serial_hex: "0a1b".to_string(),
            sha256_fingerprint: "ff".repeat(32),
            not_before: None,
            not_after: None,
            dns_names: vec!["other.example.test".to_string()],
            ip_addresses: Vec::new(),
            intermediates: vec!["CN=Test Intermediate".to_string(); intermediates],
        }
    }

    fn tls_io(e: rustls::Error) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }

    #[test]
    fn each_failure_mode_has_its_own_message() {
        let ep = endpoint();
        let cases: Vec<VerifyError> = vec![
            connect_error(&ep, &io::Error::from(io::ErrorKind::ConnectionRefused)),
            connect_error(&ep, &io::Error::from(io::ErrorKind::HostUnreachable)),
            handshake_error(
                &ep,
                &tls_io(rustls::Error::InvalidCertificate(
                    CertificateError::UnknownIssuer,
                )),
                Some(served(0)),
                "the given CA file",
                true,
                false,
            ),
            handshake_error(
                &ep,
                &tls_io(rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForNameContext {
                        expected: ServerName::try_from("mqtt.example.test").expect("name"),
                        presented: vec!["DnsName(\"other.example.test\")".to_string()],
                    },
                )),
                Some(served(1)),
                "x",
                true,
                false,
            ),
            handshake_error(
                &ep,
                &tls_io(rustls::Error::InvalidCertificate(CertificateError::Expired)),
                Some(served(1)),
                "x",
                true,
                false,
            ),
            handshake_error(
                &ep,
                &tls_io(rustls::Error::AlertReceived(
                    AlertDescription::HandshakeFailure,
                )),
                None,
                "x",
                true,
                false,
            ),
            session_error(
                &ep,
                Step::MqttConnect,
                &tls_io(rustls::Error::AlertReceived(
                    AlertDescription::CertificateRequired,
                )),
                false,
                false,
            ),
            session_error(
                &ep,
                Step::MqttConnect,
                &tls_io(rustls::Error::AlertReceived(AlertDescription::UnknownCA)),
                true,
                true,
            ),
            session_error(
                &ep,
                Step::MqttConnect,
                &io::Error::from(io::ErrorKind::UnexpectedEof),
                false,
                false,
            ),
            VerifyError::Timeout {
                endpoint: ep.boxed(),
                step: Step::RoundTrip,
                timeout: Duration::from_secs(5),
            },
        ];
        let mut seen = HashSet::new();
        for case in &cases {
            let text = case.to_string();
            assert!(text.contains("mqtts://mqtt.example.test:8883"), "{text}");
            assert!(
                seen.insert(std::mem::discriminant(case)),
                "duplicate kind: {text}"
            );
        }
        assert!(matches!(cases[0], VerifyError::ConnectionRefused { .. }));
        assert!(cases[0].to_string().contains("listener"));
        assert!(matches!(cases[2], VerifyError::UnknownIssuer { .. }));
        let unknown = cases[2].to_string();
        assert!(
            unknown.contains("unable to get the issuer certificate"),
            "{unknown}"
        );
        assert!(unknown.contains("leaf alone"), "{unknown}");
        assert!(cases[3].to_string().contains("name mismatch"));
        assert!(cases[3].to_string().contains("CNAME"));
        assert!(matches!(cases[4], VerifyError::CertificateExpired { .. }));
        assert!(matches!(cases[5], VerifyError::Tls { .. }));
        assert!(matches!(
            cases[6],
            VerifyError::ClientCertificateRequired { .. }
        ));
        assert!(matches!(
            cases[7],
            VerifyError::ClientCertificateRejected { .. }
        ));
        assert!(matches!(cases[8], VerifyError::Mqtt { .. }));
    }

    #[test]
    fn unknown_issuer_with_intermediates_blames_the_ca_file() {
        let e = handshake_error(
            &endpoint(),
            &tls_io(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer,
            )),
            Some(served(1)),
            "the given CA file (1 certificate: CN=Wrong Root)",
            true,
            false,
        );
        let text = e.to_string();
        assert!(text.contains("CN=Wrong Root"), "{text}");
        assert!(text.contains("wrong root"), "{text}");
    }

    #[test]
    fn connack_hints_distinguish_credentials_from_authorization() {
        use rumqttc::ConnectReturnCode as C;
        assert!(connack_hint(&C::BadUserNamePassword, true).contains("wrong"));
        assert!(connack_hint(&C::NotAuthorized, false).contains("requires authentication"));
        assert!(connack_hint(&C::NotAuthorized, true).contains("may not connect"));
    }
}

//! [`TlsMqttProbe`], the real [`MqttProbe`]: for each transport it connects
//! (see `connection`), checks the served leaf against the expected
//! fingerprint, runs the guide's round trip (see `session`) with a unique
//! client id, topic and payload, and — for two-way TLS — checks that a client
//! without a certificate is refused.
//!
//! Owns: the sequence of steps, their time limits and the per-transport report.
//! Does not own: name resolution policy (the caller's [`Resolver`]), TLS
//! trust (see `tls`) or failure wording (see `error`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rumqttc::mqttbytes::v4::ConnectReturnCode;
use rustls_pki_types::ServerName;

use super::MqttProbe;
use super::connection::{Dial, Opened, open};
use super::error::{Endpoint, Step, VerifyError, connack_hint, rustls_error_in, session_error};
use super::report::{ProbeReport, RoundTrip, ServerCertificate, TransportReport};
use super::resolve::{Resolver, SystemResolver};
use super::session::Session;
use super::target::{ProbeTarget, Transport, normalise_fingerprint};
use super::tls::{ClientIdentity, Trust, client_config, server_name};

/// The real probe: TCP, rustls and MQTT 3.1.1 against a live broker.
#[derive(Clone)]
pub struct TlsMqttProbe {
    resolver: Arc<dyn Resolver>,
}

impl std::fmt::Debug for TlsMqttProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsMqttProbe").finish_non_exhaustive()
    }
}

impl TlsMqttProbe {
    /// A probe that resolves names (when no connect address is given) with `resolver`.
    pub fn new(resolver: Arc<dyn Resolver>) -> TlsMqttProbe {
        TlsMqttProbe { resolver }
    }

    /// A probe using the operating system's resolver.
    pub fn with_system_resolver() -> TlsMqttProbe {
        TlsMqttProbe::new(Arc::new(SystemResolver))
    }
}

/// Everything shared by the transports of one probe.
struct Prepared<'a> {
    target: &'a ProbeTarget,
    trust: Trust,
    identity: Option<ClientIdentity>,
    server_name: ServerName<'static>,
    login: Option<(String, String)>,
}

#[async_trait]
impl MqttProbe for TlsMqttProbe {
    async fn probe(&self, target: &ProbeTarget) -> Result<ProbeReport, VerifyError> {
        let mut transports = target.transports.clone();
        transports.dedup();
        if transports.is_empty() {
            return Err(VerifyError::NoTransport);
        }
        let login = match (&target.username, &target.password) {
            (None, None) => None,
            (Some(user), password) => Some((
                user.clone(),
                password
                    .as_ref()
                    .map(|p| p.expose().to_string())
                    .unwrap_or_default(),
            )),
            (None, Some(_)) => {
                return Err(VerifyError::InvalidTarget {
                    host: target.host.clone(),
                    reason: "a password was given without a user name (MQTT 3.1.1 sends a password only with a user name)".to_string(),
                });
            }
        };
        let prepared = Prepared {
            target,
            trust: Trust::of(target)?,
            identity: ClientIdentity::of(target)?,
            server_name: server_name(&target.host)?,
            login,
        };
        // The transports are independent connections: probe them at the same time.
        let reports = futures::future::join_all(
            transports
                .into_iter()
                .map(|transport| self.probe_transport(&prepared, transport)),
        )
        .await;
        Ok(ProbeReport {
            host: target.host.clone(),
            transports: reports,
        })
    }
}

/// A unique suffix: 12 hex digits from the OS-seeded thread RNG.
fn unique() -> String {
    format!("{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff)
}

impl TlsMqttProbe {
    fn dial<'a>(
        &'a self,
        p: &'a Prepared<'a>,
        with_identity: bool,
        seen: &'a super::tls::PresentedChain,
        config: Arc<rustls::ClientConfig>,
    ) -> Dial<'a> {
        Dial {
            resolver: self.resolver.as_ref(),
            connect_addr: p.target.connect_addr,
            server_name: &p.server_name,
            config,
            seen,
            trust_label: &p.trust.label,
            trust_from_ca_file: p.trust.from_ca_file,
            presents_client_cert: with_identity && p.identity.is_some(),
            two_way_expected: p.identity.is_some() || p.target.check_refuses_anonymous_tls,
            timeout: p.target.timeout,
        }
    }

    async fn probe_transport(&self, p: &Prepared<'_>, transport: Transport) -> TransportReport {
        let mut endpoint = endpoint(p.target, transport);
        let url = endpoint.url();
        let mut served = None;
        let outcome = self.round_trip(p, &mut endpoint, &mut served).await;
        let outcome = match outcome {
            Ok(mut rt)
                if p.target.check_refuses_anonymous_tls
                    && p.target
                        .anonymous_check_transports
                        .as_ref()
                        .is_none_or(|t| t.contains(&transport)) =>
            {
                match self.anonymous_refused(p, transport).await {
                    Ok(how) => {
                        rt.anonymous_refused = Some(how);
                        Ok(rt)
                    }
                    Err(e) => Err(e),
                }
            }
            other => other,
        };
        match &outcome {
            Ok(rt) => tracing::info!(
                url = %url,
                round_trip_ms = rt.round_trip.as_millis() as u64,
                "MQTT round trip verified"
            ),
            Err(e) => tracing::debug!(url = %url, error = %e, "MQTT verification failed"),
        }
        TransportReport {
            transport,
            url,
            outcome,
            server_certificate: served,
        }
    }

    async fn round_trip(
        &self,
        p: &Prepared<'_>,
        endpoint: &mut Endpoint,
        served_out: &mut Option<ServerCertificate>,
    ) -> Result<RoundTrip, VerifyError> {
        let limit = p.target.timeout;
        let started = Instant::now();
        let (config, seen) = client_config(&p.trust, p.identity.as_ref())?;
        let dial = self.dial(p, true, &seen, config);
        let Opened {
            stream,
            server_certificate,
        } = match open(endpoint, &dial).await {
            Ok(opened) => opened,
            Err((e, served)) => {
                *served_out = served;
                return Err(e);
            }
        };
        *served_out = server_certificate.clone();
        check_fingerprint(p.target, endpoint, server_certificate.as_ref())?;

        let mut session = Session::new(stream);
        let client_id = format!("brokercert-{}", unique());
        let login = p.login.as_ref().map(|(u, pw)| (u.as_str(), pw.as_str()));
        let ep = endpoint.clone();
        let session_err = |step: Step, e: std::io::Error| {
            session_error(
                &ep,
                step,
                &e,
                dial.presents_client_cert,
                dial.two_way_expected,
            )
        };

        let code = step(
            &ep,
            Step::MqttConnect,
            limit,
            session.connect(&client_id, login),
        )
        .await?
        .map_err(|e| session_err(Step::MqttConnect, e))?;
        if code != ConnectReturnCode::Success {
            return Err(VerifyError::MqttRefused {
                endpoint: ep.boxed(),
                code: format!("{code:?}"),
                hint: connack_hint(&code, login.is_some()),
            });
        }
        let connect_time = started.elapsed();

        let topic = format!("brokercert/verify/{}", unique());
        let granted = step(&ep, Step::Subscribe, limit, session.subscribe(&topic))
            .await?
            .map_err(|e| session_err(Step::Subscribe, e))?;
        if !granted {
            return Err(VerifyError::SubscribeRefused {
                endpoint: ep.boxed(),
                topic,
            });
        }

        let payload = format!("brokercert verification {}{}", unique(), unique());
        let sent = Instant::now();
        step(
            &ep,
            Step::RoundTrip,
            limit,
            session.round_trip(&topic, payload.as_bytes()),
        )
        .await?
        .map_err(|e| session_err(Step::RoundTrip, e))?;
        let round_trip = sent.elapsed();
        let _ = tokio::time::timeout(Duration::from_secs(1), session.disconnect()).await;

        Ok(RoundTrip {
            peer: endpoint.addr.unwrap_or_else(|| {
                std::net::SocketAddr::new(std::net::Ipv4Addr::UNSPECIFIED.into(), endpoint.port)
            }),
            connect_time,
            round_trip,
            topic,
            anonymous_refused: None,
        })
    }

    /// Connects without a client certificate; `Ok(how it was refused)` when
    /// the broker refused, an error when it sent a CONNACK (of any kind).
    async fn anonymous_refused(
        &self,
        p: &Prepared<'_>,
        transport: Transport,
    ) -> Result<String, VerifyError> {
        let mut endpoint = endpoint(p.target, transport);
        let (config, seen) = client_config(&p.trust, None)?;
        let dial = self.dial(p, false, &seen, config);
        let stream = match open(&mut endpoint, &dial).await {
            Ok(opened) => opened.stream,
            Err((e, _)) => {
                return match e {
                    VerifyError::ClientCertificateRequired { how, .. }
                    | VerifyError::ClientCertificateRejected { how, .. } => Ok(how),
                    VerifyError::Tls { reason, .. } => {
                        Ok(format!("TLS handshake failed: {reason}"))
                    }
                    VerifyError::Mqtt { reason, .. } => Ok(reason),
                    other => Err(VerifyError::AnonymousCheckInconclusive {
                        endpoint: endpoint.boxed(),
                        reason: other.to_string(),
                    }),
                };
            }
        };
        let mut session = Session::new(stream);
        let client_id = format!("brokercert-{}", unique());
        let login = p.login.as_ref().map(|(u, pw)| (u.as_str(), pw.as_str()));
        let answer = step(
            &endpoint,
            Step::MqttConnect,
            p.target.timeout,
            session.connect(&client_id, login),
        )
        .await;
        match answer {
            Ok(Ok(_code)) => {
                let _ = tokio::time::timeout(Duration::from_secs(1), session.disconnect()).await;
                Err(VerifyError::AnonymousAccepted {
                    endpoint: endpoint.boxed(),
                })
            }
            Ok(Err(e)) => Ok(describe_refusal(&e)),
            Err(timeout) => Err(VerifyError::AnonymousCheckInconclusive {
                endpoint: endpoint.boxed(),
                reason: timeout.to_string(),
            }),
        }
    }
}

fn describe_refusal(e: &std::io::Error) -> String {
    match rustls_error_in(e) {
        Some(rustls::Error::AlertReceived(alert)) => format!("TLS alert {alert:?}"),
        Some(other) => format!("TLS error: {other}"),
        None => format!("connection ended before CONNACK: {e}"),
    }
}

fn endpoint(target: &ProbeTarget, transport: Transport) -> Endpoint {
    Endpoint {
        transport,
        host: target.host.clone(),
        port: target.port(transport),
        path: match transport {
            Transport::Mqtts => None,
            Transport::Wss => Some(target.normalised_wss_path()),
        },
        addr: None,
    }
}

async fn step<T>(
    endpoint: &Endpoint,
    step: Step,
    limit: Duration,
    fut: impl Future<Output = T>,
) -> Result<T, VerifyError> {
    tokio::time::timeout(limit, fut)
        .await
        .map_err(|_| VerifyError::Timeout {
            endpoint: endpoint.boxed(),
            step,
            timeout: limit,
        })
}

fn check_fingerprint(
    target: &ProbeTarget,
    endpoint: &Endpoint,
    served: Option<&ServerCertificate>,
) -> Result<(), VerifyError> {
    let Some(expected) = &target.expect_cert_fingerprint else {
        return Ok(());
    };
    let expected_hex = normalise_fingerprint(expected);
    let Some(served) = served else {
        return Err(VerifyError::Internal {
            reason: "the TLS handshake finished without recording the server's certificate"
                .to_string(),
        });
    };
    if normalise_fingerprint(&served.sha256_fingerprint) == expected_hex {
        return Ok(());
    }
    let expected = match &target.expect_cert_serial {
        Some(serial) => format!("serial {serial}, SHA-256 {expected_hex}"),
        None => format!("SHA-256 {expected_hex}"),
    };
    Err(VerifyError::FingerprintMismatch {
        endpoint: endpoint.boxed(),
        served: Box::new(served.clone()),
        expected,
    })
}

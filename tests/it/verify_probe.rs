//! The MQTT verification probe against a real Mosquitto on 127.0.0.1: one-way
//! mqtts + wss round trips reached through the connect-address override (the
//! name `mqtt.example.test` is only ever used for SNI, verification and the
//! Host header), each certificate failure mode, two-way TLS, and passwords.
//!
//! Every probe here is given a resolver that panics, except the one test of
//! the resolver seam, which answers from a fixed table: no test ever asks the
//! system resolver or any DNS server.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use brokercert::pki::certificate::Certificate;
use brokercert::verify::{
    FnResolver, MqttProbe, ProbeTarget, Resolver, Secret, Step, TlsMqttProbe, Transport,
    VerifyError,
};
use mosquitto::{Listener, Mosquitto, MosquittoConfig};
use pki::Pki;

const HOST: &str = "mqtt.example.test";
const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Test certificates made with rcgen (ECDSA P-256).
mod pki {
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
        IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };

    /// A certificate and its key as PEM.
    pub struct Issued {
        pub cert_pem: String,
        pub key_pem: String,
        pub der: Vec<u8>,
    }

    /// A CA that can sign.
    pub struct Ca {
        pub cert_pem: String,
        issuer: Issuer<'static, KeyPair>,
    }

    fn ca_params(cn: &str) -> CertificateParams {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params
    }

    impl Ca {
        pub fn root(cn: &str) -> Ca {
            let key = KeyPair::generate().expect("root key");
            let params = ca_params(cn);
            let cert = params.self_signed(&key).expect("root cert");
            Ca {
                cert_pem: cert.pem(),
                issuer: Issuer::new(params, key),
            }
        }

        pub fn intermediate(&self, cn: &str) -> Ca {
            let key = KeyPair::generate().expect("intermediate key");
            let params = ca_params(cn);
            let cert = params
                .signed_by(&key, &self.issuer)
                .expect("intermediate cert");
            Ca {
                cert_pem: cert.pem(),
                issuer: Issuer::new(params, key),
            }
        }

        fn leaf(&self, cn: &str, names: &[&str], usage: ExtendedKeyUsagePurpose) -> Issued {
            let key = KeyPair::generate().expect("leaf key");
            let mut params =
                CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                    .expect("leaf params");
            let mut dn = DistinguishedName::new();
            dn.push(DnType::CommonName, cn);
            params.distinguished_name = dn;
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            params.extended_key_usages = vec![usage];
            let cert = params.signed_by(&key, &self.issuer).expect("leaf cert");
            Issued {
                cert_pem: cert.pem(),
                key_pem: key.serialize_pem(),
                der: cert.der().to_vec(),
            }
        }

        pub fn server(&self, name: &str) -> Issued {
            self.leaf(name, &[name], ExtendedKeyUsagePurpose::ServerAuth)
        }

        pub fn client(&self, cn: &str) -> Issued {
            self.leaf(cn, &[], ExtendedKeyUsagePurpose::ClientAuth)
        }
    }

    /// Root → intermediate → leaf for `mqtt.example.test`, plus client CAs.
    pub struct Pki {
        pub root: Ca,
        pub intermediate: Ca,
        pub leaf: Issued,
        pub client_ca: Ca,
        pub client: Issued,
        pub other_client_ca: Ca,
        pub other_client: Issued,
    }

    impl Pki {
        pub fn new() -> Pki {
            let root = Ca::root("brokercert test root");
            let intermediate = root.intermediate("brokercert test intermediate");
            let leaf = intermediate.server(super::HOST);
            let client_ca = Ca::root("brokercert test client CA");
            let client = client_ca.client("device-1");
            let other_client_ca = Ca::root("someone else's client CA");
            let other_client = other_client_ca.client("intruder");
            Pki {
                root,
                intermediate,
                leaf,
                client_ca,
                client,
                other_client_ca,
                other_client,
            }
        }

        /// Leaf followed by the intermediate (fullchain.pem).
        pub fn full_chain(&self) -> String {
            format!("{}{}", self.leaf.cert_pem, self.intermediate.cert_pem)
        }
    }
}

/// A Mosquitto of our own: config and files in a temp dir, listeners on
/// 127.0.0.1 only, stopped by PID on drop.
mod mosquitto {
    use std::fs;
    use std::io::Read;
    use std::net::{SocketAddr, TcpListener, TcpStream};
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    const BINARY: &str = "/usr/sbin/mosquitto";

    /// What to write into the config.
    #[derive(Default)]
    pub struct MosquittoConfig {
        /// certfile contents (leaf + chain).
        pub cert_pem: String,
        /// keyfile contents.
        pub key_pem: String,
        /// With two-way TLS on the mqtts listener: the client CA.
        pub client_ca_pem: Option<String>,
        /// `user:password` pairs for a password file (then anonymous is off).
        pub users: Vec<(String, String)>,
    }

    #[derive(Debug, Clone, Copy)]
    pub enum Listener {
        Mqtts,
        Wss,
    }

    pub struct Mosquitto {
        child: Child,
        dir: tempfile::TempDir,
        pub mqtts_port: u16,
        pub wss_port: u16,
    }

    /// A port that was free a moment ago.
    pub fn free_port() -> u16 {
        TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("bind 127.0.0.1:0")
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        fs::write(&path, text).expect("write file");
        // Mosquitto started as root drops to user `mosquitto`: keep files readable.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        path
    }

    impl Mosquitto {
        pub fn start(config: MosquittoConfig) -> Mosquitto {
            let dir = tempfile::tempdir().expect("temp dir");
            fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod dir");
            let d = dir.path();
            let cert = write(d, "server-chain.pem", &config.cert_pem);
            let key = write(d, "server-key.pem", &config.key_pem);
            let mqtts_port = free_port();
            let wss_port = free_port();

            let mut conf = String::from(
                "log_dest stderr\nlog_type all\nconnection_messages true\npersistence false\n",
            );
            if config.users.is_empty() {
                conf.push_str("allow_anonymous true\n");
            } else {
                let pw = write(d, "passwords", "");
                for (user, password) in &config.users {
                    let status = Command::new("mosquitto_passwd")
                        .arg("-b")
                        .arg(&pw)
                        .arg(user)
                        .arg(password)
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .status()
                        .expect("run mosquitto_passwd");
                    assert!(status.success(), "mosquitto_passwd failed");
                }
                fs::set_permissions(&pw, fs::Permissions::from_mode(0o644)).expect("chmod");
                conf.push_str(&format!(
                    "allow_anonymous false\npassword_file {}\n",
                    pw.display()
                ));
            }
            conf.push_str(&format!(
                "\nlistener {mqtts_port} 127.0.0.1\nsocket_domain ipv4\ncertfile {}\nkeyfile {}\n",
                cert.display(),
                key.display()
            ));
            if let Some(ca) = &config.client_ca_pem {
                let ca = write(d, "client-ca.pem", ca);
                conf.push_str(&format!(
                    "cafile {}\nrequire_certificate true\n",
                    ca.display()
                ));
            }
            conf.push_str(&format!(
                "\nlistener {wss_port} 127.0.0.1\nsocket_domain ipv4\nprotocol websockets\ncertfile {}\nkeyfile {}\n",
                cert.display(),
                key.display()
            ));
            let conf_path = write(d, "mosquitto.conf", &conf);
            let log = fs::File::create(d.join("mosquitto.log")).expect("log file");
            let child = Command::new(BINARY)
                .arg("-c")
                .arg(&conf_path)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start mosquitto (apt-get install mosquitto)");
            let mut m = Mosquitto {
                child,
                dir,
                mqtts_port,
                wss_port,
            };
            m.wait_ready();
            m
        }

        fn wait_ready(&mut self) {
            let deadline = Instant::now() + Duration::from_secs(5);
            for port in [self.mqtts_port, self.wss_port] {
                let addr = SocketAddr::from(([127, 0, 0, 1], port));
                loop {
                    if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                        break;
                    }
                    if let Ok(Some(status)) = self.child.try_wait() {
                        panic!("mosquitto exited ({status}):\n{}", self.log());
                    }
                    assert!(
                        Instant::now() < deadline,
                        "mosquitto did not listen on {port}:\n{}",
                        self.log()
                    );
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }

        pub fn port(&self, listener: Listener) -> u16 {
            match listener {
                Listener::Mqtts => self.mqtts_port,
                Listener::Wss => self.wss_port,
            }
        }

        /// Mosquitto's log so far.
        pub fn log(&self) -> String {
            let mut text = String::new();
            if let Ok(mut f) = fs::File::open(self.dir.path().join("mosquitto.log")) {
                let _ = f.read_to_string(&mut text);
            }
            text
        }
    }

    impl Drop for Mosquitto {
        fn drop(&mut self) {
            // `Child::kill` signals exactly this PID.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------- helpers

/// A resolver that must never be asked: every probe here uses the override.
fn no_dns() -> Arc<dyn Resolver> {
    Arc::new(FnResolver(
        |host: &str, _port: u16| -> io::Result<Vec<SocketAddr>> {
            panic!("the probe asked a resolver for {host} despite the connect-address override")
        },
    ))
}

fn probe() -> TlsMqttProbe {
    TlsMqttProbe::new(no_dns())
}

fn one_way(pki: &Pki) -> Mosquitto {
    Mosquitto::start(MosquittoConfig {
        cert_pem: pki.full_chain(),
        key_pem: pki.leaf.key_pem.clone(),
        ..MosquittoConfig::default()
    })
}

fn target(m: &Mosquitto, pki: &Pki) -> ProbeTarget {
    let mut t = ProbeTarget::new(HOST);
    t.connect_addr = Some(LOCALHOST);
    t.mqtts_port = m.port(Listener::Mqtts);
    t.wss_port = m.port(Listener::Wss);
    t.ca_pem = Some(pki.root.cert_pem.clone());
    t.timeout = Duration::from_secs(5);
    t
}

fn leaf_of(pki: &Pki) -> Certificate {
    Certificate::from_der(&pki.leaf.der).expect("leaf parses")
}

/// Runs the probe and returns the error of `transport`, failing if it passed.
async fn failure(t: &ProbeTarget, transport: Transport, m: Option<&Mosquitto>) -> VerifyError {
    let report = probe().probe(t).await.expect("target is usable");
    let r = report.get(transport).expect("transport tried");
    match &r.outcome {
        Err(e) => {
            eprintln!("{transport}: {e}\n");
            e.clone()
        }
        Ok(rt) => panic!(
            "expected {transport} to fail, it passed: {rt:?}\n{}",
            m.map(Mosquitto::log).unwrap_or_default()
        ),
    }
}

// ---------------------------------------------------------------- one-way

#[tokio::test]
async fn one_way_round_trip_on_mqtts_and_wss_through_the_override() {
    let pki = Pki::new();
    let m = one_way(&pki);
    let leaf = leaf_of(&pki);
    let mut t = target(&m, &pki);
    t.expect_cert_fingerprint = Some(leaf.sha256_fingerprint().to_uppercase());

    let report = probe().probe(&t).await.expect("target is usable");
    assert!(report.is_ok(), "{report}\n{}", m.log());
    assert_eq!(report.transports.len(), 2);
    for transport in [Transport::Mqtts, Transport::Wss] {
        let r = report.get(transport).expect("tried");
        let rt = r.outcome.as_ref().expect("round trip");
        assert_eq!(rt.peer.ip(), LOCALHOST);
        assert!(rt.topic.starts_with("brokercert/verify/"), "{}", rt.topic);
        assert!(rt.round_trip < Duration::from_secs(5));
        let cert = r.server_certificate.as_ref().expect("served certificate");
        assert_eq!(cert.sha256_fingerprint, leaf.sha256_fingerprint());
        assert_eq!(cert.serial_hex, leaf.serial_hex());
        assert_eq!(cert.dns_names, vec![HOST.to_string()]);
        assert_eq!(cert.intermediates.len(), 1, "served with its intermediate");
        assert!(cert.not_after.is_some());
    }
    let text = report.to_string();
    assert!(text.contains("mqtts://mqtt.example.test:"), "{text}");
    assert!(text.contains("/mqtt: ok"), "{text}");
    assert!(text.contains("overall: ok"), "{text}");
}

#[tokio::test]
async fn without_override_the_callers_resolver_is_used() {
    let pki = Pki::new();
    let m = one_way(&pki);
    let mut t = target(&m, &pki);
    t.connect_addr = None;
    t.transports = vec![Transport::Wss];
    let table: Arc<dyn Resolver> = Arc::new(FnResolver(|host: &str, port: u16| {
        assert_eq!(host, HOST);
        Ok(vec![SocketAddr::new(LOCALHOST, port)])
    }));
    let report = TlsMqttProbe::new(table)
        .probe(&t)
        .await
        .expect("target is usable");
    assert!(report.is_ok(), "{report}\n{}", m.log());
}

#[tokio::test]
async fn a_different_served_certificate_is_named_by_serial() {
    let pki = Pki::new();
    let m = one_way(&pki);
    let served = leaf_of(&pki);
    let deployed = Certificate::from_der(&pki.intermediate.server(HOST).der).expect("parses");
    let mut t = target(&m, &pki);
    t.expect_cert_fingerprint = Some(deployed.sha256_fingerprint().to_string());
    t.expect_cert_serial = Some(deployed.serial_hex().to_string());

    for transport in [Transport::Mqtts, Transport::Wss] {
        let e = failure(&t, transport, Some(&m)).await;
        assert!(matches!(e, VerifyError::FingerprintMismatch { .. }), "{e}");
        let text = e.to_string();
        assert!(
            text.contains(&format!("still serves serial {}", served.serial_hex())),
            "{text}"
        );
        assert!(
            text.contains(&format!("serial {}", deployed.serial_hex())),
            "{text}"
        );
        assert!(text.contains("not after"), "{text}");
    }
}

#[tokio::test]
async fn a_ca_file_that_does_not_match_is_an_issuer_error() {
    let pki = Pki::new();
    let m = one_way(&pki);
    let mut t = target(&m, &pki);
    t.ca_pem = Some(pki::Ca::root("wrong root").cert_pem);

    let report = probe().probe(&t).await.expect("target is usable");
    assert!(!report.is_ok());
    for transport in [Transport::Mqtts, Transport::Wss] {
        let r = report.get(transport).expect("tried");
        let e = r.outcome.as_ref().expect_err("must fail");
        assert!(matches!(e, VerifyError::UnknownIssuer { .. }), "{e}");
        let text = e.to_string();
        assert!(
            text.contains("unable to get the issuer certificate"),
            "{text}"
        );
        assert!(text.contains("CN=wrong root"), "{text}");
        assert!(text.contains("wrong root (for Let's Encrypt"), "{text}");
        // The served chain is still reported.
        let cert = r.server_certificate.as_ref().expect("recorded");
        assert_eq!(cert.sha256_fingerprint, leaf_of(&pki).sha256_fingerprint());
    }
}

#[tokio::test]
async fn a_broker_serving_the_leaf_alone_is_told_to_deploy_the_chain() {
    let pki = Pki::new();
    let m = Mosquitto::start(MosquittoConfig {
        cert_pem: pki.leaf.cert_pem.clone(),
        key_pem: pki.leaf.key_pem.clone(),
        ..MosquittoConfig::default()
    });
    let mut t = target(&m, &pki);
    t.transports = vec![Transport::Mqtts];
    let e = failure(&t, Transport::Mqtts, Some(&m)).await;
    assert!(matches!(e, VerifyError::UnknownIssuer { .. }), "{e}");
    let text = e.to_string();
    assert!(text.contains("leaf alone"), "{text}");
    assert!(text.contains("fullchain.pem"), "{text}");
}

#[tokio::test]
async fn a_host_name_not_in_the_certificate_is_a_name_mismatch() {
    let pki = Pki::new();
    let m = one_way(&pki);
    let mut t = target(&m, &pki);
    t.host = "other.example.test".to_string();
    for transport in [Transport::Mqtts, Transport::Wss] {
        let e = failure(&t, transport, Some(&m)).await;
        assert!(matches!(e, VerifyError::NameMismatch { .. }), "{e}");
        let text = e.to_string();
        assert!(text.contains("not valid for other.example.test"), "{text}");
        assert!(text.contains(&format!("it is for {HOST}")), "{text}");
        assert!(text.contains("CNAME"), "{text}");
    }
}

#[tokio::test]
async fn nothing_listening_is_a_connection_error_naming_the_port() {
    let pki = Pki::new();
    let mut t = ProbeTarget::new(HOST);
    t.connect_addr = Some(LOCALHOST);
    t.mqtts_port = mosquitto::free_port();
    t.wss_port = mosquitto::free_port();
    t.ca_pem = Some(pki.root.cert_pem.clone());
    for transport in [Transport::Mqtts, Transport::Wss] {
        let e = failure(&t, transport, None).await;
        assert!(matches!(e, VerifyError::ConnectionRefused { .. }), "{e}");
        let text = e.to_string();
        assert!(
            text.contains(&format!("port {}", t.port(transport))),
            "{text}"
        );
        assert!(text.contains(&format!("{transport} listener")), "{text}");
        assert!(text.contains("(at 127.0.0.1:"), "{text}");
    }
}

#[tokio::test]
async fn a_port_that_never_speaks_tls_times_out_in_the_handshake() {
    let pki = Pki::new();
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = silent.local_addr().expect("addr").port();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let mut t = ProbeTarget::new(HOST);
    t.connect_addr = Some(LOCALHOST);
    t.mqtts_port = port;
    t.transports = vec![Transport::Mqtts];
    t.ca_pem = Some(pki.root.cert_pem.clone());
    t.timeout = Duration::from_millis(300);
    let e = failure(&t, Transport::Mqtts, None).await;
    assert!(
        matches!(
            e,
            VerifyError::Timeout {
                step: Step::TlsHandshake,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("does not speak TLS"), "{e}");
    holder.abort();
}

#[tokio::test]
async fn unusable_targets_are_refused_before_connecting() {
    let mut t = ProbeTarget::new(HOST);
    t.connect_addr = Some(LOCALHOST);
    t.transports.clear();
    assert!(matches!(
        probe().probe(&t).await,
        Err(VerifyError::NoTransport)
    ));
    let mut t = ProbeTarget::new(HOST);
    t.ca_pem = Some("not a certificate".to_string());
    assert!(matches!(
        probe().probe(&t).await,
        Err(VerifyError::InvalidCaFile { .. })
    ));
    let mut t = ProbeTarget::new(HOST);
    t.client_cert_pem = Some(Pki::new().client.cert_pem);
    assert!(matches!(
        probe().probe(&t).await,
        Err(VerifyError::InvalidClientIdentity { .. })
    ));
}

// ---------------------------------------------------------------- two-way

fn two_way(pki: &Pki) -> Mosquitto {
    Mosquitto::start(MosquittoConfig {
        cert_pem: pki.full_chain(),
        key_pem: pki.leaf.key_pem.clone(),
        client_ca_pem: Some(pki.client_ca.cert_pem.clone()),
        ..MosquittoConfig::default()
    })
}

/// Mosquitto's WebSocket listener cannot require client certificates, so the
/// two-way cases use mqtts only.
fn two_way_target(m: &Mosquitto, pki: &Pki, client: &pki::Issued) -> ProbeTarget {
    let mut t = target(m, pki);
    t.transports = vec![Transport::Mqtts];
    t.client_cert_pem = Some(client.cert_pem.clone());
    t.client_key_pem = Some(Secret::new(client.key_pem.clone()));
    t
}

#[tokio::test]
async fn two_way_with_the_client_certificate_passes_and_anonymous_is_refused() {
    let pki = Pki::new();
    let m = two_way(&pki);
    let mut t = two_way_target(&m, &pki, &pki.client);
    t.check_refuses_anonymous_tls = true;
    let report = probe().probe(&t).await.expect("target is usable");
    assert!(report.is_ok(), "{report}\n{}", m.log());
    eprintln!("{report}");
    let rt = report
        .get(Transport::Mqtts)
        .and_then(|r| r.outcome.as_ref().ok())
        .expect("round trip");
    let how = rt
        .anonymous_refused
        .as_deref()
        .expect("anonymous check ran");
    assert!(!how.is_empty());
    assert!(
        report
            .to_string()
            .contains("without a certificate was refused")
    );
}

#[tokio::test]
async fn two_way_without_a_client_certificate_is_told_to_give_one() {
    let pki = Pki::new();
    let m = two_way(&pki);
    let mut t = target(&m, &pki);
    t.transports = vec![Transport::Mqtts];
    let e = failure(&t, Transport::Mqtts, Some(&m)).await;
    assert!(
        matches!(e, VerifyError::ClientCertificateRequired { .. }),
        "{e}\n{}",
        m.log()
    );
    assert!(e.to_string().contains("give the client certificate"), "{e}");
}

#[tokio::test]
async fn a_client_certificate_from_another_ca_is_refused() {
    let pki = Pki::new();
    let m = two_way(&pki);
    let t = two_way_target(&m, &pki, &pki.other_client);
    let e = failure(&t, Transport::Mqtts, Some(&m)).await;
    assert!(
        matches!(e, VerifyError::ClientCertificateRejected { .. }),
        "{e}\n{}",
        m.log()
    );
    assert!(e.to_string().contains("client CA"), "{e}");
    // Keep the other CA alive for clarity of what signed the intruder.
    assert!(pki.other_client_ca.cert_pem.contains("BEGIN CERTIFICATE"));
}

#[tokio::test]
async fn the_anonymous_check_fails_on_a_one_way_listener() {
    let pki = Pki::new();
    let m = one_way(&pki);
    let mut t = two_way_target(&m, &pki, &pki.client);
    t.check_refuses_anonymous_tls = true;
    let e = failure(&t, Transport::Mqtts, Some(&m)).await;
    assert!(matches!(e, VerifyError::AnonymousAccepted { .. }), "{e}");
    assert!(e.to_string().contains("two-way TLS is not enforced"), "{e}");
}

// ---------------------------------------------------------------- passwords

#[tokio::test]
async fn username_and_password_are_checked_by_the_broker() {
    let pki = Pki::new();
    let m = Mosquitto::start(MosquittoConfig {
        cert_pem: pki.full_chain(),
        key_pem: pki.leaf.key_pem.clone(),
        users: vec![("device".to_string(), "s3cret-pass".to_string())],
        ..MosquittoConfig::default()
    });
    let mut t = target(&m, &pki);
    t.username = Some("device".to_string());
    t.password = Some(Secret::new("s3cret-pass"));
    let report = probe().probe(&t).await.expect("target is usable");
    assert!(report.is_ok(), "{report}\n{}", m.log());
    assert!(!format!("{t:?}").contains("s3cret-pass"));

    t.password = Some(Secret::new("wrong"));
    let e = failure(&t, Transport::Wss, Some(&m)).await;
    assert!(matches!(e, VerifyError::MqttRefused { .. }), "{e}");
    assert!(e.to_string().contains("password is wrong"), "{e}");
    assert!(!e.to_string().contains("wrong\""), "no secret in {e}");

    t.username = None;
    t.password = None;
    let e = failure(&t, Transport::Mqtts, Some(&m)).await;
    assert!(matches!(e, VerifyError::MqttRefused { .. }), "{e}");
    assert!(e.to_string().contains("requires authentication"), "{e}");
}

//! The EMQX Cloud Platform API emulator against real HTTPS (reqwest trusting only the
//! emulator's CA) and real Mosquitto brokers (TLS handshakes with tokio-rustls trusting
//! only the test's CA, MQTT CONNECT over mqtts and over wss). Certificates are made here
//! with rcgen, ECDSA P-256 (fast in debug builds).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use brokercert_sandbox::{
    Budgets, DeploymentPorts, DeploymentSpec, DropPoint, EmqxCloudEmulator, TlsStatus,
};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SerialNumber, SignatureAlgorithm,
};
use reqwest::Method;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const KEY: &str = "ak-test";
const SECRET: &str = "sk-test-secret";

// ---------------------------------------------------------------- certificates

struct Ca {
    params: CertificateParams,
    key: KeyPair,
    pem: String,
    der: Vec<u8>,
}

impl Ca {
    fn new(cn: &str) -> Ca {
        Ca::with_key(
            cn,
            KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("CA key"),
        )
    }

    /// An RSA 2048 CA (~0.3 s to generate in a debug build).
    fn rsa(cn: &str) -> Ca {
        let key = KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
            .expect("RSA CA key");
        Ca::with_key(cn, key)
    }

    fn with_key(cn: &str, key: KeyPair) -> Ca {
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
        let now = OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(10);
        params.not_after = now + time::Duration::days(3650);
        let cert = params.self_signed(&key).expect("CA certificate");
        Ca {
            pem: cert.pem(),
            der: cert.der().to_vec(),
            params,
            key,
        }
    }

    /// A leaf for `127.0.0.1` and `localhost` valid from yesterday for `days` days.
    fn leaf(&self, cn: &str, days: i64) -> Leaf {
        self.leaf_with(cn, days, &rcgen::PKCS_ECDSA_P256_SHA256)
    }

    fn leaf_with(&self, cn: &str, days: i64, alg: &'static SignatureAlgorithm) -> Leaf {
        let key = KeyPair::generate_for(alg).expect("leaf key");
        self.leaf_for_key(cn, days, key)
    }

    fn leaf_for_key(&self, cn: &str, days: i64, key: KeyPair) -> Leaf {
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("leaf params");
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        params.distinguished_name = dn;
        let now = OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(days);
        let serial: [u8; 8] = rand::random();
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).expect("leaf certificate");
        Leaf {
            pem: cert.pem(),
            der: cert.der().to_vec(),
            key_pem: key.serialize_pem(),
            key_der: key.serialize_der(),
            chain_pem: format!("{}{}", cert.pem(), self.pem),
        }
    }
}

struct Leaf {
    pem: String,
    der: Vec<u8>,
    key_pem: String,
    key_der: Vec<u8>,
    /// Leaf followed by its CA: what EMQX Cloud wants in `cert`.
    chain_pem: String,
}

impl Leaf {
    fn one_way(&self) -> Value {
        json!({ "tlsType": "one-way", "cert": self.chain_pem, "key": self.key_pem })
    }
}

// ---------------------------------------------------------------- the API

struct Env {
    emu: EmqxCloudEmulator,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Env {
    async fn start() -> Env {
        let dir = tempfile::tempdir().expect("temp dir");
        let emu = EmqxCloudEmulator::start(dir.path().join("emqx"))
            .await
            .expect("emulator starts");
        let ca = reqwest::Certificate::from_pem(
            &std::fs::read(emu.ca_pem_path()).expect("read the emulator CA"),
        )
        .expect("CA PEM");
        let client = reqwest::Client::builder()
            .tls_certs_only([ca])
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client");
        Env {
            emu,
            client,
            _dir: dir,
        }
    }

    fn dedicated(&self, id: &str) -> DeploymentPorts {
        self.emu
            .add_deployment(DeploymentSpec::dedicated(id, KEY, SECRET))
            .expect("add deployment");
        self.emu.deployment_ports(id).expect("dedicated ports")
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        auth: Option<(&str, &str)>,
        body: Option<&Value>,
    ) -> reqwest::Result<(u16, reqwest::header::HeaderMap, Value)> {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.emu.base_url()));
        if let Some((key, secret)) = auth {
            req = req.basic_auth(key, Some(secret));
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await?;
        let value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok((status, headers, value))
    }

    async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> (u16, Value) {
        let (status, _, value) = self
            .send(method, path, Some((KEY, SECRET)), body)
            .await
            .expect("request");
        (status, value)
    }

    /// Polls `GET /tls` until the status is not `pending`.
    async fn wait_status(&self, id: &str) -> Value {
        for _ in 0..50 {
            let (status, body) = self
                .call(Method::GET, &format!("/deployments/{id}/tls"), None)
                .await;
            assert_eq!(status, 200, "GET tls: {body}");
            if body["status"] != "pending" {
                return body;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("deployment {id} stayed pending");
    }
}

// ---------------------------------------------------------------- TLS and MQTT clients

fn client_config(ca_der: &[u8], client_auth: Option<&Leaf>) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(ca_der.to_vec()))
        .expect("add root");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    match client_auth {
        Some(leaf) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from(leaf.der.clone())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf.key_der.clone())),
            )
            .expect("client cert"),
        None => builder.with_no_client_auth(),
    }
}

type Tls = tokio_rustls::client::TlsStream<TcpStream>;

async fn tls_connect(addr: SocketAddr, ca_der: &[u8], client_auth: Option<&Leaf>) -> Tls {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config(ca_der, client_auth)));
    let tcp = TcpStream::connect(addr).await.expect("TCP connect");
    let name = ServerName::try_from("127.0.0.1").expect("server name");
    tokio::time::timeout(Duration::from_secs(5), connector.connect(name, tcp))
        .await
        .expect("handshake in time")
        .expect("TLS handshake verifying against the test CA")
}

/// The leaf certificate (DER) the server at `addr` presents.
async fn presented_leaf(addr: SocketAddr, ca_der: &[u8]) -> Vec<u8> {
    let tls = tls_connect(addr, ca_der, None).await;
    let (_, conn) = tls.get_ref();
    conn.peer_certificates().expect("server certificates")[0].to_vec()
}

/// An MQTT 3.1.1 CONNECT packet.
fn connect_packet(user: Option<(&str, &str)>) -> Vec<u8> {
    let mut vh = vec![0, 4, b'M', b'Q', b'T', b'T', 4];
    let mut flags = 0x02;
    if user.is_some() {
        flags |= 0xc0;
    }
    vh.extend_from_slice(&[flags, 0, 30]);
    let mut field = |s: &str| {
        vh.extend_from_slice(&(s.len() as u16).to_be_bytes());
        vh.extend_from_slice(s.as_bytes());
    };
    field("brokercert-test");
    if let Some((u, p)) = user {
        field(u);
        field(p);
    }
    assert!(vh.len() < 128);
    let mut packet = vec![0x10, vh.len() as u8];
    packet.extend_from_slice(&vh);
    packet
}

/// CONNECT over a TLS stream; the CONNACK return code, or why there was none.
async fn mqtt_connect<S>(stream: &mut S, user: Option<(&str, &str)>) -> Result<u8, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    stream
        .write_all(&connect_packet(user))
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut ack = [0u8; 4];
    match tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut ack)).await {
        Err(_) => Err("no CONNACK in time".into()),
        Ok(Err(e)) => Err(format!("read: {e}")),
        Ok(Ok(_)) if ack[0] == 0x20 && ack[1] == 2 => Ok(ack[3]),
        Ok(Ok(_)) => Err(format!("not a CONNACK: {ack:?}")),
    }
}

/// Opens `wss://127.0.0.1:<wss>/mqtt`, sends CONNECT in one masked WebSocket frame and
/// returns the CONNACK return code.
async fn wss_connect(
    addr: SocketAddr,
    ca_der: &[u8],
    client_auth: Option<&Leaf>,
) -> Result<u8, String> {
    let mut tls = tls_connect(addr, ca_der, client_auth).await;
    let key = STANDARD.encode(rand::random::<[u8; 16]>());
    let request = format!(
        "GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n",
        addr.port()
    );
    tls.write_all(request.as_bytes())
        .await
        .map_err(|e| format!("write upgrade: {e}"))?;
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        match tokio::time::timeout(Duration::from_secs(5), tls.read(&mut byte)).await {
            Ok(Ok(1)) => head.push(byte[0]),
            other => return Err(format!("reading the upgrade answer: {other:?}")),
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    if !head.starts_with("HTTP/1.1 101") {
        return Err(format!("no upgrade: {head}"));
    }
    let payload = connect_packet(None);
    let mask: [u8; 4] = rand::random();
    let mut frame = vec![0x82, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    tls.write_all(&frame)
        .await
        .map_err(|e| format!("write frame: {e}"))?;
    let mut answer = [0u8; 6];
    tokio::time::timeout(Duration::from_secs(5), tls.read_exact(&mut answer))
        .await
        .map_err(|_| "no CONNACK frame in time".to_owned())?
        .map_err(|e| format!("read frame: {e}"))?;
    match answer {
        [0x82, 4, 0x20, 2, _, rc] => Ok(rc),
        other => Err(format!("unexpected frame {other:?}")),
    }
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn auth_scope_lookup_and_serverless_errors() {
    let env = Env::start().await;
    env.emu
        .add_deployment(DeploymentSpec::dedicated("ded1", KEY, SECRET).deployment_scope(true))
        .expect("add deployment");
    env.emu
        .add_deployment(DeploymentSpec::serverless("srv1", KEY, SECRET).deployment_scope(true))
        .expect("serverless");
    env.emu
        .add_deployment(DeploymentSpec::dedicated("ded2", "ak-noscope", "sk2").scopes_ok(false))
        .expect("no scope");
    env.emu
        .add_deployment(DeploymentSpec::dedicated("other", "ak-other", "sk3"))
        .expect("other account");
    assert!(env.emu.deployment_ports("srv1").is_none());

    let tls = "/deployments/ded1/tls";
    let (status, headers, _) = env
        .send(Method::GET, tls, None, None)
        .await
        .expect("no auth");
    assert_eq!(status, 401);
    assert!(headers.contains_key("www-authenticate"));
    let (status, _, _) = env
        .send(Method::GET, tls, Some((KEY, "wrong")), None)
        .await
        .expect("wrong secret");
    assert_eq!(status, 401);
    let (status, _, body) = env
        .send(
            Method::GET,
            "/deployments/ded2/tls",
            Some(("ak-noscope", "sk2")),
            None,
        )
        .await
        .expect("no scope");
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        env.call(Method::GET, "/deployments/nope/tls", None).await.0,
        404
    );
    assert_eq!(
        env.call(Method::GET, "/deployments/other", None).await.0,
        404,
        "another key's deployment is invisible"
    );

    let (status, body) = env.call(Method::GET, "/deployments/ded1", None).await;
    assert_eq!(status, 200);
    assert_eq!(body["id"], "ded1");
    assert_eq!(body["deploymentType"], "dedicated");
    assert_eq!(body["status"], "running");
    assert!(body["version"].as_str().expect("version").starts_with('5'));
    let (_, body) = env.call(Method::GET, "/deployments/srv1", None).await;
    assert_eq!(body["deploymentType"], "serverless");

    let leaf = Ca::new("Test CA").leaf("127.0.0.1", 90);
    let (status, body) = env
        .call(Method::POST, "/deployments/srv1/tls", Some(&leaf.one_way()))
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "NOT_SUPPORTED");
    assert!(
        body["message"]
            .as_str()
            .expect("message")
            .contains("Serverless")
    );

    let (status, body) = env.call(Method::GET, tls, None).await;
    assert_eq!(status, 404, "no TLS configured yet");
    assert_eq!(body["code"], "TLS_NOT_FOUND");
    assert_eq!(
        env.call(Method::PUT, tls, Some(&leaf.one_way())).await.0,
        404
    );
    assert_eq!(env.call(Method::DELETE, tls, None).await.0, 404);
    assert!(!env.emu.broker_running("ded1").await);

    let log = env.emu.requests();
    assert_eq!(log[0].method, "GET");
    assert_eq!(log[0].path, "/public_api/v1/deployments/ded1/tls");
    assert_eq!(log[0].status, 401);
    assert_eq!(log.len(), 11);
}

#[tokio::test]
async fn post_then_put_are_served_by_mosquitto_on_mqtts_and_wss() {
    let env = Env::start().await;
    env.emu
        .add_deployment(DeploymentSpec::dedicated("d1", KEY, SECRET).mqtt_user("dev", "pw"))
        .expect("add");
    let ports = env.emu.deployment_ports("d1").expect("ports");
    let ca = Ca::new("Test CA");
    let first = ca.leaf("broker.example.test", 90);

    let (status, body) = env
        .call(Method::POST, "/deployments/d1/tls", Some(&first.one_way()))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "pending");
    assert_eq!(body["tlsType"], "one-way");
    assert_eq!(body["cn"], "broker.example.test");
    let body = env.wait_status("d1").await;
    assert_eq!(body["status"], "running", "{body}");
    let expire = body["expire"].as_str().expect("expire");
    assert_eq!(expire.len(), 19, "YYYY-MM-DD HH:MM:SS: {expire}");
    let expected = (OffsetDateTime::now_utc() + time::Duration::days(90)).date();
    assert!(expire.starts_with(&format!("{:04}-", expected.year())));

    assert_eq!(presented_leaf(ports.mqtts_addr(), &ca.der).await, first.der);
    assert_eq!(presented_leaf(ports.wss_addr(), &ca.der).await, first.der);
    let mut tls = tls_connect(ports.mqtts_addr(), &ca.der, None).await;
    assert_eq!(mqtt_connect(&mut tls, Some(("dev", "pw"))).await, Ok(0));
    let mut tls = tls_connect(ports.mqtts_addr(), &ca.der, None).await;
    assert_eq!(
        mqtt_connect(&mut tls, Some(("dev", "wrong"))).await,
        Ok(5),
        "not authorised"
    );
    assert_eq!(
        wss_connect(ports.wss_addr(), &ca.der, None).await,
        Ok(5),
        "anonymous refused over wss too"
    );

    let (status, body) = env
        .call(Method::POST, "/deployments/d1/tls", Some(&first.one_way()))
        .await;
    assert_eq!(status, 409, "POST over an existing configuration: {body}");
    assert_eq!(body["code"], "TLS_ALREADY_EXISTS");

    let second = ca.leaf("broker2.example.test", 120);
    let (status, body) = env
        .call(Method::PUT, "/deployments/d1/tls", Some(&second.one_way()))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "pending");
    let body = env.wait_status("d1").await;
    assert_eq!(body["status"], "running");
    assert_eq!(body["cn"], "broker2.example.test");
    assert_eq!(
        presented_leaf(ports.mqtts_addr(), &ca.der).await,
        second.der
    );
    assert_eq!(
        presented_leaf(
            env.emu.deployment_ports("d1").expect("same").wss_addr(),
            &ca.der
        )
        .await,
        second.der
    );
    assert_eq!(
        env.emu.deployment_ports("d1"),
        Some(ports),
        "ports survive restarts"
    );
    assert_eq!(env.emu.write_count("d1"), 3);
    assert_eq!(env.emu.apply_count("d1"), 2);
}

#[tokio::test]
async fn certificates_the_service_refuses_get_422() {
    let env = Env::start().await;
    env.dedicated("d1");
    let path = "/deployments/d1/tls";
    env.emu.set_budgets(Budgets {
        writes: 100,
        ..Budgets::default()
    });
    let ca = Ca::new("Test CA");
    let good = ca.leaf("127.0.0.1", 90);

    let refuse = |rule: &'static str, body: Value| {
        let env = &env;
        async move {
            let (status, answer) = env.call(Method::POST, path, Some(&body)).await;
            assert_eq!(status, 422, "{rule}: {answer}");
            assert_eq!(answer["code"], "WRONG_PROPERTIES", "{answer}");
            assert_eq!(answer["rule"], rule, "{answer}");
            assert!(
                answer["message"]
                    .as_str()
                    .expect("message")
                    .starts_with("Wrong Properties")
            );
            answer
        }
    };

    let p521 = ca.leaf_with("127.0.0.1", 90, &rcgen::PKCS_ECDSA_P521_SHA512);
    let answer = refuse("key_type", p521.one_way()).await;
    assert!(
        answer["message"]
            .as_str()
            .expect("m")
            .contains("ECDSA P-521")
    );
    let ed = ca.leaf_with("127.0.0.1", 90, &rcgen::PKCS_ED25519);
    refuse("key_type", ed.one_way()).await;

    // 30 days left: fine for a TLS client, refused by the 60-day rule.
    let short = ca.leaf("127.0.0.1", 30);
    let answer = refuse("validity", short.one_way()).await;
    assert!(answer["message"].as_str().expect("m").contains("60 days"));
    let expired = {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("p");
        let now = OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(100);
        params.not_after = now - time::Duration::days(10);
        let cert = params
            .signed_by(&key, &Issuer::from_params(&ca.params, &ca.key))
            .expect("expired leaf");
        json!({ "tlsType": "one-way", "cert": format!("{}{}", cert.pem(), ca.pem), "key": key.serialize_pem() })
    };
    let answer = refuse("validity", expired.clone()).await;
    assert!(answer["message"].as_str().expect("m").contains("expired"));

    // An ECDSA leaf under an RSA CA: the key algorithm must match the issuer's.
    let rsa_ca = Ca::rsa("RSA CA");
    refuse("algorithm", rsa_ca.leaf("127.0.0.1", 90).one_way()).await;

    let mut mismatched = good.one_way();
    mismatched["key"] = json!(ca.leaf("127.0.0.1", 90).key_pem);
    refuse("key_mismatch", mismatched).await;

    let stranger = Ca::new("Another CA");
    let mut unlinked = good.one_way();
    unlinked["cert"] = json!(format!("{}{}", good.pem, stranger.pem));
    refuse("chain", unlinked).await;
    let mut lone = good.one_way();
    lone["cert"] = json!(good.pem);
    refuse("chain", lone).await;

    let mut not_pem = good.one_way();
    not_pem["cert"] = json!("MIIBkTCB+wIJAKHHIG...");
    refuse("pem", not_pem).await;
    let mut encrypted = good.one_way();
    encrypted["key"] = json!(good.key_pem.replace("PRIVATE KEY", "ENCRYPTED PRIVATE KEY"));
    refuse("encrypted_key", encrypted).await;
    let mut two_way = good.one_way();
    two_way["tlsType"] = json!("two-way");
    refuse("cacert", two_way).await;

    let (status, body) = env
        .call(Method::POST, path, Some(&json!({"tlsType": "one-way"})))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(!body.to_string().contains("BEGIN"), "errors never echo PEM");

    // Nothing was stored or applied, but every write spent budget.
    assert_eq!(env.call(Method::GET, path, None).await.0, 404);
    assert!(!env.emu.broker_running("d1").await);
    assert_eq!(env.emu.write_count("d1"), 12);
    assert_eq!(env.emu.apply_count("d1"), 0);

    // The window is a setting: with 0 days the 30-day leaf is accepted.
    env.emu.set_min_days_remaining(0);
    let (status, body) = env.call(Method::POST, path, Some(&short.one_way())).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(env.wait_status("d1").await["status"], "running");
    refuse_again_expired(&env, expired).await;
}

async fn refuse_again_expired(env: &Env, expired: Value) {
    let (status, body) = env
        .call(Method::PUT, "/deployments/d1/tls", Some(&expired))
        .await;
    assert_eq!(status, 422, "expired stays refused with 0 days: {body}");
}

#[tokio::test]
async fn a_failed_apply_keeps_the_previous_certificate_served() {
    let env = Env::start().await;
    let ports = env.dedicated("d1");
    let ca = Ca::new("Test CA");
    let first = ca.leaf("127.0.0.1", 90);
    let second = ca.leaf("127.0.0.1", 91);
    let path = "/deployments/d1/tls";
    assert_eq!(
        env.call(Method::POST, path, Some(&first.one_way())).await.0,
        200
    );
    assert_eq!(env.wait_status("d1").await["status"], "running");

    env.emu.fail_next_apply();
    let (status, body) = env.call(Method::PUT, path, Some(&second.one_way())).await;
    assert_eq!(status, 200, "{body}");
    let body = env.wait_status("d1").await;
    assert_eq!(body["status"], "failed", "{body}");
    assert!(env.emu.broker_running("d1").await);
    assert_eq!(
        presented_leaf(ports.mqtts_addr(), &ca.der).await,
        first.der,
        "the previous certificate keeps serving"
    );
    let log =
        std::fs::read_to_string(env.emu.broker_log_path("d1").expect("log")).expect("read log");
    assert!(
        log.contains("key values mismatch"),
        "Mosquitto really refused: {log}"
    );

    // A later good PUT recovers.
    assert_eq!(
        env.call(Method::PUT, path, Some(&second.one_way())).await.0,
        200
    );
    assert_eq!(env.wait_status("d1").await["status"], "running");
    assert_eq!(presented_leaf(ports.wss_addr(), &ca.der).await, second.der);
}

#[tokio::test]
async fn the_seventh_write_in_an_hour_gets_429_with_retry_after() {
    let env = Env::start().await;
    env.dedicated("d1");
    let path = "/deployments/d1/tls";
    let leaf = Ca::new("Test CA").leaf("127.0.0.1", 90);
    for i in 0..6 {
        // PUT without a configuration: 404, but it spends a write.
        assert_eq!(
            env.call(Method::PUT, path, Some(&leaf.one_way())).await.0,
            404,
            "write {i}"
        );
    }
    let (status, headers, body) = env
        .send(
            Method::POST,
            path,
            Some((KEY, SECRET)),
            Some(&leaf.one_way()),
        )
        .await
        .expect("7th write");
    assert_eq!(status, 429, "{body}");
    let retry: u64 = headers["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((3590..=3600).contains(&retry), "Retry-After {retry}");
    assert_eq!(env.emu.write_count("d1"), 6, "a 429 spends nothing");
    assert_eq!(
        env.call(Method::GET, path, None).await.0,
        404,
        "reads have their own budget"
    );

    // Reads: 60 an hour by default; a short window makes it testable.
    env.emu.set_budgets(Budgets {
        writes: 6,
        reads: 2,
        window: Duration::from_millis(600),
    });
    env.call(Method::GET, path, None).await;
    let (status, headers, _) = env
        .send(Method::GET, path, Some((KEY, SECRET)), None)
        .await
        .expect("read");
    assert_eq!(status, 429);
    assert_eq!(headers["retry-after"], "1");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        env.call(Method::GET, path, None).await.0,
        404,
        "window rolled"
    );
}

#[tokio::test]
async fn delete_stops_the_broker_and_disconnects_clients() {
    let env = Env::start().await;
    let ports = env.dedicated("d1");
    let ca = Ca::new("Test CA");
    let leaf = ca.leaf("127.0.0.1", 90);
    let path = "/deployments/d1/tls";
    assert_eq!(
        env.call(Method::POST, path, Some(&leaf.one_way())).await.0,
        200
    );
    assert_eq!(env.wait_status("d1").await["status"], "running");
    let mut connected = tls_connect(ports.mqtts_addr(), &ca.der, None).await;
    assert_eq!(mqtt_connect(&mut connected, None).await, Ok(0));

    let (status, _, body) = env
        .send(Method::DELETE, path, Some((KEY, SECRET)), None)
        .await
        .expect("delete");
    assert_eq!(status, 204);
    assert_eq!(body, Value::Null);
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(5), connected.read(&mut buf))
        .await
        .expect("the client notices in time");
    assert!(matches!(read, Ok(0) | Err(_)), "disconnected: {read:?}");
    assert!(
        TcpStream::connect(ports.mqtts_addr()).await.is_err(),
        "8883 closed"
    );
    assert!(
        TcpStream::connect(ports.wss_addr()).await.is_err(),
        "8084 closed"
    );
    assert!(!env.emu.broker_running("d1").await);
    assert_eq!(env.call(Method::GET, path, None).await.0, 404);
    assert_eq!(env.call(Method::DELETE, path, None).await.0, 404);

    // A new POST starts it again on the same ports.
    assert_eq!(
        env.call(Method::POST, path, Some(&leaf.one_way())).await.0,
        200
    );
    assert_eq!(env.wait_status("d1").await["status"], "running");
    assert_eq!(presented_leaf(ports.mqtts_addr(), &ca.der).await, leaf.der);
}

#[tokio::test]
async fn two_way_tls_requires_a_client_certificate() {
    let env = Env::start().await;
    let ports = env.dedicated("d1");
    let ca = Ca::new("Server CA");
    let leaf = ca.leaf("127.0.0.1", 90);
    let client_ca = Ca::new("Client CA");
    let client = client_ca.leaf("device-1", 30);
    let body = json!({
        "tlsType": "two-way", "cert": leaf.chain_pem, "key": leaf.key_pem, "cacert": client_ca.pem,
    });
    let (status, answer) = env
        .call(Method::POST, "/deployments/d1/tls", Some(&body))
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["tlsType"], "two-way");
    assert_eq!(env.wait_status("d1").await["status"], "running");

    // TLS 1.3: the handshake completes on the client's side, then the broker refuses.
    let mut anonymous = tls_connect(ports.mqtts_addr(), &ca.der, None).await;
    let refused = mqtt_connect(&mut anonymous, None).await;
    assert!(refused.is_err(), "no client certificate: {refused:?}");
    let mut with_cert = tls_connect(ports.mqtts_addr(), &ca.der, Some(&client)).await;
    assert_eq!(mqtt_connect(&mut with_cert, None).await, Ok(0));

    assert!(wss_connect(ports.wss_addr(), &ca.der, None).await.is_err());
    assert_eq!(
        wss_connect(ports.wss_addr(), &ca.der, Some(&client)).await,
        Ok(0)
    );

    // A certificate from another CA is refused too.
    let stranger = Ca::new("Stranger CA").leaf("device-2", 30);
    let mut wrong = tls_connect(ports.mqtts_addr(), &ca.der, Some(&stranger)).await;
    assert!(mqtt_connect(&mut wrong, None).await.is_err());
}

#[tokio::test]
async fn pending_forever_injected_errors_and_dropped_connections() {
    let env = Env::start().await;
    env.dedicated("d1");
    let path = "/deployments/d1/tls";
    let ca = Ca::new("Test CA");
    let first = ca.leaf("127.0.0.1", 90);

    env.emu.set_pending_forever();
    assert_eq!(
        env.call(Method::POST, path, Some(&first.one_way())).await.0,
        200
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_, body) = env.call(Method::GET, path, None).await;
    assert_eq!(body["status"], "pending");
    assert!(!env.emu.broker_running("d1").await);

    env.emu.fail_next_requests(2, 503);
    assert_eq!(env.call(Method::GET, path, None).await.0, 503);
    assert_eq!(env.call(Method::GET, "/deployments/d1", None).await.0, 503);
    assert_eq!(env.call(Method::GET, path, None).await.0, 200);

    env.emu.set_pending_delay(Duration::from_millis(50));
    let second = ca.leaf("127.0.0.1", 91);
    env.emu.drop_connection_on_next_put(DropPoint::BeforeApply);
    let dropped = env
        .send(
            Method::PUT,
            path,
            Some((KEY, SECRET)),
            Some(&second.one_way()),
        )
        .await;
    assert!(dropped.is_err(), "no answer: {dropped:?}");
    let snapshot = env.emu.tls_snapshot("d1").expect("still the first");
    assert_eq!(snapshot.status, TlsStatus::Pending);

    env.emu.drop_connection_on_next_put(DropPoint::AfterApply);
    let dropped = env
        .send(
            Method::PUT,
            path,
            Some((KEY, SECRET)),
            Some(&second.one_way()),
        )
        .await;
    assert!(dropped.is_err(), "no answer: {dropped:?}");
    let settled = env
        .emu
        .wait_settled("d1", Duration::from_secs(10))
        .await
        .expect("stored");
    assert_eq!(settled.status, TlsStatus::Running, "the PUT took effect");
    let ports = env.emu.deployment_ports("d1").expect("ports");
    assert_eq!(
        presented_leaf(ports.mqtts_addr(), &ca.der).await,
        second.der
    );

    let puts: Vec<u16> = env
        .emu
        .requests()
        .iter()
        .filter(|r| r.method == "PUT")
        .map(|r| r.status)
        .collect();
    assert_eq!(puts, [0, 0], "dropped connections are logged with status 0");
    assert_eq!(env.emu.write_count("d1"), 3);
}

#[tokio::test]
async fn the_sandbox_can_start_the_emulator_with_its_other_servers() {
    let sb = brokercert_sandbox::Sandbox::start(
        brokercert_sandbox::SandboxOptions::new().emqx_cloud(true),
    )
    .await
    .expect("sandbox starts (run .ci/install first)");
    let emu = sb.emqx_cloud().expect("emulator started");
    assert!(emu.ca_pem_path().starts_with(sb.dir()));
    assert!(emu.base_url().ends_with("/public_api/v1"));
    emu.add_deployment(DeploymentSpec::dedicated("d1", KEY, SECRET).deployment_scope(true))
        .expect("add");
    let resp = emu
        .http_client()
        .expect("client")
        .get(format!("{}/deployments/d1", emu.base_url()))
        .basic_auth(KEY, Some(SECRET))
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status().as_u16(), 200);
}

#[tokio::test]
async fn mosquitto_reports_a_refused_key_with_its_log_and_restarts_in_place() {
    use brokercert_sandbox::{Mosquitto, MosquittoConfig, SandboxError};
    let dir = tempfile::tempdir().expect("temp dir");
    let mut broker = Mosquitto::new(dir.path().join("broker")).expect("broker");
    let (mqtts, wss) = (broker.mqtts_port(), broker.wss_port());
    let ca = Ca::new("Test CA");
    let leaf = ca.leaf("127.0.0.1", 90);
    let other = ca.leaf("127.0.0.1", 90);

    let refused = broker
        .start(MosquittoConfig::one_way(&leaf.chain_pem, &other.key_pem))
        .await;
    match refused {
        Err(SandboxError::Exited { tail, .. }) => {
            assert!(tail.contains("key values mismatch"), "log tail: {tail}")
        }
        other => panic!("expected Exited, got {other:?}"),
    }
    assert!(!broker.is_running());

    broker
        .start(MosquittoConfig::one_way(&leaf.chain_pem, &leaf.key_pem))
        .await
        .expect("starts");
    assert!(broker.is_running());
    assert_eq!(presented_leaf(broker.mqtts_addr(), &ca.der).await, leaf.der);
    broker
        .reconfigure(MosquittoConfig::one_way(&other.chain_pem, &other.key_pem))
        .await
        .expect("restarts");
    assert_eq!((broker.mqtts_port(), broker.wss_port()), (mqtts, wss));
    assert_eq!(presented_leaf(broker.wss_addr(), &ca.der).await, other.der);
    broker.stop();
    assert!(!broker.is_running());
    assert!(TcpStream::connect(broker.mqtts_addr()).await.is_err());
}

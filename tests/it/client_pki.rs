//! `brokercert client-ca create` and `brokercert client-cert issue`, run as the real
//! binary: the files and their modes, refusing to replace a CA, the clear errors for a
//! bad name or a CA key that isn't the CA's, and finally a real Mosquitto requiring
//! client certificates that accepts the issued one and refuses one from another CA.
//!
//! ECDSA P-256 everywhere except one CA made with the default key type (RSA 2048):
//! RSA key generation is slow in debug builds.

use std::fs;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use brokercert::error::exit;
use brokercert::verify::{
    FnResolver, MqttProbe, ProbeReport, ProbeTarget, Secret, TlsMqttProbe, Transport, VerifyError,
};
use brokercert_sandbox::{Mosquitto, MosquittoConfig};

const HOST: &str = "mqtt.example.test";

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

fn brokercert(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_brokercert"))
        .args(args)
        .env_remove("BROKERCERT_CONFIG")
        .env_remove("BROKERCERT_STATE_DIR")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run brokercert");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn ok(args: &[&str]) -> Run {
    let run = brokercert(args);
    assert_eq!(run.code, 0, "brokercert {args:?} failed: {run:?}");
    run
}

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

fn create_ca(dir: &Path, extra: &[&str]) -> Run {
    let mut args = vec!["client-ca", "create", "--out", s(dir)];
    args.extend_from_slice(extra);
    ok(&args)
}

fn issue(ca: &Path, name: &str, out: &Path, extra: &[&str]) -> Run {
    let mut args = vec![
        "client-cert",
        "issue",
        "--ca",
        s(ca),
        "--cn",
        name,
        "--out",
        s(out),
        "--key-type",
        "ecdsa-p256",
    ];
    args.extend_from_slice(extra);
    ok(&args)
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn a_ca_is_created_private_and_never_replaced_without_force() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pki").join("client-ca");
    let run = create_ca(
        &dir,
        &[
            "--key-type",
            "ecdsa-p256",
            "--cn",
            "Acme devices CA",
            "--org",
            "Acme",
            "--country",
            "DE",
            "--days",
            "30",
        ],
    );
    let cert = dir.join("client-ca.crt");
    let key = dir.join("client-ca.key");
    assert_eq!(files_in(&dir), ["client-ca.crt", "client-ca.key"]);
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&cert), 0o644);
    assert_eq!(mode(&key), 0o600);
    assert!(
        run.stdout
            .contains(&format!("client_ca = \"{}\"", cert.display()))
            && run.stdout.contains("tls = \"two-way\"")
            && run.stdout.contains("[[certificate.deploy]]"),
        "{run:?}"
    );
    assert!(!run.stdout.contains("PRIVATE KEY") && !run.stderr.contains("PRIVATE KEY"));
    let ca = brokercert::pki::parse_bundle(&fs::read(&cert).unwrap())
        .unwrap()
        .certificates;
    assert_eq!(ca[0].subject(), "CN=Acme devices CA,O=Acme,C=DE");
    assert!(ca[0].is_ca() && ca[0].is_self_signed());

    let key_before = fs::read(&key).unwrap();
    let again = brokercert(&["client-ca", "create", "--out", s(&dir)]);
    assert_eq!(again.code, exit::CONFIG, "{again:?}");
    assert!(
        again.stderr.starts_with("error: ")
            && again.stderr.contains(&key.display().to_string())
            && again.stderr.contains("--force"),
        "{again:?}"
    );
    assert_eq!(again.stderr.trim_end().lines().count(), 1, "one paragraph");
    assert_eq!(fs::read(&key).unwrap(), key_before, "the key is unchanged");
    assert_eq!(files_in(&dir), ["client-ca.crt", "client-ca.key"]);

    let forced = create_ca(&dir, &["--key-type", "ecdsa-p256", "--force"]);
    assert!(forced.stdout.contains("replaced"), "{forced:?}");
    assert_ne!(fs::read(&key).unwrap(), key_before);
    assert_eq!(mode(&key), 0o600);
    assert_eq!(files_in(&dir), ["client-ca.crt", "client-ca.key"]);
}

#[test]
fn issuing_refuses_unsafe_names_and_a_ca_key_that_is_not_the_cas() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = tmp.path().join("ca");
    create_ca(&ca, &["--key-type", "ecdsa-p256"]);
    let out = tmp.path().join("out");

    for bad in ["../escape", "a b", ".hidden", "client-ca"] {
        let run = brokercert(&[
            "client-cert",
            "issue",
            "--ca",
            s(&ca),
            "--cn",
            bad,
            "--out",
            s(&out),
        ]);
        assert_eq!(run.code, exit::CONFIG, "{bad}: {run:?}");
        assert!(run.stderr.contains("--cn"), "{run:?}");
    }
    assert!(!out.exists(), "nothing was written");

    // The key of another CA next to this CA's certificate.
    let other = tmp.path().join("other");
    create_ca(&other, &["--key-type", "ecdsa-p256"]);
    fs::copy(other.join("client-ca.key"), ca.join("client-ca.key")).unwrap();
    let run = brokercert(&[
        "client-cert",
        "issue",
        "--ca",
        s(&ca),
        "--cn",
        "dev",
        "--out",
        s(&out),
        "--key-type",
        "ecdsa-p256",
    ]);
    assert_eq!(run.code, exit::CERTIFICATE, "{run:?}");
    assert!(
        run.stderr
            .contains(&ca.join("client-ca.key").display().to_string()),
        "{run:?}"
    );
    assert!(!out.exists(), "nothing was written");

    // A missing CA directory is a usage error that says how to make one.
    let run = brokercert(&[
        "client-cert",
        "issue",
        "--ca",
        s(&tmp.path().join("nope")),
        "--cn",
        "dev",
        "--out",
        s(&out),
    ]);
    assert_eq!(run.code, exit::CONFIG, "{run:?}");
    assert!(run.stderr.contains("client-ca create"), "{run:?}");
    assert!(!out.exists());
}

// ---------------------------------------------------------------- a real Mosquitto

/// The broker's own certificate for `mqtt.example.test`, from a throwaway root (rcgen).
struct ServerPki {
    root_pem: String,
    leaf_pem: String,
    leaf_key_pem: String,
}

fn server_pki() -> ServerPki {
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
        KeyUsagePurpose,
    };
    let root_key = KeyPair::generate().unwrap();
    let mut root = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "Test Server Root");
    root.distinguished_name = dn;
    root.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    root.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let root_cert = root.self_signed(&root_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec![HOST.to_string()]).unwrap();
    let leaf_cert = leaf
        .signed_by(&leaf_key, &Issuer::new(root, root_key))
        .unwrap();
    ServerPki {
        root_pem: root_cert.pem(),
        leaf_pem: leaf_cert.pem(),
        leaf_key_pem: leaf_key.serialize_pem(),
    }
}

fn probe() -> TlsMqttProbe {
    TlsMqttProbe::new(Arc::new(FnResolver(
        |host: &str, _port: u16| -> std::io::Result<Vec<SocketAddr>> {
            panic!("the probe must not resolve {host}: it connects to 127.0.0.1")
        },
    )))
}

/// The mqtts target, trusting `server_root`, presenting the client files in `dir`.
fn target(broker: &Mosquitto, server_root: &Path, dir: &Path, name: &str) -> ProbeTarget {
    let read =
        |p: PathBuf| fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let mut t = ProbeTarget::new(HOST);
    t.connect_addr = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
    t.transports = vec![Transport::Mqtts];
    t.mqtts_port = broker.mqtts_port();
    t.wss_port = broker.wss_port();
    t.ca_pem = Some(read(server_root.to_path_buf()));
    t.client_cert_pem = Some(read(dir.join(format!("{name}.crt"))));
    t.client_key_pem = Some(Secret::new(read(dir.join(format!("{name}.key")))));
    t.timeout = Duration::from_secs(5);
    t
}

fn mqtts_error(report: &ProbeReport) -> &VerifyError {
    report
        .get(Transport::Mqtts)
        .and_then(|r| r.outcome.as_ref().err())
        .unwrap_or_else(|| panic!("expected the broker to refuse:\n{report}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn mosquitto_accepts_the_issued_client_certificate_and_refuses_another_cas() {
    let tmp = tempfile::tempdir().unwrap();
    let server = server_pki();
    let server_root = tmp.path().join("server-root.pem");
    fs::write(&server_root, &server.root_pem).unwrap();

    // The CA with the default key type (RSA 2048), a client with --server-root.
    let ca = tmp.path().join("ca");
    create_ca(&ca, &["--org", "brokercert tests"]);
    let clients = tmp.path().join("clients");
    let run = issue(
        &ca,
        "sensor-01",
        &clients,
        &["--server-root", s(&server_root)],
    );
    assert_eq!(
        files_in(&clients),
        [
            "client-ca.crt",
            "root.pem",
            "sensor-01.crt",
            "sensor-01.key"
        ]
    );
    assert_eq!(mode(&clients), 0o700);
    assert_eq!(mode(&clients.join("sensor-01.crt")), 0o644);
    assert_eq!(mode(&clients.join("sensor-01.key")), 0o600);
    assert_eq!(mode(&clients.join("client-ca.crt")), 0o644);
    assert_eq!(
        fs::read(clients.join("client-ca.crt")).unwrap(),
        fs::read(ca.join("client-ca.crt")).unwrap()
    );
    let cafile = clients.join("root.pem");
    assert!(
        run.stdout.contains(&format!(
            "--cafile {} --cert {} --key {}",
            cafile.display(),
            clients.join("sensor-01.crt").display(),
            clients.join("sensor-01.key").display()
        )),
        "{run:?}"
    );
    assert!(!run.stdout.contains("PRIVATE KEY") && !run.stderr.contains("PRIVATE KEY"));

    // A client of another CA, with the same name.
    let other_ca = tmp.path().join("other-ca");
    create_ca(&other_ca, &["--key-type", "ecdsa-p256"]);
    let intruders = tmp.path().join("intruders");
    issue(&other_ca, "sensor-01", &intruders, &[]);

    let mut broker = Mosquitto::new(tmp.path().join("mosquitto")).unwrap();
    broker
        .start(
            MosquittoConfig::one_way(server.leaf_pem.clone(), server.leaf_key_pem.clone())
                .with_client_ca(fs::read_to_string(ca.join("client-ca.crt")).unwrap()),
        )
        .await
        .unwrap();

    let mut accepted = target(&broker, &cafile, &clients, "sensor-01");
    accepted.check_refuses_anonymous_tls = true;
    let report = probe().probe(&accepted).await.expect("usable target");
    assert!(report.is_ok(), "{report}\n{}", broker.log_tail(4000));

    let refused = target(&broker, &server_root, &intruders, "sensor-01");
    let report = probe().probe(&refused).await.expect("usable target");
    let e = mqtts_error(&report);
    assert!(
        matches!(e, VerifyError::ClientCertificateRejected { .. }),
        "{e}\n{}",
        broker.log_tail(4000)
    );
    broker.stop();
}

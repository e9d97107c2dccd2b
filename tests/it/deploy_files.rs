//! The `files` target and `deploy --from` a certbot lineage: files written atomically with
//! their modes, the reload command run, and the previous files restored if it fails.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use brokercert::error::exit;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

struct Lineage {
    cert: String,
    /// The intermediate alone (what fullchain.pem must carry after the leaf).
    intermediate: String,
    /// chain.pem as certbot may write it: intermediate, then the self-signed root.
    chain: String,
    key: String,
}

fn lineage(cn: &str) -> Lineage {
    let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut ca = CertificateParams::default();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "Files Test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let root = Issuer::from_params(&ca, &ca_key);
    let int_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut int = CertificateParams::default();
    int.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    int.distinguished_name
        .push(DnType::CommonName, "Files Test Intermediate");
    let int_cert = int.signed_by(&int_key, &root).unwrap();
    let issuer = Issuer::from_params(&int, &int_key);
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut leaf = CertificateParams::new(vec![cn.to_string()]).unwrap();
    leaf.distinguished_name.push(DnType::CommonName, cn);
    let leaf = leaf.signed_by(&key, &issuer).unwrap();
    Lineage {
        cert: leaf.pem(),
        intermediate: int_cert.pem(),
        chain: format!("{}{}", int_cert.pem(), ca_cert.pem()),
        key: key.serialize_pem(),
    }
}

fn write_certbot_dir(dir: &Path, l: &Lineage) {
    std::fs::create_dir_all(dir).unwrap();
    // certbot-style: CRLF and text around blocks must be accepted.
    std::fs::write(dir.join("cert.pem"), l.cert.replace('\n', "\r\n")).unwrap();
    std::fs::write(
        dir.join("chain.pem"),
        format!("issuer: Files Test CA\n{}", l.chain),
    )
    .unwrap();
    std::fs::write(
        dir.join("fullchain.pem"),
        format!("{}{}", l.cert, l.intermediate),
    )
    .unwrap();
    std::fs::write(dir.join("privkey.pem"), &l.key).unwrap();
}

fn config(dir: &Path, reload: &str) -> std::path::PathBuf {
    let p = dir.join("brokercert.toml");
    std::fs::write(
        &p,
        format!(
            r#"state_dir = "{state}"

[[certificate]]
name = "broker"
domains = ["mqtt.example.test"]

[[certificate.deploy]]
type = "files"
fullchain = "{out}/fullchain.pem"
key = "{out}/key.pem"
chain = "{out}/chain.pem"
key_mode = "0640"
reload = {reload}
"#,
            state = dir.join("state").display(),
            out = dir.join("out").display(),
        ),
    )
    .unwrap();
    p
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_brokercert"))
        .args(args)
        .env_remove("BROKERCERT_CONFIG")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn deploy_from_a_certbot_lineage_writes_files_and_reloads() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("out")).unwrap();
    let l = lineage("mqtt.example.test");
    let certbot = dir.path().join("letsencrypt/live/mqtt.example.test");
    write_certbot_dir(&certbot, &l);
    let marker = dir.path().join("reloaded");
    let cfg = config(
        dir.path(),
        &format!("[\"touch\", \"{}\"]", marker.display()),
    );

    let (code, stdout, stderr) = run(&[
        "deploy",
        "broker",
        "--config",
        cfg.to_str().unwrap(),
        "--from",
        certbot.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("Deployed to files target"), "{stdout}");
    assert!(marker.exists(), "the reload command ran");
    let out = dir.path().join("out");
    let full = std::fs::read_to_string(out.join("fullchain.pem")).unwrap();
    assert_eq!(
        full,
        format!("{}{}", l.cert, l.intermediate),
        "LF endings, leaf then intermediate; the self-signed root is not an intermediate"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("chain.pem")).unwrap(),
        l.intermediate
    );
    assert_eq!(
        std::fs::metadata(out.join("key.pem"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o640
    );
    assert_eq!(
        std::fs::metadata(out.join("fullchain.pem"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o644
    );

    // Deploying the same certificate again changes nothing and does not reload.
    std::fs::remove_file(&marker).unwrap();
    let (code, stdout, _) = run(&[
        "deploy",
        "broker",
        "--config",
        cfg.to_str().unwrap(),
        "--from",
        certbot.to_str().unwrap(),
    ]);
    assert_eq!(code, 0);
    assert!(stdout.contains("already served"), "{stdout}");
    assert!(!marker.exists());
}

#[test]
fn a_failing_reload_restores_the_previous_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("out")).unwrap();
    let old = lineage("mqtt.example.test");
    let old_dir = dir.path().join("old");
    write_certbot_dir(&old_dir, &old);
    let ok = config(dir.path(), "[\"true\"]");
    assert_eq!(
        run(&[
            "deploy",
            "broker",
            "--config",
            ok.to_str().unwrap(),
            "--from",
            old_dir.to_str().unwrap()
        ])
        .0,
        0
    );
    let before = std::fs::read(dir.path().join("out/fullchain.pem")).unwrap();

    let new = lineage("mqtt.example.test");
    let new_dir = dir.path().join("new");
    write_certbot_dir(&new_dir, &new);
    let failing = config(
        dir.path(),
        "[\"sh\", \"-c\", \"echo broker refused the key >&2; exit 3\"]",
    );
    let (code, _, stderr) = run(&[
        "deploy",
        "broker",
        "--config",
        failing.to_str().unwrap(),
        "--from",
        new_dir.to_str().unwrap(),
    ]);
    assert_eq!(code, exit::DEPLOY, "{stderr}");
    assert!(
        stderr.contains("broker refused the key")
            && stderr.contains("previous files were put back"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(dir.path().join("out/fullchain.pem")).unwrap(),
        before
    );
}

#[test]
fn bad_inputs_are_refused_with_the_file_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("out")).unwrap();
    let cfg = config(dir.path(), "[]");
    // No stored certificate yet.
    let (code, _, stderr) = run(&["deploy", "broker", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, exit::CONFIG);
    assert!(
        stderr.contains("brokercert issue --name broker") && stderr.contains("--from"),
        "{stderr}"
    );
    // A lineage for another name: refused before any file is written.
    let other = lineage("other.example.test");
    let d = dir.path().join("other");
    write_certbot_dir(&d, &other);
    let (code, _, stderr) = run(&[
        "deploy",
        "broker",
        "--config",
        cfg.to_str().unwrap(),
        "--from",
        d.to_str().unwrap(),
    ]);
    assert_eq!(code, exit::CERTIFICATE, "{stderr}");
    assert!(
        stderr.contains("names: found names other.example.test"),
        "{stderr}"
    );
    assert!(
        std::fs::read_dir(dir.path().join("out"))
            .unwrap()
            .next()
            .is_none(),
        "nothing written"
    );
    // Not a directory.
    let (code, _, stderr) = run(&[
        "deploy",
        "broker",
        "--config",
        cfg.to_str().unwrap(),
        "--from",
        "/nonexistent/dir",
    ]);
    assert_eq!(code, exit::CERTIFICATE, "{stderr}");
    assert!(stderr.contains("/nonexistent/dir"), "{stderr}");
}

/// The guide's self-hosted path: a real Mosquitto reading the files, reloaded with SIGHUP,
/// then verified over MQTT with the new certificate. Mosquitto 2.0.11 reloads the mqtts
/// listener's certificate on SIGHUP but not the WebSockets listener's (verification found
/// that): brokers serving wss need a restart as their reload command, so this checks mqtts.
#[tokio::test(flavor = "multi_thread")]
async fn files_target_reloads_a_real_mosquitto_and_verify_sees_the_new_certificate() {
    let (code, stdout, stderr, want) = deploy_to_mosquitto(None, "").await;
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("Verified mqtts"), "{stdout}");
    assert!(
        stdout.contains(&want),
        "the new serial {want} is served: {stdout}"
    );
}

/// A broker that switches over only seconds after the reload (as self-hosted EMQX re-reads
/// its files on a timer) passes when `verify.settle_timeout` covers the delay, and fails
/// with the default-sized wait when it does not.
#[tokio::test(flavor = "multi_thread")]
async fn settle_timeout_waits_for_a_broker_that_reloads_late() {
    let (code, stdout, stderr, want) =
        deploy_to_mosquitto(Some(4), "settle_timeout = \"1s\"").await;
    assert_ne!(
        code,
        Some(0),
        "1 s is too short for a 4 s reload\n{stdout}\n{stderr}"
    );
    let (code, stdout, stderr, want2) =
        deploy_to_mosquitto(Some(4), "settle_timeout = \"30s\"").await;
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains(&want2), "{stdout}");
    assert_ne!(want, want2);
}

/// Deploys a new certificate to a real Mosquitto through a files target whose reload sends
/// SIGHUP after `reload_delay` seconds (at once when `None`), then verifies; `verify_extra`
/// goes into `[certificate.verify]`. Returns the exit code, stdout, stderr and the new serial.
async fn deploy_to_mosquitto(
    reload_delay: Option<u64>,
    verify_extra: &str,
) -> (Option<i32>, String, String, String) {
    use brokercert_sandbox::{Mosquitto, MosquittoConfig};
    let dir = tempfile::tempdir().unwrap();
    let old = lineage_with_root("mqtt.example.test");
    let mut broker = Mosquitto::new(dir.path().join("mosquitto")).unwrap();
    broker
        .start(MosquittoConfig::one_way(
            format!("{}{}", old.0.cert, old.0.intermediate),
            old.0.key.clone(),
        ))
        .await
        .unwrap();
    let pid = broker.pid().expect("mosquitto runs");
    let gen_dir = std::fs::read_dir(dir.path().join("mosquitto"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.join("cert.pem").exists())
        .expect("mosquitto's certificate directory");

    let new = lineage_with_root("mqtt.example.test");
    let lineage_dir = dir.path().join("letsencrypt/live/mqtt");
    write_certbot_dir(&lineage_dir, &new.0);
    let root = dir.path().join("root.pem");
    std::fs::write(&root, &new.1).unwrap();
    let cfg = dir.path().join("brokercert.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"state_dir = "{state}"

[[certificate]]
name = "broker"
domains = ["mqtt.example.test"]

[[certificate.deploy]]
type = "files"
fullchain = "{gen}/cert.pem"
key = "{gen}/key.pem"
reload = {reload}

[certificate.verify]
connect = "127.0.0.1"
transports = ["mqtts"]
mqtts_port = {mqtts}
wss_port = {wss}
ca_file = "{root}"
timeout = "5s"
{verify_extra}
"#,
            reload = match reload_delay {
                None => format!("[\"kill\", \"-HUP\", \"{pid}\"]"),
                Some(d) => format!(
                    "[\"sh\", \"-c\", \"(sleep {d}; kill -HUP {pid}) >/dev/null 2>&1 </dev/null &\"]"
                ),
            },
            state = dir.path().join("state").display(),
            gen = gen_dir.display(),
            mqtts = broker.mqtts_port(),
            wss = broker.wss_port(),
            root = root.display(),
        ),
    )
    .unwrap();

    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_brokercert"))
            .args([
                "deploy",
                "broker",
                "--config",
                cfg.to_str().unwrap(),
                "--from",
                lineage_dir.to_str().unwrap(),
            ])
            .env_remove("BROKERCERT_CONFIG")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        broker.log_tail(2000)
    );
    if reload_delay.is_none() {
        assert_eq!(broker.pid(), Some(pid), "reloaded in place, not restarted");
    } else {
        // Let the late reload happen before the broker is stopped.
        tokio::time::sleep(std::time::Duration::from_secs(
            reload_delay.unwrap_or(0) + 1,
        ))
        .await;
    }
    (out.status.code(), stdout, stderr, certs_serial(&new.0.cert))
}

/// A lineage plus its self-signed root (PEM).
fn lineage_with_root(cn: &str) -> (Lineage, String) {
    let l = lineage(cn);
    let root = l
        .chain
        .strip_prefix(&l.intermediate)
        .unwrap_or(&l.chain)
        .to_string();
    (l, root)
}

fn certs_serial(pem: &str) -> String {
    let b = brokercert::pki::parse_bundle(pem.as_bytes()).unwrap();
    b.certificates[0].serial_hex().to_string()
}

//! Issue #6 "Security", against the sandbox and the real binary:
//! - every command at the most verbose log level (`-vvv`, `BROKERCERT_LOG=trace`) keeps the
//!   EMQX Cloud API secret, the MQTT password and the EAB HMAC out of stdout, stderr and
//!   the state directory, and prints no private key; the reload and notification commands
//!   they run see none of them in their environment;
//! - key, account and client-CA key files are 0600 in 0700 directories; a configuration
//!   with an inline secret that others can read is refused with the `chmod 600` to run;
//! - TLS verification is on everywhere: an untrusted server is refused by the ACME client,
//!   the EMQX Cloud API client and the MQTT probe unless its root is named explicitly.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::support::{Run, TestEnv, cert_section};
use base64::Engine;
use brokercert::error::exit;
use brokercert_sandbox::{
    DeploymentPorts, DeploymentSpec, EabKey, EmqxCloudEmulator, SandboxOptions,
};

const KEY: &str = "sec-api-key-7f3a";
const SECRET: &str = "sec-api-secret-c9d1e0b2-never-print";
const MQTT_PASSWORD: &str = "sec-mqtt-password-5a6b-never-print";

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Every directory under `dir`, `dir` included.
fn dirs_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        if let Ok(rd) = std::fs::read_dir(&out[i]) {
            for e in rd.flatten() {
                if e.path().is_dir() {
                    out.push(e.path());
                }
            }
        }
        i += 1;
    }
    out
}

struct World {
    env: TestEnv,
    emu: EmqxCloudEmulator,
    ports: DeploymentPorts,
    eab: EabKey,
    secrets: Vec<String>,
}

async fn world(id: &str) -> World {
    let eab = EabKey::random("kid-security-test");
    let env = TestEnv::start(
        SandboxOptions::new()
            .zone("example.test")
            .zone("emqx-cloud.test")
            .external_account_binding(eab.clone()),
    )
    .await;
    let emu = EmqxCloudEmulator::start(env.work.path().join("emqx"))
        .await
        .expect("emulator");
    emu.add_deployment(
        DeploymentSpec::dedicated(id, KEY, SECRET).mqtt_user("device-1", MQTT_PASSWORD),
    )
    .expect("deployment");
    let ports = emu.deployment_ports(id).expect("ports");
    let z = env.sb.zone_id("emqx-cloud.test").unwrap();
    env.sb
        .upsert(
            &z,
            &format!("{id}.emqx-cloud.test"),
            "A",
            60,
            &["127.0.0.1"],
        )
        .await
        .unwrap();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{KEY}:{SECRET}"));
    let secrets = vec![
        SECRET.to_string(),
        MQTT_PASSWORD.to_string(),
        eab.hmac_key_b64url.clone(),
        basic,
    ];
    World {
        env,
        emu,
        ports,
        eab,
        secrets,
    }
}

impl World {
    fn env_vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("EMQX_CLOUD_API_KEY", KEY.to_string()),
            ("EMQX_CLOUD_API_SECRET", SECRET.to_string()),
            ("TEST_MQTT_PASSWORD", MQTT_PASSWORD.to_string()),
            ("BROKERCERT_EAB_KID", self.eab.kid.clone()),
            ("BROKERCERT_EAB_HMAC", self.eab.hmac_key_b64url.clone()),
            ("BROKERCERT_LOG", "trace".to_string()),
        ]
    }

    /// Runs `brokercert -vvv ARGS` at trace level with every secret in the environment and
    /// asserts none of them, and no private key, is printed.
    async fn run(&self, args: &[&str]) -> Run {
        let mut all = vec!["-vvv"];
        all.extend_from_slice(args);
        let vars = self.env_vars();
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = self.env.run_with_env(&all, &vars).await;
        for secret in &self.secrets {
            for (stream, text) in [("stdout", &r.stdout), ("stderr", &r.stderr)] {
                assert!(
                    !text.contains(secret.as_str()),
                    "`brokercert {}` printed a secret on {stream}",
                    args.join(" ")
                );
            }
        }
        for (stream, text) in [("stdout", &r.stdout), ("stderr", &r.stderr)] {
            assert!(
                !text.contains("PRIVATE KEY-----"),
                "`brokercert {}` printed a private key on {stream}",
                args.join(" ")
            );
        }
        r
    }

    fn config(&self, id: &str, ca: &Path, client: &Path) -> PathBuf {
        let section = cert_section(
            "mqtt-prod",
            &["mqtt.example.test"],
            &format!(
                r#"cname_target = "{id}.emqx-cloud.test"


[[certificate.deploy]]
type = "emqx-cloud"
deployment_id = "{id}"
base_url = "{base}"
api_roots = ["{api_ca}"]
poll_interval = "50ms"
poll_timeout = "20s"
tls = "two-way"
client_ca = "{ca}"

[[certificate.deploy]]
type = "files"
fullchain = "{files}/fullchain.pem"
key = "{files}/key.pem"
reload = ["sh", "-c", "env >> {files}/reload.env"]

[certificate.verify]
mqtts_port = {mqtts}
wss_port = {wss}
timeout = "5s"
username = "device-1"
password_env = "TEST_MQTT_PASSWORD"
client_cert = "{cert}"
client_key = "{key}"
"#,
                base = self.emu.base_url(),
                api_ca = self.emu.ca_pem_path().display(),
                ca = ca.join("client-ca.crt").display(),
                cert = client.join("device-1.crt").display(),
                key = client.join("device-1.key").display(),
                mqtts = self.ports.mqtts,
                wss = self.ports.wss,
                files = self.env.work.path().join("files").display(),
            ),
        );
        let notify = format!(
            "[renew]\nnotify_command = [\"sh\", \"-c\", \"env >> {}\"]\n",
            self.env
                .work
                .path()
                .join("files")
                .join("notify.env")
                .display()
        );
        std::fs::create_dir_all(self.env.work.path().join("files")).expect("files dir");
        self.env.config(&format!("{section}\n{notify}"))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn no_command_leaks_a_secret_at_trace_level_and_keys_are_private() {
    let w = world("sec1").await;
    let work = w.env.work.path().to_path_buf();
    let ca = work.join("pki").join("client-ca");
    let clients = work.join("pki").join("clients");

    w.run(&[
        "client-ca",
        "create",
        "--out",
        s(&ca),
        "--key-type",
        "ecdsa-p256",
    ])
    .await
    .assert_ok();
    w.run(&[
        "client-cert",
        "issue",
        "--ca",
        s(&ca),
        "--cn",
        "device-1",
        "--out",
        s(&clients),
        "--key-type",
        "ecdsa-p256",
    ])
    .await
    .assert_ok();
    let cfg = w.config("sec1", &ca, &clients);
    let c = s(&cfg);
    let state = w.env.state_dir();
    let live = state.join("live").join("mqtt-prod");

    let issued = w.run(&["issue", "--config", c]).await;
    issued.assert_ok();
    assert!(
        issued.stderr.contains("TRACE") && issued.stderr.contains("DEBUG"),
        "the most verbose level was in effect"
    );
    w.run(&["deploy", "--config", c, "mqtt-prod"])
        .await
        .assert_ok();
    w.run(&["verify", "--config", c, "mqtt-prod"])
        .await
        .assert_ok();
    w.run(&["renew", "--config", c, "--force", "--no-jitter"])
        .await
        .assert_ok();
    w.run(&["renew", "--config", c, "--no-jitter"])
        .await
        .assert_ok();
    w.run(&["schedule", "--config", c, "--once"])
        .await
        .assert_ok();
    // The reload and notification commands ran with a clean environment: none of the
    // secrets brokercert had (nor the variables holding them, nor AWS's) reached them.
    for dump in ["reload.env", "notify.env"] {
        let text = std::fs::read_to_string(work.join("files").join(dump))
            .unwrap_or_else(|e| panic!("{dump}: the command ran and dumped its environment: {e}"));
        assert!(text.contains("PATH="), "{dump}: {text}");
        for secret in &w.secrets {
            assert!(!text.contains(secret.as_str()), "{dump} holds a secret");
        }
        for name in [
            "EMQX_CLOUD_API_SECRET",
            "EMQX_CLOUD_API_KEY",
            "BROKERCERT_EAB_HMAC",
            "TEST_MQTT_PASSWORD",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_ACCESS_KEY_ID",
        ] {
            assert!(
                !text.lines().any(|l| l.starts_with(&format!("{name}="))),
                "{dump} has {name}"
            );
        }
    }
    assert!(
        std::fs::read_to_string(work.join("files").join("notify.env"))
            .unwrap_or_default()
            .contains("BROKERCERT_EVENT=success"),
        "the notification got its event variables"
    );
    w.run(&["check", "--config", c, s(&live)]).await;
    let split_out = work.join("split");
    w.run(&[
        "split",
        s(&live.join("fullchain.pem")),
        "--out",
        s(&split_out),
    ])
    .await;
    w.run(&["iam-policy", "--config", c]).await;
    w.run(&[
        "init",
        "--domain",
        "mqtt.example.test",
        "--output",
        s(&work.join("init.toml")),
        "--no-input",
    ])
    .await
    .assert_ok();
    w.run(&["remove", "--config", c, "mqtt-prod", "--yes"])
        .await
        .assert_ok();
    assert!(
        w.emu.tls_snapshot("sec1").is_none(),
        "remove removed the TLS configuration"
    );

    // Nothing secret in any file of the state directory; private keys only in key files.
    let files = files_under(&state);
    assert!(!files.is_empty());
    for f in &files {
        let text = String::from_utf8_lossy(&std::fs::read(f).unwrap()).into_owned();
        for secret in &w.secrets {
            assert!(
                !text.contains(secret.as_str()),
                "{} holds a secret",
                f.display()
            );
        }
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let is_key_file =
            name.starts_with("privkey") || name.ends_with(".key") || name.ends_with(".key.pem");
        if text.contains("PRIVATE KEY-----") {
            assert!(is_key_file, "{} holds a private key", f.display());
        }
        let under_accounts = f
            .strip_prefix(&state)
            .is_ok_and(|r| r.starts_with("accounts"));
        if is_key_file || under_accounts || text.contains("PRIVATE KEY-----") {
            assert_eq!(mode(f), 0o600, "{}", f.display());
        }
    }
    assert!(
        files.iter().any(|f| f
            .strip_prefix(&state)
            .is_ok_and(|r| r.starts_with("accounts"))),
        "an account was stored: {files:?}"
    );
    // Directories holding keys or accounts are 0700 (the state root, accounts/, archive/).
    for d in dirs_under(&state) {
        let rel = d.strip_prefix(&state).unwrap();
        if rel.starts_with("live") && rel.components().count() == 2 {
            continue; // live/NAME is a symbolic link into archive/ or a plain directory
        }
        let holds_keys = files_under(&d).iter().any(|f| {
            let n = f.file_name().unwrap().to_string_lossy().into_owned();
            n.starts_with("privkey")
                || n.ends_with(".key")
                || n.ends_with(".key.pem")
                || f.starts_with(state.join("accounts"))
        });
        if holds_keys {
            assert_eq!(mode(&d) & 0o077, 0, "{} is open to others", d.display());
        }
    }
    assert_eq!(mode(&state), 0o700);
    // The client CA's key and the client key: 0600 in 0700 directories.
    assert_eq!(mode(&ca.join("client-ca.key")), 0o600);
    assert_eq!(mode(&ca), 0o700);
    assert_eq!(mode(&clients.join("device-1.key")), 0o600);
    assert_eq!(mode(&clients), 0o700);
}

fn plain(args: &[&str]) -> Run {
    crate::support::run_plain(
        args,
        &[("EMQX_CLOUD_API_KEY", ""), ("EMQX_CLOUD_API_SECRET", "")],
    )
}

#[test]
fn an_inline_secret_in_a_readable_config_is_refused_with_the_chmod_to_run() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("brokercert.toml");
    let state = tmp.path().join("state");
    std::fs::write(
        &cfg,
        format!(
            "state_dir = \"{}\"\n[[certificate]]\nname = \"m\"\ndomains = [\"mqtt.example.test\"]\n\
             [[certificate.deploy]]\ntype = \"emqx-cloud\"\ndeployment_id = \"d1\"\n\
             api_key = \"{KEY}\"\napi_secret = \"{SECRET}\"\n",
            state.display()
        ),
    )
    .unwrap();
    for m in [0o644, 0o640, 0o604] {
        std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(m)).unwrap();
        let r = plain(&["deploy", "--config", s(&cfg), "m"]);
        assert_eq!(r.code, exit::CONFIG, "{r:?}");
        assert!(
            r.stderr.contains(&format!("chmod 600 {}", cfg.display()))
                && r.stderr.contains("api_key"),
            "{}",
            r.stderr
        );
        assert!(
            !r.stderr.contains(SECRET) && !r.stderr.contains(KEY),
            "{}",
            r.stderr
        );
    }
    // Owner-only: the configuration is accepted (deploy then fails for want of a certificate).
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o600)).unwrap();
    let r = plain(&["deploy", "--config", s(&cfg), "m"]);
    assert!(!r.stderr.contains("chmod 600"), "{}", r.stderr);
    assert!(!r.stderr.contains(SECRET), "{}", r.stderr);

    // A readable file without inline secrets (only variable names) is fine.
    std::fs::write(
        &cfg,
        format!(
            "state_dir = \"{}\"\n[[certificate]]\nname = \"m\"\ndomains = [\"mqtt.example.test\"]\n\
             [[certificate.deploy]]\ntype = \"emqx-cloud\"\ndeployment_id = \"d1\"\n\
             api_secret_env = \"MY_SECRET\"\n",
            state.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).unwrap();
    let r = plain(&["deploy", "--config", s(&cfg), "m"]);
    assert!(!r.stderr.contains("chmod 600"), "{}", r.stderr);
}

#[test]
fn unknown_keys_name_the_line_and_the_nearest_key() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("brokercert.toml");
    std::fs::write(
        &cfg,
        "[acme]\nemail = \"ops@example.test\"\nemial = \"x@example.test\"\n",
    )
    .unwrap();
    let r = plain(&["deploy", "--config", s(&cfg), "m"]);
    assert_eq!(r.code, exit::CONFIG, "{r:?}");
    assert!(
        r.stderr.contains("unknown key `acme.emial`")
            && r.stderr.contains("line 3")
            && r.stderr.contains("did you mean `acme.email`?"),
        "{}",
        r.stderr
    );
}

/// The only place TLS verification is customised is the MQTT probe's recording verifier,
/// which delegates every decision to webpki. No code path disables verification.
#[test]
fn no_code_disables_certificate_verification() {
    let forbidden = [
        "danger_accept_invalid",
        "NoCertificateVerification",
        "NoVerifier",
        "accept_invalid_certs",
        "accept_invalid_hostnames",
        "insecure_skip",
        "ServerCertVerified::assertion()",
    ];
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for f in files_under(&root) {
        if f.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        for needle in forbidden {
            assert!(!text.contains(needle), "{} uses {needle}", f.display());
        }
        if text.contains(".dangerous()") {
            assert!(
                f.ends_with("verify/tls.rs"),
                "{} customises certificate verification",
                f.display()
            );
            assert!(text.contains("self.inner\n            .verify_server_cert("));
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn untrusted_servers_are_refused_unless_their_root_is_named() {
    let w = world("sec2").await;
    let section = cert_section(
        "mqtt-prod",
        &["mqtt.example.test"],
        "cname_target = \"sec2.emqx-cloud.test\"\n",
    );
    let env_vars = w.env_vars();
    let vars: Vec<(&str, &str)> = env_vars.iter().map(|(k, v)| (*k, v.as_str())).collect();

    // ACME: the same configuration without `acme.https_roots` does not trust Pebble's HTTPS.
    let cfg = w.env.config(&section);
    let text = std::fs::read_to_string(&cfg).unwrap();
    let pebble_tls = w.env.sb.pebble_tls_ca_path().display().to_string();
    let untrusting = text.replace(&format!("https_roots = [\"{pebble_tls}\"]\n"), "");
    assert_ne!(text, untrusting);
    std::fs::write(&cfg, &untrusting).unwrap();
    let r = w
        .env
        .run_with_env(&["issue", "--config", s(&cfg)], &vars)
        .await;
    r.assert_code(exit::ACME);
    assert!(
        r.stderr.to_lowercase().contains("certificate"),
        "the error names the certificate problem: {}",
        r.stderr
    );
    assert!(!w.env.live("mqtt-prod", "cert.pem").exists());

    // EMQX Cloud API: without `api_roots` the emulator's HTTPS is refused; nothing is written.
    let deploy = format!(
        "{section}\n[[certificate.deploy]]\ntype = \"emqx-cloud\"\ndeployment_id = \"sec2\"\nbase_url = \"{}\"\npoll_interval = \"50ms\"\n\n[certificate.verify]\nskip = true\n",
        w.emu.base_url()
    );
    let cfg = w.env.config(&deploy);
    let r = w
        .env
        .run_with_env(&["issue", "--config", s(&cfg)], &vars)
        .await;
    r.assert_code(exit::DEPLOY);
    assert!(
        r.stderr.to_lowercase().contains("certificate"),
        "the error names the certificate problem: {}",
        r.stderr
    );
    assert_eq!(w.emu.write_count("sec2"), 0);

    // With the test-only `api_roots` it deploys: the refusal above was about trust.
    let trusted = deploy.replace(
        "poll_interval",
        &format!(
            "api_roots = [\"{}\"]\npoll_interval",
            w.emu.ca_pem_path().display()
        ),
    );
    let cfg = w.env.config(&trusted);
    w.env
        .run_with_env(
            &["deploy", "--config", s(&cfg), "mqtt-prod", "--no-verify"],
            &vars,
        )
        .await
        .assert_ok();

    // MQTT: a CA file that did not issue the broker's certificate is refused.
    let wrong_ca = w.emu.ca_pem_path().display().to_string();
    let verify = trusted.replace(
        "[certificate.verify]\nskip = true\n",
        &format!(
            "[certificate.verify]\nmqtts_port = {}\nwss_port = {}\ntimeout = \"5s\"\nusername = \"device-1\"\npassword_env = \"TEST_MQTT_PASSWORD\"\nca_file = \"{wrong_ca}\"\n",
            w.ports.mqtts, w.ports.wss
        ),
    );
    let cfg = w.env.config(&verify);
    let r = w
        .env
        .run_with_env(&["verify", "--config", s(&cfg), "mqtt-prod"], &vars)
        .await;
    assert_ne!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.to_lowercase().contains("certificate")
            || r.stdout.to_lowercase().contains("certificate"),
        "{r:?}"
    );
    // And the right one (the stored root) is accepted.
    let right = verify.replace(&format!("ca_file = \"{wrong_ca}\"\n"), "");
    let cfg = w.env.config(&right);
    w.env
        .run_with_env(&["verify", "--config", s(&cfg), "mqtt-prod"], &vars)
        .await
        .assert_ok();
}

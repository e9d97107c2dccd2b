//! What people and scripts see: golden files for the human output of `status`, `check` and
//! `plan`; every `--json` object checked against the fields docs/json.md documents; `plan`
//! proven read-only against the sandbox; and the progress display rewriting its line in place
//! on a pseudo-terminal (util-linux `script`) but writing plain lines anywhere else.
//!
//! Goldens live in tests/golden/; `UPDATE_GOLDEN=1 cargo test --test ux` rewrites them.
//! Dates, times, ports, serials, zone ids and the scratch directory are normalised first.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::TestEnv;
use crate::support::cloud::{CONNECT_LOCAL, KEY, SECRET, cloud_lifted};
use crate::support::golden::{golden, json_lines, normalize};
use brokercert::pki::bundle::parse_bundle;
use brokercert::renew::state::{self, RenewalState};
use brokercert::store::{CertificateFiles, Store};
use brokercert_sandbox::{DeploymentPorts, DeploymentSpec, EmqxCloudEmulator};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use serde_json::Value;
use time::OffsetDateTime;

// ---------------------------------------------------------------- certificates

struct Pki {
    root_pem: String,
    chain_pem: String,
    leaf_pem: String,
    key_pem: String,
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.distinguished_name.push(DnType::CommonName, cn);
    p
}

/// Root → intermediate → leaf (ECDSA P-256), the leaf valid from `not_before_days` (days
/// from now) for `not_after` from now.
fn pki(names: &[&str], not_before_days: i64, not_after: time::Duration) -> Pki {
    let root_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let rp = ca_params("UX Test Root");
    let root_pem = rp.self_signed(&root_key).unwrap().pem();
    let int_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let ip = ca_params("UX Test Intermediate");
    let chain_pem = ip
        .signed_by(&int_key, &Issuer::from_params(&rp, &root_key))
        .unwrap()
        .pem();
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut p =
        CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    p.distinguished_name.push(DnType::CommonName, names[0]);
    let now = OffsetDateTime::now_utc();
    p.not_before = now + time::Duration::days(not_before_days);
    p.not_after = now + not_after;
    let leaf_pem = p
        .signed_by(&key, &Issuer::from_params(&ip, &int_key))
        .unwrap()
        .pem();
    Pki {
        root_pem,
        chain_pem,
        leaf_pem,
        key_pem: key.serialize_pem(),
    }
}

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_brokercert"));
    c.env_remove("BROKERCERT_CONFIG")
        .env_remove("BROKERCERT_STATE_DIR")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null());
    c
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(mut c: Command) -> Out {
    let o = c.output().expect("run brokercert");
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn assert_plain(what: &str, text: &str) {
    assert!(
        !text.contains('\u{1b}') && !text.contains('\r'),
        "{what} holds escape sequences or carriage returns: {text:?}"
    );
}

// ---------------------------------------------------------------- check

#[test]
fn check_human_output_matches_golden_and_json_matches_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(&["mqtt.example.test"], -1, time::Duration::days(89));
    let live = dir.path().join("live");
    std::fs::create_dir_all(&live).unwrap();
    std::fs::write(live.join("cert.pem"), &pki.leaf_pem).unwrap();
    std::fs::write(live.join("chain.pem"), &pki.chain_pem).unwrap();
    std::fs::write(live.join("privkey.pem"), &pki.key_pem).unwrap();
    std::fs::write(live.join("root.pem"), &pki.root_pem).unwrap();
    let literal = [(dir.path().display().to_string(), "$WORK")];

    let mut c = bin();
    c.args([
        "check",
        live.to_str().unwrap(),
        "--domain",
        "mqtt.example.test",
    ]);
    let human = run(c);
    assert_plain("check output", &human.stdout);
    golden("check.txt", &normalize(&human.stdout, &literal));

    let mut c = bin();
    c.args([
        "check",
        live.to_str().unwrap(),
        "--domain",
        "mqtt.example.test",
        "--json",
    ]);
    let j = run(c);
    assert_eq!(j.code, human.code, "same exit code with --json");
    let objs = json_lines("check", &j.stdout);
    assert_eq!(objs.len(), 1);
    assert_eq!(objs[0]["exit_code"], human.code);
}

// ---------------------------------------------------------------- status (and renew --json)

/// A state directory with one stored certificate deployed to a files target, and one
/// certificate never issued whose last attempt failed.
struct StatusCase {
    dir: tempfile::TempDir,
    config: PathBuf,
}

fn status_case() -> StatusCase {
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    let broker = dir.path().join("broker");
    std::fs::create_dir_all(&broker).unwrap();
    let pki = pki(
        &["mqtt.example.test"],
        -30,
        time::Duration::days(60) + time::Duration::hours(1),
    );
    let store = Store::new(&state_dir);
    let files = CertificateFiles {
        cert: pki.leaf_pem.clone(),
        chain: pki.chain_pem.clone(),
        fullchain: format!("{}{}", pki.leaf_pem, pki.chain_pem),
        privkey: pki.key_pem.clone(),
        root: pki.root_pem.clone(),
    };
    store.save("mqtt-files", "v1", &files).expect("store");
    std::fs::write(
        broker.join("fullchain.pem"),
        format!("{}{}", pki.leaf_pem, pki.chain_pem),
    )
    .unwrap();
    let leaf = parse_bundle(pki.leaf_pem.as_bytes())
        .unwrap()
        .certificates
        .remove(0);
    let now = OffsetDateTime::now_utc();
    let renewal = state_dir.join("renewal");
    state::save(
        &renewal,
        "mqtt-files",
        &RenewalState {
            last_success: Some(now - time::Duration::days(30)),
            deployed_fingerprint: Some(leaf.sha256_fingerprint().to_string()),
            ..Default::default()
        },
    )
    .unwrap();
    state::save(
        &renewal,
        "mqtt-new",
        &RenewalState {
            failures: 2,
            last_failure: Some(now - time::Duration::hours(1)),
            last_error: Some("the CA refused the order: rate limited".into()),
            last_code: Some(5),
            ..Default::default()
        },
    )
    .unwrap();
    let config = dir.path().join("brokercert.toml");
    std::fs::write(
        &config,
        format!(
            r#"state_dir = "{state}"

[renew]
ari = false

[[certificate]]
name = "mqtt-files"
domains = ["mqtt.example.test"]
key_type = "ecdsa-p256"

[[certificate.deploy]]
type = "files"
fullchain = "{broker}/fullchain.pem"

[certificate.verify]
connect = "127.0.0.1"
mqtts_port = 1
transports = ["mqtts"]
timeout = "2s"

[[certificate]]
name = "mqtt-new"
domains = ["new.example.test", "www.new.example.test"]
"#,
            state = state_dir.display(),
            broker = broker.display()
        ),
    )
    .unwrap();
    StatusCase { dir, config }
}

#[test]
fn status_table_matches_golden_and_json_matches_the_schema() {
    let c = status_case();
    let literal = [(c.dir.path().display().to_string(), "$WORK")];
    let cfg = c.config.to_str().unwrap();

    let mut cmd = bin();
    cmd.args(["status", "--config", cfg]);
    let human = run(cmd);
    assert_eq!(human.code, 0, "{}", human.stderr);
    assert_plain("status output", &human.stdout);
    golden("status.txt", &normalize(&human.stdout, &literal));

    let mut cmd = bin();
    cmd.args(["status", "--config", cfg, "--json"]);
    let j = run(cmd);
    let objs = json_lines("status", &j.stdout);
    assert_eq!(objs.len(), 2);
    assert_eq!(objs[0]["name"], "mqtt-files");
    assert_eq!(objs[0]["days_left"], 60);
    assert_eq!(objs[0]["next_reason"], "lifetime");
    assert_eq!(objs[0]["renew_now"], false);
    assert_eq!(objs[0]["deployments"][0]["status"], "files");
    assert_eq!(objs[0]["deployments"][0]["matches_stored"], true);
    assert_eq!(objs[0]["last_run"]["result"], "ok");
    assert_eq!(objs[1]["next_reason"], "missing");
    assert_eq!(objs[1]["last_run"]["result"], "failed");
    assert_eq!(objs[1]["last_run"]["failures"], 2);

    // --offline: the target is not read.
    let mut cmd = bin();
    cmd.args(["status", "--config", cfg, "--json", "--offline"]);
    let objs = json_lines("status", &run(cmd).stdout);
    assert_eq!(objs[0]["deployments"][0]["status"], "unknown");
    assert_eq!(objs[0]["deployments"][0]["matches_stored"], Value::Null);

    // --probe: the broker (nothing listens on port 1) is reported, not fatal.
    let mut cmd = bin();
    cmd.args([
        "status",
        "--config",
        cfg,
        "--json",
        "--probe",
        "--name",
        "mqtt-files",
    ]);
    let objs = json_lines("status", &run(cmd).stdout);
    let probed = &objs[0]["deployments"][1];
    assert!(
        probed["target"]
            .as_str()
            .unwrap()
            .starts_with("TLS probe mqtts"),
        "{probed}"
    );
    assert!(probed["error"].is_string(), "{probed}");

    // renew --json: not due, from local state only.
    let mut cmd = bin();
    cmd.args([
        "renew",
        "--config",
        cfg,
        "--name",
        "mqtt-files",
        "--no-jitter",
        "--json",
    ]);
    let r = run(cmd);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let objs = json_lines("renew", &r.stdout);
    assert_eq!(objs[0]["result"], "not_due");
    assert_eq!(objs[0]["next_reason"], "lifetime");
}

// ---------------------------------------------------------------- plan (sandbox)

const ID: &str = "dep1";

/// The EMQX Cloud fixture (budgets lifted) and its configuration, verify connecting to
/// 127.0.0.1.
async fn cloud() -> (TestEnv, EmqxCloudEmulator, DeploymentPorts, PathBuf) {
    let c = cloud_lifted(DeploymentSpec::dedicated(ID, KEY, SECRET)).await;
    let cfg = c.config(ID, "", CONNECT_LOCAL);
    (c.env, c.emu, c.ports, cfg)
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_lists_every_call_and_writes_nothing() {
    let (env, emu, ports, cfg) = cloud().await;
    let mut before = Vec::new();
    for (_, id) in env.sb.zones() {
        before.push(env.sb.list_records(id).await.expect("records"));
    }
    emu.clear_requests();

    let creds = [
        ("EMQX_CLOUD_API_KEY", KEY),
        ("EMQX_CLOUD_API_SECRET", SECRET),
    ];
    let cfg_s = cfg.to_str().unwrap();
    let human = env.run_with_env(&["plan", "--config", cfg_s], &creds).await;
    human.assert_ok();
    let dry = env
        .run_with_env(&["issue", "--dry-run", "--config", cfg_s], &creds)
        .await;
    dry.assert_ok();
    assert_eq!(dry.stdout, human.stdout, "issue --dry-run is plan");
    let j = env
        .run_with_env(&["plan", "--json", "--config", cfg_s], &creds)
        .await;
    j.assert_ok();
    let objs = json_lines("plan", &j.stdout);
    assert_eq!(objs[0]["ok"], true);

    // Nothing was written anywhere.
    let mut after = Vec::new();
    for (_, id) in env.sb.zones() {
        after.push(env.sb.list_records(id).await.expect("records"));
    }
    assert_eq!(before, after, "Route 53 record sets changed");
    assert_eq!(emu.write_count(ID), 0, "EMQX Cloud saw a write");
    assert!(emu.read_count(ID) > 0, "the plan reads the deployment");
    assert!(
        env.state_files().is_empty(),
        "no ACME account or order, no file: {:?}",
        env.state_files()
    );

    let mut literal: Vec<(String, &str)> = vec![
        (env.work.path().display().to_string(), "$WORK"),
        (env.sb.acme_directory_url(), "$ACME_DIRECTORY"),
        (emu.base_url(), "$EMQX_API"),
        (format!(":{}", ports.mqtts), ":$MQTTS_PORT"),
        (format!(":{}", ports.wss), ":$WSS_PORT"),
    ];
    for (z, id) in env.sb.zones() {
        literal.push((
            id.clone(),
            if z.name.starts_with("example") {
                "$ZONE_EXAMPLE"
            } else {
                "$ZONE_EMQX"
            },
        ));
    }
    let text = normalize(&human.stdout, &literal);
    assert!(
        text.contains("UPSERT _acme-challenge.mqtt.example.test TXT"),
        "{text}"
    );
    assert!(text.contains("newAccount"), "{text}");
    assert!(
        text.contains("POST $EMQX_API/deployments/dep1/tls"),
        "{text}"
    );
    golden("plan.txt", &text);

    // verify --json against a broker with no TLS configured: a failure, still one object.
    let v = env
        .run_with_env(
            &["verify", "mqtt-prod", "--json", "--config", cfg_s],
            &creds,
        )
        .await;
    assert_ne!(v.code, 0);
    let objs = json_lines("verify", &v.stdout);
    assert_eq!(objs[0]["ok"], false);
    assert!(objs[0]["error"].is_string());
    emu.stop();
}

// ---------------------------------------------------------------- progress on a terminal

/// The shell line `script -c` runs: the binary and `args`, each single-quoted.
fn script_line(args: &[&str]) -> String {
    let mut line = String::from(env!("CARGO_BIN_EXE_brokercert"));
    for a in args {
        line.push_str(" '");
        line.push_str(a);
        line.push('\'');
    }
    line
}

/// Runs `brokercert ARGS` under util-linux `script`, i.e. on a pseudo-terminal; returns
/// everything the terminal received (`\r\n` turned back into `\n`).
fn on_pty(env: &TestEnv, args: &[&str], extra: &[(&str, &str)], no_color: bool) -> (i32, String) {
    let line = script_line(args);
    let mut cmd = Command::new("script");
    cmd.args(["-qefc", &line, "/dev/null"])
        .env_remove("BROKERCERT_CONFIG")
        .env_remove("BROKERCERT_STATE_DIR")
        .env_remove("NO_COLOR")
        .env("TERM", "xterm")
        .env("COLUMNS", "200")
        .stdin(Stdio::null());
    env.sb.configure_command(&mut cmd);
    cmd.envs(extra.iter().copied());
    if no_color {
        cmd.env("NO_COLOR", "1");
    }
    let o = cmd.output().expect("script (util-linux) runs");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).replace("\r\n", "\n"),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn progress_rewrites_its_line_on_a_terminal_and_is_plain_elsewhere() {
    let (env, emu, _ports, cfg) = cloud().await;
    // EMQX Cloud stays `pending` a while after each upload: a wait to watch.
    emu.set_pending_delay(Duration::from_millis(700));
    let cfg_s = cfg.to_str().unwrap().to_string();
    let env_ref = &env;
    let args = ["issue", "--config", cfg_s.as_str()];
    let creds = [
        ("EMQX_CLOUD_API_KEY", KEY),
        ("EMQX_CLOUD_API_SECRET", SECRET),
    ];

    // A terminal: the waits are rewritten in place, finished stages stay.
    let (code, tty) = tokio::task::block_in_place(|| on_pty(env_ref, &args, &creds, false));
    if std::env::var_os("UX_SHOW_TTY").is_some() {
        eprintln!("{tty:?}");
    }
    assert_eq!(code, 0, "{tty}");
    let rewrites = tty
        .matches("\r\u{1b}[2K  deploy             EMQX Cloud: pending (")
        .count();
    assert!(
        rewrites >= 2,
        "the EMQX Cloud wait is rewritten in place, with its time: {tty:?}"
    );
    assert!(tty.contains("; next check in "), "{tty:?}");
    assert!(
        tty.contains("INSYNC") && tty.contains("nameservers"),
        "the DNS waits say what they wait for: {tty:?}"
    );
    assert!(tty.contains("mqtts round trip OK ("), "{tty:?}");
    // Results start on a line of their own (after a newline or an erased line), never after
    // a progress line left on screen.
    for result in [
        "Issued certificate `mqtt-prod`",
        "Deployed to EMQX Cloud deployment dep1",
        "Verified mqtts",
    ] {
        let at = tty
            .find(result)
            .unwrap_or_else(|| panic!("`{result}` missing: {tty:?}"));
        let before = &tty[..at];
        assert!(
            before.ends_with('\n') || before.ends_with("\u{1b}[2K"),
            "`{result}` follows a progress line: {tty:?}"
        );
    }

    // A terminal with NO_COLOR: plain lines only.
    // (`--force-renewal`: the certificate just issued is not due, and a run that keeps it
    // has no waits to show.)
    let forced = ["issue", "--config", cfg_s.as_str(), "--force-renewal"];
    let (code, plain) = tokio::task::block_in_place(|| on_pty(env_ref, &forced, &creds, true));
    assert_eq!(code, 0, "{plain}");
    assert_plain("NO_COLOR terminal output", &plain);
    // (`store`: a stage every run has; Pebble 2.4 can reuse the authorization of the run
    // before, 1 time in 100, and then there is no DNS stage.)
    assert!(plain.contains("✓ store"), "{plain}");
    assert_eq!(
        plain.matches("EMQX Cloud: pending (").count(),
        1,
        "a repeated wait is one line, not one per poll: {plain}"
    );

    // Not a terminal (and NO_COLOR unset): plain lines; `--json` keeps stdout to JSON.
    let mut with_color = creds.to_vec();
    with_color.push(("NO_COLOR", ""));
    let r = env
        .run_with_env(
            &["issue", "--json", "--config", &cfg_s, "--force-renewal"],
            &with_color,
        )
        .await;
    r.assert_ok();
    assert_plain("piped stderr", &r.stderr);
    assert_plain("piped stdout", &r.stdout);
    let objs = json_lines("issue", &r.stdout);
    assert_eq!(objs.len(), 1);
    assert_eq!(objs[0]["ok"], true);
    assert!(
        r.stderr.contains("Issued certificate"),
        "human summary on stderr"
    );
    emu.stop();
}

// ---------------------------------------------------------------- Ctrl-C on a terminal

/// Runs `brokercert ARGS` on a pseudo-terminal (util-linux `script`), types Ctrl-C once the
/// terminal shows `marker`, and returns the exit code and everything the terminal received.
fn on_pty_interrupted(
    env: &TestEnv,
    args: &[&str],
    extra: &[(&str, &str)],
    marker: &str,
) -> (i32, String) {
    use std::io::{Read, Write};
    let line = script_line(args);
    let mut cmd = Command::new("script");
    cmd.args(["-qefc", &line, "/dev/null"])
        .env_remove("BROKERCERT_CONFIG")
        .env_remove("BROKERCERT_STATE_DIR")
        .env("NO_COLOR", "1")
        .env("TERM", "xterm")
        .env("COLUMNS", "200")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    env.sb.configure_command(&mut cmd);
    cmd.envs(extra.iter().copied());
    let mut child = cmd.spawn().expect("script (util-linux) runs");
    let mut stdout = child.stdout.take().expect("stdout");
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let reader = {
        let seen = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                seen.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        })
    };
    let text = |seen: &std::sync::Mutex<Vec<u8>>| {
        String::from_utf8_lossy(&seen.lock().unwrap()).replace("\r\n", "\n")
    };
    let started = std::time::Instant::now();
    while !text(&seen).contains(marker) {
        if started.elapsed() > Duration::from_secs(90) || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            panic!("`{marker}` never showed: {}", text(&seen));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"\x03").expect("type Ctrl-C");
    stdin.flush().unwrap();
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("still running 20 s after Ctrl-C: {}", text(&seen));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(stdin);
    reader.join().unwrap();
    (status.code().unwrap_or(-1), text(&seen))
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_during_the_deployment_wait_says_what_it_stopped_and_exits_130() {
    let (env, emu, _ports, cfg) = cloud().await;
    let cfg_s = cfg.to_str().unwrap().to_string();
    let creds = [
        ("EMQX_CLOUD_API_KEY", KEY),
        ("EMQX_CLOUD_API_SECRET", SECRET),
    ];
    // EMQX Cloud stays `pending` for good: only Ctrl-C ends the wait.
    emu.set_pending_forever();
    let env_ref = &env;
    for args in [
        vec!["issue", "--config", cfg_s.as_str()],
        vec![
            "renew",
            "--config",
            cfg_s.as_str(),
            "--force",
            "--no-jitter",
        ],
        vec!["deploy", "mqtt-prod", "--config", cfg_s.as_str()],
    ] {
        let (code, tty) = tokio::task::block_in_place(|| {
            on_pty_interrupted(env_ref, &args, &creds, "EMQX Cloud: pending (")
        });
        assert_eq!(code, 130, "{args:?}: {tty}");
        for part in [
            "interrupted (Ctrl-C or SIGTERM) while waiting — deploy: EMQX Cloud: pending (",
            "finishes on its own",
            &format!("brokercert verify mqtt-prod --config {cfg_s}"),
        ] {
            assert!(tty.contains(part), "{args:?}: `{part}` missing: {tty}");
        }
        assert!(
            !tty.contains("Verified mqtts"),
            "{args:?}: verification did not run after the interruption: {tty}"
        );
        assert!(
            env.live("mqtt-prod", "cert.pem").exists(),
            "{args:?}: the certificate stays stored"
        );
    }
    emu.stop();
}

// ---------------------------------------------------------------- `init` on a terminal

/// Runs `brokercert init ARGS` on a pseudo-terminal (util-linux `script`) in `dir`, typing
/// `answers`; returns the exit code and everything the terminal showed.
fn init_on_pty(dir: &Path, args: &[&str], answers: &str) -> (i32, String) {
    use std::io::Write;
    let mut all = vec!["init"];
    all.extend_from_slice(args);
    let line = script_line(&all);
    let mut child = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("BROKERCERT_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script (util-linux) runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(answers.as_bytes())
        .expect("answers");
    let done = child.wait_with_output().expect("script");
    (
        done.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&done.stdout).replace("\r\n", "\n"),
    )
}

#[test]
fn init_asks_again_after_a_bad_answer_takes_pasted_urls_starts_on_staging_and_makes_the_client_ca()
{
    let dir = tempfile::tempdir().unwrap();
    // Each bad answer is followed by a good one.
    let answers = [
        "not a domain!",
        "mqtts://mqtt.example.com:8883",
        "nope",
        "ops@example.com",
        "",
        "maybe",
        "y",
        "bad/id",
        "ge6a1a75",
        "mqtts://ge6a1a75.ala.us-east-1.emqxsl.com:8883",
        "three-way",
        "two-way",
        "",
        "device-1",
    ]
    .join("\n")
        + "\n";
    let (code, shown) = init_on_pty(dir.path(), &[], &answers);
    assert_eq!(code, 0, "{shown}");
    assert_eq!(
        shown.matches("try again").count(),
        5,
        "each bad answer is asked again: {shown}"
    );
    let cfg = dir.path().join("brokercert.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let settings =
        brokercert::config::Settings::load(Some(&cfg), &brokercert::config::Overrides::default())
            .expect("loads");
    let c = &settings.certificates[0];
    assert_eq!(c.domains[0].as_str(), "mqtt.example.com");
    assert_eq!(
        c.cname_target.as_ref().map(|t| t.as_str().to_string()),
        Some("ge6a1a75.ala.us-east-1.emqxsl.com".into())
    );
    assert!(settings.acme.agree_tos);
    assert!(
        text.contains("directory = \"letsencrypt-staging\"")
            && text.contains("directory = \"letsencrypt\" and run"),
        "staging, with how to switch: {text}"
    );
    assert!(text.contains("username = \"device-1\""), "{text}");
    assert!(
        dir.path().join("client-ca/client-ca.crt").exists(),
        "the client CA was created: {shown}"
    );
    assert!(
        shown.contains("Next: export the secrets it names")
            && shown.contains("then run `brokercert issue --config brokercert.toml`"),
        "{shown}"
    );
    assert!(!shown.contains("client-ca create --out"), "{shown}");

    // Declining the client CA: the next steps create it before `issue`.
    let other = tempfile::tempdir().unwrap();
    let (code, shown) = init_on_pty(
        other.path(),
        &[
            "--domain",
            "mqtt.example.com",
            "--deployment-id",
            "ge6a1a75",
            "--tls",
            "two-way",
        ],
        "\n\ny\n\nn\n\n",
    );
    assert_eq!(code, 0, "{shown}");
    let create = shown
        .find("create the client CA with `brokercert client-ca create --out client-ca`")
        .unwrap_or_else(|| panic!("{shown}"));
    let issue = shown
        .find("run `brokercert issue")
        .unwrap_or_else(|| panic!("{shown}"));
    assert!(create < issue, "{shown}");
    assert!(!other.path().join("client-ca").exists());

    // Every answer has a flag: nothing is asked.
    let flags = tempfile::tempdir().unwrap();
    let (code, shown) = init_on_pty(
        flags.path(),
        &[
            "--domain",
            "mqtt.example.com",
            "--email",
            "ops@example.com",
            "--production",
            "--agree-tos",
            "--deployment-id",
            "ge6a1a75",
            "--cname-target",
            "ge6a1a75.emqxsl.com",
            "--tls",
            "two-way",
            "--no-client-ca",
            "--mqtt-username",
            "device-1",
        ],
        "",
    );
    assert_eq!(code, 0, "{shown}");
    assert!(!shown.contains("?"), "no question was asked: {shown}");
    let text = std::fs::read_to_string(flags.path().join("brokercert.toml")).unwrap();
    assert!(text.contains("directory = \"letsencrypt\"\n"), "{text}");
}

//! Issue #17 "Security hardening": each finding of the adversarial review that concerns
//! inputs (the account variable, configuration files, flags, certificates, files and
//! servers' answers), checked against the real binary. Each test failed before its fix.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::support::{Run, TestEnv, cert_section, run_plain};
use brokercert::error::exit;
use brokercert_sandbox::SandboxOptions;

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

fn plain(args: &[&str]) -> Run {
    run_plain(args, &[])
}

/// Writes `text` as a configuration file with `mode` and returns its path.
fn config_file(dir: &Path, text: &str, mode: u32) -> PathBuf {
    let p = dir.join("brokercert.toml");
    std::fs::write(&p, text).expect("write config");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    p
}

/// A configuration whose CA cannot be reached (nothing here may reach a real one).
fn minimal(dir: &Path, certificate: &str) -> String {
    format!(
        "state_dir = \"{}\"\n\n[acme]\ndirectory = \"https://127.0.0.1:9/directory\"\n\
         agree_tos = true\n\n{certificate}",
        dir.join("state").display()
    )
}

/// The stored account file (there is one after a first run).
fn stored_account(state: &Path) -> String {
    // accounts/HOST/HASH.json
    let host = std::fs::read_dir(state.join("accounts"))
        .expect("accounts/")
        .flatten()
        .next()
        .expect("a CA host directory");
    let entry = std::fs::read_dir(host.path())
        .expect("accounts/HOST")
        .flatten()
        .find(|e| e.path().extension().is_some_and(|x| x == "json"))
        .expect("an account file");
    std::fs::read_to_string(entry.path()).expect("read account")
}

/// High 1: the configured directory decides, whatever `BROKERCERT_ACME_ACCOUNT` says.
#[tokio::test(flavor = "multi_thread")]
async fn the_account_variable_never_overrides_the_configured_ca() {
    let env = TestEnv::start(SandboxOptions::new().zone("example.test")).await;
    let cfg = env.config(&cert_section(
        "acct",
        &["acct.example.test"],
        "key_type = \"ecdsa-p256\"",
    ));
    env.run(&["issue", "--config", s(&cfg)]).await.assert_ok();
    let account = stored_account(&env.state_dir());
    let pebble = env.sb.acme_directory_url();

    // A configuration naming another CA (unreachable here) with Pebble's account in the
    // variable: before, the account's own directory won and Pebble issued the certificate.
    let other_dir = env.work.path().join("other");
    std::fs::create_dir_all(&other_dir).expect("dir");
    let elsewhere = std::fs::read_to_string(&cfg)
        .expect("config")
        .replace(&pebble, "https://127.0.0.1:9/directory")
        .replace(s(&env.state_dir()), s(&other_dir.join("state")));
    let elsewhere_cfg = config_file(&other_dir, &elsewhere, 0o600);
    let r = env
        .run_with_env(
            &["issue", "--config", s(&elsewhere_cfg)],
            &[("BROKERCERT_ACME_ACCOUNT", &account)],
        )
        .await;
    r.assert_code(exit::CONFIG);
    assert!(
        r.stderr.contains(&pebble) && r.stderr.contains("https://127.0.0.1:9/directory"),
        "the message names both directories: {}",
        r.stderr
    );
    assert!(r.stderr.contains("BROKERCERT_ACME_ACCOUNT"), "{}", r.stderr);
    assert!(
        !other_dir.join("state/live/acct").exists(),
        "nothing was issued"
    );
    assert!(env.challenge_records_left().await.is_empty());

    // An account whose JSON points at plain http is refused for the https directory.
    let mut v: serde_json::Value = serde_json::from_str(&account).expect("account JSON");
    v["directory"] = pebble.replace("https://", "http://").into();
    let r = env
        .run_with_env(
            &["issue", "--config", s(&cfg), "--force-renewal"],
            &[("BROKERCERT_ACME_ACCOUNT", &v.to_string())],
        )
        .await;
    r.assert_code(exit::CONFIG);
    assert!(r.stderr.contains("http://"), "{}", r.stderr);

    // The account for the configured directory is used as before.
    env.run_with_env(
        &["issue", "--config", s(&cfg), "--force-renewal"],
        &[("BROKERCERT_ACME_ACCOUNT", &account)],
    )
    .await
    .assert_ok();
}

/// Low 6: a secret written inline is not echoed by a parse error.
#[test]
fn configuration_errors_do_not_echo_inline_secrets() {
    let dir = tempfile::tempdir().expect("tmp");
    let section = "[[certificate]]\nname = \"a\"\ndomains = [\"mqtt.example.test\"]\n\n\
                   [[certificate.deploy]]\ntype = \"emqx-cloud\"\ndeployment_id = \"d1\"\n";
    for (line, secret) in [
        (
            "api_secret = \"inline-secret-4b1d9\" junk",
            "inline-secret-4b1d9",
        ),
        ("api_key = 73190044", "73190044"),
        (
            "api_secret = \"unterminated-secret-77a1",
            "unterminated-secret-77a1",
        ),
    ] {
        let text = minimal(dir.path(), &format!("{section}{line}\n"));
        let cfg = config_file(dir.path(), &text, 0o600);
        let r = plain(&["plan", "--config", s(&cfg)]);
        r.assert_code(exit::CONFIG);
        assert!(
            r.stderr.contains("brokercert.toml"),
            "names the file: {}",
            r.stderr
        );
        assert!(
            !r.stderr.contains(secret) && !r.stdout.contains(secret),
            "`{line}` echoed: {}",
            r.stderr
        );
    }
}

/// Low 8 and 15: durations are bounded and pacing intervals have a floor; none panics.
#[test]
fn durations_are_bounded_and_intervals_cannot_be_zero() {
    let dir = tempfile::tempdir().expect("tmp");
    let cert = "[[certificate]]\nname = \"a\"\ndomains = [\"mqtt.example.test\"]\n";
    let cfg = config_file(dir.path(), &minimal(dir.path(), cert), 0o600);
    for args in [
        vec!["issue", "--wait", "500000000000years"],
        vec!["renew", "--wait", "20000years"],
        vec!["schedule", "--max-sleep", "20000years"],
    ] {
        let mut all = args.clone();
        all.extend(["--config", s(&cfg)]);
        let r = plain(&all);
        r.assert_code(exit::CONFIG);
        assert!(
            r.stderr.contains("at most 10 years"),
            "{args:?}: {}",
            r.stderr
        );
        assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    }
    let r = plain(&[
        "schedule",
        "--config",
        s(&cfg),
        "--min-sleep",
        "0s",
        "--max-sleep",
        "0s",
    ]);
    r.assert_code(exit::CONFIG);
    assert!(r.stderr.contains("--min-sleep"), "{}", r.stderr);

    let lifetime = minimal(
        dir.path(),
        &format!("[renew]\nassumed_lifetime = \"100000years\"\n\n{cert}"),
    );
    let r = plain(&[
        "status",
        "--config",
        s(&config_file(dir.path(), &lifetime, 0o600)),
    ]);
    r.assert_code(exit::CONFIG);
    assert!(r.stderr.contains("at most 10 years"), "{}", r.stderr);

    let poll = minimal(
        dir.path(),
        &format!(
            "{cert}\n[[certificate.deploy]]\ntype = \"emqx-cloud\"\ndeployment_id = \"d1\"\n\
             poll_interval = \"0s\"\n"
        ),
    );
    let r = run_plain(
        &[
            "issue",
            "--config",
            s(&config_file(dir.path(), &poll, 0o600)),
        ],
        &[("EMQX_CLOUD_API_KEY", "k"), ("EMQX_CLOUD_API_SECRET", "s")],
    );
    r.assert_code(exit::CONFIG);
    assert!(r.stderr.contains("poll_interval"), "{}", r.stderr);
    assert!(
        !dir.path().join("state/live").exists(),
        "nothing was ordered"
    );
}

/// Low 9 and minor: certificate names fit every derived path and cannot look like flags;
/// an IP address is not a domain.
#[test]
fn names_are_checked_at_load() {
    let dir = tempfile::tempdir().expect("tmp");
    let long = "n".repeat(201);
    for (cert, want) in [
        (
            format!("[[certificate]]\nname = \"{long}\"\ndomains = [\"mqtt.example.test\"]\n"),
            "at most 200 characters",
        ),
        (
            "[[certificate]]\nname = \"-rf\"\ndomains = [\"mqtt.example.test\"]\n".to_string(),
            "not starting with `.` or `-`",
        ),
        (
            "[[certificate]]\nname = \"ip\"\ndomains = [\"1.2.3.4\"]\n".to_string(),
            "IP address",
        ),
    ] {
        let cfg = config_file(dir.path(), &minimal(dir.path(), &cert), 0o600);
        let r = plain(&["issue", "--config", s(&cfg)]);
        r.assert_code(exit::CONFIG);
        assert!(r.stderr.contains(want), "{want}: {}", r.stderr);
        assert!(!dir.path().join("state").join("accounts").exists());
    }
    // 200 characters is still fine for the configuration.
    let ok = format!(
        "[[certificate]]\nname = \"{}\"\ndomains = [\"mqtt.example.test\"]\n",
        "n".repeat(200)
    );
    let cfg = config_file(dir.path(), &minimal(dir.path(), &ok), 0o600);
    plain(&["status", "--config", s(&cfg)]).assert_ok();
}

/// Low 10: a configuration that names commands must not be writable by others.
#[test]
fn a_writable_configuration_with_commands_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let files = dir.path().join("out");
    for extra in [
        format!(
            "[[certificate.deploy]]\ntype = \"files\"\nfullchain = \"{0}/f.pem\"\nkey = \"{0}/k.pem\"\nreload = [\"true\"]\n",
            files.display()
        ),
        "[renew]\nnotify_command = [\"true\"]\n".to_string(),
    ] {
        let text = minimal(
            dir.path(),
            &format!("[[certificate]]\nname = \"a\"\ndomains = [\"mqtt.example.test\"]\n{extra}"),
        );
        for mode in [0o664, 0o646] {
            let cfg = config_file(dir.path(), &text, mode);
            let r = plain(&["status", "--config", s(&cfg)]);
            r.assert_code(exit::CONFIG);
            assert!(
                r.stderr.contains(&format!("chmod go-w {}", cfg.display())),
                "{}",
                r.stderr
            );
        }
        let cfg = config_file(dir.path(), &text, 0o644);
        plain(&["status", "--config", s(&cfg)]).assert_ok();
    }
}

/// Low 11: the webhook URL is a secret and must be https.
#[test]
fn the_webhook_url_is_a_secret_and_https_only() {
    let dir = tempfile::tempdir().expect("tmp");
    let cert = "[[certificate]]\nname = \"a\"\ndomains = [\"mqtt.example.test\"]\n";
    let token = "T000/B000/hook-token-5e2c";
    let https = minimal(
        dir.path(),
        &format!("[renew]\nnotify_webhook = \"https://hooks.example.test/{token}\"\n\n{cert}"),
    );
    // Inline in a file others can read: refused like any inline secret, URL not shown.
    let r = plain(&[
        "status",
        "--config",
        s(&config_file(dir.path(), &https, 0o644)),
    ]);
    r.assert_code(exit::CONFIG);
    assert!(r.stderr.contains("renew.notify_webhook"), "{}", r.stderr);
    assert!(!r.stderr.contains(token), "{}", r.stderr);
    plain(&[
        "status",
        "--config",
        s(&config_file(dir.path(), &https, 0o600)),
    ])
    .assert_ok();
    // Plain http is refused without the test-only switch, and the URL is not shown.
    let http = https.replace("https://", "http://");
    let r = plain(&[
        "status",
        "--config",
        s(&config_file(dir.path(), &http, 0o600)),
    ]);
    r.assert_code(exit::CONFIG);
    assert!(r.stderr.contains("https://"), "{}", r.stderr);
    assert!(!r.stderr.contains(token), "{}", r.stderr);
    // From the environment: checked when sent; a non-https value is a warning, not shown.
    let from_env = minimal(
        dir.path(),
        &format!("[renew]\nnotify_webhook_env = \"HOOK\"\n\n{cert}"),
    );
    plain(&[
        "status",
        "--config",
        s(&config_file(dir.path(), &from_env, 0o644)),
    ])
    .assert_ok();
}

/// Low 12: the deployment id is validated; path, query and fragment characters are refused.
#[test]
fn a_deployment_id_cannot_rewrite_the_api_path() {
    let dir = tempfile::tempdir().expect("tmp");
    let text = minimal(
        dir.path(),
        "[[certificate]]\nname = \"a\"\ndomains = [\"mqtt.example.test\"]\n\n\
         [[certificate.deploy]]\ntype = \"emqx-cloud\"\ndeployment_id = \"../../x?q=#\"\n\
         base_url = \"https://127.0.0.1:9/public_api/v1\"\n",
    );
    let cfg = config_file(dir.path(), &text, 0o600);
    let r = run_plain(
        &["issue", "--config", s(&cfg)],
        &[("EMQX_CLOUD_API_KEY", "k"), ("EMQX_CLOUD_API_SECRET", "s")],
    );
    r.assert_code(exit::CONFIG);
    assert!(r.stderr.contains("deployment_id"), "{}", r.stderr);
    assert!(r.stderr.contains("ge6a1a75"), "{}", r.stderr);
    assert!(
        !dir.path().join("state/accounts").exists(),
        "nothing ordered"
    );
}

/// A self-signed certificate whose CN and SAN carry terminal escape sequences.
fn hostile_certificate(dir: &Path) -> PathBuf {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    p.distinguished_name.push(
        rcgen::DnType::CommonName,
        "evil\u{1b}]0;pwned\u{7}\u{1b}[2J\u{9b}31mred",
    );
    p.subject_alt_names = vec![rcgen::SanType::DnsName(
        "x\u{1b}[8mhidden.example.test".try_into().expect("SAN"),
    )];
    let cert = p.self_signed(&key).expect("cert");
    let path = dir.join("hostile.pem");
    std::fs::write(&path, cert.pem()).expect("write");
    path
}

/// Low 13: fields of an untrusted certificate reach the terminal escaped.
#[test]
fn control_characters_from_certificates_are_escaped() {
    let dir = tempfile::tempdir().expect("tmp");
    let pem = hostile_certificate(dir.path());
    for args in [
        vec!["check", s(&pem)],
        vec!["split", s(&pem), "--out", s(&dir.path().join("split"))],
    ] {
        let r = plain(&args);
        for (stream, text) in [("stdout", &r.stdout), ("stderr", &r.stderr)] {
            assert!(
                !text.contains('\u{1b}') && !text.contains('\u{9b}') && !text.contains('\u{7}'),
                "{args:?} wrote a control character on {stream}: {text:?}"
            );
        }
        assert!(
            r.stdout.contains("\\u{1b}") || r.stderr.contains("\\u{1b}"),
            "{args:?} shows the escape: {r:?}"
        );
    }
}

/// Low 14: a file that never ends is read only up to a cap.
#[test]
fn an_endless_input_file_is_capped() {
    // Under a 2 GiB address-space limit an unbounded read aborts instead of eating the
    // machine; the capped read answers at once with the cap.
    let out = std::process::Command::new("sh")
        .args([
            "-c",
            "ulimit -v 2097152; exec \"$0\" check /dev/zero",
            env!("CARGO_BIN_EXE_brokercert"),
        ])
        .env("NO_COLOR", "1")
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stderr.contains("larger than 1 MiB") || stdout.contains("larger than 1 MiB"),
        "{:?}\n{stdout}\n{stderr}",
        out.status
    );
    assert!(!stderr.contains("memory allocation"), "{stderr}");
}

/// Minor: a malformed `--expect-serial` is a usage error (exit 2), not a failed verification.
#[test]
fn a_malformed_serial_is_a_usage_error() {
    let r = plain(&["verify", "mqtt", "--expect-serial", "zz"]);
    r.assert_code(exit::CONFIG);
    assert!(r.stderr.contains("hexadecimal"), "{}", r.stderr);
}

/// Minor: a run stalled by the crash-test hook still ends on SIGTERM.
#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_run_still_ends_on_sigterm() {
    let env = TestEnv::start(SandboxOptions::new().zone("example.test")).await;
    let cfg = env.config(&cert_section(
        "stall",
        &["stall.example.test"],
        "key_type = \"ecdsa-p256\"",
    ));
    let held = crate::support::stall::start_stalled(
        &env,
        &["issue", "--config", s(&cfg)],
        "order",
        &[],
        Duration::from_secs(60),
    )
    .await
    .unwrap_or_else(|seen| panic!("never stalled: {seen}"));
    let (status, seen) = held.terminate(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(143), "{seen}");
}

/// Low 16: `init`'s configuration is never group- or world-writable, whatever the umask
/// (a later run would refuse it once it names a command).
#[test]
fn init_writes_its_configuration_without_group_or_world_write_under_umask_000() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().join("brokercert.toml");
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg("umask 000 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_brokercert"))
        .args([
            "init",
            "--domain",
            "mqtt.example.test",
            "--output",
            s(&out),
            "--no-input",
        ])
        .env_remove("BROKERCERT_CONFIG")
        .stdin(Stdio::null())
        .status()
        .expect("run init");
    assert!(status.success());
    let mode = std::fs::metadata(&out)
        .expect("written")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o644);
}

//! `brokercert init`, `completions` and `man`, run as the real binary: the generated
//! configuration loads with the real loader and holds no secret; a file is never replaced
//! without `--force`; completions and the manual page survive a reader that closes the pipe.

use std::path::Path;
use std::process::{Command, Stdio};

use brokercert::config::{Overrides, Settings};
use brokercert::error::exit;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_brokercert"));
    c.env_remove("BROKERCERT_CONFIG")
        .env_remove("BROKERCERT_STATE_DIR")
        .env("NO_COLOR", "1");
    c
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = bin()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run brokercert");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

#[test]
fn init_writes_a_loadable_configuration_without_secrets() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("brokercert.toml");
    let (code, stdout, stderr) = run(&[
        "init",
        "--domain",
        "mqtt.example.com",
        "--deployment-id",
        "ge6a1a75",
        "--cname-target",
        "ge6a1a75.ala.us-east-1.emqxsl.com",
        "--tls",
        "two-way",
        "--email",
        "ops@example.com",
        "--output",
        s(&out),
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        text.contains("api_secret_env = \"EMQX_CLOUD_API_SECRET\""),
        "{text}"
    );
    assert!(text.contains("tls = \"two-way\""), "{text}");
    // Only references to secrets, never values.
    for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
        let key = line.split('=').next().unwrap_or("").trim();
        assert!(
            !matches!(key, "api_key" | "api_secret" | "eab_hmac" | "password"),
            "a secret written inline: {line}"
        );
    }
    let settings = Settings::load(Some(&out), &Overrides::default()).expect("loads");
    let c = &settings.certificates[0];
    assert_eq!(c.domains[0].as_str(), "mqtt.example.com");
    assert_eq!(
        c.cname_target.as_ref().map(|t| t.as_str().to_string()),
        Some("ge6a1a75.ala.us-east-1.emqxsl.com".into())
    );
    assert_eq!(settings.acme.email.as_deref(), Some("ops@example.com"));
    assert_eq!(c.deploy.len(), 1);

    // Never replaced without --force.
    std::fs::write(&out, "# mine\n").unwrap();
    let (code, _, stderr) = run(&["init", "--domain", "a.example.com", "--output", s(&out)]);
    assert_eq!(code, exit::CONFIG);
    assert!(stderr.contains("--force"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "# mine\n");
    let (code, _, stderr) = run(&[
        "init",
        "--domain",
        "a.example.com",
        "--output",
        s(&out),
        "--force",
    ]);
    assert_eq!(code, 0, "{stderr}");
    Settings::load(Some(&out), &Overrides::default()).expect("loads");

    // Without a terminal, a missing domain is an error, not a question.
    let (code, _, stderr) = run(&["init", "--output", s(&tmp.path().join("x.toml"))]);
    assert_eq!(code, exit::CONFIG);
    assert!(stderr.contains("--domain"), "{stderr}");
}

/// On a terminal, `init` asks for what the flags left out (run under `script`, which gives
/// it a pseudo-terminal; skipped where util-linux's `script` is missing).
#[test]
fn init_asks_on_a_terminal() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: `script` (util-linux) is not installed");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("asked.toml");
    let cmd = format!(
        "{} init --output {}",
        env!("CARGO_BIN_EXE_brokercert"),
        out.display()
    );
    let mut child = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn script");
    // Domain, e-mail, staging (Enter: yes), terms, deployment, CNAME, TLS, create the client
    // CA (no), MQTT user (none).
    let answers =
        "mqtt.example.com\nops@example.com\n\ny\nge6a1a75\nge6a1a75.emqxsl.com\ntwo-way\nn\n\n";
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), answers.as_bytes())
        .expect("answers");
    let done = child.wait_with_output().expect("script");
    let shown = String::from_utf8_lossy(&done.stdout).into_owned();
    assert!(done.status.success(), "{shown}");
    assert!(shown.contains("Broker's custom domain"), "{shown}");
    let settings = Settings::load(Some(&out), &Overrides::default()).expect("loads");
    assert_eq!(
        settings.certificates[0].domains[0].as_str(),
        "mqtt.example.com"
    );
    assert!(settings.acme.agree_tos);
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        text.contains("tls = \"two-way\"") && text.contains("deployment_id = \"ge6a1a75\""),
        "{text}"
    );
}

/// Runs `brokercert ARGS` with stdout a pipe whose reading end is already closed (what
/// `brokercert completions bash | head -1` does to it, deterministically): returns the exit
/// code and stderr.
fn closed_pipe(args: &[&str]) -> (Option<i32>, String) {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let child = bin()
        .args(args)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let out = child.wait_with_output().expect("wait");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn completions_and_man_survive_a_closed_pipe() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let (code, out, err) = run(&["completions", shell]);
        assert_eq!(code, 0, "{shell}: {err}");
        assert!(out.contains("brokercert"), "{shell}");
        assert!(
            out.contains("iam-policy") || out.contains("iam_policy"),
            "{shell}"
        );
    }
    let (code, out, err) = run(&["man"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with(".ie") || out.contains(".TH"), "{out}");

    // The reader went away: no panic, exit 0, nothing on stderr.
    for args in [
        &["completions", "bash"][..],
        &["completions", "zsh"][..],
        &["man"][..],
    ] {
        let (code, stderr) = closed_pipe(args);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(matches!(code, Some(0)), "{args:?}: exit {code:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
    }
    // Unknown shell: a usage error from the parser.
    let (code, _, err) = run(&["completions", "tcsh"]);
    assert_eq!(code, 2, "{err}");
}

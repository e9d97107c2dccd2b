//! Settings are validated when they are loaded (issue #18): a configuration that can never
//! work fails before any order, with the same exit code from `issue` and from `renew`
//! (which used to check it only once a renewal was due, and with another code).
//!
//! No sandbox: the CA is an unreachable 127.0.0.1:9, so an order could never be placed;
//! the state directory shows whether anything was attempted (an account, a journal, a
//! recorded failure).

use std::path::Path;

use crate::support::{Run, run_plain};

/// A configuration with `extra` in its `[[certificate]]` and `trust` as `[trust]`.
fn config(dir: &Path, trust: &str, extra: &str) -> String {
    let out = dir.join("deployed");
    std::fs::create_dir_all(&out).expect("dir");
    let text = format!(
        r#"state_dir = "{state}"

[acme]
directory = "https://127.0.0.1:9/dir"
email = "ops@example.test"
agree_tos = true

[route53]
endpoint_url = "http://127.0.0.1:9"

[trust]
{trust}

[renew]
jitter = "0s"

[[certificate]]
name = "broker"
domains = ["broker.example.test"]
{extra}
[[certificate.deploy]]
type = "files"
fullchain = "{out}/fullchain.pem"
key = "{out}/privkey.pem"
"#,
        state = dir.join("state").display(),
        out = out.display(),
    );
    let path = dir.join("brokercert.toml");
    std::fs::write(&path, text).expect("write config");
    path.display().to_string()
}

fn issue_and_renew(config: &str) -> (Run, Run) {
    let issue = run_plain(&["issue", "--config", config], &[]);
    let renew = run_plain(&["renew", "--config", config, "--no-jitter"], &[]);
    (issue, renew)
}

/// `issue` and `renew` on `config` both fail, with one exit code, a message naming
/// `named`, and nothing attempted.
fn fail_alike(dir: &Path, config: &str, named: &str) {
    let (issue, renew) = issue_and_renew(config);
    assert_ne!(issue.code, 0, "{issue:#?}");
    assert_eq!(
        issue.code, renew.code,
        "issue and renew disagree on the exit code\nissue: {issue:#?}\nrenew: {renew:#?}"
    );
    for r in [&issue, &renew] {
        assert!(
            format!("{}{}", r.stdout, r.stderr).contains(named),
            "{r:#?}"
        );
    }
    nothing_attempted(dir, &[&issue, &renew]);
}

/// Nothing was attempted: no account, no journal, no renewal state.
fn nothing_attempted(dir: &Path, runs: &[&Run]) {
    let state = dir.join("state");
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(&state) {
        for e in entries.flatten() {
            for f in std::fs::read_dir(e.path()).into_iter().flatten().flatten() {
                found.push(f.path().display().to_string());
            }
        }
    }
    assert!(
        found.is_empty(),
        "the state directory shows an attempt: {found:?}\n{runs:#?}"
    );
    for r in runs {
        assert!(
            !r.stderr.contains("cannot reach the CA"),
            "the CA was asked:\n{}",
            r.stderr
        );
    }
}

#[test]
fn a_bad_extra_root_fails_issue_and_renew_alike_before_any_order() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("no-such-root.pem");
    let trust = format!(
        "extra_roots = [{:?}]\nsystem_roots = false",
        missing.display().to_string()
    );
    let config = config(dir.path(), &trust, "");
    fail_alike(dir.path(), &config, "trust.extra_roots");
}

#[test]
fn a_bad_verify_section_fails_issue_and_renew_alike_before_any_order() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = config(
        dir.path(),
        "system_roots = true",
        "[certificate.verify]\nconnect = \"not-an-address\"\n",
    );
    fail_alike(dir.path(), &config, "not-an-address");
}

#[test]
fn renew_checks_the_settings_even_when_nothing_is_due() {
    let dir = tempfile::tempdir().expect("temp dir");
    // A long-lived certificate already deployed: nothing is due.
    let ca = dir.path().join("ca");
    let ca_arg = ca.display().to_string();
    run_plain(&["client-ca", "create", "--out", &ca_arg], &[]).assert_ok();
    let config_ok = config(dir.path(), "system_roots = true", "");
    std::fs::copy(
        ca.join("client-ca.crt"),
        dir.path().join("deployed").join("fullchain.pem"),
    )
    .expect("deploy the long-lived certificate");
    let not_due = run_plain(&["renew", "--config", &config_ok, "--no-jitter"], &[]);
    not_due.assert_ok();
    assert!(not_due.stdout.contains("not due"), "{not_due:#?}");

    let missing = dir.path().join("no-such-root.pem");
    let trust = format!(
        "extra_roots = [{:?}]\nsystem_roots = false",
        missing.display().to_string()
    );
    let config_bad = config(dir.path(), &trust, "");
    let (issue, renew) = issue_and_renew(&config_bad);
    assert_ne!(
        renew.code, 0,
        "renew did not check the settings: {renew:#?}"
    );
    assert_eq!(
        issue.code, renew.code,
        "issue: {issue:#?}\nrenew: {renew:#?}"
    );
}

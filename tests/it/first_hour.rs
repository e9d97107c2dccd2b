//! A newcomer's first hour (issue #21): `issue` keeps a certificate that is not due, every
//! check that needs no network runs before anything is ordered, `--dry-run` leaves nothing
//! behind, and the hints can be run as printed. Against the sandbox and the EMQX Cloud
//! emulator (a real Mosquitto behind it).

use std::path::PathBuf;
use std::time::Duration;

use crate::support::cloud::{CONNECT_LOCAL, Cloud, KEY, SECRET, cloud_lifted};
use crate::support::{Run, TestEnv, cert_section, run_plain_in as run_in};
use brokercert_sandbox::{DeploymentSpec, SandboxOptions};
use serde_json::Value;

const ID: &str = "dep1";

/// The EMQX Cloud fixture (budgets lifted), with a key that has the "Deployment Management"
/// scope too, so that a deployment id that does not exist is told apart from one with no
/// TLS (a TLS-only key cannot tell them).
async fn start() -> Cloud {
    cloud_lifted(DeploymentSpec::dedicated(ID, KEY, SECRET).deployment_scope(true)).await
}

/// The configuration, `deploy_extra` appended to its deploy section; verify connects to
/// 127.0.0.1.
fn config(c: &Cloud, deploy_extra: &str) -> PathBuf {
    c.config(ID, deploy_extra, CONNECT_LOCAL)
}

/// The `[[certificate]]` section of [`config`].
fn section(c: &Cloud, deploy_extra: &str) -> String {
    c.section(ID, deploy_extra, CONNECT_LOCAL)
}

fn json(run: &Run) -> Value {
    let line = run
        .stdout
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON line: {run:?}"));
    serde_json::from_str(line).expect("JSON")
}

#[tokio::test(flavor = "multi_thread")]
async fn issue_keeps_a_certificate_that_is_not_due_and_force_renewal_orders_anyway() {
    let c = start().await;
    let cfg = config(&c, "");
    let cfg_s = cfg.to_str().unwrap();

    let first = c.run(&["issue", "--config", cfg_s, "--json"]).await;
    first.assert_ok();
    assert_eq!(json(&first)["action"], "issued", "{first:?}");
    let serial = c.live_serial();
    let writes = c.emu.write_count(ID);
    assert_eq!(writes, 1, "one upload");

    // Again: the stored certificate is kept, the deployment (already serving it) gets no
    // write, the broker is verified, and the summary says so.
    let again = c.run(&["issue", "--config", cfg_s, "--json"]).await;
    again.assert_ok();
    let j = json(&again);
    assert_eq!(j["action"], "kept", "{again:?}");
    assert_eq!(j["ok"], true);
    assert_eq!(j["serial"].as_str(), Some(serial.as_str()));
    assert_eq!(c.live_serial(), serial, "no new certificate stored");
    assert_eq!(c.emu.write_count(ID), writes, "no write to EMQX Cloud");
    assert!(
        again.stderr.contains("Kept certificate `mqtt-prod`")
            && again.stderr.contains("not due for renewal until")
            && again.stderr.contains(&format!(
                "brokercert issue --name mqtt-prod --force-renewal --config {cfg_s}"
            )),
        "{}",
        again.stderr
    );
    assert!(
        again.stderr.contains("already served this certificate"),
        "{}",
        again.stderr
    );
    assert!(again.stderr.contains("Verified mqtts"), "{}", again.stderr);
    // `plan` (= `issue --dry-run`) says the same: nothing ordered.
    let plan = c.run(&["plan", "--config", cfg_s]).await;
    plan.assert_ok();
    assert!(
        plan.stdout.contains("`issue` keeps it and orders nothing")
            && !plan.stdout.contains("newOrder"),
        "{}",
        plan.stdout
    );

    // `--force-renewal` orders a new one and deploys it.
    let forced = c
        .run(&["issue", "--config", cfg_s, "--json", "--force-renewal"])
        .await;
    forced.assert_ok();
    assert_eq!(json(&forced)["action"], "issued");
    assert_ne!(c.live_serial(), serial);
    assert_eq!(c.emu.write_count(ID), writes + 1);

    // Another key type is another certificate: ordered without any flag (EMQX Cloud then
    // refuses an ECDSA leaf under Pebble's RSA chain; what matters is the order).
    let before = c.live_serial();
    let ecdsa = c.env.config(&section(&c, "").replace(
        "domains = [\"mqtt.example.test\"]",
        "domains = [\"mqtt.example.test\"]\nkey_type = \"ecdsa-p256\"",
    ));
    let changed = c
        .run(&["issue", "--config", ecdsa.to_str().unwrap(), "--json"])
        .await;
    assert_eq!(json(&changed)["action"], "issued", "{changed:?}");
    assert_ne!(c.live_serial(), before);
    c.emu.stop();
}

/// Every record set of every sandbox zone, to prove nothing was written.
async fn all_records(env: &TestEnv) -> Vec<String> {
    let mut out = Vec::new();
    for (_, id) in env.sb.zones() {
        for r in env.sb.list_records(id).await.expect("records") {
            out.push(format!("{} {} {:?}", r.name, r.rtype, r.values));
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_secret_or_client_ca_fails_before_anything_is_ordered() {
    let c = start().await;
    let before = all_records(&c.env).await;
    let nothing_changed = |run: &Run, what: &str| {
        run.assert_code(2);
        assert!(
            run.stderr.contains("Nothing was ordered or changed"),
            "{what}: {}",
            run.stderr
        );
        assert!(
            !run.stderr.contains("order ") && !run.stderr.contains("✓ cname"),
            "{what}: no stage ran: {}",
            run.stderr
        );
        // (`renew` remembers its failure in renewal/NAME.json, for its backoff.)
        let written: Vec<String> = c
            .env
            .state_files()
            .into_iter()
            .filter(|f| !f.starts_with("renewal/"))
            .collect();
        assert!(
            written.is_empty(),
            "{what}: no account, no certificate: {written:?}"
        );
        assert_eq!(c.emu.write_count(ID), 0, "{what}");
    };

    // EMQX_CLOUD_API_SECRET unset: `issue` and `renew` stop before the CNAME and the order.
    let cfg = config(&c, "");
    let cfg_s = cfg.to_str().unwrap();
    let only_key = [("EMQX_CLOUD_API_KEY", KEY)];
    let run = c
        .env
        .run_with_env(&["issue", "--config", cfg_s], &only_key)
        .await;
    nothing_changed(&run, "issue without the secret");
    assert!(
        run.stderr.contains("EMQX_CLOUD_API_SECRET"),
        "{}",
        run.stderr
    );
    let run = c
        .env
        .run_with_env(&["renew", "--config", cfg_s, "--no-jitter"], &only_key)
        .await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stdout.contains("EMQX_CLOUD_API_SECRET"), "{run:?}");
    assert!(!c.env.live("mqtt-prod", "cert.pem").exists(), "{run:?}");
    assert_eq!(c.emu.write_count(ID), 0);

    // Two-way TLS whose client CA file is missing.
    let missing = c.env.work.path().join("no-such-client-ca.pem");
    let cfg = config(
        &c,
        &format!("tls = \"two-way\"\nclient_ca = \"{}\"", missing.display()),
    );
    let run = c.run(&["issue", "--config", cfg.to_str().unwrap()]).await;
    nothing_changed(&run, "issue with a missing client CA");
    assert!(
        run.stderr.contains("no-such-client-ca.pem"),
        "{}",
        run.stderr
    );
    assert_eq!(all_records(&c.env).await, before, "no DNS change");
    c.emu.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn renew_dry_run_validates_for_real_but_only_plans_the_cname_and_the_deployment() {
    let c = start().await;
    let cfg = config(&c, "");
    let cfg_s = cfg.to_str().unwrap();
    let before = all_records(&c.env).await;

    let run = c
        .run(&["renew", "--config", cfg_s, "--dry-run", "--json"])
        .await;
    run.assert_ok();
    let j = json(&run);
    assert_eq!(j["result"], "dry_run", "{run:?}");
    let line = j["message"].as_str().unwrap_or_default();
    for part in [
        "validated and issued serial",
        "its DNS-01 values are removed",
        "would send ChangeResourceRecordSets zone",
        "CREATE mqtt.example.test CNAME dep1.emqx-cloud.test",
        "would send to EMQX Cloud deployment dep1: POST",
        "import rules pass for EMQX Cloud deployment dep1",
    ] {
        assert!(line.contains(part), "`{part}` missing: {line}");
    }
    // Nothing lasting: no CNAME, no TXT value, no upload, no certificate in the state.
    assert_eq!(all_records(&c.env).await, before, "Route 53 changed");
    assert!(c.env.challenge_records_left().await.is_empty());
    assert_eq!(c.emu.write_count(ID), 0, "EMQX Cloud saw a write");
    let kept: Vec<String> = c
        .env
        .state_files()
        .into_iter()
        .filter(|f| !f.starts_with("accounts/"))
        .collect();
    assert!(
        kept.is_empty(),
        "only the (test CA's) account stays: {kept:?}"
    );
    c.emu.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn renew_decides_first_and_waits_its_jitter_only_before_an_order() {
    let c = start().await;
    let cfg = config(&c, "");
    let cfg_s = cfg.to_str().unwrap();
    c.run(&["issue", "--config", cfg_s]).await.assert_ok();
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, format!("{text}\n[renew]\njitter = \"1h\"\n")).unwrap();

    // Piped (not a terminal), nothing due: no wait at all.
    let started = std::time::Instant::now();
    let run = c.run(&["renew", "--config", cfg_s]).await;
    run.assert_ok();
    assert!(run.stdout.contains("mqtt-prod: not due"), "{run:?}");
    assert!(!run.stderr.contains("jitter"), "{run:?}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );

    // Due (forced): the wait comes before the order, and says so.
    std::fs::write(&cfg, format!("{text}\n[renew]\njitter = \"1s\"\n")).unwrap();
    let run = c.run(&["renew", "--config", cfg_s, "--force"]).await;
    run.assert_ok();
    let waited = run
        .stderr
        .find("before asking the CA (random jitter")
        .unwrap_or_else(|| panic!("{run:?}"));
    let ordered = run.stderr.find("✓ order").unwrap_or(usize::MAX);
    assert!(waited < ordered, "{run:?}");
    c.emu.stop();
}

/// Writes a configuration at `path` with one files-deployed certificate per name (state and
/// files under `dir`; an unreachable CA: nothing here may order).
fn names_config(dir: &std::path::Path, path: &std::path::Path, names: &[&str]) {
    let mut text = format!(
        "state_dir = \"{}\"\n[acme]\ndirectory = \"https://127.0.0.1:9/dir\"\n",
        dir.join("state").display()
    );
    for n in names {
        let files = format!(
            "\n[[certificate.deploy]]\ntype = \"files\"\nfullchain = \"{d}/{n}.pem\"\nkey = \"{d}/{n}.key\"\n",
            d = dir.display()
        );
        text.push_str(&cert_section(n, &[&format!("{n}.example.test")], &files));
    }
    std::fs::write(path, text).unwrap();
}

#[test]
fn the_configuration_is_found_without_config_and_hints_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let write = |path: &std::path::Path, names: &[&str]| names_config(dir.path(), path, names);
    write(&dir.path().join("brokercert.toml"), &["alpha", "beta"]);

    // ./brokercert.toml is found; `-v` says so; a wrong name lists the configured ones.
    let r = run_in(dir.path(), &["-v", "deploy", "gamma"], &[]);
    r.assert_code(2);
    assert!(
        r.stderr
            .contains("configuration: brokercert.toml (found in the working directory)"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("`gamma`") && r.stderr.contains("names `alpha`, `beta`"),
        "{}",
        r.stderr
    );

    // The hint to run next names the file it ran with.
    let r = run_in(dir.path(), &["deploy", "alpha"], &[]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr
            .contains("run `brokercert issue --name alpha --config brokercert.toml` first"),
        "{}",
        r.stderr
    );

    // BROKERCERT_CONFIG comes before ./brokercert.toml.
    let other = dir.path().join("other.toml");
    write(&other, &["delta"]);
    let r = run_in(
        dir.path(),
        &["-v", "deploy", "gamma"],
        &[("BROKERCERT_CONFIG", other.to_str().unwrap())],
    );
    r.assert_code(2);
    assert!(
        r.stderr.contains("(BROKERCERT_CONFIG)") && r.stderr.contains("names `delta`"),
        "{}",
        r.stderr
    );
}

#[test]
fn name_is_optional_with_one_certificate_and_every_command_takes_it_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("brokercert.toml");
    names_config(dir.path(), &cfg, &["alpha"]);
    // One certificate: no name needed; NAME and --name are the same.
    for args in [
        &["deploy"][..],
        &["deploy", "alpha"],
        &["deploy", "--name", "alpha"],
        &["deploy", "-n", "alpha"],
    ] {
        let r = run_in(dir.path(), args, &[]);
        assert!(
            r.stderr.contains("no stored certificate `alpha`"),
            "{args:?}: {}",
            r.stderr
        );
    }
    for args in [
        &["status", "alpha", "--offline"][..],
        &["status", "--name", "alpha", "--offline"],
    ] {
        let r = run_in(dir.path(), args, &[]);
        assert!(r.stdout.contains("alpha"), "{args:?}: {r:?}");
    }
    // Two: the name is needed, and the message lists them.
    names_config(dir.path(), &cfg, &["alpha", "beta"]);
    let r = run_in(dir.path(), &["verify"], &[]);
    r.assert_code(2);
    assert!(
        r.stderr.contains("which certificate?")
            && r.stderr.contains("`alpha`, `beta`")
            && r.stderr
                .contains("brokercert verify alpha --config brokercert.toml"),
        "{}",
        r.stderr
    );
    // A flag a command ignores is refused, not silently dropped.
    let r = run_in(
        dir.path(),
        &["split", "bundle.pem", "--config", "x.toml"],
        &[],
    );
    r.assert_code(2);
    assert!(
        r.stderr
            .contains("`brokercert split` reads no configuration")
            && r.stderr.contains("`--config`"),
        "{}",
        r.stderr
    );
    // The same before the command name, and for the state directory.
    for args in [
        &["--config", "x.toml", "split", "bundle.pem"][..],
        &["completions", "bash", "--state-dir", "/tmp/x"],
    ] {
        let r = run_in(dir.path(), args, &[]);
        r.assert_code(2);
        assert!(
            r.stderr.contains("would be ignored"),
            "{args:?}: {}",
            r.stderr
        );
    }
    // Help offers the flags only where they are read.
    for cmd in ["split", "completions", "man", "init"] {
        let r = run_in(dir.path(), &[cmd, "--help"], &[]);
        r.assert_ok();
        assert!(
            !r.stdout.contains("--config") && !r.stdout.contains("--state-dir"),
            "`{cmd} --help` offers flags it ignores:\n{}",
            r.stdout
        );
    }
    for cmd in [
        &["issue"][..],
        &["renew"],
        &["client-ca", "create"],
        &["status"],
    ] {
        let mut args = cmd.to_vec();
        args.push("--help");
        let r = run_in(dir.path(), &args, &[]);
        r.assert_ok();
        assert!(
            r.stdout.contains("--config") && r.stdout.contains("--state-dir"),
            "{cmd:?} --help lacks --config/--state-dir:\n{}",
            r.stdout
        );
    }
    // After the command name, the flag wins over the one before it.
    let r = run_in(
        dir.path(),
        &[
            "--config",
            "nowhere.toml",
            "status",
            "--offline",
            "--config",
            "brokercert.toml",
        ],
        &[],
    );
    assert!(r.stdout.contains("alpha"), "{r:?}");
}

// ---------------------------------------------------------------- messages (item 9)

#[tokio::test(flavor = "multi_thread")]
async fn status_and_check_say_what_is_true_after_an_issue() {
    let c = start().await;
    let cfg = config(&c, "");
    let cfg_s = cfg.to_str().unwrap();
    c.run(&["issue", "--config", cfg_s]).await.assert_ok();

    // After a successful issue and deploy, the last run is that one, not "never".
    let st = c.run(&["status", "--config", cfg_s, "--json"]).await;
    st.assert_ok();
    let j = json(&st);
    assert_eq!(j["last_run"]["result"], "ok", "{st:?}");

    // `check NAME` (what the 422 hint says to run) checks the stored files.
    let ck = c.run(&["check", "mqtt-prod", "--config", cfg_s]).await;
    assert!(
        ck.stdout.contains("PASS key-matches") && ck.stdout.contains("live/mqtt-prod"),
        "{ck:?}"
    );

    // A deployment id that does not exist is an error, not "no TLS configured".
    let wrong = c.env.config(&section(&c, "").replace(
        &format!("deployment_id = \"{ID}\""),
        "deployment_id = \"nosuchdep\"",
    ));
    let st = c
        .run(&["status", "--config", wrong.to_str().unwrap()])
        .await;
    assert!(
        st.stdout.contains("no deployment `nosuchdep`") && !st.stdout.contains("serves nothing"),
        "{st:?}"
    );
    c.emu.stop();
}

#[test]
fn check_of_a_certificate_alone_asks_for_the_key_without_inventing_a_path() {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["a.example.test".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let fullchain = dir.path().join("fullchain.pem");
    std::fs::write(&fullchain, cert.pem()).unwrap();
    let r = run_in(dir.path(), &["check", "fullchain.pem"], &[]);
    assert!(
        r.stdout.contains("FAIL key-matches") && r.stdout.contains("no private key given"),
        "{r:?}"
    );
    assert!(!r.stdout.contains("cannot be read"), "{r:?}");
    assert!(!r.stdout.contains("fullchain.pem/"), "{r:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_fails_where_issue_would_and_says_what_it_waits_for() {
    let env = TestEnv::start(SandboxOptions::new().zone("example.test")).await;
    let cfg = env.config(&cert_section("tos", &["tos.example.test"], ""));
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("agree_tos = true", "agree_tos = false");
    std::fs::write(&cfg, &text).unwrap();
    // No account and no agreement: `issue` would stop with exit 2, so does the plan, and it
    // does not invite to run `issue`.
    let r = env.run(&["plan", "--config", cfg.to_str().unwrap()]).await;
    r.assert_code(2);
    assert!(r.stderr.contains("--agree-tos"), "{r:?}");
    assert!(!r.stdout.contains("to make them"), "{r:?}");
    assert!(r.stdout.contains("`issue` would stop here"), "{r:?}");

    // Route 53 unreachable: the plan says what it is waiting for.
    let unreachable = text.replace(
        "change_timeout = \"30s\"",
        "change_timeout = \"30s\"\nmax_attempts = 2",
    );
    std::fs::write(&cfg, unreachable).unwrap();
    env.use_route53_endpoint("http://127.0.0.1:9");
    let r = env.run(&["plan", "--config", cfg.to_str().unwrap()]).await;
    r.assert_code(3);
    assert!(
        r.stderr.contains("Route 53 ListHostedZones at")
            && r.stderr.contains("— waiting for an answer"),
        "{r:?}"
    );
    assert!(!r.stdout.contains("to make them"), "{r:?}");
}

#[test]
fn status_without_certificates_and_the_exit_codes_in_help_and_man() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("brokercert.toml"),
        "[acme]\nemail = \"a@b.test\"\n",
    )
    .unwrap();
    let r = run_in(dir.path(), &["status"], &[]);
    r.assert_code(2);
    assert!(
        r.stderr.contains("nothing to show") && !r.stderr.contains("renew"),
        "{r:?}"
    );
    let help = run_in(dir.path(), &["--help"], &[]);
    assert!(
        help.stdout.contains("Exit codes:") && help.stdout.contains("130  interrupted"),
        "{help:?}"
    );
    let man = run_in(dir.path(), &["man"], &[]);
    assert!(
        man.stdout.contains(".SH \"EXIT STATUS\"") && man.stdout.contains("\\fB130\\fR"),
        "{}",
        &man.stdout[man.stdout.len().saturating_sub(600)..]
    );
}

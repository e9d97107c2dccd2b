//! `brokercert renew` and `schedule` against the sandbox: real Pebble, moto, our DNS server
//! and the EMQX Cloud emulator with a real Mosquitto behind it.
//!
//! Covers: renewal without local state, the no-op run, `--force`, a run SIGKILLed inside
//! every stage converging on the next run, two concurrent runs, failure backoff with
//! notifications, `--dry-run`, the Markdown summary and the daemon's SIGTERM.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use crate::support::certs;
use crate::support::cloud::{Cloud, KEY, SECRET, cloud_lifted};
use crate::support::stall::start_stalled;
use brokercert_sandbox::DeploymentSpec;
use tokio::io::{AsyncBufReadExt, BufReader};

const ID: &str = "dep1";
const CREDENTIALS: [(&str, &str); 2] = [
    ("EMQX_CLOUD_API_KEY", KEY),
    ("EMQX_CLOUD_API_SECRET", SECRET),
];

/// The EMQX Cloud fixture with budgets lifted: many renewals in one test.
async fn cloud() -> Cloud {
    cloud_lifted(DeploymentSpec::dedicated(ID, KEY, SECRET)).await
}

/// The API credentials plus `extra`, for runs started by hand.
fn env_vars(extra: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
    let mut v = vec![
        ("EMQX_CLOUD_API_KEY", KEY.to_string()),
        ("EMQX_CLOUD_API_SECRET", SECRET.to_string()),
    ];
    v.extend(extra.iter().cloned());
    v
}

impl Cloud {
    /// The fixture's configuration with `renew_section` (a `[renew]` table) after it.
    fn renew_config(&self, renew_section: &str) -> PathBuf {
        self.config_with(ID, "", "", renew_section)
    }

    /// The stored certificate's serial, if one is stored.
    fn stored_serial(&self) -> Option<String> {
        let p = self.env.live("mqtt-prod", "cert.pem");
        p.exists().then(|| certs(&p)[0].serial_hex().to_string())
    }

    fn renewal_dir(&self) -> PathBuf {
        self.env.state_dir().join("renewal")
    }

    fn journal_exists(&self) -> bool {
        self.renewal_dir().join("mqtt-prod.journal.json").exists()
    }

    /// Starts `brokercert ARGS` stalled after `stage`, waits until it says so, then
    /// SIGKILLs it. Returns what it printed, or `Err(output)` when the run never reached
    /// `stage`.
    async fn try_kill_inside(&self, args: &[&str], stage: &str) -> Result<String, String> {
        let held = start_stalled(
            &self.env,
            args,
            stage,
            &CREDENTIALS,
            Duration::from_secs(90),
        )
        .await?;
        Ok(held.kill().await)
    }
}

fn arg(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn renews_without_local_state_then_does_nothing_until_due() {
    let c = cloud().await;
    let cfg = c.renew_config("");
    let summary = c.env.work.path().join("summary.md");

    // Nothing deployed, no local state: renew issues, deploys and verifies.
    let r = c
        .run(&[
            "renew",
            "--no-jitter",
            "--config",
            arg(&cfg),
            "--summary",
            arg(&summary),
        ])
        .await;
    r.assert_ok();
    assert!(
        r.stdout
            .contains("mqtt-prod: renewed (nothing deployed yet)"),
        "{}",
        r.stdout
    );
    let first = c.stored_serial().expect("stored");
    assert_eq!(c.served_serial(ID).as_deref(), Some(first.as_str()));
    assert!(r.stdout.contains("Verified mqtts"), "{}", r.stdout);
    assert!(c.env.challenge_records_left().await.is_empty());
    assert!(!c.journal_exists());
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(
        md.contains("## brokercert renew") && md.contains("| `mqtt-prod` | ✅"),
        "{md}"
    );

    // With local state: a no-op run asks nobody (no API call at all).
    c.emu.clear_requests();
    let r = c
        .run(&["renew", "--no-jitter", "--config", arg(&cfg)])
        .await;
    r.assert_ok();
    assert!(
        r.stdout.contains("mqtt-prod: not due — renews from"),
        "{}",
        r.stdout
    );
    assert!(c.emu.requests().is_empty(), "{:?}", c.emu.requests());

    // A CI runner has no state at all: what is deployed is read from the API (a GET),
    // and nothing is ordered or written.
    let account_dir = c.env.state_dir().join("accounts");
    let account_json = std::fs::read_dir(&account_dir)
        .unwrap()
        .flatten()
        .flat_map(|host| std::fs::read_dir(host.path()).unwrap().flatten())
        .map(|f| std::fs::read_to_string(f.path()).unwrap())
        .next()
        .expect("the stored account");
    std::fs::remove_dir_all(c.env.state_dir()).unwrap();
    let r = c
        .run(&["renew", "--no-jitter", "--config", arg(&cfg)])
        .await;
    r.assert_ok();
    assert!(r.stdout.contains("not due"), "{}", r.stdout);
    let methods: Vec<String> = c.emu.requests().into_iter().map(|r| r.method).collect();
    assert!(
        methods.iter().all(|m| m == "GET") && !methods.is_empty(),
        "{methods:?}"
    );
    assert!(c.stored_serial().is_none(), "no certificate was issued");
    assert_eq!(c.served_serial(ID).as_deref(), Some(first.as_str()));

    // --force renews now and replaces it with a PUT, with the account from the variable a
    // CI secret would fill (no new account, nothing written under accounts/).
    let r = c
        .env
        .run_with_env(
            &[
                "renew",
                "--no-jitter",
                "--force",
                "--json",
                "--config",
                arg(&cfg),
            ],
            &[
                ("EMQX_CLOUD_API_KEY", KEY),
                ("EMQX_CLOUD_API_SECRET", SECRET),
                ("BROKERCERT_ACME_ACCOUNT", &account_json),
            ],
        )
        .await;
    r.assert_ok();
    assert!(!account_dir.exists(), "the account came from the variable");
    assert!(
        !r.stdout.contains(&account_json) && !r.stderr.contains("PRIVATE"),
        "account credentials leaked"
    );
    assert!(r.stdout.contains("renewed (--force)"), "{}", r.stdout);
    let second = c.stored_serial().expect("stored");
    assert_ne!(first, second);
    assert_eq!(c.served_serial(ID).as_deref(), Some(second.as_str()));
    // --json: the object says what was renewed and on how many targets it now runs.
    let obj: serde_json::Value = serde_json::from_str(r.stdout.trim()).expect("one JSON line");
    assert_eq!(obj["result"], "renewed", "{obj}");
    assert_eq!(obj["serial"], second.as_str(), "{obj}");
    assert_eq!(obj["deployed_targets"], 1, "{obj}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_killed_inside_any_stage_converges_on_the_next_run() {
    let c = cloud().await;
    let cfg = c.renew_config("");
    c.run(&["renew", "--no-jitter", "--config", arg(&cfg)])
        .await
        .assert_ok();

    let stages = [
        "cname",
        "zones",
        "order",
        "publish-txt",
        "await-propagation",
        "validate",
        "finalize",
        "split-and-check",
        "store",
        "cleanup",
        "deploy",
        "verify",
    ];
    for stage in stages {
        let mut attempts = 0;
        let before = loop {
            let before = c.served_serial(ID).expect("something is served");
            match c
                .try_kill_inside(
                    &["renew", "--no-jitter", "--force", "--config", arg(&cfg)],
                    stage,
                )
                .await
            {
                Ok(_) => break before,
                // Pebble sometimes reuses the authorization validated seconds earlier: the
                // order then has no DNS-01 challenge and no clean-up stage to stall in.
                // That run renewed completely; try again with a new order.
                Err(seen) if attempts < 3 && seen.contains("0 DNS-01 challenge(s)") => {
                    attempts += 1;
                }
                Err(seen) => panic!("brokercert never reached the end of stage `{stage}`:\n{seen}"),
            }
        };
        // Killed before the deployment: the old certificate is still served and works.
        if !matches!(stage, "deploy" | "verify") {
            assert_eq!(
                c.served_serial(ID).as_deref(),
                Some(before.as_str()),
                "{stage}: the old certificate must stay served"
            );
            c.run(&[
                "verify",
                "mqtt-prod",
                "--config",
                arg(&cfg),
                "--expect-serial",
                &before,
            ])
            .await;
        }
        // The next ordinary run converges.
        let r = c
            .run(&["renew", "--no-jitter", "--config", arg(&cfg)])
            .await;
        r.assert_ok();
        let resumed_order = r.stderr.contains("resumed the interrupted order");
        match stage {
            "order" | "publish-txt" | "await-propagation" | "validate" | "finalize"
            | "split-and-check" => {
                assert!(
                    resumed_order,
                    "{stage}: no new order expected\n{}",
                    r.stderr
                );
                assert!(
                    r.stdout.contains("renewed (resuming"),
                    "{stage}: {}",
                    r.stdout
                );
            }
            "deploy" | "verify" => {
                assert!(!resumed_order, "{stage}");
                assert!(
                    r.stdout
                        .contains("verified the certificate an earlier run deployed"),
                    "{stage}: {}",
                    r.stdout
                );
            }
            "store" | "cleanup" => {
                assert!(!resumed_order, "{stage}");
                assert!(
                    r.stdout
                        .contains("deployed the certificate an earlier run stored"),
                    "{stage}: {}",
                    r.stdout
                );
            }
            _ => assert!(r.stdout.contains("not due"), "{stage}: {}", r.stdout),
        }
        let live = c.stored_serial().expect("stored");
        assert_eq!(
            c.served_serial(ID).as_deref(),
            Some(live.as_str()),
            "{stage}: the stored certificate is the one served"
        );
        c.run(&["verify", "mqtt-prod", "--config", arg(&cfg)])
            .await
            .assert_ok();
        assert!(
            c.env.challenge_records_left().await.is_empty(),
            "{stage}: stray TXT: {:?}",
            c.env.challenge_records_left().await
        );
        assert!(!c.journal_exists(), "{stage}: journal left behind");
        let stray: Vec<String> = c
            .env
            .state_files()
            .into_iter()
            .filter(|f| f.contains(".tmp") || f.ends_with(".key.pem"))
            .collect();
        assert!(stray.is_empty(), "{stage}: partial files {stray:?}");
        // Settled: a further run has nothing to do.
        let r = c
            .run(&["renew", "--no-jitter", "--config", arg(&cfg)])
            .await;
        r.assert_ok();
        assert!(r.stdout.contains("not due"), "{stage}: {}", r.stdout);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_runs_one_works_the_other_exits_or_waits() {
    let c = cloud().await;
    let cfg = c.renew_config("");
    // The first run holds the lock (stalled inside the order stage).
    let cfg_s = cfg.to_str().unwrap().to_string();
    let args = ["renew", "--no-jitter", "--config", &cfg_s];
    let mut first = start_stalled(
        &c.env,
        &args,
        "order",
        &CREDENTIALS,
        Duration::from_secs(60),
    )
    .await
    .expect("first run stalls");

    // The second exits at once, cleanly, naming the holder.
    let r = c.run(&args).await;
    r.assert_ok();
    assert!(
        r.stderr.contains("another brokercert renew"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(&first.child.id().unwrap().to_string()),
        "{}",
        r.stderr
    );
    assert!(c.served_serial(ID).is_none(), "the second run did nothing");

    // A third waits for the lock; once the first dies it takes over and finishes the job
    // (resuming the first run's order).
    let waiting = {
        let env = &c.env;
        let cfg_s = cfg_s.clone();
        async move {
            env.run_with_env(
                &["renew", "--no-jitter", "--wait", "60s", "--config", &cfg_s],
                &[
                    ("EMQX_CLOUD_API_KEY", KEY),
                    ("EMQX_CLOUD_API_SECRET", SECRET),
                ],
            )
            .await
        }
    };
    let killer = async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        first.child.start_kill().unwrap();
        let _ = first.child.wait().await;
    };
    let (r, ()) = tokio::join!(waiting, killer);
    r.assert_ok();
    assert!(
        r.stderr.contains("resumed the interrupted order"),
        "{}",
        r.stderr
    );
    assert!(c.served_serial(ID).is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_are_loud_back_off_and_notify() {
    let c = cloud().await;
    let events = c.env.work.path().join("events.log");
    let script = c.env.work.path().join("notify.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$BROKERCERT_EVENT $BROKERCERT_CERTIFICATE\" >> '{}'\n",
            events.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let hook = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_url = format!("http://{}/hook", hook.local_addr().unwrap());
    let (tx, mut bodies) = tokio::sync::mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut sock, _)) = hook.accept().await {
            let mut buf = vec![0u8; 65536];
            let mut got = Vec::new();
            // Read headers and the body (Content-Length).
            loop {
                let n = sock.read(&mut buf).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&got).to_string();
                if let Some(i) = text.find("\r\n\r\n") {
                    let len = text
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if got.len() >= i + 4 + len {
                        let _ = tx.send(text[i + 4..].to_string());
                        break;
                    }
                }
            }
            let _ = sock
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                .await;
        }
    });
    let cfg = c.renew_config(&format!(
        "[renew]\nnotify_command = [\"{}\"]\nnotify_webhook_env = \"TEST_HOOK_URL\"\n\
         notify_webhook_allow_http = true\n",
        script.display()
    ));
    // The deployment's apply fails: the certificate is stored, the run fails loudly.
    c.emu.fail_next_apply();
    let env = env_vars(&[("TEST_HOOK_URL", hook_url.clone())]);
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = c
        .env
        .run_with_env(&["renew", "--no-jitter", "--config", arg(&cfg)], &pairs)
        .await;
    assert_eq!(r.code, 8, "deploy exit code\n{}\n{}", r.stdout, r.stderr);
    assert!(!r.stdout.contains(&hook_url) && !r.stderr.contains(&hook_url));
    assert!(r.stdout.contains("mqtt-prod: FAILED — "), "{}", r.stdout);
    assert!(r.stdout.contains("next attempt from"), "{}", r.stdout);
    assert_eq!(
        std::fs::read_to_string(&events).unwrap(),
        "failure mqtt-prod\n"
    );
    let body: serde_json::Value = serde_json::from_str(&bodies.recv().await.unwrap()).unwrap();
    assert_eq!(body["event"], "failure");
    assert_eq!(body["certificate"], "mqtt-prod");
    assert!(
        body["message"].as_str().unwrap().contains("FAILED"),
        "{body}"
    );
    let state = std::fs::read_to_string(c.renewal_dir().join("mqtt-prod.json")).unwrap();
    assert!(state.contains("\"failures\": 1"), "{state}");
    assert!(c.env.challenge_records_left().await.is_empty());

    // Right away: backing off, still loud (non-zero), no new attempt.
    let writes = c.emu.write_count(ID);
    let r = c
        .run(&["renew", "--no-jitter", "--config", arg(&cfg)])
        .await;
    assert_eq!(r.code, 8, "{}", r.stdout);
    assert!(r.stdout.contains("1 attempt(s) failed"), "{}", r.stdout);
    assert_eq!(c.emu.write_count(ID), writes, "no write while backing off");

    // After the backoff the stored certificate is deployed (no new order) and it succeeds.
    let past = state.replace(
        &state
            .lines()
            .find(|l| l.contains("last_failure"))
            .unwrap()
            .to_string(),
        "  \"last_failure\": \"2020-01-01T00:00:00Z\",",
    );
    std::fs::write(c.renewal_dir().join("mqtt-prod.json"), past).unwrap();
    let r = c
        .run(&["renew", "--no-jitter", "--config", arg(&cfg)])
        .await;
    r.assert_ok();
    assert!(
        r.stdout
            .contains("deployed the certificate an earlier run stored"),
        "{}",
        r.stdout
    );
    assert_eq!(
        c.served_serial(ID),
        c.stored_serial(),
        "the stored certificate is served"
    );
    assert_eq!(
        std::fs::read_to_string(&events).unwrap(),
        "failure mqtt-prod\nsuccess mqtt-prod\n"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_issues_from_the_test_ca_but_writes_no_deployment_and_no_state() {
    let c = cloud().await;
    let cfg = c.renew_config("");
    let r = c.run(&["renew", "--dry-run", "--config", arg(&cfg)]).await;
    r.assert_ok();
    assert!(
        r.stdout.contains("mqtt-prod: dry run passed"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("would send to EMQX Cloud deployment dep1"),
        "{}",
        r.stdout
    );
    assert_eq!(c.emu.write_count(ID), 0);
    assert!(c.served_serial(ID).is_none());
    assert!(c.stored_serial().is_none(), "no certificate stored");
    assert!(c.env.challenge_records_left().await.is_empty());

    // An import window the CA's lifetime can never satisfy is reported before any order.
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "poll_timeout = \"20s\"",
        "poll_timeout = \"20s\"\nmin_days_left = 120",
    );
    std::fs::write(&cfg, text).unwrap();
    let r = c
        .run(&["renew", "--no-jitter", "--config", arg(&cfg)])
        .await;
    assert_eq!(r.code, 6, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("could never be uploaded") && r.stdout.contains("min_days_left"),
        "{}",
        r.stdout
    );
    assert!(
        !c.env.state_dir().join("archive").exists(),
        "nothing issued"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn schedule_renews_what_is_due_and_stops_cleanly_on_sigterm() {
    let c = cloud().await;
    let cfg = c.renew_config("");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_brokercert"));
    cmd.args(["schedule", "--config", arg(&cfg)])
        .env("EMQX_CLOUD_API_KEY", KEY)
        .env("EMQX_CLOUD_API_SECRET", SECRET)
        .env("JOURNAL_STREAM", "8:1234")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    c.env.sb.configure_command(&mut cmd);
    let mut child = tokio::process::Command::from(cmd)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    tokio::time::timeout(Duration::from_secs(90), async {
        while let Ok(Some(l)) = lines.next_line().await {
            let done = l.contains("next check in");
            seen.push(l);
            if done {
                break;
            }
        }
    })
    .await
    .expect("a cycle finishes");
    assert!(
        seen.iter().any(|l| l.starts_with("<6>mqtt-prod: renewed")),
        "{seen:?}"
    );
    assert!(c.served_serial(ID).is_some());
    let pid = child.id().unwrap() as i32;
    // SIGTERM (our own child, by PID): it exits promptly with 0.
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits within 10 s")
        .unwrap();
    assert_eq!(exit.code(), Some(0));
}

/// The `run:` steps of `.github/workflows/renew.yml`, run by bash as GitHub would: each step's
/// `env:` with its `${{ }}` expressions filled in from `values`, `GITHUB_ENV` carried to later
/// steps, `GITHUB_STEP_SUMMARY` a file. The `uses:` steps are what the sandbox provides
/// (checkout: the working directory; AWS credentials: the sandbox's fake ones), and the
/// install step is replaced by the test binary on `PATH` (a release `cargo install` takes
/// minutes). Returns the exit code of the first failing step (0 if none) and the summary.
async fn run_renew_workflow(
    c: &Cloud,
    checkout: &std::path::Path,
    values: &[(&str, String)],
) -> (i32, String, String) {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/.github/workflows/renew.yml"
    ))
    .unwrap();
    let docs = yaml_rust2::YamlLoader::load_from_str(&text).expect("renew.yml is YAML");
    let steps = docs[0]["jobs"]["renew"]["steps"]
        .as_vec()
        .expect("jobs.renew.steps")
        .clone();
    let runner_temp = tempfile::tempdir().unwrap();
    let summary = runner_temp.path().join("step-summary.md");
    let github_env = runner_temp.path().join("github-env");
    std::fs::write(&summary, "").unwrap();
    std::fs::write(&github_env, "").unwrap();
    let lookup = |expr: &str| -> String {
        let expr = expr.trim();
        if expr == "runner.temp" {
            return runner_temp.path().display().to_string();
        }
        values
            .iter()
            .find(|(k, _)| *k == expr)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| {
                panic!("renew.yml uses `${{{{ {expr} }}}}`, which this test does not provide")
            })
    };
    let fill = |s: &str| -> String {
        let mut out = String::new();
        let mut rest = s;
        while let Some(i) = rest.find("${{") {
            out.push_str(&rest[..i]);
            let j = rest[i..].find("}}").expect("closed expression") + i;
            out.push_str(&lookup(&rest[i + 3..j]));
            rest = &rest[j + 2..];
        }
        out.push_str(rest);
        out
    };
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_brokercert"))
        .parent()
        .unwrap()
        .to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut failed = 0;
    let mut output = String::new();
    let mut ran = Vec::new();
    for step in &steps {
        let Some(script) = step["run"].as_str() else {
            continue;
        };
        let name = step["name"].as_str().unwrap_or("?").to_string();
        if name.starts_with("Install brokercert") {
            continue;
        }
        let cond = step["if"].as_str().unwrap_or("");
        let run_it = match cond {
            "" => failed == 0,
            "failure()" => failed != 0,
            other => {
                panic!("renew.yml step `{name}` has a condition this test does not know: {other}")
            }
        };
        if !run_it {
            continue;
        }
        assert!(!script.contains("${{"), "`{name}`: expression inside run:");
        let mut cmd = std::process::Command::new("bash");
        cmd.args(["--noprofile", "--norc", "-eo", "pipefail", "-c", script])
            .current_dir(checkout)
            .env_clear()
            .env("PATH", &path)
            .env("HOME", runner_temp.path())
            .env("RUNNER_TEMP", runner_temp.path())
            .env("GITHUB_STEP_SUMMARY", &summary)
            .env("GITHUB_ENV", &github_env)
            .env("CI", "true")
            .env("GITHUB_ACTIONS", "true")
            .stdin(Stdio::null());
        c.env.sb.configure_command(&mut cmd);
        for line in std::fs::read_to_string(&github_env).unwrap().lines() {
            if let Some((k, v)) = line.split_once('=') {
                cmd.env(k, v);
            }
        }
        if let Some(env) = step["env"].as_hash() {
            for (k, v) in env {
                let k = k.as_str().unwrap();
                let v = match v {
                    yaml_rust2::Yaml::String(s) => fill(s),
                    yaml_rust2::Yaml::Boolean(b) => b.to_string(),
                    other => panic!("env {k}: {other:?}"),
                };
                cmd.env(k, v);
            }
        }
        let out = tokio::process::Command::from(cmd).output().await.unwrap();
        output.push_str(&format!(
            "--- {name}\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
        ran.push(name.clone());
        if !out.status.success() && failed == 0 {
            failed = out.status.code().unwrap_or(-1);
        }
    }
    assert!(
        ran.iter().any(|n| n.starts_with("Renew")),
        "the renew step ran: {ran:?}"
    );
    (failed, std::fs::read_to_string(&summary).unwrap(), output)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_renew_workflow_steps_renew_deploy_and_verify_on_a_stateless_runner() {
    let c = cloud().await;
    // A runner is not a terminal: without this the run would first wait up to 5 min.
    let cfg = c.renew_config("[renew]\njitter = \"0s\"\n");
    let checkout = tempfile::tempdir().unwrap();
    // The repository holds the configuration; the state directory comes from the workflow.
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("state_dir"))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(checkout.path().join("brokercert.toml"), text).unwrap();
    let values = |account: String, force: &str| -> Vec<(&'static str, String)> {
        vec![
            ("vars.BROKERCERT_CONFIG", "brokercert.toml".into()),
            ("vars.BROKERCERT_CLIENT_CA_PATH", String::new()),
            ("secrets.BROKERCERT_CLIENT_CA", String::new()),
            ("secrets.BROKERCERT_ACME_ACCOUNT", account),
            ("secrets.EMQX_CLOUD_API_KEY", KEY.into()),
            ("secrets.EMQX_CLOUD_API_SECRET", SECRET.into()),
            ("inputs.force", force.into()),
            ("inputs.dry-run", String::new()),
            ("github.server_url", "https://github.com".into()),
            ("github.repository", "example/mqtt".into()),
            ("github.run_id", "1".into()),
            ("github.event_name", "schedule".into()),
        ]
    };

    // First run: nothing deployed; the account is created in the runner's temp state.
    let (code, summary, out) =
        run_renew_workflow(&c, checkout.path(), &values(String::new(), "")).await;
    assert_eq!(code, 0, "{out}");
    assert!(summary.contains("| `mqtt-prod` | ✅"), "{summary}\n{out}");
    assert!(out.contains("renewed (nothing deployed yet)"), "{out}");
    let first = c.served_serial(ID).expect("deployed");
    assert!(!out.contains(SECRET), "a secret leaked");

    // A later scheduled run on a fresh runner: reads the deployment, nothing to do.
    let (code, summary, out) =
        run_renew_workflow(&c, checkout.path(), &values(String::new(), "")).await;
    assert_eq!(code, 0, "{out}");
    assert!(summary.contains("not due"), "{summary}");
    assert_eq!(c.served_serial(ID).as_deref(), Some(first.as_str()));

    // A failing run fails the job and the failure step writes the summary.
    c.emu.fail_next_apply();
    let (code, summary, out) =
        run_renew_workflow(&c, checkout.path(), &values(String::new(), "true")).await;
    assert_eq!(code, 8, "{out}");
    assert!(summary.contains("Certificate renewal failed"), "{summary}");
    assert!(summary.contains("FAILED"), "{summary}");
}

#[tokio::test(flavor = "multi_thread")]
async fn ari_decides_when_to_renew_and_the_order_names_the_certificate_it_replaces() {
    use brokercert_sandbox::{AriProxy, AriWindow};
    let c = cloud().await;
    let proxy_dir = c.env.work.path().join("ari");
    std::fs::create_dir_all(&proxy_dir).unwrap();
    let proxy = AriProxy::in_front_of(c.env.sb.pebble(), &proxy_dir)
        .await
        .expect("ARI proxy");
    // The CA is Pebble behind the proxy: same validation, plus renewal information.
    let cfg = c.renew_config("");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace(&c.env.sb.acme_directory_url(), &proxy.directory_url())
        .replace(
            &c.env.sb.pebble_tls_ca_path().display().to_string(),
            &proxy.tls_ca_path().display().to_string(),
        );
    std::fs::write(&cfg, text).unwrap();
    let renew = ["renew", "--no-jitter", "--config", arg(&cfg)];

    c.run(&renew).await.assert_ok();
    let first = c.stored_serial().unwrap();
    assert_eq!(
        proxy.new_orders()[0].replaces,
        None,
        "nothing to replace yet"
    );

    // The CA says "in a month": not due, however the lifetime rule would see it.
    proxy.set_default_window(AriWindow::relative(
        time::Duration::days(30),
        time::Duration::days(32),
    ));
    let r = c.run(&renew).await;
    r.assert_ok();
    assert!(r.stdout.contains("the CA's renewal window"), "{}", r.stdout);
    assert_eq!(proxy.renewal_info_requests().len(), 1);
    // Asked again only when the CA's Retry-After (6 h here) has passed.
    c.run(&renew).await.assert_ok();
    assert_eq!(
        proxy.renewal_info_requests().len(),
        1,
        "no ARI call before Retry-After"
    );
    let state_path = c.renewal_dir().join("mqtt-prod.json");
    let state = std::fs::read_to_string(&state_path).unwrap();
    assert!(
        state.contains("\"chosen\""),
        "the picked time is kept: {state}"
    );

    // The window moves into the past (e.g. the CA plans a revocation): renew now, naming
    // the old certificate in `replaces`.
    proxy.set_default_window(AriWindow::relative(
        time::Duration::days(-2),
        time::Duration::days(-1),
    ));
    let past_check = |state: &str| {
        let line = state
            .lines()
            .find(|l| l.contains("next_check"))
            .unwrap()
            .to_string();
        state.replace(&line, "    \"next_check\": \"2020-01-01T00:00:00Z\",")
    };
    std::fs::write(&state_path, past_check(&state)).unwrap();
    let r = c.run(&renew).await;
    r.assert_ok();
    assert!(
        r.stdout.contains("renewed (the CA's renewal window (ARI))"),
        "{}",
        r.stdout
    );
    let second = c.stored_serial().unwrap();
    assert_ne!(first, second);
    assert_eq!(c.served_serial(ID).as_deref(), Some(second.as_str()));
    let order = proxy.new_orders().last().cloned().unwrap();
    assert!(order.replaces.is_some() && !order.rejected, "{order:?}");

    // A CA that refuses `replaces` (already replaced): the renewal still goes through.
    proxy.reject_replaces(true);
    let r = c.run(&renew).await;
    r.assert_ok();
    assert!(
        r.stdout.contains("renewed (the CA's renewal window"),
        "{}",
        r.stdout
    );
    let orders = proxy.new_orders();
    let n = orders.len();
    assert!(
        orders[n - 2].rejected && orders[n - 2].replaces.is_some(),
        "{orders:?}"
    );
    assert!(
        !orders[n - 1].rejected && orders[n - 1].replaces.is_none(),
        "{orders:?}"
    );
    assert_ne!(c.stored_serial().unwrap(), second);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_during_a_renewal_removes_its_records_and_the_next_run_resumes() {
    use brokercert_sandbox::DnsFault;
    let c = cloud().await;
    let cfg = c.renew_config("");
    // The nameserver hides the new TXT values (a stale secondary, an hour behind) from the
    // start: the run waits for propagation however fast it gets there. (Making it fail only
    // after `publish-txt` raced the run: its check could pass in the 8 ms before.)
    let faults = c.env.sb.dns_faults();
    faults.set(DnsFault::Lag(Duration::from_secs(3600)), None);
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_brokercert"));
    cmd.args(["schedule", "--config", arg(&cfg)])
        .env("EMQX_CLOUD_API_KEY", KEY)
        .env("EMQX_CLOUD_API_SECRET", SECRET)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c.env.sb.configure_command(&mut cmd);
    let mut child = tokio::process::Command::from(cmd)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(l)) = lines.next_line().await {
            if l.starts_with("✓ publish-txt") {
                break;
            }
        }
    })
    .await
    .expect("the TXT values are written");
    // The run waits for propagation...
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !c.env.challenge_records_left().await.is_empty(),
        "the values are there while it waits"
    );
    // ...and is told to stop.
    let pid = child.id().unwrap();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    let mut rest = String::new();
    let exit = tokio::time::timeout(Duration::from_secs(20), async {
        while let Ok(Some(l)) = lines.next_line().await {
            rest.push_str(&l);
            rest.push('\n');
        }
        child.wait().await
    })
    .await
    .expect("stops within 20 s")
    .unwrap();
    faults.reset();
    assert_eq!(exit.code(), Some(130), "{rest}");
    assert!(rest.contains("✓ cleanup"), "the clean-up ran:\n{rest}");
    assert!(
        c.env.challenge_records_left().await.is_empty(),
        "{:?}",
        c.env.challenge_records_left().await
    );
    assert!(c.served_serial(ID).is_none(), "nothing half-deployed");
    // The next run picks the same order up.
    let r = c
        .run(&["renew", "--no-jitter", "--config", arg(&cfg)])
        .await;
    r.assert_ok();
    assert!(
        r.stderr.contains("resumed the interrupted order"),
        "{}",
        r.stderr
    );
    assert!(c.served_serial(ID).is_some());
}

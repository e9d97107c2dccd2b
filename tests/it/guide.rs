//! docs/guide.md, executed: every `brokercert …` line of its ```sh blocks runs, in order, with
//! the real binary against the sandbox (Pebble, moto, the sandbox DNS server, and the EMQX
//! Cloud emulator with a real Mosquitto), and must exit 0. The guide's command lines run as
//! written apart from a fixed table of placeholders; sandbox-only settings go into the file
//! `brokercert init` wrote and into the environment. If a command in the guide stops working,
//! this test fails, so the guide cannot drift from the binary.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::{Run, TestEnv, certs};
use brokercert_sandbox::{DeploymentSpec, EmqxCloudEmulator, SandboxOptions};

const KEY: &str = "guide-api-key";
const SECRET: &str = "guide-api-secret-do-not-print";
const MQTT_USER: &str = "device-1";
const MQTT_PASSWORD: &str = "guide-mqtt-password-do-not-print";
/// The deployment ID the guide uses, served by the emulator under the same ID.
const DEPLOYMENT: &str = "ge6a1a75";
const DOMAIN: &str = "mqtt.example.test";
const CNAME_TARGET: &str = "ge6a1a75.emqx-cloud.test";

/// The guide's placeholders and the sandbox's names for them (documented in the guide's
/// opening comment).
const PLACEHOLDERS: &[(&str, &str)] = &[
    ("abc123.ala.us-east-1.emqxsl.com", CNAME_TARGET),
    ("mqtt.example.com", DOMAIN),
];

/// The ```sh blocks' lines that start with `brokercert `, in order.
fn guide_commands(markdown: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_sh = false;
    for line in markdown.lines() {
        let t = line.trim();
        if let Some(fence) = t.strip_prefix("```") {
            in_sh = !in_sh && fence.trim() == "sh";
            continue;
        }
        if in_sh && t.starts_with("brokercert ") {
            out.push(t.to_string());
        }
    }
    out
}

fn substitute(line: &str) -> String {
    PLACEHOLDERS
        .iter()
        .fold(line.to_string(), |acc, (from, to)| acc.replace(from, to))
}

/// Inserts `lines` right after the line `header` of `text` (which must be there once).
fn insert_after(text: &str, header: &str, lines: &str) -> String {
    let at = format!("\n{header}\n");
    assert_eq!(
        text.matches(&at).count(),
        1,
        "`brokercert init` wrote `{header}` once:\n{text}"
    );
    text.replacen(&at, &format!("{at}{lines}\n"), 1)
}

/// Runs one guide line in `dir` with the sandbox's environment.
async fn run_line(env: &TestEnv, dir: &Path, line: &str) -> Run {
    let args: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(args[0], "brokercert");
    assert!(
        !line.contains(['"', '\'', '$', '|', '>', '\\', '`']),
        "guide commands are plain words (the test splits on spaces): {line}"
    );
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_brokercert"));
    cmd.args(&args[1..])
        .current_dir(dir)
        .env_remove("BROKERCERT_CONFIG")
        .env_remove("BROKERCERT_DIRECTORY")
        .env("BROKERCERT_STATE_DIR", env.state_dir())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    env.sb.configure_command(&mut cmd);
    cmd.env("BROKERCERT_DIRECTORY", env.sb.acme_directory_url())
        .env("EMQX_CLOUD_API_KEY", KEY)
        .env("EMQX_CLOUD_API_SECRET", SECRET)
        .env("BROKERCERT_MQTT_PASSWORD", MQTT_PASSWORD);
    let child = tokio::process::Command::from(cmd)
        .kill_on_drop(true)
        .spawn()
        .expect("spawn brokercert");
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("`{line}` finished within 60 s"))
        .expect("brokercert output");
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    for secret in [SECRET, MQTT_PASSWORD, "PRIVATE KEY"] {
        assert!(
            !run.stdout.contains(secret) && !run.stderr.contains(secret),
            "`{line}` printed a secret"
        );
    }
    run
}

#[tokio::test(flavor = "multi_thread")]
async fn every_command_of_the_guide_runs_in_order_against_the_sandbox() {
    let started = Instant::now();
    let guide = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/guide.md"))
        .expect("docs/guide.md");
    let commands = guide_commands(&guide);
    let verbs: Vec<&str> = commands
        .iter()
        .map(|c| c.split_whitespace().nth(1).unwrap_or(""))
        .collect();
    // The journey: init, the IAM policy, steps 1 to 7 of the seed guide.
    for needed in [
        "init",
        "iam-policy",
        "client-ca",
        "client-cert",
        "issue",
        "deploy",
        "verify",
        "renew",
        "status",
        "remove",
    ] {
        assert!(
            verbs.contains(&needed),
            "the guide runs `brokercert {needed}`: {commands:#?}"
        );
    }
    assert_eq!(verbs[0], "init", "the guide starts with `brokercert init`");
    assert_eq!(
        verbs.last(),
        Some(&"remove"),
        "the guide ends with the deletion"
    );

    // The sandbox: the custom domain's zone, the deployment's zone (its connection address
    // resolves here), and the emulated deployment with a real Mosquitto requiring the MQTT
    // user the guide's `init` names.
    let env = TestEnv::start(
        SandboxOptions::new()
            .zone("example.test")
            .zone("emqx-cloud.test"),
    )
    .await;
    let emu = EmqxCloudEmulator::start(env.work.path().join("emqx"))
        .await
        .expect("emulator");
    emu.add_deployment(
        DeploymentSpec::dedicated(DEPLOYMENT, KEY, SECRET).mqtt_user(MQTT_USER, MQTT_PASSWORD),
    )
    .expect("deployment");
    let ports = emu.deployment_ports(DEPLOYMENT).expect("ports");
    let z = env.sb.zone_id("emqx-cloud.test").unwrap();
    env.sb
        .upsert(&z, CNAME_TARGET, "A", 60, &["127.0.0.1"])
        .await
        .unwrap();

    let dir = env.work.path().join("guide");
    std::fs::create_dir(&dir).unwrap();
    let config = dir.join("brokercert.toml");

    for (i, raw) in commands.iter().enumerate() {
        let line = substitute(raw);
        let t0 = Instant::now();
        let run = run_line(&env, &dir, &line).await;
        assert_eq!(
            run.code,
            0,
            "guide command {} `{raw}` (run as `{line}`) failed\nstdout:\n{}\nstderr:\n{}",
            i + 1,
            run.stdout,
            run.stderr
        );
        eprintln!("ok {:>5} ms  {line}", t0.elapsed().as_millis());
        if std::env::var_os("GUIDE_SHOW_OUTPUT").is_some() {
            eprintln!("{}{}", run.stdout, run.stderr);
        }
        match verbs[i] {
            "init" => {
                // Sandbox-only settings, added to what `init` wrote (the ACME directory comes
                // from BROKERCERT_DIRECTORY, Route 53's endpoint from
                // AWS_ENDPOINT_URL_ROUTE_53).
                let mut text = std::fs::read_to_string(&config).expect("init wrote the file");
                text = insert_after(
                    &text,
                    "[acme]",
                    &format!(
                        "https_roots = [{:?}]\norder_timeout = \"60s\"",
                        env.sb.pebble_tls_ca_path()
                    ),
                );
                text = insert_after(&text, "[route53]", "change_timeout = \"30s\"");
                text = insert_after(
                    &text,
                    "[dns]",
                    &format!("nameservers = [\"{}\"]", env.sb.dns_addr()),
                );
                text = insert_after(
                    &text,
                    "[[certificate.deploy]]",
                    &format!(
                        "base_url = \"{}\"\napi_roots = [{:?}]\npoll_interval = \"50ms\"\npoll_timeout = \"20s\"",
                        emu.base_url(),
                        emu.ca_pem_path()
                    ),
                );
                text = insert_after(
                    &text,
                    "[certificate.verify]",
                    &format!(
                        "mqtts_port = {}\nwss_port = {}\ntimeout = \"5s\"",
                        ports.mqtts, ports.wss
                    ),
                );
                text.push_str(&format!(
                    "\n[trust]\nextra_roots = [{:?}]\nsystem_roots = false\n\n[renew]\njitter = \"0s\"\n",
                    env.sb.pebble_roots_path()
                ));
                std::fs::write(&config, text).unwrap();
            }
            "issue" => {
                let snap = emu.tls_snapshot(DEPLOYMENT).expect("issue deployed");
                assert_eq!(snap.tls_type.api_name(), "two-way");
                let leaf = &certs(&env.live("mqtt-prod", "cert.pem"))[0];
                assert_eq!(snap.leaf_serial_hex, leaf.serial_hex().to_string());
                assert!(
                    run.stdout.contains("Verified mqtts") && run.stdout.contains("Verified wss"),
                    "{}",
                    run.stdout
                );
            }
            "deploy" => {
                assert!(run.stdout.contains("already served"), "{}", run.stdout);
            }
            "renew" => {
                // `issue` deployed and verified it: nothing to do, nothing to check again.
                assert!(run.stdout.contains("not due"), "{}", run.stdout);
            }
            "verify" => {
                assert!(
                    run.stdout.contains("Verified mqtts")
                        && run.stdout.contains("Verified wss")
                        && run
                            .stdout
                            .contains("refused a client without a certificate"),
                    "{}",
                    run.stdout
                );
            }
            "client-cert" => {
                let cn = line
                    .split_whitespace()
                    .skip_while(|w| *w != "--cn")
                    .nth(1)
                    .expect("--cn");
                assert!(dir.join("clients").join(format!("{cn}.crt")).exists());
            }
            "remove" => {
                assert!(
                    emu.tls_snapshot(DEPLOYMENT).is_none(),
                    "`remove` removed the deployment's TLS configuration"
                );
            }
            _ => {}
        }
    }
    assert!(
        env.challenge_records_left().await.is_empty(),
        "no DNS-01 record is left behind"
    );
    eprintln!(
        "the guide's {} commands ran in {:.1} s",
        commands.len(),
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn commands_are_taken_from_sh_blocks_only() {
    let md = "```sh\nexport X=1\nbrokercert init --domain a\n```\n```toml\nbrokercert = 1\n```\n\
              ```text\nbrokercert verify x\n```\nbrokercert issue\n```sh\n  brokercert issue --config c\n```\n";
    assert_eq!(
        guide_commands(md),
        vec!["brokercert init --domain a", "brokercert issue --config c"]
    );
}

//! `brokercert doctor` against the sandbox: all green (text golden, JSON schema, nothing
//! ordered, deployed or left in the zone, exactly one EMQX Cloud read), then each failure on
//! its own: no credentials, a zone missing, a denied Route 53 action, nameservers
//! unreachable, the CA down, the EMQX key rejected, an MQTT port closed; each with its line
//! and exit code (10 when a needed check fails).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::golden::{golden, json_lines, normalize};
use crate::support::{Run, TestEnv, cert_section};
use brokercert_sandbox::{
    Budgets, EmqxCloudEmulator, FaultPlan, Route53Fault, Route53Proxy, SandboxOptions,
};

const KEY: &str = "doctor-api-key";
const SECRET: &str = "doctor-api-secret";
const ID: &str = "dep1";
const DOCTOR_EXIT: i32 = 10;

fn arg(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// The sandbox (zone `example.test`), the EMQX Cloud emulator with `dep1`, two listening
/// "broker" ports, and the configuration of `mqtt-prod`: EMQX Cloud and files targets,
/// verify at 127.0.0.1 on those ports, the sandbox DNS server as nameserver and resolver.
struct Doctor {
    env: TestEnv,
    emu: EmqxCloudEmulator,
    _mqtts: TcpListener,
    _wss: TcpListener,
    mqtts_port: u16,
    wss_port: u16,
}

impl Doctor {
    async fn start() -> Self {
        let env = TestEnv::start(SandboxOptions::new().zone("example.test")).await;
        let emu = crate::support::emqx_with_deployment(&env, ID, KEY, SECRET).await;
        let mqtts = TcpListener::bind("127.0.0.1:0").expect("bind mqtts");
        let wss = TcpListener::bind("127.0.0.1:0").expect("bind wss");
        let mqtts_port = mqtts.local_addr().expect("addr").port();
        let wss_port = wss.local_addr().expect("addr").port();
        std::fs::create_dir_all(env.work.path().join("broker")).expect("broker dir");
        Self {
            env,
            emu,
            _mqtts: mqtts,
            _wss: wss,
            mqtts_port,
            wss_port,
        }
    }

    /// The configuration, with `edit` applied to its text (`(from, to)` replacements).
    fn config(&self, domain: &str, edit: &[(String, String)]) -> PathBuf {
        let section = cert_section(
            "mqtt-prod",
            &[domain],
            &format!(
                r#"
[[certificate.deploy]]
type = "emqx-cloud"
deployment_id = "{ID}"
base_url = "{base}"
api_roots = ["{ca}"]

[[certificate.deploy]]
type = "files"
fullchain = "{broker}/fullchain.pem"
key = "{broker}/privkey.pem"
reload = ["/bin/sh", "-c", "true"]

[certificate.verify]
connect = "127.0.0.1"
mqtts_port = {mqtts}
wss_port = {wss}
"#,
                base = self.emu.base_url(),
                ca = self.emu.ca_pem_path().display(),
                broker = self.env.work.path().join("broker").display(),
                mqtts = self.mqtts_port,
                wss = self.wss_port,
            ),
        );
        let cfg = self.env.config(&section);
        let mut text = std::fs::read_to_string(&cfg).expect("read config").replace(
            "[dns]\n",
            &format!("[dns]\nresolver = \"{}\"\n", self.env.sb.dns_addr()),
        );
        for (from, to) in edit {
            assert!(text.contains(from.as_str()), "`{from}` not in the config");
            text = text.replace(from.as_str(), to);
        }
        std::fs::write(&cfg, text).expect("write config");
        cfg
    }

    async fn doctor(&self, cfg: &Path, extra: &[&str], env: &[(&str, &str)]) -> Run {
        let mut args = vec!["doctor", "--config", arg(cfg)];
        args.extend_from_slice(extra);
        let mut vars = vec![
            ("EMQX_CLOUD_API_KEY", KEY),
            ("EMQX_CLOUD_API_SECRET", SECRET),
        ];
        vars.extend_from_slice(env);
        self.env.run_with_env(&args, &vars).await
    }
}

/// The line of check `name` (it starts with its status mark), with its `fix:` line if any.
fn line(run: &Run, name: &str) -> String {
    let lines: Vec<&str> = run.stdout.lines().collect();
    let i = lines
        .iter()
        .position(|l| {
            l.trim_start()
                .split_once(' ')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with(name))
        })
        .unwrap_or_else(|| panic!("no line for `{name}`:\n{}\n{}", run.stdout, run.stderr));
    match lines.get(i + 1) {
        Some(fix) if fix.trim_start().starts_with("fix:") => format!("{}\n{fix}", lines[i]),
        _ => lines[i].to_string(),
    }
}

fn assert_line(run: &Run, name: &str, mark: &str, parts: &[&str]) {
    let l = line(run, name);
    assert!(
        l.trim_start().starts_with(mark),
        "`{name}` is not {mark}: {l}"
    );
    for p in parts {
        assert!(l.contains(p), "`{p}` missing from: {l}\n{}", run.stdout);
    }
}

fn fails(run: &Run) -> Vec<&str> {
    run.stdout
        .lines()
        .filter(|l| l.trim_start().starts_with("FAIL"))
        .collect()
}

/// Replaces `marker` + the rest of the word (up to `end`) with `marker` + `with`.
fn mask(text: &str, marker: &str, end: char, with: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(marker) {
        out.push_str(&rest[..i + marker.len()]);
        out.push_str(with);
        let tail = &rest[i + marker.len()..];
        rest = &tail[tail.find(end).unwrap_or(tail.len())..];
    }
    out.push_str(rest);
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn all_green_against_the_sandbox_with_golden_text_and_documented_json() {
    let d = Doctor::start().await;
    let cfg = d.config("mqtt.example.test", &[]);
    d.emu.clear_requests();
    let run = d.doctor(&cfg, &[], &[]).await;
    run.assert_ok();
    assert!(fails(&run).is_empty(), "{}", run.stdout);
    assert_line(&run, "credentials", "ok", &["Environment"]);
    assert_line(
        &run,
        "hosted zone for mqtt.example.test",
        "ok",
        &["found by name"],
    );
    assert_line(&run, "ChangeResourceRecordSets", "ok", &["deleted again"]);
    assert_line(&run, "GetChange", "ok", &["INSYNC"]);
    assert_line(
        &run,
        "propagation",
        "ok",
        &["`auto` picks `authoritative` here"],
    );
    assert_line(&run, "directory", "ok", &[]);
    assert_line(
        &run,
        "EMQX Cloud deployment dep1: API key",
        "ok",
        &["60 reads"],
    );
    assert_line(&run, "mqtts mqtt.example.test", "ok", &[]);
    assert!(
        run.stdout.contains("Every needed check passes"),
        "{}",
        run.stdout
    );
    // One GET of the TLS configuration, nothing written, nothing left in the zone or state.
    assert_eq!(d.emu.read_count(ID), 1, "{:?}", d.emu.requests());
    assert_eq!(d.emu.write_count(ID), 0);
    assert!(d.env.challenge_records_left().await.is_empty());
    assert!(d.env.state_files().is_empty(), "{:?}", d.env.state_files());

    let mut literal: Vec<(String, &str)> = vec![
        (d.env.work.path().display().to_string(), "$WORK"),
        (d.env.sb.acme_directory_url(), "$ACME_DIRECTORY"),
        (d.emu.base_url(), "$EMQX_API"),
        (format!(":{}", d.mqtts_port), ":$MQTTS_PORT"),
        (format!(":{}", d.wss_port), ":$WSS_PORT"),
    ];
    for (_, id) in d.env.sb.zones() {
        literal.push((id.clone(), "$ZONE"));
    }
    let text = mask(&run.stdout, "brokercert-doctor-", '`', "<TIME>");
    let text = mask(&text, "change ", ' ', "<CHANGE>");
    let text = mask(&text, "directory over HTTPS (", ')', "<MS>");
    let text = mask(&text, "clock: ", '\n', "<SKEW>");
    golden("doctor.txt", &normalize(&text, &literal));

    let json = d.doctor(&cfg, &["--json"], &[]).await;
    json.assert_ok();
    let objs = json_lines("doctor", &json.stdout);
    assert_eq!(objs.len(), 1);
    assert_eq!(objs[0]["ok"], true);
    assert_eq!(objs[0]["exit_code"], 0);
    assert!(objs[0]["failed"].as_array().is_some_and(Vec::is_empty));
}

#[tokio::test(flavor = "multi_thread")]
async fn no_credentials_is_named_with_the_fix() {
    let d = Doctor::start().await;
    let cfg = d.config("mqtt.example.test", &[]);
    let run = d
        .doctor(
            &cfg,
            &[],
            &[
                ("AWS_ACCESS_KEY_ID", ""),
                ("AWS_SECRET_ACCESS_KEY", ""),
                ("AWS_CONFIG_FILE", "/dev/null"),
                ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
            ],
        )
        .await;
    run.assert_code(DOCTOR_EXIT);
    assert_line(&run, "credentials", "FAIL", &["no AWS credentials"]);
    assert!(
        run.stdout.contains("fix: set AWS_ACCESS_KEY_ID"),
        "{}",
        run.stdout
    );
    assert_line(
        &run,
        "ChangeResourceRecordSets",
        "skip",
        &["no credentials"],
    );
    assert_eq!(fails(&run).len(), 1, "{}", run.stdout);
    assert!(run.stdout.contains("  - aws credentials"), "{}", run.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_zone_is_named() {
    let d = Doctor::start().await;
    let cfg = d.config("mqtt.other.test", &[]);
    let run = d.doctor(&cfg, &[], &[]).await;
    run.assert_code(DOCTOR_EXIT);
    assert_line(
        &run,
        "hosted zone for mqtt.other.test",
        "FAIL",
        &["mqtt.other.test"],
    );
    assert_line(&run, "ChangeResourceRecordSets", "skip", &[]);
    assert_eq!(fails(&run).len(), 1, "{}", run.stdout);

    // An explicit `hosted_zone_id` is said so.
    let zone = d.env.sb.zone_id("example.test").expect("zone");
    let cfg = d.config(
        "mqtt.example.test",
        &[(
            "domains = [\"mqtt.example.test\"]\n".into(),
            format!("domains = [\"mqtt.example.test\"]\nhosted_zone_id = \"{zone}\"\n"),
        )],
    );
    let run = d.doctor(&cfg, &[], &[]).await;
    run.assert_ok();
    assert_line(
        &run,
        "hosted zone for mqtt.example.test",
        "ok",
        &[&zone, "set by `hosted_zone_id`"],
    );
}

#[test]
fn an_unknown_name_is_a_configuration_error_naming_the_known_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("brokercert.toml");
    std::fs::write(
        &cfg,
        format!(
            "state_dir = \"{}\"\n\n{}",
            dir.path().join("state").display(),
            cert_section("mqtt-prod", &["mqtt.example.test"], "")
        ),
    )
    .expect("write config");
    let run = crate::support::run_plain(&["doctor", "--config", arg(&cfg), "--name", "other"], &[]);
    run.assert_code(2);
    assert!(
        run.stderr.contains("no certificate `other`") && run.stderr.contains("`mqtt-prod`"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty(), "nothing checked: {}", run.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn each_denied_route53_action_is_reported_exactly() {
    let d = Doctor::start().await;
    let proxy = Route53Proxy::start(&d.env.sb.route53_endpoint())
        .await
        .expect("proxy");
    d.env.use_route53_endpoint(&proxy.endpoint());
    let cfg = d.config(
        "mqtt.example.test",
        &[(
            format!("endpoint_url = \"{}\"", d.env.sb.route53_endpoint()),
            format!("endpoint_url = \"{}\"", proxy.endpoint()),
        )],
    );
    for denied in ["ListHostedZones", "ChangeResourceRecordSets", "GetChange"] {
        proxy.set_faults(
            FaultPlan::rate(100)
                .kinds(&[Route53Fault::AccessDenied])
                .operations(&[denied]),
        );
        let run = d.doctor(&cfg, &[], &[]).await;
        run.assert_code(DOCTOR_EXIT);
        assert_line(
            &run,
            denied,
            "FAIL",
            &[
                "AccessDenied",
                &format!("route53:{denied}"),
                "brokercert iam-policy",
            ],
        );
        assert_eq!(fails(&run).len(), 1, "{denied}: {}", run.stdout);
        assert!(
            d.env.challenge_records_left().await.is_empty(),
            "{denied}: the test value was left"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_nameservers_warn_under_auto_and_fail_under_authoritative() {
    let d = Doctor::start().await;
    let closed = format!("127.0.0.1:{}", closed_port());
    let to_closed = (
        format!("nameservers = [\"{}\"]", d.env.sb.dns_addr()),
        format!("nameservers = [\"{closed}\"]"),
    );
    let cfg = d.config("mqtt.example.test", std::slice::from_ref(&to_closed));
    let run = d.doctor(&cfg, &[], &[]).await;
    run.assert_ok();
    assert_line(
        &run,
        &format!("nameserver {closed} IPv4"),
        "warn",
        &["UDP 53:", "TCP 53:", "refused"],
    );
    assert_line(
        &run,
        "propagation",
        "warn",
        &["`auto` picks `insync` here", "0 of 1"],
    );
    assert!(fails(&run).is_empty(), "only warnings under auto");

    let cfg = d.config(
        "mqtt.example.test",
        &[
            to_closed,
            (
                "[dns]\n".into(),
                "[dns]\npropagation = \"authoritative\"\n".into(),
            ),
        ],
    );
    let run = d.doctor(&cfg, &[], &[]).await;
    run.assert_code(DOCTOR_EXIT);
    assert_line(
        &run,
        &format!("nameserver {closed} IPv4"),
        "FAIL",
        &["refused"],
    );
    assert_line(&run, "propagation", "FAIL", &["dns.propagation"]);
    assert_eq!(fails(&run).len(), 2, "the address and the strategy");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ca_that_is_down_is_named() {
    let d = Doctor::start().await;
    let down = format!("https://127.0.0.1:{}/dir", closed_port());
    let cfg = d.config(
        "mqtt.example.test",
        &[(
            format!("directory = \"{}\"", d.env.sb.acme_directory_url()),
            format!("directory = \"{down}\""),
        )],
    );
    let run = d.doctor(&cfg, &[], &[]).await;
    run.assert_code(DOCTOR_EXIT);
    assert_line(&run, "directory", "FAIL", &[&format!("GET {down}")]);
    assert_line(&run, "clock", "skip", &[]);
    assert_eq!(fails(&run).len(), 1, "{}", run.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_emqx_key_is_named_and_costs_one_read() {
    let d = Doctor::start().await;
    let cfg = d.config("mqtt.example.test", &[]);
    d.emu.clear_requests();
    let run = d
        .doctor(&cfg, &[], &[("EMQX_CLOUD_API_KEY", "not-the-key")])
        .await;
    run.assert_code(DOCTOR_EXIT);
    assert_line(
        &run,
        "EMQX Cloud deployment dep1: API key",
        "FAIL",
        &["refused (401)", "60 reads"],
    );
    let gets: Vec<_> = d
        .emu
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET")
        .map(|r| r.path)
        .collect();
    assert_eq!(gets.len(), 1, "{gets:?}");
    assert!(gets[0].ends_with("/deployments/dep1/tls"), "{gets:?}");
    assert_eq!(fails(&run).len(), 1, "{}", run.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_closed_mqtt_port_is_named() {
    let d = Doctor::start().await;
    let closed = closed_port();
    let cfg = d.config(
        "mqtt.example.test",
        &[(
            format!("mqtts_port = {}", d.mqtts_port),
            format!("mqtts_port = {closed}"),
        )],
    );
    let run = d.doctor(&cfg, &[], &[]).await;
    run.assert_code(DOCTOR_EXIT);
    assert_line(
        &run,
        &format!("mqtts mqtt.example.test:{closed}"),
        "FAIL",
        &["refused", "verify.mqtts_port"],
    );
    assert_line(
        &run,
        &format!("wss mqtt.example.test:{}", d.wss_port),
        "ok",
        &[],
    );
    assert_eq!(fails(&run).len(), 1, "{}", run.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_exhausted_emqx_read_budget_costs_one_request_and_no_wait() {
    let d = Doctor::start().await;
    d.emu.set_budgets(Budgets {
        writes: 1000,
        reads: 0,
        window: Duration::from_secs(30),
    });
    let cfg = d.config("mqtt.example.test", &[]);
    d.emu.clear_requests();
    let started = std::time::Instant::now();
    let run = d.doctor(&cfg, &[], &[]).await;
    run.assert_code(DOCTOR_EXIT);
    assert_line(
        &run,
        "EMQX Cloud deployment dep1: API key",
        "FAIL",
        &["rate limited (429", "60 reads"],
    );
    let gets = d
        .emu
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET")
        .count();
    assert_eq!(gets, 1, "{:?}", d.emu.requests());
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "doctor waited out Retry-After"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_test_value_leaves_other_values_at_the_challenge_name_alone() {
    let d = Doctor::start().await;
    let zone = d.env.sb.zone_id("example.test").expect("zone");
    let theirs = brokercert::dns::route53::quote_txt("someone-elses-value");
    d.env
        .sb
        .upsert(
            &zone,
            "_acme-challenge.mqtt.example.test",
            "TXT",
            300,
            &[&theirs],
        )
        .await
        .expect("other TXT value");
    let cfg = d.config("mqtt.example.test", &[]);
    let run = d.doctor(&cfg, &[], &[]).await;
    run.assert_ok();
    assert_line(
        &run,
        "ChangeResourceRecordSets",
        "ok",
        &["other values kept"],
    );
    let left: Vec<Vec<String>> = d
        .env
        .sb
        .list_records(&zone)
        .await
        .expect("records")
        .into_iter()
        .filter(|r| r.name.starts_with("_acme-challenge") && r.rtype == "TXT")
        .map(|r| r.values)
        .collect();
    assert_eq!(left, [vec![theirs]], "exactly the other value is left");
}

//! State in S3 (`state_dir = "s3://…"`) against moto's S3 in the sandbox: runners on
//! "machines" of their own (each an empty `XDG_STATE_HOME`, so an empty local working copy)
//! sharing one bucket. Leases, the journal across machines, the request bound of a no-op
//! run, and S3 faults through the sandbox's fault proxy.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::stall::{Stalled, start_stalled};
use crate::support::{Run, TestEnv, cert_section};
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use brokercert_sandbox::SandboxOptions;
use brokercert_sandbox::route53_proxy::{FaultPlan, Route53Fault, Route53Proxy};

const BUCKET: &str = "brokercert-state";
const PREFIX: &str = "fleet";
const NAME: &str = "mqtt-prod";

struct S3Env {
    env: TestEnv,
    s3: aws_sdk_s3::Client,
    cfg: PathBuf,
}

fn client(endpoint: &str) -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// The sandbox, a bucket with its public access block on, and a configuration with
/// `certificates` whose state is `s3://brokercert-state/fleet`.
async fn s3_env(certificates: &str, public_access_block: bool) -> S3Env {
    let env = TestEnv::start(SandboxOptions::new().zone("zone1.test")).await;
    let s3 = client(&env.sb.moto().endpoint());
    s3.create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("bucket");
    if public_access_block {
        use aws_sdk_s3::types::PublicAccessBlockConfiguration as Pab;
        s3.put_public_access_block()
            .bucket(BUCKET)
            .public_access_block_configuration(
                Pab::builder()
                    .block_public_acls(true)
                    .ignore_public_acls(true)
                    .block_public_policy(true)
                    .restrict_public_buckets(true)
                    .build(),
            )
            .send()
            .await
            .expect("public access block");
    }
    let cfg = env.config(certificates);
    let text = std::fs::read_to_string(&cfg).unwrap();
    let state_line = text.lines().next().unwrap().to_string();
    let text = text.replacen(
        &state_line,
        &format!("state_dir = \"s3://{BUCKET}/{PREFIX}\""),
        1,
    ) + &format!(
        "\n[state]\nendpoint_url = \"{}\"\nlease_ttl = \"10s\"\nmax_attempts = 4\n",
        env.sb.moto().endpoint()
    );
    std::fs::write(&cfg, text).unwrap();
    S3Env { env, s3, cfg }
}

impl S3Env {
    /// An empty local directory per machine.
    fn machine(&self, name: &str) -> PathBuf {
        let dir = self.env.work.path().join("machines").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    async fn run_on(&self, machine: &str, args: &[&str]) -> Run {
        let home = self.machine(machine);
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--config", self.cfg.to_str().unwrap()]);
        self.env
            .run_with_env(&all, &[("XDG_STATE_HOME", home.to_str().unwrap())])
            .await
    }

    async fn keys(&self, under: &str) -> Vec<String> {
        let out = self
            .s3
            .list_objects_v2()
            .bucket(BUCKET)
            .prefix(format!("{PREFIX}/{under}"))
            .send()
            .await
            .expect("list");
        out.contents()
            .iter()
            .filter_map(|o| o.key())
            .map(|k| k[PREFIX.len() + 1..].to_string())
            .collect()
    }

    async fn object(&self, key: &str) -> Option<String> {
        let out = self
            .s3
            .get_object()
            .bucket(BUCKET)
            .key(format!("{PREFIX}/{key}"))
            .send()
            .await
            .ok()?;
        let bytes = out.body.collect().await.ok()?.into_bytes();
        Some(String::from_utf8_lossy(&bytes).into_owned())
    }

    async fn put(&self, key: &str, body: &str) {
        self.s3
            .put_object()
            .bucket(BUCKET)
            .key(format!("{PREFIX}/{key}"))
            .body(body.as_bytes().to_vec().into())
            .send()
            .await
            .expect("put");
    }

    /// Versions stored for `name` (each one ACME order that finished).
    async fn versions(&self, name: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .keys(&format!("archive/{name}/"))
            .await
            .iter()
            .filter_map(|k| k.split('/').nth(2).map(str::to_string))
            .collect();
        v.dedup();
        v
    }

    /// Makes every lease look like its holder vanished long ago (its expiry in the past),
    /// keeping who held it.
    async fn expire_leases(&self) {
        for key in self.keys("leases/").await {
            let Some(text) = self.object(&key).await else {
                continue;
            };
            let mut v: serde_json::Value = serde_json::from_str(&text).expect("lease JSON");
            v["expires"] = "2000-01-01T00:00:00Z".into();
            self.put(&key, &v.to_string()).await;
        }
    }

    /// Starts `renew --force` on `machine` stalled after `stage` (still holding its
    /// leases); `Err(output)` when it never got there.
    async fn stall_on(&self, machine: &str, stage: &str) -> Result<Stalled, String> {
        let home = self.machine(machine);
        let cfg = self.cfg.to_str().unwrap();
        start_stalled(
            &self.env,
            &["renew", "--no-jitter", "--force", "--config", cfg],
            stage,
            &[("XDG_STATE_HOME", home.to_str().unwrap())],
            Duration::from_secs(90),
        )
        .await
    }

    /// Nothing half-done anywhere: no TXT value, no journal, no live lease (a vanished
    /// run's expired lease may stay until a run needs it).
    async fn assert_settled(&self, what: &str) {
        assert!(
            self.env.challenge_records_left().await.is_empty(),
            "{what}: stray TXT: {:?}",
            self.env.challenge_records_left().await
        );
        let mut left = Vec::new();
        for k in self.keys("").await {
            if k.ends_with(".journal.json") || k.ends_with(".key.pem") {
                left.push(k);
            } else if k.starts_with("leases/") {
                let text = self.object(&k).await.unwrap_or_default();
                if !text.contains("2000-01-01T00:00:00Z") {
                    left.push(format!("{k}: {text}"));
                }
            }
        }
        assert!(left.is_empty(), "{what}: left in S3: {left:?}");
    }
}

fn one_cert() -> String {
    cert_section(NAME, &["mqtt.zone1.test"], "")
}

#[tokio::test(flavor = "multi_thread")]
async fn two_runners_with_empty_local_dirs_make_one_order_and_the_second_names_the_holder() {
    let e = s3_env(&one_cert(), true).await;
    let (a, b) = tokio::join!(
        e.run_on("a", &["renew", "--no-jitter"]),
        e.run_on("b", &["renew", "--no-jitter"])
    );
    a.assert_ok();
    b.assert_ok();
    assert_eq!(
        e.versions(NAME).await.len(),
        1,
        "exactly one order: {a:?}\n{b:?}"
    );
    let (winner, other) = if a.stdout.contains("renewed") {
        (&a, &b)
    } else {
        (&b, &a)
    };
    assert!(
        winner.stdout.contains("renewed (nothing deployed yet)"),
        "{}",
        winner.stdout
    );
    assert!(
        other.stdout.contains("is held by brokercert renew on")
            || other.stdout.contains("another run changed")
            || other.stdout.contains("not due"),
        "{}",
        other.stdout
    );
    eprintln!("the other runner: {}", other.stdout.trim());
    if other.stdout.contains("is held by") {
        assert!(other.stdout.contains("(holder "), "{}", other.stdout);
    }
    e.assert_settled("after both").await;

    // Private keys are encrypted at rest (SSE-S3 by default).
    let version = &e.versions(NAME).await[0];
    let head =
        e.s3.head_object()
            .bucket(BUCKET)
            .key(format!("{PREFIX}/archive/{NAME}/{version}/privkey.pem"))
            .send()
            .await
            .expect("privkey in S3");
    assert_eq!(
        head.server_side_encryption().map(|s| s.as_str()),
        Some("AES256")
    );
    assert!(
        e.keys("accounts/").await.len() == 1,
        "{:?}",
        e.keys("").await
    );

    // A third machine, empty again: the state is in S3, so nothing is due (at most the
    // renewal state's ARI record is refreshed), and it says what it asked S3 for.
    let c = e.run_on("c", &["renew", "--no-jitter", "--timings"]).await;
    c.assert_ok();
    assert!(c.stdout.contains("not due"), "{}", c.stdout);
    assert!(
        c.stdout
            .contains("state backend s3://brokercert-state/fleet:")
            && c.stdout.contains("DELETE 0"),
        "{}",
        c.stdout
    );
    assert_eq!(e.versions(NAME).await.len(), 1);

    // `status` on yet another empty machine reads the state from S3 too.
    let d = e.run_on("d", &["status", "--offline"]).await;
    d.assert_ok();
    assert!(
        d.stdout.contains(NAME) && !d.stdout.contains("no certificate stored"),
        "{}",
        d.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_live_lease_is_refused_naming_its_holder_and_an_expired_one_is_taken_over() {
    let e = s3_env(&one_cert(), true).await;
    e.run_on("seed", &["renew", "--no-jitter"])
        .await
        .assert_ok();
    let first = e.versions(NAME).await;

    // Machine A stalls with the order placed and its TXT value published.
    let a = e.stall_on("a", "publish-txt").await.expect("A stalls");
    let lease = e
        .object(&format!("leases/certificate/{NAME}"))
        .await
        .expect("A's lease");
    assert!(lease.contains("\"command\": \"renew\""), "{lease}");

    // B is refused while A's lease lives (A extends it while stalled), and says who holds it.
    let b = e.run_on("b", &["renew", "--no-jitter", "--force"]).await;
    b.assert_ok();
    assert!(
        b.stdout.contains(&format!(
            "{NAME}: left to another run: `leases/certificate/{NAME}`"
        )) && b.stdout.contains("is held by brokercert renew on")
            && b.stdout.contains("(holder "),
        "{}",
        b.stdout
    );
    assert_eq!(e.versions(NAME).await, first, "B ordered nothing");
    // `issue` asked for explicitly is refused too (exit 7: this run did nothing).
    let b = e.run_on("b", &["issue", "--force-renewal"]).await;
    b.assert_code(7);
    assert!(
        b.stderr.contains("is held by brokercert renew on"),
        "{}",
        b.stderr
    );
    assert_eq!(e.versions(NAME).await, first, "B ordered nothing");

    // A vanishes; once its lease has expired, B takes it over and finishes A's order.
    a.kill().await;
    let b = e.run_on("b", &["renew", "--no-jitter"]).await;
    assert!(
        b.stdout.contains("is held by"),
        "A's lease is still live: {}",
        b.stdout
    );
    e.expire_leases().await;
    let b = e.run_on("b", &["renew", "--no-jitter"]).await;
    b.assert_ok();
    assert!(b.stderr.contains("taking over the lease"), "{}", b.stderr);
    assert!(
        b.stderr.contains("expired; that run is gone"),
        "{}",
        b.stderr
    );
    assert!(
        b.stderr.contains("resumed the interrupted order"),
        "{}",
        b.stderr
    );
    assert!(b.stdout.contains("renewed (resuming"), "{}", b.stdout);
    assert_eq!(e.versions(NAME).await.len(), 2);
    e.assert_settled("after the takeover").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_runner_killed_after_any_stage_is_finished_by_another_machine() {
    let e = s3_env(&one_cert(), true).await;
    e.run_on("seed", &["renew", "--no-jitter"])
        .await
        .assert_ok();
    let stages = [
        "order",
        "publish-txt",
        "await-propagation",
        "validate",
        "finalize",
        "split-and-check",
        "store",
        "cleanup",
    ];
    for (i, stage) in stages.iter().enumerate() {
        let mut attempts = 0;
        loop {
            match e.stall_on(&format!("killed-{i}-{attempts}"), stage).await {
                Ok(held) => {
                    held.kill().await;
                    break;
                }
                // Pebble may reuse a fresh authorization: no challenge, no stage to stall in.
                Err(seen) if attempts < 3 && seen.contains("0 DNS-01 challenge(s)") => {
                    attempts += 1;
                }
                Err(seen) => panic!("never reached the end of stage `{stage}`:\n{seen}"),
            }
        }
        // The killed machine is gone with its local directory; its lease expires.
        e.expire_leases().await;
        let r = e
            .run_on(&format!("next-{i}"), &["renew", "--no-jitter"])
            .await;
        r.assert_ok();
        if matches!(
            *stage,
            "order"
                | "publish-txt"
                | "await-propagation"
                | "validate"
                | "finalize"
                | "split-and-check"
        ) {
            assert!(
                r.stderr.contains("resumed the interrupted order"),
                "{stage}: no new order expected\n{}",
                r.stderr
            );
            assert!(
                r.stdout.contains("renewed (resuming"),
                "{stage}: {}",
                r.stdout
            );
        }
        e.assert_settled(stage).await;
        // Settled: yet another machine has nothing to do.
        let r = e
            .run_on(&format!("after-{i}"), &["renew", "--no-jitter"])
            .await;
        r.assert_ok();
        assert!(r.stdout.contains("not due"), "{stage}: {}", r.stdout);
    }
}

/// `--timings`' line: (total, PUT, DELETE).
fn requests(stdout: &str) -> (u64, u64, u64) {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("state backend s3://"))
        .unwrap_or_else(|| panic!("no state backend line: {stdout}"));
    let num = |after: &str| -> u64 {
        let rest = &line[line
            .find(after)
            .unwrap_or_else(|| panic!("{after}: {line}"))
            + after.len()..];
        rest.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .unwrap()
    };
    (num(": "), num("PUT "), num("DELETE "))
}

fn write_fleet_config(e: &S3Env, n: usize, endpoint: &str) -> PathBuf {
    let mut text = format!(
        "state_dir = \"s3://{BUCKET}/{PREFIX}\"\n\n[acme]\ndirectory = \"https://127.0.0.1:9/dir\"\nemail = \"ops@example.test\"\nagree_tos = true\n\n[route53]\nendpoint_url = \"http://127.0.0.1:9\"\n\n[renew]\nari = false\n\n[state]\nendpoint_url = \"{endpoint}\"\n\n"
    );
    for i in 0..n {
        text.push_str(&cert_section(
            &format!("c{i}"),
            &[&format!("c{i}.zone1.test")],
            "",
        ));
    }
    let p = e.env.work.path().join("fleet.toml");
    std::fs::write(&p, text).unwrap();
    p
}

async fn seed_fleet(e: &S3Env, n: usize) {
    for i in 0..n {
        let name = format!("c{i}");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![format!("{name}.zone1.test")])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let (pem, key) = (cert.pem(), key.serialize_pem());
        for (file, body) in [
            ("cert.pem", pem.as_str()),
            ("chain.pem", ""),
            ("fullchain.pem", pem.as_str()),
            ("privkey.pem", key.as_str()),
            ("root.pem", pem.as_str()),
        ] {
            e.put(&format!("archive/{name}/v1/{file}"), body).await;
        }
        e.put(&format!("live/{name}"), "v1").await;
    }
}

fn arg(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_noop_renew_over_100_certificates_makes_a_bounded_number_of_requests() {
    const N: usize = 100;
    let e = s3_env("", true).await;
    seed_fleet(&e, N).await;
    let cfg = write_fleet_config(&e, N, &e.env.sb.moto().endpoint());
    let home = e.machine("fresh");
    let env = [("XDG_STATE_HOME", home.to_str().unwrap())];
    let args = ["renew", "--no-jitter", "--timings", "--config", arg(&cfg)];
    // The CA and Route 53 are unreachable (127.0.0.1:9): any call to them would fail the run.
    let started = std::time::Instant::now();
    let r = e.env.run_with_env(&args, &env).await;
    eprintln!("{}\n{}\n{:?}", r.stdout, r.stderr, started.elapsed());
    r.assert_ok();
    assert_eq!(r.stdout.matches("not due").count(), N, "{}", r.stdout);
    let (fresh, puts, deletes) = requests(&r.stdout);
    assert_eq!((puts, deletes), (0, 0), "a no-op run writes nothing");
    // One listing, the bucket check, and per certificate its live pointer and the five
    // files of its live version.
    assert!(fresh <= 2 + 6 * N as u64, "{}", r.stdout);
    eprintln!("no-op over {N} certificates, empty local directory: {fresh} requests");

    // The same machine again: the versions it has are not read again.
    let r = e.env.run_with_env(&args, &env).await;
    r.assert_ok();
    let (warm, puts, deletes) = requests(&r.stdout);
    assert_eq!((puts, deletes), (0, 0));
    assert!(warm <= 2 + N as u64, "{}", r.stdout);
    eprintln!("no-op over {N} certificates, warm local directory: {warm} requests");
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_errors_are_retried_and_a_persistent_one_is_reported_clearly() {
    let e = s3_env(&one_cert(), true).await;
    let proxy = Route53Proxy::start(&e.env.sb.moto().endpoint())
        .await
        .expect("proxy");
    let text = std::fs::read_to_string(&e.cfg).unwrap().replace(
        &format!(
            "endpoint_url = \"{}\"\nlease_ttl",
            e.env.sb.moto().endpoint()
        ),
        &format!("endpoint_url = \"{}\"\nlease_ttl", proxy.endpoint()),
    );
    std::fs::write(&e.cfg, text).unwrap();

    // Slow answers (2 s each, a few times): waited for, the run succeeds.
    proxy.set_faults(
        FaultPlan::rate(50)
            .kinds(&[Route53Fault::Latency])
            .max_faults(3),
    );
    let r = e.run_on("slow", &["renew", "--no-jitter"]).await;
    r.assert_ok();
    assert!(proxy.faults_injected() > 0, "no latency was injected");
    assert!(r.stdout.contains("renewed"), "{}", r.stdout);
    e.assert_settled("after slow answers").await;

    // Every other request answers 500 (a few times): retried, the run succeeds.
    proxy.set_faults(
        FaultPlan::rate(50)
            .kinds(&[Route53Fault::InternalError])
            .max_faults(6),
    );
    let before = proxy.faults_injected();
    let r = e.run_on("a", &["renew", "--no-jitter", "--force"]).await;
    r.assert_ok();
    assert!(proxy.faults_injected() > before, "no fault was injected");
    assert!(r.stdout.contains("renewed"), "{}", r.stdout);
    e.assert_settled("after retried faults").await;

    // S3 down for good: a clear error naming the bucket, and a failing exit code.
    proxy.set_faults(FaultPlan::rate(100).kinds(&[Route53Fault::InternalError]));
    let r = e.run_on("b", &["renew", "--no-jitter"]).await;
    assert_ne!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains("s3://brokercert-state")
            && r.stderr.contains("Check that the bucket exists"),
        "{}",
        r.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bucket_without_a_public_access_block_is_refused_before_anything_is_written() {
    let e = s3_env(&one_cert(), false).await;
    let r = e.run_on("a", &["renew", "--no-jitter"]).await;
    assert_ne!(r.code, 0);
    for part in [
        "refusing to use `s3://brokercert-state/fleet`",
        "the bucket has no public access block",
        "aws s3api put-public-access-block --bucket brokercert-state",
        "Nothing was written",
    ] {
        assert!(r.stderr.contains(part), "`{part}` missing: {}", r.stderr);
    }
    assert!(e.keys("").await.is_empty(), "{:?}", e.keys("").await);
}

#[tokio::test(flavor = "multi_thread")]
async fn iam_policy_grants_the_state_prefix_and_doctor_checks_the_bucket() {
    let e = s3_env(&one_cert(), true).await;
    let r = e.run_on("a", &["iam-policy"]).await;
    r.assert_ok();
    let policy: serde_json::Value = serde_json::from_str(&r.stdout).expect("policy JSON");
    let statements = policy["Statement"].as_array().unwrap();
    let resources: Vec<&str> = statements
        .iter()
        .flat_map(|s| s["Resource"].as_array().unwrap())
        .filter_map(|r| r.as_str())
        .collect();
    assert!(
        resources.contains(&"arn:aws:s3:::brokercert-state/fleet/*")
            && resources.contains(&"arn:aws:s3:::brokercert-state"),
        "{resources:?}"
    );
    assert!(!r.stdout.contains("kms:"), "no KMS statement without a key");

    let r = e.run_on("a", &["doctor"]).await;
    for part in [
        "s3://brokercert-state/fleet answers",
        "all four settings on",
        "a second create-only write (If-None-Match: *) was refused",
    ] {
        assert!(r.stdout.contains(part), "`{part}` missing: {}", r.stdout);
    }
    assert!(
        e.keys("leases/").await.is_empty(),
        "the probe is deleted again"
    );
    // The public access block turned off: doctor says so.
    e.s3.delete_public_access_block()
        .bucket(BUCKET)
        .send()
        .await
        .expect("delete public access block");
    let r = e.run_on("a", &["doctor"]).await;
    assert_ne!(r.code, 0);
    assert!(
        r.stdout.contains("the bucket has no public access block"),
        "{}",
        r.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_certificates_sharing_a_dns01_name_take_turns_across_machines() {
    let certs =
        one_cert() + &cert_section("mqtt-rsa", &["mqtt.zone1.test"], "key_type = \"rsa2048\"");
    let e = s3_env(&certs, true).await;
    // A works on `mqtt-prod` and stalls holding `_acme-challenge.mqtt.zone1.test`.
    let home = e.machine("a");
    let cfg = e.cfg.to_str().unwrap();
    let a = start_stalled(
        &e.env,
        &["renew", "--no-jitter", "--name", NAME, "--config", cfg],
        "publish-txt",
        &[("XDG_STATE_HOME", home.to_str().unwrap())],
        Duration::from_secs(90),
    )
    .await
    .expect("A stalls");
    // B, for `mqtt-rsa`, waits for the name instead of publishing beside A.
    let b = e.run_on("b", &["renew", "--no-jitter", "--name", "mqtt-rsa"]);
    let kill_a = async {
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert!(e.versions("mqtt-rsa").await.is_empty(), "B did not wait");
        a.kill().await
    };
    let (b, _) = tokio::join!(b, kill_a);
    b.assert_ok();
    assert!(
        b.stderr
            .contains("mqtt-rsa: waiting for the DNS-01 name `_acme-challenge.mqtt.zone1.test`, in use by brokercert renew on"),
        "{}",
        b.stderr
    );
    assert!(b.stderr.contains("taking over the lease"), "{}", b.stderr);
    assert!(b.stdout.contains("mqtt-rsa: renewed"), "{}", b.stdout);
    assert_eq!(e.versions("mqtt-rsa").await.len(), 1);
}

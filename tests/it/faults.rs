//! Faults (issue #6): the real servers of the sandbox with faults injected — Pebble rejecting
//! half of all nonces, a Route 53 API that throttles, fails, drops connections, is slow or
//! keeps a change PENDING, nameservers that lag or fail — and the tool must still issue, or
//! fail clearly within its timeouts and leave no DNS-01 record behind.
//!
//! Many issuances run as several `[[certificate]]` sections of one `issue` run: one process,
//! one Route 53 client and one ACME account, like a real multi-certificate configuration.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::{TestEnv, cert_section};
use brokercert::error::exit;
use brokercert_sandbox::{DnsServer, FaultPlan, Route53Fault, Route53Proxy, SandboxOptions};

/// `n` certificates, one name each (`c0.zone1.test` …): every one needs its own DNS-01.
fn many_certificates(n: usize) -> String {
    (0..n)
        .map(|i| {
            cert_section(
                &format!("c{i}"),
                &[&format!("c{i}.zone1.test")],
                "key_type = \"ecdsa-p256\"",
            )
        })
        .collect()
}

/// Points the configuration's Route 53 endpoint at `endpoint` and applies `replace`
/// (`(from, to)` text substitutions, e.g. a shorter `change_timeout`).
fn rewrite_config(env: &TestEnv, cfg: &Path, endpoint: &str, replace: &[(&str, &str)]) {
    let mut text = std::fs::read_to_string(cfg).expect("read config");
    text = text.replace(
        &format!("endpoint_url = \"{}\"", env.sb.route53_endpoint()),
        &format!("endpoint_url = \"{endpoint}\""),
    );
    for (from, to) in replace {
        assert!(text.contains(from), "`{from}` not in the configuration");
        text = text.replace(from, to);
    }
    std::fs::write(cfg, text).expect("write config");
    // The environment beats the file, and the sandbox's environment names moto.
    env.use_route53_endpoint(endpoint);
}

fn arg(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn live_count(env: &TestEnv, n: usize) -> usize {
    (0..n)
        .filter(|i| env.live(&format!("c{i}"), "fullchain.pem").exists())
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_of_twenty_issuances_with_half_of_all_nonces_rejected() {
    let env = TestEnv::start(
        SandboxOptions::new()
            .zone("zone1.test")
            .pebble_nonce_reject(50),
    )
    .await;
    let cfg = env.config(&many_certificates(20));
    let started = Instant::now();
    let run = env.run(&["issue", "--config", arg(&cfg)]).await;
    run.assert_ok();
    eprintln!("20 issuances at 50 % bad nonces: {:?}", started.elapsed());
    assert_eq!(live_count(&env, 20), 20);
    assert!(env.challenge_records_left().await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_of_twenty_issuances_through_a_route53_api_failing_a_fifth_of_requests() {
    let env = TestEnv::start(SandboxOptions::new().zone("zone1.test")).await;
    let proxy = Route53Proxy::start(&env.sb.route53_endpoint())
        .await
        .expect("proxy");
    let cfg = env.config(&many_certificates(20));
    rewrite_config(&env, &cfg, &proxy.endpoint(), &[]);
    proxy.set_faults(FaultPlan::rate(20));
    let started = Instant::now();
    let run = env.run(&["issue", "--config", arg(&cfg)]).await;
    let requests = proxy.requests();
    let mut kinds: Vec<&str> = requests
        .iter()
        .filter_map(|r| r.fault.map(Route53Fault::as_str))
        .collect();
    kinds.sort_unstable();
    kinds.dedup();
    eprintln!(
        "20 issuances, {} Route 53 requests, {} faults ({kinds:?}): {:?}",
        requests.len(),
        proxy.faults_injected(),
        started.elapsed()
    );
    run.assert_ok();
    assert_eq!(live_count(&env, 20), 20);
    assert!(
        proxy.faults_injected() >= 5 && kinds.len() >= 3,
        "the faults really happened: {requests:?}"
    );
    assert!(
        requests
            .iter()
            .any(|r| r.operation == "ChangeResourceRecordSets" && r.fault.is_some()),
        "a write was hit: {requests:?}"
    );
    assert!(
        env.challenge_records_left().await.is_empty(),
        "{:?}",
        env.challenge_records_left().await
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn route53_failing_every_request_fails_clearly_and_the_next_run_cleans_up() {
    let env = TestEnv::start(SandboxOptions::new().zone("zone1.test")).await;
    let proxy = Route53Proxy::start(&env.sb.route53_endpoint())
        .await
        .expect("proxy");
    let cfg = env.config(&cert_section(
        "down",
        &["mqtt.zone1.test"],
        "key_type = \"ecdsa-p256\"",
    ));
    rewrite_config(
        &env,
        &cfg,
        &proxy.endpoint(),
        &[(
            "change_timeout = \"30s\"",
            "change_timeout = \"30s\"\nmax_attempts = 2",
        )],
    );
    // The TXT value gets written, then Route 53 fails every request: the INSYNC wait and
    // the clean-up both fail, so the value stays behind (recorded in the journal).
    let down = FaultPlan::rate(100)
        .kinds(&[
            Route53Fault::Throttling,
            Route53Fault::InternalError,
            Route53Fault::ConnectionReset,
        ])
        .operations(&["ChangeResourceRecordSets", "GetChange"])
        .skip_first(1);
    proxy.set_faults(down.clone());
    // As on real Route 53, the change is PENDING at first, so its status is asked for.
    proxy.hold_changes_pending(Duration::from_secs(3600));
    let started = Instant::now();
    let run = env
        .run(&["renew", "--no-jitter", "--config", arg(&cfg)])
        .await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(60),
        "fails within its timeout: {took:?}"
    );
    let said = format!("{}{}", run.stdout, run.stderr);
    assert_eq!(run.code, exit::DNS, "{run:?}");
    assert!(
        said.contains("Route 53 GetChange failed")
            && said.contains("then run again")
            && said.contains("clean-up failed"),
        "names Route 53, the operation and what to do: {run:?}"
    );
    assert_eq!(
        env.challenge_records_left().await.len(),
        1,
        "the value could not be removed while Route 53 was down"
    );
    assert!(
        env.state_dir()
            .join("renewal")
            .join("down.journal.json")
            .exists(),
        "the journal remembers the value"
    );
    // Route 53 answers again: the next run removes what the failed one left first (even
    // while it backs off from retrying the CA).
    proxy.set_faults(FaultPlan::none());
    proxy.release_changes();
    let run = env
        .run(&["renew", "--no-jitter", "--config", arg(&cfg)])
        .await;
    assert!(
        run.stderr
            .contains("removing 1 DNS-01 value(s) an interrupted run left"),
        "{run:?}"
    );
    assert!(
        env.challenge_records_left().await.is_empty(),
        "{:?}",
        env.challenge_records_left().await
    );

    // The same with `issue`: it keeps the TXT part of the journal too.
    proxy.set_faults(down.clone());
    proxy.hold_changes_pending(Duration::from_secs(3600));
    let run = env
        .run(&["issue", "--config", arg(&cfg), "--force-renewal"])
        .await;
    run.assert_code(exit::DNS);
    assert!(
        run.stderr.contains("Route 53 GetChange failed")
            && run.stderr.contains("run the same command again"),
        "{run:?}"
    );
    assert_eq!(env.challenge_records_left().await.len(), 1);
    proxy.set_faults(FaultPlan::none());
    proxy.release_changes();
    let run = env
        .run(&["issue", "--config", arg(&cfg), "--force-renewal"])
        .await;
    run.assert_ok();
    assert!(
        run.stderr
            .contains("removing 1 DNS-01 value(s) an earlier run left"),
        "{}",
        run.stderr
    );
    assert!(
        env.challenge_records_left().await.is_empty(),
        "{:?}",
        env.challenge_records_left().await
    );
    assert!(env.live("down", "fullchain.pem").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_answer_to_every_write_leaves_no_duplicate_and_no_stray_record() {
    let env = TestEnv::start(SandboxOptions::new().zone("zone1.test")).await;
    let proxy = Route53Proxy::start(&env.sb.route53_endpoint())
        .await
        .expect("proxy");
    let zone = env.sb.zone_id("zone1.test").unwrap();
    // Someone else's value at the same name must survive the retried UPSERT and DELETE.
    env.sb
        .upsert(
            &zone,
            "_acme-challenge.lost.zone1.test",
            "TXT",
            60,
            &["\"foreign\""],
        )
        .await
        .unwrap();
    let cfg = env.config(&cert_section(
        "lost",
        &["lost.zone1.test", "*.lost.zone1.test"],
        "key_type = \"ecdsa-p256\"",
    ));
    rewrite_config(&env, &cfg, &proxy.endpoint(), &[]);
    // moto applies each write, then the connection drops: the SDK sends it again.
    proxy.set_faults(
        FaultPlan::rate(100)
            .kinds(&[Route53Fault::AnswerLost])
            .operations(&["ChangeResourceRecordSets"]),
    );
    let cfg_text = std::fs::read_to_string(&cfg).unwrap();
    let cfg2 = env.work.path().join("max2.toml");
    std::fs::write(
        &cfg2,
        cfg_text.replace(
            "change_timeout = \"30s\"",
            "change_timeout = \"30s\"\nmax_attempts = 2",
        ),
    )
    .unwrap();
    let run = env.run(&["issue", "--config", arg(&cfg2)]).await;
    // Every attempt of every write loses its answer: the publish fails, but each attempt
    // was applied, and the clean-up (whose retried DELETE/UPSERT also loses its answer)
    // checks what is really there.
    let left = env.challenge_records_left().await;
    assert_eq!(
        left,
        vec!["_acme-challenge.lost.zone1.test. [\"\\\"foreign\\\"\"]".to_string()],
        "only the foreign value is left, once: {}",
        run.stderr
    );
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains("ChangeResourceRecordSets"),
        "{}",
        run.stderr
    );
    // With answers lost now and then, the issuance succeeds and the foreign value stays.
    proxy.set_faults(
        FaultPlan::rate(50)
            .kinds(&[Route53Fault::AnswerLost])
            .operations(&["ChangeResourceRecordSets"]),
    );
    env.run(&["issue", "--config", arg(&cfg)]).await.assert_ok();
    assert_eq!(env.challenge_records_left().await, left);
    assert!(
        proxy
            .requests()
            .iter()
            .any(|r| r.fault == Some(Route53Fault::AnswerLost)),
        "answers were lost"
    );

    // The clean-up's DELETE loses its answer: the SDK repeats it, and the repeat finds
    // nothing to delete. The clean-up re-reads, sees none of its values left, and reports
    // success rather than a stray record; the same when every attempt loses its answer.
    let gone = env.work.path().join("gone.toml");
    let lost = Some(Route53Fault::AnswerLost);
    for (i, script) in [
        [None, lost, Some(Route53Fault::DeleteNotFound)],
        [None, lost, lost],
    ]
    .into_iter()
    .enumerate()
    {
        // A new name each time: Pebble 2.4 reuses a valid authorization 1 time in 100 even
        // with PEBBLE_AUTHZREUSE=0 (`rand.Intn(100) > 0`), and then there is no TXT value
        // to remove.
        std::fs::write(
            &gone,
            std::fs::read_to_string(&cfg2).unwrap().replace(
                &cert_section(
                    "lost",
                    &["lost.zone1.test", "*.lost.zone1.test"],
                    "key_type = \"ecdsa-p256\"",
                ),
                &cert_section(
                    "gone",
                    &[&format!("gone{i}.zone1.test")],
                    "key_type = \"ecdsa-p256\"",
                ),
            ),
        )
        .unwrap();
        proxy.clear_requests();
        proxy.set_faults(FaultPlan::script(&script).operations(&["ChangeResourceRecordSets"]));
        let run = env.run(&["issue", "--config", arg(&gone)]).await;
        run.assert_ok();
        assert!(
            run.stderr.contains("removed 1 TXT value(s)") && !run.stderr.contains("warning"),
            "{}",
            run.stderr
        );
        let writes = proxy
            .requests()
            .iter()
            .filter(|r| r.operation == "ChangeResourceRecordSets")
            .count();
        assert_eq!(
            writes,
            3,
            "publish, DELETE, repeated DELETE: {:?}",
            proxy.requests()
        );
        assert_eq!(env.challenge_records_left().await, left);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_change_pending_for_a_while_is_waited_for_and_a_short_change_timeout_fails_cleanly() {
    let env = TestEnv::start(SandboxOptions::new().zone("zone1.test")).await;
    let proxy = Route53Proxy::start(&env.sb.route53_endpoint())
        .await
        .expect("proxy");
    let cfg = env.config(&cert_section(
        "pending",
        &["mqtt.zone1.test"],
        "key_type = \"ecdsa-p256\"",
    ));
    rewrite_config(&env, &cfg, &proxy.endpoint(), &[]);

    // PENDING for 2 s: the run waits, says so, and succeeds.
    proxy.hold_changes_pending(Duration::from_secs(2));
    let started = Instant::now();
    let run = env.run(&["issue", "--config", arg(&cfg)]).await;
    run.assert_ok();
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert!(
        run.stderr.contains("still PENDING — waiting for INSYNC"),
        "the wait shows in the progress: {}",
        run.stderr
    );
    let held = proxy.requests().iter().filter(|r| r.held_pending).count();
    assert!(held >= 2, "{:?}", proxy.requests());
    assert!(env.challenge_records_left().await.is_empty());

    // PENDING for good, with `change_timeout = "2s"`: the error names the change and the
    // wait, and the value is removed.
    // A new name: Pebble 2.4 reuses a valid authorization 1 time in 100 even with
    // PEBBLE_AUTHZREUSE=0 (`rand.Intn(100) > 0`), and then there would be no change to hold.
    proxy.hold_changes_pending(Duration::from_secs(3600));
    rewrite_config(
        &env,
        &cfg,
        &proxy.endpoint(),
        &[
            ("change_timeout = \"30s\"", "change_timeout = \"2s\""),
            ("\"mqtt.zone1.test\"", "\"second.zone1.test\""),
        ],
    );
    let run = env.run(&["issue", "--config", arg(&cfg)]).await;
    run.assert_code(exit::DNS);
    assert!(
        run.stderr.contains("Route 53 change ")
            && run.stderr.contains("was still PENDING after 1 s")
            && run.stderr.contains("route53.change_timeout"),
        "{}",
        run.stderr
    );
    let change_id = proxy_change_id(&env).await;
    assert!(
        run.stderr.contains(&change_id),
        "{change_id}: {}",
        run.stderr
    );
    assert!(
        env.challenge_records_left().await.is_empty(),
        "{:?}",
        env.challenge_records_left().await
    );
}

/// The change id moto hands out (it answers every change with the same one).
async fn proxy_change_id(env: &TestEnv) -> String {
    let zone = env.sb.zone_id("zone1.test").unwrap();
    let client = env.sb.route53_client();
    use aws_sdk_route53::types::{
        Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType,
    };
    let out = client
        .change_resource_record_sets()
        .hosted_zone_id(&zone)
        .change_batch(
            ChangeBatch::builder()
                .changes(
                    Change::builder()
                        .action(ChangeAction::Upsert)
                        .resource_record_set(
                            ResourceRecordSet::builder()
                                .name("probe.zone1.test.")
                                .r#type(RrType::A)
                                .ttl(60)
                                .resource_records(
                                    ResourceRecord::builder()
                                        .value("192.0.2.1")
                                        .build()
                                        .unwrap(),
                                )
                                .build()
                                .unwrap(),
                        )
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("probe change");
    out.change_info()
        .map(|i| i.id().trim_start_matches("/change/").to_string())
        .expect("change id")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lagging_nameserver_is_waited_for_and_named_with_what_it_served() {
    let env = TestEnv::start(SandboxOptions::new().zone("zone1.test")).await;
    // A second authoritative server for the same zones, serving new TXT values late.
    let laggard = DnsServer::start(&env.sb.route53_endpoint()).expect("second DNS server");
    let (good, slow) = (env.sb.dns_addr().to_string(), laggard.addr().to_string());
    let cfg = env.config(&cert_section(
        "lag",
        &["mqtt.zone1.test"],
        "key_type = \"ecdsa-p256\"",
    ));
    rewrite_config(
        &env,
        &cfg,
        &env.sb.route53_endpoint(),
        &[(
            &format!("nameservers = [\"{good}\"]"),
            &format!("nameservers = [\"{good}\", \"{slow}\"]"),
        )],
    );

    laggard.faults().lag(Duration::from_secs(2));
    let started = Instant::now();
    let run = env.run(&["issue", "--config", arg(&cfg)]).await;
    run.assert_ok();
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "waited for the laggard"
    );
    assert!(
        run.stderr
            .contains(&format!("seen by 1/2 nameservers — waiting for {slow}")),
        "{}",
        run.stderr
    );

    // A laggard that never catches up within the timeout: named, with what it served. It is
    // listed first now: the clean-up must not take its stale answer (no value of ours) for
    // the zone's and leave the value behind. A new name: Pebble 2.4 reuses a valid
    // authorization 1 time in 100 even with PEBBLE_AUTHZREUSE=0 (`rand.Intn(100) > 0`), and
    // then there would be nothing to wait for.
    rewrite_config(
        &env,
        &cfg,
        &env.sb.route53_endpoint(),
        &[
            (
                &format!("nameservers = [\"{good}\", \"{slow}\"]"),
                &format!("nameservers = [\"{slow}\", \"{good}\"]"),
            ),
            ("\"mqtt.zone1.test\"", "\"second.zone1.test\""),
        ],
    );
    laggard.faults().lag(Duration::from_secs(3600));
    let run = env
        .run(&[
            "issue",
            "--config",
            arg(&cfg),
            "--propagation-timeout",
            "2s",
        ])
        .await;
    run.assert_code(exit::PROPAGATION);
    assert!(
        run.stderr.contains(&format!("{good}: OK"))
            && run.stderr.contains(&format!("{slow}: answered"))
            && run.stderr.contains("missing \""),
        "{}",
        run.stderr
    );
    assert!(
        env.challenge_records_left().await.is_empty(),
        "{:?}",
        env.challenge_records_left().await
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn issuance_survives_seconds_of_servfail_and_of_silence() {
    let env = TestEnv::start(SandboxOptions::new().zone("zone1.test")).await;
    let cfg = env.config(&cert_section(
        "flaky",
        &["mqtt.zone1.test"],
        "key_type = \"ecdsa-p256\"",
    ));
    let faults = env.sb.dns_faults();

    faults.servfail_for(Duration::from_secs(3));
    let run = env.run(&["issue", "--config", arg(&cfg)]).await;
    run.assert_ok();
    let servfails = env
        .sb
        .dns_queries()
        .iter()
        .filter(|q| q.rcode == Some(hickory_proto::op::ResponseCode::ServFail))
        .count();
    assert!(servfails >= 2, "the SERVFAILs were seen");

    env.sb.dns().clear_queries();
    faults.drop_for(Duration::from_secs(3));
    let run = env
        .run(&["issue", "--config", arg(&cfg), "--force-renewal"])
        .await;
    run.assert_ok();
    assert!(
        env.sb.dns_queries().iter().any(|q| q.rcode.is_none()),
        "queries went unanswered"
    );
    assert!(env.challenge_records_left().await.is_empty());
}

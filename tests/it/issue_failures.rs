//! `brokercert issue` failure paths: each a clear error and exit code, nothing left behind.

use std::time::Duration;

use crate::support::{TestEnv, cert_section};
use brokercert::error::exit;
use brokercert_sandbox::SandboxOptions;

#[tokio::test(flavor = "multi_thread")]
async fn domain_in_no_hosted_zone() {
    let env = TestEnv::start(SandboxOptions::new().zone("zone1.test")).await;
    let cfg = env.config(&cert_section("nozone", &["mqtt.elsewhere.test"], ""));
    let run = env.run(&["issue", "--config", cfg.to_str().unwrap()]).await;
    run.assert_code(exit::DNS);
    assert!(
        run.stderr
            .contains("no public Route 53 hosted zone holds `mqtt.elsewhere.test`"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("zone1.test"),
        "the error lists the zones that exist: {}",
        run.stderr
    );
    assert!(
        env.state_files().iter().all(|f| f.starts_with("accounts/")),
        "{:?}",
        env.state_files()
    );
    assert!(env.challenge_records_left().await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn conflicting_record_is_not_overwritten_without_force() {
    let env = TestEnv::start(SandboxOptions::new().zone("zone1.test")).await;
    let z = env.sb.zone_id("zone1.test").unwrap();
    env.sb
        .upsert(&z, "mqtt.zone1.test", "A", 300, &["192.0.2.10"])
        .await
        .unwrap();
    let cfg = env.config(&cert_section(
        "conflict",
        &["mqtt.zone1.test"],
        "cname_target = \"broker.emqx.test\"\nkey_type = \"ecdsa-p256\"",
    ));

    let run = env.run(&["issue", "--config", cfg.to_str().unwrap()]).await;
    run.assert_code(exit::DNS);
    assert!(
        run.stderr.contains("already has A 192.0.2.10"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("--force"), "{}", run.stderr);
    let recs = env.sb.list_records(&z).await.unwrap();
    assert!(
        recs.iter()
            .any(|r| r.name == "mqtt.zone1.test." && r.rtype == "A"),
        "A record kept: {recs:?}"
    );
    assert!(env.challenge_records_left().await.is_empty());
    assert!(!env.state_dir().join("live").exists());

    // With --force the A record is replaced by the CNAME and issuance proceeds.
    let run = env
        .run(&["issue", "--config", cfg.to_str().unwrap(), "--force"])
        .await;
    run.assert_ok();
    let recs = env.sb.list_records(&z).await.unwrap();
    assert!(
        !recs
            .iter()
            .any(|r| r.name == "mqtt.zone1.test." && r.rtype == "A"),
        "{recs:?}"
    );
    assert!(
        recs.iter()
            .any(|r| r.name == "mqtt.zone1.test." && r.rtype == "CNAME"),
        "{recs:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ca_rejects_the_order() {
    let env = TestEnv::start(
        SandboxOptions::new()
            .zone("zone1.test")
            .pebble_blocklist("blocked.zone1.test"),
    )
    .await;
    let cfg = env.config(&cert_section("blocked", &["mqtt.blocked.zone1.test"], ""));
    let run = env.run(&["issue", "--config", cfg.to_str().unwrap()]).await;
    run.assert_code(exit::ACME);
    assert!(
        run.stderr
            .contains("refused the order for mqtt.blocked.zone1.test"),
        "{}",
        run.stderr
    );
    assert!(env.challenge_records_left().await.is_empty());
    assert!(!env.state_dir().join("live").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn txt_that_never_appears_times_out_with_evidence_and_is_removed() {
    let env = TestEnv::start(SandboxOptions::new().zone("zone1.test")).await;
    let cfg = env.config(&cert_section(
        "silent",
        &["mqtt.zone1.test"],
        "key_type = \"ecdsa-p256\"",
    ));
    // The nameserver stops answering once the CA's order exists: the TXT is never seen.
    env.sb.dns_faults().drop_until_reset();
    let run = env
        .run(&[
            "issue",
            "--config",
            cfg.to_str().unwrap(),
            "--propagation-timeout",
            "2s",
        ])
        .await;
    env.sb.dns_faults().reset();
    // Reading the current TXT set before writing needs DNS, so with a silent nameserver the
    // run stops before writing anything; either way nothing may be left.
    assert!(
        run.code == exit::DNS || run.code == exit::PROPAGATION,
        "{run:?}"
    );
    assert!(
        run.stderr.contains(&env.sb.dns_addr().to_string()),
        "the error names the nameserver: {}",
        run.stderr
    );
    assert!(env.challenge_records_left().await.is_empty());
    assert!(!env.state_dir().join("live").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn propagation_timeout_names_the_laggard_and_cleans_up() {
    let env = TestEnv::start(SandboxOptions::new().zone("zone1.test")).await;
    let cfg = env.config(&cert_section(
        "lag",
        &["mqtt.zone1.test"],
        "key_type = \"ecdsa-p256\"",
    ));
    // A second "nameserver" that never answers: the propagation check must wait for it,
    // give up, name it, and still remove the TXT value from Route 53.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap().to_string();
    let dns = env.sb.dns_addr().to_string();
    let run = env
        .run(&[
            "issue",
            "--config",
            cfg.to_str().unwrap(),
            "--nameserver",
            &dns,
            "--nameserver",
            &silent_addr,
            "--propagation-timeout",
            "3s",
        ])
        .await;
    run.assert_code(exit::PROPAGATION);
    assert!(
        run.stderr
            .contains(&format!("{silent_addr}: no usable answer")),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains(&format!("{dns}: OK")), "{}", run.stderr);
    assert!(
        env.challenge_records_left().await.is_empty(),
        "{:?}",
        env.challenge_records_left().await
    );
    assert!(!env.state_dir().join("live").exists());
    drop(silent);
}

#[tokio::test(flavor = "multi_thread")]
async fn interrupt_cleans_up_and_exits_130() {
    let env = TestEnv::start(SandboxOptions::new().zone("zone1.test")).await;
    let cfg = env.config(&cert_section(
        "intr",
        &["mqtt.zone1.test"],
        "key_type = \"ecdsa-p256\"",
    ));
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap().to_string();
    let dns = env.sb.dns_addr().to_string();

    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_brokercert"));
    cmd.args([
        "issue",
        "--config",
        cfg.to_str().unwrap(),
        "--nameserver",
        &dns,
        "--nameserver",
        &silent_addr,
        "--propagation-timeout",
        "60s",
    ])
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    env.sb.configure_command(&mut cmd);
    let child = cmd.spawn().unwrap();
    let pid = child.id();
    // Wait until the TXT value is in Route 53, then interrupt.
    let z = env.sb.zone_id("zone1.test").unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let recs = env.sb.list_records(&z).await.unwrap();
        if recs.iter().any(|r| r.name.starts_with("_acme-challenge")) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "TXT never written");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(exit::INTERRUPTED), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(
        env.challenge_records_left().await.is_empty(),
        "{:?}",
        env.challenge_records_left().await
    );
    drop(silent);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_configuration_is_refused_before_any_call() {
    let env = TestEnv::start(SandboxOptions::new().zone("zone1.test")).await;
    let cfg = env.config(
        "[[certificate]]\nname = \"x\"\ndomains = [\"mqtt.zone1.test\"]\nkey_tpye = \"rsa2048\"\n",
    );
    let run = env.run(&["issue", "--config", cfg.to_str().unwrap()]).await;
    run.assert_code(exit::CONFIG);
    assert!(
        run.stderr.contains("key_tpye") && run.stderr.contains("key_type"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(cfg.to_str().unwrap()),
        "names the file: {}",
        run.stderr
    );
    assert!(env.state_files().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn ca_validation_failure_reports_the_cas_reason_and_cleans_up() {
    let env = TestEnv::start(SandboxOptions::new().zone("zone1.test")).await;
    let cfg = env.config(&cert_section(
        "invalid",
        &["mqtt.zone1.test"],
        "key_type = \"ecdsa-p256\"",
    ));
    // brokercert checks propagation on a second DNS server over the same records (it sees the
    // TXT), while the server the CA asks answers SERVFAIL: the CA's validation fails.
    let ours = brokercert_sandbox::DnsServer::start(&env.sb.route53_endpoint())
        .expect("second DNS server");
    env.sb.dns_faults().servfail_until_reset();
    let run = env
        .run(&[
            "issue",
            "--config",
            cfg.to_str().unwrap(),
            "--nameserver",
            &ours.addr().to_string(),
        ])
        .await;
    env.sb.dns_faults().reset();
    run.assert_code(exit::ACME);
    assert!(
        run.stderr.contains("could not validate mqtt.zone1.test"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("Error retrieving TXT records"),
        "the CA's reason is shown: {}",
        run.stderr
    );
    assert!(
        env.challenge_records_left().await.is_empty(),
        "{:?}",
        env.challenge_records_left().await
    );
    assert!(!env.state_dir().join("live").exists());
}

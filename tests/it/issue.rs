//! `brokercert issue` end to end against the sandbox: Pebble, moto, the sandbox DNS server.

use std::os::unix::fs::PermissionsExt;

use crate::support::{TestEnv, cert_section, certs};
use brokercert::dns::RecordType;
use brokercert::dns::lookup::exchange;
use brokercert::pki::bundle::parse_bundle;
use brokercert::pki::certificate::Certificate;
use brokercert::pki::keys::PrivateKey;
use brokercert::renew::lock::StateLock;
use brokercert_sandbox::SandboxOptions;

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777
}

async fn pebble_roots(env: &TestEnv) -> Vec<Certificate> {
    env.sb
        .issuing_roots()
        .await
        .expect("Pebble management API")
        .iter()
        .flat_map(|pem| {
            parse_bundle(pem.as_bytes())
                .expect("root parses")
                .certificates
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn issues_with_cname_and_stores_a_verified_chain() {
    let env = TestEnv::start(SandboxOptions::new().zone("zone1.test").zone("emqx.test")).await;
    let emqx = env.sb.zone_id("emqx.test").unwrap();
    env.sb
        .upsert(&emqx, "broker-1.emqx.test", "A", 60, &["127.0.0.1"])
        .await
        .unwrap();
    let cfg = env.config(&cert_section(
        "mqtt-prod",
        &["mqtt.zone1.test"],
        "cname_target = \"broker-1.emqx.test\"",
    ));

    let run = env
        .run(&["issue", "--config", cfg.to_str().unwrap(), "--timings"])
        .await;
    run.assert_ok();
    assert!(
        run.stdout.contains("Issued certificate `mqtt-prod`"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("timings:"), "{}", run.stdout);

    // The CNAME resolves through the sandbox DNS server, target's address in the same answer.
    let a = exchange(
        env.sb.dns_addr(),
        "mqtt.zone1.test",
        RecordType::A,
        false,
        std::time::Duration::from_secs(2),
    )
    .await
    .unwrap();
    assert_eq!(
        a.cname_at("mqtt.zone1.test").as_deref(),
        Some("broker-1.emqx.test")
    );
    assert_eq!(
        a.values_at("broker-1.emqx.test", RecordType::A),
        vec!["127.0.0.1"]
    );

    // Files, modes, chain to Pebble's root, key matches leaf.
    for f in [
        "cert.pem",
        "chain.pem",
        "fullchain.pem",
        "privkey.pem",
        "root.pem",
    ] {
        assert!(env.live("mqtt-prod", f).exists(), "{f} missing");
    }
    assert_eq!(mode(&env.live("mqtt-prod", "privkey.pem")), 0o600);
    assert_eq!(mode(&env.state_dir()), 0o700);
    let leaf = certs(&env.live("mqtt-prod", "cert.pem"));
    let chain = certs(&env.live("mqtt-prod", "chain.pem"));
    let root = certs(&env.live("mqtt-prod", "root.pem"));
    let full = certs(&env.live("mqtt-prod", "fullchain.pem"));
    assert_eq!(leaf.len(), 1);
    assert!(!chain.is_empty());
    assert_eq!(root.len(), 1);
    assert_eq!(full.len(), 1 + chain.len());
    assert!(leaf[0].covers_name("mqtt.zone1.test"));
    assert!(
        leaf[0].verify_signed_by(&chain[0]),
        "leaf not signed by chain[0]"
    );
    for w in chain.windows(2) {
        assert!(w[0].verify_signed_by(&w[1]), "chain link broken");
    }
    assert!(
        chain.last().unwrap().verify_signed_by(&root[0]),
        "chain does not reach root.pem"
    );
    let roots = pebble_roots(&env).await;
    assert!(roots.contains(&root[0]), "root.pem is not Pebble's root");
    let key =
        PrivateKey::from_pem(std::fs::read(env.live("mqtt-prod", "privkey.pem")).unwrap()).unwrap();
    assert!(key.matches_certificate(&leaf[0]));
    assert_eq!(
        key.key_type().map(|k| k.to_string()).as_deref(),
        Some("rsa2048")
    );

    assert!(
        env.challenge_records_left().await.is_empty(),
        "{:?}",
        env.challenge_records_left().await
    );

    // A second run (forced: the first is not due) reuses the account and the CNAME, and
    // keeps the first version in archive/.
    let again = env
        .run(&[
            "issue",
            "--config",
            cfg.to_str().unwrap(),
            "--force-renewal",
        ])
        .await;
    again.assert_ok();
    assert!(
        again.stderr.contains("already in place"),
        "{}",
        again.stderr
    );
    let versions = std::fs::read_dir(env.state_dir().join("archive/mqtt-prod"))
        .unwrap()
        .count();
    assert_eq!(versions, 2);
    let leaf2 = certs(&env.live("mqtt-prod", "cert.pem"));
    assert_ne!(leaf2[0].serial_hex(), leaf[0].serial_hex());
}

#[tokio::test(flavor = "multi_thread")]
async fn apex_and_wildcard_share_a_name_and_foreign_values_survive() {
    let env = TestEnv::start(SandboxOptions::new().zone("zone1.test")).await;
    let z = env.sb.zone_id("zone1.test").unwrap();
    env.sb
        .upsert(
            &z,
            "_acme-challenge.zone1.test",
            "TXT",
            120,
            &["\"someone-elses-value\""],
        )
        .await
        .unwrap();
    let cfg = env.config(&cert_section(
        "apex",
        &["zone1.test", "*.zone1.test"],
        "key_type = \"ecdsa-p256\"",
    ));

    env.run(&["issue", "--config", cfg.to_str().unwrap()])
        .await
        .assert_ok();

    let leaf = certs(&env.live("apex", "cert.pem"));
    assert!(leaf[0].covers_name("zone1.test") && leaf[0].covers_name("anything.zone1.test"));
    let left: Vec<_> = env
        .sb
        .list_records(&z)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.name.starts_with("_acme-challenge") && r.rtype == "TXT")
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].values, vec!["\"someone-elses-value\""]);
    assert_eq!(left[0].ttl, Some(120));
}

#[tokio::test(flavor = "multi_thread")]
async fn delegated_challenge_cname_into_a_second_zone() {
    let env = TestEnv::start(
        SandboxOptions::new()
            .zone("zone1.test")
            .zone("acme-delegate.test"),
    )
    .await;
    let z1 = env.sb.zone_id("zone1.test").unwrap();
    env.sb
        .upsert(
            &z1,
            "_acme-challenge.mqtt.zone1.test",
            "CNAME",
            300,
            &["mqtt.acme-delegate.test."],
        )
        .await
        .unwrap();
    let cfg = env.config(&cert_section("delegated", &["mqtt.zone1.test"], ""));

    let run = env.run(&["issue", "--config", cfg.to_str().unwrap()]).await;
    run.assert_ok();
    assert!(
        run.stderr
            .contains("delegated: writing at mqtt.acme-delegate.test"),
        "{}",
        run.stderr
    );
    assert!(env.challenge_records_left().await.is_empty());
    // The delegating CNAME itself is untouched.
    let recs = env.sb.list_records(&z1).await.unwrap();
    assert!(
        recs.iter()
            .any(|r| r.rtype == "CNAME" && r.name.starts_with("_acme-challenge.mqtt"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn long_chains_land_in_chain_pem() {
    let env = TestEnv::start(
        SandboxOptions::new()
            .zone("zone1.test")
            .pebble_env("PEBBLE_CHAIN_LENGTH", "3"),
    )
    .await;
    let cfg = env.config(&cert_section(
        "long",
        &["mqtt.zone1.test"],
        "key_type = \"ecdsa-p256\"",
    ));
    env.run(&["issue", "--config", cfg.to_str().unwrap()])
        .await
        .assert_ok();
    let chain = certs(&env.live("long", "chain.pem"));
    assert_eq!(chain.len(), 3, "expected three intermediates in chain.pem");
    let root = certs(&env.live("long", "root.pem"));
    assert!(chain[2].verify_signed_by(&root[0]));
    assert!(
        !chain.iter().any(|c| c == &root[0]),
        "root must not be repeated in chain.pem"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn preferred_chain_picks_the_alternate_root() {
    let env = TestEnv::start(
        SandboxOptions::new()
            .zone("zone1.test")
            .pebble_env("PEBBLE_ALTERNATE_ROOTS", "1"),
    )
    .await;
    let roots = pebble_roots(&env).await;
    assert!(roots.len() >= 2, "Pebble offers an alternate root");
    let cfg = env.config(&cert_section(
        "alt",
        &["mqtt.zone1.test"],
        "key_type = \"ecdsa-p256\"",
    ));

    env.run(&["issue", "--config", cfg.to_str().unwrap()])
        .await
        .assert_ok();
    let default_root = certs(&env.live("alt", "root.pem")).remove(0);
    let other = roots
        .iter()
        .find(|r| **r != default_root)
        .expect("another root")
        .clone();
    let cn = other.subject_cn().expect("root CN");

    env.run(&[
        "issue",
        "--config",
        cfg.to_str().unwrap(),
        "--preferred-chain",
        &cn,
        "--force-renewal",
    ])
    .await
    .assert_ok();
    let chosen = certs(&env.live("alt", "root.pem")).remove(0);
    assert_eq!(chosen, other, "the preferred chain's root was not chosen");
}

#[tokio::test(flavor = "multi_thread")]
async fn survives_half_of_all_nonces_rejected() {
    let env = TestEnv::start(
        SandboxOptions::new()
            .zone("zone1.test")
            .pebble_env("PEBBLE_WFE_NONCEREJECT", "50"),
    )
    .await;
    let cfg = env.config(&cert_section(
        "nonces",
        &["mqtt.zone1.test", "b.zone1.test"],
        "key_type = \"ecdsa-p256\"",
    ));
    for _ in 0..3 {
        env.run(&[
            "issue",
            "--config",
            cfg.to_str().unwrap(),
            "--force-renewal",
        ])
        .await
        .assert_ok();
    }
    assert!(env.challenge_records_left().await.is_empty());
}

fn live_spki(env: &TestEnv, name: &str) -> Vec<u8> {
    PrivateKey::from_pem(std::fs::read(env.live(name, "privkey.pem")).unwrap())
        .unwrap()
        .public_key_spki_der()
}

#[tokio::test(flavor = "multi_thread")]
async fn reuse_key_keeps_the_public_key_until_new_key_or_a_type_change() {
    let env = TestEnv::start(SandboxOptions::new().zone("zone1.test")).await;
    let section = |key_type: &str| {
        cert_section(
            "pinned",
            &["pinned.zone1.test"],
            &format!("key_type = \"{key_type}\"\nreuse_key = true"),
        )
    };
    let cfg = env.config(&section("ecdsa-p256"));
    let cfg_s = cfg.to_str().unwrap();

    // The first certificate has nothing to reuse: a new key.
    env.run(&["issue", "--config", cfg_s]).await.assert_ok();
    let first = live_spki(&env, "pinned");
    let serial_1 = certs(&env.live("pinned", "cert.pem"))[0]
        .serial_hex()
        .to_string();

    // issue and renew again: a new certificate for the same public key.
    let again = env
        .run(&["issue", "--config", cfg_s, "--json", "--force-renewal"])
        .await;
    again.assert_ok();
    assert!(
        again.stdout.contains("\"key_reused\":true"),
        "{}",
        again.stdout
    );
    env.run(&["renew", "--config", cfg_s, "--force", "--no-jitter"])
        .await
        .assert_ok();
    let leaf = certs(&env.live("pinned", "cert.pem"));
    assert_ne!(leaf[0].serial_hex(), serial_1);
    assert_eq!(live_spki(&env, "pinned"), first);
    let key =
        PrivateKey::from_pem(std::fs::read(env.live("pinned", "privkey.pem")).unwrap()).unwrap();
    assert!(key.matches_certificate(&leaf[0]));

    // --new-key: a new key this once, which later runs keep.
    let rotated = env.run(&["issue", "--config", cfg_s, "--new-key"]).await;
    rotated.assert_ok();
    assert!(rotated.stderr.contains("--new-key"), "{}", rotated.stderr);
    let second = live_spki(&env, "pinned");
    assert_ne!(second, first);
    env.run(&["issue", "--config", cfg_s, "--force-renewal"])
        .await
        .assert_ok();
    assert_eq!(live_spki(&env, "pinned"), second);

    // A changed key_type cannot keep the key: a new one, and the run says why.
    let cfg = env.config(&section("ecdsa-p384"));
    let changed = env.run(&["issue", "--config", cfg.to_str().unwrap()]).await;
    changed.assert_ok();
    assert!(
        changed
            .stderr
            .contains("key_type changed from ecdsa-p256 to ecdsa-p384"),
        "{}",
        changed.stderr
    );
    assert_ne!(live_spki(&env, "pinned"), second);
    assert!(env.challenge_records_left().await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn reuse_key_with_an_unreadable_stored_key_stops_before_ordering() {
    let env = TestEnv::start(SandboxOptions::new().zone("zone1.test")).await;
    let cfg = env.config(&cert_section(
        "pinned",
        &["pinned.zone1.test"],
        "key_type = \"ecdsa-p256\"\nreuse_key = true",
    ));
    let cfg_s = cfg.to_str().unwrap();
    env.run(&["issue", "--config", cfg_s]).await.assert_ok();
    let cert_before = std::fs::read(env.live("pinned", "cert.pem")).unwrap();
    // The stored key is damaged (the live file is the current version's key).
    let key_file = std::fs::canonicalize(env.live("pinned", "privkey.pem")).unwrap();
    std::fs::write(
        &key_file,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();

    let run = env
        .run(&["issue", "--config", cfg_s, "--force-renewal"])
        .await;
    assert_ne!(run.code, 0, "{}", run.stderr);
    for part in ["reuse_key", "privkey.pem", "--new-key"] {
        assert!(
            run.stderr.contains(part),
            "`{part}` missing: {}",
            run.stderr
        );
    }
    assert!(!run.stderr.contains("AAAA"), "{}", run.stderr);
    // Nothing ordered, published or stored.
    assert!(
        !run.stderr.contains("DNS-01 challenge(s) to answer"),
        "{}",
        run.stderr
    );
    assert!(env.challenge_records_left().await.is_empty());
    assert_eq!(
        std::fs::read(env.live("pinned", "cert.pem")).unwrap(),
        cert_before
    );

    // --new-key is the way out.
    env.run(&["issue", "--config", cfg_s, "--new-key"])
        .await
        .assert_ok();
    assert_ne!(
        std::fs::read(env.live("pinned", "cert.pem")).unwrap(),
        cert_before
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn issue_refuses_or_waits_for_a_state_directory_another_command_holds() {
    let env = TestEnv::start(SandboxOptions::new().zone("zone1.test")).await;
    let cfg = env.config(&cert_section(
        "locked",
        &["locked.zone1.test"],
        "key_type = \"ecdsa-p256\"",
    ));
    let cfg_s = cfg.to_str().unwrap();
    // A `renew` (this test process) holds the state directory.
    let held = StateLock::acquire(
        &env.state_dir().join("renewal"),
        std::time::Duration::ZERO,
        "renew",
    )
    .await
    .unwrap();

    let refused = env.run(&["issue", "--config", cfg_s]).await;
    refused.assert_code(7);
    let holder = format!("brokercert renew (pid {})", std::process::id());
    for part in [holder.as_str(), "did nothing", "--wait DURATION"] {
        assert!(
            refused.stderr.contains(part),
            "`{part}` missing: {}",
            refused.stderr
        );
    }
    // Nothing ordered, published or stored.
    assert!(
        !refused.stderr.contains("DNS-01 challenge(s) to answer"),
        "{}",
        refused.stderr
    );
    assert!(!env.live("locked", "cert.pem").exists());
    assert!(env.challenge_records_left().await.is_empty());

    // With --wait, the run goes on once the holder lets go.
    let release = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        drop(held);
    });
    let waited = env
        .run(&["issue", "--config", cfg_s, "--wait", "60s"])
        .await;
    waited.assert_ok();
    assert!(
        waited
            .stderr
            .contains(&format!("waiting up to 1m for {holder} to finish")),
        "{}",
        waited.stderr
    );
    release.await.unwrap();
    assert!(env.live("locked", "cert.pem").exists());
    assert!(env.challenge_records_left().await.is_empty());
}

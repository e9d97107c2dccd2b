//! `issue` → deploy to the EMQX Cloud emulator (a real Mosquitto behind it) → verify over
//! mqtts and wss through the CNAME, and the API's failure paths.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::cloud::{KEY, MQTT_PASSWORD, SECRET, cloud};
use crate::support::{cert_section, certs};
use brokercert::error::exit;
use brokercert_sandbox::{Budgets, DeploymentSpec};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

#[tokio::test(flavor = "multi_thread")]
async fn one_way_issue_deploys_verifies_and_renews_with_put() {
    let c = cloud(DeploymentSpec::dedicated("dep1", KEY, SECRET)).await;
    let cfg = c.config("dep1", "", "");
    let run = c.run(&["issue", "--config", cfg.to_str().unwrap()]).await;
    run.assert_ok();
    assert!(
        run.stdout
            .contains("Deployed to EMQX Cloud deployment dep1: installed"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("Verified mqtts") && run.stdout.contains("Verified wss"),
        "{}",
        run.stdout
    );
    let first = c.live_serial();
    assert_eq!(c.served_serial("dep1").as_deref(), Some(first.as_str()));
    assert!(
        run.stdout.contains(&first),
        "verify reports the served serial: {}",
        run.stdout
    );

    // A renewal-like second issue (forced: the first is not due) replaces it with PUT, and
    // verify sees the new serial.
    let run = c
        .run(&[
            "issue",
            "--config",
            cfg.to_str().unwrap(),
            "--force-renewal",
        ])
        .await;
    run.assert_ok();
    assert!(
        run.stdout.contains("replaced the previous certificate"),
        "{}",
        run.stdout
    );
    let second = c.live_serial();
    assert_ne!(first, second);
    assert_eq!(c.served_serial("dep1").as_deref(), Some(second.as_str()));
    let writes: Vec<_> = c
        .emu
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .map(|r| r.method)
        .collect();
    assert_eq!(writes, vec!["POST", "PUT"]);

    // `verify` on its own, and `deploy` of what is already served spends no write.
    c.run(&["verify", "mqtt-prod", "--config", cfg.to_str().unwrap()])
        .await
        .assert_ok();
    let run = c
        .run(&["deploy", "mqtt-prod", "--config", cfg.to_str().unwrap()])
        .await;
    run.assert_ok();
    assert!(run.stdout.contains("already served"), "{}", run.stdout);
    assert_eq!(c.emu.write_count("dep1"), 2);
}

/// A CA named `cn` (ECDSA P-256), signed by `parent` or by itself; `path_len` limits the CAs
/// below it. Returns its certificate and the issuer that signs with its key.
fn test_ca(
    cn: &str,
    parent: Option<&Issuer<'static, KeyPair>>,
    path_len: Option<u8>,
) -> (rcgen::Certificate, Issuer<'static, KeyPair>) {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut ca = CertificateParams::default();
    ca.is_ca = IsCa::Ca(path_len.map_or(
        BasicConstraints::Unconstrained,
        BasicConstraints::Constrained,
    ));
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca.distinguished_name.push(DnType::CommonName, cn);
    let cert = match parent {
        Some(p) => ca.signed_by(&key, p).unwrap(),
        None => ca.self_signed(&key).unwrap(),
    };
    (cert, Issuer::new(ca, key))
}

fn client_pki(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let (ca_cert, issuer) = test_ca("Test Client CA", None, None);
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut leaf = CertificateParams::default();
    leaf.distinguished_name.push(DnType::CommonName, "Client");
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let leaf = leaf.signed_by(&key, &issuer).unwrap();
    let (ca_p, cert_p, key_p) = (
        dir.join("client-ca.crt"),
        dir.join("client.crt"),
        dir.join("client.key"),
    );
    std::fs::write(&ca_p, ca_cert.pem()).unwrap();
    std::fs::write(&cert_p, leaf.pem()).unwrap();
    std::fs::write(&key_p, key.serialize_pem()).unwrap();
    (ca_p, cert_p, key_p)
}

#[tokio::test(flavor = "multi_thread")]
async fn two_way_refuses_clients_without_a_certificate() {
    let spec = DeploymentSpec::dedicated("dep2", KEY, SECRET).mqtt_user("device-1", MQTT_PASSWORD);
    let c = cloud(spec).await;
    let (ca, cert, key) = client_pki(c.env.work.path());
    let cfg = c.config(
        "dep2",
        &format!("tls = \"two-way\"\nclient_ca = \"{}\"", ca.display()),
        &format!(
            "client_cert = \"{}\"\nclient_key = \"{}\"\nusername = \"device-1\"\npassword_env = \"TEST_MQTT_PASSWORD\"",
            cert.display(),
            key.display()
        ),
    );
    let password = [("TEST_MQTT_PASSWORD", MQTT_PASSWORD)];
    let run = c
        .run_env(&["issue", "--config", cfg.to_str().unwrap()], &password)
        .await;
    run.assert_ok();
    assert!(
        run.stdout
            .contains("refused a client without a certificate"),
        "{}",
        run.stdout
    );
    assert!(
        c.emu
            .tls_snapshot("dep2")
            .is_some_and(|s| s.tls_type.api_name() == "two-way")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn api_errors_are_clear_and_spend_no_blind_writes() {
    // 401: wrong secret. The certificate stays stored; the message says what to run next.
    let c = cloud(DeploymentSpec::dedicated("dep3", KEY, "another-secret")).await;
    let cfg = c.config("dep3", "", "");
    let run = c.run(&["issue", "--config", cfg.to_str().unwrap()]).await;
    run.assert_code(exit::DEPLOY);
    assert!(
        run.stderr.contains("401") && run.stderr.contains("brokercert deploy mqtt-prod"),
        "{}",
        run.stderr
    );
    assert!(c.env.live("mqtt-prod", "cert.pem").exists());
    assert_eq!(c.emu.write_count("dep3"), 0);

    // 404: unknown deployment id (with a key the service knows).
    c.emu
        .add_deployment(DeploymentSpec::dedicated("known", KEY, SECRET))
        .unwrap();
    let cfg = c.config("nosuchdep", "", "");
    let run = c
        .run(&["deploy", "mqtt-prod", "--config", cfg.to_str().unwrap()])
        .await;
    run.assert_code(exit::DEPLOY);
    assert!(
        run.stderr.contains("no deployment `nosuchdep`"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn forbidden_scope_and_serverless_are_refused() {
    let c = cloud(DeploymentSpec::dedicated("dep4", KEY, SECRET).scopes_ok(false)).await;
    let cfg = c.config("dep4", "", "");
    let run = c.run(&["issue", "--config", cfg.to_str().unwrap()]).await;
    run.assert_code(exit::DEPLOY);
    assert!(
        run.stderr.contains("TLS Certificate Management"),
        "{}",
        run.stderr
    );

    c.emu
        .add_deployment(DeploymentSpec::serverless("sls1", KEY, SECRET).deployment_scope(true))
        .unwrap();
    let cfg = c.config("sls1", "", "");
    let run = c
        .run(&["deploy", "mqtt-prod", "--config", cfg.to_str().unwrap()])
        .await;
    run.assert_code(exit::CONFIG);
    assert!(run.stderr.contains("Serverless"), "{}", run.stderr);
    assert_eq!(c.emu.write_count("sls1"), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_and_failures_keep_the_previous_certificate_served() {
    let c = cloud(DeploymentSpec::dedicated("dep5", KEY, SECRET)).await;
    let cfg = c.config("dep5", "", "");
    c.run(&["issue", "--config", cfg.to_str().unwrap()])
        .await
        .assert_ok();
    let served = c.served_serial("dep5").unwrap();

    // 422: the service refuses what our rules allow (here: it takes ECDSA only).
    c.emu
        .set_allowed_key_kinds(vec![brokercert::pki::KeyKind::EcdsaP256]);
    let run = c
        .run(&[
            "issue",
            "--config",
            cfg.to_str().unwrap(),
            "--force-renewal",
        ])
        .await;
    run.assert_code(exit::DEPLOY);
    assert!(run.stderr.contains("422"), "{}", run.stderr);
    assert_eq!(c.served_serial("dep5").as_deref(), Some(served.as_str()));
    c.run(&[
        "verify",
        "mqtt-prod",
        "--config",
        cfg.to_str().unwrap(),
        "--expect-serial",
        &served,
    ])
    .await
    .assert_ok();
    c.emu
        .set_allowed_key_kinds(brokercert_sandbox::emqx_cloud::newest_guide_key_kinds());

    // `failed` on apply: the old certificate keeps serving.
    c.emu.fail_next_apply();
    let run = c
        .run(&[
            "issue",
            "--config",
            cfg.to_str().unwrap(),
            "--force-renewal",
        ])
        .await;
    run.assert_code(exit::DEPLOY);
    assert!(run.stderr.contains("status `failed`"), "{}", run.stderr);
    c.run(&[
        "verify",
        "mqtt-prod",
        "--config",
        cfg.to_str().unwrap(),
        "--expect-serial",
        &served,
    ])
    .await
    .assert_ok();

    // A `pending` that never ends times out with what to run next.
    c.emu.set_pending_forever();
    let cfg_short = c.config("dep5", "", "").to_str().unwrap().to_string();
    let text = std::fs::read_to_string(&cfg_short)
        .unwrap()
        .replace("poll_timeout = \"20s\"", "poll_timeout = \"1s\"");
    std::fs::write(&cfg_short, text).unwrap();
    let run = c
        .run(&["deploy", "mqtt-prod", "--config", &cfg_short])
        .await;
    run.assert_code(exit::DEPLOY);
    assert!(
        run.stderr.contains("still `pending`")
            && run.stderr.contains("brokercert verify mqtt-prod"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limit_and_pre_upload_rejection_spend_no_writes() {
    let c = cloud(DeploymentSpec::dedicated("dep6", KEY, SECRET)).await;
    // Pre-upload rejection: a window no certificate can meet. No write is made.
    let cfg = c.config("dep6", "min_days_left = 100000", "");
    let run = c.run(&["issue", "--config", cfg.to_str().unwrap()]).await;
    run.assert_code(exit::CERTIFICATE);
    assert!(
        run.stderr.contains("validity-window") && run.stderr.contains("nothing was uploaded"),
        "{}",
        run.stderr
    );
    assert_eq!(c.emu.write_count("dep6"), 0);

    // 429 with Retry-After: reported with the wait, the write is not repeated.
    c.emu.set_budgets(Budgets {
        writes: 0,
        reads: 60,
        window: Duration::from_secs(3600),
    });
    let cfg = c.config("dep6", "", "");
    let run = c
        .run(&["deploy", "mqtt-prod", "--config", cfg.to_str().unwrap()])
        .await;
    run.assert_code(exit::DEPLOY);
    assert!(
        run.stderr.contains("rate limited (429") && run.stderr.contains("Try again in"),
        "{}",
        run.stderr
    );
    let writes = c
        .emu
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" || r.method == "PUT")
        .count();
    assert_eq!(writes, 1, "one attempt, no blind retry");
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_mqtt_password_fails_verification() {
    let c =
        cloud(DeploymentSpec::dedicated("dep8", KEY, SECRET).mqtt_user("device-1", MQTT_PASSWORD))
            .await;
    let cfg = c.config(
        "dep8",
        "",
        "username = \"device-1\"\npassword_env = \"TEST_MQTT_PASSWORD\"",
    );
    let ok = [("TEST_MQTT_PASSWORD", MQTT_PASSWORD)];
    c.run_env(&["issue", "--config", cfg.to_str().unwrap()], &ok)
        .await
        .assert_ok();
    let wrong = [("TEST_MQTT_PASSWORD", "not-the-password")];
    let run = c
        .run_env(
            &["verify", "mqtt-prod", "--config", cfg.to_str().unwrap()],
            &wrong,
        )
        .await;
    run.assert_code(exit::VERIFY);
    assert!(run.stderr.contains("mqtts failed"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn remove_asks_for_confirmation_then_deletes() {
    let c = cloud(DeploymentSpec::dedicated("dep7", KEY, SECRET)).await;
    let cfg = c.config("dep7", "", "");
    c.run(&["issue", "--config", cfg.to_str().unwrap()])
        .await
        .assert_ok();
    assert!(c.emu.broker_running("dep7").await);

    let run = c
        .run(&["remove", "mqtt-prod", "--config", cfg.to_str().unwrap()])
        .await;
    run.assert_code(exit::CONFIG);
    assert!(
        run.stderr.contains("8883") && run.stderr.contains("--yes"),
        "{}",
        run.stderr
    );
    assert!(
        c.emu.tls_snapshot("dep7").is_some(),
        "nothing removed without confirmation"
    );

    let run = c
        .run(&[
            "remove",
            "mqtt-prod",
            "--config",
            cfg.to_str().unwrap(),
            "--yes",
        ])
        .await;
    run.assert_ok();
    assert!(
        run.stdout
            .contains("Removed the TLS configuration of EMQX Cloud deployment dep7"),
        "{}",
        run.stdout
    );
    assert!(c.emu.tls_snapshot("dep7").is_none());
    assert!(!c.emu.broker_running("dep7").await);
    c.run(&["verify", "mqtt-prod", "--config", cfg.to_str().unwrap()])
        .await
        .assert_code(exit::VERIFY);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_certificate_expiring_in_the_same_second_as_the_served_one_is_still_deployed() {
    // EMQX Cloud names what it serves only by its expiry, to the second (and sometimes its
    // CN). Two certificates for one name issued within the same second look alike there:
    // "already served" must not be believed when the broker presents another certificate.
    let c = cloud(DeploymentSpec::dedicated("dep1", KEY, SECRET)).await;
    let cfg = c.config("dep1", "", "");
    c.run(&["issue", "--config", cfg.to_str().unwrap()])
        .await
        .assert_ok();
    let served = certs(&c.env.live("mqtt-prod", "cert.pem")).remove(0);

    // Another certificate for the same name that expires in the same second (made here by a
    // CA of the test's own, which the verification is told to trust besides Pebble's root).
    let dir = c.env.work.path().join("twin");
    std::fs::create_dir_all(&dir).unwrap();
    let (ca_cert, root_issuer) = test_ca("Twin Test CA", None, None);
    let (mid_cert, issuer) = test_ca("Twin Test Intermediate", Some(&root_issuer), Some(0));
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut leaf = CertificateParams::new(vec!["mqtt.example.test".to_string()]).unwrap();
    if let Some(cn) = served.subject_cn() {
        leaf.distinguished_name.push(DnType::CommonName, cn);
    }
    leaf.not_before = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    leaf.not_after = served.not_after();
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf = leaf.signed_by(&key, &issuer).unwrap();
    std::fs::write(dir.join("cert.pem"), leaf.pem()).unwrap();
    std::fs::write(dir.join("chain.pem"), mid_cert.pem()).unwrap();
    std::fs::write(dir.join("root.pem"), ca_cert.pem()).unwrap();
    std::fs::write(dir.join("privkey.pem"), key.serialize_pem()).unwrap();
    let twin = certs(&dir.join("cert.pem")).remove(0);
    assert_eq!(twin.not_after(), served.not_after());
    let roots = c.env.work.path().join("roots.pem");
    std::fs::write(
        &roots,
        format!(
            "{}{}",
            std::fs::read_to_string(c.env.live("mqtt-prod", "root.pem")).unwrap(),
            ca_cert.pem()
        ),
    )
    .unwrap();
    let cfg = c.config("dep1", "", &format!("ca_file = \"{}\"", roots.display()));
    let writes = c.emu.write_count("dep1");

    let r = c
        .run(&[
            "deploy",
            "mqtt-prod",
            "--from",
            dir.to_str().unwrap(),
            "--config",
            cfg.to_str().unwrap(),
        ])
        .await;
    r.assert_ok();
    assert!(
        r.stderr
            .contains("another certificate with the same expiry"),
        "{}",
        r.stderr
    );
    assert_eq!(
        c.served_serial("dep1").as_deref(),
        Some(twin.serial_hex()),
        "the new certificate is served"
    );
    assert_eq!(c.emu.write_count("dep1"), writes + 1, "one write, no more");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_certificates_for_one_name_renew_in_one_run() {
    // An RSA and an ECDSA certificate for one broker name: both write the TXT set at
    // `_acme-challenge.mqtt.example.test`. At the same time, each wrote the set back with
    // only its own value and the other's vanished (its run timed out waiting for it); they
    // now take turns.
    let c = cloud(DeploymentSpec::dedicated("dep1", KEY, SECRET)).await;
    let ecdsa = cert_section(
        "mqtt-ecdsa",
        &["mqtt.example.test"],
        "key_type = \"ecdsa-p256\"",
    );
    let cfg = c
        .env
        .config(&format!("{}\n{ecdsa}", c.section("dep1", "", "")));
    let r = c
        .run(&[
            "renew",
            "--force",
            "--no-jitter",
            "--config",
            cfg.to_str().unwrap(),
        ])
        .await;
    r.assert_ok();
    for name in ["mqtt-prod", "mqtt-ecdsa"] {
        assert!(
            r.stdout.contains(&format!("{name}: renewed")),
            "{}",
            r.stdout
        );
        assert!(c.env.live(name, "cert.pem").exists());
    }
    assert_eq!(
        c.served_serial("dep1").as_deref(),
        Some(c.live_serial().as_str())
    );
    assert!(c.env.challenge_records_left().await.is_empty());
}

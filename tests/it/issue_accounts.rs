//! The ACME account: terms must be agreed, External Account Binding, reuse across runs.

use crate::support::{TestEnv, cert_section};
use brokercert::error::exit;
use brokercert_sandbox::{EabKey, SandboxOptions};

#[tokio::test(flavor = "multi_thread")]
async fn a_new_account_needs_the_terms_agreed() {
    let env = TestEnv::start(SandboxOptions::new().zone("zone1.test")).await;
    let cfg = env.config(&cert_section("tos", &["mqtt.zone1.test"], ""));
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("agree_tos = true", "agree_tos = false");
    std::fs::write(&cfg, text).unwrap();
    let run = env.run(&["issue", "--config", cfg.to_str().unwrap()]).await;
    run.assert_code(exit::CONFIG);
    assert!(run.stderr.contains("--agree-tos"), "{}", run.stderr);
    assert!(env.state_files().is_empty(), "{:?}", env.state_files());
    assert!(env.challenge_records_left().await.is_empty());

    // Agreeing on the command line creates the account; later runs reuse it without the flag.
    env.run(&[
        "issue",
        "--config",
        cfg.to_str().unwrap(),
        "--agree-tos",
        "--key-type",
        "ecdsa-p256",
    ])
    .await
    .assert_ok();
    let accounts: Vec<_> = env
        .state_files()
        .into_iter()
        .filter(|f| f.starts_with("accounts/"))
        .collect();
    assert_eq!(accounts.len(), 1, "{accounts:?}");
    let run = env
        .run(&[
            "issue",
            "--config",
            cfg.to_str().unwrap(),
            "--key-type",
            "ecdsa-p256",
            "--force-renewal",
        ])
        .await;
    run.assert_ok();
    let again: Vec<_> = env
        .state_files()
        .into_iter()
        .filter(|f| f.starts_with("accounts/"))
        .collect();
    assert_eq!(accounts, again, "the stored account was reused");
    let path = env.state_dir().join(&accounts[0]);
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).unwrap().permissions())
            & 0o777;
    assert_eq!(mode, 0o600);
    let json = std::fs::read_to_string(&path).unwrap();
    assert!(
        !run.stderr.contains(&json[..20.min(json.len())]),
        "account material in the output"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn external_account_binding_from_the_environment() {
    let key = EabKey::random("kid-brokercert-test");
    let env = TestEnv::start(
        SandboxOptions::new()
            .zone("zone1.test")
            .external_account_binding(key.clone()),
    )
    .await;
    let cfg = env.config(&cert_section(
        "eab",
        &["mqtt.zone1.test"],
        "key_type = \"ecdsa-p256\"",
    ));

    // Without the binding the CA refuses to create the account.
    let run = env.run(&["issue", "--config", cfg.to_str().unwrap()]).await;
    run.assert_code(exit::ACME);
    assert!(
        run.stderr.contains("refused the account")
            || run.stderr.contains("externalAccountRequired"),
        "{}",
        run.stderr
    );

    // A key id without its HMAC is a configuration error naming where the HMAC is read from.
    let run = env
        .run(&[
            "issue",
            "--config",
            cfg.to_str().unwrap(),
            "--eab-kid",
            &key.kid,
        ])
        .await;
    run.assert_code(exit::CONFIG);
    assert!(run.stderr.contains("BROKERCERT_EAB_HMAC"), "{}", run.stderr);

    let run = env
        .run_with_env(
            &[
                "issue",
                "--config",
                cfg.to_str().unwrap(),
                "--eab-kid",
                &key.kid,
            ],
            &[("BROKERCERT_EAB_HMAC", &key.hmac_key_b64url)],
        )
        .await;
    run.assert_ok();
    assert!(
        !run.stderr.contains(&key.hmac_key_b64url) && !run.stdout.contains(&key.hmac_key_b64url),
        "the HMAC leaked"
    );
}

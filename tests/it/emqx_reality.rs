//! brokercert against EMQX Cloud as it really is, not as we first read it (issue 16): a key
//! with only the "TLS Certificate Management" scope, `expire` in other time zones, the
//! statuses beyond `running`, and both settings of every assumption the emulator makes.

use std::time::Duration;

use crate::support::cloud::{KEY, SECRET, cloud};
use brokercert::error::exit;
use brokercert_sandbox::{
    Behaviours, BudgetScope, Budgets, CnForm, DeploymentSpec, ErrorBody, ExpireForm, NoTls,
    PostOverExisting, RetryAfter,
};

/// A key made as the README says (TLS scope only) deploys; only `/tls` is called, and
/// `--timings` counts the requests spent.
#[tokio::test(flavor = "multi_thread")]
async fn tls_scope_only_key_deploys_and_counts_its_requests() {
    let c = cloud(DeploymentSpec::dedicated("scope1", KEY, SECRET).deployment_scope(false)).await;
    let cfg = c.config("scope1", "", "");
    let run = c
        .run(&["issue", "--timings", "--config", cfg.to_str().unwrap()])
        .await;
    run.assert_ok();
    let paths: Vec<String> = c.emu.requests().into_iter().map(|r| r.path).collect();
    assert!(
        paths.iter().all(|p| p.ends_with("/tls")),
        "only the TLS endpoint is called: {paths:?}"
    );
    let reads = c.emu.read_count("scope1");
    let writes = c.emu.write_count("scope1");
    assert_eq!(writes, 1);
    let line = format!(
        "EMQX Cloud deployment scope1: {reads} read{} (of 60 an hour), 1 write (of 6 an hour)",
        if reads == 1 { "" } else { "s" }
    );
    assert!(run.stdout.contains(&line), "{line}\n{}", run.stdout);

    // `deploy --timings` of what is served spends one read and no write.
    c.emu.clear_requests();
    let run = c
        .run(&[
            "deploy",
            "mqtt-prod",
            "--timings",
            "--config",
            cfg.to_str().unwrap(),
        ])
        .await;
    run.assert_ok();
    assert!(
        run.stdout
            .contains("EMQX Cloud deployment scope1: 1 read (of 60 an hour), 0 writes"),
        "{}",
        run.stdout
    );
    assert_eq!(c.emu.requests().len(), 1);
}

/// `deployment_type = "serverless"` refuses before any request; a TLS-only key on a
/// Serverless deployment gets the API's 400 explained (the type read is 403: unknown).
#[tokio::test(flavor = "multi_thread")]
async fn deployment_type_setting_and_unknown_type() {
    let c = cloud(DeploymentSpec::serverless("sls2", KEY, SECRET)).await;
    let cfg = c.config("sls2", "deployment_type = \"serverless\"", "");
    let run = c.run(&["issue", "--config", cfg.to_str().unwrap()]).await;
    run.assert_code(exit::CONFIG);
    assert!(
        run.stderr.contains("is a Serverless deployment"),
        "{}",
        run.stderr
    );
    assert!(c.emu.requests().is_empty(), "{:?}", c.emu.requests());

    let cfg = c.config("sls2", "", "");
    let run = c
        .run(&["deploy", "mqtt-prod", "--config", cfg.to_str().unwrap()])
        .await;
    run.assert_code(exit::DEPLOY);
    assert!(
        run.stderr.contains("(400)") && run.stderr.contains("deployment_type"),
        "{}",
        run.stderr
    );
    let forbidden: Vec<_> = c
        .emu
        .requests()
        .into_iter()
        .filter(|r| r.status == 403)
        .collect();
    assert_eq!(forbidden.len(), 1, "one type read, answered 403");
    assert_eq!(c.emu.write_count("sls2"), 0);
}

/// Issue (POST), `status`, renew's "already served" (no write), and a second issue (PUT)
/// against an emulator with `behaviours`: brokercert must pass whichever way the service
/// really behaves.
async fn passes_with(id: &str, behaviours: Behaviours) {
    let c = cloud(DeploymentSpec::dedicated(id, KEY, SECRET)).await;
    c.emu.set_behaviours(behaviours);
    let cfg = c.config(id, "", "");
    let cfg = cfg.to_str().unwrap();
    let run = c.run(&["issue", "--config", cfg]).await;
    run.assert_ok();
    assert!(run.stdout.contains("installed"), "{}", run.stdout);
    assert_eq!(c.served_serial(id), Some(c.live_serial()));

    // `status` recognises the served certificate from what the API reports.
    let run = c.run(&["status", "--config", cfg]).await;
    run.assert_ok();
    assert!(
        run.stdout.contains("— the stored certificate") && !run.stdout.contains("NOT the"),
        "{behaviours:?}\n{}",
        run.stdout
    );

    // Forget that it was deployed: `renew` must find it served and spend no write.
    std::fs::remove_file(c.env.state_dir().join("renewal").join("mqtt-prod.json"))
        .expect("renewal state exists");
    let writes = c.emu.write_count(id);
    let run = c.run(&["renew", "--no-jitter", "--config", cfg]).await;
    run.assert_ok();
    assert!(
        run.stdout
            .contains("verified the certificate an earlier run deployed"),
        "{behaviours:?}\n{}",
        run.stdout
    );
    assert_eq!(c.emu.write_count(id), writes, "no write for what is served");

    // `deploy` of what is served: no write either.
    let run = c.run(&["deploy", "mqtt-prod", "--config", cfg]).await;
    run.assert_ok();
    assert!(run.stdout.contains("already served"), "{}", run.stdout);
    assert_eq!(c.emu.write_count(id), writes);

    // A new certificate replaces it.
    let run = c.run(&["issue", "--config", cfg]).await;
    run.assert_ok();
    assert!(
        run.stdout.contains("replaced the previous certificate"),
        "{}",
        run.stdout
    );
    assert_eq!(c.served_serial(id), Some(c.live_serial()));
}

#[tokio::test(flavor = "multi_thread")]
async fn expire_in_utc_without_a_marker() {
    passes_with("exputc", Behaviours::default()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn expire_with_a_utc_plus_8_marker() {
    passes_with(
        "expoff",
        Behaviours {
            expire_form: ExpireForm::Offset(8),
            ..Behaviours::default()
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn expire_in_utc_plus_8_without_a_marker() {
    passes_with(
        "exploc",
        Behaviours {
            expire_form: ExpireForm::LocalNoMarker(8),
            ..Behaviours::default()
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn expire_in_utc_minus_5_without_a_marker_and_no_cn() {
    passes_with(
        "expneg",
        Behaviours {
            expire_form: ExpireForm::LocalNoMarker(-5),
            cn: CnForm::Absent,
            ..Behaviours::default()
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cn_empty() {
    passes_with(
        "cnempty",
        Behaviours {
            cn: CnForm::Empty,
            ..Behaviours::default()
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn post_over_existing_replaces_and_no_tls_is_an_empty_object() {
    passes_with(
        "postrep",
        Behaviours {
            post_over_existing: PostOverExisting::Replace,
            no_tls: NoTls::EmptyObject,
            ..Behaviours::default()
        },
    )
    .await;
}

/// The rate limit, counted per deployment, key or account, with `Retry-After` in seconds or
/// as a date, and error bodies of either shape: the 429 says how long to wait.
async fn rate_limited_with(id: &str, behaviours: Behaviours) {
    let c = cloud(DeploymentSpec::dedicated(id, KEY, SECRET)).await;
    c.emu.set_behaviours(behaviours);
    c.emu.set_budgets(Budgets {
        writes: 1,
        reads: 60,
        window: Duration::from_secs(600),
    });
    let cfg = c.config(id, "", "");
    let cfg = cfg.to_str().unwrap();
    c.run(&["issue", "--config", cfg]).await.assert_ok();
    // A second certificate (a second issue keeps the first, which is not due).
    let run = c.run(&["issue", "--config", cfg, "--force-renewal"]).await;
    run.assert_code(exit::DEPLOY);
    assert!(
        run.stderr.contains("rate limited (429")
            && run.stderr.contains("Try again in")
            && !run.stderr.contains("Try again in an hour"),
        "{behaviours:?}: the wait comes from Retry-After\n{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("rate limit: 1 writes per 600 s"),
        "{behaviours:?}: the body's message is shown\n{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limit_per_deployment_with_retry_after_seconds() {
    rate_limited_with("rl1", Behaviours::default()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limit_per_key_with_retry_after_as_a_date_and_numeric_errors() {
    rate_limited_with(
        "rl2",
        Behaviours {
            budget_scope: BudgetScope::Key,
            retry_after: RetryAfter::HttpDate,
            error_body: ErrorBody::NumericMsg,
            ..Behaviours::default()
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limit_per_account() {
    rate_limited_with(
        "rl3",
        Behaviours {
            budget_scope: BudgetScope::Account,
            ..Behaviours::default()
        },
    )
    .await;
}

/// Every switch of the emulator is exercised above with its non-default setting.
#[test]
fn every_switch_has_a_test_here() {
    let alternatives = Behaviours::each_alternative();
    let d = Behaviours::default();
    let covered = [
        ExpireForm::Offset(8) != d.expire_form,
        ExpireForm::LocalNoMarker(8) != d.expire_form,
        CnForm::Absent != d.cn,
        CnForm::Empty != d.cn,
        PostOverExisting::Replace != d.post_over_existing,
        NoTls::EmptyObject != d.no_tls,
        BudgetScope::Key != d.budget_scope,
        BudgetScope::Account != d.budget_scope,
        RetryAfter::HttpDate != d.retry_after,
        ErrorBody::NumericMsg != d.error_body,
    ];
    assert!(covered.iter().all(|c| *c));
    assert_eq!(alternatives.len(), covered.len() + 1);
}

/// `terminated` (known from the Terraform provider) stops the wait with its own message.
#[tokio::test(flavor = "multi_thread")]
async fn terminated_status_has_its_own_message() {
    let c = cloud(DeploymentSpec::dedicated("term1", KEY, SECRET)).await;
    c.emu.terminate_next_apply();
    let cfg = c.config("term1", "", "");
    let run = c.run(&["issue", "--config", cfg.to_str().unwrap()]).await;
    run.assert_code(exit::DEPLOY);
    assert!(
        run.stderr.contains("`terminated`") && run.stderr.contains("start it if it is stopped"),
        "{}",
        run.stderr
    );
}

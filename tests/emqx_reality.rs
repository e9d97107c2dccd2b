//! brokercert against EMQX Cloud as it really is, not as we first read it (issue 16): a key
//! with only the "TLS Certificate Management" scope, `expire` in other time zones, the
//! statuses beyond `running`, and both settings of every assumption the emulator makes.

mod support;

use brokercert::error::exit;
use brokercert::sandbox::DeploymentSpec;
use support::cloud::{KEY, SECRET, cloud};

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

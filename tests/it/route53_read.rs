//! Reading what is in the zone through the Route 53 API (`route53.read_records`):
//! `ListResourceRecordSets` where the identity may call it, DNS after an AccessDenied
//! (`auto`), and a clear error naming the fix when `api` is required but denied. A fault
//! proxy in front of moto denies the action, as the guide's three-action policy does.

use std::path::Path;

use crate::support::{TestEnv, cert_section};
use brokercert_sandbox::{FaultPlan, Route53Fault, Route53Proxy, SandboxOptions};

fn arg(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A configuration reaching Route 53 through `proxy`, with `route53_extra` in `[route53]`.
async fn setup(route53_extra: &str) -> (TestEnv, Route53Proxy, std::path::PathBuf, String) {
    let env = TestEnv::start(SandboxOptions::new().zone("zone1.test")).await;
    let proxy = Route53Proxy::start(&env.sb.route53_endpoint())
        .await
        .expect("proxy");
    let cfg = env.config(&cert_section("c", &["a.zone1.test"], ""));
    let text = std::fs::read_to_string(&cfg).expect("read config").replace(
        &format!("endpoint_url = \"{}\"", env.sb.route53_endpoint()),
        &format!("endpoint_url = \"{}\"\n{route53_extra}", proxy.endpoint()),
    );
    std::fs::write(&cfg, text).expect("write config");
    env.use_route53_endpoint(&proxy.endpoint());
    // Someone else's long value (two character-strings) at the challenge name; short enough
    // that Pebble, which does not retry truncated answers over TCP, still reads the set.
    let other = "x".repeat(300);
    let z = env.sb.zone_id("zone1.test").expect("zone");
    env.sb
        .upsert(
            &z,
            "_acme-challenge.a.zone1.test",
            "TXT",
            300,
            &[&brokercert::dns::route53::quote_txt(&other)],
        )
        .await
        .expect("other TXT value");
    (env, proxy, cfg, other)
}

fn list_calls(proxy: &Route53Proxy) -> Vec<(Option<Route53Fault>, u16)> {
    proxy
        .requests()
        .into_iter()
        .filter(|r| r.operation == "ListResourceRecordSets")
        .map(|r| (r.fault, r.status))
        .collect()
}

async fn left_values(env: &TestEnv) -> Vec<String> {
    let z = env.sb.zone_id("zone1.test").expect("zone");
    env.sb
        .list_records(&z)
        .await
        .expect("records")
        .into_iter()
        .filter(|r| r.name.starts_with("_acme-challenge") && r.rtype == "TXT")
        .flat_map(|r| r.values)
        .map(|v| brokercert::dns::route53::unquote_txt(&v))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn reads_through_list_resource_record_sets_and_keeps_other_values() {
    let (env, proxy, cfg, other) = setup("").await;
    env.run(&["issue", "--config", arg(&cfg)]).await.assert_ok();
    let calls = list_calls(&proxy);
    assert!(
        !calls.is_empty() && calls.iter().all(|(f, s)| f.is_none() && *s == 200),
        "{calls:?}"
    );
    assert_eq!(left_values(&env).await, [other]);
}

#[tokio::test(flavor = "multi_thread")]
async fn auto_falls_back_to_dns_after_one_access_denied() {
    let (env, proxy, cfg, other) = setup("").await;
    proxy.set_faults(
        FaultPlan::rate(100)
            .kinds(&[Route53Fault::AccessDenied])
            .operations(&["ListResourceRecordSets"]),
    );
    env.run(&["issue", "--config", arg(&cfg)]).await.assert_ok();
    let calls = list_calls(&proxy);
    assert_eq!(
        calls,
        [(Some(Route53Fault::AccessDenied), 403)],
        "tried once, then remembered"
    );
    assert_eq!(left_values(&env).await, [other]);
}

#[tokio::test(flavor = "multi_thread")]
async fn api_mode_names_the_missing_action_and_the_fix() {
    let (env, proxy, cfg, other) = setup("read_records = \"api\"").await;
    proxy.set_faults(
        FaultPlan::rate(100)
            .kinds(&[Route53Fault::AccessDenied])
            .operations(&["ListResourceRecordSets"]),
    );
    let run = env.run(&["issue", "--config", arg(&cfg)]).await;
    assert_ne!(run.code, 0, "{}", run.stderr);
    for part in [
        "route53:ListResourceRecordSets",
        "brokercert iam-policy --with-read",
        "route53.read_records",
    ] {
        assert!(
            run.stderr.contains(part),
            "`{part}` missing:\n{}",
            run.stderr
        );
    }
    assert_eq!(left_values(&env).await, [other], "nothing was written");
}

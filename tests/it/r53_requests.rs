//! How many Route 53 requests a fleet costs: Route 53 allows five API requests per second
//! per account and throttles beyond, so twelve certificates in three zones, renewed in one
//! run (the first renewal: none is stored yet), must share their record reads (`ListResourceRecordSets`) and their change batches
//! (`ChangeResourceRecordSets`) per zone instead of spending a few requests each — while
//! the exact read still keeps another writer's TXT value at a challenge name.

use std::path::Path;

use crate::support::{TestEnv, cert_section};
use brokercert_sandbox::{Route53Proxy, SandboxOptions};

const ZONES: [&str; 3] = ["zone1.test", "zone2.test", "zone3.test"];
const PER_ZONE: usize = 4;

fn arg(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// `PER_ZONE` certificates in each of `ZONES`, one name each.
fn fleet() -> String {
    ZONES
        .iter()
        .flat_map(|z| (0..PER_ZONE).map(move |i| (i, *z)))
        .map(|(i, z)| {
            let zone_label = z.trim_end_matches(".test");
            cert_section(
                &format!("{zone_label}-c{i}"),
                &[&format!("c{i}.{z}")],
                "key_type = \"ecdsa-p256\"",
            )
        })
        .collect()
}

fn count(proxy: &Route53Proxy, operation: &str) -> usize {
    proxy
        .requests()
        .iter()
        .filter(|r| r.operation == operation)
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fleet_in_three_zones_reads_and_changes_per_zone_not_per_certificate() {
    let mut opts = SandboxOptions::new();
    for z in ZONES {
        opts = opts.zone(z);
    }
    let env = TestEnv::start(opts).await;
    let proxy = Route53Proxy::start(&env.sb.route53_endpoint())
        .await
        .expect("proxy");
    let cfg = env.config(&fleet());
    let text = std::fs::read_to_string(&cfg).expect("read config").replace(
        &format!("endpoint_url = \"{}\"", env.sb.route53_endpoint()),
        &format!("endpoint_url = \"{}\"", proxy.endpoint()),
    );
    std::fs::write(&cfg, text).expect("write config");
    env.use_route53_endpoint(&proxy.endpoint());
    // Another writer's value at one challenge name: it must survive the run.
    let z1 = env.sb.zone_id("zone1.test").expect("zone");
    let other = brokercert::dns::route53::quote_txt("someone-elses");
    env.sb
        .upsert(&z1, "_acme-challenge.c1.zone1.test", "TXT", 300, &[&other])
        .await
        .expect("other TXT value");

    // `renew` works on the certificates together (one `issue` works on them in turn).
    env.run(&["renew", "--no-jitter", "--config", arg(&cfg)])
        .await
        .assert_ok();

    let certificates = ZONES.len() * PER_ZONE;
    let lists = count(&proxy, "ListResourceRecordSets");
    let changes = count(&proxy, "ChangeResourceRecordSets");
    eprintln!(
        "{certificates} certificates in {} zones: {} Route 53 requests, {lists} \
         ListResourceRecordSets, {changes} ChangeResourceRecordSets",
        ZONES.len(),
        proxy.requests().len()
    );
    // Per zone: one read walk for the challenge names' CNAMEs, one before publishing, one
    // before cleaning up; one change batch to publish and one to clean up. Twice that
    // leaves room for a certificate that reaches Route 53 a window late — but not for
    // reads or changes per certificate.
    assert!(
        lists <= 2 * 3 * ZONES.len(),
        "{lists} ListResourceRecordSets for {certificates} certificates in {} zones",
        ZONES.len()
    );
    assert!(
        changes <= 2 * 2 * ZONES.len(),
        "{changes} ChangeResourceRecordSets for {certificates} certificates in {} zones",
        ZONES.len()
    );
    for (z, i) in ZONES
        .iter()
        .flat_map(|z| (0..PER_ZONE).map(move |i| (z, i)))
    {
        let name = format!("{}-c{i}", z.trim_end_matches(".test"));
        assert!(env.live(&name, "fullchain.pem").exists(), "{name} issued");
    }
    let left = env.challenge_records_left().await;
    assert_eq!(
        left.len(),
        1,
        "only the other writer's set is left: {left:?}"
    );
    assert!(left[0].contains("someone-elses"), "{left:?}");
}

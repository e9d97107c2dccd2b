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

/// Upserts TXT sets `r{i}.{zone}` for `i` in `range`, in one change batch.
async fn fill_zone(
    client: &aws_sdk_route53::Client,
    zone_id: &str,
    zone: &str,
    range: std::ops::Range<usize>,
) {
    use aws_sdk_route53::types::{
        Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType,
    };
    let mut batch = ChangeBatch::builder();
    for i in range {
        let set = ResourceRecordSet::builder()
            .name(format!("r{i:04}.{zone}."))
            .r#type(RrType::Txt)
            .ttl(300)
            .resource_records(
                ResourceRecord::builder()
                    .value(format!("\"v{i}\""))
                    .build()
                    .expect("record"),
            )
            .build()
            .expect("set");
        batch = batch.changes(
            Change::builder()
                .action(ChangeAction::Upsert)
                .resource_record_set(set)
                .build()
                .expect("change"),
        );
    }
    client
        .change_resource_record_sets()
        .hosted_zone_id(zone_id)
        .change_batch(batch.build().expect("batch"))
        .send()
        .await
        .expect("fill the zone");
}

#[tokio::test(flavor = "multi_thread")]
async fn one_walk_reads_names_across_pages_exactly_as_reading_each_does() {
    use brokercert::dns::provider::DnsProvider;
    use brokercert::dns::route53::Route53;
    let env = TestEnv::start(SandboxOptions::new().zone("big.test")).await;
    let zone_id = env.sb.zone_id("big.test").expect("zone");
    // 700 sets: three pages of 300, the names asked on each of them.
    let client = env.sb.route53_client();
    for part in [0..350, 350..700] {
        fill_zone(&client, &zone_id, "big.test", part).await;
    }
    let proxy = Route53Proxy::start(&env.sb.route53_endpoint())
        .await
        .expect("proxy");
    let r53 = Route53::from_client(brokercert_sandbox::moto::route53_client(&proxy.endpoint()));
    let names: Vec<String> = ["r0000", "r0350", "r0699", "absent", "r0299"]
        .iter()
        .map(|n| format!("{n}.big.test"))
        .collect();
    let walked = r53
        .zone_record_sets(&zone_id, &names)
        .await
        .expect("walk")
        .expect("read through the API");
    let walks = count(&proxy, "ListResourceRecordSets");
    assert_eq!(walks, 3, "one request per page of 300 for 700 sets");
    for name in &names {
        let alone = r53
            .record_sets(&zone_id, name)
            .await
            .expect("read")
            .expect("read through the API");
        assert_eq!(walked.get(name), Some(&alone), "{name}");
    }
    assert!(walked[&names[3]].is_empty(), "nothing at `absent`");
    assert_eq!(walked[&names[2]][0].values, ["v699"]);
    // Two names in three pages: one page, then each name alone (never more than 2 × 2 − 1).
    proxy.clear_requests();
    let two = [names[1].clone(), names[2].clone()];
    let read = r53
        .zone_record_sets(&zone_id, &two)
        .await
        .expect("read")
        .expect("read through the API");
    assert_eq!(count(&proxy, "ListResourceRecordSets"), 3);
    assert_eq!(read[&two[0]][0].values, ["v350"]);
    assert_eq!(read[&two[1]][0].values, ["v699"]);
}

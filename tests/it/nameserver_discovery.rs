//! Finding a zone's authoritative nameservers without `dns.nameservers`: NS records through a
//! recursive resolver, then their addresses. Uses the sandbox DNS server as that resolver, so
//! nothing is asked outside 127.0.0.1 and nothing is sent to the discovered port 53.

use std::net::SocketAddr;

use brokercert::dns::lookup::{DnsLookup, WireLookup};
use brokercert_sandbox::{Sandbox, SandboxOptions};

#[tokio::test(flavor = "multi_thread")]
async fn discovers_nameservers_from_ns_records_and_their_addresses() {
    let sb = Sandbox::start(SandboxOptions::new().zone("zone1.test"))
        .await
        .expect("sandbox");
    let z = sb.zone_id("zone1.test").unwrap();
    sb.upsert(
        &z,
        "zone1.test",
        "NS",
        172800,
        &["ns1.zone1.test.", "ns2.zone1.test."],
    )
    .await
    .unwrap();
    sb.upsert(&z, "ns1.zone1.test", "A", 300, &["127.0.0.53"])
        .await
        .unwrap();
    sb.upsert(&z, "ns2.zone1.test", "AAAA", 300, &["::1"])
        .await
        .unwrap();

    let lookup = WireLookup::new(vec![], Some(sb.dns_addr()));
    let mut found = lookup.nameservers("zone1.test").await.expect("discovery");
    found.sort_by(|a, b| a.name.cmp(&b.name));
    let got: Vec<(String, SocketAddr)> = found.into_iter().map(|n| (n.name, n.addr)).collect();
    assert_eq!(
        got,
        vec![
            (
                "ns1.zone1.test".to_string(),
                "127.0.0.53:53".parse().unwrap()
            ),
            ("ns2.zone1.test".to_string(), "[::1]:53".parse().unwrap()),
        ]
    );

    // A zone whose NS names resolve nowhere is a clear error that names the setting to use.
    sb.upsert(&z, "zone1.test", "NS", 172800, &["ns-1.awsdns-01.invalid."])
        .await
        .unwrap();
    let err = lookup
        .nameservers("zone1.test")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("dns.nameservers") && err.contains("zone1.test"),
        "{err}"
    );
}

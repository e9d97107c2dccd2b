//! The networks users really have, reproduced in network namespaces (see `support/netns.rs`):
//! the zone's nameservers are discovered through a resolver (no `dns.nameservers`) and asked
//! on port 53 at 127.0.0.2 and 127.0.0.3, where the sandbox DNS server answers.
//!
//! Each `#[test]` here runs itself again inside its own namespace (`crate::support::netns::in_namespace`):
//! outside, it starts this binary under `unshare --net` with only itself selected; inside, it
//! runs the scenario. Needs root (CI runs as root): a machine that cannot create namespaces
//! fails these tests, naming why.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::support::{TestEnv, cert_section};
use brokercert_sandbox::SandboxOptions;

const NS1: &str = "127.0.0.2:53";
const NS2: &str = "127.0.0.3:53";

#[test]
fn ipv4_only_runner_with_dual_stack_nameservers_issues() {
    crate::support::netns::in_namespace(
        "ipv4_only_runner_with_dual_stack_nameservers_issues",
        ipv4_only,
    );
}

#[test]
fn blocked_port_53_auto_falls_back_to_insync() {
    crate::support::netns::in_namespace("blocked_port_53_auto_falls_back_to_insync", blocked_auto);
}

#[test]
fn blocked_port_53_authoritative_fails_fast_naming_the_setting() {
    crate::support::netns::in_namespace(
        "blocked_port_53_authoritative_fails_fast_naming_the_setting",
        blocked_authoritative,
    );
}

#[test]
fn resolver_mode_waits_out_a_cached_nxdomain() {
    crate::support::netns::in_namespace(
        "resolver_mode_waits_out_a_cached_nxdomain",
        resolver_cache,
    );
}

/// A sandbox whose DNS server also answers on port 53 at [`NS1`] and [`NS2`], with zone
/// `net.test` delegated to `ns1.net.test` (A [`NS1`]) and `ns2.net.test` (A [`NS2`]).
async fn env_with_nameservers() -> (TestEnv, String) {
    let env = TestEnv::start(
        SandboxOptions::new()
            .zone("net.test")
            .dns_also_listen(NS1.parse().expect("address"))
            .dns_also_listen(NS2.parse().expect("address")),
    )
    .await;
    let z = env.sb.zone_id("net.test").expect("zone");
    env.sb
        .upsert(
            &z,
            "net.test",
            "NS",
            172800,
            &["ns1.net.test.", "ns2.net.test."],
        )
        .await
        .expect("NS records");
    for (host, addr) in [("ns1.net.test", NS1), ("ns2.net.test", NS2)] {
        let ip = addr
            .parse::<SocketAddr>()
            .expect("address")
            .ip()
            .to_string();
        env.sb
            .upsert(&z, host, "A", 300, &[&ip])
            .await
            .expect("A record");
    }
    (env, z)
}

/// The sandbox configuration, with the nameservers discovered through `dns.resolver` (the
/// sandbox DNS server on its own port) instead of named in `dns.nameservers`.
fn discovering_config(env: &TestEnv, certificates: &str, dns_extra: &str) -> std::path::PathBuf {
    let path = env.config(certificates);
    let text = std::fs::read_to_string(&path).expect("read config");
    let line = format!("nameservers = [\"{}\"]", env.sb.dns_addr());
    assert!(text.contains(&line), "{text}");
    let text = text.replace(
        &line,
        &format!("resolver = \"{}\"\n{dns_extra}", env.sb.dns_addr()),
    );
    std::fs::write(&path, text).expect("write config");
    path
}

/// Counts packets to port 53 of the nameserver addresses (proof they were asked there).
fn count_port_53() {
    crate::support::netns::nft(
        "table inet probe {\n  chain in {\n    type filter hook input priority 0;\n    \
         ip daddr { 127.0.0.2, 127.0.0.3 } udp dport 53 counter comment \"ns53\"\n  }\n}\n",
    );
}

async fn ipv4_only() {
    count_port_53();
    let (env, z) = env_with_nameservers().await;
    let cfg = discovering_config(
        &env,
        &format!(
            "{}{}",
            cert_section("v4", &["a.net.test"], ""),
            cert_section("dual", &["b.net.test"], "")
        ),
        "",
    );
    let cfg = cfg.to_str().expect("utf-8 path");

    // IPv4 addresses only: the baseline.
    let t = Instant::now();
    env.run(&["issue", "--config", cfg, "--name", "v4"])
        .await
        .assert_ok();
    let v4_alone = t.elapsed();
    assert!(
        crate::support::netns::nft_counter("ns53") > 0,
        "port 53 was never asked"
    );

    // Route 53's nameservers also have AAAA addresses, which this machine cannot reach.
    for (host, v6) in [
        ("ns1.net.test", "2001:db8::2"),
        ("ns2.net.test", "2001:db8::3"),
    ] {
        env.sb
            .upsert(&z, host, "AAAA", 300, &[v6])
            .await
            .expect("AAAA record");
    }
    let t = Instant::now();
    let run = env.run(&["issue", "--config", cfg, "--name", "dual"]).await;
    let dual = t.elapsed();
    run.assert_ok();
    assert!(
        run.stderr
            .contains("not asking ns1.net.test ([2001:db8::2]:53)")
            && run.stderr.contains("no route there"),
        "the unreachable IPv6 address is named once in the progress:\n{}",
        run.stderr
    );
    assert!(
        dual <= v4_alone + Duration::from_secs(2),
        "dual-stack nameservers took {dual:?}, IPv4 alone {v4_alone:?}:\n{}",
        run.stderr
    );
    assert!(env.challenge_records_left().await.is_empty());
}

/// Port 53 of the nameservers blocked as firewalls do: 127.0.0.2 drops the packets (a
/// timeout), 127.0.0.3 refuses them (ICMP port unreachable, TCP reset). The resolver on the
/// sandbox DNS server's own port stays reachable.
fn block_port_53() {
    crate::support::netns::nft(
        "table inet firewall {\n  chain in {\n    type filter hook input priority 0;\n    \
         ip daddr 127.0.0.2 udp dport 53 drop\n    ip daddr 127.0.0.2 tcp dport 53 drop\n    \
         ip daddr 127.0.0.3 udp dport 53 reject\n    \
         ip daddr 127.0.0.3 tcp dport 53 reject with tcp reset\n  }\n}\n",
    );
}

async fn blocked_auto() {
    block_port_53();
    let (env, _) = env_with_nameservers().await;
    let cfg = discovering_config(&env, &cert_section("c", &["a.net.test"], ""), "");
    let run = env
        .run(&[
            "issue",
            "--config",
            cfg.to_str().expect("utf-8 path"),
            "--name",
            "c",
        ])
        .await;
    run.assert_ok();
    for part in [
        "none of the authoritative nameservers of `net.test` answered on UDP or TCP port 53",
        "ns1.net.test (127.0.0.2:53): UDP: no answer within 3 s",
        "ns2.net.test (127.0.0.3:53): UDP:",
        "Trusting Route 53's INSYNC",
        "dns.propagation = \"insync\"",
    ] {
        assert!(
            run.stderr.contains(part),
            "`{part}` missing:\n{}",
            run.stderr
        );
    }
    assert_eq!(
        run.stderr
            .matches("none of the authoritative nameservers")
            .count(),
        1,
        "said once:\n{}",
        run.stderr
    );
    assert!(env.challenge_records_left().await.is_empty());
}

async fn blocked_authoritative() {
    block_port_53();
    let (env, _) = env_with_nameservers().await;
    let cfg = discovering_config(
        &env,
        &cert_section("c", &["a.net.test"], ""),
        "propagation = \"authoritative\"",
    );
    let t = Instant::now();
    let run = env
        .run(&[
            "issue",
            "--config",
            cfg.to_str().expect("utf-8 path"),
            "--name",
            "c",
        ])
        .await;
    let took = t.elapsed();
    assert_ne!(run.code, 0, "{}", run.stderr);
    for part in [
        "none of the authoritative nameservers of `net.test` answered on UDP or TCP port 53 \
         within 3 s",
        "`dns.propagation = \"authoritative\"` needs them",
        "`dns.propagation = \"insync\"`",
    ] {
        assert!(
            run.stderr.contains(part),
            "`{part}` missing:\n{}",
            run.stderr
        );
    }
    assert!(
        took < Duration::from_secs(15),
        "took {took:?}:\n{}",
        run.stderr
    );
    assert!(env.challenge_records_left().await.is_empty());
}

async fn resolver_cache() {
    // Direct queries are blocked; only the (caching) resolver answers.
    block_port_53();
    let (env, _) = env_with_nameservers().await;
    let cap = Duration::from_secs(5);
    let resolver =
        brokercert_sandbox::CachingResolver::start(env.sb.dns_addr(), cap).expect("resolver");
    let cfg = discovering_config(
        &env,
        &cert_section("c", &["a.net.test"], ""),
        "propagation = \"resolver\"",
    );
    // The existing TXT set is read through DNS (as with the guide's three-action policy,
    // which has no ListResourceRecordSets): that read asks the resolver before the value
    // exists, so it caches the NXDOMAIN the propagation check must then wait out. Read
    // through the API instead, nothing is cached and nothing needs waiting out.
    let text = std::fs::read_to_string(&cfg)
        .expect("read config")
        .replace(
            &format!("resolver = \"{}\"", env.sb.dns_addr()),
            &format!("resolver = \"{}\"", resolver.addr()),
        )
        .replace("[route53]\n", "[route53]\nread_records = \"dns\"\n");
    std::fs::write(&cfg, text).expect("write config");
    let run = env
        .run(&[
            "issue",
            "--config",
            cfg.to_str().expect("utf-8 path"),
            "--name",
            "c",
        ])
        .await;
    run.assert_ok();
    assert!(
        run.stderr
            .contains("may keep it for up to 5 s (the zone's SOA minimum)"),
        "the cached negative answer is named:\n{}",
        run.stderr
    );
    // The resolver really hid the new value for a while, and then served it.
    let events: Vec<_> = resolver
        .events()
        .into_iter()
        .filter(|e| e.name == "_acme-challenge.a.net.test")
        .collect();
    let cached_negative = events
        .iter()
        .position(|e| e.from_cache && e.rcode != hickory_proto::op::ResponseCode::NoError);
    let served = events
        .iter()
        .rposition(|e| e.rcode == hickory_proto::op::ResponseCode::NoError);
    assert!(
        matches!((cached_negative, served), (Some(n), Some(p)) if n < p),
        "{events:?}"
    );
    let left = env.challenge_records_left().await;
    assert!(left.is_empty(), "{left:?}\n{}", run.stderr);
}

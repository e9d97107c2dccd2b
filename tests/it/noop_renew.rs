//! A no-op `renew` over many stored certificates with local state: each is "not due",
//! nothing is written, and nothing is asked of anyone — the CA, Route 53 and the DNS
//! server the configuration names are then ports this test holds and counts.
//!
//! Covers: the no-network guarantee of a run that finds nothing due (docs/performance.md,
//! the benchmark's no-op row measures its speed), with the one-line-per-certificate output.

use std::net::{TcpListener, UdpSocket};

use crate::support::{TestEnv, cert_section};
use brokercert_sandbox::SandboxOptions;

/// Certificates in the fleet (enough for the per-certificate path to repeat).
const N: usize = 12;

/// Connections made to `tcp` and datagrams sent to `udp` so far. Nothing accepts or
/// answers: the kernel completes a TCP handshake into the listen backlog and queues a
/// datagram, and both are counted (without blocking) afterwards.
fn knocks(tcp: &TcpListener, udp: &UdpSocket) -> usize {
    tcp.set_nonblocking(true).expect("nonblocking listener");
    udp.set_nonblocking(true).expect("nonblocking socket");
    let mut n = 0;
    while tcp.accept().is_ok() {
        n += 1;
    }
    let mut buf = [0u8; 1500];
    while udp.recv(&mut buf).is_ok() {
        n += 1;
    }
    n
}

/// Modification times of every file under `dir` but the run lock (which holds the
/// running command's PID), sorted by path.
fn mtimes(dir: &std::path::Path) -> Vec<(std::path::PathBuf, std::time::SystemTime)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).expect("read state dir").flatten() {
            let meta = std::fs::symlink_metadata(e.path()).expect("stat");
            if meta.is_dir() {
                todo.push(e.path());
            } else if e.file_name() != ".lock" {
                out.push((e.path(), meta.modified().expect("mtime")));
            }
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_noop_renew_over_a_fleet_makes_no_connection_and_writes_nothing() {
    let env = TestEnv::start(SandboxOptions::new().zone("example.test")).await;
    let sections: String = (0..N)
        .map(|i| {
            cert_section(
                &format!("n{i}"),
                &[&format!("n{i}.example.test")],
                "key_type = \"ecdsa-p256\"",
            )
        })
        .collect();
    let cfg = env.config(&sections);
    let arg = cfg.to_str().expect("utf-8 path");
    env.run(&["renew", "--no-jitter", "--force", "--config", arg])
        .await
        .assert_ok();
    // The first plain run asks the CA for its renewal window (ARI) and remembers the answer.
    env.run(&["renew", "--no-jitter", "--config", arg])
        .await
        .assert_ok();

    // Now the CA, Route 53 and the DNS server are ports that only count.
    let tcp = TcpListener::bind("127.0.0.1:0").expect("bind tcp");
    let udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    let tcp_at = tcp.local_addr().expect("tcp addr");
    let udp_at = udp.local_addr().expect("udp addr");
    let text = std::fs::read_to_string(&cfg)
        .expect("config")
        .replace(
            &env.sb.acme_directory_url(),
            &format!("https://{tcp_at}/dir"),
        )
        .replace(&env.sb.route53_endpoint(), &format!("http://{tcp_at}"))
        .replace(&env.sb.dns_addr().to_string(), &udp_at.to_string());
    std::fs::write(&cfg, text).expect("rewrite config");
    let before = mtimes(&env.state_dir());
    let r = env
        .run_with_env(
            &["renew", "--no-jitter", "--config", arg],
            &[("AWS_ENDPOINT_URL_ROUTE_53", &format!("http://{tcp_at}"))],
        )
        .await;
    r.assert_ok();
    assert_eq!(
        r.stdout.matches(": not due — renews from").count(),
        N,
        "{}",
        r.stdout
    );
    assert_eq!(
        r.stdout.lines().count(),
        N,
        "one line per certificate:\n{}",
        r.stdout
    );
    assert!(!r.stderr.contains("warning"), "{}", r.stderr);
    assert_eq!(knocks(&tcp, &udp), 0, "the no-op run reached the network");
    assert_eq!(
        mtimes(&env.state_dir()),
        before,
        "the no-op run wrote state"
    );
}

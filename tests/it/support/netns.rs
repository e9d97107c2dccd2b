//! Hostile networks for tests: running a test body inside a fresh network namespace
//! (`unshare -n`, as root) that has only `lo`, IPv6 switched off, and optional nftables
//! rules, so the sandbox DNS server can be a zone's "nameservers" on port 53 at 127.0.0.2…
//!
//! How ([`in_namespace`]): a test starts this same test binary again under `unshare --net`,
//! selecting only itself, with [`SCENARIO_ENV`] naming it; run that way, the test calls
//! [`prepare_namespace`] and runs its body, which starts the whole sandbox (Pebble, moto, the
//! DNS server) inside the namespace, which has its own loopback. No test is left ignored.
//! Nothing here can reach the host's network: the namespace has no other interface.
//!
//! A machine that cannot create namespaces fails these tests with the reason; they never skip.
#![allow(dead_code)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Names the scenario the child test runs (set only by [`run_in_namespace`]).
pub const SCENARIO_ENV: &str = "BROKERCERT_NETNS_SCENARIO";

/// How long one scenario may take in all.
const SCENARIO_LIMIT: Duration = Duration::from_secs(240);

/// The test `name`'s `body`, run inside a new network namespace: outside one (no
/// [`SCENARIO_ENV`]), starts this test binary again under `unshare --net` selecting only
/// `name` and panics with its output unless it passed; inside (the variable names `name`),
/// prepares the namespace and runs `body` on a runtime.
pub fn in_namespace<F: std::future::Future<Output = ()>>(name: &str, body: fn() -> F) {
    match std::env::var(SCENARIO_ENV) {
        Ok(s) if s == name => {
            prepare_namespace();
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            rt.block_on(body());
        }
        Ok(other) => panic!("`{name}` started in the namespace made for `{other}`"),
        Err(_) => run_in_namespace(&test_path(name), name),
    }
}

/// The full name of the running test `name` (`netns::name` in the one test binary), which
/// libtest gives the thread it runs the test on; `name` itself when that is not known.
fn test_path(name: &str) -> String {
    match std::thread::current().name() {
        Some(t) if t == name || t.ends_with(&format!("::{name}")) => t.to_owned(),
        _ => name.to_owned(),
    }
}

/// Runs `child_test` of this test binary inside a new network namespace with
/// `SCENARIO_ENV=scenario`, and panics with its output unless it passed.
fn run_in_namespace(child_test: &str, scenario: &str) {
    let probe = Command::new("unshare")
        .args(["--net", "--", "true"])
        .output();
    match probe {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "cannot create a network namespace (`unshare --net true` exited with {}: {}). These \
             tests need root on Linux (CI runs as root): run them as root, or in a container \
             started with CAP_SYS_ADMIN and CAP_NET_ADMIN",
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => panic!(
            "cannot create a network namespace: `unshare` (util-linux) could not be run ({e}). \
             Install util-linux and run these tests as root"
        ),
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut child = Command::new("unshare")
        .arg("--net")
        .arg("--")
        .arg(exe)
        .args([child_test, "--exact", "--nocapture", "--test-threads=1"])
        .env(SCENARIO_ENV, scenario)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the test binary under unshare --net");
    let started = Instant::now();
    // Read the pipes on threads so a chatty child never blocks on a full pipe.
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut out, &mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut s);
        s
    });
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the namespace child") {
            break status;
        }
        if started.elapsed() > SCENARIO_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("scenario `{scenario}` did not finish within {SCENARIO_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (out, err) = (
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    );
    assert!(
        status.success() && out.contains("1 passed"),
        "scenario `{scenario}` failed inside its network namespace ({status})\n\
         stdout:\n{out}\nstderr:\n{err}"
    );
}

/// Inside the namespace: `lo` up, IPv6 off (an IPv4-only runner). Panics naming the command
/// that failed.
pub fn prepare_namespace() {
    // A fresh namespace has only `lo`; make sure this really is one before touching it.
    let links = sh("ip", &["-o", "link", "show"]);
    assert!(
        links.lines().count() == 1 && links.contains("lo:"),
        "refusing to change the network: this is not a fresh network namespace (links: {links})"
    );
    sh("ip", &["link", "set", "lo", "up"]);
    for key in [
        "net.ipv6.conf.all.disable_ipv6=1",
        "net.ipv6.conf.default.disable_ipv6=1",
        "net.ipv6.conf.lo.disable_ipv6=1",
    ] {
        sh("sysctl", &["-qw", key]);
    }
}

/// Loads nftables rules (the text of an `nft -f` file) into the namespace.
pub fn nft(rules: &str) {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run `nft` ({e}): install Debian's `nftables` (.ci/install does)")
        });
    std::io::Write::write_all(child.stdin.as_mut().expect("stdin"), rules.as_bytes())
        .expect("write the nft rules");
    let out = child.wait_with_output().expect("nft output");
    assert!(
        out.status.success(),
        "nft refused the rules:\n{rules}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Packets counted by the nftables rule commented `comment` (0 when absent).
pub fn nft_counter(comment: &str) -> u64 {
    let ruleset = sh("nft", &["list", "ruleset"]);
    ruleset
        .lines()
        .find(|l| l.contains(&format!("comment \"{comment}\"")))
        .and_then(|l| l.split("packets ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn sh(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{program}`: {e}"));
    assert!(
        out.status.success(),
        "`{program} {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

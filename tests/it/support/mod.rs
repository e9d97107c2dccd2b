//! Shared test support: a sandbox per test, a configuration pointing at it, and running
//! the real `brokercert` binary with a bounded time.
#![allow(dead_code)]

pub mod cloud;
pub mod golden;
pub mod netns;
pub mod stall;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use brokercert::pki::bundle::parse_bundle;
use brokercert::pki::certificate::Certificate;
use brokercert_sandbox::{Sandbox, SandboxOptions};

/// A running sandbox plus a scratch directory for configuration and state.
pub struct TestEnv {
    pub sb: Sandbox,
    pub work: tempfile::TempDir,
    /// Route 53 endpoint for the binary instead of the sandbox's moto (e.g. a fault proxy):
    /// `AWS_ENDPOINT_URL_ROUTE_53` beats the file's `route53.endpoint_url`.
    route53_endpoint: std::sync::Mutex<Option<String>>,
}

impl TestEnv {
    pub async fn start(options: SandboxOptions) -> Self {
        let sb = Sandbox::start(options)
            .await
            .expect("sandbox starts (run .ci/install first)");
        let work = tempfile::tempdir().expect("temp dir");
        Self {
            sb,
            work,
            route53_endpoint: std::sync::Mutex::new(None),
        }
    }

    pub fn state_dir(&self) -> PathBuf {
        self.work.path().join("state")
    }

    pub fn live(&self, name: &str, file: &str) -> PathBuf {
        self.state_dir().join("live").join(name).join(file)
    }

    /// Writes a configuration pointing at the sandbox, with `certificates` appended
    /// (TOML `[[certificate]]` sections), and returns its path.
    pub fn config(&self, certificates: &str) -> PathBuf {
        let text = format!(
            r#"state_dir = "{state}"

[acme]
directory = "{dir}"
email = "ops@example.test"
agree_tos = true
https_roots = ["{tls}"]
order_timeout = "60s"

[route53]
endpoint_url = "{r53}"
change_timeout = "30s"

[dns]
nameservers = ["{dns}"]
propagation_timeout = "20s"

[trust]
extra_roots = ["{roots}"]
system_roots = false

{certificates}
"#,
            state = self.state_dir().display(),
            dir = self.sb.acme_directory_url(),
            tls = self.sb.pebble_tls_ca_path().display(),
            r53 = self.sb.route53_endpoint(),
            dns = self.sb.dns_addr(),
            roots = self.sb.pebble_roots_path().display(),
        );
        let path = self.work.path().join("brokercert.toml");
        std::fs::write(&path, text).expect("write config");
        path
    }

    /// Makes later runs reach Route 53 at `url` (a proxy in front of moto).
    pub fn use_route53_endpoint(&self, url: &str) {
        *self.route53_endpoint.lock().expect("lock") = Some(url.to_string());
    }

    /// Runs `brokercert ARGS` with the sandbox's AWS environment; kills it after 120 s.
    pub async fn run(&self, args: &[&str]) -> Run {
        self.run_with_env(args, &[]).await
    }

    /// Like `run`, with extra environment variables.
    pub async fn run_with_env(&self, args: &[&str], extra_env: &[(&str, &str)]) -> Run {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_brokercert"));
        cmd.args(args);
        self.run_command(cmd, extra_env).await
    }

    /// Like `run`, with the binary started under `umask` (e.g. "000"), through
    /// `sh -c 'umask …; exec …'`.
    pub async fn run_with_umask(&self, umask: &str, args: &[&str]) -> Run {
        let mut cmd = std::process::Command::new("sh");
        cmd.arg("-c")
            .arg(format!("umask {umask} && exec \"$0\" \"$@\""))
            .arg(env!("CARGO_BIN_EXE_brokercert"))
            .args(args);
        self.run_command(cmd, &[]).await
    }

    /// Runs `cmd` (the binary, with its arguments) with the sandbox's AWS environment and
    /// `extra_env`; kills it after 120 s.
    async fn run_command(&self, mut cmd: std::process::Command, extra_env: &[(&str, &str)]) -> Run {
        cmd.env_remove("BROKERCERT_CONFIG")
            .env_remove("BROKERCERT_STATE_DIR")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        self.sb.configure_command(&mut cmd);
        if let Some(url) = self.route53_endpoint.lock().expect("lock").clone() {
            cmd.env("AWS_ENDPOINT_URL_ROUTE_53", url);
        }
        cmd.envs(extra_env.iter().copied());
        let child = tokio::process::Command::from(cmd)
            .kill_on_drop(true)
            .spawn()
            .expect("spawn brokercert");
        let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
            .await
            .expect("brokercert finished within 120 s")
            .expect("brokercert output");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Names of `_acme-challenge` record sets left in any sandbox zone.
    pub async fn challenge_records_left(&self) -> Vec<String> {
        let mut left = Vec::new();
        for (_, id) in self.sb.zones() {
            for r in self.sb.list_records(id).await.expect("list records") {
                if r.name.starts_with("_acme-challenge") && r.rtype == "TXT" {
                    left.push(format!("{} {:?}", r.name, r.values));
                }
            }
        }
        left
    }

    /// Every file under the state directory (relative paths), to prove nothing was written.
    /// The lock file (`renewal/.lock`) is left out: every writing command takes it first, it
    /// holds only the holder's PID and command, and deleting it on exit would let two
    /// processes hold the lock at once.
    pub fn state_files(&self) -> Vec<String> {
        fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
            let Ok(rd) = std::fs::read_dir(dir) else {
                return;
            };
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, base, out);
                } else if p != base.join("renewal").join(".lock") {
                    out.push(p.strip_prefix(base).unwrap_or(&p).display().to_string());
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.state_dir(), &self.state_dir(), &mut out);
        out.sort();
        out
    }
}

/// The EMQX Cloud emulator (under the scratch directory) with one dedicated deployment `id`
/// reachable with `key`/`secret`, its hourly budgets lifted to 1000 (tests that make many
/// calls; a test of the budget sets its own).
pub async fn emqx_with_deployment(
    env: &TestEnv,
    id: &str,
    key: &str,
    secret: &str,
) -> brokercert_sandbox::EmqxCloudEmulator {
    use brokercert_sandbox::{DeploymentSpec, EmqxCloudEmulator};
    let emu = EmqxCloudEmulator::start(env.work.path().join("emqx"))
        .await
        .expect("emulator");
    emu.add_deployment(DeploymentSpec::dedicated(id, key, secret))
        .expect("deployment");
    emu.set_budgets(LIFTED_BUDGETS);
    emu
}

/// EMQX Cloud budgets for tests that make many calls (the documented ones are 6 writes an
/// hour; a test of the budget sets its own).
pub const LIFTED_BUDGETS: brokercert_sandbox::Budgets = brokercert_sandbox::Budgets {
    writes: 1000,
    reads: 1000,
    window: Duration::from_secs(3600),
};

/// The outcome of one `brokercert` run.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn assert_ok(&self) -> &Self {
        assert_eq!(
            self.code, 0,
            "brokercert failed\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "unexpected exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// Runs `brokercert ARGS` without a sandbox: no configuration or state directory from the
/// environment, no colour, no standard input, plus `env`.
pub fn run_plain(args: &[&str], env: &[(&str, &str)]) -> Run {
    run_plain_in(Path::new("."), args, env)
}

/// [`run_plain`] in the working directory `dir` (where `./brokercert.toml` is looked for).
pub fn run_plain_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_brokercert"))
        .args(args)
        .current_dir(dir)
        .env_remove("BROKERCERT_CONFIG")
        .env_remove("BROKERCERT_STATE_DIR")
        .env("NO_COLOR", "1")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run brokercert");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Parses a PEM file into certificates.
pub fn certs(path: &Path) -> Vec<Certificate> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    parse_bundle(&bytes).expect("PEM parses").certificates
}

pub fn cert_section(name: &str, domains: &[&str], extra: &str) -> String {
    let domains = domains
        .iter()
        .map(|d| format!("\"{d}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!("[[certificate]]\nname = \"{name}\"\ndomains = [{domains}]\n{extra}\n")
}

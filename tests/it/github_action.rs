//! The composite action (`action.yml`) run the way GitHub runs it: each `run:` step by bash
//! with the step's `env:` (its `${{ }}` expressions filled in from the inputs and earlier
//! steps' outputs), `GITHUB_PATH`/`GITHUB_OUTPUT`/`GITHUB_STEP_SUMMARY` as files, and the
//! release assets served from 127.0.0.1 by a local HTTP server: the test binary packaged as
//! the release workflow packages it, with its `SHA256SUMS`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::support::{TestEnv, cert_section};
use brokercert_sandbox::SandboxOptions;

const VERSION: &str = "v9.9.9";

fn target() -> (&'static str, &'static str) {
    match std::env::consts::ARCH {
        "aarch64" => ("ARM64", "aarch64-unknown-linux-musl"),
        _ => ("X64", "x86_64-unknown-linux-musl"),
    }
}

/// `<root>/v9.9.9/{brokercert-v9.9.9-TARGET.tar.gz, SHA256SUMS}` holding `binary`; with
/// `tamper`, the tarball is replaced afterwards by one holding `tamper` instead.
fn release(root: &Path, binary: &Path, tamper: Option<&str>) {
    let dir = root.join(VERSION);
    let name = format!("brokercert-{VERSION}-{}", target().1);
    let stage = root.join("stage");
    let pack = |content: &dyn Fn(&Path)| {
        let _ = std::fs::remove_dir_all(&stage);
        std::fs::create_dir_all(stage.join(&name)).unwrap();
        content(&stage.join(&name).join("brokercert"));
        std::fs::create_dir_all(&dir).unwrap();
        let ok = Command::new("tar")
            .arg("-C")
            .arg(&stage)
            .arg("-czf")
            .arg(dir.join(format!("{name}.tar.gz")))
            .arg(&name)
            .status()
            .unwrap();
        assert!(ok.success());
    };
    pack(&|p| {
        std::fs::copy(binary, p).unwrap();
    });
    let sums = Command::new("sha256sum")
        .arg(format!("{name}.tar.gz"))
        .current_dir(&dir)
        .output()
        .unwrap();
    std::fs::write(dir.join("SHA256SUMS"), sums.stdout).unwrap();
    if let Some(script) = tamper {
        pack(&|p| {
            std::fs::write(p, script).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
        });
    }
}

/// `python3 -m http.server` on 127.0.0.1 serving `root`; killed on drop.
struct Server(std::process::Child, u16);

impl Server {
    fn start(root: &Path) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new("python3")
            .args(["-m", "http.server", "--bind", "127.0.0.1"])
            .arg(port.to_string())
            .arg("--directory")
            .arg(root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m http.server");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Server(child, port);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("the HTTP server did not start");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The runner's files and directories for one job.
struct Runner {
    temp: tempfile::TempDir,
    tool_cache: PathBuf,
}

impl Runner {
    fn new(tool_cache: &Path) -> Runner {
        Runner {
            temp: tempfile::tempdir().unwrap(),
            tool_cache: tool_cache.to_path_buf(),
        }
    }

    fn file(&self, name: &str) -> PathBuf {
        let p = self.temp.path().join(name);
        if !p.exists() {
            std::fs::write(&p, "").unwrap();
        }
        p
    }

    /// Runs the action's steps; returns (exit code of the first failing step or 0, all
    /// output).
    fn run_action(
        &self,
        inputs: &[(&str, String)],
        extra_env: &[(String, String)],
    ) -> (i32, String) {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/action.yml")).unwrap();
        let doc = &yaml_rust2::YamlLoader::load_from_str(&text).expect("action.yml is YAML")[0];
        let mut values: BTreeMap<String, String> = BTreeMap::new();
        for (k, v) in doc["inputs"].as_hash().expect("inputs") {
            let default = v["default"].as_str().unwrap_or("").to_string();
            values.insert(format!("inputs.{}", k.as_str().unwrap()), default);
        }
        for (k, v) in inputs {
            values.insert(format!("inputs.{k}"), v.clone());
        }
        values.insert("github.action_repository".into(), "owner/brokercert".into());
        values.insert("github.server_url".into(), "https://github.invalid".into());
        let mut output = String::new();
        for step in doc["runs"]["steps"].as_vec().expect("steps") {
            let script = step["run"].as_str().expect("every step runs a script");
            assert!(!script.contains("${{"), "expression inside run:");
            let github_output = self.temp.path().join("output");
            std::fs::write(&github_output, "").unwrap();
            let mut cmd = Command::new("bash");
            cmd.args(["--noprofile", "--norc", "-eo", "pipefail", "-c", script])
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("HOME", self.temp.path())
                .env("RUNNER_TEMP", self.temp.path())
                .env("RUNNER_TOOL_CACHE", &self.tool_cache)
                .env("RUNNER_ARCH", target().0)
                .env("GITHUB_PATH", self.file("path"))
                .env("GITHUB_OUTPUT", &github_output)
                .env("GITHUB_STEP_SUMMARY", self.file("summary.md"))
                .env("CI", "true");
            for (k, v) in step["env"].as_hash().into_iter().flatten() {
                let v = v.as_str().unwrap_or("");
                let filled = match v
                    .trim()
                    .strip_prefix("${{")
                    .and_then(|r| r.strip_suffix("}}"))
                {
                    Some(expr) => values
                        .get(expr.trim())
                        .cloned()
                        .unwrap_or_else(|| panic!("action.yml uses `{v}`, unknown to this test")),
                    None => v.to_string(),
                };
                cmd.env(k.as_str().unwrap(), filled);
            }
            cmd.envs(extra_env.iter().map(|(k, v)| (k, v)));
            let out = cmd.output().unwrap();
            output.push_str(&String::from_utf8_lossy(&out.stdout));
            output.push_str(&String::from_utf8_lossy(&out.stderr));
            if !out.status.success() {
                return (out.status.code().unwrap_or(-1), output);
            }
            if let Some(id) = step["id"].as_str() {
                for line in std::fs::read_to_string(&github_output).unwrap().lines() {
                    if let Some((k, v)) = line.split_once('=') {
                        values.insert(format!("steps.{id}.outputs.{k}"), v.to_string());
                    }
                }
            }
        }
        (0, output)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_action_downloads_verifies_caches_and_renews_and_refuses_a_tampered_binary() {
    let env = TestEnv::start(SandboxOptions::new().zone("zone1.test")).await;
    let cfg = env.config(&cert_section("mqtt-prod", &["mqtt.zone1.test"], ""));
    let releases = env.work.path().join("releases");
    release(&releases, Path::new(env!("CARGO_BIN_EXE_brokercert")), None);
    let server = Server::start(&releases);
    let url = format!("http://127.0.0.1:{}", server.1);
    let aws = env.sb.aws_env();
    let inputs = [
        ("version", VERSION.to_string()),
        ("config", cfg.display().to_string()),
        ("args", "--no-jitter".to_string()),
        ("release-url", url.clone()),
    ];

    let cache = env.work.path().join("tool-cache");
    let runner = Runner::new(&cache);
    let (code, out) = runner.run_action(&inputs, &aws);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("brokercert {VERSION} installed in")),
        "{out}"
    );
    assert!(
        out.contains("mqtt-prod: renewed (nothing deployed yet)"),
        "{out}"
    );
    let summary = std::fs::read_to_string(runner.file("summary.md")).unwrap();
    assert!(summary.contains("| `mqtt-prod` | ✅"), "{summary}");
    let path = std::fs::read_to_string(runner.file("path")).unwrap();
    assert!(path.trim().ends_with(target().1), "{path}");

    // A later job on the same runner image: the tool cache has it, nothing is downloaded.
    drop(server);
    let (code, out) = Runner::new(&cache).run_action(&inputs, &aws);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("from the tool cache"), "{out}");
    assert!(out.contains("mqtt-prod: not due"), "{out}");

    // A tampered tarball (SHA256SUMS unchanged) fails the step before anything runs.
    let evil_marker = env.work.path().join("evil-ran");
    release(
        &releases,
        Path::new(env!("CARGO_BIN_EXE_brokercert")),
        Some(&format!("#!/bin/sh\ntouch '{}'\n", evil_marker.display())),
    );
    let server = Server::start(&releases);
    let inputs = [
        ("version", VERSION.to_string()),
        ("release-url", format!("http://127.0.0.1:{}", server.1)),
    ];
    let (code, out) = Runner::new(&env.work.path().join("fresh-cache")).run_action(&inputs, &aws);
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains("checksum mismatch for brokercert-v9.9.9-")
            && out.contains("refusing to run it"),
        "{out}"
    );
    assert!(!evil_marker.exists(), "the tampered binary ran");
}

//! `brokercert --version`: the package version and, when built from a git checkout, the
//! commit (build.rs). Owns only that check.

use std::path::Path;
use std::process::Command;

#[test]
fn version_names_the_package_version_and_the_commit_when_built_from_git() {
    let out = Command::new(env!("CARGO_BIN_EXE_brokercert"))
        .arg("--version")
        .output()
        .expect("run brokercert --version");
    assert!(out.status.success(), "exit {:?}", out.status);
    let text = String::from_utf8(out.stdout).expect("UTF-8 version");
    let line = text.trim_end();
    let plain = format!("brokercert {}", env!("CARGO_PKG_VERSION"));

    let dir = env!("CARGO_MANIFEST_DIR");
    let head = Path::new(dir)
        .join(".git")
        .exists()
        .then(|| {
            Command::new("git")
                .args(["-C", dir, "rev-parse", "--short", "HEAD"])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        })
        .flatten();
    match head {
        Some(commit) => assert_eq!(line, format!("{plain} ({commit})")),
        None => assert_eq!(line, plain),
    }
}

//! Build script: the version `brokercert --version` prints, with the git commit when built
//! from a git checkout, and the function layout of release binaries.
//!
//! Owns: `BROKERCERT_VERSION` (`0.1.0`, or `0.1.0 (1a2b3c4)` from `git rev-parse --short
//! HEAD`) and when to recompute it; passing build/symbol-order.txt to the linker (see
//! [`symbol_order`]). Does not own anything else: no code generation.
//!
//! Only a `.git` in the package's own directory counts (a checkout or a worktree): a crate
//! unpacked from crates.io or `cargo package` (target/package/…, inside some other checkout)
//! gets the plain version. No git, a failing git or an odd output: the plain version, silently.
//! The script re-runs when HEAD moves (a commit, a checkout): it watches the files git changes
//! then, found with `git rev-parse --git-path` so a worktree's HEAD and the shared refs are both
//! right. Only existing files are watched: a missing one would make cargo re-run it, and so
//! rebuild the crate, on every build.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let version = env!("CARGO_PKG_VERSION");
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let commit = if dir.join(".git").exists() {
        watch_head(&dir);
        git(&dir, &["rev-parse", "--short", "HEAD"])
            .filter(|c| !c.is_empty() && c.chars().all(|ch| ch.is_ascii_hexdigit()))
    } else {
        None
    };
    match commit {
        Some(c) => println!("cargo:rustc-env=BROKERCERT_VERSION={version} ({c})"),
        None => println!("cargo:rustc-env=BROKERCERT_VERSION={version}"),
    }
    symbol_order(&dir);
}

/// Release builds for x86_64-unknown-linux-gnu (linked by rust-lld) get
/// `--symbol-ordering-file=build/symbol-order.txt`: the functions an issuance, a no-op renew
/// and `--version` execute, placed together at the start of the code, so the pages the kernel
/// maps around each code fault hold code that runs (peak memory; docs/performance.md, "Peak
/// memory"). .ci/symbol-order regenerates the file. Names it lists that a build lacks (a
/// stale file, other features) are skipped without a warning: the layout benefit shrinks,
/// the binary stays correct. Only the `brokercert` binary (not tests, examples or debug
/// builds), only when the file exists (not in a crate unpacked from crates.io), and not with
/// `BROKERCERT_NO_SYMBOL_ORDER` set (for a linker other than lld or mold).
fn symbol_order(dir: &Path) {
    let file = dir.join("build").join("symbol-order.txt");
    println!("cargo:rerun-if-env-changed=BROKERCERT_NO_SYMBOL_ORDER");
    // Watched only if present, like watch_head's files (a checkout that gains it has a new
    // HEAD, which re-runs this script anyway).
    if !file.is_file() {
        return;
    }
    println!("cargo:rerun-if-changed={}", file.display());
    let release = std::env::var("PROFILE").is_ok_and(|p| p == "release");
    let lld_target = std::env::var("TARGET").is_ok_and(|t| t == "x86_64-unknown-linux-gnu");
    if release && lld_target && std::env::var_os("BROKERCERT_NO_SYMBOL_ORDER").is_none() {
        println!(
            "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={},--no-warn-symbol-ordering",
            file.display()
        );
    }
}

/// Asks cargo to re-run this script when this checkout's HEAD moves: HEAD itself (a checkout
/// of another branch), its reflog (every commit, reset or checkout writes it, also when the
/// branch is packed), the branch's ref file and packed-refs. Not the whole refs/ directory: in
/// a repository with several worktrees a commit on another branch must not rebuild this one.
fn watch_head(dir: &Path) {
    let mut files = vec![".git".to_owned()];
    for name in ["HEAD", "logs/HEAD", "packed-refs"] {
        if let Some(p) = git(dir, &["rev-parse", "--git-path", name]) {
            files.push(p);
        }
    }
    if let Some(branch) = git(dir, &["symbolic-ref", "-q", "HEAD"])
        && let Some(p) = git(dir, &["rev-parse", "--git-path", &branch])
    {
        files.push(p);
    }
    for f in files {
        let path = dir.join(&f);
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}

/// `git -C dir ARGS`, trimmed stdout; `None` when git is missing or fails.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?;
    Some(s.trim().to_owned())
}

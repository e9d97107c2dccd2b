//! Issue #17, items 3 and 16, through the real binary: the state directory is used only
//! when it is the user's own (no link planted in it is followed, no directory others may
//! write is written into), and what brokercert creates has its mode whatever the umask.

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{TestEnv, cert_section};
use brokercert::error::exit;
use brokercert_sandbox::SandboxOptions;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, PKCS_ECDSA_P256_SHA256,
};

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o7777
}

fn set_mode(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Every path under `dir` (not following links), `dir` excluded.
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out.sort();
    out
}

/// `issue --name planted` exits 7 with every one of `parts` in its message.
async fn issue_is_refused(env: &TestEnv, cfg: &str, parts: &[&str]) {
    let run = env
        .run(&["issue", "--config", cfg, "--name", "planted"])
        .await;
    run.assert_code(exit::STORE);
    for part in parts {
        assert!(
            run.stderr.contains(part),
            "`{part}` missing:\n{}",
            run.stderr
        );
    }
}

/// One sandbox for the refusals and the umask run: `issue` refuses a planted lock link, a
/// state directory others may write and a linked `archive/<name>`, and under umask 000 a
/// fresh state directory still comes out 0700 with 0600 secrets.
#[tokio::test(flavor = "multi_thread")]
async fn issue_refuses_planted_links_and_shared_state_and_ignores_the_umask() {
    let env = TestEnv::start(SandboxOptions::new().zone("zone1.test")).await;
    let cfg = env.config(&format!(
        "{}{}",
        cert_section(
            "planted",
            &["planted.zone1.test"],
            "key_type = \"ecdsa-p256\""
        ),
        cert_section(
            "private",
            &["private.zone1.test"],
            "key_type = \"ecdsa-p256\""
        ),
    ));
    let cfg = cfg.to_str().unwrap();
    let state = env.state_dir();

    // 1. `renewal/.lock` is a link to another file: refused, and that file is untouched
    //    (before, the run truncated it and wrote its PID there).
    let victim = env.work.path().join("victim.conf");
    std::fs::write(&victim, "precious = true\n").unwrap();
    std::fs::create_dir_all(state.join("renewal")).unwrap();
    let lock = state.join("renewal/.lock");
    symlink(&victim, &lock).unwrap();
    issue_is_refused(
        &env,
        cfg,
        &[
            "refusing to use",
            "renewal/.lock",
            "symbolic link to",
            "victim.conf",
            "which brokercert did not make",
            &format!("`rm {}`", lock.display()),
        ],
    )
    .await;
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "precious = true\n"
    );
    assert!(env.challenge_records_left().await.is_empty());
    std::fs::remove_file(&lock).unwrap();

    // 2. A state directory others may write: refused with the chmod to run, nothing written.
    set_mode(&state, 0o777);
    let before = env.state_files();
    issue_is_refused(
        &env,
        cfg,
        &[
            &format!("refusing to use `{}`", state.display()),
            "mode 0777 (writable by its group and others)",
            "(the user running brokercert)",
            &format!("`chmod 700 {}`", state.display()),
        ],
    )
    .await;
    assert_eq!(env.state_files(), before);
    assert_eq!(mode(&state), 0o777, "changed anyway");
    set_mode(&state, 0o700);

    // 3. `archive/<name>` links to a directory elsewhere: the private key is not written
    //    there (before, the run made it 0700 and stored the whole version in it).
    let elsewhere = env.work.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    set_mode(&elsewhere, 0o755);
    std::fs::create_dir_all(state.join("archive")).unwrap();
    symlink(&elsewhere, state.join("archive/planted")).unwrap();
    issue_is_refused(
        &env,
        cfg,
        &[
            &format!(
                "refusing to use `{}`",
                state.join("archive/planted").display()
            ),
            "symbolic link to",
            "elsewhere",
        ],
    )
    .await;
    assert!(entries(&elsewhere).is_empty(), "{:?}", entries(&elsewhere));
    assert_eq!(mode(&elsewhere), 0o755);
    assert!(!state.join("live/planted").exists());
    assert!(env.challenge_records_left().await.is_empty());

    // 4. Under umask 000, a fresh state directory: every directory 0700, the key, the
    //    account and the lock 0600, the certificates 0644.
    let fresh = env.work.path().join("fresh-state");
    let run = env
        .run_with_umask(
            "000",
            &[
                "issue",
                "--config",
                cfg,
                "--name",
                "private",
                "--state-dir",
                fresh.to_str().unwrap(),
            ],
        )
        .await;
    run.assert_ok();
    assert_eq!(mode(&fresh), 0o700);
    let mut seen_lock = false;
    let mut seen_account = false;
    for p in tree(&fresh) {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let meta = std::fs::symlink_metadata(&p).unwrap();
        let expected = if meta.is_dir() {
            0o700
        } else if meta.file_type().is_symlink() {
            continue;
        } else if name.ends_with(".pem") && name != "privkey.pem" {
            0o644
        } else {
            seen_lock |= name == ".lock";
            seen_account |= name.ends_with(".json") && p.starts_with(fresh.join("accounts"));
            0o600
        };
        assert_eq!(mode(&p), expected, "{}", p.display());
    }
    assert!(seen_lock && seen_account, "{:?}", tree(&fresh));
    assert!(fresh.join("live/private/privkey.pem").is_file());
}

/// `split --out NEW` under umask 000: the new directory (and its missing parents) 0755,
/// not 0777; the certificates 0644.
#[test]
fn split_makes_its_output_directory_0755_under_umask_000() {
    let tmp = tempfile::tempdir().unwrap();
    let mut ca = CertificateParams::default();
    ca.distinguished_name
        .push(DnType::CommonName, "Umask Test Root");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let root = ca.self_signed(&ca_key).unwrap().pem();
    let leaf_params = CertificateParams::new(vec!["mqtt.example.test".to_string()]).unwrap();
    let leaf = leaf_params
        .signed_by(
            &KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap(),
            &Issuer::from_params(&ca, &ca_key),
        )
        .unwrap()
        .pem();
    let bundle = tmp.path().join("bundle.pem");
    std::fs::write(&bundle, format!("{leaf}{root}")).unwrap();
    let out = tmp.path().join("new/certs");

    let run = Command::new("sh")
        .arg("-c")
        .arg("umask 000 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_brokercert"))
        .args(["split", bundle.to_str().unwrap(), "--out"])
        .arg(&out)
        .env_remove("BROKERCERT_CONFIG")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(mode(&tmp.path().join("new")), 0o755);
    assert_eq!(mode(&out), 0o755);
    for f in ["cert.pem", "chain.pem", "root.pem"] {
        assert_eq!(mode(&out.join(f)), 0o644, "{f}");
    }
}

//! Issue #17 (security hardening), files on disk, with the real binary:
//! - the `files` target's rollback after a failed reload puts back each previous file's
//!   content, owner, group and mode exactly, never deletes a file it could not keep a copy
//!   of, and says which files it put back;
//! - a destination that is a symbolic link is written through (the link stays a link), a
//!   dangling link, a directory or a FIFO is refused before anything is written;
//! - `client-cert issue` never replaces another CA's `client-ca.crt` without `--force`;
//! - a failed rename part-way through `client-ca create --force` or `client-cert issue`
//!   leaves the previous CA key and client certificate as they were.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::Run;
use brokercert::error::exit;
use rcgen::{CertificateParams, DnType, KeyPair};

const HOST: &str = "mqtt.example.test";

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

fn is_root() -> bool {
    fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// Runs the binary (optionally through `setpriv` as another user), killed after 60 s: a
/// FIFO read by mistake blocks forever.
fn run_as(user: Option<(u32, u32)>, args: &[&str]) -> Run {
    let bin = env!("CARGO_BIN_EXE_brokercert");
    let mut cmd = match user {
        Some((uid, gid)) => {
            let mut c = Command::new("setpriv");
            c.arg(format!("--reuid={uid}"))
                .arg(format!("--regid={gid}"))
                .arg("--clear-groups")
                .arg("--")
                .arg(bin);
            c
        }
        None => Command::new(bin),
    };
    cmd.args(args)
        .env_remove("BROKERCERT_CONFIG")
        .env_remove("BROKERCERT_STATE_DIR")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn brokercert");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "brokercert {args:?} did not finish within 60 s\nstderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("output");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn run(args: &[&str]) -> Run {
    run_as(None, args)
}

/// A user of this machine other than root, with its primary group: `nobody` if present.
fn other_user() -> (String, u32, u32) {
    let passwd = fs::read_to_string("/etc/passwd").expect("/etc/passwd");
    let users: Vec<(String, u32, u32)> = passwd
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some((
                f.first()?.to_string(),
                f.get(2)?.parse().ok()?,
                f.get(3)?.parse().ok()?,
            ))
        })
        .filter(|(_, uid, gid)| *uid != 0 && *gid != 0)
        .collect();
    users
        .iter()
        .find(|(n, _, _)| n == "nobody")
        .or_else(|| users.first())
        .cloned()
        .expect("a user other than root in /etc/passwd")
}

/// A self-signed certificate for HOST and its key, as a certbot-like lineage directory.
fn lineage(dir: &Path) -> (String, String) {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let mut params = CertificateParams::new(vec![HOST.to_string()]).expect("params");
    params.distinguished_name.push(DnType::CommonName, HOST);
    let cert = params.self_signed(&key).expect("certificate").pem();
    fs::create_dir_all(dir).expect("lineage dir");
    fs::write(dir.join("cert.pem"), &cert).expect("cert.pem");
    fs::write(dir.join("privkey.pem"), key.serialize_pem()).expect("privkey.pem");
    (cert, key.serialize_pem())
}

/// A configuration with one files target writing `fullchain`, `chain` and `key` into `out`.
fn config(dir: &Path, out: &Path, extra: &str) -> PathBuf {
    let p = dir.join("brokercert.toml");
    fs::write(
        &p,
        format!(
            r#"state_dir = "{state}"

[[certificate]]
name = "broker"
domains = ["{HOST}"]

[[certificate.deploy]]
type = "files"
fullchain = "{out}/fullchain.pem"
chain = "{out}/chain.pem"
key = "{out}/key.pem"
{extra}
"#,
            state = dir.join("state").display(),
            out = out.display(),
        ),
    )
    .expect("config");
    p
}

fn deploy(cfg: &Path, from: &Path) -> Run {
    run(&["deploy", "broker", "--config", s(cfg), "--from", s(from)])
}

/// Content, owner, group and permission bits of a file.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    bytes: Vec<u8>,
    uid: u32,
    gid: u32,
    mode: u32,
}

fn snapshot(p: &Path) -> Snapshot {
    let m = fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    assert!(m.is_file(), "{} is a regular file", p.display());
    Snapshot {
        bytes: fs::read(p).expect("read"),
        uid: m.uid(),
        gid: m.gid(),
        mode: m.permissions().mode() & 0o7777,
    }
}

fn chown(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(p, Some(uid), Some(gid)).expect("chown");
}

fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).expect("chmod");
}

// ------------------------------------------------------------ item 4: rollback

#[test]
fn a_failed_reload_puts_back_owner_group_and_mode_exactly() {
    if !is_root() {
        eprintln!("skipped: giving files to another user needs root");
        return;
    }
    let (user, uid, gid) = other_user();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    fs::create_dir(&out).unwrap();
    let old = dir.path().join("old");
    lineage(&old);
    let owned = format!("owner = \"{user}\"\ngroup = \"{gid}\"");
    let ok = config(
        dir.path(),
        &out,
        &format!("{owned}\nkey_mode = \"0640\"\nreload = [\"true\"]"),
    );
    deploy(&ok, &old).assert_ok();
    // The previous key belongs to the broker's user, 0640; the chain is someone else's.
    let key = out.join("key.pem");
    let chain = out.join("chain.pem");
    chmod(&chain, 0o600);
    chown(&chain, 0, 0);
    let before_key = snapshot(&key);
    assert_eq!(
        (before_key.uid, before_key.gid, before_key.mode),
        (uid, gid, 0o640)
    );
    let before_chain = snapshot(&chain);
    let before_full = snapshot(&out.join("fullchain.pem"));

    let new = dir.path().join("new");
    lineage(&new);
    let failing = config(
        dir.path(),
        &out,
        &format!("{owned}\nkey_mode = \"0600\"\nreload = [\"false\"]"),
    );
    let r = deploy(&failing, &new);
    r.assert_code(exit::DEPLOY);
    assert_eq!(snapshot(&key), before_key, "the key as it was: {r:?}");
    assert_eq!(snapshot(&chain), before_chain, "the chain as it was: {r:?}");
    assert_eq!(snapshot(&out.join("fullchain.pem")), before_full);
    for p in [&out.join("fullchain.pem"), &chain, &key] {
        assert!(
            r.stderr.contains(&format!("`{}`", p.display())),
            "names {} among the files put back: {r:?}",
            p.display()
        );
    }
    assert!(
        r.stderr.contains(
            "the previous files were put back with their content, owner, group and mode:"
        ),
        "{r:?}"
    );
    let names: Vec<String> = fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 3, "no temporary files left: {names:?}");
}

#[test]
fn a_previous_file_that_cannot_be_read_is_never_deleted() {
    let dir = tempfile::tempdir().unwrap();
    chmod(dir.path(), 0o755);
    let out = dir.path().join("out");
    fs::create_dir(&out).unwrap();
    let old = dir.path().join("old");
    lineage(&old);
    let new = dir.path().join("new");
    lineage(&new);
    fs::write(
        out.join("fullchain.pem"),
        fs::read(old.join("cert.pem")).unwrap(),
    )
    .unwrap();
    let key = out.join("key.pem");
    fs::write(&key, "the broker's previous key\n").unwrap();
    chmod(&key, 0o600);
    let cfg = config(dir.path(), &out, "reload = [\"false\"]");
    // As root, run as another user who may write `out` but not read the key; otherwise
    // take the read permission from the file itself.
    let user = if is_root() {
        let (_, uid, gid) = other_user();
        for p in [dir.path(), &out, &out.join("fullchain.pem")] {
            chown(p, uid, gid);
        }
        Some((uid, gid))
    } else {
        chmod(&key, 0o000);
        None
    };
    let before_key = snapshot(&key);
    let before_full = snapshot(&out.join("fullchain.pem"));

    let r = run_as(
        user,
        &["deploy", "broker", "--config", s(&cfg), "--from", s(&new)],
    );
    assert_ne!(r.code, 0, "{r:?}");
    assert_eq!(
        snapshot(&key),
        before_key,
        "the unreadable key is kept: {r:?}"
    );
    assert_eq!(snapshot(&out.join("fullchain.pem")), before_full, "{r:?}");
    assert!(!out.join("chain.pem").exists(), "{r:?}");
    assert!(
        r.stderr
            .contains(&format!("cannot read `{}`", key.display()))
            && r.stderr.contains("nothing was written"),
        "{r:?}"
    );
}

#[test]
fn a_directory_or_a_fifo_at_a_destination_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    fs::create_dir(&out).unwrap();
    let new = dir.path().join("new");
    lineage(&new);
    fs::write(out.join("fullchain.pem"), "previous fullchain\n").unwrap();
    let cfg = config(dir.path(), &out, "reload = [\"true\"]");

    // A directory where the key goes.
    let key = out.join("key.pem");
    fs::create_dir(&key).unwrap();
    fs::write(key.join("inside"), "x").unwrap();
    let r = deploy(&cfg, &new);
    r.assert_code(exit::DEPLOY);
    assert!(
        r.stderr.contains(&format!(
            "`{}` is a directory, not a regular file",
            key.display()
        )) && r.stderr.contains("nothing was written"),
        "{r:?}"
    );
    assert!(key.join("inside").exists());
    assert_eq!(
        fs::read_to_string(out.join("fullchain.pem")).unwrap(),
        "previous fullchain\n"
    );
    assert!(!out.join("chain.pem").exists());
    fs::remove_dir_all(&key).unwrap();

    // A FIFO where the chain goes: never opened (reading it would block).
    let chain = out.join("chain.pem");
    let c = std::ffi::CString::new(s(&chain)).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let r = deploy(&cfg, &new);
    r.assert_code(exit::DEPLOY);
    assert!(
        r.stderr.contains(&format!(
            "`{}` is a FIFO, not a regular file",
            chain.display()
        )),
        "{r:?}"
    );
    assert!(fs::symlink_metadata(&chain).unwrap().file_type().is_fifo());
    assert!(!key.exists());
    assert_eq!(
        fs::read_to_string(out.join("fullchain.pem")).unwrap(),
        "previous fullchain\n"
    );
}

// ------------------------------------------------------------ symbolic links

#[test]
fn a_symlinked_destination_is_written_through_and_stays_a_link() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let keys = dir.path().join("keys");
    fs::create_dir(&out).unwrap();
    fs::create_dir(&keys).unwrap();
    let target = keys.join("mqtt.key");
    fs::write(&target, "the previous key\n").unwrap();
    chmod(&target, 0o640);
    let key = out.join("key.pem");
    std::os::unix::fs::symlink("../keys/mqtt.key", &key).unwrap();

    let first = dir.path().join("first");
    lineage(&first);
    let ok = config(dir.path(), &out, "reload = [\"true\"]");
    deploy(&ok, &first).assert_ok();
    assert!(
        fs::symlink_metadata(&key).unwrap().file_type().is_symlink(),
        "the link is kept"
    );
    assert_eq!(fs::read_link(&key).unwrap(), Path::new("../keys/mqtt.key"));
    let written = snapshot(&target);
    assert_eq!(
        written.mode, 0o600,
        "the key mode applies to the link's target"
    );
    assert!(
        String::from_utf8_lossy(&written.bytes).contains("PRIVATE KEY"),
        "the new key is in the link's target"
    );
    let leftovers: Vec<_> = fs::read_dir(&keys).unwrap().flatten().collect();
    assert_eq!(leftovers.len(), 1, "no temporary file beside the target");

    // A failed reload puts the target back; the link stays.
    let second = dir.path().join("second");
    lineage(&second);
    let failing = config(dir.path(), &out, "reload = [\"false\"]");
    let r = deploy(&failing, &second);
    r.assert_code(exit::DEPLOY);
    assert!(
        fs::symlink_metadata(&key).unwrap().file_type().is_symlink(),
        "{r:?}"
    );
    assert_eq!(snapshot(&target), written, "{r:?}");

    // A dangling link is refused: nothing is written.
    let dangling = out.join("chain.pem");
    fs::remove_file(&dangling).unwrap();
    std::os::unix::fs::symlink("../keys/missing.pem", &dangling).unwrap();
    let before = snapshot(&out.join("fullchain.pem"));
    let r = deploy(&ok, &second);
    r.assert_code(exit::DEPLOY);
    assert!(
        r.stderr.contains(&format!(
            "`{}` is a symbolic link to `../keys/missing.pem`, which does not exist",
            dangling.display()
        )) && r.stderr.contains("nothing was written"),
        "{r:?}"
    );
    assert_eq!(snapshot(&out.join("fullchain.pem")), before);
    assert_eq!(snapshot(&target), written);
    assert!(!keys.join("missing.pem").exists());
}

// ------------------------------------------------------------ items 5 and 7: client PKI

fn create_ca(dir: &Path) {
    run(&[
        "client-ca",
        "create",
        "--out",
        s(dir),
        "--key-type",
        "ecdsa-p256",
    ])
    .assert_ok();
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn issue(ca: &Path, out: &Path, extra: &[&str]) -> Run {
    let mut args = vec![
        "client-cert",
        "issue",
        "--ca",
        s(ca),
        "--cn",
        "dev",
        "--out",
        s(out),
        "--key-type",
        "ecdsa-p256",
    ];
    args.extend_from_slice(extra);
    run(&args)
}

#[test]
fn issuing_into_another_cas_directory_never_replaces_its_certificate_without_force() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("caA"), tmp.path().join("caB"));
    create_ca(&a);
    create_ca(&b);
    let b_cert = b.join("client-ca.crt");
    let before = fs::read(&b_cert).unwrap();

    let r = issue(&a, &b, &[]);
    r.assert_code(exit::CONFIG);
    assert!(
        r.stderr
            .contains(&format!("{} already exists", b_cert.display()))
            && r.stderr.contains("--force"),
        "{r:?}"
    );
    assert_eq!(
        r.stderr.trim_end().lines().count(),
        1,
        "one paragraph: {r:?}"
    );
    assert_eq!(
        fs::read(&b_cert).unwrap(),
        before,
        "caB's certificate is unchanged"
    );
    assert_eq!(
        names_in(&b),
        ["client-ca.crt", "client-ca.key"],
        "nothing was written"
    );

    // A root.pem that is not the one given is kept too.
    let server_root = a.join("client-ca.crt");
    let out = tmp.path().join("out");
    fs::create_dir(&out).unwrap();
    fs::write(out.join("root.pem"), "another broker's root\n").unwrap();
    let r = issue(&a, &out, &["--server-root", s(&server_root)]);
    r.assert_code(exit::CONFIG);
    assert!(
        r.stderr
            .contains(&out.join("root.pem").display().to_string()),
        "{r:?}"
    );
    assert_eq!(names_in(&out), ["root.pem"]);

    // Into its own CA directory: the identical client-ca.crt is fine.
    issue(&a, &a, &[]).assert_ok();
    // With --force, caB's copy is replaced by CA A's.
    issue(&a, &b, &["--force"]).assert_ok();
    assert_eq!(
        fs::read(&b_cert).unwrap(),
        fs::read(a.join("client-ca.crt")).unwrap()
    );
}

#[test]
fn a_failed_rename_keeps_the_previous_ca_key() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ca");
    create_ca(&dir);
    let key = dir.join("client-ca.key");
    let before = snapshot(&key);
    // The certificate's rename will fail: a directory stands where it goes.
    let cert = dir.join("client-ca.crt");
    fs::remove_file(&cert).unwrap();
    fs::create_dir(&cert).unwrap();
    fs::write(cert.join("inside"), "x").unwrap();

    let r = run(&[
        "client-ca",
        "create",
        "--out",
        s(&dir),
        "--key-type",
        "ecdsa-p256",
        "--force",
    ]);
    r.assert_code(exit::STORE);
    assert!(r.stderr.contains(&cert.display().to_string()), "{r:?}");
    assert_eq!(
        snapshot(&key),
        before,
        "the previous CA key is intact: {r:?}"
    );
    assert_eq!(
        names_in(&dir),
        ["client-ca.crt", "client-ca.key"],
        "no leftovers"
    );
}

#[test]
fn a_failed_rename_keeps_the_previous_client_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = tmp.path().join("ca");
    create_ca(&ca);
    let out = tmp.path().join("clients");
    issue(&ca, &out, &[]).assert_ok();
    let (crt, key) = (out.join("dev.crt"), out.join("dev.key"));
    let (before_crt, before_key) = (snapshot(&crt), snapshot(&key));
    let copy = out.join("client-ca.crt");
    fs::remove_file(&copy).unwrap();
    fs::create_dir(&copy).unwrap();
    fs::write(copy.join("inside"), "x").unwrap();

    let r = issue(&ca, &out, &["--force"]);
    r.assert_code(exit::STORE);
    assert_eq!(snapshot(&crt), before_crt, "{r:?}");
    assert_eq!(snapshot(&key), before_key, "{r:?}");
    assert_eq!(
        names_in(&out),
        ["client-ca.crt", "dev.crt", "dev.key"],
        "no leftovers"
    );
}

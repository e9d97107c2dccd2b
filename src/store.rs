//! Local state on disk: certificate lineages in a certbot-like layout and ACME account
//! credentials.
//!
//! Layout under the state directory (0700):
//! - `archive/<name>/<version>/{cert,chain,fullchain,privkey,root}.pem`: every version kept;
//! - `live/<name>`: a symlink to the current version directory, swapped atomically, so a
//!   reader sees either the whole old set or the whole new set, never a mix;
//! - `accounts/<host>/<hash>.json`: ACME account credentials (0600).
//!
//! Every file is written atomically (temp file, fsync, rename, fsync of the directory),
//! private keys and credentials with mode 0600 from the moment they exist. Before anything
//! is written, the directories are checked (or created) as [`strict`] says: owned by the
//! user running brokercert, writable by no one else, and no link followed but `live/<name>`.
//! Owns: paths, modes and atomicity. Does not own: what the files contain.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub mod backend;
pub mod mirror;
pub mod s3;
pub mod state_files;
pub mod strict;

pub use state_files::StateFiles;
pub use strict::{create_dir_exact, create_dirs, ensure_state_dir, read_state_file};

/// Failures reading or writing local state.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An I/O operation failed.
    #[error("cannot {action} `{}`: {source}. Check the permissions of the state directory (setting `state_dir`, flag `--state-dir`)", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// Where.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A directory or file of the state directory is not safe to use: a link brokercert did
    /// not make, or owned or writable by another user (see [`strict`]).
    #[error("refusing to use `{}`: {found}; expected {expected}. {fix}", path.display())]
    Unsafe {
        /// Where.
        path: PathBuf,
        /// What was found there.
        found: String,
        /// What brokercert expects there.
        expected: String,
        /// The commands to run.
        fix: String,
    },
    /// The remote state backend (`state_dir = "s3://…"`) refused or failed a request.
    #[error(
        "cannot {action} `{url}`: {message}. Check that the bucket exists, that the credentials may use it (`brokercert iam-policy` prints the statements) and `[state] endpoint_url` if set"
    )]
    Remote {
        /// What was being done.
        action: &'static str,
        /// The object or bucket.
        url: String,
        /// The service's answer.
        message: String,
    },
    /// A stored file is not what it should be.
    #[error("`{}` is damaged: {message}", path.display())]
    Corrupt {
        /// Where.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

pub(crate) fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io {
        action,
        path,
        source,
    }
}

/// Writes `bytes` to `path` atomically with `mode` (e.g. 0o600), replacing any old file;
/// state written under a remote state's working copy is written through to it
/// ([`mirror`]) before this returns.
pub fn atomic_write(path: &Path, bytes: &[u8], mode: u32) -> Result<(), StoreError> {
    atomic_write_local(path, bytes, mode)?;
    mirror::wrote(path, bytes)
}

/// Removes a state file (no error when it is gone), locally and in remote state (whose
/// working copy has what the remote state has: a file not here needs no request).
pub fn remove_state_file(path: &Path, action: &'static str) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Ok(()) => mirror::removed(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(action, path)(e)),
    }
}

/// [`atomic_write`] of the local file alone.
pub(crate) fn atomic_write_local(path: &Path, bytes: &[u8], mode: u32) -> Result<(), StoreError> {
    // A bare file name's parent is "" (the current directory), which cannot be opened.
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{file_name}.tmp-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    let result = (|| {
        write_new(&tmp, bytes, mode)?;
        fs::rename(&tmp, path).map_err(io("rename into place", path))?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Creates `path` (which must not exist) with exactly `mode`, writes `bytes` and syncs them.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), StoreError> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io("create", path))?;
    // The umask may have narrowed the mode; apply it exactly.
    f.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(io("set permissions of", path))?;
    f.write_all(bytes).map_err(io("write", path))?;
    f.sync_all().map_err(io("sync", path))
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("sync directory", dir))
}

/// Makes sure `renewal_dir` — `<state dir>/renewal`, as every caller names it — exists and
/// is safe (see [`strict`]).
pub fn ensure_renewal_dir(renewal_dir: &Path) -> Result<(), StoreError> {
    let root = renewal_dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    ensure_state_dir(root, renewal_dir)
}

/// The PEM files of one certificate version.
#[derive(Debug, Clone)]
pub struct CertificateFiles {
    /// The leaf alone.
    pub cert: String,
    /// The intermediates, in order (no leaf, no root).
    pub chain: String,
    /// Leaf followed by the intermediates.
    pub fullchain: String,
    /// The private key (PKCS#8).
    pub privkey: String,
    /// The trust anchor: what an MQTT client uses as its CA file.
    pub root: String,
}

/// Where a stored version lives.
#[derive(Debug, Clone)]
pub struct StoredPaths {
    /// `live/<name>` (stable path users point at).
    pub live_dir: PathBuf,
    /// `archive/<name>/<version>` (this version).
    pub version_dir: PathBuf,
}

/// The state directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// A store rooted at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The default state directory: `$XDG_STATE_HOME/brokercert`, else `/var/lib/brokercert`
    /// for root, else `~/.local/state/brokercert`.
    pub fn default_root() -> PathBuf {
        use std::os::unix::fs::MetadataExt;
        if let Some(d) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
            return PathBuf::from(d).join("brokercert");
        }
        // `/proc/self` belongs to the process's effective user.
        let is_root = fs::metadata("/proc/self")
            .map(|m| m.uid() == 0)
            .unwrap_or(false);
        match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
            Some(h) if !is_root => PathBuf::from(h).join(".local/state/brokercert"),
            _ => PathBuf::from("/var/lib/brokercert"),
        }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `live/<name>`.
    pub fn live_dir(&self, name: &str) -> PathBuf {
        self.root.join("live").join(name)
    }

    /// Reads a file of the live version, if there is one.
    pub fn read_live(&self, name: &str, file: &str) -> Result<Option<String>, StoreError> {
        read_state_file(&self.live_dir(name).join(file))
    }

    /// Stores a new version and makes it the live one (atomically, as a whole).
    pub fn save(
        &self,
        name: &str,
        version: &str,
        files: &CertificateFiles,
    ) -> Result<StoredPaths, StoreError> {
        let archive = self.root.join("archive").join(name);
        ensure_state_dir(&self.root, &archive)?;
        let mut version_dir = archive.join(version);
        let mut n = 1;
        while fs::symlink_metadata(&version_dir).is_ok() {
            n += 1;
            version_dir = archive.join(format!("{version}-{n}"));
        }
        // Build the version in a hidden directory, then rename it into place: a crash
        // leaves no half-written version that looks complete.
        let staging = archive.join(format!(
            ".staging-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        create_dir_exact(&staging, strict::DIR_MODE).map_err(io("create directory", &staging))?;
        // The staging directory is private (0700) and only becomes visible whole, by the
        // rename: its files need no temporary names of their own, only to be on disk before
        // the rename is (one fsync each, then one for the directory).
        let write_all = || -> Result<(), StoreError> {
            for (file, bytes, mode) in [
                ("privkey.pem", &files.privkey, 0o600),
                ("cert.pem", &files.cert, 0o644),
                ("chain.pem", &files.chain, 0o644),
                ("fullchain.pem", &files.fullchain, 0o644),
                ("root.pem", &files.root, 0o644),
            ] {
                write_new(&staging.join(file), bytes.as_bytes(), mode)?;
            }
            sync_dir(&staging)?;
            fs::rename(&staging, &version_dir).map_err(io("rename into place", &version_dir))?;
            sync_dir(&archive)
        };
        if let Err(e) = write_all() {
            let _ = fs::remove_dir_all(&staging);
            return Err(e);
        }

        let version = version_dir
            .file_name()
            .map(|v| v.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.point_live(name, &version)?;
        mirror::stored_version(
            &self.root,
            name,
            &version_dir,
            &[
                ("privkey.pem", &files.privkey),
                ("cert.pem", &files.cert),
                ("chain.pem", &files.chain),
                ("fullchain.pem", &files.fullchain),
                ("root.pem", &files.root),
            ],
        )?;
        Ok(StoredPaths {
            live_dir: self.live_dir(name),
            version_dir,
        })
    }

    /// Makes `live/<name>` point at `archive/<name>/<version>` (a symlink swapped
    /// atomically; the one link brokercert makes).
    pub(crate) fn point_live(&self, name: &str, version: &str) -> Result<(), StoreError> {
        let live_parent = self.root.join("live");
        ensure_state_dir(&self.root, &live_parent)?;
        let live = live_parent.join(name);
        // `live/<name>` is the one link brokercert makes (and replaces, never follows here).
        let live_meta = match fs::symlink_metadata(&live) {
            Ok(m) => Some(m),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io("inspect", &live)(e)),
        };
        if live_meta.is_some_and(|m| !m.file_type().is_symlink()) {
            return Err(StoreError::Corrupt {
                path: live,
                message: "it is a real directory, but brokercert keeps `live/<name>` as a symlink \
                          to the current version. Move it away and run again"
                    .into(),
            });
        }
        let target = Path::new("..").join("archive").join(name).join(version);
        let tmp_link = live_parent.join(format!(".{name}.link-{}", std::process::id()));
        let _ = fs::remove_file(&tmp_link);
        std::os::unix::fs::symlink(&target, &tmp_link).map_err(io("create symlink", &tmp_link))?;
        fs::rename(&tmp_link, &live).map_err(io("swap symlink", &live))?;
        sync_dir(&live_parent)
    }

    fn account_path(&self, directory_url: &str) -> PathBuf {
        let host = directory_url
            .split("://")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .unwrap_or("ca")
            .replace(':', "_");
        let hash = hex::encode(&Sha256::digest(directory_url.as_bytes())[..8]);
        self.root
            .join("accounts")
            .join(host)
            .join(format!("{hash}.json"))
    }

    /// The stored account credentials (JSON) for this ACME directory, if any.
    pub fn load_account(&self, directory_url: &str) -> Result<Option<String>, StoreError> {
        read_state_file(&self.account_path(directory_url))
    }

    /// Stores account credentials (JSON) for this ACME directory, mode 0600.
    pub fn save_account(&self, directory_url: &str, json: &str) -> Result<PathBuf, StoreError> {
        let p = self.account_path(directory_url);
        if let Some(parent) = p.parent() {
            ensure_state_dir(&self.root, parent)?;
        }
        atomic_write(&p, json.as_bytes(), 0o600)?;
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    fn files(tag: &str) -> CertificateFiles {
        CertificateFiles {
            cert: format!("cert {tag}"),
            chain: format!("chain {tag}"),
            fullchain: format!("fullchain {tag}"),
            privkey: format!("key {tag}"),
            root: format!("root {tag}"),
        }
    }

    #[test]
    fn save_twice_keeps_archive_and_swaps_live() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("state"));
        let a = store.save("mqtt", "v1", &files("a")).unwrap();
        let b = store.save("mqtt", "v2", &files("b")).unwrap();
        assert_ne!(a.version_dir, b.version_dir);
        assert_eq!(
            store.read_live("mqtt", "cert.pem").unwrap().unwrap(),
            "cert b"
        );
        assert_eq!(
            fs::read_to_string(a.version_dir.join("cert.pem")).unwrap(),
            "cert a"
        );
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&b.version_dir.join("privkey.pem")), 0o600);
        assert_eq!(mode(&b.version_dir.join("cert.pem")), 0o644);
        assert_eq!(mode(store.root()), 0o700);
        // No temp or staging leftovers.
        let leftovers: Vec<_> = fs::read_dir(store.root().join("archive/mqtt"))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn same_version_name_does_not_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let a = store.save("m", "v", &files("a")).unwrap();
        let b = store.save("m", "v", &files("b")).unwrap();
        assert_ne!(a.version_dir, b.version_dir);
        assert_eq!(
            fs::read_to_string(a.version_dir.join("cert.pem")).unwrap(),
            "cert a"
        );
    }

    #[test]
    fn account_credentials_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        assert!(
            store
                .load_account("https://127.0.0.1:14000/dir")
                .unwrap()
                .is_none()
        );
        let p = store
            .save_account("https://127.0.0.1:14000/dir", "{}")
            .unwrap();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            store
                .load_account("https://127.0.0.1:14000/dir")
                .unwrap()
                .unwrap(),
            "{}"
        );
    }

    // The refusals of `strict`, through the store's own operations.

    fn set_mode(p: &Path, mode: u32) {
        fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
    }

    fn entries(p: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_linked_archive_directory_is_refused_and_the_key_does_not_land_where_it_points() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::new(tmp.path().join("state"));
        let elsewhere = tmp.path().join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();
        set_mode(&elsewhere, 0o755);
        fs::create_dir_all(store.root().join("archive")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, store.root().join("archive/mqtt")).unwrap();

        let e = store.save("mqtt", "v1", &files("a")).unwrap_err();
        assert!(matches!(e, StoreError::Unsafe { .. }), "{e:?}");
        let e = e.to_string();
        for part in [
            "archive/mqtt",
            "symbolic link to",
            "elsewhere",
            "did not make",
            "rm ",
        ] {
            assert!(e.contains(part), "`{part}` missing: {e}");
        }
        assert!(entries(&elsewhere).is_empty(), "{:?}", entries(&elsewhere));
        assert_eq!(fs::metadata(&elsewhere).unwrap().mode() & 0o777, 0o755);
        assert!(!store.root().join("live").exists());
    }

    #[test]
    fn a_state_directory_others_may_write_is_refused_with_the_chmod_to_run() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("state");
        fs::create_dir(&root).unwrap();
        set_mode(&root, 0o777);
        let store = Store::new(&root);
        let e = store
            .save("mqtt", "v1", &files("a"))
            .unwrap_err()
            .to_string();
        for part in [
            "refusing to use",
            "the state directory",
            "mode 0777 (writable by its group and others)",
            "that its group and others may not write",
            &format!("`chmod 700 {}`", root.display()),
            "Nothing was written",
        ] {
            assert!(e.contains(part), "`{part}` missing: {e}");
        }
        assert!(entries(&root).is_empty());
        assert!(
            store
                .save_account("https://ca/dir", "{}")
                .unwrap_err()
                .to_string()
                .contains("chmod 700")
        );
        assert!(
            crate::renew::state::save(&root.join("renewal"), "mqtt", &Default::default()).is_err()
        );
        assert!(entries(&root).is_empty());
        // Group-writable alone is refused too; fixed, the same call works and tightens it.
        set_mode(&root, 0o770);
        assert!(store.save("mqtt", "v1", &files("a")).is_err());
        set_mode(&root, 0o750);
        store.save("mqtt", "v1", &files("a")).unwrap();
        assert_eq!(fs::metadata(&root).unwrap().mode() & 0o7777, 0o700);
    }

    #[test]
    fn a_state_directory_of_another_user_is_refused_with_the_chown_to_run() {
        // Only root can give a directory away; elsewhere the owner check is not reachable.
        if rustix::process::geteuid().as_raw() != 0 {
            eprintln!("skipped: needs root to chown");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("state");
        fs::create_dir(&root).unwrap();
        set_mode(&root, 0o700);
        std::os::unix::fs::chown(&root, Some(65534), None).unwrap();
        let e = Store::new(&root)
            .save("mqtt", "v1", &files("a"))
            .unwrap_err()
            .to_string();
        for part in [
            "is owned by uid 65534",
            &format!("`chown root {}` (as root)", root.display()),
        ] {
            assert!(e.contains(part), "`{part}` missing: {e}");
        }
        assert!(!e.contains("chmod"), "{e}");
        assert!(entries(&root).is_empty());
    }

    #[test]
    fn a_parent_others_may_write_is_refused_unless_sticky() {
        let tmp = tempfile::tempdir().unwrap();
        let shared = tmp.path().join("shared");
        fs::create_dir(&shared).unwrap();
        set_mode(&shared, 0o777);
        let store = Store::new(shared.join("a/state"));
        let e = store
            .save("mqtt", "v1", &files("a"))
            .unwrap_err()
            .to_string();
        for part in [
            "the directory that holds the state directory",
            "mode 0777",
            "unless it is sticky, like /tmp",
            &format!("`chmod go-w {}`", shared.display()),
        ] {
            assert!(e.contains(part), "`{part}` missing: {e}");
        }
        assert!(entries(&shared).is_empty(), "created under it anyway");
        // Sticky, like /tmp: others may not rename or delete what is ours.
        set_mode(&shared, 0o1777);
        store.save("mqtt", "v1", &files("a")).unwrap();
        // Parents brokercert made are 0700 like the state directory.
        assert_eq!(
            fs::metadata(shared.join("a")).unwrap().mode() & 0o777,
            0o700
        );
    }

    #[test]
    fn a_linked_state_directory_of_ones_own_is_used() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real");
        fs::create_dir(&real).unwrap();
        let link = tmp.path().join("state");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let store = Store::new(&link);
        store.save("mqtt", "v1", &files("a")).unwrap();
        assert_eq!(
            store.read_live("mqtt", "privkey.pem").unwrap().unwrap(),
            "key a"
        );
        assert!(real.join("archive/mqtt/v1/privkey.pem").is_file());
    }

    #[test]
    fn a_linked_account_file_is_not_read() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::new(tmp.path().join("state"));
        let p = store.save_account("https://ca/dir", "{}").unwrap();
        let other = tmp.path().join("other.json");
        fs::write(&other, "{\"not\": \"ours\"}").unwrap();
        fs::remove_file(&p).unwrap();
        std::os::unix::fs::symlink(&other, &p).unwrap();
        let e = store
            .load_account("https://ca/dir")
            .unwrap_err()
            .to_string();
        assert!(e.contains("symbolic link"), "{e}");
        assert!(e.contains(&p.display().to_string()), "{e}");
    }
}

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
//! private keys and credentials with mode 0600 from the moment they exist.
//! Owns: paths, modes and atomicity. Does not own: what the files contain.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

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
    /// A stored file is not what it should be.
    #[error("`{}` is damaged: {message}", path.display())]
    Corrupt {
        /// Where.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io {
        action,
        path,
        source,
    }
}

/// Writes `bytes` to `path` atomically with `mode` (e.g. 0o600), replacing any old file.
pub fn atomic_write(path: &Path, bytes: &[u8], mode: u32) -> Result<(), StoreError> {
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

/// Creates `dir` (and parents) and sets its mode.
pub fn ensure_dir(dir: &Path, mode: u32) -> Result<(), StoreError> {
    fs::create_dir_all(dir).map_err(io("create directory", dir))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(mode))
        .map_err(io("set permissions of", dir))
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
        let p = self.live_dir(name).join(file);
        match fs::read_to_string(&p) {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("read", &p)(e)),
        }
    }

    /// Stores a new version and makes it the live one (atomically, as a whole).
    pub fn save(
        &self,
        name: &str,
        version: &str,
        files: &CertificateFiles,
    ) -> Result<StoredPaths, StoreError> {
        ensure_dir(&self.root, 0o700)?;
        let archive = self.root.join("archive").join(name);
        ensure_dir(&self.root.join("archive"), 0o700)?;
        ensure_dir(&archive, 0o700)?;
        let mut version_dir = archive.join(version);
        let mut n = 1;
        while version_dir.exists() {
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
        ensure_dir(&staging, 0o700)?;
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

        let live_parent = self.root.join("live");
        ensure_dir(&live_parent, 0o700)?;
        let live = live_parent.join(name);
        if live.exists()
            && !fs::symlink_metadata(&live)
                .map_err(io("inspect", &live))?
                .file_type()
                .is_symlink()
        {
            return Err(StoreError::Corrupt {
                path: live,
                message: "it is a real directory, but brokercert keeps `live/<name>` as a symlink \
                          to the current version. Move it away and run again"
                    .into(),
            });
        }
        let target = Path::new("..")
            .join("archive")
            .join(name)
            .join(version_dir.file_name().unwrap_or_default());
        let tmp_link = live_parent.join(format!(".{name}.link-{}", std::process::id()));
        let _ = fs::remove_file(&tmp_link);
        std::os::unix::fs::symlink(&target, &tmp_link).map_err(io("create symlink", &tmp_link))?;
        fs::rename(&tmp_link, &live).map_err(io("swap symlink", &live))?;
        sync_dir(&live_parent)?;
        Ok(StoredPaths {
            live_dir: live,
            version_dir,
        })
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
        let p = self.account_path(directory_url);
        match fs::read_to_string(&p) {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("read", &p)(e)),
        }
    }

    /// Stores account credentials (JSON) for this ACME directory, mode 0600.
    pub fn save_account(&self, directory_url: &str, json: &str) -> Result<PathBuf, StoreError> {
        let p = self.account_path(directory_url);
        ensure_dir(&self.root, 0o700)?;
        ensure_dir(&self.root.join("accounts"), 0o700)?;
        if let Some(parent) = p.parent() {
            ensure_dir(parent, 0o700)?;
        }
        atomic_write(&p, json.as_bytes(), 0o600)?;
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
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
}

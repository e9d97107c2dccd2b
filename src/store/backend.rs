//! The storage trait behind the state directory: named objects (`live/<name>`,
//! `archive/<name>/<version>/cert.pem`, `renewal/<name>.json`, `accounts/…`, `leases/…`)
//! with conditional writes, and its local implementation (files under the state directory,
//! written through [`super::atomic_write`]). The S3 implementation is [`super::s3`].
//!
//! Owns: the operations and their conditions (create-only, replace-if-unchanged), the
//! request counters `--timings` shows. Does not own: the layout's meaning (the store, the
//! journal, the renewal state and the leases decide what they write) nor locking of the
//! local directory (`renew::lock`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use super::{StoreError, atomic_write, read_state_file};

/// What a conditional write requires of the object already there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// Write whatever is there.
    None,
    /// Only if there is no object yet (`If-None-Match: *`).
    Absent,
    /// Only if the object is still this version (`If-Match: <etag>`).
    Unchanged(String),
}

/// Whether an object holds a secret (a private key, the account key): the S3 backend writes
/// such objects only with server-side encryption.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sensitivity {
    /// Certificates, state, leases.
    Public,
    /// Private keys and account credentials.
    Secret,
}

/// The answer to a conditional write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Put {
    /// Written; the new version's tag.
    Written(String),
    /// The condition did not hold (S3's 412); nothing written.
    ConditionFailed,
}

/// One object's content and version tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    /// The bytes.
    pub bytes: Vec<u8>,
    /// The version tag (S3's ETag; locally a hash of the content).
    pub etag: String,
}

/// Where state lives: the local directory or an S3 bucket/prefix.
pub trait StateBackend: Send + Sync + std::fmt::Debug {
    /// Reads `key`, `None` when there is no such object.
    fn get(&self, key: &str) -> Result<Option<Object>, StoreError>;
    /// Writes `key` if `condition` holds.
    fn put(
        &self,
        key: &str,
        bytes: &[u8],
        condition: Condition,
        sensitivity: Sensitivity,
    ) -> Result<Put, StoreError>;
    /// Deletes `key` (no error when absent); with `if_match`, only that version.
    fn delete(&self, key: &str, if_match: Option<&str>) -> Result<(), StoreError>;
    /// Every key under `prefix`, with its version tag.
    fn list(&self, prefix: &str) -> Result<Vec<(String, String)>, StoreError>;
    /// Where this is, for messages (`s3://bucket/prefix`, a directory).
    fn describe(&self) -> String;
    /// The requests made so far.
    fn counters(&self) -> &Counters;
}

/// Requests a backend made, by kind (`--timings`).
#[derive(Debug, Default)]
pub struct Counters {
    /// Reads (GET).
    pub get: AtomicU64,
    /// Writes (PUT), conditional or not.
    pub put: AtomicU64,
    /// Deletes.
    pub delete: AtomicU64,
    /// Listings (one per page).
    pub list: AtomicU64,
    /// Other requests (bucket checks).
    pub other: AtomicU64,
}

impl Counters {
    /// All requests.
    pub fn total(&self) -> u64 {
        [&self.get, &self.put, &self.delete, &self.list, &self.other]
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    /// `12 requests (GET 8, PUT 2, DELETE 1, LIST 1, other 0)`.
    pub fn summary(&self) -> String {
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "{} requests (GET {}, PUT {}, DELETE {}, LIST {}, other {})",
            self.total(),
            n(&self.get),
            n(&self.put),
            n(&self.delete),
            n(&self.list),
            n(&self.other)
        )
    }

    pub(crate) fn count(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// The state directory on local disk.
#[derive(Debug)]
pub struct LocalBackend {
    root: PathBuf,
    counters: Counters,
}

impl LocalBackend {
    /// Objects as files under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            counters: Counters::default(),
        }
    }

    fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }
}

fn local_etag(bytes: &[u8]) -> String {
    hex::encode(&Sha256::digest(bytes)[..16])
}

impl StateBackend for LocalBackend {
    fn get(&self, key: &str) -> Result<Option<Object>, StoreError> {
        Counters::count(&self.counters.get);
        Ok(read_state_file(&self.path(key))?.map(|text| Object {
            etag: local_etag(text.as_bytes()),
            bytes: text.into_bytes(),
        }))
    }

    fn put(
        &self,
        key: &str,
        bytes: &[u8],
        condition: Condition,
        _sensitivity: Sensitivity,
    ) -> Result<Put, StoreError> {
        Counters::count(&self.counters.put);
        // Local state is one machine's, serialized by the state directory's flock: checking
        // then writing is enough here.
        let current = read_state_file(&self.path(key))?.map(|t| local_etag(t.as_bytes()));
        let holds = match (&condition, &current) {
            (Condition::None, _) => true,
            (Condition::Absent, c) => c.is_none(),
            (Condition::Unchanged(want), Some(have)) => want == have,
            (Condition::Unchanged(_), None) => false,
        };
        if !holds {
            return Ok(Put::ConditionFailed);
        }
        let path = self.path(key);
        if let Some(parent) = path.parent() {
            super::ensure_state_dir(&self.root, parent)?;
        }
        atomic_write(&path, bytes, 0o600)?;
        Ok(Put::Written(local_etag(bytes)))
    }

    fn delete(&self, key: &str, if_match: Option<&str>) -> Result<(), StoreError> {
        Counters::count(&self.counters.delete);
        let path = self.path(key);
        if let Some(want) = if_match {
            let have = read_state_file(&path)?.map(|t| local_etag(t.as_bytes()));
            if have.as_deref() != Some(want) {
                return Ok(());
            }
        }
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(super::io("remove", &path)(e)),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<(String, String)>, StoreError> {
        Counters::count(&self.counters.list);
        let mut out = Vec::new();
        walk(&self.root, &self.root, &mut out)?;
        out.retain(|(k, _)| k.starts_with(prefix));
        out.sort();
        Ok(out)
    }

    fn describe(&self) -> String {
        self.root.display().to_string()
    }

    fn counters(&self) -> &Counters {
        &self.counters
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) -> Result<(), StoreError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(super::io("list", dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(super::io("list", dir))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(super::io("inspect", &path))?;
        if kind.is_dir() {
            walk(root, &path, out)?;
        } else if kind.is_file() {
            let key = path
                .strip_prefix(root)
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            let etag = read_state_file(&path)?
                .map(|t| local_etag(t.as_bytes()))
                .unwrap_or_default();
            out.push((key, etag));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_conditional_writes_behave_like_s3() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(dir.path().join("state"));
        let Put::Written(first) = b
            .put("leases/x", b"a", Condition::Absent, Sensitivity::Public)
            .unwrap()
        else {
            panic!("first create-only write must succeed")
        };
        assert_eq!(
            b.put("leases/x", b"b", Condition::Absent, Sensitivity::Public)
                .unwrap(),
            Put::ConditionFailed
        );
        assert_eq!(
            b.put(
                "leases/x",
                b"b",
                Condition::Unchanged("nope".into()),
                Sensitivity::Public
            )
            .unwrap(),
            Put::ConditionFailed
        );
        let Put::Written(second) = b
            .put(
                "leases/x",
                b"b",
                Condition::Unchanged(first.clone()),
                Sensitivity::Public,
            )
            .unwrap()
        else {
            panic!("replace-if-unchanged must succeed")
        };
        b.delete("leases/x", Some(&first)).unwrap();
        assert_eq!(b.get("leases/x").unwrap().unwrap().etag, second);
        assert_eq!(
            b.list("leases/").unwrap(),
            vec![("leases/x".into(), second.clone())]
        );
        b.delete("leases/x", Some(&second)).unwrap();
        assert!(b.get("leases/x").unwrap().is_none());
        assert_eq!(b.counters().total(), 9);
    }
}

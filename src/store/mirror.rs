//! Remote state (`state_dir = "s3://…"`) through a local working copy: the run works on a
//! local directory as always, and every write of state to it — a journal entry, the
//! journal's key, a stored version, the renewal state, account credentials — is written
//! through to the backend before the call returns, so before the side effect it precedes.
//! At the start of a run the working copy is filled from the backend ([`pull`]): the live
//! version of each certificate, the renewal state, the journals and the accounts (older
//! archive versions stay remote). The remote copy is the truth: local journals and live
//! links the backend no longer has are removed.
//!
//! Owns: the mapping between local paths and object keys, the pull, the write-through hooks
//! and which objects are secret. Does not own: the S3 requests ([`super::s3`]), leases
//! (`renew::lease`), locking of the working copy (`renew::lock`).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use super::backend::{Condition, Put, Sensitivity, StateBackend};
use super::{StoreError, ensure_state_dir};

static MIRROR: OnceLock<Mirror> = OnceLock::new();

/// A working copy and the backend it mirrors.
#[derive(Debug)]
pub struct Mirror {
    local: PathBuf,
    backend: Arc<dyn StateBackend>,
    /// The version tags of what this run pulled or wrote, by key.
    seen: Mutex<HashMap<String, String>>,
}

/// What [`pull`] found.
#[derive(Debug, Default)]
pub struct Pulled {
    /// Objects read.
    pub objects: usize,
    /// Certificates with a live version.
    pub certificates: usize,
}

/// The mirror of this process, when state is remote.
pub fn active() -> Option<&'static Mirror> {
    MIRROR.get()
}

/// Makes `local` the working copy of `backend` for the rest of the process and fills it.
pub fn attach(local: &Path, backend: Arc<dyn StateBackend>) -> Result<Pulled, StoreError> {
    let m = MIRROR.get_or_init(|| Mirror {
        local: local.to_path_buf(),
        backend,
        seen: Mutex::new(HashMap::new()),
    });
    if m.local != local {
        return Err(StoreError::Corrupt {
            path: local.to_path_buf(),
            message: format!(
                "this process already mirrors `{}` into `{}`",
                m.backend.describe(),
                m.local.display()
            ),
        });
    }
    m.pull()
}

/// Whether `rel` (a key relative to the state root) holds a secret.
pub fn sensitivity(rel: &str) -> Sensitivity {
    if rel.starts_with("accounts/") || rel.ends_with("privkey.pem") || rel.ends_with(".key.pem") {
        Sensitivity::Secret
    } else {
        Sensitivity::Public
    }
}

impl Mirror {
    /// The backend.
    pub fn backend(&self) -> &Arc<dyn StateBackend> {
        &self.backend
    }

    /// The working copy.
    pub fn local(&self) -> &Path {
        &self.local
    }

    fn rel(&self, path: &Path) -> Option<String> {
        let rel = path.strip_prefix(&self.local).ok()?;
        let s = rel.to_str()?;
        (!s.is_empty()).then(|| s.to_string())
    }

    fn note(&self, key: &str, etag: Option<&str>) {
        if let Ok(mut seen) = self.seen.lock() {
            match etag {
                Some(e) => seen.insert(key.to_string(), e.to_string()),
                None => seen.remove(key),
            };
        }
    }

    /// The version tag this run last saw for `key`.
    pub fn seen(&self, key: &str) -> Option<String> {
        self.seen.lock().ok().and_then(|s| s.get(key).cloned())
    }

    fn put(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
        match self
            .backend
            .put(key, bytes, Condition::None, sensitivity(key))?
        {
            Put::Written(etag) => self.note(key, Some(&etag)),
            Put::ConditionFailed => {}
        }
        Ok(())
    }

    fn write_local(&self, rel: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let path = self.local.join(rel);
        if let Some(parent) = path.parent() {
            ensure_state_dir(&self.local, parent)?;
        }
        super::atomic_write_local(&path, bytes, 0o600)
    }

    /// Fills the working copy (see the module's documentation).
    pub fn pull(&self) -> Result<Pulled, StoreError> {
        let listing: BTreeMap<String, String> = self.backend.list("")?.into_iter().collect();
        let mut pulled = Pulled::default();
        // The live version of each certificate: only its archive directory is needed.
        let mut live: Vec<(String, String)> = Vec::new();
        for key in listing.keys().filter(|k| k.starts_with("live/")) {
            let name = &key["live/".len()..];
            if let Some(o) = self.backend.get(key)? {
                pulled.objects += 1;
                self.note(key, Some(&o.etag));
                let version = String::from_utf8_lossy(&o.bytes).trim().to_string();
                if valid_segment(name) && valid_segment(&version) {
                    live.push((name.to_string(), version));
                }
            }
        }
        let wanted: Vec<String> = live
            .iter()
            .map(|(n, v)| format!("archive/{n}/{v}/"))
            .collect();
        for (key, etag) in &listing {
            let needed = key.starts_with("renewal/")
                || key.starts_with("accounts/")
                || wanted.iter().any(|w| key.starts_with(w.as_str()));
            if !needed || key.split('/').any(|s| !valid_segment(s)) {
                continue;
            }
            // An archive file already here is that version's (versions are never rewritten).
            if key.starts_with("archive/") && self.local.join(key).is_file() {
                self.note(key, Some(etag));
                continue;
            }
            if let Some(o) = self.backend.get(key)? {
                pulled.objects += 1;
                self.write_local(key, &o.bytes)?;
                self.note(key, Some(&o.etag));
            }
        }
        // What the backend no longer has is not this run's to resume.
        let renewal = self.local.join("renewal");
        if let Ok(entries) = std::fs::read_dir(&renewal) {
            for e in entries.flatten() {
                let file = e.file_name().to_string_lossy().into_owned();
                if !file.starts_with('.') && !listing.contains_key(&format!("renewal/{file}")) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        let store = super::Store::new(&self.local);
        for (name, version) in &live {
            if self.local.join("archive").join(name).join(version).is_dir() {
                store.point_live(name, version)?;
                pulled.certificates += 1;
            }
        }
        Ok(pulled)
    }

    /// Reads `key` again and says whether it changed since this run last saw it (another
    /// runner wrote it meanwhile).
    pub fn changed_remotely(&self, key: &str) -> Result<bool, StoreError> {
        let now = self.backend.get(key)?.map(|o| o.etag);
        Ok(now != self.seen(key))
    }
}

fn valid_segment(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && !s.contains('/') && !s.starts_with('.')
}

/// Hook of [`super::atomic_write`]: a state file was written locally.
pub(crate) fn wrote(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let Some(m) = active() else { return Ok(()) };
    match m.rel(path) {
        Some(rel) => m.put(&rel, bytes),
        None => Ok(()),
    }
}

/// A state file was removed locally.
pub(crate) fn removed(path: &Path) -> Result<(), StoreError> {
    let Some(m) = active() else { return Ok(()) };
    match m.rel(path) {
        Some(rel) => {
            m.backend.delete(&rel, None)?;
            m.note(&rel, None);
            Ok(())
        }
        None => Ok(()),
    }
}

/// A version was stored: its files first, then the `live/<name>` pointer, so a reader never
/// sees a pointer to a partial version.
pub(crate) fn stored_version(
    root: &Path,
    name: &str,
    version_dir: &Path,
    files: &[(&str, &str)],
) -> Result<(), StoreError> {
    let Some(m) = active() else { return Ok(()) };
    if m.local != root {
        return Ok(());
    }
    let Some(version) = version_dir.file_name().and_then(|v| v.to_str()) else {
        return Ok(());
    };
    for (file, text) in files {
        m.put(&format!("archive/{name}/{version}/{file}"), text.as_bytes())?;
    }
    m.put(&format!("live/{name}"), version.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_named_by_their_place() {
        assert_eq!(sensitivity("accounts/ca/ab.json"), Sensitivity::Secret);
        assert_eq!(sensitivity("archive/m/v1/privkey.pem"), Sensitivity::Secret);
        assert_eq!(sensitivity("renewal/m.key.pem"), Sensitivity::Secret);
        assert_eq!(sensitivity("renewal/m.journal.json"), Sensitivity::Public);
        assert_eq!(sensitivity("archive/m/v1/cert.pem"), Sensitivity::Public);
    }
}

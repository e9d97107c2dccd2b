//! The journal of an issuance in flight: what a run has started but not finished, written
//! before each side effect so that a run killed at any moment leaves enough behind for the
//! next run to finish the job.
//!
//! Owns: `renewal/<name>.journal.json` (the order URL, the certificate it replaces, every
//! DNS-01 TXT value about to be written) and `renewal/<name>.key.pem` (the key of a CSR about
//! to be sent, 0600), both written atomically, and [`TxtJournal`], the TXT-only view `issue`
//! keeps. Does not own what to do with them: the renew workflow resumes the order, the issue
//! workflow removes recorded TXT values left by an earlier run, and the journal is deleted
//! once empty.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::dns::plan::TxtValue;
use crate::store::{StateFiles, StoreError, atomic_write, ensure_renewal_dir, read_state_file};

/// What the journal holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalData {
    /// The ACME order placed (cleared once the certificate is stored).
    pub order_url: Option<String>,
    /// The ARI id of the certificate the order replaces.
    pub replaces: Option<String>,
    /// TXT values written or about to be written (cleared once removed).
    #[serde(default)]
    pub txt: Vec<TxtValue>,
    /// Whether `<name>.key.pem` holds the key of a CSR that was (or was about to be) sent.
    #[serde(default)]
    pub key_saved: bool,
}

impl JournalData {
    /// Nothing left to resume or clean.
    pub fn is_empty(&self) -> bool {
        self.order_url.is_none() && self.txt.is_empty() && !self.key_saved
    }
}

/// An issuance's journal on disk.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    key_path: PathBuf,
    data: Mutex<JournalData>,
}

/// Hooks the issue workflow calls before each side effect.
pub trait IssueJournal: Send + Sync {
    /// An order was placed (or resumed).
    fn order_placed(&self, url: &str) -> Result<(), StoreError>;
    /// These TXT values are about to be written.
    fn txt_publishing(&self, values: &[TxtValue]) -> Result<(), StoreError>;
    /// The key whose CSR is about to be sent.
    fn key_generated(&self, key_pem: &str) -> Result<(), StoreError>;
    /// The certificate is stored: the order and key are no longer needed.
    fn stored(&self) -> Result<(), StoreError>;
    /// The TXT values were removed.
    fn txt_removed(&self) -> Result<(), StoreError>;
    /// TXT values an earlier run wrote and could not remove (to remove before anything
    /// else). Empty unless the journal was read from disk.
    fn leftover_txt(&self) -> Vec<TxtValue> {
        Vec::new()
    }
}

/// The part of a [`Journal`] that `issue` keeps: only the DNS-01 TXT values, so that a
/// value a failed clean-up left (Route 53 down) is removed by the next `issue` or `renew`
/// of the certificate. Orders and keys are not recorded (`issue` never resumes an order).
#[derive(Debug)]
pub struct TxtJournal<'a>(pub &'a Journal);

impl IssueJournal for TxtJournal<'_> {
    fn order_placed(&self, _url: &str) -> Result<(), StoreError> {
        Ok(())
    }

    fn txt_publishing(&self, values: &[TxtValue]) -> Result<(), StoreError> {
        self.0.txt_publishing(values)
    }

    fn key_generated(&self, _key_pem: &str) -> Result<(), StoreError> {
        Ok(())
    }

    fn stored(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn txt_removed(&self) -> Result<(), StoreError> {
        self.0.txt_removed()
    }

    fn leftover_txt(&self) -> Vec<TxtValue> {
        self.0.leftover_txt()
    }
}

impl Journal {
    /// The journal of certificate `name` under `renewal_dir`, loaded if present.
    pub fn open(renewal_dir: &Path, name: &str) -> Result<Journal, StoreError> {
        Journal::open_in(&StateFiles::by_path(renewal_dir), name)
    }

    /// [`Journal::open`] from the renewal directory held open (a run over many
    /// certificates).
    pub fn open_in(renewal: &StateFiles, name: &str) -> Result<Journal, StoreError> {
        let file = format!("{name}.journal.json");
        let path = renewal.path().join(&file);
        let key_path = renewal.path().join(format!("{name}.key.pem"));
        let data = match renewal.read(&file)? {
            Some(text) => serde_json::from_str(&text).map_err(|e| StoreError::Corrupt {
                path: path.clone(),
                message: format!(
                    "{e}. It records an interrupted renewal; if no renewal is running, delete it \
                     and remove any `_acme-challenge` TXT value left in Route 53 by hand"
                ),
            })?,
            None => JournalData::default(),
        };
        Ok(Journal {
            path,
            key_path,
            data: Mutex::new(data),
        })
    }

    /// A copy of what it holds.
    pub fn data(&self) -> JournalData {
        self.data.lock().map(|d| d.clone()).unwrap_or_default()
    }

    /// The saved key, if any.
    pub fn saved_key(&self) -> Result<Option<String>, StoreError> {
        if !self.data().key_saved {
            return Ok(None);
        }
        read_state_file(&self.key_path)
    }

    /// Records the certificate this run replaces.
    pub fn set_replaces(&self, replaces: Option<&str>) -> Result<(), StoreError> {
        self.update(|d| d.replaces = replaces.map(str::to_string))
    }

    /// Forgets the order (and its key): it cannot be resumed.
    pub fn drop_order(&self) -> Result<(), StoreError> {
        self.update(|d| {
            d.order_url = None;
            d.key_saved = false;
        })
    }

    fn update(&self, f: impl FnOnce(&mut JournalData)) -> Result<(), StoreError> {
        let mut guard = self.data.lock().map_err(|_| StoreError::Corrupt {
            path: self.path.clone(),
            message: "journal lock poisoned".into(),
        })?;
        f(&mut guard);
        if !guard.key_saved {
            crate::store::remove_state_file(&self.key_path, "remove the journal's key")?;
        }
        if guard.is_empty() && guard.replaces.is_none() {
            return crate::store::remove_state_file(&self.path, "remove the renewal journal");
        }
        if let Some(dir) = self.path.parent() {
            ensure_renewal_dir(dir)?;
        }
        let text = serde_json::to_string_pretty(&*guard).map_err(|e| StoreError::Corrupt {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        atomic_write(&self.path, text.as_bytes(), 0o600)
    }

    /// Deletes the journal and its key: the run finished.
    pub fn finish(&self) -> Result<(), StoreError> {
        self.update(|d| *d = JournalData::default())
    }
}

impl IssueJournal for Journal {
    fn order_placed(&self, url: &str) -> Result<(), StoreError> {
        self.update(|d| d.order_url = Some(url.to_string()))
    }

    fn txt_publishing(&self, values: &[TxtValue]) -> Result<(), StoreError> {
        self.update(|d| {
            for v in values {
                if !d.txt.contains(v) {
                    d.txt.push(v.clone());
                }
            }
        })
    }

    fn key_generated(&self, key_pem: &str) -> Result<(), StoreError> {
        if let Some(dir) = self.key_path.parent() {
            ensure_renewal_dir(dir)?;
        }
        atomic_write(&self.key_path, key_pem.as_bytes(), 0o600)?;
        self.update(|d| d.key_saved = true)
    }

    fn stored(&self) -> Result<(), StoreError> {
        self.update(|d| {
            d.order_url = None;
            d.key_saved = false;
        })
    }

    fn txt_removed(&self) -> Result<(), StoreError> {
        self.update(|d| d.txt.clear())
    }

    fn leftover_txt(&self) -> Vec<TxtValue> {
        self.data().txt
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn value(v: &str) -> TxtValue {
        TxtValue {
            zone_id: "Z1".into(),
            name: "_acme-challenge.mqtt.example.test".into(),
            value: v.into(),
        }
    }

    #[test]
    fn survives_a_reopen_and_disappears_when_done() {
        let state = tempfile::tempdir().unwrap();
        let dir = state.path().join("renewal");
        let j = Journal::open(dir.as_path(), "broker").unwrap();
        assert!(j.data().is_empty());
        j.order_placed("https://ca/order/1").unwrap();
        j.txt_publishing(&[value("a"), value("b")]).unwrap();
        j.txt_publishing(&[value("a")]).unwrap();
        j.key_generated("-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n")
            .unwrap();
        let key_mode = std::fs::metadata(dir.join("broker.key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(key_mode & 0o777, 0o600);
        let again = Journal::open(dir.as_path(), "broker").unwrap();
        let d = again.data();
        assert_eq!(d.order_url.as_deref(), Some("https://ca/order/1"));
        assert_eq!(d.txt, vec![value("a"), value("b")]);
        assert!(again.saved_key().unwrap().unwrap().contains("PRIVATE KEY"));

        again.stored().unwrap();
        assert!(!dir.join("broker.key.pem").exists());
        assert!(
            dir.join("broker.journal.json").exists(),
            "TXT still to remove"
        );
        again.txt_removed().unwrap();
        assert!(!dir.join("broker.journal.json").exists());
    }

    #[test]
    fn a_corrupt_journal_is_named_with_a_fix() {
        let state = tempfile::tempdir().unwrap();
        let dir = state.path().join("renewal");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("broker.journal.json"), "{not json").unwrap();
        let e = Journal::open(dir.as_path(), "broker")
            .unwrap_err()
            .to_string();
        assert!(e.contains("broker.journal.json"), "{e}");
        assert!(e.contains("delete it"), "{e}");
    }
}

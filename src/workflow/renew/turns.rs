//! Shared resources of one run's certificates: a turn per DNS-01 record name that more
//! than one certificate needs, and the dry run's throw-away directory.
//!
//! Owns: those. Does not own what is done while holding them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::CertificateSpec;

/// One lock per DNS-01 record name that more than one certificate of the run needs (an RSA
/// and an ECDSA certificate for one broker name, say). Each run reads the TXT set at the
/// name, writes it back with its own value added, and later without it: two at once would
/// overwrite each other's value, and the one whose value vanished would wait for it until
/// the propagation timeout. In name order (a `BTreeMap`), so that taking them in iteration
/// order never makes a cycle.
pub(super) fn challenge_name_turns(
    specs: &[CertificateSpec],
) -> BTreeMap<String, Arc<tokio::sync::Mutex<()>>> {
    let mut users: BTreeMap<String, usize> = Default::default();
    for spec in specs {
        for n in challenge_names(spec) {
            *users.entry(n).or_default() += 1;
        }
    }
    users
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(name, _)| (name, Default::default()))
        .collect()
}

/// The DNS-01 record names of `spec`, sorted and once each (an apex and its wildcard share
/// one).
pub(super) fn challenge_names(spec: &CertificateSpec) -> BTreeSet<String> {
    spec.domains
        .iter()
        .map(|d| d.challenge_name().as_str().to_string())
        .collect()
}

/// A directory removed on drop.
pub(super) struct TempDir(PathBuf);

impl TempDir {
    pub(super) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fresh private directory for a dry run's certificate.
pub(super) fn dry_run_dir() -> std::io::Result<TempDir> {
    let dir = std::env::temp_dir().join(format!(
        "brokercert-dry-run-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    // 0700 from the start, whatever the umask (it will hold a private key).
    crate::store::create_dir_exact(&dir, crate::store::strict::DIR_MODE)?;
    Ok(TempDir(dir))
}

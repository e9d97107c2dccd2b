//! What the store holds for each certificate of a run — its renewal state, its journal and
//! its stored leaf — read and parsed ahead of the certificate's attempt, a chunk of
//! certificates at a time on the blocking pool, one chunk per CPU.
//!
//! Why: a run over a thousand certificates with nothing due is mostly these reads (three
//! files, JSON and X.509 per certificate); on the run's own task they used one CPU of the
//! machine's. One hand-off to the blocking pool per certificate cost more CPU than it saved
//! (about 25 µs a certificate, measured); in chunks of [`CHUNK`] it is paid once a chunk.
//!
//! Owns: the read-ahead and its bound (at most one chunk per CPU ahead of the certificates
//! in progress). Does not own the files' formats (`renew::state`, `renew::journal`, `pki`),
//! nor what is decided from them (the phases), nor how they are opened (`store`).

use std::path::PathBuf;
use std::sync::Arc;

use futures::{Stream, StreamExt};

use super::observe;
use crate::config::CertificateSpec;
use crate::error::Error;
use crate::pki::certificate::Certificate;
use crate::renew::journal::Journal;
use crate::renew::state::{self, RenewalState};
use crate::store::{StateFiles, StoreError};

/// Certificates read by one hand-off to the blocking pool.
const CHUNK: usize = 32;

/// What the store holds for one certificate when its attempt starts.
pub(super) struct Stored {
    /// Its renewal state, and a warning when the file was damaged.
    pub(super) state: (RenewalState, Option<String>),
    /// Its journal (what an interrupted run left).
    pub(super) journal: Result<Journal, StoreError>,
    /// The leaf of its stored certificate.
    pub(super) live: Result<Option<Certificate>, Error>,
}

/// Where a run's certificates' files are read from.
#[derive(Clone)]
pub(super) struct Dirs {
    /// The renewal directory (states; journals too, but in a dry run), held open.
    pub(super) renewal: Arc<StateFiles>,
    /// The store's `live` directory, held open.
    pub(super) live: Arc<StateFiles>,
    /// A dry run's journals (in its throw-away store).
    pub(super) dry_run_journals: Option<PathBuf>,
}

impl Dirs {
    /// Reads and parses `name`'s files.
    fn read(&self, name: &str) -> Stored {
        Stored {
            state: state::load_in(&self.renewal, name),
            journal: match &self.dry_run_journals {
                Some(dir) => Journal::open(dir, name),
                None => Journal::open_in(&self.renewal, name),
            },
            live: observe::read_live_in(&self.live, name),
        }
    }
}

/// The stored files of each of `certs`, in order, read ahead on the blocking pool.
pub(super) fn read_ahead<'a>(
    dirs: &Dirs,
    certs: &'a [CertificateSpec],
) -> impl Stream<Item = Stored> + 'a {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let dirs = dirs.clone();
    futures::stream::iter(certs.chunks(CHUNK))
        .map(move |chunk| read_chunk(dirs.clone(), chunk))
        .buffered(cpus)
        .flat_map(futures::stream::iter)
}

async fn read_chunk(dirs: Dirs, chunk: &[CertificateSpec]) -> Vec<Stored> {
    let names: Vec<String> = chunk.iter().map(|s| s.name.clone()).collect();
    let count = names.len();
    let path = dirs.renewal.path().to_path_buf();
    let read = move || names.iter().map(|n| dirs.read(n)).collect::<Vec<_>>();
    match tokio::task::spawn_blocking(read).await {
        Ok(stored) => stored,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // Only when the runtime shuts down, which ends the run anyway.
        Err(_) => (0..count)
            .map(|_| Stored {
                state: (RenewalState::default(), None),
                journal: Err(StoreError::Io {
                    action: "read the state files in",
                    path: path.clone(),
                    source: std::io::Error::other("the runtime stopped while they were read"),
                }),
                live: Ok(None),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::test_fakes::{now, settings, store_certificate};

    #[tokio::test]
    async fn every_certificate_gets_its_own_files_in_order_across_chunks() {
        let dir = tempfile::tempdir().expect("temp dir");
        let settings = settings(dir.path());
        store_certificate(&settings, now());
        // More certificates than one chunk holds; only `broker` has files.
        let mut certs = Vec::new();
        for i in 0..(CHUNK * 2 + 3) {
            let mut spec = settings.certificates[0].clone();
            if i != CHUNK + 1 {
                spec.name = format!("other{i}");
            }
            certs.push(spec);
        }
        let dirs = Dirs {
            renewal: Arc::new(StateFiles::open(&settings.state_dir.join("renewal"))),
            live: Arc::new(StateFiles::open(&settings.state_dir.join("live"))),
            dry_run_journals: None,
        };
        let read: Vec<Stored> = read_ahead(&dirs, &certs).collect().await;
        assert_eq!(read.len(), certs.len());
        for (i, stored) in read.iter().enumerate() {
            let live = stored.live.as_ref().expect("readable");
            assert_eq!(
                live.is_some(),
                i == CHUNK + 1,
                "certificate {i} ({}) got another's leaf",
                certs[i].name
            );
            assert!(stored.journal.is_ok());
        }
    }
}

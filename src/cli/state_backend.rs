//! The commands' side of remote state (`state_dir = "s3://…"`): connecting and checking the
//! bucket, filling the working copy before a command works, and the request counts
//! `--timings` prints.
//!
//! Owns: when these happen and what the user is told. Does not own: the S3 requests
//! (`store::s3`), the working copy (`store::mirror`), the leases around one certificate's
//! work (`workflow::lease_turn`).

use std::sync::Arc;

use crate::config::Settings;
use crate::store::backend::StateBackend;
use crate::store::s3::S3Backend;

use super::{exit, output};

/// For remote state: connects, refuses a bucket that may be public, and fills the working
/// copy (`settings.state_dir`); called again, fills it again. Local state: nothing. `Err`:
/// the exit code, already reported.
pub fn attach(settings: &Settings) -> Result<(), i32> {
    let Some(remote) = &settings.state_remote else {
        return Ok(());
    };
    let fail = |e: crate::store::StoreError| {
        output::error(&e.to_string());
        exit::STORE
    };
    // A long-running command (`schedule`) refreshes the working copy each cycle.
    if let Some(m) = crate::store::mirror::active() {
        return m.pull().map(|_| ()).map_err(fail);
    }
    let backend = S3Backend::connect(remote.location.clone()).map_err(fail)?;
    if let Some(note) = backend.check_bucket().map_err(fail)? {
        output::warning(&note);
    }
    let backend: Arc<dyn StateBackend> = Arc::new(backend);
    crate::store::mirror::attach(&settings.state_dir, backend).map_err(fail)?;
    Ok(())
}

/// `state: s3://b/p — 12 requests (GET 8, …)` for `--timings`; `None` for local state.
pub fn timings_line() -> Option<String> {
    let m = crate::store::mirror::active()?;
    Some(format!(
        "state backend {}: {}",
        m.backend().describe(),
        m.backend().counters().summary()
    ))
}

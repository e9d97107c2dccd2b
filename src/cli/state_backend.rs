//! The commands' side of remote state (`state_dir = "s3://…"`): connecting and checking the
//! bucket, filling the working copy before a command works, the leases around one
//! certificate's work, and the request counts `--timings` prints.
//!
//! Owns: when these happen and what the user is told. Does not own: the S3 requests
//! (`store::s3`), the working copy (`store::mirror`), the leases (`renew::lease`).

use std::sync::Arc;

use crate::config::{CertificateSpec, Settings};
use crate::renew::lease::{self, Acquired, Holder, Leases};
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

/// How often a run waiting for a DNS-01 name's lease asks again.
const DNS_TURN_POLL: std::time::Duration = std::time::Duration::from_secs(2);

/// What [`lease_certificate`] decided.
#[derive(Debug)]
pub enum Turn {
    /// Local state, or the leases are this run's: go on (they are released on drop).
    Go(Option<Leases>),
    /// Another run holds a lease, or finished this certificate after this run read it: the
    /// line to report; this run leaves the certificate alone.
    Skip(String),
}

/// Takes the leases of `spec` (the certificate and its DNS-01 record names) for remote
/// state, then makes sure no other run changed the certificate since this run read it.
pub fn lease_certificate(
    settings: &Settings,
    spec: &CertificateSpec,
    command: &str,
) -> Result<Turn, crate::store::StoreError> {
    let (Some(remote), Some(m)) = (&settings.state_remote, crate::store::mirror::active()) else {
        return Ok(Turn::Go(None));
    };
    let names: Vec<String> = spec
        .domains
        .iter()
        .map(|d| d.challenge_name().as_str().to_string())
        .collect();
    let keys = lease::keys(&spec.name, &names);
    let holder = Holder::this_process(command, remote.lease_ttl);
    // A DNS-01 name another certificate's run is using: take turns (wait for it, up to two
    // lease lifetimes). This certificate itself in another run's hands: leave it to that run.
    let patience = std::time::Instant::now() + 2 * remote.lease_ttl;
    let mut said = false;
    let acquired = loop {
        match lease::acquire(m.backend().clone(), &keys, &holder)? {
            Acquired::Busy { key, holder: other }
                if key.starts_with("leases/dns/") && std::time::Instant::now() < patience =>
            {
                if !said {
                    eprintln!(
                        "{}: waiting for the DNS-01 name `{}`, in use by {}",
                        spec.name,
                        key.trim_start_matches("leases/dns/"),
                        other.describe()
                    );
                    said = true;
                }
                crate::workflow::blocking::blocking(|| std::thread::sleep(DNS_TURN_POLL));
            }
            other => break other,
        }
    };
    match acquired {
        Acquired::Busy { key, holder } if key.starts_with("leases/dns/") => {
            Ok(Turn::Skip(format!(
                "left to the next run: the DNS-01 name `{}` stayed in use by {}",
                key.trim_start_matches("leases/dns/"),
                holder.describe()
            )))
        }
        Acquired::Busy { key, holder } => Ok(Turn::Skip(format!(
            "left to another run: `{key}` in {} is held by {}; that run does the work",
            m.backend().describe(),
            holder.describe()
        ))),
        Acquired::Held(leases) => {
            // Renewed (or resumed) elsewhere between this run's read and its lease?
            for key in [
                format!("live/{}", spec.name),
                format!("renewal/{}.journal.json", spec.name),
            ] {
                if m.changed_remotely(&key)? {
                    return Ok(Turn::Skip(format!(
                        "left to the next run: another run changed `{key}` in {} while this one was deciding",
                        m.backend().describe()
                    )));
                }
            }
            Ok(Turn::Go(Some(leases)))
        }
    }
}

//! Whose turn it is, with state in S3: the leases of one certificate (and of its DNS-01
//! record names) taken before work that changes anything, so that runners on different
//! machines never work on the same certificate or DNS-01 name at once.
//!
//! Owns: which leases a certificate needs, taking turns on a shared DNS-01 name, and the
//! re-check that no other run changed the certificate meanwhile. Does not own the lease
//! protocol (`renew::lease`) nor the working copy (`store::mirror`); local state needs no
//! lease (the state lock, `renew::lock`, covers one machine).

use crate::config::{CertificateSpec, Settings};
use crate::renew::lease::{self, Acquired, Holder, Leases};

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
    say: &dyn Fn(&str),
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
                    say(&format!(
                        "{}: waiting for the DNS-01 name `{}`, in use by {}",
                        spec.name,
                        key.trim_start_matches("leases/dns/"),
                        other.describe()
                    ));
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

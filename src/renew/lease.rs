//! Leases across machines, for remote state (`state_dir = "s3://…"`): one object per
//! certificate (`leases/certificate/<name>`) and per DNS-01 record name
//! (`leases/dns/_acme-challenge.<name>`), taken with a create-only write
//! (`If-None-Match: *`), extended while the work goes on and taken over once expired with
//! a replace-if-unchanged write (`If-Match: <etag>`), and deleted (that version only) at the
//! end. A live lease is refused with a message naming its holder.
//!
//! Owns: the lease objects, their timing and the messages. Does not own: the local
//! directory's lock (`renew::lock`, which stays for the working copy), what is done under
//! the lease.

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::store::StoreError;
use crate::store::backend::{Condition, Put, Sensitivity, StateBackend};

/// How long a lease lasts without being extended, unless `state.lease_ttl` says otherwise.
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);

/// What a lease object says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    /// This run's identity (host, process, random).
    pub holder: String,
    /// The machine.
    pub host: String,
    /// The command (`renew`, `issue`).
    pub command: String,
    /// Until when, unless extended.
    #[serde(with = "time::serde::rfc3339")]
    pub expires: OffsetDateTime,
}

impl LeaseRecord {
    /// `brokercert renew on runner-7 (holder runner-7/4242/9f3a…), until 2026-12-07T21:05:00Z`.
    pub fn describe(&self) -> String {
        format!(
            "brokercert {} on {} (holder {}), lease until {}",
            self.command,
            self.host,
            self.holder,
            self.expires
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
        )
    }
}

/// Who this process is, for its leases.
#[derive(Debug, Clone)]
pub struct Holder {
    /// Unique per process.
    pub id: String,
    /// The machine's name.
    pub host: String,
    /// The command.
    pub command: String,
    /// How long a lease lasts between extensions.
    pub ttl: Duration,
}

impl Holder {
    /// This process running `command`.
    pub fn this_process(command: &str, ttl: Duration) -> Holder {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "unknown-host".into());
        Holder {
            id: format!(
                "{host}/{}/{:08x}",
                std::process::id(),
                rand::random::<u32>()
            ),
            host,
            command: command.to_string(),
            ttl: ttl.max(Duration::from_secs(3)),
        }
    }

    fn record(&self) -> LeaseRecord {
        LeaseRecord {
            holder: self.id.clone(),
            host: self.host.clone(),
            command: self.command.clone(),
            expires: (OffsetDateTime::now_utc() + self.ttl)
                .replace_nanosecond(0)
                .unwrap_or_else(|_| OffsetDateTime::now_utc() + self.ttl),
        }
    }

    fn body(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(&self.record()).unwrap_or_default()
    }
}

/// The lease object keys for a certificate and its DNS-01 record names, in the order they
/// are taken (always the same order, so two runners never wait on each other in a cycle).
pub fn keys(certificate: &str, challenge_names: &[String]) -> Vec<String> {
    let mut names: Vec<String> = challenge_names
        .iter()
        .map(|n| {
            format!(
                "leases/dns/{}",
                n.trim_end_matches('.').to_ascii_lowercase()
            )
        })
        .collect();
    names.sort();
    names.dedup();
    let mut out = vec![format!("leases/certificate/{certificate}")];
    out.extend(names);
    out
}

/// Leases held; extended in the background, released on drop.
#[derive(Debug)]
pub struct Leases {
    backend: Arc<dyn StateBackend>,
    held: Arc<std::sync::Mutex<Vec<(String, String)>>>,
    stop: Option<mpsc::Sender<()>>,
    extender: Option<std::thread::JoinHandle<()>>,
}

/// The answer to [`acquire`].
#[derive(Debug)]
pub enum Acquired {
    /// All taken.
    Held(Leases),
    /// One is held by another run, which is named.
    Busy {
        /// The lease key.
        key: String,
        /// Its holder.
        holder: LeaseRecord,
    },
}

/// Takes every lease of `keys` or none. An expired lease is taken over (and said so on
/// stderr); a live one makes this [`Acquired::Busy`].
pub fn acquire(
    backend: Arc<dyn StateBackend>,
    keys: &[String],
    holder: &Holder,
) -> Result<Acquired, StoreError> {
    let mut held: Vec<(String, String)> = Vec::new();
    let release_all = |held: &[(String, String)]| {
        for (k, etag) in held {
            let _ = backend.delete(k, Some(etag));
        }
    };
    for key in keys {
        match take(backend.as_ref(), key, holder) {
            Ok(Taken::Yes(etag)) => held.push((key.clone(), etag)),
            Ok(Taken::Busy(record)) => {
                release_all(&held);
                return Ok(Acquired::Busy {
                    key: key.clone(),
                    holder: record,
                });
            }
            Err(e) => {
                release_all(&held);
                return Err(e);
            }
        }
    }
    let held = Arc::new(std::sync::Mutex::new(held));
    let (tx, rx) = mpsc::channel::<()>();
    let extender = {
        let (backend, held, holder) = (backend.clone(), held.clone(), holder.clone());
        std::thread::Builder::new()
            .name("brokercert-lease".into())
            .spawn(move || extend_until_stopped(backend.as_ref(), &held, &holder, &rx))
            .ok()
    };
    Ok(Acquired::Held(Leases {
        backend,
        held,
        stop: Some(tx),
        extender,
    }))
}

enum Taken {
    Yes(String),
    Busy(LeaseRecord),
}

fn take(backend: &dyn StateBackend, key: &str, holder: &Holder) -> Result<Taken, StoreError> {
    // A few rounds: the lease may vanish or change between the failed create and the read.
    for _ in 0..3 {
        if let Put::Written(etag) =
            backend.put(key, &holder.body(), Condition::Absent, Sensitivity::Public)?
        {
            return Ok(Taken::Yes(etag));
        }
        let Some(current) = backend.get(key)? else {
            continue;
        };
        let record: Option<LeaseRecord> = serde_json::from_slice(&current.bytes).ok();
        let now = OffsetDateTime::now_utc();
        match record {
            Some(r) if r.expires > now => return Ok(Taken::Busy(r)),
            other => {
                // Expired (or unreadable): take it over, only if it is still that version.
                if let Put::Written(etag) = backend.put(
                    key,
                    &holder.body(),
                    Condition::Unchanged(current.etag.clone()),
                    Sensitivity::Public,
                )? {
                    eprintln!(
                        "taking over the lease `{key}` in {}: {}",
                        backend.describe(),
                        other
                            .map(|r| format!("{} expired; that run is gone", r.describe()))
                            .unwrap_or_else(|| "its content was unreadable".into())
                    );
                    return Ok(Taken::Yes(etag));
                }
            }
        }
    }
    // Still contended after three rounds: someone else is taking it right now.
    match backend
        .get(key)?
        .and_then(|o| serde_json::from_slice::<LeaseRecord>(&o.bytes).ok())
    {
        Some(r) => Ok(Taken::Busy(r)),
        None => Ok(Taken::Busy(LeaseRecord {
            holder: "another run".into(),
            host: "unknown".into(),
            command: "unknown".into(),
            expires: OffsetDateTime::now_utc(),
        })),
    }
}

fn extend_until_stopped(
    backend: &dyn StateBackend,
    held: &std::sync::Mutex<Vec<(String, String)>>,
    holder: &Holder,
    stop: &mpsc::Receiver<()>,
) {
    let every = holder.ttl / 3;
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(every) {
        let Ok(mut held) = held.lock() else { return };
        for (key, etag) in held.iter_mut() {
            match backend.put(
                key,
                &holder.body(),
                Condition::Unchanged(etag.clone()),
                Sensitivity::Public,
            ) {
                Ok(Put::Written(new)) => *etag = new,
                Ok(Put::ConditionFailed) => eprintln!(
                    "warning: the lease `{key}` in {} was taken by another run while this one worked (it expired: the run was stalled longer than `state.lease_ttl`)",
                    backend.describe()
                ),
                Err(e) => eprintln!("warning: cannot extend the lease `{key}`: {e}"),
            }
        }
    }
}

impl Leases {
    /// The keys held.
    pub fn keys(&self) -> Vec<String> {
        self.held
            .lock()
            .map(|h| h.iter().map(|(k, _)| k.clone()).collect())
            .unwrap_or_default()
    }
}

impl Drop for Leases {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.extender.take() {
            let _ = t.join();
        }
        if let Ok(held) = self.held.lock() {
            for (key, etag) in held.iter().rev() {
                if let Err(e) = self.backend.delete(key, Some(etag)) {
                    eprintln!(
                        "warning: cannot release the lease `{key}` ({e}); it expires by itself"
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::backend::LocalBackend;

    fn holder(id: &str, ttl: Duration) -> Holder {
        Holder {
            id: id.into(),
            host: format!("host-{id}"),
            command: "renew".into(),
            ttl,
        }
    }

    #[test]
    fn a_live_lease_is_refused_naming_its_holder_and_released_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let b: Arc<dyn StateBackend> = Arc::new(LocalBackend::new(dir.path().join("s")));
        let keys = keys("mqtt", &["_acme-challenge.mqtt.example.test.".into()]);
        assert_eq!(
            keys,
            vec![
                "leases/certificate/mqtt".to_string(),
                "leases/dns/_acme-challenge.mqtt.example.test".to_string()
            ]
        );
        let Acquired::Held(first) = acquire(b.clone(), &keys, &holder("a", DEFAULT_TTL)).unwrap()
        else {
            panic!("free leases must be taken")
        };
        let Acquired::Busy { key, holder: h } =
            acquire(b.clone(), &keys, &holder("b", DEFAULT_TTL)).unwrap()
        else {
            panic!("a live lease must be refused")
        };
        assert_eq!(key, "leases/certificate/mqtt");
        assert!(
            h.describe().contains("on host-a (holder a)"),
            "{}",
            h.describe()
        );
        // The other certificate sharing the DNS-01 name waits too, and leaves nothing behind.
        let other = super::keys("mqtt-rsa", &["_acme-challenge.mqtt.example.test".into()]);
        assert!(matches!(
            acquire(b.clone(), &other, &holder("c", DEFAULT_TTL)).unwrap(),
            Acquired::Busy { .. }
        ));
        assert!(b.get("leases/certificate/mqtt-rsa").unwrap().is_none());
        drop(first);
        assert!(b.list("leases/").unwrap().is_empty());
        assert!(matches!(
            acquire(b.clone(), &keys, &holder("b", DEFAULT_TTL)).unwrap(),
            Acquired::Held(_)
        ));
    }

    #[test]
    fn an_expired_lease_is_taken_over_and_a_live_one_is_extended() {
        let dir = tempfile::tempdir().unwrap();
        let b: Arc<dyn StateBackend> = Arc::new(LocalBackend::new(dir.path().join("s")));
        let keys = keys("mqtt", &[]);
        let stale = LeaseRecord {
            holder: "gone".into(),
            host: "vanished".into(),
            command: "renew".into(),
            expires: OffsetDateTime::now_utc() - time::Duration::minutes(1),
        };
        b.put(
            &keys[0],
            &serde_json::to_vec(&stale).unwrap(),
            Condition::None,
            Sensitivity::Public,
        )
        .unwrap();
        let Acquired::Held(taken) =
            acquire(b.clone(), &keys, &holder("new", Duration::from_secs(3))).unwrap()
        else {
            panic!("an expired lease must be taken over")
        };
        let before = b.get(&keys[0]).unwrap().unwrap();
        let r: LeaseRecord = serde_json::from_slice(&before.bytes).unwrap();
        assert_eq!(r.holder, "new");
        // Extended every ttl/3 while held.
        std::thread::sleep(Duration::from_millis(1500));
        let after = b.get(&keys[0]).unwrap().unwrap();
        assert_ne!(before.etag, after.etag, "not extended");
        drop(taken);
        assert!(b.get(&keys[0]).unwrap().is_none());
    }
}

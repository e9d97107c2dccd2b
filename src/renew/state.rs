//! What renewal remembers between runs, per certificate: the ARI window and the time picked
//! in it, consecutive failures (for the backoff), the last error, and which certificate was
//! last deployed and verified.
//!
//! Owns: `renewal/<name>.json` (atomic, 0600). Losing it is harmless — renewal then reads
//! what is deployed from the target — so a damaged file is reported and replaced, never fatal.
//! Does not own the decision (`policy`) or the in-flight journal (`journal`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::store::{StateFiles, StoreError, atomic_write, ensure_renewal_dir};

/// The CA's renewal information for one certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AriRecord {
    /// SHA-256 fingerprint of the certificate it is about.
    pub fingerprint: String,
    /// Window start.
    #[serde(with = "time::serde::rfc3339")]
    pub start: OffsetDateTime,
    /// Window end.
    #[serde(with = "time::serde::rfc3339")]
    pub end: OffsetDateTime,
    /// The time picked inside the window (kept while the window does not change).
    #[serde(with = "time::serde::rfc3339")]
    pub chosen: OffsetDateTime,
    /// When to ask the CA again (its `Retry-After`).
    #[serde(with = "time::serde::rfc3339")]
    pub next_check: OffsetDateTime,
    /// The CA's explanation, if any.
    #[serde(default)]
    pub explanation_url: Option<String>,
}

/// Per-certificate renewal state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewalState {
    /// ARI, when the CA offers it.
    #[serde(default)]
    pub ari: Option<AriRecord>,
    /// The CA has no ARI (checked at `ari_absent_checked`).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub ari_absent_checked: Option<OffsetDateTime>,
    /// Consecutive failed attempts.
    #[serde(default)]
    pub failures: u32,
    /// When the last failure happened.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_failure: Option<OffsetDateTime>,
    /// Its one-line message.
    #[serde(default)]
    pub last_error: Option<String>,
    /// Its exit code.
    #[serde(default)]
    pub last_code: Option<i32>,
    /// Not before this: the CA's `Retry-After` on its last rate limit.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub retry_not_before: Option<OffsetDateTime>,
    /// When the last renewal (or deployment) succeeded.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_success: Option<OffsetDateTime>,
    /// Fingerprint of the certificate last deployed and verified.
    #[serde(default)]
    pub deployed_fingerprint: Option<String>,
    /// Which CA issued the stored certificate (so that `issue` can keep it only for the
    /// same CA); `None` for certificates stored by an older brokercert.
    #[serde(default)]
    pub issued_by: Option<IssuedBy>,
}

/// The ACME directory that issued one stored certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedBy {
    /// SHA-256 fingerprint of the certificate.
    pub fingerprint: String,
    /// The ACME directory URL.
    pub directory: String,
    /// The profile it was ordered with (`acme.profile`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
}

impl RenewalState {
    /// The directory that issued the certificate with `fingerprint`, when recorded.
    pub fn issuer_of(&self, fingerprint: &str) -> Option<&str> {
        self.issued_by
            .as_ref()
            .filter(|i| i.fingerprint == fingerprint)
            .map(|i| i.directory.as_str())
    }

    /// The profile the certificate with `fingerprint` was ordered with, when recorded.
    pub fn profile_of(&self, fingerprint: &str) -> Option<&str> {
        self.issued_by
            .as_ref()
            .filter(|i| i.fingerprint == fingerprint)
            .and_then(|i| i.profile.as_deref())
    }

    /// Records that `settings`' CA and profile issued the certificate with `fingerprint`.
    pub fn record_issuer(&mut self, fingerprint: &str, acme: &crate::config::AcmeSettings) {
        self.issued_by = Some(IssuedBy {
            fingerprint: fingerprint.to_string(),
            directory: acme.directory.clone(),
            profile: acme.profile.clone(),
        });
    }
}

/// The state file of certificate `name`.
pub fn path(renewal_dir: &Path, name: &str) -> PathBuf {
    renewal_dir.join(format!("{name}.json"))
}

/// Loads the state; a missing file is the default state, a damaged one is reported in the
/// returned warning and replaced by the default.
pub fn load(renewal_dir: &Path, name: &str) -> (RenewalState, Option<String>) {
    load_in(&StateFiles::by_path(renewal_dir), name)
}

/// [`load`] from the renewal directory held open (a run over many certificates).
pub fn load_in(renewal: &StateFiles, name: &str) -> (RenewalState, Option<String>) {
    let file = format!("{name}.json");
    let p = renewal.path().join(&file);
    match renewal.read(&file) {
        Ok(Some(text)) => match serde_json::from_str(&text) {
            Ok(s) => (s, None),
            Err(e) => (
                RenewalState::default(),
                Some(format!(
                    "ignoring the damaged renewal state `{}` ({e}); it will be rewritten",
                    p.display()
                )),
            ),
        },
        Ok(None) => (RenewalState::default(), None),
        Err(e) => (
            RenewalState::default(),
            Some(format!("{e}; starting afresh")),
        ),
    }
}

/// Saves the state atomically.
pub fn save(renewal_dir: &Path, name: &str, state: &RenewalState) -> Result<(), StoreError> {
    ensure_renewal_dir(renewal_dir)?;
    let p = path(renewal_dir, name);
    let text = serde_json::to_string_pretty(state).map_err(|e| StoreError::Corrupt {
        path: p.clone(),
        message: e.to_string(),
    })?;
    atomic_write(&p, text.as_bytes(), 0o600)
}

/// Remembers in the renewal state (`renewal/<name>.json`) until when the CA asked not to
/// be asked again (a rate limit's `Retry-After`), with the failure's message and exit
/// code, so that `renew` waits for it.
pub fn record_rate_limit(
    renewal_dir: &Path,
    name: &str,
    until: OffsetDateTime,
    message: String,
    code: i32,
) -> Result<(), StoreError> {
    let (mut st, _) = load(renewal_dir, name);
    st.retry_not_before = Some(until);
    st.last_error = Some(message);
    st.last_code = Some(code);
    save(renewal_dir, name, &st)
}

/// Remembers in the renewal state that the certificate with `fingerprint` is deployed and
/// verified (at `now`), as `renew` does after its own deployments, so that the next `renew`
/// knows it is done instead of observing the targets and verifying it once more.
pub fn record_deployed(
    renewal_dir: &Path,
    name: &str,
    fingerprint: &str,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let (mut st, _) = load(renewal_dir, name);
    st.deployed_fingerprint = Some(fingerprint.to_string());
    st.last_success = Some(now);
    save(renewal_dir, name, &st)
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let state = tempfile::tempdir().unwrap();
        let dir = state.path().join("renewal");
        let (s, w) = load(dir.as_path(), "b");
        assert_eq!(s, RenewalState::default());
        assert!(w.is_none());
        let s = RenewalState {
            ari: Some(AriRecord {
                fingerprint: "ab".into(),
                start: datetime!(2026-12-01 00:00 UTC),
                end: datetime!(2026-12-03 00:00 UTC),
                chosen: datetime!(2026-12-02 06:00 UTC),
                next_check: datetime!(2026-11-24 00:00 UTC),
                explanation_url: None,
            }),
            failures: 2,
            last_failure: Some(datetime!(2026-11-23 10:00 UTC)),
            last_error: Some("x".into()),
            ..Default::default()
        };
        save(dir.as_path(), "b", &s).unwrap();
        assert_eq!(load(dir.as_path(), "b").0, s);
        std::fs::write(path(dir.as_path(), "b"), "][").unwrap();
        let (s2, w) = load(dir.as_path(), "b");
        assert_eq!(s2, RenewalState::default());
        assert!(w.unwrap().contains("damaged"));
    }
}

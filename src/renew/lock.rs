//! One writing command at a time per state directory: `issue`, `renew`, `schedule` (per
//! cycle), `deploy` and `remove` take an exclusive advisory lock on `renewal/.lock`, released
//! by the OS when the process exits — even when it is killed. Without it a hand-run `issue`
//! and the cron `renew` of the same certificate would publish and remove each other's DNS-01
//! values, and write the same live directory and the same deployment at once.
//!
//! The lock file is opened without following a link and kept 0600 (see `store::strict`).
//!
//! Owns: the lock file and the message naming the holder (its PID and command). Does not own
//! waiting policy beyond a bounded wait, nor what a busy lock means for the exit code.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::store::strict::{open_state_file, own_state_file};
use crate::store::{StoreError, ensure_renewal_dir};

/// A held lock; dropping it releases the lock.
#[derive(Debug)]
pub struct StateLock {
    _file: File,
    path: PathBuf,
}

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error(
        "another brokercert {} is working on this state directory (lock `{}`); this run did \
         nothing. Wait for it to finish, or pass `--wait DURATION` to wait for it",
        holder.as_ref().map(Holder::describe).unwrap_or_else(|| "command".to_string()),
        path.display()
    )]
    Busy {
        /// The lock file.
        path: PathBuf,
        /// Who it recorded.
        holder: Option<Holder>,
    },
    /// The lock file could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The process a lock file names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// Its PID.
    pub pid: String,
    /// Its command (`renew`, `issue` …); empty when an older version wrote only the PID.
    pub command: String,
}

impl Holder {
    /// Reads `PID [COMMAND]` as written by [`StateLock::acquire`].
    fn parse(text: &str) -> Option<Holder> {
        let mut words = text.split_whitespace();
        let pid = words.next()?.to_string();
        Some(Holder {
            pid,
            command: words.next().unwrap_or_default().to_string(),
        })
    }

    /// "renew (pid 42)".
    pub fn describe(&self) -> String {
        let command = if self.command.is_empty() {
            "command"
        } else {
            &self.command
        };
        format!("{command} (pid {})", self.pid)
    }
}

impl StateLock {
    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Takes the lock under `renewal_dir` for `command` (recorded for the other process's
    /// message), waiting up to `wait` for another holder.
    pub async fn acquire(
        renewal_dir: &Path,
        wait: Duration,
        command: &str,
    ) -> Result<StateLock, LockError> {
        ensure_renewal_dir(renewal_dir)?;
        let path = renewal_dir.join(".lock");
        // Never through a link: a planted `.lock` → /etc/… would have this run truncate and
        // write that file. Mode 0600 from creation, whatever the umask.
        let mut file = open_state_file(
            &path,
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600),
            "open the renewal lock",
        )?;
        own_state_file(&path, &file, 0o600)?;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) => {
                    if tokio::time::Instant::now() >= deadline {
                        let mut holder = String::new();
                        let _ = file.read_to_string(&mut holder);
                        return Err(LockError::Busy {
                            path,
                            holder: Holder::parse(&holder),
                        });
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(TryLockError::Error(e)) => {
                    return Err(StoreError::Io {
                        action: "lock",
                        path,
                        source: e,
                    }
                    .into());
                }
            }
        }
        // Record who holds it, for the other process's message.
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = write!(file, "{} {command}", std::process::id());
        let _ = file.flush();
        Ok(StateLock { _file: file, path })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn second_holder_is_refused_until_the_first_lets_go() {
        // In a state directory: a temp directory itself is in /tmp, where no state directory
        // may be (see `store::strict`).
        let state = tempfile::tempdir().unwrap();
        let dir = state.path().join("renewal");
        let first = StateLock::acquire(dir.as_path(), Duration::ZERO, "issue")
            .await
            .unwrap();
        let e = StateLock::acquire(dir.as_path(), Duration::from_millis(300), "renew")
            .await
            .unwrap_err()
            .to_string();
        let pid = std::process::id();
        assert!(e.contains(&format!("brokercert issue (pid {pid})")), "{e}");
        assert!(e.contains("did nothing"), "{e}");
        assert!(e.contains("--wait DURATION"), "{e}");
        drop(first);
        StateLock::acquire(dir.as_path(), Duration::ZERO, "renew")
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_waiting_holder_gets_the_lock_when_the_first_lets_go() {
        let state = tempfile::tempdir().unwrap();
        let dir = state.path().join("renewal");
        let first = StateLock::acquire(dir.as_path(), Duration::ZERO, "renew")
            .await
            .unwrap();
        let path = dir.clone();
        let waiter = tokio::spawn(async move {
            StateLock::acquire(&path, Duration::from_secs(10), "issue").await
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!waiter.is_finished(), "took a held lock");
        drop(first);
        let second = waiter.await.unwrap().unwrap();
        let text = std::fs::read_to_string(second.path()).unwrap();
        assert_eq!(text, format!("{} issue", std::process::id()));
    }

    #[tokio::test]
    async fn a_planted_link_is_refused_and_what_it_points_to_is_untouched() {
        let state = tempfile::tempdir().unwrap();
        let dir = state.path().join("renewal");
        std::fs::create_dir(&dir).unwrap();
        let victim = state.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        std::os::unix::fs::symlink(&victim, dir.join(".lock")).unwrap();
        let e = StateLock::acquire(&dir, Duration::ZERO, "renew")
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("symbolic link"), "{e}");
        assert!(e.contains(".lock"), "{e}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    }

    #[tokio::test]
    async fn a_lock_file_an_older_version_left_0666_becomes_0600() {
        use std::os::unix::fs::PermissionsExt;
        let state = tempfile::tempdir().unwrap();
        let dir = state.path().join("renewal");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join(".lock"), "1 renew").unwrap();
        std::fs::set_permissions(dir.join(".lock"), std::fs::Permissions::from_mode(0o666))
            .unwrap();
        let lock = StateLock::acquire(&dir, Duration::ZERO, "renew")
            .await
            .unwrap();
        let mode = std::fs::metadata(lock.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn holders_written_by_older_versions_still_read() {
        let h = Holder::parse("4242\n").unwrap();
        assert_eq!(h.describe(), "command (pid 4242)");
        assert_eq!(Holder::parse("  "), None);
        assert_eq!(
            Holder::parse("7 deploy").unwrap().describe(),
            "deploy (pid 7)"
        );
    }
}

//! One `renew` (or `schedule`) at a time per state directory: an exclusive advisory lock on
//! `renewal/.lock`, released by the OS when the process exits — even when it is killed.
//!
//! Owns: the lock file and the message naming the holder. Does not own waiting policy
//! beyond a bounded wait.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::store::{StoreError, ensure_dir};

/// A held lock; dropping it releases the lock.
#[derive(Debug)]
pub struct RenewLock {
    _file: File,
    path: PathBuf,
}

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error(
        "another brokercert renew or schedule{} is working on `{}`; this run did nothing. \
         Wait for it to finish (or pass `--wait DURATION` to wait for it)",
        holder.as_ref().map(|p| format!(" (pid {p})")).unwrap_or_default(),
        path.display()
    )]
    Busy {
        /// The lock file.
        path: PathBuf,
        /// The PID it recorded.
        holder: Option<String>,
    },
    /// The lock file could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl RenewLock {
    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Takes the lock under `renewal_dir`, waiting up to `wait` for another holder.
    pub async fn acquire(renewal_dir: &Path, wait: Duration) -> Result<RenewLock, LockError> {
        ensure_dir(renewal_dir, 0o700)?;
        let path = renewal_dir.join(".lock");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| StoreError::Io {
                action: "open the renewal lock",
                path: path.clone(),
                source: e,
            })?;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) => {
                    if tokio::time::Instant::now() >= deadline {
                        let mut holder = String::new();
                        let _ = file.read_to_string(&mut holder);
                        let holder = holder.trim().to_string();
                        return Err(LockError::Busy {
                            path,
                            holder: (!holder.is_empty()).then_some(holder),
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
        let _ = write!(file, "{}", std::process::id());
        let _ = file.flush();
        Ok(RenewLock { _file: file, path })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = RenewLock::acquire(dir.path(), Duration::ZERO)
            .await
            .unwrap();
        let e = RenewLock::acquire(dir.path(), Duration::from_millis(300))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains(&std::process::id().to_string()), "{e}");
        assert!(e.contains("did nothing"), "{e}");
        drop(first);
        RenewLock::acquire(dir.path(), Duration::ZERO)
            .await
            .unwrap();
    }
}

//! Child processes of the sandbox (moto, Pebble): spawning with output sent to a log
//! file, stopping by PID (SIGTERM, then SIGKILL after a grace period) and reaping,
//! plus the `free_port()` helper.
//!
//! This file does not know which program it runs or how to tell that it is ready:
//! that belongs to `moto.rs` and `pebble.rs`.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::{Result, SandboxError};

/// How long a child gets between SIGTERM and SIGKILL when it is stopped.
pub const DEFAULT_STOP_GRACE: Duration = Duration::from_millis(1500);

/// A spawned child process that is stopped and reaped when dropped.
///
/// Only this very process is signalled, by its PID; nothing is killed by name.
#[derive(Debug)]
pub struct ChildGuard {
    name: String,
    child: Option<Child>,
    pid: u32,
    log_path: PathBuf,
    grace: Duration,
}

impl ChildGuard {
    /// Spawns `cmd` with stdin closed and stdout and stderr appended to `log_path`.
    pub fn spawn(name: &str, mut cmd: Command, log_path: &Path) -> Result<Self> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .map_err(|e| SandboxError::io(format!("opening log file {}", log_path.display()), e))?;
        let log_err = log.try_clone().map_err(|e| {
            SandboxError::io(format!("duplicating log file {}", log_path.display()), e)
        })?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err));
        let child = cmd
            .spawn()
            .map_err(|e| SandboxError::io(format!("starting {name} ({cmd:?})"), e))?;
        let pid = child.id();
        tracing::debug!(name, pid, log = %log_path.display(), "sandbox child started");
        Ok(Self {
            name: name.to_owned(),
            child: Some(child),
            pid,
            log_path: log_path.to_owned(),
            grace: DEFAULT_STOP_GRACE,
        })
    }

    /// Sets the time between SIGTERM and SIGKILL used by [`ChildGuard::stop`] and Drop.
    pub fn set_stop_grace(&mut self, grace: Duration) {
        self.grace = grace;
    }

    /// A short name of the process, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The PID of the child (still reported after it was stopped).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The file that receives the child's stdout and stderr.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The last `max_bytes` of the log file (lossy UTF-8), for error messages.
    pub fn log_tail(&self, max_bytes: u64) -> String {
        log_tail(&self.log_path, max_bytes)
    }

    /// `Some(status)` once the child has exited by itself (it is then reaped); `None` while
    /// it runs, and after [`ChildGuard::stop`].
    pub fn try_exit_status(&mut self) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => Some(status),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(name = %self.name, pid = self.pid, error = %e, "try_wait failed");
                None
            }
        }
    }

    /// Whether the child is still running (not exited, not stopped).
    pub fn is_running(&mut self) -> bool {
        self.child.is_some() && self.try_exit_status().is_none()
    }

    /// Sends SIGTERM without waiting (so several children can be stopped in parallel).
    pub fn terminate(&mut self) {
        if self.is_running() {
            send_sigterm(self.pid);
        }
    }

    /// Stops the child: SIGTERM, up to the grace period for it to exit, then SIGKILL;
    /// always reaps it. Idempotent.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        send_sigterm(self.pid);
        let deadline = Instant::now() + self.grace;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    tracing::debug!(name = %self.name, pid = self.pid, %status, "sandbox child stopped");
                    return;
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Ok(None) | Err(_) => break,
            }
        }
        tracing::debug!(name = %self.name, pid = self.pid, "sandbox child ignored SIGTERM; SIGKILL");
        if let Err(e) = child.kill() {
            tracing::warn!(name = %self.name, pid = self.pid, error = %e, "SIGKILL failed");
        }
        if let Err(e) = child.wait() {
            tracing::warn!(name = %self.name, pid = self.pid, error = %e, "reaping failed");
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sends SIGTERM to exactly this PID (std has no portable way, so `kill -TERM <pid>`).
fn send_sigterm(pid: u32) {
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if let Err(e) = status {
        tracing::warn!(pid, error = %e, "could not run `kill -TERM`");
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read, release).
///
/// Another process may take it before the child binds it: callers that spawn a server on
/// it should retry with a new port when the child exits at startup.
///
/// Never the same port twice in one process (the last [`HANDED_OUT`] ports are remembered):
/// in a fresh network namespace the kernel hands out port numbers again soon after they
/// were released, and two servers of one sandbox waiting to bind the same number would
/// find each other instead of themselves.
pub fn free_port() -> Result<u16> {
    static RECENT: std::sync::Mutex<std::collections::VecDeque<u16>> =
        std::sync::Mutex::new(std::collections::VecDeque::new());
    // Ports skipped stay bound until a new one is found, so the kernel cannot offer them again.
    let mut skipped = Vec::new();
    loop {
        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .map_err(|e| SandboxError::io("binding 127.0.0.1:0 to find a free port", e))?;
        let port = listener
            .local_addr()
            .map_err(|e| SandboxError::io("reading the port of 127.0.0.1:0", e))?
            .port();
        let mut recent = RECENT
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if recent.contains(&port) {
            skipped.push(listener);
            continue;
        }
        if recent.len() >= HANDED_OUT {
            recent.pop_front();
        }
        recent.push_back(port);
        return Ok(port);
    }
}

/// How many ports [`free_port`] remembers.
const HANDED_OUT: usize = 4096;

/// Whether a process with this PID exists and is not a zombie (Linux `/proc`).
pub fn pid_is_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses: "123 (name) S ...".
        Ok(stat) => match stat.rfind(')') {
            Some(i) => !matches!(stat[i + 1..].trim_start().chars().next(), Some('Z' | 'X')),
            None => true,
        },
        Err(_) => false,
    }
}

/// The last `max_bytes` of a file (lossy UTF-8); an explanation if it can't be read.
pub fn log_tail(path: &Path, max_bytes: u64) -> String {
    let read = || -> std::io::Result<String> {
        let mut f = File::open(path)?;
        let len = f.metadata()?.len();
        f.seek(SeekFrom::Start(len.saturating_sub(max_bytes)))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    };
    read().unwrap_or_else(|e| format!("(log {} unreadable: {e})", path.display()))
}

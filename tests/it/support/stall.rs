//! Runs of `brokercert` held inside a stage: the debug build's `BROKERCERT_STALL_AFTER`
//! hook stops a run right after `stage`'s side effects and says "stalled after stage"; the
//! test then kills it there (SIGKILL for kill-anywhere, SIGTERM for a clean stop) or runs a
//! second command beside it.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

use super::TestEnv;

/// What the stall hook prints once the run is held.
const STALLED: &str = "stalled after stage";

/// A `brokercert` run held after a stage; killed when dropped.
pub struct Stalled {
    pub child: tokio::process::Child,
    /// What it printed on stderr up to and including the stall line.
    pub seen: String,
}

/// Starts `brokercert ARGS` (sandbox environment plus `vars`) to stall after `stage` and
/// waits up to `limit` until it says so. `Err(output)` when it ended or never got there.
pub async fn start_stalled(
    env: &TestEnv,
    args: &[&str],
    stage: &str,
    vars: &[(&str, &str)],
    limit: Duration,
) -> Result<Stalled, String> {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_brokercert"));
    cmd.args(args)
        .env_remove("BROKERCERT_CONFIG")
        .env_remove("BROKERCERT_STATE_DIR")
        .env("NO_COLOR", "1")
        .env("BROKERCERT_STALL_AFTER", stage)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    env.sb.configure_command(&mut cmd);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let mut child = tokio::process::Command::from(cmd)
        .kill_on_drop(true)
        .spawn()
        .expect("spawn brokercert");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let mut seen = String::new();
    let held = tokio::time::timeout(limit, async {
        while let Ok(Some(line)) = lines.next_line().await {
            seen.push_str(&line);
            seen.push('\n');
            if line.contains(STALLED) {
                return true;
            }
        }
        false
    })
    .await;
    if matches!(held, Ok(true)) {
        // Keep draining stderr so the held run never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Stalled { child, seen })
    } else {
        let _ = child.start_kill();
        let _ = child.wait().await;
        Err(seen)
    }
}

impl Stalled {
    /// SIGKILLs the held run (no clean-up can run) and reaps it.
    pub async fn kill(mut self) -> String {
        self.child.start_kill().expect("SIGKILL");
        let status = self.child.wait().await.expect("reap");
        assert!(!status.success(), "killed");
        self.seen
    }

    /// Sends SIGTERM to the held run and waits up to `limit` for its exit status.
    pub async fn terminate(mut self, limit: Duration) -> (std::process::ExitStatus, String) {
        let pid = self.child.id().expect("pid") as i32;
        // SAFETY: signalling the child this test started, by its PID.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let status = tokio::time::timeout(limit, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("the held run ended within {limit:?} of SIGTERM"))
            .expect("status");
        (status, self.seen)
    }
}

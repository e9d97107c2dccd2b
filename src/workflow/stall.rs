//! A test hook for crash-safety tests: with `BROKERCERT_STALL_AFTER=<stage>` in the
//! environment, the process stops making progress right after that stage's side effects (a
//! DNS write, an order, a stored file, a deployment) and before the stage is recorded as
//! done, so a test can SIGKILL it at the worst moment and check that the next run converges.
//!
//! Owns: the variable and the message. Unset (always, in real use) it does nothing.

/// The environment variable naming the stage to stall after.
pub const STALL_ENV: &str = "BROKERCERT_STALL_AFTER";

/// Stalls forever if `STALL_ENV` names `stage`.
pub fn after(stage: &str) {
    if std::env::var(STALL_ENV).is_ok_and(|s| s == stage) {
        eprintln!("brokercert: stalled after stage `{stage}` ({STALL_ENV} is set: a test hook)");
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}

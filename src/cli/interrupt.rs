//! Ctrl-C (or SIGTERM) during the waits after a certificate is stored: the deployment's
//! apply, the verification's settle time. Stopping there changes nothing that is already
//! done, so the first signal says what was being waited for, that the deployment finishes
//! on its own and what to run later, and the command exits 130.
//!
//! Owns: that race and its message. Does not own the interruption of the issue workflow
//! (its own clean-up, in `workflow::issue`) or of `renew` (its `Stop`).

use std::future::Future;

use super::output;
use super::progress_display::CertProgress;
use crate::error::exit;

/// Runs `work`; when Ctrl-C or SIGTERM comes first, stops it, prints what was in progress
/// and `then` (what happens now and what to run later), and returns exit code 130.
pub async fn unless_interrupted<T>(
    progress: &CertProgress,
    then: &str,
    work: impl Future<Output = T>,
) -> Result<T, i32> {
    tokio::select! {
        r = work => Ok(r),
        () = super::shutdown_signal() => {
            say_interrupted(progress, then);
            Err(exit::INTERRUPTED)
        }
    }
}

/// Says that Ctrl-C or SIGTERM stopped the step or wait in progress, then `then`.
pub fn say_interrupted(progress: &CertProgress, then: &str) {
    progress.renderer().clear();
    output::error(&message(progress.current().as_deref(), then));
}

/// Whether the step or wait in progress (the one an interruption stopped) is in `stage`.
pub fn during(progress: &CertProgress, stage: crate::progress::Stage) -> bool {
    progress
        .current()
        .is_some_and(|c| c.starts_with(&format!("{}:", stage.as_str())))
}

fn message(current: Option<&str>, then: &str) -> String {
    match current {
        Some(c) => format!("interrupted (Ctrl-C or SIGTERM) while waiting — {c}. {then}"),
        None => format!("interrupted (Ctrl-C or SIGTERM). {then}"),
    }
}

/// What to say after an interrupted deployment or verification of `name`, whose
/// certificate is stored in `live_dir`.
pub fn after_deploy(name: &str, live_dir: &std::path::Path) -> String {
    format!(
        "Nothing is undone: a deployment already sent finishes on its own, and the certificate \
         stays stored in {}. Check it later with `{}`, or send it again with `{}`",
        live_dir.display(),
        crate::hint::command(&format!("verify {name}")),
        crate::hint::command(&format!("deploy {name}")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_names_the_wait_in_progress() {
        let m = message(
            Some("deploy: EMQX Cloud: pending (3 s; next check in 30 s)"),
            "then",
        );
        assert_eq!(
            m,
            "interrupted (Ctrl-C or SIGTERM) while waiting — deploy: EMQX Cloud: pending (3 s; next check in 30 s). then"
        );
        assert_eq!(
            message(None, "then"),
            "interrupted (Ctrl-C or SIGTERM). then"
        );
    }
}

//! A test hook for crash-safety tests: with `BROKERCERT_STALL_AFTER=<stage>` in the
//! environment, the process stops making progress right after that stage's side effects (a
//! DNS write, an order, a stored file, a deployment) and before the stage is recorded as
//! done, so a test can SIGKILL it at the worst moment and check that the next run converges.
//!
//! Only debug builds (what `cargo test` runs) have it: in a release build, the one users
//! install, the variable does nothing. A stalled process still ends on SIGTERM or Ctrl-C
//! (exit 143) instead of ignoring them: the stalled task cannot poll the run's own signal
//! listener, so the stall listens on a thread of its own.
//!
//! Owns: the variable, the message and the stall. Unset (always, in real use) it does nothing.

/// The environment variable naming the stage to stall after.
pub const STALL_ENV: &str = "BROKERCERT_STALL_AFTER";

/// Stalls (until SIGTERM or Ctrl-C) if `STALL_ENV` names `stage`; a debug build only.
pub fn after(stage: &str) {
    if !cfg!(debug_assertions) {
        return;
    }
    if !std::env::var(STALL_ENV).is_ok_and(|s| s == stage) {
        return;
    }
    let stage_name = stage.to_string();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let listener = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        if let Ok(rt) = rt {
            rt.block_on(async {
                let mut term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
                let mut int =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok();
                // Both are listened to from here on: the message tests wait for may go out.
                let _ = ready_tx.send(());
                let term = async {
                    match term.as_mut() {
                        Some(t) => {
                            t.recv().await;
                        }
                        None => std::future::pending().await,
                    }
                };
                let int = async {
                    match int.as_mut() {
                        Some(i) => {
                            i.recv().await;
                        }
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = int => {}
                    _ = term => {}
                }
            });
        }
        eprintln!("brokercert: stopped while stalled after stage `{stage_name}`");
        std::process::exit(143);
    });
    // The listener is registered before the message that tests wait for.
    let _ = ready_rx.recv_timeout(std::time::Duration::from_secs(10));
    eprintln!("brokercert: stalled after stage `{stage}` ({STALL_ENV} is set: a test hook)");
    let _ = listener.join();
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

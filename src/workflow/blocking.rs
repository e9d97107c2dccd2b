//! Runs a short blocking call (a state file written and synced to disk) from the async
//! workflow without stalling the run's other certificates.
//!
//! A file sync can take milliseconds, and on a 2-CPU machine the runtime has 2 worker
//! threads: a fleet renewal whose certificates each sync a dozen files used to hold both
//! workers while the others' DNS answers and CA responses waited. On a multi-threaded
//! runtime the worker first hands its other tasks to another thread (`block_in_place`); on
//! a current-thread runtime (unit tests) the call simply runs.
//!
//! Owns nothing but that hand-off.

use tokio::runtime::{Handle, RuntimeFlavor};

/// Runs `f`, letting the runtime move this worker's other tasks elsewhere meanwhile.
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

#[cfg(test)]
mod tests {
    use super::blocking;

    #[test]
    fn runs_outside_a_runtime() {
        assert_eq!(blocking(|| 1 + 1), 2);
    }

    #[tokio::test]
    async fn runs_on_a_current_thread_runtime() {
        assert_eq!(blocking(|| "done"), "done");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn lets_other_tasks_run_on_a_multi_threaded_runtime() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        // Both on the runtime's only worker thread: one blocks, the other must still run.
        let seen = tokio::spawn(async {
            let ran = Arc::new(AtomicBool::new(false));
            let flag = ran.clone();
            let other = tokio::spawn(async move { flag.store(true, Ordering::SeqCst) });
            let seen = blocking(|| {
                let until = std::time::Instant::now() + std::time::Duration::from_secs(2);
                while !ran.load(Ordering::SeqCst) && std::time::Instant::now() < until {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                ran.load(Ordering::SeqCst)
            });
            other.await.unwrap();
            seen
        })
        .await
        .unwrap();
        assert!(seen, "the other task did not run while this one blocked");
    }
}

//! Private keys for a run's certificates, generated one per CPU at a time, first asked
//! first served, on threads of lower priority, while the certificates' orders and DNS work
//! are in flight.
//!
//! Owns: how many keys are generated at once in this process and in which order, and keys
//! started before they are asked for ([`prefetch`]). Does not own the key itself
//! (`pki::keys`) or when a certificate asks for one (`issue`).
//!
//! Why: a fleet renewal starts up to `renew.concurrency` certificates together, and each
//! used to start its own key at once. Fifty RSA 2048 keys on two CPUs then all finished at
//! about the same moment, 1.5 s in, and only then did fifty finalizations, CSR signatures
//! and certificate downloads start, all together. Taking turns (one key per CPU, in the
//! order asked) finishes the first keys after tens of milliseconds, so the first
//! certificates finalize and are stored while the later keys are still being generated:
//! the CA's and the store's work hides under the key generation instead of following it.
//! A single certificate is unchanged: its key is generated at once, beside its DNS work.

use std::sync::{Mutex, OnceLock};

use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::pki::keys::{KeyError, KeyType, PrivateKey};

/// One permit per CPU: the keys being generated right now. Tokio's semaphore is fair, so
/// keys are handed out in the order they were asked for.
fn turns() -> &'static Semaphore {
    static TURNS: OnceLock<Semaphore> = OnceLock::new();
    TURNS.get_or_init(|| Semaphore::new(cpus()))
}

/// The CPUs this process may use (at least one).
fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Keys [`prefetch`] started, oldest first, for [`generate`] to hand out.
type Started = Vec<(KeyType, JoinHandle<Result<PrivateKey, KeyError>>)>;

fn started() -> &'static Mutex<Started> {
    static STARTED: OnceLock<Mutex<Started>> = OnceLock::new();
    STARTED.get_or_init(|| Mutex::new(Vec::new()))
}

/// Starts a key of `key_type` now, for the next [`generate`] of that type: `issue` calls it
/// as soon as it knows a new key will be needed, before it connects to the CA and Route 53,
/// so the key is ready by the time the order is. Needs a Tokio runtime.
pub fn prefetch(key_type: KeyType) {
    let handle = tokio::spawn(generate_now(key_type));
    if let Ok(mut s) = started().lock() {
        s.push((key_type, handle));
    }
}

/// A new key of `key_type`: one [`prefetch`] started, or one generated now, once a CPU's
/// turn is free.
pub async fn generate(key_type: KeyType) -> Result<PrivateKey, KeyError> {
    let early = started().lock().ok().and_then(|mut s| {
        let i = s.iter().position(|(t, _)| *t == key_type)?;
        Some(s.remove(i).1)
    });
    match early {
        Some(handle) => handle.await.unwrap_or_else(|e| Err(stopped(key_type, &e))),
        None => generate_now(key_type).await,
    }
}

/// A new key of `key_type`, generated on a thread of its own at a lower priority once a
/// CPU's turn is free.
///
/// Why a lower priority: while fifty RSA keys are generated on every CPU, the run's own
/// task (orders, DNS-01 records, the CA's and Route 53's answers: the work every
/// certificate waits on, and which keeps the CA and Route 53 busy meanwhile) got only a
/// share of a CPU, and the fleet's orders trickled out over a second. At nice +10 a key
/// takes only the CPU nothing else wants; alone (one certificate) it still gets a whole
/// CPU. Its own thread, because a thread's priority cannot be raised again without
/// privileges: a pooled thread would keep the lower one for later work.
async fn generate_now(key_type: KeyType) -> Result<PrivateKey, KeyError> {
    // The semaphore is never closed, so acquiring cannot fail; if it somehow did, the key
    // is generated without waiting for a turn.
    let _turn = turns().acquire().await.ok();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let started = std::thread::Builder::new()
        .name("brokercert-key".into())
        .spawn(move || {
            lower_priority();
            let _ = tx.send(timed(key_type));
        });
    if let Err(e) = started {
        return Err(KeyError::Generate {
            key_type,
            reason: format!("cannot start a thread to generate it: {e}"),
        });
    }
    // A panic in the thread drops the sender.
    rx.await.unwrap_or_else(|_| {
        Err(KeyError::Generate {
            key_type,
            reason: "the key generation thread stopped".into(),
        })
    })
}

/// The nice value of a key generation thread (0 is normal, 19 the lowest priority).
const KEY_NICE: i32 = 10;

/// Lowers this thread's priority to [`KEY_NICE`]. Linux keeps the nice value per thread and
/// `setpriority(PRIO_PROCESS, 0, …)` sets the calling thread's (setpriority(2), "BUGS"); an
/// unprivileged thread may lower its priority but not raise it again.
/// If it cannot be set, the key is generated at the priority the thread has.
fn lower_priority() {
    let _ = rustix::process::setpriority_process(None, KEY_NICE);
}

/// Generates a key on this thread and says (at debug level) how long it took and how much of
/// this thread's CPU: the floor of a fleet renewal is its keys' CPU time spread over the
/// machine's CPUs, and an RSA key's time varies several-fold from key to key.
fn timed(key_type: KeyType) -> Result<PrivateKey, KeyError> {
    let (cpu_before, started) = (thread_cpu(), std::time::Instant::now());
    let key = PrivateKey::generate(key_type);
    let cpu = thread_cpu()
        .zip(cpu_before)
        .map(|(after, before)| after.saturating_sub(before).as_micros() as u64);
    tracing::debug!(
        key_type = %key_type,
        took_us = started.elapsed().as_micros() as u64,
        cpu_us = cpu,
        "key generated"
    );
    key
}

/// This thread's time on a CPU so far, from `/proc/thread-self/schedstat` (its first field is
/// the time spent on the CPU in nanoseconds: the kernel's `Documentation/scheduler/sched-stats.rst`);
/// None where the kernel does not keep it. A file read, not the vDSO clock: under valgrind
/// (`.ci/symbol-order`) rustix's vDSO set-up stops callgrind.
fn thread_cpu() -> Option<std::time::Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = stat.split_whitespace().next()?.parse().ok()?;
    Some(std::time::Duration::from_nanos(ns))
}

fn stopped(key_type: KeyType, e: &tokio::task::JoinError) -> KeyError {
    KeyError::Generate {
        key_type,
        reason: format!("the key generation task stopped: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn keys_are_generated_no_more_than_one_per_cpu_at_a_time() {
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..(cpus() * 3 + 1))
            .map(|_| {
                let (running, most) = (running.clone(), most.clone());
                tokio::spawn(async move {
                    let _turn = turns().acquire().await.ok();
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                    running.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("task");
        }
        assert!(most.load(Ordering::SeqCst) <= cpus());
        assert!(most.load(Ordering::SeqCst) >= 1);
    }

    #[tokio::test]
    async fn a_prefetched_key_goes_to_the_next_caller_of_its_type() {
        prefetch(KeyType::EcdsaP384);
        assert!(
            started()
                .lock()
                .expect("lock")
                .iter()
                .any(|(t, _)| *t == KeyType::EcdsaP384)
        );
        let key = generate(KeyType::EcdsaP384).await.expect("key");
        assert_eq!(key.key_type(), Some(KeyType::EcdsaP384));
        assert!(
            !started()
                .lock()
                .expect("lock")
                .iter()
                .any(|(t, _)| *t == KeyType::EcdsaP384),
            "the prefetched key was handed out, not left behind"
        );
    }

    #[test]
    fn a_key_thread_runs_below_the_normal_priority() {
        let ours = rustix::process::getpriority_process(None);
        let nice = std::thread::spawn(|| {
            lower_priority();
            rustix::process::getpriority_process(None)
        })
        .join()
        .expect("thread");
        assert!(
            nice.is_ok_and(|n| n >= KEY_NICE),
            "the key thread's nice value: {nice:?}"
        );
        // A runner that is itself niced (above KEY_NICE) leaves both at its value.
        assert_eq!(
            rustix::process::getpriority_process(None).ok(),
            ours.ok(),
            "only that thread was lowered, not the test's"
        );
    }

    #[test]
    fn a_threads_cpu_time_is_read_and_grows_with_work() {
        let Some(before) = thread_cpu() else {
            return; // a kernel without schedstat: the key's CPU is simply not logged
        };
        // Busy for 50 ms of wall time (the kernel updates the figure at least every tick).
        let spin = std::time::Instant::now();
        let mut x = 0u64;
        while spin.elapsed() < std::time::Duration::from_millis(50) {
            for i in 0..10_000u64 {
                x = x.wrapping_mul(31).wrapping_add(i);
            }
            std::hint::black_box(x);
        }
        let after = thread_cpu().expect("read again");
        assert!(after > before, "{before:?} → {after:?}");
    }

    #[tokio::test]
    async fn generates_a_key_of_the_asked_type() {
        let key = generate(KeyType::EcdsaP256).await.expect("key");
        assert_eq!(key.key_type(), Some(KeyType::EcdsaP256));
    }
}

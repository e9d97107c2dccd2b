//! Keeps one run's new-order requests and authorization reads from overlapping at the CA.
//!
//! Why: Pebble, the test CA most users run their CI against (2.4 in Debian, and its current
//! source), deadlocks under that mix. Reading an authorization locks the authorization and
//! then its store; a new order reads the store and then every authorization; any writer
//! queued between them (another order) closes the circle, and from then on every request
//! hangs. A fleet renewal, where some certificates read their authorizations while others
//! still place orders, hit it about once in ten runs. Let's Encrypt's production CA does
//! not need the gate, and it costs little: requests of one kind still run together, and
//! the kinds take turns (a waiting kind goes next, so neither starves).
//!
//! Owns the turn-taking only; which requests are of which kind is `client`'s.

use std::sync::Mutex;

use tokio::sync::Notify;

/// The two kinds of request that must not overlap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// `newOrder`.
    NewOrder,
    /// Reading (and answering) authorizations.
    Authorizations,
}

impl Phase {
    fn index(self) -> usize {
        match self {
            Phase::NewOrder => 0,
            Phase::Authorizations => 1,
        }
    }

    fn other(self) -> Phase {
        match self {
            Phase::NewOrder => Phase::Authorizations,
            Phase::Authorizations => Phase::NewOrder,
        }
    }
}

#[derive(Debug, Default)]
struct State {
    /// The kind running now (or, with `running == 0`, handed the next turn).
    active: Option<Phase>,
    running: usize,
    /// Callers queued per kind.
    waiting: [usize; 2],
    /// Queued callers of the active kind let in by the last hand-over.
    admitted: usize,
}

/// The gate. One per CA client, shared by every order it makes.
#[derive(Debug, Default)]
pub struct PhaseGate {
    state: Mutex<State>,
    changed: Notify,
}

/// Held while a request of one kind runs; dropping it lets the other kind go.
#[derive(Debug)]
pub struct PhaseGuard<'a> {
    gate: &'a PhaseGate,
}

impl PhaseGate {
    /// A gate with nothing running.
    pub fn new() -> PhaseGate {
        PhaseGate::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is a few counters, consistent after every statement: a panic elsewhere
        // while it was held leaves nothing half-done.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until requests of `phase` may run, and holds that turn until the guard drops.
    /// Cancel-safe: a caller dropped while queued leaves the queue.
    pub async fn enter(&self, phase: Phase) -> PhaseGuard<'_> {
        let mut place = Queued {
            gate: self,
            phase,
            queued: false,
        };
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut s = self.lock();
                let other_waits = s.waiting[phase.other().index()] > 0;
                let may = match s.active {
                    None => true,
                    // Same kind: join, unless the other kind waits (then only the callers
                    // this turn was handed to may still come in).
                    Some(p) if p == phase => !other_waits || (place.queued && s.admitted > 0),
                    Some(_) => false,
                };
                if may {
                    if place.queued {
                        s.waiting[phase.index()] -= 1;
                        s.admitted = s.admitted.saturating_sub(1);
                        place.queued = false;
                    }
                    s.active = Some(phase);
                    s.running += 1;
                    return PhaseGuard { gate: self };
                }
                if !place.queued {
                    s.waiting[phase.index()] += 1;
                    place.queued = true;
                }
            }
            notified.await;
        }
    }

    /// With nothing running, gives the next turn to the kind that waits (`prefer` first),
    /// and wakes the queue.
    fn hand_over(&self, mut s: std::sync::MutexGuard<'_, State>, prefer: Phase) {
        let next = [prefer, prefer.other()]
            .into_iter()
            .find(|p| s.waiting[p.index()] > 0);
        s.active = next;
        s.admitted = next.map(|p| s.waiting[p.index()]).unwrap_or(0);
        drop(s);
        self.changed.notify_waiters();
    }
}

/// A caller's place in the queue; leaving it (cancelled) must not strand the other kind.
struct Queued<'a> {
    gate: &'a PhaseGate,
    phase: Phase,
    queued: bool,
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        if !self.queued {
            return;
        }
        let mut s = self.gate.lock();
        let i = self.phase.index();
        s.waiting[i] -= 1;
        if s.active == Some(self.phase) {
            s.admitted = s.admitted.saturating_sub(1);
            if s.running == 0 && s.waiting[i] == 0 {
                // The turn was handed to this caller's kind and nobody of it is left.
                self.gate.hand_over(s, self.phase.other());
            }
        }
    }
}

impl Drop for PhaseGuard<'_> {
    fn drop(&mut self) {
        let mut s = self.gate.lock();
        s.running -= 1;
        if s.running > 0 {
            return;
        }
        // The last of this turn: the other kind goes next if it waits.
        match s.active {
            Some(ended) => self.gate.hand_over(s, ended.other()),
            None => drop(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[derive(Default)]
    struct Inside {
        now: [AtomicUsize; 2],
        most: [AtomicUsize; 2],
        overlaps: AtomicUsize,
    }

    async fn visit(gate: &PhaseGate, inside: &Inside, phase: Phase, hold: Duration) {
        let _g = gate.enter(phase).await;
        let i = phase.index();
        let n = inside.now[i].fetch_add(1, Ordering::SeqCst) + 1;
        inside.most[i].fetch_max(n, Ordering::SeqCst);
        if inside.now[1 - i].load(Ordering::SeqCst) > 0 {
            inside.overlaps.fetch_add(1, Ordering::SeqCst);
        }
        tokio::time::sleep(hold).await;
        inside.now[i].fetch_sub(1, Ordering::SeqCst);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_two_kinds_never_overlap_and_each_runs_together() {
        let gate = Arc::new(PhaseGate::new());
        let inside = Arc::new(Inside::default());
        let mut tasks = Vec::new();
        for n in 0..60u64 {
            let (gate, inside) = (gate.clone(), inside.clone());
            let phase = if n % 3 == 0 {
                Phase::Authorizations
            } else {
                Phase::NewOrder
            };
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(n % 7)).await;
                visit(&gate, &inside, phase, Duration::from_millis(5 + n % 4)).await;
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(inside.overlaps.load(Ordering::SeqCst), 0);
        assert!(
            inside.most[0].load(Ordering::SeqCst) > 1,
            "orders ran one by one"
        );
        assert!(
            inside.most[1].load(Ordering::SeqCst) > 1,
            "reads ran one by one"
        );
        let s = gate.lock();
        assert_eq!((s.active, s.running, s.waiting), (None, 0, [0, 0]));
    }

    #[tokio::test]
    async fn a_cancelled_waiter_does_not_strand_the_other_kind() {
        let gate = PhaseGate::new();
        let order = gate.enter(Phase::NewOrder).await;
        // A read queues behind the order, then gives up.
        let gave_up =
            tokio::time::timeout(Duration::from_millis(20), gate.enter(Phase::Authorizations))
                .await;
        assert!(gave_up.is_err());
        // Another order still joins at once (no read waits any more) ...
        let second = tokio::time::timeout(Duration::from_millis(100), gate.enter(Phase::NewOrder))
            .await
            .expect("a second order joins the first");
        drop((order, second));
        // ... and with the turn handed over to a read that left, a read still gets in.
        let read = gate.enter(Phase::Authorizations);
        let read = tokio::time::timeout(Duration::from_millis(100), read)
            .await
            .expect("reads are not stranded");
        drop(read);
        let s = gate.lock();
        assert_eq!((s.active, s.running, s.waiting), (None, 0, [0, 0]));
    }

    #[tokio::test]
    async fn a_turn_handed_to_callers_who_left_passes_on() {
        let gate = Arc::new(PhaseGate::new());
        let order = gate.enter(Phase::NewOrder).await;
        let g = gate.clone();
        let read = tokio::spawn(async move {
            let _r = g.enter(Phase::Authorizations).await;
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        // Queued: an order behind the read.
        let g = gate.clone();
        let late_order = tokio::spawn(async move {
            let _o = g.enter(Phase::NewOrder).await;
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        read.abort();
        let _ = read.await;
        drop(order);
        tokio::time::timeout(Duration::from_secs(1), late_order)
            .await
            .expect("the queued order runs once the read left")
            .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_stream_of_one_kind_does_not_starve_the_other() {
        let gate = Arc::new(PhaseGate::new());
        let inside = Arc::new(Inside::default());
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        // New orders keep coming, overlapping each other, for as long as the test runs.
        let mut stream = Vec::new();
        for lane in 0..3u64 {
            let (gate, inside, stop) = (gate.clone(), inside.clone(), stop.clone());
            stream.push(tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(lane * 3)).await;
                while !stop.load(Ordering::SeqCst) {
                    visit(&gate, &inside, Phase::NewOrder, Duration::from_millis(10)).await;
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
        let started = std::time::Instant::now();
        tokio::time::timeout(
            Duration::from_secs(5),
            visit(&gate, &inside, Phase::Authorizations, Duration::ZERO),
        )
        .await
        .expect("the read got its turn");
        assert!(started.elapsed() < Duration::from_millis(500));
        stop.store(true, Ordering::SeqCst);
        for t in stream {
            t.await.unwrap();
        }
        assert_eq!(inside.overlaps.load(Ordering::SeqCst), 0);
    }
}

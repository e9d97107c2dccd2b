//! One DNS provider shared by certificates renewed at the same time: change batches per
//! zone, one zone listing per run, one status poll per change, and an account-wide
//! request rate (Route 53 allows 10 requests per second per account, bursts of 50; we
//! default to half of that for other tools sharing the account).
//!
//! Owns: coalescing concurrent `change` calls for the same hosted zone into one
//! `ChangeResourceRecordSets` batch (changes to the same record set never share a batch),
//! falling back to one batch per caller when a shared batch is refused; coalescing
//! concurrent `record_sets` reads of a zone into one read of all their names (one
//! `ListResourceRecordSets` walk of the zone), falling back to one read per caller when it
//! fails; caching `hosted_zones` and single-flighting `change_status`, and the token bucket.
//!
//! When does a batch go? Certificates renewed together register as *participants*
//! ([`Batching::participate`]). A zone's batch goes as soon as every participant is
//! waiting on Route 53 (so nobody can add to it any more): fifty certificates that all
//! reach "publish TXT" share one batch per zone, and their fifty clean-ups share another,
//! however far apart they arrive. A participant busy elsewhere (at the CA, say) is waited
//! for at most [`PARTICIPANT_WAIT_WINDOWS`] batch windows (5 s by default): the run ends
//! with its slowest certificate anyway, and every batch saved is a request of the
//! account's rate. Callers that are not participants get the plain debounce: the batch
//! goes once no new change has arrived for one window (at most 20 windows).
//!
//! Reads go the same way, with one difference for changes: a participant waiting on a
//! read counts as waiting for the reads, but not for the changes, since it reads a record
//! set in order to change it. Were it counted, every certificate's read would release the
//! changes queued so far, and a fleet would send one change batch per certificate.
//!
//! Does not own: what to change (the workflow) or any wire protocol (the inner provider).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

use super::provider::{ChangeStatus, DnsProvider};
use super::{ChangeId, DnsError, HostedZone, RecordChange, RecordSet, RecordType};

/// How many batch windows a participant's batch waits for the others at most.
pub const PARTICIPANT_WAIT_WINDOWS: u32 = 100;
/// How many batch windows a non-participant's batch waits at most (plain debounce).
const DEBOUNCE_WAIT_WINDOWS: u32 = 20;

/// Route 53 accepts up to 1,000 changes per batch; stay well below.
const MAX_CHANGES_PER_BATCH: usize = 200;

/// A token bucket: at most `rate` requests per second sustained, bursts of up to five
/// times that. Route 53's own bucket per account holds 50 requests and refills at 10 a
/// second
/// ([throttling](https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/throttling-api-requests.html));
/// at the default rate of 5 this keeps to half its rate and half its burst. The six
/// requests of one issuance (zones, read, change, then read and change to clean up) never
/// wait (with a burst of only `rate` the sixth waited about 100 ms), nor do the 16 of a
/// fleet's first DNS round over five zones (zones; a read, a change and its status per
/// zone), which with a burst of 10 waited 1.2 s for tokens while the CA sat idle.
#[derive(Debug)]
pub struct RateLimit {
    rate: f64,
    state: tokio::sync::Mutex<(f64, Instant)>,
}

impl RateLimit {
    /// `rate` requests per second (values ≤ 0 mean unlimited).
    pub fn per_second(rate: f64) -> Self {
        Self {
            rate,
            state: tokio::sync::Mutex::new((Self::burst(rate), Instant::now())),
        }
    }

    /// The bucket's size for `rate`.
    fn burst(rate: f64) -> f64 {
        (5.0 * rate).max(1.0)
    }

    /// Waits for a token.
    pub async fn acquire(&self) {
        if self.rate <= 0.0 || !self.rate.is_finite() {
            return;
        }
        let mut s = self.state.lock().await;
        let now = Instant::now();
        let burst = Self::burst(self.rate);
        s.0 = (s.0 + now.duration_since(s.1).as_secs_f64() * self.rate).min(burst);
        s.1 = now;
        if s.0 < 1.0 {
            let wait = Duration::from_secs_f64((1.0 - s.0) / self.rate);
            // Holding the lock while sleeping keeps callers in arrival order.
            tokio::time::sleep(wait).await;
            s.0 = 1.0;
            s.1 = Instant::now();
        }
        s.0 -= 1.0;
    }
}

type Reply = oneshot::Sender<Result<ChangeId, DnsError>>;

struct Waiter {
    changes: Vec<RecordChange>,
    comment: String,
    reply: Reply,
}

type ReadReply = oneshot::Sender<Result<Option<Vec<RecordSet>>, DnsError>>;

/// A caller waiting for the record sets at `name`.
struct ReadWaiter {
    name: String,
    reply: ReadReply,
}

/// A zone's changes (or reads) waiting to be sent, and whether they may go now.
struct Queue<W> {
    waiters: Vec<W>,
    /// Nothing more can arrive (see [`Board::release_if_all_waiting`]): send.
    release: bool,
}

impl<W> Default for Queue<W> {
    fn default() -> Self {
        Self {
            waiters: Vec::new(),
            release: false,
        }
    }
}

/// What a queue holds, and so when it may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Record reads: they go once every participant waits on Route 53.
    Read,
    /// Changes: they go once every participant waits on Route 53 *and none of them is
    /// reading* — a reader comes back with a change (read, then UPSERT), and sending
    /// without it would cost a batch per certificate.
    Change,
}

/// How many Route 53 calls a participant is waiting on, and how many of them are reads.
#[derive(Debug, Clone, Copy, Default)]
struct Waits {
    busy: usize,
    reading: usize,
}

/// The queues and the participants, under one lock so "everyone is waiting" is exact.
#[derive(Default)]
struct Board {
    queues: HashMap<String, Queue<Waiter>>,
    reads: HashMap<String, Queue<ReadWaiter>>,
    participants: HashMap<u64, Waits>,
    next_id: u64,
    /// When the latest participant joined.
    last_joined: Option<Instant>,
    /// The batch window.
    window: Duration,
}

impl Board {
    /// Whether no participant can add to a queue of `kind` any more.
    fn all_waiting(&self, kind: Kind) -> bool {
        !self.participants.is_empty()
            && self.participants.values().all(|w| w.busy > 0)
            && (kind == Kind::Read || self.participants.values().all(|w| w.reading == 0))
    }

    /// Marks every queue that may go now (see [`Kind`]); whether every participant waits.
    /// Reads not within a window of a participant joining: the certificates of a run join
    /// one after the other and read first thing, so the first would otherwise read alone
    /// (the leader's wait lets the reads go once the window has passed).
    fn release_if_all_waiting(&mut self) -> bool {
        let joining = self
            .last_joined
            .is_some_and(|t| Instant::now() < t + self.window);
        if !joining && self.all_waiting(Kind::Read) {
            for q in self.reads.values_mut() {
                q.release = true;
            }
        }
        if self.all_waiting(Kind::Change) {
            for q in self.queues.values_mut() {
                q.release = true;
            }
        }
        self.all_waiting(Kind::Read)
    }

    /// Whether the zone's queue of `kind` is released, and how many wait in it.
    fn queue_state(&self, kind: Kind, zone_id: &str) -> (bool, usize) {
        match kind {
            Kind::Read => self
                .reads
                .get(zone_id)
                .map(|q| (q.release, q.waiters.len())),
            Kind::Change => self
                .queues
                .get(zone_id)
                .map(|q| (q.release, q.waiters.len())),
        }
        .unwrap_or((true, 0))
    }

    /// Takes the zone's queue of `kind` away (sent, or its leader is gone).
    fn remove(&mut self, kind: Kind, zone_id: &str) {
        match kind {
            Kind::Read => drop(self.reads.remove(zone_id)),
            Kind::Change => drop(self.queues.remove(zone_id)),
        }
    }
}

tokio::task_local! {
    /// The participant the current future runs for (see [`Batching::participate`]).
    static PARTICIPANT: u64;
}

/// Shares `inner` between concurrent certificates (see the module documentation).
pub struct Batching<P> {
    inner: P,
    window: Duration,
    limit: RateLimit,
    zones: tokio::sync::Mutex<Option<Vec<HostedZone>>>,
    board: Mutex<Board>,
    /// Bumped whenever a change is queued, a batch is released or a participant leaves.
    events: watch::Sender<u64>,
    statuses: Mutex<HashMap<String, StatusSlot>>,
}

/// Marks the current participant as waiting on Route 53 (reading, or not) for as long
/// as it lives.
struct Busy<'a> {
    board: &'a Mutex<Board>,
    id: Option<u64>,
    reading: bool,
}

impl<'a> Busy<'a> {
    fn start(board: &'a Mutex<Board>, events: &'a watch::Sender<u64>) -> Self {
        Self::start_as(board, events, false)
    }

    fn reading(board: &'a Mutex<Board>, events: &'a watch::Sender<u64>) -> Self {
        Self::start_as(board, events, true)
    }

    fn start_as(board: &'a Mutex<Board>, events: &'a watch::Sender<u64>, reading: bool) -> Self {
        let id = PARTICIPANT.try_with(|id| *id).ok();
        if let Some(id) = id
            && let Ok(mut b) = board.lock()
        {
            if let Some(w) = b.participants.get_mut(&id) {
                w.busy += 1;
                w.reading += usize::from(reading);
            }
            if b.release_if_all_waiting() {
                events.send_modify(|e| *e += 1);
            }
        }
        Self { board, id, reading }
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id
            && let Ok(mut b) = self.board.lock()
            && let Some(w) = b.participants.get_mut(&id)
        {
            w.busy = w.busy.saturating_sub(1);
            if self.reading {
                w.reading = w.reading.saturating_sub(1);
            }
        }
    }
}

/// Removes a participant when its work ends (or is cancelled).
struct Leave<'a> {
    board: &'a Mutex<Board>,
    events: &'a watch::Sender<u64>,
    id: u64,
}

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        if let Ok(mut b) = self.board.lock() {
            b.participants.remove(&self.id);
            b.release_if_all_waiting();
        }
        self.events.send_modify(|e| *e += 1);
    }
}

type StatusSlot = Arc<tokio::sync::Mutex<Option<(ChangeStatus, Instant)>>>;

impl<P: DnsProvider> Batching<P> {
    /// Wraps `inner`: changes to one zone arriving within `window` of each other share a
    /// batch; requests are limited to `requests_per_second`.
    pub fn new(inner: P, window: Duration, requests_per_second: f64) -> Self {
        Self {
            inner,
            window,
            limit: RateLimit::per_second(requests_per_second),
            zones: tokio::sync::Mutex::new(None),
            board: Mutex::new(Board {
                window,
                ..Board::default()
            }),
            events: watch::Sender::new(0),
            statuses: Mutex::new(HashMap::new()),
        }
    }

    /// Runs `work` (one certificate's issuance) as a participant: while it runs, batches
    /// wait for it to reach Route 53 too (or for 100 windows), so the certificates of one
    /// run share a batch per zone at every step.
    pub async fn participate<F: std::future::Future>(&self, work: F) -> F::Output {
        let id = match self.board.lock() {
            Ok(mut b) => {
                b.next_id += 1;
                let id = b.next_id;
                b.participants.insert(id, Waits::default());
                b.last_joined = Some(Instant::now());
                id
            }
            // A poisoned lock: run without taking part.
            Err(_) => return work.await,
        };
        let _leave = Leave {
            board: &self.board,
            events: &self.events,
            id,
        };
        PARTICIPANT.scope(id, work).await
    }

    /// The wrapped provider.
    pub fn inner(&self) -> &P {
        &self.inner
    }

    /// The leader's wait: until the zone's batch of `kind` is released (every participant
    /// waits on Route 53, see [`Kind`]; at most [`PARTICIPANT_WAIT_WINDOWS`] windows), or,
    /// for callers outside any participant, until nothing has arrived for one window (at
    /// most 20 windows).
    async fn wait_for_batch(&self, kind: Kind, zone_id: &str) {
        let tracked = PARTICIPANT.try_with(|_| ()).is_ok();
        let windows = if tracked {
            PARTICIPANT_WAIT_WINDOWS
        } else {
            DEBOUNCE_WAIT_WINDOWS
        };
        let deadline = Instant::now() + self.window * windows;
        let mut events = self.events.subscribe();
        let mut seen = 0;
        let mut quiet_since = Instant::now();
        loop {
            events.borrow_and_update();
            let (release, queued, settled) = self
                .board
                .lock()
                .map(|b| {
                    let (release, queued) = b.queue_state(kind, zone_id);
                    // Every participant waits on Route 53 and none joined for a window:
                    // nobody can add to this batch (a queue made after the last arrival's
                    // release, e.g. the only certificate being renewed, is not marked).
                    let all_waiting = b.all_waiting(kind);
                    let settled = all_waiting.then(|| b.last_joined.map(|t| t + self.window));
                    (release, queued, settled.flatten())
                })
                .unwrap_or((true, 0, None));
            let now = Instant::now();
            if release || now >= deadline || (tracked && settled.is_some_and(|t| now >= t)) {
                return;
            }
            if queued != seen {
                seen = queued;
                quiet_since = now;
            }
            let until = if tracked {
                settled.map_or(deadline, |t| t.min(deadline))
            } else {
                (quiet_since + self.window).min(deadline)
            };
            if !tracked && now >= until {
                return;
            }
            tokio::select! {
                _ = events.changed() => {}
                () = tokio::time::sleep_until(until) => {}
            }
        }
    }

    async fn submit(
        &self,
        zone_id: &str,
        changes: &[RecordChange],
        comment: &str,
    ) -> Result<ChangeId, DnsError> {
        self.limit.acquire().await;
        self.inner.change(zone_id, changes, comment).await
    }

    /// The leader's part: waits for the zone's batch of `kind`, then sends it. Cancelled
    /// while waiting, it empties the queue (its waiters then go alone).
    async fn lead(&self, kind: Kind, zone_id: &str) {
        let mut guard = LeaderGuard {
            board: &self.board,
            kind,
            zone_id,
            armed: true,
        };
        self.wait_for_batch(kind, zone_id).await;
        // The flushes take the queue before their first await.
        guard.armed = false;
        match kind {
            Kind::Read => self.flush_reads(zone_id).await,
            Kind::Change => self.flush(zone_id).await,
        }
    }

    /// One read of one name, outside any batch.
    async fn read_alone(
        &self,
        zone_id: &str,
        name: &str,
    ) -> Result<Option<Vec<RecordSet>>, DnsError> {
        self.limit.acquire().await;
        self.inner.record_sets(zone_id, name).await
    }

    /// Answers every read queued for `zone_id` with one read of all their names (one
    /// request for a lone name, one walk of the zone for several); when that fails, each
    /// caller reads alone (and gets its own error).
    async fn flush_reads(&self, zone_id: &str) {
        let waiters = self
            .board
            .lock()
            .map(|mut b| b.reads.remove(zone_id).unwrap_or_default().waiters)
            .unwrap_or_default();
        let mut names: Vec<String> = waiters.iter().map(|w| w.name.clone()).collect();
        names.sort_unstable();
        names.dedup();
        if names.is_empty() {
            return;
        }
        if names.len() == 1 {
            let r = self.read_alone(zone_id, &names[0]).await;
            let mut waiters = waiters.into_iter();
            match r {
                Ok(sets) => {
                    for w in waiters {
                        let _ = w.reply.send(Ok(sets.clone()));
                    }
                }
                Err(e) => {
                    // The error goes to one caller; the others ask again for themselves.
                    if let Some(first) = waiters.next() {
                        let _ = first.reply.send(Err(e));
                    }
                    for w in waiters {
                        let r = self.read_alone(zone_id, &w.name).await;
                        let _ = w.reply.send(r);
                    }
                }
            }
            return;
        }
        self.limit.acquire().await;
        match self.inner.zone_record_sets(zone_id, &names).await {
            Ok(found) => {
                tracing::debug!(
                    zone = zone_id,
                    names = names.len(),
                    callers = waiters.len(),
                    "shared record read"
                );
                for w in waiters {
                    let sets = found
                        .as_ref()
                        .map(|f| f.get(&w.name).cloned().unwrap_or_default());
                    let _ = w.reply.send(Ok(sets));
                }
            }
            Err(e) => {
                tracing::debug!(
                    zone = zone_id,
                    "shared record read failed ({e}); reading per caller"
                );
                for w in waiters {
                    let r = self.read_alone(zone_id, &w.name).await;
                    let _ = w.reply.send(r);
                }
            }
        }
    }

    /// Sends everything queued for `zone_id`: as few batches as possible, each without
    /// two changes to the same record set; a refused shared batch is retried per caller.
    async fn flush(&self, zone_id: &str) {
        let waiters = self
            .board
            .lock()
            .map(|mut b| b.queues.remove(zone_id).unwrap_or_default().waiters)
            .unwrap_or_default();
        for group in group(waiters) {
            if group.len() == 1 {
                if let Some(w) = group.into_iter().next() {
                    let r = self.submit(zone_id, &w.changes, &w.comment).await;
                    let _ = w.reply.send(r);
                }
                continue;
            }
            let all: Vec<RecordChange> = group.iter().flat_map(|w| w.changes.clone()).collect();
            let comment = format!("brokercert: {} certificates", group.len());
            match self.submit(zone_id, &all, &comment).await {
                Ok(id) => {
                    tracing::debug!(zone = zone_id, changes = all.len(), callers = group.len(), change = %id.0, "shared change batch");
                    for w in group {
                        let _ = w.reply.send(Ok(id.clone()));
                    }
                }
                Err(e) => {
                    tracing::debug!(
                        zone = zone_id,
                        "shared change batch refused ({e}); sending one batch per certificate"
                    );
                    for w in group {
                        let r = self.submit(zone_id, &w.changes, &w.comment).await;
                        let _ = w.reply.send(r);
                    }
                }
            }
        }
    }
}

/// A batch being filled: its waiters, the record sets (name, type) it touches, its changes.
type OpenBatch = (Vec<Waiter>, HashSet<(String, RecordType)>, usize);

/// Empties a zone's queue when its leader goes away before taking it (see `change`).
struct LeaderGuard<'a> {
    board: &'a Mutex<Board>,
    kind: Kind,
    zone_id: &'a str,
    armed: bool,
}

impl Drop for LeaderGuard<'_> {
    fn drop(&mut self) {
        if self.armed
            && let Ok(mut b) = self.board.lock()
        {
            // Dropping the waiters' reply senders wakes them with an error.
            b.remove(self.kind, self.zone_id);
        }
    }
}

/// Splits waiters into batches: no record set (name, type) twice in a batch, and at most
/// [`MAX_CHANGES_PER_BATCH`] changes (a single larger caller gets a batch of its own).
fn group(waiters: Vec<Waiter>) -> Vec<Vec<Waiter>> {
    let mut batches: Vec<OpenBatch> = Vec::new();
    for w in waiters {
        let keys: HashSet<(String, RecordType)> = w
            .changes
            .iter()
            .map(|c| (c.set.name.clone(), c.set.rtype))
            .collect();
        let n = w.changes.len();
        let slot = batches
            .iter_mut()
            .find(|(_, used, count)| used.is_disjoint(&keys) && count + n <= MAX_CHANGES_PER_BATCH);
        match slot {
            Some((ws, used, count)) => {
                used.extend(keys);
                *count += n;
                ws.push(w);
            }
            None => batches.push((vec![w], keys, n)),
        }
    }
    batches.into_iter().map(|(ws, _, _)| ws).collect()
}

#[async_trait]
impl<P: DnsProvider> DnsProvider for Batching<P> {
    async fn record_sets(
        &self,
        zone_id: &str,
        name: &str,
    ) -> Result<Option<Vec<RecordSet>>, DnsError> {
        if self.window.is_zero() {
            return self.read_alone(zone_id, name).await;
        }
        let _busy = Busy::reading(&self.board, &self.events);
        let (tx, rx) = oneshot::channel();
        let leader = {
            let Ok(mut board) = self.board.lock() else {
                return self.read_alone(zone_id, name).await;
            };
            let q = board.reads.entry(zone_id.to_string()).or_default();
            q.waiters.push(ReadWaiter {
                name: name.trim_end_matches('.').to_ascii_lowercase(),
                reply: tx,
            });
            q.waiters.len() == 1
        };
        self.events.send_modify(|e| *e += 1);
        if leader {
            // As for changes: the first reader of the zone waits for the others, then one
            // walk of the zone answers them all; cancelled, it leaves them to read alone.
            self.lead(Kind::Read, zone_id).await;
        }
        match rx.await {
            Ok(r) => r,
            Err(_) => self.read_alone(zone_id, name).await,
        }
    }

    async fn zone_record_sets(
        &self,
        zone_id: &str,
        names: &[String],
    ) -> Result<Option<HashMap<String, Vec<RecordSet>>>, DnsError> {
        let _busy = Busy::reading(&self.board, &self.events);
        self.limit.acquire().await;
        self.inner.zone_record_sets(zone_id, names).await
    }

    async fn hosted_zones(&self) -> Result<Vec<HostedZone>, DnsError> {
        let _busy = Busy::start(&self.board, &self.events);
        let mut cached = self.zones.lock().await;
        if let Some(z) = cached.as_ref() {
            return Ok(z.clone());
        }
        self.limit.acquire().await;
        let zones = self.inner.hosted_zones().await?;
        *cached = Some(zones.clone());
        Ok(zones)
    }

    async fn change(
        &self,
        zone_id: &str,
        changes: &[RecordChange],
        comment: &str,
    ) -> Result<ChangeId, DnsError> {
        if self.window.is_zero() {
            return self.submit(zone_id, changes, comment).await;
        }
        let _busy = Busy::start(&self.board, &self.events);
        let (tx, rx) = oneshot::channel();
        let leader = {
            let Ok(mut board) = self.board.lock() else {
                return self.submit(zone_id, changes, comment).await;
            };
            let q = board.queues.entry(zone_id.to_string()).or_default();
            q.waiters.push(Waiter {
                changes: changes.to_vec(),
                comment: comment.to_string(),
                reply: tx,
            });
            let leader = q.waiters.len() == 1;
            let waiting = board.participants.values().filter(|w| w.busy > 0).count();
            tracing::debug!(
                zone = zone_id,
                waiting,
                participants = board.participants.len(),
                "change queued"
            );
            leader
        };
        self.events.send_modify(|e| *e += 1);
        if leader {
            // The first caller for this zone waits for the others, then sends for all.
            // Should it be cancelled while waiting (Ctrl-C, SIGTERM), the guard empties the
            // queue: the others then send their own changes, and later callers are not
            // left without a leader.
            self.lead(Kind::Change, zone_id).await;
        }
        match rx.await {
            Ok(r) => r,
            // The leader was cancelled before sending: send this caller's changes alone.
            Err(_) => self.submit(zone_id, changes, comment).await,
        }
    }

    async fn change_status(&self, change: &ChangeId) -> Result<ChangeStatus, DnsError> {
        // Known without asking: no request, so no token of the account's rate either (a
        // fleet's publish batches spend the burst; waiting for a token here cost 200 ms).
        if let Some(status) = self.inner.known_status(change) {
            return Ok(status);
        }
        let _busy = Busy::start(&self.board, &self.events);
        let asked = Instant::now();
        let slot = match self.statuses.lock() {
            Ok(mut m) => m.entry(change.0.clone()).or_default().clone(),
            Err(_) => Arc::default(),
        };
        let mut last = slot.lock().await;
        if let Some((status, at)) = *last
            && (status == ChangeStatus::InSync || at >= asked)
        {
            return Ok(status);
        }
        self.limit.acquire().await;
        let status = self.inner.change_status(change).await?;
        *last = Some((status, Instant::now()));
        Ok(status)
    }

    fn known_status(&self, change: &ChangeId) -> Option<ChangeStatus> {
        self.inner.known_status(change)
    }

    /// The current participant leaves the board before its work ends: batches stop waiting
    /// for it. A fleet in which three certificates had nothing to publish (their
    /// authorizations were still valid) held the other 47 certificates' TXT batch for 2.4 s,
    /// while those three waited for their keys.
    fn finished_with_dns(&self) {
        let Ok(id) = PARTICIPANT.try_with(|id| *id) else {
            return;
        };
        if let Ok(mut b) = self.board.lock()
            && b.participants.remove(&id).is_some()
        {
            b.release_if_all_waiting();
        }
        self.events.send_modify(|e| *e += 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::ChangeAction;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Counts calls and remembers each batch's size; refuses batches containing `bad`.
    #[derive(Default)]
    struct Counting {
        zones: AtomicUsize,
        batches: Mutex<Vec<usize>>,
        statuses: AtomicUsize,
        bad: Option<String>,
        /// Changes whose status is known without asking.
        known: Vec<String>,
        /// Single-name reads.
        reads: AtomicUsize,
        /// Reads of several names: how many names each.
        walks: Mutex<Vec<usize>>,
        /// How long a read takes.
        read_delay: Duration,
    }

    #[async_trait]
    impl DnsProvider for Counting {
        async fn hosted_zones(&self) -> Result<Vec<HostedZone>, DnsError> {
            self.zones.fetch_add(1, Ordering::SeqCst);
            Ok(vec![])
        }
        async fn change(
            &self,
            _: &str,
            changes: &[RecordChange],
            _: &str,
        ) -> Result<ChangeId, DnsError> {
            if let Some(bad) = &self.bad
                && changes.iter().any(|c| &c.set.name == bad)
            {
                return Err(DnsError::Provider {
                    operation: "ChangeResourceRecordSets",
                    message: "InvalidChangeBatch".into(),
                });
            }
            let mut b = self.batches.lock().unwrap();
            b.push(changes.len());
            Ok(ChangeId(format!("C{}", b.len())))
        }
        async fn change_status(&self, _: &ChangeId) -> Result<ChangeStatus, DnsError> {
            self.statuses.fetch_add(1, Ordering::SeqCst);
            Ok(ChangeStatus::InSync)
        }
        fn known_status(&self, change: &ChangeId) -> Option<ChangeStatus> {
            self.known
                .contains(&change.0)
                .then_some(ChangeStatus::InSync)
        }
        async fn record_sets(
            &self,
            _: &str,
            name: &str,
        ) -> Result<Option<Vec<RecordSet>>, DnsError> {
            tokio::time::sleep(self.read_delay).await;
            self.reads.fetch_add(1, Ordering::SeqCst);
            Ok(Some(vec![set(name, "found")]))
        }
        async fn zone_record_sets(
            &self,
            _: &str,
            names: &[String],
        ) -> Result<Option<HashMap<String, Vec<RecordSet>>>, DnsError> {
            tokio::time::sleep(self.read_delay).await;
            self.walks.lock().unwrap().push(names.len());
            Ok(Some(
                names
                    .iter()
                    .map(|n| (n.clone(), vec![set(n, "found")]))
                    .collect(),
            ))
        }
    }

    fn set(name: &str, value: &str) -> RecordSet {
        RecordSet {
            name: name.into(),
            rtype: RecordType::Txt,
            ttl: 60,
            values: vec![value.into()],
        }
    }

    #[tokio::test]
    async fn concurrent_reads_of_a_zone_share_one_read() {
        let b = Batching::new(Counting::default(), Duration::from_millis(30), 0.0);
        let calls = (0..10).map(|i| {
            let b = &b;
            b.participate(async move {
                tokio::time::sleep(Duration::from_millis(5 * i)).await;
                let zone = if i % 2 == 0 { "Z1" } else { "Z2" };
                // Two certificates share each name (a wildcard and its apex).
                let name = format!("_acme-challenge.n{}.test", i / 4);
                let sets = b.record_sets(zone, &format!("{name}.")).await;
                (name, sets)
            })
        });
        for (name, sets) in futures::future::join_all(calls).await {
            let sets = sets.unwrap().expect("read through the API");
            assert_eq!(sets, [set(&name, "found")], "each caller gets its own name");
        }
        let mut walks = b.inner().walks.lock().unwrap().clone();
        walks.sort_unstable();
        assert_eq!(walks, vec![3, 3], "one read of the distinct names per zone");
        assert_eq!(b.inner().reads.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn certificates_joining_one_after_the_other_share_their_first_read() {
        // A run starts its certificates a few milliseconds apart, and each reads at once:
        // the first must not find itself the only participant and read alone.
        let b = Batching::new(Counting::default(), Duration::from_millis(50), 0.0);
        let calls = (0..6).map(|i| {
            let b = &b;
            async move {
                tokio::time::sleep(Duration::from_millis(5 * i)).await;
                b.participate(b.record_sets("Z", &format!("_acme-challenge.j{i}.test")))
                    .await
            }
        });
        let all = futures::future::join_all(calls).await;
        assert!(all.iter().all(Result::is_ok));
        assert_eq!(b.inner().walks.lock().unwrap().clone(), vec![6]);
        assert_eq!(b.inner().reads.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_lone_reader_reads_its_name_alone() {
        let b = Batching::new(Counting::default(), Duration::from_millis(10), 0.0);
        let sets = b
            .participate(b.record_sets("Z", "_acme-challenge.one.test"))
            .await;
        assert_eq!(
            sets.unwrap().expect("read"),
            [set("_acme-challenge.one.test", "found")]
        );
        assert_eq!(b.inner().reads.load(Ordering::SeqCst), 1);
        assert!(b.inner().walks.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_reader_does_not_release_the_changes_it_will_add_to() {
        // One certificate queues its change while another still reads the set it is about
        // to change: the batch waits for that change instead of going without it.
        let inner = Counting {
            read_delay: Duration::from_millis(200),
            ..Counting::default()
        };
        let b = Batching::new(inner, Duration::from_secs(1), 0.0);
        let started = Instant::now();
        let first = [txt("_acme-challenge.w1.test")];
        let (one, two) = tokio::join!(
            b.participate(b.change("Z", &first, "w1")),
            b.participate(async {
                let name = "_acme-challenge.w2.test";
                b.record_sets("Z", name).await.unwrap();
                b.change("Z", &[txt(name)], "w2").await
            })
        );
        assert!(one.is_ok() && two.is_ok());
        assert_eq!(b.inner().batches.lock().unwrap().clone(), vec![2]);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "released when both waited, not at the cap: {:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn a_status_known_without_asking_spends_no_request_and_no_token() {
        let inner = Counting {
            known: vec!["C-known".into()],
            ..Counting::default()
        };
        // One request a second: the first status poll takes the only token.
        let b = Batching::new(inner, Duration::from_millis(10), 1.0);
        assert_eq!(
            b.change_status(&ChangeId("C-other".into())).await.unwrap(),
            ChangeStatus::InSync
        );
        let started = Instant::now();
        assert_eq!(
            b.change_status(&ChangeId("C-known".into())).await.unwrap(),
            ChangeStatus::InSync
        );
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "waited {:?} for a token",
            started.elapsed()
        );
        assert_eq!(b.inner.statuses.load(Ordering::SeqCst), 1);
    }

    fn txt(name: &str) -> RecordChange {
        RecordChange {
            action: ChangeAction::Upsert,
            set: RecordSet {
                name: name.into(),
                rtype: RecordType::Txt,
                ttl: 60,
                values: vec!["v".into()],
            },
        }
    }

    #[tokio::test]
    async fn concurrent_changes_share_one_batch_per_zone() {
        let b = Batching::new(Counting::default(), Duration::from_millis(30), 0.0);
        let calls = (0..10).map(|i| {
            let b = &b;
            async move {
                let zone = if i % 2 == 0 { "Z1" } else { "Z2" };
                b.change(zone, &[txt(&format!("_acme-challenge.n{i}.test"))], "c")
                    .await
            }
        });
        let ids = futures::future::join_all(calls).await;
        assert!(ids.iter().all(Result::is_ok));
        let batches = b.inner().batches.lock().unwrap().clone();
        assert_eq!(batches, vec![5, 5], "one batch per zone");
        // Every caller polls the same change: the provider is asked once.
        let polls = ids.iter().flatten().map(|id| b.change_status(id));
        futures::future::join_all(polls).await;
        assert_eq!(b.inner().statuses.load(Ordering::SeqCst), 2);
        for _ in 0..3 {
            b.hosted_zones().await.unwrap();
        }
        assert_eq!(b.inner().zones.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn same_record_set_never_shares_a_batch() {
        let b = Batching::new(Counting::default(), Duration::from_millis(30), 0.0);
        let name = "_acme-challenge.same.test";
        let (one, two) = ([txt(name)], [txt(name)]);
        let (x, y) = tokio::join!(b.change("Z", &one, "a"), b.change("Z", &two, "b"));
        assert!(x.is_ok() && y.is_ok());
        assert_eq!(b.inner().batches.lock().unwrap().clone(), vec![1, 1]);
    }

    #[tokio::test]
    async fn a_refused_shared_batch_is_retried_per_caller() {
        let inner = Counting {
            bad: Some("_acme-challenge.bad.test".into()),
            ..Counting::default()
        };
        let b = Batching::new(inner, Duration::from_millis(30), 0.0);
        let (g, x) = (
            [txt("_acme-challenge.good.test")],
            [txt("_acme-challenge.bad.test")],
        );
        let (good, bad) = tokio::join!(b.change("Z", &g, "a"), b.change("Z", &x, "b"));
        assert!(good.is_ok(), "the good caller is not punished: {good:?}");
        assert!(bad.is_err());
        assert_eq!(b.inner().batches.lock().unwrap().clone(), vec![1]);
    }

    #[tokio::test]
    async fn a_cancelled_leader_leaves_no_caller_waiting() {
        let b = Batching::new(Counting::default(), Duration::from_millis(200), 0.0);
        let (one, two, three) = (
            [txt("_acme-challenge.a.test")],
            [txt("_acme-challenge.b.test")],
            [txt("_acme-challenge.c.test")],
        );
        // The leader is cancelled inside its wait; the follower sends alone.
        let leader = b.change("Z", &one, "a");
        let follower = async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            b.change("Z", &two, "b").await
        };
        let (cancelled, followed) = tokio::join!(
            tokio::time::timeout(Duration::from_millis(50), leader),
            tokio::time::timeout(Duration::from_secs(5), follower)
        );
        assert!(cancelled.is_err(), "the leader was cancelled");
        assert!(matches!(followed, Ok(Ok(_))), "{followed:?}");
        // A later caller becomes leader of a fresh queue.
        let later = tokio::time::timeout(Duration::from_secs(5), b.change("Z", &three, "c")).await;
        assert!(matches!(later, Ok(Ok(_))), "{later:?}");
        assert_eq!(b.inner().batches.lock().unwrap().clone(), vec![1, 1]);
    }

    #[tokio::test]
    async fn participants_far_apart_still_share_a_batch_and_it_goes_when_all_wait() {
        // A one-second window would make the plain debounce wait ≥ 1 s; participants
        // release the batch the moment the last of them reaches Route 53.
        let b = Batching::new(Counting::default(), Duration::from_secs(1), 0.0);
        let started = Instant::now();
        let calls = (0..6).map(|i| {
            let b = &b;
            b.participate(async move {
                // Arrivals spread over 300 ms: longer than a debounce would bridge.
                tokio::time::sleep(Duration::from_millis(60 * i)).await;
                let zone = if i % 2 == 0 { "Z1" } else { "Z2" };
                b.change(zone, &[txt(&format!("_acme-challenge.p{i}.test"))], "c")
                    .await
            })
        });
        let ids = futures::future::join_all(calls).await;
        let took = started.elapsed();
        assert!(ids.iter().all(Result::is_ok));
        let mut batches = b.inner().batches.lock().unwrap().clone();
        batches.sort_unstable();
        assert_eq!(batches, vec![3, 3], "one batch per zone");
        assert!(
            took < Duration::from_millis(900),
            "released, not timed out: {took:?}"
        );
    }

    #[tokio::test]
    async fn a_participant_with_nothing_to_publish_does_not_hold_the_others_batch() {
        // Three certificates publish; a fourth (its authorizations valid already) says it is
        // done with DNS and then waits four seconds for its key. The batch must not wait for
        // it (it used to, up to 100 windows: here 10 s).
        let b = Batching::new(Counting::default(), Duration::from_millis(100), 0.0);
        let started = Instant::now();
        let publishing = (0..3).map(|i| {
            let b = &b;
            b.participate(async move {
                // After the fourth has joined.
                tokio::time::sleep(Duration::from_millis(50)).await;
                b.change("Z", &[txt(&format!("_acme-challenge.q{i}.test"))], "q")
                    .await
                    .map(|_| started.elapsed())
            })
        });
        let idle = b.participate(async {
            b.finished_with_dns();
            tokio::time::sleep(Duration::from_secs(4)).await;
        });
        let ((), sent) = tokio::join!(idle, futures::future::join_all(publishing));
        for took in sent {
            let took = took.expect("sent");
            assert!(
                took < Duration::from_secs(3),
                "the batch waited for a certificate with nothing to publish: {took:?}"
            );
        }
        assert_eq!(
            b.inner().batches.lock().unwrap().clone(),
            vec![3],
            "one batch"
        );
    }

    #[tokio::test]
    async fn a_lone_participant_sends_after_one_window() {
        // The only certificate being renewed (the others not due, or waiting for their turn
        // at a shared DNS-01 name): its changes have nobody to wait for but a late joiner.
        let b = Batching::new(Counting::default(), Duration::from_millis(50), 0.0);
        let t = Instant::now();
        for i in 0..3 {
            b.participate(b.change("Z", &[txt(&format!("_acme-challenge.l{i}.test"))], "l"))
                .await
                .unwrap();
        }
        assert!(
            t.elapsed() < Duration::from_millis(1000),
            "waited {:?} for nobody (the cap is 3 × 5 s)",
            t.elapsed()
        );
        assert_eq!(b.inner().batches.lock().unwrap().clone(), vec![1, 1, 1]);
    }

    #[tokio::test]
    async fn a_participant_busy_elsewhere_is_waited_for_a_bounded_time() {
        // 100 windows of 5 ms: 500 ms.
        let b = Batching::new(Counting::default(), Duration::from_millis(5), 0.0);
        let t = Instant::now();
        let (sent, ()) = tokio::join!(
            async {
                let r = b
                    .participate(b.change("Z", &[txt("_acme-challenge.b.test")], "b"))
                    .await;
                (r, t.elapsed())
            },
            b.participate(tokio::time::sleep(Duration::from_secs(3)))
        );
        assert!(sent.0.is_ok());
        assert!(
            sent.1 >= Duration::from_millis(480) && sent.1 < Duration::from_millis(2500),
            "waited for the cap only: {:?}",
            sent.1
        );
    }

    #[tokio::test]
    async fn a_participant_that_leaves_releases_the_batch() {
        let b = Batching::new(Counting::default(), Duration::from_secs(1), 0.0);
        let t = Instant::now();
        let (sent, ()) = tokio::join!(
            async {
                let r = b
                    .participate(b.change("Z", &[txt("_acme-challenge.c.test")], "c"))
                    .await;
                (r, t.elapsed())
            },
            // Fails before reaching Route 53, after 100 ms.
            b.participate(tokio::time::sleep(Duration::from_millis(100)))
        );
        assert!(sent.0.is_ok());
        assert!(sent.1 < Duration::from_millis(800), "{:?}", sent.1);
    }

    #[tokio::test]
    async fn the_rate_limit_spaces_requests() {
        let limit = RateLimit::per_second(20.0);
        let start = Instant::now();
        for _ in 0..110 {
            limit.acquire().await;
        }
        // A burst of 100, then 10 more at 20 per second: at least 0.5 s.
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(450), "{took:?}");
    }

    #[tokio::test]
    async fn one_issuance_at_the_default_rate_does_not_wait_and_a_fleet_keeps_to_it() {
        let limit = RateLimit::per_second(5.0);
        let start = Instant::now();
        // One issuance is 6 requests; a fleet's first round over five zones is 16. A burst
        // of only 5 made the sixth wait 200 ms, a burst of 10 the eleventh.
        for _ in 0..16 {
            limit.acquire().await;
        }
        assert!(
            start.elapsed() < Duration::from_millis(100),
            "{:?}",
            start.elapsed()
        );
        // The burst is 25 (half of Route 53's 50): the 26th waits for a token (200 ms at 5 a
        // second).
        for _ in 0..10 {
            limit.acquire().await;
        }
        assert!(
            start.elapsed() >= Duration::from_millis(180),
            "{:?}",
            start.elapsed()
        );
    }
}

//! The renewal use case (`brokercert renew`, `brokercert schedule`): for every configured
//! certificate, finish what an interrupted run left, decide whether renewal is due, and if so
//! issue, deploy and verify — safe to run hourly.
//!
//! One certificate's run is a sequence of phases, each a function that either ends the run
//! with an [`Outcome`] or lets the next phase continue:
//! 1. [`cleanup`]: DNS-01 values an interrupted run left (from the journal) are removed;
//! 2. [`stored`]: a stored certificate that was never deployed (or verified) is finished;
//! 3. [`decide`]: policy, the CA's renewal window (ARI) and the failure backoff decide;
//! 4. [`order`]: a new certificate is issued (journaled), then deployed and verified.
//!
//! Owns: that sequence, the run over every certificate (concurrency, shared DNS-01 names,
//! the jitter before the first order) and the renewal state's bookkeeping of an attempt.
//! Each certificate's stored files are read ahead, off the run's task (`read_ahead`).
//! Does not own the decision (`renew::policy`), the memory (`renew::state`,
//! `renew::journal`), the stages (`workflow::issue`, `workflow::deploy`), nor any printing:
//! it reports through a [`RenewSink`] and returns outcomes; `cli::renew` renders them.

pub mod cleanup;
pub mod decide;
pub mod observe;
pub mod order;
pub mod outcome;
mod read_ahead;
pub mod stored;
mod turns;

#[cfg(test)]
mod tests;

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::OnceCell;

pub use self::outcome::Outcome;
use self::read_ahead::{Dirs, Stored, read_ahead};
use super::blocking::blocking;
use super::deploy::DeploySink;
use super::services::Services;
use crate::config::{CertificateSpec, Settings};
use crate::deploy::from_config;
use crate::error::{Error, exit};
use crate::pki::anchors::TrustAnchors;
use crate::pki::certificate::Certificate;
use crate::renew::journal::Journal;
use crate::renew::policy::{self, Failures};
use crate::renew::state::{self, RenewalState};
use crate::store::{StateFiles, Store, StoreError};
use crate::workflow::issue::Resume;
use crate::workflow::preflight::check_run;

/// What a phase returns: the run's outcome (done), or what the next phase needs.
pub type Phase<T = ()> = Result<ControlFlow<Outcome, T>, Error>;

/// The choices of one `renew` run (no command-line type: `schedule` builds it too).
#[derive(Debug, Clone, Default)]
pub struct RenewOptions {
    /// Renew even when not due.
    pub force: bool,
    /// New keys this run even where `reuse_key` is set.
    pub new_key: bool,
    /// Change nothing lasting: a real order at a test CA into a throw-away directory.
    pub dry_run: bool,
    /// The longest random wait before the run's first order (zero: none).
    pub jitter: Duration,
}

/// Where the renewal use case reports what it does (the CLI renders it).
pub trait RenewSink: Sync {
    /// The progress of one certificate (made when its attempt starts, dropped at its end).
    type Cert: DeploySink;
    /// Progress of `name`'s attempt.
    fn certificate(&self, name: &str) -> Self::Cert;
    /// A problem that does not fail the certificate.
    fn warning(&self, text: &str);
    /// The run waits `wait` (the jitter) before its first order.
    fn jitter(&self, wait: Duration);
    /// The CA explains its renewal window at `url`.
    fn ari_explained(&self, url: &str);
    /// A Ctrl-C or SIGTERM stopped waiting for the deployment or verification of `name`,
    /// whose certificate is stored in `live_dir` (say what was in progress and what now).
    fn interrupted_deploying(&self, progress: &Self::Cert, name: &str, live_dir: &Path);
}

/// Set once Ctrl-C or SIGTERM arrives; the work in progress stops at a safe point (the
/// DNS-01 values are removed, a deployment in flight finishes).
#[derive(Clone)]
pub struct Stop(tokio::sync::watch::Receiver<bool>);

impl Stop {
    /// Set when `signal` resolves.
    pub fn on(signal: impl std::future::Future<Output = ()> + Send + 'static) -> Stop {
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            signal.await;
            let _ = tx.send(true);
        });
        Stop(rx)
    }

    /// Never set.
    pub fn never() -> Stop {
        let (tx, rx) = tokio::sync::watch::channel(false);
        std::mem::forget(tx);
        Stop(rx)
    }

    /// Whether the signal came.
    pub fn is_set(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves when the signal comes.
    pub async fn wait(&self) {
        let mut rx = self.0.clone();
        let _ = rx.wait_for(|v| *v).await;
    }
}

/// What every phase of one run shares.
pub(crate) struct Run<'a, S> {
    pub(crate) services: &'a Services<'a>,
    pub(crate) opts: &'a RenewOptions,
    /// Where certificates are stored (a throw-away directory for a dry run).
    pub(crate) store: &'a Store,
    pub(crate) stop: &'a Stop,
    pub(crate) sink: &'a S,
    jittered: OnceCell<()>,
    /// The checks every certificate shares and the trust anchors they load, made once by
    /// the first certificate that orders ([`Run::shared_checks`]).
    shared: OnceCell<TrustAnchors>,
    /// Where every certificate's files are read from (and its state written to).
    dirs: Dirs,
}

impl<'a, S: RenewSink> Run<'a, S> {
    /// A run storing into `store`, with its state directories opened.
    fn new(
        services: &'a Services<'a>,
        opts: &'a RenewOptions,
        store: &'a Store,
        stop: &'a Stop,
        sink: &'a S,
    ) -> Self {
        Run {
            services,
            opts,
            store,
            stop,
            sink,
            jittered: OnceCell::new(),
            shared: OnceCell::new(),
            dirs: Dirs {
                renewal: Arc::new(StateFiles::open(
                    &services.settings().state_dir.join("renewal"),
                )),
                live: Arc::new(StateFiles::open(&store.root().join("live"))),
                dry_run_journals: opts.dry_run.then(|| store.root().join("renewal")),
            },
        }
    }

    pub(crate) fn settings(&self) -> &Settings {
        self.services.settings()
    }

    /// The checks shared by every certificate of the run (trust anchors, the CA's HTTPS
    /// roots: `preflight::check_run`), made once, by the first certificate that orders; its
    /// anchors verify every new chain. A failure is not kept: each certificate reports it.
    pub(crate) async fn shared_checks(&self) -> Result<&TrustAnchors, Error> {
        let settings = self.settings();
        self.shared
            .get_or_try_init(|| async { check_run(settings) })
            .await
    }

    /// The jitter, once per run, before the first work that goes to the CA: a run that
    /// finds nothing due never waits. Ctrl-C ends the wait.
    pub(crate) async fn before_ordering(&self) -> Result<(), Error> {
        let max = self.opts.jitter;
        let wait = async {
            if max.is_zero() {
                return;
            }
            let wait = Duration::from_millis(rand::random_range(0..max.as_millis().max(1) as u64));
            self.sink.jitter(wait);
            tokio::time::sleep(wait).await;
        };
        tokio::select! {
            _ = self.jittered.get_or_init(|| wait) => Ok(()),
            () = self.stop.wait() => Err(Error::Interrupted),
        }
    }
}

/// One certificate's attempt: what its phases share.
pub(crate) struct Attempt<'a, S: RenewSink> {
    pub(crate) run: &'a Run<'a, S>,
    pub(crate) spec: &'a CertificateSpec,
    pub(crate) journal: &'a Journal,
    pub(crate) progress: &'a S::Cert,
}

/// Renews every configured certificate, up to `renew.concurrency` at the same time;
/// outcomes are in configuration order. Prints nothing: it reports to `sink`.
pub async fn renew_all<S: RenewSink>(
    services: &Services<'_>,
    opts: &RenewOptions,
    stop: &Stop,
    sink: &S,
) -> Vec<(String, Outcome)> {
    let settings = services.settings();
    let mut out = Vec::new();
    let dry_dir = if opts.dry_run {
        match turns::dry_run_dir() {
            Ok(d) => Some(d),
            Err(e) => {
                for s in &settings.certificates {
                    out.push((
                        s.name.clone(),
                        Outcome::Failed {
                            message: format!("cannot make a directory for the dry run: {e}"),
                            code: exit::STORE,
                            next_attempt: None,
                        },
                    ));
                }
                return out;
            }
        }
    } else {
        None
    };
    let store = Store::new(
        dry_dir
            .as_ref()
            .map(|d| d.path().to_path_buf())
            .unwrap_or_else(|| settings.state_dir.clone()),
    );
    let run = &Run::new(services, opts, &store, stop, sink);
    let turns = &turns::challenge_name_turns(&settings.certificates);
    let runs = read_ahead(&run.dirs, &settings.certificates)
        .zip(futures::stream::iter(&settings.certificates))
        .map(|(stored, spec)| async move {
            if stop.is_set() {
                return None;
            }
            // Certificates sharing a DNS-01 record name take turns (see
            // `challenge_name_turns`); the locks are taken in name order, never in a cycle.
            let mut held = Vec::new();
            for name in &turns::challenge_names(spec) {
                if let Some(turn) = turns.get(name) {
                    held.push(turn.clone().lock_owned().await);
                }
            }
            let o = renew_one(run, spec, stored).await;
            drop(held);
            Some((spec.name.clone(), o))
        })
        .buffered(settings.renew.concurrency.max(1));
    out.extend(
        runs.filter_map(|o| async move { o })
            .collect::<Vec<_>>()
            .await,
    );
    out
}

fn failed(e: &Error, next_attempt: Option<time::OffsetDateTime>) -> Outcome {
    Outcome::Failed {
        message: e.to_string(),
        code: e.exit_code(),
        next_attempt,
    }
}

/// Renews one certificate if due; records the outcome in its state.
async fn renew_one<S: RenewSink>(
    run: &Run<'_, S>,
    spec: &CertificateSpec,
    stored: Stored,
) -> Outcome {
    let (mut st, warn) = stored.state;
    let before = st.clone();
    if let Some(w) = warn {
        run.sink.warning(&w);
    }
    let result = {
        use tracing::Instrument as _;
        let span = tracing::debug_span!("certificate", name = %spec.name);
        attempt(run, spec, &mut st, stored.journal, stored.live)
            .instrument(span)
            .await
    };
    if run.opts.dry_run {
        return match result {
            Ok(o) => o,
            Err(e) => failed(&e, None),
        };
    }
    let outcome = record(&mut st, result, run.services.clock().now());
    // A run with nothing to do writes nothing (100 certificates: 100 fsyncs saved).
    if st == before {
        return outcome;
    }
    if let Err(e) = blocking(|| state::save(run.dirs.renewal.path(), &spec.name, &st)) {
        run.sink
            .warning(&format!("cannot save the renewal state: {e}"));
    }
    outcome
}

/// The outcome of an attempt, and its mark on the renewal state: a success clears the
/// failures, a failure counts and sets the backoff.
fn record(
    st: &mut RenewalState,
    result: Result<Outcome, Error>,
    now: time::OffsetDateTime,
) -> Outcome {
    match result {
        Ok(o) => {
            if matches!(o, Outcome::Renewed { .. }) {
                st.failures = 0;
                st.last_failure = None;
                st.last_error = None;
                st.last_code = None;
                st.retry_not_before = None;
                st.last_success = Some(now);
            }
            o
        }
        Err(Error::Interrupted) => Outcome::Failed {
            message: "interrupted (Ctrl-C or SIGTERM); nothing is left half-done: this run's \
                      DNS-01 values are removed, and the next run resumes the order or deploys \
                      and verifies the certificate this one stored"
                .into(),
            code: exit::INTERRUPTED,
            next_attempt: None,
        },
        Err(e) => {
            st.failures = st.failures.saturating_add(1);
            st.last_failure = Some(now);
            let message = e.to_string();
            st.last_error = Some(message.clone());
            st.last_code = Some(e.exit_code());
            // The CA's own Retry-After on a rate limit: stored, and never retried before it.
            st.retry_not_before = match &e {
                Error::Acme(crate::acme::AcmeError::RateLimited { until, .. }) => *until,
                _ => None,
            };
            let next = Failures {
                count: st.failures,
                last: st.last_failure,
                not_before: st.retry_not_before,
            }
            .wait_until()
            .unwrap_or(now + policy::backoff(st.failures));
            Outcome::Failed {
                message,
                code: e.exit_code(),
                next_attempt: Some(next),
            }
        }
    }
}

/// The phases of one certificate, in order; the first that is done gives the outcome.
async fn attempt<S: RenewSink>(
    run: &Run<'_, S>,
    spec: &CertificateSpec,
    st: &mut RenewalState,
    journal: Result<Journal, StoreError>,
    live: Result<Option<Certificate>, Error>,
) -> Result<Outcome, Error> {
    let journal = journal?;
    // State in S3: this certificate's leases before any work that changes something, so a
    // runner on another machine never works on it (or its DNS-01 names) at the same time.
    let mut lease = None;
    if !journal.data().is_empty()
        && let Some(o) = take_turn(run, spec, &mut lease)?
    {
        return Ok(o);
    }
    let progress = run.sink.certificate(&spec.name);
    let a = Attempt {
        run,
        spec,
        journal: &journal,
        progress: &progress,
    };
    if let ControlFlow::Break(o) = cleanup::leftovers(&a).await? {
        return Ok(o);
    }
    let targets = from_config::targets(spec)?;
    let live = live?;
    // An interrupted issuance resumes without a new decision (and without a new order
    // when the old one can still lead to a certificate).
    let resume = match journal.data().order_url {
        Some(order_url) => Some(Resume {
            order_url,
            key_pem: journal.saved_key()?,
        }),
        None => None,
    };
    if resume.is_none()
        && let ControlFlow::Break(o) = stored::finish(&a, st, &targets, live.as_ref()).await?
    {
        return Ok(o);
    }
    let reason = match resume {
        Some(_) => "resuming an interrupted renewal".to_string(),
        None => match decide::decide(&a, st, &targets, live.as_ref()).await? {
            ControlFlow::Break(o) => return Ok(o),
            ControlFlow::Continue(reason) => reason,
        },
    };
    if let Some(o) = take_turn(run, spec, &mut lease)? {
        return Ok(o);
    }
    order::issue_and_deploy(&a, st, &targets, live.as_ref(), resume, reason).await
}

/// With state in S3, takes `spec`'s leases once (kept in `lease` until the attempt ends);
/// `Some(Held)` when another run has them. Local state and dry runs take none.
fn take_turn<S: RenewSink>(
    run: &Run<'_, S>,
    spec: &CertificateSpec,
    lease: &mut Option<crate::renew::lease::Leases>,
) -> Result<Option<Outcome>, Error> {
    use crate::workflow::lease_turn::{Turn, lease_certificate};
    if lease.is_some() || run.opts.dry_run {
        return Ok(None);
    }
    match lease_certificate(run.settings(), spec, "renew", &|m| run.sink.warning(m))? {
        Turn::Go(l) => *lease = l,
        Turn::Skip(message) => return Ok(Some(Outcome::Held { message })),
    }
    Ok(None)
}

impl<S: RenewSink> Attempt<'_, S> {
    /// Deploys the certificate in `live_dir` to every target, then verifies over MQTT;
    /// whether any target was written. Ctrl-C or SIGTERM stops waiting (the deployment
    /// already sent finishes on its own).
    pub(crate) async fn deploy_and_verify(
        &self,
        live_dir: &Path,
        targets: &[Box<dyn crate::deploy::DeploymentTarget>],
        skip_if_served: bool,
    ) -> Result<bool, Error> {
        let deploying = async {
            let material = crate::deploy::Material::from_dir(live_dir)?;
            super::deploy::deploy_and_verify(
                self.run.services,
                self.spec,
                &material,
                targets,
                skip_if_served,
                true,
                self.progress,
            )
            .await
            .map_err(|f| match f.stage {
                crate::progress::Stage::Verify => {
                    crate::verify::VerifyFailure::AfterDeploy(f.error.to_string()).into()
                }
                _ => f.error,
            })
        };
        tokio::select! {
            r = deploying => r.map(|d| d.wrote),
            () = self.run.stop.wait() => {
                self.run
                    .sink
                    .interrupted_deploying(self.progress, &self.spec.name, live_dir);
                Err(Error::Interrupted)
            }
        }
    }
}

//! The `issue` use case over every configured certificate: keep the stored one where it is
//! not due (deploying it where it is not served yet), else take the certificate's lease,
//! order, store, deploy and verify; record in the renewal state what was issued, deployed or
//! rate-limited.
//!
//! Owns: that sequence per certificate, when the loop stops (the CA cannot be reached, an
//! interruption) and the typed outcome of each certificate. Does not own the stages
//! (`workflow::issue`, `workflow::deploy`), the checks made before any work
//! (`workflow::preflight`), the state lock (the caller holds it) nor printing (an
//! [`IssueSink`]).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::deploy::{DeploySink, deploy_and_verify, record_deployed};
use super::issue::{IssueFailure, IssueOptions, IssueServices, Issued, issue};
use super::keep::keepable;
use super::lease_turn::{self, Turn};
use super::renew::Stop;
use super::services::Services;
use crate::config::CertificateSpec;
use crate::deploy::{Material, from_config};
use crate::error::Error;
use crate::pki::TrustAnchors;
use crate::pki::certificate::Certificate;
use crate::progress::Stage;
use crate::renew::journal::{Journal, TxtJournal};
use crate::renew::keep::Keep;
use crate::renew::state;
use crate::store::Store;

/// The choices of one `issue` run.
#[derive(Debug, Clone)]
pub struct IssueAllOptions {
    /// Order even where the stored certificate is not due (`--force-renewal`).
    pub force_renewal: bool,
    /// The options of each order (its `replaces` and `resume` are unused here).
    pub issue: IssueOptions,
}

/// What became of the certificate stored (kept or new) on its deployment targets.
#[derive(Debug)]
pub enum AfterStore {
    /// No deployment target.
    NoTarget,
    /// Deployed (where needed) and verified; the time of each step.
    Done {
        /// The time each of the two steps took.
        timings: Vec<(&'static str, Duration)>,
        /// Each target's API requests (for `--timings`).
        api_usage: Vec<String>,
    },
    /// A target refused it or could not be reached (or the stored files were unusable).
    DeployFailed {
        /// Why.
        error: Error,
        /// Each target's API requests.
        api_usage: Vec<String>,
    },
    /// Deployed, but the broker did not pass verification.
    VerifyFailed {
        /// Why.
        error: Error,
        /// The time each step took.
        timings: Vec<(&'static str, Duration)>,
        /// Each target's API requests.
        api_usage: Vec<String>,
    },
    /// Ctrl-C or SIGTERM while deploying or verifying; the deployment already sent finishes
    /// on its own.
    Interrupted {
        /// Each target's API requests so far.
        api_usage: Vec<String>,
    },
}

/// What `issue` did for one certificate.
#[derive(Debug)]
pub enum IssueOutcome {
    /// Not due: the stored certificate is kept.
    Kept {
        /// The stored certificate.
        leaf: Box<Certificate>,
        /// Where it is stored.
        live_dir: PathBuf,
        /// Its deployment.
        after: AfterStore,
    },
    /// A new certificate was ordered and stored.
    Issued {
        /// What was stored.
        issued: Box<Issued>,
        /// Its deployment.
        after: AfterStore,
        /// From the decision to order to the end of its verification.
        elapsed: Duration,
    },
    /// Another run holds this certificate's lease (state in S3): left to it.
    Held {
        /// Who holds it.
        message: String,
    },
    /// Nothing was ordered: the lease, the journal or the CA failed first.
    NotStarted {
        /// Why.
        error: Error,
    },
    /// The order or a stage after it failed.
    Failed {
        /// Where and why, and what the clean-up could not remove.
        failure: Box<IssueFailure>,
    },
}

/// Where `issue` reports to (the CLI renders it). Every method is called in the order things
/// happen, so text appears as the work goes.
pub trait IssueSink {
    /// The progress of one certificate.
    type Cert: DeploySink;
    /// Starts the progress display of `name`.
    fn certificate(&self, name: &str) -> Self::Cert;
    /// The stored certificate is kept (said before it is deployed).
    fn kept(&self, spec: &CertificateSpec, leaf: &Certificate, keep: &Keep, live_dir: &Path);
    /// A new certificate is stored (said before it is deployed).
    fn issued(&self, issued: &Issued);
    /// Something worth saying that does not stop the run.
    fn warning(&self, text: &str);
    /// What the run is waiting for (another run's lease on a DNS-01 name).
    fn note(&self, text: &str);
    /// Ctrl-C or SIGTERM came while `name` was deployed or verified.
    fn interrupted_deploying(&self, cert: &Self::Cert, name: &str, live_dir: &Path);
    /// `spec` is done; `cert` is its progress (`None`: it never started).
    fn done(&self, spec: &CertificateSpec, cert: Option<&Self::Cert>, outcome: &IssueOutcome);
}

/// Issues (or keeps) every certificate of the services' settings, in order; the outcome of
/// each one that was reached. Stops early when the CA cannot be reached or on `stop`.
/// `anchors`: the trust anchors every new chain is verified against
/// (`workflow::preflight::load_anchors`).
pub async fn issue_all<S: IssueSink>(
    services: &Services<'_>,
    anchors: &TrustAnchors,
    opts: &IssueAllOptions,
    stop: &Stop,
    sink: &S,
) -> Vec<(String, IssueOutcome)> {
    let settings = services.settings();
    let store = Store::new(&settings.state_dir);
    let mut out = Vec::new();
    // The CA is asked only when a certificate is ordered: a run that keeps every stored
    // certificate makes no ACME request at all. When one will be ordered, the CA's
    // directory (and TLS handshake) is fetched beside Route 53's set-up; a failure there is
    // reported when the certificate is reached, which connects again.
    let ordering = first_ordered(services, opts).is_some();
    tokio::join!(services.route53(), async {
        if ordering {
            let _ = services.ca().await;
        }
    });
    for spec in &settings.certificates {
        let started = Instant::now();
        if !opts.force_renewal && !opts.issue.new_key {
            match keepable(settings, spec, &store, services.clock().now()) {
                Ok((leaf, keep)) => {
                    let live_dir = store.live_dir(&spec.name);
                    sink.kept(spec, &leaf, &keep, &live_dir);
                    let cert = sink.certificate(&spec.name);
                    let after =
                        deploy_stored(services, spec, &live_dir, true, stop, sink, &cert).await;
                    let outcome = IssueOutcome::Kept {
                        leaf: Box::new(leaf),
                        live_dir,
                        after,
                    };
                    sink.done(spec, Some(&cert), &outcome);
                    let stopped = outcome.interrupted();
                    out.push((spec.name.clone(), outcome));
                    if stopped {
                        break;
                    }
                    continue;
                }
                Err(why) => tracing::info!("`{}`: ordering a new certificate: {why}", spec.name),
            }
        }
        let (mut outcome, cert, last) =
            order_one(services, spec, &store, anchors, opts, stop, sink).await;
        if let IssueOutcome::Issued { elapsed, .. } = &mut outcome {
            *elapsed = started.elapsed();
        }
        sink.done(spec, cert.as_ref(), &outcome);
        out.push((spec.name.clone(), outcome));
        if last {
            break;
        }
    }
    out
}

/// The first certificate this run will order (not keep), if any.
pub fn first_ordered<'s>(
    services: &Services<'s>,
    opts: &IssueAllOptions,
) -> Option<&'s CertificateSpec> {
    let settings = services.settings();
    let store = Store::new(&settings.state_dir);
    let now = services.clock().now();
    settings.certificates.iter().find(|spec| {
        opts.force_renewal || opts.issue.new_key || keepable(settings, spec, &store, now).is_err()
    })
}

/// Starts generating the new key of the first certificate this run will order, so that it is
/// ready by the time its order is finalized (`workflow::keys_ahead`).
pub fn generate_key_ahead(services: &Services<'_>, opts: &IssueAllOptions) {
    if let Some(spec) = first_ordered(services, opts)
        && (!spec.reuse_key || opts.issue.new_key)
    {
        super::keys_ahead::prefetch(spec.key_type);
    }
}

impl IssueOutcome {
    /// Whether Ctrl-C or SIGTERM stopped this certificate.
    pub fn interrupted(&self) -> bool {
        match self {
            IssueOutcome::Kept { after, .. } | IssueOutcome::Issued { after, .. } => {
                matches!(after, AfterStore::Interrupted { .. })
            }
            IssueOutcome::Failed { failure } => matches!(failure.error, Error::Interrupted),
            _ => false,
        }
    }
}

/// Takes the lease, orders, stores, deploys and verifies one certificate; its outcome, its
/// progress (when it got that far) and whether the run stops after it.
async fn order_one<S: IssueSink>(
    services: &Services<'_>,
    spec: &CertificateSpec,
    store: &Store,
    anchors: &TrustAnchors,
    opts: &IssueAllOptions,
    stop: &Stop,
    sink: &S,
) -> (IssueOutcome, Option<S::Cert>, bool) {
    let settings = services.settings();
    let not_started = |error: Error| (IssueOutcome::NotStarted { error }, None, false);
    // State in S3: this certificate's leases while it is ordered (see `workflow::lease_turn`).
    let _lease = match lease_turn::lease_certificate(settings, spec, "issue", &|m| sink.note(m)) {
        Ok(Turn::Go(l)) => l,
        Ok(Turn::Skip(message)) => return (IssueOutcome::Held { message }, None, false),
        Err(e) => return not_started(e.into()),
    };
    let ca = match services.ca().await {
        Ok(ca) => ca,
        // No certificate can be ordered without the CA: the run stops here.
        Err(error) => return (IssueOutcome::NotStarted { error }, None, true),
    };
    // TXT values only: one a failed clean-up leaves is removed by the next run.
    let journal = match Journal::open(&settings.state_dir.join("renewal"), &spec.name) {
        Ok(j) => j,
        Err(e) => return not_started(e.into()),
    };
    let txt_journal = TxtJournal(&journal);
    let cert = sink.certificate(&spec.name);
    let svc = IssueServices {
        dns: services.route53().await,
        lookup: services.lookup(),
        ca,
        store,
        clock: services.clock(),
        anchors,
        progress: &cert,
        journal: Some(&txt_journal),
    };
    match issue(&svc, spec, &opts.issue, stop.wait()).await {
        Ok(issued) => {
            sink.issued(&issued);
            if let Err(e) = record_issued(services, spec, &issued.fingerprint) {
                sink.warning(&format!("cannot save the renewal state: {e}"));
            }
            let live_dir = issued.paths.live_dir.clone();
            let after = deploy_stored(services, spec, &live_dir, false, stop, sink, &cert).await;
            let outcome = IssueOutcome::Issued {
                issued: Box::new(issued),
                after,
                elapsed: Duration::ZERO,
            };
            let stopped = outcome.interrupted();
            (outcome, Some(cert), stopped)
        }
        Err(failure) => {
            if let Error::Acme(crate::acme::AcmeError::RateLimited {
                until: Some(until), ..
            }) = &failure.error
            {
                let error = &failure.error;
                let dir = settings.state_dir.join("renewal");
                let saved = state::record_rate_limit(
                    &dir,
                    &spec.name,
                    *until,
                    error.to_string(),
                    error.exit_code(),
                );
                if let Err(e) = saved {
                    sink.warning(&format!("cannot save the renewal state: {e}"));
                }
            }
            let stopped = matches!(failure.error, Error::Interrupted);
            let outcome = IssueOutcome::Failed {
                failure: Box::new(failure),
            };
            (outcome, Some(cert), stopped)
        }
    }
}

/// Remembers which CA issued the certificate now stored for `spec`, so that a later `issue`
/// keeps it only for the same CA; a new certificate is also a success `status` shows and
/// ends renew's backoff.
fn record_issued(
    services: &Services<'_>,
    spec: &CertificateSpec,
    fingerprint: &str,
) -> Result<(), crate::store::StoreError> {
    let settings = services.settings();
    let dir = settings.state_dir.join("renewal");
    let (mut st, _) = state::load(&dir, &spec.name);
    st.record_issuer(fingerprint, &settings.acme);
    st.last_success = Some(services.clock().now());
    st.failures = 0;
    st.last_failure = None;
    st.last_error = None;
    st.last_code = None;
    state::save(&dir, &spec.name, &st)
}

/// Deploys (and verifies) the certificate stored in `live_dir`. `kept`: it is the stored
/// certificate kept (not a new one), so a target that already serves it gets no write.
async fn deploy_stored<S: IssueSink>(
    services: &Services<'_>,
    spec: &CertificateSpec,
    live_dir: &Path,
    kept: bool,
    stop: &Stop,
    sink: &S,
    cert: &S::Cert,
) -> AfterStore {
    if spec.deploy.is_empty() {
        return AfterStore::NoTarget;
    }
    let material = match Material::from_dir(live_dir) {
        Ok(m) => m,
        Err(e) => {
            return AfterStore::DeployFailed {
                error: e.into(),
                api_usage: Vec::new(),
            };
        }
    };
    let targets = match from_config::targets(spec) {
        Ok(t) => t,
        Err(e) => {
            return AfterStore::DeployFailed {
                error: e.into(),
                api_usage: Vec::new(),
            };
        }
    };
    let usage = || targets.iter().filter_map(|t| t.api_usage()).collect();
    // Ctrl-C from here on stops waiting, not the deployment already sent.
    let deploying = deploy_and_verify(services, spec, &material, &targets, kept, true, cert);
    let done = tokio::select! {
        d = deploying => d,
        () = stop.wait() => {
            sink.interrupted_deploying(cert, &spec.name, live_dir);
            return AfterStore::Interrupted { api_usage: usage() };
        }
    };
    match done {
        Ok(d) => {
            if let Err(e) = record_deployed(services, spec, &material.leaf) {
                sink.warning(&format!("cannot save the renewal state: {e}"));
            }
            AfterStore::Done {
                timings: d.timings,
                api_usage: usage(),
            }
        }
        Err(f) if f.stage == Stage::Deploy => AfterStore::DeployFailed {
            error: f.error,
            api_usage: usage(),
        },
        Err(f) => AfterStore::VerifyFailed {
            error: f.error,
            timings: f.timings,
            api_usage: usage(),
        },
    }
}

#[cfg(test)]
mod tests {
    //! The `issue` use case in-process, on the fakes of `workflow::test_fakes`.

    use std::sync::atomic::Ordering;

    use super::*;
    use crate::clock::FixedClock;
    use crate::config::Settings;
    use crate::verify::{MqttProbe, ProbeReport, ProbeTarget, VerifyError};
    use crate::workflow::test_fakes::*;

    impl<'a> IssueSink for &'a Recorder {
        type Cert = CertRecorder<'a>;
        fn certificate(&self, _: &str) -> CertRecorder<'a> {
            CertRecorder(self)
        }
        fn kept(&self, spec: &CertificateSpec, _: &Certificate, _: &Keep, _: &Path) {
            self.push(format!("kept {}", spec.name));
        }
        fn issued(&self, issued: &Issued) {
            self.push(format!("issued {}", issued.name));
        }
        fn warning(&self, text: &str) {
            self.push(format!("warning: {text}"));
        }
        fn note(&self, text: &str) {
            self.push(format!("note: {text}"));
        }
        fn interrupted_deploying(&self, _: &CertRecorder<'a>, name: &str, _: &Path) {
            self.push(format!("interrupted deploying {name}"));
        }
        fn done(&self, spec: &CertificateSpec, _: Option<&CertRecorder<'a>>, _: &IssueOutcome) {
            self.push(format!("done {}", spec.name));
        }
    }

    /// A broker that never answers.
    struct Silent;

    #[async_trait::async_trait]
    impl MqttProbe for Silent {
        async fn probe(&self, _: &ProbeTarget) -> Result<ProbeReport, VerifyError> {
            std::future::pending().await
        }
    }

    /// One certificate deployed as files and verified, trusting `ca`'s root.
    fn settings_for(dir: &Path, ca: &IssuingCa) -> Settings {
        let root = dir.join("fake-root.pem");
        std::fs::write(&root, ca.root.cert.to_pem()).expect("root");
        let tail = format!(
            "{VERIFY}\n[trust]\nextra_roots = [\"{}\"]\n",
            root.display()
        );
        settings_with(dir, &tail)
    }

    fn options(settings: &Settings) -> IssueAllOptions {
        IssueAllOptions {
            force_renewal: false,
            issue: IssueOptions {
                force: false,
                preferred_chain: None,
                change_timeout: settings.dns.change_timeout,
                propagation_timeout: settings.dns.propagation_timeout,
                replaces: None,
                resume: None,
                new_key: false,
            },
        }
    }

    async fn issue_on(
        services: Services<'_>,
        stop: &Stop,
    ) -> (Vec<(String, IssueOutcome)>, Vec<String>) {
        let settings = services.settings();
        let anchors = crate::workflow::preflight::load_anchors(settings).expect("anchors");
        let recorder = Recorder::default();
        let out = issue_all(&services, &anchors, &options(settings), stop, &&recorder).await;
        (out, recorder.lines())
    }

    #[tokio::test]
    async fn issue_orders_stores_deploys_and_records_then_keeps_what_it_issued() {
        let dir = tempfile::tempdir().expect("temp dir");
        let clock = FixedClock(now());
        let ca = IssuingCa::new(clock.0);
        let settings = settings_for(dir.path(), ca);
        let zone = MemoryZone::with(vec![]);
        let probe = FakeProbe::new(true);
        let services = || {
            Services::new(&settings)
                .with_ca(Box::new(ca))
                .with_dns(Box::new(zone))
                .with_lookup(Box::new(OfflineLookup))
                .with_probe(Box::new(probe))
                .with_clock(&clock)
        };
        let (out, lines) = issue_on(services(), &Stop::never()).await;
        let fingerprint = match &out[..] {
            [(_, IssueOutcome::Issued { issued, after, .. })] => {
                assert!(matches!(after, AfterStore::Done { .. }), "{after:?}");
                issued.fingerprint.clone()
            }
            other => panic!("expected one certificate issued: {other:?}\n{lines:#?}"),
        };
        let (st, _) = state::load(&settings.state_dir.join("renewal"), "broker");
        assert_eq!(st.last_success, Some(clock.0));
        assert_eq!(
            st.issuer_of(&fingerprint),
            Some(settings.acme.directory.as_str())
        );
        assert_eq!(
            st.deployed_fingerprint.as_deref(),
            Some(fingerprint.as_str())
        );
        let said = |l: &str| lines.iter().position(|x| x == l).unwrap_or(usize::MAX);
        assert!(said("issued broker") < said("verified"), "{lines:#?}");
        assert!(said("verified") < said("done broker"), "{lines:#?}");

        // Not due: kept, and the broker already serves it, so no write and no order.
        let written = std::fs::metadata(dir.path().join("deployed/fullchain.pem"))
            .and_then(|m| m.modified())
            .expect("deployed");
        let (out, lines) = issue_on(services(), &Stop::never()).await;
        match &out[..] {
            [(_, IssueOutcome::Kept { leaf, after, .. })] => {
                assert_eq!(leaf.sha256_fingerprint(), fingerprint);
                assert!(matches!(after, AfterStore::Done { .. }), "{after:?}");
            }
            other => panic!("expected the certificate kept: {other:?}\n{lines:#?}"),
        }
        assert_eq!(lines.first().map(String::as_str), Some("kept broker"));
        assert_eq!(ca.orders.load(Ordering::SeqCst), 1, "one order in all");
        let again = std::fs::metadata(dir.path().join("deployed/fullchain.pem"))
            .and_then(|m| m.modified())
            .expect("deployed");
        assert_eq!(written, again, "no second write");
    }

    #[tokio::test]
    async fn an_interruption_while_verifying_leaves_the_certificate_stored_and_unrecorded() {
        let dir = tempfile::tempdir().expect("temp dir");
        let clock = FixedClock(now());
        let ca = IssuingCa::new(clock.0);
        let settings = settings_for(dir.path(), ca);
        let services = Services::new(&settings)
            .with_ca(Box::new(ca))
            .with_dns(Box::new(MemoryZone::with(vec![])))
            .with_lookup(Box::new(OfflineLookup))
            .with_probe(Box::new(Silent))
            .with_clock(&clock);
        // The signal comes while the probe waits for a broker that never answers.
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let stop = Stop::on(async {
            let _ = rx.await;
        });
        let signal = tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            let _ = tx.send(());
        });
        let (out, lines) = issue_on(services, &stop).await;
        signal.await.expect("signal");
        let live_dir = match &out[..] {
            [(_, IssueOutcome::Issued { issued, after, .. })] => {
                assert!(matches!(after, AfterStore::Interrupted { .. }), "{after:?}");
                issued.paths.live_dir.clone()
            }
            other => panic!("expected an interrupted deployment: {other:?}\n{lines:#?}"),
        };
        assert!(
            lines.iter().any(|l| l == "interrupted deploying broker"),
            "{lines:#?}"
        );
        assert!(live_dir.join("fullchain.pem").exists(), "still stored");
        let (st, _) = state::load(&settings.state_dir.join("renewal"), "broker");
        assert_eq!(st.deployed_fingerprint, None, "not verified, not recorded");
        assert!(out[0].1.interrupted());
    }
}

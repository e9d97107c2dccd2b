//! `issue`: CNAME → order → publish TXT → await propagation → validate → finalize →
//! split and check → store, then clean up whatever happened.
//!
//! Owns: the order of stages, overlapping key generation with the DNS work, the clean-up
//! guarantee (after success, failure and interruption; a clean-up failure never hides the
//! original error) and the `Issued` summary. Does not own deployment or verification.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use time::OffsetDateTime;

use super::challenge_records::Visibility;
use super::challenge_records::{DnsView, Ledger};
use super::cname::{CnameOutcome, ensure_cname};
use crate::acme::CertificateAuthority;
use crate::clock::Clock;
use crate::config::CertificateSpec;
use crate::dns::lookup::DnsLookup;
use crate::dns::plan::TxtValue;
use crate::dns::provider::DnsProvider;
use crate::error::Error;
use crate::pki::anchors::{AnchorSource, TrustAnchors};
use crate::pki::bundle::parse_bundle;
use crate::pki::certificate::Certificate;
use crate::pki::chain::{SplitChain, choose_preferred, split_chain};
use crate::pki::issued::CheckError;
use crate::pki::keys::{KeyType, PrivateKey};
use crate::progress::{Progress, Stage, Waiting, human_duration};
use crate::renew::journal::IssueJournal;
use crate::store::{CertificateFiles, Store, StoredPaths};

/// The side effects `issue` needs.
pub struct IssueServices<'a> {
    /// DNS provider (Route 53).
    pub dns: &'a dyn DnsProvider,
    /// DNS lookups.
    pub lookup: &'a dyn DnsLookup,
    /// ACME CA.
    pub ca: &'a dyn CertificateAuthority,
    /// State directory.
    pub store: &'a Store,
    /// Clock.
    pub clock: &'a dyn Clock,
    /// Trust anchors for the chain's root.
    pub anchors: &'a TrustAnchors,
    /// Progress sink.
    pub progress: &'a dyn Progress,
    /// Where each side effect is recorded before it happens (renewals); `None` for `issue`.
    pub journal: Option<&'a dyn IssueJournal>,
}

/// Knobs of one `issue` run.
#[derive(Debug, Clone)]
pub struct IssueOptions {
    /// Replace a conflicting record at the custom domain.
    pub force: bool,
    /// Prefer the chain whose top certificate is issued by this CN.
    pub preferred_chain: Option<String>,
    /// INSYNC timeout.
    pub change_timeout: Duration,
    /// Propagation timeout.
    pub propagation_timeout: Duration,
    /// ARI id of the certificate this order replaces (RFC 9773 `replaces`).
    pub replaces: Option<String>,
    /// An order an interrupted run placed, and the key of its CSR if one was sent.
    pub resume: Option<Resume>,
    /// `--new-key`: a new key this run, whatever `reuse_key` says.
    pub new_key: bool,
}

/// What an interrupted run left that this run can pick up.
#[derive(Debug, Clone)]
pub struct Resume {
    /// The order URL.
    pub order_url: String,
    /// PEM of the key whose CSR may already be at the CA.
    pub key_pem: Option<String>,
}

/// A stored certificate, as the summary shows it.
#[derive(Debug, Clone)]
pub struct Issued {
    /// Lineage name.
    pub name: String,
    /// Names covered.
    pub domains: Vec<String>,
    /// Serial (hex).
    pub serial: String,
    /// SHA-256 fingerprint of the leaf (hex).
    pub fingerprint: String,
    /// Validity start.
    pub not_before: OffsetDateTime,
    /// Validity end.
    pub not_after: OffsetDateTime,
    /// Key type.
    pub key_type: KeyType,
    /// Whether the CSR was signed with the key of the certificate this one replaces.
    pub key_reused: bool,
    /// Intermediates' subjects, leaf side first.
    pub chain: Vec<String>,
    /// The trust anchor's subject.
    pub anchor: String,
    /// Where the anchor was found.
    pub anchor_source: AnchorSource,
    /// Where the files are.
    pub paths: StoredPaths,
    /// What the CNAME stage did.
    pub cname: CnameOutcome,
    /// The CNAME target, if one is configured.
    pub cname_target: Option<String>,
    /// Time per stage.
    pub timings: Vec<(Stage, Duration)>,
    /// Clean-up problems (the certificate is fine; records may remain).
    pub cleanup_warnings: Vec<String>,
}

/// A failed run: the stage, the error, and any clean-up failures on top.
#[derive(Debug)]
pub struct IssueFailure {
    /// Where it failed.
    pub stage: Stage,
    /// Why.
    pub error: Error,
    /// Clean-up failures (empty = nothing left behind).
    pub cleanup: Vec<String>,
}

impl std::fmt::Display for IssueFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (stage: {})", self.error, self.stage)?;
        for c in &self.cleanup {
            write!(f, "\nalso, clean-up failed: {c}")?;
        }
        Ok(())
    }
}

struct Tracker<'a> {
    stage: Mutex<Stage>,
    timings: Mutex<Vec<(Stage, Duration)>>,
    progress: &'a dyn Progress,
}

impl Tracker<'_> {
    fn enter(&self, stage: Stage, message: &str) -> tokio::time::Instant {
        if let Ok(mut s) = self.stage.lock() {
            *s = stage;
        }
        self.progress.update(stage, message);
        tokio::time::Instant::now()
    }

    fn leave(&self, stage: Stage, started: tokio::time::Instant, message: &str) {
        super::stall::after(stage.as_str());
        let took = started.elapsed();
        tracing::debug!(stage = stage.as_str(), ?took, "stage done");
        if let Ok(mut t) = self.timings.lock() {
            t.push((stage, took));
        }
        self.progress.done(stage, message, took);
    }

    fn current(&self) -> Stage {
        self.stage.lock().map(|s| *s).unwrap_or(Stage::Order)
    }
}

/// Runs the issue workflow for one certificate. `shutdown` resolving (Ctrl-C, SIGTERM)
/// stops the work at once; the clean-up still runs.
pub async fn issue(
    svc: &IssueServices<'_>,
    spec: &CertificateSpec,
    opts: &IssueOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<Issued, IssueFailure> {
    let tracker = Tracker {
        stage: Mutex::new(Stage::Cname),
        timings: Mutex::new(Vec::new()),
        progress: svc.progress,
    };
    let view = match DnsView::new(svc.dns, svc.lookup).await {
        Ok(v) => v,
        Err(e) => {
            return Err(IssueFailure {
                stage: Stage::Cname,
                error: e.into(),
                cleanup: vec![],
            });
        }
    };
    // Values an earlier run wrote but could not remove (Route 53 was down) go first.
    if let Some(j) = svc.journal {
        let leftovers = j.leftover_txt();
        if !leftovers.is_empty() {
            let t = tracker.enter(
                Stage::Cleanup,
                &format!(
                    "removing {} DNS-01 value(s) an earlier run left",
                    leftovers.len()
                ),
            );
            let failures = view
                .cleanup(
                    &Ledger::from_entries(&leftovers),
                    "brokercert: remove DNS-01 values an earlier run left",
                )
                .await;
            if let Some(f) = failures.into_iter().next() {
                return Err(IssueFailure {
                    stage: Stage::Cleanup,
                    error: crate::dns::DnsError::Provider {
                        operation: "ChangeResourceRecordSets",
                        message: f,
                    }
                    .into(),
                    cleanup: vec![],
                });
            }
            if let Err(e) = j.txt_removed() {
                return Err(IssueFailure {
                    stage: Stage::Cleanup,
                    error: e.into(),
                    cleanup: vec![],
                });
            }
            tracker.leave(Stage::Cleanup, t, "removed");
        }
    }
    let ledger = Ledger::default();
    let result = tokio::select! {
        r = run(svc, spec, opts, &view, &ledger, &tracker) => r,
        () = shutdown => Err(Error::Interrupted),
    };
    let failed_stage = tracker.current();
    let cleanup = if ledger.is_empty() {
        Vec::new()
    } else {
        let t = tracker.enter(
            Stage::Cleanup,
            "removing the DNS-01 TXT values this run wrote",
        );
        let failures = view
            .cleanup(&ledger, "brokercert: remove DNS-01 values")
            .await;
        if failures.is_empty()
            && let Some(j) = svc.journal
            && let Err(e) = super::blocking::blocking(|| j.txt_removed())
        {
            tracing::warn!("{e}");
        }
        tracker.leave(
            Stage::Cleanup,
            t,
            &if failures.is_empty() {
                format!("removed {} TXT value(s)", ledger.entries().len())
            } else {
                "clean-up incomplete".to_string()
            },
        );
        failures
    };
    svc.progress.pause();
    match result {
        Ok(mut issued) => {
            issued.timings = tracker
                .timings
                .lock()
                .map(|t| t.clone())
                .unwrap_or_default();
            issued.cleanup_warnings = cleanup;
            Ok(issued)
        }
        Err(error) => Err(IssueFailure {
            stage: failed_stage,
            error,
            cleanup,
        }),
    }
}

async fn run(
    svc: &IssueServices<'_>,
    spec: &CertificateSpec,
    opts: &IssueOptions,
    view: &DnsView<'_>,
    ledger: &Ledger,
    tracker: &Tracker<'_>,
) -> Result<Issued, Error> {
    // 1. CNAME.
    let cname = match &spec.cname_target {
        Some(target) => {
            let t = tracker.enter(Stage::Cname, &format!("{} CNAME {target}", spec.domains[0]));
            let outcome = ensure_cname(
                view,
                spec,
                opts.force,
                opts.change_timeout,
                tracker.progress,
            )
            .await?;
            let msg = match &outcome {
                CnameOutcome::AlreadyPresent => "already in place".to_string(),
                CnameOutcome::Created => "created, Route 53 change INSYNC".to_string(),
                CnameOutcome::Replaced(old) => format!("replaced {old} (--force), INSYNC"),
                CnameOutcome::Skipped => String::new(),
            };
            tracker.leave(Stage::Cname, t, &msg);
            outcome
        }
        None => CnameOutcome::Skipped,
    };

    // Where each name's DNS-01 TXT goes, decided before anything is ordered: a name no
    // hosted zone can hold fails here, with no order placed at the CA.
    let t = tracker.enter(Stage::Zones, "finding the hosted zone of every name");
    let targets = view.challenge_targets(spec).await?;
    tracker.leave(
        Stage::Zones,
        t,
        &format!("{} challenge name(s) in {} zone(s)", targets.len(), {
            let mut z: Vec<&str> = targets.iter().map(|(_, z, _)| z.id.as_str()).collect();
            z.sort_unstable();
            z.dedup();
            z.len()
        }),
    );

    // The key: the one an interrupted run already sent, the stored one (`reuse_key`), or a
    // new one, generated while the DNS work runs (RSA generation takes a while).
    let key_type = spec.key_type;
    let saved_key = match opts.resume.as_ref().and_then(|r| r.key_pem.as_deref()) {
        Some(pem) => Some(
            PrivateKey::from_pem(pem)
                .map_err(|e| Error::from(CheckError::JournalKey(e.to_string())))?,
        ),
        None => None,
    };
    let (saved_key, key_reused) = match saved_key {
        Some(k) => (Some(k), false),
        None => match stored_key_to_reuse(svc.store, spec, opts.new_key, tracker)? {
            Some(k) => (Some(k), true),
            None => (None, false),
        },
    };
    // A new key takes its turn with the run's other certificates (`keys_ahead`).
    let key_task = tokio::spawn(async move {
        match saved_key {
            Some(k) => Ok(k),
            None => super::keys_ahead::generate(key_type).await,
        }
    });

    // 2. Order.
    let names_text = spec
        .domains
        .iter()
        .map(|d| d.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let t = tracker.enter(Stage::Order, &format!("ACME order for {names_text}"));
    let resumed = match &opts.resume {
        Some(r) => svc.ca.resume_order(&r.order_url).await?,
        None => None,
    };
    let was_resumed = resumed.is_some();
    let mut order = match resumed {
        Some(o) => o,
        None => {
            let o = svc
                .ca
                .new_order(&spec.domains, opts.replaces.as_deref())
                .await?;
            if let Some(j) = svc.journal {
                super::blocking::blocking(|| j.order_placed(o.url()))?;
            }
            o
        }
    };
    let challenges = order.challenges().to_vec();
    tracker.leave(
        Stage::Order,
        t,
        &if was_resumed {
            format!(
                "resumed the interrupted order ({:?}, {} challenge(s) to answer)",
                order.status(),
                challenges.len()
            )
        } else {
            format!("{} DNS-01 challenge(s) to answer", challenges.len())
        },
    );

    if challenges.is_empty() {
        // Every authorization is valid already (an order's authorizations may be ones the
        // account holds already: RFC 8555 §7.1.3, §7.4; Let's Encrypt reuses valid ones), so
        // there is no challenge to answer: this certificate asks nothing more of Route 53
        // (nothing published, nothing to clean up), and the other certificates' batches
        // need not wait for it.
        svc.dns.finished_with_dns();
    } else {
        // 3. Publish TXT.
        let t = tracker.enter(Stage::PublishTxt, "writing TXT values");
        let mut values = Vec::new();
        for ch in &challenges {
            // Found in the zones stage (no second read of the same CNAME); a challenge name
            // only the CA names is followed here.
            let known = targets
                .iter()
                .find(|(c, _, _)| *c == ch.record_name)
                .map(|(_, z, t)| (z.clone(), t.clone()));
            let (zone, target) = match known {
                Some(found) => found,
                None => {
                    view.challenge_target(&ch.record_name, spec.hosted_zone_id.as_deref())
                        .await?
                }
            };
            if target != ch.record_name {
                tracker.progress.update(
                    Stage::PublishTxt,
                    &format!("{} is delegated: writing at {target}", ch.record_name),
                );
            }
            values.push(TxtValue {
                zone_id: zone.id.clone(),
                name: target.to_string(),
                value: ch.value.clone(),
            });
        }
        if let Some(j) = svc.journal {
            super::blocking::blocking(|| j.txt_publishing(&values))?;
        }
        let changes = view
            .publish(
                &values,
                ledger,
                &format!("brokercert: DNS-01 for {names_text}"),
            )
            .await?;
        tracker.leave(
            Stage::PublishTxt,
            t,
            &format!(
                "{} value(s) in {} change batch(es)",
                values.len(),
                changes.len()
            ),
        );

        // 4. Await propagation.
        let t = tracker.enter(
            Stage::AwaitPropagation,
            "waiting for Route 53 INSYNC and every authoritative nameserver",
        );
        let report = |v: Visibility<'_>| {
            if let Visibility::Nameservers { status: s, .. } = v
                && !s.dropped.is_empty()
            {
                tracker.progress.update(
                    Stage::AwaitPropagation,
                    &format!(
                        "not asking {}: this machine has no route there (IPv6 on an IPv4-only \
                         network?); another address of the same nameserver counts for it",
                        s.dropped.join("; ")
                    ),
                );
            }
            report_visibility(tracker, v)
        };
        view.await_visible(
            &changes,
            &values,
            opts.change_timeout,
            opts.propagation_timeout,
            &report,
        )
        .await?;
        tracker.leave(
            Stage::AwaitPropagation,
            t,
            "every nameserver serves the values",
        );

        // 5. Validate.
        let t = tracker.enter(Stage::Validate, "asking the CA to validate");
        order.submit_challenges().await?;
        order.await_ready().await?;
        tracker.leave(Stage::Validate, t, "the CA validated every name");
    }

    // 6. Finalize.
    let t = tracker.enter(Stage::Finalize, "sending the CSR");
    let key = key_task
        .await
        .map_err(|e| Error::Internal(format!("key generation task failed: {e}")))?
        .map_err(|e| CheckError::KeyGeneration {
            key_type: key_type.to_string(),
            message: e.to_string(),
        })?;
    let names: Vec<String> = spec.domains.iter().map(|d| d.to_string()).collect();
    let csr = key
        .csr_der(&names)
        .map_err(|e| CheckError::Csr(e.to_string()))?;
    if let Some(j) = svc.journal {
        super::blocking::blocking(|| j.key_generated(&key.to_pem()))?;
    }
    let chains = order.finalize(&csr).await?;
    tracker.leave(
        Stage::Finalize,
        t,
        &format!(
            "certificate downloaded ({} alternate chain(s))",
            chains.alternates.len()
        ),
    );

    // 7. Split and check.
    let t = tracker.enter(Stage::SplitAndCheck, "splitting and verifying the chain");
    let now = svc.clock.now();
    let split = select_and_split(
        &chains.default,
        &chains.alternates,
        opts.preferred_chain.as_deref(),
        svc.anchors,
    )?;
    check_issued(&split, &key, spec, now)?;
    tracker.leave(
        Stage::SplitAndCheck,
        t,
        &format!(
            "leaf ← {} intermediate(s) ← {}",
            split.intermediates.len(),
            split.anchor.display_name()
        ),
    );

    // 8. Store.
    let t = tracker.enter(Stage::Store, "writing files");
    let files = files_of(&split, &key);
    let version = version_name(now, split.leaf.serial_hex());
    let paths = super::blocking::blocking(|| svc.store.save(&spec.name, &version, &files))?;
    if let Some(j) = svc.journal {
        super::blocking::blocking(|| j.stored())?;
    }
    tracker.leave(Stage::Store, t, &format!("{}", paths.live_dir.display()));

    Ok(Issued {
        name: spec.name.clone(),
        domains: names,
        serial: split.leaf.serial_hex().to_string(),
        fingerprint: split.leaf.sha256_fingerprint().to_string(),
        not_before: split.leaf.not_before(),
        not_after: split.leaf.not_after(),
        key_type,
        key_reused,
        chain: split
            .intermediates
            .iter()
            .map(|c| c.display_name())
            .collect(),
        anchor: split.anchor.display_name(),
        anchor_source: split.anchor_source,
        paths,
        cname,
        cname_target: spec.cname_target.as_ref().map(|t| t.to_string()),
        timings: Vec::new(),
        cleanup_warnings: Vec::new(),
    })
}

/// Parses the default and alternate chains, picks the preferred one, splits and verifies it.
pub fn select_and_split(
    default: &str,
    alternates: &[String],
    preferred: Option<&str>,
    anchors: &TrustAnchors,
) -> Result<SplitChain, Error> {
    let parse = |pem: &str| -> Result<Vec<Certificate>, Error> {
        parse_bundle(pem.as_bytes())
            .map(|b| b.certificates)
            .map_err(|e| Error::from(CheckError::UnreadableChain(e.to_string())))
    };
    let mut chains = vec![parse(default)?];
    for alt in alternates {
        match parse(alt) {
            Ok(c) => chains.push(c),
            Err(e) => tracing::warn!("ignoring an unreadable alternate chain: {e}"),
        }
    }
    let idx = preferred.map(|p| choose_preferred(&chains, p)).unwrap_or(0);
    if let Some(p) = preferred
        && idx == 0
        && chains[0]
            .last()
            .is_none_or(|c| c.issuer_cn().as_deref().map(str::trim) != Some(p.trim()))
    {
        tracing::warn!(
            "no chain offered by the CA has a top certificate issued by `{p}` (`preferred_chain` names the issuer of the chain's last certificate, as in certbot and lego); using the default chain"
        );
    }
    Ok(split_chain(chains.swap_remove(idx), anchors).map_err(CheckError::from)?)
}

fn check_issued(
    split: &SplitChain,
    key: &PrivateKey,
    spec: &CertificateSpec,
    now: OffsetDateTime,
) -> Result<(), Error> {
    if !key.matches_certificate(&split.leaf) {
        return Err(CheckError::WrongKey.into());
    }
    for d in &spec.domains {
        if !split.leaf.covers_name(d.as_str()) {
            return Err(CheckError::NameMissing {
                name: d.to_string(),
                names: split.leaf.dns_names().join(", "),
            }
            .into());
        }
    }
    if !split.leaf.is_valid_at(now) {
        return Err(CheckError::NotValidNow {
            not_before: split.leaf.not_before(),
            not_after: split.leaf.not_after(),
        }
        .into());
    }
    Ok(())
}

/// The stored key, when `reuse_key` asks for it and it can be used; `None` for a new key
/// (the reason goes to the progress output). An unreadable stored key stops the run.
fn stored_key_to_reuse(
    store: &crate::store::Store,
    spec: &CertificateSpec,
    new_key: bool,
    tracker: &Tracker<'_>,
) -> Result<Option<PrivateKey>, Error> {
    use crate::pki::{FreshBecause, KeyChoice, StoredKey, choose_key};
    if !spec.reuse_key && !new_key {
        return Ok(None);
    }
    let path = store.live_dir(&spec.name).join("privkey.pem");
    let read: Option<Result<PrivateKey, String>> = match store.read_live(&spec.name, "privkey.pem")
    {
        Ok(None) => None,
        Ok(Some(text)) => Some(PrivateKey::from_pem(text).map_err(|e| e.to_string())),
        Err(e) => Some(Err(e.to_string())),
    };
    let stored = match &read {
        None => StoredKey::Missing,
        Some(Ok(k)) => StoredKey::Key(k),
        Some(Err(why)) => StoredKey::Unreadable(why),
    };
    match choose_key(spec.reuse_key, new_key, spec.key_type, stored) {
        KeyChoice::Reuse => Ok(read.and_then(Result::ok)),
        KeyChoice::Fresh(FreshBecause::Rotation) => Ok(None),
        KeyChoice::Fresh(why) => {
            tracker
                .progress
                .update(Stage::Order, &format!("a new {} key: {why}", spec.key_type));
            Ok(None)
        }
        KeyChoice::Unusable(why) => Err(CheckError::StoredKeyUnusable {
            name: spec.name.clone(),
            path: path.to_path_buf(),
            why: why.to_string(),
        }
        .into()),
    }
}

fn files_of(split: &SplitChain, key: &PrivateKey) -> CertificateFiles {
    let cert = split.leaf.to_pem();
    let chain: String = split.intermediates.iter().map(|c| c.to_pem()).collect();
    CertificateFiles {
        fullchain: format!("{cert}{chain}"),
        cert,
        chain,
        privkey: key.to_pem(),
        root: split.anchor.to_pem(),
    }
}

fn version_name(now: OffsetDateTime, serial: &str) -> String {
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let stamp = now
        .format(&fmt)
        .unwrap_or_else(|_| now.unix_timestamp().to_string());
    let short: String = serial.chars().take(12).collect();
    format!("{stamp}-{short}")
}

/// One line per stage with its time, for `--timings`.
pub fn timings_table(
    timings: &[(Stage, Duration)],
    after: &[(&'static str, Duration)],
    total: Duration,
) -> String {
    let mut out = String::from("timings:");
    let rows = timings
        .iter()
        .map(|(s, d)| (s.as_str(), *d))
        .chain(after.iter().copied())
        .chain([("total", total)]);
    for (name, d) in rows {
        out.push_str(&format!("\n  {name:<18} {}", human_duration(d)));
    }
    out
}

/// Renders what the DNS stage reports while it waits (`report` in [`issue_one`]).
fn report_visibility(tracker: &Tracker<'_>, v: Visibility<'_>) {
    match v {
        Visibility::Note(text) => tracker.progress.update(Stage::AwaitPropagation, text),
        Visibility::Change {
            zone_id,
            change,
            insync: false,
            elapsed,
            next_check,
        } => tracker.progress.waiting(
            Stage::AwaitPropagation,
            &Waiting {
                what: &format!("Route 53 change {change} in {zone_id} still PENDING"),
                waiting_for: Some("INSYNC"),
                elapsed,
                next_check,
            },
        ),
        Visibility::Change {
            zone_id,
            change,
            insync: true,
            elapsed,
            ..
        } => tracker.progress.update(
            Stage::AwaitPropagation,
            &format!(
                "Route 53 change {change} in {zone_id} INSYNC ({})",
                human_duration(elapsed)
            ),
        ),
        Visibility::Nameservers { name, status: s } if s.ready < s.total => {
            tracker.progress.waiting(
                Stage::AwaitPropagation,
                &Waiting {
                    what: &format!("{name} TXT seen by {}/{} nameservers", s.ready, s.total),
                    waiting_for: Some(&s.waiting_for.join(", ")),
                    elapsed: s.elapsed,
                    next_check: Some(s.next_check),
                },
            )
        }
        Visibility::Nameservers { name, status: s } => tracker.progress.update(
            Stage::AwaitPropagation,
            &format!(
                "{name} TXT seen by {}/{} nameservers ({})",
                s.ready,
                s.total,
                human_duration(s.elapsed)
            ),
        ),
    }
}

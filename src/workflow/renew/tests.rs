//! In-process tests of the renewal phases, on the fakes of `workflow::test_fakes` (a fake CA,
//! MQTT probe and hosted zone, a files target in a temporary directory) and a fixed clock:
//! each phase transition without a sandbox.

use std::sync::atomic::Ordering;

use super::*;
use crate::acme::AcmeError;
use crate::clock::FixedClock;
use crate::dns::{RecordSet, RecordType};
use crate::pki::bundle::parse_bundle;
use crate::renew::journal::{IssueJournal, Journal, TxtJournal};
use crate::workflow::test_fakes::*;

impl<'a> RenewSink for &'a Recorder {
    type Cert = CertRecorder<'a>;
    fn certificate(&self, _: &str) -> CertRecorder<'a> {
        CertRecorder(self)
    }
    fn warning(&self, text: &str) {
        self.push(format!("warning: {text}"));
    }
    fn jitter(&self, _: Duration) {}
    fn ari_explained(&self, _: &str) {}
    fn interrupted_deploying(&self, _: &CertRecorder<'a>, _: &str, _: &std::path::Path) {}
}

async fn run(
    settings: &Settings,
    clock: &FixedClock,
    ca: &'static FakeCa,
) -> (Outcome, Vec<String>) {
    let services = Services::new(settings)
        .with_ca(Box::new(ca))
        .with_clock(clock);
    run_on(services).await
}

async fn run_on(services: Services<'_>) -> (Outcome, Vec<String>) {
    let recorder = Recorder::default();
    let out = renew_all(
        &services,
        &RenewOptions::default(),
        &Stop::never(),
        &&recorder,
    )
    .await;
    let (_, outcome) = out.into_iter().next().expect("one outcome");
    (outcome, recorder.lines())
}

#[tokio::test]
async fn a_stored_certificate_never_deployed_is_deployed_without_asking_the_ca() {
    let dir = tempfile::tempdir().expect("temp dir");
    let settings = settings(dir.path());
    let clock = FixedClock(now());
    let fingerprint = store_certificate(&settings, clock.0);
    let ca = fake_ca();
    let (outcome, lines) = run(&settings, &clock, ca).await;
    match &outcome {
        Outcome::Renewed {
            reason, targets, ..
        } => {
            assert_eq!(reason, "deployed the certificate an earlier run stored");
            assert_eq!(*targets, 1);
        }
        other => panic!("expected the stored certificate deployed: {other:?}\n{lines:#?}"),
    }
    assert!(dir.path().join("deployed/fullchain.pem").exists());
    assert_eq!(ca.orders.load(Ordering::SeqCst), 0, "no order");
    let (st, _) = state::load(&settings.state_dir.join("renewal"), "broker");
    assert_eq!(
        st.deployed_fingerprint.as_deref(),
        Some(fingerprint.as_str())
    );
    assert_eq!(
        st.last_success,
        Some(clock.0),
        "recorded at the fixed clock's time"
    );
}

#[tokio::test]
async fn a_deployed_certificate_that_is_not_due_asks_the_ca_for_no_order() {
    let dir = tempfile::tempdir().expect("temp dir");
    let settings = settings(dir.path());
    let clock = FixedClock(now());
    store_deployed(&settings, clock.0);
    let ca = fake_ca();
    let (outcome, lines) = run(&settings, &clock, ca).await;
    match outcome {
        Outcome::NotDue { next, expires, .. } => {
            assert_eq!(expires, clock.0 + time::Duration::days(60));
            assert!(next > clock.0, "{next}");
        }
        other => panic!("expected not due: {other:?}\n{lines:#?}"),
    }
    assert_eq!(ca.orders.load(Ordering::SeqCst), 0, "no order");
    assert!(
        !dir.path().join("deployed/fullchain.pem").exists(),
        "nothing deployed"
    );
}

#[tokio::test]
async fn a_failure_within_its_backoff_is_skipped_with_the_next_attempt() {
    let dir = tempfile::tempdir().expect("temp dir");
    let settings = settings(dir.path());
    let clock = FixedClock(now());
    let renewal = settings.state_dir.join("renewal");
    let failed_at = clock.0 - time::Duration::minutes(1);
    let st = RenewalState {
        failures: 2,
        last_failure: Some(failed_at),
        last_error: Some("the CA said no".into()),
        last_code: Some(exit::ACME),
        ..Default::default()
    };
    state::save(&renewal, "broker", &st).expect("state");
    let ca = fake_ca();
    let (outcome, lines) = run(&settings, &clock, ca).await;
    match outcome {
        Outcome::BackingOff {
            message,
            code,
            until,
        } => {
            assert_eq!(code, exit::ACME);
            assert_eq!(until, failed_at + policy::backoff(2));
            assert!(message.contains("the CA said no"), "{message}");
        }
        other => panic!("expected a backoff: {other:?}\n{lines:#?}"),
    }
    assert_eq!(ca.orders.load(Ordering::SeqCst), 0, "no order");
    assert_eq!(
        state::load(&renewal, "broker").0,
        st,
        "a skipped run changes nothing"
    );
}

#[test]
fn a_failure_is_counted_and_sets_the_next_attempt_a_success_clears_it() {
    let now = now();
    let mut st = RenewalState::default();
    let e = Error::Acme(AcmeError::Protocol("no".into()));
    match record(&mut st, Err(e), now) {
        Outcome::Failed {
            next_attempt, code, ..
        } => {
            assert_eq!(code, exit::ACME);
            assert_eq!(next_attempt, Some(now + policy::backoff(1)));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!((st.failures, st.last_failure), (1, Some(now)));
    let renewed = Outcome::Renewed {
        reason: "r".into(),
        serial: "01".into(),
        expires: now,
        targets: 0,
    };
    record(&mut st, Ok(renewed), now);
    assert_eq!(st.failures, 0);
    assert_eq!(st.last_error, None);
    assert_eq!(st.last_success, Some(now));
}

#[tokio::test]
async fn a_stored_certificate_is_verified_after_deploying_and_a_failed_verify_is_retried_without_a_write()
 {
    let dir = tempfile::tempdir().expect("temp dir");
    let settings = settings_with(dir.path(), VERIFY);
    let clock = FixedClock(now());
    let fingerprint = store_certificate(&settings, clock.0);
    let renewal = settings.state_dir.join("renewal");

    // Deployed, but the broker never passes: the run fails and the deployment is not
    // recorded as done.
    let failing = FakeProbe::new(false);
    let services = Services::new(&settings)
        .with_ca(Box::new(fake_ca()))
        .with_probe(Box::new(failing))
        .with_clock(&clock);
    let (outcome, lines) = run_on(services).await;
    match &outcome {
        Outcome::Failed { message, .. } => {
            assert!(message.contains("no answer within 5s"), "{message}");
        }
        other => panic!("expected the verification to fail: {other:?}\n{lines:#?}"),
    }
    assert!(failing.probes.load(Ordering::SeqCst) >= 1);
    assert!(dir.path().join("deployed/fullchain.pem").exists());
    let (st, _) = state::load(&renewal, "broker");
    assert_eq!(st.deployed_fingerprint, None, "not verified, so not done");
    assert_eq!(st.failures, 1);

    // The next run (past the backoff) finds the same certificate served: it verifies it and
    // writes nothing again.
    let later = FixedClock(clock.0 + policy::backoff(1) + time::Duration::seconds(1));
    let written = std::fs::metadata(dir.path().join("deployed/fullchain.pem"))
        .and_then(|m| m.modified())
        .expect("deployed file");
    let passing = FakeProbe::new(true);
    let services = Services::new(&settings)
        .with_ca(Box::new(fake_ca()))
        .with_probe(Box::new(passing))
        .with_clock(&later);
    let (outcome, lines) = run_on(services).await;
    match &outcome {
        Outcome::Renewed { reason, .. } => {
            assert_eq!(reason, "verified the certificate an earlier run deployed");
        }
        other => panic!("expected the deployed certificate verified: {other:?}\n{lines:#?}"),
    }
    assert!(lines.iter().any(|l| l == "verified"), "{lines:#?}");
    assert!(passing.probes.load(Ordering::SeqCst) >= 1);
    let again = std::fs::metadata(dir.path().join("deployed/fullchain.pem"))
        .and_then(|m| m.modified())
        .expect("deployed file");
    assert_eq!(written, again, "no second write");
    let (st, _) = state::load(&renewal, "broker");
    assert_eq!(
        st.deployed_fingerprint.as_deref(),
        Some(fingerprint.as_str())
    );
    assert_eq!(st.failures, 0);
}

#[tokio::test]
async fn dns01_values_an_interrupted_run_left_are_removed_first_and_only_ours() {
    let dir = tempfile::tempdir().expect("temp dir");
    let settings = settings(dir.path());
    let clock = FixedClock(now());
    store_deployed(&settings, clock.0);
    let renewal = settings.state_dir.join("renewal");
    let name = "_acme-challenge.broker.example.test";
    // The interrupted run journaled its value before publishing it; someone else's value
    // shares the record set.
    let journal = Journal::open(&renewal, "broker").expect("journal");
    TxtJournal(&journal)
        .txt_publishing(&[crate::dns::plan::TxtValue {
            zone_id: "Z1".into(),
            name: name.into(),
            value: "ours".into(),
        }])
        .expect("journal");
    drop(journal);
    let zone = MemoryZone::with(vec![RecordSet {
        name: name.into(),
        rtype: RecordType::Txt,
        ttl: 60,
        values: vec!["theirs".into(), "ours".into()],
    }]);
    let ca = fake_ca();
    let services = Services::new(&settings)
        .with_ca(Box::new(ca))
        .with_dns(Box::new(zone))
        .with_lookup(Box::new(OfflineLookup))
        .with_clock(&clock);
    let (outcome, lines) = run_on(services).await;
    assert!(
        matches!(outcome, Outcome::NotDue { .. }),
        "cleaned, then nothing due: {outcome:?}\n{lines:#?}"
    );
    assert_eq!(zone.txt_values(name), ["theirs"], "only ours removed");
    assert_eq!(zone.changes.load(Ordering::SeqCst), 1, "one change");
    assert!(
        Journal::open(&renewal, "broker")
            .expect("journal")
            .data()
            .txt
            .is_empty(),
        "the journal no longer names the value"
    );
    assert!(
        lines.iter().any(|l| l.contains("an interrupted run left")),
        "{lines:#?}"
    );
    assert_eq!(ca.orders.load(Ordering::SeqCst), 0, "no order");

    // Nothing left: the next run sends no change.
    let services = Services::new(&settings)
        .with_ca(Box::new(fake_ca()))
        .with_dns(Box::new(zone))
        .with_lookup(Box::new(OfflineLookup))
        .with_clock(&clock);
    let _ = run_on(services).await;
    assert_eq!(zone.changes.load(Ordering::SeqCst), 1, "no further change");
}

#[tokio::test]
async fn a_certificate_never_issued_is_ordered_stored_deployed_and_verified() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = FixedClock(now());
    let ca = IssuingCa::new(clock.0);
    let root = dir.path().join("fake-root.pem");
    std::fs::write(&root, ca.root.cert.to_pem()).expect("root");
    let tail = format!(
        "{VERIFY}\n[trust]\nextra_roots = [\"{}\"]\n",
        root.display()
    );
    // `[trust]` is a top-level table: it must come after the certificate's sections.
    let settings = settings_with(dir.path(), &tail);
    let zone = MemoryZone::with(vec![]);
    let probe = FakeProbe::new(true);
    let services = Services::new(&settings)
        .with_ca(Box::new(ca))
        .with_dns(Box::new(zone))
        .with_lookup(Box::new(OfflineLookup))
        .with_probe(Box::new(probe))
        .with_clock(&clock);
    let (outcome, lines) = run_on(services).await;
    let serial = match &outcome {
        Outcome::Renewed {
            serial,
            expires,
            targets,
            ..
        } => {
            assert_eq!(*expires, clock.0 + time::Duration::days(90));
            assert_eq!(*targets, 1);
            serial.clone()
        }
        other => panic!("expected a new certificate: {other:?}\n{lines:#?}"),
    };
    assert_eq!(ca.orders.load(Ordering::SeqCst), 1);
    assert_eq!(
        zone.changes.load(Ordering::SeqCst),
        0,
        "no challenge, no change"
    );
    assert!(probe.probes.load(Ordering::SeqCst) >= 1, "verified");
    let deployed = std::fs::read(dir.path().join("deployed/fullchain.pem")).expect("deployed");
    let leaf = parse_bundle(&deployed)
        .expect("bundle")
        .certificates
        .remove(0);
    assert!(leaf.serial_hex().eq_ignore_ascii_case(&serial));
    let (st, _) = state::load(&settings.state_dir.join("renewal"), "broker");
    assert_eq!(
        st.deployed_fingerprint.as_deref(),
        Some(leaf.sha256_fingerprint())
    );
    assert_eq!(st.last_success, Some(clock.0));

    // The next run keeps it.
    let services = Services::new(&settings)
        .with_ca(Box::new(ca))
        .with_dns(Box::new(zone))
        .with_lookup(Box::new(OfflineLookup))
        .with_probe(Box::new(probe))
        .with_clock(&clock);
    let (outcome, lines) = run_on(services).await;
    assert!(
        matches!(outcome, Outcome::NotDue { .. }),
        "{outcome:?}\n{lines:#?}"
    );
    assert_eq!(ca.orders.load(Ordering::SeqCst), 1, "no second order");
}

#[test]
fn the_stored_decision_uses_the_ari_window_kept_for_this_leaf_only() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = settings(dir.path());
    let now = now();
    let fingerprint = store_certificate(&settings, now);
    let leaf = Store::new(&settings.state_dir)
        .read_live("broker", "cert.pem")
        .expect("read")
        .expect("stored");
    let leaf = parse_bundle(leaf.as_bytes())
        .expect("bundle")
        .certificates
        .remove(0);
    let window = |fingerprint: &str| RenewalState {
        ari: Some(crate::renew::state::AriRecord {
            fingerprint: fingerprint.into(),
            start: now + time::Duration::hours(20),
            end: now + time::Duration::hours(30),
            chosen: now + time::Duration::days(1),
            next_check: now + time::Duration::hours(6),
            explanation_url: None,
        }),
        ..Default::default()
    };
    let by_lifetime = policy::Decision::NotDue {
        next: now + time::Duration::days(30),
        by: policy::Reason::Lifetime,
    };
    let decide = |settings: &Settings, st: &RenewalState| {
        decide::from_stored(settings, Some(&leaf), st, None, now)
    };
    assert_eq!(
        decide(&settings, &window(&fingerprint)),
        policy::Decision::NotDue {
            next: now + time::Duration::days(1),
            by: policy::Reason::AriWindow,
        }
    );
    assert_eq!(decide(&settings, &window("another leaf")), by_lifetime);
    settings.renew.ari = false;
    assert_eq!(decide(&settings, &window(&fingerprint)), by_lifetime);
}

#[tokio::test]
async fn the_checks_every_certificate_shares_are_made_once_per_run() {
    // They read the trust roots and the CA's HTTPS roots; fifty certificates used to make
    // them fifty times (a second of CPU in a fleet). Once per run: a root file removed
    // after the first certificate's checks is not read again in that run, and a new run
    // does read it (the check is real).
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("extra-root.pem");
    let ca = crate::pki::test_support::TestCa::root(
        "Extra Root",
        crate::pki::test_support::ecdsa_p256(),
    );
    std::fs::write(&root, ca.cert.to_pem()).expect("root");
    let mut settings = settings(dir.path());
    settings.extra_roots = vec![root.clone()];
    settings.acme.https_roots = vec![root.clone()];
    let services = Services::new(&settings);
    let (opts, stop, recorder) = (RenewOptions::default(), Stop::never(), Recorder::default());
    let store = Store::new(&settings.state_dir);
    let sink = &recorder;
    let run = Run::new(&services, &opts, &store, &stop, &sink);
    let first: *const TrustAnchors = run.shared_checks().await.expect("the checks pass");
    std::fs::remove_file(&root).expect("remove the root");
    let again = run
        .shared_checks()
        .await
        .expect("made once: the removed file is not read again in this run");
    assert!(
        std::ptr::eq(first, again),
        "the same anchors, not loaded again"
    );
    let next = Run::new(&services, &opts, &store, &stop, &sink);
    let e = next
        .shared_checks()
        .await
        .expect_err("a new run checks again and finds the file gone");
    assert!(e.to_string().contains("extra-root.pem"), "{e}");
}

//! In-process tests of the renewal phases, with a fake CA, a fake MQTT probe, an in-memory
//! DNS provider, a files target in a temporary directory and a fixed clock: each phase
//! transition without a sandbox.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::*;
use crate::acme::{AcmeError, CaOrder, CertificateAuthority, RenewalWindow};
use crate::clock::FixedClock;
use crate::deploy::DeployOutcome;
use crate::dns::provider::{ChangeStatus, DnsProvider};
use crate::dns::{
    ChangeAction, ChangeId, DnsError, HostedZone, RecordChange, RecordSet, RecordType,
};
use crate::names::DomainName;
use crate::pki::bundle::parse_bundle;
use crate::pki::test_support::{TestCa, ecdsa_p256, leaf_params};
use crate::progress::{Progress, Stage};
use crate::renew::journal::{IssueJournal, Journal, TxtJournal};
use crate::store::CertificateFiles;
use crate::verify::{
    Endpoint, MqttProbe, ProbeReport, ProbeTarget, RoundTrip, Step, Transport, TransportReport,
    VerifyError,
};

/// A CA that counts what it is asked and never issues.
#[derive(Default)]
struct FakeCa {
    orders: AtomicUsize,
    ari: AtomicUsize,
}

#[async_trait]
impl CertificateAuthority for &'static FakeCa {
    async fn new_order(
        &self,
        _: &[DomainName],
        _: Option<&str>,
    ) -> Result<Box<dyn CaOrder>, AcmeError> {
        self.orders.fetch_add(1, Ordering::SeqCst);
        Err(AcmeError::Protocol("the fake CA issues nothing".into()))
    }

    async fn resume_order(&self, _: &str) -> Result<Option<Box<dyn CaOrder>>, AcmeError> {
        self.orders.fetch_add(1, Ordering::SeqCst);
        Ok(None)
    }

    async fn renewal_info(&self, _: &[u8]) -> Result<Option<RenewalWindow>, AcmeError> {
        self.ari.fetch_add(1, Ordering::SeqCst);
        Ok(None)
    }
}

/// A CA whose authorizations are already valid (as a real CA's are for names it validated
/// recently): each order is ready at once and finalizing signs the CSR with its test
/// intermediate, for 90 days from `now`.
struct IssuingCa {
    root: TestCa,
    intermediate: TestCa,
    now: OffsetDateTime,
    orders: AtomicUsize,
}

impl IssuingCa {
    fn new(now: OffsetDateTime) -> &'static IssuingCa {
        let root = TestCa::root("Fake Root", ecdsa_p256());
        let intermediate = root.intermediate("Fake Intermediate", ecdsa_p256());
        Box::leak(Box::new(IssuingCa {
            root,
            intermediate,
            now,
            orders: AtomicUsize::new(0),
        }))
    }
}

#[async_trait]
impl CertificateAuthority for &'static IssuingCa {
    async fn new_order(
        &self,
        _: &[DomainName],
        _: Option<&str>,
    ) -> Result<Box<dyn CaOrder>, AcmeError> {
        let n = self.orders.fetch_add(1, Ordering::SeqCst);
        Ok(Box::new(ReadyOrder {
            ca: *self,
            url: format!("https://127.0.0.1:9/order/{n}"),
            status: crate::acme::OrderStatus::Ready,
        }))
    }

    async fn resume_order(&self, _: &str) -> Result<Option<Box<dyn CaOrder>>, AcmeError> {
        Ok(None)
    }

    async fn renewal_info(&self, _: &[u8]) -> Result<Option<RenewalWindow>, AcmeError> {
        Ok(None)
    }
}

struct ReadyOrder {
    ca: &'static IssuingCa,
    url: String,
    status: crate::acme::OrderStatus,
}

#[async_trait]
impl CaOrder for ReadyOrder {
    fn url(&self) -> &str {
        &self.url
    }
    fn challenges(&self) -> &[crate::acme::Dns01Challenge] {
        &[]
    }
    async fn submit_challenges(&mut self) -> Result<(), AcmeError> {
        Ok(())
    }
    async fn await_ready(&mut self) -> Result<(), AcmeError> {
        Ok(())
    }
    async fn finalize(&mut self, csr_der: &[u8]) -> Result<crate::acme::IssuedChains, AcmeError> {
        let csr = rcgen::CertificateSigningRequestParams::from_der(&csr_der.to_vec().into())
            .map_err(|e| AcmeError::Protocol(format!("the CSR does not parse: {e}")))?;
        let mut csr = csr;
        csr.params.not_before = self.ca.now - time::Duration::minutes(1);
        csr.params.not_after = self.ca.now + time::Duration::days(90);
        let issuer =
            rcgen::Issuer::from_params(&self.ca.intermediate.params, &self.ca.intermediate.key);
        let leaf = csr
            .signed_by(&issuer)
            .map_err(|e| AcmeError::Protocol(format!("cannot sign: {e}")))?;
        self.status = crate::acme::OrderStatus::Valid;
        Ok(crate::acme::IssuedChains {
            default: format!("{}{}", leaf.pem(), self.ca.intermediate.cert.to_pem()),
            alternates: vec![],
        })
    }
    fn status(&mut self) -> crate::acme::OrderStatus {
        self.status
    }
}

/// A broker as the probe sees it: every probe passes, or every probe times out.
struct FakeProbe {
    passes: bool,
    probes: AtomicUsize,
}

impl FakeProbe {
    fn new(passes: bool) -> &'static FakeProbe {
        Box::leak(Box::new(FakeProbe {
            passes,
            probes: AtomicUsize::new(0),
        }))
    }
}

#[async_trait]
impl MqttProbe for &'static FakeProbe {
    async fn probe(&self, target: &ProbeTarget) -> Result<ProbeReport, VerifyError> {
        self.probes.fetch_add(1, Ordering::SeqCst);
        let endpoint = Endpoint {
            transport: Transport::Mqtts,
            host: target.host.clone(),
            port: target.mqtts_port,
            path: None,
            addr: None,
        };
        let outcome = if self.passes {
            Ok(RoundTrip {
                peer: "127.0.0.1:8883".parse().expect("address"),
                connect_time: Duration::from_millis(1),
                round_trip: Duration::from_millis(1),
                topic: "brokercert/test".into(),
                anonymous_refused: None,
            })
        } else {
            Err(VerifyError::Timeout {
                endpoint: endpoint.boxed(),
                step: Step::RoundTrip,
                timeout: Duration::from_secs(5),
            })
        };
        Ok(ProbeReport {
            host: target.host.clone(),
            transports: vec![TransportReport {
                transport: Transport::Mqtts,
                url: format!("{}:{}", target.host, target.mqtts_port),
                outcome,
                server_certificate: None,
            }],
        })
    }
}

/// One hosted zone, `example.test`, held in memory: changes apply at once (INSYNC) and the
/// record sets read back exactly, as Route 53's API answers them.
struct MemoryZone {
    sets: Mutex<Vec<RecordSet>>,
    changes: AtomicUsize,
}

impl MemoryZone {
    fn with(sets: Vec<RecordSet>) -> &'static MemoryZone {
        Box::leak(Box::new(MemoryZone {
            sets: Mutex::new(sets),
            changes: AtomicUsize::new(0),
        }))
    }

    fn txt_values(&self, name: &str) -> Vec<String> {
        let sets = self.sets.lock().expect("lock");
        sets.iter()
            .filter(|s| s.name == name && s.rtype == RecordType::Txt)
            .flat_map(|s| s.values.clone())
            .collect()
    }
}

#[async_trait]
impl DnsProvider for &'static MemoryZone {
    async fn hosted_zones(&self) -> Result<Vec<HostedZone>, DnsError> {
        Ok(vec![HostedZone {
            id: "Z1".into(),
            name: "example.test".into(),
            private: false,
        }])
    }
    async fn change(
        &self,
        _: &str,
        changes: &[RecordChange],
        _: &str,
    ) -> Result<ChangeId, DnsError> {
        self.changes.fetch_add(1, Ordering::SeqCst);
        let mut sets = self.sets.lock().expect("lock");
        for c in changes {
            let at = sets
                .iter()
                .position(|s| s.name == c.set.name && s.rtype == c.set.rtype);
            match (c.action, at) {
                (ChangeAction::Delete, Some(i)) if sets[i] == c.set => {
                    sets.remove(i);
                }
                (ChangeAction::Delete, _) => {
                    return Err(DnsError::Provider {
                        operation: "ChangeResourceRecordSets",
                        message: format!("InvalidChangeBatch: {} not found as given", c.set.name),
                    });
                }
                (_, Some(i)) => sets[i] = c.set.clone(),
                (_, None) => sets.push(c.set.clone()),
            }
        }
        Ok(ChangeId("C1".into()))
    }
    async fn change_status(&self, _: &ChangeId) -> Result<ChangeStatus, DnsError> {
        Ok(ChangeStatus::InSync)
    }
    async fn record_sets(&self, _: &str, name: &str) -> Result<Option<Vec<RecordSet>>, DnsError> {
        let sets = self.sets.lock().expect("lock");
        Ok(Some(
            sets.iter().filter(|s| s.name == name).cloned().collect(),
        ))
    }
}

/// Records what the use case reports.
#[derive(Default)]
struct Recorder {
    lines: Mutex<Vec<String>>,
}

impl Recorder {
    fn push(&self, line: String) {
        self.lines.lock().expect("lock").push(line);
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("lock").clone()
    }
}

struct CertRecorder<'a>(&'a Recorder);

impl Progress for CertRecorder<'_> {
    fn update(&self, stage: Stage, message: &str) {
        self.0.push(format!("{stage}: {message}"));
    }
    fn done(&self, stage: Stage, message: &str, _: Duration) {
        self.0.push(format!("{stage} done: {message}"));
    }
}

impl crate::deploy::DeployProgress for CertRecorder<'_> {
    fn update(&self, message: &str) {
        self.0.push(format!("deploy: {message}"));
    }
}

impl DeploySink for CertRecorder<'_> {
    fn clear(&self) {}
    fn deployed(&self, outcomes: &[(String, DeployOutcome)]) {
        for (t, o) in outcomes {
            self.0.push(format!("deployed to {t}: {o:?}"));
        }
    }
    fn verified(&self, _: &ProbeReport) {
        self.0.push("verified".into());
    }
}

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

/// A configuration with one certificate deployed as files into `dir/deployed`; the CA
/// and Route 53 are unreachable addresses (the fake CA stands in; Route 53 is never used).
fn settings(dir: &std::path::Path) -> Settings {
    settings_with(dir, "")
}

/// [`settings`] with `tail` appended to the certificate's section (e.g. its verify section).
fn settings_with(dir: &std::path::Path, tail: &str) -> Settings {
    let deployed = dir.join("deployed");
    std::fs::create_dir_all(&deployed).expect("dir");
    let text = format!(
        r#"state_dir = "{state}"

[acme]
directory = "https://127.0.0.1:9/dir"
email = "ops@example.test"
agree_tos = true

[route53]
endpoint_url = "http://127.0.0.1:9"

[[certificate]]
name = "broker"
domains = ["broker.example.test"]
key_type = "ecdsa-p256"

[[certificate.deploy]]
type = "files"
fullchain = "{out}/fullchain.pem"
key = "{out}/privkey.pem"
{tail}
"#,
        state = dir.join("state").display(),
        out = deployed.display(),
    );
    let path = dir.join("brokercert.toml");
    std::fs::write(&path, text).expect("config");
    Settings::load(Some(&path), &Default::default()).expect("settings")
}

/// Stores a certificate for broker.example.test valid from `now - 30 days` to
/// `now + 60 days` (so not due: more than a third of its lifetime is left); its fingerprint.
fn store_certificate(settings: &Settings, now: OffsetDateTime) -> String {
    let root = TestCa::root("Fake Root", ecdsa_p256());
    let intermediate = root.intermediate("Fake Intermediate", ecdsa_p256());
    let key = ecdsa_p256();
    let mut params = leaf_params(&["broker.example.test"]);
    params.not_before = now - time::Duration::days(30);
    params.not_after = now + time::Duration::days(60);
    let leaf = intermediate.sign(&params, &key);
    let files = CertificateFiles {
        cert: leaf.to_pem(),
        chain: intermediate.cert.to_pem(),
        fullchain: format!("{}{}", leaf.to_pem(), intermediate.cert.to_pem()),
        privkey: key.serialize_pem(),
        root: root.cert.to_pem(),
    };
    Store::new(&settings.state_dir)
        .save("broker", "1", &files)
        .expect("store");
    leaf.sha256_fingerprint().to_string()
}

fn now() -> OffsetDateTime {
    // Whole seconds: the state file keeps RFC 3339 times.
    OffsetDateTime::from_unix_timestamp(OffsetDateTime::now_utc().unix_timestamp()).expect("time")
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

fn fake_ca() -> &'static FakeCa {
    Box::leak(Box::default())
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
    let fingerprint = store_certificate(&settings, clock.0);
    let renewal = settings.state_dir.join("renewal");
    state::record_deployed(&renewal, "broker", &fingerprint, clock.0).expect("state");
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

/// Verification after deploying, on the fake probe.
const VERIFY: &str = r#"
[certificate.verify]
transports = ["mqtts"]
settle_timeout = "1s"
"#;

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
    let fingerprint = store_certificate(&settings, clock.0);
    let renewal = settings.state_dir.join("renewal");
    state::record_deployed(&renewal, "broker", &fingerprint, clock.0).expect("state");
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

//! In-process tests of the renewal phases, with a fake CA, a files target in a temporary
//! directory and a fixed clock: each phase transition without a sandbox.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::*;
use crate::acme::{AcmeError, CaOrder, CertificateAuthority, RenewalWindow};
use crate::clock::FixedClock;
use crate::deploy::DeployOutcome;
use crate::names::DomainName;
use crate::pki::test_support::{TestCa, ecdsa_p256, leaf_params};
use crate::progress::{Progress, Stage};
use crate::store::CertificateFiles;
use crate::verify::ProbeReport;

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

[[certificate.deploy]]
type = "files"
fullchain = "{out}/fullchain.pem"
key = "{out}/privkey.pem"
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

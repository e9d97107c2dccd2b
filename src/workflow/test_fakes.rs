//! Fakes for the in-process tests of the use cases: a CA that never issues and one whose
//! authorizations are already valid, an MQTT probe that always passes or always times out, a
//! hosted zone in memory, a recorder of progress, and a configuration with one certificate
//! deployed as files in a temporary directory.
//!
//! Owns: those fakes (test builds only). Does not own the use cases' tests (beside each use
//! case).

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::acme::{AcmeError, CaOrder, CertificateAuthority, RenewalWindow};
use crate::config::Settings;
use crate::deploy::DeployOutcome;
use crate::dns::provider::{ChangeStatus, DnsProvider};
use crate::dns::{
    ChangeAction, ChangeId, DnsError, HostedZone, RecordChange, RecordSet, RecordType,
};
use crate::names::DomainName;
use crate::pki::test_support::{TestCa, ecdsa_p256, leaf_params};
use crate::progress::{Progress, Stage};
use crate::store::{CertificateFiles, Store};
use crate::verify::{
    Endpoint, MqttProbe, ProbeReport, ProbeTarget, RoundTrip, Step, Transport, TransportReport,
    VerifyError,
};
use crate::workflow::deploy::DeploySink;

/// A CA that counts what it is asked and never issues.
#[derive(Default)]
pub(crate) struct FakeCa {
    pub(crate) orders: AtomicUsize,
    pub(crate) ari: AtomicUsize,
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
pub(crate) struct IssuingCa {
    pub(crate) root: TestCa,
    pub(crate) intermediate: TestCa,
    pub(crate) now: OffsetDateTime,
    pub(crate) orders: AtomicUsize,
}

impl IssuingCa {
    pub(crate) fn new(now: OffsetDateTime) -> &'static IssuingCa {
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

pub(crate) struct ReadyOrder {
    pub(crate) ca: &'static IssuingCa,
    pub(crate) url: String,
    pub(crate) status: crate::acme::OrderStatus,
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
pub(crate) struct FakeProbe {
    pub(crate) passes: bool,
    pub(crate) probes: AtomicUsize,
}

impl FakeProbe {
    pub(crate) fn new(passes: bool) -> &'static FakeProbe {
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
pub(crate) struct MemoryZone {
    pub(crate) sets: Mutex<Vec<RecordSet>>,
    pub(crate) changes: AtomicUsize,
}

impl MemoryZone {
    pub(crate) fn with(sets: Vec<RecordSet>) -> &'static MemoryZone {
        Box::leak(Box::new(MemoryZone {
            sets: Mutex::new(sets),
            changes: AtomicUsize::new(0),
        }))
    }

    pub(crate) fn txt_values(&self, name: &str) -> Vec<String> {
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
pub(crate) struct Recorder {
    pub(crate) lines: Mutex<Vec<String>>,
}

impl Recorder {
    pub(crate) fn push(&self, line: String) {
        self.lines.lock().expect("lock").push(line);
    }

    pub(crate) fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("lock").clone()
    }
}

pub(crate) struct CertRecorder<'a>(pub(crate) &'a Recorder);

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

/// A configuration with one certificate deployed as files into `dir/deployed`; the CA
/// and Route 53 are unreachable addresses (the fake CA stands in; Route 53 is never used).
pub(crate) fn settings(dir: &std::path::Path) -> Settings {
    settings_with(dir, "")
}

/// [`settings`] with `tail` appended to the certificate's section (e.g. its verify section).
pub(crate) fn settings_with(dir: &std::path::Path, tail: &str) -> Settings {
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
pub(crate) fn store_certificate(settings: &Settings, now: OffsetDateTime) -> String {
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

pub(crate) fn now() -> OffsetDateTime {
    // Whole seconds: the state file keeps RFC 3339 times.
    OffsetDateTime::from_unix_timestamp(OffsetDateTime::now_utc().unix_timestamp()).expect("time")
}
pub(crate) fn fake_ca() -> &'static FakeCa {
    Box::leak(Box::default())
}
/// Verification after deploying, on the fake probe.
pub(crate) const VERIFY: &str = r#"
[certificate.verify]
transports = ["mqtts"]
settle_timeout = "1s"
"#;

/// DNS lookups that reach no server at all: every question fails at once. The tests that use
/// it must not need DNS answers; it keeps them from asking the machine's resolver.
pub(crate) struct OfflineLookup;

#[async_trait]
impl crate::dns::lookup::DnsLookup for OfflineLookup {
    async fn nameservers(
        &self,
        zone: &str,
    ) -> Result<Vec<crate::dns::lookup::Nameserver>, DnsError> {
        Err(offline(zone, RecordType::Ns))
    }
    async fn query(
        &self,
        _: &crate::dns::lookup::Nameserver,
        name: &str,
        rtype: RecordType,
    ) -> Result<crate::dns::lookup::Answer, DnsError> {
        Err(offline(name, rtype))
    }
}

fn offline(name: &str, rtype: RecordType) -> DnsError {
    DnsError::Lookup {
        name: name.to_string(),
        rtype,
        server: "no server (an offline test)".into(),
        message: "this test makes no DNS query".into(),
        failure: crate::dns::lookup::QueryFailure::Other,
    }
}

/// [`store_certificate`], recorded as deployed at `now` (nothing is due); its fingerprint.
pub(crate) fn store_deployed(settings: &Settings, now: OffsetDateTime) -> String {
    let fingerprint = store_certificate(settings, now);
    let renewal = settings.state_dir.join("renewal");
    crate::renew::state::record_deployed(&renewal, "broker", &fingerprint, now).expect("state");
    fingerprint
}

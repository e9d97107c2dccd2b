//! ACME Renewal Information (RFC 9773) against real Pebble made ARI-capable by the
//! sandbox's `AriProxy`: renewal windows, `replaces` on new orders, and the fallback when
//! the CA refuses `replaces`. Issuance is real DNS-01 through the sandbox (moto + DNS).

use std::path::PathBuf;
use std::time::Duration;

use brokercert::acme::client::{AcmeClient, cert_id_of, replaces_id};
use brokercert::acme::{CertificateAuthority, RenewalWindow};
use brokercert::config::AcmeSettings;
use brokercert::names::DomainName;
use brokercert::pki::bundle::parse_bundle;
use brokercert::pki::keys::{KeyType, PrivateKey};
use brokercert::store::Store;
use brokercert_sandbox::{AriProxy, AriWindow, Sandbox, SandboxOptions, SeenOrder};

const ZONE: &str = "zone1.test";

/// A sandbox, the proxy in front of its Pebble, and a state directory for the account.
struct Env {
    proxy: AriProxy,
    sb: Sandbox,
    work: tempfile::TempDir,
}

impl Env {
    async fn start() -> Self {
        let sb = Sandbox::start(SandboxOptions::new().zone(ZONE))
            .await
            .expect("sandbox starts (run .ci/install first)");
        let proxy = AriProxy::in_front_of(sb.pebble(), sb.dir())
            .await
            .expect("ARI proxy starts");
        let work = tempfile::tempdir().expect("temp dir");
        Self { proxy, sb, work }
    }

    async fn client(&self) -> AcmeClient {
        connect(
            self.proxy.directory_url(),
            self.proxy.tls_ca_path().to_path_buf(),
            &self.work,
        )
        .await
    }

    /// A full DNS-01 issuance of `name`; returns the leaf (DER).
    async fn issue(&self, client: &AcmeClient, name: &str, replaces: Option<&str>) -> Vec<u8> {
        let names = [DomainName::parse(name).expect("name")];
        let mut order = client
            .new_order(&names, replaces)
            .await
            .expect("the CA takes the order");
        assert!(
            order.url().starts_with(&self.proxy.base_url()),
            "Pebble's URLs go through the proxy: {}",
            order.url()
        );
        let zone = self.sb.zone_id(ZONE).expect("zone");
        for ch in order.challenges() {
            let value = format!("\"{}\"", ch.value);
            self.sb
                .upsert(&zone, ch.record_name.as_str(), "TXT", 60, &[&value])
                .await
                .expect("publish TXT");
        }
        order.submit_challenges().await.expect("submit challenges");
        order.await_ready().await.expect("validation");
        let key = PrivateKey::generate(KeyType::EcdsaP256).expect("key");
        let csr = key.csr_der(&[name.to_string()]).expect("CSR");
        let chains = order.finalize(&csr).await.expect("issuance");
        let bundle = parse_bundle(chains.default.as_bytes()).expect("chain parses");
        bundle.certificates[0].der().to_vec()
    }
}

async fn connect(directory: String, root: PathBuf, work: &tempfile::TempDir) -> AcmeClient {
    let settings = AcmeSettings {
        directory,
        email: Some("ops@example.test".into()),
        agree_tos: true,
        https_roots: vec![root],
        eab: None,
        preferred_chain: None,
        order_timeout: Duration::from_secs(60),
        foreign_env_account: Default::default(),
        profile: None,
    };
    AcmeClient::connect(&settings, &Store::new(work.path().join("state")))
        .await
        .expect("account")
}

fn plain(orders: &[SeenOrder]) -> Vec<(Option<String>, bool, u16)> {
    orders
        .iter()
        .map(|o| (o.replaces.clone(), o.rejected, o.status))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_proxy_serves_pebble_under_its_own_address_with_ari() {
    let env = Env::start().await;
    let ca = reqwest::Certificate::from_pem(env.proxy.tls_ca_pem().as_bytes()).expect("CA");
    let http = reqwest::Client::builder()
        .tls_certs_only([ca])
        .no_proxy()
        .build()
        .expect("client");
    let dir: serde_json::Value = http
        .get(env.proxy.directory_url())
        .send()
        .await
        .expect("directory")
        .json()
        .await
        .expect("directory JSON");
    for key in [
        "newNonce",
        "newAccount",
        "newOrder",
        "revokeCert",
        "keyChange",
    ] {
        let url = dir[key].as_str().unwrap_or_default();
        assert!(url.starts_with(&env.proxy.base_url()), "{key}: {url}");
    }
    assert_eq!(dir["renewalInfo"], env.proxy.renewal_info_url().as_str());

    let bad = http
        .get(format!("{}/not-a-cert-id", env.proxy.renewal_info_url()))
        .send()
        .await
        .expect("answer");
    assert_eq!(bad.status(), 400);
    let problem: serde_json::Value = bad.json().await.expect("problem JSON");
    assert_eq!(problem["type"], "urn:ietf:params:acme:error:malformed");
    assert!(env.proxy.renewal_info_requests().is_empty());

    let id = "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE";
    let rsp = http
        .get(format!("{}/{id}", env.proxy.renewal_info_url()))
        .send()
        .await
        .expect("answer");
    assert_eq!(rsp.status(), 200);
    assert_eq!(rsp.headers()["retry-after"], "21600");
    let info: serde_json::Value = rsp.json().await.expect("JSON");
    assert!(info["suggestedWindow"]["start"].is_string(), "{info}");
    assert_eq!(env.proxy.renewal_info_requests(), vec![id]);
}

#[tokio::test(flavor = "multi_thread")]
async fn renewal_info_returns_the_configured_window() {
    let env = Env::start().await;
    let client = env.client().await;
    let leaf = env.issue(&client, "mqtt.zone1.test", None).await;
    let id = replaces_id(&leaf).expect("cert id");

    let window = AriWindow::relative(time::Duration::hours(-1), time::Duration::hours(5))
        .explanation("https://ca.example.test/incident");
    env.proxy.set_window(&id, window.clone());
    env.proxy.set_retry_after(Duration::from_secs(3600));
    let got = client
        .renewal_info(&leaf)
        .await
        .expect("renewal info")
        .expect("the proxy offers ARI");
    assert_eq!(got.start, window.start);
    assert_eq!(got.end, window.end);
    assert_eq!(
        got.explanation_url.as_deref(),
        Some("https://ca.example.test/incident")
    );
    assert!(
        got.retry_after <= Duration::from_secs(3600) && got.retry_after > Duration::from_secs(3590),
        "{:?}",
        got.retry_after
    );

    // Another certificate gets the default window.
    let default = AriWindow::relative(time::Duration::days(20), time::Duration::days(22));
    env.proxy.set_default_window(default.clone());
    let other = env.issue(&client, "other.zone1.test", None).await;
    let RenewalWindow { start, end, .. } = client
        .renewal_info(&other)
        .await
        .expect("renewal info")
        .expect("the proxy offers ARI");
    assert_eq!((start, end), (default.start, default.end));

    let other_id = replaces_id(&other).expect("cert id");
    assert_eq!(env.proxy.renewal_info_requests(), vec![id, other_id]);
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_pebble_has_no_renewal_info_and_orders_ignore_replaces() {
    let sb = Sandbox::start(SandboxOptions::new().zone(ZONE))
        .await
        .expect("sandbox starts (run .ci/install first)");
    let work = tempfile::tempdir().expect("temp dir");
    let client = connect(
        sb.acme_directory_url(),
        sb.pebble_tls_ca_path().to_path_buf(),
        &work,
    )
    .await;
    let leaf = issuer_and_leaf().1;
    assert_eq!(client.renewal_info(&leaf).await.expect("no error"), None);

    // A CA without ARI gets the order without `replaces` instead of an error.
    let replaces = replaces_id(&leaf).expect("cert id");
    let order = client
        .new_order(
            &[DomainName::parse("mqtt.zone1.test").expect("name")],
            Some(&replaces),
        )
        .await
        .expect("order placed without replaces");
    assert_eq!(order.challenges().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_order_replacing_a_certificate_reaches_the_ca_and_issues() {
    let env = Env::start().await;
    let client = env.client().await;
    let first = env.issue(&client, "mqtt.zone1.test", None).await;
    let id = replaces_id(&first).expect("cert id");

    let second = env.issue(&client, "mqtt.zone1.test", Some(&id)).await;
    assert_ne!(second, first);
    assert_eq!(
        plain(&env.proxy.new_orders()),
        vec![(None, false, 201), (Some(id.clone()), false, 201)]
    );
    assert_eq!(
        env.proxy.new_orders()[1].identifiers,
        vec!["mqtt.zone1.test"]
    );
    assert_eq!(env.proxy.replaces_seen(), vec![id]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_replaces_falls_back_to_a_plain_order() {
    let env = Env::start().await;
    let client = env.client().await;
    let first = env.issue(&client, "mqtt.zone1.test", None).await;
    let id = replaces_id(&first).expect("cert id");

    env.proxy.reject_replaces(true);
    let second = env.issue(&client, "mqtt.zone1.test", Some(&id)).await;
    assert_ne!(second, first);
    assert_eq!(
        plain(&env.proxy.new_orders()),
        vec![
            (None, false, 201),
            (Some(id.clone()), true, 409),
            (None, false, 201),
        ]
    );
}

/// An issuer whose key identifier is RFC 9773's example AKI, and a leaf it signed with
/// the example serial (`00:87:65:43:21`): DER of both.
fn issuer_and_leaf() -> (Vec<u8>, Vec<u8>) {
    use rcgen::{
        BasicConstraints, CertificateParams, IsCa, Issuer, KeyIdMethod, KeyPair, SerialNumber,
    };
    let aki = hex::decode("69885B6B87464041E1B37B847BA0AE2CDE01C8D4").expect("hex");
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_identifier_method = KeyIdMethod::PreSpecified(aki);
    let ca_der = ca.self_signed(&ca_key).expect("CA").der().to_vec();
    let issuer = Issuer::new(ca, ca_key);

    let key = KeyPair::generate().expect("leaf key");
    let mut leaf = CertificateParams::new(vec!["mqtt.example.test".to_string()]).expect("params");
    leaf.serial_number = Some(SerialNumber::from_slice(&[0x00, 0x87, 0x65, 0x43, 0x21]));
    leaf.use_authority_key_identifier_extension = true;
    let leaf_der = leaf.signed_by(&key, &issuer).expect("leaf").der().to_vec();
    (ca_der, leaf_der)
}

#[test]
fn cert_id_matches_the_rfc_9773_example() {
    let (_, leaf) = issuer_and_leaf();
    let id = cert_id_of(&leaf).expect("cert id");
    assert_eq!(id.to_string(), "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE");
    assert_eq!(replaces_id(&leaf).expect("cert id"), id.to_string());
}

#[test]
fn cert_id_needs_an_authority_key_identifier() {
    let key = rcgen::KeyPair::generate().expect("key");
    let self_signed = rcgen::CertificateParams::new(vec!["a.example.test".to_string()])
        .expect("params")
        .self_signed(&key)
        .expect("cert");
    let err = cert_id_of(self_signed.der()).expect_err("no AKI");
    assert!(
        err.to_string().contains("Authority Key Identifier"),
        "{err}"
    );
}

//! brokercert against Let's Encrypt and other ACME CAs as they really are (issue 16): the
//! real Gen Y and 2024 CA certificates (tests/fixtures/letsencrypt, see its README), the
//! chains Let's Encrypt documents for them, and `preferred_chain` as certbot and lego
//! choose.
//!
//! No subscriber certificate issued by YR1/YE1 is at hand (and none can be made without
//! their keys), so each documented chain is tested from its intermediate up: the links,
//! the split and the anchor search above the subscriber certificate are what matter here.

use std::path::Path;

use crate::support::cloud::{KEY, SECRET, cloud};
use crate::support::{TestEnv, cert_section};
use brokercert::pki::anchors::{AnchorSource, TrustAnchors};
use brokercert::pki::bundle::parse_bundle;
use brokercert::pki::certificate::Certificate;
use brokercert::pki::chain::{choose_preferred, order_chain, split_chain};
use brokercert::pki::split_bundle;
use brokercert_sandbox::{AriProxy, DeploymentSpec, SandboxOptions};

fn fixture(name: &str) -> Certificate {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/letsencrypt")
        .join(format!("{name}.pem"));
    let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut certs = parse_bundle(&text).expect("PEM").certificates;
    assert_eq!(certs.len(), 1, "{name}");
    certs.remove(0)
}

/// The five chains Let's Encrypt documents for Gen Y (from the intermediate up), with the
/// anchor each ends at.
fn documented_chains() -> Vec<(&'static str, Vec<Certificate>, &'static str)> {
    let yr1 = fixture("gen-y-int-yr1");
    let ye1 = fixture("gen-y-int-ye1");
    vec![
        (
            "RSA default",
            vec![yr1.clone(), fixture("gen-y-root-yr-by-x1")],
            "ISRG Root X1",
        ),
        ("RSA alternate", vec![yr1], "Root YR"),
        (
            "ECDSA default",
            vec![
                ye1.clone(),
                fixture("gen-y-root-ye-by-x2"),
                fixture("gen-y-root-x2-by-x1"),
            ],
            "ISRG Root X1",
        ),
        (
            "ECDSA alternate (X2)",
            vec![ye1.clone(), fixture("gen-y-root-ye-by-x2")],
            "ISRG Root X2",
        ),
        ("ECDSA alternate (Root YE)", vec![ye1], "Root YE"),
    ]
}

fn with_gen_y_roots() -> TrustAnchors {
    let mut anchors = TrustAnchors::bundled();
    anchors.add_extra(fixture("gen-y-root-yr"));
    anchors.add_extra(fixture("gen-y-root-ye"));
    anchors
}

#[test]
fn the_gen_y_roots_are_named_root_yr_and_root_ye_of_isrg() {
    for (name, cn) in [("gen-y-root-yr", "Root YR"), ("gen-y-root-ye", "Root YE")] {
        let root = fixture(name);
        assert!(root.is_self_signed());
        assert_eq!(root.subject_cn().as_deref(), Some(cn));
        assert!(
            !root.display_name().contains("ISRG Root Y"),
            "{}",
            root.display_name()
        );
    }
    // Not in Mozilla's store (yet): the bundled anchors cannot end a chain at them.
    let bundled = TrustAnchors::bundled();
    assert!(bundled.find_issuer_of(&fixture("gen-y-int-yr1")).is_none());
    assert!(bundled.find_issuer_of(&fixture("gen-y-int-ye1")).is_none());
}

#[test]
fn every_documented_gen_y_chain_splits_to_its_anchor() {
    let anchors = with_gen_y_roots();
    for (what, chain, anchor_cn) in documented_chains() {
        let split = split_chain(chain.clone(), &anchors).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(
            split.anchor.subject_cn().as_deref(),
            Some(anchor_cn),
            "{what}"
        );
        let expected_source = if anchor_cn.starts_with("ISRG") {
            AnchorSource::Bundled
        } else {
            AnchorSource::Extra
        };
        assert_eq!(split.anchor_source, expected_source, "{what}");
        assert_eq!(split.intermediates.len(), chain.len() - 1, "{what}");
        // Shuffled, the same chain orders back.
        let mut reversed = chain.clone();
        reversed.reverse();
        assert_eq!(order_chain(reversed).expect(what), chain, "{what}");
    }
    // Without the Gen Y roots, the chains ending at them have no anchor, and say which.
    let bundled = TrustAnchors::bundled();
    for (what, chain, anchor_cn) in documented_chains() {
        let r = split_chain(chain, &bundled);
        if anchor_cn.starts_with("Root Y") {
            let e = r.expect_err(what).to_string();
            assert!(e.contains(anchor_cn), "{what}: {e}");
        } else {
            r.unwrap_or_else(|e| panic!("{what}: {e}"));
        }
    }
}

#[test]
fn split_finds_the_anchor_outside_the_bundle() {
    // `brokercert split` on the ECDSA default chain: 3 CA certificates, none self-signed,
    // the anchor (ISRG Root X1) not in the file.
    let chain = documented_chains().remove(2).1;
    let mut text = String::new();
    for c in chain.iter().rev() {
        text.push_str(&c.to_pem());
    }
    let split = split_bundle(text.as_bytes(), &TrustAnchors::bundled()).expect("splits");
    assert_eq!(split.leaf, chain[0]);
    assert_eq!(split.intermediates, chain[1..].to_vec());
    let (root, source) = split.root.expect("anchor found");
    assert_eq!(root.subject_cn().as_deref(), Some("ISRG Root X1"));
    assert_eq!(source, AnchorSource::Bundled);
}

#[test]
fn preferred_chain_matches_only_the_top_certificates_issuer() {
    let all = documented_chains();
    let rsa: Vec<Vec<Certificate>> = all[..2].iter().map(|c| c.1.clone()).collect();
    let ecdsa: Vec<Vec<Certificate>> = all[2..].iter().map(|c| c.1.clone()).collect();

    assert_eq!(choose_preferred(&rsa, "ISRG Root X1"), 0);
    assert_eq!(choose_preferred(&rsa, "Root YR"), 1);
    assert_eq!(
        choose_preferred(&rsa, "YR1"),
        0,
        "a top's own name never counts"
    );

    assert_eq!(choose_preferred(&ecdsa, "ISRG Root X1"), 0);
    // The default chain's top *is* ISRG Root X2 (cross-signed by X1); certbot and lego
    // pick the chain whose top X2 issued.
    assert_eq!(choose_preferred(&ecdsa, "ISRG Root X2"), 1);
    assert_eq!(choose_preferred(&ecdsa, "Root YE"), 2);
    assert_eq!(choose_preferred(&ecdsa, "Nobody"), 0);
}

#[test]
fn the_2024_generation_links_to_x1_and_x2() {
    let x1 = TrustAnchors::bundled();
    for r in ["r10", "r11", "r12", "r13", "r14"] {
        let split = split_chain(vec![fixture(&format!("2024-{r}"))], &x1).expect(r);
        assert_eq!(
            split.anchor.subject_cn().as_deref(),
            Some("ISRG Root X1"),
            "{r}"
        );
    }
    for e in ["e5", "e6", "e7", "e8", "e9"] {
        let by_x2 = split_chain(vec![fixture(&format!("2024-{e}"))], &x1).expect(e);
        assert_eq!(
            by_x2.anchor.subject_cn().as_deref(),
            Some("ISRG Root X2"),
            "{e}"
        );
        let by_x1 = split_chain(vec![fixture(&format!("2024-{e}-cross"))], &x1).expect(e);
        assert_eq!(
            by_x1.anchor.subject_cn().as_deref(),
            Some("ISRG Root X1"),
            "{e}"
        );
        let chains = vec![
            vec![fixture(&format!("2024-{e}-cross"))],
            vec![fixture(&format!("2024-{e}"))],
        ];
        assert_eq!(choose_preferred(&chains, "ISRG Root X2"), 1, "{e}");
    }
    // Both X2-by-X1 cross-signs link to X1; the first one has expired.
    for name in ["isrg-root-x2-cross-signed", "gen-y-root-x2-by-x1"] {
        let c = fixture(name);
        assert!(c.verify_signed_by(&fixture("isrgrootx1")), "{name}");
        assert_eq!(c.subject_cn().as_deref(), Some("ISRG Root X2"));
    }
    let x2 = fixture("isrg-root-x2");
    assert!(fixture("gen-y-root-ye-by-x2").verify_signed_by(&x2));
}

// ---------------------------------------------------------------- profiles (item 8)

const LE_PROFILES: &[(&str, &str)] = &[
    ("classic", "The same profile you're accustomed to"),
    (
        "shortlived",
        "A short-lived cert profile, without actual enforcement",
    ),
    (
        "tlsserver",
        "https://letsencrypt.org/docs/profiles#tlsserver",
    ),
];

/// A sandbox whose Pebble sits behind the proxy that adds profiles, and a configuration
/// for one certificate ordered through it.
async fn behind_proxy() -> (TestEnv, AriProxy, std::path::PathBuf) {
    let env = TestEnv::start(SandboxOptions::new().zone("example.test")).await;
    let proxy = AriProxy::in_front_of(env.sb.pebble(), env.sb.dir())
        .await
        .expect("proxy starts");
    let cfg = env.config(&cert_section("prof", &["mqtt.example.test"], ""));
    let text = std::fs::read_to_string(&cfg)
        .expect("config")
        .replace(&env.sb.acme_directory_url(), &proxy.directory_url())
        .replace(
            &env.sb.pebble_tls_ca_path().display().to_string(),
            &proxy.tls_ca_path().display().to_string(),
        );
    std::fs::write(&cfg, text).expect("config");
    (env, proxy, cfg)
}

#[tokio::test(flavor = "multi_thread")]
async fn profile_is_ordered_and_an_unknown_one_fails_before_ordering() {
    let (env, proxy, cfg) = behind_proxy().await;
    let cfg = cfg.to_str().unwrap();
    proxy.set_profiles(LE_PROFILES);

    env.run(&["issue", "--profile", "tlsserver", "--config", cfg])
        .await
        .assert_ok();
    let orders = proxy.new_orders();
    assert_eq!(orders.len(), 1, "{orders:?}");
    assert_eq!(orders[0].profile.as_deref(), Some("tlsserver"));

    // From the configuration file too; and without one, no profile is sent.
    let with_key = std::fs::read_to_string(cfg)
        .unwrap()
        .replace("[acme]\n", "[acme]\nprofile = \"shortlived\"\n");
    std::fs::write(cfg, with_key).unwrap();
    env.run(&["issue", "--config", cfg]).await.assert_ok();
    assert_eq!(proxy.new_orders()[1].profile.as_deref(), Some("shortlived"));

    let run = env
        .run(&["issue", "--profile", "tlsclient", "--config", cfg])
        .await;
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains("`acme.profile = \"tlsclient\"`")
            && run.stderr.contains("classic")
            && run.stderr.contains("shortlived")
            && run.stderr.contains("tlsserver")
            && run.stderr.contains("nothing was ordered"),
        "{}",
        run.stderr
    );
    assert_eq!(
        proxy.new_orders().len(),
        2,
        "no order for an unknown profile"
    );

    // A CA that lists no profiles (Pebble 2.4 itself).
    proxy.set_profiles(&[]);
    let run = env
        .run(&["issue", "--profile", "classic", "--config", cfg])
        .await;
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains("lists no certificate profiles"),
        "{}",
        run.stderr
    );
    assert_eq!(proxy.new_orders().len(), 2);
}

/// A certificate without a subject CN (Let's Encrypt's `tlsserver` profile) and its chain:
/// (leaf PEM, chain PEM, key PEM).
fn no_cn_lineage(name: &str) -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut ca = CertificateParams::default();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "No-CN Test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let int_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut int = CertificateParams::default();
    int.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    int.distinguished_name
        .push(DnType::CommonName, "No-CN Test Intermediate");
    let int_cert = int
        .signed_by(&int_key, &Issuer::from_params(&ca, &ca_key))
        .unwrap();
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut leaf = CertificateParams::new(vec![name.to_string()]).unwrap();
    leaf.distinguished_name = rcgen::DistinguishedName::new();
    let now = time::OffsetDateTime::now_utc();
    leaf.not_before = now - time::Duration::hours(1);
    leaf.not_after = now + time::Duration::days(90);
    let leaf = leaf
        .signed_by(&key, &Issuer::from_params(&int, &int_key))
        .unwrap();
    (
        leaf.pem(),
        format!("{}{}", int_cert.pem(), ca_cert.pem()),
        key.serialize_pem(),
    )
}

/// No-CN certificates work in `check`, `status` and the EMQX Cloud identity check.
#[tokio::test(flavor = "multi_thread")]
async fn certificates_without_a_cn_work_everywhere() {
    let c = cloud(DeploymentSpec::dedicated("nocn1", KEY, SECRET)).await;
    let cfg = c.config("nocn1", "", "");
    let cfg = cfg.to_str().unwrap();
    let (leaf, chain, key) = no_cn_lineage("mqtt.example.test");
    let dir = c.env.work.path().join("nocn");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("cert.pem"), &leaf).unwrap();
    std::fs::write(dir.join("chain.pem"), &chain).unwrap();
    let intermediate = &chain[..chain.find("-----END CERTIFICATE-----").unwrap() + 26];
    std::fs::write(dir.join("fullchain.pem"), format!("{leaf}{intermediate}")).unwrap();
    std::fs::write(dir.join("privkey.pem"), &key).unwrap();

    // (`check` names the key format it wants, `PRIVATE KEY`: run it outside the helper
    // that treats that text as a leak.)
    let run = c
        .env
        .run(&[
            "check",
            dir.to_str().unwrap(),
            "--domain",
            "mqtt.example.test",
        ])
        .await;
    run.assert_ok();
    assert!(
        run.stdout.contains("mqtt.example.test (no CN)") && !run.stdout.contains("empty name"),
        "{}",
        run.stdout
    );

    // Deploy it (the test CA is not trusted for the MQTT probe: no verification), then
    // again: the identity check recognises it without a CN.
    let from = dir.to_str().unwrap();
    let deploy_args = [
        "deploy",
        "mqtt-prod",
        "--from",
        from,
        "--no-verify",
        "--config",
        cfg,
    ];
    let deploy = || c.run(&deploy_args);
    deploy().await.assert_ok();
    assert_eq!(c.emu.tls_snapshot("nocn1").expect("stored").cn, None);
    let writes = c.emu.write_count("nocn1");
    let run = deploy().await;
    run.assert_ok();
    assert!(run.stdout.contains("already served"), "{}", run.stdout);
    assert_eq!(c.emu.write_count("nocn1"), writes);

    // `status` with it stored.
    let live = c.env.state_dir().join("live").join("mqtt-prod");
    std::fs::create_dir_all(&live).unwrap();
    for f in ["cert.pem", "chain.pem", "fullchain.pem", "privkey.pem"] {
        std::fs::copy(dir.join(f), live.join(f)).unwrap();
    }
    let run = c.run(&["status", "--config", cfg]).await;
    run.assert_ok();
    assert!(
        run.stdout.contains("names: mqtt.example.test")
            && run.stdout.contains("— the stored certificate"),
        "{}",
        run.stdout
    );
}

// ------------------------------------------- lifetimes and other CAs (items 9 and 10)

/// The Cloud configuration with `[acme] directory` replaced by `directory` (never
/// contacted: the commands below read no CA).
fn with_directory(c: &crate::support::cloud::Cloud, id: &str, directory: &str) -> String {
    let cfg = c.config(id, "", "");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let start = text.find("directory = ").expect("directory line");
    let end = start + text[start..].find('\n').unwrap();
    let text = format!(
        "{}directory = \"{directory}\"{}",
        &text[..start],
        &text[end..]
    );
    std::fs::write(&cfg, text).unwrap();
    cfg.to_str().unwrap().to_string()
}

/// `status`, `plan` and `check` say what Let's Encrypt's lifetimes leave of EMQX Cloud's
/// 60-day import window, with the dates and the way out.
#[tokio::test(flavor = "multi_thread")]
async fn lifetimes_against_the_import_window_are_shown() {
    let c = cloud(DeploymentSpec::dedicated("life1", KEY, SECRET)).await;
    let cfg = with_directory(&c, "life1", "letsencrypt");
    let expect = |text: &str| {
        assert!(
            text.contains("EMQX Cloud deployment life1: a fresh certificate from Let's Encrypt")
                || text.contains("profile emqx-cloud: a fresh certificate from Let's Encrypt"),
            "{text}"
        );
        assert!(
            text.contains("2028-02-16") || text.contains("No certificate from this CA"),
            "{text}"
        );
        assert!(text.contains("zerossl"), "the way out: {text}");
    };
    let run = c.run(&["status", "--offline", "--config", &cfg]).await;
    run.assert_ok();
    expect(&run.stdout);
    assert!(run.stdout.contains("import window:"), "{}", run.stdout);

    let run = c.run(&["plan", "--config", &cfg]).await;
    run.assert_ok();
    expect(&run.stdout);

    let (leaf, chain, key) = no_cn_lineage("mqtt.example.test");
    let dir = c.env.work.path().join("files");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("cert.pem"), &leaf).unwrap();
    std::fs::write(dir.join("chain.pem"), &chain).unwrap();
    std::fs::write(dir.join("privkey.pem"), &key).unwrap();
    let run = c
        .env
        .run(&[
            "check",
            dir.to_str().unwrap(),
            "--name",
            "mqtt-prod",
            "--config",
            &cfg,
        ])
        .await;
    expect(&run.stdout);

    // A CA whose lifetimes are not known (Pebble): nothing is claimed.
    let cfg = c.config("life1", "", "");
    let run = c
        .run(&["status", "--offline", "--config", cfg.to_str().unwrap()])
        .await;
    assert!(!run.stdout.contains("import window:"), "{}", run.stdout);
}

/// `zerossl` and `google` need an EAB key id: without one, the configuration is refused
/// before any request, saying where to get one.
#[tokio::test(flavor = "multi_thread")]
async fn eab_cas_without_a_key_id_fail_before_any_request() {
    let c = cloud(DeploymentSpec::dedicated("eab1", KEY, SECRET)).await;
    for (shortcut, place) in [
        ("zerossl", "app.zerossl.com/developer"),
        ("google", "gcloud publicca external-account-keys create"),
        ("google-staging", "staging"),
    ] {
        let cfg = with_directory(&c, "eab1", shortcut);
        for args in [
            vec!["issue", "--config", &cfg],
            vec!["status", "--offline", "--config", &cfg],
        ] {
            let run = c.run(&args).await;
            run.assert_code(brokercert::error::exit::CONFIG);
            assert!(
                run.stderr.contains("acme.eab_kid")
                    && run.stderr.contains(place)
                    && run.stderr.contains("Nothing was sent to the CA"),
                "{shortcut}: {}",
                run.stderr
            );
        }
    }
    assert!(c.emu.requests().is_empty());
}

// ------------------------------------------------------------ rate limits (item 11)

/// A `rateLimited` answer's `Retry-After` is shown by `issue` (until when to wait), stored,
/// and `renew` does not ask the CA again before then.
#[tokio::test(flavor = "multi_thread")]
async fn rate_limit_retry_after_is_shown_stored_and_honoured() {
    let (env, proxy, cfg) = behind_proxy().await;
    let cfg = cfg.to_str().unwrap();
    proxy.rate_limit_next_orders(1, 7200);
    let run = env.run(&["issue", "--config", cfg]).await;
    run.assert_code(brokercert::error::exit::ACME);
    assert!(
        run.stderr.contains("The CA asks to wait until 20")
            && run.stderr.contains("do not retry before then"),
        "{}",
        run.stderr
    );
    let state = std::fs::read_to_string(env.state_dir().join("renewal").join("prof.json"))
        .expect("renewal state stored");
    assert!(state.contains("retry_not_before"), "{state}");

    let run = env.run(&["renew", "--no-jitter", "--config", cfg]).await;
    assert_eq!(
        proxy.new_orders().len(),
        1,
        "no new order before Retry-After"
    );
    assert!(
        run.stdout
            .contains("the CA asked not to be asked again before then")
            && run.stdout.contains("next attempt from"),
        "{}\n{}",
        run.stdout,
        run.stderr
    );

    // `renew` itself, rate limited: it stores the CA's wait, and its next attempt time is it.
    std::fs::remove_file(env.state_dir().join("renewal").join("prof.json")).unwrap();
    proxy.rate_limit_next_orders(1, 7200);
    let run = env.run(&["renew", "--no-jitter", "--config", cfg]).await;
    assert_ne!(run.code, 0);
    let state = std::fs::read_to_string(env.state_dir().join("renewal").join("prof.json"))
        .expect("renewal state stored");
    assert!(state.contains("retry_not_before"), "{state}");
    let orders = proxy.new_orders().len();
    env.run(&["renew", "--no-jitter", "--config", cfg]).await;
    assert_eq!(
        proxy.new_orders().len(),
        orders,
        "the backoff is the CA's 2 hours"
    );
}

//! brokercert against Let's Encrypt and other ACME CAs as they really are (issue 16): the
//! real Gen Y and 2024 CA certificates (tests/fixtures/letsencrypt, see its README), the
//! chains Let's Encrypt documents for them, and `preferred_chain` as certbot and lego
//! choose.
//!
//! No subscriber certificate issued by YR1/YE1 is at hand (and none can be made without
//! their keys), so each documented chain is tested from its intermediate up: the links,
//! the split and the anchor search above the subscriber certificate are what matter here.

use std::path::Path;

use brokercert::pki::anchors::{AnchorSource, TrustAnchors};
use brokercert::pki::bundle::parse_bundle;
use brokercert::pki::certificate::Certificate;
use brokercert::pki::chain::{choose_preferred, order_chain, split_chain};
use brokercert::pki::split_bundle;

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

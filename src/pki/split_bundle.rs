//! Splitting a PEM bundle as people have it (a purchased certificate, a
//! `fullchain.pem`, a paste) into the three parts EMQX Cloud's form asks for:
//! certificate body (the leaf), certificate chain (the intermediates) and the
//! root clients trust — repairing what can be repaired (order, a repeated
//! certificate, BOM/CRLF/text between blocks) and saying what was done.
//!
//! Owns: the policy of what is repaired and what is refused, and the wording
//! of both, with blocks numbered as in the file. Does not own: PEM framing
//! (see `bundle`), issuer links (see `chain`), where roots come from (see
//! `anchors`), or files (the caller reads and writes them).

use std::collections::HashMap;

use super::anchors::{AnchorSource, TrustAnchors};
use super::bundle::{BundleError, parse_bundle};
use super::certificate::Certificate;
use super::chain::{LeafPick, issuer_walk, leaf_candidates};

/// A bundle split into leaf, intermediates and (if found) root.
#[derive(Debug, Clone)]
pub struct SplitBundle {
    /// The end-entity certificate (EMQX Cloud's "certificate body").
    pub leaf: Certificate,
    /// CA certificates between leaf and root, leaf side first (no leaf, no
    /// self-signed root; may be empty).
    pub intermediates: Vec<Certificate>,
    /// The trust anchor and where it was found; `None` when no root could be
    /// found (not an error: the leaf and intermediates are still usable).
    pub root: Option<(Certificate, AnchorSource)>,
    /// The leaf is self-signed and therefore its own root.
    pub leaf_is_self_signed: bool,
    /// What was done or found, one line each, in the order it happened.
    pub actions: Vec<String>,
    /// How many certificate blocks the bundle held (duplicates included).
    pub blocks_read: usize,
}

impl SplitBundle {
    /// `cert.pem`: the leaf alone.
    pub fn cert_pem(&self) -> String {
        self.leaf.to_pem()
    }

    /// `chain.pem`: the intermediates in order (empty when there are none).
    pub fn chain_pem(&self) -> String {
        self.intermediates.iter().map(Certificate::to_pem).collect()
    }

    /// `root.pem`: the trust anchor, if one was found.
    pub fn root_pem(&self) -> Option<String> {
        self.root.as_ref().map(|(c, _)| c.to_pem())
    }
}

/// Why a bundle cannot be split. Every message says what was found, what was
/// expected and how to fix it; blocks are numbered as in the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    /// The PEM text itself is unusable.
    #[error("{error}{fix}", fix = bundle_fix(.error))]
    Bundle {
        /// What the PEM parser found.
        error: BundleError,
    },
    /// PEM blocks, but no certificate among them.
    #[error(
        "found {found} but no certificate; expected at least the server certificate in a -----BEGIN CERTIFICATE----- block. {fix}"
    )]
    NoCertificate {
        /// What was found instead, e.g. `1 private-key block (not shown)`.
        found: String,
        /// What to do.
        fix: String,
    },
    /// More than one certificate could be the leaf.
    #[error(
        "the certificates don't form one chain: {leaves} are each a server (end-entity) certificate; expected exactly one server certificate followed by its CA certificates. Put each server certificate in its own bundle and split them one at a time"
    )]
    SeveralLeaves {
        /// `block 1 (CN=a) and block 3 (CN=b)`.
        leaves: String,
    },
    /// Every certificate issued another one.
    #[error(
        "the certificates don't form one chain: none of the {count} certificates can be the server certificate, because each one issued another certificate in the file; expected the server certificate followed by its CA certificates. Add the server certificate to the bundle"
    )]
    NoLeaf {
        /// How many certificates.
        count: usize,
    },
    /// The chain from the leaf stops before using every certificate.
    #[error(
        "the certificates don't form one chain: {gap}, so {leftover} {verb} not connect to the server certificate (block {leaf_block}, {leaf_name}); expected the server certificate followed by each certificate's issuer in turn. {fix}"
    )]
    Gap {
        /// Where the chain stops and why.
        gap: String,
        /// The blocks left over, e.g. `block 3 (CN=Root)`.
        leftover: String,
        /// `does` or `do`.
        verb: &'static str,
        /// The leaf's block number.
        leaf_block: usize,
        /// The leaf's name.
        leaf_name: String,
        /// What to do.
        fix: String,
    },
}

fn bundle_fix(e: &BundleError) -> &'static str {
    match e {
        BundleError::Empty => {
            ". Pass the certificate file your CA or ACME client wrote (e.g. fullchain.pem), or paste the certificates into the file again"
        }
        BundleError::TooLarge { .. } => {
            ". Check the path: pass the PEM certificate bundle (e.g. fullchain.pem), not a log, an archive or another large file"
        }
        BundleError::NoPemBlock { .. } => {
            ". Check that this is the certificate file: a .pfx/.p12 converts with `openssl pkcs12 -in F -nokeys -out F.pem`; a web page or e-mail needs the certificate text copied out of it"
        }
        BundleError::UnmatchedEnd { .. } | BundleError::MismatchedLabels { .. } => {
            ". Copy the bundle again from where it came from"
        }
        // These already end with what to do.
        BundleError::LooksLikeDer { .. }
        | BundleError::UnterminatedBlock { .. }
        | BundleError::InvalidBase64 { .. }
        | BundleError::InvalidCertificate { .. } => "",
    }
}

impl From<BundleError> for SplitError {
    fn from(error: BundleError) -> SplitError {
        SplitError::Bundle { error }
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// `leaf`, `intermediate`…, and `root` last when the chain ends in one.
fn role_names(len: usize, ends_in_root: bool) -> Vec<&'static str> {
    (0..len)
        .map(|i| match i {
            0 => "leaf",
            i if ends_in_root && i + 1 == len => "root",
            _ => "intermediate",
        })
        .collect()
}

fn source_words(source: AnchorSource) -> &'static str {
    match source {
        AnchorSource::InBundle => "the bundle",
        AnchorSource::Bundled => "brokercert's built-in Mozilla roots",
        AnchorSource::System => "the system trust store",
        AnchorSource::Extra => "the extra trust roots given with --trust-root",
    }
}

/// Splits the PEM `text` into leaf, intermediates and root.
///
/// Repairs, each reported in [`SplitBundle::actions`]: BOM, CRLF, trailing
/// whitespace, text between blocks (see [`parse_bundle`]); certificates out
/// of order (ordered by issuer name and verified signature); exact repeats
/// (the first is kept). Private-key blocks are ignored and reported without
/// their contents. The root is the self-signed last certificate of the chain,
/// else the root among `anchors` that signed the topmost certificate; when
/// none exists the split still succeeds, without a root, and says so.
///
/// Fails, writing nothing anywhere, when the PEM is unusable, holds no
/// certificate, or the certificates are not exactly one chain.
pub fn split_bundle(text: &[u8], anchors: &TrustAnchors) -> Result<SplitBundle, SplitError> {
    let bundle = parse_bundle(text)?;
    let mut actions = bundle.notes.clone();
    for key in &bundle.private_keys {
        let what = if key.format.is_encrypted() {
            "an encrypted private key"
        } else {
            "a private key"
        };
        actions.push(format!(
            "ignored block {} ({what}, {}): split writes certificates only and never copies or prints keys; keep the key in its own file (mode 0600)",
            key.block, key.format
        ));
    }
    if bundle.certificates.is_empty() {
        let skipped = bundle
            .notes
            .iter()
            .filter(|n| n.starts_with("skipped block"))
            .count();
        let mut found = Vec::new();
        if !bundle.private_keys.is_empty() {
            found.push(format!(
                "{} (not shown)",
                plural(
                    bundle.private_keys.len(),
                    "private-key block",
                    "private-key blocks"
                )
            ));
        }
        if skipped > 0 {
            found.push(plural(
                skipped,
                "other PEM block (not a certificate)",
                "other PEM blocks (not certificates)",
            ));
        }
        let fix = if bundle.private_keys.is_empty() {
            "Pass the file that holds the certificates (e.g. fullchain.pem)"
        } else {
            "This looks like a key file: pass the file that holds the certificates (e.g. fullchain.pem) instead"
        };
        return Err(SplitError::NoCertificate {
            found: list(&found),
            fix: fix.to_string(),
        });
    }

    // Exact repeats: keep the first, remember the rest to report with their role.
    let blocks_read = bundle.certificates.len();
    let mut first_block: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut certs: Vec<Certificate> = Vec::new();
    let mut blocks: Vec<usize> = Vec::new();
    let mut repeats: Vec<(usize, usize, Certificate)> = Vec::new();
    for (cert, block) in bundle
        .certificates
        .into_iter()
        .zip(bundle.certificate_blocks)
    {
        if let Some(first) = first_block.get(cert.der()) {
            repeats.push((block, *first, cert));
        } else {
            first_block.insert(cert.der().to_vec(), block);
            certs.push(cert);
            blocks.push(block);
        }
    }
    let name_of = |i: usize| format!("block {} ({})", blocks[i], certs[i].display_name());

    let leaf = match leaf_candidates(&certs) {
        LeafPick::One(i) => i,
        LeafPick::None => return Err(SplitError::NoLeaf { count: certs.len() }),
        LeafPick::Several(several) => {
            let names: Vec<String> = several.iter().map(|i| name_of(*i)).collect();
            return Err(SplitError::SeveralLeaves {
                leaves: list(&names),
            });
        }
    };
    let ordered = issuer_walk(&certs, leaf);
    let leftover: Vec<usize> = (0..certs.len()).filter(|i| !ordered.contains(i)).collect();
    if !leftover.is_empty() {
        return Err(gap_error(&certs, &ordered, &leftover, &name_of, &|i| {
            blocks[i]
        }));
    }

    let top = ordered[ordered.len() - 1];
    let ends_in_root = certs[top].is_self_signed();
    if ordered.iter().copied().ne(0..certs.len()) {
        let numbers: Vec<String> = ordered.iter().map(|i| blocks[*i].to_string()).collect();
        actions.push(format!(
            "reordered blocks {} → {}",
            numbers.join(","),
            role_names(ordered.len(), ends_in_root).join(", ")
        ));
    }
    for (block, first, cert) in &repeats {
        let role = match ordered.iter().position(|i| certs[*i] == *cert) {
            Some(0) => "leaf",
            Some(p) if ends_in_root && p + 1 == ordered.len() => "root",
            _ => "intermediate",
        };
        actions.push(format!(
            "removed a repeated {role} (block {block}, the same certificate as block {first}: {})",
            cert.display_name()
        ));
    }
    // A lone self-signed CA:TRUE certificate is a common self-made server certificate.
    if certs[leaf].is_ca() && !(ordered.len() == 1 && ends_in_root) {
        actions.push(format!(
            "warning: the leaf, {}, is a CA certificate: this bundle may hold only CA certificates (a chain file?); EMQX Cloud's certificate body must be the server certificate",
            name_of(leaf)
        ));
    }

    let mut chain: Vec<Certificate> = ordered.iter().map(|i| certs[*i].clone()).collect();
    let leaf_cert = chain.remove(0);
    let (root, leaf_is_self_signed) = if ordered.len() == 1 && ends_in_root {
        actions.push(format!(
            "the leaf, {}, is self-signed: root.pem is the leaf itself and chain.pem is empty; no CA vouches for it, so clients must trust this certificate directly (use root.pem as their CA file)",
            name_of(leaf)
        ));
        (Some((leaf_cert.clone(), AnchorSource::InBundle)), true)
    } else if ends_in_root {
        let root = chain
            .pop()
            .expect("a chain of two or more ends in its root");
        actions.push(format!(
            "root.pem: {}, the self-signed root at the end of the chain",
            name_of(top)
        ));
        (Some((root, AnchorSource::InBundle)), false)
    } else {
        let last = &certs[top];
        match anchors.find_issuer_of(last) {
            Some((root, source)) => {
                actions.push(format!(
                    "root.pem: {}, from {}; the bundle does not include its root",
                    root.display_name(),
                    source_words(source)
                ));
                (Some((root, source)), false)
            }
            None => {
                let issuer = last.issuer_display_name();
                let named = anchors.count_named_issuer_of(last);
                let searched = format!(
                    "{} bundled, {} system and {} extra roots",
                    anchors.count(AnchorSource::Bundled),
                    anchors.count(AnchorSource::System),
                    anchors.count(AnchorSource::Extra)
                );
                let why = if named > 0 {
                    format!(
                        "{} named {issuer} exist among the {searched}, but none has the key that signed {} (was the root re-created?)",
                        plural(named, "root", "roots"),
                        name_of(top)
                    )
                } else {
                    format!(
                        "{} is issued by {issuer}, which is neither in the bundle nor among the {searched}",
                        name_of(top)
                    )
                };
                actions.push(format!(
                    "no root.pem: {why}. The certificate body and chain are complete without it; MQTT clients need that root as their CA file: get it from the CA and add it with --trust-root FILE (if {issuer} is an intermediate rather than a root, the bundle is missing it too)"
                ));
                (None, false)
            }
        }
    };
    Ok(SplitBundle {
        leaf: leaf_cert,
        intermediates: chain,
        root,
        leaf_is_self_signed,
        actions,
        blocks_read,
    })
}

fn gap_error(
    certs: &[Certificate],
    ordered: &[usize],
    leftover: &[usize],
    name_of: &dyn Fn(usize) -> String,
    blocks_of: &dyn Fn(usize) -> usize,
) -> SplitError {
    let leaf_block = blocks_of(ordered[0]);
    let top = ordered[ordered.len() - 1];
    let issuer = certs[top].issuer_display_name();
    let same_name: Vec<usize> = leftover
        .iter()
        .copied()
        .filter(|i| certs[top].issued_by_name(&certs[*i]))
        .collect();
    let (gap, fix) = if certs[top].is_self_signed() {
        (
            format!("the chain is complete at its root, {}", name_of(top)),
            "Remove the certificates that don't belong to this server certificate, or split them into their own bundle".to_string(),
        )
    } else if let Some(impostor) = same_name.first() {
        (
            format!(
                "{} is issued by {issuer}, and {} has that name but not the key that signed it (a different or re-issued CA)",
                name_of(top),
                name_of(*impostor)
            ),
            format!(
                "Replace {} with the {issuer} certificate that issued {} (your CA's download page has it)",
                name_of(*impostor),
                name_of(top)
            ),
        )
    } else {
        (
            format!(
                "{} is issued by {issuer}, which is missing from the file",
                name_of(top)
            ),
            format!(
                "Add the missing certificate {issuer} right after block {} — your CA's download page has it (EMQX's guide points to https://myssl.com/chain_download.html for chain completion) — or remove the certificates that don't belong",
                blocks_of(top)
            ),
        )
    };
    let names: Vec<String> = leftover.iter().map(|i| name_of(*i)).collect();
    SplitError::Gap {
        gap,
        leftover: list(&names),
        verb: if leftover.len() == 1 { "does" } else { "do" },
        leaf_block,
        leaf_name: certs[ordered[0]].display_name(),
        fix,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::test_support::*;

    fn anchors_with(root: &TestCa) -> TrustAnchors {
        let mut a = TrustAnchors::bundled();
        a.add_extra(root.cert.clone());
        a
    }

    #[test]
    fn reorders_and_says_so() {
        let (root, chain) = ecdsa_chain(1);
        // root, leaf, intermediate → leaf, intermediate, root.
        let text = pem_of(&[root.cert.clone(), chain[0].clone(), chain[1].clone()]);
        let split = split_bundle(text.as_bytes(), &TrustAnchors::empty()).unwrap();
        assert_eq!(split.leaf, chain[0]);
        assert_eq!(split.intermediates, [chain[1].clone()]);
        assert_eq!(
            split.root,
            Some((root.cert.clone(), AnchorSource::InBundle))
        );
        assert_eq!(
            split.actions[0],
            "reordered blocks 2,3,1 → leaf, intermediate, root"
        );
        assert!(split.actions[1].starts_with("root.pem: block 1 (CN=Test Root X9)"));
        assert_eq!(split.cert_pem(), chain[0].to_pem());
        assert_eq!(split.chain_pem(), chain[1].to_pem());
        assert_eq!(split.root_pem().unwrap(), root.cert.to_pem());
    }

    #[test]
    fn in_order_input_reports_no_reordering() {
        let (root, chain) = ecdsa_chain(2);
        let text = pem_of(&chain);
        let split = split_bundle(text.as_bytes(), &anchors_with(&root)).unwrap();
        assert_eq!(split.intermediates, chain[1..]);
        assert_eq!(split.root, Some((root.cert.clone(), AnchorSource::Extra)));
        assert_eq!(split.actions.len(), 1, "{:?}", split.actions);
        assert!(split.actions[0].contains("from the extra trust roots"));
    }

    #[test]
    fn a_repeated_leaf_is_dropped_with_its_block_number() {
        let (root, chain) = ecdsa_chain(1);
        let text = pem_of(&[
            chain[0].clone(),
            chain[1].clone(),
            root.cert.clone(),
            chain[0].clone(),
        ]);
        let split = split_bundle(text.as_bytes(), &TrustAnchors::empty()).unwrap();
        assert_eq!(split.blocks_read, 4);
        assert_eq!(split.leaf, chain[0]);
        assert!(
            split.actions.iter().any(|a| a
                == "removed a repeated leaf (block 4, the same certificate as block 1: CN=broker.example.test)"),
            "{:?}",
            split.actions
        );
    }

    #[test]
    fn key_blocks_are_reported_never_shown() {
        let (root, chain) = ecdsa_chain(0);
        let key = ecdsa_p256();
        let text = format!(
            "{}{}{}",
            chain[0].to_pem(),
            key.serialize_pem(),
            root.cert.to_pem()
        );
        let split = split_bundle(text.as_bytes(), &TrustAnchors::empty()).unwrap();
        let all = split.actions.join("\n");
        assert!(
            all.contains("ignored block 2 (a private key, PKCS#8)"),
            "{all}"
        );
        let body: String = key.serialize_pem().lines().nth(1).unwrap().to_string();
        assert!(!all.contains(&body));
        assert!(!split.cert_pem().contains("PRIVATE"));

        let err = split_bundle(key.serialize_pem().as_bytes(), &TrustAnchors::empty())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("found 1 private-key block (not shown) but no certificate"),
            "{err}"
        );
        assert!(err.contains("key file"), "{err}");
    }

    #[test]
    fn a_missing_intermediate_is_named() {
        let (root, chain) = ecdsa_chain(2);
        let text = pem_of(&[chain[0].clone(), chain[1].clone(), root.cert.clone()]);
        let err = split_bundle(text.as_bytes(), &TrustAnchors::empty()).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, SplitError::Gap { leaf_block: 1, .. }),
            "{msg}"
        );
        assert!(
            msg.contains("block 2 (CN=Test Intermediate 2) is issued by CN=Test Intermediate 1, which is missing from the file, so block 3 (CN=Test Root X9) does not connect"),
            "{msg}"
        );
        assert!(
            msg.contains("Add the missing certificate CN=Test Intermediate 1"),
            "{msg}"
        );
    }

    #[test]
    fn same_name_other_key_and_unrelated_blocks_are_refused() {
        let (root, chain) = ecdsa_chain(1);
        let impostor = root.intermediate("Test Intermediate 1", ecdsa_p256());
        let text = pem_of(&[chain[0].clone(), impostor.cert.clone()]);
        let msg = split_bundle(text.as_bytes(), &TrustAnchors::empty())
            .unwrap_err()
            .to_string();
        assert!(msg.contains("has that name but not the key"), "{msg}");

        let (other_root, _) = ecdsa_chain(0);
        let text = pem_of(&[
            chain[0].clone(),
            chain[1].clone(),
            root.cert.clone(),
            other_root.cert.clone(),
        ]);
        let err = split_bundle(text.as_bytes(), &TrustAnchors::empty()).unwrap_err();
        // Two self-signed roots with the same name: the second does not link.
        assert!(matches!(err, SplitError::Gap { .. }), "{err}");
    }

    #[test]
    fn two_servers_are_two_leaves() {
        let (_, a) = ecdsa_chain(0);
        let (_, b) = ecdsa_chain(0);
        let text = pem_of(&[a[0].clone(), b[0].clone()]);
        let msg = split_bundle(text.as_bytes(), &TrustAnchors::empty())
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("block 1 (CN=broker.example.test) and block 2 (CN=broker.example.test) are each a server"),
            "{msg}"
        );
    }

    #[test]
    fn no_root_anywhere_is_not_fatal() {
        let (_, chain) = ecdsa_chain(1);
        let split = split_bundle(pem_of(&chain).as_bytes(), &TrustAnchors::bundled()).unwrap();
        assert!(split.root.is_none());
        assert!(split.root_pem().is_none());
        let last = split.actions.last().unwrap();
        assert!(last.starts_with("no root.pem: block 2 (CN=Test Intermediate 1) is issued by CN=Test Root X9, which is neither in the bundle nor among the"), "{last}");
        let regenerated = TestCa::root("Test Root X9", ecdsa_p256());
        let split = split_bundle(pem_of(&chain).as_bytes(), &anchors_with(&regenerated)).unwrap();
        assert!(
            split
                .actions
                .last()
                .unwrap()
                .contains("1 root named CN=Test Root X9 exist")
        );
    }

    #[test]
    fn self_signed_leaf_is_its_own_root() {
        let leaf = self_signed_leaf("broker.example.test", &ecdsa_p256());
        let split = split_bundle(leaf.to_pem().as_bytes(), &TrustAnchors::empty()).unwrap();
        assert!(split.leaf_is_self_signed);
        assert_eq!(split.root_pem().unwrap(), leaf.to_pem());
        assert_eq!(split.chain_pem(), "");
        assert!(split.actions[0].contains("clients must trust this certificate directly"));
    }

    #[test]
    fn bundle_errors_carry_a_fix() {
        let msg = split_bundle(b"", &TrustAnchors::empty())
            .unwrap_err()
            .to_string();
        assert!(msg.starts_with("the input is empty"), "{msg}");
        assert!(msg.contains("fullchain.pem"), "{msg}");
        let msg = split_bundle(b"just words", &TrustAnchors::empty())
            .unwrap_err()
            .to_string();
        assert!(msg.contains("pkcs12"), "{msg}");
    }
}

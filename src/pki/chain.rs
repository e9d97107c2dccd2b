//! Certificate chains: putting blocks in order ([`order_chain`]), splitting an
//! ordered chain the way the EMQX Cloud guide asks — certificate body (leaf),
//! intermediates, root — while verifying every signature up to a trust anchor
//! ([`split_chain`]), reporting each certificate's validity window, and picking
//! among alternate ACME chains ([`choose_preferred`]).
//!
//! Owns: link checks (issuer name + signature), anchor selection, the
//! self-signed-leaf case, clear errors naming the failing link.
//! Does not own: where roots come from (see `anchors`), PEM text (see `bundle`),
//! or how much validity must remain (a caller's policy; this module only
//! reports windows and rejects certificates outside theirs in
//! [`verify_validity`]).
//!
//! Certificates are numbered from 1 in every message, in the order given.

use std::collections::HashMap;

use time::{Duration, OffsetDateTime};

use super::anchors::{AnchorSource, TrustAnchors};
use super::certificate::Certificate;

/// Why a set of certificates is not a usable chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// No certificates.
    #[error("the chain is empty; expected at least the leaf certificate")]
    Empty,
    /// The same certificate twice.
    #[error(
        "certificate {again} ({name}) repeats certificate {first}; each certificate may appear only once (a repeated leaf is a common copy-paste mistake)"
    )]
    Duplicate {
        /// First position.
        first: usize,
        /// Repeated position.
        again: usize,
        /// Its name.
        name: String,
    },
    /// Every certificate is a CA or issues another one.
    #[error(
        "none of the {count} certificates is a leaf (each is a CA or issued another certificate in the set); expected exactly one end-entity certificate"
    )]
    NoLeaf {
        /// How many certificates.
        count: usize,
    },
    /// More than one candidate leaf.
    #[error(
        "found {count} possible leaf certificates ({names}); expected exactly one end-entity certificate per chain"
    )]
    SeveralLeaves {
        /// How many.
        count: usize,
        /// Their names with positions.
        names: String,
    },
    /// A certificate that is not an issuer of any certificate in the chain.
    #[error(
        "certificate {index} ({name}, issued by {issuer}) does not link to the chain built from leaf {leaf}; expected every certificate to be the issuer of another one"
    )]
    Unlinked {
        /// Position of the stray certificate.
        index: usize,
        /// Its name.
        name: String,
        /// Its issuer.
        issuer: String,
        /// The leaf's name.
        leaf: String,
    },
    /// Certificate N+1 is not named as N's issuer.
    #[error(
        "certificate {child} ({child_name}) is issued by {expected_issuer} but certificate {parent} is {parent_name}; expected each certificate to be followed by its issuer (leaf first){hint}"
    )]
    NotIssuer {
        /// Position of the child.
        child: usize,
        /// The child's name.
        child_name: String,
        /// The child's issuer name.
        expected_issuer: String,
        /// Position of the next certificate.
        parent: usize,
        /// Its name.
        parent_name: String,
        /// Extra advice (e.g. that the order looks wrong).
        hint: String,
    },
    /// The names link but the signature doesn't verify.
    #[error(
        "certificate {child} ({child_name}) is not signed by certificate {parent} ({parent_name}): the names match but the signature does not verify with certificate {parent}'s public key; the intermediate does not belong to this certificate"
    )]
    BadSignature {
        /// Position of the child.
        child: usize,
        /// Its name.
        child_name: String,
        /// Position of the would-be issuer.
        parent: usize,
        /// Its name.
        parent_name: String,
    },
    /// No root with the right name (and key) among the anchors.
    #[error(
        "no trust anchor named {issuer} (the issuer of certificate {index}, {name}) found among {bundled} bundled, {system} system and {extra} extra roots: add that root certificate to the extra roots (PEM), or append it to the bundle"
    )]
    NoTrustAnchor {
        /// The missing root's name.
        issuer: String,
        /// Position of the topmost certificate.
        index: usize,
        /// Its name.
        name: String,
        /// Bundled roots searched.
        bundled: usize,
        /// System roots searched.
        system: usize,
        /// Extra roots searched.
        extra: usize,
    },
    /// A root with the right name exists but its key doesn't verify.
    #[error(
        "{count} trust anchor(s) named {issuer} exist but none has the key that signed certificate {index} ({name}); the root was probably re-created (Pebble makes new roots at every start): fetch the current root and add it to the extra roots"
    )]
    AnchorKeyMismatch {
        /// The root's name.
        issuer: String,
        /// How many roots carry that name.
        count: usize,
        /// Position of the topmost certificate.
        index: usize,
        /// Its name.
        name: String,
    },
    /// A certificate outside its validity window.
    #[error("certificate {index} ({name}, {role}) {problem}")]
    OutsideValidity {
        /// 1-based position (the anchor is last).
        index: usize,
        /// Its name.
        name: String,
        /// Leaf, intermediate or trust anchor.
        role: ChainRole,
        /// "expired at …; it is now …" or "is not valid before …".
        problem: String,
    },
}

/// A chain split for installation: certificate body, intermediates and root.
#[derive(Debug, Clone)]
pub struct SplitChain {
    /// The end-entity certificate ("certificate body").
    pub leaf: Certificate,
    /// CA certificates between leaf and anchor, leaf side first (may be empty).
    pub intermediates: Vec<Certificate>,
    /// The trust anchor the chain ends at (the leaf itself when self-signed).
    pub anchor: Certificate,
    /// Where the anchor was found.
    pub anchor_source: AnchorSource,
    /// The leaf is its own anchor: clients must trust this very certificate.
    pub leaf_is_self_signed: bool,
}

impl SplitChain {
    /// Leaf followed by the intermediates: what servers send (EMQX's `cert`).
    pub fn certificate_body_pem(&self) -> String {
        std::iter::once(&self.leaf)
            .chain(&self.intermediates)
            .map(Certificate::to_pem)
            .collect()
    }

    /// The leaf alone.
    pub fn leaf_pem(&self) -> String {
        self.leaf.to_pem()
    }

    /// The intermediates alone (empty string when there are none).
    pub fn intermediates_pem(&self) -> String {
        self.intermediates.iter().map(Certificate::to_pem).collect()
    }

    /// The trust anchor alone: the CA file clients verify the broker with.
    pub fn anchor_pem(&self) -> String {
        self.anchor.to_pem()
    }

    /// Every certificate in order: leaf, intermediates, anchor (the anchor
    /// only once, even for a self-signed leaf).
    pub fn all(&self) -> Vec<Certificate> {
        let mut all = vec![self.leaf.clone()];
        all.extend(self.intermediates.iter().cloned());
        if !self.leaf_is_self_signed {
            all.push(self.anchor.clone());
        }
        all
    }

    /// Sentences a user should read (e.g. about a self-signed leaf).
    pub fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if self.leaf_is_self_signed {
            notes.push(format!(
                "the leaf {} is self-signed: clients must trust this certificate itself (use it as their CA file)",
                self.leaf.display_name()
            ));
        } else if self.anchor_source != AnchorSource::InBundle {
            notes.push(format!(
                "the trust anchor {} is not in the bundle; it was found in {}",
                self.anchor.display_name(),
                self.anchor_source
            ));
        }
        notes
    }

    /// Each certificate's validity window, leaf first, anchor last.
    pub fn validity_windows(&self) -> Vec<ValidityWindow> {
        let mut windows = Vec::new();
        let mut push = |cert: &Certificate, role| {
            windows.push(ValidityWindow {
                index: windows.len() + 1,
                role,
                name: cert.display_name(),
                not_before: cert.not_before(),
                not_after: cert.not_after(),
            });
        };
        push(&self.leaf, ChainRole::Leaf);
        for cert in &self.intermediates {
            push(cert, ChainRole::Intermediate);
        }
        if !self.leaf_is_self_signed {
            push(&self.anchor, ChainRole::TrustAnchor);
        }
        windows
    }
}

/// What a certificate is in a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChainRole {
    /// The end-entity certificate.
    Leaf,
    /// A CA between leaf and anchor.
    Intermediate,
    /// The root the chain ends at.
    TrustAnchor,
}

impl std::fmt::Display for ChainRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ChainRole::Leaf => "leaf",
            ChainRole::Intermediate => "intermediate",
            ChainRole::TrustAnchor => "trust anchor",
        })
    }
}

/// One certificate's validity window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidityWindow {
    /// 1-based position, leaf first.
    pub index: usize,
    /// Its role.
    pub role: ChainRole,
    /// `CN=…` or the subject.
    pub name: String,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
}

/// Where `now` lies relative to a validity window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValidityStatus {
    /// Before `not_before`.
    NotYetValid {
        /// Time until it becomes valid.
        starts_in: Duration,
    },
    /// Inside the window.
    Valid {
        /// Time left until `not_after`.
        remaining: Duration,
        /// Total length of the window.
        lifetime: Duration,
    },
    /// After `not_after`.
    Expired {
        /// Time since it expired.
        ago: Duration,
    },
}

impl ValidityWindow {
    /// Where `now` lies in this window.
    pub fn status(&self, now: OffsetDateTime) -> ValidityStatus {
        if now < self.not_before {
            ValidityStatus::NotYetValid {
                starts_in: self.not_before - now,
            }
        } else if now > self.not_after {
            ValidityStatus::Expired {
                ago: now - self.not_after,
            }
        } else {
            ValidityStatus::Valid {
                remaining: self.not_after - now,
                lifetime: self.not_after - self.not_before,
            }
        }
    }
}

/// Fails on the first certificate (leaf, intermediates, anchor) that is not
/// valid at `now`. How much time must remain is the caller's policy.
pub fn verify_validity(split: &SplitChain, now: OffsetDateTime) -> Result<(), ChainError> {
    for w in split.validity_windows() {
        let problem = match w.status(now) {
            ValidityStatus::Valid { .. } => continue,
            ValidityStatus::Expired { .. } => {
                format!(
                    "expired at {}; it is now {}",
                    fmt_time(w.not_after),
                    fmt_time(now)
                )
            }
            ValidityStatus::NotYetValid { .. } => format!(
                "is not valid before {}; it is now {} (check the clock)",
                fmt_time(w.not_before),
                fmt_time(now)
            ),
        };
        return Err(ChainError::OutsideValidity {
            index: w.index,
            name: w.name,
            role: w.role,
            problem,
        });
    }
    Ok(())
}

fn fmt_time(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

/// Removes exact duplicates (same DER), keeping the first; returns one note per
/// removed certificate. [`order_chain`] and [`split_chain`] reject duplicates,
/// so call this first to repair rather than refuse.
pub fn dedup_certificates(certs: Vec<Certificate>) -> (Vec<Certificate>, Vec<String>) {
    let mut seen: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut kept = Vec::new();
    let mut notes = Vec::new();
    for (i, cert) in certs.into_iter().enumerate() {
        if let Some(first) = seen.get(cert.der()) {
            notes.push(format!(
                "removed certificate {} ({}): it repeats certificate {}",
                i + 1,
                cert.display_name(),
                first
            ));
        } else {
            seen.insert(cert.der().to_vec(), i + 1);
            kept.push(cert);
        }
    }
    (kept, notes)
}

fn check_duplicates(certs: &[Certificate]) -> Result<(), ChainError> {
    let mut seen: HashMap<&[u8], usize> = HashMap::new();
    for (i, cert) in certs.iter().enumerate() {
        if let Some(first) = seen.insert(cert.der(), i + 1) {
            return Err(ChainError::Duplicate {
                first,
                again: i + 1,
                name: cert.display_name(),
            });
        }
    }
    Ok(())
}

/// Whether `parent` issued `child`: names match and the signature verifies.
fn links(child: &Certificate, parent: &Certificate) -> bool {
    child.issued_by_name(parent) && child.verify_signed_by(parent)
}

/// Which certificate of a set is the leaf ([`leaf_candidates`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LeafPick {
    /// Exactly one: its position.
    One(usize),
    /// None (every certificate issues another one).
    None,
    /// Several, by position.
    Several(Vec<usize>),
}

/// The leaf: the one non-CA certificate that no other certificate names as
/// its issuer, else the one certificate that issues nothing (a CA-only set).
pub(crate) fn leaf_candidates(certs: &[Certificate]) -> LeafPick {
    if certs.len() == 1 {
        return LeafPick::One(0);
    }
    let issues_another = |i: usize| {
        certs
            .iter()
            .enumerate()
            .any(|(j, other)| j != i && !other.is_self_signed() && other.issued_by_name(&certs[i]))
    };
    let candidates: Vec<usize> = (0..certs.len()).filter(|i| !issues_another(*i)).collect();
    let non_ca: Vec<usize> = candidates
        .iter()
        .copied()
        .filter(|i| !certs[*i].is_ca())
        .collect();
    match non_ca.as_slice() {
        [one] => LeafPick::One(*one),
        [] => match candidates.as_slice() {
            [one] => LeafPick::One(*one),
            [] => LeafPick::None,
            several => LeafPick::Several(several.to_vec()),
        },
        several => LeafPick::Several(several.to_vec()),
    }
}

/// Positions from `leaf` upwards, each followed by its issuer (name and
/// verified signature), until a self-signed certificate or no issuer in the
/// set. Certificates left out of the result do not link.
pub(crate) fn issuer_walk(certs: &[Certificate], leaf: usize) -> Vec<usize> {
    let mut used = vec![false; certs.len()];
    used[leaf] = true;
    let mut order = vec![leaf];
    let mut current = leaf;
    while !certs[current].is_self_signed() {
        let next = (0..certs.len()).find(|j| !used[*j] && links(&certs[current], &certs[*j]));
        match next {
            Some(j) => {
                used[j] = true;
                order.push(j);
                current = j;
            }
            None => break,
        }
    }
    order
}

/// Puts certificates in chain order, leaf first, each followed by its issuer.
///
/// The leaf is the one non-CA certificate that no other certificate names as
/// its issuer (a single certificate is always the leaf). Issuers are matched by
/// name and verified signature. A self-signed root, if present, ends the chain.
/// Duplicates and certificates that don't link are errors.
pub fn order_chain(certs: Vec<Certificate>) -> Result<Vec<Certificate>, ChainError> {
    if certs.is_empty() {
        return Err(ChainError::Empty);
    }
    check_duplicates(&certs)?;
    if certs.len() == 1 {
        return Ok(certs);
    }
    let leaf = match leaf_candidates(&certs) {
        LeafPick::One(i) => i,
        LeafPick::None => return Err(ChainError::NoLeaf { count: certs.len() }),
        LeafPick::Several(several) => {
            return Err(ChainError::SeveralLeaves {
                count: several.len(),
                names: several
                    .iter()
                    .map(|i| format!("{}: {}", i + 1, certs[*i].display_name()))
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    };
    let order = issuer_walk(&certs, leaf);
    if let Some(stray) = (0..certs.len()).find(|i| !order.contains(i)) {
        return Err(ChainError::Unlinked {
            index: stray + 1,
            name: certs[stray].display_name(),
            issuer: certs[stray].issuer_display_name(),
            leaf: format!("{} ({})", leaf + 1, certs[leaf].display_name()),
        });
    }
    let mut slots: Vec<Option<Certificate>> = certs.into_iter().map(Some).collect();
    Ok(order
        .into_iter()
        .filter_map(|i| slots.get_mut(i).and_then(Option::take))
        .collect())
}

/// Splits an ordered chain (leaf first) into leaf, intermediates and trust
/// anchor, verifying every signature from the leaf up to the anchor.
///
/// The anchor is the last certificate when it is self-signed (it is then not
/// an intermediate); otherwise the root among `anchors` whose subject is the
/// last certificate's issuer and whose key verifies its signature. A lone
/// self-signed leaf is its own anchor ([`SplitChain::leaf_is_self_signed`]).
pub fn split_chain(
    certs: Vec<Certificate>,
    anchors: &TrustAnchors,
) -> Result<SplitChain, ChainError> {
    if certs.is_empty() {
        return Err(ChainError::Empty);
    }
    check_duplicates(&certs)?;
    for (i, pair) in certs.windows(2).enumerate() {
        let (child, parent) = (&pair[0], &pair[1]);
        if !child.issued_by_name(parent) {
            let out_of_order = order_chain(certs.clone()).is_ok_and(|ordered| ordered != certs);
            let hint = if out_of_order {
                "; the blocks look out of order — order them first".to_string()
            } else {
                "; an intermediate may be missing".to_string()
            };
            return Err(ChainError::NotIssuer {
                child: i + 1,
                child_name: child.display_name(),
                expected_issuer: child.issuer_display_name(),
                parent: i + 2,
                parent_name: parent.display_name(),
                hint,
            });
        }
        if !child.verify_signed_by(parent) {
            return Err(ChainError::BadSignature {
                child: i + 1,
                child_name: child.display_name(),
                parent: i + 2,
                parent_name: parent.display_name(),
            });
        }
    }

    let mut certs = certs;
    let last_index = certs.len();
    let Some(last) = certs.last().cloned() else {
        return Err(ChainError::Empty);
    };
    let (anchor, anchor_source) = if last.is_self_signed() {
        if certs.len() > 1 {
            certs.pop();
        }
        (last, AnchorSource::InBundle)
    } else {
        match anchors.find_issuer_of(&last) {
            Some(found) => found,
            None => {
                let named = anchors.count_named_issuer_of(&last);
                return Err(if named > 0 {
                    ChainError::AnchorKeyMismatch {
                        issuer: last.issuer_display_name(),
                        count: named,
                        index: last_index,
                        name: last.display_name(),
                    }
                } else {
                    ChainError::NoTrustAnchor {
                        issuer: last.issuer_display_name(),
                        index: last_index,
                        name: last.display_name(),
                        bundled: anchors.count(AnchorSource::Bundled),
                        system: anchors.count(AnchorSource::System),
                        extra: anchors.count(AnchorSource::Extra),
                    }
                });
            }
        }
    };
    let mut rest = certs.into_iter();
    let Some(leaf) = rest.next() else {
        return Err(ChainError::Empty);
    };
    let intermediates: Vec<Certificate> = rest.collect();
    let leaf_is_self_signed = intermediates.is_empty() && leaf == anchor;
    Ok(SplitChain {
        leaf,
        intermediates,
        anchor,
        anchor_source,
        leaf_is_self_signed,
    })
}

/// certbot's / lego's `--preferred-chain`: the index of the first chain whose
/// topmost certificate is issued by `preferred_issuer_cn`; 0, the CA's default
/// chain, when none matches. Only the top certificate's *issuer* counts, as in
/// certbot and lego: for an ECDSA leaf, whose default chain ends in ISRG Root X2
/// cross-signed by ISRG Root X1, "ISRG Root X2" picks the chain ending in a
/// certificate X2 issued (not the default one). Comparison is exact apart from
/// surrounding whitespace.
pub fn choose_preferred(chains: &[Vec<Certificate>], preferred_issuer_cn: &str) -> usize {
    let wanted = preferred_issuer_cn.trim();
    if wanted.is_empty() {
        return 0;
    }
    chains
        .iter()
        .position(|chain| {
            chain
                .last()
                .is_some_and(|top| top.issuer_cn().as_deref().map(str::trim) == Some(wanted))
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::test_support::*;

    fn extra(root: &TestCa) -> TrustAnchors {
        let mut anchors = TrustAnchors::bundled();
        anchors
            .add_extra_pem(root.cert.to_pem().as_bytes())
            .unwrap();
        anchors
    }

    #[test]
    fn orders_shuffled_chains_with_one_two_and_three_intermediates() {
        for n in 1..=3 {
            let (root, chain) = ecdsa_chain(n);
            let mut with_root = chain.clone();
            with_root.push(root.cert.clone());

            // Reversed, and rotated: every permutation shape we care about.
            let mut reversed = with_root.clone();
            reversed.reverse();
            assert_eq!(order_chain(reversed).unwrap(), with_root, "n={n} reversed");
            for r in 0..with_root.len() {
                let mut rotated = with_root.clone();
                rotated.rotate_left(r);
                assert_eq!(
                    order_chain(rotated).unwrap(),
                    with_root,
                    "n={n} rotated {r}"
                );
            }
            let mut no_root = chain.clone();
            no_root.reverse();
            assert_eq!(order_chain(no_root).unwrap(), chain, "n={n} without root");
        }
    }

    #[test]
    fn splits_an_ecdsa_chain_whose_root_is_only_an_extra_anchor() {
        for n in 1..=3 {
            let (root, chain) = ecdsa_chain(n);
            let anchors = extra(&root);
            let split = split_chain(chain.clone(), &anchors).unwrap();
            assert_eq!(split.leaf, chain[0]);
            assert_eq!(split.intermediates, chain[1..]);
            assert_eq!(split.anchor, root.cert);
            assert_eq!(split.anchor_source, AnchorSource::Extra);
            assert!(!split.leaf_is_self_signed);
            assert_eq!(split.certificate_body_pem(), pem_of(&chain));
            assert_eq!(split.intermediates_pem(), pem_of(&chain[1..]));
            assert_eq!(split.anchor_pem(), root.cert.to_pem());
            assert!(split.notes()[0].contains("configured extra roots"));
            assert_eq!(split.all().len(), n + 2);
        }
    }

    #[test]
    fn splits_a_chain_ending_in_its_self_signed_root() {
        let (root, chain) = ecdsa_chain(2);
        let mut with_root = chain.clone();
        with_root.push(root.cert.clone());
        let split = split_chain(with_root, &TrustAnchors::empty()).unwrap();
        assert_eq!(split.anchor, root.cert);
        assert_eq!(split.anchor_source, AnchorSource::InBundle);
        assert_eq!(split.intermediates, chain[1..]);
        assert!(split.notes().is_empty());
    }

    #[test]
    fn rsa_chain_like_lets_encrypt_with_a_cross_signed_root() {
        // leaf ← YR1 ← "Root YR" (cross-signed by X1) ← X1, X1 only in the anchors.
        let x1 = TestCa::root("Test Root X1", rsa_2048());
        let yr = TestCa::root("Test Root YR", rsa_2048_b());
        let yr_cross = yr.cross_signed_by(&x1);
        let yr1 = yr.intermediate("YR1", ecdsa_p384());
        let leaf = yr1.leaf(&["broker.example.test"], &ecdsa_p256());
        let fullchain = vec![leaf.clone(), yr1.cert.clone(), yr_cross.clone()];
        assert!(!yr_cross.is_self_signed());
        assert_eq!(yr_cross.key_kind(), crate::pki::KeyKind::Rsa { bits: 2048 });

        let mut shuffled = fullchain.clone();
        shuffled.rotate_left(1);
        assert_eq!(order_chain(shuffled).unwrap(), fullchain);

        let split = split_chain(fullchain.clone(), &extra(&x1)).unwrap();
        assert_eq!(split.anchor, x1.cert);
        assert_eq!(split.intermediates, [yr1.cert.clone(), yr_cross.clone()]);

        // Without X1 the error names the missing root and what was searched.
        let err = split_chain(fullchain, &TrustAnchors::bundled()).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(
                err,
                ChainError::NoTrustAnchor {
                    index: 3,
                    extra: 0,
                    ..
                }
            ),
            "{msg}"
        );
        assert!(
            msg.starts_with("no trust anchor named CN=Test Root X1"),
            "{msg}"
        );
        assert!(msg.contains("bundled, 0 system and 0 extra roots"), "{msg}");
    }

    #[test]
    fn reports_a_repeated_leaf() {
        let (root, chain) = ecdsa_chain(1);
        let doubled = vec![chain[0].clone(), chain[0].clone(), chain[1].clone()];
        let err = order_chain(doubled.clone()).unwrap_err();
        assert!(
            matches!(
                err,
                ChainError::Duplicate {
                    first: 1,
                    again: 2,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("CN=broker.example.test"));
        let err = split_chain(doubled.clone(), &extra(&root)).unwrap_err();
        assert!(matches!(err, ChainError::Duplicate { .. }), "{err}");

        let (fixed, notes) = dedup_certificates(doubled);
        assert_eq!(fixed, chain);
        assert_eq!(notes.len(), 1);
        assert!(notes[0].contains("repeats certificate 1"));
    }

    #[test]
    fn reports_a_missing_intermediate() {
        let (root, chain) = ecdsa_chain(2);
        // leaf ← Intermediate 2 ← (missing Intermediate 1) ← root
        let gap = vec![chain[0].clone(), chain[1].clone(), root.cert.clone()];
        let err = split_chain(gap.clone(), &TrustAnchors::empty()).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(
                err,
                ChainError::NotIssuer {
                    child: 2,
                    parent: 3,
                    ..
                }
            ),
            "{msg}"
        );
        assert!(msg.contains("certificate 2 (CN=Test Intermediate 2) is issued by CN=Test Intermediate 1 but certificate 3 is CN=Test Root X9"), "{msg}");
        assert!(msg.contains("missing"), "{msg}");

        let err = order_chain(gap).unwrap_err();
        assert!(
            matches!(err, ChainError::Unlinked { index: 3, .. }),
            "{err}"
        );

        // Without the root anywhere, the topmost issuer is what's missing.
        let err = split_chain(
            vec![chain[0].clone(), chain[1].clone()],
            &TrustAnchors::empty(),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("no trust anchor named CN=Test Intermediate 1"),
            "{err}"
        );
    }

    #[test]
    fn out_of_order_input_is_named_as_such() {
        let (root, chain) = ecdsa_chain(1);
        let swapped = vec![chain[1].clone(), chain[0].clone()];
        let err = split_chain(swapped, &extra(&root)).unwrap_err();
        assert!(err.to_string().contains("out of order"), "{err}");
    }

    #[test]
    fn same_name_other_key_fails_on_the_signature() {
        let (root, chain) = ecdsa_chain(1);
        let impostor = root.intermediate("Test Intermediate 1", ecdsa_p256());
        let wrong = vec![chain[0].clone(), impostor.cert.clone()];
        let err = split_chain(wrong, &extra(&root)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "certificate 1 (CN=broker.example.test) is not signed by certificate 2 (CN=Test Intermediate 1): the names match but the signature does not verify with certificate 2's public key; the intermediate does not belong to this certificate"
        );

        let regenerated = TestCa::root("Test Root X9", ecdsa_p256());
        let err = split_chain(chain, &extra(&regenerated)).unwrap_err();
        assert!(
            matches!(err, ChainError::AnchorKeyMismatch { count: 1, .. }),
            "{err}"
        );
    }

    #[test]
    fn a_self_signed_leaf_is_its_own_anchor() {
        let leaf = self_signed_leaf("broker.example.test", &ecdsa_p256());
        assert!(leaf.is_self_signed());
        assert_eq!(
            order_chain(vec![leaf.clone()]).unwrap(),
            std::slice::from_ref(&leaf)
        );
        let split = split_chain(vec![leaf.clone()], &TrustAnchors::bundled()).unwrap();
        assert!(split.leaf_is_self_signed);
        assert_eq!(split.anchor, leaf);
        assert_eq!(split.anchor_source, AnchorSource::InBundle);
        assert!(split.intermediates.is_empty());
        assert!(split.notes()[0].contains("clients must trust this certificate itself"));
        assert_eq!(split.all(), [leaf]);
        assert_eq!(split.validity_windows().len(), 1);
    }

    #[test]
    fn reports_validity_windows_without_policy() {
        let (root, chain) = ecdsa_chain(1);
        let split = split_chain(chain, &extra(&root)).unwrap();
        let windows = split.validity_windows();
        assert_eq!(
            windows.iter().map(|w| w.role).collect::<Vec<_>>(),
            [
                ChainRole::Leaf,
                ChainRole::Intermediate,
                ChainRole::TrustAnchor
            ]
        );
        assert_eq!(
            windows[0].status(NOW),
            ValidityStatus::Valid {
                remaining: LEAF_NOT_AFTER - NOW,
                lifetime: LEAF_NOT_AFTER - LEAF_NOT_BEFORE
            }
        );
        assert!(verify_validity(&split, NOW).is_ok());
        let later = LEAF_NOT_AFTER + Duration::days(1);
        assert_eq!(
            windows[0].status(later),
            ValidityStatus::Expired {
                ago: Duration::days(1)
            }
        );
        let err = verify_validity(&split, later).unwrap_err();
        assert!(
            err.to_string().starts_with(
                "certificate 1 (CN=broker.example.test, leaf) expired at 2026-05-02T00:00:00Z"
            ),
            "{err}"
        );
        let early = LEAF_NOT_BEFORE - Duration::hours(1);
        assert!(
            verify_validity(&split, early)
                .unwrap_err()
                .to_string()
                .contains("not valid before")
        );
    }

    #[test]
    fn rejects_empty_and_ambiguous_sets() {
        assert_eq!(order_chain(vec![]).unwrap_err(), ChainError::Empty);
        assert_eq!(
            split_chain(vec![], &TrustAnchors::empty()).unwrap_err(),
            ChainError::Empty
        );
        let (root_a, chain_a) = ecdsa_chain(0);
        let (_root_b, chain_b) = ecdsa_chain(0);
        let err = order_chain(vec![chain_a[0].clone(), chain_b[0].clone()]).unwrap_err();
        assert!(
            matches!(err, ChainError::SeveralLeaves { count: 2, .. }),
            "{err}"
        );
        let other_root = TestCa::root("Other Root", ecdsa_p256());
        let err = order_chain(vec![root_a.cert.clone(), other_root.cert.clone()]).unwrap_err();
        assert!(
            matches!(
                err,
                ChainError::SeveralLeaves { .. } | ChainError::NoLeaf { .. }
            ),
            "{err}"
        );
    }

    #[test]
    fn choose_preferred_follows_certbot_semantics() {
        let x1 = TestCa::root("Test Root X1", ecdsa_p384());
        let yr = TestCa::root("Test Root YR", ecdsa_p256());
        let yr_cross = yr.cross_signed_by(&x1);
        let yr1 = yr.intermediate("YR1", ecdsa_p256());
        let leaf = yr1.leaf(&["broker.example.test"], &ecdsa_p256());
        let default_chain = vec![leaf.clone(), yr1.cert.clone(), yr_cross];
        let short_chain = vec![leaf, yr1.cert.clone()];
        let chains = vec![default_chain, short_chain];

        assert_eq!(choose_preferred(&chains, "Test Root X1"), 0);
        // The default chain's top is named "Test Root YR" but issued by X1: only the
        // issuer counts, so the short chain (top YR1, issued by YR) is chosen.
        assert_eq!(choose_preferred(&chains, "Test Root YR"), 1);
        let reversed: Vec<_> = chains.iter().rev().cloned().collect();
        assert_eq!(choose_preferred(&reversed, "Test Root X1"), 1);
        assert_eq!(choose_preferred(&reversed, " Test Root YR "), 0); // short chain's top is issued by YR
        assert_eq!(choose_preferred(&chains, "YR1"), 0); // a top's own name never counts
        assert_eq!(choose_preferred(&chains, "Nobody"), 0);
        assert_eq!(choose_preferred(&chains, ""), 0);
        assert_eq!(choose_preferred(&[], "Test Root X1"), 0);
    }
}

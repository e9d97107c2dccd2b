//! Trust anchors: the root certificates a chain may end at, each tagged with
//! where it came from ([`AnchorSource`]): Mozilla's roots compiled in through
//! `webpki-root-certs`, the operating system's store, or extra roots the user
//! configured (e.g. Pebble's test root).
//!
//! Owns: collecting roots and finding the one that issued a certificate (by
//! issuer name AND a verified signature). Roots are kept as DER and parsed
//! only when a cheap byte search says they might match, so building
//! [`TrustAnchors::bundled`] costs nothing.
//! Does not own: chain walking (see `chain`) or reading configured files
//! (callers read the bytes and pass them to [`TrustAnchors::add_extra_pem`]).

use std::fmt;
use std::sync::{Arc, OnceLock};

use super::bundle::{BundleError, parse_bundle};
use super::certificate::Certificate;

/// Where a chain's trust anchor was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AnchorSource {
    /// The last certificate of the bundle itself is a self-signed root.
    InBundle,
    /// Mozilla's root program, compiled in (`webpki-root-certs`).
    Bundled,
    /// The operating system's trust store.
    System,
    /// Roots the user configured.
    Extra,
}

impl fmt::Display for AnchorSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AnchorSource::InBundle => "the bundle itself",
            AnchorSource::Bundled => "the bundled Mozilla roots",
            AnchorSource::System => "the system trust store",
            AnchorSource::Extra => "the configured extra roots",
        })
    }
}

/// Why extra roots could not be added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnchorError {
    /// The PEM did not parse (the cause is in the message, not in `source()`).
    #[error("the extra roots could not be read: {0}")]
    Bundle(BundleError),
    /// The PEM parsed but held no certificate.
    #[error(
        "the extra roots hold no CERTIFICATE block (found {keys} private-key blocks); expected one or more root certificates in PEM"
    )]
    NoCertificate {
        /// Private-key blocks found instead.
        keys: usize,
    },
}

impl From<BundleError> for AnchorError {
    fn from(e: BundleError) -> AnchorError {
        AnchorError::Bundle(e)
    }
}

#[derive(Clone)]
enum Der {
    Static(&'static [u8]),
    Owned(Arc<[u8]>),
}

impl Der {
    fn bytes(&self) -> &[u8] {
        match self {
            Der::Static(b) => b,
            Der::Owned(b) => b,
        }
    }
}

#[derive(Clone)]
struct Entry {
    der: Der,
    source: AnchorSource,
    /// Parsed on first use; `None` if the DER is not a certificate.
    parsed: OnceLock<Option<Certificate>>,
}

impl Entry {
    fn new(der: Der, source: AnchorSource) -> Entry {
        Entry {
            der,
            source,
            parsed: OnceLock::new(),
        }
    }

    fn with_cert(cert: Certificate, source: AnchorSource) -> Entry {
        let entry = Entry::new(Der::Owned(Arc::from(cert.der())), source);
        let _ = entry.parsed.set(Some(cert));
        entry
    }

    fn cert(&self) -> Option<&Certificate> {
        self.parsed
            .get_or_init(|| Certificate::from_der(self.der.bytes()).ok())
            .as_ref()
    }
}

/// A set of root certificates with their sources. Cheap to clone.
#[derive(Clone, Default)]
pub struct TrustAnchors {
    entries: Vec<Entry>,
    system_skipped: usize,
}

impl fmt::Debug for TrustAnchors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustAnchors")
            .field("bundled", &self.count(AnchorSource::Bundled))
            .field("system", &self.count(AnchorSource::System))
            .field("extra", &self.count(AnchorSource::Extra))
            .field("system_skipped", &self.system_skipped)
            .finish()
    }
}

impl TrustAnchors {
    /// No roots at all (useful with [`TrustAnchors::add_extra_pem`] only).
    pub fn empty() -> TrustAnchors {
        TrustAnchors::default()
    }

    /// Mozilla's roots from `webpki-root-certs` (ISRG Root X1 and X2 included).
    /// Nothing is parsed until a lookup needs it.
    pub fn bundled() -> TrustAnchors {
        let entries = webpki_root_certs::TLS_SERVER_ROOT_CERTS
            .iter()
            .map(|der| {
                let bytes: &'static [u8] = der;
                Entry::new(Der::Static(bytes), AnchorSource::Bundled)
            })
            .collect();
        TrustAnchors {
            entries,
            system_skipped: 0,
        }
    }

    /// Adds the operating system's roots (`rustls-native-certs`). Certificates
    /// or files that fail to load are skipped and counted
    /// ([`TrustAnchors::system_skipped`]), never fatal.
    pub fn with_system(mut self) -> TrustAnchors {
        let result = rustls_native_certs::load_native_certs();
        self.system_skipped += result.errors.len();
        for der in result.certs {
            let bytes: &[u8] = &der;
            self.entries.push(Entry::new(
                Der::Owned(Arc::from(bytes)),
                AnchorSource::System,
            ));
        }
        self
    }

    /// Adds every certificate in `text` (PEM) as an extra root; returns how many.
    pub fn add_extra_pem(&mut self, text: &[u8]) -> Result<usize, AnchorError> {
        let bundle = parse_bundle(text)?;
        if bundle.certificates.is_empty() {
            return Err(AnchorError::NoCertificate {
                keys: bundle.private_keys.len(),
            });
        }
        let n = bundle.certificates.len();
        for cert in bundle.certificates {
            self.add_extra(cert);
        }
        Ok(n)
    }

    /// Adds one extra root.
    pub fn add_extra(&mut self, cert: Certificate) {
        self.entries
            .push(Entry::with_cert(cert, AnchorSource::Extra));
    }

    /// How many roots came from `source`.
    pub fn count(&self, source: AnchorSource) -> usize {
        self.entries.iter().filter(|e| e.source == source).count()
    }

    /// Total number of roots.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No roots at all.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// System certificates (or files) that could not be loaded and were skipped.
    pub fn system_skipped(&self) -> usize {
        self.system_skipped
    }

    /// Entries in search order: extra roots first (the user's explicit
    /// choice), then bundled, then system.
    fn in_search_order(&self) -> impl Iterator<Item = &Entry> {
        let rank = [
            AnchorSource::Extra,
            AnchorSource::Bundled,
            AnchorSource::System,
        ];
        rank.into_iter()
            .flat_map(move |s| self.entries.iter().filter(move |e| e.source == s))
    }

    /// Entries that may have `cn` in their DER (a byte search; parses nothing).
    fn candidates<'a>(&'a self, needle: Option<&'a [u8]>) -> impl Iterator<Item = &'a Entry> {
        self.in_search_order().filter(move |e| match needle {
            Some(n) if !n.is_empty() => e.der.bytes().windows(n.len()).any(|w| w == n),
            _ => true,
        })
    }

    /// The root whose subject is `cert`'s issuer and whose key verifies `cert`'s
    /// signature, with its source.
    pub fn find_issuer_of(&self, cert: &Certificate) -> Option<(Certificate, AnchorSource)> {
        let cn = cert.issuer_cn();
        let matches = |e: &Entry| {
            e.cert()
                .filter(|root| cert.issued_by_name(root) && cert.verify_signed_by(root))
                .map(|root| (root.clone(), e.source))
        };
        let found = self
            .candidates(cn.as_deref().map(str::as_bytes))
            .find_map(matches);
        // Names in exotic string encodings (BMPString…) escape the byte search.
        found.or_else(|| {
            cn.as_ref()?;
            self.in_search_order().find_map(matches)
        })
    }

    /// How many roots carry `cert`'s issuer name (whatever their key).
    pub fn count_named_issuer_of(&self, cert: &Certificate) -> usize {
        let cn = cert.issuer_cn();
        self.candidates(cn.as_deref().map(str::as_bytes))
            .filter(|e| e.cert().is_some_and(|root| cert.issued_by_name(root)))
            .count()
    }

    /// The first root whose subject CN equals `cn` exactly.
    pub fn find_by_subject_cn(&self, cn: &str) -> Option<(Certificate, AnchorSource)> {
        self.candidates(Some(cn.as_bytes())).find_map(|e| {
            e.cert()
                .filter(|c| c.subject_cn().as_deref() == Some(cn))
                .map(|c| (c.clone(), e.source))
        })
    }

    /// Whether this exact certificate (same DER) is one of the roots.
    pub fn contains(&self, cert: &Certificate) -> bool {
        self.entries.iter().any(|e| e.der.bytes() == cert.der())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::test_support::*;
    use std::time::Instant;

    #[test]
    fn isrg_roots_are_in_the_bundled_set_and_building_it_is_cheap() {
        let start = Instant::now();
        let anchors = TrustAnchors::bundled();
        let built = start.elapsed();
        assert!(anchors.count(AnchorSource::Bundled) > 100);
        let (x1, source) = anchors.find_by_subject_cn("ISRG Root X1").unwrap();
        assert_eq!(source, AnchorSource::Bundled);
        assert!(x1.is_self_signed());
        assert_eq!(x1.key_kind(), crate::pki::KeyKind::Rsa { bits: 4096 });
        assert_eq!(
            x1.subject(),
            "CN=ISRG Root X1,O=Internet Security Research Group,C=US"
        );
        let (x2, _) = anchors.find_by_subject_cn("ISRG Root X2").unwrap();
        assert_eq!(x2.key_kind(), crate::pki::KeyKind::EcdsaP384);
        assert!(anchors.contains(&x1));
        let looked_up = start.elapsed();

        // For the record: what parsing every bundled root would cost.
        let t = Instant::now();
        let parsed = webpki_root_certs::TLS_SERVER_ROOT_CERTS
            .iter()
            .filter(|d| Certificate::from_der(d).is_ok())
            .count();
        let all = t.elapsed();
        eprintln!(
            "bundled(): build {built:?}, build+2 lookups {looked_up:?}; parsing all {parsed} roots {all:?}"
        );
        assert!(anchors.find_by_subject_cn("No Such Root").is_none());
    }

    #[test]
    fn finds_an_extra_root_by_name_and_signature() {
        let (root, chain) = ecdsa_chain(1);
        let mut anchors = TrustAnchors::bundled();
        assert!(anchors.find_issuer_of(&chain[1]).is_none());
        assert_eq!(
            anchors
                .add_extra_pem(root.cert.to_pem().as_bytes())
                .unwrap(),
            1
        );
        let (found, source) = anchors.find_issuer_of(&chain[1]).unwrap();
        assert_eq!(found, root.cert);
        assert_eq!(source, AnchorSource::Extra);
        assert_eq!(anchors.count(AnchorSource::Extra), 1);
        // The leaf is not issued by the root directly.
        assert!(anchors.find_issuer_of(&chain[0]).is_none());

        // Same name, other key: found by name, rejected by signature.
        let impostor = TestCa::root("Test Root X9", ecdsa_p256());
        let mut wrong = TrustAnchors::empty();
        wrong.add_extra(impostor.cert.clone());
        assert!(wrong.find_issuer_of(&chain[1]).is_none());
        assert_eq!(wrong.count_named_issuer_of(&chain[1]), 1);
    }

    #[test]
    fn extra_roots_must_hold_a_certificate() {
        let mut anchors = TrustAnchors::empty();
        let key = ecdsa_p256();
        let err = anchors
            .add_extra_pem(key.serialize_pem().as_bytes())
            .unwrap_err();
        assert_eq!(err, AnchorError::NoCertificate { keys: 1 });
        assert!(matches!(
            anchors.add_extra_pem(b"").unwrap_err(),
            AnchorError::Bundle(BundleError::Empty)
        ));
        assert!(anchors.is_empty());
    }

    #[test]
    fn system_store_loads_without_failing() {
        let anchors = TrustAnchors::empty().with_system();
        eprintln!(
            "system roots: {} loaded, {} skipped",
            anchors.count(AnchorSource::System),
            anchors.system_skipped()
        );
        assert_eq!(anchors.count(AnchorSource::Bundled), 0);
    }
}

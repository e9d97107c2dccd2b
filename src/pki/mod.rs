//! Pure PKI: certificates, PEM bundles, chain ordering/splitting, trust anchors
//! and private keys, for certificates that are fetched elsewhere (ACME) and
//! installed elsewhere (EMQX Cloud, self-hosted brokers).
//!
//! Owns: everything that can be decided from bytes alone — parsing, ordering,
//! signature checks, splitting a chain into certificate body / intermediates /
//! root, key generation, CSRs. Does not own: I/O (apart from reading the
//! system trust store in [`TrustAnchors::with_system`]), clocks (functions
//! that need the time take `now`), network, storage layout or any policy
//! about how long a certificate must still be valid.
//!
//! Nothing here refers to the rest of the crate.

pub mod anchors;
pub mod bundle;
pub mod certificate;
pub mod chain;
pub mod issued;
pub mod key_choice;
pub mod keys;
pub mod split_bundle;

pub use anchors::{AnchorError, AnchorSource, TrustAnchors};
pub use bundle::{
    Bundle, BundleError, MAX_BUNDLE_BYTES, PrivateKeyBlock, PrivateKeyFormat, normalise_pem,
    parse_bundle,
};
pub use certificate::{Certificate, CertificateError, KeyKind, SignatureFamily};
pub use chain::{
    ChainError, ChainRole, SplitChain, ValidityStatus, ValidityWindow, choose_preferred,
    dedup_certificates, order_chain, split_chain, verify_validity,
};
pub use key_choice::{FreshBecause, KeyChoice, StoredKey, choose_key};
pub use keys::{KeyError, KeyType, ParseKeyTypeError, PrivateKey};
pub use split_bundle::{SplitBundle, SplitError, split_bundle};

/// Test fixtures: every certificate is made with rcgen at test time.
#[cfg(test)]
pub(crate) mod test_support {
    use std::sync::OnceLock;

    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
        KeyUsagePurpose, SerialNumber,
    };
    use time::OffsetDateTime;
    use time::macros::datetime;

    use super::Certificate;

    /// The "current time" of every test.
    pub const NOW: OffsetDateTime = datetime!(2026-03-01 12:00 UTC);
    pub const LEAF_NOT_BEFORE: OffsetDateTime = datetime!(2026-02-01 00:00 UTC);
    pub const LEAF_NOT_AFTER: OffsetDateTime = datetime!(2026-05-02 00:00 UTC);
    pub const CA_NOT_BEFORE: OffsetDateTime = datetime!(2020-01-01 00:00 UTC);
    pub const CA_NOT_AFTER: OffsetDateTime = datetime!(2040-01-01 00:00 UTC);

    pub fn ecdsa_p256() -> KeyPair {
        KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap()
    }

    pub fn ecdsa_p384() -> KeyPair {
        KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap()
    }

    /// RSA generation is slow in debug builds: at most two keys per test
    /// process are generated and then shared (as PKCS#8) by every test.
    fn cached_rsa(slot: &'static OnceLock<Vec<u8>>) -> KeyPair {
        let der = slot.get_or_init(|| {
            KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
                .unwrap()
                .serialize_der()
        });
        KeyPair::try_from(der.as_slice()).unwrap()
    }

    pub fn rsa_2048() -> KeyPair {
        static SLOT: OnceLock<Vec<u8>> = OnceLock::new();
        cached_rsa(&SLOT)
    }

    pub fn rsa_2048_b() -> KeyPair {
        static SLOT: OnceLock<Vec<u8>> = OnceLock::new();
        cached_rsa(&SLOT)
    }

    pub struct TestCa {
        pub params: CertificateParams,
        pub key: KeyPair,
        pub cert: Certificate,
    }

    fn ca_params(cn: &str) -> CertificateParams {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CountryName, "US");
        dn.push(DnType::OrganizationName, "brokercert tests");
        dn.push(DnType::CommonName, cn);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = CA_NOT_BEFORE;
        params.not_after = CA_NOT_AFTER;
        params
    }

    impl TestCa {
        pub fn root(cn: &str, key: KeyPair) -> TestCa {
            let params = ca_params(cn);
            let cert = params.self_signed(&key).unwrap();
            let cert = Certificate::from_der(cert.der()).unwrap();
            TestCa { params, key, cert }
        }

        pub fn intermediate(&self, cn: &str, key: KeyPair) -> TestCa {
            let params = ca_params(cn);
            let cert = self.sign(&params, &key);
            TestCa { params, key, cert }
        }

        /// This CA's subject and key, signed by `signer` (a cross-sign).
        pub fn cross_signed_by(&self, signer: &TestCa) -> Certificate {
            signer.sign(&self.params, &self.key)
        }

        pub fn sign(&self, params: &CertificateParams, key: &KeyPair) -> Certificate {
            let issuer = Issuer::from_params(&self.params, &self.key);
            let cert = params.signed_by(key, &issuer).unwrap();
            Certificate::from_der(cert.der()).unwrap()
        }

        pub fn leaf(&self, names: &[&str], key: &KeyPair) -> Certificate {
            self.sign(&leaf_params(names), key)
        }
    }

    pub fn leaf_params(names: &[&str]) -> CertificateParams {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, names[0]);
        params.distinguished_name = dn;
        params.not_before = LEAF_NOT_BEFORE;
        params.not_after = LEAF_NOT_AFTER;
        params.serial_number = Some(SerialNumber::from_slice(&[0x0b, 0xad, 0xc0, 0xff, 0xee]));
        params
    }

    pub fn self_signed_leaf(name: &str, key: &KeyPair) -> Certificate {
        let cert = leaf_params(&[name]).self_signed(key).unwrap();
        Certificate::from_der(cert.der()).unwrap()
    }

    /// root → `n` intermediates → leaf, all ECDSA P-256. Returns the root CA and
    /// the chain leaf-first **without** the root.
    pub fn ecdsa_chain(n: usize) -> (TestCa, Vec<Certificate>) {
        let root = TestCa::root("Test Root X9", ecdsa_p256());
        let mut cas: Vec<TestCa> = Vec::new();
        for i in 0..n {
            let parent = cas.last().unwrap_or(&root);
            let next = parent.intermediate(&format!("Test Intermediate {}", i + 1), ecdsa_p256());
            cas.push(next);
        }
        let issuer = cas.last().unwrap_or(&root);
        let leaf = issuer.leaf(&["broker.example.test"], &ecdsa_p256());
        let mut chain = vec![leaf];
        chain.extend(cas.iter().rev().map(|c| c.cert.clone()));
        (root, chain)
    }

    pub fn pem_of(certs: &[Certificate]) -> String {
        certs.iter().map(Certificate::to_pem).collect()
    }
}

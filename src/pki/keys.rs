//! Private keys: the [`KeyType`] a user chooses (`rsa2048` … `ecdsa-p384`),
//! generating a [`PrivateKey`], reading one from PEM (PKCS#8, PKCS#1, SEC1;
//! always written back as PKCS#8), building the CSR for an ACME order, and
//! checking that a key belongs to a certificate.
//!
//! Owns: key material and everything that needs it. A key's `Debug` never
//! shows the material. Does not own: where keys are stored or their file
//! permissions (callers write [`PrivateKey::to_pem`] with mode 0600), ACME
//! account keys, or PEM framing (see `bundle`).

use std::fmt;
use std::str::FromStr;

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, PublicKeyData, RsaKeySize};
use x509_parser::prelude::FromDer;

use super::bundle::{BundleError, PrivateKeyBlock, PrivateKeyFormat, parse_bundle};
use super::certificate::{Certificate, KeyKind, key_kind_of};

/// The key algorithms a certificate can be ordered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum KeyType {
    /// RSA 2048: accepted by every EMQX Cloud guide revision (the default).
    #[default]
    Rsa2048,
    /// RSA 3072.
    Rsa3072,
    /// RSA 4096.
    Rsa4096,
    /// ECDSA on P-256.
    EcdsaP256,
    /// ECDSA on P-384.
    EcdsaP384,
}

impl KeyType {
    /// Every key type, in the order they are listed to users.
    pub const ALL: [KeyType; 5] = [
        KeyType::Rsa2048,
        KeyType::Rsa3072,
        KeyType::Rsa4096,
        KeyType::EcdsaP256,
        KeyType::EcdsaP384,
    ];

    /// The configuration name (`rsa2048`, `ecdsa-p256`, …).
    pub fn name(self) -> &'static str {
        match self {
            KeyType::Rsa2048 => "rsa2048",
            KeyType::Rsa3072 => "rsa3072",
            KeyType::Rsa4096 => "rsa4096",
            KeyType::EcdsaP256 => "ecdsa-p256",
            KeyType::EcdsaP384 => "ecdsa-p384",
        }
    }

    /// The [`KeyKind`] a certificate for this key type carries.
    pub fn key_kind(self) -> KeyKind {
        match self {
            KeyType::Rsa2048 => KeyKind::Rsa { bits: 2048 },
            KeyType::Rsa3072 => KeyKind::Rsa { bits: 3072 },
            KeyType::Rsa4096 => KeyKind::Rsa { bits: 4096 },
            KeyType::EcdsaP256 => KeyKind::EcdsaP256,
            KeyType::EcdsaP384 => KeyKind::EcdsaP384,
        }
    }

    /// The key type of a [`KeyKind`], if it is one of ours.
    pub fn from_key_kind(kind: &KeyKind) -> Option<KeyType> {
        KeyType::ALL.into_iter().find(|t| t.key_kind() == *kind)
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A key type name that is not one of [`KeyType::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown key type {given:?}; expected one of rsa2048, rsa3072, rsa4096, ecdsa-p256, ecdsa-p384"
)]
pub struct ParseKeyTypeError {
    /// What was given.
    pub given: String,
}

impl FromStr for KeyType {
    type Err = ParseKeyTypeError;

    /// Accepts the names case-insensitively, with surrounding whitespace.
    fn from_str(s: &str) -> Result<KeyType, ParseKeyTypeError> {
        let wanted = s.trim().to_ascii_lowercase();
        KeyType::ALL
            .into_iter()
            .find(|t| t.name() == wanted)
            .ok_or_else(|| ParseKeyTypeError {
                given: s.to_string(),
            })
    }
}

impl serde::Serialize for KeyType {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for KeyType {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<KeyType, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Why a key could not be made, read or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The crypto backend failed to generate.
    #[error(
        "generating a {key_type} key failed ({reason}); expected the crypto backend to generate keys"
    )]
    Generate {
        /// The requested type.
        key_type: KeyType,
        /// What the backend said.
        reason: String,
    },
    /// The PEM text could not be read at all (the cause is in the message, not in `source()`).
    #[error("the private key file could not be read: {0}")]
    Bundle(BundleError),
    /// No key block in the text.
    #[error(
        "no private key block was found (the input holds {certificates} certificate block(s)); expected a PEM block such as -----BEGIN PRIVATE KEY-----"
    )]
    NoKey {
        /// Certificates found instead.
        certificates: usize,
    },
    /// More than one key block.
    #[error("the input holds {count} private-key blocks; expected exactly one")]
    SeveralKeys {
        /// How many.
        count: usize,
    },
    /// A password-protected key.
    #[error(
        "private key block {block} is {format} and password-protected; the key must be unencrypted: decrypt it with `openssl pkey -in K -out K.plain` and use K.plain"
    )]
    Encrypted {
        /// 1-based block number.
        block: usize,
        /// Its format.
        format: PrivateKeyFormat,
    },
    /// The block decoded but is not a key we can use.
    #[error(
        "the {format} private key could not be read ({reason}); expected an unencrypted RSA (2048 to 8192 bits), ECDSA P-256/P-384/P-521 or Ed25519 key"
    )]
    Unreadable {
        /// Its format.
        format: PrivateKeyFormat,
        /// What the backend said.
        reason: String,
    },
    /// `csr_der` without names.
    #[error("a certificate signing request needs at least one name, but none was given")]
    NoNames,
    /// A name that can't be a SAN.
    #[error(
        "the name {name:?} cannot go into a certificate signing request ({reason}); expected an ASCII DNS name (IDNs in punycode) or an IP address"
    )]
    InvalidName {
        /// The name.
        name: String,
        /// Why.
        reason: String,
    },
    /// rcgen failed to build the CSR.
    #[error(
        "the certificate signing request could not be built ({reason}); expected rcgen to sign it with this key"
    )]
    Csr {
        /// What rcgen said.
        reason: String,
    },
}

impl From<BundleError> for KeyError {
    fn from(e: BundleError) -> KeyError {
        KeyError::Bundle(e)
    }
}

/// A private key. `Debug` shows only the key kind.
pub struct PrivateKey {
    pair: KeyPair,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("kind", &self.key_kind())
            .finish_non_exhaustive()
    }
}

impl PrivateKey {
    /// Generates a fresh key.
    pub fn generate(key_type: KeyType) -> Result<PrivateKey, KeyError> {
        let rsa = |size| KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, size);
        let pair = match key_type {
            KeyType::Rsa2048 => rsa(RsaKeySize::_2048),
            KeyType::Rsa3072 => rsa(RsaKeySize::_3072),
            KeyType::Rsa4096 => rsa(RsaKeySize::_4096),
            KeyType::EcdsaP256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
            KeyType::EcdsaP384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384),
        }
        .map_err(|e| KeyError::Generate {
            key_type,
            reason: e.to_string(),
        })?;
        Ok(PrivateKey { pair })
    }

    /// Reads the single private key in `text` (PEM; certificate blocks may be
    /// present and are ignored). PKCS#1 and SEC1 keys are converted to PKCS#8.
    pub fn from_pem(text: impl AsRef<[u8]>) -> Result<PrivateKey, KeyError> {
        let bundle = parse_bundle(text.as_ref())?;
        match bundle.private_keys.as_slice() {
            [one] => PrivateKey::from_block(one),
            [] => Err(KeyError::NoKey {
                certificates: bundle.certificates.len(),
            }),
            several => Err(KeyError::SeveralKeys {
                count: several.len(),
            }),
        }
    }

    /// Reads a key block found by [`parse_bundle`].
    pub fn from_block(block: &PrivateKeyBlock) -> Result<PrivateKey, KeyError> {
        let format = block.format;
        let unreadable = |e: rcgen::Error| KeyError::Unreadable {
            format,
            reason: e.to_string(),
        };
        let pkcs8 = match format {
            PrivateKeyFormat::EncryptedPkcs8 | PrivateKeyFormat::LegacyEncrypted => {
                return Err(KeyError::Encrypted {
                    block: block.block,
                    format,
                });
            }
            PrivateKeyFormat::Pkcs8 => block.der().to_vec(),
            PrivateKeyFormat::Pkcs1Rsa => wrap_pkcs8(ALG_RSA, block.der()),
            PrivateKeyFormat::Sec1Ec => {
                let probe = KeyPair::try_from(block.der()).map_err(unreadable)?;
                let alg = probe.algorithm();
                let alg_id = if alg == &rcgen::PKCS_ECDSA_P256_SHA256 {
                    ALG_EC_P256
                } else if alg == &rcgen::PKCS_ECDSA_P384_SHA384 {
                    ALG_EC_P384
                } else if alg == &rcgen::PKCS_ECDSA_P521_SHA512 {
                    ALG_EC_P521
                } else {
                    return Err(KeyError::Unreadable {
                        format,
                        reason: "not an EC key on P-256, P-384 or P-521".to_string(),
                    });
                };
                wrap_pkcs8(alg_id, block.der())
            }
        };
        let pair = KeyPair::try_from(pkcs8.as_slice()).map_err(unreadable)?;
        Ok(PrivateKey { pair })
    }

    /// PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`, `\n` line ends). Secret: store it 0600.
    pub fn to_pem(&self) -> String {
        pem::encode_config(
            &pem::Pem::new("PRIVATE KEY", self.pair.serialized_der().to_vec()),
            pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
        )
    }

    /// PKCS#8 DER. Secret.
    pub fn pkcs8_der(&self) -> &[u8] {
        self.pair.serialized_der()
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn public_key_spki_der(&self) -> Vec<u8> {
        self.pair.subject_public_key_info()
    }

    /// Kind and size of the key.
    pub fn key_kind(&self) -> KeyKind {
        let spki = self.pair.subject_public_key_info();
        match x509_parser::x509::SubjectPublicKeyInfo::from_der(&spki) {
            Ok((_, parsed)) => key_kind_of(&parsed),
            Err(e) => KeyKind::Other(format!("unparsable public key ({e})")),
        }
    }

    /// The [`KeyType`] of this key, if it is one of ours.
    pub fn key_type(&self) -> Option<KeyType> {
        KeyType::from_key_kind(&self.key_kind())
    }

    /// The rcgen key pair, for signing with rcgen directly.
    pub fn as_rcgen(&self) -> &KeyPair {
        &self.pair
    }

    /// A DER PKCS#10 CSR for `names` (DNS names or IP addresses) as SANs. The
    /// subject is `CN=<first name>` when that fits the 64-character CN limit,
    /// otherwise empty (the CA takes the names from the SANs).
    pub fn csr_der(&self, names: &[String]) -> Result<Vec<u8>, KeyError> {
        let first = names.first().ok_or(KeyError::NoNames)?;
        let mut cleaned = Vec::with_capacity(names.len());
        for name in names {
            let n = name.trim().trim_end_matches('.');
            if n.is_empty() {
                return Err(KeyError::InvalidName {
                    name: name.clone(),
                    reason: "it is empty".to_string(),
                });
            }
            if !n.is_ascii()
                || n.chars()
                    .any(|c| c.is_ascii_whitespace() || c.is_ascii_control())
            {
                return Err(KeyError::InvalidName {
                    name: name.clone(),
                    reason: "it contains spaces or non-ASCII characters".to_string(),
                });
            }
            cleaned.push(n.to_ascii_lowercase());
        }
        let mut params =
            CertificateParams::new(cleaned.clone()).map_err(|e| KeyError::InvalidName {
                name: first.clone(),
                reason: e.to_string(),
            })?;
        let mut dn = DistinguishedName::new();
        if let Some(cn) = cleaned.first().filter(|cn| cn.len() <= 64) {
            dn.push(DnType::CommonName, cn.as_str());
        }
        params.distinguished_name = dn;
        let csr = params
            .serialize_request(&self.pair)
            .map_err(|e| KeyError::Csr {
                reason: e.to_string(),
            })?;
        Ok(csr.der().to_vec())
    }

    /// Whether `cert` certifies this key (same public key bytes).
    pub fn matches_certificate(&self, cert: &Certificate) -> bool {
        self.pair.der_bytes() == cert.public_key_bytes()
    }
}

/// AlgorithmIdentifier DER: rsaEncryption with NULL parameters.
const ALG_RSA: &[u8] = &[
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
];
/// id-ecPublicKey, prime256v1.
const ALG_EC_P256: &[u8] = &[
    0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
    0xce, 0x3d, 0x03, 0x01, 0x07,
];
/// id-ecPublicKey, secp384r1.
const ALG_EC_P384: &[u8] = &[
    0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b, 0x81, 0x04,
    0x00, 0x22,
];
/// id-ecPublicKey, secp521r1.
const ALG_EC_P521: &[u8] = &[
    0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b, 0x81, 0x04,
    0x00, 0x23,
];

fn der_tlv(tag: u8, content: &[u8], out: &mut Vec<u8>) {
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        let significant = bytes.get(skip..).unwrap_or_default();
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(significant);
    }
    out.extend_from_slice(content);
}

/// PKCS#8 PrivateKeyInfo { version 0, algorithm, OCTET STRING key }.
fn wrap_pkcs8(algorithm: &[u8], key: &[u8]) -> Vec<u8> {
    let mut content = vec![0x02, 0x01, 0x00];
    content.extend_from_slice(algorithm);
    der_tlv(0x04, key, &mut content);
    let mut out = Vec::with_capacity(content.len() + 4);
    der_tlv(0x30, &content, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::test_support::*;
    use serde::Deserialize;
    use serde::de::value::{Error as DeError, StrDeserializer};
    use x509_parser::certification_request::X509CertificationRequest;
    use x509_parser::der_parser::der::parse_der;
    use x509_parser::extensions::{GeneralName, ParsedExtension};

    /// The inner key of a PKCS#8 structure (PKCS#1 for RSA, SEC1 for EC).
    fn unwrap_pkcs8(pkcs8: &[u8]) -> Vec<u8> {
        let (_, obj) = parse_der(pkcs8).unwrap();
        let seq = obj.as_sequence().unwrap();
        seq[2].as_slice().unwrap().to_vec()
    }

    fn pem_block(label: &str, der: &[u8]) -> String {
        pem::encode_config(
            &pem::Pem::new(label, der.to_vec()),
            pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
        )
    }

    #[test]
    fn key_type_names_parse_display_and_deserialize() {
        for t in KeyType::ALL {
            assert_eq!(t.to_string().parse::<KeyType>().unwrap(), t);
            let de = KeyType::deserialize(StrDeserializer::<DeError>::new(t.name())).unwrap();
            assert_eq!(de, t);
        }
        assert_eq!(KeyType::default(), KeyType::Rsa2048);
        assert_eq!(
            " ECDSA-P256 ".parse::<KeyType>().unwrap(),
            KeyType::EcdsaP256
        );
        let err = "rsa1024".parse::<KeyType>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown key type \"rsa1024\"; expected one of rsa2048, rsa3072, rsa4096, ecdsa-p256, ecdsa-p384"
        );
        let err = KeyType::deserialize(StrDeserializer::<DeError>::new("p256")).unwrap_err();
        assert!(err.to_string().contains("expected one of"), "{err}");
    }

    #[test]
    fn generates_ecdsa_keys_and_round_trips_pkcs8_pem() {
        for t in [KeyType::EcdsaP256, KeyType::EcdsaP384] {
            let key = PrivateKey::generate(t).unwrap();
            assert_eq!(key.key_type(), Some(t));
            let pem_text = key.to_pem();
            assert!(pem_text.starts_with("-----BEGIN PRIVATE KEY-----\n"));
            let back = PrivateKey::from_pem(&pem_text).unwrap();
            assert_eq!(back.pkcs8_der(), key.pkcs8_der());
            let dbg = format!("{key:?}");
            assert!(
                !dbg.contains(&pem_text[28..60]) && dbg.starts_with("PrivateKey { kind: Ecdsa"),
                "{dbg}"
            );
        }
    }

    #[test]
    fn generates_rsa_2048_by_default() {
        let key = PrivateKey::generate(KeyType::default()).unwrap();
        assert_eq!(key.key_kind(), KeyKind::Rsa { bits: 2048 });
        assert_eq!(key.key_type(), Some(KeyType::Rsa2048));
    }

    #[test]
    fn reads_pkcs1_and_sec1_keys_and_writes_pkcs8() {
        let rsa = rsa_2048();
        let pkcs1 = unwrap_pkcs8(rsa.serialized_der());
        let key = PrivateKey::from_pem(pem_block("RSA PRIVATE KEY", &pkcs1)).unwrap();
        assert_eq!(key.pkcs8_der(), rsa.serialized_der());
        assert_eq!(key.key_kind(), KeyKind::Rsa { bits: 2048 });

        for ec in [ecdsa_p256(), ecdsa_p384()] {
            let sec1 = unwrap_pkcs8(ec.serialized_der());
            let key = PrivateKey::from_pem(pem_block("EC PRIVATE KEY", &sec1)).unwrap();
            assert_eq!(key.pkcs8_der(), ec.serialized_der());
            assert!(key.to_pem().starts_with("-----BEGIN PRIVATE KEY-----"));
            assert_eq!(key.as_rcgen().der_bytes(), ec.der_bytes());
        }
    }

    #[test]
    fn refuses_encrypted_missing_and_several_keys() {
        let legacy = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00112233445566778899AABBCCDDEEFF\n\nAAECAwQFBgcICQoLDA0ODw==\n-----END RSA PRIVATE KEY-----\n";
        let err = PrivateKey::from_pem(legacy).unwrap_err();
        assert!(
            matches!(
                err,
                KeyError::Encrypted {
                    format: PrivateKeyFormat::LegacyEncrypted,
                    ..
                }
            ),
            "{err}"
        );
        assert!(
            err.to_string().contains("openssl pkey -in K -out K.plain"),
            "{err}"
        );
        let pkcs8 = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAECAwQFBgcICQoLDA0ODw==\n-----END ENCRYPTED PRIVATE KEY-----\n";
        let err = PrivateKey::from_pem(pkcs8).unwrap_err();
        assert!(err.to_string().contains("must be unencrypted"), "{err}");

        let (root, _) = ecdsa_chain(0);
        assert_eq!(
            PrivateKey::from_pem(root.cert.to_pem()).unwrap_err(),
            KeyError::NoKey { certificates: 1 }
        );
        let two = format!(
            "{}{}",
            ecdsa_p256().serialize_pem(),
            ecdsa_p256().serialize_pem()
        );
        assert_eq!(
            PrivateKey::from_pem(two).unwrap_err(),
            KeyError::SeveralKeys { count: 2 }
        );
        let junk = pem_block("PRIVATE KEY", b"not a key");
        assert!(matches!(
            PrivateKey::from_pem(junk).unwrap_err(),
            KeyError::Unreadable { .. }
        ));
        assert!(matches!(
            PrivateKey::from_pem("").unwrap_err(),
            KeyError::Bundle(BundleError::Empty)
        ));
    }

    #[test]
    fn key_matches_its_certificate_only() {
        let root = TestCa::root("Test Root", ecdsa_p256());
        let key = PrivateKey::generate(KeyType::EcdsaP256).unwrap();
        let cert = root.leaf(&["broker.example.test"], key.as_rcgen());
        assert!(key.matches_certificate(&cert));
        assert!(!key.matches_certificate(&root.cert));
        let other = PrivateKey::generate(KeyType::EcdsaP256).unwrap();
        assert!(!other.matches_certificate(&cert));

        let rsa = PrivateKey::from_pem(rsa_2048().serialize_pem()).unwrap();
        let rsa_cert = root.leaf(&["broker.example.test"], rsa.as_rcgen());
        assert!(rsa.matches_certificate(&rsa_cert));
        assert!(!rsa.matches_certificate(&cert));
        assert!(!key.matches_certificate(&rsa_cert));
    }

    #[test]
    fn builds_a_csr_with_sans_and_cn() {
        let key = PrivateKey::generate(KeyType::EcdsaP256).unwrap();
        let names = vec![
            "Broker.Example.Test.".to_string(),
            "*.mqtt.example.test".to_string(),
            "192.0.2.7".to_string(),
        ];
        let der = key.csr_der(&names).unwrap();
        let (_, csr) = X509CertificationRequest::from_der(&der).unwrap();
        csr.verify_signature().unwrap();
        assert_eq!(
            csr.certification_request_info.subject.to_string(),
            "CN=broker.example.test"
        );
        let mut dns = Vec::new();
        let mut ips = Vec::new();
        for ext in csr.requested_extensions().unwrap() {
            if let ParsedExtension::SubjectAlternativeName(san) = ext {
                for n in &san.general_names {
                    match n {
                        GeneralName::DNSName(d) => dns.push(d.to_string()),
                        GeneralName::IPAddress(ip) => ips.push(ip.to_vec()),
                        _ => {}
                    }
                }
            }
        }
        assert_eq!(dns, ["broker.example.test", "*.mqtt.example.test"]);
        assert_eq!(ips, [vec![192, 0, 2, 7]]);
        assert_eq!(
            csr.certification_request_info.subject_pki.raw,
            key.public_key_spki_der().as_slice()
        );

        let long = format!("{}.example.test", "a".repeat(60));
        let der = key.csr_der(std::slice::from_ref(&long)).unwrap();
        let (_, csr) = X509CertificationRequest::from_der(&der).unwrap();
        assert_eq!(csr.certification_request_info.subject.iter_rdn().count(), 0);

        assert_eq!(key.csr_der(&[]).unwrap_err(), KeyError::NoNames);
        assert!(matches!(
            key.csr_der(&["bücher.example".to_string()]).unwrap_err(),
            KeyError::InvalidName { .. }
        ));
        assert!(matches!(
            key.csr_der(&[" ".to_string()]).unwrap_err(),
            KeyError::InvalidName { .. }
        ));
    }

    #[test]
    fn der_lengths_are_encoded_in_long_form() {
        let mut out = Vec::new();
        der_tlv(0x04, &[0u8; 300], &mut out);
        assert_eq!(&out[..4], &[0x04, 0x82, 0x01, 0x2c]);
        let mut out = Vec::new();
        der_tlv(0x04, &[0u8; 200], &mut out);
        assert_eq!(&out[..3], &[0x04, 0x81, 0xc8]);
    }
}

//! One X.509 certificate: [`Certificate`] owns the DER bytes and the facts read
//! from them once, at construction (names, serial, validity window, SANs, key
//! and signature algorithm, CA flag, self-signature).
//!
//! Owns: parsing a single DER certificate, RFC 4514 name rendering, name
//! matching against SANs ([`Certificate::covers_name`]) and checking one
//! signature against one issuer ([`Certificate::verify_signed_by`]).
//! Does not own: PEM text (see `bundle`), ordering or validating whole chains
//! (see `chain`), trust stores (see `anchors`), private keys (see `keys`), or
//! any expiry policy (callers pass `now` wherever time matters).

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use x509_parser::asn1_rs::Tag;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;
use x509_parser::x509::{AttributeTypeAndValue, SubjectPublicKeyInfo, X509Name};

/// Why bytes could not be read as an X.509 certificate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    /// No bytes at all.
    #[error("the certificate is empty (0 bytes) but a DER-encoded X.509 certificate was expected")]
    Empty,
    /// The DER did not parse as a certificate.
    #[error(
        "the data is not a valid X.509 certificate ({reason}); expected a DER-encoded X.509 certificate"
    )]
    Parse {
        /// What the parser reported.
        reason: String,
    },
    /// A certificate parsed, but bytes followed it.
    #[error(
        "the certificate is followed by {extra} unexpected bytes; expected exactly one DER-encoded X.509 certificate"
    )]
    TrailingData {
        /// How many bytes followed the certificate.
        extra: usize,
    },
    /// An extension we rely on is malformed or repeated.
    #[error(
        "the certificate's {extension} extension is malformed or repeated ({reason}); expected at most one well-formed {extension} extension"
    )]
    Extension {
        /// Which extension.
        extension: &'static str,
        /// What the parser reported.
        reason: String,
    },
}

/// The kind and size of a public key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub enum KeyKind {
    /// RSA with the modulus size in bits.
    Rsa {
        /// Modulus length in bits.
        bits: u32,
    },
    /// ECDSA on NIST P-256.
    EcdsaP256,
    /// ECDSA on NIST P-384.
    EcdsaP384,
    /// ECDSA on NIST P-521.
    EcdsaP521,
    /// Ed25519.
    Ed25519,
    /// Anything else, described by its algorithm OID (and curve OID for EC).
    Other(String),
}

impl KeyKind {
    /// The signature family this key signs with.
    pub fn family(&self) -> SignatureFamily {
        match self {
            KeyKind::Rsa { .. } => SignatureFamily::Rsa,
            KeyKind::EcdsaP256 | KeyKind::EcdsaP384 | KeyKind::EcdsaP521 => SignatureFamily::Ecdsa,
            KeyKind::Ed25519 => SignatureFamily::Ed25519,
            KeyKind::Other(s) => SignatureFamily::Other(s.clone()),
        }
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyKind::Rsa { bits } => write!(f, "RSA {bits}"),
            KeyKind::EcdsaP256 => f.write_str("ECDSA P-256"),
            KeyKind::EcdsaP384 => f.write_str("ECDSA P-384"),
            KeyKind::EcdsaP521 => f.write_str("ECDSA P-521"),
            KeyKind::Ed25519 => f.write_str("Ed25519"),
            KeyKind::Other(s) => write!(f, "other key ({s})"),
        }
    }
}

/// The family of a signature algorithm (ignoring the hash).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub enum SignatureFamily {
    /// RSA PKCS#1 v1.5 or RSA-PSS.
    Rsa,
    /// ECDSA with any hash.
    Ecdsa,
    /// Ed25519.
    Ed25519,
    /// Anything else, described by its OID.
    Other(String),
}

impl fmt::Display for SignatureFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignatureFamily::Rsa => f.write_str("RSA"),
            SignatureFamily::Ecdsa => f.write_str("ECDSA"),
            SignatureFamily::Ed25519 => f.write_str("Ed25519"),
            SignatureFamily::Other(s) => write!(f, "other ({s})"),
        }
    }
}

/// An X.509 certificate: its DER plus the facts read from it at construction.
///
/// Cheap to clone (shared), `Send + Sync`. Equality and hashing are by DER.
#[derive(Clone)]
pub struct Certificate {
    inner: Arc<Inner>,
}

struct Inner {
    der: Vec<u8>,
    subject: String,
    issuer: String,
    subject_raw: Vec<u8>,
    issuer_raw: Vec<u8>,
    subject_cmp: String,
    issuer_cmp: String,
    subject_cn: Option<String>,
    issuer_cn: Option<String>,
    serial_hex: String,
    fingerprint: String,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    version: u32,
    dns_names: Vec<String>,
    ip_addresses: Vec<IpAddr>,
    is_ca: bool,
    self_signed: bool,
    key_kind: KeyKind,
    signature_family: SignatureFamily,
    public_key: Vec<u8>,
}

impl Certificate {
    /// Parses one DER-encoded certificate; trailing bytes are an error.
    pub fn from_der(der: &[u8]) -> Result<Certificate, CertificateError> {
        let (cert, used) = Self::from_der_prefix(der)?;
        if used != der.len() {
            return Err(CertificateError::TrailingData {
                extra: der.len() - used,
            });
        }
        Ok(cert)
    }

    /// Parses the certificate at the start of `der`; returns it and how many
    /// bytes it used (for OpenSSL `TRUSTED CERTIFICATE` blocks, which append
    /// trust settings).
    pub(crate) fn from_der_prefix(der: &[u8]) -> Result<(Certificate, usize), CertificateError> {
        if der.is_empty() {
            return Err(CertificateError::Empty);
        }
        let (rest, x509) = X509Certificate::from_der(der).map_err(|e| CertificateError::Parse {
            reason: e.to_string(),
        })?;
        let used = der.len() - rest.len();
        let own = &der[..used];

        let ext_err = |extension: &'static str| {
            move |e: x509_parser::error::X509Error| CertificateError::Extension {
                extension,
                reason: e.to_string(),
            }
        };
        let mut dns_names = Vec::new();
        let mut ip_addresses = Vec::new();
        if let Some(san) = x509
            .subject_alternative_name()
            .map_err(ext_err("subjectAltName"))?
        {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(n) => dns_names.push((*n).to_string()),
                    GeneralName::IPAddress(bytes) => {
                        if let Some(ip) = ip_from_bytes(bytes) {
                            ip_addresses.push(ip);
                        }
                    }
                    _ => {}
                }
            }
        }
        let is_ca = x509
            .basic_constraints()
            .map_err(ext_err("basicConstraints"))?
            .is_some_and(|bc| bc.value.ca);

        let subject_raw = x509.subject().as_raw().to_vec();
        let issuer_raw = x509.issuer().as_raw().to_vec();
        let subject = rfc4514(x509.subject());
        let issuer = rfc4514(x509.issuer());
        let subject_cmp = normalise(&subject);
        let issuer_cmp = normalise(&issuer);
        let names_equal = subject_raw == issuer_raw || subject_cmp == issuer_cmp;
        let self_signed = names_equal && x509.verify_signature(None).is_ok();

        let inner = Inner {
            der: own.to_vec(),
            subject_cmp,
            issuer_cmp,
            subject_cn: common_name(x509.subject()),
            issuer_cn: common_name(x509.issuer()),
            subject,
            issuer,
            subject_raw,
            issuer_raw,
            serial_hex: serial_hex(x509.raw_serial()),
            fingerprint: hex::encode(Sha256::digest(own)),
            not_before: x509.validity().not_before.to_datetime(),
            not_after: x509.validity().not_after.to_datetime(),
            version: x509.version().0.saturating_add(1),
            dns_names,
            ip_addresses,
            is_ca,
            self_signed,
            key_kind: key_kind_of(x509.public_key()),
            signature_family: signature_family_of(
                &x509.signature_algorithm.algorithm.to_id_string(),
            ),
            public_key: x509.public_key().subject_public_key.data.to_vec(),
        };
        Ok((
            Certificate {
                inner: Arc::new(inner),
            },
            used,
        ))
    }

    /// The DER encoding.
    pub fn der(&self) -> &[u8] {
        &self.inner.der
    }

    /// PEM text (`-----BEGIN CERTIFICATE-----`, 64-column base64, `\n` line ends).
    pub fn to_pem(&self) -> String {
        pem::encode_config(
            &pem::Pem::new("CERTIFICATE", self.inner.der.clone()),
            pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
        )
    }

    /// Subject as an RFC 4514 string (most specific RDN first, e.g. `CN=YR1,O=Let's Encrypt,C=US`).
    pub fn subject(&self) -> &str {
        &self.inner.subject
    }

    /// Issuer as an RFC 4514 string.
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// The subject's common name (the most specific one if there are several).
    pub fn subject_cn(&self) -> Option<String> {
        self.inner.subject_cn.clone()
    }

    /// The issuer's common name.
    pub fn issuer_cn(&self) -> Option<String> {
        self.inner.issuer_cn.clone()
    }

    /// A short human name for messages: `CN=...` if there is a CN, else the whole subject.
    pub fn display_name(&self) -> String {
        // A leaf without a subject (Let's Encrypt's `tlsserver` profile has no CN) is best
        // named by its first DNS name.
        match (self.inner.subject.is_empty(), self.dns_names().first()) {
            (true, Some(name)) if self.inner.subject_cn.is_none() => format!("{name} (no CN)"),
            _ => name_for_display(self.inner.subject_cn.as_deref(), &self.inner.subject),
        }
    }

    /// A short human name of the issuer for messages.
    pub fn issuer_display_name(&self) -> String {
        name_for_display(self.inner.issuer_cn.as_deref(), &self.inner.issuer)
    }

    /// Serial number as lowercase hex without colons or DER sign padding.
    pub fn serial_hex(&self) -> &str {
        &self.inner.serial_hex
    }

    /// SHA-256 over the DER, lowercase hex.
    pub fn sha256_fingerprint(&self) -> &str {
        &self.inner.fingerprint
    }

    /// Start of the validity window.
    pub fn not_before(&self) -> OffsetDateTime {
        self.inner.not_before
    }

    /// End of the validity window.
    pub fn not_after(&self) -> OffsetDateTime {
        self.inner.not_after
    }

    /// Whether `now` lies inside the validity window (inclusive).
    pub fn is_valid_at(&self, now: OffsetDateTime) -> bool {
        self.inner.not_before <= now && now <= self.inner.not_after
    }

    /// X.509 version: 1, 2 or 3.
    pub fn version(&self) -> u32 {
        self.inner.version
    }

    /// DNS names from the subjectAltName extension, as written.
    pub fn dns_names(&self) -> &[String] {
        &self.inner.dns_names
    }

    /// IP addresses from the subjectAltName extension.
    pub fn ip_addresses(&self) -> &[IpAddr] {
        &self.inner.ip_addresses
    }

    /// basicConstraints CA:TRUE.
    pub fn is_ca(&self) -> bool {
        self.inner.is_ca
    }

    /// Subject equals issuer and the signature verifies with the certificate's own key.
    pub fn is_self_signed(&self) -> bool {
        self.inner.self_signed
    }

    /// Kind and size of the subject public key.
    pub fn key_kind(&self) -> KeyKind {
        self.inner.key_kind.clone()
    }

    /// Family of the algorithm the issuer signed this certificate with.
    pub fn signature_algorithm_family(&self) -> SignatureFamily {
        self.inner.signature_family.clone()
    }

    /// The subject public key bytes (the BIT STRING content of the SubjectPublicKeyInfo).
    pub fn public_key_bytes(&self) -> &[u8] {
        &self.inner.public_key
    }

    /// Whether `issuer`'s public key verifies this certificate's signature.
    /// Names are not compared; use [`Certificate::issued_by_name`] for that.
    /// Unsupported algorithms (e.g. ECDSA P-521) give `false`.
    pub fn verify_signed_by(&self, issuer: &Certificate) -> bool {
        let Ok((_, child)) = X509Certificate::from_der(&self.inner.der) else {
            return false;
        };
        let Ok((_, parent)) = X509Certificate::from_der(&issuer.inner.der) else {
            return false;
        };
        child.verify_signature(Some(parent.public_key())).is_ok()
    }

    /// Whether this certificate's issuer name equals `issuer`'s subject name
    /// (byte-equal DER, or equal after case/space folding of the RFC 4514 form).
    pub fn issued_by_name(&self, issuer: &Certificate) -> bool {
        self.inner.issuer_raw == issuer.inner.subject_raw
            || self.inner.issuer_cmp == issuer.inner.subject_cmp
    }

    /// Whether the subject name equals `other`'s subject name.
    pub fn same_subject(&self, other: &Certificate) -> bool {
        self.inner.subject_raw == other.inner.subject_raw
            || self.inner.subject_cmp == other.inner.subject_cmp
    }

    /// Whether the certificate is valid for `name`: a DNS name (case-insensitive,
    /// a trailing dot ignored, `*.` SANs match exactly one extra leftmost label)
    /// or an IP address (matched against IP SANs only; `[::1]` brackets allowed).
    /// The subject CN is not consulted, as modern TLS clients don't.
    pub fn covers_name(&self, name: &str) -> bool {
        let name = name.trim();
        let unbracketed = name
            .strip_prefix('[')
            .and_then(|n| n.strip_suffix(']'))
            .unwrap_or(name);
        if let Ok(ip) = unbracketed.parse::<IpAddr>() {
            return self.inner.ip_addresses.iter().any(|a| same_ip(*a, ip));
        }
        let wanted = fold_dns(name);
        if wanted.is_empty() {
            return false;
        }
        self.inner.dns_names.iter().any(|san| {
            let san = fold_dns(san);
            if san == wanted {
                return true;
            }
            match san.strip_prefix("*.") {
                Some(suffix) if !suffix.is_empty() => match wanted.split_once('.') {
                    Some((label, rest)) => !label.is_empty() && label != "*" && rest == suffix,
                    None => false,
                },
                _ => false,
            }
        })
    }
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field("subject", &self.inner.subject)
            .field("issuer", &self.inner.issuer)
            .field("serial", &self.inner.serial_hex)
            .field("not_after", &self.inner.not_after)
            .field("sha256", &self.inner.fingerprint)
            .finish()
    }
}

impl PartialEq for Certificate {
    fn eq(&self, other: &Self) -> bool {
        self.inner.der == other.inner.der
    }
}

impl Eq for Certificate {}

impl std::hash::Hash for Certificate {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.inner.der.hash(state);
    }
}

pub(crate) fn name_for_display(cn: Option<&str>, full: &str) -> String {
    match cn {
        Some(cn) => format!("CN={cn}"),
        None if full.is_empty() => "(empty name)".to_string(),
        None => full.to_string(),
    }
}

/// Lowercase, trailing dot removed.
fn fold_dns(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

fn same_ip(a: IpAddr, b: IpAddr) -> bool {
    a == b || a.to_canonical() == b.to_canonical()
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
        return Some(IpAddr::from(v4));
    }
    if let Ok(v6) = <[u8; 16]>::try_from(bytes) {
        return Some(IpAddr::from(v6));
    }
    None
}

fn serial_hex(raw: &[u8]) -> String {
    let first = raw.iter().position(|b| *b != 0).unwrap_or(raw.len());
    let trimmed = &raw[first..];
    if trimmed.is_empty() {
        "00".to_string()
    } else {
        hex::encode(trimmed)
    }
}

/// Case- and space-folded form of an RFC 4514 string, for name comparison.
fn normalise(rfc4514: &str) -> String {
    rfc4514
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

fn common_name(name: &X509Name<'_>) -> Option<String> {
    name.iter_common_name().last().map(attribute_value)
}

const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_EC: &str = "1.2.840.10045.2.1";
const OID_ED25519: &str = "1.3.101.112";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";
const OID_P521: &str = "1.3.132.0.35";

/// Kind of the key in a SubjectPublicKeyInfo.
pub(crate) fn key_kind_of(spki: &SubjectPublicKeyInfo<'_>) -> KeyKind {
    let alg = spki.algorithm.algorithm.to_id_string();
    match alg.as_str() {
        OID_RSA => match spki.parsed() {
            Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => KeyKind::Rsa {
                bits: modulus_bits(rsa.modulus),
            },
            _ => KeyKind::Other(format!("malformed RSA key ({alg})")),
        },
        OID_EC => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string());
            match curve.as_deref() {
                Some(OID_P256) => KeyKind::EcdsaP256,
                Some(OID_P384) => KeyKind::EcdsaP384,
                Some(OID_P521) => KeyKind::EcdsaP521,
                Some(other) => KeyKind::Other(format!("EC curve {other}")),
                None => KeyKind::Other("EC key without a named curve".to_string()),
            }
        }
        OID_ED25519 => KeyKind::Ed25519,
        _ => KeyKind::Other(alg),
    }
}

/// Exact bit length of a big-endian unsigned integer (leading zeros ignored).
fn modulus_bits(modulus: &[u8]) -> u32 {
    let first = modulus.iter().position(|b| *b != 0);
    match first {
        None => 0,
        Some(i) => {
            let rest = u32::try_from(modulus.len() - i - 1).unwrap_or(u32::MAX / 16);
            rest * 8 + (8 - modulus[i].leading_zeros())
        }
    }
}

fn signature_family_of(oid: &str) -> SignatureFamily {
    if oid.starts_with("1.2.840.113549.1.1.") || oid == "1.3.14.3.2.29" {
        SignatureFamily::Rsa
    } else if oid.starts_with("1.2.840.10045.4.") {
        SignatureFamily::Ecdsa
    } else if oid == OID_ED25519 {
        SignatureFamily::Ed25519
    } else {
        SignatureFamily::Other(oid.to_string())
    }
}

/// RFC 4514 rendering: RDNs in reverse order joined by `,`, multi-valued RDNs by `+`.
fn rfc4514(name: &X509Name<'_>) -> String {
    let rdns: Vec<String> = name
        .iter_rdn()
        .map(|rdn| {
            rdn.iter()
                .map(|atv| {
                    let oid = atv.attr_type().to_id_string();
                    match short_name(&oid) {
                        Some(short) => format!("{short}={}", escape_rfc4514(&attribute_value(atv))),
                        None => format!("{oid}=#{}", hex::encode(atv.as_slice())),
                    }
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    rdns.into_iter().rev().collect::<Vec<_>>().join(",")
}

fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "STREET",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.5" => "serialNumber",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        "1.2.840.113549.1.9.1" => "emailAddress",
        _ => return None,
    })
}

/// The attribute value as text: the common string types directly, BMPString
/// and UniversalString decoded, anything else as `#hex`.
fn attribute_value(atv: &AttributeTypeAndValue<'_>) -> String {
    if let Ok(s) = atv.as_str() {
        return s.to_string();
    }
    let data = atv.as_slice();
    match atv.attr_value().tag() {
        Tag::BmpString => {
            let units: Vec<u16> = data
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)]))
                .collect();
            String::from_utf16_lossy(&units)
        }
        Tag::UniversalString => data
            .chunks(4)
            .map(|c| {
                let mut b = [0u8; 4];
                b[..c.len()].copy_from_slice(c);
                char::from_u32(u32::from_be_bytes(b)).unwrap_or(char::REPLACEMENT_CHARACTER)
            })
            .collect(),
        Tag::TeletexString | Tag::VisibleString | Tag::GeneralString => {
            data.iter().map(|b| char::from(*b)).collect()
        }
        _ => format!("#{}", hex::encode(data)),
    }
}

fn escape_rfc4514(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let count = value.chars().count();
    for (i, c) in value.chars().enumerate() {
        let leading = i == 0 && (c == '#' || c == ' ');
        let trailing = i + 1 == count && c == ' ';
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\0' => out.push_str("\\00"),
            _ if leading || trailing => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::test_support::*;

    #[test]
    fn reads_the_facts_of_an_ecdsa_leaf() {
        let root = TestCa::root("Test Root", ecdsa_p256());
        let leaf_key = ecdsa_p384();
        let leaf = root.leaf(
            &["broker.example.test", "*.mqtt.example.test", "192.0.2.7"],
            &leaf_key,
        );

        assert_eq!(leaf.subject(), "CN=broker.example.test");
        assert_eq!(leaf.issuer(), "CN=Test Root,O=brokercert tests,C=US");
        assert_eq!(leaf.subject_cn().as_deref(), Some("broker.example.test"));
        assert_eq!(leaf.issuer_cn().as_deref(), Some("Test Root"));
        assert_eq!(leaf.version(), 3);
        assert!(!leaf.is_ca());
        assert!(!leaf.is_self_signed());
        assert_eq!(leaf.key_kind(), KeyKind::EcdsaP384);
        assert_eq!(leaf.signature_algorithm_family(), SignatureFamily::Ecdsa);
        assert_eq!(
            leaf.dns_names(),
            ["broker.example.test", "*.mqtt.example.test"]
        );
        assert_eq!(
            leaf.ip_addresses(),
            ["192.0.2.7".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(leaf.not_before(), LEAF_NOT_BEFORE);
        assert_eq!(leaf.not_after(), LEAF_NOT_AFTER);
        assert!(leaf.is_valid_at(NOW));
        assert!(!leaf.is_valid_at(LEAF_NOT_AFTER + time::Duration::seconds(1)));
        assert_eq!(leaf.sha256_fingerprint().len(), 64);
        assert_eq!(leaf.serial_hex(), "0badc0ffee");
        assert!(leaf.verify_signed_by(&root.cert));
        assert!(!root.cert.verify_signed_by(&leaf));

        assert!(root.cert.is_ca());
        assert!(root.cert.is_self_signed());
        assert_eq!(root.cert.key_kind(), KeyKind::EcdsaP256);
    }

    #[test]
    fn reads_rsa_key_size_and_signature_family() {
        let rsa = rsa_2048();
        let root = TestCa::root("RSA Root", rsa);
        assert_eq!(root.cert.key_kind(), KeyKind::Rsa { bits: 2048 });
        assert_eq!(root.cert.signature_algorithm_family(), SignatureFamily::Rsa);
        assert!(root.cert.is_self_signed());
    }

    #[test]
    fn covers_names_with_one_label_wildcards_and_ips() {
        let root = TestCa::root("Test Root", ecdsa_p256());
        let leaf = root.leaf(
            &[
                "broker.example.test",
                "*.mqtt.example.test",
                "2001:db8::1",
                "192.0.2.7",
            ],
            &ecdsa_p256(),
        );
        assert!(leaf.covers_name("broker.example.test"));
        assert!(leaf.covers_name("BROKER.Example.Test."));
        assert!(leaf.covers_name("eu1.mqtt.example.test"));
        assert!(leaf.covers_name("*.mqtt.example.test"));
        assert!(!leaf.covers_name("mqtt.example.test"));
        assert!(!leaf.covers_name("a.eu1.mqtt.example.test"));
        assert!(!leaf.covers_name("other.example.test"));
        assert!(!leaf.covers_name(""));
        assert!(leaf.covers_name("192.0.2.7"));
        assert!(leaf.covers_name("[2001:db8::1]"));
        assert!(leaf.covers_name("2001:db8:0::1"));
        assert!(!leaf.covers_name("192.0.2.8"));

        // The subject CN alone does not count: only SANs do.
        let mut params = leaf_params(&["san.example.test"]);
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CommonName, "cn-only.example.test");
        params.distinguished_name = dn;
        let cn_only = root.sign(&params, &ecdsa_p256());
        assert_eq!(
            cn_only.subject_cn().as_deref(),
            Some("cn-only.example.test")
        );
        assert!(!cn_only.covers_name("cn-only.example.test"));
        assert!(cn_only.covers_name("san.example.test"));
    }

    #[test]
    fn rejects_garbage_and_trailing_bytes() {
        assert_eq!(Certificate::from_der(&[]), Err(CertificateError::Empty));
        let err = Certificate::from_der(b"not a certificate").unwrap_err();
        assert!(matches!(err, CertificateError::Parse { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("expected a DER-encoded X.509 certificate")
        );

        let root = TestCa::root("Test Root", ecdsa_p256());
        let mut der = root.cert.der().to_vec();
        der.extend_from_slice(&[0, 0, 0]);
        assert_eq!(
            Certificate::from_der(&der),
            Err(CertificateError::TrailingData { extra: 3 })
        );
        let truncated = &root.cert.der()[..root.cert.der().len() - 10];
        assert!(Certificate::from_der(truncated).is_err());
    }

    #[test]
    fn pem_round_trip_uses_lf_and_debug_is_short() {
        let root = TestCa::root("Test Root", ecdsa_p256());
        let pem_text = root.cert.to_pem();
        assert!(pem_text.starts_with("-----BEGIN CERTIFICATE-----\n"));
        assert!(pem_text.ends_with("-----END CERTIFICATE-----\n"));
        assert!(!pem_text.contains('\r'));
        let back = pem::parse(&pem_text).unwrap();
        assert_eq!(Certificate::from_der(back.contents()).unwrap(), root.cert);
        let dbg = format!("{:?}", root.cert);
        assert!(dbg.contains("CN=Test Root") && dbg.len() < 400, "{dbg}");
    }

    #[test]
    fn renders_rfc4514_escapes_and_compares_names() {
        assert_eq!(escape_rfc4514("a,b+c"), "a\\,b\\+c");
        assert_eq!(escape_rfc4514(" #x "), "\\ #x\\ ");
        assert_eq!(serial_hex(&[0, 0x80, 1]), "8001");
        assert_eq!(serial_hex(&[0]), "00");
        assert_eq!(modulus_bits(&[0, 0x80, 0]), 16);
        assert_eq!(modulus_bits(&[0x7f, 0]), 15);
        assert_eq!(normalise("CN=Foo  Bar,O=X"), "cn=foo bar,o=x");
    }

    fn assert_send_sync<T: Send + Sync + Clone + fmt::Debug>() {}

    #[test]
    fn certificate_is_send_sync_clone_debug() {
        assert_send_sync::<Certificate>();
    }
}

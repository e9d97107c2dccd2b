//! The client CA: [`create_ca`] makes a self-signed CA certificate (what the
//! guide's `openssl req -x509 -newkey rsa:2048 -subj … -keyout client-ca.key
//! -out client-ca.crt` does), and [`ClientCa::from_parts`] accepts an existing
//! CA certificate and key (ours, or one made with the guide's openssl command)
//! after checking that they can sign client certificates.
//!
//! Owns: the CA's subject, extensions and validity, and what makes a
//! certificate + key usable as a client CA. Does not own: files (see `files`),
//! client certificates (see `issue`).

use std::fmt;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue, IsCa, KeyUsagePurpose,
};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::error::ClientPkiError;
use super::params::{random_serial, validity};
use crate::pki::{Certificate, PrivateKey};

/// The CA's common name unless `--cn` says otherwise.
pub const DEFAULT_CA_CN: &str = "brokercert client CA";
/// The CA's validity unless `--days` says otherwise (ten years).
pub const DEFAULT_CA_DAYS: u32 = 3650;

/// The CA's subject: `C=…, O=…, CN=…` (the guide's `-subj "/C=CN/O=…/CN=…"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaSubject {
    /// Common name (`--cn`).
    pub common_name: String,
    /// Organisation (`--org`).
    pub organization: Option<String>,
    /// Two-letter country code (`--country`).
    pub country: Option<String>,
}

impl Default for CaSubject {
    fn default() -> Self {
        CaSubject {
            common_name: DEFAULT_CA_CN.to_string(),
            organization: None,
            country: None,
        }
    }
}

impl CaSubject {
    /// Checks the fields (what [`create_ca`] would refuse), before a key is made.
    pub fn check(&self) -> Result<(), ClientPkiError> {
        self.distinguished_name().map(|_| ())
    }

    /// The distinguished name, in the order openssl writes `-subj`: C, O, CN.
    fn distinguished_name(&self) -> Result<DistinguishedName, ClientPkiError> {
        let mut dn = DistinguishedName::new();
        if let Some(country) = &self.country {
            let code = country.trim();
            if code.len() != 2 || !code.chars().all(|c| c.is_ascii_alphabetic()) {
                return Err(ClientPkiError::InvalidSubject {
                    flag: "--country",
                    value: country.clone(),
                    reason: "expected a two-letter ISO 3166 country code such as `US` or `DE`"
                        .to_string(),
                });
            }
            let printable = code
                .to_ascii_uppercase()
                .try_into()
                .map_err(|e: rcgen::Error| ClientPkiError::InvalidSubject {
                    flag: "--country",
                    value: country.clone(),
                    reason: e.to_string(),
                })?;
            dn.push(DnType::CountryName, DnValue::PrintableString(printable));
        }
        if let Some(org) = &self.organization {
            dn.push(DnType::OrganizationName, text_field("--org", org)?);
        }
        dn.push(DnType::CommonName, text_field("--cn", &self.common_name)?);
        Ok(dn)
    }
}

/// A subject field: 1 to 64 characters after trimming, no control characters.
fn text_field(flag: &'static str, value: &str) -> Result<String, ClientPkiError> {
    let refuse = |reason: &str| ClientPkiError::InvalidSubject {
        flag,
        value: value.to_string(),
        reason: reason.to_string(),
    };
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(refuse("it is empty; expected 1 to 64 characters"));
    }
    if trimmed.chars().count() > 64 {
        return Err(refuse("it is longer than the 64 characters X.509 allows"));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(refuse("it contains control characters"));
    }
    Ok(trimmed.to_string())
}

/// Why a certificate and key cannot serve as the client CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaProblem {
    /// basicConstraints is missing or CA:FALSE.
    NotCa {
        /// The certificate's subject.
        subject: String,
    },
    /// A keyUsage extension without keyCertSign.
    CannotSign {
        /// The certificate's subject.
        subject: String,
    },
    /// The extensions could not be read.
    Unreadable {
        /// What the parser said.
        reason: String,
    },
    /// The key is not the certificate's.
    KeyMismatch,
    /// `now` is outside the CA's validity.
    NotValidAt {
        /// Start of validity.
        not_before: OffsetDateTime,
        /// End of validity.
        not_after: OffsetDateTime,
        /// The time of the check.
        now: OffsetDateTime,
    },
}

impl fmt::Display for CaProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaProblem::NotCa { subject } => write!(
                f,
                "{subject} is not a CA certificate (basicConstraints CA:TRUE is missing); expected the certificate made by `brokercert client-ca create` or `openssl req -x509`, not a client or server certificate"
            ),
            CaProblem::CannotSign { subject } => write!(
                f,
                "{subject} has a keyUsage extension without keyCertSign, so TLS servers reject certificates it signs; create a new CA with `brokercert client-ca create`"
            ),
            CaProblem::Unreadable { reason } => {
                write!(f, "its extensions could not be read ({reason})")
            }
            CaProblem::KeyMismatch => f.write_str("the key does not belong to the certificate"),
            CaProblem::NotValidAt {
                not_before,
                not_after,
                now,
            } => {
                if now < not_before {
                    write!(
                        f,
                        "it is not valid yet (valid from {not_before} to {not_after}, now is {now}); check the system clock"
                    )
                } else {
                    write!(
                        f,
                        "it expired on {not_after}; create a new CA with `brokercert client-ca create`, deploy it, and issue new client certificates"
                    )
                }
            }
        }
    }
}

/// A client CA: its certificate and signing key. `Debug` shows no key material.
#[derive(Debug)]
pub struct ClientCa {
    cert: Certificate,
    key: PrivateKey,
}

impl ClientCa {
    /// Accepts `cert` and `key` as a client CA when the certificate is a CA
    /// (basicConstraints CA:TRUE), may sign certificates (no keyUsage, or one
    /// with keyCertSign) and certifies `key`. Validity is checked separately
    /// ([`ClientCa::check_valid_at`]).
    pub fn from_parts(cert: Certificate, key: PrivateKey) -> Result<ClientCa, CaProblem> {
        if !cert.is_ca() {
            return Err(CaProblem::NotCa {
                subject: cert.display_name(),
            });
        }
        let (_, x509) =
            X509Certificate::from_der(cert.der()).map_err(|e| CaProblem::Unreadable {
                reason: e.to_string(),
            })?;
        let usage = x509.key_usage().map_err(|e| CaProblem::Unreadable {
            reason: e.to_string(),
        })?;
        if usage.is_some_and(|ku| !ku.value.key_cert_sign()) {
            return Err(CaProblem::CannotSign {
                subject: cert.display_name(),
            });
        }
        if !key.matches_certificate(&cert) {
            return Err(CaProblem::KeyMismatch);
        }
        Ok(ClientCa { cert, key })
    }

    /// Whether `now` lies in the CA's validity window.
    pub fn check_valid_at(&self, now: OffsetDateTime) -> Result<(), CaProblem> {
        if self.cert.is_valid_at(now) {
            Ok(())
        } else {
            Err(CaProblem::NotValidAt {
                not_before: self.cert.not_before(),
                not_after: self.cert.not_after(),
                now,
            })
        }
    }

    /// The CA certificate.
    pub fn certificate(&self) -> &Certificate {
        &self.cert
    }

    /// The CA's private key (secret: written 0600, never printed).
    pub fn key(&self) -> &PrivateKey {
        &self.key
    }
}

/// A self-signed client CA for `key`: subject from `subject`, valid from `now`
/// (backdated by [`super::BACKDATE`]) for `days`, basicConstraints CA:TRUE with
/// pathlen 0 (it signs client certificates only), keyUsage keyCertSign, cRLSign
/// and digitalSignature, a subject key identifier and a random serial.
pub fn create_ca(
    subject: &CaSubject,
    key: PrivateKey,
    days: u32,
    now: OffsetDateTime,
) -> Result<ClientCa, ClientPkiError> {
    let (not_before, not_after) = validity(now, days)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = subject.distinguished_name()?;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = not_before;
    params.not_after = not_after;
    params.serial_number = Some(random_serial());
    let failed = |e: &dyn fmt::Display| ClientPkiError::Build {
        what: "client CA certificate",
        reason: e.to_string(),
    };
    let signed = params.self_signed(key.as_rcgen()).map_err(|e| failed(&e))?;
    let cert = Certificate::from_der(signed.der()).map_err(|e| failed(&e))?;
    ClientCa::from_parts(cert, key).map_err(|e| failed(&e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::test_support::{NOW, TestCa, ecdsa_p256, leaf_params};
    use crate::pki::{KeyKind, KeyType};
    use time::macros::datetime;
    use x509_parser::extensions::ParsedExtension;

    fn p256() -> PrivateKey {
        PrivateKey::generate(KeyType::EcdsaP256).unwrap()
    }

    #[test]
    fn the_ca_has_the_subject_extensions_and_validity_asked_for() {
        let subject = CaSubject {
            common_name: "Acme devices CA".into(),
            organization: Some("Acme, Inc.".into()),
            country: Some("de".into()),
        };
        let ca = create_ca(&subject, p256(), 3650, NOW).unwrap();
        let cert = ca.certificate();
        assert_eq!(cert.subject(), "CN=Acme devices CA,O=Acme\\, Inc.,C=DE");
        assert!(cert.is_ca() && cert.is_self_signed());
        assert_eq!(cert.not_before(), datetime!(2026-03-01 11:55 UTC));
        assert_eq!(cert.not_after(), datetime!(2036-02-27 12:00 UTC));
        assert_eq!(cert.key_kind(), KeyKind::EcdsaP256);
        assert!(ca.key().matches_certificate(cert));

        let (_, x509) = X509Certificate::from_der(cert.der()).unwrap();
        let bc = x509.basic_constraints().unwrap().unwrap();
        assert!(bc.critical && bc.value.ca);
        assert_eq!(bc.value.path_len_constraint, Some(0));
        let ku = x509.key_usage().unwrap().unwrap();
        assert!(ku.critical);
        assert!(ku.value.key_cert_sign() && ku.value.crl_sign() && ku.value.digital_signature());
        assert!(!ku.value.key_encipherment());
        assert!(x509.extensions().iter().any(|e| matches!(
            e.parsed_extension(),
            ParsedExtension::SubjectKeyIdentifier(_)
        )));
        // The country is a PrintableString, as RFC 5280 requires.
        let country = x509.subject().iter_country().next().unwrap();
        assert_eq!(
            country.attr_value().header.tag(),
            x509_parser::asn1_rs::Tag::PrintableString
        );
    }

    #[test]
    fn the_default_subject_is_the_brokercert_cn_alone() {
        let ca = create_ca(&CaSubject::default(), p256(), 1, NOW).unwrap();
        assert_eq!(ca.certificate().subject(), "CN=brokercert client CA");
        assert_eq!(
            ca.certificate().not_after(),
            datetime!(2026-03-02 12:00 UTC)
        );
    }

    #[test]
    fn bad_subject_fields_and_days_are_refused() {
        let with = |f: fn(&mut CaSubject)| {
            let mut s = CaSubject::default();
            f(&mut s);
            create_ca(&s, p256(), 10, NOW).unwrap_err()
        };
        let e = with(|s| s.country = Some("USA".into()));
        assert!(e.to_string().contains("--country"), "{e}");
        let e = with(|s| s.common_name = "  ".into());
        assert!(e.to_string().contains("--cn"), "{e}");
        let e = with(|s| s.organization = Some("x".repeat(65)));
        assert!(e.to_string().contains("--org"), "{e}");
        let e = with(|s| s.common_name = "a\nb".into());
        assert!(e.to_string().contains("control"), "{e}");
        let e = create_ca(&CaSubject::default(), p256(), 0, NOW).unwrap_err();
        assert!(matches!(e, ClientPkiError::InvalidDays { .. }), "{e}");
    }

    #[test]
    fn an_existing_ca_needs_a_ca_certificate_that_may_sign_and_its_own_key() {
        let ours = create_ca(&CaSubject::default(), p256(), 30, NOW).unwrap();
        let (cert, key) = (ours.certificate().clone(), ours.key().to_pem());
        let back = ClientCa::from_parts(cert.clone(), PrivateKey::from_pem(&key).unwrap());
        assert!(back.is_ok());

        // Someone else's CA (like the guide's openssl one) is fine too.
        let key = ecdsa_p256();
        let theirs = TestCa::root("EMQ CA", key);
        let their_key = PrivateKey::from_pem(theirs.key.serialize_pem()).unwrap();
        assert!(ClientCa::from_parts(theirs.cert.clone(), their_key).is_ok());

        assert_eq!(
            ClientCa::from_parts(cert.clone(), p256()).unwrap_err(),
            CaProblem::KeyMismatch
        );

        let leaf_key = p256();
        let leaf = theirs.sign(&leaf_params(&["device"]), leaf_key.as_rcgen());
        let e = ClientCa::from_parts(leaf, leaf_key).unwrap_err();
        assert!(matches!(e, CaProblem::NotCa { .. }), "{e}");
        assert!(e.to_string().contains("not a CA certificate"), "{e}");

        let mut params = leaf_params(&["ca-without-certsign"]);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let k = p256();
        let no_sign =
            Certificate::from_der(params.self_signed(k.as_rcgen()).unwrap().der()).unwrap();
        let e = ClientCa::from_parts(no_sign, k).unwrap_err();
        assert!(matches!(e, CaProblem::CannotSign { .. }), "{e}");
    }

    #[test]
    fn validity_is_checked_against_now() {
        let ca = create_ca(&CaSubject::default(), p256(), 30, NOW).unwrap();
        assert!(ca.check_valid_at(NOW).is_ok());
        let e = ca
            .check_valid_at(NOW + time::Duration::days(31))
            .unwrap_err();
        assert!(e.to_string().contains("expired"), "{e}");
        let e = ca
            .check_valid_at(NOW - time::Duration::days(1))
            .unwrap_err();
        assert!(e.to_string().contains("not valid yet"), "{e}");
    }
}

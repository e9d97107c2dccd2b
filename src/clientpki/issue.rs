//! [`issue_client_certificate`]: a client certificate signed by the client CA,
//! the guide's `openssl genrsa` + `openssl req -new -subj "/CN=…"` + `openssl
//! x509 -req -CA … -CAkey …` + `openssl verify`, in one step: the caller's fresh
//! key makes a CSR, the CA signs it, and the result is checked against the CA
//! before it is returned.
//!
//! Owns: the client certificate's contents (CN = the client name, keyUsage
//! digitalSignature, extendedKeyUsage clientAuth, CA:FALSE, key identifiers,
//! random serial, validity within the CA's). Does not own: files (see `files`),
//! the checks themselves (see `check`).

use rcgen::{
    CertificateParams, CertificateSigningRequestParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyUsagePurpose,
};
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;

use super::ca::ClientCa;
use super::check::check_client_certificate;
use super::error::ClientPkiError;
use super::name::ClientName;
use super::params::{random_serial, validity};
use crate::pki::{Certificate, PrivateKey};

/// A client certificate's validity unless `--days` says otherwise.
pub const DEFAULT_CLIENT_DAYS: u32 = 365;

/// A checked client certificate and its key. `Debug` shows no key material.
#[derive(Debug)]
pub struct ClientCertificate {
    /// The certificate.
    pub cert: Certificate,
    /// Its private key (secret: written 0600, never printed).
    pub key: PrivateKey,
    /// Whether the validity was cut short to end with the CA's.
    pub ends_with_ca: bool,
}

/// Signs a client certificate for `key` with `ca`: subject `CN=<name>`, valid
/// from `now` (backdated by [`super::BACKDATE`], never before the CA) for `days`
/// or until the CA expires, whichever is first. The result has passed
/// [`check_client_certificate`] at `now` and certifies `key`.
pub fn issue_client_certificate(
    ca: &ClientCa,
    name: &ClientName,
    key: PrivateKey,
    days: u32,
    now: OffsetDateTime,
) -> Result<ClientCertificate, ClientPkiError> {
    let ca_cert = ca.certificate();
    let refused = |reason: String| ClientPkiError::Verification {
        ca: ca_cert.display_name(),
        reason,
    };
    ca.check_valid_at(now)
        .map_err(|e| refused(format!("the CA cannot sign now: {e}")))?;
    let (not_before, wanted_until) = validity(now, days)?;
    let not_before = not_before.max(ca_cert.not_before());
    let not_after = wanted_until.min(ca_cert.not_after());

    let build = |what: &'static str| {
        move |e: rcgen::Error| ClientPkiError::Build {
            what,
            reason: e.to_string(),
        }
    };
    // The request, as `openssl req -new -key NAME.key -subj "/CN=NAME"` makes it.
    let mut request = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name.as_str());
    request.distinguished_name = dn;
    let csr = request
        .serialize_request(key.as_rcgen())
        .map_err(build("certificate signing request"))?;
    // Signing it, as `openssl x509 -req -CA client-ca.crt -CAkey client-ca.key`
    // does, with the extensions a TLS server expects of a client certificate.
    let mut signing = CertificateSigningRequestParams::from_der(csr.der())
        .map_err(build("client certificate"))?;
    let params = &mut signing.params;
    params.not_before = not_before;
    params.not_after = not_after;
    params.serial_number = Some(random_serial());
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    let issuer =
        Issuer::from_ca_cert_der(&CertificateDer::from(ca_cert.der()), ca.key().as_rcgen())
            .map_err(build("client certificate"))?;
    let signed = signing
        .signed_by(&issuer)
        .map_err(build("client certificate"))?;
    let cert = Certificate::from_der(signed.der()).map_err(|e| ClientPkiError::Build {
        what: "client certificate",
        reason: e.to_string(),
    })?;

    // `openssl verify -CAfile client-ca.crt NAME.crt`, before anything is written.
    check_client_certificate(&cert, ca_cert, now).map_err(refused)?;
    if !key.matches_certificate(&cert) {
        return Err(refused(
            "it does not certify the newly generated key".to_string(),
        ));
    }
    Ok(ClientCertificate {
        cert,
        key,
        ends_with_ca: not_after < wanted_until,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clientpki::ca::{CaSubject, create_ca};
    use crate::pki::test_support::{NOW, TestCa, ecdsa_p256, rsa_2048};
    use crate::pki::{KeyKind, KeyType};
    use time::macros::datetime;
    use x509_parser::prelude::{FromDer, X509Certificate};

    fn p256() -> PrivateKey {
        PrivateKey::generate(KeyType::EcdsaP256).unwrap()
    }

    fn name(n: &str) -> ClientName {
        ClientName::parse(n).unwrap()
    }

    #[test]
    fn the_client_certificate_is_for_client_auth_and_checked_against_the_ca() {
        let ca = create_ca(&CaSubject::default(), p256(), 3650, NOW).unwrap();
        let issued = issue_client_certificate(&ca, &name("sensor-01"), p256(), 365, NOW).unwrap();
        let cert = &issued.cert;
        assert_eq!(cert.subject(), "CN=sensor-01");
        assert_eq!(cert.issuer(), ca.certificate().subject());
        assert!(cert.dns_names().is_empty() && !cert.is_ca());
        assert_eq!(cert.not_before(), datetime!(2026-03-01 11:55 UTC));
        assert_eq!(cert.not_after(), datetime!(2027-03-01 12:00 UTC));
        assert!(!issued.ends_with_ca);
        assert!(issued.key.matches_certificate(cert));
        assert_eq!(cert.serial_hex().len(), 32);

        let (_, x509) = X509Certificate::from_der(cert.der()).unwrap();
        let ku = x509.key_usage().unwrap().unwrap().value;
        assert!(ku.digital_signature() && !ku.key_cert_sign() && !ku.key_encipherment());
        let eku = x509.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth);
        let bc = x509.basic_constraints().unwrap().unwrap().value;
        assert!(!bc.ca);
        // The authority key identifier names the CA's subject key identifier.
        use x509_parser::extensions::ParsedExtension;
        let ca_x509 = X509Certificate::from_der(ca.certificate().der()).unwrap().1;
        let ski = ca_x509
            .extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
                _ => None,
            })
            .unwrap();
        let aki = x509
            .extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::AuthorityKeyIdentifier(a) => {
                    a.key_identifier.as_ref().map(|k| k.0.to_vec())
                }
                _ => None,
            })
            .unwrap();
        assert_eq!(aki, ski);

        check_client_certificate(cert, ca.certificate(), NOW).unwrap();
        check_client_certificate(cert, ca.certificate(), NOW + time::Duration::days(364)).unwrap();
        assert!(
            check_client_certificate(cert, ca.certificate(), NOW + time::Duration::days(366))
                .is_err()
        );
    }

    #[test]
    fn validity_ends_with_the_ca() {
        let ca = create_ca(&CaSubject::default(), p256(), 30, NOW).unwrap();
        let issued = issue_client_certificate(&ca, &name("d"), p256(), 365, NOW).unwrap();
        assert!(issued.ends_with_ca);
        assert_eq!(issued.cert.not_after(), ca.certificate().not_after());
        assert_eq!(issued.cert.not_before(), ca.certificate().not_before());
    }

    #[test]
    fn an_expired_ca_does_not_sign() {
        let ca = create_ca(&CaSubject::default(), p256(), 30, NOW).unwrap();
        let later = NOW + time::Duration::days(40);
        let e = issue_client_certificate(&ca, &name("d"), p256(), 365, later).unwrap_err();
        assert!(matches!(e, ClientPkiError::Verification { .. }), "{e}");
        assert!(e.to_string().contains("expired"), "{e}");
    }

    #[test]
    fn a_foreign_rsa_ca_like_the_guides_signs_ecdsa_and_rsa_clients() {
        // The guide's CA: `-subj "/C=CN/O=EMQ Technologies Co., Ltd/CN=EMQ CA"`, RSA 2048.
        let theirs = TestCa::root("EMQ CA", rsa_2048());
        let key = PrivateKey::from_pem(theirs.key.serialize_pem()).unwrap();
        let ca = ClientCa::from_parts(theirs.cert.clone(), key).unwrap();
        let ec = issue_client_certificate(&ca, &name("client"), p256(), 365, NOW).unwrap();
        assert_eq!(ec.cert.issuer(), "CN=EMQ CA,O=brokercert tests,C=US");
        assert_eq!(ec.cert.key_kind(), KeyKind::EcdsaP256);
        let rsa_key = PrivateKey::from_pem(rsa_2048().serialize_pem()).unwrap();
        let rsa = issue_client_certificate(&ca, &name("client-rsa"), rsa_key, 365, NOW).unwrap();
        assert_eq!(rsa.cert.key_kind(), KeyKind::Rsa { bits: 2048 });
        // An ECDSA-keyed foreign CA too.
        let ec_ca = TestCa::root("EC CA", ecdsa_p256());
        let ec_key = PrivateKey::from_pem(ec_ca.key.serialize_pem()).unwrap();
        let ec_ca = ClientCa::from_parts(ec_ca.cert.clone(), ec_key).unwrap();
        issue_client_certificate(&ec_ca, &name("x"), p256(), 1, NOW).unwrap();
    }

    #[test]
    fn a_mismatched_ca_key_is_refused_before_signing() {
        let ca = create_ca(&CaSubject::default(), p256(), 30, NOW).unwrap();
        let e = ClientCa::from_parts(ca.certificate().clone(), p256()).unwrap_err();
        assert_eq!(e, crate::clientpki::CaProblem::KeyMismatch);
    }
}

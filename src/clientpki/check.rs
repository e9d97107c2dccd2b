//! [`check_client_certificate`]: whether a client certificate will be accepted
//! by a broker that trusts the client CA — the guide's `openssl verify -CAfile
//! client-ca.crt client.crt`, plus the uses a TLS server insists on.
//!
//! Owns: the checks (issuer name, signature, validity of both at `now`, the
//! certificate not outliving the CA, not a CA itself, keyUsage
//! digitalSignature, extendedKeyUsage clientAuth) and an independent second
//! opinion from rustls' webpki client verifier, the same code a rustls-based
//! broker runs. Does not own: making certificates (see `issue`).

use std::sync::Arc;

use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::{CertificateDer, UnixTime};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::pki::Certificate;

/// `Ok` when `cert` is a client certificate `ca` vouches for at `now`;
/// otherwise the first failed check, as a sentence.
pub fn check_client_certificate(
    cert: &Certificate,
    ca: &Certificate,
    now: OffsetDateTime,
) -> Result<(), String> {
    if !cert.issued_by_name(ca) {
        return Err(format!(
            "its issuer `{}` is not the CA's subject `{}`",
            cert.issuer(),
            ca.subject()
        ));
    }
    if !cert.verify_signed_by(ca) {
        return Err("its signature does not verify with the CA's public key".to_string());
    }
    if !ca.is_valid_at(now) {
        return Err(format!(
            "the CA is not valid at {now} (valid {} to {})",
            ca.not_before(),
            ca.not_after()
        ));
    }
    if !cert.is_valid_at(now) {
        return Err(format!(
            "it is not valid at {now} (valid {} to {})",
            cert.not_before(),
            cert.not_after()
        ));
    }
    if cert.not_after() > ca.not_after() {
        return Err(format!(
            "it ends {} after the CA does ({})",
            cert.not_after(),
            ca.not_after()
        ));
    }
    if cert.is_ca() {
        return Err("it is a CA certificate (basicConstraints CA:TRUE)".to_string());
    }
    let (_, x509) =
        X509Certificate::from_der(cert.der()).map_err(|e| format!("it cannot be parsed ({e})"))?;
    match x509.key_usage() {
        Ok(Some(ku)) if ku.value.digital_signature() => {}
        Ok(Some(_)) => return Err("its keyUsage lacks digitalSignature".to_string()),
        Ok(None) => return Err("it has no keyUsage extension".to_string()),
        Err(e) => return Err(format!("its keyUsage cannot be read ({e})")),
    }
    match x509.extended_key_usage() {
        Ok(Some(eku)) if eku.value.client_auth => {}
        Ok(Some(_)) => return Err("its extendedKeyUsage lacks clientAuth".to_string()),
        Ok(None) => return Err("it has no extendedKeyUsage extension".to_string()),
        Err(e) => return Err(format!("its extendedKeyUsage cannot be read ({e})")),
    }
    webpki_accepts(cert, ca, now)
}

/// rustls' client-certificate verifier with `ca` as the only trust anchor.
fn webpki_accepts(cert: &Certificate, ca: &Certificate, now: OffsetDateTime) -> Result<(), String> {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(ca.der().to_vec()))
        .map_err(|e| format!("rustls cannot use the CA as a trust anchor ({e})"))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| format!("rustls cannot build a client verifier ({e})"))?;
    let seconds = u64::try_from(now.unix_timestamp()).unwrap_or(0);
    verifier
        .verify_client_cert(
            &CertificateDer::from(cert.der().to_vec()),
            &[],
            UnixTime::since_unix_epoch(std::time::Duration::from_secs(seconds)),
        )
        .map(|_| ())
        .map_err(|e| format!("a TLS server (rustls/webpki) would reject it: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::test_support::{NOW, TestCa, ecdsa_p256, leaf_params};
    use rcgen::{ExtendedKeyUsagePurpose, KeyUsagePurpose};

    fn client_params() -> rcgen::CertificateParams {
        let mut p = leaf_params(&["device-1"]);
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        p
    }

    #[test]
    fn a_client_certificate_of_the_ca_passes() {
        let ca = TestCa::root("Client CA", ecdsa_p256());
        let cert = ca.sign(&client_params(), &ecdsa_p256());
        check_client_certificate(&cert, &ca.cert, NOW).unwrap();
    }

    #[test]
    fn each_failed_check_is_named() {
        let ca = TestCa::root("Client CA", ecdsa_p256());
        let other = TestCa::root("Other CA", ecdsa_p256());
        let good = ca.sign(&client_params(), &ecdsa_p256());
        let fails = |cert: &Certificate, ca: &Certificate, now, want: &str| {
            let e = check_client_certificate(cert, ca, now).unwrap_err();
            assert!(e.contains(want), "want {want:?}: {e}");
        };
        fails(&good, &other.cert, NOW, "is not the CA's subject");
        // Same subject name, different key: only the signature tells.
        let impostor = TestCa::root("Client CA", ecdsa_p256());
        fails(&good, &impostor.cert, NOW, "signature does not verify");
        fails(
            &good,
            &ca.cert,
            NOW + time::Duration::days(365),
            "not valid at",
        );

        let mut server = client_params();
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        fails(
            &ca.sign(&server, &ecdsa_p256()),
            &ca.cert,
            NOW,
            "lacks clientAuth",
        );
        let mut no_eku = client_params();
        no_eku.extended_key_usages.clear();
        fails(
            &ca.sign(&no_eku, &ecdsa_p256()),
            &ca.cert,
            NOW,
            "no extendedKeyUsage",
        );
        let mut enc_only = client_params();
        enc_only.key_usages = vec![KeyUsagePurpose::KeyEncipherment];
        fails(
            &ca.sign(&enc_only, &ecdsa_p256()),
            &ca.cert,
            NOW,
            "lacks digitalSignature",
        );
        let mut outliving = client_params();
        outliving.not_after = crate::pki::test_support::CA_NOT_AFTER + time::Duration::days(1);
        fails(
            &ca.sign(&outliving, &ecdsa_p256()),
            &ca.cert,
            NOW,
            "after the CA does",
        );
        let mut sub_ca = client_params();
        sub_ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        fails(
            &ca.sign(&sub_ca, &ecdsa_p256()),
            &ca.cert,
            NOW,
            "is a CA certificate",
        );
    }
}

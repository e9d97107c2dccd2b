//! HTTPS certificates for the sandbox's own servers (Pebble, the EMQX Cloud emulator): a
//! fresh little CA and a server certificate for `localhost`, 127.0.0.1 and ::1.
//!
//! Owns: generating them. Does not own serving them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

use super::{Result, SandboxError};

/// A CA (that clients trust) and a localhost server certificate it signed.
#[derive(Clone)]
pub struct LocalTls {
    /// The CA certificate (PEM).
    pub ca_pem: String,
    /// The server certificate (PEM).
    pub cert_pem: String,
    /// The server certificate (DER).
    pub cert_der: Vec<u8>,
    /// The server's private key (PKCS#8 PEM).
    pub key_pem: String,
    /// The server's private key (PKCS#8 DER).
    pub key_der: Vec<u8>,
}

impl std::fmt::Debug for LocalTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalTls").finish_non_exhaustive()
    }
}

impl LocalTls {
    /// Generates a CA named `ca_name` and a server certificate (ECDSA P-256).
    pub fn generate(ca_name: &str) -> Result<Self> {
        let cert_err = |what: &str, e: rcgen::Error| SandboxError::Cert(format!("{what}: {e}"));
        let ca_key = KeyPair::generate().map_err(|e| cert_err("CA key", e))?;
        let mut ca_params = CertificateParams::default();
        let mut ca_dn = DistinguishedName::new();
        ca_dn.push(DnType::CommonName, ca_name);
        ca_params.distinguished_name = ca_dn;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params
            .self_signed(&ca_key)
            .map_err(|e| cert_err("CA certificate", e))?;
        let issuer = Issuer::new(ca_params, ca_key);

        let key = KeyPair::generate().map_err(|e| cert_err("server key", e))?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "localhost");
        params.distinguished_name = dn;
        let localhost = "localhost"
            .try_into()
            .map_err(|e| cert_err("SAN localhost", e))?;
        params.subject_alt_names = vec![
            SanType::DnsName(localhost),
            SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            SanType::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        ];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params
            .signed_by(&key, &issuer)
            .map_err(|e| cert_err("server certificate", e))?;
        Ok(Self {
            ca_pem: ca_cert.pem(),
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
            key_pem: key.serialize_pem(),
            key_der: key.serialize_der(),
        })
    }
}

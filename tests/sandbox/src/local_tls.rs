//! HTTPS certificates for the sandbox's own servers (Pebble, the EMQX Cloud emulator, the
//! CONNECT proxy): a fresh little CA and a server certificate for `localhost`, 127.0.0.1
//! and ::1 (or for the names given), and the rustls server configuration serving them.
//!
//! Owns: generating them. Does not own listening or serving requests.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

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
    /// Generates a CA named `ca_name` and a server certificate (ECDSA P-256) for
    /// `localhost`, 127.0.0.1 and ::1.
    pub fn generate(ca_name: &str) -> Result<Self> {
        Self::generate_for(ca_name, "localhost", &[])
    }

    /// Generates a CA named `ca_name` and a server certificate (ECDSA P-256) named
    /// `common_name`: for `localhost`, 127.0.0.1 and ::1 when `dns_names` is empty, else
    /// for `dns_names` only.
    pub fn generate_for(ca_name: &str, common_name: &str, dns_names: &[&str]) -> Result<Self> {
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
        dn.push(DnType::CommonName, common_name);
        params.distinguished_name = dn;
        let dns_name = |name: &str| {
            name.try_into()
                .map(SanType::DnsName)
                .map_err(|e| cert_err(&format!("SAN {name}"), e))
        };
        params.subject_alt_names = if dns_names.is_empty() {
            vec![
                dns_name("localhost")?,
                SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                SanType::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST)),
            ]
        } else {
            dns_names
                .iter()
                .map(|n| dns_name(n))
                .collect::<Result<_>>()?
        };
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

    /// A rustls server configuration serving the server certificate, HTTP/1.1 only (ALPN).
    pub(crate) fn server_config(&self) -> Result<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| SandboxError::Cert(format!("TLS versions: {e}")))?
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(self.cert_der.clone())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone())),
            )
            .map_err(|e| SandboxError::Cert(format!("TLS server config: {e}")))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

//! The TLS side of the probe: which roots to trust, the client identity for
//! two-way TLS, and [`RecordingVerifier`], which delegates every decision to
//! rustls' strict `WebPkiServerVerifier` and only writes down the chain the
//! server presented (so a report can say which certificate is served, even
//! when verification fails).
//!
//! Owns: building rustls `ClientConfig`s (aws-lc-rs provider, default protocol
//! versions, chain + host-name verification always on).
//! Does not own: sockets, SNI choice (callers pass the host) or explaining
//! failures (see `error`). There is deliberately no way to turn verification off.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};

use super::error::VerifyError;
use super::presented::ServerCertificate;
use super::target::ProbeTarget;
use crate::pki::bundle::parse_bundle;
use crate::pki::keys::PrivateKey;

/// How long the system's roots, once read, serve every probe of the process.
const SYSTEM_ROOTS_TTL: Duration = Duration::from_secs(600);

/// The roots a probe trusts, and a phrase naming them for messages.
#[derive(Clone)]
pub(crate) struct Trust {
    roots: Arc<RootCertStore>,
    /// E.g. "the given CA file (1 certificate: CN=ISRG Root X1)".
    pub(crate) label: String,
    /// Whether the roots came from a CA file given by the user.
    pub(crate) from_ca_file: bool,
}

impl fmt::Debug for Trust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Trust")
            .field("roots", &self.roots.len())
            .field("label", &self.label)
            .finish()
    }
}

impl Trust {
    /// The roots of `target`: its CA file alone, or the system roots plus
    /// the bundled Mozilla roots.
    pub(crate) fn of(target: &ProbeTarget) -> Result<Trust, VerifyError> {
        match &target.ca_pem {
            Some(pem) => Trust::from_ca_pem(&target.host, pem),
            None => Ok(Trust::system()),
        }
    }

    fn from_ca_pem(host: &str, pem: &str) -> Result<Trust, VerifyError> {
        let invalid = |reason: String| VerifyError::InvalidCaFile {
            host: host.to_string(),
            reason,
        };
        let bundle = parse_bundle(pem.as_bytes()).map_err(|e| invalid(e.to_string()))?;
        if bundle.certificates.is_empty() {
            return Err(invalid("it holds no CERTIFICATE block".to_string()));
        }
        let mut roots = RootCertStore::empty();
        let mut names = Vec::new();
        for cert in &bundle.certificates {
            roots
                .add(CertificateDer::from(cert.der().to_vec()))
                .map_err(|e| {
                    invalid(format!(
                        "{} cannot be a trust anchor ({e})",
                        cert.display_name()
                    ))
                })?;
            names.push(cert.display_name());
        }
        Ok(Trust {
            roots: Arc::new(roots),
            label: format!(
                "the given CA file ({} certificate{}: {})",
                names.len(),
                if names.len() == 1 { "" } else { "s" },
                names.join(", ")
            ),
            from_ca_file: true,
        })
    }

    /// The bundled Mozilla roots and the system's, read at most once every
    /// [`SYSTEM_ROOTS_TTL`]: each verification of a fleet would otherwise read the system
    /// store's ~300 files again (10–20 ms of CPU each time), while a `schedule` daemon still
    /// sees an updated store within minutes.
    fn system() -> Trust {
        static CACHE: Mutex<Option<(Instant, Trust)>> = Mutex::new(None);
        let mut cache = CACHE.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((read_at, trust)) = cache.as_ref()
            && read_at.elapsed() < SYSTEM_ROOTS_TTL
        {
            return trust.clone();
        }
        let trust = Trust::read_system();
        *cache = Some((Instant::now(), trust.clone()));
        trust
    }

    fn read_system() -> Trust {
        let mut roots = RootCertStore::empty();
        roots.add_parsable_certificates(webpki_root_certs::TLS_SERVER_ROOT_CERTS.iter().cloned());
        let native = rustls_native_certs::load_native_certs();
        let (added, _) = roots.add_parsable_certificates(native.certs);
        if !native.errors.is_empty() {
            tracing::debug!(
                errors = native.errors.len(),
                "some system trust store entries could not be loaded"
            );
        }
        Trust {
            roots: Arc::new(roots),
            label: format!(
                "the bundled Mozilla roots and the system trust store ({added} system roots)"
            ),
            from_ca_file: false,
        }
    }
}

/// A client certificate chain and its key, ready for rustls. `Debug` hides the key.
pub(crate) struct ClientIdentity {
    chain: Vec<CertificateDer<'static>>,
    key_pkcs8: Vec<u8>,
}

impl fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("chain", &self.chain.len())
            .finish_non_exhaustive()
    }
}

impl ClientIdentity {
    /// The identity of `target`, or `None` for one-way TLS. Both halves are
    /// required together.
    pub(crate) fn of(target: &ProbeTarget) -> Result<Option<ClientIdentity>, VerifyError> {
        let invalid = |reason: String| VerifyError::InvalidClientIdentity { reason };
        let (cert_pem, key_pem) = match (&target.client_cert_pem, &target.client_key_pem) {
            (None, None) => return Ok(None),
            (Some(_), None) => {
                return Err(invalid(
                    "a client certificate was given without its private key".to_string(),
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "a client private key was given without its certificate".to_string(),
                ));
            }
            (Some(cert), Some(key)) => (cert, key),
        };
        let bundle = parse_bundle(cert_pem.as_bytes())
            .map_err(|e| invalid(format!("the client certificate: {e}")))?;
        let Some(leaf) = bundle.certificates.first() else {
            return Err(invalid(
                "the client certificate file holds no CERTIFICATE block".to_string(),
            ));
        };
        let key = PrivateKey::from_pem(key_pem.expose())
            .map_err(|e| invalid(format!("the client key: {e}")))?;
        if !key.matches_certificate(leaf) {
            return Err(invalid(format!(
                "the client key does not belong to the client certificate {}",
                leaf.display_name()
            )));
        }
        Ok(Some(ClientIdentity {
            chain: bundle
                .certificates
                .iter()
                .map(|c| CertificateDer::from(c.der().to_vec()))
                .collect(),
            key_pkcs8: key.pkcs8_der().to_vec(),
        }))
    }
}

/// The chain a server presented during one handshake, as seen by the verifier.
#[derive(Debug, Clone, Default)]
pub(crate) struct PresentedChain {
    inner: Arc<Mutex<Option<ServerCertificate>>>,
}

impl PresentedChain {
    fn record(&self, end_entity: &CertificateDer<'_>, intermediates: &[CertificateDer<'_>]) {
        let summary = ServerCertificate::from_der_chain(
            end_entity.as_ref(),
            intermediates.iter().map(|c| c.as_ref()),
        );
        let mut slot = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        *slot = Some(summary);
    }

    /// What was presented, if the handshake got that far.
    pub(crate) fn get(&self) -> Option<ServerCertificate> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Records the server's chain, then lets `WebPkiServerVerifier` decide.
#[derive(Debug)]
pub(crate) struct RecordingVerifier {
    inner: Arc<WebPkiServerVerifier>,
    seen: PresentedChain,
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.seen.record(end_entity, intermediates);
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A client configuration verifying against `trust`, presenting `identity`
/// when given, and the handle where the presented chain will be recorded.
pub(crate) fn client_config(
    trust: &Trust,
    identity: Option<&ClientIdentity>,
) -> Result<(Arc<ClientConfig>, PresentedChain), VerifyError> {
    let internal = |what: &str, e: &dyn fmt::Display| VerifyError::Internal {
        reason: format!("{what}: {e}"),
    };
    let provider = provider();
    let webpki = WebPkiServerVerifier::builder_with_provider(trust.roots.clone(), provider.clone())
        .build()
        .map_err(|e| internal("building the certificate verifier", &e))?;
    let seen = PresentedChain::default();
    let verifier = Arc::new(RecordingVerifier {
        inner: webpki,
        seen: seen.clone(),
    });
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| internal("choosing TLS versions", &e))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some(id) => builder
            .with_client_auth_cert(
                id.chain.clone(),
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(id.key_pkcs8.clone())),
            )
            .map_err(|e| VerifyError::InvalidClientIdentity {
                reason: format!("rustls refused the client certificate and key ({e})"),
            })?,
    };
    Ok((Arc::new(config), seen))
}

/// The TLS name for `host`: a DNS name (sent as SNI) or an IP address.
pub(crate) fn server_name(host: &str) -> Result<ServerName<'static>, VerifyError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(bare.to_string()).map_err(|e| VerifyError::InvalidHost {
        host: host.to_string(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_roots_are_read_once_for_every_probe_of_a_run() {
        let first = Trust::system();
        let second = Trust::system();
        assert!(
            Arc::ptr_eq(&first.roots, &second.roots),
            "the second probe reuses the roots the first read"
        );
        assert!(
            !first.roots.is_empty(),
            "at least the bundled Mozilla roots"
        );
        assert_eq!(first.label, second.label);
    }
}

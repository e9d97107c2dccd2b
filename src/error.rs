//! The library's top-level error and the process exit codes it maps to.
//!
//! Owns: `Error`, `ExitCode` numbers (documented in the README). Does not own: the
//! per-concern errors (`DnsError`, `AcmeError`, ...), which it wraps unchanged so their
//! one-paragraph messages reach the user as written.

use crate::acme::AcmeError;
use crate::config::ConfigError;
use crate::deploy::DeployError;
use crate::dns::DnsError;
use crate::pki::issued::CheckError;
use crate::store::StoreError;
use crate::verify::VerifyFailure;

/// Documented process exit codes.
pub mod exit {
    /// Everything worked.
    pub const OK: i32 = 0;
    /// An unexpected internal failure.
    pub const INTERNAL: i32 = 1;
    /// Bad usage or configuration: nothing was changed.
    pub const CONFIG: i32 = 2;
    /// The DNS provider refused or failed (zone not found, conflicting record, API error).
    pub const DNS: i32 = 3;
    /// A DNS record did not become visible on every authoritative nameserver in time.
    pub const PROPAGATION: i32 = 4;
    /// The ACME CA refused or failed (account, order, validation, finalisation).
    pub const ACME: i32 = 5;
    /// The issued or given certificate chain failed a check.
    pub const CERTIFICATE: i32 = 6;
    /// Reading or writing local state failed, or another command holds the state directory.
    pub const STORE: i32 = 7;
    /// Deployment to a target failed (the previous certificate stays where the target allows).
    pub const DEPLOY: i32 = 8;
    /// The MQTT-over-TLS verification failed.
    pub const VERIFY: i32 = 9;
    /// `doctor`: at least one check that issuance, deployment or verification needs fails.
    pub const DOCTOR: i32 = 10;
    /// Interrupted (Ctrl-C / SIGTERM); clean-up ran.
    pub const INTERRUPTED: i32 = 130;
}

/// Any failure of a brokercert operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Configuration or usage.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// DNS provider or lookups.
    #[error(transparent)]
    Dns(#[from] DnsError),
    /// ACME CA.
    #[error(transparent)]
    Acme(#[from] AcmeError),
    /// The certificate, chain or key failed a check.
    #[error(transparent)]
    Certificate(#[from] CheckError),
    /// Local storage.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Deployment.
    #[error(transparent)]
    Deploy(#[from] DeployError),
    /// Verification over MQTT.
    #[error(transparent)]
    Verify(#[from] VerifyFailure),
    /// The run was interrupted by a signal.
    #[error("interrupted: stopped at the user's request after cleaning up")]
    Interrupted,
    /// Something that should not happen.
    #[error("internal error: {0}")]
    Internal(String),
    /// A failure after which removing the run's DNS-01 values failed too. Keeps the
    /// original error's class (and exit code): a Route 53 outage is a DNS failure, not an
    /// internal one.
    #[error("{error} (stage: {stage}); also, clean-up failed: {cleanup}")]
    CleanupFailed {
        /// The original failure.
        error: Box<Error>,
        /// The stage it happened in.
        stage: String,
        /// What the clean-up could not do, and what to do about it.
        cleanup: String,
    },
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config(_) => exit::CONFIG,
            Error::Dns(DnsError::PropagationTimeout { .. }) => exit::PROPAGATION,
            Error::Dns(_) => exit::DNS,
            Error::Certificate(_) => exit::CERTIFICATE,
            Error::Acme(AcmeError::Setup(_) | AcmeError::TermsNotAgreed { .. }) => exit::CONFIG,
            Error::Acme(_) => exit::ACME,
            Error::Store(_) => exit::STORE,
            Error::Deploy(DeployError::Config { .. }) => exit::CONFIG,
            Error::Deploy(DeployError::Rejected { .. } | DeployError::Material { .. }) => {
                exit::CERTIFICATE
            }
            Error::Deploy(_) => exit::DEPLOY,
            Error::Verify(_) => exit::VERIFY,
            Error::Interrupted => exit::INTERRUPTED,
            Error::Internal(_) => exit::INTERNAL,
            Error::CleanupFailed { error, .. } => error.exit_code(),
        }
    }
}

#[cfg(test)]
mod typed_wrapper_tests {
    use super::*;
    use crate::pki::issued::CheckError;
    use crate::verify::VerifyFailure;

    #[test]
    fn certificate_and_verify_failures_keep_their_texts_and_exit_codes() {
        let e = Error::from(CheckError::WrongKey);
        assert_eq!(
            e.to_string(),
            "the CA issued a certificate for a different public key than our CSR's; nothing was stored"
        );
        assert_eq!(e.exit_code(), exit::CERTIFICATE);
        let e = Error::from(CheckError::KeyGeneration {
            key_type: "ecdsa-p256".into(),
            message: "no entropy".into(),
        });
        assert_eq!(
            e.to_string(),
            "cannot generate a ecdsa-p256 key: no entropy"
        );
        let e = Error::from(VerifyFailure::WrongSerial {
            url: "mqtts://b:8883".into(),
            serial: "01".into(),
            not_after: "2027-01-01T00:00:00Z".into(),
            expected: "02".into(),
        });
        assert_eq!(
            e.to_string(),
            "mqtts://b:8883 serves serial 01 (not after 2027-01-01T00:00:00Z), not the expected serial 02"
        );
        assert_eq!(e.exit_code(), exit::VERIFY);
        let e = Error::from(VerifyFailure::AfterDeploy("x failed".into()));
        assert_eq!(
            e.to_string(),
            "deployed, but the broker does not pass verification yet: x failed"
        );
        assert_eq!(e.exit_code(), exit::VERIFY);
    }
}

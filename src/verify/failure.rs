//! [`VerifyFailure`]: why a certificate did not pass verification (exit code 9) — a
//! transport failed, the broker served another serial, or the probe could not run.
//!
//! Owns: those failures' shapes and texts. Does not own the probe's own errors
//! ([`VerifyError`], wrapped unchanged) nor deciding what failed (`workflow::verify`).

use super::error::VerifyError;
use super::target::Transport;

/// A verification that did not pass.
#[derive(Debug, thiserror::Error)]
pub enum VerifyFailure {
    /// The probe could not run.
    #[error(transparent)]
    Probe(#[from] VerifyError),
    /// One transport failed.
    #[error("{transport} failed: {error}")]
    Transport {
        /// Which.
        transport: Transport,
        /// Why.
        error: VerifyError,
    },
    /// The broker served a certificate with another serial than expected.
    #[error(
        "{url} serves serial {serial} (not after {not_after}), not the expected serial {expected}"
    )]
    WrongSerial {
        /// Where.
        url: String,
        /// What it served.
        serial: String,
        /// Its expiry, as text.
        not_after: String,
        /// What was expected.
        expected: String,
    },
    /// A deployment went through but the broker did not pass verification (yet).
    #[error("deployed, but the broker does not pass verification yet: {0}")]
    AfterDeploy(String),
}

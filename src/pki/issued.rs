//! [`CheckError`]: why a certificate, chain or key a run made or was given cannot be used
//! (exit code 6). The messages say what was found and what to do.
//!
//! Owns: those failures' shapes and texts. Does not own the checks (`workflow::issue`,
//! `renew::policy`), nor the chain's own errors ([`ChainError`], wrapped unchanged).

use std::path::PathBuf;

use time::OffsetDateTime;

use super::chain::ChainError;

/// A certificate, chain or key failed a check.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The key a journal kept for an interrupted issuance does not parse.
    #[error("the key an interrupted run saved in its journal is unreadable: {0}")]
    JournalKey(String),
    /// A new key could not be made.
    #[error("cannot generate a {key_type} key: {message}")]
    KeyGeneration {
        /// The key type.
        key_type: String,
        /// Why.
        message: String,
    },
    /// The CSR could not be built.
    #[error("cannot build the CSR: {0}")]
    Csr(String),
    /// The CA's chain does not parse.
    #[error("the CA sent an unreadable certificate chain: {0}")]
    UnreadableChain(String),
    /// The chain does not split or verify.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The issued certificate is for another key.
    #[error(
        "the CA issued a certificate for a different public key than our CSR's; nothing was stored"
    )]
    WrongKey,
    /// The issued certificate lacks a requested name.
    #[error(
        "the issued certificate does not cover `{name}` (it names {names}); nothing was stored"
    )]
    NameMissing {
        /// The requested name.
        name: String,
        /// The names it has, comma-separated.
        names: String,
    },
    /// The issued certificate is outside its validity now.
    #[error(
        "the issued certificate is not valid now (valid {not_before} to {not_after}); check this machine's clock"
    )]
    NotValidNow {
        /// Its start.
        not_before: OffsetDateTime,
        /// Its end.
        not_after: OffsetDateTime,
    },
    /// `reuse_key` asks for a stored key that cannot be used.
    #[error(
        "`reuse_key` is set for `{name}` but its stored key {} cannot be used: {why}. Restore \
         the current certificate's key there, or run with `--new-key` to make a new key \
         this once (devices that pin the old public key will then need the new one)",
        path.display()
    )]
    StoredKeyUnusable {
        /// The certificate.
        name: String,
        /// The key file.
        path: PathBuf,
        /// Why not.
        why: String,
    },
    /// No certificate of the CA's lifetime could ever be imported by a target.
    #[error(
        "the CA issues certificates valid {lifetime_days} days, but a deployment target of `{name}` refuses certificates with {min_days_left} days or fewer left (`min_days_left`), so a renewed certificate could never be uploaded. Check the provider's current import rule and lower `min_days_left` in `[[certificate.deploy]]`, or choose a CA or profile with a longer lifetime"
    )]
    ImportImpossible {
        /// The certificate.
        name: String,
        /// The lifetime the CA issues.
        lifetime_days: i64,
        /// The target's refusal window.
        min_days_left: i64,
    },
}

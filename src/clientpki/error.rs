//! [`ClientPkiError`]: why a client CA could not be created or a client
//! certificate not issued, as one paragraph naming the file or flag and the fix,
//! plus the documented exit code of each case.
//!
//! Owns: wording and exit codes of client-PKI failures. Does not own: detecting
//! them (see `ca`, `check`, `files`).

use std::path::PathBuf;

use crate::error::exit;
use crate::pki::KeyError;

/// Any failure of `client-ca create` or `client-cert issue`. Nothing was written
/// when one of these is returned, except [`ClientPkiError::NotUndone`], which says
/// what is left changed.
#[derive(Debug, thiserror::Error)]
pub enum ClientPkiError {
    /// `--cn` of a client certificate is not a safe file name.
    #[error(
        "the client name {name:?} cannot be used ({reason}); `--cn` names the files NAME.crt and NAME.key, so it must be 1 to 64 letters, digits, `.`, `_` or `-`, not starting with `.` or `-`, e.g. `--cn sensor-01`"
    )]
    InvalidName {
        /// What was given.
        name: String,
        /// Why it is refused.
        reason: String,
    },
    /// A subject flag of the CA has a bad value.
    #[error("`{flag}` {value:?} cannot be used: {reason}")]
    InvalidSubject {
        /// The flag (`--cn`, `--org`, `--country`).
        flag: &'static str,
        /// What was given.
        value: String,
        /// Why, and what is expected.
        reason: String,
    },
    /// `--days` out of range.
    #[error("`--days {days}` is out of range; expected 1 to {max} days")]
    InvalidDays {
        /// What was given.
        days: u32,
        /// The maximum.
        max: u32,
    },
    /// `client-ca create` would replace an existing CA.
    #[error(
        "{} already exists{also}; refusing to replace an existing client CA: its key would be lost, and the client certificates it signed stop working once the new CA is deployed. Choose another `--out` directory, or pass `--force` to replace it",
        path.display()
    )]
    CaExists {
        /// The existing key (or certificate).
        path: PathBuf,
        /// `" (and …)"` naming the other existing file, or empty.
        also: String,
    },
    /// `client-cert issue` would replace a file of the output directory that
    /// holds something else than what it would write.
    #[error(
        "{} already exists and holds {found}, not {wanted}; refusing to replace it: `--out` may be another client CA's directory or another client's. Choose another `--out` directory, or pass `--force` to replace it",
        path.display()
    )]
    WouldReplace {
        /// The existing file.
        path: PathBuf,
        /// What it holds.
        found: String,
        /// What would be written.
        wanted: String,
    },
    /// A path that must be a directory is something else.
    #[error("{} exists but is not a directory; `{flag}` takes a directory", path.display())]
    NotADirectory {
        /// The path.
        path: PathBuf,
        /// The flag that gave it.
        flag: &'static str,
    },
    /// A file that must be read is missing or unreadable.
    #[error("cannot read {what} {}: {source}. {fix}", path.display())]
    Read {
        /// What the file is (e.g. "the client CA key").
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
        /// What to do.
        fix: String,
    },
    /// The CA key file could not be used.
    #[error("the client CA key {} cannot be used: {source}", path.display())]
    CaKey {
        /// The key file.
        path: PathBuf,
        /// Why.
        source: KeyError,
    },
    /// The CA certificate file is not a usable CA certificate.
    #[error("{} is not a usable client CA certificate: {reason}", path.display())]
    CaCertificate {
        /// The certificate file.
        path: PathBuf,
        /// Why, and what is expected.
        reason: String,
    },
    /// The CA key does not belong to the CA certificate.
    #[error(
        "the key {} does not belong to the certificate {} (their public keys differ); put the CA certificate and the key it was made with side by side as client-ca.crt and client-ca.key",
        key.display(),
        cert.display()
    )]
    CaKeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// The `--server-root` file is not a root certificate.
    #[error(
        "the server root {} cannot be used: {reason}; `--server-root` takes the broker's root certificate, e.g. live/<name>/root.pem of the state directory",
        path.display()
    )]
    ServerRoot {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Generating a key failed.
    #[error("{0}")]
    Generate(KeyError),
    /// rcgen could not build or sign a certificate.
    #[error("building the {what} failed ({reason})")]
    Build {
        /// What was being built.
        what: &'static str,
        /// What rcgen said.
        reason: String,
    },
    /// The freshly made certificate failed the check against its CA.
    #[error(
        "the new client certificate failed the check against the client CA {ca}: {reason}; nothing was written"
    )]
    Verification {
        /// The CA, for the message.
        ca: String,
        /// What failed.
        reason: String,
    },
    /// Writing failed.
    #[error("cannot {action} {}: {source}. Check that the directory exists and is writable; nothing was written", path.display())]
    Write {
        /// What was being done.
        action: &'static str,
        /// Where.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Writing failed part-way, and a file already replaced or created could not
    /// be undone.
    #[error("cannot {action} {}: {source}. Putting back the files already written failed too: {undo}", path.display())]
    NotUndone {
        /// What was being done.
        action: &'static str,
        /// Where.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
        /// Each file left changed, and how to put it back.
        undo: String,
    },
}

impl ClientPkiError {
    /// The process exit code: 2 for usage (flags, missing or encrypted files),
    /// 6 for a certificate or key that fails a check, 7 for writing, 1 for
    /// failures of the crypto backend.
    pub fn exit_code(&self) -> i32 {
        match self {
            ClientPkiError::InvalidName { .. }
            | ClientPkiError::InvalidSubject { .. }
            | ClientPkiError::InvalidDays { .. }
            | ClientPkiError::CaExists { .. }
            | ClientPkiError::WouldReplace { .. }
            | ClientPkiError::NotADirectory { .. }
            | ClientPkiError::Read { .. } => exit::CONFIG,
            ClientPkiError::CaKey {
                source: KeyError::Encrypted { .. },
                ..
            } => exit::CONFIG,
            ClientPkiError::CaKey { .. }
            | ClientPkiError::CaCertificate { .. }
            | ClientPkiError::CaKeyMismatch { .. }
            | ClientPkiError::ServerRoot { .. }
            | ClientPkiError::Verification { .. } => exit::CERTIFICATE,
            ClientPkiError::Write { .. } | ClientPkiError::NotUndone { .. } => exit::STORE,
            ClientPkiError::Generate(_) | ClientPkiError::Build { .. } => exit::INTERNAL,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::PrivateKeyFormat;

    #[test]
    fn exit_codes_follow_the_documented_table() {
        let name = ClientPkiError::InvalidName {
            name: "a b".into(),
            reason: "space".into(),
        };
        assert_eq!(name.exit_code(), exit::CONFIG);
        let encrypted = ClientPkiError::CaKey {
            path: "ca/client-ca.key".into(),
            source: KeyError::Encrypted {
                block: 1,
                format: PrivateKeyFormat::EncryptedPkcs8,
            },
        };
        assert_eq!(encrypted.exit_code(), exit::CONFIG);
        assert!(encrypted.to_string().contains("ca/client-ca.key"));
        let mismatch = ClientPkiError::CaKeyMismatch {
            cert: "ca/client-ca.crt".into(),
            key: "ca/client-ca.key".into(),
        };
        assert_eq!(mismatch.exit_code(), exit::CERTIFICATE);
        let exists = ClientPkiError::CaExists {
            path: "ca/client-ca.key".into(),
            also: String::new(),
        };
        assert_eq!(exists.exit_code(), exit::CONFIG);
        let text = exists.to_string();
        assert!(
            text.contains("ca/client-ca.key") && text.contains("--force"),
            "{text}"
        );
    }
}

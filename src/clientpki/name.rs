//! [`ClientName`]: the `--cn` of a client certificate, which is also the stem of
//! its file names (`NAME.crt`, `NAME.key`), so it must be a safe file name.
//!
//! Owns: what a client name may contain, and the fixed file names it must not take (the
//! CA's, the broker root's). Does not own: the files themselves (see `files`).

use std::fmt;

use super::error::ClientPkiError;

/// The CA certificate in a CA directory (and its copy in a client directory).
pub const CA_CERT_FILE: &str = "client-ca.crt";
/// The CA key in a CA directory.
pub const CA_KEY_FILE: &str = "client-ca.key";
/// The broker's root certificate copied into a client directory.
pub const SERVER_ROOT_FILE: &str = "root.pem";

/// The longest name: X.509's upper bound for a common name.
pub const MAX_NAME_LEN: usize = 64;

/// A client name: 1 to 64 ASCII letters, digits, `.`, `_` or `-`, not starting
/// with `.` (hidden file, `..`) or `-` (read as a flag by shells' tools), and not
/// `client-ca` (whose files are the CA's).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientName(String);

impl ClientName {
    /// Checks `name`.
    pub fn parse(name: &str) -> Result<ClientName, ClientPkiError> {
        let refuse = |reason: &str| ClientPkiError::InvalidName {
            name: name.to_string(),
            reason: reason.to_string(),
        };
        if name.is_empty() {
            return Err(refuse("it is empty"));
        }
        if name.len() > MAX_NAME_LEN {
            return Err(refuse(&format!(
                "it is {} characters long, more than {MAX_NAME_LEN}",
                name.len()
            )));
        }
        if let Some(bad) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            return Err(refuse(&format!("it contains {bad:?}")));
        }
        if name.starts_with('.') || name.starts_with('-') {
            return Err(refuse("it starts with `.` or `-`"));
        }
        let ca_stem = CA_CERT_FILE.trim_end_matches(".crt");
        if name.eq_ignore_ascii_case(ca_stem) {
            return Err(refuse(
                "its files would be the client CA's own client-ca.crt and client-ca.key",
            ));
        }
        Ok(ClientName(name.to_string()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_safe_file_names() {
        for ok in ["sensor-01", "Device_7", "a", "gw.site-1", &"x".repeat(64)] {
            assert_eq!(ClientName::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn refuses_unsafe_names_with_the_reason() {
        for (bad, why) in [
            ("", "empty"),
            ("../etc/passwd", "'/'"),
            ("a b", "' '"),
            ("dev/1", "'/'"),
            (".hidden", "starts with"),
            ("..", "starts with"),
            ("-rf", "starts with"),
            ("bücher", "'ü'"),
            ("client-ca", "client CA"),
            ("Client-CA", "client CA"),
        ] {
            let err = ClientName::parse(bad).unwrap_err();
            let text = err.to_string();
            assert!(text.contains(why), "{bad:?}: {text}");
            assert!(text.contains("--cn"), "{text}");
        }
        let long = "x".repeat(65);
        assert!(
            ClientName::parse(&long)
                .unwrap_err()
                .to_string()
                .contains("65 characters")
        );
    }
}

//! A private client CA for two-way TLS: Let's Encrypt no longer issues
//! client-authentication certificates, so brokers that require client
//! certificates (EMQX Cloud `tls = "two-way"`, Mosquitto `require_certificate`)
//! trust a CA of the user's own. This module replaces the guide's openssl steps
//! (`openssl req -x509 …`, `genrsa`, `req -new`, `x509 -req`, `verify`).
//!
//! Owns: the CA's and the client certificates' contents ([`ca`], [`issue`]),
//! checking a client certificate against its CA ([`check`]), the file names and
//! modes in a CA directory and a client directory ([`files`]), writing a set of
//! files all-or-nothing ([`staged`]), safe client names ([`name`]), serials and
//! validity windows ([`params`]) and the errors ([`error`]). Functions that need the time take `now`; nothing here reads a
//! clock. Does not own: deploying the CA to a broker (see `deploy`), the command
//! line (see `cli::client_pki`).

pub mod ca;
pub mod check;
pub mod error;
pub mod files;
pub mod issue;
pub mod name;
pub mod params;
pub mod staged;

pub use ca::{CaProblem, CaSubject, ClientCa, create_ca};
pub use check::check_client_certificate;
pub use error::ClientPkiError;
pub use files::{CA_CERT_FILE, CA_KEY_FILE, ClientFiles, SERVER_ROOT_FILE};
pub use issue::{ClientCertificate, issue_client_certificate};
pub use name::ClientName;
pub use params::{BACKDATE, MAX_DAYS};

//! Making a private client CA for two-way TLS (`client-ca create`, and `init` when asked):
//! refuse what can be refused before the key is made, make the key and the self-signed
//! certificate, write both files.
//!
//! Owns: that sequence and its summary text. Does not own the CA's contents or the file
//! modes (`clientpki`), nor the flags (`cli::client_pki`).

use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use crate::clientpki::files::{CaFiles, refuse_existing_ca, write_ca};
use crate::clientpki::{CaSubject, ClientPkiError, create_ca};
use crate::pki::{Certificate, KeyType, PrivateKey};

/// What client CA to make, and where.
#[derive(Debug, Clone)]
pub struct ClientCaOptions {
    /// Directory for client-ca.crt and client-ca.key (created 0700 if missing).
    pub out: PathBuf,
    /// Key type.
    pub key_type: KeyType,
    /// The CA's common name.
    pub cn: String,
    /// The CA's organisation (O=).
    pub org: Option<String>,
    /// The CA's two-letter country code (C=).
    pub country: Option<String>,
    /// Validity in days.
    pub days: u32,
    /// Replace an existing client CA in `out`.
    pub force: bool,
}

impl ClientCaOptions {
    /// The defaults of `client-ca create --out DIR`.
    pub fn in_dir(out: PathBuf) -> Self {
        Self {
            out,
            key_type: KeyType::Rsa2048,
            cn: crate::clientpki::ca::DEFAULT_CA_CN.to_string(),
            org: None,
            country: None,
            days: crate::clientpki::ca::DEFAULT_CA_DAYS,
            force: false,
        }
    }
}

/// `client-ca create` (also offered by `init` for two-way TLS); returns the summary.
pub fn create(args: &ClientCaOptions, now: OffsetDateTime) -> Result<String, ClientPkiError> {
    let subject = CaSubject {
        common_name: args.cn.clone(),
        organization: args.org.clone(),
        country: args.country.clone(),
    };
    // Everything that can be refused is refused before the (slow, for RSA) key is made.
    subject.check()?;
    let existing = refuse_existing_ca(&args.out);
    let replacing = existing.is_err();
    if !args.force {
        existing?;
    }
    let key = PrivateKey::generate(args.key_type).map_err(ClientPkiError::Generate)?;
    let ca = create_ca(&subject, key, args.days, now)?;
    let files = write_ca(&args.out, &ca, args.force)?;
    Ok(ca_summary(
        &absolute(&args.out),
        &files,
        ca.certificate(),
        replacing,
    ))
}

fn ca_summary(dir: &Path, files: &CaFiles, cert: &Certificate, replaced: bool) -> String {
    let cert_path = dir.join(files.cert.file_name().unwrap_or_default());
    let key_path = dir.join(files.key.file_name().unwrap_or_default());
    let mut out = format!(
        "Created client CA `{}` ({}, valid until {})\n  certificate  {} (0644): the broker's client CA\n  private key  {} (0600): keep it secret; it signs client certificates\n  serial       {}\n  SHA-256      {}\n",
        cert.display_name(),
        cert.key_kind(),
        date(cert.not_after()),
        cert_path.display(),
        key_path.display(),
        cert.serial_hex(),
        cert.sha256_fingerprint(),
    );
    if replaced {
        out.push_str("  replaced     the previous client CA: certificates it signed no longer verify against this one\n");
    }
    out.push_str(&format!(
        "To require client certificates, set `client_ca = \"{}\"` in the `[[certificate.deploy]]` section with `tls = \"two-way\"` (a `files` target copies it with `client_ca_source`), then issue one per client:\n  brokercert client-cert issue --ca {} --cn NAME --out DIR\n",
        cert_path.display(),
        dir.display(),
    ));
    out
}

/// A time to the second, in UTC (the summaries' dates).
pub fn date(t: OffsetDateTime) -> String {
    let fmt =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    t.format(&fmt).unwrap_or_else(|_| t.to_string())
}

/// `path` made absolute (not resolving symlinks), for messages and configuration hints.
pub fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

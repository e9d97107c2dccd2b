//! `brokercert client-ca create` and `brokercert client-cert issue`: a private
//! client CA for two-way TLS and client certificates signed by it, replacing the
//! guide's openssl steps. Flags, the time (`SystemClock`), and what is printed;
//! the work is in `crate::clientpki`.
//!
//! Keys and passwords are never taken from the command line, and no key
//! material is ever printed.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use time::OffsetDateTime;

use super::{Cli, output};
use crate::clientpki::ca::{DEFAULT_CA_CN, DEFAULT_CA_DAYS};
use crate::clientpki::files::{
    CaFiles, ClientFiles, load_ca, loose_key_mode, read_server_root, write_client,
};
use crate::clientpki::issue::DEFAULT_CLIENT_DAYS;
use crate::clientpki::{ClientName, ClientPkiError, MAX_DAYS, issue_client_certificate};
use crate::clock::{Clock, SystemClock};
use crate::error::exit;
use crate::pki::{Certificate, KeyType, PrivateKey};
use crate::workflow::client_ca::{ClientCaOptions, absolute, create, date};

/// `client-ca …`.
#[derive(Debug, Subcommand)]
pub enum ClientCaCommand {
    /// Create a self-signed client CA: DIR/client-ca.crt (0644) and DIR/client-ca.key (0600).
    Create(ClientCaCreateArgs),
}

/// Flags of `client-ca create`.
#[derive(Debug, Args)]
pub struct ClientCaCreateArgs {
    /// Directory for client-ca.crt and client-ca.key (created 0700 if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Key type: rsa2048 (default), rsa3072, rsa4096, ecdsa-p256, ecdsa-p384.
    #[arg(long, value_name = "TYPE", default_value = "rsa2048")]
    pub key_type: KeyType,
    /// The CA's common name.
    #[arg(long, value_name = "NAME", default_value = DEFAULT_CA_CN)]
    pub cn: String,
    /// The CA's organisation (O=).
    #[arg(long, value_name = "O")]
    pub org: Option<String>,
    /// The CA's two-letter country code (C=).
    #[arg(long, value_name = "CC")]
    pub country: Option<String>,
    /// Validity in days.
    #[arg(long, default_value_t = DEFAULT_CA_DAYS, value_parser = days())]
    pub days: u32,
    /// Replace an existing client CA in DIR (its client certificates stop working).
    #[arg(long)]
    pub force: bool,
}

/// `client-cert …`.
#[derive(Debug, Subcommand)]
pub enum ClientCertCommand {
    /// Issue a client certificate signed by the client CA: OUT/NAME.crt, OUT/NAME.key (0600)
    /// and a copy of client-ca.crt (and of the broker's root with --server-root).
    Issue(ClientCertIssueArgs),
}

/// Flags of `client-cert issue`.
#[derive(Debug, Args)]
pub struct ClientCertIssueArgs {
    /// Directory of the client CA (client-ca.crt and client-ca.key).
    #[arg(long, value_name = "DIR")]
    pub ca: PathBuf,
    /// Client name: the certificate's CN and the file names (letters, digits, `.`, `_`, `-`).
    #[arg(long, value_name = "NAME")]
    pub cn: String,
    /// Directory for the client's files (created 0700 if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Validity in days (never beyond the CA's).
    #[arg(long, default_value_t = DEFAULT_CLIENT_DAYS, value_parser = days())]
    pub days: u32,
    /// Key type: rsa2048 (default), rsa3072, rsa4096, ecdsa-p256, ecdsa-p384.
    #[arg(long, value_name = "TYPE", default_value = "rsa2048")]
    pub key_type: KeyType,
    /// The broker's root certificate, copied as OUT/root.pem for the clients' CA file
    /// (e.g. live/<name>/root.pem of the state directory).
    #[arg(long, value_name = "FILE")]
    pub server_root: Option<PathBuf>,
    /// Replace a client-ca.crt or root.pem in OUT that holds another certificate
    /// (e.g. when OUT is another client CA's directory).
    #[arg(long)]
    pub force: bool,
}

fn days() -> clap::builder::RangedI64ValueParser<u32> {
    clap::value_parser!(u32).range(1..=i64::from(MAX_DAYS))
}

/// Runs `client-ca …`; returns the exit code.
pub fn run_client_ca(_cli: &Cli, command: &ClientCaCommand) -> i32 {
    let ClientCaCommand::Create(args) = command;
    let opts = ClientCaOptions {
        out: args.out.clone(),
        key_type: args.key_type,
        cn: args.cn.clone(),
        org: args.org.clone(),
        country: args.country.clone(),
        days: args.days,
        force: args.force,
    };
    match create(&opts, SystemClock.now()) {
        Ok(summary) => {
            super::output::say(summary.trim_end_matches('\n'));
            exit::OK
        }
        Err(e) => fail(&e),
    }
}

/// Runs `client-cert …`; returns the exit code.
pub fn run_client_cert(cli: &Cli, command: &ClientCertCommand) -> i32 {
    let ClientCertCommand::Issue(args) = command;
    match issue(args, SystemClock.now(), cli.quiet) {
        Ok(summary) => {
            super::output::say(summary.trim_end_matches('\n'));
            exit::OK
        }
        Err(e) => fail(&e),
    }
}

fn fail(e: &ClientPkiError) -> i32 {
    output::error(&e.to_string());
    e.exit_code()
}

fn issue(
    args: &ClientCertIssueArgs,
    now: OffsetDateTime,
    quiet: bool,
) -> Result<String, ClientPkiError> {
    let name = ClientName::parse(&args.cn)?;
    let ca = load_ca(&args.ca, now)?;
    if let Some(mode) = loose_key_mode(&CaFiles::in_dir(&args.ca).key) {
        output::warning(&format!(
            "the client CA key {} has mode {mode:04o}: anyone who can read it can make client certificates your broker accepts; run `chmod 600` on it",
            CaFiles::in_dir(&args.ca).key.display()
        ));
    }
    let server_root = args
        .server_root
        .as_deref()
        .map(read_server_root)
        .transpose()?;
    let key = PrivateKey::generate(args.key_type).map_err(ClientPkiError::Generate)?;
    let issued = issue_client_certificate(&ca, &name, key, args.days, now)?;
    let replacing = ClientFiles::in_dir(&args.out, &name, false).cert.exists();
    let files = write_client(
        &args.out,
        &name,
        &issued,
        ca.certificate(),
        server_root.as_deref(),
        args.force,
    )?;
    if issued.ends_with_ca && !quiet {
        output::warning(&format!(
            "the certificate ends on {}, with the client CA, sooner than the {} days asked for",
            date(issued.cert.not_after()),
            args.days
        ));
    }
    Ok(client_summary(
        &absolute(&args.out),
        &files,
        &issued.cert,
        ca.certificate(),
        now,
        replacing,
    ))
}

fn client_summary(
    dir: &Path,
    files: &ClientFiles,
    cert: &Certificate,
    ca: &Certificate,
    now: OffsetDateTime,
    replaced: bool,
) -> String {
    let at = |p: &Path| dir.join(p.file_name().unwrap_or_default());
    let (crt, key) = (at(&files.cert), at(&files.key));
    let name = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let mut listed = vec![
        crt.display().to_string(),
        format!("{} (0600)", name(&key)),
        name(&files.ca_cert),
    ];
    let cafile = match &files.server_root {
        Some(root) => {
            listed.push(name(root));
            at(root).display().to_string()
        }
        None => "ROOT.pem".to_string(),
    };
    let mut out = format!(
        "Issued client certificate `{}`, signed by `{}`\n  serial       {}\n  not after    {} ({} days left)\n  key          {}\n  files        {}\n",
        cert.display_name(),
        ca.display_name(),
        cert.serial_hex(),
        date(cert.not_after()),
        (cert.not_after() - now.replace_nanosecond(0).unwrap_or(now)).whole_days(),
        cert.key_kind(),
        listed.join(", "),
    );
    if replaced {
        out.push_str("  replaced     the previous certificate and key of this name\n");
    }
    out.push_str(&format!(
        "Connect with the certificate and key (MQTTX: CA file, client certificate file, client key file):\n  mosquitto_pub -h BROKER -p 8883 --cafile {cafile} --cert {} --key {} -t test -m hello\n",
        crt.display(),
        key.display(),
    ));
    if files.server_root.is_none() {
        out.push_str("  where ROOT.pem is the broker's root certificate (e.g. live/<name>/root.pem of the state directory; `--server-root FILE` copies it here)\n");
    }
    out.push_str(&format!(
        "For `brokercert verify`, set `client_cert = \"{}\"` and `client_key = \"{}\"` in `[certificate.verify]`.\n",
        crt.display(),
        key.display(),
    ));
    out
}

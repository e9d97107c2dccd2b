//! The command line: argument definitions, logging set-up, and dispatch to the commands.
//!
//! Owns: flags, environment variables, exit codes and how errors are printed (one
//! paragraph, `error:` first). Does not own any workflow logic.

mod check;
mod client_pki;
mod common;
mod completions;
mod deploy;
mod doctor;
mod iam_policy;
mod init;
mod interrupt;
mod issue;
mod man;
mod output;
mod plan;
pub mod progress_display;
pub mod render;
mod renew;
mod schedule;
mod split;
mod state_backend;
mod status;
mod verify;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::Overrides;
use crate::error::exit;

/// The exit codes (`crate::error::exit`), as `--help` and the manual page list them.
pub const EXIT_CODES: &[(i32, &str)] = &[
    (exit::OK, "everything worked (also: nothing was due)"),
    (exit::INTERNAL, "an unexpected internal failure"),
    (
        exit::CONFIG,
        "bad usage or configuration: nothing was changed",
    ),
    (exit::DNS, "the DNS provider (Route 53) refused or failed"),
    (
        exit::PROPAGATION,
        "a DNS record did not reach every nameserver in time",
    ),
    (exit::ACME, "the ACME CA refused or failed"),
    (exit::CERTIFICATE, "the certificate or chain failed a check"),
    (
        exit::STORE,
        "local state unreadable or unwritable, or another command holds it",
    ),
    (
        exit::DEPLOY,
        "deployment failed (the previous certificate stays served)",
    ),
    (exit::VERIFY, "the MQTT-over-TLS verification failed"),
    (
        exit::INTERRUPTED,
        "interrupted (Ctrl-C or SIGTERM); clean-up ran",
    ),
];

fn exit_codes_help() -> String {
    let mut t = String::from("Exit codes:\n");
    for (code, what) in EXIT_CODES {
        t.push_str(&format!("  {code:>3}  {what}\n"));
    }
    t
}

/// Let's Encrypt certificates for MQTT brokers: Route 53 DNS-01, deploy, verify.
#[derive(Debug, Parser)]
#[command(name = "brokercert", version = env!("BROKERCERT_VERSION"), about, long_about = None, after_help = exit_codes_help())]
pub struct Cli {
    /// Configuration file (TOML). Without it: $BROKERCERT_CONFIG, else ./brokercert.toml,
    /// else /etc/brokercert/brokercert.toml (root) or
    /// $XDG_CONFIG_HOME/brokercert/brokercert.toml (~/.config/…); `-v` says which is used.
    /// Also accepted after the name of every command that reads a configuration.
    #[arg(long, short = 'c', env = "BROKERCERT_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// State directory (certificates, account). Also accepted after the name of every
    /// command that reads one.
    #[arg(long, env = "BROKERCERT_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// More log output (-v info, -vv debug, -vvv trace).
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors and the final summary.
    #[arg(long, short = 'q', global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Obtain a certificate through Route 53 DNS-01, store it, then deploy and verify it.
    Issue(Box<IssueArgs>),
    /// Deploy the stored certificate (or a certbot lineage with --from) to its targets.
    Deploy(DeployArgs),
    /// Remove the TLS configuration from the certificate's targets.
    Remove(RemoveArgs),
    /// Prove the broker serves the certificate: MQTT round trips over mqtts and wss.
    Verify(VerifyArgs),
    /// Split a PEM bundle into cert.pem (leaf), chain.pem (intermediates) and root.pem.
    Split(split::SplitArgs),
    /// Private client CA for two-way TLS (Let's Encrypt issues no client certificates).
    #[command(subcommand)]
    ClientCa(client_pki::ClientCaCommand),
    /// Client certificates signed by the private client CA.
    #[command(subcommand)]
    ClientCert(client_pki::ClientCertCommand),
    /// Check a certificate (certbot lineage, live directory or files) against import rules.
    Check(CheckArgs),
    /// Renew every configured certificate that is due, then deploy and verify it (hourly-safe).
    Renew(renew::RenewArgs),
    /// Run as a daemon: sleep until the next certificate is due, renew it, repeat.
    Schedule(schedule::ScheduleArgs),
    /// Print the least-privilege Route 53 IAM policy for the configured certificates.
    IamPolicy(iam_policy::IamPolicyArgs),
    /// One table of every configured certificate: expiry, next renewal and why, what each
    /// deployment serves now, the last run's result.
    Status(status::StatusArgs),
    /// Print every DNS change, ACME call and deployment call `issue` would make; change nothing.
    Plan(plan::PlanArgs),
    /// Check from this machine everything a first issuance needs (AWS, DNS, CA, deployment
    /// targets, MQTT ports); order and deploy nothing. Exit code 10 when a needed check fails.
    Doctor(doctor::DoctorArgs),
    /// Write a commented brokercert.toml from flags (or questions on a terminal).
    Init(init::InitArgs),
    /// Print the shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(completions::CompletionsArgs),
    /// Print the manual page (roff), e.g. `brokercert man | man -l -`.
    Man(man::ManArgs),
}

/// Flags of `check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// A certbot lineage or brokercert live directory, the files (certificate, chain, key),
    /// or the name of a configured certificate (its stored files).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// A name the certificate must cover (repeatable).
    #[arg(long = "domain", short = 'd', value_name = "NAME")]
    pub domains: Vec<String>,
    /// Take the names from this configured certificate.
    #[arg(long, short = 'n')]
    pub name: Option<String>,
    /// Target profile: emqx-cloud (default) or files.
    #[arg(long, default_value = "emqx-cloud")]
    pub profile: String,
    /// Override the profile's import window (days of validity that must remain).
    #[arg(long, value_name = "DAYS")]
    pub min_days_left: Option<i64>,
    /// Machine-readable output: one JSON object per line (docs/json.md).
    #[arg(long)]
    pub json: bool,
}

/// The certificate a command works on: `NAME` or `--name NAME` (the same), optional when the
/// configuration has one certificate.
#[derive(Debug, Args, Clone, Default)]
pub struct NameArg {
    /// Certificate name (a `[[certificate]]` of the configuration); optional when only one
    /// is configured.
    #[arg(value_name = "NAME")]
    pub positional: Option<String>,
    /// The same as NAME.
    #[arg(
        long = "name",
        short = 'n',
        value_name = "NAME",
        conflicts_with = "positional"
    )]
    pub flag: Option<String>,
}

impl NameArg {
    /// The name given, either way.
    pub fn get(&self) -> Option<&str> {
        self.positional.as_deref().or(self.flag.as_deref())
    }
}

/// Flags of `verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Certificate name.
    #[command(flatten)]
    pub name: NameArg,
    /// Connect to this IP address instead of resolving the host (like curl's --resolve).
    #[arg(long, value_name = "IP")]
    pub connect: Option<std::net::IpAddr>,
    /// Expect the broker to serve this serial (hex) instead of the stored certificate.
    #[arg(long, value_name = "HEX", value_parser = parse_serial)]
    pub expect_serial: Option<String>,
    /// Machine-readable output: one JSON object per line (docs/json.md).
    #[arg(long)]
    pub json: bool,
}

/// Flags of `deploy`.
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// Certificate name (a `[[certificate]]` of the configuration).
    #[command(flatten)]
    pub name: NameArg,
    /// Deploy the files in this directory instead of the stored ones (a certbot lineage such as
    /// /etc/letsencrypt/live/NAME, or a brokercert live directory).
    #[arg(long, value_name = "DIR")]
    pub from: Option<PathBuf>,
    /// Skip the MQTT verification after deploying.
    #[arg(long)]
    pub no_verify: bool,
    /// Print the time the deployment took and the API requests it spent (EMQX Cloud allows
    /// 60 reads and 6 writes an hour).
    #[arg(long)]
    pub timings: bool,
    /// Wait this long for another brokercert command working on the same state directory
    /// (default: exit at once with code 7).
    #[arg(long, value_name = "DURATION", value_parser = crate::bounds::parse)]
    pub wait: Option<std::time::Duration>,
}

/// Flags of `remove`.
#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// Certificate name.
    #[command(flatten)]
    pub name: NameArg,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Wait this long for another brokercert command working on the same state directory
    /// (default: exit at once with code 7).
    #[arg(long, value_name = "DURATION", value_parser = crate::bounds::parse)]
    pub wait: Option<std::time::Duration>,
}

/// Flags of `issue` (each overrides the configuration file).
#[derive(Debug, Args)]
pub struct IssueArgs {
    /// Certificate name (selects a `[[certificate]]`, or names one defined by `--domain`).
    #[arg(long, short = 'n')]
    pub name: Option<String>,
    /// The same as `--name` (as `deploy NAME` and `verify NAME` take it).
    #[arg(value_name = "NAME", conflicts_with = "name")]
    pub name_positional: Option<String>,
    /// A name the certificate covers (repeatable; the first is the broker's custom domain).
    #[arg(long = "domain", short = 'd', value_name = "NAME")]
    pub domains: Vec<String>,
    /// The deployment's connection address the custom domain should be a CNAME to.
    #[arg(long, value_name = "HOST")]
    pub cname_target: Option<String>,
    /// Route 53 hosted zone id to use instead of discovery.
    #[arg(long, value_name = "ID")]
    pub hosted_zone_id: Option<String>,
    /// Key type: rsa2048 (default), rsa3072, rsa4096, ecdsa-p256, ecdsa-p384.
    #[arg(long, value_name = "TYPE")]
    pub key_type: Option<String>,
    /// Keep the stored certificate's key (for devices that pin it); see `reuse_key`.
    #[arg(long, conflicts_with = "new_key")]
    pub reuse_key: bool,
    /// Make a new key this run even if `reuse_key` is set (e.g. after a key compromise).
    #[arg(long)]
    pub new_key: bool,
    /// ACME directory: letsencrypt, letsencrypt-staging, or a URL.
    #[arg(long, env = "BROKERCERT_DIRECTORY", value_name = "URL")]
    pub directory: Option<String>,
    /// Contact e-mail for the ACME account.
    #[arg(long, env = "BROKERCERT_EMAIL")]
    pub email: Option<String>,
    /// Agree to the CA's terms of service (needed once, when the account is created).
    #[arg(long)]
    pub agree_tos: bool,
    /// Test only: extra root certificate (PEM) trusted for the CA's own HTTPS, added to the
    /// system's (a test CA such as Pebble; repeatable). Verification is never switched off.
    #[arg(long = "acme-root", value_name = "FILE")]
    pub acme_roots: Vec<PathBuf>,
    /// External Account Binding key id (the HMAC comes from BROKERCERT_EAB_HMAC or a file).
    #[arg(long, value_name = "KID")]
    pub eab_kid: Option<String>,
    /// Prefer the chain whose top certificate is issued by this common name.
    #[arg(long, value_name = "CN")]
    pub preferred_chain: Option<String>,
    /// Certificate profile to order, as the CA's directory lists them (Let's Encrypt:
    /// classic, tlsserver, shortlived); default: the CA's.
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// Route 53 API endpoint (an emulator); default: AWS.
    #[arg(long, value_name = "URL")]
    pub route53_endpoint: Option<String>,
    /// Ask this nameserver (IP[:PORT]) instead of the zone's own (repeatable).
    #[arg(long = "nameserver", value_name = "ADDR")]
    pub nameservers: Vec<String>,
    /// How long to wait for every nameserver to serve the TXT values (e.g. 2m).
    #[arg(long, value_name = "DURATION", value_parser = crate::bounds::parse)]
    pub propagation_timeout: Option<std::time::Duration>,
    /// Extra trust anchor (PEM) for finding the chain's root (repeatable).
    #[arg(long = "trust-root", value_name = "FILE")]
    pub trust_roots: Vec<PathBuf>,
    /// Replace a different record at the custom domain.
    #[arg(long)]
    pub force: bool,
    /// Order a new certificate even when the stored one covers the same names, key type and
    /// CA and is not due for renewal (by default `issue` keeps it, deploys it where it is not
    /// served yet, and verifies).
    #[arg(long)]
    pub force_renewal: bool,
    /// Print the time each stage took.
    #[arg(long)]
    pub timings: bool,
    /// Machine-readable output: one JSON object per certificate and line (docs/json.md).
    #[arg(long)]
    pub json: bool,
    /// Change nothing: print every DNS change, ACME call and deployment call the run would
    /// make (the same as `brokercert plan`).
    #[arg(long)]
    pub dry_run: bool,
    /// Wait this long for another brokercert command working on the same state directory
    /// (default: exit at once with code 7).
    #[arg(long, value_name = "DURATION", value_parser = crate::bounds::parse)]
    pub wait: Option<std::time::Duration>,
}

impl IssueArgs {
    fn overrides(&self, state_dir: Option<PathBuf>) -> Overrides {
        Overrides {
            state_dir,
            directory: self.directory.clone(),
            email: self.email.clone(),
            agree_tos: self.agree_tos,
            https_roots: self.acme_roots.clone(),
            eab_kid: self.eab_kid.clone(),
            preferred_chain: self.preferred_chain.clone(),
            profile: self.profile.clone(),
            route53_endpoint: self.route53_endpoint.clone(),
            nameservers: self.nameservers.clone(),
            propagation_timeout: self.propagation_timeout,
            extra_roots: self.trust_roots.clone(),
            name: self.name.clone().or(self.name_positional.clone()),
            domains: self.domains.clone(),
            cname_target: self.cname_target.clone(),
            hosted_zone_id: self.hosted_zone_id.clone(),
            key_type: self.key_type.clone(),
            reuse_key: self.reuse_key,
            ..Default::default()
        }
    }
}

/// Crates whose trace output can hold secrets: raw headers (EMQX Cloud's HTTP Basic
/// credentials), request bodies (certificate keys) or MQTT packets (passwords). Their events
/// are capped at debug whatever `-vvv` or `BROKERCERT_LOG` asks for (see `init_logging`).
const LOG_CAPPED: &[&str] = &[
    "hyper",
    "hyper_util",
    "h2",
    "reqwest",
    "rustls",
    "tokio_rustls",
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_smithy_http_client",
    "aws_sigv4",
    "aws_config",
    "instant_acme",
    "rumqttc",
    "tungstenite",
    "async_tungstenite",
    "axum",
];

fn init_logging(verbose: u8, quiet: bool) {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::prelude::*;
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (_, 0) => "warn",
        (_, 1) => "brokercert=info",
        (_, 2) => "brokercert=debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("BROKERCERT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // The cap is a second filter on the output layer, so an event must pass both: it lowers
    // trace to debug for these crates and never raises anything the first filter left out.
    let caps = LOG_CAPPED.iter().fold(
        Targets::new().with_default(LevelFilter::TRACE),
        |t, name| t.with_target(*name, LevelFilter::DEBUG),
    );
    use std::io::IsTerminal;
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let layer = tracing_subscriber::fmt::layer()
        .with_ansi(colour)
        .with_writer(std::io::stderr)
        .with_target(false);
    // From -vv on, each line carries the time since start: where a run spends its time.
    if verbose >= 2 && !quiet {
        let output = layer
            .with_timer(tracing_subscriber::fmt::time::uptime())
            .with_filter(caps);
        let _ = tracing_subscriber::registry()
            .with(filter)
            .with(output)
            .try_init();
    } else {
        let output = layer.without_time().with_filter(caps);
        let _ = tracing_subscriber::registry()
            .with(filter)
            .with(output)
            .try_init();
    }
}

/// Resolves when the process is asked to stop (Ctrl-C or SIGTERM).
/// Takes the state directory's lock for `command` (see `renew::lock`), waiting up to `wait`
/// and saying so on stderr when it has to (unless `quiet`).
async fn take_state_lock(
    state_dir: &std::path::Path,
    wait: Option<std::time::Duration>,
    command: &str,
    quiet: bool,
) -> Result<crate::renew::lock::StateLock, crate::renew::lock::LockError> {
    use crate::renew::lock::{LockError, StateLock};
    let dir = state_dir.join("renewal");
    let wait = wait.unwrap_or_default();
    match StateLock::acquire(&dir, std::time::Duration::ZERO, command).await {
        Err(LockError::Busy { path, holder }) if !wait.is_zero() => {
            if !quiet {
                progress_display::clear_shared();
                eprintln!(
                    "waiting up to {} for brokercert {} to finish (lock `{}`)",
                    humantime::format_duration(wait),
                    holder
                        .map(|h| h.describe())
                        .unwrap_or_else(|| "command".to_string()),
                    path.display()
                );
            }
            StateLock::acquire(&dir, wait, command).await
        }
        other => other,
    }
}

/// [`take_state_lock`] for the commands where a busy lock is a failure: it is reported and
/// becomes exit code 7 (this run did nothing).
async fn lock_state(
    cli: &Cli,
    state_dir: &std::path::Path,
    wait: Option<std::time::Duration>,
    command: &str,
) -> Result<crate::renew::lock::StateLock, i32> {
    take_state_lock(state_dir, wait, command, cli.quiet)
        .await
        .map_err(|e| {
            output::error(&e.to_string());
            exit::STORE
        })
}

pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = ctrl_c.await;
        }
    }
}

/// A certificate serial in hex, as `status`, `check` and openssl show it (`03:a1:…`,
/// `0x03a1…` and `03A1…` are the same); returned as lowercase hex without separators.
fn parse_serial(text: &str) -> Result<String, String> {
    let t = text.trim();
    let t = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    let hex: String = t.chars().filter(|c| *c != ':').collect();
    if hex.is_empty() || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!(
            "`{text}` is not a certificate serial; expected hexadecimal digits (like \
             `04d2a1…`, as `brokercert status` or `openssl x509 -serial` show it)"
        ));
    }
    Ok(hex.to_ascii_lowercase())
}

/// The commands that read neither a configuration nor the state directory.
const WITHOUT_CONFIG: &[&str] = &["split", "completions", "man", "init"];

/// The command line: `Cli`'s, with `--config` and `--state-dir` added after the name of
/// every command that reads them (and only those, so `split --help` does not offer flags
/// it would ignore). Before the command name they are accepted everywhere and refused by
/// [`ignored_global`] where ignored.
pub fn command_line() -> clap::Command {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_owned())
        .filter(|n| !WITHOUT_CONFIG.contains(&n.as_str()))
        .collect();
    for name in names {
        cmd = cmd.mut_subcommand(name, with_location_args);
    }
    cmd
}

/// `sub` and each command under it, with `--config` and `--state-dir`.
fn with_location_args(sub: clap::Command) -> clap::Command {
    let names: Vec<String> = sub
        .get_subcommands()
        .map(|s| s.get_name().to_owned())
        .collect();
    let mut sub = sub.args([
        clap::Arg::new("config")
            .long("config")
            .short('c')
            .value_name("FILE")
            .value_parser(clap::value_parser!(PathBuf))
            .help("Configuration file (TOML); see `brokercert --help` for where it is looked for"),
        clap::Arg::new("state_dir")
            .long("state-dir")
            .value_name("DIR")
            .value_parser(clap::value_parser!(PathBuf))
            .help("State directory (certificates, account)"),
    ]);
    for name in names {
        sub = sub.mut_subcommand(name, with_location_args);
    }
    sub
}

/// Where `--config` came from once the command line is merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConfigFrom {
    CommandLine,
    Env,
    Nowhere,
}

/// Moves `--config` / `--state-dir` typed after a command name (at any depth) into `cli`;
/// the one nearest the end wins over one before the command name and over the variables.
fn merge_location_args(cli: &mut Cli, matches: &clap::ArgMatches) -> ConfigFrom {
    use clap::parser::ValueSource;
    let mut from = match matches.value_source("config") {
        Some(ValueSource::CommandLine) => ConfigFrom::CommandLine,
        Some(ValueSource::EnvVariable) => ConfigFrom::Env,
        _ => ConfigFrom::Nowhere,
    };
    let mut m = matches;
    while let Some((_, sub)) = m.subcommand() {
        let typed = |id: &str| {
            sub.try_get_one::<PathBuf>(id)
                .ok()
                .flatten()
                .filter(|_| sub.value_source(id) == Some(ValueSource::CommandLine))
                .cloned()
        };
        if let Some(p) = typed("config") {
            cli.config = Some(p);
            from = ConfigFrom::CommandLine;
        }
        if let Some(p) = typed("state_dir") {
            cli.state_dir = Some(p);
        }
        m = sub;
    }
    from
}

/// `--config` or `--state-dir` typed on the command line of a command that ignores them (a
/// variable is fine: it is meant for the other commands): the message saying so. Before the
/// command name clap accepts them for every command; after it, only where they are read, so
/// clap's own refusal there is replaced by this message too (see [`main`]).
fn ignored_global(name: &str, typed: &[&str]) -> Option<String> {
    (WITHOUT_CONFIG.contains(&name) && !typed.is_empty()).then(|| {
        format!(
            "`brokercert {name}` reads no configuration and no state directory, so `{}` would be ignored; leave it out",
            typed.join("` and `")
        )
    })
}

/// The location flags typed before the command name.
fn typed_before_command(matches: &clap::ArgMatches) -> Vec<&'static str> {
    [("config", "--config"), ("state_dir", "--state-dir")]
        .into_iter()
        .filter(|(id, _)| matches.value_source(id) == Some(clap::parser::ValueSource::CommandLine))
        .map(|(_, flag)| flag)
        .collect()
}

/// For clap's "unexpected argument" on a command without a configuration: the command and
/// the location flags among the words typed after it.
fn typed_after_command(args: &[std::ffi::OsString]) -> Option<(&'static str, Vec<&'static str>)> {
    let words: Vec<&str> = args.iter().skip(1).filter_map(|a| a.to_str()).collect();
    let at = words.iter().position(|w| !w.starts_with('-'))?;
    let name = *WITHOUT_CONFIG.iter().find(|n| **n == words[at])?;
    let mut typed = Vec::new();
    for (flag, short) in [("--config", Some("-c")), ("--state-dir", None)] {
        let hit = words[at + 1..].iter().any(|w| {
            *w == flag
                || w.starts_with(&format!("{flag}="))
                || short.is_some_and(|s| w.starts_with(s) && !w.starts_with("--"))
        });
        if hit {
            typed.push(flag);
        }
    }
    (!typed.is_empty()).then_some((name, typed))
}

/// Fills in `--config` from the documented search order (`config::discover`) for the
/// commands that read a configuration, says which file is used (`-v`), and makes the
/// "run `brokercert …`" hints name it.
fn find_config(cli: &mut Cli, from: ConfigFrom) {
    use crate::config::discover::{self, Source};
    if matches!(
        cli.command,
        Command::Init(_) | Command::Completions(_) | Command::Man(_) | Command::Split(_)
    ) {
        return;
    }
    let from_env = from == ConfigFrom::Env;
    let given = cli
        .config
        .clone()
        .map(|p| (p, if from_env { Source::Env } else { Source::Flag }));
    let is_root = discover::is_root();
    let env = |k: &str| std::env::var(k).ok();
    match discover::discover(given, is_root, &env, &|p| p.is_file()) {
        Some((path, source)) => {
            tracing::info!("configuration: {} ({source})", path.display());
            cli.config = Some(path);
        }
        None => tracing::info!(
            "no configuration file (looked for {}); using flags and defaults",
            discover::candidates(is_root, &env)
                .iter()
                .map(|(p, _)| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
    crate::hint::set_config(cli.config.as_deref());
}

/// Runs the command line; returns the exit code.
pub fn main() -> i32 {
    use clap::FromArgMatches;
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let matches = match command_line().try_get_matches_from(&args) {
        Ok(m) => m,
        Err(e) => {
            if e.kind() == clap::error::ErrorKind::UnknownArgument
                && let Some((name, typed)) = typed_after_command(&args)
                && let Some(m) = ignored_global(name, &typed)
            {
                output::error(&m);
                return exit::CONFIG;
            }
            e.exit()
        }
    };
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    init_logging(cli.verbose, cli.quiet);
    if let Some((name, _)) = matches.subcommand()
        && let Some(m) = ignored_global(name, &typed_before_command(&matches))
    {
        output::error(&m);
        return exit::CONFIG;
    }
    let from = merge_location_args(&mut cli, &matches);
    find_config(&mut cli, from);
    // Commands that need neither the runtime nor the network.
    match &cli.command {
        Command::Init(args) => return init::run(args),
        Command::Completions(args) => return completions::run(args),
        Command::Man(args) => return man::run(args),
        _ => {}
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return exit::INTERNAL;
        }
    };
    rt.block_on(async {
        match &cli.command {
            Command::Issue(args) if args.dry_run => plan::run_for_issue(&cli, args).await,
            Command::Issue(args) => issue::run(&cli, args).await,
            Command::Deploy(args) => deploy::run_deploy(&cli, args).await,
            Command::Remove(args) => deploy::run_remove(&cli, args).await,
            Command::Verify(args) => verify::run_verify(&cli, args).await,
            Command::Check(args) => check::run(&cli, args),
            Command::ClientCa(cmd) => client_pki::run_client_ca(&cli, cmd),
            Command::ClientCert(cmd) => client_pki::run_client_cert(&cli, cmd),
            Command::Split(args) => split::run(args),
            Command::Renew(args) => renew::run(&cli, args).await,
            Command::Schedule(args) => schedule::run(&cli, args).await,
            Command::IamPolicy(args) => iam_policy::run(&cli, args).await,
            Command::Status(args) => status::run(&cli, args).await,
            Command::Plan(args) => plan::run(&cli, args).await,
            Command::Doctor(args) => doctor::run(&cli, args).await,
            Command::Init(_) | Command::Completions(_) | Command::Man(_) => exit::OK,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent_with_the_location_flags_added() {
        command_line().debug_assert();
    }

    #[test]
    fn location_flags_after_a_command_without_configuration_are_found() {
        let argv = |w: &[&str]| -> Vec<std::ffi::OsString> {
            std::iter::once("brokercert")
                .chain(w.iter().copied())
                .map(Into::into)
                .collect()
        };
        assert_eq!(
            typed_after_command(&argv(&["-v", "split", "b.pem", "-cx.toml"])),
            Some(("split", vec!["--config"]))
        );
        assert_eq!(
            typed_after_command(&argv(&["completions", "--state-dir=/x", "bash"])),
            Some(("completions", vec!["--state-dir"]))
        );
        assert_eq!(typed_after_command(&argv(&["split", "--bogus"])), None);
        assert_eq!(
            typed_after_command(&argv(&["issue", "--config", "x"])),
            None
        );
    }
}

//! `brokercert renew`: for every configured certificate, finish what an interrupted run left,
//! decide whether renewal is due, and if so issue, deploy and verify — safe to run hourly.
//!
//! Owns: the order of those steps per certificate, the one-line outcome per certificate, the
//! Markdown summary, notifications and the exit code. The decision is `renew::policy`, the
//! memory `renew::state` and `renew::journal`, the stages `workflow`.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use futures::StreamExt;
use time::OffsetDateTime;
use tokio::sync::OnceCell;

use super::Cli;
use super::output;
use super::progress_display::{CertProgress, Renderer};
use crate::acme::CertificateAuthority;
use crate::acme::client::{AcmeClient, replaces_id};
use crate::clock::{Clock, SystemClock};
use crate::config::{CertificateSpec, DeployFile, Overrides, Settings};
use crate::deploy::identity::Expire;
use crate::deploy::{DeploymentTarget, Material, from_config};
use crate::dns::batching::Batching;
use crate::dns::lookup::WireLookup;
use crate::dns::route53::{Route53, Route53Settings};
use crate::error::{Error, exit};
use crate::pki::bundle::parse_bundle;
use crate::pki::certificate::Certificate;
use crate::renew::journal::Journal;
use crate::renew::policy::{self, AriChoice, Current, Decision, Failures, Inputs, Reason};
use crate::renew::state::{self, AriRecord, RenewalState};
use crate::store::Store;
use crate::workflow::blocking::blocking;
use crate::workflow::challenge_records::{DnsView, Ledger};
use crate::workflow::deploy::deploy_all;
use crate::workflow::issue::{IssueOptions, Resume};
use crate::progress::{Progress, Stage};
use crate::workflow::{IssueServices, issue};

/// Flags of `renew`.
#[derive(Debug, Args, Clone)]
pub struct RenewArgs {
    /// Only this certificate (default: every configured one).
    #[arg(long, short = 'n')]
    pub name: Option<String>,
    /// The same as `--name`.
    #[arg(value_name = "NAME", conflicts_with = "name")]
    pub name_positional: Option<String>,
    /// Renew even when not due.
    #[arg(long)]
    pub force: bool,
    /// Make new keys this run even where `reuse_key` is set (e.g. after a key compromise).
    #[arg(long)]
    pub new_key: bool,
    /// Change nothing lasting: validate a real order at Let's Encrypt staging (or the
    /// configured test CA) into a throw-away directory (its DNS-01 values are its only
    /// writes, removed afterwards); only plan the CNAME and the deployments, and list what a
    /// real run would change.
    #[arg(long)]
    pub dry_run: bool,
    /// Order at once (by default a non-interactive run waits a random time up to
    /// `renew.jitter` before its first order, so that many machines do not hit the CA at the
    /// same second; a run with nothing due never waits).
    #[arg(long)]
    pub no_jitter: bool,
    /// Wait this long for another brokercert command working on the same state directory
    /// (default: exit at once, with code 0: the other run is doing the work).
    #[arg(long, value_name = "DURATION", value_parser = crate::bounds::parse)]
    pub wait: Option<Duration>,
    /// Append a Markdown summary to this file (e.g. "$GITHUB_STEP_SUMMARY").
    #[arg(long, value_name = "FILE")]
    pub summary: Option<PathBuf>,
    /// Machine-readable output: one JSON object per certificate and line (docs/json.md).
    #[arg(long)]
    pub json: bool,
}

/// What happened to one certificate.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Not due; the time it becomes due.
    NotDue {
        /// When.
        next: OffsetDateTime,
        /// Why then.
        by: Reason,
        /// Expiry of what is deployed.
        expires: OffsetDateTime,
    },
    /// Renewed (or redeployed), and deployed and verified where targets are configured.
    Renewed {
        /// Why.
        reason: String,
        /// Serial of the new certificate.
        serial: String,
        /// Its expiry.
        expires: OffsetDateTime,
        /// How many deployment targets got it (and were verified); 0: stored only.
        targets: usize,
    },
    /// Dry run finished.
    DryRun {
        /// What would be deployed where.
        plan: Vec<String>,
    },
    /// An earlier attempt failed and the backoff has not passed: nothing tried (still a
    /// failure for the exit code; not notified again).
    BackingOff {
        /// The last failure, with the count.
        message: String,
        /// Its exit code.
        code: i32,
        /// Next attempt.
        until: OffsetDateTime,
    },
    /// Failed now.
    Failed {
        /// One paragraph.
        message: String,
        /// Exit code.
        code: i32,
        /// Next attempt.
        next_attempt: Option<OffsetDateTime>,
    },
}

impl Outcome {
    fn code(&self) -> i32 {
        match self {
            Outcome::Failed { code, .. } | Outcome::BackingOff { code, .. } => *code,
            _ => exit::OK,
        }
    }

    fn did_something(&self) -> bool {
        !matches!(self, Outcome::NotDue { .. } | Outcome::BackingOff { .. })
    }

    /// The `renew` JSON object (docs/json.md).
    pub fn json(&self, name: &str) -> serde_json::Value {
        let (result, serial, not_after, next, reason) = match self {
            Outcome::NotDue { next, by, expires } => (
                "not_due",
                None,
                Some(*expires),
                Some(*next),
                Some(match by {
                    Reason::AriWindow => "ari_window",
                    _ => "lifetime",
                }),
            ),
            Outcome::Renewed {
                serial, expires, ..
            } => ("renewed", Some(serial.clone()), Some(*expires), None, None),
            Outcome::DryRun { .. } => ("dry_run", None, None, None, None),
            Outcome::BackingOff { until, .. } => {
                ("backing_off", None, None, Some(*until), Some("backoff"))
            }
            Outcome::Failed { next_attempt, .. } => {
                ("failed", None, None, *next_attempt, Some("backoff"))
            }
        };
        let error = match self {
            Outcome::Failed { message, .. } | Outcome::BackingOff { message, .. } => {
                Some(message.clone())
            }
            _ => None,
        };
        let deployed_targets = match self {
            Outcome::Renewed { targets, .. } => Some(*targets),
            _ => None,
        };
        serde_json::json!({
            "name": name,
            "ok": self.code() == exit::OK,
            "result": result,
            "message": self.line(name),
            "serial": serial,
            "not_after": not_after.map(output::rfc3339),
            "next_attempt": next.map(output::rfc3339),
            "next_reason": reason,
            "deployed_targets": deployed_targets,
            "error": error,
            "exit_code": self.code(),
        })
    }

    /// One line for the terminal and logs.
    pub fn line(&self, name: &str) -> String {
        match self {
            Outcome::NotDue { next, by, expires } => format!(
                "{name}: not due — renews from {} ({}); expires {}",
                date_from(*next),
                match by {
                    Reason::AriWindow => "the CA's renewal window",
                    _ => "1/3 of the lifetime left",
                },
                date(*expires)
            ),
            Outcome::Renewed {
                reason,
                serial,
                expires,
                targets,
            } => format!(
                "{name}: renewed ({reason}) — serial {serial}, expires {}, {}",
                date(*expires),
                match targets {
                    0 => "stored (no deployment target configured)".to_string(),
                    1 => "deployed and verified".to_string(),
                    n => format!("deployed to {n} targets and verified"),
                }
            ),
            Outcome::DryRun { plan } => format!("{name}: dry run passed — {}", plan.join("; ")),
            Outcome::BackingOff { message, until, .. } => format!(
                "{name}: FAILED earlier, waiting before trying again — {message} (next attempt from {})",
                date_from(*until)
            ),
            Outcome::Failed {
                message,
                next_attempt,
                ..
            } => format!(
                "{name}: FAILED — {message}{}",
                next_attempt
                    .map(|t| format!(" (next attempt from {})", date_from(t)))
                    .unwrap_or_default()
            ),
        }
    }
}

/// A "from" time to the minute, rounded up: 12:01:30 shows as 12:02, so that a run started
/// at the time shown is never still too early (truncating made retry times a minute early).
fn date_from(t: OffsetDateTime) -> String {
    let into_minute = time::Duration::seconds(i64::from(t.second()))
        + time::Duration::nanoseconds(i64::from(t.nanosecond()));
    if into_minute.is_zero() {
        date(t)
    } else {
        date(t - into_minute + time::Duration::minutes(1))
    }
}

fn date(t: OffsetDateTime) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    t.to_offset(time::UtcOffset::UTC)
        .format(&fmt)
        .unwrap_or_else(|_| t.to_string())
}

/// Loads settings for `renew`/`schedule`, keeping only `name` when given.
pub fn load_settings(cli: &Cli, name: Option<&str>) -> Result<Settings, i32> {
    load_settings_for(cli, name, "nothing to renew")
}

/// [`load_settings`] for any command; `nothing` opens the message when no certificate is
/// configured (`nothing to renew`, `nothing to show`).
pub fn load_settings_for(cli: &Cli, name: Option<&str>, nothing: &str) -> Result<Settings, i32> {
    let over = Overrides {
        state_dir: cli.state_dir.clone(),
        name: name.map(str::to_string),
        ..Default::default()
    };
    let settings = Settings::load(cli.config.as_deref(), &over).map_err(|e| {
        output::error(&e.to_string());
        exit::CONFIG
    })?;
    if settings.certificates.is_empty() {
        output::error(&format!(
            "{nothing}: {} has no `[[certificate]]` section. Add one (`brokercert init` writes \
             a commented file; see `brokercert issue --help`), or pass `--config FILE`",
            cli.config
                .as_deref()
                .map(|p| format!("the configuration `{}`", p.display()))
                .unwrap_or_else(|| "no configuration file was found, so the configuration".into())
        ));
        return Err(exit::CONFIG);
    }
    Ok(settings)
}

/// `brokercert renew`.
pub async fn run(cli: &Cli, args: &RenewArgs) -> i32 {
    output::set_json(args.json);
    let name = args.name.as_deref().or(args.name_positional.as_deref());
    let mut settings = match load_settings(cli, name) {
        Ok(s) => s,
        Err(code) => return code,
    };
    if args.dry_run && settings.acme.directory == crate::config::LETSENCRYPT {
        settings.acme.directory = crate::config::LETSENCRYPT_STAGING.to_string();
        // An account for production (say from BROKERCERT_ACME_ACCOUNT) is not used on staging.
        settings.acme.foreign_env_account = crate::config::ForeignEnvAccount::Skip;
    }
    let _lock =
        match super::take_state_lock(&settings.state_dir, args.wait, "renew", cli.quiet).await {
            Ok(l) => l,
            Err(crate::renew::lock::LockError::Busy { path, holder }) => {
                // Another run is doing the work: not a failure of this one.
                eprintln!("{}", crate::renew::lock::LockError::Busy { path, holder });
                return exit::OK;
            }
            Err(e) => {
                output::error(&e.to_string());
                return exit::STORE;
            }
        };
    let stop = Stop::on_signals();
    let outcomes = renew_all(cli, &settings, args, &stop).await;
    report(&settings, args, &outcomes).await
}

/// Set once Ctrl-C or SIGTERM arrives; the work in progress stops at a safe point (the
/// DNS-01 values are removed, a deployment in flight finishes).
#[derive(Clone)]
pub struct Stop(tokio::sync::watch::Receiver<bool>);

impl Stop {
    /// Watches Ctrl-C and SIGTERM.
    pub fn on_signals() -> Stop {
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            super::shutdown_signal().await;
            let _ = tx.send(true);
        });
        Stop(rx)
    }

    /// Whether the signal came.
    pub fn is_set(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves when the signal comes.
    pub async fn wait(&self) {
        let mut rx = self.0.clone();
        let _ = rx.wait_for(|v| *v).await;
    }
}

/// Prints the outcomes, writes the summary, notifies; returns the exit code.
pub async fn report(settings: &Settings, args: &RenewArgs, outcomes: &[(String, Outcome)]) -> i32 {
    let mut code = exit::OK;
    super::progress_display::clear_shared();
    for (name, o) in outcomes {
        output::say(&o.line(name));
        if args.json
            && let serde_json::Value::Object(fields) = o.json(name)
        {
            output::emit_json("renew", fields);
        }
        if code == exit::OK {
            code = o.code();
        }
    }
    if let Some(path) = &args.summary
        && let Err(e) = append_summary(path, outcomes)
    {
        output::warning(&format!(
            "cannot write the summary to `{}`: {e}",
            path.display()
        ));
    }
    for (name, o) in outcomes {
        if o.did_something() {
            super::notify::notify(&settings.renew, name, o).await;
        }
    }
    code
}

async fn jitter(max: Duration, quiet: bool) {
    if max.is_zero() {
        return;
    }
    let wait = Duration::from_millis(rand::random_range(0..max.as_millis().max(1) as u64));
    if !quiet {
        super::progress_display::clear_shared();
        eprintln!(
            "waiting {} before asking the CA (random jitter for non-interactive runs, so that many machines do not order at the same second; `--no-jitter` skips it)",
            crate::progress::human_duration(wait)
        );
    }
    tokio::time::sleep(wait).await;
}

/// The jitter to wait once before the run's first order: `renew.jitter` for a
/// non-interactive run, nothing with `--no-jitter`, `--dry-run` or on a terminal.
fn jitter_for(settings: &Settings, args: &RenewArgs) -> Duration {
    if args.no_jitter || args.dry_run || std::io::stdin().is_terminal() {
        Duration::ZERO
    } else {
        settings.renew.jitter
    }
}

fn append_summary(path: &Path, outcomes: &[(String, Outcome)]) -> std::io::Result<()> {
    let mut text = String::from("## brokercert renew\n\n| certificate | result |\n|---|---|\n");
    for (name, o) in outcomes {
        let icon = match o {
            Outcome::Failed { .. } | Outcome::BackingOff { .. } => "❌",
            Outcome::Renewed { .. } | Outcome::DryRun { .. } => "✅",
            Outcome::NotDue { .. } => "⏸️",
        };
        let line = o.line(name).replace('|', "\\|").replace('\n', " ");
        text.push_str(&format!("| `{name}` | {icon} {line} |\n"));
    }
    text.push('\n');
    // A new summary file is 0644 whatever the umask (GitHub's step summary already exists).
    let mut f = std::os::unix::fs::OpenOptionsExt::mode(
        std::fs::OpenOptions::new().create(true).append(true),
        0o644,
    )
    .open(path)?;
    f.write_all(text.as_bytes())
}

/// The connections a run may need, made on first use: a run with nothing to do makes none.
pub struct Lazy<'a> {
    settings: &'a Settings,
    store: Store,
    ca: OnceCell<AcmeClient>,
    route53: OnceCell<Batching<Route53>>,
    /// The random wait before the run's first order (zero: none), taken once.
    jitter: (Duration, bool),
    jittered: OnceCell<()>,
}

impl<'a> Lazy<'a> {
    /// For `settings`, with the store at `store`.
    pub fn new(settings: &'a Settings, store: Store) -> Self {
        Self {
            settings,
            store,
            ca: OnceCell::new(),
            route53: OnceCell::new(),
            jitter: (Duration::ZERO, true),
            jittered: OnceCell::new(),
        }
    }

    /// Waits up to `max` (at random) before the run's first order; `quiet`: silently.
    pub fn with_jitter(mut self, max: Duration, quiet: bool) -> Self {
        self.jitter = (max, quiet);
        self
    }

    /// The jitter, once per run, before the first work that goes to the CA: a run that
    /// finds nothing due never waits. Ctrl-C ends the wait.
    async fn before_ordering(&self, stop: &Stop) -> Result<(), Error> {
        let (max, quiet) = self.jitter;
        tokio::select! {
            _ = self.jittered.get_or_init(|| jitter(max, quiet)) => Ok(()),
            () = stop.wait() => Err(Error::Interrupted),
        }
    }

    async fn ca(&self) -> Result<&AcmeClient, Error> {
        self.ca
            .get_or_try_init(|| AcmeClient::connect(&self.settings.acme, &self.store))
            .await
            .map_err(Error::from)
    }

    /// Route 53, shared by the certificates of this run: their changes to one zone go in
    /// one batch, the zones are listed once, and requests keep to the account's rate.
    async fn route53(&self) -> &Batching<Route53> {
        self.route53
            .get_or_init(|| async {
                let r53 = Route53::connect(&Route53Settings {
                    endpoint_url: self.settings.dns.route53_endpoint.clone(),
                    profile: self.settings.dns.route53_profile.clone(),
                    region: self.settings.dns.route53_region.clone(),
                    max_attempts: self.settings.dns.route53_max_attempts,
                    read_records: self.settings.dns.route53_read_records,
                })
                .await;
                let window = if self.settings.certificates.len() > 1 {
                    self.settings.dns.route53_batch_window
                } else {
                    Duration::ZERO
                };
                Batching::new(r53, window, self.settings.dns.route53_requests_per_second)
            })
            .await
    }
}

/// Renews every configured certificate, up to `renew.concurrency` at the same time;
/// outcomes are in configuration order.
pub async fn renew_all(
    cli: &Cli,
    settings: &Settings,
    args: &RenewArgs,
    stop: &Stop,
) -> Vec<(String, Outcome)> {
    let mut out = Vec::new();
    let dry_dir = if args.dry_run {
        match dry_run_dir() {
            Ok(d) => Some(d),
            Err(e) => {
                for s in &settings.certificates {
                    out.push((
                        s.name.clone(),
                        Outcome::Failed {
                            message: format!("cannot make a directory for the dry run: {e}"),
                            code: exit::STORE,
                            next_attempt: None,
                        },
                    ));
                }
                return out;
            }
        }
    } else {
        None
    };
    let store = Store::new(
        dry_dir
            .as_ref()
            .map(|d| d.0.clone())
            .unwrap_or_else(|| settings.state_dir.clone()),
    );
    // The account lives in the real state directory even for a dry run.
    let lazy = Lazy::new(settings, Store::new(&settings.state_dir))
        .with_jitter(jitter_for(settings, args), cli.quiet);
    let (lazy, store) = (&lazy, &store);
    let turns = &challenge_name_turns(&settings.certificates);
    let runs = futures::stream::iter(&settings.certificates)
        .map(|spec| async move {
            if stop.is_set() {
                return None;
            }
            // Certificates sharing a DNS-01 record name take turns (see
            // `challenge_name_turns`); the locks are taken in name order, never in a cycle.
            let mut held = Vec::new();
            for name in &challenge_names(spec) {
                if let Some(turn) = turns.get(name) {
                    held.push(turn.clone().lock_owned().await);
                }
            }
            let o = renew_one(cli, settings, spec, args, lazy, store, stop).await;
            drop(held);
            Some((spec.name.clone(), o))
        })
        .buffered(settings.renew.concurrency.max(1));
    out.extend(
        runs.filter_map(|o| async move { o })
            .collect::<Vec<_>>()
            .await,
    );
    out
}

/// One lock per DNS-01 record name that more than one certificate of the run needs (an RSA
/// and an ECDSA certificate for one broker name, say). Each run reads the TXT set at the
/// name, writes it back with its own value added, and later without it: two at once would
/// overwrite each other's value, and the one whose value vanished would wait for it until
/// the propagation timeout. In name order (a `BTreeMap`), so that taking them in iteration
/// order never makes a cycle.
fn challenge_name_turns(
    specs: &[CertificateSpec],
) -> std::collections::BTreeMap<String, std::sync::Arc<tokio::sync::Mutex<()>>> {
    let mut users: std::collections::BTreeMap<String, usize> = Default::default();
    for spec in specs {
        for n in challenge_names(spec) {
            *users.entry(n).or_default() += 1;
        }
    }
    users
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(name, _)| (name, Default::default()))
        .collect()
}

/// The DNS-01 record names of `spec`, sorted and once each (an apex and its wildcard share
/// one).
fn challenge_names(spec: &CertificateSpec) -> std::collections::BTreeSet<String> {
    spec.domains
        .iter()
        .map(|d| d.challenge_name().as_str().to_string())
        .collect()
}

/// A directory removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn dry_run_dir() -> std::io::Result<TempDir> {
    let dir = std::env::temp_dir().join(format!(
        "brokercert-dry-run-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    // 0700 from the start, whatever the umask (it will hold a private key).
    crate::store::create_dir_exact(&dir, crate::store::strict::DIR_MODE)?;
    Ok(TempDir(dir))
}

fn failed(e: &Error, next_attempt: Option<OffsetDateTime>) -> Outcome {
    Outcome::Failed {
        message: e.to_string(),
        code: e.exit_code(),
        next_attempt,
    }
}

/// Renews one certificate if due; records the outcome in its state.
async fn renew_one(
    cli: &Cli,
    settings: &Settings,
    spec: &CertificateSpec,
    args: &RenewArgs,
    lazy: &Lazy<'_>,
    store: &Store,
    stop: &Stop,
) -> Outcome {
    let clock = SystemClock;
    let renewal_dir = settings.state_dir.join("renewal");
    let (mut st, warn) = state::load(&renewal_dir, &spec.name);
    let before = st.clone();
    if let Some(w) = warn {
        output::warning(&w);
    }
    let ctx = Ctx {
        cli,
        settings,
        args,
        lazy,
        store,
        stop,
    };
    let result = {
        use tracing::Instrument as _;
        let span = tracing::debug_span!("certificate", name = %spec.name);
        attempt(&ctx, spec, &mut st).instrument(span).await
    };
    if args.dry_run {
        return match result {
            Ok(o) => o,
            Err(e) => failed(&e, None),
        };
    }
    let now = clock.now();
    let outcome = match result {
        Ok(o) => {
            if matches!(o, Outcome::Renewed { .. }) {
                st.failures = 0;
                st.last_failure = None;
                st.last_error = None;
                st.last_code = None;
                st.retry_not_before = None;
                st.last_success = Some(now);
            }
            o
        }
        Err(Error::Interrupted) => Outcome::Failed {
            message: "interrupted (Ctrl-C or SIGTERM); nothing is left half-done: this run's \
                      DNS-01 values are removed, and the next run resumes the order or deploys \
                      and verifies the certificate this one stored"
                .into(),
            code: exit::INTERRUPTED,
            next_attempt: None,
        },
        Err(e) => {
            st.failures = st.failures.saturating_add(1);
            st.last_failure = Some(now);
            let message = e.to_string();
            st.last_error = Some(message.clone());
            st.last_code = Some(e.exit_code());
            // The CA's own Retry-After on a rate limit: stored, and never retried before it.
            st.retry_not_before = match &e {
                Error::Acme(crate::acme::AcmeError::RateLimited { until, .. }) => *until,
                _ => None,
            };
            let next = Failures {
                count: st.failures,
                last: st.last_failure,
                not_before: st.retry_not_before,
            }
            .wait_until()
            .unwrap_or(now + policy::backoff(st.failures));
            Outcome::Failed {
                message,
                code: e.exit_code(),
                next_attempt: Some(next),
            }
        }
    };
    // A run with nothing to do writes nothing (100 certificates: 100 fsyncs saved).
    if st == before {
        return outcome;
    }
    if let Err(e) = blocking(|| state::save(&renewal_dir, &spec.name, &st)) {
        output::warning(&format!("cannot save the renewal state: {e}"));
    }
    outcome
}

/// What is deployed now, and how it was learned.
struct Observed {
    current: Option<Current>,
    /// The full certificate, when known (local store or files target): ARI needs it.
    leaf: Option<Certificate>,
}

/// What every step of one run shares.
struct Ctx<'a> {
    cli: &'a Cli,
    settings: &'a Settings,
    args: &'a RenewArgs,
    lazy: &'a Lazy<'a>,
    store: &'a Store,
    stop: &'a Stop,
}

async fn attempt(
    ctx: &Ctx<'_>,
    spec: &CertificateSpec,
    st: &mut RenewalState,
) -> Result<Outcome, Error> {
    let Ctx {
        cli,
        settings,
        args,
        lazy,
        store,
        stop,
    } = *ctx;
    let clock = SystemClock;
    let renewal_dir = settings.state_dir.join("renewal");
    let journal_dir = if args.dry_run {
        store.root().join("renewal")
    } else {
        renewal_dir.clone()
    };
    let journal = Journal::open(&journal_dir, &spec.name)?;
    let progress = Renderer::shared(cli.quiet, cli.verbose).certificate(&spec.name);

    // 1. Whatever an interrupted run left in DNS goes first.
    let pending = journal.data();
    if !pending.txt.is_empty() {
        progress.update(
            Stage::Cleanup,
            &format!(
                "removing {} DNS-01 value(s) an interrupted run left",
                pending.txt.len()
            ),
        );
        let route53 = lazy.route53().await;
        let lookup = WireLookup::new(settings.dns.nameservers.clone(), settings.dns.resolver)
            .with_strategy(settings.dns.strategy);
        let view = DnsView::new(route53, &lookup).await?;
        let failures = view
            .cleanup(
                &Ledger::from_entries(&pending.txt),
                "brokercert: remove DNS-01 values of an interrupted run",
            )
            .await;
        if let Some(f) = failures.first() {
            return Err(Error::Dns(crate::dns::DnsError::Provider {
                operation: "ChangeResourceRecordSets",
                message: f.clone(),
            }));
        }
        crate::renew::journal::IssueJournal::txt_removed(&journal)?;
    }

    let targets = from_config::targets(spec)?;
    let live = read_live(store, &spec.name)?;

    // 2. An interrupted issuance resumes without a new decision (and without a new order
    //    when the old one can still lead to a certificate).
    let resume = match pending.order_url.clone() {
        Some(order_url) => Some(Resume {
            order_url,
            key_pem: journal.saved_key()?,
        }),
        None => None,
    };

    // 3. A stored certificate newer than what was deployed: deploy it (a previous run was
    //    stopped between storing and verifying).
    if resume.is_none()
        && !args.force
        && let Some(leaf) = &live
        && !targets.is_empty()
        && st.deployed_fingerprint.as_deref() != Some(leaf.sha256_fingerprint())
        && !args.dry_run
    {
        let served = observe_targets(&targets).await;
        let mut i = inputs(settings, st, &targets, leaf_current(leaf), None, false);
        i.failures = Failures::default();
        let usable = matches!(policy::decide(&i), Decision::NotDue { .. });
        // Served: older (or nothing, or a failed apply) → deploy the stored one; the same →
        // it was deployed but never verified → verify it; newer → someone else deployed a
        // later certificate: leave it, and decide on what is served.
        let same = served.is_some_and(|e| e.matches(leaf.not_after()));
        let older = !same && served.is_none_or(|e| e.at < leaf.not_after());
        if usable && (older || same) {
            if let Some(until) = backing_off(st) {
                return Ok(backoff_outcome(st, until));
            }
            let reason = if older {
                progress.update(
                    Stage::Deploy,
                    &format!(
                        "the stored certificate (serial {}) is not deployed yet: deploying it",
                        leaf.serial_hex()
                    ),
                );
                "deployed the certificate an earlier run stored"
            } else {
                progress.update(
                    Stage::Verify,
                    &format!(
                        "the stored certificate (serial {}) is deployed but was not verified: verifying it",
                        leaf.serial_hex()
                    ),
                );
                "verified the certificate an earlier run deployed"
            };
            // A target seen serving an older certificate gets the write. "The same" is judged
            // by the expiry EMQX Cloud reports (in a time zone it does not name), so the
            // target and the broker's served serial check it again before skipping a write.
            let live_dir = store.live_dir(&spec.name);
            let deploying =
                deploy_and_verify(settings, spec, &live_dir, &targets, !older, &progress);
            let wrote = tokio::select! {
                r = deploying => r?,
                () = stop.wait() => return Err(interrupted_deploying(spec, &live_dir, &progress)),
            };
            // The same expiry looked deployed, but the broker served another certificate
            // (one issued in the same second), so it was written after all: say so.
            let reason = if wrote {
                "deployed the certificate an earlier run stored"
            } else {
                reason
            };
            st.deployed_fingerprint = Some(leaf.sha256_fingerprint().to_string());
            return Ok(Outcome::Renewed {
                reason: reason.into(),
                serial: leaf.serial_hex().to_string(),
                expires: leaf.not_after(),
                targets: targets.len(),
            });
        }
    }

    // 4. Decide.
    let reason = if resume.is_some() {
        "resuming an interrupted renewal".to_string()
    } else {
        let observed = observe(settings, spec, &targets, live.as_ref(), st).await;
        let ari = match (&observed.leaf, settings.renew.ari && !args.force) {
            (Some(leaf), true) => ari_choice(lazy, st, leaf, clock.now()).await,
            _ => None,
        };
        let decision = policy::decide(&inputs(
            settings,
            st,
            &targets,
            observed.current,
            ari,
            args.force || args.dry_run,
        ));
        match decision {
            Decision::NotDue { next, by } => {
                return Ok(Outcome::NotDue {
                    next,
                    by,
                    expires: observed.current.map(|c| c.not_after).unwrap_or(next),
                });
            }
            Decision::Backoff { until, .. } => {
                return Ok(backoff_outcome(st, until));
            }
            Decision::ImportImpossible {
                lifetime_days,
                min_days_left,
            } => {
                return Err(Error::Certificate(format!(
                    "the CA issues certificates valid {lifetime_days} days, but a deployment target of `{}` refuses certificates with {min_days_left} days or fewer left (`min_days_left`), so a renewed certificate could never be uploaded. Check the provider's current import rule and lower `min_days_left` in `[[certificate.deploy]]`, or choose a CA or profile with a longer lifetime",
                    spec.name
                )));
            }
            Decision::Renew(r) => match r {
                Reason::Forced if args.dry_run => "dry run".to_string(),
                Reason::Forced => "--force".to_string(),
                Reason::Missing => "nothing deployed yet".to_string(),
                Reason::Expired => "the certificate has expired".to_string(),
                Reason::AriWindow => "the CA's renewal window (ARI)".to_string(),
                Reason::Lifetime => "1/3 of the lifetime left".to_string(),
            },
        }
    };

    // 5. Issue (journaled), then deploy and verify; first everything checkable without
    //    the network, so that a missing secret or file fails before the order.
    super::preflight::check_run(settings)?;
    super::preflight::check(settings, spec)?;
    lazy.before_ordering(stop).await?;
    let replaces = match (&live, resume.is_none() && settings.renew.ari) {
        (Some(leaf), true) if st.ari.is_some() => replaces_id(leaf.der()).ok(),
        _ => None,
    };
    blocking(|| journal.set_replaces(replaces.as_deref()))?;
    let anchors = super::issue::load_anchors(settings)?;
    let route53 = lazy.route53().await;
    let lookup = WireLookup::new(settings.dns.nameservers.clone(), settings.dns.resolver)
        .with_strategy(settings.dns.strategy);
    let ca: &dyn CertificateAuthority = lazy.ca().await?;
    let svc = IssueServices {
        dns: route53,
        lookup: &lookup,
        ca,
        store,
        clock: &clock,
        anchors: &anchors,
        progress: &progress,
        journal: Some(&journal),
    };
    let opts = IssueOptions {
        force: false,
        preferred_chain: settings.acme.preferred_chain.clone(),
        change_timeout: settings.dns.change_timeout,
        propagation_timeout: settings.dns.propagation_timeout,
        replaces,
        resume,
        new_key: args.new_key,
    };
    // A dry run validates for real (its TXT values are its only writes, removed afterwards)
    // but only plans the CNAME: the order goes without it.
    let rehearsal;
    let ordered = if args.dry_run {
        rehearsal = CertificateSpec {
            cname_target: None,
            ..spec.clone()
        };
        &rehearsal
    } else {
        spec
    };
    // Taking part in the run's Route 53 batching: this certificate's changes wait for the
    // others' at each step, so a fleet sends one batch per zone for all of them.
    let issued = match route53
        .participate(issue(&svc, ordered, &opts, stop.wait()))
        .await
    {
        Ok(i) => i,
        Err(f) => {
            // An order that failed for good cannot be resumed; a journal naming it would
            // make every later run try it again.
            if !matches!(f.error, Error::Interrupted) {
                journal.drop_order()?;
            }
            let mut e = f.error;
            if let Some(c) = f.cleanup.first() {
                e = Error::CleanupFailed {
                    error: Box::new(e),
                    stage: f.stage.to_string(),
                    cleanup: c.clone(),
                };
            }
            return Err(e);
        }
    };
    for w in &issued.cleanup_warnings {
        output::warning(w);
    }
    blocking(|| journal.set_replaces(None))?;
    st.ari = None;

    if args.dry_run {
        let material = Material::from_dir(&issued.paths.live_dir)?;
        let mut plan = vec![format!(
            "validated and issued serial {} (expires {}) from {} into a throw-away directory; its DNS-01 values are removed",
            issued.serial,
            date(issued.not_after),
            settings.acme.directory
        )];
        // What a real run would change, read but not done.
        let view = DnsView::new(route53, &lookup).await?;
        let cname = super::plan::cname_steps(&view, spec, false)
            .await
            .map_err(|(_, e)| e)?;
        for t in &targets {
            crate::deploy::emqx_cloud::preflight(
                t.as_ref(),
                &material,
                &spec.domains,
                clock.now(),
            )?;
        }
        let deploy = super::plan::deploy_steps(&targets).await;
        for s in cname.iter().chain(&deploy) {
            match s.kind {
                "write" if s.section == "deploy" => plan.push(format!("would send to {}", s.text)),
                "write" => plan.push(format!("would send {}", s.text)),
                "keep" => plan.push(s.text.clone()),
                _ => {}
            }
        }
        if targets.is_empty() {
            plan.push("no deployment target configured".into());
        } else {
            plan.push(format!(
                "import rules pass for {}",
                targets
                    .iter()
                    .map(|t| t.describe())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        return Ok(Outcome::DryRun { plan });
    }

    // A later `issue` keeps this certificate only for the same CA and profile.
    st.record_issuer(&issued.fingerprint, &settings.acme);
    if !targets.is_empty() {
        // Freshly issued: never "already served" (EMQX Cloud only reports the expiry, which two
        // certificates issued in the same second share).
        let live_dir = &issued.paths.live_dir;
        let deploying = deploy_and_verify(settings, spec, live_dir, &targets, false, &progress);
        tokio::select! {
            r = deploying => { r?; }
            () = stop.wait() => return Err(interrupted_deploying(spec, live_dir, &progress)),
        }
    }
    st.deployed_fingerprint = Some(issued.fingerprint.clone());
    Ok(Outcome::Renewed {
        reason,
        serial: issued.serial.clone(),
        expires: issued.not_after,
        targets: targets.len(),
    })
}

/// When an earlier failure means waiting: until when.
fn backing_off(st: &RenewalState) -> Option<OffsetDateTime> {
    let until = Failures {
        count: st.failures,
        last: st.last_failure,
        not_before: st.retry_not_before,
    }
    .wait_until()?;
    (SystemClock.now() < until).then_some(until)
}

fn backoff_outcome(st: &RenewalState, until: OffsetDateTime) -> Outcome {
    Outcome::BackingOff {
        message: if st.failures == 0 && st.retry_not_before.is_some() {
            format!(
                "the CA asked not to be asked again before then: {}",
                st.last_error.as_deref().unwrap_or("(no message kept)")
            )
        } else {
            format!(
                "{} attempt(s) failed, the last with: {}",
                st.failures,
                st.last_error.as_deref().unwrap_or("(no message kept)")
            )
        },
        code: st.last_code.unwrap_or(exit::INTERNAL),
        until,
    }
}

fn inputs(
    settings: &Settings,
    st: &RenewalState,
    targets: &[Box<dyn DeploymentTarget>],
    current: Option<Current>,
    ari: Option<AriChoice>,
    force: bool,
) -> Inputs {
    Inputs {
        now: SystemClock.now(),
        current,
        ari,
        failures: Failures {
            count: st.failures,
            last: st.last_failure,
            not_before: st.retry_not_before,
        },
        force,
        assumed_lifetime: settings.renew.assumed_lifetime,
        import_min_days_left: targets.iter().map(|t| t.rules().min_days_left).max(),
    }
}

fn leaf_current(leaf: &Certificate) -> Option<Current> {
    Some(Current {
        not_before: Some(leaf.not_before()),
        not_after: leaf.not_after(),
    })
}

pub(super) fn read_live(store: &Store, name: &str) -> Result<Option<Certificate>, Error> {
    let Some(text) = store.read_live(name, "cert.pem")? else {
        return Ok(None);
    };
    Ok(parse_bundle(text.as_bytes())
        .ok()
        .and_then(|b| b.certificates.into_iter().next()))
}

/// The earliest expiry any target reports (None when no target says). EMQX Cloud's
/// `expire` names no time zone: the reading carries its slack (see `deploy::identity`).
async fn observe_targets(targets: &[Box<dyn DeploymentTarget>]) -> Option<Expire> {
    let mut best: Option<Expire> = None;
    for t in targets {
        match t.current().await {
            // A failed or pending configuration serves nothing reliable: as if none.
            Ok(Some(s)) if !matches!(s.status.as_str(), "running" | "files") => return None,
            Ok(Some(s)) => {
                if let Some(exp) = s.expire
                    && best.is_none_or(|b| exp.earliest() < b.earliest())
                {
                    best = Some(exp);
                }
            }
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!("cannot read what {} serves: {e}", t.describe());
            }
        }
    }
    best
}

/// What is deployed: the local certificate when it is the one deployed (no network), else
/// what the targets report, else what the broker serves over TLS.
async fn observe(
    settings: &Settings,
    spec: &CertificateSpec,
    targets: &[Box<dyn DeploymentTarget>],
    live: Option<&Certificate>,
    st: &RenewalState,
) -> Observed {
    if let Some(leaf) = live
        && (targets.is_empty()
            || st.deployed_fingerprint.as_deref() == Some(leaf.sha256_fingerprint()))
    {
        return Observed {
            current: leaf_current(leaf),
            leaf: Some(leaf.clone()),
        };
    }
    if !targets.is_empty() {
        if let Some(e) = observe_targets(targets).await {
            // Never later than the real expiry, whatever time zone it was given in.
            let c = Current {
                not_before: None,
                not_after: e.earliest(),
            };
            // A files target's file is the certificate itself: ARI can use it.
            let leaf = files_leaf(spec).filter(|l| e.matches(l.not_after()));
            return Observed {
                current: leaf.as_ref().and_then(leaf_current).or(Some(c)),
                leaf,
            };
        }
        if let Some(c) = probe_served(settings, spec).await {
            return Observed {
                current: Some(c),
                leaf: None,
            };
        }
        return Observed {
            current: None,
            leaf: None,
        };
    }
    Observed {
        current: None,
        leaf: None,
    }
}

fn files_leaf(spec: &CertificateSpec) -> Option<Certificate> {
    spec.deploy.iter().find_map(|d| match d {
        DeployFile::Files(f) => {
            let p = f.fullchain.as_ref().or(f.cert.as_ref())?;
            let bytes =
                crate::bounded_read::read_file(p, crate::bounded_read::MAX_PEM_FILE).ok()?;
            parse_bundle(&bytes).ok()?.certificates.into_iter().next()
        }
        _ => None,
    })
}

/// The certificate the broker serves, from a TLS handshake (no MQTT needed to succeed).
async fn probe_served(settings: &Settings, spec: &CertificateSpec) -> Option<Current> {
    use crate::verify::MqttProbe;
    let opts = super::verify::VerifyOptions::default();
    let target = super::verify::probe_target(settings, spec, &opts).ok()??;
    let probe = crate::verify::TlsMqttProbe::new(super::verify::resolver(settings));
    let report = probe.probe(&target).await.ok()?;
    report.transports.iter().find_map(|t| {
        let c = t.server_certificate.as_ref()?;
        Some(Current {
            not_before: c.not_before,
            not_after: c.not_after?,
        })
    })
}

/// The CA's renewal window for `leaf` (asked at most when the CA said to ask again).
async fn ari_choice(
    lazy: &Lazy<'_>,
    st: &mut RenewalState,
    leaf: &Certificate,
    now: OffsetDateTime,
) -> Option<AriChoice> {
    let fp = leaf.sha256_fingerprint();
    let kept = st.ari.as_ref().filter(|r| r.fingerprint == fp).cloned();
    if let Some(r) = &kept
        && now < r.next_check
    {
        return Some(choice(r));
    }
    if kept.is_none()
        && let Some(t) = st.ari_absent_checked
        && now < t + time::Duration::hours(24)
    {
        return None;
    }
    let ca = match lazy.ca().await {
        Ok(ca) => ca,
        Err(e) => {
            output::warning(&format!("cannot ask the CA when to renew (ARI): {e}"));
            return kept.as_ref().map(choice);
        }
    };
    match ca.renewal_info(leaf.der()).await {
        Ok(Some(w)) => {
            let chosen = match &kept {
                Some(r) if r.start == w.start && r.end == w.end => r.chosen,
                _ => policy::pick_in_window(w.start, w.end, rand::random::<f64>()),
            };
            let recheck = w
                .retry_after
                .clamp(Duration::from_secs(60), Duration::from_secs(12 * 3600));
            let rec = AriRecord {
                fingerprint: fp.to_string(),
                start: w.start,
                end: w.end,
                chosen,
                next_check: now + recheck,
                explanation_url: w.explanation_url,
            };
            if let Some(u) = &rec.explanation_url {
                super::progress_display::clear_shared();
                eprintln!("  {:<18} the CA explains its renewal window at {u}", "ari");
            }
            let c = choice(&rec);
            st.ari = Some(rec);
            st.ari_absent_checked = None;
            Some(c)
        }
        Ok(None) => {
            st.ari = None;
            st.ari_absent_checked = Some(now);
            None
        }
        Err(e) => {
            output::warning(&format!(
                "the CA's renewal information (ARI) is unavailable ({e}); using the lifetime rule"
            ));
            kept.as_ref().map(choice)
        }
    }
}

fn choice(r: &AriRecord) -> AriChoice {
    AriChoice {
        start: r.start,
        end: r.end,
        chosen: r.chosen,
    }
}

/// Says what a Ctrl-C during the deployment or verification of `spec` stopped waiting for,
/// and what happens now; the error `renew` then records.
fn interrupted_deploying(
    spec: &CertificateSpec,
    live_dir: &Path,
    progress: &CertProgress,
) -> Error {
    progress.renderer().clear();
    let now = progress
        .current()
        .map(|c| format!(" while waiting — {c}"))
        .unwrap_or_default();
    output::error(&format!(
        "`{}`: interrupted (Ctrl-C or SIGTERM){now}. {}",
        spec.name,
        super::interrupt::after_deploy(&spec.name, live_dir)
    ));
    Error::Interrupted
}

/// Deploys the certificate in `live_dir` to every target, then verifies over MQTT.
async fn deploy_and_verify(
    settings: &Settings,
    spec: &CertificateSpec,
    live_dir: &Path,
    targets: &[Box<dyn DeploymentTarget>],
    skip_if_served: bool,
    progress: &CertProgress,
) -> Result<bool, Error> {
    let material = Material::from_dir(live_dir)?;
    let outcomes = if skip_if_served {
        super::deploy::deploy_unless_served(settings, spec, &material, targets, progress).await
    } else {
        deploy_all(spec, &material, targets, SystemClock.now(), false, progress).await
    };
    progress.renderer().clear();
    let outcomes = outcomes?;
    let wrote = outcomes
        .iter()
        .any(|(_, o)| *o != crate::deploy::DeployOutcome::Unchanged);
    crate::workflow::stall::after("deploy");
    super::deploy::print_outcomes(&outcomes);
    if super::verify::wanted_after_deploy(spec) {
        let opts = super::verify::VerifyOptions::after_deploy(spec, &material.leaf);
        super::verify::verify_certificate_with(settings, spec, &opts, progress)
            .await
            .map_err(|e| {
                Error::Verify(format!(
                    "deployed, but the broker does not pass verification yet: {e}"
                ))
            })?;
        crate::workflow::stall::after("verify");
    }
    Ok(wrote)
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn a_retry_time_is_never_shown_earlier_than_it_is() {
        assert_eq!(
            date_from(datetime!(2026-11-23 12:01:30 UTC)),
            "2026-11-23 12:02 UTC"
        );
        assert_eq!(
            date_from(datetime!(2026-11-23 12:01:00 UTC)),
            "2026-11-23 12:01 UTC"
        );
        let failed = Outcome::Failed {
            message: "x".into(),
            code: 5,
            next_attempt: Some(datetime!(2026-11-23 12:01:00.5 UTC)),
        };
        assert!(
            failed
                .line("a")
                .ends_with("(next attempt from 2026-11-23 12:02 UTC)")
        );
    }
}

//! `brokercert renew`: parses its flags, loads the settings, runs the renewal use case
//! (`workflow::renew`) and renders its outcomes: one line (or JSON object) per certificate,
//! the Markdown summary, notifications, the exit code.
//!
//! Owns: that rendering and the terminal side of the run (progress, jitter notice, the
//! Ctrl-C message). Does not own the renewal itself (`workflow::renew`).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use super::Cli;
use super::common::load_settings;
use super::output;
use super::render::CliSink;
use crate::config::Settings;
use crate::error::exit;
use crate::renew::policy::Reason;
use crate::workflow::notify::notify;
use crate::workflow::renew::{Outcome, RenewOptions, Stop, renew_all};
use crate::workflow::services::Services;

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
    /// Print the requests made to the state backend (remote state: S3).
    #[arg(long)]
    pub timings: bool,
}

/// The `renew` JSON object of `o` (docs/json.md).
pub fn json(o: &Outcome, name: &str) -> serde_json::Value {
    let (result, serial, not_after, next, reason) = match o {
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
        Outcome::Held { .. } => ("held_elsewhere", None, None, None, None),
        Outcome::BackingOff { until, .. } => {
            ("backing_off", None, None, Some(*until), Some("backoff"))
        }
        Outcome::Failed { next_attempt, .. } => {
            ("failed", None, None, *next_attempt, Some("backoff"))
        }
    };
    let error = match o {
        Outcome::Failed { message, .. } | Outcome::BackingOff { message, .. } => {
            Some(message.clone())
        }
        _ => None,
    };
    let deployed_targets = match o {
        Outcome::Renewed { targets, .. } => Some(*targets),
        _ => None,
    };
    serde_json::json!({
        "name": name,
        "ok": o.code() == exit::OK,
        "result": result,
        "message": o.line(name),
        "serial": serial,
        "not_after": not_after.map(output::rfc3339),
        "next_attempt": next.map(output::rfc3339),
        "next_reason": reason,
        "deployed_targets": deployed_targets,
        "error": error,
        "exit_code": o.code(),
    })
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
    if let Err(code) = super::state_backend::attach(&settings) {
        return code;
    }
    let stop = Stop::on(super::shutdown_signal());
    let services = Services::new(&settings);
    let opts = RenewOptions {
        force: args.force,
        new_key: args.new_key,
        dry_run: args.dry_run,
        jitter: jitter_for(&settings, args),
    };
    let sink = CliSink::new(cli);
    let outcomes = renew_all(&services, &opts, &stop, &sink).await;
    let code = report(&settings, args, &outcomes).await;
    if args.timings
        && let Some(line) = super::state_backend::timings_line()
    {
        output::say(&line);
    }
    code
}

/// Prints the outcomes, writes the summary, notifies; returns the exit code.
pub async fn report(settings: &Settings, args: &RenewArgs, outcomes: &[(String, Outcome)]) -> i32 {
    super::progress_display::clear_shared();
    // One write for all the lines (stderr under `--json`, whose objects follow on stdout).
    output::say_lines(outcomes.iter().map(|(name, o)| o.line(name)));
    for (name, o) in outcomes {
        if args.json
            && let serde_json::Value::Object(fields) = json(o, name)
        {
            output::emit_json("renew", fields);
        }
    }
    let code = outcomes
        .iter()
        .map(|(_, o)| o.code())
        .find(|c| *c != exit::OK)
        .unwrap_or(exit::OK);
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
            notify(&settings.renew, name, o, &|w| output::warning(w)).await;
        }
    }
    code
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
            Outcome::NotDue { .. } | Outcome::Held { .. } => "⏸️",
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

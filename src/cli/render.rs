//! Rendering shared by the commands that deploy and verify (`issue`, `deploy`, `verify`,
//! `renew`): the per-target deployment lines, the API usage table, the verification report,
//! and the sinks ([`DeploySink`], [`RenewSink`]) the `workflow` reports through.
//!
//! Owns: those lines. Does not own the stages (`workflow::deploy`, `workflow::verify`).

use super::output;
use std::path::Path;
use std::time::Duration;

use super::Cli;
use super::progress_display::{CertProgress, Renderer};
use crate::deploy::DeployOutcome;
use crate::error::Error;
use crate::progress::human_duration;
use crate::verify::ProbeReport;
use crate::workflow::deploy::DeploySink;
use crate::workflow::renew::RenewSink;
use crate::workflow::verify::check;

/// Prints one line per target outcome.
pub fn print_outcomes(outcomes: &[(String, DeployOutcome)]) {
    for (target, o) in outcomes {
        let what = match o {
            DeployOutcome::Created => "installed",
            DeployOutcome::Replaced => "replaced the previous certificate",
            DeployOutcome::Unchanged => "already served this certificate",
        };
        output::say(&format!("Deployed to {target}: {what}"));
    }
}

/// Prints the report up to its first failure (`workflow::verify::check`), and returns that
/// failure.
pub fn report(r: &ProbeReport, expect_serial: Option<&str>) -> Result<(), Error> {
    for t in &r.transports {
        let Ok(rt) = &t.outcome else { break };
        let cert = t
            .server_certificate
            .as_ref()
            .map(|c| {
                format!(
                    "; serves serial {} (not after {})",
                    c.serial_hex,
                    c.not_after_text()
                )
            })
            .unwrap_or_default();
        output::say(&format!(
            "Verified {:<5} {} via {} — subscribe/publish/receive in {}{cert}",
            t.transport.to_string(),
            t.url,
            rt.peer,
            human_duration(rt.round_trip)
        ));
        if let Some(how) = &rt.anonymous_refused {
            output::say(&format!(
                "  two-way TLS: the broker refused a client without a certificate ({how})"
            ));
        }
        if let (Some(want), Some(c)) = (expect_serial, &t.server_certificate)
            && !c.serial_hex.eq_ignore_ascii_case(want)
        {
            break;
        }
    }
    check(r, expect_serial)
}

impl DeploySink for CertProgress {
    fn clear(&self) {
        self.renderer().clear();
    }

    fn deployed(&self, outcomes: &[(String, DeployOutcome)]) {
        print_outcomes(outcomes);
    }

    fn verified(&self, report: &ProbeReport) {
        // The failure itself is the caller's (it comes back from `deploy_and_verify`).
        let _ = self::report(report, None);
    }
}

/// The API requests of a run per target (`--timings`), or `None` when no target counts them.
pub fn api_usage_table(lines: &[String]) -> Option<String> {
    (!lines.is_empty()).then(|| {
        let mut out = String::from("API requests this run:");
        for l in lines {
            out.push_str(&format!("\n  {l}"));
        }
        out
    })
}

/// The terminal side of a renewal run: the shared progress renderer, warnings, notices.
pub struct CliSink {
    quiet: bool,
    verbose: u8,
}

impl CliSink {
    /// For the global flags of `cli`.
    pub fn new(cli: &Cli) -> Self {
        Self {
            quiet: cli.quiet,
            verbose: cli.verbose,
        }
    }
}

impl RenewSink for CliSink {
    type Cert = CertProgress;

    fn certificate(&self, name: &str) -> CertProgress {
        Renderer::shared(self.quiet, self.verbose).certificate(name)
    }

    fn warning(&self, text: &str) {
        output::warning(text);
    }

    fn jitter(&self, wait: Duration) {
        if !self.quiet {
            super::progress_display::clear_shared();
            eprintln!(
                "waiting {} before asking the CA (random jitter for non-interactive runs, so that many machines do not order at the same second; `--no-jitter` skips it)",
                crate::progress::human_duration(wait)
            );
        }
    }

    fn ari_explained(&self, url: &str) {
        super::progress_display::clear_shared();
        eprintln!(
            "  {:<18} the CA explains its renewal window at {url}",
            "ari"
        );
    }

    fn interrupted_deploying(&self, progress: &CertProgress, name: &str, live_dir: &Path) {
        progress.renderer().clear();
        let now = progress
            .current()
            .map(|c| format!(" while waiting — {c}"))
            .unwrap_or_default();
        output::error(&format!(
            "`{name}`: interrupted (Ctrl-C or SIGTERM){now}. {}",
            super::interrupt::after_deploy(name, live_dir)
        ));
    }
}

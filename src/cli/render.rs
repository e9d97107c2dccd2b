//! Rendering shared by the commands that deploy and verify (`issue`, `deploy`, `verify`,
//! `renew`): the per-target deployment lines, the verification report, and the
//! [`DeploySink`] the `workflow` reports them through.
//!
//! Owns: those lines. Does not own the stages (`workflow::deploy`, `workflow::verify`).

use super::output;
use super::progress_display::CertProgress;
use crate::deploy::DeployOutcome;
use crate::error::Error;
use crate::progress::human_duration;
use crate::verify::ProbeReport;
use crate::workflow::deploy::DeploySink;
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

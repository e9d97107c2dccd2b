//! What the CLI prints: progress lines on stderr, the summary on stdout, errors as one
//! paragraph starting with `error:`.
//!
//! Owns: wording and layout. Does not own decisions.

use std::io::Write;
use std::time::Duration;

use time::OffsetDateTime;

use crate::workflow::Issued;
use crate::workflow::cname::CnameOutcome;
use crate::workflow::progress::{Progress, Stage, human_duration};

/// Progress as plain lines on stderr (one per event).
#[derive(Debug, Clone, Copy)]
pub struct LineProgress {
    /// Print nothing.
    pub quiet: bool,
}

impl Progress for LineProgress {
    fn update(&self, stage: Stage, message: &str) {
        if !self.quiet {
            let _ = writeln!(std::io::stderr(), "  {:<18} {message}", stage.as_str());
        }
    }

    fn done(&self, stage: Stage, message: &str, took: Duration) {
        if !self.quiet {
            let _ = writeln!(
                std::io::stderr(),
                "✓ {:<18} {message} ({})",
                stage.as_str(),
                human_duration(took)
            );
        }
    }
}

/// Prints an error paragraph to stderr.
pub fn error(message: &str) {
    let _ = writeln!(std::io::stderr(), "error: {message}");
}

/// Prints `e` as an error paragraph and returns its exit code.
pub fn fail(e: impl Into<crate::error::Error>) -> i32 {
    let e = e.into();
    error(&e.to_string());
    e.exit_code()
}

/// Prints a warning paragraph to stderr.
pub fn warning(message: &str) {
    let _ = writeln!(std::io::stderr(), "warning: {message}");
}

fn date(t: OffsetDateTime) -> String {
    let fmt =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    t.format(&fmt).unwrap_or_else(|_| t.to_string())
}

/// The human summary of an issued certificate.
pub fn issued_summary(i: &Issued, now: OffsetDateTime) -> String {
    let days = (i.not_after - now).whole_days();
    let mut chain = vec!["leaf".to_string()];
    chain.extend(i.chain.iter().cloned());
    chain.push(format!("{} ({})", i.anchor, i.anchor_source));
    let cname = match &i.cname {
        CnameOutcome::Skipped => None,
        CnameOutcome::AlreadyPresent => Some("already in place".to_string()),
        CnameOutcome::Created => Some("created".to_string()),
        CnameOutcome::Replaced(old) => Some(format!("created, replacing {old}")),
    };
    let live = i.paths.live_dir.display();
    let mut out = format!(
        "Issued certificate `{}` for {}\n  serial       {}\n  not after    {} ({days} days left)\n  key          {}\n  chain        {}\n",
        i.name,
        i.domains.join(", "),
        i.serial,
        date(i.not_after),
        i.key_type,
        chain.join(" ← "),
    );
    if let Some(c) = cname {
        let target = i.cname_target.as_deref().unwrap_or("?");
        out.push_str(&format!(
            "  CNAME        {} → {target} ({c})\n",
            i.domains[0]
        ));
    }
    out.push_str(&format!(
        "  files        {live}/cert.pem, chain.pem, fullchain.pem, privkey.pem (0600), root.pem\n  MQTT clients use root.pem as their CA file\n"
    ));
    out
}

//! The result of one certificate's renewal run, and its one-line text (shown on the terminal,
//! in logs, in the Markdown summary and in notifications).
//!
//! Owns: the outcome's shape, its exit code and its line. Does not own the JSON form or the
//! summary file (`cli::renew`), nor how it was reached (the phases beside this module).

use time::OffsetDateTime;

use crate::error::exit;
use crate::renew::policy::Reason;

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
    /// Another run holds this certificate's lease (state in S3): left to it.
    Held {
        /// Who holds it, and what this run did instead.
        message: String,
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
    /// The exit code this outcome asks for.
    pub fn code(&self) -> i32 {
        match self {
            Outcome::Failed { code, .. } | Outcome::BackingOff { code, .. } => *code,
            _ => exit::OK,
        }
    }

    /// Whether anything was tried (what gets notified).
    pub fn did_something(&self) -> bool {
        !matches!(
            self,
            Outcome::NotDue { .. } | Outcome::BackingOff { .. } | Outcome::Held { .. }
        )
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
            Outcome::Held { message } => format!("{name}: {message}"),
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

/// A time to the minute, in UTC.
pub(super) fn date(t: OffsetDateTime) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    t.to_offset(time::UtcOffset::UTC)
        .format(&fmt)
        .unwrap_or_else(|_| t.to_string())
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

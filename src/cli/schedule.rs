//! `brokercert schedule`: a daemon for machines without cron. Renews whatever is due, then
//! sleeps until the earliest next due time (lifetime rule, the CA's renewal window, a
//! failure's backoff), checking at least every `--max-sleep` so that changes to ARI are seen.
//! SIGTERM or Ctrl-C while sleeping exits at once; during a renewal it stops at a safe point
//! (this run's DNS-01 values removed, a deployment in flight finished) and exits.
//!
//! Under systemd (`JOURNAL_STREAM` set) lines carry syslog priority prefixes (`<3>` error,
//! `<6>` info) so the journal files them at the right level.

use std::time::Duration;

use clap::Args;
use time::OffsetDateTime;

use super::Cli;
use super::common::load_settings;
use super::render::CliSink;
use crate::clock::{Clock, SystemClock};
use crate::error::exit;
use crate::renew::lock::StateLock;
use crate::workflow::notify::notify;
use crate::workflow::renew::{Outcome, RenewOptions, Stop, renew_all};
use crate::workflow::services::Services;

/// Flags of `schedule`.
#[derive(Debug, Args)]
pub struct ScheduleArgs {
    /// Longest sleep between checks (the CA's renewal window can move).
    #[arg(long, value_name = "DURATION", default_value = "12h", value_parser = crate::bounds::parse)]
    pub max_sleep: Duration,
    /// Shortest sleep between checks.
    #[arg(long, value_name = "DURATION", default_value = "1m", value_parser = crate::bounds::parse)]
    pub min_sleep: Duration,
    /// Run one cycle and exit (for tests and for checking the set-up).
    #[arg(long)]
    pub once: bool,
}

fn log(error: bool, line: &str) {
    let prefix = if std::env::var_os("JOURNAL_STREAM").is_some() {
        if error { "<3>" } else { "<6>" }
    } else {
        ""
    };
    if error {
        eprintln!("{prefix}{line}");
    } else {
        println!("{prefix}{line}");
    }
}

/// When the next cycle should run, from this cycle's outcomes.
pub fn next_wake(
    now: OffsetDateTime,
    outcomes: &[(String, Outcome)],
    min: Duration,
    max: Duration,
) -> OffsetDateTime {
    let mut wake = now + max;
    for (_, o) in outcomes {
        let t = match o {
            Outcome::NotDue { next, .. } => *next,
            Outcome::Failed { next_attempt, .. } => next_attempt.unwrap_or(now + max),
            Outcome::BackingOff { until, .. } => *until,
            Outcome::Renewed { .. } | Outcome::DryRun { .. } | Outcome::Held { .. } => now + min,
        };
        wake = wake.min(t);
    }
    wake.max(now + min)
}

/// `brokercert schedule`.
pub async fn run(cli: &Cli, args: &ScheduleArgs) -> i32 {
    if let Err(m) = crate::bounds::at_least(
        "`--min-sleep`",
        args.min_sleep,
        crate::bounds::MIN_SCHEDULE_SLEEP,
    ) {
        super::output::error(&m);
        return exit::CONFIG;
    }
    if args.max_sleep < args.min_sleep {
        super::output::error(&format!(
            "`--max-sleep` ({}) is shorter than `--min-sleep` ({}); give a longest sleep at \
             least as long as the shortest",
            humantime::format_duration(args.max_sleep),
            humantime::format_duration(args.min_sleep)
        ));
        return exit::CONFIG;
    }
    let stop = Stop::on(super::shutdown_signal());
    log(
        false,
        &format!(
            "brokercert schedule started (pid {}); checks at least every {}",
            std::process::id(),
            humantime::format_duration(args.max_sleep)
        ),
    );
    // No jitter: the daemon's wake-up times already differ from machine to machine.
    let opts = RenewOptions::default();
    let sink = CliSink::new(cli);
    loop {
        // The configuration is read each cycle: edits apply without a restart.
        let settings = match load_settings(cli, None) {
            Ok(s) => s,
            Err(code) => return code,
        };
        let renewal_dir = settings.state_dir.join("renewal");
        let outcomes =
            match StateLock::acquire(&renewal_dir, Duration::from_secs(60), "schedule").await {
                // State in S3: the working copy is refreshed each cycle (under the lock).
                Ok(_lock) if super::state_backend::attach(&settings).is_err() => {
                    log(true, "the remote state is unreachable; trying again later");
                    Vec::new()
                }
                Ok(_lock) => {
                    let services = Services::new(&settings);
                    let o = renew_all(&services, &opts, &stop, &sink).await;
                    for (name, outcome) in &o {
                        log(
                            matches!(outcome, Outcome::Failed { .. } | Outcome::BackingOff { .. }),
                            &outcome.line(name),
                        );
                    }
                    notify_all(&settings, &o).await;
                    o
                }
                Err(e) => {
                    log(true, &format!("{e}; trying again later"));
                    Vec::new()
                }
            };
        if stop.is_set() {
            log(false, "stopping (signal received)");
            return if outcomes.iter().any(
                |(_, o)| matches!(o, Outcome::Failed { code, .. } if *code == exit::INTERRUPTED),
            ) {
                exit::INTERRUPTED
            } else {
                exit::OK
            };
        }
        if args.once {
            return outcomes
                .iter()
                .find_map(|(_, o)| match o {
                    Outcome::Failed { code, .. } | Outcome::BackingOff { code, .. } => Some(*code),
                    _ => None,
                })
                .unwrap_or(exit::OK);
        }
        let now = SystemClock.now();
        let wake = next_wake(now, &outcomes, args.min_sleep, args.max_sleep);
        let sleep = Duration::try_from(wake - now).unwrap_or(args.min_sleep);
        log(
            false,
            &format!(
                "next check in {} ({wake})",
                humantime::format_duration(Duration::from_secs(sleep.as_secs()))
            ),
        );
        tokio::select! {
            () = tokio::time::sleep(sleep) => {}
            () = stop.wait() => {
                log(false, "stopping (signal received while idle)");
                return exit::OK;
            }
        }
    }
}

/// Sends the notifications of a cycle (its lines were already logged with priorities).
async fn notify_all(settings: &crate::config::Settings, outcomes: &[(String, Outcome)]) {
    for (name, o) in outcomes {
        if o.did_something() {
            notify(&settings.renew, name, o, &|w| super::output::warning(w)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::renew::policy::Reason;

    #[test]
    fn wakes_for_the_earliest_due_time_within_bounds() {
        let now = datetime!(2026-11-23 12:00 UTC);
        let min = Duration::from_secs(60);
        let max = Duration::from_secs(12 * 3600);
        let not_due = |h: i64| Outcome::NotDue {
            next: now + time::Duration::hours(h),
            by: Reason::Lifetime,
            expires: now + time::Duration::days(30),
        };
        assert_eq!(next_wake(now, &[], min, max), now + max);
        assert_eq!(
            next_wake(
                now,
                &[("a".into(), not_due(100)), ("b".into(), not_due(3))],
                min,
                max
            ),
            now + time::Duration::hours(3)
        );
        let failed = Outcome::Failed {
            message: "x".into(),
            code: 5,
            next_attempt: Some(now + time::Duration::minutes(10)),
        };
        assert_eq!(
            next_wake(
                now,
                &[("a".into(), not_due(3)), ("b".into(), failed)],
                min,
                max
            ),
            now + time::Duration::minutes(10)
        );
        assert_eq!(
            next_wake(now, &[("a".into(), not_due(-5))], min, max),
            now + min,
            "overdue still sleeps the minimum (no busy loop)"
        );
    }
}

//! Limits on the durations a user writes (settings and flags): none may be so long that
//! adding it to a clock overflows (`--wait 500000000000years` panicked), and none of the
//! intervals that pace a loop may be zero (a zero `poll_interval` or `--min-sleep` spun
//! the CPU).
//!
//! Owns: parsing a duration with its upper bound, and the lower bounds of pacing
//! intervals. Does not own: the defaults (the settings that use them).

use std::time::Duration;

/// The longest duration accepted anywhere: ten years (longer than any certificate, wait or
/// timeout that makes sense, and far from any overflow).
pub const MAX: Duration = Duration::from_secs(3650 * 86_400);

/// Parses a duration like `90s`, `5m`, `2h`, `30d`; at most [`MAX`].
pub fn parse(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text.trim()).map_err(|e| {
        format!("`{text}` is not a duration ({e}); write e.g. `90s`, `5m`, `2h` or `30d`")
    })?;
    if d > MAX {
        return Err(format!(
            "`{text}` is longer than brokercert accepts for any duration (at most 10 years, \
             `3650d`); write a shorter one"
        ));
    }
    Ok(d)
}

/// `value` if it is at least `min`, else a message naming `what` and the minimum.
pub fn at_least(what: &str, value: Duration, min: Duration) -> Result<Duration, String> {
    if value < min {
        return Err(format!(
            "{what} is `{}`, shorter than its minimum `{}` (a shorter interval would busy-loop); \
             set at least `{}`",
            humantime::format_duration(value),
            humantime::format_duration(min),
            humantime::format_duration(min)
        ));
    }
    Ok(value)
}

/// The shortest pause between two checks of a deployment's status (`poll_interval`).
pub const MIN_POLL_INTERVAL: Duration = Duration::from_millis(10);
/// The shortest Route 53 batch window.
pub const MIN_BATCH_WINDOW: Duration = Duration::from_millis(1);
/// The shortest sleep of `schedule` between two cycles.
pub const MIN_SCHEDULE_SLEEP: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_durations_are_refused_not_overflowed() {
        for text in ["500000000000years", "20000years", "100000years", "3651d"] {
            let err = parse(text).expect_err(text);
            assert!(err.contains("at most 10 years"), "{err}");
        }
        assert_eq!(parse("3650d"), Ok(MAX));
        assert_eq!(parse(" 5m "), Ok(Duration::from_secs(300)));
        assert!(
            parse("soon")
                .expect_err("not a duration")
                .contains("`soon`")
        );
    }

    #[test]
    fn pacing_intervals_have_a_floor() {
        let err = at_least("`poll_interval`", Duration::ZERO, MIN_POLL_INTERVAL).expect_err("0");
        assert!(
            err.contains("`poll_interval`") && err.contains("10ms"),
            "{err}"
        );
        assert_eq!(
            at_least("x", Duration::from_millis(50), MIN_POLL_INTERVAL),
            Ok(Duration::from_millis(50))
        );
    }
}

//! When to renew: a pure decision from what is deployed, what the CA's renewal information
//! (ARI, RFC 9773) says, past failures and the deployment target's import window.
//!
//! Owns: the renewal rules (ARI window first, else 1/3 of the lifetime left — 1/2 for
//! certificates of 10 days or less), the retry backoff after failures (1 min, 10 min,
//! 100 min, then daily, as Let's Encrypt asks), picking a time inside an ARI window, and
//! whether a target's import window still allows uploading a certificate of the CA's lifetime.
//! Does not own: fetching anything, the clock (`now` is a parameter), or persistence.

use std::time::Duration;

use time::OffsetDateTime;

/// The certificate being renewed, as far as it is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Current {
    /// Validity start (`None` when only the expiry is known, e.g. from EMQX Cloud's API).
    pub not_before: Option<OffsetDateTime>,
    /// Validity end.
    pub not_after: OffsetDateTime,
}

/// The CA's suggested window, with the time this client picked inside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AriChoice {
    /// Window start.
    pub start: OffsetDateTime,
    /// Window end.
    pub end: OffsetDateTime,
    /// The time picked in the window (persisted so it does not move between runs).
    pub chosen: OffsetDateTime,
}

/// Failures of earlier attempts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Failures {
    /// Consecutive failed attempts.
    pub count: u32,
    /// When the last one ended.
    pub last: Option<OffsetDateTime>,
    /// Not before this: the CA's `Retry-After` on a rate limit (it beats a shorter backoff).
    pub not_before: Option<OffsetDateTime>,
}

impl Failures {
    /// Until when to wait after these failures: the backoff, or the CA's `Retry-After`
    /// when later; None when nothing failed.
    pub fn wait_until(&self) -> Option<OffsetDateTime> {
        let backoff_end = match (self.count, self.last) {
            (1.., Some(last)) => Some(last + backoff(self.count)),
            _ => None,
        };
        match (backoff_end, self.not_before) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Everything the decision weighs.
#[derive(Debug, Clone, Copy)]
pub struct Inputs {
    /// Now, from the `Clock`.
    pub now: OffsetDateTime,
    /// What is deployed (or stored); `None` = nothing yet.
    pub current: Option<Current>,
    /// ARI, when the CA offers it and the certificate is known.
    pub ari: Option<AriChoice>,
    /// Past failures.
    pub failures: Failures,
    /// `--force`.
    pub force: bool,
    /// Lifetime assumed when only the expiry is known (the CA's current lifetime).
    pub assumed_lifetime: Duration,
    /// The strictest target's import window: days that must remain at upload (EMQX Cloud: 60).
    pub import_min_days_left: Option<i64>,
}

/// Why a renewal is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// `--force`.
    Forced,
    /// Nothing is deployed yet.
    Missing,
    /// The certificate has expired (or this machine's clock is far ahead).
    Expired,
    /// The CA's ARI window says so.
    AriWindow,
    /// 1/3 (or 1/2) of the lifetime remains.
    Lifetime,
}

/// The decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Renew now.
    Renew(Reason),
    /// Nothing to do before `next`.
    NotDue {
        /// When it becomes due.
        next: OffsetDateTime,
        /// What set that time.
        by: Reason,
    },
    /// Due, but an earlier attempt failed recently: wait until `until` (backoff).
    Backoff {
        /// Next attempt.
        until: OffsetDateTime,
        /// Consecutive failures so far.
        failures: u32,
    },
    /// A certificate of the CA's lifetime can never be uploaded to the target: renewing
    /// would only fail at deployment.
    ImportImpossible {
        /// The lifetime expected.
        lifetime_days: i64,
        /// The target's window.
        min_days_left: i64,
    },
}

impl Decision {
    /// Whether to start a renewal now.
    pub fn renew_now(&self) -> bool {
        matches!(self, Decision::Renew(_))
    }
}

/// Ten days: certificates this short renew at half their lifetime, not a third.
const SHORT_LIVED: Duration = Duration::from_secs(10 * 86_400);

/// Backoff after `failures` consecutive failures: about 1 min, 10 min, 100 min, then daily.
pub fn backoff(failures: u32) -> Duration {
    match failures {
        0 => Duration::ZERO,
        1 => Duration::from_secs(60),
        2 => Duration::from_secs(600),
        3 => Duration::from_secs(6_000),
        _ => Duration::from_secs(86_400),
    }
}

/// When a certificate valid `not_before..not_after` becomes due by lifetime: with 1/3 of it
/// left, or 1/2 for certificates of 10 days or less.
pub fn lifetime_due(not_before: OffsetDateTime, not_after: OffsetDateTime) -> OffsetDateTime {
    let lifetime = not_after - not_before;
    let fraction = if lifetime <= time::Duration::try_from(SHORT_LIVED).unwrap_or_default() {
        2
    } else {
        3
    };
    not_after - lifetime / fraction
}

/// A time in `start..end` at `fraction` (0.0–1.0) of the way: the caller draws `fraction`
/// at random once and persists the result, as RFC 9773 §4.2 asks.
pub fn pick_in_window(start: OffsetDateTime, end: OffsetDateTime, fraction: f64) -> OffsetDateTime {
    if end <= start {
        return start;
    }
    let f = fraction.clamp(0.0, 1.0);
    start + (end - start) * f
}

/// Whether a certificate of `lifetime` can be uploaded to a target that refuses one with
/// `min_days_left` days or fewer left: it can while it has more than that left, so never when
/// its whole lifetime is not longer than the window.
pub fn import_possible(lifetime: Duration, min_days_left: i64) -> bool {
    let days = lifetime.as_secs() as f64 / 86_400.0;
    days > min_days_left as f64
}

/// The decision.
pub fn decide(i: &Inputs) -> Decision {
    let due = due_reason(i);
    match due {
        Err((next, by)) => Decision::NotDue { next, by },
        Ok(reason) => {
            if let Some(min) = i.import_min_days_left {
                let lifetime = expected_lifetime(i);
                if !import_possible(lifetime, min) {
                    return Decision::ImportImpossible {
                        lifetime_days: (lifetime.as_secs() / 86_400) as i64,
                        min_days_left: min,
                    };
                }
            }
            if reason != Reason::Forced
                && let Some(until) = i.failures.wait_until()
                && i.now < until
            {
                return Decision::Backoff {
                    until,
                    failures: i.failures.count,
                };
            }
            Decision::Renew(reason)
        }
    }
}

/// The lifetime a new certificate is expected to have: the current one's, else the assumed.
fn expected_lifetime(i: &Inputs) -> Duration {
    match i.current {
        Some(Current {
            not_before: Some(nb),
            not_after,
        }) if not_after > nb => Duration::try_from(not_after - nb).unwrap_or(i.assumed_lifetime),
        _ => i.assumed_lifetime,
    }
}

fn due_reason(i: &Inputs) -> Result<Reason, (OffsetDateTime, Reason)> {
    if i.force {
        return Ok(Reason::Forced);
    }
    let Some(cur) = i.current else {
        return Ok(Reason::Missing);
    };
    if i.now >= cur.not_after {
        return Ok(Reason::Expired);
    }
    if let Some(ari) = i.ari {
        // The CA's word wins, even when it says "later than the lifetime rule would".
        return if i.now >= ari.chosen || i.now >= ari.end {
            Ok(Reason::AriWindow)
        } else {
            Err((ari.chosen, Reason::AriWindow))
        };
    }
    let not_before = match cur.not_before {
        // A start in the future means this clock is behind (or the CA's ahead): use the
        // lifetime rule on the certificate's own dates, which needs no trust in `now`.
        Some(nb) => nb,
        None => {
            cur.not_after
                - time::Duration::try_from(i.assumed_lifetime).unwrap_or(time::Duration::ZERO)
        }
    };
    let at = lifetime_due(not_before, cur.not_after);
    if i.now >= at {
        Ok(Reason::Lifetime)
    } else {
        Err((at, Reason::Lifetime))
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn days(n: i64) -> time::Duration {
        time::Duration::days(n)
    }

    fn inputs(now: OffsetDateTime) -> Inputs {
        Inputs {
            now,
            current: None,
            ari: None,
            failures: Failures::default(),
            force: false,
            assumed_lifetime: 90 * DAY,
            import_min_days_left: None,
        }
    }

    fn cert(nb: OffsetDateTime, lifetime_days: i64) -> Option<Current> {
        Some(Current {
            not_before: Some(nb),
            not_after: nb + days(lifetime_days),
        })
    }

    const ISSUED: OffsetDateTime = datetime!(2026-11-01 00:00 UTC);

    #[test]
    fn table() {
        let ari = |s: i64, e: i64, c: i64| {
            Some(AriChoice {
                start: ISSUED + days(s),
                end: ISSUED + days(e),
                chosen: ISSUED + days(c),
            })
        };
        // (what, now, current, ari, expected)
        type Row = (
            &'static str,
            OffsetDateTime,
            Option<Current>,
            Option<AriChoice>,
            Decision,
        );
        let rows: Vec<Row> = vec![
            (
                "nothing deployed",
                ISSUED,
                None,
                None,
                Decision::Renew(Reason::Missing),
            ),
            (
                "90-day, day 10: due at day 60",
                ISSUED + days(10),
                cert(ISSUED, 90),
                None,
                Decision::NotDue {
                    next: ISSUED + days(60),
                    by: Reason::Lifetime,
                },
            ),
            (
                "90-day, day 60: due",
                ISSUED + days(60),
                cert(ISSUED, 90),
                None,
                Decision::Renew(Reason::Lifetime),
            ),
            (
                "64-day (2027): due with 1/3 left",
                ISSUED + days(43),
                cert(ISSUED, 64),
                None,
                Decision::Renew(Reason::Lifetime),
            ),
            (
                "45-day (2028), day 29: due at day 30",
                ISSUED + days(29),
                cert(ISSUED, 45),
                None,
                Decision::NotDue {
                    next: ISSUED + days(30),
                    by: Reason::Lifetime,
                },
            ),
            (
                "6-day short-lived: half, day 2 not due",
                ISSUED + days(2),
                cert(ISSUED, 6),
                None,
                Decision::NotDue {
                    next: ISSUED + days(3),
                    by: Reason::Lifetime,
                },
            ),
            (
                "6-day short-lived: day 3 due",
                ISSUED + days(3),
                cert(ISSUED, 6),
                None,
                Decision::Renew(Reason::Lifetime),
            ),
            (
                "expired",
                ISSUED + days(91),
                cert(ISSUED, 90),
                None,
                Decision::Renew(Reason::Expired),
            ),
            (
                "ARI: before the window",
                ISSUED + days(20),
                cert(ISSUED, 90),
                ari(50, 52, 51),
                Decision::NotDue {
                    next: ISSUED + days(51),
                    by: Reason::AriWindow,
                },
            ),
            (
                "ARI: inside the window, before the chosen time",
                ISSUED + days(50),
                cert(ISSUED, 90),
                ari(50, 52, 51),
                Decision::NotDue {
                    next: ISSUED + days(51),
                    by: Reason::AriWindow,
                },
            ),
            (
                "ARI: inside the window, at the chosen time",
                ISSUED + days(51),
                cert(ISSUED, 90),
                ari(50, 52, 51),
                Decision::Renew(Reason::AriWindow),
            ),
            (
                "ARI: after the window",
                ISSUED + days(53),
                cert(ISSUED, 90),
                ari(50, 52, 51),
                Decision::Renew(Reason::AriWindow),
            ),
            (
                "ARI moved the window earlier (revocation): due now, before the 1/3 rule",
                ISSUED + days(5),
                cert(ISSUED, 90),
                ari(-1, 1, 0),
                Decision::Renew(Reason::AriWindow),
            ),
            (
                "ARI later than the lifetime rule: the CA wins",
                ISSUED + days(62),
                cert(ISSUED, 90),
                ari(63, 65, 64),
                Decision::NotDue {
                    next: ISSUED + days(64),
                    by: Reason::AriWindow,
                },
            ),
            (
                "clock behind: the certificate starts tomorrow — not due",
                ISSUED - days(1),
                cert(ISSUED, 90),
                None,
                Decision::NotDue {
                    next: ISSUED + days(60),
                    by: Reason::Lifetime,
                },
            ),
            (
                "clock far ahead: past the expiry — renew (and the CA's dates will tell)",
                ISSUED + days(400),
                cert(ISSUED, 90),
                None,
                Decision::Renew(Reason::Expired),
            ),
        ];
        for (what, now, current, ari, expected) in rows {
            let mut i = inputs(now);
            i.current = current;
            i.ari = ari;
            assert_eq!(decide(&i), expected, "{what}");
        }
    }

    #[test]
    fn only_the_expiry_known_uses_the_assumed_lifetime() {
        let mut i = inputs(ISSUED + days(55));
        i.current = Some(Current {
            not_before: None,
            not_after: ISSUED + days(90),
        });
        assert_eq!(
            decide(&i),
            Decision::NotDue {
                next: ISSUED + days(60),
                by: Reason::Lifetime
            }
        );
        i.assumed_lifetime = 64 * DAY;
        // 64-day lifetime assumed: due with 21.33 days left, i.e. after day 68.67.
        assert!(!decide(&i).renew_now());
        i.now = ISSUED + days(69);
        assert_eq!(decide(&i), Decision::Renew(Reason::Lifetime));
    }

    #[test]
    fn force_renews_even_when_not_due_and_skips_backoff() {
        let mut i = inputs(ISSUED + days(1));
        i.current = cert(ISSUED, 90);
        i.force = true;
        i.failures = Failures {
            count: 3,
            last: Some(ISSUED + days(1)),
            not_before: None,
        };
        assert_eq!(decide(&i), Decision::Renew(Reason::Forced));
    }

    #[test]
    fn failures_back_off_1_10_100_minutes_then_daily() {
        let last = ISSUED + days(70);
        for (count, wait) in [(1, 60), (2, 600), (3, 6_000), (4, 86_400), (9, 86_400)] {
            let mut i = inputs(last + time::Duration::seconds(wait - 1));
            i.current = cert(ISSUED, 90);
            i.failures = Failures {
                count,
                last: Some(last),
                not_before: None,
            };
            assert_eq!(
                decide(&i),
                Decision::Backoff {
                    until: last + time::Duration::seconds(wait),
                    failures: count
                },
                "{count} failures"
            );
            i.now = last + time::Duration::seconds(wait);
            assert_eq!(decide(&i), Decision::Renew(Reason::Lifetime), "{count}");
        }
    }

    #[test]
    fn import_window_makes_short_lifetimes_impossible() {
        // EMQX Cloud's 60-day window: 90 and 64 days can be uploaded (right after issuance),
        // 45 days never.
        for (lifetime, ok) in [(90, true), (64, true), (61, true), (60, false), (45, false)] {
            let mut i = inputs(ISSUED + days(lifetime));
            i.current = cert(ISSUED, lifetime);
            i.import_min_days_left = Some(60);
            let d = decide(&i);
            if ok {
                assert!(d.renew_now(), "{lifetime}: {d:?}");
            } else {
                assert_eq!(
                    d,
                    Decision::ImportImpossible {
                        lifetime_days: lifetime,
                        min_days_left: 60
                    },
                    "{lifetime}"
                );
            }
        }
        // Nothing deployed yet: the assumed (CA) lifetime decides.
        let mut i = inputs(ISSUED);
        i.import_min_days_left = Some(60);
        i.assumed_lifetime = 45 * DAY;
        assert!(matches!(decide(&i), Decision::ImportImpossible { .. }));
        // A not-due certificate is simply not due, whatever the window.
        let mut i = inputs(ISSUED + days(1));
        i.current = cert(ISSUED, 45);
        i.import_min_days_left = Some(60);
        assert!(matches!(decide(&i), Decision::NotDue { .. }));
    }

    #[test]
    fn picking_in_the_window() {
        let s = ISSUED;
        let e = ISSUED + days(2);
        assert_eq!(pick_in_window(s, e, 0.0), s);
        assert_eq!(pick_in_window(s, e, 1.0), e);
        assert_eq!(pick_in_window(s, e, 0.5), s + days(1));
        assert_eq!(pick_in_window(s, e, 7.0), e);
        assert_eq!(pick_in_window(e, s, 0.5), e, "an inverted window means now");
    }

    #[test]
    fn the_cas_retry_after_beats_a_shorter_backoff() {
        let last = ISSUED + days(1);
        let f = Failures {
            count: 1,
            last: Some(last),
            not_before: Some(last + days(2)),
        };
        assert_eq!(f.wait_until(), Some(last + days(2)));
        let f = Failures {
            not_before: Some(last + Duration::from_secs(1)),
            ..f
        };
        assert_eq!(f.wait_until(), Some(last + backoff(1)));
        let only_ca = Failures {
            count: 0,
            last: None,
            not_before: Some(last),
        };
        assert_eq!(only_ca.wait_until(), Some(last));
        assert_eq!(Failures::default().wait_until(), None);
    }
}

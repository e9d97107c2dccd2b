//! Which certificate a target serves, judged from what its API reports about it.
//!
//! EMQX Cloud names the installed certificate only by `expire` (second precision) and maybe
//! an undocumented `cn`; its documentation gives no time zone for `expire`. So:
//! - `expire` with a zone marker (`Z`, `UTC`, `+08:00`, `UTC+8`) is compared exactly;
//! - `expire` without one may be UTC or any local time: it matches a notAfter that differs
//!   by a whole number of quarter hours (every time zone's offset is one) of at most 14 h;
//! - `cn`, when present and not empty, must name the leaf (its subject CN, or for a leaf
//!   without one, such as Let's Encrypt's `tlsserver` profile, one of its DNS names).
//!
//! The tolerance can take a certificate expiring a few hours apart for the served one; the
//! callers let the MQTT probe's served serial decide when the broker is reachable.
//! Owns: parsing `expire` and those comparisons. Does not own any request.

use time::{Duration, OffsetDateTime, UtcOffset};

use crate::pki::certificate::Certificate;

/// How far a time without a zone marker may be from UTC: the widest offsets in use are
/// UTC−12 and UTC+14.
pub const UNKNOWN_ZONE_SLACK: Duration = Duration::hours(14);

/// Every time zone's offset is a whole number of quarter hours.
const OFFSET_STEP_SECONDS: i64 = 15 * 60;

/// A reported expiry: the instant read as UTC when no zone was given, and how far off that
/// reading may be (zero when the zone was stated).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expire {
    /// The instant (taken as UTC when no zone was given).
    pub at: OffsetDateTime,
    /// Zero when the text named its zone, else [`UNKNOWN_ZONE_SLACK`].
    pub slack: Duration,
}

impl Expire {
    /// An exactly known instant.
    pub fn exact(at: OffsetDateTime) -> Self {
        Self {
            at,
            slack: Duration::ZERO,
        }
    }

    /// Whether this can be the expiry `not_after` (see the module comment).
    pub fn matches(&self, not_after: OffsetDateTime) -> bool {
        let diff = (self.at - not_after).abs();
        if self.slack.is_zero() {
            diff.is_zero()
        } else {
            diff <= self.slack && diff.whole_seconds() % OFFSET_STEP_SECONDS == 0
        }
    }

    /// The earliest instant it can be (for renewal decisions: never later than real).
    pub fn earliest(&self) -> OffsetDateTime {
        self.at - self.slack
    }

    /// Whether it is surely before `t` (older than a certificate expiring at `t`).
    pub fn surely_before(&self, t: OffsetDateTime) -> bool {
        self.at + self.slack < t
    }
}

impl std::fmt::Display for Expire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let fmt =
            time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
        let text = self.at.format(&fmt).map_err(|_| std::fmt::Error)?;
        if self.slack.is_zero() {
            write!(f, "{text} UTC")
        } else {
            write!(f, "{text} (time zone not stated)")
        }
    }
}

/// Parses `expire`: `YYYY-MM-DD HH:MM:SS` (or with `T`), optionally with fractional
/// seconds, followed by nothing (zone unknown), `Z`, `UTC`/`GMT`, `±HH[:MM]`, or
/// `UTC±H[:MM]`.
pub fn parse_expire(text: &str) -> Option<Expire> {
    let s = text.trim();
    if s.len() < 19 || !s.is_char_boundary(19) {
        return None;
    }
    let (date_time, rest) = s.split_at(19);
    let date_time = date_time.replacen('T', " ", 1);
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    let local = time::PrimitiveDateTime::parse(&date_time, &fmt).ok()?;
    let mut rest = rest;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        rest = &frac[digits..];
    }
    let zone = rest.trim();
    if zone.is_empty() {
        return Some(Expire {
            at: local.assume_utc(),
            slack: UNKNOWN_ZONE_SLACK,
        });
    }
    let offset = parse_zone(zone)?;
    Some(Expire::exact(
        local.assume_offset(offset).to_offset(UtcOffset::UTC),
    ))
}

fn parse_zone(zone: &str) -> Option<UtcOffset> {
    let upper = zone.to_ascii_uppercase();
    let numeric = match upper.as_str() {
        "Z" | "UTC" | "GMT" => return Some(UtcOffset::UTC),
        z => z
            .strip_prefix("UTC")
            .or_else(|| z.strip_prefix("GMT"))
            .unwrap_or(z)
            .trim(),
    };
    let (sign, digits) = match numeric.as_bytes().first()? {
        b'+' => (1i8, &numeric[1..]),
        b'-' => (-1i8, &numeric[1..]),
        _ => return None,
    };
    let (h, m) = match digits.split_once(':') {
        Some((h, m)) => (h, m),
        None if digits.len() == 4 => digits.split_at(2),
        None => (digits, "0"),
    };
    let (h, m): (i8, i8) = (h.parse().ok()?, m.parse().ok()?);
    if !(0..=14).contains(&h) || !(0..60).contains(&m) {
        return None;
    }
    UtcOffset::from_hms(sign * h, sign * m, 0).ok()
}

/// Whether a reported `cn` names `leaf`: absent or empty says nothing (true).
pub fn cn_names(cn: Option<&str>, leaf: &Certificate) -> bool {
    let Some(cn) = cn.map(str::trim).filter(|c| !c.is_empty()) else {
        return true;
    };
    match leaf.subject_cn() {
        Some(subject) => subject.eq_ignore_ascii_case(cn),
        None => leaf.dns_names().iter().any(|n| n.eq_ignore_ascii_case(cn)),
    }
}

/// Whether a target reporting `expire` and `cn` can be serving `leaf` (None = `expire`
/// missing or unreadable: unknown).
pub fn names_leaf(expire: Option<&Expire>, cn: Option<&str>, leaf: &Certificate) -> Option<bool> {
    expire.map(|e| e.matches(leaf.not_after()) && cn_names(cn, leaf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOT_AFTER: OffsetDateTime = datetime!(2034-05-22 02:43:21 UTC);

    #[test]
    fn a_marked_zone_is_exact() {
        for text in [
            "2034-05-22 02:43:21Z",
            "2034-05-22T02:43:21Z",
            "2034-05-22 02:43:21 UTC",
            "2034-05-22 10:43:21+08:00",
            "2034-05-22 10:43:21 +0800",
            "2034-05-22 10:43:21 UTC+8",
            "2034-05-22 10:43:21 GMT+08:00",
            "2034-05-21 21:43:21-05:00",
            "2034-05-22 08:13:21+05:30",
            "2034-05-22 02:43:21.000Z",
        ] {
            let e = parse_expire(text).unwrap_or_else(|| panic!("{text}"));
            assert_eq!(e.slack, Duration::ZERO, "{text}");
            assert!(e.matches(NOT_AFTER), "{text}");
            assert!(!e.matches(NOT_AFTER + Duration::hours(1)), "{text}");
        }
    }

    #[test]
    fn no_marker_matches_any_offset_but_not_other_seconds() {
        for (text, _offset) in [
            ("2034-05-22 02:43:21", 0),
            ("2034-05-22 10:43:21", 8),
            ("2034-05-21 14:43:21", -12),
            ("2034-05-22 16:43:21", 14),
            ("2034-05-22 08:13:21", 5), // +05:30
            ("2034-05-22 08:28:21", 5), // +05:45 (Nepal)
        ] {
            let e = parse_expire(text).unwrap_or_else(|| panic!("{text}"));
            assert_eq!(e.slack, UNKNOWN_ZONE_SLACK);
            assert!(e.matches(NOT_AFTER), "{text}");
            assert!(
                !e.matches(NOT_AFTER + Duration::SECOND),
                "{text}: a second apart"
            );
            assert!(
                !e.matches(NOT_AFTER + Duration::days(2)),
                "{text}: two days apart"
            );
        }
        // Beyond any offset.
        assert!(
            !parse_expire("2034-05-22 17:43:21")
                .unwrap()
                .matches(NOT_AFTER)
        );
    }

    #[test]
    fn bad_expire_texts_are_unknown() {
        for text in [
            "",
            "not a date",
            "2034-05-22",
            "2034-05-22 02:43:21 CEST",
            "2034-05-22 02:43:21+15:00",
            "2034-13-22 02:43:21",
        ] {
            assert!(parse_expire(text).is_none(), "{text}");
        }
    }

    #[test]
    fn earliest_and_surely_before_allow_for_the_slack() {
        let e = parse_expire("2034-05-22 02:43:21").unwrap();
        assert_eq!(e.earliest(), NOT_AFTER - Duration::hours(14));
        assert!(!e.surely_before(NOT_AFTER + Duration::hours(10)));
        assert!(e.surely_before(NOT_AFTER + Duration::days(30)));
        let exact = Expire::exact(NOT_AFTER);
        assert!(exact.surely_before(NOT_AFTER + Duration::SECOND));
    }

    #[test]
    fn cn_absent_or_empty_says_nothing_and_a_cn_must_name_the_leaf() {
        use crate::pki::test_support::{TestCa, ecdsa_p256};
        let root = TestCa::root("Identity Root", ecdsa_p256());
        let leaf = root.leaf(&["broker.example.test"], &ecdsa_p256());
        let cn = leaf.subject_cn();
        assert!(cn_names(None, &leaf));
        assert!(cn_names(Some(""), &leaf));
        assert!(cn_names(Some("  "), &leaf));
        assert!(cn_names(cn.as_deref(), &leaf));
        assert!(!cn_names(Some("other.example.test"), &leaf));
        let e = Expire::exact(leaf.not_after());
        assert_eq!(names_leaf(Some(&e), Some(""), &leaf), Some(true));
        assert_eq!(
            names_leaf(Some(&e), Some("other.example.test"), &leaf),
            Some(false)
        );
        assert_eq!(names_leaf(None, None, &leaf), None);

        // A leaf without a subject CN (Let's Encrypt's `tlsserver` profile): a reported
        // name may be one of its DNS names.
        let mut params = crate::pki::test_support::leaf_params(&["broker.example.test"]);
        params.distinguished_name = rcgen::DistinguishedName::new();
        let no_cn = root.sign(&params, &ecdsa_p256());
        assert_eq!(no_cn.subject_cn(), None);
        assert!(cn_names(Some(""), &no_cn));
        assert!(cn_names(Some("broker.example.test"), &no_cn));
        assert!(!cn_names(Some("other.example.test"), &no_cn));
    }
}

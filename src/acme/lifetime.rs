//! How long a fresh certificate from a known CA lasts, by profile and date, and what that
//! leaves of a target's import window (EMQX Cloud refuses certificates in their last
//! `min_days_left` days).
//!
//! Facts (Let's Encrypt's announcements): the `classic` profile (the default) issues 90-day
//! certificates, 64-day ones from 2027-02-10 and 45-day ones from 2028-02-16; `tlsserver`
//! issues 45-day ones, `shortlived` 160-hour ones. ZeroSSL and Google Trust Services issue
//! 90-day certificates by default. Unknown CAs or profiles: nothing is claimed.
//! Owns: those facts and the arithmetic. Does not own the directory shortcuts (`config`)
//! or any request.

use time::{Date, Duration, Month};

use crate::config::{
    AcmeSettings, GOOGLE, GOOGLE_STAGING, LETSENCRYPT, LETSENCRYPT_STAGING, ZEROSSL,
};

/// Let's Encrypt's `classic` lifetime changes: (from this date, days).
const LE_CLASSIC: &[(Date, i64)] = &[
    (date(2027, Month::February, 10), 64),
    (date(2028, Month::February, 16), 45),
];

const fn date(year: i32, month: Month, day: u8) -> Date {
    match Date::from_calendar_date(year, month, day) {
        Ok(d) => d,
        Err(_) => panic!("bad date"),
    }
}

/// Which CA a directory URL is, when it is one we know: (display name, whether it is
/// Let's Encrypt).
fn known_ca(directory: &str) -> Option<(&'static str, bool)> {
    match directory {
        LETSENCRYPT => Some(("Let's Encrypt", true)),
        LETSENCRYPT_STAGING => Some(("Let's Encrypt (staging)", true)),
        ZEROSSL => Some(("ZeroSSL", false)),
        GOOGLE | GOOGLE_STAGING => Some(("Google Trust Services", false)),
        _ => None,
    }
}

/// The lifetime of a certificate issued on `on` by the CA at `directory` with `profile`
/// (None = the CA's default); None when not known.
pub fn lifetime_on(directory: &str, profile: Option<&str>, on: Date) -> Option<Duration> {
    let (_, is_le) = known_ca(directory)?;
    if !is_le {
        return profile.is_none().then_some(Duration::days(90));
    }
    match profile.unwrap_or("classic") {
        "classic" => Some(Duration::days(
            LE_CLASSIC
                .iter()
                .rev()
                .find(|(from, _)| on >= *from)
                .map_or(90, |(_, days)| *days),
        )),
        "tlsserver" => Some(Duration::days(45)),
        "shortlived" => Some(Duration::hours(160)),
        _ => None,
    }
}

/// What a target with an import window of `min_days_left` days can do with fresh
/// certificates from a CA, from `today` on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportOutlook {
    /// The CA's name.
    pub ca: &'static str,
    /// The profile (the CA's default when None).
    pub profile: Option<String>,
    /// Lifetime of a certificate issued today.
    pub lifetime_today: Duration,
    /// Days a certificate issued today can be imported (negative or zero: never).
    pub importable_days_today: i64,
    /// Announced changes from `today` on: (from, lifetime, importable days).
    pub changes: Vec<(Date, Duration, i64)>,
    /// The first date from which a fresh certificate can never be imported, when any.
    pub never_from: Option<Date>,
}

fn importable(lifetime: Duration, min_days_left: i64) -> i64 {
    (lifetime - Duration::days(min_days_left)).whole_days()
}

/// The outlook, or None when the CA's lifetimes are not known or the target has no window.
pub fn import_outlook(
    directory: &str,
    profile: Option<&str>,
    min_days_left: i64,
    today: Date,
) -> Option<ImportOutlook> {
    if min_days_left <= 0 {
        return None;
    }
    let (ca, is_le) = known_ca(directory)?;
    let lifetime_today = lifetime_on(directory, profile, today)?;
    let importable_days_today = importable(lifetime_today, min_days_left);
    let changes: Vec<(Date, Duration, i64)> = if is_le && profile.unwrap_or("classic") == "classic"
    {
        LE_CLASSIC
            .iter()
            .filter(|(from, _)| *from > today)
            .map(|(from, days)| {
                let l = Duration::days(*days);
                (*from, l, importable(l, min_days_left))
            })
            .collect()
    } else {
        Vec::new()
    };
    let never_from = if importable_days_today <= 0 {
        Some(today)
    } else {
        changes.iter().find(|c| c.2 <= 0).map(|c| c.0)
    };
    Some(ImportOutlook {
        ca,
        profile: profile.map(str::to_string),
        lifetime_today,
        importable_days_today,
        changes,
        never_from,
    })
}

fn lifetime_text(d: Duration) -> String {
    if d.whole_hours() % 24 == 0 {
        format!("{} days", d.whole_days())
    } else {
        format!("{} hours", d.whole_hours())
    }
}

fn importable_text(days: i64) -> String {
    if days <= 0 {
        "can never be imported".into()
    } else {
        format!(
            "can be imported for {days} day{}",
            if days == 1 { "" } else { "s" }
        )
    }
}

/// The way out when certificates get too short for the window.
pub const WAY_OUT: &str = "an ACME CA with longer certificates, such as `directory = \"zerossl\"` or `directory = \"google\"` (both need External Account Binding: `eab_kid` and its HMAC key)";

impl ImportOutlook {
    /// One paragraph for `target` with a window of `min_days_left` days.
    pub fn message(&self, target: &str, min_days_left: i64) -> String {
        let profile = self
            .profile
            .as_deref()
            .map(|p| format!(" (profile {p})"))
            .unwrap_or_default();
        let mut out = format!(
            "{target}: a fresh certificate from {}{profile} lasts {} and {} (the target refuses certificates in their last {min_days_left} days)",
            self.ca,
            lifetime_text(self.lifetime_today),
            importable_text(self.importable_days_today),
        );
        for (from, lifetime, days) in &self.changes {
            out.push_str(&format!(
                "; from {from} it lasts {} and {}",
                lifetime_text(*lifetime),
                importable_text(*days)
            ));
        }
        match self.never_from {
            Some(d) if self.importable_days_today <= 0 => out.push_str(&format!(
                ". No certificate from this CA and profile can be imported (since {d} at the latest): use {WAY_OUT}"
            )),
            Some(d) => out.push_str(&format!(
                ". From {d} no fresh certificate can be imported: before then, switch to {WAY_OUT}"
            )),
            None if self.importable_days_today < 14 => out.push_str(&format!(
                ". That leaves little room for a failed renewal: consider {WAY_OUT}"
            )),
            None => out.push('.'),
        }
        out
    }
}

/// One paragraph per target with an import window (`(description, min_days_left)`) about
/// fresh certificates from the configured CA and profile, from `today` on (`plan`,
/// `status`, `check`); empty when the CA's lifetimes are unknown.
pub fn notes(acme: &AcmeSettings, targets: &[(String, i64)], today: Date) -> Vec<String> {
    targets
        .iter()
        .filter_map(|(target, days)| {
            import_outlook(&acme.directory, acme.profile.as_deref(), *days, today)
                .map(|o| o.message(target, *days))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn classic_lifetimes_follow_the_announced_dates() {
        let l = |d| lifetime_on(LETSENCRYPT, None, d).map(|x| x.whole_days());
        assert_eq!(l(date!(2026 - 12 - 07)), Some(90));
        assert_eq!(l(date!(2027 - 02 - 09)), Some(90));
        assert_eq!(l(date!(2027 - 02 - 10)), Some(64));
        assert_eq!(l(date!(2028 - 02 - 15)), Some(64));
        assert_eq!(l(date!(2028 - 02 - 16)), Some(45));
        assert_eq!(
            lifetime_on(
                LETSENCRYPT_STAGING,
                Some("tlsserver"),
                date!(2026 - 12 - 07)
            ),
            Some(Duration::days(45))
        );
        assert_eq!(
            lifetime_on(LETSENCRYPT, Some("shortlived"), date!(2026 - 12 - 07)),
            Some(Duration::hours(160))
        );
        assert_eq!(
            lifetime_on(LETSENCRYPT, Some("nosuch"), date!(2026 - 12 - 07)),
            None
        );
        assert_eq!(
            lifetime_on("https://127.0.0.1:14000/dir", None, date!(2026 - 12 - 07)),
            None
        );
        assert_eq!(
            lifetime_on(ZEROSSL, None, date!(2029 - 01 - 01)),
            Some(Duration::days(90))
        );
    }

    #[test]
    fn the_emqx_window_against_classic_today_and_later() {
        let o = import_outlook(LETSENCRYPT, None, 60, date!(2026 - 12 - 07)).unwrap();
        assert_eq!(o.importable_days_today, 30);
        assert_eq!(
            o.changes.iter().map(|c| (c.0, c.2)).collect::<Vec<_>>(),
            vec![(date!(2027 - 02 - 10), 4), (date!(2028 - 02 - 16), -15)]
        );
        assert_eq!(o.never_from, Some(date!(2028 - 02 - 16)));
        let m = o.message("EMQX Cloud deployment d1", 60);
        assert!(
            m.contains("lasts 90 days and can be imported for 30 days")
                && m.contains("from 2027-02-10 it lasts 64 days and can be imported for 4 days")
                && m.contains("from 2028-02-16 it lasts 45 days and can never be imported")
                && m.contains("zerossl"),
            "{m}"
        );

        let later = import_outlook(LETSENCRYPT, None, 60, date!(2028 - 03 - 01)).unwrap();
        assert_eq!(later.importable_days_today, -15);
        assert!(
            later
                .message("t", 60)
                .contains("No certificate from this CA")
        );

        let tls =
            import_outlook(LETSENCRYPT, Some("tlsserver"), 60, date!(2026 - 12 - 07)).unwrap();
        assert_eq!(tls.never_from, Some(date!(2026 - 12 - 07)));

        let zerossl = import_outlook(ZEROSSL, None, 60, date!(2028 - 03 - 01)).unwrap();
        assert_eq!(
            (zerossl.importable_days_today, zerossl.never_from),
            (30, None)
        );
        assert!(import_outlook(LETSENCRYPT, None, 0, date!(2026 - 12 - 07)).is_none());
    }
}

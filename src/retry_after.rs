//! `Retry-After` (RFC 9110 §10.2.3): either delay seconds or an HTTP date.
//!
//! Owns: reading the header's value into a wait from `now`. Does not own how long a caller
//! is willing to wait.

use std::time::Duration;

use time::OffsetDateTime;

/// The wait a `Retry-After` value asks for, from `now`: `120` → 2 min;
/// `Sun, 06 Nov 1994 08:49:37 GMT` → until then (zero when past). `None` when unreadable.
pub fn parse(value: &str, now: OffsetDateTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let fmt = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let at = time::PrimitiveDateTime::parse(value, &fmt)
        .ok()?
        .assume_utc();
    Some(Duration::try_from(at - now).unwrap_or(Duration::ZERO))
}

/// The `Retry-After` of `headers`, from the current time.
pub fn from_headers(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    parse(value, OffsetDateTime::now_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn seconds_and_http_dates() {
        let now = datetime!(2026-12-07 18:00:00 UTC);
        assert_eq!(parse("120", now), Some(Duration::from_secs(120)));
        assert_eq!(parse(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse("Mon, 07 Dec 2026 18:05:00 GMT", now),
            Some(Duration::from_secs(300))
        );
        assert_eq!(
            parse("Mon, 07 Dec 2026 17:00:00 GMT", now),
            Some(Duration::ZERO),
            "a date in the past means now"
        );
        assert_eq!(parse("soon", now), None);
        assert_eq!(parse("-5", now), None);
    }
}

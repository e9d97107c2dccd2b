//! What every certificate made here shares: a random serial number and a
//! validity window computed from `now` and a number of days (backdated a little
//! for brokers whose clock runs behind).
//!
//! Owns: serials, `--days` limits and window arithmetic. Does not own: the
//! other certificate fields (see `ca`, `issue`).

use rcgen::SerialNumber;
use time::{OffsetDateTime, UtcOffset};

use super::error::ClientPkiError;

/// Certificates are backdated by this much, so a broker whose clock is a few
/// minutes behind still accepts a certificate made just now.
pub const BACKDATE: time::Duration = time::Duration::minutes(5);

/// The longest validity `--days` accepts (100 years).
pub const MAX_DAYS: u32 = 36_500;

/// A validity window: `not_before` is `now` minus [`BACKDATE`], `not_after` is
/// `now` plus `days`; both in UTC, whole seconds (X.509 has no fractions).
pub fn validity(
    now: OffsetDateTime,
    days: u32,
) -> Result<(OffsetDateTime, OffsetDateTime), ClientPkiError> {
    if days == 0 || days > MAX_DAYS {
        return Err(ClientPkiError::InvalidDays {
            days,
            max: MAX_DAYS,
        });
    }
    let now = now
        .to_offset(UtcOffset::UTC)
        .replace_nanosecond(0)
        .unwrap_or(now);
    Ok((now - BACKDATE, now + time::Duration::days(i64::from(days))))
}

/// 16 random bytes, positive and without a leading zero byte (RFC 5280 §4.1.2.2:
/// unique per CA, at most 20 octets).
pub fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] = (bytes[0] & 0x7f) | 0x01;
    SerialNumber::from_slice(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn the_window_starts_backdated_and_lasts_the_days() {
        let now = datetime!(2026-03-01 12:00:00.75 +02:00);
        let (from, until) = validity(now, 365).unwrap();
        assert_eq!(from, datetime!(2026-03-01 09:55:00 UTC));
        assert_eq!(until, datetime!(2027-03-01 10:00:00 UTC));
        assert_eq!(from.offset(), UtcOffset::UTC);
    }

    #[test]
    fn days_out_of_range_are_refused() {
        let now = datetime!(2026-03-01 12:00 UTC);
        for days in [0, MAX_DAYS + 1] {
            let err = validity(now, days).unwrap_err();
            assert!(matches!(err, ClientPkiError::InvalidDays { .. }), "{err}");
            assert!(err.to_string().contains("--days"), "{err}");
        }
        assert!(validity(now, MAX_DAYS).is_ok());
    }

    #[test]
    fn serials_are_positive_and_differ() {
        let a = random_serial().to_bytes();
        let b = random_serial().to_bytes();
        assert_eq!(a.len(), 16);
        assert!(a[0] & 0x80 == 0 && a[0] != 0);
        assert_ne!(a, b);
    }
}

//! How long to wait between polls of an order: a pure schedule of the attempt number, the
//! CA's `Retry-After` and the kind of CA.
//!
//! Owns: the schedule ([`next_wait`]) and telling a CA on this machine from a real one
//! ([`CaKind::of_directory`]). Does not own the polling loop (`client`) or reading the header
//! (`crate::retry_after`).
//!
//! The rules:
//! - **`Retry-After` always wins** when it asks for longer than the schedule: RFC 8555 §7.4
//!   and §7.5.1 say a client polling an order or authorization should honour it, and Let's
//!   Encrypt asks clients to poll the order after an (asynchronous) finalize and to respect
//!   the header
//!   (<https://community.letsencrypt.org/t/enabling-asynchronous-order-finalization/193522>;
//!   its integration guide, <https://letsencrypt.org/docs/integration-guide/>, asks for
//!   backoff rather than hammering).
//! - **A real CA is never polled more often than once a second**, backing off ×1.5 up to
//!   10 s between polls. A DNS-01 validation at a public CA takes seconds (it queries every
//!   authoritative server of the zone), so a faster first poll would only cost the CA requests.
//! - **A CA on this machine** (the directory URL's host is a loopback address or
//!   `localhost`: Pebble in the sandbox, a test CA) answers in milliseconds, so its polls
//!   start at 10 ms and double up to 1 s: a validation that Pebble finishes in 5 ms is seen
//!   at 10 ms instead of 100 ms.

use std::net::IpAddr;
use std::time::Duration;

/// Whether the CA runs on this machine (polled quickly) or not (polled politely).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaKind {
    /// The directory's host is a loopback address or `localhost`.
    Loopback,
    /// Anything else (Let's Encrypt, ZeroSSL, a CA on the network).
    Remote,
}

impl CaKind {
    /// The kind of the CA whose directory is at `url`. An unparsable URL is `Remote`.
    pub fn of_directory(url: &str) -> Self {
        let Ok(parsed) = reqwest::Url::parse(url) else {
            return CaKind::Remote;
        };
        let host = parsed.host_str().unwrap_or("");
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let loopback = match host.parse::<IpAddr>() {
            Ok(ip) => ip.is_loopback(),
            Err(_) => {
                let host = host.to_ascii_lowercase();
                host == "localhost" || host.ends_with(".localhost")
            }
        };
        if loopback {
            CaKind::Loopback
        } else {
            CaKind::Remote
        }
    }

    /// (first wait, longest wait, growth numerator, growth denominator) of this kind's schedule.
    fn schedule(self) -> (Duration, Duration, u32, u32) {
        match self {
            // ×2
            CaKind::Loopback => (Duration::from_millis(10), Duration::from_secs(1), 2, 1),
            // ×1.5
            CaKind::Remote => (Duration::from_secs(1), Duration::from_secs(10), 3, 2),
        }
    }
}

/// The wait before poll number `attempt` (0 for the first poll after the request that
/// started the wait), given the `Retry-After` of the CA's last answer for this order.
pub fn next_wait(kind: CaKind, attempt: u32, retry_after: Option<Duration>) -> Duration {
    let (first, longest, num, den) = kind.schedule();
    let mut wait = first;
    for _ in 0..attempt {
        wait = wait * num / den;
        if wait >= longest {
            wait = longest;
            break;
        }
    }
    match retry_after {
        Some(asked) => wait.max(asked),
        None => wait,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn loopback_starts_at_10ms_and_doubles_up_to_a_second() {
        let waits: Vec<Duration> = (0..9)
            .map(|a| next_wait(CaKind::Loopback, a, None))
            .collect();
        assert_eq!(
            waits,
            vec![
                ms(10),
                ms(20),
                ms(40),
                ms(80),
                ms(160),
                ms(320),
                ms(640),
                ms(1000),
                ms(1000)
            ]
        );
        assert_eq!(next_wait(CaKind::Loopback, u32::MAX, None), ms(1000));
    }

    #[test]
    fn a_real_ca_is_never_polled_more_than_once_a_second() {
        let waits: Vec<Duration> = (0..8).map(|a| next_wait(CaKind::Remote, a, None)).collect();
        assert_eq!(
            waits,
            vec![
                ms(1000),
                ms(1500),
                ms(2250),
                ms(3375),
                ms(5062) + Duration::from_micros(500),
                ms(7593) + Duration::from_micros(750),
                ms(10_000),
                ms(10_000)
            ]
        );
        for a in 0..100 {
            assert!(next_wait(CaKind::Remote, a, Some(Duration::ZERO)) >= ms(1000));
        }
    }

    #[test]
    fn retry_after_wins_when_longer_for_either_kind() {
        for kind in [CaKind::Loopback, CaKind::Remote] {
            assert_eq!(
                next_wait(kind, 0, Some(Duration::from_secs(3))),
                Duration::from_secs(3)
            );
            assert_eq!(
                next_wait(kind, 50, Some(Duration::from_secs(60))),
                Duration::from_secs(60),
                "a long Retry-After is not capped by the schedule"
            );
        }
        assert_eq!(next_wait(CaKind::Loopback, 0, Some(ms(2))), ms(10));
    }

    #[test]
    fn only_a_directory_on_this_machine_is_loopback() {
        for url in [
            "https://127.0.0.1:14000/dir",
            "https://127.5.0.1/dir",
            "https://[::1]:14000/dir",
            "https://localhost:14000/dir",
            "https://pebble.localhost/dir",
        ] {
            assert_eq!(CaKind::of_directory(url), CaKind::Loopback, "{url}");
        }
        for url in [
            "https://acme-v02.api.letsencrypt.org/directory",
            "https://acme-staging-v02.api.letsencrypt.org/directory",
            "https://10.0.0.5/dir",
            "https://localhost.example.com/dir",
            "not a url",
        ] {
            assert_eq!(CaKind::of_directory(url), CaKind::Remote, "{url}");
        }
    }
}

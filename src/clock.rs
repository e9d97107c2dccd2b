//! The clock every decision reads `now` from.
//!
//! Owns: the `Clock` trait, the system clock and a fixed clock for tests.
//! Does not own: timeouts of network waits (those use tokio's monotonic timer).

use time::OffsetDateTime;

/// Source of the current wall-clock time for decisions (validity, renewal).
pub trait Clock: Send + Sync {
    /// The current time in UTC.
    fn now(&self) -> OffsetDateTime;
}

/// The operating system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that always answers the same instant (tests, planning).
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub OffsetDateTime);

impl Clock for FixedClock {
    fn now(&self) -> OffsetDateTime {
        self.0
    }
}

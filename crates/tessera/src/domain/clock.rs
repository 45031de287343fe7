//! Time as Unix milliseconds, and its RFC 3339 form in token claims. The domain asks a
//! [`Clock`] for the time, so that tests can move it instead of waiting.
use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use time::{OffsetDateTime, format_description::well_known::Rfc3339, macros::format_description};

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Where the domain reads the time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
}

/// The clock every domain component holds.
pub type SharedClock = Arc<dyn Clock>;

/// The system's clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        now_ms()
    }
}

impl SystemClock {
    /// The system clock, shared.
    pub fn shared() -> SharedClock {
        Arc::new(Self)
    }
}

/// A clock that moves only when told to. Clones share the time.
#[cfg(any(test, feature = "test-hooks"))]
#[derive(Clone, Debug)]
pub struct ManualClock(Arc<std::sync::atomic::AtomicI64>);

#[cfg(any(test, feature = "test-hooks"))]
impl ManualClock {
    /// A clock that reads `unix_ms` until moved.
    pub fn starting_at(unix_ms: i64) -> Self {
        Self(Arc::new(std::sync::atomic::AtomicI64::new(unix_ms)))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.0
            .fetch_add(ms(by), std::sync::atomic::Ordering::SeqCst);
    }
}

#[cfg(any(test, feature = "test-hooks"))]
impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A duration in milliseconds, saturating.
pub fn ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// `2026-11-28T13:41:31.123+00:00`: RFC 3339 in UTC with milliseconds, the form PASETO
/// libraries parse.
pub fn format_rfc3339(unix_ms: i64) -> String {
    let format = format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]+00:00"
    );
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(format).ok())
        .unwrap_or_default()
}

/// Parses any RFC 3339 date-time into Unix milliseconds.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let t = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips_milliseconds() {
        let t = 1_795_000_123_456;
        assert_eq!(parse_rfc3339(&format_rfc3339(t)), Some(t));
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00.000+00:00");
    }

    #[test]
    fn parse_rejects_garbage() {
        assert_eq!(parse_rfc3339("yesterday"), None);
        assert_eq!(parse_rfc3339(""), None);
    }
}

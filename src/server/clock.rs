//! The server's notion of "now", which tests can move forward.
//!
//! Retention (24 hours at least), iterator expiry (5 minutes) and stream status
//! changes are all defined in wall-clock time; tests check them by advancing this
//! clock instead of waiting.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// A cheap, clonable handle to the server clock: system time plus an offset, or a
/// frozen time that moves only when advanced.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    frozen_at_ms: Option<Millis>,
    offset_ms: Arc<AtomicI64>,
}

fn system_ms() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Clock {
    /// A clock stopped at the current time: rate limits and expiry become exact in
    /// tests, because only [`Clock::advance`] moves it.
    pub fn frozen() -> Self {
        Clock {
            frozen_at_ms: Some(system_ms()),
            offset_ms: Arc::default(),
        }
    }

    pub fn now_ms(&self) -> Millis {
        self.frozen_at_ms.unwrap_or_else(system_ms) + self.offset_ms.load(Ordering::Relaxed)
    }

    /// Moves the clock forward; used by tests to expire iterators and retention.
    pub fn advance(&self, by: Duration) {
        self.offset_ms
            .fetch_add(by.as_millis() as i64, Ordering::Relaxed);
    }
}

/// Formats epoch milliseconds as Kinesis does in error messages: `Thu Jan 22 01:22:02 UTC 2015`.
pub fn format_utc(ms: Millis) -> String {
    crate::time::kinesis_message_date(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_kinesis_messages() {
        assert_eq!(
            format_utc(1_421_889_722_000),
            "Thu Jan 22 01:22:02 UTC 2015"
        );
        assert_eq!(format_utc(0), "Thu Jan 01 00:00:00 UTC 1970");
    }

    #[test]
    fn advancing_moves_now_forward() {
        let clock = Clock::default();
        let before = clock.now_ms();
        clock.advance(Duration::from_secs(3600));
        assert!(clock.now_ms() >= before + 3_600_000);
    }
}

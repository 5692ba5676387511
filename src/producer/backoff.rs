//! Retry delays: exponential with jitter, so producers that failed together do not
//! retry together.

use std::time::Duration;

use rand::RngExt;

/// Exponential backoff from `base`, doubling per attempt up to `cap`, with "equal
/// jitter": half the delay is fixed, half random.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Backoff {
    /// For a throttled entry: about one throttle window, so the retry goes out after
    /// the shard's rate was lowered rather than into the same overload.
    pub const THROTTLED: Backoff = Backoff {
        base: Duration::from_millis(300),
        cap: Duration::from_secs(2),
    };

    /// The delay before retry number `attempt` (1 for the first retry).
    pub fn delay(&self, attempt: u32) -> Duration {
        let exponential = self
            .base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
            .min(self.cap);
        let half = exponential / 2;
        half + half.mul_f64(rand::rng().random::<f64>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_then_stay_under_the_cap() {
        // Failures of the service or the network, with the configured defaults.
        let backoff = Backoff {
            base: crate::config::KinesisConfig::DEFAULT_RETRY_BASE,
            cap: crate::config::KinesisConfig::DEFAULT_RETRY_MAX,
        };
        for attempt in 1..40 {
            let delay = backoff.delay(attempt);
            let ceiling = (backoff.base * 2u32.pow((attempt - 1).min(20))).min(backoff.cap);
            assert!(
                delay >= ceiling / 2 && delay <= ceiling,
                "attempt {attempt}: {delay:?}"
            );
        }
        assert!(backoff.delay(1) <= Duration::from_millis(100));
        assert!(backoff.delay(30) >= Duration::from_secs(5));
    }
}

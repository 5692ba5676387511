//! A token bucket whose rate can change, charged in full for entries larger than its
//! burst: what each shard's throttle paces records and bytes with.
//!
//! Why not `governor`: adaptive throttling changes a shard's rate every few hundred
//! milliseconds, and entries (aggregates of up to 1 MiB) are often larger than the
//! fifth of a second of burst a shard allows itself. Governor's GCRA fixes its quota
//! when built and refuses a batch larger than its burst, so it had to be rebuilt on
//! every rate change and fed large entries in chunks. Here the rate is a field, and a
//! large entry leaves the bucket in debt, paid off before anything else passes.

use std::time::Duration;

use tokio::time::Instant;

/// Fractions of a token lost to floating point must not refuse a take that is due.
const EPSILON: f64 = 1e-6;

#[derive(Debug, Clone)]
pub struct TokenBucket {
    per_sec: f64,
    /// Seconds of rate the bucket holds when full.
    burst_secs: f64,
    /// Negative while an entry larger than the burst is being paid off.
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    /// A bucket of `per_sec` holding at most `burst_secs` of it (at least one token).
    /// It starts empty, so a new shard does not open with a burst.
    pub fn new(per_sec: f64, burst_secs: f64, now: Instant) -> Self {
        TokenBucket {
            per_sec: per_sec.max(EPSILON),
            burst_secs,
            tokens: 0.0,
            updated: now,
        }
    }

    fn burst(&self) -> f64 {
        (self.per_sec * self.burst_secs).max(1.0)
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_sec).min(self.burst());
        self.updated = now;
    }

    /// Changes the rate from now on. The bucket starts over empty (a debt stays): after
    /// a refusal a burst is the last thing the shard needs, and a raise is earned at
    /// the new rate from now.
    pub fn set_rate(&mut self, per_sec: f64, now: Instant) {
        self.refill(now);
        self.per_sec = per_sec.max(EPSILON);
        self.tokens = self.tokens.min(0.0);
    }

    /// Whether `amount` may be taken now: the bucket holds it, or, for an amount over
    /// the burst, the bucket is full. Otherwise how long until it may.
    pub fn check(&mut self, amount: f64, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        let needed = amount.min(self.burst());
        if self.tokens + EPSILON >= needed {
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (needed - self.tokens) / self.per_sec,
            ))
        }
    }

    /// Takes `amount` (after a successful [`check`](TokenBucket::check)); more than the
    /// bucket holds leaves it in debt.
    pub fn take(&mut self, amount: f64) {
        self.tokens -= amount;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(per_sec: f64) -> (TokenBucket, Instant) {
        let now = Instant::now();
        (TokenBucket::new(per_sec, 0.2, now), now)
    }

    #[tokio::test(start_paused = true)]
    async fn starts_empty_and_fills_at_its_rate_up_to_the_burst() {
        let (mut bucket, start) = bucket(100.0);
        assert_eq!(bucket.check(1.0, start), Err(Duration::from_millis(10)));
        let later = start + Duration::from_secs(10);
        assert!(bucket.check(20.0, later).is_ok());
        bucket.take(20.0);
        // Ten seconds earned only the burst (a fifth of a second).
        assert!(bucket.check(1.0, later).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn an_amount_over_the_burst_waits_for_a_full_bucket_and_leaves_a_debt() {
        let (mut bucket, start) = bucket(100.0);
        let full = start + Duration::from_millis(200);
        assert!(bucket.check(50.0, full).is_ok());
        bucket.take(50.0);
        // 30 tokens of debt and one more to take: 310 ms at 100/s.
        let wait = bucket.check(1.0, full).unwrap_err();
        assert!(
            (wait.as_secs_f64() - 0.31).abs() < 1e-6,
            "waited {wait:?} for the debt"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_rate_change_starts_the_bucket_over_and_keeps_a_debt() {
        let (mut bucket, start) = bucket(100.0);
        let t = start + Duration::from_millis(100);
        assert!(bucket.check(10.0, t).is_ok());
        bucket.set_rate(1000.0, t);
        // What was earned at the old rate does not pass as a burst at the new one.
        assert_eq!(bucket.check(1.0, t), Err(Duration::from_millis(1)));
        let later = t + Duration::from_millis(200);
        assert!(bucket.check(200.0, later).is_ok());
        bucket.take(300.0);
        bucket.set_rate(100.0, later);
        // 100 tokens of debt and one to take: 1.01 s at the new rate.
        let wait = bucket.check(1.0, later).unwrap_err();
        assert!((wait.as_secs_f64() - 1.01).abs() < 1e-6, "{wait:?}");
    }
}

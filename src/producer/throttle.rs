//! Per-shard throttling: a records/s and a bytes/s bucket (governor), scaled by the
//! configured share and an adaptive factor that backs off when Kinesis throttles.
//!
//! Adaptive mode is AIMD: a throttled answer multiplies the shard's rate by 0.7 (at
//! most once per 250 ms, so one batch of refusals counts once, yet a 4x overload is
//! shed within a second), and each second without one, once two seconds have passed
//! since the last decrease, adds 5% of the configured rate back. Several producers
//! sharing a shard settle near its limit.
//!
//! Governor runs on [`TokioClock`], so tests with paused tokio time are exact.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use tokio::time::Instant;

/// A governor clock reading tokio's time, which tests can pause and advance.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    origin: Instant,
}

impl Default for TokioClock {
    fn default() -> Self {
        TokioClock {
            origin: Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    type Instant = Duration;
    fn now(&self) -> Duration {
        Instant::now().saturating_duration_since(self.origin)
    }
}

type Limiter = RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<Duration>>;

const DECREASE_FACTOR: f64 = 0.7;
const INCREASE_STEP: f64 = 0.05;
const MIN_FACTOR: f64 = 0.05;
const DECREASE_INTERVAL: Duration = Duration::from_millis(250);
const INCREASE_INTERVAL: Duration = Duration::from_secs(1);
const QUIET_BEFORE_INCREASE: Duration = Duration::from_secs(2);

/// The rates a shard may be driven at, before the adaptive factor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ShardRates {
    pub records_per_sec: f64,
    pub bytes_per_sec: f64,
    pub adaptive: bool,
}

/// One shard's throttle.
#[derive(Debug)]
pub struct ShardThrottle {
    rates: ShardRates,
    factor: f64,
    clock: TokioClock,
    records: Limiter,
    bytes: Limiter,
    bytes_burst: u32,
    last_decrease: Option<Instant>,
    last_increase: Instant,
}

fn nonzero(value: f64) -> NonZeroU32 {
    NonZeroU32::new(value.clamp(1.0, f64::from(u32::MAX)) as u32).unwrap_or(NonZeroU32::MIN)
}

/// A limiter of `per_sec` with one second of burst, starting empty so a rate change
/// never releases a burst.
fn limiter(per_sec: f64, clock: TokioClock) -> (Limiter, u32) {
    let rate = nonzero(per_sec);
    let quota = Quota::per_second(rate).allow_burst(rate);
    let limiter = RateLimiter::direct_with_clock(quota, clock);
    let _ = limiter.check_n(rate);
    (limiter, rate.get())
}

impl ShardThrottle {
    pub fn new(rates: ShardRates, clock: TokioClock) -> Self {
        let (records, _) = limiter(rates.records_per_sec, clock);
        let (bytes, bytes_burst) = limiter(rates.bytes_per_sec, clock);
        ShardThrottle {
            rates,
            factor: 1.0,
            clock,
            records,
            bytes,
            bytes_burst,
            last_decrease: None,
            last_increase: Instant::now(),
        }
    }

    /// The fraction of the configured rate currently allowed.
    pub fn factor(&self) -> f64 {
        self.factor
    }

    fn rebuild(&mut self) {
        let (records, _) = limiter(self.rates.records_per_sec * self.factor, self.clock);
        let (bytes, bytes_burst) = limiter(self.rates.bytes_per_sec * self.factor, self.clock);
        self.records = records;
        self.bytes = bytes;
        self.bytes_burst = bytes_burst;
    }

    /// Takes one record of `bytes` if both buckets allow it now; otherwise says how
    /// long until the refusing bucket could.
    pub fn admit(&mut self, bytes: usize) -> Result<(), Duration> {
        let now = self.clock.now();
        if let Err(not_until) = self.records.check() {
            return Err(not_until.wait_time_from(now));
        }
        // A record larger than one second of bytes waits for a full bucket.
        let cells = nonzero((bytes as f64).min(f64::from(self.bytes_burst)));
        match self.bytes.check_n(cells) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(not_until.wait_time_from(now)),
            // Cannot happen: cells are capped at the burst size.
            Err(_) => Err(Duration::from_secs(1)),
        }
    }

    /// Kinesis refused a record on this shard for throughput.
    pub fn throttled(&mut self) {
        if !self.rates.adaptive {
            return;
        }
        let now = Instant::now();
        if self
            .last_decrease
            .is_some_and(|t| now.duration_since(t) < DECREASE_INTERVAL)
        {
            return;
        }
        self.factor = (self.factor * DECREASE_FACTOR).max(MIN_FACTOR);
        self.last_decrease = Some(now);
        self.rebuild();
    }

    /// Kinesis accepted records on this shard; probe the rate back up when it has been quiet.
    pub fn accepted(&mut self) {
        if !self.rates.adaptive || self.factor >= 1.0 {
            return;
        }
        let now = Instant::now();
        let quiet = self
            .last_decrease
            .is_none_or(|t| now.duration_since(t) >= QUIET_BEFORE_INCREASE);
        if quiet && now.duration_since(self.last_increase) >= INCREASE_INTERVAL {
            self.factor = (self.factor + INCREASE_STEP).min(1.0);
            self.last_increase = now;
            self.rebuild();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rates(records: f64, bytes: f64) -> ShardRates {
        ShardRates {
            records_per_sec: records,
            bytes_per_sec: bytes,
            adaptive: true,
        }
    }

    /// Counts records admitted over `seconds` of paused time, offering one every millisecond.
    async fn admitted_over(
        throttle: &mut ShardThrottle,
        seconds: u64,
        bytes: usize,
        per_ms: usize,
    ) -> usize {
        let mut admitted = 0;
        for _ in 0..seconds * 1000 {
            for _ in 0..per_ms {
                if throttle.admit(bytes).is_ok() {
                    admitted += 1;
                }
            }
            tokio::time::advance(Duration::from_millis(1)).await;
        }
        admitted
    }

    #[tokio::test(start_paused = true)]
    async fn records_per_second_are_held_to_the_rate() {
        let mut throttle = ShardThrottle::new(rates(1000.0, 1e9), TokioClock::default());
        let admitted = admitted_over(&mut throttle, 10, 10, 5).await;
        assert!((9_900..=10_000).contains(&admitted), "{admitted}");
    }

    #[tokio::test(start_paused = true)]
    async fn bytes_per_second_are_held_to_the_rate() {
        let mut throttle = ShardThrottle::new(rates(1000.0, 1_048_576.0), TokioClock::default());
        // 50 KiB aggregates: 20.48 per second fit in 1 MiB/s.
        let admitted = admitted_over(&mut throttle, 10, 51_200, 1).await;
        assert!((200..=205).contains(&admitted), "{admitted}");
    }

    #[tokio::test(start_paused = true)]
    async fn refusal_says_how_long_to_wait() {
        let mut throttle = ShardThrottle::new(rates(10.0, 1e9), TokioClock::default());
        let wait = throttle.admit(1).unwrap_err();
        assert!(
            wait <= Duration::from_millis(100) && wait > Duration::ZERO,
            "{wait:?}"
        );
        tokio::time::advance(wait).await;
        assert!(throttle.admit(1).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_decreases_once_per_interval_and_quiet_probes_back_up() {
        let mut throttle = ShardThrottle::new(rates(1000.0, 1e9), TokioClock::default());
        throttle.throttled();
        throttle.throttled();
        assert!(
            (throttle.factor() - 0.7).abs() < 1e-9,
            "a burst of refusals counts once"
        );
        tokio::time::advance(Duration::from_millis(250)).await;
        throttle.throttled();
        assert!((throttle.factor() - 0.49).abs() < 1e-9);
        throttle.accepted();
        assert!(
            (throttle.factor() - 0.49).abs() < 1e-9,
            "no increase right after a decrease"
        );
        tokio::time::advance(Duration::from_secs(2)).await;
        throttle.accepted();
        assert!((throttle.factor() - 0.54).abs() < 1e-9);
        throttle.accepted();
        assert!(
            (throttle.factor() - 0.54).abs() < 1e-9,
            "one step per second"
        );
        for _ in 0..20 {
            tokio::time::advance(Duration::from_secs(1)).await;
            throttle.accepted();
        }
        assert_eq!(throttle.factor(), 1.0);
        let admitted = admitted_over(&mut throttle, 5, 10, 5).await;
        assert!(admitted > 4_900, "back to the full rate: {admitted}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_decreased_shard_sends_at_the_lower_rate() {
        let mut throttle = ShardThrottle::new(rates(1000.0, 1e9), TokioClock::default());
        throttle.throttled();
        let admitted = admitted_over(&mut throttle, 1, 10, 5).await;
        assert!((690..=700).contains(&admitted), "{admitted}");
    }

    #[tokio::test(start_paused = true)]
    async fn fixed_mode_ignores_throttling() {
        let mut throttle = ShardThrottle::new(
            ShardRates {
                adaptive: false,
                ..rates(100.0, 1e9)
            },
            TokioClock::default(),
        );
        throttle.throttled();
        assert_eq!(throttle.factor(), 1.0);
    }
}

//! Per-shard throttling: a records/s and a bytes/s bucket (governor), scaled by the
//! configured share and an adaptive factor that backs off when Kinesis throttles.
//!
//! Adaptive mode starts slow and is AIMD after that, judged over windows of 250 ms:
//! - a new shard starts at a quarter of the rate and doubles it every window without
//!   a refusal (full rate within half a second), so producers that start together
//!   do not all hit a shared shard at once;
//! - at the end of a window in which Kinesis throttled the shard, the rate is
//!   multiplied by the share of entries it accepted (between 0.25 and 0.9): a 4x
//!   overload is shed in one step, a stray refusal costs 10%;
//! - after two quiet seconds, each quiet second adds back 2% of the configured rate,
//!   doubling the step each time (up to 16%) so freed capacity is reclaimed in a few
//!   seconds; a refusal resets the step.
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

const WINDOW: Duration = Duration::from_millis(250);
const STRONGEST_DECREASE: f64 = 0.25;
const WEAKEST_DECREASE: f64 = 0.9;
const INCREASE_STEP: f64 = 0.02;
const LARGEST_INCREASE_STEP: f64 = 0.16;
const SLOW_START_FACTOR: f64 = 0.25;
const MIN_FACTOR: f64 = 0.05;
const INCREASE_INTERVAL: Duration = Duration::from_secs(1);
const QUIET_BEFORE_INCREASE: Duration = Duration::from_secs(2);

/// What Kinesis answered for this shard in the current window.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    accepted: u32,
    throttled: u32,
}

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
    window: Window,
    /// Doubling each quiet window until the first refusal or the full rate.
    slow_start: bool,
    increase_step: f64,
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
        let mut throttle = ShardThrottle {
            rates,
            factor: 1.0,
            clock,
            records,
            bytes,
            bytes_burst,
            last_decrease: None,
            last_increase: Instant::now(),
            window: Window {
                start: Instant::now(),
                accepted: 0,
                throttled: 0,
            },
            slow_start: false,
            increase_step: INCREASE_STEP,
        };
        if rates.adaptive {
            throttle.slow_start = true;
            throttle.factor = SLOW_START_FACTOR;
            throttle.rebuild();
        }
        throttle
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

    /// Kinesis refused an entry on this shard for throughput.
    pub fn throttled(&mut self) {
        self.observe(0, 1);
    }

    /// Kinesis accepted an entry on this shard.
    pub fn accepted(&mut self) {
        self.observe(1, 0);
    }

    fn observe(&mut self, accepted: u32, throttled: u32) {
        if !self.rates.adaptive {
            return;
        }
        let now = Instant::now();
        if now.duration_since(self.window.start) >= WINDOW {
            let closed = std::mem::replace(&mut self.window, Window { start: now, accepted: 0, throttled: 0 });
            self.judge(closed, now);
        }
        self.window.accepted += accepted;
        self.window.throttled += throttled;
    }

    /// Adjusts the rate from one closed window of answers.
    fn judge(&mut self, window: Window, now: Instant) {
        let Window { accepted, throttled, .. } = window;
        if throttled > 0 {
            // Smoothed, so a window of one refusal at a low rate is not read as "0% accepted".
            let ratio = f64::from(accepted + 1) / f64::from(accepted + throttled + 1);
            self.factor = (self.factor * ratio.clamp(STRONGEST_DECREASE, WEAKEST_DECREASE)).max(MIN_FACTOR);
            self.last_decrease = Some(now);
            self.slow_start = false;
            self.increase_step = INCREASE_STEP;
            tracing::debug!(accepted, throttled, factor = self.factor, "shard rate lowered");
            self.rebuild();
        } else if accepted == 0 {
        } else if self.slow_start {
            self.factor = (self.factor * 2.0).min(1.0);
            self.slow_start = self.factor < 1.0;
            self.last_increase = now;
            self.rebuild();
        } else if self.factor < 1.0
            && self.last_decrease.is_none_or(|t| now.duration_since(t) >= QUIET_BEFORE_INCREASE)
            && now.duration_since(self.last_increase) >= INCREASE_INTERVAL
        {
            self.factor = (self.factor + self.increase_step).min(1.0);
            self.increase_step = (self.increase_step * 2.0).min(LARGEST_INCREASE_STEP);
            self.last_increase = now;
            tracing::debug!(factor = self.factor, "shard rate raised");
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

    /// Feeds one window of answers and closes it.
    async fn window(throttle: &mut ShardThrottle, accepted: u32, throttled: u32) {
        for _ in 0..accepted {
            throttle.accepted();
        }
        for _ in 0..throttled {
            throttle.throttled();
        }
        tokio::time::advance(WINDOW).await;
        throttle.observe(0, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_window_of_refusals_scales_the_rate_by_the_accepted_share() {
        let near = |a: f64, b: f64| (a - b).abs() < 1e-9;
        let mut throttle = warmed_up(1000.0).await;
        // 4 producers on one shard: about a quarter accepted.
        window(&mut throttle, 3, 13).await;
        assert!(near(throttle.factor(), 0.25), "{}", throttle.factor());
        // One refusal among many costs the weakest decrease.
        let mut throttle = warmed_up(1000.0).await;
        window(&mut throttle, 99, 1).await;
        assert!(near(throttle.factor(), 0.9), "{}", throttle.factor());
        // Everything refused still keeps a floor.
        for _ in 0..20 {
            window(&mut throttle, 0, 5).await;
        }
        assert!(near(throttle.factor(), MIN_FACTOR));
    }

    #[tokio::test(start_paused = true)]
    async fn quiet_seconds_probe_back_up_one_step_at_a_time() {
        let near = |a: f64, b: f64| (a - b).abs() < 1e-9;
        let mut throttle = warmed_up(1000.0).await;
        window(&mut throttle, 0, 1).await;
        assert!(near(throttle.factor(), 0.5));
        window(&mut throttle, 10, 0).await;
        assert!(near(throttle.factor(), 0.5), "no increase right after a decrease");
        tokio::time::advance(Duration::from_secs(2)).await;
        window(&mut throttle, 10, 0).await;
        window(&mut throttle, 10, 0).await;
        assert!(near(throttle.factor(), 0.52), "one step per second: {}", throttle.factor());
        tokio::time::advance(Duration::from_secs(1)).await;
        window(&mut throttle, 10, 0).await;
        assert!(near(throttle.factor(), 0.56), "the step doubles while quiet: {}", throttle.factor());
        for _ in 0..200 {
            window(&mut throttle, 10, 0).await;
        }
        assert_eq!(throttle.factor(), 1.0);
        let admitted = admitted_over(&mut throttle, 5, 10, 5).await;
        assert!(admitted > 4_900, "back to the full rate: {admitted}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_decreased_shard_sends_at_the_lower_rate() {
        let mut throttle = warmed_up(1000.0).await;
        window(&mut throttle, 0, 1).await;
        let admitted = admitted_over(&mut throttle, 1, 10, 5).await;
        assert!((495..=500).contains(&admitted), "{admitted}");
    }

    #[tokio::test(start_paused = true)]
    async fn fixed_mode_ignores_throttling() {
        let mut throttle = ShardThrottle::new(rates(100.0, 1e9), TokioClock::default());
        window(&mut throttle, 0, 10).await;
        assert_eq!(throttle.factor(), 1.0);
    }

    #[tokio::test(start_paused = true)]
    async fn slow_start_doubles_each_quiet_window_until_the_first_refusal() {
        let mut throttle = ShardThrottle::new(adaptive(1000.0, 1e9), TokioClock::default());
        assert_eq!(throttle.factor(), 0.25);
        window(&mut throttle, 2, 0).await;
        assert_eq!(throttle.factor(), 0.5);
        window(&mut throttle, 0, 1).await;
        assert_eq!(throttle.factor(), 0.25, "a refusal ends slow start");
        window(&mut throttle, 5, 0).await;
        assert_eq!(throttle.factor(), 0.25, "then only additive increase, after a quiet spell");
    }
}

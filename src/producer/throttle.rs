//! Per-shard throttling: a records/s and a bytes/s bucket ([`TokenBucket`]), scaled by the
//! configured share and an adaptive factor that backs off when Kinesis throttles.
//!
//! Adaptive mode starts slow and then backs off to what Kinesis actually accepted,
//! judged over windows of 250 ms:
//! - a new shard starts at a quarter of the rate and grows it by half every window
//!   without a refusal, up to half the rate (in half a second), so producers that
//!   start together overshoot a shared shard by less than their number;
//! - at the end of a window in which Kinesis throttled the shard, the rate drops to
//!   85% of what the shard accepted from this producer over the last second (by at
//!   least 15%, at most half): that is this producer's share of the shard right now,
//!   measured rather than guessed, so several producers settle under the limit at once;
//! - a shard never refused keeps growing past slow start by half each second (full
//!   rate about two seconds later);
//! - after two quiet seconds, each quiet second adds back 1% of the configured rate;
//!   the small step keeps the overshoot of several producers, and so the refused
//!   share, small. After ten seconds without a refusal the shard is likely not shared
//!   and the step doubles each second (up to 16%), so a producer left alone reclaims
//!   the shard within seconds.
//!
//! Time is tokio's, so tests with paused time are exact.

use std::time::Duration;

use tokio::time::Instant;

use super::bucket::TokenBucket;

const WINDOW: Duration = Duration::from_millis(250);
/// How far under the measured accepted rate to settle, and the least decrease.
const BACK_OFF: f64 = 0.85;
const INCREASE_STEP: f64 = 0.01;
const LARGEST_INCREASE_STEP: f64 = 0.16;
/// After this long without a refusal, the shard is probably not shared: probe faster.
const UNCONTENDED_AFTER: Duration = Duration::from_secs(10);
/// Growth per second past slow start for a shard that was never refused.
const UNREFUSED_GROWTH: f64 = 1.5;
const SLOW_START_FACTOR: f64 = 0.25;
const SLOW_START_GROWTH: f64 = 1.5;
/// Slow start hands over to additive increase here: Kinesis's one-second burst hides
/// an overload for a while, so growing multiplicatively to the full rate overshoots.
const SLOW_START_CEILING: f64 = 0.5;
/// The span over which the accepted rate is measured.
const RATE_SPAN: Duration = Duration::from_secs(1);
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
    records: TokenBucket,
    bytes: TokenBucket,
    last_decrease: Option<Instant>,
    last_increase: Instant,
    window: Window,
    /// Doubling each quiet window until the first refusal or the full rate.
    slow_start: bool,
    /// Entries accepted on this shard in the last [`RATE_SPAN`]: (when, bytes).
    recent: std::collections::VecDeque<(Instant, usize)>,
    increase_step: f64,
}

/// Each bucket holds a fifth of a second. Kinesis's own bucket holds a second; keeping
/// ours smaller leaves room for the other producers' bursts on a shared shard.
const BURST_SECS: f64 = 0.2;

impl ShardThrottle {
    pub fn new(rates: ShardRates) -> Self {
        let now = Instant::now();
        let mut throttle = ShardThrottle {
            rates,
            factor: 1.0,
            records: TokenBucket::new(rates.records_per_sec, BURST_SECS, now),
            bytes: TokenBucket::new(rates.bytes_per_sec, BURST_SECS, now),
            last_decrease: None,
            last_increase: now,
            window: Window {
                start: now,
                accepted: 0,
                throttled: 0,
            },
            slow_start: false,
            recent: std::collections::VecDeque::new(),
            increase_step: INCREASE_STEP,
        };
        if rates.adaptive {
            throttle.slow_start = true;
            throttle.factor = SLOW_START_FACTOR;
            throttle.apply_factor(now);
        }
        throttle
    }

    /// The fraction of the configured rate currently allowed.
    pub fn factor(&self) -> f64 {
        self.factor
    }

    fn apply_factor(&mut self, now: Instant) {
        self.records
            .set_rate(self.rates.records_per_sec * self.factor, now);
        self.bytes
            .set_rate(self.rates.bytes_per_sec * self.factor, now);
    }

    /// Takes one record of `bytes` if both buckets allow it now; otherwise says how
    /// long until both could. An entry larger than the byte bucket's burst is charged
    /// in full: the shard sends nothing more until that debt is paid.
    pub fn admit(&mut self, bytes: usize) -> Result<(), Duration> {
        let now = Instant::now();
        let records = self.records.check(1.0, now);
        let payload = self.bytes.check(bytes as f64, now);
        match (records, payload) {
            (Ok(()), Ok(())) => {
                self.records.take(1.0);
                self.bytes.take(bytes as f64);
                Ok(())
            }
            (Err(wait), Ok(())) | (Ok(()), Err(wait)) => Err(wait),
            (Err(first), Err(second)) => Err(first.max(second)),
        }
    }

    /// Kinesis refused an entry on this shard for throughput.
    pub fn throttled(&mut self) {
        self.observe(0, 1);
    }

    /// Kinesis accepted an entry of `bytes` on this shard.
    pub fn accepted(&mut self, bytes: usize) {
        if self.rates.adaptive {
            self.recent.push_back((Instant::now(), bytes));
        }
        self.observe(1, 0);
    }

    fn observe(&mut self, accepted: u32, throttled: u32) {
        if !self.rates.adaptive {
            return;
        }
        let now = Instant::now();
        if now.duration_since(self.window.start) >= WINDOW {
            let closed = std::mem::replace(
                &mut self.window,
                Window {
                    start: now,
                    accepted: 0,
                    throttled: 0,
                },
            );
            self.judge(closed, now);
        }
        self.window.accepted += accepted;
        self.window.throttled += throttled;
    }

    /// The share of the configured rates this producer got accepted over the last second.
    fn accepted_share(&mut self, now: Instant) -> f64 {
        while self
            .recent
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > RATE_SPAN)
        {
            self.recent.pop_front();
        }
        let records = self.recent.len() as f64 / self.rates.records_per_sec;
        let bytes =
            self.recent.iter().map(|(_, b)| *b as f64).sum::<f64>() / self.rates.bytes_per_sec;
        records.max(bytes) / RATE_SPAN.as_secs_f64()
    }

    /// Adjusts the rate from one closed window of answers.
    fn judge(&mut self, window: Window, now: Instant) {
        if window.throttled > 0 {
            // Never more than halve per window: a window holds few entries at low rates,
            // and one unlucky window should not cost more than one halving.
            let measured = self.accepted_share(now) * BACK_OFF;
            self.factor = measured
                .clamp(self.factor * 0.5, self.factor * BACK_OFF)
                .max(MIN_FACTOR);
            self.last_decrease = Some(now);
            self.slow_start = false;
            self.increase_step = INCREASE_STEP;
            tracing::debug!(
                accepted = window.accepted,
                throttled = window.throttled,
                factor = self.factor,
                "shard rate lowered"
            );
            self.apply_factor(now);
        } else if window.accepted == 0 {
            // Nothing sent: nothing learned.
        } else if self.slow_start {
            self.factor = (self.factor * SLOW_START_GROWTH).min(SLOW_START_CEILING);
            self.slow_start = self.factor < SLOW_START_CEILING;
            self.last_increase = now;
            self.apply_factor(now);
        } else if self.factor < 1.0
            && self
                .last_decrease
                .is_none_or(|t| now.duration_since(t) >= QUIET_BEFORE_INCREASE)
            && now.duration_since(self.last_increase) >= INCREASE_INTERVAL
        {
            self.factor = if self.last_decrease.is_none() {
                // Never refused: past slow start, keep growing by half each second.
                (self.factor * UNREFUSED_GROWTH).min(1.0)
            } else {
                (self.factor + self.increase_step).min(1.0)
            };
            if self
                .last_decrease
                .is_none_or(|t| now.duration_since(t) >= UNCONTENDED_AFTER)
            {
                self.increase_step = (self.increase_step * 2.0).min(LARGEST_INCREASE_STEP);
            }
            self.last_increase = now;
            tracing::debug!(factor = self.factor, "shard rate raised");
            self.apply_factor(now);
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
            adaptive: false,
        }
    }

    fn adaptive(records: f64, bytes: f64) -> ShardRates {
        ShardRates {
            adaptive: true,
            ..rates(records, bytes)
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
        let mut throttle = ShardThrottle::new(rates(1000.0, 1e9));
        let admitted = admitted_over(&mut throttle, 10, 10, 5).await;
        assert!((9_900..=10_000).contains(&admitted), "{admitted}");
    }

    #[tokio::test(start_paused = true)]
    async fn bytes_per_second_are_held_to_the_rate() {
        let mut throttle = ShardThrottle::new(rates(1000.0, 1_048_576.0));
        // 50 KiB aggregates: 20.48 per second fit in 1 MiB/s.
        let admitted = admitted_over(&mut throttle, 10, 51_200, 1).await;
        assert!((200..=205).contains(&admitted), "{admitted}");
    }

    #[tokio::test(start_paused = true)]
    async fn entries_larger_than_the_burst_are_charged_in_full() {
        // 100 KiB/s allows a 20 KiB burst; 50 KiB aggregates must still go at 2 per second.
        let mut throttle = ShardThrottle::new(rates(1000.0, 102_400.0));
        let admitted = admitted_over(&mut throttle, 10, 51_200, 1).await;
        assert!((19..=21).contains(&admitted), "{admitted}");
    }

    #[tokio::test(start_paused = true)]
    async fn refusal_says_how_long_to_wait() {
        let mut throttle = ShardThrottle::new(rates(10.0, 1e9));
        let wait = throttle.admit(1).unwrap_err();
        assert!(
            wait <= Duration::from_millis(100) && wait > Duration::ZERO,
            "{wait:?}"
        );
        tokio::time::advance(wait).await;
        assert!(throttle.admit(1).is_ok());
    }

    /// Feeds one window of answers (100-byte entries) and closes it.
    async fn window(throttle: &mut ShardThrottle, accepted: u32, throttled: u32) {
        for _ in 0..accepted {
            throttle.accepted(100);
        }
        for _ in 0..throttled {
            throttle.throttled();
        }
        tokio::time::advance(WINDOW).await;
        throttle.observe(0, 0);
    }

    /// An adaptive throttle at full rate, slow start over, with no recent answers.
    async fn warmed_up(records: f64) -> ShardThrottle {
        let mut throttle = ShardThrottle::new(adaptive(records, 1e9));
        // Slow start to half the rate, then uncontended doubling steps to the full rate.
        for _ in 0..80 {
            window(&mut throttle, 1, 0).await;
        }
        assert_eq!(throttle.factor(), 1.0);
        tokio::time::advance(Duration::from_secs(2)).await;
        throttle
    }

    #[tokio::test(start_paused = true)]
    async fn refusals_bring_the_rate_down_to_what_was_accepted() {
        let near = |a: f64, b: f64| (a - b).abs() < 1e-9;
        // Four producers on one shard: each gets about a quarter through.
        let mut throttle = warmed_up(1000.0).await;
        window(&mut throttle, 60, 190).await;
        assert!(
            near(throttle.factor(), 0.5),
            "at most halved per window: {}",
            throttle.factor()
        );
        window(&mut throttle, 65, 60).await;
        // 125 accepted in the last second of a 1000/s shard: 12.5%, less 15%, is under
        // half the current rate, so the rate is halved.
        assert!(near(throttle.factor(), 0.25), "{}", throttle.factor());
        window(&mut throttle, 60, 5).await;
        assert!(
            near(throttle.factor(), 185.0 / 1000.0 * BACK_OFF),
            "{}",
            throttle.factor()
        );
        // A stray refusal while most was accepted costs 15% of what was accepted.
        let mut throttle = warmed_up(1000.0).await;
        window(&mut throttle, 240, 0).await;
        window(&mut throttle, 240, 0).await;
        window(&mut throttle, 240, 0).await;
        window(&mut throttle, 240, 1).await;
        assert!(
            near(throttle.factor(), 0.96 * BACK_OFF),
            "{}",
            throttle.factor()
        );
        for _ in 0..20 {
            window(&mut throttle, 0, 5).await;
        }
        assert!(near(throttle.factor(), MIN_FACTOR), "a floor remains");
    }

    #[tokio::test(start_paused = true)]
    async fn quiet_seconds_probe_back_up_one_percent_then_faster() {
        let near = |a: f64, b: f64| (a - b).abs() < 1e-9;
        let mut throttle = warmed_up(1000.0).await;
        window(&mut throttle, 200, 50).await;
        assert!(near(throttle.factor(), 0.5));
        window(&mut throttle, 10, 0).await;
        assert!(
            near(throttle.factor(), 0.5),
            "no increase right after a decrease"
        );
        tokio::time::advance(Duration::from_secs(2)).await;
        window(&mut throttle, 10, 0).await;
        window(&mut throttle, 10, 0).await;
        assert!(
            near(throttle.factor(), 0.51),
            "one step per second: {}",
            throttle.factor()
        );
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
        window(&mut throttle, 200, 50).await;
        let admitted = admitted_over(&mut throttle, 1, 10, 5).await;
        assert!((495..=500).contains(&admitted), "{admitted}");
    }

    #[tokio::test(start_paused = true)]
    async fn fixed_mode_ignores_throttling() {
        let mut throttle = ShardThrottle::new(rates(100.0, 1e9));
        window(&mut throttle, 0, 10).await;
        assert_eq!(throttle.factor(), 1.0);
    }

    #[tokio::test(start_paused = true)]
    async fn slow_start_grows_each_quiet_window_until_the_first_refusal() {
        let near = |a: f64, b: f64| (a - b).abs() < 1e-9;
        let mut throttle = ShardThrottle::new(adaptive(1000.0, 1e9));
        assert!(near(throttle.factor(), 0.25));
        window(&mut throttle, 2, 0).await;
        assert!(near(throttle.factor(), 0.375));
        window(&mut throttle, 0, 1).await;
        assert!(
            near(throttle.factor(), 0.1875),
            "a refusal ends slow start: {}",
            throttle.factor()
        );
        window(&mut throttle, 5, 0).await;
        assert!(
            near(throttle.factor(), 0.1875),
            "then only additive increase, after a quiet spell"
        );
    }
}

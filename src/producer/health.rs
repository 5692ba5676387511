//! Whether a producer can deliver: what `/ready`, the status line and the failure log
//! report. A producer is failing from its first failed call (listing shards, or a
//! PutRecords call refused or unanswered as a whole) until a call succeeds; throttled
//! or failed entries inside an answered call do not count, they are retried.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::aws::{Failure, Trouble};

#[derive(Debug, Default)]
struct State {
    failing_since: Option<Instant>,
    last_error: Option<Failure>,
}

/// Shared between a producer and its handles; every use is a short section.
#[derive(Debug, Clone, Default)]
pub struct Health {
    state: Arc<Mutex<State>>,
}

/// A copy of the health at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthSnapshot {
    /// How long calls have been failing, if they are.
    pub failing_for: Option<Duration>,
    /// The last failure seen (it stays after a recovery, for the status line).
    pub last_error: Option<String>,
    pub trouble: Option<Trouble>,
}

impl Health {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A call failed; returns how long the producer has been failing.
    pub fn failed(&self, failure: &Failure) -> Duration {
        let mut state = self.lock();
        let now = Instant::now();
        let since = *state.failing_since.get_or_insert(now);
        state.last_error = Some(failure.clone());
        now.duration_since(since)
    }

    /// A call succeeded; returns how long the failing spell it ends lasted, if any.
    pub fn succeeded(&self) -> Option<Duration> {
        let since = self.lock().failing_since.take()?;
        Some(since.elapsed())
    }

    pub fn snapshot(&self) -> HealthSnapshot {
        let state = self.lock();
        HealthSnapshot {
            failing_for: state.failing_since.map(|since| since.elapsed()),
            last_error: state.last_error.as_ref().map(ToString::to_string),
            trouble: state
                .failing_since
                .and(state.last_error.as_ref().map(|f| f.trouble)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused() -> Failure {
        Failure {
            trouble: Trouble::Unreachable,
            code: "ConnectionError".into(),
            message: "Connection refused (os error 111)".into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_spell_runs_from_the_first_failure_to_the_next_success() {
        let health = Health::default();
        assert_eq!(health.snapshot().failing_for, None);
        assert_eq!(health.failed(&refused()), Duration::ZERO);
        tokio::time::advance(Duration::from_secs(40)).await;
        assert_eq!(health.failed(&refused()), Duration::from_secs(40));
        let snapshot = health.snapshot();
        assert_eq!(snapshot.failing_for, Some(Duration::from_secs(40)));
        assert_eq!(snapshot.trouble, Some(Trouble::Unreachable));
        assert_eq!(health.succeeded(), Some(Duration::from_secs(40)));
        assert_eq!(health.succeeded(), None);
        let after = health.snapshot();
        assert_eq!(after.failing_for, None);
        assert_eq!(after.trouble, None);
        assert_eq!(
            after.last_error.as_deref(),
            Some("ConnectionError: Connection refused (os error 111)")
        );
    }
}

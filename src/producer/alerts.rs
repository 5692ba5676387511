//! What the producer tells an operator about failures, at a rate a log can bear: one
//! line when a call starts failing (then once a minute while it lasts, with how long),
//! one when delivery resumes, and retried entries summed up every few seconds.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use tokio::time::Instant;

use super::health::Health;
use crate::aws::{Failure, Trouble};

/// Retried entries are summed up over this window.
const RETRY_WINDOW: Duration = Duration::from_secs(5);
/// A failure that lasts is logged again this often.
const FAILURE_LOG_EVERY: Duration = Duration::from_secs(60);

pub struct Alerts {
    /// The flow (who sends) and the stream, named in every line.
    flow: String,
    stream: String,
    /// Where the credentials come from, named when they are refused.
    credentials: String,
    health: Health,
    /// When each kind of trouble was last logged.
    logged: HashMap<Trouble, Instant>,
    retry_window_start: Instant,
    retried: BTreeMap<String, u64>,
}

impl Alerts {
    pub fn new(flow: &str, stream: &str, credentials: &str) -> Self {
        Alerts {
            flow: flow.to_owned(),
            stream: stream.to_owned(),
            credentials: credentials.to_owned(),
            health: Health::default(),
            logged: HashMap::new(),
            retry_window_start: Instant::now(),
            retried: BTreeMap::new(),
        }
    }

    /// Whether calls are failing, shared with the producer's handles.
    pub fn health(&self) -> Health {
        self.health.clone()
    }

    /// Error series exist from the start, at 0, so a rate or an alert on them works
    /// before the first error.
    pub fn register_metrics(&self) {
        let stream = self.stream.clone();
        for trouble in Trouble::ALL {
            metrics::counter!("shardcar_failed_requests_total", "stream" => stream.clone(), "trouble" => trouble.label()).increment(0);
        }
        metrics::counter!("shardcar_retried_entries_total", "stream" => stream.clone(), "code" => "InternalFailure").increment(0);
        metrics::counter!("shardcar_dead_lettered_records_total", "stream" => stream.clone())
            .increment(0);
        metrics::counter!("shardcar_shard_listing_failures_total", "stream" => stream.clone())
            .increment(0);
        metrics::counter!("shardcar_put_requests_total", "stream" => stream).increment(0);
    }

    /// A call failed as a whole. An operator hears of it at once, then at most once a
    /// minute while it lasts (with how long it has): one line naming the flow, the
    /// stream, the trouble and what to do.
    pub fn failing(&mut self, call: &str, failure: Failure) {
        metrics::counter!("shardcar_failed_requests_total", "stream" => self.stream.clone(), "trouble" => failure.trouble.label()).increment(1);
        let failing_for = self.health.failed(&failure);
        let now = Instant::now();
        let due = self
            .logged
            .get(&failure.trouble)
            .is_none_or(|last| now.duration_since(*last) >= FAILURE_LOG_EVERY);
        if !due {
            return;
        }
        self.logged.insert(failure.trouble, now);
        let trouble = failure.trouble;
        let (flow, stream) = (&self.flow, &self.stream);
        let failing_secs = failing_for.as_secs();
        match trouble {
            Trouble::Credentials => tracing::error!(
                flow = %flow,
                stream.name = %stream,
                call,
                trouble = trouble.as_str(),
                error = %failure,
                credentials = %self.credentials,
                failing_secs,
                "cannot deliver; records wait in their files (nothing lost): {}",
                trouble.advice()
            ),
            Trouble::StreamMissing => tracing::error!(
                flow = %flow,
                stream.name = %stream,
                call,
                trouble = trouble.as_str(),
                error = %failure,
                failing_secs,
                "cannot deliver; records wait in their files (nothing lost): {}",
                trouble.advice()
            ),
            Trouble::Unreachable | Trouble::Service => tracing::warn!(
                flow = %flow,
                stream.name = %stream,
                call,
                trouble = trouble.as_str(),
                error = %failure,
                failing_secs,
                "cannot deliver; records wait in their files (nothing lost): {}",
                trouble.advice()
            ),
        }
    }

    /// A call succeeded: a failing spell, if any, is over.
    pub fn recovered(&mut self) {
        if let Some(spell) = self.health.succeeded() {
            self.logged.clear();
            tracing::info!(flow = %self.flow, stream.name = %self.stream, failed_secs = spell.as_secs(), "delivering again");
        }
    }

    /// `n` entries were retried for `code`.
    pub fn retried(&mut self, code: &str, n: u64) {
        *self.retried.entry(code.to_owned()).or_default() += n;
    }

    /// Logs the retries of the window once it is over.
    pub fn emit_due(&mut self, now: Instant) {
        if self.retried.is_empty() || now.duration_since(self.retry_window_start) < RETRY_WINDOW {
            return;
        }
        let summary: Vec<String> = self
            .retried
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        tracing::warn!(stream.name = %self.stream, window_secs = RETRY_WINDOW.as_secs(), counts = %summary.join(" "), "entries retried (nothing lost)");
        self.retried.clear();
        self.retry_window_start = now;
    }
}

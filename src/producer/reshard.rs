//! Keeping up with the stream's shards: when to list them again, how lanes follow a
//! new map, and what to do with an aggregate that landed on a shard it was not built
//! for.
//!
//! Kinesis routes each entry by its explicit hash key, so a record sent alone is fine
//! wherever it lands; an aggregate is not: a KCL 2.x consumer drops the records of an
//! aggregate that do not belong to the shard it reads. Such an aggregate is delivered
//! only once a listing shows that its shard's range holds all of its records.

use std::collections::HashMap;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::backoff::Backoff;
use super::lane::{Entry, Lane, Member};
use super::service::StreamService;
use super::throttle::ShardThrottle;
use super::topology::{Topology, TopologyError};
use crate::config::AggregationConfig;
use crate::kinesis::{HashKeyRange, ShardMap};

/// The shard listing: due, running, or neither, with its failures counted for backoff.
pub struct Refresh {
    running: Option<JoinHandle<Result<Topology, TopologyError>>>,
    /// When the running listing began: a shard created later is not in it.
    started: Instant,
    due: Option<Instant>,
    failures: u32,
}

impl Refresh {
    /// Due at once: a producer starts by listing the shards.
    pub fn new(now: Instant) -> Self {
        Refresh {
            running: None,
            started: now,
            due: Some(now),
            failures: 0,
        }
    }

    /// When the next listing should start, if one is due.
    pub fn due(&self) -> Option<Instant> {
        self.due
    }

    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// When the last listing began.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Asks for a listing now, unless one is running or already due.
    pub fn request(&mut self, now: Instant) {
        if self.running.is_none() && self.due.is_none() {
            self.due = Some(now);
        }
    }

    /// Starts the listing if it is due.
    pub fn start_if_due<S: StreamService>(&mut self, service: &S, stream: &str, now: Instant) {
        if self.due.is_none_or(|due| due > now) {
            return;
        }
        self.due = None;
        if self.running.is_some() {
            return;
        }
        self.started = now;
        self.running = Some(tokio::spawn(service.topology(stream.to_owned())));
    }

    /// The running listing's result. Pending forever when none runs (the router's
    /// select guards it with [`Refresh::is_running`]).
    pub async fn finished(&mut self) -> Result<Topology, TopologyError> {
        let Some(running) = self.running.as_mut() else {
            return std::future::pending().await;
        };
        let result = running
            .await
            .unwrap_or_else(|error| Err(TopologyError::Task(error.to_string())));
        self.running = None;
        result
    }

    /// The listing failed: the next one is due after a backoff, which is returned.
    pub fn failed(&mut self, backoff: Backoff, now: Instant) -> std::time::Duration {
        self.failures += 1;
        let delay = backoff.delay(self.failures);
        self.due = Some(now + delay);
        delay
    }

    pub fn succeeded(&mut self) {
        self.failures = 0;
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }
}

impl Drop for Refresh {
    fn drop(&mut self) {
        if let Some(running) = &self.running {
            running.abort();
        }
    }
}

/// One lane per open shard of `map`, in its order. Lanes of shards still open are
/// kept (with their throttles); what the others held, and every lane's unsent records,
/// are regrouped: an entry whose records all belong to one new shard keeps its place
/// in that shard's queue (its explicit hash keys land it there), and everything else
/// comes back as members to route again.
pub fn rebuild_lanes<T>(
    old: Vec<Lane<T>>,
    map: &ShardMap,
    aggregation: &AggregationConfig,
    mut new_throttle: impl FnMut() -> ShardThrottle,
    now: Instant,
) -> (Vec<Lane<T>>, Vec<Member<T>>) {
    let mut old: HashMap<String, Lane<T>> = old
        .into_iter()
        .map(|lane| (lane.shard_id.clone(), lane))
        .collect();
    let mut leftovers = Vec::new();
    let mut lanes: Vec<Lane<T>> = Vec::with_capacity(map.len());
    for shard in map.shards() {
        let id = shard.shard_id.as_str();
        let lane = match old.remove(id) {
            Some(mut lane) => {
                leftovers.push(lane.take_unsent(now));
                lane
            }
            None => Lane::new(id, aggregation, new_throttle()),
        };
        lanes.push(lane);
    }
    for (_, mut lane) in old {
        leftovers.push(lane.take_unsent(now));
    }
    let mut reroute = Vec::new();
    for (members, entries) in leftovers {
        for mut entry in entries {
            let mut indexes = entry.members.iter().map(|m| map.predict_index(m.hash_key));
            let first = indexes.next();
            match first {
                Some(index) if indexes.all(|i| i == index) => {
                    entry.predicted = lanes[index].shard_id.clone();
                    lanes[index].queue.push_back(entry);
                }
                _ => reroute.extend(entry.into_members()),
            }
        }
        reroute.extend(members);
    }
    (lanes, reroute)
}

/// An aggregate accepted on a shard other than the predicted one, until a shard listing
/// says whether that shard's range holds all of its records.
pub struct Landed<T> {
    pub entry: Entry<T>,
    pub shard_id: String,
    pub sequence_number: String,
    /// When its answer was judged.
    pub judged: Instant,
}

impl<T> Landed<T> {
    /// Whether every record of the aggregate belongs to `range` (a KCL 2.x consumer
    /// reading that shard keeps it).
    fn lies_within(&self, range: &HashKeyRange) -> bool {
        self.entry
            .members
            .iter()
            .all(|m| range.contains(m.hash_key))
    }
}

/// What a listing says about the aggregates that landed off their predicted shard.
pub struct Sorted<T> {
    /// Wholly inside the shard they landed on: delivered.
    pub deliver: Vec<Landed<T>>,
    /// On a shard the listing does not know because it began before the answer came:
    /// too new for it, so they wait for the next listing rather than being sent twice.
    pub wait: Vec<Landed<T>>,
    /// Across a shard boundary: their records are sent again on the new shards.
    pub resend: Vec<Entry<T>>,
}

/// Sorts `landed` by the listing `topology` that began at `listed`.
pub fn sort_landed<T>(landed: Vec<Landed<T>>, topology: &Topology, listed: Instant) -> Sorted<T> {
    let mut sorted = Sorted {
        deliver: Vec::new(),
        wait: Vec::new(),
        resend: Vec::new(),
    };
    for landed in landed {
        match topology.ranges.get(&landed.shard_id) {
            Some(range) if landed.lies_within(range) => sorted.deliver.push(landed),
            None if landed.judged >= listed => sorted.wait.push(landed),
            _ => sorted.resend.push(landed.entry),
        }
    }
    sorted
}

//! The router's decisions, driven by a scripted [`StreamService`] under paused time:
//! every verdict Kinesis can give, a stale shard map, a reshard in the middle of a
//! run, and a stop while a call never answers. Each test checks the producer's
//! promise: one acknowledgement per record, the record where its hash key belongs,
//! and the whole budget back at the end.
//!
//! The script plays Kinesis itself: an accepted entry lands on the shard of the
//! script's current map that owns its explicit hash key, whatever the producer
//! predicted, so a stale map has the consequences it has against the real service.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::health::Health;
use super::judge::{EntryVerdict, RequestVerdict};
use super::put_body::WireEntry;
use super::service::{PutAnswer, RequestFailure, StreamService};
use super::topology::{Topology, TopologyError};
use super::{Ack, Acks, Budget, Outcome, Producer, ProducerConfig, ProducerHandle};
use crate::aws::{Failure, Trouble};
use crate::kinesis::aggregation::deaggregate;
use crate::kinesis::{HashKeyRange, ShardId, ShardMap, ShardRange, UserRecord};

/// What the script answers to one call.
enum Reply {
    Now(PutAnswer),
    /// The call never answers (a connection that hangs).
    Never,
}

/// One PutRecords call as the service saw it.
struct Call {
    at: Instant,
    entries: Vec<WireEntry>,
}

/// Decides the answer to call number `index` (from 0).
type Answer = Box<dyn FnMut(usize, &[WireEntry], &mut Kinesis) -> Reply + Send>;

/// The stream as the script keeps it.
struct Kinesis {
    /// Where records land now.
    truth: Topology,
    /// What ListShards answers, in turn; the truth once these are used up.
    listings: Vec<Topology>,
    listed: usize,
    next_sequence: u64,
    /// Every user record accepted, with the shard it landed on.
    landed: Vec<(String, UserRecord)>,
}

impl Kinesis {
    /// Accepts `entry` on the shard that owns its hash key, as Kinesis does.
    fn accept(&mut self, entry: &WireEntry) -> EntryVerdict {
        let shard_id = self
            .truth
            .open
            .predict(entry.explicit_hash_key)
            .shard_id
            .as_str()
            .to_owned();
        for record in deaggregate(&entry.partition_key, &entry.data).records {
            self.landed.push((shard_id.clone(), record));
        }
        self.next_sequence += 1;
        EntryVerdict::Accepted {
            shard_id,
            sequence_number: format!("{:056}", self.next_sequence),
        }
    }

    fn accept_all(&mut self, entries: &[WireEntry]) -> Reply {
        Reply::Now(Ok(entries.iter().map(|e| self.accept(e)).collect()))
    }
}

#[derive(Clone)]
struct Scripted {
    kinesis: Arc<Mutex<Kinesis>>,
    answer: Arc<Mutex<Answer>>,
    calls: Arc<Mutex<Vec<Call>>>,
    /// How many calls were made, to wait on.
    made: Arc<watch::Sender<usize>>,
}

impl Scripted {
    fn new(truth: Topology, answer: Answer) -> Self {
        Scripted {
            kinesis: Arc::new(Mutex::new(Kinesis {
                truth,
                listings: Vec::new(),
                listed: 0,
                next_sequence: 0,
                landed: Vec::new(),
            })),
            answer: Arc::new(Mutex::new(answer)),
            calls: Arc::new(Mutex::new(Vec::new())),
            made: Arc::new(watch::channel(0).0),
        }
    }

    /// Kinesis that accepts everything.
    fn accepting(truth: Topology) -> Self {
        Scripted::new(truth, Box::new(|_, entries, k| k.accept_all(entries)))
    }

    fn kinesis(&self) -> std::sync::MutexGuard<'_, Kinesis> {
        self.kinesis.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn calls(&self) -> std::sync::MutexGuard<'_, Vec<Call>> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn wait_for_calls(&self, count: usize) {
        let mut made = self.made.subscribe();
        tokio::time::timeout(Duration::from_secs(600), made.wait_for(|n| *n >= count))
            .await
            .unwrap_or_else(|_| panic!("fewer than {count} calls within 600 s"))
            .unwrap_or_else(|_| panic!("the script was dropped"));
    }
}

impl StreamService for Scripted {
    fn put_records(
        &self,
        _stream: String,
        entries: Vec<WireEntry>,
    ) -> impl Future<Output = PutAnswer> + Send + 'static {
        let index = {
            let mut calls = self.calls();
            calls.push(Call {
                at: Instant::now(),
                entries: entries.clone(),
            });
            calls.len() - 1
        };
        let reply = {
            let mut answer = self.answer.lock().unwrap_or_else(|p| p.into_inner());
            let mut kinesis = self.kinesis();
            answer(index, &entries, &mut kinesis)
        };
        self.made.send_modify(|n| *n += 1);
        async move {
            match reply {
                Reply::Now(answer) => answer,
                Reply::Never => std::future::pending().await,
            }
        }
    }

    fn topology(
        &self,
        _stream: String,
    ) -> impl Future<Output = Result<Topology, TopologyError>> + Send + 'static {
        let listed = {
            let mut kinesis = self.kinesis();
            let turn = kinesis.listed;
            kinesis.listed += 1;
            kinesis
                .listings
                .get(turn)
                .cloned()
                .unwrap_or_else(|| kinesis.truth.clone())
        };
        async move { Ok(listed) }
    }
}

/// A topology whose open shards are `open` and which also lists `closed`.
fn topology(open: Vec<ShardRange>, closed: &[ShardRange]) -> Topology {
    let ranges = open
        .iter()
        .chain(closed)
        .map(|s| (s.shard_id.as_str().to_owned(), s.range))
        .collect();
    Topology {
        open: ShardMap::new(open).unwrap_or_else(|e| panic!("test map: {e}")),
        ranges,
        max_record_bytes: Some(1 << 20),
    }
}

fn even(count: u32) -> Topology {
    topology(ShardMap::even(count).shards().to_vec(), &[])
}

fn shard(index: u64, range: HashKeyRange) -> ShardRange {
    ShardRange {
        shard_id: ShardId::from_index(index),
        range,
    }
}

fn record(i: u64) -> UserRecord {
    UserRecord::new(format!("key-{i}"), format!("record {i}"))
}

fn config() -> ProducerConfig {
    let mut config = ProducerConfig::new("scripted");
    config.retry_base = Duration::from_secs(1);
    config.retry_max = Duration::from_secs(4);
    // Pacing is the throttle's own tests' business; here it only adds waiting.
    config.throttle.enabled = false;
    config
}

fn start(config: ProducerConfig, service: &Scripted) -> (ProducerHandle<u64>, Acks<u64>, Budget) {
    let budget = Budget::new(config.max_in_flight_bytes);
    let (handle, acks) = Producer::start_on(config, service.clone(), budget.clone());
    (handle, acks, budget)
}

async fn send(handle: &ProducerHandle<u64>, records: std::ops::Range<u64>) {
    handle
        .send_batch(records.map(|i| (record(i), i)))
        .await
        .unwrap_or_else(|e| panic!("send: {e}"));
}

/// Reads acknowledgements until `count` records have one; a second one for any record
/// fails the test.
async fn collect(acks: &mut Acks<u64>, count: usize) -> HashMap<u64, Ack<u64>> {
    let mut seen = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    while seen.len() < count {
        let batch = tokio::time::timeout_at(deadline, acks.recv())
            .await
            .unwrap_or_else(|_| panic!("{} of {count} acknowledged within 600 s", seen.len()))
            .unwrap_or_else(|| panic!("the producer stopped after {} of {count}", seen.len()));
        for ack in batch {
            let token = ack.token;
            if let Some(first) = seen.insert(token, ack) {
                panic!(
                    "record {token} acknowledged twice (first {:?})",
                    first.outcome
                );
            }
        }
    }
    seen
}

/// The shard each acknowledgement names must own the record's hash key in `truth`.
fn assert_delivered_where_they_belong(acks: &HashMap<u64, Ack<u64>>, truth: &Topology) {
    for (token, ack) in acks {
        let Outcome::Delivered { stored, .. } = &ack.outcome else {
            panic!("record {token}: {:?}", ack.outcome);
        };
        let shard_id = &stored.shard_id;
        let range = truth.ranges[shard_id.as_str()];
        let key = record(*token).hash_key();
        assert!(
            range.contains(key),
            "record {token} (hash key {key}) acknowledged on {shard_id}, which owns {range:?}"
        );
    }
}

async fn stop(handle: &ProducerHandle<u64>, budget: &Budget) {
    let report = handle.shutdown(Duration::from_secs(30)).await;
    assert!(!report.grace_exceeded, "{report:?}");
    assert_eq!(report.unacknowledged_records, 0);
    assert_eq!(budget.in_use(), 0, "budget held after a clean stop");
}

#[tokio::test(start_paused = true)]
async fn accepted_records_are_acknowledged_once_on_their_shard_and_return_their_budget() {
    let truth = even(4);
    let service = Scripted::accepting(truth.clone());
    let (handle, mut acks, budget) = start(config(), &service);
    send(&handle, 0..2000).await;
    let acked = collect(&mut acks, 2000).await;
    assert_delivered_where_they_belong(&acked, &truth);
    assert_eq!(
        service.kinesis().landed.len(),
        2000,
        "each record sent once"
    );
    assert_eq!(budget.in_use(), 0);
    stop(&handle, &budget).await;
}

/// Records that ask to be spread get a key from the producer's pool: every one lands
/// on the shard its key hashes to, and together (4 MB, some 80 aggregates) they reach
/// every shard.
#[tokio::test(start_paused = true)]
async fn spread_records_get_pool_keys_that_reach_every_shard() {
    let truth = even(4);
    let service = Scripted::accepting(truth.clone());
    let (handle, mut acks, budget) = start(config(), &service);
    let count = 4000;
    let sender = send_in_background(
        &handle,
        count,
        |i, len| UserRecord::spread(padded(i, len)),
        1000,
    );
    collect(&mut acks, count as usize).await;
    sender.await.unwrap_or_else(|e| panic!("sender: {e}"));
    {
        let kinesis = service.kinesis();
        assert_eq!(kinesis.landed.len(), count as usize);
        let mut shards = std::collections::BTreeSet::new();
        for (shard, record) in &kinesis.landed {
            assert_eq!(record.partition_key.len(), 16, "{:?}", record.partition_key);
            let owner = truth.open.predict(record.hash_key()).shard_id.as_str();
            assert_eq!(shard, owner, "landed where its key hashes to");
            shards.insert(shard.clone());
        }
        assert_eq!(shards.len(), 4, "spread over every shard");
    }
    stop(&handle, &budget).await;
}

/// Sends `count` records of `data_len` bytes from a task of their own (the budget
/// holds them back while the test collects acknowledgements).
fn send_in_background(
    handle: &ProducerHandle<u64>,
    count: u64,
    make: fn(u64, usize) -> UserRecord,
    data_len: usize,
) -> tokio::task::JoinHandle<()> {
    let handle = handle.clone();
    tokio::spawn(async move {
        for start in (0..count).step_by(1000) {
            let end = (start + 1000).min(count);
            handle
                .send_batch((start..end).map(|i| (make(i, data_len), i)))
                .await
                .unwrap_or_else(|e| panic!("send: {e}"));
        }
    })
}

fn padded(i: u64, len: usize) -> String {
    let mut data = format!("record {i} ");
    data.extend(std::iter::repeat_n('x', len.saturating_sub(data.len())));
    data
}

/// User records per Kinesis record over every call made.
fn records_per_entry(service: &Scripted) -> f64 {
    let entries: usize = service.calls().iter().map(|c| c.entries.len()).sum();
    service.kinesis().landed.len() as f64 / entries.max(1) as f64
}

/// Spread records fill one lane's aggregate at a time, so with 500 shards and the
/// default 8 MiB budget (16 KiB per shard if it were divided) aggregates are still
/// near the 50 KiB limit, and each lands on the shard its key hashes to.
#[tokio::test(start_paused = true)]
async fn spread_records_over_500_shards_fill_aggregates_near_the_size_limit() {
    let truth = even(500);
    let service = Scripted::accepting(truth.clone());
    let (handle, mut acks, budget) = start(config(), &service);
    let count = 100_000;
    let sender = send_in_background(
        &handle,
        count,
        |i, len| UserRecord::spread(padded(i, len)),
        200,
    );
    collect(&mut acks, count as usize).await;
    sender.await.unwrap_or_else(|e| panic!("sender: {e}"));
    {
        let kinesis = service.kinesis();
        assert_eq!(kinesis.landed.len(), count as usize, "each record once");
        let mut shards = std::collections::BTreeSet::new();
        for (shard, record) in &kinesis.landed {
            let owner = truth.open.predict(record.hash_key()).shard_id.as_str();
            assert_eq!(shard, owner, "landed where its key hashes to");
            shards.insert(shard.clone());
        }
        // About 400 aggregates, each on a shard picked at random: most shards get one.
        assert!(shards.len() >= 200, "{} shards got records", shards.len());
    }
    // A 200-byte record takes about 208 bytes of a 51,200-byte aggregate: 246 at most.
    let per_entry = records_per_entry(&service);
    assert!(per_entry >= 220.0, "{per_entry:.1} records per aggregate");
    stop(&handle, &budget).await;
}

/// Records with keys of their own spread over 500 shards fill 500 aggregates at once;
/// once those hold the budget they are sealed and sent, rather than lingering while
/// the sources wait on the budget.
#[tokio::test(start_paused = true)]
async fn keyed_records_over_500_shards_are_not_held_back_by_lingering_aggregates() {
    let truth = even(500);
    let service = Scripted::accepting(truth.clone());
    let mut config = config();
    let linger = Duration::from_secs(30);
    config.aggregation.linger = linger;
    let (handle, mut acks, budget) = start(config, &service);
    let count = 100_000;
    let started = Instant::now();
    let sender = send_in_background(
        &handle,
        count,
        |i, len| UserRecord::new(format!("key-{i}"), padded(i, len)),
        200,
    );
    collect(&mut acks, count as usize).await;
    sender.await.unwrap_or_else(|e| panic!("sender: {e}"));
    let took = started.elapsed();
    // 20 MB through an 8 MiB budget: waiting for lingering aggregates even once per
    // budget's worth would take three lingers.
    assert!(took < linger, "took {took:?} with a linger of {linger:?}");
    assert!(handle.stats().pressure_seals > 0);
    assert_eq!(service.kinesis().landed.len(), count as usize);
    stop(&handle, &budget).await;
}

#[tokio::test(start_paused = true)]
async fn entries_that_failed_inside_an_accepted_call_are_retried_after_the_backoff() {
    let truth = even(2);
    let service = Scripted::new(
        truth.clone(),
        Box::new(|call, entries, k| {
            if call > 0 {
                return k.accept_all(entries);
            }
            // The first call: every other entry fails.
            let verdicts = entries
                .iter()
                .enumerate()
                .map(|(i, e)| {
                    if i % 2 == 0 {
                        EntryVerdict::Retry {
                            code: "InternalFailure".into(),
                        }
                    } else {
                        k.accept(e)
                    }
                })
                .collect();
            Reply::Now(Ok(verdicts))
        }),
    );
    let config = config();
    let retry_base = config.retry_base;
    let (handle, mut acks, budget) = start(config, &service);
    send(&handle, 0..500).await;
    let acked = collect(&mut acks, 500).await;
    assert_delivered_where_they_belong(&acked, &truth);
    assert_eq!(service.kinesis().landed.len(), 500);
    {
        let calls = service.calls();
        let first = &calls[0];
        let failed: Vec<&WireEntry> = first.entries.iter().step_by(2).collect();
        assert!(!failed.is_empty());
        for entry in failed {
            let again = calls[1..]
                .iter()
                .find(|c| c.entries.iter().any(|e| e.data == entry.data))
                .unwrap_or_else(|| panic!("a failed entry was never sent again"));
            let waited = again.at - first.at;
            assert!(
                waited >= retry_base / 2,
                "retried after {waited:?}, before half of retry_base ({retry_base:?})"
            );
        }
        assert!(handle.stats().failed_entries > 0);
    }
    stop(&handle, &budget).await;
}

#[tokio::test(start_paused = true)]
async fn throttled_entries_are_retried_until_accepted_and_never_dropped() {
    let truth = even(2);
    let service = Scripted::new(
        truth.clone(),
        Box::new(|call, entries, k| {
            if call < 6 {
                return Reply::Now(Ok(vec![EntryVerdict::Throttled; entries.len()]));
            }
            k.accept_all(entries)
        }),
    );
    let (handle, mut acks, budget) = start(config(), &service);
    send(&handle, 0..300).await;
    let acked = collect(&mut acks, 300).await;
    assert_delivered_where_they_belong(&acked, &truth);
    let stats = handle.stats();
    assert!(stats.throttled_entries >= 6, "{stats:?}");
    assert_eq!(stats.dead_lettered, 0);
    assert_eq!(service.kinesis().landed.len(), 300);
    stop(&handle, &budget).await;
}

#[tokio::test(start_paused = true)]
async fn a_call_failing_as_a_whole_makes_the_producer_failing_until_one_succeeds() {
    let truth = even(1);
    let failures = 3;
    // What the producer's health said when each call arrived.
    let health: Arc<OnceLock<Health>> = Arc::default();
    let seen: Arc<Mutex<Vec<Option<Trouble>>>> = Arc::default();
    let service = Scripted::new(truth.clone(), {
        let (health, seen) = (health.clone(), seen.clone());
        Box::new(move |call, entries, k| {
            let now = health.get().and_then(|h| {
                let snapshot = h.snapshot();
                snapshot.failing_for.and(snapshot.trouble)
            });
            seen.lock().unwrap_or_else(|p| p.into_inner()).push(now);
            if call < failures {
                return Reply::Now(Err(RequestFailure {
                    verdict: RequestVerdict::RetryAll {
                        code: "Timeout".into(),
                        refresh_map: false,
                        operator: false,
                    },
                    failure: Failure {
                        trouble: Trouble::Unreachable,
                        code: "Timeout".into(),
                        message: "connection refused".into(),
                    },
                }));
            }
            k.accept_all(entries)
        })
    });
    let mut config = config();
    config.max_concurrent_requests = 1;
    let (handle, mut acks, budget) = start(config, &service);
    assert!(health.set(handle.health.clone()).is_ok());
    send(&handle, 0..100).await;
    let acked = collect(&mut acks, 100).await;
    assert_delivered_where_they_belong(&acked, &truth);
    let seen = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert_eq!(seen[0], None, "healthy before the first call");
    assert_eq!(
        seen[1..=failures],
        vec![Some(Trouble::Unreachable); failures],
        "failing while the calls failed"
    );
    assert!(
        handle.health().failing_for.is_none(),
        "still failing after success"
    );
    assert_eq!(handle.stats().failed_requests, failures as u64);
    stop(&handle, &budget).await;
}

#[tokio::test(start_paused = true)]
async fn a_request_refused_as_invalid_dead_letters_only_the_bad_record() {
    let truth = even(1);
    let poison = record(17).data;
    let service = Scripted::new(
        truth.clone(),
        Box::new(move |_, entries, k| {
            // A call holding the bad record is refused as a whole, as Kinesis refuses a
            // request with one invalid entry.
            let bad = entries
                .iter()
                .any(|e| e.data.windows(poison.len()).any(|w| w == poison.as_ref()));
            if bad {
                return Reply::Now(Err(RequestFailure {
                    verdict: RequestVerdict::Invalid {
                        code: "ValidationException".into(),
                        message: "bad record".into(),
                    },
                    failure: Failure {
                        trouble: Trouble::Service,
                        code: "ValidationException".into(),
                        message: "bad record".into(),
                    },
                }));
            }
            k.accept_all(entries)
        }),
    );
    let (handle, mut acks, budget) = start(config(), &service);
    send(&handle, 0..50).await;
    let mut acked = collect(&mut acks, 50).await;
    let bad = acked.remove(&17).map(|a| a.outcome);
    assert!(
        matches!(bad, Some(Outcome::DeadLettered { .. })),
        "the bad record: {bad:?}"
    );
    // Its aggregate's other records are delivered, not dead-lettered with it.
    assert_delivered_where_they_belong(&acked, &truth);
    assert_eq!(handle.stats().dead_lettered, 1);
    stop(&handle, &budget).await;
}

#[tokio::test(start_paused = true)]
async fn a_result_missing_from_an_answer_is_sent_again() {
    let truth = even(1);
    let service = Scripted::new(
        truth.clone(),
        Box::new(|call, entries, k| {
            let Reply::Now(Ok(mut verdicts)) = k.accept_all(entries) else {
                unreachable!("accept_all answers at once");
            };
            if call == 0 {
                // An answer one short: the last entry's outcome is unknown.
                verdicts.pop();
                k.landed.truncate(k.landed.len() - 1);
            }
            Reply::Now(Ok(verdicts))
        }),
    );
    let mut config = config();
    config.aggregation.enabled = false;
    let (handle, mut acks, budget) = start(config, &service);
    send(&handle, 0..20).await;
    let acked = collect(&mut acks, 20).await;
    assert_delivered_where_they_belong(&acked, &truth);
    assert_eq!(service.calls().len(), 2);
    stop(&handle, &budget).await;
}

/// The producer lists one shard; Kinesis has already split it in two. Aggregates land
/// on the children: one inside a child's range is delivered as it landed, one across
/// the boundary is sent again so that every record is where a consumer of its shard
/// will look for it.
#[tokio::test(start_paused = true)]
async fn aggregates_that_landed_on_other_shards_are_kept_if_inside_and_sent_again_if_across() {
    let halves = HashKeyRange::even_split(2);
    let parent = shard(0, HashKeyRange::FULL);
    let truth = topology(
        vec![shard(1, halves[0]), shard(2, halves[1])],
        std::slice::from_ref(&parent),
    );
    let stale = topology(vec![parent], &[]);
    let service = Scripted::accepting(truth.clone());
    service.kinesis().listings = vec![stale];
    let (handle, mut acks, budget) = start(config(), &service);
    send(&handle, 0..1000).await;
    let acked = collect(&mut acks, 1000).await;
    assert_delivered_where_they_belong(&acked, &truth);
    let stats = handle.stats();
    assert!(stats.map_refreshes >= 2, "{stats:?}");
    assert!(
        stats.misrouted_aggregates > 0,
        "1000 records in one-shard aggregates: some cross the boundary {stats:?}"
    );
    // What a consumer of each shard reads includes every record that belongs there.
    {
        let landed = &service.kinesis().landed;
        for i in 0..1000 {
            let r = record(i);
            let owner = truth.open.predict(r.hash_key()).shard_id.as_str();
            assert!(
                landed.iter().any(|(s, l)| s == owner && *l == r),
                "record {i} never landed on {owner}"
            );
        }
    }
    stop(&handle, &budget).await;
}

/// Kinesis splits a shard while records flow: records sent after the split land on
/// the children, and every record is acknowledged once, on a shard that owns it.
#[tokio::test(start_paused = true)]
async fn a_split_in_the_middle_of_a_run_delivers_every_record_once() {
    let halves = HashKeyRange::even_split(2);
    let quarters = HashKeyRange::even_split_of(halves[1], 2);
    let before = even(2);
    let after = topology(
        vec![
            shard(0, halves[0]),
            shard(2, quarters[0]),
            shard(3, quarters[1]),
        ],
        &[shard(1, halves[1])],
    );
    let split = after.clone();
    let service = Scripted::new(
        before,
        Box::new(move |call, entries, k| {
            if call == 3 {
                k.truth = split.clone();
            }
            k.accept_all(entries)
        }),
    );
    let mut config = config();
    config.max_concurrent_requests = 1;
    let (handle, mut acks, budget) = start(config, &service);
    for chunk in 0..20 {
        send(&handle, chunk * 100..(chunk + 1) * 100).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let acked = collect(&mut acks, 2000).await;
    assert!(service.calls().len() > 3, "the split happened mid-run");
    assert_delivered_where_they_belong(&acked, &after);
    stop(&handle, &budget).await;
}

/// A call that never answers cannot hold a stop past its deadline, and the budget its
/// records held comes back for the producers that share it.
#[tokio::test(start_paused = true)]
async fn a_stop_while_a_call_never_answers_ends_by_its_deadline_and_returns_the_budget() {
    let service = Scripted::new(even(2), Box::new(|_, _, _| Reply::Never));
    let (handle, mut acks, budget) = start(config(), &service);
    send(&handle, 0..100).await;
    service.wait_for_calls(1).await;
    assert!(budget.in_use() > 0);
    let deadline = Instant::now() + Duration::from_secs(5);
    let report = handle.shutdown_by(deadline).await;
    assert!(Instant::now() <= deadline + Duration::from_millis(10));
    assert!(report.grace_exceeded);
    assert_eq!(report.unacknowledged_records, 100);
    assert_eq!(budget.in_use(), 0, "budget still held after the stop");
    assert!(
        acks.recv().await.is_none(),
        "no acknowledgement for unsent records"
    );
}

/// A stop with records still waiting in the input (the router never got the shard
/// map) returns their budget too.
#[tokio::test(start_paused = true)]
async fn a_stop_before_the_shard_map_arrives_returns_the_budget_of_queued_records() {
    #[derive(Clone)]
    struct NeverLists;
    impl StreamService for NeverLists {
        fn put_records(
            &self,
            _: String,
            _: Vec<WireEntry>,
        ) -> impl Future<Output = PutAnswer> + Send + 'static {
            std::future::pending()
        }
        fn topology(
            &self,
            _: String,
        ) -> impl Future<Output = Result<Topology, TopologyError>> + Send + 'static {
            std::future::pending()
        }
    }
    let budget = Budget::new(1 << 20);
    let (handle, _acks) = Producer::start_on::<u64, _>(config(), NeverLists, budget.clone());
    send(&handle, 0..100).await;
    assert!(budget.in_use() > 0);
    let report = handle
        .shutdown_by(Instant::now() + Duration::from_secs(1))
        .await;
    assert_eq!(report.unacknowledged_records, 100);
    assert_eq!(budget.in_use(), 0);
}

#[test]
fn hash_keys_of_test_records_spread_over_both_halves() {
    // The reshard tests need records on both sides of the split.
    let mid = HashKeyRange::even_split(2)[1].start;
    let below = (0..1000).filter(|&i| record(i).hash_key() < mid).count();
    assert!(
        (300..700).contains(&below),
        "{below} of 1000 below the middle"
    );
}

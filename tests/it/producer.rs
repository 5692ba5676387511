//! The producer against the real shard server, in-process and as a process.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_kinesis::types::ScalingType;
use shardcar::kinesis::{HashKey, ShardMap, UserRecord};
use shardcar::producer::{Acks, Outcome, Producer, ProducerConfig, ProducerHandle};
use shardcar::server::RunningServer;

use crate::support::{
    ServerProcess, eventually, kcl_user_records, kinesis_client, read_stream, start_server,
    test_server_config,
};

fn producer_client(endpoint: &str) -> aws_sdk_kinesis::Client {
    let config = aws_sdk_kinesis::Config::builder()
        .behavior_version(aws_sdk_kinesis::config::BehaviorVersion::latest())
        .region(aws_sdk_kinesis::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_kinesis::config::Credentials::new(
            "AKID", "secret", None, None, "test",
        ))
        .endpoint_url(endpoint)
        .retry_config(aws_sdk_kinesis::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_kinesis::Client::from_conf(config)
}

/// A record whose data names it, so what is read back can be matched to what was sent.
fn record(i: u64) -> UserRecord {
    UserRecord::new(
        format!("key-{:016x}", i.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
        format!("record {i:08} {}", "x".repeat(150)),
    )
}

fn index_of(data: &[u8]) -> u64 {
    std::str::from_utf8(&data[7..15]).unwrap().parse().unwrap()
}

/// Collects acks until `expected` tokens have arrived; returns token -> outcome.
async fn collect_acks(
    acks: &mut Acks<u64>,
    expected: u64,
    within: Duration,
) -> HashMap<u64, Outcome> {
    let mut seen: HashMap<u64, Outcome> = HashMap::new();
    let deadline = tokio::time::Instant::now() + within;
    while (seen.len() as u64) < expected {
        let batch = tokio::time::timeout_at(deadline, acks.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} of {expected} acks within {within:?}", seen.len()))
            .expect("ack stream ended early");
        for ack in batch {
            assert!(
                seen.insert(ack.token, ack.outcome).is_none(),
                "token {} acknowledged twice",
                ack.token
            );
        }
    }
    seen
}

async fn send_all(handle: &ProducerHandle<u64>, range: std::ops::Range<u64>) {
    for i in range {
        handle.send(record(i), i).await.expect("send");
    }
}

async fn create_stream(server: &RunningServer, name: &str, shards: i32) -> aws_sdk_kinesis::Client {
    let client = kinesis_client(&server.endpoint_url());
    client
        .create_stream()
        .stream_name(name)
        .shard_count(shards)
        .send()
        .await
        .unwrap();
    client
}

#[tokio::test(flavor = "multi_thread")]
async fn two_hundred_thousand_records_arrive_once_each_on_their_predicted_shard() {
    let server = start_server(test_server_config()).await;
    let client = create_stream(&server, "p", 4).await;
    let mut config = ProducerConfig::new("p");
    config.throttle.enabled = false;
    let (handle, mut acks) =
        Producer::start::<u64>(config, producer_client(&server.endpoint_url()));
    let total = 200_000;
    let sender = tokio::spawn({
        let handle = handle.clone();
        async move { send_all(&handle, 0..total).await }
    });
    let outcomes = collect_acks(&mut acks, total, Duration::from_secs(120)).await;
    sender.await.unwrap();
    assert!(
        outcomes
            .values()
            .all(|o| matches!(o, Outcome::Delivered { .. }))
    );

    let map = ShardMap::even(4);
    let stored = read_stream(&client, "p").await;
    let (users, dropped) = kcl_user_records(&stored);
    assert_eq!(dropped, 0, "no aggregate straddles shards");
    assert_eq!(users.len() as u64, total, "each record exactly once");
    let mut seen = vec![false; total as usize];
    for (shard, user) in &users {
        let i = index_of(&user.data);
        assert!(
            !std::mem::replace(&mut seen[i as usize], true),
            "record {i} twice"
        );
        let predicted = map.predict(HashKey::of_partition_key(&user.partition_key));
        assert_eq!(
            shard,
            predicted.shard_id.as_str(),
            "record {i} on the shard its key hashes to"
        );
        // The ack names the shard and sequence number the record is stored under.
        let Outcome::Delivered { stored, .. } = &outcomes[&i] else {
            unreachable!()
        };
        assert_eq!(stored.shard_id, shard.as_str());
    }
    let stats = handle.stats();
    assert!(
        stats.kinesis_records * 50 < stats.user_records,
        "aggregated: {stats:?}"
    );
    assert_eq!(handle.in_flight_bytes(), 0);
    handle.shutdown(Duration::from_secs(5)).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn batches_larger_than_the_budget_allows_at_once_arrive_once_each() {
    let server = start_server(test_server_config()).await;
    let client = create_stream(&server, "batches", 2).await;
    let mut config = ProducerConfig::new("batches");
    config.throttle.enabled = false;
    // Each batch of 5,000 records (about 1.9 MB with bookkeeping) is more than a
    // quarter of this budget, so it goes in parts.
    config.max_in_flight_bytes = 2 * 1024 * 1024;
    let (handle, mut acks) =
        Producer::start::<u64>(config, producer_client(&server.endpoint_url()));
    let (total, per_batch) = (50_000u64, 5_000u64);
    let sender = tokio::spawn({
        let handle = handle.clone();
        async move {
            for start in (0..total).step_by(per_batch as usize) {
                let batch = (start..start + per_batch).map(|i| (record(i), i));
                handle.send_batch(batch).await.expect("send_batch");
            }
        }
    });
    let outcomes = collect_acks(&mut acks, total, Duration::from_secs(60)).await;
    sender.await.unwrap();
    assert!(
        outcomes
            .values()
            .all(|o| matches!(o, Outcome::Delivered { .. }))
    );
    let stored = read_stream(&client, "batches").await;
    let (users, dropped) = kcl_user_records(&stored);
    assert_eq!(dropped, 0);
    let mut indexes: Vec<u64> = users.iter().map(|(_, u)| index_of(&u.data)).collect();
    indexes.sort_unstable();
    assert_eq!(indexes, (0..total).collect::<Vec<_>>(), "each record once");
    assert_eq!(handle.in_flight_bytes(), 0);
    handle.shutdown(Duration::from_secs(5)).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn under_real_limits_few_entries_are_throttled_and_all_arrive() {
    let mut server_config = test_server_config();
    server_config.store.limits = true;
    let server = start_server(server_config).await;
    let client = create_stream(&server, "lim", 4).await;
    let (handle, mut acks) = Producer::start::<u64>(
        ProducerConfig::new("lim"),
        producer_client(&server.endpoint_url()),
    );
    // About 3 seconds of the stream's 4 MiB/s.
    let total = 70_000;
    let sender = tokio::spawn({
        let handle = handle.clone();
        async move { send_all(&handle, 0..total).await }
    });
    let outcomes = collect_acks(&mut acks, total, Duration::from_secs(60)).await;
    sender.await.unwrap();
    assert_eq!(outcomes.len() as u64, total);
    let stats = handle.stats();
    let throttled = stats.throttled_entries as f64 / stats.entries_sent as f64;
    assert!(
        throttled <= 0.01,
        "throttled {:.2}% of entries: {stats:?}",
        throttled * 100.0
    );
    let (users, _) = kcl_user_records(&read_stream(&client, "lim").await);
    assert_eq!(users.len() as u64, total);
    handle.shutdown(Duration::from_secs(5)).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn injected_throttling_and_internal_failures_lose_nothing_and_duplicate_nothing() {
    let mut server_config = test_server_config();
    server_config.store.faults.throttle_ratio = 0.3;
    server_config.store.faults.internal_ratio = 0.1;
    let server = start_server(server_config).await;
    let client = create_stream(&server, "faulty", 4).await;
    let mut config = ProducerConfig::new("faulty");
    config.throttle.enabled = false;
    let (handle, mut acks) =
        Producer::start::<u64>(config, producer_client(&server.endpoint_url()));
    let total = 30_000;
    let sender = tokio::spawn({
        let handle = handle.clone();
        async move { send_all(&handle, 0..total).await }
    });
    let outcomes = collect_acks(&mut acks, total, Duration::from_secs(60)).await;
    sender.await.unwrap();
    assert!(
        outcomes
            .values()
            .all(|o| matches!(o, Outcome::Delivered { .. }))
    );
    let stats = handle.stats();
    assert!(
        stats.throttled_entries > 0 && stats.failed_entries > 0,
        "faults were injected: {stats:?}"
    );
    // Every failure was per entry with a definite outcome, so nothing is stored twice.
    let (users, _) = kcl_user_records(&read_stream(&client, "faulty").await);
    let mut indexes: Vec<u64> = users.iter().map(|(_, u)| index_of(&u.data)).collect();
    indexes.sort_unstable();
    indexes.dedup();
    assert_eq!(indexes.len() as u64, total);
    assert_eq!(users.len() as u64, total, "no duplicates");
    handle.shutdown(Duration::from_secs(5)).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn resharding_during_a_run_loses_nothing() {
    let server = start_server(test_server_config()).await;
    let client = create_stream(&server, "moving", 2).await;
    let mut config = ProducerConfig::new("moving");
    config.throttle.enabled = false;
    let (handle, mut acks) =
        Producer::start::<u64>(config, producer_client(&server.endpoint_url()));
    let total = 60_000u64;
    let sender = tokio::spawn({
        let handle = handle.clone();
        async move {
            for i in 0..total {
                handle.send(record(i), i).await.expect("send");
                if i % 1000 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        }
    });
    let reshard = async {
        let wait_for = |n: u64| {
            let handle = handle.clone();
            async move {
                eventually(Duration::from_secs(60), async || {
                    (handle.stats().acknowledged_records >= n).then_some(())
                })
                .await
            }
        };
        wait_for(10_000).await;
        client
            .split_shard()
            .stream_name("moving")
            .shard_to_split("shardId-000000000000")
            .new_starting_hash_key((1u128 << 126).to_string())
            .send()
            .await
            .unwrap();
        wait_for(25_000).await;
        client
            .merge_shards()
            .stream_name("moving")
            .shard_to_merge("shardId-000000000002")
            .adjacent_shard_to_merge("shardId-000000000003")
            .send()
            .await
            .unwrap();
        wait_for(40_000).await;
        client
            .update_shard_count()
            .stream_name("moving")
            .target_shard_count(3)
            .scaling_type(ScalingType::UniformScaling)
            .send()
            .await
            .unwrap();
    };
    let (outcomes, ()) = tokio::join!(
        collect_acks(&mut acks, total, Duration::from_secs(120)),
        reshard
    );
    sender.await.unwrap();
    assert!(
        outcomes
            .values()
            .all(|o| matches!(o, Outcome::Delivered { .. }))
    );
    let stats = handle.stats();
    assert!(stats.map_refreshes >= 2, "the map was refreshed: {stats:?}");

    // What a KCL 2.x consumer reads: straddling aggregates dropped, their records re-sent.
    let (users, dropped) = kcl_user_records(&read_stream(&client, "moving").await);
    let mut indexes: Vec<u64> = users.iter().map(|(_, u)| index_of(&u.data)).collect();
    indexes.sort_unstable();
    indexes.dedup();
    assert_eq!(
        indexes.len() as u64,
        total,
        "every record readable ({dropped} aggregates dropped as straddling)"
    );
    assert_eq!(
        dropped as u64, stats.misrouted_aggregates,
        "each straddling aggregate was noticed and re-sent"
    );
    handle.shutdown(Duration::from_secs(5)).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn four_producers_share_a_two_shard_stream_under_its_limits() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let mut server_config = test_server_config();
    server_config.store.limits = true;
    let server = start_server(server_config).await;
    let client = create_stream(&server, "shared", 2).await;
    let per_producer = 40_000u64;
    let mut runs = Vec::new();
    for p in 0..4u64 {
        let (handle, mut acks) = Producer::start::<u64>(
            ProducerConfig::new("shared"),
            producer_client(&server.endpoint_url()),
        );
        runs.push(tokio::spawn(async move {
            let range = p * per_producer..(p + 1) * per_producer;
            let sender = tokio::spawn({
                let handle = handle.clone();
                async move { send_all(&handle, range).await }
            });
            let outcomes = collect_acks(&mut acks, per_producer, Duration::from_secs(90)).await;
            sender.await.unwrap();
            let stats = handle.stats();
            handle.shutdown(Duration::from_secs(5)).await;
            (outcomes.len() as u64, stats)
        }));
    }
    let mut sent = 0;
    let mut throttled = 0;
    for run in runs {
        let (delivered, stats) = run.await.unwrap();
        assert_eq!(delivered, per_producer);
        sent += stats.entries_sent;
        throttled += stats.throttled_entries;
    }
    let share = throttled as f64 / sent as f64;
    eprintln!(
        "four producers: throttled {throttled} of {sent} entries ({:.1}%)",
        share * 100.0
    );
    assert!(
        share < 0.05,
        "throttled {throttled} of {sent} entries ({:.1}%)",
        share * 100.0
    );
    let (users, _) = kcl_user_records(&read_stream(&client, "shared").await);
    assert_eq!(users.len() as u64, 4 * per_producer);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_outage_loses_nothing_and_memory_stays_within_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap().to_owned();
    let server = ServerProcess::start(&[
        "--data-dir",
        &data_dir,
        "--create-stream",
        "outage:2",
        "--no-limits",
    ]);
    let endpoint = server.endpoint.clone();
    let listen = endpoint.trim_start_matches("http://").to_owned();
    let mut config = ProducerConfig::new("outage");
    config.throttle.enabled = false;
    config.max_in_flight_bytes = 2 * 1024 * 1024;
    let (handle, mut acks) = Producer::start::<u64>(config, producer_client(&endpoint));
    let total = 60_000u64;
    let sender = tokio::spawn({
        let handle = handle.clone();
        async move { send_all(&handle, 0..total).await }
    });
    let collector =
        tokio::spawn(async move { collect_acks(&mut acks, total, Duration::from_secs(120)).await });
    eventually(Duration::from_secs(60), async || {
        (handle.stats().acknowledged_records >= 10_000).then_some(())
    })
    .await;
    server.kill_9();
    let down_since = std::time::Instant::now();
    let mut peak = 0;
    while down_since.elapsed() < Duration::from_secs(10) {
        peak = peak.max(handle.in_flight_bytes());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        peak <= 2 * 1024 * 1024,
        "in-flight bytes {peak} stayed within the budget"
    );
    assert!(
        peak > 1024 * 1024,
        "the budget filled while the server was down: {peak}"
    );
    let restarted = ServerProcess::start_on(&listen, &["--data-dir", &data_dir, "--no-limits"]);
    let outcomes = collector.await.unwrap();
    sender.await.unwrap();
    assert!(
        outcomes
            .values()
            .all(|o| matches!(o, Outcome::Delivered { .. }))
    );
    let client = kinesis_client(&restarted.endpoint);
    let (users, _) = kcl_user_records(&read_stream(&client, "outage").await);
    let mut indexes: Vec<u64> = users.iter().map(|(_, u)| index_of(&u.data)).collect();
    indexes.sort_unstable();
    indexes.dedup();
    assert_eq!(
        indexes.len() as u64,
        total,
        "every record arrived (duplicates allowed for calls cut by the outage)"
    );
    handle.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn records_kinesis_cannot_take_are_dead_lettered_and_acknowledged() {
    let server = start_server(test_server_config()).await;
    create_stream(&server, "dl", 1).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = ProducerConfig::new("dl");
    config.dead_letter_path = Some(dir.path().join("dead.jsonl"));
    let (handle, mut acks) =
        Producer::start::<u64>(config, producer_client(&server.endpoint_url()));
    handle.send(UserRecord::new("ok", "fine"), 0).await.unwrap();
    // (An empty key asks the producer to pick one: `UserRecord::spread`.)
    handle
        .send(UserRecord::new("k".repeat(257), "no key"), 1)
        .await
        .unwrap();
    handle
        .send(UserRecord::new("big", vec![b'x'; 1024 * 1024]), 2)
        .await
        .unwrap();
    let outcomes = collect_acks(&mut acks, 3, Duration::from_secs(10)).await;
    assert!(matches!(outcomes[&0], Outcome::Delivered { .. }));
    assert!(
        matches!(&outcomes[&1], Outcome::DeadLettered { reason } if reason.contains("partition key"))
    );
    assert!(
        matches!(&outcomes[&2], Outcome::DeadLettered { reason } if reason.contains("record limit"))
    );
    let lines = std::fs::read_to_string(dir.path().join("dead.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["data_base64"], "bm8ga2V5");
    assert_eq!(handle.stats().dead_lettered, 2);
    handle.shutdown(Duration::from_secs(5)).await;
    server.shutdown().await;
}

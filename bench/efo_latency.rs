//! Enhanced fan-out push latency: how long after a PutRecords is acknowledged its
//! records reach a SubscribeToShard subscriber, at a moderate steady load. Each
//! record carries its send time; every shard has a subscription from LATEST.
//! Prints one markdown row: records, p50, p99, max (milliseconds).
//! Usage: efo_latency --endpoint URL [--seconds 10] [--rate 1000] [--shards 4] [--label NAME]

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{
    PutRecordsRequestEntry, ShardIteratorType, StartingPosition, SubscribeToShardEventStream,
};

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut endpoint = String::from("http://127.0.0.1:4567");
    let (mut seconds, mut rate, mut shards) = (10u64, 1000u64, 4i32);
    let mut label = String::from("shardcar");
    let mut args = std::env::args().skip(1);
    while let (Some(flag), Some(value)) = (args.next(), args.next()) {
        match flag.as_str() {
            "--endpoint" => endpoint = value,
            "--seconds" => seconds = value.parse()?,
            "--rate" => rate = value.parse()?,
            "--shards" => shards = value.parse()?,
            "--label" => label = value,
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    let config = aws_sdk_kinesis::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("bench", "bench", None, None, "bench"))
        .endpoint_url(&endpoint)
        .build();
    let client = Client::from_conf(config);
    let stream = format!("efo-{}", std::process::id());
    client
        .create_stream()
        .stream_name(&stream)
        .shard_count(shards)
        .send()
        .await?;
    let arn = client
        .describe_stream_summary()
        .stream_name(&stream)
        .send()
        .await?
        .stream_description_summary
        .map(|s| s.stream_arn)
        .unwrap_or_default();
    let consumer = client
        .register_stream_consumer()
        .stream_arn(&arn)
        .consumer_name("latency")
        .send()
        .await?
        .consumer
        .map(|c| c.consumer_arn)
        .unwrap_or_default();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (latencies_tx, mut latencies) = tokio::sync::mpsc::unbounded_channel::<f64>();
    for index in 0..shards {
        let mut subscription = client
            .subscribe_to_shard()
            .consumer_arn(&consumer)
            .shard_id(format!("shardId-{index:012}"))
            .starting_position(
                StartingPosition::builder()
                    .r#type(ShardIteratorType::Latest)
                    .build()?,
            )
            .send()
            .await?;
        let tx = latencies_tx.clone();
        tokio::spawn(async move {
            while let Ok(Some(event)) = subscription.event_stream.recv().await {
                let received = now_ns();
                if let SubscribeToShardEventStream::SubscribeToShardEvent(event) = event {
                    for record in event.records() {
                        let bytes = record.data().as_ref();
                        if let Some(sent) = bytes.get(..16).and_then(|b| b.try_into().ok()) {
                            let sent = u128::from_le_bytes(sent);
                            let _ = tx.send(received.saturating_sub(sent) as f64 / 1e6);
                        }
                    }
                }
            }
        });
    }
    drop(latencies_tx);
    // PutRecords of 10 records every 10 ms at 1,000 records/s.
    let batch = 10u64;
    let interval = Duration::from_secs_f64(batch as f64 / rate as f64);
    let mut ticks = tokio::time::interval(interval);
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut sent = 0u64;
    let mut put_ms = Vec::new();
    while Instant::now() < end {
        ticks.tick().await;
        let entries = (0..batch)
            .map(|i| {
                let mut data = now_ns().to_le_bytes().to_vec();
                data.resize(100, b'x');
                PutRecordsRequestEntry::builder()
                    .partition_key(format!("k{}", sent + i))
                    .data(Blob::new(data))
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let put_started = Instant::now();
        client
            .put_records()
            .stream_name(&stream)
            .set_records(Some(entries))
            .send()
            .await?;
        put_ms.push(put_started.elapsed().as_secs_f64() * 1000.0);
        sent += batch;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut all = Vec::new();
    while let Ok(latency) = latencies.try_recv() {
        all.push(latency);
    }
    all.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| {
        all.get(((all.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    put_ms.sort_by(|a, b| a.total_cmp(b));
    let put_p50 = put_ms.get(put_ms.len() / 2).copied().unwrap_or(f64::NAN);
    println!(
        "| {label} | {rate} | {} of {sent} | {:.1} | {:.1} | {:.1} | {put_p50:.1} |",
        all.len(),
        at(0.5),
        at(0.99),
        all.last().copied().unwrap_or(f64::NAN)
    );
    std::process::exit(0);
}

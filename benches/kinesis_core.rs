//! Aggregation, deaggregation and shard prediction on one core.
//!
//! Workload as the agent sees it: 200-byte records with random 36-character partition
//! keys (UUID-like), each key hashed to predict its shard, then aggregated per shard.

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use shardcar::kinesis::aggregation::{Aggregator, Pushed, Sealed, complete_all, deaggregate};
use shardcar::kinesis::{HashKey, ShardMap, UserRecord};

const RECORDS: usize = 10_000;
const RECORD_BYTES: usize = 200;

/// A deterministic stream of pseudo-random bytes, so runs compare like for like.
fn xorshift(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

fn records() -> Vec<UserRecord> {
    let mut seed = 0x9E37_79B9_7F4A_7C15;
    (0..RECORDS)
        .map(|_| {
            let key: String = (0..36)
                .map(|i| {
                    if [8, 13, 18, 23].contains(&i) {
                        '-'
                    } else {
                        char::from(b"0123456789abcdef"[(xorshift(&mut seed) % 16) as usize])
                    }
                })
                .collect();
            let data: Vec<u8> = (0..RECORD_BYTES)
                .map(|_| b'a' + (xorshift(&mut seed) % 26) as u8)
                .collect();
            UserRecord::new(key, Bytes::from(data))
        })
        .collect()
}

/// Predicts each record's shard and aggregates per shard, as the producer does.
fn aggregate_per_shard(map: &ShardMap, records: Vec<UserRecord>) -> usize {
    let mut aggregators: Vec<Aggregator> =
        (0..map.len()).map(|_| Aggregator::new(51_200)).collect();
    let mut out_bytes = 0;
    for record in records {
        let shard = map.predict_index(HashKey::of_partition_key(&record.partition_key));
        let agg = &mut aggregators[shard];
        if let Ok(Pushed::Full(back)) = agg.push(record) {
            out_bytes += agg.finish().map_or(0, |r| r.data.len());
            let _ = agg.push(back);
        }
    }
    for agg in &mut aggregators {
        out_bytes += agg.finish().map_or(0, |r| r.data.len());
    }
    out_bytes
}

/// The records in ~51 KB aggregates, closed but without their MD5 trailers.
fn sealed_aggregates(records: &[UserRecord]) -> Vec<Sealed> {
    let mut sealed = Vec::new();
    let mut agg = Aggregator::new(51_200);
    for record in records.iter().cloned() {
        if let Ok(Pushed::Full(back)) = agg.push(record) {
            sealed.extend(agg.seal());
            let _ = agg.push(back);
        }
    }
    sealed.extend(agg.seal());
    sealed
}

fn bench(c: &mut Criterion) {
    let input = records();
    let map = ShardMap::even(4);
    let payload_bytes = (RECORDS * RECORD_BYTES) as u64;

    let mut group = c.benchmark_group("aggregation");
    group.throughput(Throughput::Elements(RECORDS as u64));
    group.bench_function(
        "predict+aggregate 200B records, 36-char keys, 4 shards (records)",
        |b| {
            b.iter_batched(
                || input.clone(),
                |records| aggregate_per_shard(&map, records),
                BatchSize::LargeInput,
            )
        },
    );
    group.throughput(Throughput::Bytes(payload_bytes));
    group.bench_function(
        "predict+aggregate 200B records, 36-char keys, 4 shards (payload bytes)",
        |b| {
            b.iter_batched(
                || input.clone(),
                |records| aggregate_per_shard(&map, records),
                BatchSize::LargeInput,
            )
        },
    );
    group.finish();

    // The trailer's MD5, one aggregate at a time against many side by side.
    let trailer_bytes: u64 = sealed_aggregates(&input)
        .iter()
        .map(|s| s.kinesis_size() as u64)
        .sum();
    let mut group = c.benchmark_group("trailers");
    group.throughput(Throughput::Bytes(trailer_bytes));
    group.bench_function(
        "MD5 trailers of 51 KB aggregates, one at a time (aggregate bytes)",
        |b| {
            b.iter_batched(
                || sealed_aggregates(&input),
                |sealed| sealed.into_iter().map(Sealed::complete).count(),
                BatchSize::LargeInput,
            )
        },
    );
    group.bench_function(
        "MD5 trailers of 51 KB aggregates, side by side (aggregate bytes)",
        |b| {
            b.iter_batched(
                || sealed_aggregates(&input),
                |sealed| complete_all(sealed).len(),
                BatchSize::LargeInput,
            )
        },
    );
    group.finish();

    // Aggregates of ~51 KB, as the producer sends them.
    let mut aggregates = Vec::new();
    let mut agg = Aggregator::new(51_200);
    for record in input.clone() {
        if let Ok(Pushed::Full(back)) = agg.push(record) {
            aggregates.extend(agg.finish());
            let _ = agg.push(back);
        }
    }
    aggregates.extend(agg.finish());
    let aggregate_bytes: u64 = aggregates.iter().map(|r| r.data.len() as u64).sum();
    let mut group = c.benchmark_group("deaggregation");
    group.throughput(Throughput::Bytes(aggregate_bytes));
    group.bench_function("deaggregate 51 KB aggregates (aggregate bytes)", |b| {
        b.iter(|| {
            aggregates
                .iter()
                .map(|r| deaggregate(&r.partition_key, &r.data).records.len())
                .sum::<usize>()
        })
    });
    group.finish();

    let keys: Vec<String> = input.iter().map(|r| r.partition_key.clone()).collect();
    let mut group = c.benchmark_group("prediction");
    group.throughput(Throughput::Elements(keys.len() as u64));
    for shards in [4u32, 500] {
        let map = ShardMap::even(shards);
        group.bench_function(
            format!("md5 + predict, 36-char keys, {shards} shards (keys)"),
            |b| {
                b.iter(|| {
                    keys.iter()
                        .map(|k| map.predict_index(HashKey::of_partition_key(k)))
                        .sum::<usize>()
                })
            },
        );
    }
    group.bench_function("md5 only, 36-char keys (keys)", |b| {
        b.iter(|| {
            keys.iter()
                .map(|k| HashKey::of_partition_key(k).0 as usize)
                .fold(0usize, usize::wrapping_add)
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

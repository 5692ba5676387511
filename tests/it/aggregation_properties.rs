//! Properties of aggregate -> deaggregate for any user records.

use bytes::Bytes;
use proptest::collection::vec;
use proptest::prelude::*;
use shardcar::kinesis::aggregation::{Aggregator, Pushed, deaggregate};
use shardcar::kinesis::{HashKey, KinesisRecord, UserRecord};

fn user_record() -> impl Strategy<Value = UserRecord> {
    (
        // Lengths around the 1- and 2-byte varint boundaries, and multi-byte characters.
        prop_oneof!["[a-z0-9]{1,8}", "[a-z]{120,135}", "\\PC{1,40}"],
        proptest::option::of(any::<u128>()),
        prop_oneof![vec(any::<u8>(), 0..300), vec(any::<u8>(), 16_370..16_400)],
    )
        .prop_map(|(partition_key, ehk, data)| UserRecord {
            partition_key,
            explicit_hash_key: ehk.map(HashKey),
            data: Bytes::from(data),
        })
}

/// Aggregates `records` under `limit`, finishing an aggregate whenever it is full.
fn aggregate_all(records: &[UserRecord], limit: usize) -> (Vec<KinesisRecord>, Vec<UserRecord>) {
    let mut agg = Aggregator::new(limit);
    let mut out = Vec::new();
    let mut refused = Vec::new();
    for record in records {
        let size_before = agg.kinesis_size();
        match agg.push(record.clone()) {
            Ok(Pushed::Added) => {}
            Ok(Pushed::Full(back)) => {
                assert_eq!(
                    agg.kinesis_size(),
                    size_before,
                    "a refused push changes nothing"
                );
                out.extend(agg.finish());
                match agg.push(back) {
                    Ok(Pushed::Added) => {}
                    Err(e) => refused.push(e.record),
                    Ok(Pushed::Full(_)) => panic!("an empty aggregator refused a record as full"),
                }
            }
            Err(e) => {
                assert!(e.size > limit);
                refused.push(e.record);
            }
        }
    }
    out.extend(agg.finish());
    (out, refused)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn records_round_trip_through_aggregation(records in vec(user_record(), 1..40)) {
        let (sent, refused) = aggregate_all(&records, 10 * 1024 * 1024);
        prop_assert!(refused.is_empty());
        let mut back = Vec::new();
        for record in &sent {
            let result = deaggregate(&record.partition_key, &record.data);
            prop_assert_eq!(result.is_aggregated(), record.is_aggregated());
            prop_assert_eq!(result.records.len(), record.user_records);
            back.extend(result.records);
        }
        prop_assert_eq!(back.len(), records.len());
        for (got, want) in back.iter().zip(&records) {
            prop_assert_eq!(&got.partition_key, &want.partition_key);
            prop_assert_eq!(&got.data, &want.data);
        }
        // Explicit hash keys survive inside aggregates; a raw record routes by its own.
        for record in &sent {
            if record.is_aggregated() {
                let result = deaggregate(&record.partition_key, &record.data);
                prop_assert_eq!(record.explicit_hash_key, result.records[0].hash_key());
            }
        }
    }

    #[test]
    fn predicted_size_equals_encoded_length(records in vec(user_record(), 1..40)) {
        let mut agg = Aggregator::new(10 * 1024 * 1024);
        for record in records {
            prop_assert_eq!(agg.push(record), Ok(Pushed::Added));
            let predicted = agg.kinesis_size();
            if agg.len() > 1 {
                // One byte of outer partition key plus the aggregate's bytes.
                prop_assert_eq!(predicted, 1 + agg.encode_aggregate().len());
            }
        }
        let predicted = agg.kinesis_size();
        prop_assert_eq!(agg.finish().map(|r| r.kinesis_size()), Some(predicted));
    }

    #[test]
    fn no_aggregate_exceeds_its_limit(records in vec(user_record(), 1..60), limit in 40usize..40_000) {
        let (sent, refused) = aggregate_all(&records, limit);
        for record in &sent {
            prop_assert!(record.kinesis_size() <= limit, "{} > {}", record.kinesis_size(), limit);
        }
        // Nothing vanishes: every record was sent or handed back as too large.
        let sent_users: usize = sent.iter().map(|r| r.user_records).sum();
        prop_assert_eq!(sent_users + refused.len(), records.len());
        for record in refused {
            prop_assert!(record.kinesis_size() > limit);
        }
    }
}

//! The reference vectors made with aws-kinesis-agg and checked against the KCL's rules.

use bytes::Bytes;
use serde_json::Value;
use shardcar::kinesis::aggregation::{Aggregator, NotAggregated, Outcome, Pushed, deaggregate};
use shardcar::kinesis::{HashKey, HashKeyRange, ShardMap, UserRecord};

use crate::support::{b64, read_json};

const AGGREGATION_VECTORS: [&str; 8] = [
    "p01_single_record",
    "p02_shared_partition_key",
    "p03_distinct_partition_keys",
    "p04_interleaved_partition_keys",
    "p05_explicit_hash_keys",
    "p06_empty_data",
    "p07_binary_all_byte_values",
    "p08_unicode_partition_keys",
];

fn user_record(input: &Value) -> UserRecord {
    UserRecord {
        partition_key: input["partition_key"].as_str().unwrap().to_owned(),
        explicit_hash_key: input["explicit_hash_key"]
            .as_str()
            .map(|k| HashKey::parse_explicit(k).unwrap()),
        data: Bytes::from(b64(input["data_b64"].as_str().unwrap())),
    }
}

#[test]
fn every_aggregation_vector_encodes_byte_for_byte() {
    for name in AGGREGATION_VECTORS {
        let vector = read_json(&format!("vectors/aggregation/{name}.json"));
        let max_size = vector["generator"]["max_size_used"].as_u64().unwrap() as usize;
        let inputs: Vec<UserRecord> = vector["input_user_records"]
            .as_array()
            .unwrap()
            .iter()
            .map(user_record)
            .collect();
        for expected in vector["aggregated_records"].as_array().unwrap() {
            let mut agg = Aggregator::new(max_size);
            for index in expected["user_record_indices"].as_array().unwrap() {
                let record = inputs[index.as_u64().unwrap() as usize].clone();
                assert_eq!(agg.push(record), Ok(Pushed::Added), "{name}");
            }
            let encoded = agg.encode_aggregate();
            assert_eq!(
                encoded.as_ref(),
                b64(expected["aggregated_b64"].as_str().unwrap()),
                "{name}: aggregated bytes"
            );
            assert_eq!(
                encoded.len() as u64,
                expected["aggregated_len"].as_u64().unwrap()
            );

            let kpl = &expected["kpl_would_send"];
            let sent = agg.finish().unwrap();
            assert_eq!(
                sent.partition_key,
                kpl["partition_key"].as_str().unwrap(),
                "{name}"
            );
            assert_eq!(
                sent.explicit_hash_key.to_string(),
                kpl["explicit_hash_key"].as_str().unwrap(),
                "{name}"
            );
            let raw = kpl["data_is_raw_user_data"].as_bool().unwrap();
            assert_eq!(!sent.is_aggregated(), raw, "{name}");
            if !raw {
                assert_eq!(
                    sent.data, encoded,
                    "{name}: KPL sends the same aggregate bytes"
                );
            }
        }
    }
}

#[test]
fn every_aggregation_vector_decodes_as_the_kcl_does() {
    for name in AGGREGATION_VECTORS {
        let vector = read_json(&format!("vectors/aggregation/{name}.json"));
        for expected in vector["aggregated_records"].as_array().unwrap() {
            let data = Bytes::from(b64(expected["aggregated_b64"].as_str().unwrap()));
            let outer = expected["partition_key"].as_str().unwrap();
            let result = deaggregate(outer, &data);
            assert_eq!(result.outcome, Outcome::Aggregated, "{name}");
            let wanted: Vec<UserRecord> = expected["expected_deaggregated_kcl"]
                .as_array()
                .unwrap()
                .iter()
                .map(user_record)
                .collect();
            assert_eq!(result.records, wanted, "{name}");
        }
    }
}

#[test]
fn every_negative_case_gets_the_kcl_outcome() {
    let cases = read_json("vectors/deagg_negative.json");
    for case in cases["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let data = Bytes::from(b64(case["kinesis_data_b64"].as_str().unwrap()));
        let outer = case["outer_partition_key"].as_str().unwrap();
        let result = deaggregate(outer, &data);
        let outcome = match &result.outcome {
            Outcome::Aggregated if result.records.is_empty() => "empty",
            Outcome::Aggregated => "aggregated",
            Outcome::Partial(_) => "partial",
            Outcome::NotAggregated(_) => "passthrough",
        };
        assert_eq!(
            outcome,
            case["expected_outcome"].as_str().unwrap(),
            "{name}"
        );
        let expected: Vec<(String, Vec<u8>, bool)> = case["expected_user_records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["partition_key"].as_str().unwrap().to_owned(),
                    b64(r["data_b64"].as_str().unwrap()),
                    r["aggregated"].as_bool().unwrap(),
                )
            })
            .collect();
        let got: Vec<(String, Vec<u8>, bool)> = result
            .records
            .iter()
            .map(|r| {
                (
                    r.partition_key.clone(),
                    r.data.to_vec(),
                    result.is_aggregated(),
                )
            })
            .collect();
        assert_eq!(got, expected, "{name}");
    }
}

#[test]
fn negative_cases_report_why_they_passed_through() {
    let cases = read_json("vectors/deagg_negative.json");
    let reason = |name: &str| {
        let case = cases["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap();
        let data = Bytes::from(b64(case["kinesis_data_b64"].as_str().unwrap()));
        deaggregate("pk", &data).outcome
    };
    assert_eq!(
        reason("n01_no_magic"),
        Outcome::NotAggregated(NotAggregated::NoMagic)
    );
    assert_eq!(
        reason("n02_bad_md5"),
        Outcome::NotAggregated(NotAggregated::ChecksumMismatch)
    );
    assert_eq!(
        reason("n03_magic_plus_16_bytes"),
        Outcome::NotAggregated(NotAggregated::TooShort)
    );
    assert_eq!(
        reason("n05_bad_protobuf_good_md5"),
        Outcome::NotAggregated(NotAggregated::Unparsable)
    );
    assert_eq!(
        reason("n06_missing_required_field"),
        Outcome::NotAggregated(NotAggregated::MissingRequiredField)
    );
}

#[test]
fn all_prediction_keys_land_on_the_reference_shard() {
    let vectors = read_json("vectors/shard_prediction.json");
    for shards in [4u32, 7] {
        let map = ShardMap::even(shards);
        // The split itself matches the reference ranges.
        let ranges = vectors["streams"][shards.to_string()].as_array().unwrap();
        assert_eq!(ranges.len(), map.len());
        for (shard, reference) in map.shards().iter().zip(ranges) {
            assert_eq!(
                shard.shard_id.as_str(),
                reference["shard_id"].as_str().unwrap()
            );
            assert_eq!(
                shard.range.start.to_string(),
                reference["starting_hash_key"].as_str().unwrap()
            );
            assert_eq!(
                shard.range.end.to_string(),
                reference["ending_hash_key"].as_str().unwrap()
            );
        }
        let keys = vectors["partition_keys"].as_array().unwrap();
        assert_eq!(keys.len(), 200);
        for key in keys {
            let pk = key["partition_key"].as_str().unwrap();
            let hash_key = HashKey::of_partition_key(pk);
            assert_eq!(
                hash_key.to_string(),
                key["hash_key"].as_str().unwrap(),
                "{pk}"
            );
            assert_eq!(
                map.predict(hash_key).shard_id.as_str(),
                key[format!("shard_id_{shards}")].as_str().unwrap(),
                "{pk} on {shards} shards"
            );
        }
        for case in vectors["explicit_hash_key_boundary_cases"][shards.to_string()]
            .as_array()
            .unwrap()
        {
            let hash_key =
                HashKey::parse_explicit(case["explicit_hash_key"].as_str().unwrap()).unwrap();
            assert_eq!(
                map.predict(hash_key).shard_id.as_str(),
                case["shard_id"].as_str().unwrap(),
                "{hash_key} on {shards} shards"
            );
        }
    }
}

#[test]
fn every_range_edge_predicts_its_own_shard() {
    for shards in [1u32, 2, 3, 4, 7, 16, 500] {
        let map = ShardMap::even(shards);
        for (i, shard) in map.shards().iter().enumerate() {
            assert_eq!(map.predict_index(shard.range.start), i);
            assert_eq!(map.predict_index(shard.range.end), i);
        }
        assert_eq!(map.predict_index(HashKey::MIN), 0);
        assert_eq!(map.predict_index(HashKey::MAX), map.len() - 1);
        assert_eq!(map.shards()[map.len() - 1].range.end, HashKey::MAX);
        assert_eq!(HashKeyRange::even_split(shards).len(), shards as usize);
    }
}

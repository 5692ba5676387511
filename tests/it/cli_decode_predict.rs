//! `decode` and `predict` as the real binary.

use shardcar::kinesis::UserRecord;
use shardcar::kinesis::aggregation::Aggregator;

use crate::support::{json_lines, read_json, shardcar};

fn aggregate_bytes() -> Vec<u8> {
    let mut agg = Aggregator::new(1 << 20);
    agg.push(UserRecord::new("alpha", "first line")).unwrap();
    agg.push(UserRecord::new("beta", vec![0xff, 0xfe, 0x00]))
        .unwrap();
    agg.finish().unwrap().data.to_vec()
}

#[test]
fn decode_prints_each_user_record_of_a_raw_aggregate() {
    let output = shardcar(&["decode"], &aggregate_bytes());
    assert!(output.status.success(), "{output:?}");
    let lines = json_lines(&output);
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["partition_key"], "alpha");
    assert_eq!(lines[0]["data"], "first line");
    assert_eq!(lines[0]["explicit_hash_key"], serde_json::Value::Null);
    assert_eq!(lines[0]["aggregated"], true);
    // Not UTF-8, so printed as base64.
    assert_eq!(lines[1]["data_base64"], "//4A");
    assert!(lines[1].get("data").is_none());
}

#[test]
fn decode_reads_base64_lines_and_can_force_base64_data() {
    let text = base64_simd::STANDARD.encode_to_string(aggregate_bytes());
    let input = format!("{text}\n\n{text}\n");
    let output = shardcar(
        &["decode", "--base64", "--data-base64", "-"],
        input.as_bytes(),
    );
    assert!(output.status.success(), "{output:?}");
    let lines = json_lines(&output);
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["data_base64"], "Zmlyc3QgbGluZQ==");
}

#[test]
fn decode_passes_garbage_through_as_one_plain_record() {
    let garbage = [
        0xF3, 0x89, 0x9A, 0xC2, 1, 2, 3, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9, 9,
    ];
    let output = shardcar(&["decode", "--partition-key", "outer"], &garbage);
    assert!(output.status.success(), "{output:?}");
    let lines = json_lines(&output);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["aggregated"], false);
    assert_eq!(lines[0]["partition_key"], "outer");
    assert_eq!(
        lines[0]["data_base64"],
        base64_simd::STANDARD.encode_to_string(garbage)
    );
}

#[test]
fn decode_refuses_empty_input_and_bad_base64() {
    let empty = shardcar(&["decode"], b"");
    assert_eq!(empty.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&empty.stderr).contains("empty"));
    let bad = shardcar(&["decode", "--base64"], b"not base64!!\n");
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("line 1 is not valid base64"));
    let missing = shardcar(&["decode", "/nonexistent/record.bin"], b"");
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/record.bin"));
}

#[test]
fn predict_matches_the_reference_for_seven_shards() {
    let vectors = read_json("vectors/shard_prediction.json");
    let keys: Vec<&serde_json::Value> = vectors["partition_keys"]
        .as_array()
        .unwrap()
        .iter()
        .take(20)
        .collect();
    let mut args = vec!["predict", "--shards", "7"];
    args.extend(keys.iter().map(|k| k["partition_key"].as_str().unwrap()));
    let output = shardcar(&args, b"");
    assert!(output.status.success(), "{output:?}");
    let lines = json_lines(&output);
    assert_eq!(lines.len(), keys.len());
    for (line, key) in lines.iter().zip(keys) {
        assert_eq!(line["partition_key"], key["partition_key"]);
        assert_eq!(line["hash_key"], key["hash_key"]);
        assert_eq!(line["shard_id"], key["shard_id_7"]);
    }
}

#[test]
fn predict_explicit_hash_keys_and_rejects_bad_ones() {
    let output = shardcar(
        &[
            "predict",
            "--shards",
            "4",
            "--explicit-hash-key",
            "0",
            "340282366920938463463374607431768211455",
        ],
        b"",
    );
    assert!(output.status.success(), "{output:?}");
    let lines = json_lines(&output);
    assert_eq!(lines[0]["shard_id"], "shardId-000000000000");
    assert_eq!(lines[1]["shard_id"], "shardId-000000000003");

    let bad = shardcar(
        &[
            "predict",
            "--shards",
            "4",
            "--explicit-hash-key",
            "--",
            "-5",
        ],
        b"",
    );
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("\"-5\""));
    let zero = shardcar(&["predict", "--shards", "0", "k"], b"");
    assert_eq!(
        zero.status.code(),
        Some(2),
        "clap rejects a zero shard count"
    );
}

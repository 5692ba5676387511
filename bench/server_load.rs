//! Load generator for `shardcar server`: PutRecords from several connections, then
//! GetRecords read-back, printing a table. Run through `bench/server.sh`.
//!
//! Each client sends the same pre-built PutRecords body (500 records of 100 bytes
//! with distinct partition keys) so the generator spends its CPU on I/O, not JSON.

#[path = "process.rs"]
mod process;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use base64_simd::STANDARD as BASE64;

struct Args {
    addr: String,
    pid: u32,
    clients: usize,
    millions: usize,
    record_bytes: usize,
    shards: usize,
}

fn parse_args() -> Args {
    let mut args = Args {
        addr: String::new(),
        pid: 0,
        clients: 4,
        millions: 3,
        record_bytes: 100,
        shards: 4,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_default();
        match flag.as_str() {
            "--addr" => args.addr = value,
            "--pid" => args.pid = value.parse().unwrap_or(0),
            "--clients" => args.clients = value.parse().unwrap_or(4),
            "--millions" => args.millions = value.parse().unwrap_or(3),
            "--record-bytes" => args.record_bytes = value.parse().unwrap_or(100),
            "--shards" => args.shards = value.parse().unwrap_or(4),
            _ => panic!("unknown flag {flag}"),
        }
    }
    args
}

/// Sends one request on a kept-alive connection and returns the response body.
fn call(reader: &mut BufReader<TcpStream>, target: &str, body: &[u8]) -> Vec<u8> {
    let head = format!(
        "POST / HTTP/1.1\r\nHost: bench\r\nContent-Type: application/x-amz-json-1.1\r\nX-Amz-Target: Kinesis_20131202.{target}\r\nAuthorization: AWS4-HMAC-SHA256 Credential=bench/20260101/us-east-1/kinesis/aws4_request, SignedHeaders=host, Signature=00\r\nX-Amz-Date: 20260101T000000Z\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let stream = reader.get_mut();
    stream.write_all(head.as_bytes()).expect("write");
    stream.write_all(body).expect("write");
    let mut status = String::new();
    reader.read_line(&mut status).expect("status line");
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("header");
        if line == "\r\n" {
            break;
        }
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = value.trim().parse().expect("length");
        }
    }
    let mut response = vec![0; length];
    reader.read_exact(&mut response).expect("body");
    assert!(
        status.contains(" 200 "),
        "{status}: {}",
        String::from_utf8_lossy(&response)
    );
    response
}

fn connect(addr: &str) -> BufReader<TcpStream> {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    BufReader::with_capacity(1 << 20, stream)
}

fn put_records_body(stream: &str, record_bytes: usize, client: usize) -> Vec<u8> {
    let data = BASE64.encode_to_string(vec![b'x'; record_bytes]);
    let records: Vec<String> = (0..500)
        .map(|i| format!(r#"{{"PartitionKey":"client-{client}-key-{i:05}","Data":"{data}"}}"#))
        .collect();
    format!(
        r#"{{"StreamName":"{stream}","Records":[{}]}}"#,
        records.join(",")
    )
    .into_bytes()
}

fn main() {
    let args = parse_args();
    let mut setup = connect(&args.addr);
    call(
        &mut setup,
        "CreateStream",
        format!(r#"{{"StreamName":"load","ShardCount":{}}}"#, args.shards).as_bytes(),
    );
    std::thread::sleep(Duration::from_millis(300));

    println!(
        "| stored records | put records/s | put MB/s (payload) | server RSS MiB | RSS / payload |"
    );
    println!("|---:|---:|---:|---:|---:|");
    let per_million_calls = 1_000_000 / 500;
    let baseline_rss = process::status_kib(Some(args.pid), "VmRSS:");
    let mut total_put_secs = 0.0;
    let server_cpu_before = process::cpu_seconds(Some(args.pid));
    for million in 1..=args.millions {
        let start = Instant::now();
        std::thread::scope(|scope| {
            for client in 0..args.clients {
                let addr = args.addr.clone();
                let body = put_records_body("load", args.record_bytes, client);
                let calls = per_million_calls / args.clients;
                scope.spawn(move || {
                    let mut connection = connect(&addr);
                    for _ in 0..calls {
                        let response = call(&mut connection, "PutRecords", &body);
                        assert!(
                            response.starts_with(br#"{"FailedRecordCount":0"#),
                            "{}",
                            String::from_utf8_lossy(&response[..100])
                        );
                    }
                });
            }
        });
        let secs = start.elapsed().as_secs_f64();
        total_put_secs += secs;
        let records = (per_million_calls / args.clients * args.clients * 500) as f64;
        let payload_per_record = (args.record_bytes + "client-0-key-00000".len()) as f64;
        let rss = process::status_kib(Some(args.pid), "VmRSS:");
        let stored_payload_mib = million as f64 * 1e6 * payload_per_record / 1048576.0;
        println!(
            "| {}M | {:.0} | {:.1} | {:.1} | {:.2} |",
            million,
            records / secs,
            records * args.record_bytes as f64 / secs / 1e6,
            rss as f64 / 1024.0,
            (rss.saturating_sub(baseline_rss)) as f64 / 1024.0 / stored_payload_mib
        );
    }
    let server_cpu = process::cpu_seconds(Some(args.pid)) - server_cpu_before;

    // Read everything back from TRIM_HORIZON, one shard after another.
    let start = Instant::now();
    let mut read = 0usize;
    let mut bytes = 0usize;
    for shard in 0..args.shards {
        let body = format!(
            r#"{{"StreamName":"load","ShardId":"shardId-{shard:012}","ShardIteratorType":"TRIM_HORIZON"}}"#
        );
        let response = call(&mut setup, "GetShardIterator", body.as_bytes());
        let value: serde_json::Value = serde_json::from_slice(&response).expect("json");
        let mut iterator = value["ShardIterator"]
            .as_str()
            .expect("iterator")
            .to_owned();
        loop {
            let body = format!(r#"{{"ShardIterator":"{iterator}","Limit":10000}}"#);
            let response = call(&mut setup, "GetRecords", body.as_bytes());
            let value: serde_json::Value = serde_json::from_slice(&response).expect("json");
            let records = value["Records"].as_array().expect("records");
            if records.is_empty() {
                break;
            }
            read += records.len();
            bytes += response.len();
            iterator = value["NextShardIterator"]
                .as_str()
                .expect("next")
                .to_owned();
        }
    }
    let read_secs = start.elapsed().as_secs_f64();
    println!();
    println!("| measure | value |");
    println!("|---|---:|");
    println!("| clients | {} |", args.clients);
    println!(
        "| records per PutRecords / record bytes | 500 / {} |",
        args.record_bytes
    );
    println!(
        "| put records/s overall | {:.0} |",
        (args.millions * 1_000_000) as f64 / total_put_secs
    );
    println!(
        "| server CPU-seconds per million puts | {:.2} |",
        server_cpu / args.millions as f64
    );
    println!(
        "| GetRecords read-back records/s | {:.0} |",
        read as f64 / read_secs
    );
    println!(
        "| GetRecords read-back MB/s (JSON) | {:.1} |",
        bytes as f64 / read_secs / 1e6
    );
    println!("| records read back | {read} |");
    println!(
        "| server peak RSS MiB | {:.1} |",
        process::status_kib(Some(args.pid), "VmHWM:") as f64 / 1024.0
    );
}

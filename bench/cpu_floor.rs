//! The CPU floor of shipping a gigabyte on this machine: each step no agent can skip,
//! done alone on one thread, in CPU-seconds per GB of 200-byte lines. The agent's own
//! CPU per GB (bench/scale.sh) is judged against the sum.
//!
//! Steps: reading a file from the page cache (256 KiB reads), finding the newlines,
//! KPL aggregation (one record per line into the protobuf, by the producer's own
//! aggregator), the aggregates' MD5 trailers (eight side by side, as the producer
//! hashes them), SHA-256 of every request body
//! (SigV4), AES-256-GCM of every TLS record, and writing the bytes to a loopback TCP
//! socket (the sender's CPU, which on loopback includes most of the receiving side's
//! kernel work) in writes of 16 KiB, 64 KiB and 1 MiB. The sum counts the cheapest
//! writes. Not counted: HTTP, the SDK, waking threads, checkpoints, per-record
//! bookkeeping, the answers' parsing: what an agent adds to the floor.
//!
//! Usage: cpu_floor [megabytes, default 1000]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use bytes::Bytes;
use sha2::{Digest, Sha256};
use shardcar::kinesis::UserRecord;
use shardcar::kinesis::aggregation::{Aggregator, Pushed, Sealed, complete_all};

const LINE: usize = 200;
const READ: usize = 256 * 1024;
const BODY: usize = 1024 * 1024;
const TLS_RECORD: usize = 16 * 1024;
/// The largest aggregate the agent builds by default.
const AGGREGATE: usize = 50 * 1024;

/// CPU time of the calling thread, from the scheduler's own account (nanoseconds).
fn thread_cpu() -> Duration {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    let nanos = text
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    Duration::from_nanos(nanos)
}

/// Runs `step` and returns the CPU-seconds it took per GB of `bytes`.
fn per_gb(bytes: usize, step: impl FnOnce()) -> f64 {
    let start = thread_cpu();
    step();
    (thread_cpu() - start).as_secs_f64() / (bytes as f64 / 1e9)
}

/// `megabytes` of 199-character lines and their newlines, in one buffer.
fn lines(megabytes: usize) -> Vec<u8> {
    let mut line = [b'x'; LINE];
    line[LINE - 1] = b'\n';
    line.repeat(megabytes * 1_000_000 / LINE)
}

fn read_file(path: &std::path::Path) -> usize {
    let mut file = std::fs::File::open(path).expect("open the test file");
    let mut buffer = vec![0u8; READ];
    let mut total = 0;
    loop {
        match file.read(&mut buffer) {
            Ok(0) => return total,
            Ok(n) => total += n,
            Err(e) => panic!("reading the test file: {e}"),
        }
    }
}

fn count_lines(data: &[u8]) -> usize {
    data.chunks(READ)
        .map(|chunk| memchr::memchr_iter(b'\n', chunk).count())
        .sum()
}

/// One record per line into aggregates, and their MD5 trailers (eight side by side,
/// as the producer hashes them). Returns the CPU time of each part: the trailers are
/// timed apart, 64 aggregates at a time, so that neither is measured on memory
/// touched for the first time.
fn aggregate(data: &Bytes) -> (Duration, Duration) {
    let start = thread_cpu();
    let mut hashing = Duration::ZERO;
    let mut trailed_bytes = 0;
    let mut trail = |sealed: &mut Vec<Sealed>| {
        let before = thread_cpu();
        while !sealed.is_empty() {
            let eight = sealed.split_off(sealed.len().saturating_sub(8));
            trailed_bytes += complete_all(eight)
                .iter()
                .map(|r| r.data.len())
                .sum::<usize>();
        }
        hashing += thread_cpu() - before;
    };
    let mut aggregator = Aggregator::new(AGGREGATE);
    let mut sealed: Vec<Sealed> = Vec::new();
    let mut from = 0;
    for at in memchr::memchr_iter(b'\n', data) {
        let mut record = UserRecord::spread(data.slice(from..at));
        from = at + 1;
        loop {
            match aggregator.push_keyed(record, Some("0123456789abcdef")) {
                Ok(Pushed::Added) => break,
                Ok(Pushed::Full(back)) => {
                    sealed.extend(aggregator.seal());
                    if sealed.len() == 64 {
                        trail(&mut sealed);
                    }
                    record = back;
                }
                Err(e) => panic!("a line larger than an aggregate: {e:?}"),
            }
        }
    }
    sealed.extend(aggregator.seal());
    trail(&mut sealed);
    // Every line's bytes are in an aggregate (with framing, so more than the lines).
    let lines = data.len() / LINE;
    assert!(trailed_bytes >= data.len() - lines, "every line aggregated");
    (thread_cpu() - start - hashing, hashing)
}

fn sha256(data: &[u8]) -> u8 {
    data.chunks(BODY)
        .map(|body| Sha256::digest(body)[0])
        .fold(0, |a, b| a ^ b)
}

fn encrypt(data: &mut [u8]) -> usize {
    let key = UnboundKey::new(&AES_256_GCM, &[7u8; 32]).expect("a 32-byte key");
    let key = LessSafeKey::new(key);
    let mut tags = 0;
    for (n, record) in data.chunks_mut(TLS_RECORD).enumerate() {
        let mut nonce = [0u8; 12];
        nonce[4..].copy_from_slice(&(n as u64).to_be_bytes());
        let tag = key
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), record)
            .expect("sealing a TLS-sized record");
        tags += tag.as_ref().len();
    }
    tags
}

fn send_over_loopback(data: &[u8], write: usize) -> f64 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let address = listener.local_addr().expect("its address");
    let receiver = std::thread::spawn(move || {
        let (mut socket, _) = listener.accept().expect("the sender");
        let mut buffer = vec![0u8; READ];
        let mut total = 0usize;
        while let Ok(n) = socket.read(&mut buffer) {
            if n == 0 {
                break;
            }
            total += n;
        }
        total
    });
    let mut socket = TcpStream::connect(address).expect("connect to the receiver");
    let cost = per_gb(data.len(), || {
        for chunk in data.chunks(write) {
            socket.write_all(chunk).expect("send");
        }
    });
    drop(socket);
    let received = receiver.join().expect("the receiver thread");
    assert_eq!(received, data.len(), "every byte arrived");
    cost
}

fn main() {
    let megabytes: usize = std::env::args()
        .nth(1)
        .and_then(|m| m.parse().ok())
        .unwrap_or(1000);
    let data = lines(megabytes);
    let bytes = data.len();
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("lines.log");
    std::fs::write(&path, &data).expect("write the test file");
    // Once untimed, so that the timed read finds the file in the page cache.
    assert_eq!(read_file(&path), bytes);

    let mut rows: Vec<(&str, f64)> = Vec::new();
    rows.push(("read from the page cache (256 KiB reads)", {
        per_gb(bytes, || assert_eq!(read_file(&path), bytes))
    }));
    rows.push(("find the newlines (memchr)", {
        per_gb(bytes, || assert_eq!(count_lines(&data), bytes / LINE))
    }));
    let shared = Bytes::from(data.clone());
    let (aggregating, hashing) = aggregate(&shared);
    let gb = bytes as f64 / 1e9;
    rows.push((
        "KPL aggregation: a record per line into the protobuf",
        aggregating.as_secs_f64() / gb,
    ));
    rows.push((
        "MD5 trailers of the aggregates, eight side by side",
        hashing.as_secs_f64() / gb,
    ));
    rows.push(("SHA-256 of each 1 MiB body (SigV4)", {
        per_gb(bytes, || {
            std::hint::black_box(sha256(&data));
        })
    }));
    let mut encrypted = data.clone();
    rows.push(("AES-256-GCM of each 16 KiB TLS record", {
        per_gb(bytes, || assert!(encrypt(&mut encrypted) > 0))
    }));
    // The socket's cost depends on the size of each write; the floor counts the
    // cheapest, whatever the agent's HTTP and TLS stack manages.
    let sockets: Vec<(usize, f64)> = [16, 64, 1024]
        .into_iter()
        .map(|kib| (kib, send_over_loopback(&data, kib * 1024)))
        .collect();

    println!("CPU floor: {megabytes} MB of {LINE}-byte lines, each step alone on one thread\n");
    println!("| step | CPU-s/GB |");
    println!("|---|---:|");
    for (step, cost) in &rows {
        println!("| {step} | {cost:.3} |");
    }
    let socket = sockets
        .iter()
        .map(|(_, cost)| *cost)
        .fold(f64::INFINITY, f64::min);
    for (kib, cost) in &sockets {
        println!("| write to a loopback TCP socket ({kib} KiB writes) | {cost:.3} |");
    }
    let total: f64 = rows.iter().map(|(_, cost)| cost).sum::<f64>() + socket;
    println!("| **sum** (the cheapest socket writes) | **{total:.3}** |");
}

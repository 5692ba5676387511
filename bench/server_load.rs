//! Load generator for `shardcar server`: PutRecords from several connections, then
//! GetRecords read-back, printing a table. Run through `bench/server.sh`.
//!
//! Each client sends the same pre-built PutRecords body (500 records of 100 bytes
//! with distinct partition keys) so the generator spends its CPU on I/O, not JSON.
//! `--sign KEY:SECRET` signs every call with SigV4 (aws-sigv4, as the SDKs do; a
//! client re-signs its body once a minute), `--ca FILE` speaks TLS trusting that CA,
//! and `--put-only LABEL` prints one row (records/s, server CPU per million) instead
//! of the full report, for `bench/server_auth.sh`.

#[path = "process.rs"]
mod process;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use base64_simd::STANDARD as BASE64;

struct Args {
    addr: String,
    pid: u32,
    clients: usize,
    millions: usize,
    record_bytes: usize,
    shards: usize,
    /// `(access key, secret)` to sign with.
    sign: Option<(String, String)>,
    /// TLS, trusting this client configuration's CA.
    tls: Option<Arc<rustls::ClientConfig>>,
    /// One row under this label instead of the full report.
    put_only: Option<String>,
}

fn parse_args() -> Args {
    let mut args = Args {
        addr: String::new(),
        pid: 0,
        clients: 4,
        millions: 3,
        record_bytes: 100,
        shards: 4,
        sign: None,
        tls: None,
        put_only: None,
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
            "--sign" => {
                let (key, secret) = value.split_once(':').expect("--sign KEY:SECRET");
                args.sign = Some((key.to_owned(), secret.to_owned()));
            }
            "--ca" => args.tls = Some(tls_config(&value)),
            "--put-only" => args.put_only = Some(value),
            _ => panic!("unknown flag {flag}"),
        }
    }
    args
}

/// A connection, plain or TLS.
trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

type Connection = BufReader<Box<dyn Stream>>;

fn tls_config(ca: &str) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).expect("read the CA file") {
        roots
            .add(cert.expect("a CA certificate"))
            .expect("add the CA");
    }
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth(),
    )
}

/// How a client calls: where, over what, signed by whom.
#[derive(Clone)]
struct Caller {
    addr: String,
    tls: Option<Arc<rustls::ClientConfig>>,
    sign: Option<(String, String)>,
}

impl Caller {
    fn connect(&self) -> Connection {
        let stream = TcpStream::connect(&self.addr).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let stream: Box<dyn Stream> = match &self.tls {
            None => Box::new(stream),
            Some(config) => {
                let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
                let session =
                    rustls::ClientConnection::new(config.clone(), name).expect("TLS session");
                Box::new(rustls::StreamOwned::new(session, stream))
            }
        };
        BufReader::with_capacity(1 << 20, stream)
    }

    /// The request head for `body`, with a SigV4 `Authorization` when signing (else
    /// one in SigV4's shape, which a server without credentials accepts).
    fn head(&self, target: &str, body: &[u8]) -> String {
        let target = format!("Kinesis_20131202.{target}");
        let mut headers = vec![
            (
                "content-type".to_owned(),
                "application/x-amz-json-1.1".to_owned(),
            ),
            ("host".to_owned(), "127.0.0.1".to_owned()),
            ("x-amz-target".to_owned(), target),
        ];
        match &self.sign {
            None => {
                headers.push(("authorization".into(), "AWS4-HMAC-SHA256 Credential=bench/20260101/us-east-1/kinesis/aws4_request, SignedHeaders=host, Signature=00".into()));
                headers.push(("x-amz-date".into(), "20260101T000000Z".into()));
            }
            Some((key, secret)) => headers.extend(sign(key, secret, &headers, body)),
        }
        let mut head = String::from("POST / HTTP/1.1\r\n");
        for (name, value) in &headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
        head
    }
}

/// The headers aws-sigv4 adds to sign a request (`authorization`, `x-amz-date`).
fn sign(
    key: &str,
    secret: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Vec<(String, String)> {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    let identity = aws_credential_types::Credentials::new(key, secret, None, None, "bench").into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("kinesis")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .expect("signing parameters")
        .into();
    let request = SignableRequest::new(
        "POST",
        "http://127.0.0.1/",
        headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        SignableBody::Bytes(body),
    )
    .expect("signable request");
    let (instructions, _) = sign(request, &params).expect("sign").into_parts();
    instructions
        .headers()
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
}

/// Sends one request (its head built by `caller`) on a kept-alive connection and
/// returns the response body.
fn call(connection: &mut Connection, head: &str, body: &[u8]) -> Vec<u8> {
    let stream = connection.get_mut();
    stream.write_all(head.as_bytes()).expect("write");
    stream.write_all(body).expect("write");
    stream.flush().expect("flush");
    let reader = connection;
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
    let caller = Caller {
        addr: args.addr.clone(),
        tls: args.tls.clone(),
        sign: args.sign.clone(),
    };
    let mut setup = caller.connect();
    let create = format!(r#"{{"StreamName":"load","ShardCount":{}}}"#, args.shards);
    call(
        &mut setup,
        &caller.head("CreateStream", create.as_bytes()),
        create.as_bytes(),
    );
    std::thread::sleep(Duration::from_millis(300));
    if let Some(label) = &args.put_only {
        put_only(&args, &caller, label);
        return;
    }

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
                let caller = caller.clone();
                let body = put_records_body("load", args.record_bytes, client);
                let calls = per_million_calls / args.clients;
                scope.spawn(move || {
                    let mut connection = caller.connect();
                    let head = caller.head("PutRecords", &body);
                    for _ in 0..calls {
                        let response = call(&mut connection, &head, &body);
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
        let response = call(
            &mut setup,
            &caller.head("GetShardIterator", body.as_bytes()),
            body.as_bytes(),
        );
        let value: serde_json::Value = serde_json::from_slice(&response).expect("json");
        let mut iterator = value["ShardIterator"]
            .as_str()
            .expect("iterator")
            .to_owned();
        loop {
            let body = format!(r#"{{"ShardIterator":"{iterator}","Limit":10000}}"#);
            let response = call(
                &mut setup,
                &caller.head("GetRecords", body.as_bytes()),
                body.as_bytes(),
            );
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

/// `--millions` million records put by `--clients` connections, as one table row:
/// records/s and the server's CPU-seconds per million records. Each client re-signs
/// its body once a minute, well inside the five minutes a signature is good for.
fn put_only(args: &Args, caller: &Caller, label: &str) {
    let calls = args.millions * 1_000_000 / 500 / args.clients;
    let cpu_before = process::cpu_seconds(Some(args.pid));
    let start = Instant::now();
    std::thread::scope(|scope| {
        for client in 0..args.clients {
            let body = put_records_body("load", args.record_bytes, client);
            scope.spawn(move || {
                let mut connection = caller.connect();
                let mut head = caller.head("PutRecords", &body);
                let mut signed = Instant::now();
                for _ in 0..calls {
                    if signed.elapsed() > Duration::from_secs(60) {
                        head = caller.head("PutRecords", &body);
                        signed = Instant::now();
                    }
                    let response = call(&mut connection, &head, &body);
                    assert!(response.starts_with(br#"{"FailedRecordCount":0"#));
                }
            });
        }
    });
    let secs = start.elapsed().as_secs_f64();
    let cpu = process::cpu_seconds(Some(args.pid)) - cpu_before;
    let records = (calls * args.clients * 500) as f64;
    println!(
        "| {label} | {:.0} | {:.2} |",
        records / secs,
        cpu / (records / 1e6)
    );
}

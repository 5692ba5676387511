//! Encryption at rest: a stream under StartStreamEncryption keeps its records sealed
//! in the data directory, gets them all back after kill -9 with its master key, and
//! refuses to start without it or with another.

use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{EncryptionType, PutRecordsRequestEntry};

use crate::support::{ServerProcess, kinesis_client, read_stream};

/// Two distinct 256-bit keys, as an operator would write them (`openssl rand -hex 32`).
const KEY: &str = "5c1f0e3a9b7d2468ace013579bdf2468ace013579bdf0246813579bdf02468ac";
const OTHER_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// Every file under `dir`, read whole, with its path.
fn files_under(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{e}"))
            .flatten()
        {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{e}"));
                found.push((path.display().to_string(), bytes));
            }
        }
    }
    found
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Starts the server expecting it to refuse; its exit status and stderr.
fn refused_start(args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shardcar"))
        .args(["server", "--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    // The first line, or end of file when the process exits before listening.
    let mut line = String::new();
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .unwrap_or_else(|e| panic!("{e}"));
    if !line.is_empty() {
        let _ = child.kill();
        panic!("the server started: {line}");
    }
    let output = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

async fn put(client: &aws_sdk_kinesis::Client, tag: &str, n: usize) -> Vec<String> {
    let payloads: Vec<String> = (0..n).map(|i| format!("{tag}-{i:04}")).collect();
    let entries = payloads
        .iter()
        .enumerate()
        .map(|(i, p)| {
            PutRecordsRequestEntry::builder()
                .partition_key(format!("key-{i}"))
                .data(Blob::new(p.as_bytes()))
                .build()
                .unwrap_or_else(|e| panic!("{e}"))
        })
        .collect();
    let answer = client
        .put_records()
        .stream_name("enc")
        .set_records(Some(entries))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(answer.failed_record_count(), Some(0));
    payloads
}

#[tokio::test(flavor = "multi_thread")]
async fn an_encrypted_streams_records_are_sealed_on_disk_and_come_back_only_with_its_key() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let data = dir.path().join("data");
    let key_file = dir.path().join("kms.key");
    let other_key_file = dir.path().join("other.key");
    std::fs::write(&key_file, format!("{KEY}\n")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&other_key_file, OTHER_KEY).unwrap_or_else(|e| panic!("{e}"));
    let data_arg = data.to_str().unwrap_or_default();
    let key_arg = key_file.to_str().unwrap_or_default();
    let args = [
        "--data-dir",
        data_arg,
        "--kms-key-file",
        key_arg,
        "--create-stream",
        "enc:2",
        "--no-limits",
        "--create-delay-ms",
        "0",
    ];
    let server = ServerProcess::start(&args);
    let client = kinesis_client(&server.endpoint);
    client
        .start_stream_encryption()
        .stream_name("enc")
        .encryption_type(EncryptionType::Kms)
        .key_id("alias/aws/kinesis")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let summary = client
        .describe_stream_summary()
        .stream_name("enc")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let summary = summary.stream_description_summary();
    assert_eq!(
        summary.and_then(|s| s.encryption_type()),
        Some(&EncryptionType::Kms)
    );
    assert_eq!(summary.and_then(|s| s.key_id()), Some("alias/aws/kinesis"));
    let mut written = put(&client, "sealed-payload", 300).await;
    // Records written after StopStreamEncryption are stored as they come, as on AWS.
    client
        .stop_stream_encryption()
        .stream_name("enc")
        .encryption_type(EncryptionType::Kms)
        .key_id("alias/aws/kinesis")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    written.extend(put(&client, "clear-payload", 50).await);
    server.kill_9();

    let files = files_under(&data);
    assert!(
        files
            .iter()
            .any(|(_, b)| contains(b, b"clear-payload-0049")),
        "the unencrypted records must be found on disk, or the search proves nothing"
    );
    for (path, bytes) in &files {
        assert!(
            !contains(bytes, b"sealed-payload"),
            "{path} holds an encrypted stream's record bytes"
        );
    }

    let server = ServerProcess::start(&args);
    let client = kinesis_client(&server.endpoint);
    let mut read: Vec<String> = read_stream(&client, "enc")
        .await
        .into_iter()
        .map(|r| String::from_utf8_lossy(&r.data).into_owned())
        .collect();
    read.sort();
    written.sort();
    assert_eq!(read, written, "every record comes back once with the key");
    server.kill_9();

    let (code, stderr) = refused_start(&["--data-dir", data_arg]);
    assert_eq!(code, Some(78), "{stderr}");
    assert!(
        stderr.contains("holds encrypted records but its master key")
            && stderr.contains("--kms-key-file"),
        "{stderr}"
    );
    let (code, stderr) = refused_start(&[
        "--data-dir",
        data_arg,
        "--kms-key-file",
        other_key_file.to_str().unwrap_or_default(),
    ]);
    assert_eq!(code, Some(78), "{stderr}");
    assert!(
        stderr.contains("is not the one this data directory's records were encrypted with"),
        "{stderr}"
    );
}

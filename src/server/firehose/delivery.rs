//! Delivery to S3-style directories: a bucket ARN `arn:aws:s3:::NAME` is the
//! directory `S3_DIR/NAME`, and an object is a file at its Firehose key, written under
//! a temporary name, fsynced and renamed, so a reader never sees half an object.
//!
//! Keys are Firehose's: `Prefix` + `YYYY/MM/DD/HH/` (UTC, of the first buffered
//! record) + `DeliveryStreamName-Version-YYYY-MM-DD-HH-MM-SS-RandomString`, with `.gz`
//! for GZIP. The records are concatenated as they were sent.

use std::io::Write;
use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use crate::server::clock::Millis;

/// How a buffer's bytes are compressed into an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Compression {
    Uncompressed,
    Gzip,
}

impl Compression {
    pub fn parse(name: &str) -> Option<Compression> {
        match name {
            "UNCOMPRESSED" => Some(Compression::Uncompressed),
            "GZIP" => Some(Compression::Gzip),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Compression::Uncompressed => "UNCOMPRESSED",
            Compression::Gzip => "GZIP",
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            Compression::Uncompressed => "",
            Compression::Gzip => ".gz",
        }
    }
}

/// The bucket directory of `bucket_arn` under `s3_dir`, if the ARN names a bucket.
pub fn bucket_dir(s3_dir: &Path, bucket_arn: &str) -> Option<PathBuf> {
    let bucket = bucket_arn.strip_prefix("arn:aws:s3:::")?;
    let valid = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    valid.then(|| s3_dir.join(bucket))
}

/// The object key of a flush of `stream` whose first record arrived at `first_ms`.
pub fn object_key(
    prefix: &str,
    stream: &str,
    version: u64,
    first_ms: Millis,
    compression: Compression,
) -> String {
    let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(first_ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let (y, mo, d, h, mi, s) = (
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
    );
    let random: u128 = rand::random();
    let random = format!("{random:032x}");
    format!(
        "{prefix}{y:04}/{mo:02}/{d:02}/{h:02}/{stream}-{version}-{y:04}-{mo:02}-{d:02}-{h:02}-{mi:02}-{s:02}-{}-{}-{}-{}-{}{}",
        &random[..8],
        &random[8..12],
        &random[12..16],
        &random[16..20],
        &random[20..],
        compression.suffix()
    )
}

/// Writes `bytes` (compressed as asked) as the object `key` in `bucket`, atomically.
pub fn write_object(
    bucket: &Path,
    key: &str,
    bytes: &[u8],
    compression: Compression,
) -> std::io::Result<PathBuf> {
    let path = bucket.join(key);
    let parent = path
        .parent()
        .ok_or_else(|| std::io::Error::other(format!("object key {key} has no directory")))?;
    std::fs::create_dir_all(parent)?;
    let temp = parent.join(format!(".{}.tmp", rand::random::<u64>()));
    {
        let mut file = std::fs::File::create(&temp)?;
        match compression {
            Compression::Uncompressed => file.write_all(bytes)?,
            Compression::Gzip => {
                let mut encoder =
                    flate2::write::GzEncoder::new(&mut file, flate2::Compression::default());
                encoder.write_all(bytes)?;
                encoder.finish()?;
            }
        }
        file.sync_all()?;
    }
    std::fs::rename(&temp, &path)?;
    std::fs::File::open(parent)?.sync_all()?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_firehose_naming() {
        // 2015-01-22 01:22:02 UTC
        let key = object_key("logs/", "orders", 3, 1_421_889_722_000, Compression::Gzip);
        let (dated, name) = key.rsplit_once('/').unwrap_or_default();
        assert_eq!(dated, "logs/2015/01/22/01");
        assert!(name.starts_with("orders-3-2015-01-22-01-22-02-"), "{name}");
        assert!(name.ends_with(".gz"), "{name}");
    }

    #[test]
    fn objects_appear_whole_and_gzip_round_trips() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let bucket = bucket_dir(dir.path(), "arn:aws:s3:::my-bucket").unwrap_or_default();
        assert_eq!(bucket, dir.path().join("my-bucket"));
        assert!(bucket_dir(dir.path(), "arn:aws:s3:::../up").is_none());
        let path = write_object(&bucket, "a/b/obj.gz", b"one\ntwo\n", Compression::Gzip)
            .unwrap_or_else(|e| panic!("{e}"));
        let mut text = String::new();
        std::io::Read::read_to_string(
            &mut flate2::read::GzDecoder::new(
                std::fs::File::open(&path).unwrap_or_else(|e| panic!("{e}")),
            ),
            &mut text,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(text, "one\ntwo\n");
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap_or(dir.path()))
            .unwrap_or_else(|e| panic!("{e}"))
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }
}

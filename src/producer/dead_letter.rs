//! Records Kinesis will never accept: written to a JSON-lines file so nothing is lost
//! silently, logged at ERROR and counted.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;

use base64_simd::STANDARD as BASE64;
use serde_json::json;

use crate::kinesis::UserRecord;

#[derive(Debug)]
pub struct DeadLetters {
    path: Option<PathBuf>,
    file: Option<File>,
    stream: String,
}

impl DeadLetters {
    pub fn new(path: Option<PathBuf>, stream: &str) -> Self {
        DeadLetters {
            path,
            file: None,
            stream: stream.to_owned(),
        }
    }

    /// Appends one line per record: time, stream, reason, partition key, data in base64.
    pub fn write(&mut self, record: &UserRecord, reason: &str) {
        tracing::error!(
            stream.name = %self.stream,
            reason,
            bytes = record.data.len(),
            dead_letter.path = ?self.path,
            "record dead-lettered: Kinesis will not accept it"
        );
        metrics::counter!("shardcar_dead_lettered_records_total", "stream" => self.stream.clone())
            .increment(1);
        let Some(path) = &self.path else { return };
        if self.file.is_none() {
            if let Some(parent) = path.parent() {
                let _ = std::fs::create_dir_all(parent);
            }
            match OpenOptions::new().create(true).append(true).open(path) {
                Ok(file) => self.file = Some(file),
                Err(error) => {
                    tracing::error!(file.path = %path.display(), %error, "cannot open the dead-letter file; the record is only logged");
                    return;
                }
            }
        }
        let line = json!({
            "time_ms": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64),
            "stream": self.stream,
            "reason": reason,
            "partition_key": record.partition_key,
            "data_base64": BASE64.encode_to_string(&record.data),
        });
        if let Some(file) = self.file.as_mut()
            && let Err(error) = writeln!(file, "{line}")
        {
            tracing::error!(file.path = %path.display(), %error, "cannot write the dead-letter file");
        }
    }
}

//! The audit trail (`--audit-log FILE`): one JSON object per API call, in the shape
//! CloudTrail gives Kinesis events (`eventTime`, `eventSource`, `eventName`,
//! `awsRegion`, `sourceIPAddress`, `userIdentity.accessKeyId`, `requestParameters`
//! without record data, `errorCode`/`errorMessage`, `requestID`). Data events
//! (PutRecord(s), GetRecords, GetShardIterator, SubscribeToShard) are recorded only
//! when asked for, as on AWS. Lines are appended as calls end and fsynced on the
//! server's fsync schedule.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde_json::{Map, Value, json};

use super::error::KinesisError;
use super::wire::Format;

/// The actions CloudTrail counts as data events for Kinesis.
const DATA_EVENTS: &[&str] = &[
    "GetRecords",
    "GetShardIterator",
    "PutRecord",
    "PutRecords",
    "SubscribeToShard",
];

#[derive(Debug, thiserror::Error)]
#[error("cannot open the audit log {path}: {source}")]
pub struct AuditLogError {
    path: PathBuf,
    source: std::io::Error,
}

#[derive(Debug)]
pub struct AuditLog {
    out: Mutex<BufWriter<File>>,
    data_events: bool,
    region: String,
    account: String,
}

/// One call, as the HTTP layer saw it.
pub struct Call<'a> {
    pub action: &'a str,
    pub format: Option<Format>,
    pub body: &'a [u8],
    pub peer: SocketAddr,
    pub headers: &'a http::HeaderMap,
    pub request_id: &'a str,
    pub error: Option<&'a KinesisError>,
}

impl AuditLog {
    /// Appends to `path` (created if missing, mode 0600: it names who did what).
    pub fn open(
        path: &Path,
        data_events: bool,
        region: &str,
        account: &str,
    ) -> Result<AuditLog, AuditLogError> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(|source| AuditLogError {
                path: path.to_owned(),
                source,
            })?;
        Ok(AuditLog {
            out: Mutex::new(BufWriter::new(file)),
            data_events,
            region: region.to_owned(),
            account: account.to_owned(),
        })
    }

    /// Records one call (a data event only when data events are on).
    pub fn record(&self, call: &Call<'_>) {
        let data = DATA_EVENTS.contains(&call.action);
        if data && !self.data_events {
            return;
        }
        let event = self.event(call, data);
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        let written = serde_json::to_writer(&mut *out, &event)
            .map_err(std::io::Error::other)
            .and_then(|()| out.write_all(b"\n"));
        if let Err(error) = written {
            tracing::error!(%error, "cannot write to the audit log");
        }
    }

    /// Writes what is buffered and fsyncs it.
    pub fn sync(&self) {
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(error) = out.flush().and_then(|()| out.get_ref().sync_data()) {
            tracing::error!(%error, "cannot sync the audit log");
        }
    }

    fn event(&self, call: &Call<'_>, data: bool) -> Value {
        let header = |name: &str| {
            call.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        // `Credential=KEY/DATE/REGION/SERVICE/aws4_request`: who signed, and where.
        let credential = header("authorization").and_then(|auth| {
            let (_, rest) = auth.split_once("Credential=")?;
            let credential = rest.split([',', ' ']).next()?.to_owned();
            Some(credential)
        });
        let mut scope = credential.as_deref().unwrap_or("").split('/');
        let access_key = scope.next().filter(|k| !k.is_empty());
        let region = scope.nth(1).unwrap_or(&self.region);
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let mut event = json!({
            "eventVersion": "1.09",
            "userIdentity": {
                "type": "IAMUser",
                "accountId": self.account,
                "accessKeyId": access_key,
            },
            "eventTime": crate::time::rfc3339_millis(now_ms),
            "eventSource": "kinesis.amazonaws.com",
            "eventName": call.action,
            "awsRegion": region,
            "sourceIPAddress": call.peer.ip().to_string(),
            "userAgent": header("user-agent"),
            "requestParameters": request_parameters(call.format, call.body),
            "responseElements": Value::Null,
            "requestID": call.request_id,
            "eventID": format!("{:032x}", rand::random::<u128>()),
            "readOnly": call.action.starts_with("Describe")
                || call.action.starts_with("List")
                || call.action.starts_with("Get"),
            "eventType": "AwsApiCall",
            "managementEvent": !data,
            "recipientAccountId": self.account,
            "eventCategory": if data { "Data" } else { "Management" },
        });
        if let (Some(error), Some(object)) = (call.error, event.as_object_mut()) {
            object.insert("errorCode".into(), error.kind.wire_name().into());
            object.insert("errorMessage".into(), error.message.clone().into());
        }
        event
    }
}

/// The request's fields with CloudTrail's lower-camel-case names and no record data
/// (`Data` fields are dropped wherever they are).
fn request_parameters(format: Option<Format>, body: &[u8]) -> Value {
    let parsed: Option<Value> = match format {
        Some(Format::Json) => serde_json::from_slice(body).ok(),
        Some(Format::Cbor) => ciborium::from_reader::<ciborium::Value, _>(body)
            .ok()
            .map(cbor_to_json),
        None => None,
    };
    parsed.map_or(Value::Null, scrub)
}

fn cbor_to_json(value: ciborium::Value) -> Value {
    use ciborium::Value as C;
    match value {
        C::Integer(i) => i64::try_from(i128::from(i)).map_or(Value::Null, Value::from),
        C::Float(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
        C::Text(t) => Value::String(t),
        C::Bool(b) => Value::Bool(b),
        C::Tag(_, inner) => cbor_to_json(*inner),
        C::Array(items) => Value::Array(items.into_iter().map(cbor_to_json).collect()),
        C::Map(pairs) => Value::Object(
            pairs
                .into_iter()
                .filter_map(|(k, v)| Some((k.into_text().ok()?, cbor_to_json(v))))
                .collect(),
        ),
        // Byte strings are record data, which the trail never holds.
        _ => Value::Null,
    }
}

fn scrub(value: Value) -> Value {
    match value {
        Value::Object(fields) => {
            let mut out = Map::new();
            for (name, value) in fields {
                if name == "Data" {
                    continue;
                }
                let mut chars = name.chars();
                let camel = match chars.next() {
                    Some(first) => first.to_ascii_lowercase().to_string() + chars.as_str(),
                    None => name,
                };
                out.insert(camel, scrub(value));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.into_iter().map(scrub).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_parameters_drop_record_data_in_json_and_cbor() {
        let json = br#"{"StreamName":"s","Records":[{"Data":"c2VjcmV0","PartitionKey":"k"}]}"#;
        let expected = json!({"streamName": "s", "records": [{"partitionKey": "k"}]});
        assert_eq!(request_parameters(Some(Format::Json), json), expected);
        let value: Value = serde_json::from_slice(json).unwrap_or_else(|e| panic!("{e}"));
        let mut cbor = Vec::new();
        let with_bytes = ciborium::Value::Map(vec![
            (
                ciborium::Value::Text("StreamName".into()),
                ciborium::Value::Text("s".into()),
            ),
            (
                ciborium::Value::Text("Records".into()),
                ciborium::Value::Array(vec![ciborium::Value::Map(vec![
                    (
                        ciborium::Value::Text("Data".into()),
                        ciborium::Value::Bytes(b"secret".to_vec()),
                    ),
                    (
                        ciborium::Value::Text("PartitionKey".into()),
                        ciborium::Value::Text("k".into()),
                    ),
                ])]),
            ),
        ]);
        ciborium::into_writer(&with_bytes, &mut cbor).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(request_parameters(Some(Format::Cbor), &cbor), expected);
        assert_ne!(value, expected, "the JSON itself has the data");
    }
}

//! StartStreamEncryption and StopStreamEncryption: from the call on, the stream's
//! records are sealed in the data directory (or stop being), as on AWS, where the
//! change applies to records written after it. The KMS key id is recorded and shown;
//! the sealing itself uses the data directory's master key (see
//! [`at_rest`](crate::server::store::at_rest)).

use serde::Deserialize;

use super::shapes::Empty;
use super::validate::{NamesStream, Violations};
use crate::server::error::{KinesisError, OpResult};
use crate::server::store::Store;
use crate::server::store::stream::lock;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamEncryptionInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    encryption_type: Option<String>,
    key_id: Option<String>,
}

names_stream!(StreamEncryptionInput);

fn check(input: &StreamEncryptionInput) -> OpResult<String> {
    let mut v = Violations::default();
    input.target().check(&mut v);
    v.required("encryptionType", &input.encryption_type);
    v.one_of(
        "encryptionType",
        input.encryption_type.as_deref(),
        &["NONE", "KMS"],
    );
    v.required("keyId", &input.key_id);
    v.length("keyId", input.key_id.as_deref(), 1, 2048);
    v.finish()?;
    if input.encryption_type.as_deref() != Some("KMS") {
        return Err(KinesisError::invalid_argument(
            "Encryption type NONE is not supported; the only encryption type is KMS.",
        ));
    }
    Ok(input.key_id.clone().unwrap_or_default())
}

pub fn start_stream_encryption(store: &Store, input: StreamEncryptionInput) -> OpResult<Empty> {
    let key_id = check(&input)?;
    let name = input.target().resolve(store)?;
    let (stream, _control) = store.active_stream(&name)?;
    if let Some(persist) = store.persist() {
        // Before the first sealed record: the metadata must name the master key by then.
        persist.note_encryption();
    }
    lock(&stream.state).encryption_key_id = Some(key_id);
    store.save_metadata()?;
    stream
        .sealing
        .store(true, std::sync::atomic::Ordering::Relaxed);
    store.begin_update(&stream);
    Ok(Empty {})
}

pub fn stop_stream_encryption(store: &Store, input: StreamEncryptionInput) -> OpResult<Empty> {
    let key_id = check(&input)?;
    let name = input.target().resolve(store)?;
    let (stream, _control) = store.active_stream(&name)?;
    {
        let mut state = lock(&stream.state);
        match &state.encryption_key_id {
            None => {
                return Err(KinesisError::invalid_argument(format!(
                    "Stream {name} under account {} is not encrypted.",
                    store.account_id()
                )));
            }
            Some(current) if *current != key_id => {
                return Err(KinesisError::invalid_argument(format!(
                    "KeyId {key_id} does not match the key the stream is encrypted with."
                )));
            }
            Some(_) => state.encryption_key_id = None,
        }
    }
    stream
        .sealing
        .store(false, std::sync::atomic::Ordering::Relaxed);
    store.begin_update(&stream);
    store.save_metadata()?;
    Ok(Empty {})
}

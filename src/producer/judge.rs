//! Classifies what Kinesis said about a PutRecords call (or Firehose about a
//! PutRecordBatch call): once, here, so the router only acts on verdicts.

use aws_sdk_kinesis::error::{ProvideErrorMetadata, SdkError};

/// What to do with the entries of a request that failed as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestVerdict {
    /// Send every entry again after a backoff. `refresh_map` when the stream may have
    /// changed; `operator` when a person must act (credentials, permissions, KMS).
    RetryAll {
        code: String,
        refresh_map: bool,
        operator: bool,
    },
    /// The request itself was refused as invalid: some entry is bad. Entries are sent
    /// alone to find it; an entry refused alone is dead-lettered.
    Invalid { code: String, message: String },
}

/// The outcome of one entry in a PutRecords response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryVerdict {
    Accepted {
        shard_id: String,
        sequence_number: String,
    },
    Throttled,
    /// InternalFailure, KMS errors and anything else per-entry: retried.
    Retry {
        code: String,
    },
}

const INVALID: &[&str] = &[
    "ValidationException",
    "InvalidArgumentException",
    "SerializationException",
];
const OPERATOR: &[&str] = &[
    "AccessDeniedException",
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "ExpiredTokenException",
    "MissingAuthenticationTokenException",
    "KMSAccessDeniedException",
    "KMSDisabledException",
    "KMSInvalidStateException",
    "KMSNotFoundException",
    "KMSOptInRequired",
    // Firehose's: its KMS key or its source stream is unusable.
    "InvalidKMSResourceException",
    "InvalidSourceException",
];

pub fn request_verdict<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> RequestVerdict {
    let (code, message) = match error {
        SdkError::ServiceError(service) => (
            service.err().code().unwrap_or("Unknown").to_owned(),
            service.err().message().unwrap_or("").to_owned(),
        ),
        SdkError::TimeoutError(_) => ("Timeout".to_owned(), String::new()),
        SdkError::DispatchFailure(_) => ("ConnectionError".to_owned(), String::new()),
        SdkError::ResponseError(_) => ("ResponseError".to_owned(), String::new()),
        SdkError::ConstructionFailure(_) => ("ConstructionFailure".to_owned(), String::new()),
        _ => ("Unknown".to_owned(), String::new()),
    };
    if INVALID.contains(&code.as_str()) {
        return RequestVerdict::Invalid { code, message };
    }
    RequestVerdict::RetryAll {
        refresh_map: code == "ResourceNotFoundException",
        operator: OPERATOR.contains(&code.as_str())
            || code == "ResourceNotFoundException"
            || code == "ConstructionFailure",
        code,
    }
}

/// One verdict per entry sent, in order, from the answer's per-entry results. An
/// answer shorter than the call leaves some outcomes unknown: those entries are sent
/// again.
pub fn entry_verdicts<T>(
    results: &[T],
    sent: usize,
    verdict: impl Fn(&T) -> EntryVerdict,
) -> Vec<EntryVerdict> {
    (0..sent)
        .map(|index| {
            results.get(index).map_or(
                EntryVerdict::Retry {
                    code: "MissingResult".into(),
                },
                &verdict,
            )
        })
        .collect()
}

pub fn entry_verdict(entry: &aws_sdk_kinesis::types::PutRecordsResultEntry) -> EntryVerdict {
    match (
        entry.error_code(),
        entry.shard_id(),
        entry.sequence_number(),
    ) {
        (None, Some(shard_id), Some(sequence_number)) => EntryVerdict::Accepted {
            shard_id: shard_id.to_owned(),
            sequence_number: sequence_number.to_owned(),
        },
        (Some("ProvisionedThroughputExceededException"), _, _) => EntryVerdict::Throttled,
        (Some(code), _, _) => EntryVerdict::Retry {
            code: code.to_owned(),
        },
        // Success without a shard or sequence number: the outcome is unknown; send again.
        (None, _, _) => EntryVerdict::Retry {
            code: "IncompleteResponse".to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_kinesis::types::PutRecordsResultEntry;

    #[test]
    fn entries_are_classified_by_error_code() {
        let ok = PutRecordsResultEntry::builder()
            .shard_id("shardId-000000000001")
            .sequence_number("1")
            .build();
        assert_eq!(
            entry_verdict(&ok),
            EntryVerdict::Accepted {
                shard_id: "shardId-000000000001".into(),
                sequence_number: "1".into()
            }
        );
        let throttled = PutRecordsResultEntry::builder()
            .error_code("ProvisionedThroughputExceededException")
            .build();
        assert_eq!(entry_verdict(&throttled), EntryVerdict::Throttled);
        let internal = PutRecordsResultEntry::builder()
            .error_code("InternalFailure")
            .build();
        assert_eq!(
            entry_verdict(&internal),
            EntryVerdict::Retry {
                code: "InternalFailure".into()
            }
        );
        let empty = PutRecordsResultEntry::builder().build();
        assert!(matches!(entry_verdict(&empty), EntryVerdict::Retry { .. }));
    }
}

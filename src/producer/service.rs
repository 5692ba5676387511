//! The stream as the router sees it: one call that sends entries and one that lists
//! the shards, answered in the producer's own vocabulary (verdicts), not the SDK's.
//!
//! The router is generic over [`StreamService`] so that everything it decides
//! (judging, retrying, resharding, returning the budget) can be driven by a scripted
//! service under paused time; [`SdkService`] is the real one, and the only place the
//! SDK's PutRecords answer is read.

use std::future::Future;

use aws_sdk_kinesis::Client;

use super::cbor_body;
use super::judge::{EntryVerdict, RequestVerdict, entry_verdict, entry_verdicts, request_verdict};
use super::put_body::{self, WireEntry};
use super::topology::{self, Topology, TopologyError};
use crate::aws::Failure;
use crate::config::BodyFormat;

/// A PutRecords call that failed as a whole: what to do, and what to tell an operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestFailure {
    pub verdict: RequestVerdict,
    pub failure: Failure,
}

impl RequestFailure {
    pub fn of<E, R>(error: &aws_sdk_kinesis::error::SdkError<E, R>) -> RequestFailure
    where
        E: aws_sdk_kinesis::error::ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        RequestFailure {
            verdict: request_verdict(error),
            failure: Failure::of(error),
        }
    }
}

/// One verdict per entry sent, in order; or the call's failure.
pub type PutAnswer = Result<Vec<EntryVerdict>, RequestFailure>;

/// What the router needs of a stream.
pub trait StreamService: Clone + Send + Sync + 'static {
    /// Sends `entries` in one PutRecords call. The answer holds exactly one verdict
    /// per entry.
    fn put_records(
        &self,
        stream: String,
        entries: Vec<WireEntry>,
    ) -> impl Future<Output = PutAnswer> + Send + 'static;

    /// Lists the stream's shards and reads its record limit.
    fn topology(
        &self,
        stream: String,
    ) -> impl Future<Output = Result<Topology, TopologyError>> + Send + 'static;
}

/// Kinesis through the AWS SDK.
#[derive(Clone)]
pub struct SdkService {
    pub client: Client,
    pub format: BodyFormat,
}

impl StreamService for SdkService {
    fn put_records(
        &self,
        stream: String,
        entries: Vec<WireEntry>,
    ) -> impl Future<Output = PutAnswer> + Send + 'static {
        let client = self.client.clone();
        let format = self.format;
        async move {
            let sent = entries.len();
            let body = match format {
                BodyFormat::Cbor => cbor_body::encode(&stream, &entries),
                BodyFormat::Json => put_body::encode(&stream, &entries),
            };
            drop(entries);
            match put_body::put_records(&client, stream, body, format).await {
                Ok(output) => Ok(entry_verdicts(output.records(), sent, entry_verdict)),
                Err(error) => Err(RequestFailure::of(&error)),
            }
        }
    }

    fn topology(
        &self,
        stream: String,
    ) -> impl Future<Output = Result<Topology, TopologyError>> + Send + 'static {
        let client = self.client.clone();
        async move { topology::fetch(&client, &stream).await }
    }
}

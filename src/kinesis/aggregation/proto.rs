//! The KPL's `AggregatedRecord` protobuf messages (proto2), written out by hand.
//!
//! Fields the schema marks `required` are `Option`s here: prost does not enforce
//! `required` on decode, and the KCL passes a record through when one is missing, so
//! the decoder must be able to see the absence. The encoder always sets them, so they
//! are always written, even when zero or empty, as proto2 requires.

use bytes::Bytes;

/// `message AggregatedRecord`: key tables first, then the records that index them.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AggregatedRecord {
    #[prost(string, repeated, tag = "1")]
    pub partition_key_table: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    pub explicit_hash_key_table: Vec<String>,
    #[prost(message, repeated, tag = "3")]
    pub records: Vec<Record>,
}

/// `message Record`: one user record inside an aggregate.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Record {
    /// proto2 `required uint64`.
    #[prost(uint64, optional, tag = "1")]
    pub partition_key_index: Option<u64>,
    #[prost(uint64, optional, tag = "2")]
    pub explicit_hash_key_index: Option<u64>,
    /// proto2 `required bytes`.
    #[prost(bytes = "bytes", optional, tag = "3")]
    pub data: Option<Bytes>,
    #[prost(message, repeated, tag = "4")]
    pub tags: Vec<Tag>,
}

/// `message Tag`: never written by the KPL in practice, but part of the schema.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Tag {
    /// proto2 `required string`.
    #[prost(string, optional, tag = "1")]
    pub key: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub value: Option<String>,
}

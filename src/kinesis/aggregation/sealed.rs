//! Aggregates that are closed but not yet signed with their MD5 trailer.
//!
//! The trailer is the costliest part of building an aggregate: one aggregate hashes at
//! a few hundred MB/s, many side by side about ten times faster (see
//! [`digest`](crate::kinesis::digest)). So the [`Aggregator`](super::Aggregator) hands
//! out a [`Sealed`] aggregate and the caller completes as many as it has in one
//! [`complete_all`].

use bytes::{BufMut, Bytes, BytesMut};

use super::{DIGEST_LEN, KinesisRecord, MAGIC};
use crate::kinesis::digest::{Md5Digest, md5, md5_each};
use crate::kinesis::hash_key::HashKey;

/// A closed aggregate waiting for its trailer, or a lone record that needs none.
#[derive(Debug, PartialEq, Eq)]
pub struct Sealed(Inner);

#[derive(Debug, PartialEq, Eq)]
enum Inner {
    /// One user record goes out raw: nothing to hash.
    Whole(KinesisRecord),
    /// Magic and protobuf, with room reserved for the trailer.
    Unhashed {
        explicit_hash_key: HashKey,
        partition_key: String,
        body: BytesMut,
        user_records: usize,
    },
}

/// A record that is complete already, to keep its place among sealed aggregates.
impl From<KinesisRecord> for Sealed {
    fn from(record: KinesisRecord) -> Self {
        Sealed(Inner::Whole(record))
    }
}

impl Sealed {
    /// `body` holds the magic and the protobuf, with [`DIGEST_LEN`] bytes of spare
    /// capacity for the trailer.
    pub(super) fn unhashed(
        partition_key: String,
        explicit_hash_key: HashKey,
        body: BytesMut,
        user_records: usize,
    ) -> Self {
        Sealed(Inner::Unhashed {
            explicit_hash_key,
            partition_key,
            body,
            user_records,
        })
    }

    /// The size Kinesis will count for the completed record.
    pub fn kinesis_size(&self) -> usize {
        match &self.0 {
            Inner::Whole(record) => record.kinesis_size(),
            Inner::Unhashed {
                partition_key,
                body,
                ..
            } => partition_key.len() + body.len() + DIGEST_LEN,
        }
    }

    /// Completes this one record alone; [`complete_all`] is the fast way for many.
    pub fn complete(self) -> KinesisRecord {
        let mut completed = complete_all(vec![self]);
        // One in, one out.
        completed
            .pop()
            .unwrap_or_else(|| unreachable!("complete_all returns one record per input"))
    }

    /// The protobuf the trailer is the MD5 of, when there is one to compute.
    fn protobuf(&self) -> Option<&[u8]> {
        match &self.0 {
            Inner::Whole(_) => None,
            Inner::Unhashed { body, .. } => Some(&body[MAGIC.len()..]),
        }
    }

    fn into_record(self, digest: Option<&Md5Digest>) -> KinesisRecord {
        match self.0 {
            Inner::Whole(record) => record,
            Inner::Unhashed {
                explicit_hash_key,
                partition_key,
                body,
                user_records,
            } => KinesisRecord {
                partition_key,
                explicit_hash_key,
                data: match digest {
                    Some(digest) => with_trailer(body, digest),
                    None => body.freeze(),
                },
                user_records,
            },
        }
    }
}

/// Completes every record, in order, hashing all the aggregates among them in one
/// batch.
pub fn complete_all(sealed: Vec<Sealed>) -> Vec<KinesisRecord> {
    let protobufs: Vec<&[u8]> = sealed.iter().filter_map(Sealed::protobuf).collect();
    let digests = md5_each(&protobufs);
    let mut digests = digests.iter();
    sealed
        .into_iter()
        .map(|s| {
            let digest = match s.0 {
                Inner::Whole(_) => None,
                Inner::Unhashed { .. } => digests.next(),
            };
            s.into_record(digest)
        })
        .collect()
}

/// An aggregate body (magic and protobuf) with its trailer computed alone, for a
/// caller that has just the one.
pub(super) fn trailed(body: BytesMut) -> Bytes {
    let digest = md5(&body[MAGIC.len()..]);
    with_trailer(body, &digest)
}

/// The body with the trailer appended: the MD5 of its protobuf.
fn with_trailer(mut body: BytesMut, digest: &Md5Digest) -> Bytes {
    body.put_slice(digest);
    body.freeze()
}

#[cfg(test)]
mod tests {
    use md5::{Digest, Md5};

    use super::*;
    use crate::kinesis::UserRecord;
    use crate::kinesis::aggregation::{Aggregator, deaggregate};

    /// An aggregate of `n` records whose data sizes put its protobuf near every MD5
    /// padding boundary as `n` and `extra` vary.
    fn sealed(n: usize, extra: usize) -> (Sealed, Vec<UserRecord>) {
        let mut agg = Aggregator::new(1 << 20);
        let records: Vec<UserRecord> = (0..n)
            .map(|i| {
                UserRecord::new(
                    format!("k{}", i % 5),
                    vec![b'a' + (i % 26) as u8; i + extra],
                )
            })
            .collect();
        for record in &records {
            agg.push(record.clone()).expect("fits");
        }
        (agg.seal().expect("not empty"), records)
    }

    #[test]
    fn batch_trailers_equal_the_reference_md5_at_every_length() {
        // Lengths across several 64-byte blocks, mixed in one batch, with lone records
        // (no trailer) in between, so lanes finish at different blocks.
        let mut batch = Vec::new();
        let mut expected = Vec::new();
        for n in [1, 2, 3, 7, 20] {
            for extra in 0..70 {
                let (s, records) = sealed(n, extra);
                batch.push(s);
                expected.push(records);
            }
        }
        let completed = complete_all(batch);
        assert_eq!(completed.len(), expected.len());
        for (record, sent) in completed.iter().zip(&expected) {
            if sent.len() == 1 {
                assert!(!record.is_aggregated());
                assert_eq!(record.data, sent[0].data);
                continue;
            }
            let trailer_at = record.data.len() - DIGEST_LEN;
            let reference = Md5::digest(&record.data[MAGIC.len()..trailer_at]);
            assert_eq!(&record.data[trailer_at..], reference.as_slice());
            assert_eq!(
                deaggregate(&record.partition_key, &record.data).records,
                *sent
            );
        }
    }

    #[test]
    fn one_completes_as_a_batch_of_one_would() {
        let (alone, _) = sealed(9, 33);
        let (in_batch, _) = sealed(9, 33);
        let (other, _) = sealed(4, 1);
        let size = alone.kinesis_size();
        let record = alone.complete();
        assert_eq!(record.kinesis_size(), size);
        assert_eq!(complete_all(vec![other, in_batch])[1], record);
    }
}

//! The end of a record's way through the producer: its outcome (delivered or
//! dead-lettered) queued for its owner, and its share of the in-flight budget returned.
//!
//! Every byte of budget the router takes in is counted here (`hold`) and given back
//! exactly once: when the record's outcome is known, or, for records still held when
//! the producer stops however it stops, on drop.

use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;

use super::dead_letter::DeadLetters;
use super::lane::{Entry, Member};
use super::stats::ProducerStats;
use super::{Ack, Outcome, Stored};

pub struct Delivery<T> {
    stream: String,
    acks: mpsc::Sender<Vec<Ack<T>>>,
    pending: Vec<Ack<T>>,
    budget: Arc<Semaphore>,
    /// Budget bytes of the records held (taken in, outcome not yet known).
    held: usize,
    stats: Arc<ProducerStats>,
    dead_letters: DeadLetters,
}

impl<T> Delivery<T> {
    pub fn new(
        stream: &str,
        acks: mpsc::Sender<Vec<Ack<T>>>,
        budget: Arc<Semaphore>,
        stats: Arc<ProducerStats>,
        dead_letters: DeadLetters,
    ) -> Self {
        Delivery {
            stream: stream.to_owned(),
            acks,
            pending: Vec::new(),
            budget,
            held: 0,
            stats,
            dead_letters,
        }
    }

    /// Records holding `bytes` of budget were taken in.
    pub fn hold(&mut self, bytes: usize) {
        self.held += bytes;
    }

    /// Kinesis accepted `entry` on `shard_id`: every record in it is delivered.
    pub fn deliver(&mut self, entry: Entry<T>, shard_id: &str, sequence_number: &str) {
        let size = entry.record.kinesis_size() as u64;
        ProducerStats::add(&self.stats.kinesis_records, 1);
        ProducerStats::add(&self.stats.kinesis_bytes, size);
        metrics::counter!("shardcar_kinesis_records_total", "stream" => self.stream.clone(), "shard" => shard_id.to_owned()).increment(1);
        metrics::counter!("shardcar_kinesis_bytes_total", "stream" => self.stream.clone(), "shard" => shard_id.to_owned())
            .increment(size);
        let aggregated = entry.record.is_aggregated();
        let now = Instant::now();
        let mut released = 0;
        let stored = Arc::new(Stored {
            shard_id: shard_id.to_owned(),
            sequence_number: sequence_number.to_owned(),
        });
        for (position, member) in entry.members.into_iter().enumerate() {
            released += member.size;
            self.pending.push(Ack {
                token: member.token,
                outcome: Outcome::Delivered {
                    stored: stored.clone(),
                    sub_sequence_number: if aggregated { position as u64 } else { 0 },
                },
                latency: now.duration_since(member.received),
            });
        }
        self.release(released);
    }

    /// Records Kinesis will never accept: written to the dead-letter file and
    /// acknowledged as such.
    pub fn dead_letter(&mut self, members: Vec<Member<T>>, reason: &str) {
        let now = Instant::now();
        let mut released = 0;
        for member in members {
            ProducerStats::add(&self.stats.dead_lettered, 1);
            if let Some(record) = &member.record {
                self.dead_letters.write(record, reason);
            }
            released += member.size;
            self.pending.push(Ack {
                token: member.token,
                outcome: Outcome::DeadLettered {
                    reason: reason.to_owned(),
                },
                latency: now.duration_since(member.received),
            });
        }
        self.release(released);
    }

    fn release(&mut self, bytes: usize) {
        self.held -= bytes;
        ProducerStats::add(&self.stats.released_bytes, bytes as u64);
        self.budget.add_permits(bytes);
    }

    /// Hands the outcomes gathered so far to the owner, waiting for room.
    pub async fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        // The next batch is likely as large: start it at that size.
        let capacity = self.pending.len();
        let batch = std::mem::replace(&mut self.pending, Vec::with_capacity(capacity));
        ProducerStats::add(&self.stats.acknowledged_records, batch.len() as u64);
        // A dropped ack stream means nobody is listening; the records were still handled.
        let _ = self.acks.send(batch).await;
    }
}

/// A producer that stops, normally or aborted at the end of a shutdown grace period,
/// returns the budget of every record it still holds, so producers that share the
/// budget (the agent's other flows, a restarted flow) get it.
impl<T> Drop for Delivery<T> {
    fn drop(&mut self) {
        if self.held > 0 {
            self.budget.add_permits(self.held);
        }
    }
}

//! What every reading is and how far it is acknowledged: the source of checkpoints.
//!
//! Flows register readings and report dropped ranges; the producer's acknowledgements
//! arrive here; the checkpointer asks for the list to persist. One `std::sync::Mutex`
//! guards it: every use is a short, non-async section.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::ack::{AckTracker, ReadingId};
use super::checkpoint::FileCheckpoint;
use super::tail::identity::FileIdentity;

/// What a checkpoint names: the reading's flow, file and identity. Shared (an `Arc`)
/// with the checkpointer's snapshots, so a snapshot of 10,000 readings copies
/// pointers, not three strings per file; replaced whole on the rare change (a rename,
/// a longer fingerprint).
#[derive(Debug, Clone)]
pub struct ReadingName {
    pub flow: Arc<str>,
    pub path: PathBuf,
    pub identity: FileIdentity,
}

impl ReadingName {
    /// The owned checkpoint of this reading at `offset`.
    pub fn checkpoint(&self, offset: u64) -> FileCheckpoint {
        FileCheckpoint {
            flow: self.flow.to_string(),
            path: self.path.to_string_lossy().into_owned(),
            dev: self.identity.dev,
            ino: self.identity.ino,
            fingerprint: self.identity.fingerprint.clone(),
            fingerprint_len: self.identity.fingerprint_len,
            offset,
        }
    }
}

/// The readings to checkpoint and their acknowledged offsets, in checkpoint order.
pub type Snapshot = Vec<(Arc<ReadingName>, u64)>;

#[derive(Debug)]
struct Reading {
    name: Arc<ReadingName>,
    /// Set once the file was read to its end and released: the reading is over when
    /// everything below it is acknowledged.
    end: Option<u64>,
}

#[derive(Debug, Default)]
struct Inner {
    tracker: AckTracker,
    readings: HashMap<ReadingId, Reading>,
    next: ReadingId,
    /// Counts changes, so a writer can tell nothing changed without building the
    /// checkpoints (10,000 files make that a real cost every second).
    version: u64,
}

/// A cheap, clonable handle to the ledger.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    inner: Arc<Mutex<Inner>>,
}

impl Ledger {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The lock, for a change.
    fn change(&self) -> MutexGuard<'_, Inner> {
        let mut inner = self.lock();
        inner.version += 1;
        inner
    }

    /// Changes so far: equal versions mean equal checkpoints.
    pub fn version(&self) -> u64 {
        self.lock().version
    }

    /// Registers a reading of `path` from `offset` and returns its id.
    pub fn begin(
        &self,
        flow: &Arc<str>,
        path: &Path,
        identity: &FileIdentity,
        offset: u64,
    ) -> ReadingId {
        let name = Arc::new(ReadingName {
            flow: flow.clone(),
            path: path.to_owned(),
            identity: identity.clone(),
        });
        let mut inner = self.change();
        inner.next += 1;
        let id = inner.next;
        inner.tracker.begin(id, offset);
        inner.readings.insert(id, Reading { name, end: None });
        id
    }

    pub fn acknowledge(&self, reading: ReadingId, range: Range<u64>) {
        let mut inner = self.change();
        inner.tracker.acknowledge(reading, range);
        inner.retire_if_done(reading);
    }

    /// Many acknowledgements under one lock; each reading they touch is checked for
    /// retirement once, after all of them.
    ///
    /// A batch of acks covers records spread over shards, each shard's in file order:
    /// sorted, neighbours join into a few long ranges, so the tracker does a few
    /// updates per file instead of one per record. Ranges that follow each other in
    /// the batch (an aggregate's lines, mostly) are joined before sorting: what is
    /// sorted is a few ranges per aggregate, not a range per record.
    pub fn acknowledge_all(&self, ranges: impl IntoIterator<Item = (ReadingId, Range<u64>)>) {
        let mut joined_runs: Vec<(ReadingId, Range<u64>)> = Vec::new();
        for (reading, range) in ranges {
            match joined_runs.last_mut() {
                Some((last, run)) if *last == reading && run.end == range.start => {
                    run.end = range.end;
                }
                _ => joined_runs.push((reading, range)),
            }
        }
        let mut ranges = joined_runs;
        ranges.sort_unstable_by_key(|(reading, range)| (*reading, range.start));
        let mut inner = self.change();
        let mut current: Option<(ReadingId, Range<u64>)> = None;
        let mut touched: Vec<ReadingId> = Vec::new();
        for (reading, range) in ranges {
            match &mut current {
                Some((open, joined)) if *open == reading && range.start <= joined.end => {
                    joined.end = joined.end.max(range.end);
                }
                _ => {
                    if let Some((open, joined)) = current.replace((reading, range)) {
                        inner.tracker.acknowledge(open, joined);
                    }
                    touched.push(reading);
                }
            }
        }
        if let Some((open, joined)) = current {
            inner.tracker.acknowledge(open, joined);
        }
        touched.dedup();
        for reading in touched {
            inner.retire_if_done(reading);
        }
    }

    pub fn update_identity(&self, reading: ReadingId, identity: &FileIdentity) {
        self.rename(reading, |name| ReadingName {
            identity: identity.clone(),
            ..name.clone()
        });
    }

    pub fn update_path(&self, reading: ReadingId, path: &Path) {
        self.rename(reading, |name| ReadingName {
            path: path.to_owned(),
            ..name.clone()
        });
    }

    /// Replaces a reading's shared name (snapshots taken before keep the old one).
    fn rename(&self, reading: ReadingId, renamed: impl FnOnce(&ReadingName) -> ReadingName) {
        if let Some(r) = self.change().readings.get_mut(&reading) {
            r.name = Arc::new(renamed(&r.name));
        }
    }

    /// The file was read to `end` and released.
    pub fn finish(&self, reading: ReadingId, end: u64) {
        let mut inner = self.change();
        if let Some(r) = inner.readings.get_mut(&reading) {
            r.end = Some(end);
        }
        inner.retire_if_done(reading);
    }

    /// Drops a reading whose bytes no longer exist (the file was truncated).
    pub fn abandon(&self, reading: ReadingId) {
        let mut inner = self.change();
        inner.tracker.forget(reading);
        inner.readings.remove(&reading);
    }

    /// Drops every reading of `flow` (it is being restarted from its checkpoints).
    pub fn forget_flow(&self, flow: &str) {
        let mut inner = self.change();
        let ids: Vec<ReadingId> = inner
            .readings
            .iter()
            .filter(|(_, r)| *r.name.flow == *flow)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            inner.readings.remove(&id);
            inner.tracker.forget(id);
        }
    }

    /// Keeps only the readings of these flows (others were removed from the config).
    pub fn retain_flows(&self, flows: &[String]) {
        let mut inner = self.change();
        let ids: Vec<ReadingId> = inner
            .readings
            .iter()
            .filter(|(_, r)| !flows.iter().any(|f| **f == *r.name.flow))
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            inner.readings.remove(&id);
            inner.tracker.forget(id);
        }
    }

    /// The checkpoint of every reading still open or not fully acknowledged.
    pub fn checkpoints(&self) -> Vec<FileCheckpoint> {
        self.snapshot()
            .iter()
            .map(|(name, offset)| name.checkpoint(*offset))
            .collect()
    }

    /// [`Ledger::checkpoints`] as shared names and offsets: what the checkpointer
    /// writes every second, without copying a string per file. Sorted by flow, path
    /// and inode; one entry per file and flow (a file found again under another
    /// name while its old reading drains has two readings).
    pub fn snapshot(&self) -> Snapshot {
        let mut list: Snapshot = {
            let inner = self.lock();
            inner
                .readings
                .iter()
                .filter_map(|(id, r)| Some((r.name.clone(), inner.tracker.committed(*id)?)))
                .collect()
        };
        // Paths compared as bytes: `Path`'s own order walks components, and sorting
        // 10,000 paths that way every second showed in the busy agent's profile.
        list.sort_by(|(a, _), (b, _)| {
            (
                &a.flow,
                a.path.as_os_str().as_encoded_bytes(),
                a.identity.ino,
            )
                .cmp(&(
                    &b.flow,
                    b.path.as_os_str().as_encoded_bytes(),
                    b.identity.ino,
                ))
        });
        list.dedup_by(|(a, _), (b, _)| {
            a.identity.dev == b.identity.dev
                && a.identity.ino == b.identity.ino
                && a.identity.fingerprint == b.identity.fingerprint
                && a.flow == b.flow
        });
        list
    }

    /// What the files of these readings (with their sizes now) hold beyond their
    /// acknowledged offsets, in all.
    pub fn unacknowledged_bytes(&self, sizes: &[(ReadingId, u64)]) -> u64 {
        let inner = self.lock();
        sizes
            .iter()
            .map(|(reading, size)| {
                size.saturating_sub(inner.tracker.committed(*reading).unwrap_or(0))
            })
            .sum()
    }

    /// Acknowledged offset of one reading (for status and tests).
    pub fn committed(&self, reading: ReadingId) -> Option<u64> {
        self.lock().tracker.committed(reading)
    }

    /// Readings of `flow` that are not over yet.
    pub fn open_readings(&self, flow: &str) -> usize {
        self.lock()
            .readings
            .values()
            .filter(|r| *r.name.flow == *flow)
            .count()
    }
}

impl Inner {
    fn retire_if_done(&mut self, reading: ReadingId) {
        let done = match (
            self.readings.get(&reading).and_then(|r| r.end),
            self.tracker.committed(reading),
        ) {
            (Some(end), Some(committed)) => committed >= end,
            _ => false,
        };
        if done {
            self.readings.remove(&reading);
            self.tracker.forget(reading);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> FileIdentity {
        FileIdentity {
            dev: 1,
            ino: 2,
            fingerprint: "f".into(),
            fingerprint_len: 1,
        }
    }

    /// Equal versions mean equal checkpoints: every change moves the version, and
    /// looking does not.
    #[test]
    fn the_version_moves_with_every_change_and_only_then() {
        let ledger = Ledger::default();
        let mut seen = ledger.version();
        let mut changed = |ledger: &Ledger, what: &str| {
            let now = ledger.version();
            assert_ne!(now, seen, "{what} did not move the version");
            seen = now;
        };
        let id = ledger.begin(&"flow".into(), Path::new("/a"), &identity(), 0);
        changed(&ledger, "begin");
        ledger.acknowledge(id, 0..10);
        changed(&ledger, "acknowledge");
        ledger.acknowledge_all([(id, 10..20)]);
        changed(&ledger, "acknowledge_all");
        ledger.update_path(id, Path::new("/b"));
        changed(&ledger, "update_path");
        let before = ledger.version();
        let _ = ledger.checkpoints();
        let _ = ledger.unacknowledged_bytes(&[(id, 30)]);
        assert_eq!(ledger.version(), before, "looking changed the version");
        ledger.finish(id, 20);
        changed(&ledger, "finish");
    }

    #[test]
    fn a_finished_reading_stays_until_fully_acknowledged() {
        let ledger = Ledger::default();
        let id = ledger.begin(&"flow".into(), Path::new("/a"), &identity(), 0);
        ledger.acknowledge(id, 10..20);
        ledger.finish(id, 20);
        assert_eq!(ledger.checkpoints()[0].offset, 0);
        ledger.acknowledge(id, 0..10);
        assert!(ledger.checkpoints().is_empty());
        assert_eq!(ledger.open_readings("flow"), 0);
    }

    /// Runs of ranges that follow each other are joined before sorting; a run broken
    /// by a gap, or by another file's range, still commits only up to the gap.
    #[test]
    fn runs_of_following_ranges_commit_up_to_the_first_gap() {
        let ledger = Ledger::default();
        let a = ledger.begin(&"flow".into(), Path::new("/a"), &identity(), 0);
        let b = ledger.begin(&"flow".into(), Path::new("/b"), &identity(), 0);
        ledger.acknowledge_all([
            (a, 0..10),
            (a, 10..20),
            (b, 0..5),
            (a, 20..30),
            (a, 40..50),
            (a, 50..60),
            (b, 5..8),
        ]);
        assert_eq!(ledger.committed(a), Some(30));
        assert_eq!(ledger.committed(b), Some(8));
        ledger.acknowledge_all([(a, 30..40)]);
        assert_eq!(ledger.committed(a), Some(60));
    }

    #[test]
    fn batches_of_acks_in_any_order_commit_exactly_what_they_cover() {
        let ledger = Ledger::default();
        let a = ledger.begin(&"flow".into(), Path::new("/a"), &identity(), 0);
        let b = ledger.begin(&"flow".into(), Path::new("/b"), &identity(), 100);
        // Two files' records over three shards, acknowledged shard by shard, with a
        // gap in /a (30..40 still in flight) and a duplicate.
        let mut batch = Vec::new();
        for shard in 0..3u64 {
            for i in (0..10u64).filter(|i| i % 3 == shard) {
                if i != 3 {
                    batch.push((a, i * 10..i * 10 + 10));
                }
                batch.push((b, 100 + i * 10..110 + i * 10));
            }
        }
        batch.push((a, 0..10));
        ledger.acknowledge_all(batch);
        assert_eq!(ledger.committed(a), Some(30));
        assert_eq!(ledger.committed(b), Some(200));
        ledger.acknowledge_all([(a, 30..40)]);
        assert_eq!(ledger.committed(a), Some(100));
    }
}

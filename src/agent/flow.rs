//! One flow at work: finds its files, reads them, turns bytes into records and hands
//! them to its producer. The producer's backpressure stops the reading: the log files
//! are the buffer.
//!
//! Reads are blocking `pread` calls of up to 256 KiB: the flow runs on a reader
//! thread of its own ([`super::reader`]), so they cannot stall the async workers.
//!
//! A little over 500 lines, kept together: finding files, following rotations and
//! truncations, draining rotated files and reading in turns are one state machine
//! over one map of tracked files. What a read becomes is [`super::records`]'s.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::ack::ReadingId;
use super::checkpoint::FileCheckpoint;
use super::ledger::Ledger;
pub use super::records::Token;
use super::records::{RecordMaker, Source};
use super::stats::FlowStats;
use super::tail::discovery::{Discovery, Found};
use super::tail::framing::{Framed, FramingConfig};
use super::tail::identity::FileIdentity;
use super::tail::reader::{Chunk, Lifecycle, TrackedFile};
use super::tail::table::{FileTable, Slot};
use crate::config::{FlowConfig, StartAt};
use crate::kinesis::UserRecord;
use crate::producer::ProducerHandle;

const READ_BUFFER: usize = 256 * 1024;
/// Most bytes read from one file before the others get a turn.
const READ_PER_TURN: usize = 4 * 1024 * 1024;
/// How often every file is read while file events are not available.
const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// Shortest time between two passes driven by events while they keep coming: a
/// pass per event would cost a pass per line written.
const EVENT_GATHER: Duration = Duration::from_millis(10);
/// A renamed or deleted file idle this long is taken as complete.
const DRAIN_IDLE: Duration = Duration::from_secs(5);
/// How often the flow's gauges (files tracked, bytes behind) are brought up to date,
/// also while the reader waits on the in-flight budget.
const REPORT_INTERVAL: Duration = Duration::from_secs(1);

pub struct Flow {
    config: FlowConfig,
    /// The flow's name as every reading of it in the ledger shares it.
    name: Arc<str>,
    discovery: Discovery,
    producer: ProducerHandle<Token>,
    ledger: Ledger,
    stats: Arc<FlowStats>,
    scan_interval: Duration,
    /// Whether file events are to be used.
    file_events: FileEvents,
    /// Paths file events said were written to: read without waiting for a sweep.
    written: Arc<std::sync::Mutex<HashSet<PathBuf>>>,
    /// Whether file events are arriving (set once the watcher is up).
    events_on: bool,
    /// Whether the last pass left a file with more to read (its turn ended).
    unfinished: bool,
    files: FileTable,
    /// Slots of files whose framer holds bytes not yet sent (a line without its
    /// newline, an open multi-line record): the only ones an idle flush can concern.
    /// With 10,000 quiet files, looking at each of them four times a second was a
    /// fifth of the idle agent's CPU. A slot may outlive its file (it is checked).
    held: BTreeSet<Slot>,
    draining: Vec<TrackedFile>,
    /// Paths that could not be opened, reported once until they can.
    unreadable: HashSet<PathBuf>,
    /// Where every file of the flow is read into, one at a time.
    scratch: Vec<u8>,
    /// Turns true when the flow must stop; a reader waiting on the budget leaves too.
    stop: watch::Receiver<bool>,
    /// Frames into records: transforms, partition keys, sizing.
    records: RecordMaker,
    /// Records made in this pass and not yet handed to the producer, in read order:
    /// handed over together once they hold a read buffer's worth, or at the end of
    /// the loop's turn.
    /// With thousands of files written a line each, one hand-over per file read was
    /// a channel message, a budget acquisition and a wake-up of the producer per line.
    outbox: Vec<(UserRecord, Token)>,
    outbox_bytes: usize,
    last_report: Instant,
}

/// Whether a flow reads on file change events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FileEvents {
    /// Events drive reads; every file is still read once a scan interval (the safety
    /// net for events lost or never sent, as on network filesystems).
    #[default]
    Used,
    /// No watcher: every file is polled four times a second.
    Off,
    /// A watcher whose every event is dropped: the safety net alone reads (tests).
    Dropped,
}

/// How a flow begins: its checkpoints, and whether `start_at` applies to the files it
/// finds first (only when the flow has never run before).
pub struct FlowStart {
    pub checkpoints: Vec<FileCheckpoint>,
    pub first_run: bool,
}

fn framing(config: &FlowConfig) -> FramingConfig {
    FramingConfig {
        max_record_bytes: config.max_record_bytes,
        split_marker_len: config.split_marker.len(),
        oversize: config.oversize,
        multiline_start: config.multiline_start.as_ref().map(|p| p.0.clone()),
        skip_header_lines: config.skip_header_lines,
    }
}

impl Flow {
    pub fn new(
        config: FlowConfig,
        producer: ProducerHandle<Token>,
        ledger: Ledger,
        stats: Arc<FlowStats>,
        host: String,
        scan_interval: Duration,
    ) -> Result<Flow, super::tail::discovery::PatternError> {
        let discovery = Discovery::new(&config.include, &config.exclude)?;
        let records = RecordMaker::new(config.clone(), host, stats.clone());
        Ok(Flow {
            records,
            name: Arc::from(config.name.as_str()),
            config,
            discovery,
            producer,
            ledger,
            stats,
            scan_interval,
            file_events: FileEvents::Used,
            written: Arc::default(),
            events_on: false,
            unfinished: false,
            files: FileTable::default(),
            held: BTreeSet::new(),
            draining: Vec::new(),
            unreadable: HashSet::new(),
            scratch: vec![0; READ_BUFFER],
            stop: watch::channel(false).1,
            outbox: Vec::new(),
            outbox_bytes: 0,
            last_report: Instant::now(),
        })
    }

    pub fn set_file_events(&mut self, mode: FileEvents) {
        self.file_events = mode;
    }

    /// Runs until `stop` turns true; returns once reading has stopped (the caller then
    /// drains the producer). Records held in framers are not sent: their bytes are
    /// above the checkpoint and will be read again.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        self.stop = stop.clone();
        let (wake_tx, mut wake_rx) = mpsc::channel::<bool>(1);
        let rescan = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let watcher = match self.file_events {
            FileEvents::Off => None,
            mode => self.watch(wake_tx, rescan.clone(), mode == FileEvents::Dropped),
        };
        // With file events, a written file is read when its event comes; every file is
        // still read once a scan interval, in case an event was lost. Without them,
        // every file is polled.
        let sweep_every = match watcher {
            Some(_) => self.scan_interval.max(POLL_INTERVAL),
            None => POLL_INTERVAL,
        };
        self.events_on = watcher.is_some();
        tracing::trace!(flow = %self.config.name, events = watcher.is_some(), "watching");
        let mut next_scan = Instant::now() + self.scan_interval;
        let mut next_sweep = Instant::now();
        let mut next_idle_check = Instant::now();
        loop {
            if *stop.borrow() {
                break;
            }
            let now = Instant::now();
            self.unfinished = false;
            if rescan.swap(false, std::sync::atomic::Ordering::Relaxed) {
                // Events were lost (the kernel's queue overflowed): look at everything.
                next_scan = now;
                next_sweep = now;
            }
            if now >= next_scan {
                self.scan();
                next_scan = now + self.scan_interval;
            }
            let read_any = if now >= next_sweep {
                next_sweep = now + sweep_every;
                self.read_all(&mut stop).await
            } else {
                self.read_written(&mut stop).await
            };
            if now >= next_idle_check {
                // Idle deadlines are a second or more; a few looks per deadline do.
                let soonest = self
                    .config
                    .multiline_timeout
                    .min(self.config.flush_partial_line_after);
                next_idle_check =
                    now + (soonest / 4).clamp(Duration::from_millis(5), REPORT_INTERVAL);
                self.flush_idle().await;
                self.release_drained();
            }
            // What this pass read and flushed goes to the producer together.
            self.hand_over_outbox(None).await;
            if self.last_report.elapsed() >= REPORT_INTERVAL {
                self.report(None);
                self.last_report = Instant::now();
            }
            if read_any && self.unfinished {
                // A file's turn ended before its end: read on at once.
                continue;
            }
            tokio::select! {
                event = wake_rx.recv() => {
                    if event == Some(true) {
                        next_scan = Instant::now();
                    }
                    // Under a stream of events (every line its own write), the writes
                    // of the next moments are read in one pass, not one pass each.
                    let gathered = now + EVENT_GATHER;
                    if read_any && Instant::now() < gathered {
                        tokio::select! {
                            _ = tokio::time::sleep_until(gathered) => {}
                            _ = stop.changed() => {}
                        }
                    }
                }
                _ = tokio::time::sleep_until(next_sweep.min(next_scan).min(next_idle_check)) => {}
                _ = stop.changed() => {}
            }
        }
        tracing::debug!(flow = %self.config.name, files = self.files.len(), "flow stopped reading");
    }

    /// File-system events wake the loop (`true`: something was created or renamed, so
    /// scan). Without events (network filesystems) the periodic scan still finds files.
    /// `rescan` turns true when the watcher lost events. `drop_all` ignores every event
    /// (tests: what a lost event looks like to the loop).
    fn watch(
        &self,
        wake: mpsc::Sender<bool>,
        rescan: Arc<std::sync::atomic::AtomicBool>,
        drop_all: bool,
    ) -> Option<notify::RecommendedWatcher> {
        use notify::{EventKind, RecursiveMode, Watcher};
        let written = self.written.clone();
        let handler = move |event: notify::Result<notify::Event>| {
            if drop_all {
                return;
            }
            let Ok(event) = event else {
                rescan.store(true, std::sync::atomic::Ordering::Relaxed);
                let _ = wake.try_send(true);
                return;
            };
            if event.need_rescan() {
                rescan.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            if matches!(event.kind, EventKind::Modify(_) | EventKind::Create(_)) {
                written
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend(event.paths);
            }
            let structural = matches!(
                event.kind,
                EventKind::Create(_)
                    | EventKind::Remove(_)
                    | EventKind::Modify(notify::event::ModifyKind::Name(_))
            );
            let _ = wake.try_send(structural);
        };
        let mut watcher = match notify::recommended_watcher(handler) {
            Ok(w) => w,
            Err(error) => {
                tracing::warn!(flow = %self.config.name, %error, "file events unavailable; relying on periodic scans");
                return None;
            }
        };
        for root in self.discovery.roots() {
            if let Err(error) = watcher.watch(root, RecursiveMode::Recursive) {
                tracing::debug!(flow = %self.config.name, file.path = %root.display(), %error, "cannot watch directory; relying on periodic scans");
            }
        }
        Some(watcher)
    }

    fn open(&mut self, path: &Path, offset: u64, lifecycle: Lifecycle) -> Option<TrackedFile> {
        let mut tracked = match TrackedFile::open(path, offset, framing(&self.config), 0) {
            Ok(t) => t,
            Err(error) => {
                if self.unreadable.insert(path.to_owned()) {
                    FlowStats::add(&self.stats.unreadable_files, 1);
                    tracing::warn!(flow = %self.config.name, file.path = %path.display(), %error, "cannot read file; will retry");
                }
                return None;
            }
        };
        self.unreadable.remove(path);
        tracked.lifecycle = lifecycle;
        tracked.reading = self
            .ledger
            .begin(&self.name, path, &tracked.identity, offset);
        Some(tracked)
    }

    /// First scan: finds the flow's files and matches them to checkpoints by identity,
    /// registering each in the ledger with the offset it starts from. Nothing is read.
    pub fn begin(&mut self, start: FlowStart) {
        let mut remaining = start.checkpoints;
        let (found, errors) = self.discovery.scan();
        self.report_scan_errors(errors);
        let mut seen: HashSet<(u64, u64)> = HashSet::new();
        for Found { path, .. } in found {
            // One file reached by several paths (a symlink, a hard link) is read once.
            if let Ok(meta) = std::fs::metadata(&path) {
                use std::os::unix::fs::MetadataExt;
                if !seen.insert((meta.dev(), meta.ino())) {
                    tracing::debug!(flow = %self.config.name, file.path = %path.display(), "another path to a file already read; skipped");
                    continue;
                }
            }
            let Ok(file) = std::fs::File::open(&path) else {
                // Reported (once) and retried by the periodic scan.
                if let Some(tracked) = self.open(&path, 0, Lifecycle::Active) {
                    self.files.insert(tracked);
                }
                continue;
            };
            let matched = remaining
                .iter()
                .position(|c| c.identity().matches(&file).unwrap_or(false))
                .map(|i| remaining.swap_remove(i));
            let size = file.metadata().map(|m| m.len()).unwrap_or(0);
            let offset = match matched {
                Some(checkpoint) if checkpoint.offset <= size => checkpoint.offset,
                Some(checkpoint) => {
                    FlowStats::add(&self.stats.truncations, 1);
                    tracing::warn!(flow = %self.config.name, file.path = %path.display(), file.offset = checkpoint.offset, size, "file is shorter than its checkpoint (truncated while stopped); reading it from the start");
                    0
                }
                None if start.first_run && self.config.start_at == StartAt::End => size,
                None => {
                    if remaining.iter().any(|c| Path::new(&c.path) == path) {
                        tracing::info!(flow = %self.config.name, file.path = %path.display(), "the file at this path is not the one checkpointed (rotated while stopped); reading it from the start");
                    }
                    0
                }
            };
            if let Some(tracked) = self.open(&path, offset, Lifecycle::Active) {
                self.files.insert(tracked);
            }
        }
        // Checkpointed files no longer at a matching path: look for them renamed.
        for checkpoint in remaining {
            match find_renamed(&checkpoint) {
                Some(path) => {
                    tracing::info!(flow = %self.config.name, file.path = %path.display(), was = %checkpoint.path, file.offset = checkpoint.offset, "found a checkpointed file under a new name; finishing it");
                    if let Some(tracked) = self.open(&path, checkpoint.offset, Lifecycle::Draining)
                    {
                        self.draining.push(tracked);
                    }
                }
                None => {
                    tracing::warn!(flow = %self.config.name, file.path = %checkpoint.path, file.offset = checkpoint.offset, "a checkpointed file is gone; what it held past its checkpoint cannot be read");
                }
            }
        }
        tracing::debug!(flow = %self.config.name, files = self.files.len(), draining = self.draining.len(), "initial scan done");
    }

    fn report_scan_errors(&mut self, errors: Vec<(PathBuf, std::io::Error)>) {
        for (dir, error) in errors {
            if self.unreadable.insert(dir.clone()) {
                tracing::warn!(flow = %self.config.name, file.path = %dir.display(), %error, "cannot list directory; will retry");
            }
        }
    }

    /// Finds new files, and files rotated (renamed or deleted) away from their path.
    /// A tracked regular file is still at its path when the directory lists the path
    /// with the file's inode: one directory read tells, not a `stat` per file.
    fn scan(&mut self) {
        // No file came, went or was renamed: nothing to find. Files that could not be
        // opened are retried whatever the directories say.
        if self.unreadable.is_empty() && self.discovery.unchanged() {
            return;
        }
        let (found, errors) = self.discovery.scan();
        self.report_scan_errors(errors);
        let listed: std::collections::HashMap<&Path, Option<u64>, foldhash::fast::RandomState> =
            found.iter().map(|f| (f.path.as_path(), f.ino)).collect();
        let gone: Vec<PathBuf> = self
            .files
            .iter()
            .filter(|t| match listed.get(t.path.as_path()) {
                None => true,
                Some(Some(ino)) => *ino != t.identity.ino,
                // A symlink: where it points now takes a look.
                Some(None) => !t.is_at(&t.path).unwrap_or(false),
            })
            .map(|t| t.path.clone())
            .collect();
        for path in gone {
            if let Some(mut old) = self.files.remove(&path) {
                FlowStats::add(&self.stats.rotations, 1);
                tracing::info!(flow = %self.config.name, file.path = %path.display(), file.offset = old.offset(), "file rotated or deleted; finishing what it holds");
                old.lifecycle = Lifecycle::Draining;
                self.draining.push(old);
            }
        }
        let mut tracked_inodes: Option<HashSet<(u64, u64)>> = None;
        for Found { path, .. } in found {
            if self.files.contains(&path) {
                continue;
            }
            // A file renamed onto another matching path is the same file: keep reading it.
            if let Some(i) = self
                .draining
                .iter()
                .position(|t| t.is_at(&path).unwrap_or(false))
            {
                let mut tracked = self.draining.swap_remove(i);
                tracked.lifecycle = Lifecycle::Active;
                tracked.path = path.clone();
                self.ledger.update_path(tracked.reading, &path);
                self.files.insert(tracked);
                continue;
            }
            // Another path to a file already read (a symlink beside its target).
            let inodes = tracked_inodes
                .get_or_insert_with(|| self.files.iter().map(|t| t.identity.inode()).collect());
            if let Ok(meta) = std::fs::metadata(&path) {
                use std::os::unix::fs::MetadataExt;
                if inodes.contains(&(meta.dev(), meta.ino())) {
                    continue;
                }
            }
            // A file that appears after the start is new: read it whole.
            if let Some(tracked) = self.open(&path, 0, Lifecycle::Active) {
                tracing::debug!(flow = %self.config.name, file.path = %path.display(), "new file");
                inodes.insert(tracked.identity.inode());
                self.files.insert(tracked);
            }
        }
    }

    /// Reads every file once around, slot by slot; returns whether any bytes were read.
    async fn read_all(&mut self, stop: &mut watch::Receiver<bool>) -> bool {
        // What events marked is read now anyway.
        self.take_written();
        let slots = self.files.slots();
        self.read_slots(slots, stop).await
    }

    /// Reads the files events said were written to (and the rotated files still
    /// draining); returns whether any bytes were read.
    async fn read_written(&mut self, stop: &mut watch::Receiver<bool>) -> bool {
        // A path not tracked (not matched, or a rotated name) is the scan's.
        let slots = self
            .take_written()
            .iter()
            .filter_map(|path| self.files.slot_of(path))
            .collect();
        self.read_slots(slots, stop).await
    }

    fn take_written(&self) -> HashSet<PathBuf> {
        std::mem::take(&mut *self.written.lock().unwrap_or_else(|p| p.into_inner()))
    }

    async fn read_slots(&mut self, slots: Vec<Slot>, stop: &mut watch::Receiver<bool>) -> bool {
        let mut read_any = false;
        for slot in slots {
            if *stop.borrow() {
                return read_any;
            }
            let Some(mut tracked) = self.files.take(slot) else {
                continue;
            };
            let (read, more) = self.read_file(&mut tracked).await;
            read_any |= read > 0;
            if tracked.pending_bytes() > 0 {
                self.held.insert(slot);
            }
            if more {
                // Its turn ended before its end: read on at the next pass.
                self.unfinished = true;
                self.written
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(tracked.path.clone());
            }
            self.files.put_back(slot, tracked);
        }
        let mut draining = std::mem::take(&mut self.draining);
        for tracked in &mut draining {
            let (read, _) = self.read_file(tracked).await;
            read_any |= read > 0;
        }
        self.draining.append(&mut draining);
        read_any
    }

    /// Reads one file up to its end or its turn's limit, and sends what it frames.
    /// Returns the bytes read and whether its turn ended before its end.
    async fn read_file(&mut self, tracked: &mut TrackedFile) -> (usize, bool) {
        let mut more = true;
        let mut total = 0;
        let mut frames_per_read = 0;
        while total < READ_PER_TURN {
            // Sized like the last read's: a chunk holds about as many lines as the one before.
            let mut out = Framed {
                frames: Vec::with_capacity(frames_per_read),
                ..Framed::default()
            };
            let n = match tracked.read_chunk(&mut self.scratch, &mut out) {
                Ok(Chunk::Read(n)) => n,
                Ok(Chunk::End) => {
                    more = false;
                    break;
                }
                Ok(Chunk::Replaced) => {
                    self.restart_replaced(tracked);
                    continue;
                }
                Err(error) => {
                    tracing::warn!(flow = %self.config.name, file.path = %tracked.path.display(), %error, "read failed; will retry");
                    more = false;
                    break;
                }
            };
            total += n;
            tracing::trace!(flow = %self.config.name, file.path = %tracked.path.display(), bytes = n, file.offset = tracked.offset(), frames = out.frames.len(), "read");
            FlowStats::add(&self.stats.bytes_read, n as u64);
            frames_per_read = out.frames.len();
            if !self.send(tracked, out).await {
                // Stopping: what was not handed over stays above the checkpoint.
                break;
            }
        }
        if tracked.refresh_identity() {
            self.ledger
                .update_identity(tracked.reading, &tracked.identity);
        }
        (total, more)
    }

    /// copytruncate: the file was emptied in place (and perhaps refilled). What was not
    /// read before is gone (copytruncate cannot promise otherwise) and is counted; the
    /// new content is read from its first byte as a new reading of the same file.
    fn restart_replaced(&mut self, tracked: &mut TrackedFile) {
        FlowStats::add(&self.stats.truncations, 1);
        tracing::warn!(flow = %self.config.name, file.path = %tracked.path.display(), file.offset = tracked.offset(), "file truncated or replaced in place (copytruncate); reading it again from the start");
        self.ledger.abandon(tracked.reading);
        if let Err(error) = tracked.restart() {
            tracing::warn!(flow = %self.config.name, file.path = %tracked.path.display(), %error, "cannot read the truncated file again; will retry");
        }
        tracked.reading = self
            .ledger
            .begin(&self.name, &tracked.path, &tracked.identity, 0);
    }

    /// Transforms, keys and sends the frames; acknowledges dropped ranges at once.
    /// Returns false if the flow was asked to stop before the producer took them all.
    async fn send(&mut self, tracked: &TrackedFile, out: Framed) -> bool {
        // Records are cut to the stream's limit, which is known once the stream has
        // been listed: cut to the 1 MiB default before then, a line that fits a
        // stream taking larger records would be split for nothing. Only such lines
        // wait; the rest go on as before (an outage fills the budget as usual).
        let default_limit = self.producer.max_record_bytes();
        if !self.producer.record_limit_known()
            && out.frames.iter().any(|f| f.data.len() > default_limit)
            && !self.await_record_limit(tracked).await
        {
            return false;
        }
        let made = self.records.make(
            &Source {
                reading: tracked.reading,
                file: &tracked.path.to_string_lossy(),
                time_ms: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64),
            },
            out,
            self.producer.max_record_bytes(),
        );
        // Ranges that made no record are done now; the ledger moves a checkpoint only
        // over what precedes them being acknowledged too.
        if !made.handled.is_empty() {
            self.ledger.acknowledge_all(made.handled);
        }
        self.outbox_bytes += made
            .records
            .iter()
            .map(|(record, _)| record.kinesis_size())
            .sum::<usize>();
        self.outbox.extend(made.records);
        if self.outbox_bytes < READ_BUFFER {
            return true;
        }
        self.hand_over_outbox(Some(tracked)).await
    }

    /// Hands the pass's records to the producer (see `outbox`). Returns false if the
    /// flow was asked to stop first: the records not taken stay above the checkpoint.
    /// `current` is the file being read, if any, for the gauges kept while waiting.
    async fn hand_over_outbox(&mut self, current: Option<&TrackedFile>) -> bool {
        if self.outbox.is_empty() {
            return true;
        }
        let batch = std::mem::take(&mut self.outbox);
        self.outbox_bytes = 0;
        self.hand_over(batch, current).await
    }

    /// Waits until the producer knows the stream's record limit, keeping the gauges
    /// current (the stream may be unreachable); false if the flow must stop first.
    async fn await_record_limit(&self, tracked: &TrackedFile) -> bool {
        let mut stop = self.stop.clone();
        let known = self.producer.stream_record_limit();
        tokio::pin!(known);
        let mut report =
            tokio::time::interval_at(Instant::now() + REPORT_INTERVAL, REPORT_INTERVAL);
        loop {
            tokio::select! {
                () = &mut known => return true,
                _ = stop.wait_for(|stop| *stop) => return false,
                _ = report.tick() => self.report(Some(tracked)),
            }
        }
    }

    /// Hands records to the producer, waiting while the in-flight budget is full. The
    /// wait ends early when the flow must stop (the records stay above the checkpoint
    /// and are read again); meanwhile the gauges stay current, since an outage is when
    /// an operator looks at them. Returns whether every record was handed over.
    async fn hand_over(
        &self,
        batch: Vec<(UserRecord, Token)>,
        current: Option<&TrackedFile>,
    ) -> bool {
        let mut stop = self.stop.clone();
        let sending = self.producer.send_batch(batch);
        tokio::pin!(sending);
        let mut report =
            tokio::time::interval_at(Instant::now() + REPORT_INTERVAL, REPORT_INTERVAL);
        loop {
            tokio::select! {
                sent = &mut sending => return sent.is_ok(),
                _ = stop.wait_for(|stop| *stop) => return false,
                _ = report.tick() => self.report(current),
            }
        }
    }

    /// Sends records that wait on idleness (multi-line records, last lines without newline).
    async fn flush_idle(&mut self) {
        let now = Instant::now();
        let multiline = self.config.multiline_timeout;
        let partial = self.config.flush_partial_line_after;
        let mut work: Vec<(Option<Slot>, ReadingId, Framed)> = Vec::new();
        let due = |tracked: &mut TrackedFile| -> Option<Framed> {
            let idle = now.duration_since(tracked.last_data);
            if tracked.pending_bytes() == 0 || idle < multiline.min(partial) {
                return None;
            }
            // Unread bytes mean the reader is behind (its turn ended, or the in-flight
            // budget held it back), not that the writer went quiet: the rest of this
            // line or record is in the file, and the next read completes it.
            if !tracked.at_end() {
                return None;
            }
            // A renamed or deleted file will not get its newline: send its last line too.
            let whole =
                idle >= partial || (tracked.lifecycle == Lifecycle::Draining && idle >= DRAIN_IDLE);
            let mut out = Framed::default();
            tracked.flush_idle(whole, &mut out);
            (!out.frames.is_empty()).then_some(out)
        };
        let files = &mut self.files;
        self.held.retain(|&slot| {
            let Some(tracked) = files.get_mut(slot) else {
                return false;
            };
            if tracked.pending_bytes() == 0 {
                return false;
            }
            if let Some(out) = due(tracked) {
                work.push((Some(slot), tracked.reading, out));
            }
            true
        });
        for tracked in &mut self.draining {
            if let Some(out) = due(tracked) {
                work.push((None, tracked.reading, out));
            }
        }
        for (slot, reading, out) in work {
            match slot {
                Some(slot) => {
                    if let Some(tracked) = self.files.take(slot) {
                        self.send(&tracked, out).await;
                        self.files.put_back(slot, tracked);
                    }
                }
                None => {
                    if let Some(i) = self.draining.iter().position(|t| t.reading == reading) {
                        let tracked = self.draining.swap_remove(i);
                        self.send(&tracked, out).await;
                        self.draining.push(tracked);
                    }
                }
            }
            if *self.stop.borrow() {
                return;
            }
        }
    }

    /// Releases renamed or deleted files read to their end and idle for a while.
    fn release_drained(&mut self) {
        let now = Instant::now();
        let (done, keep): (Vec<TrackedFile>, Vec<TrackedFile>) = std::mem::take(&mut self.draining)
            .into_iter()
            .partition(|t| {
                t.at_end()
                    && t.pending_bytes() == 0
                    && now.duration_since(t.last_data) >= DRAIN_IDLE
            });
        self.draining = keep;
        for tracked in done {
            tracing::debug!(flow = %self.config.name, file.path = %tracked.path.display(), file.offset = tracked.offset(), "released a finished file");
            self.ledger.finish(tracked.reading, tracked.offset());
        }
    }

    /// Files tracked, and bytes behind: what the tracked files hold that Kinesis has
    /// not acknowledged yet (read or not). `current` is the file being read, which is
    /// out of the map meanwhile.
    fn report(&self, current: Option<&TrackedFile>) {
        // A file's size is looked up when events are off, or said it was written to;
        // otherwise its last read saw its size (a sweep reads every file).
        let written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        let look = |t: &TrackedFile| !self.events_on || written.contains(&t.path);
        let mut sizes: Vec<(ReadingId, u64)> = Vec::with_capacity(self.files.len() + 1);
        for tracked in self.files.iter() {
            let size = if look(tracked) {
                tracked.size().unwrap_or(tracked.seen_size())
            } else {
                tracked.seen_size()
            };
            sizes.push((tracked.reading, size));
        }
        drop(written);
        for tracked in self.draining.iter().chain(current) {
            sizes.push((tracked.reading, tracked.size().unwrap_or(0)));
        }
        FlowStats::set(&self.stats.files_tracked, sizes.len() as u64);
        FlowStats::set(
            &self.stats.bytes_behind,
            self.ledger.unacknowledged_bytes(&sizes),
        );
    }
}

/// A file renamed while the agent was stopped is usually in the same directory.
fn find_renamed(checkpoint: &FileCheckpoint) -> Option<PathBuf> {
    let identity: FileIdentity = checkpoint.identity();
    let dir = Path::new(&checkpoint.path).parent()?;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        use std::os::unix::fs::MetadataExt;
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_file()
            && meta.ino() == identity.ino
            && meta.dev() == identity.dev
            && let Ok(file) = std::fs::File::open(&path)
            && identity.matches(&file).unwrap_or(false)
        {
            return Some(path);
        }
    }
    None
}

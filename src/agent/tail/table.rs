//! The files a flow reads, by path, in slots that can be lent out.
//!
//! A flow reads one file at a time while the others stay where they are (their
//! gauges are reported meanwhile), so a file is taken out of its slot for its read and
//! put back after; the path keeps pointing at the slot. Reading every file goes slot by
//! slot: no path is cloned or looked up, so a sweep over 10,000 quiet files costs
//! their `fstat` calls and little else.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use foldhash::fast::RandomState;

use super::reader::TrackedFile;

#[derive(Debug, Default)]
pub struct FileTable {
    /// Boxed: a file's state is a few hundred bytes, and a table of 10,000 grows by
    /// doubling (with a copy) far more cheaply as pointers.
    slots: Vec<Option<Box<TrackedFile>>>,
    by_path: HashMap<PathBuf, usize, RandomState>,
    free: Vec<usize>,
}

/// Where a file lives in a [`FileTable`]; valid until it is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Slot(usize);

impl FileTable {
    /// Files tracked (lent out or not).
    pub fn len(&self) -> usize {
        self.by_path.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_path.is_empty()
    }

    pub fn contains(&self, path: &Path) -> bool {
        self.by_path.contains_key(path)
    }

    pub fn slot_of(&self, path: &Path) -> Option<Slot> {
        self.by_path.get(path).copied().map(Slot)
    }

    /// Tracks `tracked` under its path. A file already at that path is replaced and
    /// returned.
    pub fn insert(&mut self, tracked: TrackedFile) -> Option<TrackedFile> {
        if let Some(&index) = self.by_path.get(&tracked.path) {
            return self.slots[index].replace(Box::new(tracked)).map(|old| *old);
        }
        let path = tracked.path.clone();
        let index = match self.free.pop() {
            Some(index) => {
                self.slots[index] = Some(Box::new(tracked));
                index
            }
            None => {
                self.slots.push(Some(Box::new(tracked)));
                self.slots.len() - 1
            }
        };
        self.by_path.insert(path, index);
        None
    }

    /// Stops tracking the file at `path` and returns it (`None` if it is lent out).
    pub fn remove(&mut self, path: &Path) -> Option<TrackedFile> {
        let index = self.by_path.remove(path)?;
        self.free.push(index);
        self.slots[index].take().map(|t| *t)
    }

    /// Lends the file out for a read; [`FileTable::put_back`] returns it.
    /// The file at `slot`, unless it is lent out or the slot is empty.
    pub fn get_mut(&mut self, slot: Slot) -> Option<&mut TrackedFile> {
        self.slots.get_mut(slot.0)?.as_deref_mut()
    }

    pub fn take(&mut self, slot: Slot) -> Option<Box<TrackedFile>> {
        self.slots.get_mut(slot.0)?.take()
    }

    pub fn put_back(&mut self, slot: Slot, tracked: Box<TrackedFile>) {
        if let Some(place) = self.slots.get_mut(slot.0) {
            *place = Some(tracked);
        }
    }

    /// Every slot holding a file now, in slot order.
    pub fn slots(&self) -> Vec<Slot> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, t)| t.is_some())
            .map(|(i, _)| Slot(i))
            .collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = &TrackedFile> {
        self.slots.iter().flatten().map(|t| &**t)
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (Slot, &mut TrackedFile)> {
        self.slots
            .iter_mut()
            .enumerate()
            .filter_map(|(i, t)| Some((Slot(i), &mut **t.as_mut()?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::tail::framing::FramingConfig;
    use crate::config::Oversize;

    fn open(path: &Path) -> TrackedFile {
        std::fs::write(path, b"line\n").unwrap_or_else(|e| panic!("{e}"));
        let framing = FramingConfig {
            max_record_bytes: 1024,
            split_marker_len: 0,
            oversize: Oversize::Split,
            multiline_start: None,
            skip_header_lines: 0,
        };
        TrackedFile::open(path, 0, framing, 0).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A lent-out file still counts and keeps its path; removal frees its slot for
    /// the next file, and a path is never in two slots.
    #[test]
    fn slots_are_lent_out_reused_and_one_per_path() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (a, b, c) = (
            dir.path().join("a"),
            dir.path().join("b"),
            dir.path().join("c"),
        );
        let mut table = FileTable::default();
        assert!(table.insert(open(&a)).is_none());
        assert!(table.insert(open(&b)).is_none());
        let slot_a = table.slot_of(&a).unwrap_or_else(|| panic!("a tracked"));
        let lent = table.take(slot_a).unwrap_or_else(|| panic!("a lent"));
        assert_eq!(table.len(), 2);
        assert!(table.contains(&a));
        assert_eq!(table.iter().count(), 1, "a is out");
        table.put_back(slot_a, lent);
        assert_eq!(table.slots().len(), 2);

        assert!(table.remove(&a).is_some());
        assert!(table.insert(open(&c)).is_none());
        assert_eq!(table.slot_of(&c), Some(slot_a), "the freed slot is reused");
        assert!(table.insert(open(&c)).is_some(), "the same path replaces");
        assert_eq!(table.len(), 2);
        let paths: Vec<&Path> = table.iter().map(|t| t.path.as_path()).collect();
        assert_eq!(paths, [c.as_path(), b.as_path()]);
    }
}

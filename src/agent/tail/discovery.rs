//! Which files a flow reads: include and exclude globs, `**` across directories.
//!
//! Discovery only lists paths; it knows nothing of reading or checkpoints. It walks
//! from the literal prefix of each pattern (the part before the first wildcard), so
//! `/var/log/app/**/*.log` never walks `/var/log` as a whole.

use std::io;
use std::path::{Component, Path, PathBuf};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

/// Why a pattern could not be used (config validation already rejects these).
#[derive(Debug, thiserror::Error)]
#[error("invalid glob {pattern:?}: {source}")]
pub struct PatternError {
    pattern: String,
    source: globset::Error,
}

#[derive(Debug, Clone)]
pub struct Discovery {
    include: GlobSet,
    exclude: GlobSet,
    /// Where to walk from, and how deep (None: unbounded, for `**`).
    roots: Vec<(PathBuf, Option<usize>)>,
    /// What the last scan saw of each directory it walked (see [`Discovery::unchanged`]).
    stamps: Vec<Stamp>,
    /// Whether the last scan could list every directory it tried.
    clean: bool,
}

/// A directory as the last scan found it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    dir: PathBuf,
    /// Modification time (seconds, nanoseconds); `None`: it did not exist.
    mtime: Option<(i64, i64)>,
    /// Whether the listing can be trusted to stay as it is while the mtime does: the
    /// mtime was old enough that a later change could not share it (the kernel's
    /// clock for timestamps is coarse), and no symlink was listed (its target can
    /// change without the directory changing).
    settled: bool,
}

/// How old a directory's mtime must be for its listing to be reused.
const SETTLE: std::time::Duration = std::time::Duration::from_secs(2);

fn mtime_of(dir: &Path) -> io::Result<Option<(i64, i64)>> {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(dir) {
        Ok(meta) => Ok(Some((meta.mtime(), meta.mtime_nsec()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn glob_set(patterns: &[String]) -> Result<GlobSet, PatternError> {
    let mut builder = GlobSetBuilder::new();
    for pattern in patterns {
        let glob = GlobBuilder::new(pattern)
            .literal_separator(true)
            .build()
            .map_err(|source| PatternError {
                pattern: pattern.clone(),
                source,
            })?;
        builder.add(glob);
    }
    builder.build().map_err(|source| PatternError {
        pattern: patterns.join(", "),
        source,
    })
}

fn is_wildcard(part: &str) -> bool {
    part.contains(['*', '?', '[', '{'])
}

/// The literal directory a pattern starts in and how many levels below it can match.
fn root_of(pattern: &str) -> (PathBuf, Option<usize>) {
    let mut root = PathBuf::from("/");
    let parts: Vec<&str> = Path::new(pattern)
        .components()
        .filter_map(|c| match c {
            Component::Normal(p) => p.to_str(),
            _ => None,
        })
        .collect();
    let literal = parts.iter().take_while(|p| !is_wildcard(p)).count();
    // A fully literal pattern names a file: walk its directory, one level.
    let literal = literal.min(parts.len().saturating_sub(1));
    for part in &parts[..literal] {
        root.push(part);
    }
    let rest = &parts[literal..];
    let depth = if rest.iter().any(|p| p.contains("**")) {
        None
    } else {
        Some(rest.len())
    };
    (root, depth)
}

impl Discovery {
    pub fn new(include: &[String], exclude: &[String]) -> Result<Discovery, PatternError> {
        let mut roots: Vec<(PathBuf, Option<usize>)> = include.iter().map(|p| root_of(p)).collect();
        roots.sort();
        roots.dedup();
        Ok(Discovery {
            include: glob_set(include)?,
            exclude: glob_set(exclude)?,
            roots,
            stamps: Vec::new(),
            clean: false,
        })
    }

    pub fn matches(&self, path: &Path) -> bool {
        self.include.is_match(path) && !self.exclude.is_match(path)
    }

    /// Directories to watch for changes (the walk roots).
    pub fn roots(&self) -> impl Iterator<Item = &Path> {
        self.roots.iter().map(|(p, _)| p.as_path())
    }

    /// Every regular file matching now (sorted by path), and the directories that
    /// could not be read.
    pub fn scan(&mut self) -> (Vec<Found>, Vec<(PathBuf, io::Error)>) {
        let mut found = Vec::new();
        let mut errors = Vec::new();
        let mut stamps = Vec::new();
        for (root, depth) in &self.roots {
            self.walk(root, *depth, &mut found, &mut errors, &mut stamps);
        }
        self.stamps = stamps;
        self.clean = errors.is_empty();
        // By bytes: comparing paths component by component cost more than the walk.
        use std::os::unix::ffi::OsStrExt;
        found.sort_unstable_by(|a, b| {
            a.path
                .as_os_str()
                .as_bytes()
                .cmp(b.path.as_os_str().as_bytes())
        });
        found.dedup_by(|a, b| a.path == b.path);
        (found, errors)
    }

    /// Whether no directory the last scan walked has changed since (none created,
    /// removed or renamed a file): a scan now would find what the last one found. A
    /// directory stat each, instead of listing 10,000 files to learn nothing.
    pub fn unchanged(&self) -> bool {
        self.clean
            && !self.stamps.is_empty()
            && self.stamps.iter().all(|stamp| {
                stamp.settled && mtime_of(&stamp.dir).is_ok_and(|now| now == stamp.mtime)
            })
    }

    fn walk(
        &self,
        dir: &Path,
        depth: Option<usize>,
        found: &mut Vec<Found>,
        errors: &mut Vec<(PathBuf, io::Error)>,
        stamps: &mut Vec<Stamp>,
    ) {
        use std::os::unix::fs::DirEntryExt;
        if depth == Some(0) {
            return;
        }
        // Taken before listing: a change while listing moves the mtime past it.
        let mtime = match mtime_of(dir) {
            Ok(mtime) => mtime,
            Err(e) => {
                errors.push((dir.to_owned(), e));
                return;
            }
        };
        let settled = mtime.is_none_or(|(secs, nanos)| {
            let at = std::time::UNIX_EPOCH
                + std::time::Duration::new(secs.max(0) as u64, nanos.clamp(0, 999_999_999) as u32);
            at.elapsed().is_ok_and(|age| age >= SETTLE)
        });
        let mut stamp = Stamp {
            dir: dir.to_owned(),
            mtime,
            settled,
        };
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                stamps.push(stamp);
                return;
            }
            Err(e) => {
                errors.push((dir.to_owned(), e));
                return;
            }
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                self.walk(&path, depth.map(|d| d - 1), found, errors, stamps);
            } else if kind.is_file() && self.matches(&path) {
                found.push(Found {
                    path,
                    ino: Some(entry.ino()),
                });
            } else if kind.is_symlink() {
                stamp.settled = false;
                if path.is_file() && self.matches(&path) {
                    found.push(Found { path, ino: None });
                }
            }
        }
        stamps.push(stamp);
    }
}

/// A matching file a scan found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub path: PathBuf,
    /// The inode the directory lists for a regular file (no `stat` needed to tell a
    /// file replaced at its path); `None` for a symlink, whose target must be looked up.
    pub ino: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_stop_at_the_first_wildcard() {
        assert_eq!(
            root_of("/var/log/app/*.log"),
            (PathBuf::from("/var/log/app"), Some(1))
        );
        assert_eq!(
            root_of("/var/log/*/x.log"),
            (PathBuf::from("/var/log"), Some(2))
        );
        assert_eq!(
            root_of("/var/log/**/*.log"),
            (PathBuf::from("/var/log"), None)
        );
        assert_eq!(
            root_of("/var/log/syslog"),
            (PathBuf::from("/var/log"), Some(1))
        );
    }

    #[test]
    fn star_stays_in_a_directory_and_double_star_crosses() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path();
        for file in [
            "a.log",
            "b.txt",
            "sub/c.log",
            "sub/deep/d.log",
            "sub/deep/skip.log",
        ] {
            let path = base.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, b"x").unwrap();
        }
        let pattern = |p: &str| format!("{}/{p}", base.display());
        let paths = |d: &mut Discovery| -> Vec<PathBuf> {
            d.scan().0.into_iter().map(|f| f.path).collect()
        };
        let mut shallow = Discovery::new(&[pattern("*.log")], &[]).unwrap();
        assert_eq!(paths(&mut shallow), vec![base.join("a.log")]);
        let mut deep = Discovery::new(&[pattern("**/*.log")], &[pattern("**/skip.log")]).unwrap();
        assert_eq!(
            paths(&mut deep),
            vec![
                base.join("a.log"),
                base.join("sub/c.log"),
                base.join("sub/deep/d.log")
            ]
        );
        let mut dirs = Discovery::new(&[pattern("*/deep/*.log")], &[]).unwrap();
        assert_eq!(dirs.scan().0.len(), 2);
        // A regular file comes with the inode its directory lists.
        let found = shallow.scan().0;
        use std::os::unix::fs::MetadataExt;
        let ino = std::fs::metadata(base.join("a.log")).unwrap().ino();
        assert_eq!(found[0].ino, Some(ino));
    }

    fn age(dir: &Path) {
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        std::fs::File::open(dir)
            .and_then(|d| d.set_times(std::fs::FileTimes::new().set_modified(old)))
            .unwrap();
    }

    /// A scan is needed again when a file appears, goes or is renamed, not when one
    /// is written to; a directory changed moments ago is listed again until its mtime
    /// is old enough to tell the next change apart.
    #[test]
    fn a_settled_directory_is_unchanged_until_a_file_comes_or_goes() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path();
        std::fs::write(base.join("a.log"), b"x").unwrap();
        age(base);
        let mut discovery = Discovery::new(&[format!("{}/*.log", base.display())], &[]).unwrap();
        assert!(!discovery.unchanged(), "never scanned");
        discovery.scan();
        assert!(discovery.unchanged());
        std::fs::write(base.join("a.log"), b"more").unwrap();
        assert!(
            discovery.unchanged(),
            "writing to a file changes no directory"
        );
        std::fs::write(base.join("b.log"), b"new").unwrap();
        assert!(!discovery.unchanged(), "a new file");
        discovery.scan();
        assert!(!discovery.unchanged(), "changed moments ago: not settled");
        age(base);
        discovery.scan();
        assert!(discovery.unchanged());
        std::fs::rename(base.join("a.log"), base.join("a.log.1")).unwrap();
        assert!(!discovery.unchanged(), "a rename");
    }
}

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
    pub fn scan(&self) -> (Vec<Found>, Vec<(PathBuf, io::Error)>) {
        let mut found = Vec::new();
        let mut errors = Vec::new();
        for (root, depth) in &self.roots {
            self.walk(root, *depth, &mut found, &mut errors);
        }
        found.sort_by(|a, b| a.path.cmp(&b.path));
        found.dedup_by(|a, b| a.path == b.path);
        (found, errors)
    }

    fn walk(
        &self,
        dir: &Path,
        depth: Option<usize>,
        found: &mut Vec<Found>,
        errors: &mut Vec<(PathBuf, io::Error)>,
    ) {
        use std::os::unix::fs::DirEntryExt;
        if depth == Some(0) {
            return;
        }
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return,
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
                self.walk(&path, depth.map(|d| d - 1), found, errors);
            } else if kind.is_file() && self.matches(&path) {
                found.push(Found {
                    path,
                    ino: Some(entry.ino()),
                });
            } else if kind.is_symlink() && path.is_file() && self.matches(&path) {
                found.push(Found { path, ino: None });
            }
        }
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
        let paths =
            |d: &Discovery| -> Vec<PathBuf> { d.scan().0.into_iter().map(|f| f.path).collect() };
        let shallow = Discovery::new(&[pattern("*.log")], &[]).unwrap();
        assert_eq!(paths(&shallow), vec![base.join("a.log")]);
        let deep = Discovery::new(&[pattern("**/*.log")], &[pattern("**/skip.log")]).unwrap();
        assert_eq!(
            paths(&deep),
            vec![
                base.join("a.log"),
                base.join("sub/c.log"),
                base.join("sub/deep/d.log")
            ]
        );
        let dirs = Discovery::new(&[pattern("*/deep/*.log")], &[]).unwrap();
        assert_eq!(dirs.scan().0.len(), 2);
        // A regular file comes with the inode its directory lists.
        let found = shallow.scan().0;
        use std::os::unix::fs::MetadataExt;
        let ino = std::fs::metadata(base.join("a.log")).unwrap().ino();
        assert_eq!(found[0].ino, Some(ino));
    }
}

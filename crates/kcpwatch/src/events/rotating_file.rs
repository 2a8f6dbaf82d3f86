//! A log file that rotates by size and by age, keeping the last N files: `events.ndjson` is
//! the one being written, `events.ndjson.1` the one before, and so on. Rotation happens between
//! records, never inside one, so every file holds whole lines.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// When to start a new file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rotation {
    /// Rotate before a write would take the file past this many bytes (0: never by size).
    pub max_bytes: u64,
    /// Rotate when the file is older than this (`None`: never by age).
    pub max_age: Option<Duration>,
    /// Rotated files kept besides the current one; older ones are deleted.
    pub keep: u32,
}

/// An append-only file with rotation.
#[derive(Debug)]
pub struct RotatingFile {
    path: PathBuf,
    rotation: Rotation,
    file: File,
    size: u64,
    opened: SystemTime,
}

fn open(path: &Path) -> io::Result<(File, u64)> {
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    let size = file.metadata()?.len();
    Ok((file, size))
}

impl RotatingFile {
    /// Opens (or creates) `path` for appending.
    pub fn open(path: PathBuf, rotation: Rotation) -> io::Result<Self> {
        let (file, size) = open(&path)?;
        // An existing file keeps its age: a restart must not postpone a time rotation forever.
        let opened = file
            .metadata()
            .and_then(|m| m.created().or_else(|_| m.modified()))
            .unwrap_or_else(|_| SystemTime::now());
        Ok(Self {
            path,
            rotation,
            file,
            size,
            opened,
        })
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The name of rotated file `n` (1 is the newest).
    pub fn rotated_path(&self, n: u32) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    fn due(&self, incoming: u64) -> bool {
        let by_size = self.rotation.max_bytes > 0
            && self.size > 0
            && self.size + incoming > self.rotation.max_bytes;
        let by_age = self.rotation.max_age.is_some_and(|age| {
            self.opened
                .elapsed()
                .map(|elapsed| elapsed >= age)
                .unwrap_or(false)
        });
        by_size || (by_age && self.size > 0)
    }

    /// Moves `path` to `path.1` (and older ones up), dropping what exceeds `keep`, and starts
    /// a new file.
    pub fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
        if self.rotation.keep == 0 {
            fs::remove_file(&self.path)?;
        } else {
            let _ = fs::remove_file(self.rotated_path(self.rotation.keep));
            for n in (1..self.rotation.keep).rev() {
                let from = self.rotated_path(n);
                if from.exists() {
                    fs::rename(&from, self.rotated_path(n + 1))?;
                }
            }
            fs::rename(&self.path, self.rotated_path(1))?;
        }
        let (file, size) = open(&self.path)?;
        self.file = file;
        self.size = size;
        self.opened = SystemTime::now();
        Ok(())
    }

    /// Appends whole records (`bytes` ends at a record boundary), rotating first when due.
    pub fn write_records(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.due(bytes.len() as u64) {
            self.rotate()?;
        }
        self.file.write_all(bytes)?;
        self.size += bytes.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "kcpwatch-rotate-{name}-{}-{:?}",
            std::process::id(),
            SystemTime::now()
        ));
        fs::create_dir_all(&dir).unwrap();
        dir.join("events.ndjson")
    }

    #[test]
    fn rotates_by_size_between_records_and_keeps_n() {
        let path = scratch("size");
        let mut f = RotatingFile::open(
            path.clone(),
            Rotation {
                max_bytes: 25,
                max_age: None,
                keep: 2,
            },
        )
        .unwrap();
        for i in 0..10 {
            f.write_records(format!("record {i:02}\n").as_bytes())
                .unwrap();
        }
        // 10 bytes per record, at most 25 per file: two records a file.
        assert_eq!(fs::read_to_string(&path).unwrap(), "record 08\nrecord 09\n");
        assert_eq!(
            fs::read_to_string(f.rotated_path(1)).unwrap(),
            "record 06\nrecord 07\n"
        );
        assert_eq!(
            fs::read_to_string(f.rotated_path(2)).unwrap(),
            "record 04\nrecord 05\n"
        );
        assert!(!f.rotated_path(3).exists());
        fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn rotates_by_age() {
        let path = scratch("age");
        let mut f = RotatingFile::open(
            path.clone(),
            Rotation {
                max_bytes: 0,
                max_age: Some(Duration::ZERO),
                keep: 1,
            },
        )
        .unwrap();
        f.write_records(b"first\n").unwrap();
        f.write_records(b"second\n").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "second\n");
        assert_eq!(fs::read_to_string(f.rotated_path(1)).unwrap(), "first\n");
        fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn a_record_larger_than_the_limit_still_lands_whole() {
        let path = scratch("large");
        let mut f = RotatingFile::open(
            path.clone(),
            Rotation {
                max_bytes: 4,
                max_age: None,
                keep: 1,
            },
        )
        .unwrap();
        f.write_records(b"a much longer record\n").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "a much longer record\n");
        fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }
}

//! A log file that rotates by size and by age, keeping the last N files: `events.ndjson` is
//! the one being written, `events.ndjson.1` the one before, and so on. Rotation happens between
//! records, never inside one, so every file holds whole lines, and a failed write is cut back to
//! the last whole record.
//!
//! The file follows its path: when it is renamed away (logrotate's default `create`) or
//! deleted, the next batch starts a new file at the path, as `tail -F` and Python's
//! `WatchedFileHandler` expect, so that no rotation tool needs to signal kcpwatch and no record
//! goes on into a file nobody can see.

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
    /// A fragment of a record could not be removed after a failed write.
    torn: bool,
    /// Which file is open (device, inode), to see that the path names another one.
    id: FileId,
}

type FileId = Option<(u64, u64)>;

#[cfg(unix)]
fn file_id(meta: &fs::Metadata) -> FileId {
    use std::os::unix::fs::MetadataExt;
    Some((meta.dev(), meta.ino()))
}

#[cfg(not(unix))]
fn file_id(_meta: &fs::Metadata) -> FileId {
    None
}

fn open(path: &Path) -> io::Result<(File, u64, FileId)> {
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    let meta = file.metadata()?;
    Ok((file, meta.len(), file_id(&meta)))
}

impl RotatingFile {
    /// Opens (or creates) `path` for appending.
    pub fn open(path: PathBuf, rotation: Rotation) -> io::Result<Self> {
        let (file, size, id) = open(&path)?;
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
            torn: false,
            id,
        })
    }

    /// Starts a new file at the path when the open one was renamed away or deleted (one
    /// `stat` per batch). A path that cannot be opened fails the write: those records are lost
    /// and counted, rather than written to a file nobody can read, and the next batch tries
    /// again.
    fn follow_path(&mut self) -> io::Result<()> {
        let Some(id) = self.id else {
            return Ok(());
        };
        match fs::metadata(&self.path) {
            Ok(meta) if file_id(&meta) == Some(id) => return Ok(()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            // Not knowable now (permissions on the directory, ...): keep the open file.
            Err(_) => return Ok(()),
        }
        let (file, size, id) = open(&self.path)?;
        self.file = file;
        self.size = size;
        self.id = id;
        self.opened = SystemTime::now();
        // A fragment left in the old file stays there.
        self.torn = false;
        Ok(())
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

    /// Whether to rotate before writing `incoming` bytes after `pending` bytes not written yet
    /// (which will be, to the current file): never with nothing to rotate away.
    fn due(&self, pending: u64, incoming: u64) -> bool {
        let content = self.size + pending;
        let by_size = self.rotation.max_bytes > 0
            && content > 0
            && content + incoming > self.rotation.max_bytes;
        let by_age = self.rotation.max_age.is_some_and(|age| {
            self.opened
                .elapsed()
                .map(|elapsed| elapsed >= age)
                .unwrap_or(false)
        });
        by_size || (by_age && content > 0)
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
        let (file, size, id) = open(&self.path)?;
        self.file = file;
        self.size = size;
        self.id = id;
        self.opened = SystemTime::now();
        Ok(())
    }

    /// Appends whole records (`bytes` ends at a record boundary, each record ends with a line
    /// feed), rotating before any record that would take the file past `max_bytes`: a batch is
    /// split between files, and a record larger than the limit gets a file of its own.
    ///
    /// On a failed write (disk full, file too large, I/O error) the file is cut back to its
    /// last whole record, so that a torn line never stays in it; [`WriteFailure::written`] says
    /// how many bytes of `bytes` (whole records) are in the files.
    pub fn write_records(&mut self, bytes: &[u8]) -> Result<(), WriteFailure> {
        self.follow_path()
            .map_err(|error| WriteFailure { written: 0, error })?;
        let mut done = 0;
        let mut chunk = 0..0;
        for record in bytes.split_inclusive(|b| *b == b'\n') {
            let pending = (chunk.end - chunk.start) as u64;
            if self.due(pending, record.len() as u64) {
                if pending > 0 {
                    self.write_whole(&bytes[chunk.clone()], done)?;
                    done = chunk.end;
                    chunk = done..done;
                }
                self.rotate().map_err(|error| WriteFailure {
                    written: done,
                    error,
                })?;
            }
            chunk.end += record.len();
        }
        if chunk.end > chunk.start {
            self.write_whole(&bytes[chunk], done)?;
        }
        Ok(())
    }

    /// Writes `chunk` (whole records); `before` is how much of the caller's bytes was written
    /// already, for the error.
    fn write_whole(&mut self, chunk: &[u8], before: usize) -> Result<(), WriteFailure> {
        if self.torn {
            // An earlier fragment could not be cut off: end it, so that it stays one bad line
            // and the records after it parse.
            self.file.write_all(b"\n").map_err(|error| WriteFailure {
                written: before,
                error,
            })?;
            self.size += 1;
            self.torn = false;
        }
        let mut at = 0;
        while at < chunk.len() {
            match self.file.write(&chunk[at..]) {
                Ok(0) => return Err(self.cut(chunk, at, before, io::ErrorKind::WriteZero.into())),
                Ok(n) => at += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.cut(chunk, at, before, e)),
            }
        }
        self.size += chunk.len() as u64;
        Ok(())
    }

    /// After `at` bytes of `chunk` were written and the rest failed: keeps the whole records
    /// and removes the fragment of the next one.
    fn cut(&mut self, chunk: &[u8], at: usize, before: usize, error: io::Error) -> WriteFailure {
        let whole = chunk[..at]
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1);
        self.size += whole as u64;
        if at > whole && self.file.set_len(self.size).is_err() {
            self.torn = true;
            self.size += (at - whole) as u64;
        }
        WriteFailure {
            written: before + whole,
            error,
        }
    }
}

/// A write of [`RotatingFile::write_records`] that did not complete.
#[derive(Debug)]
pub struct WriteFailure {
    /// Bytes of the records given that are in the files: always whole records.
    pub written: usize,
    /// Why the rest is not.
    pub error: io::Error,
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
    fn a_batch_is_split_between_files_at_record_boundaries() {
        let path = scratch("batch");
        let mut f = RotatingFile::open(
            path.clone(),
            Rotation {
                max_bytes: 25,
                max_age: None,
                keep: 10,
            },
        )
        .unwrap();
        let batch: String = (0..7).map(|i| format!("record {i:02}\n")).collect();
        f.write_records(batch.as_bytes()).unwrap();
        // One write of 70 bytes, still at most 25 bytes (two records) a file.
        assert_eq!(fs::read_to_string(&path).unwrap(), "record 06\n");
        for (n, want) in [(1, "record 04\nrecord 05\n"), (3, "record 00\nrecord 01\n")] {
            assert_eq!(fs::read_to_string(f.rotated_path(n)).unwrap(), want);
        }
        fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn a_failed_write_keeps_whole_records_only() {
        // /dev/full takes nothing: the failure says no byte of the batch was written.
        let mut f = RotatingFile::open(PathBuf::from("/dev/full"), Rotation::default()).unwrap();
        let failure = f.write_records(b"one\ntwo\n").unwrap_err();
        assert_eq!(failure.written, 0);
        assert_eq!(failure.error.raw_os_error(), Some(28), "ENOSPC");
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

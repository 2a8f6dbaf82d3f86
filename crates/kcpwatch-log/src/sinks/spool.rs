//! The bounded on-disk spool of a stream sink: what could not be delivered yet, oldest first.
//!
//! Layout of the spool directory:
//! - `NNNNNNNNNNNNNNNNNNNN.seg`: append-only segment files, named by a 20-digit id; replay
//!   goes through them in id order. Each holds records as `u32` little-endian length + bytes.
//!   A segment is rolled at `segment_bytes` and deleted once every record in it is consumed.
//! - `cursor`: `ID OFFSET`, the first record not yet consumed (delivered, or handed back to
//!   memory to be retried). Written with write-to-temporary-and-rename, after every deleted
//!   segment, at most a second after any other progress, and on close; a crash replays at most
//!   what was consumed since the last write (duplicates, never losses).
//! - `lock`: held with `flock` while a sink uses the directory (Unix), so that two sinks never
//!   interleave segments.
//!
//! A torn record at the end of a segment (the process died in the middle of an append) is cut
//! off when the spool is opened, and counted as one lost record.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::config::{SpoolConfig, MAX_RECORD_BYTES};
use super::error::SinkError;

/// Bytes of the length prefix of each record on disk.
pub(crate) const HEADER: u64 = 4;

/// The id of the first segment of an empty spool. Not 0: closing with records in flight puts
/// them into a segment before the oldest one (see [`Spool::prepend`]), and ids must stay
/// positive for that.
const FIRST_ID: u64 = 1 << 40;

/// At most this long between writes of `cursor` while records are being consumed.
const CURSOR_PERIOD: Duration = Duration::from_secs(1);

/// A place in the spool: segment id and byte offset in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Pos {
    seg: u64,
    off: u64,
}

#[derive(Debug, Clone, Copy)]
struct Segment {
    id: u64,
    len: u64,
    /// Records in the segment from its start (consumed ones included).
    records: u64,
}

/// One record read from the spool.
pub(crate) struct SpoolRecord {
    pub(crate) data: Vec<u8>,
    /// Where the spool continues after this record: what to consume up to once it is delivered.
    pub(crate) after: Pos,
}

/// What opening an existing spool found.
pub(crate) struct Opened {
    /// Records waiting from an earlier run.
    pub(crate) records: u64,
    /// Torn records cut off (each counted as lost).
    pub(crate) torn: u64,
}

pub(crate) struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    _lock: File,
    segments: VecDeque<Segment>,
    next_id: u64,
    /// First record not consumed.
    ack: Pos,
    /// Next record to read.
    read: Pos,
    reader: Option<(u64, BufReader<File>)>,
    writer: Option<File>,
    /// Records and bytes (headers included) from `ack` to the end.
    records: u64,
    bytes: u64,
    /// Records from `read` to the end.
    unread: u64,
    scratch: Vec<u8>,
    cursor_written: Pos,
    cursor_time: Instant,
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> SinkError + 'a {
    move |source| SinkError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

fn segment_name(id: u64) -> String {
    format!("{id:020}.seg")
}

impl Spool {
    /// Opens (creating if needed) the spool in `config.dir`, finding what an earlier sink left.
    pub(crate) fn open(config: &SpoolConfig) -> Result<(Self, Opened), SinkError> {
        let dir = config.dir.clone();
        fs::create_dir_all(&dir).map_err(io_err("spool directory", &dir))?;
        let lock_path = dir.join("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err("spool lock", &lock_path))?;
        lock_exclusive(&lock, &dir)?;

        let mut ids = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_err("spool directory", &dir))? {
            let entry = entry.map_err(io_err("spool directory", &dir))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(id) = name
                .strip_suffix(".seg")
                .and_then(|s| s.parse::<u64>().ok())
            {
                ids.push(id);
            } else if name.ends_with(".tmp") {
                // Left by a crash in the middle of a prepend or a cursor write; never renamed,
                // so never part of the spool.
                let _ = fs::remove_file(entry.path());
            }
        }
        ids.sort_unstable();

        let cursor_path = dir.join("cursor");
        let cursor = fs::read_to_string(&cursor_path).ok().and_then(|s| {
            let mut it = s.split_whitespace().map(|n| n.parse::<u64>().ok());
            Some(Pos {
                seg: it.next()??,
                off: it.next()??,
            })
        });

        let mut segments = VecDeque::new();
        let mut records = 0;
        let mut bytes = 0;
        let mut torn = 0;
        let mut ack = None;
        for id in ids {
            let path = dir.join(segment_name(id));
            if cursor.is_some_and(|c| id < c.seg) {
                fs::remove_file(&path).map_err(io_err("spool segment", &path))?;
                continue;
            }
            let (len, offsets, was_torn) =
                scan_segment(&path).map_err(io_err("spool segment", &path))?;
            torn += u64::from(was_torn);
            let start = match cursor {
                // The cursor always lies on a record boundary; should it not, the records
                // from the next boundary on are the ones not consumed.
                Some(c) if c.seg == id => offsets.iter().position(|&o| o >= c.off),
                _ => Some(0),
            };
            let first = start.unwrap_or(offsets.len());
            if ack.is_none() {
                ack = Some(Pos {
                    seg: id,
                    off: offsets.get(first).copied().unwrap_or(len),
                });
            }
            records += (offsets.len() - first) as u64;
            bytes += len - offsets.get(first).copied().unwrap_or(len);
            segments.push_back(Segment {
                id,
                len,
                records: offsets.len() as u64,
            });
        }
        let next_id = segments.back().map_or(FIRST_ID, |s| s.id + 1);
        let ack = ack.unwrap_or(Pos {
            seg: next_id,
            off: 0,
        });
        let segment_bytes = (config.max_bytes / 16).clamp(64 << 10, 16 << 20);
        let mut spool = Self {
            dir,
            max_bytes: config.max_bytes,
            segment_bytes,
            _lock: lock,
            segments,
            next_id,
            ack,
            read: ack,
            reader: None,
            writer: None,
            records,
            bytes,
            unread: records,
            scratch: Vec::new(),
            // Not a real place: the first write_cursor always writes.
            cursor_written: Pos {
                seg: u64::MAX,
                off: u64::MAX,
            },
            cursor_time: Instant::now(),
        };
        if records == 0 {
            spool
                .clear()
                .map_err(io_err("spool directory", &config.dir))?;
        }
        spool
            .write_cursor()
            .map_err(io_err("spool cursor", &cursor_path))?;
        Ok((spool, Opened { records, torn }))
    }

    /// Records not consumed yet.
    pub(crate) fn records(&self) -> u64 {
        self.records
    }

    /// Records not read yet.
    pub(crate) fn unread(&self) -> u64 {
        self.unread
    }

    /// Whether a record of `len` bytes fits now.
    pub(crate) fn has_room(&self, len: usize) -> bool {
        self.bytes + HEADER + len as u64 <= self.max_bytes
    }

    /// Whether a record of `len` bytes could ever fit.
    pub(crate) fn could_fit(&self, len: usize) -> bool {
        HEADER + len as u64 <= self.max_bytes
    }

    /// Appends one record (the caller checked [`Spool::has_room`]).
    pub(crate) fn append(&mut self, record: &[u8]) -> io::Result<()> {
        let roll = self
            .segments
            .back()
            .map_or(true, |s| s.len >= self.segment_bytes);
        if roll {
            if let Some(w) = self.writer.take() {
                // A finished segment is replayed after a crash only if it reached the disk.
                w.sync_data()?;
            }
            let id = self.next_id;
            let path = self.dir.join(segment_name(id));
            let file = OpenOptions::new()
                .create_new(true)
                .append(true)
                .open(&path)?;
            self.next_id += 1;
            self.segments.push_back(Segment {
                id,
                len: 0,
                records: 0,
            });
            self.writer = Some(file);
        } else if self.writer.is_none() {
            let id = self.segments.back().map_or(self.next_id, |s| s.id);
            let path = self.dir.join(segment_name(id));
            self.writer = Some(OpenOptions::new().append(true).open(&path)?);
        }
        let Some(writer) = self.writer.as_mut() else {
            unreachable!("opened above")
        };
        self.scratch.clear();
        self.scratch
            .extend_from_slice(&(record.len() as u32).to_le_bytes());
        self.scratch.extend_from_slice(record);
        if let Err(e) = writer.write_all(&self.scratch) {
            // A partial append would be read back as a torn record; cut it off now.
            let len = self.segments.back().map_or(0, |s| s.len);
            let _ = writer.set_len(len);
            self.writer = None;
            return Err(e);
        }
        let size = self.scratch.len() as u64;
        let Some(tail) = self.segments.back_mut() else {
            unreachable!("pushed above")
        };
        tail.len += size;
        tail.records += 1;
        self.records += 1;
        self.unread += 1;
        self.bytes += size;
        Ok(())
    }

    /// Reads the next record. On an I/O error, the rest of the segment is skipped and the
    /// error is returned with the number of records lost with it.
    pub(crate) fn read_next(&mut self) -> Result<Option<SpoolRecord>, (io::Error, u64)> {
        loop {
            let Some(i) = self.segments.iter().position(|s| s.id >= self.read.seg) else {
                return Ok(self.end_of_spool());
            };
            let seg = self.segments[i];
            if seg.id > self.read.seg {
                self.read = Pos {
                    seg: seg.id,
                    off: 0,
                };
            }
            if self.read.off >= seg.len {
                if i + 1 < self.segments.len() {
                    self.read = Pos {
                        seg: self.segments[i + 1].id,
                        off: 0,
                    };
                    self.reader = None;
                    continue;
                }
                return Ok(self.end_of_spool());
            }
            match self.read_at(seg) {
                Ok(data) => {
                    self.read.off += HEADER + data.len() as u64;
                    self.unread -= 1;
                    return Ok(Some(SpoolRecord {
                        data,
                        after: self.read,
                    }));
                }
                Err(e) => {
                    // Everything unread is in this segment or a later one, whose counts are
                    // exact: no need to read the broken file again.
                    let later: u64 = self.segments.iter().skip(i + 1).map(|s| s.records).sum();
                    let lost = self.unread.saturating_sub(later);
                    self.records -= lost;
                    self.unread -= lost;
                    self.bytes -= seg.len - self.read.off;
                    self.read.off = seg.len;
                    self.reader = None;
                    return Err((e, lost));
                }
            }
        }
    }

    fn end_of_spool(&mut self) -> Option<SpoolRecord> {
        debug_assert_eq!(self.unread, 0, "unread count out of step with the segments");
        // Were it ever out of step, the sink would wait for records that do not exist.
        self.unread = 0;
        None
    }

    fn read_at(&mut self, seg: Segment) -> io::Result<Vec<u8>> {
        if self.reader.as_ref().map(|r| r.0) != Some(seg.id) {
            let mut file = File::open(self.dir.join(segment_name(seg.id)))?;
            file.seek(SeekFrom::Start(self.read.off))?;
            self.reader = Some((seg.id, BufReader::new(file)));
        }
        let Some((_, reader)) = self.reader.as_mut() else {
            unreachable!("opened above")
        };
        let mut header = [0u8; HEADER as usize];
        reader.read_exact(&mut header)?;
        let len = u32::from_le_bytes(header) as usize;
        if len > MAX_RECORD_BYTES || self.read.off + HEADER + len as u64 > seg.len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "corrupt record length in spool segment",
            ));
        }
        let mut data = vec![0u8; len];
        reader.read_exact(&mut data)?;
        Ok(data)
    }

    /// Marks everything before `pos` as consumed: `records` records of `bytes` bytes (prefixes
    /// included), delivered or taken back into memory.
    pub(crate) fn consume_to(&mut self, pos: Pos, records: u64, bytes: u64) -> io::Result<()> {
        debug_assert!(pos <= self.read);
        self.records -= records;
        self.bytes -= bytes;
        self.ack = pos;
        if self.records == 0 && self.unread == 0 {
            return self.clear();
        }
        let mut deleted = false;
        while let Some(front) = self.segments.front().copied() {
            let behind = front.id < self.ack.seg
                || (front.id == self.ack.seg
                    && self.ack.off >= front.len
                    && self.segments.len() > 1);
            if !behind {
                break;
            }
            if self.reader.as_ref().is_some_and(|r| r.0 == front.id) {
                self.reader = None;
            }
            fs::remove_file(self.dir.join(segment_name(front.id)))?;
            self.segments.pop_front();
            deleted = true;
            if let Some(next) = self.segments.front() {
                if self.ack.seg <= front.id {
                    self.ack = Pos {
                        seg: next.id,
                        off: 0,
                    };
                }
            }
        }
        if self.read < self.ack {
            // The segment the reader was at the end of is gone.
            self.read = self.ack;
            self.reader = None;
        }
        if deleted || self.cursor_time.elapsed() >= CURSOR_PERIOD {
            self.write_cursor()?;
        }
        Ok(())
    }

    /// Where the next read starts: consuming up to it hands every record read so far back to
    /// the caller's memory.
    pub(crate) fn read_pos(&self) -> Pos {
        self.read
    }

    /// Puts records older than everything in the spool in front of it (on close, for the
    /// records that were in flight). Everything read must have been consumed.
    pub(crate) fn prepend(&mut self, records: &[Vec<u8>]) -> io::Result<()> {
        debug_assert_eq!(self.ack, self.read, "consume what was read first");
        if records.is_empty() {
            return Ok(());
        }
        if self.records == 0 {
            for r in records {
                self.append(r)?;
            }
            return Ok(());
        }
        // consume_to deletes the segments behind the cursor, so the oldest one is the head.
        let head = *self
            .segments
            .front()
            .expect("records left, so a segment holds them");
        let id = head.id - 1;
        let mut buf = Vec::new();
        for r in records {
            buf.extend_from_slice(&(r.len() as u32).to_le_bytes());
            buf.extend_from_slice(r);
        }
        let prefix = buf.len() as u64;
        let rest_of_head = head.id == self.ack.seg && self.ack.off > 0;
        let mut moved = 0;
        if rest_of_head {
            // The cursor can name only one partly consumed segment, so the rest of it moves
            // into the new one.
            let path = self.dir.join(segment_name(head.id));
            let mut file = File::open(&path)?;
            file.seek(SeekFrom::Start(self.ack.off))?;
            let before = buf.len();
            file.read_to_end(&mut buf)?;
            moved = scan_records(&buf[before..]).0;
        }
        let tmp = self.dir.join(format!("{}.tmp", segment_name(id)));
        {
            let mut f = File::create(&tmp)?;
            f.write_all(&buf)?;
            f.sync_data()?;
        }
        fs::rename(&tmp, self.dir.join(segment_name(id)))?;
        let n = records.len() as u64;
        self.records += n;
        self.unread += n;
        self.bytes += prefix;
        self.segments.push_front(Segment {
            id,
            len: buf.len() as u64,
            records: n + moved,
        });
        self.ack = Pos { seg: id, off: 0 };
        self.read = self.ack;
        self.reader = None;
        self.write_cursor()?;
        if rest_of_head {
            if self.segments.back().is_some_and(|s| s.id == head.id) {
                self.writer = None;
            }
            fs::remove_file(self.dir.join(segment_name(head.id)))?;
            self.segments.retain(|s| s.id != head.id);
        }
        Ok(())
    }

    /// Writes the cursor and flushes the tail segment: called on close.
    pub(crate) fn sync(&mut self) -> io::Result<()> {
        if let Some(w) = self.writer.as_mut() {
            w.sync_data()?;
        }
        self.write_cursor()
    }

    /// Forgets every segment: the spool is empty.
    fn clear(&mut self) -> io::Result<()> {
        self.reader = None;
        self.writer = None;
        for s in self.segments.drain(..) {
            fs::remove_file(self.dir.join(segment_name(s.id)))?;
        }
        self.ack = Pos {
            seg: self.next_id,
            off: 0,
        };
        self.read = self.ack;
        self.records = 0;
        self.unread = 0;
        self.bytes = 0;
        self.write_cursor()
    }

    fn write_cursor(&mut self) -> io::Result<()> {
        self.cursor_time = Instant::now();
        if self.cursor_written == self.ack && self.dir.join("cursor").exists() {
            return Ok(());
        }
        let tmp = self.dir.join("cursor.tmp");
        fs::write(&tmp, format!("{} {}\n", self.ack.seg, self.ack.off))?;
        fs::rename(&tmp, self.dir.join("cursor"))?;
        self.cursor_written = self.ack;
        Ok(())
    }
}

/// Length, record start offsets and whether a torn record was cut off, of one segment file.
fn scan_segment(path: &Path) -> io::Result<(u64, Vec<u64>, bool)> {
    let data = fs::read(path)?;
    let (_, offsets, good) = scan_records(&data);
    let torn = good < data.len() as u64;
    if torn {
        OpenOptions::new().write(true).open(path)?.set_len(good)?;
    }
    Ok((good, offsets, torn))
}

/// Count, start offsets and the length of the whole records at the start of `data`.
fn scan_records(data: &[u8]) -> (u64, Vec<u64>, u64) {
    let mut offsets = Vec::new();
    let mut at = 0usize;
    while data.len() - at >= HEADER as usize {
        let len = u32::from_le_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]) as usize;
        if len > MAX_RECORD_BYTES || data.len() - at - (HEADER as usize) < len {
            break;
        }
        offsets.push(at as u64);
        at += HEADER as usize + len;
    }
    (offsets.len() as u64, offsets, at as u64)
}

#[cfg(unix)]
fn lock_exclusive(file: &File, dir: &Path) -> Result<(), SinkError> {
    use std::os::unix::io::AsRawFd;
    // SAFETY: flock on a descriptor we own; no memory is passed.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    if err.kind() == io::ErrorKind::WouldBlock {
        Err(SinkError::SpoolLocked(dir.to_path_buf()))
    } else {
        Err(SinkError::Io {
            what: "spool lock",
            path: dir.join("lock"),
            source: err,
        })
    }
}

#[cfg(not(unix))]
fn lock_exclusive(_file: &File, _dir: &Path) -> Result<(), SinkError> {
    // No advisory lock without flock; one sink per directory is then the operator's business.
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "kcpwatch-spool-{name}-{}-{}",
            std::process::id(),
            crate::clock::unix_micros()
        ));
        let _ = fs::remove_dir_all(&d);
        d
    }

    fn config(dir: &Path, max_bytes: u64) -> SpoolConfig {
        SpoolConfig {
            dir: dir.to_path_buf(),
            max_bytes,
        }
    }

    fn rec(i: u32) -> Vec<u8> {
        format!("record {i:06} {}", "x".repeat((i % 700) as usize)).into_bytes()
    }

    /// Reads everything unread and consumes it, as delivery would.
    fn drain(spool: &mut Spool) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(r) = spool.read_next().map_err(|(e, _)| e).unwrap() {
            let size = HEADER + r.data.len() as u64;
            spool.consume_to(r.after, 1, size).unwrap();
            out.push(r.data);
        }
        out
    }

    #[test]
    fn records_come_back_in_order_across_segments_and_reopen() {
        let d = dir("order");
        let (mut spool, opened) = Spool::open(&config(&d, 4 << 20)).unwrap();
        assert_eq!(opened.records, 0);
        for i in 0..1000 {
            spool.append(&rec(i)).unwrap();
        }
        assert!(spool.segments.len() > 1, "64 KiB segments roll");
        // Deliver 300, hand the next 5 back to memory as if in flight, then close.
        let mut got = Vec::new();
        for _ in 0..300 {
            let r = spool.read_next().map_err(|(e, _)| e).unwrap().unwrap();
            spool
                .consume_to(r.after, 1, HEADER + r.data.len() as u64)
                .unwrap();
            got.push(r.data);
        }
        let mut inflight = Vec::new();
        let mut bytes = 0;
        for _ in 0..5 {
            let r = spool.read_next().map_err(|(e, _)| e).unwrap().unwrap();
            bytes += HEADER + r.data.len() as u64;
            inflight.push(r.data);
        }
        spool.consume_to(spool.read_pos(), 5, bytes).unwrap();
        spool.prepend(&inflight).unwrap();
        spool.append(&rec(1000)).unwrap();
        spool.sync().unwrap();
        drop(spool);

        let (mut spool, opened) = Spool::open(&config(&d, 4 << 20)).unwrap();
        assert_eq!(opened.records, 701);
        assert_eq!(opened.torn, 0);
        got.extend(drain(&mut spool));
        let want: Vec<Vec<u8>> = (0..=1000).map(rec).collect();
        assert_eq!(got, want);
        assert_eq!(spool.records(), 0);
        let left = fs::read_dir(&d)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "seg")
            })
            .count();
        assert_eq!(left, 0, "an empty spool keeps no segment");
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn bound_and_torn_tail() {
        let d = dir("bound");
        let (mut spool, _) = Spool::open(&config(&d, 100)).unwrap();
        assert!(spool.has_room(96));
        assert!(!spool.could_fit(97));
        spool.append(&[b'a'; 40]).unwrap();
        assert!(spool.has_room(52));
        assert!(!spool.has_room(53));
        spool.append(&[b'b'; 10]).unwrap();
        spool.sync().unwrap();
        drop(spool);
        // A crash in the middle of an append leaves half a record behind.
        let seg = fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|x| x == "seg"))
            .unwrap();
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(&[20, 0, 0, 0, b'c', b'c']).unwrap();
        drop(f);
        let (mut spool, opened) = Spool::open(&config(&d, 100)).unwrap();
        assert_eq!((opened.records, opened.torn), (2, 1));
        assert_eq!(drain(&mut spool), vec![vec![b'a'; 40], vec![b'b'; 10]]);
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn a_directory_serves_one_spool_at_a_time() {
        let d = dir("lock");
        let (spool, _) = Spool::open(&config(&d, 1000)).unwrap();
        #[cfg(unix)]
        assert!(matches!(
            Spool::open(&config(&d, 1000)),
            Err(SinkError::SpoolLocked(_))
        ));
        drop(spool);
        assert!(Spool::open(&config(&d, 1000)).is_ok());
        let _ = fs::remove_dir_all(&d);
    }
}

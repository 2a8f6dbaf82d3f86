//! What every network sink shares in its configuration: the spool and the bounds on records.

use std::path::PathBuf;

/// The bounded on-disk spool of a sink that knows what was delivered (syslog over TCP or TLS,
/// HTTP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolConfig {
    /// Directory holding the segment files; created if missing. One sink per directory (it is
    /// locked while a sink uses it).
    pub dir: PathBuf,
    /// Bytes of records (with their 4-byte length prefixes) not yet delivered that the spool
    /// holds at most; beyond it the newest records are dropped and counted. Two exceptions,
    /// both bounded: records in flight when a sink closes are put back in front even past the
    /// bound (they are the oldest; at most one connection's unacknowledged window), and the
    /// files keep the delivered part of the oldest segment until all of it is delivered (at
    /// most one segment, `max_bytes / 16` clamped to 64 KiB..16 MiB).
    pub max_bytes: u64,
}

/// Default queue length of a sink
/// ([`SyslogSinkConfig::queue_records`](super::SyslogSinkConfig::queue_records),
/// [`HttpSinkConfig::queue_records`](super::HttpSinkConfig::queue_records)).
pub const DEFAULT_QUEUE_RECORDS: usize = 10_000;

/// Largest record a sink accepts (16 MiB): the spool's length prefix could say more, but
/// nothing a receiver takes is anywhere near it, and a bound keeps a corrupt spool length from
/// asking for gigabytes.
pub const MAX_RECORD_BYTES: usize = 16 << 20;

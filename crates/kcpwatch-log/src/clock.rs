//! Wall-clock time of the records: one function the log thread, the sinks and the runtime
//! share, so that none of them imports another for it.

use std::time::{SystemTime, UNIX_EPOCH};

/// Unix time now in microseconds.
pub fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

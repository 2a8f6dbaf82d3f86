//! The records waiting for JavaScript: bounded, counted when full, and kept by the runtime after
//! the log thread is gone.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use kcpwatch_proto::events::LogLoss;

use crate::canonical::CanonicalWriter;
use crate::clock::unix_micros;
use crate::ring::{EventRing, Record};

/// Lines waiting for JavaScript, with the same loss accounting as the ring: a consumer that
/// falls behind loses the newest lines, counted, and is told by a `kcp:log_loss` line.
pub struct Outbox {
    lines: Mutex<Vec<u8>>,
    enabled: AtomicBool,
    limit: usize,
    notify: Box<dyn Fn() + Send + Sync>,
    unreported: Mutex<LogLoss>,
    lost: AtomicU64,
    /// Records the outputs lost (write failures, network outputs that could not deliver),
    /// loss reports included.
    pub(super) output_lost: AtomicU64,
}

impl Outbox {
    /// An outbox holding at most `limit` bytes; `notify` runs on each empty -> non-empty edge.
    pub fn new(limit: usize, notify: Box<dyn Fn() + Send + Sync>) -> Self {
        Self {
            lines: Mutex::new(Vec::new()),
            enabled: AtomicBool::new(false),
            limit,
            notify,
            unreported: Mutex::new(LogLoss::default()),
            lost: AtomicU64::new(0),
            output_lost: AtomicU64::new(0),
        }
    }

    /// Starts or stops handing lines to JavaScript.
    pub fn set_enabled(&self, enabled: bool) {
        self.enabled.store(enabled, Ordering::Release);
    }

    pub(super) fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Acquire)
    }

    /// Lines lost because JavaScript did not take them in time.
    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }

    /// Records the outputs lost so far: writes that failed (disk full, reader gone) and what
    /// network outputs could not deliver, `kcp:log_loss` records included. Each is reported by
    /// a `kcp:log_loss` naming the output, on the other outputs.
    pub fn output_lost(&self) -> u64 {
        self.output_lost.load(Ordering::Relaxed)
    }

    /// Takes every waiting line.
    pub fn take(&self) -> Vec<u8> {
        let mut lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::take(&mut *lines)
    }

    pub(super) fn offer(
        &self,
        text: &[u8],
        records: &[Record],
        writer: &mut CanonicalWriter,
        seq: &EventRing,
    ) {
        let mut lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        let was_empty = lines.is_empty();
        let mut unreported = self.unreported.lock().unwrap_or_else(|p| p.into_inner());
        if lines.len() + text.len() > self.limit {
            let now = unix_micros();
            if unreported.since_us == 0 {
                unreported.since_us = now;
            }
            for r in records {
                if matches!(r.event.lane(), kcpwatch_proto::events::Lane::Critical) {
                    unreported.lost_critical += 1;
                } else {
                    unreported.lost_bulk += 1;
                }
                unreported.lost_by_severity[usize::from(r.event.severity().code())] += 1;
            }
            self.lost.fetch_add(records.len() as u64, Ordering::Relaxed);
            return;
        }
        if unreported.lost_critical + unreported.lost_bulk > 0 {
            let loss = std::mem::take(&mut *unreported);
            let record = seq.loss_record(unix_micros(), loss);
            let mut line = String::new();
            writer.write(&record, &mut line);
            lines.extend_from_slice(line.as_bytes());
        }
        lines.extend_from_slice(text);
        drop(unreported);
        drop(lines);
        if was_empty {
            (self.notify)();
        }
    }
}

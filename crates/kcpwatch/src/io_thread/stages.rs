//! The I/O thread's stamps for the bench's stage trace (`crate::stage_trace`): nothing happens
//! here unless the trace is on.

use std::sync::atomic::Ordering;

use crate::stage_trace::{monotonic_ns, realtime_ns, Hop, StageShared, Turn};

use super::IoThread;

impl IoThread {
    /// Stage trace: stamps one moment of the turn (nothing when the trace is off).
    pub(super) fn stamp(&mut self, at: fn(&mut Turn) -> &mut u64) {
        if let Some(turn) = self.turn.as_mut() {
            *at(turn) = monotonic_ns();
        }
    }

    /// Stage trace: the turn applied a send batch queued at the time the handle noted.
    pub(super) fn stamp_commands(&mut self) {
        if let (Some(turn), Some(stages)) = (self.turn.as_mut(), self.shared.stages.as_ref()) {
            let queued = stages.command_at.swap(0, Ordering::AcqRel);
            if queued != 0 {
                turn.command_at = queued;
                turn.applied = monotonic_ns();
            }
        }
    }

    /// Stage trace: records are about to be published; JavaScript measures its wake-up from
    /// the oldest staging it has not seen.
    pub(super) fn stamp_staged(&mut self) {
        if let (Some(turn), Some(stages)) = (self.turn.as_mut(), self.shared.stages.as_ref()) {
            turn.staged = monotonic_ns();
            let _ = stages.staged_at.compare_exchange(
                0,
                turn.staged,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        }
    }
}

/// Stage trace: one datagram came out of `recvmmsg`.
pub(super) fn received(turn: &mut Turn, stages: &StageShared, kernel_ns: u64) {
    if turn.received == 0 {
        turn.received = monotonic_ns();
    }
    if kernel_ns != 0 {
        if let Ok(mut samples) = stages.samples.lock() {
            samples.record(Hop::KernelToRecv, realtime_ns().saturating_sub(kernel_ns));
        }
    }
}

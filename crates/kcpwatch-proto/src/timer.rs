//! Session deadlines on the extended clock, so an endpoint wakes only for sessions that have
//! something to do instead of scanning every session every tick.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// A min-heap of (deadline, slot, generation). Rescheduling pushes a new entry and leaves the
/// old one behind; stale entries are recognised on pop because the slot's deadline or
/// generation no longer matches.
#[derive(Debug, Default)]
pub(crate) struct TimerQueue {
    heap: BinaryHeap<Reverse<(u64, u32, u32)>>,
}

impl TimerQueue {
    pub(crate) fn schedule(&mut self, deadline: u64, slot: u32, generation: u32) {
        self.heap.push(Reverse((deadline, slot, generation)));
    }

    pub(crate) fn peek(&self) -> Option<(u64, u32, u32)> {
        self.heap.peek().map(|Reverse(entry)| *entry)
    }

    pub(crate) fn pop(&mut self) -> Option<(u64, u32, u32)> {
        self.heap.pop().map(|Reverse(entry)| entry)
    }

    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }

    /// Rebuilds the heap without stale entries when they outnumber live ones, bounding memory
    /// for sessions that reschedule often.
    pub(crate) fn compact(&mut self, is_live: impl Fn(u64, u32, u32) -> bool) {
        let entries = std::mem::take(&mut self.heap).into_vec();
        self.heap = entries
            .into_iter()
            .filter(|Reverse((d, s, g))| is_live(*d, *s, *g))
            .collect();
    }
}

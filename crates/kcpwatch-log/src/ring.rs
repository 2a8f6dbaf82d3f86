//! The bounded, lock-free security event ring between one I/O thread (the only producer) and
//! its log thread (the only consumer). Two lanes, so a flood of bulk records (drop samples,
//! state updates, stats) cannot push out the lifecycle records analysts cannot reconstruct.
//!
//! Loss is never silent: a full lane drops the newest record and counts it by lane and
//! severity; `seq` is assigned before the push, so a gap in `seq` is exactly a loss; and the
//! counts are reported by a `kcp:log_loss` record that the producer pushes through a slot kept
//! free for it in the critical lane. At most one report is in the ring at a time, so the
//! reserved slot is always free for it; losses after it are added up for the next one. Whatever
//! is still unreported when the I/O thread stops is reported by the consumer itself.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crossbeam_queue::ArrayQueue;
use kcpwatch_proto::events::{Lane, LogLoss};
use kcpwatch_proto::SecurityEvent;

/// One security event with its place in the stream.
#[derive(Debug, Clone, Copy)]
pub struct Record {
    /// Per-listener sequence number; a gap means loss.
    pub seq: u64,
    /// Unix time in microseconds.
    pub time_us: u64,
    /// The event.
    pub event: SecurityEvent,
}

/// The shared half: both lanes and the counters the consumer may read.
pub struct EventRing {
    critical: ArrayQueue<Record>,
    bulk: ArrayQueue<Record>,
    /// Next sequence number.
    seq: AtomicU64,
    /// Records offered to the ring (excluding `kcp:log_loss`).
    produced: AtomicU64,
    /// Records lost in total.
    lost_total: AtomicU64,
    /// Losses not reported by a `kcp:log_loss` record yet: [critical, bulk, by severity 0..8,
    /// first loss time].
    unreported: [AtomicU64; 11],
    /// A loss report is in the ring and not yet consumed.
    report_in_ring: AtomicBool,
}

const CRITICAL: usize = 0;
const BULK: usize = 1;
const SEVERITY: usize = 2;
const SINCE: usize = 10;

impl EventRing {
    /// A ring with `capacity` records per lane (at least 2: one is reserved for `log_loss`).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(2);
        Self {
            critical: ArrayQueue::new(capacity),
            bulk: ArrayQueue::new(capacity),
            seq: AtomicU64::new(0),
            produced: AtomicU64::new(0),
            lost_total: AtomicU64::new(0),
            unreported: Default::default(),
            report_in_ring: AtomicBool::new(false),
        }
    }

    /// Offers one record. Never blocks; returns false when it was lost.
    ///
    /// Only the I/O thread calls this (single producer), which is what makes the
    /// length check before the push exact.
    pub fn push(&self, time_us: u64, event: SecurityEvent) -> bool {
        self.report_loss(time_us);
        self.produced.fetch_add(1, Ordering::Relaxed);
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let (lane, index) = match event.lane() {
            Lane::Critical => (&self.critical, CRITICAL),
            Lane::Bulk => (&self.bulk, BULK),
        };
        // The last slot of the critical lane is kept for the loss report.
        let room = match index {
            CRITICAL => lane.len() + 1 < lane.capacity(),
            _ => lane.len() < lane.capacity(),
        };
        if room
            && lane
                .push(Record {
                    seq,
                    time_us,
                    event,
                })
                .is_ok()
        {
            return true;
        }
        self.count_loss(index, event.severity().code(), 1, time_us);
        false
    }

    /// Whether a record for `lane` would fit now (producer side).
    pub fn has_room(&self, lane: Lane) -> bool {
        match lane {
            Lane::Critical => self.critical.len() + 1 < self.critical.capacity(),
            Lane::Bulk => self.bulk.len() < self.bulk.capacity(),
        }
    }

    /// Counts records lost before they reached the ring (the endpoint's own queue overflowed),
    /// and moves `seq` past them so the gap shows.
    pub fn lost_upstream(&self, by_severity: &[u64; 8], time_us: u64) {
        for (severity, &count) in by_severity.iter().enumerate() {
            if count > 0 {
                self.produced.fetch_add(count, Ordering::Relaxed);
                self.seq.fetch_add(count, Ordering::Relaxed);
                self.count_loss(CRITICAL, severity as u8, count, time_us);
            }
        }
    }

    fn count_loss(&self, lane: usize, severity: u8, count: u64, time_us: u64) {
        self.lost_total.fetch_add(count, Ordering::Relaxed);
        self.unreported[lane].fetch_add(count, Ordering::Relaxed);
        self.unreported[SEVERITY + usize::from(severity.min(7))]
            .fetch_add(count, Ordering::Relaxed);
        let _ = self.unreported[SINCE].compare_exchange(
            0,
            time_us.max(1),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    /// Takes the unreported losses, if any.
    fn take_unreported(&self) -> Option<LogLoss> {
        if self.unreported[CRITICAL].load(Ordering::Relaxed) == 0
            && self.unreported[BULK].load(Ordering::Relaxed) == 0
        {
            return None;
        }
        let take = |i: usize| self.unreported[i].swap(0, Ordering::Relaxed);
        let mut loss = LogLoss {
            lost_critical: take(CRITICAL),
            lost_bulk: take(BULK),
            since_us: take(SINCE),
            ..LogLoss::default()
        };
        for (i, slot) in loss.lost_by_severity.iter_mut().enumerate() {
            *slot = take(SEVERITY + i);
        }
        Some(loss)
    }

    /// Pushes the loss report through the reserved slot when there is one to make and room.
    fn report_loss(&self, time_us: u64) {
        if self.unreported[CRITICAL].load(Ordering::Relaxed) == 0
            && self.unreported[BULK].load(Ordering::Relaxed) == 0
        {
            return;
        }
        if self.report_in_ring.load(Ordering::Acquire) {
            return;
        }
        if let Some(loss) = self.take_unreported() {
            self.report_in_ring.store(true, Ordering::Release);
            let seq = self.seq.fetch_add(1, Ordering::Relaxed);
            let record = Record {
                seq,
                time_us,
                event: SecurityEvent::LogLoss(loss),
            };
            if let Err(record) = self.critical.push(record) {
                // Cannot happen: regular records never take the last slot. Keep the counts
                // rather than lose them.
                self.report_in_ring.store(false, Ordering::Release);
                if let SecurityEvent::LogLoss(loss) = record.event {
                    self.restore(loss);
                }
            }
        }
    }

    fn restore(&self, loss: LogLoss) {
        self.unreported[CRITICAL].fetch_add(loss.lost_critical, Ordering::Relaxed);
        self.unreported[BULK].fetch_add(loss.lost_bulk, Ordering::Relaxed);
        for (i, &n) in loss.lost_by_severity.iter().enumerate() {
            self.unreported[SEVERITY + i].fetch_add(n, Ordering::Relaxed);
        }
        let _ = self.unreported[SINCE].compare_exchange(
            0,
            loss.since_us,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    /// A loss report for losses counted elsewhere (a slow JavaScript consumer), numbered in
    /// this ring's sequence.
    pub fn loss_record(&self, time_us: u64, loss: LogLoss) -> Record {
        Record {
            seq: self.seq.fetch_add(1, Ordering::Relaxed),
            time_us,
            event: SecurityEvent::LogLoss(loss),
        }
    }

    /// Consumer: the final loss report once the producer has stopped.
    pub fn final_loss(&self, time_us: u64) -> Option<Record> {
        let loss = self.take_unreported()?;
        Some(Record {
            seq: self.seq.fetch_add(1, Ordering::Relaxed),
            time_us,
            event: SecurityEvent::LogLoss(loss),
        })
    }

    /// Consumer: takes every waiting record in `seq` order into `out`.
    pub fn drain_into(&self, out: &mut Vec<Record>) {
        let start = out.len();
        self.merge_into(out);
        if out[start..]
            .iter()
            .any(|r| matches!(r.event, SecurityEvent::LogLoss(_)))
        {
            self.report_in_ring.store(false, Ordering::Release);
        }
    }

    fn merge_into(&self, out: &mut Vec<Record>) {
        let mut critical = self.critical.pop();
        let mut bulk = self.bulk.pop();
        loop {
            match (critical, bulk) {
                (Some(c), Some(b)) => {
                    if c.seq < b.seq {
                        out.push(c);
                        critical = self.critical.pop();
                    } else {
                        out.push(b);
                        bulk = self.bulk.pop();
                    }
                }
                // Before taking from one lane while the other looked empty, look again: the
                // producer pushes in seq order, so a record seen in one lane means every
                // earlier record is already in its lane.
                (Some(c), None) => match self.bulk.pop() {
                    Some(b) => bulk = Some(b),
                    None => {
                        out.push(c);
                        critical = self.critical.pop();
                    }
                },
                (None, Some(b)) => match self.critical.pop() {
                    Some(c) => critical = Some(c),
                    None => {
                        out.push(b);
                        bulk = self.bulk.pop();
                    }
                },
                (None, None) => return,
            }
        }
    }

    /// Whether both lanes are empty.
    pub fn is_empty(&self) -> bool {
        self.critical.is_empty() && self.bulk.is_empty()
    }

    /// Records offered so far (excluding loss reports).
    pub fn produced(&self) -> u64 {
        self.produced.load(Ordering::Relaxed)
    }

    /// Records lost so far.
    pub fn lost(&self) -> u64 {
        self.lost_total.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kcpwatch_proto::events::{ListenerStopped, StatsEvent};

    fn critical() -> SecurityEvent {
        SecurityEvent::ListenerStopped(ListenerStopped {
            local: "127.0.0.1:1".parse().unwrap(),
            uptime_ms: 0,
            connections_total: 0,
        })
    }

    fn bulk() -> SecurityEvent {
        SecurityEvent::Stats(StatsEvent::default())
    }

    fn names(records: &[Record]) -> Vec<&'static str> {
        records.iter().map(|r| r.event.name()).collect()
    }

    #[test]
    fn lanes_merge_in_seq_order() {
        let ring = EventRing::new(8);
        ring.push(1, critical());
        ring.push(2, bulk());
        ring.push(3, critical());
        let mut out = Vec::new();
        ring.drain_into(&mut out);
        assert_eq!(out.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![0, 1, 2]);
    }

    #[test]
    fn a_full_lane_drops_the_newest_and_reports_it_through_the_reserved_slot() {
        let ring = EventRing::new(4);
        // Three critical records fill the lane up to its reserved slot; the fourth is lost.
        for t in 0..4 {
            assert_eq!(ring.push(t, critical()), t < 3);
        }
        // The next push reports that loss through the reserved slot, then is lost itself, as
        // is the one after it (one report at a time).
        assert!(!ring.push(4, critical()));
        assert!(!ring.push(5, critical()));
        assert_eq!(ring.lost(), 3);
        let mut out = Vec::new();
        ring.drain_into(&mut out);
        assert_eq!(
            out.iter().map(|r| r.seq).collect::<Vec<_>>(),
            vec![0, 1, 2, 4]
        );
        let SecurityEvent::LogLoss(loss) = out[3].event else {
            panic!("expected a loss report, got {:?}", names(&out));
        };
        assert_eq!((loss.lost_critical, loss.since_us), (1, 3));
        // Consumed: the next push reports the two later losses, then gets in.
        assert!(ring.push(7, critical()));
        out.clear();
        ring.drain_into(&mut out);
        let SecurityEvent::LogLoss(loss) = out[0].event else {
            panic!("expected a loss report");
        };
        assert_eq!(loss.lost_critical, 2);
        assert_eq!(out[1].seq, 8);
        // Delivered: seq 0, 1, 2 and 8; everything else produced is reported lost.
        assert_eq!(4 + ring.lost(), ring.produced());
    }

    #[test]
    fn bulk_losses_never_take_critical_room() {
        let ring = EventRing::new(4);
        for t in 0..10 {
            ring.push(t, bulk());
        }
        assert_eq!(ring.lost(), 6);
        assert!(ring.push(10, critical()));
        let mut out = Vec::new();
        ring.drain_into(&mut out);
        let got = names(&out);
        assert_eq!(got.iter().filter(|n| **n == "kcp:stats").count(), 4);
        assert_eq!(&got[4..], ["kcp:log_loss", "kcp:listener_stopped"]);
    }
}

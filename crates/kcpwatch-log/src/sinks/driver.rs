//! The sink driver: the thread behind every network sink. It takes records from the queue,
//! hands them to its [`Transport`] in batches, settles each record by the fate the transport
//! reports, spools what cannot be delivered, replays the spool in order when the receiver
//! returns, backs off between failed attempts, and on close delivers what it can before the
//! deadline and spools (or counts) the rest.
//!
//! Order of delivery, oldest first, is always: `retry` (records sent on a link that failed
//! before their fate was known, or that the receiver asked to have again), then the spool,
//! then `parked`, then the queue. Each source only holds records newer than the ones before
//! it:
//! - a batch is taken in that order, and the queue is read only when the others are empty;
//! - queue records move to the spool only at its end, and only while no batch is being
//!   filled (outage, or queue filling up);
//! - on a failure, the records in flight go to the front of `retry` and the spool gives up the
//!   ones that came from it (they now live in `retry`).
//!
//! On close, `retry` is put in front of the spool ([`Spool::prepend`]) and the queue after it,
//! so a later sink on the same directory replays everything in the original order.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Select};

use super::backoff::Backoff;
use super::config::SpoolConfig;
use super::error::SinkError;
use super::spool::{Pos, Spool, HEADER};
use super::stats::{Loss, Shared};
use super::transport::{Fate, Health, Policy, Rec, Transport};

/// How often fates are asked for while records wait for them.
const ACK_POLL: Duration = Duration::from_millis(2);

/// How long an idle link waits for records before looking at the receiver again (a receiver
/// that closed is then noticed even with nothing to send).
const IDLE_POLL: Duration = Duration::from_millis(500);

/// Messages from the handle.
pub(crate) enum Control {
    /// Stop: deliver until the deadline, then spool (or drop) the rest.
    Stop(Instant),
}

/// What the thread returns to the handle.
pub(crate) struct Finished {
    /// Records written to the spool during the close.
    pub(crate) spooled_on_close: u64,
}

/// What the driver needs to know of a sink's configuration.
pub(crate) struct Limits {
    /// Capacity of the queue.
    pub(crate) queue_records: usize,
    /// Retry delays: (initial, max).
    pub(crate) backoff: (Duration, Duration),
}

/// What a driver starts with besides its transport and channels.
pub(crate) struct Setup {
    /// The counters it shares with the handle.
    pub(crate) shared: Arc<Shared>,
    /// The spool, if the sink has one.
    pub(crate) spool: Option<Spool>,
    /// Its queue and backoff.
    pub(crate) limits: Limits,
}

impl Setup {
    /// New counters, and the spool (if any) opened, counting what it holds and the torn
    /// records a crash left.
    pub(crate) fn open(spool: Option<&SpoolConfig>, limits: Limits) -> Result<Self, SinkError> {
        let shared = Arc::new(Shared::default());
        let spool = match spool {
            Some(config) => {
                let (spool, opened) = Spool::open(config)?;
                shared.spooled.store(opened.records, Ordering::Relaxed);
                shared.lose(Loss::Io, opened.torn);
                Some(spool)
            }
            None => None,
        };
        Ok(Self {
            shared,
            spool,
            limits,
        })
    }
}

pub(crate) struct Driver<T> {
    transport: T,
    policy: Policy,
    rx: Receiver<Rec>,
    ctl: Receiver<Control>,
    shared: Arc<Shared>,
    spool: Option<Spool>,
    backoff: Backoff,
    /// Failed attempts in a row.
    failures: u32,
    retry: VecDeque<Rec>,
    /// A queue record that did not fit in the full spool: newer than the spool, older than the
    /// queue (which has no front to put it back to).
    parked: Option<Rec>,
    /// Records taken, oldest first: the first `sent` are with the transport, the rest are the
    /// batch being filled.
    inflight: VecDeque<Rec>,
    /// Where the spool continues after each record of `inflight`, when it came from the spool.
    origin: VecDeque<Option<Pos>>,
    sent: usize,
    /// When the first record of the batch being filled was taken.
    since: Option<Instant>,
    /// Whether the batch being filled holds records that already waited (retried or
    /// spooled): it leaves at once.
    backlog: bool,
    /// Records whose fate was [`Fate::Retry`], until they go back to `retry`.
    again: Vec<Rec>,
    fates: Vec<Fate>,
    up: bool,
    next_attempt: Instant,
    stop: Option<Instant>,
    high_water: usize,
}

impl<T: Transport> Driver<T> {
    pub(crate) fn new(
        transport: T,
        setup: Setup,
        rx: Receiver<Rec>,
        ctl: Receiver<Control>,
    ) -> Self {
        let Setup {
            shared,
            spool,
            limits,
        } = setup;
        let policy = transport.policy();
        // A queue three quarters full means the receiver is slower than the records: move
        // them to the spool rather than let `send` drop them.
        let high_water = (limits.queue_records * 3 / 4).max(1);
        Self {
            transport,
            policy,
            rx,
            ctl,
            shared,
            spool,
            backoff: Backoff::new(limits.backoff.0, limits.backoff.1),
            failures: 0,
            retry: VecDeque::new(),
            parked: None,
            inflight: VecDeque::new(),
            origin: VecDeque::new(),
            sent: 0,
            since: None,
            backlog: false,
            again: Vec::new(),
            fates: Vec::new(),
            up: false,
            next_attempt: Instant::now(),
            stop: None,
            high_water,
        }
    }

    pub(crate) fn run(mut self) -> Finished {
        loop {
            self.check_control();
            self.publish();
            if let Some(deadline) = self.stop {
                if self.all_delivered() || Instant::now() >= deadline {
                    break;
                }
            }
            if self.up {
                self.serve();
                continue;
            }
            let now = Instant::now();
            if self.stop.is_some_and(|deadline| now >= deadline) {
                continue;
            }
            if now >= self.next_attempt {
                match self.transport.connect(self.stop) {
                    Ok(()) => {
                        self.up = true;
                        continue;
                    }
                    Err(e) => {
                        self.shared.set_error(e);
                        self.failed_attempt(None);
                    }
                }
            }
            // Down: the spool takes what arrives until the next attempt (not before the first
            // one, so that a healthy start does not go through the disk).
            let spill =
                self.failures >= self.policy.spill_after || self.rx.len() >= self.high_water;
            if spill {
                self.spill(usize::MAX);
            }
            // With a full spool the queue just waits (and `send` drops when it is full too),
            // so its records must not wake the thread.
            let watch = spill && self.spool.is_some() && self.parked.is_none();
            let until = self.cap(self.next_attempt);
            self.wait(until, watch);
        }
        self.finish()
    }

    /// One round on a live link: settle what the transport knows, take a batch, send it or
    /// wait.
    fn serve(&mut self) {
        if !self.settle() {
            return;
        }
        if self.sent == self.inflight.len() && self.rx.len() >= self.high_water {
            self.spill(self.rx.len());
        }
        self.take();
        let unsent = self.inflight.len() - self.sent;
        if unsent == 0 {
            if self.stop.is_some() && self.nothing_to_send() {
                // Everything is sent: say so, and wait for the fates.
                self.transport.end_of_records();
            }
            let poll = if self.inflight.is_empty() {
                IDLE_POLL
            } else {
                ACK_POLL
            };
            let until = self.cap(Instant::now() + poll);
            self.wait(until, true);
            return;
        }
        if let (Some(delay), Some(since)) = (self.policy.batch_delay, self.since) {
            let due = unsent >= self.policy.batch_records
                || self.backlog
                || self.stop.is_some()
                || Instant::now() >= since + delay;
            if !due {
                let until = self.cap(since + delay);
                self.wait(until, true);
                return;
            }
        }
        // What the thread holds during the send, should the handle have to abandon it.
        self.publish();
        let batch = &self.inflight.make_contiguous()[self.sent..];
        let result = self.transport.send(batch, self.stop);
        self.sent = self.inflight.len();
        self.since = None;
        self.backlog = false;
        match result {
            Ok(()) => {
                self.settle();
            }
            Err(e) => {
                self.learn();
                self.fail(e, None);
            }
        }
    }

    /// Learns how the link is and what became of the records sent; false when the link is
    /// down now.
    fn settle(&mut self) -> bool {
        let health = self.transport.health(self.stop);
        self.learn();
        match health {
            Health::Up => {
                self.requeue();
                true
            }
            Health::Closed if self.stop.is_some() && self.nothing_to_send() && self.sent == 0 => {
                // The receiver's answer to our own end: nothing went wrong.
                self.transport.close(self.stop, false);
                self.up = false;
                self.shared.connected.store(false, Ordering::Relaxed);
                false
            }
            Health::Closed => {
                self.fail("receiver closed the connection".to_owned(), None);
                false
            }
            Health::Failed { error, after } => {
                self.fail(error, after);
                false
            }
        }
    }

    /// Settles the records whose fate the transport knows.
    fn learn(&mut self) {
        let mut fates = std::mem::take(&mut self.fates);
        fates.clear();
        let learned = self.transport.fates(self.sent, &mut fates);
        debug_assert!(fates.len() <= self.sent, "fates of records never sent");
        let mut delivered = 0;
        let mut replayed = 0;
        let mut rejected = 0;
        let mut lost = 0;
        let mut spool_to = None;
        let mut spool_records = 0;
        let mut spool_bytes = 0;
        for &fate in fates.iter().take(self.sent) {
            let (Some(data), Some(origin)) = (self.inflight.pop_front(), self.origin.pop_front())
            else {
                break;
            };
            self.sent -= 1;
            if let Some(pos) = origin {
                spool_to = Some(pos);
                spool_records += 1;
                spool_bytes += HEADER + data.len() as u64;
            }
            match fate {
                Fate::Delivered => {
                    delivered += 1;
                    replayed += u64::from(origin.is_some());
                }
                Fate::Retry => self.again.push(data),
                Fate::Rejected => rejected += 1,
                Fate::Lost => lost += 1,
            }
        }
        self.fates = fates;
        if learned.progress {
            self.backoff.reset();
            self.failures = 0;
        }
        // Every spooled record settled is done with the spool: delivered, lost, or back in
        // memory to be sent again.
        if let (Some(pos), Some(spool)) = (spool_to, self.spool.as_mut()) {
            if let Err(e) = spool.consume_to(pos, spool_records, spool_bytes) {
                self.shared.set_error(format!("updating the spool: {e}"));
            }
        }
        Shared::add(&self.shared.delivered, delivered);
        Shared::add(&self.shared.replayed, replayed);
        if rejected > 0 {
            self.shared.lose(Loss::Invalid, rejected);
            Shared::add(&self.shared.rejected, rejected);
        }
        self.shared.lose(Loss::Io, lost);
        if learned.revoked > 0 {
            let _ = self
                .shared
                .delivered
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |d| {
                    Some(d.saturating_sub(learned.revoked))
                });
            self.shared.lose(Loss::Io, learned.revoked);
        }
    }

    /// Ends the link: what it did not settle is sent again first, after a backoff delay.
    fn fail(&mut self, error: String, after: Option<Duration>) {
        self.transport.close(self.stop, false);
        self.up = false;
        self.shared.set_error(error);
        self.requeue();
        self.failed_attempt(after);
    }

    fn failed_attempt(&mut self, after: Option<Duration>) {
        self.failures = self.failures.saturating_add(1);
        let delay = self.backoff.next_delay().max(after.unwrap_or_default());
        self.next_attempt = Instant::now() + delay;
    }

    /// Puts back in front of `retry`, in order, the records to send again and, when the link
    /// is down, everything taken (only what was sent counts as retried).
    fn requeue(&mut self) {
        let mut again = std::mem::take(&mut self.again);
        let retried = again.len() + if self.up { 0 } else { self.sent };
        if !self.up {
            let mut from_spool = 0;
            let mut spool_bytes = 0;
            for (data, origin) in self.inflight.drain(..).zip(self.origin.drain(..)) {
                if origin.is_some() {
                    from_spool += 1;
                    spool_bytes += HEADER + data.len() as u64;
                }
                again.push(data);
            }
            self.sent = 0;
            self.since = None;
            self.backlog = false;
            if let (true, Some(spool)) = (from_spool > 0, self.spool.as_mut()) {
                // Every record read from the spool is in flight until settled, so the ones
                // just moved are exactly those between the cursor and the read position.
                let pos = spool.read_pos();
                if let Err(e) = spool.consume_to(pos, from_spool, spool_bytes) {
                    self.shared.set_error(format!("updating the spool: {e}"));
                }
            }
        }
        Shared::add(&self.shared.retried, retried as u64);
        for data in again.drain(..).rev() {
            self.retry.push_front(data);
        }
        self.again = again;
    }

    /// Takes records into the batch, oldest first, up to the policy's bounds.
    fn take(&mut self) {
        let mut bytes: usize = if self.policy.batch_bytes == usize::MAX {
            0
        } else {
            self.inflight.iter().skip(self.sent).map(|r| r.len()).sum()
        };
        while self.inflight.len() - self.sent < self.policy.batch_records
            && bytes < self.policy.batch_bytes
        {
            let (data, origin) = if let Some(data) = self.retry.pop_front() {
                self.backlog = true;
                (data, None)
            } else if let Some(spool) = self.spool.as_mut().filter(|s| s.unread() > 0) {
                match spool.read_next() {
                    Ok(Some(r)) => {
                        self.backlog = true;
                        (r.data.into_boxed_slice(), Some(r.after))
                    }
                    Ok(None) => continue,
                    Err((e, lost)) => {
                        self.shared.lose(Loss::Io, lost);
                        self.shared.set_error(format!("reading the spool: {e}"));
                        continue;
                    }
                }
            } else if let Some(data) = self.parked.take() {
                (data, None)
            } else {
                match self.rx.try_recv() {
                    Ok(data) => (data, None),
                    Err(_) => break,
                }
            };
            self.since.get_or_insert_with(Instant::now);
            bytes += data.len();
            self.inflight.push_back(data);
            self.origin.push_back(origin);
        }
    }

    /// Moves up to `max` records from the queue to the end of the spool, while it has room.
    /// A record that can never fit is dropped; one that does not fit now is parked, and the
    /// queue behind it waits for room (when it fills, `send` drops the newest records).
    fn spill(&mut self, max: usize) {
        debug_assert_eq!(
            self.sent,
            self.inflight.len(),
            "the spool grows only between batches"
        );
        let Some(spool) = self.spool.as_mut() else {
            return;
        };
        let mut moved = 0;
        while moved < max {
            let record = match self.parked.take() {
                Some(r) => r,
                None => match self.rx.try_recv() {
                    Ok(r) => r,
                    Err(_) => break,
                },
            };
            if !spool.could_fit(record.len()) {
                self.shared.lose(Loss::SpoolFull, 1);
                continue;
            }
            if !spool.has_room(record.len()) {
                self.parked = Some(record);
                break;
            }
            moved += usize::from(append(spool, &self.shared, &record));
        }
        self.publish();
    }

    /// After the deadline or once everything is delivered: what is left goes to the spool in
    /// order (or is counted as lost).
    fn finish(mut self) -> Finished {
        let abandoned = self.shared.is_abandoned();
        if !abandoned && self.up {
            self.learn();
        }
        // Whatever was not settled within the grace period is treated like a failed link's:
        // sent again later, from the spool.
        self.transport.close(self.stop, true);
        self.up = false;
        // What closing told (the last refusals of UDP datagrams).
        self.learn();
        if abandoned {
            // The handle stopped waiting and counted everything held here as lost.
            return Finished {
                spooled_on_close: 0,
            };
        }
        self.requeue();
        self.shared.connected.store(false, Ordering::Relaxed);
        let mut spooled_on_close = 0;
        let queued: Vec<Rec> = self
            .parked
            .take()
            .into_iter()
            .chain(self.rx.try_iter())
            .collect();
        match self.spool.as_mut() {
            Some(spool) => {
                let retry: Vec<Vec<u8>> = self.retry.drain(..).map(Vec::from).collect();
                let n = retry.len() as u64;
                match spool.prepend(&retry) {
                    Ok(()) => {
                        spooled_on_close += n;
                        Shared::add(&self.shared.spooled_total, n);
                    }
                    Err(e) => {
                        self.shared.lose(Loss::Io, n);
                        self.shared.set_error(format!("writing the spool: {e}"));
                    }
                }
                let mut full = false;
                for record in queued {
                    // What is left goes in order until the first record that does not fit;
                    // from there on everything is the newest, and dropped.
                    full = full || !spool.has_room(record.len());
                    if full {
                        self.shared.lose(Loss::OnClose, 1);
                        continue;
                    }
                    spooled_on_close += u64::from(append(spool, &self.shared, &record));
                }
                if let Err(e) = spool.sync() {
                    self.shared.set_error(format!("syncing the spool: {e}"));
                }
            }
            None => {
                let n = (self.retry.len() + queued.len()) as u64;
                self.retry.clear();
                self.shared.lose(Loss::OnClose, n);
            }
        }
        self.publish();
        Finished { spooled_on_close }
    }

    fn check_control(&mut self) {
        while let Ok(Control::Stop(deadline)) = self.ctl.try_recv() {
            self.stop = Some(deadline);
        }
    }

    /// Waits until `until`, a control message, or (when `queue`) a record in the queue.
    fn wait(&mut self, until: Instant, queue: bool) {
        let timeout = until.saturating_duration_since(Instant::now());
        if timeout.is_zero() {
            return;
        }
        if queue {
            let mut sel = Select::new();
            sel.recv(&self.rx);
            sel.recv(&self.ctl);
            let _ = sel.ready_timeout(timeout);
        } else if let Ok(Control::Stop(deadline)) = self.ctl.recv_timeout(timeout) {
            self.stop = Some(deadline);
        }
    }

    /// `t`, or the stop deadline if sooner.
    fn cap(&self, t: Instant) -> Instant {
        self.stop.map_or(t, |d| d.min(t))
    }

    fn nothing_to_send(&self) -> bool {
        self.sent == self.inflight.len()
            && self.retry.is_empty()
            && self.parked.is_none()
            && self.rx.is_empty()
            && self.spool.as_ref().map_or(true, |s| s.unread() == 0)
    }

    fn all_delivered(&self) -> bool {
        self.nothing_to_send()
            && self.inflight.is_empty()
            && self.spool.as_ref().map_or(true, |s| s.records() == 0)
    }

    fn publish(&self) {
        let inflight =
            (self.retry.len() + self.inflight.len() + usize::from(self.parked.is_some())) as u64;
        self.shared.inflight.store(inflight, Ordering::Relaxed);
        if let Some(spool) = &self.spool {
            self.shared
                .spooled
                .store(spool.records(), Ordering::Relaxed);
        }
    }
}

/// Appends `record` to the spool, counting it as spooled, or as lost to an I/O error; true
/// when it is in the spool.
fn append(spool: &mut Spool, shared: &Shared, record: &[u8]) -> bool {
    match spool.append(record) {
        Ok(()) => {
            Shared::add(&shared.spooled_total, 1);
            true
        }
        Err(e) => {
            shared.lose(Loss::Io, 1);
            shared.set_error(format!("writing the spool: {e}"));
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::transport::Learned;
    use std::sync::Mutex;

    /// A stream-like receiver that records what it was given: the first time anything is in
    /// flight, the link fails after the first record is delivered. `reject-` records are
    /// refused, `lost-` records are lost, the others delivered.
    #[derive(Default)]
    struct Fake {
        wire: VecDeque<Rec>,
        delivered: Arc<Mutex<Vec<String>>>,
        failed: bool,
        cut: bool,
    }

    impl Transport for Fake {
        const THREAD_NAME: &'static str = "fake-sink";

        fn policy(&self) -> Policy {
            Policy {
                batch_records: 4,
                batch_bytes: usize::MAX,
                batch_delay: None,
                spill_after: 0,
            }
        }

        fn connect(&mut self, _stop: Option<Instant>) -> Result<(), String> {
            Ok(())
        }

        fn send(&mut self, batch: &[Rec], _stop: Option<Instant>) -> Result<(), String> {
            self.wire.extend(batch.iter().cloned());
            Ok(())
        }

        fn health(&mut self, _stop: Option<Instant>) -> Health {
            if self.failed || self.wire.is_empty() {
                return Health::Up;
            }
            self.failed = true;
            self.cut = true;
            Health::Failed {
                error: "cut".to_owned(),
                after: None,
            }
        }

        fn fates(&mut self, inflight: usize, fates: &mut Vec<Fate>) -> Learned {
            let known = if std::mem::take(&mut self.cut) {
                1
            } else {
                self.wire.len()
            };
            for _ in 0..known.min(inflight) {
                let Some(record) = self.wire.pop_front() else {
                    break;
                };
                let text = String::from_utf8_lossy(&record).into_owned();
                fates.push(if text.starts_with("reject-") {
                    Fate::Rejected
                } else if text.starts_with("lost-") {
                    Fate::Lost
                } else {
                    self.delivered.lock().unwrap().push(text);
                    Fate::Delivered
                });
            }
            Learned {
                progress: known > 0,
                revoked: 0,
            }
        }

        fn close(&mut self, _stop: Option<Instant>, _last: bool) {
            self.wire.clear();
        }
    }

    #[test]
    fn a_failed_links_records_come_back_first_in_order_and_each_fate_is_counted_once() {
        let names = [
            "r0",
            "r1",
            "r2",
            "r3",
            "r4",
            "reject-r5",
            "r6",
            "lost-r7",
            "r8",
            "r9",
        ];
        let (tx, rx) = crossbeam_channel::bounded(names.len());
        for name in names {
            tx.send(Box::from(name.as_bytes())).unwrap();
        }
        let (ctl_tx, ctl_rx) = crossbeam_channel::unbounded();
        // Stopping from the start: the driver delivers everything, then ends (at the latest
        // at this deadline).
        ctl_tx
            .send(Control::Stop(Instant::now() + Duration::from_secs(5)))
            .unwrap();
        let fake = Fake::default();
        let delivered = Arc::clone(&fake.delivered);
        let shared = Arc::new(Shared::default());
        let limits = Limits {
            queue_records: names.len(),
            backoff: (Duration::from_millis(1), Duration::from_millis(2)),
        };
        let setup = Setup {
            shared: Arc::clone(&shared),
            spool: None,
            limits,
        };
        let finished = Driver::new(fake, setup, rx, ctl_rx).run();

        assert_eq!(
            *delivered.lock().unwrap(),
            ["r0", "r1", "r2", "r3", "r4", "r6", "r8", "r9"]
        );
        let stats = shared.snapshot(0);
        assert_eq!(stats.delivered, 8);
        // r1..r3 were in flight when the link failed.
        assert_eq!(stats.retried, 3);
        assert_eq!(stats.dropped_invalid, 1);
        assert_eq!(stats.dropped_io, 1);
        assert_eq!(stats.dropped, 2);
        assert_eq!(stats.queued, 0);
        assert_eq!(stats.last_error.as_deref(), Some("cut"));
        assert_eq!(shared.rejected.load(Ordering::Relaxed), 1);
        assert_eq!(shared.unreported.load(Ordering::Relaxed), 2);
        assert_eq!(finished.spooled_on_close, 0);
    }
}

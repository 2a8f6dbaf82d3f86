//! What the [sink driver](super::driver) asks of one kind of receiver: connect, send a batch,
//! tell what became of each record sent, close. Syslog (UDP, TCP, TLS) and HTTP each
//! implement it; the driver owns everything else (queue, spool, retries, backoff, accounting,
//! stopping).

use std::time::{Duration, Instant};

/// One record as the queue holds it: formatted, without transport framing.
pub(crate) type Rec = Box<[u8]>;

/// What became of one record handed to a transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fate {
    /// The receiver has it.
    Delivered,
    /// Not taken this time: sent again, first, after a backoff.
    Retry,
    /// Refused for good by the receiver, or not sendable to it: counted as invalid and
    /// rejected.
    Rejected,
    /// Lost on the way (a UDP send that failed): counted as an I/O loss.
    Lost,
}

/// How the link is after a round.
pub(crate) enum Health {
    /// Working: keep sending.
    Up,
    /// The receiver closed its side. With nothing left to send while stopping and nothing in
    /// flight, that is its answer to our own end; otherwise a failure.
    Closed,
    /// The link failed: every record in flight without a fate is sent again, first, after a
    /// backoff delay (never sooner than `after`).
    Failed {
        /// What went wrong, for [`SinkStats::last_error`](super::SinkStats::last_error).
        error: String,
        /// The least delay the receiver asked for (HTTP `Retry-After`).
        after: Option<Duration>,
    },
}

/// What a transport learnt of the records in flight.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Learned {
    /// The receiver took records: past failures are forgotten (the backoff starts over).
    pub(crate) progress: bool,
    /// Records counted as delivered earlier that turn out lost (UDP datagrams the receiver's
    /// host refused).
    pub(crate) revoked: u64,
}

/// How the driver groups records for a transport.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Policy {
    /// Records per batch at most.
    pub(crate) batch_records: usize,
    /// A batch takes no more records once it holds this many bytes.
    pub(crate) batch_bytes: usize,
    /// `None`: records leave as soon as they come. `Some(d)`: a batch that is not full waits
    /// until its oldest record has waited `d` (records that already waited leave at once).
    pub(crate) batch_delay: Option<Duration>,
    /// Failed attempts in a row after which, while the link is down, the queue goes to the
    /// spool (0: as soon as it is down).
    pub(crate) spill_after: u32,
}

/// One kind of receiver. Records are sent oldest first; the fates it reports are those of
/// the oldest records in flight, in order.
pub(crate) trait Transport: Send + 'static {
    /// The name of the sink's thread.
    const THREAD_NAME: &'static str;

    /// Whether the transport keeps its live socket in the sink's shared counters, so that
    /// closing can cut a blocked write ([`Sink::interrupt`](super::Sink::interrupt)) and give
    /// the thread a second slack to end.
    const INTERRUPTIBLE: bool = false;

    /// How records are grouped.
    fn policy(&self) -> Policy;

    /// Opens a link. `stop` is the close deadline, if closing: no wait may outlast it.
    fn connect(&mut self, stop: Option<Instant>) -> Result<(), String>;

    /// Sends `batch`, the records after those already in flight. An error means the link
    /// failed; the fates of what the receiver already had are still asked for.
    fn send(&mut self, batch: &[Rec], stop: Option<Instant>) -> Result<(), String>;

    /// How the link is now.
    fn health(&mut self, stop: Option<Instant>) -> Health;

    /// Appends to `fates` what became of the oldest of the `inflight` records in flight, as
    /// far as known now (possibly none of them).
    fn fates(&mut self, inflight: usize, fates: &mut Vec<Fate>) -> Learned;

    /// Nothing more will be sent on this link (the sink is stopping): end our side, so that
    /// the receiver can finish reading.
    fn end_of_records(&mut self) {}

    /// Closes the link, if open. `stop` is the close deadline, if closing. `last`: the sink
    /// is ending, so say goodbye if that takes no waiting, and learn what there is still to
    /// learn (the fates are asked for once more after this).
    fn close(&mut self, stop: Option<Instant>, last: bool);
}

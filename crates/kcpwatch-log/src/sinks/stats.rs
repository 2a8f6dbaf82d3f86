//! Counters shared between a sink's handle and its thread, and their snapshots.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

/// What a sink has done so far. Every record given to [`send`](super::Sink::send)
/// ends up in exactly one of `delivered`, `dropped`, or still `queued`/`spooled`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinkStats {
    /// Records the receiver has: for TCP and TLS on Linux, acknowledged by the receiver's TCP
    /// (elsewhere, accepted by the local socket); for UDP, handed to the socket and not
    /// refused by the receiver's host.
    pub delivered: u64,
    /// Records in memory: the queue, plus those the sink thread holds (written on the current
    /// connection but not acknowledged yet, or to be retried).
    pub queued: u64,
    /// Records in the on-disk spool now.
    pub spooled: u64,
    /// Records ever written to the spool.
    pub spooled_total: u64,
    /// Records delivered from the spool.
    pub replayed: u64,
    /// Records written again on a new connection because the old one failed before the
    /// receiver acknowledged them: the window where the receiver may see a record twice.
    pub retried: u64,
    /// Records lost, all causes: the sum of the `dropped_*` fields.
    pub dropped: u64,
    /// Dropped by `send` because the queue was full (the newest records are the ones lost).
    pub dropped_queue_full: u64,
    /// Dropped because the spool had no room (also the newest).
    pub dropped_spool_full: u64,
    /// Dropped on close: no spool, or no room in it, for what was not delivered in time.
    pub dropped_on_close: u64,
    /// Refused by `send`: empty, or longer than [`MAX_RECORD_BYTES`](super::MAX_RECORD_BYTES).
    pub dropped_invalid: u64,
    /// Lost to I/O errors: UDP sends that failed or were refused (ICMP), spool files that could not be written or
    /// read, torn records cut off a spool after a crash.
    pub dropped_io: u64,
    /// UDP datagrams cut to `max_udp_datagram` (delivered, but not whole; an RFC 5424 record
    /// carries `truncated_from`).
    pub truncated: u64,
    /// Connections established after the first one.
    pub reconnects: u64,
    /// Whether a connection (or, for UDP, the socket) is up now.
    pub connected: bool,
    /// The last connection, handshake, write or spool error, if any.
    pub last_error: Option<String>,
}

/// What [`close`](super::Sink::close) did, and where everything ended up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinkReport {
    /// The counters after the thread ended (`queued` is 0).
    pub stats: SinkStats,
    /// Records written to the spool during the close (not delivered within the grace period).
    pub spooled_on_close: u64,
    /// Losses not yet taken by [`take_unreported_loss`](super::Sink::take_unreported_loss):
    /// the caller reports them some other way, since the sink is gone.
    pub unreported_loss: u64,
}

#[derive(Default)]
pub(crate) struct Shared {
    pub(crate) delivered: AtomicU64,
    pub(crate) inflight: AtomicU64,
    pub(crate) spooled: AtomicU64,
    pub(crate) spooled_total: AtomicU64,
    pub(crate) replayed: AtomicU64,
    pub(crate) retried: AtomicU64,
    pub(crate) dropped_queue_full: AtomicU64,
    pub(crate) dropped_spool_full: AtomicU64,
    pub(crate) dropped_on_close: AtomicU64,
    pub(crate) dropped_invalid: AtomicU64,
    pub(crate) dropped_io: AtomicU64,
    pub(crate) truncated: AtomicU64,
    pub(crate) reconnects: AtomicU64,
    /// Records the receiver refused for good (also in `dropped_invalid`).
    pub(crate) rejected: AtomicU64,
    pub(crate) connected: AtomicBool,
    pub(crate) unreported: AtomicU64,
    pub(crate) last_error: Mutex<Option<String>>,
    /// The live connection's socket (a second handle to it), so that closing can cut a write
    /// or a handshake that blocks past the deadline.
    pub(crate) socket: Mutex<Option<std::net::TcpStream>>,
    /// The handle gave up waiting for the thread and counted what it held as lost: the thread
    /// must neither count nor spool it again.
    pub(crate) abandoned: AtomicBool,
}

/// Which loss counter a drop goes to.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Loss {
    QueueFull,
    SpoolFull,
    OnClose,
    Invalid,
    Io,
}

impl Shared {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        if n > 0 {
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }

    pub(crate) fn lose(&self, why: Loss, n: u64) {
        if n == 0 {
            return;
        }
        let counter = match why {
            Loss::QueueFull => &self.dropped_queue_full,
            Loss::SpoolFull => &self.dropped_spool_full,
            Loss::OnClose => &self.dropped_on_close,
            Loss::Invalid => &self.dropped_invalid,
            Loss::Io => &self.dropped_io,
        };
        counter.fetch_add(n, Ordering::Relaxed);
        self.unreported.fetch_add(n, Ordering::Relaxed);
    }

    /// Shuts the live connection down, if any: a blocked write or read on it returns at once.
    pub(crate) fn interrupt(&self) {
        let socket = self.socket.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(socket) = socket {
            let _ = socket.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Keeps a second handle to the connection's socket for [`Shared::interrupt`].
    pub(crate) fn set_socket(&self, socket: Option<std::net::TcpStream>) {
        *self.socket.lock().unwrap_or_else(|p| p.into_inner()) = socket;
    }

    /// Gives up on a thread that did not stop in time: what it holds (the queue and its own
    /// records) is counted as lost now, since nothing will report it later.
    pub(crate) fn abandon(&self, queued: usize) {
        if self.abandoned.swap(true, Ordering::AcqRel) {
            return;
        }
        let held = queued as u64 + self.inflight.swap(0, Ordering::Relaxed);
        self.lose(Loss::OnClose, held);
        self.connected.store(false, Ordering::Relaxed);
        self.set_error("the sink thread did not stop in time and was abandoned".to_owned());
    }

    pub(crate) fn is_abandoned(&self) -> bool {
        self.abandoned.load(Ordering::Acquire)
    }

    pub(crate) fn set_error(&self, text: String) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(text);
    }

    pub(crate) fn snapshot(&self, queue_len: usize) -> SinkStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let dropped_queue_full = get(&self.dropped_queue_full);
        let dropped_spool_full = get(&self.dropped_spool_full);
        let dropped_on_close = get(&self.dropped_on_close);
        let dropped_invalid = get(&self.dropped_invalid);
        let dropped_io = get(&self.dropped_io);
        SinkStats {
            delivered: get(&self.delivered),
            queued: queue_len as u64 + get(&self.inflight),
            spooled: get(&self.spooled),
            spooled_total: get(&self.spooled_total),
            replayed: get(&self.replayed),
            retried: get(&self.retried),
            dropped: dropped_queue_full
                + dropped_spool_full
                + dropped_on_close
                + dropped_invalid
                + dropped_io,
            dropped_queue_full,
            dropped_spool_full,
            dropped_on_close,
            dropped_invalid,
            dropped_io,
            truncated: get(&self.truncated),
            reconnects: get(&self.reconnects),
            connected: self.connected.load(Ordering::Relaxed),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }
}

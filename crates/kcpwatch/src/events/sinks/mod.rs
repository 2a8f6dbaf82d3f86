//! Network outputs of the security records: syslog over UDP (RFC 5426), TCP (RFC 6587
//! octet counting) and TLS (RFC 5425), each a [`NetworkSink`] with its own thread, bounded
//! queue and, for TCP and TLS, a bounded on-disk spool.
//!
//! The log thread formats each record and calls [`NetworkSink::send`], which only copies it
//! into the queue: it never blocks on the network, the disk or a lock held across I/O. The
//! sink's thread does everything else.
//!
//! # Delivery
//!
//! A record is *delivered* when the receiver's TCP has acknowledged every byte of its frame
//! (Linux, through `SIOCOUTQ`; elsewhere, when the local socket accepted it). Records are only
//! released after that, so a connection that fails — reset, write timeout, TLS alert, receiver
//! closing — loses nothing it had not confirmed: the unacknowledged records are written again,
//! first, on the next connection ([`SinkStats::retried`]). While the receiver is down, records
//! go to the spool (append-only segment files of length-prefixed records); when it returns,
//! the spool is replayed in order before anything newer. Closing delivers what it can within
//! the grace period and spools the rest, in order, for the next sink on the same directory.
//!
//! Nothing is lost silently: every record dropped (queue full without spool room, spool full,
//! close without a spool, I/O errors) is counted in [`SinkStats`] and returned once by
//! [`NetworkSink::take_unreported_loss`], for the log thread's `kcp:log_loss` record.
//!
//! What plain syslog cannot promise (it has no application acknowledgements — RELP has):
//! - **Loss:** bytes the receiver's TCP acknowledged but the receiver program never read, when
//!   it dies or closes without reading its socket buffer. A receiver that closes gracefully
//!   (shuts down its side and reads until ours ends) loses nothing: the sink sees its end of
//!   stream before writing more, ends its own side, and waits for the acknowledgements.
//! - **Duplicates:** a record the receiver got whose acknowledgement had not been seen when the
//!   connection failed, or when the grace period of a close ran out, is written again.
//! - **Crash:** records in memory (queue, in flight) are lost with the process; spooled ones
//!   survive it, and up to a second of replay progress may be replayed again.
//!
//! UDP has no delivery to know: records are sent once, one per datagram, cut to
//! [`NetworkSinkConfig::max_udp_datagram`] (counted in [`SinkStats::truncated`]): an RFC 5424
//! record between whole SD-PARAMs, its element closed and marked `truncated_from="<size>"`, so
//! that it still parses; anything else at a UTF-8 boundary. Counted as lost: sends that fail,
//! and datagrams the receiver's host refused (each ICMP error in the socket's error queue,
//! `IP_RECVERR` on Linux: the receiver is down). A receiver that is up but does not read, or
//! whose buffer is full, loses datagrams where the sender cannot see it. There is no UDP spool.
//!
//! Records are the formatted bytes without transport framing. A trailing line end (the formats
//! end each record with one for files) is removed, since in syslog the frame delimits.

mod backoff;
mod config;
mod error;
mod framing;
pub mod http;
mod link;
mod spool;
mod stats;
mod tls;
mod worker;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, TrySendError};

pub use config::{
    NetworkSinkConfig, SinkTarget, SpoolConfig, DEFAULT_MAX_UDP_DATAGRAM, DEFAULT_QUEUE_RECORDS,
    MAX_RECORD_BYTES, MIN_UDP_DATAGRAM,
};
pub use error::SinkError;
pub use http::{HttpKind, HttpSink, HttpSinkConfig, HttpSinkError};
pub use stats::{SinkReport, SinkStats};

use stats::{Loss, Shared};
use worker::{Control, Finished, Rec, Worker};

/// One network output with its own thread, bounded queue and on-disk spool.
pub struct NetworkSink {
    tx: Sender<Rec>,
    ctl: Sender<Control>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<Finished>>,
}

impl NetworkSink {
    /// Opens the spool (if any) and the TLS configuration (if any), and spawns the sink
    /// thread. Never waits for the receiver: connecting is the thread's business, and a
    /// receiver that is down only shows in [`SinkStats::last_error`].
    pub fn start(config: NetworkSinkConfig) -> Result<Self, SinkError> {
        config.validate()?;
        let shared = Arc::new(Shared::default());
        let spool = match &config.spool {
            Some(spool_config) => {
                let (spool, opened) = spool::Spool::open(spool_config)?;
                shared.spooled.store(opened.records, Ordering::Relaxed);
                shared.lose(Loss::Io, opened.torn);
                Some(spool)
            }
            None => None,
        };
        let tls = match &config.target {
            SinkTarget::SyslogTls {
                server_name,
                ca_file,
                client_cert,
                ..
            } => Some(tls::setup(server_name, ca_file, client_cert.as_ref())?),
            _ => None,
        };
        let (tx, rx) = crossbeam_channel::bounded(config.queue_records);
        let (ctl_tx, ctl_rx) = crossbeam_channel::unbounded();
        let worker = Worker::new(config, rx, ctl_rx, Arc::clone(&shared), spool, tls);
        let thread = std::thread::Builder::new()
            .name("kcpwatch-sink".into())
            .spawn(move || worker.run())
            .map_err(SinkError::Spawn)?;
        Ok(Self {
            tx,
            ctl: ctl_tx,
            shared,
            thread: Some(thread),
        })
    }

    /// Queues one record (already formatted, without transport framing). Never blocks.
    /// Returns false when the record was dropped (counted): the queue is full, or the record
    /// is empty or longer than [`MAX_RECORD_BYTES`].
    pub fn send(&self, record: &[u8]) -> bool {
        let record = framing::strip_line_end(record);
        if record.is_empty() || record.len() > MAX_RECORD_BYTES {
            self.shared.lose(Loss::Invalid, 1);
            return false;
        }
        match self.tx.try_send(Box::from(record)) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                self.shared.lose(Loss::QueueFull, 1);
                false
            }
            Err(TrySendError::Disconnected(_)) => {
                // The thread is gone (it panicked): nothing will deliver this.
                self.shared.lose(Loss::Io, 1);
                false
            }
        }
    }

    /// Stops: delivers what is queued within `grace`, spools the rest to disk (if a spool is
    /// configured; otherwise it is dropped and counted), and joins the thread. Returns within
    /// `grace` plus [`STOP_SLACK`]: at `grace` a write or TLS handshake still blocked is cut
    /// (the connection is shut down), and a thread that has still not ended
    /// [`STOP_SLACK`] later is abandoned, with what it held counted as lost.
    pub fn close(self, grace: Duration) -> SinkReport {
        let deadline = Instant::now() + grace;
        self.begin_close(deadline);
        if !self.wait_until(deadline) {
            self.interrupt();
            self.wait_until(deadline + STOP_SLACK);
        }
        self.end()
    }

    /// Asks the thread to stop: it delivers until `deadline`, then spools (or counts) the
    /// rest. Several sinks can be stopped at once this way, then waited for with
    /// [`NetworkSink::wait_until`] and ended with [`NetworkSink::end`].
    pub fn begin_close(&self, deadline: Instant) {
        let _ = self.ctl.send(Control::Stop(deadline));
    }

    /// Waits until the thread has ended or `until`; true when it has ended.
    pub fn wait_until(&self, until: Instant) -> bool {
        wait_for_thread(self.thread.as_ref(), until)
    }

    /// Shuts the live connection down: a write or TLS handshake blocked on a receiver that
    /// does not read or answer returns at once (what it did not deliver is spooled or
    /// counted).
    pub fn interrupt(&self) {
        self.shared.interrupt();
    }

    /// After [`NetworkSink::begin_close`]: joins the thread if it has ended; otherwise
    /// abandons it (it is left to end on its own) and counts what it held as lost, never
    /// waiting.
    pub fn end(mut self) -> SinkReport {
        let finished = self.join_or_abandon();
        SinkReport {
            stats: self.shared.snapshot(0),
            spooled_on_close: finished.map_or(0, |f| f.spooled_on_close),
            unreported_loss: self.take_unreported_loss(),
        }
    }

    fn join_or_abandon(&mut self) -> Option<Finished> {
        let thread = self.thread.take()?;
        if !thread.is_finished() {
            self.shared.abandon(self.tx.len());
            return None;
        }
        match thread.join() {
            Ok(finished) => Some(finished),
            Err(_) => {
                self.shared.set_error("the sink thread panicked".to_owned());
                None
            }
        }
    }

    /// The counters now.
    pub fn stats(&self) -> SinkStats {
        self.shared.snapshot(self.tx.len())
    }

    /// Losses not yet reported: the log thread turns them into a `kcp:log_loss` record (per
    /// sink). Each loss is returned once.
    pub fn take_unreported_loss(&self) -> u64 {
        self.shared.unreported.swap(0, Ordering::Relaxed)
    }
}

impl Drop for NetworkSink {
    /// A sink dropped without [`NetworkSink::close`] closes with no grace: what is not
    /// delivered yet is spooled (or counted as lost), within [`STOP_SLACK`].
    fn drop(&mut self) {
        if self.thread.is_none() {
            return;
        }
        let now = Instant::now();
        self.begin_close(now);
        if !self.wait_until(now + STOP_SLACK) {
            self.interrupt();
            self.wait_until(now + 2 * STOP_SLACK);
        }
        self.join_or_abandon();
    }
}

/// How long a sink thread gets, after its close deadline, to spool what it holds and end
/// before it is abandoned (and what it held counted as lost).
pub const STOP_SLACK: Duration = Duration::from_millis(100);

/// Waits until `thread` (if any) has ended, or `until`; true when it has ended.
#[doc(hidden)]
pub fn wait_for_thread<T>(thread: Option<&JoinHandle<T>>, until: Instant) -> bool {
    let Some(thread) = thread else {
        return true;
    };
    // Bounded by `until`; a short poll, since only `close` waits here.
    while !thread.is_finished() {
        if Instant::now() >= until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}

impl std::fmt::Debug for NetworkSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetworkSink")
            .field("stats", &self.stats())
            .finish()
    }
}

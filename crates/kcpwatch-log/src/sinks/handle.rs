//! The handle of a network sink: the bounded queue into its [driver](super::driver) thread,
//! the counters they share, and the bounded stop. The same for every transport; what differs
//! is only how a sink starts ([`SyslogSink`](super::SyslogSink),
//! [`HttpSink`](super::HttpSink)).

use std::marker::PhantomData;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, TrySendError};

use super::config::MAX_RECORD_BYTES;
use super::driver::{Control, Driver, Finished, Setup};
use super::error::SinkError;
use super::framing;
use super::stats::{Loss, Shared, SinkReport, SinkStats};
use super::transport::{Rec, Transport};

/// How long a sink thread gets, after its close deadline, to spool what it holds and end
/// before it is abandoned (and what it held counted as lost).
pub const STOP_SLACK: Duration = Duration::from_millis(100);

/// One network output with its own thread, bounded queue and optional on-disk spool,
/// delivering over the transport `T`: see [`SyslogSink`](super::SyslogSink) and
/// [`HttpSink`](super::HttpSink).
pub struct Sink<T> {
    tx: Sender<Rec>,
    ctl: Sender<Control>,
    pub(crate) shared: Arc<Shared>,
    thread: Option<JoinHandle<Finished>>,
    /// Whether the transport keeps its socket in `shared`, so that closing can cut a blocked
    /// write and give the thread a second slack to end.
    interruptible: bool,
    _transport: PhantomData<fn() -> T>,
}

/// Spawns the driver thread of a sink over `transport`.
pub(crate) fn spawn<T: Transport>(transport: T, setup: Setup) -> Result<Sink<T>, SinkError> {
    let (tx, rx) = crossbeam_channel::bounded(setup.limits.queue_records);
    let (ctl_tx, ctl_rx) = crossbeam_channel::unbounded();
    let shared = Arc::clone(&setup.shared);
    let driver = Driver::new(transport, setup, rx, ctl_rx);
    let thread = std::thread::Builder::new()
        .name(T::THREAD_NAME.into())
        .spawn(move || driver.run())
        .map_err(SinkError::Spawn)?;
    Ok(Sink {
        tx,
        ctl: ctl_tx,
        shared,
        thread: Some(thread),
        interruptible: T::INTERRUPTIBLE,
        _transport: PhantomData,
    })
}

impl<T> Sink<T> {
    /// Queues one record (already formatted, without transport framing; one trailing line
    /// end is removed). Never blocks. Returns false when the record was dropped (counted): the
    /// queue is full, or the record is empty or longer than [`MAX_RECORD_BYTES`].
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
    /// `grace` plus [`STOP_SLACK`]: at `grace` a syslog write or TLS handshake still blocked is
    /// cut (the connection is shut down), and a thread that has still not ended
    /// [`STOP_SLACK`] later (an HTTP request still waiting for its answer, say) is abandoned,
    /// with what it held counted as lost (the endpoint may still get that request).
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
    /// [`Sink::wait_until`] and ended with [`Sink::end`].
    pub fn begin_close(&self, deadline: Instant) {
        let _ = self.ctl.send(Control::Stop(deadline));
    }

    /// Waits until the thread has ended or `until`; true when it has ended.
    pub fn wait_until(&self, until: Instant) -> bool {
        wait_for_thread(self.thread.as_ref(), until)
    }

    /// Shuts the live syslog connection down: a write or TLS handshake blocked on a receiver
    /// that does not read or answer returns at once (what it did not deliver is spooled or
    /// counted). Nothing for HTTP.
    pub fn interrupt(&self) {
        self.shared.interrupt();
    }

    /// After [`Sink::begin_close`]: joins the thread if it has ended; otherwise abandons it
    /// (it is left to end on its own) and counts what it held as lost, never waiting.
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

impl<T> Drop for Sink<T> {
    /// A sink dropped without [`Sink::close`] closes with no grace: what is not delivered yet
    /// is spooled (or counted as lost), within [`STOP_SLACK`] (twice that when a blocked
    /// syslog write has to be cut).
    fn drop(&mut self) {
        if self.thread.is_none() {
            return;
        }
        let now = Instant::now();
        self.begin_close(now);
        if !self.wait_until(now + STOP_SLACK) && self.interruptible {
            self.interrupt();
            self.wait_until(now + 2 * STOP_SLACK);
        }
        self.join_or_abandon();
    }
}

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

//! Who reads the socket: the I/O thread, or, while it sleeps, the JavaScript thread's event loop.
//!
//! A datagram the I/O thread receives reaches JavaScript after a second wake-up, the event
//! loop's, which cost 15-20 µs a round trip on the development machine
//! (docs/performance.md, "Where a round trip goes"). So when the I/O thread is about to sleep
//! with the socket drained, it hands reception to the event loop: it stops watching the
//! socket for reading, and the binding's watcher on the event loop (a libuv poll handle)
//! starts. The kernel then wakes the JavaScript thread directly, which runs the turn itself
//! ([`IoThread::receive_now`]) under the same lock as a send turn.
//!
//! The event loop gives reception back as soon as it would compete with the I/O thread or fall
//! behind: when the I/O thread is awake or has commands waiting, when one turn took in a burst
//! or leaves datagrams in the socket or messages it could not deliver, or when its watcher
//! fails. The I/O thread takes it back on its next turn and hands it over again the next time
//! it sleeps; it also takes it back from an event loop that leaves datagrams unread (a handler
//! blocking it), looking at least every [`LOOP_STALL`]. At
//! every moment one of the two watches the socket, or the hand-over is under way with the
//! event loop's watcher about to start; that watcher is level-triggered, so what arrived in
//! between is read when it starts. Nothing else changes: the same endpoint, in the same order,
//! behind the same lock.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mio::{Interest, Registry};
use tracing::warn;

use super::{IoThread, Shared, SOCKET};

/// How long datagrams may wait unread, with the event loop running no receive turn, before the
/// I/O thread takes reception back; also how long it sleeps at most, while datagrams come and
/// the event loop has reception, to look. A blocked event loop then delays acknowledgements by
/// at most about twice this, below the engine's smallest retransmission timeout (30 ms).
pub(super) const LOOP_STALL: Duration = Duration::from_millis(5);

/// How long the I/O thread sleeps at most while the event loop has reception and nothing
/// comes: the look backs off from [`LOOP_STALL`] to this, so that an idle endpoint wakes about
/// once a second (200 wake-ups a second cost 0.3% of a core on the development machine). The
/// first datagram after a quiet spell, if the event loop is blocked then, waits at most this.
pub(super) const LOOP_QUIET_CHECK: Duration = Duration::from_secs(1);

/// A receive turn on the event loop that took in more datagrams than this was a burst: the
/// event loop gives reception back, so that a busy server's receiving stays on the I/O thread
/// and the two threads share the work.
pub(super) const LOOP_TURN_DATAGRAMS: usize = 16;

/// The hand-over's shared flags.
#[derive(Default)]
pub(crate) struct Reception {
    /// The binding has a watcher on the event loop, so reception may be handed to it.
    pub(crate) enabled: AtomicBool,
    /// The event loop reads the socket; the I/O thread does not watch it for reading.
    pub(crate) on_loop: AtomicBool,
    /// Handed over, and the event loop's watcher is not started yet: the binding starts it
    /// when JavaScript takes its records, which the hand-over's notification makes it do.
    pub(crate) watch_wanted: AtomicBool,
}

/// What the event loop's watcher does after a receive turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoopReception {
    /// Keep watching: the event loop reads the socket.
    Watch,
    /// Stop watching: the I/O thread reads the socket again (or the endpoint is gone).
    Stop,
}

impl Shared {
    /// Gives reception back to the I/O thread and wakes it to watch the socket again.
    pub(crate) fn reception_to_io_thread(&self) -> LoopReception {
        self.reception.on_loop.store(false, Ordering::Release);
        let _ = self.waker.wake();
        LoopReception::Stop
    }
}

impl IoThread {
    /// At the start of each loop iteration: takes reception back if the event loop gave it up,
    /// or if datagrams have waited unread for [`LOOP_STALL`] while the event loop ran no receive
    /// turn (a handler blocking the event loop must not also stop the acknowledgements,
    /// keepalives and handshakes this side owes).
    pub(super) fn take_reception_back(&mut self, registry: &Registry) {
        if self.watching_reads {
            return;
        }
        if self.shared.reception.on_loop.load(Ordering::Acquire) {
            let turns = self.stats.receives_on_loop;
            let loop_ran = turns != self.loop_turns_seen;
            self.loop_turns_seen = turns;
            if !self.io.has_pending() {
                self.loop_unread = None;
                // Quiet: look less and less often, so an idle endpoint costs next to nothing.
                self.loop_check = if loop_ran {
                    LOOP_STALL
                } else {
                    (self.loop_check * 2).min(LOOP_QUIET_CHECK)
                };
                return;
            }
            self.loop_check = LOOP_STALL;
            match self.loop_unread {
                Some((since, seen)) if seen == turns => {
                    if since.elapsed() < LOOP_STALL {
                        return;
                    }
                }
                _ => {
                    self.loop_unread = Some((Instant::now(), turns));
                    return;
                }
            }
            self.stats.loop_receive_stalls += 1;
            self.shared
                .reception
                .on_loop
                .store(false, Ordering::Release);
        }
        if self.watch_reads(registry, true) {
            // What arrived while the event loop had it raised no edge here.
            self.socket_readable = true;
        }
    }

    /// How long this thread sleeps at most while the event loop has reception, so that it can
    /// see a stalled event loop: [`LOOP_STALL`] while datagrams come, backing off to
    /// [`LOOP_QUIET_CHECK`] while none do.
    pub(super) fn cap_sleep(&self, timeout: Option<Duration>) -> Option<Duration> {
        if self.watching_reads {
            return timeout;
        }
        Some(timeout.map_or(self.loop_check, |t| t.min(self.loop_check)))
    }

    /// About to sleep with the socket drained: hands reception to the event loop, if the
    /// binding has a watcher there.
    pub(super) fn hand_reception_over(&mut self, registry: &Registry) {
        if !self.watching_reads
            || self.socket_readable
            || !self.shared.reception.enabled.load(Ordering::Acquire)
            || !self.watch_reads(registry, false)
        {
            return;
        }
        let reception = &self.shared.reception;
        self.loop_unread = None;
        self.loop_check = LOOP_STALL;
        self.loop_turns_seen = self.stats.receives_on_loop;
        reception.on_loop.store(true, Ordering::Release);
        reception.watch_wanted.store(true, Ordering::Release);
        self.stats.receptions_handed += 1;
        self.shared.delivery.notify_consumer();
    }

    /// Registers the socket for reading (and writing) or for writing only; false if the
    /// registry refused, which leaves reception with this thread.
    fn watch_reads(&mut self, registry: &Registry, reads: bool) -> bool {
        let interest = if reads {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::WRITABLE
        };
        match registry.reregister(self.io.socket_mut(), SOCKET, interest) {
            Ok(()) => {
                self.watching_reads = reads;
                true
            }
            Err(e) => {
                warn!(error = %e, "cannot change the socket's registration");
                false
            }
        }
    }
}

//! The I/O thread: it owns the socket and the endpoint. One loop iteration takes commands,
//! receives datagrams in batches, runs expired timers, flushes, sends in batches, turns
//! endpoint events into records and publishes them to JavaScript in one step.
//!
//! While it sleeps in `poll`, the JavaScript thread may run a send batch itself
//! ([`IoThread::send_now`]) instead of queueing it and waking this thread: a reply then
//! leaves without a thread hand-off (docs/performance.md). It may also receive: this thread
//! hands reading the socket to the event loop while it sleeps ([`reception`],
//! [`IoThread::receive_now`]). The state is behind one lock ([`Shared::io`]), taken once per
//! turn and never waited for on the JavaScript side.

mod commands;
mod reception;
mod report;
mod stages;
#[cfg(test)]
mod tests;

pub(crate) use commands::Command;
pub use reception::LoopReception;
pub(crate) use reception::Reception;
use report::{
    UnreachableRepeats, ERROR_SAMPLE_BURST, ERROR_SAMPLE_WINDOW_MS, ICMP_ERROR, SEND_FAILURE,
    SHUTDOWN_LOG_PATIENCE,
};

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::Receiver;
use kcpwatch_proto::events::{ErrorEvent, Sampler};
use kcpwatch_proto::{ConnectionHandle, Endpoint, EndpointEvent, Millis, Unreachable};
use mio::{Events, Interest, Poll, Token};
use tracing::{debug, debug_span, warn};

use crate::config::RuntimeConfig;
use crate::delivery::{Closing, DeliveryQueue, Peer, RecordWriter};
use crate::error::RuntimeError;
use crate::events::clock::unix_micros;
use crate::events::EventRing;
use crate::stage_trace::{StageShared, Turn};
use crate::stats::RuntimeStats;
use crate::udp::{SendFailure, UdpIo};

const SOCKET: Token = Token(0);
pub(crate) const WAKER: Token = Token(1);
/// Receive batches per loop iteration before timers and sends get their turn.
const RECV_BATCHES_PER_TURN: usize = 8;

/// State shared between the I/O thread and the handle.
pub(crate) struct Shared {
    pub(crate) waker: mio::Waker,
    pub(crate) delivery: DeliveryQueue,
    /// The I/O thread stopped pulling messages because delivery was full.
    pub(crate) paused: AtomicBool,
    /// The security event ring and the thread consuming it, when logging is on.
    pub(crate) events: Option<EventsLink>,
    /// Bytes of datagram batches sent to this thread and not applied yet: the binding refuses
    /// more datagrams past its bound, so a stalled thread cannot make the queue grow.
    pub(crate) datagram_backlog: std::sync::atomic::AtomicUsize,
    /// The bench's stage trace, when the environment asked for it (see `stage_trace`).
    pub(crate) stages: Option<StageShared>,
    /// The counters as the I/O thread left them at shutdown, for `Runtime::stats` afterwards.
    pub(crate) final_stats: Mutex<Option<RuntimeStats>>,
    /// The I/O thread's state: held by that thread for each turn, and by the JavaScript thread
    /// for a send or receive turn while the I/O thread sleeps. `None` before it starts and after it stops.
    pub(crate) io: Mutex<Option<IoThread>>,
    /// Whether the I/O thread or the event loop reads the socket (see `reception`).
    pub(crate) reception: Reception,
}

impl Shared {
    /// The I/O state, waiting for it if the other thread holds it. A panic while it was held
    /// leaves it usable: every turn starts from what the endpoint holds.
    pub(crate) fn lock_io(&self) -> MutexGuard<'_, Option<IoThread>> {
        self.io
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The producer's view of the logging pipeline.
pub(crate) struct EventsLink {
    pub(crate) ring: Arc<EventRing>,
    pub(crate) consumer: std::thread::Thread,
    pub(crate) stats_interval_ms: u64,
}

/// Drops the I/O state when the I/O thread ends (see [`IoThread::run`]).
struct StateGoes<'a>(&'a Shared);

impl Drop for StateGoes<'_> {
    fn drop(&mut self) {
        self.0.lock_io().take();
    }
}

/// The socket the I/O thread serves, its address, and the poll it is to be registered with.
pub(crate) struct BoundSocket {
    pub(crate) poll: Poll,
    pub(crate) socket: mio::net::UdpSocket,
    pub(crate) local: SocketAddr,
}

pub(crate) struct IoThread {
    io: UdpIo,
    local: SocketAddr,
    endpoint: Endpoint,
    commands: Receiver<Command>,
    shared: Arc<Shared>,
    started: Instant,
    writer: RecordWriter,
    /// Connections with messages not yet moved into records.
    readable: Vec<ConnectionHandle>,
    /// Connections with bytes JavaScript sent and the peer has not acknowledged yet, with the
    /// acked bytes last reported.
    watched: HashMap<ConnectionHandle, u64>,
    /// Connections whose messages JavaScript asked to hold back (it holds its bound already).
    delivery_paused: HashSet<ConnectionHandle>,
    socket_readable: bool,
    socket_writable: bool,
    /// This thread's poll watches the socket for reading: reception is not with the event loop.
    watching_reads: bool,
    /// While the event loop has reception: since when datagrams have been seen waiting unread,
    /// and the event loop's receive turns then (a stalled event loop is taken reception from).
    loop_unread: Option<(Instant, u64)>,
    /// While the event loop has reception: the event loop's receive turns at the last look, and
    /// how long to sleep at most before the next (see `reception`).
    loop_turns_seen: u64,
    loop_check: Duration,
    /// This turn runs on the event loop's thread (`receive_now`): its records are published
    /// without the notification, which the caller replaces by calling JavaScript itself.
    on_loop_turn: bool,
    stats: RuntimeStats,
    /// Endpoint-side event losses already handed to the ring, by severity.
    upstream_lost: [u64; 8],
    next_stats: Option<Instant>,
    last_stats: Instant,
    error_sampler: Sampler<ErrorEvent, 2>,
    /// Unreachable reports about peers whose episode was already logged.
    unreachable_repeats: UnreachableRepeats,
    /// Per-connection diagnostic spans (only while a `tracing` subscriber wants them).
    spans: HashMap<ConnectionHandle, tracing::Span>,
    /// Unix time in microseconds at the start of the current loop iteration.
    iteration_time_us: u64,
    /// ICMP errors for earlier sends, oldest first, at most `IoThread::SEND_FAILURES_KEPT`.
    send_failures: Vec<SendFailure>,
    /// Send failures not kept because `send_failures` was full.
    send_failures_dropped: u64,
    /// The current turn's stamps, while the stage trace is on.
    turn: Option<Turn>,
    /// While the I/O thread sleeps in `poll`: when it wakes by itself (`Some(None)`: only
    /// when woken). A send turn run meanwhile wakes it only for an earlier deadline.
    asleep: Option<Option<Instant>>,
    /// Tests: runs once, in the next turn, right after its commands were taken (what the
    /// JavaScript thread does while a turn runs).
    #[cfg(test)]
    after_commands: Option<Box<dyn FnMut() + Send>>,
}

impl IoThread {
    /// Builds the state on the thread that runs it, and returns it with the poll to run.
    pub(crate) fn new(
        bound: BoundSocket,
        config: RuntimeConfig,
        commands: Receiver<Command>,
        shared: Arc<Shared>,
    ) -> Result<(Self, Poll), RuntimeError> {
        let BoundSocket {
            poll,
            mut socket,
            local,
        } = bound;
        poll.registry()
            .register(&mut socket, SOCKET, Interest::READABLE | Interest::WRITABLE)
            .map_err(RuntimeError::Setup)?;
        let mut endpoint_config = config.endpoint.clone();
        endpoint_config.unix_ms_at_zero = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        if endpoint_config.rng_seed == 0 {
            let mut seed = [0u8; 8];
            let _ = getrandom::getrandom(&mut seed);
            endpoint_config.rng_seed = u64::from_le_bytes(seed);
        }
        if endpoint_config.secret == [0; 32] {
            // Cookies, session secrets and convs derive from this: it must be unpredictable,
            // so a failing OS source is a setup error rather than a silent zero key.
            getrandom::getrandom(&mut endpoint_config.secret)
                .map_err(|e| RuntimeError::Setup(std::io::Error::other(e.to_string())))?;
        }
        let endpoint = Endpoint::new(endpoint_config, 0)?;
        let mut io = UdpIo::new(socket, config.max_datagram).map_err(RuntimeError::Setup)?;
        let turn = shared.stages.as_ref().map(|_| Turn::default());
        if turn.is_some() {
            io.enable_kernel_stamps().map_err(RuntimeError::Setup)?;
        }
        let state = Self {
            io,
            local,
            endpoint,
            commands,
            shared,
            started: Instant::now(),
            writer: RecordWriter::default(),
            readable: Vec::new(),
            watched: HashMap::new(),
            delivery_paused: HashSet::new(),
            socket_readable: true,
            socket_writable: true,
            watching_reads: true,
            loop_unread: None,
            loop_turns_seen: 0,
            loop_check: reception::LOOP_STALL,
            on_loop_turn: false,
            stats: RuntimeStats::default(),
            upstream_lost: [0; 8],
            next_stats: None,
            last_stats: Instant::now(),
            error_sampler: Sampler::new(ERROR_SAMPLE_BURST, ERROR_SAMPLE_WINDOW_MS),
            unreachable_repeats: UnreachableRepeats::default(),
            spans: HashMap::new(),
            iteration_time_us: unix_micros(),
            send_failures: Vec::new(),
            send_failures_dropped: 0,
            turn,
            asleep: None,
            #[cfg(test)]
            after_commands: None,
        };
        Ok((state, poll))
    }

    fn stats_interval(&self) -> Option<Duration> {
        let ms = self.shared.events.as_ref()?.stats_interval_ms;
        (ms > 0).then(|| Duration::from_millis(ms))
    }

    fn now(&self) -> Millis {
        self.started.elapsed().as_millis() as u64 as Millis
    }

    /// Runs the I/O loop on this thread until shutdown; the state is in `shared.io`.
    pub(crate) fn run(mut poll: Poll, shared: Arc<Shared>) {
        // However this thread ends, even by a panic, the state goes with it: its command
        // receiver then closes, so the handle's commands fail with `Closed` instead of waiting
        // for a thread that is gone.
        let _state = StateGoes(&shared);
        let local = shared.lock_io().as_ref().map(|io| io.local);
        let span = debug_span!("kcpwatch_io", local = ?local);
        let _enter = span.enter();
        let mut events = Events::with_capacity(64);
        if let Some(io) = shared.lock_io().as_mut() {
            io.listener_started();
        }
        loop {
            let timeout = {
                let mut guard = shared.lock_io();
                let Some(io) = guard.as_mut() else { return };
                io.take_reception_back(poll.registry());
                let mut timeout = io.poll_timeout();
                if timeout != Some(Duration::ZERO) {
                    io.hand_reception_over(poll.registry());
                    timeout = io.cap_sleep(timeout);
                    io.asleep = Some(timeout.map(|t| Instant::now() + t));
                }
                timeout
            };
            if let Err(e) = poll.poll(&mut events, timeout) {
                if e.kind() != std::io::ErrorKind::Interrupted {
                    warn!(error = %e, "poll failed");
                }
            }
            let mut guard = shared.lock_io();
            let Some(io) = guard.as_mut() else { return };
            io.asleep = None;
            io.stamp(|turn| &mut turn.woke);
            for event in events.iter() {
                if event.token() == SOCKET {
                    // An ICMP error alone raises only the error flag; reading is what drains it.
                    io.socket_readable |= event.is_readable() || event.is_error();
                    io.socket_writable |= event.is_writable();
                }
            }
            if io.turn() {
                // Dropped here: the state holds the shared half, which holds the state.
                guard.take();
                return;
            }
        }
    }

    /// One turn of the loop; true when it shut down.
    fn turn(&mut self) -> bool {
        // One look at the ring per turn, before the commands are taken: a turn stages at most
        // the room it saw (and one message), so JavaScript takes at most `deliveryLimit` at
        // once. The look comes first because JavaScript asks for a connection's pause in the
        // middle of a take and then goes on taking the ring (its drain loop): looked at later,
        // the room that take freed would be filled by this turn, which missed the pause, and
        // JavaScript would hold a third ring's worth. Looked at here, what the ring held when
        // the pause was asked plus what this turn stages is at most one ring's worth.
        let delivery_budget = self.shared.delivery.room();
        let shutdown = self.take_commands();
        #[cfg(test)]
        if let Some(mut hook) = self.after_commands.take() {
            hook();
        }
        self.stamp_commands();
        let now = self.now();
        // Records are stamped with the time their iteration began, the moment their
        // datagrams and timers were taken in, not when they were handed to the ring.
        self.iteration_time_us = unix_micros();
        if shutdown {
            self.endpoint.shutdown(now);
            // The sessions' DISCONNECTs (secure mode) tell each peer at once, as
            // docs/protocol.md says; one pass, as many as the socket buffer takes.
            self.socket_writable = true;
            self.transmit();
            self.collect_events();
            self.listener_stopped();
            *self
                .shared
                .final_stats
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(self.stats_now());
            self.publish_events_until(Some(Instant::now() + SHUTDOWN_LOG_PATIENCE));
            self.shared.delivery.publish(&mut self.writer);
            debug!("shut down");
            return true;
        }
        self.serve(now, delivery_budget);
        false
    }

    /// A turn's work after its commands: receive, timers, flush, send, and hand what came of it
    /// to JavaScript, staging at most `delivery_budget` bytes of messages (see
    /// [`IoThread::turn`]). Returns how many datagrams it received.
    fn serve(&mut self, now: Millis, delivery_budget: usize) -> usize {
        let received = self.receive(now);
        if self.turn.as_ref().is_some_and(|turn| turn.received != 0) {
            self.stamp(|turn| &mut turn.input_done);
        }
        self.endpoint.handle_timeout(now);
        self.endpoint.flush(now);
        self.stamp(|turn| &mut turn.flushed);
        // Before the hand-over to JavaScript: under load a turn's datagrams are mostly the
        // replies of the send batch it applied, and they should not wait for the wake-up
        // call (measured: with them after it, 1,000 x 30 msg/s went from p50 163 to 350 us,
        // docs/performance.md). A turn that only received has nothing here since ACKs
        // wait for a reply (`ACK_DELAY_MS`), so its messages go straight to JavaScript.
        if self.turn.is_some() && !self.endpoint.transmits().is_empty() {
            self.transmit();
            self.stamp(|turn| &mut turn.sent);
        } else {
            self.transmit();
        }
        self.collect_events();
        self.deliver_datagrams();
        self.maybe_stats();
        self.report_suppressed_errors();
        self.publish_events();
        self.deliver_messages(delivery_budget);
        self.report_progress();
        let staged = !self.writer.is_empty();
        if staged {
            self.stamp_staged();
        }
        let room = if self.on_loop_turn {
            // The event loop's watcher hands them to JavaScript itself, on this thread.
            self.shared.delivery.publish_unannounced(&mut self.writer)
        } else {
            self.shared.delivery.publish(&mut self.writer)
        };
        if staged {
            self.stamp(|turn| &mut turn.published);
        }
        if let (Some(turn), Some(stages)) = (self.turn.as_mut(), self.shared.stages.as_ref()) {
            turn.finish(stages);
        }
        if !room && !self.readable.is_empty() {
            self.stats.delivery_pauses += 1;
            self.shared.paused.store(true, Ordering::Release);
        }
        received
    }

    /// A receive turn on the event loop's thread while the I/O thread sleeps and reception is
    /// with the event loop (see `reception`): the I/O thread's turn without its commands, which
    /// it takes when it wakes for them. Returns whether the event loop keeps reception: not
    /// after a burst (more than [`reception::LOOP_TURN_DATAGRAMS`]), nor if the socket still
    /// holds datagrams or messages wait for room, which are the I/O thread's to work through;
    /// and whether the I/O thread must be woken for an earlier deadline.
    pub(crate) fn receive_now(&mut self) -> (LoopReception, bool) {
        self.stats.receives_on_loop += 1;
        self.stamp(|turn| &mut turn.woke);
        self.iteration_time_us = unix_micros();
        self.socket_readable = true;
        // No commands here (they wait for the I/O thread), so the ring's room is looked at
        // now: a pause JavaScript asks for is applied before this turn or after it.
        self.on_loop_turn = true;
        let received = self.serve(self.now(), self.shared.delivery.room());
        self.on_loop_turn = false;
        if received > reception::LOOP_TURN_DATAGRAMS || self.socket_readable || self.can_deliver() {
            return (LoopReception::Stop, true);
        }
        (LoopReception::Watch, self.deadline_moved_earlier())
    }

    /// Whether the I/O thread sleeps in `poll`, so that a send turn may run on the caller's
    /// thread ([`IoThread::send_now`]).
    pub(crate) fn asleep(&self) -> bool {
        self.asleep.is_some()
    }

    /// A send turn on the caller's thread while the I/O thread sleeps: applies `batch`, flushes
    /// and sends at once, and publishes what that produced (refusals, progress, records).
    /// Receiving, timers and delivery stay with the I/O thread. Returns whether the I/O thread
    /// must be woken: the turn moved its next deadline earlier, or left work only it does.
    pub(crate) fn send_now(&mut self, batch: &[u8]) -> bool {
        self.stats.sends_on_caller += 1;
        self.stamp(|turn| &mut turn.woke);
        self.stamp_commands();
        let now = self.now();
        self.iteration_time_us = unix_micros();
        self.apply_sends(now, batch);
        self.endpoint.flush(now);
        self.stamp(|turn| &mut turn.flushed);
        self.transmit();
        self.stamp(|turn| &mut turn.sent);
        self.collect_events();
        self.publish_events();
        self.report_progress();
        if !self.writer.is_empty() {
            self.shared.delivery.publish(&mut self.writer);
        }
        if let (Some(turn), Some(stages)) = (self.turn.as_mut(), self.shared.stages.as_ref()) {
            turn.finish(stages);
        }
        self.deadline_moved_earlier()
    }

    /// After a turn on another thread while this one sleeps: whether it must wake, because its
    /// next deadline is now earlier than the one it sleeps until.
    fn deadline_moved_earlier(&mut self) -> bool {
        let Some(asleep_until) = self.asleep else {
            return true;
        };
        match self.poll_timeout() {
            None => false,
            Some(wait) => asleep_until.map_or(true, |until| Instant::now() + wait < until),
        }
    }

    /// Messages wait in the engines and JavaScript has room for them.
    fn can_deliver(&self) -> bool {
        !self.shared.paused.load(Ordering::Acquire)
            && self
                .readable
                .iter()
                .any(|h| !self.delivery_paused.contains(h))
    }

    fn poll_timeout(&mut self) -> Option<Duration> {
        if self.socket_readable || self.can_deliver() {
            return Some(Duration::ZERO);
        }
        let stats_wait = self
            .next_stats
            .map(|due| due.saturating_duration_since(Instant::now()));
        let errors_due = self
            .error_sampler
            .next_deadline()
            .into_iter()
            .chain(self.unreachable_repeats.deadline())
            .min();
        let errors_wait = errors_due.map(|due_ms| {
            let now_ms = self.started.elapsed().as_millis() as u64;
            Duration::from_millis(due_ms.saturating_sub(now_ms))
        });
        let endpoint_wait = self.endpoint.poll_timeout().map(|deadline| {
            let wait = deadline.wrapping_sub(self.now()) as i32;
            Duration::from_millis(wait.max(0) as u64)
        });
        [stats_wait, errors_wait, endpoint_wait]
            .into_iter()
            .flatten()
            .min()
    }

    /// Receives while the socket is readable, up to the turn's batches; returns how many
    /// datagrams and error reports it took in.
    fn receive(&mut self, now: Millis) -> usize {
        let mut received = 0;
        if !self.socket_readable {
            return received;
        }
        for _ in 0..RECV_BATCHES_PER_TURN {
            let endpoint = &mut self.endpoint;
            let stats = &mut self.stats;
            let turn = &mut self.turn;
            let stages = self.shared.stages.as_ref();
            let result = self.io.recv_batch(|datagram| {
                if let (Some(turn), Some(stages)) = (turn.as_mut(), stages) {
                    stages::received(turn, stages, datagram.kernel_ns);
                }
                if datagram.truncated {
                    // Longer than any datagram we accept: never parsed, but counted, recorded
                    // and seen by the detectors like every refused datagram.
                    stats.truncated += 1;
                    endpoint.handle_truncated(
                        now,
                        datagram.from,
                        datagram.local,
                        datagram.data,
                        datagram.len,
                    );
                    return;
                }
                endpoint.handle_datagram(now, datagram.from, datagram.local, datagram.data);
            });
            // ICMP errors surface in receives; reading them out also frees the receive buffer
            // room they take.
            self.take_send_failures();
            match result {
                Ok(0) => {
                    self.socket_readable = false;
                    return received;
                }
                Ok(n) => received += n,
                Err(e) => {
                    self.stats.recv_errors += 1;
                    debug!(error = %e, "recv failed");
                }
            }
        }
        received
    }

    /// Send failures kept until they are turned into events; later ones are only counted.
    const SEND_FAILURES_KEPT: usize = 1024;

    /// Collects the socket's reports of earlier sends that failed.
    fn take_send_failures(&mut self) {
        let stats = &mut self.stats;
        let mut kept = std::mem::take(&mut self.send_failures);
        let dropped = &mut self.send_failures_dropped;
        self.io.drain_errors(|failure| {
            stats.icmp_errors += 1;
            debug!(
                remote = %failure.remote,
                kind = failure.kind,
                errno = failure.errno,
                "an earlier send failed"
            );
            if kept.len() < Self::SEND_FAILURES_KEPT {
                kept.push(failure);
            } else {
                *dropped += 1;
            }
        });
        let now = self.now();
        for failure in kept.drain(..) {
            let unreachable = matches!(
                failure.kind,
                "ECONNREFUSED" | "EHOSTUNREACH" | "ENETUNREACH" | "EHOSTDOWN" | "ENONET"
            );
            if unreachable {
                // One record per connection and episode; the session ends as `dead_link` if
                // the reports go on with nothing received (`Endpoint::peer_unreachable`).
                match self.endpoint.peer_unreachable(now, failure.remote) {
                    Unreachable::Repeat | Unreachable::Closed(_) => {
                        let now_ms = self.started.elapsed().as_millis() as u64;
                        self.unreachable_repeats.note(failure, now_ms);
                        continue;
                    }
                    Unreachable::FirstReport(_) | Unreachable::NoSession => {}
                }
            }
            self.network_error(
                ICMP_ERROR,
                failure.remote,
                failure.kind,
                // Addresses stay out of free text: they are in their own fields, where the
                // privacy mode applies.
                format_args!("the peer's host or network refused an earlier datagram (ICMP)"),
            );
        }
        self.send_failures = kept;
    }

    fn transmit(&mut self) {
        if !self.socket_writable {
            return;
        }
        let mut socket_errors = 0;
        loop {
            let (result, waiting) = {
                let transmits = self.endpoint.transmits();
                if transmits.is_empty() {
                    return;
                }
                let waiting = transmits.len();
                let result = self.io.send_batch(&transmits);
                if let Ok(n) = result {
                    for sent in transmits.iter().take(n) {
                        self.stats.bytes_out += sent.data.len() as u64;
                    }
                }
                (result, waiting)
            };
            match result {
                Ok(n) => {
                    self.stats.datagrams_out += n as u64;
                    self.endpoint.consume_transmits(n);
                    if n == 0 {
                        // Kernel buffer full: wait for the writable edge.
                        self.socket_writable = false;
                        return;
                    }
                    if n < waiting {
                        // A batch cut short after some went out is not a full buffer: an ICMP
                        // port unreachable for one of them (a peer whose socket is gone) fails
                        // the next send with that earlier error. Stopping here would leave the
                        // rest for a writable edge that need not come, and on shutdown lose
                        // them (the REJECTs of every other pending handshake). Go on: a full
                        // buffer shows as a send of nothing.
                        socket_errors = 0;
                    }
                }
                Err(e)
                    if e.kind() == std::io::ErrorKind::ConnectionRefused && socket_errors < 4 =>
                {
                    // Not about this datagram: the socket's pending error from an earlier ICMP
                    // port unreachable (which peer is in the error queue). The datagram was not
                    // sent; send it again, and report the error once, from the queue, where
                    // it names its peer.
                    socket_errors += 1;
                    self.io.note_pending_errors();
                    self.take_send_failures();
                }
                Err(e) => {
                    // One unsendable datagram (e.g. unreachable network) must not block the
                    // rest; KCP retransmits its data.
                    self.stats.send_errors += 1;
                    debug!(error = %e, "send failed");
                    let peer = self.endpoint.transmits().get(0).map(|t| t.destination);
                    self.endpoint.consume_transmits(1);
                    if let Some(peer) = peer {
                        self.network_error(
                            SEND_FAILURE,
                            peer,
                            crate::errno::name(&e),
                            format_args!("send failed: {e}"),
                        );
                    }
                    self.take_send_failures();
                }
            }
        }
    }

    /// A `tracing` span per connection, for diagnostics with a subscriber installed (an
    /// embedding Rust program, a debugging build). Without one the span is disabled and
    /// nothing is kept.
    fn open_span(&mut self, handle: ConnectionHandle) {
        let Some(info) = self.endpoint.connection_info(handle) else {
            return;
        };
        let span = debug_span!(
            "kcp_connection",
            uid = %info.uid,
            conv = info.conv,
            peer = %info.remote,
            local = %info.local
        );
        if span.is_disabled() {
            return;
        }
        span.in_scope(|| debug!("established"));
        self.spans.insert(handle, span);
    }

    fn collect_events(&mut self) {
        while let Some(event) = self.endpoint.poll_event() {
            match event {
                // The event carries the connection: it may have closed in this same turn, and
                // its close record must follow an accepted or established one.
                EndpointEvent::Accepted { handle, info } => {
                    self.open_span(handle);
                    let peer = Peer {
                        remote: info.remote,
                        local: info.local,
                        uid: info.uid.as_str(),
                    };
                    self.writer.accepted(
                        handle.to_bits(),
                        info.conv,
                        &peer,
                        (info.max_message_size, info.max_datagram_size),
                    );
                }
                EndpointEvent::Readable { handle } => self.readable.push(handle),
                EndpointEvent::Established { handle, info } => {
                    self.writer.established(
                        handle.to_bits(),
                        info.conv,
                        (info.max_message_size, info.max_datagram_size),
                    );
                }
                EndpointEvent::ConnectFailed {
                    handle,
                    reason,
                    app_code,
                } => {
                    self.spans.remove(&handle);
                    self.writer
                        .connect_failed(handle.to_bits(), reason.as_str(), app_code);
                }
                EndpointEvent::AuthRequest {
                    id,
                    uid,
                    remote,
                    local,
                    token,
                } => {
                    let peer = Peer {
                        remote,
                        local,
                        uid: uid.as_str(),
                    };
                    self.writer.auth_request(id, &peer, &token);
                }
                EndpointEvent::Closed {
                    handle,
                    reason,
                    summary,
                    peer_reason,
                    app_close,
                    unread,
                } => {
                    // Messages that arrived before the close are delivered first: the engine
                    // handed over what it still held (acknowledged to the peer), paused
                    // connection or not, and whether or not delivery is past its limit (the
                    // excess is bounded by the receive window). Its datagrams too, within
                    // their budget.
                    self.deliver_datagrams_of(Some(handle));
                    for message in unread.iter() {
                        self.writer
                            .message_slot(handle.to_bits(), message.len())
                            .copy_from_slice(message);
                    }
                    self.readable.retain(|h| *h != handle);
                    self.watched.remove(&handle);
                    self.delivery_paused.remove(&handle);
                    if let Some(span) = self.spans.remove(&handle) {
                        span.in_scope(|| {
                            debug!(
                                reason = reason.as_str(),
                                duration_ms = summary.duration_ms,
                                bytes_in = summary.bytes_in,
                                bytes_out = summary.bytes_out,
                                "closed"
                            )
                        });
                    }
                    let closing = Closing {
                        reason,
                        peer_reason,
                        summary: &summary,
                        app_close: &app_close,
                    };
                    self.writer.closed(handle.to_bits(), &closing);
                }
            }
        }
    }

    fn deliver_datagrams(&mut self) {
        if self.endpoint.has_datagrams() {
            self.deliver_datagrams_of(None);
        }
    }

    /// Stages received datagrams (of one connection, or all) as records while their budget
    /// lasts; the rest are dropped, and the endpoint counts them.
    fn deliver_datagrams_of(&mut self, handle: Option<ConnectionHandle>) {
        let mut room = self
            .shared
            .delivery
            .datagram_room(self.writer.datagram_bytes());
        let writer = &mut self.writer;
        let deliver = |h: ConnectionHandle, channel: u8, payload: &[u8]| {
            let need = RecordWriter::datagram_record_len(payload.len());
            if need > room {
                return false;
            }
            room -= need;
            writer.datagram(h.to_bits(), channel, payload);
            true
        };
        match handle {
            Some(h) => self.endpoint.take_datagrams_of(h, deliver),
            None => self.endpoint.take_datagrams(deliver),
        }
    }

    /// Stages readable messages as records, at most `budget` bytes of them (and one message):
    /// the ring's room when this turn took its commands (see [`IoThread::turn`]).
    fn deliver_messages(&mut self, mut budget: usize) {
        if self.readable.is_empty() {
            return;
        }
        if budget == 0 {
            return;
        }
        let mut i = 0;
        while i < self.readable.len() {
            let handle = self.readable[i];
            if self.delivery_paused.contains(&handle) {
                i += 1;
                continue;
            }
            let mut drained = false;
            // Bound what one connection contributes per turn so one busy peer cannot starve
            // the others.
            for _ in 0..256 {
                match self.endpoint.peek_size(handle) {
                    Some(_) if budget == 0 => break,
                    Some(size) => {
                        budget = budget.saturating_sub(size + 9);
                        let slot = self.writer.message_slot(handle.to_bits(), size);
                        let written = self.endpoint.recv(handle, slot).unwrap_or(0);
                        self.writer.finish_message(size, written);
                    }
                    None => {
                        let _ = self.endpoint.recv(handle, &mut []);
                        drained = true;
                        break;
                    }
                }
            }
            if drained {
                self.readable.swap_remove(i);
            } else {
                i += 1;
            }
        }
    }

    fn report_progress(&mut self) {
        if self.watched.is_empty() {
            return;
        }
        let endpoint = &self.endpoint;
        let writer = &mut self.writer;
        self.watched.retain(|&handle, last| {
            let Some(acked) = endpoint.acked_bytes(handle) else {
                return false;
            };
            if acked != *last {
                *last = acked;
                writer.progress(handle.to_bits(), acked);
            }
            endpoint.waiting_bytes(handle).unwrap_or(0) > 0
        });
    }
}

//! The handle the binding holds: starts the I/O thread, sends it commands, takes its records,
//! and stops and joins it.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, unbounded, Sender};
use kcpwatch_proto::SessionConfig;

use kcpwatch_proto::events::{CappedText, ErrorEvent, ErrorType};
use kcpwatch_proto::uid::UidGenerator;
use kcpwatch_proto::SecurityEvent;

pub use crate::config::RuntimeConfig;
pub use crate::connected::ConnectedInfo;
use crate::delivery::DeliveryQueue;
use crate::error::RuntimeError;
use crate::events::clock::unix_micros;
use crate::events::log_thread::write_one;
use crate::events::{EventRing, LogThread, Outbox};
use crate::io_thread::{BoundSocket, Command, EventsLink, IoThread, LoopReception, Shared};
use crate::socket;
pub use crate::stats::RuntimeStats;

/// Called on a background thread when something is ready for JavaScript.
pub type Notify = Box<dyn Fn() + Send + Sync>;

/// A running endpoint: one socket, one I/O thread.
pub struct Runtime {
    local_addr: SocketAddr,
    commands: Sender<Command>,
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
    log: Mutex<Option<LogThread>>,
    outbox: Arc<Outbox>,
    stopped: AtomicBool,
    /// The socket's descriptor, for a watcher on the event loop (`Runtime::socket_fd`).
    #[cfg(unix)]
    socket_fd: std::os::fd::RawFd,
}

impl Runtime {
    /// Binds the socket and starts the I/O thread. `notify` runs on the I/O thread whenever
    /// records become available after the queue was empty.
    /// `notify_events` runs on the log thread whenever security records for JavaScript
    /// become available after none were waiting (only while delivery to JavaScript is on).
    pub fn start(
        mut config: RuntimeConfig,
        notify: Notify,
        notify_events: Notify,
    ) -> Result<Self, RuntimeError> {
        config.endpoint.session.validate()?;
        if let Some(log) = config.log.as_mut() {
            if log.observer.instance.is_empty() {
                log.observer.instance = listener_instance();
            }
        }
        let std_socket = match socket::bind(config.bind, config.socket) {
            Ok(socket) => socket,
            Err(source) => {
                let record = config.log.as_ref().map(|log| {
                    // No thread exists yet; this one record is written from here.
                    let mut writer = log.writer();
                    let event = SecurityEvent::Error(ErrorEvent {
                        conn: None,
                        peer: None,
                        local: Some(config.bind),
                        error_type: ErrorType::Network,
                        code: crate::errno::name(&source),
                        // The address is in `local_ip`/`local_port`, where the privacy mode
                        // applies.
                        message: CappedText::format(format_args!("cannot bind: {source}")),
                        suppressed: 0,
                    });
                    write_one(&mut writer, &log.outputs, event)
                });
                return Err(RuntimeError::Bind {
                    addr: config.bind,
                    source,
                    record,
                });
            }
        };
        Self::start_on(std_socket, config, notify, notify_events)
    }

    /// Starts a client endpoint: binds an ephemeral port on the interface that routes to
    /// `remote`, so the connection reports its real local address.
    pub fn start_client(
        remote: SocketAddr,
        mut config: RuntimeConfig,
        notify: Notify,
        notify_events: Notify,
    ) -> Result<Self, RuntimeError> {
        let probe = UdpSocket::bind(socket::unspecified_for(remote))
            .and_then(|s| s.connect(remote).and(s.local_addr()));
        config.bind = match probe {
            Ok(local) => SocketAddr::new(local.ip(), 0),
            Err(_) => socket::unspecified_for(remote),
        };
        config.endpoint.accept_inbound = false;
        Self::start(config, notify, notify_events)
    }

    fn start_on(
        std_socket: UdpSocket,
        mut config: RuntimeConfig,
        notify: Notify,
        notify_events: Notify,
    ) -> Result<Self, RuntimeError> {
        let local_addr = socket::normalize(std_socket.local_addr().map_err(RuntimeError::Setup)?);
        #[cfg(unix)]
        let socket_fd = std::os::fd::AsRawFd::as_raw_fd(&std_socket);
        let poll = mio::Poll::new().map_err(RuntimeError::Setup)?;
        let waker = mio::Waker::new(poll.registry(), crate::io_thread::WAKER)
            .map_err(RuntimeError::Setup)?;
        let outbox_limit = config.log.as_ref().map_or(0, |l| l.outbox_limit);
        let outbox = Arc::new(Outbox::new(outbox_limit, notify_events));
        outbox.set_enabled(config.log.as_ref().is_some_and(|l| l.deliver_to_js));
        let (events, log) = match &config.log {
            Some(log) => {
                config.endpoint.event_level = Some(log.level);
                config.endpoint.sample_burst = log.sample_burst;
                config.endpoint.sample_window_ms = log.sample_window_ms;
                let ring = Arc::new(EventRing::new(log.ring_capacity));
                let writer = log.writer();
                let thread = LogThread::start(
                    ring.clone(),
                    writer,
                    log.outputs.clone(),
                    outbox.clone(),
                    format!("{}-log", config.thread_name),
                )?;
                let link = EventsLink {
                    ring,
                    consumer: thread.thread().clone(),
                    stats_interval_ms: log.stats_interval_ms,
                };
                (Some(link), Some(thread))
            }
            None => {
                config.endpoint.event_level = None;
                (None, None)
            }
        };
        let shared = Arc::new(Shared {
            waker,
            delivery: DeliveryQueue::new(config.delivery_limit, notify),
            paused: AtomicBool::new(false),
            datagram_backlog: Default::default(),
            events,
            stages: crate::stage_trace::StageShared::from_env(),
            io: Mutex::new(None),
            final_stats: Mutex::new(None),
            reception: Default::default(),
        });
        let (tx, rx) = unbounded();
        // The endpoint is built on the thread that runs it; setup failures come back over
        // `ready`.
        let (ready, setup) = bounded(1);
        let thread_shared = shared.clone();
        let thread_config = config.clone();
        let thread = std::thread::Builder::new()
            .name(config.thread_name.clone())
            .spawn(move || {
                let bound = BoundSocket {
                    poll,
                    socket: mio::net::UdpSocket::from_std(std_socket),
                    local: local_addr,
                };
                match IoThread::new(bound, thread_config, rx, thread_shared.clone()) {
                    Ok((io, poll)) => {
                        *thread_shared.lock_io() = Some(io);
                        let _ = ready.send(Ok(()));
                        IoThread::run(poll, thread_shared);
                    }
                    Err(e) => {
                        let _ = ready.send(Err(e));
                    }
                }
            })
            .map_err(RuntimeError::Setup)?;
        if let Ok(Err(e)) | Err(e) = setup.recv().map_err(|_| RuntimeError::Closed) {
            let _ = thread.join();
            return Err(e);
        }
        Ok(Self {
            local_addr,
            commands: tx,
            shared,
            thread: Mutex::new(Some(thread)),
            log: Mutex::new(log),
            outbox,
            stopped: AtomicBool::new(false),
            #[cfg(unix)]
            socket_fd,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    fn command(&self, command: Command) -> Result<(), RuntimeError> {
        if self.stopped.load(Ordering::Acquire) {
            return Err(RuntimeError::Closed);
        }
        self.commands
            .send(command)
            .map_err(|_| RuntimeError::Closed)?;
        let _ = self.shared.waker.wake();
        Ok(())
    }

    /// Answers an authentication request (see `RecordKind::AuthRequest`).
    pub fn resolve_auth(&self, id: u64, accept: bool) -> Result<(), RuntimeError> {
        self.command(Command::ResolveAuth(id, accept))
    }

    /// Accepts an authentication request naming the user: every record of the connection
    /// carries it (`user_id`, through the privacy mode).
    pub fn resolve_auth_as(
        &self,
        id: u64,
        user: kcpwatch_proto::events::UserId,
    ) -> Result<(), RuntimeError> {
        self.command(Command::ResolveAuthAs(id, Box::new(user)))
    }

    /// Refuses an authentication request with the application's reason code (1..=65535),
    /// which the client receives in the REJECT.
    pub fn reject_auth(&self, id: u64, app_code: u16) -> Result<(), RuntimeError> {
        self.command(Command::RejectAuth(id, app_code))
    }

    /// Opens a connection to `remote`; returns its handle, id and local address. In secure
    /// mode the handshake starts: `RecordKind::Established` or `ConnectFailed` follows, and
    /// `conv` is ignored (the server assigns it); `token` goes to the server's `authenticate`.
    pub fn connect(
        &self,
        remote: SocketAddr,
        conv: u32,
        token: Vec<u8>,
        session: Option<SessionConfig>,
    ) -> Result<ConnectedInfo, RuntimeError> {
        let (reply, answer) = bounded(1);
        self.command(Command::Connect {
            remote,
            conv,
            token,
            session,
            reply,
        })?;
        answer.recv().map_err(|_| RuntimeError::Closed)?
    }

    /// Queues a packed batch of messages: per message `handle: u32, len: u32, flags: u8` then
    /// the bytes. Flag bit 0 asks for `Progress` records until the queue drains; bit 1 marks
    /// a refusal report (no bytes follow); bit 2 a delivery control (no bytes follow; bits 4..8:
    /// 1 pauses the connection's message delivery, 2 resumes it).
    ///
    /// A small batch (at most [`SEND_ON_CALLER_MAX_BYTES`]) is applied and sent on the
    /// calling thread while the I/O thread sleeps and no earlier command waits, sparing the
    /// reply a thread hand-off; otherwise it is queued, in order, for the I/O thread.
    pub fn send_batch(&self, batch: &[u8]) -> Result<(), RuntimeError> {
        if let Some(stages) = &self.shared.stages {
            stages.command_queued();
        }
        if let Ok(mut guard) = self.shared.io.try_lock() {
            if let Some(io) = guard.as_mut() {
                // An empty queue: nothing sent earlier can be overtaken (the I/O thread takes
                // commands only while it holds `io`).
                if batch.len() <= SEND_ON_CALLER_MAX_BYTES
                    && io.asleep()
                    && self.commands.is_empty()
                    && !self.stopped.load(Ordering::Acquire)
                {
                    let wake = io.send_now(batch);
                    drop(guard);
                    if wake {
                        let _ = self.shared.waker.wake();
                    }
                    return Ok(());
                }
            }
        }
        self.command(Command::Send(batch.to_vec()))
    }

    /// The socket's descriptor, for a watcher on the event loop that calls
    /// [`Runtime::receive_on_loop`] when it is readable. The watcher must stop before
    /// [`Runtime::shutdown`], which closes it; a watcher that must outlive the runtime
    /// watches a duplicate.
    #[cfg(unix)]
    pub fn socket_fd(&self) -> std::os::fd::RawFd {
        self.socket_fd
    }

    /// Lets the I/O thread hand reception to the event loop whenever it sleeps with the
    /// socket drained: the binding has a watcher there (see [`Runtime::receive_on_loop`]).
    pub fn enable_loop_reception(&self) {
        self.shared.reception.enabled.store(true, Ordering::Release);
        // It may sleep already, with nothing to wake it before the first datagram.
        let _ = self.shared.waker.wake();
    }

    /// Whether the I/O thread handed reception over since the last call: the event loop's
    /// watcher is to start now. Asked each time JavaScript takes its records, which the
    /// hand-over makes it do.
    pub fn loop_watch_wanted(&self) -> bool {
        self.shared
            .reception
            .watch_wanted
            .swap(false, Ordering::AcqRel)
    }

    /// The event loop's watcher saw the socket readable: runs a receive turn on this thread
    /// if reception is with the event loop and the I/O thread sleeps; otherwise, or when the
    /// turn finds more than it should handle here, gives reception back to the I/O thread.
    /// The turn's records are published without the usual notification: the caller, on
    /// JavaScript's thread, hands them over itself when [`Runtime::records_waiting`], or calls
    /// [`Runtime::announce_records`] if it cannot.
    pub fn receive_on_loop(&self) -> LoopReception {
        if !self.shared.reception.on_loop.load(Ordering::Acquire) {
            return LoopReception::Stop;
        }
        if self.stopped.load(Ordering::Acquire) {
            return LoopReception::Stop;
        }
        let Ok(mut guard) = self.shared.io.try_lock() else {
            return self.shared.reception_to_io_thread();
        };
        let Some(io) = guard.as_mut() else {
            return LoopReception::Stop;
        };
        if !io.asleep() || !self.commands.is_empty() {
            drop(guard);
            return self.shared.reception_to_io_thread();
        }
        let (keep, wake) = io.receive_now();
        drop(guard);
        if keep == LoopReception::Stop {
            return self.shared.reception_to_io_thread();
        }
        if wake {
            let _ = self.shared.waker.wake();
        }
        LoopReception::Watch
    }

    /// Whether records wait for JavaScript to take them.
    pub fn records_waiting(&self) -> bool {
        self.shared.delivery.is_waiting()
    }

    /// Sends the records notification, as a publish does: for a caller of
    /// [`Runtime::receive_on_loop`] that could not hand the records over itself.
    pub fn announce_records(&self) {
        self.shared.delivery.notify_consumer();
    }

    /// The event loop's watcher stopped by itself: the I/O thread reads the socket again, and
    /// hands it over again the next time it sleeps.
    pub fn give_reception_back(&self) {
        let _ = self.shared.reception_to_io_thread();
    }

    /// The event loop's watcher is gone: the I/O thread reads the socket from now on.
    pub fn stop_loop_reception(&self) {
        self.shared
            .reception
            .enabled
            .store(false, Ordering::Release);
        let _ = self.shared.reception_to_io_thread();
    }

    /// The bench's stage trace so far (see `stage_trace`); `None` when the trace is off.
    pub fn stage_samples(&self) -> Option<crate::stage_trace::StageReport> {
        let stages = self.shared.stages.as_ref()?;
        let samples = stages.samples.lock().ok()?;
        Some(samples.report())
    }

    /// Stage trace: when the oldest records JavaScript is about to take were staged, in
    /// `CLOCK_MONOTONIC` nanoseconds (0: the trace is off or nothing new).
    pub fn take_staged_at(&self) -> u64 {
        self.shared
            .stages
            .as_ref()
            .map_or(0, |stages| stages.take_staged_at())
    }

    /// Queues a batch of unreliable datagrams (secure mode; layout in `datagram_batch`).
    /// Returns the bytes of datagram batches not yet applied by the I/O thread, this one
    /// included, so the binding can refuse more while the thread is behind.
    pub fn send_datagram_batch(&self, batch: Vec<u8>) -> Result<usize, RuntimeError> {
        let len = batch.len();
        let backlog = self
            .shared
            .datagram_backlog
            .fetch_add(len, Ordering::AcqRel)
            + len;
        if let Err(e) = self.command(Command::SendDatagrams(batch)) {
            self.shared
                .datagram_backlog
                .fetch_sub(len, Ordering::AcqRel);
            return Err(e);
        }
        Ok(backlog)
    }

    /// Bytes of datagram batches the I/O thread has not applied yet.
    pub fn datagram_backlog(&self) -> usize {
        self.shared.datagram_backlog.load(Ordering::Acquire)
    }

    /// Closes a connection gracefully.
    pub fn close_connection(&self, handle: u32) -> Result<(), RuntimeError> {
        self.command(Command::Close(handle))
    }

    /// Closes a connection gracefully with the application's close code and text (code 0:
    /// none). A secure session's DISCONNECT carries them to the peer; raw KCP cannot, so they
    /// only appear in this side's records.
    pub fn close_connection_with(
        &self,
        handle: u32,
        close: kcpwatch_proto::AppClose,
    ) -> Result<(), RuntimeError> {
        self.command(Command::CloseWith(handle, close))
    }

    /// Closes every connection gracefully with `shutdown` (queued data keeps flowing for at
    /// most `linger_ms`, each connection's own linger when `None`) and accepts no new ones.
    /// Returns at once: the close records follow as each connection finishes; call
    /// [`Runtime::shutdown`] to end what is left.
    pub fn close_all(&self, linger_ms: Option<u32>) -> Result<(), RuntimeError> {
        self.command(Command::CloseAll(linger_ms))
    }

    /// Makes the next engine call of a connection panic (fault drills and tests).
    pub fn inject_fault(&self, handle: u32) -> Result<(), RuntimeError> {
        self.command(Command::InjectFault(handle))
    }

    /// Counters, read on the I/O thread so they are consistent with each other; after
    /// [`Runtime::shutdown`], the totals it ended with.
    pub fn stats(&self) -> Result<RuntimeStats, RuntimeError> {
        let mut stats = if self.stopped.load(Ordering::Acquire) {
            // After shutdown: the totals the I/O thread left, the closes included.
            let left = self.shared.final_stats.lock();
            let left = left.unwrap_or_else(std::sync::PoisonError::into_inner);
            left.clone().ok_or(RuntimeError::Closed)?
        } else {
            let (reply, answer) = bounded(1);
            self.command(Command::Stats(reply))?;
            answer.recv().map_err(|_| RuntimeError::Closed)?
        };
        if let Some(link) = &self.shared.events {
            stats.events_produced = link.ring.produced();
            stats.events_lost = link.ring.lost();
        }
        stats.events_lost_js = self.outbox.lost();
        stats.events_lost_output = self.outbox.output_lost();
        Ok(stats)
    }

    /// A live connection's counters so far; `None` for an unknown or closed handle.
    pub fn connection_stats(
        &self,
        handle: u32,
    ) -> Result<Option<kcpwatch_proto::ConnectionSummary>, RuntimeError> {
        let (reply, answer) = bounded(1);
        self.command(Command::ConnectionStats(handle, reply))?;
        answer.recv().map_err(|_| RuntimeError::Closed)
    }

    /// Security records produced and lost so far; readable after shutdown too, so the final
    /// accounting (delivered + reported lost = produced) can be checked.
    pub fn event_totals(&self) -> (u64, u64) {
        self.shared
            .events
            .as_ref()
            .map_or((0, 0), |link| (link.ring.produced(), link.ring.lost()))
    }

    /// Starts or stops handing security records to JavaScript ([`Runtime::take_events`]).
    pub fn set_event_delivery(&self, enabled: bool) {
        self.outbox.set_enabled(enabled);
    }

    /// Takes the security records waiting for JavaScript: canonical NDJSON lines.
    pub fn take_events(&self) -> Vec<u8> {
        self.outbox.take()
    }

    /// Stops or resumes the log thread's consumption (drills and tests of a stalled consumer;
    /// the I/O thread keeps running and the ring counts what it cannot hold).
    pub fn pause_event_consumer(&self, paused: bool) {
        if let Some(log) = self.log.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            log.set_paused(paused);
        }
    }

    /// Takes every record published so far (see [`crate::delivery`]).
    pub fn take_records(&self) -> Vec<u8> {
        let records = self.shared.delivery.take();
        if self.shared.paused.swap(false, Ordering::AcqRel) {
            let _ = self.shared.waker.wake();
        }
        records
    }

    /// Ends every connection with `shutdown`, stops the I/O thread and joins it. The final
    /// records (one close per connection) stay available to [`Runtime::take_records`].
    /// Idempotent.
    pub fn shutdown(&self) {
        if self.stopped.swap(true, Ordering::AcqRel) {
            return;
        }
        // A paused consumer (a drill) resumes first: shutdown waits briefly for room for the
        // final records.
        if let Some(log) = self.log.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            log.set_paused(false);
        }
        let _ = self.commands.send(Command::Shutdown);
        let _ = self.shared.waker.wake();
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
        // After the producer: the log thread writes what is left, including the final loss
        // report and `kcp:listener_stopped`.
        let log = self.log.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(mut log) = log {
            log.set_paused(false);
            log.finish();
        }
    }

    /// Whether [`Runtime::shutdown`] has run.
    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The largest send batch the caller's thread sends itself (`Runtime::send_batch`): a few
/// small messages, a JavaScript turn that answered one or two players. A larger batch is the
/// sign of a busy event loop, which must not take on the I/O thread's system calls: sending
/// every batch on the caller measured 25-30% less echo throughput with kcpwatch's own Node load
/// on two vCPUs; this bound measured within the runs' noise of queueing all, and kept the
/// ping-pong gain (docs/performance.md, "Where a round trip goes").
pub const SEND_ON_CALLER_MAX_BYTES: usize = 1024;

/// An id for this listener's run, written as `observer_instance`: time-sortable and unique
/// across processes, like connection ids, with an `L` in place of the `K`.
fn listener_instance() -> String {
    let mut seed = [0u8; 8];
    let _ = getrandom::getrandom(&mut seed);
    let uid = UidGenerator::new(u64::from_le_bytes(seed)).next(unix_micros() / 1000);
    format!("L{}", &uid.as_str()[1..])
}

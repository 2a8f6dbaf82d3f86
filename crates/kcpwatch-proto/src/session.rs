//! One KCP conversation behind the segment guard, with its liveness rules and counters.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;

use kcp::Kcp;

use crate::clock::{diff, Millis};
use crate::config::SessionConfig;
use crate::guard::{self, DatagramSummary, GuardContext, GuardViolation, InFlightTimes};
use crate::lifecycle::{CloseReason, ConnectionState};
use crate::transmit::{Transmits, TxSink};
use crate::uid::Uid;

/// Window probes start this soon after the peer advertises a zero window and back off to at
/// most `PROBE_LIMIT_MS`: a forged zero window (DESIGN §3 case E) then stalls the sender for
/// well under a second instead of KCP's 7 to 120 seconds.
const PROBE_INIT_MS: u32 = 100;
const PROBE_LIMIT_MS: u32 = 1_000;

/// Why `send` refused a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionSendError {
    /// The message is larger than `max_message_size`.
    #[error("message of {size} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// Message size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Accepting the message would exceed `max_send_queue_bytes`.
    #[error("send queue full: {queued} bytes queued, limit {limit}")]
    QueueFull {
        /// Bytes already queued.
        queued: usize,
        /// The limit.
        limit: usize,
    },
    /// The connection is closing or closed.
    #[error("connection is not open")]
    NotOpen,
    /// Empty messages cannot be represented in KCP message mode.
    #[error("empty message")]
    Empty,
}

/// The one-record view of a connection (DESIGN §5, the close summary).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionSummary {
    /// Connection id.
    pub uid: Uid,
    /// KCP conversation id.
    pub conv: u32,
    /// The peer.
    pub remote: SocketAddr,
    /// Our address the peer talks to.
    pub local: SocketAddr,
    /// Milliseconds from establishment to the summary.
    pub duration_ms: u64,
    /// Datagrams received and accepted by the guard.
    pub datagrams_in: u64,
    /// Bytes of accepted datagrams.
    pub bytes_in: u64,
    /// Datagrams produced.
    pub datagrams_out: u64,
    /// Bytes of produced datagrams.
    pub bytes_out: u64,
    /// Application payload bytes delivered to the application.
    pub payload_bytes_in: u64,
    /// Application payload bytes accepted from the application.
    pub payload_bytes_out: u64,
    /// Messages (or stream chunks) delivered.
    pub messages_in: u64,
    /// Messages accepted by `send`.
    pub messages_out: u64,
    /// Datagrams for this session refused by the guard.
    pub guard_drops: u64,
    /// Smoothed RTT in ms.
    pub srtt_ms: u32,
    /// RTT variance in ms.
    pub rttvar_ms: u32,
    /// Current retransmission timeout in ms.
    pub rto_ms: u32,
    /// Engine counters.
    pub engine: kcp::KcpCounters,
}

pub(crate) struct Session {
    kcp: Kcp<TxSink>,
    pub(crate) uid: Uid,
    pub(crate) conv: u32,
    pub(crate) remote: SocketAddr,
    pub(crate) local: SocketAddr,
    pub(crate) config: SessionConfig,
    pub(crate) state: ConnectionState,
    started_at: Millis,
    started_at_extended: u64,
    last_received: Millis,
    close_deadline: Option<Millis>,
    datagrams_in: u64,
    bytes_in: u64,
    payload_bytes_in: u64,
    payload_bytes_out: u64,
    messages_in: u64,
    messages_out: u64,
    guard_drops: u64,
    /// The application was told there is data and has not drained it yet.
    pub(crate) readable_signalled: bool,
    /// The session produced or accepted something that should go out before the next tick.
    pub(crate) flush_pending: bool,
    /// Fault injection for tests of the panic containment: the next engine call panics.
    pub(crate) poisoned: bool,
}

impl Session {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        uid: Uid,
        conv: u32,
        remote: SocketAddr,
        local: SocketAddr,
        config: &SessionConfig,
        now: Millis,
        now_extended: u64,
        tx: Rc<RefCell<Transmits>>,
    ) -> Self {
        let sink = TxSink::new(tx, remote, local);
        let mut kcp = if config.stream {
            Kcp::new_stream(conv, sink)
        } else {
            Kcp::new(conv, sink)
        };
        kcp.set_nodelay(
            config.nodelay,
            config.interval_ms as i32,
            config.fast_resend as i32,
            config.no_congestion_window,
        );
        kcp.set_wndsize(config.send_window, config.receive_window);
        // validate() has bounded the MTU to what KCP accepts.
        let _ = kcp.set_mtu(config.mtu);
        if let Some(rto) = config.min_rto_ms {
            kcp.set_rx_minrto(rto);
        }
        kcp.set_maximum_resend_times(config.dead_link);
        kcp.set_probe_wait(PROBE_INIT_MS, PROBE_LIMIT_MS);
        // KCP refuses to flush before its first update; this also starts its clock.
        let _ = kcp.update(now);
        Self {
            kcp,
            uid,
            conv,
            remote,
            local,
            config: config.clone(),
            state: ConnectionState::Established,
            started_at: now,
            started_at_extended: now_extended,
            last_received: now,
            close_deadline: None,
            datagrams_in: 0,
            bytes_in: 0,
            payload_bytes_in: 0,
            payload_bytes_out: 0,
            messages_in: 0,
            messages_out: 0,
            guard_drops: 0,
            readable_signalled: false,
            flush_pending: false,
            poisoned: false,
        }
    }

    fn check_poison(&self) {
        if self.poisoned {
            panic!("kcpwatch: injected engine fault");
        }
    }

    /// Runs the guard, then hands the datagram to the engine.
    pub(crate) fn input(
        &mut self,
        now: Millis,
        datagram: &[u8],
    ) -> Result<DatagramSummary, GuardViolation> {
        self.check_poison();
        let kcp = &self.kcp;
        let in_flight = |sn: u32| {
            kcp.in_flight(sn).map(|f| InFlightTimes {
                first_ts: f.first_ts,
                last_ts: f.last_ts,
            })
        };
        let ctx = GuardContext {
            conv: self.conv,
            mss: self.config.receive_mss(),
            max_fragments: self.config.max_fragments(),
            rcv_nxt: kcp.rcv_nxt(),
            rcv_wnd: self.config.receive_window,
            snd_una: kcp.snd_una(),
            snd_nxt: kcp.snd_nxt(),
            now,
            session_start: self.started_at,
            in_flight: &in_flight,
        };
        let summary = match guard::validate(&ctx, datagram) {
            Ok(summary) => summary,
            Err(violation) => {
                self.guard_drops += 1;
                return Err(violation);
            }
        };
        self.kcp.set_current(now);
        // The guard accepted every segment, so the engine has nothing left to refuse.
        let _ = self.kcp.input(datagram);
        self.datagrams_in += 1;
        self.bytes_in += datagram.len() as u64;
        self.last_received = now;
        self.flush_pending = true;
        Ok(summary)
    }

    /// Lets the engine retransmit and flush on its own schedule.
    pub(crate) fn update(&mut self, now: Millis) {
        self.check_poison();
        let _ = self.kcp.update(now);
        // ikcp's check() reports a due retransmission as "now" even when update() will not
        // flush until its interval tick; flushing here keeps a caller that sleeps until
        // check() from spinning for up to one interval.
        if self.kcp.check(now) == 0 {
            let _ = self.kcp.flush();
        }
    }

    /// Sends ACKs and newly queued data now rather than at the next interval.
    pub(crate) fn flush(&mut self, now: Millis) {
        self.check_poison();
        self.flush_pending = false;
        self.kcp.set_current(now);
        let _ = self.kcp.flush();
    }

    pub(crate) fn send(&mut self, data: &[u8]) -> Result<(), SessionSendError> {
        self.check_poison();
        if self.state != ConnectionState::Established {
            return Err(SessionSendError::NotOpen);
        }
        if data.is_empty() {
            return Err(SessionSendError::Empty);
        }
        if !self.config.stream && data.len() > self.config.max_message_size {
            return Err(SessionSendError::TooLarge {
                size: data.len(),
                limit: self.config.max_message_size,
            });
        }
        let queued = self.kcp.waiting_bytes();
        if queued + data.len() > self.config.max_send_queue_bytes {
            return Err(SessionSendError::QueueFull {
                queued,
                limit: self.config.max_send_queue_bytes,
            });
        }
        if self.config.stream {
            // KCP refuses a single call that needs 128 fragments or more.
            let chunk = self.config.mss() * 64;
            for piece in data.chunks(chunk) {
                let _ = self.kcp.send(piece);
            }
        } else {
            let _ = self.kcp.send(data);
        }
        self.payload_bytes_out += data.len() as u64;
        self.messages_out += 1;
        self.flush_pending = true;
        Ok(())
    }

    /// Size of the next complete message (or stream chunk), if one is ready.
    pub(crate) fn peek_size(&self) -> Option<usize> {
        self.kcp.peeksize().ok()
    }

    /// Moves the next message into `buf`, which must hold `peek_size()` bytes.
    pub(crate) fn recv(&mut self, buf: &mut [u8]) -> Option<usize> {
        self.check_poison();
        let n = self.kcp.recv(buf).ok()?;
        self.payload_bytes_in += n as u64;
        self.messages_in += 1;
        // Reading may reopen the receive window; tell the peer promptly.
        self.flush_pending = true;
        Some(n)
    }

    pub(crate) fn begin_close(&mut self, now: Millis) {
        if self.state == ConnectionState::Established {
            self.state = ConnectionState::Closing;
            self.close_deadline = Some(now.wrapping_add(self.config.linger_ms));
        }
    }

    /// The reason this session must end now, if any.
    pub(crate) fn liveness(&self, now: Millis) -> Option<CloseReason> {
        if self.kcp.is_dead_link() {
            return Some(CloseReason::DeadLink);
        }
        if self.state == ConnectionState::Closing {
            let flushed = self.kcp.waiting_bytes() == 0;
            let expired = self.close_deadline.is_some_and(|d| diff(now, d) >= 0);
            if flushed || expired {
                return Some(CloseReason::LocalClosed);
            }
        }
        if diff(now, self.last_received) >= self.config.idle_timeout_ms as i32 {
            return Some(CloseReason::IdleTimeout);
        }
        None
    }

    /// When this session next needs the endpoint's attention.
    pub(crate) fn next_deadline(&self, now: Millis) -> Millis {
        let engine = now.wrapping_add(self.kcp.check(now));
        let idle = self.last_received.wrapping_add(self.config.idle_timeout_ms);
        let mut deadline = if diff(idle, engine) < 0 { idle } else { engine };
        if let Some(close) = self.close_deadline {
            if diff(close, deadline) < 0 {
                deadline = close;
            }
        }
        deadline
    }

    pub(crate) fn waiting_bytes(&self) -> usize {
        self.kcp.waiting_bytes()
    }

    pub(crate) fn acked_bytes(&self) -> u64 {
        self.kcp.acked_bytes()
    }

    pub(crate) fn summary(&self, now_extended: u64) -> ConnectionSummary {
        let sink = self.kcp.output_ref();
        ConnectionSummary {
            uid: self.uid,
            conv: self.conv,
            remote: self.remote,
            local: self.local,
            duration_ms: now_extended.saturating_sub(self.started_at_extended),
            datagrams_in: self.datagrams_in,
            bytes_in: self.bytes_in,
            datagrams_out: sink.datagrams,
            bytes_out: sink.bytes,
            payload_bytes_in: self.payload_bytes_in,
            payload_bytes_out: self.payload_bytes_out,
            messages_in: self.messages_in,
            messages_out: self.messages_out,
            guard_drops: self.guard_drops,
            srtt_ms: self.kcp.srtt(),
            rttvar_ms: self.kcp.rttvar(),
            rto_ms: self.kcp.rto(),
            engine: self.kcp.counters(),
        }
    }
}

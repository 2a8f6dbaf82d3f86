//! One KCP conversation behind the segment guard, with its liveness rules and counters.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use kcp::Kcp;

use crate::clock::{diff, Millis};
use crate::config::SessionConfig;
use crate::events::{ConnectionRef, Direction, History};
use crate::guard::{self, GuardContext, GuardViolation, InFlightTimes};
use crate::lifecycle::{CloseReason, ConnectionState};
use crate::transmit::{Transmits, TxSink};
use crate::uid::Uid;

mod error;
mod secure;
mod summary;

pub use crate::events::{AppClose, ConnectionSummary};
pub use error::{EngineError, SessionSendError};
pub(crate) use secure::{ClientHandshake, Protection, SecureState, HELLO_RETRY_MS};

/// Window probes start this soon after the peer advertises a zero window and back off to at
/// most `PROBE_LIMIT_MS`: a forged zero window (defect case E in docs/security.md) then stalls the sender for
/// well under a second instead of KCP's 7 to 120 seconds.
const PROBE_INIT_MS: u32 = 100;
const PROBE_LIMIT_MS: u32 = 1_000;

/// Consecutive ICMP unreachable reports about a session's peer with nothing received from it
/// in between. An episode is tied to the session's last receive time: any datagram from the
/// peer moves that time and so ends the episode.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Unreachability {
    /// Reports in this episode; 0 when there is none.
    pub(crate) reports: u32,
    /// When the episode's first report came.
    pub(crate) since: Millis,
    /// The session's last receive time when the episode began.
    pub(crate) last_received: Millis,
}

/// How long owed ACKs wait for data to carry them. Sent at once, each message of an echo costs
/// the server a datagram of ACKs before its reply (a quarter of an echo's datagrams, and a
/// system call on the path of each message); held this long, the reply carries them, as
/// ikcp and kcp-go do by default (they hold ACKs until the next interval tick, 10-40 ms). One
/// millisecond bounds what a peer that gets no reply waits for its ACK, and so what it adds to
/// its round-trip estimate.
pub(crate) const ACK_DELAY_MS: Millis = 1;

/// An engine given no input and no message for this long gives back the buffers it keeps for
/// traffic (kcp PATCH(16)): an idle player then costs the server its session and keys, not a
/// window's worth of queues from its last burst. Long enough that a session exchanging
/// messages at game rates keeps them (and allocates nothing per message); a session that
/// wakes after a quiet spell allocates them again for its first message.
pub(crate) const ENGINE_TRIM_MS: Millis = 1_000;

pub(crate) struct Session {
    kcp: Kcp<TxSink>,
    pub(crate) uid: Uid,
    pub(crate) conv: u32,
    pub(crate) remote: SocketAddr,
    pub(crate) local: SocketAddr,
    pub(crate) config: SessionConfig,
    /// The largest message `send` accepts (message mode): `config.max_message_size` until a
    /// secure handshake agreed less from the peer's parameters (its `max_message_size`, and its
    /// receive window times our MSS). `config.max_message_size` stays the receive limit.
    pub(crate) send_ceiling: usize,
    /// The largest message queued while a client's handshake ran, checked against the
    /// ceiling the handshake agrees.
    largest_queued: usize,
    pub(crate) state: ConnectionState,
    pub(crate) direction: Direction,
    history: History,
    /// Engine counters when the history was last brought up to date.
    history_seen: kcp::KcpCounters,
    started_at: Millis,
    started_at_extended: u64,
    last_received: Millis,
    /// When the engine last took a datagram or a message (see `ENGINE_TRIM_MS`).
    engine_used_at: Millis,
    close_deadline: Option<Millis>,
    /// What a graceful close reports once flushed or expired: `local_closed` for
    /// `Connection.close()`, `shutdown` for a lingering endpoint shutdown.
    close_reason: CloseReason,
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
    /// ACKs are owed, and wait until this time for a reply to carry them (see `ACK_DELAY_MS`).
    ack_due: Option<Millis>,
    /// Fault injection for tests of the panic containment: the next engine call panics.
    pub(crate) poisoned: bool,
    /// The current episode of ICMP unreachable reports about the peer (see
    /// [`crate::Endpoint::peer_unreachable`]).
    pub(crate) unreachable: Unreachability,
    /// The user id the application's `authenticate` named (secure mode, server).
    pub(crate) user: crate::events::UserId,
    /// Secure mode's per-session state; `None` in raw mode.
    pub(crate) secure: Option<Box<SecureState>>,
    /// The application's close code and text (secure mode: carried by DISCONNECT).
    app_close: AppClose,
    /// Secure mode: why the peer said it closed (its DISCONNECT's reason).
    peer_reason: Option<CloseReason>,
    /// Secure mode: unreliable datagrams sent, received and dropped.
    pub(crate) unreliable: crate::secure::datagram::DatagramCounters,
}

/// Who a new session is: its id, its conv, the peer's address and ours, and which side opened
/// it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Opening {
    pub(crate) uid: Uid,
    pub(crate) conv: u32,
    pub(crate) remote: SocketAddr,
    pub(crate) local: SocketAddr,
    pub(crate) direction: Direction,
}

impl Session {
    /// A session for `opening` with engine `config`, started at `now` (`now_extended` on the
    /// endpoint's extended clock), whose datagrams go to `tx`.
    pub(crate) fn new(
        opening: Opening,
        config: &SessionConfig,
        now: Millis,
        now_extended: u64,
        tx: Arc<Mutex<Transmits>>,
    ) -> Self {
        let Opening {
            uid,
            conv,
            remote,
            local,
            direction,
        } = opening;
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
            config: *config,
            send_ceiling: config.max_message_size,
            largest_queued: 0,
            state: ConnectionState::Established,
            direction,
            history: History::default(),
            history_seen: kcp::KcpCounters::default(),
            started_at: now,
            started_at_extended: now_extended,
            last_received: now,
            engine_used_at: now,
            close_deadline: None,
            close_reason: CloseReason::LocalClosed,
            datagrams_in: 0,
            bytes_in: 0,
            payload_bytes_in: 0,
            payload_bytes_out: 0,
            messages_in: 0,
            messages_out: 0,
            guard_drops: 0,
            readable_signalled: false,
            flush_pending: false,
            ack_due: None,
            poisoned: false,
            unreachable: Unreachability::default(),
            user: crate::events::UserId::NONE,
            secure: None,
            app_close: AppClose::NONE,
            peer_reason: None,
            unreliable: Default::default(),
        }
    }

    /// Raw mode with FEC: every datagram from here on leaves as a kcp-go FEC data shard of
    /// `encoder`, which every session to the same remote shares (one seqid sequence per peer).
    pub(crate) fn enable_fec(&mut self, encoder: Arc<Mutex<crate::fec::Encoder>>) {
        self.kcp.output_mut().fec = Some(encoder);
    }

    /// Notes a tagged control datagram (keepalive, disconnect) from the peer.
    pub(crate) fn note_control_in(&mut self, now: Millis, len: usize) {
        self.datagrams_in += 1;
        self.bytes_in += len as u64;
        self.last_received = now;
    }

    /// The peer showed it is alive without a session datagram (a retransmitted HELLO whose
    /// ACCEPT was lost): the idle clock restarts.
    /// When the last valid datagram from the peer arrived.
    pub(crate) fn last_received(&self) -> Millis {
        self.last_received
    }

    pub(crate) fn note_alive(&mut self, now: Millis) {
        self.last_received = now;
    }

    /// Counts the secure framing around an accepted KCP datagram as wire bytes.
    pub(crate) fn note_framing_in(&mut self, bytes: usize) {
        self.bytes_in += bytes as u64;
    }

    /// Moves the session to a new peer address (and our address it now talks to).
    pub(crate) fn move_to(&mut self, remote: SocketAddr, local: SocketAddr) {
        self.remote = remote;
        self.local = local;
        let sink = self.kcp.output_mut();
        sink.destination = remote;
        sink.source = local;
    }

    fn check_poison(&self) {
        if self.poisoned {
            panic!("kcpwatch: injected engine fault");
        }
    }

    /// The identity events carry.
    pub(crate) fn conn_ref(&self) -> ConnectionRef {
        ConnectionRef {
            uid: self.uid,
            conv: self.conv,
            peer: self.remote,
            local: self.local,
            direction: self.direction,
            user: self.user,
        }
    }

    /// Runs the guard, then hands the datagram to the engine. `Ok(Some(_))` means the guard
    /// accepted the datagram but the engine still refused it.
    pub(crate) fn input(
        &mut self,
        now: Millis,
        datagram: &[u8],
    ) -> Result<Option<EngineError>, GuardViolation> {
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
            max_ahead: guard::MAX_SEGMENTS_AHEAD,
            snd_una: kcp.snd_una(),
            snd_nxt: kcp.snd_nxt(),
            now,
            session_start: self.started_at,
            in_flight: &in_flight,
        };
        if let Err(violation) = guard::validate(&ctx, datagram) {
            self.guard_drops += 1;
            let peer_is_originator = self.direction == Direction::Inbound;
            self.history.note(b'g', peer_is_originator);
            return Err(violation);
        }
        self.kcp.set_current(now);
        // The guard accepted every segment, so the engine should have nothing left to refuse;
        // if it does, that is a defect worth an error record, not a silent drop.
        let engine_error = self
            .kcp
            .input(datagram)
            .err()
            .map(|e| EngineError::from_kcp(&e));
        self.datagrams_in += 1;
        self.bytes_in += datagram.len() as u64;
        self.last_received = now;
        self.engine_used_at = now;
        if self.kcp.snd_queue_len() > 0 {
            // The input may have opened the window for queued data: it leaves now, with the ACKs.
            self.flush_pending = true;
        } else if self.ack_due.is_none() {
            self.ack_due = Some(now.wrapping_add(ACK_DELAY_MS));
        }
        self.update_history();
        Ok(engine_error)
    }

    /// Lets the engine retransmit and flush on its own schedule.
    pub(crate) fn update(&mut self, now: Millis) {
        self.check_poison();
        if self.handshaking() {
            return;
        }
        if self.ack_due.is_some_and(|due| diff(now, due) >= 0) {
            self.flush(now);
        }
        let _ = self.kcp.update(now);
        // ikcp's check() reports a due retransmission as "now" even when update() will not
        // flush until its interval tick; flushing here keeps a caller that sleeps until
        // check() from spinning for up to one interval.
        if self.kcp.check(now) == 0 {
            let _ = self.kcp.flush();
        }
        self.keepalive(now);
        if self.engine_quiet(now) && self.kcp.holds_idle_memory() {
            self.kcp.shrink_idle();
        }
        self.update_history();
    }

    /// The engine has had no input and no message for `ENGINE_TRIM_MS`. A time so far back that
    /// the wrapping clock reads it as ahead counts as quiet too, so a due trim is never refused.
    fn engine_quiet(&self, now: Millis) -> bool {
        let quiet_for = diff(now, self.engine_used_at);
        quiet_for >= ENGINE_TRIM_MS as i32 || quiet_for < 0
    }

    /// Sends ACKs and newly queued data now rather than at the next interval.
    pub(crate) fn flush(&mut self, now: Millis) {
        self.check_poison();
        self.flush_pending = false;
        self.ack_due = None;
        if self.handshaking() {
            return;
        }
        // After a quiet spell (a quiescent engine is not updated every interval) the engine's
        // interval clock is behind: update() brings it to now (and flushes), so the deadline
        // computed next is an interval ahead instead of "now".
        if self.kcp.check(now) == 0 {
            let _ = self.kcp.update(now);
        }
        self.kcp.set_current(now);
        let _ = self.kcp.flush();
        self.note_sent(now);
        self.update_history();
    }

    pub(crate) fn send(&mut self, data: &[u8]) -> Result<(), SessionSendError> {
        self.check_poison();
        // A client may queue messages while its handshake runs; they leave once it completes.
        if self.state != ConnectionState::Established && !self.handshaking() {
            return Err(SessionSendError::NotOpen);
        }
        // An empty message is a PUSH of length 0 (ikcp sends and delivers one the same way);
        // in stream mode it adds nothing.
        if !self.config.stream && data.len() > self.send_ceiling {
            return Err(SessionSendError::TooLarge {
                size: data.len(),
                limit: self.send_ceiling,
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
                self.kcp
                    .send(piece)
                    .map_err(|e| SessionSendError::Engine(EngineError::from_kcp(&e).code))?;
            }
        } else {
            self.kcp
                .send(data)
                .map_err(|e| SessionSendError::Engine(EngineError::from_kcp(&e).code))?;
        }
        if self.handshaking() {
            self.largest_queued = self.largest_queued.max(data.len());
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
        let window_was_full = self.kcp.rcv_queue_len() >= self.kcp.rcv_wnd() as usize;
        let n = self.kcp.recv(buf).ok()?;
        self.payload_bytes_in += n as u64;
        self.messages_in += 1;
        // Reading reopened a full receive window: the engine tells the peer at its next flush,
        // which should not wait (a peer facing a zero window only probes every few seconds).
        if window_was_full {
            self.flush_pending = true;
        }
        Some(n)
    }

    /// Takes every complete message still in the engine, oldest first, as the session ends.
    ///
    /// KCP acknowledged these segments when they arrived, so the peer has counted them as
    /// delivered; they wait here only because the application was behind (delivery paused) or
    /// the close came in the same turn as the data. Dropping them would lose acknowledged
    /// messages. The engine holds at most a receive window of segments in its queue and
    /// another in its reorder buffer, so this is bounded by the window, not by the peer (a few
    /// hundred KB at the defaults). A message larger
    /// than `max_message_size` is a protocol violation and stops the drain; a message still
    /// missing fragments was never complete and stays behind.
    pub(crate) fn take_unread(&mut self) -> Vec<Box<[u8]>> {
        let mut unread = Vec::new();
        if self.poisoned || self.handshaking() {
            return unread;
        }
        // Every recv takes at least one segment; the bound only guards against a defect.
        let bound = 2 * usize::from(self.config.receive_window) + 1;
        for _ in 0..bound {
            let Some(size) = self.peek_size() else {
                break;
            };
            if !self.config.stream && size > self.config.max_message_size {
                break;
            }
            let mut message = vec![0u8; size];
            match self.recv(&mut message) {
                Some(n) => {
                    message.truncate(n);
                    unread.push(message.into_boxed_slice());
                }
                None => break,
            }
        }
        unread
    }

    /// A graceful close that lingers at most `linger_ms` and then reports `reason`. A session
    /// already closing keeps the earlier of the two deadlines.
    pub(crate) fn begin_close_as(&mut self, now: Millis, linger_ms: u32, reason: CloseReason) {
        // A session closed right after a message came in still acknowledges it, or the peer
        // would resend it to a socket that may be gone.
        self.send_owed_acks();
        let deadline = now.wrapping_add(linger_ms);
        match self.state {
            ConnectionState::Established => {
                self.state = ConnectionState::Closing;
                self.close_deadline = Some(deadline);
                self.close_reason = reason;
            }
            ConnectionState::Closing
                if self.close_deadline.map_or(true, |d| diff(deadline, d) < 0) =>
            {
                self.close_deadline = Some(deadline);
            }
            _ => {}
        }
    }

    /// Flushes ACKs still waiting for a reply to carry them (see `ACK_DELAY_MS`), as the
    /// session ends or starts to.
    pub(crate) fn send_owed_acks(&mut self) {
        if self.ack_due.is_some() {
            self.flush(self.kcp.current());
        }
    }

    /// The reason this session must end now, if any.
    pub(crate) fn liveness(&self, now: Millis) -> Option<CloseReason> {
        // A handshake ends by its own deadline, as a failure (see the endpoint).
        if self.handshaking() {
            return None;
        }
        if self.kcp.is_dead_link() || self.unacked_too_long(now) {
            return Some(CloseReason::DeadLink);
        }
        if self.state == ConnectionState::Closing {
            let flushed = self.kcp.waiting_bytes() == 0;
            let expired = self.close_deadline.is_some_and(|d| diff(now, d) >= 0);
            if flushed || expired {
                return Some(self.close_reason);
            }
        }
        if diff(now, self.last_received) >= self.config.idle_timeout_ms as i32 {
            return Some(CloseReason::IdleTimeout);
        }
        None
    }

    /// The oldest segment in flight has waited longer than the dead-link time bound (kcp
    /// PATCH(13)): the transmission count alone lets RTO backoff stretch this to minutes.
    fn unacked_too_long(&self, now: Millis) -> bool {
        self.kcp.oldest_unacked_since().is_some_and(|since| {
            i64::from(diff(now, since)) >= i64::from(self.config.dead_link_bound_ms())
        })
    }

    /// When this session next needs the endpoint's attention.
    pub(crate) fn next_deadline(&self, now: Millis) -> Millis {
        if let Some(h) = self.secure.as_ref().and_then(|s| s.handshake.as_ref()) {
            return if diff(h.deadline, h.next_hello_at) < 0 {
                h.deadline
            } else {
                h.next_hello_at
            };
        }
        // An unconfirmed server session has nothing to send: only its confirmation deadline.
        if let Some(by) = self.secure.as_ref().and_then(|s| s.confirm_by) {
            return by;
        }
        // A closing session whose last byte was acknowledged ends now (see `liveness`).
        if self.state == ConnectionState::Closing && self.kcp.waiting_bytes() == 0 {
            return now;
        }
        let idle = self.last_received.wrapping_add(self.config.idle_timeout_ms);
        // New data leaves eagerly (the endpoint flushes after every send) and owed ACKs by
        // `ack_due` (below), so the engine needs a visit only for its next retransmission, and
        // none when it has nothing to send (kcp PATCH(10), PATCH(11)); any input or send
        // reschedules the session.
        let mut deadline = idle;
        let wait = self.kcp.next_flush_in(now);
        if wait != u32::MAX && wait <= i32::MAX as u32 {
            let engine = now.wrapping_add(wait);
            if diff(engine, deadline) < 0 {
                deadline = engine;
            }
        }
        if let Some(close) = self.close_deadline {
            if diff(close, deadline) < 0 {
                deadline = close;
            }
        }
        if let Some(due) = self.ack_due {
            if diff(due, deadline) < 0 {
                deadline = due;
            }
        }
        if let Some(since) = self.kcp.oldest_unacked_since() {
            let dead = since.wrapping_add(self.config.dead_link_bound_ms());
            if diff(dead, deadline) < 0 {
                deadline = dead;
            }
        }
        if let Some(secure) = self.secure.as_ref().filter(|s| s.receive.is_some()) {
            let keepalive = secure.next_keepalive();
            if diff(keepalive, deadline) < 0 {
                deadline = keepalive;
            }
        }
        // One visit once the engine has been quiet long enough, to shrink it (see `update`);
        // none once it holds nothing more to give back.
        if self.kcp.holds_idle_memory() {
            let trim = if self.engine_quiet(now) {
                now
            } else {
                self.engine_used_at.wrapping_add(ENGINE_TRIM_MS)
            };
            if diff(trim, deadline) < 0 {
                deadline = trim;
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_engine_error_has_a_stable_code() {
        let cases = [
            (kcp::Error::ConvInconsistent(1, 2), "KCP_INPUT_BAD_CONV"),
            (kcp::Error::InvalidMtu(1), "KCP_INVALID_MTU"),
            (kcp::Error::InvalidSegmentSize(3), "KCP_INPUT_TOO_SHORT"),
            (
                kcp::Error::InvalidSegmentDataSize(4, 5),
                "KCP_INPUT_BAD_LENGTH",
            ),
            (
                kcp::Error::IoError(std::io::Error::other("x")),
                "KCP_OUTPUT_FAILED",
            ),
            (kcp::Error::NeedUpdate, "KCP_NEED_UPDATE"),
            (kcp::Error::RecvQueueEmpty, "KCP_RECV_EMPTY"),
            (kcp::Error::ExpectingFragment, "KCP_RECV_EMPTY"),
            (kcp::Error::UnsupportedCmd(99), "KCP_INPUT_BAD_CMD"),
            (kcp::Error::UserBufTooBig, "KCP_SEND_TOO_BIG"),
            (kcp::Error::UserBufTooSmall, "KCP_RECV_BUFFER_TOO_SMALL"),
        ];
        for (error, code) in cases {
            let mapped = EngineError::from_kcp(&error);
            assert_eq!(mapped.code, code);
            assert_eq!(mapped.message.as_str(), error.to_string());
        }
    }
}

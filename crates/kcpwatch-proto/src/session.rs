//! One KCP conversation behind the segment guard, with its liveness rules and counters.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;

use kcp::Kcp;

use crate::clock::{diff, Millis};
use crate::config::SessionConfig;
use crate::events::{CappedText, ConnectionRef, Direction, History};
use crate::guard::{self, GuardContext, GuardViolation, InFlightTimes};
use crate::lifecycle::{CloseReason, ConnectionState};
use crate::secure::keys::{ReplayWindow, Role, SessionCipher, SessionKeys};
use crate::secure::noise::ClientNoise;
use crate::secure::wire::{
    write_disconnect_body, DisconnectBody, DISCONNECT_BODY_MAX, KEY_ID_LEN, NONCE_LEN, TAG_LEN,
    TYPE_DISCONNECT, TYPE_KEEPALIVE,
};
use crate::transmit::{Sealer, Transmits, TxSink, SENT_TAGS};
use crate::uid::Uid;

/// Window probes start this soon after the peer advertises a zero window and back off to at
/// most `PROBE_LIMIT_MS`: a forged zero window (defect case E in docs/security.md) then stalls the sender for
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
    /// Not produced: an empty message is sent as a PUSH of length 0, as ikcp does. Kept for
    /// the `empty_message` violation code older bindings may still report.
    #[error("empty message")]
    Empty,
    /// The engine refused a message the session had validated (a defect, reported as a
    /// library error); the `KCP_*` code.
    #[error("engine refused the message: {0}")]
    Engine(&'static str),
}

/// The one-record view of a connection (docs/events.md, the close summary).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// Zeek-style activity history (see [`History`]).
    pub history: History,
    /// Who opened the connection.
    pub direction: Direction,
    /// Secure mode: unreliable datagrams (`sendDatagram`), apart from the messages.
    pub unreliable: crate::secure::datagram::DatagramCounters,
}

impl ConnectionSummary {
    /// A summary with identity only, for a session whose counters could not be read.
    pub fn empty(conn: ConnectionRef) -> Self {
        Self {
            uid: conn.uid,
            conv: conn.conv,
            remote: conn.peer,
            local: conn.local,
            duration_ms: 0,
            datagrams_in: 0,
            bytes_in: 0,
            datagrams_out: 0,
            bytes_out: 0,
            payload_bytes_in: 0,
            payload_bytes_out: 0,
            messages_in: 0,
            messages_out: 0,
            guard_drops: 0,
            srtt_ms: 0,
            rttvar_ms: 0,
            rto_ms: 0,
            engine: kcp::KcpCounters::default(),
            history: History::default(),
            direction: conn.direction,
            unreliable: Default::default(),
        }
    }
}

/// A KCP engine call failed even though the guard had accepted its input (a defect of the
/// guard or the engine): the stable code and the engine's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineError {
    /// `KCP_*` code.
    pub code: &'static str,
    /// The engine's message.
    pub message: CappedText,
}

impl EngineError {
    /// Maps every error of the `kcp` crate to a stable code.
    pub fn from_kcp(error: &kcp::Error) -> Self {
        let code = match error {
            kcp::Error::ConvInconsistent(..) => "KCP_INPUT_BAD_CONV",
            kcp::Error::InvalidMtu(..) => "KCP_INVALID_MTU",
            kcp::Error::InvalidSegmentSize(..) => "KCP_INPUT_TOO_SHORT",
            kcp::Error::InvalidSegmentDataSize(..) => "KCP_INPUT_BAD_LENGTH",
            kcp::Error::IoError(..) => "KCP_OUTPUT_FAILED",
            kcp::Error::NeedUpdate => "KCP_NEED_UPDATE",
            kcp::Error::RecvQueueEmpty | kcp::Error::ExpectingFragment => "KCP_RECV_EMPTY",
            kcp::Error::UnsupportedCmd(..) => "KCP_INPUT_BAD_CMD",
            kcp::Error::UserBufTooBig => "KCP_SEND_TOO_BIG",
            kcp::Error::UserBufTooSmall => "KCP_RECV_BUFFER_TOO_SMALL",
        };
        Self {
            code,
            message: CappedText::format(error),
        }
    }
}

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

/// An application close code and text (`conn.close(code, reason)`), carried by a secure
/// DISCONNECT and recorded on both sides. Inline, so records never allocate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppClose {
    /// The code (0: none given).
    pub code: u16,
    /// The text (at most 123 bytes of UTF-8 on the wire).
    pub text: CappedText,
}

impl AppClose {
    /// Nothing said.
    pub const NONE: Self = Self {
        code: 0,
        text: CappedText::EMPTY,
    };

    /// A code and text; the text is cut to the 123 bytes a DISCONNECT carries.
    pub fn new(code: u16, text: &str) -> Self {
        let mut end = text.len().min(crate::secure::wire::MAX_CLOSE_TEXT);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        Self {
            code,
            text: CappedText::format(&text[..end]),
        }
    }

    /// Whether anything was said.
    pub fn is_none(&self) -> bool {
        self.code == 0 && self.text.as_str().is_empty()
    }
}

/// What a secure session keeps beyond the engine.
pub(crate) struct SecureState {
    pub(crate) role: Role,
    /// The HELLO nonce of the attempt that made this session: replies echo it, and a
    /// retransmitted HELLO is recognised by it.
    pub(crate) nonce: [u8; NONCE_LEN],
    /// Opens the peer's datagrams; `None` until the handshake completes.
    pub(crate) receive: Option<SessionCipher>,
    /// The server static key the handshake used (its id), for the records.
    pub(crate) key_id: [u8; KEY_ID_LEN],
    pub(crate) window: ReplayWindow,
    pub(crate) keepalive_ms: u32,
    /// Datagrams sent when the keepalive clock last looked, and when that changed.
    sent_seen: u64,
    last_sent_at: Millis,
    /// Server: the ACCEPT, resent when the client's HELLO comes again.
    pub(crate) accept: Option<Box<[u8]>>,
    /// Client: the handshake in progress.
    pub(crate) handshake: Option<ClientHandshake>,
    /// Newest datagram delivered per sequenced channel.
    pub(crate) sequencer: crate::secure::datagram::Sequencer,
    /// Server: the ACCEPT went out and the session waits, unannounced, for the client's first
    /// authenticated datagram until this time (docs/protocol.md, "Handshake confirmation").
    pub(crate) confirm_by: Option<Millis>,
    /// Client: nothing authentic has come from the server since the ACCEPT, so the server may
    /// not have our confirmation yet; keepalives repeat quickly until something does.
    pub(crate) awaiting_peer: bool,
    /// FEC: the peer's recent datagrams, kept once it sent parity (`secure::fec`).
    pub(crate) fec: Option<Box<crate::secure::fec::Decoder>>,
}

/// How often a client repeats its confirming KEEPALIVE until the server is heard from.
pub(crate) const CONFIRM_RETRY_MS: u32 = 500;

impl SecureState {
    /// The keepalive interval now: short while a client's confirmation may be lost.
    fn keepalive_interval(&self) -> u32 {
        if self.awaiting_peer {
            self.keepalive_ms.min(CONFIRM_RETRY_MS)
        } else {
            self.keepalive_ms
        }
    }
}

/// A client's handshake: what to send next and until when to try.
pub(crate) struct ClientHandshake {
    /// The HELLO (its Noise message written once; the cookie goes in when it comes).
    pub(crate) hello: Box<[u8]>,
    /// Reads the ACCEPT; taken when it arrives.
    pub(crate) noise: Option<ClientNoise>,
    pub(crate) next_hello_at: Millis,
    pub(crate) retry_ms: u32,
    pub(crate) deadline: Millis,
    /// HELLOs sent, for the record of a timeout.
    pub(crate) hellos: u32,
    /// Distinct HELLOs that drew an ICMP unreachable report since the server last answered
    /// (see [`crate::Endpoint::peer_unreachable`]).
    pub(crate) unreachable_hellos: u32,
    /// The value of `hellos` at the last counted report: more reports about the same HELLO
    /// count once.
    pub(crate) unreachable_at_hello: u32,
}

/// The first HELLO retransmission comes this soon; each later one waits twice as long.
pub(crate) const HELLO_RETRY_MS: u32 = 250;
const HELLO_RETRY_MAX_MS: u32 = 2_000;
/// A session that ends sends its DISCONNECT this many times: it is unreliable, and one lost
/// copy should not leave the peer waiting for its idle timeout.
const DISCONNECT_COPIES: usize = 3;

impl ClientHandshake {
    pub(crate) fn backoff(&mut self, now: Millis) {
        self.hellos += 1;
        self.next_hello_at = now.wrapping_add(self.retry_ms);
        self.retry_ms = (self.retry_ms * 2).min(HELLO_RETRY_MAX_MS);
    }
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
        direction: Direction,
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
    pub(crate) fn enable_fec(&mut self, encoder: Rc<RefCell<crate::fec::Encoder>>) {
        self.kcp.output_mut().fec = Some(encoder);
    }

    /// Makes this a secure session. A client starts in `Handshaking` with `handshake`; a server
    /// session passes its keys at once.
    pub(crate) fn make_secure(
        &mut self,
        role: Role,
        nonce: [u8; NONCE_LEN],
        key_id: [u8; KEY_ID_LEN],
        keepalive_ms: u32,
        handshake: Option<ClientHandshake>,
        now: Millis,
    ) {
        if handshake.is_some() {
            self.state = ConnectionState::Handshaking;
        }
        self.secure = Some(Box::new(SecureState {
            role,
            nonce,
            receive: None,
            key_id,
            window: ReplayWindow::default(),
            keepalive_ms: keepalive_ms.max(1),
            sent_seen: 0,
            last_sent_at: now,
            accept: None,
            handshake,
            sequencer: Default::default(),
            confirm_by: None,
            awaiting_peer: false,
            fec: None,
        }));
    }

    /// A client's handshake agreed an MTU (`config` from `agreed_session_config`): the engine
    /// uses it from now on, and the messages queued meanwhile are split again to fit. Returns
    /// how many queued messages no longer fit and were dropped.
    pub(crate) fn set_agreed_mtu(&mut self, config: &SessionConfig) -> usize {
        self.config = *config;
        self.send_ceiling = config.max_message_size;
        // validate() bounded our MTU and agreed_session_config keeps it at least KCP's minimum.
        let _ = self.kcp.set_mtu(config.mtu);
        self.kcp.resegment_queue()
    }

    /// The largest message queued while the handshake ran (0: none).
    pub(crate) fn largest_queued(&self) -> usize {
        self.largest_queued
    }

    /// Starts sealing: from here on every datagram is an encrypted session datagram.
    pub(crate) fn start_session(
        &mut self,
        conv: u32,
        keys: SessionKeys,
        now: Millis,
        now_extended: u64,
    ) {
        let Some(secure) = self.secure.as_mut() else {
            return;
        };
        secure.receive = Some(keys.receive);
        secure.handshake = None;
        secure.last_sent_at = now;
        self.conv = conv;
        self.kcp.set_conv(conv);
        let client = secure.role == Role::Client;
        let sink = self.kcp.output_mut();
        sink.sealer = Some(Sealer {
            key: keys.send,
            conv,
            next_packet_number: 0,
            fec: None,
        });
        if client {
            // To recognise a server's stateless RESET (docs/protocol.md).
            sink.sent_tags = Some(Box::new([(0, [0; TAG_LEN]); SENT_TAGS]));
        }
        self.state = ConnectionState::Established;
        // The connection's life (and its idle clock) starts when it is established.
        self.started_at = now;
        self.started_at_extended = now_extended;
        self.last_received = now;
        self.kcp.set_current(now);
    }

    /// Secure mode with FEC: from now on every sealed datagram is a data shard, and each full
    /// group is followed by its parity (`mtu`: the largest datagram on the wire).
    pub(crate) fn enable_secure_fec(&mut self, codec: Rc<crate::fec::Codec>, mtu: usize) {
        if let Some(sealer) = self.kcp.output_mut().sealer.as_mut() {
            sealer.fec = Some(Box::new(crate::secure::fec::Encoder::new(codec, mtu)));
        }
    }

    /// Secure mode: the largest datagram on the wire (the agreed MTU): the engine's MTU, the
    /// session framing and, when this side sends FEC, the room it leaves for parity.
    pub(crate) fn secure_wire_mtu(&self) -> usize {
        let fec = self
            .kcp
            .output_ref()
            .sealer
            .as_ref()
            .is_some_and(|s| s.fec.is_some());
        self.config.mtu
            + crate::secure::wire::SESSION_OVERHEAD
            + if fec { crate::secure::fec::OVERHEAD } else { 0 }
    }

    /// Server: the ACCEPT is out; the session stays `Handshaking` (unannounced, its engine
    /// idle) until the client confirms it or `by` passes.
    pub(crate) fn await_confirmation(&mut self, by: Millis) {
        if let Some(secure) = self.secure.as_mut() {
            secure.confirm_by = Some(by);
            self.state = ConnectionState::Handshaking;
        }
    }

    /// Server: whether the session still waits for the client's confirmation.
    pub(crate) fn unconfirmed(&self) -> bool {
        self.secure.as_ref().is_some_and(|s| s.confirm_by.is_some())
    }

    /// Server: the client confirmed the handshake; the connection starts now.
    pub(crate) fn confirm(&mut self, now: Millis, now_extended: u64) {
        if let Some(secure) = self.secure.as_mut() {
            secure.confirm_by = None;
            secure.last_sent_at = now;
        }
        self.state = ConnectionState::Established;
        self.started_at = now;
        self.started_at_extended = now_extended;
        self.last_received = now;
        self.kcp.set_current(now);
    }

    /// Client: the ACCEPT was read; confirms it to the server at once with a KEEPALIVE (before
    /// any queued data, so even an application with nothing to say confirms), and keeps
    /// repeating it until the server is heard from.
    pub(crate) fn send_confirmation(&mut self, now: Millis) {
        let Some(secure) = self.secure.as_mut() else {
            return;
        };
        secure.awaiting_peer = true;
        self.kcp.output_mut().send_sealed(TYPE_KEEPALIVE, &[]);
        secure.sent_seen = self.kcp.output_ref().datagrams;
        secure.last_sent_at = now;
    }

    /// Server: answers the client's confirmation with a KEEPALIVE, so it stops repeating it.
    pub(crate) fn send_confirmation_ack(&mut self) {
        self.kcp.output_mut().send_sealed(TYPE_KEEPALIVE, &[]);
        self.note_sent(self.last_received);
    }

    /// An authentic datagram came from the peer: a client's confirmation has arrived.
    pub(crate) fn heard_peer(&mut self) {
        if let Some(secure) = self.secure.as_mut() {
            secure.awaiting_peer = false;
        }
    }

    /// Whether a RESET echoing `packet_number` and `tag` answers a datagram we sent.
    pub(crate) fn reset_matches(&self, packet_number: u64, tag: &[u8; TAG_LEN]) -> bool {
        self.kcp.output_ref().sent(packet_number, tag)
    }

    /// Seals `body` (a DATAGRAM plaintext) as the session's next datagram, outside the engine;
    /// false if the session has no keys yet.
    pub(crate) fn send_sealed_datagram(&mut self, body: &[u8]) -> bool {
        self.kcp
            .output_mut()
            .send_sealed(crate::secure::wire::TYPE_DATAGRAM, body)
    }

    /// Sends a datagram outside the engine (a handshake reply, a HELLO).
    pub(crate) fn send_plain(&mut self, datagram: &[u8]) {
        self.kcp.output_mut().send_plain(datagram);
    }

    /// Tells the peer this session ends (secure mode; raw KCP has no way to say it), with the
    /// application's close code and text if it gave them.
    pub(crate) fn send_disconnect(&mut self, reason: CloseReason) {
        if self.secure.as_ref().is_some_and(|s| s.receive.is_some()) {
            let mut body = [0; DISCONNECT_BODY_MAX];
            let len = write_disconnect_body(
                &mut body,
                &DisconnectBody {
                    reason: reason.code(),
                    app_code: self.app_close.code,
                    text: self.app_close.text.as_str(),
                },
            );
            for _ in 0..DISCONNECT_COPIES {
                self.kcp
                    .output_mut()
                    .send_sealed(TYPE_DISCONNECT, &body[..len]);
            }
        }
    }

    /// Sets what the application said when closing (sent in the DISCONNECT, and recorded).
    pub(crate) fn set_app_close(&mut self, close: AppClose) {
        self.app_close = close;
    }

    /// What the application said when closing, ours or (after a DISCONNECT) the peer's.
    pub(crate) fn app_close(&self) -> AppClose {
        self.app_close
    }

    /// What the peer's DISCONNECT said: its reason and the application's code and text.
    pub(crate) fn set_peer_close(&mut self, reason: Option<CloseReason>, close: AppClose) {
        self.peer_reason = reason;
        self.app_close = close;
    }

    /// Why the peer said it closed, if it said.
    pub(crate) fn peer_reason(&self) -> Option<CloseReason> {
        self.peer_reason
    }

    /// Seals `body` as this session's next datagrams are sealed (tests and the fuzz harness
    /// only): the session's conv, or `None` before its keys exist.
    #[cfg(feature = "test-keys")]
    pub(crate) fn seal_for_tests(
        &self,
        kind: u8,
        packet_number: u64,
        body: &[u8],
        out: &mut Vec<u8>,
    ) -> Option<u32> {
        let sealer = self.kcp.output_ref().sealer.as_ref()?;
        crate::secure::keys::seal_into(out, &sealer.key, kind, sealer.conv, packet_number, body);
        Some(sealer.conv)
    }

    /// The server key id of a secure session.
    pub(crate) fn key_id(&self) -> Option<[u8; KEY_ID_LEN]> {
        self.secure.as_ref().map(|s| s.key_id)
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

    /// Restarts the keepalive clock if anything was sent since it last looked.
    fn note_sent(&mut self, now: Millis) {
        let sent = self.kcp.output_ref().datagrams;
        if let Some(secure) = self.secure.as_mut() {
            if sent != secure.sent_seen {
                secure.sent_seen = sent;
                secure.last_sent_at = now;
            }
        }
    }

    /// Sends a keepalive if the session has been silent for its keepalive interval.
    fn keepalive(&mut self, now: Millis) {
        self.note_sent(now);
        let Some(secure) = self.secure.as_mut() else {
            return;
        };
        if secure.receive.is_none() {
            return;
        }
        if diff(now, secure.last_sent_at) >= secure.keepalive_interval() as i32 {
            self.kcp.output_mut().send_sealed(TYPE_KEEPALIVE, &[]);
            secure.sent_seen = self.kcp.output_ref().datagrams;
            secure.last_sent_at = now;
        }
    }

    fn handshaking(&self) -> bool {
        self.state == ConnectionState::Handshaking
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

    /// Notes in the history what the engine did since the last call. Letters (upper case for
    /// the originator): D data, A pure acknowledgement, W window probe, R retransmission
    /// (sent) or duplicate data (received), G a datagram the guard refused.
    fn update_history(&mut self) {
        let now = self.kcp.counters();
        let seen = self.history_seen;
        let peer_is_originator = self.direction == Direction::Inbound;
        let mut note = |changed: bool, letter: u8, by_peer: bool| {
            if changed {
                self.history.note(letter, by_peer == peer_is_originator);
            }
        };
        note(now.in_push_segs > seen.in_push_segs, b'd', true);
        note(now.acks_received > seen.acks_received, b'a', true);
        note(
            now.window_probes_received > seen.window_probes_received,
            b'w',
            true,
        );
        note(now.repeat_segs > seen.repeat_segs, b'r', true);
        note(now.out_push_segs > seen.out_push_segs, b'd', false);
        note(now.acks_sent > seen.acks_sent, b'a', false);
        note(
            now.window_probes_sent > seen.window_probes_sent,
            b'w',
            false,
        );
        note(
            now.retrans_segs + now.fast_retrans_segs > seen.retrans_segs + seen.fast_retrans_segs,
            b'r',
            false,
        );
        self.history_seen = now;
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
        self.flush_pending = true;
        self.update_history();
        Ok(engine_error)
    }

    /// Lets the engine retransmit and flush on its own schedule.
    pub(crate) fn update(&mut self, now: Millis) {
        self.check_poison();
        if self.handshaking() {
            return;
        }
        let _ = self.kcp.update(now);
        // ikcp's check() reports a due retransmission as "now" even when update() will not
        // flush until its interval tick; flushing here keeps a caller that sleeps until
        // check() from spinning for up to one interval.
        if self.kcp.check(now) == 0 {
            let _ = self.kcp.flush();
        }
        self.keepalive(now);
        self.update_history();
    }

    /// Sends ACKs and newly queued data now rather than at the next interval.
    pub(crate) fn flush(&mut self, now: Millis) {
        self.check_poison();
        self.flush_pending = false;
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
        let n = self.kcp.recv(buf).ok()?;
        self.payload_bytes_in += n as u64;
        self.messages_in += 1;
        // Reading may reopen the receive window; tell the peer promptly.
        self.flush_pending = true;
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
        // ACKs and new data leave eagerly (the endpoint flushes after every input and send), so
        // the engine needs a visit only for its next retransmission, and none when it has nothing
        // to send (kcp PATCH(10), PATCH(11)); any input or send reschedules the session.
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
        if let Some(since) = self.kcp.oldest_unacked_since() {
            let dead = since.wrapping_add(self.config.dead_link_bound_ms());
            if diff(dead, deadline) < 0 {
                deadline = dead;
            }
        }
        if let Some(secure) = self.secure.as_ref().filter(|s| s.receive.is_some()) {
            let keepalive = secure
                .last_sent_at
                .wrapping_add(secure.keepalive_interval());
            if diff(keepalive, deadline) < 0 {
                deadline = keepalive;
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
            history: self.history,
            direction: self.direction,
            unreliable: self.unreliable,
        }
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

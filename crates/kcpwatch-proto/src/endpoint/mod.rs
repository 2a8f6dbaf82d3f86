//! The endpoint: one UDP socket's worth of sessions. It demultiplexes datagrams by
//! (source address, conv), opens sessions for new sources in raw mode, runs every session's
//! timers from one deadline queue, and reports what happened as [`EndpointEvent`]s.
//!
//! Driving it (what the runtime and the simulated-network tests both do):
//! 1. feed datagrams with [`Endpoint::handle_datagram`] and expired deadlines with
//!    [`Endpoint::handle_timeout`]; apply application commands (`connect`, `send`, `close`);
//! 2. call [`Endpoint::flush`] once per batch so ACKs and new data leave together;
//! 3. send [`Endpoint::transmits`], then clear them;
//! 4. drain [`Endpoint::poll_event`] and read messages of readable connections with
//!    [`Endpoint::recv`];
//! 5. sleep until [`Endpoint::poll_timeout`] or the next datagram.

use std::cell::{Ref, RefCell};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;

use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::clock::{ExtendedClock, Millis};
use crate::config::{ConfigError, EndpointConfig, Mode, SessionConfig};
use crate::detect::Detectors;
use crate::events::{
    CappedText, ConnectionAttempted, ConnectionClosed, ConnectionEstablished, ConnectionFailed,
    ConnectionRef, ConnectionStateUpdated, Direction, ErrorEvent, ErrorType, FailReason,
    PacketDropped, ProtocolViolation, Sampler, SecurityEvent, Violation,
};
use crate::guard::{self, GuardContext, GuardViolation};
use crate::lifecycle::{CloseReason, ConnectionState, DropTrigger};
use crate::limits::{ConnectionCounts, HandshakeRate};
use crate::secure::{CookieJar, TagKey};
use crate::segment::datagram_conv;
use crate::session::{ConnectionSummary, EngineError, Session, SessionSendError};
use crate::transmit::Transmits;
use crate::uid::{Uid, UidGenerator};

/// Slot indices use the low 20 bits of a handle, generations the high 12, so a handle fits a
/// u32 on the binding boundary and a stale handle is recognised after its slot is reused.
const INDEX_BITS: u32 = 20;
const MAX_SLOTS: usize = 1 << INDEX_BITS;
const GENERATION_MASK: u32 = (1 << (32 - INDEX_BITS)) - 1;
/// Security events held between two drains; beyond it they are counted as lost. The runtime
/// drains after every batch, so this is only reached by a burst inside one batch; a shutdown
/// records two events per connection at once, so the limit grows with the connection limit.
const SECURITY_QUEUE_LIMIT: usize = 16_384;
const SECURITY_EVENTS_PER_CONNECTION: usize = 3;
const DROP_KEYS: usize = 11;
const FAIL_KEYS: usize = 15;

/// The drop rule of a datagram that only an existing session sends, for a session this endpoint
/// does not have, in the restart grace period (see [`Endpoint::stale_rule`]).
pub const STALE_SESSION: &str = "stale_session";
/// The `unknown_connection` rule of a raw datagram from an (address, conv) whose session was
/// closed for a protocol violation less than an idle timeout ago (`raw_closed.rs`).
pub const RECENTLY_CLOSED: &str = "recently_closed";
/// The drop rule (trigger `bad_cmd`) of a datagram of the other mode: a secure HELLO at a raw
/// server, plain KCP at a secure one (`mode_mismatch.rs`).
pub const MODE_MISMATCH: &str = "mode_mismatch";

/// ICMP unreachable reports in a row (with nothing received from the peer, over at least a
/// third of the idle timeout) after which a session ends as `dead_link`.
pub const UNREACHABLE_REPORTS_TO_CLOSE: u32 = 3;
/// A secure client's handshake fails as `unreachable` once ICMP reports came for this many
/// different HELLOs (the first and its retransmission 250 ms later) with no answer between.
pub const HANDSHAKE_UNREACHABLE_HELLOS: u32 = 2;

/// What [`Endpoint::peer_unreachable`] made of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreachable {
    /// No live session talks to that address.
    NoSession,
    /// The first report of an episode for this connection: worth one record.
    FirstReport(ConnectionRef),
    /// A further report in an episode already reported: worth a count, not a record.
    Repeat,
    /// The report ended this connection as `dead_link` (its close is recorded).
    Closed(ConnectionRef),
}

/// Identifies one connection of an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnectionHandle(u32);

impl ConnectionHandle {
    fn new(index: u32, generation: u32) -> Self {
        Self(((generation & GENERATION_MASK) << INDEX_BITS) | index)
    }

    fn index(self) -> u32 {
        self.0 & ((1 << INDEX_BITS) - 1)
    }

    fn generation(self) -> u32 {
        self.0 >> INDEX_BITS
    }

    /// The handle as a number for the binding boundary.
    pub fn to_bits(self) -> u32 {
        self.0
    }

    /// A handle from [`ConnectionHandle::to_bits`].
    pub fn from_bits(bits: u32) -> Self {
        Self(bits)
    }
}

/// Something the application or the logging pipeline needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointEvent {
    /// A new source opened a session (raw mode: its first valid datagram).
    Accepted {
        /// The new connection.
        handle: ConnectionHandle,
    },
    /// Messages are ready for [`Endpoint::recv`]; sent once until `recv` returns `None`.
    Readable {
        /// The connection.
        handle: ConnectionHandle,
    },
    /// Secure mode, client: the handshake completed and messages flow.
    Established {
        /// The connection.
        handle: ConnectionHandle,
    },
    /// Secure mode, client: the handshake failed; the handle is no longer valid.
    ConnectFailed {
        /// The connection attempt.
        handle: ConnectionHandle,
        /// Why.
        reason: FailReason,
        /// The application's reason code from an `auth_rejected` REJECT (0: none).
        app_code: u16,
    },
    /// Secure mode, server with `require_auth`: a validated client presented a token. Answer
    /// with [`Endpoint::resolve_auth`] within `auth_timeout_ms`.
    AuthRequest {
        /// Identifies the request in the answer.
        id: u64,
        /// The connection id the session will have.
        uid: Uid,
        /// The client's address (validated by the cookie).
        remote: SocketAddr,
        /// Our address it talks to.
        local: SocketAddr,
        /// The application token from the HELLO.
        token: Box<[u8]>,
    },
    /// The connection ended; its handle is no longer valid.
    Closed {
        /// The connection.
        handle: ConnectionHandle,
        /// Why.
        reason: CloseReason,
        /// Secure mode, `peer_closed`: the reason the peer's DISCONNECT gave.
        peer_reason: Option<CloseReason>,
        /// The application's close code and text (ours, or the peer's DISCONNECT's).
        app_close: Box<crate::session::AppClose>,
        /// Everything that is known about it.
        summary: Box<ConnectionSummary>,
        /// Complete messages the engine still held when the session ended, oldest first: KCP
        /// had acknowledged them to the peer, so they are the application's and come before
        /// the close (at most a receive window or two of segments; see `Session::take_unread`).
        unread: Vec<Box<[u8]>>,
    },
}

pub use datagram::{DatagramSendError, MAX_DATAGRAM_INBOX_BYTES, MAX_DATAGRAM_TX_BYTES};

/// Why `send` refused a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// No such connection (closed, or a stale handle).
    #[error("unknown or closed connection")]
    UnknownConnection,
    /// The session refused it.
    #[error(transparent)]
    Session(#[from] SessionSendError),
}

/// Why `connect` failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// The session configuration cannot work.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A session with that address and conv already exists.
    #[error("a session for {0} with conv {1} already exists")]
    Duplicate(SocketAddr, u32),
    /// The connection limit is reached.
    #[error("connection limit of {0} reached")]
    Capacity(usize),
    /// The endpoint is in the other mode (`connect` is raw mode's, `connect_secure` secure
    /// mode's).
    #[error("this endpoint is in {0} mode")]
    WrongMode(&'static str),
    /// The application token is longer than a HELLO can carry.
    #[error("token of {0} bytes exceeds the limit of 1024")]
    TokenTooLong(usize),
    /// Secure mode needs the server's static public key (`server_key`) to open a session.
    #[error("secure mode needs the server's public key (serverKey) to connect")]
    NoServerKey,
}

/// Endpoint-wide counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointStats {
    /// Datagrams handed to the endpoint.
    pub datagrams_in: u64,
    /// Bytes handed to the endpoint.
    pub bytes_in: u64,
    /// Datagrams accepted by a session's guard.
    pub datagrams_accepted: u64,
    /// Dropped datagrams by trigger, indexed by [`EndpointStats::trigger_index`].
    pub dropped: [u64; 11],
    /// Attempts that never became connections, by reason, indexed like `fail_key`
    /// (see [`EndpointStats::failed_by`]).
    pub failed_by_reason: [u64; FAIL_KEYS],
    /// Secure mode: HELLOs received (with or without a cookie).
    pub hellos_received: u64,
    /// Secure mode: COOKIE replies sent.
    pub cookies_sent: u64,
    /// Secure mode: bytes sent to sources not yet validated (COOKIE and REJECT replies).
    pub bytes_sent_unvalidated: u64,
    /// Secure mode: bytes received in handshake datagrams from sources not yet validated.
    pub bytes_received_unvalidated: u64,
    /// Secure mode: REJECT replies sent.
    pub rejects_sent: u64,
    /// Secure mode: tokens handed to the application for authentication.
    pub auth_requests: u64,
    /// Secure mode: sessions that moved to a new peer address.
    pub peer_address_changes: u64,
    /// Sends the application had refused, by [`EndpointStats::violation_index`].
    pub violations: [u64; 4],
    /// Alerts raised by the detectors (first alerts and updates).
    pub alerts: u64,
    /// New connections refused because enforcement refuses their source for a while.
    pub refused_by_detector: u64,
    /// Secure mode: datagrams for a session that closed moments ago (the peer's remaining
    /// DISCONNECT copies, data in flight), counted without a record each.
    pub late_after_close: u64,
    /// Secure mode, server: stateless RESETs sent for session datagrams of unknown sessions.
    pub resets_sent: u64,
    /// Secure mode, client: RESETs that matched a datagram of ours and ended its session.
    pub resets_received: u64,
    /// ICMP unreachable reports about a live session's peer (see
    /// [`Endpoint::peer_unreachable`]).
    pub unreachable_reports: u64,
    /// Datagrams of the other mode: a secure HELLO at a raw server, plain KCP at a secure one
    /// (rule `mode_mismatch`).
    pub mode_mismatch: u64,
    /// Sessions opened by peers.
    pub passive_opens: u64,
    /// Sessions opened by `connect`.
    pub active_opens: u64,
    /// Sessions closed, for any reason.
    pub closed: u64,
    /// Panics caught inside sessions.
    pub panics: u64,
    /// Connection attempts that never became connections.
    pub failed: u64,
    /// Security events lost because the queue was full between two drains.
    pub events_lost: u64,
    /// Security events lost, by syslog severity.
    pub events_lost_by_severity: [u64; 8],
    /// Raw mode with FEC: kcp-go's FEC counters.
    pub fec: crate::fec::FecStats,
    /// Secure mode: unreliable datagrams, apart from the messages.
    pub unreliable: crate::secure::datagram::DatagramStats,
}

impl EndpointStats {
    /// The slot of `trigger` in [`EndpointStats::dropped`].
    pub fn trigger_index(trigger: DropTrigger) -> usize {
        match trigger {
            DropTrigger::TooShort => 0,
            DropTrigger::BadConv => 1,
            DropTrigger::BadLength => 2,
            DropTrigger::BadCmd => 3,
            DropTrigger::GuardViolation => 4,
            DropTrigger::UnknownConnection => 5,
            DropTrigger::OverLimit => 6,
            DropTrigger::BadTag => 7,
            DropTrigger::Replayed => 8,
            DropTrigger::RateLimited => 9,
            DropTrigger::DecryptFailed => 10,
        }
    }

    /// The slot of `violation` in [`EndpointStats::violations`].
    pub fn violation_index(violation: Violation) -> usize {
        match violation {
            Violation::OversizedMessage => 0,
            Violation::MessageOnClosedConnection => 1,
            Violation::EmptyMessage => 2,
            Violation::SendQueueFull => 3,
        }
    }

    /// Failed attempts for one reason.
    pub fn failed_by(&self, reason: FailReason) -> u64 {
        self.failed_by_reason[fail_key(reason)]
    }

    /// Dropped datagrams for one trigger.
    pub fn dropped_by(&self, trigger: DropTrigger) -> u64 {
        self.dropped[Self::trigger_index(trigger)]
    }

    /// All dropped datagrams.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().sum()
    }
}

struct Slot {
    generation: u32,
    session: Option<Session>,
    /// The deadline this slot is queued for; older queue entries are stale.
    deadline: Option<u64>,
    /// Who last lived here: a send to a connection that has just closed (the common case of
    /// writing to a player who left) is still logged with that connection's identity.
    last_conn: Option<ConnectionRef>,
}

/// One UDP socket's worth of KCP sessions.
pub struct Endpoint {
    config: EndpointConfig,
    slots: Vec<Slot>,
    free: Vec<u32>,
    live: usize,
    /// Secure server sessions whose ACCEPT the client has not confirmed yet (part of `live`).
    unconfirmed: usize,
    by_key: HashMap<(SocketAddr, u32), ConnectionHandle>,
    timers: crate::timer::TimerQueue,
    tx: Rc<RefCell<Transmits>>,
    events: VecDeque<EndpointEvent>,
    dirty: Vec<ConnectionHandle>,
    clock: ExtendedClock,
    uids: UidGenerator,
    stats: EndpointStats,
    security: VecDeque<SecurityEvent>,
    drop_sampler: Sampler<PacketDropped, DROP_KEYS>,
    fail_sampler: Sampler<ConnectionFailed, FAIL_KEYS>,
    /// Secure sessions by conv: they are found by conv alone so they can move address.
    by_conv: HashMap<u32, ConnectionHandle>,
    /// Secure sessions by HELLO nonce: a repeated HELLO gets the same answer, a client's
    /// pending handshake gets its replies.
    by_nonce: HashMap<[u8; 16], ConnectionHandle>,
    cookies: CookieJar,
    /// Session secrets, convs and nonces (ChaCha, seeded from `config.secret`).
    rng: StdRng,
    rate: HandshakeRate,
    counts: ConnectionCounts,
    pending_auth: Vec<secure::PendingAuth>,
    next_auth_id: u64,
    /// Reused to build handshake datagrams without allocating each time.
    scratch: Vec<u8>,
    /// Reused for the plaintext of each session datagram.
    plain: Vec<u8>,
    /// Reused for the token a HELLO carries.
    token_buf: Vec<u8>,
    /// Secure mode, server: the static keys HELLOs name by key id.
    server_keys: Vec<crate::secure::StaticKey>,
    /// Tests only: where handshake ephemerals come from instead of the OS.
    #[cfg(feature = "test-keys")]
    test_ephemerals: Option<StdRng>,
    /// Secure mode: convs of sessions that closed recently, oldest first, with when.
    recently_closed: VecDeque<(u32, u64)>,
    detectors: Detectors,
    /// Secure mode, server: the rate of stateless RESETs per source and overall.
    reset_rate: Option<HandshakeRate>,
    /// The extended clock when the endpoint started, for the restart grace period.
    started_at: u64,
    /// Counters of closed sessions, summed, and the live-session high-water mark (metrics).
    totals: crate::metrics::SessionTotals,
    /// Raw mode with FEC (`config.fec`).
    fec: Option<raw_fec::FecState>,
    /// Secure mode: the FEC codec this endpoint sends with (`config.fec`) and its peers'.
    secure_fec: crate::secure::fec::Codecs,
    /// Raw mode: (address, conv) pairs closed for a protocol violation, refused for a while.
    raw_closed: raw_closed::RawClosed,
    /// Secure mode: received datagrams waiting for the application.
    inbox: datagram::DatagramInbox,
}

mod datagram;
mod mode_mismatch;
mod raw_closed;
mod raw_fec;
mod secure;

impl Endpoint {
    /// A new endpoint whose clock reads `now`.
    pub fn new(config: EndpointConfig, now: Millis) -> Result<Self, ConfigError> {
        config.session.validate()?;
        config.validate_fec(&config.session)?;
        let fec = match config.fec {
            Some(fec) if config.mode == crate::config::Mode::Raw => {
                Some(raw_fec::FecState::new(crate::fec::Codec::new(fec)?))
            }
            _ => None,
        };
        let secure_fec = crate::secure::fec::Codecs::new(
            config
                .fec
                .filter(|_| config.mode == crate::config::Mode::Secure),
        )?;
        if config.mode == crate::config::Mode::Secure {
            secure::secure_session_config(&config.session).validate()?;
        }
        // Independent keys for independent uses, all from the one secret.
        let derive = |label: &[u8]| TagKey::new(&config.secret).mac(label);
        let mut rate_key = [0u8; 8];
        rate_key.copy_from_slice(&derive(b"rate table")[..8]);
        if config.server_keys.len() > crate::config::MAX_SERVER_KEYS {
            return Err(ConfigError::TooManyServerKeys(config.server_keys.len()));
        }
        let mut server_keys = config.server_keys.clone();
        for (i, key) in server_keys.iter().enumerate() {
            if server_keys[..i].iter().any(|k| k.id() == key.id()) {
                return Err(ConfigError::DuplicateServerKey);
            }
        }
        if server_keys.is_empty()
            && config.mode == crate::config::Mode::Secure
            && config.accept_inbound
        {
            // No key configured: one for this endpoint's life, from its secret (the runtime
            // fills that from the OS), so clients must pin its public key each run.
            server_keys.push(crate::secure::StaticKey::from_private(derive(
                b"kcpwatch v2 static key",
            )));
        }
        Ok(Self {
            by_conv: HashMap::new(),
            by_nonce: HashMap::new(),
            cookies: CookieJar::new(&derive(b"cookies"), config.cookie_slot_ms),
            rng: StdRng::from_seed(derive(b"session rng")),
            rate: HandshakeRate::new(u64::from_le_bytes(rate_key)),
            counts: ConnectionCounts::default(),
            pending_auth: Vec::new(),
            next_auth_id: 1,
            scratch: Vec::new(),
            plain: Vec::new(),
            token_buf: Vec::new(),
            server_keys,
            #[cfg(feature = "test-keys")]
            test_ephemerals: config.test_ephemeral_seed.map(StdRng::from_seed),
            recently_closed: VecDeque::new(),
            totals: Default::default(),
            fec,
            secure_fec,
            raw_closed: Default::default(),
            inbox: Default::default(),
            reset_rate: (config.mode == crate::config::Mode::Secure && config.accept_inbound)
                .then(|| HandshakeRate::new(u64::from_le_bytes(rate_key).rotate_left(17))),
            started_at: u64::from(now),
            detectors: Detectors::new(
                config.detectors.clone(),
                u64::from_le_bytes(rate_key) ^ 0x5bd1_e995,
            ),
            uids: UidGenerator::new(config.rng_seed),
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
            unconfirmed: 0,
            by_key: HashMap::new(),
            timers: Default::default(),
            tx: Transmits::shared(),
            events: VecDeque::new(),
            dirty: Vec::new(),
            clock: ExtendedClock::new(now),
            stats: EndpointStats {
                fec: crate::fec::FecStats {
                    enabled: config.fec.is_some(),
                    ..Default::default()
                },
                ..Default::default()
            },
            security: VecDeque::new(),
            drop_sampler: Sampler::new(config.sample_burst, u64::from(config.sample_window_ms)),
            fail_sampler: Sampler::new(config.sample_burst, u64::from(config.sample_window_ms)),
            config,
        })
    }

    /// A handshake ephemeral private key from the test generator, if a test set one; `None`
    /// (the operating system's random source, through snow) otherwise.
    pub(crate) fn test_ephemeral(&mut self) -> Option<[u8; 32]> {
        #[cfg(feature = "test-keys")]
        if let Some(rng) = self.test_ephemerals.as_mut() {
            return Some(rand::Rng::gen(rng));
        }
        None
    }

    /// Secure mode, server: the static keys it answers for (the configured ones, or the one it
    /// made for itself). Clients pin a public key of one of them.
    pub fn server_keys(&self) -> &[crate::secure::StaticKey] {
        &self.server_keys
    }

    /// Appends to `out` a session datagram of `kind` with `body` and `packet_number`, sealed
    /// with the sending key of `handle`'s session (its packet counter untouched); returns the
    /// session's conv, or `None` without a secure session. For tests and the fuzz harness
    /// only, to speak for a real peer: the key never leaves the endpoint.
    #[cfg(feature = "test-keys")]
    #[doc(hidden)]
    pub fn seal_for_tests(
        &self,
        handle: ConnectionHandle,
        kind: u8,
        packet_number: u64,
        body: &[u8],
        out: &mut Vec<u8>,
    ) -> Option<u32> {
        self.session(handle)?
            .seal_for_tests(kind, packet_number, body, out)
    }

    /// The FEC receiver of `handle`'s secure session, or `None` before the peer's first
    /// parity. For tests and the fuzz harness only, which check its memory bound.
    #[cfg(feature = "test-keys")]
    #[doc(hidden)]
    pub fn fec_receiver_for_tests(
        &self,
        handle: ConnectionHandle,
    ) -> Option<crate::secure::fec::Footprint> {
        Some(
            self.session(handle)?
                .secure
                .as_ref()?
                .fec
                .as_ref()?
                .footprint(),
        )
    }

    /// The endpoint's configuration.
    pub fn config(&self) -> &EndpointConfig {
        &self.config
    }

    /// Counters.
    pub fn stats(&self) -> &EndpointStats {
        &self.stats
    }

    /// Live connections: sessions the application was told of (a secure server session the
    /// client has not confirmed yet holds a place under the limits but is not one).
    pub fn connection_count(&self) -> usize {
        self.live - self.unconfirmed
    }

    /// Handles a datagram from `remote` that arrived on our address `local`.
    pub fn handle_datagram(
        &mut self,
        now: Millis,
        remote: SocketAddr,
        local: SocketAddr,
        datagram: &[u8],
    ) {
        self.clock.advance(now);
        self.stats.datagrams_in += 1;
        self.stats.bytes_in += datagram.len() as u64;
        self.tx.borrow_mut().now = now;
        if self.config.mode == crate::config::Mode::Secure {
            self.handle_secure_datagram(now, remote, local, datagram);
            return;
        }
        if self.fec.is_some() && self.handle_fec_datagram(now, remote, local, datagram) {
            return;
        }
        self.raw_input(now, remote, local, datagram);
    }

    /// A raw-mode KCP datagram: to its session (opened if it may open one) through the guard.
    /// The session's handle when the guard accepted it.
    fn raw_input(
        &mut self,
        now: Millis,
        remote: SocketAddr,
        local: SocketAddr,
        datagram: &[u8],
    ) -> Option<ConnectionHandle> {
        self.raw_deliver(now, remote, local, datagram, false)
    }

    /// [`Endpoint::raw_input`]; a datagram FEC `rebuilt` counts as `fec.recovered` instead of
    /// an accepted datagram (the datagram that completed its group is counted already).
    fn raw_deliver(
        &mut self,
        now: Millis,
        remote: SocketAddr,
        local: SocketAddr,
        datagram: &[u8],
        rebuilt: bool,
    ) -> Option<ConnectionHandle> {
        let Some(conv) = datagram_conv(datagram) else {
            self.drop_datagram(
                remote,
                local,
                None,
                None,
                GuardViolation::TooShort(datagram.len()),
                datagram.len(),
            );
            return None;
        };
        let handle = match self.by_key.get(&(remote, conv)) {
            Some(&handle) => handle,
            None => self.open_inbound(now, remote, local, conv, datagram)?,
        };
        let outcome = self.with_session(handle, |s| s.input(now, datagram));
        match outcome {
            Some(Ok(engine_error)) => {
                if rebuilt {
                    self.stats.fec.recovered += 1;
                } else {
                    self.stats.datagrams_accepted += 1;
                }
                if let Some(error) = engine_error {
                    self.engine_error(handle, error);
                }
                self.after_activity(handle, now);
                Some(handle)
            }
            Some(Err(violation)) => {
                let uid = self.session(handle).map(|s| s.uid);
                self.drop_datagram(remote, local, Some(conv), uid, violation, datagram.len());
                None
            }
            None => None,
        }
    }

    /// A datagram of `len` bytes from `remote` that was longer than the runtime's receive
    /// buffer, so only its start (`head`) was read: no endpoint accepts a datagram that large,
    /// so it is dropped (`bad_length` / `datagram_truncated`), counted, sampled into the log and
    /// fed to the detectors like every invalid datagram. The record names the connection the
    /// datagram's conv belongs to, if any (a peer whose `mtu` is larger than ours: raw mode
    /// cannot agree one, docs/protocol.md), so the loss is visible where it happens.
    pub fn handle_truncated(
        &mut self,
        now: Millis,
        remote: SocketAddr,
        local: SocketAddr,
        head: &[u8],
        len: usize,
    ) {
        self.clock.advance(now);
        self.stats.datagrams_in += 1;
        self.stats.bytes_in += len as u64;
        let conv = match self.config.mode {
            Mode::Raw => head
                .get(..4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            Mode::Secure => head
                .get(1..5)
                .filter(|_| head[0] & 0xF0 == 0x10)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        };
        let handle = conv.and_then(|conv| match self.config.mode {
            Mode::Raw => self.by_key.get(&(remote, conv)).copied(),
            Mode::Secure => self.by_conv.get(&conv).copied(),
        });
        let uid = handle.and_then(|h| self.session(h)).map(|s| s.uid);
        self.drop_trigger(
            remote,
            local,
            uid.and(conv),
            uid,
            DropTrigger::BadLength,
            "datagram_truncated",
            len,
        );
    }

    /// Validates the first datagram of an unknown (address, conv) and opens a session for it.
    fn open_inbound(
        &mut self,
        now: Millis,
        remote: SocketAddr,
        local: SocketAddr,
        conv: u32,
        datagram: &[u8],
    ) -> Option<ConnectionHandle> {
        if !self.config.accept_inbound {
            self.drop_trigger(
                remote,
                local,
                Some(conv),
                None,
                DropTrigger::UnknownConnection,
                "no_session",
                datagram.len(),
            );
            return None;
        }
        if self
            .raw_closed
            .blocks(&(remote, conv), self.clock.extended())
        {
            self.drop_trigger(
                remote,
                local,
                Some(conv),
                None,
                DropTrigger::UnknownConnection,
                RECENTLY_CLOSED,
                datagram.len(),
            );
            return None;
        }
        // ACKs and window probes cannot start a conversation: they answer one. Nor can a PUSH
        // that acknowledges our data (una > 0) when we have sent none. A client of a
        // restarted server sends exactly these; they are not handshakes (see `stale_rule`).
        if let Some(first) = crate::segment::SegmentHeader::parse(datagram) {
            if first.una != 0
                || matches!(
                    first.cmd,
                    crate::segment::CMD_ACK | crate::segment::CMD_WASK | crate::segment::CMD_WINS
                )
            {
                if mode_mismatch::secure_hello(datagram) {
                    self.mode_mismatch(remote, local, Some(conv), datagram.len());
                    return None;
                }
                let rule = self.stale_rule();
                self.drop_trigger(
                    remote,
                    local,
                    Some(conv),
                    None,
                    DropTrigger::UnknownConnection,
                    rule,
                    datagram.len(),
                );
                return None;
            }
        }

        let now_ms = self.unix_ms();
        self.detectors.handshake(remote.ip(), now_ms);
        self.report_alerts();
        if self.refused_by_detector(remote, local, conv) {
            return None;
        }
        // Validate against the state a fresh session would have before allocating anything.
        let session = &self.config.session;
        let no_flight = |_| None;
        let ctx = GuardContext {
            conv,
            mss: session.receive_mss(),
            max_fragments: session.max_fragments(),
            rcv_nxt: 0,
            rcv_wnd: session.receive_window,
            max_ahead: guard::ENGINE_MIN_WINDOW.max(u32::from(session.receive_window)),
            snd_una: 0,
            snd_nxt: 0,
            now,
            session_start: now,
            in_flight: &no_flight,
        };
        if let Err(violation) = guard::validate(&ctx, datagram) {
            if mode_mismatch::secure_hello(datagram) {
                self.mode_mismatch(remote, local, Some(conv), datagram.len());
                return None;
            }
            self.failed_attempt(
                remote,
                local,
                conv,
                FailReason::Malformed,
                violation.trigger(),
                violation.rule(),
            );
            return None;
        }
        if let Err(hit) = self
            .rate
            .admit(&self.config.limits, remote.ip(), self.clock.extended())
        {
            self.failed_attempt(
                remote,
                local,
                conv,
                FailReason::RateLimited,
                DropTrigger::RateLimited,
                hit.rule(),
            );
            return None;
        }
        if let Err(rule) = self.admits(remote) {
            self.failed_attempt(
                remote,
                local,
                conv,
                FailReason::Capacity,
                DropTrigger::OverLimit,
                rule,
            );
            return None;
        }
        let config = self.config.session;
        let handle =
            self.insert_session(now, remote, local, conv, &config, Direction::Inbound, None);
        self.stats.passive_opens += 1;
        self.opened(handle);
        let now_ms = self.unix_ms();
        let live = self.counts.for_ip(remote.ip());
        self.detectors.established(remote.ip(), live, now_ms);
        self.report_alerts();
        self.events.push_back(EndpointEvent::Accepted { handle });
        Some(handle)
    }

    /// Whether a new inbound session from `remote` fits every connection limit; the rule
    /// that refuses it otherwise.
    fn admits(&self, remote: SocketAddr) -> Result<(), &'static str> {
        if self.live + self.pending_auth.len() >= self.config.max_connections
            || self.slots.len() >= MAX_SLOTS && self.free.is_empty()
        {
            return Err("max_connections");
        }
        self.counts
            .admits(&self.config.limits, remote.ip())
            .map_err(|hit| hit.rule())
    }

    /// Records the opening of a connection: attempted, then established (raw mode has no
    /// handshake in between).
    fn opened(&mut self, handle: ConnectionHandle) {
        if !self.events_on() {
            return;
        }
        let Some(conn) = self.session(handle).map(Session::conn_ref) else {
            return;
        };
        self.emit(SecurityEvent::ConnectionAttempted(ConnectionAttempted {
            conn,
        }));
        self.emit(SecurityEvent::ConnectionStateUpdated(
            ConnectionStateUpdated {
                conn,
                old: ConnectionState::Attempted,
                new: ConnectionState::Established,
            },
        ));
        self.emit(SecurityEvent::ConnectionEstablished(
            ConnectionEstablished { conn, secure: None },
        ));
    }

    /// A first datagram that could not open a connection: the attempt and its failure, both
    /// sampled per reason so a flood of forged openings cannot flood the log.
    fn failed_attempt(
        &mut self,
        remote: SocketAddr,
        local: SocketAddr,
        conv: u32,
        reason: FailReason,
        trigger: DropTrigger,
        rule: &'static str,
    ) {
        self.stats.failed += 1;
        self.stats.failed_by_reason[fail_key(reason)] += 1;
        self.stats.dropped[EndpointStats::trigger_index(trigger)] += 1;
        self.detect_failure(remote, reason, rule);
        if reason == FailReason::Malformed {
            // A malformed opening is an invalid datagram too (KCPW-005), not only a failure.
            let now_ms = self.unix_ms();
            self.detectors
                .dropped(remote.ip(), trigger, Some(conv), now_ms);
            self.report_alerts();
        }
        if !self.events_on() {
            return;
        }
        let unix_ms = self.config.unix_ms_at_zero + self.clock.extended();
        let conn = ConnectionRef {
            uid: self.uids.next(unix_ms),
            conv,
            peer: remote,
            local,
            direction: Direction::Inbound,
            user: crate::events::UserId::NONE,
        };
        let failed = ConnectionFailed {
            conn,
            reason,
            trigger: Some(trigger),
            rule,
            suppressed: 0,
        };
        // Windows that ended before their timer ran are reported first, so this record starts
        // a new window as an individual one (suppressed 0) instead of absorbing an aggregate.
        self.report_sampled(self.clock.extended());
        let now = self.clock.extended();
        if let Some((mut failed, suppressed)) =
            self.fail_sampler.sample(fail_key(reason), now, failed)
        {
            failed.suppressed = suppressed;
            self.emit(SecurityEvent::ConnectionAttempted(ConnectionAttempted {
                conn,
            }));
            self.emit(SecurityEvent::ConnectionStateUpdated(
                ConnectionStateUpdated {
                    conn,
                    old: ConnectionState::Attempted,
                    new: ConnectionState::Closed,
                },
            ));
            self.emit(SecurityEvent::ConnectionFailed(failed));
        }
    }

    /// Opens a session to `remote` (a client, or a server talking first).
    pub fn connect(
        &mut self,
        now: Millis,
        remote: SocketAddr,
        local: SocketAddr,
        conv: u32,
        config: Option<&SessionConfig>,
    ) -> Result<ConnectionHandle, ConnectError> {
        self.clock.advance(now);
        if self.config.mode != crate::config::Mode::Raw {
            return Err(ConnectError::WrongMode(self.config.mode.as_str()));
        }
        let config = *config.unwrap_or(&self.config.session);
        config.validate()?;
        self.config.validate_fec(&config)?;
        if self.by_key.contains_key(&(remote, conv)) {
            return Err(ConnectError::Duplicate(remote, conv));
        }
        // Pending authentications hold a place too.
        if self.live + self.pending_auth.len() >= self.config.max_connections {
            return Err(ConnectError::Capacity(self.config.max_connections));
        }
        let handle =
            self.insert_session(now, remote, local, conv, &config, Direction::Outbound, None);
        self.stats.active_opens += 1;
        self.opened(handle);
        Ok(handle)
    }

    #[allow(clippy::too_many_arguments)]
    fn insert_session(
        &mut self,
        now: Millis,
        remote: SocketAddr,
        local: SocketAddr,
        conv: u32,
        config: &SessionConfig,
        direction: Direction,
        uid: Option<Uid>,
    ) -> ConnectionHandle {
        let unix_ms = self.config.unix_ms_at_zero + self.clock.extended();
        let uid = uid.unwrap_or_else(|| self.uids.next(unix_ms));
        // FEC puts its header before KCP's in every datagram: KCP gets the rest of the MTU.
        let fec_config;
        let config = match &self.fec {
            Some(_) => {
                fec_config = EndpointConfig::fec_session(config);
                &fec_config
            }
            None => config,
        };
        let mut session = Session::new(
            uid,
            conv,
            remote,
            local,
            config,
            now,
            self.clock.extended(),
            direction,
            self.tx.clone(),
        );
        if let Some(fec) = self.fec.as_mut() {
            // One encoder per remote: every session to it shares one seqid sequence.
            session.enable_fec(fec.attach(remote));
        }
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    session: None,
                    deadline: None,
                    last_conn: None,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let slot = &mut self.slots[index as usize];
        slot.session = Some(session);
        slot.deadline = None;
        let handle = ConnectionHandle::new(index, slot.generation);
        if self.config.mode == crate::config::Mode::Raw {
            self.by_key.insert((remote, conv), handle);
        }
        if direction == Direction::Inbound {
            self.counts.add(remote.ip());
        }
        self.live += 1;
        self.totals.note_live(self.live);
        self.reschedule(handle, now);
        handle
    }

    fn slot(&self, handle: ConnectionHandle) -> Option<&Slot> {
        let slot = self.slots.get(handle.index() as usize)?;
        (slot.generation & GENERATION_MASK == handle.generation() && slot.session.is_some())
            .then_some(slot)
    }

    fn session(&self, handle: ConnectionHandle) -> Option<&Session> {
        self.slot(handle).and_then(|s| s.session.as_ref())
    }

    /// Runs `f` on a session; a panic inside it ends that session with `internal_error` and
    /// never propagates.
    fn with_session<R>(
        &mut self,
        handle: ConnectionHandle,
        f: impl FnOnce(&mut Session) -> R,
    ) -> Option<R> {
        self.slot(handle)?;
        let session = self.slots[handle.index() as usize].session.as_mut()?;
        match catch_unwind(AssertUnwindSafe(|| f(session))) {
            Ok(result) => Some(result),
            Err(_) => {
                self.stats.panics += 1;
                self.close_now(handle, CloseReason::InternalError);
                None
            }
        }
    }

    /// After input or a command: signal readability, queue a flush and move the deadline.
    /// Whether the next message of a connection is larger than its `max_message_size`: the
    /// guard bounds each segment and the fragment count, not their product, so a peer can
    /// assemble a message past our limit. Such a peer has broken the contract of the session.
    fn oversized_head(&self, handle: ConnectionHandle) -> bool {
        self.session(handle).is_some_and(|s| {
            !s.config.stream
                && s.state == ConnectionState::Established
                && s.peek_size().is_some_and(|n| n > s.config.max_message_size)
        })
    }

    fn after_activity(&mut self, handle: ConnectionHandle, now: Millis) {
        if self.oversized_head(handle) {
            self.close_now(handle, CloseReason::ProtocolViolation);
            return;
        }
        let Some(session) = self.session(handle) else {
            return;
        };
        let readable = session.state == ConnectionState::Established
            && !session.readable_signalled
            && session.peek_size().is_some();
        let flush = session.flush_pending;
        if readable {
            if let Some(s) = self.slots[handle.index() as usize].session.as_mut() {
                s.readable_signalled = true;
            }
            self.events.push_back(EndpointEvent::Readable { handle });
        }
        if flush {
            self.dirty.push(handle);
        }
        self.reschedule(handle, now);
    }

    fn reschedule(&mut self, handle: ConnectionHandle, now: Millis) {
        let Some(session) = self.session(handle) else {
            return;
        };
        let deadline = session.next_deadline(now);
        // A deadline already past (a keepalive due while a handshake retransmission is being
        // answered, say) is due now: on the wrapping clock it would otherwise read as 49 days
        // ahead and the session would never be visited again.
        let ahead = crate::clock::diff(deadline, now).max(0) as u64;
        let extended = self.clock.extended() + ahead;
        let slot = &mut self.slots[handle.index() as usize];
        // A deadline that moves later keeps the earlier timer: that visit finds nothing due and
        // arms the real deadline then. Most reschedules move later (each ACK, each input while
        // idle), so this keeps the heap to about one entry per session instead of one per event.
        if slot.deadline.is_some_and(|armed| armed <= extended) {
            return;
        }
        slot.deadline = Some(extended);
        self.timers
            .schedule(extended, handle.index(), slot.generation);
        if self.timers.len() > 4 * self.live + 64 {
            let slots = &self.slots;
            self.timers.compact(|d, s, g| {
                let slot = &slots[s as usize];
                slot.generation == g && slot.deadline == Some(d)
            });
        }
    }

    /// The next time [`Endpoint::handle_timeout`] must run, if any session is live or a
    /// sampling window has counted drops to report.
    pub fn poll_timeout(&mut self) -> Option<Millis> {
        let samples = [
            self.drop_sampler.next_deadline(),
            self.fail_sampler.next_deadline(),
            self.pending_auth.iter().map(|p| p.deadline).min(),
        ]
        .into_iter()
        .flatten()
        .min();
        let mut session = None;
        while let Some((deadline, index, generation)) = self.timers.peek() {
            let slot = &self.slots[index as usize];
            if slot.generation == generation
                && slot.deadline == Some(deadline)
                && slot.session.is_some()
            {
                session = Some(deadline);
                break;
            }
            self.timers.pop();
        }
        [session, samples]
            .into_iter()
            .flatten()
            .min()
            .map(ExtendedClock::wrap)
    }

    /// Emits the aggregate records of sampling windows that have ended.
    fn report_sampled(&mut self, now_extended: u64) {
        // Runs for every dropped datagram: the common case (no window with counted drops has
        // ended) must cost a few compares, not the copies `take_expired` makes.
        let due = |deadline: Option<u64>| deadline.is_some_and(|d| d <= now_extended);
        if due(self.drop_sampler.next_deadline()) {
            for (mut last, count) in self.drop_sampler.take_expired(now_extended) {
                last.suppressed = count;
                self.emit(SecurityEvent::PacketDropped(last));
            }
        }
        if due(self.fail_sampler.next_deadline()) {
            for (mut last, count) in self.fail_sampler.take_expired(now_extended) {
                last.suppressed = count;
                self.emit(SecurityEvent::ConnectionFailed(last));
            }
        }
    }

    /// Runs every session whose deadline has passed.
    pub fn handle_timeout(&mut self, now: Millis) {
        let now_extended = self.clock.advance(now);
        self.tx.borrow_mut().now = now;
        self.report_sampled(now_extended);
        self.expire_pending_auth(now_extended);
        while let Some((deadline, index, generation)) = self.timers.peek() {
            if deadline > now_extended {
                break;
            }
            self.timers.pop();
            let slot = &mut self.slots[index as usize];
            if slot.generation != generation
                || slot.deadline != Some(deadline)
                || slot.session.is_none()
            {
                continue;
            }
            slot.deadline = None;
            let handle = ConnectionHandle::new(index, generation);
            if self.client_handshake_tick(handle, now) {
                continue;
            }
            let Some(reason) = self.with_session(handle, |s| {
                s.update(now);
                s.liveness(now)
            }) else {
                continue;
            };
            match reason {
                Some(reason) => self.close_now(handle, reason),
                None => self.after_activity(handle, now),
            }
        }
    }

    /// Sends ACKs and queued data of every session that has some, now.
    pub fn flush(&mut self, now: Millis) {
        self.clock.advance(now);
        self.tx.borrow_mut().now = now;
        // Taken and handed back so the list keeps its allocation from batch to batch.
        let mut dirty = std::mem::take(&mut self.dirty);
        for &handle in &dirty {
            let pending = self.session(handle).is_some_and(|s| s.flush_pending);
            if pending {
                let reason = self.with_session(handle, |s| {
                    s.flush(now);
                    s.liveness(now)
                });
                match reason {
                    Some(Some(reason)) => self.close_now(handle, reason),
                    Some(None) => self.reschedule(handle, now),
                    None => {}
                }
            }
        }
        dirty.clear();
        if self.dirty.is_empty() {
            self.dirty = dirty;
        }
    }

    /// Queues a message on a connection.
    pub fn send(
        &mut self,
        now: Millis,
        handle: ConnectionHandle,
        data: &[u8],
    ) -> Result<(), SendError> {
        self.clock.advance(now);
        let existed = self.slot(handle).is_some();
        let result = match self.with_session(handle, |s| s.send(data)) {
            // The engine panicked: the session is closed with `internal_error`, which is the
            // record of what happened; the send itself was no misuse.
            None if existed => return Err(SendError::UnknownConnection),
            None => Err(SendError::UnknownConnection),
            Some(Err(e)) => Err(e.into()),
            Some(Ok(())) => {
                self.dirty.push(handle);
                return Ok(());
            }
        };
        if let Err(error) = result {
            self.refused_send(handle, data.len(), error);
        }
        result
    }

    /// Records why a send was refused: application misuse is a protocol violation, an engine
    /// refusal a library error.
    fn refused_send(&mut self, handle: ConnectionHandle, size: usize, error: SendError) {
        let conn = self.known_conn(handle);
        let size = size as u64;
        let (violation, limit) = match error {
            SendError::UnknownConnection | SendError::Session(SessionSendError::NotOpen) => {
                (Violation::MessageOnClosedConnection, 0)
            }
            SendError::Session(SessionSendError::TooLarge { limit, .. }) => {
                (Violation::OversizedMessage, limit as u64)
            }
            SendError::Session(SessionSendError::QueueFull { limit, .. }) => {
                (Violation::SendQueueFull, limit as u64)
            }
            SendError::Session(SessionSendError::Empty) => (Violation::EmptyMessage, 0),
            SendError::Session(SessionSendError::Engine(code)) => {
                let message = CappedText::format(format_args!(
                    "the engine refused a {size}-byte message the session had accepted"
                ));
                self.engine_error(handle, EngineError { code, message });
                return;
            }
        };
        self.stats.violations[EndpointStats::violation_index(violation)] += 1;
        self.emit(SecurityEvent::ProtocolViolation(ProtocolViolation {
            conn,
            violation,
            size,
            limit,
        }));
    }

    /// Records a send the application layer refused before it reached the endpoint (the
    /// JavaScript API checks sizes and state itself and reports refusals here).
    pub fn report_violation(&mut self, handle: ConnectionHandle, violation: Violation, size: u64) {
        self.stats.violations[EndpointStats::violation_index(violation)] += 1;
        let session = self.session(handle);
        let conn = self.known_conn(handle);
        let limit = match (violation, session) {
            (Violation::OversizedMessage, Some(s)) => s.send_ceiling as u64,
            (Violation::SendQueueFull, Some(s)) => s.config.max_send_queue_bytes as u64,
            _ => 0,
        };
        self.emit(SecurityEvent::ProtocolViolation(ProtocolViolation {
            conn,
            violation,
            size,
            limit,
        }));
    }

    /// The identity of a live connection, or of the one that last closed in the handle's slot.
    fn known_conn(&self, handle: ConnectionHandle) -> Option<ConnectionRef> {
        if let Some(session) = self.session(handle) {
            return Some(session.conn_ref());
        }
        let slot = self.slots.get(handle.index() as usize)?;
        let next = handle.generation().wrapping_add(1) & GENERATION_MASK;
        (slot.generation & GENERATION_MASK == next)
            .then_some(slot.last_conn)
            .flatten()
    }

    fn engine_error(&mut self, handle: ConnectionHandle, error: EngineError) {
        let conn = self.session(handle).map(Session::conn_ref);
        self.emit(SecurityEvent::Error(ErrorEvent {
            conn,
            peer: None,
            local: None,
            error_type: ErrorType::Library,
            code: error.code,
            message: error.message,
            suppressed: 0,
        }));
    }

    /// Size of the next message on a connection, if one is ready.
    pub fn peek_size(&self, handle: ConnectionHandle) -> Option<usize> {
        let session = self.session(handle)?;
        if session.state != ConnectionState::Established {
            return None;
        }
        session
            .peek_size()
            .filter(|&n| session.config.stream || n <= session.config.max_message_size)
    }

    /// Moves the next message of a connection into `buf` (at least [`Endpoint::peek_size`]
    /// bytes). `None` when no message is ready; then the next arrival signals `Readable` again.
    pub fn recv(&mut self, handle: ConnectionHandle, buf: &mut [u8]) -> Option<usize> {
        self.slot(handle)?;
        let ready = self.peek_size(handle);
        if ready.is_none() && self.oversized_head(handle) {
            self.close_now(handle, CloseReason::ProtocolViolation);
            return None;
        }
        let session = self.slots[handle.index() as usize].session.as_mut()?;
        if ready.is_none() {
            session.readable_signalled = false;
            return None;
        }
        let n = self.with_session(handle, |s| s.recv(buf))??;
        self.dirty.push(handle);
        Some(n)
    }

    /// Payload bytes queued on a connection and not yet acknowledged by the peer.
    pub fn waiting_bytes(&self, handle: ConnectionHandle) -> Option<usize> {
        self.session(handle).map(Session::waiting_bytes)
    }

    /// Payload bytes the peer has acknowledged over the connection's life.
    pub fn acked_bytes(&self, handle: ConnectionHandle) -> Option<u64> {
        self.session(handle).map(Session::acked_bytes)
    }

    /// Closes a connection gracefully: queued data keeps flowing for up to the linger time,
    /// then the connection closes with `local_closed`.
    pub fn close(&mut self, now: Millis, handle: ConnectionHandle) {
        self.close_as(now, handle, None, CloseReason::LocalClosed);
    }

    /// [`Endpoint::close`] with the application's close code and text: a secure session's
    /// DISCONNECT carries them to the peer, and both sides' close records show them. Raw KCP
    /// has no way to carry them; they are only recorded locally.
    pub fn close_with(&mut self, now: Millis, handle: ConnectionHandle, close: crate::AppClose) {
        if self.slot(handle).is_some() {
            if let Some(session) = self.slots[handle.index() as usize].session.as_mut() {
                session.set_app_close(close);
            }
        }
        self.close_as(now, handle, None, CloseReason::LocalClosed);
    }

    /// Ends every connection gracefully with `shutdown`: queued data keeps flowing for up to
    /// `linger_ms` (each connection's own linger when `None`), then each closes; no new
    /// connection is accepted from now on. Handshakes in progress and pending authentications
    /// end at once. [`Endpoint::shutdown`] still ends whatever is left.
    pub fn shutdown_gracefully(&mut self, now: Millis, linger_ms: Option<u32>) {
        self.clock.advance(now);
        self.config.accept_inbound = false;
        let handles: Vec<ConnectionHandle> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, slot)| slot.session.is_some())
            .map(|(index, slot)| ConnectionHandle::new(index as u32, slot.generation))
            .collect();
        for handle in handles {
            self.close_as(now, handle, linger_ms, CloseReason::Shutdown);
        }
        self.refuse_pending_auth_for_shutdown();
    }

    fn close_as(
        &mut self,
        now: Millis,
        handle: ConnectionHandle,
        linger_ms: Option<u32>,
        reason: CloseReason,
    ) {
        self.clock.advance(now);
        // A handshake in progress has nothing to flush: it ends now.
        if self
            .session(handle)
            .is_some_and(|s| s.state == ConnectionState::Handshaking)
        {
            self.close_now(handle, reason);
            return;
        }
        let was_established = self
            .session(handle)
            .is_some_and(|s| s.state == ConnectionState::Established);
        let reason = self.with_session(handle, |s| {
            let linger = linger_ms.unwrap_or(s.config.linger_ms);
            s.begin_close_as(now, linger, reason);
            s.liveness(now)
        });
        if was_established && reason.is_some() {
            if let Some(conn) = self.session(handle).map(Session::conn_ref) {
                self.emit(SecurityEvent::ConnectionStateUpdated(
                    ConnectionStateUpdated {
                        conn,
                        old: ConnectionState::Established,
                        new: ConnectionState::Closing,
                    },
                ));
            }
        }
        match reason {
            Some(Some(reason)) => self.close_now(handle, reason),
            Some(None) => self.reschedule(handle, now),
            None => {}
        }
    }

    /// Ends every connection with `shutdown`.
    pub fn shutdown(&mut self, now: Millis) {
        self.clock.advance(now);
        let handles: Vec<ConnectionHandle> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, slot)| slot.session.is_some())
            .map(|(index, slot)| ConnectionHandle::new(index as u32, slot.generation))
            .collect();
        for handle in handles {
            self.close_now(handle, CloseReason::Shutdown);
        }
        self.refuse_pending_auth_for_shutdown();
    }

    /// Takes a session out of its slot and every index; the handle is stale afterwards.
    fn remove_session(&mut self, handle: ConnectionHandle) -> Option<Session> {
        let slot = self.slots.get_mut(handle.index() as usize)?;
        if slot.generation & GENERATION_MASK != handle.generation() {
            return None;
        }
        let session = slot.session.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        slot.deadline = None;
        self.free.push(handle.index());
        if self.by_key.get(&(session.remote, session.conv)) == Some(&handle) {
            self.by_key.remove(&(session.remote, session.conv));
        }
        if let Some(fec) = self.fec.as_mut() {
            fec.forget(session.remote);
        }
        if let Some(secure) = session.secure.as_ref() {
            if self.by_conv.get(&session.conv) == Some(&handle) {
                self.by_conv.remove(&session.conv);
                secure::remember_closed(
                    &mut self.recently_closed,
                    session.conv,
                    self.clock.extended(),
                );
            }
            if self.by_nonce.get(&secure.nonce) == Some(&handle) {
                self.by_nonce.remove(&secure.nonce);
            }
        }
        if session.direction == Direction::Inbound {
            self.counts.remove(session.remote.ip());
        }
        self.live -= 1;
        Some(session)
    }

    /// Ends a connection at once.
    pub fn close_now(&mut self, handle: ConnectionHandle, reason: CloseReason) {
        if self.session(handle).is_some_and(Session::unconfirmed) {
            // Never announced: it ends as a failed attempt, not as a connection.
            self.abandon_unconfirmed(handle, reason);
            return;
        }
        let Some(mut session) = self.remove_session(handle) else {
            return;
        };
        if reason == CloseReason::ProtocolViolation
            && session.secure.is_none()
            && session.direction == Direction::Inbound
        {
            let until = self.clock.extended() + u64::from(session.config.idle_timeout_ms);
            self.raw_closed
                .insert((session.remote, session.conv), until);
        }
        if reason == CloseReason::DeadLink {
            let now_ms = self.unix_ms();
            self.detectors.dead_link(now_ms);
            self.report_alerts();
        }
        // Before the summary, so that its message counters include them. A panicked engine
        // is not read again.
        let unread = if reason == CloseReason::InternalError {
            Vec::new()
        } else {
            catch_unwind(AssertUnwindSafe(|| session.take_unread())).unwrap_or_default()
        };
        if reason != CloseReason::PeerClosed {
            // The engine may be what panicked; the DISCONNECT only touches the sink.
            let _ = catch_unwind(AssertUnwindSafe(|| session.send_disconnect(reason)));
        }
        self.stats.closed += 1;
        // A panicking engine may have left its state inconsistent; the summary only reads
        // plain counters, but guard it all the same.
        let now_extended = self.clock.extended();
        let old_state = session.state;
        session.state = ConnectionState::Closed;
        let conn = session.conn_ref();
        self.slots[handle.index() as usize].last_conn = Some(conn);
        let params = session.config;
        let summary = catch_unwind(AssertUnwindSafe(|| session.summary(now_extended)));
        if reason == CloseReason::InternalError {
            self.emit(SecurityEvent::Error(ErrorEvent {
                conn: Some(conn),
                peer: None,
                local: None,
                error_type: ErrorType::Library,
                code: "KCP_ENGINE_PANIC",
                message: CappedText::format("the KCP engine panicked; the session was discarded"),
                suppressed: 0,
            }));
        }
        self.emit(SecurityEvent::ConnectionStateUpdated(
            ConnectionStateUpdated {
                conn,
                old: old_state,
                new: ConnectionState::Closed,
            },
        ));
        // A panicking engine may have left counters unreadable; the close is recorded all the
        // same, with what could be read.
        let summary = summary.unwrap_or_else(|_| ConnectionSummary::empty(conn));
        self.totals.add(&summary);
        let (peer_reason, app_close) = (session.peer_reason(), session.app_close());
        self.emit(SecurityEvent::ConnectionClosed(ConnectionClosed {
            conn,
            reason,
            initiator: reason.initiator(),
            peer_reason,
            app_close,
            summary,
            params,
        }));
        self.events.push_back(EndpointEvent::Closed {
            handle,
            reason,
            peer_reason,
            app_close: Box::new(app_close),
            summary: Box::new(summary),
            unread,
        });
    }

    /// The next event, oldest first.
    pub fn poll_event(&mut self) -> Option<EndpointEvent> {
        self.events.pop_front()
    }

    /// The next security event, oldest first (only recorded when
    /// [`EndpointConfig::event_level`] is set). Events of one connection come in order.
    pub fn poll_security_event(&mut self) -> Option<SecurityEvent> {
        self.security.pop_front()
    }

    /// Records a security event that happened outside the endpoint (socket errors, stats), so
    /// it is ordered with the endpoint's own.
    pub fn record(&mut self, event: SecurityEvent) {
        self.emit(event);
    }

    /// The connection a peer address and conv belong to, for events about a peer (an ICMP
    /// error names only the address).
    pub fn connection_for_peer(&self, peer: SocketAddr) -> Option<ConnectionRef> {
        self.slots
            .iter()
            .filter_map(|slot| slot.session.as_ref())
            .find(|session| session.remote == peer)
            .map(Session::conn_ref)
    }

    /// The rule for a datagram that only an existing session sends (a KCP ACK, window probe or
    /// PUSH acknowledging data in raw mode; DATA or KEEPALIVE in secure mode) for a session we
    /// do not have: within two idle timeouts of the endpoint's start it is most likely a
    /// player of the process before a restart, still retransmitting, so it is dropped as
    /// `stale_session`, which the detectors count only for conv scanning (KCPW-004), not as an
    /// invalid datagram (KCPW-005) or a handshake; later it is `no_session` and counts fully.
    fn stale_rule(&self) -> &'static str {
        let grace = 2 * u64::from(self.config.session.idle_timeout_ms);
        if self.clock.extended().saturating_sub(self.started_at) < grace {
            STALE_SESSION
        } else {
            "no_session"
        }
    }

    /// The OS reported that a datagram to `peer` was refused or could not be routed (an ICMP
    /// port, host or network unreachable). Nothing authenticates ICMP, so it is a hint: a
    /// session with that peer ends as `dead_link` only after [`UNREACHABLE_REPORTS_TO_CLOSE`]
    /// reports in a row, spanning at least a third of its idle timeout, with no valid datagram
    /// from the peer in between (a live peer sends one within that span: secure-mode
    /// keepalives go out every quarter of the idle timeout). So a crashed player's session
    /// ends in a third of the idle timeout instead of all of it, and a forged ICMP message
    /// cannot end a session whose peer is talking. O(live sessions): the OS rate-limits
    /// these reports and the runtime reads a bounded number per batch.
    pub fn peer_unreachable(&mut self, now: Millis, peer: SocketAddr) -> Unreachable {
        self.clock.advance(now);
        let mut outcome = Unreachable::NoSession;
        for index in 0..self.slots.len() {
            let slot = &mut self.slots[index];
            let generation = slot.generation;
            let Some(session) = slot.session.as_mut() else {
                continue;
            };
            if session.remote == peer
                && session.state == ConnectionState::Handshaking
                && session.direction == Direction::Outbound
            {
                self.stats.unreachable_reports += 1;
                let handle = ConnectionHandle::new(index as u32, generation);
                match self.handshake_unreachable(handle) {
                    Some(closed @ Unreachable::Closed(_)) => outcome = closed,
                    Some(first) if outcome == Unreachable::NoSession => outcome = first,
                    None if outcome == Unreachable::NoSession => outcome = Unreachable::Repeat,
                    _ => {}
                }
                continue;
            }
            if session.remote != peer
                || !matches!(
                    session.state,
                    ConnectionState::Established | ConnectionState::Closing
                )
            {
                continue;
            }
            self.stats.unreachable_reports += 1;
            let last_received = session.last_received();
            let episode = &mut session.unreachable;
            if episode.reports == 0 || episode.last_received != last_received {
                *episode = crate::session::Unreachability {
                    reports: 1,
                    since: now,
                    last_received,
                };
                if !matches!(outcome, Unreachable::Closed(_)) {
                    outcome = Unreachable::FirstReport(session.conn_ref());
                }
                continue;
            }
            episode.reports = episode.reports.saturating_add(1);
            let span = (session.config.idle_timeout_ms / 3).max(1);
            let lasted = crate::clock::diff(now, episode.since);
            if episode.reports >= UNREACHABLE_REPORTS_TO_CLOSE
                && i64::from(lasted) >= i64::from(span)
            {
                let conn = session.conn_ref();
                self.close_now(
                    ConnectionHandle::new(index as u32, generation),
                    CloseReason::DeadLink,
                );
                outcome = Unreachable::Closed(conn);
            } else if outcome == Unreachable::NoSession {
                outcome = Unreachable::Repeat;
            }
        }
        outcome
    }

    /// A datagram of the other mode (a secure HELLO at a raw server, plain KCP at a secure
    /// one): dropped, counted and recorded as `bad_cmd` / `mode_mismatch`, never answered.
    fn mode_mismatch(
        &mut self,
        remote: SocketAddr,
        local: SocketAddr,
        conv: Option<u32>,
        len: usize,
    ) {
        self.stats.mode_mismatch += 1;
        self.drop_trigger(
            remote,
            local,
            conv,
            None,
            DropTrigger::BadCmd,
            MODE_MISMATCH,
            len,
        );
    }

    /// Unix time in milliseconds by the endpoint's clock.
    fn unix_ms(&self) -> u64 {
        self.config.unix_ms_at_zero + self.clock.extended()
    }

    /// Hands a failed attempt to the detectors (and its per-address cap refusal, if it was one).
    fn detect_failure(&mut self, remote: SocketAddr, reason: FailReason, rule: &'static str) {
        let cap = matches!(
            rule,
            "max_connections_per_ip" | "max_connections_per_prefix"
        );
        let now_ms = self.unix_ms();
        self.detectors.failed(remote.ip(), reason, cap, now_ms);
        self.report_alerts();
    }

    /// Enforcement: refuses a new connection from a source a detector refuses for now.
    fn refused_by_detector(&mut self, remote: SocketAddr, local: SocketAddr, conv: u32) -> bool {
        if !self.detectors.is_refused(remote.ip(), self.unix_ms()) {
            return false;
        }
        self.stats.refused_by_detector += 1;
        self.failed_attempt(
            remote,
            local,
            conv,
            FailReason::RateLimited,
            DropTrigger::RateLimited,
            "refused_by_detector",
        );
        true
    }

    /// Records the alerts the detectors raised.
    fn report_alerts(&mut self) {
        while let Some(alert) = self.detectors.pop_alert() {
            self.stats.alerts += 1;
            self.emit(SecurityEvent::Alert(alert));
        }
    }

    /// The detectors (for their memory bound and counters).
    pub fn detectors(&self) -> &Detectors {
        &self.detectors
    }

    fn events_on(&self) -> bool {
        self.config.event_level.is_some()
    }

    fn emit(&mut self, event: SecurityEvent) {
        let Some(level) = self.config.event_level else {
            return;
        };
        let severity = event.severity();
        if severity > level {
            return;
        }
        let limit = SECURITY_QUEUE_LIMIT.max(
            self.config
                .max_connections
                .saturating_mul(SECURITY_EVENTS_PER_CONNECTION),
        );
        if self.security.len() >= limit {
            self.stats.events_lost += 1;
            self.stats.events_lost_by_severity[usize::from(severity.code())] += 1;
            return;
        }
        self.security.push_back(event);
    }

    /// Datagrams waiting to be sent. Clear them with [`Endpoint::clear_transmits`] or
    /// [`Endpoint::consume_transmits`] once sent.
    pub fn transmits(&self) -> Ref<'_, Transmits> {
        self.tx.borrow()
    }

    /// Forgets every waiting datagram.
    pub fn clear_transmits(&mut self) {
        self.tx.borrow_mut().clear();
    }

    /// Forgets the first `count` waiting datagrams.
    pub fn consume_transmits(&mut self, count: usize) {
        self.tx.borrow_mut().consume(count);
    }

    /// A connection's id, addresses and conv.
    pub fn connection_info(&self, handle: ConnectionHandle) -> Option<ConnectionInfo> {
        let s = self.session(handle)?;
        Some(ConnectionInfo {
            uid: s.uid,
            conv: s.conv,
            remote: s.remote,
            local: s.local,
            state: s.state,
            max_message_size: s.send_ceiling,
            max_datagram_size: if s.secure.is_some() {
                // The session's MTU already leaves room for the session framing.
                s.config
                    .mtu
                    .saturating_sub(crate::secure::datagram::DATAGRAM_HEADER_LEN)
            } else {
                0
            },
        })
    }

    /// Per-session counters summed over every session so far: the closed ones, plus the live
    /// ones as they are now (O(live sessions), for metrics reads).
    pub fn session_totals(&self) -> crate::metrics::SessionTotals {
        let now = self.clock.extended();
        let mut totals = self.totals;
        for session in self.slots.iter().filter_map(|slot| slot.session.as_ref()) {
            totals.add(&session.summary(now));
        }
        totals
    }

    /// A connection's summary so far.
    pub fn connection_summary(&self, handle: ConnectionHandle) -> Option<ConnectionSummary> {
        self.session(handle)
            .map(|s| s.summary(self.clock.extended()))
    }

    /// Makes the next engine call of a connection panic, to exercise the containment that
    /// turns an engine failure into an `internal_error` close. For tests and fault drills.
    pub fn inject_engine_fault(&mut self, handle: ConnectionHandle) -> bool {
        if self.slot(handle).is_none() {
            return false;
        }
        if let Some(s) = self.slots[handle.index() as usize].session.as_mut() {
            s.poisoned = true;
            s.flush_pending = true;
        }
        self.dirty.push(handle);
        true
    }

    fn drop_datagram(
        &mut self,
        remote: SocketAddr,
        local: SocketAddr,
        conv: Option<u32>,
        uid: Option<crate::uid::Uid>,
        violation: GuardViolation,
        len: usize,
    ) {
        self.drop_trigger(
            remote,
            local,
            conv,
            uid,
            violation.trigger(),
            violation.rule(),
            len,
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn drop_trigger(
        &mut self,
        remote: SocketAddr,
        local: SocketAddr,
        conv: Option<u32>,
        uid: Option<crate::uid::Uid>,
        trigger: DropTrigger,
        rule: &'static str,
        len: usize,
    ) {
        let key = EndpointStats::trigger_index(trigger);
        self.stats.dropped[key] += 1;
        let now_ms = self.unix_ms();
        match conv.filter(|_| rule == STALE_SESSION) {
            // A returning player of the process before a restart: only the conv-scan rule.
            Some(conv) => self.detectors.stale(remote.ip(), conv, now_ms),
            None => self.detectors.dropped(remote.ip(), trigger, conv, now_ms),
        }
        self.report_alerts();
        if !self.events_on() {
            return;
        }
        let dropped = PacketDropped {
            remote,
            local,
            conv,
            uid,
            trigger,
            rule,
            len: len as u32,
            suppressed: 0,
        };
        // As in `failed_attempt`: ended windows are reported before a new one starts.
        self.report_sampled(self.clock.extended());
        let now = self.clock.extended();
        if let Some((mut dropped, suppressed)) = self.drop_sampler.sample(key, now, dropped) {
            dropped.suppressed = suppressed;
            self.emit(SecurityEvent::PacketDropped(dropped));
        }
    }
}

/// Identity of a live connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// Connection id.
    pub uid: Uid,
    /// KCP conversation id.
    pub conv: u32,
    /// The peer.
    pub remote: SocketAddr,
    /// Our address.
    pub local: SocketAddr,
    /// Lifecycle state.
    pub state: ConnectionState,
    /// The largest message this connection sends (message mode): the configured
    /// `max_message_size`, lowered by a secure handshake to the peer's `max_message_size` and
    /// to what the peer's receive window reassembles at the agreed MTU (a client's is final
    /// once established).
    pub max_message_size: usize,
    /// The largest unreliable datagram payload this connection sends (secure mode: the agreed
    /// MTU minus 31 once the handshake completed, a client's own MTU minus 31 before); 0 in raw
    /// mode.
    pub max_datagram_size: usize,
}

fn fail_key(reason: FailReason) -> usize {
    match reason {
        FailReason::HandshakeTimeout => 0,
        FailReason::InvalidCookie => 1,
        FailReason::ExpiredCookie => 2,
        FailReason::AuthRejected => 3,
        FailReason::RateLimited => 4,
        FailReason::Capacity => 5,
        FailReason::VersionMismatch => 6,
        FailReason::Malformed => 7,
        FailReason::DecryptFailed => 8,
        FailReason::UnknownServerKey => 9,
        FailReason::ServerAuthFailed => 10,
        FailReason::Unreachable => 11,
        FailReason::Shutdown => 12,
        FailReason::HandshakeAbandoned => 13,
        FailReason::StreamMismatch => 14,
    }
}

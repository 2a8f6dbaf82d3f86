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
//!
//! `Endpoint` routes and glues; three parts own the state (each says why in its own doc):
//! `Sessions` (`sessions.rs`: slots, the indexes by key/conv/nonce, timers, recently closed),
//! `Handshake` (`handshake.rs`: admission, cookies, pending authentications, server keys) and
//! `Reporter` (`reporter.rs`: stats, the security queue, samplers, detectors).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::clock::{ExtendedClock, Millis};
use crate::config::{ConfigError, EndpointConfig, Mode};
use crate::events::{ConnectionRef, Direction, DropRule};
use crate::exclusive::hold;
use crate::guard::GuardViolation;
use crate::lifecycle::{CloseReason, ConnectionState, DropTrigger};
use crate::secure::TagKey;
use crate::segment::datagram_conv;
use crate::session::{ConnectionSummary, Session};
use crate::transmit::Transmits;
use crate::uid::UidGenerator;

/// The drop rule of a datagram that only an existing session sends, for a session this endpoint
/// does not have, in the restart grace period (see [`Endpoint::stale_rule`]).
pub const STALE_SESSION: DropRule = DropRule::StaleSession;
/// The `unknown_connection` rule of a raw datagram from an (address, conv) whose session was
/// closed for a protocol violation less than an idle timeout ago (`raw_closed.rs`).
pub const RECENTLY_CLOSED: DropRule = DropRule::RecentlyClosed;
/// The drop rule (trigger `bad_cmd`) of a datagram of the other mode: a secure HELLO at a raw
/// server, plain KCP at a secure one (`mode_mismatch.rs`).
pub const MODE_MISMATCH: DropRule = DropRule::ModeMismatch;

/// ICMP unreachable reports in a row (with nothing received from the peer, over at least a
/// third of the idle timeout) after which a session ends as `dead_link`.
pub const UNREACHABLE_REPORTS_TO_CLOSE: u32 = 3;
/// A secure client's handshake fails as `unreachable` once ICMP reports came for this many
/// different HELLOs (the first and its retransmission 250 ms later) with no answer between.
pub const HANDSHAKE_UNREACHABLE_HELLOS: u32 = 2;

pub use datagram::{DatagramSendError, MAX_DATAGRAM_INBOX_BYTES, MAX_DATAGRAM_TX_BYTES};
pub use error::{ConnectError, SendError};
pub use event::{EndpointEvent, Unreachable};
pub use handle::ConnectionHandle;
use handshake::{Handshake, HelloFrom, Validated};
pub use info::ConnectionInfo;
use reporter::{Attempt, Dropped, Reporter};
use secure::Opened;
use sessions::Sessions;
pub use stats::EndpointStats;

/// One UDP socket's worth of KCP sessions.
pub struct Endpoint {
    config: EndpointConfig,
    /// Slots, the indexes that find a session, timers, recently closed sessions.
    sessions: Sessions,
    /// Admission (rates, per-address counts, cookies) and handshakes without a session yet.
    handshake: Handshake,
    /// Counters, security records, samplers and detectors.
    reporter: Reporter,
    /// Datagrams waiting to be sent, shared with every session's engine.
    tx: Arc<Mutex<Transmits>>,
    events: VecDeque<EndpointEvent>,
    /// Sessions with something to flush in [`Endpoint::flush`].
    dirty: Vec<ConnectionHandle>,
    clock: ExtendedClock,
    uids: UidGenerator,
    /// Reused to build handshake datagrams without allocating each time.
    scratch: Vec<u8>,
    /// Reused for the plaintext of each session datagram.
    plain: Vec<u8>,
    /// The extended clock when the endpoint started, for the restart grace period.
    started_at: u64,
    /// Raw mode with FEC (`config.fec`).
    fec: Option<raw_fec::FecState>,
    /// Secure mode: the FEC codec this endpoint sends with (`config.fec`) and its peers'.
    secure_fec: crate::secure::fec::Codecs,
    /// Secure mode: received datagrams waiting for the application.
    inbox: datagram::DatagramInbox,
}

// The runtime hands an endpoint from thread to thread (`crate::exclusive`): it must stay `Send`.
const _: fn() = || {
    fn send<T: Send>() {}
    send::<Endpoint>();
};

mod close;
mod datagram;
mod error;
mod event;
mod handle;
mod handshake;
mod info;
mod mode_mismatch;
mod open;
mod raw_closed;
mod raw_fec;
mod report;
mod reporter;
mod secure;
mod sessions;
mod stats;

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
        let rate_key = u64::from_le_bytes(rate_key);
        Ok(Self {
            handshake: Handshake::new(&config, derive, rate_key)?,
            scratch: Vec::new(),
            plain: Vec::new(),
            fec,
            secure_fec,
            inbox: Default::default(),
            started_at: u64::from(now),
            reporter: Reporter::new(&config, rate_key ^ 0x5bd1_e995),
            uids: UidGenerator::new(config.rng_seed),
            sessions: Sessions::default(),
            tx: Transmits::shared(),
            events: VecDeque::new(),
            dirty: Vec::new(),
            clock: ExtendedClock::new(now),
            config,
        })
    }

    /// Secure mode, server: the static keys it answers for (the configured ones, or the one it
    /// made for itself). Clients pin a public key of one of them.
    pub fn server_keys(&self) -> &[crate::secure::StaticKey] {
        self.handshake.server_keys()
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
        &self.reporter.stats
    }

    /// Live connections: sessions the application was told of (a secure server session the
    /// client has not confirmed yet holds a place under the limits but is not one).
    pub fn connection_count(&self) -> usize {
        self.sessions.connection_count()
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
        self.reporter.stats.datagrams_in += 1;
        self.reporter.stats.bytes_in += datagram.len() as u64;
        hold(&self.tx).now = now;
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
                Dropped::new(remote, local, datagram.len()),
                GuardViolation::TooShort(datagram.len()),
            );
            return None;
        };
        let handle = match self.sessions.by_key(remote, conv) {
            Some(handle) => handle,
            None => self.open_inbound(now, remote, local, conv, datagram)?,
        };
        let outcome = self.with_session(handle, |s| s.input(now, datagram));
        match outcome {
            Some(Ok(engine_error)) => {
                if rebuilt {
                    self.reporter.stats.fec.recovered += 1;
                } else {
                    self.reporter.stats.datagrams_accepted += 1;
                }
                if let Some(error) = engine_error {
                    self.engine_error(handle, error);
                }
                self.after_activity(handle, now);
                Some(handle)
            }
            Some(Err(violation)) => {
                let uid = self.session(handle).map(|s| s.uid);
                self.drop_datagram(
                    Dropped::new(remote, local, datagram.len())
                        .conv(Some(conv))
                        .uid(uid),
                    violation,
                );
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
        self.reporter.stats.datagrams_in += 1;
        self.reporter.stats.bytes_in += len as u64;
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
            Mode::Raw => self.sessions.by_key(remote, conv),
            Mode::Secure => self.sessions.by_conv(conv),
        });
        let uid = handle.and_then(|h| self.session(h)).map(|s| s.uid);
        self.drop_trigger(
            Dropped::new(remote, local, len)
                .conv(uid.and(conv))
                .uid(uid),
            DropTrigger::BadLength,
            DropRule::DatagramTruncated,
        );
    }

    fn session(&self, handle: ConnectionHandle) -> Option<&Session> {
        self.sessions.get(handle)
    }

    /// Runs `f` on a session; a panic inside it ends that session with `internal_error` and
    /// never propagates.
    fn with_session<R>(
        &mut self,
        handle: ConnectionHandle,
        f: impl FnOnce(&mut Session) -> R,
    ) -> Option<R> {
        let session = self.sessions.get_mut(handle)?;
        match catch_unwind(AssertUnwindSafe(|| f(session))) {
            Ok(result) => Some(result),
            Err(_) => {
                self.reporter.stats.panics += 1;
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
            if let Some(s) = self.sessions.get_mut(handle) {
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
        self.sessions.schedule(handle, extended);
    }

    /// The next time [`Endpoint::handle_timeout`] must run, if any session is live or a
    /// sampling window has counted drops to report.
    pub fn poll_timeout(&mut self) -> Option<Millis> {
        let samples = [
            self.reporter.next_deadline(),
            self.handshake.next_auth_deadline(),
        ]
        .into_iter()
        .flatten()
        .min();
        let session = self.sessions.next_deadline();
        [session, samples]
            .into_iter()
            .flatten()
            .min()
            .map(ExtendedClock::wrap)
    }

    /// Runs every session whose deadline has passed.
    pub fn handle_timeout(&mut self, now: Millis) {
        let now_extended = self.clock.advance(now);
        hold(&self.tx).now = now;
        self.reporter.report_sampled(now_extended);
        self.expire_pending_auth(now_extended);
        while let Some(handle) = self.sessions.pop_due(now_extended) {
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
        hold(&self.tx).now = now;
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
        let existed = self.session(handle).is_some();
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
        self.session(handle)?;
        let ready = self.peek_size(handle);
        if ready.is_none() && self.oversized_head(handle) {
            self.close_now(handle, CloseReason::ProtocolViolation);
            return None;
        }
        let session = self.sessions.get_mut(handle)?;
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

    /// The next event, oldest first.
    pub fn poll_event(&mut self) -> Option<EndpointEvent> {
        self.events.pop_front()
    }

    /// The connection a peer address and conv belong to, for events about a peer (an ICMP
    /// error names only the address).
    pub fn connection_for_peer(&self, peer: SocketAddr) -> Option<ConnectionRef> {
        self.sessions
            .iter()
            .find(|session| session.remote == peer)
            .map(Session::conn_ref)
    }

    /// The rule for a datagram that only an existing session sends (a KCP ACK, window probe or
    /// PUSH acknowledging data in raw mode; DATA or KEEPALIVE in secure mode) for a session we
    /// do not have: within two idle timeouts of the endpoint's start it is most likely a
    /// player of the process before a restart, still retransmitting, so it is dropped as
    /// `stale_session`, which the detectors count only for conv scanning (KCPW-004), not as an
    /// invalid datagram (KCPW-005) or a handshake; later it is `no_session` and counts fully.
    fn stale_rule(&self) -> DropRule {
        let grace = 2 * u64::from(self.config.session.idle_timeout_ms);
        if self.clock.extended().saturating_sub(self.started_at) < grace {
            STALE_SESSION
        } else {
            DropRule::NoSession
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
        for index in 0..self.sessions.slot_count() {
            let Some(handle) = self.sessions.handle_at(index) else {
                continue;
            };
            let Some(session) = self.sessions.get_mut(handle) else {
                continue;
            };
            if session.remote == peer
                && session.state == ConnectionState::Handshaking
                && session.direction == Direction::Outbound
            {
                self.reporter.stats.unreachable_reports += 1;
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
            self.reporter.stats.unreachable_reports += 1;
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
                self.close_now(handle, CloseReason::DeadLink);
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
        self.reporter.stats.mode_mismatch += 1;
        self.drop_trigger(
            Dropped::new(remote, local, len).conv(conv),
            DropTrigger::BadCmd,
            MODE_MISMATCH,
        );
    }

    /// Datagrams waiting to be sent. Clear them with [`Endpoint::clear_transmits`] or
    /// [`Endpoint::consume_transmits`] once sent.
    pub fn transmits(&self) -> MutexGuard<'_, Transmits> {
        hold(&self.tx)
    }

    /// Forgets every waiting datagram.
    pub fn clear_transmits(&mut self) {
        hold(&self.tx).clear();
    }

    /// Forgets the first `count` waiting datagrams.
    pub fn consume_transmits(&mut self, count: usize) {
        hold(&self.tx).consume(count);
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
        self.sessions.totals(self.clock.extended())
    }

    /// A connection's summary so far.
    pub fn connection_summary(&self, handle: ConnectionHandle) -> Option<ConnectionSummary> {
        self.session(handle)
            .map(|s| s.summary(self.clock.extended()))
    }

    /// Makes the next engine call of a connection panic, to exercise the containment that
    /// turns an engine failure into an `internal_error` close. For tests and fault drills.
    pub fn inject_engine_fault(&mut self, handle: ConnectionHandle) -> bool {
        let Some(s) = self.sessions.get_mut(handle) else {
            return false;
        };
        s.poisoned = true;
        s.flush_pending = true;
        self.dirty.push(handle);
        true
    }
}

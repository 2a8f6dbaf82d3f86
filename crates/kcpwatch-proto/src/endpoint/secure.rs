//! The secure-mode half of the endpoint (protocol version 2): the Noise NK handshake on both
//! sides, encrypted session datagrams, replay refusal, address migration and authentication
//! requests (`docs/protocol.md`).
//!
//! The server keeps nothing about a source, and does no Diffie-Hellman for it, until it returns
//! a valid cookie; every reply before that is a fixed-size datagram no larger than the HELLO
//! that caused it.

use std::net::SocketAddr;

use rand::Rng;

use super::{ConnectError, ConnectionHandle, Endpoint, EndpointEvent, EndpointStats, Session};
use crate::clock::{diff, Millis};
use crate::config::{Mode, SessionConfig};
use crate::events::{
    ConnectionAttempted, ConnectionEstablished, ConnectionFailed, ConnectionRef,
    ConnectionStateUpdated, Direction, FailReason, PeerAddressChanged, SecureSession,
    SecurityEvent, UserId,
};
use crate::guard::GuardViolation;
use crate::lifecycle::{CloseReason, ConnectionState, DropTrigger};
use crate::secure::keys::{open, Freshness, OpenError, Role, SessionKeys};
use crate::secure::noise::{ClientNoise, ServerNoise};
use crate::secure::wire::{
    self, AcceptPayload, KcpParams, RejectReason, ACCEPT_LEN, COOKIE_DATAGRAM_LEN, KEY_ID_LEN,
    MAX_TOKEN_LEN, REJECT_LEN, RESET_LEN, SESSION_OVERHEAD, SUITE_NK_25519_CHACHAPOLY_BLAKE2S,
    TYPE_ACCEPT, TYPE_COOKIE, TYPE_DATA, TYPE_DATAGRAM, TYPE_DISCONNECT, TYPE_FEC_PARITY,
    TYPE_HELLO, TYPE_KEEPALIVE, TYPE_REJECT, TYPE_RESET, VERSION,
};
use crate::secure::CookieCheck;
use crate::session::{AppClose, ClientHandshake, HELLO_RETRY_MS};
use crate::uid::Uid;

/// A validated client waiting for the application's answer to its token.
#[derive(Debug)]
pub(super) struct PendingAuth {
    pub(super) id: u64,
    uid: Uid,
    conv: u32,
    remote: SocketAddr,
    local: SocketAddr,
    nonce: [u8; 16],
    /// The handshake, between reading the HELLO and writing the ACCEPT.
    noise: ServerNoise,
    key_id: [u8; KEY_ID_LEN],
    /// The client's KCP parameters (its HELLO): usable, and in our stream mode.
    client: KcpParams,
    /// Extended clock reading after which the answer is too late.
    pub(super) deadline: u64,
    /// The user id the application's answer names ([`Endpoint::resolve_auth_as`]).
    user: UserId,
}

/// Stateless RESETs per second and burst, per source and overall. A restarted server's
/// players each need one; a NAT in front of many players gets them within a few seconds.
const RESET_RATES: crate::limits::Limits = crate::limits::Limits {
    max_per_ip: 0,
    max_per_prefix: 0,
    handshakes_per_ip: 10,
    handshake_burst_per_ip: 20,
    handshakes_global: 1_000,
    handshake_burst_global: 2_000,
};

/// How long datagrams for a closed session are recognised as its stragglers.
const RECENTLY_CLOSED_MS: u64 = 10_000;
/// Closed convs remembered at most (a burst of closes only shortens how long each is kept).
const RECENTLY_CLOSED_CAP: usize = 1024;

/// Notes that `conv` closed at `now`, so its peer's last datagrams are not mistaken for probes.
pub(super) fn remember_closed(
    list: &mut std::collections::VecDeque<(u32, u64)>,
    conv: u32,
    now: u64,
) {
    if list.len() >= RECENTLY_CLOSED_CAP {
        list.pop_front();
    }
    list.push_back((conv, now));
}

/// The engine's configuration in secure mode: the MTU leaves room for the session framing, so
/// datagrams on the wire are no larger than the configured MTU.
pub(super) fn secure_session_config(config: &SessionConfig) -> SessionConfig {
    SessionConfig {
        mtu: config.mtu.saturating_sub(SESSION_OVERHEAD),
        ..*config
    }
}

/// The engine's configuration for a session whose handshake agreed `agreed_mtu` (on the wire,
/// at least [`wire::MIN_MTU`], at most our own): the engine's MTU shrinks to it.
/// `max_message_size` stays ours: it is what we accept from the peer, whose own ceiling
/// ([`SessionConfig::send_ceiling`]) keeps its messages within it and within our window.
pub(super) fn agreed_session_config(config: &SessionConfig, agreed_mtu: u16) -> SessionConfig {
    SessionConfig {
        mtu: usize::from(agreed_mtu)
            .min(config.mtu + SESSION_OVERHEAD)
            .saturating_sub(SESSION_OVERHEAD),
        ..*config
    }
}

/// The KCP parameters this side states in its HELLO or ACCEPT (`config` is the engine's, the
/// session framing already taken off its MTU; `mtu` is the one to state on the wire).
fn own_params(config: &SessionConfig, mtu: u16) -> KcpParams {
    KcpParams {
        mtu,
        receive_window: config.receive_window,
        max_message_size: u32::try_from(config.max_message_size).unwrap_or(u32::MAX),
        stream: config.stream,
    }
}

/// The largest message a session with engine `config` may send to a peer that stated `peer`.
fn peer_ceiling(config: &SessionConfig, peer: &KcpParams) -> usize {
    config.send_ceiling(
        peer.receive_window,
        usize::try_from(peer.max_message_size).unwrap_or(usize::MAX),
    )
}

/// The engine's configuration when this side sends FEC (`secure::fec`): its datagrams leave
/// room for a parity datagram over them within the agreed MTU. `None` if the agreed MTU is too
/// small for that (the session then runs without sending FEC).
fn with_fec_room(config: &SessionConfig) -> Option<SessionConfig> {
    let fec = SessionConfig {
        mtu: config.mtu.checked_sub(crate::secure::fec::OVERHEAD)?,
        ..*config
    };
    // KCP's smallest MTU.
    if fec.mtu < 50 {
        return None;
    }
    Some(fec)
}

impl Endpoint {
    /// The session config and FEC codec of a session whose handshake agreed `agreed` (its
    /// engine config without FEC): FEC is sent when configured and the MTU leaves room.
    fn fec_for(
        &self,
        agreed: SessionConfig,
    ) -> (SessionConfig, Option<std::rc::Rc<crate::fec::Codec>>) {
        match self
            .secure_fec
            .own()
            .and_then(|codec| with_fec_room(&agreed).map(|c| (c, codec.clone())))
        {
            Some((config, codec)) => (config, Some(codec)),
            None => (agreed, None),
        }
    }

    fn keepalive_ms(&self) -> u32 {
        self.config
            .keepalive_ms
            .unwrap_or(self.config.session.idle_timeout_ms / 4)
            .max(50)
    }

    pub(super) fn handle_secure_datagram(
        &mut self,
        now: Millis,
        remote: SocketAddr,
        local: SocketAddr,
        datagram: &[u8],
    ) {
        match datagram.first() {
            None => self.drop_trigger(remote, local, None, None, DropTrigger::TooShort, "empty", 0),
            Some(&TYPE_HELLO) => self.server_hello(now, remote, local, datagram),
            Some(&(TYPE_COOKIE | TYPE_ACCEPT | TYPE_REJECT)) => {
                self.client_reply(now, remote, local, datagram)
            }
            Some(
                &(TYPE_DATA | TYPE_KEEPALIVE | TYPE_DISCONNECT | TYPE_DATAGRAM | TYPE_FEC_PARITY),
            ) => self.session_datagram(now, remote, local, datagram, false),
            Some(&TYPE_RESET) => self.client_reset(remote, local, datagram),
            Some(_) if super::mode_mismatch::raw_kcp(datagram) => {
                self.mode_mismatch(remote, local, None, datagram.len())
            }
            Some(_) => self.drop_trigger(
                remote,
                local,
                None,
                None,
                DropTrigger::BadCmd,
                "unknown_type",
                datagram.len(),
            ),
        }
    }

    /// Sends a handshake datagram that belongs to no session.
    fn send_unbound(
        &mut self,
        remote: SocketAddr,
        local: SocketAddr,
        datagram: &[u8],
        validated: bool,
    ) {
        self.tx.borrow_mut().push(remote, local, datagram);
        if !validated {
            self.stats.bytes_sent_unvalidated += datagram.len() as u64;
        }
    }

    fn send_reject(
        &mut self,
        remote: SocketAddr,
        local: SocketAddr,
        nonce: &[u8; 16],
        reason: RejectReason,
        app_code: u16,
        validated: bool,
    ) {
        let mut reject = [0; REJECT_LEN];
        let len = wire::write_reject(&mut reject, nonce, reason, app_code);
        self.send_unbound(remote, local, &reject[..len], validated);
        self.stats.rejects_sent += 1;
    }

    fn send_cookie(&mut self, remote: SocketAddr, local: SocketAddr, nonce: &[u8; 16]) {
        let unix_ms = self.config.unix_ms_at_zero + self.clock.extended();
        let cookie = self.cookies.mint(unix_ms, remote, nonce);
        let mut reply = [0; COOKIE_DATAGRAM_LEN];
        wire::write_cookie(&mut reply, nonce, &cookie);
        self.send_unbound(remote, local, &reply, false);
        self.stats.cookies_sent += 1;
    }

    /// A HELLO at a server: the stateless half until the cookie checks out.
    fn server_hello(
        &mut self,
        now: Millis,
        remote: SocketAddr,
        local: SocketAddr,
        datagram: &[u8],
    ) {
        let len = datagram.len();
        if !self.config.accept_inbound {
            self.drop_trigger(
                remote,
                local,
                None,
                None,
                DropTrigger::BadCmd,
                "hello_to_client",
                len,
            );
            return;
        }
        self.stats.hellos_received += 1;
        self.stats.bytes_received_unvalidated += len as u64;
        let now_ms = self.unix_ms();
        self.detectors.handshake(remote.ip(), now_ms);
        self.report_alerts();
        if self.refused_by_detector(remote, local, 0) {
            return;
        }
        let hello = match wire::parse_hello(datagram) {
            Ok(hello) => hello,
            Err(error) => {
                let (trigger, rule) = match error {
                    wire::WireError::TooShort => (DropTrigger::TooShort, "hello_too_short"),
                    wire::WireError::BadLength => (DropTrigger::BadLength, "hello_too_long"),
                    wire::WireError::BadType => (DropTrigger::BadCmd, "unknown_type"),
                };
                self.failed_attempt(remote, local, 0, FailReason::Malformed, trigger, rule);
                return;
            }
        };
        // The rates count handshakes, and a handshake is two HELLOs: the first (zero cookie)
        // takes a token, the one bringing our cookie back does not if the cookie verifies
        // (its first HELLO paid). A HELLO with a cookie that does not verify pays, so forged
        // cookies use up the rate like first HELLOs. Whatever else a first HELLO costs (a
        // reply) is only spent within the rate, and a flood of them from one source is refused
        // for the price of a lookup; a HELLO with a cookie costs one MAC first, as much as
        // checking a session datagram's tag.
        let unix_ms = self.config.unix_ms_at_zero + self.clock.extended();
        let cookie_check = match (&hello.cookie, hello.version == VERSION) {
            (Some(cookie), true) => Some(self.cookies.check(unix_ms, remote, &hello.nonce, cookie)),
            _ => None,
        };
        if !matches!(cookie_check, Some(CookieCheck::Valid)) {
            if let Err(hit) =
                self.rate
                    .admit(&self.config.limits, remote.ip(), self.clock.extended())
            {
                self.failed_attempt(
                    remote,
                    local,
                    0,
                    FailReason::RateLimited,
                    DropTrigger::RateLimited,
                    hit.rule(),
                );
                return;
            }
        }
        if hello.version != VERSION || hello.suite != SUITE_NK_25519_CHACHAPOLY_BLAKE2S {
            self.send_reject(
                remote,
                local,
                &hello.nonce,
                RejectReason::VersionMismatch,
                0,
                false,
            );
            let rule = if hello.version != VERSION {
                "unsupported_version"
            } else {
                "unsupported_suite"
            };
            self.failed_attempt(
                remote,
                local,
                0,
                FailReason::VersionMismatch,
                DropTrigger::BadCmd,
                rule,
            );
            return;
        }
        let Some(key_index) = self.server_keys.iter().position(|k| k.id() == hello.key_id) else {
            // The client pinned a key this server does not hold (an old one after a rotation,
            // or another server's): say so at once rather than let it time out.
            self.send_reject(
                remote,
                local,
                &hello.nonce,
                RejectReason::UnknownServerKey,
                0,
                false,
            );
            self.failed_attempt(
                remote,
                local,
                0,
                FailReason::UnknownServerKey,
                DropTrigger::BadCmd,
                "unknown_key_id",
            );
            return;
        };
        let Some(cookie_check) = cookie_check else {
            self.send_cookie(remote, local, &hello.nonce);
            return;
        };
        match cookie_check {
            CookieCheck::Invalid => {
                self.failed_attempt(
                    remote,
                    local,
                    0,
                    FailReason::InvalidCookie,
                    DropTrigger::BadTag,
                    "cookie_mac",
                );
                return;
            }
            CookieCheck::Expired => {
                // A genuine but slow client: a fresh cookie lets it finish on its next HELLO.
                self.send_cookie(remote, local, &hello.nonce);
                self.failed_attempt(
                    remote,
                    local,
                    0,
                    FailReason::ExpiredCookie,
                    DropTrigger::BadTag,
                    "cookie_expired",
                );
                return;
            }
            CookieCheck::Valid => {}
        }
        // The source is validated from here on: it received our COOKIE at this address.
        let nonce = hello.nonce;
        if let Some(&handle) = self.by_nonce.get(&nonce) {
            let accept = self
                .session(handle)
                .filter(|s| s.remote == remote)
                .and_then(|s| s.secure.as_ref())
                .and_then(|s| s.accept.clone());
            match accept {
                // The ACCEPT was lost: the same answer again. The client is alive and trying,
                // so its session must not idle out meanwhile.
                Some(accept) => {
                    if let Some(s) = self.slots[handle.index() as usize].session.as_mut() {
                        s.note_alive(now);
                    }
                    self.send_unbound(remote, local, &accept, true);
                    self.reschedule(handle, now);
                }
                None => self.drop_trigger(
                    remote,
                    local,
                    None,
                    None,
                    DropTrigger::UnknownConnection,
                    "nonce_in_use",
                    len,
                ),
            }
            return;
        }
        if self.pending_auth.iter().any(|p| p.nonce == nonce) {
            // Still waiting for the application; the answer will come.
            return;
        }
        if let Err(rule) = self.admits(remote) {
            self.send_reject(remote, local, &nonce, RejectReason::Capacity, 0, true);
            self.failed_attempt(
                remote,
                local,
                0,
                FailReason::Capacity,
                DropTrigger::OverLimit,
                rule,
            );
            return;
        }
        // The first Diffie-Hellman for this client: its address is validated and the limits
        // admit it. The token is decrypted into a buffer kept for the purpose.
        let mut token = std::mem::take(&mut self.token_buf);
        let noise = match self.test_ephemeral() {
            Some(e) => ServerNoise::read_hello_with_ephemeral_for_tests(
                &self.server_keys[key_index],
                &hello,
                &mut token,
                &e,
            ),
            None => ServerNoise::read_hello(&self.server_keys[key_index], &hello, &mut token),
        };
        let key_id = hello.key_id;
        let (noise, client) = match noise {
            Ok(done) => done,
            Err(_) => {
                self.token_buf = token;
                self.failed_attempt(
                    remote,
                    local,
                    0,
                    FailReason::DecryptFailed,
                    DropTrigger::DecryptFailed,
                    "hello_noise",
                );
                return;
            }
        };
        if !client.usable() {
            // Authentic (it decrypted) but unusable: no KCP engine fits in so small a datagram,
            // or no message fits in an empty window.
            self.token_buf = token;
            self.send_reject(remote, local, &nonce, RejectReason::Malformed, 0, true);
            let rule = if client.mtu < wire::MIN_MTU {
                "hello_mtu"
            } else {
                "hello_window"
            };
            self.failed_attempt(
                remote,
                local,
                0,
                FailReason::Malformed,
                DropTrigger::BadLength,
                rule,
            );
            return;
        }
        if client.stream != self.config.session.stream {
            // Stream mode keeps no message boundaries: the two sides would cut each other's
            // bytes differently, so no session can work. The HELLO is authentic, so the client
            // is told why (before its token is judged); like a datagram of the other mode
            // (`mode_mismatch`), it is refused as `bad_cmd`.
            self.token_buf = token;
            self.send_reject(remote, local, &nonce, RejectReason::StreamMismatch, 0, true);
            self.failed_attempt(
                remote,
                local,
                0,
                FailReason::StreamMismatch,
                DropTrigger::BadCmd,
                "hello_stream",
            );
            return;
        }
        let unix_ms = self.config.unix_ms_at_zero + self.clock.extended();
        let uid = self.uids.next(unix_ms);
        let conv = self.fresh_conv();
        let conn = ConnectionRef {
            uid,
            conv,
            peer: remote,
            local,
            direction: Direction::Inbound,
            user: UserId::NONE,
        };
        self.emit(SecurityEvent::ConnectionAttempted(ConnectionAttempted {
            conn,
        }));
        self.state_change(
            conn,
            ConnectionState::Attempted,
            ConnectionState::Handshaking,
        );
        if !self.config.require_auth {
            self.token_buf = token;
            self.establish_server(
                now,
                uid,
                conv,
                remote,
                local,
                nonce,
                noise,
                key_id,
                client,
                UserId::NONE,
            );
            return;
        }
        if self.pending_auth.len() >= self.config.max_pending_auth {
            self.token_buf = token;
            self.send_reject(remote, local, &nonce, RejectReason::Capacity, 0, true);
            self.validated_failure(
                conn,
                FailReason::Capacity,
                Some(DropTrigger::OverLimit),
                "max_pending_auth",
            );
            return;
        }
        let id = self.next_auth_id;
        self.next_auth_id += 1;
        self.pending_auth.push(PendingAuth {
            id,
            uid,
            conv,
            remote,
            local,
            nonce,
            noise,
            key_id,
            client,
            deadline: self.clock.extended() + u64::from(self.config.auth_timeout_ms),
            user: UserId::NONE,
        });
        self.stats.auth_requests += 1;
        self.events.push_back(EndpointEvent::AuthRequest {
            id,
            uid,
            remote,
            local,
            token: token.as_slice().into(),
        });
        self.token_buf = token;
    }

    /// A random conv no live or pending session uses (0 is never assigned: it is what a
    /// client's session carries before its ACCEPT).
    fn fresh_conv(&mut self) -> u32 {
        loop {
            let conv: u32 = self.rng.gen();
            if conv != 0
                && !self.by_conv.contains_key(&conv)
                && !self.pending_auth.iter().any(|p| p.conv == conv)
            {
                return conv;
            }
        }
    }

    fn state_change(&mut self, conn: ConnectionRef, old: ConnectionState, new: ConnectionState) {
        self.emit(SecurityEvent::ConnectionStateUpdated(
            ConnectionStateUpdated { conn, old, new },
        ));
    }

    /// A handshake that was logged as attempted ends without a connection.
    fn validated_failure(
        &mut self,
        conn: ConnectionRef,
        reason: FailReason,
        trigger: Option<DropTrigger>,
        rule: &'static str,
    ) {
        self.stats.failed += 1;
        self.stats.failed_by_reason[super::fail_key(reason)] += 1;
        if conn.direction == Direction::Inbound {
            self.detect_failure(conn.peer, reason, rule);
        }
        if let Some(trigger) = trigger {
            self.stats.dropped[EndpointStats::trigger_index(trigger)] += 1;
        }
        self.state_change(conn, ConnectionState::Handshaking, ConnectionState::Closed);
        self.emit(SecurityEvent::ConnectionFailed(ConnectionFailed {
            conn,
            reason,
            trigger,
            rule,
            suppressed: 0,
        }));
    }

    #[allow(clippy::too_many_arguments)]
    fn establish_server(
        &mut self,
        now: Millis,
        uid: Uid,
        conv: u32,
        remote: SocketAddr,
        local: SocketAddr,
        nonce: [u8; 16],
        noise: ServerNoise,
        key_id: [u8; KEY_ID_LEN],
        client: KcpParams,
        user: UserId,
    ) {
        let mut accept = [0; ACCEPT_LEN];
        // validate() bounds our MTU to 65,507, so it fits the field.
        let own_mtu = u16::try_from(self.config.session.mtu).unwrap_or(u16::MAX);
        let agreed_mtu = client.mtu.min(own_mtu);
        let payload = AcceptPayload {
            conv,
            idle_timeout_ms: self.config.session.idle_timeout_ms,
            params: own_params(&self.config.session, agreed_mtu),
        };
        let Ok(split) = noise.accept(&nonce, payload, &mut accept) else {
            // snow refused to write a message it has all it needs for: not reachable with a
            // state that read the HELLO; the client times out.
            return;
        };
        let (config, fec) = self.fec_for(agreed_session_config(
            &secure_session_config(&self.config.session),
            agreed_mtu,
        ));
        let keepalive = self.keepalive_ms();
        let handle = self.insert_session(
            now,
            remote,
            local,
            conv,
            &config,
            Direction::Inbound,
            Some(uid),
        );
        let now_extended = self.clock.extended();
        if let Some(session) = self.slots[handle.index() as usize].session.as_mut() {
            session.send_ceiling = peer_ceiling(&config, &client);
            session.user = user;
            session.make_secure(Role::Server, nonce, key_id, keepalive, None, now);
            let keys = SessionKeys::from_split(&split, Role::Server);
            session.start_session(conv, keys, now, now_extended);
            if let Some(codec) = fec {
                session.enable_secure_fec(codec, usize::from(agreed_mtu));
            }
            session.send_plain(&accept);
            if let Some(secure) = session.secure.as_mut() {
                secure.accept = Some(accept.into());
            }
            // Not a connection yet: the client may have given up while the application
            // thought, or may never get the ACCEPT. Its first authenticated datagram proves it
            // holds the keys and is still there (QUIC's handshake confirmation).
            session.await_confirmation(now.wrapping_add(self.config.handshake_timeout_ms));
            self.unconfirmed += 1;
        }
        self.by_conv.insert(conv, handle);
        self.by_nonce.insert(nonce, handle);
        self.reschedule(handle, now);
    }

    /// The client's first authenticated datagram after the ACCEPT: the connection exists from
    /// now on, and the application hears of it. A KEEPALIVE tells the client its confirmation
    /// arrived, so it stops repeating it.
    fn confirm_server(&mut self, handle: ConnectionHandle, now: Millis) {
        let now_extended = self.clock.extended();
        let Some(session) = self.slots[handle.index() as usize].session.as_mut() else {
            return;
        };
        session.confirm(now, now_extended);
        session.send_confirmation_ack();
        self.unconfirmed -= 1;
        let remote = session.remote;
        self.stats.passive_opens += 1;
        let now_ms = self.unix_ms();
        let live = self.counts.for_ip(remote.ip());
        self.detectors.established(remote.ip(), live, now_ms);
        self.report_alerts();
        if let Some(conn) = self.session(handle).map(Session::conn_ref) {
            self.state_change(
                conn,
                ConnectionState::Handshaking,
                ConnectionState::Established,
            );
            let secure = self.secure_session_info(handle);
            self.emit(SecurityEvent::ConnectionEstablished(
                ConnectionEstablished { conn, secure },
            ));
        }
        self.events.push_back(EndpointEvent::Accepted { handle });
    }

    /// Ends a server session the client never confirmed: a failed attempt (never a connection,
    /// so no close record and no `Closed` event). `reason` is what would have closed it.
    pub(super) fn abandon_unconfirmed(&mut self, handle: ConnectionHandle, reason: CloseReason) {
        let Some(mut session) = self.remove_session(handle) else {
            return;
        };
        self.unconfirmed -= 1;
        // The client may believe it is connected (it read the ACCEPT): tell it, unless it is
        // the one that said goodbye.
        if reason != CloseReason::PeerClosed {
            session.send_disconnect(reason);
        }
        let conn = session.conn_ref();
        self.slots[handle.index() as usize].last_conn = Some(conn);
        let abandoned = FailReason::HandshakeAbandoned;
        match reason {
            CloseReason::Shutdown => {
                self.validated_failure(conn, FailReason::Shutdown, None, "shutdown")
            }
            CloseReason::PeerClosed => {
                self.validated_failure(conn, abandoned, None, "peer_disconnect")
            }
            _ => self.validated_failure(conn, abandoned, None, "handshake_abandoned"),
        }
    }

    /// Answers an [`EndpointEvent::AuthRequest`]: `accept` opens the session, otherwise the
    /// client gets a REJECT and the attempt fails with `auth_rejected`. False if the request
    /// is unknown (already answered, or timed out).
    pub fn resolve_auth(&mut self, id: u64, accept: bool) -> bool {
        self.answer_auth(id, accept, 0, "authenticate")
    }

    /// Accepts an [`EndpointEvent::AuthRequest`] as [`Endpoint::resolve_auth`] does, naming
    /// the user: every record of the connection carries `user` (docs/events.md, `user_id`).
    pub fn resolve_auth_as(&mut self, id: u64, user: UserId) -> bool {
        if let Some(pending) = self.pending_auth.iter_mut().find(|p| p.id == id) {
            pending.user = user;
        }
        self.answer_auth(id, true, 0, "authenticate")
    }

    /// Refuses an [`EndpointEvent::AuthRequest`] with the application's reason code (1 to
    /// 65535; 0 is none), which the client receives in the REJECT. False if the request is
    /// unknown.
    pub fn reject_auth(&mut self, id: u64, app_code: u16) -> bool {
        self.answer_auth(id, false, app_code, "authenticate")
    }

    fn answer_auth(&mut self, id: u64, accept: bool, app_code: u16, rule: &'static str) -> bool {
        let Some(index) = self.pending_auth.iter().position(|p| p.id == id) else {
            return false;
        };
        let pending = self.pending_auth.swap_remove(index);
        let conn = ConnectionRef {
            uid: pending.uid,
            conv: pending.conv,
            peer: pending.remote,
            local: pending.local,
            direction: Direction::Inbound,
            user: UserId::NONE,
        };
        if !accept {
            self.send_reject(
                pending.remote,
                pending.local,
                &pending.nonce,
                RejectReason::AuthRejected,
                app_code,
                true,
            );
            self.validated_failure(conn, FailReason::AuthRejected, None, rule);
            return true;
        }
        // Limits may have filled while the application thought.
        if let Err(rule) = self.admits(pending.remote) {
            self.send_reject(
                pending.remote,
                pending.local,
                &pending.nonce,
                RejectReason::Capacity,
                0,
                true,
            );
            self.validated_failure(
                conn,
                FailReason::Capacity,
                Some(DropTrigger::OverLimit),
                rule,
            );
            return true;
        }
        let now = ExtendedNow::wrap(self.clock.extended());
        self.establish_server(
            now,
            pending.uid,
            pending.conv,
            pending.remote,
            pending.local,
            pending.nonce,
            pending.noise,
            pending.key_id,
            pending.client,
            pending.user,
        );
        true
    }

    /// Ends every authentication in progress because the server is shutting down: the client
    /// gets a REJECT `shutdown` (its token was not judged) and the attempt fails as
    /// `shutdown`, not as a refusal.
    pub(super) fn refuse_pending_auth_for_shutdown(&mut self) {
        for pending in std::mem::take(&mut self.pending_auth) {
            self.send_reject(
                pending.remote,
                pending.local,
                &pending.nonce,
                RejectReason::Shutdown,
                0,
                true,
            );
            let conn = ConnectionRef {
                uid: pending.uid,
                conv: pending.conv,
                peer: pending.remote,
                local: pending.local,
                direction: Direction::Inbound,
                user: UserId::NONE,
            };
            self.validated_failure(conn, FailReason::Shutdown, None, "shutdown");
        }
    }

    /// Rejects every authentication request whose answer is overdue.
    pub(super) fn expire_pending_auth(&mut self, now_extended: u64) {
        while let Some(id) = self
            .pending_auth
            .iter()
            .find(|p| p.deadline <= now_extended)
            .map(|p| p.id)
        {
            self.answer_auth(id, false, 0, "auth_timeout");
        }
    }

    /// Authentication requests waiting for an answer.
    pub fn pending_auth_count(&self) -> usize {
        self.pending_auth.len()
    }

    /// Raises (or lowers) the largest message `handle`'s session sends, whatever the
    /// handshake agreed: for tests only, to play a peer that ignores the agreement (another
    /// implementation, or a hostile one) and check what the receiver does.
    #[cfg(feature = "test-keys")]
    #[doc(hidden)]
    pub fn set_send_ceiling_for_tests(&mut self, handle: ConnectionHandle, ceiling: usize) {
        if let Some(session) = self.slots[handle.index() as usize].session.as_mut() {
            session.send_ceiling = ceiling;
        }
    }

    /// Opens a secure session to a server: sends the first HELLO now. The handle is usable at
    /// once (messages queue until the handshake completes);
    /// [`EndpointEvent::Established`] or [`EndpointEvent::ConnectFailed`] follows.
    pub fn connect_secure(
        &mut self,
        now: Millis,
        remote: SocketAddr,
        local: SocketAddr,
        token: &[u8],
        config: Option<&SessionConfig>,
    ) -> Result<ConnectionHandle, ConnectError> {
        self.clock.advance(now);
        if self.config.mode != Mode::Secure {
            return Err(ConnectError::WrongMode(self.config.mode.as_str()));
        }
        if token.len() > MAX_TOKEN_LEN {
            return Err(ConnectError::TokenTooLong(token.len()));
        }
        let server_key = self.config.server_key.ok_or(ConnectError::NoServerKey)?;
        let config = secure_session_config(config.unwrap_or(&self.config.session));
        config.validate()?;
        // Pending authentications hold a place too.
        if self.live + self.pending_auth.len() >= self.config.max_connections {
            return Err(ConnectError::Capacity(self.config.max_connections));
        }
        let nonce: [u8; 16] = self.rng.gen();
        // The largest datagram we accept: the MTU on the wire (validate() bounds it to 65,507).
        let mtu = u16::try_from(config.mtu + SESSION_OVERHEAD).unwrap_or(u16::MAX);
        let params = own_params(&config, mtu);
        let mut hello = Vec::new();
        let noise = match self.test_ephemeral() {
            Some(e) => ClientNoise::start_with_ephemeral_for_tests(
                &server_key,
                &nonce,
                params,
                token,
                &mut hello,
                &e,
            ),
            None => ClientNoise::start(&server_key, &nonce, params, token, &mut hello),
        }
        .map_err(|_| ConnectError::NoServerKey)?;
        let keepalive = self.keepalive_ms();
        let handle = self.insert_session(now, remote, local, 0, &config, Direction::Outbound, None);
        let deadline = now.wrapping_add(self.config.handshake_timeout_ms);
        if let Some(session) = self.slots[handle.index() as usize].session.as_mut() {
            let handshake = ClientHandshake {
                hello: hello.into(),
                noise: Some(noise),
                next_hello_at: now,
                retry_ms: HELLO_RETRY_MS,
                deadline,
                hellos: 0,
                unreachable_hellos: 0,
                unreachable_at_hello: 0,
            };
            let key_id = crate::secure::key_id(&server_key);
            session.make_secure(Role::Client, nonce, key_id, keepalive, Some(handshake), now);
        }
        self.by_nonce.insert(nonce, handle);
        self.stats.active_opens += 1;
        if let Some(conn) = self.session(handle).map(Session::conn_ref) {
            self.emit(SecurityEvent::ConnectionAttempted(ConnectionAttempted {
                conn,
            }));
            self.state_change(
                conn,
                ConnectionState::Attempted,
                ConnectionState::Handshaking,
            );
        }
        self.send_hello(handle, now);
        self.reschedule(handle, now);
        Ok(handle)
    }

    /// Sends the client's HELLO (with the cookie once it has one) and backs off the next.
    fn send_hello(&mut self, handle: ConnectionHandle, now: Millis) {
        let mut scratch = std::mem::take(&mut self.scratch);
        if let Some(session) = self.slots[handle.index() as usize].session.as_mut() {
            let handshake = session.secure.as_mut().and_then(|s| s.handshake.as_mut());
            if let Some(h) = handshake {
                scratch.clear();
                scratch.extend_from_slice(&h.hello);
                h.backoff(now);
                session.send_plain(&scratch);
            }
        }
        self.scratch = scratch;
    }

    /// Runs a client's handshake timer. True if the session is still handshaking (so its
    /// engine must not run).
    pub(super) fn client_handshake_tick(&mut self, handle: ConnectionHandle, now: Millis) -> bool {
        if let Some(by) = self
            .session(handle)
            .and_then(|s| s.secure.as_ref())
            .and_then(|s| s.confirm_by)
        {
            // A server session waiting for the client's confirmation.
            if diff(now, by) >= 0 {
                self.abandon_unconfirmed(handle, CloseReason::IdleTimeout);
            } else {
                self.reschedule(handle, now);
            }
            return true;
        }
        let Some((deadline, next_hello)) = self
            .session(handle)
            .and_then(|s| s.secure.as_ref())
            .and_then(|s| s.handshake.as_ref())
            .map(|h| (h.deadline, h.next_hello_at))
        else {
            return false;
        };
        if diff(now, deadline) >= 0 {
            self.fail_connect(handle, FailReason::HandshakeTimeout, "handshake_timeout", 0);
            return true;
        }
        if diff(now, next_hello) >= 0 {
            self.send_hello(handle, now);
        }
        self.reschedule(handle, now);
        true
    }

    fn fail_connect(
        &mut self,
        handle: ConnectionHandle,
        reason: FailReason,
        rule: &'static str,
        app_code: u16,
    ) {
        let Some(session) = self.remove_session(handle) else {
            return;
        };
        let conn = session.conn_ref();
        self.slots[handle.index() as usize].last_conn = Some(conn);
        self.validated_failure(conn, reason, None, rule);
        self.events.push_back(EndpointEvent::ConnectFailed {
            handle,
            reason,
            app_code,
        });
    }

    /// An ICMP unreachable report about a handshaking client's server address. Reports about
    /// [`super::HANDSHAKE_UNREACHABLE_HELLOS`] different HELLOs, with no COOKIE in between, fail the
    /// attempt as `unreachable` (docs/security.md, "ICMP during the handshake"). `None` for a
    /// repeat about a HELLO already counted.
    pub(super) fn handshake_unreachable(
        &mut self,
        handle: ConnectionHandle,
    ) -> Option<super::Unreachable> {
        let session = self.slots[handle.index() as usize].session.as_mut()?;
        let conn = session.conn_ref();
        let h = session.secure.as_mut()?.handshake.as_mut()?;
        if h.unreachable_hellos > 0 && h.unreachable_at_hello == h.hellos {
            return None;
        }
        h.unreachable_at_hello = h.hellos;
        h.unreachable_hellos += 1;
        if h.unreachable_hellos < super::HANDSHAKE_UNREACHABLE_HELLOS {
            return Some(super::Unreachable::FirstReport(conn));
        }
        self.fail_connect(handle, FailReason::Unreachable, "icmp_unreachable", 0);
        Some(super::Unreachable::Closed(conn))
    }

    /// COOKIE, ACCEPT or REJECT at a client: each answers a HELLO of ours, named by its nonce.
    fn client_reply(
        &mut self,
        now: Millis,
        remote: SocketAddr,
        local: SocketAddr,
        datagram: &[u8],
    ) {
        let len = datagram.len();
        let parsed_nonce = match datagram[0] {
            TYPE_COOKIE => wire::parse_cookie(datagram).map(|(n, _)| n),
            TYPE_ACCEPT => wire::parse_accept(datagram).map(|(n, _)| n),
            _ => wire::parse_reject(datagram).map(|r| r.nonce),
        };
        let Some(nonce) = parsed_nonce else {
            self.drop_trigger(
                remote,
                local,
                None,
                None,
                DropTrigger::BadLength,
                "handshake_length",
                len,
            );
            return;
        };
        let handle = self.by_nonce.get(&nonce).copied().filter(|&h| {
            // From any address: the nonce authenticates the reply (docs/protocol.md).
            self.session(h).is_some_and(|s| {
                s.direction == Direction::Outbound && s.state == ConnectionState::Handshaking
            })
        });
        let Some(handle) = handle else {
            // Not an answer to a handshake in progress: late, duplicated or forged.
            self.drop_trigger(
                remote,
                local,
                None,
                None,
                DropTrigger::UnknownConnection,
                "no_handshake",
                len,
            );
            return;
        };
        match datagram[0] {
            TYPE_COOKIE => {
                let Some((_, cookie)) = wire::parse_cookie(datagram) else {
                    return;
                };
                if let Some(h) = self.slots[handle.index() as usize]
                    .session
                    .as_mut()
                    .and_then(|s| s.secure.as_mut())
                    .and_then(|s| s.handshake.as_mut())
                {
                    wire::set_hello_cookie(&mut h.hello, &cookie);
                    h.retry_ms = HELLO_RETRY_MS;
                    // The server answered: earlier ICMP reports were stale or forged.
                    h.unreachable_hellos = 0;
                }
                self.send_hello(handle, now);
                self.reschedule(handle, now);
            }
            TYPE_ACCEPT => {
                let Some((_, noise_message)) = wire::parse_accept(datagram) else {
                    return;
                };
                let noise = self.slots[handle.index() as usize]
                    .session
                    .as_mut()
                    .and_then(|s| s.secure.as_mut())
                    .and_then(|s| s.handshake.as_mut())
                    .and_then(|h| h.noise.take());
                let Some(noise) = noise else {
                    return;
                };
                let (accept, split) = match noise.finish(noise_message) {
                    Ok(done) => done,
                    Err(_) => {
                        // Whoever answered does not hold the server key we pinned (or the
                        // ACCEPT was altered): the handshake state is spent, the attempt ends.
                        self.stats.dropped
                            [EndpointStats::trigger_index(DropTrigger::DecryptFailed)] += 1;
                        self.fail_connect(handle, FailReason::ServerAuthFailed, "accept_noise", 0);
                        return;
                    }
                };
                let (own_mtu, own_stream) = self.session(handle).map_or((0, false), |s| {
                    (s.config.mtu + SESSION_OVERHEAD, s.config.stream)
                });
                let server = accept.params;
                if usize::from(server.mtu) > own_mtu {
                    // The server must agree no more than we said we accept: its datagrams would
                    // be cut short by our receive buffer.
                    self.fail_connect(handle, FailReason::Malformed, "accept_mtu", 0);
                    return;
                }
                if server.stream != own_stream {
                    // The server refuses a mismatch with a REJECT; one that accepts anyway
                    // would read our bytes with other boundaries than we write them.
                    self.fail_connect(handle, FailReason::StreamMismatch, "accept_stream", 0);
                    return;
                }
                let agreed = self.session(handle).map(|session| {
                    let (config, fec) =
                        self.fec_for(agreed_session_config(&session.config, server.mtu));
                    let ceiling = peer_ceiling(&config, &server);
                    let fits = config.stream || session.largest_queued() <= ceiling;
                    (config, fec, ceiling, fits)
                });
                let (dropped, fec) =
                    match (agreed, self.slots[handle.index() as usize].session.as_mut()) {
                        (Some((agreed, fec, ceiling, true)), Some(session)) => {
                            let dropped = session.set_agreed_mtu(&agreed);
                            session.send_ceiling = ceiling;
                            (dropped, fec)
                        }
                        (Some((_, _, _, false)), Some(_)) => (1, None),
                        _ => (0, None),
                    };
                if dropped > 0 {
                    // A message queued during the handshake is larger than the server takes
                    // (its max_message_size, or more fragments than its receive window or KCP
                    // allow at the agreed MTU): failing the attempt says so, where sending the
                    // rest would lose it silently or stall the session.
                    self.fail_connect(handle, FailReason::Malformed, "queued_message_too_large", 0);
                    return;
                }
                let now_extended = self.clock.extended();
                if let Some(session) = self.slots[handle.index() as usize].session.as_mut() {
                    let keys = SessionKeys::from_split(&split, Role::Client);
                    session.start_session(accept.conv, keys, now, now_extended);
                    if let Some(codec) = fec {
                        session.enable_secure_fec(codec, usize::from(server.mtu));
                    }
                    // The server announces the connection only once this arrives.
                    session.send_confirmation(now);
                    if let Some(secure) = session.secure.as_mut() {
                        // Keep the server's idle clock fed even if ours is longer.
                        let server_quarter = (accept.idle_timeout_ms / 4).max(50);
                        secure.keepalive_ms = secure.keepalive_ms.min(server_quarter);
                    }
                    session.flush_pending = true;
                }
                if let Some(old) = self.by_conv.insert(accept.conv, handle) {
                    // Two servers gave one client endpoint the same conv: the newer wins.
                    if old != handle {
                        self.close_now(old, CloseReason::ProtocolViolation);
                        self.by_conv.insert(accept.conv, handle);
                    }
                }
                if let Some(conn) = self.session(handle).map(Session::conn_ref) {
                    self.state_change(
                        conn,
                        ConnectionState::Handshaking,
                        ConnectionState::Established,
                    );
                    let secure = self.secure_session_info(handle);
                    self.emit(SecurityEvent::ConnectionEstablished(
                        ConnectionEstablished { conn, secure },
                    ));
                }
                self.events.push_back(EndpointEvent::Established { handle });
                self.dirty.push(handle);
                self.reschedule(handle, now);
            }
            _ => {
                let Some(reject) = wire::parse_reject(datagram) else {
                    return;
                };
                let reason = match RejectReason::from_code(reject.reason) {
                    Some(RejectReason::VersionMismatch) => FailReason::VersionMismatch,
                    Some(RejectReason::AuthRejected) => FailReason::AuthRejected,
                    Some(RejectReason::Capacity) => FailReason::Capacity,
                    Some(RejectReason::RateLimited) => FailReason::RateLimited,
                    Some(RejectReason::UnknownServerKey) => FailReason::UnknownServerKey,
                    Some(RejectReason::Shutdown) => FailReason::Shutdown,
                    Some(RejectReason::StreamMismatch) => FailReason::StreamMismatch,
                    Some(RejectReason::Malformed) | None => FailReason::Malformed,
                };
                self.fail_connect(handle, reason, "server_rejected", reject.app_code);
            }
        }
    }

    /// DATA, KEEPALIVE, DISCONNECT, DATAGRAM or FEC_PARITY: found by conv, checked by tag and
    /// packet number before anything else looks at it. `rebuilt`: FEC rebuilt it from parity
    /// (it takes the same path; a forgery is counted as an FEC error too).
    fn session_datagram(
        &mut self,
        now: Millis,
        remote: SocketAddr,
        local: SocketAddr,
        datagram: &[u8],
        rebuilt: bool,
    ) {
        let len = datagram.len();
        let Some((header, _)) = wire::parse_session(datagram) else {
            self.drop_trigger(
                remote,
                local,
                None,
                None,
                DropTrigger::TooShort,
                "session_too_short",
                len,
            );
            return;
        };
        let conv = Some(header.conv);
        let Some(&handle) = self.by_conv.get(&header.conv) else {
            let now_extended = self.clock.extended();
            while self
                .recently_closed
                .front()
                .is_some_and(|&(_, at)| at + RECENTLY_CLOSED_MS < now_extended)
            {
                self.recently_closed.pop_front();
            }
            if self.recently_closed.iter().any(|&(c, _)| c == header.conv) {
                // The peer's remaining DISCONNECT copies or data in flight: expected after every
                // close, so counted without a record each.
                self.stats.late_after_close += 1;
                return;
            }
            // DATA or KEEPALIVE for a session this process does not have (it restarted, or
            // closed the session long ago): a stateless RESET ends the client's session.
            if header.kind == TYPE_DATAGRAM {
                self.datagram_without_session();
            }
            let answer = header.kind != TYPE_DISCONNECT && self.reset_allowed(remote);
            let rule = if header.kind == TYPE_DISCONNECT {
                "no_session"
            } else {
                self.stale_rule()
            };
            self.drop_trigger(
                remote,
                local,
                conv,
                None,
                DropTrigger::UnknownConnection,
                rule,
                len,
            );
            if let (true, Some(tag)) = (answer, wire::reset_tag(datagram)) {
                let mut reset = [0; RESET_LEN];
                wire::write_reset(&mut reset, &header, &tag);
                // The source is not validated: counted like a COOKIE, and never larger than the
                // datagram it answers (a session datagram is at least RESET_LEN bytes).
                self.stats.bytes_received_unvalidated += len as u64;
                self.send_unbound(remote, local, &reset, false);
                self.stats.resets_sent += 1;
            }
            return;
        };
        let Some(session) = self.slots[handle.index() as usize].session.as_mut() else {
            return;
        };
        let uid = Some(session.uid);
        let Some(secure) = session.secure.as_mut() else {
            return;
        };
        let Some(key) = secure.receive.as_ref() else {
            return;
        };
        if rebuilt && secure.window.check(header.packet_number) == Freshness::Replayed {
            // It arrived after all (or before the peer's first parity): nothing was lost.
            return;
        }
        let mut plain = std::mem::take(&mut self.plain);
        let freshness = match open(key, &mut secure.window, datagram, &header, &mut plain) {
            Ok(freshness) => freshness,
            Err(error) => {
                self.plain = plain;
                let (trigger, rule) = match (error, rebuilt) {
                    (OpenError::DecryptFailed, false) => {
                        (DropTrigger::DecryptFailed, "session_aead")
                    }
                    (OpenError::DecryptFailed, true) => {
                        // Garbage rebuilt from a parity that does not fit the group: never
                        // applied, as a forged datagram.
                        self.stats.fec.errors += 1;
                        self.stats.fec.rebuilt_refused += 1;
                        (DropTrigger::DecryptFailed, "fec_rebuilt_aead")
                    }
                    (OpenError::Replayed, _) => (DropTrigger::Replayed, "replay_window"),
                };
                self.drop_trigger(remote, local, conv, uid, trigger, rule, len);
                return;
            }
        };
        if rebuilt {
            self.stats.fec.recovered += 1;
        }
        let recovered = match self.fec_input(handle, &header, datagram, &plain) {
            Ok(recovered) => recovered,
            Err(()) => {
                self.plain = plain;
                self.stats.fec.errors += 1;
                self.drop_trigger(
                    remote,
                    local,
                    conv,
                    uid,
                    DropTrigger::BadLength,
                    "fec_parity_malformed",
                    len,
                );
                return;
            }
        };
        self.session_plaintext(now, handle, remote, local, &header, &plain, freshness, len);
        self.plain = plain;
        if let Some(buffers) = recovered {
            for &(at, len) in &buffers.1 {
                if self.session(handle).is_none() {
                    break;
                }
                let datagram = &buffers.0[at as usize..(at + len) as usize];
                self.session_datagram(now, remote, local, datagram, true);
            }
            if let Some(decoder) = self.slots[handle.index() as usize]
                .session
                .as_mut()
                .and_then(|s| s.secure.as_mut())
                .and_then(|s| s.fec.as_mut())
            {
                decoder.put_back(buffers);
            }
        }
    }

    /// FEC (`secure::fec`): keeps an authentic, fresh datagram for rebuilding its group's lost
    /// ones (once the peer has sent parity), or takes a parity datagram; returns the datagrams
    /// this rebuilt, to be opened like received ones. `Err` for a parity whose header or length
    /// cannot be right.
    #[allow(clippy::type_complexity)]
    fn fec_input(
        &mut self,
        handle: ConnectionHandle,
        header: &wire::SessionHeader,
        datagram: &[u8],
        plain: &[u8],
    ) -> Result<Option<(Vec<u8>, Vec<(u32, u32)>)>, ()> {
        let Some(session) = self.slots[handle.index() as usize].session.as_mut() else {
            return Ok(None);
        };
        let mtu = session.secure_wire_mtu();
        let Some(secure) = session.secure.as_mut() else {
            return Ok(None);
        };
        let stats = &mut self.stats.fec;
        let pn = header.packet_number;
        let rebuilt = if header.kind == TYPE_FEC_PARITY {
            stats.enabled = true;
            stats.parity_shards += 1;
            let (parity, bytes) = crate::secure::fec::parse_parity(plain).ok_or(())?;
            if secure.fec.is_none() {
                // The peer sends FEC: keep its datagrams from now on, in buffers made once.
                let codec = self
                    .secure_fec
                    .for_peer(parity.data, parity.parity)
                    .ok_or(())?;
                secure.fec = Some(Box::new(crate::secure::fec::Decoder::new(
                    codec,
                    header.conv,
                    mtu,
                )));
            }
            let decoder = secure.fec.as_mut().ok_or(())?;
            decoder.parity(pn, &parity, bytes, stats).map_err(|_| ())?
        } else {
            match secure.fec.as_mut() {
                Some(decoder) => decoder.data(pn, datagram, stats),
                None => false,
            }
        };
        Ok(rebuilt
            .then(|| secure.fec.as_mut().map(|d| d.take_rebuilt()))
            .flatten())
    }

    /// An authenticated session datagram's content.
    #[allow(clippy::too_many_arguments)]
    fn session_plaintext(
        &mut self,
        now: Millis,
        handle: ConnectionHandle,
        remote: SocketAddr,
        local: SocketAddr,
        header: &wire::SessionHeader,
        body: &[u8],
        freshness: Freshness,
        len: usize,
    ) {
        let conv = Some(header.conv);
        let Some(session) = self.slots[handle.index() as usize].session.as_mut() else {
            return;
        };
        let uid = Some(session.uid);
        session.heard_peer();
        if session.unconfirmed() {
            if header.kind == TYPE_DISCONNECT {
                // The client left before its session started: never a connection.
                self.stats.datagrams_accepted += 1;
                self.abandon_unconfirmed(handle, CloseReason::PeerClosed);
                return;
            }
            self.confirm_server(handle, now);
        }
        let Some(session) = self.slots[handle.index() as usize].session.as_ref() else {
            return;
        };
        let (old_peer, old_local) = (session.remote, session.local);
        if (remote, local) != (old_peer, old_local) && freshness == Freshness::Newest {
            self.migrate(handle, remote, local);
        }
        match header.kind {
            TYPE_DATA => {
                let outcome = self.with_session(handle, |s| s.input(now, body));
                match outcome {
                    Some(Ok(engine_error)) => {
                        self.stats.datagrams_accepted += 1;
                        if let Some(s) = self.slots[handle.index() as usize].session.as_mut() {
                            s.note_framing_in(SESSION_OVERHEAD);
                        }
                        if let Some(error) = engine_error {
                            self.engine_error(handle, error);
                        }
                        self.after_activity(handle, now);
                    }
                    Some(Err(violation)) => {
                        self.drop_guarded(remote, local, conv, uid, violation, len)
                    }
                    None => {}
                }
            }
            TYPE_KEEPALIVE => {
                self.stats.datagrams_accepted += 1;
                if let Some(s) = self.slots[handle.index() as usize].session.as_mut() {
                    s.note_control_in(now, len);
                }
                self.reschedule(handle, now);
            }
            TYPE_DATAGRAM => {
                self.datagram_in(now, handle, remote, local, header, body, len);
            }
            TYPE_FEC_PARITY => {
                // Taken by `fec_input`; an authentic datagram all the same.
                self.stats.datagrams_accepted += 1;
                if let Some(s) = self.slots[handle.index() as usize].session.as_mut() {
                    s.note_control_in(now, len);
                }
                self.reschedule(handle, now);
            }
            _ => {
                self.stats.datagrams_accepted += 1;
                let said = wire::parse_disconnect_body(body);
                if let Some(s) = self.slots[handle.index() as usize].session.as_mut() {
                    s.note_control_in(now, len);
                    s.set_peer_close(
                        CloseReason::from_code(said.reason),
                        AppClose::new(said.app_code, said.text),
                    );
                }
                self.close_now(handle, CloseReason::PeerClosed);
            }
        }
    }

    /// The public facts of a secure session's protection, for `kcp:connection_established`.
    fn secure_session_info(&self, handle: ConnectionHandle) -> Option<SecureSession> {
        self.session(handle)
            .and_then(Session::key_id)
            .map(|key_id| SecureSession {
                version: VERSION,
                suite: wire::SUITE_NAME,
                key_id,
            })
    }

    /// Whether a RESET may go to `remote` now: a server only, within the reset rates (per
    /// source and overall), so spoofed session datagrams cannot aim a stream of RESETs at a
    /// victim beyond what they cost the attacker.
    fn reset_allowed(&mut self, remote: SocketAddr) -> bool {
        let now = self.clock.extended();
        self.reset_rate
            .as_mut()
            .is_some_and(|rate| rate.admit(&RESET_RATES, remote.ip(), now).is_ok())
    }

    /// A RESET at a client: the server has no session with this conv. It ends the session
    /// only if it echoes the packet number and tag of a datagram we sent recently, which no
    /// one off the path can know; anything else is dropped.
    fn client_reset(&mut self, remote: SocketAddr, local: SocketAddr, datagram: &[u8]) {
        let len = datagram.len();
        let Some((conv, packet_number, tag)) = wire::parse_reset(datagram) else {
            self.drop_trigger(
                remote,
                local,
                None,
                None,
                DropTrigger::BadLength,
                "reset_length",
                len,
            );
            return;
        };
        let handle = self.by_conv.get(&conv).copied().filter(|&h| {
            self.session(h).is_some_and(|s| {
                s.direction == Direction::Outbound && s.state != ConnectionState::Handshaking
            })
        });
        let Some(handle) = handle else {
            self.drop_trigger(
                remote,
                local,
                Some(conv),
                None,
                DropTrigger::UnknownConnection,
                "no_session",
                len,
            );
            return;
        };
        let session = self.session(handle);
        let uid = session.map(|s| s.uid);
        if !session.is_some_and(|s| s.reset_matches(packet_number, &tag)) {
            self.drop_trigger(
                remote,
                local,
                Some(conv),
                uid,
                DropTrigger::BadTag,
                "reset_tag",
                len,
            );
            return;
        }
        self.stats.datagrams_accepted += 1;
        self.stats.resets_received += 1;
        // The server's end of the session is gone: it ended there, as far as we can tell.
        self.close_now(handle, CloseReason::PeerClosed);
    }

    fn drop_guarded(
        &mut self,
        remote: SocketAddr,
        local: SocketAddr,
        conv: Option<u32>,
        uid: Option<Uid>,
        violation: GuardViolation,
        len: usize,
    ) {
        self.drop_datagram(remote, local, conv, uid, violation, len);
    }

    /// Moves a session to the address its newest authentic datagram came from.
    fn migrate(&mut self, handle: ConnectionHandle, remote: SocketAddr, local: SocketAddr) {
        let Some(session) = self.slots[handle.index() as usize].session.as_mut() else {
            return;
        };
        let (old_peer, old_local) = (session.remote, session.local);
        session.move_to(remote, local);
        let inbound = session.direction == Direction::Inbound;
        let conn = session.conn_ref();
        if inbound {
            self.counts.remove(old_peer.ip());
            self.counts.add(remote.ip());
        }
        self.stats.peer_address_changes += 1;
        self.emit(SecurityEvent::PeerAddressChanged(PeerAddressChanged {
            conn,
            old_peer,
            old_local,
        }));
    }
}

/// The endpoint's clock as a KCP reading, for calls that only have the extended one.
struct ExtendedNow;

impl ExtendedNow {
    fn wrap(extended: u64) -> Millis {
        crate::clock::ExtendedClock::wrap(extended)
    }
}

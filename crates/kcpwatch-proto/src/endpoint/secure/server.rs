//! Secure mode, server side: the cookie, the HELLO, the application's answer to the token,
//! the ACCEPT and its confirmation.

use std::net::SocketAddr;

use super::{agreed_session_config, own_params, peer_ceiling, secure_session_config, ExtendedNow};
use crate::clock::Millis;
use crate::endpoint::{
    Attempt, ConnectionHandle, Dropped, Endpoint, EndpointEvent, HelloFrom, Session, Validated,
};
use crate::events::{
    ConnectionAttempted, ConnectionEstablished, ConnectionFailed, ConnectionRef, Direction,
    DropRule, FailReason, SecurityEvent, UserId,
};
use crate::lifecycle::{CloseReason, ConnectionState, DropTrigger};
use crate::secure::keys::{Role, SessionKeys};
use crate::secure::wire::{
    self, AcceptPayload, RejectReason, ACCEPT_LEN, COOKIE_DATAGRAM_LEN, REJECT_LEN,
    SUITE_NK_25519_CHACHAPOLY_BLAKE2S, VERSION,
};
use crate::secure::CookieCheck;
use crate::session::{Opening, Protection};

impl Endpoint {
    /// Sends a REJECT with `reason` and the application's `app_code` (0 for none) to the
    /// client `to`; `validated` once its address returned our cookie.
    pub(in crate::endpoint) fn send_reject(
        &mut self,
        to: HelloFrom,
        reason: RejectReason,
        app_code: u16,
        validated: bool,
    ) {
        let mut reject = [0; REJECT_LEN];
        let len = wire::write_reject(&mut reject, &to.nonce, reason, app_code);
        self.send_unbound(to.remote, to.local, &reject[..len], validated);
        self.reporter.stats.rejects_sent += 1;
    }

    pub(in crate::endpoint) fn send_cookie(&mut self, to: HelloFrom) {
        let unix_ms = self.unix_ms();
        let mut reply = [0; COOKIE_DATAGRAM_LEN];
        self.handshake
            .cookie_reply(unix_ms, to.remote, &to.nonce, &mut reply);
        self.send_unbound(to.remote, to.local, &reply, false);
        self.reporter.stats.cookies_sent += 1;
    }

    /// A HELLO at a server: the stateless half until the cookie checks out.
    pub(in crate::endpoint) fn server_hello(
        &mut self,
        now: Millis,
        remote: SocketAddr,
        local: SocketAddr,
        datagram: &[u8],
    ) {
        let len = datagram.len();
        let attempt = Attempt {
            remote,
            local,
            conv: 0,
        };
        if !self.config.accept_inbound {
            self.drop_trigger(
                Dropped::new(remote, local, len),
                DropTrigger::BadCmd,
                DropRule::HelloToClient,
            );
            return;
        }
        self.reporter.stats.hellos_received += 1;
        self.reporter.stats.bytes_received_unvalidated += len as u64;
        let now_extended = self.clock.extended();
        self.reporter
            .detect(now_extended, |d, now_ms| d.handshake(remote.ip(), now_ms));
        if self.refused_by_detector(attempt) {
            return;
        }
        let hello = match wire::parse_hello(datagram) {
            Ok(hello) => hello,
            Err(error) => {
                let (trigger, rule) = match error {
                    wire::WireError::TooShort => (DropTrigger::TooShort, DropRule::HelloTooShort),
                    wire::WireError::BadLength => (DropTrigger::BadLength, DropRule::HelloTooLong),
                    wire::WireError::BadType => (DropTrigger::BadCmd, DropRule::UnknownType),
                };
                self.failed_attempt(attempt, FailReason::Malformed, trigger, rule);
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
        let from = HelloFrom {
            remote,
            local,
            nonce: hello.nonce,
        };
        let unix_ms = self.unix_ms();
        let cookie_check = match (&hello.cookie, hello.version == VERSION) {
            (Some(cookie), true) => {
                Some(
                    self.handshake
                        .check_cookie(unix_ms, remote, &hello.nonce, cookie),
                )
            }
            _ => None,
        };
        if !matches!(cookie_check, Some(CookieCheck::Valid)) {
            let now_extended = self.clock.extended();
            if let Err(hit) = self.handshake.admit_rate(remote.ip(), now_extended) {
                self.failed_attempt(
                    attempt,
                    FailReason::RateLimited,
                    DropTrigger::RateLimited,
                    hit.rule(),
                );
                return;
            }
        }
        if hello.version != VERSION || hello.suite != SUITE_NK_25519_CHACHAPOLY_BLAKE2S {
            self.send_reject(from, RejectReason::VersionMismatch, 0, false);
            let rule = if hello.version != VERSION {
                DropRule::UnsupportedVersion
            } else {
                DropRule::UnsupportedSuite
            };
            self.failed_attempt(
                attempt,
                FailReason::VersionMismatch,
                DropTrigger::BadCmd,
                rule,
            );
            return;
        }
        if self.handshake.server_key(&hello.key_id).is_none() {
            // The client pinned a key this server does not hold (an old one after a rotation,
            // or another server's): say so at once rather than let it time out.
            self.send_reject(from, RejectReason::UnknownServerKey, 0, false);
            self.failed_attempt(
                attempt,
                FailReason::UnknownServerKey,
                DropTrigger::BadCmd,
                DropRule::UnknownKeyId,
            );
            return;
        }
        let Some(cookie_check) = cookie_check else {
            self.send_cookie(from);
            return;
        };
        match cookie_check {
            CookieCheck::Invalid => {
                self.failed_attempt(
                    attempt,
                    FailReason::InvalidCookie,
                    DropTrigger::BadTag,
                    DropRule::CookieMac,
                );
                return;
            }
            CookieCheck::Expired => {
                // A genuine but slow client: a fresh cookie lets it finish on its next HELLO.
                self.send_cookie(from);
                self.failed_attempt(
                    attempt,
                    FailReason::ExpiredCookie,
                    DropTrigger::BadTag,
                    DropRule::CookieExpired,
                );
                return;
            }
            CookieCheck::Valid => {}
        }
        // The source is validated from here on: it received our COOKIE at this address.
        let nonce = hello.nonce;
        if let Some(handle) = self.sessions.by_nonce(&nonce) {
            let accept = self
                .session(handle)
                .filter(|s| s.remote == remote)
                .and_then(|s| s.secure.as_ref())
                .and_then(|s| s.accept.clone());
            match accept {
                // The ACCEPT was lost: the same answer again. The client is alive and trying,
                // so its session must not idle out meanwhile.
                Some(accept) => {
                    if let Some(s) = self.sessions.get_mut(handle) {
                        s.note_alive(now);
                    }
                    self.send_unbound(remote, local, &accept, true);
                    self.reschedule(handle, now);
                }
                None => self.drop_trigger(
                    Dropped::new(remote, local, len),
                    DropTrigger::UnknownConnection,
                    DropRule::NonceInUse,
                ),
            }
            return;
        }
        if self.handshake.pending_nonce(&nonce) {
            // Still waiting for the application; the answer will come.
            return;
        }
        if let Err(rule) = self.admits(remote) {
            self.send_reject(from, RejectReason::Capacity, 0, true);
            self.failed_attempt(attempt, FailReason::Capacity, DropTrigger::OverLimit, rule);
            return;
        }
        // The first Diffie-Hellman for this client: its address is validated and the limits
        // admit it. The token is decrypted into a buffer kept for the purpose.
        let mut token = self.handshake.take_token_buf();
        let key_id = hello.key_id;
        let (noise, client) = match self.handshake.read_hello(&hello, &mut token) {
            Some(Ok(done)) => done,
            // The key was found above; `None` cannot happen here.
            Some(Err(_)) | None => {
                self.handshake.put_token_buf(token);
                self.failed_attempt(
                    attempt,
                    FailReason::DecryptFailed,
                    DropTrigger::DecryptFailed,
                    DropRule::HelloNoise,
                );
                return;
            }
        };
        if !client.usable() {
            // Authentic (it decrypted) but unusable: no KCP engine fits in so small a datagram,
            // or no message fits in an empty window.
            self.handshake.put_token_buf(token);
            self.send_reject(from, RejectReason::Malformed, 0, true);
            let rule = if client.mtu < wire::MIN_MTU {
                DropRule::HelloMtu
            } else {
                DropRule::HelloWindow
            };
            self.failed_attempt(attempt, FailReason::Malformed, DropTrigger::BadLength, rule);
            return;
        }
        if client.stream != self.config.session.stream {
            // Stream mode keeps no message boundaries: the two sides would cut each other's
            // bytes differently, so no session can work. The HELLO is authentic, so the client
            // is told why (before its token is judged); like a datagram of the other mode
            // (`mode_mismatch`), it is refused as `bad_cmd`.
            self.handshake.put_token_buf(token);
            self.send_reject(from, RejectReason::StreamMismatch, 0, true);
            self.failed_attempt(
                attempt,
                FailReason::StreamMismatch,
                DropTrigger::BadCmd,
                DropRule::HelloStream,
            );
            return;
        }
        let uid = self.uids.next(self.unix_ms());
        let conv = self.fresh_conv();
        let validated = Validated {
            uid,
            conv,
            remote,
            local,
            nonce,
            noise,
            key_id,
            client,
            user: UserId::NONE,
        };
        let conn = validated.conn();
        self.emit(SecurityEvent::ConnectionAttempted(ConnectionAttempted {
            conn,
        }));
        self.state_change(
            conn,
            ConnectionState::Attempted,
            ConnectionState::Handshaking,
        );
        if !self.config.require_auth {
            self.handshake.put_token_buf(token);
            self.establish_server(now, validated);
            return;
        }
        if self.handshake.pending_count() >= self.config.max_pending_auth {
            self.handshake.put_token_buf(token);
            self.send_reject(from, RejectReason::Capacity, 0, true);
            self.validated_failure(
                conn,
                FailReason::Capacity,
                Some(DropTrigger::OverLimit),
                DropRule::MaxPendingAuth,
            );
            return;
        }
        let deadline = self.clock.extended() + u64::from(self.config.auth_timeout_ms);
        let id = self.handshake.await_auth(validated, deadline);
        self.reporter.stats.auth_requests += 1;
        self.events.push_back(EndpointEvent::AuthRequest {
            id,
            uid,
            remote,
            local,
            token: token.as_slice().into(),
        });
        self.handshake.put_token_buf(token);
    }

    /// A handshake that was logged as attempted ends without a connection.
    pub(in crate::endpoint) fn validated_failure(
        &mut self,
        conn: ConnectionRef,
        reason: FailReason,
        trigger: Option<DropTrigger>,
        rule: DropRule,
    ) {
        self.reporter.count_failure(reason, trigger);
        if conn.direction == Direction::Inbound {
            let now = self.clock.extended();
            self.reporter
                .detect_failure(conn.peer.ip(), reason, rule, now);
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

    /// Writes the ACCEPT for `client` and opens its session, unconfirmed until the client's
    /// first authenticated datagram.
    pub(in crate::endpoint) fn establish_server(&mut self, now: Millis, client: Validated) {
        let Validated {
            uid,
            conv,
            remote,
            local,
            nonce,
            noise,
            key_id,
            client,
            user,
        } = client;
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
        let opening = Opening {
            uid,
            conv,
            remote,
            local,
            direction: Direction::Inbound,
        };
        let handle = self.insert_session(now, &config, opening);
        let now_extended = self.clock.extended();
        if let Some(session) = self.sessions.get_mut(handle) {
            session.send_ceiling = peer_ceiling(&config, &client);
            session.user = user;
            let protection = Protection {
                role: Role::Server,
                nonce,
                key_id,
                keepalive_ms: keepalive,
            };
            session.make_secure(protection, None, now);
            let keys = SessionKeys::from_split(&split, Role::Server);
            session.start_session(conv, keys, now, now_extended);
            if let Some(codec) = fec {
                session.enable_secure_fec(codec, usize::from(agreed_mtu));
            }
            session.send_plain(&accept);
            if let Some(secure) = session.secure.as_mut() {
                secure.accept = Some(accept.into());
            }
        }
        // Not a connection yet: the client may have given up while the application thought,
        // or may never get the ACCEPT. Its first authenticated datagram proves it holds the
        // keys and is still there (QUIC's handshake confirmation).
        let confirm_by = now.wrapping_add(self.config.handshake_timeout_ms);
        self.sessions.await_confirmation(handle, confirm_by);
        self.sessions.index_conv(conv, handle);
        self.sessions.index_nonce(nonce, handle);
        self.reschedule(handle, now);
    }

    /// The client's first authenticated datagram after the ACCEPT: the connection exists from
    /// now on, and the application hears of it. A KEEPALIVE tells the client its confirmation
    /// arrived, so it stops repeating it.
    pub(in crate::endpoint) fn confirm_server(&mut self, handle: ConnectionHandle, now: Millis) {
        let now_extended = self.clock.extended();
        let Some(session) = self.sessions.confirm(handle, now, now_extended) else {
            return;
        };
        session.send_confirmation_ack();
        let remote = session.remote;
        self.reporter.stats.passive_opens += 1;
        let live = self.handshake.inbound_from(remote.ip());
        let now_extended = self.clock.extended();
        self.reporter.detect(now_extended, |d, now_ms| {
            d.established(remote.ip(), live, now_ms)
        });
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
        if let Some(info) = self.connection_info(handle) {
            self.events
                .push_back(EndpointEvent::Accepted { handle, info });
        }
    }

    /// Ends a server session the client never confirmed: a failed attempt (never a connection,
    /// so no close record and no `Closed` event). `reason` is what would have closed it.
    pub(in crate::endpoint) fn abandon_unconfirmed(
        &mut self,
        handle: ConnectionHandle,
        reason: CloseReason,
    ) {
        let Some(mut session) = self.remove_session(handle) else {
            return;
        };
        // The client may believe it is connected (it read the ACCEPT): tell it, unless it is
        // the one that said goodbye.
        if reason != CloseReason::PeerClosed {
            session.send_disconnect(reason);
        }
        let conn = session.conn_ref();
        let abandoned = FailReason::HandshakeAbandoned;
        match reason {
            CloseReason::Shutdown => {
                self.validated_failure(conn, FailReason::Shutdown, None, DropRule::Shutdown)
            }
            CloseReason::PeerClosed => {
                self.validated_failure(conn, abandoned, None, DropRule::PeerDisconnect)
            }
            _ => self.validated_failure(conn, abandoned, None, DropRule::HandshakeAbandoned),
        }
    }

    /// Answers an [`EndpointEvent::AuthRequest`]: `accept` opens the session, otherwise the
    /// client gets a REJECT and the attempt fails with `auth_rejected`. False if the request
    /// is unknown (already answered, or timed out).
    pub fn resolve_auth(&mut self, id: u64, accept: bool) -> bool {
        self.answer_auth(id, accept, 0, DropRule::Authenticate)
    }

    /// Accepts an [`EndpointEvent::AuthRequest`] as [`Endpoint::resolve_auth`] does, naming
    /// the user: every record of the connection carries `user` (docs/events.md, `user_id`).
    pub fn resolve_auth_as(&mut self, id: u64, user: UserId) -> bool {
        self.handshake.name_user(id, user);
        self.answer_auth(id, true, 0, DropRule::Authenticate)
    }

    /// Refuses an [`EndpointEvent::AuthRequest`] with the application's reason code (1 to
    /// 65535; 0 is none), which the client receives in the REJECT. False if the request is
    /// unknown.
    pub fn reject_auth(&mut self, id: u64, app_code: u16) -> bool {
        self.answer_auth(id, false, app_code, DropRule::Authenticate)
    }

    pub(in crate::endpoint) fn answer_auth(
        &mut self,
        id: u64,
        accept: bool,
        app_code: u16,
        rule: DropRule,
    ) -> bool {
        let Some(pending) = self.handshake.take_auth(id) else {
            return false;
        };
        let conn = pending.conn();
        if !accept {
            self.send_reject(
                pending.reply_to(),
                RejectReason::AuthRejected,
                app_code,
                true,
            );
            self.validated_failure(conn, FailReason::AuthRejected, None, rule);
            return true;
        }
        // Limits may have filled while the application thought.
        if let Err(rule) = self.admits(pending.remote) {
            self.send_reject(pending.reply_to(), RejectReason::Capacity, 0, true);
            self.validated_failure(
                conn,
                FailReason::Capacity,
                Some(DropTrigger::OverLimit),
                rule,
            );
            return true;
        }
        let now = ExtendedNow::wrap(self.clock.extended());
        self.establish_server(now, pending);
        true
    }

    /// Ends every authentication in progress because the server is shutting down: the client
    /// gets a REJECT `shutdown` (its token was not judged) and the attempt fails as
    /// `shutdown`, not as a refusal.
    pub(in crate::endpoint) fn refuse_pending_auth_for_shutdown(&mut self) {
        let pending: Vec<Validated> = self.handshake.take_all_auth().collect();
        for pending in pending {
            self.send_reject(pending.reply_to(), RejectReason::Shutdown, 0, true);
            let conn = pending.conn();
            self.validated_failure(conn, FailReason::Shutdown, None, DropRule::Shutdown);
        }
    }

    /// Rejects every authentication request whose answer is overdue.
    pub(in crate::endpoint) fn expire_pending_auth(&mut self, now_extended: u64) {
        while let Some(id) = self.handshake.overdue_auth(now_extended) {
            self.answer_auth(id, false, 0, DropRule::AuthTimeout);
        }
    }

    /// Authentication requests waiting for an answer.
    pub fn pending_auth_count(&self) -> usize {
        self.handshake.pending_count()
    }

    /// Whether a RESET may go to `remote` now: a server only, within the reset rates (per
    /// source and overall), so spoofed session datagrams cannot aim a stream of RESETs at a
    /// victim beyond what they cost the attacker.
    pub(in crate::endpoint) fn reset_allowed(&mut self, remote: SocketAddr) -> bool {
        let now = self.clock.extended();
        self.handshake.reset_allowed(remote.ip(), now)
    }
}

//! Secure mode, client side: the HELLO and its retries, the server's replies, a failed
//! handshake, and RESETs from a server that lost the session.

use crate::endpoint::Dropped;
use std::net::SocketAddr;

use super::{agreed_session_config, own_params, peer_ceiling, secure_session_config};
use crate::clock::{diff, Millis};
use crate::config::{Mode, SessionConfig};
use crate::endpoint::{
    ConnectError, ConnectionHandle, Endpoint, EndpointEvent, EndpointStats, Session, Unreachable,
    HANDSHAKE_UNREACHABLE_HELLOS,
};
use crate::events::{
    ConnectionAttempted, ConnectionEstablished, Direction, DropRule, FailReason, SecurityEvent,
};
use crate::lifecycle::{CloseReason, ConnectionState, DropTrigger};
use crate::secure::keys::{Role, SessionKeys};
use crate::secure::noise::ClientNoise;
use crate::secure::wire::{
    self, RejectReason, MAX_TOKEN_LEN, SESSION_OVERHEAD, TYPE_ACCEPT, TYPE_COOKIE,
};
use crate::session::{ClientHandshake, Opening, Protection, HELLO_RETRY_MS};

impl Endpoint {
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
        if self.sessions.live() + self.handshake.pending_count() >= self.config.max_connections {
            return Err(ConnectError::Capacity(self.config.max_connections));
        }
        let nonce = self.handshake.random_nonce();
        // The largest datagram we accept: the MTU on the wire (validate() bounds it to 65,507).
        let mtu = u16::try_from(config.mtu + SESSION_OVERHEAD).unwrap_or(u16::MAX);
        let params = own_params(&config, mtu);
        let mut hello = Vec::new();
        let noise = match self.handshake.test_ephemeral() {
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
        let opening = Opening {
            uid: self.uids.next(self.unix_ms()),
            conv: 0,
            remote,
            local,
            direction: Direction::Outbound,
        };
        let handle = self.insert_session(now, &config, opening);
        let deadline = now.wrapping_add(self.config.handshake_timeout_ms);
        if let Some(session) = self.sessions.get_mut(handle) {
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
            let protection = Protection {
                role: Role::Client,
                nonce,
                key_id,
                keepalive_ms: keepalive,
            };
            session.make_secure(protection, Some(handshake), now);
        }
        self.sessions.index_nonce(nonce, handle);
        self.reporter.stats.active_opens += 1;
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
    pub(in crate::endpoint) fn send_hello(&mut self, handle: ConnectionHandle, now: Millis) {
        let mut scratch = std::mem::take(&mut self.scratch);
        if let Some(session) = self.sessions.get_mut(handle) {
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
    pub(in crate::endpoint) fn client_handshake_tick(
        &mut self,
        handle: ConnectionHandle,
        now: Millis,
    ) -> bool {
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
            self.fail_connect(
                handle,
                FailReason::HandshakeTimeout,
                DropRule::HandshakeTimeout,
                0,
            );
            return true;
        }
        if diff(now, next_hello) >= 0 {
            self.send_hello(handle, now);
        }
        self.reschedule(handle, now);
        true
    }

    pub(in crate::endpoint) fn fail_connect(
        &mut self,
        handle: ConnectionHandle,
        reason: FailReason,
        rule: DropRule,
        app_code: u16,
    ) {
        let Some(session) = self.remove_session(handle) else {
            return;
        };
        let conn = session.conn_ref();
        self.validated_failure(conn, reason, None, rule);
        self.events.push_back(EndpointEvent::ConnectFailed {
            handle,
            reason,
            app_code,
        });
    }

    /// An ICMP unreachable report about a handshaking client's server address. Reports about
    /// [`HANDSHAKE_UNREACHABLE_HELLOS`] different HELLOs, with no COOKIE in between, fail the
    /// attempt as `unreachable` (docs/security.md, "ICMP during the handshake"). `None` for a
    /// repeat about a HELLO already counted.
    pub(in crate::endpoint) fn handshake_unreachable(
        &mut self,
        handle: ConnectionHandle,
    ) -> Option<Unreachable> {
        let session = self.sessions.get_mut(handle)?;
        let conn = session.conn_ref();
        let h = session.secure.as_mut()?.handshake.as_mut()?;
        if h.unreachable_hellos > 0 && h.unreachable_at_hello == h.hellos {
            return None;
        }
        h.unreachable_at_hello = h.hellos;
        h.unreachable_hellos += 1;
        if h.unreachable_hellos < HANDSHAKE_UNREACHABLE_HELLOS {
            return Some(Unreachable::FirstReport(conn));
        }
        self.fail_connect(
            handle,
            FailReason::Unreachable,
            DropRule::IcmpUnreachable,
            0,
        );
        Some(Unreachable::Closed(conn))
    }

    /// COOKIE, ACCEPT or REJECT at a client: each answers a HELLO of ours, named by its nonce.
    pub(in crate::endpoint) fn client_reply(
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
                Dropped::new(remote, local, len),
                DropTrigger::BadLength,
                DropRule::HandshakeLength,
            );
            return;
        };
        let handle = self.sessions.by_nonce(&nonce).filter(|&h| {
            // From any address: the nonce authenticates the reply (docs/protocol.md).
            self.session(h).is_some_and(|s| {
                s.direction == Direction::Outbound && s.state == ConnectionState::Handshaking
            })
        });
        let Some(handle) = handle else {
            // Not an answer to a handshake in progress: late, duplicated or forged.
            self.drop_trigger(
                Dropped::new(remote, local, len),
                DropTrigger::UnknownConnection,
                DropRule::NoHandshake,
            );
            return;
        };
        match datagram[0] {
            TYPE_COOKIE => {
                let Some((_, cookie)) = wire::parse_cookie(datagram) else {
                    return;
                };
                if let Some(h) = self
                    .sessions
                    .get_mut(handle)
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
                let noise = self
                    .sessions
                    .get_mut(handle)
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
                        self.reporter.stats.dropped
                            [EndpointStats::trigger_index(DropTrigger::DecryptFailed)] += 1;
                        self.fail_connect(
                            handle,
                            FailReason::ServerAuthFailed,
                            DropRule::AcceptNoise,
                            0,
                        );
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
                    self.fail_connect(handle, FailReason::Malformed, DropRule::AcceptMtu, 0);
                    return;
                }
                if server.stream != own_stream {
                    // The server refuses a mismatch with a REJECT; one that accepts anyway
                    // would read our bytes with other boundaries than we write them.
                    self.fail_connect(
                        handle,
                        FailReason::StreamMismatch,
                        DropRule::AcceptStream,
                        0,
                    );
                    return;
                }
                let agreed = self.session(handle).map(|session| {
                    let (config, fec) =
                        self.fec_for(agreed_session_config(&session.config, server.mtu));
                    let ceiling = peer_ceiling(&config, &server);
                    let fits = config.stream || session.largest_queued() <= ceiling;
                    (config, fec, ceiling, fits)
                });
                let (dropped, fec) = match (agreed, self.sessions.get_mut(handle)) {
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
                    self.fail_connect(
                        handle,
                        FailReason::Malformed,
                        DropRule::QueuedMessageTooLarge,
                        0,
                    );
                    return;
                }
                let now_extended = self.clock.extended();
                if let Some(session) = self.sessions.get_mut(handle) {
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
                if let Some(old) = self.sessions.index_conv(accept.conv, handle) {
                    // Two servers gave one client endpoint the same conv: the newer wins.
                    self.close_now(old, CloseReason::ProtocolViolation);
                    self.sessions.index_conv(accept.conv, handle);
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
                if let Some(info) = self.connection_info(handle) {
                    self.events
                        .push_back(EndpointEvent::Established { handle, info });
                }
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
                self.fail_connect(handle, reason, DropRule::ServerRejected, reject.app_code);
            }
        }
    }

    /// A RESET at a client: the server has no session with this conv. It ends the session
    /// only if it echoes the packet number and tag of a datagram we sent recently, which no
    /// one off the path can know; anything else is dropped.
    pub(in crate::endpoint) fn client_reset(
        &mut self,
        remote: SocketAddr,
        local: SocketAddr,
        datagram: &[u8],
    ) {
        let len = datagram.len();
        let Some((conv, packet_number, tag)) = wire::parse_reset(datagram) else {
            self.drop_trigger(
                Dropped::new(remote, local, len),
                DropTrigger::BadLength,
                DropRule::ResetLength,
            );
            return;
        };
        let handle = self.sessions.by_conv(conv).filter(|&h| {
            self.session(h).is_some_and(|s| {
                s.direction == Direction::Outbound && s.state != ConnectionState::Handshaking
            })
        });
        let Some(handle) = handle else {
            self.drop_trigger(
                Dropped::new(remote, local, len).conv(Some(conv)),
                DropTrigger::UnknownConnection,
                DropRule::NoSession,
            );
            return;
        };
        let session = self.session(handle);
        let uid = session.map(|s| s.uid);
        if !session.is_some_and(|s| s.reset_matches(packet_number, &tag)) {
            self.drop_trigger(
                Dropped::new(remote, local, len).conv(Some(conv)).uid(uid),
                DropTrigger::BadTag,
                DropRule::ResetTag,
            );
            return;
        }
        self.reporter.stats.datagrams_accepted += 1;
        self.reporter.stats.resets_received += 1;
        // The server's end of the session is gone: it ended there, as far as we can tell.
        self.close_now(handle, CloseReason::PeerClosed);
    }
}

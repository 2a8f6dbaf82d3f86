//! How sessions begin: a raw peer's first datagram, or `connect`, within the limits.

use super::{Attempt, Dropped};
use std::net::SocketAddr;

use super::{
    mode_mismatch, ConnectError, ConnectionHandle, Endpoint, EndpointEvent, RECENTLY_CLOSED,
};
use crate::clock::Millis;
use crate::config::{EndpointConfig, SessionConfig};
use crate::events::{
    ConnectionAttempted, ConnectionEstablished, ConnectionStateUpdated, Direction, DropRule,
    FailReason, SecurityEvent,
};
use crate::guard::{self, GuardContext};
use crate::lifecycle::{ConnectionState, DropTrigger};
use crate::session::{Opening, Session};

impl Endpoint {
    /// Validates the first datagram of an unknown (address, conv) and opens a session for it.
    pub(super) fn open_inbound(
        &mut self,
        now: Millis,
        remote: SocketAddr,
        local: SocketAddr,
        conv: u32,
        datagram: &[u8],
    ) -> Option<ConnectionHandle> {
        if !self.config.accept_inbound {
            self.drop_trigger(
                Dropped::new(remote, local, datagram.len()).conv(Some(conv)),
                DropTrigger::UnknownConnection,
                DropRule::NoSession,
            );
            return None;
        }
        if self
            .sessions
            .raw_blocked(remote, conv, self.clock.extended())
        {
            self.drop_trigger(
                Dropped::new(remote, local, datagram.len()).conv(Some(conv)),
                DropTrigger::UnknownConnection,
                RECENTLY_CLOSED,
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
                    Dropped::new(remote, local, datagram.len()).conv(Some(conv)),
                    DropTrigger::UnknownConnection,
                    rule,
                );
                return None;
            }
        }

        let now_extended = self.clock.extended();
        self.reporter
            .detect(now_extended, |d, now_ms| d.handshake(remote.ip(), now_ms));
        if self.refused_by_detector(Attempt {
            remote,
            local,
            conv,
        }) {
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
                Attempt {
                    remote,
                    local,
                    conv,
                },
                FailReason::Malformed,
                violation.trigger(),
                violation.rule(),
            );
            return None;
        }
        let now_extended = self.clock.extended();
        if let Err(hit) = self.handshake.admit_rate(remote.ip(), now_extended) {
            self.failed_attempt(
                Attempt {
                    remote,
                    local,
                    conv,
                },
                FailReason::RateLimited,
                DropTrigger::RateLimited,
                hit.rule(),
            );
            return None;
        }
        if let Err(rule) = self.admits(remote) {
            self.failed_attempt(
                Attempt {
                    remote,
                    local,
                    conv,
                },
                FailReason::Capacity,
                DropTrigger::OverLimit,
                rule,
            );
            return None;
        }
        let config = self.config.session;
        let opening = Opening {
            uid: self.uids.next(self.unix_ms()),
            conv,
            remote,
            local,
            direction: Direction::Inbound,
        };
        let handle = self.insert_session(now, &config, opening);
        self.reporter.stats.passive_opens += 1;
        self.opened(handle);
        let live = self.handshake.inbound_from(remote.ip());
        let now_extended = self.clock.extended();
        self.reporter.detect(now_extended, |d, now_ms| {
            d.established(remote.ip(), live, now_ms)
        });
        if let Some(info) = self.connection_info(handle) {
            self.events
                .push_back(EndpointEvent::Accepted { handle, info });
        }
        Some(handle)
    }

    /// Whether a new inbound session from `remote` fits every connection limit; the rule
    /// that refuses it otherwise.
    pub(super) fn admits(&self, remote: SocketAddr) -> Result<(), DropRule> {
        if self.sessions.live() + self.handshake.pending_count() >= self.config.max_connections
            || self.sessions.is_full()
        {
            return Err(DropRule::MaxConnections);
        }
        self.handshake
            .counts_admit(remote.ip())
            .map_err(|hit| hit.rule())
    }

    /// Records the opening of a connection: attempted, then established (raw mode has no
    /// handshake in between).
    pub(super) fn opened(&mut self, handle: ConnectionHandle) {
        if !self.reporter.events_on() {
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
        if self.sessions.by_key(remote, conv).is_some() {
            return Err(ConnectError::Duplicate(remote, conv));
        }
        // Pending authentications hold a place too.
        if self.sessions.live() + self.handshake.pending_count() >= self.config.max_connections {
            return Err(ConnectError::Capacity(self.config.max_connections));
        }
        let opening = Opening {
            uid: self.uids.next(self.unix_ms()),
            conv,
            remote,
            local,
            direction: Direction::Outbound,
        };
        let handle = self.insert_session(now, &config, opening);
        self.reporter.stats.active_opens += 1;
        self.opened(handle);
        Ok(handle)
    }

    /// Opens a session for `opening` with engine `config` (FEC's room taken off when raw FEC
    /// is on), counted and indexed, its timer armed.
    pub(super) fn insert_session(
        &mut self,
        now: Millis,
        config: &SessionConfig,
        opening: Opening,
    ) -> ConnectionHandle {
        let Opening {
            remote, direction, ..
        } = opening;
        // FEC puts its header before KCP's in every datagram: KCP gets the rest of the MTU.
        let fec_config;
        let config = match &self.fec {
            Some(_) => {
                fec_config = EndpointConfig::fec_session(config);
                &fec_config
            }
            None => config,
        };
        let mut session =
            Session::new(opening, config, now, self.clock.extended(), self.tx.clone());
        if let Some(fec) = self.fec.as_mut() {
            // One encoder per remote: every session to it shares one seqid sequence.
            session.enable_fec(fec.attach(remote));
        }
        let raw = self.config.mode == crate::config::Mode::Raw;
        let handle = self.sessions.insert(session, raw);
        if direction == Direction::Inbound {
            self.handshake.inbound_opened(remote.ip());
        }
        self.reschedule(handle, now);
        handle
    }
}

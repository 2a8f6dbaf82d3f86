//! The secure-mode half of the endpoint (protocol version 2): the Noise NK handshake on both
//! sides, encrypted session datagrams, replay refusal, address migration and authentication
//! requests (`docs/protocol.md`).
//!
//! The server keeps nothing about a source, and does no Diffie-Hellman for it, until it returns
//! a valid cookie; every reply before that is a fixed-size datagram no larger than the HELLO
//! that caused it.

use crate::endpoint::Dropped;
use crate::exclusive::hold;
use std::net::SocketAddr;

use super::{ConnectionHandle, Endpoint, Session};
use crate::clock::Millis;
use crate::config::SessionConfig;
use crate::events::{ConnectionRef, DropRule, SecureSession};
use crate::lifecycle::{ConnectionState, DropTrigger};
use crate::secure::wire::{
    self, KcpParams, SESSION_OVERHEAD, TYPE_ACCEPT, TYPE_COOKIE, TYPE_DATA, TYPE_DATAGRAM,
    TYPE_DISCONNECT, TYPE_FEC_PARITY, TYPE_HELLO, TYPE_KEEPALIVE, TYPE_REJECT, TYPE_RESET, VERSION,
};

mod client;
mod server;
mod session;

pub(super) use session::Opened;

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
    ) -> (SessionConfig, Option<std::sync::Arc<crate::fec::Codec>>) {
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
            None => self.drop_trigger(
                Dropped::new(remote, local, 0),
                DropTrigger::TooShort,
                DropRule::Empty,
            ),
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
                Dropped::new(remote, local, datagram.len()),
                DropTrigger::BadCmd,
                DropRule::UnknownType,
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
        hold(&self.tx).push(remote, local, datagram);
        if !validated {
            self.reporter.stats.bytes_sent_unvalidated += datagram.len() as u64;
        }
    }

    /// A random conv no live or pending session uses (0 is never assigned: it is what a
    /// client's session carries before its ACCEPT).
    fn fresh_conv(&mut self) -> u32 {
        loop {
            let conv = self.handshake.random_conv();
            if conv != 0
                && self.sessions.by_conv(conv).is_none()
                && !self.handshake.pending_conv(conv)
            {
                return conv;
            }
        }
    }

    fn state_change(&mut self, conn: ConnectionRef, old: ConnectionState, new: ConnectionState) {
        self.reporter.state_change(conn, old, new);
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
}

/// The endpoint's clock as a KCP reading, for calls that only have the extended one.
struct ExtendedNow;

impl ExtendedNow {
    fn wrap(extended: u64) -> Millis {
        crate::clock::ExtendedClock::wrap(extended)
    }
}

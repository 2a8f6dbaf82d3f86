//! What the endpoint tells its driver: connection events, and what an ICMP report came to.

use std::net::SocketAddr;

#[cfg(doc)]
use super::Endpoint;
use super::{ConnectionHandle, ConnectionInfo};
use crate::events::{ConnectionRef, FailReason};
use crate::lifecycle::CloseReason;
use crate::session::ConnectionSummary;
use crate::uid::Uid;

/// Something the application or the logging pipeline needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointEvent {
    /// A new source opened a session (raw mode: its first valid datagram).
    Accepted {
        /// The new connection.
        handle: ConnectionHandle,
        /// The connection as it opened. Carried here because it may already be gone when the
        /// driver reads its events: a client whose confirmation and goodbye arrived in one
        /// batch is accepted and closed in the same turn.
        info: ConnectionInfo,
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
        /// The connection as it was established (as for [`EndpointEvent::Accepted`]: an
        /// ACCEPT and a DISCONNECT read in one turn establish and close it in that turn).
        info: ConnectionInfo,
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

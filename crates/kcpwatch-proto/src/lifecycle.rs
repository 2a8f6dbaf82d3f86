//! The vocabularies of the connection lifecycle (docs/events.md). KCP has no handshake and no close,
//! so these words mean exactly what this library defines them to mean; each name here is the
//! stable string that logs and the JavaScript API carry.

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectionState {
    /// A first datagram arrived from a new source; nothing is allocated yet.
    Attempted,
    /// A secure-mode handshake is in progress.
    Handshaking,
    /// Data may flow.
    Established,
    /// Closed locally; queued data is still being flushed.
    Closing,
    /// Terminal.
    Closed,
}

impl ConnectionState {
    /// Every variant, in declaration order.
    pub const ALL: [ConnectionState; 5] = [
        Self::Attempted,
        Self::Handshaking,
        Self::Established,
        Self::Closing,
        Self::Closed,
    ];

    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Attempted => "attempted",
            Self::Handshaking => "handshaking",
            Self::Established => "established",
            Self::Closing => "closing",
            Self::Closed => "closed",
        }
    }
}

/// Why an established connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// No valid datagram from the peer within the idle timeout.
    IdleTimeout,
    /// A segment reached the retransmission limit without being acknowledged.
    DeadLink,
    /// The peer said it was closing (secure mode DISCONNECT).
    PeerClosed,
    /// The application closed the connection.
    LocalClosed,
    /// The endpoint was shut down.
    Shutdown,
    /// The endpoint made room or refused the peer by policy.
    Evicted,
    /// The peer broke the protocol in a way that ends the session.
    ProtocolViolation,
    /// The engine failed (a panic was caught); the session was discarded.
    InternalError,
}

impl CloseReason {
    /// Every variant, in declaration order.
    pub const ALL: [CloseReason; 8] = [
        Self::IdleTimeout,
        Self::DeadLink,
        Self::PeerClosed,
        Self::LocalClosed,
        Self::Shutdown,
        Self::Evicted,
        Self::ProtocolViolation,
        Self::InternalError,
    ];

    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::IdleTimeout => "idle_timeout",
            Self::DeadLink => "dead_link",
            Self::PeerClosed => "peer_closed",
            Self::LocalClosed => "local_closed",
            Self::Shutdown => "shutdown",
            Self::Evicted => "evicted",
            Self::ProtocolViolation => "protocol_violation",
            Self::InternalError => "internal_error",
        }
    }

    /// The stable numeric code used on the binding boundary.
    pub fn code(self) -> u8 {
        match self {
            Self::IdleTimeout => 1,
            Self::DeadLink => 2,
            Self::PeerClosed => 3,
            Self::LocalClosed => 4,
            Self::Shutdown => 5,
            Self::Evicted => 6,
            Self::ProtocolViolation => 7,
            Self::InternalError => 8,
        }
    }

    /// The reason for a code (a DISCONNECT's reason byte); `None` for an unknown one.
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            1 => Self::IdleTimeout,
            2 => Self::DeadLink,
            3 => Self::PeerClosed,
            4 => Self::LocalClosed,
            5 => Self::Shutdown,
            6 => Self::Evicted,
            7 => Self::ProtocolViolation,
            8 => Self::InternalError,
            _ => return None,
        })
    }

    /// Who ended the connection.
    pub fn initiator(self) -> Initiator {
        match self {
            Self::PeerClosed | Self::ProtocolViolation => Initiator::Remote,
            _ => Initiator::Local,
        }
    }
}

/// Which side ended a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Initiator {
    /// This endpoint.
    Local,
    /// The peer.
    Remote,
}

impl Initiator {
    /// Every variant, in declaration order.
    pub const ALL: [Initiator; 2] = [Self::Local, Self::Remote];

    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Remote => "remote",
        }
    }
}

/// Why a datagram was dropped whole before reaching the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropTrigger {
    /// Shorter than one KCP header.
    TooShort,
    /// The conv does not belong to the session at that address.
    BadConv,
    /// A segment length that does not fit the datagram or the MSS.
    BadLength,
    /// An unknown command byte.
    BadCmd,
    /// A well-formed segment that breaks a guard rule (see [`crate::GuardViolation`]).
    GuardViolation,
    /// No session exists for it and it cannot open one.
    UnknownConnection,
    /// Refused by a limit (connection capacity).
    OverLimit,
    /// Secure mode: the tag did not verify (forged, corrupted, or for another session), or a
    /// HELLO's cookie did not.
    BadTag,
    /// Secure mode: the packet number was seen before or is outside the replay window.
    Replayed,
    /// A handshake rate limit (per source or global) refused it.
    RateLimited,
    /// Secure mode: the AEAD did not authenticate it (forged, corrupted, for another session
    /// or another key), or a HELLO's Noise message did not decrypt.
    DecryptFailed,
}

impl DropTrigger {
    /// Every variant, in declaration order.
    pub const ALL: [DropTrigger; 11] = [
        Self::TooShort,
        Self::BadConv,
        Self::BadLength,
        Self::BadCmd,
        Self::GuardViolation,
        Self::UnknownConnection,
        Self::OverLimit,
        Self::BadTag,
        Self::Replayed,
        Self::RateLimited,
        Self::DecryptFailed,
    ];

    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TooShort => "too_short",
            Self::BadConv => "bad_conv",
            Self::BadLength => "bad_length",
            Self::BadCmd => "bad_cmd",
            Self::GuardViolation => "guard_violation",
            Self::UnknownConnection => "unknown_connection",
            Self::OverLimit => "over_limit",
            Self::BadTag => "bad_tag",
            Self::Replayed => "replayed",
            Self::RateLimited => "rate_limited",
            Self::DecryptFailed => "decrypt_failed",
        }
    }
}

/// Which side opened a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// The peer opened it (a server's connection): the peer is the source.
    Inbound,
    /// We opened it (`connect`): we are the source.
    Outbound,
}

impl Direction {
    /// Every variant, in declaration order.
    pub const ALL: [Direction; 2] = [Self::Inbound, Self::Outbound];

    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inbound => "inbound",
            Self::Outbound => "outbound",
        }
    }
}

/// Why a connection was never established (docs/events.md vocabulary).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailReason {
    /// Secure mode: the handshake did not complete in time.
    HandshakeTimeout,
    /// Secure mode: the cookie's MAC did not verify.
    InvalidCookie,
    /// Secure mode: the cookie's time slot has passed.
    ExpiredCookie,
    /// Secure mode: the application's token check refused the client.
    AuthRejected,
    /// A handshake rate limit refused the source.
    RateLimited,
    /// The connection limit was reached.
    Capacity,
    /// Secure mode: an unsupported protocol version.
    VersionMismatch,
    /// The first datagram was not a valid opening (raw mode: it failed the segment guard).
    Malformed,
    /// Secure mode, server: a HELLO's Noise message did not decrypt (sent for another server
    /// key with the same id, altered on the way, or forged).
    DecryptFailed,
    /// Secure mode: the HELLO names a server key the server does not hold (the client pinned
    /// an old or wrong key); the server refuses it, the client reports it.
    UnknownServerKey,
    /// Secure mode, client: the ACCEPT did not decrypt, so whoever answered does not hold the
    /// server key the client pinned.
    ServerAuthFailed,
    /// Secure mode, client: ICMP reported the server's address unreachable (nothing listens
    /// there, or no route) for two different HELLOs, with no answer from the server between.
    Unreachable,
    /// Secure mode: the server shut down during the handshake (while the application checked
    /// the token, or before the client confirmed the ACCEPT). The server records it; the
    /// client reads it from a REJECT `shutdown`.
    Shutdown,
    /// Secure mode, server: the ACCEPT went out but no authenticated datagram from the client
    /// confirmed it within the handshake timeout (the client gave up, closed, or never got the
    /// ACCEPT and went away), or the client's first datagram was a DISCONNECT. The connection
    /// was never announced.
    HandshakeAbandoned,
    /// Secure mode: one side runs KCP in stream mode and the other in message mode (`stream`
    /// differs), so no session can carry their data. The server refuses the HELLO with a
    /// REJECT `stream_mismatch` and records it; the client reports it.
    StreamMismatch,
}

impl FailReason {
    /// Every variant, in declaration order.
    pub const ALL: [FailReason; 15] = [
        Self::HandshakeTimeout,
        Self::InvalidCookie,
        Self::ExpiredCookie,
        Self::AuthRejected,
        Self::RateLimited,
        Self::Capacity,
        Self::VersionMismatch,
        Self::Malformed,
        Self::DecryptFailed,
        Self::UnknownServerKey,
        Self::ServerAuthFailed,
        Self::Unreachable,
        Self::Shutdown,
        Self::HandshakeAbandoned,
        Self::StreamMismatch,
    ];

    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HandshakeTimeout => "handshake_timeout",
            Self::InvalidCookie => "invalid_cookie",
            Self::ExpiredCookie => "expired_cookie",
            Self::AuthRejected => "auth_rejected",
            Self::RateLimited => "rate_limited",
            Self::Capacity => "capacity",
            Self::VersionMismatch => "version_mismatch",
            Self::Malformed => "malformed",
            Self::DecryptFailed => "decrypt_failed",
            Self::UnknownServerKey => "unknown_server_key",
            Self::ServerAuthFailed => "server_auth_failed",
            Self::Unreachable => "unreachable",
            Self::Shutdown => "shutdown",
            Self::HandshakeAbandoned => "handshake_abandoned",
            Self::StreamMismatch => "stream_mismatch",
        }
    }
}

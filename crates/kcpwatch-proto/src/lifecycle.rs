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

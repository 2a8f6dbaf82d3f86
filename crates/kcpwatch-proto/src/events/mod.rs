//! The security events (docs/events.md): every `kcp:*` event as a typed struct. What each event
//! is called, how severe it is, its lane, its meaning in each output format and the fields of
//! its record are declared once, in [`catalog`](EventKind::spec); `npm run codegen` writes the
//! JSON Schema, the TypeScript types and the catalogue tables of `docs/events.md` from it.
//!
//! Events are plain `Copy` values with no heap data, so the runtime can move them through a
//! fixed-size ring without allocating: text that can vary (error messages) is capped and stored
//! inline, everything else is an enum with a stable name.

mod catalog;
mod sampler;
mod spec;
mod summary;
mod text;

use std::fmt;
use std::net::SocketAddr;

pub use crate::detect::Alert;
pub use crate::drop_rule::{DropRule, Refused, RuleSource};
pub use crate::lifecycle::{Direction, FailReason};
pub use crate::severity::Severity;
pub use catalog::{abnormal_close, close_severity, BASE_FIELDS, UNREFUSED_FAILURES};
pub use sampler::Sampler;
pub use spec::{
    Case, Control, EcsSpec, EventSpec, ExpandedField, Field, Group, GroupUse, OcsfSpec,
    OutcomeRule, Part, Presence, SeverityRule, Shape, Traffic, Vocab, WireType,
};
pub use summary::{AppClose, ConnectionSummary};
pub use text::{CappedText, History, UserId, UserIdError, MAX_USER_ID_LEN, MESSAGE_CAPACITY};

use crate::config::SessionConfig;
use crate::error_code::ErrorCode;
use crate::lifecycle::{CloseReason, ConnectionState, DropTrigger, Initiator};
use crate::uid::Uid;

/// Which ring lane carries an event. The critical lane holds what an analyst cannot
/// reconstruct (lifecycle, closes, errors); the bulk lane holds what is sampled or periodic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lane {
    /// Lifecycle, close, error, alert, log loss.
    Critical,
    /// Dropped-packet samples, state updates, stats.
    Bulk,
}

impl Lane {
    /// Every variant, in declaration order.
    pub const ALL: [Lane; 2] = [Self::Critical, Self::Bulk];

    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Critical => "critical",
            Self::Bulk => "bulk",
        }
    }
}

/// Who a connection-scoped event is about. Source and destination follow the originator, as in
/// Zeek's conn.log: for an inbound connection the peer is the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionRef {
    /// Connection id, shared by every record of the connection.
    pub uid: Uid,
    /// KCP conversation id.
    pub conv: u32,
    /// The peer's address.
    pub peer: SocketAddr,
    /// Our address the datagrams arrived on (the real one, also on a wildcard bind).
    pub local: SocketAddr,
    /// Who opened it.
    pub direction: Direction,
    /// Secure mode, server: the user id the application's `authenticate` answered for this
    /// connection ([`UserId::NONE`] when there is none).
    pub user: UserId,
}

impl ConnectionRef {
    /// The originator's address.
    pub fn src(&self) -> SocketAddr {
        match self.direction {
            Direction::Inbound => self.peer,
            Direction::Outbound => self.local,
        }
    }

    /// The responder's address.
    pub fn dst(&self) -> SocketAddr {
        match self.direction {
            Direction::Inbound => self.local,
            Direction::Outbound => self.peer,
        }
    }
}

/// How the application misused a connection (`kcp:protocol_violation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Violation {
    /// A message larger than `max_message_size`.
    OversizedMessage,
    /// A message sent on a connection that is closing or closed.
    MessageOnClosedConnection,
    /// An empty message (KCP message mode cannot carry one).
    EmptyMessage,
    /// A message beyond the hard cap of queued outbound bytes.
    SendQueueFull,
}

impl Violation {
    /// Every variant, in declaration order.
    pub const ALL: [Violation; 4] = [
        Self::OversizedMessage,
        Self::MessageOnClosedConnection,
        Self::EmptyMessage,
        Self::SendQueueFull,
    ];

    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OversizedMessage => "oversized_message",
            Self::MessageOnClosedConnection => "message_on_closed_connection",
            Self::EmptyMessage => "empty_message",
            Self::SendQueueFull => "send_queue_full",
        }
    }

    /// The `error_code` the application also sees on the thrown or emitted error.
    pub fn error_code(self) -> ErrorCode {
        match self {
            Self::OversizedMessage => ErrorCode::MessageTooLarge,
            Self::MessageOnClosedConnection => ErrorCode::Closed,
            Self::EmptyMessage => ErrorCode::EmptyMessage,
            Self::SendQueueFull => ErrorCode::QueueFull,
        }
    }
}

/// Which layer an error comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorType {
    /// kcpwatch or the KCP engine.
    Library,
    /// The operating system's network stack (bind, send, ICMP).
    Network,
    /// The application's use of the API.
    Application,
}

impl ErrorType {
    /// Every variant, in declaration order.
    pub const ALL: [ErrorType; 3] = [Self::Library, Self::Network, Self::Application];

    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Library => "library",
            Self::Network => "network",
            Self::Application => "application",
        }
    }
}

/// The listener's settings as logged by `kcp:listener_started`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerSettings {
    /// `raw` or `secure`.
    pub mode: &'static str,
    /// Connection limit.
    pub max_connections: u32,
    /// Whether peers may open sessions (false for a client endpoint).
    pub accept_inbound: bool,
    /// Knobs of the sessions it accepts.
    pub session: SessionConfig,
}

/// `kcp:listener_started`: the socket is bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerStarted {
    /// The bound address (may be a wildcard).
    pub local: SocketAddr,
    /// Its settings.
    pub settings: ListenerSettings,
}

/// `kcp:listener_stopped`: the socket is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerStopped {
    /// The bound address.
    pub local: SocketAddr,
    /// Milliseconds it was bound.
    pub uptime_ms: u64,
    /// Connections it carried in total.
    pub connections_total: u64,
}

/// `kcp:connection_attempted`: the first datagram of a new (address, conv), or `connect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionAttempted {
    /// The connection.
    pub conn: ConnectionRef,
}

/// `kcp:connection_established`: data may flow (raw mode: the first valid datagram).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionEstablished {
    /// The connection.
    pub conn: ConnectionRef,
    /// Secure mode: what protects the session; `None` in raw mode.
    pub secure: Option<SecureSession>,
}

/// What protects a secure session (`kcp:connection_established`). Public facts only: never a
/// key or a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecureSession {
    /// The secure-mode protocol version.
    pub version: u8,
    /// The Noise protocol name of the cipher suite.
    pub suite: &'static str,
    /// The id of the server static key the handshake used (first bytes of SHA-256 of it).
    pub key_id: [u8; crate::secure::wire::KEY_ID_LEN],
}

impl SecureSession {
    /// The key id in lower-case hex.
    pub fn key_id_hex(&self) -> CappedText {
        use fmt::Write;
        let mut text = CappedText::EMPTY;
        for b in self.key_id {
            let _ = write!(text, "{b:02x}");
        }
        text
    }
}

/// `kcp:connection_failed`: an attempt that never became a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionFailed {
    /// The attempt.
    pub conn: ConnectionRef,
    /// Why.
    pub reason: FailReason,
    /// The drop trigger that refused the opening datagram; `None` when no datagram was
    /// refused (the application rejected the token, or a client's handshake timed out or was
    /// refused by the server).
    pub trigger: Option<DropTrigger>,
    /// The exact guard, limit or handshake rule; its trigger is `trigger`.
    pub rule: DropRule,
    /// Attempts that failed the same way in the sampling window and were not logged one by
    /// one (0 for an individual record; see [`PacketDropped::suppressed`]).
    pub suppressed: u64,
}

/// `kcp:connection_state_updated`: one lifecycle transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionStateUpdated {
    /// The connection.
    pub conn: ConnectionRef,
    /// The state before.
    pub old: ConnectionState,
    /// The state after.
    pub new: ConnectionState,
}

/// `kcp:connection_closed`: terminal, with the whole-connection summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionClosed {
    /// The connection.
    pub conn: ConnectionRef,
    /// Why it ended.
    pub reason: CloseReason,
    /// Who ended it.
    pub initiator: Initiator,
    /// Secure mode, a peer's close: the reason its DISCONNECT gave (`local_closed` for a kick
    /// or an application close, `shutdown`, `protocol_violation`, ...).
    pub peer_reason: Option<CloseReason>,
    /// The application's close code and text: ours when we closed, the peer's when its
    /// DISCONNECT carried them.
    pub app_close: AppClose,
    /// Counters, timings, RTT figures and the activity history.
    pub summary: ConnectionSummary,
    /// The session's parameters.
    pub params: SessionConfig,
}

/// `kcp:peer_address_changed`: a secure session moved to a new peer address (NAT rebinding),
/// on a fresh datagram whose tag verified. `conn` carries the new addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddressChanged {
    /// The connection, with its new peer and local addresses.
    pub conn: ConnectionRef,
    /// The peer address before the move.
    pub old_peer: SocketAddr,
    /// Our address the peer talked to before the move.
    pub old_local: SocketAddr,
}

/// `kcp:packet_dropped`: a datagram dropped whole before reaching any engine.
///
/// Sampled: per trigger, the first datagrams of each one-second window are logged one by one;
/// the rest are counted and reported by one aggregate record when the window ends, whose
/// `suppressed` says how many it stands for and whose addresses are those of the last one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketDropped {
    /// Where it came from.
    pub remote: SocketAddr,
    /// Our address it arrived on.
    pub local: SocketAddr,
    /// Its conv, when it had a header.
    pub conv: Option<u32>,
    /// The session it was for, if one exists.
    pub uid: Option<Uid>,
    /// Why.
    pub trigger: DropTrigger,
    /// The exact rule (one of `trigger`'s).
    pub rule: DropRule,
    /// Its length in bytes.
    pub len: u32,
    /// Drops of this trigger not logged one by one since the last record of this trigger.
    pub suppressed: u64,
}

/// `kcp:protocol_violation`: the application misused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProtocolViolation {
    /// The connection, if it is still known.
    pub conn: Option<ConnectionRef>,
    /// What happened.
    pub violation: Violation,
    /// The size involved (message or queue bytes).
    pub size: u64,
    /// The limit it broke (0 where there is none).
    pub limit: u64,
}

/// `kcp:error`: something failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorEvent {
    /// The connection it concerns, if any.
    pub conn: Option<ConnectionRef>,
    /// The peer it concerns when there is no connection (an ICMP error for an unknown peer).
    pub peer: Option<SocketAddr>,
    /// Our address it concerns (a bind failure), when there is no connection.
    pub local: Option<SocketAddr>,
    /// Layer.
    pub error_type: ErrorType,
    /// Stable code: an errno name (`EADDRINUSE`, `ECONNREFUSED`) or `KCP_*`.
    pub code: &'static str,
    /// Human-readable detail, capped.
    pub message: CappedText,
    /// Errors of the same code not logged one by one since the last record of that code
    /// (repeated send failures are sampled like drops).
    pub suppressed: u64,
}

/// `kcp:stats`: periodic counters of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatsEvent {
    /// The bound address.
    pub local: Option<SocketAddr>,
    /// Milliseconds since the previous stats record (or since start).
    pub interval_ms: u64,
    /// Live connections.
    pub connections: u64,
    /// Datagrams received.
    pub datagrams_in: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Datagrams sent.
    pub datagrams_out: u64,
    /// Bytes sent.
    pub bytes_out: u64,
    /// Connections opened by peers.
    pub passive_opens: u64,
    /// Connections opened locally.
    pub active_opens: u64,
    /// Connections closed.
    pub closed: u64,
    /// Datagrams dropped by the guard and limits, all triggers.
    pub dropped: u64,
    /// Failed connection attempts.
    pub failed: u64,
    /// Send system calls that failed.
    pub send_errors: u64,
    /// ICMP errors reported for earlier sends.
    pub icmp_errors: u64,
    /// Engine panics caught.
    pub panics: u64,
    /// Security records lost so far (all lanes).
    pub log_lost: u64,
}

/// `kcp:log_loss`: security records were lost. Never itself lost: it is written by the consumer
/// side of the ring, not pushed into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogLoss {
    /// Records lost from the critical lane.
    pub lost_critical: u64,
    /// Records lost from the bulk lane.
    pub lost_bulk: u64,
    /// Lost records by severity, indexed by syslog number.
    pub lost_by_severity: [u64; 8],
    /// Unix time in microseconds of the first loss reported here.
    pub since_us: u64,
    /// Records one output could not deliver (a network sink's queue or spool overflowed);
    /// they reached the other outputs.
    pub lost_output: u64,
    /// The output that lost them (`syslog+tcp://host:port`, ...), when `lost_output` > 0.
    pub output: CappedText,
}

/// Declares the events: for each, its [`SecurityEvent`] variant and record type, its
/// [`EventKind`], and its entry in the catalogue (the static [`EventSpec`] in `catalog/`).
/// `EventKind::ALL`, `EventKind::spec`, `SecurityEvent::kind` and the `From` conversions are
/// written from this one list, so a new event is a line here, its record type and its
/// `EventSpec`; the canonical writer and the formats then fail to compile until they handle it
/// (their `match`es have no catch-all), and `npm run codegen` writes the rest.
macro_rules! declare_events {
    ($($(#[$doc:meta])* $variant:ident($record:ty) => $spec:ident,)*) => {
        /// One security event.
        // The close record carries the application's close text inline: records are `Copy`
        // and never allocate (a boxed variant would allocate per close), so the largest
        // variant sets the size.
        #[allow(clippy::large_enum_variant)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum SecurityEvent {
            $($(#[$doc])* $variant($record),)*
        }

        /// Which event a record is, without its data.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum EventKind {
            $($(#[$doc])* $variant,)*
        }

        impl EventKind {
            /// Every kind, in catalogue order.
            pub const ALL: [EventKind; declare_events!(@count $($variant)*)] =
                [$(Self::$variant,)*];

            /// Its declaration.
            pub fn spec(self) -> &'static EventSpec {
                match self {
                    $(Self::$variant => &catalog::$spec,)*
                }
            }
        }

        impl SecurityEvent {
            /// Which event it is.
            pub fn kind(&self) -> EventKind {
                match self {
                    $(Self::$variant(_) => EventKind::$variant,)*
                }
            }
        }

        $(impl From<$record> for SecurityEvent {
            fn from(event: $record) -> Self {
                Self::$variant(event)
            }
        })*
    };
    (@count) => { 0 };
    (@count $head:ident $($tail:ident)*) => { 1 + declare_events!(@count $($tail)*) };
}

declare_events! {
    /// `kcp:listener_started`
    ListenerStarted(ListenerStarted) => LISTENER_STARTED,
    /// `kcp:listener_stopped`
    ListenerStopped(ListenerStopped) => LISTENER_STOPPED,
    /// `kcp:connection_attempted`
    ConnectionAttempted(ConnectionAttempted) => CONNECTION_ATTEMPTED,
    /// `kcp:connection_established`
    ConnectionEstablished(ConnectionEstablished) => CONNECTION_ESTABLISHED,
    /// `kcp:connection_failed`
    ConnectionFailed(ConnectionFailed) => CONNECTION_FAILED,
    /// `kcp:connection_state_updated`
    ConnectionStateUpdated(ConnectionStateUpdated) => CONNECTION_STATE_UPDATED,
    /// `kcp:connection_closed`
    ConnectionClosed(ConnectionClosed) => CONNECTION_CLOSED,
    /// `kcp:peer_address_changed`
    PeerAddressChanged(PeerAddressChanged) => PEER_ADDRESS_CHANGED,
    /// `kcp:packet_dropped`
    PacketDropped(PacketDropped) => PACKET_DROPPED,
    /// `kcp:protocol_violation`
    ProtocolViolation(ProtocolViolation) => PROTOCOL_VIOLATION,
    /// `kcp:error`
    Error(ErrorEvent) => ERROR,
    /// `kcp:stats`
    Stats(StatsEvent) => STATS,
    /// `kcp:log_loss`
    LogLoss(LogLoss) => LOG_LOSS,
    /// `kcp:alert`
    Alert(Alert) => ALERT,
}

impl SecurityEvent {
    /// The qlog-style name (from the catalogue).
    pub fn name(&self) -> &'static str {
        self.kind().name()
    }

    /// How severe it is (the catalogue's rule, applied to this record).
    pub fn severity(&self) -> Severity {
        match (self.kind().spec().severity, self) {
            (SeverityRule::Fixed(severity), _) => severity,
            (SeverityRule::ByCloseReason, Self::ConnectionClosed(c)) => close_severity(c.reason),
            (SeverityRule::ByAlertRule, Self::Alert(a)) => a.rule.severity(),
            // A rule that reads a field this event does not have: the catalogue is wrong, and
            // the catalogue's tests say so; the record still goes out.
            _ => Severity::Notice,
        }
    }

    /// Which ring lane carries it (from the catalogue).
    pub fn lane(&self) -> Lane {
        self.kind().spec().lane
    }

    /// The connection it is about, if any.
    pub fn connection(&self) -> Option<&ConnectionRef> {
        match self {
            Self::ConnectionAttempted(e) => Some(&e.conn),
            Self::ConnectionEstablished(e) => Some(&e.conn),
            Self::ConnectionFailed(e) => Some(&e.conn),
            Self::ConnectionStateUpdated(e) => Some(&e.conn),
            Self::ConnectionClosed(e) => Some(&e.conn),
            Self::PeerAddressChanged(e) => Some(&e.conn),
            Self::ProtocolViolation(e) => e.conn.as_ref(),
            Self::Error(e) => e.conn.as_ref(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_names_round_trip() {
        for (code, s) in Severity::ALL.into_iter().enumerate() {
            assert_eq!(usize::from(s.code()), code);
            assert_eq!(Severity::from_name(s.as_str()), Some(s));
        }
    }
}

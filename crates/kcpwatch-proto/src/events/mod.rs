//! The security events (docs/events.md): every `kcp:*` event as a typed struct. What each event
//! is called, how severe it is, its lane, its meaning in each output format and the fields of
//! its record are declared once, in [`catalog`](EventKind::spec); `npm run codegen` writes the
//! JSON Schema, the TypeScript types and the catalogue tables of `docs/events.md` from it.
//!
//! Events are plain `Copy` values with no heap data, so the runtime can move them through a
//! fixed-size ring without allocating: text that can vary (error messages) is capped and stored
//! inline, everything else is an enum with a stable name.

mod catalog;
mod record;
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
// Each event's record type lives with its declaration in `catalog/`.
pub use catalog::*;
pub use record::{shown_ip, EventRecord, ExampleNet, Flow, RecordFields, Shown};
pub use sampler::Sampler;
pub use spec::{
    Case, Control, EcsSpec, EventSpec, ExpandedField, Field, Group, GroupUse, OcsfSpec,
    OutcomeRule, Part, Presence, SeverityRule, Shape, Traffic, Vocab, WireType,
};
pub use summary::{AppClose, ConnectionSummary};
pub use text::{CappedText, History, UserId, UserIdError, MAX_USER_ID_LEN, MESSAGE_CAPACITY};

use crate::error_code::ErrorCode;
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

/// Declares the events: for each, its [`SecurityEvent`] variant and record type, its
/// [`EventKind`], and its entry in the catalogue (the static [`EventSpec`] in `catalog/`).
/// `EventKind::ALL`, `EventKind::spec`, `SecurityEvent::kind`, the record's fields and text
/// (`SecurityEvent::fields` / `message`, from the record's [`EventRecord`] impl) and the `From`
/// conversions are written from this one list. A new event is a line here and, in one file of
/// `catalog/`, its record type, its `EventSpec` and its `EventRecord` impl; the formats' tables
/// then fail to compile until they handle it (their `match`es have no catch-all), and
/// `npm run codegen` writes the rest.
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

            /// Its declared example records on `net` (its [`EventRecord::examples`]).
            pub fn examples(self, net: &ExampleNet) -> Vec<SecurityEvent> {
                match self {
                    $(Self::$variant => <$record as EventRecord>::examples(net)
                        .into_iter()
                        .map(SecurityEvent::$variant)
                        .collect(),)*
                }
            }

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

            /// The connection it is about, if any (its [`EventRecord`] impl).
            pub fn connection(&self) -> Option<&ConnectionRef> {
                match self {
                    $(Self::$variant(e) => EventRecord::connection(e),)*
                }
            }

            /// Writes the event's own fields (its [`EventRecord`] impl).
            pub fn fields<F: RecordFields>(&self, out: &mut F) {
                match self {
                    $(Self::$variant(e) => EventRecord::fields(e, out),)*
                }
            }

            /// Writes the event's `msg` text (its [`EventRecord`] impl), with addresses
            /// through `privacy`.
            pub fn message(
                &self,
                privacy: &crate::privacy::IpPrivacy,
                msg: &mut dyn fmt::Write,
            ) -> fmt::Result {
                match self {
                    $(Self::$variant(e) => EventRecord::message(e, privacy, msg),)*
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

//! Drops, violations and errors.

use std::fmt;
use std::net::SocketAddr;

use super::super::record::{EventRecord, ExampleNet, RecordFields, Shown};
use super::super::spec::{
    opt, req, Case, Control, EcsSpec, EventSpec, Group, GroupUse, OcsfSpec, OutcomeRule, Part,
    Presence, SeverityRule, Shape, Traffic, Vocab, WireType::*,
};
use super::super::{CappedText, ConnectionRef, ErrorType, Lane, Severity, Violation};
use super::NETWORK;
use crate::drop_rule::DropRule;
use crate::lifecycle::DropTrigger;
use crate::privacy::IpPrivacy;
use crate::uid::Uid;

// ----------------------------------------------------------------------- kcp:packet_dropped

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

pub(in crate::events) static PACKET_DROPPED: EventSpec = EventSpec {
    name: "kcp:packet_dropped",
    summary: "A datagram dropped whole before reaching any engine. Sampled per trigger.",
    lane: Lane::Bulk,
    severity: SeverityRule::Fixed(Severity::Notice),
    cef_title: "Packet dropped",
    ecs: EcsSpec {
        kind: "event",
        category: NETWORK,
        types: &["denied"],
        types_unrefused: None,
        reason_field: Some("trigger"),
    },
    ocsf: OcsfSpec::NetworkActivity {
        activity: (5, "Refuse"),
        activity_unrefused: None,
        traffic: Traffic::Unoriented,
    },
    outcome: OutcomeRule::Failure,
    control: Control::Blocked,
    groups: &[],
    fields: &[
        opt(
            "uid",
            Uid,
            "The connection the datagram was for, when one exists.",
        ),
        opt("conv", Conv, "The conv in its header, when it had one."),
        opt(
            "src_ip",
            Ip,
            "Where the datagram came from (the sender, whatever the connection direction).",
        ),
        req("src_port", Port, "The sender's port."),
        opt("dst_ip", Ip, "Our address it arrived on."),
        req("dst_port", Port, "Our port it arrived on."),
        req("transport", Transport, "Always udp."),
        opt(
            "community_id",
            CommunityId,
            "Community ID v1 of the flow; absent when the addresses are of different families.",
        ),
        req(
            "trigger",
            Vocab(Vocab::DropTrigger),
            "Why the datagram was dropped.",
        ),
        req("rule", DropRule, "The exact guard, limit or handshake rule."),
        req("datagram_bytes", Count, "Length of the datagram."),
        req(
            "suppressed",
            Count,
            "0 for an individual record; for the aggregate record at the end of a sampling window, the drops of this trigger it stands for (addresses are those of the last one).",
        ),
        opt("src_ip_pseudonym", Pseudonym, "src_ip under ip_privacy hmac."),
        opt("dst_ip_pseudonym", Pseudonym, "dst_ip under ip_privacy hmac."),
    ],
    shapes: &[
        // A dropped datagram's rule is always one with a trigger.
        Shape::Narrow(&[Part::Is("rule", "DropRule")]),
        Shape::OneOf {
        name: "DroppedDatagramSession",
        doc: "The datagram's session, when it had a header and a session exists for it: a uid always comes with its conv.",
        cases: &[
            Case {
                name: "",
                doc: "",
                parts: &[Part::Present("uid"), Part::Present("conv")],
            },
            Case {
                name: "",
                doc: "",
                parts: &[Part::Absent("uid"), Part::Field("conv")],
            },
        ],
    },
    ],
};

impl EventRecord for PacketDropped {
    fn connection(&self) -> Option<&crate::events::ConnectionRef> {
        None
    }

    fn fields<F: RecordFields>(&self, out: &mut F) {
        if let Some(uid) = &self.uid {
            out.str("uid", uid.as_str());
        }
        if let Some(conv) = self.conv {
            out.num("conv", conv);
        }
        out.flow(self.remote, self.local);
        out.str("trigger", self.trigger.as_str());
        out.str("rule", self.rule.as_str());
        out.num("datagram_bytes", self.len);
        out.num("suppressed", self.suppressed);
    }

    fn message(&self, privacy: &IpPrivacy, msg: &mut dyn fmt::Write) -> fmt::Result {
        write!(
            msg,
            "datagram from {} dropped: {} ({})",
            Shown(privacy, self.remote),
            self.trigger.as_str(),
            self.rule
        )?;
        if self.suppressed > 0 {
            write!(msg, "; {} more not logged", self.suppressed)?;
        }
        Ok(())
    }

    fn examples(net: &ExampleNet) -> Vec<Self> {
        let conn = net.inbound();
        vec![
            // For a session: its uid and conv.
            Self {
                remote: net.peer,
                local: net.local,
                conv: Some(conn.conv),
                uid: Some(conn.uid),
                trigger: DropTrigger::DecryptFailed,
                rule: DropRule::SessionAead,
                len: 64,
                suppressed: 0,
            },
            // The aggregate of a sampling window, for no session and without a header.
            Self {
                remote: net.moved_peer,
                local: net.local,
                conv: None,
                uid: None,
                trigger: DropTrigger::TooShort,
                rule: DropRule::TooShort,
                len: 3,
                suppressed: 118,
            },
        ]
    }
}

// ------------------------------------------------------------------- kcp:protocol_violation

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

pub(in crate::events) static PROTOCOL_VIOLATION: EventSpec = EventSpec {
    name: "kcp:protocol_violation",
    summary: "The application misused a connection.",
    lane: Lane::Critical,
    severity: SeverityRule::Fixed(Severity::Warning),
    cef_title: "Protocol violation",
    ecs: EcsSpec {
        kind: "event",
        category: NETWORK,
        types: &["denied"],
        types_unrefused: None,
        reason_field: Some("violation"),
    },
    ocsf: OcsfSpec::NetworkActivity {
        activity: (99, "Protocol Violation"),
        activity_unrefused: None,
        traffic: Traffic::Unoriented,
    },
    outcome: OutcomeRule::Failure,
    control: Control::RefusedMessage,
    groups: &[GroupUse {
        group: Group::Connection,
        presence: Presence::Optional,
    }],
    fields: &[
        req("violation", Vocab(Vocab::Violation), "What happened."),
        req(
            "error_type",
            Custom {
                schema: r#"{"const":"application"}"#,
                ts: "'application'",
            },
            "Always application.",
        ),
        req(
            "error_code",
            Vocab(Vocab::ApplicationErrorCode),
            "The error code the application also sees.",
        ),
        req("size", Count, "The size involved: message bytes."),
        opt(
            "limit",
            Count,
            "The limit it broke (absent where there is none).",
        ),
    ],
    shapes: &[],
};

impl EventRecord for ProtocolViolation {
    fn connection(&self) -> Option<&crate::events::ConnectionRef> {
        self.conn.as_ref()
    }

    fn fields<F: RecordFields>(&self, out: &mut F) {
        if let Some(conn) = &self.conn {
            out.connection(conn);
        }
        out.str("violation", self.violation.as_str());
        out.str("error_type", "application");
        out.str("error_code", self.violation.error_code().as_str());
        out.num("size", self.size);
        if self.limit > 0 {
            out.num("limit", self.limit);
        }
    }

    fn message(&self, _: &IpPrivacy, msg: &mut dyn fmt::Write) -> fmt::Result {
        write!(msg, "protocol violation: {}", self.violation.as_str())?;
        if let Some(conn) = &self.conn {
            write!(msg, " on {}", conn.uid)?;
        }
        Ok(())
    }

    fn examples(net: &ExampleNet) -> Vec<Self> {
        vec![
            Self {
                conn: Some(net.inbound()),
                violation: Violation::OversizedMessage,
                size: 70_000,
                limit: 65_536,
            },
            // On a connection already gone, with no limit.
            Self {
                conn: None,
                violation: Violation::MessageOnClosedConnection,
                size: 12,
                limit: 0,
            },
        ]
    }
}

// -------------------------------------------------------------------------------- kcp:error

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

pub(in crate::events) static ERROR: EventSpec = EventSpec {
    name: "kcp:error",
    summary: "Something failed: a send, an ICMP report, a bind, the engine.",
    lane: Lane::Critical,
    severity: SeverityRule::Fixed(Severity::Error),
    cef_title: "Error",
    ecs: EcsSpec {
        kind: "event",
        category: NETWORK,
        types: &["info"],
        types_unrefused: None,
        reason_field: None,
    },
    ocsf: OcsfSpec::NetworkActivity {
        activity: (4, "Fail"),
        activity_unrefused: None,
        traffic: Traffic::Unoriented,
    },
    outcome: OutcomeRule::Failure,
    control: Control::None,
    groups: &[
        GroupUse {
            group: Group::Connection,
            presence: Presence::Optional,
        },
        GroupUse {
            group: Group::LocalAddress,
            presence: Presence::Optional,
        },
    ],
    fields: &[
        opt(
            "peer_ip",
            Ip,
            "The peer the error concerns when no connection is known for it.",
        ),
        opt("peer_port", Port, "That peer's port."),
        req("error_type", Vocab(Vocab::ErrorType), "Which layer failed."),
        req(
            "error_code",
            Custom {
                schema: r#"{"type":"string","pattern":"^(E[A-Z0-9]+|KCP_[A-Z0-9_]+)$"}"#,
                ts: "string",
            },
            "Stable code: an errno name or KCP_*.",
        ),
        req(
            "error_message",
            Custom {
                schema: r#"{"type":"string","maxLength":160}"#,
                ts: "string",
            },
            "Human-readable detail, capped at 160 bytes.",
        ),
        opt(
            "suppressed",
            Count,
            "Errors of the same kind not logged one by one since the last record of that kind (absent when 0).",
        ),
        opt("peer_ip_pseudonym", Pseudonym, "peer_ip under ip_privacy hmac."),
    ],
    shapes: &[
        Shape::Parts(&[
            Case {
                name: "PeerAddressFields",
                doc: "The peer an error concerns when no connection is known for it.",
                parts: &[Part::Field("peer_ip"), Part::Field("peer_ip_pseudonym"), Part::Present("peer_port")],
            },
            Case {
                name: "NoPeerAddressFields",
                doc: "No peer address.",
                parts: &[
                    Part::Absent("peer_ip"),
                    Part::Absent("peer_ip_pseudonym"),
                    Part::Absent("peer_port"),
                ],
            },
        ]),
        Shape::OneOf {
            name: "ErrorSubject",
            doc: "What a `kcp:error` is about: a connection, a peer without one, or neither.",
            cases: &[
                Case {
                    name: "",
                    doc: "",
                    parts: &[Part::Group(Group::Connection), Part::Named("NoPeerAddressFields")],
                },
                Case {
                    name: "",
                    doc: "",
                    parts: &[Part::NoGroup(Group::Connection), Part::Named("PeerAddressFields")],
                },
                Case {
                    name: "",
                    doc: "",
                    parts: &[Part::NoGroup(Group::Connection), Part::Named("NoPeerAddressFields")],
                },
            ],
        },
        Shape::OneOf {
            name: "ErrorKind",
            doc: "`error_type` and `error_code`, which belong together.",
            cases: &[
                Case {
                    name: "",
                    doc: "",
                    parts: &[
                        Part::Is("error_type", "'library'"),
                        Part::Is("error_code", "LibraryErrorCode"),
                    ],
                },
                Case {
                    name: "",
                    doc: "",
                    parts: &[
                        Part::Is("error_type", "'network'"),
                        Part::Is("error_code", "NetworkErrorCode"),
                    ],
                },
                Case {
                    name: "",
                    doc: "",
                    parts: &[
                        Part::Is("error_type", "'application'"),
                        Part::Is("error_code", "ApplicationErrorCode"),
                    ],
                },
            ],
        },
    ],
};

impl EventRecord for ErrorEvent {
    fn connection(&self) -> Option<&crate::events::ConnectionRef> {
        self.conn.as_ref()
    }

    fn fields<F: RecordFields>(&self, out: &mut F) {
        if let Some(conn) = &self.conn {
            out.connection(conn);
        } else if let Some(peer) = self.peer {
            out.addr("peer", peer);
        }
        if let Some(local) = self.local {
            out.addr("local", local);
        }
        out.str("error_type", self.error_type.as_str());
        out.str("error_code", self.code);
        out.str("error_message", self.message.as_str());
        if self.suppressed > 0 {
            out.num("suppressed", self.suppressed);
        }
    }

    fn message(&self, _: &IpPrivacy, msg: &mut dyn fmt::Write) -> fmt::Result {
        let (layer, code, text) = (self.error_type.as_str(), self.code, self.message.as_str());
        write!(msg, "{layer} error {code}: {text}")
    }

    fn examples(net: &ExampleNet) -> Vec<Self> {
        vec![
            // On a connection, sampled.
            Self {
                conn: Some(net.outbound()),
                peer: None,
                local: None,
                error_type: ErrorType::Network,
                code: "EHOSTUNREACH",
                message: CappedText::format("No route to host (os error 113)"),
                suppressed: 2,
            },
            // An ICMP error for a peer with no connection.
            Self {
                conn: None,
                peer: Some(net.peer),
                local: Some(net.local),
                error_type: ErrorType::Network,
                code: "ECONNREFUSED",
                message: CappedText::format("Connection refused (os error 111)"),
                suppressed: 0,
            },
            // A bind failure.
            Self {
                conn: None,
                peer: None,
                local: Some(net.local),
                error_type: ErrorType::Network,
                code: "EADDRINUSE",
                message: CappedText::format("Address already in use (os error 98)"),
                suppressed: 0,
            },
        ]
    }
}

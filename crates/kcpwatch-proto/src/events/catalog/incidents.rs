//! Drops, violations, errors, statistics, loss and alerts.

use super::super::spec::{
    opt, req, Case, Control, EcsSpec, EventSpec, Field, Group, GroupUse, OcsfSpec, OutcomeRule,
    Part, Presence, SeverityRule, Shape, Traffic, Vocab, WireType::*,
};
use super::super::{Lane, Severity};
use super::NETWORK;

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

pub(in crate::events) static STATS: EventSpec = EventSpec {
    name: "kcp:stats",
    summary: "Periodic counters of one listener.",
    lane: Lane::Bulk,
    severity: SeverityRule::Fixed(Severity::Informational),
    cef_title: "Statistics",
    ecs: EcsSpec {
        kind: "metric",
        category: NETWORK,
        types: &["info"],
        types_unrefused: None,
        reason_field: None,
    },
    ocsf: OcsfSpec::NetworkActivity {
        activity: (6, "Traffic"),
        activity_unrefused: None,
        traffic: Traffic::FromPeer,
    },
    outcome: OutcomeRule::None,
    control: Control::None,
    groups: &[GroupUse {
        group: Group::LocalAddress,
        presence: Presence::Optional,
    }],
    fields: &[
        req(
            "interval_ms",
            Count,
            "Milliseconds since the previous stats record (or since start).",
        ),
        req("connections", Count, "Live connections."),
        req("datagrams_received", Count, "Datagrams received."),
        req("bytes_received", Count, "Bytes received."),
        req("datagrams_sent", Count, "Datagrams sent."),
        req("bytes_sent", Count, "Bytes sent."),
        req("passive_opens", Count, "Connections opened by peers."),
        req("active_opens", Count, "Connections opened locally."),
        req("connections_closed", Count, "Connections closed."),
        req(
            "datagrams_dropped",
            Count,
            "Datagrams dropped by the guard and limits, all triggers (failed attempts included).",
        ),
        req("connections_failed", Count, "Failed connection attempts."),
        req("send_errors", Count, "Send system calls that failed."),
        req(
            "icmp_errors",
            Count,
            "ICMP errors reported for earlier sends.",
        ),
        req("panics", Count, "Engine panics caught."),
        req(
            "log_lost",
            Count,
            "Security records lost so far (all lanes).",
        ),
    ],
    shapes: &[],
};

pub(in crate::events) static LOG_LOSS: EventSpec = EventSpec {
    name: "kcp:log_loss",
    summary: "Security records were lost (never itself lost: the consumer side writes it).",
    lane: Lane::Critical,
    severity: SeverityRule::Fixed(Severity::Warning),
    cef_title: "Security records lost",
    ecs: EcsSpec {
        kind: "event",
        category: NETWORK,
        types: &["info"],
        types_unrefused: None,
        reason_field: None,
    },
    ocsf: OcsfSpec::NetworkActivity {
        activity: (99, "Log Loss"),
        activity_unrefused: None,
        traffic: Traffic::Unoriented,
    },
    outcome: OutcomeRule::Failure,
    control: Control::None,
    groups: &[],
    fields: &[
        req("lost_total", Count, "lost_critical + lost_bulk + lost_output."),
        req("lost_critical", Count, "Records lost from the critical lane."),
        req("lost_bulk", Count, "Records lost from the bulk lane."),
        Field {
            name: "lost_severity_",
            ty: Count,
            presence: Presence::Optional,
            doc: "Lost records of severity {severity}; absent when 0.",
            per_severity: true,
        },
        opt(
            "since",
            Timestamp,
            "When the first loss reported here happened.",
        ),
        opt(
            "lost_output",
            Count,
            "Records one output could not deliver (a network output's queue or spool overflowed); the other outputs got them. Absent when 0.",
        ),
        opt(
            "output",
            Text,
            "The output that lost lost_output records, e.g. syslog+tcp://192.0.2.10:6514.",
        ),
    ],
    shapes: &[],
};

pub(in crate::events) static ALERT: EventSpec = EventSpec {
    name: "kcp:alert",
    summary: "A detector fired (docs/detection.md): one per episode and key, then periodic updates.",
    lane: Lane::Critical,
    severity: SeverityRule::ByAlertRule,
    cef_title: "Alert",
    ecs: EcsSpec {
        kind: "alert",
        category: &["intrusion_detection", "network"],
        types: &["info"],
        types_unrefused: None,
        reason_field: None,
    },
    ocsf: OcsfSpec::DetectionFinding,
    outcome: OutcomeRule::None,
    control: Control::None,
    groups: &[],
    fields: &[
        req("rule_id", Vocab(Vocab::AlertRuleId), "The detector rule's id."),
        req(
            "rule_name",
            Vocab(Vocab::AlertRuleName),
            "The detector rule's name.",
        ),
        req(
            "threshold",
            Count,
            "The threshold reached: a count per window; for KCPW-002 the effective one (baseline included); for KCPW-007 a percentage.",
        ),
        req("window_ms", Count, "The rule's sliding window in milliseconds."),
        req(
            "observed",
            Count,
            "What the window held when the alert or update was written (a count, distinct convs for KCPW-004, a percentage for KCPW-007).",
        ),
        req(
            "first_seen",
            Timestamp,
            "When the episode started (millisecond precision); the same on the alert and its updates.",
        ),
        req(
            "last_seen",
            Timestamp,
            "When this alert or update was raised (millisecond precision).",
        ),
        req(
            "update",
            Bool,
            "false for the first alert of an episode, true for its periodic updates.",
        ),
        opt(
            "mitre_technique",
            Vocab(Vocab::MitreTechnique),
            "The MITRE ATT&CK technique, where one fits.",
        ),
        req(
            "group",
            Custom {
                schema: r#"{"enum":["source","listener"]}"#,
                ts: "'source' | 'listener'",
            },
            "What the rule counts per: one source (an address, or an IPv6 /64) or the whole listener.",
        ),
        opt(
            "group_ip",
            Ip,
            "group source: the source (an IPv6 /64 as its first address), through the privacy mode.",
        ),
        opt(
            "group_ip_pseudonym",
            Pseudonym,
            "group_ip under ip_privacy hmac.",
        ),
    ],
    shapes: &[
        Shape::Parts(&[
            Case {
                name: "AlertSourceGroup",
                doc: "An alert about one source (an address, or an IPv6 /64 keyed by its first address).",
                parts: &[Part::Is("group", "'source'"), Part::Field("group_ip"), Part::Field("group_ip_pseudonym")],
            },
            Case {
                name: "AlertListenerGroup",
                doc: "An alert about the whole listener.",
                parts: &[
                    Part::Is("group", "'listener'"),
                    Part::Absent("group_ip"),
                    Part::Absent("group_ip_pseudonym"),
                ],
            },
        ]),
        Shape::PerAlertRule {
            name: "AlertRule",
            doc: "Each rule with its name, group, severity and technique (`detect::Rule` in Rust).",
        },
    ],
};

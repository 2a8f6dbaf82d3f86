//! The listener and connection lifecycle events.

use super::super::spec::{
    opt, req, Case, Control, EcsSpec, EventSpec, Group, GroupUse, OcsfSpec, OutcomeRule, Part,
    Presence, SeverityRule, Shape, Traffic, Vocab, WireType::*,
};
use super::super::{Lane, Severity};
use super::{CONNECTION, NETWORK};

pub(in crate::events) static LISTENER_STARTED: EventSpec = EventSpec {
    name: "kcp:listener_started",
    summary: "The socket is bound.",
    lane: Lane::Critical,
    severity: SeverityRule::Fixed(Severity::Informational),
    cef_title: "Listener started",
    ecs: EcsSpec {
        kind: "event",
        category: NETWORK,
        types: &["start"],
        types_unrefused: None,
        reason_field: None,
    },
    ocsf: OcsfSpec::NetworkActivity {
        activity: (7, "Listen"),
        activity_unrefused: None,
        traffic: Traffic::Unoriented,
    },
    outcome: OutcomeRule::Success,
    control: Control::None,
    groups: &[
        GroupUse {
            group: Group::LocalAddress,
            presence: Presence::Required,
        },
        GroupUse {
            group: Group::KcpParams,
            presence: Presence::Required,
        },
    ],
    fields: &[
        req("mode", ListenerMode, "raw (plain KCP) or secure."),
        req(
            "role",
            ListenerRole,
            "server: accepts inbound connections; client: a connect() endpoint.",
        ),
        req("max_connections", U32, "Connection limit."),
    ],
    shapes: &[],
};

pub(in crate::events) static LISTENER_STOPPED: EventSpec = EventSpec {
    name: "kcp:listener_stopped",
    summary: "The socket is closed (after every connection closed with shutdown).",
    lane: Lane::Critical,
    severity: SeverityRule::Fixed(Severity::Informational),
    cef_title: "Listener stopped",
    ecs: EcsSpec {
        kind: "event",
        category: NETWORK,
        types: &["end"],
        types_unrefused: None,
        reason_field: None,
    },
    ocsf: OcsfSpec::NetworkActivity {
        activity: (99, "Stop Listening"),
        activity_unrefused: None,
        traffic: Traffic::Unoriented,
    },
    outcome: OutcomeRule::Success,
    control: Control::None,
    groups: &[GroupUse {
        group: Group::LocalAddress,
        presence: Presence::Required,
    }],
    fields: &[
        req("uptime_ms", Count, "Milliseconds the socket was bound."),
        req(
            "connections_total",
            Count,
            "Connections it carried in total (inbound + outbound).",
        ),
    ],
    shapes: &[],
};

pub(in crate::events) static CONNECTION_ATTEMPTED: EventSpec = EventSpec {
    name: "kcp:connection_attempted",
    summary: "The first datagram of a new (address, conv), or connect().",
    lane: Lane::Critical,
    severity: SeverityRule::Fixed(Severity::Informational),
    cef_title: "Connection attempted",
    ecs: EcsSpec {
        kind: "event",
        category: NETWORK,
        types: &["connection"],
        types_unrefused: None,
        reason_field: None,
    },
    ocsf: OcsfSpec::NetworkActivity {
        activity: (99, "Attempt"),
        activity_unrefused: None,
        traffic: Traffic::Unoriented,
    },
    outcome: OutcomeRule::Unknown,
    control: Control::None,
    groups: CONNECTION,
    fields: &[],
    shapes: &[],
};

pub(in crate::events) static CONNECTION_ESTABLISHED: EventSpec = EventSpec {
    name: "kcp:connection_established",
    summary: "Data may flow (raw mode: the first valid datagram; outbound: connect()).",
    lane: Lane::Critical,
    severity: SeverityRule::Fixed(Severity::Informational),
    cef_title: "Connection established",
    ecs: EcsSpec {
        kind: "event",
        category: NETWORK,
        types: &["connection", "start"],
        types_unrefused: None,
        reason_field: None,
    },
    ocsf: OcsfSpec::NetworkActivity {
        activity: (1, "Open"),
        activity_unrefused: None,
        traffic: Traffic::Unoriented,
    },
    outcome: OutcomeRule::Success,
    control: Control::Allowed,
    groups: CONNECTION,
    fields: &[
        opt(
            "protocol_version",
            Custom {
                schema: r#"{"type":"integer","const":2}"#,
                ts: "2",
            },
            "Secure mode: the wire protocol version (docs/protocol.md).",
        ),
        opt(
            "cipher_suite",
            Custom {
                schema: r#"{"type":"string","enum":["Noise_NK_25519_ChaChaPoly_BLAKE2s"]}"#,
                ts: "'Noise_NK_25519_ChaChaPoly_BLAKE2s'",
            },
            "Secure mode: the Noise protocol name of the handshake and session cipher suite.",
        ),
        opt(
            "server_key_id",
            Custom {
                schema: r#"{"type":"string","pattern":"^[0-9a-f]{8}$"}"#,
                ts: "string",
            },
            "Secure mode: the id of the server static key the handshake used (the first 4 bytes of SHA-256 of its public key, hex). During a key rotation it tells which key each client pinned.",
        ),
    ],
    shapes: &[],
};

pub(in crate::events) static CONNECTION_FAILED: EventSpec = EventSpec {
    name: "kcp:connection_failed",
    summary: "An attempt that never became a connection. Sampled per reason.",
    lane: Lane::Critical,
    severity: SeverityRule::Fixed(Severity::Notice),
    cef_title: "Connection failed",
    ecs: EcsSpec {
        kind: "event",
        category: NETWORK,
        types: &["connection", "denied"],
        types_unrefused: Some(&["connection"]),
        reason_field: None,
    },
    ocsf: OcsfSpec::NetworkActivity {
        activity: (5, "Refuse"),
        activity_unrefused: Some((4, "Fail")),
        traffic: Traffic::Unoriented,
    },
    outcome: OutcomeRule::Failure,
    control: Control::BlockedUnlessUnrefused,
    groups: CONNECTION,
    fields: &[
        req("reason", Vocab(Vocab::FailReason), "Why the attempt failed."),
        opt(
            "trigger",
            Vocab(Vocab::DropTrigger),
            "The drop trigger that refused the opening datagram; absent when no datagram was refused.",
        ),
        req("rule", DropRule, "The exact guard, limit or handshake rule."),
        req(
            "suppressed",
            Count,
            "0 for an individual record; for the aggregate record at the end of a sampling window, the attempts it stands for that were not logged one by one (its addresses and uid are those of the last one).",
        ),
    ],
    shapes: &[Shape::OneOf {
        name: "",
        doc: "",
        cases: &[
            Case {
                name: "RefusedAttempt",
                doc: "A failed attempt whose opening datagram was refused: the drop trigger that refused it and the exact guard, limit or secure-mode rule.",
                parts: &[Part::Is("trigger", "DropTrigger"), Part::Is("rule", "DropRule")],
            },
            Case {
                name: "",
                doc: "",
                parts: &[Part::Named("UnrefusedAttempt")],
            },
        ],
    }],
};

pub(in crate::events) static CONNECTION_STATE_UPDATED: EventSpec = EventSpec {
    name: "kcp:connection_state_updated",
    summary: "One lifecycle transition.",
    lane: Lane::Bulk,
    severity: SeverityRule::Fixed(Severity::Informational),
    cef_title: "Connection state updated",
    ecs: EcsSpec {
        kind: "event",
        category: NETWORK,
        types: &["connection"],
        types_unrefused: None,
        reason_field: None,
    },
    ocsf: OcsfSpec::NetworkActivity {
        activity: (99, "State Change"),
        activity_unrefused: None,
        traffic: Traffic::Unoriented,
    },
    outcome: OutcomeRule::ByStateTransition,
    control: Control::None,
    groups: CONNECTION,
    fields: &[
        req(
            "prev_state",
            VocabExcept(Vocab::ConnectionState, "closed"),
            "The state before.",
        ),
        req(
            "state",
            VocabExcept(Vocab::ConnectionState, "attempted"),
            "The state after.",
        ),
    ],
    shapes: &[],
};

pub(in crate::events) static CONNECTION_CLOSED: EventSpec = EventSpec {
    name: "kcp:connection_closed",
    summary: "Terminal, with the whole-connection summary.",
    lane: Lane::Critical,
    severity: SeverityRule::ByCloseReason,
    cef_title: "Connection closed",
    ecs: EcsSpec {
        kind: "event",
        category: NETWORK,
        types: &["connection", "end"],
        types_unrefused: None,
        reason_field: None,
    },
    ocsf: OcsfSpec::NetworkActivity {
        activity: (2, "Close"),
        activity_unrefused: None,
        traffic: Traffic::ByDirection,
    },
    outcome: OutcomeRule::ByCloseReason,
    control: Control::None,
    groups: &[
        GroupUse {
            group: Group::Connection,
            presence: Presence::Required,
        },
        GroupUse {
            group: Group::KcpParams,
            presence: Presence::Required,
        },
    ],
    fields: &[
        req("reason", Vocab(Vocab::CloseReason), "Why it ended."),
        req("initiator", Vocab(Vocab::Initiator), "Who ended it."),
        req("duration_ms", Count, "Milliseconds from establishment to close."),
        req(
            "bytes_received",
            Count,
            "Bytes of datagrams received and accepted by the guard (wire).",
        ),
        req("bytes_sent", Count, "Bytes of datagrams produced (wire)."),
        req(
            "datagrams_received",
            Count,
            "Datagrams received and accepted by the guard.",
        ),
        req("datagrams_sent", Count, "Datagrams produced."),
        req(
            "payload_bytes_received",
            Count,
            "Application payload bytes delivered to the application.",
        ),
        req(
            "payload_bytes_sent",
            Count,
            "Application payload bytes accepted from the application.",
        ),
        req(
            "messages_received",
            Count,
            "Messages (or stream chunks) delivered.",
        ),
        req("messages_sent", Count, "Messages accepted by send()."),
        req(
            "unreliable_received",
            Count,
            "Secure mode: unreliable datagrams (sendDatagram() on the peer) handed to the application; 0 in raw mode. Not messages, and not the UDP datagrams of datagrams_received.",
        ),
        req(
            "unreliable_sent",
            Count,
            "Secure mode: unreliable datagrams sealed and sent by sendDatagram(); 0 in raw mode.",
        ),
        req(
            "unreliable_dropped",
            Count,
            "Secure mode: authentic unreliable datagrams not delivered: older than one already delivered on their sequenced channel, or the receive queue was full.",
        ),
        req(
            "segments_received",
            Count,
            "KCP segments of any kind accepted by the engine.",
        ),
        req("segments_sent", Count, "KCP segments of any kind sent."),
        req("segments_retransmitted", Count, "Timeout retransmissions."),
        req(
            "segments_fast_retransmitted",
            Count,
            "Fast (duplicate-ACK) retransmissions.",
        ),
        req(
            "segments_lost",
            Count,
            "Segments counted lost (kcp-go LostSegs).",
        ),
        req(
            "segments_duplicate_received",
            Count,
            "Duplicate data segments received (kcp-go RepeatSegs).",
        ),
        req("acks_sent", Count, "ACK segments sent."),
        req("acks_received", Count, "ACK segments received."),
        req("window_probes_sent", Count, "Window probes sent."),
        req("window_probes_received", Count, "Window probes received."),
        req(
            "guard_drops",
            Count,
            "Datagrams for this connection refused by the segment guard.",
        ),
        req("srtt_ms", U32, "Smoothed RTT."),
        req("rttvar_ms", U32, "RTT variance."),
        req("rto_ms", U32, "Retransmission timeout at close."),
        req("rtt_min_ms", U32, "Smallest RTT sample (0: none)."),
        req("rtt_max_ms", U32, "Largest RTT sample (0: none)."),
        req("history", History, "Zeek-style activity history."),
        opt(
            "peer_reason",
            Vocab(Vocab::CloseReason),
            "Secure mode, reason peer_closed: the reason the peer's DISCONNECT gave: local_closed (its application closed the connection: a kick or a leave), shutdown (its server or client closed), protocol_violation, idle_timeout, ...",
        ),
        opt(
            "close_code",
            Custom {
                schema: r#"{"type":"integer","minimum":1,"maximum":65535}"#,
                ts: "number",
            },
            "The application's close code: this side's (connection.close(code)) or, with reason peer_closed, the one the peer's DISCONNECT carried. Absent when none was given. Raw KCP cannot carry it to the peer.",
        ),
        opt(
            "close_text",
            Custom {
                schema: r#"{"type":"string","maxLength":123}"#,
                ts: "string",
            },
            "The application's close text that came with close_code (at most 123 bytes of UTF-8). Written by the application, so treat it as untrusted text.",
        ),
    ],
    shapes: &[],
};

pub(in crate::events) static PEER_ADDRESS_CHANGED: EventSpec = EventSpec {
    name: "kcp:peer_address_changed",
    summary: "A secure session moved to a new peer address (NAT rebinding); the connection fields carry the new addresses.",
    lane: Lane::Critical,
    severity: SeverityRule::Fixed(Severity::Notice),
    cef_title: "Peer address changed",
    ecs: EcsSpec {
        kind: "event",
        category: NETWORK,
        types: &["connection"],
        types_unrefused: None,
        reason_field: None,
    },
    // OCSF has no activity for a connection changing endpoints.
    ocsf: OcsfSpec::NetworkActivity {
        activity: (99, "Peer Address Change"),
        activity_unrefused: None,
        traffic: Traffic::Unoriented,
    },
    // The session followed its peer to a new address on an authentic, fresh datagram.
    outcome: OutcomeRule::Success,
    control: Control::None,
    groups: CONNECTION,
    fields: &[
        opt("old_peer_ip", Ip, "The peer's address before the move."),
        req("old_peer_port", Port, "The peer's port before the move."),
        opt(
            "old_peer_ip_pseudonym",
            Pseudonym,
            "old_peer_ip under ip_privacy hmac.",
        ),
        opt(
            "old_local_ip",
            Ip,
            "Our address the peer talked to before the move.",
        ),
        req(
            "old_local_port",
            Port,
            "Our port the peer talked to before the move.",
        ),
        opt(
            "old_local_ip_pseudonym",
            Pseudonym,
            "old_local_ip under ip_privacy hmac.",
        ),
    ],
    shapes: &[],
};

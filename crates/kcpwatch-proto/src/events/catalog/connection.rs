//! A connection's life up to its close: attempted, established or failed, each state
//! transition, a peer address change.

use std::fmt;
use std::net::SocketAddr;

use super::super::record::{EventRecord, ExampleNet, Flow, RecordFields, Shown};
use super::super::spec::{
    opt, req, Case, Control, EcsSpec, EventSpec, OcsfSpec, OutcomeRule, Part, SeverityRule, Shape,
    Traffic, Vocab, WireType::*,
};
use super::super::{CappedText, ConnectionRef, FailReason, Lane, Severity};
use super::{CONNECTION, NETWORK};
use crate::drop_rule::DropRule;
use crate::lifecycle::{ConnectionState, DropTrigger};
use crate::privacy::IpPrivacy;

// ----------------------------------------------------------------- kcp:connection_attempted

/// `kcp:connection_attempted`: the first datagram of a new (address, conv), or `connect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionAttempted {
    /// The connection.
    pub conn: ConnectionRef,
}

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

impl EventRecord for ConnectionAttempted {
    fn connection(&self) -> Option<&crate::events::ConnectionRef> {
        Some(&self.conn)
    }

    fn fields<F: RecordFields>(&self, out: &mut F) {
        out.connection(&self.conn);
    }

    fn message(&self, privacy: &IpPrivacy, msg: &mut dyn fmt::Write) -> fmt::Result {
        write!(msg, "connection attempted {}", Flow(privacy, &self.conn))
    }

    fn examples(net: &ExampleNet) -> Vec<Self> {
        vec![Self {
            conn: net.inbound(),
        }]
    }
}

// --------------------------------------------------------------- kcp:connection_established

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

impl EventRecord for ConnectionEstablished {
    fn connection(&self) -> Option<&crate::events::ConnectionRef> {
        Some(&self.conn)
    }

    fn fields<F: RecordFields>(&self, out: &mut F) {
        out.connection(&self.conn);
        if let Some(secure) = &self.secure {
            // Public facts only: the key id names a key, it reveals nothing of it.
            out.num("protocol_version", secure.version);
            out.str("cipher_suite", secure.suite);
            out.str("server_key_id", secure.key_id_hex().as_str());
        }
    }

    fn message(&self, privacy: &IpPrivacy, msg: &mut dyn fmt::Write) -> fmt::Result {
        write!(msg, "connection established {}", Flow(privacy, &self.conn))
    }

    fn examples(net: &ExampleNet) -> Vec<Self> {
        let secure = SecureSession {
            version: 2,
            suite: "Noise_NK_25519_ChaChaPoly_BLAKE2s",
            key_id: [0xab, 0xcd, 0xef, 0x01],
        };
        vec![
            // Secure mode. (A user id `authenticate` named is one of the SIEM matrix's cases.)
            Self {
                conn: net.inbound(),
                secure: Some(secure),
            },
            // Raw mode.
            Self {
                conn: net.inbound(),
                secure: None,
            },
        ]
    }
}

// -------------------------------------------------------------------- kcp:connection_failed

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
    /// one (0 for an individual record; see [`PacketDropped::suppressed`](super::PacketDropped::suppressed)).
    pub suppressed: u64,
}

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

impl EventRecord for ConnectionFailed {
    fn connection(&self) -> Option<&crate::events::ConnectionRef> {
        Some(&self.conn)
    }

    fn fields<F: RecordFields>(&self, out: &mut F) {
        out.connection(&self.conn);
        out.str("reason", self.reason.as_str());
        if let Some(trigger) = self.trigger {
            out.str("trigger", trigger.as_str());
        }
        out.str("rule", self.rule.as_str());
        out.num("suppressed", self.suppressed);
    }

    fn message(&self, privacy: &IpPrivacy, msg: &mut dyn fmt::Write) -> fmt::Result {
        write!(
            msg,
            "connection failed {}: {} ({})",
            Flow(privacy, &self.conn),
            self.reason.as_str(),
            self.rule
        )?;
        if self.suppressed > 0 {
            write!(msg, "; {} more not logged", self.suppressed)?;
        }
        Ok(())
    }

    fn examples(net: &ExampleNet) -> Vec<Self> {
        vec![
            // Refused by a limit, with attempts not logged one by one.
            Self {
                conn: net.inbound(),
                reason: FailReason::RateLimited,
                trigger: Some(DropTrigger::RateLimited),
                rule: DropRule::HandshakeRatePerIp,
                suppressed: 3,
            },
            // Refused by the application: no datagram was refused.
            Self {
                conn: net.inbound(),
                reason: FailReason::AuthRejected,
                trigger: None,
                rule: DropRule::Authenticate,
                suppressed: 0,
            },
        ]
    }
}

// ------------------------------------------------------------- kcp:connection_state_updated

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

impl EventRecord for ConnectionStateUpdated {
    fn connection(&self) -> Option<&crate::events::ConnectionRef> {
        Some(&self.conn)
    }

    fn fields<F: RecordFields>(&self, out: &mut F) {
        out.connection(&self.conn);
        out.str("prev_state", self.old.as_str());
        out.str("state", self.new.as_str());
    }

    fn message(&self, _: &IpPrivacy, msg: &mut dyn fmt::Write) -> fmt::Result {
        let (uid, old, new) = (self.conn.uid, self.old.as_str(), self.new.as_str());
        write!(msg, "connection {uid} {old} -> {new}")
    }

    fn examples(net: &ExampleNet) -> Vec<Self> {
        vec![Self {
            conn: net.inbound(),
            old: ConnectionState::Handshaking,
            new: ConnectionState::Established,
        }]
    }
}

// ----------------------------------------------------------------- kcp:peer_address_changed

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

impl EventRecord for PeerAddressChanged {
    fn connection(&self) -> Option<&crate::events::ConnectionRef> {
        Some(&self.conn)
    }

    fn fields<F: RecordFields>(&self, out: &mut F) {
        // The connection fields carry the new addresses (src/dst by direction, like every
        // connection record, with the Community ID of the new flow); the old ones go through
        // the same privacy transform as every other address.
        out.connection(&self.conn);
        out.addr("old_peer", self.old_peer);
        out.addr("old_local", self.old_local);
    }

    fn message(&self, privacy: &IpPrivacy, msg: &mut dyn fmt::Write) -> fmt::Result {
        let c = &self.conn;
        write!(
            msg,
            "peer address changed {} conv={}: {} -> {}",
            c.uid,
            c.conv,
            Shown(privacy, self.old_peer),
            Shown(privacy, c.peer)
        )?;
        if self.old_local != c.local {
            let (old, new) = (Shown(privacy, self.old_local), Shown(privacy, c.local));
            write!(msg, "; local {old} -> {new}")?;
        }
        Ok(())
    }

    fn examples(net: &ExampleNet) -> Vec<Self> {
        vec![Self {
            conn: ConnectionRef {
                peer: net.moved_peer,
                ..net.inbound()
            },
            old_peer: net.peer,
            old_local: net.local,
        }]
    }
}

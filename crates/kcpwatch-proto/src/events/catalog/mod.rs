//! The event catalogue: every `kcp:*` event declared once, in one file of this folder: its
//! record type, one static [`EventSpec`] (name, lane, severity, meaning in each format, wire
//! fields) and its [`EventRecord`](super::EventRecord) impl (the fields and `msg` text the
//! canonical writer prints). Everything else that depends on the list of events reads this:
//!
//! - [`SecurityEvent::kind`](super::SecurityEvent::kind), `name()`, `lane()` and
//!   `severity()`;
//! - the output formats (ECS categories and outcome, OCSF class and activity, CEF title), whose
//!   per-event tables `match` on [`EventKind`] without a catch-all;
//! - `npm run codegen` (crates/kcpwatch-codegen), which writes the TypeScript types, the JSON
//!   Schema and the catalogue tables of `docs/events.md` from it;
//! - the canonical writer's test, which checks every key it writes is declared here.
//!
//! Vocabularies ([`Vocab`]) are read from the Rust enums themselves (their `ALL` lists), never
//! retyped.

mod close;
mod connection;
mod incidents;
mod listener;
mod reports;

pub use close::*;
pub use connection::*;
pub use incidents::*;
pub use listener::*;
pub use reports::*;

use super::record::RecordFields;
use super::spec::{
    opt, req, Case, EventSpec, ExpandedField, Field, Group, GroupUse, Part, Presence, SeverityRule,
    Shape, Vocab, WireType,
};
use super::{EventKind, FailReason, Severity};
use crate::config::SessionConfig;
use crate::detect::Rule;
use crate::lifecycle::CloseReason;

impl EventKind {
    /// The record name, `kcp:<action>`.
    pub fn name(self) -> &'static str {
        self.spec().name
    }

    /// The name without its `kcp:` prefix (ECS `event.action`).
    pub fn action(self) -> &'static str {
        let name = self.name();
        name.strip_prefix("kcp:").unwrap_or(name)
    }

    /// The kind named `name` (`kcp:connection_closed`).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The kind whose [`action`](Self::action) is `action` (`connection_closed`).
    pub fn from_action(action: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.action() == action)
    }
}

/// The severity of a `kcp:connection_closed` record: a broken link or an eviction is notable,
/// a violation or an internal error a warning, every other close informational.
pub fn close_severity(reason: CloseReason) -> Severity {
    match reason {
        CloseReason::DeadLink | CloseReason::Evicted => Severity::Notice,
        CloseReason::ProtocolViolation | CloseReason::InternalError => Severity::Warning,
        CloseReason::IdleTimeout
        | CloseReason::PeerClosed
        | CloseReason::LocalClosed
        | CloseReason::Shutdown => Severity::Informational,
    }
}

/// Close reasons that mean the connection broke rather than ended (outcome `failure`).
pub fn abnormal_close(reason: CloseReason) -> bool {
    close_severity(reason) <= Severity::Notice
}

/// Failure reasons where this endpoint refused nothing: a client's own attempt that timed out
/// or that ICMP said nothing answers, a server's handshake the client abandoned, a shutdown.
pub const UNREFUSED_FAILURES: [FailReason; 4] = [
    FailReason::HandshakeTimeout,
    FailReason::Unreachable,
    FailReason::HandshakeAbandoned,
    FailReason::Shutdown,
];

// ---------------------------------------------------------------------------------------------
// The fields.

use WireType::*;

/// Fields every record carries.
pub const BASE_FIELDS: &[Field] = &[
    req(
        "ts",
        Timestamp,
        "RFC 3339 UTC time with exactly 6 fractional digits.",
    ),
    req("time", Count, "Unix time in milliseconds (pino time)."),
    req("level", PinoLevel, "pino level, following severity."),
    req(
        "level_name",
        Vocab(Vocab::SeverityName),
        "Syslog severity name.",
    ),
    req(
        "severity",
        SeverityCode,
        "Syslog severity 0-7 (lower is more severe).",
    ),
    req("name", Vocab(Vocab::EventName), "The event, kcp:<event>."),
    req(
        "seq",
        Count,
        "Per-listener sequence number; a gap means loss. (observer_instance, seq) is unique.",
    ),
    req("observer_host", Text, "Host name."),
    req(
        "observer_service",
        Text,
        "The service name the application configured.",
    ),
    req(
        "observer_instance",
        Text,
        "This listener's run (default \"L\" + 22 base62 digits; may be set by the application).",
    ),
    req("observer_version", Text, "kcpwatch version."),
    req("msg", Text, "Human-readable summary (pino msg)."),
    opt(
        "ip_privacy",
        IpPrivacy,
        "The privacy mode that transformed the addresses; absent in mode full.",
    ),
];

pub(super) const CONNECTION_FIELDS: &[Field] = &[
    req("uid", Uid, "Connection id, shared by every record of the connection."),
    opt(
        "user_id",
        Custom {
            schema: r#"{"type":"string","minLength":1,"maxLength":128}"#,
            ts: "string",
        },
        "Secure mode, server: the user the application's authenticate named for this connection (at most 128 bytes of UTF-8), on every record from its establishment on. Written in clear only without ip_privacy (mode full); see user_id_pseudonym.",
    ),
    opt(
        "user_id_pseudonym",
        Pseudonym,
        "user_id under ip_privacy hmac: a keyed pseudonym made with the address key (its key id first). truncate, cryptopan and omit write neither.",
    ),
    req("conv", Conv, "KCP conversation id."),
    req("direction", Vocab(Vocab::Direction), "Who opened the connection."),
    opt(
        "src_ip",
        Ip,
        "The originator: the peer for an inbound connection, this endpoint for an outbound one.",
    ),
    req("src_port", Port, "The originator's port."),
    opt(
        "dst_ip",
        Ip,
        "The responder; for an inbound connection, the address the datagrams really arrived on (also on a wildcard bind).",
    ),
    req("dst_port", Port, "The responder's port."),
    req("transport", Transport, "Always udp."),
    opt(
        "community_id",
        CommunityId,
        "Community ID v1 of the flow; absent when the addresses are of different families.",
    ),
    opt("src_ip_pseudonym", Pseudonym, "src_ip under ip_privacy hmac."),
    opt("dst_ip_pseudonym", Pseudonym, "dst_ip under ip_privacy hmac."),
];

pub(super) const LOCAL_ADDRESS_FIELDS: &[Field] = &[
    opt(
        "local_ip",
        Ip,
        "The bound address (may be a wildcard such as 0.0.0.0 or ::).",
    ),
    req("local_port", Port, "The bound port."),
    opt(
        "local_ip_pseudonym",
        Pseudonym,
        "local_ip under ip_privacy hmac.",
    ),
];

pub(super) const KCP_PARAMS_FIELDS: &[Field] = &[
    req("kcp_nodelay", Bool, "KCP nodelay mode."),
    req(
        "kcp_interval_ms",
        Custom {
            schema: r#"{"type":"integer","minimum":10,"maximum":5000}"#,
            ts: "number",
        },
        "Internal flush interval.",
    ),
    req(
        "kcp_resend",
        U32,
        "Fast retransmit after this many duplicate ACKs (0 = off).",
    ),
    req("kcp_nc", Bool, "Congestion window disabled."),
    req("kcp_snd_wnd", U16, "Send window in segments."),
    req("kcp_rcv_wnd", U16, "Receive window in segments."),
    req(
        "kcp_mtu",
        Custom {
            schema: r#"{"type":"integer","minimum":50,"maximum":65507}"#,
            ts: "number",
        },
        "Largest datagram KCP produces, header included.",
    ),
    req(
        "kcp_stream",
        Bool,
        "Stream mode (message boundaries not kept).",
    ),
    req(
        "dead_link",
        U32,
        "Transmissions of one segment after which the link is dead.",
    ),
    req("idle_timeout_ms", U32, "Idle timeout."),
    req("max_message_size", Count, "Largest message accepted."),
];

/// The [`KCP_PARAMS_FIELDS`] group, written from the session's parameters.
pub(super) fn kcp_params<F: RecordFields>(out: &mut F, p: &SessionConfig) {
    out.bool("kcp_nodelay", p.nodelay);
    out.num("kcp_interval_ms", p.interval_ms);
    out.num("kcp_resend", p.fast_resend);
    out.bool("kcp_nc", p.no_congestion_window);
    out.num("kcp_snd_wnd", p.send_window);
    out.num("kcp_rcv_wnd", p.receive_window);
    out.num("kcp_mtu", p.mtu as u64);
    out.bool("kcp_stream", p.stream);
    out.num("dead_link", p.dead_link);
    out.num("idle_timeout_ms", p.idle_timeout_ms);
    out.num("max_message_size", p.max_message_size as u64);
}

pub(super) const CONNECTION: &[GroupUse] = &[GroupUse {
    group: Group::Connection,
    presence: Presence::Required,
}];

pub(super) const NETWORK: &[&str] = &["network"];

impl EventSpec {
    /// Every field a record of this kind may carry: the base fields, its groups', its own;
    /// field families expanded. Optional groups make their fields optional.
    pub fn all_fields(&self) -> Vec<ExpandedField> {
        let mut out = Vec::new();
        expand(BASE_FIELDS, Presence::Required, &mut out);
        for group in self.groups {
            expand(group.group.fields(), group.presence, &mut out);
        }
        expand(self.fields, Presence::Required, &mut out);
        out
    }

    /// Whether one record of this kind may carry all of `keys` at once: each is one of its
    /// fields, and each of its [`Shape::OneOf`]s has a case that leaves none of them absent.
    /// What it cannot read (a per-rule shape, a type named beside the events) it takes to allow
    /// them.
    pub fn may_carry_together(&self, keys: &[&str]) -> bool {
        let fields = self.all_fields();
        keys.iter().all(|k| fields.iter().any(|f| f.name == *k))
            && self.shapes.iter().all(|shape| match shape {
                Shape::OneOf { cases, .. } => cases
                    .iter()
                    .any(|case| !self.leaves_out(case.parts, keys, 0)),
                Shape::Narrow(_) | Shape::Parts(_) | Shape::PerAlertRule { .. } => true,
            })
    }

    /// Whether `parts` make one of `keys` absent.
    fn leaves_out(&self, parts: &[Part], keys: &[&str], depth: usize) -> bool {
        parts.iter().any(|part| match part {
            Part::Absent(f) => keys.contains(f),
            Part::NoGroup(g) => g.fields().iter().any(|f| keys.contains(&f.name)),
            // Named cases may name others; the depth bounds a declaration that loops.
            Part::Named(name) => {
                depth < 8
                    && self
                        .named_case(name)
                        .is_some_and(|case| self.leaves_out(case.parts, keys, depth + 1))
            }
            Part::Field(_) | Part::Present(_) | Part::Is(..) | Part::Group(_) => false,
        })
    }

    fn named_case(&self, name: &str) -> Option<&'static Case> {
        self.shapes
            .iter()
            .flat_map(|shape| match shape {
                Shape::OneOf { cases, .. } | Shape::Parts(cases) => cases.iter(),
                Shape::Narrow(_) | Shape::PerAlertRule { .. } => [].iter(),
            })
            .find(|case| case.name == name)
    }
}

fn expand(fields: &'static [Field], group: Presence, out: &mut Vec<ExpandedField>) {
    for field in fields {
        let presence = match group {
            Presence::Required => field.presence,
            Presence::Optional => Presence::Optional,
        };
        if field.per_severity {
            for severity in Severity::ALL {
                out.push(ExpandedField {
                    name: format!("{}{}", field.name, severity.as_str()),
                    presence,
                    field,
                });
            }
        } else {
            out.push(ExpandedField {
                name: field.name.to_string(),
                presence,
                field,
            });
        }
    }
}

impl SeverityRule {
    /// Every severity a record of the event can have, most severe first.
    pub fn possible(self) -> Vec<Severity> {
        let mut all: Vec<Severity> = match self {
            Self::Fixed(s) => vec![s],
            Self::ByCloseReason => CloseReason::ALL.map(close_severity).to_vec(),
            Self::ByAlertRule => Rule::ALL.map(Rule::severity).to_vec(),
        };
        all.sort();
        all.dedup();
        all
    }
}

impl Group {
    /// Its fields.
    pub fn fields(self) -> &'static [Field] {
        match self {
            Self::Connection => CONNECTION_FIELDS,
            Self::LocalAddress => LOCAL_ADDRESS_FIELDS,
            Self::KcpParams => KCP_PARAMS_FIELDS,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_and_names_are_unique() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::from_name(kind.name()), Some(kind));
            assert_eq!(EventKind::from_action(kind.action()), Some(kind));
            assert!(kind.name().starts_with("kcp:"));
        }
        let names = Vocab::EventName.values();
        assert_eq!(names.len(), EventKind::ALL.len());
        assert_eq!(EventKind::from_name("kcp:nothing"), None);
    }

    #[test]
    fn no_event_declares_a_field_twice() {
        for kind in EventKind::ALL {
            let fields = kind.spec().all_fields();
            let mut names: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
            names.sort_unstable();
            let before = names.len();
            names.dedup();
            assert_eq!(
                names.len(),
                before,
                "{} declares a field twice",
                kind.name()
            );
        }
    }

    #[test]
    fn shapes_say_which_fields_come_together() {
        let error = EventKind::Error.spec();
        // An error names a connection or a bare peer, never both.
        assert!(!error.may_carry_together(&["peer_ip", "dst_port"]));
        assert!(!error.may_carry_together(&["peer_port", "uid"]));
        assert!(error.may_carry_together(&["peer_ip", "peer_port", "error_code"]));
        assert!(error.may_carry_together(&["uid", "dst_port", "local_port"]));
        // Through a named part: a refused attempt has a rule.
        assert!(EventKind::ConnectionFailed
            .spec()
            .may_carry_together(&["rule", "uid"]));
        assert!(!EventKind::Stats.spec().may_carry_together(&["uid"]));
        assert!(!error.may_carry_together(&["no_such_field"]));
    }

    #[test]
    fn close_severities_match_abnormal_closes() {
        for reason in CloseReason::ALL {
            let abnormal = matches!(
                reason,
                CloseReason::DeadLink
                    | CloseReason::InternalError
                    | CloseReason::ProtocolViolation
                    | CloseReason::Evicted
            );
            assert_eq!(abnormal_close(reason), abnormal, "{}", reason.as_str());
        }
    }
}

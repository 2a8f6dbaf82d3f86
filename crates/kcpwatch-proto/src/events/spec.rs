//! The shape of an event's declaration ([`EventSpec`]) and of its fields; the declarations
//! themselves are in `catalog.rs`.

use super::{Direction, ErrorType, EventKind, FailReason, Lane, Severity, Violation};
use crate::detect::Rule;
use crate::lifecycle::{CloseReason, ConnectionState, DropTrigger, Initiator};

/// One event, declared: what it is called, where it travels, how severe it is, what each
/// output format makes of it, and the fields of its canonical record.
#[derive(Debug)]
pub struct EventSpec {
    /// `kcp:<action>`.
    pub name: &'static str,
    /// One sentence for the catalogue.
    pub summary: &'static str,
    /// The ring lane that carries it.
    pub lane: Lane,
    /// Its severity, fixed or derived from the record.
    pub severity: SeverityRule,
    /// The CEF header's name column.
    pub cef_title: &'static str,
    /// Its ECS categorization.
    pub ecs: EcsSpec,
    /// Its OCSF class and activity.
    pub ocsf: OcsfSpec,
    /// How it turned out (ECS `event.outcome`, OCSF `status_id`, CEF `outcome`).
    pub outcome: OutcomeRule,
    /// What this endpoint did about it (CEF `act`, OCSF `action` and `disposition`).
    pub control: Control,
    /// Field groups shared with other events, each present whole or not at all.
    pub groups: &'static [GroupUse],
    /// Its own fields, after the groups.
    pub fields: &'static [Field],
    /// Which of its fields come together, beyond each field's own presence: the TypeScript
    /// types spell each out as a union (the schema's template says the same in JSON).
    pub shapes: &'static [Shape],
}

/// Fields of one event that come together: one of several alternatives. The TypeScript
/// generator writes it as a union and leaves the fields it names out of the event's other
/// fields; a field group it names is not written as whole-or-nothing on its own.
#[derive(Debug)]
pub enum Shape {
    /// Exactly one of these.
    OneOf {
        /// Its exported TypeScript name; empty to write the union inline.
        name: &'static str,
        /// Its TSDoc.
        doc: &'static str,
        /// The alternatives.
        cases: &'static [Case],
    },
    /// Narrower types of some of its fields, for every record (`Part::Is`): the event's
    /// TypeScript type redeclares them.
    Narrow(&'static [Part]),
    /// Named alternatives that other shapes' cases use ([`Part::Named`]), not a union of the
    /// event on their own.
    Parts(&'static [Case]),
    /// One alternative per detector rule ([`Rule`]): its `rule_id`, `rule_name`,
    /// `mitre_technique` and severity, with the part named `Alert<Group>Group` for its
    /// [`Rule::group`].
    PerAlertRule {
        /// Its exported TypeScript name.
        name: &'static str,
        /// Its TSDoc.
        doc: &'static str,
    },
}

/// One alternative of a [`Shape`].
#[derive(Debug)]
pub struct Case {
    /// Its exported TypeScript name; empty to write it inline.
    pub name: &'static str,
    /// Its TSDoc (for a named case).
    pub doc: &'static str,
    /// What it holds.
    pub parts: &'static [Part],
}

/// A part of a [`Case`]. A field is named by its key, and must be one of the event's own.
#[derive(Debug)]
pub enum Part {
    /// The field, present or not as declared.
    Field(&'static str),
    /// The field, always present.
    Present(&'static str),
    /// The field, always present, with this narrower TypeScript type.
    Is(&'static str, &'static str),
    /// The field, absent.
    Absent(&'static str),
    /// The group's fields, whole.
    Group(Group),
    /// The group's fields, absent.
    NoGroup(Group),
    /// A named case of another shape of this event, or a type generated beside the events
    /// (`UnrefusedAttempt`, from the drop rules).
    Named(&'static str),
}

/// A field of a record with its family expanded and its group's presence applied.
#[derive(Debug, Clone)]
pub struct ExpandedField {
    /// The key.
    pub name: String,
    /// Whether every record of the kind carries it.
    pub presence: Presence,
    /// Its declaration.
    pub field: &'static Field,
}

/// How an event's severity is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeverityRule {
    /// Always this one.
    Fixed(Severity),
    /// By the close reason ([`close_severity`](super::close_severity)).
    ByCloseReason,
    /// By the detector rule ([`Rule::severity`]).
    ByAlertRule,
}

/// How an event turned out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeRule {
    /// It reports rather than does something: no outcome.
    None,
    /// Always `success`.
    Success,
    /// Always `failure`.
    Failure,
    /// Always `unknown` (an attempt, not yet decided).
    Unknown,
    /// `failure` when an attempt or a handshake ended without a connection
    /// (`attempted`/`handshaking` -> `closed`), else `success`.
    ByStateTransition,
    /// `failure` for an abnormal close reason ([`abnormal_close`]), else `success`.
    ByCloseReason,
}

/// ECS `event.kind`, `event.category` and `event.type`.
#[derive(Debug, Clone, Copy)]
pub struct EcsSpec {
    /// `event.kind`.
    pub kind: &'static str,
    /// `event.category`.
    pub category: &'static [&'static str],
    /// `event.type`.
    pub types: &'static [&'static str],
    /// `event.type` when this endpoint refused nothing ([`UNREFUSED_FAILURES`]), if different.
    pub types_unrefused: Option<&'static [&'static str]>,
    /// The field that stands for `event.reason` in a record without a `reason`.
    pub reason_field: Option<&'static str>,
}

/// The OCSF class and activity.
#[derive(Debug, Clone, Copy)]
pub enum OcsfSpec {
    /// Network Activity (4001) with this activity.
    NetworkActivity {
        /// `activity_id` and `activity_name` (99 is "Other").
        activity: (u64, &'static str),
        /// The activity when this endpoint refused nothing ([`UNREFUSED_FAILURES`]), if
        /// different.
        activity_unrefused: Option<(u64, &'static str)>,
        /// How its byte counts are oriented (`traffic` against the peer).
        traffic: Traffic,
    },
    /// Detection Finding (2004): Create, or Update for an `update: true` record.
    DetectionFinding,
}

/// What this endpoint did about what a record reports: the formats' control fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Nothing: the record reports rather than decides.
    None,
    /// Let in (OCSF `Allowed`).
    Allowed,
    /// Turned away here, always: a datagram dropped whole (CEF `blocked`, OCSF `Denied` /
    /// `Blocked`).
    Blocked,
    /// Turned away here unless this endpoint refused nothing: not for the failures of
    /// [`UNREFUSED_FAILURES`], nor for a client's attempt the server refused (rule
    /// `server_rejected`) or that timed out (rule `handshake_timeout`).
    BlockedUnlessUnrefused,
    /// A message the application tried to send, refused (CEF `refused`; OCSF's firewall
    /// controls do not apply to it).
    RefusedMessage,
}

/// How an OCSF Network Activity record's byte counts are oriented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Traffic {
    /// It carries none, or they have no direction.
    Unoriented,
    /// By the connection's `direction`: an inbound connection's bytes came from the peer.
    ByDirection,
    /// Like inbound traffic: the listener is the responder.
    FromPeer,
}

/// Whether a field or group is always there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// Always.
    Required,
    /// Only when it applies.
    Optional,
}

/// A set of fields several events share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// Who a connection-scoped record is about.
    Connection,
    /// The listener's bound address.
    LocalAddress,
    /// The KCP session parameters.
    KcpParams,
}

impl Group {
    /// Every group.
    pub const ALL: [Group; 3] = [Self::Connection, Self::LocalAddress, Self::KcpParams];

    /// Its name in the schema's `$defs` (the optional form adds `_optional`).
    pub fn def_name(self) -> &'static str {
        match self {
            Self::Connection => "connection",
            Self::LocalAddress => "local_address",
            Self::KcpParams => "kcp_params",
        }
    }
}

/// A group as one event uses it.
#[derive(Debug, Clone, Copy)]
pub struct GroupUse {
    /// The group.
    pub group: Group,
    /// Always there, or whole-or-nothing.
    pub presence: Presence,
}

/// One field of a canonical record.
#[derive(Debug)]
pub struct Field {
    /// The key (for a family, its prefix).
    pub name: &'static str,
    /// What its value is.
    pub ty: WireType,
    /// Whether every record carries it.
    pub presence: Presence,
    /// One line for the schema and the types (`{severity}` in a family's doc is each name).
    pub doc: &'static str,
    /// A family: one field per severity name (`lost_severity_<name>`).
    pub per_severity: bool,
}

pub(super) const fn req(name: &'static str, ty: WireType, doc: &'static str) -> Field {
    Field {
        name,
        ty,
        presence: Presence::Required,
        doc,
        per_severity: false,
    }
}

pub(super) const fn opt(name: &'static str, ty: WireType, doc: &'static str) -> Field {
    Field {
        name,
        ty,
        presence: Presence::Optional,
        doc,
        per_severity: false,
    }
}

/// What a field's value is. Most name a shared definition of the schema; [`WireType::Custom`]
/// spells out a constraint only one field has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireType {
    /// An unsigned counter or size (u64).
    Count,
    /// A u32.
    U32,
    /// A u16.
    U16,
    /// A UDP port.
    Port,
    /// A KCP conversation id.
    Conv,
    /// `true` or `false`.
    Bool,
    /// Any text.
    Text,
    /// RFC 3339 UTC with microseconds.
    Timestamp,
    /// An IP address.
    Ip,
    /// A keyed pseudonym (privacy mode hmac).
    Pseudonym,
    /// A connection id.
    Uid,
    /// A Community ID.
    CommunityId,
    /// A Zeek-style history.
    History,
    /// Always `udp`.
    Transport,
    /// A syslog severity number.
    SeverityCode,
    /// A pino level number.
    PinoLevel,
    /// One name of a vocabulary.
    Vocab(Vocab),
    /// One name of a vocabulary, except one.
    VocabExcept(Vocab, &'static str),
    /// A guard, limit or handshake rule (`rule`): a [`DropRule`](super::DropRule), whose
    /// declaration gives the schema's `rule` vocabulary and its pairing with `trigger`.
    DropRule,
    /// `raw` or `secure`.
    ListenerMode,
    /// `server` or `client`.
    ListenerRole,
    /// The privacy mode's name.
    IpPrivacy,
    /// A constraint of this field alone: its JSON Schema and its TypeScript type.
    Custom {
        /// The JSON Schema, as JSON text.
        schema: &'static str,
        /// The TypeScript type.
        ts: &'static str,
    },
}

/// A closed list of names that a Rust enum defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vocab {
    /// [`EventKind::name`].
    EventName,
    /// [`Severity::as_str`].
    SeverityName,
    /// [`Lane::as_str`].
    Lane,
    /// [`Direction::as_str`].
    Direction,
    /// [`ConnectionState::as_str`].
    ConnectionState,
    /// [`CloseReason::as_str`].
    CloseReason,
    /// [`Initiator::as_str`].
    Initiator,
    /// [`FailReason::as_str`].
    FailReason,
    /// [`DropTrigger::as_str`].
    DropTrigger,
    /// [`Violation::as_str`].
    Violation,
    /// [`ErrorType::as_str`].
    ErrorType,
    /// [`Violation::error_code`].
    ApplicationErrorCode,
    /// [`Rule::id`].
    AlertRuleId,
    /// [`Rule::name`].
    AlertRuleName,
    /// [`Rule::technique`].
    MitreTechnique,
}

impl Vocab {
    /// Every vocabulary.
    pub const ALL: [Vocab; 15] = [
        Self::EventName,
        Self::SeverityName,
        Self::Lane,
        Self::Direction,
        Self::ConnectionState,
        Self::CloseReason,
        Self::Initiator,
        Self::FailReason,
        Self::DropTrigger,
        Self::Violation,
        Self::ErrorType,
        Self::ApplicationErrorCode,
        Self::AlertRuleId,
        Self::AlertRuleName,
        Self::MitreTechnique,
    ];

    /// Its names, in the enum's order, each once.
    pub fn values(self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = match self {
            Self::EventName => EventKind::ALL.map(EventKind::name).to_vec(),
            Self::SeverityName => Severity::ALL.map(Severity::as_str).to_vec(),
            Self::Lane => Lane::ALL.map(Lane::as_str).to_vec(),
            Self::Direction => Direction::ALL.map(Direction::as_str).to_vec(),
            Self::ConnectionState => ConnectionState::ALL.map(ConnectionState::as_str).to_vec(),
            Self::CloseReason => CloseReason::ALL.map(CloseReason::as_str).to_vec(),
            Self::Initiator => Initiator::ALL.map(Initiator::as_str).to_vec(),
            Self::FailReason => FailReason::ALL.map(FailReason::as_str).to_vec(),
            Self::DropTrigger => DropTrigger::ALL.map(DropTrigger::as_str).to_vec(),
            Self::Violation => Violation::ALL.map(Violation::as_str).to_vec(),
            Self::ErrorType => ErrorType::ALL.map(ErrorType::as_str).to_vec(),
            Self::ApplicationErrorCode => Violation::ALL.map(|v| v.error_code().as_str()).to_vec(),
            Self::AlertRuleId => Rule::ALL.map(Rule::id).to_vec(),
            Self::AlertRuleName => Rule::ALL.map(Rule::name).to_vec(),
            Self::MitreTechnique => Rule::ALL.iter().filter_map(|r| r.technique()).collect(),
        };
        let mut seen = Vec::with_capacity(names.len());
        names.retain(|n| {
            let new = !seen.contains(n);
            seen.push(*n);
            new
        });
        names
    }

    /// Its name in the schema's `$defs`.
    pub fn def_name(self) -> &'static str {
        match self {
            Self::EventName => "event_name",
            Self::SeverityName => "severity_name",
            Self::Lane => "lane",
            Self::Direction => "direction",
            Self::ConnectionState => "connection_state",
            Self::CloseReason => "close_reason",
            Self::Initiator => "initiator",
            Self::FailReason => "fail_reason",
            Self::DropTrigger => "drop_trigger",
            Self::Violation => "violation",
            Self::ErrorType => "error_type",
            Self::ApplicationErrorCode => "application_error_code",
            Self::AlertRuleId => "alert_rule_id",
            Self::AlertRuleName => "alert_rule_name",
            Self::MitreTechnique => "mitre_technique",
        }
    }

    /// Its name in the TypeScript types.
    pub fn ts_name(self) -> &'static str {
        match self {
            Self::EventName => "EventName",
            Self::SeverityName => "EventSeverityName",
            Self::Lane => "EventLane",
            Self::Direction => "EventDirection",
            Self::ConnectionState => "EventConnectionState",
            Self::CloseReason => "EventCloseReason",
            Self::Initiator => "EventInitiator",
            Self::FailReason => "FailReason",
            Self::DropTrigger => "DropTrigger",
            Self::Violation => "Violation",
            Self::ErrorType => "ErrorType",
            Self::ApplicationErrorCode => "ApplicationErrorCode",
            Self::AlertRuleId => "AlertRuleId",
            Self::AlertRuleName => "AlertRuleName",
            Self::MitreTechnique => "MitreTechnique",
        }
    }
}

//! The listener's events: bound and closed.

use std::fmt;
use std::net::SocketAddr;

use super::super::record::{EventRecord, ExampleNet, RecordFields, Shown};
use super::super::spec::{
    req, Control, EcsSpec, EventSpec, Group, GroupUse, OcsfSpec, OutcomeRule, Presence,
    SeverityRule, Traffic, WireType::*,
};
use super::super::{Lane, Severity};
use super::{kcp_params, NETWORK};
use crate::config::SessionConfig;
use crate::privacy::IpPrivacy;

// --------------------------------------------------------------------- kcp:listener_started

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

impl EventRecord for ListenerStarted {
    fn connection(&self) -> Option<&crate::events::ConnectionRef> {
        None
    }

    fn fields<F: RecordFields>(&self, out: &mut F) {
        out.addr("local", self.local);
        let s = &self.settings;
        out.str("mode", s.mode);
        out.str("role", if s.accept_inbound { "server" } else { "client" });
        out.num("max_connections", s.max_connections);
        kcp_params(out, &s.session);
    }

    fn message(&self, privacy: &IpPrivacy, msg: &mut dyn fmt::Write) -> fmt::Result {
        let (local, mode) = (Shown(privacy, self.local), self.settings.mode);
        write!(msg, "listening on {local} ({mode} mode)")
    }

    fn examples(net: &ExampleNet) -> Vec<Self> {
        vec![Self {
            local: net.wildcard,
            settings: ListenerSettings {
                mode: "secure",
                max_connections: 10_000,
                accept_inbound: true,
                session: SessionConfig::default(),
            },
        }]
    }
}

// --------------------------------------------------------------------- kcp:listener_stopped

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

impl EventRecord for ListenerStopped {
    fn connection(&self) -> Option<&crate::events::ConnectionRef> {
        None
    }

    fn fields<F: RecordFields>(&self, out: &mut F) {
        out.addr("local", self.local);
        out.num("uptime_ms", self.uptime_ms);
        out.num("connections_total", self.connections_total);
    }

    fn message(&self, privacy: &IpPrivacy, msg: &mut dyn fmt::Write) -> fmt::Result {
        write!(msg, "stopped listening on {}", Shown(privacy, self.local))
    }

    fn examples(net: &ExampleNet) -> Vec<Self> {
        vec![Self {
            local: net.wildcard,
            uptime_ms: 3_600_000,
            connections_total: 42,
        }]
    }
}

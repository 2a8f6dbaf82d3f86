//! Statistics, loss and detector alerts.

use std::fmt;
use std::net::SocketAddr;

use super::super::record::{shown_ip, EventRecord, ExampleNet, RecordFields};
use super::super::spec::{
    opt, req, Case, Control, EcsSpec, EventSpec, Field, Group, GroupUse, OcsfSpec, OutcomeRule,
    Part, Presence, SeverityRule, Shape, Traffic, Vocab, WireType::*,
};
use super::super::{Alert, CappedText, Lane, Severity};
use super::NETWORK;
use crate::detect::Rule;
use crate::privacy::{IpPrivacy, PrivateIp};

// -------------------------------------------------------------------------------- kcp:stats

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

impl EventRecord for StatsEvent {
    fn connection(&self) -> Option<&crate::events::ConnectionRef> {
        None
    }

    fn fields<F: RecordFields>(&self, out: &mut F) {
        if let Some(local) = self.local {
            out.addr("local", local);
        }
        out.num("interval_ms", self.interval_ms);
        out.num("connections", self.connections);
        out.num("datagrams_received", self.datagrams_in);
        out.num("bytes_received", self.bytes_in);
        out.num("datagrams_sent", self.datagrams_out);
        out.num("bytes_sent", self.bytes_out);
        out.num("passive_opens", self.passive_opens);
        out.num("active_opens", self.active_opens);
        out.num("connections_closed", self.closed);
        out.num("datagrams_dropped", self.dropped);
        out.num("connections_failed", self.failed);
        out.num("send_errors", self.send_errors);
        out.num("icmp_errors", self.icmp_errors);
        out.num("panics", self.panics);
        out.num("log_lost", self.log_lost);
    }

    fn message(&self, _: &IpPrivacy, msg: &mut dyn fmt::Write) -> fmt::Result {
        write!(
            msg,
            "{} connections, {} datagrams in, {} out, {} dropped",
            self.connections, self.datagrams_in, self.datagrams_out, self.dropped
        )
    }

    fn examples(net: &ExampleNet) -> Vec<Self> {
        vec![Self {
            local: Some(net.wildcard),
            interval_ms: 60_000,
            connections: 12,
            datagrams_in: 5_000,
            bytes_in: 600_000,
            datagrams_out: 4_800,
            bytes_out: 700_000,
            passive_opens: 3,
            closed: 2,
            dropped: 17,
            failed: 1,
            ..Self::default()
        }]
    }
}

// ----------------------------------------------------------------------------- kcp:log_loss

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

/// `lost_severity_<name>`, by syslog number: static keys, so writing them allocates nothing.
const LOST_BY_SEVERITY: [&str; 8] = [
    "lost_severity_emergency",
    "lost_severity_alert",
    "lost_severity_critical",
    "lost_severity_error",
    "lost_severity_warning",
    "lost_severity_notice",
    "lost_severity_info",
    "lost_severity_debug",
];

/// When the losses of the examples began (a minute and a half into the examples).
const EXAMPLE_SINCE_US: u64 = 1_764_170_121_774_012;

impl LogLoss {
    fn lost_total(&self) -> u64 {
        self.lost_critical + self.lost_bulk + self.lost_output
    }
}

impl EventRecord for LogLoss {
    fn connection(&self) -> Option<&crate::events::ConnectionRef> {
        None
    }

    fn fields<F: RecordFields>(&self, out: &mut F) {
        out.num("lost_total", self.lost_total());
        out.num("lost_critical", self.lost_critical);
        out.num("lost_bulk", self.lost_bulk);
        for (key, &count) in LOST_BY_SEVERITY.iter().zip(&self.lost_by_severity) {
            if count > 0 {
                out.num(key, count);
            }
        }
        if self.lost_output > 0 {
            out.num("lost_output", self.lost_output);
            out.str("output", self.output.as_str());
        }
        if self.since_us > 0 {
            out.time("since", self.since_us);
        }
    }

    fn message(&self, _: &IpPrivacy, msg: &mut dyn fmt::Write) -> fmt::Result {
        write!(msg, "{} security records lost", self.lost_total())?;
        if self.lost_output > 0 {
            write!(msg, " by output {}", self.output.as_str())?;
        }
        Ok(())
    }

    fn examples(_: &ExampleNet) -> Vec<Self> {
        vec![
            // Lost from the ring.
            Self {
                lost_critical: 1,
                lost_bulk: 40,
                lost_by_severity: [0, 0, 0, 0, 1, 0, 40, 0],
                since_us: EXAMPLE_SINCE_US,
                ..Self::default()
            },
            // Lost by one output, which the others still received.
            Self {
                lost_output: 5,
                lost_by_severity: [0, 0, 0, 0, 0, 5, 0, 0],
                since_us: EXAMPLE_SINCE_US,
                output: CappedText::format("syslog+tcp://127.0.0.1:601"),
                ..Self::default()
            },
        ]
    }
}

// -------------------------------------------------------------------------------- kcp:alert

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

impl EventRecord for Alert {
    fn connection(&self) -> Option<&crate::events::ConnectionRef> {
        None
    }

    fn fields<F: RecordFields>(&self, out: &mut F) {
        out.str("rule_id", self.rule.id());
        out.str("rule_name", self.rule.name());
        out.num("threshold", self.threshold);
        out.num("window_ms", self.window_ms);
        out.num("observed", self.observed);
        out.time("first_seen", self.first_seen_ms * 1000);
        out.time("last_seen", self.last_seen_ms * 1000);
        out.bool("update", self.update);
        if let Some(technique) = self.rule.technique() {
            out.str("mitre_technique", technique);
        }
        // The grouping key is an address: it goes through the privacy mode like the others
        // (`group_ip`, or `group_ip_pseudonym`, or nothing under omit).
        match self.key {
            Some(key) => {
                out.str("group", "source");
                out.ip_only("group", key);
            }
            None => out.str("group", "listener"),
        }
    }

    fn message(&self, privacy: &IpPrivacy, msg: &mut dyn fmt::Write) -> fmt::Result {
        write!(
            msg,
            "{} {} ({}): {} in {} ms, threshold {}",
            if self.update { "alert update" } else { "alert" },
            self.rule.id(),
            self.rule.name(),
            self.observed,
            self.window_ms,
            self.threshold
        )?;
        match self.key.map(|key| privacy.apply(shown_ip(key))) {
            Some(PrivateIp::Ip(shown)) => write!(msg, " from {shown}"),
            Some(PrivateIp::Pseudonym(p)) => write!(msg, " from [{p}]"),
            Some(PrivateIp::Omitted) => write!(msg, " from one source"),
            None => Ok(()),
        }
    }

    fn examples(net: &ExampleNet) -> Vec<Self> {
        vec![
            // About one source.
            Self {
                rule: Rule::HandshakeFloodSource,
                key: Some(net.alert_source),
                threshold: 100,
                window_ms: 10_000,
                observed: 120,
                first_seen_ms: 1_764_170_031_118,
                last_seen_ms: 1_764_170_041_006,
                update: false,
            },
            // Listener-wide, an update of an episode already alerted on.
            Self {
                rule: Rule::HandshakeFloodGlobal,
                key: None,
                threshold: 1_000,
                window_ms: 10_000,
                observed: 5_210,
                first_seen_ms: 1_764_170_031_118,
                last_seen_ms: 1_764_170_091_118,
                update: true,
            },
        ]
    }
}

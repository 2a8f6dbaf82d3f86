//! `ecs`: an Elastic Common Schema 9.x document per record, nested JSON on one line.
//!
//! | canonical | ECS |
//! |---|---|
//! | `ts` | `@timestamp` |
//! | `msg` | `message` |
//! | `name` | `event.action` (without `kcp:`), plus `event.kind` / `category` / `type` below |
//! | `severity` | `event.severity` (syslog number) |
//! | `level_name` | `log.level` |
//! | `seq` | `event.sequence`; `event.id` = `observer_instance:seq` |
//! | `reason` | `event.reason` (drops have none: their `trigger`; protocol violations: `violation`) |
//! | `duration_ms` | `event.duration` (nanoseconds), `event.start` / `event.end` |
//! | `src_ip` / `src_port` | `source.ip` / `source.port` |
//! | `dst_ip` / `dst_port` | `destination.ip` / `destination.port` |
//! | `peer_ip` / `peer_port` | `destination.*` (the peer a failed send went to) |
//! | `local_ip` / `local_port` | `server.ip` / `server.port` (our bound address) |
//! | `bytes_*`, `datagrams_*` of a close | `source.bytes`/`packets` for the originator's direction, `destination.*` for the other, `network.bytes`/`packets` the sum |
//! | `transport` | `network.transport`, `network.iana_number` 17 |
//! | `community_id` | `network.community_id` |
//! | `direction` | `network.direction` (`inbound` for drops, which always are) |
//! | `rule`, `trigger` | `rule.name`, `rule.category` (also kept in `kcp.*`) |
//! | `error_code` / `error_message` / `error_type` | `error.code` / `message` / `type` |
//! | `observer_host` | `observer.hostname`, `host.name` |
//! | `observer_service` / `observer_instance` | `service.name` / `service.ephemeral_id` |
//! | `observer_version` | `observer.version` |
//! | `old_peer_ip`, `old_local_ip` | `related.ip` (also kept in `kcp.*`) |
//! | `user_id`, or `user_id_pseudonym` under hmac | `user.id` |
//! | `rule_id` / `rule_name` (alert) | `rule.id` / `rule.name` |
//! | `mitre_technique` (alert) | `threat.framework` "MITRE ATT&CK", `threat.technique.id` / `name` (the parent technique of a sub-technique), `threat.technique.subtechnique.id` / `name`, `threat.tactic.id` / `name` |
//! | `first_seen` / `last_seen` (alert) | `event.start` / `event.end` |
//! | `group_ip` (alert about one source) | `source.ip`, `related.ip` |
//! | everything else (`uid`, `conv`, `history`, counters, KCP parameters, `old_peer_*` / `old_local_*`, `*_pseudonym`, an address that is not an IP) | `kcp.<field>` |
//!
//! Categorization: every `event.type` is one ECS 9.0.0 lists in `expected_event_types` for every
//! category of the record (`network`: access, allowed, connection, denied, end, info, protocol,
//! start; `intrusion_detection`: allowed, denied, info), which is what Kibana's categorization
//! checks and `__test__/siem-validation.test.mjs` verify against the official `ecs_flat.yml`:
//!
//! | event | kind | type | outcome |
//! |---|---|---|---|
//! | listener_started | event | start | success |
//! | listener_stopped | event | end | success |
//! | connection_attempted | event | connection | unknown |
//! | connection_established | event | connection, start | success |
//! | connection_failed | event | connection, denied (a client's `handshake_timeout` or `unreachable`: connection) | failure |
//! | connection_state_updated | event | connection | success (failure for attempted or handshaking -> closed) |
//! | connection_closed | event | connection, end | success (failure for dead_link, internal_error, protocol_violation, evicted) |
//! | peer_address_changed | event | connection | success |
//! | packet_dropped | event | denied | failure |
//! | protocol_violation | event | denied | failure |
//! | error | event | info | failure |
//! | stats | metric | info | - |
//! | log_loss | event | info | failure |
//! | alert | alert | info (category intrusion_detection, network) | - |
//!
//! `error` (a failed send, ICMP report or bind) is `info` with outcome `failure` and the
//! `error.*` fields: ECS's `error` type is expected only with categories `database` and `web`
//! (and, per its definition, describes errors that are not the main purpose of the event).
//!
//! `state_updated` is deliberately not `start`/`end`: `established` and `closed` already are,
//! and counting starts must not count a connection twice.
//!
//! `peer_address_changed` (secure mode: the session followed its peer to a new address) is
//! `connection` only: ECS's `change` type is not expected with category `network`, and the
//! action (`event.action: peer_address_changed`) already says what changed. `source` /
//! `destination` are the new addresses; `old_peer_*` / `old_local_*` stay in `kcp.*` (ECS has no field for a previous
//! address), and the old IPs are added to `related.ip` so that a search by either address
//! finds the move. A client's `connection_failed` that timed out is not `denied`: nothing
//! refused it.
//!
//! `alert` (`kcp:alert`, a detector fired) is `event.kind: alert`, categories
//! `intrusion_detection` and `network`, type `info` (ECS expects it with both categories; the
//! detector observes, it does not allow or deny anything itself). It has no outcome. Its
//! threshold, window, observed value, `update` and `group` stay in `kcp.*`; a grouping address
//! under `hmac` (`group_ip_pseudonym`) stays there too.

use std::net::IpAddr;

use kcpwatch_proto::events::{EventKind, ExpandedField, Presence, Vocab, WireType};

use super::fields::{action, get_str, get_u64, ip_of, is_wildcard, Fields};
use super::json_writer::{json_escape, push_u64, Obj};
use super::meaning::{attack, outcome, severity, unrefused_failure, user_id, PRODUCT};
use super::time::timestamp;

/// The ECS version the documents follow (`ecs.version`).
pub const ECS_VERSION: &str = "9.0.0";
/// `event.dataset`: one dataset for every kcpwatch security record.
const DATASET: &str = "kcpwatch.security";

struct Categories {
    kind: &'static str,
    category: &'static [&'static str],
    types: &'static [&'static str],
}

fn categorize(r: &Fields<'_>) -> Categories {
    let Some(kind) = r.kind else {
        return Categories {
            kind: "event",
            category: &["network"],
            types: &["info"],
        };
    };
    let ecs = kind.spec().ecs;
    let types = match ecs.types_unrefused {
        Some(types) if unrefused_failure(r) => types,
        _ => ecs.types,
    };
    Categories {
        kind: ecs.kind,
        category: ecs.category,
        types,
    }
}

/// Which side the originator's byte counts go to: `Some(true)` when the originator is the
/// peer (inbound: `source.bytes` = what we received).
fn originator_is_peer(r: &Fields<'_>) -> Option<bool> {
    if r.kind != Some(EventKind::ConnectionClosed) {
        return None;
    }
    match get_str(r, "direction") {
        Some("inbound") => Some(true),
        Some("outbound") => Some(false),
        _ => None,
    }
}

/// The peer of a connection-less error is the destination, unless the record has one.
fn peer_is_destination(r: &Fields<'_>) -> bool {
    !r.has("dst_ip") && !r.has("dst_port")
}

/// What `write` and `mapped` both need, worked out once (parsing addresses is the costly part).
struct Addresses<'a> {
    src: Option<(&'a str, IpAddr)>,
    /// `dst_*`, or `peer_*` when the record has no `dst_*`.
    dst: Option<(&'a str, IpAddr)>,
    local: Option<(&'a str, IpAddr)>,
    peer_is_destination: bool,
    /// [`originator_is_peer`].
    bytes: Option<bool>,
}

impl<'a> Addresses<'a> {
    fn of(r: &Fields<'a>) -> Self {
        let peer_is_destination = peer_is_destination(r);
        Addresses {
            // An alert about one source: the source is the address it groups by.
            src: ip_of(r, "src_ip").or_else(|| {
                if r.kind == Some(EventKind::Alert) {
                    ip_of(r, "group_ip")
                } else {
                    None
                }
            }),
            dst: ip_of(
                r,
                if peer_is_destination {
                    "peer_ip"
                } else {
                    "dst_ip"
                },
            ),
            local: ip_of(r, "local_ip"),
            peer_is_destination,
            bytes: originator_is_peer(r),
        }
    }
}

/// Where the document puts a canonical field: an ECS field, `kcp.*`, or one of them depending
/// on the record. The one table of it: `write` reads it for each record, and [`kcp_fields`]
/// (from which `npm run codegen` types the index template's `kcp.*` mappings) for each declared
/// field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placement {
    /// An ECS field carries it in full, in every record.
    Ecs,
    /// `user.id`, `network.transport`: when its value is a string.
    IfString,
    /// `network.direction`: when it is `inbound` or `outbound`.
    IfDirection,
    /// `source.ip`: when it is an IP address.
    SourceIp,
    /// `source.ip` of an alert about one source, which has no `src_ip`: when it is an IP.
    GroupIp,
    /// `destination.ip`: when it is an IP address.
    DestinationIp,
    /// `server.ip`: when it is an IP address.
    LocalIp,
    /// `source.port`, `destination.port`, `server.port`: when it is a number.
    Port,
    /// `destination.ip` of a record without `dst_*` (the peer a failed send went to): when it is
    /// an IP address.
    PeerIp,
    /// `destination.port` of a record without `dst_*`: when it is a number.
    PeerPort,
    /// `rule.*`, `threat.*`, `event.start` / `end` of a `kcp:alert`: when it is a string.
    Alert,
    /// `source.bytes` / `packets`, `destination.*`, `network.*` of a close whose direction is
    /// known: when it is a number.
    Oriented,
    /// `kcp.<field>`.
    Kcp,
}

/// The table: where each canonical field goes.
fn placement(key: &str) -> Placement {
    match key {
        "ts" | "time" | "level" | "level_name" | "severity" | "name" | "seq" | "msg"
        | "observer_host" | "observer_service" | "observer_instance" | "observer_version"
        | "community_id" | "duration_ms" | "reason" | "error_code" | "error_message"
        | "error_type" => Placement::Ecs,
        "user_id" | "user_id_pseudonym" | "transport" => Placement::IfString,
        "direction" => Placement::IfDirection,
        "src_ip" => Placement::SourceIp,
        "group_ip" => Placement::GroupIp,
        "dst_ip" => Placement::DestinationIp,
        "local_ip" => Placement::LocalIp,
        "src_port" | "dst_port" | "local_port" => Placement::Port,
        "peer_ip" => Placement::PeerIp,
        "peer_port" => Placement::PeerPort,
        "rule_id" | "rule_name" | "mitre_technique" | "first_seen" | "last_seen" => {
            Placement::Alert
        }
        "bytes_received" | "bytes_sent" | "datagrams_received" | "datagrams_sent" => {
            Placement::Oriented
        }
        _ => Placement::Kcp,
    }
}

/// Whether an ECS field carries `key` of this record in full; if not, it goes to `kcp.*`.
fn mapped(r: &Fields<'_>, a: &Addresses<'_>, key: &str) -> bool {
    match placement(key) {
        Placement::Ecs => true,
        Placement::IfString => r.get(key).is_some_and(|v| v.is_string()),
        Placement::IfDirection => matches!(get_str(r, key), Some("inbound" | "outbound")),
        Placement::SourceIp => a.src.is_some(),
        Placement::GroupIp => !r.has("src_ip") && a.src.is_some(),
        Placement::DestinationIp => !a.peer_is_destination && a.dst.is_some(),
        Placement::LocalIp => a.local.is_some(),
        Placement::Port => get_u64(r, key).is_some(),
        Placement::PeerIp => a.peer_is_destination && a.dst.is_some(),
        Placement::PeerPort => a.peer_is_destination && get_u64(r, key).is_some(),
        Placement::Alert => {
            r.kind == Some(EventKind::Alert) && r.get(key).is_some_and(|v| v.is_string())
        }
        Placement::Oriented => a.bytes.is_some() && get_u64(r, key).is_some(),
        Placement::Kcp => false,
    }
}

/// What a field's value is in JSON, as its declaration says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// A string.
    String,
    /// A non-negative integer.
    Integer,
    /// `true` or `false`.
    Boolean,
}

impl ValueKind {
    /// The JSON kind of every value of a field of type `ty`; for [`WireType::Custom`], read from
    /// its schema's `type`, or from its `enum` / `const` values.
    pub fn of(ty: WireType) -> Result<ValueKind, String> {
        Ok(match ty {
            WireType::Count
            | WireType::U32
            | WireType::U16
            | WireType::Port
            | WireType::Conv
            | WireType::SeverityCode
            | WireType::PinoLevel => ValueKind::Integer,
            WireType::Bool => ValueKind::Boolean,
            WireType::Text
            | WireType::Timestamp
            | WireType::Ip
            | WireType::Pseudonym
            | WireType::Uid
            | WireType::CommunityId
            | WireType::History
            | WireType::Transport
            | WireType::Vocab(_)
            | WireType::VocabExcept(..)
            | WireType::DropRule
            | WireType::ListenerMode
            | WireType::ListenerRole
            | WireType::IpPrivacy => ValueKind::String,
            WireType::Custom { schema, .. } => custom_kind(schema)?,
        })
    }
}

fn custom_kind(schema: &str) -> Result<ValueKind, String> {
    let schema: serde_json::Value =
        serde_json::from_str(schema).map_err(|e| format!("Custom schema {schema}: {e}"))?;
    let of_value = |v: &serde_json::Value| match v {
        serde_json::Value::String(_) => Some(ValueKind::String),
        serde_json::Value::Number(n) if n.is_u64() => Some(ValueKind::Integer),
        serde_json::Value::Bool(_) => Some(ValueKind::Boolean),
        _ => None,
    };
    let kind = match schema.get("type").and_then(serde_json::Value::as_str) {
        Some("string") => Some(ValueKind::String),
        Some("integer") => Some(ValueKind::Integer),
        Some("boolean") => Some(ValueKind::Boolean),
        Some(_) => None,
        None => match (schema.get("const"), schema.get("enum")) {
            (Some(c), _) => of_value(c),
            (None, Some(serde_json::Value::Array(values))) => {
                let kinds: Vec<Option<ValueKind>> = values.iter().map(of_value).collect();
                kinds
                    .first()
                    .copied()
                    .flatten()
                    .filter(|k| kinds.iter().all(|o| *o == Some(*k)))
            }
            _ => None,
        },
    };
    kind.ok_or_else(|| {
        format!(
            "Custom schema {schema}: not one JSON type of string, non-negative integer or boolean"
        )
    })
}

/// The declared fields of `kind` that a document may carry under `kcp.*`, by the same table as
/// `write`, applied to what the catalogue declares instead of to one record: a field goes
/// there unless every record of the kind that can carry it has it in an ECS field. What the
/// declarations guarantee: a field's JSON kind ([`ValueKind`]; a [`WireType::Ip`] is an
/// address, whatever the privacy mode, which moves a hidden one to its `_pseudonym`), which
/// fields one record can carry together ([`EventSpec::may_carry_together`](kcpwatch_proto::events::EventSpec::may_carry_together)),
/// and the direction vocabulary.
pub fn kcp_fields(kind: EventKind) -> Result<Vec<ExpandedField>, String> {
    let spec = kind.spec();
    let mut out = Vec::new();
    for field in spec.all_fields() {
        let ty = field.field.ty;
        let value = ValueKind::of(ty)?;
        let key = field.name.as_str();
        let ip = ty == WireType::Ip;
        let number = value == ValueKind::Integer;
        let alongside = |other: &str| spec.may_carry_together(&[key, other]);
        let in_ecs = match placement(key) {
            Placement::Ecs => true,
            Placement::IfString => value == ValueKind::String,
            Placement::IfDirection => {
                ty == WireType::Vocab(Vocab::Direction) && directions_in_ecs()
            }
            Placement::SourceIp | Placement::LocalIp => ip,
            // A record with `dst_ip` never makes its peer the destination.
            Placement::DestinationIp => ip,
            Placement::GroupIp => ip && !alongside("src_ip"),
            Placement::Port => number,
            Placement::PeerIp | Placement::PeerPort => {
                (if key == "peer_ip" { ip } else { number })
                    && !alongside("dst_ip")
                    && !alongside("dst_port")
            }
            Placement::Alert => kind == EventKind::Alert && value == ValueKind::String,
            Placement::Oriented => {
                // `originator_is_peer`: a close with a known direction.
                kind == EventKind::ConnectionClosed
                    && number
                    && spec.all_fields().iter().any(|f| {
                        f.name == "direction"
                            && f.presence == Presence::Required
                            && f.field.ty == WireType::Vocab(Vocab::Direction)
                    })
                    && directions_in_ecs()
            }
            Placement::Kcp => false,
        };
        if !in_ecs {
            out.push(field);
        }
    }
    Ok(out)
}

/// Whether every direction the catalogue names is one `network.direction` takes.
fn directions_in_ecs() -> bool {
    Vocab::Direction
        .values()
        .iter()
        .all(|d| matches!(*d, "inbound" | "outbound"))
}

/// The field that stands for `event.reason` in records without a `reason`.
fn reason_field(r: &Fields<'_>) -> Option<&'static str> {
    r.kind?.spec().ecs.reason_field
}

pub(super) fn write(r: &Fields<'_>, out: &mut String) {
    let action = action(r);
    let cats = categorize(r);
    let time = timestamp(r);
    let mut o = Obj::begin(out);
    match get_str(r, "ts") {
        Some(ts) => o.str("@timestamp", ts),
        None => {
            if let Some(t) = time {
                o.str("@timestamp", &t.rfc3339());
            }
        }
    }
    o.opt_str("message", get_str(r, "msg"));
    o.object("ecs", |o| o.str("version", ECS_VERSION));
    o.object("event", |o| {
        o.str("kind", cats.kind);
        o.strs("category", cats.category);
        o.strs("type", cats.types);
        if !action.is_empty() {
            o.str("action", action);
        }
        if let Some(outcome) = outcome(r) {
            o.str("outcome", outcome.as_str());
        }
        let reason = get_str(r, "reason").or_else(|| reason_field(r).and_then(|k| get_str(r, k)));
        o.opt_str("reason", reason);
        if r.kind == Some(EventKind::Alert) {
            o.opt_str("start", get_str(r, "first_seen"));
            o.opt_str("end", get_str(r, "last_seen"));
        }
        if let Some(ms) = get_u64(r, "duration_ms") {
            o.num("duration", ms.saturating_mul(1_000_000));
            if let Some(end) = time {
                o.str("start", &end.minus_millis(ms).rfc3339());
                o.str("end", &end.rfc3339());
            }
        }
        o.num("severity", u64::from(severity(r)));
        if let Some(seq) = get_u64(r, "seq") {
            o.num("sequence", seq);
            if let Some(instance) = get_str(r, "observer_instance").filter(|i| !i.is_empty()) {
                o.key("id");
                write_event_id(o.out, instance, seq);
            }
        }
        o.str("dataset", DATASET);
        o.str("module", PRODUCT);
    });
    o.object("log", |o| o.opt_str("level", get_str(r, "level_name")));

    let addrs = Addresses::of(r);
    let bytes = addrs.bytes;
    let (src_bytes, src_packets, dst_bytes, dst_packets) = match bytes {
        Some(true) => (
            "bytes_received",
            "datagrams_received",
            "bytes_sent",
            "datagrams_sent",
        ),
        _ => (
            "bytes_sent",
            "datagrams_sent",
            "bytes_received",
            "datagrams_received",
        ),
    };
    o.object("source", |o| {
        o.opt_str("ip", addrs.src.map(|(t, _)| t));
        o.opt_num("port", get_u64(r, "src_port"));
        if bytes.is_some() {
            o.opt_num("bytes", get_u64(r, src_bytes));
            o.opt_num("packets", get_u64(r, src_packets));
        }
    });
    let dst_port = if addrs.peer_is_destination {
        "peer_port"
    } else {
        "dst_port"
    };
    o.object("destination", |o| {
        o.opt_str("ip", addrs.dst.map(|(t, _)| t));
        o.opt_num("port", get_u64(r, dst_port));
        if bytes.is_some() {
            o.opt_num("bytes", get_u64(r, dst_bytes));
            o.opt_num("packets", get_u64(r, dst_packets));
        }
    });
    o.object("server", |o| {
        o.opt_str("ip", addrs.local.map(|(t, _)| t));
        o.opt_num("port", get_u64(r, "local_port"));
    });

    let ips = [addrs.src, addrs.dst, addrs.local];
    o.object("network", |o| {
        let transport = get_str(r, "transport");
        o.opt_str("transport", transport);
        if transport == Some("udp") {
            o.str("iana_number", "17");
        }
        if let Some((_, ip)) = ips.iter().flatten().next() {
            o.str("type", if ip.is_ipv6() { "ipv6" } else { "ipv4" });
        }
        if r.kind != Some(EventKind::LogLoss) {
            o.str("protocol", "kcp");
        }
        o.opt_str("community_id", get_str(r, "community_id"));
        let direction = match get_str(r, "direction") {
            Some(d @ ("inbound" | "outbound")) => Some(d),
            _ if r.kind == Some(EventKind::PacketDropped) => Some("inbound"),
            _ => None,
        };
        o.opt_str("direction", direction);
        if bytes.is_some() {
            let sum = |a, b| Some(get_u64(r, a)?.saturating_add(get_u64(r, b)?));
            o.opt_num("bytes", sum("bytes_received", "bytes_sent"));
            o.opt_num("packets", sum("datagrams_received", "datagrams_sent"));
        }
    });
    // The user `authenticate` named, or its pseudonym under hmac: an opaque, stable id either way.
    if let Some(user) = user_id(r) {
        o.object("user", |o| o.str("id", user));
    }
    // The previous addresses of a session that moved (peer_address_changed).
    let old_ips = [ip_of(r, "old_peer_ip"), ip_of(r, "old_local_ip")];
    o.object("related", |o| {
        let mut related = [""; 5];
        let mut n = 0;
        for (text, ip) in ips.iter().chain(&old_ips).flatten() {
            if !is_wildcard(*ip) && !related[..n].contains(text) {
                related[n] = text;
                n += 1;
            }
        }
        if n > 0 {
            o.strs("ip", &related[..n]);
        }
    });
    let alert = r.kind == Some(EventKind::Alert);
    o.object("rule", |o| {
        if alert {
            o.opt_str("id", get_str(r, "rule_id"));
            o.opt_str("name", get_str(r, "rule_name"));
        }
        o.opt_str("name", get_str(r, "rule"));
        o.opt_str("category", get_str(r, "trigger"));
    });
    let technique = get_str(r, "mitre_technique")
        .filter(|t| alert && !t.is_empty())
        .map(attack);
    if let Some(a) = technique {
        o.object("threat", |o| {
            o.str("framework", "MITRE ATT&CK");
            o.object("technique", |o| {
                o.strs("id", &[a.technique_id]);
                if let Some(name) = a.technique_name {
                    o.strs("name", &[name]);
                }
                if let Some((id, name)) = a.subtechnique {
                    o.object("subtechnique", |o| {
                        o.strs("id", &[id]);
                        if let Some(name) = name {
                            o.strs("name", &[name]);
                        }
                    });
                }
            });
            if let Some((id, name)) = a.tactic {
                o.object("tactic", |o| {
                    o.strs("id", &[id]);
                    o.strs("name", &[name]);
                });
            }
        });
    }
    o.object("error", |o| {
        o.opt_str("code", get_str(r, "error_code"));
        o.opt_str("message", get_str(r, "error_message"));
        o.opt_str("type", get_str(r, "error_type"));
    });
    o.object("observer", |o| {
        o.opt_str("hostname", get_str(r, "observer_host"));
        o.str("product", PRODUCT);
        o.str("vendor", PRODUCT);
        o.opt_str("version", get_str(r, "observer_version"));
    });
    o.object("host", |o| o.opt_str("name", get_str(r, "observer_host")));
    o.object("service", |o| {
        o.opt_str("name", get_str(r, "observer_service"));
        o.opt_str("ephemeral_id", get_str(r, "observer_instance"));
    });
    o.object("kcp", |o| {
        for (key, value) in r.record {
            if !mapped(r, &addrs, key) {
                o.value(key, value);
            }
        }
    });
    o.end();
    out.push('\n');
}

/// `observer_instance:seq`, unique per record (docs/events.md, Sequence numbers).
fn write_event_id(out: &mut String, instance: &str, seq: u64) {
    out.push('"');
    json_escape(out, instance);
    out.push(':');
    push_u64(out, seq);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::{write as write_format, Format};

    /// The declared placement covers what the writer does: every `kcp.*` key of every record of
    /// the SIEM matrix (all events, privacy modes, secure mode) is one `kcp_fields` names for
    /// its event, so the generated index template maps it.
    #[test]
    fn kcp_fields_cover_every_kcp_key_the_writer_writes() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/siem/json.ndjson"
        );
        let text = std::fs::read_to_string(path).unwrap();
        let mut out = String::new();
        let mut checked = 0;
        for line in text.lines().filter(|l| !l.is_empty()) {
            let record: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(line).unwrap();
            let name = record["name"].as_str().unwrap();
            let kind = EventKind::from_name(name).unwrap();
            let declared: Vec<String> = kcp_fields(kind)
                .unwrap()
                .into_iter()
                .map(|f| f.name)
                .collect();
            out.clear();
            write_format(Format::Ecs, &record, &mut out);
            let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
            // An object with nothing in it is left out.
            let kcp = doc.get("kcp").and_then(serde_json::Value::as_object);
            for key in kcp.into_iter().flat_map(|o| o.keys()) {
                assert!(
                    declared.contains(key),
                    "{name}: kcp.{key} not in kcp_fields"
                );
                checked += 1;
            }
        }
        assert!(checked > 1000, "{checked} kcp.* keys checked");
    }

    #[test]
    fn custom_schemas_have_one_json_kind() {
        assert_eq!(
            custom_kind(r#"{"type":"string","maxLength":3}"#),
            Ok(ValueKind::String)
        );
        assert_eq!(
            custom_kind(r#"{"enum":["source","listener"]}"#),
            Ok(ValueKind::String)
        );
        assert_eq!(custom_kind(r#"{"const":2}"#), Ok(ValueKind::Integer));
        assert!(custom_kind(r#"{"enum":[]}"#).is_err());
        assert!(custom_kind(r#"{"type":["string","null"]}"#).is_err());
    }
}

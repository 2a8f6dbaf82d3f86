//! `ocsf`: an OCSF 1.4.0 event of class Network Activity (`class_uid` 4001, category Network
//! Activity, `category_uid` 4) per record, except `kcp:alert`, which is a Detection Finding
//! (`class_uid` 2004, category Findings, `category_uid` 2; see the end of this comment).
//!
//! Why 1.4.0: it is the first version with `connection_info.community_uid` (the Community ID
//! every other format carries), and the oldest, so the most widely accepted, that has it.
//! `__test__/siem-validation.test.mjs` validates every event kind under every privacy mode
//! against the 1.4.0 JSON Schema export pinned in `schema/official/ocsf-1.4.0/`.
//!
//! Attributes OCSF 1.4.0 marks **required** for class 4001, all always written: `activity_id`,
//! `category_uid`, `class_uid`, `metadata` (with its required `product` and `version`),
//! `severity_id`, `time`, `type_uid`. **Recommended** ones written when the record has the
//! data: `activity_name`, `category_name`, `class_name`, `type_name`, `severity`, `message`,
//! `status`/`status_id`/`status_code`/`status_detail`, `timezone_offset`, `src_endpoint`,
//! `dst_endpoint` (the class requires at least one of the two), `connection_info`, `traffic`,
//! `observables`. Optional ones used: `app_name`, `count`, `duration`, `start_time`,
//! `end_time`, `device` (host profile), `action`/`action_id`/`disposition`/`disposition_id`/
//! `firewall_rule` (security_control profile), `unmapped`.
//!
//! `activity_id` (1.4.0 values: 0 Unknown, 1 Open, 2 Close, 3 Reset, 4 Fail, 5 Refuse,
//! 6 Traffic, 7 Listen, 99 Other); `type_uid` = 400100 + `activity_id`, and `type_name` its
//! caption (`Network Activity: Other` for 99, whose own name is in `activity_name`):
//!
//! | event | activity | why |
//! |---|---|---|
//! | connection_established | 1 Open | "a new network connection was opened" |
//! | connection_closed | 2 Close | every reason; the reason is in `status_detail` and `status_id` says whether it broke. Reset (3) means a middlebox tore it down, which kcpwatch cannot see |
//! | connection_failed | 5 Refuse (4 Fail for `handshake_timeout`, `unreachable`) | we refused the attempt (or, rule `server_rejected`, the server refused ours); a timeout is a failure, not a refusal |
//! | packet_dropped | 5 Refuse | the datagram was refused (action Denied, disposition Blocked) |
//! | error | 4 Fail | a send, an ICMP report or a bind failed ("no route to host") |
//! | stats | 6 Traffic | a traffic report |
//! | listener_started | 7 Listen | "a network endpoint began listening for new network connections" |
//! | listener_stopped | 99 Other, "Stop Listening" | OCSF has no activity for it |
//! | connection_attempted | 99 Other, "Attempt" | not open yet; Open would count each connection twice |
//! | connection_state_updated | 99 Other, "State Change" | the Open/Close records already carry the transitions that matter |
//! | protocol_violation | 99 Other, "Protocol Violation" | the application's own send was refused, not the network |
//! | peer_address_changed | 99 Other, "Peer Address Change" | a live session followed its peer to a new address (NAT rebinding). Not Open (the connection was not opened again; counting opens would count it twice), not Traffic (6 is a traffic report, what `traffic` carries; this record has no counts), not Reset or Close (nothing ended). OCSF has no activity for an endpoint change, so Other with a name |
//! | log_loss | 99 Other, "Log Loss" | |
//! | unknown | 99 Other | |
//!
//! | canonical | OCSF |
//! |---|---|
//! | `ts` / `time` | `time` (epoch ms), `timezone_offset` 0 |
//! | `severity` | `severity_id`: debug/info 1 Informational, notice 2 Low, warning 3 Medium, error 4 High, critical/alert 5 Critical, emergency 6 Fatal |
//! | `msg` | `message` |
//! | `name` | `metadata.event_code` |
//! | `seq` | `metadata.sequence`; `metadata.uid` = `observer_instance:seq` |
//! | `uid` | `connection_info.uid`, `metadata.correlation_uid` |
//! | `src_*` / `dst_*` | `src_endpoint` / `dst_endpoint` {`ip`, `port`}; see below for `hmac` and `omit` |
//! | `peer_*` (no connection) | `dst_endpoint`, with `local_*` as `src_endpoint` |
//! | `local_*` alone (listener, stats, bind failure) | `dst_endpoint`; with a connection it stays in `unmapped` |
//! | `transport` | `connection_info.protocol_name`, `protocol_num` 17 |
//! | `community_id` | `connection_info.community_uid` |
//! | `direction` | `connection_info.direction_id` 1 Inbound / 2 Outbound |
//! | bytes and datagrams of a close or stats | `traffic`: `bytes_out`/`packets_out` from src to dst, `bytes_in`/`packets_in` back |
//! | `duration_ms` | `duration`, `start_time`, `end_time` |
//! | `error_code` / `error_message`, else `reason` | `status_code` / `status_detail` |
//! | `suppressed` > 0 | `count` (also kept in `unmapped`) |
//! | `rule` / `trigger` | `firewall_rule.name` / `category` (also in `unmapped`), with `action` Denied and `disposition` Blocked when this endpoint refused the datagram or attempt (not for a client's attempt that timed out or that the server rejected: those only go to `unmapped`) |
//! | `old_peer_*` / `old_local_*` (peer_address_changed) | `unmapped`; the old IPs are also `observables` (`unmapped.old_peer_ip`, `unmapped.old_local_ip`) |
//! | `observer_host` | `device.hostname` |
//! | `user_id`, or `user_id_pseudonym` under hmac | `actor.user.uid` (host profile: with `observer_host`; else `unmapped`) |
//! | `observer_service` | `app_name` |
//! | `observer_version` | `metadata.product.version` |
//! | everything else | `unmapped.<field>` |
//!
//! An endpoint object must identify the endpoint (`network_endpoint`'s constraint: at least one
//! of `ip`, `uid`, `name`, `hostname`, ...), so a port alone is never written:
//!
//! - under `hmac` the endpoint's `uid` is the address's pseudonym (`src_ip_pseudonym`, ...: a
//!   stable, keyed id of the address, never in an IP-typed attribute; also kept in `unmapped`);
//! - under `omit` this host's own side (`local_*`, the responder of an inbound connection or a
//!   dropped datagram, the originator of an outbound one) is `hostname` = `observer_host`, and
//!   the peer's side is left out (its port stays in `unmapped`);
//! - a record with no endpoint left (`log_loss`, a `protocol_violation` of a closed
//!   connection, or one whose peer was omitted and has no local side) gets `dst_endpoint`
//!   {`hostname`: `observer_host`} (`name`: `observer_service` when the host is unnamed): the
//!   host whose log it is, which satisfies the class's at-least-one-endpoint constraint.
//!
//! ## `kcp:alert`: Detection Finding (2004)
//!
//! A detector's alert is a finding about traffic, not network activity, so it is class 2004.
//! Attributes OCSF 1.4.0 marks required for it, all always written: `activity_id`,
//! `category_uid`, `class_uid`, `finding_info` (with its required `uid` and `title`),
//! `metadata`, `severity_id`, `time`, `type_uid`. Activity 1 Create for the first alert of an
//! episode, 2 Update for its periodic updates (`update: true`); `type_uid` = 200400 +
//! `activity_id`.
//!
//! | canonical | OCSF |
//! |---|---|
//! | `update` | `activity_id` 1 Create / 2 Update |
//! | `rule_id` / `rule_name` | `finding_info.analytic` {`uid`, `name`, `type_id` 1 Rule}; `rule_name` is also `finding_info.types` |
//! | `msg` | `message`, `finding_info.title` |
//! | (`observer_instance`, `rule_id`, the group, `first_seen`) | `finding_info.uid`: `<observer_instance>:<rule_id>:<group_ip, group_ip_pseudonym or group>:<first_seen ms>`, the same for an alert and its updates |
//! | `first_seen` / `last_seen` | `finding_info.first_seen_time` / `last_seen_time`, and `start_time` / `end_time` (epoch ms) |
//! | `mitre_technique` | `finding_info.attacks` [{`technique`, `sub_technique`, `tactic`}] (named for the techniques the rules use) |
//! | `group_ip` | `evidences` [{`src_endpoint`: {`ip`}}], and an `observables` entry |
//! | `severity`, `ts`, `seq`, `observer_host`, `observer_version` | as for class 4001 |
//! | everything else (`threshold`, `window_ms`, `observed`, `group`, `group_ip_pseudonym`, `observer_instance`, `observer_service`, ...) | `unmapped.<field>` (Detection Finding has no `app_name`) |
//!
//! Under `omit` (no grouping address) two sources a rule fired for in the same millisecond
//! share a `finding_info.uid`; every other mode tells them apart.

use std::fmt::Write as _;
use std::net::IpAddr;

use kcpwatch_proto::events::{Control, EventKind, OcsfSpec, Traffic};

use super::fields::{action, event_name, get_str, get_u64, ip_of, Fields};
use super::json_writer::{json_escape, push_u64, Obj};
use super::meaning::{
    attack, outcome, refused_here, severity, unrefused_failure, user_id, Outcome, PRODUCT,
};
use super::time::{rfc3339_millis, timestamp};

/// OCSF schema version of the events (`metadata.version`).
const OCSF_VERSION: &str = "1.4.0";
const FINDING_CLASS_UID: u64 = 2004;
const FINDING_CATEGORY_UID: u64 = 2;
const FINDING_CLASS_NAME: &str = "Detection Finding";
const CLASS_UID: u64 = 4001;
const CATEGORY_UID: u64 = 4;
const CLASS_NAME: &str = "Network Activity";

fn activity<'a>(r: &Fields<'a>) -> (u64, &'a str) {
    let Some(kind) = r.kind else {
        return match action(r) {
            "" => (0, "Unknown"),
            other => (99, other),
        };
    };
    match kind.spec().ocsf {
        OcsfSpec::NetworkActivity {
            activity_unrefused: Some(activity),
            ..
        } if unrefused_failure(r) => activity,
        OcsfSpec::NetworkActivity { activity, .. } => activity,
        // Written as a finding (`write_finding`); the activity of its Network Activity form.
        OcsfSpec::DetectionFinding => (99, "Alert"),
    }
}

/// Syslog severity 0-7 -> OCSF `severity_id`.
const SEVERITY_ID: [u64; 8] = [6, 5, 5, 4, 3, 2, 1, 1];

fn severity_caption(id: u64) -> &'static str {
    match id {
        1 => "Informational",
        2 => "Low",
        3 => "Medium",
        4 => "High",
        5 => "Critical",
        6 => "Fatal",
        _ => "Unknown",
    }
}

/// Where each address goes.
struct Endpoints<'a> {
    /// Canonical prefixes (`src`, `dst`, `peer`, `local`) for `src_endpoint` / `dst_endpoint`.
    src: Option<&'static str>,
    dst: Option<&'static str>,
    /// Their addresses, parsed once.
    src_ip: Option<(&'a str, IpAddr)>,
    dst_ip: Option<(&'a str, IpAddr)>,
    /// What identifies each endpoint; `None`: the endpoint is not written.
    src_id: Option<EndpointId<'a>>,
    dst_id: Option<EndpointId<'a>>,
}

fn has(r: &Fields<'_>, prefix: &str) -> bool {
    let (ip, port, pseudonym) = match prefix {
        "src" => ("src_ip", "src_port", "src_ip_pseudonym"),
        "dst" => ("dst_ip", "dst_port", "dst_ip_pseudonym"),
        "peer" => ("peer_ip", "peer_port", "peer_ip_pseudonym"),
        _ => ("local_ip", "local_port", "local_ip_pseudonym"),
    };
    r.has(ip) || r.has(port) || r.has(pseudonym)
}

fn endpoints<'a>(r: &Fields<'a>) -> Endpoints<'a> {
    let (src, dst) = if has(r, "src") || has(r, "dst") {
        (
            has(r, "src").then_some("src"),
            has(r, "dst").then_some("dst"),
        )
    } else if has(r, "peer") {
        (has(r, "local").then_some("local"), Some("peer"))
    } else {
        (None, has(r, "local").then_some("local"))
    };
    let src_ip = endpoint_ip(r, src);
    let dst_ip = endpoint_ip(r, dst);
    Endpoints {
        src,
        dst,
        src_ip,
        dst_ip,
        src_id: src.and_then(|p| endpoint_id(r, p, src_ip)),
        dst_id: dst.and_then(|p| endpoint_id(r, p, dst_ip)),
    }
}

/// Whether byte counts are oriented peer -> us (`Some(true)`) or us -> peer: closes by their
/// direction, stats like inbound traffic (the listener is the responder).
fn traffic_from_peer(r: &Fields<'_>) -> Option<bool> {
    match r.kind?.spec().ocsf {
        OcsfSpec::NetworkActivity {
            traffic: Traffic::ByDirection,
            ..
        } => match get_str(r, "direction") {
            Some("inbound") => Some(true),
            Some("outbound") => Some(false),
            _ => None,
        },
        OcsfSpec::NetworkActivity {
            traffic: Traffic::FromPeer,
            ..
        } => Some(true),
        OcsfSpec::NetworkActivity {
            traffic: Traffic::Unoriented,
            ..
        }
        | OcsfSpec::DetectionFinding => None,
    }
}

/// Canonical fields carried in full by an OCSF attribute; the rest go to `unmapped`.
fn mapped(r: &Fields<'_>, e: &Endpoints<'_>, key: &str) -> bool {
    match key {
        "ts" | "time" | "level" | "level_name" | "severity" | "name" | "seq" | "msg"
        | "observer_host" | "observer_service" | "observer_version" | "uid" | "community_id"
        | "duration_ms" | "error_code" | "error_message" => true,
        // `actor` belongs to the host profile, written when the host is named.
        "user_id" | "user_id_pseudonym" => {
            r.get(key).is_some_and(|v| v.is_string())
                && get_str(r, "observer_host").is_some_and(|h| !h.is_empty())
        }
        "transport" => r.get(key).is_some_and(|v| v.is_string()),
        "direction" => matches!(get_str(r, key), Some("inbound" | "outbound")),
        "reason" => !r.has("error_message"),
        "bytes_received" | "bytes_sent" | "datagrams_received" | "datagrams_sent" => {
            traffic_from_peer(r).is_some() && get_u64(r, key).is_some()
        }
        _ => {
            let Some((prefix, field)) = key.split_once('_') else {
                return false;
            };
            let (used, ip) = if e.src == Some(prefix) {
                (e.src_id.is_some(), e.src_ip)
            } else if e.dst == Some(prefix) {
                (e.dst_id.is_some(), e.dst_ip)
            } else {
                (false, None)
            };
            used && match field {
                "ip" => ip.is_some(),
                "port" => get_u64(r, key).is_some(),
                _ => false,
            }
        }
    }
}

/// Whether the endpoint a canonical prefix names is this host's own address: `local_*`, and
/// the responder (`dst_*`) of an inbound connection or a dropped datagram, the originator
/// (`src_*`) of an outbound one.
fn is_local(r: &Fields<'_>, prefix: &str) -> bool {
    match prefix {
        "local" => true,
        "dst" => {
            get_str(r, "direction") == Some("inbound") || r.kind == Some(EventKind::PacketDropped)
        }
        "src" => get_str(r, "direction") == Some("outbound"),
        _ => false,
    }
}

/// What identifies an endpoint, as OCSF's `network_endpoint` requires at least one of `ip`,
/// `uid`, `hostname`, ...: its address; under `hmac` its pseudonym as `uid` (a stable id of
/// the address, not an address); under `omit`, for this host's own side, `observer_host`.
/// `None` for a peer whose address was omitted: the object would hold only a port, which OCSF
/// does not accept, so it is left out (the port stays in `unmapped`).
#[derive(Clone, Copy)]
enum EndpointId<'a> {
    Ip(&'a str),
    Uid(&'a str),
    Hostname(&'a str),
}

fn endpoint_id<'a>(
    r: &Fields<'a>,
    prefix: &str,
    ip: Option<(&'a str, IpAddr)>,
) -> Option<EndpointId<'a>> {
    let pseudonym = match prefix {
        "src" => "src_ip_pseudonym",
        "dst" => "dst_ip_pseudonym",
        "peer" => "peer_ip_pseudonym",
        _ => "local_ip_pseudonym",
    };
    if let Some((text, _)) = ip {
        return Some(EndpointId::Ip(text));
    }
    if let Some(p) = get_str(r, pseudonym).filter(|p| !p.is_empty()) {
        return Some(EndpointId::Uid(p));
    }
    get_str(r, "observer_host")
        .filter(|h| !h.is_empty() && is_local(r, prefix))
        .map(EndpointId::Hostname)
}

/// Writes `src_endpoint` / `dst_endpoint` from a canonical prefix; returns whether it was
/// written (see [`EndpointId`]).
fn endpoint(o: &mut Obj<'_>, key: &str, r: &Fields<'_>, prefix: &str, id: EndpointId<'_>) {
    let port = match prefix {
        "src" => "src_port",
        "dst" => "dst_port",
        "peer" => "peer_port",
        _ => "local_port",
    };
    o.object(key, |o| {
        match id {
            EndpointId::Ip(ip) => o.str("ip", ip),
            EndpointId::Uid(uid) => o.str("uid", uid),
            EndpointId::Hostname(host) => o.str("hostname", host),
        }
        o.opt_num("port", get_u64(r, port));
    });
}

fn endpoint_ip<'a>(r: &Fields<'a>, prefix: Option<&str>) -> Option<(&'a str, IpAddr)> {
    match prefix? {
        "src" => ip_of(r, "src_ip"),
        "dst" => ip_of(r, "dst_ip"),
        "peer" => ip_of(r, "peer_ip"),
        _ => ip_of(r, "local_ip"),
    }
}

/// The firewall control fields (`action_id`, `action`, `disposition_id`, `disposition`):
/// what this endpoint let in or turned away.
fn control(r: &Fields<'_>) -> Option<(u64, &'static str, u64, &'static str)> {
    match r.kind?.spec().control {
        Control::Blocked | Control::BlockedUnlessUnrefused if refused_here(r) => {
            Some((2, "Denied", 2, "Blocked"))
        }
        Control::Allowed => Some((1, "Allowed", 1, "Allowed")),
        Control::Blocked
        | Control::BlockedUnlessUnrefused
        | Control::None
        | Control::RefusedMessage => None,
    }
}

pub(super) fn write(r: &Fields<'_>, out: &mut String) {
    if matches!(
        r.kind.map(|k| k.spec().ocsf),
        Some(OcsfSpec::DetectionFinding)
    ) {
        return write_finding(r, out);
    }
    let (activity_id, activity_name) = activity(r);
    let severity_id = SEVERITY_ID[usize::from(severity(r))];
    let ends = endpoints(r);
    let time = timestamp(r);
    let mut o = Obj::begin(out);
    o.num("activity_id", activity_id);
    o.str("activity_name", activity_name);
    o.num("category_uid", CATEGORY_UID);
    o.str("category_name", CLASS_NAME);
    o.num("class_uid", CLASS_UID);
    o.str("class_name", CLASS_NAME);
    o.num("type_uid", CLASS_UID * 100 + activity_id);
    // The caption of `type_uid`, which for 99 is "Other" whatever `activity_name` says.
    let type_caption = if activity_id == 99 {
        "Other"
    } else {
        activity_name
    };
    o.str_parts("type_name", &[CLASS_NAME, ": ", type_caption]);
    o.num("time", time.map_or(0, |t| t.unix_millis()));
    o.num("timezone_offset", 0);
    o.num("severity_id", severity_id);
    o.str("severity", severity_caption(severity_id));
    if let Some(outcome) = outcome(r) {
        let (id, caption) = match outcome {
            Outcome::Success => (1, "Success"),
            Outcome::Failure => (2, "Failure"),
            Outcome::Unknown => (0, "Unknown"),
        };
        o.num("status_id", id);
        o.str("status", caption);
    }
    o.opt_str("status_code", get_str(r, "error_code"));
    o.opt_str(
        "status_detail",
        get_str(r, "error_message").or_else(|| get_str(r, "reason")),
    );
    o.opt_str("message", get_str(r, "msg"));
    if let Some(ms) = get_u64(r, "duration_ms") {
        o.num("duration", ms);
        if let Some(end) = time {
            o.num("start_time", end.minus_millis(ms).unix_millis());
            o.num("end_time", end.unix_millis());
        }
    }
    if let Some(n) = get_u64(r, "suppressed").filter(|&n| n > 0) {
        o.num("count", n);
    }
    o.opt_str("app_name", get_str(r, "observer_service"));

    let control = control(r);
    if let Some((action_id, action_caption, disposition_id, disposition)) = control {
        o.num("action_id", action_id);
        o.str("action", action_caption);
        o.num("disposition_id", disposition_id);
        o.str("disposition", disposition);
        o.object("firewall_rule", |o| {
            o.opt_str("name", get_str(r, "rule"));
            o.opt_str("category", get_str(r, "trigger"));
        });
    }

    if let (Some(prefix), Some(id)) = (ends.src, ends.src_id) {
        endpoint(&mut o, "src_endpoint", r, prefix, id);
    }
    if let (Some(prefix), Some(id)) = (ends.dst, ends.dst_id) {
        endpoint(&mut o, "dst_endpoint", r, prefix, id);
    }
    if ends.src_id.is_none() && ends.dst_id.is_none() {
        // No endpoint (log_loss, protocol_violation of a closed connection, or a peer whose
        // address was omitted): the class needs one of the two, and the endpoint the record is
        // about is this host, known by its name, else by the service's.
        o.object("dst_endpoint", |o| {
            match get_str(r, "observer_host").filter(|h| !h.is_empty()) {
                Some(host) => o.str("hostname", host),
                None => o.str(
                    "name",
                    get_str(r, "observer_service")
                        .filter(|s| !s.is_empty())
                        .unwrap_or(PRODUCT),
                ),
            }
        });
    }

    let (src_ip, dst_ip) = (ends.src_ip, ends.dst_ip);
    o.object("connection_info", |o| {
        o.opt_str("uid", get_str(r, "uid"));
        o.opt_str("community_uid", get_str(r, "community_id"));
        if let Some(transport) = get_str(r, "transport") {
            o.str("protocol_name", transport);
            if transport == "udp" {
                o.num("protocol_num", 17);
            }
            if let Some((_, ip)) = src_ip.or(dst_ip) {
                o.num("protocol_ver_id", if ip.is_ipv6() { 6 } else { 4 });
            }
        }
        let direction = match get_str(r, "direction") {
            Some("inbound") => Some((1, "Inbound")),
            Some("outbound") => Some((2, "Outbound")),
            _ if r.kind == Some(EventKind::PacketDropped) => Some((1, "Inbound")),
            _ => None,
        };
        if let Some((id, caption)) = direction {
            o.num("direction_id", id);
            o.str("direction", caption);
        }
    });
    if let Some(from_peer) = traffic_from_peer(r) {
        let (out_bytes, out_packets, in_bytes, in_packets) = if from_peer {
            (
                "bytes_received",
                "datagrams_received",
                "bytes_sent",
                "datagrams_sent",
            )
        } else {
            (
                "bytes_sent",
                "datagrams_sent",
                "bytes_received",
                "datagrams_received",
            )
        };
        o.object("traffic", |o| {
            let b_out = get_u64(r, out_bytes);
            let b_in = get_u64(r, in_bytes);
            let p_out = get_u64(r, out_packets);
            let p_in = get_u64(r, in_packets);
            o.opt_num("bytes_out", b_out);
            o.opt_num("bytes_in", b_in);
            o.opt_num("packets_out", p_out);
            o.opt_num("packets_in", p_in);
            if let (Some(a), Some(b)) = (b_out, b_in) {
                o.num("bytes", a.saturating_add(b));
            }
            if let (Some(a), Some(b)) = (p_out, p_in) {
                o.num("packets", a.saturating_add(b));
            }
        });
    }

    let host = device(&mut o, r);
    if host.is_some() {
        if let Some(user) = user_id(r) {
            o.object("actor", |o| {
                o.object("user", |o| o.str("uid", user));
            });
        }
    }

    let mark = o.mark();
    o.key("observables");
    o.out.push('[');
    let mut first = true;
    let mut observable =
        |out: &mut String, name: &str, type_id: u64, caption: &str, value: &str| {
            if !first {
                out.push(',');
            }
            first = false;
            let _ = write!(
                out,
                "{{\"name\":\"{name}\",\"type_id\":{type_id},\"type\":\"{caption}\",\"value\":\""
            );
            json_escape(out, value);
            out.push_str("\"}");
        };
    if let Some((text, _)) = src_ip {
        observable(o.out, "src_endpoint.ip", 2, "IP Address", text);
    }
    if let Some((text, _)) = dst_ip {
        observable(o.out, "dst_endpoint.ip", 2, "IP Address", text);
    }
    if let Some(host) = host {
        observable(o.out, "device.hostname", 1, "Hostname", host);
    }
    // The previous addresses of a session that moved stay in `unmapped`, and are indexed here.
    for (key, name) in [
        ("old_peer_ip", "unmapped.old_peer_ip"),
        ("old_local_ip", "unmapped.old_local_ip"),
    ] {
        if let Some((text, _)) = ip_of(r, key) {
            observable(o.out, name, 2, "IP Address", text);
        }
    }
    if first {
        o.undo(mark);
    } else {
        o.out.push(']');
    }

    let profiles: &[&str] = match (control.is_some(), host.is_some()) {
        (true, true) => &["host", "security_control"],
        (true, false) => &["security_control"],
        (false, true) => &["host"],
        (false, false) => &[],
    };
    metadata(&mut o, r, profiles);
    o.object("unmapped", |o| {
        for (key, value) in r.record {
            if !mapped(r, &ends, key) {
                o.value(key, value);
            }
        }
    });
    o.end();
    out.push('\n');
}

/// The host profile's `device`, written when the host is named; returns its name.
fn device<'a>(o: &mut Obj<'_>, r: &Fields<'a>) -> Option<&'a str> {
    let host = get_str(r, "observer_host").filter(|h| !h.is_empty())?;
    o.object("device", |o| {
        o.str("hostname", host);
        o.num("type_id", 0);
        o.str("type", "Unknown");
    });
    Some(host)
}

fn metadata(o: &mut Obj<'_>, r: &Fields<'_>, profiles: &[&str]) {
    o.object("metadata", |o| {
        o.str("version", OCSF_VERSION);
        o.object("product", |o| {
            o.str("name", PRODUCT);
            o.str("vendor_name", PRODUCT);
            o.opt_str("version", get_str(r, "observer_version"));
        });
        o.str("log_name", "kcpwatch.security");
        o.str("log_provider", PRODUCT);
        let name = event_name(r);
        if !name.is_empty() {
            o.str("event_code", name);
        }
        if let Some(seq) = get_u64(r, "seq") {
            o.num("sequence", seq);
            if let Some(instance) = get_str(r, "observer_instance").filter(|i| !i.is_empty()) {
                o.key("uid");
                o.out.push('"');
                json_escape(o.out, instance);
                o.out.push(':');
                push_u64(o.out, seq);
                o.out.push('"');
            }
        }
        o.opt_str("correlation_uid", get_str(r, "uid"));
        if !profiles.is_empty() {
            o.strs("profiles", profiles);
        }
    });
}

/// Canonical fields a Detection Finding attribute carries in full; the rest go to `unmapped`.
fn finding_mapped(r: &Fields<'_>, key: &str) -> bool {
    match key {
        "ts" | "time" | "level" | "level_name" | "severity" | "name" | "seq" | "msg"
        | "observer_host" | "observer_version" => true,
        "rule_id" | "rule_name" | "mitre_technique" | "first_seen" | "last_seen" => {
            r.get(key).is_some_and(|v| v.is_string())
        }
        "update" => r.get(key).is_some_and(|v| v.is_boolean()),
        "group_ip" => ip_of(r, key).is_some(),
        _ => false,
    }
}

/// `kcp:alert` as a Detection Finding (class 2004).
fn write_finding(r: &Fields<'_>, out: &mut String) {
    let update = r.get("update").and_then(|v| v.as_bool()) == Some(true);
    let (activity_id, activity_name) = if update { (2, "Update") } else { (1, "Create") };
    let severity_id = SEVERITY_ID[usize::from(severity(r))];
    let time = timestamp(r);
    let first_seen = rfc3339_millis(r, "first_seen");
    let last_seen = rfc3339_millis(r, "last_seen");
    let group_ip = ip_of(r, "group_ip");
    let mut o = Obj::begin(out);
    o.num("activity_id", activity_id);
    o.str("activity_name", activity_name);
    o.num("category_uid", FINDING_CATEGORY_UID);
    o.str("category_name", "Findings");
    o.num("class_uid", FINDING_CLASS_UID);
    o.str("class_name", FINDING_CLASS_NAME);
    o.num("type_uid", FINDING_CLASS_UID * 100 + activity_id);
    o.str_parts("type_name", &[FINDING_CLASS_NAME, ": ", activity_name]);
    o.num("time", time.map_or(0, |t| t.unix_millis()));
    o.num("timezone_offset", 0);
    o.num("severity_id", severity_id);
    o.str("severity", severity_caption(severity_id));
    o.opt_str("message", get_str(r, "msg"));
    o.opt_num("start_time", first_seen);
    o.opt_num("end_time", last_seen);
    o.object("finding_info", |o| {
        let rule_id = get_str(r, "rule_id").unwrap_or("");
        let group = get_str(r, "group_ip")
            .or_else(|| get_str(r, "group_ip_pseudonym"))
            .or_else(|| get_str(r, "group"))
            .unwrap_or("");
        let mut seen = String::new();
        push_u64(&mut seen, first_seen.unwrap_or(0));
        o.str_parts(
            "uid",
            &[
                get_str(r, "observer_instance").unwrap_or(""),
                ":",
                rule_id,
                ":",
                group,
                ":",
                &seen,
            ],
        );
        let title = get_str(r, "msg")
            .filter(|m| !m.is_empty())
            .or_else(|| get_str(r, "rule_name"))
            .unwrap_or("kcpwatch alert");
        o.str("title", title);
        let rule_name = get_str(r, "rule_name").filter(|n| !n.is_empty());
        if let Some(name) = rule_name {
            o.strs("types", &[name]);
        }
        o.object("analytic", |o| {
            o.opt_str("uid", Some(rule_id));
            o.opt_str("name", rule_name);
            o.num("type_id", 1);
            o.str("type", "Rule");
        });
        if let Some(a) = get_str(r, "mitre_technique")
            .filter(|t| !t.is_empty())
            .map(attack)
        {
            o.key("attacks");
            o.out.push('[');
            let mut attack_obj = Obj::begin(o.out);
            attack_obj.object("technique", |o| {
                o.str("uid", a.technique_id);
                o.opt_str("name", a.technique_name);
            });
            if let Some((uid, name)) = a.subtechnique {
                attack_obj.object("sub_technique", |o| {
                    o.str("uid", uid);
                    o.opt_str("name", name);
                });
            }
            if let Some((uid, name)) = a.tactic {
                attack_obj.object("tactic", |o| {
                    o.str("uid", uid);
                    o.str("name", name);
                });
            }
            attack_obj.end();
            o.out.push(']');
        }
        o.opt_num("first_seen_time", first_seen);
        o.opt_num("last_seen_time", last_seen);
        o.strs("data_sources", &["kcpwatch detectors"]);
    });
    if let Some((text, _)) = group_ip {
        o.key("evidences");
        o.out.push_str("[{\"src_endpoint\":{\"ip\":");
        super::json_writer::json_str(o.out, text);
        o.out.push_str("}}]");
    }
    let host = device(&mut o, r);
    let entries: [Option<(&str, u64, &str, &str)>; 2] = [
        group_ip.map(|(text, _)| ("evidences.src_endpoint.ip", 2, "IP Address", text)),
        host.map(|h| ("device.hostname", 1, "Hostname", h)),
    ];
    if entries.iter().any(Option::is_some) {
        o.key("observables");
        o.out.push('[');
        let mut first = true;
        for (name, type_id, caption, value) in entries.into_iter().flatten() {
            if !first {
                o.out.push(',');
            }
            first = false;
            let _ = write!(
                o.out,
                "{{\"name\":\"{name}\",\"type_id\":{type_id},\"type\":\"{caption}\",\"value\":\""
            );
            json_escape(o.out, value);
            o.out.push_str("\"}");
        }
        o.out.push(']');
    }
    metadata(&mut o, r, if host.is_some() { &["host"] } else { &[] });
    o.object("unmapped", |o| {
        for (key, value) in r.record {
            if !finding_mapped(r, key) {
                o.value(key, value);
            }
        }
    });
    o.end();
    out.push('\n');
}

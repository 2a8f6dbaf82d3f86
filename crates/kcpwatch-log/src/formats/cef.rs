//! `cef`: one ArcSight Common Event Format (CEF:0) line per record:
//!
//! ```text
//! CEF:0|kcpwatch|kcpwatch|<observer_version>|<name>|<title>|<severity 0-10>|<extensions>
//! ```
//!
//! The signature id is the event name (`kcp:connection_closed`), the name a fixed title per
//! event ("Connection closed"). Severity 0-10 from syslog: emergency 10, alert 9, critical 8,
//! error 7, warning 6, notice 4, info 2, debug 0 (CEF bands: 0-3 low, 4-6 medium, 7-8 high,
//! 9-10 very high).
//!
//! Escaping: in the header `\` and `|` (the CEF rules); in extension values `\`, `=`, and line
//! breaks as `\n` / `\r` (the CEF rules). Line breaks in the header are written as `\n` / `\r`
//! too: CEF does not define them there, and a raw one would split the record.
//!
//! | canonical | CEF key |
//! |---|---|
//! | `time` | `rt` (epoch ms; CEF has no finer time, so `ts`'s microseconds are not carried) |
//! | `seq` | `externalId` |
//! | `src_ip` / `src_port` | `src` (IPv4) or `c6a2` "Source IPv6 Address" / `spt` |
//! | `dst_ip` / `dst_port`, or `peer_*` without a connection | `dst` or `c6a3` "Destination IPv6 Address" / `dpt` |
//! | `local_ip` | `dvc` or `c6a4` "Device IPv6 Address" (`local_port` is a custom key) |
//! | `transport` | `proto` (`UDP`) |
//! | `direction` | `deviceDirection` (0 inbound, 1 outbound) |
//! | `bytes_*` of a close | `in` (source to destination) / `out` |
//! | `duration_ms` of a close | `cn3`, and `start` / `end` (epoch ms) |
//! | `conv`, `suppressed` | `cn1`, `cn2` (labels `conv`, `suppressed`) |
//! | `uid`, `community_id`, `rule`, `trigger`, `history`, `observer_service` | `cs1` .. `cs6` (labels: the field names) |
//! | `user_id`, or `user_id_pseudonym` under hmac | `suser` (sourceUserName: the connection's user) |
//! | `reason` | `reason` |
//! | `observer_host` / `observer_instance` | `dvchost` / `deviceExternalId` |
//! | `msg` | `msg` |
//! | everything else | custom key `KcpwatchKcpwatch<Field>` (CEF's VendornameProductnameKeyName form; `error_code` -> `KcpwatchKcpwatchErrorCode`) |
//!
//! Also written, derived: `act` (`blocked` for drops and attempts this endpoint refused, none
//! for a client's attempt that timed out or that the server rejected; `refused` for a refused
//! send) and `outcome` (`success` / `failure` / `unknown`).
//!
//! `kcp:alert` (a detector fired) is the exception to the header rule: its signature id is the
//! rule id (`KCPW-001`), its name the rule name (`handshake_flood_source`), and the event name
//! goes to `cat` (deviceEventCategory). Severity as for every record (alert 9 for KCPW-002 and
//! KCPW-005, warning 6 for the others). `group_ip` is `src` (or `c6a2`); `first_seen` /
//! `last_seen` are `start` / `end` (epoch ms: they have millisecond precision, so nothing is
//! lost); `threshold`, `window_ms`, `observed`, `update`, `group`, `mitre_technique` and
//! `group_ip_pseudonym` are custom keys (`KcpwatchKcpwatchMitreTechnique`, ...).
//!
//! `kcp:peer_address_changed` (signature id the event name, title "Peer address changed")
//! carries the new addresses in `src` / `dst` like any connection record; CEF has no key for a
//! previous address, so `old_peer_ip` / `old_peer_port` / `old_local_ip` / `old_local_port`
//! are custom keys (`KcpwatchKcpwatchOldPeerIp`, ...). A `kcp:connection_failed` without
//! `trigger` has no `cs4`.

use std::fmt::Write as _;
use std::net::IpAddr;

use kcpwatch_proto::events::{Control, EventKind};

use super::fields::{action, event_name, get_str, get_u64, Fields};
use super::json_writer::push_u64;
use super::meaning::{outcome, refused_here, severity, PRODUCT};
use super::text::{escape_ascii, scalar_text};
use super::time::timestamp;

/// Custom extension keys start with the vendor and product names, as CEF asks.
pub(super) const CUSTOM_PREFIX: &str = "KcpwatchKcpwatch";

/// Syslog severity 0-7 -> CEF severity 0-10.
const SEVERITY: [u8; 8] = [10, 9, 8, 7, 6, 4, 2, 0];

/// The CEF header's name column: the catalogue's title, or the action of an unknown event.
fn title<'a>(r: &Fields<'a>, action: &'a str) -> &'a str {
    r.kind.map_or(action, |kind| kind.spec().cef_title)
}

fn header_escape(out: &mut String, s: &str) {
    escape_ascii(out, s, |b| match b {
        b'\\' => Some("\\\\"),
        b'|' => Some("\\|"),
        b'\n' => Some("\\n"),
        b'\r' => Some("\\r"),
        _ => None,
    });
}

fn value_escape(out: &mut String, s: &str) {
    escape_ascii(out, s, |b| match b {
        b'\\' => Some("\\\\"),
        b'=' => Some("\\="),
        b'\n' => Some("\\n"),
        b'\r' => Some("\\r"),
        _ => None,
    });
}

struct Ext<'a> {
    out: &'a mut String,
    first: bool,
}

impl Ext<'_> {
    fn key(&mut self, key: &str) {
        if !self.first {
            self.out.push(' ');
        }
        self.first = false;
        self.out.push_str(key);
        self.out.push('=');
    }

    fn str(&mut self, key: &str, value: &str) {
        self.key(key);
        value_escape(self.out, value);
    }

    fn num(&mut self, key: &str, value: u64) {
        self.key(key);
        push_u64(self.out, value);
    }

    /// A custom-slot key (`cs1`, `c6a2`, ...) and the `<key>Label` that names it.
    fn labeled(&mut self, key: &str, label: &str, value: &str) {
        self.str(key, value);
        self.label(key, label);
    }

    fn label(&mut self, key: &str, label: &str) {
        self.out.push(' ');
        self.out.push_str(key);
        self.out.push_str("Label=");
        value_escape(self.out, label);
    }

    fn custom(&mut self, field: &str, value: &str) {
        if !self.first {
            self.out.push(' ');
        }
        self.first = false;
        self.out.push_str(CUSTOM_PREFIX);
        // snake_case -> PascalCase; anything but letters and digits separates words.
        for word in field.split(|c: char| !c.is_ascii_alphanumeric()) {
            let mut chars = word.chars();
            if let Some(first) = chars.next() {
                self.out.push(first.to_ascii_uppercase());
                self.out.push_str(chars.as_str());
            }
        }
        self.out.push('=');
        value_escape(self.out, value);
    }
}

/// The peer of a connection-less error is the destination, unless the record has one.
fn peer_is_destination(r: &Fields<'_>) -> bool {
    !r.has("dst_ip") && !r.has("dst_port")
}

/// An address in `src`/`dst`/`dvc` (IPv4) or the matching IPv6 custom address key.
fn address(ext: &mut Ext<'_>, v4_key: &str, v6: (&str, &str), field: &str, text: &str) {
    match text.parse::<IpAddr>() {
        Ok(IpAddr::V4(_)) => ext.str(v4_key, text),
        Ok(IpAddr::V6(_)) => ext.labeled(v6.0, v6.1, text),
        Err(_) => ext.custom(field, text),
    }
}

/// `act`: what this endpoint did about it, where it did something.
fn act(r: &Fields<'_>) -> Option<&'static str> {
    match r.kind?.spec().control {
        Control::Blocked | Control::BlockedUnlessUnrefused if refused_here(r) => Some("blocked"),
        Control::RefusedMessage => Some("refused"),
        Control::Blocked | Control::BlockedUnlessUnrefused | Control::None | Control::Allowed => {
            None
        }
    }
}

pub(super) fn write(r: &Fields<'_>, out: &mut String) {
    let action = action(r);
    // An alert is known by its rule: the rule id and name are its signature id and name.
    let alert = r.kind == Some(EventKind::Alert);
    let rule_header = if alert {
        get_str(r, "rule_id").zip(get_str(r, "rule_name"))
    } else {
        None
    };
    out.push_str("CEF:0|");
    out.push_str(PRODUCT);
    out.push('|');
    out.push_str(PRODUCT);
    out.push('|');
    header_escape(out, get_str(r, "observer_version").unwrap_or(""));
    out.push('|');
    match rule_header {
        Some((id, name)) => {
            header_escape(out, id);
            out.push('|');
            header_escape(out, name);
        }
        None => {
            header_escape(out, event_name(r));
            out.push('|');
            header_escape(out, title(r, action));
        }
    }
    let _ = write!(out, "|{}|", SEVERITY[usize::from(severity(r))]);

    let closed_direction = if r.kind == Some(EventKind::ConnectionClosed) {
        get_str(r, "direction").filter(|d| matches!(*d, "inbound" | "outbound"))
    } else {
        None
    };
    let mut scratch = String::new();
    let mut ext = Ext { out, first: true };
    if !r.has("time") {
        if let Some(t) = timestamp(r) {
            ext.num("rt", t.unix_millis());
        }
    }
    if rule_header.is_some() {
        ext.str("cat", event_name(r));
    }
    for (key, value) in r.record {
        let text = value.as_str();
        let number = value.as_u64();
        match (key.as_str(), text, number) {
            ("ts" | "level" | "level_name" | "severity" | "name" | "observer_version", _, _) => {}
            ("rule_id" | "rule_name", Some(_), _) if rule_header.is_some() => {}
            ("group_ip", Some(s), _) if alert => {
                address(&mut ext, "src", ("c6a2", "Source IPv6 Address"), key, s)
            }
            ("first_seen" | "last_seen", Some(s), _) if alert && millis(s).is_some() => {
                let key = if key == "first_seen" { "start" } else { "end" };
                ext.num(key, millis(s).unwrap_or(0));
            }
            ("time", _, Some(n)) => ext.num("rt", n),
            ("seq", _, Some(n)) => ext.num("externalId", n),
            ("observer_host", Some(s), _) => ext.str("dvchost", s),
            ("observer_instance", Some(s), _) => ext.str("deviceExternalId", s),
            ("src_ip", Some(s), _) => {
                address(&mut ext, "src", ("c6a2", "Source IPv6 Address"), key, s)
            }
            ("src_port", _, Some(n)) => ext.num("spt", n),
            ("dst_ip", Some(s), _) => address(
                &mut ext,
                "dst",
                ("c6a3", "Destination IPv6 Address"),
                key,
                s,
            ),
            ("peer_ip", Some(s), _) if peer_is_destination(r) => address(
                &mut ext,
                "dst",
                ("c6a3", "Destination IPv6 Address"),
                key,
                s,
            ),
            ("dst_port", _, Some(n)) => ext.num("dpt", n),
            ("peer_port", _, Some(n)) if peer_is_destination(r) => ext.num("dpt", n),
            ("local_ip", Some(s), _) => {
                address(&mut ext, "dvc", ("c6a4", "Device IPv6 Address"), key, s)
            }
            ("transport", Some(s), _) => ext.str("proto", &s.to_ascii_uppercase()),
            ("direction", Some("inbound"), _) => ext.num("deviceDirection", 0),
            ("direction", Some("outbound"), _) => ext.num("deviceDirection", 1),
            ("bytes_received" | "bytes_sent", _, Some(n)) if closed_direction.is_some() => {
                // `in` is what flowed from source to destination: for an inbound connection
                // the source is the peer, so what we received.
                let from_source =
                    (key == "bytes_received") == (closed_direction == Some("inbound"));
                ext.num(if from_source { "in" } else { "out" }, n);
            }
            ("conv", _, Some(n)) => labeled_num(&mut ext, "cn1", key, n),
            ("suppressed", _, Some(n)) => labeled_num(&mut ext, "cn2", key, n),
            ("duration_ms", _, Some(n)) => labeled_num(&mut ext, "cn3", key, n),
            ("uid", Some(s), _) => ext.labeled("cs1", key, s),
            ("user_id" | "user_id_pseudonym", Some(s), _) => ext.str("suser", s),
            ("community_id", Some(s), _) => ext.labeled("cs2", key, s),
            ("rule", Some(s), _) => ext.labeled("cs3", key, s),
            ("trigger", Some(s), _) => ext.labeled("cs4", key, s),
            ("history", Some(s), _) => ext.labeled("cs5", key, s),
            ("observer_service", Some(s), _) => ext.labeled("cs6", key, s),
            ("reason", Some(s), _) => ext.str("reason", s),
            ("msg", Some(s), _) => ext.str("msg", s),
            _ => {
                let text = scalar_text(value, &mut scratch);
                ext.custom(key, text);
            }
        }
    }
    if closed_direction.is_some() {
        if let (Some(end), Some(ms)) = (timestamp(r), get_u64(r, "duration_ms")) {
            ext.num("start", end.minus_millis(ms).unix_millis());
            ext.num("end", end.unix_millis());
        }
    }
    if let Some(act) = act(r) {
        ext.str("act", act);
    }
    if let Some(outcome) = outcome(r) {
        ext.str("outcome", outcome.as_str());
    }
    ext.out.push('\n');
}

/// An RFC 3339 time as Unix milliseconds, when it is one with no finer part (so that CEF's
/// millisecond `start` / `end` carry it exactly).
fn millis(text: &str) -> Option<u64> {
    let t = humantime::parse_rfc3339(text).ok()?;
    let d = t.duration_since(std::time::UNIX_EPOCH).ok()?;
    (d.subsec_micros() % 1000 == 0).then_some(d.as_millis() as u64)
}

fn labeled_num(ext: &mut Ext<'_>, key: &str, label: &str, n: u64) {
    ext.num(key, n);
    ext.label(key, label);
}

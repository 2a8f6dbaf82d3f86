//! Reading a canonical record: the fields the formats ask for, found in one pass, and the
//! event it names.

use std::net::IpAddr;

use kcpwatch_proto::events::EventKind;
use serde_json::{Map, Value};

pub(super) type Record = Map<String, Value>;

/// The record with the fields the formats ask for found in one pass: a map lookup hashes the
/// key, and a format asks for dozens of fields per record.
pub(super) struct Fields<'a> {
    pub(super) record: &'a Record,
    slots: [Option<&'a Value>; SLOTS],
    /// The event, parsed once from `name`; `None` for a name not in the catalogue (a record
    /// from a newer version, or none at all).
    pub(super) kind: Option<EventKind>,
}

pub(super) const SLOTS: usize = 42;

/// The slot of a field the formats look up; `SLOTS` for any other.
pub(super) fn slot(key: &str) -> usize {
    match key {
        "ts" => 0,
        "time" => 1,
        "level_name" => 2,
        "severity" => 3,
        "name" => 4,
        "seq" => 5,
        "msg" => 6,
        "observer_host" => 7,
        "observer_service" => 8,
        "observer_instance" => 9,
        "observer_version" => 10,
        "uid" => 11,
        "direction" => 12,
        "src_ip" => 13,
        "src_port" => 14,
        "dst_ip" => 15,
        "dst_port" => 16,
        "peer_ip" => 17,
        "peer_port" => 18,
        "local_ip" => 19,
        "local_port" => 20,
        "src_ip_pseudonym" => 21,
        "dst_ip_pseudonym" => 22,
        "peer_ip_pseudonym" => 23,
        "local_ip_pseudonym" => 24,
        "transport" => 25,
        "community_id" => 26,
        "reason" => 27,
        "trigger" => 28,
        "rule" => 29,
        "violation" => 30,
        "duration_ms" => 31,
        "bytes_received" => 32,
        "bytes_sent" => 33,
        "datagrams_received" => 34,
        "datagrams_sent" => 35,
        "error_code" => 36,
        "error_message" => 37,
        "error_type" => 38,
        "suppressed" => 39,
        "prev_state" => 40,
        "state" => 41,
        _ => SLOTS,
    }
}

impl<'a> Fields<'a> {
    pub(super) fn of(record: &'a Record) -> Self {
        let mut slots = [None; SLOTS];
        for (key, value) in record {
            if let Some(s) = slots.get_mut(slot(key)) {
                *s = Some(value);
            }
        }
        let kind = slots[slot("name")]
            .and_then(Value::as_str)
            .and_then(|name| EventKind::from_action(name.strip_prefix("kcp:").unwrap_or(name)));
        Fields {
            record,
            slots,
            kind,
        }
    }

    pub(super) fn get(&self, key: &str) -> Option<&'a Value> {
        match self.slots.get(slot(key)) {
            Some(value) => *value,
            None => self.record.get(key),
        }
    }

    pub(super) fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }
}

pub(super) fn get_str<'a>(r: &Fields<'a>, key: &str) -> Option<&'a str> {
    r.get(key).and_then(Value::as_str)
}

pub(super) fn get_u64(r: &Fields<'_>, key: &str) -> Option<u64> {
    r.get(key).and_then(Value::as_u64)
}

/// `name`, e.g. `kcp:connection_closed`.
pub(super) fn event_name<'a>(r: &Fields<'a>) -> &'a str {
    get_str(r, "name").unwrap_or("")
}

/// The event name without its `kcp:` prefix, e.g. `connection_closed`.
pub(super) fn action<'a>(r: &Fields<'a>) -> &'a str {
    let name = event_name(r);
    name.strip_prefix("kcp:").unwrap_or(name)
}

/// A parsed IP address text, when it is one (a privacy mode may have replaced it).
pub(super) fn ip_of<'a>(r: &Fields<'a>, key: &str) -> Option<(&'a str, IpAddr)> {
    let text = get_str(r, key)?;
    text.parse().ok().map(|ip| (text, ip))
}

pub(super) fn is_wildcard(ip: IpAddr) -> bool {
    ip.is_unspecified()
}

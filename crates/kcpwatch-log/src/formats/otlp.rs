//! `otlp`: OpenTelemetry logs in the OTLP/JSON encoding, one `ExportLogsServiceRequest` per
//! record (what an OTLP/HTTP `POST /v1/logs` with `Content-Type: application/json` takes, and
//! what the OpenTelemetry Collector's file exporter writes one per line):
//!
//! ```text
//! {"resourceLogs":[{"resource":{"attributes":[service.name, service.instance.id, host.name]},
//!   "scopeLogs":[{"scope":{"name":"kcpwatch","version":<observer_version>},
//!     "logRecords":[{"timeUnixNano","observedTimeUnixNano","severityNumber","severityText",
//!                    "body":{"stringValue":<msg>},"eventName":<name>,"attributes":[...]}]}]}]}
//! ```
//!
//! - Resource: `service.name` = `observer_service`, `service.instance.id` = `observer_instance`
//!   (one listener run, what the semantic conventions mean by an instance), `host.name` =
//!   `observer_host`. `observer_version` is kcpwatch's version, not the game's, so it is the
//!   instrumentation scope's `version`, not `service.version`.
//! - `timeUnixNano` from `ts`; `observedTimeUnixNano` is the same instant (the record is
//!   written when it is observed; a format cannot read the clock and stay a pure function).
//!   Both are strings, as the protobuf JSON mapping writes 64-bit integers.
//! - `severityNumber` per the Logs Data Model's syslog mapping (Appendix B): debug 5 DEBUG,
//!   info 9 INFO, notice 10 INFO2, warning 13 WARN, error 17 ERROR, critical 18 ERROR2, alert
//!   19 ERROR3, emergency 21 FATAL. `severityText` is `level_name`, the source's own name, as
//!   the data model asks.
//! - `eventName` (LogRecord field 12) is `name`; the `event.name` attribute repeats it for
//!   receivers older than that field.
//! - Attributes: `src_*` -> `source.address` / `source.port`, `dst_*` -> `destination.*`,
//!   `peer_*` -> `network.peer.*`, `local_*` -> `network.local.*`, `transport` ->
//!   `network.transport`, `user_id` (or `user_id_pseudonym` under hmac) -> `user.id`; every
//!   other field as `kcp.<field>`. Integers are `intValue` strings,
//!   booleans `boolValue`, text `stringValue` (a counter beyond 2^63 would be a `stringValue`).

use std::fmt::Write as _;

use serde_json::Value;

use super::fields::{get_str, Fields};
use super::json_writer::{json_str, push_number};
use super::meaning::{severity, PRODUCT};
use super::time::timestamp;
use super::FormatOptions;

/// Syslog severity 0-7 -> OTLP SeverityNumber.
const SEVERITY_NUMBER: [u8; 8] = [21, 19, 18, 17, 13, 10, 9, 5];

fn any_value(out: &mut String, v: &Value) {
    match v {
        Value::String(s) => {
            out.push_str("{\"stringValue\":");
            json_str(out, s);
            out.push('}');
        }
        Value::Bool(b) => {
            let _ = write!(out, "{{\"boolValue\":{b}}}");
        }
        Value::Number(n) => {
            if n.is_i64() {
                out.push_str("{\"intValue\":\"");
                push_number(out, n);
                out.push_str("\"}");
            } else if n.is_u64() {
                out.push_str("{\"stringValue\":\"");
                push_number(out, n);
                out.push_str("\"}");
            } else {
                let _ = write!(out, "{{\"doubleValue\":{n}}}");
            }
        }
        Value::Array(items) => {
            out.push_str("{\"arrayValue\":{\"values\":[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                any_value(out, item);
            }
            out.push_str("]}}");
        }
        Value::Object(map) => {
            out.push_str("{\"kvlistValue\":{\"values\":[");
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                key_value(out, &[k], item);
            }
            out.push_str("]}}");
        }
        Value::Null => out.push_str("{}"),
    }
}

/// `{"key":<parts joined>,"value":<AnyValue>}`.
fn key_value(out: &mut String, key: &[&str], v: &Value) {
    out.push_str("{\"key\":\"");
    for part in key {
        super::json_writer::json_escape(out, part);
    }
    out.push_str("\",\"value\":");
    any_value(out, v);
    out.push('}');
}

fn attribute_name(key: &str) -> [&str; 2] {
    let semconv = match key {
        "src_ip" => "source.address",
        "src_port" => "source.port",
        "dst_ip" => "destination.address",
        "dst_port" => "destination.port",
        "peer_ip" => "network.peer.address",
        "peer_port" => "network.peer.port",
        "local_ip" => "network.local.address",
        "local_port" => "network.local.port",
        "transport" => "network.transport",
        "user_id" | "user_id_pseudonym" => "user.id",
        _ => return ["kcp.", key],
    };
    ["", semconv]
}

pub(super) fn write(r: &Fields<'_>, options: &FormatOptions, out: &mut String) {
    let host = options
        .hostname
        .as_deref()
        .or_else(|| get_str(r, "observer_host"));
    out.push_str("{\"resourceLogs\":[{\"resource\":{\"attributes\":[");
    let mut first = true;
    for (key, value) in [
        ("service.name", get_str(r, "observer_service")),
        ("service.instance.id", get_str(r, "observer_instance")),
        ("host.name", host),
    ] {
        let Some(value) = value.filter(|v| !v.is_empty()) else {
            continue;
        };
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str("{\"key\":\"");
        out.push_str(key);
        out.push_str("\",\"value\":{\"stringValue\":");
        json_str(out, value);
        out.push_str("}}");
    }
    out.push_str("]},\"scopeLogs\":[{\"scope\":{\"name\":\"");
    out.push_str(PRODUCT);
    out.push('"');
    if let Some(version) = get_str(r, "observer_version") {
        out.push_str(",\"version\":");
        json_str(out, version);
    }
    out.push_str("},\"logRecords\":[{");
    let nanos = timestamp(r).map_or(0, |t| t.unix_nanos());
    let _ = write!(
        out,
        "\"timeUnixNano\":\"{nanos}\",\"observedTimeUnixNano\":\"{nanos}\""
    );
    let sev = severity(r);
    let _ = write!(
        out,
        ",\"severityNumber\":{}",
        SEVERITY_NUMBER[usize::from(sev)]
    );
    out.push_str(",\"severityText\":");
    json_str(
        out,
        get_str(r, "level_name").unwrap_or(super::meaning::SEVERITY_NAMES[usize::from(sev)]),
    );
    if let Some(msg) = get_str(r, "msg") {
        out.push_str(",\"body\":{\"stringValue\":");
        json_str(out, msg);
        out.push('}');
    }
    let name = get_str(r, "name");
    if let Some(name) = name {
        out.push_str(",\"eventName\":");
        json_str(out, name);
    }
    out.push_str(",\"attributes\":[");
    let mut first = true;
    if let Some(name) = name {
        out.push_str("{\"key\":\"event.name\",\"value\":{\"stringValue\":");
        json_str(out, name);
        out.push_str("}}");
        first = false;
    }
    let host_in_resource = options.hostname.is_none();
    for (key, value) in r.record {
        let skip = match key.as_str() {
            "ts" | "time" | "msg" | "name" | "level" | "level_name" | "severity"
            | "observer_service" | "observer_instance" | "observer_version" => true,
            "observer_host" => host_in_resource,
            _ => false,
        };
        if skip {
            continue;
        }
        if !first {
            out.push(',');
        }
        first = false;
        key_value(out, &attribute_name(key), value);
    }
    out.push_str("]}]}]}]}\n");
}

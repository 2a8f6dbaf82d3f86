//! `gelf`: one GELF 1.1 message per record, JSON on one line.
//!
//! | canonical | GELF |
//! |---|---|
//! | (constant) | `version` "1.1" |
//! | `observer_host` (or the configured host name) | `host` |
//! | `msg` | `short_message` (the event name if a record had none: GELF requires it) |
//! | `ts` | `timestamp`: seconds with six decimals |
//! | `severity` | `level` (syslog severity, what GELF's `level` is) |
//! | every other field, `observer_host` included | `_<field>` |
//!
//! GELF allows only strings and numbers in additional fields, so booleans become `"true"` /
//! `"false"`. `full_message` is not written: `msg` is the whole message. A field called `id`
//! would be `_id`, which GELF reserves; it is written as `_kcp_id` (no current field is).
//! Framing (a NUL after each message over TCP, chunking over UDP) is the sink's.

use super::fields::{get_str, Fields};
use super::json_writer::{json_escape, json_str, json_value, Obj};
use super::meaning::{severity, PRODUCT};
use super::time::timestamp;
use super::FormatOptions;
use serde_json::Value;

pub(super) fn write(r: &Fields<'_>, options: &FormatOptions, out: &mut String) {
    let mut o = Obj::begin(out);
    o.str("version", "1.1");
    let host = options
        .hostname
        .as_deref()
        .or_else(|| get_str(r, "observer_host"))
        .filter(|h| !h.is_empty())
        .unwrap_or(PRODUCT);
    o.str("host", host);
    let short = get_str(r, "msg")
        .filter(|m| !m.is_empty())
        .or_else(|| get_str(r, "name"))
        .unwrap_or(PRODUCT);
    o.str("short_message", short);
    if let Some(t) = timestamp(r) {
        o.key("timestamp");
        t.write_seconds(o.out);
    }
    o.num("level", u64::from(severity(r)));
    for (key, value) in r.record {
        if key == "msg" || key == "ts" {
            continue;
        }
        // Additional field names must match ^[\w\.\-]*$.
        o.member();
        o.out.push_str("\"_");
        if key == "id" {
            o.out.push_str("kcp_id");
        } else {
            for c in key.chars() {
                o.out.push(
                    if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                        c
                    } else {
                        '_'
                    },
                );
            }
        }
        o.out.push_str("\":");
        match value {
            Value::Bool(b) => json_str(o.out, if *b { "true" } else { "false" }),
            Value::Number(_) | Value::String(_) => json_value(o.out, value),
            Value::Null => o.out.push_str("\"\""),
            other => {
                let mut text = String::new();
                json_value(&mut text, other);
                o.out.push('"');
                json_escape(o.out, &text);
                o.out.push('"');
            }
        }
    }
    o.end();
    out.push('\n');
}

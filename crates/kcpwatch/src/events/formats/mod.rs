//! Output formats other than the canonical NDJSON: each one is a pure function of one parsed
//! canonical record (`canonical.rs`, `docs/events.md`), so every format says the same thing and
//! a record can be re-rendered later from a canonical log.
//!
//! They run on the log thread, never on the I/O thread or the game's event loop. Each call
//! appends exactly one record to a caller-owned `String` (reused between records), ending it
//! with `\n`; transport framing (octet counting, NUL-terminated GELF, HTTP batching) is the
//! sink's business.
//!
//! | format | module | shape |
//! |---|---|---|
//! | `json` | [`Format::Json`] | the canonical record itself |
//! | `ecs` | [`Format::Ecs`] | Elastic Common Schema 9.x document, nested JSON |
//! | `ocsf` | [`Format::Ocsf`] | OCSF 1.3.0 Network Activity (class 4001) |
//! | `cef` | [`Format::Cef`] | ArcSight CEF:0 line |
//! | `rfc5424` | [`Format::Rfc5424`] | syslog line with an SD-ELEMENT holding every field |
//! | `gelf` | [`Format::Gelf`] | GELF 1.1 JSON |
//! | `hec` | [`Format::SplunkHec`] | Splunk HTTP Event Collector event |
//! | `otlp` | [`Format::OtlpJson`] | OTLP/JSON `ExportLogsServiceRequest` with one log record |
//!
//! Fields the records do not have yet (`*_ip_pseudonym`, `ip_privacy`, `kcp:alert`) are
//! handled already, so that the formats do not lag behind the catalog: every format carries
//! fields it has no mapping for under its own vendor namespace instead of dropping them.

mod cef;
mod ecs;
mod gelf;
mod hec;
mod json;
mod ocsf;
mod otlp;
mod rfc5424;

use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::{Duration, UNIX_EPOCH};

use serde_json::{Map, Value};

/// One output format of the security records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// The canonical record, re-serialized (one JSON object per line).
    Json,
    /// Elastic Common Schema 9.x.
    Ecs,
    /// OCSF 1.3.0, class Network Activity (4001).
    Ocsf,
    /// ArcSight Common Event Format, version 0.
    Cef,
    /// Syslog (RFC 5424) with structured data.
    Rfc5424,
    /// Graylog Extended Log Format 1.1.
    Gelf,
    /// Splunk HTTP Event Collector (`/services/collector/event`).
    SplunkHec,
    /// OpenTelemetry logs, OTLP/JSON encoding.
    OtlpJson,
}

impl Format {
    /// Every format, in documentation order.
    pub const ALL: [Format; 8] = [
        Format::Json,
        Format::Ecs,
        Format::Ocsf,
        Format::Cef,
        Format::Rfc5424,
        Format::Gelf,
        Format::SplunkHec,
        Format::OtlpJson,
    ];

    /// The format called `name`: the names of [`Format::name`] (what `log.format` and
    /// `--log-format` accept), case-insensitively, plus a few spelled-out aliases.
    pub fn from_name(name: &str) -> Option<Self> {
        const NAMES: [(&str, Format); 14] = [
            ("json", Format::Json),
            ("ndjson", Format::Json),
            ("ecs", Format::Ecs),
            ("ocsf", Format::Ocsf),
            ("cef", Format::Cef),
            ("rfc5424", Format::Rfc5424),
            ("syslog", Format::Rfc5424),
            ("gelf", Format::Gelf),
            ("hec", Format::SplunkHec),
            ("splunk", Format::SplunkHec),
            ("splunk_hec", Format::SplunkHec),
            ("otlp", Format::OtlpJson),
            ("otlp_json", Format::OtlpJson),
            ("otlp-json", Format::OtlpJson),
        ];
        let name = name.trim();
        NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|&(_, f)| f)
    }

    /// The short name, as the JavaScript options spell it.
    pub fn name(&self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Ecs => "ecs",
            Format::Ocsf => "ocsf",
            Format::Cef => "cef",
            Format::Rfc5424 => "rfc5424",
            Format::Gelf => "gelf",
            Format::SplunkHec => "hec",
            Format::OtlpJson => "otlp",
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Settings of the formats that are not in the record. Everything is optional; `None` means
/// the default named on each field. [`FormatOptions::DEFAULT`] is usable in `const` context so
/// that [`write`] allocates nothing for its options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatOptions {
    /// Syslog facility of RFC 5424 lines, 0-23 (default 16, `local0`: kcpwatch is an
    /// application, and sites route local facilities themselves; 13 "log audit" is the other
    /// common choice for security logs).
    pub syslog_facility: u8,
    /// RFC 5424 APP-NAME (default `kcpwatch`).
    pub app_name: Option<String>,
    /// Host name for RFC 5424 HOSTNAME, GELF `host`, HEC `host` and OTLP `host.name` (default:
    /// the record's `observer_host`).
    pub hostname: Option<String>,
    /// RFC 5424 SD-ID (default `kcp@32473`). 32473 is the private enterprise number RFC 5612
    /// reserves for documentation; a deployment with its own number may use it here.
    pub sd_id: Option<String>,
    /// Splunk HEC `index` (default: omitted, the token's default index).
    pub hec_index: Option<String>,
    /// Splunk HEC `source` (default `kcpwatch`).
    pub hec_source: Option<String>,
    /// Splunk HEC `sourcetype` (default `kcpwatch:event`).
    pub hec_sourcetype: Option<String>,
}

impl FormatOptions {
    /// The defaults.
    pub const DEFAULT: FormatOptions = FormatOptions {
        syslog_facility: 16,
        app_name: None,
        hostname: None,
        sd_id: None,
        hec_index: None,
        hec_source: None,
        hec_sourcetype: None,
    };
}

impl Default for FormatOptions {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Appends one record in `format` to `out` (one line, newline-terminated), with the default
/// [`FormatOptions`].
pub fn write(format: Format, record: &Map<String, Value>, out: &mut String) {
    write_with(format, record, &FormatOptions::DEFAULT, out);
}

/// Appends one record in `format` to `out` (one line, newline-terminated).
///
/// Never fails: a record missing fields gives a record missing the matching fields (a
/// malformed canonical record is a kcpwatch bug, and losing the whole security record over it
/// would be worse).
pub fn write_with(
    format: Format,
    record: &Map<String, Value>,
    options: &FormatOptions,
    out: &mut String,
) {
    match format {
        Format::Json => json::write(record, out),
        Format::Ecs => ecs::write(record, out),
        Format::Ocsf => ocsf::write(record, out),
        Format::Cef => cef::write(record, out),
        Format::Rfc5424 => rfc5424::write(record, options, out),
        Format::Gelf => gelf::write(record, options, out),
        Format::SplunkHec => hec::write(record, options, out),
        Format::OtlpJson => otlp::write(record, options, out),
    }
}

// ---------------------------------------------------------------------------------------------
// What the formats share: reading the record, its time, severity and outcome, and JSON output.

type Record = Map<String, Value>;

/// Vendor and product in every format's product fields.
const PRODUCT: &str = "kcpwatch";

fn get_str<'a>(r: &'a Record, key: &str) -> Option<&'a str> {
    r.get(key).and_then(Value::as_str)
}

fn get_u64(r: &Record, key: &str) -> Option<u64> {
    r.get(key).and_then(Value::as_u64)
}

/// `name`, e.g. `kcp:connection_closed`.
fn event_name(r: &Record) -> &str {
    get_str(r, "name").unwrap_or("")
}

/// The event name without its `kcp:` prefix, e.g. `connection_closed`.
fn action(r: &Record) -> &str {
    let name = event_name(r);
    name.strip_prefix("kcp:").unwrap_or(name)
}

const SEVERITY_NAMES: [&str; 8] = [
    "emergency",
    "alert",
    "critical",
    "error",
    "warning",
    "notice",
    "info",
    "debug",
];

/// Syslog severity 0-7: `severity`, else `level_name`, else info (6).
fn severity(r: &Record) -> u8 {
    if let Some(code) = get_u64(r, "severity") {
        return code.min(7) as u8;
    }
    get_str(r, "level_name")
        .and_then(|n| SEVERITY_NAMES.iter().position(|s| *s == n))
        .map_or(6, |i| i as u8)
}

/// A parsed IP address text, when it is one (a privacy mode may have replaced it).
fn ip_of<'a>(r: &'a Record, key: &str) -> Option<(&'a str, IpAddr)> {
    let text = get_str(r, key)?;
    text.parse().ok().map(|ip| (text, ip))
}

fn is_wildcard(ip: IpAddr) -> bool {
    ip.is_unspecified()
}

/// How an event turned out, the same in ECS `event.outcome`, OCSF `status_id` and CEF
/// `outcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Success,
    Failure,
    Unknown,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Unknown => "unknown",
        }
    }
}

/// Close reasons that mean the connection broke rather than ended.
fn abnormal_close(reason: &str) -> bool {
    matches!(
        reason,
        "dead_link" | "internal_error" | "protocol_violation" | "evicted"
    )
}

/// `None` for records that report rather than do something (`stats`, `alert`, unknown ones).
fn outcome(r: &Record) -> Option<Outcome> {
    Some(match action(r) {
        "listener_started" | "listener_stopped" | "connection_established" => Outcome::Success,
        "connection_attempted" => Outcome::Unknown,
        "connection_failed" | "packet_dropped" | "protocol_violation" | "error" | "log_loss" => {
            Outcome::Failure
        }
        "connection_state_updated" => {
            if get_str(r, "prev_state") == Some("attempted") && get_str(r, "state") == Some("closed")
            {
                Outcome::Failure
            } else {
                Outcome::Success
            }
        }
        "connection_closed" => {
            if get_str(r, "reason").is_some_and(abnormal_close) {
                Outcome::Failure
            } else {
                Outcome::Success
            }
        }
        _ => return None,
    })
}

/// An instant with microsecond precision, the precision of `ts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Timestamp {
    micros: u64,
}

impl Timestamp {
    fn unix_millis(self) -> u64 {
        self.micros / 1000
    }

    fn unix_nanos(self) -> u128 {
        u128::from(self.micros) * 1000
    }

    /// Seconds with six decimals, as a JSON number (GELF, HEC).
    fn write_seconds(self, out: &mut String) {
        let _ = write!(
            out,
            "{}.{:06}",
            self.micros / 1_000_000,
            self.micros % 1_000_000
        );
    }

    fn rfc3339(self) -> String {
        humantime::format_rfc3339_micros(UNIX_EPOCH + Duration::from_micros(self.micros))
            .to_string()
    }

    fn minus_millis(self, ms: u64) -> Self {
        Timestamp {
            micros: self.micros.saturating_sub(ms.saturating_mul(1000)),
        }
    }
}

/// The record's time: `ts` (microseconds), else `time` (milliseconds).
fn timestamp(r: &Record) -> Option<Timestamp> {
    if let Some(ts) = get_str(r, "ts") {
        if let Ok(t) = humantime::parse_rfc3339(ts) {
            if let Ok(d) = t.duration_since(UNIX_EPOCH) {
                return Some(Timestamp {
                    micros: d.as_micros() as u64,
                });
            }
        }
    }
    get_u64(r, "time").map(|ms| Timestamp {
        micros: ms.saturating_mul(1000),
    })
}

/// Appends `s` as a JSON string literal.
fn json_str(out: &mut String, s: &str) {
    out.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Appends any JSON value (the records are flat, but nothing here assumes it).
fn json_value(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::String(s) => json_str(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => json_object(out, map),
    }
}

fn json_object(out: &mut String, map: &Map<String, Value>) {
    out.push('{');
    for (i, (k, item)) in map.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_str(out, k);
        out.push(':');
        json_value(out, item);
    }
    out.push('}');
}

/// A scalar as text (CEF, syslog, GELF values): strings as they are, numbers and booleans as
/// JSON writes them, anything else as JSON.
fn scalar_text<'a>(v: &'a Value, scratch: &'a mut String) -> &'a str {
    match v {
        Value::String(s) => s,
        Value::Bool(true) => "true",
        Value::Bool(false) => "false",
        Value::Null => "",
        other => {
            scratch.clear();
            match other {
                Value::Number(n) => {
                    let _ = write!(scratch, "{n}");
                }
                _ => json_value(scratch, other),
            }
            scratch
        }
    }
}

/// A JSON object being written: keys are added in order, and a nested object that ends up
/// empty is taken back out, so optional groups need no look-ahead.
struct Obj<'a> {
    out: &'a mut String,
    empty: bool,
}

impl<'a> Obj<'a> {
    fn begin(out: &'a mut String) -> Self {
        out.push('{');
        Obj { out, empty: true }
    }

    fn end(self) {
        self.out.push('}');
    }

    fn key(&mut self, key: &str) {
        if !self.empty {
            self.out.push(',');
        }
        self.empty = false;
        json_str(self.out, key);
        self.out.push(':');
    }

    fn str(&mut self, key: &str, value: &str) {
        self.key(key);
        json_str(self.out, value);
    }

    fn opt_str(&mut self, key: &str, value: Option<&str>) {
        if let Some(value) = value {
            self.str(key, value);
        }
    }

    fn num(&mut self, key: &str, value: impl std::fmt::Display) {
        self.key(key);
        let _ = write!(self.out, "{value}");
    }

    fn opt_num(&mut self, key: &str, value: Option<u64>) {
        if let Some(value) = value {
            self.num(key, value);
        }
    }

    fn value(&mut self, key: &str, value: &Value) {
        self.key(key);
        json_value(self.out, value);
    }

    fn strs(&mut self, key: &str, values: &[&str]) {
        self.key(key);
        self.out.push('[');
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            json_str(self.out, v);
        }
        self.out.push(']');
    }

    fn object(&mut self, key: &str, body: impl FnOnce(&mut Obj<'_>)) {
        let mark = self.out.len();
        let was_empty = self.empty;
        self.key(key);
        let mut child = Obj::begin(self.out);
        body(&mut child);
        let child_empty = child.empty;
        child.end();
        if child_empty {
            self.out.truncate(mark);
            self.empty = was_empty;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for f in Format::ALL {
            assert_eq!(Format::from_name(f.name()), Some(f));
            assert_eq!(Format::from_name(&f.name().to_uppercase()), Some(f));
        }
        assert_eq!(Format::from_name("splunk_hec"), Some(Format::SplunkHec));
        assert_eq!(Format::from_name("xml"), None);
    }

    #[test]
    fn json_strings_escape_controls() {
        let mut out = String::new();
        json_str(&mut out, "a\"b\\c\nd\u{1}é");
        assert_eq!(out, r#""a\"b\\c\nd\u0001é""#);
    }

    #[test]
    fn empty_groups_vanish() {
        let mut out = String::new();
        let mut o = Obj::begin(&mut out);
        o.str("a", "1");
        o.object("empty", |_| {});
        o.object("full", |o| o.num("n", 2));
        o.end();
        assert_eq!(out, r#"{"a":"1","full":{"n":2}}"#);
    }

    #[test]
    fn timestamp_prefers_ts() {
        let r: Record = serde_json::from_str(
            r#"{"ts":"2025-11-26T15:13:20.412305Z","time":1764170000412}"#,
        )
        .unwrap();
        let t = timestamp(&r).unwrap();
        assert_eq!(t.micros, 1_764_170_000_412_305);
        assert_eq!(t.rfc3339(), "2025-11-26T15:13:20.412305Z");
        let mut s = String::new();
        t.write_seconds(&mut s);
        assert_eq!(s, "1764170000.412305");
        let r: Record = serde_json::from_str(r#"{"time":1764170000412}"#).unwrap();
        assert_eq!(timestamp(&r).unwrap().micros, 1_764_170_000_412_000);
    }
}

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
//! | `ocsf` | [`Format::Ocsf`] | OCSF 1.4.0 Network Activity (class 4001); Detection Finding (2004) for `kcp:alert` |
//! | `cef` | [`Format::Cef`] | ArcSight CEF:0 line |
//! | `rfc5424` | [`Format::Rfc5424`] | syslog line with an SD-ELEMENT holding every field |
//! | `gelf` | [`Format::Gelf`] | GELF 1.1 JSON |
//! | `hec` | [`Format::SplunkHec`] | Splunk HTTP Event Collector event |
//! | `otlp` | [`Format::OtlpJson`] | OTLP/JSON `ExportLogsServiceRequest` with one log record |
//!
//! Fields are not dropped: every format carries the fields it has no mapping for under its own
//! vendor namespace (`kcp.*` in ECS, `unmapped` in OCSF, custom keys in CEF, ...), so new
//! catalog fields appear in every format before anyone maps them (the only losses: CEF's time
//! is in milliseconds, and formats with a severity field leave out the pino `level` and
//! `level_name`, which follow from it). Privacy-mode fields
//! (`*_ip_pseudonym`, `ip_privacy`) never land in an IP-typed field.
//!
//! `kcp:alert` (a detector fired, `docs/detection.md`) is the one record that is a finding rather
//! than an observation: ECS `event.kind: alert` with `rule.*`, `threat.*` and the grouping
//! address as `source.ip`; OCSF class Detection Finding (2004) instead of Network Activity; CEF
//! with the rule id and name as signature id and name. The other formats carry it like any
//! record.
//!
//! `kcp:peer_address_changed` maps like any connection record for its new addresses; its
//! `old_peer_*` / `old_local_*` have no standard home in any of these schemas and stay in the
//! vendor namespace (ECS also lists the old IPs in `related.ip`, OCSF in `observables`). A
//! `kcp:connection_failed` without `trigger` (an attempt the application refused, or a
//! client's handshake that timed out or that the server refused) simply has no rule category.

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

use kcpwatch_proto::events::{abnormal_close, Control, EventKind, OutcomeRule, UNREFUSED_FAILURES};
use kcpwatch_proto::CloseReason;
use serde_json::{Map, Value};

/// One output format of the security records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// The canonical record, re-serialized (one JSON object per line).
    Json,
    /// Elastic Common Schema 9.x.
    Ecs,
    /// OCSF 1.4.0, class Network Activity (4001); `kcp:alert` as a Detection Finding (2004).
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
/// that [`write()`] allocates nothing for its options.
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
    if format == Format::Json {
        return json::write(record, out);
    }
    let fields = Fields::of(record);
    match format {
        Format::Json => {} // written above, from the record itself
        Format::Ecs => ecs::write(&fields, out),
        Format::Ocsf => ocsf::write(&fields, out),
        Format::Cef => cef::write(&fields, out),
        Format::Rfc5424 => rfc5424::write(&fields, options, out),
        Format::Gelf => gelf::write(&fields, options, out),
        Format::SplunkHec => hec::write(&fields, options, out),
        Format::OtlpJson => otlp::write(&fields, options, out),
    }
}

// ---------------------------------------------------------------------------------------------
// What the formats share: reading the record, its time, severity and outcome, and JSON output.

type Record = Map<String, Value>;

/// Vendor and product in every format's product fields.
const PRODUCT: &str = "kcpwatch";

/// The record with the fields the formats ask for found in one pass: a map lookup hashes the
/// key, and a format asks for dozens of fields per record.
struct Fields<'a> {
    record: &'a Record,
    slots: [Option<&'a Value>; SLOTS],
    /// The event, parsed once from `name`; `None` for a name not in the catalogue (a record
    /// from a newer version, or none at all).
    kind: Option<EventKind>,
}

const SLOTS: usize = 42;

/// The slot of a field the formats look up; `SLOTS` for any other.
fn slot(key: &str) -> usize {
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
    fn of(record: &'a Record) -> Self {
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

    fn get(&self, key: &str) -> Option<&'a Value> {
        match self.slots.get(slot(key)) {
            Some(value) => *value,
            None => self.record.get(key),
        }
    }

    fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }
}

fn get_str<'a>(r: &Fields<'a>, key: &str) -> Option<&'a str> {
    r.get(key).and_then(Value::as_str)
}

fn get_u64(r: &Fields<'_>, key: &str) -> Option<u64> {
    r.get(key).and_then(Value::as_u64)
}

/// `name`, e.g. `kcp:connection_closed`.
fn event_name<'a>(r: &Fields<'a>) -> &'a str {
    get_str(r, "name").unwrap_or("")
}

/// The event name without its `kcp:` prefix, e.g. `connection_closed`.
fn action<'a>(r: &Fields<'a>) -> &'a str {
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
fn severity(r: &Fields<'_>) -> u8 {
    if let Some(code) = get_u64(r, "severity") {
        return code.min(7) as u8;
    }
    get_str(r, "level_name")
        .and_then(|n| SEVERITY_NAMES.iter().position(|s| *s == n))
        .map_or(6, |i| i as u8)
}

/// A parsed IP address text, when it is one (a privacy mode may have replaced it).
fn ip_of<'a>(r: &Fields<'a>, key: &str) -> Option<(&'a str, IpAddr)> {
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

/// Whether `reason` is a close reason that means the connection broke rather than ended.
fn abnormal_close_reason(reason: &str) -> bool {
    CloseReason::ALL
        .into_iter()
        .find(|r| r.as_str() == reason)
        .is_some_and(abnormal_close)
}

/// A `connection_failed` whose reason says this endpoint refused nothing
/// ([`UNREFUSED_FAILURES`]): a client's own attempt that timed out or that ICMP said nothing
/// answers, a handshake the client abandoned, a shutdown.
fn unrefused_failure(r: &Fields<'_>) -> bool {
    get_str(r, "reason")
        .is_some_and(|reason| UNREFUSED_FAILURES.iter().any(|f| f.as_str() == reason))
}

/// `None` for records that report rather than do something (`stats`, `alert`, unknown ones).
fn outcome(r: &Fields<'_>) -> Option<Outcome> {
    Some(match r.kind?.spec().outcome {
        OutcomeRule::None => return None,
        OutcomeRule::Success => Outcome::Success,
        OutcomeRule::Failure => Outcome::Failure,
        OutcomeRule::Unknown => Outcome::Unknown,
        OutcomeRule::ByStateTransition => {
            // An attempt or a handshake that ended without a connection.
            if matches!(get_str(r, "prev_state"), Some("attempted" | "handshaking"))
                && get_str(r, "state") == Some("closed")
            {
                Outcome::Failure
            } else {
                Outcome::Success
            }
        }
        OutcomeRule::ByCloseReason => {
            if get_str(r, "reason").is_some_and(abnormal_close_reason) {
                Outcome::Failure
            } else {
                Outcome::Success
            }
        }
    })
}

/// Whether this endpoint itself turned away what the record is about: a dropped datagram, or
/// an attempt it refused (by a guard or limit rule, or the application's token check). Not a
/// client's own attempt that timed out (`handshake_timeout`), that ICMP said nothing answers
/// (`unreachable`) or that the server refused
/// (rule `server_rejected`): nothing was blocked here, so the formats' "blocked" / "denied"
/// control fields are left out for those.
fn refused_here(r: &Fields<'_>) -> bool {
    let Some(kind) = r.kind else {
        return false;
    };
    match kind.spec().control {
        Control::Blocked => true,
        Control::BlockedUnlessUnrefused => {
            !unrefused_failure(r)
                && !matches!(
                    get_str(r, "rule"),
                    Some("server_rejected" | "handshake_timeout")
                )
        }
        Control::None | Control::Allowed | Control::RefusedMessage => false,
    }
}

/// The user `authenticate` named (`user_id`), or its keyed pseudonym (`user_id_pseudonym`,
/// under hmac): what each format's user id field carries.
fn user_id<'a>(r: &Fields<'a>) -> Option<&'a str> {
    get_str(r, "user_id").or_else(|| get_str(r, "user_id_pseudonym"))
}

/// A MITRE ATT&CK technique as the alert formats spell it out (`mitre_technique` carries only
/// the id): the technique, its sub-technique when the id has one, and its tactic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Attack<'a> {
    technique_id: &'a str,
    technique_name: Option<&'static str>,
    subtechnique: Option<(&'a str, Option<&'static str>)>,
    tactic: Option<(&'static str, &'static str)>,
}

/// `Rule::technique()`'s ids (crates/kcpwatch-proto/src/detect), named; an id not listed here
/// is passed on with no name or tactic.
fn attack(id: &str) -> Attack<'_> {
    const IMPACT: (&str, &str) = ("TA0040", "Impact");
    let (technique_id, sub) = match id.split_once('.') {
        Some((parent, _)) => (parent, Some(id)),
        None => (id, None),
    };
    let (technique_name, sub_name, tactic) = match id {
        "T1498.001" => (
            Some("Network Denial of Service"),
            Some("Direct Network Flood"),
            Some(IMPACT),
        ),
        "T1499.002" => (
            Some("Endpoint Denial of Service"),
            Some("Service Exhaustion Flood"),
            Some(IMPACT),
        ),
        "T1110" => (
            Some("Brute Force"),
            None,
            Some(("TA0006", "Credential Access")),
        ),
        "T1046" => (
            Some("Network Service Discovery"),
            None,
            Some(("TA0007", "Discovery")),
        ),
        "T1565.002" => (
            Some("Data Manipulation"),
            Some("Transmitted Data Manipulation"),
            Some(IMPACT),
        ),
        _ => (None, None, None),
    };
    Attack {
        technique_id,
        technique_name,
        subtechnique: sub.map(|s| (s, sub_name)),
        tactic,
    }
}

/// An RFC 3339 text field (`first_seen`, `last_seen`) as Unix milliseconds.
fn rfc3339_millis(r: &Fields<'_>, key: &str) -> Option<u64> {
    let t = humantime::parse_rfc3339(get_str(r, key)?).ok()?;
    Some(t.duration_since(UNIX_EPOCH).ok()?.as_millis() as u64)
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
        push_u64(out, self.micros / 1_000_000);
        let fraction = self.micros % 1_000_000;
        out.push('.');
        for digit in (0..6).rev() {
            out.push(char::from(b'0' + (fraction / 10u64.pow(digit) % 10) as u8));
        }
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
fn timestamp(r: &Fields<'_>) -> Option<Timestamp> {
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

/// Appends a decimal integer without going through `fmt`: records carry dozens of integers,
/// and the formatting machinery was most of a record's cost.
fn push_u64(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.push_str(std::str::from_utf8(&digits[i..]).unwrap_or("0"));
}

/// Appends a JSON number as JSON writes it.
fn push_number(out: &mut String, n: &serde_json::Number) {
    if let Some(u) = n.as_u64() {
        push_u64(out, u);
    } else if let Some(i) = n.as_i64() {
        out.push('-');
        push_u64(out, i.unsigned_abs());
    } else {
        let _ = write!(out, "{n}");
    }
}

/// Appends `s` as a JSON string literal.
fn json_str(out: &mut String, s: &str) {
    out.push('"');
    json_escape(out, s);
    out.push('"');
}

/// Appends the inside of a JSON string literal: every control character escaped, so that a
/// record is always one line.
fn json_escape(out: &mut String, s: &str) {
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        // Most text needs no escape: skip eight bytes at a time while none does (a short tail
        // is padded with a letter that needs none).
        let rest = &bytes[i..];
        let mut word = [b'a'; 8];
        let n = rest.len().min(8);
        word[..n].copy_from_slice(&rest[..n]);
        if !needs_json_escape(u64::from_le_bytes(word)) {
            i += n;
            continue;
        }
        let b = bytes[i];
        let escape: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => {
                i += 1;
                continue;
            }
        };
        out.push_str(&s[start..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(escape);
        }
        i += 1;
        start = i;
    }
    out.push_str(&s[start..]);
}

/// Whether any of the eight bytes of `word` is a control character, `"` or `\` (the classic
/// "has zero byte" / "has byte less than" bit tricks; exact for the question "any?").
fn needs_json_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below_space = word.wrapping_sub(ONES * 0x20) & !word;
    let quote = word ^ (ONES * u64::from(b'"'));
    let backslash = word ^ (ONES * u64::from(b'\\'));
    let quote = quote.wrapping_sub(ONES) & !quote;
    let backslash = backslash.wrapping_sub(ONES) & !backslash;
    (below_space | quote | backslash) & HIGH != 0
}

/// Appends `s` with the ASCII bytes `escape` maps to a replacement replaced (the text
/// formats' escaping: their special characters are all ASCII, so slicing around them is safe).
fn escape_ascii(out: &mut String, s: &str, escape: impl Fn(u8) -> Option<&'static str>) {
    let mut start = 0;
    for (i, &b) in s.as_bytes().iter().enumerate() {
        if let Some(replacement) = escape(b) {
            out.push_str(&s[start..i]);
            out.push_str(replacement);
            start = i + 1;
        }
    }
    out.push_str(&s[start..]);
}

/// Appends any JSON value (the records are flat, but nothing here assumes it).
fn json_value(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => push_number(out, n),
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
                Value::Number(n) => push_number(scratch, n),
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

    /// A string value written from parts, to avoid formatting it into a temporary.
    fn str_parts(&mut self, key: &str, parts: &[&str]) {
        self.key(key);
        self.out.push('"');
        for part in parts {
            json_escape(self.out, part);
        }
        self.out.push('"');
    }

    /// Writes `value` unless it is absent or empty: an empty canonical string means "not
    /// known" (an unnamed host), and an empty keyword only gets in the way of queries.
    fn opt_str(&mut self, key: &str, value: Option<&str>) {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            self.str(key, value);
        }
    }

    fn num(&mut self, key: &str, value: u64) {
        self.key(key);
        push_u64(self.out, value);
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

    /// A nested object; returns whether it was kept (it is not when `body` wrote nothing).
    fn object(&mut self, key: &str, body: impl FnOnce(&mut Obj<'_>)) -> bool {
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
        !child_empty
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
    fn json_escape_finds_every_special_byte_at_every_offset() {
        for special in ['"', '\\', '\n', '\u{0}', '\u{1f}'] {
            for at in 0..20 {
                let mut text: String = "abcdefghijklmnopqrstuvwxyz".chars().take(20).collect();
                text.replace_range(at..at + 1, &special.to_string());
                let mut out = String::new();
                json_str(&mut out, &text);
                let back: String = serde_json::from_str(&out).unwrap();
                assert_eq!(back, text);
                assert!(!out[1..out.len() - 1].contains(|c: char| c < ' '));
            }
        }
        let mut out = String::new();
        json_str(&mut out, "Grüße, 東京 🎮 ~\u{7f}");
        assert_eq!(out, "\"Grüße, 東京 🎮 ~\u{7f}\"");
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
        let r: Record =
            serde_json::from_str(r#"{"ts":"2025-11-26T15:13:20.412305Z","time":1764170000412}"#)
                .unwrap();
        let t = timestamp(&Fields::of(&r)).unwrap();
        assert_eq!(t.micros, 1_764_170_000_412_305);
        assert_eq!(t.rfc3339(), "2025-11-26T15:13:20.412305Z");
        let mut s = String::new();
        t.write_seconds(&mut s);
        assert_eq!(s, "1764170000.412305");
        let r: Record = serde_json::from_str(r#"{"time":1764170000412}"#).unwrap();
        assert_eq!(
            timestamp(&Fields::of(&r)).unwrap().micros,
            1_764_170_000_412_000
        );
    }
}

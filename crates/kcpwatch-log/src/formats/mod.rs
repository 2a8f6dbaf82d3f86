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
pub mod ecs;
mod fields;
mod gelf;
mod hec;
mod json;
mod json_writer;
mod meaning;
mod ocsf;
mod otlp;
mod rfc5424;
mod text;
mod time;

use serde_json::{Map, Value};

use fields::Fields;

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
}

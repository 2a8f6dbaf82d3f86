//! `rfc5424`: one syslog message (RFC 5424) per record:
//!
//! ```text
//! <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [kcp@32473 name="value" ...] BOM MSG
//! ```
//!
//! - PRI = facility x 8 + the record's severity; facility from [`super::FormatOptions`]
//!   (default 16, local0).
//! - TIMESTAMP = `ts` as it is (RFC 3339, UTC, microseconds: within RFC 5424's six digits).
//! - HOSTNAME = `observer_host` (or the configured host name), APP-NAME = `kcpwatch` (or the
//!   configured one), PROCID = `observer_instance`, MSGID = `name` (`kcp:connection_state_updated`,
//!   the longest, is 28 characters of the 32 allowed). Header fields are printable US-ASCII
//!   without spaces and length-capped (255 / 48 / 128 / 32): other characters become `_`, an
//!   empty field is the NILVALUE `-`. PROCID is the listener run because RFC 5424 defines a
//!   PROCID change as a discontinuity in reporting, which is exactly what a new run is; the
//!   process id is not in the record, and a format is a function of the record alone.
//! - One SD-ELEMENT, SD-ID `kcp@32473` (32473 is the enterprise number RFC 5612 reserves for
//!   documentation; configurable), with **every** field of the record as a PARAM, so the
//!   header's lossy fields lose nothing: PARAM-NAMEs are the field names (at most 32
//!   characters, none of `=`, space, `]`, `"`), values are escaped as RFC 5424 §6.3.3 says (`"`,
//!   `\` and `]` get a backslash), plus one rule of kcpwatch's own, the **percent rule**: `%`,
//!   every control character (U+0000-U+001F: CR, LF, TAB, ...) and DEL are written as `%XX`
//!   (two upper-case hex digits of the byte: `%25`, `%0D`, `%0A`, `%09`, `%7F`). Decoding is
//!   "replace every `%XX` by that byte" after the receiver's RFC 5424 unescaping; nothing else
//!   is changed, so the value comes back byte for byte. Why not `\n`: §6.3.3 defines only
//!   `\"`, `\\` and `\]`, and a receiver keeps any other backslash as written, so a line feed
//!   written `\n` arrives as the same two characters a literal backslash-n does. Why not raw
//!   CR/LF: a record must stay one line in files and on stdout (the format does not know its
//!   transport), and receivers such as rsyslog escape control characters they receive
//!   (`#012`) by default. PARAM-VALUE is a UTF-8 string, so everything else, non-ASCII
//!   included, is written as it is.
//! - MSG = a UTF-8 BOM and `msg`: RFC 5424 §6.4 says a MSG starting with the BOM is UTF-8, and
//!   `msg` can hold any text (an OS error message in another language, a host name), so it is
//!   always marked; control characters in it (CR, LF, TAB, ...) become spaces, so that the
//!   line holds none (the exact `msg` is in the SD-ELEMENT).
//!
//! Every line ends with `\n` for files and stdout; over TCP the sink frames it (RFC 6587 octet
//! counting, without the newline).

use std::fmt::Write as _;

use super::fields::{get_str, Fields};
use super::meaning::severity;
use super::text::{escape_ascii, scalar_text};
use super::time::timestamp;
use super::FormatOptions;

const DEFAULT_SD_ID: &str = "kcp@32473";
const DEFAULT_APP_NAME: &str = "kcpwatch";
const BOM: char = '\u{feff}';

/// A header field: PRINTUSASCII (33-126) only, at most `max` characters, `-` when empty.
fn header_field(out: &mut String, value: Option<&str>, max: usize) {
    let value = value.unwrap_or("");
    if value.is_empty() {
        out.push('-');
        return;
    }
    for c in value.chars().take(max) {
        out.push(if ('!'..='~').contains(&c) { c } else { '_' });
    }
}

/// SD-NAME: PRINTUSASCII except `=`, space, `]` and `"`, 1 to 32 characters.
fn sd_name(out: &mut String, name: &str) {
    let start = out.len();
    for c in name.chars().take(32) {
        out.push(
            if ('!'..='~').contains(&c) && !matches!(c, '=' | ']' | '"') {
                c
            } else {
                '_'
            },
        );
    }
    if out.len() == start {
        out.push('_');
    }
}

/// The `%XX` of the percent rule for the C0 controls (indexed by byte), then DEL.
const PERCENT: [&str; 33] = [
    "%00", "%01", "%02", "%03", "%04", "%05", "%06", "%07", "%08", "%09", "%0A", "%0B", "%0C",
    "%0D", "%0E", "%0F", "%10", "%11", "%12", "%13", "%14", "%15", "%16", "%17", "%18", "%19",
    "%1A", "%1B", "%1C", "%1D", "%1E", "%1F", "%7F",
];

/// A PARAM-VALUE: RFC 5424 §6.3.3's backslash escapes, then the percent rule (module docs).
fn param_value(out: &mut String, value: &str) {
    escape_ascii(out, value, |b| match b {
        b'"' => Some("\\\""),
        b'\\' => Some("\\\\"),
        b']' => Some("\\]"),
        b'%' => Some("%25"),
        0..=0x1f => Some(PERCENT[usize::from(b)]),
        0x7f => Some(PERCENT[32]),
        _ => None,
    });
}

pub(super) fn write(r: &Fields<'_>, options: &FormatOptions, out: &mut String) {
    let facility = u32::from(options.syslog_facility.min(23));
    let _ = write!(out, "<{}>1 ", facility * 8 + u32::from(severity(r)));
    match get_str(r, "ts") {
        Some(ts) => header_field(out, Some(ts), 64),
        None => {
            let ts = timestamp(r).map(|t| t.rfc3339());
            header_field(out, ts.as_deref(), 64);
        }
    }
    out.push(' ');
    let host = options
        .hostname
        .as_deref()
        .or_else(|| get_str(r, "observer_host"));
    header_field(out, host, 255);
    out.push(' ');
    let app = options.app_name.as_deref().unwrap_or(DEFAULT_APP_NAME);
    header_field(out, Some(app), 48);
    out.push(' ');
    header_field(out, get_str(r, "observer_instance"), 128);
    out.push(' ');
    header_field(out, get_str(r, "name"), 32);
    out.push(' ');

    if r.record.is_empty() {
        out.push('-');
    } else {
        out.push('[');
        sd_name(out, options.sd_id.as_deref().unwrap_or(DEFAULT_SD_ID));
        let mut scratch = String::new();
        for (key, value) in r.record {
            out.push(' ');
            sd_name(out, key);
            out.push_str("=\"");
            param_value(out, scalar_text(value, &mut scratch));
            out.push('"');
        }
        out.push(']');
    }

    if let Some(msg) = get_str(r, "msg") {
        out.push(' ');
        out.push(BOM);
        escape_ascii(out, msg, |b| (b < 0x20 || b == 0x7f).then_some(" "));
    }
    out.push('\n');
}

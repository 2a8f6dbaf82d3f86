//! Values as text for the line formats (CEF, RFC 5424): each escapes its own special
//! characters.

use serde_json::Value;

use super::json_writer::{json_value, push_number};

/// Appends `s` with the ASCII bytes `escape` maps to a replacement replaced (the text
/// formats' escaping: their special characters are all ASCII, so slicing around them is safe).
pub(super) fn escape_ascii(out: &mut String, s: &str, escape: impl Fn(u8) -> Option<&'static str>) {
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

/// A scalar as text (CEF, syslog, GELF values): strings as they are, numbers and booleans as
/// JSON writes them, anything else as JSON.
pub(super) fn scalar_text<'a>(v: &'a Value, scratch: &'a mut String) -> &'a str {
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

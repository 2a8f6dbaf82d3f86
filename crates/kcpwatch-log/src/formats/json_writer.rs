//! The JSON writer the JSON formats (ECS, OCSF, GELF, HEC, OTLP) share: numbers, escaped
//! strings, any value, and [`Obj`], an object written key by key. It writes straight into the
//! caller's `String`: no `serde` serializer, no temporary values.

use std::fmt::Write as _;

use serde_json::{Map, Value};

/// Appends a decimal integer without going through `fmt`: records carry dozens of integers,
/// and the formatting machinery was most of a record's cost.
pub(super) fn push_u64(out: &mut String, n: u64) {
    out.push_str(itoa::Buffer::new().format(n));
}

/// Appends a JSON number as JSON writes it.
pub(super) fn push_number(out: &mut String, n: &serde_json::Number) {
    if let Some(u) = n.as_u64() {
        push_u64(out, u);
    } else if let Some(i) = n.as_i64() {
        out.push_str(itoa::Buffer::new().format(i));
    } else {
        let _ = write!(out, "{n}");
    }
}

/// Appends `s` as a JSON string literal.
pub(super) fn json_str(out: &mut String, s: &str) {
    out.push('"');
    json_escape(out, s);
    out.push('"');
}

/// Appends the inside of a JSON string literal: every control character escaped, so that a
/// record is always one line.
pub(super) fn json_escape(out: &mut String, s: &str) {
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

/// Appends any JSON value (the records are flat, but nothing here assumes it).
pub(super) fn json_value(out: &mut String, v: &Value) {
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

/// Appends a JSON object, its keys in the map's order.
pub(super) fn json_object(out: &mut String, map: &Map<String, Value>) {
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

/// A place in an [`Obj`] to come back to.
#[derive(Debug, Clone, Copy)]
pub(super) struct Mark {
    len: usize,
    empty: bool,
}

/// A JSON object being written: keys are added in order, and a nested object that ends up
/// empty is taken back out, so optional groups need no look-ahead.
pub(super) struct Obj<'a> {
    pub(super) out: &'a mut String,
    empty: bool,
}

impl<'a> Obj<'a> {
    pub(super) fn begin(out: &'a mut String) -> Self {
        out.push('{');
        Obj { out, empty: true }
    }

    pub(super) fn end(self) {
        self.out.push('}');
    }

    pub(super) fn key(&mut self, key: &str) {
        self.member();
        json_str(self.out, key);
        self.out.push(':');
    }

    /// Starts a member (a comma unless it is the first) whose key the caller writes itself.
    pub(super) fn member(&mut self) {
        if !self.empty {
            self.out.push(',');
        }
        self.empty = false;
    }

    /// Where the object stands now, for [`Obj::undo`].
    pub(super) fn mark(&self) -> Mark {
        Mark {
            len: self.out.len(),
            empty: self.empty,
        }
    }

    /// Takes back everything written since `mark`.
    pub(super) fn undo(&mut self, mark: Mark) {
        self.out.truncate(mark.len);
        self.empty = mark.empty;
    }

    pub(super) fn str(&mut self, key: &str, value: &str) {
        self.key(key);
        json_str(self.out, value);
    }

    /// A string value written from parts, to avoid formatting it into a temporary.
    pub(super) fn str_parts(&mut self, key: &str, parts: &[&str]) {
        self.key(key);
        self.out.push('"');
        for part in parts {
            json_escape(self.out, part);
        }
        self.out.push('"');
    }

    /// Writes `value` unless it is absent or empty: an empty canonical string means "not
    /// known" (an unnamed host), and an empty keyword only gets in the way of queries.
    pub(super) fn opt_str(&mut self, key: &str, value: Option<&str>) {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            self.str(key, value);
        }
    }

    pub(super) fn num(&mut self, key: &str, value: u64) {
        self.key(key);
        push_u64(self.out, value);
    }

    pub(super) fn opt_num(&mut self, key: &str, value: Option<u64>) {
        if let Some(value) = value {
            self.num(key, value);
        }
    }

    pub(super) fn value(&mut self, key: &str, value: &Value) {
        self.key(key);
        json_value(self.out, value);
    }

    pub(super) fn strs(&mut self, key: &str, values: &[&str]) {
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
    pub(super) fn object(&mut self, key: &str, body: impl FnOnce(&mut Obj<'_>)) -> bool {
        let mark = self.mark();
        self.key(key);
        let mut child = Obj::begin(self.out);
        body(&mut child);
        let child_empty = child.empty;
        child.end();
        if child_empty {
            self.undo(mark);
        }
        !child_empty
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}

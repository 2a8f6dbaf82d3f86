//! `json`: the canonical record itself.
//!
//! The log thread already has the canonical line and should write it as it is; this exists so
//! that a record that went through a parser (a replay, a test) can be written back. Field order
//! is the map's: the canonical order with serde_json's `preserve_order` (which this crate
//! enables), and the contract says order is not significant anyway.

use super::fields::Record;
use super::json_writer::json_object;

pub(super) fn write(r: &Record, out: &mut String) {
    // One object on one line: json_str escapes every control character inside strings.
    json_object(out, r);
    out.push('\n');
}

//! `hec`: one Splunk HTTP Event Collector event per record, for `/services/collector/event`:
//!
//! ```json
//! {"time":1764170005.412305,"host":"game-eu-1","source":"kcpwatch","sourcetype":"kcpwatch:event","event":{...}}
//! ```
//!
//! `event` is the canonical record unchanged, so Splunk's JSON field extraction sees exactly the
//! fields `docs/events.md` describes. `time` is `ts` in seconds with six decimals; `host` is
//! `observer_host` unless configured; `source` and `sourcetype` default to `kcpwatch` and
//! `kcpwatch:event`; `index` is written only when configured. HEC accepts events concatenated
//! in one request body, so the line's `\n` separator is harmless there.

use super::fields::{get_str, Fields};
use super::json_writer::{json_object, json_str};
use super::time::timestamp;
use super::FormatOptions;

const DEFAULT_SOURCE: &str = "kcpwatch";
const DEFAULT_SOURCETYPE: &str = "kcpwatch:event";

pub(super) fn write(r: &Fields<'_>, options: &FormatOptions, out: &mut String) {
    out.push('{');
    if let Some(t) = timestamp(r) {
        out.push_str("\"time\":");
        t.write_seconds(out);
        out.push(',');
    }
    let host = options
        .hostname
        .as_deref()
        .or_else(|| get_str(r, "observer_host"))
        .filter(|h| !h.is_empty());
    if let Some(host) = host {
        out.push_str("\"host\":");
        json_str(out, host);
        out.push(',');
    }
    out.push_str("\"source\":");
    json_str(out, options.hec_source.as_deref().unwrap_or(DEFAULT_SOURCE));
    out.push_str(",\"sourcetype\":");
    json_str(
        out,
        options
            .hec_sourcetype
            .as_deref()
            .unwrap_or(DEFAULT_SOURCETYPE),
    );
    if let Some(index) = &options.hec_index {
        out.push_str(",\"index\":");
        json_str(out, index);
    }
    out.push_str(",\"event\":");
    json_object(out, r.record);
    out.push_str("}\n");
}

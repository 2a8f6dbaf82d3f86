//! The counters of one runtime, which the I/O thread keeps and the runtime hands out, and the
//! one declaration of what JavaScript and Prometheus see of them: [`STATS`] (each field of
//! `server.stats()`: name, doc, how it is read) and [`METRICS`] (each Prometheus family: name,
//! type, help, labels, the fields its samples take). `npm run codegen` writes the TypeScript
//! type, the field order and the metric table (`src/generated/stats.ts`) and the tables of
//! docs/metrics.md from them; the addon's `stats()` returns the values in [`STATS`] order.

use kcpwatch_proto::EndpointStats;

mod fields;
mod metrics;

pub use fields::STATS;
pub use metrics::METRICS;

/// Counters of one runtime.
#[derive(Debug, Clone, Default)]
pub struct RuntimeStats {
    /// The endpoint's counters.
    pub endpoint: EndpointStats,
    /// Per-session counters summed over every session so far (closed and live), with the
    /// smoothed-RTT histogram.
    pub sessions: kcpwatch_proto::metrics::SessionTotals,
    /// Live connections.
    pub connections: usize,
    /// Secure mode: handshakes waiting for the application's authentication answer.
    pub pending_auth: usize,
    /// Datagrams the socket sent.
    pub datagrams_out: u64,
    /// Bytes the socket sent.
    pub bytes_out: u64,
    /// Datagrams the OS refused to send (counted, then dropped; KCP retransmits data).
    pub send_errors: u64,
    /// Receive calls that failed (not counting ICMP errors, see `icmp_errors`).
    pub recv_errors: u64,
    /// ICMP errors the OS reported for datagrams sent earlier (port or host unreachable, ...).
    /// Linux only.
    pub icmp_errors: u64,
    /// Datagrams longer than the receive buffer, dropped.
    pub truncated: u64,
    /// Messages JavaScript sent to connections that had already closed.
    pub sends_to_closed: u64,
    /// Times delivery paused because JavaScript had not drained.
    pub delivery_pauses: u64,
    /// Send batches applied and sent on the caller's thread while the I/O thread slept; the
    /// others went through its command queue.
    pub sends_on_caller: u64,
    /// Receive turns the event loop's thread ran itself while reception was with it.
    pub receives_on_loop: u64,
    /// Times the I/O thread handed reception to the event loop before sleeping.
    pub receptions_handed: u64,
    /// Times the I/O thread took reception back because the event loop left datagrams unread
    /// (a handler blocking it).
    pub loop_receive_stalls: u64,
    /// Security records produced (offered to the ring).
    pub events_produced: u64,
    /// Security records lost before the log thread (ring full, or the endpoint's queue).
    pub events_lost: u64,
    /// Security records JavaScript did not take in time.
    pub events_lost_js: u64,
    /// Security records the log outputs lost (a write that failed, a network output that could
    /// not deliver), loss reports included; each is reported by a `kcp:log_loss` naming the
    /// output.
    pub events_lost_output: u64,
}

/// One field of `server.stats()` and `client.stats()`.
#[derive(Debug, Clone, Copy)]
pub struct StatSpec {
    /// Its name in JavaScript (camelCase).
    pub name: &'static str,
    /// What JavaScript sees.
    pub kind: StatKind,
    /// What it counts, one line (the TypeScript type and docs/metrics.md show it).
    pub doc: &'static str,
    /// Reads it from the runtime's counters (a flag as 0 or 1; counts are exact below 2^53).
    pub read: fn(&RuntimeStats) -> f64,
}

/// The JavaScript type of a [`StatSpec`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatKind {
    /// A number.
    Number,
    /// A boolean, carried across the binding as 0 or 1.
    Flag,
}

const fn stat(name: &'static str, doc: &'static str, read: fn(&RuntimeStats) -> f64) -> StatSpec {
    StatSpec {
        name,
        kind: StatKind::Number,
        doc,
        read,
    }
}

const fn flag_stat(
    name: &'static str,
    doc: &'static str,
    read: fn(&RuntimeStats) -> f64,
) -> StatSpec {
    StatSpec {
        name,
        kind: StatKind::Flag,
        doc,
        read,
    }
}

/// One Prometheus metric family of `server.metrics()`.
#[derive(Debug, Clone, Copy)]
pub struct MetricSpec {
    /// The family name.
    pub name: &'static str,
    /// Its type.
    pub kind: MetricKind,
    /// The `# HELP` text.
    pub help: &'static str,
    /// Its meaning in docs/metrics.md (Markdown).
    pub meaning: &'static str,
    /// The kcp-go SNMP counter it matches, for docs/metrics.md (Markdown; empty for none).
    pub kcp_go: &'static str,
    /// The name of the label its samples differ by, if they do.
    pub label: Option<&'static str>,
    /// Its samples, in exposition order.
    pub samples: &'static [MetricSample],
    /// A [`StatKind::Flag`] field: the family is exported only while it is set (so a 0 never
    /// reads as "on and idle").
    pub only_when: Option<&'static str>,
}

/// A Prometheus metric type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// A `counter`.
    Counter,
    /// A `gauge`.
    Gauge,
    /// A `summary` (quantile samples, `_sum` and `_count`).
    Summary,
}

/// One sample of a [`MetricSpec`].
#[derive(Debug, Clone, Copy)]
pub struct MetricSample {
    /// The value of the family's label.
    pub label: Option<&'static str>,
    /// Appended to the family name (`_sum`, `_count` of a summary; empty otherwise).
    pub suffix: &'static str,
    /// The [`StatSpec::name`] of the field it shows.
    pub stat: &'static str,
    /// How the field's value is shown.
    pub unit: Unit,
}

/// How a [`MetricSample`] shows its field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// As it is.
    Count,
    /// Milliseconds, shown in seconds.
    MsAsSeconds,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_every_sample_shows_a_field() {
        let mut names: Vec<_> = STATS.iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), STATS.len(), "a stats field is declared twice");
        let kind = |name: &str| STATS.iter().find(|s| s.name == name).map(|s| s.kind);
        let mut families: Vec<_> = METRICS.iter().map(|m| m.name).collect();
        families.sort_unstable();
        families.dedup();
        assert_eq!(
            families.len(),
            METRICS.len(),
            "a metric family is declared twice"
        );
        for m in METRICS {
            assert!(!m.samples.is_empty(), "{}", m.name);
            for sample in m.samples {
                assert_eq!(
                    kind(sample.stat),
                    Some(StatKind::Number),
                    "{}: {}",
                    m.name,
                    sample.stat
                );
                assert_eq!(
                    sample.label.is_some(),
                    m.label.is_some() && sample.suffix.is_empty(),
                    "{}",
                    m.name
                );
            }
            if let Some(flag) = m.only_when {
                assert_eq!(kind(flag), Some(StatKind::Flag), "{}", m.name);
            }
        }
    }

    #[test]
    fn fields_read_the_runtime_counters() {
        let mut s = RuntimeStats::default();
        s.endpoint.dropped[7] = 2;
        s.endpoint.dropped[10] = 3;
        s.endpoint.fec.enabled = true;
        s.sessions.srtt.record(40);
        let read = |name: &str| (STATS.iter().find(|f| f.name == name).unwrap().read)(&s);
        assert_eq!(read("droppedBadTag"), 2.0);
        assert_eq!(read("inCsumErrors"), 5.0);
        assert_eq!(read("fecEnabled"), 1.0);
        assert_eq!(read("srttP50Ms"), 40.0);
        assert_eq!(read("srttCount"), 1.0);
    }
}

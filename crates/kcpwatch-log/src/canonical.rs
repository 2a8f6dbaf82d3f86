//! The canonical JSON form of a security record (one line of NDJSON): flat snake_case fields,
//! pino-compatible `level` / `time` / `msg`. Every other output format is a function of this
//! record. The field catalog is `docs/events.md`; the schema is `schema/events.schema.json`.
//!
//! This runs on the log thread, never on the I/O thread; it writes into a reused buffer.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use kcpwatch_proto::community_id::{community_id, CommunityId, PROTO_UDP};
use kcpwatch_proto::events::{shown_ip, EventKind, ExampleNet, RecordFields};
use kcpwatch_proto::privacy::{IpPrivacy, PrivateIp};

use super::ring::Record;

/// Who wrote the record (ECS `observer.*`).
#[derive(Debug, Clone, Default)]
pub struct Observer {
    /// Host name.
    pub host: String,
    /// The service the game server calls itself.
    pub service: String,
    /// This listener's run: unique per process and listener.
    pub instance: String,
    /// kcpwatch version.
    pub version: String,
}

/// Writes records as NDJSON lines.
pub struct CanonicalWriter {
    observer: Observer,
    /// Applied to every address before it is written (docs/privacy.md).
    privacy: Arc<IpPrivacy>,
    /// How flows get their Community ID.
    flows: Flows,
    /// The `msg` text of the record being written, reused from record to record.
    msg: String,
}

/// The Community ID of flows, with its settings and its cache.
struct Flows {
    /// With `truncate` or `cryptopan`: compute `community_id` over the transformed addresses.
    over_transformed: bool,
    /// Community ID seed (0 unless the deployment sets one).
    seed: u16,
    /// The last flow's Community ID: a connection's records come in runs, and the hash is the
    /// costliest part of a record.
    last_flow: Option<(SocketAddr, SocketAddr, Option<CommunityId>)>,
}

/// The sink the events write their fields into: one JSON line.
struct Line<'a> {
    out: &'a mut String,
    privacy: &'a IpPrivacy,
    flows: &'a mut Flows,
}

impl Line<'_> {
    fn key(&mut self, key: &str) {
        self.out.push_str(",\"");
        self.out.push_str(key);
        self.out.push_str("\":");
    }

    fn ip_field(&mut self, prefix: &str, addr: IpAddr) {
        match self.privacy.apply(shown_ip(addr)) {
            PrivateIp::Ip(shown) => {
                let _ = write!(self.out, ",\"{prefix}_ip\":\"{shown}\"");
            }
            PrivateIp::Pseudonym(p) => {
                let _ = write!(self.out, ",\"{prefix}_ip_pseudonym\":\"{p}\"");
            }
            PrivateIp::Omitted => {}
        }
    }
}

impl RecordFields for Line<'_> {
    fn str(&mut self, key: &str, value: &str) {
        self.key(key);
        escape(self.out, value);
    }

    fn num(&mut self, key: &str, value: impl Into<u64>) {
        self.key(key);
        let _ = write!(self.out, "{}", value.into());
    }

    fn bool(&mut self, key: &str, value: bool) {
        self.key(key);
        self.out.push_str(if value { "true" } else { "false" });
    }

    fn ip_only(&mut self, prefix: &str, addr: IpAddr) {
        self.ip_field(prefix, addr);
    }

    fn addr(&mut self, prefix: &str, addr: SocketAddr) {
        self.ip_field(prefix, addr.ip());
        let _ = write!(self.out, ",\"{prefix}_port\":{}", addr.port());
    }

    fn time(&mut self, key: &str, unix_us: u64) {
        self.key(key);
        let _ = write!(
            self.out,
            "\"{}\"",
            humantime::format_rfc3339_micros(UNIX_EPOCH + Duration::from_micros(unix_us))
        );
    }

    fn flow(&mut self, src: SocketAddr, dst: SocketAddr) {
        self.addr("src", src);
        self.addr("dst", dst);
        self.str("transport", "udp");
        if let Some(id) = self.flows.community_id(self.privacy, src, dst) {
            self.str("community_id", id.as_str());
        }
    }

    fn privacy(&self) -> &IpPrivacy {
        self.privacy
    }
}

fn escape(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

impl CanonicalWriter {
    /// A writer stamping records with `observer`, with full addresses.
    pub fn new(observer: Observer, community_id_seed: u16) -> Self {
        Self::with_privacy(observer, community_id_seed, IpPrivacy::Full, false)
    }

    /// A writer that transforms every address with `privacy`. `community_id` is written in
    /// full mode, and over the transformed addresses in `truncate` and `cryptopan` modes when
    /// `community_id_over_transformed` (a Community ID of the real addresses would undo the
    /// mode: its seed is public).
    pub fn with_privacy(
        observer: Observer,
        community_id_seed: u16,
        privacy: IpPrivacy,
        community_id_over_transformed: bool,
    ) -> Self {
        Self {
            observer,
            privacy: Arc::new(privacy),
            flows: Flows {
                over_transformed: community_id_over_transformed,
                seed: community_id_seed,
                last_flow: None,
            },
            msg: String::new(),
        }
    }

    /// Appends one record and a newline to `out`.
    pub fn write(&mut self, record: &Record, out: &mut String) {
        let event = &record.event;
        let severity = event.severity();
        let _ = write!(
            out,
            "{{\"ts\":\"{}\"",
            humantime::format_rfc3339_micros(UNIX_EPOCH + Duration::from_micros(record.time_us))
        );
        let privacy = self.privacy.clone();
        let mut line = Line {
            out,
            privacy: &privacy,
            flows: &mut self.flows,
        };
        line.num("time", record.time_us / 1000);
        line.num("level", severity.pino_level());
        line.str("level_name", severity.as_str());
        line.num("severity", severity.code());
        line.str("name", event.name());
        line.num("seq", record.seq);
        line.str("observer_host", &self.observer.host);
        line.str("observer_service", &self.observer.service);
        line.str("observer_instance", &self.observer.instance);
        line.str("observer_version", &self.observer.version);
        if !matches!(*privacy, IpPrivacy::Full) {
            line.str("ip_privacy", privacy.mode_name());
        }
        // The event's own fields and text are declared with the event (kcpwatch-proto's
        // `events/catalog/`).
        event.fields(&mut line);
        self.msg.clear();
        let _ = event.message(&privacy, &mut self.msg);
        line.str("msg", &self.msg);
        line.out.push_str("}\n");
    }
}

impl Flows {
    fn community_id(
        &mut self,
        privacy: &IpPrivacy,
        src: SocketAddr,
        dst: SocketAddr,
    ) -> Option<CommunityId> {
        let (src, dst) = match privacy {
            IpPrivacy::Full => (src, dst),
            p if self.over_transformed && p.keeps_prefixes() => {
                let transformed = |a: SocketAddr| {
                    p.apply(shown_ip(a.ip()))
                        .ip()
                        .map(|shown| SocketAddr::new(shown, a.port()))
                };
                (transformed(src)?, transformed(dst)?)
            }
            _ => return None,
        };
        if let Some((s, d, id)) = self.last_flow {
            if (s, d) == (src, dst) {
                return id;
            }
        }
        let id = community_id(PROTO_UDP, src, dst, self.seed);
        self.last_flow = Some((src, dst, id));
        id
    }
}

/// The observer of the documented examples (`docs/events.md`).
pub fn example_observer() -> Observer {
    Observer {
        host: "game-eu-1".into(),
        service: "arena".into(),
        instance: "L031iIo9tYbS4XkP2mQ7wZe".into(),
        version: "0.1.0".into(),
    }
}

/// Every declared example of every event on `net` ([`EventKind::examples`]), in catalogue
/// order, numbered from 0 and one second apart.
pub fn example_records(net: &ExampleNet) -> Vec<Record> {
    const START_US: u64 = 1_764_170_000_412_305;
    EventKind::ALL
        .into_iter()
        .flat_map(|kind| kind.examples(net))
        .zip(0..)
        .map(|(event, seq)| Record {
            seq,
            time_us: START_US + seq * 1_000_000,
            event,
        })
        .collect()
}

/// The IPv4 [`example_records`] as NDJSON, written by [`example_observer`] in full mode: what
/// `docs/events.md` shows, and the generated fixture `tests/fixtures/events_docs.ndjson`.
pub fn example_ndjson() -> String {
    let mut writer = CanonicalWriter::new(example_observer(), 0);
    let mut out = String::new();
    for record in example_records(&ExampleNet::V4) {
        writer.write(&record, &mut out);
    }
    out
}

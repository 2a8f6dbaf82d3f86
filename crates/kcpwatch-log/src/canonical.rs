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
use kcpwatch_proto::events::{
    ConnectionRef, ErrorEvent, ListenerSettings, LogLoss, PacketDropped, Severity, StatsEvent,
};
use kcpwatch_proto::privacy::{IpPrivacy, PrivateIp, PrivateUser};
use kcpwatch_proto::{SecurityEvent, SessionConfig};

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
    /// With `truncate` or `cryptopan`: compute `community_id` over the transformed addresses.
    community_id_over_transformed: bool,
    /// Community ID seed (0 unless the deployment sets one).
    seed: u16,
    /// The last flow's Community ID: a connection's records come in runs, and the hash is the
    /// costliest part of a record.
    last_flow: Option<(SocketAddr, SocketAddr, Option<CommunityId>)>,
}

/// IPv4-mapped IPv6 printed as IPv4, like everywhere else in kcpwatch.
fn ip(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    }
}

struct Line<'a> {
    out: &'a mut String,
    privacy: &'a IpPrivacy,
}

impl Line<'_> {
    fn key(&mut self, key: &str) {
        self.out.push_str(",\"");
        self.out.push_str(key);
        self.out.push_str("\":");
    }

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

    /// An address as the privacy mode allows: `<prefix>_ip` (full, truncated or Crypto-PAn),
    /// `<prefix>_ip_pseudonym` (hmac) or nothing (omit); the port always.
    /// An address without a port (an alert's grouping key), through the privacy mode.
    fn ip_only(&mut self, prefix: &str, addr: IpAddr) {
        match self.privacy.apply(ip(addr)) {
            PrivateIp::Ip(shown) => {
                let _ = write!(self.out, ",\"{prefix}_ip\":\"{shown}\"");
            }
            PrivateIp::Pseudonym(p) => {
                let _ = write!(self.out, ",\"{prefix}_ip_pseudonym\":\"{p}\"");
            }
            PrivateIp::Omitted => {}
        }
    }

    fn addr(&mut self, prefix: &str, addr: SocketAddr) {
        match self.privacy.apply(ip(addr.ip())) {
            PrivateIp::Ip(shown) => {
                let _ = write!(self.out, ",\"{prefix}_ip\":\"{shown}\"");
            }
            PrivateIp::Pseudonym(p) => {
                let _ = write!(self.out, ",\"{prefix}_ip_pseudonym\":\"{p}\"");
            }
            PrivateIp::Omitted => {}
        }
        let _ = write!(self.out, ",\"{prefix}_port\":{}", addr.port());
    }
}

/// An address in `msg` text, as the privacy mode allows.
struct Shown<'a>(&'a IpPrivacy, SocketAddr);

impl std::fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let port = self.1.port();
        match self.0.apply(ip(self.1.ip())) {
            PrivateIp::Ip(IpAddr::V6(v6)) => write!(f, "[{v6}]:{port}"),
            PrivateIp::Ip(v4) => write!(f, "{v4}:{port}"),
            PrivateIp::Pseudonym(p) => write!(f, "[{p}]:{port}"),
            PrivateIp::Omitted => write!(f, "*:{port}"),
        }
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

fn rfc3339_micros(time_us: u64) -> String {
    humantime::format_rfc3339_micros(UNIX_EPOCH + Duration::from_micros(time_us)).to_string()
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
            community_id_over_transformed,
            seed: community_id_seed,
            last_flow: None,
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
        };
        let shown = |addr| Shown(&privacy, addr);
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
        let mut msg = String::new();
        match event {
            SecurityEvent::ListenerStarted(e) => {
                line.addr("local", e.local);
                settings(&mut line, &e.settings);
                let _ = write!(
                    msg,
                    "listening on {} ({} mode)",
                    shown(e.local),
                    e.settings.mode
                );
            }
            SecurityEvent::ListenerStopped(e) => {
                line.addr("local", e.local);
                line.num("uptime_ms", e.uptime_ms);
                line.num("connections_total", e.connections_total);
                let _ = write!(msg, "stopped listening on {}", shown(e.local));
            }
            SecurityEvent::ConnectionAttempted(e) => {
                self.connection(&mut line, &e.conn);
                let _ = write!(msg, "connection attempted {}", Flow(&privacy, &e.conn));
            }
            SecurityEvent::ConnectionEstablished(e) => {
                self.connection(&mut line, &e.conn);
                if let Some(secure) = &e.secure {
                    // Public facts only: the key id names a key, it reveals nothing of it.
                    line.num("protocol_version", u64::from(secure.version));
                    line.str("cipher_suite", secure.suite);
                    line.str("server_key_id", secure.key_id_hex().as_str());
                }
                let _ = write!(msg, "connection established {}", Flow(&privacy, &e.conn));
            }
            SecurityEvent::ConnectionFailed(e) => {
                self.connection(&mut line, &e.conn);
                line.str("reason", e.reason.as_str());
                if let Some(trigger) = e.trigger {
                    line.str("trigger", trigger.as_str());
                }
                line.str("rule", e.rule.as_str());
                line.num("suppressed", e.suppressed);
                let _ = write!(
                    msg,
                    "connection failed {}: {} ({})",
                    Flow(&privacy, &e.conn),
                    e.reason.as_str(),
                    e.rule
                );
                if e.suppressed > 0 {
                    let _ = write!(msg, "; {} more not logged", e.suppressed);
                }
            }
            SecurityEvent::ConnectionStateUpdated(e) => {
                self.connection(&mut line, &e.conn);
                line.str("prev_state", e.old.as_str());
                line.str("state", e.new.as_str());
                let _ = write!(
                    msg,
                    "connection {} {} -> {}",
                    e.conn.uid,
                    e.old.as_str(),
                    e.new.as_str()
                );
            }
            SecurityEvent::ConnectionClosed(e) => {
                self.connection(&mut line, &e.conn);
                line.str("reason", e.reason.as_str());
                line.str("initiator", e.initiator.as_str());
                if let Some(peer_reason) = e.peer_reason {
                    line.str("peer_reason", peer_reason.as_str());
                }
                if e.app_close.code != 0 {
                    line.num("close_code", u64::from(e.app_close.code));
                }
                if !e.app_close.text.as_str().is_empty() {
                    line.str("close_text", e.app_close.text.as_str());
                }
                let s = &e.summary;
                line.num("duration_ms", s.duration_ms);
                line.num("bytes_received", s.bytes_in);
                line.num("bytes_sent", s.bytes_out);
                line.num("datagrams_received", s.datagrams_in);
                line.num("datagrams_sent", s.datagrams_out);
                line.num("payload_bytes_received", s.payload_bytes_in);
                line.num("payload_bytes_sent", s.payload_bytes_out);
                line.num("messages_received", s.messages_in);
                line.num("messages_sent", s.messages_out);
                // Secure mode's unreliable datagrams (`sendDatagram`), apart from the messages
                // and from the UDP datagrams above (0 in raw mode, which has none).
                line.num("unreliable_received", s.unreliable.received);
                line.num("unreliable_sent", s.unreliable.sent);
                line.num("unreliable_dropped", s.unreliable.dropped);
                line.num("segments_received", s.engine.in_segs);
                line.num("segments_sent", s.engine.out_segs);
                line.num("segments_retransmitted", s.engine.retrans_segs);
                line.num("segments_fast_retransmitted", s.engine.fast_retrans_segs);
                line.num("segments_lost", s.engine.lost_segs);
                line.num("segments_duplicate_received", s.engine.repeat_segs);
                line.num("acks_sent", s.engine.acks_sent);
                line.num("acks_received", s.engine.acks_received);
                line.num("window_probes_sent", s.engine.window_probes_sent);
                line.num("window_probes_received", s.engine.window_probes_received);
                line.num("guard_drops", s.guard_drops);
                line.num("srtt_ms", s.srtt_ms);
                line.num("rttvar_ms", s.rttvar_ms);
                line.num("rto_ms", s.rto_ms);
                line.num("rtt_min_ms", s.engine.rtt_min);
                line.num("rtt_max_ms", s.engine.rtt_max);
                line.str("history", s.history.as_str());
                params(&mut line, &e.params);
                let _ = write!(
                    msg,
                    "connection closed {}: {} by {} after {} ms, {} bytes in, {} bytes out",
                    Flow(&privacy, &e.conn),
                    e.reason.as_str(),
                    e.initiator.as_str(),
                    s.duration_ms,
                    s.bytes_in,
                    s.bytes_out
                );
            }
            SecurityEvent::PeerAddressChanged(e) => {
                // The connection fields carry the new addresses (src/dst by direction, like
                // every connection record, with the Community ID of the new flow); the old
                // ones go through the same privacy transform as every other address.
                self.connection(&mut line, &e.conn);
                line.addr("old_peer", e.old_peer);
                line.addr("old_local", e.old_local);
                let _ = write!(
                    msg,
                    "peer address changed {} conv={}: {} -> {}",
                    e.conn.uid,
                    e.conn.conv,
                    shown(e.old_peer),
                    shown(e.conn.peer)
                );
                if e.old_local != e.conn.local {
                    let _ = write!(
                        msg,
                        "; local {} -> {}",
                        shown(e.old_local),
                        shown(e.conn.local)
                    );
                }
            }
            SecurityEvent::Alert(e) => {
                line.str("rule_id", e.rule.id());
                line.str("rule_name", e.rule.name());
                line.num("threshold", e.threshold);
                line.num("window_ms", e.window_ms);
                line.num("observed", e.observed);
                line.str("first_seen", &rfc3339_micros(e.first_seen_ms * 1000));
                line.str("last_seen", &rfc3339_micros(e.last_seen_ms * 1000));
                line.bool("update", e.update);
                if let Some(technique) = e.rule.technique() {
                    line.str("mitre_technique", technique);
                }
                // The grouping key is an address: it goes through the privacy mode like the
                // others (`group_ip`, or `group_ip_pseudonym`, or nothing under omit).
                match e.key {
                    Some(key) => {
                        line.str("group", "source");
                        line.ip_only("group", key);
                    }
                    None => line.str("group", "listener"),
                }
                let _ = write!(
                    msg,
                    "{} {} ({}): {} in {} ms, threshold {}",
                    if e.update { "alert update" } else { "alert" },
                    e.rule.id(),
                    e.rule.name(),
                    e.observed,
                    e.window_ms,
                    e.threshold
                );
                if let Some(key) = e.key {
                    let _ = match privacy.apply(ip(key)) {
                        PrivateIp::Ip(shown) => write!(msg, " from {shown}"),
                        PrivateIp::Pseudonym(p) => write!(msg, " from [{p}]"),
                        PrivateIp::Omitted => write!(msg, " from one source"),
                    };
                }
            }
            SecurityEvent::PacketDropped(e) => {
                self.dropped(&mut line, e);
                let _ = write!(
                    msg,
                    "datagram from {} dropped: {} ({})",
                    shown(e.remote),
                    e.trigger.as_str(),
                    e.rule
                );
                if e.suppressed > 0 {
                    let _ = write!(msg, "; {} more not logged", e.suppressed);
                }
            }
            SecurityEvent::ProtocolViolation(e) => {
                if let Some(conn) = &e.conn {
                    self.connection(&mut line, conn);
                }
                line.str("violation", e.violation.as_str());
                line.str("error_type", "application");
                line.str("error_code", e.violation.error_code().as_str());
                line.num("size", e.size);
                if e.limit > 0 {
                    line.num("limit", e.limit);
                }
                let _ = write!(msg, "protocol violation: {}", e.violation.as_str());
                if let Some(conn) = &e.conn {
                    let _ = write!(msg, " on {}", conn.uid);
                }
            }
            SecurityEvent::Error(e) => {
                self.error(&mut line, e);
                let _ = write!(
                    msg,
                    "{} error {}: {}",
                    e.error_type.as_str(),
                    e.code,
                    e.message.as_str()
                );
            }
            SecurityEvent::Stats(e) => {
                stats(&mut line, e);
                let _ = write!(
                    msg,
                    "{} connections, {} datagrams in, {} out, {} dropped",
                    e.connections, e.datagrams_in, e.datagrams_out, e.dropped
                );
            }
            SecurityEvent::LogLoss(e) => {
                loss(&mut line, e);
                let _ = write!(
                    msg,
                    "{} security records lost",
                    e.lost_critical + e.lost_bulk + e.lost_output
                );
                if e.lost_output > 0 {
                    let _ = write!(msg, " by output {}", e.output.as_str());
                }
            }
        }
        line.str("msg", &msg);
        line.out.push_str("}\n");
    }

    fn community_id(&mut self, src: SocketAddr, dst: SocketAddr) -> Option<CommunityId> {
        let (src, dst) = match &*self.privacy {
            IpPrivacy::Full => (src, dst),
            p if self.community_id_over_transformed && p.keeps_prefixes() => {
                let transformed = |a: SocketAddr| {
                    p.apply(ip(a.ip()))
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

    fn connection(&mut self, line: &mut Line<'_>, conn: &ConnectionRef) {
        line.str("uid", conn.uid.as_str());
        if let Some(user) = conn.user.as_str() {
            // Through the privacy mode, like an address: `user_id` in clear (full),
            // `user_id_pseudonym` (hmac), nothing otherwise.
            match line.privacy.apply_user(user) {
                PrivateUser::Text(text) => line.str("user_id", text),
                PrivateUser::Pseudonym(p) => line.str("user_id_pseudonym", p.as_str()),
                PrivateUser::Omitted => {}
            }
        }
        line.num("conv", conn.conv);
        line.str("direction", conn.direction.as_str());
        line.addr("src", conn.src());
        line.addr("dst", conn.dst());
        line.str("transport", "udp");
        if let Some(id) = self.community_id(conn.src(), conn.dst()) {
            line.str("community_id", id.as_str());
        }
    }

    fn dropped(&mut self, line: &mut Line<'_>, e: &PacketDropped) {
        if let Some(uid) = &e.uid {
            line.str("uid", uid.as_str());
        }
        if let Some(conv) = e.conv {
            line.num("conv", conv);
        }
        line.addr("src", e.remote);
        line.addr("dst", e.local);
        line.str("transport", "udp");
        if let Some(id) = self.community_id(e.remote, e.local) {
            line.str("community_id", id.as_str());
        }
        line.str("trigger", e.trigger.as_str());
        line.str("rule", e.rule.as_str());
        line.num("datagram_bytes", e.len);
        line.num("suppressed", e.suppressed);
    }

    fn error(&mut self, line: &mut Line<'_>, e: &ErrorEvent) {
        if let Some(conn) = &e.conn {
            self.connection(line, conn);
        } else if let Some(peer) = e.peer {
            line.addr("peer", peer);
        }
        if let Some(local) = e.local {
            line.addr("local", local);
        }
        line.str("error_type", e.error_type.as_str());
        line.str("error_code", e.code);
        line.str("error_message", e.message.as_str());
        if e.suppressed > 0 {
            line.num("suppressed", e.suppressed);
        }
    }
}

/// The connection as the `msg` text shows it.
struct Flow<'a>(&'a IpPrivacy, &'a ConnectionRef);

impl std::fmt::Display for Flow<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (p, c) = (self.0, self.1);
        write!(
            f,
            "{} {} -> {} conv={}",
            c.uid,
            Shown(p, c.src()),
            Shown(p, c.dst()),
            c.conv
        )
    }
}

fn settings(line: &mut Line<'_>, s: &ListenerSettings) {
    line.str("mode", s.mode);
    line.str("role", if s.accept_inbound { "server" } else { "client" });
    line.num("max_connections", s.max_connections);
    params(line, &s.session);
}

fn params(line: &mut Line<'_>, p: &SessionConfig) {
    line.bool("kcp_nodelay", p.nodelay);
    line.num("kcp_interval_ms", p.interval_ms);
    line.num("kcp_resend", p.fast_resend);
    line.bool("kcp_nc", p.no_congestion_window);
    line.num("kcp_snd_wnd", p.send_window);
    line.num("kcp_rcv_wnd", p.receive_window);
    line.num("kcp_mtu", p.mtu as u64);
    line.bool("kcp_stream", p.stream);
    line.num("dead_link", p.dead_link);
    line.num("idle_timeout_ms", p.idle_timeout_ms);
    line.num("max_message_size", p.max_message_size as u64);
}

fn stats(line: &mut Line<'_>, e: &StatsEvent) {
    if let Some(local) = e.local {
        line.addr("local", local);
    }
    line.num("interval_ms", e.interval_ms);
    line.num("connections", e.connections);
    line.num("datagrams_received", e.datagrams_in);
    line.num("bytes_received", e.bytes_in);
    line.num("datagrams_sent", e.datagrams_out);
    line.num("bytes_sent", e.bytes_out);
    line.num("passive_opens", e.passive_opens);
    line.num("active_opens", e.active_opens);
    line.num("connections_closed", e.closed);
    line.num("datagrams_dropped", e.dropped);
    line.num("connections_failed", e.failed);
    line.num("send_errors", e.send_errors);
    line.num("icmp_errors", e.icmp_errors);
    line.num("panics", e.panics);
    line.num("log_lost", e.log_lost);
}

fn loss(line: &mut Line<'_>, e: &LogLoss) {
    line.num("lost_total", e.lost_critical + e.lost_bulk + e.lost_output);
    line.num("lost_critical", e.lost_critical);
    line.num("lost_bulk", e.lost_bulk);
    for (code, &count) in e.lost_by_severity.iter().enumerate() {
        if count > 0 {
            let _ = write!(
                line.out,
                ",\"lost_severity_{}\":{count}",
                severity_name(code)
            );
        }
    }
    if e.lost_output > 0 {
        line.num("lost_output", e.lost_output);
        line.str("output", e.output.as_str());
    }
    if e.since_us > 0 {
        line.str("since", &rfc3339_micros(e.since_us));
    }
}

fn severity_name(code: usize) -> &'static str {
    Severity::ALL[code.min(7)].as_str()
}

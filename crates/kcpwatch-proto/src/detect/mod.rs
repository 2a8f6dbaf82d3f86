//! Built-in detectors (docs/detection.md): sliding-window rules over what the endpoint sees, firing
//! `kcp:alert` with the rule, threshold, window, observed value and grouping key.
//!
//! The endpoint feeds observations as they happen — before any sampling of the records — so the
//! detectors count every datagram even when the log shows one aggregate record for thousands.
//! Per-source state lives in a fixed table ([`table::SourceTable`]): memory is set at
//! construction and does not grow with the number of attacking addresses.
//!
//! One ongoing attack yields one alert and then an update per `update_interval_ms` while it
//! lasts (with the observed value of the latest window), never a record per datagram.

mod alert;
pub mod table;
pub mod window;

use std::net::IpAddr;

use table::{SourceTable, PER_SOURCE_RULES};
use window::Window;

use crate::lifecycle::DropTrigger;
use crate::lifecycle::FailReason;
use crate::severity::Severity;
pub use alert::Alert;

/// One threshold rule: fire when the count in `window_ms` reaches `threshold`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Threshold {
    /// Events (or distinct values) in the window that fire the rule.
    pub threshold: u32,
    /// The sliding window in milliseconds.
    pub window_ms: u64,
}

/// The detectors' settings. Every rule has a documented default (`docs/detection.md`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetectorConfig {
    /// Run the detectors at all.
    pub enabled: bool,
    /// Sources tracked at once (the memory bound: a fixed table of this many entries).
    pub table_capacity: usize,
    /// While a rule keeps firing for a key, an update every this long (one alert, not a stream).
    pub update_interval_ms: u64,
    /// KCPW-001: handshakes from one source.
    pub handshake_flood_source: Threshold,
    /// KCPW-002: handshakes from everyone; fires at `threshold` or at `spike_factor` times the
    /// moving baseline, whichever is higher.
    pub handshake_flood_global: Threshold,
    /// KCPW-002: how far above its baseline the global handshake rate must rise.
    pub spike_factor: u32,
    /// KCPW-003: failed handshakes from one source.
    pub failed_handshakes_source: Threshold,
    /// KCPW-004: distinct convs one source tried without a session.
    pub conv_scan_source: Threshold,
    /// KCPW-005: invalid datagrams from everyone.
    pub invalid_burst: Threshold,
    /// KCPW-006: connections closed for a dead link.
    pub dead_link_burst: Threshold,
    /// KCPW-007: failed / (failed + established) in percent, with `min_attempts` in the window.
    pub error_rate_percent: u32,
    /// KCPW-007: attempts needed before the ratio means anything.
    pub error_rate_min_attempts: u32,
    /// KCPW-007: its window.
    pub error_rate_window_ms: u64,
    /// KCPW-008: connections established by one source.
    pub churn_source: Threshold,
    /// KCPW-009: refusals of one source by the per-address or per-prefix connection cap.
    pub per_ip_cap: Threshold,
    /// KCPW-010: session datagrams from one source that failed authenticated decryption.
    pub decrypt_failed_source: Threshold,
    /// Enforcement (off when 0): a source a per-source rule fires for may open no new
    /// connection for this long (its established ones continue).
    pub refuse_ms: u64,
    /// The per-source rules that enforce; empty with `refuse_ms` set means all of them.
    pub enforce_rules: Vec<Rule>,
    /// Networks never refused: (address, prefix length).
    pub allow_list: Vec<(IpAddr, u8)>,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            table_capacity: 4096,
            update_interval_ms: 60_000,
            handshake_flood_source: Threshold {
                threshold: 100,
                window_ms: 10_000,
            },
            handshake_flood_global: Threshold {
                threshold: 1_000,
                window_ms: 10_000,
            },
            spike_factor: 5,
            failed_handshakes_source: Threshold {
                threshold: 20,
                window_ms: 60_000,
            },
            conv_scan_source: Threshold {
                threshold: 32,
                window_ms: 60_000,
            },
            invalid_burst: Threshold {
                threshold: 1_000,
                window_ms: 10_000,
            },
            dead_link_burst: Threshold {
                threshold: 10,
                window_ms: 60_000,
            },
            error_rate_percent: 50,
            error_rate_min_attempts: 20,
            error_rate_window_ms: 60_000,
            churn_source: Threshold {
                threshold: 30,
                window_ms: 60_000,
            },
            per_ip_cap: Threshold {
                threshold: 5,
                window_ms: 60_000,
            },
            // A genuine peer produces none (UDP's checksum catches corruption, a restarted
            // server answers stale sessions with RESET rather than failing to decrypt them):
            // ten in ten seconds is someone altering or forging a live session's datagrams.
            decrypt_failed_source: Threshold {
                threshold: 10,
                window_ms: 10_000,
            },
            refuse_ms: 0,
            enforce_rules: Vec::new(),
            allow_list: Vec::new(),
        }
    }
}

/// The rules, in one place: id, name, severity and MITRE ATT&CK technique.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// KCPW-001.
    HandshakeFloodSource,
    /// KCPW-002.
    HandshakeFloodGlobal,
    /// KCPW-003.
    FailedHandshakesSource,
    /// KCPW-004.
    ConvScanSource,
    /// KCPW-005.
    InvalidBurst,
    /// KCPW-006.
    DeadLinkBurst,
    /// KCPW-007.
    ErrorRateSpike,
    /// KCPW-008.
    ChurnSource,
    /// KCPW-009.
    PerIpCap,
    /// KCPW-010.
    DecryptFailedSource,
}

impl Rule {
    /// Every rule.
    pub const ALL: [Rule; 10] = [
        Rule::HandshakeFloodSource,
        Rule::HandshakeFloodGlobal,
        Rule::FailedHandshakesSource,
        Rule::ConvScanSource,
        Rule::InvalidBurst,
        Rule::DeadLinkBurst,
        Rule::ErrorRateSpike,
        Rule::ChurnSource,
        Rule::PerIpCap,
        Rule::DecryptFailedSource,
    ];

    /// The stable id (`rule_id`), shared with the Sigma rules in `rules/`.
    pub fn id(self) -> &'static str {
        match self {
            Self::HandshakeFloodSource => "KCPW-001",
            Self::HandshakeFloodGlobal => "KCPW-002",
            Self::FailedHandshakesSource => "KCPW-003",
            Self::ConvScanSource => "KCPW-004",
            Self::InvalidBurst => "KCPW-005",
            Self::DeadLinkBurst => "KCPW-006",
            Self::ErrorRateSpike => "KCPW-007",
            Self::ChurnSource => "KCPW-008",
            Self::PerIpCap => "KCPW-009",
            Self::DecryptFailedSource => "KCPW-010",
        }
    }

    /// The stable name (`rule_name`).
    pub fn name(self) -> &'static str {
        match self {
            Self::HandshakeFloodSource => "handshake_flood_source",
            Self::HandshakeFloodGlobal => "handshake_flood_global",
            Self::FailedHandshakesSource => "failed_handshakes_source",
            Self::ConvScanSource => "conv_scan_source",
            Self::InvalidBurst => "invalid_datagram_burst",
            Self::DeadLinkBurst => "dead_link_burst",
            Self::ErrorRateSpike => "error_rate_spike",
            Self::ChurnSource => "connection_churn_source",
            Self::PerIpCap => "per_ip_cap_reached",
            Self::DecryptFailedSource => "decrypt_failed_source",
        }
    }

    /// The MITRE ATT&CK technique where one fits.
    pub fn technique(self) -> Option<&'static str> {
        match self {
            // Network Denial of Service: Direct Network Flood.
            Self::HandshakeFloodSource | Self::HandshakeFloodGlobal | Self::InvalidBurst => {
                Some("T1498.001")
            }
            // Endpoint Denial of Service: Service Exhaustion Flood.
            Self::ChurnSource | Self::PerIpCap => Some("T1499.002"),
            // Brute Force (tokens guessed against `authenticate`, cookies forged).
            Self::FailedHandshakesSource => Some("T1110"),
            // Network Service Discovery.
            Self::ConvScanSource => Some("T1046"),
            // Data Manipulation: Transmitted Data Manipulation (datagrams of a live session
            // altered in flight, or forged in its name).
            Self::DecryptFailedSource => Some("T1565.002"),
            Self::DeadLinkBurst | Self::ErrorRateSpike => None,
        }
    }

    /// How severe its alert is.
    pub fn severity(self) -> Severity {
        match self {
            Self::HandshakeFloodGlobal | Self::InvalidBurst => Severity::Alert,
            Self::DeadLinkBurst | Self::ErrorRateSpike => Severity::Warning,
            _ => Severity::Warning,
        }
    }

    /// What it counts per (`group`): `source` (one address, or an IPv6 /64) or `listener`.
    pub fn group(self) -> &'static str {
        if self.source_slot().is_some() {
            "source"
        } else {
            "listener"
        }
    }

    fn source_slot(self) -> Option<usize> {
        match self {
            Self::HandshakeFloodSource => Some(0),
            Self::FailedHandshakesSource => Some(1),
            Self::ConvScanSource => Some(2),
            Self::ChurnSource => Some(3),
            Self::PerIpCap => Some(4),
            Self::DecryptFailedSource => Some(5),
            _ => None,
        }
    }

    fn global_slot(self) -> usize {
        match self {
            Self::HandshakeFloodGlobal => 0,
            Self::InvalidBurst => 1,
            Self::DeadLinkBurst => 2,
            Self::ErrorRateSpike => 3,
            _ => 4,
        }
    }
}

/// Whether a rule is firing for one key, and when it last said so.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Firing {
    /// Unix ms of the first observation of the current episode (0: not firing).
    pub(crate) since: u64,
    /// Unix ms of the last alert or update emitted.
    pub(crate) last_emit: u64,
}

/// The detectors of one endpoint.
#[derive(Debug)]
pub struct Detectors {
    config: DetectorConfig,
    sources: SourceTable,
    handshakes: Window,
    /// Moving baseline of handshakes per window (an exponentially weighted average of past
    /// windows, updated once per window).
    baseline: u64,
    baseline_window: u64,
    invalid: Window,
    dead_links: Window,
    failed: Window,
    established: Window,
    global: [Firing; 5],
    alerts: Vec<Alert>,
    refused: RefusalTable,
    /// Alerts emitted (first alerts and updates).
    pub alerts_total: u64,
}

impl Detectors {
    /// Detectors with `config`; the per-source table takes its memory now.
    pub fn new(config: DetectorConfig, hash_key: u64) -> Self {
        Self {
            sources: SourceTable::new(config.table_capacity, hash_key),
            handshakes: Window::default(),
            baseline: 0,
            baseline_window: 0,
            invalid: Window::default(),
            dead_links: Window::default(),
            failed: Window::default(),
            established: Window::default(),
            global: [Firing::default(); 5],
            alerts: Vec::new(),
            refused: RefusalTable::new(if config.refuse_ms > 0 { 1024 } else { 0 }, hash_key),
            alerts_total: 0,
            config,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &DetectorConfig {
        &self.config
    }

    /// Bytes the detectors hold, which no traffic changes.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.sources.memory_bytes()
    }

    /// Sources tracked now (at most the table capacity).
    pub fn sources_tracked(&self) -> usize {
        self.sources.len()
    }

    /// The oldest alert not taken yet.
    pub fn pop_alert(&mut self) -> Option<Alert> {
        (!self.alerts.is_empty()).then(|| self.alerts.remove(0))
    }

    fn source_rule(&mut self, rule: Rule, ip: IpAddr, now_ms: u64, observed: u32, t: Threshold) {
        let slot = rule.source_slot().expect("a per-source rule");
        let update = self.config.update_interval_ms;
        let entry = self.sources.entry(ip, now_ms);
        let firing = &mut entry.firing[slot];
        if observed < t.threshold {
            // An episode ends when its window has drained below the threshold for a while.
            if firing.since != 0 && now_ms >= firing.last_emit + t.window_ms {
                firing.since = 0;
            }
            return;
        }
        let (first_seen, emit) = if firing.since == 0 {
            firing.since = entry.first_seen.max(now_ms.saturating_sub(t.window_ms));
            (firing.since, true)
        } else {
            (firing.since, now_ms >= firing.last_emit + update)
        };
        if !emit {
            return;
        }
        let is_update = firing.last_emit != 0 && firing.last_emit >= first_seen;
        firing.last_emit = now_ms;
        self.push(Alert {
            rule,
            key: Some(ip),
            threshold: u64::from(t.threshold),
            window_ms: t.window_ms,
            observed: u64::from(observed),
            first_seen_ms: first_seen,
            last_seen_ms: now_ms,
            update: is_update,
        });
        self.enforce(rule, ip, now_ms);
    }

    fn enforce(&mut self, rule: Rule, ip: IpAddr, now_ms: u64) {
        let c = &self.config;
        if c.refuse_ms == 0 || !(c.enforce_rules.is_empty() || c.enforce_rules.contains(&rule)) {
            return;
        }
        if c.allow_list
            .iter()
            .any(|&(net, len)| in_network(ip, net, len))
        {
            return;
        }
        self.refused.refuse(ip, now_ms + c.refuse_ms);
    }

    /// Whether enforcement refuses new connections from `ip` now.
    pub fn is_refused(&self, ip: IpAddr, now_ms: u64) -> bool {
        self.config.refuse_ms > 0 && self.refused.is_refused(ip, now_ms)
    }

    fn global_rule(
        &mut self,
        rule: Rule,
        now_ms: u64,
        observed: u64,
        threshold: u64,
        window_ms: u64,
    ) {
        let update = self.config.update_interval_ms;
        let firing = &mut self.global[rule.global_slot()];
        if observed < threshold {
            if firing.since != 0 && now_ms >= firing.last_emit + window_ms {
                firing.since = 0;
            }
            return;
        }
        let (first_seen, emit) = if firing.since == 0 {
            firing.since = now_ms;
            (now_ms, true)
        } else {
            (firing.since, now_ms >= firing.last_emit + update)
        };
        if !emit {
            return;
        }
        let is_update = firing.last_emit >= first_seen && firing.last_emit != 0;
        firing.last_emit = now_ms;
        let t = Threshold {
            threshold: threshold.min(u64::from(u32::MAX)) as u32,
            window_ms,
        };
        self.push(Alert {
            rule,
            key: None,
            threshold: u64::from(t.threshold),
            window_ms: t.window_ms,
            observed,
            first_seen_ms: first_seen,
            last_seen_ms: now_ms,
            update: is_update,
        });
    }

    fn push(&mut self, alert: Alert) {
        self.alerts_total += 1;
        self.alerts.push(alert);
    }

    /// A handshake from `ip` (a HELLO in secure mode, a new source's first datagram in raw).
    pub fn handshake(&mut self, ip: IpAddr, now_ms: u64) {
        if !self.config.enabled {
            return;
        }
        let t = self.config.handshake_flood_source;
        let observed = self
            .sources
            .entry(ip, now_ms)
            .handshakes
            .add(now_ms, t.window_ms, 1);
        self.source_rule(Rule::HandshakeFloodSource, ip, now_ms, observed, t);

        let g = self.config.handshake_flood_global;
        let window_index = now_ms / g.window_ms.max(1);
        let count = u64::from(self.handshakes.add(now_ms, g.window_ms, 1));
        if window_index != self.baseline_window {
            // Once per window: the baseline moves an eighth of the way toward the last count.
            self.baseline = (self.baseline * 7 + count) / 8;
            self.baseline_window = window_index;
        }
        let threshold =
            u64::from(g.threshold).max(self.baseline * u64::from(self.config.spike_factor));
        self.global_rule(
            Rule::HandshakeFloodGlobal,
            now_ms,
            count,
            threshold,
            g.window_ms,
        );
    }

    /// A connection attempt from `ip` that failed.
    pub fn failed(&mut self, ip: IpAddr, reason: FailReason, per_ip_cap: bool, now_ms: u64) {
        if !self.config.enabled {
            return;
        }
        let t = self.config.failed_handshakes_source;
        let counts_as_failure = !matches!(reason, FailReason::Capacity | FailReason::RateLimited);
        if counts_as_failure {
            let observed = self
                .sources
                .entry(ip, now_ms)
                .failures
                .add(now_ms, t.window_ms, 1);
            self.source_rule(Rule::FailedHandshakesSource, ip, now_ms, observed, t);
        }
        if per_ip_cap {
            let t = self.config.per_ip_cap;
            let observed = self
                .sources
                .entry(ip, now_ms)
                .cap_refusals
                .add(now_ms, t.window_ms, 1);
            self.source_rule(Rule::PerIpCap, ip, now_ms, observed, t);
        }
        if counts_as_failure {
            let w = self.config.error_rate_window_ms;
            self.failed.add(now_ms, w, 1);
            self.error_rate(now_ms);
        }
    }

    /// A connection from `ip` established; `live` is how many sessions `ip` has now, this one
    /// included.
    pub fn established(&mut self, ip: IpAddr, live: u32, now_ms: u64) {
        if !self.config.enabled {
            return;
        }
        let t = self.config.churn_source;
        let established = self
            .sources
            .entry(ip, now_ms)
            .churn
            .add(now_ms, t.window_ms, 1);
        // Churn is connections that came and went: players behind one address (a NAT, or one
        // client endpoint's many connections) stay, and are not churn however many they are.
        let observed = established.saturating_sub(live);
        self.source_rule(Rule::ChurnSource, ip, now_ms, observed, t);
        self.established
            .add(now_ms, self.config.error_rate_window_ms, 1);
        self.error_rate(now_ms);
    }

    fn error_rate(&mut self, now_ms: u64) {
        let w = self.config.error_rate_window_ms;
        let failed = u64::from(self.failed.count(now_ms, w));
        let attempts = failed + u64::from(self.established.count(now_ms, w));
        if attempts < u64::from(self.config.error_rate_min_attempts) {
            return;
        }
        let percent = failed * 100 / attempts;
        self.global_rule(
            Rule::ErrorRateSpike,
            now_ms,
            percent,
            u64::from(self.config.error_rate_percent),
            w,
        );
    }

    /// A datagram from `ip` dropped as invalid, with the conv it named when it named one.
    pub fn dropped(&mut self, ip: IpAddr, trigger: DropTrigger, conv: Option<u32>, now_ms: u64) {
        if !self.config.enabled {
            return;
        }
        match trigger {
            // A live session's datagram that does not decrypt: altered or forged.
            DropTrigger::DecryptFailed => {
                let t = self.config.decrypt_failed_source;
                let observed =
                    self.sources
                        .entry(ip, now_ms)
                        .decrypt_failures
                        .add(now_ms, t.window_ms, 1);
                self.source_rule(Rule::DecryptFailedSource, ip, now_ms, observed, t);
            }
            // A stranger's conv (no session with it) or a wrong tag on a real one: probing.
            DropTrigger::UnknownConnection | DropTrigger::BadTag => {
                if let Some(conv) = conv {
                    let t = self.config.conv_scan_source;
                    let observed =
                        self.sources
                            .entry(ip, now_ms)
                            .distinct_convs(conv, now_ms, t.window_ms);
                    self.source_rule(Rule::ConvScanSource, ip, now_ms, observed, t);
                }
            }
            DropTrigger::OverLimit | DropTrigger::RateLimited => return,
            _ => {}
        }
        let t = self.config.invalid_burst;
        let count = u64::from(self.invalid.add(now_ms, t.window_ms, 1));
        self.global_rule(
            Rule::InvalidBurst,
            now_ms,
            count,
            u64::from(t.threshold),
            t.window_ms,
        );
    }

    /// A datagram from `ip` for a session this endpoint does not have, of a kind only an
    /// existing session sends (an ACK, a window probe or a PUSH acknowledging our data in raw
    /// mode; DATA or KEEPALIVE in secure mode), in the restart grace period after the endpoint
    /// started: a returning player of the process before, which says nothing about an attack.
    /// Only the conv-scan rule (KCPW-004) sees it: a player names its own conv, a scanner
    /// many.
    pub fn stale(&mut self, ip: IpAddr, conv: u32, now_ms: u64) {
        if !self.config.enabled {
            return;
        }
        let t = self.config.conv_scan_source;
        let observed = self
            .sources
            .entry(ip, now_ms)
            .distinct_convs(conv, now_ms, t.window_ms);
        self.source_rule(Rule::ConvScanSource, ip, now_ms, observed, t);
    }

    /// A connection closed for a dead link.
    pub fn dead_link(&mut self, now_ms: u64) {
        if !self.config.enabled {
            return;
        }
        let t = self.config.dead_link_burst;
        let count = u64::from(self.dead_links.add(now_ms, t.window_ms, 1));
        self.global_rule(
            Rule::DeadLinkBurst,
            now_ms,
            count,
            u64::from(t.threshold),
            t.window_ms,
        );
    }
}

const _: () = assert!(PER_SOURCE_RULES == 6);

/// Whether `ip` is in `net`/`len` (IPv4-mapped addresses compare as IPv4).
pub fn in_network(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    let canon = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    match (canon(ip), canon(net)) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let len = u32::from(len.min(32));
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let len = u32::from(len.min(128));
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

/// Sources refused until a time, in a fixed table (enforcement must not grow under a flood
/// either): 8 probed slots per key, the soonest-expiring one replaced when all are taken.
#[derive(Debug)]
struct RefusalTable {
    entries: Box<[(u128, u64)]>,
    hash_key: u64,
}

impl RefusalTable {
    const PROBES: usize = 8;

    fn new(capacity: usize, hash_key: u64) -> Self {
        Self {
            entries: vec![(0, 0); capacity].into_boxed_slice(),
            hash_key,
        }
    }

    fn slot(&self, key: u128, i: usize) -> usize {
        let n = self.entries.len();
        let start = table::mix(self.hash_key ^ key as u64 ^ ((key >> 64) as u64)) as usize % n;
        (start + i) % n
    }

    fn refuse(&mut self, ip: IpAddr, until: u64) {
        if self.entries.is_empty() {
            return;
        }
        let key = table::source_key(ip);
        let probes = Self::PROBES.min(self.entries.len());
        let mut chosen = self.slot(key, 0);
        for i in 0..probes {
            let index = self.slot(key, i);
            if self.entries[index].0 == key {
                chosen = index;
                break;
            }
            if self.entries[index].1 < self.entries[chosen].1 {
                chosen = index;
            }
        }
        self.entries[chosen] = (key, until);
    }

    fn is_refused(&self, ip: IpAddr, now_ms: u64) -> bool {
        if self.entries.is_empty() {
            return false;
        }
        let key = table::source_key(ip);
        (0..Self::PROBES.min(self.entries.len())).any(|i| {
            let (k, until) = self.entries[self.slot(key, i)];
            k == key && until > now_ms
        })
    }
}

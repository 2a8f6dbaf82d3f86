//! What the endpoint tells the outside: its counters, the queue of security events, the
//! samplers that bound drop and failure records, and the detectors that turn them into alerts.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};

use super::stats::{fail_key, DROP_KEYS, FAIL_KEYS};
use super::{EndpointStats, STALE_SESSION};
use crate::config::EndpointConfig;
use crate::detect::Detectors;
use crate::events::{
    ConnectionAttempted, ConnectionFailed, ConnectionRef, ConnectionStateUpdated, DropRule,
    FailReason, PacketDropped, Sampler, SecurityEvent,
};
use crate::lifecycle::{ConnectionState, DropTrigger};
use crate::severity::Severity;
use crate::uid::Uid;

/// Security events held between two drains; beyond it they are counted as lost. The runtime
/// drains after every batch, so this is only reached by a burst inside one batch; a shutdown
/// records two events per connection at once, so the limit grows with the connection limit.
const SECURITY_QUEUE_LIMIT: usize = 16_384;
const SECURITY_EVENTS_PER_CONNECTION: usize = 3;

/// A datagram a drop record is about: who sent it, to which of our addresses, its length, and
/// its conv and session once they are known.
#[derive(Debug, Clone, Copy)]
pub(super) struct Dropped {
    remote: SocketAddr,
    local: SocketAddr,
    conv: Option<u32>,
    uid: Option<Uid>,
    len: usize,
}

impl Dropped {
    /// A datagram of `len` bytes from `remote` to `local`, of no known conv or session.
    pub(super) fn new(remote: SocketAddr, local: SocketAddr, len: usize) -> Self {
        Self {
            remote,
            local,
            conv: None,
            uid: None,
            len,
        }
    }

    /// The conv the record names.
    pub(super) fn conv(self, conv: Option<u32>) -> Self {
        Self { conv, ..self }
    }

    /// The session the record names.
    pub(super) fn uid(self, uid: Option<Uid>) -> Self {
        Self { uid, ..self }
    }
}

/// The reporting side of the endpoint. It owns everything that is only ever written on the way
/// out (counters, records, alerts), so that every record goes through one queue with one
/// bound and one level filter, every drop and failure through its sampler, and every detector
/// input is followed at once by the alerts it raised. It knows nothing of sessions: callers
/// hand it the facts (a [`ConnectionRef`], a [`Dropped`]) and the extended clock reading.
pub(super) struct Reporter {
    /// Counters. Plain numbers with no invariant between them, so the endpoint bumps them
    /// directly where the thing counted happens.
    pub(super) stats: EndpointStats,
    security: VecDeque<SecurityEvent>,
    /// The most detailed severity recorded (`config.event_level`); `None` records nothing.
    level: Option<Severity>,
    /// How many events the queue holds at most.
    limit: usize,
    /// Unix time in milliseconds at the extended clock's zero (`config.unix_ms_at_zero`).
    unix_ms_at_zero: u64,
    drop_sampler: Sampler<PacketDropped, DROP_KEYS>,
    fail_sampler: Sampler<ConnectionFailed, FAIL_KEYS>,
    detectors: Detectors,
}

impl Reporter {
    /// The reporter for an endpoint with `config`; `detector_key` keys the detectors' tables.
    pub(super) fn new(config: &EndpointConfig, detector_key: u64) -> Self {
        let window = u64::from(config.sample_window_ms);
        Self {
            stats: EndpointStats {
                fec: crate::fec::FecStats {
                    enabled: config.fec.is_some(),
                    ..Default::default()
                },
                ..Default::default()
            },
            security: VecDeque::new(),
            level: config.event_level,
            limit: SECURITY_QUEUE_LIMIT.max(
                config
                    .max_connections
                    .saturating_mul(SECURITY_EVENTS_PER_CONNECTION),
            ),
            unix_ms_at_zero: config.unix_ms_at_zero,
            drop_sampler: Sampler::new(config.sample_burst, window),
            fail_sampler: Sampler::new(config.sample_burst, window),
            detectors: Detectors::new(config.detectors.clone(), detector_key),
        }
    }

    /// Whether any record is kept (building one can be skipped otherwise).
    pub(super) fn events_on(&self) -> bool {
        self.level.is_some()
    }

    /// Queues `event` if its severity is recorded; counts it as lost when the queue is full.
    pub(super) fn emit(&mut self, event: SecurityEvent) {
        let Some(level) = self.level else {
            return;
        };
        let severity = event.severity();
        if severity > level {
            return;
        }
        if self.security.len() >= self.limit {
            self.stats.events_lost += 1;
            self.stats.events_lost_by_severity[usize::from(severity.code())] += 1;
            return;
        }
        self.security.push_back(event);
    }

    /// The oldest queued event.
    pub(super) fn poll(&mut self) -> Option<SecurityEvent> {
        self.security.pop_front()
    }

    /// The detectors (for their memory bound and counters).
    pub(super) fn detectors(&self) -> &Detectors {
        &self.detectors
    }

    /// Feeds the detectors (`feed` gets them and the unix time of `now_extended`), then
    /// records the alerts that raised.
    pub(super) fn detect(&mut self, now_extended: u64, feed: impl FnOnce(&mut Detectors, u64)) {
        feed(&mut self.detectors, self.unix_ms_at_zero + now_extended);
        while let Some(alert) = self.detectors.pop_alert() {
            self.stats.alerts += 1;
            self.emit(SecurityEvent::Alert(alert));
        }
    }

    /// Whether enforcement refuses new connections from `ip` for now.
    pub(super) fn refuses(&self, ip: IpAddr, now_extended: u64) -> bool {
        self.detectors
            .is_refused(ip, self.unix_ms_at_zero + now_extended)
    }

    /// Hands a failed attempt from `ip` to the detectors (and its per-address cap refusal, if
    /// `rule` is one).
    pub(super) fn detect_failure(
        &mut self,
        ip: IpAddr,
        reason: FailReason,
        rule: DropRule,
        now_extended: u64,
    ) {
        let cap = matches!(
            rule,
            DropRule::MaxConnectionsPerIp | DropRule::MaxConnectionsPerPrefix
        );
        self.detect(now_extended, |d, now_ms| d.failed(ip, reason, cap, now_ms));
    }

    /// Counts an attempt that never became a connection (and the datagram it dropped, if any).
    pub(super) fn count_failure(&mut self, reason: FailReason, trigger: Option<DropTrigger>) {
        self.stats.failed += 1;
        self.stats.failed_by_reason[fail_key(reason)] += 1;
        if let Some(trigger) = trigger {
            self.stats.dropped[EndpointStats::trigger_index(trigger)] += 1;
        }
    }

    /// The earliest end of a sampling window with counted records to report.
    pub(super) fn next_deadline(&self) -> Option<u64> {
        [
            self.drop_sampler.next_deadline(),
            self.fail_sampler.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Emits the aggregate records of sampling windows that have ended.
    pub(super) fn report_sampled(&mut self, now_extended: u64) {
        // Runs for every dropped datagram: the common case (no window with counted drops has
        // ended) must cost a few compares, not the copies `take_expired` makes.
        let due = |deadline: Option<u64>| deadline.is_some_and(|d| d <= now_extended);
        if due(self.drop_sampler.next_deadline()) {
            for (mut last, count) in self.drop_sampler.take_expired(now_extended) {
                last.suppressed = count;
                self.emit(SecurityEvent::PacketDropped(last));
            }
        }
        if due(self.fail_sampler.next_deadline()) {
            for (mut last, count) in self.fail_sampler.take_expired(now_extended) {
                last.suppressed = count;
                self.emit(SecurityEvent::ConnectionFailed(last));
            }
        }
    }

    /// A first datagram that could not open a connection (`failed.conn`): the attempt and its
    /// failure, sampled per reason so a flood of forged openings cannot flood the log.
    pub(super) fn sampled_failure(&mut self, failed: ConnectionFailed, now_extended: u64) {
        let conn = failed.conn;
        // Windows that ended before their timer ran are reported first, so this record starts
        // a new window as an individual one (suppressed 0) instead of absorbing an aggregate.
        self.report_sampled(now_extended);
        if let Some((mut failed, suppressed)) =
            self.fail_sampler
                .sample(fail_key(failed.reason), now_extended, failed)
        {
            failed.suppressed = suppressed;
            self.emit(SecurityEvent::ConnectionAttempted(ConnectionAttempted {
                conn,
            }));
            self.state_change(conn, ConnectionState::Attempted, ConnectionState::Closed);
            self.emit(SecurityEvent::ConnectionFailed(failed));
        }
    }

    /// Records a connection's move from `old` to `new`.
    pub(super) fn state_change(
        &mut self,
        conn: ConnectionRef,
        old: ConnectionState,
        new: ConnectionState,
    ) {
        self.emit(SecurityEvent::ConnectionStateUpdated(
            ConnectionStateUpdated { conn, old, new },
        ));
    }

    /// A dropped datagram: counted, fed to the detectors, and recorded through its sampler.
    pub(super) fn dropped(
        &mut self,
        datagram: Dropped,
        trigger: DropTrigger,
        rule: DropRule,
        now_extended: u64,
    ) {
        let key = EndpointStats::trigger_index(trigger);
        self.stats.dropped[key] += 1;
        let Dropped {
            remote,
            local,
            conv,
            uid,
            len,
        } = datagram;
        self.detect(now_extended, |d, now_ms| {
            match conv.filter(|_| rule == STALE_SESSION) {
                // A returning player of the process before a restart: only the conv-scan rule.
                Some(conv) => d.stale(remote.ip(), conv, now_ms),
                None => d.dropped(remote.ip(), trigger, conv, now_ms),
            }
        });
        if !self.events_on() {
            return;
        }
        let dropped = PacketDropped {
            remote,
            local,
            conv,
            uid,
            trigger,
            rule,
            len: len as u32,
            suppressed: 0,
        };
        // As in `sampled_failure`: ended windows are reported before a new one starts.
        self.report_sampled(now_extended);
        if let Some((mut dropped, suppressed)) =
            self.drop_sampler.sample(key, now_extended, dropped)
        {
            dropped.suppressed = suppressed;
            self.emit(SecurityEvent::PacketDropped(dropped));
        }
    }
}

/// A first datagram that tried to open a connection: who sent it, to which of our addresses,
/// and the conv it named (0 for a secure HELLO, which names none).
#[derive(Debug, Clone, Copy)]
pub(super) struct Attempt {
    pub(super) remote: SocketAddr,
    pub(super) local: SocketAddr,
    pub(super) conv: u32,
}

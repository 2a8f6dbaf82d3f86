//! What the I/O thread itself reports: the listener's start and stop, periodic stats, network
//! errors (sampled, with ICMP unreachable repeats aggregated), and moving the endpoint's records
//! into the ring.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use kcpwatch_proto::events::{
    CappedText, ErrorEvent, ErrorType, ListenerSettings, ListenerStarted, ListenerStopped,
    StatsEvent,
};
use kcpwatch_proto::SecurityEvent;

use super::IoThread;
use crate::udp::SendFailure;

/// How long shutdown waits for the log thread to make room for the final records.
pub(super) const SHUTDOWN_LOG_PATIENCE: Duration = Duration::from_secs(1);

/// Send and ICMP errors logged one by one per window before the rest are only counted.
pub(super) const ERROR_SAMPLE_BURST: u32 = 20;

pub(super) const ERROR_SAMPLE_WINDOW_MS: u64 = 1_000;

/// Sampler keys for errors the I/O thread reports.
pub(super) const SEND_FAILURE: usize = 0;

pub(super) const ICMP_ERROR: usize = 1;

/// Unreachable reports of episodes already logged are aggregated over this long.
pub(super) const UNREACHABLE_AGGREGATE_MS: u64 = 10_000;

/// Counts the unreachable reports that add nothing to a record already written (the same
/// peer's episode goes on), for one aggregate record per `UNREACHABLE_AGGREGATE_MS`: a
/// crashed player's host answers every datagram of a 30 Hz broadcast with ICMP.
#[derive(Default)]
pub(super) struct UnreachableRepeats {
    count: u64,
    /// When the first of them came (ms since the thread started).
    since_ms: Option<u64>,
    last: Option<SendFailure>,
}

impl UnreachableRepeats {
    pub(super) fn note(&mut self, failure: SendFailure, now_ms: u64) {
        self.count += 1;
        self.since_ms.get_or_insert(now_ms);
        self.last = Some(failure);
    }

    pub(super) fn deadline(&self) -> Option<u64> {
        self.since_ms.map(|since| since + UNREACHABLE_AGGREGATE_MS)
    }

    /// The last report and how many there were, once their window has ended.
    pub(super) fn take(&mut self, now_ms: u64) -> Option<(SendFailure, u64)> {
        if !self.deadline().is_some_and(|due| now_ms >= due) {
            return None;
        }
        self.since_ms = None;
        let count = std::mem::take(&mut self.count);
        self.last.take().map(|last| (last, count))
    }
}

impl IoThread {
    /// Moves the endpoint's security events into the ring and wakes the log thread. Never
    /// blocks: a full ring drops and counts.
    pub(super) fn publish_events(&mut self) {
        self.publish_events_until(None);
    }

    /// Like [`IoThread::publish_events`], but a full ring is given until `patience` to make
    /// room. Only for shutdown: no datagram waits any more, and the closes it records are the
    /// summaries an analyst needs most.
    pub(super) fn publish_events_until(&mut self, patience: Option<Instant>) {
        let Some(link) = &self.shared.events else {
            return;
        };
        let time_us = self.iteration_time_us;
        let mut pushed = false;
        while let Some(event) = self.endpoint.poll_security_event() {
            if let Some(deadline) = patience {
                while !link.ring.has_room(event.lane()) && Instant::now() < deadline {
                    link.consumer.unpark();
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            link.ring.push(time_us, event);
            pushed = true;
        }
        let lost = self.endpoint.stats().events_lost_by_severity;
        if lost != self.upstream_lost {
            let mut delta = [0u64; 8];
            for (i, d) in delta.iter_mut().enumerate() {
                *d = lost[i] - self.upstream_lost[i];
            }
            link.ring.lost_upstream(&delta, time_us);
            self.upstream_lost = lost;
            pushed = true;
        }
        if pushed {
            link.consumer.unpark();
        }
    }

    pub(super) fn listener_started(&mut self) {
        let config = self.endpoint.config();
        let event = SecurityEvent::ListenerStarted(ListenerStarted {
            local: self.local,
            settings: ListenerSettings {
                mode: config.mode.as_str(),
                max_connections: config.max_connections.min(u32::MAX as usize) as u32,
                accept_inbound: config.accept_inbound,
                session: config.session,
            },
        });
        self.endpoint.record(event);
        if let Some(interval) = self.stats_interval() {
            self.next_stats = Some(Instant::now() + interval);
        }
        self.publish_events();
    }

    pub(super) fn listener_stopped(&mut self) {
        let stats = self.endpoint.stats();
        let event = SecurityEvent::ListenerStopped(ListenerStopped {
            local: self.local,
            uptime_ms: self.started.elapsed().as_millis() as u64,
            connections_total: stats.passive_opens + stats.active_opens,
        });
        self.endpoint.record(event);
    }

    pub(super) fn maybe_stats(&mut self) {
        let (Some(due), Some(interval)) = (self.next_stats, self.stats_interval()) else {
            return;
        };
        let now = Instant::now();
        if now < due {
            return;
        }
        self.next_stats = Some(now + interval);
        let e = self.endpoint.stats();
        let event = SecurityEvent::Stats(StatsEvent {
            local: Some(self.local),
            interval_ms: now.duration_since(self.last_stats).as_millis() as u64,
            connections: self.endpoint.connection_count() as u64,
            datagrams_in: e.datagrams_in,
            bytes_in: e.bytes_in,
            datagrams_out: self.stats.datagrams_out,
            bytes_out: self.stats.bytes_out,
            passive_opens: e.passive_opens,
            active_opens: e.active_opens,
            closed: e.closed,
            dropped: e.dropped_total(),
            failed: e.failed,
            send_errors: self.stats.send_errors,
            icmp_errors: self.stats.icmp_errors,
            panics: e.panics,
            log_lost: self
                .shared
                .events
                .as_ref()
                .map_or(0, |link| link.ring.lost()),
        });
        self.last_stats = now;
        self.endpoint.record(event);
    }

    /// A network error about `peer`, sampled per kind so a broken route cannot flood the log.
    pub(super) fn network_error(
        &mut self,
        key: usize,
        peer: SocketAddr,
        code: &'static str,
        message: std::fmt::Arguments<'_>,
    ) {
        if self.shared.events.is_none() {
            return;
        }
        let now_ms = self.started.elapsed().as_millis() as u64;
        let conn = self.endpoint.connection_for_peer(peer);
        let event = ErrorEvent {
            conn,
            peer: conn.is_none().then_some(peer),
            local: None,
            error_type: ErrorType::Network,
            code,
            message: CappedText::format(message),
            suppressed: 0,
        };
        if let Some((mut event, suppressed)) = self.error_sampler.sample(key, now_ms, event) {
            event.suppressed = suppressed;
            self.endpoint.record(SecurityEvent::Error(event));
        }
    }

    /// The aggregate records of error sampling windows that have ended.
    pub(super) fn report_suppressed_errors(&mut self) {
        let now_ms = self.started.elapsed().as_millis() as u64;
        self.report_unreachable_repeats(now_ms);
        if !self
            .error_sampler
            .next_deadline()
            .is_some_and(|d| d <= now_ms)
        {
            return;
        }
        for (mut event, count) in self.error_sampler.take_expired(now_ms) {
            event.suppressed = count;
            self.endpoint.record(SecurityEvent::Error(event));
        }
    }

    /// The aggregate record of unreachable reports that episodes already reported, once per
    /// `UNREACHABLE_AGGREGATE_MS` while there are any.
    pub(super) fn report_unreachable_repeats(&mut self, now_ms: u64) {
        let Some((last, count)) = self.unreachable_repeats.take(now_ms) else {
            return;
        };
        if self.shared.events.is_none() {
            return;
        }
        self.endpoint.record(SecurityEvent::Error(ErrorEvent {
            conn: None,
            peer: Some(last.remote),
            local: None,
            error_type: ErrorType::Network,
            code: last.kind,
            message: CappedText::format(format_args!(
                "the peers' hosts or networks went on refusing datagrams (ICMP); each \
                 connection's first report was logged"
            )),
            suppressed: count,
        }));
    }
}

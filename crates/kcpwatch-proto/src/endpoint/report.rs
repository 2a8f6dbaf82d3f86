//! What the endpoint reports: refused attempts, drops and violations, sampled, through the
//! detectors into the security queue.

use std::net::SocketAddr;

use super::{
    fail_key, ConnectionHandle, Endpoint, EndpointStats, SendError, GENERATION_MASK,
    SECURITY_EVENTS_PER_CONNECTION, SECURITY_QUEUE_LIMIT, STALE_SESSION,
};
use crate::detect::Detectors;
use crate::events::{
    CappedText, ConnectionAttempted, ConnectionFailed, ConnectionRef, ConnectionStateUpdated,
    Direction, DropRule, ErrorEvent, ErrorType, FailReason, PacketDropped, ProtocolViolation,
    SecurityEvent, Violation,
};
use crate::guard::GuardViolation;
use crate::lifecycle::{ConnectionState, DropTrigger};
use crate::session::{EngineError, Session, SessionSendError};

impl Endpoint {
    /// A first datagram that could not open a connection: the attempt and its failure, both
    /// sampled per reason so a flood of forged openings cannot flood the log.
    pub(super) fn failed_attempt(
        &mut self,
        remote: SocketAddr,
        local: SocketAddr,
        conv: u32,
        reason: FailReason,
        trigger: DropTrigger,
        rule: DropRule,
    ) {
        self.stats.failed += 1;
        self.stats.failed_by_reason[fail_key(reason)] += 1;
        self.stats.dropped[EndpointStats::trigger_index(trigger)] += 1;
        self.detect_failure(remote, reason, rule);
        if reason == FailReason::Malformed {
            // A malformed opening is an invalid datagram too (KCPW-005), not only a failure.
            let now_ms = self.unix_ms();
            self.detectors
                .dropped(remote.ip(), trigger, Some(conv), now_ms);
            self.report_alerts();
        }
        if !self.events_on() {
            return;
        }
        let unix_ms = self.config.unix_ms_at_zero + self.clock.extended();
        let conn = ConnectionRef {
            uid: self.uids.next(unix_ms),
            conv,
            peer: remote,
            local,
            direction: Direction::Inbound,
            user: crate::events::UserId::NONE,
        };
        let failed = ConnectionFailed {
            conn,
            reason,
            trigger: Some(trigger),
            rule,
            suppressed: 0,
        };
        // Windows that ended before their timer ran are reported first, so this record starts
        // a new window as an individual one (suppressed 0) instead of absorbing an aggregate.
        self.report_sampled(self.clock.extended());
        let now = self.clock.extended();
        if let Some((mut failed, suppressed)) =
            self.fail_sampler.sample(fail_key(reason), now, failed)
        {
            failed.suppressed = suppressed;
            self.emit(SecurityEvent::ConnectionAttempted(ConnectionAttempted {
                conn,
            }));
            self.emit(SecurityEvent::ConnectionStateUpdated(
                ConnectionStateUpdated {
                    conn,
                    old: ConnectionState::Attempted,
                    new: ConnectionState::Closed,
                },
            ));
            self.emit(SecurityEvent::ConnectionFailed(failed));
        }
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

    /// Records why a send was refused: application misuse is a protocol violation, an engine
    /// refusal a library error.
    pub(super) fn refused_send(&mut self, handle: ConnectionHandle, size: usize, error: SendError) {
        let conn = self.known_conn(handle);
        let size = size as u64;
        let (violation, limit) = match error {
            SendError::UnknownConnection | SendError::Session(SessionSendError::NotOpen) => {
                (Violation::MessageOnClosedConnection, 0)
            }
            SendError::Session(SessionSendError::TooLarge { limit, .. }) => {
                (Violation::OversizedMessage, limit as u64)
            }
            SendError::Session(SessionSendError::QueueFull { limit, .. }) => {
                (Violation::SendQueueFull, limit as u64)
            }
            SendError::Session(SessionSendError::Empty) => (Violation::EmptyMessage, 0),
            SendError::Session(SessionSendError::Engine(code)) => {
                let message = CappedText::format(format_args!(
                    "the engine refused a {size}-byte message the session had accepted"
                ));
                self.engine_error(handle, EngineError { code, message });
                return;
            }
        };
        self.stats.violations[EndpointStats::violation_index(violation)] += 1;
        self.emit(SecurityEvent::ProtocolViolation(ProtocolViolation {
            conn,
            violation,
            size,
            limit,
        }));
    }

    /// Records a send the application layer refused before it reached the endpoint (the
    /// JavaScript API checks sizes and state itself and reports refusals here).
    pub fn report_violation(&mut self, handle: ConnectionHandle, violation: Violation, size: u64) {
        self.stats.violations[EndpointStats::violation_index(violation)] += 1;
        let session = self.session(handle);
        let conn = self.known_conn(handle);
        let limit = match (violation, session) {
            (Violation::OversizedMessage, Some(s)) => s.send_ceiling as u64,
            (Violation::SendQueueFull, Some(s)) => s.config.max_send_queue_bytes as u64,
            _ => 0,
        };
        self.emit(SecurityEvent::ProtocolViolation(ProtocolViolation {
            conn,
            violation,
            size,
            limit,
        }));
    }

    /// The identity of a live connection, or of the one that last closed in the handle's slot.
    pub(super) fn known_conn(&self, handle: ConnectionHandle) -> Option<ConnectionRef> {
        if let Some(session) = self.session(handle) {
            return Some(session.conn_ref());
        }
        let slot = self.slots.get(handle.index() as usize)?;
        let next = handle.generation().wrapping_add(1) & GENERATION_MASK;
        (slot.generation & GENERATION_MASK == next)
            .then_some(slot.last_conn)
            .flatten()
    }

    pub(super) fn engine_error(&mut self, handle: ConnectionHandle, error: EngineError) {
        let conn = self.session(handle).map(Session::conn_ref);
        self.emit(SecurityEvent::Error(ErrorEvent {
            conn,
            peer: None,
            local: None,
            error_type: ErrorType::Library,
            code: error.code,
            message: error.message,
            suppressed: 0,
        }));
    }

    /// The next security event, oldest first (only recorded when
    /// [`EndpointConfig::event_level`](crate::config::EndpointConfig::event_level) is set). Events of one connection come in order.
    pub fn poll_security_event(&mut self) -> Option<SecurityEvent> {
        self.security.pop_front()
    }

    /// Records a security event that happened outside the endpoint (socket errors, stats), so
    /// it is ordered with the endpoint's own.
    pub fn record(&mut self, event: SecurityEvent) {
        self.emit(event);
    }

    /// Hands a failed attempt to the detectors (and its per-address cap refusal, if it was one).
    pub(super) fn detect_failure(
        &mut self,
        remote: SocketAddr,
        reason: FailReason,
        rule: DropRule,
    ) {
        let cap = matches!(
            rule,
            DropRule::MaxConnectionsPerIp | DropRule::MaxConnectionsPerPrefix
        );
        let now_ms = self.unix_ms();
        self.detectors.failed(remote.ip(), reason, cap, now_ms);
        self.report_alerts();
    }

    /// Enforcement: refuses a new connection from a source a detector refuses for now.
    pub(super) fn refused_by_detector(
        &mut self,
        remote: SocketAddr,
        local: SocketAddr,
        conv: u32,
    ) -> bool {
        if !self.detectors.is_refused(remote.ip(), self.unix_ms()) {
            return false;
        }
        self.stats.refused_by_detector += 1;
        self.failed_attempt(
            remote,
            local,
            conv,
            FailReason::RateLimited,
            DropTrigger::RateLimited,
            DropRule::RefusedByDetector,
        );
        true
    }

    /// Records the alerts the detectors raised.
    pub(super) fn report_alerts(&mut self) {
        while let Some(alert) = self.detectors.pop_alert() {
            self.stats.alerts += 1;
            self.emit(SecurityEvent::Alert(alert));
        }
    }

    /// The detectors (for their memory bound and counters).
    pub fn detectors(&self) -> &Detectors {
        &self.detectors
    }

    pub(super) fn events_on(&self) -> bool {
        self.config.event_level.is_some()
    }

    pub(super) fn emit(&mut self, event: SecurityEvent) {
        let Some(level) = self.config.event_level else {
            return;
        };
        let severity = event.severity();
        if severity > level {
            return;
        }
        let limit = SECURITY_QUEUE_LIMIT.max(
            self.config
                .max_connections
                .saturating_mul(SECURITY_EVENTS_PER_CONNECTION),
        );
        if self.security.len() >= limit {
            self.stats.events_lost += 1;
            self.stats.events_lost_by_severity[usize::from(severity.code())] += 1;
            return;
        }
        self.security.push_back(event);
    }

    pub(super) fn drop_datagram(
        &mut self,
        remote: SocketAddr,
        local: SocketAddr,
        conv: Option<u32>,
        uid: Option<crate::uid::Uid>,
        violation: GuardViolation,
        len: usize,
    ) {
        self.drop_trigger(
            remote,
            local,
            conv,
            uid,
            violation.trigger(),
            violation.rule(),
            len,
        );
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn drop_trigger(
        &mut self,
        remote: SocketAddr,
        local: SocketAddr,
        conv: Option<u32>,
        uid: Option<crate::uid::Uid>,
        trigger: DropTrigger,
        rule: DropRule,
        len: usize,
    ) {
        let key = EndpointStats::trigger_index(trigger);
        self.stats.dropped[key] += 1;
        let now_ms = self.unix_ms();
        match conv.filter(|_| rule == STALE_SESSION) {
            // A returning player of the process before a restart: only the conv-scan rule.
            Some(conv) => self.detectors.stale(remote.ip(), conv, now_ms),
            None => self.detectors.dropped(remote.ip(), trigger, conv, now_ms),
        }
        self.report_alerts();
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
        // As in `failed_attempt`: ended windows are reported before a new one starts.
        self.report_sampled(self.clock.extended());
        let now = self.clock.extended();
        if let Some((mut dropped, suppressed)) = self.drop_sampler.sample(key, now, dropped) {
            dropped.suppressed = suppressed;
            self.emit(SecurityEvent::PacketDropped(dropped));
        }
    }

    /// Unix time in milliseconds by the endpoint's clock.
    pub(super) fn unix_ms(&self) -> u64 {
        self.config.unix_ms_at_zero + self.clock.extended()
    }
}

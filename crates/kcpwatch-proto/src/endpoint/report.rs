//! What the endpoint reports, as glue between the sessions and the [`Reporter`]: refused
//! attempts, drops and violations named with the connection they concern.

use super::{Attempt, ConnectionHandle, Dropped, Endpoint, EndpointStats, SendError};
use crate::detect::Detectors;
use crate::events::{
    CappedText, ConnectionFailed, ConnectionRef, Direction, DropRule, ErrorEvent, ErrorType,
    FailReason, ProtocolViolation, SecurityEvent, Violation,
};
use crate::guard::GuardViolation;
use crate::lifecycle::DropTrigger;
use crate::session::{EngineError, Session, SessionSendError};

impl Endpoint {
    /// A first datagram that could not open a connection: the attempt and its failure, both
    /// sampled per reason so a flood of forged openings cannot flood the log.
    pub(super) fn failed_attempt(
        &mut self,
        attempt: Attempt,
        reason: FailReason,
        trigger: DropTrigger,
        rule: DropRule,
    ) {
        let Attempt {
            remote,
            local,
            conv,
        } = attempt;
        let now = self.clock.extended();
        self.reporter.count_failure(reason, Some(trigger));
        self.reporter.detect_failure(remote.ip(), reason, rule, now);
        if reason == FailReason::Malformed {
            // A malformed opening is an invalid datagram too (KCPW-005), not only a failure.
            self.reporter.detect(now, |d, now_ms| {
                d.dropped(remote.ip(), trigger, Some(conv), now_ms)
            });
        }
        if !self.reporter.events_on() {
            return;
        }
        let conn = ConnectionRef {
            uid: self.uids.next(self.unix_ms()),
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
        self.reporter.sampled_failure(failed, now);
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
        self.reporter.stats.violations[EndpointStats::violation_index(violation)] += 1;
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
        self.reporter.stats.violations[EndpointStats::violation_index(violation)] += 1;
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
        self.sessions.known_conn(handle)
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
        self.reporter.poll()
    }

    /// Records a security event that happened outside the endpoint (socket errors, stats), so
    /// it is ordered with the endpoint's own.
    pub fn record(&mut self, event: SecurityEvent) {
        self.emit(event);
    }

    /// Enforcement: refuses a new connection from a source a detector refuses for now.
    pub(super) fn refused_by_detector(&mut self, attempt: Attempt) -> bool {
        if !self
            .reporter
            .refuses(attempt.remote.ip(), self.clock.extended())
        {
            return false;
        }
        self.reporter.stats.refused_by_detector += 1;
        self.failed_attempt(
            attempt,
            FailReason::RateLimited,
            DropTrigger::RateLimited,
            DropRule::RefusedByDetector,
        );
        true
    }

    /// The detectors (for their memory bound and counters).
    pub fn detectors(&self) -> &Detectors {
        self.reporter.detectors()
    }

    pub(super) fn emit(&mut self, event: SecurityEvent) {
        self.reporter.emit(event);
    }

    /// A datagram refused by the guard: dropped with the violation's trigger and rule.
    pub(super) fn drop_datagram(&mut self, datagram: Dropped, violation: GuardViolation) {
        self.drop_trigger(datagram, violation.trigger(), violation.rule());
    }

    /// A dropped datagram: counted, fed to the detectors and recorded (sampled).
    pub(super) fn drop_trigger(&mut self, datagram: Dropped, trigger: DropTrigger, rule: DropRule) {
        let now = self.clock.extended();
        self.reporter.dropped(datagram, trigger, rule, now);
    }

    /// Unix time in milliseconds by the endpoint's clock.
    pub(super) fn unix_ms(&self) -> u64 {
        self.config.unix_ms_at_zero + self.clock.extended()
    }
}

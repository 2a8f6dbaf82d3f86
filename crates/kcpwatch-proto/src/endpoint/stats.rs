//! Endpoint-wide counters.

use crate::events::{FailReason, Violation};
use crate::lifecycle::DropTrigger;

#[cfg(doc)]
use super::Endpoint;

pub(super) const DROP_KEYS: usize = 11;

pub(super) const FAIL_KEYS: usize = 15;

/// Endpoint-wide counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointStats {
    /// Datagrams handed to the endpoint.
    pub datagrams_in: u64,
    /// Bytes handed to the endpoint.
    pub bytes_in: u64,
    /// Datagrams accepted by a session's guard.
    pub datagrams_accepted: u64,
    /// Dropped datagrams by trigger, indexed by [`EndpointStats::trigger_index`].
    pub dropped: [u64; 11],
    /// Attempts that never became connections, by reason, indexed like `fail_key`
    /// (see [`EndpointStats::failed_by`]).
    pub failed_by_reason: [u64; FAIL_KEYS],
    /// Secure mode: HELLOs received (with or without a cookie).
    pub hellos_received: u64,
    /// Secure mode: COOKIE replies sent.
    pub cookies_sent: u64,
    /// Secure mode: bytes sent to sources not yet validated (COOKIE and REJECT replies).
    pub bytes_sent_unvalidated: u64,
    /// Secure mode: bytes received in handshake datagrams from sources not yet validated.
    pub bytes_received_unvalidated: u64,
    /// Secure mode: REJECT replies sent.
    pub rejects_sent: u64,
    /// Secure mode: tokens handed to the application for authentication.
    pub auth_requests: u64,
    /// Secure mode: sessions that moved to a new peer address.
    pub peer_address_changes: u64,
    /// Sends the application had refused, by [`EndpointStats::violation_index`].
    pub violations: [u64; 4],
    /// Alerts raised by the detectors (first alerts and updates).
    pub alerts: u64,
    /// New connections refused because enforcement refuses their source for a while.
    pub refused_by_detector: u64,
    /// Secure mode: datagrams for a session that closed moments ago (the peer's remaining
    /// DISCONNECT copies, data in flight), counted without a record each.
    pub late_after_close: u64,
    /// Secure mode, server: stateless RESETs sent for session datagrams of unknown sessions.
    pub resets_sent: u64,
    /// Secure mode, client: RESETs that matched a datagram of ours and ended its session.
    pub resets_received: u64,
    /// ICMP unreachable reports about a live session's peer (see
    /// [`Endpoint::peer_unreachable`]).
    pub unreachable_reports: u64,
    /// Datagrams of the other mode: a secure HELLO at a raw server, plain KCP at a secure one
    /// (rule `mode_mismatch`).
    pub mode_mismatch: u64,
    /// Sessions opened by peers.
    pub passive_opens: u64,
    /// Sessions opened by `connect`.
    pub active_opens: u64,
    /// Sessions closed, for any reason.
    pub closed: u64,
    /// Panics caught inside sessions.
    pub panics: u64,
    /// Connection attempts that never became connections.
    pub failed: u64,
    /// Security events lost because the queue was full between two drains.
    pub events_lost: u64,
    /// Security events lost, by syslog severity.
    pub events_lost_by_severity: [u64; 8],
    /// Raw mode with FEC: kcp-go's FEC counters.
    pub fec: crate::fec::FecStats,
    /// Secure mode: unreliable datagrams, apart from the messages.
    pub unreliable: crate::secure::datagram::DatagramStats,
}

impl EndpointStats {
    /// The slot of `trigger` in [`EndpointStats::dropped`].
    pub fn trigger_index(trigger: DropTrigger) -> usize {
        match trigger {
            DropTrigger::TooShort => 0,
            DropTrigger::BadConv => 1,
            DropTrigger::BadLength => 2,
            DropTrigger::BadCmd => 3,
            DropTrigger::GuardViolation => 4,
            DropTrigger::UnknownConnection => 5,
            DropTrigger::OverLimit => 6,
            DropTrigger::BadTag => 7,
            DropTrigger::Replayed => 8,
            DropTrigger::RateLimited => 9,
            DropTrigger::DecryptFailed => 10,
        }
    }

    /// The slot of `violation` in [`EndpointStats::violations`].
    pub fn violation_index(violation: Violation) -> usize {
        match violation {
            Violation::OversizedMessage => 0,
            Violation::MessageOnClosedConnection => 1,
            Violation::EmptyMessage => 2,
            Violation::SendQueueFull => 3,
        }
    }

    /// Failed attempts for one reason.
    pub fn failed_by(&self, reason: FailReason) -> u64 {
        self.failed_by_reason[fail_key(reason)]
    }

    /// Dropped datagrams for one trigger.
    pub fn dropped_by(&self, trigger: DropTrigger) -> u64 {
        self.dropped[Self::trigger_index(trigger)]
    }

    /// All dropped datagrams.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().sum()
    }
}

pub(super) fn fail_key(reason: FailReason) -> usize {
    match reason {
        FailReason::HandshakeTimeout => 0,
        FailReason::InvalidCookie => 1,
        FailReason::ExpiredCookie => 2,
        FailReason::AuthRejected => 3,
        FailReason::RateLimited => 4,
        FailReason::Capacity => 5,
        FailReason::VersionMismatch => 6,
        FailReason::Malformed => 7,
        FailReason::DecryptFailed => 8,
        FailReason::UnknownServerKey => 9,
        FailReason::ServerAuthFailed => 10,
        FailReason::Unreachable => 11,
        FailReason::Shutdown => 12,
        FailReason::HandshakeAbandoned => 13,
        FailReason::StreamMismatch => 14,
    }
}

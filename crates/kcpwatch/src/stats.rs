//! The counters of one runtime, which the I/O thread keeps and the runtime hands out.

use kcpwatch_proto::EndpointStats;

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

//! The whole-connection summary a close record carries: counters, timings, RTT and history.

use std::net::SocketAddr;

use super::Session;
use crate::events::{ConnectionRef, Direction, History};
use crate::uid::Uid;

/// The one-record view of a connection (docs/events.md, the close summary).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionSummary {
    /// Connection id.
    pub uid: Uid,
    /// KCP conversation id.
    pub conv: u32,
    /// The peer.
    pub remote: SocketAddr,
    /// Our address the peer talks to.
    pub local: SocketAddr,
    /// Milliseconds from establishment to the summary.
    pub duration_ms: u64,
    /// Datagrams received and accepted by the guard.
    pub datagrams_in: u64,
    /// Bytes of accepted datagrams.
    pub bytes_in: u64,
    /// Datagrams produced.
    pub datagrams_out: u64,
    /// Bytes of produced datagrams.
    pub bytes_out: u64,
    /// Application payload bytes delivered to the application.
    pub payload_bytes_in: u64,
    /// Application payload bytes accepted from the application.
    pub payload_bytes_out: u64,
    /// Messages (or stream chunks) delivered.
    pub messages_in: u64,
    /// Messages accepted by `send`.
    pub messages_out: u64,
    /// Datagrams for this session refused by the guard.
    pub guard_drops: u64,
    /// Smoothed RTT in ms.
    pub srtt_ms: u32,
    /// RTT variance in ms.
    pub rttvar_ms: u32,
    /// Current retransmission timeout in ms.
    pub rto_ms: u32,
    /// Engine counters.
    pub engine: kcp::KcpCounters,
    /// Zeek-style activity history (see [`History`]).
    pub history: History,
    /// Who opened the connection.
    pub direction: Direction,
    /// Secure mode: unreliable datagrams (`sendDatagram`), apart from the messages.
    pub unreliable: crate::secure::datagram::DatagramCounters,
}

impl ConnectionSummary {
    /// A summary with identity only, for a session whose counters could not be read.
    pub fn empty(conn: ConnectionRef) -> Self {
        Self {
            uid: conn.uid,
            conv: conn.conv,
            remote: conn.peer,
            local: conn.local,
            duration_ms: 0,
            datagrams_in: 0,
            bytes_in: 0,
            datagrams_out: 0,
            bytes_out: 0,
            payload_bytes_in: 0,
            payload_bytes_out: 0,
            messages_in: 0,
            messages_out: 0,
            guard_drops: 0,
            srtt_ms: 0,
            rttvar_ms: 0,
            rto_ms: 0,
            engine: kcp::KcpCounters::default(),
            history: History::default(),
            direction: conn.direction,
            unreliable: Default::default(),
        }
    }
}

impl Session {
    /// Notes in the history what the engine did since the last call. Letters (upper case for
    /// the originator): D data, A pure acknowledgement, W window probe, R retransmission
    /// (sent) or duplicate data (received), G a datagram the guard refused.
    pub(super) fn update_history(&mut self) {
        let now = self.kcp.counters();
        let seen = self.history_seen;
        let peer_is_originator = self.direction == Direction::Inbound;
        let mut note = |changed: bool, letter: u8, by_peer: bool| {
            if changed {
                self.history.note(letter, by_peer == peer_is_originator);
            }
        };
        note(now.in_push_segs > seen.in_push_segs, b'd', true);
        note(now.acks_received > seen.acks_received, b'a', true);
        note(
            now.window_probes_received > seen.window_probes_received,
            b'w',
            true,
        );
        note(now.repeat_segs > seen.repeat_segs, b'r', true);
        note(now.out_push_segs > seen.out_push_segs, b'd', false);
        note(now.acks_sent > seen.acks_sent, b'a', false);
        note(
            now.window_probes_sent > seen.window_probes_sent,
            b'w',
            false,
        );
        note(
            now.retrans_segs + now.fast_retrans_segs > seen.retrans_segs + seen.fast_retrans_segs,
            b'r',
            false,
        );
        self.history_seen = now;
    }

    pub(crate) fn summary(&self, now_extended: u64) -> ConnectionSummary {
        let sink = self.kcp.output_ref();
        ConnectionSummary {
            uid: self.uid,
            conv: self.conv,
            remote: self.remote,
            local: self.local,
            duration_ms: now_extended.saturating_sub(self.started_at_extended),
            datagrams_in: self.datagrams_in,
            bytes_in: self.bytes_in,
            datagrams_out: sink.datagrams,
            bytes_out: sink.bytes,
            payload_bytes_in: self.payload_bytes_in,
            payload_bytes_out: self.payload_bytes_out,
            messages_in: self.messages_in,
            messages_out: self.messages_out,
            guard_drops: self.guard_drops,
            srtt_ms: self.kcp.srtt(),
            rttvar_ms: self.kcp.rttvar(),
            rto_ms: self.kcp.rto(),
            engine: self.kcp.counters(),
            history: self.history,
            direction: self.direction,
            unreliable: self.unreliable,
        }
    }
}

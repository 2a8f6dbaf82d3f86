//! The whole-connection summary a close record carries: counters, timings, RTT and history.

use super::Session;
use crate::events::{ConnectionSummary, Direction};

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

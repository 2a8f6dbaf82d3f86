//! Listener-wide totals of per-session counters (docs/metrics.md): the sum over closed sessions is
//! kept as sessions close (a fixed-size add, no allocation), and the live sessions are added
//! when the totals are read ([`crate::Endpoint::session_totals`], O(sessions) per read,
//! nothing per packet). Smoothed RTTs go into a fixed-bucket histogram that gives p50, p90,
//! p99 and the maximum without keeping samples.

use crate::session::ConnectionSummary;

/// Upper bounds (inclusive, in ms) of the RTT histogram's buckets; a last bucket takes
/// everything above the largest bound.
pub const RTT_BUCKETS_MS: [u32; 20] = [
    1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750, 1000, 2000, 5000,
];

/// A fixed-bucket histogram of RTT samples in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RttHistogram {
    /// Samples per bucket: `counts[i]` holds samples `<= RTT_BUCKETS_MS[i]` (and above the
    /// previous bound); the last slot holds samples above every bound.
    pub counts: [u64; RTT_BUCKETS_MS.len() + 1],
    /// Samples taken.
    pub count: u64,
    /// Sum of the samples, in ms.
    pub sum_ms: u64,
    /// Largest sample, in ms (0 before any).
    pub max_ms: u32,
}

impl RttHistogram {
    /// Records one sample.
    pub fn record(&mut self, ms: u32) {
        let bucket = RTT_BUCKETS_MS.partition_point(|&bound| bound < ms);
        self.counts[bucket] += 1;
        self.count += 1;
        self.sum_ms += u64::from(ms);
        self.max_ms = self.max_ms.max(ms);
    }

    /// Adds another histogram's samples.
    pub fn merge(&mut self, other: &RttHistogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.count += other.count;
        self.sum_ms += other.sum_ms;
        self.max_ms = self.max_ms.max(other.max_ms);
    }

    /// The `q` quantile (0 < q <= 1) as the upper bound of the bucket that holds it, never
    /// above the largest sample; 0 without samples.
    pub fn quantile(&self, q: f64) -> u32 {
        if self.count == 0 {
            return 0;
        }
        // The rank of the sample at quantile q, 1-based: ceil(q * count), at least 1.
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (i, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let bound = RTT_BUCKETS_MS.get(i).copied().unwrap_or(u32::MAX);
                return bound.min(self.max_ms);
            }
        }
        self.max_ms
    }
}

/// Per-session counters summed over sessions (kcp-go SNMP names in brackets).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionTotals {
    /// Sessions counted (closed ones, plus the live ones at read time).
    pub sessions: u64,
    /// Most sessions live at once [MaxConn].
    pub max_live: u64,
    /// Datagrams accepted by the sessions' guards.
    pub datagrams_in: u64,
    /// Bytes of those datagrams.
    pub bytes_in: u64,
    /// Datagrams the sessions produced.
    pub datagrams_out: u64,
    /// Bytes of those datagrams.
    pub bytes_out: u64,
    /// Payload bytes delivered to the application [BytesReceived].
    pub payload_bytes_in: u64,
    /// Payload bytes accepted from the application [BytesSent].
    pub payload_bytes_out: u64,
    /// Messages delivered.
    pub messages_in: u64,
    /// Messages accepted by `send`.
    pub messages_out: u64,
    /// Datagrams of a known session refused by its guard.
    pub guard_drops: u64,
    /// Engine counters: segments in [InSegs], out [OutSegs], retransmitted [RetransSegs], ...
    pub engine: kcp::KcpCounters,
    /// Smoothed RTT of each session that received an ACK (so had RTT samples): at close, and
    /// for live sessions at read time.
    pub srtt: RttHistogram,
}

impl SessionTotals {
    /// Adds one session's counters.
    pub fn add(&mut self, s: &ConnectionSummary) {
        self.sessions += 1;
        self.datagrams_in += s.datagrams_in;
        self.bytes_in += s.bytes_in;
        self.datagrams_out += s.datagrams_out;
        self.bytes_out += s.bytes_out;
        self.payload_bytes_in += s.payload_bytes_in;
        self.payload_bytes_out += s.payload_bytes_out;
        self.messages_in += s.messages_in;
        self.messages_out += s.messages_out;
        self.guard_drops += s.guard_drops;
        let (e, o) = (&mut self.engine, &s.engine);
        e.out_segs += o.out_segs;
        e.out_push_segs += o.out_push_segs;
        e.retrans_segs += o.retrans_segs;
        e.fast_retrans_segs += o.fast_retrans_segs;
        e.lost_segs += o.lost_segs;
        e.in_segs += o.in_segs;
        e.in_push_segs += o.in_push_segs;
        e.repeat_segs += o.repeat_segs;
        e.window_probes_sent += o.window_probes_sent;
        e.window_probes_received += o.window_probes_received;
        e.acks_sent += o.acks_sent;
        e.acks_received += o.acks_received;
        if o.rtt_min != 0 && (e.rtt_min == 0 || o.rtt_min < e.rtt_min) {
            e.rtt_min = o.rtt_min;
        }
        e.rtt_max = e.rtt_max.max(o.rtt_max);
        // A session that never had an ACK has no RTT sample, and its srtt (0) says nothing;
        // one with ACKs may have a 0 srtt (sub-millisecond samples on a fast link).
        if o.acks_received != 0 {
            self.srtt.record(s.srtt_ms);
        }
    }

    /// Records the number of live sessions, for the high-water mark.
    pub fn note_live(&mut self, live: usize) {
        self.max_live = self.max_live.max(live as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{ConnectionRef, Direction};
    use crate::uid::UidGenerator;

    fn summary(srtt: u32, bytes_in: u64, retrans: u64) -> ConnectionSummary {
        let addr = "127.0.0.1:1".parse().unwrap();
        let mut s = ConnectionSummary::empty(ConnectionRef {
            uid: UidGenerator::new(1).next(0),
            conv: 1,
            peer: addr,
            local: addr,
            direction: Direction::Inbound,
            user: crate::events::UserId::NONE,
        });
        s.srtt_ms = srtt;
        s.engine.acks_received = u64::from(srtt != 0);
        s.bytes_in = bytes_in;
        s.engine.retrans_segs = retrans;
        s.engine.in_segs = bytes_in / 10;
        s.engine.rtt_min = srtt.saturating_sub(1);
        s.engine.rtt_max = srtt + 1;
        s
    }

    #[test]
    fn histogram_quantiles_are_bucket_bounds_capped_by_the_max() {
        let mut h = RttHistogram::default();
        assert_eq!(h.quantile(0.5), 0);
        for ms in 1..=100 {
            h.record(ms);
        }
        assert_eq!(h.count, 100);
        assert_eq!(h.sum_ms, 5050);
        assert_eq!(h.max_ms, 100);
        // The 50th sample (50 ms) is in the bucket (30, 50].
        assert_eq!(h.quantile(0.5), 50);
        // The 90th (90 ms) in (75, 100].
        assert_eq!(h.quantile(0.9), 100);
        assert_eq!(h.quantile(0.99), 100);
        assert_eq!(h.quantile(1.0), 100);
        // Bucket edges: a sample equal to a bound belongs to that bound's bucket.
        let mut edge = RttHistogram::default();
        edge.record(10);
        assert_eq!(edge.counts[5], 1);
        edge.record(11);
        assert_eq!(edge.counts[6], 1);
        // Above every bound: the last bucket, and the quantile is the exact max.
        let mut big = RttHistogram::default();
        big.record(9000);
        assert_eq!(big.counts[RTT_BUCKETS_MS.len()], 1);
        assert_eq!(big.quantile(0.5), 9000);
        // A single small sample: the quantile never exceeds it.
        let mut one = RttHistogram::default();
        one.record(4);
        assert_eq!(one.quantile(0.99), 4);
    }

    #[test]
    fn totals_sum_sessions_and_merge_histograms() {
        let mut closed = SessionTotals::default();
        closed.add(&summary(20, 1000, 3));
        closed.add(&summary(0, 50, 0)); // no ACK: counted, not in the histogram
        closed.note_live(2);
        let mut read = closed;
        read.add(&summary(300, 10, 1));
        read.note_live(1);
        assert_eq!(read.sessions, 3);
        assert_eq!(read.max_live, 2);
        assert_eq!(read.bytes_in, 1060);
        assert_eq!(read.engine.retrans_segs, 4);
        assert_eq!(read.engine.in_segs, 100 + 5 + 1);
        assert_eq!(read.engine.rtt_min, 19);
        assert_eq!(read.engine.rtt_max, 301);
        assert_eq!(read.srtt.count, 2);
        assert_eq!(read.srtt.sum_ms, 320);
        assert_eq!(read.srtt.max_ms, 300);
        assert_eq!(read.srtt.quantile(0.5), 20);
        assert_eq!(read.srtt.quantile(0.99), 300);
        // Reading did not change the closed-session totals.
        assert_eq!(closed.sessions, 2);
        // A sub-millisecond srtt of a session that had ACKs is a sample of 0.
        let mut fast = summary(0, 10, 0);
        fast.engine.acks_received = 3;
        let mut with_fast = SessionTotals::default();
        with_fast.add(&fast);
        assert_eq!((with_fast.srtt.count, with_fast.srtt.counts[0]), (1, 1));
        let mut merged = RttHistogram::default();
        merged.merge(&closed.srtt);
        merged.merge(&read.srtt);
        assert_eq!(merged.count, 3);
        assert_eq!(merged.max_ms, 300);
    }
}

//! KCP

use std::cmp;
use std::cmp::Ordering;
use std::collections::VecDeque;
use std::fmt::{self, Debug};
use std::io::{self, Cursor, Write};

use bytes::{Buf, BufMut, BytesMut};

use crate::error::Error;
use crate::KcpResult;

const KCP_RTO_NDL: u32 = 30; // no delay min rto
const KCP_RTO_MIN: u32 = 100; // normal min rto
const KCP_RTO_DEF: u32 = 200;
const KCP_RTO_MAX: u32 = 60000;

const KCP_CMD_PUSH: u8 = 81; // cmd: push data
const KCP_CMD_ACK: u8 = 82; // cmd: ack
const KCP_CMD_WASK: u8 = 83; // cmd: window probe (ask)
const KCP_CMD_WINS: u8 = 84; // cmd: window size (tell)

const KCP_ASK_SEND: u32 = 1; // need to send IKCP_CMD_WASK
const KCP_ASK_TELL: u32 = 2; // need to send IKCP_CMD_WINS

const KCP_WND_SND: u16 = 32;
const KCP_WND_RCV: u16 = 128; // must >= max fragment size

const KCP_MTU_DEF: usize = 1400;
// const KCP_ACK_FAST: u32 = 3;

const KCP_INTERVAL: u32 = 100;
/// KCP Header size
pub const KCP_OVERHEAD: usize = 24;
const KCP_DEADLINK: u32 = 20;

const KCP_THRESH_INIT: u16 = 2;
const KCP_THRESH_MIN: u16 = 2;

const KCP_PROBE_INIT: u32 = 7000; // default: 7 secs to probe window size
const KCP_PROBE_LIMIT: u32 = 120000; // default: up to 120 secs to probe window
const KCP_FASTACK_LIMIT: u32 = 5; // max times to trigger fastack

/// PATCH(12): payload buffers of freed segments kept for reuse, per engine. Small, so an idle
/// session holds little (at most this many buffers of its largest segment, which the MSS bounds).
const SEGMENT_POOL: usize = 8;

/// Read `conv` from raw buffer
pub fn get_conv(mut buf: &[u8]) -> u32 {
    assert!(buf.len() >= KCP_OVERHEAD);
    buf.get_u32_le()
}

/// Set `conv` to raw buffer
pub fn set_conv(mut buf: &mut [u8], conv: u32) {
    assert!(buf.len() >= KCP_OVERHEAD);
    buf.put_u32_le(conv)
}

/// Get `sn` from raw buffer
pub fn get_sn(buf: &[u8]) -> u32 {
    assert!(buf.len() >= KCP_OVERHEAD);
    (&buf[12..]).get_u32_le()
}

#[inline]
fn bound(lower: u32, v: u32, upper: u32) -> u32 {
    cmp::min(cmp::max(lower, v), upper)
}

#[inline]
fn timediff(later: u32, earlier: u32) -> i32 {
    // PATCH(1): wrapping difference, never panics when the clock / sn wraps.
    later.wrapping_sub(earlier) as i32
}

/// Snapshot of one segment that is still in the send buffer (not yet acknowledged).
///
/// Returned by [`Kcp::in_flight`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InFlight {
    /// Clock value (`current`) at the segment's first transmission.
    pub first_ts: u32,
    /// Clock value (`current`) at the segment's latest transmission (the `ts` on the wire).
    pub last_ts: u32,
    /// Number of times the segment has been transmitted (0 if not sent yet).
    pub xmit: u32,
}

/// Protocol event counters of one [`Kcp`] instance (see [`Kcp::counters`]).
///
/// All counters start at zero and only grow (wrapping on overflow), except
/// `rtt_min` / `rtt_max` which track the extremes of accepted RTT samples.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KcpCounters {
    /// Segments of any kind (PUSH, ACK, WASK, WINS) encoded by `flush` / `flush_ack`.
    pub out_segs: u64,
    /// PUSH segments written, including every kind of retransmission.
    pub out_push_segs: u64,
    /// Retransmissions caused by an expired retransmission timer.
    pub retrans_segs: u64,
    /// Retransmissions triggered by the fast-ack (duplicate ack) logic.
    pub fast_retrans_segs: u64,
    /// Lost segments; counted on the same event as `retrans_segs` (timeout
    /// retransmission), mirroring kcp-go's SNMP `LostSegs`.
    pub lost_segs: u64,
    /// Segments accepted by `input` (conv, cmd and length valid).
    pub in_segs: u64,
    /// PUSH segments accepted by `input`.
    pub in_push_segs: u64,
    /// PUSH segments received that were duplicates (`sn < rcv_nxt` or already in `rcv_buf`).
    pub repeat_segs: u64,
    /// Window probes (WASK) sent.
    pub window_probes_sent: u64,
    /// Window probes (WASK) received.
    pub window_probes_received: u64,
    /// ACK segments sent.
    pub acks_sent: u64,
    /// ACK segments received.
    pub acks_received: u64,
    /// Smallest accepted RTT sample in milliseconds (0 until the first sample).
    pub rtt_min: u32,
    /// Largest accepted RTT sample in milliseconds (0 until the first sample).
    pub rtt_max: u32,
}

#[derive(Default, Clone, Debug)]
struct KcpSegment {
    conv: u32,
    cmd: u8,
    frg: u8,
    wnd: u16,
    ts: u32,
    sn: u32,
    una: u32,
    resendts: u32,
    rto: u32,
    fastack: u32,
    xmit: u32,
    /// PATCH(3): `current` at the first transmission (xmit 0 -> 1), used to
    /// validate the echoed `ts` of an ACK before taking an RTT sample.
    first_ts: u32,
    data: BytesMut,
}

impl KcpSegment {
    fn new_with_data(data: BytesMut) -> Self {
        KcpSegment {
            conv: 0,
            cmd: 0,
            frg: 0,
            wnd: 0,
            ts: 0,
            sn: 0,
            una: 0,
            resendts: 0,
            rto: 0,
            fastack: 0,
            xmit: 0,
            first_ts: 0,
            data,
        }
    }

    fn encode(&self, buf: &mut BytesMut) {
        if buf.remaining_mut() < self.encoded_len() {
            panic!(
                "REMAIN {} encoded {} {:?}",
                buf.remaining_mut(),
                self.encoded_len(),
                self
            );
        }

        buf.put_u32_le(self.conv);
        buf.put_u8(self.cmd);
        buf.put_u8(self.frg);
        buf.put_u16_le(self.wnd);
        buf.put_u32_le(self.ts);
        buf.put_u32_le(self.sn);
        buf.put_u32_le(self.una);
        buf.put_u32_le(self.data.len() as u32);
        buf.put_slice(&self.data);
    }

    fn encoded_len(&self) -> usize {
        KCP_OVERHEAD + self.data.len()
    }
}

#[derive(Default)]
struct KcpOutput<O>(O);

impl<O: Write> Write for KcpOutput<O> {
    #[inline]
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        trace!("[RO] {} bytes", data.len());
        self.0.write(data)
    }

    #[inline]
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// KCP control
#[derive(Default)]
pub struct Kcp<Output> {
    /// Conversation ID
    conv: u32,
    /// Maximum Transmission Unit
    mtu: usize,
    /// Maximum Segment Size
    mss: usize,
    /// Connection state
    state: i32,

    /// First unacknowledged packet
    snd_una: u32,
    /// Next packet
    snd_nxt: u32,
    /// Next packet to be received
    rcv_nxt: u32,

    /// Congestion window threshold
    ssthresh: u16,

    /// ACK receive variable RTT
    rx_rttval: u32,
    /// ACK receive static RTT
    rx_srtt: u32,
    /// Resend time (calculated by ACK delay time)
    rx_rto: u32,
    /// Minimal resend timeout
    rx_minrto: u32,

    /// Send window
    snd_wnd: u16,
    /// Receive window
    rcv_wnd: u16,
    /// Remote receive window
    rmt_wnd: u16,
    /// Congestion window
    cwnd: u16,
    /// Check window
    /// - IKCP_ASK_TELL, telling window size to remote
    /// - IKCP_ASK_SEND, ask remote for window size
    probe: u32,

    /// Last update time
    current: u32,
    /// Flush interval
    interval: u32,
    /// Next flush interval
    ts_flush: u32,
    xmit: u32,

    /// Enable nodelay
    nodelay: bool,
    /// Updated has been called or not
    updated: bool,

    /// Next check window timestamp
    ts_probe: u32,
    /// Check window wait time
    probe_wait: u32,
    /// PATCH(4): initial window probe wait (default `KCP_PROBE_INIT`)
    probe_init: u32,
    /// PATCH(4): maximal window probe wait (default `KCP_PROBE_LIMIT`)
    probe_limit: u32,

    /// Maximum resend time
    dead_link: u32,
    /// Maximum payload size
    incr: usize,

    snd_queue: VecDeque<KcpSegment>,
    rcv_queue: VecDeque<KcpSegment>,
    snd_buf: VecDeque<KcpSegment>,
    rcv_buf: VecDeque<KcpSegment>,

    /// Pending ACK
    acklist: VecDeque<(u32, u32)>,
    /// PATCH(12): payload buffers of acknowledged and delivered segments, reused by `send`
    /// and `input` so that a message does not allocate once the engine has warmed up.
    pool: Vec<BytesMut>,
    /// Where `flush` assembles a datagram. PATCH(15): allocated at the first flush with the
    /// capacity of one datagram (`mtu`: flush writes out before a segment would pass it), not
    /// upstream's `(mtu + overhead) * 3` at construction: 4,272 bytes of which at most a
    /// datagram's worth is ever used, a third of what an idle kcpwatch connection cost.
    buf: BytesMut,

    /// ACK number to trigger fast resend
    fastresend: u32,
    fastlimit: u32,
    /// Disable congestion control
    nocwnd: bool,
    /// Enable stream mode
    stream: bool,

    /// Get conv from the next input call
    input_conv: bool,

    /// PATCH(6): payload bytes in snd_queue + snd_buf
    waiting_bytes: usize,
    /// PATCH(6): payload bytes acknowledged so far (monotonic)
    acked_bytes: u64,
    /// PATCH(7): event counters
    counters: KcpCounters,

    output: KcpOutput<Output>,
}

impl<Output> Debug for Kcp<Output> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kcp")
            .field("conv", &self.conv)
            .field("mtu", &self.mtu)
            .field("mss", &self.mss)
            .field("state", &self.state)
            .field("snd_una", &self.snd_una)
            .field("snd_nxt", &self.snd_nxt)
            .field("rcv_nxt", &self.rcv_nxt)
            .field("ssthresh", &self.ssthresh)
            .field("rx_rttval", &self.rx_rttval)
            .field("rx_srtt", &self.rx_srtt)
            .field("rx_rto", &self.rx_rto)
            .field("rx_minrto", &self.rx_minrto)
            .field("snd_wnd", &self.snd_wnd)
            .field("rcv_wnd", &self.rcv_wnd)
            .field("rmt_wnd", &self.rmt_wnd)
            .field("cwnd", &self.cwnd)
            .field("probe", &self.probe)
            .field("current", &self.current)
            .field("interval", &self.interval)
            .field("ts_flush", &self.ts_flush)
            .field("xmit", &self.xmit)
            .field("nodelay", &self.nodelay)
            .field("updated", &self.updated)
            .field("ts_probe", &self.ts_probe)
            .field("probe_wait", &self.probe_wait)
            .field("probe_init", &self.probe_init)
            .field("probe_limit", &self.probe_limit)
            .field("dead_link", &self.dead_link)
            .field("incr", &self.incr)
            .field("snd_queue.len", &self.snd_queue.len())
            .field("rcv_queue.len", &self.rcv_queue.len())
            .field("snd_buf.len", &self.snd_buf.len())
            .field("rcv_buf.len", &self.rcv_buf.len())
            .field("acklist.len", &self.acklist.len())
            .field("buf.len", &self.buf.len())
            .field("fastresend", &self.fastresend)
            .field("fastlimit", &self.fastlimit)
            .field("nocwnd", &self.nocwnd)
            .field("stream", &self.stream)
            .field("input_conv", &self.input_conv)
            .field("waiting_bytes", &self.waiting_bytes)
            .field("acked_bytes", &self.acked_bytes)
            .field("counters", &self.counters)
            .finish()
    }
}

impl<Output> Kcp<Output> {
    /// Creates a KCP control object, `conv` must be equal in both endpoints in one connection.
    /// `output` is the callback object for writing.
    ///
    /// `conv` represents conversation.
    pub fn new(conv: u32, output: Output) -> Self {
        Kcp::construct(conv, output, false)
    }

    /// Creates a KCP control object in stream mode, `conv` must be equal in both endpoints in one connection.
    /// `output` is the callback object for writing.
    ///
    /// `conv` represents conversation.
    pub fn new_stream(conv: u32, output: Output) -> Self {
        Kcp::construct(conv, output, true)
    }

    fn construct(conv: u32, output: Output, stream: bool) -> Self {
        Kcp {
            conv,
            snd_una: 0,
            snd_nxt: 0,
            rcv_nxt: 0,
            ts_probe: 0,
            probe_wait: 0,
            probe_init: KCP_PROBE_INIT,
            probe_limit: KCP_PROBE_LIMIT,
            snd_wnd: KCP_WND_SND,
            rcv_wnd: KCP_WND_RCV,
            rmt_wnd: KCP_WND_RCV,
            cwnd: 0,
            incr: 0,
            probe: 0,
            mtu: KCP_MTU_DEF,
            mss: KCP_MTU_DEF - KCP_OVERHEAD,
            stream,

            buf: BytesMut::new(),

            snd_queue: VecDeque::new(),
            rcv_queue: VecDeque::new(),
            snd_buf: VecDeque::new(),
            rcv_buf: VecDeque::new(),

            state: 0,

            acklist: VecDeque::new(),
            pool: Vec::new(),

            rx_srtt: 0,
            rx_rttval: 0,
            rx_rto: KCP_RTO_DEF,
            rx_minrto: KCP_RTO_MIN,

            current: 0,
            interval: KCP_INTERVAL,
            ts_flush: KCP_INTERVAL,
            nodelay: false,
            updated: false,
            ssthresh: KCP_THRESH_INIT,
            fastresend: 0,
            fastlimit: KCP_FASTACK_LIMIT,
            nocwnd: false,
            xmit: 0,
            dead_link: KCP_DEADLINK,

            input_conv: false,
            waiting_bytes: 0,
            acked_bytes: 0,
            counters: KcpCounters::default(),
            output: KcpOutput(output),
        }
    }

    // move available data from rcv_buf -> rcv_queue
    pub fn move_buf(&mut self) {
        while !self.rcv_buf.is_empty() {
            let nrcv_que = self.rcv_queue.len();
            {
                let seg = self.rcv_buf.front().unwrap();
                if seg.sn == self.rcv_nxt && nrcv_que < self.rcv_wnd as usize {
                    self.rcv_nxt = self.rcv_nxt.wrapping_add(1);
                } else {
                    break;
                }
            }

            let seg = self.rcv_buf.pop_front().unwrap();
            self.rcv_queue.push_back(seg);
        }
    }

    /// Receive data from buffer
    pub fn recv(&mut self, buf: &mut [u8]) -> KcpResult<usize> {
        if self.rcv_queue.is_empty() {
            return Err(Error::RecvQueueEmpty);
        }

        let peeksize = self.peeksize()?;

        if peeksize > buf.len() {
            debug!("recv peeksize={} bufsize={} too small", peeksize, buf.len());
            return Err(Error::UserBufTooSmall);
        }

        let recover = self.rcv_queue.len() >= self.rcv_wnd as usize;

        // Merge fragment
        let mut cur = Cursor::new(buf);
        while let Some(seg) = self.rcv_queue.pop_front() {
            Write::write_all(&mut cur, &seg.data)?;

            trace!("recv sn={}", seg.sn);

            let last = seg.frg == 0;
            self.recycle(seg);
            if last {
                break;
            }
        }
        assert_eq!(cur.position() as usize, peeksize);

        self.move_buf();

        // fast recover
        if self.rcv_queue.len() < self.rcv_wnd as usize && recover {
            // ready to send back IKCP_CMD_WINS in ikcp_flush
            // tell remote my window size
            self.probe |= KCP_ASK_TELL;
        }

        Ok(cur.position() as usize)
    }

    /// Check buffer size without actually consuming it
    pub fn peeksize(&self) -> KcpResult<usize> {
        match self.rcv_queue.front() {
            Some(segment) => {
                if segment.frg == 0 {
                    return Ok(segment.data.len());
                }

                if self.rcv_queue.len() < segment.frg as usize + 1 {
                    return Err(Error::ExpectingFragment);
                }

                let mut len = 0;

                for segment in &self.rcv_queue {
                    len += segment.data.len();
                    if segment.frg == 0 {
                        break;
                    }
                }

                Ok(len)
            }
            None => Err(Error::RecvQueueEmpty),
        }
    }

    /// Send bytes into buffer
    pub fn send(&mut self, mut buf: &[u8]) -> KcpResult<usize> {
        let mut sent_size = 0;

        assert!(self.mss > 0);

        // append to previous segment in streaming mode (if possible)
        if self.stream {
            if let Some(old) = self.snd_queue.back_mut() {
                let l = old.data.len();
                if l < self.mss {
                    let capacity = self.mss - l;
                    let extend = cmp::min(buf.len(), capacity);

                    trace!(
                        "send stream mss={} last length={} extend={}",
                        self.mss,
                        l,
                        extend
                    );

                    let (lf, rt) = buf.split_at(extend);
                    old.data.extend_from_slice(lf);
                    buf = rt;

                    old.frg = 0;
                    sent_size += extend;
                    self.waiting_bytes += extend;
                }
            }

            if buf.is_empty() {
                return Ok(sent_size);
            }
        }

        let count = if buf.len() <= self.mss {
            1
        } else {
            buf.len().div_ceil(self.mss)
        };

        if count >= KCP_WND_RCV as usize {
            debug!("send bufsize={} mss={} too large", buf.len(), self.mss);
            return Err(Error::UserBufTooBig);
        }

        let count = cmp::max(1, count);

        for i in 0..count {
            let size = cmp::min(self.mss, buf.len());

            let (lf, rt) = buf.split_at(size);

            let data = self.segment_buf(lf);
            let mut new_segment = KcpSegment::new_with_data(data);
            buf = rt;

            new_segment.frg = if self.stream {
                0
            } else {
                (count - i - 1) as u8
            };

            self.snd_queue.push_back(new_segment);
            sent_size += size;
            self.waiting_bytes += size;
        }

        Ok(sent_size)
    }

    fn update_ack(&mut self, rtt: u32) {
        if self.rx_srtt == 0 {
            self.rx_srtt = rtt;
            self.rx_rttval = rtt / 2;
        } else {
            let delta = rtt.abs_diff(self.rx_srtt);
            // PATCH(1): saturating, a huge rtt must not overflow
            self.rx_rttval = 3u32.saturating_mul(self.rx_rttval).saturating_add(delta) / 4;
            self.rx_srtt = 7u32.saturating_mul(self.rx_srtt).saturating_add(rtt) / 8;
            if self.rx_srtt < 1 {
                self.rx_srtt = 1;
            }
        }
        let rto = self
            .rx_srtt
            .saturating_add(cmp::max(self.interval, 4u32.saturating_mul(self.rx_rttval)));
        self.rx_rto = bound(self.rx_minrto, rto, KCP_RTO_MAX);

        // PATCH(7)
        if self.counters.rtt_min == 0 || rtt < self.counters.rtt_min {
            self.counters.rtt_min = rtt;
        }
        if rtt > self.counters.rtt_max {
            self.counters.rtt_max = rtt;
        }
    }

    #[inline]
    fn shrink_buf(&mut self) {
        self.snd_una = match self.snd_buf.front() {
            Some(seg) => seg.sn,
            None => self.snd_nxt,
        };
    }

    fn parse_ack(&mut self, sn: u32) {
        if timediff(sn, self.snd_una) < 0 || timediff(sn, self.snd_nxt) >= 0 {
            return;
        }

        // PATCH(1): wrapping compare (as ikcp.c does) instead of a plain `u32::cmp`.
        let mut i = 0;
        while i < self.snd_buf.len() {
            match timediff(sn, self.snd_buf[i].sn).cmp(&0) {
                Ordering::Equal => {
                    if let Some(seg) = self.snd_buf.remove(i) {
                        self.account_acked(&seg);
                        self.recycle(seg);
                    }
                    break;
                }
                Ordering::Less => break,
                Ordering::Greater => i += 1,
            }
        }
    }

    /// PATCH(6): byte accounting for a segment removed from snd_buf by an ACK / UNA.
    #[inline]
    fn account_acked(&mut self, seg: &KcpSegment) {
        let n = seg.data.len();
        self.waiting_bytes = self.waiting_bytes.saturating_sub(n);
        self.acked_bytes = self.acked_bytes.wrapping_add(n as u64);
    }

    /// PATCH(5): binary search for `sn` in snd_buf (sorted by sn, wrapping order).
    fn snd_buf_index(&self, sn: u32) -> Option<usize> {
        self.snd_buf
            .binary_search_by(|seg| timediff(seg.sn, sn).cmp(&0))
            .ok()
    }

    /// PATCH(3): RTT sample for an ACK of `sn` echoing `ts`, only if `sn` is
    /// still in flight and `ts` is one of its transmission timestamps
    /// (`first_ts <= ts <= last ts`, wrapping compare).
    fn rtt_sample(&self, sn: u32, ts: u32) -> Option<u32> {
        let seg = &self.snd_buf[self.snd_buf_index(sn)?];
        if seg.xmit == 0 || timediff(ts, seg.first_ts) < 0 || timediff(seg.ts, ts) < 0 {
            return None;
        }
        let rtt = timediff(self.current, ts);
        if rtt >= 0 {
            Some(rtt as u32)
        } else {
            None
        }
    }

    fn parse_una(&mut self, una: u32) {
        while let Some(seg) = self.snd_buf.front() {
            if timediff(una, seg.sn) > 0 {
                if let Some(seg) = self.snd_buf.pop_front() {
                    self.account_acked(&seg);
                    self.recycle(seg);
                }
            } else {
                break;
            }
        }
    }

    fn parse_fastack(&mut self, sn: u32, ts: u32) {
        // `ts` is only used without `fastack-conserve` (silences unused-variable there)
        #[cfg(feature = "fastack-conserve")]
        let _ = ts;

        if timediff(sn, self.snd_una) < 0 || timediff(sn, self.snd_nxt) >= 0 {
            return;
        }

        for seg in &mut self.snd_buf {
            if timediff(sn, seg.sn) < 0 {
                break;
            } else if sn != seg.sn {
                #[cfg(feature = "fastack-conserve")]
                {
                    seg.fastack += 1;
                }
                #[cfg(not(feature = "fastack-conserve"))]
                if timediff(ts, seg.ts) >= 0 {
                    seg.fastack += 1;
                }
            }
        }
    }

    #[inline]
    fn ack_push(&mut self, sn: u32, ts: u32) {
        self.acklist.push_back((sn, ts));
    }

    /// Returns `true` if the segment was a duplicate (PATCH(7)).
    fn parse_data(&mut self, new_segment: KcpSegment) -> bool {
        let sn = new_segment.sn;

        if timediff(sn, self.rcv_nxt.wrapping_add(self.rcv_wnd as u32)) >= 0
            || timediff(sn, self.rcv_nxt) < 0
        {
            // outside the receive window: dropped (a duplicate only if already delivered)
            let delivered = timediff(sn, self.rcv_nxt) < 0;
            self.recycle(new_segment);
            return delivered;
        }

        let mut repeat = false;
        let mut new_index = self.rcv_buf.len();

        for segment in self.rcv_buf.iter().rev() {
            if segment.sn == sn {
                repeat = true;
                break;
            }
            if timediff(sn, segment.sn) > 0 {
                break;
            }
            new_index -= 1;
        }

        if repeat {
            self.recycle(new_segment);
        } else {
            self.rcv_buf.insert(new_index, new_segment);
        }

        // move available data from rcv_buf -> rcv_queue
        self.move_buf();

        repeat
    }

    /// Get `conv` from the next `input` call
    #[inline]
    pub fn input_conv(&mut self) {
        self.input_conv = true;
    }

    /// Check if Kcp is waiting for the next input
    #[inline]
    pub fn waiting_conv(&self) -> bool {
        self.input_conv
    }

    /// Set `conv` value
    #[inline]
    pub fn set_conv(&mut self, conv: u32) {
        self.conv = conv;
    }

    /// Get `conv`
    #[inline]
    pub fn conv(&self) -> u32 {
        self.conv
    }

    /// Call this when you received a packet from raw connection
    pub fn input(&mut self, buf: &[u8]) -> KcpResult<usize> {
        let input_size = buf.len();

        trace!("[RI] {} bytes", buf.len());

        if buf.len() < KCP_OVERHEAD {
            debug!(
                "input bufsize={} too small, at least {}",
                buf.len(),
                KCP_OVERHEAD
            );
            return Err(Error::InvalidSegmentSize(buf.len()));
        }

        let mut flag = false;
        let mut max_ack = 0;
        let old_una = self.snd_una;
        let mut latest_ts = 0;

        let mut buf = Cursor::new(buf);
        while buf.remaining() >= KCP_OVERHEAD {
            let conv = buf.get_u32_le();
            if conv != self.conv {
                // This allows getting conv from this call, which allows us to allocate
                // conv from the server side.
                if self.input_conv {
                    debug!("input conv={} updated, original conv={}", conv, self.conv);
                    self.conv = conv;
                    self.input_conv = false;
                } else {
                    debug!("input conv={} expected conv={} not match", conv, self.conv);
                    return Err(Error::ConvInconsistent(self.conv, conv));
                }
            }

            let cmd = buf.get_u8();
            let frg = buf.get_u8();
            let wnd = buf.get_u16_le();
            let ts = buf.get_u32_le();
            let sn = buf.get_u32_le();
            let una = buf.get_u32_le();
            let len = buf.get_u32_le() as usize;

            if buf.remaining() < len {
                debug!(
                    "input bufsize={} payload length={} remaining={} not match",
                    input_size,
                    len,
                    buf.remaining()
                );
                return Err(Error::InvalidSegmentDataSize(len, buf.remaining()));
            }

            match cmd {
                KCP_CMD_PUSH | KCP_CMD_ACK | KCP_CMD_WASK | KCP_CMD_WINS => {}
                _ => {
                    debug!("input cmd={} unrecognized", cmd);
                    return Err(Error::UnsupportedCmd(cmd));
                }
            }

            self.counters.in_segs = self.counters.in_segs.wrapping_add(1);

            // PATCH(3): take the RTT sample before parse_una / parse_ack can
            // remove the acknowledged segment from snd_buf (the ACK's `una`
            // usually already covers `sn`).
            let rtt_sample = if cmd == KCP_CMD_ACK {
                self.rtt_sample(sn, ts)
            } else {
                None
            };

            self.rmt_wnd = wnd;

            self.parse_una(una);
            self.shrink_buf();

            // PATCH(2): payload of this segment, copied safely below if needed
            let data_start = buf.position() as usize;

            match cmd {
                KCP_CMD_ACK => {
                    self.counters.acks_received = self.counters.acks_received.wrapping_add(1);
                    // PATCH(3): only a real echo of an in-flight segment moves the RTT estimate
                    if let Some(rtt) = rtt_sample {
                        self.update_ack(rtt);
                    }
                    self.parse_ack(sn);
                    self.shrink_buf();

                    if !flag {
                        flag = true;
                        max_ack = sn;
                        latest_ts = ts;
                    } else if timediff(sn, max_ack) > 0 {
                        #[cfg(feature = "fastack-conserve")]
                        {
                            max_ack = sn;
                            latest_ts = ts;
                        }
                        #[cfg(not(feature = "fastack-conserve"))]
                        if timediff(ts, latest_ts) > 0 {
                            max_ack = sn;
                            latest_ts = ts;
                        }
                    }

                    trace!(
                        "input ack: sn={} rtt={} rto={}",
                        sn,
                        timediff(self.current, ts),
                        self.rx_rto
                    );
                }
                KCP_CMD_PUSH => {
                    trace!("input psh: sn={} ts={}", sn, ts);
                    self.counters.in_push_segs = self.counters.in_push_segs.wrapping_add(1);

                    if timediff(sn, self.rcv_nxt.wrapping_add(self.rcv_wnd as u32)) < 0 {
                        self.ack_push(sn, ts);
                        if timediff(sn, self.rcv_nxt) >= 0 {
                            // PATCH(2): safe copy instead of set_len + read_exact
                            let sbuf =
                                self.segment_buf(&buf.get_ref()[data_start..data_start + len]);

                            let mut segment = KcpSegment::new_with_data(sbuf);

                            segment.conv = conv;
                            segment.cmd = cmd;
                            segment.frg = frg;
                            segment.wnd = wnd;
                            segment.ts = ts;
                            segment.sn = sn;
                            segment.una = una;

                            if self.parse_data(segment) {
                                self.counters.repeat_segs =
                                    self.counters.repeat_segs.wrapping_add(1);
                            }
                        } else {
                            self.counters.repeat_segs = self.counters.repeat_segs.wrapping_add(1);
                        }
                    }
                }
                KCP_CMD_WASK => {
                    // ready to send back IKCP_CMD_WINS in ikcp_flush
                    // tell remote my window size
                    trace!("input probe");
                    self.counters.window_probes_received =
                        self.counters.window_probes_received.wrapping_add(1);
                    self.probe |= KCP_ASK_TELL;
                }
                KCP_CMD_WINS => {
                    // Do nothing
                    trace!("input wins: {}", wnd);
                }
                _ => unreachable!(),
            }

            // Skip the payload (PATCH(2): it is never consumed through the cursor)
            buf.set_position((data_start + len) as u64);
        }

        if flag {
            self.parse_fastack(max_ack, latest_ts);
        }

        if timediff(self.snd_una, old_una) > 0 && self.cwnd < self.rmt_wnd {
            let mss = self.mss;
            if self.cwnd < self.ssthresh {
                self.cwnd += 1;
                self.incr += mss;
            } else {
                if self.incr < mss {
                    self.incr = mss;
                }
                self.incr += (mss * mss) / self.incr + (mss / 16);
                if (self.cwnd as usize + 1) * mss <= self.incr {
                    // self.cwnd += 1;
                    // PATCH(1): no silent u16 truncation
                    self.cwnd = cmp::min(
                        (self.incr + mss - 1) / if mss > 0 { mss } else { 1 },
                        u16::MAX as usize,
                    ) as u16;
                }
            }
            if self.cwnd > self.rmt_wnd {
                self.cwnd = self.rmt_wnd;
                self.incr = self.rmt_wnd as usize * mss;
            }
        }

        Ok(buf.position() as usize)
    }

    fn wnd_unused(&self) -> u16 {
        if self.rcv_queue.len() < self.rcv_wnd as usize {
            self.rcv_wnd - self.rcv_queue.len() as u16
        } else {
            0
        }
    }

    fn probe_wnd_size(&mut self) {
        // probe window size (if remote window size equals zero)
        if self.rmt_wnd == 0 {
            if self.probe_wait == 0 {
                self.probe_wait = self.probe_init;
                self.ts_probe = self.current.wrapping_add(self.probe_wait);
            } else if timediff(self.current, self.ts_probe) >= 0 {
                if self.probe_wait < self.probe_init {
                    self.probe_wait = self.probe_init;
                }

                self.probe_wait = self.probe_wait.saturating_add(self.probe_wait / 2);

                if self.probe_wait > self.probe_limit {
                    self.probe_wait = self.probe_limit;
                }

                self.ts_probe = self.current.wrapping_add(self.probe_wait);
                self.probe |= KCP_ASK_SEND;
            }
        } else {
            self.ts_probe = 0;
            self.probe_wait = 0;
        }
    }

    /// Determine when you should call `update`.
    /// Return when you should invoke `update` in millisec, if there is no `input`/`send` calling.
    /// You can call `update` in that time without calling it repeatly.
    pub fn check(&self, current: u32) -> u32 {
        if !self.updated {
            return 0;
        }

        let mut ts_flush = self.ts_flush;
        let mut tm_packet = u32::MAX;

        if timediff(current, ts_flush) >= 10000 || timediff(current, ts_flush) < -10000 {
            ts_flush = current;
        }

        if timediff(current, ts_flush) >= 0 {
            return 0;
        }

        let tm_flush = timediff(ts_flush, current) as u32;
        for seg in &self.snd_buf {
            let diff = timediff(seg.resendts, current);
            if diff <= 0 {
                return 0;
            }
            if (diff as u32) < tm_packet {
                tm_packet = diff as u32;
            }
        }

        let mut minimal = cmp::min(tm_packet, tm_flush);
        if minimal >= self.interval {
            minimal = self.interval;
        }

        minimal
    }

    /// Change MTU size, default is 1400
    ///
    /// MTU = Maximum Transmission Unit
    pub fn set_mtu(&mut self, mtu: usize) -> KcpResult<()> {
        if mtu < 50 || mtu < KCP_OVERHEAD {
            debug!("set_mtu mtu={} invalid", mtu);
            return Err(Error::InvalidMtu(mtu));
        }

        self.mtu = mtu;
        self.mss = self.mtu - KCP_OVERHEAD;
        // PATCH(15): the flush buffer follows the MTU at the next flush (`reserve_buf`).

        Ok(())
    }

    /// Get MTU
    #[inline]
    pub fn mtu(&self) -> usize {
        self.mtu
    }

    /// Set check interval
    pub fn set_interval(&mut self, interval: u32) {
        self.interval = interval.clamp(10, 5000);
    }

    /// Set nodelay
    ///
    /// fastest config: nodelay(true, 20, 2, true)
    ///
    /// `nodelay`: default is disable (false)
    /// `interval`: internal update timer interval in millisec, default is 100ms
    /// `resend`: 0:disable fast resend(default), 1:enable fast resend
    /// `nc`: `false`: normal congestion control(default), `true`: disable congestion control
    pub fn set_nodelay(&mut self, nodelay: bool, interval: i32, resend: i32, nc: bool) {
        if nodelay {
            self.nodelay = true;
            self.rx_minrto = KCP_RTO_NDL;
        } else {
            self.nodelay = false;
            self.rx_minrto = KCP_RTO_MIN;
        }

        match interval {
            interval if interval < 10 => self.interval = 10,
            interval if interval > 5000 => self.interval = 5000,
            _ => self.interval = interval as u32,
        }

        if resend >= 0 {
            self.fastresend = resend as u32;
        }

        self.nocwnd = nc;
    }

    /// Set `wndsize`
    /// set maximum window size: `sndwnd=32`, `rcvwnd=32` by default
    pub fn set_wndsize(&mut self, sndwnd: u16, rcvwnd: u16) {
        if sndwnd > 0 {
            self.snd_wnd = sndwnd;
        }

        if rcvwnd > 0 {
            self.rcv_wnd = cmp::max(rcvwnd, KCP_WND_RCV) as u16;
        }
    }

    /// `snd_wnd` Send window
    #[inline]
    pub fn snd_wnd(&self) -> u16 {
        self.snd_wnd
    }

    /// `rcv_wnd` Receive window
    #[inline]
    pub fn rcv_wnd(&self) -> u16 {
        self.rcv_wnd
    }

    /// Get `waitsnd`, how many packet is waiting to be sent
    #[inline]
    pub fn wait_snd(&self) -> usize {
        self.snd_buf.len() + self.snd_queue.len()
    }

    /// Get `rmt_wnd`, remote window size
    #[inline]
    pub fn rmt_wnd(&self) -> u16 {
        self.rmt_wnd
    }

    /// Set `rx_minrto`
    #[inline]
    pub fn set_rx_minrto(&mut self, rto: u32) {
        self.rx_minrto = rto;
    }

    /// Set `fastresend`
    #[inline]
    pub fn set_fast_resend(&mut self, fr: u32) {
        self.fastresend = fr;
    }

    /// KCP header size
    #[inline]
    pub fn header_len() -> usize {
        KCP_OVERHEAD
    }

    /// Enabled stream or not
    #[inline]
    pub fn is_stream(&self) -> bool {
        self.stream
    }

    /// Maximum Segment Size
    #[inline]
    pub fn mss(&self) -> usize {
        self.mss
    }

    /// Set maximum resend times
    #[inline]
    pub fn set_maximum_resend_times(&mut self, dead_link: u32) {
        self.dead_link = dead_link;
    }

    /// Check if KCP connection is dead (resend times excceeded)
    #[inline]
    pub fn is_dead_link(&self) -> bool {
        self.state != 0
    }

    // ---- PATCH(4): configurable window probe timing ----

    /// Configure zero-window probing: the first probe (WASK) is sent `init_ms`
    /// after the remote window was seen as zero, then the wait grows by 1.5x per
    /// probe up to `limit_ms`. Defaults: 7000 / 120000 (as ikcp).
    ///
    /// `init_ms` is raised to at least 1 and `limit_ms` to at least `init_ms`.
    pub fn set_probe_wait(&mut self, init_ms: u32, limit_ms: u32) {
        self.probe_init = cmp::max(init_ms, 1);
        self.probe_limit = cmp::max(limit_ms, self.probe_init);
    }

    // ---- PATCH(5): observability accessors ----

    /// First unacknowledged sequence number (`snd_una`).
    #[inline]
    pub fn snd_una(&self) -> u32 {
        self.snd_una
    }

    /// Next sequence number to be assigned to an outgoing PUSH segment (`snd_nxt`).
    #[inline]
    pub fn snd_nxt(&self) -> u32 {
        self.snd_nxt
    }

    /// Next sequence number expected from the peer (`rcv_nxt`).
    #[inline]
    pub fn rcv_nxt(&self) -> u32 {
        self.rcv_nxt
    }

    /// Smoothed round trip time in milliseconds (`rx_srtt`, 0 until the first sample).
    #[inline]
    pub fn srtt(&self) -> u32 {
        self.rx_srtt
    }

    /// Round trip time variation in milliseconds (`rx_rttval`).
    #[inline]
    pub fn rttvar(&self) -> u32 {
        self.rx_rttval
    }

    /// Current retransmission timeout in milliseconds (`rx_rto`).
    #[inline]
    pub fn rto(&self) -> u32 {
        self.rx_rto
    }

    /// Minimal retransmission timeout in milliseconds (`rx_minrto`).
    #[inline]
    pub fn min_rto(&self) -> u32 {
        self.rx_minrto
    }

    /// PATCH(9): sets the engine clock without flushing. `input()` measures RTT against this
    /// clock and `flush()` stamps segments with it, so a caller that flushes on its own
    /// schedule (ACKs right after a receive batch) sets it first.
    pub fn set_current(&mut self, current: u32) {
        self.current = current;
    }

    /// PATCH(10): whether `flush` has nothing to send until new input or a new `send`: no
    /// segment queued or in flight, no ACK owed, no window probe pending or due (a zero remote
    /// window is probed even with nothing to send). `check()` never answers later than one
    /// interval, so a caller that sleeps until `check()` wakes an idle connection 100 times a
    /// second in nodelay mode; with this it can sleep until its own timers instead.
    pub fn is_quiescent(&self) -> bool {
        self.snd_queue.is_empty()
            && self.snd_buf.is_empty()
            && self.acklist.is_empty()
            && self.probe == 0
            && self.rmt_wnd != 0
    }

    /// PATCH(16): whether [`Kcp::shrink_idle`] would give memory back: the engine is quiescent
    /// and keeps capacity in an empty queue, its segment pool or its flush buffer.
    pub fn holds_idle_memory(&self) -> bool {
        self.is_quiescent()
            && (self.snd_queue.capacity() > 0
                || self.snd_buf.capacity() > 0
                || self.acklist.capacity() > 0
                || (self.rcv_queue.is_empty() && self.rcv_queue.capacity() > 0)
                || (self.rcv_buf.is_empty() && self.rcv_buf.capacity() > 0)
                || self.pool.capacity() > 0
                || (self.buf.is_empty() && self.buf.capacity() > 0))
    }

    /// PATCH(16): gives back what a quiescent engine keeps for traffic: the capacity of its
    /// empty queues (a burst leaves them sized for a whole window), its segment pool (up to
    /// `SEGMENT_POOL` buffers of up to an MSS) and its flush buffer. Queues holding segments
    /// (messages the application has not read, out-of-order segments) are kept. A caller
    /// uses it once an engine has been quiet for a while, so that a busy engine keeps
    /// PATCH(12)'s allocation-free packet path; the next message allocates again. Does
    /// nothing unless `is_quiescent()`.
    pub fn shrink_idle(&mut self) {
        if !self.is_quiescent() {
            return;
        }
        fn release<T>(queue: &mut VecDeque<T>) {
            if queue.is_empty() {
                *queue = VecDeque::new();
            }
        }
        release(&mut self.snd_queue);
        release(&mut self.snd_buf);
        release(&mut self.acklist);
        release(&mut self.rcv_queue);
        release(&mut self.rcv_buf);
        self.pool = Vec::new();
        if self.buf.is_empty() {
            self.buf = BytesMut::new();
        }
    }

    /// PATCH(12): a segment payload holding `data`, in a pooled buffer when one is free.
    fn segment_buf(&mut self, data: &[u8]) -> BytesMut {
        match self.pool.pop() {
            Some(mut buf) => {
                buf.clear();
                buf.extend_from_slice(data);
                buf
            }
            None => BytesMut::from(data),
        }
    }

    /// PATCH(12): returns a freed segment's payload buffer to the pool.
    fn recycle(&mut self, segment: KcpSegment) {
        if self.pool.len() < SEGMENT_POOL && segment.data.capacity() <= self.mss.max(KCP_MTU_DEF) {
            self.pool.push(segment.data);
        }
    }

    /// PATCH(11): milliseconds until `flush` has work, for a caller that itself flushes after
    /// every `input` and every `send` (so owed ACKs, newly queued data and fast retransmits
    /// never wait for the interval tick): the earliest retransmission timeout of a segment in
    /// flight; `check()` (at most one interval) while ACKs, queued segments or a window probe
    /// wait; `u32::MAX` when quiescent. Unlike `check()` it does not wake a session that only
    /// waits for ACKs every interval: at 10,000 connections with data in flight that is the
    /// difference between a million wake-ups a second and one per retransmission timeout.
    pub fn next_flush_in(&self, current: u32) -> u32 {
        if !self.updated {
            return 0;
        }
        if self.is_quiescent() {
            return u32::MAX;
        }
        if !self.acklist.is_empty()
            || !self.snd_queue.is_empty()
            || self.probe != 0
            || self.rmt_wnd == 0
        {
            return self.check(current);
        }
        let mut earliest = u32::MAX;
        for seg in &self.snd_buf {
            let diff = timediff(seg.resendts, current);
            if diff <= 0 {
                return 0;
            }
            earliest = cmp::min(earliest, diff as u32);
        }
        earliest
    }

    /// Clock value passed to the last `update` call (milliseconds, wrapping u32).
    #[inline]
    pub fn current(&self) -> u32 {
        self.current
    }

    /// Congestion window in segments.
    #[inline]
    pub fn cwnd(&self) -> u16 {
        self.cwnd
    }

    /// Slow start threshold in segments.
    #[inline]
    pub fn ssthresh(&self) -> u16 {
        self.ssthresh
    }

    /// Flush interval in milliseconds.
    #[inline]
    pub fn interval(&self) -> u32 {
        self.interval
    }

    /// Whether nodelay mode is enabled.
    #[inline]
    pub fn nodelay(&self) -> bool {
        self.nodelay
    }

    /// Whether congestion control is disabled.
    #[inline]
    pub fn nocwnd(&self) -> bool {
        self.nocwnd
    }

    /// Fast resend trigger (number of skipping ACKs, 0 = disabled).
    #[inline]
    pub fn fast_resend(&self) -> u32 {
        self.fastresend
    }

    /// Maximum transmissions of one segment before the link is considered dead.
    #[inline]
    pub fn dead_link(&self) -> u32 {
        self.dead_link
    }

    /// Number of segments queued by `send` but not yet moved to the send buffer.
    #[inline]
    pub fn snd_queue_len(&self) -> usize {
        self.snd_queue.len()
    }

    /// Number of segments in the send buffer (sent at least once or about to be, not yet acknowledged).
    #[inline]
    pub fn snd_buf_len(&self) -> usize {
        self.snd_buf.len()
    }

    /// Number of segments ready to be read by `recv`.
    #[inline]
    pub fn rcv_queue_len(&self) -> usize {
        self.rcv_queue.len()
    }

    /// Number of out-of-order segments held in the receive buffer.
    #[inline]
    pub fn rcv_buf_len(&self) -> usize {
        self.rcv_buf.len()
    }

    /// Shared reference to the output object.
    #[inline]
    pub fn output_ref(&self) -> &Output {
        &self.output.0
    }

    /// Mutable reference to the output object.
    #[inline]
    pub fn output_mut(&mut self) -> &mut Output {
        &mut self.output.0
    }

    /// Transmission info of the segment with sequence number `sn` if it is still
    /// in the send buffer (not yet acknowledged), `None` otherwise.
    pub fn in_flight(&self, sn: u32) -> Option<InFlight> {
        let seg = &self.snd_buf[self.snd_buf_index(sn)?];
        Some(InFlight {
            first_ts: seg.first_ts,
            last_ts: seg.ts,
            xmit: seg.xmit,
        })
    }

    /// PATCH(13): `current` at the first transmission of the oldest segment not acknowledged
    /// yet, `None` when nothing sent is waiting for its ACK. A caller bounds with it how long
    /// a segment may go unacknowledged, which the transmission count alone does not: with
    /// RTO backoff 20 transmissions can take a quarter of an hour.
    pub fn oldest_unacked_since(&self) -> Option<u32> {
        // `snd_buf` is in sequence order, which is the order of first transmissions.
        self.snd_buf
            .front()
            .filter(|seg| seg.xmit > 0)
            .map(|seg| seg.first_ts)
    }

    // ---- PATCH(6): byte accounting ----

    /// Payload bytes accepted by `send` that are not acknowledged yet
    /// (snd_queue + snd_buf).
    #[inline]
    pub fn waiting_bytes(&self) -> usize {
        self.waiting_bytes
    }

    /// PATCH(14): splits the messages queued before the first flush again at the current MSS,
    /// after `set_mtu` lowered it (an MTU agreed in a handshake while messages waited).
    /// Segments already sent are not touched. Returns how many messages no longer fit
    /// KCP's fragment limit at the new MSS and were dropped.
    pub fn resegment_queue(&mut self) -> usize {
        let queued = std::mem::take(&mut self.snd_queue);
        self.waiting_bytes -= queued.iter().map(|s| s.data.len()).sum::<usize>();
        let mut message = Vec::new();
        let mut dropped = 0;
        for segment in queued {
            message.extend_from_slice(&segment.data);
            let last = self.stream || segment.frg == 0;
            self.recycle(segment);
            if last {
                dropped += usize::from(self.send(&message).is_err());
                message.clear();
            }
        }
        dropped
    }

    /// Total payload bytes acknowledged by the peer so far (monotonic).
    #[inline]
    pub fn acked_bytes(&self) -> u64 {
        self.acked_bytes
    }

    // ---- PATCH(7): counters ----

    /// Snapshot of the protocol event counters.
    #[inline]
    pub fn counters(&self) -> KcpCounters {
        self.counters
    }
}

impl<Output: Write> Kcp<Output> {
    /// PATCH(15): room for one datagram in the flush buffer, so the segments written into it
    /// never make it grow (no allocation on the packet path once it exists).
    fn reserve_buf(&mut self) {
        if self.buf.capacity() < self.mtu {
            self.buf.reserve(self.mtu - self.buf.len());
        }
    }

    fn _flush_ack(&mut self, segment: &mut KcpSegment) -> KcpResult<()> {
        // flush acknowledges
        // while let Some((sn, ts)) = self.acklist.pop_front() {
        for &(sn, ts) in &self.acklist {
            if self.buf.len() + KCP_OVERHEAD > self.mtu {
                self.output.write_all(&self.buf)?;
                self.buf.clear();
            }
            segment.sn = sn;
            segment.ts = ts;
            segment.encode(&mut self.buf);
        }
        let n = self.acklist.len() as u64;
        self.counters.acks_sent = self.counters.acks_sent.wrapping_add(n);
        self.counters.out_segs = self.counters.out_segs.wrapping_add(n);
        self.acklist.clear();

        Ok(())
    }

    fn _flush_probe_commands(&mut self, cmd: u8, segment: &mut KcpSegment) -> KcpResult<()> {
        segment.cmd = cmd;
        if self.buf.len() + KCP_OVERHEAD > self.mtu {
            self.output.write_all(&self.buf)?;
            self.buf.clear();
        }
        segment.encode(&mut self.buf);
        self.counters.out_segs = self.counters.out_segs.wrapping_add(1);
        if cmd == KCP_CMD_WASK {
            self.counters.window_probes_sent = self.counters.window_probes_sent.wrapping_add(1);
        }
        Ok(())
    }

    fn flush_probe_commands(&mut self, segment: &mut KcpSegment) -> KcpResult<()> {
        // flush window probing commands
        if (self.probe & KCP_ASK_SEND) != 0 {
            self._flush_probe_commands(KCP_CMD_WASK, segment)?;
        }

        // flush window probing commands
        if (self.probe & KCP_ASK_TELL) != 0 {
            self._flush_probe_commands(KCP_CMD_WINS, segment)?;
        }
        self.probe = 0;
        Ok(())
    }

    /// Flush pending ACKs
    pub fn flush_ack(&mut self) -> KcpResult<()> {
        if !self.updated {
            debug!("flush updated() must be called at least once");
            return Err(Error::NeedUpdate);
        }

        let mut segment = KcpSegment {
            conv: self.conv,
            cmd: KCP_CMD_ACK,
            wnd: self.wnd_unused(),
            una: self.rcv_nxt,
            ..Default::default()
        };

        // PATCH(16): with no ACK owed this writes nothing, and a shrunk engine stays small.
        if !self.acklist.is_empty() {
            self.reserve_buf();
        }
        self._flush_ack(&mut segment)
    }

    /// Flush pending data in buffer.
    pub fn flush(&mut self) -> KcpResult<()> {
        if !self.updated {
            debug!("flush updated() must be called at least once");
            return Err(Error::NeedUpdate);
        }

        let mut segment = KcpSegment {
            conv: self.conv,
            cmd: KCP_CMD_ACK,
            wnd: self.wnd_unused(),
            una: self.rcv_nxt,
            ..Default::default()
        };

        // PATCH(16): a quiescent engine's flush writes nothing (no ACK, probe or segment), so
        // an idle engine that was shrunk is not given its buffer back by every timer visit.
        if !self.is_quiescent() {
            self.reserve_buf();
        }
        self._flush_ack(&mut segment)?;
        self.probe_wnd_size();
        self.flush_probe_commands(&mut segment)?;

        // println!("SNDBUF size {}", self.snd_buf.len());

        // calculate window size
        let mut cwnd = cmp::min(self.snd_wnd, self.rmt_wnd);
        if !self.nocwnd {
            cwnd = cmp::min(self.cwnd, cwnd);
        }

        // move data from snd_queue to snd_buf
        while timediff(self.snd_nxt, self.snd_una.wrapping_add(cwnd as u32)) < 0 {
            match self.snd_queue.pop_front() {
                Some(mut new_segment) => {
                    new_segment.conv = self.conv;
                    new_segment.cmd = KCP_CMD_PUSH;
                    new_segment.wnd = segment.wnd;
                    new_segment.ts = self.current;
                    new_segment.sn = self.snd_nxt;
                    self.snd_nxt = self.snd_nxt.wrapping_add(1);
                    new_segment.una = self.rcv_nxt;
                    new_segment.resendts = self.current;
                    new_segment.rto = self.rx_rto;
                    new_segment.fastack = 0;
                    new_segment.xmit = 0;
                    self.snd_buf.push_back(new_segment);
                }
                None => break,
            }
        }

        // calculate resent
        let resent = if self.fastresend > 0 {
            self.fastresend
        } else {
            u32::MAX
        };

        let rtomin = if !self.nodelay { self.rx_rto >> 3 } else { 0 };

        let mut lost = false;
        let mut change = 0;

        for snd_segment in &mut self.snd_buf {
            let mut need_send = false;

            if snd_segment.xmit == 0 {
                need_send = true;
                snd_segment.xmit += 1;
                // PATCH(3): remember the first transmission time
                snd_segment.first_ts = self.current;
                snd_segment.rto = self.rx_rto;
                snd_segment.resendts = self
                    .current
                    .wrapping_add(snd_segment.rto)
                    .wrapping_add(rtomin);
            } else if timediff(self.current, snd_segment.resendts) >= 0 {
                need_send = true;
                snd_segment.xmit = snd_segment.xmit.saturating_add(1);
                self.xmit = self.xmit.wrapping_add(1);
                if !self.nodelay {
                    snd_segment.rto = snd_segment
                        .rto
                        .saturating_add(cmp::max(snd_segment.rto, self.rx_rto));
                } else {
                    let step = snd_segment.rto; // (kcp->nodelay < 2) ? ((IINT32)(segment->rto)) : kcp->rx_rto;
                    snd_segment.rto = snd_segment.rto.saturating_add(step / 2);
                }
                snd_segment.resendts = self.current.wrapping_add(snd_segment.rto);
                lost = true;
                self.counters.retrans_segs = self.counters.retrans_segs.wrapping_add(1);
                self.counters.lost_segs = self.counters.lost_segs.wrapping_add(1);
            } else if snd_segment.fastack >= resent
                && (snd_segment.xmit <= self.fastlimit || self.fastlimit == 0)
            {
                need_send = true;
                snd_segment.xmit = snd_segment.xmit.saturating_add(1);
                snd_segment.fastack = 0;
                snd_segment.resendts = self.current.wrapping_add(snd_segment.rto);
                change += 1;
                self.counters.fast_retrans_segs = self.counters.fast_retrans_segs.wrapping_add(1);
            }

            if need_send {
                self.counters.out_segs = self.counters.out_segs.wrapping_add(1);
                self.counters.out_push_segs = self.counters.out_push_segs.wrapping_add(1);
                snd_segment.ts = self.current;
                snd_segment.wnd = segment.wnd;
                snd_segment.una = self.rcv_nxt;

                let need = KCP_OVERHEAD + snd_segment.data.len();

                if self.buf.len() + need > self.mtu {
                    self.output.write_all(&self.buf)?;
                    self.buf.clear();
                }

                snd_segment.encode(&mut self.buf);

                if snd_segment.xmit >= self.dead_link {
                    self.state = -1; // (IUINT32)-1
                }
            }
        }

        // Flush all data in buffer
        if !self.buf.is_empty() {
            self.output.write_all(&self.buf)?;
            self.buf.clear();
        }

        // update ssthresh
        if change > 0 {
            // PATCH(1): wrapping inflight, no u16 truncation / overflow
            let inflight = self.snd_nxt.wrapping_sub(self.snd_una);
            self.ssthresh = cmp::min(inflight / 2, u16::MAX as u32) as u16;
            if self.ssthresh < KCP_THRESH_MIN {
                self.ssthresh = KCP_THRESH_MIN;
            }
            self.cwnd = cmp::min(
                (self.ssthresh as u32).saturating_add(resent),
                u16::MAX as u32,
            ) as u16;
            self.incr = self.cwnd as usize * self.mss;
        }

        if lost {
            self.ssthresh = cwnd / 2;
            if self.ssthresh < KCP_THRESH_MIN {
                self.ssthresh = KCP_THRESH_MIN;
            }
            self.cwnd = 1;
            self.incr = self.mss;
        }

        if self.cwnd < 1 {
            self.cwnd = 1;
            self.incr = self.mss;
        }

        Ok(())
    }

    /// Update state every 10ms ~ 100ms.
    ///
    /// Or you can ask `check` when to call this again.
    pub fn update(&mut self, current: u32) -> KcpResult<()> {
        self.current = current;

        if !self.updated {
            self.updated = true;
            self.ts_flush = self.current;
        }

        let mut slap = timediff(self.current, self.ts_flush);

        if !(-10000..10000).contains(&slap) {
            self.ts_flush = self.current;
            slap = 0;
        }

        if slap >= 0 {
            self.ts_flush = self.ts_flush.wrapping_add(self.interval);
            if timediff(self.current, self.ts_flush) >= 0 {
                self.ts_flush = self.current.wrapping_add(self.interval);
            }
            self.flush()?;
        }

        Ok(())
    }
}

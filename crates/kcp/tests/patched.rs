//! Tests for the kcpwatch patches of the vendored `kcp` crate (see PATCHES.md).

use std::io::{self, Write};

use kcp::{Error, InFlight, Kcp, KcpCounters};

const CONV: u32 = 0x1122_3344;

const CMD_PUSH: u8 = 81;
const CMD_ACK: u8 = 82;
const CMD_WINS: u8 = 84;

/// In-memory output: every `write` is one datagram.
#[derive(Default)]
struct Wire {
    datagrams: Vec<Vec<u8>>,
}

impl Write for Wire {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.datagrams.push(buf.to_vec());
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn pair() -> (Kcp<Wire>, Kcp<Wire>) {
    (
        Kcp::new(CONV, Wire::default()),
        Kcp::new(CONV, Wire::default()),
    )
}

/// Moves every datagram written by `from` into `to`. `drop_every`: drop every
/// n-th datagram (0 = none), `counter` is shared state for the drop pattern.
fn deliver(from: &mut Kcp<Wire>, to: &mut Kcp<Wire>, drop_every: usize, counter: &mut usize) {
    let datagrams = std::mem::take(&mut from.output_mut().datagrams);
    for d in datagrams {
        *counter += 1;
        if drop_every != 0 && *counter % drop_every == 0 {
            continue;
        }
        to.input(&d).expect("input");
    }
}

/// Raw KCP segment encoder (ikcp wire format, little endian).
#[allow(clippy::too_many_arguments)]
fn segment(cmd: u8, frg: u8, wnd: u16, ts: u32, sn: u32, una: u32, data: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(24 + data.len());
    v.extend_from_slice(&CONV.to_le_bytes());
    v.push(cmd);
    v.push(frg);
    v.extend_from_slice(&wnd.to_le_bytes());
    v.extend_from_slice(&ts.to_le_bytes());
    v.extend_from_slice(&sn.to_le_bytes());
    v.extend_from_slice(&una.to_le_bytes());
    v.extend_from_slice(&(data.len() as u32).to_le_bytes());
    v.extend_from_slice(data);
    v
}

fn message(dir: u8, i: u32) -> Vec<u8> {
    // variable sizes, some of them need several fragments (mss = 1376)
    let len = 4 + (i as usize * 397) % 3000;
    let mut m = vec![dir; len];
    m[..4].copy_from_slice(&i.to_le_bytes());
    m
}

fn drain(kcp: &mut Kcp<Wire>, out: &mut Vec<Vec<u8>>) {
    let mut buf = vec![0u8; 8192];
    loop {
        match kcp.recv(&mut buf) {
            Ok(n) => out.push(buf[..n].to_vec()),
            Err(Error::RecvQueueEmpty) | Err(Error::ExpectingFragment) => break,
            Err(e) => panic!("recv: {e:?}"),
        }
    }
}

/// Two endpoints exchange `count` messages in both directions, clock starting
/// at `start` and advancing 10 ms per step, with optional datagram loss.
fn exchange(start: u32, count: u32, drop_every: usize, fast: bool) -> (Kcp<Wire>, Kcp<Wire>) {
    let (mut a, mut b) = pair();
    if fast {
        a.set_nodelay(true, 10, 2, true);
        b.set_nodelay(true, 10, 2, true);
    } else {
        a.set_interval(10);
        b.set_interval(10);
    }
    a.set_wndsize(128, 128);
    b.set_wndsize(128, 128);

    let mut now = start;
    let (mut got_a, mut got_b) = (Vec::new(), Vec::new());
    let (mut ca, mut cb) = (0usize, 0usize);
    let mut sent = 0u32;
    let mut steps = 0u32;

    // run until everything is delivered *and* acknowledged
    while got_a.len() < count as usize
        || got_b.len() < count as usize
        || a.waiting_bytes() > 0
        || b.waiting_bytes() > 0
    {
        steps += 1;
        assert!(steps < 20_000, "exchange did not finish");
        if sent < count {
            a.send(&message(b'a', sent)).unwrap();
            b.send(&message(b'b', sent)).unwrap();
            sent += 1;
        }
        a.update(now).unwrap();
        b.update(now).unwrap();
        deliver(&mut a, &mut b, drop_every, &mut ca);
        deliver(&mut b, &mut a, drop_every, &mut cb);
        drain(&mut a, &mut got_a);
        drain(&mut b, &mut got_b);
        now = now.wrapping_add(10);
    }

    let crossed = now.wrapping_sub(start);
    assert!(crossed > 0x1000, "test must cross the wrap point");
    for i in 0..count {
        assert_eq!(got_b[i as usize], message(b'a', i), "a->b message {i}");
        assert_eq!(got_a[i as usize], message(b'b', i), "b->a message {i}");
    }
    assert_eq!(a.waiting_bytes(), 0);
    assert_eq!(b.waiting_bytes(), 0);
    let total: u64 = (0..count).map(|i| message(b'a', i).len() as u64).sum();
    assert_eq!(a.acked_bytes(), total);
    assert_eq!(b.acked_bytes(), total);
    (a, b)
}

#[test]
fn clock_crosses_2_pow_31() {
    let (a, b) = exchange(0x7FFF_F000, 600, 0, false);
    assert!(a.current() > 0x8000_0000);
    assert!(a.counters().rtt_min > 0 && b.counters().rtt_max >= b.counters().rtt_min);
}

#[test]
fn clock_crosses_2_pow_32() {
    let (a, _b) = exchange(0xFFFF_F000, 600, 0, false);
    assert!(a.current() < 0x8000_0000, "clock must have wrapped");
}

#[test]
fn clock_crosses_2_pow_31_with_loss() {
    let (a, b) = exchange(0x7FFF_F000, 600, 7, false);
    assert!(a.counters().retrans_segs + b.counters().retrans_segs > 0);
    assert_eq!(a.counters().retrans_segs, a.counters().lost_segs);
}

#[test]
fn clock_crosses_2_pow_32_with_loss_fast() {
    let (a, b) = exchange(0xFFFF_F000, 600, 5, true);
    let (ca, cb) = (a.counters(), b.counters());
    assert!(ca.fast_retrans_segs + cb.fast_retrans_segs + ca.retrans_segs + cb.retrans_segs > 0);
    assert!(ca.repeat_segs + cb.repeat_segs > 0 || ca.retrans_segs + cb.retrans_segs > 0);
}

#[test]
fn peeksize_frg_255_does_not_panic() {
    let mut k = Kcp::new(CONV, Wire::default());
    k.update(0).unwrap();
    k.input(&segment(CMD_PUSH, 255, 128, 0, 0, 0, b"x"))
        .unwrap();
    assert_eq!(k.rcv_queue_len(), 1);
    assert!(matches!(k.peeksize(), Err(Error::ExpectingFragment)));
    let mut buf = [0u8; 16];
    assert!(k.recv(&mut buf).is_err());
}

#[test]
fn stale_ack_does_not_move_rto() {
    let (mut a, mut b) = pair();
    // interval 10 so that every update below flushes; congestion window off
    a.set_nodelay(false, 10, 0, true);
    b.set_nodelay(false, 10, 0, true);
    let mut now = 1_000u32;
    let (mut ca, mut cb) = (0, 0);
    a.update(now).unwrap();
    b.update(now).unwrap();
    // a few round trips of 40 ms to get a real RTT estimate
    for i in 0..5u32 {
        a.send(&i.to_le_bytes()).unwrap();
        now += 20;
        a.update(now).unwrap(); // transmits
        deliver(&mut a, &mut b, 0, &mut ca);
        now += 20;
        b.update(now).unwrap(); // acks
        now += 20;
        a.update(now).unwrap(); // advance a's clock before the ACK arrives
        deliver(&mut b, &mut a, 0, &mut cb);
    }
    assert_eq!(a.snd_buf_len(), 0);
    assert_eq!(a.srtt(), 40);
    assert_eq!(a.counters().rtt_min, 40);
    let (rto, srtt, rttvar) = (a.rto(), a.srtt(), a.rttvar());
    let samples = a.counters();

    // duplicate / forged ACK for an already acknowledged sn with a very old ts
    let stale = segment(
        CMD_ACK,
        0,
        128,
        now.wrapping_sub(30_000),
        0,
        a.snd_una(),
        &[],
    );
    a.input(&stale).unwrap();
    assert_eq!(a.rto(), rto);
    assert_eq!(a.srtt(), srtt);
    assert_eq!(a.rttvar(), rttvar);
    assert_eq!(a.counters().rtt_max, samples.rtt_max);
    assert_eq!(a.counters().acks_received, samples.acks_received + 1);

    // ACK for an in-flight sn, but echoing a ts older than its first transmission
    a.send(b"in flight").unwrap();
    now += 20;
    a.update(now).unwrap();
    let sn = a.snd_una();
    assert!(a.in_flight(sn).is_some());
    let forged = segment(CMD_ACK, 0, 128, now.wrapping_sub(30_000), sn, sn, &[]);
    now += 10;
    a.update(now).unwrap();
    a.input(&forged).unwrap();
    assert_eq!(a.rto(), rto);
    assert_eq!(a.srtt(), srtt);
    // the segment itself is acknowledged nevertheless (protocol behaviour unchanged)
    assert!(a.in_flight(sn).is_none());
    assert_eq!(a.waiting_bytes(), 0);
}

#[test]
fn waiting_and_acked_bytes() {
    let (mut a, mut b) = pair();
    a.set_nodelay(false, 10, 0, true);
    b.set_nodelay(false, 10, 0, true);
    let (mut ca, mut cb) = (0, 0);
    assert_eq!((a.waiting_bytes(), a.acked_bytes()), (0, 0));
    a.send(&[1u8; 100]).unwrap();
    a.send(&[2u8; 2000]).unwrap(); // two fragments
    a.send(&[3u8; 5]).unwrap();
    assert_eq!(a.waiting_bytes(), 2105);
    assert_eq!(a.snd_queue_len(), 4);

    a.update(0).unwrap();
    b.update(0).unwrap();
    assert_eq!(a.snd_buf_len(), 4);
    assert_eq!(a.waiting_bytes(), 2105);
    assert_eq!(a.acked_bytes(), 0);

    // lose the first datagram (it carries the first segment(s))
    let mut dgs = std::mem::take(&mut a.output_mut().datagrams);
    dgs.remove(0);
    for d in &dgs {
        b.input(d).unwrap();
    }
    b.update(10).unwrap();
    b.flush().unwrap();
    deliver(&mut b, &mut a, 0, &mut cb);
    assert!(a.acked_bytes() > 0 && a.acked_bytes() < 2105);
    assert_eq!(a.waiting_bytes() as u64 + a.acked_bytes(), 2105);

    // retransmission timeout repairs it
    let mut now = 10;
    while a.waiting_bytes() > 0 {
        now += 10;
        assert!(now < 10_000);
        a.update(now).unwrap();
        deliver(&mut a, &mut b, 0, &mut ca);
        b.update(now).unwrap();
        b.flush().unwrap();
        deliver(&mut b, &mut a, 0, &mut cb);
    }
    assert_eq!(a.acked_bytes(), 2105);
    assert_eq!(a.counters().retrans_segs, 1);

    // stream mode: appended bytes are accounted as well
    let mut s = Kcp::new_stream(CONV, Wire::default());
    s.send(&[0u8; 10]).unwrap();
    s.send(&[0u8; 20]).unwrap();
    assert_eq!(s.snd_queue_len(), 1);
    assert_eq!(s.waiting_bytes(), 30);
}

#[test]
fn in_flight_tracking() {
    let (mut a, mut b) = pair();
    a.set_nodelay(false, 10, 0, true);
    b.set_nodelay(false, 10, 0, true);
    let (mut ca, mut cb) = (0, 0);
    let t0 = 0xFFFF_FF00u32;
    for i in 0..5u8 {
        a.send(&[i; 10]).unwrap();
    }
    assert_eq!(
        a.in_flight(0),
        None,
        "queued segments are not in snd_buf yet"
    );
    a.update(t0).unwrap();
    for sn in 0..5 {
        assert_eq!(
            a.in_flight(sn),
            Some(InFlight {
                first_ts: t0,
                last_ts: t0,
                xmit: 1
            })
        );
    }
    assert_eq!(a.in_flight(5), None);
    assert_eq!(a.in_flight(u32::MAX), None);
    a.output_mut().datagrams.clear(); // lost

    // default rto 200 + rtomin 25: retransmitted at t0 + 300 (crossing 2^32)
    let t1 = t0.wrapping_add(300);
    a.update(t1).unwrap();
    assert_eq!(
        a.in_flight(3),
        Some(InFlight {
            first_ts: t0,
            last_ts: t1,
            xmit: 2
        })
    );
    let c = a.counters();
    assert_eq!(c.retrans_segs, 5);
    assert_eq!(c.lost_segs, 5);
    assert_eq!(c.out_push_segs, 10);

    deliver(&mut a, &mut b, 0, &mut ca);
    let t2 = t1.wrapping_add(40);
    b.update(t2).unwrap();
    b.flush().unwrap();
    a.update(t2).unwrap();
    deliver(&mut b, &mut a, 0, &mut cb);
    for sn in 0..5 {
        assert_eq!(a.in_flight(sn), None);
    }
    assert_eq!(a.snd_una(), 5);
    assert_eq!(a.snd_nxt(), 5);
    assert_eq!(b.rcv_nxt(), 5);
    // the ACK echoed t1 (the retransmission), so exactly one 40 ms sample was taken
    assert_eq!(a.counters().rtt_min, 40);
    assert_eq!(a.srtt(), 40);
}

#[test]
fn window_probe_timing_is_configurable() {
    let mut a = Kcp::new(CONV, Wire::default());
    a.set_interval(10);
    a.set_probe_wait(500, 600);
    a.update(0).unwrap();
    // peer announces a zero window
    a.input(&segment(CMD_WINS, 0, 0, 0, 0, 0, &[])).unwrap();
    assert_eq!(a.rmt_wnd(), 0);
    let mut probes_at = Vec::new();
    let mut t = 0;
    while t < 1500 {
        t += 10;
        let before = a.counters().window_probes_sent;
        a.update(t).unwrap();
        if a.counters().window_probes_sent != before {
            probes_at.push(t);
        }
    }
    // armed at t=10 (+500), then the wait grows to min(500 * 1.5, 600) = 600
    assert_eq!(probes_at, vec![510, 1110]);
    assert_eq!(a.counters().out_segs, 2);

    let mut b = Kcp::new(CONV, Wire::default());
    b.update(0).unwrap();
    let wask = a.output_mut().datagrams.pop().unwrap();
    b.input(&wask).unwrap();
    assert_eq!(b.counters().window_probes_received, 1);
}

#[test]
fn accessors_and_counters_defaults() {
    let mut a = Kcp::new(CONV, Wire::default());
    assert_eq!(a.counters(), KcpCounters::default());
    assert_eq!(a.rto(), 200);
    assert_eq!(a.min_rto(), 100);
    assert_eq!(a.interval(), 100);
    assert!(!a.nodelay() && !a.nocwnd());
    assert_eq!(a.fast_resend(), 0);
    assert_eq!(a.dead_link(), 20);
    assert_eq!(a.ssthresh(), 2);
    assert_eq!(a.cwnd(), 0);
    a.set_nodelay(true, 20, 2, true);
    assert!(a.nodelay() && a.nocwnd());
    assert_eq!((a.min_rto(), a.interval(), a.fast_resend()), (30, 20, 2));
    assert!(a.output_ref().datagrams.is_empty());
    assert_eq!(a.rcv_buf_len(), 0);
}

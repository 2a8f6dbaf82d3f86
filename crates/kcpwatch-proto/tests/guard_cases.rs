//! One regression test per defect case A–L listed in docs/security.md. Where the defect lives in the
//! engine we feed the guard, each test first shows it on a bare `kcp::Kcp` (what happens
//! without the defence), then shows the endpoint refusing the same input. Cases G and H (and the
//! engine half of A-C) are fixed inside the vendored engine; `crates/kcp/tests/patched.rs`
//! holds their engine-level tests, and the endpoint-level tests here cross both wraps.

mod common;

use std::cell::RefCell;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;

use common::{addr, Link, Pair, CLIENT, SERVER};
use kcpwatch_proto::segment::{SegmentHeader, CMD_ACK, CMD_PUSH, CMD_WINS};
use kcpwatch_proto::{DropTrigger, EndpointEvent, Preset, SecurityEvent, SessionConfig};

const CONV: u32 = 0x1234_5678;

fn config() -> SessionConfig {
    SessionConfig {
        idle_timeout_ms: 120_000,
        ..Preset::Fast3.config()
    }
}

fn segment(cmd: u8, frg: u8, wnd: u16, ts: u32, sn: u32, una: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    SegmentHeader {
        conv: CONV,
        cmd,
        frg,
        wnd,
        ts,
        sn,
        una,
        len: payload.len() as u32,
    }
    .encode(&mut out);
    out.extend_from_slice(payload);
    out
}

/// A pair whose server has one established session and `pending` unacknowledged messages in
/// flight towards a client that is (for now) not answering.
fn established(pending: usize) -> Pair {
    let mut pair = Pair::new(77, config(), Link::clean());
    pair.establish();
    pair.advance(200);
    if pending > 0 {
        pair.link.loss = 1.0;
        let conn = pair.server_conn.unwrap();
        for i in 0..pending {
            let now = pair.clock();
            pair.server
                .send(now, conn, format!("pending {i}").as_bytes())
                .unwrap();
        }
        pair.advance(5);
    }
    pair
}

/// The trigger and rule of the last refused datagram: a `kcp:packet_dropped` for a known
/// session, a `kcp:connection_failed` for an opening datagram.
fn last_drop(pair: &Pair) -> Option<(DropTrigger, &'static str)> {
    pair.server_security.iter().rev().find_map(|e| match e {
        SecurityEvent::PacketDropped(d) => Some((d.trigger, d.rule.as_str())),
        SecurityEvent::ConnectionFailed(f) => {
            Some((f.trigger.expect("a refused datagram"), f.rule.as_str()))
        }
        _ => None,
    })
}

fn server_rto(pair: &Pair) -> u32 {
    pair.server
        .connection_summary(pair.server_conn.unwrap())
        .unwrap()
        .rto_ms
}

/// A bare engine writing into a list of datagrams.
#[derive(Clone, Default)]
struct Wire(Rc<RefCell<Vec<Vec<u8>>>>);
impl io::Write for Wire {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.borrow_mut().push(buf.to_vec());
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn bare_engine() -> (kcp::Kcp<Wire>, Wire) {
    let wire = Wire::default();
    let mut engine = kcp::Kcp::new(CONV, wire.clone());
    engine.set_nodelay(true, 10, 2, true);
    engine.set_wndsize(32, 32);
    engine.update(1_000).unwrap();
    (engine, wire)
}

#[test]
fn case_a_ack_with_timestamp_far_from_now_is_dropped() {
    let mut pair = established(1);
    let rto = server_rto(&pair);
    let now = pair.clock();
    let forged = segment(CMD_ACK, 0, 128, now.wrapping_add(0x8000_0000), 0, 0, &[]);
    pair.inject_to_server(addr(CLIENT), &forged);
    assert_eq!(
        last_drop(&pair),
        Some((DropTrigger::GuardViolation, "ack_before_session"))
    );
    let future = segment(CMD_ACK, 0, 128, now.wrapping_add(0x7FFF_0000), 0, 0, &[]);
    pair.inject_to_server(addr(CLIENT), &future);
    assert_eq!(
        last_drop(&pair),
        Some((DropTrigger::GuardViolation, "ack_from_future"))
    );
    assert_eq!(server_rto(&pair), rto);
}

#[test]
fn case_b_first_ack_implying_huge_rtt_is_dropped() {
    let mut pair = established(1);
    let now = pair.clock();
    let forged = segment(CMD_ACK, 0, 128, now.wrapping_sub(0x7FFF_FFF0), 0, 0, &[]);
    pair.inject_to_server(addr(CLIENT), &forged);
    assert_eq!(
        last_drop(&pair),
        Some((DropTrigger::GuardViolation, "ack_before_session"))
    );
    assert!(server_rto(&pair) < 60_000);
}

#[test]
fn case_c_forged_old_ack_does_not_move_the_rto() {
    let mut pair = established(0);
    // Age the session past 30 s with traffic so "now - 30 s" lies inside it.
    let conn = pair.server_conn.unwrap();
    for _ in 0..40 {
        let now = pair.clock();
        pair.client.send(now, pair.client_conn, b"tick").unwrap();
        pair.server.send(now, conn, b"tock").unwrap();
        pair.advance(1_000);
    }
    let rto = server_rto(&pair);
    let snd_sn_acked = 3; // long acknowledged
    pair.link.loss = 1.0;
    let now = pair.clock();
    pair.server.send(now, conn, b"in flight").unwrap();
    pair.advance(1);
    let in_flight_sn = 40; // the 41st message from the server
    let now = pair.clock();
    // For the in-flight segment the guard knows the real transmission time and refuses.
    let forged = segment(
        CMD_ACK,
        0,
        128,
        now.wrapping_sub(30_000),
        in_flight_sn,
        0,
        &[],
    );
    pair.inject_to_server(addr(CLIENT), &forged);
    assert_eq!(
        last_drop(&pair),
        Some((DropTrigger::GuardViolation, "ack_timestamp_mismatch"))
    );
    // For an already acknowledged segment the datagram passes, and the engine takes no RTT
    // sample from an ACK that matches no transmission.
    let stale = segment(
        CMD_ACK,
        0,
        128,
        now.wrapping_sub(30_000),
        snd_sn_acked,
        0,
        &[],
    );
    pair.inject_to_server(addr(CLIENT), &stale);
    assert_eq!(server_rto(&pair), rto);
    assert!(rto < 1_000, "rto {rto}");
}

#[test]
fn case_d_una_beyond_sent_would_discard_unacknowledged_data() {
    // Without the guard: the engine forgets three unacknowledged segments.
    let (mut engine, _) = bare_engine();
    for _ in 0..3 {
        engine.send(b"data").unwrap();
    }
    engine.flush().unwrap();
    assert_eq!(engine.waiting_bytes(), 12);
    engine
        .input(&segment(CMD_WINS, 0, 32, 0, 0, 100, &[]))
        .unwrap();
    assert_eq!(
        engine.waiting_bytes(),
        0,
        "the defect: data dropped unacknowledged"
    );

    // With it: the datagram is dropped and the data still arrives.
    let mut pair = established(3);
    let conn = pair.server_conn.unwrap();
    let waiting = pair.server.waiting_bytes(conn).unwrap();
    assert!(waiting > 0);
    pair.inject_to_server(addr(CLIENT), &segment(CMD_WINS, 0, 128, 0, 0, 100, &[]));
    assert_eq!(
        last_drop(&pair),
        Some((DropTrigger::GuardViolation, "una_beyond_sent"))
    );
    assert_eq!(pair.server.waiting_bytes(conn), Some(waiting));
    pair.link.loss = 0.0;
    let mut got = Vec::new();
    assert!(pair.run_until(5_000, |p| {
        p.client_recv_all(&mut got);
        got.len() == 3
    }));
}

#[test]
fn case_e_forged_zero_window_stalls_the_sender_only_briefly() {
    // Without the defence: KCP's first window probe comes 7 s after a zero window.
    let (mut engine, wire) = bare_engine();
    engine
        .input(&segment(CMD_WINS, 0, 0, 0, 0, 0, &[]))
        .unwrap();
    engine.send(b"blocked").unwrap();
    let mut t = 1_000;
    let mut first_send = None;
    while t < 20_000 && first_send.is_none() {
        t += 10;
        engine.update(t).unwrap();
        if !wire.0.borrow().is_empty() {
            first_send = Some(t);
        }
    }
    assert!(
        first_send.unwrap() - 1_000 >= 7_000,
        "the defect: a 7 s stall"
    );

    // With it: the session probes within ~100 ms, the peer answers with its real window, and
    // the data flows.
    let mut pair = established(0);
    let now = pair.clock();
    pair.inject_to_client(&segment(CMD_WINS, 0, 0, 0, 0, 0, &[]));
    pair.client
        .send(now, pair.client_conn, b"after forged zero window")
        .unwrap();
    let start = pair.now;
    let mut got = Vec::new();
    assert!(pair.run_until(2_000, |p| {
        p.server_recv_all(&mut got);
        !got.is_empty()
    }));
    assert!(pair.now - start < 1_000, "stalled {} ms", pair.now - start);
}

#[test]
fn case_f_valid_segment_followed_by_invalid_one_is_not_half_applied() {
    let mut datagram = segment(CMD_PUSH, 0, 32, 0, 0, 0, b"first");
    let mut bad = segment(CMD_PUSH, 0, 32, 0, 1, 0, b"x");
    bad[4] = 99;
    datagram.extend_from_slice(&bad);

    let (mut engine, _) = bare_engine();
    assert!(engine.input(&datagram).is_err());
    assert_eq!(
        engine.peeksize().unwrap(),
        5,
        "the defect: first segment applied"
    );

    let mut pair = Pair::new(78, config(), Link::clean());
    pair.inject_to_server(addr(CLIENT), &datagram);
    assert_eq!(last_drop(&pair), Some((DropTrigger::BadCmd, "bad_cmd")));
    assert_eq!(pair.server.connection_count(), 0);
    assert!(pair
        .server_events
        .iter()
        .all(|e| !matches!(e, EndpointEvent::Accepted { .. })));
}

#[test]
fn case_g_clock_crossing_2_pow_31() {
    crossing_run(0x8000_0000 - 600);
}

#[test]
fn case_h_clock_crossing_2_pow_32() {
    crossing_run(0u32.wrapping_sub(600));
}

fn crossing_run(epoch: u32) {
    let mut pair = Pair::with_epoch(79, config(), Link::lossy(0.1), epoch);
    let sent: Vec<Vec<u8>> = (0..500u32)
        .map(|i| i.to_le_bytes().repeat(1 + i as usize % 300))
        .collect();
    let mut next = 0;
    let mut got = Vec::new();
    assert!(pair.run_until(60_000, |p| {
        if next < sent.len() {
            let now = p.clock();
            p.client.send(now, p.client_conn, &sent[next]).unwrap();
            next += 1;
        }
        p.server_recv_all(&mut got);
        got.len() == sent.len()
    }));
    assert_eq!(got, sent);
    let crossed = pair.clock().wrapping_sub(epoch);
    assert!(crossed > 600, "the run must cross the wrap ({crossed} ms)");
}

#[test]
fn case_i_datagram_shorter_than_a_header() {
    assert!(
        catch_unwind(|| kcp::get_conv(&[1, 2, 3, 4, 5])).is_err(),
        "the defect: panic"
    );

    let mut pair = Pair::new(80, config(), Link::clean());
    for len in 0..24 {
        pair.inject_to_server(addr(CLIENT), &vec![0xAB; len]);
        assert_eq!(last_drop(&pair), Some((DropTrigger::TooShort, "too_short")));
    }
    assert_eq!(pair.server.stats().dropped_by(DropTrigger::TooShort), 24);
}

#[test]
fn case_j_length_field_beyond_the_datagram() {
    let mut datagram = segment(CMD_PUSH, 0, 32, 0, 0, 0, b"abc");
    datagram[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
    let (mut engine, _) = bare_engine();
    assert!(
        engine.input(&datagram).is_err(),
        "the engine only reports an error"
    );

    let mut pair = Pair::new(81, config(), Link::clean());
    pair.inject_to_server(addr(CLIENT), &datagram);
    assert_eq!(
        last_drop(&pair),
        Some((DropTrigger::BadLength, "length_beyond_datagram"))
    );
    assert_eq!(pair.server.stats().dropped_by(DropTrigger::BadLength), 1);
}

#[test]
fn case_k_fragment_index_255() {
    let datagram = segment(CMD_PUSH, 255, 32, 0, 0, 0, b"x");
    let (mut engine, _) = bare_engine();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        engine.input(&datagram).unwrap();
        engine.peeksize()
    }));
    // The vendored engine no longer overflows, but the message can never complete.
    assert!(matches!(
        outcome,
        Ok(Err(kcp::Error::ExpectingFragment)) | Err(_)
    ));

    let mut pair = Pair::new(82, config(), Link::clean());
    pair.inject_to_server(addr(CLIENT), &datagram);
    assert_eq!(
        last_drop(&pair),
        Some((DropTrigger::GuardViolation, "fragment_beyond_window"))
    );
}

#[test]
fn case_l_fragment_count_beyond_the_receive_window_would_wedge_the_receiver() {
    let (mut engine, _) = bare_engine();
    engine
        .input(&segment(CMD_PUSH, 40, 32, 0, 0, 0, b"head"))
        .unwrap();
    for sn in 1..20 {
        engine
            .input(&segment(CMD_PUSH, 0, 32, 0, sn, 0, b"later message"))
            .unwrap();
    }
    assert!(
        engine.peeksize().is_err(),
        "the defect: nothing is ever readable again"
    );

    let config = SessionConfig {
        receive_window: 32,
        max_message_size: 16 * 1024,
        ..config()
    };
    let mut pair = Pair::new(83, config, Link::clean());
    pair.inject_to_server(addr(CLIENT), &segment(CMD_PUSH, 40, 32, 0, 0, 0, b"head"));
    assert_eq!(
        last_drop(&pair),
        Some((DropTrigger::GuardViolation, "fragment_beyond_window"))
    );
    // The real client's traffic (conv 0x12345678, sn 0 onwards) still gets through.
    let now = pair.clock();
    pair.client.send(now, pair.client_conn, b"real").unwrap();
    let mut got = Vec::new();
    assert!(pair.run_until(2_000, |p| {
        p.server_recv_all(&mut got);
        !got.is_empty()
    }));
    assert_eq!(got, vec![b"real".to_vec()]);
}

#[test]
fn unknown_sources_cannot_open_sessions_with_acks_or_garbage() {
    let mut pair = Pair::new(84, config(), Link::clean());
    let attacker = addr("10.9.9.9:1");
    pair.inject_to_server(attacker, &segment(CMD_ACK, 0, 32, 0, 0, 0, &[]));
    // Right after the server started, an ACK for no session is most likely a returning player
    // of a restarted server (docs/detection.md); it opens nothing either way.
    assert_eq!(
        last_drop(&pair),
        Some((DropTrigger::UnknownConnection, "stale_session"))
    );
    let idle = u64::from(config().idle_timeout_ms);
    pair.advance(2 * idle);
    pair.inject_to_server(attacker, &segment(CMD_ACK, 0, 32, 0, 0, 0, &[]));
    assert_eq!(
        last_drop(&pair),
        Some((DropTrigger::UnknownConnection, "no_session"))
    );
    pair.inject_to_server(
        attacker,
        &segment(CMD_PUSH, 0, 32, 0, 5_000, 0, b"far ahead"),
    );
    assert_eq!(last_drop(&pair).unwrap().0, DropTrigger::GuardViolation);
    assert_eq!(pair.server.connection_count(), 0);
    let _ = SERVER;
}

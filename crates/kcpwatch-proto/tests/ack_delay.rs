//! Owed ACKs wait up to a millisecond for a reply to carry them (`ACK_DELAY_MS` in
//! `session/mod.rs`): an answer sent within that time leaves as one datagram holding the ACK and
//! the data; with no answer the ACK leaves alone once the millisecond is over; a session that
//! closes still acknowledges what it received.

mod common;

use common::{addr, Link, Pair};
use kcpwatch_proto::segment::{SegmentHeader, CMD_ACK, CMD_PUSH};
use kcpwatch_proto::{ConnectionHandle, EndpointEvent, Preset, SessionConfig};

/// A raw peer other than the pair's own client.
const PEER: &str = "10.0.0.9:40000";
const CONV: u32 = 0x0A11_0C8D;

fn pair() -> Pair {
    let session = SessionConfig {
        idle_timeout_ms: 30_000,
        ..Preset::Fast3.config()
    };
    Pair::new(17, session, Link::clean())
}

fn push(sn: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    SegmentHeader {
        conv: CONV,
        cmd: CMD_PUSH,
        frg: 0,
        wnd: 256,
        ts: sn,
        sn,
        una: 0,
        len: payload.len() as u32,
    }
    .encode(&mut out);
    out.extend_from_slice(payload);
    out
}

/// The datagrams the server has waiting for `PEER`, each as its segments' (cmd, sn); taken.
fn datagrams_to_peer(pair: &mut Pair) -> Vec<Vec<(u8, u32)>> {
    let now = pair.clock();
    pair.server.flush(now);
    let mut out = Vec::new();
    for t in pair.server.transmits().iter() {
        if t.destination != addr(PEER) {
            continue;
        }
        let mut segments = Vec::new();
        let mut rest = t.data;
        while let Some(h) = SegmentHeader::parse(rest) {
            segments.push((h.cmd, h.sn));
            rest = &rest[24 + h.len as usize..];
        }
        out.push(segments);
    }
    pair.server.clear_transmits();
    out
}

/// Sends `sn` from the peer and returns the session it reached (opened by the first one).
fn arrive(pair: &mut Pair, sn: u32) -> ConnectionHandle {
    pair.inject_to_server(addr(PEER), &push(sn, b"ping"));
    pair.server_events
        .iter()
        .find_map(|e| match e {
            EndpointEvent::Accepted { handle, .. } => Some(*handle),
            _ => None,
        })
        .expect("the first PUSH opened a session")
}

/// Moves virtual time on by `ms` and runs the server's timers, without moving its datagrams.
fn wait(pair: &mut Pair, ms: u64) {
    pair.now += ms;
    let now = pair.clock();
    pair.server.handle_timeout(now);
}

#[test]
fn a_reply_within_the_delay_carries_the_ack_in_one_datagram() {
    let mut pair = pair();
    let handle = arrive(&mut pair, 0);
    assert_eq!(
        datagrams_to_peer(&mut pair),
        Vec::<Vec<(u8, u32)>>::new(),
        "no ACK alone yet"
    );
    let mut got = Vec::new();
    common::recv_all(&mut pair.server, handle, &mut got);
    assert_eq!(got, vec![b"ping".to_vec()]);
    let now = pair.clock();
    pair.server.send(now, handle, b"pong").unwrap();
    assert_eq!(
        datagrams_to_peer(&mut pair),
        vec![vec![(CMD_ACK, 0), (CMD_PUSH, 0)]],
        "the reply and the ACK of sn 0 share one datagram"
    );
    wait(&mut pair, 5);
    assert_eq!(
        datagrams_to_peer(&mut pair),
        Vec::<Vec<(u8, u32)>>::new(),
        "the ACK went once"
    );
}

#[test]
fn without_a_reply_the_ack_leaves_alone_once_the_delay_is_over() {
    let mut pair = pair();
    arrive(&mut pair, 0);
    arrive(&mut pair, 1);
    assert_eq!(datagrams_to_peer(&mut pair), Vec::<Vec<(u8, u32)>>::new());
    wait(&mut pair, 1);
    assert_eq!(
        datagrams_to_peer(&mut pair),
        vec![vec![(CMD_ACK, 0), (CMD_ACK, 1)]],
        "one datagram acknowledges both, a millisecond after the first arrived"
    );
    let deadline = pair.server.poll_timeout();
    assert!(
        deadline.map_or(true, |d| d.wrapping_sub(pair.clock()) > 1),
        "nothing more is due at once: {deadline:?}"
    );
}

#[test]
fn the_ack_timer_wakes_the_endpoint_no_later_than_the_delay() {
    let mut pair = pair();
    arrive(&mut pair, 0);
    let deadline = pair
        .server
        .poll_timeout()
        .expect("a timer for the owed ACK");
    assert_eq!(deadline.wrapping_sub(pair.clock()), 1);
}

#[test]
fn a_session_closed_right_after_a_message_still_acknowledges_it() {
    let mut pair = pair();
    let handle = arrive(&mut pair, 0);
    let now = pair.clock();
    pair.server.close(now, handle);
    assert_eq!(
        datagrams_to_peer(&mut pair),
        vec![vec![(CMD_ACK, 0)]],
        "the owed ACK leaves with the close, not a millisecond later from a session that is gone"
    );
}

//! Edges found running kcpwatch against the reference C implementation (ikcp) and other raw
//! KCP peers: what a correct peer may send that the guard must take, and what the endpoint does
//! after it closed a raw session the peer keeps talking to.

mod common;

use common::{addr, Link, Pair};
use kcpwatch_proto::segment::{SegmentHeader, CMD_ACK, CMD_PUSH};
use kcpwatch_proto::{
    CloseReason, DropTrigger, EndpointEvent, Preset, SecurityEvent, SessionConfig,
};

/// A raw peer other than the pair's own client.
const PEER: &str = "10.0.0.7:40000";
const CONV: u32 = 0x0BAD_C0DE;

fn config(receive_window: u16) -> SessionConfig {
    SessionConfig {
        receive_window,
        max_message_size: 1_000,
        idle_timeout_ms: 30_000,
        ..Preset::Fast3.config()
    }
}

fn pair(receive_window: u16) -> Pair {
    Pair::new(91, config(receive_window), Link::clean())
}

fn push(frg: u8, sn: u32, una: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    SegmentHeader {
        conv: CONV,
        cmd: CMD_PUSH,
        frg,
        wnd: 256,
        ts: sn,
        sn,
        una,
        len: payload.len() as u32,
    }
    .encode(&mut out);
    out.extend_from_slice(payload);
    out
}

/// One datagram holding PUSH segments `sns` of one byte each (the byte is the sn's low byte),
/// as ikcp packs many small messages into one datagram.
fn pushes(sns: impl IntoIterator<Item = u32>) -> Vec<u8> {
    sns.into_iter()
        .flat_map(|sn| push(0, sn, 0, &[sn as u8]))
        .collect()
}

/// Lets the server's ACK delay (a millisecond: owed ACKs wait that long for a reply to carry
/// them) run out, and returns the sequence numbers it acknowledged to `PEER`.
fn acks_to_peer(pair: &mut Pair) -> Vec<u32> {
    pair.now += 1;
    let now = pair.clock();
    pair.server.handle_timeout(now);
    pair.server.flush(now);
    let mut acked = Vec::new();
    for t in pair.server.transmits().iter() {
        if t.destination != addr(PEER) {
            continue;
        }
        let mut rest = t.data;
        while let Some(h) = SegmentHeader::parse(rest) {
            if h.cmd == CMD_ACK {
                acked.push(h.sn);
            }
            rest = &rest[24 + h.len as usize..];
        }
    }
    pair.server.clear_transmits();
    acked
}

fn accepted(pair: &Pair) -> Vec<kcpwatch_proto::ConnectionHandle> {
    pair.server_events
        .iter()
        .filter_map(|e| match e {
            EndpointEvent::Accepted { handle, .. } => Some(*handle),
            _ => None,
        })
        .collect()
}

fn read_all(pair: &mut Pair, handle: kcpwatch_proto::ConnectionHandle) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    common::recv_all(&mut pair.server, handle, &mut out);
    out
}

fn refusals(pair: &Pair) -> Vec<(DropTrigger, &'static str)> {
    pair.server_security
        .iter()
        .filter_map(|e| match e {
            SecurityEvent::PacketDropped(d) => Some((d.trigger, d.rule.as_str())),
            SecurityEvent::ConnectionFailed(f) => f.trigger.map(|t| (t, f.rule.as_str())),
            _ => None,
        })
        .collect()
}

#[test]
fn an_opening_datagram_reaching_past_the_receive_window_is_served_as_ikcp_serves_it() {
    // ikcp with wndsize(128, 256) and nodelay sends up to 128 segments before it has heard
    // our window; 50 one-byte messages fill one datagram. With rcvWnd 32 the old guard refused
    // every such datagram, so the peer was never served.
    let mut pair = pair(32);
    let datagram = pushes((0..50).chain(100..110));
    pair.inject_to_server(addr(PEER), &datagram);
    assert_eq!(refusals(&pair), vec![], "nothing refused");
    let opened = accepted(&pair);
    assert_eq!(opened.len(), 1, "the datagram opened a session");
    // The engine's own window is at least 128 segments (KCP raises smaller ones, as ikcp
    // does), so every segment is taken and acknowledged; 0..49 are delivered, 100..109 wait.
    let mut acked = acks_to_peer(&mut pair);
    acked.sort_unstable();
    assert_eq!(acked, (0..50).chain(100..110).collect::<Vec<_>>());
    let got = read_all(&mut pair, opened[0]);
    assert_eq!(got, (0..50u32).map(|sn| vec![sn as u8]).collect::<Vec<_>>());
}

#[test]
fn an_opening_datagram_beyond_the_window_a_silent_peer_assumes_opens_nothing() {
    // A peer that has heard nothing from us sends within the 128 segments ikcp and kcp-go
    // assume; an opening reaching past that is not a KCP client starting a conversation.
    let mut pair = pair(32);
    pair.inject_to_server(addr(PEER), &pushes((0..10).chain([128])));
    assert_eq!(
        refusals(&pair),
        vec![(DropTrigger::GuardViolation, "sequence_outside_window")]
    );
    assert!(accepted(&pair).is_empty());
}

#[test]
fn a_datagram_of_an_established_session_with_segments_past_the_window_is_partly_taken() {
    let mut pair = pair(32);
    pair.inject_to_server(addr(PEER), &pushes(0..10));
    let handle = accepted(&pair)[0];
    assert_eq!(read_all(&mut pair, handle).len(), 10);
    acks_to_peer(&mut pair);
    // rcv_nxt is 10: sn 10..57 and 200..209 in one datagram (one-byte messages keep it under
    // the MTU). The engine takes segments in order, so rcv_nxt is 58 when sn 200 comes, past
    // its 128-segment window: 200..209 are dropped unacknowledged, for the peer to send again,
    // and the rest of the datagram is taken.
    let datagram: Vec<u8> = (10..58)
        .chain(200..210)
        .flat_map(|sn| push(0, sn, 0, &[sn as u8]))
        .collect();
    assert!(datagram.len() <= 1_500);
    pair.inject_to_server(addr(PEER), &datagram);
    assert_eq!(refusals(&pair), vec![]);
    let mut acked = acks_to_peer(&mut pair);
    acked.sort_unstable();
    assert_eq!(acked, (10..58).collect::<Vec<_>>());
    assert_eq!(read_all(&mut pair, handle).len(), 48);
    assert_eq!(pair.server.stats().datagrams_accepted, 2);
}

#[test]
fn a_segment_further_ahead_than_any_kcp_window_still_refuses_the_datagram() {
    // A KCP sender never has more than 65,535 segments (the largest window it can be told)
    // beyond our rcv_nxt: further ahead is not a peer out of step but forged or garbled, and
    // the guard keeps refusing the whole datagram (case F: nothing half-applied).
    let mut pair = pair(32);
    pair.inject_to_server(addr(PEER), &pushes(0..5));
    let handle = accepted(&pair)[0];
    let before = pair.server.stats().datagrams_accepted;
    pair.inject_to_server(addr(PEER), &pushes([5, 6, 5 + 70_000]));
    assert_eq!(
        refusals(&pair).last(),
        Some(&(DropTrigger::GuardViolation, "sequence_outside_window"))
    );
    assert_eq!(pair.server.stats().datagrams_accepted, before);
    assert_eq!(
        read_all(&mut pair, handle).len(),
        5,
        "sn 5 and 6 were not applied"
    );
}

/// A peer assembles a message above `max_message_size` (the guard bounds segments and the
/// fragment count, not their product): the session closes as `protocol_violation`.
fn violate(pair: &mut Pair) -> kcpwatch_proto::ConnectionHandle {
    let mut datagram = push(1, 0, 0, &[1; 600]);
    datagram.extend(push(0, 1, 0, &[2; 600]));
    pair.inject_to_server(addr(PEER), &datagram);
    let handle = accepted(pair)[0];
    let closed = pair.server_events.iter().find_map(|e| match e {
        EndpointEvent::Closed {
            handle: h, reason, ..
        } if *h == handle => Some(*reason),
        _ => None,
    });
    assert_eq!(closed, Some(CloseReason::ProtocolViolation));
    handle
}

#[test]
fn after_a_protocol_violation_the_same_address_and_conv_cannot_open_a_fresh_session() {
    let mut pair = pair(128);
    violate(&mut pair);
    let dropped_before = pair
        .server
        .stats()
        .dropped_by(DropTrigger::UnknownConnection);
    // The peer goes on with the rest of its stream (it has heard nothing from us, so una is
    // still 0): before, this opened a second session at rcv_nxt 0 that acknowledged and then
    // held these segments for ever, waiting for sn 0 and 1 it would never get.
    for round in 0..3u32 {
        pair.inject_to_server(addr(PEER), &pushes(2 + round * 4..6 + round * 4));
        pair.advance(1_000);
    }
    assert_eq!(accepted(&pair).len(), 1, "no second session was opened");
    assert_eq!(
        pair.server
            .stats()
            .dropped_by(DropTrigger::UnknownConnection),
        dropped_before + 3
    );
    assert_eq!(
        refusals(&pair).last(),
        Some(&(DropTrigger::UnknownConnection, "recently_closed"))
    );
    // Other convs from that address, and that conv from other addresses, are not affected.
    let other = SegmentHeader {
        conv: CONV + 1,
        cmd: CMD_PUSH,
        frg: 0,
        wnd: 128,
        ts: 0,
        sn: 0,
        una: 0,
        len: 0,
    };
    let mut datagram = Vec::new();
    other.encode(&mut datagram);
    pair.inject_to_server(addr(PEER), &datagram);
    assert_eq!(accepted(&pair).len(), 2);
    pair.inject_to_server(addr("10.0.0.8:40000"), &pushes(0..1));
    assert_eq!(accepted(&pair).len(), 3);
}

#[test]
fn the_block_after_a_protocol_violation_is_bounded_in_time() {
    let mut pair = pair(128);
    violate(&mut pair);
    pair.inject_to_server(addr(PEER), &pushes(2..4));
    assert_eq!(accepted(&pair).len(), 1);
    // The block lasts one idle timeout (30 s here): by then the old peer has given up or
    // idled out, and a new client on the same address and conv starts afresh.
    pair.advance(31_000);
    pair.inject_to_server(addr(PEER), &pushes(0..2));
    assert_eq!(accepted(&pair).len(), 2);
    assert_eq!(
        refusals(&pair)
            .iter()
            .filter(|r| r.1 == "recently_closed")
            .count(),
        1
    );
}

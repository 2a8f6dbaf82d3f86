//! The security event catalog as the endpoint emits it: one test per lifecycle path, each
//! asserting the exact ordered sequence of the connection's events and the fields an analyst
//! joins on (uid, conv, originator and responder), plus every drop trigger raw mode can produce,
//! sampling, protocol violations and severity filtering. Everything runs on virtual time.

mod common;

use std::net::SocketAddr;

use common::{addr, endpoint_configs, Link, Pair, CLIENT, SERVER};
use kcpwatch_proto::events::{
    ConnectionClosed, ConnectionFailed, ConnectionRef, Direction, DropRule, ErrorType, FailReason,
    PacketDropped, ProtocolViolation, Violation,
};
use kcpwatch_proto::segment::{SegmentHeader, CMD_ACK, CMD_PUSH, CMD_WASK, CMD_WINS};
use kcpwatch_proto::session::SessionSendError;
use kcpwatch_proto::uid::Uid;
use kcpwatch_proto::{
    CloseReason, ConnectionState, DropTrigger, EndpointConfig, EndpointEvent, Initiator, Preset,
    SecurityEvent, SendError, SessionConfig, Severity,
};
use ConnectionState::{Attempted, Closed, Closing, Established};

/// The conv `Pair` connects with.
const CONV: u32 = 0x1234_5678;
const ATTACKER: &str = "10.9.9.9:1";

const ATTEMPTED: &str = "kcp:connection_attempted";
const ESTABLISHED: &str = "kcp:connection_established";
const FAILED: &str = "kcp:connection_failed";
const STATE: &str = "kcp:connection_state_updated";
const CLOSED: &str = "kcp:connection_closed";
const DROPPED: &str = "kcp:packet_dropped";
const VIOLATION: &str = "kcp:protocol_violation";
const ERROR: &str = "kcp:error";

fn config() -> SessionConfig {
    SessionConfig {
        idle_timeout_ms: 120_000,
        ..Preset::Fast3.config()
    }
}

/// One segment whose `len` field is the payload's length.
fn segment(conv: u32, cmd: u8, frg: u8, sn: u32, una: u32, payload: &[u8]) -> Vec<u8> {
    segment_claiming(conv, cmd, frg, sn, una, payload.len() as u32, payload)
}

/// One segment whose `len` field says `len`, whatever the payload holds.
fn segment_claiming(
    conv: u32,
    cmd: u8,
    frg: u8,
    sn: u32,
    una: u32,
    len: u32,
    payload: &[u8],
) -> Vec<u8> {
    let mut out = Vec::new();
    SegmentHeader {
        conv,
        cmd,
        frg,
        wnd: 128,
        ts: 0,
        sn,
        una,
        len,
    }
    .encode(&mut out);
    out.extend_from_slice(payload);
    out
}

/// A valid opening datagram (the first message of a conversation).
fn opening(conv: u32) -> Vec<u8> {
    segment(conv, CMD_PUSH, 0, 0, 0, b"hi")
}

/// A distinct source address per index, for floods from many sources.
fn source(i: u32) -> SocketAddr {
    addr(&format!("10.9.0.{}:{}", i + 1, 1_000 + i))
}

// ---- Reading the recorded events ----------------------------------------------------------

/// The uid an event belongs to, whether it names a connection or only carries its uid.
fn uid_of(event: &SecurityEvent) -> Option<Uid> {
    match event {
        SecurityEvent::PacketDropped(d) => d.uid,
        _ => event.connection().map(|c| c.uid),
    }
}

/// The events of one connection, in the order they were recorded.
fn events_for(events: &[SecurityEvent], uid: Uid) -> Vec<SecurityEvent> {
    events
        .iter()
        .filter(|e| uid_of(e) == Some(uid))
        .copied()
        .collect()
}

fn names(events: &[SecurityEvent]) -> Vec<&'static str> {
    events.iter().map(SecurityEvent::name).collect()
}

fn names_for(events: &[SecurityEvent], uid: Uid) -> Vec<&'static str> {
    names(&events_for(events, uid))
}

fn transitions(events: &[SecurityEvent]) -> Vec<(ConnectionState, ConnectionState)> {
    events
        .iter()
        .filter_map(|e| match e {
            SecurityEvent::ConnectionStateUpdated(s) => Some((s.old, s.new)),
            _ => None,
        })
        .collect()
}

/// State updates form one chain: it starts at `attempted`, each `old` is the previous `new`,
/// and nothing follows `closed`.
fn assert_chain(events: &[SecurityEvent]) {
    let steps = transitions(events);
    assert_eq!(steps.first().map(|s| s.0), Some(Attempted), "{steps:?}");
    for pair in steps.windows(2) {
        assert_eq!(pair[0].1, pair[1].0, "broken chain {steps:?}");
        assert_ne!(pair[0].1, Closed, "a transition after closed {steps:?}");
    }
}

fn closed_of(events: &[SecurityEvent]) -> ConnectionClosed {
    let closed: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            SecurityEvent::ConnectionClosed(c) => Some(*c),
            _ => None,
        })
        .collect();
    assert_eq!(closed.len(), 1, "exactly one close record");
    closed[0]
}

fn drops(events: &[SecurityEvent]) -> Vec<PacketDropped> {
    events
        .iter()
        .filter_map(|e| match e {
            SecurityEvent::PacketDropped(d) => Some(*d),
            _ => None,
        })
        .collect()
}

fn failures(events: &[SecurityEvent]) -> Vec<ConnectionFailed> {
    events
        .iter()
        .filter_map(|e| match e {
            SecurityEvent::ConnectionFailed(f) => Some(*f),
            _ => None,
        })
        .collect()
}

fn violations(events: &[SecurityEvent]) -> Vec<ProtocolViolation> {
    events
        .iter()
        .filter_map(|e| match e {
            SecurityEvent::ProtocolViolation(v) => Some(*v),
            _ => None,
        })
        .collect()
}

/// Every connection-scoped event names the same connection: the client's inbound connection
/// as the server sees it.
fn assert_inbound_from_client(events: &[SecurityEvent], uid: Uid) {
    for event in events {
        let Some(conn) = event.connection() else {
            continue;
        };
        assert_eq!(conn.uid, uid);
        assert_eq!(conn.conv, CONV);
        assert_eq!(conn.direction, Direction::Inbound);
        assert_eq!((conn.peer, conn.local), (addr(CLIENT), addr(SERVER)));
        // Inbound: the peer opened it, so it is the source.
        assert_eq!((conn.src(), conn.dst()), (addr(CLIENT), addr(SERVER)));
    }
}

/// A pair whose server has accepted the client's connection (one "hello" delivered).
fn established(seed: u64, session: SessionConfig) -> (Pair, Uid) {
    let mut pair = Pair::new(seed, session, Link::clean());
    pair.establish();
    let uid = server_uid(&pair);
    (pair, uid)
}

fn server_uid(pair: &Pair) -> Uid {
    pair.server
        .connection_info(pair.server_conn.unwrap())
        .unwrap()
        .uid
}

/// Moves virtual time to `ms` later and runs the server's timers there, and nothing else, so
/// a test can look at the server just before and at a deadline.
fn server_wakes_after(pair: &mut Pair, ms: u64) {
    pair.now += ms;
    let now = pair.clock();
    pair.server.handle_timeout(now);
    pair.drain();
}

/// What the records of a sampled trigger stand for: each individual record (suppressed 0)
/// is one occurrence; each aggregate record stands for `suppressed` occurrences.
fn represented(suppressed: impl Iterator<Item = u64>) -> u64 {
    suppressed.map(|s| if s == 0 { 1 } else { s }).sum()
}

fn sampled_configs(burst: u32, window_ms: u32) -> (EndpointConfig, EndpointConfig) {
    let (mut server, client) = endpoint_configs(90, config());
    server.sample_burst = burst;
    server.sample_window_ms = window_ms;
    (server, client)
}

// ---- 1-5. Lifecycle of an inbound connection, one test per way it ends ---------------------

#[test]
fn inbound_connection_closed_by_idle_timeout() {
    let session = SessionConfig {
        idle_timeout_ms: 2_000,
        ..config()
    };
    let (mut pair, uid) = established(1, session);
    let mut got = Vec::new();
    let more: [&[u8]; 3] = [b"one", b"two two", b"three three three"];
    for message in more {
        let now = pair.clock();
        pair.client.send(now, pair.client_conn, message).unwrap();
    }
    assert!(pair.run_until(1_000, |p| {
        p.server_recv_all(&mut got);
        got.len() == more.len()
    }));
    // The server heard the client's last data before the client heard the server's last ACK,
    // so the server times out first and the client's counters are still readable then.
    assert!(pair.run_until(10_000, |p| p.server.connection_count() == 0));
    let client = pair
        .client
        .connection_summary(pair.client_conn)
        .expect("the client times out later");

    let events = events_for(&pair.server_security, uid);
    assert_eq!(
        events.len(),
        pair.server_security.len(),
        "nothing but this connection happened"
    );
    assert_eq!(
        names(&events),
        [ATTEMPTED, STATE, ESTABLISHED, STATE, CLOSED]
    );
    assert_eq!(
        transitions(&events),
        [(Attempted, Established), (Established, Closed)]
    );
    assert_chain(&events);
    assert_inbound_from_client(&events, uid);

    let closed = closed_of(&events);
    assert_eq!(closed.reason, CloseReason::IdleTimeout);
    assert_eq!(closed.initiator, Initiator::Local);
    let summary = closed.summary;
    assert_eq!(
        (summary.uid, summary.conv, summary.remote, summary.local),
        (uid, CONV, addr(CLIENT), addr(SERVER))
    );
    assert_eq!(summary.direction, Direction::Inbound);
    // A lossless link: the server accepted exactly what the client produced.
    assert_eq!(summary.datagrams_in, client.datagrams_out);
    assert_eq!(summary.bytes_in, client.bytes_out);
    let payload = b"hello".len() + more.iter().map(|m| m.len()).sum::<usize>();
    assert_eq!(summary.payload_bytes_in, payload as u64);
    assert_eq!(summary.messages_in, 4);
    // The peer (upper case: the originator) sent data before anything else happened.
    assert!(
        summary.history.as_str().starts_with('D'),
        "history {:?}",
        summary.history
    );
    assert_eq!(closed.params, session);
}

#[test]
fn inbound_connection_closed_by_dead_link() {
    let session = SessionConfig {
        dead_link: 5,
        ..config()
    };
    let (mut pair, uid) = established(2, session);
    // Nothing gets through any more, so the server's data is never acknowledged.
    pair.link.loss = 1.0;
    let now = pair.clock();
    pair.server
        .send(now, pair.server_conn.unwrap(), b"into the void")
        .unwrap();
    assert!(pair.run_until(60_000, |p| p.server.connection_count() == 0));

    let events = events_for(&pair.server_security, uid);
    assert_eq!(
        names(&events),
        [ATTEMPTED, STATE, ESTABLISHED, STATE, CLOSED]
    );
    assert_eq!(
        transitions(&events),
        [(Attempted, Established), (Established, Closed)]
    );
    assert_inbound_from_client(&events, uid);
    let closed = closed_of(&events);
    assert_eq!(closed.reason, CloseReason::DeadLink);
    assert_eq!(closed.initiator, Initiator::Local);
    assert_eq!(
        SecurityEvent::ConnectionClosed(closed).severity(),
        Severity::Notice
    );
    // The server (lower case: the responder) retransmitted before giving up.
    assert!(
        closed.summary.history.as_str().contains('r'),
        "history {:?}",
        closed.summary.history
    );
    assert_eq!(closed.summary.payload_bytes_out, 13);
    assert_eq!(closed.params, session);
}

#[test]
fn inbound_connection_closed_locally() {
    let (mut pair, uid) = established(3, config());
    let conn = pair.server_conn.unwrap();
    let now = pair.clock();
    pair.server.send(now, conn, b"bye").unwrap();
    pair.server.close(now, conn);
    pair.drain();
    // "bye" is still unacknowledged: the connection is closing, not closed yet.
    let events = events_for(&pair.server_security, uid);
    assert_eq!(names(&events), [ATTEMPTED, STATE, ESTABLISHED, STATE]);
    assert_eq!(transitions(&events).last(), Some(&(Established, Closing)));

    assert!(pair.run_until(5_000, |p| p.server.connection_count() == 0));
    let events = events_for(&pair.server_security, uid);
    assert_eq!(
        names(&events),
        [ATTEMPTED, STATE, ESTABLISHED, STATE, STATE, CLOSED]
    );
    assert_eq!(
        transitions(&events),
        [
            (Attempted, Established),
            (Established, Closing),
            (Closing, Closed)
        ]
    );
    assert_chain(&events);
    assert_inbound_from_client(&events, uid);
    let closed = closed_of(&events);
    assert_eq!(closed.reason, CloseReason::LocalClosed);
    assert_eq!(closed.initiator, Initiator::Local);
    assert_eq!(closed.summary.payload_bytes_out, 3);
    let mut got = Vec::new();
    pair.client_recv_all(&mut got);
    assert_eq!(got, [b"bye".to_vec()]);
}

#[test]
fn inbound_connection_closed_by_shutdown() {
    let (mut pair, uid) = established(4, config());
    let now = pair.clock();
    pair.server.shutdown(now);
    pair.drain();
    let events = events_for(&pair.server_security, uid);
    assert_eq!(
        names(&events),
        [ATTEMPTED, STATE, ESTABLISHED, STATE, CLOSED]
    );
    assert_eq!(
        transitions(&events),
        [(Attempted, Established), (Established, Closed)]
    );
    assert_inbound_from_client(&events, uid);
    let closed = closed_of(&events);
    assert_eq!(closed.reason, CloseReason::Shutdown);
    assert_eq!(closed.initiator, Initiator::Local);
    assert_eq!(closed.summary.payload_bytes_in, 5);
}

#[test]
fn inbound_connection_closed_by_an_engine_fault() {
    let (mut pair, uid) = established(5, config());
    assert!(pair.server.inject_engine_fault(pair.server_conn.unwrap()));
    pair.advance(100);
    let events = events_for(&pair.server_security, uid);
    // The error comes first, so the close record can be read as its consequence.
    assert_eq!(
        names(&events),
        [ATTEMPTED, STATE, ESTABLISHED, ERROR, STATE, CLOSED]
    );
    let SecurityEvent::Error(error) = events[3] else {
        unreachable!()
    };
    assert_eq!(error.code, "KCP_ENGINE_PANIC");
    assert_eq!(error.error_type, ErrorType::Library);
    assert_eq!(error.conn.map(|c| c.uid), Some(uid));
    assert_eq!(
        transitions(&events),
        [(Attempted, Established), (Established, Closed)]
    );
    assert_inbound_from_client(&events, uid);
    let closed = closed_of(&events);
    assert_eq!(closed.reason, CloseReason::InternalError);
    assert_eq!(closed.initiator, Initiator::Local);
    assert_eq!(pair.server.stats().panics, 1);
}

// ---- 6. Outbound ---------------------------------------------------------------------------

#[test]
fn outbound_connection_is_recorded_on_connect() {
    // `Pair::new` has the client connect; nothing has been sent yet.
    let mut pair = Pair::new(6, config(), Link::clean());
    pair.drain();
    let uid = pair.client.connection_info(pair.client_conn).unwrap().uid;
    assert_eq!(
        names(&pair.client_security),
        [ATTEMPTED, STATE, ESTABLISHED]
    );
    assert_eq!(
        transitions(&pair.client_security),
        [(Attempted, Established)]
    );
    for event in &pair.client_security {
        let conn = event.connection().unwrap();
        assert_eq!(conn.uid, uid);
        assert_eq!(conn.conv, CONV);
        assert_eq!(conn.direction, Direction::Outbound);
        assert_eq!((conn.peer, conn.local), (addr(SERVER), addr(CLIENT)));
        // Outbound: we opened it, so we are the source.
        assert_eq!((conn.src(), conn.dst()), (addr(CLIENT), addr(SERVER)));
    }

    // The rest of its life, ending with the client's own close.
    pair.establish();
    let now = pair.clock();
    pair.client.close(now, pair.client_conn);
    // It lingers (closing) until the server's ACK for "hello" arrives.
    assert!(pair.run_until(1_000, |p| p.client.connection_count() == 0));
    let events = events_for(&pair.client_security, uid);
    assert_eq!(
        names(&events),
        [ATTEMPTED, STATE, ESTABLISHED, STATE, STATE, CLOSED]
    );
    assert_chain(&events);
    let closed = closed_of(&events);
    assert_eq!(closed.reason, CloseReason::LocalClosed);
    assert_eq!(closed.summary.direction, Direction::Outbound);
    // We are the originator: our own data is upper case.
    assert!(closed.summary.history.as_str().starts_with('D'));
}

// ---- 7. Failed attempts --------------------------------------------------------------------

#[test]
fn malformed_opening_datagrams_fail_without_a_session() {
    let session = config();
    let cases = [
        // More fragments than the receive window can reassemble.
        (
            segment(7, CMD_PUSH, session.receive_window as u8, 0, 0, b"x"),
            DropTrigger::GuardViolation,
            "fragment_beyond_window",
        ),
        // A payload larger than any MSS we accept.
        (
            segment(7, CMD_PUSH, 0, 0, 0, &vec![0; session.receive_mss() + 1]),
            DropTrigger::BadLength,
            "length_beyond_mss",
        ),
    ];
    for (datagram, trigger, rule) in cases {
        let mut pair = Pair::new(7, session, Link::clean());
        pair.inject_to_server(addr(ATTACKER), &datagram);

        let events = &pair.server_security;
        assert_eq!(names(events), [ATTEMPTED, STATE, FAILED], "{rule}");
        let uid = uid_of(&events[0]).unwrap();
        assert!(events.iter().all(|e| uid_of(e) == Some(uid)));
        assert_eq!(transitions(events), [(Attempted, Closed)]);
        let failed = failures(events)[0];
        assert_eq!(failed.reason, FailReason::Malformed);
        assert_eq!(
            (failed.trigger, failed.rule.as_str()),
            (Some(trigger), rule)
        );
        assert_eq!(failed.suppressed, 0);
        assert_eq!(
            failed.conn,
            ConnectionRef {
                uid,
                conv: 7,
                peer: addr(ATTACKER),
                local: addr(SERVER),
                direction: Direction::Inbound,
                user: kcpwatch_proto::events::UserId::NONE,
            }
        );
        // Nothing was allocated or announced.
        assert_eq!(pair.server.connection_count(), 0);
        assert!(pair.server_events.is_empty());
        assert_eq!(pair.server.stats().failed, 1);
        assert_eq!(pair.server.stats().dropped_by(trigger), 1);
        assert_eq!(pair.server.stats().dropped_total(), 1);
    }
}

#[test]
fn opening_beyond_the_connection_limit_fails_with_capacity() {
    let (mut server, client) = endpoint_configs(8, config());
    server.max_connections = 1;
    let mut pair = Pair::with_configs(server, client, Link::clean(), 1_000);
    pair.establish();
    let first = server_uid(&pair);
    let second = addr("10.0.0.3:50001");
    pair.inject_to_server(second, &opening(7));

    let failed = failures(&pair.server_security);
    assert_eq!(failed.len(), 1);
    let failed = failed[0];
    assert_eq!(failed.reason, FailReason::Capacity);
    assert_eq!(failed.trigger, Some(DropTrigger::OverLimit));
    assert_eq!(failed.rule, "max_connections");
    assert_eq!(failed.suppressed, 0);
    assert_eq!((failed.conn.peer, failed.conn.conv), (second, 7));
    assert_ne!(failed.conn.uid, first);
    let events = events_for(&pair.server_security, failed.conn.uid);
    assert_eq!(names(&events), [ATTEMPTED, STATE, FAILED]);
    assert_eq!(transitions(&events), [(Attempted, Closed)]);
    // The connection that holds the slot is untouched.
    assert_eq!(
        names_for(&pair.server_security, first),
        [ATTEMPTED, STATE, ESTABLISHED]
    );
    assert_eq!(pair.server.connection_count(), 1);
    assert_eq!(pair.server.stats().dropped_by(DropTrigger::OverLimit), 1);
}

// ---- 8. Every drop trigger of raw mode -----------------------------------------------------

#[test]
fn drops_from_unknown_sources_carry_no_uid() {
    let (mut pair, uid) = established(9, config());
    let attacker = addr(ATTACKER);

    // Shorter than a header: no conv, so no session can be named, even from a known address.
    for (from, len) in [(attacker, 0), (attacker, 23), (addr(CLIENT), 10)] {
        pair.inject_to_server(from, &vec![0xAB; len]);
        let d = *drops(&pair.server_security).last().unwrap();
        assert_eq!(
            d,
            PacketDropped {
                remote: from,
                local: addr(SERVER),
                conv: None,
                uid: None,
                trigger: DropTrigger::TooShort,
                rule: DropRule::TooShort,
                len: len as u32,
                suppressed: 0,
            }
        );
    }

    // Answers to a conversation that does not exist cannot start one.
    for cmd in [CMD_ACK, CMD_WASK, CMD_WINS] {
        let datagram = segment(7, cmd, 0, 0, 0, &[]);
        pair.inject_to_server(attacker, &datagram);
        let d = *drops(&pair.server_security).last().unwrap();
        assert_eq!(
            d,
            PacketDropped {
                remote: attacker,
                local: addr(SERVER),
                conv: Some(7),
                uid: None,
                trigger: DropTrigger::UnknownConnection,
                // Right after the server started: most likely a restarted server's returning
                // player (docs/detection.md); `no_session` after the grace period.
                rule: DropRule::StaleSession,
                len: 24,
                suppressed: 0,
            }
        );
    }

    // A client endpoint accepts nothing it did not open.
    let stranger = addr("10.0.0.9:4000");
    pair.inject_to_client_from(stranger, &opening(7));
    let d = *drops(&pair.client_security).last().unwrap();
    assert_eq!(
        d,
        PacketDropped {
            remote: stranger,
            local: addr(CLIENT),
            conv: Some(7),
            uid: None,
            trigger: DropTrigger::UnknownConnection,
            rule: DropRule::NoSession,
            len: 26,
            suppressed: 0,
        }
    );

    let stats = pair.server.stats();
    assert_eq!(stats.dropped_by(DropTrigger::TooShort), 3);
    assert_eq!(stats.dropped_by(DropTrigger::UnknownConnection), 3);
    assert_eq!(
        pair.client
            .stats()
            .dropped_by(DropTrigger::UnknownConnection),
        1
    );
    // None of it touched the connection.
    assert_eq!(
        names_for(&pair.server_security, uid),
        [ATTEMPTED, STATE, ESTABLISHED]
    );
}

#[test]
fn drops_on_an_established_connection_carry_its_uid() {
    let (mut pair, uid) = established(10, config());
    let session = config();
    // The server has read "hello" (rcv_nxt 1) and sent nothing (snd_nxt 0).
    let valid_head = segment(CONV, CMD_WINS, 0, 0, 0, &[]);
    let then = |tail: &[u8]| [valid_head.as_slice(), tail].concat();
    let cases: Vec<(Vec<u8>, DropTrigger, &str)> = vec![
        // The first segment routes the datagram to the session; a later one is for another.
        (
            then(&segment(CONV ^ 1, CMD_WINS, 0, 0, 0, &[])),
            DropTrigger::BadConv,
            "bad_conv",
        ),
        (
            segment(CONV, 99, 0, 1, 0, b"x"),
            DropTrigger::BadCmd,
            "bad_cmd",
        ),
        (
            segment_claiming(CONV, CMD_PUSH, 0, 1, 0, 1_000, b"abc"),
            DropTrigger::BadLength,
            "length_beyond_datagram",
        ),
        (
            segment(CONV, CMD_PUSH, 0, 1, 0, &vec![0; session.receive_mss() + 1]),
            DropTrigger::BadLength,
            "length_beyond_mss",
        ),
        (
            segment(CONV, CMD_ACK, 0, 0, 0, b"abc"),
            DropTrigger::BadLength,
            "control_with_payload",
        ),
        (
            then(&[1, 2, 3, 4, 5]),
            DropTrigger::BadLength,
            "trailing_bytes",
        ),
        (
            segment(CONV, CMD_PUSH, 200, 1, 0, b"x"),
            DropTrigger::GuardViolation,
            "fragment_beyond_window",
        ),
        (
            segment(CONV, CMD_PUSH, 0, 70_000, 0, b"far ahead"),
            DropTrigger::GuardViolation,
            "sequence_outside_window",
        ),
        (
            segment(CONV, CMD_ACK, 0, 0, 0, &[]),
            DropTrigger::GuardViolation,
            "ack_unsent",
        ),
        (
            segment(CONV, CMD_WINS, 0, 0, 100, &[]),
            DropTrigger::GuardViolation,
            "una_beyond_sent",
        ),
    ];
    for (i, (datagram, trigger, rule)) in cases.iter().enumerate() {
        let before = pair.server.stats().dropped_by(*trigger);
        pair.inject_to_server(addr(CLIENT), datagram);
        let last = *pair.server_security.last().unwrap();
        assert_eq!(
            last,
            SecurityEvent::PacketDropped(PacketDropped {
                remote: addr(CLIENT),
                local: addr(SERVER),
                conv: Some(CONV),
                uid: Some(uid),
                trigger: *trigger,
                rule: DropRule::from_name(rule).unwrap(),
                len: datagram.len() as u32,
                suppressed: 0,
            }),
            "{rule}"
        );
        assert_eq!(pair.server.stats().dropped_by(*trigger), before + 1);
        let summary = pair
            .server
            .connection_summary(pair.server_conn.unwrap())
            .unwrap();
        assert_eq!(summary.guard_drops, i as u64 + 1);
    }
    // The connection survived all of it and recorded nothing else.
    assert_eq!(pair.server.connection_count(), 1);
    let events = events_for(&pair.server_security, uid);
    assert_eq!(events.len(), 3 + cases.len());
    assert_eq!(names(&events[..3]), [ATTEMPTED, STATE, ESTABLISHED]);
    assert!(names(&events[3..]).iter().all(|n| *n == DROPPED));
    let history = pair
        .server
        .connection_summary(pair.server_conn.unwrap())
        .unwrap()
        .history;
    assert!(history.as_str().contains('G'), "history {history:?}");
}

// ---- 9. Sampling ---------------------------------------------------------------------------

#[test]
fn dropped_datagrams_are_sampled_per_window() {
    let (server, client) = sampled_configs(3, 1_000);
    let mut pair = Pair::with_configs(server, client, Link::clean(), 1_000);
    let start = pair.now;
    // Ten runts from ten sources within one millisecond.
    for i in 0..10 {
        pair.inject_to_server(source(i), &vec![0; i as usize]);
    }
    let logged = drops(&pair.server_security);
    assert_eq!(logged.len(), 3);
    for (i, d) in logged.iter().enumerate() {
        assert_eq!(
            (d.remote, d.len, d.suppressed),
            (source(i as u32), i as u32, 0)
        );
    }
    // The endpoint asks to be woken when the window ends, to report the rest.
    let window_end = pair.clock().wrapping_add(1_000);
    assert_eq!(pair.server.poll_timeout(), Some(window_end));
    server_wakes_after(&mut pair, 999);
    assert_eq!(drops(&pair.server_security).len(), 3);
    server_wakes_after(&mut pair, 1);
    assert_eq!(pair.now - start, 1_000);

    let logged = drops(&pair.server_security);
    assert_eq!(logged.len(), 4);
    let aggregate = logged[3];
    assert_eq!(aggregate.suppressed, 7);
    // It carries the addresses of the last drop it stands for.
    assert_eq!((aggregate.remote, aggregate.len), (source(9), 9));
    assert_eq!(
        (aggregate.trigger, aggregate.rule.as_str()),
        (DropTrigger::TooShort, "too_short")
    );
    let stats = pair.server.stats();
    assert_eq!(
        represented(logged.iter().map(|d| d.suppressed)),
        stats.dropped_by(DropTrigger::TooShort)
    );
    assert_eq!(stats.dropped_total(), 10);
    assert_eq!(pair.server.poll_timeout(), None);
}

#[test]
fn failed_attempts_are_sampled_per_window() {
    let (server, client) = sampled_configs(3, 1_000);
    let mut pair = Pair::with_configs(server, client, Link::clean(), 1_000);
    let malformed = segment(7, CMD_PUSH, 200, 0, 0, b"x");
    for i in 0..10 {
        pair.inject_to_server(source(i), &malformed);
    }
    // Three attempts in full (attempted, its state update, failed), the rest only counted.
    assert_eq!(
        names(&pair.server_security),
        [ATTEMPTED, STATE, FAILED].repeat(3)
    );
    server_wakes_after(&mut pair, 1_000);
    // The aggregate is a failed record alone: no attempt is invented for it.
    assert_eq!(names(&pair.server_security).len(), 10);
    assert_eq!(names(&pair.server_security)[9], FAILED);

    let failed = failures(&pair.server_security);
    for (i, f) in failed[..3].iter().enumerate() {
        assert_eq!((f.conn.peer, f.suppressed), (source(i as u32), 0));
    }
    let aggregate = failed[3];
    assert_eq!(aggregate.suppressed, 7);
    assert_eq!(aggregate.conn.peer, source(9));
    assert_eq!(aggregate.reason, FailReason::Malformed);
    assert_eq!(
        (aggregate.trigger, aggregate.rule.as_str()),
        (Some(DropTrigger::GuardViolation), "fragment_beyond_window")
    );
    let stats = pair.server.stats();
    let total = represented(failed.iter().map(|f| f.suppressed));
    assert_eq!(total, stats.failed);
    assert_eq!(total, stats.dropped_by(DropTrigger::GuardViolation));
    assert_eq!(pair.server.connection_count(), 0);
}

/// A drop that arrives exactly when a window ends, before the endpoint's timer ran, must not
/// swallow the aggregate of that window: the aggregate comes first, and the new window starts
/// with an individual record, so individual records and aggregates stay distinguishable
/// (suppressed 0 versus more) and still add up to the counted drops.
#[test]
fn a_drop_at_the_window_boundary_keeps_the_aggregate_separate() {
    let (server, client) = sampled_configs(3, 1_000);
    let mut pair = Pair::with_configs(server, client, Link::clean(), 1_000);
    let malformed = segment(7, CMD_PUSH, 200, 0, 0, b"x");
    for i in 0..10 {
        pair.inject_to_server(source(i), &[0; 3]);
        pair.inject_to_server(source(i), &malformed);
    }
    // No timer runs: the next datagrams arrive first, at the window's end.
    pair.now += 1_000;
    pair.inject_to_server(source(10), &[0; 3]);
    pair.inject_to_server(source(10), &malformed);

    let logged = drops(&pair.server_security);
    let suppressed: Vec<u64> = logged.iter().map(|d| d.suppressed).collect();
    assert_eq!(suppressed, [0, 0, 0, 7, 0]);
    assert_eq!(logged[3].remote, source(9));
    assert_eq!(logged[4].remote, source(10));
    assert_eq!(
        represented(suppressed.into_iter()),
        pair.server.stats().dropped_by(DropTrigger::TooShort)
    );

    let failed = failures(&pair.server_security);
    let suppressed: Vec<u64> = failed.iter().map(|f| f.suppressed).collect();
    assert_eq!(suppressed, [0, 0, 0, 7, 0]);
    assert_eq!(failed[3].conn.peer, source(9));
    assert_eq!(failed[4].conn.peer, source(10));
    assert_eq!(
        represented(suppressed.into_iter()),
        pair.server.stats().failed
    );
    // The new window's first attempt is logged in full after the old window's aggregate.
    let attempts: Vec<_> = names(&pair.server_security)
        .into_iter()
        .filter(|n| *n != DROPPED)
        .collect();
    assert_eq!(
        attempts[attempts.len() - 4..],
        [FAILED, ATTEMPTED, STATE, FAILED]
    );
}

// ---- 10. Protocol violations ---------------------------------------------------------------

#[test]
fn refused_sends_are_protocol_violations() {
    let session = SessionConfig {
        max_send_queue_bytes: 1_000,
        ..config()
    };
    let mut pair = Pair::new(11, session, Link::clean());
    pair.establish();
    let conn = pair.client_conn;
    let info = pair.client.connection_info(conn).unwrap();
    let now = pair.clock();

    let limit = session.max_message_size;
    let oversized = vec![0; limit + 1];
    assert_eq!(
        pair.client.send(now, conn, &oversized),
        Err(SendError::Session(SessionSendError::TooLarge {
            size: limit + 1,
            limit
        }))
    );
    // An empty message is a message (a PUSH of length 0, as ikcp sends it), not a violation.
    pair.client.send(now, conn, &[]).unwrap();
    pair.client.send(now, conn, &[1; 600]).unwrap();
    assert!(matches!(
        pair.client.send(now, conn, &[2; 600]),
        Err(SendError::Session(SessionSendError::QueueFull { .. }))
    ));
    // Closing with data queued: the connection lingers, and refuses new messages.
    pair.client.close(now, conn);
    assert_eq!(
        pair.client.send(now, conn, b"late"),
        Err(SendError::Session(SessionSendError::NotOpen))
    );
    assert!(pair.run_until(5_000, |p| p.client.connection_count() == 0));
    // Once closed, the handle is stale; the refusal still names the connection it was for.
    let now = pair.clock();
    assert_eq!(
        pair.client.send(now, conn, b"later"),
        Err(SendError::UnknownConnection)
    );
    pair.drain();

    let conn_ref = pair.client_security[0].connection().copied();
    assert_eq!(conn_ref.map(|c| c.uid), Some(info.uid));
    let expected = [
        (
            conn_ref,
            Violation::OversizedMessage,
            limit as u64 + 1,
            limit as u64,
        ),
        (conn_ref, Violation::SendQueueFull, 600, 1_000),
        (conn_ref, Violation::MessageOnClosedConnection, 4, 0),
        (conn_ref, Violation::MessageOnClosedConnection, 5, 0),
    ];
    let got: Vec<_> = violations(&pair.client_security)
        .iter()
        .map(|v| (v.conn, v.violation, v.size, v.limit))
        .collect();
    assert_eq!(got, expected);
    // In the connection's own sequence the violations sit where they happened, the last one
    // after the close.
    assert_eq!(
        names_for(&pair.client_security, info.uid),
        [
            ATTEMPTED,
            STATE,
            ESTABLISHED,
            VIOLATION,
            VIOLATION,
            STATE,
            VIOLATION,
            STATE,
            CLOSED,
            VIOLATION
        ]
    );
    assert_chain(&events_for(&pair.client_security, info.uid));
}

// ---- 11. Severity filtering ----------------------------------------------------------------

/// Establishes a connection, sends a runt and a malformed opening, then kills the link so the
/// server's connection ends with a dead link.
fn noisy_run(event_level: Option<Severity>) -> Pair {
    let session = SessionConfig {
        dead_link: 5,
        ..config()
    };
    let (mut server, mut client) = endpoint_configs(12, session);
    server.event_level = event_level;
    client.event_level = event_level;
    let mut pair = Pair::with_configs(server, client, Link::clean(), 1_000);
    pair.establish();
    // The server's ACK of the client's hello waits up to a millisecond for a reply to carry
    // it; it must reach the client before the link goes dead, or the client dies too.
    pair.advance(5);
    pair.inject_to_server(addr(ATTACKER), &[0; 5]);
    pair.inject_to_server(addr(ATTACKER), &segment(7, CMD_PUSH, 200, 0, 0, b"x"));
    pair.link.loss = 1.0;
    let now = pair.clock();
    pair.server
        .send(now, pair.server_conn.unwrap(), b"lost")
        .unwrap();
    assert!(pair.run_until(60_000, |p| p.server.connection_count() == 0));
    pair
}

#[test]
fn event_level_notice_records_only_notice_and_above() {
    let pair = noisy_run(Some(Severity::Notice));
    // The attempts, establishments and state updates are informational; the drop, the failure
    // and a dead-link close are notices.
    assert_eq!(names(&pair.server_security), [DROPPED, FAILED, CLOSED]);
    assert_eq!(
        closed_of(&pair.server_security).reason,
        CloseReason::DeadLink
    );
    assert!(pair
        .server_security
        .iter()
        .all(|e| e.severity() <= Severity::Notice));
    assert!(pair.client_security.is_empty());
}

#[test]
fn event_level_none_records_nothing_but_still_counts() {
    let pair = noisy_run(None);
    assert!(pair.server_security.is_empty());
    assert!(pair.client_security.is_empty());
    let stats = pair.server.stats();
    assert_eq!(stats.dropped_by(DropTrigger::TooShort), 1);
    assert_eq!(stats.failed, 1);
    assert_eq!(stats.closed, 1);
    assert!(pair.server_events.iter().any(|e| matches!(
        e,
        EndpointEvent::Closed {
            reason: CloseReason::DeadLink,
            ..
        }
    )));
}

// ---- 12. Ordering across interleaved connections -------------------------------------------

#[test]
fn each_connection_keeps_its_own_order_among_others() {
    let (mut pair, client_uid) = established(13, config());
    let second = addr("10.0.0.3:50001");
    let third = addr("10.0.0.4:50002");
    pair.inject_to_server(second, &opening(7));
    pair.inject_to_server(third, &opening(8));
    assert_eq!(pair.server.connection_count(), 3);
    let handles: Vec<_> = pair
        .server_events
        .iter()
        .filter_map(|e| match e {
            EndpointEvent::Accepted { handle, .. } => Some(*handle),
            _ => None,
        })
        .collect();
    let uid_of_handle = |p: &Pair, i: usize| p.server.connection_info(handles[i]).unwrap().uid;
    let (second_uid, third_uid) = (uid_of_handle(&pair, 1), uid_of_handle(&pair, 2));

    // Interleave: a runt at the second connection's address, a local close, an engine fault,
    // then shut down what is left.
    pair.inject_to_server(second, &[0; 4]);
    pair.inject_to_server(second, &segment(7, CMD_PUSH, 200, 1, 0, b"x"));
    let now = pair.clock();
    pair.server.close(now, handles[1]);
    assert!(pair.server.inject_engine_fault(handles[2]));
    pair.advance(50);
    let now = pair.clock();
    pair.server.shutdown(now);
    pair.drain();
    assert_eq!(pair.server.connection_count(), 0);

    let expected = [
        (
            client_uid,
            vec![ATTEMPTED, STATE, ESTABLISHED, STATE, CLOSED],
            CloseReason::Shutdown,
        ),
        (
            second_uid,
            vec![ATTEMPTED, STATE, ESTABLISHED, DROPPED, STATE, STATE, CLOSED],
            CloseReason::LocalClosed,
        ),
        (
            third_uid,
            vec![ATTEMPTED, STATE, ESTABLISHED, ERROR, STATE, CLOSED],
            CloseReason::InternalError,
        ),
    ];
    for (uid, sequence, reason) in expected {
        let events = events_for(&pair.server_security, uid);
        assert_eq!(names(&events), sequence, "{reason:?}");
        assert_chain(&events);
        assert_eq!(transitions(&events).last().unwrap().1, Closed);
        assert_eq!(closed_of(&events).reason, reason);
    }
    // The runt named no connection, the malformed segment did.
    let runts: Vec<_> = drops(&pair.server_security)
        .into_iter()
        .filter(|d| d.trigger == DropTrigger::TooShort)
        .collect();
    assert_eq!(runts.len(), 1);
    assert_eq!(runts[0].uid, None);
}

//! Secure mode agrees the KCP parameters a message depends on: each side states its receive
//! window, its largest message and whether it is in stream mode, and a side never sends a
//! message the other cannot take (more fragments than its receive window, or more bytes than
//! its `max_message_size`). A stream/message mode mismatch is refused in the handshake.

mod common;

use common::{secure_configs, Link, Pair};
use kcpwatch_proto::events::FailReason;
use kcpwatch_proto::session::SessionSendError;
use kcpwatch_proto::{CloseReason, EndpointEvent, Preset, SecurityEvent, SendError, SessionConfig};

/// The `game` preset's MSS at its 1200-byte MTU in secure mode (1200 - 29 - 24).
const GAME_MSS: usize = 1147;

fn pair(seed: u64, server: SessionConfig, client: SessionConfig) -> Pair {
    let (mut s, mut c) = secure_configs(seed, Preset::Game.config());
    s.session = server;
    c.session = client;
    let mut p = Pair::with_configs(s, c, Link::clean(), 1_000);
    p.record = true;
    p
}

fn closed(events: &[EndpointEvent]) -> Option<CloseReason> {
    events.iter().find_map(|e| match e {
        EndpointEvent::Closed { reason, .. } => Some(*reason),
        _ => None,
    })
}

fn too_large_limit(result: Result<(), SendError>) -> Option<usize> {
    match result {
        Err(SendError::Session(SessionSendError::TooLarge { limit, .. })) => Some(limit),
        _ => None,
    }
}

/// Sends `big` (refused or not, as the ceiling says) then a small message, and checks that
/// the receiver gets what was accepted, in order, and nobody closes.
fn small_windowed_receiver(server_sends: bool, seed: u64) {
    let small_window = SessionConfig {
        receive_window: 32,
        max_message_size: 32 * GAME_MSS,
        ..Preset::Game.config()
    };
    let (server, client) = if server_sends {
        (Preset::Game.config(), small_window)
    } else {
        (small_window, Preset::Game.config())
    };
    let mut p = pair(seed, server, client);
    p.establish();
    let conn = p.server_conn.unwrap();
    let (sender, handle) = if server_sends {
        (&mut p.server, conn)
    } else {
        (&mut p.client, p.client_conn)
    };
    let ceiling = sender.connection_info(handle).unwrap().max_message_size;
    assert_eq!(
        ceiling,
        32 * GAME_MSS,
        "the sender's max_message_size must follow the receiver's 32-segment window"
    );
    let now = p.clock();
    let sender = if server_sends {
        &mut p.server
    } else {
        &mut p.client
    };
    assert_eq!(
        too_large_limit(sender.send(now, handle, &vec![7; 65_536])),
        Some(32 * GAME_MSS)
    );
    let largest = vec![8; ceiling];
    sender.send(now, handle, &largest).unwrap();
    sender.send(now, handle, b"small").unwrap();
    let mut got = Vec::new();
    let done = p.run_until(10_000, |p| {
        if server_sends {
            p.client_recv_all(&mut got);
        } else {
            p.server_recv_all(&mut got);
        }
        got.len() >= 2
    });
    assert!(done, "{} message(s) delivered in 10 s", got.len());
    assert_eq!(got, vec![largest, b"small".to_vec()]);
    assert_eq!(closed(&p.server_events), None);
    assert_eq!(closed(&p.client_events), None);
}

#[test]
fn a_server_never_sends_a_client_more_fragments_than_its_receive_window() {
    small_windowed_receiver(true, 301);
}

#[test]
fn a_client_never_sends_a_server_more_fragments_than_its_receive_window() {
    small_windowed_receiver(false, 302);
}

/// A server allowing 100,000-byte messages at MTU 9000 and a default client (65,536): the
/// server's ceiling is the client's, so no send it accepts closes the client's connection.
#[test]
fn a_side_never_sends_more_than_the_peers_max_message_size() {
    let server = SessionConfig {
        mtu: 9000,
        max_message_size: 100_000,
        ..Preset::Game.config()
    };
    let mut p = pair(303, server, Preset::Game.config());
    p.establish();
    let conn = p.server_conn.unwrap();
    assert_eq!(
        p.server.connection_info(conn).unwrap().max_message_size,
        65_536
    );
    let now = p.clock();
    assert_eq!(
        too_large_limit(p.server.send(now, conn, &vec![1; 100_000])),
        Some(65_536)
    );
    p.server.send(now, conn, &vec![2; 65_536]).unwrap();
    p.server.send(now, conn, b"after").unwrap();
    let mut got = Vec::new();
    assert!(p.run_until(10_000, |p| {
        p.client_recv_all(&mut got);
        got.len() >= 2
    }));
    assert_eq!(got, vec![vec![2; 65_536], b"after".to_vec()]);
    assert_eq!(closed(&p.client_events), None);
    // The client's own ceiling is its own 65,536 (the server takes 100,000).
    assert_eq!(
        p.client
            .connection_info(p.client_conn)
            .unwrap()
            .max_message_size,
        65_536
    );
}

fn connect_failed(events: &[EndpointEvent]) -> Option<FailReason> {
    events.iter().find_map(|e| match e {
        EndpointEvent::ConnectFailed { reason, .. } => Some(*reason),
        _ => None,
    })
}

/// A stream-mode client and a message-mode server (and the other way round) cannot share a
/// session: the server refuses the HELLO with a REJECT `stream_mismatch`, records why, and the
/// client's attempt fails with that reason. Nothing is delivered as a "message".
fn stream_mismatch(client_stream: bool, seed: u64) {
    let client = SessionConfig {
        stream: client_stream,
        ..Preset::Game.config()
    };
    let server = SessionConfig {
        stream: !client_stream,
        ..Preset::Game.config()
    };
    let mut p = pair(seed, server, client);
    let now = p.clock();
    p.client.send(now, p.client_conn, &[3; 5000]).unwrap();
    assert!(p.run_until(5_000, |p| connect_failed(&p.client_events).is_some()));
    assert_eq!(
        connect_failed(&p.client_events),
        Some(FailReason::StreamMismatch)
    );
    let failed = p.server_security.iter().find_map(|e| match e {
        SecurityEvent::ConnectionFailed(f) => Some((f.reason, f.rule.as_str())),
        _ => None,
    });
    assert_eq!(failed, Some((FailReason::StreamMismatch, "hello_stream")));
    assert_eq!(p.server.stats().failed_by(FailReason::StreamMismatch), 1);
    assert!(p.server_conn.is_none());
    assert!(!p
        .server_events
        .iter()
        .any(|e| matches!(e, EndpointEvent::Accepted { .. })));
}

#[test]
fn a_stream_client_and_a_message_server_are_refused_in_the_handshake() {
    stream_mismatch(true, 304);
}

#[test]
fn a_message_client_and_a_stream_server_are_refused_in_the_handshake() {
    stream_mismatch(false, 305);
}

/// Two stream-mode sides agree and carry data as before.
#[test]
fn two_stream_sides_agree() {
    let stream = SessionConfig {
        stream: true,
        ..Preset::Game.config()
    };
    let mut p = pair(306, stream, stream);
    p.establish();
    let conn = p.server_conn.unwrap();
    let now = p.clock();
    p.server.send(now, conn, &[5; 10_000]).unwrap();
    let mut got = Vec::new();
    assert!(p.run_until(5_000, |p| {
        p.client_recv_all(&mut got);
        got.iter().map(Vec::len).sum::<usize>() == 10_000
    }));
}

/// A message a client queued during its handshake that exceeds the ceiling the handshake
/// agreed fails the attempt, and nothing queued is sent (as for an agreed MTU too small).
#[test]
fn a_message_queued_during_the_handshake_over_the_agreed_ceiling_fails_the_attempt() {
    let server = SessionConfig {
        receive_window: 32,
        max_message_size: 32 * GAME_MSS,
        ..Preset::Game.config()
    };
    let mut p = pair(307, server, Preset::Game.config());
    let now = p.clock();
    p.client.send(now, p.client_conn, b"first").unwrap();
    p.client.send(now, p.client_conn, &vec![4; 60_000]).unwrap();
    assert!(p.run_until(5_000, |p| connect_failed(&p.client_events).is_some()));
    assert_eq!(
        connect_failed(&p.client_events),
        Some(FailReason::Malformed)
    );
    let rule = p.client_security.iter().find_map(|e| match e {
        SecurityEvent::ConnectionFailed(f) => Some(f.rule.as_str()),
        _ => None,
    });
    assert_eq!(rule, Some("queued_message_too_large"));
    let mut got = Vec::new();
    p.advance(2_000);
    p.server_recv_all(&mut got);
    assert!(got.is_empty());
}

/// A HELLO stating a receive window of 0 (no message fits) is refused with a REJECT
/// `malformed`, recorded with its rule.
#[test]
fn a_hello_stating_an_empty_receive_window_is_rejected_as_malformed() {
    use kcpwatch_proto::secure::{wire, ClientNoise};
    let mut p = pair(308, Preset::Game.config(), Preset::Game.config());
    let key = *common::test_server_key().public();
    let from = common::addr("10.1.1.1:4000");
    let params = wire::KcpParams {
        mtu: 1200,
        receive_window: 0,
        ..Default::default()
    };
    let mut hello = Vec::new();
    ClientNoise::start(&key, &[5; 16], params, b"", &mut hello).unwrap();
    let reply = |p: &mut Pair, hello: &[u8]| {
        p.inject_to_server(from, hello);
        let out = p.server.transmits().iter().next().unwrap().data.to_vec();
        p.server.clear_transmits();
        out
    };
    let (_, cookie) = wire::parse_cookie(&reply(&mut p, &hello)).unwrap();
    wire::set_hello_cookie(&mut hello, &cookie);
    let reject = reply(&mut p, &hello);
    let reject = wire::parse_reject(&reject).unwrap();
    assert_eq!(
        wire::RejectReason::from_code(reject.reason),
        Some(wire::RejectReason::Malformed)
    );
    let failed = p.server_security.iter().find_map(|e| match e {
        SecurityEvent::ConnectionFailed(f) => Some((f.reason, f.rule.as_str())),
        _ => None,
    });
    assert_eq!(failed, Some((FailReason::Malformed, "hello_window")));
}

/// A client whose ACCEPT states the other KCP mode (a server that did not refuse the
/// mismatch) fails the attempt as `stream_mismatch`, rule `accept_stream`.
#[test]
fn an_accept_in_the_other_stream_mode_fails_the_client() {
    use kcpwatch_proto::secure::{wire, ServerNoise};
    let mut p = pair(309, Preset::Game.config(), Preset::Game.config());
    p.advance(1);
    let hello = p
        .client_datagrams
        .iter()
        .find(|d| d.first() == Some(&wire::TYPE_HELLO))
        .unwrap()
        .clone();
    let parsed = wire::parse_hello(&hello).unwrap();
    let mut token = Vec::new();
    let (responder, stated) =
        ServerNoise::read_hello(&common::test_server_key(), &parsed, &mut token).unwrap();
    assert!(!stated.stream);
    let mut accept = [0; wire::ACCEPT_LEN];
    responder
        .accept(
            &parsed.nonce,
            wire::AcceptPayload {
                conv: 77,
                idle_timeout_ms: 10_000,
                params: wire::KcpParams {
                    stream: true,
                    ..stated
                },
            },
            &mut accept,
        )
        .unwrap();
    p.inject_to_client(&accept);
    assert_eq!(
        connect_failed(&p.client_events),
        Some(FailReason::StreamMismatch)
    );
    let rule = p.client_security.iter().find_map(|e| match e {
        SecurityEvent::ConnectionFailed(f) => Some(f.rule.as_str()),
        _ => None,
    });
    assert_eq!(rule, Some("accept_stream"));
}

/// The `kcp_mtu` each side's `kcp:connection_closed` reports.
fn closed_mtu(events: &[SecurityEvent]) -> Option<usize> {
    events.iter().find_map(|e| match e {
        SecurityEvent::ConnectionClosed(c) => Some(c.params.mtu),
        _ => None,
    })
}

/// `kcp_mtu` is the largest datagram on the wire, as `kcp:listener_started` states it: a
/// secure close reports the MTU the handshake agreed (the smaller side's), not the engine's
/// inner MTU (that minus the session framing), with or without FEC.
#[test]
fn a_secure_close_reports_the_agreed_wire_mtu_like_listener_started() {
    let small = SessionConfig {
        mtu: 1000,
        ..Preset::Game.config()
    };
    for (seed, client, fec, want) in [
        (311, Preset::Game.config(), false, 1200),
        (312, small, false, 1000),
        (313, Preset::Game.config(), true, 1200),
    ] {
        let (mut s, mut c) = secure_configs(seed, Preset::Game.config());
        c.session = client;
        let fec = fec.then_some(kcpwatch_proto::fec::FecConfig {
            data_shards: 10,
            parity_shards: 3,
        });
        s.fec = fec;
        c.fec = fec;
        let mut p = Pair::with_configs(s, c, Link::clean(), 1_000);
        p.record = true;
        p.establish();
        let now = p.clock();
        p.client.close(now, p.client_conn);
        assert!(
            p.run_until(5_000, |p| closed_mtu(&p.server_security).is_some()
                && closed_mtu(&p.client_security).is_some())
        );
        assert_eq!(
            closed_mtu(&p.client_security),
            Some(want),
            "client, seed {seed}"
        );
        assert_eq!(
            closed_mtu(&p.server_security),
            Some(want),
            "server, seed {seed}"
        );
    }
}

//! Failure detection and the security records of the packet path (issue #14): the dead-link
//! time bound, the per-source handshake rate counted in handshakes, and what a restarted
//! server does with its former players (a stateless reset in secure mode; in both modes, no
//! alert-level finding against them).

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;

use common::{addr, secure_configs, Link, Pair, CLIENT, SERVER};
use kcpwatch_proto::events::{FailReason, Severity};
use kcpwatch_proto::secure::wire;
use kcpwatch_proto::segment::CMD_PUSH;
use kcpwatch_proto::{
    CloseReason, DropTrigger, Endpoint, EndpointConfig, EndpointEvent, Mode, Preset, SecurityEvent,
    SessionConfig, Unreachable,
};

fn game() -> SessionConfig {
    Preset::Game.config()
}

/// One raw KCP PUSH segment as a datagram.
fn push(conv: u32, sn: u32, una: u32, payload: &[u8]) -> Vec<u8> {
    let mut d = Vec::with_capacity(24 + payload.len());
    d.extend_from_slice(&conv.to_le_bytes());
    d.push(CMD_PUSH);
    d.push(0); // frg
    d.extend_from_slice(&256u16.to_le_bytes()); // wnd
    d.extend_from_slice(&0u32.to_le_bytes()); // ts
    d.extend_from_slice(&sn.to_le_bytes());
    d.extend_from_slice(&una.to_le_bytes());
    d.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    d.extend_from_slice(payload);
    d
}

fn closes(events: &[EndpointEvent]) -> Vec<CloseReason> {
    events
        .iter()
        .filter_map(|e| match e {
            EndpointEvent::Closed { reason, .. } => Some(*reason),
            _ => None,
        })
        .collect()
}

fn alerts(events: &[SecurityEvent]) -> Vec<(&'static str, Severity)> {
    events
        .iter()
        .filter_map(|e| match e {
            SecurityEvent::Alert(a) => Some((a.rule.id(), a.rule.severity())),
            _ => None,
        })
        .collect()
}

/// Item 11: a peer that keeps sending (so it never idles out) but never acknowledges what it
/// is sent pinned the data for the whole retransmission schedule: with the default 20
/// transmissions and RTO backoff, about 15 minutes.
#[test]
fn a_peer_that_talks_but_never_acknowledges_closes_as_dead_link_within_the_time_bound() {
    let session = SessionConfig {
        idle_timeout_ms: 30_000,
        ..SessionConfig::default()
    };
    let mut server = Endpoint::new(
        EndpointConfig {
            session,
            accept_inbound: true,
            ..EndpointConfig::default()
        },
        0,
    )
    .unwrap();
    let (peer, local) = (addr(CLIENT), addr(SERVER));
    let conv = 0x0bad_f00d;
    server.handle_datagram(0, peer, local, &push(conv, 0, 0, b"hello"));
    let conn = match server.poll_event() {
        Some(EndpointEvent::Accepted { handle, .. }) => handle,
        other => panic!("{other:?}"),
    };
    server.send(0, conn, &[7; 4000]).unwrap();
    let mut closed_at = None;
    let mut events = Vec::new();
    // The peer sends a fresh message every 500 ms and never acknowledges anything.
    for step in 1..=2_400u32 {
        let now = step * 100;
        if step % 5 == 0 {
            server.handle_datagram(now, peer, local, &push(conv, step / 5, 0, b"tick"));
        }
        server.handle_timeout(now);
        // The application reads what the peer sends, so the receive window stays open.
        let mut buf = [0u8; 64];
        while server.recv(conn, &mut buf).is_some() {}
        server.flush(now);
        server.clear_transmits();
        while let Some(event) = server.poll_event() {
            if matches!(event, EndpointEvent::Closed { .. }) {
                closed_at.get_or_insert(now);
            }
            events.push(event);
        }
        if closed_at.is_some() {
            break;
        }
    }
    assert_eq!(
        closes(&events),
        [CloseReason::DeadLink],
        "still open after 240 s without a single acknowledgement"
    );
    let at = closed_at.unwrap();
    // The bound defaults to the idle timeout: the first transmission was at 0.
    assert!((30_000..=31_000).contains(&at), "closed at {at} ms");
}

/// The bound is a maximum, not a schedule: a link that acknowledges keeps its session however
/// long it lives, and a configured `dead_link_ms` wins over the idle timeout.
#[test]
fn a_session_that_acknowledges_outlives_the_dead_link_bound_and_the_bound_is_configurable() {
    let session = SessionConfig {
        dead_link_ms: Some(2_000),
        idle_timeout_ms: 10_000,
        ..game()
    };
    let mut p = Pair::new(41, session, Link::lossy(0.1));
    p.establish();
    for i in 0..200u32 {
        let now = p.clock();
        p.client.send(now, p.client_conn, &i.to_le_bytes()).unwrap();
        p.advance(50);
    }
    assert!(closes(&p.client_events).is_empty(), "{:?}", p.client_events);
    p.link.loss = 1.0;
    let now = p.clock();
    p.client.send(now, p.client_conn, b"into the void").unwrap();
    let start = p.now;
    assert!(p.run_until(5_000, |p| !closes(&p.client_events).is_empty()));
    assert_eq!(closes(&p.client_events), [CloseReason::DeadLink]);
    assert!(p.now - start <= 2_200, "{} ms", p.now - start);
}

/// Item 13: each handshake is two HELLOs (the first, and the one with the cookie); the
/// per-source rate counted HELLOs, so 20 handshakes a second, which the documentation
/// promises, failed from the third second on.
#[test]
fn twenty_handshakes_a_second_from_one_source_all_complete() {
    let (mut server_config, mut client_config) = secure_configs(42, game());
    server_config.sample_burst = 20;
    client_config.max_connections = 1_000;
    let mut server = Endpoint::new(server_config, 0).unwrap();
    let mut client = Endpoint::new(client_config, 0).unwrap();
    let mut established = 0;
    let mut failed = Vec::new();
    let mut now = 0;
    // 20 a second for 10 s, from one address (many ports: one client endpoint).
    for i in 0..200u32 {
        now = i * 50;
        let conn = client
            .connect_secure(now, addr(SERVER), addr(CLIENT), b"", None)
            .unwrap();
        for _ in 0..4 {
            client.flush(now);
            let out: Vec<Vec<u8>> = client.transmits().iter().map(|t| t.data.to_vec()).collect();
            client.clear_transmits();
            for d in out {
                server.handle_datagram(now, addr(CLIENT), addr(SERVER), &d);
            }
            server.flush(now);
            let back: Vec<Vec<u8>> = server.transmits().iter().map(|t| t.data.to_vec()).collect();
            server.clear_transmits();
            for d in back {
                client.handle_datagram(now, addr(SERVER), addr(CLIENT), &d);
            }
        }
        while let Some(event) = client.poll_event() {
            match event {
                EndpointEvent::Established { .. } => established += 1,
                EndpointEvent::ConnectFailed { reason, .. } => failed.push(reason),
                _ => {}
            }
        }
        // Keep the server's connection count low: each player leaves after its handshake.
        client.close_now(conn, CloseReason::LocalClosed);
        while server.poll_event().is_some() {}
        while server.poll_security_event().is_some() {}
        while client.poll_security_event().is_some() {}
    }
    let _ = now;
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(
        server.stats().failed_by(FailReason::RateLimited),
        0,
        "rate-limited HELLOs at 20 handshakes/s"
    );
    assert_eq!(established, 200);
}

/// A flood of forged cookies from one source is still held by the per-source rate (each
/// failed check costs a token), so the rate is not a way around the limit either.
#[test]
fn forged_cookies_from_one_source_still_use_up_its_handshake_rate() {
    let (server_config, _) = secure_configs(43, game());
    let mut server = Endpoint::new(server_config, 0).unwrap();
    let attacker: SocketAddr = "10.9.9.9:1".parse().unwrap();
    for i in 0..100u8 {
        let mut hello = Vec::new();
        kcpwatch_proto::secure::ClientNoise::start(
            common::test_server_key().public(),
            &[i; 16],
            kcpwatch_proto::secure::wire::KcpParams {
                mtu: 1200,
                ..Default::default()
            },
            b"",
            &mut hello,
        )
        .unwrap();
        wire::set_hello_cookie(&mut hello, &[0x33; 16]);
        server.handle_datagram(0, attacker, addr(SERVER), &hello);
    }
    let stats = server.stats();
    // Each forged cookie costs a token: the burst of 40 fail their check, the rest are over
    // the rate.
    assert_eq!(stats.failed_by(FailReason::InvalidCookie), 40);
    assert_eq!(stats.failed_by(FailReason::RateLimited), 60);
}

fn restart(p: &mut Pair, config: EndpointConfig) {
    let now = p.clock();
    p.server = Endpoint::new(config, now).unwrap();
    p.server_conn = None;
    p.server_security.clear();
    p.server_events.clear();
}

/// Item 11: after a server restart, a secure client used to retransmit into the void until
/// its idle timeout; the restarted server now answers with a stateless reset that the client
/// can verify, and the client closes at once.
#[test]
fn a_restarted_secure_server_resets_its_former_clients_at_once() {
    let session = SessionConfig {
        idle_timeout_ms: 30_000,
        ..game()
    };
    let (server_config, client_config) = secure_configs(44, session);
    let mut p = Pair::with_configs(server_config.clone(), client_config, Link::clean(), 1_000);
    p.establish();
    let mut restarted = server_config;
    restarted.secret = [0x99; 32];
    restart(&mut p, restarted);
    let start = p.now;
    for _ in 0..100 {
        let now = p.clock();
        if p.client.send(now, p.client_conn, b"still here?").is_err() {
            break;
        }
        p.advance(33);
        if !closes(&p.client_events).is_empty() {
            break;
        }
    }
    assert_eq!(
        closes(&p.client_events),
        [CloseReason::PeerClosed],
        "the client was still open {} ms after the restart",
        p.now - start
    );
    assert!(p.now - start <= 200, "{} ms", p.now - start);
    assert_eq!(p.client.stats().resets_received, 1);
    assert!(p.server.stats().resets_sent >= 1);
    assert!(
        alerts(&p.server_security).is_empty(),
        "{:?}",
        alerts(&p.server_security)
    );
}

/// What the detectors see of a restart: the former players' datagrams for sessions the new
/// process never had. With thresholds low enough that a few hundred of them used to raise
/// KCPW-005 (and KCPW-002 in raw mode), none is raised.
#[test]
fn a_restarted_servers_returning_players_raise_no_alert_level_finding() {
    for mode in [Mode::Raw, Mode::Secure] {
        let session = SessionConfig {
            idle_timeout_ms: 30_000,
            ..game()
        };
        let (mut server_config, mut client_config) = secure_configs(45, session);
        server_config.mode = mode;
        client_config.mode = mode;
        server_config.detectors.invalid_burst.threshold = 50;
        server_config.detectors.handshake_flood_global.threshold = 50;
        let mut p = Pair::with_configs(server_config.clone(), client_config, Link::clean(), 1_000);
        p.establish();
        // The server broadcasts, so the client has acknowledged something (una > 0).
        for i in 0..20u32 {
            let now = p.clock();
            let conn = p.server_conn.unwrap();
            p.server.send(now, conn, &i.to_le_bytes()).unwrap();
            p.advance(33);
        }
        let mut restarted = server_config;
        restarted.secret = [0x98; 32];
        restart(&mut p, restarted);
        // The client keeps playing at 30 Hz for 30 s (or until it learns).
        for _ in 0..900 {
            let now = p.clock();
            if p.client.send(now, p.client_conn, b"move").is_err() {
                break;
            }
            p.advance(33);
        }
        let found: Vec<_> = alerts(&p.server_security)
            .into_iter()
            .filter(|&(_, severity)| severity <= Severity::Alert)
            .collect();
        assert!(found.is_empty(), "{mode:?}: {found:?}");
        let stale: HashSet<&str> = p
            .server_security
            .iter()
            .filter_map(|e| match e {
                SecurityEvent::PacketDropped(d) if d.trigger == DropTrigger::UnknownConnection => {
                    Some(d.rule.as_str())
                }
                _ => None,
            })
            .collect();
        assert!(stale.contains("stale_session"), "{mode:?}: {stale:?}");
    }
}

/// Item 11, the reset's safety: a RESET ends a session only when it echoes the packet number
/// and tag of a datagram the client sent, which nobody off the path knows.
#[test]
fn a_reset_that_echoes_no_datagram_of_ours_changes_nothing() {
    let (server_config, client_config) = secure_configs(46, game());
    let mut p = Pair::with_configs(server_config, client_config, Link::clean(), 1_000);
    p.record = true;
    p.establish();
    let sent = p
        .client_datagrams
        .iter()
        .rev()
        .find(|d| d[0] == wire::TYPE_DATA)
        .unwrap()
        .clone();
    let (header, _) = wire::parse_session(&sent).unwrap();
    let mut genuine = [0; wire::RESET_LEN];
    wire::write_reset(&mut genuine, &header, &wire::reset_tag(&sent).unwrap());
    let mut wrong_tag = genuine;
    wrong_tag[20] ^= 1;
    let mut wrong_number = genuine;
    wrong_number[5] ^= 0x40;
    let mut wrong_conv = genuine;
    wrong_conv[1] ^= 1;
    let mut never_sent = genuine;
    never_sent[5..13].copy_from_slice(&u64::MAX.to_le_bytes());
    let attacker: SocketAddr = "10.9.9.9:1".parse().unwrap();
    for forged in [wrong_tag, wrong_number, wrong_conv, never_sent] {
        p.inject_to_client_from(attacker, &forged);
    }
    p.inject_to_client_from(attacker, &genuine[..20]);
    assert!(closes(&p.client_events).is_empty());
    let stats = p.client.stats();
    assert_eq!(stats.dropped_by(DropTrigger::BadTag), 3);
    assert_eq!(stats.dropped_by(DropTrigger::UnknownConnection), 1);
    assert_eq!(stats.dropped_by(DropTrigger::BadLength), 1);
    assert_eq!(stats.resets_received, 0);
    // The session still works.
    let now = p.clock();
    p.client.send(now, p.client_conn, b"after").unwrap();
    let mut got = Vec::new();
    assert!(p.run_until(1_000, |p| {
        p.server_recv_all(&mut got);
        got.iter().any(|m| m == b"after")
    }));
    // From any address, as every server reply: the echo is what authenticates it.
    p.inject_to_client_from(attacker, &genuine);
    assert_eq!(closes(&p.client_events), [CloseReason::PeerClosed]);
    assert_eq!(p.client.stats().resets_received, 1);
}

/// The server side: RESETs are never larger than what they answer, are rate-limited per
/// source, answer no DISCONNECT (a closing client needs no reset) and come only from servers.
#[test]
fn resets_are_no_larger_than_their_cause_and_rate_limited_per_source() {
    let (server_config, _) = secure_configs(47, game());
    let mut server = Endpoint::new(server_config, 0).unwrap();
    let attacker: SocketAddr = "10.9.9.9:1".parse().unwrap();
    let key = kcpwatch_proto::secure::SessionCipher::new(&[5; 32]);
    let mut sent = 0;
    for i in 0..100u32 {
        let mut d = Vec::new();
        kcpwatch_proto::secure::keys::seal_into(
            &mut d,
            &key,
            wire::TYPE_KEEPALIVE,
            0x7700_0000 + i,
            u64::from(i),
            b"",
        );
        server.handle_datagram(0, attacker, addr(SERVER), &d);
        for t in server.transmits().iter() {
            assert!(t.data.len() <= d.len());
            assert_eq!(t.data[0], wire::TYPE_RESET);
            sent += 1;
        }
        server.clear_transmits();
    }
    assert_eq!(sent, 20, "the per-source burst");
    let stats = server.stats();
    assert_eq!(stats.resets_sent, 20);
    assert!(stats.bytes_sent_unvalidated <= stats.bytes_received_unvalidated);
    let other: SocketAddr = "10.9.9.10:1".parse().unwrap();
    let mut disconnect = Vec::new();
    kcpwatch_proto::secure::keys::seal_into(
        &mut disconnect,
        &key,
        wire::TYPE_DISCONNECT,
        0x7800_0000,
        0,
        &[4],
    );
    server.handle_datagram(0, other, addr(SERVER), &disconnect);
    assert!(server.transmits().is_empty());
    // A client endpoint never sends one.
    let (_, client_config) = secure_configs(47, game());
    let mut client = Endpoint::new(client_config, 0).unwrap();
    let mut keepalive = Vec::new();
    kcpwatch_proto::secure::keys::seal_into(
        &mut keepalive,
        &key,
        wire::TYPE_KEEPALIVE,
        0x7900_0000,
        0,
        b"",
    );
    client.handle_datagram(0, other, addr(CLIENT), &keepalive);
    assert!(client.transmits().is_empty());
}

/// Item 10's policy on the simulated network: ICMP unreachable reports close a session only
/// when they go on, with nothing received, over a third of the idle timeout; a peer that
/// talks keeps its session however many reports (forged ones included) arrive.
#[test]
fn unreachable_reports_end_only_a_silent_session_and_each_episode_is_reported_once() {
    let session = SessionConfig {
        idle_timeout_ms: 9_000,
        ..game()
    };
    let mut p = Pair::new(48, session, Link::clean());
    p.establish();
    let mut first_reports = 0;
    // 10 s of reports every 200 ms while the peer sends every 100 ms.
    for step in 0..100u32 {
        let now = p.clock();
        p.client
            .send(now, p.client_conn, &step.to_le_bytes())
            .unwrap();
        p.advance(100);
        let now = p.clock();
        match p.server.peer_unreachable(now, addr(CLIENT)) {
            Unreachable::FirstReport(_) => first_reports += 1,
            Unreachable::Repeat => {}
            other => panic!("{other:?} while the peer talks"),
        }
        p.advance(100);
    }
    assert!(closes(&p.server_events).is_empty());
    assert!(first_reports > 0);
    // One last datagram arrives after the last report, then the player's process dies:
    // nothing more arrives.
    let now = p.clock();
    p.client.send(now, p.client_conn, b"last").unwrap();
    p.advance(100);
    p.link.loss = 1.0;
    let start = p.now;
    let mut outcomes = Vec::new();
    while closes(&p.server_events).is_empty() && p.now - start < 8_000 {
        p.advance(200);
        let now = p.clock();
        outcomes.push(p.server.peer_unreachable(now, addr(CLIENT)));
        p.drain();
    }
    assert!(matches!(outcomes[0], Unreachable::FirstReport(_)));
    assert!(outcomes[1..outcomes.len() - 1]
        .iter()
        .all(|o| *o == Unreachable::Repeat));
    assert!(matches!(outcomes.last(), Some(Unreachable::Closed(_))));
    assert_eq!(closes(&p.server_events), [CloseReason::DeadLink]);
    // A third of the 9 s idle timeout after the first report.
    let lasted = p.now - start;
    assert!((3_000..=3_400).contains(&lasted), "{lasted} ms");
    assert_eq!(
        p.server.peer_unreachable(p.clock(), addr(CLIENT)),
        Unreachable::NoSession
    );
}

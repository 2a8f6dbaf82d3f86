//! Secure mode on the simulated network: the handshake and every way it can fail, address
//! validation without state, tagged datagrams against an off-path attacker who knows the conv
//! (defect cases C, D, E, L in docs/security.md), replays, NAT rebinding, keepalives, DISCONNECT, and every
//! admission limit with its event and counter.

mod common;

use std::net::SocketAddr;

use common::{addr, message, recv_all, secure_configs, Link, Pair, CLIENT, SERVER};
use kcpwatch_proto::events::FailReason;
use kcpwatch_proto::limits::Limits;
use kcpwatch_proto::secure::keys::{seal_into, Role, SessionKeys};
use kcpwatch_proto::secure::wire::{self, RejectReason, TYPE_DATA};
use kcpwatch_proto::secure::ClientNoise;
use kcpwatch_proto::segment::{SegmentHeader, CMD_ACK, CMD_PUSH};
use kcpwatch_proto::{
    CloseReason, ConnectionHandle, ConnectionState, DropTrigger, Endpoint, EndpointConfig,
    EndpointEvent, Initiator, Preset, SecurityEvent, SessionConfig,
};
use rand::rngs::StdRng;
use rand::SeedableRng;

const ATTACKER: &str = "10.9.9.9:1";

fn session() -> SessionConfig {
    SessionConfig {
        idle_timeout_ms: 10_000,
        ..Preset::Game.config()
    }
}

fn secure_pair(seed: u64, link: Link) -> Pair {
    let (server, client) = secure_configs(seed, session());
    Pair::with_configs(server, client, link, 1_000)
}

fn secure_pair_with(
    seed: u64,
    link: Link,
    change: impl FnOnce(&mut EndpointConfig, &mut EndpointConfig),
) -> Pair {
    let (mut server, mut client) = secure_configs(seed, session());
    change(&mut server, &mut client);
    Pair::with_configs(server, client, link, 1_000)
}

/// Both ends have the connection: the client read the ACCEPT, and the server announced it
/// when the client's confirmation arrived.
fn established(p: &mut Pair) -> bool {
    p.client_events
        .iter()
        .any(|e| matches!(e, EndpointEvent::Established { .. }))
        && p.server_conn.is_some()
}

fn connect_failure(p: &Pair) -> Option<FailReason> {
    p.client_events.iter().find_map(|e| match e {
        EndpointEvent::ConnectFailed { reason, .. } => Some(*reason),
        _ => None,
    })
}

/// Names of a side's security events, with the state transitions spelled out.
fn timeline(events: &[SecurityEvent]) -> Vec<String> {
    events
        .iter()
        .filter(|e| !matches!(e, SecurityEvent::PacketDropped(_)))
        .map(|e| match e {
            SecurityEvent::ConnectionStateUpdated(s) => {
                format!("{}->{}", s.old.as_str(), s.new.as_str())
            }
            SecurityEvent::ConnectionFailed(f) => {
                format!("failed:{}:{}", f.reason.as_str(), f.rule)
            }
            SecurityEvent::ConnectionClosed(c) => format!("closed:{}", c.reason.as_str()),
            other => other.name().trim_start_matches("kcp:").to_string(),
        })
        .collect()
}

fn drops(events: &[SecurityEvent], trigger: DropTrigger) -> Vec<&'static str> {
    events
        .iter()
        .filter_map(|e| match e {
            SecurityEvent::PacketDropped(d) if d.trigger == trigger => Some(d.rule.as_str()),
            SecurityEvent::ConnectionFailed(f) if f.trigger == Some(trigger) => {
                Some(f.rule.as_str())
            }
            _ => None,
        })
        .collect()
}

fn server_public() -> [u8; 32] {
    *common::test_server_key().public()
}

fn hello(nonce: [u8; 16], cookie: Option<[u8; 16]>, token: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    ClientNoise::start(
        &server_public(),
        &nonce,
        kcpwatch_proto::secure::wire::KcpParams {
            mtu: 1200,
            ..Default::default()
        },
        token,
        &mut out,
    )
    .unwrap();
    if let Some(cookie) = cookie {
        wire::set_hello_cookie(&mut out, &cookie);
    }
    out
}

/// The server's replies queued since the last collection, with their destinations.
fn server_replies(p: &mut Pair) -> Vec<(SocketAddr, Vec<u8>)> {
    let out = p
        .server
        .transmits()
        .iter()
        .map(|t| (t.destination, t.data.to_vec()))
        .collect();
    p.server.clear_transmits();
    out
}

/// Exchanges messages both ways until every one arrived: the data path works.
fn echo_round(p: &mut Pair, count: u32, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let sent: Vec<Vec<u8>> = (0..count).map(|i| message(&mut rng, i, 8_000)).collect();
    for m in &sent {
        let now = p.clock();
        p.client.send(now, p.client_conn, m).unwrap();
    }
    let mut got = Vec::new();
    assert!(
        p.run_until(60_000, |p| {
            p.server_recv_all(&mut got);
            got.len() == sent.len()
        }),
        "{} of {} messages arrived",
        got.len(),
        sent.len()
    );
    assert_eq!(got, sent);
}

#[test]
fn the_handshake_establishes_a_session_that_carries_messages_over_a_lossy_link() {
    let mut p = secure_pair(1, Link::lossy(0.1));
    assert!(p.run_until(10_000, established));
    assert!(p.run_until(10_000, |p| p.server_conn.is_some()));
    let server_conn = p.server_conn.unwrap();
    let server_info = p.server.connection_info(server_conn).unwrap();
    let client_info = p.client.connection_info(p.client_conn).unwrap();
    assert_ne!(server_info.conv, 0);
    assert_eq!(
        server_info.conv, client_info.conv,
        "the client took the server's conv"
    );
    assert_eq!(server_info.remote, addr(CLIENT));
    echo_round(&mut p, 500, 7);
    assert_eq!(
        timeline(&p.server_security),
        [
            "connection_attempted",
            "attempted->handshaking",
            "handshaking->established",
            "connection_established"
        ]
    );
    assert_eq!(
        timeline(&p.client_security),
        [
            "connection_attempted",
            "attempted->handshaking",
            "handshaking->established",
            "connection_established"
        ]
    );
    // The lossy link also duplicates datagrams: the copies are the only drops, as replays.
    let stats = p.server.stats();
    assert_eq!(
        stats.dropped_total(),
        stats.dropped_by(DropTrigger::Replayed),
        "{stats:?}"
    );
    assert!(stats.cookies_sent >= 1);
}

#[test]
fn messages_sent_while_the_handshake_runs_leave_when_it_completes() {
    let mut p = secure_pair(2, Link::clean());
    let now = p.clock();
    p.client.send(now, p.client_conn, b"early").unwrap();
    let mut got = Vec::new();
    assert!(p.run_until(5_000, |p| {
        p.server_recv_all(&mut got);
        !got.is_empty()
    }));
    assert_eq!(got, [b"early".to_vec()]);
}

#[test]
fn every_session_datagram_is_encrypted_and_fits_the_mtu() {
    let mut p = secure_pair(3, Link::clean());
    p.record = true;
    assert!(p.run_until(5_000, established));
    echo_round(&mut p, 50, 3);
    let conv = p.client.connection_info(p.client_conn).unwrap().conv;
    let mut sessions = 0;
    for datagrams in [&p.server_datagrams, &p.client_datagrams] {
        for d in datagrams.iter().filter(|d| d[0] >= TYPE_DATA) {
            let (header, sealed) = wire::parse_session(d).unwrap();
            assert_eq!(header.conv, conv);
            assert!(sealed.len() >= wire::AEAD_TAG_LEN);
            // The KCP header (the conv again, little endian, at the start of every segment)
            // never shows: the whole KCP datagram is ciphertext.
            assert_ne!(&sealed[..4], &conv.to_le_bytes(), "KCP header in the clear");
            assert!(d.len() <= session().mtu, "{} > MTU", d.len());
            sessions += 1;
        }
    }
    assert!(sessions > 40, "{sessions}");
}

#[test]
fn the_server_keeps_no_state_and_never_amplifies_before_a_cookie_returns() {
    let mut p = secure_pair(4, Link::clean());
    let mut sent_to_sources = 0usize;
    let mut received_from_sources = 0usize;
    for i in 0..2_000u32 {
        let from: SocketAddr = format!("172.16.{}.{}:{}", i / 250, i % 250 + 1, 1_000 + i)
            .parse()
            .unwrap();
        let datagram = hello([i as u8; 16], None, b"");
        received_from_sources += datagram.len();
        p.inject_to_server(from, &datagram);
        for (to, reply) in server_replies(&mut p) {
            assert_eq!(to, from);
            assert!(
                reply.len() <= datagram.len(),
                "reply {} > request {}",
                reply.len(),
                datagram.len()
            );
            assert_eq!(wire::parse_cookie(&reply).unwrap().0, [i as u8; 16]);
            sent_to_sources += reply.len();
        }
    }
    let stats = p.server.stats();
    assert_eq!(p.server.connection_count(), 0);
    assert_eq!(p.server.pending_auth_count(), 0);
    assert_eq!(stats.cookies_sent, 2_000);
    assert_eq!(stats.bytes_sent_unvalidated as usize, sent_to_sources);
    assert!(sent_to_sources <= received_from_sources);
    assert!(
        !p.server_security
            .iter()
            .any(|e| e.name() == "kcp:connection_attempted"),
        "an unvalidated HELLO is not logged as an attempt by its (possibly spoofed) source"
    );
}

#[test]
fn a_cookie_only_works_from_the_address_it_was_sent_to() {
    let mut p = secure_pair(5, Link::clean());
    p.record = true;
    assert!(p.run_until(5_000, established));
    let with_cookie = p
        .client_datagrams
        .iter()
        .find(|d| wire::parse_hello(d).is_ok_and(|h| h.cookie.is_some()))
        .unwrap()
        .clone();
    p.inject_to_server(addr(ATTACKER), &with_cookie);
    assert_eq!(
        p.server.connection_count(),
        1,
        "no session for the attacker"
    );
    assert_eq!(
        drops(&p.server_security, DropTrigger::BadTag),
        ["cookie_mac"]
    );
    assert_eq!(p.server.stats().failed_by(FailReason::InvalidCookie), 1);
    // The same HELLO from the client's own address is a retransmission: the same ACCEPT.
    server_replies(&mut p);
    p.inject_to_server(addr(CLIENT), &with_cookie);
    let replies = server_replies(&mut p);
    assert_eq!(replies.len(), 1);
    assert!(wire::parse_accept(&replies[0].1).is_some());
    assert_eq!(p.server.connection_count(), 1);
}

#[test]
fn a_forged_cookie_fails_as_invalid_and_a_stale_one_as_expired_with_a_fresh_cookie() {
    let mut p = secure_pair(6, Link::clean());
    p.record = true;
    assert!(p.run_until(5_000, established));
    p.inject_to_server(addr(ATTACKER), &hello([9; 16], Some([0xAB; 16]), b""));
    // Keep the session alive while time passes, then replay the genuine HELLO late.
    let with_cookie = p
        .client_datagrams
        .iter()
        .find(|d| wire::parse_hello(d).is_ok_and(|h| h.cookie.is_some()))
        .unwrap()
        .clone();
    let mut changed = with_cookie.clone();
    changed[8] ^= 1; // another nonce: not a retransmission of the live session's HELLO
    let hello_view = wire::parse_hello(&with_cookie).unwrap();
    p.advance(25_000);
    server_replies(&mut p);
    // A different nonce with the stale cookie: the MAC covers the nonce, so it is invalid.
    p.inject_to_server(addr(CLIENT), &changed);
    assert_eq!(
        p.server.stats().failed_by(FailReason::InvalidCookie),
        2,
        "forged and re-nonced cookies"
    );
    // The genuine cookie for a nonce whose session is gone: expired, answered with a new one.
    let now = p.clock();
    p.server
        .close_now(p.server_conn.unwrap(), CloseReason::Evicted);
    let _ = now;
    server_replies(&mut p);
    p.inject_to_server(addr(CLIENT), &with_cookie);
    assert_eq!(p.server.stats().failed_by(FailReason::ExpiredCookie), 1);
    let replies = server_replies(&mut p);
    let fresh = replies
        .iter()
        .find_map(|(_, d)| wire::parse_cookie(d))
        .expect("a fresh cookie");
    assert_eq!(fresh.0, hello_view.nonce);
    assert_ne!(Some(fresh.1), hello_view.cookie);
    assert_eq!(
        drops(&p.server_security, DropTrigger::BadTag),
        ["cookie_mac", "cookie_mac", "cookie_expired"]
    );
}

#[test]
fn an_unsupported_version_is_rejected_and_the_client_reports_it() {
    let mut p = secure_pair(7, Link::clean());
    // A version 1 HELLO (the layout of the previous protocol: nonce at offset 4, 64 bytes).
    let mut v1 = vec![0u8; 64];
    v1[..4].copy_from_slice(&[wire::TYPE_HELLO, 1, 0, 0]);
    v1[4..20].copy_from_slice(&[1; 16]);
    p.inject_to_server(addr(ATTACKER), &v1);
    let replies = server_replies(&mut p);
    assert_eq!(replies.len(), 1);
    assert_eq!(
        replies[0].1.len(),
        20,
        "the REJECT a version 1 client reads"
    );
    let reject = wire::parse_reject(&replies[0].1).unwrap();
    assert_eq!(
        (reject.nonce, reject.reason, reject.version),
        ([1; 16], RejectReason::VersionMismatch.code(), wire::VERSION)
    );
    assert_eq!(p.server.stats().failed_by(FailReason::VersionMismatch), 1);
    assert_eq!(
        timeline(&p.server_security),
        [
            "connection_attempted",
            "attempted->closed",
            "failed:version_mismatch:unsupported_version"
        ]
    );

    // The client side: a REJECT naming its nonce ends its handshake with the reason.
    let mut p = secure_pair(
        8,
        Link {
            loss: 1.0,
            ..Link::clean()
        },
    );
    p.record = true;
    p.advance(1);
    let nonce = wire::parse_hello(&p.client_datagrams[0]).unwrap().nonce;
    let mut reject = [0; wire::REJECT_LEN];
    let len = wire::write_reject(&mut reject, &nonce, RejectReason::VersionMismatch, 0);
    p.inject_to_client(&reject[..len]);
    assert_eq!(connect_failure(&p), Some(FailReason::VersionMismatch));
    assert_eq!(p.client.connection_count(), 0);
}

#[test]
fn replies_that_name_no_pending_handshake_are_dropped() {
    let mut p = secure_pair(9, Link::clean());
    assert!(p.run_until(5_000, established));
    let mut reject = [0; wire::REJECT_LEN];
    wire::write_reject(&mut reject, &[0x42; 16], RejectReason::AuthRejected, 0);
    p.inject_to_client(&reject);
    assert_eq!(
        p.client.connection_count(),
        1,
        "a guessed nonce ends nothing"
    );
    assert_eq!(
        drops(&p.client_security, DropTrigger::UnknownConnection),
        ["no_handshake"]
    );
}

#[test]
fn the_application_accepts_or_rejects_the_token_and_a_rejection_leaves_no_session() {
    for accept in [true, false] {
        let mut p = secure_pair_with(10, Link::clean(), |server, _| server.require_auth = true);
        let now = p.clock();
        // Replace the pair's tokenless attempt with one that carries a ticket.
        p.client.close_now(p.client_conn, CloseReason::LocalClosed);
        p.client_conn = p
            .client
            .connect_secure(now, addr(SERVER), addr(CLIENT), b"ticket-42", None)
            .unwrap();
        assert!(p.run_until(5_000, |p| !p.server_events.is_empty()));
        let EndpointEvent::AuthRequest {
            id, token, remote, ..
        } = p.server_events[0].clone()
        else {
            panic!("{:?}", p.server_events);
        };
        assert_eq!((&*token, remote), (&b"ticket-42"[..], addr(CLIENT)));
        assert_eq!(
            p.server.connection_count(),
            0,
            "no session while the application decides"
        );
        assert!(p.server.resolve_auth(id, accept));
        assert!(!p.server.resolve_auth(id, accept), "answered once");
        p.advance(500);
        if accept {
            assert!(established(&mut p));
            assert_eq!(p.server.connection_count(), 1);
            echo_round(&mut p, 10, 1);
        } else {
            assert_eq!(connect_failure(&p), Some(FailReason::AuthRejected));
            assert_eq!(p.server.connection_count(), 0);
            assert_eq!(p.server.stats().failed_by(FailReason::AuthRejected), 1);
            assert_eq!(
                timeline(&p.server_security),
                [
                    "connection_attempted",
                    "attempted->handshaking",
                    "handshaking->closed",
                    "failed:auth_rejected:authenticate"
                ]
            );
        }
    }
}

#[test]
fn an_unanswered_authentication_times_out_as_a_rejection() {
    let mut p = secure_pair_with(11, Link::clean(), |server, _| {
        server.require_auth = true;
        server.auth_timeout_ms = 2_000;
    });
    assert!(p.run_until(8_000, |p| connect_failure(p).is_some()));
    assert_eq!(connect_failure(&p), Some(FailReason::AuthRejected));
    assert_eq!(p.server.pending_auth_count(), 0);
    assert!(timeline(&p.server_security).contains(&"failed:auth_rejected:auth_timeout".to_string()));
}

#[test]
fn a_client_without_answers_fails_with_handshake_timeout_after_backing_off() {
    let mut p = secure_pair_with(
        12,
        Link {
            loss: 1.0,
            ..Link::clean()
        },
        |_, client| {
            client.handshake_timeout_ms = 5_000;
        },
    );
    p.record = true;
    assert!(p.run_until(10_000, |p| connect_failure(p).is_some()));
    assert_eq!(connect_failure(&p), Some(FailReason::HandshakeTimeout));
    // 0, 250, 750, 1750, 3750 ms: backed off, not a HELLO per tick.
    assert_eq!(p.client_datagrams.len(), 5);
    assert_eq!(p.client.stats().failed_by(FailReason::HandshakeTimeout), 1);
    assert_eq!(
        timeline(&p.client_security),
        [
            "connection_attempted",
            "attempted->handshaking",
            "handshaking->closed",
            "failed:handshake_timeout:handshake_timeout"
        ]
    );
}

/// Establishes a second client from `from` against the pair's server, on its own endpoint.
fn second_client(p: &mut Pair, from: &str) -> Option<FailReason> {
    let (_, mut config) = secure_configs(99, session());
    // Each client its own secret, so its HELLO nonce is its own.
    config.secret = [0x77; 32];
    for (i, b) in from.bytes().enumerate() {
        config.secret[i % 32] ^= b;
    }
    let now = p.clock();
    let mut client = Endpoint::new(config, now).unwrap();
    let conn = client
        .connect_secure(now, addr(SERVER), addr(from), b"", None)
        .unwrap();
    for _ in 0..10 {
        client.flush(p.clock());
        let out: Vec<Vec<u8>> = client.transmits().iter().map(|t| t.data.to_vec()).collect();
        client.clear_transmits();
        for d in out {
            p.inject_to_server(addr(from), &d);
        }
        for (to, d) in server_replies(p) {
            if to == addr(from) {
                client.handle_datagram(p.clock(), addr(SERVER), addr(from), &d);
            }
        }
        while let Some(event) = client.poll_event() {
            match event {
                EndpointEvent::Established { handle, .. } if handle == conn => return None,
                EndpointEvent::ConnectFailed { reason, .. } => return Some(reason),
                _ => {}
            }
        }
    }
    panic!("the second client's handshake neither completed nor failed");
}

/// A limit case: its name, how it is set, the second client's address, the rule it refuses by.
type LimitCase = (
    &'static str,
    fn(&mut EndpointConfig),
    &'static str,
    &'static str,
);

#[test]
fn each_connection_limit_refuses_with_capacity_its_rule_and_a_reject() {
    let cases: [LimitCase; 3] = [
        (
            "max_connections",
            |c| c.max_connections = 1,
            "10.1.1.1:7",
            "max_connections",
        ),
        (
            "per ip",
            |c| c.limits.max_per_ip = 1,
            "10.0.0.2:50001",
            "max_connections_per_ip",
        ),
        (
            "per prefix",
            |c| c.limits.max_per_prefix = 1,
            "10.0.0.77:7",
            "max_connections_per_prefix",
        ),
    ];
    for (name, change, second, rule) in cases {
        let mut p = secure_pair_with(13, Link::clean(), |server, _| change(server));
        assert!(p.run_until(5_000, established), "{name}");
        assert_eq!(
            second_client(&mut p, second),
            Some(FailReason::Capacity),
            "{name}"
        );
        assert_eq!(p.server.connection_count(), 1, "{name}");
        assert_eq!(
            p.server.stats().failed_by(FailReason::Capacity),
            1,
            "{name}"
        );
        assert_eq!(
            p.server.stats().dropped_by(DropTrigger::OverLimit),
            1,
            "{name}"
        );
        assert_eq!(
            drops(&p.server_security, DropTrigger::OverLimit),
            [rule],
            "{name}"
        );
        // Another prefix is still welcome (except under the total cap).
        if name != "max_connections" {
            assert_eq!(second_client(&mut p, "10.200.0.1:9"), None, "{name}");
        }
    }
    // Pending authentications are bounded too.
    let mut p = secure_pair_with(14, Link::clean(), |server, _| {
        server.require_auth = true;
        server.max_pending_auth = 1;
    });
    p.advance(100);
    assert_eq!(p.server.pending_auth_count(), 1);
    assert_eq!(
        second_client(&mut p, "10.3.3.3:3"),
        Some(FailReason::Capacity)
    );
    assert_eq!(
        drops(&p.server_security, DropTrigger::OverLimit),
        ["max_pending_auth"]
    );
}

#[test]
fn handshake_rates_refuse_per_source_and_globally_without_replying() {
    let mut p = secure_pair_with(15, Link::clean(), |server, _| {
        server.limits = Limits {
            handshakes_per_ip: 1,
            handshake_burst_per_ip: 3,
            handshakes_global: 1,
            handshake_burst_global: 10,
            ..Limits::default()
        };
    });
    for i in 0..5u8 {
        p.inject_to_server(addr(ATTACKER), &hello([i; 16], None, b""));
    }
    assert_eq!(server_replies(&mut p).len(), 3, "the burst, then silence");
    assert_eq!(
        drops(&p.server_security, DropTrigger::RateLimited),
        ["handshake_rate_per_ip"; 2]
    );
    for i in 0..10u8 {
        let from: SocketAddr = format!("10.50.{i}.1:5").parse().unwrap();
        p.inject_to_server(from, &hello([i; 16], None, b""));
    }
    let stats = p.server.stats();
    assert_eq!(stats.failed_by(FailReason::RateLimited), 2 + 3);
    assert_eq!(stats.dropped_by(DropTrigger::RateLimited), 5);
    assert_eq!(
        drops(&p.server_security, DropTrigger::RateLimited)[2..],
        ["handshake_rate_global"; 3]
    );
}

#[test]
fn malformed_hellos_are_counted_with_their_rule() {
    let mut p = secure_pair(16, Link::clean());
    let good = hello([1; 16], None, b"");
    p.inject_to_server(addr(ATTACKER), &good[..40]);
    let mut long_token = good.clone();
    long_token.resize(wire::HELLO_MAX_LEN + 1, 0);
    p.inject_to_server(addr(ATTACKER), &long_token);
    p.inject_to_server(addr(ATTACKER), &[0x7F; 80]);
    p.inject_to_server(addr(ATTACKER), &[]);
    assert!(server_replies(&mut p).is_empty());
    assert_eq!(
        drops(&p.server_security, DropTrigger::TooShort),
        ["hello_too_short", "empty"]
    );
    assert_eq!(
        drops(&p.server_security, DropTrigger::BadLength),
        ["hello_too_long"]
    );
    assert_eq!(
        drops(&p.server_security, DropTrigger::BadCmd),
        ["unknown_type"]
    );
    assert_eq!(p.server.stats().failed_by(FailReason::Malformed), 2);
}

#[allow(clippy::too_many_arguments)]
fn kcp_segment(
    conv: u32,
    cmd: u8,
    frg: u8,
    wnd: u16,
    ts: u32,
    sn: u32,
    una: u32,
    payload: &[u8],
) -> Vec<u8> {
    let mut out = Vec::new();
    SegmentHeader {
        conv,
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

#[test]
fn an_off_path_attacker_who_knows_the_conv_cannot_inject_cases_c_d_e_l() {
    let mut p = secure_pair(17, Link::clean());
    assert!(p.run_until(5_000, established));
    echo_round(&mut p, 20, 17);
    let conn = p.server_conn.unwrap();
    let conv = p.server.connection_info(conn).unwrap().conv;
    let rto_before = p.server.connection_summary(conn).unwrap().rto_ms;
    let now = p.clock();
    // Without the session keys the attacker can only guess.
    let guessed = SessionKeys::from_split(&([0xEE; 32], [0xEF; 32]), Role::Client);
    let attacks = [
        // C: an ACK whose echoed timestamp is 30 s old, to inflate the RTO.
        kcp_segment(conv, CMD_ACK, 0, 256, now.wrapping_sub(30_000), 0, 0, b""),
        // D: una far beyond what was sent, to discard unacknowledged data.
        kcp_segment(conv, CMD_ACK, 0, 256, now, 1_000, 1_000, b""),
        // E: a zero window, to stall the sender.
        kcp_segment(conv, CMD_ACK, 0, 0, now, 0, 0, b""),
        // L: a fragment count beyond the receive window, to wedge reassembly.
        kcp_segment(conv, CMD_PUSH, 255, 256, now, 30, 0, &[1; 16]),
    ];
    for (i, kcp) in attacks.iter().enumerate() {
        let mut datagram = Vec::new();
        seal_into(
            &mut datagram,
            &guessed.send,
            TYPE_DATA,
            conv,
            1_000_000 + i as u64,
            kcp,
        );
        // From the client's own address (spoofed) and from elsewhere.
        p.inject_to_server(addr(CLIENT), &datagram);
        p.inject_to_server(addr(ATTACKER), &datagram);
        // Bare KCP, no secure framing at all.
        p.inject_to_server(addr(CLIENT), kcp);
    }
    let stats = p.server.stats();
    assert_eq!(stats.dropped_by(DropTrigger::DecryptFailed), 8);
    assert_eq!(
        stats.datagrams_accepted,
        p.server.stats().datagrams_accepted
    );
    assert_eq!(
        p.server.connection_summary(conn).unwrap().rto_ms,
        rto_before
    );
    assert_eq!(
        p.server.connection_info(conn).unwrap().remote,
        addr(CLIENT),
        "not moved"
    );
    // The session still works at full speed: nothing was stalled, wedged or discarded.
    echo_round(&mut p, 200, 18);
    assert!(p.server.connection_summary(conn).unwrap().rto_ms < 1_000);
    assert!(!p
        .server_security
        .iter()
        .any(|e| e.name() == "kcp:peer_address_changed"));
}

#[test]
fn a_replayed_datagram_is_refused_and_never_moves_the_session() {
    let mut p = secure_pair(18, Link::clean());
    p.record = true;
    assert!(p.run_until(5_000, established));
    echo_round(&mut p, 20, 18);
    let captured: Vec<Vec<u8>> = p
        .client_datagrams
        .iter()
        .filter(|d| d[0] == TYPE_DATA)
        .cloned()
        .collect();
    assert!(captured.len() >= 5);
    let accepted = p.server.stats().datagrams_accepted;
    for d in &captured[..5] {
        p.inject_to_server(addr(CLIENT), d);
        p.inject_to_server(addr(ATTACKER), d);
    }
    let stats = p.server.stats();
    assert_eq!(stats.datagrams_accepted, accepted);
    assert_eq!(stats.dropped_by(DropTrigger::Replayed), 10);
    assert_eq!(stats.peer_address_changes, 0);
    let conn = p.server_conn.unwrap();
    assert_eq!(p.server.connection_info(conn).unwrap().remote, addr(CLIENT));
    assert_eq!(
        drops(&p.server_security, DropTrigger::Replayed),
        ["replay_window"; 10]
    );
    echo_round(&mut p, 20, 19);
}

#[test]
fn a_nat_rebinding_moves_the_session_on_a_fresh_tagged_datagram_and_is_logged() {
    let mut p = secure_pair(19, Link::lossy(0.05));
    assert!(p.run_until(5_000, established));
    echo_round(&mut p, 50, 19);
    let rebound: SocketAddr = "192.0.2.200:61000".parse().unwrap();
    p.client_nat = Some(rebound);
    echo_round(&mut p, 200, 20);
    let conn = p.server_conn.unwrap();
    assert_eq!(p.server.connection_info(conn).unwrap().remote, rebound);
    assert_eq!(p.server.stats().peer_address_changes, 1);
    let moved: Vec<_> = p
        .server_security
        .iter()
        .filter_map(|e| match e {
            SecurityEvent::PeerAddressChanged(m) => Some(*m),
            _ => None,
        })
        .collect();
    assert_eq!(moved.len(), 1);
    assert_eq!(
        (moved[0].old_peer, moved[0].conn.peer),
        (addr(CLIENT), rebound)
    );
    // Replies follow the session: the client keeps receiving.
    let mut got = Vec::new();
    let now = p.clock();
    p.server.send(now, conn, b"to the new address").unwrap();
    assert!(p.run_until(2_000, |p| {
        recv_all(&mut p.client, p.client_conn, &mut got);
        !got.is_empty()
    }));
}

#[test]
fn keepalives_hold_an_idle_session_open_and_its_absence_closes_it() {
    let mut p = secure_pair(20, Link::clean());
    assert!(p.run_until(5_000, established));
    // Three idle timeouts with nothing to say: keepalives keep both ends open.
    p.advance(30_000);
    assert_eq!(p.server.connection_count(), 1);
    assert_eq!(p.client.connection_count(), 1);
    // The client vanishes: the server closes for idle_timeout, not before.
    p.link.loss = 1.0;
    p.advance(9_000);
    assert_eq!(p.server.connection_count(), 1);
    p.advance(2_000);
    assert_eq!(p.server.connection_count(), 0);
    assert!(p.server_events.iter().any(|e| matches!(
        e,
        EndpointEvent::Closed {
            reason: CloseReason::IdleTimeout,
            ..
        }
    )));
}

#[test]
fn a_disconnect_closes_the_peer_at_once_as_peer_closed() {
    let mut p = secure_pair(21, Link::clean());
    assert!(p.run_until(5_000, established));
    echo_round(&mut p, 5, 21);
    let now = p.clock();
    p.client.close(now, p.client_conn);
    assert!(p.run_until(2_000, |p| p.server.connection_count() == 0));
    let closed = p
        .server_security
        .iter()
        .find_map(|e| match e {
            SecurityEvent::ConnectionClosed(c) => Some(*c),
            _ => None,
        })
        .unwrap();
    assert_eq!(closed.reason, CloseReason::PeerClosed);
    assert_eq!(closed.initiator, Initiator::Remote);
    // The other two DISCONNECT copies are recognised as the closed session's stragglers.
    p.advance(100);
    assert_eq!(p.server.stats().late_after_close, 2);
    assert_eq!(p.server.stats().dropped_total(), 0);
    assert!(closed.summary.duration_ms < 2_000);
    assert_eq!(
        timeline(&p.client_security).last().unwrap(),
        "closed:local_closed"
    );
    // The server's end ran its states in order.
    assert!(timeline(&p.server_security).ends_with(&[
        "established->closed".to_string(),
        "closed:peer_closed".to_string()
    ]));
    let _ = ConnectionState::Closed;
}

#[test]
fn raw_kcp_and_raw_mode_calls_are_refused_by_a_secure_endpoint() {
    let mut p = secure_pair(22, Link::clean());
    let now = p.clock();
    assert!(p
        .client
        .connect(now, addr(SERVER), addr(CLIENT), 5, None)
        .is_err());
    let kcp = kcp_segment(5, CMD_PUSH, 0, 256, now, 0, 0, b"hi");
    p.inject_to_server(addr(ATTACKER), &kcp);
    assert_eq!(p.server.connection_count(), 0);
    assert_eq!(p.server.stats().dropped_total(), 1);
}

#[test]
fn the_per_prefix_limit_covers_an_ipv6_slash_64() {
    let mut p = secure_pair_with(23, Link::clean(), |server, _| {
        server.limits.max_per_prefix = 2;
    });
    assert!(p.run_until(5_000, established));
    assert_eq!(second_client(&mut p, "[2001:db8:1:2::a]:7"), None);
    assert_eq!(second_client(&mut p, "[2001:db8:1:2::b]:7"), None);
    assert_eq!(
        second_client(&mut p, "[2001:db8:1:2:ffff::1]:9"),
        Some(FailReason::Capacity),
        "a third address in the same /64"
    );
    assert_eq!(
        second_client(&mut p, "[2001:db8:1:3::a]:7"),
        None,
        "the next /64"
    );
    assert_eq!(
        drops(&p.server_security, DropTrigger::OverLimit),
        ["max_connections_per_prefix"]
    );
    assert_eq!(p.server.stats().failed_by(FailReason::Capacity), 1);
}

#[test]
fn a_secure_session_whose_peer_stops_answering_closes_as_dead_link() {
    let mut p = secure_pair_with(24, Link::clean(), |server, _| server.session.dead_link = 4);
    assert!(p.run_until(5_000, established));
    echo_round(&mut p, 5, 24);
    let conn = p.server_conn.unwrap();
    p.link.loss = 1.0;
    let now = p.clock();
    p.server.send(now, conn, &[7; 500]).unwrap();
    assert!(p.run_until(60_000, |p| p.server.connection_count() == 0));
    let closed = p
        .server_security
        .iter()
        .find_map(|e| match e {
            SecurityEvent::ConnectionClosed(c) => Some(*c),
            _ => None,
        })
        .unwrap();
    assert_eq!(closed.reason, CloseReason::DeadLink);
    assert!(
        closed.summary.engine.retrans_segs >= 3,
        "{:?}",
        closed.summary.engine
    );
    assert!(
        closed.summary.duration_ms < 10_000,
        "before the idle timeout"
    );
}

#[test]
fn a_client_whose_accepts_are_lost_keeps_its_session_while_it_retries() {
    let (mut server_config, client_config) = secure_configs(25, session());
    server_config.session.idle_timeout_ms = 1_000;
    let mut server = Endpoint::new(server_config, 0).unwrap();
    let mut client = Endpoint::new(client_config, 0).unwrap();
    let conn = client
        .connect_secure(0, addr(SERVER), addr(CLIENT), b"", None)
        .unwrap();
    let mut accepts_lost = 0;
    let mut late_keepalives = 0;
    let mut now = 0;
    while now < 3_000 {
        client.flush(now);
        let out: Vec<Vec<u8>> = client.transmits().iter().map(|t| t.data.to_vec()).collect();
        client.clear_transmits();
        for d in out {
            server.handle_datagram(now, addr(CLIENT), addr(SERVER), &d);
        }
        server.handle_timeout(now);
        server.flush(now);
        let replies: Vec<Vec<u8>> = server.transmits().iter().map(|t| t.data.to_vec()).collect();
        server.clear_transmits();
        for d in replies {
            if d[0] == wire::TYPE_KEEPALIVE && now >= 1_000 {
                late_keepalives += 1;
            }
            // Every ACCEPT before 1.6 s is lost: the client's retries span the idle timeout.
            if d[0] == wire::TYPE_ACCEPT && now < 1_600 {
                accepts_lost += 1;
                continue;
            }
            client.handle_datagram(now, addr(SERVER), addr(CLIENT), &d);
        }
        // Until the server has announced it: the client's confirmation reached it.
        if client.connection_info(conn).unwrap().state == ConnectionState::Established
            && server.connection_count() == 1
        {
            break;
        }
        now = client.poll_timeout().unwrap_or(now + 50).max(now + 1);
        client.handle_timeout(now);
    }
    assert!(accepts_lost >= 3, "{accepts_lost}");
    // The session stayed on the timer wheel: answering a retransmitted HELLO when its keepalive
    // was already overdue once scheduled it 49 days ahead, and it went silent.
    assert!(late_keepalives >= 1, "no keepalive after 1 s");
    assert!(now >= 1_600, "{now}");
    assert_eq!(
        server.stats().passive_opens,
        1,
        "one session, kept alive by the retries"
    );
    assert_eq!(server.connection_count(), 1);
    let server_conv = server
        .connection_info(ConnectionHandle::from_bits(0))
        .unwrap()
        .conv;
    assert_eq!(client.connection_info(conn).unwrap().conv, server_conv);
}

#[test]
fn a_peer_assembling_a_message_past_our_limit_is_closed_as_a_protocol_violation() {
    let (mut server, mut client) = secure_configs(27, session());
    server.session.max_message_size = 64 * 1024;
    client.session.max_message_size = 100_000;
    let mut p = Pair::with_configs(server, client, Link::clean(), 1_000);
    assert!(p.run_until(5_000, established));
    echo_round(&mut p, 3, 27);
    let now = p.clock();
    // The handshake agreed the server's 64 KiB: an honest client refuses the message ...
    assert!(p
        .client
        .send(now, p.client_conn, &vec![7u8; 70_000])
        .is_err());
    // ... so this one plays a peer that ignores the agreement.
    p.client.set_send_ceiling_for_tests(p.client_conn, 100_000);
    p.client
        .send(now, p.client_conn, &vec![7u8; 70_000])
        .unwrap();
    assert!(p.run_until(5_000, |p| p.server.connection_count() == 0));
    let mut got = Vec::new();
    p.server_recv_all(&mut got);
    assert!(
        got.is_empty(),
        "the oversized message never reaches the application"
    );
    let closed = p
        .server_security
        .iter()
        .find_map(|e| match e {
            SecurityEvent::ConnectionClosed(c) => Some(*c),
            _ => None,
        })
        .unwrap();
    assert_eq!(closed.reason, CloseReason::ProtocolViolation);
    assert_eq!(closed.initiator, Initiator::Remote);
}

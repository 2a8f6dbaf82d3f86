//! A peer whose `mtu` is larger than ours sends datagrams the runtime's receive buffer cuts
//! short. Raw KCP cannot agree an MTU, so the loss must at least be visible where it happens:
//! the `datagram_truncated` drop names the connection the datagram's conv belongs to.

mod common;

use common::{addr, secure_configs, Link, Pair, CLIENT, SERVER};
use kcpwatch_proto::{Preset, SecurityEvent, SessionConfig};

fn truncated_drop(p: &Pair) -> Option<(Option<u32>, bool)> {
    p.client_security.iter().find_map(|e| match e {
        SecurityEvent::PacketDropped(d) if d.rule == "datagram_truncated" => {
            Some((d.conv, d.uid.is_some()))
        }
        _ => None,
    })
}

fn check(mut p: Pair) {
    p.record = true;
    p.establish();
    let conn = p.server_conn.unwrap();
    let now = p.clock();
    p.server.send(now, conn, &[9; 100]).unwrap();
    p.advance(50);
    let datagram = p.server_datagrams.last().unwrap().clone();
    let conv = p.client.connection_info(p.client_conn).unwrap().conv;
    let now = p.clock();
    // What the runtime passes for a 5053-byte datagram read into a 1200-byte buffer.
    p.client
        .handle_truncated(now, addr(SERVER), addr(CLIENT), &datagram, 5053);
    p.drain();
    assert_eq!(truncated_drop(&p), Some((Some(conv), true)));
    // One from an address and conv we have no session with names none.
    let mut p2 = p;
    p2.client_security.clear();
    let now = p2.clock();
    p2.client
        .handle_truncated(now, addr("10.9.9.9:9"), addr(CLIENT), &datagram, 5053);
    p2.drain();
    let expected = if p2.client.config().mode == kcpwatch_proto::Mode::Secure {
        // Secure sessions are found by conv whatever the address (migration).
        Some((Some(conv), true))
    } else {
        Some((None, false))
    };
    assert_eq!(truncated_drop(&p2), expected);
}

#[test]
fn a_truncated_datagram_names_its_raw_connection() {
    check(Pair::new(80, Preset::Game.config(), Link::clean()));
}

#[test]
fn a_truncated_datagram_names_its_secure_connection() {
    let (server, client) = secure_configs(
        81,
        SessionConfig {
            ..Preset::Game.config()
        },
    );
    check(Pair::with_configs(server, client, Link::clean(), 1_000));
}

/// Secure mode agrees the MTU in the handshake: whichever side has the larger `mtu`, no
/// datagram either way is larger than the smaller one, so the peer's receive buffer never cuts
/// one short, and a message several datagrams long arrives both ways.
fn agreed(server_mtu: usize, client_mtu: usize, seed: u64) {
    let (mut server, mut client) = secure_configs(seed, Preset::Game.config());
    server.session.mtu = server_mtu;
    client.session.mtu = client_mtu;
    let mut p = Pair::with_configs(server, client, Link::clean(), 1_000);
    p.record = true;
    p.establish();
    let conn = p.server_conn.unwrap();
    let message: Vec<u8> = (0..5000u32).map(|i| (i * 7) as u8).collect();
    let now = p.clock();
    p.server.send(now, conn, &message).unwrap();
    p.client.send(now, p.client_conn, &message).unwrap();
    let (mut at_client, mut at_server) = (Vec::new(), Vec::new());
    let both = p.run_until(5_000, |p| {
        p.client_recv_all(&mut at_client);
        p.server_recv_all(&mut at_server);
        !at_client.is_empty() && !at_server.is_empty()
    });
    assert!(
        both,
        "server mtu {server_mtu}, client mtu {client_mtu}: {} message(s) at the client, {} at \
         the server after 5 s",
        at_client.len(),
        at_server.len()
    );
    assert_eq!(at_client, vec![message.clone()]);
    assert_eq!(at_server, vec![message]);
    let smaller = server_mtu.min(client_mtu);
    let largest = |d: &[Vec<u8>]| d.iter().map(Vec::len).max().unwrap_or(0);
    assert!(
        largest(&p.server_datagrams) <= smaller,
        "server sent {} bytes to a peer accepting {smaller}",
        largest(&p.server_datagrams)
    );
    assert!(
        largest(&p.client_datagrams) <= smaller,
        "client sent {} bytes to a peer accepting {smaller}",
        largest(&p.client_datagrams)
    );
    // Both engines use the whole agreed MTU (not a smaller one of their own).
    assert_eq!(largest(&p.server_datagrams), smaller);
    assert_eq!(largest(&p.client_datagrams), smaller);
    assert!(truncated_drop(&p).is_none());
}

#[test]
fn secure_mode_agrees_the_smaller_mtu_when_the_server_has_the_larger() {
    agreed(65_507, 1200, 82);
    agreed(9000, 1200, 83);
}

#[test]
fn secure_mode_agrees_the_smaller_mtu_when_the_client_has_the_larger() {
    agreed(1200, 9000, 84);
}

/// Messages a client queued while its handshake ran were split for its own (larger) MTU: when
/// the server agrees a smaller one they are split again, and still no datagram is larger.
#[test]
fn messages_queued_during_the_handshake_are_split_again_for_a_smaller_agreed_mtu() {
    let (mut server, mut client) = secure_configs(85, Preset::Game.config());
    server.session.mtu = 600;
    client.session.mtu = 9000;
    let mut p = Pair::with_configs(server, client, Link::clean(), 1_000);
    p.record = true;
    let sent: Vec<Vec<u8>> = (0..4u8).map(|i| vec![i; 7000 + usize::from(i)]).collect();
    for m in &sent {
        let now = p.clock();
        p.client.send(now, p.client_conn, m).unwrap();
    }
    let mut got = Vec::new();
    assert!(p.run_until(5_000, |p| {
        p.server_recv_all(&mut got);
        got.len() == sent.len()
    }));
    assert_eq!(got, sent);
    let largest = p.client_datagrams.iter().map(Vec::len).max().unwrap();
    assert_eq!(largest, 600);
}

/// A HELLO stating an MTU no secure session fits in is refused with a REJECT `malformed`, and
/// the attempt is recorded with its rule; the client reports `malformed`.
#[test]
fn a_hello_stating_an_mtu_below_the_secure_minimum_is_rejected_as_malformed() {
    use kcpwatch_proto::events::FailReason;
    use kcpwatch_proto::secure::{wire, ClientNoise};
    use kcpwatch_proto::EndpointEvent;
    let (server, client) = secure_configs(86, Preset::Game.config());
    let mut p = Pair::with_configs(server, client, Link::clean(), 1_000);
    let key = *common::test_server_key().public();
    let server_reply = |p: &mut Pair| {
        let replies: Vec<Vec<u8>> = p
            .server
            .transmits()
            .iter()
            .map(|t| t.data.to_vec())
            .collect();
        p.server.clear_transmits();
        replies
    };
    let from = addr("10.1.1.1:4000");
    let mut hello = Vec::new();
    ClientNoise::start(
        &key,
        &[5; 16],
        wire::KcpParams {
            mtu: wire::MIN_MTU - 1,
            ..Default::default()
        },
        b"",
        &mut hello,
    )
    .unwrap();
    p.inject_to_server(from, &hello);
    let replies = server_reply(&mut p);
    let (_, cookie) = wire::parse_cookie(&replies[0]).unwrap();
    wire::set_hello_cookie(&mut hello, &cookie);
    p.inject_to_server(from, &hello);
    let replies = server_reply(&mut p);
    let reject = wire::parse_reject(&replies[0]).unwrap();
    assert_eq!(
        wire::RejectReason::from_code(reject.reason),
        Some(wire::RejectReason::Malformed)
    );
    let failed = p.server_security.iter().find_map(|e| match e {
        SecurityEvent::ConnectionFailed(f) => Some((f.reason, f.rule.as_str())),
        _ => None,
    });
    assert_eq!(failed, Some((FailReason::Malformed, "hello_mtu")));
    assert_eq!(p.server.stats().failed_by(FailReason::Malformed), 1);
    // The smallest usable MTU is accepted.
    let mut hello = Vec::new();
    ClientNoise::start(
        &key,
        &[6; 16],
        wire::KcpParams {
            mtu: wire::MIN_MTU,
            ..Default::default()
        },
        b"",
        &mut hello,
    )
    .unwrap();
    p.inject_to_server(from, &hello);
    let (_, cookie) = wire::parse_cookie(&server_reply(&mut p)[0]).unwrap();
    wire::set_hello_cookie(&mut hello, &cookie);
    p.inject_to_server(from, &hello);
    assert_eq!(server_reply(&mut p)[0].len(), wire::ACCEPT_LEN);
    // A client reads the REJECT as `malformed`.
    p.record = true;
    p.advance(1);
    let nonce = wire::parse_hello(&p.client_datagrams[0]).unwrap().nonce;
    let mut reject = [0; wire::REJECT_LEN];
    let len = wire::write_reject(&mut reject, &nonce, wire::RejectReason::Malformed, 0);
    p.inject_to_client(&reject[..len]);
    let reason = p.client_events.iter().find_map(|e| match e {
        EndpointEvent::ConnectFailed { reason, .. } => Some(*reason),
        _ => None,
    });
    assert_eq!(reason, Some(FailReason::Malformed));
}

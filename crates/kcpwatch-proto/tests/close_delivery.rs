//! A session that ends while its application is behind hands over the complete messages its
//! engine still holds: KCP acknowledged them to the peer, so dropping them at the close would
//! lose messages the sender counts as delivered.

mod common;

use common::{secure_configs, Link, Pair};
use kcpwatch_proto::{CloseReason, EndpointEvent, Preset, SessionConfig};

fn config() -> SessionConfig {
    SessionConfig {
        idle_timeout_ms: 60_000,
        ..Preset::Fast3.config()
    }
}

fn tagged(i: u32, size: usize) -> Vec<u8> {
    let mut m = vec![i as u8; size];
    m[..4].copy_from_slice(&i.to_le_bytes());
    m
}

/// The server's close of its connection: reason, unread messages, messages counted in.
fn server_close(pair: &Pair) -> Option<(CloseReason, Vec<Vec<u8>>, u64)> {
    pair.server_events.iter().find_map(|e| match e {
        EndpointEvent::Closed {
            reason,
            unread,
            summary,
            ..
        } => Some((
            *reason,
            unread.iter().map(|m| m.to_vec()).collect(),
            summary.messages_in,
        )),
        _ => None,
    })
}

/// Sends `count` messages from the client and runs until the server has acknowledged them
/// all, without the server application reading any.
fn acknowledged_unread(pair: &mut Pair, count: u32, size: usize) -> Vec<Vec<u8>> {
    pair.establish();
    let sent: Vec<Vec<u8>> = (0..count).map(|i| tagged(i, size)).collect();
    for m in &sent {
        let now = pair.clock();
        pair.client.send(now, pair.client_conn, m).unwrap();
    }
    let conn = pair.client_conn;
    assert!(pair.run_until(10_000, |p| p.client.waiting_bytes(conn) == Some(0)));
    sent
}

#[test]
fn peer_disconnect_hands_over_acknowledged_unread_messages() {
    let (server, client) = secure_configs(31, config());
    let mut pair = Pair::with_configs(server, client, Link::clean(), 1_000);
    // Several fragments each, so whole multi-segment messages come out of the engine.
    let sent = acknowledged_unread(&mut pair, 20, 3_000);
    let now = pair.clock();
    pair.client.close(now, pair.client_conn);
    assert!(pair.run_until(5_000, |p| server_close(p).is_some()));
    let (reason, unread, messages_in) = server_close(&pair).unwrap();
    assert_eq!(reason, CloseReason::PeerClosed);
    assert_eq!(unread, sent);
    // "hello" from the handshake helper, then the 20 handed over at the close.
    assert_eq!(messages_in, 21);
}

#[test]
fn shutdown_hands_over_acknowledged_unread_messages() {
    let mut pair = Pair::new(32, config(), Link::clean());
    let sent = acknowledged_unread(&mut pair, 10, 500);
    let now = pair.clock();
    pair.server.shutdown(now);
    pair.drain();
    let (reason, unread, messages_in) = server_close(&pair).unwrap();
    assert_eq!(reason, CloseReason::Shutdown);
    assert_eq!(unread, sent);
    assert_eq!(messages_in, 11);
}

#[test]
fn a_session_closed_with_nothing_unread_hands_over_nothing() {
    let mut pair = Pair::new(33, config(), Link::clean());
    pair.establish();
    let now = pair.clock();
    pair.server.shutdown(now);
    pair.drain();
    let (_, unread, messages_in) = server_close(&pair).unwrap();
    assert!(unread.is_empty());
    assert_eq!(messages_in, 1);
}

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

//! Raw mode with kcp-go's FEC between two endpoints over the simulated network: lost datagrams
//! are rebuilt from parity, rebuilt datagrams pass the guard before the engine sees them, and
//! the option is refused where it cannot work.

mod common;

use common::{addr, endpoint_configs, message, Link, Pair, CLIENT};
use kcpwatch_proto::config::ConfigError;
use kcpwatch_proto::fec::{self, FecConfig, Packet};
use kcpwatch_proto::{Endpoint, EndpointConfig, Mode, SecurityEvent, SessionConfig};
use rand::rngs::StdRng;
use rand::SeedableRng;

const FEC: FecConfig = FecConfig {
    data_shards: 10,
    parity_shards: 3,
};

fn session() -> SessionConfig {
    kcpwatch_proto::Preset::Game.config()
}

fn fec_pair(seed: u64, link: Link) -> Pair {
    let (mut server, mut client) = endpoint_configs(seed, session());
    server.fec = Some(FEC);
    client.fec = Some(FEC);
    Pair::with_configs(server, client, link, 1_000)
}

#[test]
fn an_echo_over_10_percent_loss_is_whole_and_uses_parity() {
    let mut pair = fec_pair(21, Link::lossy(0.1));
    pair.record = true;
    let mut rng = StdRng::seed_from_u64(21);
    let sent: Vec<Vec<u8>> = (0..1000).map(|i| message(&mut rng, i, 8192)).collect();
    let echoed = pair.echo(&sent);
    assert_eq!(echoed, sent);
    let (server, client) = (pair.server.stats().fec, pair.client.stats().fec);
    assert!(server.recovered > 0, "server {server:?}");
    assert!(client.recovered > 0, "client {client:?}");
    assert!(server.parity_shards > 0 && client.parity_shards > 0);
    assert_eq!(server.errors + client.errors, 0);
    // Every datagram on the wire is a shard, none longer than the MTU.
    for d in pair.client_datagrams.iter().chain(&pair.server_datagrams) {
        assert!(d.len() <= session().mtu, "{} bytes", d.len());
        assert!(
            matches!(fec::parse(d), Packet::Data { .. } | Packet::Parity { .. }),
            "not a shard: {:02x?}",
            &d[..8]
        );
    }
}

/// The first complete group (10 data shards, then their 3 parity shards) the client sent, with
/// its shards' seqids moved to group `group` so the server takes it as new.
fn a_group_moved_to(pair: &Pair, group: u32) -> Vec<Vec<u8>> {
    let shards: Vec<&Vec<u8>> = pair.client_datagrams.iter().collect();
    for window in shards.windows(13) {
        let seqid = |d: &[u8]| u32::from_le_bytes(d[..4].try_into().unwrap());
        let first = seqid(window[0]);
        let whole = first % 13 == 0
            && window.iter().enumerate().all(|(i, d)| {
                let want = if i < 10 { 0xf1 } else { 0xf2 };
                seqid(d) == first + i as u32 && d[4] == want && d[5] == 0
            });
        if whole {
            return window
                .iter()
                .enumerate()
                .map(|(i, d)| {
                    let mut d = d.to_vec();
                    d[..4].copy_from_slice(&(group * 13 + i as u32).to_le_bytes());
                    d
                })
                .collect();
        }
    }
    panic!("no complete group on the wire");
}

fn established_pair_with_a_group() -> Pair {
    let mut pair = fec_pair(22, Link::clean());
    pair.record = true;
    pair.establish();
    for i in 0..40u32 {
        let now = pair.clock();
        pair.client
            .send(now, pair.client_conn, &i.to_le_bytes())
            .unwrap();
        pair.advance(5);
    }
    pair.advance(200);
    pair
}

#[test]
fn a_lost_data_shard_is_rebuilt_from_parity_and_reaches_the_engine() {
    let mut pair = established_pair_with_a_group();
    let group = a_group_moved_to(&pair, 1_000);
    let before = pair.server.stats().fec;
    let accepted = pair.server.stats().datagrams_accepted;
    // Data shard 4 is lost; the others and the parity arrive.
    for (i, d) in group.iter().enumerate() {
        if i != 4 {
            pair.inject_to_server(addr(CLIENT), d);
        }
    }
    let after = pair.server.stats().fec;
    assert_eq!(after.recovered, before.recovered + 1);
    assert_eq!(after.errors, before.errors);
    assert_eq!(after.parity_shards, before.parity_shards + 3);
    assert_eq!(pair.server.stats().datagrams_accepted, accepted + 9);
}

#[test]
fn a_forged_parity_shard_is_counted_and_never_applied() {
    let mut pair = established_pair_with_a_group();
    let mut group = a_group_moved_to(&pair, 1_000);
    for parity in &mut group[10..] {
        // Garble the rebuilt datagram's command and fragment bytes (its conv stays the
        // session's, so the session's guard is what refuses it).
        for b in &mut parity[fec::OVERHEAD + 4..fec::OVERHEAD + 6] {
            *b ^= 0xa5;
        }
    }
    let before = pair.server.stats().fec;
    let dropped = pair.server.stats().dropped_total();
    pair.server_security.clear();
    for (i, d) in group.iter().enumerate() {
        if i != 4 {
            pair.inject_to_server(addr(CLIENT), d);
        }
    }
    let after = pair.server.stats().fec;
    assert_eq!(after.recovered, before.recovered, "{after:?}");
    assert_eq!(after.errors, before.errors + 1, "{after:?}");
    // The guard refused the rebuilt datagram: a drop like any other, on the session.
    assert_eq!(pair.server.stats().dropped_total(), dropped + 1);
    assert!(pair
        .server_security
        .iter()
        .any(|e| matches!(e, SecurityEvent::PacketDropped(d) if d.uid.is_some())));
    // The session carries on.
    let now = pair.clock();
    pair.client
        .send(now, pair.client_conn, b"still here")
        .unwrap();
    let mut got = Vec::new();
    assert!(pair.run_until(2_000, |p| {
        p.server_recv_all(&mut got);
        got.iter().any(|m| m == b"still here")
    }));
}

#[test]
fn shards_that_cannot_be_right_are_dropped_as_bad_length_or_unknown() {
    let mut pair = established_pair_with_a_group();
    let before = pair.server.stats().dropped_total();
    // A data shard whose size field disagrees with its length.
    let mut bad = vec![0u8; 40];
    bad[4] = 0xf1;
    bad[6] = 7;
    pair.inject_to_server(addr(CLIENT), &bad);
    // kcp-go's out-of-band datagram.
    bad[4] = 0xf3;
    pair.inject_to_server(addr(CLIENT), &bad);
    // Parity from an address with no session.
    bad[4] = 0xf2;
    pair.inject_to_server(addr("10.9.9.9:1"), &bad);
    assert_eq!(pair.server.stats().dropped_total(), before + 3);
    let rules: Vec<&str> = pair
        .server_security
        .iter()
        .filter_map(|e| match e {
            SecurityEvent::PacketDropped(d) => Some(d.rule.as_str()),
            _ => None,
        })
        .collect();
    for rule in [
        "fec_bad_size",
        "fec_oob_unsupported",
        "fec_parity_no_session",
    ] {
        assert!(rules.contains(&rule), "{rule} not in {rules:?}");
    }
}

#[test]
fn fec_is_refused_where_it_cannot_work() {
    let secure = EndpointConfig {
        mode: Mode::Secure,
        fec: Some(FEC),
        ..EndpointConfig::default()
    };
    // Secure mode has FEC of its own (tests/secure_fec.rs), with at most 64 shards a group.
    assert!(Endpoint::new(secure, 0).is_ok());
    let secure = EndpointConfig {
        mode: Mode::Secure,
        fec: Some(FecConfig {
            data_shards: 50,
            parity_shards: 15,
        }),
        ..EndpointConfig::default()
    };
    assert!(matches!(
        Endpoint::new(secure, 0),
        Err(ConfigError::SecureFec(_))
    ));
    for (d, p) in [(0, 3), (3, 0), (200, 57)] {
        let config = EndpointConfig {
            fec: Some(FecConfig {
                data_shards: d,
                parity_shards: p,
            }),
            ..EndpointConfig::default()
        };
        assert!(
            matches!(Endpoint::new(config, 0), Err(ConfigError::Fec(_))),
            "{d}+{p}"
        );
    }
    let config = EndpointConfig {
        session: SessionConfig {
            mtu: 9000,
            ..session()
        },
        fec: Some(FEC),
        ..EndpointConfig::default()
    };
    assert_eq!(
        Endpoint::new(config, 0).err(),
        Some(ConfigError::FecMtu(9000))
    );
}

//! Forward error correction in secure mode (issue #20, `docs/protocol.md` "FEC_PARITY",
//! `docs/fec.md`), on the simulated network: lost datagrams are rebuilt from authenticated
//! parity and opened through the normal AEAD and replay path, a forged or wrong parity is
//! counted and never applied, the receiver's memory is bounded, and FEC works one way when
//! only one side sends it.

mod common;

use std::sync::Arc;

use common::{message, secure_configs, Link, Pair, CLIENT};
use kcpwatch_proto::fec::{Codec, FecConfig, FecStats};
use kcpwatch_proto::secure::datagram::DatagramHeader;
use kcpwatch_proto::secure::fec::{self, Decoder, Encoder, ParityHeader};
use kcpwatch_proto::secure::wire::{self, TYPE_DATAGRAM, TYPE_FEC_PARITY};
use kcpwatch_proto::{DropTrigger, Endpoint, Preset, SecurityEvent, SessionConfig};
use rand::rngs::StdRng;
use rand::SeedableRng;

const FEC: FecConfig = FecConfig {
    data_shards: 10,
    parity_shards: 3,
};

fn session() -> SessionConfig {
    SessionConfig {
        idle_timeout_ms: 30_000,
        ..Preset::Game.config()
    }
}

/// A secure pair; `server_fec` / `client_fec`: whether that side sends FEC 10/3.
fn pair(seed: u64, link: Link, server_fec: bool, client_fec: bool) -> Pair {
    let (mut server, mut client) = secure_configs(seed, session());
    server.fec = server_fec.then_some(FEC);
    client.fec = client_fec.then_some(FEC);
    let mut p = Pair::with_configs(server, client, link, 1_000);
    p.record = true;
    p.establish();
    p
}

/// Echoes 1,000 messages of a game-like size mix through the pair; returns what came back.
fn echo(p: &mut Pair, seed: u64) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let sent: Vec<Vec<u8>> = (0..1000).map(|i| message(&mut rng, i, 8192)).collect();
    let echoed = p.echo(&sent);
    (sent, echoed)
}

fn parity_count(datagrams: &[Vec<u8>]) -> usize {
    datagrams.iter().filter(|d| d[0] == TYPE_FEC_PARITY).count()
}

#[test]
fn an_echo_over_10_percent_loss_is_whole_and_rebuilt_from_parity() {
    let mut p = pair(31, Link::lossy(0.10), true, true);
    let (sent, echoed) = echo(&mut p, 31);
    assert_eq!(
        echoed, sent,
        "every message delivered intact, once, in order"
    );
    let (server, client) = (p.server.stats().fec, p.client.stats().fec);
    eprintln!("server {server:?}\nclient {client:?}");
    assert!(server.recovered > 0, "server {server:?}");
    assert!(client.recovered > 0, "client {client:?}");
    assert!(server.parity_shards > 0 && client.parity_shards > 0);
    assert!(server.enabled && client.enabled);
    assert_eq!(server.errors + client.errors, 0);
    // A rebuilt datagram is an ordinary authentic one: nothing failed to open or was refused.
    for endpoint in [&p.server, &p.client] {
        assert_eq!(endpoint.stats().dropped_by(DropTrigger::DecryptFailed), 0);
    }
    // Parity goes both ways, and no datagram (data or parity) exceeds the MTU.
    assert!(parity_count(&p.client_datagrams) > 0);
    assert!(parity_count(&p.server_datagrams) > 0);
    for d in p.client_datagrams.iter().chain(&p.server_datagrams) {
        assert!(d.len() <= session().mtu, "{} bytes", d.len());
    }
}

#[test]
fn parity_from_one_side_only_protects_that_direction() {
    // Only the client sends FEC: the server reads its parity without any option.
    let mut p = pair(32, Link::lossy(0.10), false, true);
    let (sent, echoed) = echo(&mut p, 32);
    assert_eq!(echoed, sent);
    let (server, client) = (p.server.stats().fec, p.client.stats().fec);
    assert!(server.recovered > 0, "server {server:?}");
    assert!(server.parity_shards > 0);
    assert_eq!(
        parity_count(&p.server_datagrams),
        0,
        "the server sends none"
    );
    assert_eq!((client.parity_shards, client.recovered), (0, 0));
    assert_eq!(server.errors + client.errors, 0);
}

/// Sealed client DATAGRAMs with packet numbers `first..first + 10` (channel 7, payload = its
/// index), as the client's endpoint would seal them.
fn group(p: &Pair, first: u64) -> Vec<Vec<u8>> {
    (0..10u8)
        .map(|i| {
            let mut body = DatagramHeader {
                channel: 7,
                sequenced: false,
            }
            .to_bytes()
            .to_vec();
            body.extend_from_slice(&[i; 40]);
            let mut out = Vec::new();
            p.client
                .seal_for_tests(
                    p.client_conn,
                    TYPE_DATAGRAM,
                    first + u64::from(i),
                    &body,
                    &mut out,
                )
                .unwrap();
            out
        })
        .collect()
}

/// The parity plaintexts a sender computes for `datagrams` (consecutive packet numbers).
fn parity_bodies(datagrams: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let codec = Arc::new(Codec::new(FEC).unwrap());
    let mut encoder = Encoder::new(codec, session().mtu);
    let mut ready = 0;
    for d in datagrams {
        let (header, _) = wire::parse_session(d).unwrap();
        ready = encoder.add(0, header.packet_number, d);
    }
    assert_eq!(ready, 3);
    (0..3).map(|k| encoder.parity_body(k).to_vec()).collect()
}

fn seal_parity(p: &Pair, pn: u64, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    p.client
        .seal_for_tests(p.client_conn, TYPE_FEC_PARITY, pn, body, &mut out)
        .unwrap();
    out
}

fn datagrams_at_server(p: &mut Pair) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    p.server.take_datagrams(|_, channel, payload| {
        if channel == 7 {
            out.push(payload.to_vec());
        }
        true
    });
    out
}

fn drop_rules(p: &Pair) -> Vec<&'static str> {
    p.server_security
        .iter()
        .filter_map(|e| match e {
            SecurityEvent::PacketDropped(d) => Some(d.rule.as_str()),
            _ => None,
        })
        .collect()
}

#[test]
fn forged_and_wrong_parity_is_counted_and_never_applied() {
    let mut p = pair(33, Link::clean(), false, false);
    let client_addr = common::addr(CLIENT);
    let base = p.server.stats().fec;

    // 1. A parity datagram altered on the path (one bit) does not open: dropped before FEC
    //    sees it, so the server does not even start keeping datagrams.
    let genuine = group(&p, 10_000);
    let bodies = parity_bodies(&genuine);
    let mut forged = seal_parity(&p, 10_010, &bodies[0]);
    forged[30] ^= 0x01;
    p.inject_to_server(client_addr, &forged);
    assert_eq!(p.server.stats().fec.parity_shards, base.parity_shards);
    assert!(drop_rules(&p).contains(&"session_aead"));

    // 2. An authentic parity whose bytes do not fit its group (the peer's bug or malice): the
    //    datagram rebuilt from it fails AEAD, is counted as an FEC error and never delivered.
    let mut wrong = bodies[0].clone();
    // Past the rebuilt shard's length and type: only its sealed bytes come out wrong.
    for b in &mut wrong[fec::PARITY_HEADER_LEN + 3..] {
        *b ^= 0x5a;
    }
    p.inject_to_server(client_addr, &seal_parity(&p, 10_010, &wrong));
    for (i, d) in genuine.iter().enumerate() {
        if i != 3 {
            p.inject_to_server(client_addr, d);
        }
    }
    let stats = p.server.stats().fec;
    assert_eq!(stats.parity_shards, base.parity_shards + 1);
    assert_eq!(stats.recovered, base.recovered, "{stats:?}");
    assert_eq!(stats.errors, base.errors + 1, "{stats:?}");
    assert!(drop_rules(&p).contains(&"fec_rebuilt_aead"));
    let got = datagrams_at_server(&mut p);
    assert_eq!(got.len(), 9);
    assert!(!got.contains(&vec![3u8; 40]), "the lost one never appears");

    // 3. A parity whose header cannot be right (index past the count) is refused outright.
    let mut bad_index = bodies[1].clone();
    bad_index[10] = 3;
    p.inject_to_server(client_addr, &seal_parity(&p, 10_011, &bad_index));
    assert_eq!(p.server.stats().fec.errors, base.errors + 2);
    assert!(drop_rules(&p).contains(&"fec_parity_malformed"));

    // 4. The genuine parity of the next group rebuilds its lost datagram, which is delivered.
    let next = group(&p, 10_013);
    let bodies = parity_bodies(&next);
    for (i, d) in next.iter().enumerate() {
        if i != 5 {
            p.inject_to_server(client_addr, d);
        }
    }
    p.inject_to_server(client_addr, &seal_parity(&p, 10_024, &bodies[1]));
    let stats = p.server.stats().fec;
    assert_eq!(stats.recovered, base.recovered + 1, "{stats:?}");
    assert_eq!(stats.errors, base.errors + 2);
    let got = datagrams_at_server(&mut p);
    assert_eq!(
        got,
        vec![
            vec![0u8; 40],
            vec![1; 40],
            vec![2; 40],
            vec![3; 40],
            vec![4; 40],
            vec![6; 40],
            vec![7; 40],
            vec![8; 40],
            vec![9; 40],
            vec![5; 40]
        ]
    );
    // The rebuilt datagram took the replay window's place: the real one arriving late is a
    // replay, not a second delivery.
    p.inject_to_server(client_addr, &next[5]);
    assert!(datagrams_at_server(&mut p).is_empty());
}

#[test]
fn receiver_memory_is_made_once_and_bounded() {
    let mtu = session().mtu;
    let codec = Arc::new(Codec::new(FEC).unwrap());
    let mut encoder = Encoder::new(codec.clone(), mtu);
    let mut decoder = Decoder::new(codec, 0x1234, mtu);
    let made = decoder.memory();
    // The ring (3 groups of 13 shards, each at most the MTU) and the buffers of a recovery
    // (one group's shards, its rebuilt datagrams), all made here.
    assert!(made <= (3 * 13 + 13 + 10) * mtu + 4096, "{made} bytes");
    let mut stats = FecStats::default();
    let mut rebuilt = 0;
    let mut after_warmup = 0;
    // Datagrams of every length up to the largest a sender with FEC seals, 10% lost.
    let longest = mtu - fec::OVERHEAD;
    let mut rng = StdRng::seed_from_u64(9);
    let mut pn = 0u64;
    for round in 0..2_000u64 {
        let len = 29 + (round as usize * 37) % (longest - 29 + 1);
        let mut datagram: Vec<u8> = (0..len).map(|i| (i as u64 ^ round) as u8).collect();
        datagram[0] = wire::TYPE_DATA;
        let ready = encoder.add(0, pn, &datagram);
        if !rand::Rng::gen_bool(&mut rng, 0.1) && decoder.data(pn, &datagram, &mut stats) {
            rebuilt += decoder.rebuilt().count();
        }
        pn += 1;
        for k in 0..ready {
            let body = encoder.parity_body(k).to_vec();
            let (header, bytes) = fec::parse_parity(&body).unwrap();
            if !rand::Rng::gen_bool(&mut rng, 0.1)
                && decoder.parity(pn, &header, bytes, &mut stats).unwrap()
            {
                rebuilt += decoder.rebuilt().count();
            }
            pn += 1;
        }
        if round == 200 {
            after_warmup = decoder.memory();
        }
    }
    assert!(rebuilt > 50, "{rebuilt} rebuilt, {stats:?}");
    assert_eq!(
        decoder.memory(),
        after_warmup,
        "no growth after the first recoveries"
    );
    assert!(
        decoder.memory() <= 3 * 13 * mtu + 13 * mtu + 10 * mtu + 4096,
        "{} bytes",
        decoder.memory()
    );
    // The largest group secure mode takes keeps at most 192 slots.
    let big = Arc::new(
        Codec::new(FecConfig {
            data_shards: 48,
            parity_shards: 16,
        })
        .unwrap(),
    );
    assert!(Decoder::new(big, 1, mtu).memory() <= (192 + 64 + 48) * mtu + 8192);
    assert!(fec::validate(&FecConfig {
        data_shards: 50,
        parity_shards: 15
    })
    .is_err());
}

#[test]
fn a_session_keeps_nothing_for_fec_until_the_peer_sends_parity() {
    // The same traffic with and without parity from the peer: only parity makes the server
    // keep datagrams (measured from the outside as the FEC counters staying off).
    let mut p = pair(34, Link::lossy(0.05), false, false);
    let (sent, echoed) = echo(&mut p, 34);
    assert_eq!(echoed, sent);
    let stats = p.server.stats().fec;
    assert_eq!(
        stats,
        FecStats::default(),
        "no FEC state or counters without parity"
    );
    assert_eq!(
        parity_count(&p.client_datagrams) + parity_count(&p.server_datagrams),
        0
    );
}

#[test]
fn a_parity_header_round_trips() {
    let header = ParityHeader {
        first: 0x0102_0304_0506_0708,
        data: 10,
        parity: 3,
        index: 2,
    };
    let mut body = header.to_bytes().to_vec();
    body.extend_from_slice(b"parity");
    assert_eq!(fec::parse_parity(&body), Some((header, &b"parity"[..])));
    assert_eq!(fec::parse_parity(&body[..10]), None);
    assert_eq!(fec::OVERHEAD, 30);
    let _ = Endpoint::new;
}

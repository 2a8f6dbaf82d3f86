//! Raw mode with FEC and several connections on one client endpoint (one UDP socket) to one
//! server endpoint, over a lossy simulated network: parity of one connection's datagrams must
//! never be combined with another's, so every message arrives whole, on its own connection, in
//! order, and parity still rebuilds lost datagrams.

mod common;

use std::collections::HashMap;

use common::{addr, endpoint_configs, recv_all, Link, Pair, CLIENT, SERVER};
use kcpwatch_proto::fec::FecConfig;
use kcpwatch_proto::{CloseReason, ConnectionHandle, EndpointEvent, SecurityEvent};

const FEC: FecConfig = FecConfig {
    data_shards: 10,
    parity_shards: 3,
};
const CONNECTIONS: u32 = 8;
const MESSAGES: u32 = 500;

/// Message `seq` of connection `conn`, all of one length and alike but for the numbers (as a
/// game's state updates are): a datagram rebuilt from another connection's shards then has a
/// plausible header, and only its content can tell.
fn message(conn: u32, seq: u32) -> Vec<u8> {
    format!("conn {conn:02} seq {seq:05} ........................................").into_bytes()
}

fn describe(m: &[u8]) -> String {
    String::from_utf8_lossy(&m[..m.len().min(18)]).into_owned()
}

fn run(seed: u64) {
    let session = kcpwatch_proto::Preset::Game.config();
    let (mut server, mut client) = endpoint_configs(seed, session);
    server.fec = Some(FEC);
    client.fec = Some(FEC);
    let mut pair = Pair::with_configs(server, client, Link::lossy(0.1), 1_000);
    let mut conns = vec![pair.client_conn];
    for k in 1..CONNECTIONS {
        let now = pair.clock();
        conns.push(
            pair.client
                .connect(now, addr(SERVER), addr(CLIENT), 0x1234_5678 + k, None)
                .unwrap(),
        );
    }
    // Which client connection each server connection carries, learnt from its first message.
    let mut server_conns: Vec<ConnectionHandle> = Vec::new();
    let mut seen_events = 0;
    let mut carried: HashMap<ConnectionHandle, (u32, u32)> = HashMap::new();
    let mut echoed: Vec<Vec<Vec<u8>>> = vec![Vec::new(); CONNECTIONS as usize];
    let mut next = 0u32;
    let finished = pair.run_until(600_000, |p| {
        // Every connection sends one message every 10 ms, so their datagrams interleave.
        if next < MESSAGES && p.now >= u64::from(next) * 10 {
            let now = p.clock();
            for (k, &conn) in conns.iter().enumerate() {
                p.client.send(now, conn, &message(k as u32, next)).unwrap();
            }
            next += 1;
        }
        for event in &p.server_events[seen_events..] {
            if let EndpointEvent::Accepted { handle, .. } = event {
                server_conns.push(*handle);
            }
        }
        seen_events = p.server_events.len();
        for &handle in &server_conns {
            let mut got = Vec::new();
            recv_all(&mut p.server, handle, &mut got);
            for m in got {
                let (conn, seq) = *carried.entry(handle).or_insert_with(|| {
                    let conn = (0..CONNECTIONS)
                        .find(|&k| m == message(k, 0))
                        .unwrap_or_else(|| panic!("first message {:?}", describe(&m)));
                    (conn, 0)
                });
                assert!(
                    m == message(conn, seq),
                    "server conn {conn}: message {seq}: got {:?}",
                    describe(&m)
                );
                carried.insert(handle, (conn, seq + 1));
                let now = p.clock();
                p.server.send(now, handle, &m).unwrap();
            }
        }
        for (k, &conn) in conns.iter().enumerate() {
            let mut got = Vec::new();
            recv_all(&mut p.client, conn, &mut got);
            for m in got {
                let seq = echoed[k].len() as u32;
                assert!(
                    m == message(k as u32, seq),
                    "conn {k}: message {seq}: echo is {:?}",
                    describe(&m)
                );
                echoed[k].push(m);
            }
        }
        echoed.iter().all(|e| e.len() == MESSAGES as usize)
    });
    let counts: Vec<usize> = echoed.iter().map(Vec::len).collect();
    assert!(finished, "echoes per connection: {counts:?}");
    assert_eq!(server_conns.len(), CONNECTIONS as usize);
    let (server, client) = (pair.server.stats().fec, pair.client.stats().fec);
    assert!(server.recovered > 0, "server {server:?}");
    assert!(client.recovered > 0, "client {client:?}");
    // An honest network gives no FEC errors: each shard is combined only with shards of the
    // group it was sent in.
    assert_eq!(
        (server.errors, client.errors),
        (0, 0),
        "server {server:?} client {client:?}"
    );
}

#[test]
fn eight_connections_on_one_socket_get_their_own_messages_through_10_percent_loss() {
    for seed in 31..35 {
        run(seed);
    }
}

/// The shards of every connection to one peer form one seqid sequence (as kcp-go's, whose FEC
/// sits below KCP per socket pair), and the peer's FEC state goes with its last connection.
#[test]
fn connections_to_one_peer_share_one_seqid_sequence_that_ends_with_the_last() {
    let session = kcpwatch_proto::Preset::Game.config();
    let (mut server, mut client) = endpoint_configs(40, session);
    server.fec = Some(FEC);
    client.fec = Some(FEC);
    let mut pair = Pair::with_configs(server, client, Link::clean(), 1_000);
    pair.record = true;
    let mut conns = vec![pair.client_conn];
    for k in 1..3 {
        let now = pair.clock();
        conns.push(
            pair.client
                .connect(now, addr(SERVER), addr(CLIENT), 0x1234_5678 + k, None)
                .unwrap(),
        );
    }
    for i in 0..40u32 {
        let now = pair.clock();
        let conn = conns[i as usize % conns.len()];
        pair.client.send(now, conn, &i.to_le_bytes()).unwrap();
        pair.advance(5);
    }
    pair.advance(500);
    let seqids: Vec<u32> = pair
        .client_datagrams
        .iter()
        .map(|d| u32::from_le_bytes(d[..4].try_into().unwrap()))
        .collect();
    assert!(seqids.len() > 40);
    let expected: Vec<u32> = (0..seqids.len() as u32).collect();
    assert_eq!(seqids, expected, "one sequence across the connections");
    // Two connections closed: the third keeps the peer's decoder, so parity is still taken.
    let parity = pair
        .client_datagrams
        .iter()
        .find(|d| d[4] == 0xf2)
        .unwrap()
        .clone();
    let servers: Vec<ConnectionHandle> = pair
        .server_events
        .iter()
        .filter_map(|e| match e {
            EndpointEvent::Accepted { handle, .. } => Some(*handle),
            _ => None,
        })
        .collect();
    assert_eq!(servers.len(), 3);
    for &handle in &servers[..2] {
        pair.server.close_now(handle, CloseReason::LocalClosed);
    }
    pair.drain();
    let before = pair.server.stats().fec.parity_shards;
    pair.inject_to_server(addr(CLIENT), &parity);
    assert_eq!(pair.server.stats().fec.parity_shards, before + 1);
    // With the last one, the peer's FEC state goes: its parity finds no session.
    pair.server.close_now(servers[2], CloseReason::LocalClosed);
    pair.drain();
    pair.server_security.clear();
    pair.inject_to_server(addr(CLIENT), &parity);
    assert_eq!(pair.server.stats().fec.parity_shards, before + 1);
    assert!(pair.server_security.iter().any(
        |e| matches!(e, SecurityEvent::PacketDropped(d) if d.rule == "fec_parity_no_session")
    ));
}

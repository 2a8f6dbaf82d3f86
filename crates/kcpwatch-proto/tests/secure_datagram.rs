//! Unreliable datagrams in secure mode (issue #20, `docs/protocol.md` "DATAGRAM"), on the
//! simulated network: delivery both ways, sequencing through loss, replays and bit flips
//! refused, oversize refused with a clear error, counters.

mod common;

use common::{addr, endpoint_configs, secure_configs, Link, Pair, SERVER};
use kcpwatch_proto::endpoint::DatagramSendError;
use kcpwatch_proto::secure::datagram::DatagramHeader;
use kcpwatch_proto::secure::wire::{self, TYPE_DATA, TYPE_DATAGRAM};
use kcpwatch_proto::{
    CloseReason, ConnectionHandle, DropTrigger, Endpoint, EndpointEvent, Preset, SessionConfig,
};

fn session() -> SessionConfig {
    SessionConfig {
        idle_timeout_ms: 10_000,
        ..Preset::Game.config()
    }
}

fn secure_pair(seed: u64, link: Link) -> Pair {
    let (server, client) = secure_configs(seed, session());
    let mut p = Pair::with_configs(server, client, link, 1_000);
    p.establish();
    p
}

const SEQUENCED: DatagramHeader = DatagramHeader {
    channel: 1,
    sequenced: true,
};

/// (connection, channel, payload) of every datagram the endpoint has for the application.
fn take(endpoint: &mut Endpoint) -> Vec<(ConnectionHandle, u8, Vec<u8>)> {
    let mut out = Vec::new();
    endpoint.take_datagrams(|h, channel, payload| {
        out.push((h, channel, payload.to_vec()));
        true
    });
    out
}

#[test]
fn datagrams_flow_both_ways_outside_the_engine() {
    let mut p = secure_pair(1, Link::clean());
    let server_conn = p.server_conn.unwrap();
    let now = p.clock();
    for channel in 0..3u8 {
        let header = DatagramHeader {
            channel,
            sequenced: false,
        };
        p.client
            .send_datagram(now, p.client_conn, header, &[channel; 10])
            .unwrap();
        p.server
            .send_datagram(now, server_conn, header, &[channel + 100; 5])
            .unwrap();
    }
    // An empty datagram is a datagram too.
    p.client
        .send_datagram(now, p.client_conn, DatagramHeader::default(), b"")
        .unwrap();
    p.advance(100);
    let at_server = take(&mut p.server);
    let at_client = take(&mut p.client);
    assert_eq!(
        at_server,
        vec![
            (server_conn, 0, vec![0; 10]),
            (server_conn, 1, vec![1; 10]),
            (server_conn, 2, vec![2; 10]),
            (server_conn, 0, vec![]),
        ]
    );
    assert_eq!(
        at_client,
        vec![
            (p.client_conn, 0, vec![100; 5]),
            (p.client_conn, 1, vec![101; 5]),
            (p.client_conn, 2, vec![102; 5]),
        ]
    );
    // Never given to the engine: no message appears.
    let mut messages = Vec::new();
    p.server_recv_all(&mut messages);
    assert!(messages.is_empty());
    assert!(!p.server.has_datagrams());
    let stats = p.server.stats().unreliable;
    assert_eq!((stats.received, stats.sent), (4, 3));
    let summary = p.server.connection_summary(server_conn).unwrap();
    assert_eq!(
        (summary.unreliable.received, summary.unreliable.sent),
        (4, 3)
    );
    assert_eq!(summary.messages_in, 1, "only the establishing message");
    // The close summary carries them.
    p.server.close_now(server_conn, CloseReason::LocalClosed);
    p.drain();
    let closed = p.server_events.iter().find_map(|e| match e {
        EndpointEvent::Closed { summary, .. } => Some(summary.unreliable),
        _ => None,
    });
    assert_eq!(closed.map(|u| (u.received, u.sent)), Some((4, 3)));
}

/// 30 Hz sequenced updates through 10% loss (with jitter, reordering and duplication): never
/// delivered out of order or twice, and each one delivered as soon as it arrives, never held
/// back for a lost one (KCP's stream would hold every later update until the retransmission).
#[test]
fn sequenced_datagrams_through_loss_are_in_order_and_never_wait() {
    // 40 ms each way: a reordered datagram (one more latency) can overtake the next update,
    // sent 33 ms later.
    let link = Link {
        latency_ms: 40,
        ..Link::lossy(0.10)
    };
    let worst_one_way = u64::from(link.latency_ms * 2 + link.jitter_ms);
    let mut p = secure_pair(7, link);
    let server_conn = p.server_conn.unwrap();
    let mut sent_at = Vec::new();
    let mut delivered: Vec<(u32, u64)> = Vec::new();
    // Steps the network to `until`, taking sequenced datagrams as they arrive.
    let pump = |p: &mut Pair, until: u64, delivered: &mut Vec<(u32, u64)>| {
        while p.now < until {
            if !p.step_until(until) {
                break;
            }
            for (h, channel, payload) in take(&mut p.server) {
                assert_eq!(h, server_conn);
                if channel == 1 {
                    let n = u32::from_le_bytes(payload.try_into().unwrap());
                    delivered.push((n, p.now));
                }
            }
        }
        p.advance(until.saturating_sub(p.now));
    };
    for i in 0..600u32 {
        let now = p.clock();
        sent_at.push(p.now);
        p.client
            .send_datagram(now, p.client_conn, SEQUENCED, &i.to_le_bytes())
            .unwrap();
        // Unsequenced on another channel at the same time: delivered whatever their order.
        p.client
            .send_datagram(
                now,
                p.client_conn,
                DatagramHeader {
                    channel: 2,
                    sequenced: false,
                },
                &i.to_le_bytes(),
            )
            .unwrap();
        let until = p.now + 33;
        pump(&mut p, until, &mut delivered);
    }
    let until = p.now + 200;
    pump(&mut p, until, &mut delivered);
    assert!(
        delivered.windows(2).all(|w| w[0].0 < w[1].0),
        "out of order or twice"
    );
    let late: Vec<_> = delivered
        .iter()
        .filter(|(n, at)| at - sent_at[*n as usize] > worst_one_way)
        .collect();
    assert!(late.is_empty(), "held back: {late:?}");
    let stats = p.server.stats().unreliable;
    // About 10% lost, a few more older than one already delivered (reordered).
    assert!(
        delivered.len() > 480 && delivered.len() < 600,
        "{} delivered",
        delivered.len()
    );
    assert!(stats.dropped_stale > 0, "{stats:?}");
    assert!(
        p.server.stats().dropped_by(DropTrigger::Replayed) > 0,
        "duplicates refused by the replay window"
    );
    eprintln!(
        "600 sent at 30 Hz through 10% loss: {} delivered in order, {} stale dropped, {} lost",
        delivered.len(),
        stats.dropped_stale,
        p.lost_datagrams
    );
}

/// The session datagrams the client sent of one type.
fn recorded(p: &Pair, kind: u8) -> Vec<Vec<u8>> {
    p.client_datagrams
        .iter()
        .filter(|d| d[0] == kind)
        .cloned()
        .collect()
}

#[test]
fn a_replayed_datagram_is_refused_and_not_delivered_twice() {
    let mut p = secure_pair(3, Link::clean());
    p.record = true;
    let now = p.clock();
    p.client
        .send_datagram(now, p.client_conn, DatagramHeader::default(), b"fire")
        .unwrap();
    p.advance(50);
    assert_eq!(take(&mut p.server).len(), 1);
    let original = recorded(&p, TYPE_DATAGRAM).pop().unwrap();
    let before = p.server.stats().dropped_by(DropTrigger::Replayed);
    for _ in 0..3 {
        p.inject_to_server(addr(common::CLIENT), &original);
    }
    assert!(take(&mut p.server).is_empty());
    assert_eq!(
        p.server.stats().dropped_by(DropTrigger::Replayed),
        before + 3
    );
}

#[test]
fn a_flipped_bit_anywhere_is_refused_as_decrypt_failed() {
    let mut p = secure_pair(4, Link::clean());
    p.record = true;
    let now = p.clock();
    p.client
        .send_datagram(now, p.client_conn, SEQUENCED, b"move 3 4")
        .unwrap();
    let original = {
        p.drain();
        let tx = p.client.transmits();
        let bytes = tx
            .iter()
            .find(|t| t.data[0] == TYPE_DATAGRAM)
            .unwrap()
            .data
            .to_vec();
        bytes
    };
    p.client.clear_transmits();
    let mut flips = 0;
    for i in 0..original.len() {
        for bit in 0..8 {
            let mut copy = original.clone();
            copy[i] ^= 1 << bit;
            // A flipped type byte that still names a session type (DATAGRAM to DATA, say) fails
            // the tag too: the type is associated data.
            if wire::parse_session(&copy).is_none() {
                continue;
            }
            p.inject_to_server(addr(common::CLIENT), &copy);
            // A flipped conv names no session (dropped as such); any other flip fails the tag.
            if !(1..5).contains(&i) {
                flips += 1;
            }
        }
    }
    assert!(
        take(&mut p.server).is_empty(),
        "nothing forged is delivered"
    );
    let dropped = p.server.stats().dropped_by(DropTrigger::DecryptFailed);
    assert_eq!(dropped, flips);
    // The original still opens after all that: nothing was recorded for the forgeries.
    p.inject_to_server(addr(common::CLIENT), &original);
    assert_eq!(take(&mut p.server).len(), 1);
    // The same body sealed as DATA under the same packet number is DATA, not a datagram.
    let mut retyped = original.clone();
    retyped[0] = TYPE_DATA;
    p.inject_to_server(addr(common::CLIENT), &retyped);
    assert_eq!(
        p.server.stats().dropped_by(DropTrigger::DecryptFailed),
        dropped + 1
    );
}

#[test]
fn an_oversized_datagram_is_refused_with_its_size_and_the_limit() {
    let mut p = secure_pair(5, Link::clean());
    let now = p.clock();
    // The game preset sends 1200-byte datagrams: 29 bytes of session framing, 2 of header.
    let limit = 1200 - 31;
    p.client
        .send_datagram(now, p.client_conn, SEQUENCED, &vec![7; limit])
        .unwrap();
    let error = p
        .client
        .send_datagram(now, p.client_conn, SEQUENCED, &vec![7; limit + 1])
        .unwrap_err();
    assert_eq!(
        error,
        DatagramSendError::TooLarge {
            size: limit + 1,
            limit
        }
    );
    assert_eq!(
        error.to_string(),
        "datagram of 1170 bytes exceeds the limit of 1169 (one datagram: mtu minus 31)"
    );
    assert!(p.client.transmits().iter().all(|t| t.data.len() <= 1200));
    let stats = p.client.stats().unreliable;
    assert_eq!((stats.sent, stats.dropped_too_large), (1, 1));
    p.advance(50);
    assert_eq!(take(&mut p.server)[0].2.len(), limit);
}

#[test]
fn no_datagrams_in_raw_mode_or_before_the_handshake_or_after_close() {
    let (server, client) = endpoint_configs(8, session());
    let mut raw = Pair::with_configs(server, client, Link::clean(), 1_000);
    let now = raw.clock();
    assert_eq!(
        raw.client
            .send_datagram(now, raw.client_conn, SEQUENCED, b"x"),
        Err(DatagramSendError::RawMode)
    );
    // A secure client still handshaking.
    let (server, client) = secure_configs(9, session());
    let mut p = Pair::with_configs(server, client, Link::clean(), 1_000);
    let now = p.clock();
    assert_eq!(
        p.client.send_datagram(now, p.client_conn, SEQUENCED, b"x"),
        Err(DatagramSendError::NotOpen)
    );
    p.establish();
    let conn = p.client_conn;
    p.client.close_now(conn, CloseReason::LocalClosed);
    assert_eq!(
        p.client.send_datagram(now, conn, SEQUENCED, b"x"),
        Err(DatagramSendError::UnknownConnection)
    );
    assert_eq!(p.client.stats().unreliable.dropped_no_session, 2);
}

#[test]
fn a_datagram_for_an_unknown_session_gets_a_reset_and_is_counted() {
    let mut p = secure_pair(10, Link::clean());
    p.record = true;
    let now = p.clock();
    p.client
        .send_datagram(now, p.client_conn, SEQUENCED, b"late")
        .unwrap();
    p.drain();
    let datagram = {
        let tx = p.client.transmits();
        let bytes = tx
            .iter()
            .find(|t| t.data[0] == TYPE_DATAGRAM)
            .unwrap()
            .data
            .to_vec();
        bytes
    };
    p.client.clear_transmits();
    // The server restarted: a fresh endpoint with the same key knows no session.
    let (server, _) = secure_configs(10, session());
    let mut fresh = Endpoint::new(server, 1_000).unwrap();
    // Past the restart grace period, in which stale datagrams are expected.
    let later = now.wrapping_add(120_000);
    fresh.handle_timeout(later);
    fresh.handle_datagram(later, addr(common::CLIENT), addr(SERVER), &datagram);
    assert_eq!(fresh.stats().unreliable.dropped_no_session, 1);
    assert_eq!(fresh.stats().resets_sent, 1);
    assert!(!fresh.has_datagrams());
}

#[test]
fn a_full_inbox_drops_and_counts_instead_of_growing() {
    let mut p = secure_pair(11, Link::clean());
    let now = p.clock();
    let payload = vec![1u8; 1000];
    let count = kcpwatch_proto::endpoint::MAX_DATAGRAM_INBOX_BYTES / payload.len() + 50;
    let mut sent = 0;
    for _ in 0..count {
        match p
            .client
            .send_datagram(now, p.client_conn, DatagramHeader::default(), &payload)
        {
            Ok(()) => sent += 1,
            Err(DatagramSendError::QueueFull) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(sent, count);
    // Nobody takes the datagrams meanwhile.
    p.advance(100);
    let stats = p.server.stats().unreliable;
    assert_eq!(stats.received, (count - 50) as u64, "{stats:?}");
    assert_eq!(stats.dropped_queue_full, 50);
    let summary = p.server.connection_summary(p.server_conn.unwrap()).unwrap();
    assert_eq!(summary.unreliable.dropped, 50);
    // A runtime that cannot hand one on says so; it is counted on the connection.
    let mut offered = 0;
    p.server.take_datagrams(|_, _, _| {
        offered += 1;
        offered % 2 == 0
    });
    assert_eq!(offered, count - 50);
    let refused = (count as u64 - 50).div_ceil(2);
    assert_eq!(p.server.stats().unreliable.dropped_queue_full, 50 + refused);
    // What could not be handed on is no longer counted as received: received + dropped is
    // what arrived, on the connection and endpoint-wide.
    let handed = count as u64 - 50 - refused;
    assert_eq!(p.server.stats().unreliable.received, handed);
    let summary = p.server.connection_summary(p.server_conn.unwrap()).unwrap();
    assert_eq!(summary.unreliable.received, handed);
    assert_eq!(summary.unreliable.dropped, 50 + refused);
    assert_eq!(
        summary.unreliable.received + summary.unreliable.dropped,
        count as u64
    );
}

#[test]
fn take_datagrams_of_one_connection_leaves_the_others() {
    let (server, client) = secure_configs(12, session());
    let mut p = Pair::with_configs(server, client, Link::clean(), 1_000);
    p.establish();
    let first = p.server_conn.unwrap();
    let now = p.clock();
    let second = p
        .client
        .connect_secure(now, addr(SERVER), addr(common::CLIENT), b"", None)
        .unwrap();
    assert!(p.run_until(2_000, |p| p.client_events.iter().any(
        |e| matches!(e, EndpointEvent::Established { handle, .. } if *handle == second)
    )));
    let now = p.clock();
    for (i, conn) in [p.client_conn, second, p.client_conn]
        .into_iter()
        .enumerate()
    {
        p.client
            .send_datagram(now, conn, DatagramHeader::default(), &[i as u8])
            .unwrap();
    }
    p.advance(50);
    let mut of_first = Vec::new();
    p.server.take_datagrams_of(first, |h, _, d| {
        of_first.push((h, d.to_vec()));
        true
    });
    assert_eq!(of_first, vec![(first, vec![0]), (first, vec![2])]);
    let rest = take(&mut p.server);
    assert_eq!(rest.len(), 1);
    assert_ne!(rest[0].0, first);
    assert_eq!(rest[0].2, vec![1]);
}

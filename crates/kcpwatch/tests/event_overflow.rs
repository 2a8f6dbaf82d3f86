//! A stalled log consumer: the ring overflows, the I/O thread keeps working without blocking,
//! and afterwards every record produced is either delivered or reported lost by
//! `kcp:log_loss` — nothing is lost uncounted.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use kcpwatch::events::LogConfig;
use kcpwatch::{Runtime, RuntimeConfig};
use kcpwatch_proto::{Endpoint, EndpointConfig};

const PATIENCE: Duration = Duration::from_secs(10);
const RUNTS: usize = 3_000;
const OPENINGS: usize = 40;

fn logged_server(ring_capacity: usize) -> Runtime {
    let mut config = RuntimeConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        EndpointConfig {
            accept_inbound: true,
            ..EndpointConfig::default()
        },
    );
    config.log = Some(LogConfig {
        outputs: Vec::new(),
        ring_capacity,
        deliver_to_js: true,
        outbox_limit: 1 << 30,
        stats_interval_ms: 0,
        // Every drop is its own record, so the flood really produces one record per datagram.
        sample_burst: u32::MAX,
        ..LogConfig::default()
    });
    Runtime::start(config, Box::new(|| {}), Box::new(|| {})).unwrap()
}

/// The first datagram a KCP client sends: opens a session in raw mode.
fn opening(conv: u32) -> Vec<u8> {
    let server = "127.0.0.1:9".parse().unwrap();
    let client = "127.0.0.1:10".parse().unwrap();
    let mut endpoint = Endpoint::new(
        EndpointConfig {
            accept_inbound: false,
            ..EndpointConfig::default()
        },
        0,
    )
    .unwrap();
    let conn = endpoint.connect(0, server, client, conv, None).unwrap();
    endpoint.send(0, conn, b"hello").unwrap();
    endpoint.flush(0);
    let first = endpoint.transmits().get(0).unwrap().data.to_vec();
    first
}

#[test]
fn a_stalled_consumer_loses_records_only_with_a_count() {
    let runtime = logged_server(64);
    let server = runtime.local_addr();
    runtime.pause_event_consumer(true);

    // Bulk records (drops) and critical ones (connection openings), far beyond the ring.
    let stray = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut clients = Vec::new();
    for i in 0..OPENINGS {
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client.send_to(&opening(1000 + i as u32), server).unwrap();
        clients.push(client);
        for _ in 0..RUNTS / OPENINGS {
            stray.send_to(b"runt", server).unwrap();
        }
    }
    let total = (OPENINGS + RUNTS / OPENINGS * OPENINGS) as u64;

    // The I/O thread handles every datagram and answers commands while the consumer is
    // stalled: it never waits for the log.
    let deadline = Instant::now() + PATIENCE;
    let stats = loop {
        let stats = runtime.stats().unwrap();
        if stats.endpoint.datagrams_in == total || Instant::now() > deadline {
            break stats;
        }
        std::thread::yield_now();
    };
    assert_eq!(stats.endpoint.datagrams_in, total, "the I/O thread kept up");
    assert_eq!(
        stats.connections, OPENINGS,
        "every opening became a session"
    );
    assert!(
        stats.events_lost > 0,
        "a ring of 64 cannot hold {} records",
        stats.events_produced
    );
    // Each client got its ACK while the log was stalled.
    for client in &clients {
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut buf = [0u8; 1500];
        let (n, from) = client.recv_from(&mut buf).unwrap();
        assert_eq!(from, server);
        assert!(n >= 24);
    }

    runtime.pause_event_consumer(false);
    runtime.shutdown();
    let text = String::from_utf8(runtime.take_events()).unwrap();
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (produced, lost) = runtime.event_totals();
    let losses: Vec<&serde_json::Value> = records
        .iter()
        .filter(|r| r["name"] == "kcp:log_loss")
        .collect();
    let delivered = (records.len() - losses.len()) as u64;
    let reported: u64 = losses
        .iter()
        .map(|r| r["lost_total"].as_u64().unwrap())
        .sum();
    assert!(!losses.is_empty());
    assert_eq!(reported, lost, "every loss is reported");
    assert_eq!(
        delivered + reported,
        produced,
        "delivered + lost = produced"
    );
    // Sequence numbers are unique and increasing; the gaps are exactly the losses.
    let seqs: Vec<u64> = records.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "seq increases");
    let span = seqs.last().unwrap() + 1;
    assert_eq!(span - seqs.len() as u64, lost, "gaps in seq are the losses");
    // The listener's stop is the last record produced (a final loss report may follow it),
    // and the loss reports say which lane lost what.
    let last = records
        .iter()
        .rev()
        .find(|r| r["name"] != "kcp:log_loss")
        .unwrap();
    assert_eq!(last["name"], "kcp:listener_stopped");
    let bulk: u64 = losses
        .iter()
        .map(|r| r["lost_bulk"].as_u64().unwrap())
        .sum();
    assert!(bulk > 0);
}

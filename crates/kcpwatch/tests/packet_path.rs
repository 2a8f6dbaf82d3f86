//! The receive path on real loopback sockets: datagrams longer than the receive buffer leave a
//! security record, and a peer whose host refuses our datagrams (ICMP port unreachable, a
//! crashed player) is logged once and closed instead of flooding the log until its idle
//! timeout.

use std::net::UdpSocket;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use kcpwatch::events::LogConfig;
use kcpwatch::{RecordKind, Runtime, RuntimeConfig};
use kcpwatch_proto::{CloseReason, EndpointConfig};

const PATIENCE: Duration = Duration::from_secs(10);

fn logged(config: EndpointConfig) -> (Runtime, mpsc::Receiver<()>) {
    let mut config = RuntimeConfig::new("127.0.0.1:0".parse().unwrap(), config);
    config.log = Some(LogConfig {
        outputs: Vec::new(),
        deliver_to_js: true,
        stats_interval_ms: 0,
        ..LogConfig::default()
    });
    let (tx, rx) = mpsc::channel();
    let notify = Box::new(move || {
        let _ = tx.send(());
    });
    (Runtime::start(config, notify, Box::new(|| {})).unwrap(), rx)
}

fn lines(runtime: &Runtime) -> Vec<String> {
    String::from_utf8(runtime.take_events())
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// (kind, handle, first payload byte) of every record in a batch.
fn records(batch: &[u8]) -> Vec<(u8, u32, u8)> {
    let mut out = Vec::new();
    let mut rest = batch;
    while rest.len() >= 9 {
        let kind = rest[0];
        let handle = u32::from_le_bytes(rest[1..5].try_into().unwrap());
        let len = u32::from_le_bytes(rest[5..9].try_into().unwrap()) as usize;
        out.push((kind, handle, rest.get(9).copied().unwrap_or(0)));
        rest = &rest[9 + len..];
    }
    out
}

#[test]
fn datagrams_longer_than_the_receive_buffer_are_counted_recorded_and_seen_by_the_detectors() {
    const OVERSIZED: usize = 300;
    let mut endpoint = EndpointConfig {
        accept_inbound: true,
        ..EndpointConfig::default()
    };
    // A low KCPW-005 threshold, so the test sees the detector count these datagrams.
    endpoint.detectors.invalid_burst.threshold = 100;
    let (server, _notified) = logged(endpoint);
    let to = server.local_addr();
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    let datagram = vec![0x5a; 2_000];
    let deadline = Instant::now() + PATIENCE;
    let mut sent = 0;
    let stats = loop {
        // Bounded: the socket buffer may drop some, so send in steps and watch the counter.
        if sent < OVERSIZED * 4 {
            for _ in 0..50 {
                sender.send_to(&datagram, to).unwrap();
                sent += 1;
            }
        }
        let stats = server.stats().unwrap();
        if stats.endpoint.datagrams_in >= OVERSIZED as u64 || Instant::now() > deadline {
            break stats;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(
        stats.endpoint.datagrams_in >= OVERSIZED as u64,
        "datagrams_in {} after {sent} oversized datagrams (truncated {})",
        stats.endpoint.datagrams_in,
        stats.truncated
    );
    assert_eq!(stats.truncated, stats.endpoint.datagrams_in);
    assert_eq!(stats.endpoint.dropped_total(), stats.endpoint.datagrams_in);
    assert!(stats.endpoint.bytes_in >= stats.endpoint.datagrams_in * 2_000);
    server.shutdown();
    let records = lines(&server);
    let drops: Vec<&String> = records
        .iter()
        .filter(|l| l.contains("\"kcp:packet_dropped\"") && l.contains("datagram_truncated"))
        .collect();
    assert!(!drops.is_empty(), "no drop record among {records:?}");
    // Sampled like every drop: a burst one by one, the rest in aggregates.
    assert!(drops.len() <= 20 + 10, "{} drop records", drops.len());
    assert!(drops[0].contains("\"datagram_bytes\":2000"), "{}", drops[0]);
    assert!(
        records
            .iter()
            .any(|l| l.contains("\"kcp:alert\"") && l.contains("KCPW-005")),
        "no KCPW-005 alert among {records:?}"
    );
}

#[test]
fn a_crashed_peer_is_logged_once_and_closed_as_dead_link_after_unreachable_reports() {
    let mut endpoint = EndpointConfig {
        accept_inbound: true,
        ..EndpointConfig::default()
    };
    endpoint.session.idle_timeout_ms = 6_000;
    let (server, notified) = logged(endpoint);
    let to = server.local_addr();

    // A raw KCP player opens a conversation, then its process dies (its socket closes), so
    // the kernel answers the server's datagrams with ICMP port unreachable.
    let player = UdpSocket::bind("127.0.0.1:0").unwrap();
    player.send_to(&opening(0x0bad_cafe), to).unwrap();
    let deadline = Instant::now() + PATIENCE;
    let mut all = Vec::new();
    let handle = loop {
        all.extend(records(&server.take_records()));
        if let Some(r) = all.iter().find(|r| r.0 == RecordKind::Accepted as u8) {
            break r.1;
        }
        assert!(Instant::now() < deadline, "no session");
        let _ = notified.recv_timeout(Duration::from_millis(50));
    };
    drop(player);

    // The server broadcasts at 30 Hz until the session ends (or 8 s pass).
    let started = Instant::now();
    let mut closed = None;
    while started.elapsed() < Duration::from_secs(8) && closed.is_none() {
        let mut batch = Vec::new();
        batch.extend_from_slice(&handle.to_le_bytes());
        batch.extend_from_slice(&16u32.to_le_bytes());
        batch.push(0);
        batch.extend_from_slice(&[1; 16]);
        let _ = server.send_batch(&batch);
        let _ = notified.recv_timeout(Duration::from_millis(33));
        all.extend(records(&server.take_records()));
        closed = all
            .iter()
            .find(|r| r.0 == RecordKind::Closed as u8 && r.1 == handle)
            .map(|r| r.2);
    }
    let elapsed = started.elapsed();
    let stats = server.stats().unwrap();
    server.shutdown();
    let records = lines(&server);
    let errors = records
        .iter()
        .filter(|l| l.contains("\"kcp:error\""))
        .count();
    assert!(stats.icmp_errors >= 3, "icmp errors {}", stats.icmp_errors);
    assert!(
        errors <= 2,
        "{errors} kcp:error records for one crashed peer in {elapsed:?} ({} ICMP errors)",
        stats.icmp_errors
    );
    assert_eq!(
        closed,
        Some(CloseReason::DeadLink.code()),
        "closed {closed:?} after {elapsed:?}"
    );
    // Well before the 6 s idle timeout: the unreachable reports did it (three of them over at
    // least a third of the idle timeout).
    assert!(elapsed < Duration::from_millis(5_000), "{elapsed:?}");
    let close = records
        .iter()
        .find(|l| l.contains("\"kcp:connection_closed\""))
        .unwrap();
    assert!(close.contains("\"reason\":\"dead_link\""), "{close}");
}

/// The first datagram a KCP client sends: opens a session in raw mode.
fn opening(conv: u32) -> Vec<u8> {
    use kcpwatch_proto::Endpoint;
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

//! A runtime on a wildcard address, end to end through its I/O thread: a connection reports
//! the local address its peer really used, the replies come from that address, and ICMP
//! errors are counted apart from receive errors. Linux only (packet info, IP_RECVERR); all of
//! 127.0.0.0/8 is local there without configuration.
#![cfg(target_os = "linux")]

use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use kcpwatch::{RecordKind, Runtime, RuntimeConfig};
use kcpwatch_proto::{Endpoint, EndpointConfig};

const PATIENCE: Duration = Duration::from_secs(2);

fn at(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), port)
}

fn server(bind: &str) -> (Runtime, mpsc::Receiver<()>) {
    let (tx, rx) = mpsc::channel();
    let config = RuntimeConfig::new(
        bind.parse().unwrap(),
        EndpointConfig {
            accept_inbound: true,
            ..EndpointConfig::default()
        },
    );
    let runtime = Runtime::start(
        config,
        Box::new(move || {
            let _ = tx.send(());
        }),
        Box::new(|| {}),
    )
    .unwrap();
    (runtime, rx)
}

/// The first datagrams of a KCP client at `client` talking to `server`.
fn hello(client: SocketAddr, server: SocketAddr) -> Vec<Vec<u8>> {
    let config = EndpointConfig {
        accept_inbound: false,
        ..EndpointConfig::default()
    };
    let mut endpoint = Endpoint::new(config, 0).unwrap();
    let conn = endpoint.connect(0, server, client, 42, None).unwrap();
    endpoint.send(0, conn, b"hello").unwrap();
    endpoint.flush(0);
    let transmits = endpoint.transmits();
    transmits.iter().map(|t| t.data.to_vec()).collect()
}

/// (remote ip, remote port, local ip, local port) of the first Accepted record.
fn accepted(records: &[u8]) -> Option<(String, u16, String, u16)> {
    let mut rest = records;
    while rest.len() >= 9 {
        let kind = rest[0];
        let len = u32::from_le_bytes(rest[5..9].try_into().unwrap()) as usize;
        let payload = &rest[9..9 + len];
        rest = &rest[9 + len..];
        if kind != RecordKind::Accepted as u8 {
            continue;
        }
        let remote_port = u16::from_le_bytes([payload[4], payload[5]]);
        let local_port = u16::from_le_bytes([payload[6], payload[7]]);
        let mut strings = &payload[8..];
        let mut next = || {
            let n = strings[0] as usize;
            let s = String::from_utf8(strings[1..1 + n].to_vec()).unwrap();
            strings = &strings[1 + n..];
            s
        };
        let remote_ip = next();
        let local_ip = next();
        return Some((remote_ip, remote_port, local_ip, local_port));
    }
    None
}

#[test]
fn a_connection_reports_the_address_its_peer_used_and_is_answered_from_it() {
    let (runtime, notified) = server("0.0.0.0:0");
    let port = runtime.local_addr().port();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_read_timeout(Some(PATIENCE)).unwrap();
    let client_addr = client.local_addr().unwrap();
    // 127.0.0.2 is not what the kernel would pick to answer 127.0.0.1.
    let server_addr = at("127.0.0.2", port);
    for datagram in hello(client_addr, server_addr) {
        client.send_to(&datagram, server_addr).unwrap();
    }

    let deadline = Instant::now() + PATIENCE;
    let found = loop {
        if let Some(found) = accepted(&runtime.take_records()) {
            break found;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no connection was accepted");
        let _ = notified.recv_timeout(left);
    };
    assert_eq!(
        found,
        (
            "127.0.0.1".into(),
            client_addr.port(),
            "127.0.0.2".into(),
            port
        )
    );

    // The server acknowledges the message.
    let mut buf = [0; 2048];
    let (_, from) = client.recv_from(&mut buf).expect("the server answers");
    assert_eq!(from, server_addr);

    let stats = runtime.stats().unwrap();
    assert_eq!(stats.recv_errors, 0);
    runtime.shutdown();
}

#[test]
fn icmp_errors_are_counted_apart_from_receive_errors() {
    let (runtime, _notified) = server("0.0.0.0:0");
    let port = runtime.local_addr().port();
    let dead = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let info = runtime.connect(dead, 7, Vec::new(), None).unwrap();
    let mut batch = Vec::new();
    batch.extend_from_slice(&info.handle.to_le_bytes());
    batch.extend_from_slice(&5u32.to_le_bytes());
    batch.push(0);
    batch.extend_from_slice(b"hello");
    runtime.send_batch(&batch).unwrap();

    // An ICMP error alone wakes the I/O thread's poll as an error, not as readable; a datagram
    // makes it receive (and so read the error) whatever its loop does with error events.
    let poke = UdpSocket::bind("127.0.0.1:0").unwrap();
    let deadline = Instant::now() + PATIENCE;
    let stats = loop {
        poke.send_to(b"x", at("127.0.0.1", port)).unwrap();
        let stats = runtime.stats().unwrap();
        if stats.icmp_errors > 0 {
            break stats;
        }
        assert!(Instant::now() < deadline, "no ICMP error counted");
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(stats.recv_errors, 0);
    runtime.shutdown();
}

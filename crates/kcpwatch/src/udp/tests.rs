//! The batch paths on real loopback sockets: destination addresses on wildcard sockets, replies
//! from the address a peer talked to, and ICMP errors for earlier sends. Linux treats all of
//! 127.0.0.0/8 as local, so two loopback addresses need no configuration. Waiting is done on
//! readiness (mio) with a deadline, never by sleeping.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use kcpwatch_proto::{Endpoint, EndpointConfig};
use mio::{Events, Interest, Poll, Token};

use super::{SendFailure, UdpIo};
use crate::socket::{self, SocketOptions};

const MAX_DATAGRAM: usize = 2048;
const PATIENCE: Duration = Duration::from_secs(2);

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A runtime socket as the I/O thread has it, registered for readiness.
struct Harness {
    io: UdpIo,
    port: u16,
    poll: Poll,
    events: Events,
    deadline: Instant,
    /// Whether any readiness event so far said readable / error.
    saw_readable: bool,
    saw_error: bool,
}

impl Harness {
    fn bind(bind: &str) -> Self {
        let std_socket = socket::bind(addr(bind), SocketOptions::default()).unwrap();
        let port = std_socket.local_addr().unwrap().port();
        let mut io = UdpIo::new(mio::net::UdpSocket::from_std(std_socket), MAX_DATAGRAM).unwrap();
        let poll = Poll::new().unwrap();
        // Registered before anything is sent, so no readiness edge is missed.
        poll.registry()
            .register(&mut io.socket, Token(0), Interest::READABLE)
            .unwrap();
        Self {
            io,
            port,
            poll,
            events: Events::with_capacity(8),
            deadline: Instant::now() + PATIENCE,
            saw_readable: false,
            saw_error: false,
        }
    }

    /// Waits for the next readiness event; fails the test at the deadline.
    fn wait(&mut self, what: &str) {
        let left = self.deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "timed out waiting for {what}");
        self.poll.poll(&mut self.events, Some(left)).unwrap();
        for event in self.events.iter() {
            self.saw_readable |= event.is_readable();
            self.saw_error |= event.is_error();
        }
    }

    /// Receives until `count` datagrams arrived: (from, local, data).
    fn receive(&mut self, count: usize) -> Vec<(SocketAddr, SocketAddr, Vec<u8>)> {
        let mut got = Vec::new();
        loop {
            // Read to "would block" before waiting: readiness is edge-triggered.
            while self
                .io
                .recv_batch(|d| {
                    assert!(!d.truncated);
                    got.push((d.from, d.local, d.data.to_vec()));
                })
                .unwrap()
                > 0
            {}
            if got.len() >= count {
                assert_eq!(got.len(), count, "more datagrams than sent: {got:?}");
                return got;
            }
            self.wait("datagrams");
        }
    }

    /// Receives and drains errors until `count` send failures were reported.
    fn send_failures(&mut self, count: usize) -> Vec<SendFailure> {
        let mut failures = Vec::new();
        loop {
            let mut datagrams = 0;
            while self.io.recv_batch(|_| datagrams += 1).unwrap() > 0 {}
            assert_eq!(datagrams, 0, "no datagram was sent to this socket");
            self.io.drain_errors(|f| failures.push(f));
            if failures.len() >= count {
                return failures;
            }
            self.wait("an ICMP error");
        }
    }

    /// Sends one datagram to `to` whose source is `source`, the way the I/O thread sends a
    /// session's datagrams.
    fn send_from(&mut self, source: SocketAddr, to: SocketAddr) {
        let endpoint = one_datagram(source, to);
        let transmits = endpoint.transmits();
        assert_eq!(transmits.len(), 1);
        assert_eq!(transmits.get(0).unwrap().source, source);
        assert_eq!(self.io.send_batch(&transmits).unwrap(), 1);
    }
}

/// An endpoint holding exactly one datagram from `source` to `to`.
fn one_datagram(source: SocketAddr, to: SocketAddr) -> Endpoint {
    let config = EndpointConfig {
        accept_inbound: false,
        ..EndpointConfig::default()
    };
    let mut endpoint = Endpoint::new(config, 0).unwrap();
    let conn = endpoint.connect(0, to, source, 7, None).unwrap();
    endpoint.send(0, conn, b"reply").unwrap();
    endpoint.flush(0);
    endpoint
}

fn peer(ip: &str) -> (UdpSocket, SocketAddr) {
    let socket = UdpSocket::bind((ip, 0)).unwrap();
    socket.set_read_timeout(Some(PATIENCE)).unwrap();
    let local = socket.local_addr().unwrap();
    (socket, local)
}

/// Who the next datagram at `socket` came from.
fn sender_seen_by(socket: &UdpSocket) -> SocketAddr {
    let mut buf = [0; MAX_DATAGRAM];
    socket.recv_from(&mut buf).expect("the reply arrives").1
}

/// A port on `ip` nothing listens on (bound, then released).
fn dead_port(ip: &str) -> SocketAddr {
    UdpSocket::bind((ip, 0)).unwrap().local_addr().unwrap()
}

fn ipv6_loopback_missing() -> Option<std::io::Error> {
    UdpSocket::bind("[::1]:0").err()
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

fn at(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), port)
}

#[test]
fn wildcard_ipv4_socket_sees_each_destination_and_replies_from_it() {
    let mut h = Harness::bind("0.0.0.0:0");
    let port = h.port;
    let (a, a_addr) = peer("127.0.0.1");
    let (b, b_addr) = peer("127.0.0.2");
    a.send_to(b"a to .1", at("127.0.0.1", port)).unwrap();
    a.send_to(b"a to .2", at("127.0.0.2", port)).unwrap();
    b.send_to(b"b to .2", at("127.0.0.2", port)).unwrap();
    b.send_to(b"b to .1", at("127.0.0.1", port)).unwrap();

    let got = sorted(h.receive(4));
    let expected = sorted(vec![
        (a_addr, at("127.0.0.1", port), b"a to .1".to_vec()),
        (a_addr, at("127.0.0.2", port), b"a to .2".to_vec()),
        (b_addr, at("127.0.0.2", port), b"b to .2".to_vec()),
        (b_addr, at("127.0.0.1", port), b"b to .1".to_vec()),
    ]);
    assert_eq!(got, expected);

    // The kernel would pick 127.0.0.1 to reach 127.0.0.1 ...
    h.send_from(at("0.0.0.0", port), a_addr);
    assert_eq!(sender_seen_by(&a), at("127.0.0.1", port));
    // ... so this reply leaves from .2 only because it says so.
    h.send_from(at("127.0.0.2", port), a_addr);
    assert_eq!(sender_seen_by(&a), at("127.0.0.2", port));
    h.send_from(at("127.0.0.2", port), b_addr);
    assert_eq!(sender_seen_by(&b), at("127.0.0.2", port));
}

#[test]
fn dual_stack_socket_sees_ipv4_destinations_as_ipv4_and_replies_from_them() {
    let mut h = Harness::bind("[::]:0");
    let port = h.port;
    let (a, a_addr) = peer("127.0.0.1");
    a.send_to(b"to .2", at("127.0.0.2", port)).unwrap();
    a.send_to(b"to .1", at("127.0.0.1", port)).unwrap();

    let got = sorted(h.receive(2));
    let expected = sorted(vec![
        (a_addr, at("127.0.0.2", port), b"to .2".to_vec()),
        (a_addr, at("127.0.0.1", port), b"to .1".to_vec()),
    ]);
    assert_eq!(got, expected, "not ::ffff:-mapped, not ::");

    h.send_from(at("::", port), a_addr);
    assert_eq!(sender_seen_by(&a), at("127.0.0.1", port));
    h.send_from(at("127.0.0.2", port), a_addr);
    assert_eq!(sender_seen_by(&a), at("127.0.0.2", port));
}

#[test]
fn dual_stack_socket_sees_ipv6_destinations() {
    if let Some(e) = ipv6_loopback_missing() {
        eprintln!("skipped: this host has no IPv6 loopback (binding [::1]:0 failed: {e})");
        return;
    }
    let mut h = Harness::bind("[::]:0");
    let port = h.port;
    let (c, c_addr) = peer("::1");
    c.send_to(b"to ::1", at("::1", port)).unwrap();
    assert_eq!(
        h.receive(1),
        vec![(c_addr, at("::1", port), b"to ::1".to_vec())]
    );

    h.send_from(at("::1", port), c_addr);
    assert_eq!(sender_seen_by(&c), at("::1", port));
}

#[test]
fn icmp_port_unreachable_is_reported_with_its_peer() {
    let mut h = Harness::bind("127.0.0.1:0");
    let dead = dead_port("127.0.0.1");
    h.send_from(at("127.0.0.1", h.port), dead);
    let failures = h.send_failures(1);
    // Nothing more is coming: the one datagram caused the one error.
    let more = h.send_failures(0);
    assert!(more.is_empty(), "{more:?}");
    assert_eq!(
        failures,
        vec![SendFailure {
            remote: dead,
            errno: libc::ECONNREFUSED,
            kind: "ECONNREFUSED",
        }]
    );
    eprintln!(
        "readiness for an ICMP error alone: readable={} error={}",
        h.saw_readable, h.saw_error
    );
}

#[test]
fn icmp_errors_on_a_dual_stack_socket_name_the_peer_in_its_family() {
    let mut h = Harness::bind("[::]:0");
    let dead4 = dead_port("127.0.0.1");
    h.send_from(at("::", h.port), dead4);
    let failures = h.send_failures(1);
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0].remote, dead4, "not ::ffff:-mapped");
    assert_eq!(failures[0].kind, "ECONNREFUSED");

    if let Some(e) = ipv6_loopback_missing() {
        eprintln!(
            "IPv6 case skipped: this host has no IPv6 loopback (binding [::1]:0 failed: {e})"
        );
        return;
    }
    let dead6 = dead_port("::1");
    h.send_from(at("::1", h.port), dead6);
    let failures = h.send_failures(1);
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0].remote, dead6);
    assert_eq!(failures[0].kind, "ECONNREFUSED");
}

#[test]
fn datagrams_behind_an_icmp_error_are_received_and_never_reported_as_receive_errors() {
    let mut h = Harness::bind("0.0.0.0:0");
    let port = h.port;
    let dead = dead_port("127.0.0.1");
    h.send_from(at("127.0.0.1", port), dead);
    // Let the error land before the datagram, without reading either.
    while !(h.saw_error || h.saw_readable) {
        h.wait("the ICMP error");
    }
    let (a, a_addr) = peer("127.0.0.2");
    a.send_to(b"after", at("127.0.0.1", port)).unwrap();
    // `receive` unwraps every recv_batch result: the pending error is not a receive error.
    assert_eq!(
        h.receive(1),
        vec![(a_addr, at("127.0.0.1", port), b"after".to_vec())]
    );
    let mut failures = Vec::new();
    h.io.drain_errors(|f| failures.push(f));
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0].remote, dead);
}

/// What the I/O thread's poll loop must handle: with nothing to read, an ICMP error wakes the
/// poll with an error event only, so a loop that waits for "readable" reads it late (with the
/// next datagram), and meanwhile it takes room in the receive buffer.
#[test]
fn an_icmp_error_alone_wakes_the_poll_as_an_error_not_as_readable() {
    let mut h = Harness::bind("127.0.0.1:0");
    let dead = dead_port("127.0.0.1");
    h.send_from(at("127.0.0.1", h.port), dead);
    while !(h.saw_error || h.saw_readable) {
        h.wait("the ICMP error");
    }
    assert!(h.saw_error && !h.saw_readable);
    assert_eq!(h.send_failures(1)[0].remote, dead);
}

//! A KCP peer on a loopback socket, driven by the test itself, for the runtime's tests.

#![allow(dead_code)]

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use kcpwatch_proto::{ConnectionHandle, Endpoint, EndpointConfig, EndpointEvent};

pub const PATIENCE: Duration = Duration::from_secs(10);

/// A KCP server on a loopback socket, driven by the test.
pub struct Peer {
    pub socket: UdpSocket,
    pub local: SocketAddr,
    pub endpoint: Endpoint,
    started: Instant,
    pub conn: Option<ConnectionHandle>,
    pub messages: Vec<Vec<u8>>,
}

impl Peer {
    pub fn new() -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(2)))
            .unwrap();
        let local = socket.local_addr().unwrap();
        let endpoint = Endpoint::new(
            EndpointConfig {
                accept_inbound: true,
                ..EndpointConfig::default()
            },
            0,
        )
        .unwrap();
        Self {
            socket,
            local,
            endpoint,
            started: Instant::now(),
            conn: None,
            messages: Vec::new(),
        }
    }

    pub fn now(&self) -> u32 {
        self.started.elapsed().as_millis() as u32
    }

    /// The next datagram the runtime sent, if one comes within the read timeout; the peer's
    /// own timers (its delayed ACKs) run either way.
    pub fn datagram(&mut self) -> Option<(Vec<u8>, SocketAddr)> {
        let mut buf = [0u8; 2048];
        let got = self.socket.recv_from(&mut buf).ok();
        self.answer();
        got.map(|(n, from)| (buf[..n].to_vec(), from))
    }

    /// Runs the peer's timers and sends what it owes.
    pub fn answer(&mut self) {
        let now = self.now();
        self.endpoint.handle_timeout(now);
        self.endpoint.flush(now);
        for t in self.endpoint.transmits().iter() {
            self.socket.send_to(t.data, t.destination).unwrap();
        }
        self.endpoint.clear_transmits();
    }

    /// Takes a datagram in, answers (ACKs) and keeps the messages that became readable.
    pub fn take(&mut self, datagram: &[u8], from: SocketAddr) {
        let now = self.now();
        self.endpoint
            .handle_datagram(now, from, self.local, datagram);
        while let Some(event) = self.endpoint.poll_event() {
            match event {
                EndpointEvent::Accepted { handle, .. } => self.conn = Some(handle),
                EndpointEvent::Readable { handle } => {
                    let mut buf = [0u8; 4096];
                    while let Some(n) = self.endpoint.recv(handle, &mut buf) {
                        self.messages.push(buf[..n].to_vec());
                    }
                }
                _ => {}
            }
        }
        self.answer();
    }

    /// Takes in the next datagram, if one comes within the read timeout.
    pub fn pump(&mut self) {
        if let Some((datagram, from)) = self.datagram() {
            self.take(&datagram, from);
        }
    }

    /// Sends a message to the connection and flushes it.
    pub fn send(&mut self, message: &[u8]) {
        let now = self.now();
        let conn = self.conn.expect("a connection");
        self.endpoint.send(now, conn, message).unwrap();
        self.answer();
    }

    /// Receives until `done` holds, or fails after `PATIENCE`.
    pub fn until(&mut self, what: &str, mut done: impl FnMut(&Self) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !done(self) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            if let Some((datagram, from)) = self.datagram() {
                self.take(&datagram, from);
            }
        }
    }
}

/// One message for the binding's batch format: handle, length, flags, bytes.
pub fn batch(handle: u32, message: &[u8]) -> Vec<u8> {
    let mut batch = Vec::new();
    batch.extend_from_slice(&handle.to_le_bytes());
    batch.extend_from_slice(&(message.len() as u32).to_le_bytes());
    batch.push(0);
    batch.extend_from_slice(message);
    batch
}

//! A client/server pair over a simulated network with a virtual clock, in the style of
//! quinn-proto's test pair: latency, jitter, loss, duplication and reordering, all drawn from a
//! seeded RNG so a run is reproducible from its seed.
#![allow(dead_code)]

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;

use kcpwatch_proto::{
    ConnectionHandle, Endpoint, EndpointConfig, EndpointEvent, Millis, Mode, SecurityEvent,
    SessionConfig, Severity,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub const SERVER: &str = "10.0.0.1:4000";
pub const CLIENT: &str = "10.0.0.2:50000";

pub fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Link impairments, applied per datagram in each direction.
#[derive(Debug, Clone, Copy)]
pub struct Link {
    pub latency_ms: u32,
    pub jitter_ms: u32,
    pub loss: f64,
    pub duplicate: f64,
    pub reorder: f64,
}

impl Link {
    pub fn clean() -> Self {
        Self {
            latency_ms: 20,
            jitter_ms: 0,
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
        }
    }

    pub fn lossy(loss: f64) -> Self {
        Self {
            latency_ms: 20,
            jitter_ms: 10,
            loss,
            duplicate: 0.02,
            reorder: 0.05,
        }
    }
}

struct InFlight {
    deliver_at: u64,
    seq: u64,
    to_server: bool,
    from: SocketAddr,
    bytes: Vec<u8>,
}

impl PartialEq for InFlight {
    fn eq(&self, other: &Self) -> bool {
        (self.deliver_at, self.seq) == (other.deliver_at, other.seq)
    }
}
impl Eq for InFlight {}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for InFlight {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.deliver_at, self.seq).cmp(&(other.deliver_at, other.seq))
    }
}

/// The endpoint configurations `Pair::new` uses (every security event recorded, sampling off),
/// for tests that change one field and pass them to [`Pair::with_configs`].
pub fn endpoint_configs(seed: u64, session: SessionConfig) -> (EndpointConfig, EndpointConfig) {
    let server = EndpointConfig {
        session,
        accept_inbound: true,
        rng_seed: seed,
        event_level: Some(Severity::Debug),
        sample_burst: u32::MAX,
        ..EndpointConfig::default()
    };
    let client = EndpointConfig {
        session,
        accept_inbound: false,
        rng_seed: seed ^ 0x5555,
        event_level: Some(Severity::Debug),
        sample_burst: u32::MAX,
        ..EndpointConfig::default()
    };
    (server, client)
}

/// [`endpoint_configs`] in secure mode, each side with its own secret.
/// The static key of every secure test server (clients pin its public half).
#[allow(dead_code)]
pub fn test_server_key() -> kcpwatch_proto::secure::StaticKey {
    kcpwatch_proto::secure::StaticKey::from_private([0x5A; 32])
}

pub fn secure_configs(seed: u64, session: SessionConfig) -> (EndpointConfig, EndpointConfig) {
    let (mut server, mut client) = endpoint_configs(seed, session);
    server.mode = Mode::Secure;
    client.mode = Mode::Secure;
    server.secret = [seed as u8 | 1; 32];
    client.secret = [seed as u8 | 2; 32];
    server.server_keys = vec![test_server_key()];
    client.server_key = Some(*test_server_key().public());
    server.unix_ms_at_zero = 1_700_000_000_000;
    client.unix_ms_at_zero = 1_700_000_000_000;
    (server, client)
}

pub struct Pair {
    pub server: Endpoint,
    pub client: Endpoint,
    pub client_conn: ConnectionHandle,
    pub server_conn: Option<ConnectionHandle>,
    /// Virtual time; starts at `epoch` so tests can place the clock near a wrap.
    pub now: u64,
    pub epoch: Millis,
    pub link: Link,
    rng: StdRng,
    network: BinaryHeap<Reverse<InFlight>>,
    seq: u64,
    pub server_events: Vec<EndpointEvent>,
    pub client_events: Vec<EndpointEvent>,
    /// Security events, in order (every severity, no sampling unless a test sets it).
    pub server_security: Vec<SecurityEvent>,
    pub client_security: Vec<SecurityEvent>,
    pub delivered_datagrams: u64,
    pub lost_datagrams: u64,
    /// Every datagram the client sent, for attacks that replay or forge from them.
    pub client_datagrams: Vec<Vec<u8>>,
    pub server_datagrams: Vec<Vec<u8>>,
    pub record: bool,
    /// The address the client's datagrams arrive from at the server (a NAT that rebinds);
    /// `None` is the client's own address.
    pub client_nat: Option<SocketAddr>,
}

impl Pair {
    pub fn new(seed: u64, session: SessionConfig, link: Link) -> Self {
        Self::with_epoch(seed, session, link, 1_000)
    }

    pub fn with_epoch(seed: u64, session: SessionConfig, link: Link, epoch: Millis) -> Self {
        let server_config = EndpointConfig {
            session,
            accept_inbound: true,
            rng_seed: seed,
            event_level: Some(Severity::Debug),
            sample_burst: u32::MAX,
            ..EndpointConfig::default()
        };
        let client_config = EndpointConfig {
            session,
            accept_inbound: false,
            rng_seed: seed ^ 0x5555,
            event_level: Some(Severity::Debug),
            sample_burst: u32::MAX,
            ..EndpointConfig::default()
        };
        Self::with_configs(server_config, client_config, link, epoch)
    }

    pub fn with_configs(
        server_config: EndpointConfig,
        mut client_config: EndpointConfig,
        link: Link,
        epoch: Millis,
    ) -> Self {
        let seed = server_config.rng_seed;
        let server = Endpoint::new(server_config, epoch).unwrap();
        if client_config.server_key.is_none() {
            // The client pins the server's static key, as a game client would.
            client_config.server_key = server.server_keys().first().map(|k| *k.public());
        }
        let mut client = Endpoint::new(client_config, epoch).unwrap();
        let client_conn = match client.config().mode {
            Mode::Raw => client.connect(epoch, addr(SERVER), addr(CLIENT), 0x1234_5678, None),
            Mode::Secure => client.connect_secure(epoch, addr(SERVER), addr(CLIENT), b"", None),
        }
        .unwrap();
        Self {
            server,
            client,
            client_conn,
            server_conn: None,
            now: 0,
            epoch,
            link,
            rng: StdRng::seed_from_u64(seed),
            network: BinaryHeap::new(),
            seq: 0,
            server_events: Vec::new(),
            client_events: Vec::new(),
            server_security: Vec::new(),
            client_security: Vec::new(),
            delivered_datagrams: 0,
            lost_datagrams: 0,
            client_datagrams: Vec::new(),
            server_datagrams: Vec::new(),
            record: false,
            client_nat: None,
        }
    }

    pub fn clock(&self) -> Millis {
        self.epoch.wrapping_add(self.now as u32)
    }

    /// Moves produced datagrams onto the simulated wire.
    fn collect(&mut self) {
        let now = self.clock();
        self.client.flush(now);
        self.server.flush(now);
        for to_server in [true, false] {
            let endpoint = if to_server {
                &mut self.client
            } else {
                &mut self.server
            };
            // The wire carries the source address the endpoint chose, so a session replying
            // from the wrong address is not recognised by its peer.
            let datagrams: Vec<(SocketAddr, Vec<u8>)> = endpoint
                .transmits()
                .iter()
                .map(|t| (t.source, t.data.to_vec()))
                .collect();
            endpoint.clear_transmits();
            for (from, bytes) in datagrams {
                let from = match (to_server, self.client_nat) {
                    (true, Some(nat)) => nat,
                    _ => from,
                };
                if self.record {
                    if to_server {
                        self.client_datagrams.push(bytes.clone());
                    } else {
                        self.server_datagrams.push(bytes.clone());
                    }
                }
                self.put_on_wire(to_server, from, bytes);
            }
        }
    }

    pub fn put_on_wire(&mut self, to_server: bool, from: SocketAddr, bytes: Vec<u8>) {
        let link = self.link;
        if self.rng.gen_bool(link.loss) {
            self.lost_datagrams += 1;
            return;
        }
        let copies = if self.rng.gen_bool(link.duplicate) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let mut delay = u64::from(link.latency_ms);
            if link.jitter_ms > 0 {
                delay += self.rng.gen_range(0..=u64::from(link.jitter_ms));
            }
            if self.rng.gen_bool(link.reorder) {
                delay += u64::from(link.latency_ms);
            }
            self.seq += 1;
            self.network.push(Reverse(InFlight {
                deliver_at: self.now + delay,
                seq: self.seq,
                to_server,
                from,
                bytes: bytes.clone(),
            }));
        }
    }

    /// Delivers a datagram straight to the server now, as an attacker on the path would.
    pub fn inject_to_server(&mut self, from: SocketAddr, bytes: &[u8]) {
        let now = self.clock();
        self.server.handle_datagram(now, from, addr(SERVER), bytes);
        self.drain_events();
    }

    /// Delivers a datagram straight to the client now.
    pub fn inject_to_client(&mut self, bytes: &[u8]) {
        let now = self.clock();
        self.client
            .handle_datagram(now, addr(SERVER), addr(CLIENT), bytes);
        self.drain_events();
    }

    /// Delivers a datagram straight to the client now, from any address.
    pub fn inject_to_client_from(&mut self, from: SocketAddr, bytes: &[u8]) {
        let now = self.clock();
        self.client.handle_datagram(now, from, addr(CLIENT), bytes);
        self.drain_events();
    }

    /// Collects what the endpoints queued after a command applied to them directly (`close`,
    /// `shutdown`, `send`), without moving time.
    pub fn drain(&mut self) {
        self.drain_events();
    }

    fn drain_events(&mut self) {
        while let Some(event) = self.server.poll_event() {
            if let EndpointEvent::Accepted { handle, .. } = event {
                self.server_conn.get_or_insert(handle);
            }
            self.server_events.push(event);
        }
        while let Some(event) = self.client.poll_event() {
            self.client_events.push(event);
        }
        while let Some(event) = self.server.poll_security_event() {
            self.server_security.push(event);
        }
        while let Some(event) = self.client.poll_security_event() {
            self.client_security.push(event);
        }
    }

    /// Advances virtual time to the next thing that happens and processes it. Returns false
    /// when nothing is scheduled at all.
    pub fn step(&mut self) -> bool {
        self.step_until(u64::MAX)
    }

    /// [`Pair::step`], but virtual time stops at `limit`: an idle session's next deadline may be
    /// its idle timeout, far beyond the time a test means to advance.
    pub fn step_until(&mut self, limit: u64) -> bool {
        self.collect();
        let mut next: Option<u64> = self.network.peek().map(|Reverse(d)| d.deliver_at);
        let now32 = self.clock();
        for endpoint in [&mut self.client, &mut self.server] {
            if let Some(deadline) = endpoint.poll_timeout() {
                let delta = u64::from(deadline.wrapping_sub(now32));
                let at = if (deadline.wrapping_sub(now32) as i32) < 0 {
                    self.now
                } else {
                    self.now + delta
                };
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        }
        let Some(at) = next else {
            return false;
        };
        self.now = self.now.max(at.min(limit));
        let now = self.clock();
        while let Some(Reverse(d)) = self.network.peek() {
            if d.deliver_at > self.now {
                break;
            }
            let Reverse(d) = self.network.pop().unwrap();
            self.delivered_datagrams += 1;
            if d.to_server {
                self.server
                    .handle_datagram(now, d.from, addr(SERVER), &d.bytes);
            } else {
                self.client
                    .handle_datagram(now, d.from, addr(CLIENT), &d.bytes);
            }
        }
        self.client.handle_timeout(now);
        self.server.handle_timeout(now);
        self.drain_events();
        self.collect();
        true
    }

    /// Sends `sent` from the client, has the server echo every message it reads, and returns
    /// what came back once as many arrived (within 300 s of virtual time).
    pub fn echo(&mut self, sent: &[Vec<u8>]) -> Vec<Vec<u8>> {
        for m in sent {
            let now = self.clock();
            self.client.send(now, self.client_conn, m).unwrap();
        }
        let mut echoed = Vec::new();
        assert!(self.run_until(300_000, |p| {
            let mut at_server = Vec::new();
            p.server_recv_all(&mut at_server);
            if let Some(conn) = p.server_conn {
                for m in at_server {
                    let now = p.clock();
                    p.server.send(now, conn, &m).unwrap();
                }
            }
            p.client_recv_all(&mut echoed);
            echoed.len() >= sent.len()
        }));
        echoed
    }

    /// Runs until `until` says stop or virtual time passes `limit_ms`.
    pub fn run_until(&mut self, limit_ms: u64, mut until: impl FnMut(&mut Self) -> bool) -> bool {
        let deadline = self.now + limit_ms;
        while self.now <= deadline {
            if until(self) {
                return true;
            }
            if !self.step_until(deadline + 1) {
                return until(self);
            }
        }
        false
    }

    /// Advances virtual time by `ms`, processing everything on the way.
    pub fn advance(&mut self, ms: u64) {
        let target = self.now + ms;
        while self.now < target {
            let before = self.now;
            if !self.step_until(target) || self.now > target {
                break;
            }
            if self.now == before && self.network.is_empty() {
                // Only timers due now; let time move on.
                self.now += 1;
            }
        }
        self.now = self.now.max(target);
        let now = self.clock();
        self.client.handle_timeout(now);
        self.server.handle_timeout(now);
        self.drain_events();
    }

    /// Sends "hello" from the client and runs until the server has read it, so the server
    /// session exists.
    pub fn establish(&mut self) {
        let now = self.clock();
        self.client.send(now, self.client_conn, b"hello").unwrap();
        let mut got = Vec::new();
        assert!(self.run_until(1_000, |p| {
            p.server_recv_all(&mut got);
            !got.is_empty()
        }));
    }

    /// Reads every ready message on the server connection.
    pub fn server_recv_all(&mut self, out: &mut Vec<Vec<u8>>) {
        let Some(conn) = self.server_conn else { return };
        recv_all(&mut self.server, conn, out);
    }

    pub fn client_recv_all(&mut self, out: &mut Vec<Vec<u8>>) {
        recv_all(&mut self.client, self.client_conn, out);
    }
}

pub fn recv_all(endpoint: &mut Endpoint, conn: ConnectionHandle, out: &mut Vec<Vec<u8>>) {
    while let Some(size) = endpoint.peek_size(conn) {
        let mut buf = vec![0u8; size];
        let n = endpoint.recv(conn, &mut buf).unwrap();
        buf.truncate(n);
        out.push(buf);
    }
    // Clears the readable signal so the next arrival is announced again.
    let _ = endpoint.recv(conn, &mut []);
}

/// Message `i` of a run: its size follows a game-like mix (mostly small, some up to 64 KiB)
/// and its bytes encode `i`, so a duplicate or reordering cannot go unnoticed.
pub fn message(rng: &mut StdRng, i: u32, max: usize) -> Vec<u8> {
    let size = match rng.gen_range(0..100) {
        0..=79 => rng.gen_range(1..=256),
        80..=97 => rng.gen_range(257..=4096),
        _ => rng.gen_range(4097..=max),
    };
    let mut bytes = vec![0u8; size];
    let tag = i.to_le_bytes();
    for (j, b) in bytes.iter_mut().enumerate() {
        *b = tag[j % 4] ^ (j as u8).wrapping_mul(31);
    }
    bytes
}

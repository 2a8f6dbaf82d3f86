//! What JavaScript holds of a connection it paused: the I/O thread's turns are run by the test,
//! so that the JavaScript thread's part (ask for the pause, go on taking the ring) lands exactly
//! in the middle of a turn, where a busy machine puts it now and then.

use super::commands::{CONTROL, DELIVERY_PAUSE, DELIVERY_RESUME};
use super::*;
use crate::delivery::RecordKind;
use crossbeam_channel::{unbounded, Sender};
use kcpwatch_proto::EndpointConfig;
use std::sync::atomic::AtomicBool;

/// The ring's limit (`deliveryLimit`).
const LIMIT: usize = 4 * 1024;
const MESSAGE: usize = 200;
/// A message's record: its header, then its bytes.
const RECORD: usize = 9 + MESSAGE;
/// Enough that the engine holds more than a ring's worth once the ring is full.
const COUNT: usize = 80;
const PATIENCE: Duration = Duration::from_secs(10);

/// A server's I/O state, not running: the test runs its turns.
struct Server {
    io: IoThread,
    poll: Poll,
    shared: Arc<Shared>,
    commands: Sender<Command>,
}

impl Server {
    fn new() -> Self {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_nonblocking(true).unwrap();
        let local = socket.local_addr().unwrap();
        let poll = Poll::new().unwrap();
        let shared = Arc::new(Shared {
            waker: mio::Waker::new(poll.registry(), WAKER).unwrap(),
            delivery: DeliveryQueue::new(LIMIT, Box::new(|| {})),
            paused: AtomicBool::new(false),
            events: None,
            datagram_backlog: Default::default(),
            stages: None,
            final_stats: Mutex::new(None),
            reception: Default::default(),
            io: Mutex::new(None),
        });
        let (commands, receiver) = unbounded();
        let mut config = RuntimeConfig::new(local, EndpointConfig::default());
        config.delivery_limit = LIMIT;
        let bound = BoundSocket {
            poll,
            socket: mio::net::UdpSocket::from_std(socket),
            local,
        };
        let (io, poll) = IoThread::new(bound, config, receiver, shared.clone()).unwrap();
        Self {
            io,
            poll,
            shared,
            commands,
        }
    }

    /// One turn, after waiting a little for a datagram (the peer's thread sends them).
    fn turn(&mut self) {
        let mut events = Events::with_capacity(8);
        let _ = self.poll.poll(&mut events, Some(Duration::from_millis(2)));
        self.io.socket_readable = true;
        assert!(!self.io.turn(), "the server shut down");
    }
}

/// The client: a sans-IO endpoint on a loopback socket, driven by the test between turns.
struct Client {
    socket: std::net::UdpSocket,
    local: SocketAddr,
    endpoint: Endpoint,
    started: Instant,
    conn: ConnectionHandle,
}

impl Client {
    fn connect(server: SocketAddr) -> Self {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_nonblocking(true).unwrap();
        let local = socket.local_addr().unwrap();
        let config = EndpointConfig {
            accept_inbound: false,
            ..EndpointConfig::default()
        };
        let mut endpoint = Endpoint::new(config, 0).unwrap();
        let conn = endpoint.connect(0, server, local, 7, None).unwrap();
        Self {
            socket,
            local,
            endpoint,
            started: Instant::now(),
            conn,
        }
    }

    fn now(&self) -> Millis {
        self.started.elapsed().as_millis() as Millis
    }

    /// Takes in what the server sent, runs the timers and sends what is owed.
    fn step(&mut self) {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = self.socket.recv_from(&mut buf) {
            let now = self.now();
            self.endpoint
                .handle_datagram(now, from, self.local, &buf[..n]);
        }
        while self.endpoint.poll_event().is_some() {}
        let now = self.now();
        self.endpoint.handle_timeout(now);
        self.endpoint.flush(now);
        for t in self.endpoint.transmits().iter() {
            self.socket.send_to(t.data, t.destination).unwrap();
        }
        self.endpoint.clear_transmits();
    }

    /// Whether the server acknowledged everything sent.
    fn all_acked(&self) -> bool {
        self.endpoint.waiting_bytes(self.conn) == Some(0)
    }
}

/// A send batch entry: handle, length, flags, bytes.
fn entry(batch: &mut Vec<u8>, handle: u32, len: u32, flags: u8, bytes: &[u8]) {
    batch.extend_from_slice(&handle.to_le_bytes());
    batch.extend_from_slice(&len.to_le_bytes());
    batch.push(flags);
    batch.extend_from_slice(bytes);
}

/// The records of `kind` in `records`, as (handle, payload).
fn records_of(records: &[u8], kind: RecordKind) -> Vec<(u32, Vec<u8>)> {
    let mut found = Vec::new();
    let mut rest = records;
    while rest.len() >= 9 {
        let handle = u32::from_le_bytes(rest[1..5].try_into().unwrap());
        let len = u32::from_le_bytes(rest[5..9].try_into().unwrap()) as usize;
        if rest[0] == kind as u8 {
            found.push((handle, rest[9..9 + len].to_vec()));
        }
        rest = &rest[9 + len..];
    }
    found
}

/// Message bytes (records included) in `taken`.
fn message_bytes(taken: &[u8]) -> usize {
    records_of(taken, RecordKind::Message)
        .iter()
        .map(|(_, m)| 9 + m.len())
        .sum()
}

#[test]
fn a_pause_asked_for_during_a_turn_lets_at_most_one_ring_of_messages_follow() {
    let mut server = Server::new();
    let mut client = Client::connect(server.io.local);
    for i in 0..COUNT {
        let mut message = vec![i as u8; MESSAGE];
        message[..4].copy_from_slice(&(i as u32).to_le_bytes());
        let now = client.now();
        client.endpoint.send(now, client.conn, &message).unwrap();
    }

    // JavaScript takes nothing yet: the ring fills up to its limit, and the rest of the
    // messages wait in the server's engine, every one of them acknowledged to the client.
    let deadline = Instant::now() + PATIENCE;
    while !(server.shared.delivery.room() == 0 && client.all_acked()) {
        assert!(Instant::now() < deadline, "the messages did not arrive");
        client.step();
        server.turn();
    }
    assert_eq!(server.io.readable.len(), 1, "the engine holds the rest");
    let conn = server.io.readable[0];

    // The JavaScript thread's part, in the middle of the next turn, after that turn took its
    // commands: a take crossed maxReceiveQueueBytes, so it asks for the pause (queued: the I/O
    // thread is busy) and then takes the ring, as its drain loop does.
    let taken = Arc::new(Mutex::new(Vec::new()));
    let (shared, commands, into) = (
        server.shared.clone(),
        server.commands.clone(),
        taken.clone(),
    );
    server.io.after_commands = Some(Box::new(move || {
        let mut pause = Vec::new();
        entry(
            &mut pause,
            conn.to_bits(),
            0,
            CONTROL | (DELIVERY_PAUSE << 4),
            &[],
        );
        commands.send(Command::Send(pause)).unwrap();
        into.lock().unwrap().extend(shared.delivery.take());
    }));
    server.turn();
    let in_ring_at_pause = message_bytes(&taken.lock().unwrap());
    assert!(
        in_ring_at_pause >= LIMIT,
        "the ring was full: {in_ring_at_pause}"
    );
    // The next turns apply the pause; JavaScript keeps taking what comes.
    for _ in 0..5 {
        taken.lock().unwrap().extend(server.shared.delivery.take());
        server.turn();
    }
    taken.lock().unwrap().extend(server.shared.delivery.take());
    let after_pause = message_bytes(&taken.lock().unwrap());
    assert!(
        after_pause <= LIMIT + RECORD,
        "after the pause was asked for, JavaScript took {after_pause} bytes of messages: \
         more than one ring ({LIMIT} and one message)"
    );

    // Resumed, every message comes, once and in order.
    let mut resume = Vec::new();
    entry(
        &mut resume,
        conn.to_bits(),
        0,
        CONTROL | (DELIVERY_RESUME << 4),
        &[],
    );
    server.commands.send(Command::Send(resume)).unwrap();
    let deadline = Instant::now() + PATIENCE;
    while !server.io.readable.is_empty() {
        assert!(Instant::now() < deadline, "the rest did not come");
        server.turn();
        taken.lock().unwrap().extend(server.shared.delivery.take());
    }
    let order: Vec<u32> = records_of(&taken.lock().unwrap(), RecordKind::Message)
        .iter()
        .map(|(_, m)| u32::from_le_bytes(m[..4].try_into().unwrap()))
        .collect();
    assert_eq!(order, (0..COUNT as u32).collect::<Vec<_>>());
}

//! Reception handed to the event loop while the I/O thread sleeps (`io_thread::reception`).
//! The event loop is played by the test: it waits for the runtime's notification, starts
//! watching the socket when the runtime asks, and runs `Runtime::receive_on_loop` when the
//! socket is readable, as the binding's libuv watcher does. The peer is a sans-IO endpoint on
//! a loopback socket. Every message reaches the records once and in order whichever thread
//! read its datagram, and an event loop that stops reading does not stop the connection.

#![cfg(unix)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use common::{Peer, PATIENCE};
use kcpwatch::{LoopReception, RecordKind, Runtime, RuntimeConfig};
use kcpwatch_proto::EndpointConfig;

/// The runtime under test, a client of `Peer`, and the flag its notification raises.
fn runtime() -> (Arc<Runtime>, Arc<AtomicBool>) {
    let notified = Arc::new(AtomicBool::new(false));
    let raise = notified.clone();
    let config = RuntimeConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        EndpointConfig {
            accept_inbound: false,
            ..EndpointConfig::default()
        },
    );
    let notify = Box::new(move || raise.store(true, Ordering::Release));
    let runtime = Runtime::start(config, notify, Box::new(|| {})).unwrap();
    runtime.enable_loop_reception();
    (Arc::new(runtime), notified)
}

/// The event loop as the binding runs it, one step at a time.
struct EventLoop {
    runtime: Arc<Runtime>,
    notified: Arc<AtomicBool>,
    watching: bool,
    messages: Vec<Vec<u8>>,
}

impl EventLoop {
    /// One turn: takes the records if notified (starting to watch if the runtime handed
    /// reception over), then receives if watching and the socket is readable.
    fn step(&mut self) {
        if self.notified.swap(false, Ordering::AcqRel) {
            if self.runtime.loop_watch_wanted() {
                self.watching = true;
            }
            self.take_records();
        }
        if self.watching && readable(self.runtime.socket_fd()) {
            if self.runtime.receive_on_loop() == LoopReception::Stop {
                self.watching = false;
            }
            // The turn's records come without a notification: the watcher hands them over.
            if self.runtime.records_waiting() {
                self.take_records();
            }
        }
    }

    fn take_records(&mut self) {
        let records = self.runtime.take_records();
        let mut at = 0;
        while at < records.len() {
            let kind = records[at];
            let len = u32::from_le_bytes(records[at + 5..at + 9].try_into().unwrap()) as usize;
            let body = &records[at + 9..at + 9 + len];
            if kind == RecordKind::Message as u8 {
                self.messages.push(body.to_vec());
            }
            at += 9 + len;
        }
    }
}

/// Whether the descriptor is readable now (level-triggered, as libuv's poll handle).
fn readable(fd: std::os::fd::RawFd) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, no timeout.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    n == 1 && pfd.revents & libc::POLLIN != 0
}

/// A connected pair, with the runtime's event loop.
fn connected() -> (EventLoop, Peer) {
    let (runtime, notified) = runtime();
    let mut peer = Peer::new();
    let info = runtime.connect(peer.local, 7, Vec::new(), None).unwrap();
    runtime
        .send_batch(&common::batch(info.handle, b"hello"))
        .unwrap();
    peer.until("the first message", |p| p.messages.len() == 1);
    let event_loop = EventLoop {
        runtime,
        notified,
        watching: false,
        messages: Vec::new(),
    };
    (event_loop, peer)
}

fn message(i: usize) -> Vec<u8> {
    format!("m{i}").into_bytes()
}

#[test]
fn messages_read_on_the_event_loop_arrive_once_and_in_order() {
    let (mut event_loop, mut peer) = connected();
    // One at a time, each taken before the next: between them the I/O thread sleeps and hands
    // reception over, so the event loop reads. Until 20 turns did, within bounds.
    let deadline = Instant::now() + PATIENCE;
    let mut sent = 0;
    while event_loop.runtime.stats().unwrap().receives_on_loop < 20 {
        assert!(
            Instant::now() < deadline && sent < 2_000,
            "only {} of {sent} receptions ran on the event loop",
            event_loop.runtime.stats().unwrap().receives_on_loop
        );
        peer.send(&message(sent));
        sent += 1;
        while event_loop.messages.len() < sent {
            assert!(Instant::now() < deadline, "message {sent} never arrived");
            event_loop.step();
            peer.pump();
        }
    }
    // A burst: more than one turn's batches, so the event loop gives reception back.
    for i in sent..sent + 2_000 {
        peer.send(&message(i));
    }
    sent += 2_000;
    while event_loop.messages.len() < sent {
        assert!(Instant::now() < deadline, "the burst never arrived");
        event_loop.step();
        peer.pump();
    }
    let expected: Vec<Vec<u8>> = (0..sent).map(message).collect();
    assert_eq!(event_loop.messages, expected);
    let stats = event_loop.runtime.stats().unwrap();
    assert!(stats.receptions_handed >= 1, "{stats:?}");
    event_loop.runtime.shutdown();
}

#[test]
fn an_event_loop_that_stops_reading_loses_reception_and_nothing_else() {
    let (mut event_loop, mut peer) = connected();
    // Until reception is with the event loop.
    let deadline = Instant::now() + PATIENCE;
    while !event_loop.watching {
        assert!(Instant::now() < deadline, "reception never handed over");
        event_loop.step();
        peer.pump();
    }
    // The event loop stops (a handler blocks it). The I/O thread sees datagrams wait unread
    // and reads them itself: the peer's messages are acknowledged.
    for i in 0..10 {
        peer.send(&message(i));
    }
    let conn = peer.conn.unwrap();
    while peer.endpoint.waiting_bytes(conn) != Some(0) {
        assert!(
            Instant::now() < deadline,
            "nothing acknowledged while the event loop was stopped: {:?}",
            event_loop.runtime.stats().unwrap()
        );
        peer.pump();
    }
    let stats = event_loop.runtime.stats().unwrap();
    assert!(stats.loop_receive_stalls >= 1, "{stats:?}");
    // When it runs again, it has every message, once and in order.
    while event_loop.messages.len() < 10 {
        assert!(Instant::now() < deadline, "the messages never arrived");
        event_loop.step();
        peer.pump();
    }
    assert_eq!(
        event_loop.messages,
        (0..10).map(message).collect::<Vec<_>>()
    );
    event_loop.runtime.shutdown();
}

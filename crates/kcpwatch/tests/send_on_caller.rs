//! Send batches the JavaScript thread hands over while the I/O thread sleeps are applied and
//! sent on the caller's thread (`Runtime::send_batch`). The peer here is a sans-IO endpoint
//! driven by the test over a real loopback socket: it sees every message once and in order,
//! whichever thread sent it, and what the caller sent is still retransmitted by the I/O
//! thread's timers when the peer does not acknowledge it.

mod common;

use std::time::Instant;

use common::{batch, Peer, PATIENCE};
use kcpwatch::{Runtime, RuntimeConfig};
use kcpwatch_proto::EndpointConfig;

/// The runtime under test, a client of `Peer`.
fn runtime() -> Runtime {
    let config = RuntimeConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        EndpointConfig {
            accept_inbound: false,
            ..EndpointConfig::default()
        },
    );
    Runtime::start(config, Box::new(|| {}), Box::new(|| {})).unwrap()
}

#[test]
fn sends_while_the_io_thread_sleeps_leave_from_the_caller_once_and_in_order() {
    let runtime = runtime();
    let mut peer = Peer::new();
    let info = runtime.connect(peer.local, 7, Vec::new(), None).unwrap();

    // One message at a time, each answered before the next: between them the I/O thread has
    // nothing to do and sleeps, so most go out from this thread. Until 20 did, within bounds.
    let deadline = Instant::now() + PATIENCE;
    let mut sent = 0u32;
    while runtime.stats().unwrap().sends_on_caller < 20 {
        assert!(
            Instant::now() < deadline && sent < 2_000,
            "only {} of {sent} sends ran on the caller",
            runtime.stats().unwrap().sends_on_caller
        );
        runtime
            .send_batch(&batch(info.handle, format!("m{sent}").as_bytes()))
            .unwrap();
        sent += 1;
        peer.until("the message", |p| p.messages.len() == sent as usize);
    }
    // A batch larger than SEND_ON_CALLER_MAX_BYTES is a busy event loop's: always queued.
    let before = runtime.stats().unwrap().sends_on_caller;
    let first_big = sent;
    let big = vec![b'b'; kcpwatch::runtime::SEND_ON_CALLER_MAX_BYTES];
    for _ in 0..5 {
        runtime.send_batch(&batch(info.handle, &big)).unwrap();
        sent += 1;
        peer.until("the large message", |p| p.messages.len() == sent as usize);
    }
    assert_eq!(runtime.stats().unwrap().sends_on_caller, before);
    // And a burst, queued or not as it falls.
    for i in sent..sent + 200 {
        runtime
            .send_batch(&batch(info.handle, format!("m{i}").as_bytes()))
            .unwrap();
    }
    sent += 200;
    peer.until("the burst", |p| p.messages.len() >= sent as usize);

    let expected: Vec<Vec<u8>> = (0..sent)
        .map(|i| match i {
            i if i >= first_big && i < first_big + 5 => big.clone(),
            i => format!("m{i}").into_bytes(),
        })
        .collect();
    assert_eq!(peer.messages, expected);
    runtime.shutdown();
}

#[test]
fn what_the_caller_sent_is_retransmitted_by_the_io_thread_when_unacknowledged() {
    let runtime = runtime();
    let mut peer = Peer::new();
    let info = runtime.connect(peer.local, 7, Vec::new(), None).unwrap();
    runtime.send_batch(&batch(info.handle, b"open")).unwrap();
    peer.until("the first message", |p| p.messages.len() == 1);

    // A send that ran on the caller (retried until one did, within bounds)...
    let deadline = Instant::now() + PATIENCE;
    let mut attempt = 0u32;
    let message = loop {
        assert!(Instant::now() < deadline, "no send ran on the caller");
        let before = runtime.stats().unwrap().sends_on_caller;
        let message = format!("lost {attempt}").into_bytes();
        runtime.send_batch(&batch(info.handle, &message)).unwrap();
        attempt += 1;
        if runtime.stats().unwrap().sends_on_caller > before {
            break message;
        }
        peer.until("a queued message", |p| {
            p.messages.len() == attempt as usize + 1
        });
    };
    // ...whose datagram the peer never takes in: the same bytes come again, from the I/O
    // thread's retransmission timer.
    let deadline = Instant::now() + PATIENCE;
    let first = loop {
        assert!(
            Instant::now() < deadline,
            "the caller's datagram never came"
        );
        if let Some((datagram, _)) = peer.datagram() {
            if datagram.windows(message.len()).any(|w| w == message) {
                break datagram;
            }
        }
    };
    loop {
        assert!(Instant::now() < deadline, "never retransmitted");
        if let Some((datagram, _)) = peer.datagram() {
            if datagram.windows(message.len()).any(|w| w == message) {
                // The same segment (KCP header: sn at 12..16, then una, len, data), sent again
                // with a new timestamp.
                assert_eq!(datagram[12..16], first[12..16]);
                assert_eq!(datagram[20..], first[20..]);
                break;
            }
        }
    }
    runtime.shutdown();
}

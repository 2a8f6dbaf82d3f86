//! A secure-mode endpoint that shuts down tells its peers: each session's DISCONNECT leaves
//! before the I/O thread stops, so the peer closes it as `peer_closed` at once instead of
//! waiting for its idle timeout. A client endpoint with several sessions to one server is the
//! case of `createClient().close()`.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use kcpwatch::{RecordKind, Runtime, RuntimeConfig};
use kcpwatch_proto::{CloseReason, EndpointConfig, Mode};

const PATIENCE: Duration = Duration::from_secs(5);

fn secure(accept_inbound: bool) -> EndpointConfig {
    // The server's static key, which the client pins (secure mode version 2).
    let key = kcpwatch_proto::secure::StaticKey::from_private([0x5A; 32]);
    EndpointConfig {
        mode: Mode::Secure,
        accept_inbound,
        secret: [7; 32],
        server_key: Some(*key.public()),
        server_keys: vec![key],
        ..EndpointConfig::default()
    }
}

fn start(
    config: RuntimeConfig,
    client_of: Option<std::net::SocketAddr>,
) -> (Runtime, mpsc::Receiver<()>) {
    let (tx, rx) = mpsc::channel();
    let notify = Box::new(move || {
        let _ = tx.send(());
    });
    let runtime = match client_of {
        Some(remote) => Runtime::start_client(remote, config, notify, Box::new(|| {})),
        None => Runtime::start(config, notify, Box::new(|| {})),
    }
    .unwrap();
    (runtime, rx)
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

/// Collects records until `done` holds for everything collected so far.
fn collect_until(
    runtime: &Runtime,
    notified: &mpsc::Receiver<()>,
    all: &mut Vec<(u8, u32, u8)>,
    done: impl Fn(&[(u8, u32, u8)]) -> bool,
    what: &str,
) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        all.extend(records(&runtime.take_records()));
        if done(all) {
            return;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "timed out waiting for {what}; got {all:?}");
        let _ = notified.recv_timeout(left.min(Duration::from_millis(50)));
    }
}

fn count(all: &[(u8, u32, u8)], kind: RecordKind) -> usize {
    all.iter().filter(|r| r.0 == kind as u8).count()
}

const SESSIONS: usize = 5;

fn secure_server() -> (Runtime, mpsc::Receiver<()>) {
    start(
        RuntimeConfig::new("127.0.0.1:0".parse().unwrap(), secure(true)),
        None,
    )
}

/// A client endpoint with `SESSIONS` sessions to `server`, each established.
fn established_client(server: &Runtime) -> Runtime {
    let server_addr = server.local_addr();
    let (client, client_notified) = start(
        RuntimeConfig::new("127.0.0.1:0".parse().unwrap(), secure(false)),
        Some(server_addr),
    );
    for _ in 0..SESSIONS {
        client.connect(server_addr, 0, Vec::new(), None).unwrap();
    }
    let mut at_client = Vec::new();
    collect_until(
        &client,
        &client_notified,
        &mut at_client,
        |r| count(r, RecordKind::Established) == SESSIONS,
        "the handshakes",
    );
    client
}

#[test]
fn a_client_endpoint_shutting_down_closes_each_session_at_the_server_as_peer_closed() {
    let (server, server_notified) = secure_server();
    let client = established_client(&server);
    let mut at_server = Vec::new();
    collect_until(
        &server,
        &server_notified,
        &mut at_server,
        |r| count(r, RecordKind::Accepted) == SESSIONS,
        "the sessions at the server",
    );

    client.shutdown();
    let closes = records(&client.take_records());
    assert_eq!(count(&closes, RecordKind::Closed), SESSIONS);
    assert!(closes
        .iter()
        .filter(|r| r.0 == RecordKind::Closed as u8)
        .all(|r| r.2 == CloseReason::Shutdown.code()));

    // Well inside the server's 30 s idle timeout: the DISCONNECTs did it.
    collect_until(
        &server,
        &server_notified,
        &mut at_server,
        |r| count(r, RecordKind::Closed) == SESSIONS,
        "the server's closes",
    );
    assert!(at_server
        .iter()
        .filter(|r| r.0 == RecordKind::Closed as u8)
        .all(|r| r.2 == CloseReason::PeerClosed.code()));
    server.shutdown();
}

/// A client whose confirmation of the ACCEPT and whose DISCONNECT the server reads in one turn:
/// the server's records still say it was accepted before it closed. The server's event loop is
/// played by nobody: reception is handed to it and never read, so the server's I/O thread reads
/// only when it takes reception back from the stalled loop, everything waiting at once.
#[test]
fn a_client_confirming_and_leaving_in_one_server_turn_is_accepted_then_closed() {
    let (server, server_notified) = secure_server();
    server.enable_loop_reception();
    let deadline = Instant::now() + PATIENCE;
    while server.stats().unwrap().receptions_handed == 0 {
        assert!(Instant::now() < deadline, "reception never handed over");
        std::thread::yield_now();
    }
    let client = established_client(&server);
    // The confirmations left with the ACCEPTs' arrival; the DISCONNECTs follow at once.
    client.shutdown();

    let mut at_server = Vec::new();
    collect_until(
        &server,
        &server_notified,
        &mut at_server,
        |r| count(r, RecordKind::Closed) == SESSIONS,
        "the server's closes",
    );
    let stats = server.stats().unwrap();
    assert!(stats.loop_receive_stalls >= 1, "{stats:?}");
    for close in at_server.iter().filter(|r| r.0 == RecordKind::Closed as u8) {
        let accepted = at_server
            .iter()
            .position(|r| r.0 == RecordKind::Accepted as u8 && r.1 == close.1);
        let closed = at_server.iter().position(|r| r == close);
        assert!(
            accepted.is_some() && accepted < closed,
            "connection {} closed without being accepted first: {at_server:?}",
            close.1
        );
    }
    server.shutdown();
}

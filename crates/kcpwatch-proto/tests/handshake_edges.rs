//! Edges of the secure handshake an outside user found (docs/protocol.md, "REJECT" and
//! "Handshake confirmation"):
//!
//! - a server shutting down while the application checks a token answers REJECT `shutdown`,
//!   not `auth_rejected`, and records the attempt as failed for `shutdown`;
//! - a server announces a connection only when the client's first authenticated session
//!   datagram after the ACCEPT confirms it: a client that gave up, or whose ACCEPT was lost
//!   before it went away, never becomes a connection (a "ghost"); the attempt fails as
//!   `handshake_abandoned` after the handshake timeout;
//! - a client that gave up is not revived by a late ACCEPT.

mod common;

use common::{secure_configs, Link, Pair};
use kcpwatch_proto::secure::wire::TYPE_ACCEPT;
use kcpwatch_proto::{CloseReason, EndpointEvent, Preset, SecurityEvent, SessionConfig};

fn session() -> SessionConfig {
    SessionConfig {
        idle_timeout_ms: 30_000,
        ..Preset::Game.config()
    }
}

/// A pair whose server checks tokens and whose client gives up after `client_timeout_ms`.
fn auth_pair(seed: u64, client_timeout_ms: u32, link: Link) -> Pair {
    let (mut server, mut client) = secure_configs(seed, session());
    server.require_auth = true;
    server.auth_timeout_ms = 5_000;
    server.handshake_timeout_ms = 2_000;
    client.handshake_timeout_ms = client_timeout_ms;
    let mut p = Pair::with_configs(server, client, link, 1_000);
    p.record = true;
    p
}

fn auth_request(p: &Pair) -> Option<u64> {
    p.server_events.iter().find_map(|e| match e {
        EndpointEvent::AuthRequest { id, .. } => Some(*id),
        _ => None,
    })
}

fn server_failures(p: &Pair) -> Vec<(&'static str, &'static str)> {
    p.server_security
        .iter()
        .filter_map(|e| match e {
            SecurityEvent::ConnectionFailed(f) => Some((f.reason.as_str(), f.rule.as_str())),
            _ => None,
        })
        .collect()
}

fn server_announced(p: &Pair) -> bool {
    p.server_events
        .iter()
        .any(|e| matches!(e, EndpointEvent::Accepted { .. }))
        || p.server_security
            .iter()
            .any(|e| matches!(e, SecurityEvent::ConnectionEstablished(_)))
}

fn client_established(p: &Pair) -> bool {
    p.client_events
        .iter()
        .any(|e| matches!(e, EndpointEvent::Established { .. }))
}

fn client_failure(p: &Pair) -> Option<&'static str> {
    p.client_events.iter().find_map(|e| match e {
        EndpointEvent::ConnectFailed { reason, .. } => Some(reason.as_str()),
        _ => None,
    })
}

#[test]
fn a_shutdown_during_authentication_is_reported_as_shutdown_not_as_a_refusal() {
    let mut p = auth_pair(70, 10_000, Link::clean());
    assert!(p.run_until(2_000, |p| auth_request(p).is_some()));
    let now = p.clock();
    p.server.shutdown(now);
    p.drain();
    assert!(p.run_until(2_000, |p| client_failure(p).is_some()));
    assert_eq!(client_failure(&p), Some("shutdown"));
    assert_eq!(server_failures(&p), [("shutdown", "shutdown")]);
    let stats = p.server.stats();
    assert_eq!(stats.failed, 1);
    assert_eq!(
        stats.failed_by(kcpwatch_proto::events::FailReason::AuthRejected),
        0
    );
    // The graceful shutdown says the same.
    let mut p = auth_pair(71, 10_000, Link::clean());
    assert!(p.run_until(2_000, |p| auth_request(p).is_some()));
    let now = p.clock();
    p.server.shutdown_gracefully(now, None);
    p.drain();
    assert!(p.run_until(2_000, |p| client_failure(p).is_some()));
    assert_eq!(client_failure(&p), Some("shutdown"));
    assert_eq!(server_failures(&p), [("shutdown", "shutdown")]);
}

#[test]
fn a_client_that_gave_up_during_authentication_never_becomes_a_connection() {
    // The client gives up after 200 ms; the application accepts its token at 300 ms.
    let mut p = auth_pair(72, 200, Link::clean());
    assert!(p.run_until(2_000, |p| auth_request(p).is_some()));
    assert!(p.run_until(1_000, |p| client_failure(p).is_some()));
    assert_eq!(client_failure(&p), Some("handshake_timeout"));
    p.advance(100);
    let id = auth_request(&p).unwrap();
    assert!(p.server.resolve_auth(id, true));
    p.drain();
    // The ACCEPT goes out (the server cannot know yet) and is dropped by the client.
    p.advance(100);
    assert!(p.server_datagrams.iter().any(|d| d[0] == TYPE_ACCEPT));
    assert!(!client_established(&p), "a late ACCEPT revived the client");
    assert!(!server_announced(&p), "the server announced a ghost");
    // Past the server's handshake timeout (2 s) the attempt fails, counted and recorded.
    p.advance(2_500);
    assert!(!server_announced(&p));
    assert_eq!(
        server_failures(&p),
        [("handshake_abandoned", "handshake_abandoned")]
    );
    assert_eq!(p.server.connection_count(), 0);
    assert_eq!(p.server.stats().failed, 1);
    assert!(
        !p.server_events
            .iter()
            .any(|e| matches!(e, EndpointEvent::Closed { .. })),
        "an unannounced session must not be closed as a connection"
    );
}

#[test]
fn a_lost_accept_then_a_client_that_went_away_leaves_no_connection() {
    let mut p = auth_pair(73, 10_000, Link::clean());
    assert!(p.run_until(2_000, |p| auth_request(p).is_some()));
    let id = auth_request(&p).unwrap();
    assert!(p.server.resolve_auth(id, true));
    p.drain();
    // The ACCEPT is lost on the way.
    let now = p.clock();
    p.server.flush(now);
    assert!(p
        .server
        .transmits()
        .iter()
        .any(|t| t.data[0] == TYPE_ACCEPT));
    p.server.clear_transmits();
    // The player closes the game before its HELLO is retransmitted.
    let now = p.clock();
    p.client.close(now, p.client_conn);
    p.drain();
    p.advance(5_000);
    assert!(!server_announced(&p));
    assert_eq!(
        server_failures(&p),
        [("handshake_abandoned", "handshake_abandoned")]
    );
    assert_eq!(p.server.connection_count(), 0);
}

#[test]
fn a_late_accept_does_not_revive_a_client_that_closed() {
    let mut p = auth_pair(74, 10_000, Link::clean());
    assert!(p.run_until(2_000, |p| auth_request(p).is_some()));
    let id = auth_request(&p).unwrap();
    assert!(p.server.resolve_auth(id, true));
    p.drain();
    let now = p.clock();
    p.server.flush(now);
    let accept: Vec<u8> = p
        .server
        .transmits()
        .iter()
        .find(|t| t.data[0] == TYPE_ACCEPT)
        .map(|t| t.data.to_vec())
        .unwrap();
    p.server.clear_transmits();
    p.client.close(now, p.client_conn);
    p.drain();
    p.inject_to_client(&accept);
    p.advance(500);
    assert!(!client_established(&p));
    assert_eq!(p.client.connection_count(), 0);
}

#[test]
fn the_normal_path_announces_the_connection_one_round_trip_after_the_accept() {
    let link = Link {
        latency_ms: 20,
        ..Link::clean()
    };
    let mut p = auth_pair(75, 10_000, link);
    assert!(p.run_until(2_000, |p| auth_request(p).is_some()));
    let id = auth_request(&p).unwrap();
    let accepted_at = p.now;
    assert!(p.server.resolve_auth(id, true));
    p.drain();
    // Nothing for the application to send: the client's confirmation is a KEEPALIVE.
    assert!(p.run_until(1_000, |p| server_announced(p)));
    let delay = p.now - accepted_at;
    assert!(
        (40..=60).contains(&delay),
        "announced {delay} ms after the ACCEPT left"
    );
    assert!(client_established(&p));
    assert!(server_failures(&p).is_empty());
    assert_eq!(p.server.stats().passive_opens, 1);
    // The connection works both ways, and the server's close is an ordinary one.
    p.establish();
    let conn = p.server_conn.unwrap();
    let now = p.clock();
    p.server.close(now, conn);
    p.drain();
    assert!(
        p.run_until(2_000, |p| p.client_events.iter().any(|e| matches!(
            e,
            EndpointEvent::Closed {
                reason: CloseReason::PeerClosed,
                ..
            }
        )))
    );
}

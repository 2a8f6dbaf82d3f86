//! A secure client whose HELLOs draw ICMP "port unreachable" (nothing listens at the server's
//! address) fails fast as `unreachable` instead of waiting for the handshake timeout; one report
//! alone (which anyone who can guess the client's port can forge) does not end a handshake, and
//! an answer from the server clears the count (docs/security.md, "ICMP during the handshake").

mod common;

use common::{addr, secure_configs, Link, Pair, SERVER};
use kcpwatch_proto::events::FailReason;
use kcpwatch_proto::{
    ConnectionState, EndpointEvent, Preset, SecurityEvent, SessionConfig, Unreachable,
};

fn pair(link: Link) -> Pair {
    let session = SessionConfig {
        idle_timeout_ms: 10_000,
        ..Preset::Game.config()
    };
    let (server, mut client) = secure_configs(41, session);
    client.handshake_timeout_ms = 10_000;
    let mut p = Pair::with_configs(server, client, link, 1_000);
    p.record = true;
    p
}

fn connect_failure(p: &Pair) -> Option<FailReason> {
    p.client_events.iter().find_map(|e| match e {
        EndpointEvent::ConnectFailed { reason, .. } => Some(*reason),
        _ => None,
    })
}

/// Runs the pair and answers every HELLO the client sends with an ICMP report about the
/// server's address, as the OS does when nothing listens there. Returns the virtual time of the
/// failure.
fn run_with_icmp_per_hello(p: &mut Pair, limit_ms: u64) -> Option<u64> {
    let mut seen = 0;
    while p.now <= limit_ms {
        if connect_failure(p).is_some() {
            return Some(p.now);
        }
        // Without moving time: puts what the client sent on the wire, so each HELLO gets its
        // report before the next one leaves.
        p.step_until(p.now);
        if p.client_datagrams.len() > seen {
            seen = p.client_datagrams.len();
            let now = p.clock();
            p.client.peer_unreachable(now, addr(SERVER));
            p.drain();
            continue;
        }
        if !p.step_until(limit_ms + 1) {
            break;
        }
    }
    connect_failure(p).map(|_| p.now)
}

#[test]
fn icmp_for_two_hellos_fails_the_handshake_as_unreachable_well_before_the_timeout() {
    // The server hears nothing: only the ICMP reports answer.
    let mut p = pair(Link {
        loss: 1.0,
        ..Link::clean()
    });
    let failed_at = run_with_icmp_per_hello(&mut p, 10_000).expect("the handshake failed");
    assert_eq!(connect_failure(&p), Some(FailReason::Unreachable));
    // The first HELLO at 0 ms, its retransmission at 250 ms: the second report ends it.
    assert_eq!(p.client_datagrams.len(), 2);
    assert!(failed_at <= 300, "failed at {failed_at} ms");
    assert_eq!(p.client.stats().failed_by(FailReason::Unreachable), 1);
    assert_eq!(p.client.stats().failed_by(FailReason::HandshakeTimeout), 0);
    assert_eq!(p.client.connection_count(), 0);
    let failed: Vec<_> = p
        .client_security
        .iter()
        .filter_map(|e| match e {
            SecurityEvent::ConnectionFailed(f) => Some((f.reason, f.rule.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(failed, [(FailReason::Unreachable, "icmp_unreachable")]);
    assert!(p.client_security.iter().any(|e| matches!(
        e,
        SecurityEvent::ConnectionStateUpdated(s)
            if s.old == ConnectionState::Handshaking && s.new == ConnectionState::Closed
    )));
}

#[test]
fn one_report_or_repeats_for_the_same_hello_do_not_end_a_handshake() {
    let mut p = pair(Link {
        loss: 1.0,
        ..Link::clean()
    });
    // The first HELLO leaves at once.
    p.step_until(1);
    assert_eq!(p.client_datagrams.len(), 1);
    let now = p.clock();
    // A burst of reports (forged, or the OS repeating itself) about one HELLO counts once.
    let first = p.client.peer_unreachable(now, addr(SERVER));
    assert!(matches!(first, Unreachable::FirstReport(_)), "{first:?}");
    for _ in 0..5 {
        assert_eq!(
            p.client.peer_unreachable(now, addr(SERVER)),
            Unreachable::Repeat
        );
    }
    // A report about someone else's address is not about this handshake.
    assert_eq!(
        p.client.peer_unreachable(now, addr("10.1.1.1:9")),
        Unreachable::NoSession
    );
    p.run_until(10_000, |p| connect_failure(p).is_some());
    assert_eq!(
        connect_failure(&p),
        Some(FailReason::HandshakeTimeout),
        "without a second report the handshake runs to its timeout"
    );
}

#[test]
fn a_cookie_from_the_server_clears_the_count() {
    // A live server answers: a forged report between its COOKIE and the ACCEPT is one report.
    let mut p = pair(Link::clean());
    p.step_until(1);
    let now = p.clock();
    p.client.peer_unreachable(now, addr(SERVER));
    // The COOKIE comes back and the client's HELLO with it goes out.
    assert!(p.run_until(5_000, |p| p.client_datagrams.len() >= 2));
    assert!(
        !p.client_events
            .iter()
            .any(|e| matches!(e, EndpointEvent::Established { .. })),
        "still handshaking at the second report"
    );
    let now = p.clock();
    p.client.peer_unreachable(now, addr(SERVER));
    assert!(p.run_until(5_000, |p| p
        .client_events
        .iter()
        .any(|e| matches!(e, EndpointEvent::Established { .. }))
        || connect_failure(p).is_some()));
    assert_eq!(connect_failure(&p), None);
}

//! The canonical writer checked against the event catalogue by what it writes: one record of
//! every `EventKind`, with every optional part set and with none, under each privacy mode that
//! changes which keys appear. Every key written must be declared for that kind, and every field
//! the catalogue says is required must be there.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};

use kcpwatch_log::{CanonicalWriter, Observer, Record};
use kcpwatch_proto::detect::Rule;
use kcpwatch_proto::events::{
    Alert, CappedText, ConnectionAttempted, ConnectionClosed, ConnectionEstablished,
    ConnectionFailed, ConnectionRef, ConnectionStateUpdated, Direction, DropRule, ErrorEvent,
    ErrorType, EventKind, FailReason, ListenerSettings, ListenerStarted, ListenerStopped, LogLoss,
    PacketDropped, PeerAddressChanged, Presence, ProtocolViolation, SecureSession, StatsEvent,
    UserId, Violation,
};
use kcpwatch_proto::privacy::{HmacPseudonymizer, IpPrivacy};
use kcpwatch_proto::uid::Uid;
use kcpwatch_proto::{
    AppClose, CloseReason, ConnectionState, ConnectionSummary, DropTrigger, Initiator,
    SecurityEvent, SessionConfig,
};
use serde_json::{Map, Value};

const UID: u128 = 0x0190_0000_0000_7000_8000_0000_0000_0101;

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

fn conn(user: bool) -> ConnectionRef {
    ConnectionRef {
        uid: Uid::from_uuid(UID),
        conv: 7,
        peer: addr("198.51.100.7:40000"),
        local: addr("192.0.2.1:7000"),
        direction: Direction::Inbound,
        user: if user {
            UserId::new("player-42").unwrap()
        } else {
            UserId::NONE
        },
    }
}

/// One event of `kind`: with every optional part set (`full`), or with none.
fn event(kind: EventKind, full: bool) -> SecurityEvent {
    let c = conn(full);
    let local = addr("192.0.2.1:7000");
    let peer = addr("198.51.100.7:40000");
    // A match with no catch-all: a new kind does not compile until it is tested here.
    match kind {
        EventKind::ListenerStarted => SecurityEvent::ListenerStarted(ListenerStarted {
            local,
            settings: ListenerSettings {
                mode: "secure",
                max_connections: 100,
                accept_inbound: full,
                session: SessionConfig::default(),
            },
        }),
        EventKind::ListenerStopped => SecurityEvent::ListenerStopped(ListenerStopped {
            local,
            uptime_ms: 1000,
            connections_total: 3,
        }),
        EventKind::ConnectionAttempted => {
            SecurityEvent::ConnectionAttempted(ConnectionAttempted { conn: c })
        }
        EventKind::ConnectionEstablished => {
            SecurityEvent::ConnectionEstablished(ConnectionEstablished {
                conn: c,
                secure: full.then_some(SecureSession {
                    version: 2,
                    suite: "Noise_NK_25519_ChaChaPoly_BLAKE2s",
                    key_id: [0xab, 0xcd, 0xef, 0x01],
                }),
            })
        }
        EventKind::ConnectionFailed => SecurityEvent::ConnectionFailed(ConnectionFailed {
            conn: c,
            reason: if full {
                FailReason::RateLimited
            } else {
                FailReason::AuthRejected
            },
            trigger: full.then_some(DropTrigger::RateLimited),
            rule: if full {
                DropRule::HandshakeRatePerIp
            } else {
                DropRule::Authenticate
            },
            suppressed: u64::from(full),
        }),
        EventKind::ConnectionStateUpdated => {
            SecurityEvent::ConnectionStateUpdated(ConnectionStateUpdated {
                conn: c,
                old: ConnectionState::Attempted,
                new: ConnectionState::Established,
            })
        }
        EventKind::ConnectionClosed => SecurityEvent::ConnectionClosed(ConnectionClosed {
            conn: c,
            reason: if full {
                CloseReason::PeerClosed
            } else {
                CloseReason::IdleTimeout
            },
            initiator: if full {
                Initiator::Remote
            } else {
                Initiator::Local
            },
            peer_reason: full.then_some(CloseReason::LocalClosed),
            app_close: if full {
                AppClose::new(4001, "kicked")
            } else {
                AppClose::NONE
            },
            summary: ConnectionSummary::empty(c),
            params: SessionConfig::default(),
        }),
        EventKind::PeerAddressChanged => SecurityEvent::PeerAddressChanged(PeerAddressChanged {
            conn: c,
            old_peer: addr("203.0.113.9:50000"),
            old_local: local,
        }),
        EventKind::PacketDropped => SecurityEvent::PacketDropped(PacketDropped {
            remote: peer,
            local,
            conv: full.then_some(7),
            uid: full.then_some(Uid::from_uuid(UID)),
            trigger: DropTrigger::DecryptFailed,
            rule: DropRule::SessionAead,
            len: 64,
            suppressed: u64::from(full),
        }),
        EventKind::ProtocolViolation => SecurityEvent::ProtocolViolation(ProtocolViolation {
            conn: full.then_some(c),
            violation: Violation::OversizedMessage,
            size: 10,
            limit: u64::from(full) * 5,
        }),
        EventKind::Error => SecurityEvent::Error(ErrorEvent {
            conn: full.then_some(c),
            peer: (!full).then_some(peer),
            local: full.then_some(local),
            error_type: ErrorType::Network,
            code: "ECONNREFUSED",
            message: CappedText::format("refused"),
            suppressed: u64::from(full) * 2,
        }),
        EventKind::Stats => SecurityEvent::Stats(StatsEvent {
            local: full.then_some(local),
            ..StatsEvent::default()
        }),
        EventKind::LogLoss => {
            let mut output = CappedText::EMPTY;
            if full {
                output = CappedText::format("syslog+tcp://127.0.0.1:601");
            }
            SecurityEvent::LogLoss(LogLoss {
                lost_critical: 1,
                lost_bulk: 2,
                lost_by_severity: if full { [1; 8] } else { [0; 8] },
                since_us: u64::from(full) * 1_764_170_000_000_000,
                lost_output: u64::from(full) * 3,
                output,
            })
        }
        EventKind::Alert => SecurityEvent::Alert(Alert {
            rule: if full {
                Rule::HandshakeFloodSource
            } else {
                Rule::DeadLinkBurst
            },
            key: full.then_some(IpAddr::from([198, 51, 100, 7])),
            threshold: 10,
            window_ms: 1000,
            observed: 12,
            first_seen_ms: 1_764_170_000_000,
            last_seen_ms: 1_764_170_000_500,
            update: full,
        }),
    }
}

fn writers() -> Vec<(&'static str, CanonicalWriter)> {
    let observer = || Observer {
        host: "host".into(),
        service: "game".into(),
        instance: "L0000000000000000000000".into(),
        version: "0.1.0".into(),
    };
    let hmac = HmacPseudonymizer::new("k1", &[7u8; 32]).unwrap();
    vec![
        ("full", CanonicalWriter::new(observer(), 0)),
        (
            "hmac",
            CanonicalWriter::with_privacy(observer(), 0, IpPrivacy::Hmac(hmac), false),
        ),
        (
            "omit",
            CanonicalWriter::with_privacy(observer(), 0, IpPrivacy::Omit, false),
        ),
    ]
}

#[test]
fn every_key_the_canonical_writer_prints_is_declared_and_every_required_one_is_there() {
    let mut checked = 0;
    for (mode, mut writer) in writers() {
        for kind in EventKind::ALL {
            for full in [true, false] {
                let event = event(kind, full);
                assert_eq!(event.kind(), kind);
                let spec = kind.spec();
                assert!(
                    spec.severity.possible().contains(&event.severity()),
                    "{}: severity {:?} is not one the catalogue allows",
                    kind.name(),
                    event.severity()
                );
                let mut line = String::new();
                writer.write(
                    &Record {
                        seq: 1,
                        time_us: 1_764_170_000_412_305,
                        event,
                    },
                    &mut line,
                );
                let record: Map<String, Value> = serde_json::from_str(&line).unwrap();
                assert_eq!(record["name"], kind.name());
                let fields = spec.all_fields();
                let declared: BTreeSet<&str> = fields.iter().map(|f| f.name.as_str()).collect();
                let undeclared: Vec<&String> = record
                    .keys()
                    .filter(|k| !declared.contains(k.as_str()))
                    .collect();
                assert!(
                    undeclared.is_empty(),
                    "{} ({mode}, full: {full}) writes {undeclared:?}, which the catalogue does not declare",
                    kind.name()
                );
                let missing: Vec<&str> = fields
                    .iter()
                    .filter(|f| f.presence == Presence::Required)
                    .map(|f| f.name.as_str())
                    .filter(|name| !record.contains_key(*name))
                    .collect();
                assert!(
                    missing.is_empty(),
                    "{} ({mode}, full: {full}) lacks required {missing:?}",
                    kind.name()
                );
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 3 * 2 * EventKind::ALL.len());
}

/// Every optional field the catalogue declares is one the writer can actually print: a
/// declaration nobody writes is as misleading as a field nobody declared.
#[test]
fn every_declared_field_is_written_by_some_record() {
    let mut written: Vec<BTreeSet<String>> = vec![BTreeSet::new(); EventKind::ALL.len()];
    for (_, mut writer) in writers() {
        for (i, kind) in EventKind::ALL.into_iter().enumerate() {
            for full in [true, false] {
                let mut line = String::new();
                writer.write(
                    &Record {
                        seq: 1,
                        time_us: 1_764_170_000_412_305,
                        event: event(kind, full),
                    },
                    &mut line,
                );
                let record: Map<String, Value> = serde_json::from_str(&line).unwrap();
                written[i].extend(record.keys().cloned());
            }
        }
    }
    for (i, kind) in EventKind::ALL.into_iter().enumerate() {
        let never: Vec<String> = kind
            .spec()
            .all_fields()
            .into_iter()
            .map(|f| f.name)
            .filter(|name| !written[i].contains(name))
            // The address of an error's peer next to a connection, a privacy mode's own
            // fields: written, but not by the records built here.
            .filter(|name| !EXEMPT.contains(&name.as_str()))
            .collect();
        assert!(
            never.is_empty(),
            "{}: declared but never written: {never:?}",
            kind.name()
        );
    }
}

/// Fields the records of this test do not reach: `ip_privacy` under `truncate`/`cryptopan` is
/// the same key as under `hmac`, so nothing is exempt today.
const EXEMPT: &[&str] = &[];

//! The canonical writer checked against the event catalogue by what it writes: every
//! `EventKind`'s declared examples (every optional part set, and each other shape) and a few
//! edge cases, under each privacy mode that changes which keys appear. Every key written must be declared for that kind, and every field
//! the catalogue says is required must be there.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use kcpwatch_log::{CanonicalWriter, Observer, Record};
use kcpwatch_proto::events::{
    CappedText, ConnectionAttempted, ConnectionRef, Direction, ErrorEvent, ErrorType, EventKind,
    ExampleNet, LogLoss, Presence, UserId,
};
use kcpwatch_proto::privacy::{HmacPseudonymizer, IpPrivacy};
use kcpwatch_proto::uid::Uid;
use kcpwatch_proto::SecurityEvent;
use serde_json::{Map, Value};

const UID: u128 = 0x0190_0000_0000_7000_8000_0000_0000_0101;

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

/// Every record of `kind` checked here: its declared examples (`EventRecord::examples`) on both
/// families, then the edge cases made here that write fields the examples do not.
fn events(kind: EventKind) -> Vec<SecurityEvent> {
    let mut all: Vec<SecurityEvent> = ExampleNet::ALL
        .iter()
        .flat_map(|net| kind.examples(net))
        .collect();
    all.extend(edge_cases().into_iter().filter(|e| e.kind() == kind));
    assert!(!all.is_empty(), "{} declares no example", kind.name());
    all
}

/// A connection with a user id (`user_id`, `user_id_pseudonym`), an error about both a
/// connection and our address, a loss at every severity.
fn edge_cases() -> Vec<SecurityEvent> {
    let conn = ConnectionRef {
        uid: Uid::from_uuid(UID),
        conv: 7,
        peer: addr("198.51.100.7:40000"),
        local: addr("192.0.2.1:7000"),
        direction: Direction::Inbound,
        user: UserId::new("player-42").unwrap(),
    };
    vec![
        SecurityEvent::ConnectionAttempted(ConnectionAttempted { conn }),
        SecurityEvent::Error(ErrorEvent {
            conn: Some(conn),
            peer: None,
            local: Some(conn.local),
            error_type: ErrorType::Network,
            code: "ECONNREFUSED",
            message: CappedText::format("refused"),
            suppressed: 2,
        }),
        SecurityEvent::LogLoss(LogLoss {
            lost_critical: 1,
            lost_bulk: 2,
            lost_by_severity: [1; 8],
            since_us: 1_764_170_000_000_000,
            lost_output: 3,
            output: CappedText::format("syslog+tcp://127.0.0.1:601"),
        }),
    ]
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
            for (i, event) in events(kind).into_iter().enumerate() {
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
                    "{} ({mode}, record {i}) writes {undeclared:?}, which the catalogue does not declare",
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
                    "{} ({mode}, record {i}) lacks required {missing:?}",
                    kind.name()
                );
                checked += 1;
            }
        }
    }
    let per_mode: usize = EventKind::ALL.map(|k| events(k).len()).iter().sum();
    assert_eq!(checked, 3 * per_mode);
}

/// Every optional field the catalogue declares is one the writer can actually print: a
/// declaration nobody writes is as misleading as a field nobody declared.
#[test]
fn every_declared_field_is_written_by_some_record() {
    let mut written: Vec<BTreeSet<String>> = vec![BTreeSet::new(); EventKind::ALL.len()];
    for (_, mut writer) in writers() {
        for (i, kind) in EventKind::ALL.into_iter().enumerate() {
            for event in events(kind) {
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
                written[i].extend(record.keys().cloned());
            }
        }
    }
    // The connection fields are written by one `RecordFields::connection` for every event: the
    // user id fields that the edge case of one event reaches count for every event that
    // writes a connection.
    let with_user = EventKind::ALL
        .iter()
        .position(|k| *k == EventKind::ConnectionAttempted)
        .unwrap();
    let user_fields: Vec<String> = written[with_user]
        .iter()
        .filter(|k| k.starts_with("user_id"))
        .cloned()
        .collect();
    assert_eq!(user_fields.len(), 2, "{user_fields:?}");
    for fields in &mut written {
        if fields.contains("direction") {
            fields.extend(user_fields.iter().cloned());
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

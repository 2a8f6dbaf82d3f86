//! The output formats of `events::formats`, driven by canonical records of every event:
//!
//! - `fixtures/events_docs.ndjson`: the examples of `docs/events.md`, extracted verbatim;
//! - `fixtures/events_generated.ndjson`: a connection's life as the `event_cost` example wrote it
//!   (`cargo run --release -p kcpwatch --example event_cost -- --lines FILE`), observer fields
//!   empty as they are there;
//! - `fixtures/events_crafted.ndjson`: edge cases made by hand: every character the formats must
//!   escape (`"`, `\`, `]`, `=`, `|`, CR, LF, non-ASCII) in `msg`, `error_message` and the
//!   observer fields, IPv6 addresses, an outbound close, and `ip_privacy: "hmac"` pseudonyms;
//! - `fixtures/events_secure.ndjson`: secure-mode records (`kcp:peer_address_changed`, failed
//!   attempts without a trigger, the `bad_tag` / `replayed` / `rate_limited` triggers and their
//!   rules) and detector alerts (`kcp:alert`, every rule, an update, source and listener groups)
//!   under every IP privacy mode, written by the canonical writer itself from
//!   `SecurityEvent` values: [`secure_records_are_what_the_canonical_writer_writes`] checks
//!   the file against the writer (`KCPWATCH_BLESS=1` rewrites it), and
//!   `__test__/schema.test.mjs` validates it against the schema.
//!
//! ECS output is checked against `fixtures/ecs_fields.json` (types and allowed values from the
//! ECS 9.x reference), OCSF against the attributes 1.4.0 requires for class 4001 (class 2004 for
//! alerts), CEF and RFC 5424
//! by parsing them back, GELF, HEC and OTLP structurally. The full validation against the
//! official definitions (`schema/official/`) is `__test__/siem-validation.test.mjs`, over the
//! matrix of `fixtures/siem/` that [`siem_matrix_fixtures_are_up_to_date`] keeps current.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use kcpwatch_log::formats::{write, write_with, Format, FormatOptions};
use kcpwatch_log::{CanonicalWriter, Observer};
use kcpwatch_proto::detect::Rule;
use kcpwatch_proto::events::{
    Alert, ConnectionAttempted, ConnectionEstablished, ConnectionFailed, ConnectionRef,
    ConnectionStateUpdated, Direction, DropRule, EventKind, FailReason, ListenerSettings,
    ListenerStarted, PacketDropped, PeerAddressChanged,
};
use kcpwatch_proto::privacy::{IpPrivacy, PrivateIp};
use kcpwatch_proto::uid::Uid;
use kcpwatch_proto::{ConnectionState, DropTrigger, SecurityEvent, SessionConfig};
use serde_json::{json, Map, Value};

type Record = Map<String, Value>;

/// Every event of the catalogue, as declared.
fn events() -> Vec<&'static str> {
    EventKind::ALL.map(EventKind::name).to_vec()
}

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every fixture record, with where it came from for messages.
fn records() -> Vec<(String, Record)> {
    let mut all = Vec::new();
    for file in [
        "events_docs.ndjson",
        "events_generated.ndjson",
        "events_crafted.ndjson",
        "events_secure.ndjson",
    ] {
        for (i, line) in fixture(file).lines().enumerate() {
            let record: Record = serde_json::from_str(line).unwrap();
            all.push((format!("{file}:{}", i + 1), record));
        }
    }
    all
}

fn crafted(name: &str, pick: impl Fn(&Record) -> bool) -> Record {
    records()
        .into_iter()
        .map(|(_, r)| r)
        .find(|r| r["name"] == name && pick(r))
        .unwrap_or_else(|| panic!("no fixture {name}"))
}

/// One record in `format`, checked to be exactly one newline-terminated line.
fn line(format: Format, record: &Record) -> String {
    let mut out = String::new();
    write(format, record, &mut out);
    assert!(out.ends_with('\n'), "{format}: no final newline: {out}");
    let body = &out[..out.len() - 1];
    assert!(
        !body.contains(['\n', '\r']),
        "{format}: a record must be one line: {out:?}"
    );
    body.to_owned()
}

fn json_line(format: Format, record: &Record) -> Value {
    let text = line(format, record);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{format}: {e}: {text}"))
}

/// A canonical value as the text formats carry it.
fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn micros(ts: &str) -> u128 {
    humantime::parse_rfc3339(ts)
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros()
}

fn severity(r: &Record) -> usize {
    r["severity"].as_u64().unwrap() as usize
}

#[test]
fn fixtures_cover_every_event() {
    let names: BTreeSet<String> = records()
        .iter()
        .map(|(_, r)| r["name"].as_str().unwrap().to_owned())
        .collect();
    let expected: BTreeSet<String> = events().into_iter().map(String::from).collect();
    assert_eq!(names, expected);
}

#[test]
fn format_names_match_the_javascript_options() {
    // src/log.ts: logFormats.
    let names: Vec<&str> = Format::ALL.iter().map(Format::name).collect();
    assert_eq!(
        names,
        ["json", "ecs", "ocsf", "cef", "rfc5424", "gelf", "hec", "otlp"]
    );
    for f in Format::ALL {
        assert_eq!(Format::from_name(f.name()), Some(f));
    }
    assert_eq!(Format::from_name("none"), None);
}

#[test]
fn every_format_writes_one_line_per_record() {
    for (source, r) in records() {
        for f in Format::ALL {
            let text = line(f, &r);
            assert!(!text.is_empty(), "{source} {f}");
        }
    }
}

#[test]
fn records_missing_fields_or_unknown_events_still_format() {
    let unusual: [Value; 4] = [
        json!({}),
        json!({"name": "kcp:alert", "severity": 1, "msg": "detector fired", "uid": "K1",
               "src_ip": "198.51.100.1", "detector": "conv_scan"}),
        json!({"name": "kcp:peer_address_changed", "ts": "2025-11-26T15:13:25.412305Z",
               "severity": 5, "old_ip": "198.51.100.1", "nested": {"a": [1, true, null]}}),
        json!({"name": "kcp:stats", "time": 1764170000412u64, "severity": 99, "big": u64::MAX}),
    ];
    for v in unusual {
        let r = v.as_object().unwrap();
        for f in Format::ALL {
            let text = line(f, r);
            if !matches!(f, Format::Cef | Format::Rfc5424) {
                let _: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{f}: {e}"));
            }
        }
    }
}

#[test]
fn json_is_the_record() {
    for (source, r) in records() {
        assert_eq!(json_line(Format::Json, &r), Value::Object(r), "{source}");
    }
}

/// Empty strings outside the vendor namespaces: a canonical "" (an unnamed host) must not become
/// an empty keyword or attribute.
fn assert_no_empty_strings(source: &str, path: &str, v: &Value, skip: &str) {
    match v {
        Value::String(s) => assert!(!s.is_empty(), "{source}: {path} is empty"),
        Value::Array(items) => {
            for item in items {
                assert_no_empty_strings(source, path, item, skip);
            }
        }
        Value::Object(map) => {
            for (k, item) in map {
                if path.is_empty() && k == skip {
                    continue;
                }
                assert_no_empty_strings(source, &format!("{path}.{k}"), item, skip);
            }
        }
        _ => {}
    }
}

// ------------------------------------------------------------------------------------------ ECS

fn flatten(prefix: &str, v: &Value, out: &mut BTreeMap<String, Value>) {
    match v {
        Value::Object(map) if prefix != "kcp" => {
            for (k, item) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&path, item, out);
            }
        }
        other => {
            out.insert(prefix.to_owned(), other.clone());
        }
    }
}

fn ecs_flat(r: &Record) -> BTreeMap<String, Value> {
    let mut flat = BTreeMap::new();
    flatten("", &json_line(Format::Ecs, r), &mut flat);
    flat
}

fn check_ecs_scalar(field: &str, ty: &str, v: &Value) {
    match ty {
        "keyword" | "match_only_text" => assert!(v.is_string(), "{field} must be a string: {v}"),
        "long" => assert!(v.is_u64() || v.is_i64(), "{field} must be an integer: {v}"),
        "ip" => {
            let s = v.as_str().unwrap_or_else(|| panic!("{field}: {v}"));
            assert!(s.parse::<IpAddr>().is_ok(), "{field} must be an IP: {s}");
        }
        "date" => {
            let s = v.as_str().unwrap_or_else(|| panic!("{field}: {v}"));
            assert!(humantime::parse_rfc3339(s).is_ok(), "{field}: {s}");
        }
        other => panic!("fixture type {other}"),
    }
}

#[test]
fn ecs_fields_match_the_ecs_reference() {
    let reference: Value = serde_json::from_str(&fixture("ecs_fields.json")).unwrap();
    let fields = reference["fields"].as_object().unwrap();
    let allowed = reference["allowed_values"].as_object().unwrap();
    let expected = reference["expected_values"].as_object().unwrap();
    let network_types: Vec<&str> = reference["expected_event_types"]["network"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let ids_types: Vec<&str> = reference["expected_event_types"]["intrusion_detection"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for (source, r) in records() {
        assert_no_empty_strings(&source, "", &json_line(Format::Ecs, &r), "kcp");
        let flat = ecs_flat(&r);
        for (field, value) in &flat {
            if field == "kcp" {
                assert!(value.is_object(), "{source}: kcp must be an object");
                continue;
            }
            let spec = fields
                .get(field)
                .unwrap_or_else(|| panic!("{source}: {field} is not in ecs_fields.json"));
            let ty = spec["type"].as_str().unwrap();
            let values: Vec<&Value> = if spec["array"] == true {
                let items = value
                    .as_array()
                    .unwrap_or_else(|| panic!("{source}: {field} must be an array"));
                assert!(!items.is_empty(), "{source}: {field} is empty");
                items.iter().collect()
            } else {
                vec![value]
            };
            for v in values {
                check_ecs_scalar(field, ty, v);
                for list in [allowed.get(field), expected.get(field)]
                    .into_iter()
                    .flatten()
                {
                    assert!(
                        list.as_array().unwrap().contains(v),
                        "{source}: {field} = {v} is not an allowed value"
                    );
                }
            }
        }
        for field in [
            "@timestamp",
            "event.kind",
            "event.category",
            "event.type",
            "event.action",
        ] {
            assert!(flat.contains_key(field), "{source}: {field} missing");
        }
        // Only the types ECS expects with category network (`expected_event_types`).
        if flat["event.category"]
            .as_array()
            .unwrap()
            .contains(&json!("network"))
        {
            let types = flat["event.type"].as_array().unwrap();
            for t in types {
                let t = t.as_str().unwrap();
                assert!(
                    network_types.contains(&t),
                    "{source}: event.type {t} with category network"
                );
            }
        }
        // Alerts: every type is one ECS expects with category intrusion_detection.
        if flat["event.category"]
            .as_array()
            .unwrap()
            .contains(&json!("intrusion_detection"))
        {
            assert_eq!(r["name"], "kcp:alert", "{source}");
            assert_eq!(flat["event.kind"], "alert", "{source}");
            for t in flat["event.type"].as_array().unwrap() {
                assert!(
                    ids_types.contains(&t.as_str().unwrap()),
                    "{source}: event.type {t} with category intrusion_detection"
                );
            }
        }
    }
}

#[test]
fn ecs_carries_every_canonical_field() {
    for (source, r) in records() {
        let ecs = json_line(Format::Ecs, &r);
        let flat = ecs_flat(&r);
        let kcp = ecs.get("kcp").and_then(Value::as_object);
        let at = |path: &str| flat.get(path).cloned();
        let inbound = r.get("direction") == Some(&json!("inbound"));
        let closed = r["name"] == "kcp:connection_closed";
        for (key, value) in &r {
            if kcp.and_then(|k| k.get(key)) == Some(value) {
                continue;
            }
            let found = match key.as_str() {
                "ts" => at("@timestamp"),
                "msg" => at("message"),
                "level_name" => at("log.level"),
                "severity" => at("event.severity"),
                "seq" => at("event.sequence"),
                "name" => at("event.action").map(|a| json!(format!("kcp:{}", a.as_str().unwrap()))),
                "observer_host" => at("observer.hostname").or(Some(json!(""))),
                "observer_service" => at("service.name").or(Some(json!(""))),
                "observer_instance" => at("service.ephemeral_id").or(Some(json!(""))),
                "observer_version" => at("observer.version").or(Some(json!(""))),
                "time" => at("@timestamp").map(|t| json!(micros(t.as_str().unwrap()) / 1000)),
                "level" => Some(value.clone()),
                "transport" => at("network.transport"),
                "community_id" => at("network.community_id"),
                "direction" => at("network.direction"),
                "reason" => at("event.reason"),
                "error_code" => at("error.code"),
                "error_message" => at("error.message"),
                "error_type" => at("error.type"),
                "duration_ms" => {
                    at("event.duration").map(|d| json!(d.as_u64().unwrap() / 1_000_000))
                }
                "src_ip" => at("source.ip"),
                "group_ip" => at("source.ip"),
                "rule_id" => at("rule.id"),
                "rule_name" => at("rule.name"),
                "first_seen" => at("event.start"),
                "last_seen" => at("event.end"),
                "mitre_technique" => at("threat.technique.subtechnique.id")
                    .or_else(|| at("threat.technique.id"))
                    .map(|ids| ids[0].clone()),
                "src_port" => at("source.port"),
                "dst_ip" => at("destination.ip"),
                "dst_port" => at("destination.port"),
                "peer_ip" => at("destination.ip"),
                "peer_port" => at("destination.port"),
                "local_ip" => at("server.ip"),
                "local_port" => at("server.port"),
                "bytes_received" if closed => at(if inbound {
                    "source.bytes"
                } else {
                    "destination.bytes"
                }),
                "bytes_sent" if closed => at(if inbound {
                    "destination.bytes"
                } else {
                    "source.bytes"
                }),
                "datagrams_received" if closed => at(if inbound {
                    "source.packets"
                } else {
                    "destination.packets"
                }),
                "datagrams_sent" if closed => at(if inbound {
                    "destination.packets"
                } else {
                    "source.packets"
                }),
                _ => None,
            };
            assert_eq!(found.as_ref(), Some(value), "{source}: {key} lost in ECS");
        }
    }
}

#[test]
fn ecs_categorizes_each_event() {
    let cases = [
        (
            "kcp:listener_started",
            "event",
            &["start"][..],
            Some("success"),
        ),
        ("kcp:listener_stopped", "event", &["end"], Some("success")),
        (
            "kcp:connection_attempted",
            "event",
            &["connection"],
            Some("unknown"),
        ),
        (
            "kcp:connection_established",
            "event",
            &["connection", "start"],
            Some("success"),
        ),
        (
            "kcp:connection_failed",
            "event",
            &["connection", "denied"],
            Some("failure"),
        ),
        (
            "kcp:connection_state_updated",
            "event",
            &["connection"],
            Some("success"),
        ),
        (
            "kcp:connection_closed",
            "event",
            &["connection", "end"],
            Some("success"),
        ),
        (
            "kcp:peer_address_changed",
            "event",
            &["connection"],
            Some("success"),
        ),
        ("kcp:packet_dropped", "event", &["denied"], Some("failure")),
        (
            "kcp:protocol_violation",
            "event",
            &["denied"],
            Some("failure"),
        ),
        ("kcp:error", "event", &["info"], Some("failure")),
        ("kcp:stats", "metric", &["info"], None),
        ("kcp:log_loss", "event", &["info"], Some("failure")),
    ];
    let docs: Vec<Record> = fixture("events_docs.ndjson")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for (name, kind, types, outcome) in cases {
        let r = docs.iter().find(|r| r["name"] == name).unwrap();
        let ecs = json_line(Format::Ecs, r);
        let event = &ecs["event"];
        assert_eq!(event["kind"], kind, "{name}");
        assert_eq!(event["type"], json!(types), "{name}");
        assert_eq!(event["category"], json!(["network"]), "{name}");
        assert_eq!(event["outcome"].as_str(), outcome, "{name}");
        assert_eq!(event["action"], name.strip_prefix("kcp:").unwrap());
        assert_eq!(event["severity"], r["severity"]);
        assert_eq!(event["dataset"], "kcpwatch.security");
        assert_eq!(ecs["observer"]["product"], "kcpwatch");
    }
    // kcp:alert: its kind is ECS's alert.
    let alert = docs.iter().find(|r| r["name"] == "kcp:alert").unwrap();
    let ecs = json_line(Format::Ecs, alert);
    assert_eq!(ecs["event"]["kind"], "alert");
    assert_eq!(
        ecs["event"]["category"],
        json!(["intrusion_detection", "network"])
    );
    assert_eq!(ecs["event"]["type"], json!(["info"]));
    assert!(ecs["event"].get("outcome").is_none());
    // A close that broke is a failure.
    let dead = crafted("kcp:connection_closed", |r| {
        r.get("reason") == Some(&json!("internal_error"))
    });
    assert_eq!(json_line(Format::Ecs, &dead)["event"]["outcome"], "failure");
}

#[test]
fn ecs_bytes_and_durations() {
    let inbound = crafted("kcp:connection_closed", |r| {
        r.get("direction") == Some(&json!("inbound"))
    });
    let ecs = json_line(Format::Ecs, &inbound);
    assert_eq!(ecs["source"]["bytes"], inbound["bytes_received"]);
    assert_eq!(ecs["destination"]["bytes"], inbound["bytes_sent"]);
    assert_eq!(ecs["network"]["bytes"], json!(181344 + 903112));
    assert_eq!(ecs["event"]["duration"], json!(92_004_000_000u64));
    assert_eq!(ecs["event"]["end"], inbound["ts"]);
    assert_eq!(ecs["event"]["start"], "2025-11-26T15:13:20.408310Z");
    assert_eq!(ecs["network"]["iana_number"], "17");
    assert_eq!(ecs["network"]["type"], "ipv4");

    let outbound = crafted("kcp:connection_closed", |r| {
        r.get("direction") == Some(&json!("outbound"))
    });
    let ecs = json_line(Format::Ecs, &outbound);
    assert_eq!(ecs["source"]["bytes"], outbound["bytes_sent"]);
    assert_eq!(ecs["source"]["packets"], outbound["datagrams_sent"]);
    assert_eq!(ecs["destination"]["bytes"], outbound["bytes_received"]);
    assert_eq!(ecs["network"]["direction"], "outbound");
    assert_eq!(ecs["network"]["type"], "ipv6");
}

#[test]
fn ecs_keeps_pseudonyms_out_of_ip_fields() {
    let r = crafted("kcp:connection_established", |r| {
        r.contains_key("ip_privacy")
    });
    let ecs = json_line(Format::Ecs, &r);
    assert!(ecs["source"].get("ip").is_none());
    assert!(ecs["destination"].get("ip").is_none());
    assert_eq!(ecs["source"]["port"], 52144);
    assert_eq!(ecs["kcp"]["src_ip_pseudonym"], r["src_ip_pseudonym"]);
    assert_eq!(ecs["kcp"]["dst_ip_pseudonym"], r["dst_ip_pseudonym"]);
    assert_eq!(ecs["kcp"]["ip_privacy"], "hmac");
    assert!(ecs.get("related").is_none());
    // An address a privacy mode made into something that is not an IP is kept, not dropped.
    let mut odd = r.clone();
    odd.insert("src_ip".into(), json!("not-an-ip"));
    let ecs = json_line(Format::Ecs, &odd);
    assert!(ecs["source"].get("ip").is_none());
    assert_eq!(ecs["kcp"]["src_ip"], "not-an-ip");
}

// ----------------------------------------------------------------------------------------- OCSF

#[test]
fn ocsf_has_the_required_attributes_of_network_activity() {
    const ACTIVITIES: [u64; 9] = [0, 1, 2, 3, 4, 5, 6, 7, 99];
    for (source, r) in records() {
        let e = json_line(Format::Ocsf, &r);
        assert_no_empty_strings(&source, "", &e, "unmapped");
        if r["name"] == "kcp:alert" {
            check_detection_finding(&source, &r, &e);
            continue;
        }
        // Required by OCSF 1.4.0 for class 4001 (the whole schema is checked by
        // __test__/siem-validation.test.mjs).
        let activity = e["activity_id"].as_u64().unwrap();
        assert!(
            ACTIVITIES.contains(&activity),
            "{source}: activity {activity}"
        );
        assert_eq!(e["category_uid"], 4, "{source}");
        assert_eq!(e["class_uid"], 4001, "{source}");
        assert_eq!(e["type_uid"].as_u64(), Some(400_100 + activity), "{source}");
        assert_eq!(e["time"], r["time"], "{source}");
        let sev = e["severity_id"].as_u64().unwrap();
        assert!(sev <= 6 || sev == 99, "{source}");
        let metadata = e["metadata"].as_object().unwrap();
        assert_eq!(metadata["version"], "1.4.0");
        assert!(metadata["product"]["name"].is_string());
        assert!(metadata["product"]["vendor_name"].is_string());
        // The class's constraint: at least one endpoint.
        assert!(
            e["src_endpoint"].is_object() || e["dst_endpoint"].is_object(),
            "{source}: no endpoint"
        );
        // Recommended ones, typed.
        assert!(e["activity_name"].is_string());
        assert!(e["type_name"].is_string());
        assert!(e["severity"].is_string());
        assert_eq!(e["message"], r["msg"], "{source}");
        if let Some(status) = e.get("status_id") {
            assert!([0, 1, 2, 99].contains(&status.as_u64().unwrap()));
            assert!(e["status"].is_string());
        }
        for key in ["src_endpoint", "dst_endpoint"] {
            if let Some(ep) = e.get(key) {
                if let Some(ip) = ep.get("ip") {
                    assert!(
                        ip.as_str().unwrap().parse::<IpAddr>().is_ok(),
                        "{source}: {ip}"
                    );
                }
                if let Some(port) = ep.get("port") {
                    assert!(port.as_u64().unwrap() <= 65535);
                }
            }
        }
        if let Some(info) = e.get("connection_info") {
            if let Some(n) = info.get("protocol_num") {
                assert_eq!(n, 17);
            }
            if let Some(d) = info.get("direction_id") {
                assert!([0, 1, 2, 3, 99].contains(&d.as_u64().unwrap()));
            }
        }
        if let Some(traffic) = e.get("traffic") {
            for (_, v) in traffic.as_object().unwrap() {
                assert!(v.is_u64(), "{source}: traffic {v}");
            }
        }
        // unmapped holds canonical fields, unchanged.
        if let Some(unmapped) = e.get("unmapped") {
            for (k, v) in unmapped.as_object().unwrap() {
                assert_eq!(r.get(k), Some(v), "{source}: unmapped.{k}");
            }
        }
    }
}

/// What OCSF 1.4.0 requires (and a few things it recommends) of a Detection Finding (2004).
fn check_detection_finding(source: &str, r: &Record, e: &Value) {
    let activity = e["activity_id"].as_u64().unwrap();
    let update = r["update"].as_bool().unwrap();
    assert_eq!(activity, if update { 2 } else { 1 }, "{source}");
    assert_eq!(e["activity_name"], if update { "Update" } else { "Create" });
    assert_eq!(e["category_uid"], 2, "{source}");
    assert_eq!(e["category_name"], "Findings");
    assert_eq!(e["class_uid"], 2004, "{source}");
    assert_eq!(e["class_name"], "Detection Finding");
    assert_eq!(e["type_uid"].as_u64(), Some(200_400 + activity), "{source}");
    assert_eq!(e["time"], r["time"], "{source}");
    let sev = e["severity_id"].as_u64().unwrap();
    assert_eq!(sev, if r["severity"] == 1 { 5 } else { 3 }, "{source}");
    assert!(e["severity"].is_string());
    assert_eq!(e["message"], r["msg"], "{source}");
    let metadata = e["metadata"].as_object().unwrap();
    assert_eq!(metadata["version"], "1.4.0");
    assert!(metadata["product"]["name"].is_string());
    assert!(metadata["product"]["vendor_name"].is_string());
    assert_eq!(metadata["event_code"], "kcp:alert");
    // finding_info: uid and title are required in 1.4.0.
    let info = e["finding_info"].as_object().unwrap();
    let uid = info["uid"].as_str().unwrap();
    assert!(
        uid.starts_with(&format!(
            "{}:{}:",
            r["observer_instance"].as_str().unwrap(),
            r["rule_id"].as_str().unwrap()
        )),
        "{source}: {uid}"
    );
    assert_eq!(info["title"], r["msg"], "{source}");
    assert_eq!(info["types"], json!([r["rule_name"]]));
    assert_eq!(info["analytic"]["uid"], r["rule_id"]);
    assert_eq!(info["analytic"]["name"], r["rule_name"]);
    assert_eq!(info["analytic"]["type_id"], 1);
    let millis = |key: &str| json!(micros(r[key].as_str().unwrap()) / 1000);
    assert_eq!(info["first_seen_time"], millis("first_seen"), "{source}");
    assert_eq!(info["last_seen_time"], millis("last_seen"), "{source}");
    assert_eq!(e["start_time"], millis("first_seen"));
    assert_eq!(e["end_time"], millis("last_seen"));
    match r.get("mitre_technique").and_then(Value::as_str) {
        Some(t) => {
            let attack = &info["attacks"][0];
            let id = attack.get("sub_technique").unwrap_or(&attack["technique"])["uid"]
                .as_str()
                .unwrap();
            assert_eq!(id, t, "{source}");
            assert!(t.starts_with(attack["technique"]["uid"].as_str().unwrap()));
            assert!(attack["technique"]["name"].is_string(), "{source}");
            assert!(attack["tactic"]["uid"].as_str().unwrap().starts_with("TA"));
        }
        None => assert!(info.get("attacks").is_none(), "{source}"),
    }
    // The grouping address is evidence, never an endpoint of a class that has none.
    assert!(e.get("src_endpoint").is_none() && e.get("dst_endpoint").is_none());
    match r.get("group_ip") {
        Some(ip) => {
            assert_eq!(e["evidences"][0]["src_endpoint"]["ip"], *ip, "{source}");
            assert!(e["observables"]
                .as_array()
                .unwrap()
                .iter()
                .any(|o| o["name"] == "evidences.src_endpoint.ip" && o["value"] == *ip));
        }
        None => assert!(e.get("evidences").is_none(), "{source}"),
    }
    if let Some(unmapped) = e.get("unmapped") {
        for (k, v) in unmapped.as_object().unwrap() {
            assert_eq!(r.get(k), Some(v), "{source}: unmapped.{k}");
        }
    }
    for key in ["threshold", "window_ms", "observed", "group"] {
        assert_eq!(e["unmapped"][key], r[key], "{source}: {key}");
    }
}

#[test]
fn ocsf_activities_and_severities() {
    let docs: Vec<Record> = fixture("events_docs.ndjson")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let activity = |name: &str| {
        let r = docs.iter().find(|r| r["name"] == name).unwrap();
        json_line(Format::Ocsf, r)["activity_id"].as_u64().unwrap()
    };
    assert_eq!(activity("kcp:connection_established"), 1);
    assert_eq!(activity("kcp:connection_closed"), 2);
    assert_eq!(activity("kcp:error"), 4);
    assert_eq!(activity("kcp:connection_failed"), 5);
    assert_eq!(activity("kcp:packet_dropped"), 5);
    assert_eq!(activity("kcp:stats"), 6);
    assert_eq!(activity("kcp:listener_started"), 7);
    assert_eq!(activity("kcp:peer_address_changed"), 99);
    assert_eq!(activity("kcp:log_loss"), 99);

    let base = docs[0].clone();
    let expected = [6, 5, 5, 4, 3, 2, 1, 1];
    for (sev, want) in expected.into_iter().enumerate() {
        let mut r = base.clone();
        r.insert("severity".into(), json!(sev));
        assert_eq!(
            json_line(Format::Ocsf, &r)["severity_id"],
            want,
            "syslog {sev}"
        );
    }

    let closed = docs
        .iter()
        .find(|r| r["name"] == "kcp:connection_closed")
        .unwrap();
    let e = json_line(Format::Ocsf, closed);
    assert_eq!(e["traffic"]["bytes_out"], closed["bytes_received"]);
    assert_eq!(e["traffic"]["bytes_in"], closed["bytes_sent"]);
    assert_eq!(e["connection_info"]["uid"], closed["uid"]);
    assert_eq!(
        e["connection_info"]["community_uid"],
        closed["community_id"]
    );
    assert_eq!(e["connection_info"]["direction_id"], 1);
    assert_eq!(e["duration"], closed["duration_ms"]);
    assert_eq!(e["metadata"]["correlation_uid"], closed["uid"]);
    assert_eq!(e["metadata"]["sequence"], closed["seq"]);
}

// ------------------------------------------------------------------------------------------ CEF

/// Splits a CEF line into its 7 unescaped header fields and the extension text.
fn cef_header(line: &str) -> (Vec<String>, String) {
    let mut fields = Vec::new();
    let mut current = String::new();
    let mut chars = line.chars();
    while fields.len() < 7 {
        match chars.next().expect("short CEF header") {
            '\\' => match chars.next().unwrap() {
                'n' => current.push('\n'),
                'r' => current.push('\r'),
                c => current.push(c),
            },
            '|' => fields.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    (fields, chars.collect())
}

fn is_cef_key(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The extension's key/value pairs: a value runs until the space before the next `key=` whose
/// `=` is not escaped.
fn cef_extension(ext: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let bytes = ext.as_bytes();
    let mut key_start = 0;
    while key_start < ext.len() {
        let eq = key_start + ext[key_start..].find('=').expect("key without =");
        let key = &ext[key_start..eq];
        assert!(is_cef_key(key), "bad CEF key {key:?}");
        // Find where the value ends: at a space followed by `key=` with the `=` unescaped.
        let mut end = ext.len();
        let mut i = eq + 1;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' => i += 2,
                b' ' => {
                    let rest = &ext[i + 1..];
                    let candidate = rest.split('=').next().unwrap();
                    if rest.contains('=') && is_cef_key(candidate) {
                        end = i;
                        break;
                    }
                    i += 1;
                }
                _ => i += 1,
            }
        }
        let mut value = String::new();
        let mut chars = ext[eq + 1..end].chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                match chars.next().unwrap() {
                    'n' => value.push('\n'),
                    'r' => value.push('\r'),
                    c => value.push(c),
                }
            } else {
                value.push(c);
            }
        }
        pairs.push((key.to_owned(), value));
        key_start = end + 1;
    }
    pairs
}

fn snake(pascal: &str) -> String {
    let mut out = String::new();
    for (i, c) in pascal.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The canonical fields a CEF line says, by the mapping in `cef.rs` read backwards.
fn cef_to_canonical(line: &str) -> BTreeMap<String, String> {
    const SEVERITY: [&str; 8] = ["10", "9", "8", "7", "6", "4", "2", "0"];
    let (header, ext) = cef_header(line);
    assert_eq!(&header[..3], ["CEF:0", "kcpwatch", "kcpwatch"]);
    let mut fields = BTreeMap::new();
    fields.insert("observer_version".to_owned(), header[3].clone());
    // An alert: the rule id and name are the signature id and name, the event name is `cat`.
    let alert = header[4].starts_with("KCPW-");
    if alert {
        fields.insert("rule_id".to_owned(), header[4].clone());
        fields.insert("rule_name".to_owned(), header[5].clone());
    } else {
        fields.insert("name".to_owned(), header[4].clone());
    }
    let sev = SEVERITY.iter().position(|s| *s == header[6]).unwrap();
    fields.insert("severity".to_owned(), sev.to_string());
    let pairs = cef_extension(&ext);
    let get = |k: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    let direction = get("deviceDirection");
    let peer = header[4] == "kcp:error" && get("cs1").is_none();
    for (key, value) in &pairs {
        let field = match key.as_str() {
            "rt" => "time".to_owned(),
            "externalId" => "seq".to_owned(),
            "dvchost" => "observer_host".to_owned(),
            "deviceExternalId" => "observer_instance".to_owned(),
            "src" | "c6a2" => if alert { "group_ip" } else { "src_ip" }.to_owned(),
            "cat" if alert => "name".to_owned(),
            "start" | "end" if alert => {
                let ms: u64 = value.parse().unwrap();
                let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
                let text = humantime::format_rfc3339_micros(t).to_string();
                let field = if key == "start" {
                    "first_seen"
                } else {
                    "last_seen"
                };
                assert!(fields.insert(field.to_owned(), text).is_none());
                continue;
            }
            "spt" => "src_port".to_owned(),
            "dst" | "c6a3" => if peer { "peer_ip" } else { "dst_ip" }.to_owned(),
            "dpt" => if peer { "peer_port" } else { "dst_port" }.to_owned(),
            "dvc" | "c6a4" => "local_ip".to_owned(),
            "proto" => {
                fields.insert("transport".to_owned(), value.to_ascii_lowercase());
                continue;
            }
            "deviceDirection" => {
                let d = if value == "0" { "inbound" } else { "outbound" };
                fields.insert("direction".to_owned(), d.to_owned());
                continue;
            }
            "in" | "out" => {
                let inbound = direction.as_deref() == Some("0");
                let received = (key == "in") == inbound;
                if received {
                    "bytes_received"
                } else {
                    "bytes_sent"
                }
                .to_owned()
            }
            "reason" | "msg" => key.clone(),
            k if k.starts_with("cs") || k.starts_with("cn") => {
                if k.ends_with("Label") {
                    continue;
                }
                get(&format!("{k}Label")).expect("a label")
            }
            k if k.starts_with("KcpwatchKcpwatch") => snake(&k["KcpwatchKcpwatch".len()..]),
            "act" | "outcome" | "start" | "end" | "c6a2Label" | "c6a3Label" | "c6a4Label" => {
                continue
            }
            other => panic!("unexpected CEF key {other}"),
        };
        assert!(
            fields.insert(field.clone(), value.clone()).is_none(),
            "{field} twice"
        );
    }
    fields
}

#[test]
fn cef_round_trips_every_field() {
    for (source, r) in records() {
        let text = line(Format::Cef, &r);
        let parsed = cef_to_canonical(&text);
        let expected: BTreeMap<String, String> = r
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "ts" | "level" | "level_name"))
            .map(|(k, v)| (k.clone(), as_text(v)))
            .collect();
        assert_eq!(parsed, expected, "{source}: {text}");
    }
}

#[test]
fn cef_escapes_header_and_extension() {
    let r = crafted("kcp:error", |r| {
        r.get("peer_ip") == Some(&json!("2001:db8::44"))
    });
    let text = line(Format::Cef, &r);
    assert!(text.starts_with("CEF:0|kcpwatch|kcpwatch|0.1.0\\|rc\\\\1=2\\nx|kcp:error|Error|7|"));
    assert!(text.contains(" c6a3=2001:db8::44 c6a3Label=Destination IPv6 Address dpt=7777"));
    assert!(text.contains("a\\=b | c\\nnext\\rline — Grüße, 東京 🎮"));
    let closed = crafted("kcp:connection_closed", |r| {
        r.get("direction") == Some(&json!("inbound"))
    });
    let text = line(Format::Cef, &closed);
    for part in [
        "|kcp:connection_closed|Connection closed|2|",
        " src=203.0.113.7 spt=52144 dst=10.0.0.5 dpt=4000 proto=UDP",
        " in=181344 out=903112",
        " start=1764170000408 end=1764170092412",
        " cs1=K031iIoGxR7fm5m9aE3dISp cs1Label=uid",
        " cn1=1 cn1Label=conv",
    ] {
        assert!(text.contains(part), "{part} not in {text}");
    }
}

// ------------------------------------------------------------------------------------ RFC 5424

struct Syslog {
    pri: u32,
    timestamp: String,
    hostname: String,
    app_name: String,
    procid: String,
    msgid: String,
    sd_id: String,
    params: Vec<(String, String)>,
    msg: Option<String>,
}

fn parse_rfc5424(line: &str) -> Syslog {
    let rest = line.strip_prefix('<').unwrap();
    let (pri, rest) = rest.split_once(">1 ").unwrap();
    let mut header = rest.splitn(6, ' ');
    let mut next = || header.next().unwrap().to_owned();
    let (timestamp, hostname, app_name, procid, msgid) = (next(), next(), next(), next(), next());
    let sd = header.next().unwrap();
    for field in [&hostname, &app_name, &procid, &msgid] {
        assert!(field.chars().all(|c| ('!'..='~').contains(&c)), "{field}");
    }
    assert!(hostname.len() <= 255 && app_name.len() <= 48);
    assert!(procid.len() <= 128 && msgid.len() <= 32);
    let sd = sd.strip_prefix('[').expect("one SD-ELEMENT");
    let mut chars = sd.char_indices().peekable();
    let mut sd_id = String::new();
    while let Some(&(_, c)) = chars.peek() {
        if c == ' ' || c == ']' {
            break;
        }
        sd_id.push(c);
        chars.next();
    }
    let mut params = Vec::new();
    let mut msg = None;
    loop {
        match chars.next() {
            Some((_, ' ')) => {
                let mut name = String::new();
                for (_, c) in chars.by_ref() {
                    if c == '=' {
                        break;
                    }
                    name.push(c);
                }
                assert!(
                    name.len() <= 32 && !name.contains([' ', ']', '"']),
                    "{name}"
                );
                assert_eq!(chars.next().map(|(_, c)| c), Some('"'));
                let mut value = String::new();
                loop {
                    match chars.next().unwrap().1 {
                        '\\' => match chars.next().unwrap().1 {
                            c @ ('"' | '\\' | ']') => value.push(c),
                            // RFC 5424 keeps any other backslash as written: a writer that
                            // produced one would make two texts arrive the same.
                            c => panic!("\\{c} is not an RFC 5424 escape: {line}"),
                        },
                        '"' => break,
                        c => {
                            assert!(!c.is_control(), "raw control character in {line:?}");
                            value.push(c);
                        }
                    }
                }
                params.push((name, percent_decode(&value)));
            }
            Some((i, ']')) => {
                let rest = &sd[i + 1..];
                if !rest.is_empty() {
                    let text = rest.strip_prefix(" \u{feff}").expect("SP BOM MSG");
                    msg = Some(text.to_owned());
                }
                break;
            }
            other => panic!("bad structured data at {other:?}"),
        }
    }
    Syslog {
        pri: pri.parse().unwrap(),
        timestamp,
        hostname,
        app_name,
        procid,
        msgid,
        sd_id,
        params,
        msg,
    }
}

/// The percent rule of `rfc5424.rs`: `%XX` is the byte XX, applied after RFC 5424's own
/// unescaping; a `%` not followed by two upper-case hex digits is not written by kcpwatch.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
            assert_eq!(hex, hex.to_uppercase(), "{text}");
            out.push(u8::from_str_radix(hex, 16).unwrap_or_else(|_| panic!("bare % in {text}")));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

#[test]
fn rfc5424_round_trips_every_field() {
    for (source, r) in records() {
        let text = line(Format::Rfc5424, &r);
        let s = parse_rfc5424(&text);
        assert_eq!(s.pri as usize, 16 * 8 + severity(&r), "{source}");
        assert_eq!(s.timestamp, r["ts"].as_str().unwrap());
        assert!(humantime::parse_rfc3339(&s.timestamp).is_ok());
        assert_eq!(s.app_name, "kcpwatch");
        assert_eq!(s.msgid, r["name"].as_str().unwrap());
        let instance = r["observer_instance"].as_str().unwrap();
        assert_eq!(s.procid, if instance.is_empty() { "-" } else { instance });
        let host = r["observer_host"].as_str().unwrap();
        if host.is_empty() {
            assert_eq!(s.hostname, "-");
        } else if host.chars().all(|c| ('!'..='~').contains(&c)) {
            assert_eq!(s.hostname, host);
        }
        assert_eq!(s.sd_id, "kcp@32473");
        let params: Vec<(String, String)> = s.params;
        let expected: Vec<(String, String)> =
            r.iter().map(|(k, v)| (k.clone(), as_text(v))).collect();
        assert_eq!(params, expected, "{source}: {text}");
        let msg = r["msg"]
            .as_str()
            .unwrap()
            .replace(|c: char| c.is_ascii_control(), " ");
        assert_eq!(s.msg.as_deref(), Some(msg.as_str()), "{source}");
    }
}

#[test]
fn rfc5424_escapes_and_options() {
    let r = crafted("kcp:error", |r| {
        r.get("peer_ip") == Some(&json!("2001:db8::44"))
    });
    let text = line(Format::Rfc5424, &r);
    // A host name that is not printable ASCII is made so in the header, and exact in the SD.
    assert!(text.starts_with("<131>1 2025-11-26T15:14:55.812320Z _dge|host=1\\x]\"q kcpwatch "));
    assert!(text.contains(r#" observer_host="édge|host=1\\x\]\"q" "#));
    assert!(text.contains(r#"peer said \"bye\" \\ [x\] a=b | c%0Anext%0Dline — Grüße, 東京 🎮""#));
    // The percent rule: `%` itself and every control character, nothing else.
    let mut pct = r.clone();
    pct.insert("msg".into(), json!("100% \t\u{0}\u{7f} %0A stays"));
    let text = line(Format::Rfc5424, &pct);
    assert!(
        text.contains(r#" msg="100%25 %09%00%7F %250A stays"]"#),
        "{text}"
    );
    assert_eq!(
        parse_rfc5424(&text).params.last().unwrap().1,
        "100% \t\u{0}\u{7f} %0A stays"
    );

    let options = FormatOptions {
        syslog_facility: 13,
        app_name: Some("arena server".into()),
        hostname: Some("gw1".into()),
        sd_id: Some("kcp@99999".into()),
        ..FormatOptions::default()
    };
    let mut out = String::new();
    write_with(Format::Rfc5424, &r, &options, &mut out);
    let s = parse_rfc5424(out.trim_end());
    assert_eq!(s.pri, 13 * 8 + 3);
    assert_eq!(s.hostname, "gw1");
    assert_eq!(s.app_name, "arena_server");
    assert_eq!(s.sd_id, "kcp@99999");
}

// ----------------------------------------------------------------------------------------- GELF

#[test]
fn gelf_structure() {
    for (source, r) in records() {
        let g = json_line(Format::Gelf, &r);
        let g = g.as_object().unwrap();
        assert_eq!(g["version"], "1.1");
        assert!(!g["host"].as_str().unwrap().is_empty(), "{source}");
        assert_eq!(g["short_message"], r["msg"], "{source}");
        assert_eq!(g["level"], r["severity"], "{source}");
        let ts = g["timestamp"].as_f64().unwrap();
        let want = micros(r["ts"].as_str().unwrap()) as f64 / 1e6;
        assert!((ts - want).abs() < 1e-5, "{source}: {ts} {want}");
        let host = r["observer_host"].as_str().unwrap();
        if !host.is_empty() {
            assert_eq!(g["host"], host);
        }
        for (key, value) in g {
            if ["version", "host", "short_message", "timestamp", "level"].contains(&key.as_str()) {
                continue;
            }
            assert!(key.starts_with('_') && key != "_id", "{source}: {key}");
            assert!(key[1..]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)));
            assert!(value.is_string() || value.is_number(), "{source}: {key}");
        }
        for (key, value) in &r {
            if key == "msg" || key == "ts" {
                continue;
            }
            let got = &g[&format!("_{key}")];
            match value {
                Value::Bool(b) => assert_eq!(got, &json!(b.to_string()), "{source}: {key}"),
                other => assert_eq!(got, other, "{source}: {key}"),
            }
        }
    }
}

// ------------------------------------------------------------------------------------------ HEC

#[test]
fn hec_structure() {
    for (source, r) in records() {
        let h = json_line(Format::SplunkHec, &r);
        let want = micros(r["ts"].as_str().unwrap()) as f64 / 1e6;
        assert!(
            (h["time"].as_f64().unwrap() - want).abs() < 1e-5,
            "{source}"
        );
        assert_eq!(h["source"], "kcpwatch");
        assert_eq!(h["sourcetype"], "kcpwatch:event");
        assert!(h.get("index").is_none());
        let host = r["observer_host"].as_str().unwrap();
        if host.is_empty() {
            assert!(h.get("host").is_none(), "{source}");
        } else {
            assert_eq!(h["host"], host);
        }
        assert_eq!(h["event"], Value::Object(r.clone()), "{source}");
    }
    let (_, r) = &records()[0];
    let options = FormatOptions {
        hec_index: Some("security".into()),
        hec_source: Some("arena".into()),
        hec_sourcetype: Some("_json".into()),
        ..FormatOptions::default()
    };
    let mut out = String::new();
    write_with(Format::SplunkHec, r, &options, &mut out);
    let h: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(h["index"], "security");
    assert_eq!(h["source"], "arena");
    assert_eq!(h["sourcetype"], "_json");
}

// ----------------------------------------------------------------------------------------- OTLP

fn any_value(v: &Value) -> Value {
    let obj = v.as_object().unwrap();
    assert_eq!(obj.len(), 1, "one AnyValue field: {v}");
    let (kind, inner) = obj.iter().next().unwrap();
    match kind.as_str() {
        "stringValue" => inner.clone(),
        "boolValue" => {
            assert!(inner.is_boolean());
            inner.clone()
        }
        "intValue" => {
            let s = inner.as_str().expect("int64 as a string");
            json!(s.parse::<i64>().unwrap())
        }
        other => panic!("unexpected AnyValue {other}"),
    }
}

#[test]
fn otlp_structure() {
    const SEVERITY_NUMBER: [u64; 8] = [21, 19, 18, 17, 13, 10, 9, 5];
    for (source, r) in records() {
        let o = json_line(Format::OtlpJson, &r);
        let resource_logs = o["resourceLogs"].as_array().unwrap();
        assert_eq!(resource_logs.len(), 1);
        let resource = &resource_logs[0]["resource"]["attributes"];
        let resource: BTreeMap<&str, Value> = resource
            .as_array()
            .unwrap()
            .iter()
            .map(|kv| (kv["key"].as_str().unwrap(), any_value(&kv["value"])))
            .collect();
        for (attr, field) in [
            ("service.name", "observer_service"),
            ("service.instance.id", "observer_instance"),
            ("host.name", "observer_host"),
        ] {
            if r[field] != "" {
                assert_eq!(resource[attr], r[field], "{source}: {attr}");
            }
        }
        let scope_logs = &resource_logs[0]["scopeLogs"][0];
        assert_eq!(scope_logs["scope"]["name"], "kcpwatch");
        let records = scope_logs["logRecords"].as_array().unwrap();
        assert_eq!(records.len(), 1);
        let log = &records[0];
        let nanos = micros(r["ts"].as_str().unwrap()) * 1000;
        assert_eq!(log["timeUnixNano"], json!(nanos.to_string()), "{source}");
        assert_eq!(log["observedTimeUnixNano"], json!(nanos.to_string()));
        assert_eq!(
            log["severityNumber"],
            SEVERITY_NUMBER[severity(&r)],
            "{source}"
        );
        assert_eq!(log["severityText"], r["level_name"]);
        assert_eq!(log["body"]["stringValue"], r["msg"]);
        assert_eq!(log["eventName"], r["name"]);
        let attributes: BTreeMap<String, Value> = log["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|kv| {
                (
                    kv["key"].as_str().unwrap().to_owned(),
                    any_value(&kv["value"]),
                )
            })
            .collect();
        assert_eq!(attributes["event.name"], r["name"]);
        for (key, value) in &r {
            let attr = match key.as_str() {
                "ts" | "time" | "msg" | "name" | "level" | "level_name" | "severity"
                | "observer_host" | "observer_service" | "observer_instance"
                | "observer_version" => continue,
                "src_ip" => "source.address".to_owned(),
                "src_port" => "source.port".to_owned(),
                "dst_ip" => "destination.address".to_owned(),
                "dst_port" => "destination.port".to_owned(),
                "peer_ip" => "network.peer.address".to_owned(),
                "peer_port" => "network.peer.port".to_owned(),
                "local_ip" => "network.local.address".to_owned(),
                "local_port" => "network.local.port".to_owned(),
                "transport" => "network.transport".to_owned(),
                other => format!("kcp.{other}"),
            };
            assert_eq!(attributes.get(&attr), Some(value), "{source}: {attr}");
        }
    }
}

// ---------------------------------------------------------------------------------- secure mode

const OBSERVED_PEER: &str = "203.0.113.7:52144";
const MOVED_PEER: &str = "198.51.100.40:61002";
const SERVER_LOCAL: &str = "10.0.0.5:4000";
/// Every address of the secure-mode records, as text: none may appear under a privacy mode.
const RAW_ADDRESSES: [&str; 11] = [
    "203.0.113.7",
    "198.51.100.40",
    "198.51.100.23",
    "10.0.0.5",
    "10.0.0.6",
    "192.0.2.99",
    "2001:db8::20",
    "2001:db8::21",
    "2001:db8:0:1::a",
    // The alerts' grouping keys.
    ALERT_SOURCE,
    ALERT_SOURCE_V6,
];

/// The source the per-source alerts are about.
const ALERT_SOURCE: &str = "192.0.2.7";
/// An IPv6 source: the detectors group IPv6 by /64, keyed by its first address.
const ALERT_SOURCE_V6: &str = "2001:db8:bad:1::";
/// Unix ms of the alerts' first observation.
const ALERT_FIRST_SEEN: u64 = 1_764_169_995_412;

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

fn observer() -> Observer {
    Observer {
        host: "game-eu-1".into(),
        service: "arena".into(),
        instance: "L031iIo9tYbS4XkP2mQ7wZe".into(),
        version: "0.1.0".into(),
    }
}

fn conn(uid: u128, conv: u32, peer: &str, local: &str, direction: Direction) -> ConnectionRef {
    ConnectionRef {
        uid: Uid::from_uuid(uid),
        conv,
        peer: addr(peer),
        local: addr(local),
        direction,
        user: kcpwatch_proto::events::UserId::NONE,
    }
}

fn failed(
    conn: ConnectionRef,
    reason: FailReason,
    trigger: Option<DropTrigger>,
    rule: &'static str,
    suppressed: u64,
) -> SecurityEvent {
    SecurityEvent::ConnectionFailed(ConnectionFailed {
        conn,
        reason,
        trigger,
        rule: DropRule::from_name(rule).expect("a declared rule"),
        suppressed,
    })
}

fn state(conn: ConnectionRef, old: ConnectionState, new: ConnectionState) -> SecurityEvent {
    SecurityEvent::ConnectionStateUpdated(ConnectionStateUpdated { conn, old, new })
}

fn dropped(
    remote: &str,
    conv: Option<u32>,
    uid: Option<u128>,
    trigger: DropTrigger,
    rule: &'static str,
    len: u32,
    suppressed: u64,
) -> SecurityEvent {
    SecurityEvent::PacketDropped(PacketDropped {
        remote: addr(remote),
        local: addr(SERVER_LOCAL),
        conv,
        uid: uid.map(Uid::from_uuid),
        trigger,
        rule: DropRule::from_name(rule).expect("a declared rule"),
        len,
        suppressed,
    })
}

/// A session that followed its peer from [`OBSERVED_PEER`] to [`MOVED_PEER`].
fn moved(uid: u128) -> SecurityEvent {
    SecurityEvent::PeerAddressChanged(PeerAddressChanged {
        conn: conn(uid, 1, MOVED_PEER, SERVER_LOCAL, Direction::Inbound),
        old_peer: addr(OBSERVED_PEER),
        old_local: addr(SERVER_LOCAL),
    })
}

/// Secure-mode events under full addresses: a server's handshakes, moves, drops and failed
/// attempts, then a client's.
fn secure_events() -> Vec<SecurityEvent> {
    use ConnectionState::{Attempted, Closed, Established, Handshaking};
    use Direction::{Inbound, Outbound};
    const A: u128 = 0x0190_0000_0000_7000_8000_0000_0000_0001;
    const B: u128 = 0x0190_0000_0000_7000_8000_0000_0000_0002;
    const C: u128 = 0x0190_0000_0000_7000_8000_0000_0000_0003;
    const D: u128 = 0x0190_0000_0000_7000_8000_0000_0000_0004;
    const E: u128 = 0x0190_0000_0000_7000_8000_0000_0000_0005;
    let session = SessionConfig::default();
    let a = conn(A, 1, OBSERVED_PEER, SERVER_LOCAL, Inbound);
    let b = conn(B, 2, "203.0.113.9:40000", SERVER_LOCAL, Inbound);
    let hostile = |conv| conn(C, conv, "198.51.100.23:61000", SERVER_LOCAL, Inbound);
    let client = conn(
        D,
        0,
        "[2001:db8:0:1::a]:4000",
        "[2001:db8::20]:50812",
        Outbound,
    );
    let client2 = conn(
        E,
        77,
        "[2001:db8:0:1::a]:4000",
        "[2001:db8::20]:50813",
        Outbound,
    );
    vec![
        SecurityEvent::ListenerStarted(ListenerStarted {
            local: addr("0.0.0.0:4000"),
            settings: ListenerSettings {
                mode: "secure",
                max_connections: 10_000,
                accept_inbound: true,
                session,
            },
        }),
        // A handshake that completes, a NAT rebinding (port only), then a move to another
        // address and local interface.
        SecurityEvent::ConnectionAttempted(ConnectionAttempted { conn: a }),
        state(a, Attempted, Handshaking),
        state(a, Handshaking, Established),
        SecurityEvent::ConnectionEstablished(ConnectionEstablished {
            conn: a,
            secure: Some(kcpwatch_proto::events::SecureSession {
                version: 2,
                suite: "Noise_NK_25519_ChaChaPoly_BLAKE2s",
                key_id: [0x5a, 0x01, 0xc3, 0x7e],
            }),
        }),
        SecurityEvent::PeerAddressChanged(PeerAddressChanged {
            conn: conn(A, 1, "203.0.113.7:52200", SERVER_LOCAL, Inbound),
            old_peer: addr(OBSERVED_PEER),
            old_local: addr(SERVER_LOCAL),
        }),
        SecurityEvent::PeerAddressChanged(PeerAddressChanged {
            conn: conn(A, 1, MOVED_PEER, "10.0.0.6:4000", Inbound),
            old_peer: addr("203.0.113.7:52200"),
            old_local: addr(SERVER_LOCAL),
        }),
        // Session datagrams refused by their tag and by the replay window.
        dropped(
            MOVED_PEER,
            Some(1),
            Some(A),
            DropTrigger::DecryptFailed,
            "session_aead",
            64,
            0,
        ),
        dropped(
            MOVED_PEER,
            Some(1),
            Some(A),
            DropTrigger::Replayed,
            "replay_window",
            64,
            0,
        ),
        dropped(
            "192.0.2.99:40000",
            Some(9),
            None,
            DropTrigger::Replayed,
            "replay_window",
            40,
            12,
        ),
        dropped(
            "192.0.2.99:40000",
            None,
            None,
            DropTrigger::TooShort,
            "empty",
            0,
            0,
        ),
        dropped(
            "192.0.2.99:40000",
            None,
            None,
            DropTrigger::BadCmd,
            "unknown_type",
            9,
            0,
        ),
        dropped(
            "192.0.2.99:40000",
            Some(5),
            None,
            DropTrigger::TooShort,
            "session_too_short",
            11,
            0,
        ),
        dropped(
            "192.0.2.99:40000",
            None,
            None,
            DropTrigger::BadLength,
            "handshake_length",
            30,
            0,
        ),
        dropped(
            "192.0.2.99:40000",
            None,
            None,
            DropTrigger::UnknownConnection,
            "no_handshake",
            40,
            0,
        ),
        dropped(
            "192.0.2.99:40000",
            None,
            None,
            DropTrigger::UnknownConnection,
            "nonce_in_use",
            60,
            0,
        ),
        dropped(
            "192.0.2.99:40000",
            None,
            None,
            DropTrigger::BadCmd,
            "hello_to_client",
            60,
            0,
        ),
        // HELLOs refused before anything is kept.
        failed(
            hostile(0),
            FailReason::InvalidCookie,
            Some(DropTrigger::BadTag),
            "cookie_mac",
            0,
        ),
        failed(
            hostile(0),
            FailReason::ExpiredCookie,
            Some(DropTrigger::BadTag),
            "cookie_expired",
            0,
        ),
        failed(
            hostile(0),
            FailReason::RateLimited,
            Some(DropTrigger::RateLimited),
            "handshake_rate_per_ip",
            0,
        ),
        failed(
            hostile(0),
            FailReason::RateLimited,
            Some(DropTrigger::RateLimited),
            "handshake_rate_global",
            5120,
        ),
        failed(
            hostile(0),
            FailReason::VersionMismatch,
            Some(DropTrigger::BadCmd),
            "unsupported_version",
            0,
        ),
        failed(
            hostile(0),
            FailReason::Malformed,
            Some(DropTrigger::TooShort),
            "hello_too_short",
            0,
        ),
        failed(
            hostile(0),
            FailReason::Malformed,
            Some(DropTrigger::BadLength),
            "hello_too_long",
            0,
        ),
        failed(
            hostile(0),
            FailReason::Capacity,
            Some(DropTrigger::OverLimit),
            "max_connections_per_ip",
            0,
        ),
        failed(
            hostile(0),
            FailReason::Capacity,
            Some(DropTrigger::OverLimit),
            "max_connections_per_prefix",
            0,
        ),
        // Protocol v2: a HELLO for a key this server does not hold, and one whose Noise
        // message does not decrypt.
        failed(
            hostile(0),
            FailReason::UnknownServerKey,
            Some(DropTrigger::BadCmd),
            "unknown_key_id",
            0,
        ),
        failed(
            hostile(0),
            FailReason::DecryptFailed,
            Some(DropTrigger::DecryptFailed),
            "hello_noise",
            0,
        ),
        // A kicked player: the peer's DISCONNECT carried its application's code and text.
        SecurityEvent::ConnectionClosed(kcpwatch_proto::events::ConnectionClosed {
            conn: a,
            reason: kcpwatch_proto::CloseReason::PeerClosed,
            initiator: kcpwatch_proto::Initiator::Remote,
            peer_reason: Some(kcpwatch_proto::CloseReason::LocalClosed),
            app_close: kcpwatch_proto::AppClose::new(4001, "kicked: idle in lobby"),
            summary: kcpwatch_proto::ConnectionSummary {
                duration_ms: 61_250,
                direction: Inbound,
                ..kcpwatch_proto::ConnectionSummary::empty(a)
            },
            params: SessionConfig::default(),
        }),
        // A validated client the application turned away, and one it never answered.
        SecurityEvent::ConnectionAttempted(ConnectionAttempted { conn: b }),
        state(b, Attempted, Handshaking),
        state(b, Handshaking, Closed),
        failed(b, FailReason::AuthRejected, None, "authenticate", 0),
        failed(b, FailReason::AuthRejected, None, "auth_timeout", 3),
        failed(
            b,
            FailReason::Capacity,
            Some(DropTrigger::OverLimit),
            "max_pending_auth",
            0,
        ),
        // A client: its handshake times out; another is refused by the server; a session whose
        // server moved.
        SecurityEvent::ListenerStarted(ListenerStarted {
            local: addr("[::]:50812"),
            settings: ListenerSettings {
                mode: "secure",
                max_connections: 1,
                accept_inbound: false,
                session,
            },
        }),
        SecurityEvent::ConnectionAttempted(ConnectionAttempted { conn: client }),
        state(client, Attempted, Handshaking),
        state(client, Handshaking, Closed),
        failed(
            client,
            FailReason::HandshakeTimeout,
            None,
            "handshake_timeout",
            0,
        ),
        failed(client2, FailReason::Capacity, None, "server_rejected", 0),
        failed(
            client2,
            FailReason::UnknownServerKey,
            None,
            "server_rejected",
            0,
        ),
        failed(
            client2,
            FailReason::ServerAuthFailed,
            None,
            "accept_noise",
            0,
        ),
        failed(
            client2,
            FailReason::VersionMismatch,
            None,
            "server_rejected",
            0,
        ),
        SecurityEvent::PeerAddressChanged(PeerAddressChanged {
            conn: conn(
                E,
                77,
                "[2001:db8:0:1::a]:4001",
                "[2001:db8::21]:50813",
                Outbound,
            ),
            old_peer: addr("[2001:db8:0:1::a]:4000"),
            old_local: addr("[2001:db8::20]:50813"),
        }),
    ]
}

fn alert(rule: Rule, key: Option<&str>, observed: u64, update: bool) -> SecurityEvent {
    let (threshold, window_ms) = match rule {
        Rule::HandshakeFloodSource => (100, 10_000),
        Rule::HandshakeFloodGlobal => (1_000, 10_000),
        Rule::FailedHandshakesSource => (20, 60_000),
        Rule::ConvScanSource => (32, 60_000),
        Rule::InvalidBurst => (1_000, 10_000),
        Rule::DeadLinkBurst => (10, 60_000),
        Rule::ErrorRateSpike => (50, 60_000),
        Rule::ChurnSource => (30, 60_000),
        Rule::PerIpCap => (5, 60_000),
        Rule::DecryptFailedSource => (10, 10_000),
    };
    SecurityEvent::Alert(Alert {
        rule,
        key: key.map(|k| k.parse().unwrap()),
        threshold,
        window_ms,
        observed,
        first_seen_ms: ALERT_FIRST_SEEN,
        last_seen_ms: ALERT_FIRST_SEEN + if update { 70_000 } else { 10_000 },
        update,
    })
}

/// One alert of every rule (per-source ones about [`ALERT_SOURCE`], one about an IPv6 /64),
/// and an update.
fn alert_events() -> Vec<SecurityEvent> {
    let v4 = Some(ALERT_SOURCE);
    let v6 = Some(ALERT_SOURCE_V6);
    vec![
        alert(Rule::HandshakeFloodSource, v4, 120, false),
        alert(Rule::HandshakeFloodSource, v4, 340, true),
        alert(Rule::HandshakeFloodGlobal, None, 5_210, false),
        alert(Rule::FailedHandshakesSource, v4, 21, false),
        alert(Rule::ConvScanSource, v6, 40, false),
        alert(Rule::InvalidBurst, None, 1_204, false),
        alert(Rule::DeadLinkBurst, None, 12, false),
        alert(Rule::ErrorRateSpike, None, 81, false),
        alert(Rule::ChurnSource, v4, 31, false),
        alert(Rule::PerIpCap, v6, 5, false),
    ]
}

/// The privacy modes of `docs/privacy.md`, keys fixed.
fn privacy_modes() -> Vec<IpPrivacy> {
    vec![
        IpPrivacy::truncate(24, 48).unwrap(),
        IpPrivacy::hmac("k1", &[7u8; 32]).unwrap(),
        IpPrivacy::cryptopan(b"0123456789abcdef0123456789abcdef").unwrap(),
        IpPrivacy::Omit,
    ]
}

/// What the canonical writer makes of the secure-mode events: everything under full
/// addresses, then the moves and a refused client under each privacy mode.
fn secure_lines() -> String {
    const UID: u128 = 0x0190_0000_0000_7000_8000_0000_0000_0009;
    let mut out = String::new();
    let mut seq = 0;
    let mut write_all = |writer: &mut CanonicalWriter, events: Vec<SecurityEvent>| {
        for event in events {
            let record = kcpwatch_log::Record {
                seq,
                time_us: 1_764_170_005_412_305 + seq * 1000,
                event,
            };
            writer.write(&record, &mut out);
            seq += 1;
        }
    };
    write_all(&mut CanonicalWriter::new(observer(), 0), secure_events());
    for privacy in privacy_modes() {
        let mut writer = CanonicalWriter::with_privacy(observer(), 0, privacy, false);
        let refused = conn(UID, 3, OBSERVED_PEER, SERVER_LOCAL, Direction::Inbound);
        write_all(
            &mut writer,
            vec![
                moved(UID),
                failed(refused, FailReason::AuthRejected, None, "authenticate", 0),
            ],
        );
    }
    // Detector alerts, after the records above so that their lines stay as they were.
    write_all(&mut CanonicalWriter::new(observer(), 0), alert_events());
    for privacy in privacy_modes() {
        let mut writer = CanonicalWriter::with_privacy(observer(), 0, privacy, false);
        write_all(
            &mut writer,
            vec![
                alert(Rule::HandshakeFloodSource, Some(ALERT_SOURCE), 120, false),
                alert(Rule::ConvScanSource, Some(ALERT_SOURCE_V6), 40, true),
                alert(Rule::HandshakeFloodGlobal, None, 5_210, false),
            ],
        );
    }
    // Rules added since, last so that the lines above stay as they were.
    write_all(
        &mut CanonicalWriter::new(observer(), 0),
        vec![alert(
            Rule::DecryptFailedSource,
            Some(ALERT_SOURCE),
            10,
            false,
        )],
    );
    out
}

#[test]
fn secure_records_are_what_the_canonical_writer_writes() {
    let lines = secure_lines();
    let path = format!(
        "{}/tests/fixtures/events_secure.ndjson",
        env!("CARGO_MANIFEST_DIR")
    );
    if std::env::var_os("KCPWATCH_BLESS").is_some() {
        std::fs::write(&path, &lines).unwrap();
    }
    let fixture = fixture("events_secure.ndjson");
    for (i, (got, want)) in lines.lines().zip(fixture.lines()).enumerate() {
        assert_eq!(got, want, "events_secure.ndjson:{}", i + 1);
    }
    assert_eq!(
        lines.lines().count(),
        fixture.lines().count(),
        "rewrite it with KCPWATCH_BLESS=1"
    );
}

fn secure_records() -> Vec<Record> {
    secure_lines()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn peer_address_changed_carries_the_new_flow_and_the_old_addresses() {
    let records = secure_records();
    let moves: Vec<&Record> = records
        .iter()
        .filter(|r| r["name"] == "kcp:peer_address_changed" && !r.contains_key("ip_privacy"))
        .collect();
    assert_eq!(moves.len(), 3);
    // NAT rebinding: the port changed; src is the new peer (inbound), dst our address.
    let rebind = moves[0];
    assert_eq!(rebind["severity"], 5);
    assert_eq!(rebind["level_name"], "notice");
    assert_eq!(rebind["src_ip"], "203.0.113.7");
    assert_eq!(rebind["src_port"], 52200);
    assert_eq!(rebind["dst_ip"], "10.0.0.5");
    assert_eq!(rebind["old_peer_ip"], "203.0.113.7");
    assert_eq!(rebind["old_peer_port"], 52144);
    assert_eq!(rebind["old_local_ip"], "10.0.0.5");
    assert_eq!(rebind["old_local_port"], 4000);
    assert!(rebind["community_id"].as_str().unwrap().starts_with("1:"));
    assert_eq!(
        rebind["msg"],
        format!(
            "peer address changed {} conv=1: 203.0.113.7:52144 -> 203.0.113.7:52200",
            rebind["uid"].as_str().unwrap()
        )
    );
    // A move of both sides says so.
    assert!(moves[1]["msg"].as_str().unwrap().ends_with(
        ": 203.0.113.7:52200 -> 198.51.100.40:61002; local 10.0.0.5:4000 -> 10.0.0.6:4000"
    ));
    // Outbound: src is us (the new local address), dst the peer.
    let client = moves[2];
    assert_eq!(client["direction"], "outbound");
    assert_eq!(client["src_ip"], "2001:db8::21");
    assert_eq!(client["dst_port"], 4001);
    assert_eq!(client["old_peer_ip"], "2001:db8:0:1::a");
    assert_eq!(client["old_local_ip"], "2001:db8::20");
    assert!(client["msg"]
        .as_str()
        .unwrap()
        .contains(": [2001:db8:0:1::a]:4000 -> [2001:db8:0:1::a]:4001; local [2001:db8::20]:50813 -> [2001:db8::21]:50813"));

    // A failed attempt that no datagram caused has no trigger at all.
    let no_trigger: Vec<&Record> = records
        .iter()
        .filter(|r| r["name"] == "kcp:connection_failed" && !r.contains_key("trigger"))
        .collect();
    let rules: BTreeSet<&str> = no_trigger
        .iter()
        .map(|r| r["rule"].as_str().unwrap())
        .collect();
    assert_eq!(
        rules,
        BTreeSet::from([
            "accept_noise",
            "authenticate",
            "auth_timeout",
            "handshake_timeout",
            "server_rejected"
        ])
    );
    for r in records.iter().filter(|r| r.contains_key("trigger")) {
        assert!(r["trigger"].is_string());
    }
}

/// The address a privacy mode writes for `text` (`None` when it writes none).
fn private_text(privacy: &IpPrivacy, text: &str) -> (Option<String>, Option<String>) {
    match privacy.apply(addr(text).ip()) {
        PrivateIp::Ip(ip) => (Some(ip.to_string()), None),
        PrivateIp::Pseudonym(p) => (None, Some(p.as_str().to_owned())),
        PrivateIp::Omitted => (None, None),
    }
}

#[test]
fn peer_address_changed_old_addresses_follow_the_privacy_mode() {
    let records = secure_records();
    let modes = privacy_modes();
    for privacy in &modes {
        let mode = privacy.mode_name();
        let r = records
            .iter()
            .find(|r| {
                r["name"] == "kcp:peer_address_changed" && r.get("ip_privacy") == Some(&json!(mode))
            })
            .unwrap_or_else(|| panic!("no move under {mode}"));
        for (prefix, text) in [
            ("old_peer", OBSERVED_PEER),
            ("old_local", SERVER_LOCAL),
            ("src", MOVED_PEER),
            ("dst", SERVER_LOCAL),
        ] {
            let (ip, pseudonym) = private_text(privacy, text);
            assert_eq!(
                r.get(&format!("{prefix}_ip")).and_then(Value::as_str),
                ip.as_deref(),
                "{mode}: {prefix}_ip"
            );
            assert_eq!(
                r.get(&format!("{prefix}_ip_pseudonym"))
                    .and_then(Value::as_str),
                pseudonym.as_deref(),
                "{mode}: {prefix}_ip_pseudonym"
            );
            assert_eq!(
                r[&format!("{prefix}_port")],
                addr(text).port(),
                "{mode}: the port stays"
            );
        }
        // The same local address is transformed the same way, old or new.
        assert_eq!(r.get("old_local_ip"), r.get("dst_ip"), "{mode}");
        assert_eq!(
            r.get("old_local_ip_pseudonym"),
            r.get("dst_ip_pseudonym"),
            "{mode}"
        );
        assert!(!r.contains_key("community_id"), "{mode}");
    }
    let hmac = records
        .iter()
        .find(|r| {
            r["name"] == "kcp:peer_address_changed" && r.get("ip_privacy") == Some(&json!("hmac"))
        })
        .unwrap();
    assert_eq!(
        hmac["msg"],
        format!(
            "peer address changed {} conv=1: [{}]:52144 -> [{}]:61002",
            hmac["uid"].as_str().unwrap(),
            hmac["old_peer_ip_pseudonym"].as_str().unwrap(),
            hmac["src_ip_pseudonym"].as_str().unwrap()
        )
    );
    let omit = records
        .iter()
        .find(|r| {
            r["name"] == "kcp:peer_address_changed" && r.get("ip_privacy") == Some(&json!("omit"))
        })
        .unwrap();
    assert!(omit["msg"]
        .as_str()
        .unwrap()
        .ends_with(": *:52144 -> *:61002"));

    // No raw address anywhere under a privacy mode: not in the record, not in any format.
    for r in records.iter().filter(|r| r.contains_key("ip_privacy")) {
        let canonical = Value::Object(r.clone()).to_string();
        for f in Format::ALL {
            let text = line(f, r);
            for raw in RAW_ADDRESSES {
                assert!(
                    !canonical.contains(raw),
                    "{}: {raw} in {canonical}",
                    r["ip_privacy"]
                );
                assert!(
                    !text.contains(raw),
                    "{} {f}: {raw} in {text}",
                    r["ip_privacy"]
                );
            }
        }
    }
}

#[test]
fn formats_map_secure_mode_records() {
    let records = secure_records();
    let find = |name: &str, pick: &dyn Fn(&Record) -> bool| -> Record {
        records
            .iter()
            .find(|r| r["name"] == name && !r.contains_key("ip_privacy") && pick(r))
            .unwrap_or_else(|| panic!("no {name}"))
            .clone()
    };
    let rule = |rule: &'static str| move |r: &Record| r["rule"] == rule;

    // kcp:peer_address_changed
    let moved = find("kcp:peer_address_changed", &|r| r["direction"] == "inbound");
    let ecs = json_line(Format::Ecs, &moved);
    assert_eq!(ecs["event"]["kind"], "event");
    assert_eq!(ecs["event"]["category"], json!(["network"]));
    assert_eq!(ecs["event"]["type"], json!(["connection"]));
    assert_eq!(ecs["event"]["action"], "peer_address_changed");
    assert_eq!(ecs["event"]["outcome"], "success");
    assert_eq!(ecs["source"]["ip"], moved["src_ip"]);
    assert_eq!(ecs["source"]["port"], moved["src_port"]);
    assert_eq!(ecs["destination"]["ip"], moved["dst_ip"]);
    assert_eq!(ecs["network"]["direction"], "inbound");
    assert_eq!(ecs["kcp"]["old_peer_ip"], moved["old_peer_ip"]);
    assert_eq!(ecs["kcp"]["old_peer_port"], moved["old_peer_port"]);
    let related = ecs["related"]["ip"].as_array().unwrap();
    assert!(related.contains(&moved["old_peer_ip"]), "{related:?}");
    assert!(related.contains(&moved["src_ip"]), "{related:?}");
    let ocsf = json_line(Format::Ocsf, &moved);
    assert_eq!(ocsf["activity_id"], 99);
    assert_eq!(ocsf["activity_name"], "Peer Address Change");
    assert_eq!(ocsf["type_uid"], 400_199);
    assert_eq!(ocsf["status"], "Success");
    assert_eq!(ocsf["src_endpoint"]["ip"], moved["src_ip"]);
    assert_eq!(ocsf["dst_endpoint"]["port"], moved["dst_port"]);
    assert_eq!(ocsf["unmapped"]["old_peer_ip"], moved["old_peer_ip"]);
    assert!(ocsf.get("action_id").is_none() && ocsf.get("firewall_rule").is_none());
    assert!(ocsf["observables"]
        .as_array()
        .unwrap()
        .iter()
        .any(|o| o["name"] == "unmapped.old_peer_ip" && o["value"] == moved["old_peer_ip"]));
    let cef = line(Format::Cef, &moved);
    assert!(
        cef.contains("|kcp:peer_address_changed|Peer address changed|4|"),
        "{cef}"
    );
    assert!(
        cef.contains(" KcpwatchKcpwatchOldPeerIp=203.0.113.7 KcpwatchKcpwatchOldPeerPort=52144"),
        "{cef}"
    );
    assert!(
        cef.contains(" outcome=success") && !cef.contains(" act="),
        "{cef}"
    );
    let syslog = parse_rfc5424(&line(Format::Rfc5424, &moved));
    assert_eq!(syslog.msgid, "kcp:peer_address_changed");
    assert_eq!(syslog.pri, 16 * 8 + 5);

    // A failed attempt refused here without a datagram to blame (the application said no).
    let rejected = find("kcp:connection_failed", &rule("authenticate"));
    let ecs = json_line(Format::Ecs, &rejected);
    assert_eq!(ecs["event"]["type"], json!(["connection", "denied"]));
    assert_eq!(ecs["event"]["reason"], "auth_rejected");
    assert_eq!(ecs["rule"], json!({"name": "authenticate"}));
    assert!(ecs["kcp"].get("trigger").is_none());
    let ocsf = json_line(Format::Ocsf, &rejected);
    assert_eq!(ocsf["activity_id"], 5);
    assert_eq!(ocsf["action"], "Denied");
    assert_eq!(ocsf["firewall_rule"], json!({"name": "authenticate"}));
    let cef = line(Format::Cef, &rejected);
    assert!(
        cef.contains(" act=blocked") && !cef.contains("cs4"),
        "{cef}"
    );

    // A client's handshake that timed out: a failure, refused by nobody.
    let timeout = find("kcp:connection_failed", &rule("handshake_timeout"));
    let ecs = json_line(Format::Ecs, &timeout);
    assert_eq!(ecs["event"]["type"], json!(["connection"]));
    assert_eq!(ecs["event"]["outcome"], "failure");
    assert_eq!(ecs["network"]["direction"], "outbound");
    let ocsf = json_line(Format::Ocsf, &timeout);
    assert_eq!(ocsf["activity_id"], 4);
    assert!(ocsf.get("action").is_none() && ocsf.get("firewall_rule").is_none());
    assert_eq!(ocsf["unmapped"]["rule"], "handshake_timeout");
    assert!(!line(Format::Cef, &timeout).contains(" act="));

    // A client the server refused: the connection was refused, but not by this endpoint.
    let refused = find("kcp:connection_failed", &rule("server_rejected"));
    let ecs = json_line(Format::Ecs, &refused);
    assert_eq!(ecs["event"]["type"], json!(["connection", "denied"]));
    let ocsf = json_line(Format::Ocsf, &refused);
    assert_eq!(ocsf["activity_id"], 5);
    assert!(ocsf.get("action").is_none());
    assert!(!line(Format::Cef, &refused).contains(" act="));

    // The new triggers are rule categories like the others.
    for (trigger, rule_name) in [
        ("decrypt_failed", "session_aead"),
        ("replayed", "replay_window"),
        ("rate_limited", "handshake_rate_per_ip"),
    ] {
        let r = find(
            if trigger == "rate_limited" {
                "kcp:connection_failed"
            } else {
                "kcp:packet_dropped"
            },
            &|r| r.get("trigger") == Some(&json!(trigger)) && r["rule"] == rule_name,
        );
        let ecs = json_line(Format::Ecs, &r);
        assert_eq!(ecs["rule"], json!({"name": rule_name, "category": trigger}));
        let ocsf = json_line(Format::Ocsf, &r);
        assert_eq!(
            ocsf["firewall_rule"],
            json!({"name": rule_name, "category": trigger})
        );
        assert_eq!(ocsf["disposition"], "Blocked");
        let cef = line(Format::Cef, &r);
        assert!(
            cef.contains(&format!(" cs4={trigger} cs4Label=trigger")),
            "{cef}"
        );
        assert!(cef.contains(" act=blocked"), "{cef}");
    }

    // A handshake that ended without a connection is a failed transition.
    let ended = find("kcp:connection_state_updated", &|r| {
        r["prev_state"] == "handshaking" && r["state"] == "closed"
    });
    assert_eq!(
        json_line(Format::Ecs, &ended)["event"]["outcome"],
        "failure"
    );
    let listener = find("kcp:listener_started", &|r| r["role"] == "server");
    assert_eq!(listener["mode"], "secure");
    assert_eq!(listener["msg"], "listening on 0.0.0.0:4000 (secure mode)");
}

// --------------------------------------------------------------------------------------- alerts

#[test]
fn alerts_carry_the_rule_and_the_grouping_key() {
    let records = secure_records();
    let alerts: Vec<&Record> = records
        .iter()
        .filter(|r| r["name"] == "kcp:alert" && !r.contains_key("ip_privacy"))
        .collect();
    // Every rule, as the catalog names it.
    let ids: BTreeSet<&str> = alerts
        .iter()
        .map(|r| r["rule_id"].as_str().unwrap())
        .collect();
    let expected: BTreeSet<&str> = Rule::ALL.iter().map(|r| r.id()).collect();
    assert_eq!(ids, expected);
    for r in &alerts {
        let rule = Rule::ALL
            .into_iter()
            .find(|rule| rule.id() == r["rule_id"])
            .unwrap();
        assert_eq!(r["rule_name"], rule.name());
        assert_eq!(r["severity"], rule.severity().code());
        assert_eq!(
            r.get("mitre_technique").and_then(Value::as_str),
            rule.technique()
        );
        // No connection fields: an alert is about a source or the listener, not a flow.
        for key in [
            "uid",
            "conv",
            "src_ip",
            "dst_ip",
            "src_port",
            "community_id",
        ] {
            assert!(!r.contains_key(key), "{key} in {r:?}");
        }
        let source = r["group"] == "source";
        assert_eq!(r.contains_key("group_ip"), source, "{r:?}");
    }
    let first = alerts[0];
    assert_eq!(first["level_name"], "warning");
    assert_eq!(first["threshold"], 100);
    assert_eq!(first["window_ms"], 10_000);
    assert_eq!(first["observed"], 120);
    assert_eq!(first["first_seen"], "2025-11-26T15:13:15.412000Z");
    assert_eq!(first["last_seen"], "2025-11-26T15:13:25.412000Z");
    assert_eq!(first["update"], false);
    assert_eq!(first["group_ip"], ALERT_SOURCE);
    assert_eq!(
        first["msg"],
        "alert KCPW-001 (handshake_flood_source): 120 in 10000 ms, threshold 100 from 192.0.2.7"
    );
    assert_eq!(alerts[1]["update"], true);
    assert!(alerts[1]["msg"]
        .as_str()
        .unwrap()
        .starts_with("alert update KCPW-001"));
    let global = alerts.iter().find(|r| r["rule_id"] == "KCPW-002").unwrap();
    assert_eq!(global["level_name"], "alert");
    assert_eq!(global["group"], "listener");

    // The grouping key follows the privacy mode like every address, in fields and in msg.
    for privacy in &privacy_modes() {
        let mode = privacy.mode_name();
        let of_mode: Vec<&Record> = records
            .iter()
            .filter(|r| r["name"] == "kcp:alert" && r.get("ip_privacy") == Some(&json!(mode)))
            .collect();
        assert_eq!(of_mode.len(), 3, "{mode}");
        for (r, key) in of_mode[..2].iter().zip([ALERT_SOURCE, ALERT_SOURCE_V6]) {
            assert_eq!(r["group"], "source");
            let (ip, pseudonym) = match privacy.apply(key.parse().unwrap()) {
                PrivateIp::Ip(ip) => (Some(ip.to_string()), None),
                PrivateIp::Pseudonym(p) => (None, Some(p.as_str().to_owned())),
                PrivateIp::Omitted => (None, None),
            };
            assert_eq!(
                r.get("group_ip").and_then(Value::as_str),
                ip.as_deref(),
                "{mode}"
            );
            assert_eq!(
                r.get("group_ip_pseudonym").and_then(Value::as_str),
                pseudonym.as_deref(),
                "{mode}"
            );
            let msg = r["msg"].as_str().unwrap();
            let shown = match (&ip, &pseudonym) {
                (Some(ip), _) => format!(" from {ip}"),
                (_, Some(p)) => format!(" from [{p}]"),
                _ => " from one source".to_owned(),
            };
            assert!(msg.ends_with(&shown), "{mode}: {msg}");
        }
        assert_eq!(of_mode[2]["group"], "listener");
        assert!(
            !of_mode[2].contains_key("group_ip") && !of_mode[2].contains_key("group_ip_pseudonym")
        );
    }
    // (No raw address in any format under a privacy mode: checked with the other secure-mode
    // records by peer_address_changed_old_addresses_follow_the_privacy_mode.)
}

#[test]
fn formats_map_alerts() {
    let records = secure_records();
    let find = |rule: &str, mode: Option<&str>, update: bool| -> Record {
        records
            .iter()
            .find(|r| {
                r["name"] == "kcp:alert"
                    && r["rule_id"] == rule
                    && r.get("ip_privacy").and_then(Value::as_str) == mode
                    && r["update"] == update
            })
            .unwrap_or_else(|| panic!("no {rule} {mode:?}"))
            .clone()
    };

    // ECS: an alert document with the rule, the technique and the source.
    let flood = find("KCPW-001", None, false);
    let ecs = json_line(Format::Ecs, &flood);
    assert_eq!(ecs["event"]["kind"], "alert");
    assert_eq!(
        ecs["event"]["category"],
        json!(["intrusion_detection", "network"])
    );
    assert_eq!(ecs["event"]["type"], json!(["info"]));
    assert_eq!(ecs["event"]["action"], "alert");
    assert_eq!(ecs["event"]["severity"], 4);
    assert_eq!(ecs["event"]["start"], flood["first_seen"]);
    assert_eq!(ecs["event"]["end"], flood["last_seen"]);
    assert_eq!(
        ecs["rule"],
        json!({"id": "KCPW-001", "name": "handshake_flood_source"})
    );
    assert_eq!(
        ecs["threat"],
        json!({
            "framework": "MITRE ATT&CK",
            "technique": {
                "id": ["T1498"],
                "name": ["Network Denial of Service"],
                "subtechnique": {"id": ["T1498.001"], "name": ["Direct Network Flood"]}
            },
            "tactic": {"id": ["TA0040"], "name": ["Impact"]}
        })
    );
    assert_eq!(ecs["source"], json!({"ip": ALERT_SOURCE}));
    assert_eq!(ecs["related"]["ip"], json!([ALERT_SOURCE]));
    assert_eq!(ecs["network"]["type"], "ipv4");
    assert!(ecs.get("destination").is_none());
    for key in ["threshold", "window_ms", "observed", "update", "group"] {
        assert_eq!(ecs["kcp"][key], flood[key], "kcp.{key}");
    }
    for key in [
        "rule_id",
        "rule_name",
        "first_seen",
        "last_seen",
        "group_ip",
        "mitre_technique",
    ] {
        assert!(ecs["kcp"].get(key).is_none(), "kcp.{key} is mapped");
    }
    // A technique without a sub-technique, and a rule without a technique.
    let brute = json_line(Format::Ecs, &find("KCPW-003", None, false));
    assert_eq!(
        brute["threat"]["technique"],
        json!({"id": ["T1110"], "name": ["Brute Force"]})
    );
    assert_eq!(brute["threat"]["tactic"]["id"], json!(["TA0006"]));
    let rate = json_line(Format::Ecs, &find("KCPW-007", None, false));
    assert!(rate.get("threat").is_none() && rate.get("source").is_none());
    assert_eq!(rate["kcp"]["group"], "listener");
    // A pseudonym is no IP: it stays in kcp.*.
    let hidden = find("KCPW-001", Some("hmac"), false);
    let ecs = json_line(Format::Ecs, &hidden);
    assert!(ecs.get("source").is_none());
    assert_eq!(
        ecs["kcp"]["group_ip_pseudonym"],
        hidden["group_ip_pseudonym"]
    );

    // OCSF: Detection Finding, Create then Update of one finding.
    let created = json_line(Format::Ocsf, &flood);
    let updated = json_line(Format::Ocsf, &find("KCPW-001", None, true));
    assert_eq!(created["class_uid"], 2004);
    assert_eq!(created["type_uid"], 200_401);
    assert_eq!(updated["type_uid"], 200_402);
    assert_eq!(updated["activity_name"], "Update");
    assert_eq!(
        created["finding_info"]["uid"],
        updated["finding_info"]["uid"]
    );
    assert_eq!(
        created["finding_info"]["uid"],
        format!("L031iIo9tYbS4XkP2mQ7wZe:KCPW-001:{ALERT_SOURCE}:{ALERT_FIRST_SEEN}")
    );
    assert_eq!(
        created["finding_info"]["attacks"],
        json!([{
            "technique": {"uid": "T1498", "name": "Network Denial of Service"},
            "sub_technique": {"uid": "T1498.001", "name": "Direct Network Flood"},
            "tactic": {"uid": "TA0040", "name": "Impact"}
        }])
    );
    assert_eq!(created["severity_id"], 3);
    assert_eq!(
        json_line(Format::Ocsf, &find("KCPW-002", None, false))["severity_id"],
        5
    );
    assert!(created.get("status_id").is_none() && created.get("action_id").is_none());
    // Sources told apart under hmac too; the IPv6 key is an address.
    let v6 = json_line(Format::Ocsf, &find("KCPW-004", None, false));
    assert_eq!(v6["evidences"][0]["src_endpoint"]["ip"], ALERT_SOURCE_V6);
    let hidden_ocsf = json_line(Format::Ocsf, &hidden);
    assert!(hidden_ocsf.get("evidences").is_none());
    assert!(hidden_ocsf["finding_info"]["uid"]
        .as_str()
        .unwrap()
        .contains(hidden["group_ip_pseudonym"].as_str().unwrap()));

    // CEF: the rule is the signature, the event name the category, the source src.
    let cef = line(Format::Cef, &flood);
    assert!(
        cef.starts_with("CEF:0|kcpwatch|kcpwatch|0.1.0|KCPW-001|handshake_flood_source|6|"),
        "{cef}"
    );
    for part in [
        "|cat=kcp:alert ",
        &format!(" src={ALERT_SOURCE}"),
        " start=1764169995412",
        " end=1764170005412",
        " KcpwatchKcpwatchMitreTechnique=T1498.001",
        " KcpwatchKcpwatchThreshold=100",
        " KcpwatchKcpwatchObserved=120",
    ] {
        assert!(cef.contains(part), "{part} not in {cef}");
    }
    assert!(
        !cef.contains(" outcome=") && !cef.contains(" act="),
        "{cef}"
    );
    let global = line(Format::Cef, &find("KCPW-002", None, false));
    assert!(
        global.contains("|KCPW-002|handshake_flood_global|9|"),
        "{global}"
    );
    let v6 = line(Format::Cef, &find("KCPW-004", None, false));
    assert!(
        v6.contains(&format!(
            " c6a2={ALERT_SOURCE_V6} c6a2Label=Source IPv6 Address"
        )),
        "{v6}"
    );

    // Syslog: the severity and the event name.
    let syslog = parse_rfc5424(&line(Format::Rfc5424, &find("KCPW-002", None, false)));
    assert_eq!(syslog.pri, 16 * 8 + 1);
    assert_eq!(syslog.msgid, "kcp:alert");
}

// ---------------------------------------------------------------------------------------------
// The SIEM validation matrix: every event kind (and the variants that map differently) under
// every IP privacy mode, over IPv4 and IPv6, rendered in every format into
// `fixtures/siem/`. `__test__/siem-validation.test.mjs` validates those files against the
// pinned official definitions in `schema/official/` (ECS, OCSF, OTLP protobuf, and the CEF,
// RFC 5424 and GELF rules); this test keeps them equal to what the writers produce
// (`KCPWATCH_BLESS=1` rewrites them).

/// Addresses of one IP family: (peer, our bound address, our address, a second peer, a
/// client's own address, the wildcard bind).
struct Family {
    name: &'static str,
    peer: &'static str,
    moved_peer: &'static str,
    local: &'static str,
    client_local: &'static str,
    wildcard: &'static str,
    alert_source: &'static str,
}

const FAMILIES: [Family; 2] = [
    Family {
        name: "ipv4",
        peer: "198.51.100.23:61000",
        moved_peer: "198.51.100.24:61002",
        local: "192.0.2.10:4000",
        client_local: "192.0.2.20:50812",
        wildcard: "0.0.0.0:4000",
        alert_source: "192.0.2.7",
    },
    Family {
        name: "ipv6",
        peer: "[2001:db8:bad::23]:61000",
        moved_peer: "[2001:db8:bad::24]:61002",
        local: "[2001:db8::10]:4000",
        client_local: "[2001:db8::20]:50812",
        wildcard: "[::]:4000",
        alert_source: "2001:db8:bad:1::",
    },
];

/// Text with every character a format must escape: RFC 5424's `"`, `\`, `]` and CR/LF, CEF's
/// `|` and `=`, JSON's controls, `%` (the RFC 5424 percent rule), and non-ASCII.
const AWKWARD: &str = "sendto: \"x\" \\ [y] a=b |c| 100% \r\n\tGrüße, 東京";

/// The matrix's events for one family: (case name, event).
fn matrix_events(f: &Family) -> Vec<(&'static str, SecurityEvent)> {
    use kcpwatch_proto::events::{
        ConnectionClosed, ErrorEvent, ErrorType, History, ListenerStopped, LogLoss,
        ProtocolViolation, StatsEvent, Violation,
    };
    use kcpwatch_proto::{CloseReason, ConnectionSummary, Initiator};
    use ConnectionState::{Attempted, Closed, Established, Handshaking};
    use Direction::{Inbound, Outbound};
    const A: u128 = 0x0190_0000_0000_7000_8000_0000_0000_0101;
    const B: u128 = 0x0190_0000_0000_7000_8000_0000_0000_0102;
    let inbound = conn(A, 7, f.peer, f.local, Inbound);
    let outbound = conn(B, 9, f.peer, f.client_local, Outbound);
    let moved = conn(A, 7, f.moved_peer, f.local, Inbound);
    let summary = |c: ConnectionRef, direction| {
        let mut history = History::default();
        for (letter, originator) in [(b'd', true), (b'a', false), (b'd', false), (b'a', true)] {
            history.note(letter, originator);
        }
        ConnectionSummary {
            duration_ms: 61_250,
            datagrams_in: 812,
            bytes_in: 98_304,
            datagrams_out: 790,
            bytes_out: 120_112,
            payload_bytes_in: 80_000,
            payload_bytes_out: 100_000,
            messages_in: 700,
            messages_out: 690,
            unreliable: kcpwatch_proto::secure::datagram::DatagramCounters {
                sent: 95,
                received: 101,
                dropped: 3,
            },
            srtt_ms: 23,
            rttvar_ms: 4,
            rto_ms: 60,
            history,
            direction,
            ..ConnectionSummary::empty(c)
        }
    };
    let message = kcpwatch_proto::events::CappedText::format(AWKWARD);
    let error = |conn, peer, local, code| ErrorEvent {
        conn,
        peer,
        local,
        error_type: ErrorType::Network,
        code,
        message,
        suppressed: 0,
    };
    let mut output = kcpwatch_proto::events::CappedText::EMPTY;
    let _ = std::fmt::Write::write_str(&mut output, "syslog+tcp://127.0.0.1:601");
    let source = f.alert_source;
    vec![
        (
            "listener_started",
            SecurityEvent::ListenerStarted(ListenerStarted {
                local: addr(f.wildcard),
                settings: ListenerSettings {
                    mode: "secure",
                    max_connections: 10_000,
                    accept_inbound: true,
                    session: SessionConfig::default(),
                },
            }),
        ),
        (
            "listener_stopped",
            SecurityEvent::ListenerStopped(ListenerStopped {
                local: addr(f.wildcard),
                uptime_ms: 3_600_000,
                connections_total: 42,
            }),
        ),
        (
            "connection_attempted",
            SecurityEvent::ConnectionAttempted(ConnectionAttempted { conn: inbound }),
        ),
        (
            "connection_established",
            SecurityEvent::ConnectionEstablished(ConnectionEstablished {
                conn: inbound,
                secure: None,
            }),
        ),
        (
            // The user `authenticate` named, with characters every format must escape.
            "connection_established_user",
            SecurityEvent::ConnectionEstablished(ConnectionEstablished {
                conn: ConnectionRef {
                    user: kcpwatch_proto::events::UserId::new("player|42 = \"Zoë\" [東京] 100%")
                        .unwrap(),
                    ..inbound
                },
                secure: None,
            }),
        ),
        (
            "connection_failed_refused",
            failed(
                inbound,
                FailReason::RateLimited,
                Some(DropTrigger::RateLimited),
                "handshake_rate_per_ip",
                3,
            ),
        ),
        (
            "connection_failed_auth",
            failed(inbound, FailReason::AuthRejected, None, "authenticate", 0),
        ),
        (
            "connection_failed_timeout",
            failed(
                outbound,
                FailReason::HandshakeTimeout,
                None,
                "handshake_timeout",
                0,
            ),
        ),
        (
            "connection_state_updated",
            state(inbound, Handshaking, Established),
        ),
        (
            "connection_state_updated_failed",
            state(inbound, Attempted, Closed),
        ),
        (
            "connection_closed_inbound",
            SecurityEvent::ConnectionClosed(ConnectionClosed {
                conn: inbound,
                reason: CloseReason::PeerClosed,
                initiator: Initiator::Remote,
                peer_reason: None,
                app_close: kcpwatch_proto::AppClose::NONE,
                summary: summary(inbound, Inbound),
                params: SessionConfig::default(),
            }),
        ),
        (
            "connection_closed_outbound",
            SecurityEvent::ConnectionClosed(ConnectionClosed {
                conn: outbound,
                reason: CloseReason::DeadLink,
                initiator: Initiator::Local,
                peer_reason: None,
                app_close: kcpwatch_proto::AppClose::NONE,
                summary: summary(outbound, Outbound),
                params: SessionConfig::default(),
            }),
        ),
        (
            "peer_address_changed",
            SecurityEvent::PeerAddressChanged(PeerAddressChanged {
                conn: moved,
                old_peer: addr(f.peer),
                old_local: addr(f.local),
            }),
        ),
        (
            "packet_dropped",
            SecurityEvent::PacketDropped(PacketDropped {
                remote: addr(f.peer),
                local: addr(f.local),
                conv: Some(7),
                uid: Some(Uid::from_uuid(A)),
                trigger: DropTrigger::DecryptFailed,
                rule: DropRule::SessionAead,
                len: 64,
                suppressed: 0,
            }),
        ),
        (
            "packet_dropped_aggregate",
            SecurityEvent::PacketDropped(PacketDropped {
                remote: addr(f.moved_peer),
                local: addr(f.local),
                conv: None,
                uid: None,
                trigger: DropTrigger::TooShort,
                rule: DropRule::TooShort,
                len: 3,
                suppressed: 118,
            }),
        ),
        (
            "protocol_violation",
            SecurityEvent::ProtocolViolation(ProtocolViolation {
                conn: Some(inbound),
                violation: Violation::OversizedMessage,
                size: 70_000,
                limit: 65_536,
            }),
        ),
        (
            "protocol_violation_closed",
            SecurityEvent::ProtocolViolation(ProtocolViolation {
                conn: None,
                violation: Violation::MessageOnClosedConnection,
                size: 12,
                limit: 0,
            }),
        ),
        (
            "error_connection",
            SecurityEvent::Error(error(Some(outbound), None, None, "EHOSTUNREACH")),
        ),
        (
            "error_peer",
            SecurityEvent::Error(error(
                None,
                Some(addr(f.peer)),
                Some(addr(f.local)),
                "ECONNREFUSED",
            )),
        ),
        (
            "error_bind",
            SecurityEvent::Error(error(None, None, Some(addr(f.local)), "EADDRINUSE")),
        ),
        (
            "stats",
            SecurityEvent::Stats(StatsEvent {
                local: Some(addr(f.wildcard)),
                interval_ms: 60_000,
                connections: 12,
                datagrams_in: 5_000,
                bytes_in: 600_000,
                datagrams_out: 4_800,
                bytes_out: 700_000,
                passive_opens: 3,
                closed: 2,
                dropped: 17,
                failed: 1,
                ..StatsEvent::default()
            }),
        ),
        (
            "log_loss",
            SecurityEvent::LogLoss(LogLoss {
                lost_critical: 1,
                lost_bulk: 40,
                lost_by_severity: [0, 0, 0, 0, 1, 0, 40, 0],
                since_us: 1_764_170_000_000_000,
                lost_output: 0,
                output: kcpwatch_proto::events::CappedText::EMPTY,
            }),
        ),
        (
            "log_loss_output",
            SecurityEvent::LogLoss(LogLoss {
                lost_output: 5,
                lost_by_severity: [0, 0, 0, 0, 0, 5, 0, 0],
                since_us: 1_764_170_000_000_000,
                output,
                ..LogLoss::default()
            }),
        ),
        (
            "alert_source",
            alert(Rule::HandshakeFloodSource, Some(source), 120, false),
        ),
        (
            "alert_source_update",
            alert(Rule::ConvScanSource, Some(source), 40, true),
        ),
        (
            "alert_listener",
            alert(Rule::HandshakeFloodGlobal, None, 5_210, false),
        ),
    ]
}

/// The matrix files: `cases.ndjson` (which event, privacy mode and family each line is), then
/// one file per format, line for line.
fn siem_matrix() -> Vec<(String, String)> {
    let modes: Vec<IpPrivacy> = std::iter::once(IpPrivacy::Full)
        .chain(privacy_modes())
        .collect();
    let mut cases = String::new();
    let mut outputs: Vec<String> = vec![String::new(); Format::ALL.len()];
    let mut canonical = String::new();
    let mut seq = 0;
    for privacy in &modes {
        for family in &FAMILIES {
            let mut writer = CanonicalWriter::with_privacy(observer(), 0, privacy.clone(), false);
            for (case, event) in matrix_events(family) {
                let record = kcpwatch_log::Record {
                    seq,
                    time_us: 1_764_170_005_412_305 + seq * 1000,
                    event,
                };
                seq += 1;
                canonical.clear();
                writer.write(&record, &mut canonical);
                let parsed: Record = serde_json::from_str(canonical.trim_end()).unwrap();
                cases.push_str(
                    &json!({
                        "case": case,
                        "event": parsed["name"],
                        "privacy": privacy.mode_name(),
                        "family": family.name,
                    })
                    .to_string(),
                );
                cases.push('\n');
                for (format, out) in Format::ALL.iter().zip(&mut outputs) {
                    write(*format, &parsed, out);
                }
            }
        }
    }
    let mut files = vec![("cases.ndjson".to_owned(), cases)];
    for (format, out) in Format::ALL.iter().zip(outputs) {
        let ext = match format {
            Format::Cef | Format::Rfc5424 => "log",
            _ => "ndjson",
        };
        files.push((format!("{}.{ext}", format.name()), out));
    }
    files
}

#[test]
fn siem_matrix_fixtures_are_up_to_date() {
    let dir = format!("{}/tests/fixtures/siem", env!("CARGO_MANIFEST_DIR"));
    let bless = std::env::var_os("KCPWATCH_BLESS").is_some();
    if bless {
        std::fs::create_dir_all(&dir).unwrap();
    }
    for (name, text) in siem_matrix() {
        let path = format!("{dir}/{name}");
        if bless {
            std::fs::write(&path, &text).unwrap();
        }
        let fixture = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{path}: {e}; write it with KCPWATCH_BLESS=1"));
        for (i, (got, want)) in text.lines().zip(fixture.lines()).enumerate() {
            assert_eq!(
                got,
                want,
                "siem/{name}:{} differs from what the writers produce now; if the change is \
                 meant, rewrite with KCPWATCH_BLESS=1 and run __test__/siem-validation.test.mjs",
                i + 1
            );
        }
        assert_eq!(
            text.lines().count(),
            fixture.lines().count(),
            "siem/{name}: rewrite it with KCPWATCH_BLESS=1"
        );
    }
}

#[test]
fn siem_matrix_covers_every_event_mode_and_family() {
    let files = siem_matrix();
    let cases: Vec<Value> = files[0]
        .1
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for event in events() {
        for mode in ["full", "truncate", "hmac", "cryptopan", "omit"] {
            for family in ["ipv4", "ipv6"] {
                assert!(
                    cases.iter().any(|c| c["event"] == event
                        && c["privacy"] == mode
                        && c["family"] == family),
                    "no {event} under {mode} over {family}"
                );
            }
        }
    }
    for (name, text) in &files {
        assert_eq!(text.lines().count(), cases.len(), "{name}");
    }
}

// --------------------------------------------------------------------- RFC 5424 through rsyslog

/// Values that the old `\\n` / `\\r` escaping could not carry: a real CR and LF next to the
/// literal text backslash-n, plus every character RFC 5424 or the percent rule escapes.
const ROUND_TRIP_VALUES: [&str; 6] = [
    "line one\r\nline two\nline three",
    "a literal backslash-n: \\n, and a real one:\n",
    "quote \" backslash \\ bracket ] equals = pipe |",
    "percent 100% and an escape-looking %0A that is text",
    "tab\there, NUL-free, DEL\u{7f}, Grüße, 東京 🎮",
    "]\\\"=\r",
];

#[test]
fn rfc5424_values_survive_rsyslog_byte_for_byte() {
    use std::io::Write as _;
    use std::time::Duration;
    use support::certs::Certs;
    use support::rsyslog::Rsyslog;
    use support::{wait_for, TempDir};

    let dir = TempDir::new("rfc5424-round-trip");
    let certs = Certs::generate(dir.path());
    let rs = Rsyslog::start(dir.path(), &certs);
    let marker = format!("rt{}", std::process::id());
    let sent: Vec<Record> = ROUND_TRIP_VALUES
        .iter()
        .enumerate()
        .map(|(i, value)| {
            let mut r = crafted("kcp:error", |r| {
                r.get("peer_ip") == Some(&json!("2001:db8::44"))
            });
            r.insert("seq".into(), json!(i));
            r.insert("observer_instance".into(), json!(marker));
            r.insert("error_message".into(), json!(value));
            r.insert("observer_service".into(), json!(format!("svc {value}")));
            r.insert("msg".into(), json!(format!("error: {value}")));
            r
        })
        .collect();
    // RFC 6587 octet counting over plain TCP (imptcp): the frame carries the line without its
    // newline.
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", rs.tcp)).expect("connect rsyslog");
    for r in &sent {
        let text = line(Format::Rfc5424, r);
        tcp.write_all(format!("{} {text}", text.len()).as_bytes())
            .expect("send");
    }
    drop(tcp);
    let ours = wait_for(
        "rsyslog to write every record",
        Duration::from_secs(20),
        || {
            let ours: Vec<Value> = rs
                .lines()
                .into_iter()
                .filter(|l| l["procid"] == marker.as_str())
                .collect();
            (ours.len() >= sent.len()).then_some(ours)
        },
    );
    assert_eq!(ours.len(), sent.len());
    for r in &sent {
        let seq = as_text(&r["seq"]);
        let got = ours
            .iter()
            .find(|l| l["$!"]["rfc5424-sd"]["kcp@32473"]["seq"] == seq.as_str())
            .unwrap_or_else(|| panic!("seq {seq} not parsed: {ours:#?}"));
        let params = got["$!"]["rfc5424-sd"]["kcp@32473"].as_object().unwrap();
        assert_eq!(params.len(), r.len(), "no PARAM lost or added");
        for (key, value) in r {
            let parsed = params[key].as_str().unwrap();
            let decoded = percent_decode(parsed);
            assert_eq!(
                decoded.as_bytes(),
                as_text(value).as_bytes(),
                "PARAM {key}: rsyslog parsed {parsed:?}"
            );
        }
    }
}

//! Costs of the security event pipeline per event, for `npm run bench` (see
//! `docs/performance.md`): what the I/O thread pays to produce a record, and what the log
//! thread pays to format it. Prints one JSON object; with `--lines FILE`, also writes sample
//! canonical lines for the JavaScript-side measurement.
//!
//! Run with `cargo run --release -p kcpwatch --example event_cost`.

use std::hint::black_box;
use std::time::Instant;

use kcpwatch::events::formats::{self, Format};
use kcpwatch::events::{CanonicalWriter, EventRing, Observer, Record};
use kcpwatch_proto::{Endpoint, EndpointConfig, Severity};

const ROUNDS: usize = 200;
const BATCH: usize = 2_000;

fn endpoint(events: bool) -> Endpoint {
    Endpoint::new(
        EndpointConfig {
            event_level: events.then_some(Severity::Debug),
            sample_burst: u32::MAX,
            ..EndpointConfig::default()
        },
        0,
    )
    .unwrap()
}

/// Nanoseconds per datagram for a runt (too short: dropped whole, one record when events are
/// on), including moving the record into the ring as the I/O thread does.
fn producer_ns(events: bool) -> f64 {
    let mut ep = endpoint(events);
    let ring = EventRing::new(BATCH * 2);
    let mut sink = Vec::with_capacity(BATCH * 2);
    let from = "127.0.0.1:5000".parse().unwrap();
    let local = "127.0.0.1:4000".parse().unwrap();
    let mut best = f64::MAX;
    for _ in 0..ROUNDS {
        let start = Instant::now();
        for i in 0..BATCH {
            ep.handle_datagram(i as u32, from, local, black_box(b"runt"));
            while let Some(event) = ep.poll_security_event() {
                ring.push(i as u64, event);
            }
        }
        let ns = start.elapsed().as_nanos() as f64 / BATCH as f64;
        best = best.min(ns);
        // The consumer's side, not timed here.
        ring.drain_into(&mut sink);
        sink.clear();
    }
    best
}

/// Nanoseconds per record for the log thread: canonical JSON of `records`.
fn format_ns(records: &[Record]) -> (f64, usize) {
    let mut writer = CanonicalWriter::new(
        Observer {
            host: "bench-host".into(),
            service: "kcpwatch".into(),
            instance: "L0354NlrUhAoWPUBpcLnJHF".into(),
            version: "0.1.0".into(),
        },
        0,
    );
    let mut out = String::with_capacity(1 << 20);
    let mut best = f64::MAX;
    let mut bytes = 0;
    for _ in 0..ROUNDS / 4 {
        out.clear();
        let start = Instant::now();
        for _ in 0..BATCH / records.len() {
            for record in records {
                writer.write(record, &mut out);
            }
        }
        let n = (BATCH / records.len()) * records.len();
        best = best.min(start.elapsed().as_nanos() as f64 / n as f64);
        bytes = out.len() / n;
    }
    (best, bytes)
}

/// A connection's whole life plus a drop, as records, from a real endpoint pair.
fn sample_records() -> Vec<Record> {
    let mut server = endpoint(true);
    let mut client = Endpoint::new(
        EndpointConfig {
            accept_inbound: false,
            ..EndpointConfig::default()
        },
        0,
    )
    .unwrap();
    let s_addr = "127.0.0.1:4000".parse().unwrap();
    let c_addr = "127.0.0.1:5000".parse().unwrap();
    let conn = client.connect(0, s_addr, c_addr, 7, None).unwrap();
    client.send(0, conn, b"hello").unwrap();
    client.flush(0);
    let datagrams: Vec<Vec<u8>> = client.transmits().iter().map(|t| t.data.to_vec()).collect();
    for d in &datagrams {
        server.handle_datagram(1, c_addr, s_addr, d);
    }
    server.handle_datagram(2, c_addr, s_addr, b"runt");
    server.shutdown(3);
    let mut records = Vec::new();
    let mut seq = 0;
    while let Some(event) = server.poll_security_event() {
        records.push(Record {
            seq,
            time_us: 1_795_711_412_252_694 + seq,
            event,
        });
        seq += 1;
    }
    records
}

/// Nanoseconds per record to parse a canonical line and write it in each format (what an
/// output in that format costs the log thread on top of the canonical line).
fn formats_ns(records: &[Record]) -> Vec<(&'static str, f64)> {
    let mut writer = CanonicalWriter::new(
        Observer {
            host: "bench-host".into(),
            service: "kcpwatch".into(),
            instance: "L0354NlrUhAoWPUBpcLnJHF".into(),
            version: "0.1.0".into(),
        },
        0,
    );
    let lines: Vec<String> = records
        .iter()
        .map(|r| {
            let mut line = String::new();
            writer.write(r, &mut line);
            line
        })
        .collect();
    let mut out = String::with_capacity(1 << 20);
    Format::ALL
        .iter()
        .filter(|f| **f != Format::Json)
        .map(|&format| {
            let mut best = f64::MAX;
            for _ in 0..ROUNDS / 4 {
                out.clear();
                let start = Instant::now();
                for line in &lines {
                    let fields: serde_json::Map<String, serde_json::Value> =
                        serde_json::from_str(line).unwrap();
                    formats::write(format, &fields, &mut out);
                }
                best = best.min(start.elapsed().as_nanos() as f64 / lines.len() as f64);
            }
            (format.name(), best)
        })
        .collect()
}

fn main() {
    let lines_path = std::env::args().skip_while(|a| a != "--lines").nth(1);
    let with_events = producer_ns(true);
    let without = producer_ns(false);
    let records = sample_records();
    let (format, bytes) = format_ns(&records);
    let closed: Vec<Record> = records
        .iter()
        .filter(|r| r.event.name() == "kcp:connection_closed")
        .copied()
        .collect();
    let (format_closed, bytes_closed) = format_ns(&closed);
    if let Some(path) = lines_path {
        let mut writer = CanonicalWriter::new(Observer::default(), 0);
        let mut out = String::new();
        for record in &records {
            writer.write(record, &mut out);
        }
        std::fs::write(path, out).expect("write sample lines");
    }
    let per_format: Vec<String> = formats_ns(&records)
        .into_iter()
        .map(|(name, ns)| format!("\"{name}\":{ns:.0}"))
        .collect();
    println!(
        "{{\"format_ns_per_event_by_format\":{{{}}},\
         \"producer_ns_per_datagram_events_on\":{with_events:.1},\
         \"producer_ns_per_datagram_events_off\":{without:.1},\
         \"producer_ns_per_event\":{:.1},\
         \"format_ns_per_event\":{format:.1},\"bytes_per_event\":{bytes},\
         \"format_ns_per_close\":{format_closed:.1},\"bytes_per_close\":{bytes_closed},\
         \"record_size_bytes\":{}}}",
        per_format.join(","),
        with_events - without,
        std::mem::size_of::<Record>()
    );
}

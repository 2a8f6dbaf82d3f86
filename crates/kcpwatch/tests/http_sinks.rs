//! The HTTP batch sinks (Splunk HEC, Elasticsearch `_bulk`, OTLP/HTTP JSON) against a
//! receiver in the test: minimal HTTP/1.1 over a std `TcpListener`, gunzipping bodies sent
//! with `Content-Encoding: gzip`, answering what each test scripts, and able to be stopped
//! and restarted on the same port.

mod support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kcpwatch::events::sinks::{HttpKind, HttpSink, HttpSinkConfig, SinkStats, SpoolConfig};
use serde_json::{json, Value};

use support::{wait_for, TempDir};

/// One request as the receiver got it (body decompressed).
#[derive(Debug, Clone)]
struct Request {
    path: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
    /// The status it was answered with.
    status: u16,
}

/// What the receiver answers: status, extra headers, body.
type Answer = (u16, Vec<(String, String)>, String);
type Responder = dyn Fn(&Request, usize) -> Answer + Send + Sync;

/// An HTTP receiver on loopback that can be stopped and started again on the same port.
struct Receiver {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Request>>>,
    responder: Arc<Mutex<Arc<Responder>>>,
    running: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
}

impl Receiver {
    fn start(responder: Arc<Responder>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let mut r = Self {
            addr: listener.local_addr().unwrap(),
            requests: Arc::default(),
            responder: Arc::new(Mutex::new(responder)),
            running: None,
        };
        r.serve(listener);
        r
    }

    fn serve(&mut self, listener: TcpListener) {
        let stop = Arc::new(AtomicBool::new(false));
        let (stop2, requests, responder) = (
            Arc::clone(&stop),
            Arc::clone(&self.requests),
            Arc::clone(&self.responder),
        );
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                // One request per connection (`Connection: close`), handled before the next
                // accept: stopping never cuts a request whose answer was not sent.
                if let Some(mut req) = read_request(&conn) {
                    let mut all = requests.lock().unwrap();
                    let f = Arc::clone(&*responder.lock().unwrap());
                    let (status, headers, body) = f(&req, all.len());
                    req.status = status;
                    all.push(req);
                    drop(all);
                    let mut out = format!(
                        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                        body.len()
                    );
                    for (k, v) in headers {
                        out.push_str(&format!("{k}: {v}\r\n"));
                    }
                    out.push_str("\r\n");
                    out.push_str(&body);
                    let _ = (&conn).write_all(out.as_bytes());
                }
            }
        });
        self.running = Some((stop, thread));
    }

    fn stop(&mut self) {
        if let Some((stop, thread)) = self.running.take() {
            stop.store(true, Ordering::SeqCst);
            let _ = TcpStream::connect(self.addr);
            thread.join().unwrap();
        }
    }

    fn restart(&mut self) {
        // std sets SO_REUSEADDR on Unix, so the port is free again at once; retry briefly in
        // case the kernel is still tidying up.
        let listener = wait_for("the port again", Duration::from_secs(10), || {
            TcpListener::bind(self.addr).ok()
        });
        self.serve(listener);
    }

    fn set(&self, responder: Arc<Responder>) {
        *self.responder.lock().unwrap() = responder;
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}

fn read_request(conn: &TcpStream) -> Option<Request> {
    conn.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut reader = BufReader::new(conn);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let path = line.split_whitespace().nth(1)?.to_owned();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
    }
    let len: usize = headers.get("content-length")?.parse().ok()?;
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body).ok()?;
    if headers.get("content-encoding").map(String::as_str) == Some("gzip") {
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut plain)
            .ok()?;
        body = plain;
    }
    Some(Request {
        path,
        headers,
        body,
        status: 0,
    })
}

fn always(status: u16, body: &'static str) -> Arc<Responder> {
    Arc::new(move |_, _| (status, Vec::new(), body.to_owned()))
}

const HEC_OK: &str = r#"{"text":"Success","code":0}"#;

fn config(kind: HttpKind, url: String) -> HttpSinkConfig {
    let mut c = HttpSinkConfig::new(kind, url);
    c.timeout = Duration::from_secs(5);
    c.batch_delay = Duration::from_millis(30);
    // Short, so that the outage tests resume promptly.
    c.backoff = (Duration::from_millis(10), Duration::from_millis(100));
    c
}

fn hec() -> HttpKind {
    HttpKind::SplunkHec {
        token: "00000000-1111-2222-3333-444444444444".to_owned(),
    }
}

fn hec_record(seq: u64) -> Vec<u8> {
    let v = json!({"time": 1764170095.812, "sourcetype": "kcpwatch", "event": {"seq": seq, "msg": "x\ny \"q\""}});
    format!("{v}\n").into_bytes()
}

/// The event sequence numbers of every HEC request answered with success, in arrival order.
fn hec_seqs(requests: &[Request]) -> Vec<u64> {
    let mut seqs = Vec::new();
    for r in requests.iter().filter(|r| r.status == 200) {
        for v in serde_json::Deserializer::from_slice(&r.body).into_iter::<Value>() {
            let v = v.expect("HEC body parses as concatenated JSON objects");
            seqs.push(v["event"]["seq"].as_u64().expect("seq"));
        }
    }
    seqs
}

fn settled(s: &SinkStats, n: u64) -> bool {
    s.delivered + s.dropped == n && s.queued == 0 && s.spooled == 0
}

#[test]
fn hec_delivers_in_order_with_token_and_gzip() {
    let rx = Receiver::start(always(200, HEC_OK));
    let mut c = config(hec(), rx.url("/services/collector/event"));
    c.gzip = true;
    c.batch_records = 100;
    let sink = HttpSink::start(c).unwrap();
    for i in 0..1000 {
        assert!(sink.send(&hec_record(i)));
    }
    wait_for("1000 delivered", Duration::from_secs(20), || {
        (sink.stats().delivered == 1000).then_some(())
    });
    let report = sink.close(Duration::from_secs(2));
    assert_eq!(report.stats.dropped, 0);
    assert_eq!(report.unreported_loss, 0);
    let requests = rx.requests();
    for r in &requests {
        assert_eq!(r.path, "/services/collector/event");
        assert_eq!(
            r.headers["authorization"],
            "Splunk 00000000-1111-2222-3333-444444444444"
        );
        assert_eq!(r.headers["content-encoding"], "gzip");
        assert_eq!(r.headers["content-type"], "application/json");
    }
    assert!(requests.len() >= 10, "batches of at most 100");
    assert_eq!(hec_seqs(&requests), (0..1000).collect::<Vec<_>>());
    println!("hec: 1000 records in {} requests", requests.len());
}

#[test]
fn elastic_bulk_retries_429_items_and_counts_400_items_lost() {
    let first: Arc<Responder> = Arc::new(|req: &Request, n: usize| {
        let lines = req.body.split(|&b| b == b'\n').filter(|l| !l.is_empty());
        let docs = lines.count() / 2;
        let items: Vec<Value> = (0..docs)
            .map(|i| {
                let status = match (n, i) {
                    (0, 3) => 429,
                    (0, 5) => 400,
                    _ => 201,
                };
                json!({"create": {"_index": "kcp-events", "status": status}})
            })
            .collect();
        let errors = n == 0;
        let body = json!({"took": 3, "errors": errors, "items": items}).to_string();
        (200, Vec::new(), body)
    });
    let rx = Receiver::start(first);
    let kind = HttpKind::ElasticBulk {
        index: "kcp-events".to_owned(),
    };
    let mut c = config(kind, rx.url("/_bulk"));
    c.batch_delay = Duration::from_millis(200);
    let sink = HttpSink::start(c).unwrap();
    for i in 0..10u64 {
        let doc = json!({"@timestamp": "2025-11-26T15:14:55.812Z", "kcp": {"seq": i}});
        assert!(sink.send(format!("{doc}\n").as_bytes()));
    }
    wait_for("9 delivered, 1 lost", Duration::from_secs(20), || {
        let s = sink.stats();
        (s.delivered == 9 && s.dropped == 1).then_some(())
    });
    assert_eq!(sink.take_unreported_loss(), 1);
    assert_eq!(sink.rejected(), 1);
    let stats = sink.stats();
    assert_eq!(stats.retried, 1, "only the 429 item is sent again");
    let error = stats.last_error.unwrap();
    assert!(error.contains("1 item(s) to retry, 1 lost"), "{error}");
    sink.close(Duration::from_secs(1));

    let requests = rx.requests();
    assert_eq!(requests.len(), 2);
    let mut seqs = Vec::new();
    for r in &requests {
        assert_eq!(r.path, "/_bulk");
        assert_eq!(r.headers["content-type"], "application/x-ndjson");
        let text = String::from_utf8(r.body.clone()).unwrap();
        assert!(text.ends_with('\n'));
        let lines: Vec<&str> = text.lines().collect();
        for pair in lines.chunks(2) {
            let action: Value = serde_json::from_str(pair[0]).unwrap();
            assert_eq!(action, json!({"create": {"_index": "kcp-events"}}));
            let doc: Value = serde_json::from_str(pair[1]).unwrap();
            seqs.push(doc["kcp"]["seq"].as_u64().unwrap());
        }
    }
    assert_eq!(seqs, vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 3]);
}

#[test]
fn otlp_merges_the_batch_into_one_request() {
    let rx = Receiver::start(always(200, "{}"));
    let mut c = config(HttpKind::OtlpHttp, rx.url("/v1/logs"));
    c.batch_delay = Duration::from_millis(300);
    let sink = HttpSink::start(c).unwrap();
    let n = 7;
    for i in 0..n {
        let record = json!({"resourceLogs": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "kcpwatch"}}]},
            "scopeLogs": [{"scope": {"name": "kcpwatch"}, "logRecords": [{
                "timeUnixNano": "1764170095812320000",
                "body": {"stringValue": format!("record {i}")}
            }]}]
        }]});
        assert!(sink.send(format!("{record}\n").as_bytes()));
    }
    wait_for("delivered", Duration::from_secs(20), || {
        (sink.stats().delivered == n).then_some(())
    });
    sink.close(Duration::from_secs(1));
    let requests = rx.requests();
    assert_eq!(requests.len(), 1, "one batch");
    let r = &requests[0];
    assert_eq!(r.path, "/v1/logs");
    assert_eq!(r.headers["content-type"], "application/json");
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    let logs = v["resourceLogs"].as_array().unwrap();
    assert_eq!(logs.len() as u64, n);
    for (i, l) in logs.iter().enumerate() {
        assert_eq!(
            l["scopeLogs"][0]["logRecords"][0]["body"]["stringValue"],
            format!("record {i}")
        );
    }
}

#[test]
fn outage_spools_and_replays_every_record_once_in_order() {
    let dir = TempDir::new("http-outage");
    let mut rx = Receiver::start(always(200, HEC_OK));
    let mut c = config(hec(), rx.url("/services/collector/event"));
    c.batch_records = 200;
    c.queue_records = 1000;
    c.max_attempts_before_spool = 2;
    c.spool = Some(SpoolConfig {
        dir: dir.path().join("spool"),
        max_bytes: 64 << 20,
    });
    let sink = HttpSink::start(c).unwrap();
    let total = 5000u64;
    let started = Instant::now();
    let send = |range: std::ops::Range<u64>| {
        for i in range {
            sink.send(&hec_record(i));
            if i % 100 == 0 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    };
    send(0..1500);
    rx.stop();
    send(1500..2500);
    // Back, but failing: 500 then 429 with Retry-After, before accepting again.
    rx.restart();
    rx.set(Arc::new(|_, n| {
        if n % 2 == 0 {
            (500, Vec::new(), "busy".to_owned())
        } else {
            (
                429,
                vec![("Retry-After".to_owned(), "0".to_owned())],
                "slow down".to_owned(),
            )
        }
    }));
    send(2500..3500);
    let mid = sink.stats();
    rx.set(always(200, HEC_OK));
    send(3500..total);
    let stats = wait_for("every record settled", Duration::from_secs(60), || {
        let s = sink.stats();
        settled(&s, total).then_some(s)
    });
    let elapsed = started.elapsed();
    let report = sink.close(Duration::from_secs(2));
    let seqs = hec_seqs(&rx.requests());
    let mut unique = seqs.clone();
    unique.dedup();
    assert_eq!(unique.len(), seqs.len(), "no record twice");
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order");
    let missing = total - seqs.len() as u64;
    assert_eq!(missing, stats.dropped, "what is missing is reported");
    assert_eq!(report.unreported_loss, stats.dropped);
    assert_eq!(stats.delivered, seqs.len() as u64);
    assert!(stats.spooled_total > 0, "the outage went through the spool");
    assert!(stats.replayed > 0);
    println!(
        "outage: {total} sent, {} delivered, {} lost, {} spooled, {} replayed, {} retried, \
         {} requests, mid-outage spooled {} queued {}, {elapsed:?}",
        stats.delivered,
        stats.dropped,
        stats.spooled_total,
        stats.replayed,
        stats.retried,
        rx.requests().len(),
        mid.spooled,
        mid.queued
    );
}

#[test]
fn hec_400_is_lost_not_retried() {
    let rx = Receiver::start(always(400, r#"{"text":"Invalid data format","code":6}"#));
    let mut c = config(hec(), rx.url("/services/collector/event"));
    c.batch_records = 10;
    let sink = HttpSink::start(c).unwrap();
    for i in 0..50 {
        assert!(sink.send(&hec_record(i)));
    }
    let stats = wait_for("50 lost", Duration::from_secs(20), || {
        let s = sink.stats();
        (s.dropped == 50 && s.queued == 0).then_some(s)
    });
    // Give a retry, were there one, time to show.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(rx.requests().len(), 5, "each batch once");
    assert_eq!(stats.delivered, 0);
    assert_eq!(stats.retried, 0);
    assert_eq!(stats.dropped_invalid, 50);
    assert_eq!(sink.rejected(), 50);
    assert_eq!(sink.take_unreported_loss(), 50);
    assert!(stats.last_error.unwrap().contains("Invalid data format"));
    let report = sink.close(Duration::from_secs(1));
    assert_eq!(report.unreported_loss, 0);
}

#[test]
fn send_never_blocks_with_the_endpoint_down() {
    // A port nobody listens on: every attempt is refused.
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut c = config(hec(), format!("http://{addr}/services/collector/event"));
    c.queue_records = 1000;
    let sink = HttpSink::start(c).unwrap();
    let record = hec_record(1);
    let n = 100_000u64;
    let mut accepted = 0u64;
    let mut slowest = Duration::ZERO;
    let started = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        accepted += u64::from(sink.send(&record));
        slowest = slowest.max(t.elapsed());
    }
    let total = started.elapsed();
    let stats = sink.stats();
    assert_eq!(accepted + stats.dropped_queue_full, n);
    assert_eq!(stats.delivered, 0);
    let report = sink.close(Duration::ZERO);
    let s = &report.stats;
    assert_eq!(s.delivered, 0);
    assert_eq!(s.dropped, n, "everything is lost, and counted");
    assert_eq!(s.dropped_queue_full + s.dropped_on_close, n);
    assert_eq!(report.unreported_loss, n);
    println!(
        "send: {n} sends in {total:?} ({:?} each), slowest {slowest:?}, {accepted} queued, {} \
         dropped queue full, {} dropped on close",
        total / n as u32,
        s.dropped_queue_full,
        s.dropped_on_close
    );
    assert!(total < Duration::from_secs(10), "{total:?}");
    assert!(slowest < Duration::from_millis(500), "{slowest:?}");
}

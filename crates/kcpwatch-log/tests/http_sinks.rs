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

use kcpwatch_log::sinks::{HttpKind, HttpSink, HttpSinkConfig, SinkStats, SpoolConfig};
use serde_json::{json, Value};

use support::certs::Certs;
use support::{wait_for, TempDir};

/// One request as the receiver got it (body decompressed).
#[derive(Debug, Clone)]
struct Request {
    path: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
    /// The status it was answered with; 0 when the receiver stalled and never answered.
    status: u16,
    /// Whether the client presented a certificate (HTTPS with client authentication).
    client_cert: bool,
}

/// What the receiver answers: status, extra headers, body.
type Answer = (u16, Vec<(String, String)>, String);
type Responder = dyn Fn(&Request, usize) -> Answer + Send + Sync;

/// A connection the receiver holds while it stalls (plain or TLS).
type Held = Box<dyn Send>;

/// An HTTP (or HTTPS) receiver on loopback that can be stopped and started again on the same
/// port, and made to stall: read each request, then never answer it.
struct Receiver {
    addr: SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
    requests: Arc<Mutex<Vec<Request>>>,
    responder: Arc<Mutex<Arc<Responder>>>,
    stall: Arc<AtomicBool>,
    held: Arc<Mutex<Vec<Held>>>,
    /// Why TLS handshakes failed, as the server saw it.
    tls_errors: Arc<Mutex<Vec<String>>>,
    running: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
}

impl Receiver {
    fn start(responder: Arc<Responder>) -> Self {
        Self::start_with(responder, None)
    }

    fn start_with(responder: Arc<Responder>, tls: Option<Arc<rustls::ServerConfig>>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let mut r = Self {
            addr: listener.local_addr().unwrap(),
            tls,
            requests: Arc::default(),
            responder: Arc::new(Mutex::new(responder)),
            stall: Arc::default(),
            held: Arc::default(),
            tls_errors: Arc::default(),
            running: None,
        };
        r.serve(listener);
        r
    }

    fn serve(&mut self, listener: TcpListener) {
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let requests = Arc::clone(&self.requests);
        let responder = Arc::clone(&self.responder);
        let stall = Arc::clone(&self.stall);
        let held = Arc::clone(&self.held);
        let tls_errors = Arc::clone(&self.tls_errors);
        let tls = self.tls.clone();
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
                // One request per connection (`Connection: close`), handled before the next
                // accept: stopping never cuts a request whose answer was not sent.
                let mut stream: Box<dyn ReadWrite> = match &tls {
                    None => Box::new(conn),
                    Some(config) => match handshake(Arc::clone(config), conn) {
                        Ok(s) => Box::new(s),
                        Err(e) => {
                            tls_errors.lock().unwrap().push(e);
                            continue;
                        }
                    },
                };
                let client_cert = stream.has_client_cert();
                let Some(mut req) = read_request(&mut stream) else {
                    continue;
                };
                req.client_cert = client_cert;
                if stall.load(Ordering::SeqCst) {
                    // Accepted, read, never answered: the connection stays open until
                    // `release`.
                    requests.lock().unwrap().push(req);
                    held.lock().unwrap().push(Box::new(stream));
                    continue;
                }
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
                let _ = stream.write_all(out.as_bytes());
                stream.finish();
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

    /// From now on, read requests and never answer them.
    fn set_stalled(&self, stalled: bool) {
        self.stall.store(stalled, Ordering::SeqCst);
    }

    /// Closes the connections held unanswered.
    fn release(&self) {
        self.held.lock().unwrap().clear();
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    fn tls_errors(&self) -> Vec<String> {
        self.tls_errors.lock().unwrap().clone()
    }

    fn url(&self, path: &str) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}{path}", self.addr)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.release();
        self.stop();
    }
}

/// A plain or TLS connection of the receiver.
trait ReadWrite: Read + Write + Send {
    fn has_client_cert(&self) -> bool {
        false
    }
    /// Ends the answer (TLS: close_notify).
    fn finish(&mut self) {}
}

impl ReadWrite for TcpStream {}

impl ReadWrite for rustls::StreamOwned<rustls::ServerConnection, TcpStream> {
    fn has_client_cert(&self) -> bool {
        self.conn.peer_certificates().is_some_and(|c| !c.is_empty())
    }
    fn finish(&mut self) {
        self.conn.send_close_notify();
        let _ = self.flush();
    }
}

impl<T: ReadWrite + ?Sized> ReadWrite for Box<T> {
    fn has_client_cert(&self) -> bool {
        (**self).has_client_cert()
    }
    fn finish(&mut self) {
        (**self).finish()
    }
}

/// The server side of the TLS handshake, done before the request is read, so that a refused
/// handshake is seen (and its reason kept) here.
fn handshake(
    config: Arc<rustls::ServerConfig>,
    mut tcp: TcpStream,
) -> Result<rustls::StreamOwned<rustls::ServerConnection, TcpStream>, String> {
    let mut conn = rustls::ServerConnection::new(config).map_err(|e| e.to_string())?;
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).map_err(|e| e.to_string())?;
    }
    Ok(rustls::StreamOwned::new(conn, tcp))
}

/// A TLS server configuration with the test PKI's server certificate; with `client_ca`,
/// clients must present a certificate that chains to it.
fn server_tls(certs: &Certs, client_ca: Option<&std::path::Path>) -> Arc<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&certs.server_cert)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(&certs.server_key).unwrap();
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca).unwrap() {
                roots.add(c.unwrap()).unwrap();
            }
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .build()
                    .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    Arc::new(builder.with_single_cert(chain, key).unwrap())
}

fn read_request(conn: &mut impl Read) -> Option<Request> {
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
        client_cert: false,
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

fn elastic() -> HttpKind {
    HttpKind::ElasticBulk {
        index: "kcp-events".to_owned(),
    }
}

/// A record of each kind, numbered, as the sink's caller formats it.
fn record_for(kind: &HttpKind, seq: u64) -> Vec<u8> {
    match kind {
        HttpKind::SplunkHec { .. } => hec_record(seq),
        HttpKind::ElasticBulk { .. } => {
            let doc = json!({"@timestamp": "2025-11-26T15:14:55.812Z", "kcp": {"seq": seq}});
            format!("{doc}\n").into_bytes()
        }
        HttpKind::OtlpHttp => {
            let r = json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [{
                "timeUnixNano": "1764170095812320000",
                "attributes": [{"key": "kcp.seq", "value": {"intValue": seq.to_string()}}]
            }]}]}]});
            format!("{r}\n").into_bytes()
        }
    }
}

/// A success answer of each kind for a request.
fn ok_answer(kind: &HttpKind) -> Arc<Responder> {
    match kind {
        HttpKind::SplunkHec { .. } => always(200, HEC_OK),
        HttpKind::ElasticBulk { .. } => Arc::new(|req: &Request, _| {
            let docs = req
                .body
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .count()
                / 2;
            let items: Vec<Value> = (0..docs)
                .map(|_| json!({"create": {"_index": "kcp-events", "status": 201}}))
                .collect();
            (
                200,
                Vec::new(),
                json!({"took": 1, "errors": false, "items": items}).to_string(),
            )
        }),
        HttpKind::OtlpHttp => always(200, "{}"),
    }
}

/// The record numbers in every request answered with success, in arrival order.
fn seqs_of(kind: &HttpKind, requests: &[Request]) -> Vec<u64> {
    let mut seqs = Vec::new();
    for r in requests.iter().filter(|r| (200..300).contains(&r.status)) {
        match kind {
            HttpKind::SplunkHec { .. } => seqs.extend(hec_seqs(std::slice::from_ref(r))),
            HttpKind::ElasticBulk { .. } => {
                let text = std::str::from_utf8(&r.body).unwrap();
                for pair in text.lines().collect::<Vec<_>>().chunks(2) {
                    let doc: Value = serde_json::from_str(pair[1]).unwrap();
                    seqs.push(doc["kcp"]["seq"].as_u64().unwrap());
                }
            }
            HttpKind::OtlpHttp => {
                let v: Value = serde_json::from_slice(&r.body).unwrap();
                for l in v["resourceLogs"].as_array().unwrap() {
                    let a = &l["scopeLogs"][0]["logRecords"][0]["attributes"][0];
                    seqs.push(a["value"]["intValue"].as_str().unwrap().parse().unwrap());
                }
            }
        }
    }
    seqs
}

#[test]
fn https_with_the_configured_ca_delivers_to_hec_elastic_and_otlp() {
    let dir = TempDir::new("https");
    let certs = Certs::generate(dir.path());
    let tls = server_tls(&certs, None);
    for (kind, path) in [
        (hec(), "/services/collector/event"),
        (elastic(), "/_bulk"),
        (HttpKind::OtlpHttp, "/v1/logs"),
    ] {
        let rx = Receiver::start_with(ok_answer(&kind), Some(Arc::clone(&tls)));
        let mut c = config(kind.clone(), rx.url(path));
        c.ca_file = Some(certs.ca.clone());
        c.gzip = true;
        c.batch_records = 50;
        let sink = HttpSink::start(c).unwrap();
        for i in 0..200 {
            assert!(sink.send(&record_for(&kind, i)));
        }
        wait_for("200 delivered over https", Duration::from_secs(20), || {
            (sink.stats().delivered == 200).then_some(())
        });
        let report = sink.close(Duration::from_secs(2));
        assert_eq!(report.stats.dropped, 0, "{kind:?}");
        let requests = rx.requests();
        assert!(requests.iter().all(|r| r.path == path && !r.client_cert));
        assert_eq!(seqs_of(&kind, &requests), (0..200).collect::<Vec<_>>());
        assert!(rx.tls_errors().is_empty(), "{:?}", rx.tls_errors());
    }
}

#[test]
fn https_refuses_a_collector_whose_certificate_the_ca_did_not_sign() {
    let dir = TempDir::new("https-wrong-ca");
    let certs = Certs::generate(dir.path());
    let rx = Receiver::start_with(always(200, HEC_OK), Some(server_tls(&certs, None)));
    let mut c = config(hec(), rx.url("/services/collector/event"));
    c.ca_file = Some(certs.other_ca.clone());
    let sink = HttpSink::start(c).unwrap();
    for i in 0..5 {
        assert!(sink.send(&hec_record(i)));
    }
    let error = wait_for("a refused handshake", Duration::from_secs(20), || {
        let s = sink.stats();
        (s.retried > 0).then_some(s.last_error?)
    });
    let report = sink.close(Duration::ZERO);
    println!("wrong CA: {error}");
    assert!(error.to_lowercase().contains("certificate"), "{error}");
    assert!(rx.requests().is_empty(), "no request reached the collector");
    // The collector's thread records the failed handshake on its own schedule, after the sink
    // has already seen it (the loop caught the check running first, once in 20 runs).
    let server_said = wait_for(
        "the collector to see the handshake fail",
        Duration::from_secs(20),
        || rx.tls_errors().first().cloned(),
    );
    println!("wrong CA: collector said {server_said:?}");
    assert_eq!(report.stats.delivered, 0);
    assert_eq!(report.stats.dropped_on_close, 5, "counted lost on close");
    assert_eq!(report.unreported_loss, 5);
}

#[test]
fn https_mutual_tls_presents_the_client_certificate_and_is_refused_without_one() {
    let dir = TempDir::new("https-mtls");
    let certs = Certs::generate(dir.path());
    let tls = server_tls(&certs, Some(&certs.ca));
    for kind in [hec(), elastic(), HttpKind::OtlpHttp] {
        let rx = Receiver::start_with(ok_answer(&kind), Some(Arc::clone(&tls)));
        let mut c = config(kind.clone(), rx.url("/in"));
        c.ca_file = Some(certs.ca.clone());
        c.client_cert = Some((certs.client_cert.clone(), certs.client_key.clone()));
        let sink = HttpSink::start(c).unwrap();
        for i in 0..20 {
            assert!(sink.send(&record_for(&kind, i)));
        }
        wait_for(
            "delivered with a client certificate",
            Duration::from_secs(20),
            || (sink.stats().delivered == 20).then_some(()),
        );
        sink.close(Duration::from_secs(1));
        let requests = rx.requests();
        assert!(requests.iter().all(|r| r.client_cert), "{kind:?}");
        assert_eq!(seqs_of(&kind, &requests), (0..20).collect::<Vec<_>>());
    }

    // Without a client certificate the collector ends the handshake: nothing is delivered,
    // and what was held is counted lost on close.
    let rx = Receiver::start_with(always(200, HEC_OK), Some(Arc::clone(&tls)));
    let mut c = config(hec(), rx.url("/services/collector/event"));
    c.ca_file = Some(certs.ca.clone());
    let sink = HttpSink::start(c).unwrap();
    for i in 0..5 {
        assert!(sink.send(&hec_record(i)));
    }
    let server_said = wait_for("the collector to refuse", Duration::from_secs(20), || {
        rx.tls_errors().first().cloned()
    });
    wait_for("the sink to see it", Duration::from_secs(20), || {
        (sink.stats().retried > 0).then_some(())
    });
    let report = sink.close(Duration::ZERO);
    println!(
        "no client certificate: collector said {server_said:?}, sink {:?}",
        report.stats.last_error
    );
    assert!(server_said.contains("certificate"), "{server_said}");
    assert!(rx.requests().is_empty());
    assert_eq!(report.stats.delivered, 0);
    assert_eq!(report.unreported_loss, 5);
}

#[test]
fn start_refuses_client_certificates_it_cannot_use() {
    use kcpwatch_log::sinks::SinkError;
    let dir = TempDir::new("https-config");
    let certs = Certs::generate(dir.path());
    let url = "https://127.0.0.1:9/services/collector/event";
    let mut c = config(hec(), url.to_owned());
    c.ca_file = Some(certs.ca.clone());
    // The server's key does not belong to the client certificate.
    c.client_cert = Some((certs.client_cert.clone(), certs.server_key.clone()));
    let e = HttpSink::start(c.clone()).unwrap_err();
    assert!(matches!(e, SinkError::Tls(_)), "{e}");
    c.client_cert = Some((certs.client_cert.clone(), dir.path().join("missing.key")));
    let e = HttpSink::start(c.clone()).unwrap_err();
    assert!(matches!(e, SinkError::Io { .. }), "{e}");
    c.client_cert = Some((certs.client_key.clone(), certs.client_key.clone()));
    let e = HttpSink::start(c.clone()).unwrap_err();
    assert!(matches!(e, SinkError::EmptyPem { .. }), "{e}");
    // Over plain http a client certificate would silently not be used.
    let mut c = config(hec(), "http://127.0.0.1:9/x".to_owned());
    c.client_cert = Some((certs.client_cert.clone(), certs.client_key.clone()));
    let e = HttpSink::start(c).unwrap_err();
    assert!(matches!(e, SinkError::InvalidConfig(_)), "{e}");
}

/// One pass through every kind of outage of an HTTPS collector, records flowing all along:
/// down (connections refused), restarted, stalled (accepts and reads requests, never
/// answers), full (503, then 429 with Retry-After), then healthy again. Every record is
/// received exactly once or reported lost: received + reported lost = produced, in order and
/// without duplicates (a stalled request is never answered, so it counts as not received).
fn outage_accounting(kind: HttpKind, spool: bool) {
    let dir = TempDir::new("http-outage-matrix");
    let certs = Certs::generate(dir.path());
    let mut rx = Receiver::start_with(ok_answer(&kind), Some(server_tls(&certs, None)));
    let mut c = config(kind.clone(), rx.url("/in"));
    c.ca_file = Some(certs.ca.clone());
    c.batch_records = 100;
    c.timeout = Duration::from_millis(400);
    c.max_attempts_before_spool = 2;
    if spool {
        c.queue_records = 2000;
        c.spool = Some(SpoolConfig {
            dir: dir.path().join("spool"),
            max_bytes: 64 << 20,
        });
    } else {
        // Small enough that the outages overflow it: losses to account for.
        c.queue_records = 300;
    }
    let sink = HttpSink::start(c).unwrap();
    let mut reported = 0u64;
    let mut produced = 0u64;
    let mut phase = |sink: &HttpSink, n: u64, reported: &mut u64| {
        for _ in 0..n {
            sink.send(&record_for(&kind, produced));
            produced += 1;
            if produced % 25 == 0 {
                // A steady trickle (about 0.25 s per phase), so that each phase sees requests.
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        *reported += sink.take_unreported_loss();
    };
    phase(&sink, 500, &mut reported);
    rx.stop();
    phase(&sink, 1000, &mut reported);
    rx.restart();
    phase(&sink, 500, &mut reported);
    rx.set_stalled(true);
    phase(&sink, 1000, &mut reported);
    wait_for("a stalled request", Duration::from_secs(20), || {
        rx.requests().iter().any(|r| r.status == 0).then_some(())
    });
    rx.set_stalled(false);
    rx.release();
    rx.set(Arc::new(|_, n| {
        if n % 2 == 0 {
            (503, Vec::new(), "full".to_owned())
        } else {
            (
                429,
                vec![("Retry-After".to_owned(), "0".to_owned())],
                "slow down".to_owned(),
            )
        }
    }));
    phase(&sink, 1000, &mut reported);
    rx.set(ok_answer(&kind));
    phase(&sink, 500, &mut reported);
    let stats = wait_for("every record settled", Duration::from_secs(60), || {
        let s = sink.stats();
        settled(&s, produced).then_some(s)
    });
    let report = sink.close(Duration::from_secs(2));
    reported += sink_report_loss(&report);
    let requests = rx.requests();
    let seqs = seqs_of(&kind, &requests);
    let received = seqs.len() as u64;
    let mut unique = seqs.clone();
    unique.sort_unstable();
    unique.dedup();
    println!(
        "{kind:?} spool {spool}: produced {produced}, received {received}, reported lost \
         {reported}, spooled {}, replayed {}, retried {}, requests {} ({} stalled, {} 503/429)",
        stats.spooled_total,
        stats.replayed,
        stats.retried,
        requests.len(),
        requests.iter().filter(|r| r.status == 0).count(),
        requests
            .iter()
            .filter(|r| matches!(r.status, 503 | 429))
            .count(),
    );
    assert_eq!(unique.len(), seqs.len(), "no record received twice");
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order");
    assert_eq!(
        received + reported,
        produced,
        "received + reported lost = produced"
    );
    assert_eq!(stats.dropped, reported);
    if spool {
        assert_eq!(reported, 0, "the spool held every outage");
        assert!(stats.spooled_total > 0 && stats.replayed > 0);
    } else {
        assert!(reported > 0, "the queue alone overflowed");
    }
}

fn sink_report_loss(report: &kcpwatch_log::sinks::SinkReport) -> u64 {
    report.unreported_loss
}

#[test]
fn outage_matrix_with_spool_accounts_for_every_record() {
    outage_accounting(hec(), true);
    outage_accounting(elastic(), true);
    outage_accounting(HttpKind::OtlpHttp, true);
}

#[test]
fn outage_matrix_without_spool_reports_what_it_loses() {
    outage_accounting(hec(), false);
    outage_accounting(elastic(), false);
    outage_accounting(HttpKind::OtlpHttp, false);
}

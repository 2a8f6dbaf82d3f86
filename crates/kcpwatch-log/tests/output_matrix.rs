//! The output accounting matrix: for each output kind (stdout, file, syslog UDP, TCP, TLS) and
//! each way its receiver can fail (killed, killed then restarted, stalled, full), every record
//! sent to the output is either received or reported lost by a `kcp:log_loss` record, and the
//! loss reports are never the majority of what is sent. HTTP has its matrix in
//! `http_sinks.rs`; the table, with what each cell means, is in docs/siem.md ("Accounting when
//! the receiver fails").
//!
//! The receivers are plain Rust in the test, so that a kill or a stall happens exactly when the
//! test says. What the sender cannot know is measured on the receiver side, never guessed:
//! - A TCP or TLS receiver "killed" first drops every segment that arrives (a socket filter:
//!   nothing more is acknowledged), then reads what its kernel had acknowledged but it had not
//!   read yet (`unread at death`: records gone with a real receiver that dies, and invisible to
//!   plain syslog, which has no application acknowledgement), then resets the connection.
//! - UDP loss in the receiver's kernel (buffer full) is its socket's `drops` in /proc/net/udp.
//!
//! Each test produces a few thousand numbered records straight into the ring, prints one
//! `MATRIX` line with the counts, and checks the sums exactly. Tests that need their own
//! standard output or resource limits run this binary again with one `#[ignore]`d child test,
//! spawned asynchronously and killed if it overruns.
#![cfg(target_os = "linux")]

mod support;

use std::collections::HashSet;
use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kcpwatch_log::clock::unix_micros;
use kcpwatch_log::sinks::{SyslogSinkConfig, SyslogTarget};
use kcpwatch_log::{
    CanonicalWriter, EventRing, LogDestination, LogOutput, LogThread, Observer, Outbox, Rotation,
};
use kcpwatch_proto::events::{CappedText, ErrorEvent, ErrorType};
use kcpwatch_proto::SecurityEvent;
use serde_json::Value;

use support::certs::Certs;
use support::receiver::parse_frames;
use support::{wait_for, TempDir};

// ---------------------------------------------------------------------------------------
// The log thread and its witness

/// One record of about 400 bytes, numbered.
fn event(i: u64) -> SecurityEvent {
    SecurityEvent::Error(ErrorEvent {
        conn: None,
        peer: None,
        local: Some("127.0.0.1:4000".parse().unwrap()),
        error_type: ErrorType::Network,
        code: "EIO",
        message: CappedText::format(format_args!("record {i:08} {}", "x".repeat(120))),
        suppressed: 0,
    })
}

struct Log {
    ring: Arc<EventRing>,
    thread: LogThread,
    outbox: Arc<Outbox>,
    produced: u64,
}

/// What a finished log thread leaves.
struct Outcome {
    /// Every record and loss report, as JavaScript gets them (the witness).
    witness: Vec<Value>,
    /// How long `finish` took.
    took: Duration,
    /// The runtime's counter of what the outputs lost (`stats().eventsLostOutput`).
    output_lost: u64,
    /// When `finish` was called: reports made from then on are made while closing.
    stop_us: u64,
}

impl Log {
    /// A log thread over `output`; the unbounded JavaScript outbox is the witness that sees
    /// every record and every loss report whatever the output does.
    fn start(output: LogOutput) -> Self {
        let ring = Arc::new(EventRing::new(1 << 16));
        let outbox = Arc::new(Outbox::new(usize::MAX, Box::new(|| {})));
        outbox.set_enabled(true);
        let writer = CanonicalWriter::new(Observer::default(), 0);
        let thread = LogThread::start(
            Arc::clone(&ring),
            writer,
            vec![output],
            Arc::clone(&outbox),
            "matrix-log".into(),
        )
        .expect("log thread");
        Self {
            ring,
            thread,
            outbox,
            produced: 0,
        }
    }

    /// Produces `n` records and wakes the log thread.
    fn produce(&mut self, n: u64) {
        for _ in 0..n {
            assert!(self.ring.push(unix_micros(), event(self.produced)));
            self.produced += 1;
        }
        self.thread.thread().unpark();
    }

    /// Produces `n` records in batches of `batch`, waiting for the ring to empty between them.
    fn produce_in_batches(&mut self, n: u64, batch: u64) {
        let mut left = n;
        while left > 0 {
            let k = left.min(batch);
            self.produce(k);
            left -= k;
            self.drained();
        }
    }

    /// Waits until the log thread has taken everything from the ring.
    fn drained(&self) {
        wait_for("the log thread to drain", Duration::from_secs(20), || {
            self.ring.is_empty().then_some(())
        });
    }

    fn finish(mut self) -> Outcome {
        let stop_us = unix_micros();
        let start = Instant::now();
        self.thread.finish();
        let took = start.elapsed();
        Outcome {
            witness: parse_lines(&self.outbox.take()),
            took,
            output_lost: self.outbox.output_lost(),
            stop_us,
        }
    }
}

fn parse_lines(bytes: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect()
}

/// The `seq` of every whole line of `bytes` (a torn last line is not a record received).
fn seqs_of_lines(bytes: &[u8]) -> Vec<u64> {
    bytes
        .split_inclusive(|b| *b == b'\n')
        .filter(|l| l.ends_with(b"\n"))
        .map(|l| {
            let v: Value = serde_json::from_slice(l)
                .unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(l)));
            v["seq"].as_u64().expect("seq")
        })
        .collect()
}

fn is_report(r: &Value) -> bool {
    r["name"] == "kcp:log_loss"
}

fn reports(witness: &[Value]) -> u64 {
    witness.iter().filter(|r| is_report(r)).count() as u64
}

fn regular(witness: &[Value]) -> u64 {
    witness.iter().filter(|r| !is_report(r)).count() as u64
}

/// Records `name` lost, as the reports in `witness` say.
fn reported_lost(witness: &[Value], name: &str) -> u64 {
    witness
        .iter()
        .filter(|r| is_report(r) && r["output"] == name)
        .map(|r| r["lost_output"].as_u64().unwrap_or(0))
        .sum()
}

fn micros_of(rfc3339: &str) -> u64 {
    humantime::parse_rfc3339(rfc3339)
        .expect("since")
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// The bound `server.close()` documents, with room for a loaded machine.
const CLOSE_BOUND: Duration = Duration::from_millis(1_000);

/// The counts of one cell.
struct Counts {
    produced: u64,
    reports: u64,
    /// Records and reports sent to the output.
    sent: u64,
    received: u64,
    reported_lost: u64,
    /// Lost where the sender cannot see it, measured at the receiver.
    invisible: u64,
}

impl Counts {
    fn print(&self, cell: &str, extra: &str) {
        eprintln!(
            "MATRIX {cell}: produced {} + {} loss reports = sent {}; received {}, reported lost \
             {}, lost unseen by the sender {}{extra}",
            self.produced,
            self.reports,
            self.sent,
            self.received,
            self.reported_lost,
            self.invisible
        );
    }

    /// Loss reports are never the majority of what is sent.
    fn assert_reports_not_majority(&self, cell: &str) {
        assert!(
            self.reports * 2 < self.sent,
            "{cell}: {} loss reports of {} records sent",
            self.reports,
            self.sent
        );
    }
}

/// The accounting of a stream output (stdout, file), which gets every record and every loss
/// report, the last one included: sent = received + lost, where `output_lost` (the runtime's
/// counter) holds every loss and the reports all but the last report's own.
fn check_stream(cell: &str, name: &str, out: &Outcome, received: u64) -> Counts {
    let produced = regular(&out.witness);
    let r = reports(&out.witness);
    let lost = reported_lost(&out.witness, name);
    let counts = Counts {
        produced,
        reports: r,
        sent: produced + r,
        received,
        reported_lost: lost,
        invisible: 0,
    };
    counts.print(
        cell,
        &format!(
            "; counted lost {} (closed in {:?})",
            out.output_lost, out.took
        ),
    );
    assert!(
        out.took < CLOSE_BOUND,
        "{cell}: closing took {:?}",
        out.took
    );
    assert_eq!(
        received + out.output_lost,
        produced + r,
        "{cell}: received {received} + counted lost {} = {produced} records + {r} reports",
        out.output_lost
    );
    assert!(
        lost == out.output_lost || lost + 1 == out.output_lost,
        "{cell}: reported {lost}, counted {}: only the last report's own loss is unreported",
        out.output_lost
    );
    counts.assert_reports_not_majority(cell);
    counts
}

/// The accounting of a network output: the reports made while closing are not sent to it (it
/// is closed by then), every other record and report is; sent = received + reported lost +
/// what the receiver lost where the sender cannot see it, measured there: records it had not
/// read when it died (`unread`) and datagrams its kernel dropped (`drops`).
fn check_network(
    cell: &str,
    name: &str,
    out: &Outcome,
    received: &HashSet<u64>,
    unread: &HashSet<u64>,
    drops: u64,
) -> Counts {
    let sent_seqs: HashSet<u64> = received.union(unread).copied().collect();
    // A record can be both unread at a receiver's death and received: the sink sends again what
    // a dead connection had not acknowledged, on a new connection (to the restarted receiver, or
    // one the dying listener still accepted). It was delivered, so it is not lost unseen.
    let invisible = unread.difference(received).count() as u64 + drops;
    let produced = regular(&out.witness);
    let r = reports(&out.witness);
    let lost = reported_lost(&out.witness, name);
    let closing = out
        .witness
        .iter()
        .filter(|v| is_report(v))
        .filter(|v| micros_of(v["since"].as_str().unwrap_or_default()) >= out.stop_us)
        .filter(|v| !sent_seqs.contains(&v["seq"].as_u64().unwrap()))
        .count() as u64;
    assert!(closing <= 1, "{cell}: {closing} reports while closing");
    let counts = Counts {
        produced,
        reports: r,
        sent: produced + r - closing,
        received: received.len() as u64,
        reported_lost: lost,
        invisible,
    };
    counts.print(
        cell,
        &format!(
            " ({closing} report made at close, not sent; closed in {:?})",
            out.took
        ),
    );
    assert!(
        out.took < CLOSE_BOUND,
        "{cell}: closing took {:?}",
        out.took
    );
    assert_eq!(
        out.output_lost, lost,
        "{cell}: every loss of a network output is reported"
    );
    assert_eq!(
        counts.received + lost + invisible,
        counts.sent,
        "{cell}: received {} + reported lost {lost} + unseen {invisible} = sent {} ({produced} \
         records + {r} reports - {closing} made at close)",
        counts.received,
        counts.sent
    );
    counts.assert_reports_not_majority(cell);
    counts
}

fn network(config: SyslogSinkConfig) -> LogOutput {
    LogOutput::canonical(LogDestination::Syslog(config))
}

fn quick(target: SyslogTarget, queue: usize) -> SyslogSinkConfig {
    let mut c = SyslogSinkConfig::new(target);
    c.queue_records = queue;
    c.backoff = (Duration::from_millis(20), Duration::from_millis(100));
    c.connect_timeout = Duration::from_secs(2);
    c.write_timeout = Duration::from_millis(500);
    c
}

// ---------------------------------------------------------------------------------------
// Receivers

/// A socket filter that drops every packet: the kernel acknowledges nothing more.
fn drop_everything(sock: socket2::SockRef<'_>) {
    let drop_all = libc::sock_filter {
        code: (libc::BPF_RET | libc::BPF_K) as u16,
        jt: 0,
        jf: 0,
        k: 0,
    };
    sock.attach_filter(&[drop_all]).expect("attach filter");
}

/// The network cells run one at a time. A killed receiver's port is free during its outage,
/// and the kernel may hand it to another cell's new receiver, which that cell's sink then
/// shares with the first cell's reconnecting sink; and every cell's waits share two cores. A
/// cell that panics poisons the lock; the next one takes it anyway.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Records received, by `seq` (TCP may deliver one twice after a reconnect).
type Seqs = Arc<Mutex<HashSet<u64>>>;

fn add_seqs(seqs: &Seqs, records: &[Vec<u8>]) {
    let mut s = seqs.lock().unwrap();
    for r in records {
        let v: Value = serde_json::from_slice(r).expect("a canonical record");
        s.insert(v["seq"].as_u64().expect("seq"));
    }
}

/// What one TCP or TLS session of a [`StreamRx`] reads.
enum Wire {
    Tcp(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ServerConnection, TcpStream>>),
}

impl Wire {
    fn tcp(&self) -> &TcpStream {
        match self {
            Wire::Tcp(s) => s,
            Wire::Tls(s) => &s.sock,
        }
    }
}

impl Read for Wire {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Wire::Tcp(s) => s.read(buf),
            Wire::Tls(s) => s.read(buf),
        }
    }
}

/// The receiver's state, shared with its threads.
#[derive(Default)]
struct RxState {
    seqs: Seqs,
    /// Stop reading (keep every connection open).
    stalled: AtomicBool,
    /// Die now.
    kill: AtomicBool,
    /// Records read at death from what the kernel had acknowledged.
    unread_at_death: Seqs,
    connections: AtomicU64,
    /// The sessions' sockets (second handles), to see what waits in their buffers.
    sockets: Mutex<Vec<TcpStream>>,
}

/// A syslog receiver over TCP or TLS (octet-counted frames) that can be killed, stalled, and
/// started again on the same port.
struct StreamRx {
    addr: SocketAddr,
    state: Arc<RxState>,
    accept: Option<JoinHandle<()>>,
    sessions: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl StreamRx {
    /// Listens on `addr` (port 0: any); `rcvbuf` sets a small receive buffer; `tls` makes it
    /// a TLS server.
    fn start(
        addr: SocketAddr,
        seqs: Seqs,
        rcvbuf: Option<usize>,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Self {
        let socket = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )
        .unwrap();
        socket.set_reuse_address(true).unwrap();
        if let Some(size) = rcvbuf {
            socket.set_recv_buffer_size(size).unwrap();
        }
        // The previous receiver's port may be briefly unavailable: bounded retries.
        let mut tries = 0;
        while let Err(e) = socket.bind(&addr.into()) {
            tries += 1;
            assert!(tries < 100, "bind {addr}: {e}");
            std::thread::sleep(Duration::from_millis(20));
        }
        socket.listen(64).unwrap();
        let listener: TcpListener = socket.into();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(RxState {
            seqs,
            ..Default::default()
        });
        let sessions: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let accept = {
            let (state, sessions) = (Arc::clone(&state), Arc::clone(&sessions));
            std::thread::spawn(move || accept_loop(listener, state, sessions, tls))
        };
        Self {
            addr,
            state,
            accept: Some(accept),
            sessions,
        }
    }

    fn stall(&self) {
        self.state.stalled.store(true, Ordering::Release);
    }

    fn connections(&self) -> u64 {
        self.state.connections.load(Ordering::Acquire)
    }

    /// Bytes its kernel acknowledged that it has not read, over every connection.
    fn unread_bytes(&self) -> u64 {
        let sockets = self.state.sockets.lock().unwrap();
        sockets
            .iter()
            .map(|s| {
                let mut n: libc::c_int = 0;
                // SAFETY: FIONREAD writes one c_int.
                unsafe {
                    libc::ioctl(
                        std::os::unix::io::AsRawFd::as_raw_fd(s),
                        libc::FIONREAD,
                        &mut n,
                    )
                };
                n.max(0) as u64
            })
            .sum()
    }

    /// Dies: acknowledges nothing more, reads what its kernel had acknowledged (returned: the
    /// records a real receiver would lose with it, or read if it resumed), resets every
    /// connection and refuses new ones.
    fn kill(mut self) -> HashSet<u64> {
        self.state.kill.store(true, Ordering::Release);
        if let Some(a) = self.accept.take() {
            a.join().expect("accept thread");
        }
        let sessions: Vec<_> = self.sessions.lock().unwrap().drain(..).collect();
        for s in sessions {
            s.join().expect("session thread");
        }
        set_of(&self.state.unread_at_death)
    }
}

impl Drop for StreamRx {
    fn drop(&mut self) {
        self.state.kill.store(true, Ordering::Release);
        if let Some(a) = self.accept.take() {
            let _ = a.join();
        }
        for s in self.sessions.lock().unwrap().drain(..) {
            let _ = s.join();
        }
    }
}

fn accept_loop(
    listener: TcpListener,
    state: Arc<RxState>,
    sessions: Arc<Mutex<Vec<JoinHandle<()>>>>,
    tls: Option<Arc<rustls::ServerConfig>>,
) {
    let spawn = |stream: TcpStream| {
        state.connections.fetch_add(1, Ordering::AcqRel);
        if let Ok(second) = stream.try_clone() {
            state.sockets.lock().unwrap().push(second);
        }
        let (state, tls) = (Arc::clone(&state), tls.clone());
        let h = std::thread::spawn(move || session(stream, state, tls));
        sessions.lock().unwrap().push(h);
    };
    while !state.kill.load(Ordering::Acquire) {
        match listener.accept() {
            Ok((stream, _)) => spawn(stream),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
    // Connections the kernel completed but nobody accepted hold acknowledged data too: new
    // ones get no more (the filter is inherited), and the pending ones die like the rest.
    drop_everything(socket2::SockRef::from(&listener));
    while let Ok((stream, _)) = listener.accept() {
        spawn(stream);
    }
}

fn session(stream: TcpStream, state: Arc<RxState>, tls: Option<Arc<rustls::ServerConfig>>) {
    stream.set_nodelay(true).unwrap();
    let mut wire = match tls {
        None => Wire::Tcp(stream),
        Some(config) => {
            let mut tcp = stream;
            tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut conn = rustls::ServerConnection::new(config).unwrap();
            while conn.is_handshaking() {
                if state.kill.load(Ordering::Acquire) || conn.complete_io(&mut tcp).is_err() {
                    return;
                }
            }
            // The session tickets, which the sink waits for after a TLS 1.3 handshake.
            while conn.wants_write() {
                if conn.write_tls(&mut tcp).is_err() {
                    return;
                }
            }
            Wire::Tls(Box::new(rustls::StreamOwned::new(conn, tcp)))
        }
    };
    wire.tcp()
        .set_read_timeout(Some(Duration::from_millis(10)))
        .unwrap();
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        if state.kill.load(Ordering::Acquire) {
            die(wire, buf, &state);
            return;
        }
        if state.stalled.load(Ordering::Acquire) {
            // Not reading: the kernel's buffer fills and the window closes.
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        match wire.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                add_seqs(&state.seqs, &parse_frames(&mut buf));
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            // The sender reset the connection: what was received is kept.
            Err(_) => return,
        }
    }
}

/// Acknowledges nothing more, counts the whole records the kernel had acknowledged and the
/// program had not read, and resets the connection. A record only partly acknowledged is not
/// among them: the sender knows it was not delivered and sends it again.
fn die(mut wire: Wire, mut buf: Vec<u8>, state: &RxState) {
    drop_everything(socket2::SockRef::from(wire.tcp()));
    wire.tcp().set_nonblocking(true).unwrap();
    let mut chunk = vec![0u8; 64 << 10];
    // Bounded: the filter stops anything new from arriving.
    for _ in 0..100_000 {
        match wire.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    add_seqs(&state.unread_at_death, &parse_frames(&mut buf));
    let _ = socket2::SockRef::from(wire.tcp()).set_linger(Some(Duration::ZERO));
}

/// A syslog receiver over UDP that can be killed, stalled and started again on its port.
struct UdpRx {
    sock: Arc<UdpSocket>,
    seqs: Seqs,
    reading: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// What a UDP receiver lost where the sender cannot see it.
struct UdpEnd {
    /// Datagrams in its buffer, not read.
    unread: HashSet<u64>,
    /// Datagrams its kernel dropped (buffer full, or after death).
    drops: u64,
}

impl UdpRx {
    fn start(addr: SocketAddr, seqs: Seqs, rcvbuf: Option<usize>) -> Self {
        let socket = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::DGRAM,
            Some(socket2::Protocol::UDP),
        )
        .unwrap();
        if let Some(size) = rcvbuf {
            socket.set_recv_buffer_size(size).unwrap();
        }
        socket.bind(&addr.into()).expect("bind udp");
        let sock: UdpSocket = socket.into();
        sock.set_read_timeout(Some(Duration::from_millis(10)))
            .unwrap();
        let sock = Arc::new(sock);
        let reading = Arc::new(AtomicBool::new(true));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (sock, seqs, reading, stop) = (
                Arc::clone(&sock),
                Arc::clone(&seqs),
                Arc::clone(&reading),
                Arc::clone(&stop),
            );
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 65_536];
                while !stop.load(Ordering::Acquire) {
                    if !reading.load(Ordering::Acquire) {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                    if let Ok(n) = sock.recv(&mut buf) {
                        add_seqs(&seqs, &[buf[..n].to_vec()]);
                    }
                }
            })
        };
        Self {
            sock,
            seqs,
            reading,
            stop,
            thread: Some(thread),
        }
    }

    fn addr(&self) -> SocketAddr {
        self.sock.local_addr().unwrap()
    }

    fn stall(&self) {
        self.reading.store(false, Ordering::Release);
    }

    /// Stops, takes nothing more (a filter: later datagrams are kernel drops), reads what is
    /// in its buffer (`as_received`: into the received records, as a stalled receiver that
    /// resumes would; otherwise counted as unread), and closes.
    fn end(mut self, as_received: bool) -> UdpEnd {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.join().expect("udp receiver");
        }
        drop_everything(socket2::SockRef::from(&*self.sock));
        self.sock.set_nonblocking(true).unwrap();
        let mut buf = vec![0u8; 65_536];
        let mut unread = Vec::new();
        while let Ok(n) = self.sock.recv(&mut buf) {
            unread.push(buf[..n].to_vec());
        }
        let drops = udp_drops(self.addr().port());
        if as_received {
            add_seqs(&self.seqs, &unread);
            UdpEnd {
                unread: HashSet::new(),
                drops,
            }
        } else {
            let seqs = Seqs::default();
            add_seqs(&seqs, &unread);
            UdpEnd {
                unread: set_of(&seqs),
                drops,
            }
        }
    }
}

impl Drop for UdpRx {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The `drops` column of /proc/net/udp for the socket bound to 127.0.0.1:`port`.
fn udp_drops(port: u16) -> u64 {
    let table = std::fs::read_to_string("/proc/net/udp").expect("/proc/net/udp");
    let local = format!("0100007F:{port:04X}");
    table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.get(1) == Some(&local.as_str()))
        .and_then(|f| f.last().and_then(|d| d.parse().ok()))
        .unwrap_or_else(|| panic!("no socket {local} in /proc/net/udp"))
}

fn set_of(seqs: &Seqs) -> HashSet<u64> {
    seqs.lock().unwrap().clone()
}

fn count(seqs: &Seqs) -> usize {
    seqs.lock().unwrap().len()
}

/// Produces `n` records in batches of 50, each batch once the receiver has every record before
/// it, so the sink's queue never holds more than one batch. Producing first and waiting after
/// lost records to a full queue whenever the sink's first connection came up late (a TLS
/// handshake on a loaded CI machine), and then the count never came.
fn produce_received(log: &mut Log, n: u64, seqs: &Seqs) {
    let target = count(seqs) as u64;
    let mut left = n;
    let mut sent = 0;
    while left > 0 {
        let k = left.min(50);
        log.produce(k);
        left -= k;
        sent += k;
        wait_for("the first records", Duration::from_secs(20), || {
            (count(seqs) as u64 >= target + sent).then_some(())
        });
    }
}

// ---------------------------------------------------------------------------------------
// syslog UDP

fn udp_output(addr: SocketAddr) -> (LogOutput, String) {
    (
        network(quick(SyslogTarget::Udp(addr), 10_000)),
        format!("syslog+udp://{addr}"),
    )
}

/// Killed: the receiver's socket is closed, so each datagram draws an ICMP "port
/// unreachable". The sender counts every datagram refused so, and what is then refused at once.
#[test]
fn udp_receiver_killed() {
    let _serial = serial();
    let seqs = Seqs::default();
    let rx = UdpRx::start("127.0.0.1:0".parse().unwrap(), Arc::clone(&seqs), None);
    let (output, name) = udp_output(rx.addr());
    let mut log = Log::start(output);
    log.produce_in_batches(1_000, 50);
    let port = rx.addr().port();
    wait_for("the first records", Duration::from_secs(10), || {
        (count(&seqs) as u64 + udp_drops(port) >= 1_000).then_some(())
    });
    let end = rx.end(false);
    log.produce_in_batches(2_000, 50);
    let out = log.finish();
    let c = check_network(
        "syslog UDP, killed",
        &name,
        &out,
        &set_of(&seqs),
        &end.unread,
        end.drops,
    );
    assert!(c.reported_lost >= 2_000, "the records after death are lost");
}

/// Killed, then restarted on the same port: records flow again, and the total adds up.
#[test]
fn udp_receiver_killed_then_restarted() {
    let _serial = serial();
    let seqs = Seqs::default();
    let rx = UdpRx::start("127.0.0.1:0".parse().unwrap(), Arc::clone(&seqs), None);
    let addr = rx.addr();
    let (output, name) = udp_output(addr);
    let mut log = Log::start(output);
    log.produce_in_batches(1_000, 50);
    wait_for("the first records", Duration::from_secs(10), || {
        (count(&seqs) as u64 + udp_drops(addr.port()) >= 1_000).then_some(())
    });
    let first = rx.end(false);
    log.produce_in_batches(1_000, 50);
    let rx = UdpRx::start(addr, Arc::clone(&seqs), None);
    log.produce_in_batches(1_000, 50);
    let out = log.finish();
    let second = rx.end(true);
    let c = check_network(
        "syslog UDP, killed then restarted",
        &name,
        &out,
        &set_of(&seqs),
        &first.unread,
        first.drops + second.drops,
    );
    // Records handed to the sink during the outage and sent after the restart arrive: only
    // some of the outage is lost.
    assert!(c.reported_lost > 0, "the outage is reported");
}

/// Stalled (the receiver stops reading): its buffer fills and its kernel drops the rest. The
/// sender cannot see it: nothing is reported lost, and the loss is the receiver's `drops`.
fn udp_stalled(cell: &str, rcvbuf: Option<usize>) {
    let seqs = Seqs::default();
    let rx = UdpRx::start("127.0.0.1:0".parse().unwrap(), Arc::clone(&seqs), rcvbuf);
    let (output, name) = udp_output(rx.addr());
    let mut log = Log::start(output);
    log.produce_in_batches(500, 50);
    // A small buffer may drop some already, while it still reads.
    let port = rx.addr().port();
    wait_for("the first records", Duration::from_secs(10), || {
        (count(&seqs) as u64 + udp_drops(port) >= 500).then_some(())
    });
    rx.stall();
    log.produce_in_batches(2_500, 50);
    let out = log.finish();
    let end = rx.end(true);
    let c = check_network(
        cell,
        &name,
        &out,
        &set_of(&seqs),
        &HashSet::new(),
        end.drops,
    );
    assert_eq!(
        c.reported_lost, 0,
        "{cell}: the sender cannot see this loss"
    );
    assert!(
        end.drops > 0,
        "{cell}: the receiver's kernel dropped datagrams"
    );
}

#[test]
fn udp_receiver_stalled() {
    let _serial = serial();
    udp_stalled("syslog UDP, stalled", None);
}

#[test]
fn udp_receiver_full() {
    let _serial = serial();
    udp_stalled("syslog UDP, full (4 KiB receive buffer)", Some(4096));
}

// ---------------------------------------------------------------------------------------
// syslog TCP and TLS

/// The TLS side of a cell: the client's CA and the server's configuration.
struct Tls {
    _dir: TempDir,
    certs: Certs,
    server: Arc<rustls::ServerConfig>,
}

impl Tls {
    fn new() -> Self {
        let dir = TempDir::new("matrix-tls");
        let certs = Certs::generate(dir.path());
        let server = server_tls(&certs);
        Self {
            _dir: dir,
            certs,
            server,
        }
    }
}

fn server_tls(certs: &Certs) -> Arc<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&certs.server_cert)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(&certs.server_key).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    Arc::new(config)
}

/// A TCP or TLS cell: the receiver and the sink's configuration.
struct Stream {
    tls: Option<Tls>,
    rcvbuf: Option<usize>,
    queue: usize,
}

impl Stream {
    fn label(&self) -> &'static str {
        if self.tls.is_some() {
            "syslog TLS"
        } else {
            "syslog TCP"
        }
    }

    fn receiver(&self, addr: SocketAddr, seqs: &Seqs) -> StreamRx {
        let server = self.tls.as_ref().map(|t| Arc::clone(&t.server));
        StreamRx::start(addr, Arc::clone(seqs), self.rcvbuf, server)
    }

    fn output(&self, addr: SocketAddr) -> (LogOutput, String) {
        match &self.tls {
            None => (
                network(quick(SyslogTarget::Tcp(addr), self.queue)),
                format!("syslog+tcp://{addr}"),
            ),
            Some(tls) => (
                network(quick(
                    SyslogTarget::Tls {
                        addr,
                        server_name: "localhost".into(),
                        ca_file: tls.certs.ca.clone(),
                        client_cert: None,
                    },
                    self.queue,
                )),
                format!("syslog+tls://{addr}"),
            ),
        }
    }
}

fn tcp() -> Stream {
    Stream {
        tls: None,
        rcvbuf: None,
        queue: 500,
    }
}

fn tls() -> Stream {
    Stream {
        tls: Some(Tls::new()),
        rcvbuf: None,
        queue: 500,
    }
}

/// Killed while records flow: what it had not read dies with it (unseen by the sender, measured
/// here); the rest of what it did not get is reported lost (the queue fills, and at close).
fn stream_killed(s: Stream) {
    let cell = format!("{}, killed", s.label());
    let seqs = Seqs::default();
    let rx = s.receiver("127.0.0.1:0".parse().unwrap(), &seqs);
    let (output, name) = s.output(rx.addr);
    let mut log = Log::start(output);
    produce_received(&mut log, 1_000, &seqs);
    // It hangs, then is killed with records acknowledged by its kernel and not read.
    rx.stall();
    log.produce(500);
    wait_for(
        "records waiting in its buffer",
        Duration::from_secs(10),
        || (rx.unread_bytes() > 0).then_some(()),
    );
    let unread = rx.kill();
    log.drained();
    log.produce_in_batches(1_500, 50);
    let out = log.finish();
    let c = check_network(&cell, &name, &out, &set_of(&seqs), &unread, 0);
    assert!(c.reported_lost > 0, "{cell}: the outage is reported");
}

/// Killed, then a new receiver on the same port while records flow: the sink reconnects,
/// sends again what the dead one had not acknowledged, and reports what its queue could not
/// hold during the outage.
fn stream_restarted(s: Stream) {
    let cell = format!("{}, killed then restarted", s.label());
    let seqs = Seqs::default();
    let rx = s.receiver("127.0.0.1:0".parse().unwrap(), &seqs);
    let addr = rx.addr;
    let (output, name) = s.output(addr);
    let mut log = Log::start(output);
    produce_received(&mut log, 1_000, &seqs);
    // It hangs, then is killed with records acknowledged by its kernel and not read.
    rx.stall();
    log.produce(500);
    wait_for(
        "records waiting in its buffer",
        Duration::from_secs(10),
        || (rx.unread_bytes() > 0).then_some(()),
    );
    let unread = rx.kill();
    log.drained();
    log.produce_in_batches(1_500, 50);
    let rx = s.receiver(addr, &seqs);
    wait_for("the reconnection", Duration::from_secs(10), || {
        (rx.connections() > 0).then_some(())
    });
    // Records flow again: 1,000 more arrive. They are produced while waiting, because the
    // sink's queue may still be full of the outage's backlog (whatever it refuses meanwhile is
    // reported lost, which check_network counts); bounded at 5,000 records.
    let before = count(&seqs);
    let mut produced = 0;
    wait_for(
        "the records after the restart",
        Duration::from_secs(30),
        || {
            if count(&seqs) >= before + 1_000 {
                return Some(());
            }
            if produced < 5_000 {
                log.produce_in_batches(50, 50);
                produced += 50;
            }
            None
        },
    );
    let out = log.finish();
    let unread: HashSet<u64> = unread.union(&rx.kill()).copied().collect();
    let c = check_network(&cell, &name, &out, &set_of(&seqs), &unread, 0);
    assert!(c.reported_lost > 0, "{cell}: the outage is reported");
    assert!(
        c.received > 2_000,
        "{cell}: records flow again after the restart"
    );
}

/// The shortest record a stream sink writes (framing included): bounds how many records fill
/// a number of bytes.
const MIN_RECORD_BYTES: u64 = 300;

/// Stalled: the receiver accepts and stops reading, so the window closes and the sink's
/// writes block. Each blocked write gives up after `write_timeout`, the sink reconnects
/// (and the receiver, still alive, accepts and does not read either); what the queue cannot
/// hold meanwhile is reported lost, and at close what was not acknowledged is too. What the
/// receiver's kernel acknowledged is the receiver's: it reads it when it resumes (here, at the
/// end, after taking nothing more).
fn stream_stalled(mut s: Stream, what: &str) {
    // A fixed receive buffer: left to autotuning (up to tcp_rmem's maximum, 32 MiB here) the
    // receiver's kernel could take the whole stall's worth, and nothing would block.
    let rcvbuf = *s.rcvbuf.get_or_insert(64 * 1024) as u64;
    // After the stall, more than both kernels can hold: the receiver's buffer (which the kernel
    // doubles) and the sender's send buffer at its largest (tcp_wmem's maximum).
    let wmem_max = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem")
        .ok()
        .and_then(|t| t.split_whitespace().nth(2)?.parse::<u64>().ok())
        .unwrap_or(4 << 20);
    let after_stall = ((wmem_max + 2 * rcvbuf) / MIN_RECORD_BYTES + 1_000).max(2_500);
    let cell = format!("{}, {what}", s.label());
    let seqs = Seqs::default();
    let rx = s.receiver("127.0.0.1:0".parse().unwrap(), &seqs);
    let (output, name) = s.output(rx.addr);
    let mut log = Log::start(output);
    produce_received(&mut log, 500, &seqs);
    rx.stall();
    log.produce_in_batches(after_stall, 50);
    let out = log.finish();
    let connections = rx.connections();
    let read_before = count(&seqs);
    // It resumes, taking only what its kernel had acknowledged: those records are received.
    let backlog = rx.kill();
    let received: HashSet<u64> = set_of(&seqs).union(&backlog).copied().collect();
    let c = check_network(&cell, &name, &out, &received, &HashSet::new(), 0);
    eprintln!(
        "MATRIX {cell}: {connections} connections, {read_before} read before the stall, {} in \
         the receiver's buffers at the end",
        backlog.len()
    );
    assert!(
        c.reported_lost > 0,
        "{cell}: what was not acknowledged is reported lost"
    );
}

#[test]
fn tcp_receiver_killed() {
    let _serial = serial();
    stream_killed(tcp());
}

#[test]
fn tcp_receiver_killed_then_restarted() {
    let _serial = serial();
    stream_restarted(tcp());
}

#[test]
fn tcp_receiver_stalled() {
    let _serial = serial();
    stream_stalled(tcp(), "stalled");
}

#[test]
fn tcp_receiver_full() {
    let _serial = serial();
    let mut s = tcp();
    s.rcvbuf = Some(4096);
    stream_stalled(s, "full (4 KiB receive buffer)");
}

#[test]
fn tls_receiver_killed() {
    let _serial = serial();
    stream_killed(tls());
}

#[test]
fn tls_receiver_killed_then_restarted() {
    let _serial = serial();
    stream_restarted(tls());
}

#[test]
fn tls_receiver_stalled() {
    let _serial = serial();
    stream_stalled(tls(), "stalled");
}

#[test]
fn tls_receiver_full() {
    let _serial = serial();
    let mut s = tls();
    s.rcvbuf = Some(4096);
    stream_stalled(s, "full (4 KiB receive buffer)");
}

// ---------------------------------------------------------------------------------------
// file

fn file_output(path: &Path) -> LogOutput {
    LogOutput::canonical(LogDestination::File {
        path: path.to_path_buf(),
        rotation: Rotation::default(),
    })
}

fn file_name(path: &Path) -> String {
    format!("file:{}", path.display())
}

/// Killed: the file is deleted while records are written (`rm events.ndjson`). The output
/// starts a new file at its path; what went to the deleted file before it noticed was in
/// that file when it was deleted (read here through a descriptor kept open).
#[test]
fn file_deleted_while_writing() {
    let dir = TempDir::new("matrix-file-deleted");
    let path = dir.path().join("events.ndjson");
    let mut log = Log::start(file_output(&path));
    log.produce_in_batches(1_000, 50);
    let mut old = std::fs::File::open(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    log.produce_in_batches(1_000, 50);
    let out = log.finish();
    let mut old_bytes = Vec::new();
    old.read_to_end(&mut old_bytes).unwrap();
    let new_bytes = std::fs::read(&path).unwrap_or_default();
    let (in_old, in_new) = (seqs_of_lines(&old_bytes), seqs_of_lines(&new_bytes));
    eprintln!(
        "MATRIX file, deleted: {} records in the deleted file, {} in the new one",
        in_old.len(),
        in_new.len()
    );
    assert!(
        !in_new.is_empty(),
        "a new file is started at {}",
        path.display()
    );
    check_stream(
        "file, deleted while writing",
        &file_name(&path),
        &out,
        (in_old.len() + in_new.len()) as u64,
    );
}

/// Restarted: the file is renamed away while records are written (logrotate's default
/// `create`, no `copytruncate`, no signal to the writer). The output starts a new file at its
/// path: the renamed one and the new one hold every record between them.
#[test]
fn file_renamed_away_while_writing() {
    let dir = TempDir::new("matrix-file-renamed");
    let path = dir.path().join("events.ndjson");
    let rotated = dir.path().join("events.ndjson.1");
    let mut log = Log::start(file_output(&path));
    log.produce_in_batches(1_000, 50);
    std::fs::rename(&path, &rotated).unwrap();
    log.produce_in_batches(1_000, 50);
    let out = log.finish();
    let old = seqs_of_lines(&std::fs::read(&rotated).unwrap());
    let new = seqs_of_lines(&std::fs::read(&path).unwrap_or_default());
    eprintln!(
        "MATRIX file, renamed: {} records in the renamed file, {} in the new one",
        old.len(),
        new.len()
    );
    assert!(
        new.len() >= 950,
        "the records after the rename go to a new {} ({} there)",
        path.display(),
        new.len()
    );
    check_stream(
        "file, renamed away (logrotate create)",
        &file_name(&path),
        &out,
        (old.len() + new.len()) as u64,
    );
}

// ---------------------------------------------------------------------------------------
// Child processes

/// Runs child test `name` of this binary in a process of its own, asynchronously, killed if it
/// has not ended within a minute; it passes when it exits 0. Its stderr (the MATRIX lines) is
/// passed on.
fn run_child(name: &str) {
    use std::process::{Command, Stdio};
    let exe = std::env::current_exe().unwrap();
    let dir = TempDir::new("matrix-child");
    let (out_path, err_path) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut child = Command::new(exe)
        .args([name, "--exact", "--include-ignored", "--nocapture"])
        .args(["--test-threads", "1"])
        .env("KCPWATCH_MATRIX_CHILD", name)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("spawn the child test");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    for line in stderr.lines().filter(|l| l.starts_with("MATRIX")) {
        eprintln!("{line}");
    }
    let status = status.unwrap_or_else(|| {
        panic!("child {name} ran over a minute:\n--- stdout\n{stdout}\n--- stderr\n{stderr}")
    });
    assert!(
        status.success(),
        "child {name} failed:\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    assert!(stdout.contains("1 passed"), "the child ran: {stdout}");
}

fn is_child(name: &str) -> bool {
    std::env::var("KCPWATCH_MATRIX_CHILD").is_ok_and(|v| v == name)
}

/// Full: the file may not grow past 100,000 bytes (a file size limit: the write that crosses
/// it is cut short, the next ones fail, as on a disk that fills up), then there is room again.
#[test]
fn file_full_then_room_again() {
    run_child("child_file_full_then_room_again");
}

#[test]
#[ignore = "a child of file_full_then_room_again"]
fn child_file_full_then_room_again() {
    if !is_child("child_file_full_then_room_again") {
        return;
    }
    let dir = TempDir::new("matrix-file-full");
    let path = dir.path().join("events.ndjson");
    let set_limit = |bytes: u64| {
        let lim = libc::rlimit {
            rlim_cur: bytes,
            rlim_max: libc::RLIM_INFINITY,
        };
        // SAFETY: plain setrlimit with a live struct.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_FSIZE, &lim) }, 0);
    };
    // SAFETY: SIGXFSZ would otherwise kill the process at the limit.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    set_limit(100_000);
    let mut log = Log::start(file_output(&path));
    log.produce_in_batches(1_500, 50);
    set_limit(libc::RLIM_INFINITY);
    log.produce_in_batches(1_500, 50);
    let out = log.finish();
    let kept = seqs_of_lines(&std::fs::read(&path).unwrap());
    let c = check_stream(
        "file, full then room again",
        &file_name(&path),
        &out,
        kept.len() as u64,
    );
    assert!(c.reported_lost > 0, "the full disk lost records");
    assert!(kept.len() > 1_500, "writes resumed when there was room");
}

/// Points descriptor 1 at a new pipe and returns (the read end, the saved descriptor 1).
fn stdout_to_pipe(size: Option<i32>) -> (i32, i32) {
    let mut fds = [0i32; 2];
    // SAFETY: pipe/fcntl/dup/dup2/close on descriptors this process owns.
    unsafe {
        assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
        if let Some(size) = size {
            assert!(libc::fcntl(fds[1], libc::F_SETPIPE_SZ, size) >= size);
        }
        let saved = libc::dup(1);
        assert!(saved >= 0);
        assert!(libc::dup2(fds[1], 1) >= 0);
        libc::close(fds[1]);
        (fds[0], saved)
    }
}

fn restore_stdout(saved: i32) {
    // SAFETY: as above.
    unsafe {
        libc::dup2(saved, 1);
        libc::close(saved);
    }
}

/// Reads `fd` into `into` until `more` says stop or the writer is gone; returns the bytes.
fn read_fd(fd: i32, mut more: impl FnMut(&[u8]) -> bool) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = vec![0u8; 4096];
    while more(&all) {
        // SAFETY: read into a live buffer of that length.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break;
        }
        all.extend_from_slice(&buf[..n as usize]);
    }
    all
}

/// Bytes waiting in the pipe of `fd`.
/// Whether a write to `fd` would find room now (`poll` for `POLLOUT`, without waiting).
fn writable(fd: i32) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: poll reads and writes one pollfd it is given.
    unsafe { libc::poll(&mut p, 1, 0) > 0 }
}

fn pipe_fill(fd: i32) -> i32 {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one c_int.
    unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) };
    n
}

/// Killed: `kcpwatch serve | reader`, and the reader exits in the middle of the stream, with
/// records still in the pipe. Those never reach anyone: they are lost, and must be counted.
#[test]
fn stdout_reader_killed() {
    run_child("child_stdout_reader_killed");
}

#[test]
#[ignore = "a child of stdout_reader_killed"]
fn child_stdout_reader_killed() {
    if !is_child("child_stdout_reader_killed") {
        return;
    }
    let (rd, saved) = stdout_to_pipe(None);
    let mut log = Log::start(LogOutput::canonical(LogDestination::Stdout));
    // The reader takes about 1,000 records, leaving the pipe full behind it, and exits.
    let reader = std::thread::spawn(move || {
        let got = read_fd(rd, |all| {
            all.iter().filter(|b| **b == b'\n').count() < 1_000
        });
        wait_for("the pipe to fill again", Duration::from_secs(10), || {
            (pipe_fill(rd) > 16_384).then_some(())
        });
        // SAFETY: the read end is this thread's.
        unsafe { libc::close(rd) };
        got
    });
    log.produce_in_batches(3_000, 100);
    let out = log.finish();
    restore_stdout(saved);
    let got = reader.join().unwrap();
    check_stream(
        "stdout, reader killed",
        "stdout",
        &out,
        seqs_of_lines(&got).len() as u64,
    );
}

/// Stalled: the reader keeps the pipe open and stops reading. The log thread waits (a slow
/// reader loses nothing), the ring in front counts what the producer could not queue, and
/// closing gives up on the reader within the bound, counting what it could not write.
#[test]
fn stdout_reader_stalled() {
    run_child("child_stdout_reader_stalled");
}

#[test]
#[ignore = "a child of stdout_reader_stalled"]
fn child_stdout_reader_stalled() {
    if !is_child("child_stdout_reader_stalled") {
        return;
    }
    stdout_stalled("stdout, reader stalled", None);
}

/// Full: as stalled, with the smallest pipe (one page).
#[test]
fn stdout_reader_full() {
    run_child("child_stdout_reader_full");
}

#[test]
#[ignore = "a child of stdout_reader_full"]
fn child_stdout_reader_full() {
    if !is_child("child_stdout_reader_full") {
        return;
    }
    stdout_stalled("stdout, one-page pipe full", Some(4096));
}

fn stdout_stalled(cell: &str, size: Option<i32>) {
    let (rd, saved) = stdout_to_pipe(size);
    let mut log = Log::start(LogOutput::canonical(LogDestination::Stdout));
    log.produce(3_000);
    // The pipe fills and the log thread waits on it. Full is what the writer sees: no room
    // for a write. A byte count short of the capacity is not a test of it: the kernel fills a
    // pipe page by page, so a pipe can be full with most of a page per write unused.
    wait_for("the pipe to fill", Duration::from_secs(10), || {
        (pipe_fill(rd) > 0 && !writable(1)).then_some(())
    });
    let out = log.finish();
    restore_stdout(saved);
    // The reader resumes: it gets what was written.
    let got = read_fd(rd, |_| true);
    // SAFETY: the read end is ours.
    unsafe { libc::close(rd) };
    let c = check_stream(cell, "stdout", &out, seqs_of_lines(&got).len() as u64);
    assert!(
        c.reported_lost > 0,
        "{cell}: what was not written is counted"
    );
}

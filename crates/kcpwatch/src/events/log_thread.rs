//! The log thread: the ring's only consumer. It formats records as canonical NDJSON and
//! writes them to the configured destination, and hands the same lines to JavaScript when an
//! application listens for events. Formatting and writing happen here, never on the I/O thread
//! and never on the game's event loop; a slow destination only makes the ring fill, and a full
//! ring costs the I/O thread nothing but a counter.

use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kcpwatch_proto::events::LogLoss;
use kcpwatch_proto::SecurityEvent;

use kcpwatch_proto::events::CappedText;
use kcpwatch_proto::Severity;

use super::canonical::CanonicalWriter;
use super::formats::{self, Format};
use super::ring::{EventRing, Record};
use super::rotating_file::{RotatingFile, Rotation};
use super::sinks::{HttpSink, HttpSinkConfig, NetworkSink, NetworkSinkConfig, SinkTarget};

/// How long the log thread sleeps when nobody wakes it: a bound on how late a record can be
/// written if a wake-up is missed.
const IDLE_WAIT: Duration = Duration::from_millis(200);

/// Where one output's lines go.
#[derive(Debug, Clone)]
pub enum LogDestination {
    /// Nowhere (records still reach JavaScript when it listens).
    None,
    /// The process's standard output.
    Stdout,
    /// The process's standard error.
    Stderr,
    /// A file, appended to (created if missing), rotated by size and age.
    File {
        /// The file being written.
        path: PathBuf,
        /// When to start a new one.
        rotation: Rotation,
    },
    /// A syslog receiver over UDP, TCP or TLS, with its own thread, queue and spool.
    Network(NetworkSinkConfig),
    /// An HTTP collector taking batches (Splunk HEC, Elasticsearch `_bulk`, OTLP/HTTP), with
    /// its own thread, queue and spool.
    Http(HttpSinkConfig),
}

/// A network output: either kind has its own thread and the same delivery accounting.
enum Remote {
    Syslog(NetworkSink),
    Http(HttpSink),
}

impl Remote {
    fn send(&self, record: &[u8]) -> bool {
        match self {
            Remote::Syslog(sink) => sink.send(record),
            Remote::Http(sink) => sink.send(record),
        }
    }

    fn take_unreported_loss(&self) -> u64 {
        match self {
            Remote::Syslog(sink) => sink.take_unreported_loss(),
            Remote::Http(sink) => sink.take_unreported_loss(),
        }
    }

    fn close(self, grace: Duration) -> u64 {
        match self {
            Remote::Syslog(sink) => sink.close(grace).unreported_loss,
            Remote::Http(sink) => sink.close(grace).unreported_loss,
        }
    }
}

impl LogDestination {
    fn is_none(&self) -> bool {
        matches!(self, LogDestination::None)
    }
}

/// One output of a listener: where, in which format, from which severity up.
#[derive(Debug, Clone)]
pub struct LogOutput {
    /// Where.
    pub destination: LogDestination,
    /// In which format (`Json` is the canonical record).
    pub format: Format,
    /// The least severe records it takes.
    pub level: Severity,
}

impl LogOutput {
    /// Canonical NDJSON of every produced record to `destination`.
    pub fn canonical(destination: LogDestination) -> Self {
        Self {
            destination,
            format: Format::Json,
            level: Severity::Debug,
        }
    }
}

/// Unix time now in microseconds.
pub fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Lines waiting for JavaScript, with the same loss accounting as the ring: a consumer that
/// falls behind loses the newest lines, counted, and is told by a `kcp:log_loss` line.
pub struct Outbox {
    lines: Mutex<Vec<u8>>,
    enabled: AtomicBool,
    limit: usize,
    notify: Box<dyn Fn() + Send + Sync>,
    unreported: Mutex<LogLoss>,
    lost: AtomicU64,
}

impl Outbox {
    /// An outbox holding at most `limit` bytes; `notify` runs on each empty -> non-empty edge.
    pub fn new(limit: usize, notify: Box<dyn Fn() + Send + Sync>) -> Self {
        Self {
            lines: Mutex::new(Vec::new()),
            enabled: AtomicBool::new(false),
            limit,
            notify,
            unreported: Mutex::new(LogLoss::default()),
            lost: AtomicU64::new(0),
        }
    }

    /// Starts or stops handing lines to JavaScript.
    pub fn set_enabled(&self, enabled: bool) {
        self.enabled.store(enabled, Ordering::Release);
    }

    fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Acquire)
    }

    /// Lines lost because JavaScript did not take them in time.
    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }

    /// Takes every waiting line.
    pub fn take(&self) -> Vec<u8> {
        let mut lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::take(&mut *lines)
    }

    fn offer(
        &self,
        text: &[u8],
        records: &[Record],
        writer: &mut CanonicalWriter,
        seq: &EventRing,
    ) {
        let mut lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        let was_empty = lines.is_empty();
        let mut unreported = self.unreported.lock().unwrap_or_else(|p| p.into_inner());
        if lines.len() + text.len() > self.limit {
            let now = unix_micros();
            if unreported.since_us == 0 {
                unreported.since_us = now;
            }
            for r in records {
                if matches!(r.event.lane(), kcpwatch_proto::events::Lane::Critical) {
                    unreported.lost_critical += 1;
                } else {
                    unreported.lost_bulk += 1;
                }
                unreported.lost_by_severity[usize::from(r.event.severity().code())] += 1;
            }
            self.lost.fetch_add(records.len() as u64, Ordering::Relaxed);
            return;
        }
        if unreported.lost_critical + unreported.lost_bulk > 0 {
            let loss = std::mem::take(&mut *unreported);
            let record = seq.loss_record(unix_micros(), loss);
            let mut line = String::new();
            writer.write(&record, &mut line);
            lines.extend_from_slice(line.as_bytes());
        }
        lines.extend_from_slice(text);
        drop(unreported);
        drop(lines);
        if was_empty {
            (self.notify)();
        }
    }
}

struct Destination {
    output: LogOutput,
    file: Option<RotatingFile>,
    network: Option<Remote>,
    /// This output's lines of the current batch.
    lines: String,
    write_errors: u64,
}

impl Destination {
    fn open(output: LogOutput) -> io::Result<Self> {
        let file = match &output.destination {
            LogDestination::File { path, rotation } => {
                Some(RotatingFile::open(path.clone(), *rotation)?)
            }
            _ => None,
        };
        let invalid = |e| io::Error::new(io::ErrorKind::InvalidInput, e);
        let network = match &output.destination {
            LogDestination::Network(config) => Some(Remote::Syslog(
                NetworkSink::start(config.clone()).map_err(invalid)?,
            )),
            LogDestination::Http(config) => Some(Remote::Http(
                HttpSink::start(config.clone()).map_err(invalid)?,
            )),
            _ => None,
        };
        Ok(Self {
            output,
            file,
            network,
            lines: String::new(),
            write_errors: 0,
        })
    }

    /// What a loss report calls this output.
    fn name(&self) -> String {
        match &self.output.destination {
            LogDestination::Network(config) => {
                let scheme = match config.target {
                    SinkTarget::SyslogUdp(_) => "syslog+udp",
                    SinkTarget::SyslogTcp(_) => "syslog+tcp",
                    SinkTarget::SyslogTls { .. } => "syslog+tls",
                };
                format!("{scheme}://{}", config.target.addr())
            }
            LogDestination::Http(config) => format!("http:{}", config.url),
            LogDestination::File { path, .. } => format!("file:{}", path.display()),
            LogDestination::Stdout => "stdout".into(),
            LogDestination::Stderr => "stderr".into(),
            LogDestination::None => "none".into(),
        }
    }

    /// Records this output lost since the last call (a network sink's full queue or spool).
    fn take_loss(&self) -> u64 {
        self.network
            .as_ref()
            .map_or(0, Remote::take_unreported_loss)
    }

    /// Stops a network sink: what it cannot deliver in `grace` goes to its spool.
    fn close(&mut self, grace: Duration) -> u64 {
        self.network.take().map_or(0, |sink| sink.close(grace))
    }

    fn write(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if let Some(sink) = &self.network {
            // One record per line: framing is the sink's.
            for line in bytes.split_inclusive(|b| *b == b'\n') {
                sink.send(line);
            }
            return;
        }
        let result = match (&self.output.destination, self.file.as_mut()) {
            (LogDestination::Stdout, _) => write_blocking(&mut io::stdout().lock(), bytes),
            (LogDestination::Stderr, _) => write_blocking(&mut io::stderr().lock(), bytes),
            (LogDestination::File { .. }, Some(file)) => file.write_records(bytes),
            _ => Ok(()),
        };
        if result.is_err() {
            self.write_errors += 1;
        }
    }
}

/// How long a network output may take to deliver what it holds when the listener stops (the
/// stop is synchronous for JavaScript; what is not delivered by then is spooled or counted).
const NETWORK_CLOSE_GRACE: Duration = Duration::from_millis(500);

/// Turns what outputs lost into `kcp:log_loss` records written to every output (and to
/// JavaScript); with `closing`, closes the network outputs first.
fn report_output_losses(
    outputs: &mut [Destination],
    writer: &mut CanonicalWriter,
    ring: &EventRing,
    outbox: &Outbox,
    closing: Option<Duration>,
) {
    let mut reports = Vec::new();
    for output in outputs.iter_mut() {
        let lost = output.take_loss() + closing.map_or(0, |grace| output.close(grace));
        if lost > 0 {
            let now = unix_micros();
            let loss = kcpwatch_proto::events::LogLoss {
                lost_output: lost,
                output: CappedText::format(output.name()),
                since_us: now,
                ..Default::default()
            };
            reports.push(ring.loss_record(now, loss));
        }
    }
    if reports.is_empty() {
        return;
    }
    let mut text = String::new();
    let mut ends = Vec::new();
    for record in &reports {
        writer.write(record, &mut text);
        ends.push(text.len());
    }
    write_outputs(outputs, &reports, &text, &ends);
    if outbox.enabled() {
        outbox.offer(text.as_bytes(), &reports, writer, ring);
    }
}

/// Writes one batch to every output, each in its format and from its level up. A record is
/// formatted once as canonical JSON; the other formats are functions of that record, parsed
/// once per record only when some output needs them.
fn write_outputs(outputs: &mut [Destination], records: &[Record], text: &str, ends: &[usize]) {
    let needs_fields = outputs
        .iter()
        .any(|o| o.output.format != Format::Json && !o.output.destination.is_none());
    for output in outputs.iter_mut() {
        output.lines.clear();
    }
    let mut start = 0;
    for (record, &end) in records.iter().zip(ends) {
        let line = &text[start..end];
        start = end;
        let severity = record.event.severity();
        let fields = needs_fields
            .then(|| serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(line).ok())
            .flatten();
        for output in outputs.iter_mut() {
            if severity > output.output.level || output.output.destination.is_none() {
                continue;
            }
            match (output.output.format, &fields) {
                (Format::Json, _) => output.lines.push_str(line),
                (format, Some(fields)) => formats::write(format, fields, &mut output.lines),
                // The canonical line always parses; if it ever did not, the canonical form
                // is better than losing the record.
                (_, None) => output.lines.push_str(line),
            }
        }
    }
    for output in outputs.iter_mut() {
        let lines = std::mem::take(&mut output.lines);
        output.write(lines.as_bytes());
        output.lines = lines;
        if output.lines.capacity() > 1 << 20 {
            output.lines.shrink_to(64 * 1024);
        }
    }
}

/// Writes everything, waiting when the descriptor is non-blocking and full: Node puts pipes
/// in non-blocking mode, and a reader that is slow must slow this thread, not lose lines.
fn write_blocking(out: &mut impl Write, mut bytes: &[u8]) -> io::Result<()> {
    let mut waits = 0u32;
    while !bytes.is_empty() {
        match out.write(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                bytes = &bytes[n..];
                waits = 0;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // Back off up to 10 ms; a reader that never reads stalls only this thread,
                // and the ring in front of it counts what the I/O thread could not queue.
                waits = (waits + 1).min(10);
                std::thread::sleep(Duration::from_millis(u64::from(waits)));
            }
            Err(e) => return Err(e),
        }
    }
    out.flush()
}

/// The running log thread.
pub struct LogThread {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    handle: Thread,
    paused: Arc<AtomicBool>,
}

impl LogThread {
    /// Starts the consumer of `ring`.
    pub fn start(
        ring: Arc<EventRing>,
        mut writer: CanonicalWriter,
        outputs: Vec<LogOutput>,
        outbox: Arc<Outbox>,
        name: String,
    ) -> io::Result<Self> {
        let mut outputs = outputs
            .into_iter()
            .map(Destination::open)
            .collect::<io::Result<Vec<_>>>()?;
        let stop = Arc::new(AtomicBool::new(false));
        let paused = Arc::new(AtomicBool::new(false));
        let (thread_stop, thread_paused) = (stop.clone(), paused.clone());
        let thread = std::thread::Builder::new().name(name).spawn(move || {
            let mut batch = Vec::with_capacity(256);
            let mut text = String::with_capacity(64 * 1024);
            let mut ends = Vec::with_capacity(256);
            loop {
                let stopping = thread_stop.load(Ordering::Acquire);
                if thread_paused.load(Ordering::Acquire) && !stopping {
                    std::thread::park_timeout(IDLE_WAIT);
                    continue;
                }
                ring.drain_into(&mut batch);
                if batch.is_empty() && stopping {
                    if let Some(record) = ring.final_loss(unix_micros()) {
                        batch.push(record);
                    } else {
                        // Network outputs get a last chance to deliver; what they cannot is
                        // spooled, and what they could not even spool is reported to the rest.
                        report_output_losses(
                            &mut outputs,
                            &mut writer,
                            &ring,
                            &outbox,
                            Some(NETWORK_CLOSE_GRACE),
                        );
                        return;
                    }
                }
                if batch.is_empty() {
                    report_output_losses(&mut outputs, &mut writer, &ring, &outbox, None);
                    std::thread::park_timeout(IDLE_WAIT);
                    continue;
                }
                text.clear();
                ends.clear();
                for record in &batch {
                    writer.write(record, &mut text);
                    ends.push(text.len());
                }
                write_outputs(&mut outputs, &batch, &text, &ends);
                report_output_losses(&mut outputs, &mut writer, &ring, &outbox, None);
                if outbox.enabled() {
                    outbox.offer(text.as_bytes(), &batch, &mut writer, &ring);
                }
                batch.clear();
                if text.capacity() > 1 << 20 {
                    text.shrink_to(64 * 1024);
                }
            }
        })?;
        let handle = thread.thread().clone();
        Ok(Self {
            stop,
            thread: Some(thread),
            handle,
            paused,
        })
    }

    /// The thread, for waking it when records are waiting.
    pub fn thread(&self) -> &Thread {
        &self.handle
    }

    /// Stops consuming until resumed (tests and drills of a stalled consumer).
    pub fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::Release);
        self.handle.unpark();
    }

    /// Writes what is left, reports any final loss and joins the thread. Call after the
    /// producer has stopped.
    pub fn finish(&mut self) {
        self.stop.store(true, Ordering::Release);
        self.handle.unpark();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for LogThread {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Formats one record outside the log thread (a failure before the runtime exists, such as a
/// bind error), writes it to every output and returns the canonical line.
pub fn write_one(
    writer: &mut CanonicalWriter,
    outputs: &[LogOutput],
    event: SecurityEvent,
) -> String {
    let record = Record {
        seq: 0,
        time_us: unix_micros(),
        event,
    };
    let mut text = String::new();
    writer.write(&record, &mut text);
    let mut destinations: Vec<Destination> = outputs
        .iter()
        .filter_map(|o| Destination::open(o.clone()).ok())
        .collect();
    write_outputs(&mut destinations, &[record], &text, &[text.len()]);
    text
}

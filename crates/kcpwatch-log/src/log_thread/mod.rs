//! The log thread: the ring's only consumer. It formats records as canonical NDJSON and
//! writes them to the configured destination, and hands the same lines to JavaScript when an
//! application listens for events. Formatting and writing happen here, never on the I/O thread
//! and never on the game's event loop; a slow destination only makes the ring fill, and a full
//! ring costs the I/O thread nothing but a counter.
//!
//! An output that fails (a write error, a network output that cannot deliver) loses records
//! only with a count: `kcp:log_loss` records naming it go to every output, made at most once a
//! second and never more of them than records written, so that reports about an output that
//! is down do not feed on themselves. Stopping is bounded: see [`LogThread::finish`].

mod outbox;
mod stream;

pub use outbox::Outbox;
use stream::StreamOut;

use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

use kcpwatch_proto::SecurityEvent;

use kcpwatch_proto::events::CappedText;
use kcpwatch_proto::Severity;

use super::canonical::CanonicalWriter;
use super::clock::unix_micros;
use super::error::{LogStartError, OutputError};
use super::formats::{self, Format};
use super::ring::{EventRing, Record};
use super::rotating_file::{RotatingFile, Rotation};
use super::sinks::{
    wait_for_thread, HttpSink, HttpSinkConfig, SyslogSink, SyslogSinkConfig, SyslogTarget,
    STOP_SLACK,
};

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
    Syslog(SyslogSinkConfig),
    /// An HTTP collector taking batches (Splunk HEC, Elasticsearch `_bulk`, OTLP/HTTP), with
    /// its own thread, queue and spool.
    Http(HttpSinkConfig),
}

/// A network output: either kind has its own thread and the same delivery accounting.
enum Remote {
    Syslog(SyslogSink),
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

    fn begin_close(&self, deadline: Instant) {
        match self {
            Remote::Syslog(sink) => sink.begin_close(deadline),
            Remote::Http(sink) => sink.begin_close(deadline),
        }
    }

    fn wait_until(&self, until: Instant) -> bool {
        match self {
            Remote::Syslog(sink) => sink.wait_until(until),
            Remote::Http(sink) => sink.wait_until(until),
        }
    }

    fn interrupt(&self) {
        if let Remote::Syslog(sink) = self {
            sink.interrupt();
        }
    }

    /// Joins the thread, or abandons it counting what it held; returns what is unreported.
    fn end(self) -> u64 {
        match self {
            Remote::Syslog(sink) => sink.end().unreported_loss,
            Remote::Http(sink) => sink.end().unreported_loss,
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

struct Destination {
    output: LogOutput,
    file: Option<RotatingFile>,
    network: Option<Remote>,
    /// This output's lines of the current batch.
    lines: String,
    /// Where each record of `lines` ends.
    ends: Vec<usize>,
    /// Records this output lost that no `kcp:log_loss` has counted yet.
    unreported: u64,
    /// A write to the stream stopped inside a record: the next write ends that line first.
    torn: bool,
    /// Whether a write failure of this output was said on stderr (once per output).
    said: bool,
    /// For stdout and stderr: where the records are in the byte stream.
    stream: StreamOut,
}

/// What the log thread shares with its owner for stopping (the counter of what the outputs
/// lost lives in the [`Outbox`], which the runtime keeps after the thread is gone).
#[derive(Default)]
struct Control {
    /// When stopping must be over: network outputs deliver until then.
    deadline: Mutex<Option<Instant>>,
    /// Past the deadline: a stalled stream write gives up (its records counted as lost).
    abandon: AtomicBool,
}

/// What loss reports and errors call an output.
fn output_name(destination: &LogDestination) -> String {
    match destination {
        LogDestination::Syslog(config) => {
            let scheme = match config.target {
                SyslogTarget::Udp(_) => "syslog+udp",
                SyslogTarget::Tcp(_) => "syslog+tcp",
                SyslogTarget::Tls { .. } => "syslog+tls",
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

impl Destination {
    /// Opens the output. A failure names it (and so its path) for the error the application
    /// gets from `listen()` or `connect()`.
    fn open(output: LogOutput) -> Result<Self, LogStartError> {
        let failed = |source: OutputError| LogStartError::Output {
            output: output_name(&output.destination),
            source,
        };
        let file = match &output.destination {
            LogDestination::File { path, rotation } => Some(
                RotatingFile::open(path.clone(), *rotation)
                    .map_err(|e| failed(OutputError::File(e)))?,
            ),
            _ => None,
        };
        let network = match &output.destination {
            LogDestination::Syslog(config) => Some(Remote::Syslog(
                SyslogSink::start(config.clone()).map_err(|e| failed(e.into()))?,
            )),
            LogDestination::Http(config) => Some(Remote::Http(
                HttpSink::start(config.clone()).map_err(|e| failed(e.into()))?,
            )),
            _ => None,
        };
        Ok(Self {
            output,
            file,
            network,
            lines: String::new(),
            ends: Vec::new(),
            unreported: 0,
            torn: false,
            said: false,
            stream: StreamOut::default(),
        }
        .with_stream())
    }

    fn with_stream(mut self) -> Self {
        match self.output.destination {
            LogDestination::Stdout => self.stream = StreamOut::new(1),
            LogDestination::Stderr => self.stream = StreamOut::new(2),
            _ => {}
        }
        self
    }

    /// What a loss report calls this output.
    fn name(&self) -> String {
        output_name(&self.output.destination)
    }

    fn lose(&mut self, n: u64, lost: &AtomicU64) {
        self.unreported += n;
        lost.fetch_add(n, Ordering::Relaxed);
    }

    /// Moves what a network sink lost (its full queue or spool, ...) into `unreported`.
    fn collect_loss(&mut self, lost: &AtomicU64) {
        let n = self
            .network
            .as_ref()
            .map_or(0, Remote::take_unreported_loss);
        self.lose(n, lost);
    }

    /// Writes this output's lines of the batch. A failed write loses the records not written
    /// whole: they are counted (reported by the next `kcp:log_loss`), the first failure is said
    /// on stderr, and no torn line stays in a file.
    fn write(&mut self, control: &Control, lost: &AtomicU64) {
        if self.lines.is_empty() {
            return;
        }
        if let Some(sink) = &self.network {
            // One record per line: framing is the sink's; what it drops, it counts.
            for line in self.lines.as_bytes().split_inclusive(|b| *b == b'\n') {
                sink.send(line);
            }
            return;
        }
        let bytes = self.lines.as_bytes();
        // Records that reached a pipe whose reader then left without reading them.
        let mut stranded = 0;
        let result = match (&self.output.destination, self.file.as_mut()) {
            (LogDestination::Stdout, _) => {
                // Held so that nothing else writes in the middle of a record; what the
                // process printed before goes first.
                let mut lock = io::stdout().lock();
                let _ = lock.flush();
                self.stream
                    .write(bytes, &self.ends, &mut self.torn, control, &mut stranded)
            }
            (LogDestination::Stderr, _) => {
                // Held so that nothing else writes in the middle of a record; what the
                // process printed before goes first.
                let mut lock = io::stderr().lock();
                let _ = lock.flush();
                self.stream
                    .write(bytes, &self.ends, &mut self.torn, control, &mut stranded)
            }
            (LogDestination::File { .. }, Some(file)) => {
                file.write_records(bytes).map_err(|f| (f.written, f.error))
            }
            // A network output already closed (the final reports): not sent, not lost.
            _ => Ok(()),
        };
        self.lose(stranded, lost);
        let Err((written, error)) = result else {
            return;
        };
        let whole = self.ends.iter().take_while(|&&end| end <= written).count();
        self.lose((self.ends.len() - whole) as u64, lost);
        if !self.said {
            self.said = true;
            let name = self.name();
            // Said once; the counts go on in the `kcp:log_loss` records and the stats.
            let _ = writeln!(
                io::stderr(),
                "kcpwatch: log output {name} failed: {error}; records it cannot write are \
                 counted as lost and reported as kcp:log_loss to the other outputs"
            );
        }
    }
}

/// How long closing gives the network outputs to deliver what they hold (then they spool, or
/// count, the rest). `LogThread::finish` returns within this plus [`STOP_SLACK`] and
/// [`FINISH_SLACK`]: a thread still running then is abandoned, what it held counted as lost.
const NETWORK_CLOSE_GRACE: Duration = Duration::from_millis(400);

/// What the log thread gets after the network outputs' deadline to write the final reports
/// and end, before `finish` stops waiting for it.
const FINISH_SLACK: Duration = Duration::from_millis(100);

/// The least time between two passes of output loss reports.
const REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// When output losses are turned into `kcp:log_loss` records.
#[derive(Default)]
struct ReportGate {
    /// When the last reports were made.
    last: Option<Instant>,
    /// Records from the ring written since then.
    written_since: u64,
}

/// One batch of records and their canonical lines: `text` holds the lines, `ends` where each
/// of them ends.
struct Batch<'a> {
    records: &'a [Record],
    text: &'a str,
    ends: &'a [usize],
}

/// The log thread's state: the ring it drains, the canonical writer, the outputs, and the
/// JavaScript outbox.
struct Consumer {
    ring: Arc<EventRing>,
    writer: CanonicalWriter,
    outputs: Vec<Destination>,
    outbox: Arc<Outbox>,
    control: Arc<Control>,
    gate: ReportGate,
    /// The canonical lines of the records being written, reused between batches.
    text: String,
    /// Where each line of `text` ends.
    ends: Vec<usize>,
}

impl Consumer {
    /// Drains the ring until told to stop, then reports the final losses: see
    /// [`LogThread::finish`].
    fn run(mut self, stop: &AtomicBool, paused: &AtomicBool) {
        let mut batch = Vec::with_capacity(256);
        loop {
            let stopping = stop.load(Ordering::Acquire);
            if paused.load(Ordering::Acquire) && !stopping {
                std::thread::park_timeout(IDLE_WAIT);
                continue;
            }
            self.ring.drain_into(&mut batch);
            if batch.is_empty() && stopping {
                if let Some(record) = self.ring.final_loss(unix_micros()) {
                    batch.push(record);
                } else {
                    // Network outputs get a last chance to deliver, until the deadline
                    // `finish` set; what they cannot is spooled, and what they could not
                    // even spool is reported to the rest.
                    let deadline = self
                        .control
                        .deadline
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .unwrap_or_else(Instant::now);
                    self.report_output_losses(Some(deadline));
                    return;
                }
            }
            if batch.is_empty() {
                self.report_output_losses(None);
                std::thread::park_timeout(IDLE_WAIT);
                continue;
            }
            // JavaScript gets the batch before the reports about it, as the outputs do.
            self.emit(&batch);
            self.gate.written_since += batch.len() as u64;
            self.report_output_losses(None);
            batch.clear();
        }
    }

    /// Writes `records` to every output and hands their canonical lines to JavaScript (when it
    /// listens).
    fn emit(&mut self, records: &[Record]) {
        self.text.clear();
        self.ends.clear();
        for record in records {
            self.writer.write(record, &mut self.text);
            self.ends.push(self.text.len());
        }
        let batch = Batch {
            records,
            text: &self.text,
            ends: &self.ends,
        };
        write_outputs(
            &mut self.outputs,
            &batch,
            &self.control,
            &self.outbox.output_lost,
        );
        if self.outbox.enabled() {
            self.outbox
                .offer(self.text.as_bytes(), records, &mut self.writer, &self.ring);
        }
        if self.text.capacity() > 1 << 20 {
            self.text.shrink_to(64 * 1024);
        }
    }

    /// Turns what outputs lost into `kcp:log_loss` records written to every output (and to
    /// JavaScript); with `closing`, first stops the network outputs by that deadline.
    ///
    /// A report is itself sent to every output, and can be lost there like any record: its
    /// loss is counted into the next report about that output, never into a report of its
    /// own. Reports are made at most once per [`REPORT_INTERVAL`], and only when at least as
    /// many records came from the ring since the last ones as there are reports to make: so
    /// reports never outnumber the records, and an output that stays down does not make
    /// reports about reports forever. When closing, everything left is reported.
    fn report_output_losses(&mut self, closing: Option<Instant>) {
        let lost = &self.outbox.output_lost;
        if let Some(deadline) = closing {
            close_network_outputs(&mut self.outputs, deadline, lost);
        }
        for output in self.outputs.iter_mut() {
            output.collect_loss(lost);
        }
        let losing = self.outputs.iter().filter(|o| o.unreported > 0).count() as u64;
        if losing == 0 {
            return;
        }
        let gate = &mut self.gate;
        if closing.is_none() {
            let recent = gate.last.is_some_and(|t| t.elapsed() < REPORT_INTERVAL);
            if recent || gate.written_since < losing {
                return;
            }
        }
        gate.last = Some(Instant::now());
        gate.written_since = 0;
        let mut reports = Vec::new();
        for output in self.outputs.iter_mut().filter(|o| o.unreported > 0) {
            let now = unix_micros();
            let loss = kcpwatch_proto::events::LogLoss {
                lost_output: std::mem::take(&mut output.unreported),
                output: CappedText::format(output.name()),
                since_us: now,
                ..Default::default()
            };
            reports.push(self.ring.loss_record(now, loss));
        }
        self.emit(&reports);
    }
}

/// Stops every network output at once, by `deadline`: a write or handshake still blocked then
/// is cut, and a sink thread still running [`STOP_SLACK`] later is abandoned with what it held
/// counted as lost. Their last losses go into `unreported`.
fn close_network_outputs(outputs: &mut [Destination], deadline: Instant, lost: &AtomicU64) {
    let remotes = || outputs.iter().filter_map(|o| o.network.as_ref());
    for remote in remotes() {
        remote.begin_close(deadline);
    }
    let mut all = true;
    for remote in remotes() {
        all &= remote.wait_until(deadline);
    }
    if !all {
        for remote in remotes() {
            remote.interrupt();
        }
        for remote in remotes() {
            remote.wait_until(deadline + STOP_SLACK);
        }
    }
    for output in outputs.iter_mut() {
        let n = output.network.take().map_or(0, Remote::end);
        output.lose(n, lost);
    }
}

/// Writes one batch to every output, each in its format and from its level up. A record is
/// formatted once as canonical JSON; the other formats are functions of that record, parsed
/// once per record only when some output needs them.
fn write_outputs(
    outputs: &mut [Destination],
    batch: &Batch<'_>,
    control: &Control,
    lost: &AtomicU64,
) {
    let Batch {
        records,
        text,
        ends,
    } = *batch;
    let needs_fields = outputs
        .iter()
        .any(|o| o.output.format != Format::Json && !o.output.destination.is_none());
    for output in outputs.iter_mut() {
        output.lines.clear();
        output.ends.clear();
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
            output.ends.push(output.lines.len());
        }
    }
    for output in outputs.iter_mut() {
        output.write(control, lost);
        if output.lines.capacity() > 1 << 20 {
            output.lines.shrink_to(64 * 1024);
        }
    }
}

/// The running log thread.
pub struct LogThread {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    handle: Thread,
    paused: Arc<AtomicBool>,
    control: Arc<Control>,
}

impl LogThread {
    /// Starts the consumer of `ring`.
    pub fn start(
        ring: Arc<EventRing>,
        writer: CanonicalWriter,
        outputs: Vec<LogOutput>,
        outbox: Arc<Outbox>,
        name: String,
    ) -> Result<Self, LogStartError> {
        let outputs = outputs
            .into_iter()
            .map(Destination::open)
            .collect::<Result<Vec<_>, _>>()?;
        let stop = Arc::new(AtomicBool::new(false));
        let paused = Arc::new(AtomicBool::new(false));
        let control = Arc::new(Control::default());
        let consumer = Consumer {
            ring,
            writer,
            outputs,
            outbox,
            control: Arc::clone(&control),
            gate: ReportGate::default(),
            text: String::with_capacity(64 * 1024),
            ends: Vec::with_capacity(256),
        };
        let (thread_stop, thread_paused) = (stop.clone(), paused.clone());
        let spawned = std::thread::Builder::new()
            .name(name)
            .spawn(move || consumer.run(&thread_stop, &thread_paused));
        let thread = spawned.map_err(LogStartError::Thread)?;
        let handle = thread.thread().clone();
        Ok(Self {
            stop,
            thread: Some(thread),
            handle,
            paused,
            control,
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

    /// Writes what is left, stops the network outputs, reports any final loss and joins the
    /// thread. Call after the producer has stopped.
    ///
    /// Never waits on a receiver: it returns within [`NETWORK_CLOSE_GRACE`] +
    /// [`STOP_SLACK`] + [`FINISH_SLACK`] (0.6 s). Network outputs deliver until the grace
    /// period ends, then spool or count the rest; a write or handshake still blocked is cut. A
    /// stream output whose reader does not read gives up then too, counting what it could not
    /// write. Should the thread still run after that, it is left to end on its own.
    pub fn finish(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        let deadline = Instant::now() + NETWORK_CLOSE_GRACE;
        *self
            .control
            .deadline
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(deadline);
        self.stop.store(true, Ordering::Release);
        self.handle.unpark();
        if !wait_for_thread(Some(&thread), deadline) {
            self.control.abandon.store(true, Ordering::Release);
            wait_for_thread(Some(&thread), deadline + STOP_SLACK + FINISH_SLACK);
        }
        if thread.is_finished() {
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
    let control = Control::default();
    let lost = AtomicU64::new(0);
    let batch = Batch {
        records: &[record],
        text: &text,
        ends: &[text.len()],
    };
    write_outputs(&mut destinations, &batch, &control, &lost);
    // A network output gets the usual grace to deliver this one record.
    close_network_outputs(
        &mut destinations,
        Instant::now() + NETWORK_CLOSE_GRACE,
        &lost,
    );
    text
}

//! HTTP batch outputs of the security records: Splunk HTTP Event Collector, Elasticsearch
//! `_bulk` and OTLP/HTTP (JSON), each an [`HttpSink`] with the shape of
//! [`NetworkSink`](super::NetworkSink): its own thread, a bounded queue, an optional bounded
//! on-disk spool, backoff with jitter, [`SinkStats`] and
//! [`take_unreported_loss`](HttpSink::take_unreported_loss).
//!
//! # Batches
//!
//! Records (already formatted by the caller for the kind of endpoint) are grouped into
//! batches of at most [`HttpSinkConfig::batch_records`]; a batch leaves when it is full or its
//! oldest record has waited [`HttpSinkConfig::batch_delay`]. One request is in flight at a
//! time, so batches leave in order. The body of a request, per [`HttpKind`]:
//! - **Splunk HEC:** the event objects back to back (one per line), with
//!   `Authorization: Splunk <token>`. Success is a 2xx whose JSON `code` is 0 (or a 2xx
//!   without a JSON body, as HEC-compatible relays answer).
//! - **Elasticsearch `_bulk`:** `{"create":{"_index":"<index>"}}` and the document, each on
//!   its own line (`application/x-ndjson`). A 2xx answer with `"errors":true` is read item by
//!   item: items with status 429 or 5xx are sent again, other failed items are lost (counted).
//!   A document containing a line feed would break the framing, so it is lost (counted) before
//!   the request.
//! - **OTLP/HTTP JSON:** one `ExportLogsServiceRequest` whose `resourceLogs` are those of
//!   every record of the batch, in order. A `partialSuccess.rejectedLogRecords` in the answer
//!   is counted as lost.
//!
//! With [`HttpSinkConfig::gzip`] the body is sent with `Content-Encoding: gzip`.
//!
//! # Delivery
//!
//! A record is *delivered* when the endpoint answered its request with success. The outcome
//! of a request is one of:
//! - success: the batch is delivered;
//! - retryable (connection or timeout failure, 429, 5xx for HEC and Elasticsearch, 429, 502,
//!   503, 504 for OTLP): the whole batch is sent again, first, after a backoff delay
//!   (exponential with jitter, and never sooner than a `Retry-After` the endpoint gave, up to
//!   [`MAX_RETRY_AFTER`]); records sent again are counted in [`SinkStats::retried`];
//! - permanent (any other answer: 400 bad data, 401/403 bad token, 404, 413, ...): the batch
//!   is lost, counted in [`SinkStats::dropped_invalid`] and in [`HttpSink::rejected`], and the
//!   answer is kept in [`SinkStats::last_error`]. Retrying would only repeat it.
//!
//! After [`HttpSinkConfig::max_attempts_before_spool`] failed attempts in a row the endpoint
//! is taken as down: while it is, new records go from the queue to the spool (if any), and
//! when it answers again the failed batch is sent first, then the spool in order, then the
//! queue. The failed batch itself stays in memory (at most one batch); on close it is put in
//! front of the spool, so a later sink on the same directory replays everything in order. A
//! queue three quarters full also goes to the spool, whatever the state of the endpoint.
//! Without a spool an outage longer than the queue loses the newest records (counted).
//!
//! What HTTP cannot promise: a request whose answer was lost (timeout, connection reset
//! after the endpoint processed it) is sent again, so the endpoint may see its records twice.
//!
//! # TLS
//!
//! `https://` URLs need [`HttpSinkConfig::ca_file`]: the server certificate must chain to the
//! CAs in that PEM file, and nothing else is trusted (not the system store, not a web PKI root
//! list), as for syslog over TLS. The server name checked is the URL's host. With
//! [`HttpSinkConfig::client_cert`] the sink presents a client certificate to collectors that
//! require one (mutual TLS).
//!
//! Proxies from the environment (`HTTP_PROXY`, ...) are not used, and redirects are not
//! followed: the sink talks to the configured URL only.

#[path = "http_worker.rs"]
mod worker;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, TrySendError};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use super::config::{SpoolConfig, DEFAULT_QUEUE_RECORDS, MAX_RECORD_BYTES};
use super::error::SinkError;
use super::framing;
use super::spool::Spool;
use super::stats::{Loss, Shared, SinkReport, SinkStats};
use super::STOP_SLACK;
use worker::{Control, Finished, Worker};

/// Default [`HttpSinkConfig::batch_records`].
pub const DEFAULT_BATCH_RECORDS: usize = 500;

/// Default [`HttpSinkConfig::batch_delay`].
pub const DEFAULT_BATCH_DELAY: Duration = Duration::from_secs(1);

/// The longest `Retry-After` honoured: an endpoint asking for more is tried again after this
/// long anyway, since a sink that sleeps for hours looks dead and its spool fills up.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// The kind of endpoint, which decides the body and how the answer is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpKind {
    /// Splunk HTTP Event Collector (`/services/collector/event`); each record is one HEC
    /// event object.
    SplunkHec {
        /// The HEC token, sent as `Authorization: Splunk <token>`.
        token: String,
    },
    /// Elasticsearch (or OpenSearch) `_bulk`; each record is one document.
    ElasticBulk {
        /// The index (or data stream) every document is created in.
        index: String,
    },
    /// OTLP/HTTP with JSON encoding (`/v1/logs`); each record is a whole
    /// `ExportLogsServiceRequest` for that one record.
    OtlpHttp,
}

/// Configuration of one [`HttpSink`].
#[derive(Debug, Clone)]
pub struct HttpSinkConfig {
    /// The kind of endpoint.
    pub kind: HttpKind,
    /// The URL requests are POSTed to: `http://host:port/path` or `https://host:port/path`.
    pub url: String,
    /// PEM file of the CA certificates an `https` server must chain to; required for `https`
    /// (nothing else is trusted), refused for `http`.
    pub ca_file: Option<PathBuf>,
    /// PEM files of a client certificate chain and its private key, presented to an `https`
    /// collector that authenticates its senders (mutual TLS); refused for `http`.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// Compress request bodies (`Content-Encoding: gzip`).
    pub gzip: bool,
    /// Records per request at most (default [`DEFAULT_BATCH_RECORDS`]).
    pub batch_records: usize,
    /// A batch that is not full leaves when its oldest record has waited this long (default
    /// [`DEFAULT_BATCH_DELAY`]).
    pub batch_delay: Duration,
    /// Records the in-memory queue between [`HttpSink::send`] and the thread holds (default
    /// [`DEFAULT_QUEUE_RECORDS`]).
    pub queue_records: usize,
    /// On-disk spool for outages; `None` keeps records only in memory.
    pub spool: Option<SpoolConfig>,
    /// Bound on one request: connect, TLS handshake, sending the body, reading the answer.
    pub timeout: Duration,
    /// Retry delays: (initial, max). Doubles per failed attempt, with jitter.
    pub backoff: (Duration, Duration),
    /// Failed attempts in a row after which the endpoint is taken as down and new records go
    /// to the spool. Without a spool it only decides nothing: the queue holds what it can.
    pub max_attempts_before_spool: u32,
}

impl HttpSinkConfig {
    /// A configuration with the defaults: batches of 500 records or 1 s, no gzip, queue of
    /// 10,000 records, no spool, 10 s per request, backoff from 250 ms to 30 s, spooling after
    /// 3 failed attempts.
    pub fn new(kind: HttpKind, url: impl Into<String>) -> Self {
        Self {
            kind,
            url: url.into(),
            ca_file: None,
            client_cert: None,
            gzip: false,
            batch_records: DEFAULT_BATCH_RECORDS,
            batch_delay: DEFAULT_BATCH_DELAY,
            queue_records: DEFAULT_QUEUE_RECORDS,
            spool: None,
            timeout: Duration::from_secs(10),
            backoff: (Duration::from_millis(250), Duration::from_secs(30)),
            max_attempts_before_spool: 3,
        }
    }

    fn validate(&self) -> Result<bool, HttpSinkError> {
        let https = if self.url.starts_with("https://") {
            true
        } else if self.url.starts_with("http://") {
            false
        } else {
            return Err(HttpSinkError::Scheme);
        };
        let uri: ureq::http::Uri = self.url.parse().map_err(|_| HttpSinkError::Url)?;
        if uri.host().map_or(true, str::is_empty) {
            return Err(HttpSinkError::Url);
        }
        match (https, self.ca_file.is_some()) {
            (true, false) => return Err(HttpSinkError::HttpsWithoutCa),
            (false, true) => return Err(HttpSinkError::CaWithoutHttps),
            _ => {}
        }
        if !https && self.client_cert.is_some() {
            return Err(HttpSinkError::CertWithoutHttps);
        }
        match &self.kind {
            HttpKind::SplunkHec { token } if token.is_empty() || !header_safe(token) => {
                return Err(HttpSinkError::Token)
            }
            HttpKind::ElasticBulk { index } if index.is_empty() => {
                return Err(HttpSinkError::Index)
            }
            _ => {}
        }
        if self.batch_records == 0 || self.queue_records == 0 {
            return Err(HttpSinkError::Zero);
        }
        if self.batch_delay.is_zero() || self.timeout.is_zero() {
            return Err(HttpSinkError::ZeroDuration);
        }
        if self.backoff.0.is_zero() || self.backoff.1 < self.backoff.0 {
            return Err(HttpSinkError::Backoff);
        }
        if self.max_attempts_before_spool == 0 {
            return Err(HttpSinkError::Attempts);
        }
        if self.spool.as_ref().is_some_and(|s| s.max_bytes == 0) {
            return Err(HttpSinkError::SpoolBytes);
        }
        Ok(https)
    }
}

/// A header value must be visible ASCII (or spaces inside): anything else would be refused
/// by the HTTP library on every request, a reconnect loop instead of a start error.
fn header_safe(s: &str) -> bool {
    s.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
}

/// Why an [`HttpSinkConfig`] is refused. Converted into [`SinkError::InvalidConfig`] by
/// [`HttpSink::start`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HttpSinkError {
    /// The URL is neither `http://` nor `https://`.
    #[error("the URL must start with http:// or https://")]
    Scheme,
    /// The URL does not parse, or has no host.
    #[error("the URL is not a valid absolute http(s) URL with a host")]
    Url,
    /// An `https` URL without a CA file.
    #[error("an https URL needs ca_file (no other trust store is used)")]
    HttpsWithoutCa,
    /// A CA file with a plain `http` URL, which would silently not be used.
    #[error("ca_file is only used with an https URL")]
    CaWithoutHttps,
    /// A client certificate with a plain `http` URL, which would silently not be used.
    #[error("a client certificate is only used with an https URL")]
    CertWithoutHttps,
    /// An empty HEC token, or one that cannot be a header value.
    #[error("the Splunk HEC token must be non-empty visible ASCII")]
    Token,
    /// An empty Elasticsearch index.
    #[error("the Elasticsearch index must not be empty")]
    Index,
    /// `batch_records` or `queue_records` is 0.
    #[error("batch_records and queue_records must be at least 1")]
    Zero,
    /// `batch_delay` or `timeout` is zero.
    #[error("batch_delay and timeout must be greater than zero")]
    ZeroDuration,
    /// The backoff is not (initial > 0, max >= initial).
    #[error("backoff must be (initial > 0, max >= initial)")]
    Backoff,
    /// `max_attempts_before_spool` is 0.
    #[error("max_attempts_before_spool must be at least 1")]
    Attempts,
    /// The spool's `max_bytes` is 0.
    #[error("spool max_bytes must be at least 1")]
    SpoolBytes,
}

impl HttpSinkError {
    /// The message, static so that it fits [`SinkError::InvalidConfig`].
    pub fn text(self) -> &'static str {
        match self {
            Self::Scheme => "the URL must start with http:// or https://",
            Self::Url => "the URL is not a valid absolute http(s) URL with a host",
            Self::HttpsWithoutCa => "an https URL needs ca_file (no other trust store is used)",
            Self::CaWithoutHttps => "ca_file is only used with an https URL",
            Self::CertWithoutHttps => "a client certificate is only used with an https URL",
            Self::Token => "the Splunk HEC token must be non-empty visible ASCII",
            Self::Index => "the Elasticsearch index must not be empty",
            Self::Zero => "batch_records and queue_records must be at least 1",
            Self::ZeroDuration => "batch_delay and timeout must be greater than zero",
            Self::Backoff => "backoff must be (initial > 0, max >= initial)",
            Self::Attempts => "max_attempts_before_spool must be at least 1",
            Self::SpoolBytes => "spool max_bytes must be at least 1",
        }
    }
}

impl From<HttpSinkError> for SinkError {
    fn from(e: HttpSinkError) -> Self {
        SinkError::InvalidConfig(e.text())
    }
}

/// One HTTP batch output with its own thread, bounded queue and on-disk spool.
pub struct HttpSink {
    tx: Sender<Box<[u8]>>,
    ctl: Sender<Control>,
    shared: Arc<Shared>,
    rejected: Arc<std::sync::atomic::AtomicU64>,
    thread: Option<JoinHandle<Finished>>,
}

impl HttpSink {
    /// Checks the configuration, reads the CA file (if any), opens the spool (if any) and
    /// spawns the sink thread. Never waits for the endpoint: one that is down only shows in
    /// [`SinkStats::last_error`].
    pub fn start(config: HttpSinkConfig) -> Result<Self, SinkError> {
        let https = config.validate()?;
        let tls = match (&config.ca_file, https) {
            (Some(ca), true) => Some(tls_config(ca, config.client_cert.as_ref())?),
            _ => None,
        };
        let shared = Arc::new(Shared::default());
        let spool = match &config.spool {
            Some(spool_config) => {
                let (spool, opened) = Spool::open(spool_config)?;
                shared.spooled.store(opened.records, Ordering::Relaxed);
                shared.lose(Loss::Io, opened.torn);
                Some(spool)
            }
            None => None,
        };
        let rejected = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (tx, rx) = crossbeam_channel::bounded(config.queue_records);
        let (ctl_tx, ctl_rx) = crossbeam_channel::unbounded();
        let worker = Worker::new(
            config,
            tls,
            rx,
            ctl_rx,
            Arc::clone(&shared),
            Arc::clone(&rejected),
            spool,
        );
        let thread = std::thread::Builder::new()
            .name("kcpwatch-http-sink".into())
            .spawn(move || worker.run())
            .map_err(SinkError::Spawn)?;
        Ok(Self {
            tx,
            ctl: ctl_tx,
            shared,
            rejected,
            thread: Some(thread),
        })
    }

    /// Queues one formatted record (one trailing line end is removed). Never blocks. Returns
    /// false when the record was dropped (counted): the queue is full, or the record is empty
    /// or longer than [`MAX_RECORD_BYTES`].
    pub fn send(&self, record: &[u8]) -> bool {
        let record = framing::strip_line_end(record);
        if record.is_empty() || record.len() > MAX_RECORD_BYTES {
            self.shared.lose(Loss::Invalid, 1);
            return false;
        }
        match self.tx.try_send(Box::from(record)) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                self.shared.lose(Loss::QueueFull, 1);
                false
            }
            Err(TrySendError::Disconnected(_)) => {
                // The thread is gone (it panicked): nothing will deliver this.
                self.shared.lose(Loss::Io, 1);
                false
            }
        }
    }

    /// Stops: delivers what is queued within `grace`, spools the rest (if a spool is
    /// configured; otherwise it is dropped and counted), and joins the thread. Returns within
    /// `grace` plus [`STOP_SLACK`]: a request still waiting for its answer then is abandoned
    /// with the thread, and what the thread held is counted as lost (the endpoint may still
    /// get that request).
    pub fn close(self, grace: Duration) -> SinkReport {
        let deadline = Instant::now() + grace;
        self.begin_close(deadline);
        self.wait_until(deadline + STOP_SLACK);
        self.end()
    }

    /// Asks the thread to stop: it delivers until `deadline`, then spools (or counts) the
    /// rest. See [`NetworkSink::begin_close`](super::NetworkSink::begin_close).
    pub fn begin_close(&self, deadline: Instant) {
        let _ = self.ctl.send(Control::Stop(deadline));
    }

    /// Waits until the thread has ended or `until`; true when it has ended.
    pub fn wait_until(&self, until: Instant) -> bool {
        super::wait_for_thread(self.thread.as_ref(), until)
    }

    /// After [`HttpSink::begin_close`]: joins the thread if it has ended; otherwise abandons
    /// it and counts what it held as lost, never waiting.
    pub fn end(mut self) -> SinkReport {
        let finished = self.join_or_abandon();
        SinkReport {
            stats: self.shared.snapshot(0),
            spooled_on_close: finished.map_or(0, |f| f.spooled_on_close),
            unreported_loss: self.take_unreported_loss(),
        }
    }

    fn join_or_abandon(&mut self) -> Option<Finished> {
        let thread = self.thread.take()?;
        if !thread.is_finished() {
            self.shared.abandon(self.tx.len());
            return None;
        }
        match thread.join() {
            Ok(finished) => Some(finished),
            Err(_) => {
                self.shared.set_error("the sink thread panicked".to_owned());
                None
            }
        }
    }

    /// The counters now.
    pub fn stats(&self) -> SinkStats {
        self.shared.snapshot(self.tx.len())
    }

    /// Records the endpoint refused for good (a permanent error status, a failed bulk item, an
    /// OTLP partial success) or that could not be put in a request; also counted in
    /// [`SinkStats::dropped_invalid`].
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    /// Losses not yet reported: the log thread turns them into a `kcp:log_loss` record (per
    /// sink). Each loss is returned once.
    pub fn take_unreported_loss(&self) -> u64 {
        self.shared.unreported.swap(0, Ordering::Relaxed)
    }
}

impl Drop for HttpSink {
    /// A sink dropped without [`HttpSink::close`] closes with no grace: what is not delivered
    /// yet is spooled (or counted as lost), within [`STOP_SLACK`].
    fn drop(&mut self) {
        if self.thread.is_none() {
            return;
        }
        let now = Instant::now();
        self.begin_close(now);
        self.wait_until(now + STOP_SLACK);
        self.join_or_abandon();
    }
}

impl std::fmt::Debug for HttpSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSink")
            .field("stats", &self.stats())
            .finish()
    }
}

/// Trust for `https`: the CA file only; and the client certificate, if any. Read once, at
/// start, so that a wrong file (or a key that does not match its certificate) is an error of
/// `start` rather than a retry loop.
fn tls_config(
    ca_file: &Path,
    client_cert: Option<&(PathBuf, PathBuf)>,
) -> Result<ureq::tls::TlsConfig, SinkError> {
    let io = |source| SinkError::Io {
        what: "CA file",
        path: ca_file.to_path_buf(),
        source,
    };
    let pem = |e: rustls::pki_types::pem::Error| match e {
        rustls::pki_types::pem::Error::Io(e) => io(e),
        other => io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            other.to_string(),
        )),
    };
    let certs = CertificateDer::pem_file_iter(ca_file)
        .map_err(pem)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem)?;
    if certs.is_empty() {
        return Err(SinkError::EmptyPem {
            what: "CA file",
            path: ca_file.to_path_buf(),
        });
    }
    let roots: Vec<ureq::tls::Certificate<'static>> = certs
        .iter()
        .map(|c| ureq::tls::Certificate::from_der(c.as_ref()).to_owned())
        .collect();
    let client = match client_cert {
        Some((cert, key)) => {
            // Read and checked the way syslog over TLS does it; ureq takes the key as PEM
            // (its key kind type is not public).
            let (chain, _) = super::tls::client_identity(cert, key)?;
            let pem = std::fs::read(key).map_err(|source| SinkError::Io {
                what: "client key",
                path: key.clone(),
                source,
            })?;
            let key = ureq::tls::PrivateKey::from_pem(&pem)
                .map_err(|_| SinkError::EmptyPem {
                    what: "client key",
                    path: key.clone(),
                })?
                .to_owned();
            let chain: Vec<ureq::tls::Certificate<'static>> = chain
                .iter()
                .map(|c| ureq::tls::Certificate::from_der(c.as_ref()).to_owned())
                .collect();
            Some(ureq::tls::ClientCert::new_with_certs(&chain, key))
        }
        None => None,
    };
    Ok(ureq::tls::TlsConfig::builder()
        .provider(ureq::tls::TlsProvider::Rustls)
        .root_certs(ureq::tls::RootCerts::new_with_certs(&roots))
        .client_cert(client)
        // ring, as for syslog over TLS: no cmake/NASM in the build.
        .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .build())
}

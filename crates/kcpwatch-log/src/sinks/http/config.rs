//! What an [`HttpSink`](super::HttpSink) posts to, and how it batches and retries.

use std::path::PathBuf;
use std::time::Duration;

use super::super::config::{SpoolConfig, DEFAULT_QUEUE_RECORDS};
use super::super::error::SinkError;

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

/// Configuration of one [`HttpSink`](super::HttpSink).
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
    /// Records the in-memory queue between [`send`](super::super::Sink::send) and the thread holds (default
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

    pub(super) fn validate(&self) -> Result<bool, HttpSinkError> {
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
/// [`HttpSink::start`](super::HttpSink).
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

//! HTTP batch outputs of the security records: Splunk HTTP Event Collector, Elasticsearch
//! `_bulk` and OTLP/HTTP (JSON), each an [`HttpSink`]: the sink driver, as for syslog, with its
//! own thread, a bounded queue, an optional bounded on-disk spool, backoff with jitter,
//! [`SinkStats`](super::SinkStats) and
//! [`take_unreported_loss`](super::Sink::take_unreported_loss), over an [`HttpTransport`].
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
//! A record is *delivered* when the endpoint answered its request with success. The outcome of
//! a request is one of:
//! - success: the batch is delivered;
//! - retryable (connection or timeout failure, 429, 5xx for HEC and Elasticsearch, 429, 502,
//!   503, 504 for OTLP): the whole batch is sent again, first, after a backoff delay
//!   (exponential with jitter, and never sooner than a `Retry-After` the endpoint gave, up to
//!   [`MAX_RETRY_AFTER`]); records sent again are counted in
//!   [`SinkStats::retried`](super::SinkStats::retried);
//! - permanent (any other answer: 400 bad data, 401/403 bad token, 404, 413, ...): the batch is
//!   lost, counted in [`SinkStats::dropped_invalid`](super::SinkStats::dropped_invalid) and in
//!   [`HttpSink::rejected`], and the answer is kept in
//!   [`SinkStats::last_error`](super::SinkStats::last_error). Retrying would only repeat it.
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

mod answer;
mod config;
mod tls;
mod transport;

use std::sync::atomic::Ordering;
use std::sync::Arc;

pub use config::{
    HttpKind, HttpSinkConfig, HttpSinkError, DEFAULT_BATCH_DELAY, DEFAULT_BATCH_RECORDS,
    MAX_RETRY_AFTER,
};
pub use transport::HttpTransport;

use super::driver::{Limits, Setup};
use super::error::SinkError;
use super::handle::{spawn, Sink};

/// One HTTP batch output with its own thread, bounded queue and on-disk spool.
pub type HttpSink = Sink<HttpTransport>;

impl Sink<HttpTransport> {
    /// Checks the configuration, reads the CA file (if any), opens the spool (if any) and
    /// spawns the sink thread. Never waits for the endpoint: one that is down only shows in
    /// [`SinkStats::last_error`](super::SinkStats::last_error).
    pub fn start(config: HttpSinkConfig) -> Result<Self, SinkError> {
        let https = config.validate()?;
        let tls = match (&config.ca_file, https) {
            (Some(ca), true) => Some(tls::tls_config(ca, config.client_cert.as_ref())?),
            _ => None,
        };
        let limits = Limits {
            queue_records: config.queue_records,
            backoff: config.backoff,
        };
        let setup = Setup::open(config.spool.as_ref(), limits)?;
        let transport = HttpTransport::new(config, tls, Arc::clone(&setup.shared));
        spawn(transport, setup)
    }

    /// Records the endpoint refused for good (a permanent error status, a failed bulk item, an
    /// OTLP partial success) or that could not be put in a request; also counted in
    /// [`SinkStats::dropped_invalid`](super::SinkStats::dropped_invalid).
    pub fn rejected(&self) -> u64 {
        self.shared.rejected.load(Ordering::Relaxed)
    }
}

impl std::fmt::Debug for Sink<HttpTransport> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSink")
            .field("stats", &self.stats())
            .finish()
    }
}

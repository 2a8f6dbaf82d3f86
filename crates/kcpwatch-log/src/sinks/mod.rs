//! Network outputs of the security records: syslog over UDP, TCP or TLS ([`SyslogSink`]) and
//! HTTP batch collectors ([`HttpSink`]: Splunk HEC, Elasticsearch `_bulk`, OTLP/HTTP).
//!
//! Every sink is the same [`Sink`]: a bounded queue into a thread of its own, the sink driver,
//! which owns the on-disk spool, retries with backoff, the fate of every record (delivered,
//! or lost and counted) and the bounded stop. Only the transport differs: how to connect,
//! send a batch, learn each record's fate, and close ([`SyslogTransport`],
//! [`HttpTransport`]).
//!
//! The log thread formats each record and calls [`Sink::send`], which only copies it into the
//! queue: it never blocks on the network, the disk or a lock held across I/O. The sink's
//! thread does everything else. Nothing is lost silently: every record dropped is counted in
//! [`SinkStats`] and returned once by [`Sink::take_unreported_loss`], for the log thread's
//! `kcp:log_loss` record. What each transport can promise is in [`syslog`] and [`http`].

mod backoff;
mod config;
mod driver;
mod error;
mod framing;
mod handle;
pub mod http;
mod spool;
mod stats;
pub mod syslog;
mod tls;
mod transport;

pub use config::{SpoolConfig, DEFAULT_QUEUE_RECORDS, MAX_RECORD_BYTES};
pub use error::SinkError;
pub use handle::{wait_for_thread, Sink, STOP_SLACK};
pub use http::{HttpKind, HttpSink, HttpSinkConfig, HttpSinkError, HttpTransport};
pub use stats::{SinkReport, SinkStats};
pub use syslog::{
    SyslogSink, SyslogSinkConfig, SyslogTarget, SyslogTransport, DEFAULT_MAX_UDP_DATAGRAM,
    MIN_UDP_DATAGRAM,
};

//! What a [`SyslogSink`](super::SyslogSink) sends to, and how hard it tries.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::super::config::{SpoolConfig, DEFAULT_QUEUE_RECORDS};
use super::super::error::SinkError;

/// Where a syslog sink delivers records, and over which transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyslogTarget {
    /// Syslog over UDP (RFC 5426): one record per datagram, no delivery guarantee, no spool.
    Udp(SocketAddr),
    /// Syslog over TCP with octet-counting framing (RFC 6587 §3.4.1).
    Tcp(SocketAddr),
    /// Syslog over TLS (RFC 5425), octet-counted like TCP.
    Tls {
        /// The receiver.
        addr: SocketAddr,
        /// The name the server certificate must carry (DNS name or IP address literal); also
        /// sent as SNI when it is a DNS name.
        server_name: String,
        /// PEM file of the CA certificates the server certificate must chain to. Nothing else
        /// is trusted: not the system store, not a web PKI root list.
        ca_file: PathBuf,
        /// PEM files of a client certificate chain and its private key, for receivers that
        /// authenticate their senders (rsyslog `x509/certvalid`, `x509/name`).
        client_cert: Option<(PathBuf, PathBuf)>,
    },
}

impl SyslogTarget {
    /// The receiver's address.
    pub fn addr(&self) -> SocketAddr {
        match self {
            SyslogTarget::Udp(a) | SyslogTarget::Tcp(a) => *a,
            SyslogTarget::Tls { addr, .. } => *addr,
        }
    }

    /// Whether the transport is a stream (TCP or TLS): only streams can know what was
    /// delivered, so only they spool and replay.
    pub fn is_stream(&self) -> bool {
        !matches!(self, SyslogTarget::Udp(_))
    }
}

/// Configuration of one [`SyslogSink`](super::SyslogSink).
#[derive(Debug, Clone)]
pub struct SyslogSinkConfig {
    /// Receiver and transport.
    pub target: SyslogTarget,
    /// Records the in-memory queue between [`send`](super::SyslogSink::send) and the sink
    /// thread holds (default [`DEFAULT_QUEUE_RECORDS`]). It must absorb what arrives while the
    /// thread waits on a slow receiver, up to `write_timeout`.
    pub queue_records: usize,
    /// On-disk spool for stream targets; `None` keeps records only in memory, so that an outage
    /// longer than the queue loses the newest records (counted).
    pub spool: Option<SpoolConfig>,
    /// Bound on one TCP connect, and on the TLS handshake that follows it.
    pub connect_timeout: Duration,
    /// Bound on one blocked socket write: a receiver that stops reading for longer is treated
    /// as gone, and the connection is replaced.
    pub write_timeout: Duration,
    /// Reconnect delays: (initial, max). Doubles per failed attempt, with jitter.
    pub backoff: (Duration, Duration),
    /// Largest UDP datagram sent (default [`DEFAULT_MAX_UDP_DATAGRAM`]); longer records are
    /// cut (RFC 5424 between whole SD-PARAMs and marked `truncated_from`, anything else at a
    /// UTF-8 boundary) and counted as `truncated`.
    pub max_udp_datagram: usize,
}

/// Default [`SyslogSinkConfig::max_udp_datagram`]: 2048 octets, the size RFC 5426 §3.2 says
/// receivers SHOULD accept (they MUST accept 480 over IPv4 and 1180 over IPv6; rsyslog accepts
/// up to its `maxMessageSize`, 8 KiB by default). Above about 1472 octets an IPv4 datagram is
/// fragmented on Ethernet, which rarely matters on a LAN and loopback. Truncating rather than
/// sending the whole record matters because a receiver with a smaller limit cuts or drops the
/// datagram without anyone knowing; truncation here is at least counted.
pub const DEFAULT_MAX_UDP_DATAGRAM: usize = 2048;

/// Smallest [`SyslogSinkConfig::max_udp_datagram`] accepted: RFC 5426's IPv4 minimum.
pub const MIN_UDP_DATAGRAM: usize = 480;

impl SyslogSinkConfig {
    /// A configuration with the defaults: queue of 10,000 records, no spool, 5 s connect, 10 s
    /// write, backoff from 250 ms to 30 s, 2048-octet datagrams.
    pub fn new(target: SyslogTarget) -> Self {
        Self {
            target,
            queue_records: DEFAULT_QUEUE_RECORDS,
            spool: None,
            connect_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(10),
            backoff: (Duration::from_millis(250), Duration::from_secs(30)),
            max_udp_datagram: DEFAULT_MAX_UDP_DATAGRAM,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), SinkError> {
        if self.queue_records == 0 {
            return Err(SinkError::InvalidConfig("queue_records must be at least 1"));
        }
        if self.spool.is_some() && !self.target.is_stream() {
            return Err(SinkError::InvalidConfig(
                "a UDP sink cannot know what was delivered, so it has no spool",
            ));
        }
        if let Some(spool) = &self.spool {
            if spool.max_bytes == 0 {
                return Err(SinkError::InvalidConfig(
                    "spool max_bytes must be at least 1",
                ));
            }
        }
        if self.connect_timeout.is_zero() || self.write_timeout.is_zero() {
            // std refuses zero socket timeouts, and a zero bound would mean "never" anyway.
            return Err(SinkError::InvalidConfig(
                "timeouts must be greater than zero",
            ));
        }
        if self.backoff.0.is_zero() || self.backoff.1 < self.backoff.0 {
            return Err(SinkError::InvalidConfig(
                "backoff must be (initial > 0, max >= initial)",
            ));
        }
        if !self.target.is_stream() && self.max_udp_datagram < MIN_UDP_DATAGRAM {
            return Err(SinkError::InvalidConfig(
                "max_udp_datagram must be at least 480 (RFC 5426)",
            ));
        }
        Ok(())
    }
}

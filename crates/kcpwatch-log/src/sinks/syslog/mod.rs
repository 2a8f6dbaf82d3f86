//! Syslog outputs of the security records: syslog over UDP (RFC 5426), TCP (RFC 6587 octet
//! counting) and TLS (RFC 5425), each a [`SyslogSink`]: the sink driver with its own thread,
//! bounded queue and, for TCP and TLS, a bounded on-disk spool, over a [`SyslogTransport`].
//!
//! # Delivery
//!
//! A record is *delivered* when the receiver's TCP has acknowledged every byte of its frame
//! (Linux, through `SIOCOUTQ`; elsewhere, when the local socket accepted it). Records are only
//! released after that, so a connection that fails — reset, write timeout, TLS alert, receiver
//! closing — loses nothing it had not confirmed: the unacknowledged records are written again,
//! first, on the next connection ([`SinkStats::retried`](super::SinkStats::retried)). While the
//! receiver is down, records go to the spool (append-only segment files of length-prefixed
//! records); when it returns, the spool is replayed in order before anything newer. Closing
//! delivers what it can within the grace period and spools the rest, in order, for the next
//! sink on the same directory.
//!
//! Nothing is lost silently: every record dropped (queue full without spool room, spool full,
//! close without a spool, I/O errors) is counted in [`SinkStats`](super::SinkStats) and
//! returned once by [`take_unreported_loss`](super::Sink::take_unreported_loss), for the log
//! thread's `kcp:log_loss` record.
//!
//! What plain syslog cannot promise (it has no application acknowledgements — RELP has):
//! - **Loss:** bytes the receiver's TCP acknowledged but the receiver program never read, when
//!   it dies or closes without reading its socket buffer. A receiver that closes gracefully
//!   (shuts down its side and reads until ours ends) loses nothing: the sink sees its end of
//!   stream before writing more, ends its own side, and waits for the acknowledgements.
//! - **Duplicates:** a record the receiver got whose acknowledgement had not been seen when the
//!   connection failed, or when the grace period of a close ran out, is written again.
//! - **Crash:** records in memory (queue, in flight) are lost with the process; spooled ones
//!   survive it, and up to a second of replay progress may be replayed again.
//!
//! UDP has no delivery to know: records are sent once, one per datagram, cut to
//! [`SyslogSinkConfig::max_udp_datagram`] (counted in
//! [`SinkStats::truncated`](super::SinkStats::truncated)): an RFC 5424 record between whole
//! SD-PARAMs, its element closed and marked `truncated_from="<size>"`, so that it still parses;
//! anything else at a UTF-8 boundary. Counted as lost: sends that fail, and datagrams the
//! receiver's host refused (each ICMP error in the socket's error queue, `IP_RECVERR` on Linux:
//! the receiver is down). A receiver that is up but does not read, or whose buffer is full,
//! loses datagrams where the sender cannot see it. There is no UDP spool.
//!
//! Records are the formatted bytes without transport framing. A trailing line end (the formats
//! end each record with one for files) is removed, since in syslog the frame delimits.

mod config;
mod link;
#[cfg(any(
    target_os = "linux",
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd"
))]
mod sockopt;
mod transport;
mod udp;

use std::sync::Arc;

pub use config::{SyslogSinkConfig, SyslogTarget, DEFAULT_MAX_UDP_DATAGRAM, MIN_UDP_DATAGRAM};
pub use transport::SyslogTransport;

use super::driver::{Limits, Setup};
use super::error::SinkError;
use super::handle::{spawn, Sink};
use super::tls;

/// One syslog output (UDP, TCP or TLS) with its own thread, bounded queue and on-disk spool.
pub type SyslogSink = Sink<SyslogTransport>;

impl Sink<SyslogTransport> {
    /// Opens the spool (if any) and the TLS configuration (if any), and spawns the sink
    /// thread. Never waits for the receiver: connecting is the thread's business, and a
    /// receiver that is down only shows in
    /// [`SinkStats::last_error`](super::SinkStats::last_error).
    pub fn start(config: SyslogSinkConfig) -> Result<Self, SinkError> {
        config.validate()?;
        let limits = Limits {
            queue_records: config.queue_records,
            backoff: config.backoff,
        };
        let setup = Setup::open(config.spool.as_ref(), limits)?;
        let tls = match &config.target {
            SyslogTarget::Tls {
                server_name,
                ca_file,
                client_cert,
                ..
            } => Some(tls::setup(server_name, ca_file, client_cert.as_ref())?),
            _ => None,
        };
        let transport = SyslogTransport::new(config, tls, Arc::clone(&setup.shared));
        spawn(transport, setup)
    }
}

impl std::fmt::Debug for Sink<SyslogTransport> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyslogSink")
            .field("stats", &self.stats())
            .finish()
    }
}

//! Why a sink could not start. Failures after the start (a receiver down, a handshake
//! refused) are not errors of the API: the sink retries them, and they show in
//! [`SinkStats::last_error`](super::SinkStats::last_error).

use std::io;
use std::path::PathBuf;

/// A sink that cannot start.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The configuration contradicts itself or is out of range.
    #[error("invalid network sink configuration: {0}")]
    InvalidConfig(&'static str),
    /// A file or directory the sink needs (spool, CA, certificate, key) could not be used.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What the path is for.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A PEM file holds nothing of the kind expected (no certificate, no private key).
    #[error("{what} {}: no usable PEM item found", path.display())]
    EmptyPem {
        /// What the file should hold.
        what: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// The TLS server name is neither a DNS name nor an IP address.
    #[error("invalid TLS server name {0:?}")]
    InvalidServerName(String),
    /// rustls refused the configuration (a CA certificate it cannot parse, a key that does not
    /// match the client certificate, ...).
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// Another sink (in this or another process) uses the spool directory.
    #[error("spool directory {} is in use by another sink", .0.display())]
    SpoolLocked(PathBuf),
    /// The sink thread could not be spawned.
    #[error("cannot spawn the sink thread: {0}")]
    Spawn(#[source] io::Error),
}

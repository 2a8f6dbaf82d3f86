//! Why the log pipeline could not start: its own errors, which the runtime wraps, so that the
//! log thread does not depend on the runtime's error type.

use std::io;

use thiserror::Error;

use super::sinks::SinkError;

/// Why a log output could not be opened.
#[derive(Debug, Error)]
pub enum OutputError {
    /// The log file could not be opened (or created) for appending.
    #[error("cannot open it for appending: {0}")]
    File(#[source] io::Error),
    /// A network output could not start: its CA, certificate, key or spool directory cannot be
    /// used, or its configuration is refused.
    #[error(transparent)]
    Sink(#[from] SinkError),
}

/// Why the log thread could not start.
#[derive(Debug, Error)]
pub enum LogStartError {
    /// One of its outputs could not be opened.
    #[error("log output {output}: {source}")]
    Output {
        /// The output, as loss reports name it (`file:/var/log/kcpwatch.ndjson`,
        /// `syslog+tls://host:port`, ...).
        output: String,
        /// Why it could not be opened.
        source: OutputError,
    },
    /// The thread could not be spawned.
    #[error("cannot start the log thread: {0}")]
    Thread(#[source] io::Error),
}

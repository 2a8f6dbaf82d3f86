//! Runtime failures, each with a stable [`ErrorCode`] that the binding turns into a `KCP_ERR_*` class.

use std::io;

use kcpwatch_proto::ErrorCode;
use thiserror::Error;

use crate::events::sinks::SinkError;
use crate::events::LogStartError;
pub use crate::events::OutputError;

/// A runtime operation failed.
#[derive(Debug, Error)]
pub enum RuntimeError {
    /// The socket could not be created or bound (the OS error code is kept, e.g. EADDRINUSE).
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// The OS error.
        source: io::Error,
        /// The `kcp:error` record already written for it (canonical JSON), when logging is on,
        /// so the binding can hand it to the application's event listeners too.
        record: Option<String>,
    },
    /// The host name did not resolve to an address.
    #[error("cannot resolve {0}")]
    Resolve(String),
    /// The configuration cannot work.
    #[error(transparent)]
    Config(#[from] kcpwatch_proto::config::ConfigError),
    /// Opening a connection failed.
    #[error(transparent)]
    Connect(#[from] kcpwatch_proto::endpoint::ConnectError),
    /// The runtime has been shut down.
    #[error("the endpoint is closed")]
    Closed,
    /// Starting the I/O thread or the poller failed.
    #[error("runtime setup failed: {0}")]
    Setup(io::Error),
    /// A log output could not be opened when the runtime started: a matter of the host (a
    /// path that is gone, not writable or not a file), not of kcpwatch.
    #[error("log output {output}: {source}")]
    LogOutput {
        /// The output, as loss reports name it (`file:/var/log/kcpwatch.ndjson`,
        /// `syslog+tls://host:port`, ...).
        output: String,
        /// Why it could not be opened.
        source: OutputError,
    },
}

impl RuntimeError {
    /// The stable code the JavaScript error classes carry.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Bind { source, .. } => match source.kind() {
                io::ErrorKind::AddrInUse => ErrorCode::AddrInUse,
                io::ErrorKind::AddrNotAvailable => ErrorCode::AddrNotAvailable,
                io::ErrorKind::PermissionDenied => ErrorCode::PermissionDenied,
                _ => ErrorCode::Bind,
            },
            Self::Resolve(_) => ErrorCode::Resolve,
            Self::Config(_) => ErrorCode::InvalidOption,
            Self::Connect(_) => ErrorCode::Connect,
            Self::Closed => ErrorCode::Closed,
            Self::Setup(_) => ErrorCode::Internal,
            // Only a thread that cannot be spawned is ours; the rest is what the options name
            // (the same class as the option checks at createServer give for these paths).
            Self::LogOutput {
                source: OutputError::Sink(SinkError::Spawn(_)),
                ..
            } => ErrorCode::Internal,
            Self::LogOutput { .. } => ErrorCode::InvalidOption,
        }
    }

    /// The `kcp:error` record (canonical JSON, one line) already written about this failure,
    /// for the application's event listeners: a bind failure's, when logging is on.
    pub fn security_record(&self) -> Option<&str> {
        match self {
            Self::Bind { record, .. } => record.as_deref().map(str::trim_end),
            _ => None,
        }
    }
}

impl From<LogStartError> for RuntimeError {
    fn from(error: LogStartError) -> Self {
        match error {
            LogStartError::Output { output, source } => Self::LogOutput { output, source },
            LogStartError::Thread(source) => Self::Setup(source),
        }
    }
}

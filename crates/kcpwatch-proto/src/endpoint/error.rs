//! Why the endpoint refused a command.

use std::net::SocketAddr;

use crate::config::ConfigError;
use crate::session::SessionSendError;

/// Why `send` refused a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// No such connection (closed, or a stale handle).
    #[error("unknown or closed connection")]
    UnknownConnection,
    /// The session refused it.
    #[error(transparent)]
    Session(#[from] SessionSendError),
}

/// Why `connect` failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// The session configuration cannot work.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A session with that address and conv already exists.
    #[error("a session for {0} with conv {1} already exists")]
    Duplicate(SocketAddr, u32),
    /// The connection limit is reached.
    #[error("connection limit of {0} reached")]
    Capacity(usize),
    /// The endpoint is in the other mode (`connect` is raw mode's, `connect_secure` secure
    /// mode's).
    #[error("this endpoint is in {0} mode")]
    WrongMode(&'static str),
    /// The application token is longer than a HELLO can carry.
    #[error("token of {0} bytes exceeds the limit of 1024")]
    TokenTooLong(usize),
    /// Secure mode needs the server's static public key (`server_key`) to open a session.
    #[error("secure mode needs the server's public key (serverKey) to connect")]
    NoServerKey,
}

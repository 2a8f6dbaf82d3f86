//! What one endpoint is started with: its own module, so that the runtime that starts the I/O
//! thread and the I/O thread that reads the settings do not import each other.

use std::net::SocketAddr;

use kcpwatch_proto::EndpointConfig;

use crate::events::LogConfig;
use crate::socket::SocketOptions;

/// Everything needed to start one endpoint.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Address to bind; port 0 picks a free one.
    pub bind: SocketAddr,
    /// Socket options.
    pub socket: SocketOptions,
    /// Endpoint limits and session knobs.
    pub endpoint: EndpointConfig,
    /// Largest datagram received whole; longer ones are dropped and counted.
    pub max_datagram: usize,
    /// Bytes of undelivered records after which the I/O thread stops pulling messages out of
    /// the engines until JavaScript drains.
    pub delivery_limit: usize,
    /// Thread name, for debuggers and `top -H`.
    pub thread_name: String,
    /// Security event logging; `None` produces no events at all.
    pub log: Option<LogConfig>,
}

impl RuntimeConfig {
    /// A configuration with defaults for `bind`.
    pub fn new(bind: SocketAddr, endpoint: EndpointConfig) -> Self {
        let max_datagram = endpoint.session.mtu.max(1500) + 64;
        Self {
            bind,
            socket: SocketOptions::default(),
            endpoint,
            max_datagram,
            delivery_limit: 64 << 20,
            thread_name: "kcpwatch-io".into(),
            log: None,
        }
    }
}

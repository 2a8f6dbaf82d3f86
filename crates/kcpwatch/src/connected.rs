//! What a client endpoint learns when its connection is set up.

use std::net::SocketAddr;

/// What `connect` returns.
#[derive(Debug, Clone)]
pub struct ConnectedInfo {
    /// The connection handle.
    pub handle: u32,
    /// The connection id.
    pub uid: String,
    /// Our address.
    pub local: SocketAddr,
    /// The peer.
    pub remote: SocketAddr,
    /// The conv.
    pub conv: u32,
}

//! What the binding may ask about one live connection.

use std::net::SocketAddr;

use crate::lifecycle::ConnectionState;
use crate::uid::Uid;

/// Identity of a live connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// Connection id.
    pub uid: Uid,
    /// KCP conversation id.
    pub conv: u32,
    /// The peer.
    pub remote: SocketAddr,
    /// Our address.
    pub local: SocketAddr,
    /// Lifecycle state.
    pub state: ConnectionState,
    /// The largest message this connection sends (message mode): the configured
    /// `max_message_size`, lowered by a secure handshake to the peer's `max_message_size` and
    /// to what the peer's receive window reassembles at the agreed MTU (a client's is final
    /// once established).
    pub max_message_size: usize,
    /// The largest unreliable datagram payload this connection sends (secure mode: the agreed
    /// MTU minus 31 once the handshake completed, a client's own MTU minus 31 before); 0 in raw
    /// mode.
    pub max_datagram_size: usize,
}

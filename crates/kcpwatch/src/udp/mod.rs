//! Moving datagrams between the socket and the endpoint in batches: recvmmsg/sendmmsg on
//! Linux (one system call for up to [`BATCH`] datagrams), a plain loop elsewhere.

use std::io;
use std::net::SocketAddr;

use kcpwatch_proto::Transmits;

#[cfg(target_os = "linux")]
mod linux;
#[cfg(not(target_os = "linux"))]
mod portable;

#[cfg(target_os = "linux")]
use linux as platform;
#[cfg(not(target_os = "linux"))]
use portable as platform;

/// Datagrams per system call.
pub(crate) const BATCH: usize = 32;

/// One received datagram as the batch reports it.
pub(crate) struct Received<'a> {
    pub(crate) from: SocketAddr,
    pub(crate) data: &'a [u8],
    /// Longer than the receive buffer; `data` holds only its start.
    pub(crate) truncated: bool,
}

/// A socket with its batch buffers.
pub(crate) struct UdpIo {
    socket: mio::net::UdpSocket,
    is_v6: bool,
    state: platform::State,
}

impl UdpIo {
    pub(crate) fn new(socket: mio::net::UdpSocket, max_datagram: usize) -> io::Result<Self> {
        let is_v6 = socket.local_addr()?.is_ipv6();
        Ok(Self {
            state: platform::State::new(max_datagram),
            socket,
            is_v6,
        })
    }

    /// Receives up to one batch, calling `each` per datagram. `Ok(0)` means the socket had
    /// nothing (would block).
    pub(crate) fn recv_batch(&mut self, each: impl FnMut(Received<'_>)) -> io::Result<usize> {
        platform::recv_batch(&self.socket, &mut self.state, each)
    }

    /// Sends waiting datagrams from the front; returns how many went out. Stops early when the
    /// socket buffer is full (the rest is retried on the next writable event).
    pub(crate) fn send_batch(&mut self, transmits: &Transmits) -> io::Result<usize> {
        platform::send_batch(&self.socket, &mut self.state, self.is_v6, transmits)
    }
}

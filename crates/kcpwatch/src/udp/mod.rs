//! Moving datagrams between the socket and the endpoint in batches: recvmmsg/sendmmsg on
//! Linux (one system call for up to [`BATCH`] datagrams), a plain loop elsewhere.
//!
//! On Linux a socket bound to a wildcard address (`0.0.0.0` or `::`) also learns each
//! datagram's real destination address (IP_PKTINFO / IPV6_PKTINFO) and sends each reply from
//! the address its peer talked to, and every socket reports ICMP errors for earlier sends with
//! the peer they concern (IP_RECVERR / IPV6_RECVERR, read with [`UdpIo::drain_errors`]).

use std::io;
use std::net::SocketAddr;

use kcpwatch_proto::Transmits;

#[cfg(target_os = "linux")]
mod linux;
#[cfg(not(target_os = "linux"))]
mod portable;
#[cfg(all(test, target_os = "linux"))]
mod tests;

#[cfg(target_os = "linux")]
use linux as platform;
#[cfg(not(target_os = "linux"))]
use portable as platform;

/// Datagrams per system call.
pub(crate) const BATCH: usize = 32;

/// One received datagram as the batch reports it.
pub(crate) struct Received<'a> {
    pub(crate) from: SocketAddr,
    /// Our address the datagram was sent to: its real destination IP on a socket bound to a
    /// wildcard address (where the platform tells it), the socket's own address otherwise.
    /// IPv4 on a dual-stack socket shows as plain IPv4, like `from`.
    pub(crate) local: SocketAddr,
    pub(crate) data: &'a [u8],
    /// Longer than the receive buffer; `data` holds only its start.
    pub(crate) truncated: bool,
    /// The datagram's length on the wire: `data.len()` unless truncated, then its real length
    /// where the platform reports it (Linux), else at least the buffer's size.
    pub(crate) len: usize,
    /// When the kernel received it, in wall-clock nanoseconds; 0 unless kernel stamps were
    /// asked for ([`UdpIo::enable_kernel_stamps`]) and the platform gives them.
    pub(crate) kernel_ns: u64,
}

/// The OS reported that an earlier datagram could not be delivered (an ICMP error such as
/// "port unreachable", or a local one such as "message too long").
///
/// Nothing authenticates an ICMP message: anyone on the path, or anyone who can guess our port
/// and the peer's address, can forge one. Treat it as a hint about `remote`, not a fact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SendFailure {
    /// Where the failed datagram was going (IPv4 as plain IPv4 on dual-stack sockets).
    pub(crate) remote: SocketAddr,
    /// The OS error number (`libc::ECONNREFUSED`, ...).
    pub(crate) errno: i32,
    /// `errno` by name: `"ECONNREFUSED"`, `"EHOSTUNREACH"`, `"ENETUNREACH"`, `"EMSGSIZE"`,
    /// `"EHOSTDOWN"`, `"ENONET"`, `"ENOPROTOOPT"`, `"EOPNOTSUPP"`, `"EPROTO"`, `"EACCES"`, or
    /// `"other"`.
    pub(crate) kind: &'static str,
}

/// A socket with its batch buffers.
pub(crate) struct UdpIo {
    socket: mio::net::UdpSocket,
    state: platform::State,
}

impl UdpIo {
    /// Takes over a bound socket and turns on the options the batch paths rely on (see the
    /// module documentation).
    pub(crate) fn new(socket: mio::net::UdpSocket, max_datagram: usize) -> io::Result<Self> {
        let state = platform::State::new(&socket, max_datagram)?;
        Ok(Self { socket, state })
    }

    /// The socket, to change its registration with the I/O thread's poll.
    pub(crate) fn socket_mut(&mut self) -> &mut mio::net::UdpSocket {
        &mut self.socket
    }

    /// Whether a datagram or an error report waits to be read, without reading it.
    pub(crate) fn has_pending(&mut self) -> bool {
        match self.socket.peek(&mut [0u8; 1]) {
            Ok(_) => true,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
            Err(_) => {
                // The peek took the socket's pending error, which is what tells the next
                // receive that a report waits in the error queue.
                self.note_pending_errors();
                true
            }
        }
    }

    /// Asks the kernel to stamp each datagram's arrival (the bench's stage trace). Where the
    /// platform has no such stamps, datagrams keep `kernel_ns` 0.
    pub(crate) fn enable_kernel_stamps(&mut self) -> io::Result<()> {
        #[cfg(target_os = "linux")]
        return platform::enable_kernel_stamps(&self.socket, &mut self.state);
        #[cfg(not(target_os = "linux"))]
        Ok(())
    }

    /// Receives up to one batch, calling `each` per datagram. Returns how many datagrams and
    /// socket error notifications it consumed; `Ok(0)` only when the socket would block, so a
    /// caller can wait for the next readable edge exactly then. An error notification means
    /// [`UdpIo::drain_errors`] has something to report.
    pub(crate) fn recv_batch(&mut self, each: impl FnMut(Received<'_>)) -> io::Result<usize> {
        platform::recv_batch(&self.socket, &mut self.state, each)
    }

    /// Sends waiting datagrams from the front, each from its `source` address when the socket
    /// is bound to a wildcard address; returns how many went out. Stops early when the socket
    /// buffer is full (the rest is retried on the next writable event).
    pub(crate) fn send_batch(&mut self, transmits: &Transmits) -> io::Result<usize> {
        platform::send_batch(&self.socket, &mut self.state, transmits)
    }

    /// A send returned the socket's pending error: the report behind it is in the error
    /// queue, for the next [`UdpIo::drain_errors`].
    pub(crate) fn note_pending_errors(&mut self) {
        platform::note_pending_errors(&mut self.state);
    }

    /// Reports the failures of earlier sends the OS has queued. Cheap when there are none:
    /// the queue is read only after [`UdpIo::recv_batch`] saw the socket's error flag. Queued
    /// reports take space from the receive buffer, so call this after every receive batch.
    pub(crate) fn drain_errors(&mut self, each: impl FnMut(SendFailure)) {
        platform::drain_errors(&self.socket, &mut self.state, each)
    }
}

//! One system call per datagram, for platforms without recvmmsg/sendmmsg. Without packet info
//! a datagram's destination is taken to be the socket's own address and replies leave from
//! whatever address the OS picks, so a server here should bind the address its peers use
//! rather than a wildcard one. ICMP errors are not read (Windows reports them as a receive
//! error, which is skipped).

use std::io;
use std::net::SocketAddr;

use kcpwatch_proto::Transmits;

use super::{Received, SendFailure, BATCH};
use crate::socket::{for_socket, normalize};

pub(crate) struct State {
    buffer: Vec<u8>,
    is_v6: bool,
    /// The socket's own address, normalized: every datagram's `local`.
    local: SocketAddr,
}

impl State {
    pub(crate) fn new(socket: &mio::net::UdpSocket, max_datagram: usize) -> io::Result<Self> {
        let local = socket.local_addr()?;
        Ok(Self {
            buffer: vec![0; max_datagram + 1],
            is_v6: local.is_ipv6(),
            local: normalize(local),
        })
    }
}

pub(crate) fn recv_batch(
    socket: &mio::net::UdpSocket,
    state: &mut State,
    mut each: impl FnMut(Received<'_>),
) -> io::Result<usize> {
    let limit = state.buffer.len() - 1;
    let mut count = 0;
    while count < BATCH {
        match socket.recv_from(&mut state.buffer) {
            Ok((len, from)) => {
                count += 1;
                each(Received {
                    from: normalize(from),
                    local: state.local,
                    data: &state.buffer[..len.min(limit)],
                    truncated: len > limit,
                    len,
                    kernel_ns: 0,
                });
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            // Windows reports an earlier send's ICMP unreachable on the next receive.
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => continue,
            Err(e) => {
                if count > 0 {
                    break;
                }
                return Err(e);
            }
        }
    }
    Ok(count)
}

pub(crate) fn send_batch(
    socket: &mio::net::UdpSocket,
    state: &mut State,
    transmits: &Transmits,
) -> io::Result<usize> {
    let mut sent = 0;
    for transmit in transmits.iter() {
        match socket.send_to(transmit.data, for_socket(transmit.destination, state.is_v6)) {
            Ok(_) => sent += 1,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => {
                if sent > 0 {
                    break;
                }
                return Err(e);
            }
        }
    }
    Ok(sent)
}

pub(crate) fn note_pending_errors(_state: &mut State) {}

pub(crate) fn drain_errors(
    _socket: &mio::net::UdpSocket,
    _state: &mut State,
    _each: impl FnMut(SendFailure),
) {
}

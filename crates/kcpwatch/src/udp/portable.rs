//! One system call per datagram, for platforms without recvmmsg/sendmmsg.

use std::io;

use kcpwatch_proto::Transmits;

use super::{Received, BATCH};
use crate::socket::{for_socket, normalize};

pub(crate) struct State {
    buffer: Vec<u8>,
}

impl State {
    pub(crate) fn new(max_datagram: usize) -> Self {
        Self {
            buffer: vec![0; max_datagram + 1],
        }
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
                    data: &state.buffer[..len.min(limit)],
                    truncated: len > limit,
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
    _state: &mut State,
    socket_is_v6: bool,
    transmits: &Transmits,
) -> io::Result<usize> {
    let mut sent = 0;
    for transmit in transmits.iter() {
        match socket.send_to(
            transmit.data,
            for_socket(transmit.destination, socket_is_v6),
        ) {
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
